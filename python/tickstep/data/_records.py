"""Analysis tables: named tables of records keyed by (symbol, timestamp), several per key.

An upstream analysis (confluence zones, levels, signals with attributes) writes, at each
analysis time, a *set* of records for a symbol: e.g. five zones, each with a level,
bounds, a strength, a type and touch times. tickstep keeps such tables beside the bars:

* **Validation** (`read_records`): one rule for DataFrames, Arrow/Polars tables and files.
  Keys are a symbol and a timestamp; fields are numbers (float, int, bool), text, or
  timestamps. Within each symbol, timestamps must arrive in non-decreasing order -- they
  are never sorted here, because the order of a key's records is kept (it often means
  something, e.g. zones ranked by strength) and a backwards step usually betrays a
  broken export. Every refusal names the table, column, row and rule.
* **Stores** (`ingest_records`, `load_records`): one SQL table ``records_<name>`` per
  record table (``symbol_id, ts, seq`` + the fields, typed). An ingest is one
  transaction; a key already stored with the same records is skipped, with different
  records refused (or replaced as a whole set with ``on_conflict="replace"``). A load is
  **one statement** for all symbols and timestamps.
* **In memory** (`RecordTable`): rows grouped once per symbol -- sorted keys, offsets
  into shared column arrays -- so that a strategy's ``self.records(name, symbol)`` finds
  the record set of the latest key at or before the current tick by binary search, and
  in O(1) when time has not passed the next key (`RecordBook`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import uuid
from bisect import bisect_right
from collections.abc import Iterator, Mapping, Sequence
from contextlib import suppress
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tickstep.data._arrow import arrow_table, is_arrow_like
from tickstep.data._columns import TIMESTAMP_COLUMNS, DataError
from tickstep.data._frames import timestamps_ns
from tickstep.data._request import refuse_unknown_symbols, time_bounds
from tickstep.hints import did_you_mean

__all__ = [
    "FIELD_KINDS",
    "RecordBook",
    "RecordSet",
    "RecordTable",
    "ingest_records",
    "load_records",
    "read_records",
    "record_tables",
    "records_for_backtest",
]

#: The kinds a field may have, and the numpy dtype of its column in a `RecordSet`.
FIELD_KINDS = {
    "float": np.float64,
    "int": np.int64,
    "bool": np.bool_,
    "string": object,
    "timestamp": np.int64,  # UTC ns; a missing time is numpy's NaT (int64 min)
}
_NAT = np.iinfo(np.int64).min
_INT64_MAX = 2**63 - 1
_TABLE_NAME = re.compile(r"^[a-z][a-z0-9_]{0,47}$")
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
# Names a field may not take: the key columns, the store's own columns, and what a
# RecordSet answers itself (so ``zones.level`` is always a field, ``zones.time`` the key).
_RESERVED = frozenset(
    {"symbol", "symbol_id", "seq", "ts", "time", "fields", "frame", "table", "row", "rows"}
)
_SQL_TYPES = {
    "duckdb": {
        "float": "DOUBLE",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "string": "VARCHAR",
        "timestamp": "TIMESTAMPTZ",
    },
    "postgres": {
        "float": "DOUBLE PRECISION",
        "int": "BIGINT",
        "bool": "BOOLEAN",
        "string": "TEXT",
        "timestamp": "TIMESTAMPTZ",
    },
}


def _sql_kind(data_type: str) -> str | None:
    """A stored column's SQL type (information_schema spelling) -> field kind."""
    t = data_type.lower()
    if "timestamp" in t:
        return "timestamp"
    if t in ("double", "double precision", "float8", "float", "real"):
        return "float"
    if t in ("bigint", "int8", "integer", "int4", "int", "smallint", "hugeint"):
        return "int"
    if t in ("boolean", "bool"):
        return "bool"
    if t in ("varchar", "text") or t.startswith("character"):
        return "string"
    return None


def check_table_name(name: Any) -> str:
    """A record table's name: a plain lower-case identifier (it names an SQL table)."""
    if not isinstance(name, str) or not _TABLE_NAME.match(name):
        raise DataError(
            f"records table name {name!r}: must be a lower-case identifier (a letter, then "
            "letters, digits or _; at most 48 characters), e.g. 'zones'",
            rule="table name",
        )
    return name


def _fmt_ns(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def _refusal(table: str, message: str, *, rule: str, row: int | None = None,
             symbol: str | None = None, ts: int | None = None,
             column: str | None = None, source: str | None = None) -> DataError:
    where = [f"records table {table!r}"]
    if column is not None:
        where.append(f"column {column!r}")
    if row is not None:
        at = f"row {row}"
        details = [f"symbol {symbol!r}" if symbol is not None else None,
                   _fmt_ns(ts) if ts is not None and ts != _NAT else None]
        details = [d for d in details if d]
        where.append(at + (f" ({', '.join(details)})" if details else ""))
    err = DataError(f"{', '.join(where)}: {message} (rule {rule!r})", symbol=symbol, row=row,
                    timestamp=None if ts is None or ts == _NAT else pd.Timestamp(ts, tz="UTC"),
                    rule=rule, source=source)
    err.table = table  # type: ignore[attr-defined]
    err.column = column  # type: ignore[attr-defined]
    return err


# ---- reading and validating a table of records ----------------------------------------------


class RecordRows:
    """Validated records in input order: symbol per row, key timestamp, typed fields."""

    def __init__(self, table: str, symbols: list[str], codes: np.ndarray, ts: np.ndarray,
                 fields: dict[str, tuple[str, np.ndarray]]) -> None:
        self.table = table
        self.symbols = symbols          # distinct names, sorted
        self.codes = codes              # int64 index into symbols, per row
        self.ts = ts                    # int64 UTC ns, per row
        self.fields = fields            # name -> (kind, column)
        self.source: str | None = None  # the file read, for messages
        self.csv = False

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def kinds(self) -> dict[str, str]:
        return {name: kind for name, (kind, _) in self.fields.items()}

    def grouped_order(self) -> np.ndarray:
        """Row order grouping symbols (by name) with each symbol's rows in input order,
        which is already non-decreasing in time (checked)."""
        return np.argsort(self.codes, kind="stable")

    def seq(self, order: np.ndarray) -> np.ndarray:
        """Position of each row (in ``order``) within its (symbol, ts) key."""
        codes, ts = self.codes[order], self.ts[order]
        n = len(ts)
        new = np.ones(n, dtype=bool)
        new[1:] = (codes[1:] != codes[:-1]) | (ts[1:] != ts[:-1])
        starts = np.flatnonzero(new)
        run_start = np.repeat(starts, np.diff(np.append(starts, n)))
        return (np.arange(n) - run_start).astype(np.int32)


def _as_frame(data: Any, table: str) -> tuple[pd.DataFrame, str | None, bool]:
    """The user's records as a pandas frame, its file name (if any) and whether CSV."""
    if isinstance(data, pd.DataFrame):
        return data, None, False
    if isinstance(data, (str, PathLike)):
        from tickstep.data._files import FILE_FORMATS, _read_table, file_format

        path = Path(data)
        kind = file_format(path)
        if kind is None:
            raise DataError(
                f"records table {table!r}: file '{path}' has an unknown format; record files "
                f"end in {', '.join(FILE_FORMATS)} (CSV also .gz)",
                source=str(path), rule="known file format",
            )
        if not path.exists():
            raise DataError(f"records table {table!r}: file '{path}' does not exist",
                            source=str(path), rule="file exists")
        return _read_table(path, kind).to_pandas(), str(path), kind == "csv"
    if is_arrow_like(data):
        return arrow_table(data).to_pandas(), None, False
    if isinstance(data, Mapping):
        parts = []
        for sym, part in data.items():
            frame, _, _ = _as_frame(part, table)
            if any(str(c).lower() == "symbol" for c in frame.columns):
                raise DataError(f"records table {table!r}: the frame for {sym!r} in a mapping "
                                "already has a symbol column", symbol=str(sym), rule="one symbol")
            frame = _unwrap_index(frame, table)
            parts.append(frame.assign(symbol=str(sym)))
        if not parts:
            raise DataError(f"records table {table!r}: the mapping is empty", rule="non-empty")
        return pd.concat(parts, ignore_index=True), None, False
    raise DataError(
        f"records table {table!r}: cannot read records from {type(data).__name__}: pass a "
        "DataFrame (pandas or Polars), an Arrow table, a mapping symbol -> frame, or a "
        "CSV/Parquet/Arrow file",
        rule="known source",
    )


def _unwrap_index(df: pd.DataFrame, table: str) -> pd.DataFrame:
    """A (symbol, time) MultiIndex, a named symbol/time index or a DatetimeIndex become
    ordinary columns."""
    names = [str(n).lower() for n in df.index.names if n is not None]
    if isinstance(df.index, pd.MultiIndex) or (
        names and names[0] in ("symbol", *TIMESTAMP_COLUMNS)
    ):
        return df.reset_index()
    if isinstance(df.index, pd.DatetimeIndex):
        times = [c for c in df.columns if str(c).strip().lower() in TIMESTAMP_COLUMNS]
        if times:
            raise _refusal(table, f"a DatetimeIndex and a key time column {times[0]!r}: keep "
                           "one of them", column=str(times[0]), rule="one key time")
        return df.reset_index(names="ts")
    return df


def _key_labels(df: pd.DataFrame, table: str, symbol_column: str | None) -> tuple[Any, Any]:
    labels = list(df.columns)
    lower = {}
    for label in labels:
        if not isinstance(label, str):
            raise _refusal(table, f"column names must be strings, got {label!r}",
                           column=str(label), rule="field names")
        lower.setdefault(label.strip().lower(), []).append(label)
    for same in lower.values():
        if len(same) > 1:
            raise _refusal(table, f"columns {same} differ only by case; keep one",
                           rule="unambiguous columns")
    wanted = (symbol_column or "symbol").lower()
    sym = lower.get(wanted, [None])[0]
    if sym is None and symbol_column is not None:
        raise _refusal(table, f"symbol_column={symbol_column!r} is not a column; columns "
                       f"present: {', '.join(labels)}", rule="symbol column present")
    stamps = [lower[n][0] for n in TIMESTAMP_COLUMNS if n in lower]
    if not stamps:
        raise _refusal(table, "no timestamp column: name the key time one of "
                       f"{', '.join(TIMESTAMP_COLUMNS)} (or use a DatetimeIndex); columns "
                       f"present: {', '.join(labels)}", rule="timestamps present")
    if len(stamps) > 1:
        raise _refusal(table, f"several key time columns {stamps}: keep one of them, rename "
                       "the others (they would be fields)", rule="one key time")
    return sym, stamps[0]


def _field(table: str, name: str, series: pd.Series, symbols: np.ndarray,
           ts: np.ndarray) -> tuple[str, np.ndarray]:
    """One field column -> (kind, numpy column), or a refusal naming row and rule."""

    def refuse(row: int, message: str, rule: str) -> DataError:
        return _refusal(table, message, column=name, row=row, symbol=str(symbols[row]),
                        ts=int(ts[row]), rule=rule)

    dtype = series.dtype
    missing = series.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise refuse(row, "a bool field has a missing value; use a float field for "
                         "values that may be missing", "no missing bool")
        return "bool", series.to_numpy(dtype=np.bool_).copy()
    if pd.api.types.is_integer_dtype(dtype):
        if missing.any():
            row = int(np.flatnonzero(missing)[0])
            raise refuse(row, "an int field has a missing value; use a float field (NaN) for "
                         "values that may be missing", "no missing int")
        values = series.to_numpy()
        if values.dtype == np.uint64 and (values > _INT64_MAX).any():
            row = int(np.flatnonzero(values > _INT64_MAX)[0])
            raise refuse(row, f"value {values[row]} does not fit a signed 64-bit int",
                         "int64 range")
        return "int", values.astype(np.int64, copy=True)
    if pd.api.types.is_float_dtype(dtype):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan).copy()
        inf = np.isinf(values)
        if inf.any():
            row = int(np.flatnonzero(inf)[0])
            raise refuse(row, f"value {values[row]} is infinite; fields hold finite numbers "
                         "or NaN for missing", "finite numbers")
        return "float", values
    if isinstance(dtype, pd.DatetimeTZDtype) or dtype.kind == "M":
        try:
            stamp, _ = timestamps_ns(series, None)
        except DataError as err:
            raise _refusal(table, str(err), column=name, rule=err.rule or "timestamps") from None
        return "timestamp", np.array(stamp, dtype=np.int64, copy=True)
    if isinstance(dtype, pd.CategoricalDtype):
        series = series.astype(object)
    if pd.api.types.is_string_dtype(series.dtype) or series.dtype == object:
        values = series.to_numpy(dtype=object, na_value=None)
        present = np.flatnonzero([v is not None for v in values])
        if not len(present):
            raise refuse(0, "the column has no values: give it a type (e.g. float with NaN) "
                         "or drop it", "typed fields")
        # The first value says what the column was meant to hold; the first value of
        # another kind is the culprit.
        first = int(present[0])
        if isinstance(values[first], str):
            kind, fits = "text", (lambda v: v is None or isinstance(v, str))
        else:
            kind = "number"
            fits = (lambda v: v is None or (isinstance(v, (int, float, np.integer, np.floating))
                                            and not isinstance(v, (bool, np.bool_))))
        ok = np.fromiter((fits(v) for v in values), bool, len(values))
        if not ok.all():
            row = int(np.flatnonzero(~ok)[0])
            value = values[row]
            raise refuse(row, f"value {value!r} ({type(value).__name__}) in a column of "
                         f"{kind} (row {first} holds {values[first]!r}); a field holds one kind "
                         "(number, bool, text or timestamp): convert the column",
                         "one kind per field")
        if kind == "number":
            # Plain Python numbers in an object column: ints alone stay ints, otherwise
            # floats (None as NaN), as numpy would read them.
            whole = all(isinstance(v, (int, np.integer)) for v in values)
            if whole:
                return "int", np.array(values, dtype=np.int64)
            return _field(table, name, pd.Series(np.array(
                [np.nan if v is None else v for v in values], dtype=np.float64)), symbols, ts)
        return "string", values
    raise refuse(0, f"dtype {dtype} is not a field kind (number, bool, text, timestamp)",
                 "field kinds")


def read_records(
    data: Any,
    *,
    table: str,
    symbol: str | None = None,
    symbol_column: str | None = None,
) -> RecordRows:
    """Validate a table of records; every refusal names table, column, row and rule.

    Parameters
    ----------
    data : DataFrame, Arrow/Polars table, mapping symbol -> frame, or file path
        One row per record: a symbol column (or ``symbol=``), one key time column (named
        ``ts``, ``timestamp``, ``time``, ``datetime`` or ``date``, or a DatetimeIndex,
        or a (symbol, time) MultiIndex) and any fields.
    table : str
        The table's name (for messages and the store).
    symbol : str, optional
        The symbol of every row, for data without a symbol column.
    symbol_column : str, optional
        The name of the symbol column when it is not ``symbol``.
    """
    check_table_name(table)
    df, path, csv = _as_frame(data, table)
    try:
        rows = _read_frame(df, table, symbol, symbol_column)
    except DataError as err:
        raise _in_file(err, path, csv) from None
    rows.source, rows.csv = path, csv
    return rows


def _in_file(err: DataError, path: str | None, csv: bool) -> DataError:
    """``err`` with the file and line (CSV: the row + 2, after the header) in front."""
    if path is None:
        return err
    where = f"file '{path}'" + (f", line {err.row + 2}" if csv and err.row is not None else "")
    out = DataError(f"{where}: {err}", symbol=err.symbol, row=err.row,
                    timestamp=err.timestamp, rule=err.rule, source=path)
    out.table = getattr(err, "table", None)  # type: ignore[attr-defined]
    out.column = getattr(err, "column", None)  # type: ignore[attr-defined]
    return out


def _read_frame(df: pd.DataFrame, table: str, symbol: str | None,
                symbol_column: str | None) -> RecordRows:
    df = _unwrap_index(df, table)
    sym_label, ts_label = _key_labels(df, table, symbol_column)
    if len(df) == 0:
        raise _refusal(table, "no rows (empty data)", rule="non-empty")
    n = len(df)
    if sym_label is not None:
        if symbol is not None:
            raise _refusal(table, f"symbol={symbol!r} given but the data has a symbol column "
                           f"{sym_label!r}", rule="one symbol source")
        raw = df[sym_label]
        codes, uniques = pd.factorize(raw, sort=True, use_na_sentinel=True)
        if (codes < 0).any():
            row = int(np.flatnonzero(codes < 0)[0])
            raise _refusal(table, "the symbol is missing", column=sym_label, row=row,
                           rule="symbol present")
        for k, u in enumerate(uniques):
            if not isinstance(u, str) or not u:
                row = int(np.flatnonzero(codes == k)[0])
                raise _refusal(table, f"symbol names must be non-empty strings, got {u!r}",
                               column=sym_label, row=row, rule="symbol names")
        names = [str(u) for u in uniques]
    else:
        if not isinstance(symbol, str) or not symbol:
            raise _refusal(table, "no symbol column: add one (or pass symbol_column=), or pass "
                           "symbol='NAME' for one symbol's records", rule="symbol column present")
        codes = np.zeros(n, dtype=np.int64)
        names = [symbol]
    codes = np.asarray(codes, dtype=np.int64)
    row_symbols = np.asarray(names, dtype=object)[codes]
    try:
        ts, _aware = timestamps_ns(df[ts_label], None)
    except DataError as err:
        raise _refusal(table, str(err), column=ts_label, row=err.row,
                       rule=err.rule or "timestamps") from None
    ts = np.array(ts, dtype=np.int64, copy=True)
    if (ts == _NAT).any():
        row = int(np.flatnonzero(ts == _NAT)[0])
        raise _refusal(table, "the key time is missing", column=ts_label, row=row,
                       symbol=str(row_symbols[row]), rule="key time present")
    # Within each symbol the key times never go back (several records per key are
    # consecutive): checked on the rows grouped by symbol, reported in input rows.
    order = np.argsort(codes, kind="stable")
    back = np.flatnonzero((np.diff(ts[order]) < 0) & (codes[order][1:] == codes[order][:-1]))
    if len(back):
        row, before = int(order[back[0] + 1]), int(order[back[0]])
        raise _refusal(
            table,
            f"key time {_fmt_ns(ts[row])} comes after {_fmt_ns(ts[before])} (row {before}) of "
            "the same symbol: within a symbol, keys must arrive in time order (records of one "
            f"key together); sort by symbol and time first{_more(len(back))}",
            column=ts_label, row=row, symbol=str(row_symbols[row]), ts=int(ts[row]),
            rule="sorted keys",
        )
    fields: dict[str, tuple[str, np.ndarray]] = {}
    for label in df.columns:
        if label in (sym_label, ts_label):
            continue
        name = label.strip()
        if not _FIELD_NAME.match(name):
            raise _refusal(table, "field names are identifiers (letters, digits and _, not "
                           "starting with a digit): rename the column", column=label,
                           rule="field names")
        if name.lower() in _RESERVED or name.startswith("_"):
            raise _refusal(table, f"{name!r} is reserved (reserved: "
                           f"{', '.join(sorted(_RESERVED))}, and names starting with _): "
                           "rename the column", column=label, rule="field names")
        fields[name] = _field(table, name, df[label], row_symbols, ts)
    return RecordRows(table, names, codes, ts, fields)


def _more(k: int) -> str:
    return f"; {k - 1} more row(s) break this rule" if k > 1 else ""


# ---- grouped in memory ------------------------------------------------------------------


class RecordTable:
    """One record table grouped once for a backtest's symbols.

    Rows are held in shared column arrays ordered by (symbol, key time, record order);
    per symbol, the sorted distinct key times and the offsets of each key's first row.
    Columns are read-only: a strategy cannot change them.
    """

    def __init__(self, name: str, symbols: Sequence[str], sym_index: np.ndarray, ts: np.ndarray,
                 columns: dict[str, np.ndarray], kinds: dict[str, str]) -> None:
        """``sym_index`` (index into ``symbols`` per row) groups each symbol's rows in one
        contiguous run, each run in non-decreasing ``ts``."""
        self.name = name
        self.symbols = list(symbols)
        self.kinds = dict(kinds)
        self.fields = tuple(kinds)
        for col in columns.values():
            col.flags.writeable = False
        self.columns = columns
        n = len(ts)
        new_key = np.ones(n, dtype=bool)
        if n:
            new_key[1:] = (sym_index[1:] != sym_index[:-1]) | (ts[1:] != ts[:-1])
        key_rows = np.flatnonzero(new_key)
        key_sym = sym_index[key_rows]
        key_ts = ts[key_rows]
        offsets = np.append(key_rows, n)
        # Per symbol: a Python list of key times (bisect on it costs ~0.1-0.2 us) and
        # the row offsets of its keys (one more than keys).
        self.keys: list[list[int]] = []
        self.offsets: list[list[int]] = []
        runs = np.flatnonzero(np.diff(key_sym)) + 1 if len(key_sym) else np.array([], int)
        starts = np.concatenate(([0], runs)) if len(key_sym) else np.array([], int)
        ends = np.append(starts[1:], len(key_sym)) if len(key_sym) else starts
        by_symbol = {int(key_sym[s]): (int(s), int(e)) for s, e in zip(starts, ends)}
        if len(by_symbol) != len(starts):
            raise ValueError("rows of a symbol must be contiguous")  # internal invariant
        for i in range(len(self.symbols)):
            a, b = by_symbol.get(i, (0, 0))
            self.keys.append(key_ts[a:b].tolist())
            self.offsets.append(offsets[a:b + 1].tolist() if b > a else [0])
        self.empty = RecordSet(self, 0, 0, None)
        self.n_rows = n

    def __repr__(self) -> str:
        keys = sum(len(k) for k in self.keys)
        return (f"RecordTable({self.name!r}, {len(self.symbols)} symbols, {keys} keys, "
                f"{self.n_rows} records, fields {list(self.fields)})")

    @classmethod
    def from_rows(cls, rows: RecordRows, symbols: Sequence[str]) -> RecordTable:
        """Validated rows -> the table for ``symbols`` (rows of other symbols left out)."""
        index = {s: i for i, s in enumerate(symbols)}
        mapped = np.array([index.get(s, -1) for s in rows.symbols], dtype=np.int64)
        sym_index = mapped[rows.codes]
        order = np.argsort(sym_index, kind="stable")
        order = order[sym_index[order] >= 0]
        columns = {name: col[order] for name, (_, col) in rows.fields.items()}
        return cls(rows.table, symbols, sym_index[order], rows.ts[order], columns, rows.kinds)

    def at(self, i: int, k: int) -> RecordSet:
        """The record set of symbol ``i``'s ``k``-th key."""
        offsets = self.offsets[i]
        return RecordSet(self, offsets[k], offsets[k + 1], self.keys[i][k])

    def _rows_of(self, i: int) -> tuple[int, int, np.ndarray]:
        """Symbol ``i``'s row range and each row's key time."""
        offsets = self.offsets[i]
        ts = np.repeat(np.asarray(self.keys[i], dtype=np.int64), np.diff(offsets))
        return offsets[0], offsets[-1], ts

    def subset(self, symbols: Sequence[str]) -> RecordTable:
        """The same records for ``symbols`` (a symbol without records has none; one
        this table does not cover is refused)."""
        symbols = list(symbols)
        if symbols == self.symbols:
            return self
        index = {s: i for i, s in enumerate(self.symbols)}
        missing = [s for s in symbols if s not in index]
        if missing:
            refuse_unknown_symbols(missing, self.symbols, f"records table {self.name!r}")
        spans = [self._rows_of(index[s]) for s in symbols]
        rows = np.concatenate([np.arange(lo, hi) for lo, hi, _ in spans]) if spans else \
            np.array([], dtype=np.int64)
        sym_index = np.repeat(np.arange(len(symbols)), [hi - lo for lo, hi, _ in spans])
        ts = np.concatenate([t for _, _, t in spans]) if spans else np.array([], np.int64)
        columns = {name: col[rows] for name, col in self.columns.items()}
        return RecordTable(self.name, symbols, sym_index, ts, columns, self.kinds)

    def fingerprint(self) -> str:
        """A hash of everything a strategy can read from the table (names, kinds, keys,
        record order and values): equal tables, equal hashes."""
        h = hashlib.blake2b(digest_size=16)
        h.update(json.dumps([self.name, self.symbols, self.kinds]).encode())
        for keys, offsets in zip(self.keys, self.offsets):
            h.update(np.asarray(keys, dtype=np.int64).tobytes())
            h.update(np.asarray(offsets, dtype=np.int64).tobytes())
        for name in self.fields:
            col = self.columns[name]
            if col.dtype == object:
                h.update(json.dumps(col.tolist()).encode())
            else:
                h.update(np.ascontiguousarray(col).tobytes())
        return h.hexdigest()

    def frame(self, symbol: str | None = None) -> pd.DataFrame:
        """Every record (of ``symbol``) as a DataFrame: symbol, ts, then the fields."""
        if symbol is not None and symbol not in self.symbols:
            refuse_unknown_symbols([symbol], self.symbols, f"records table {self.name!r}")
        parts = []
        for i, name in enumerate(self.symbols):
            if symbol is not None and name != symbol:
                continue
            offsets, keys = self.offsets[i], self.keys[i]
            if not keys:
                continue
            lo, hi = offsets[0], offsets[-1]
            ts = np.repeat(np.asarray(keys, dtype=np.int64), np.diff(offsets))
            part = {"symbol": np.full(hi - lo, name, dtype=object),
                    "ts": pd.to_datetime(ts, utc=True)}
            part.update(_frame_columns(self, lo, hi))
            parts.append(pd.DataFrame(part))
        if not parts:
            return pd.DataFrame({"symbol": [], "ts": pd.to_datetime([], utc=True),
                                 **_frame_columns(self, 0, 0)})
        return pd.concat(parts, ignore_index=True)


def _frame_columns(table: RecordTable, lo: int, hi: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in table.fields:
        col = table.columns[name][lo:hi]
        if table.kinds[name] == "timestamp":
            out[name] = pd.DatetimeIndex(col.view("datetime64[ns]")).tz_localize("UTC")
        else:
            out[name] = col.copy()
    return out


class RecordSet:
    """The records of one (symbol, key time): light read-only numpy columns.

    ``zones.level`` (or ``zones["level"]``) is the ``level`` field of every record of the
    set, in the order they were ingested; ``len(zones)`` the number of records;
    ``for z in zones`` gives each record as a named tuple; ``zones.frame()`` a small
    DataFrame. ``zones.time`` is the key time (None for the empty set before a symbol's
    first key). Timestamp fields are int64 UTC nanoseconds (as ``Strategy.now``); missing
    ones are numpy's NaT (int64 min); ``frame()`` shows them as timestamps.
    """

    def __init__(self, table: RecordTable, lo: int, hi: int, ts: int | None) -> None:
        self._table = table
        self._lo = lo
        self._hi = hi
        #: The key time in UTC ns, or None when no key was reached yet.
        self.ts = ts

    def __getattr__(self, name: str) -> np.ndarray:
        # Only reached for names not set yet: a field's column is sliced once, then kept.
        table = self.__dict__.get("_table")
        if table is None or name not in table.columns:
            fields = () if table is None else table.fields
            raise AttributeError(f"records table {getattr(table, 'name', '?')!r} has no field "
                                 f"{name!r}{did_you_mean(name, list(fields))} (fields: "
                                 f"{', '.join(fields)})")
        column = table.columns[name][self._lo:self._hi]
        self.__dict__[name] = column
        return column

    def __getitem__(self, name: str) -> np.ndarray:
        if not isinstance(name, str):
            raise TypeError("index a RecordSet by field name, e.g. zones['level']")
        return self.__getattr__(name)

    def __len__(self) -> int:
        return self._hi - self._lo

    def __bool__(self) -> bool:
        return self._hi > self._lo

    def __iter__(self) -> Iterator[Any]:
        record = _record_type(self._table)
        columns = [getattr(self, f).tolist() for f in self._table.fields]
        for values in zip(*columns):
            yield record(*values)

    @property
    def fields(self) -> tuple[str, ...]:
        """The field names, in the table's order."""
        return self._table.fields

    @property
    def time(self) -> pd.Timestamp | None:
        """The key time as a UTC timestamp (None before the symbol's first key)."""
        return None if self.ts is None else pd.Timestamp(self.ts, tz="UTC")

    def frame(self) -> pd.DataFrame:
        """The records as a DataFrame (a copy), timestamp fields as UTC timestamps."""
        return pd.DataFrame(_frame_columns(self._table, self._lo, self._hi))

    def __repr__(self) -> str:
        when = "no key yet" if self.ts is None else str(self.time)
        return f"RecordSet({self._table.name!r}, {when}, {len(self)} records)"


_RECORD_TYPES: dict[tuple[str, tuple[str, ...]], type] = {}


def _record_type(table: RecordTable) -> type:
    from collections import namedtuple

    key = (table.name, table.fields)
    kind = _RECORD_TYPES.get(key)
    if kind is None:
        kind = _RECORD_TYPES[key] = namedtuple("Record", table.fields)  # type: ignore[misc]
    return kind


class _Cursor:
    """Where one symbol's records were last read: valid for now in ``[lo, hi)``."""

    __slots__ = ("current", "hi", "k", "keys", "lo", "table", "i")

    def __init__(self, table: RecordTable, i: int) -> None:
        self.table, self.i = table, i
        self.keys = table.keys[i]
        self.k = -1
        self.lo = -(2**63)
        self.hi = self.keys[0] if self.keys else 2**63
        self.current = table.empty

    def seek(self, now: int) -> RecordSet:
        keys = self.keys
        k = self.k + 1
        n = len(keys)
        # Time moves forward: most misses are the next key; otherwise binary search.
        if not (k < n and keys[k] <= now and (k + 1 >= n or now < keys[k + 1])):
            k = bisect_right(keys, now) - 1
        self.k = k
        if k < 0:
            self.lo, self.hi = -(2**63), keys[0] if keys else 2**63
            self.current = self.table.empty
        else:
            self.lo = keys[k]
            self.hi = keys[k + 1] if k + 1 < n else 2**63
            self.current = self.table.at(self.i, k)
        return self.current


class RecordBook:
    """A strategy's record tables with a cursor per (table, symbol).

    `current` answers in O(1) while the tick stays before the symbol's next key (the
    cursor's answer is reused), and by binary search otherwise.
    """

    def __init__(self, tables: Mapping[str, RecordTable] | None) -> None:
        self.tables = dict(tables or {})
        self.cursors = {name: [_Cursor(t, i) for i in range(len(t.symbols))]
                        for name, t in self.tables.items()}

    def current(self, name: str, i: int, now: int) -> RecordSet:
        """The record set of symbol ``i`` in table ``name`` at ``now`` (UTC ns)."""
        try:
            cursor = self.cursors[name][i]
        except KeyError:
            raise self.unknown(name) from None
        if cursor.lo <= now < cursor.hi:
            return cursor.current
        return cursor.seek(now)

    def unknown(self, name: Any) -> KeyError:
        known = list(self.tables)
        if not known:
            return _UnknownTable(
                f"no records table {name!r}: this backtest was given none; pass "
                "records=['name'] (tables of the store) or records={'name': frame} to Backtest"
            )
        return _UnknownTable(f"no records table {name!r}{did_you_mean(str(name), known)} "
                             f"(tables of this backtest: {', '.join(known)})")


class _UnknownTable(DataError, KeyError):
    """A strategy asked for a records table the backtest was not given."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# ---- stores ------------------------------------------------------------------------------


def _sql_name(table: str) -> str:
    return f'"records_{check_table_name(table)}"'


def _stored_kinds(store: Any, table: str) -> dict[str, str] | None:
    """The fields of a stored table and their kinds (None if it does not exist)."""
    rows = store._arrow(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_name = $1 AND table_schema = current_schema() ORDER BY ordinal_position",
        [f"records_{table}"] if store.dialect.name == "duckdb" else (f"records_{table}",),
    ).to_pylist()
    if not rows:
        return None
    return {r["column_name"]: _sql_kind(r["data_type"]) or r["data_type"]
            for r in rows if r["column_name"] not in ("symbol_id", "ts", "seq")}


def record_tables(store: Any) -> pd.DataFrame:
    """The record tables of ``store``: name -> fields, keys, records, symbols."""
    rows = store._frame(
        "SELECT table_name, column_name, data_type FROM information_schema.columns "
        "WHERE left(table_name, 8) = 'records_' AND table_schema = current_schema() "
        "ORDER BY table_name, ordinal_position"
    )
    out = []
    for table_name, part in rows.groupby("table_name", sort=True):
        name = str(table_name)[len("records_"):]
        fields = [f"{c}:{_sql_kind(t) or t}" for c, t in zip(part["column_name"], part["data_type"])
                  if c not in ("symbol_id", "ts", "seq")]
        t = _sql_name(name)
        counts = store._frame(
            f"SELECT (SELECT count(*) FROM {t}) AS records, (SELECT count(DISTINCT symbol_id) "
            f"FROM {t}) AS symbols, (SELECT count(*) FROM (SELECT DISTINCT symbol_id, ts FROM "
            f"{t}) k) AS keys"
        ).iloc[0]
        out.append({"table": name, "fields": ", ".join(fields), "symbols": int(counts["symbols"]),
                    "keys": int(counts["keys"]), "records": int(counts["records"])})
    frame = pd.DataFrame(out, columns=["table", "fields", "symbols", "keys", "records"])
    return frame.set_index("table")


def _stage_table(rows: RecordRows, ids: dict[str, int]) -> pa.Table:
    order = rows.grouped_order()
    sid = np.array([ids[s] for s in rows.symbols], dtype=np.int32)[rows.codes[order]]
    arrays: dict[str, Any] = {
        "symbol_id": pa.array(sid, pa.int32()),
        "ts": pa.array(rows.ts[order], pa.int64()),
        "seq": pa.array(rows.seq(order), pa.int32()),
    }
    for name, (kind, col) in rows.fields.items():
        col = col[order]
        if kind == "timestamp":
            missing = col == _NAT
            arrays[name] = pa.array(np.where(missing, 0, col // 1000), pa.int64(),
                                    mask=missing).cast(pa.timestamp("us", tz="UTC"))
        elif kind == "string":
            arrays[name] = pa.array(col, pa.string())
        else:
            arrays[name] = pa.array(col)
    return pa.table(arrays)


def _check_microseconds(rows: RecordRows) -> None:
    """Stores keep timestamp fields to the microsecond (PostgreSQL's precision; the same
    rule for DuckDB so that both stores hold the same values)."""
    for name, (kind, col) in rows.fields.items():
        if kind != "timestamp":
            continue
        bad = (col != _NAT) & (col % 1000 != 0)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise _refusal(rows.table, f"timestamp {_fmt_ns(col[row])} has nanoseconds; stores "
                           "keep timestamp fields to the microsecond: round them "
                           "(Series.dt.floor('us'))", column=name, row=row,
                           symbol=rows.symbols[rows.codes[row]], ts=int(rows.ts[row]),
                           rule="microsecond timestamps")


def _check_kinds(table: str, stored: dict[str, str], rows: RecordRows) -> dict[str, str]:
    """The data's fields must be the stored table's: same names, same kinds (an int
    field may go into a float one). Returns the kinds to stage."""
    have, want = set(rows.fields), set(stored)
    if have != want:
        missing, extra = sorted(want - have), sorted(have - want)
        parts = []
        if missing:
            parts.append(f"missing field(s) {missing}")
        if extra:
            parts.append(f"unknown field(s) {extra}")
        raise _refusal(table, f"the data's fields differ from the stored table's: "
                       f"{'; '.join(parts)} (stored: {', '.join(stored)})",
                       column=(missing or extra)[0], rule="same fields")
    for name, (kind, col) in list(rows.fields.items()):
        target = stored[name]
        if kind == target:
            continue
        if kind == "int" and target == "float":
            rows.fields[name] = ("float", col.astype(np.float64))
            continue
        raise _refusal(table, f"the field is {kind} in the data but {target} in the store",
                       column=name, rule="same field kinds")
    return rows.kinds


def ingest_records(
    store: Any,
    table: str,
    data: Any,
    *,
    symbol: str | None = None,
    symbol_column: str | None = None,
    on_conflict: str = "refuse",
) -> int:
    """Validate ``data`` and add it to ``store``'s table ``table`` in one transaction;
    return the number of records added or replaced (see `BarStore.ingest_records`)."""
    if on_conflict not in ("refuse", "replace"):
        raise DataError(f"on_conflict must be 'refuse' or 'replace', got {on_conflict!r}",
                        rule="on_conflict")
    rows = read_records(data, table=table, symbol=symbol, symbol_column=symbol_column)
    try:
        return _ingest_rows(store, table, rows, on_conflict)
    except DataError as err:
        raise _in_file(err, rows.source, rows.csv) from None


def _ingest_rows(store: Any, table: str, rows: RecordRows, on_conflict: str) -> int:
    _check_microseconds(rows)
    sql_table = _sql_name(table)
    types = _SQL_TYPES[store.dialect.name]
    with store._transaction():
        ids = _symbol_ids(store, rows.symbols)
        unknown = set(rows.symbols) - set(ids)
        if unknown:
            known = store._arrow("SELECT symbol FROM symbols").column(0).to_pylist()
            try:
                refuse_unknown_symbols(unknown, list(known), "the store")
            except DataError as err:
                first = sorted(unknown)[0]
                row = int(np.flatnonzero(rows.codes == rows.symbols.index(first))[0])
                raise _refusal(table, f"{err} (ingest bars or metadata for a symbol before "
                               "its records)", row=row, symbol=first, ts=int(rows.ts[row]),
                               rule="known symbol") from None
        stored = _stored_kinds(store, table)
        if stored is None:
            columns = ", ".join(f'"{n}" {types[k]}' for n, k in rows.kinds.items())
            key = ", PRIMARY KEY (symbol_id, ts, seq)" if store.dialect.name == "postgres" else ""
            store._run(f"CREATE TABLE {sql_table} (symbol_id INTEGER NOT NULL, ts BIGINT NOT "
                       f"NULL, seq INTEGER NOT NULL{', ' + columns if columns else ''}{key})")
        else:
            _check_kinds(table, stored, rows)
        staged = _stage_table(rows, ids)
        names = {v: k for k, v in ids.items()}
        with store._staged("_tickstep_records_in", staged):
            return _merge(store, table, sql_table, list(rows.fields), on_conflict, names)


def _symbol_ids(store: Any, names: list[str]) -> dict[str, int]:
    """Ids of the stored symbols among ``names`` (unknown names are absent)."""
    if store.dialect.name == "duckdb":
        sql = "SELECT symbol, symbol_id FROM symbols WHERE symbol IN (SELECT unnest($1::VARCHAR[]))"
        params: Any = [names]
    else:
        sql = "SELECT symbol, symbol_id FROM symbols WHERE symbol = ANY($1::TEXT[])"
        params = (names,)
    table = store._arrow(sql, params)
    return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist()))


def _merge(store: Any, table: str, sql_table: str, fields: list[str], on_conflict: str,
           names: dict[int, str]) -> int:
    """Merge staged records by key (symbol, ts): a key's records are one set."""
    differs = " OR ".join(
        ["n.seq IS NULL", "o.seq IS NULL"]
        + [f'n."{f}" IS DISTINCT FROM o."{f}"' for f in fields]
    )
    store._run(
        "CREATE TEMP TABLE _tickstep_records_conflicts AS "
        "WITH k AS (SELECT DISTINCT r.symbol_id, r.ts FROM "
        f"{sql_table} r JOIN (SELECT DISTINCT symbol_id, ts FROM _tickstep_records_in) s "
        "ON r.symbol_id = s.symbol_id AND r.ts = s.ts), "
        "n AS (SELECT s.* FROM _tickstep_records_in s JOIN k ON s.symbol_id = k.symbol_id "
        "AND s.ts = k.ts), "
        f"o AS (SELECT r.* FROM {sql_table} r JOIN k ON r.symbol_id = k.symbol_id AND r.ts = k.ts) "
        "SELECT DISTINCT coalesce(n.symbol_id, o.symbol_id) AS symbol_id, "
        "coalesce(n.ts, o.ts) AS ts FROM n FULL OUTER JOIN o ON n.symbol_id = o.symbol_id "
        f"AND n.ts = o.ts AND n.seq = o.seq WHERE {differs}"
    )
    try:
        first = store._arrow(
            "SELECT symbol_id, ts, count(*) OVER () AS total FROM _tickstep_records_conflicts "
            "ORDER BY symbol_id, ts LIMIT 5"
        ).to_pylist()
        if first and on_conflict == "refuse":
            total = first[0]["total"]
            shown = "; ".join(f"symbol {names[r['symbol_id']]!r} at {_fmt_ns(r['ts'])}"
                              for r in first)
            more = f" and {total - len(first)} more" if total > len(first) else ""
            raise DataError(
                f"records table {table!r}: {total} key(s) are already stored with different "
                f"records: {shown}{more}; a key's records are one set: pass "
                "on_conflict='replace' to replace those sets (rule 'no conflicting keys')",
                symbol=names[first[0]["symbol_id"]],
                timestamp=pd.Timestamp(first[0]["ts"], tz="UTC"),
                rule="no conflicting keys",
            )
        if first:
            store._run(
                f"DELETE FROM {sql_table} WHERE EXISTS (SELECT 1 FROM "
                f"_tickstep_records_conflicts c WHERE c.symbol_id = {sql_table}.symbol_id "
                f"AND c.ts = {sql_table}.ts)"
            )
        columns = ", ".join(f'"{c}"' for c in ("symbol_id", "ts", "seq", *fields))
        added = store._run(
            f"INSERT INTO {sql_table} ({columns}) SELECT {columns} FROM _tickstep_records_in n "
            "WHERE NOT EXISTS "
            f"(SELECT 1 FROM {sql_table} r WHERE r.symbol_id = n.symbol_id AND r.ts = n.ts) "
            "ORDER BY n.symbol_id, n.ts, n.seq"
        )
        # PostgreSQL answers a row count, DuckDB a result holding it.
        added = added if isinstance(added, int) else int(added.fetchone()[0])
    finally:
        with suppress(Exception):
            store._run("DROP TABLE IF EXISTS _tickstep_records_conflicts")
    return added


def records_query(store: Any, table: str, ids: np.ndarray, lo: int, hi: int,
                  ) -> tuple[str, dict[str, Any]]:
    """The one statement loading ``table`` for symbols ``ids``: keys in ``[lo, hi)``
    and, per symbol, the latest key at or before ``lo`` (what the first tick sees)."""
    sql_table = _sql_name(table)
    dialect = store.dialect
    params: dict[str, Any] = {}
    member = dialect.member("r.symbol_id", ids, params)
    if lo <= -(2**63):
        return (f"SELECT r.* FROM {sql_table} r WHERE {member} AND r.ts < {int(hi)} "
                "ORDER BY r.symbol_id, r.ts, r.seq", params)
    member_p = dialect.member("p.symbol_id", ids, params)
    return (
        f"WITH first_key AS (SELECT p.symbol_id, max(p.ts) AS ts FROM {sql_table} p "
        f"WHERE {member_p} AND p.ts <= {int(lo)} GROUP BY p.symbol_id) "
        f"SELECT r.* FROM {sql_table} r LEFT JOIN first_key f ON f.symbol_id = r.symbol_id "
        f"WHERE {member} AND r.ts < {int(hi)} AND r.ts >= coalesce(f.ts, {int(lo)}) "
        "ORDER BY r.symbol_id, r.ts, r.seq",
        params,
    )


def _numpy_column(column: pa.ChunkedArray, kind: str) -> np.ndarray:
    if kind == "timestamp":
        ns = pc.cast(pc.cast(column, pa.timestamp("ns", tz="UTC")), pa.int64())
        return np.asarray(ns.fill_null(_NAT).to_numpy(), dtype=np.int64)
    if kind == "string":
        return np.asarray(column.to_numpy(zero_copy_only=False), dtype=object)
    out = column.to_numpy() if column.num_chunks != 1 else column.chunk(0).to_numpy(
        zero_copy_only=False)
    return np.array(out, dtype=FIELD_KINDS[kind], copy=True)


def _kind_of(arrow_type: pa.DataType, name: str) -> str:
    if pa.types.is_timestamp(arrow_type):
        return "timestamp"
    if pa.types.is_floating(arrow_type) or pa.types.is_decimal(arrow_type):
        return "float"
    if pa.types.is_integer(arrow_type):
        return "int"
    if pa.types.is_boolean(arrow_type):
        return "bool"
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type) \
            or pa.types.is_string_view(arrow_type):
        return "string"
    raise DataError(f"records field {name!r} has SQL type {arrow_type} that tickstep does not "
                    "read", rule="field kinds")


def load_records(
    store: Any,
    table: str,
    symbols: Sequence[str] | None = None,
    *,
    start: Any = None,
    end: Any = None,
) -> RecordTable:
    """Load ``table`` from ``store`` for ``symbols`` in one statement (see
    `BarStore.load_records`). Symbol ids the store has seen in a metadata query (e.g.
    the bars load of the same backtest) are not looked up again."""
    check_table_name(table)
    lo, hi = time_bounds(start, end)
    known = store._known_ids
    if symbols is not None and all(s in known for s in symbols):
        names = sorted(symbols)
        ids = np.array([known[s] for s in names], dtype=np.int32)
    else:
        meta = store._metadata_rows(None if symbols is None else list(symbols),
                                    with_range=False)
        if symbols is not None:
            refuse_unknown_symbols(set(symbols) - set(meta["symbol"]), list(meta["symbol"]),
                                   "the store")
        names = list(meta["symbol"])
        ids = meta["symbol_id"].to_numpy(np.int32)
    sql, params = records_query(store, table, ids, lo, hi)
    try:
        result = store._read_bars(sql, params)
    except Exception:
        tables = list(record_tables(store).index)
        if table not in tables:
            hint = did_you_mean(table, tables)
            listing = ", ".join(tables) if tables else "none"
            raise DataError(f"the store has no records table {table!r}{hint} (record tables: "
                            f"{listing}); add one with ingest_records", rule="known table",
                            ) from None
        raise
    return table_from_arrow(table, result, names, ids)


def table_from_arrow(table: str, result: pa.Table, names: list[str], ids: np.ndarray,
                     ) -> RecordTable:
    """A records query's rows (ordered by symbol_id, ts, seq) grouped for ``names``."""
    position = {int(sid): i for i, sid in enumerate(ids)}
    sid = np.asarray(result.column("symbol_id").to_numpy(), dtype=np.int64)
    lookup = np.full(int(sid.max()) + 1 if len(sid) else 1, -1, dtype=np.int64)
    for s, i in position.items():
        if s < len(lookup):
            lookup[s] = i
    sym_index = lookup[sid]
    ts = np.asarray(result.column("ts").to_numpy(), dtype=np.int64)
    kinds, columns = {}, {}
    for field in result.schema:
        if field.name in ("symbol_id", "ts", "seq"):
            continue
        kinds[field.name] = kind = _kind_of(field.type, field.name)
        columns[field.name] = _numpy_column(result.column(field.name), kind)
    return RecordTable(table, names, sym_index, ts, columns, kinds)


# ---- a backtest's record tables ------------------------------------------------------------


def _requests(records: Any) -> dict[str, Any]:
    """``records=`` as {name: None (from the store) or data}."""
    if records is None:
        return {}
    if isinstance(records, str):
        records = [records]
    if isinstance(records, Mapping):
        out = dict(records)
    elif isinstance(records, (list, tuple)):
        out = {}
        for name in records:
            if name in out:
                raise DataError(f"records={list(records)!r} names {name!r} twice",
                                rule="distinct tables")
            out[name] = None
    else:
        raise DataError(
            f"records={type(records).__name__}: pass table names of the store "
            "(records=['zones']) or a mapping name -> records (records={'zones': frame})",
            rule="records argument",
        )
    for name in out:
        check_table_name(name)
    return out


def records_for_backtest(
    source: Any,
    records: Any,
    symbols: Sequence[str],
    *,
    selected: bool,
    start: Any = None,
    end: Any = None,
) -> dict[str, RecordTable]:
    """The record tables a backtest asked for, grouped for its ``symbols``.

    A name alone (``records=["zones"]``) is loaded from ``source``, which must be a store
    (one statement per table, all symbols and times at once). A mapping gives the
    records themselves (a DataFrame, Arrow/Polars table or file; or None for the
    store's table). In-memory records naming a symbol the backtest's data lacks are
    refused -- unless ``selected`` (the user chose a subset of symbols), when the other
    symbols' records are left out.
    """
    wanted = _requests(records)
    out: dict[str, RecordTable] = {}
    for name, data in wanted.items():
        if isinstance(data, RecordTable):  # loaded already (a Backtest's, in a batch)
            out[name] = data.subset(symbols)
            continue
        if data is None:
            load = getattr(source, "load_records", None)
            if load is None:
                here = "in memory" if source is None else repr(source)
                raise DataError(
                    f"records table {name!r}: only a store (DuckDB or PostgreSQL) holds "
                    f"named record tables, the data here is {here}; pass the records "
                    f"themselves: records={{{name!r}: frame}}",
                    rule="records from a store",
                )
            out[name] = load(name, symbols, start=start, end=end)
            continue
        only = symbols[0] if len(symbols) == 1 else None
        try:
            rows = read_records(data, table=name)
        except DataError as err:
            if only is None or err.rule != "symbol column present" or \
                    getattr(err, "column", None) is not None:
                raise
            # One symbol's backtest: records without a symbol column are that symbol's.
            rows = read_records(data, table=name, symbol=only)
        unknown = sorted(set(rows.symbols) - set(symbols))
        if unknown and not selected:
            first = unknown[0]
            row = int(np.flatnonzero(rows.codes == rows.symbols.index(first))[0])
            raise _refusal(
                name, f"symbol {first!r} is not in the backtest's data"
                f"{did_you_mean(first, list(symbols))} ({len(unknown)} unknown symbol(s))",
                row=row, symbol=first, ts=int(rows.ts[row]), rule="known symbol")
        out[name] = RecordTable.from_rows(rows, symbols)
    return out


# ---- snapshots for batch workers -----------------------------------------------------------

_SNAPSHOT_META = b"tickstep.records"


def write_record_snapshot(table: RecordTable, path: Path) -> None:
    """Write ``table`` as an Arrow IPC file (atomically) for workers to read."""
    spans = [table._rows_of(i) for i in range(len(table.symbols))]
    sym = np.repeat(np.arange(len(spans), dtype=np.int32), [hi - lo for lo, hi, _ in spans])
    ts = np.concatenate([t for _, _, t in spans]) if spans else np.array([], np.int64)
    arrays: dict[str, Any] = {"symbol": pa.array(sym), "ts": pa.array(ts)}
    for name in table.fields:
        col = table.columns[name]
        arrays[name] = pa.array(col, pa.string()) if table.kinds[name] == "string" else \
            pa.array(col)
    meta = {"name": table.name, "symbols": table.symbols, "kinds": table.kinds}
    data = pa.table(arrays).replace_schema_metadata({_SNAPSHOT_META: json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, data.schema) as writer:
        writer.write_table(data)
    os.replace(tmp, path)


def read_record_snapshot(path: str | PathLike[str]) -> RecordTable:
    """A table written by `write_record_snapshot`."""
    data = pa.ipc.open_file(pa.memory_map(str(path))).read_all()
    meta = json.loads(data.schema.metadata[_SNAPSHOT_META])
    kinds = meta["kinds"]
    # Timestamp fields are stored as their int64 nanoseconds.
    columns = {name: _numpy_column(data.column(name), "int" if kind == "timestamp" else kind)
               for name, kind in kinds.items()}
    sym = np.asarray(data.column("symbol").to_numpy(), dtype=np.int64)
    ts = np.asarray(data.column("ts").to_numpy(), dtype=np.int64)
    return RecordTable(meta["name"], meta["symbols"], sym, ts, columns, kinds)
