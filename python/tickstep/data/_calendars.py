"""Exchange calendars (sessions, holidays, early closes) from ``exchange_calendars``, and
the small session and UTC-offset tables the stores' SQL filters join bars against."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._columns import DataError
from tickstep.data._request import Timeframe
from tickstep.timeframes import NS_PER_DAY, NS_PER_MINUTE

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


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


@functools.lru_cache(maxsize=64)
def exchange_timezone(exchange: str) -> str:
    """The IANA timezone of ``exchange``'s calendar."""
    now = pd.Timestamp("2024-01-02")
    return str(get_calendar(exchange, now, now + pd.Timedelta(days=7)).tz)


# --- calendars for SQL filters ----------------------------------------------------------


@functools.lru_cache(maxsize=64)
def tz_transitions(tz: str) -> tuple[np.ndarray, np.ndarray]:
    """UTC offset changes of ``tz`` from 1970 to 2100: (from_ns, offset_ns), from_ns sorted.

    The first entry starts at the beginning of time, so every instant has an offset.
    Found on a daily grid, then refined to the minute inside the days that change.
    """
    days = pd.date_range("1970-01-01", "2100-01-01", freq="D", tz="UTC")
    off = _offsets(days, tz)
    change = np.flatnonzero(off[1:] != off[:-1])
    starts = [INT64_MIN // 2]
    offsets = [int(off[0])]
    for i in change:
        minutes = pd.date_range(days[i], days[i + 1], freq="min", inclusive="right")
        moff = _offsets(minutes, tz)
        j = int(np.flatnonzero(moff != off[i])[0])
        starts.append(int(minutes[j].as_unit("ns").value))
        offsets.append(int(moff[j]))
    return np.array(starts, dtype=np.int64), np.array(offsets, dtype=np.int64)


def _offsets(instants: pd.DatetimeIndex, tz: str) -> np.ndarray:
    local = instants.tz_convert(tz).tz_localize(None).as_unit("ns").asi8
    return local - instants.tz_localize(None).as_unit("ns").asi8


OFFSET_SLOT_NS = 15 * NS_PER_MINUTE  # every UTC offset change since 1970 falls on one


@dataclass(frozen=True)
class FilterSpans:
    """What a filtered load joins its bars against, as one small table of time spans.

    Symbols that share what the filters need (the exchange for regular hours, the
    timezone for resampling) form a group. Each span is a stretch of time of one group
    -- a regular session, or a stretch of constant UTC offset -- with the session's day
    and the group's UTC offset during it. Each bar meets exactly one span of its
    symbol's group, found either by an index range scan per (symbol, span) or by one
    hash join on (group, unit) after SQL expands the spans into units (minutes for
    regular hours, 15-minute slots otherwise); either way the work grows with the days
    loaded, never with their square.

    Attributes
    ----------
    group_of : numpy.ndarray
        Per requested symbol (in the metadata's order), its group.
    sessions : bool
        Whether the spans are regular sessions (``regular_hours``), cut into minutes;
        otherwise they are stretches of constant offset, cut into 15-minute slots.
    unit_ns : int
        Length of the units spans are cut into.
    group, start, end, day, offset : numpy.ndarray
        Per span: its group, its bounds ``[start, end)`` in UTC ns (whole units), its
        session day (days since the epoch; regular hours only) and its UTC offset in ns
        (resampling only).
    """

    group_of: np.ndarray
    sessions: bool
    unit_ns: int
    group: np.ndarray
    start: np.ndarray
    end: np.ndarray
    day: np.ndarray
    offset: np.ndarray


def _symbol_timezones(exchanges: list[Any], zones: list[Any]) -> list[str]:
    """Each symbol's timezone: its own, else its exchange's, else UTC."""
    resolved = []
    for ex, tz in zip(exchanges, zones):
        if isinstance(tz, str):
            resolved.append(tz)
        elif isinstance(ex, str):
            resolved.append(exchange_timezone(ex))
        else:
            resolved.append("UTC")
    return resolved


def _offset_spans(tz: str, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Stretches [start, end) of constant UTC offset of ``tz`` covering [lo, hi)."""
    s, o = tz_transitions(tz)
    e = np.append(s[1:], INT64_MAX // 2)
    keep = (e > lo) & (s < hi)
    return np.maximum(s[keep], lo), np.minimum(e[keep], hi), o[keep]


def _split_at_offset_changes(
    opens: np.ndarray, closes: np.ndarray, tz: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sessions cut where ``tz`` changes its UTC offset: (session index, start, end, offset)."""
    changes, offsets = tz_transitions(tz)
    at_open = np.searchsorted(changes, opens, side="right") - 1
    at_close = np.searchsorted(changes, closes - 1, side="right") - 1
    index = np.arange(len(opens))
    if (at_open == at_close).all():  # the usual case: offsets change at night
        return index, opens, closes, offsets[at_open]
    parts = []
    for i, (a, b) in enumerate(zip(at_open, at_close)):
        cuts = [int(opens[i]), *(int(c) for c in changes[a + 1 : b + 1]), int(closes[i])]
        for k in range(len(cuts) - 1):
            parts.append((i, cuts[k], cuts[k + 1], int(offsets[a + k])))
    i, start, end, off = (np.array(col, dtype=np.int64) for col in zip(*parts))
    return i, start, end, off


def filter_spans(
    meta: pd.DataFrame,
    *,
    regular_hours: bool,
    timeframe: Timeframe | None,
    first_ns: int,
    last_ns: int,
) -> FilterSpans:
    """The spans a load with ``regular_hours`` and/or ``timeframe`` joins its bars against.

    ``first_ns`` and ``last_ns`` bound the bars the query can meet; calendars and
    timezones are expanded over that range only (with two days to spare).
    """
    n = len(meta)
    exchanges = list(meta["exchange"]) if "exchange" in meta.columns else [None] * n
    zones = list(meta["timezone"]) if "timezone" in meta.columns else [None] * n
    symbols = list(meta["symbol"])
    lo = pd.Timestamp(first_ns, tz="UTC").tz_localize(None).normalize() - pd.Timedelta(days=2)
    hi = pd.Timestamp(last_ns, tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=2)
    if regular_hours:
        missing = [s for s, e in zip(symbols, exchanges) if not isinstance(e, str)]
        if missing:
            raise DataError(
                f"regular_hours needs each symbol's exchange; none is stored for "
                f"{', '.join(map(repr, missing[:10]))} (set it with ingest_metadata)",
                symbol=missing[0],
                rule="exchange known",
            )
    # Local offsets matter only for cutting intraday buckets or days without sessions.
    needs_offset = timeframe is not None and not (timeframe.daily and regular_hours)
    timezones = _symbol_timezones(exchanges, zones) if needs_offset else [None] * n
    keys = [(ex if regular_hours else None, tz) for ex, tz in zip(exchanges, timezones)]
    groups = sorted(set(keys), key=lambda k: (str(k[0]), str(k[1])))
    group_of = np.array([groups.index(k) for k in keys], dtype=np.int32)
    parts = []
    for g, (exchange, tz) in enumerate(groups):
        if regular_hours:
            sessions = session_bounds(exchange, lo, hi)
            opens = sessions["open_ns"].to_numpy(np.int64)
            closes = sessions["close_ns"].to_numpy(np.int64)
            days = sessions["day"].to_numpy(np.int64)
            if (opens % NS_PER_MINUTE).any() or (closes % NS_PER_MINUTE).any():
                raise DataError(
                    f"exchange {exchange!r}: sessions must start and end on whole minutes"
                )
            if tz is None:
                index, start, end, off = np.arange(len(opens)), opens, closes, np.zeros_like(opens)
            else:
                index, start, end, off = _split_at_offset_changes(opens, closes, tz)
            parts.append((g, start, end, days[index], off))
        else:
            span_lo = int(lo.value) // OFFSET_SLOT_NS * OFFSET_SLOT_NS
            span_hi = -(-int(hi.value) // OFFSET_SLOT_NS) * OFFSET_SLOT_NS
            start, end, off = _offset_spans(tz, span_lo, span_hi)
            if (start % OFFSET_SLOT_NS).any() or (end % OFFSET_SLOT_NS).any():
                raise DataError(f"timezone {tz!r} changes offset off a 15-minute boundary")
            parts.append((g, start, end, np.zeros_like(start), off))
    unit = NS_PER_MINUTE if regular_hours else OFFSET_SLOT_NS
    return FilterSpans(
        group_of=group_of,
        sessions=regular_hours,
        unit_ns=unit,
        group=np.concatenate([np.full(len(p[1]), p[0], dtype=np.int32) for p in parts]),
        start=np.concatenate([p[1] for p in parts]),
        end=np.concatenate([p[2] for p in parts]),
        day=np.concatenate([p[3] for p in parts]),
        offset=np.concatenate([p[4] for p in parts]),
    )
