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
has been processed: the bar that reaches the bucket's end, or else the first bar of a
later bucket (when the bucket's final bars are missing). Never earlier.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from tickstep._core import Context

__all__ = ["Candle", "Timeframe", "parse_period", "session_buckets"]

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
        return pd.Timestamp(self.ts, tz="UTC")


def parse_period(period: str | pd.Timedelta | int) -> int:
    """A period such as ``"5m"``, ``"15min"``, ``"4h"``, ``"1d"`` -> nanoseconds."""
    if isinstance(period, (int, np.integer)):
        ns = int(period)
    else:
        text = period.strip() if isinstance(period, str) else period
        if isinstance(text, str) and text.endswith("m") and text[:-1].isdigit():
            text = text + "in"  # "5m" is minutes here, as traders write it
        ns = int(pd.Timedelta(text).value)
    if ns <= 0:
        raise ValueError(f"a timeframe period must be positive, got {period!r}")
    return ns


def _local_instants(naive_local: np.ndarray, tz: str) -> np.ndarray:
    """Wall-clock times in ``tz`` (naive datetime64[ns]) -> int ns UTC."""
    idx = pd.DatetimeIndex(naive_local).tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
    return idx.tz_convert("UTC").asi8


def session_buckets(
    ts: np.ndarray,
    period_ns: int,
    timezone: str,
    session: tuple[str, str] | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Bucket (label, end) of each bar for candles aligned to the exchange's own clock.

    A period of a day or more gives one candle per session date in ``timezone``; shorter
    periods count from the session open (or local midnight). With ``session=(open,
    close)`` (local wall times, e.g. ``("09:30", "16:00")``), bars outside it belong to no
    candle and the last candle of a session ends at the close.
    """
    day = 86_400 * 10**9
    local = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).tz_convert(timezone).tz_localize(None)
    local_ns = local.asi8
    midnight = local.normalize().asi8
    if session is not None:
        open_off = int(pd.Timedelta(session[0] + ":00" if session[0].count(":") == 1 else session[0]).value)
        close_off = int(pd.Timedelta(session[1] + ":00" if session[1].count(":") == 1 else session[1]).value)
        if not open_off < close_off:
            raise ValueError(f"session {session!r}: the open must be before the close")
    else:
        open_off, close_off = 0, day
    start = midnight + open_off
    stop = midnight + close_off
    if period_ns >= day:
        if period_ns != day:
            raise ValueError("exchange-aligned candles longer than one session are not supported; use align='utc'")
        label_local, end_local = start, stop
    else:
        k = (local_ns - start) // period_ns
        label_local = start + k * period_ns
        end_local = np.minimum(label_local + period_ns, stop)
    outside = (local_ns < start) | (local_ns >= stop)
    labels = _local_instants(label_local.astype("datetime64[ns]"), timezone)
    ends = _local_instants(end_local.astype("datetime64[ns]"), timezone)
    labels = np.where(outside | (labels == _INT64_MIN), _INT64_MIN, labels).astype(np.int64)
    return np.ascontiguousarray(labels), np.ascontiguousarray(ends.astype(np.int64))


class Timeframe:
    """Candles of one higher timeframe for every symbol (see the module doc)."""

    __slots__ = ("_ctx", "_resolve", "id", "period", "name")

    def __init__(self, ctx: Context, resolve: Any, tf_id: int, period_ns: int, name: str) -> None:
        self._ctx, self._resolve = ctx, resolve
        self.id, self.period, self.name = tf_id, period_ns, name

    def candles(self, symbol: str | None = None, count: int = 1, *, forming: bool = False,
                as_frame: bool = False) -> dict[str, np.ndarray] | pd.DataFrame:
        """The last ``count`` completed candles, oldest first, as read-only numpy columns
        (``ts``, ``end``, ``open``, ``high``, ``low``, ``close``, ``volume``), optionally
        followed by the forming candle; ``as_frame=True`` gives a DataFrame by time."""
        cols = self._ctx.candles(self.id, self._resolve(symbol), count, forming)
        if not as_frame:
            return cols
        index = pd.DatetimeIndex(pd.to_datetime(cols.pop("ts"), utc=True), name="time")
        return pd.DataFrame(cols, index=index)

    def last(self, symbol: str | None = None) -> Candle | None:
        """The latest completed candle, or None before the first completes."""
        raw = self._ctx.last_candle(self.id, self._resolve(symbol))
        return None if raw is None else Candle(*raw)

    def at(self, when: Any, symbol: str | None = None) -> Candle | None:
        """The completed candle whose bucket contains ``when`` (binary search)."""
        ns = when if isinstance(when, (int, np.integer)) else pd.Timestamp(when).value
        raw = self._ctx.candle_at(self.id, self._resolve(symbol), int(ns))
        return None if raw is None else Candle(*raw)

    def count(self, symbol: str | None = None) -> int:
        """How many candles have completed so far (changes when a new one completes)."""
        return self._ctx.candle_count(self.id, self._resolve(symbol))

    def __repr__(self) -> str:
        return f"Timeframe({self.name})"
