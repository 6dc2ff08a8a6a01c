"""The shapes bars come in, and the rules every in-memory reader applies the same way.

Bars in memory come as one symbol's table, a mapping ``symbol -> table``, or one long
table with a symbol column; the table may be a pandas DataFrame (`_frames`) or anything
Arrow speaks -- a pyarrow Table, a Polars frame, an Arrow PyCapsule producer such as a
DuckDB relation (`_arrow`). Both readers find columns, the timestamp source and the
symbol column, split a long table by symbol and refuse bad input through the functions
here, so a given mistake gets the same refusal from every kind of table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._columns import (
    TIMESTAMP_COLUMNS,
    VALUE_COLUMNS,
    DataError,
    MarketColumns,
    SymbolBars,
    _where,
    check_bars,
)

__all__ = ["to_market_columns"]

DEFAULT_SYMBOL = "ASSET"
# Names people give an instrument's identifier; a numeric column so named is taken for
# one (a text column is, whatever its name).
_IDENTIFIER_NAMES = re.compile(
    r"^(symbol|sym|ticker|tickers|instrument|asset|security|secid|sec_id|id|code|isin|"
    r"cusip|sedol|figi|ric|permno|permco|gvkey|conid|contract)s?$",
    re.IGNORECASE,
)


def find_columns(labels: Sequence[Any], symbol: str | None) -> dict[str, Any]:
    """Map canonical names (open, ..., volume, ts, ...) to the table's own labels.

    Names are matched case-insensitively; two labels that differ only by case are
    refused, and so is a table missing any of open, high, low, close, volume.
    """
    by_lower: dict[str, list[Any]] = {}
    for col in labels:
        if isinstance(col, str):
            by_lower.setdefault(col.strip().lower(), []).append(col)
    found = {}
    for name in VALUE_COLUMNS + TIMESTAMP_COLUMNS:
        matches = by_lower.get(name, [])
        if len(matches) > 1:
            raise DataError(
                f"{_where(symbol) or 'data'}: columns {matches} differ only by case; keep one",
                symbol=symbol,
                rule="unambiguous columns",
            )
        if matches:
            found[name] = matches[0]
    missing = [name for name in VALUE_COLUMNS if name not in found]
    if missing:
        have = ", ".join(map(str, labels))
        hint = (
            " (volume is required: sizing and volume-based rules need it; pass zeros if "
            "your source has none)"
            if "volume" in missing
            else ""
        )
        raise DataError(
            f"{_where(symbol) or 'data'}: missing column(s) {', '.join(missing)}; "
            f"columns present: {have}{hint}",
            symbol=symbol,
            rule="required columns",
        )
    return found


def timestamp_label(
    found: dict[str, Any], index_label: Any | None, index_name: str, symbol: str | None
) -> Any:
    """The one place timestamps come from: a named column or the table's time index.

    ``index_label`` is the index's label (None when the table has no time index) and
    ``index_name`` how to call it in messages. More than one source, or none, is refused.
    """
    named = [found[n] for n in TIMESTAMP_COLUMNS if n in found]
    if len(named) > 1 or (named and index_label is not None):
        where = ", ".join(map(repr, named)) + (
            f" and the {index_name}" if index_label is not None else ""
        )
        raise DataError(
            f"{_where(symbol) or 'data'}: timestamps found in more than one place ({where}); "
            "keep exactly one of a DatetimeIndex or a column named ts/timestamp/time/"
            "datetime/date",
            symbol=symbol,
            rule="one timestamp source",
        )
    if named:
        return named[0]
    if index_label is not None:
        return index_label
    raise DataError(
        f"{_where(symbol) or 'data'}: no timestamps; use a DatetimeIndex or a column named "
        "ts, timestamp, time, datetime or date",
        symbol=symbol,
        rule="timestamps present",
    )


def symbol_label(labels: Sequence[Any], symbol_column: str | None) -> Any | None:
    """The label of the symbol column (case-insensitive), or None.

    ``symbol_column`` None means the default name ``symbol``, which may be absent (the
    table is then one symbol's); a name the user gave must be there.
    """
    wanted = (symbol_column or "symbol").lower()
    matches = [c for c in labels if isinstance(c, str) and c.strip().lower() == wanted]
    if len(matches) > 1:
        raise DataError(
            f"columns {matches} differ only by case; keep one", rule="unambiguous columns"
        )
    if not matches and symbol_column is not None:
        raise DataError(
            f"symbol_column={symbol_column!r} is not a column; columns present: "
            f"{', '.join(map(str, labels))}",
            rule="symbol column present",
        )
    return matches[0] if matches else None


def refuse_identifier_column(label: Any, distinct: Sequence[Any], symbol: str | None) -> None:
    """Refuse a column that names instruments in a table read as one symbol's bars.

    Two instruments in one price series would be silently merged; the user names the
    symbol column (``symbol_column=``) or drops the column.
    """
    shown = ", ".join(map(repr, list(distinct)[:3])) + (", ..." if len(distinct) > 3 else "")
    raise DataError(
        f"{_where(symbol) or 'data'}: column {label!r} holds {len(distinct)} different values "
        f"({shown}) in bars read as one symbol's; if it names the symbols pass "
        f"symbol_column={label!r}, otherwise drop it",
        symbol=symbol,
        rule="one instrument per symbol",
    )


def is_identifier_name(label: Any) -> bool:
    return isinstance(label, str) and bool(_IDENTIFIER_NAMES.match(label.strip()))


def refuse_no_rows(n: int, symbol: str | None) -> None:
    if n == 0:
        raise DataError(
            f"{_where(symbol) or 'data'}: no rows (empty data)",
            symbol=symbol,
            rule="non-empty",
        )


def check_symbol_names(codes: np.ndarray, uniques: Sequence[Any], raw: Any) -> None:
    """Every row names a symbol, and every name is a non-empty string."""
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"row {row}: symbol is missing", row=row, rule="symbol present")
    for k, u in enumerate(uniques):
        if not isinstance(u, str) or not u:
            row = int(np.flatnonzero(codes == k)[0])
            raise DataError(
                f"row {row}: symbol names must be non-empty strings, got {u!r}",
                row=row,
                rule="symbol names",
            )


def split_by_symbol(
    codes: np.ndarray, uniques: Sequence[str], ts: np.ndarray, values: list[np.ndarray]
) -> list[SymbolBars]:
    """A long table's rows grouped by symbol code, each symbol's rows in input order.

    Already grouped rows are cut into slices (views, no copy); interleaved ones are
    gathered after a stable sort of small integer codes (a radix sort). Every symbol's
    columns are checked, with row numbers of the input.
    """
    n_symbols = len(uniques)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    if len(change) + 1 == n_symbols:
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [len(codes)]))
        selections = sorted(
            (int(codes[s]), slice(int(s), int(e)), np.arange(s, e)) for s, e in zip(starts, ends)
        )
    else:
        small = codes.astype(np.int16 if n_symbols < 2**15 else np.int64)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(small[order], np.arange(n_symbols + 1))
        selections = [
            (k, order[bounds[k] : bounds[k + 1]], order[bounds[k] : bounds[k + 1]])
            for k in range(n_symbols)
        ]
    out = []
    for code, sel, rows in selections:
        symbol = str(uniques[code])
        part = [ts[sel], *(v[sel] for v in values)]
        check_bars(symbol, *part, rows=rows)
        out.append(SymbolBars._trusted(symbol, *part))
    return out


def refuse_mixed_awareness(awareness: dict[bool, str]) -> None:
    """Symbols of one mapping are all naive or all tz-aware."""
    if len(awareness) > 1:
        raise DataError(
            f"symbol {awareness[False]!r} has naive timestamps but symbol "
            f"{awareness[True]!r} has tz-aware ones; a mix of naive and tz-aware "
            "timestamps is refused (naive would be taken as UTC)",
            symbol=awareness[False],
            rule="consistent timezone awareness",
        )


def _align_metadata(metadata: pd.DataFrame | None, symbols: list[str]) -> pd.DataFrame | None:
    if metadata is None:
        return None
    if not isinstance(metadata, pd.DataFrame):
        raise DataError(f"metadata must be a DataFrame indexed by symbol, got {type(metadata)}")
    meta = metadata
    if meta.index.name != "symbol" and "symbol" in meta.columns:
        meta = meta.set_index("symbol")
    if not meta.index.is_unique:
        dup = meta.index[meta.index.duplicated()].unique().tolist()
        raise DataError(f"metadata has more than one row for symbol(s) {dup}", rule="unique")
    meta = meta.reindex(symbols)
    meta.index.name = "symbol"
    return meta


def _reader(data: Any) -> Any | None:
    """The module reading ``data`` as a table (pandas or Arrow), or None."""
    from tickstep.data import _arrow, _frames

    if isinstance(data, pd.DataFrame):
        return _frames
    if _arrow.is_arrow_like(data):
        return _arrow
    return None


def to_market_columns(
    data: Any,
    *,
    symbol_column: str | None = None,
    symbol: str | None = None,
    metadata: pd.DataFrame | None = None,
) -> MarketColumns:
    """Turn bars in any supported shape into validated per-symbol numpy columns.

    This is the in-memory part of the door (`tickstep.data.resolve` is the whole door):
    whatever comes in leaves as contiguous int64 UTC nanosecond timestamps and float64
    open/high/low/close/volume per symbol, or is refused with a `DataError` naming the
    symbol, the row (position and timestamp) and the rule.

    Parameters
    ----------
    data : table, Mapping[str, table] or MarketColumns
        A table is a pandas DataFrame, a pyarrow Table/RecordBatch/RecordBatchReader, a
        Polars DataFrame or LazyFrame, or any object exposing the Arrow PyCapsule stream
        interface (``__arrow_c_stream__``, e.g. a DuckDB relation). One of:

        * a table for one symbol, named ``symbol`` (or ``df.attrs["symbol"]``, or
          ``"ASSET"``);
        * a mapping ``symbol -> table``;
        * a long table with a symbol column (see `symbol_column`), or a DataFrame
          indexed by a ``(symbol, ts)`` MultiIndex; each symbol's rows must be in time
          order, but the symbols may be interleaved;
        * a `MarketColumns`, returned as is.
    symbol_column : str, optional
        Name of the symbol column of a long table (case-insensitive); ``symbol`` when
        omitted. A table without that column holds one symbol's bars, and a text column
        with more than one value in it (a ``ticker`` under another name) is refused.
    symbol : str, optional
        Name of the symbol of a one-symbol table.
    metadata : DataFrame, optional
        Symbol metadata (sector, exchange, timezone, ...) indexed by symbol or with a
        ``symbol`` column; aligned to the loaded symbols.

    Returns
    -------
    MarketColumns
        Symbols sorted by name.

    Raises
    ------
    DataError
        On the first broken rule. Nothing is silently dropped, sorted or repaired.

    Notes
    -----
    Columns ``open, high, low, close, volume`` are found case-insensitively (``Open``,
    ``OPEN``); other numeric columns are ignored. ``volume`` is required: volume-based
    sizing and rules need it, so a source without it must say so explicitly (zeros).

    Timestamps come from a ``DatetimeIndex`` or from one column named ``ts``,
    ``timestamp``, ``time``, ``datetime`` or ``date`` (case-insensitive). Naive
    timestamps are taken as UTC; tz-aware ones are converted to UTC. A mix of naive and
    tz-aware timestamps (across symbols, or within one column) is refused.

    Arrow columns that are already float64 (prices, volume) or int64 nanoseconds
    (timestamps) without nulls, in one chunk, are used in place: no copy. pandas
    columns are copied once (the frame stays the caller's to change).

    Rules, each refused with the symbol, row and timestamp: no symbols or a symbol with
    no rows; missing or non-numeric columns; timestamps not strictly increasing
    (unsorted or duplicate); NaN, null or infinite prices or volume; prices <= 0;
    high < low; open or close outside [low, high]; negative volume.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(
    ...     {"Open": [10.0, 10.2], "High": [10.5, 10.4], "Low": [9.9, 10.0],
    ...      "Close": [10.2, 10.1], "Volume": [1200, 900]},
    ...     index=pd.to_datetime(["2024-01-02 14:30", "2024-01-02 14:31"]),
    ... )
    >>> market = to_market_columns({"ABC": df})
    >>> market.symbols
    ['ABC']
    >>> market.bars[0].close
    array([10.2, 10.1])
    """
    if isinstance(data, MarketColumns):
        if metadata is not None:
            return MarketColumns(data.bars, _align_metadata(metadata, data.symbols))
        return data
    reader = _reader(data)
    if reader is not None:
        bars = reader.read_table(data, symbol_column=symbol_column, symbol=symbol)
    elif isinstance(data, Mapping):
        if len(data) == 0:
            raise DataError("no data: the mapping has no symbols", rule="non-empty")
        bad = [k for k in data if not isinstance(k, str) or not k]
        if bad:
            raise DataError(f"symbol names must be non-empty strings, got {bad[0]!r}")
        bars = []
        awareness: dict[bool, str] = {}
        for name in sorted(data):
            reader = _reader(data[name])
            if reader is None:
                raise DataError(
                    f"symbol {name!r}: expected a table (pandas, Arrow or Polars), got "
                    f"{type(data[name]).__name__}",
                    symbol=name,
                    rule="known source",
                )
            one, aware = reader.read_one(data[name], name)
            awareness.setdefault(aware, name)
            bars.append(one)
        refuse_mixed_awareness(awareness)
    else:
        raise DataError(
            f"cannot read bars from {type(data).__name__}: pass a DataFrame (pandas or "
            "Polars), an Arrow table, a mapping symbol -> table, a long table with a "
            "symbol column, or MarketColumns",
            rule="known source",
        )
    return MarketColumns(bars, _align_metadata(metadata, [b.symbol for b in bars]))
