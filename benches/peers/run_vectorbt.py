"""vectorbt (vectorised): ``vbt.MA`` for the averages, the crossover as array comparisons,
``Portfolio.from_signals`` with signals shifted one bar and filled at that bar's open,
1 unit, no fees. Timed warm: numba compiles on the first call (reported apart)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

NAME = "vectorbt"
STYLE = "vectorised (numba)"


def prepare(df: pd.DataFrame, fast: int, slow: int) -> Callable[[], dict[str, int]]:
    import vectorbt as vbt

    close, open_ = df["Close"], df["Open"]

    def run() -> dict[str, Any]:
        f = vbt.MA.run(close, fast).ma.to_numpy()
        s = vbt.MA.run(close, slow).ma.to_numpy()
        above, below = np.zeros(len(f), bool), np.zeros(len(f), bool)
        # Cross at bar t: fast > slow at t and fast <= slow at t-1 (NaN compares False).
        above[1:] = (f[1:] > s[1:]) & (f[:-1] <= s[:-1])
        below[1:] = (f[1:] < s[1:]) & (f[:-1] >= s[:-1])
        # Decided on bar t's close, filled at bar t+1's open.
        entries = np.zeros_like(above)
        exits = np.zeros_like(below)
        entries[1:], exits[1:] = above[:-1], below[:-1]
        pf = vbt.Portfolio.from_signals(
            close,
            pd.Series(entries, close.index),
            pd.Series(exits, close.index),
            price=open_,
            size=1.0,
            fees=0.0,
            init_cash=1e9,
            freq="1min",
        )
        side = pf.orders.records["side"]
        return {
            "buys": int((side == 0).sum()),
            "sells": int((side == 1).sum()),
            "closed": int(pf.trades.closed.count()),
        }

    run()  # numba compiles here (cached on disk for later processes)
    return run
