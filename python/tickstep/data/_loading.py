"""Pieces shared by the stores: arguments, files, metadata, calendars and assembly.

A store turns a load request into SQL; everything around the SQL lives here so that
DuckDB and PostgreSQL read the same arguments, apply the same calendars and hand the
engine the same columns.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from collections.abc import Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tickstep.data._calendars import get_calendar, session_bounds
from tickstep.data._door import (
    VALUE_COLUMNS,
    DataError,
    MarketColumns,
    SymbolBars,
    check_bars,
    to_market_columns,
)
from tickstep.timeframes import NS_PER_DAY, NS_PER_MINUTE, timeframe_ns

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
# Metadata columns every store has; more can be added by ingesting them.
METADATA_COLUMNS = ("name", "sector", "industry", "exchange", "timezone", "currency")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RESERVED = {"symbol", "symbol_id"}


# --- arguments ----------------------------------------------------------------------------


def _to_ns(value: Any, name: str) -> tuple[int, bool]:
    """A user's date or time as UTC ns, and whether it named a whole day."""
    whole_day = isinstance(value, dt.date) and not isinstance(value, dt.datetime)
    if isinstance(value, str):
        whole_day = len(value.strip()) <= 10
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{name}={value!r} is not a date or time: {exc}") from None
    if ts is pd.NaT:
        raise DataError(f"{name}={value!r} is not a date or time")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value), whole_day


def time_bounds(start: Any, end: Any) -> tuple[int, int]:
    """``[start, end)`` in UTC ns from inclusive user bounds.

    A date without a time of day includes that whole day as ``end``; naive times are UTC.
    """
    lo = _to_ns(start, "start")[0] if start is not None else INT64_MIN
    if end is None:
        hi = INT64_MAX
    else:
        end_ns, whole_day = _to_ns(end, "end")
        hi = end_ns + (NS_PER_DAY if whole_day else 1)
    if lo >= hi:
        raise DataError(f"empty date range: start={start!r} is not before end={end!r}")
    return lo, hi


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
        raise DataError(str(exc)) from None
    if step == NS_PER_DAY:
        return Timeframe(step, True, str(timeframe))
    if step % NS_PER_MINUTE or step > NS_PER_DAY or NS_PER_DAY % step:
        raise DataError(
            f"timeframe {timeframe!r}: resampling supports whole minutes that divide a day "
            "(1min, 5min, 15min, 30min, 1h, 4h, ...) or one day (1D)"
        )
    return Timeframe(step, False, str(timeframe))


def symbol_list(symbols: str | Sequence[str] | None) -> list[str] | None:
    if symbols is None:
        return None
    if isinstance(symbols, str):
        symbols = [symbols]
    names = list(symbols)
    bad = [s for s in names if not isinstance(s, str) or not s]
    if bad:
        raise DataError(f"symbol names must be non-empty strings, got {bad[0]!r}")
    if not names:
        raise DataError("no symbols requested")
    return sorted(set(names))


# --- files --------------------------------------------------------------------------------


def _file_error(path: Path, err: DataError, *, csv: bool) -> DataError:
    where = f"file '{path}'"
    if err.row is not None:
        where += f", line {err.row + 2}" if csv else f", row {err.row}"
    out = DataError(
        f"{where}: {err}",
        symbol=err.symbol,
        row=err.row,
        timestamp=err.timestamp,
        rule=err.rule,
        source=str(path),
    )
    return out


def _read_csv(path: Path) -> pa.Table:
    import pyarrow.csv as pcsv

    try:
        return pcsv.read_csv(path)
    except pa.ArrowInvalid:
        # Read again single-threaded: only then does Arrow report the line number.
        try:
            pcsv.read_csv(path, read_options=pcsv.ReadOptions(use_threads=False))
        except pa.ArrowInvalid as exc2:
            exc = exc2
        text = str(exc)
        match = re.search(r"Row #(\d+)", text)
        line = int(match.group(1)) if match else None
        detail = re.sub(r"^CSV parse error: (Row #\d+: )?", "", text)
        where = f"file '{path}'" + (f", line {line}" if line else "")
        raise DataError(
            f"{where}: malformed CSV row: {detail}",
            row=None if line is None else line - 2,
            rule="well-formed CSV",
            source=str(path),
        ) from None
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"file '{path}': cannot read it: {exc}", source=str(path)) from None


def read_bars_file(
    path: str | PathLike[str],
    *,
    symbol: str | None = None,
    symbol_column: str = "symbol",
) -> MarketColumns:
    """Read a CSV (optionally ``.gz``) or Parquet file of bars through the door.

    A file with a symbol column may hold many symbols; otherwise its bars belong to
    ``symbol``, or to the file's name without suffixes (``AAPL.csv`` -> ``AAPL``).
    Errors name the file and the line (CSV) or row (Parquet).
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"file '{path}' does not exist", source=str(path))
    suffixes = [s.lower() for s in path.suffixes]
    is_csv = ".csv" in suffixes or ".txt" in suffixes
    if is_csv:
        table = _read_csv(path)
    elif suffixes and suffixes[-1] in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise DataError(f"file '{path}': cannot read Parquet: {exc}") from None
    else:
        raise DataError(f"file '{path}': unknown format; use .csv, .csv.gz or .parquet")
    frame = table.to_pandas(date_as_object=False)
    has_symbols = any(str(c).lower() == symbol_column.lower() for c in frame.columns)
    if not has_symbols:
        frame.attrs["symbol"] = symbol or path.name.split(".")[0]
    try:
        return to_market_columns(frame, symbol_column=symbol_column)
    except DataError as err:
        raise _file_error(path, err, csv=is_csv) from None


def as_market(data: Any, *, symbol: str | None = None) -> MarketColumns:
    """Anything a store can ingest -> validated MarketColumns."""
    if isinstance(data, (str, PathLike)):
        return read_bars_file(data, symbol=symbol)
    if (
        isinstance(data, (list, tuple))
        and data
        and all(isinstance(p, (str, PathLike)) for p in data)
    ):
        parts = [read_bars_file(p) for p in data]
        bars = sorted((b for m in parts for b in m.bars), key=lambda b: b.symbol)
        return MarketColumns(bars)
    if isinstance(data, pd.DataFrame) and symbol is not None:
        data = data.copy(deep=False)
        data.attrs["symbol"] = symbol
    return to_market_columns(data)


def stage_table(market: MarketColumns, ids: dict[str, int]) -> pa.Table:
    """All bars as one Arrow table (symbol_id, ts, open, ..., volume) for bulk insert."""
    counts = [len(b) for b in market.bars]
    sid = np.repeat(np.array([ids[b.symbol] for b in market.bars], dtype=np.int32), counts)
    columns = {"symbol_id": sid, "ts": np.concatenate([b.ts for b in market.bars])}
    for name in VALUE_COLUMNS:
        columns[name] = np.concatenate([getattr(b, name) for b in market.bars])
    return pa.table(columns)


# --- metadata -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _exchange_names() -> frozenset[str]:
    import exchange_calendars as xc

    return frozenset(xc.get_calendar_names(include_aliases=True))


@functools.lru_cache(maxsize=64)
def exchange_timezone(exchange: str) -> str:
    now = pd.Timestamp("2024-01-02")
    return str(get_calendar(exchange, now, now + pd.Timedelta(days=7)).tz)


def clean_metadata(metadata: Any) -> pd.DataFrame:
    """Validate symbol metadata: a DataFrame (or CSV path) indexed by or with ``symbol``.

    Column names are lower-cased and must be plain identifiers. ``timezone`` must be an
    IANA name, ``exchange`` an ``exchange_calendars`` name; a missing timezone is
    filled from the exchange's calendar. Errors name the symbol and the row.
    """
    source = None
    if isinstance(metadata, (str, PathLike)):
        source = str(metadata)
        try:
            metadata = pd.read_csv(metadata, dtype={"symbol": str})
        except (OSError, ValueError) as exc:
            raise DataError(f"file '{source}': cannot read metadata: {exc}") from None
    if not isinstance(metadata, pd.DataFrame):
        raise DataError(f"metadata must be a DataFrame or a CSV path, got {type(metadata)}")
    meta = metadata.copy()
    if meta.index.name is not None and str(meta.index.name).lower() == "symbol":
        meta = meta.reset_index()
    meta.columns = [str(c).strip().lower() for c in meta.columns]
    prefix = f"file '{source}': " if source else ""
    if "symbol" not in meta.columns:
        raise DataError(f"{prefix}metadata needs a 'symbol' column or index")
    for col in meta.columns:
        if col != "symbol" and (not _IDENTIFIER.match(col) or col in _RESERVED):
            raise DataError(
                f"{prefix}metadata column {col!r} is not a plain lower-case name "
                "(letters, digits, underscores)"
            )
    names = meta["symbol"]
    bad = names.isna() | ~names.map(lambda s: isinstance(s, str) and bool(s))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{prefix}metadata row {row}: symbol {names.iloc[row]!r} is not a name")
    dup = names.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{prefix}metadata row {row}: symbol {names.iloc[row]!r} appears twice", row=row
        )
    if "timezone" in meta.columns:
        valid = zoneinfo.available_timezones() | {"UTC"}
        for row, (sym, tz) in enumerate(zip(names, meta["timezone"])):
            if isinstance(tz, str) and tz not in valid or not (isinstance(tz, str) or pd.isna(tz)):
                raise DataError(
                    f"{prefix}metadata row {row}: symbol {sym!r} has unknown timezone {tz!r} "
                    "(expected an IANA name such as 'America/New_York')",
                    symbol=sym,
                    row=row,
                    rule="known timezone",
                )
    if "exchange" in meta.columns:
        known = _exchange_names()
        for row, (sym, ex) in enumerate(zip(names, meta["exchange"])):
            if not (pd.isna(ex) or (isinstance(ex, str) and ex in known)):
                raise DataError(
                    f"{prefix}metadata row {row}: symbol {sym!r} has unknown exchange {ex!r} "
                    "(expected an exchange_calendars name such as 'XNYS', 'NYSE', 'XLON')",
                    symbol=sym,
                    row=row,
                    rule="known exchange",
                )
        if "timezone" not in meta.columns:
            meta["timezone"] = None
        fill = meta["timezone"].isna() & meta["exchange"].notna()
        meta.loc[fill, "timezone"] = meta.loc[fill, "exchange"].map(exchange_timezone)
    return meta.reset_index(drop=True)


def metadata_sql_type(series: pd.Series) -> str:
    """SQL type for a metadata column: numbers as DOUBLE PRECISION, else text."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        return "DOUBLE PRECISION"
    return "TEXT"


def metadata_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Stored symbol rows -> the ``MarketColumns.metadata`` frame (index symbol)."""
    meta = rows.drop(columns=[c for c in ("symbol_id",) if c in rows.columns])
    meta = meta.set_index("symbol")
    meta.index.name = "symbol"
    return meta


# --- calendars for SQL filters --------------------------------------------------------------


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


OFFSET_SLOT_NS = 15 * 60_000_000_000  # every UTC offset change since 1970 falls on one


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
        minute = 60_000_000_000
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


# --- assembly -------------------------------------------------------------------------------


def _column(table: pa.Table, name: str, dtype: type) -> np.ndarray:
    col = table.column(name)
    if col.num_chunks == 1:
        arr = col.chunk(0).to_numpy(zero_copy_only=False)
    else:
        arr = col.to_numpy()
    arr = np.asarray(arr, dtype=dtype)
    # Nobody else holds these columns: freeze them (down to the buffer's owner) so the
    # engine can adopt the per-symbol slices in place instead of copying them.
    owner = arr
    while isinstance(owner.base, np.ndarray):
        owner = owner.base
    if owner.flags.owndata:
        owner.flags.writeable = False
    return arr


def describe_filters(start: Any, end: Any, regular_hours: bool, timeframe: str | None) -> str:
    parts = []
    if start is not None:
        parts.append(f"start={start!r}")
    if end is not None:
        parts.append(f"end={end!r}")
    if regular_hours:
        parts.append("regular_hours=True")
    if timeframe is not None:
        parts.append(f"timeframe={timeframe!r}")
    return ", ".join(parts) or "no filters"


def assemble(
    symbol_id: np.ndarray,
    columns: dict[str, np.ndarray],
    meta: pd.DataFrame,
    filters: str,
) -> MarketColumns:
    """Rows of many symbols (any order) -> MarketColumns, without a loop over rows.

    ``meta`` has one row per requested symbol, sorted by name, with ``symbol_id``.
    Rows are grouped by a stable radix sort of small symbol codes (skipped when the store
    returned each symbol's rows contiguously) and each symbol's timestamps are sorted only
    if the store returned them out of order.
    """
    ids = meta["symbol_id"].to_numpy(np.int64)
    symbols = list(meta["symbol"])
    order_ids = np.argsort(ids)
    pos = np.searchsorted(ids[order_ids], symbol_id)
    pos = np.minimum(pos, len(ids) - 1)
    if len(symbol_id) and not np.array_equal(ids[order_ids][pos], symbol_id):
        raise DataError("the store returned bars for a symbol that was not requested")
    codes = order_ids[pos].astype(np.int16 if len(ids) < 2**15 else np.int32)
    ts = columns["ts"]
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    starts = np.concatenate(([0], change)) if len(codes) else np.array([], dtype=np.int64)
    ends = np.concatenate((change, [len(codes)])) if len(codes) else starts
    if len(np.unique(codes[starts])) == len(starts):
        spans = {int(codes[s]): slice(int(s), int(e)) for s, e in zip(starts, ends)}
        take = None
    else:
        take = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[take], np.arange(len(ids) + 1))
        spans = {
            k: slice(int(bounds[k]), int(bounds[k + 1]))
            for k in range(len(ids))
            if bounds[k + 1] > bounds[k]
        }
    empty = [symbols[k] for k in range(len(ids)) if k not in spans]
    if empty:
        raise DataError(
            f"no bars for symbol(s) {', '.join(map(repr, empty[:20]))} after filters ({filters})",
            symbol=empty[0],
            rule="non-empty result",
        )
    bars = []
    for k, symbol in enumerate(symbols):
        span = spans[k]
        rows = take[span] if take is not None else span
        part = [ts[rows], *(columns[name][rows] for name in VALUE_COLUMNS)]
        if len(part[0]) > 1 and not (np.diff(part[0]) > 0).all():
            by_time = np.argsort(part[0], kind="stable")
            part = [p[by_time] for p in part]
        check_bars(symbol, *part)
        bars.append(SymbolBars._trusted(symbol, *part))
    return MarketColumns(bars, metadata_frame(meta))


def arrow_columns(table: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The bars query's Arrow result -> numpy columns (zero-copy for a single chunk)."""
    columns = {"ts": _column(table, "ts", np.int64)}
    for name in VALUE_COLUMNS:
        columns[name] = _column(table, name, np.float64)
    return _column(table, "symbol_id", np.int64), columns
