"""backtrader: ``bt.indicators.SMA``, explicit crossover test in ``next()``, 1 unit, market
orders filled at the next bar's open (its default), no observers (``stdstats=False``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

NAME = "backtrader"
STYLE = "event-driven, Python"


def prepare(df: pd.DataFrame, fast: int, slow: int) -> Callable[[], dict[str, int]]:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        params = (("fast", fast), ("slow", slow))

        def __init__(self) -> None:
            self.fast = bt.indicators.SMA(self.data.close, period=self.p.fast)
            self.slow = bt.indicators.SMA(self.data.close, period=self.p.slow)
            self.buys = self.sells = self.closed = 0

        def notify_order(self, order: Any) -> None:
            if order.status == order.Completed:
                if order.isbuy():
                    self.buys += 1
                else:
                    self.sells += 1

        def notify_trade(self, trade: Any) -> None:
            if trade.isclosed:
                self.closed += 1

        def next(self) -> None:
            f, s = self.fast[0], self.slow[0]
            if f > s:
                if self.fast[-1] <= self.slow[-1] and not self.position:
                    self.buy(size=1)
            elif f < s and self.fast[-1] >= self.slow[-1] and self.position:
                self.close()

    frame = df.copy()
    frame.index = frame.index.tz_localize(None)

    def run() -> dict[str, Any]:
        cerebro = bt.Cerebro(stdstats=False)
        cerebro.adddata(bt.feeds.PandasData(dataname=frame))
        cerebro.addstrategy(SmaCross)
        cerebro.broker.setcash(1e9)
        cerebro.broker.setcommission(commission=0.0)
        strat = cerebro.run()[0]
        return {"buys": strat.buys, "sells": strat.sells, "closed": strat.closed}

    return run
