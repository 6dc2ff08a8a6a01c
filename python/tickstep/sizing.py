"""Position sizing: how many units an order is for when the strategy gives no size.

A sizer is any callable taking a :class:`SizingRequest` and returning units (``0`` means
"do not trade"). Every figure in the request is current: equity is marked to market at
the latest prices, never at entry prices. Writing one takes five lines::

    class HalfEquity:
        def __call__(self, req):
            return 0.5 * req.equity / (req.price * req.multiplier)

(``req.multiplier`` is 1 but for futures contracts given one: a unit is worth its price
times it.)

Shipped sizers: :class:`FixedSize`, :class:`PercentOfEquity`, :class:`RiskPerTrade`, and
:class:`Limits`, which wraps any sizer with caps on open positions and gross exposure.
Each rounds down to ``lot_size`` units when one is given (fractional units otherwise).

Targets (what ``Strategy.order_target`` and ``Strategy.rebalance`` trade): the units to
hold are computed from current marked-to-market equity and the latest price, rounded
towards zero to whole lots; the order is the difference from what is held
(:func:`order_to_target`), and a rebalance lists its reductions before its increases
(:func:`rebalance_orders`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

from tickstep import _core

__all__ = [
    "FixedSize",
    "Limits",
    "PercentOfEquity",
    "RiskPerTrade",
    "Sizer",
    "SizingRequest",
    "order_to_target",
    "rebalance_orders",
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
    multiplier : float
        The symbol's multiplier (``BacktestConfig.multiplier``; 1 for shares and coins):
        one unit is worth ``price x multiplier`` in money, what a sizer dividing money
        by a price divides by.
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
    multiplier: float = 1.0


class Sizer(Protocol):
    """Anything called with a `SizingRequest` that returns units (``0``: no order)."""

    def __call__(self, request: SizingRequest) -> float: ...


def round_to_lot(units: float, lot_size: float | None) -> float:
    """Round ``units`` down (towards zero) to a whole number of lots; no-op without a lot size.

    A quotient ``units / lot_size`` less than 1e-9 below a whole number counts as that
    number: float arithmetic leaves such hairs (``3 * 0.1 / 0.1`` is 2.9999999999999996),
    and rounding them down would drop a whole lot. The rounding is the core's (signals
    mode rounds its entries by the same rule)."""
    if not lot_size or not math.isfinite(units):
        return max(units, 0.0) if math.isfinite(units) else 0.0
    return _core.round_to_lot(units, lot_size)


def _lot_toward_zero(units: float, lot_size: float | None) -> float:
    """Signed ``units`` rounded towards zero to whole lots."""
    return math.copysign(round_to_lot(abs(units), lot_size), units)


def order_to_target(position: float, target: float, price: float, *, lot_size: float | None = None,
                    min_value: float = 0.0) -> float:
    """Signed units to trade to hold ``target`` units instead of ``position``.

    ``price`` is what one unit is worth (its price times its symbol's multiplier). The
    target is rounded towards zero to whole lots (a target is never overshot); the
    order is the difference. An order worth less than ``min_value`` at ``price`` is not
    worth placing (0 is returned) -- except one that closes the position entirely, so a
    target of zero always ends flat.
    """
    target = _lot_toward_zero(target, lot_size)
    units = target - position
    if units == 0 or (target != 0 and abs(units) * price < min_value):
        return 0.0
    return units


def reduces(position: float, units: float) -> bool:
    """Whether trading ``units`` against ``position`` starts by reducing it (a sell of a
    long, a cover of a short, a flip): the fills a batch executes first."""
    return position != 0 and units != 0 and math.copysign(1, units) != math.copysign(1, position)


def rebalance_orders(weights: dict[str, float], positions: dict[str, float], prices: dict[str, float],
                     equity: float, *, close_others: bool = True, lot_size: float | dict[str, float] | None = None,
                     min_value: float = 0.0) -> list[tuple[str, float]]:
    """``(symbol, signed units)`` to move from ``positions`` to ``weights`` of ``equity``.

    Each symbol of ``weights`` is targeted at ``weight x equity / price`` units, ``price``
    being what one unit is worth (its price times its symbol's multiplier; negative
    weights are shorts); a held symbol missing from ``weights`` is targeted at 0 when
    ``close_others``, else left alone. ``lot_size`` is one size for all symbols or one per
    symbol. Reductions (and flips) come first, then increases, each in the order of
    ``weights`` followed by the other held symbols, so that the reductions can pay for
    the increases when they fill together.
    """
    targets = dict(weights)
    if close_others:
        targets.update({s: 0.0 for s, units in positions.items() if units != 0 and s not in weights})
    first, then = [], []
    for symbol, weight in targets.items():
        lot = lot_size.get(symbol) if isinstance(lot_size, dict) else lot_size
        held = positions.get(symbol, 0.0)
        target = 0.0 if weight == 0 else weight * equity / prices[symbol]
        units = order_to_target(held, target, prices[symbol], lot_size=lot, min_value=min_value)
        if units:
            (first if reduces(held, units) else then).append((symbol, units))
    return first + then


def native_sizing(sizer: object) -> tuple[str, float, float | None] | None:
    """``(kind, amount, lot_size)`` of a shipped sizer whose rule the core computes itself
    (by the same float operations as its ``__call__``, so the same units) -- an exact
    `FixedSize` ("fixed", units) or `PercentOfEquity` ("percent", fraction; at the fill
    "percent_at_fill") with no lot size or a finite one -- else None: the sizer is called
    with a `SizingRequest`. A subclass may size otherwise, so only these two classes
    themselves qualify."""
    kind = type(sizer)
    if kind is FixedSize:
        name, amount = "fixed", sizer.units  # type: ignore[attr-defined]
    elif kind is PercentOfEquity:
        at_fill = sizer.at == "fill"  # type: ignore[attr-defined]
        name, amount = "percent_at_fill" if at_fill else "percent", sizer.fraction  # type: ignore[attr-defined]
    else:
        return None
    lot = sizer.lot_size  # type: ignore[attr-defined]
    plain = (int, float)
    if type(amount) not in plain or not (lot is None or (type(lot) in plain and math.isfinite(lot))):
        return None
    return name, float(amount), None if lot is None else float(lot)


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

    ``at="fill"`` sizes each order when it fills instead, as backtesting.py sizes
    ``self.buy(size=0.5)`` and vectorbt its ``size_type="percent"``: the most units whose
    cost at the fill (its price after slippage, times the multiplier) with their
    commission (whatever its schedule: a fixed fee comes off the money first) is
    ``fraction`` of the buying power then (equity less the margin the open positions
    hold, times the leverage; equity itself for a flat account without leverage), and
    never more than the fill's margin check allows, rounded down to ``lot_size``; an
    order with nothing affordable then is rejected for margin. Entries filling together
    share one base, the buying power after all of the moment's reductions and before its
    increases, whatever order the symbols are visited in; one that reverses a position
    is sized on the buying power before the batch's fills (see the portfolios guide).
    Until it fills the order reads as an estimate, ``fraction`` of equity at the latest
    price in any units (``Order.size``); ``result.orders`` records the units it filled.
    Only as the backtest's sizer itself: :class:`Limits` cannot wrap it.
    """

    fraction: float
    lot_size: float | None = None
    at: str = "placement"

    def __post_init__(self) -> None:
        if not (0 < self.fraction and math.isfinite(self.fraction)):
            raise ValueError(f"PercentOfEquity fraction must be > 0, got {self.fraction!r}")
        if self.at not in ("placement", "fill"):
            raise ValueError(f"PercentOfEquity at={self.at!r}: must be 'placement' or 'fill'")
        if self.at == "fill":
            if type(self) is not PercentOfEquity:
                raise TypeError(f"{type(self).__name__}: a subclass of PercentOfEquity cannot size "
                                "at='fill' (the fill sizes by PercentOfEquity's own rule, not the subclass's)")
            lot = self.lot_size
            if not (lot is None or (type(lot) in (int, float) and 0 < lot and math.isfinite(lot))):
                raise ValueError(f"PercentOfEquity lot_size={lot!r} with at='fill': must be None or a "
                                 "finite number > 0")

    def __call__(self, req: SizingRequest) -> float:
        if req.equity <= 0 or not req.price > 0:
            return 0.0
        return round_to_lot(self.fraction * req.equity / (req.price * req.multiplier), self.lot_size)


@dataclass(frozen=True)
class RiskPerTrade:
    """Risk ``fraction`` of current equity on the distance to the stop-loss.

    ``units = fraction x equity / (|price - stop_loss| x multiplier)``, optionally capped so the position
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
        units = self.fraction * req.equity / (distance * req.multiplier)
        if self.max_fraction is not None:
            units = min(units, self.max_fraction * req.equity / (req.price * req.multiplier))
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

    def __post_init__(self) -> None:
        # Its caps are applied to the units at placement; an order sized again at its fill
        # would leave them behind.
        if isinstance(self.sizer, PercentOfEquity) and self.sizer.at == "fill":
            raise ValueError(f"Limits cannot wrap {self.sizer!r}: it sizes orders when they fill, "
                             "after the caps; give it as the backtest's sizer itself")

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
            room = (max(self.max_gross_exposure * req.equity - req.gross_exposure, 0.0)
                    / (req.price * req.multiplier))
            units = min(units, held + room)
        return round_to_lot(units, self.lot_size)
