"""The door: `resolve` turns whatever a user passes as data into validated `MarketColumns`.

Every part of tickstep that takes a user's data argument (`Backtest`, batch runs, the
command line, the service) calls `resolve`, so the same argument means the same bars
everywhere. Each kind of source sits behind one small protocol -- a ``load(symbols, *,
start, end, **options)`` method and the tuple of ``options`` it takes:

==============================  =======================================  ================
data                            source                                   load options
==============================  =======================================  ================
DataFrame (pandas, Polars),     `MemoryBars` (validated by the door)     symbol_column,
Arrow table or stream, a                                                 columns,
mapping of them, a long table                                            allow_nan
`MarketColumns`                 `MemoryBars` (already validated)         --
``.csv[.gz]``, ``.parquet``,    `BarsFile` (see `FILE_FORMATS`)          symbol_column,
``.arrow``/``.feather`` path                                             columns,
                                                                         allow_nan
other path                      `Store` (a DuckDB file, read-only)       regular_hours,
                                                                         timeframe,
                                                                         columns,
                                                                         allow_nan
``postgresql://`` URL           `PostgresStore`                          (as `Store`)
an open store or `BarsFile`     itself                                  its own
==============================  =======================================  ================

``symbols``, ``start`` and ``end`` follow one rule for every source (see
`tickstep.data._request`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import pandas as pd

from tickstep.data._arrow import is_arrow_like
from tickstep.data._columns import DataError, MarketColumns
from tickstep.data._duckdb import Store
from tickstep.data._files import FILE_FORMATS, BarsFile, file_format
from tickstep.data._memory import to_market_columns
from tickstep.data._records import RecordTable, records_for_backtest
from tickstep.data._request import check_options, select, symbols_in_order
from tickstep.data._store_base import BarStore

__all__ = ["MemoryBars", "load", "open_store", "resolve", "resolve_with_records"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_STORE_SUFFIXES = ("", ".duckdb", ".db", ".ddb")


class MemoryBars:
    """Bars already in memory as a source: pandas or Polars frames, Arrow tables or
    streams (a DuckDB relation), mappings of them, or `MarketColumns`.

    The tables are validated at each `load` (vectorised), then the symbols and the time
    range are selected by the same rule as in the stores.
    """

    def __init__(self, data: Any) -> None:
        self.data = data
        self.options = (
            () if isinstance(data, MarketColumns) else ("symbol_column", "columns", "allow_nan")
        )

    def __repr__(self) -> str:
        return f"MemoryBars({type(self.data).__name__})"

    def close(self) -> None:
        """Nothing to release."""

    def load(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        start: Any = None,
        end: Any = None,
        **options: Any,
    ) -> MarketColumns:
        check_options(options, self.options, f"in-memory {type(self.data).__name__}")
        return select(to_market_columns(self.data, **options), symbols, start, end)


Source = BarStore | BarsFile | MemoryBars


def open_store(
    source: str | PathLike[str] | BarStore | BarsFile, *, read_only: bool = True
) -> BarStore | BarsFile:
    """Something with a ``load`` method, from wherever the bars are.

    A DuckDB file path gives a `Store`, a ``postgresql://`` URL a `PostgresStore`, a
    file of bars (see `FILE_FORMATS`) a `BarsFile`; a store is returned as is.

    Examples
    --------
    >>> open_store(":memory:", read_only=False)
    Store(':memory:')
    """
    if isinstance(source, (BarStore, BarsFile)):
        return source
    if not isinstance(source, (str, PathLike)):
        raise DataError(
            f"cannot open {type(source).__name__} as a store: pass a path, a "
            "postgresql:// URL or a store",
            rule="known source",
        )
    text = str(source)
    if text.startswith(_POSTGRES_SCHEMES):
        from tickstep.data._postgres import PostgresStore

        return PostgresStore(text)
    if file_format(text) is not None:
        return BarsFile(text)
    suffix = Path(text).suffix.lower()
    if read_only and text != ":memory:" and not Path(text).exists():
        raise DataError(
            f"store or file '{text}' does not exist" + _kinds_hint(suffix),
            source=text,
            rule="file exists",
        )
    try:
        return Store(text, read_only=read_only)
    except DataError as exc:
        if suffix in _STORE_SUFFIXES:
            raise
        raise DataError(
            f"{exc}{_kinds_hint(suffix)}", source=text, rule="known file format"
        ) from None


def _kinds_hint(suffix: str) -> str:
    if suffix in _STORE_SUFFIXES:
        return ""
    return (
        f" (suffix {suffix!r} is not a file of bars: those end in "
        f"{', '.join(FILE_FORMATS)}; any other path is read as a DuckDB store)"
    )


def _source(data: Any) -> tuple[Source, bool]:
    """The source behind ``data`` and whether `resolve` opened it (and must close it)."""
    if isinstance(data, (BarStore, BarsFile)):
        return data, False
    if isinstance(data, (str, PathLike)):
        return open_store(data), True
    if isinstance(data, (pd.DataFrame, Mapping, MarketColumns)) or is_arrow_like(data):
        return MemoryBars(data), False
    raise DataError(
        f"cannot read bars from {type(data).__name__}: pass a DataFrame (pandas or Polars), "
        "an Arrow table, a mapping symbol -> table, a long table with a symbol column, "
        "MarketColumns, a file of bars (.csv, .parquet, .arrow), a DuckDB store path, a "
        "postgresql:// URL or a store",
        rule="known source",
    )


def resolve(
    data: Any,
    *,
    symbols: str | Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    **load_options: Any,
) -> MarketColumns:
    """Turn a user's data argument into validated columns: the one door of tickstep.

    Parameters
    ----------
    data : table, mapping, MarketColumns, path, URL or store
        Bars in memory -- one symbol's table, a mapping ``symbol -> table``, a long
        table with a symbol column, `MarketColumns`; a table is a pandas or Polars
        DataFrame (or LazyFrame), a pyarrow Table/RecordBatch/RecordBatchReader or any
        Arrow stream producer (``__arrow_c_stream__``, e.g. a DuckDB relation) --, a
        file of bars (``.csv``,
        ``.csv.gz``, ``.parquet``, ``.arrow``, ``.feather``), a DuckDB store file, a
        ``postgresql://`` URL, or an open `Store`, `PostgresStore` or `BarsFile`.
    symbols : str or sequence of str, optional
        Keep these symbols (all when omitted). The result is stored sorted by name, and
        its ``order`` -- the order ``next`` sees the symbols in -- is this list's order
        (without a list: the data's own order, see `MarketColumns`); a name the data
        does not hold is refused, with the closest known name.
    start, end : date, datetime, str or int, optional
        Keep bars from ``start`` to ``end``, both inclusive. **A date alone means that
        whole day**: ``end="2024-01-04"`` keeps every bar of January 4th, and
        ``start="2024-01-04"`` starts at its first instant. A time
        (``"2024-01-04 15:30"``) is that instant. Naive values are UTC (a DataFrame's
        naive timestamps are UTC too); integers are UTC nanoseconds since the epoch.
        ``start`` after ``end`` is refused. The same rule holds for every source.
    **load_options
        ``regular_hours=True`` and ``timeframe="15min"`` for stores (they run in SQL;
        see `Store.load`); ``symbol_column="ticker"`` for a long frame or a file whose
        symbol column is not called ``symbol``; ``columns=["signal", "pe"]`` to choose
        the extra columns kept beside OHLCV (all by default) and ``allow_nan=["pe"]`` for
        those that may have gaps (every source; see `to_market_columns`). An option the source does not take is
        refused, naming it (and the closest known option for a misspelling).

    Returns
    -------
    MarketColumns
        Per symbol, int64 UTC nanosecond timestamps, float64 OHLCV columns and the extra
        columns, which the engine adopts as they are.

    Raises
    ------
    DataError
        Bad data (naming the symbol, row and rule), unknown symbols, an empty range or a
        symbol without bars in it, an unreadable file.
    ConfigError
        A load option the source does not take.

    Examples
    --------
    >>> import tickstep.data as td
    >>> frame = td.example_daily().to_frame()
    >>> market = td.resolve(frame, symbols=["BARP", "BYN"], start="2023-01-03",
    ...                     end="2023-01-05")
    >>> market.symbols, [len(b) for b in market.bars]
    (['BARP', 'BYN'], [3, 3])
    """
    source, opened = _source(data)
    try:
        check_options(load_options, source.options, repr(source))
        return _in_requested_order(source.load(symbols, start=start, end=end, **load_options),
                                   symbols)
    finally:
        if opened:
            source.close()


def resolve_with_records(
    data: Any,
    records: Any,
    *,
    symbols: str | Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    **load_options: Any,
) -> tuple[MarketColumns, dict[str, RecordTable]]:
    """`resolve` plus the analysis tables ``records`` names, through the same source
    (a store path is opened once): table names are read from the store, one statement
    per table; a mapping ``{name: frame}`` gives records in memory. See
    `tickstep.data._records.records_for_backtest`."""
    source, opened = _source(data)
    try:
        check_options(load_options, source.options, repr(source))
        market = _in_requested_order(
            source.load(symbols, start=start, end=end, **load_options), symbols)
        tables = records_for_backtest(source, records, market.symbols,
                                      selected=symbols is not None, start=start, end=end)
        return market, tables
    finally:
        if opened:
            source.close()


def _in_requested_order(market: MarketColumns, symbols: Any) -> MarketColumns:
    """A ``symbols=`` list is also the order ``next`` sees the symbols in (whatever the
    source's own order: a mapping's keys, a store's ingest order)."""
    return market if symbols is None else market.in_order(symbols_in_order(symbols))


def load(
    source: str | PathLike[str] | BarStore | BarsFile,
    symbols: str | Sequence[str] | None = None,
    *,
    start: Any = None,
    end: Any = None,
    **load_options: Any,
) -> MarketColumns:
    """Load bars from a store, a PostgreSQL URL or a file: `resolve` for those sources.

    Examples
    --------
    >>> import tickstep.data as td
    >>> store = td.Store()
    >>> _ = store.ingest(td.sample_daily(symbols=2, days=30, seed=1))
    >>> td.load(store).n_bars
    60
    """
    if not isinstance(source, (str, PathLike, BarStore, BarsFile)):
        raise DataError(
            f"load reads stores and files; for {type(source).__name__} use tickstep.data.resolve",
            rule="known source",
        )
    return resolve(source, symbols=symbols, start=start, end=end, **load_options)
