"""Tests of tickstep.sizing: each sizer's arithmetic worked out by hand, and sizing inside
a backtest from marked-to-market equity."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import tickstep
from hypothesis import given, settings
from hypothesis import strategies as st
from tickstep.sizing import (
    FixedSize,
    Limits,
    PercentOfEquity,
    RiskPerTrade,
    SizingRequest,
    round_to_lot,
)


def request(**changes) -> SizingRequest:
    """A buy of X at 50 with 10,000 equity, all cash, nothing open; ``changes`` override."""
    fields = {
        "symbol": "X",
        "side": 1,
        "price": 50.0,
        "stop_loss": None,
        "equity": 10_000.0,
        "cash": 10_000.0,
        "position": 0.0,
        "open_positions": 0,
        "gross_exposure": 0.0,
    }
    fields.update(changes)
    return SizingRequest(**fields)


# ---- round_to_lot ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "units, lot, expected",
    [
        (12.7, None, 12.7),  # no lot size: fractional units
        (12.7, 5, 10),  # down to whole lots
        (14.999, 5, 10),
        (15, 5, 15),
        (0.3, 0.1, 0.3),  # 0.3 / 0.1 = 2.9999999999999996 in floats: still 3 lots
        (4.9, 5, 0),
        (-3, None, 0),  # never negative
        (-7, 5, 0),
        (math.inf, None, 0),
        (math.nan, 5, 0),
    ],
)
def test_round_to_lot(units, lot, expected):
    assert round_to_lot(units, lot) == pytest.approx(expected, abs=1e-12)


# ---- FixedSize ---------------------------------------------------------------------------------


def test_fixed_size():
    assert FixedSize(7)(request()) == 7
    assert FixedSize(7, lot_size=5)(request()) == 5
    assert FixedSize(7)(request(price=1e6, equity=1.0)) == 7  # whatever the money
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="units must be positive"):
            FixedSize(bad)


# ---- PercentOfEquity ---------------------------------------------------------------------------


def test_percent_of_equity():
    # 0.5 x 10,000 / 40 = 125
    assert PercentOfEquity(0.5)(request(price=40.0)) == 125
    # 0.5 x 10,000 / 33 = 151.51... -> 150 in lots of 10
    assert PercentOfEquity(0.5, lot_size=10)(request(price=33.0)) == 150
    # equity, not cash: 0.25 x 12,000 / 60 = 50 (cash is 2,000)
    assert PercentOfEquity(0.25)(request(price=60.0, equity=12_000.0, cash=2_000.0)) == 50
    assert PercentOfEquity(0.5)(request(equity=0.0)) == 0
    assert PercentOfEquity(0.5)(request(equity=-5.0)) == 0
    assert PercentOfEquity(0.5)(request(price=0.0)) == 0
    with pytest.raises(ValueError, match="fraction must be > 0"):
        PercentOfEquity(0)


# ---- RiskPerTrade ------------------------------------------------------------------------------


def test_risk_per_trade_arithmetic():
    # 1% of 20,000 = 200 at risk; stop 2 away -> 100 units
    assert RiskPerTrade(0.01)(request(equity=20_000.0, stop_loss=48.0)) == 100
    # a short: stop above the price, same distance
    assert RiskPerTrade(0.01)(request(side=-1, equity=20_000.0, stop_loss=52.0)) == 100
    # cap: at most 10% of 20,000 = 2,000 of value = 40 units at 50
    capped = RiskPerTrade(0.01, max_fraction=0.1)
    assert capped(request(equity=20_000.0, stop_loss=48.0)) == 40
    # 1.3% of 20,000 / 2 = 130 -> 125 in lots of 25
    assert RiskPerTrade(0.013, lot_size=25)(request(equity=20_000.0, stop_loss=48.0)) == 125
    # an irregular distance: 0.02 x 10,000 / 0.75 = 266.67
    assert RiskPerTrade(0.02)(request(stop_loss=49.25)) == pytest.approx(200 / 0.75)


def test_risk_per_trade_without_a_measurable_risk():
    sizer = RiskPerTrade(0.01)
    assert sizer(request(stop_loss=None)) == 0
    assert sizer(request(stop_loss=math.nan)) == 0
    assert sizer(request(stop_loss=50.0)) == 0  # zero distance
    assert sizer(request(stop_loss=48.0, equity=0.0)) == 0
    with_fallback = RiskPerTrade(0.01, fallback=FixedSize(3))
    assert with_fallback(request(stop_loss=None)) == 3
    assert with_fallback(request(stop_loss=48.0)) == 50  # 100 / 2: fallback unused
    for bad in (0, 1, 1.5, -0.1):
        with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
            RiskPerTrade(bad)


# ---- Limits ------------------------------------------------------------------------------------


def test_limits_max_positions():
    limited = Limits(FixedSize(10), max_positions=2)
    assert limited(request(open_positions=1)) == 10
    assert limited(request(open_positions=2)) == 0  # a third position: refused
    assert limited(request(open_positions=5)) == 0
    # adding to (or reducing) a position already open is not a new position
    assert limited(request(open_positions=2, position=30.0)) == 10
    assert limited(request(open_positions=2, position=30.0, side=-1)) == 10


def test_limits_max_gross_exposure():
    limited = Limits(FixedSize(100), max_gross_exposure=1.5)
    # room: 1.5 x 10,000 - 12,000 = 3,000 of value = 60 units at 50
    assert limited(request(gross_exposure=12_000.0)) == 60
    assert limited(request(gross_exposure=1_000.0)) == 100  # room 14,000: not binding
    assert limited(request(gross_exposure=20_000.0)) == 0  # no room left
    # a new short is exposure too
    assert limited(request(side=-1, gross_exposure=12_000.0)) == 60
    # shrunk, then rounded to lots: 3,000 / 70 = 42.86 -> 40 in lots of 10
    lots = Limits(FixedSize(100), max_gross_exposure=1.5, lot_size=10)
    assert lots(request(price=70.0, gross_exposure=12_000.0)) == 40


def test_limits_wraps_any_sizer():
    limited = Limits(RiskPerTrade(0.01), max_positions=3, max_gross_exposure=1.0)
    # risk: 100 / 2 = 50 units = 2,500 of value; room 10,000 - 8,000 = 2,000 -> 40 units
    assert limited(request(stop_loss=48.0, gross_exposure=8_000.0, open_positions=2)) == 40


def test_limits_caps_adding_to_a_position_not_reducing_it():
    limited = Limits(FixedSize(100), max_gross_exposure=1.5)
    # long 200 at 50 (10,000) plus 2,000 elsewhere: room 3,000 -> buying more: 60 units
    adding = request(position=200.0, gross_exposure=12_000.0)
    assert limited(adding) == 60
    # selling 100 of the 200 lowers exposure: not capped
    reducing = request(side=-1, position=200.0, gross_exposure=12_000.0)
    assert limited(reducing) == 100


# ---- inside a backtest: equity marked to market --------------------------------------------------


class Script(tickstep.Strategy):
    """Runs ``actions[(symbol, i)](self)`` at a symbol's i-th bar; keeps the order ids."""

    actions = None

    def init(self):
        self.ids = []

    def next(self, symbol):
        action = (self.actions or {}).get((symbol, len(self.data()) - 1))
        if action is not None:
            self.ids.append(action(self))


class Recording:
    """A sizer that keeps every request it sees."""

    def __init__(self, sizer):
        self.sizer, self.requests = sizer, []

    def __call__(self, req):
        self.requests.append(req)
        return self.sizer(req)


def day(rows):
    return pd.DataFrame(
        rows,
        columns=["open", "high", "low", "close"],
        index=pd.date_range("2024-01-01", periods=len(rows), freq="D", tz="UTC"),
        dtype=float,
    ).assign(volume=1000.0)


# A: 100 for a day, then 120. B: always 50.
MARKET = {
    "A": day(
        [(100, 101, 99, 100), (100, 101, 99, 100), (120, 121, 119, 120), (120, 121, 119, 120)]
    ),
    "B": day([(50, 51, 49, 50)] * 4),
}


def run_after_a_moves(sizer, a_side=1, **settings):
    """Trade 50 A at 100 (explicit size, filled at bar 1's open); at bar 2, A at 120, place
    a B order with a stop at 45 sized by ``sizer``."""
    order_a = (lambda s: s.buy("A", size=50)) if a_side > 0 else (lambda s: s.sell("A", size=50))
    actions = {("A", 0): order_a, ("B", 2): lambda s: s.buy("B", sl=45.0)}
    recording = Recording(sizer)
    result = tickstep.Backtest(MARKET, Script, cash=10_000, sizer=recording, **settings).run(
        actions=actions
    )
    return result, recording.requests


def test_risk_sizing_uses_marked_to_market_equity_long():
    result, (req,) = run_after_a_moves(RiskPerTrade(0.01))
    # cash 10,000 - 50 x 100 = 5,000; A marked at 120: equity 5,000 + 6,000 = 11,000
    # (cash + entry values would say 10,000)
    assert (req.equity, req.cash, req.gross_exposure) == (11_000, 5_000, 6_000)
    assert req.equity != req.cash + 50 * 100
    assert (req.symbol, req.side, req.price, req.stop_loss) == ("B", 1, 50, 45)
    assert (req.position, req.open_positions) == (0, 1)
    b = result.orders[result.orders.symbol == "B"].iloc[0]
    assert b["size"] == pytest.approx(0.01 * 11_000 / (50 - 45))  # 22, not 20


def test_risk_sizing_uses_marked_to_market_equity_short():
    result, (req,) = run_after_a_moves(RiskPerTrade(0.01), a_side=-1)
    # short 50 at 100: cash 15,000; A at 120 marks the short at -6,000: equity 9,000
    assert (req.equity, req.cash) == (9_000, 15_000)
    b = result.orders[result.orders.symbol == "B"].iloc[0]
    assert b["size"] == pytest.approx(0.01 * 9_000 / 5)  # 18, not 20


def test_percent_of_equity_and_lots_in_a_backtest():
    result, _ = run_after_a_moves(PercentOfEquity(0.3))
    assert result.orders[result.orders.symbol == "B"].iloc[0]["size"] == pytest.approx(66)
    # 0.3 x 11,000 / 50 = 66
    result, _ = run_after_a_moves(RiskPerTrade(0.01, lot_size=5))
    assert result.orders[result.orders.symbol == "B"].iloc[0]["size"] == 20  # 22 -> 20


def test_limits_in_a_backtest_refuse_a_second_position():
    result, (req,) = run_after_a_moves(Limits(RiskPerTrade(0.01), max_positions=1))
    assert req.open_positions == 1
    assert list(result.orders.symbol) == ["A"]  # 0 units: the B order is not placed
    result, _ = run_after_a_moves(Limits(RiskPerTrade(0.01), max_positions=2))
    assert list(result.orders.symbol) == ["A", "B", "B"]  # B's entry and its stop-loss leg


def test_limits_count_entries_placed_in_the_same_tick():
    buy_all = {("A", 0): lambda st: st.buy("A"), ("B", 0): lambda st: st.buy("B")}
    result = tickstep.Backtest(
        MARKET, Script, cash=10_000, sizer=Limits(FixedSize(1), max_positions=1)
    ).run(actions=buy_all)
    assert len(result.orders) == 1


# ---- sized at the fill: PercentOfEquity(at="fill") ----------------------------------------------


def b_at_fill(fraction, **settings):
    """`run_after_a_moves` with the B order sized at its fill (bar 3's open, B at 50; A
    opens at 120 there too), without a stop-loss."""
    actions = {("A", 0): lambda s: s.buy("A", size=50), ("B", 2): lambda s: s.buy("B")}
    sizer = PercentOfEquity(fraction, at="fill", lot_size=settings.pop("lot_size", None))
    result = tickstep.Backtest(MARKET, Script, cash=10_000, sizer=sizer, **settings).run(actions=actions)
    return result.orders[result.orders.symbol == "B"].iloc[0], result


def test_at_the_fill_a_share_of_the_buying_power_then():
    # At bar 3's open: cash 5,000, A (50 units) worth 6,000, equity 11,000. Its margin
    # (leverage 1) holds 6,000: 5,000 is free, the buying power. Half of it at B's 50: 50.
    b, _ = b_at_fill(0.5)
    assert (b["status"], b["size"], b["filled_size"]) == ("filled", 50.0, 50.0)
    # Leverage 2 (margin 0.5): A holds 3,000, 8,000 free, 16,000 of buying power: 160.
    b, _ = b_at_fill(0.5, margin=0.5)
    assert b["filled_size"] == 160.0
    # A commission of 0.1% makes a unit cost 50.05: 2,500 / 50.05 = 49.95..., 49 in lots of 1.
    b, result = b_at_fill(0.5, commission=0.001, lot_size=1)
    assert b["filled_size"] == 49.0
    assert result.fills.iloc[-1]["commission"] == pytest.approx(49 * 50 * 0.001)
    # At placement the same fraction is of equity (11,000 / 2 / 50 = 110 units), which the
    # 5,000 free cannot pay for: rejected.
    actions = {("A", 0): lambda s: s.buy("A", size=50), ("B", 2): lambda s: s.buy("B")}
    placed = tickstep.Backtest(MARKET, Script, cash=10_000, sizer=PercentOfEquity(0.5),
                               on_reject="ignore").run(actions=actions)
    b = placed.orders[placed.orders.symbol == "B"].iloc[0]
    assert (b["size"], b["status"]) == (110.0, "rejected")


X = day([(100, 100, 100, 100), (103, 104, 101, 102), (102, 102, 102, 102)])


def x_at_fill(place, **settings):
    """One order placed by ``place(strategy)`` at X's first bar (close 100), sized at its
    fill with half of 10,000; returns its record and the run."""
    result = tickstep.Backtest({"X": X}, Script, cash=10_000,
                               sizer=PercentOfEquity(0.5, at="fill"), **settings).run(actions={("X", 0): place})
    return result.orders.iloc[0], result


def test_at_the_fill_its_price_after_slippage_not_the_close_before():
    # A market buy: placed at the close 100 (it reads as 50 units until it fills), filled
    # at the next open 103: 5,000 / 103.
    b, result = x_at_fill(lambda s: s.buy())
    assert b["filled_size"] == pytest.approx(5_000 / 103, rel=1e-15)
    # A stop at 102 that the open gaps through fills at 103 too; 10 basis points of
    # slippage make it 103.103 a unit.
    b, _ = x_at_fill(lambda s: s.buy(stop=102), slippage=10)
    assert b["fill_price"] == pytest.approx(103 * 1.001)
    assert b["filled_size"] == pytest.approx(5_000 / (103 * 1.001), rel=1e-15)
    # An order good for a number of bars (placed by the other path into the core) too.
    b, _ = x_at_fill(lambda s: s.buy(valid=2))
    assert b["filled_size"] == pytest.approx(5_000 / 103, rel=1e-15)
    # A limit fills at its own price, 102 (the bar opens above it at 103, low 101).
    b, _ = x_at_fill(lambda s: s.buy(limit=102))
    assert (b["fill_price"], b["filled_size"]) == (102.0, pytest.approx(5_000 / 102, rel=1e-15))


def test_at_the_fill_nothing_affordable_is_rejected_for_margin():
    # Half of 10,000 buys no whole unit at 103 in lots of 10,000.
    result = tickstep.Backtest({"X": X}, Script, cash=10_000, on_reject="ignore",
                               sizer=PercentOfEquity(0.5, lot_size=10_000, at="fill")
                               ).run(actions={("X", 0): lambda s: s.buy()})
    b = result.orders.iloc[0]
    assert (b["status"], b["reason"], b["filled_size"]) == ("rejected", "insufficient margin", 0.0)
    assert result.fills.empty


def test_at_the_fill_refusals():
    with pytest.raises(ValueError, match="at='later': must be 'placement' or 'fill'"):
        PercentOfEquity(0.5, at="later")
    with pytest.raises(ValueError, match="lot_size=inf with at='fill'"):
        PercentOfEquity(0.5, lot_size=math.inf, at="fill")
    with pytest.raises(ValueError, match="Limits cannot wrap"):
        Limits(PercentOfEquity(0.5, at="fill"), max_positions=2)

    class Mine(PercentOfEquity):
        pass

    with pytest.raises(TypeError, match="Mine: a subclass of PercentOfEquity cannot size at='fill'"):
        Mine(0.5, at="fill")
    assert Mine(0.5).at == "placement"


def test_at_the_fill_orders_of_one_moment_share_the_buying_power_before_its_increases():
    # A and B bought at their first bar, filled together at the next open (A 100, B 50):
    # each sized on the 10,000 of buying power before either increase.
    both = {("A", 0): lambda s: s.buy("A"), ("B", 0): lambda s: s.buy("B")}

    def run(fraction, market=MARKET):
        return tickstep.Backtest(market, Script, cash=10_000, on_reject="ignore",
                                 sizer=PercentOfEquity(fraction, at="fill")).run(actions=both).orders

    orders = run(0.5)
    assert list(orders["filled_size"]) == [50.0, 100.0]  # 5,000 / 100 and 5,000 / 50
    # 0.6 each: 6,000 of A (placed first, first in turn), then of B what the fill's margin
    # check still allows: the 4,000 left, 80 units (not 6,000 / 50).
    orders = run(0.6)
    assert list(orders["status"]) == ["filled", "filled"]
    assert list(orders["filled_size"]) == [60.0, 80.0]
    # Visited first, B is placed first and first in turn: 6,000 / 50, and A the 4,000 left.
    orders = run(0.6, {"B": MARKET["B"], "A": MARKET["A"]}).set_index("symbol")
    assert (orders.loc["B", "filled_size"], orders.loc["A", "filled_size"]) == (120.0, 40.0)


def test_at_the_fill_an_entry_inside_the_bar_is_sized_after_the_opens_increases():
    # A bought at the open (100) and a limit buy of B at 48 reached inside the same bar
    # (open 50, low 47): the open's increase comes first, and B's share is of what it left.
    market = {"A": day([(100, 101, 99, 100)] * 3), "B": day([(50, 51, 49, 50), (50, 51, 47, 49), (49, 50, 48, 49)])}
    actions = {("A", 0): lambda s: s.buy("A"), ("B", 0): lambda s: s.buy("B", limit=48.0)}
    orders = tickstep.Backtest(market, Script, cash=10_000, sizer=PercentOfEquity(0.5, at="fill")
                               ).run(actions=actions).orders.set_index("symbol")
    assert orders.loc["A", "filled_size"] == 50.0  # 5,000 / 100 at the open
    assert (orders.loc["B", "fill_price"], orders.loc["B", "filled_size"]) == (48.0, pytest.approx(2_500 / 48, rel=1e-15))


@pytest.mark.parametrize("order", [("C", "A"), ("A", "C")], ids=["held first", "entered first"])
@pytest.mark.parametrize("signals", [False, True], ids=["next", "signals mode"])
def test_at_the_fill_a_rotation_buys_with_the_cash_its_sale_frees_whatever_the_symbols_order(
        order, signals):
    # C (100) bought with 95% at bar 1's open; at bar 3 sold and A (50) bought, both
    # filling at bar 4's open. The sale comes first (reductions before increases) and A is
    # sized on the cash after it: 95% of 10,000 at 50 is 190 units, whichever of the two
    # symbols the backtest visits first (A used to be sized before C's sale when it came
    # first: 9.5 units).
    market = {s: day([{"C": (100, 100, 100, 100), "A": (50, 50, 50, 50)}[s]] * 6) for s in order}
    if signals:
        index = market["A"].index
        entries = pd.DataFrame(False, index=index, columns=list(order))
        exits = entries.copy()
        entries.loc[index[1], "C"] = exits.loc[index[3], "C"] = entries.loc[index[3], "A"] = True
        bt = tickstep.Backtest(market, cash=10_000)
        result = bt.run_signals(entries=entries, exits=exits, size=0.95, size_type="percent_at_fill")
    else:
        actions = {("C", 1): lambda s: s.buy("C"), ("C", 3): lambda s: s.close("C"),
                   ("A", 3): lambda s: s.buy("A")}
        result = tickstep.Backtest(market, Script, cash=10_000,
                                   sizer=PercentOfEquity(0.95, at="fill")).run(actions=actions)
    fills = result.fills.set_index(["symbol", "side"])["size"]
    assert (fills[("C", "buy")], fills[("C", "sell")], fills[("A", "buy")]) == (95.0, 95.0, 190.0)
    assert result.orders["status"].eq("filled").all()


@pytest.mark.parametrize("order", [("A", "C"), ("C", "A")], ids=["reversed first", "sold first"])
def test_at_the_fill_a_reversal_is_sized_on_the_account_before_the_batch_whatever_the_order(order):
    # A shorted (20 at 100) and C bought (50 at 100) at bar 1's open: cash 7,000. At bar
    # 3, C is sold and A bought with all the buying power at its fill, both filling at
    # bar 4's open (C 120, A 100). A's buy first covers the short, so its size must be
    # known when the book reaches it, before its increase: it is sized on the account as
    # the batch found it, marked at these opens: equity 7,000 + 6,000 - 2,000 = 11,000,
    # margin (leverage 1) 6,000 + 2,000, 3,000 free: 30 units, 20 covering the short and
    # 10 long. C's sale, reached before or after A in the walk as the symbols' order
    # has it, does not count either way (it used to when C came first: 90 units).
    rows = {"A": [(100, 100, 100, 100)] * 5, "C": [(100, 100, 100, 100)] * 3 + [(120, 120, 120, 120)] * 2}
    market = {s: day(rows[s]) for s in order}
    actions = {("A", 0): lambda s: s.sell("A", size=20), ("C", 0): lambda s: s.buy("C", size=50),
               ("C", 2): lambda s: s.close("C"), ("A", 2): lambda s: s.buy("A")}
    result = tickstep.Backtest(market, Script, cash=10_000, sizer=PercentOfEquity(1.0, at="fill")
                               ).run(actions=actions)
    fills = result.fills.set_index(["symbol", "side"])
    assert fills.loc[("A", "buy"), "size"] == 30.0
    assert fills.loc[("C", "sell"), ["size", "price"]].tolist() == [50.0, 120.0]
    assert result.positions.loc["A", "size"] == 10.0
    assert result.equity_frame["equity"].iloc[-1] == 11_000.0


@pytest.mark.parametrize("order", [("C", "A"), ("A", "C")], ids=["held first", "entered first"])
def test_at_the_fill_under_a_volume_limit_a_rotation_is_sized_after_the_sale_then_limited(order):
    # The rotation above with half of each bar's volume to fill: A's buy is sized when
    # its increase executes, after C's sale (190 units at 50, whatever the symbols'
    # order), then takes its share of the bar's volume: 100 of A's 200 at bar 4, the
    # rest of 90 working on and filling at bar 5 (it used to be sized when the book
    # reached it: 9.5 units when A came first).
    market = {s: day([{"C": (100, 100, 100, 100), "A": (50, 50, 50, 50)}[s]] * 6) for s in order}
    market["A"]["volume"] = 200.0
    actions = {("C", 1): lambda s: s.buy("C"), ("C", 3): lambda s: s.close("C"),
               ("A", 3): lambda s: s.buy("A")}
    result = tickstep.Backtest(market, Script, cash=10_000, volume_limit=0.5,
                               sizer=PercentOfEquity(0.95, at="fill")).run(actions=actions)
    a = result.fills[result.fills.symbol == "A"]
    assert list(zip(a["time"].dt.day, a["size"])) == [(5, 100.0), (6, 90.0)]
    orders = result.orders.set_index("order_id")
    bought = orders[(orders.symbol == "A") & (orders.parent_id == 0)].iloc[0]
    assert (bought["size"], bought["filled_size"]) == (190.0, 100.0)
    assert result.orders["status"].eq("filled").all()


def test_at_the_fill_a_size_given_by_modify_is_kept():
    # A limit at 97 placed at the first bar to be sized at its fill, given 7 units at the
    # second (low 99: not reached), fills at the third's open, 95: 7 units, not
    # 5,000 / 95.
    y = day([(100, 100, 100, 100), (100, 101, 99, 100), (95, 96, 94, 95)])

    def later(s):
        s.modify(s.ids[0], size=7)

    result = tickstep.Backtest({"X": y}, Script, cash=10_000, sizer=PercentOfEquity(0.5, at="fill")).run(
        actions={("X", 0): lambda s: s.buy(limit=97), ("X", 1): later})
    order = result.orders.iloc[0]
    assert (order["status"], order["fill_price"], order["filled_size"]) == ("filled", 95.0, 7.0)
    # Without the change: 5,000 / 95.
    result = tickstep.Backtest({"X": y}, Script, cash=10_000, sizer=PercentOfEquity(0.5, at="fill")).run(
        actions={("X", 0): lambda s: s.buy(limit=97)})
    assert result.orders.iloc[0]["filled_size"] == pytest.approx(5_000 / 95, rel=1e-15)


def test_at_the_fill_a_bar_without_volume_leaves_it_to_be_sized_at_the_next():
    # Under a volume limit a bar with no volume fills nothing of it: it works on, and is
    # sized where it fills, at the third bar's open (95): 5,000 / 95, not 5,000 / 103.
    rows = day([(100, 100, 100, 100), (103, 104, 101, 102), (95, 96, 94, 95)])
    rows["volume"] = [1_000.0, 0.0, 1_000.0]
    result = tickstep.Backtest({"X": rows}, Script, cash=10_000, volume_limit=0.5,
                               sizer=PercentOfEquity(0.5, at="fill")).run(actions={("X", 0): lambda s: s.buy()})
    order = result.orders.iloc[0]
    assert (order["status"], order["fill_price"]) == ("filled", 95.0)
    assert order["filled_size"] == pytest.approx(5_000 / 95, rel=1e-15)


def x_sized(fraction, place=lambda s: s.buy(), **settings):
    """`x_at_fill` with another fraction (and lot size in ``settings``)."""
    sizer = PercentOfEquity(fraction, at="fill", lot_size=settings.pop("lot_size", None))
    result = tickstep.Backtest({"X": X}, Script, cash=10_000, sizer=sizer, on_reject="ignore",
                               **settings).run(actions={("X", 0): place})
    return result.orders.iloc[0], result


def test_at_the_fill_the_commission_is_taken_off_the_money_whatever_its_schedule():
    # Half of 10,000 at the next open, 103, with the commission inside it: u × 103 +
    # fee(u) = 5,000, for each part of a schedule.
    cases = [
        # A fixed fee per fill comes off the money first: (5,000 - 3) / 103.
        ({"commission_fixed": 3.0}, (5_000 - 3) / 103),
        # With a rate too: (5,000 - 3) / (103 × 1.001).
        ({"commission": 0.001, "commission_fixed": 3.0}, (5_000 - 3) / (103 * 1.001)),
        # A minimum above what the rate comes to (about 5): the minimum is the fee.
        ({"commission": 0.001, "commission_min": 10.0}, (5_000 - 10) / 103),
        # A cap below the rate: 0.2% of the notional is the fee.
        ({"commission": 0.01, "commission_cap": 0.002}, 5_000 / (103 * 1.002)),
        # A fee per unit adds to each unit's price.
        ({"commission_per_unit": 0.05}, 5_000 / 103.05),
    ]
    for schedule, units in cases:
        b, result = x_sized(0.5, **schedule)
        assert (b["status"], b["fill_price"]) == ("filled", 103.0), schedule
        assert b["filled_size"] == pytest.approx(units, rel=1e-14), schedule
        fee = result.fills.iloc[0]["commission"]
        assert b["filled_size"] * 103 + fee == pytest.approx(5_000, rel=1e-14), schedule
    # All of the cash with a fixed fee: filled, the cash spent to the cent (it was
    # rejected for margin when the fee was spread over a rough number of units).
    b, result = x_sized(1.0, commission_fixed=5.0)
    assert b["status"] == "filled"
    assert float(result.equity_frame["cash"].iloc[-1]) == pytest.approx(0.0, abs=1e-9)
    # In whole units: 48 units (48 × 103 + 3 = 4,947; 49 would cost 5,050).
    b, _ = x_sized(0.5, commission_fixed=3.0, lot_size=1)
    assert b["filled_size"] == 48.0


def test_at_the_fill_never_more_than_the_margin_check_allows():
    # Leverage 2, all of the buying power (20,000) with 0.1% commission: the units whose
    # cost with the fee is 20,000 (193.98...) would leave the position above twice the
    # equity the fee leaves (the check holds the fee against the equity the margin comes
    # from). It buys what the check allows: u × 103 / 2 + u × 0.103 = 10,000.
    b, result = x_sized(1.0, commission=0.001, leverage=2.0)
    units = 10_000 / (103 / 2 + 0.103)
    assert (b["status"], b["filled_size"]) == ("filled", pytest.approx(units, rel=1e-14))
    fee = result.fills.iloc[0]["commission"]
    assert units * 103 == pytest.approx(2 * (10_000 - fee), rel=1e-12)  # the check's edge
    # Half of it is within the check: 10,000 / (103 × 1.001), the fee counted once.
    b, _ = x_sized(0.5, commission=0.001, leverage=2.0)
    assert b["filled_size"] == pytest.approx(10_000 / (103 * 1.001), rel=1e-14)
    # A buy stop at 103.5, above the open, with 10 basis points of slippage: the check
    # values the units at 103.5, where the market is when it fills, and the slippage
    # (0.1035 a unit) is lost from equity at once, so with leverage 2 it allows
    # u × (103.5 / 2 + 0.1035) = 10,000, fewer than the 20,000 / 103.6035 of buying power.
    b, _ = x_sized(1.0, lambda s: s.buy(stop=103.5), leverage=2.0, slippage=10)
    assert (b["status"], b["fill_price"]) == ("filled", pytest.approx(103.6035, rel=1e-15))
    assert b["filled_size"] == pytest.approx(10_000 / (103.5 / 2 + 0.1035), rel=1e-13)
    # Without slippage the two agree: 20,000 / 103.5.
    b, _ = x_sized(1.0, lambda s: s.buy(stop=103.5), leverage=2.0)
    assert b["filled_size"] == pytest.approx(20_000 / 103.5, rel=1e-14)
    # A margin per unit (20 a unit to open): the buying power is 10,000 / 20 units, each
    # worth 103; all of it with 0.1% commission would need 20.103 a unit of the 10,000.
    per_unit = {"X": {"initial_margin_per_unit": 20.0, "maintenance_margin_per_unit": 10.0}}
    b, _ = x_sized(0.5, margin_by_symbol=per_unit)
    assert b["filled_size"] == pytest.approx(250.0, rel=1e-14)  # 25,750 of buying power / 103
    b, _ = x_sized(1.0, margin_by_symbol=per_unit, commission=0.001)
    assert (b["status"], b["filled_size"]) == ("filled", pytest.approx(10_000 / 20.103, rel=1e-14))


@settings(max_examples=120, deadline=None)
@given(rate=st.sampled_from([0.0, 0.0005, 0.003]), fixed=st.sampled_from([0.0, 1.0, 40.0]),
       per_unit=st.sampled_from([0.0, 0.02]), minimum=st.sampled_from([0.0, 2.0, 25.0]),
       cap=st.sampled_from([None, 0.001, 0.01]), leverage=st.sampled_from([1.0, 2.0, 5.0]),
       fraction=st.floats(0.02, 1.0), lot=st.sampled_from([None, 1.0, 10.0]),
       slippage=st.sampled_from([0.0, 7.0]), stop=st.booleans(), opening=st.floats(20.0, 300.0))
def test_at_the_fill_the_most_units_the_money_and_the_margin_check_allow(
        rate, fixed, per_unit, minimum, cap, leverage, fraction, lot, slippage, stop, opening):
    # From flat with 10,000: the units bought are the most (in lots) whose cost with the
    # commission is within the fraction of the buying power (10,000 × leverage) and whose
    # fill the margin check passes (the position at the price matched, the open or the
    # stop, within leverage × the equity left after the fee and the slippage); a lot more
    # breaks one of the two. Worked out here from the schedule's definition.
    level = opening * 1.003
    y = day([(100, 100, 100, 100), (opening, level * 1.01, opening * 0.99, opening), (opening,) * 4])
    schedule = {"commission": rate, "commission_fixed": fixed, "commission_per_unit": per_unit,
                "commission_min": minimum, "commission_cap": cap}
    sizer = PercentOfEquity(fraction, at="fill", lot_size=lot)
    place = (lambda s: s.buy(stop=level)) if stop else (lambda s: s.buy())
    result = tickstep.Backtest({"X": y}, Script, cash=10_000, sizer=sizer, leverage=leverage,
                               slippage=slippage, on_reject="ignore", **schedule).run(actions={("X", 0): place})
    order = result.orders.iloc[0]
    price = (level if stop else opening) * (1 + slippage / 1e4)

    def fee(u):
        f = u * price * rate + u * per_unit + fixed
        f = max(f, minimum) if minimum > 0 else f
        return min(f, cap * u * price) if cap is not None else f

    def allowed(u):
        spends = u * price + fee(u) <= fraction * 10_000 * leverage * (1 + 1e-9)
        market = level if stop else opening  # where the market is when it fills
        checks = u * market <= leverage * (10_000 - fee(u) - u * (price - market)) * (1 + 1e-9)
        return spends and checks

    step = lot if lot is not None else None
    if order["status"] == "rejected":
        assert order["reason"] == "insufficient margin"
        assert not allowed(step if step is not None else 1e-6)
        return
    assert order["status"] == "filled"
    units = order["filled_size"]
    assert order["fill_price"] == pytest.approx(price, rel=1e-12)
    assert result.fills.iloc[0]["commission"] == pytest.approx(fee(units), rel=1e-9, abs=1e-9)
    assert allowed(units)
    assert not allowed(units + step if step is not None else units * (1 + 1e-7))
    if step is not None:
        assert units / step == pytest.approx(round(units / step), abs=1e-9)


def test_at_the_fill_a_short_by_a_stop_below_the_open_takes_all_of_the_cash():
    # A sell stop at 102.5, below the open (103), filled inside the bar: the check values
    # the short at 102.5, where the market is then, so all of the 10,000 sells
    # 10,000 / 102.5 (valued at the open the short would have needed 10,000 / 103.5).
    b, result = x_sized(1.0, lambda s: s.sell(stop=102.5))
    assert (b["status"], b["fill_price"]) == ("filled", 102.5)
    assert b["filled_size"] == pytest.approx(10_000 / 102.5, rel=1e-14)
    # The same units placed as a size: filled, where the old valuation refused them.
    units = 10_000 / 102.5
    result = tickstep.Backtest({"X": X}, Script, cash=10_000, on_reject="ignore").run(
        actions={("X", 0): lambda s: s.sell(size=units, stop=102.5)})
    assert result.orders.iloc[0]["status"] == "filled"
