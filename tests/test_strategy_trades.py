"""A strategy's trades as objects (backtesting.py's ``self.trades`` and
``self.closed_trades``): what they read, and what setting ``sl``/``tp`` and ``close()``
do to the one trade they stand for, fill by fill on hand-made bars."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep import OrderError

EXACT = {"rel": 0, "abs": 1e-9}

ROWS = [
    # open  high  low  close
    (100, 101, 99, 100),   # 0
    (100, 102, 99, 101),   # 1  first entry fills at 100
    (102, 104, 101, 103),  # 2  second entry fills at 102
    (103, 105, 102, 104),  # 3
    (104, 106, 103, 105),  # 4
    (105, 106, 96, 97),    # 5  low 96
    (97, 99, 95, 98),      # 6
    (98, 99, 97, 98),      # 7
    (98, 99, 97, 98),      # 8
]


def T(i: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=i)


def order(result, order_id):
    return result.orders.set_index("order_id").loc[order_id]


def test_trades_read_each_open_trade_as_it_is(bars, run):
    seen = {}

    def read(s, sym):
        seen["trades"] = first, second = s.trades
        seen["price"] = s.price()
        seen["marked"] = (first.pl, first.pl_pct, second.value)

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: lambda s, sym: s.buy(size=5, sl=90),
                         3: read})
    assert seen["price"] == 104.0
    first, second = seen["trades"]
    assert (first.symbol, first.size, first.entry_price, first.entry_time, first.entry_bar) == (
        "ASSET", 10.0, 100.0, T(1), 1)
    assert (second.size, second.entry_price, second.entry_time, second.entry_bar) == (5.0, 102.0, T(2), 2)
    assert first.is_long and not first.is_short
    assert (first.sl, first.tp, second.sl, second.tp) == (None, None, 90.0, None)
    # Marked at the latest close (104) when read, before commissions.
    pl, pl_pct, value = seen["marked"]
    assert pl == pytest.approx(10 * (104 - 100), **EXACT)
    assert pl_pct == pytest.approx(104 / 100 - 1, **EXACT)
    assert value == pytest.approx(5 * 104, **EXACT)
    assert first.id != second.id
    assert r.trades.empty  # both still open at the end


def test_setting_sl_on_the_newer_trade_closes_that_trade_alone(bars, run):
    def set_sl(s, sym):
        newer = s.trades[-1]
        newer.sl = 99.5
        s.ids["sl"] = s.open_trades()[-1]["sl_order"]
        s.ids["newer"], s.ids["older"] = newer.id, s.trades[0].id

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: lambda s, sym: s.buy(size=5),
                         3: set_sl})
    # Bar 4 (low 103) does not reach 99.5; bar 5 (open 105, low 96) does: stop fills at 99.5.
    stop = r.fills[r.fills["order_id"] == r.strategy.ids["sl"]]
    assert list(stop["role"]) == ["stop_loss"] and stop["time"].iloc[0] == T(5)
    assert stop["price"].iloc[0] == 99.5 and stop["size"].iloc[0] == 5.0
    closed = r.trades.set_index("trade_id")
    # The newer trade (entered at 102) is the one closed, not the oldest (FIFO would take it).
    assert list(closed.index) == [r.strategy.ids["newer"]]
    assert closed.loc[r.strategy.ids["newer"], "entry_price"] == 102.0
    assert r.positions["size"].iloc[-1] == 10.0


def test_moving_an_sl_keeps_its_order_and_works_from_the_next_bar(bars, run):
    def first(s, sym):
        (t,) = s.trades
        t.sl = 90
        assert t.sl == 90
        s.ids["sl"] = s.open_trades()[0]["sl_order"]

    def move(s, sym):
        (t,) = s.trades
        assert t.sl == 90
        t.sl = 103.5  # above the entry: a stop that locks a profit
        s.ids["moved"] = s.open_trades()[0]["sl_order"]

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: first, 3: move})
    assert r.strategy.ids["moved"] == r.strategy.ids["sl"]  # the same order, moved
    assert (r.orders["role"] == "stop_loss").sum() == 1
    # Bar 4's low is 103 <= 103.5: the stop fills there, at 103.5 (it opened above it).
    stop = r.fills[r.fills["role"] == "stop_loss"].iloc[0]
    assert (stop["time"], stop["price"], stop["size"]) == (T(4), 103.5, 10.0)
    assert r.trades["pnl"].iloc[0] == pytest.approx(10 * 3.5, **EXACT)


def test_tp_set_and_sl_taken_away(bars, run):
    def legs(s, sym):
        (t,) = s.trades
        assert (t.sl, t.tp) == (95.0, None)
        t.sl = None
        t.tp = 104.5
        s.ids["sl"], s.ids["tp"] = s.ids["bracket_sl"], s.open_trades()[0]["tp_order"]
        assert (t.sl, t.tp) == (None, 104.5)

    def entry(s, sym):
        s.buy(size=10, sl=95)

    def note_sl(s, sym):
        s.ids["bracket_sl"] = s.open_trades()[0]["sl_order"]

    r = run(bars(ROWS), {0: entry, 1: note_sl, 2: legs})
    assert order(r, r.strategy.ids["sl"]).status == "cancelled"
    tp = r.fills[r.fills["order_id"] == r.strategy.ids["tp"]].iloc[0]
    # Bar 3 (high 105) reaches 104.5 from an open of 103: filled at the limit.
    assert (tp["role"], tp["time"], tp["price"]) == ("take_profit", T(3), 104.5)
    assert r.positions.empty  # flat at the end


def test_a_trailing_sl_is_replaced_by_a_fixed_one(bars, run):
    def fix(s, sym):
        (t,) = s.trades
        s.ids["trailing"] = s.open_trades()[0]["sl_order"]
        # Where the trailing stop has moved to by now: up from the entry's 100 - 5.
        assert t.sl == s.open_trades()[0]["sl"] > 95.0
        t.sl = 100.5
        s.ids["fixed"] = s.open_trades()[0]["sl_order"]

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10, sl_trail=5.0), 3: fix})
    assert order(r, r.strategy.ids["trailing"]).status == "cancelled"
    assert r.strategy.ids["fixed"] != r.strategy.ids["trailing"]
    stop = r.fills[r.fills["order_id"] == r.strategy.ids["fixed"]].iloc[0]
    assert (stop["time"], stop["price"]) == (T(5), 100.5)


def test_close_of_one_trade_and_of_a_portion(bars, run):
    def close_newer(s, sym):
        s.ids["newer"] = s.trades[-1].id
        s.trades[-1].close()

    def half_of_older(s, sym):
        (t,) = s.trades
        s.ids["older"] = t.id
        t.close(0.5)

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: lambda s, sym: s.buy(size=6),
                         2: close_newer, 3: half_of_older})
    trades = r.trades
    # Bar 3's open 103 closes the newer trade (6 from 102); bar 4's open 104 half the older.
    assert list(trades["trade_id"]) == [r.strategy.ids["newer"], r.strategy.ids["older"]]
    assert list(trades["size"]) == [6.0, 5.0]
    assert list(trades["entry_price"]) == [102.0, 100.0]
    assert list(trades["exit_price"]) == [103.0, 104.0]
    assert list(trades["exit_time"]) == [T(3), T(4)]
    assert r.positions["size"].iloc[-1] == 5.0


def test_close_of_one_trade_at_the_close_with_trade_on_close(bars, run):
    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: lambda s, sym: s.buy(size=6),
                         2: lambda s, sym: s.trades[-1].close(0.5)}, trade_on_close=True)
    # Entries at the closes of bars 0 and 1 (100, 101); half the newer at bar 2's (103).
    closed = r.trades.iloc[0]
    assert (closed["size"], closed["entry_price"], closed["exit_price"]) == (3.0, 101.0, 103.0)
    assert r.fills["role"].iloc[-1] == "close" and r.fills["time"].iloc[-1] == T(2)
    assert r.positions["size"].iloc[0] == 13.0


def test_closed_trades_read_as_the_results_trades(bars, run):
    seen = []

    def read(s, sym):
        seen.append(s.closed_trades)

    script = {0: lambda s, sym: s.buy(size=10), 1: lambda s, sym: s.buy(size=6),
              2: lambda s, sym: s.trades[-1].close(), 3: lambda s, sym: s.trades[0].close(0.5),
              5: read, 6: read}
    r = run(bars(ROWS), script, commission=0.001)
    first, again = seen
    assert [t.id for t in first] == [t.id for t in again] == list(r.trades["trade_id"])
    for t, (_, row) in zip(first, r.trades.iterrows()):
        assert t.size == row["size"] and t.exit_price == row["exit_price"]
        assert t.exit_time == row["exit_time"] and t.entry_time == row["entry_time"]
        assert t.pl == row["pnl"] and t.pl_pct == row["return_pct"]
        with pytest.raises(OrderError, match=f"trade {t.id} is closed: cannot close it"):
            t.close()



def test_refusals_name_the_trade_and_the_rule(bars, run):
    errors = {}

    def attempt(key, action):
        try:
            action()
        except OrderError as e:
            errors[key] = str(e)

    def kept(s, sym):
        s.ids["kept"] = s.trades[0]

    def misuse(s, sym):
        t = s.trades[0]
        attempt("negative", lambda: setattr(t, "sl", -1.0))
        attempt("nan", lambda: setattr(t, "tp", float("nan")))
        attempt("text", lambda: setattr(t, "sl", "99"))
        attempt("bool", lambda: setattr(t, "tp", True))
        attempt("portion", lambda: t.close(1.5))
        attempt("zero", lambda: t.close(0))
        s.close()

    def stale(s, sym):
        t = s.ids["kept"]  # read two bars ago; the position closed since
        attempt("stale_sl", lambda: setattr(t, "sl", 90.0))
        attempt("stale_close", lambda: t.close())

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: kept, 2: misuse, 4: stale})
    tid = r.strategy.ids["kept"].id
    assert errors == {
        "negative": f"ASSET: trade {tid}: sl price must be positive and finite, got -1",
        "nan": f"ASSET: trade {tid}: tp price must be positive and finite, got NaN",
        "text": f"ASSET: trade {tid}: sl must be a price or None, got str",
        "bool": f"ASSET: trade {tid}: tp must be a price or None, got bool",
        "portion": f"ASSET: close trade {tid}: portion must be in (0, 1], got 1.5",
        "zero": f"ASSET: close trade {tid}: portion must be in (0, 1], got 0",
        "stale_sl": f"ASSET: trade {tid} is not open (closed, or never opened): its sl cannot be set",
        "stale_close": f"ASSET: trade {tid} is not open (closed, or never opened): it cannot be closed",
    }
    # Nothing was placed by the refused calls: the entry and the close only.
    assert list(r.orders["role"]) == ["entry", "close"]


def test_trades_are_the_running_symbols_in_next_and_all_in_on_tick(bars):
    a = bars(ROWS)
    b = bars([(o * 2, h * 2, lo * 2, c * 2) for o, h, lo, c in ROWS])

    class Both(tickstep.Strategy):
        def init(self):
            self.seen = []

        def next(self, symbol):
            if len(self.data) == 1:
                self.buy(size=1 if symbol == "A" else 2)
            if len(self.data) == 3 and symbol == "B":
                self.trades[0].close()
            self.seen.append((symbol, [(t.symbol, t.size) for t in self.trades],
                              [t.symbol for t in self.closed_trades]))

        def on_tick(self):
            self.seen.append(("tick", [(t.symbol, t.size) for t in self.trades],
                              [t.symbol for t in self.closed_trades]))

    r = tickstep.Backtest({"A": a, "B": b}, Both, cash=10_000).run()
    seen = r.strategy.seen
    # Bar 3 (index 3): each symbol sees its own trade; on_tick sees both.
    assert ("A", [("A", 1.0)], []) in seen
    assert ("B", [("B", 2.0)], []) in seen
    assert ("tick", [("A", 1.0), ("B", 2.0)], []) in seen
    # After B's trade closed (bar 3's open): B's closed trade in B's next and on_tick only.
    assert seen[-3:] == [("A", [("A", 1.0)], []), ("B", [], ["B"]), ("tick", [("A", 1.0)], ["B"])]


# ---- against backtesting.py, on random actions ------------------------------------------


def draw_actions(seed: int, n: int) -> list[tuple | None]:
    """What a strategy does at each bar, if anything: buy a few units (a new trade, tagged), set
    or move one trade's exit at a distance from the close, cancel it, or close one trade
    (half, or all). Nothing at the first bar (backtesting.py does not call ``next``
    there) nor at the last (it fills nothing placed there)."""
    rng = np.random.default_rng(seed + 11)
    out: list[tuple | None] = [None] * n
    for i in range(1, n - 1):
        r, pick = rng.random(), int(rng.integers(0, 8))
        if r < 0.08:
            out[i] = ("buy", int(rng.choice([2, 4, 6, 10])), int(rng.integers(-5, 50)))
        elif r < 0.22:
            out[i] = ("exit", pick, float(rng.uniform(0.002, 0.03)))
        elif r < 0.25:
            out[i] = ("cancel", pick)
        elif r < 0.30:
            out[i] = ("close", pick, float(rng.choice([0.5, 1.0])))
    return out


def act(strategy, action, price: float, exit_kind: str) -> None:  # type: ignore[no-untyped-def]
    """Do `action` with backtesting.py's words, which both libraries take."""
    if action is None:
        return
    if action[0] == "buy":
        strategy.buy(size=action[1], tag=action[2])
        return
    trades = strategy.trades
    if not trades:
        return
    trade = trades[action[1] % len(trades)]
    if action[0] == "exit":
        distance = action[2]
        setattr(trade, exit_kind, price * (1 - distance) if exit_kind == "sl" else price * (1 + distance))
    elif action[0] == "cancel":
        setattr(trade, exit_kind, None)
    else:
        # Half of an even number of units (backtesting.py rounds a portion to whole units).
        trade.close(action[2] if abs(trade.size) % 2 == 0 else 1.0)


def acting(base, actions, exit_kind):  # type: ignore[no-untyped-def]
    class Acting(base):  # type: ignore[misc, valid-type]
        def init(self):  # type: ignore[no-untyped-def]
            pass

        def next(self):  # type: ignore[no-untyped-def]
            act(self, actions[len(self.data) - 1], float(self.data.Close[-1]), exit_kind)

    return Acting


def closed_by_bars(trades) -> list[tuple[tuple[int, int], float, tuple[float, float]]]:  # type: ignore[no-untyped-def]
    """Closed trades (entry bar, exit bar, signed units, entry and exit price) summed by
    their entry and exit bars: units, and the prices weighted by them. A trade's close
    and its exit both filling at one open are executed in the other order by the two
    (tickstep: the earlier placed first; backtesting.py: the close), which splits the
    same units at the same price into one record or two."""
    summed: dict[tuple[int, int], list[float]] = {}
    for entry_bar, exit_bar, units, entry_price, exit_price in trades:
        row = summed.setdefault((entry_bar, exit_bar), [0.0, 0.0, 0.0])
        row[0] += units
        row[1] += units * entry_price
        row[2] += units * exit_price
    return [(bars, u, (e / u, x / u)) for bars, (u, e, x) in sorted(summed.items())]


@pytest.mark.filterwarnings("ignore:Some trades remain open")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("exit_kind", ["sl", "tp"])
def test_random_trade_management_trades_as_backtesting_py(exit_kind, seed):
    """Random entries (trades piling up in one position), exits set, moved and cancelled
    on any of them, and closes of one trade or half of it, by backtesting.py's words in
    both libraries: the same closed trades (entry and exit bars, size, prices) and final
    equity. One exit kind per run: a stop-loss and a take-profit of one trade both inside
    one bar are matched differently by the two (tickstep takes the one nearer the open)."""
    from backtesting import Backtest as ReferenceBacktest
    from backtesting import Strategy as ReferenceStrategy
    from conftest import walk

    n = 1_500
    b = walk(seed, n, 1)
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min")
    frame = pd.DataFrame({c.capitalize(): b[c][:, 0] for c in ("open", "high", "low", "close")}
                         | {"Volume": 1.0}, index=index)
    actions = draw_actions(seed, n)
    theirs = ReferenceBacktest(frame, acting(ReferenceStrategy, actions, exit_kind), cash=1e6,
                               commission=0.001, finalize_trades=False).run()
    ours = tickstep.Backtest(frame, acting(tickstep.Strategy, actions, exit_kind), cash=1e6,
                             commission=0.001).run()
    at = {ts: k for k, ts in enumerate(frame.index.tz_localize("UTC"))}
    mine = closed_by_bars((at[t.entry_time], at[t.exit_time], (1 if t.side == "long" else -1) * t.size,
                           t.entry_price, t.exit_price) for t in ours.trades.itertuples())
    reference = closed_by_bars((t.entry_bar, t.exit_bar, float(t.size), t.entry_price, t.exit_price)
                               for t in theirs["_strategy"].closed_trades)
    assert len(reference) > 40, "too few closed trades to compare"
    assert [(bars, units) for bars, units, _ in mine] == [(bars, units) for bars, units, _ in reference]
    np.testing.assert_allclose([p for *_, p in mine], [p for *_, p in reference], rtol=1e-12)
    # The exits that filled are the trades' own legs.
    assert (ours.fills["role"] == ("stop_loss" if exit_kind == "sl" else "take_profit")).sum() > 5
    # Each closed trade carries the tag of the buy that opened it, in both.
    tags = sorted({(at[t.entry_time], int(t.tag)) for t in ours.trades.itertuples()})
    assert tags == sorted({(t.entry_bar, t.tag) for t in theirs["_strategy"].closed_trades})
    assert float(ours.stats["Equity Final [$]"]) == pytest.approx(
        float(theirs["Equity Final [$]"]), rel=1e-12)


def test_an_open_trade_is_the_same_object_at_every_read(bars, run):
    seen = []

    def keep(s, sym):
        s.ids["first"] = s.trades[0]

    def check(s, sym):
        trades = s.trades
        seen.append((s.ids["first"] in trades, [t.size for t in trades]))

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 1: keep, 2: lambda s, sym: s.trades[0].close(0.5),
                         3: check, 4: lambda s, sym: s.close(), 5: check})
    # Still open at bar 3, the same object, its size read afresh (half closed at bar 3's
    # open); after the close at bar 5's open, no longer among the open trades.
    assert seen == [(True, [5.0]), (False, [])]
    assert r.strategy.ids["first"].size == 5.0  # as last read
    assert len(r.trades) == 2


def test_a_short_trade_reads_negative_open_and_closed(bars, run):
    seen = {}

    def read_open(s, sym):
        (t,) = s.trades
        seen["open"] = (t.size, t.is_short, t.pl)
        t.sl = 110  # a buy stop, above: a short's stop-loss

    def read_closed(s, sym):
        (t,) = s.closed_trades
        seen["closed"] = (t.size, t.is_short, t.exit_price, t.pl)

    rows = [(100, 101, 99, 100), (100, 101, 97, 98), (97, 98, 96, 97), (97, 98, 96, 97)]
    r = run(bars(rows), {0: lambda s, sym: s.sell(size=4), 1: read_open, 2: lambda s, sym: s.close(),
                         3: read_closed})
    # Short 4 at 100, marked at 98: +8; closed at bar 3's open, 97: +12 (no commission).
    assert seen["open"] == (-4.0, True, pytest.approx(8.0, **EXACT))
    assert seen["closed"] == (-4.0, True, 97.0, pytest.approx(12.0, **EXACT))
    sl = r.orders[r.orders["role"] == "stop_loss"].iloc[0]
    assert (sl.side, sl.stop, sl.status) == ("buy", 110.0, "cancelled")


def test_a_portion_is_a_number_never_a_bool(bars, run):
    errors = []

    def attempt(s, sym):
        for close in (lambda: s.trades[0].close(True), lambda: s.position.close(True),
                      lambda: s.close(portion=False)):
            try:
                close()
            except OrderError as e:
                errors.append(str(e))

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10), 2: attempt})
    assert errors == ["portion=True: must be a fraction in (0, 1], got bool",
                      "portion=True: must be a fraction in (0, 1], got bool",
                      "portion=False: must be a fraction in (0, 1], got bool"]
    assert list(r.orders["role"]) == ["entry"]  # nothing placed by them


def test_a_trade_object_reads_the_book_when_asked_and_its_last_close_once_closed(bars, run):
    seen: dict[str, list] = {"sl": [], "size": []}

    def keep(s, sym):
        s.ids["kept"] = s.trades[0]

    def look(s, sym):
        kept = s.ids["kept"]
        # The object read at bar 1: the same one, reading the book as it is now.
        assert s.trades == (kept,)
        seen["sl"].append((kept.sl, s.open_trades()[0]["sl"]))
        seen["size"].append(kept.size)

    def look_and_half(s, sym):
        look(s, sym)
        s.position.close(0.5)

    def read_closed(s, sym):
        kept = s.ids["kept"]
        assert s.trades == ()
        seen["closed"] = (kept.size, kept.exit_price, kept.exit_time, kept.pl, kept.sl, kept.tp)

    r = run(bars(ROWS), {0: lambda s, sym: s.buy(size=10, sl_trail=5.0), 1: keep, 2: look_and_half,
                         3: look, 4: lambda s, sym: (look(s, sym), s.close()), 6: read_closed})
    # Half closed at bar 3's open (103): 10 -> 5, read live by the object kept at bar 1.
    assert seen["size"] == [10.0, 5.0, 5.0]
    # The trailing stop where it has moved to at each read, as the book's own row says.
    assert all(mine == book for mine, book in seen["sl"])
    assert seen["sl"][-1][0] > seen["sl"][0][0] > 95.0
    # Closed at bar 5's open (105): the object reads as that close, no exits left.
    last = r.trades.iloc[-1]
    assert seen["closed"] == (5.0, 105.0, T(5), pytest.approx(last.pnl, **EXACT), None, None)
    assert last.pnl == pytest.approx(5 * (105 - 100), **EXACT)
    # After the run: as last read in it.
    assert (r.strategy.ids["kept"].size, r.strategy.ids["kept"].sl) == (5.0, None)


@pytest.mark.parametrize("seed", range(4))
def test_trades_read_every_bar_are_the_books_open_trades(seed):
    """Random entries, exits set and cancelled, closes of one trade or half of it, the
    position closed whole, on three symbols: at every bar, inside ``next`` (before and
    after acting) and in ``on_tick``, ``self.trades`` (kept between reads while no trade
    opens or closes) gives the book's open trades as ``open_trades`` lists them, each
    with its units and exits as they are then, and an open trade stays the same object."""
    from conftest import walk

    n, names = 400, ["B", "A", "C"]
    b = walk(seed, n, len(names))
    frames = {}
    for k, name in enumerate(names):
        index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
        frames[name] = pd.DataFrame({c: b[c][:, k] for c in ("open", "high", "low", "close")}
                                    | {"volume": 1.0}, index=index)
    actions = {name: draw_actions(seed + 7 * k, n) for k, name in enumerate(names)}
    rng = np.random.default_rng(seed)
    closes_whole = set(rng.choice(n, 12).tolist())
    checks = {"reads": 0, "open": 0}
    objects: dict[int, tickstep.Trade] = {}

    def same_as_book(s, sym):  # type: ignore[no-untyped-def]
        trades = s.trades
        symbols = [sym] if sym is not None else s.symbols
        book = [(name, row) for name in symbols for row in s.open_trades(name)]
        got = [(t.symbol, t.id, t.size, t.entry_price, t.entry_bar, t.sl, t.tp) for t in trades]
        want = [(name, r["trade_id"], r["direction"] * r["size"], r["entry_price"], r["entry_bar"],
                 r["sl"], r["tp"]) for name, r in book]
        assert got == want
        for t in trades:
            assert objects.setdefault(t.id, t) is t
        checks["reads"] += 1
        checks["open"] += len(got)

    class Checked(tickstep.Strategy):
        def next(self, symbol):  # type: ignore[no-untyped-def]
            i = len(self.data) - 1
            same_as_book(self, symbol)
            if i in closes_whole:
                self.close()
            else:
                act(self, actions[symbol][i], self.price(), "sl" if i % 2 else "tp")
            same_as_book(self, symbol)

        def on_tick(self):  # type: ignore[no-untyped-def]
            same_as_book(self, None)

    tickstep.Backtest(frames, Checked, cash=1e6, commission=0.001).run()
    assert checks["reads"] == 2 * n * len(names) + n
    assert checks["open"] > 2_000, "too few open trades to compare"


def test_a_trade_carries_the_tag_and_id_of_the_order_that_opened_it(bars, run):
    seen = {}

    def entries(s, sym):
        s.ids["first"] = s.buy(size=10, tag=7)

    def second(s, sym):
        s.ids["second"] = s.buy(size=5)  # no tag: 0

    def read(s, sym):
        seen["open"] = [(t.id, t.tag) for t in s.trades]
        seen["rows"] = [(r["trade_id"], r["tag"]) for r in s.open_trades()]
        s.trades[0].close(0.5)

    def reverse(s, sym):
        s.ids["reversal"] = s.sell(size=20, tag=-3)

    def read_closed(s, sym):
        seen["closed"] = [(t.size, t.tag) for t in s.closed_trades]
        seen["short"] = [(t.size, t.tag) for t in s.trades]

    r = run(bars(ROWS), {0: entries, 1: second, 2: read, 4: reverse, 6: read_closed})
    first_id, second_id = seen["open"][0][0], seen["open"][1][0]
    assert seen["open"] == [(first_id, 7), (second_id, 0)]
    assert seen["rows"] == seen["open"]
    # Half of the first closed at bar 3's open; the reversal at bar 5's open closes the
    # other 5 of it and the second's 5, and opens a short of 10 tagged as the sell.
    assert seen["closed"] == [(5.0, 7), (5.0, 7), (5.0, 0)]
    assert seen["short"] == [(-10.0, -3)]
    trades = r.trades
    assert trades["tag"].tolist() == [7, 7, 0]
    ids = r.strategy.ids
    assert trades["entry_order"].tolist() == [ids["first"], ids["first"], ids["second"]]
    # The entry order of each row is an order of the log that filled, with that tag.
    orders = r.orders.set_index("order_id")
    assert orders.loc[trades["entry_order"], "tag"].tolist() == trades["tag"].tolist()
    assert (orders.loc[trades["entry_order"], "status"] == "filled").all()


@pytest.mark.parametrize("seed", range(3))
def test_closed_trades_read_every_bar_are_the_results_trades_so_far(seed):
    """Read at every bar (inside ``next``, before and after acting, and in ``on_tick``)
    on random trade management over three symbols: ``self.closed_trades`` is the same
    tuple while nothing closed since, the running symbol's are every symbol's of that
    symbol in the same order, and the last read of all is the results' trades, part for
    part."""
    from conftest import walk

    n, names = 300, ["B", "A", "C"]
    b = walk(seed, n, len(names))
    index = pd.date_range("2024-01-02 09:30", periods=n, freq="1min", tz="UTC")
    frames = {name: pd.DataFrame({c: b[c][:, k] for c in ("open", "high", "low", "close")}
                                 | {"volume": 1.0}, index=index) for k, name in enumerate(names)}
    actions = {name: draw_actions(seed + 5 * k, n) for k, name in enumerate(names)}
    seen: dict[str, object] = {"same": 0}

    class Reading(tickstep.Strategy):
        def next(self, symbol):  # type: ignore[no-untyped-def]
            first = self.closed_trades
            assert self.closed_trades is first  # nothing closed between two reads
            i = len(self.data) - 1
            act(self, actions[symbol][i], self.price(), "sl" if i % 2 else "tp")
            assert self.closed_trades is first  # orders placed close nothing before they fill
            seen[symbol] = first

        def on_tick(self):  # type: ignore[no-untyped-def]
            # (Nothing fills between a tick's next calls and its on_tick.)
            every = self.closed_trades
            for name in names:
                assert list(seen[name]) == [t for t in every if t.symbol == name]
            seen["last"] = every

    r = tickstep.Backtest(frames, Reading, cash=1e6, commission=0.001).run()
    last = seen["last"]
    assert len(last) == len(r.trades) > 30
    got = [(t.symbol, t.id, abs(t.size), t.exit_price, t.tag, t.pl) for t in last]
    want = [(str(x.symbol), x.trade_id, x.size, x.exit_price, x.tag, pytest.approx(x.pnl, rel=1e-12))
            for x in r.trades.itertuples()]
    assert got == want
