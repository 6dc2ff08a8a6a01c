"""Arrow tables -> validated columns, without copying what is already right.

Accepted: a pyarrow ``Table``, ``RecordBatch`` or ``RecordBatchReader``; a Polars
``DataFrame`` or ``LazyFrame`` (collected; Polars is never imported unless the user
passed one); any object exposing the Arrow PyCapsule stream interface
(``__arrow_c_stream__``), e.g. a DuckDB relation. Each is read as an Arrow table in the
shapes of `_shapes` (one symbol's table, or a long table with a symbol column).

Arrow buffers are immutable, so a column that is already float64 (or int64 nanosecond
timestamps), without nulls and in one chunk, is viewed by numpy in place and the engine
adopts that view: the bars are held once. Any other column is converted once. Types the
door does not read natively (text timestamps, non-numeric values) go through the pandas
reader's own conversion, so they are refused with the same messages as in pandas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tickstep.data._columns import (
    VALUE_COLUMNS,
    DataError,
    SymbolBars,
    _where,
    check_bars,
    check_extra_columns,
)
from tickstep.data._frames import extra_values, float_column, timestamps_ns
from tickstep.data._shapes import (
    ALL_EXTRA,
    DEFAULT_SYMBOL,
    ExtraColumns,
    check_symbol_names,
    find_columns,
    is_identifier_name,
    names_instrument,
    refuse_identifier_column,
    refuse_no_rows,
    split_by_symbol,
    symbol_label,
    timestamp_label,
)

__all__ = ["arrow_table", "is_arrow_like", "read_one", "read_table"]


def _is_polars(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "polars"


def is_arrow_like(data: Any) -> bool:
    """Whether ``data`` is a table the Arrow reader takes (checked without importing Polars).

    A pandas Series (or Index) exports an Arrow stream too, but of one column of values,
    not a table of bars: it is not taken (the door refuses it by its type)."""
    if isinstance(data, (pd.Series, pd.Index)):
        return False
    return (
        isinstance(data, (pa.Table, pa.RecordBatch, pa.RecordBatchReader))
        or _is_polars(data)
        or hasattr(data, "__arrow_c_stream__")
    )


def readable_twice(data: Any) -> Any:
    """``data``, readable a second time: a single-use stream of record batches
    (``pyarrow.RecordBatchReader``) is read into a table here, once, where a caller reads
    it for the run's symbols and then for another (a benchmark's); anything else as it
    is. (The door reads such a stream whole anyway, then picks the symbols asked.)"""
    return data.read_all() if isinstance(data, pa.RecordBatchReader) else data


def arrow_table(data: Any) -> pa.Table:
    """``data`` as a pyarrow Table (no copy of the column buffers where avoidable)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if isinstance(data, pa.RecordBatchReader):
        return data.read_all()
    if _is_polars(data) and not hasattr(data, "to_arrow"):  # a LazyFrame
        data = data.collect()
    if hasattr(data, "__arrow_c_stream__"):
        # The stream hands over the producer's own buffers (Polars' text columns as
        # string views, which its to_arrow() would copy into plain strings).
        return pa.RecordBatchReader.from_stream(data).read_all()
    return data.to_arrow()


def _saved_index(table: pa.Table) -> set[str]:
    """Columns holding a pandas index saved with the table (``Table.from_pandas``,
    Parquet written by pandas): the frame's row labels, not data about the bars."""
    meta = table.schema.pandas_metadata or {}
    return {n for n in meta.get("index_columns", []) if isinstance(n, str)}


def _is_text(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_string_view(kind)
        or pa.types.is_dictionary(kind)
    )


def _extra_values(
    column: pa.ChunkedArray, label: str, symbol: str | None, chosen: bool, names: Any
) -> np.ndarray:
    """An extra column as float64: a view of the Arrow buffer when already float64 in
    one chunk without nulls; nulls read as NaN; other types as the pandas reader reads them."""
    kind = column.type
    numeric = pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind)
    if numeric or (pa.types.is_boolean(kind) and chosen):
        if kind != pa.float64():
            column = pc.cast(column, pa.float64(), safe=False)
        if column.null_count:
            # Nulls as NaN in a new Arrow array (immutable, so the engine adopts it).
            column = pc.fill_null(column, np.nan)
        return _single(column).to_numpy(zero_copy_only=False)
    # Refused, with the same message as from pandas (``names``: the rows' symbols, read
    # only now that they are needed for the message).
    series = column.to_pandas()
    return extra_values(series, label, symbol, chosen, None if names is None else names())


def _extra_columns(
    table: pa.Table,
    used: set[str],
    symbol: str | None,
    extra: ExtraColumns,
    symbol_column: str | None = None,
    names: Any = None,
) -> dict[str, np.ndarray]:
    labels = [
        f.name for f in table.schema if not names_instrument(f.name, _is_text(f.type), symbol_column)
    ]
    used = used | _saved_index(table)
    chosen = extra.names is not None
    picked = extra.pick(labels, used, symbol)
    return {
        name: _extra_values(table.column(label), label, symbol, chosen, names)
        for name, label in picked
    }


def _index_column(table: pa.Table) -> str | None:
    """A pandas DatetimeIndex saved into the table (``Table.from_pandas``), if any."""
    meta = table.schema.pandas_metadata or {}
    for name in meta.get("index_columns", []):
        if isinstance(name, str) and name in table.column_names:
            if pa.types.is_timestamp(table.schema.field(name).type):
                return name
    return None


def _single(column: pa.ChunkedArray) -> pa.Array:
    """The column as one array: its only chunk as it is, or its chunks joined (a copy)."""
    if column.num_chunks == 1:
        return column.chunk(0)
    return column.combine_chunks()


def _values(column: pa.ChunkedArray, name: str, symbol: str | None) -> np.ndarray:
    """A price or volume column as float64; a view of the Arrow buffer when already so."""
    kind = column.type
    if pa.types.is_floating(kind) or pa.types.is_integer(kind) or pa.types.is_decimal(kind):
        if kind != pa.float64():
            # Integers beyond 2**53 round, as numpy's conversion would.
            column = pc.cast(column, pa.float64(), safe=False)
        array = _single(column)
        # Nulls become NaN, which the rules refuse like any missing price.
        return array.to_numpy(zero_copy_only=False)
    return float_column(column.to_pandas(), name, symbol)


def _timestamps(column: pa.ChunkedArray, symbol: str | None) -> tuple[np.ndarray, bool]:
    """Timestamps as int64 UTC ns (a view when already so) and whether tz-aware."""
    kind = column.type
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        aware = pa.types.is_timestamp(kind) and kind.tz is not None
        target = pa.timestamp("ns", tz=kind.tz if aware else None)
        if kind != target:
            try:
                column = pc.cast(column, target)
            except (pa.ArrowInvalid, OverflowError) as exc:
                raise DataError(
                    f"{_where(symbol) or 'data'}: timestamp out of range: {exc}",
                    symbol=symbol,
                    rule="timestamp in range",
                ) from None
        array = _single(column)
        if array.null_count:
            # Missing timestamps read as NaT, which the rules refuse with their row.
            array = pc.fill_null(array.cast(pa.int64()), np.iinfo(np.int64).min)
            return array.to_numpy(zero_copy_only=False), aware
        return array.view(pa.int64()).to_numpy(zero_copy_only=False), aware
    return timestamps_ns(column.to_pandas(), symbol)


def _refuse_identifiers(table: pa.Table, used: set[str], symbol: str | None) -> None:
    """A table read as one symbol's bars holds no column naming several instruments."""
    for field in table.schema:
        if field.name in used:
            continue
        kind = field.type
        text = _is_text(kind)
        if text or (pa.types.is_integer(kind) and is_identifier_name(field.name)):
            column = table.column(field.name)
            if pa.types.is_dictionary(kind):
                column = column.cast(kind.value_type)
            distinct = pc.unique(column.drop_null())
            if len(distinct) > 1:
                refuse_identifier_column(field.name, distinct.to_pylist(), symbol)


def _columns(
    table: pa.Table, symbol: str | None
) -> tuple[np.ndarray, bool, list[np.ndarray], set[str]]:
    found = find_columns(table.column_names, symbol)
    refuse_no_rows(table.num_rows, symbol)
    index = _index_column(table)
    label = timestamp_label(found, index, "DatetimeIndex", symbol)
    ts, aware = _timestamps(table.column(label), symbol)
    values = [_values(table.column(found[name]), name, symbol) for name in VALUE_COLUMNS]
    used = set(found.values()) | ({index} if index else set())
    return ts, aware, values, used


def read_one(
    data: Any, symbol: str, extra: ExtraColumns = ALL_EXTRA, *, alone: bool = False
) -> tuple[SymbolBars, bool]:
    """One symbol's table -> its bars and whether its timestamps were tz-aware.

    ``alone``: the table is all the data (so ``allow_nan`` must name its columns)."""
    table = arrow_table(data)
    ts, aware, values, used = _columns(table, symbol)
    _refuse_identifiers(table, used, symbol)
    columns = _extra_columns(table, used, symbol, extra)
    if alone:
        extra.check_nan_names(columns)
    check_bars(symbol, ts, *values)
    check_extra_columns(symbol, ts, columns, extra.allow_nan)
    return SymbolBars._trusted(symbol, ts, *values, extra=columns), aware


def _symbol_codes(column: pa.ChunkedArray) -> tuple[np.ndarray, list[Any]]:
    """Per row, the index of its symbol among the sorted distinct names (-1 if missing)."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
    try:
        encoded = pc.dictionary_encode(_single(column))
    except pa.ArrowNotImplementedError:  # a text type this Arrow cannot encode yet
        encoded = pc.dictionary_encode(_single(column.cast(pa.large_string())))
    names = encoded.dictionary.to_pylist()
    indices = encoded.indices.to_numpy(zero_copy_only=False)
    if encoded.indices.null_count:
        indices = pc.fill_null(encoded.indices, -1).to_numpy(zero_copy_only=False)
    order = sorted(range(len(names)), key=lambda k: (not isinstance(names[k], str), str(names[k])))
    rank = np.empty(len(names) + 1, dtype=np.int64)
    rank[np.array(order, dtype=np.int64)] = np.arange(len(names))
    rank[-1] = -1
    codes = rank[indices.astype(np.int64)]
    return codes, [names[k] for k in order]


def read_table(
    data: Any,
    *,
    symbol_column: str | None,
    symbol: str | None,
    extra: ExtraColumns = ALL_EXTRA,
) -> list[SymbolBars]:
    """A table for one symbol, or a long table with a symbol column -> bars per symbol."""
    table = arrow_table(data)
    label = symbol_label(table.column_names, symbol_column)
    if label is None:
        return [read_one(table, symbol or DEFAULT_SYMBOL, extra, alone=True)[0]]
    refuse_no_rows(table.num_rows, None)
    codes, uniques = _symbol_codes(table.column(label))
    check_symbol_names(codes, uniques, None)
    ts, _aware, values, used = _columns(table, None)
    columns = _extra_columns(
        table, used | {label}, None, extra, symbol_column, lambda: table.column(label).to_pandas()
    )
    extra.check_nan_names(columns)
    return split_by_symbol(
        codes, [str(u) for u in uniques], ts, values, columns, extra.allow_nan
    )
