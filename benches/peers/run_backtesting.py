"""backtesting.py: SMA via ``self.I`` (pandas rolling mean), explicit crossover test in
``next()``, 1 unit, market orders filled at the next bar's open (its default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

NAME = "backtesting.py"
STYLE = "event-driven, Python"


def _sma(values: Any, n: int) -> Any:
    return pd.Series(values).rolling(n).mean().to_numpy()


def prepare(df: pd.DataFrame, fast: int, slow: int) -> Callable[[], dict[str, int]]:
    import warnings

    from backtesting import Backtest, Strategy

    class SmaCross(Strategy):
        n_fast = fast
        n_slow = slow

        def init(self) -> None:
            self.fast = self.I(_sma, self.data.Close, self.n_fast)
            self.slow = self.I(_sma, self.data.Close, self.n_slow)
            self.buys = self.sells = 0

        def next(self) -> None:
            f, s = self.fast[-1], self.slow[-1]
            if f > s:
                if self.fast[-2] <= self.slow[-2] and not self.position:
                    self.buy(size=1)
            elif f < s and self.fast[-2] >= self.slow[-2] and self.position:
                self.position.close()

    bt = Backtest(df, SmaCross, cash=1e9, commission=0.0, trade_on_close=False)

    def run() -> dict[str, Any]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            stats = bt.run()
        trades = stats["_trades"]
        still_open = 1 if stats["_strategy"].position else 0
        return {
            "buys": len(trades) + still_open,
            "sells": len(trades),
            "closed": len(trades),
        }

    return run
