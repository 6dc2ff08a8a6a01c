"""Indicators and higher-timeframe candles as a strategy declares them in ``init()``.

Rolling statistics (sum, mean, min, max, std, ema, rsi, atr) are maintained by the Rust
core, updated in O(1) per bar (amortised O(1) for min/max), and read in O(1):

- on base bars, a statistic at a tick covers that tick's bar and the ``n - 1`` before it;
- on a timeframe, it covers the last ``n`` **completed** candles; it changes only when a
  candle completes.

Conventions, matching pandas: ``mean``/``sum``/``min``/``max`` = ``rolling(n)``; ``std``
= ``rolling(n).std()`` (ddof=1); ``ema`` = ``ewm(span=n, adjust=False)``, ready from the
n-th value; ``rsi`` and ``atr`` use Wilder's smoothing seeded by a simple mean of the first
``n`` changes / true ranges.

Candles are labelled by their bucket start; open/high/low/close/volume = first/max/min/
last/sum of the base bars in the bucket. A candle becomes visible once its last base bar
has been processed, judged from the symbol's own bars so far (never later data, never
other symbols): the bar that ends at or after the bucket's end by the symbol's bar
spacing known so far (the gcd of its gaps, in UTC or on the backtest's wall clock,
whichever is coarser), or else the symbol's first bar of a later bucket. Never earlier. See :meth:`tickstep.Strategy.timeframe` for the whole rule.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

from tickstep._core import CrossingBase, IndicatorBase
from tickstep.timeframes import NS_PER_DAY

if TYPE_CHECKING:
    from tickstep._core import Context

__all__ = ["Candle", "Crossing", "Indicator", "Timeframe", "session_buckets"]

_INT64_MIN = np.iinfo(np.int64).min


class Candle(NamedTuple):
    """A completed candle: bucket start ``ts`` and end ``end`` (int ns UTC) and prices."""

    ts: int
    end: int
    open: float
    high: float
    low: float
    close: float
    volume: float

    @property
    def time(self) -> pd.Timestamp:
        """The candle's start (its label) as a UTC timestamp."""
        return pd.Timestamp(self.ts, tz="UTC")


def _wall_offset(text: str) -> int:
    parts = text.strip().split(":")
    if not 2 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"session time {text!r}: expected HH:MM or HH:MM:SS")
    h, m, sec = (int(p) for p in parts + ["0"] * (3 - len(parts)))
    return ((h * 60 + m) * 60 + sec) * 10**9


def session_buckets(
    ts: np.ndarray,
    period_ns: int,
    timezone: str,
    session: tuple[str, str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket (label, end) of each bar for candles aligned to the exchange's own clock.

    Each local date in ``timezone`` is a session, from ``session[0]`` to ``session[1]``
    local wall time (default: midnight to midnight). A period of one day gives one candle
    per session; shorter periods are absolute durations counted from the session's start
    instant (so an hour stays an hour across a DST change, as in pandas), the last one cut
    at the session's end. Bars outside the session belong to no candle (label int64 min).
    """
    day = NS_PER_DAY
    if session is not None:
        open_off, close_off = _wall_offset(session[0]), _wall_offset(session[1])
        if not open_off < close_off:
            raise ValueError(f"session {session!r}: the open must be before the close")
    else:
        open_off, close_off = 0, day
    if period_ns > day:
        raise ValueError("exchange-aligned candles longer than one session are not supported; use align='utc'")
    utc = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).as_unit("ns")
    local = utc.tz_convert(timezone)
    wall = local.tz_localize(None).asi8
    # A wall time that occurs twice (DST fall-back) is resolved like the bar itself: the
    # bar is on summer time when its UTC offset exceeds the zone's standard offset.
    offset = wall - utc.asi8
    summer = offset > _standard_offset(timezone, utc)
    midnight = local.tz_localize(None).normalize().asi8
    start = _localize(midnight + open_off, timezone, summer)
    stop = _localize(midnight + close_off, timezone, summer)
    t = utc.asi8
    if period_ns == day:
        labels, ends = start, stop
    else:
        labels = start + (t - start) // period_ns * period_ns
        ends = np.minimum(labels + period_ns, stop)
    outside = (t < start) | (t >= stop)
    labels = np.where(outside, _INT64_MIN, labels).astype(np.int64)
    return np.ascontiguousarray(labels), np.ascontiguousarray(ends.astype(np.int64))


def _standard_offset(timezone: str, utc: pd.DatetimeIndex) -> np.ndarray:
    """Per bar, the zone's standard (non-summer) UTC offset in ns in the bar's own year:
    the smaller of January's and July's (summer time adds to it in both hemispheres). Of
    its own year, so that a bar's bucket depends on its time alone: a streamed run's
    window of bars gets the buckets the whole run's bars get."""
    years = utc.year.to_numpy()
    distinct = np.unique(years)
    probes = pd.DatetimeIndex([f"{y}-{m}-15" for y in distinct for m in (1, 7)],
                              tz="UTC").tz_convert(timezone)
    offsets = probes.tz_localize(None).asi8 - probes.tz_convert("UTC").tz_localize(None).asi8
    return offsets.reshape(-1, 2).min(axis=1)[np.searchsorted(distinct, years)]


def _localize(wall_ns: np.ndarray, timezone: str, summer: np.ndarray) -> np.ndarray:
    """Local wall times -> int ns UTC; repeated wall times take the bar's own DST flag,
    skipped ones move forward."""
    idx = pd.DatetimeIndex(wall_ns.astype("datetime64[ns]"))
    return idx.tz_localize(timezone, ambiguous=summer, nonexistent="shift_forward").asi8


class Indicator(IndicatorBase):
    """An indicator declared in ``init()`` (``self.sma(10)``, ``self.I(func)``, ...), read
    for the symbol whose ``next()`` is running.

    ``value`` and ``prev`` are attributes the engine sets before each ``next(symbol)`` to
    that symbol's value at its latest bar and the value one update before (NaN until
    ready), from the same study the methods read: reading them is as cheap as reading any
    attribute. Outside ``next`` (``init``, ``on_tick``) they are read from the core when
    asked, and reading them there without a running symbol is an error naming it; use
    ``get(symbol)`` / ``previous(symbol)`` for a named symbol anywhere.

    Other members: ``get(symbol)``, ``previous(symbol)``, ``is_ready(symbol=None)``,
    ``reset(symbol=None)``, ``crossed_above(other)`` / ``crossed_below(other)`` (another
    indicator or a level), ``float(indicator)``, ``id`` and ``name``. backtesting.py's
    reads are the same two values: ``indicator[-1]`` is ``value`` and ``indicator[-2]``
    is ``prev`` (so ``backtesting.lib.crossover(fast, slow)`` reads them as it reads
    arrays). An indicator of ``self.I`` reads any bar so far of the running symbol too,
    as backtesting.py's array cut at the current bar: ``[-k]`` (NaN before the symbol's
    first bar), ``[k]`` (a bar not reached yet is refused), a slice as a numpy array; a
    rolling statistic (``self.sma``, ...) keeps its last ``lookback`` values (two unless
    declared with more: ``[-1]`` to ``[-lookback]``, ``[-m:]``). ``get(symbol, ago=k)``
    reads a named symbol's value k updates before its latest the same way.
    """

    __slots__ = {
        "value": "Value for the symbol whose ``next()`` is running (NaN until ready).",
        "prev": "The value one update earlier.",
    }

    def __init__(self, ctx: Context, id: int, name: str) -> None:
        # The run follows it (its values are written before each next); until then it
        # reads through the core.
        ctx.adopt_indicator(self, _IndicatorOutsideNext)

    # An indicator is no sequence (a rolling one holds two values, a series grows bar by
    # bar): iterating one is refused, not tried index by index.
    __iter__ = None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r}.{name} is read-only: an indicator's values are the engine's "
                             "(keep your own numbers in attributes of the strategy)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self!r}.{name} is read-only")


class _IndicatorOutsideNext(Indicator):
    """An `Indicator` while no ``next()`` runs: the same object, ``value`` and ``prev``
    read through the core (the engine switches between the two classes)."""

    __slots__ = ()
    value = IndicatorBase.value  # type: ignore[assignment]
    prev = IndicatorBase.prev  # type: ignore[assignment]


class Crossing(CrossingBase):
    """How an indicator crossed another indicator (or a level) at its latest update, read
    in one: made by :meth:`tickstep.Strategy.crossing` in ``init()``.

    ``value`` is ``1`` when the indicator crossed above (it was at or below the other on
    the update before and is above it now), ``-1`` when it crossed below (at or above
    before, below now), ``0`` otherwise -- also while any of the four values is NaN
    (warm-up). ``crossing.value == 1`` is ``fast.crossed_above(slow)``, ``-1``
    ``fast.crossed_below(slow)``. Like an indicator's ``value``, the engine sets it before
    each ``next(symbol)`` for that symbol's latest bar, so reading it costs one attribute
    read; outside ``next`` it is read from the core (an error naming it without a running
    symbol). ``get(symbol)`` reads it for a named symbol anywhere.
    """

    __slots__ = {"value": "1 (crossed above), -1 (crossed below) or 0, for the running symbol."}

    def __init__(self, ctx: Context, indicator: Indicator, other: Indicator | float, name: str) -> None:
        ctx.adopt_crossing(self, _CrossingOutsideNext)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{self!r}.{name} is read-only: a crossing is the engine's")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{self!r}.{name} is read-only")


class _CrossingOutsideNext(Crossing):
    """A `Crossing` while no ``next()`` runs: ``value`` read through the core."""

    __slots__ = ()
    value = CrossingBase.value  # type: ignore[assignment]


class Timeframe:
    """Candles of one higher timeframe for every symbol (see the module doc).

    Every accessor takes ``symbol`` as a name (or index); None means the symbol whose
    ``next()`` is running.
    """

    __slots__ = ("_ctx", "id", "period", "name", "count")

    def __init__(self, ctx: Context, tf_id: int, period_ns: int, name: str) -> None:
        self._ctx = ctx
        self.id, self.period, self.name = tf_id, period_ns, name
        #: ``count(symbol=None)``: how many candles have completed so far; it changes
        #: exactly when a new one completes. Bound straight to the core: O(1), no frame.
        self.count = partial(ctx.candle_count, tf_id)

    def candles(self, symbol: str | None = None, count: int = 1, *, forming: bool = False,
                as_frame: bool = False) -> dict[str, np.ndarray] | pd.DataFrame:
        """The last ``count`` completed candles, oldest first, as read-only numpy columns
        (``ts``, ``end``, ``open``, ``high``, ``low``, ``close``, ``volume``), optionally
        followed by the forming candle; ``as_frame=True`` gives a DataFrame by time."""
        cols = self._ctx.candles(self.id, symbol, count, forming)
        if not as_frame:
            return cols
        index = pd.DatetimeIndex(pd.to_datetime(cols.pop("ts"), utc=True), name="time")
        return pd.DataFrame(cols, index=index)

    def last(self, symbol: str | None = None) -> Candle | None:
        """The latest completed candle, or None before the first completes."""
        raw = self._ctx.last_candle(self.id, symbol)
        return None if raw is None else Candle(*raw)

    def at(self, when: Any, symbol: str | None = None) -> Candle | None:
        """The latest completed candle starting at or before ``when`` (binary search):
        the one whose bucket contains it, or the one before an empty or forming bucket."""
        ns = when if isinstance(when, (int, np.integer)) else pd.Timestamp(when).as_unit("ns").value
        raw = self._ctx.candle_at(self.id, symbol, int(ns))
        return None if raw is None else Candle(*raw)

    def __repr__(self) -> str:
        return f"Timeframe({self.name})"
