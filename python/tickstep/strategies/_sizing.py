"""Risk-per-trade sizing from inside a strategy, through the public sizing API."""

from __future__ import annotations

from tickstep.sizing import RiskPerTrade
from tickstep.strategy import Strategy

__all__ = ["risk_size"]


def risk_size(
    strategy: Strategy,
    symbol: str,
    side: int,
    entry: float,
    stop: float,
    fraction: float,
    *,
    max_fraction: float | None = None,
    lot_size: float | None = None,
) -> float:
    """Units that lose ``fraction`` of current (marked-to-market) equity if ``stop`` is hit.

    The request is the one the engine gives a backtest's sizer (O(1)), so the shipped
    :class:`~tickstep.sizing.RiskPerTrade` does the arithmetic.
    """
    request = strategy.sizing_request(symbol, side, price=entry, sl=stop)
    sizer = RiskPerTrade(fraction, max_fraction=max_fraction, lot_size=lot_size)
    return float(sizer(request))
