"""The order each order comes from (``result.orders["parent_id"]``): a bracket's legs and
a trade's exits set later (``trade.sl = ...``) name the order that opened the trade; the
rest of an order under ``volume_limit`` names the order it is the rest of; orders the
strategy placed, and the broker's own closes, name none (0).
"""

from __future__ import annotations

import pandas as pd
import tickstep
from conftest import run_script
from test_engine_fills import buy
from test_opening_closing_orders import DATA, bars


def parents(r):
    return dict(zip(r.orders["order_id"], r.orders["parent_id"], strict=True))


def test_a_brackets_legs_name_their_entry():
    # Order 1 a plain buy; order 2 a buy with a stop-loss and a take-profit: its legs
    # (3 and 4) come from it when it fills.
    r = run_script(DATA, {0: lambda s, sym: (s.buy(size=1), s.buy(size=2, sl=90.0, tp=120.0))})
    o = r.orders.set_index("order_id")
    assert o["role"].tolist() == ["entry", "entry", "stop_loss", "take_profit"]
    assert parents(r) == {1: 0, 2: 0, 3: 2, 4: 2}


def test_a_trades_exit_set_later_names_the_order_that_opened_it():
    def protect(s, sym):
        for trade in s.trades:
            trade.sl = 94.0

    r = run_script(DATA, {0: buy(5), 1: protect})
    assert parents(r) == {1: 0, 2: 1}
    assert r.orders["role"].tolist() == ["entry", "stop_loss"]


def test_each_rest_names_the_order_it_is_the_rest_of():
    # 250 units at a tenth of 1,000 a bar: 100, then a rest (2) of 150 filling 100, then
    # its rest (3) of 50.
    data = bars((100, 101, 99, 100), (100, 101, 99, 100), (100, 101, 99, 100),
                (100, 101, 99, 100), (100, 101, 99, 100))
    r = run_script(data, {0: buy(250)}, volume_limit=0.1, cash=100_000)
    assert r.orders["size"].tolist() == [250, 150, 50]
    assert parents(r) == {1: 0, 2: 1, 3: 2}
    assert r.fills["size"].tolist() == [100, 100, 50]


def test_a_margin_calls_closes_name_no_parent():
    data = {"X": bars((100, 100, 100, 100), (100, 100, 100, 100), (60, 60, 60, 60),
                      (60, 60, 60, 60))}
    r = tickstep.Backtest(data, _BuyOnce, cash=10_000, leverage=2,
                          maintenance_margin=0.5).run()
    calls = r.orders[r.orders["reason"].str.startswith("margin call")]
    assert len(calls) == 1 and calls["parent_id"].tolist() == [0]


class _BuyOnce(tickstep.Strategy):
    def init(self):
        self.buy("X", size=190)


def test_signals_mode_names_its_brackets_entries_too():
    index = DATA.index
    entries = pd.Series([True, False, False, False], index=index)
    none = entries & False
    r = tickstep.Backtest(DATA, cash=10_000).run_signals(entries=entries, exits=none, size=5,
                                                        size_type="amount", sl=0.05)
    legs = r.orders[r.orders["role"] == "stop_loss"]
    entry = r.orders[r.orders["role"] == "entry"]
    assert len(legs) == 1 and legs["parent_id"].tolist() == entry["order_id"].tolist()
