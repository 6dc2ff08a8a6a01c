"""One-call loading from wherever the bars are: a store file, a PostgreSQL URL, a file."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any

from tickstep.data._door import DataError, MarketColumns
from tickstep.data._loading import read_bars_file
from tickstep.data._store import BarStore, Store

__all__ = ["load", "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".gz", ".txt")


def open_store(source: str | PathLike[str] | BarStore, *, read_only: bool = True) -> BarStore:
    """A store from a DuckDB file path, a ``postgresql://`` URL, or a store (as is).

    Examples
    --------
    >>> open_store(":memory:", read_only=False)
    Store(':memory:')
    """
    if isinstance(source, BarStore):
        return source
    text = str(source)
    if text.startswith(_POSTGRES_SCHEMES):
        from tickstep.data._postgres import PostgresStore

        return PostgresStore(text)
    return Store(text, read_only=read_only)


def load(
    source: str | PathLike[str] | BarStore,
    symbols: str | Sequence[str] | None = None,
    *,
    start: Any = None,
    end: Any = None,
    regular_hours: bool = False,
    timeframe: str | None = None,
) -> MarketColumns:
    """Load bars for a backtest from a store, a PostgreSQL URL or a CSV/Parquet file.

    Parameters
    ----------
    source : path, URL or store
        A DuckDB store file (opened read-only), a ``postgresql://`` URL, an open
        `Store`/`PostgresStore`, or a CSV/Parquet file of bars (no filters then).
    symbols, start, end, regular_hours, timeframe
        As in `Store.load`.

    Returns
    -------
    MarketColumns

    Examples
    --------
    >>> import tickstep.data as td
    >>> store = td.Store()
    >>> _ = store.ingest(td.sample_daily(symbols=2, days=30, seed=1))
    >>> td.load(store, timeframe=None).n_bars
    60
    """
    text = str(source) if not isinstance(source, BarStore) else ""
    if text.lower().endswith(_FILE_SUFFIXES) and not text.startswith(_POSTGRES_SCHEMES):
        if regular_hours or timeframe is not None or start is not None or end is not None:
            raise DataError(
                f"file '{text}': filters run in a store's SQL; ingest the file into a "
                "Store first (tickstep.data.Store(path).ingest(file))"
            )
        market = read_bars_file(Path(text))
        if symbols is not None:
            wanted = {symbols} if isinstance(symbols, str) else set(symbols)
            missing = sorted(wanted - set(market.symbols))
            if missing:
                raise DataError(f"file '{text}': symbol(s) not in it: {', '.join(missing)}")
            market = MarketColumns([b for b in market.bars if b.symbol in wanted])
        return market
    is_file_path = not isinstance(source, BarStore) and not text.startswith(_POSTGRES_SCHEMES)
    if is_file_path and text != ":memory:" and not Path(text).exists():
        raise DataError(f"store file '{text}' does not exist", source=text)
    store = open_store(source)
    try:
        return store.load(
            symbols, start=start, end=end, regular_hours=regular_hours, timeframe=timeframe
        )
    finally:
        if store is not source:
            store.close()
