"""What a load asks for -- symbols, a time range, load options -- read by one rule.

Every source (memory, files, DuckDB, PostgreSQL) reads ``symbols``, ``start`` and
``end`` through these functions, so the same arguments select the same bars wherever
the bars live:

* ``symbols``: a name or a list of names; the result is stored sorted by name and
  visited in the order of the list (`symbols_in_order`, applied by ``resolve``); an
  unknown name is refused (with the closest known name).
* ``start`` and ``end`` are both inclusive. A date alone (``"2024-01-04"``,
  ``datetime.date``) means that whole day: as ``start`` from its first instant, as
  ``end`` up to its last. A time (``"2024-01-04 15:30"``, ``datetime``, ``Timestamp``)
  is that instant. Naive values are UTC; integers are UTC nanoseconds since the epoch.
  ``start`` after ``end`` is refused.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep.data._columns import DataError, MarketColumns
from tickstep.hints import did_you_mean
from tickstep.timeframes import NS_PER_DAY, NS_PER_MINUTE, timeframe_ns

__all__ = [
    "LOAD_OPTIONS",
    "Timeframe",
    "check_options",
    "parse_timeframe",
    "select",
    "symbol_list",
    "time_bounds",
]

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1

#: Every load option any source understands, and where it is understood.
LOAD_OPTIONS = {
    "regular_hours": "a store (DuckDB or PostgreSQL)",
    "timeframe": "a store (DuckDB or PostgreSQL)",
    "symbol_column": "in-memory frames and files",
    "columns": "every source of bars (the extra columns to keep)",
    "allow_nan": "every source of bars (extra columns that may have gaps)",
}

# A calendar date without a time of day: 2024-01-04, 2024/01/04, 20240104.
_DATE_ONLY = re.compile(r"^\s*\d{4}([-/]?)\d{1,2}\1\d{1,2}\s*$")
# A year or a month alone: a period, not a day or an instant.
_PERIOD_ONLY = re.compile(r"^\s*\d{4}(?:[-/]\d{1,2})?\s*$")


def _to_ns(value: Any, name: str) -> tuple[int, bool]:
    """A user's date or time as UTC ns, and whether it names a whole day."""
    if isinstance(value, bool) or value is None:
        raise DataError(f"{name}={value!r} is not a date or time", rule="date or time")
    if isinstance(value, (float, np.floating)):
        # Times are whole nanoseconds (as the bars' own); a float is none of the kinds.
        raise DataError(
            f"{name}={value!r}: a float is not a date or time; give a date such as "
            "'2024-01-04', a time such as '2024-01-04 15:30', a Timestamp, or whole "
            "nanoseconds since 1970 UTC (as the bars' ts)",
            rule="date or time",
        )
    whole_day = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if isinstance(value, np.datetime64):
        whole_day = np.datetime_data(value.dtype)[0] in ("D", "W", "M", "Y")
        if np.datetime_data(value.dtype)[0] in ("W", "M", "Y"):
            raise DataError(
                f"{name}={value!r} is a period, not a date or time; give a date such as "
                "'2024-01-04' or a time such as '2024-01-04 15:30'",
                rule="date or time",
            )
    if isinstance(value, str):
        if _PERIOD_ONLY.match(value):
            raise DataError(
                f"{name}={value!r} is a year or a month, not a date or time; give a date "
                "such as '2024-01-04' or a time such as '2024-01-04 15:30'",
                rule="date or time",
            )
        whole_day = bool(_DATE_ONLY.match(value))
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(
            f"{name}={value!r} is not a date or time: {exc}", rule="date or time"
        ) from None
    if ts is pd.NaT:
        raise DataError(f"{name}={value!r} is not a date or time", rule="date or time")
    if whole_day and (ts.hour or ts.minute or ts.second or ts.microsecond or ts.nanosecond):
        whole_day = False
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value), whole_day


def time_bounds(start: Any, end: Any) -> tuple[int, int]:
    """``[lo, hi)`` in UTC ns from the user's inclusive ``start`` and ``end``.

    A date alone as ``end`` includes that whole day; ``start`` after ``end`` is refused.
    """
    lo = _to_ns(start, "start")[0] if start is not None else INT64_MIN
    if end is None:
        hi = INT64_MAX
    else:
        end_ns, whole_day = _to_ns(end, "end")
        hi = end_ns + (NS_PER_DAY if whole_day else 1)
    if lo >= hi:
        raise DataError(
            f"start={start!r} is after end={end!r}: the range is empty (both bounds are "
            "inclusive; a date alone means that whole day)",
            rule="start <= end",
        )
    return lo, hi


def symbol_list(symbols: str | Sequence[str] | None) -> list[str] | None:
    """The requested symbols, sorted and de-duplicated; None means every symbol."""
    if symbols is None:
        return None
    if isinstance(symbols, str):
        symbols = [symbols]
    try:
        names = list(symbols)
    except TypeError:
        raise DataError(
            f"symbols must be a name or a list of names, got {type(symbols).__name__}",
            rule="symbol names",
        ) from None
    bad = [s for s in names if not isinstance(s, str) or not s]
    if bad:
        raise DataError(
            f"symbol names must be non-empty strings, got {bad[0]!r}", rule="symbol names"
        )
    if not names:
        raise DataError("no symbols requested (symbols=[])", rule="symbol names")
    return sorted(set(names))


def symbols_in_order(symbols: str | Sequence[str]) -> list[str]:
    """The requested symbols in the order given (the order ``next`` sees them), once each."""
    return list(dict.fromkeys([symbols] if isinstance(symbols, str) else symbols))


def refuse_unknown_symbols(unknown: Iterable[str], known: Iterable[str], where: str) -> None:
    """Refuse requested symbols that ``where`` does not hold, hinting the closest name."""
    unknown = sorted(unknown)
    if not unknown:
        return
    known = list(known)
    shown = ", ".join(map(repr, unknown[:20])) + (
        f" and {len(unknown) - 20} more" if len(unknown) > 20 else ""
    )
    raise DataError(
        f"symbol(s) not in {where}: {shown}" + did_you_mean(unknown[0], known),
        symbol=unknown[0],
        rule="known symbol",
    )


def describe_request(
    start: Any, end: Any, regular_hours: bool = False, timeframe: Any = None
) -> str:
    """The filters of a load as the user wrote them, for messages (``regular_hours`` is
    checked here, the one place every load describes its filters)."""
    if not isinstance(regular_hours, (bool, np.bool_)):
        raise _core.ConfigError(
            f"regular_hours={regular_hours!r}: must be True or False, got "
            f"{type(regular_hours).__name__}"
        )
    parts = [f"{k}={v!r}" for k, v in (("start", start), ("end", end)) if v is not None]
    if regular_hours:
        parts.append("regular_hours=True")
    if timeframe is not None:
        parts.append(f"timeframe={timeframe!r}")
    return ", ".join(parts) or "no filters"


def select(
    market: MarketColumns,
    symbols: str | Sequence[str] | None,
    start: Any,
    end: Any,
    *,
    where: str = "the data",
) -> MarketColumns:
    """The requested symbols and inclusive time range of bars held in memory.

    Slices are views of the validated columns (no copy). A requested symbol left without
    bars by the range is refused, as the stores refuse it.
    """
    names = symbol_list(symbols)
    lo, hi = time_bounds(start, end)
    bars = market.bars
    if names is not None:
        held = set(market.symbols)
        refuse_unknown_symbols(set(names) - held, market.symbols, where)
        bars = [market[s] for s in names]
    if start is None and end is None:
        if names is None:
            return market
        return MarketColumns(bars, _metadata_of(market, names)).in_order(market.call_order)
    kept, empty = [], []
    for b in bars:
        i, j = np.searchsorted(b.ts, [lo, hi], side="left")
        if j > i:
            kept.append(b.slice(int(i), int(j)))
        else:
            empty.append(b.symbol)
    if empty:
        raise DataError(
            f"no bars for symbol(s) {', '.join(map(repr, empty[:20]))} in {where} "
            f"after filters ({describe_request(start, end)})",
            symbol=empty[0],
            rule="non-empty result",
        )
    kept_market = MarketColumns(kept, _metadata_of(market, [b.symbol for b in kept]))
    return kept_market.in_order(market.call_order)


def _metadata_of(market: MarketColumns, names: list[str]) -> pd.DataFrame | None:
    if market.metadata is None:
        return None
    return market.metadata.reindex(names)


def check_options(options: dict[str, Any], accepted: Iterable[str], source: str) -> None:
    """Refuse load options this source does not take: unknown ones with the closest known
    name, known ones with where they are understood."""
    accepted = tuple(accepted)
    for name in options:
        if name in accepted:
            continue
        if name in LOAD_OPTIONS:
            raise _core.ConfigError(
                f"load option {name!r} is not available for {source}: it is understood by "
                f"{LOAD_OPTIONS[name]}"
                + (
                    "; ingest the data into a store first: tickstep.data.Store(path).ingest(data)"
                    if name in ("regular_hours", "timeframe")
                    else ""
                )
            )
        raise _core.ConfigError(f"unknown option {name!r}" + did_you_mean(name, LOAD_OPTIONS))


@dataclass(frozen=True)
class Timeframe:
    """A resampling target: a whole number of minutes, or one day."""

    step_ns: int
    daily: bool
    text: str


def parse_timeframe(timeframe: Any) -> Timeframe | None:
    """A resampling target in the one timeframe grammar (`tickstep.timeframes`);
    None stays None. Resampling needs whole minutes that divide a day, or one day."""
    if timeframe is None:
        return None
    try:
        step = timeframe_ns(timeframe)
    except ValueError as exc:
        raise DataError(str(exc), rule="timeframe") from None
    if step == NS_PER_DAY:
        return Timeframe(step, True, str(timeframe))
    if step % NS_PER_MINUTE or step > NS_PER_DAY or NS_PER_DAY % step:
        raise DataError(
            f"timeframe {timeframe!r}: resampling supports whole minutes that divide a day "
            "(1min, 5min, 15min, 30min, 1h, 4h, ...) or one day (1D)",
            rule="timeframe",
        )
    return Timeframe(step, False, str(timeframe))
