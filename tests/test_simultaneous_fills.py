"""Fills at one timestamp form one batch: reductions before increases, whatever the names.

Hand-computed cases (every number worked out beside it) and a hypothesis property:
renaming the symbols by any permutation gives the same trades and equity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import Scripted, make_bars, run_script
from hypothesis import given, settings
from hypothesis import strategies as st


def flat(price):
    return (price, price, price, price)


# ---- a rotation whose buys sort before its sells ---------------------------------------


def rotation(names):
    """Hold the last two symbols, then on day 1 close them and buy the first two."""
    new_a, new_b, old_y, old_z = names

    def day0(s, sym):
        if sym in (old_y, old_z):
            s.buy(sym, size=49)

    def day1(s, sym):
        if sym == new_a:
            s.ids[sym] = s.buy(sym, size=61)
        elif sym == new_b:
            s.ids[sym] = s.buy(sym, size=40)
        else:
            s.ids[sym] = s.close(sym)

    data = {
        new_a: make_bars([flat(100), flat(100), flat(80), flat(80)]),
        new_b: make_bars([flat(100), flat(100), flat(120), flat(120)]),
        old_y: make_bars([flat(100), flat(100), flat(90), flat(90)]),
        old_z: make_bars([flat(100), flat(100), flat(110), flat(110)]),
    }
    return data, {0: day0, 1: day1}


def test_rotation_whose_buys_sort_first_fills_every_order():
    # Day 1 opens at 100: YYY and ZZZ 49 each cost 9,800 + 0.1% = 9.8 -> cash 190.2.
    # Day 2 opens AAA 80, BBB 120, YYY 90, ZZZ 110. Sells first: 49 x 90 = 4,410 and
    # 49 x 110 = 5,390, less 4.41 + 5.39 -> cash 190.2 + 9,800 - 9.8 = 9,980.4, nothing held.
    # Then the buys, judged against that: AAA 61 x 80 = 4,880 (+4.88): gross 4,880 <= equity
    # 9,975.52; BBB 40 x 120 = 4,800 (+4.8): gross 9,680 <= equity 9,970.72. Both fill.
    # Placed in name order (AAA, BBB, YYY, ZZZ), the buys came first and were refused.
    data, script = rotation(["AAA", "BBB", "YYY", "ZZZ"])
    r = run_script(data, script, cash=10_000, commission=0.001)
    assert (r.orders.status == "filled").all(), r.orders[["symbol", "status", "reason"]]
    day2 = r.fills[r.fills.time == pd.Timestamp("2024-01-03", tz="UTC")]
    # Executed reductions first, then the increases in placement order.
    assert list(day2.symbol) == ["YYY", "ZZZ", "AAA", "BBB"]
    assert list(day2.price) == [90.0, 110.0, 80.0, 120.0]
    cash = 10_000 - 9_800 - 9.8 + 4_410 + 5_390 - 9.8 - 4_880 - 4.88 - 4_800 - 4.8
    assert r.equity_frame.cash.iloc[-1] == pytest.approx(cash, rel=1e-12)
    assert r.equity_frame.equity.iloc[-1] == pytest.approx(cash + 61 * 80 + 40 * 120, rel=1e-12)
    # YYY: -490 less 4.9 + 4.41 commission; ZZZ: +490 less 4.9 + 5.39.
    assert r.stats["# Trades"] == 2
    assert sorted(r.trades.pnl) == pytest.approx([-499.31, 479.71], rel=1e-12)


def test_rotation_result_is_the_same_whatever_the_names():
    a, sa = rotation(["AAA", "BBB", "YYY", "ZZZ"])
    b, sb = rotation(["ZZZ", "YYY", "BBB", "AAA"])  # the buys now sort last
    ra = run_script(a, sa, cash=10_000, commission=0.001)
    rb = run_script(b, sb, cash=10_000, commission=0.001)
    assert (rb.orders.status == "filled").all()
    pd.testing.assert_frame_equal(ra.equity_frame, rb.equity_frame)


def test_an_increase_beyond_what_reductions_free_is_rejected_with_a_reason():
    # As above, but BBB asks for 43: after AAA (gross 4,880, equity 9,975.52) it would
    # make gross 4,880 + 5,160 = 10,040 > equity 9,975.52 - 5.16 = 9,970.36: refused.
    data, script = rotation(["AAA", "BBB", "YYY", "ZZZ"])

    def day1(s, sym):
        if sym == "BBB":
            s.ids[sym] = s.buy(sym, size=43)
        else:
            script[1](s, sym)

    r = run_script(data, {0: script[0], 1: day1}, cash=10_000, commission=0.001)
    bbb = r.orders[r.orders.symbol == "BBB"].iloc[0]
    assert (bbb.status, bbb.reason, bbb.filled_size) == ("rejected", "insufficient margin", 0.0)
    assert (r.orders[r.orders.symbol != "BBB"].status == "filled").all()


def test_trade_on_close_orders_at_the_barrier_are_one_batch_too():
    # Decided and filled at the close (100 for all on days 0 and 1): YYY/ZZZ 49 each bought
    # at day 0's close (cash 200). On day 1 the sells (9,800) free the cash for AAA 50 and
    # BBB 48 (9,800 <= equity 10,000); buys first would have met a gross of 9,800 already.
    data, script = rotation(["AAA", "BBB", "YYY", "ZZZ"])

    def day1(s, sym):
        if sym in ("AAA", "BBB"):
            s.buy(sym, size=50 if sym == "AAA" else 48)
        else:
            s.close(sym)

    r = run_script(data, {0: script[0], 1: day1}, cash=10_000, trade_on_close=True)
    assert (r.orders.status == "filled").all(), r.orders[["symbol", "status", "reason"]]
    day1 = r.fills[r.fills.time == pd.Timestamp("2024-01-02", tz="UTC")]
    assert list(day1.symbol) == ["YYY", "ZZZ", "AAA", "BBB"]
    assert list(day1.price) == [100.0] * 4


# ---- a flip and a close in the same bar, with slippage ----------------------------------


FLIP_ROWS = [flat(100), flat(100), flat(120), flat(120)]


def test_close_after_a_flip_slips_against_the_trader_on_the_side_it_executes():
    # Day 1 open 100: buy 10 at 100 x 1.001 = 100.1. Day 1: sell 20 (flips), then close().
    # Day 2 open 120: the sell's reducing 10 and its new short 10 at 120 x 0.999 = 119.88;
    # then the close finds a short of 10 and BUYS 10: at 120 x 1.001 = 120.12 (against the
    # trader on the buy side, though it was placed as a sell).
    def day1(s, sym):
        s.ids["flip"] = s.sell(size=20)
        s.ids["close"] = s.close()

    r = run_script(
        {"X": make_bars(FLIP_ROWS)}, {0: lambda s, sym: s.buy(size=10), 1: day1},
        cash=10_000, slippage=10,
    )
    strategy = r.strategy
    fills = r.fills.set_index("order_id")
    flip, close = fills.loc[strategy.ids["flip"]], fills.loc[strategy.ids["close"]]
    assert (flip.side, flip["size"], flip.price) == ("sell", 20.0, pytest.approx(119.88, rel=1e-12))
    assert (close.side, close["size"], close.price) == ("buy", 10.0, pytest.approx(120.12, rel=1e-12))
    rec = r.orders.set_index("order_id").loc[strategy.ids["close"]]
    assert (rec.side, rec.filled_side, rec.filled_size) == ("sell", "buy", 10.0)
    assert rec.fill_price == pytest.approx(120.12, rel=1e-12)
    # Trades: long 10 100.1 -> 119.88 = +197.8; short 10 119.88 -> 120.12 = -2.4.
    assert list(r.trades.pnl) == [pytest.approx(197.8, rel=1e-12), pytest.approx(-2.4, rel=1e-12)]
    assert r.positions["size"].get("X", 0.0) == 0.0
    assert r.equity_frame.equity.iloc[-1] == pytest.approx(10_195.4, rel=1e-12)


def test_close_before_a_flip_sells_and_the_flip_adds_the_short():
    # The same orders placed the other way round: the close sells 10 at 119.88 (reduction),
    # then the sell of 20 has nothing left to reduce and opens a short of 20 at 119.88.
    def day1(s, sym):
        s.ids["close"] = s.close()
        s.ids["flip"] = s.sell(size=20)

    r = run_script(
        {"X": make_bars(FLIP_ROWS)}, {0: lambda s, sym: s.buy(size=10), 1: day1},
        cash=10_000, slippage=10,
    )
    fills = r.fills.set_index("order_id")
    assert fills.loc[r.strategy.ids["close"], "side"] == "sell"
    assert fills.loc[r.strategy.ids["flip"], "size"] == 20.0
    assert r.positions["size"].get("X", 0.0) == -20.0


def test_a_flip_whose_increase_is_refused_keeps_its_reduction():
    # Long 10 at 100 (cash 9,000). Day 1: sell 200. Day 2 opens 120: the reducing 10 sell
    # at 120 (cash 10,200); the short of 190 x 120 = 22,800 > equity 10,200: refused.
    r = run_script(
        {"X": make_bars(FLIP_ROWS)},
        {0: lambda s, sym: s.buy(size=10), 1: lambda s, sym: s.sell(size=200)},
        cash=10_000, commission_fixed=2.0,
    )
    rec = r.orders.iloc[1]
    assert (rec.status, rec.reason, rec.filled_size, rec.filled_side) == (
        "rejected", "insufficient margin", 10.0, "sell")
    # It pays its executed share of the order's commission: 2 x 10 / 200 = 0.1.
    assert r.fills.commission.iloc[1] == pytest.approx(0.1, rel=1e-12)
    assert r.positions["size"].get("X", 0.0) == 0.0
    assert r.equity_frame.cash.iloc[-1] == pytest.approx(10_000 - 2 - 1_000 + 1_200 - 0.1, rel=1e-12)


# ---- exact sums: their range is checked, never wrapped -----------------------------------


def test_a_position_worth_more_than_the_exact_range_stops_the_run_naming_its_symbol():
    # 10 units bought at 100; the price then jumps to 1e21: 10 x 1e21 = 1e22 > 2^72 (4.7e21).
    rows = [flat(100), flat(100), flat(1e21), flat(1e21)]
    with pytest.raises(tickstep.data.DataError, match=r"(?s)'HUGE'.*1e22.*4\.7\d*e21"):
        run_script({"HUGE": make_bars(rows), "OK": make_bars([flat(1)] * 4)},
                   {("HUGE", 0): lambda s, sym: s.buy(sym, size=10)}, cash=10_000)


# ---- the property: names do not matter --------------------------------------------------


class Momentum(tickstep.Strategy):
    """Each tick: rank symbols by their last bar's return (a name-free order), close the
    losers, and buy the winners with a share of equity each — sells and buys on one tick."""

    share = 0.3

    def moves(self):
        """(last bar's return, symbol) of the symbols with a bar now, in return order."""
        moves = []
        for sym in self.symbols:
            h = self.data(sym, count=2)
            if len(h) == 2 and self.has_data(sym):
                moves.append((h.close[-1] / h.close[0], sym))
        return sorted(moves)

    def on_tick(self):
        for move, sym in self.moves():
            if move < 1 and self.position_size(sym) > 0:
                self.close(sym)
            elif move > 1.01 and self.position_size(sym) == 0:
                self.enter(sym)

    def enter(self, sym):
        self.buy(sym, size=self.equity * self.share / self.price(sym), sl=self.price(sym) * 0.97)


def random_frames(seed, names, n):
    rng = np.random.default_rng(seed)
    frames = {}
    for k, name in enumerate(names):
        keep = rng.random(n) > 0.15
        keep[0] = True
        close = 50 * (k + 1) * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        open_ = np.concatenate(([close[0]], close[:-1])) * np.exp(rng.normal(0, 0.005, n))
        high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
        low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
        index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
        frames[name] = pd.DataFrame(
            {"open": open_, "high": high, "low": low, "close": close, "volume": 1.0}, index=index
        )[keep]
    return frames


def named_back(frame, back):
    """``frame`` with its symbols renamed back to the original names, rows in a name-free
    order (by time and order id, not by symbol)."""
    out = frame.copy()
    out["symbol"] = out.symbol.astype(str).map(back)
    return out


def same_bits(a, b):
    """Frames equal value for value, bit for bit (NaN equal to NaN), same dtypes."""
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b)
    for col in a.columns:
        x, y = a[col].to_numpy(), b[col].to_numpy()
        if x.dtype.kind == "f":
            assert x.dtype == y.dtype and np.array_equal(x.view(np.int64), y.view(np.int64)), col
        else:
            assert list(x) == list(y), col


def same_stats(a, b):
    for label in a.index:
        x, y = a[label], b[label]
        if isinstance(x, float):
            assert np.float64(x).tobytes() == np.float64(y).tobytes(), (label, x, y)
        elif x is pd.NaT:  # (a duration with no trade to measure)
            assert y is pd.NaT, (label, x, y)
        else:
            assert x == y, (label, x, y)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(2, 9),
    permutation_seed=st.integers(0, 2**32 - 1),
    commission=st.sampled_from([0.0, 0.001]),
    slippage=st.sampled_from([0.0, 5.0]),
    trade_on_close=st.booleans(),
    share=st.sampled_from([0.45, 0.2, 0.12]),
)
def test_renaming_symbols_changes_nothing(seed, n_symbols, permutation_seed, commission, slippage,
                                          trade_on_close, share):
    # The strategy places its orders in a name-free order (ranked by return), so renaming
    # the symbols must give the same result bit for bit: trades, fills, orders, equity and
    # every statistic.
    names = [f"S{k}" for k in range(n_symbols)]
    frames = random_frames(seed, names, 40)
    renamed = list(np.random.default_rng(permutation_seed).permutation([f"Q{k}" for k in range(n_symbols)]))
    new = dict(zip(names, renamed))
    back = {v: k for k, v in new.items()}
    options = dict(cash=10_000, commission=commission, slippage=slippage,
                   trade_on_close=trade_on_close, record_every_bar=True)
    a = tickstep.Backtest(frames, Momentum, **options).run(share=share)
    b = tickstep.Backtest({new[k]: v for k, v in frames.items()}, Momentum, **options).run(share=share)
    same_runs(a, b, back, names)


def same_runs(a, b, back, names):
    """Runs `a` and `b` (whose symbols `back` names as `a`'s, `names`) the same: equity,
    trades, fills and orders row for row in a name-free order, and every statistic, bit
    for bit."""
    same_bits(a.equity_frame.reset_index(), b.equity_frame.reset_index())
    identity = {n: n for n in names}
    for table, key in (("trades", ["exit_time", "exit_order", "entry_time", "trade_id"]),
                       ("fills", ["time", "order_id"]),
                       ("orders", ["order_id"])):
        ta = named_back(getattr(a, table), identity).sort_values(key, kind="stable")
        tb = named_back(getattr(b, table), back).sort_values(key, kind="stable")
        same_bits(ta.reset_index(drop=True), tb.reset_index(drop=True))
    same_stats(a.stats, b.stats)


class MomentumAtFill(Momentum):
    """`Momentum` with its buys sized at their fill by the backtest's sizer
    (`PercentOfEquity(share, at="fill")`): the closes of one tick and its buys fill
    together, the buys sized on the cash the closes free."""

    def enter(self, sym):
        self.buy(sym, sl=self.price(sym) * 0.97)


#: What the properties of entries sized at their fill draw besides their own: the market's
#: seed, the other order of the symbols, the costs, when orders fill, each entry's share.
AT_FILL_DRAWS = dict(
    seed=st.integers(0, 2**32 - 1),
    permutation_seed=st.integers(0, 2**32 - 1),
    commission=st.sampled_from([0.0, 0.001]),
    trade_on_close=st.booleans(),
    share=st.sampled_from([0.45, 0.3, 0.95]),
)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n_symbols=st.integers(2, 7), lot_size=st.sampled_from([None, 1.0]), **AT_FILL_DRAWS)
def test_entries_sized_at_their_fill_are_the_same_whatever_order_the_symbols_are_visited_in(
        seed, n_symbols, permutation_seed, commission, trade_on_close, share, lot_size):
    # The orders are placed in a name-free order (ranked by return), so visiting the
    # symbols in another order changes which symbol's fills the book walks first, and
    # nothing else: an entry sized at its fill takes its share of the buying power the
    # tick's batch has after its closes, however the two symbols come in the walk. The
    # same names, the same orders, the same bits.
    names = [f"S{k}" for k in range(n_symbols)]
    frames = random_frames(seed, names, 40)
    visited = list(np.random.default_rng(permutation_seed).permutation(names))
    options = dict(cash=10_000, commission=commission, trade_on_close=trade_on_close,
                   record_every_bar=True, on_reject="ignore",
                   sizer=tickstep.PercentOfEquity(share, lot_size=lot_size, at="fill"))
    a = tickstep.Backtest(frames, MomentumAtFill, **options).run()
    b = tickstep.Backtest({k: frames[k] for k in visited}, MomentumAtFill, **options).run()
    same_runs(a, b, {n: n for n in names}, names)
    assert (a.orders["status"] == "filled").sum() > 0


class LongShortAtFill(Momentum):
    """Ranked by their last bar's return each tick: the fallers sold (a long reversed to
    a short), the risers bought (a short reversed), every order sized at its fill by the
    backtest's sizer: reversals, entries and the reductions of both fill together."""

    def on_tick(self):
        for move, sym in self.moves():
            held = self.position_size(sym)
            if move < 0.99 and held >= 0:
                self.sell(sym)
            elif move > 1.01 and held <= 0:
                self.buy(sym)


@settings(max_examples=25, deadline=None, derandomize=True)
@given(n_symbols=st.integers(2, 6), volume=st.sampled_from([None, (0.1, 0.0), (0.5, 0.2), (1.0, 0.0)]),
       reversals=st.booleans(), **AT_FILL_DRAWS)
def test_reversals_and_fills_limited_by_volume_are_the_same_whatever_order_the_symbols_are_visited_in(
        seed, n_symbols, permutation_seed, commission, trade_on_close, share, volume, reversals):
    # Entries sized at their fill that reverse a position (sized when the book reaches
    # them, on the account before the batch), or that fill under the volume rules (sized
    # at their increase, then limited by the bar's volume, their rests working on), and
    # the rests of reductions filled in part: visiting the symbols in another order
    # changes nothing, bit for bit.
    names = [f"S{k}" for k in range(n_symbols)]
    frames = random_frames(seed, names, 40)
    limits = {}
    if volume is not None:
        rng = np.random.default_rng(seed + 1)
        for frame in frames.values():
            # (Orders of 15-300 units against 5-120 a bar: the limit binds often.)
            frame["volume"] = np.floor(rng.uniform(5, 120, len(frame)))
        limits = dict(volume_limit=volume[0], volume_impact=volume[1])
    visited = list(np.random.default_rng(permutation_seed).permutation(names))
    options = dict(cash=10_000, commission=commission, trade_on_close=trade_on_close,
                   record_every_bar=True, on_reject="ignore",
                   sizer=tickstep.PercentOfEquity(share, at="fill"), **limits)
    strategy = LongShortAtFill if reversals else MomentumAtFill
    a = tickstep.Backtest(frames, strategy, **options).run()
    b = tickstep.Backtest({k: frames[k] for k in visited}, strategy, **options).run()
    same_runs(a, b, {n: n for n in names}, names)
    assert (a.orders["status"] == "filled").sum() > 0


# ---- next(symbol) runs in the order the symbols were given, never by name ----------------


class GreedyBuyer(tickstep.Strategy):
    """In next(): buy a share of equity of every symbol that rose, so that on a tick where
    several rise their buys compete for too little buying power — the first placed wins."""

    share = 0.45

    def next(self, symbol):
        h = self.data(symbol, count=2)
        if len(h) < 2:
            return
        if h.close[-1] > h.close[0] * 1.005 and not self.position:
            self.buy(size=self.equity * self.share / self.price())
        elif h.close[-1] < h.close[0] and self.position:
            self.position.close()


def buy_60(s, sym):
    s.ids[sym] = s.buy(sym, size=60)


#: Where each symbol closes after the buys (they fill at 100, the next open).
LATER = {"AAA": 90.0, "MMM": 120.0, "ZZZ": 110.0}


def competing(names):
    """Symbols at 100; on the first bar each one's next() buys 60: only the first placed
    fills (a second would make gross 12,000 > equity 10,000). Each then closes at its own
    LATER price, so which one filled shows in the equity."""
    data = {n: make_bars([flat(100), (100, max(100, LATER[n]), min(100, LATER[n]), LATER[n]),
                          flat(LATER[n])]) for n in names}
    return data, {0: buy_60}


@pytest.mark.parametrize("names", [["AAA", "ZZZ"], ["ZZZ", "AAA"]])
def test_next_runs_in_the_order_the_mapping_gives_so_the_first_given_buys(names):
    data, script = competing(names)
    seen = []
    r = run_script(data, {**script, 1: lambda s, sym: seen.append(sym)}, cash=10_000,
                   on_reject="ignore")
    first, second = names
    assert seen == names
    assert r.strategy.symbols == names
    status = r.orders.set_index("symbol").status
    assert (status[first], status[second]) == ("filled", "rejected")
    # Filled 60 at 100: cash 4,000, equity 4,000 + 60 x its last close.
    assert r.equity_frame.cash.iloc[-1] == 4_000.0
    assert r.equity_frame.equity.iloc[-1] == 4_000.0 + 60 * LATER[first]
    assert r.positions["size"].to_dict() == {first: 60.0}


def test_a_symbols_list_sets_the_order_next_sees():
    data, script = competing(["AAA", "ZZZ"])
    market = tickstep.data.resolve(data, symbols=["ZZZ", "AAA"])
    assert market.symbols == ["AAA", "ZZZ"] and market.call_order == ["ZZZ", "AAA"]
    r = tickstep.Backtest(market, Scripted, cash=10_000, on_reject="ignore").run(script=script)
    status = r.orders.set_index("symbol").status
    assert (status["ZZZ"], status["AAA"]) == ("filled", "rejected")


def test_a_long_table_is_visited_in_order_of_first_appearance():
    data, script = competing(["ZZZ", "AAA"])
    long = pd.concat([f.assign(symbol=k) for k, f in data.items()]).sort_index(kind="stable")
    assert tickstep.data.resolve(long).call_order == ["ZZZ", "AAA"]
    r = tickstep.Backtest(long, Scripted, cash=10_000, on_reject="ignore").run(script=script)
    status = r.orders.set_index("symbol").status
    assert (status["ZZZ"], status["AAA"]) == ("filled", "rejected")


def rows_named_back(result, table, back):
    out = getattr(result, table).copy()
    out["symbol"] = out.symbol.astype(str).map(back)
    return out.reset_index(drop=True)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(2, 7),
    permutation_seed=st.integers(0, 2**32 - 1),
    commission=st.sampled_from([0.0, 0.001]),
    trade_on_close=st.booleans(),
    share=st.sampled_from([0.45, 0.3]),
)
def test_competing_buys_in_next_give_the_same_result_whatever_the_names(
        seed, n_symbols, permutation_seed, commission, trade_on_close, share):
    # The symbols keep their input order; only their names change (so their name order
    # does). Buys placed in next() compete for buying power: the outcome must not move,
    # row for row, bit for bit.
    names = [f"S{k}" for k in range(n_symbols)]
    frames = random_frames(seed, names, 40)
    renamed = list(np.random.default_rng(permutation_seed).permutation([f"Q{k}" for k in range(n_symbols)]))
    new = dict(zip(names, renamed))
    back = {v: k for k, v in new.items()}
    options = dict(cash=10_000, commission=commission, trade_on_close=trade_on_close,
                   record_every_bar=True, on_reject="ignore")
    a = tickstep.Backtest(frames, GreedyBuyer, **options).run(share=share)
    b = tickstep.Backtest({new[k]: v for k, v in frames.items()}, GreedyBuyer, **options).run(share=share)
    same_bits(a.equity_frame.reset_index(), b.equity_frame.reset_index())
    identity = {n: n for n in names}
    for table in ("trades", "fills", "orders"):
        same_bits(rows_named_back(a, table, identity), rows_named_back(b, table, back))
    same_stats(a.stats, b.stats)


def test_a_batch_visits_the_symbols_in_the_order_backtest_run_does():
    from tickstep.batch import run_batch

    data, script = competing(["ZZZ", "MMM", "AAA"])
    options = dict(cash=10_000, on_reject="ignore", cache=False, executor="sequential")
    ran = tickstep.Backtest(data, Scripted, cash=10_000, on_reject="ignore").run(script=script)
    assert ran.positions["size"].to_dict() == {"ZZZ": 60.0}
    rows = run_batch(Scripted, data, params={"script": script}, portfolio=True, **options)
    listed = run_batch(Scripted, data, params={"script": script},
                       symbols={"g": ["MMM", "AAA", "ZZZ"]}, **options)
    # Whole portfolio: the mapping's order (ZZZ first). A group: its list's order (MMM).
    assert rows["Equity Final [$]"].tolist() == [ran.stats["Equity Final [$]"]] == [4_000 + 60 * 110.0]
    assert rows["# Orders Rejected"].tolist() == [2]
    single = tickstep.Backtest(data, Scripted, cash=10_000, on_reject="ignore",
                               symbols=["MMM", "AAA", "ZZZ"]).run(script=script)
    assert single.positions["size"].to_dict() == {"MMM": 60.0}
    assert listed["Equity Final [$]"].tolist() == [single.stats["Equity Final [$]"]] == [4_000 + 60 * 120.0]


class BuyFirstBar(tickstep.Strategy):
    def init(self):
        self.bought = set()

    def next(self, symbol):
        if symbol not in self.bought:
            self.bought.add(symbol)
            self.buy(size=60)


def test_a_streamed_run_visits_the_symbols_in_the_same_order():
    data, _ = competing(["ZZZ", "AAA"])
    for names in (["ZZZ", "AAA"], ["AAA", "ZZZ"]):
        ordered = {n: data[n] for n in names}
        r = tickstep.Backtest(ordered, BuyFirstBar, cash=10_000, on_reject="ignore",
                              stream="1D", history=5).run()
        assert r.positions["size"].to_dict() == {names[0]: 60.0}


@settings(max_examples=25, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 2**32 - 1),
    n_symbols=st.integers(1, 7),
    permutation_seed=st.integers(0, 2**32 - 1),
    lags=st.lists(st.integers(0, 8), min_size=7, max_size=7),
    commission=st.sampled_from([0.0, 0.001]),
    trade_on_close=st.booleans(),
    fraction=st.sampled_from([0.98, 1.0]),
)
def test_buy_and_hold_is_the_basket_and_the_same_whatever_the_names(
        seed, n_symbols, permutation_seed, lags, commission, trade_on_close, fraction):
    # BuyAndHold's buys at one instant compete for the cash: renamed symbols give the same
    # run, bit for bit. Symbols that start together, all of the cash, at the close, without
    # costs: its equity is the results' buy-and-hold basket at every sample.
    from tickstep.strategies import BuyAndHold

    names = [f"S{k}" for k in range(n_symbols)]
    frames = random_frames(seed, names, 40)
    staggered = {n: f.iloc[lag:] for (n, f), lag in zip(frames.items(), lags)}
    renamed = list(np.random.default_rng(permutation_seed).permutation(
        [f"Q{k}" for k in range(n_symbols)]))
    new = dict(zip(names, renamed))
    back = {v: k for k, v in new.items()}
    options = dict(cash=10_000, commission=commission, trade_on_close=trade_on_close,
                   record_every_bar=True, on_reject="ignore")
    a = tickstep.Backtest(staggered, BuyAndHold, **options).run(fraction=fraction)
    b = tickstep.Backtest({new[k]: v for k, v in staggered.items()}, BuyAndHold,
                          **options).run(fraction=fraction)
    same_bits(a.equity_frame.reset_index(), b.equity_frame.reset_index())
    identity = {n: n for n in names}
    for table in ("fills", "orders"):
        same_bits(rows_named_back(a, table, identity), rows_named_back(b, table, back))
    pd.testing.assert_series_equal(a.stats, b.stats, check_exact=True)  # no trade: NaT
    pd.testing.assert_series_equal(a.buy_and_hold(), b.buy_and_hold(), check_exact=True)
    together = tickstep.Backtest(frames, BuyAndHold, cash=10_000, trade_on_close=True,
                                 record_every_bar=True).run(fraction=1.0)
    assert len(together.fills) == n_symbols
    np.testing.assert_allclose(together.equity, together.buy_and_hold(), rtol=1e-12)
