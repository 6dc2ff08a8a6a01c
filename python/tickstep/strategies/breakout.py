"""Range breakouts on two timeframes: :class:`Fakeout` fades them, :class:`TrueBreakout`
follows them.

Both read the market the same way. Each completed candle of the *reference* timeframe
(default ``4h``) defines a range ``[low, high]`` for the period that follows it. The
*confirmation* timeframe (default ``5m``) is where breakouts are watched: each time one of
its candles completes, that candle is compared with the range and its volume with the
average volume of the confirmation candles before it. The average is a rolling mean kept
by the engine on the confirmation timeframe; it restarts whenever a new reference candle
completes, so it only ever covers the current range's period (and is not ready -- no
trade -- until ``volume_window`` candles of that period have completed).

One trade at most per reference candle and symbol, and none while the symbol already has
a position. Orders are market orders for the next bar with a stop-loss and a take-profit
attached; they are sized by the backtest's sizer (which sees the stop-loss, so
:class:`~tickstep.RiskPerTrade` works as is) unless ``risk_per_trade`` is set.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Integral

from tickstep.strategies._sizing import risk_size
from tickstep.strategy import Strategy
from tickstep.studies import Candle

__all__ = ["Fakeout", "RangeBreakout", "RangeSetup", "TrueBreakout"]


@dataclass(slots=True)
class RangeSetup:
    """What a range strategy knows about one symbol's current range.

    Attributes
    ----------
    high, low : float
        The range: the latest completed reference candle's high and low (NaN before the
        first one completes).
    reference_count : int
        Reference candles completed so far.
    confirmation_count : int
        Confirmation candles completed so far (the latest one seen).
    confirmation_start : int
        ``confirmation_count`` when the current reference candle completed: the candles
        after it are the ones the volume average covers.
    traded : bool
        Whether this range has already produced its trade.
    direction : int
        An armed breakout: +1 above the range, -1 below, 0 none.
    extreme : float
        Furthest price reached beyond the range since the breakout was armed.
    armed_at : int
        ``confirmation_count`` of the candle that armed the breakout.
    closes_outside : int
        Consecutive confirmation closes beyond the range since it was armed.
    """

    high: float = math.nan
    low: float = math.nan
    reference_count: int = 0
    confirmation_count: int = 0
    confirmation_start: int = 0
    traded: bool = False
    direction: int = 0
    extreme: float = math.nan
    armed_at: int = 0
    closes_outside: int = 0

    def disarm(self) -> None:
        self.direction, self.extreme, self.armed_at, self.closes_outside = 0, math.nan, 0, 0

    @property
    def ready(self) -> bool:
        return self.high >= self.low  # False while NaN


class RangeBreakout(Strategy):
    """Machinery shared by :class:`Fakeout` and :class:`TrueBreakout` (see the module doc).

    Subclasses implement :meth:`on_confirmation`. Not registered as a strategy itself.

    Parameters
    ----------
    reference : str, default "4h"
        Timeframe of the candle that defines the range.
    confirmation : str, default "5m"
        Timeframe on which breakouts and closes are judged; a multiple of the data's
        bar interval, shorter than ``reference``.
    align : {"utc", "exchange"}, default "utc"
        How candles are aligned (see :meth:`tickstep.Strategy.timeframe`).
    volume_window : int, default 12
        Number of confirmation candles in the volume average.
    volume_multiplier : float, default 1.0
        A breakout candle is *low volume* when its volume is below ``average x
        volume_multiplier``, *high volume* otherwise.
    risk_per_trade : float or None, default None
        Fraction of current equity to lose at the stop-loss; None leaves sizing to the
        backtest's sizer.
    """

    reference = "4h"
    confirmation = "5m"
    align = "utc"
    volume_window = 12
    volume_multiplier = 1.0
    risk_per_trade: float | None = None

    def init(self) -> None:
        if not (isinstance(self.volume_window, Integral) and self.volume_window > 0):
            raise ValueError(
                f"volume_window must be a positive integer, got {self.volume_window!r}"
            )
        if not self.volume_multiplier > 0:
            raise ValueError(f"volume_multiplier must be positive, got {self.volume_multiplier!r}")
        self.reference_candles = self.timeframe(self.reference, align=self.align)
        self.confirmation_candles = self.timeframe(
            self.confirmation, align=self.align, history=max(500, 2 * self.volume_window + 2)
        )
        if self.confirmation_candles.period >= self.reference_candles.period:
            raise ValueError(
                f"the confirmation timeframe ({self.confirmation}) must be shorter than the "
                f"reference timeframe ({self.reference})"
            )
        self.volume_mean = self.indicator(
            "mean", self.volume_window, "volume", timeframe=self.confirmation_candles
        )
        #: Per-symbol state of the current range (see :class:`RangeSetup`).
        self.setups = {symbol: RangeSetup() for symbol in self.symbols}

    def next(self, symbol: str) -> None:
        setup = self.setups[symbol]
        references = self.reference_candles.count(symbol)
        if references != setup.reference_count:
            self.start_range(symbol, setup, references)
        confirmations = self.confirmation_candles.count(symbol)
        if confirmations == setup.confirmation_count:
            return
        setup.confirmation_count = confirmations
        if not setup.ready or setup.traded or self.position_size(symbol) != 0:
            return
        candle = self.confirmation_candles.last(symbol)
        if candle is not None:
            self.on_confirmation(symbol, setup, candle)

    def start_range(self, symbol: str, setup: RangeSetup, references: int) -> None:
        """A new reference candle completed: new range, fresh volume average."""
        candle = self.reference_candles.last(symbol)
        setup.reference_count = references
        setup.high, setup.low = (
            (candle.high, candle.low) if candle is not None else (math.nan, math.nan)
        )
        setup.traded = False
        setup.disarm()
        # Candles that completed together with the reference candle belong to its period.
        setup.confirmation_count = setup.confirmation_start = self.confirmation_candles.count(
            symbol
        )
        self.volume_mean.reset(symbol)

    def volume_average(self, symbol: str) -> float:
        """Mean volume of the ``volume_window`` confirmation candles before the latest one,
        counting only candles completed after the current reference candle; NaN until
        there are that many (and before the first reference candle).

        Read from the engine's rolling mean in O(1). Override it to test or to change the
        definition: it is the only place the strategies get the average from.
        """
        if not self.setups[symbol].ready:
            return math.nan  # no reference candle yet: the mean started with the data
        return self.volume_mean.previous(symbol)

    def is_low_volume(self, symbol: str, candle: Candle) -> bool:
        """``candle.volume < average x volume_multiplier`` (False while no average)."""
        return candle.volume < self.volume_average(symbol) * self.volume_multiplier

    def is_high_volume(self, symbol: str, candle: Candle) -> bool:
        """``candle.volume >= average x volume_multiplier`` (False while no average)."""
        return candle.volume >= self.volume_average(symbol) * self.volume_multiplier

    def on_confirmation(self, symbol: str, setup: RangeSetup, candle: Candle) -> None:
        """Judge the latest completed confirmation candle (flat symbol, range not yet
        traded); place the trade with :meth:`enter`."""
        raise NotImplementedError

    def enter(
        self, symbol: str, setup: RangeSetup, side: int, stop: float, target: float
    ) -> int | None:
        """Market order for the next bar with its bracket; once placed, it is this range's
        trade. Disarms the setup either way.

        Returns the order id, or None (no order) when the stop and target are not on the
        right sides of the latest price or the sizer gives 0 units.
        """
        setup.disarm()
        entry = self.price(symbol)
        long = side > 0
        if not (target > 0 and stop > 0):
            return None
        if long and not (stop < entry < target) or not long and not (target < entry < stop):
            return None
        size = None
        if self.risk_per_trade is not None:
            size = risk_size(self, symbol, side, entry, stop, self.risk_per_trade)
            if not size > 0:
                return None
        order = self.buy if long else self.sell
        order_id = order(symbol, size=size, sl=stop, tp=target)
        setup.traded = order_id is not None
        return order_id


class Fakeout(RangeBreakout):
    """Fade a low-volume breakout of the reference range once price closes back inside.

    A confirmation candle whose high goes above the range (or low below it) on low volume
    arms a fakeout; if that candle or one of the next ``confirm_within`` candles closes
    back inside the range, trade the reversal: short after a break above, long after a
    break below. The stop-loss goes beyond the furthest price reached outside the range
    (plus ``stop_buffer`` of the range's height); the target is the far side of the range,
    or ``reward_risk`` times the risk. A high-volume candle that pushes further out
    disarms the fakeout (the breakout looks real). A candle that leaves the range on both
    sides is ambiguous and ignored.

    Parameters
    ----------
    reference, confirmation, align, volume_window, volume_multiplier, risk_per_trade
        See :class:`RangeBreakout`.
    confirm_within : int, default 3
        How many confirmation candles after the breakout candle may still close back
        inside.
    stop_buffer : float, default 0.0
        Extra distance beyond the breakout extreme for the stop, as a fraction of the
        range's height.
    reward_risk : float or None, default None
        Target at ``reward_risk x`` the risk from the entry; None targets the far side of
        the range.

    Examples
    --------
    >>> import tickstep
    >>> bars = tickstep.data.sample(symbols=2, days=5, seed=1, freq="5min", hours="24h")
    >>> result = tickstep.Backtest(bars, Fakeout, cash=100_000).run(reference="4h")
    >>> len(result.trades) > 0
    True
    """

    confirm_within = 3
    stop_buffer = 0.0
    reward_risk: float | None = None

    def init(self) -> None:
        if not (isinstance(self.confirm_within, Integral) and self.confirm_within >= 0):
            raise ValueError(f"confirm_within must be an integer >= 0, got {self.confirm_within!r}")
        if not self.stop_buffer >= 0:
            raise ValueError(f"stop_buffer must be >= 0, got {self.stop_buffer!r}")
        if self.reward_risk is not None and not self.reward_risk > 0:
            raise ValueError(f"reward_risk must be positive or None, got {self.reward_risk!r}")
        super().init()

    def on_confirmation(self, symbol: str, setup: RangeSetup, candle: Candle) -> None:
        high, low = setup.high, setup.low
        if setup.direction == 0:
            above, below = candle.high > high, candle.low < low
            if above == below or not self.is_low_volume(symbol, candle):
                return
            setup.direction = 1 if above else -1
            setup.extreme = candle.high if above else candle.low
            setup.armed_at = setup.confirmation_count
        else:
            if setup.confirmation_count - setup.armed_at > self.confirm_within:
                setup.disarm()
                return
            further = (
                candle.high > setup.extreme if setup.direction > 0 else candle.low < setup.extreme
            )
            if further:
                if self.is_high_volume(symbol, candle):
                    setup.disarm()
                    return
                setup.extreme = candle.high if setup.direction > 0 else candle.low
        back_inside = candle.close < high if setup.direction > 0 else candle.close > low
        if not (back_inside and low <= candle.close <= high):
            return
        height = high - low
        if setup.direction > 0:
            stop = setup.extreme + self.stop_buffer * height
            entry = self.price(symbol)
            target = low if self.reward_risk is None else entry - self.reward_risk * (stop - entry)
            self.enter(symbol, setup, -1, stop, target)
        else:
            stop = setup.extreme - self.stop_buffer * height
            entry = self.price(symbol)
            target = high if self.reward_risk is None else entry + self.reward_risk * (entry - stop)
            self.enter(symbol, setup, 1, stop, target)


class TrueBreakout(RangeBreakout):
    """Follow a high-volume breakout of the reference range that holds outside it.

    A confirmation candle that closes beyond the range on high volume arms a breakout;
    once ``confirm_closes`` consecutive confirmation candles (that one included) have
    closed beyond the range, trade in the breakout's direction. A close back inside
    disarms it. The stop-loss goes at the other side of the range (``stop_at="range"``)
    or at its middle (``stop_at="mid"``); the target is ``reward_risk`` times the risk.

    Parameters
    ----------
    reference, confirmation, align, volume_window, volume_multiplier, risk_per_trade
        See :class:`RangeBreakout`.
    confirm_closes : int, default 1
        Consecutive closes beyond the range needed, the breakout candle's own included.
    stop_at : {"range", "mid"}, default "range"
        Where the stop-loss goes.
    reward_risk : float, default 2.0
        Target distance as a multiple of the distance from entry to stop.

    Examples
    --------
    >>> import tickstep
    >>> bars = tickstep.data.sample(symbols=2, days=5, seed=1, freq="5min", hours="24h")
    >>> result = tickstep.Backtest(bars, TrueBreakout, cash=100_000).run(stop_at="mid")
    >>> len(result.trades) > 0
    True
    """

    confirm_closes = 1
    stop_at = "range"
    reward_risk = 2.0

    def init(self) -> None:
        if self.stop_at not in ("range", "mid"):
            raise ValueError(f"stop_at must be 'range' or 'mid', got {self.stop_at!r}")
        if not (isinstance(self.confirm_closes, Integral) and self.confirm_closes >= 1):
            raise ValueError(f"confirm_closes must be an integer >= 1, got {self.confirm_closes!r}")
        if not self.reward_risk > 0:
            raise ValueError(f"reward_risk must be positive, got {self.reward_risk!r}")
        super().init()

    def on_confirmation(self, symbol: str, setup: RangeSetup, candle: Candle) -> None:
        high, low = setup.high, setup.low
        if setup.direction == 0:
            if candle.close > high:
                side = 1
            elif candle.close < low:
                side = -1
            else:
                return
            if not self.is_high_volume(symbol, candle):
                return
            setup.direction, setup.armed_at, setup.closes_outside = (
                side,
                setup.confirmation_count,
                1,
            )
        elif candle.close > high if setup.direction > 0 else candle.close < low:
            setup.closes_outside += 1
        else:
            setup.disarm()
            return
        if setup.closes_outside < self.confirm_closes:
            return
        long = setup.direction > 0
        stop = (low if long else high) if self.stop_at == "range" else (high + low) / 2
        entry = self.price(symbol)
        risk = entry - stop if long else stop - entry
        target = entry + self.reward_risk * risk if long else entry - self.reward_risk * risk
        self.enter(symbol, setup, setup.direction, stop, target)
