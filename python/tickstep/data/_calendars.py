"""Exchange calendars (sessions, holidays, early closes) from ``exchange_calendars``."""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd

from tickstep.data._door import DataError
from tickstep.timeframes import NS_PER_DAY


def get_calendar(exchange: str, start: pd.Timestamp, end: pd.Timestamp):
    """The ``exchange_calendars`` calendar for ``exchange`` covering [start, end].

    ``exchange`` is an ISO MIC (``XNYS``) or an alias the library knows (``NYSE``,
    ``NASDAQ``). Unknown names raise `DataError` listing a few known ones.
    """
    import exchange_calendars as xc  # imported lazily: it takes most of a second

    start = pd.Timestamp(start)
    end = pd.Timestamp(end)
    start = start.tz_localize(None) if start.tzinfo is not None else start
    end = end.tz_localize(None) if end.tzinfo is not None else end
    with warnings.catch_warnings():
        # The library still uses pandas APIs that pandas >= 3.1 deprecates; its
        # users can do nothing about those warnings.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return xc.get_calendar(exchange, start=start.normalize(), end=end.normalize())
        except xc.errors.InvalidCalendarName:
            known = "XNYS, XNAS, XLON, XTKS, XHKG, NYSE, NASDAQ"
            raise DataError(
                f"unknown exchange {exchange!r}: not an exchange_calendars name "
                f"(for example {known})",
                rule="known exchange",
            ) from None


def session_bounds(exchange: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Regular trading periods of ``exchange`` for sessions in [start, end] (a copy).

    See `_session_bounds`; results are cached, since building a calendar takes a
    good fraction of a second and backtests load the same range again and again.
    """
    return _session_bounds(exchange, pd.Timestamp(start), pd.Timestamp(end)).copy()


@functools.lru_cache(maxsize=32)
def _session_bounds(exchange: str, start: pd.Timestamp, end: pd.Timestamp) -> pd.DataFrame:
    """Regular trading periods of ``exchange`` for sessions in [start, end].

    Returns
    -------
    DataFrame
        One row per continuous trading period (two for sessions with a lunch break):
        ``day`` (the session date as days since the epoch), ``open_ns`` and
        ``close_ns`` (UTC nanoseconds, the period is ``[open_ns, close_ns)``).
    """
    cal = get_calendar(exchange, start - pd.Timedelta(days=1), end + pd.Timedelta(days=1))
    sched = cal.schedule
    sched = sched.loc[(sched.index >= start.normalize()) & (sched.index <= end.normalize())]

    def ns(col: str) -> np.ndarray:
        return sched[col].dt.tz_convert(None).dt.as_unit("ns").to_numpy().view(np.int64)

    day = sched.index.as_unit("ns").asi8 // NS_PER_DAY
    opens, closes = ns("open"), ns("close")
    breaks = sched["break_start"].notna().to_numpy()
    if breaks.any():
        b_start, b_end = ns("break_start"), ns("break_end")
        first = pd.DataFrame(
            {"day": day, "open_ns": opens, "close_ns": np.where(breaks, b_start, closes)}
        )
        second = pd.DataFrame(
            {"day": day[breaks], "open_ns": b_end[breaks], "close_ns": closes[breaks]}
        )
        out = pd.concat([first, second], ignore_index=True)
        return out.sort_values(["open_ns"], kind="stable").reset_index(drop=True)
    return pd.DataFrame({"day": day, "open_ns": opens, "close_ns": closes})


def calendar_timezone(exchange: str) -> str:
    """The IANA timezone of ``exchange``'s calendar."""
    now = pd.Timestamp("2024-01-02")
    return str(get_calendar(exchange, now, now + pd.Timedelta(days=7)).tz)
