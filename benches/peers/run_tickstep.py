"""tickstep: the shipped SmaCross (engine rolling means, ``next`` per bar), 1 unit
(``FixedSize(1)``), default next-open fills. A naive index is read as UTC."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

NAME = "tickstep"
STYLE = "event-driven, Rust loop + Python next()"


def prepare(df: pd.DataFrame, fast: int, slow: int) -> Callable[[], dict[str, int]]:
    import tickstep
    from tickstep.strategies import SmaCross

    bt = tickstep.Backtest(
        {"PEER": df}, SmaCross, cash=1e9, commission=0.0, sizer=tickstep.FixedSize(1)
    )

    def run() -> dict[str, Any]:
        result = bt.run(fast=fast, slow=slow)
        side = result.fills["side"]
        return {
            "buys": int((side == "buy").sum()),
            "sells": int((side == "sell").sum()),
            "closed": len(result.trades),
        }

    return run
