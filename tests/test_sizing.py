"""Tests of tickstep.sizing: each sizer's arithmetic worked out by hand, and sizing inside
a backtest from marked-to-market equity."""

from __future__ import annotations

import math

import pandas as pd
import pytest
import tickstep
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
