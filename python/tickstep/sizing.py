"""Position sizing: how many units an order is for when the strategy gives no size.

A sizer is any callable taking a :class:`SizingRequest` and returning units (``0`` means
"do not trade"). Every figure in the request is current: equity is marked to market at
the latest prices, never at entry prices. Writing one takes five lines::

    class HalfEquity:
        def __call__(self, req):
            return 0.5 * req.equity / req.price

Shipped sizers: :class:`FixedSize`, :class:`PercentOfEquity`, :class:`RiskPerTrade`, and
:class:`Limits`, which wraps any sizer with caps on open positions and gross exposure.
Each rounds down to ``lot_size`` units when one is given (fractional units otherwise).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

__all__ = [
    "FixedSize",
    "Limits",
    "PercentOfEquity",
    "RiskPerTrade",
    "Sizer",
    "SizingRequest",
    "round_to_lot",
]


@dataclass(frozen=True, slots=True)
class SizingRequest:
    """What a sizer knows when an order is placed.

    Attributes
    ----------
    symbol : str
    side : int
        +1 for a buy, -1 for a sell.
    price : float
        The expected entry price: the order's limit or stop, else the latest close.
    stop_loss : float or None
        The order's stop-loss price, if it has one.
    equity : float
        Current equity, every position marked at its symbol's latest price.
    cash : float
    position : float
        Signed units already held in ``symbol``.
    open_positions : int
        Number of symbols with a non-zero position.
    gross_exposure : float
        Sum of ``|units| x price`` over all positions.
    pending_entries : int
        Flat symbols with an entry order placed but not filled yet (positions on their way;
        this order itself not included).
    """

    symbol: str
    side: int
    price: float
    stop_loss: float | None
    equity: float
    cash: float
    position: float
    open_positions: int
    gross_exposure: float
    pending_entries: int = 0


class Sizer(Protocol):
    def __call__(self, request: SizingRequest) -> float: ...


def round_to_lot(units: float, lot_size: float | None) -> float:
    """Round ``units`` down (towards zero) to a whole number of lots; no-op without a lot size."""
    if not lot_size or not math.isfinite(units):
        return max(units, 0.0) if math.isfinite(units) else 0.0
    return max(math.floor(units / lot_size + 1e-9) * lot_size, 0.0)


@dataclass(frozen=True)
class FixedSize:
    """Always the same number of units."""

    units: float
    lot_size: float | None = None

    def __post_init__(self) -> None:
        if not (self.units > 0 and math.isfinite(self.units)):
            raise ValueError(f"FixedSize units must be positive, got {self.units!r}")

    def __call__(self, req: SizingRequest) -> float:
        return round_to_lot(self.units, self.lot_size)


@dataclass(frozen=True)
class PercentOfEquity:
    """Units worth ``fraction`` of current equity at the expected entry price.

    The default sizer of :class:`~tickstep.Backtest` is ``PercentOfEquity(0.95)``: the 5%
    buffer absorbs the gap to the next open and commission, so a full-size order is rarely
    refused for lack of buying power.
    """

    fraction: float
    lot_size: float | None = None

    def __post_init__(self) -> None:
        if not (0 < self.fraction and math.isfinite(self.fraction)):
            raise ValueError(f"PercentOfEquity fraction must be > 0, got {self.fraction!r}")

    def __call__(self, req: SizingRequest) -> float:
        if req.equity <= 0 or not req.price > 0:
            return 0.0
        return round_to_lot(self.fraction * req.equity / req.price, self.lot_size)


@dataclass(frozen=True)
class RiskPerTrade:
    """Risk ``fraction`` of current equity on the distance to the stop-loss.

    ``units = fraction x equity / |price - stop_loss|``, optionally capped so the position
    is worth at most ``max_fraction`` of equity. Orders without a stop-loss get 0 units
    (risk cannot be measured) unless ``fallback`` sizes them.
    """

    fraction: float
    max_fraction: float | None = None
    lot_size: float | None = None
    fallback: Sizer | None = None

    def __post_init__(self) -> None:
        if not (0 < self.fraction < 1):
            raise ValueError(f"RiskPerTrade fraction must be in (0, 1), got {self.fraction!r}")

    def __call__(self, req: SizingRequest) -> float:
        if req.stop_loss is None or not math.isfinite(req.stop_loss):
            return self.fallback(req) if self.fallback is not None else 0.0
        distance = abs(req.price - req.stop_loss)
        if req.equity <= 0 or distance <= 0:
            return 0.0
        units = self.fraction * req.equity / distance
        if self.max_fraction is not None:
            units = min(units, self.max_fraction * req.equity / req.price)
        return round_to_lot(units, self.lot_size)


@dataclass(frozen=True)
class Limits:
    """Wrap a sizer with portfolio caps.

    Parameters
    ----------
    sizer : Sizer
    max_positions : int, optional
        A new position (in a symbol now flat) gets 0 units once this many are open or on
        their way (entries placed but not filled yet count).
    max_gross_exposure : float, optional
        Gross exposure after the order may be at most this multiple of equity; the part of
        the order that grows exposure is shrunk to fit (and rounded to ``lot_size``).
    """

    sizer: Sizer
    max_positions: int | None = None
    max_gross_exposure: float | None = None
    lot_size: float | None = None

    def __call__(self, req: SizingRequest) -> float:
        flat = req.position == 0
        committed = req.open_positions + req.pending_entries
        if self.max_positions is not None and flat and committed >= self.max_positions:
            return 0.0
        units = float(self.sizer(req))
        if self.max_gross_exposure is not None and req.price > 0:
            # Only the part of the order that grows the position adds exposure: all of a
            # buy onto a long (or from flat); of a sell against a long, what goes past it.
            adds = flat or math.copysign(1, req.position) == req.side
            held = 0.0 if adds else abs(req.position)
            room = max(self.max_gross_exposure * req.equity - req.gross_exposure, 0.0) / req.price
            units = min(units, held + room)
        return round_to_lot(units, self.lot_size)
