"""order_target and rebalance: targets from marked-to-market equity, whole lots, minimum
trade value, reductions placed first; checked against hand-computed fills and cash."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep.sizing import order_to_target, rebalance_orders


def bars(opens, closes):
    index = pd.date_range("2024-01-02", periods=len(closes), freq="D", tz="UTC")
    opens, closes = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame({"open": opens, "high": np.maximum(opens, closes), "low": np.minimum(opens, closes),
                         "close": closes, "volume": 1.0}, index=index)


#            day:    0    1    2    3    4
DATA = {
    "AAA": bars([37, 36, 39, 41, 41], [37, 38, 40, 41, 41]),
    "BBB": bars([120, 121, 123, 124, 126], [120, 122, 125, 126, 126]),
    "CCC": bars([79, 79, 79, 81, 82], [79, 79, 80, 82, 82]),
}


class Rotate(tickstep.Strategy):
    def init(self):
        self.placed = []

    def on_tick(self):
        day = (self.now - int(DATA["AAA"].index[0].value)) // (86_400 * 10**9)
        if day == 0:
            self.placed.append(self.rebalance({"AAA": 0.5, "BBB": 0.3}, lot_size=10))
        elif day == 2:
            self.placed.append(self.rebalance({"BBB": 0.2, "CCC": 0.7}, lot_size={"BBB": 10, "CCC": 25}))
        elif day == 4:
            self.placed.append(self.rebalance({"BBB": 0.2, "CCC": 0.7}, lot_size={"BBB": 10, "CCC": 25}))
            self.placed.append(self.rebalance({"BBB": 0.2, "CCC": 0.7}, min_value=1000))


def test_a_rebalance_with_lot_sizes_by_hand():
    result = tickstep.Backtest(DATA, Rotate, cash=100_000).run()
    fills = result.fills
    got = [(str(f.symbol), f.side, f.size, f.price, f.time.day) for f in fills.itertuples()]
    # Day 0, equity 100,000: AAA 0.5 x 100,000 / 37 = 1351.4 -> 1350 (lots of 10),
    # BBB 0.3 x 100,000 / 120 = 250; filled at day 1's opens (36, 121).
    # Cash after: 100,000 - 1350 x 36 - 250 x 121 = 21,150.
    # Day 2, equity at the closes: 21,150 + 1350 x 40 + 250 x 125 = 106,400.
    # BBB 0.2 x 106,400 / 125 = 170.2 -> 170: sell 80; CCC 0.7 x 106,400 / 80 = 931 -> 925
    # (lots of 25): buy 925; AAA not in the mapping: sell 1350. Filled at day 3's opens.
    assert got == [
        ("AAA", "buy", 1350.0, 36.0, 3), ("BBB", "buy", 250.0, 121.0, 3),
        ("AAA", "sell", 1350.0, 41.0, 5), ("BBB", "sell", 80.0, 124.0, 5), ("CCC", "buy", 925.0, 81.0, 5),
    ]
    placed = result.strategy.placed
    assert list(placed[0]) == ["AAA", "BBB"]
    assert list(placed[1]) == ["BBB", "AAA", "CCC"]  # reductions placed first
    # Day 4: already on target to the lot (172.6 -> 170, 928.5 -> 925), and without lots
    # the differences (2.6 x 126 = 333, 3.5 x 82 = 284) are under the minimum of 1,000.
    assert placed[2] == {} and placed[3] == {}
    # Cash 21,150 + 1350 x 41 + 80 x 124 - 925 x 81 = 11,495; equity at day 4's close
    # 11,495 + 170 x 126 + 925 x 82 = 108,765.
    eq = result.equity_frame
    assert eq["cash"].iloc[-1] == pytest.approx(11_495.0, abs=1e-9)
    assert eq["equity"].iloc[-1] == pytest.approx(108_765.0, abs=1e-9)
    aaa = result.trades[result.trades["symbol"] == "AAA"].iloc[0]
    assert aaa["pnl"] == pytest.approx(1350 * (41 - 36))


class Targets(tickstep.Strategy):
    """Day 0: AAA to 25% of equity in lots of 10; BBB short 3,000 of value; day 1: AAA to
    size 500 then, same tick, 600 (the first order is cancelled); CCC 20 units."""

    def init(self):
        self.ids = []

    def on_tick(self):
        day = (self.now - int(DATA["AAA"].index[0].value)) // (86_400 * 10**9)
        if day == 0:
            self.ids.append(self.order_target("AAA", percent=0.25, lot_size=10))
            self.ids.append(self.order_target("BBB", value=-3_000))
        elif day == 1:
            self.ids.append(self.order_target("AAA", size=500))
            self.ids.append(self.order_target("AAA", size=600))
            self.ids.append(self.order_target("CCC", size=20))
        elif day == 3:
            self.ids.append(self.order_target("BBB", size=0, min_value=10**9))  # closing: always placed
            self.ids.append(self.order_target("CCC", size=21, min_value=100))  # 1 x 82 < 100: skipped


def test_order_target_by_hand():
    result = tickstep.Backtest(DATA, Targets, cash=100_000).run()
    got = [(str(f.symbol), f.side, f.size, f.price, f.time.day) for f in result.fills.itertuples()]
    # Day 0: 0.25 x 100,000 / 37 = 675.7 -> 670; -3,000 / 120 = -25. Filled at day 1's open.
    # Day 1: AAA 670 -> 600: sell 70 (the order for 500 was replaced); CCC buy 20.
    assert got == [
        ("AAA", "buy", 670.0, 36.0, 3), ("BBB", "sell", 25.0, 121.0, 3),
        ("AAA", "sell", 70.0, 39.0, 4), ("CCC", "buy", 20.0, 79.0, 4),
        ("BBB", "buy", 25.0, 126.0, 6),
    ]
    orders = result.orders.set_index("order_id")
    ids = result.strategy.ids
    assert orders.loc[ids[2], "status"] == "cancelled"
    assert ids[-1] is None


def test_targets_as_pure_functions():
    assert order_to_target(0, 675.7, 37, lot_size=10) == 670
    assert order_to_target(100, -47, 10, lot_size=10) == -140  # flip: target rounds towards 0
    assert order_to_target(100, 100.4, 10) == pytest.approx(0.4)
    assert order_to_target(100, 104, 10, min_value=50) == 0  # 4 x 10 < 50
    assert order_to_target(100, 0, 10, min_value=10**9) == -100  # closing is always placed
    orders = rebalance_orders({"X": 0.5, "Y": -0.2}, {"X": 10.0, "Y": 0.0, "Z": 5.0},
                              {"X": 10.0, "Y": 20.0, "Z": 1.0}, 1_000.0)
    # X 0.5 x 1000 / 10 = 50: buy 40; Y -0.2 x 1000 / 20 = -10: sell 10; Z closed first.
    assert orders == [("Z", -5.0), ("X", 40.0), ("Y", -10.0)]
    kept = rebalance_orders({"X": 0.5}, {"X": 10.0, "Z": 5.0}, {"X": 10.0, "Z": 1.0}, 1_000.0,
                            close_others=False)
    assert kept == [("X", 40.0)]


@pytest.mark.parametrize("call, message", [
    (lambda s: s.order_target("AAA"), "exactly one of size=, value= or percent="),
    (lambda s: s.order_target("AAA", size=1, value=2), "got size, value"),
    (lambda s: s.order_target("AAA", percent=float("nan")), "percent must be a finite number"),
    (lambda s: s.order_target("AAA", size=1, lot_size=0), "lot_size=0"),
    (lambda s: s.rebalance({"AAA": "half"}), "weight must be a finite number"),
    (lambda s: s.rebalance({"AAPL": 0.5}), "unknown symbol 'AAPL'"),
    (lambda s: s.rebalance({"AAA": 0.5}, min_value=-1), "min_value=-1"),
])
def test_bad_targets_are_refused(call, message):
    class Bad(tickstep.Strategy):
        def on_tick(self):
            call(self)

    with pytest.raises((TypeError, ValueError, KeyError), match=message):
        tickstep.Backtest(DATA, Bad, cash=100_000).run()


class TargetInNext(tickstep.Strategy):
    """order_target() without a symbol, inside next(): the running symbol's target."""

    def next(self, symbol):
        if symbol == "BBB" and self.now == int(DATA["BBB"].index[0].value):
            self.order_target(percent=0.3, lot_size=1)


def test_order_target_without_a_symbol_trades_the_running_symbol():
    result = tickstep.Backtest(DATA, TargetInNext, cash=100_000).run()
    got = [(str(f.symbol), f.side, f.size, f.price) for f in result.fills.itertuples()]
    # 0.3 x 100,000 / 120 = 250 BBB, filled at day 1's open (121); not CCC, the last symbol.
    assert got == [("BBB", "buy", 250.0, 121.0)]


class MonthlyRotation(tickstep.Strategy):
    """Day 0: all in the last symbol; day 2: all in the first (its buy sorts before the sale)."""

    first, last = "AAA", "ZZZ"

    def on_tick(self):
        day = (self.now - int(DATA["AAA"].index[0].value)) // (86_400 * 10**9)
        if day == 0:
            self.rebalance({self.last: 0.95})
        elif day == 2:
            self.rebalance({self.first: 0.95})


@pytest.mark.parametrize("first, last", [("AAA", "ZZZ"), ("ZZZ", "AAA")])
def test_a_rotation_pays_for_its_purchase_with_its_sale_whatever_the_names(first, last):
    """At leverage 1 the purchase fits only after the sale: fills at one instant execute
    reductions first, so the rotation never depends on how the symbols sort."""
    data = {first: DATA["AAA"], last: DATA["BBB"]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RejectedOrderWarning
        result = tickstep.Backtest(data, MonthlyRotation, cash=100_000, commission=0.001).run(
            first=first, last=last)
    fills = [(str(f.symbol), f.side, f.time.day) for f in result.fills.itertuples()]
    # Day 0: 0.95 x 100,000 / 120 = 791.7 units of the BBB prices; day 2 sells them all
    # and buys the AAA prices with the proceeds (both fill at day 3's opens, the 5% left
    # out paying for commission and AAA's higher open).
    assert [f[:2] for f in fills] == [(last, "buy"), (last, "sell"), (first, "buy")]
    assert result.stats["# Orders Rejected"] == 0
    sold = result.fills.iloc[1]
    bought = result.fills.iloc[2]
    assert sold["size"] == pytest.approx(0.95 * 100_000 / 120)
    equity_day2 = result.equity_frame["equity"].iloc[2]
    assert bought["size"] == pytest.approx(0.95 * equity_day2 / 40)
