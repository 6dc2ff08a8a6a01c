"""Bars in memory -> validated columns: the shapes dispatched to the pandas or Arrow reader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from tickstep.data import _arrow, _frames
from tickstep.data._columns import DataError, MarketColumns
from tickstep.data._shapes import ExtraColumns, refuse_mixed_awareness

__all__ = ["to_market_columns"]


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
    columns: Any = None,
    allow_nan: Any = None,
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
    columns : list of str, optional
        The extra columns to keep beside OHLCV (a signal, a P/E, an adjusted close);
        the others are dropped. By default every other column is kept, and each must be
        numeric. A name is found exactly, else ignoring case; a boolean column chosen
        here reads as 0/1.
    allow_nan : list of str or True, optional
        The extra columns that may hold missing values (NaN, null, an empty CSV cell);
        ``True`` for all of them. Elsewhere a missing value is refused.

    Returns
    -------
    MarketColumns
        Symbols sorted by name; ``order`` keeps the order the data gave them in (a
        mapping's keys, first appearance in a long table), the order ``next`` sees them.

    Raises
    ------
    DataError
        On the first broken rule. Nothing is silently dropped, sorted or repaired.

    Notes
    -----
    Columns ``open, high, low, close, volume`` are found case-insensitively (``Open``,
    ``OPEN``). ``volume`` is required: volume-based sizing and rules need it, so a
    source without it must say so explicitly (zeros). Every other column is an *extra
    column* kept as float64 beside them (see ``columns``), except the timestamp and
    symbol columns, a text column naming the instrument (``ticker``, ``isin``: one value
    per symbol) and a pandas index saved in an Arrow or Parquet file. Extra column names
    must differ from ``open ... volume``, ``ts``/``time``/..., ``symbol`` and
    ``symbol_id`` ignoring case (``"Close"`` beside ``"close"`` is refused), and from
    each other ignoring case; they are at most 63 bytes.

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
            return MarketColumns(data.bars, _align_metadata(metadata, data.symbols), data.order)
        return data
    extra = ExtraColumns.of(columns, allow_nan)
    reader = _reader(data)
    if reader is not None:
        bars = reader.read_table(data, symbol_column=symbol_column, symbol=symbol, extra=extra)
    elif isinstance(data, Mapping):
        if len(data) == 0:
            raise DataError("no data: the mapping has no symbols", rule="non-empty")
        bad = [k for k in data if not isinstance(k, str) or not k]
        if bad:
            raise DataError(f"symbol names must be non-empty strings, got {bad[0]!r}")
        bars = []
        awareness: dict[bool, str] = {}
        for name in data:
            reader = _reader(data[name])
            if reader is None:
                raise DataError(
                    f"symbol {name!r}: expected a table (pandas, Arrow or Polars), got "
                    f"{type(data[name]).__name__}",
                    symbol=name,
                    rule="known source",
                )
            one, aware = reader.read_one(data[name], name, extra)
            awareness.setdefault(aware, name)
            bars.append(one)
        refuse_mixed_awareness(awareness)
        extra.check_nan_names({c for b in bars for c in b.extra})
    else:
        raise DataError(
            f"cannot read bars from {type(data).__name__}: pass a DataFrame (pandas or "
            "Polars), an Arrow table, a mapping symbol -> table, a long table with a "
            "symbol column, or MarketColumns",
            rule="known source",
        )
    # Stored by name (deterministic); visited in the order the data gave the symbols.
    order = tuple(b.symbol for b in bars)
    bars = sorted(bars, key=lambda b: b.symbol)
    return MarketColumns(bars, _align_metadata(metadata, [b.symbol for b in bars]), order)
