"""Orders that take bars to reach the market (``order_delay``), hand-computed: an order
placed at a bar can first fill ``order_delay`` bars after the symbol's next bar, every
kind of order alike, and bracket legs protect at once. Bars are daily from 2024-01-01.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import run_script, walk
from hypothesis import given, settings
from hypothesis import strategies as st

DATA = pd.DataFrame(
    [
        (100, 101, 99, 100),   # Jan 1: orders placed here
        (102, 106, 95, 103),   # Jan 2: the next bar
        (104, 105, 90, 96),    # Jan 3
        (97, 99, 93, 98),      # Jan 4
        (99, 112, 98, 111),    # Jan 5
        (110, 111, 109, 110),  # Jan 6
    ],
    columns=["open", "high", "low", "close"],
    index=pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC"),
    dtype=float,
).assign(volume=1_000.0)


def day(n: int) -> pd.Timestamp:
    return pd.Timestamp(f"2024-01-0{n}", tz="UTC")


def fills(r):
    return list(zip(r.fills["time"], r.fills["side"], r.fills["size"], r.fills["price"],
                    r.fills["role"], strict=True))


def at_first_bar(action):
    return {0: action}


@pytest.mark.parametrize(("delay", "filled"), [(0, (2, 102.0)), (1, (3, 104.0)), (3, (5, 99.0))])
def test_a_market_order_fills_at_the_open_delay_bars_after_the_next(delay, filled):
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=10)), order_delay=delay)
    assert fills(r) == [(day(filled[0]), "buy", 10.0, filled[1], "entry")]
    # Equity: cash 10,000 less the cost, the units marked at each close from the fill on.
    cost = 10 * filled[1]
    assert r.equity.iloc[-1] == pytest.approx(10_000 - cost + 10 * 110.0, abs=1e-9)


def test_a_limit_does_not_fill_in_the_bars_it_waits_through():
    # A buy limit at 96: Jan 2's low (95) and Jan 3's (90) reach it; with a delay of 2 it
    # may first fill on Jan 4, which opens at 97 and trades down to 93: filled at 96.
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=5, limit=96)), order_delay=2)
    assert fills(r) == [(day(4), "buy", 5.0, 96.0, "entry")]
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=5, limit=96)), order_delay=0)
    assert fills(r) == [(day(2), "buy", 5.0, 96.0, "entry")]


def test_valid_bars_count_from_the_first_bar_it_can_fill_on():
    # valid=1 with a delay of 1: only Jan 3 (low 90) may fill a buy limit at 92.
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=5, limit=92, valid=1)),
                   order_delay=1)
    assert fills(r) == [(day(3), "buy", 5.0, 92.0, "entry")]
    # valid=1 with a delay of 2: only Jan 4 (low 93), which does not reach it: expired.
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=5, limit=92, valid=1)),
                   order_delay=2)
    assert fills(r) == []
    order = r.orders.iloc[0]
    assert order["status"] == "expired" and order["closed_time"] == day(4)


def test_orders_at_the_open_and_close_fill_at_the_bar_they_reach():
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=2, tif="opg")), order_delay=1)
    assert fills(r) == [(day(3), "buy", 2.0, 104.0, "entry")]
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=2, tif="close")), order_delay=1)
    assert fills(r) == [(day(3), "buy", 2.0, 96.0, "entry")]


def test_a_day_order_still_ends_with_its_day():
    # Placed on Jan 1 for the day, it waits until Jan 3 and the day ends first.
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=2, tif="day")), order_delay=1)
    assert fills(r) == []
    assert r.orders.iloc[0]["status"] == "expired"


def test_bracket_legs_protect_at_once_and_a_close_waits_too():
    # Bought on Jan 3 at 104 (delay 1) with a stop-loss at 92: Jan 3's own low (90) is
    # before the fill's open? No: the fill is at Jan 3's open, and the leg watches that
    # bar's range after it, as without a delay: stopped at 92 on Jan 3.
    r = run_script(DATA, at_first_bar(lambda s, sym: s.buy(size=4, sl=92)), order_delay=1)
    assert fills(r) == [(day(3), "buy", 4.0, 104.0, "entry"),
                        (day(3), "sell", 4.0, 92.0, "stop_loss")]
    # A close placed on Jan 3 (the position bought at Jan 2's open) fills on Jan 5.
    script = {0: lambda s, sym: s.buy(size=4), 2: lambda s, sym: s.position.close()}
    r = run_script(DATA, script, order_delay=1)
    assert fills(r) == [(day(3), "buy", 4.0, 104.0, "entry"),
                        (day(5), "sell", 4.0, 99.0, "close")]


def test_a_change_of_a_working_order_applies_from_the_next_bar():
    # A buy limit at 80 placed on Jan 1 (delay 1: working from Jan 3), moved to 97 on
    # Jan 3: the order is at the market already, and its new price works from Jan 4 (low
    # 93), as without a delay: filled at 97.
    def place(s, sym):
        s.ids["limit"] = s.buy(size=1, limit=80)

    def move(s, sym):
        s.modify(s.ids["limit"], limit=97)

    script = {0: place, 2: move}
    for delay in (0, 1):
        assert fills(run_script(DATA, script, order_delay=delay)) == [
            (day(4), "buy", 1.0, 97.0, "entry")]


def test_refused_with_fills_at_the_close_naming_both():
    with pytest.raises(tickstep.ConfigError, match="order_delay=1 with trade_on_close=True"):
        tickstep.Backtest(DATA, tickstep.Strategy, order_delay=1, trade_on_close=True)


def test_signals_mode_refuses_it_saying_why():
    frames = {"A": DATA}
    entries = pd.DataFrame({"A": [True, False, False, False, False, False]}, index=DATA.index)
    bt = tickstep.Backtest(frames, order_delay=1)
    with pytest.raises(tickstep.ConfigError, match="shift the signals by the bars instead"):
        bt.run_signals(entries=entries, exits=~entries)


@settings(max_examples=20, deadline=None, derandomize=True)
@given(seed=st.integers(0, 100_000), delay=st.integers(1, 3))
def test_a_delay_is_the_same_strategy_deciding_later(seed, delay):
    # Delaying every order of a strategy by n bars gives the fills of the same strategy
    # deciding n bars later with no delay: the decisions here depend on the bar index
    # alone (never on what is held), so the two place the same orders, one bar apart; the
    # broker's rejections, sizes and marks then meet the same account at the same bars.
    prices = walk(seed, 120, 3)
    index = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    frames = {f"S{k}": pd.DataFrame({c: prices[c][:, k] for c in ("open", "high", "low", "close")},
                                    index=index).assign(volume=1_000.0) for k in range(3)}
    rng = np.random.default_rng(seed)
    plan = {(f"S{k}", i): rng.choice(["buy", "sell", "limit", ""], p=[0.1, 0.1, 0.1, 0.7])
            for k in range(3) for i in range(120)}

    def scripted(shift):
        class Plan(tickstep.Strategy):
            def next(self, symbol):
                i = len(self.data) - 1 - shift
                what = plan.get((symbol, i), "") if i >= 0 else ""
                if what == "buy":
                    self.buy(size=2)
                elif what == "sell":
                    self.sell(size=2)
                elif what == "limit":  # at the decision bar's close, good for 3 bars
                    self.buy(size=1, limit=prices["close"][i, int(symbol[1])], valid=3)
        return Plan

    delayed = tickstep.Backtest(frames, scripted(0), order_delay=delay, cash=100_000).run()
    later = tickstep.Backtest(frames, scripted(delay), cash=100_000).run()
    assert len(delayed.fills) > 20
    pd.testing.assert_frame_equal(delayed.fills.drop(columns="order_id"),
                                  later.fills.drop(columns="order_id"))
    pd.testing.assert_series_equal(delayed.equity, later.equity)


def test_the_core_refuses_it_with_fills_at_the_close_too():
    from test_config import _tiny_market

    with pytest.raises(tickstep.ConfigError, match="order_delay = 2 with fills at the close"):
        tickstep._core.Engine(_tiny_market(), fill_at="close", order_delay=2)
    tickstep._core.Engine(_tiny_market(), fill_at="next_open", order_delay=2)
