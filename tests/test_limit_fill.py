"""When a price reaching a limit fills it (``limit_fill=``), hand-computed: at a touch
(the default: a buy limit at 100 fills when the low is 100) or only through it (the low
below 100). Bars are daily from 2024-01-01 (bar i is day i + 1).
"""

from __future__ import annotations

import pandas as pd
import pytest
import tickstep
from conftest import make_bars, run_script
from test_engine_fills import buy, sell

BOTH = pytest.mark.parametrize("limit_fill", ["touch", "through"])


def fills(r):
    return list(zip(r.fills["time"].dt.day, r.fills["side"], r.fills["size"], r.fills["price"],
                    strict=True))


# Day 2 trades from 99 to 103 after opening at 101; day 3 from 97 to 104.
DATA = make_bars([(100, 101, 99, 100), (101, 103, 99, 102), (100, 104, 97, 98)])


def test_a_limit_at_the_low_fills_at_a_touch_not_through():
    touch = run_script(DATA, {0: buy(10, limit=99)})
    assert fills(touch) == [(2, "buy", 10, 99.0)]
    # Through: day 2's low of 99 only touched it; day 3's 97 went through.
    through = run_script(DATA, {0: buy(10, limit=99)}, limit_fill="through")
    assert fills(through) == [(3, "buy", 10, 99.0)]
    # A sell at day 2's high alike.
    assert fills(run_script(DATA, {0: sell(10, limit=103)}, limit_fill="through")) == [
        (3, "sell", 10, 103.0)]


@BOTH
def test_a_limit_the_price_passes_fills_at_its_limit_either_way(limit_fill):
    assert fills(run_script(DATA, {0: buy(10, limit=99.5)}, limit_fill=limit_fill)) == [
        (2, "buy", 10, 99.5)]


def test_an_open_at_the_limit_fills_at_a_touch_and_a_gap_through_it_either_way():
    # Day 2 opens at 101: a buy limit at 101 fills at that open at a touch; through, only
    # when the bar then trades below it, at the limit.
    assert fills(run_script(DATA, {0: buy(10, limit=101)})) == [(2, "buy", 10, 101.0)]
    assert fills(run_script(DATA, {0: buy(10, limit=101)}, limit_fill="through")) == [
        (2, "buy", 10, 101.0)]
    never = make_bars([(100, 101, 99, 100), (101, 103, 101, 102)])
    assert run_script(never, {0: buy(10, limit=101)}, limit_fill="through").fills.empty
    # A gap through the limit fills at the better open under both.
    for rule in ("touch", "through"):
        assert fills(run_script(DATA, {0: buy(10, limit=101.5)}, limit_fill=rule)) == [
            (2, "buy", 10, 101.0)]


def test_a_take_profit_at_the_high_exits_at_a_touch_not_through():
    # Bought at day 2's open 101 with a take-profit at 103, day 2's high: a touch exits
    # there; through, day 3's high of 104 does.
    script = {0: buy(10, tp=103)}
    assert fills(run_script(DATA, script))[1] == (2, "sell", 10, 103.0)
    assert fills(run_script(DATA, script, limit_fill="through"))[1] == (3, "sell", 10, 103.0)


def test_a_stop_limit_triggered_at_its_limit_rests_through():
    # A buy stop at 103 with a limit of 103: day 2's high touches the stop, the trigger
    # price equals the limit. At a touch it fills there; through, it rests as a limit at
    # 103 and day 3 (opening at 100, below it) fills at that open.
    script = {0: buy(10, stop=103, limit=103)}
    assert fills(run_script(DATA, script)) == [(2, "buy", 10, 103.0)]
    assert fills(run_script(DATA, script, limit_fill="through")) == [(3, "buy", 10, 100.0)]


def test_a_limit_at_the_close_fills_at_a_touch_not_through():
    # Day 2 closes at 102.
    script = {0: buy(10, limit=102, tif="close")}
    assert fills(run_script(DATA, script)) == [(2, "buy", 10, 102.0)]
    r = run_script(DATA, script, limit_fill="through")
    assert r.fills.empty
    assert r.orders["reason"].tolist() == ["at the close: not filled at its bar's close"]


def test_signals_mode_takes_profits_by_the_same_rule():
    # Entered at day 2's open 101 with a take-profit at 103 (a price per bar): day 2's
    # high touches it, day 3's passes it.
    index = DATA.index
    entries = pd.Series([True, False, False], index=index)
    exits = entries & False
    for rule, day in (("touch", 2), ("through", 3)):
        bt = tickstep.Backtest(DATA, limit_fill=rule)
        r = bt.run_signals(entries=entries, exits=exits, size=10, size_type="amount",
                           tp_price=pd.Series(103.0, index=index))
        sold = r.fills[r.fills["side"] == "sell"]
        assert sold["time"].dt.day.tolist() == [day] and sold["price"].tolist() == [103.0]
