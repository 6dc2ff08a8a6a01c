"""Exchange calendars (sessions, holidays, early closes) from ``exchange_calendars``, and
the small session and UTC-offset tables the stores' SQL filters join bars against."""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

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


@dataclass
class FilterTables:
    """Small tables passed to SQL as bound array parameters, expanded there.

    ``sessions``: regular trading periods (``s_cal, s_day, s_open, s_close``); SQL
    expands them to the minutes they contain and equi-joins bars on
    (calendar, minute) -- a hash join, much cheaper than a range or as-of join.
    ``offsets``: spans of constant UTC offset per timezone (``z_key, z_from, z_to,
    z_off``) over the data's range; SQL expands them to 15-minute slots and joins
    bars on (timezone, slot) to get their local time.
    """

    calendar_of: np.ndarray  # per requested symbol: index into the exchanges, or -1
    tz_of: np.ndarray  # per requested symbol: index into timezones
    sessions: dict[str, np.ndarray] | None
    offsets: dict[str, np.ndarray] | None
    timezones: list[str]


def filter_tables(
    meta: pd.DataFrame,
    *,
    regular_hours: bool,
    timeframe: Timeframe | None,
    first_ns: int,
    last_ns: int,
) -> FilterTables:
    """Sessions (for regular hours) and UTC offsets (for resampling) of the symbols.

    ``first_ns`` and ``last_ns`` bound the bars that the query can meet.
    """
    n = len(meta)
    exchanges = list(meta["exchange"]) if "exchange" in meta.columns else [None] * n
    zones = list(meta["timezone"]) if "timezone" in meta.columns else [None] * n
    symbols = list(meta["symbol"])
    calendar_of = np.full(n, -1, dtype=np.int32)
    lo = pd.Timestamp(first_ns, tz="UTC").tz_localize(None).normalize() - pd.Timedelta(days=2)
    hi = pd.Timestamp(last_ns, tz="UTC").tz_localize(None).normalize() + pd.Timedelta(days=2)
    sessions = None
    if regular_hours:
        missing = [s for s, e in zip(symbols, exchanges) if not isinstance(e, str)]
        if missing:
            raise DataError(
                f"regular_hours needs each symbol's exchange; none is stored for "
                f"{', '.join(map(repr, missing[:10]))} (set it with ingest_metadata)",
                symbol=missing[0],
                rule="exchange known",
            )
        names = sorted(set(exchanges))
        calendar_of = np.array([names.index(e) for e in exchanges], dtype=np.int32)
        parts = []
        for k, name in enumerate(names):
            bounds = session_bounds(name, lo, hi)
            bounds.insert(0, "cal", np.int32(k))
            parts.append(bounds)
        table = pd.concat(parts, ignore_index=True)
        minute = NS_PER_MINUTE
        if (table["open_ns"] % minute).any() or (table["close_ns"] % minute).any():
            raise DataError("exchange sessions must start and end on whole minutes")
        sessions = {
            "s_cal": table["cal"].to_numpy(np.int32),
            "s_day": table["day"].to_numpy(np.int64),
            "s_open": table["open_ns"].to_numpy(np.int64),
            "s_close": table["close_ns"].to_numpy(np.int64),
        }
    resolved = []
    for ex, tz in zip(exchanges, zones):
        if isinstance(tz, str):
            resolved.append(tz)
        elif isinstance(ex, str):
            resolved.append(exchange_timezone(ex))
        else:
            resolved.append("UTC")
    timezones = sorted(set(resolved))
    tz_of = np.array([timezones.index(t) for t in resolved], dtype=np.int32)
    offsets = None
    if timeframe is not None:
        span_lo = int(lo.value) // OFFSET_SLOT_NS * OFFSET_SLOT_NS
        span_hi = -(-int(hi.value) // OFFSET_SLOT_NS) * OFFSET_SLOT_NS
        keys, starts, ends, offs = [], [], [], []
        for k, tz in enumerate(timezones):
            s, o = tz_transitions(tz)
            e = np.append(s[1:], INT64_MAX // 2)
            keep = (e > span_lo) & (s < span_hi)
            s, e, o = np.maximum(s[keep], span_lo), np.minimum(e[keep], span_hi), o[keep]
            if (s % OFFSET_SLOT_NS).any() or (e % OFFSET_SLOT_NS).any():
                raise DataError(f"timezone {tz!r} changes offset off a 15-minute boundary")
            keys.append(np.full(len(s), k, dtype=np.int32))
            starts.append(s)
            ends.append(e)
            offs.append(o)
        offsets = {
            "z_key": np.concatenate(keys),
            "z_from": np.concatenate(starts),
            "z_to": np.concatenate(ends),
            "z_off": np.concatenate(offs),
            "z_slot": OFFSET_SLOT_NS,
        }
    return FilterTables(calendar_of, tz_of, sessions, offsets, timezones)
