"""Risk-per-trade sizing from inside a strategy, through the public sizing API."""

from __future__ import annotations

from tickstep.sizing import RiskPerTrade, SizingRequest
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

    The request is built the way the engine builds one for a backtest's sizer, so the
    shipped :class:`~tickstep.sizing.RiskPerTrade` does the arithmetic.
    """
    symbols = strategy.symbols
    sizes = [strategy.position(s).size for s in symbols]
    request = SizingRequest(
        symbol=symbol,
        side=side,
        price=entry,
        stop_loss=stop,
        equity=strategy.equity,
        cash=strategy.cash,
        position=strategy.position(symbol).size,
        open_positions=sum(1 for u in sizes if u != 0),
        gross_exposure=sum(abs(u) * strategy.price(s) for s, u in zip(symbols, sizes) if u != 0),
    )
    sizer = RiskPerTrade(fraction, max_fraction=max_fraction, lot_size=lot_size)
    return float(sizer(request))
