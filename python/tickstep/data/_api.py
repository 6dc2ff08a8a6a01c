"""One-call loading from wherever the bars are: a store file, a PostgreSQL URL, a file."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from pathlib import Path
from typing import Any, Self

import numpy as np

from tickstep.data._door import DataError, MarketColumns, SymbolBars
from tickstep.data._loading import read_bars_file, symbol_list, time_bounds
from tickstep.data._store import BarStore, Store

__all__ = ["BarsFile", "load", "open_store"]

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")
_FILE_SUFFIXES = (".csv", ".parquet", ".pq", ".gz", ".txt")


class BarsFile:
    """A CSV or Parquet file of bars behind the stores' ``load`` interface.

    The file is read (through the door) at each `load`; symbols and the date range are
    selected in numpy. SQL-only filters (``regular_hours``, ``timeframe``) are refused:
    ingest the file into a `Store` for those.

    Parameters
    ----------
    path : str or path-like
        ``.csv``, ``.csv.gz`` or ``.parquet``; see `Store.ingest` for the columns.
    symbol : str, optional
        Symbol of a file without a symbol column (default: the file's name).
    """

    def __init__(self, path: str | PathLike[str], *, symbol: str | None = None) -> None:
        self.path = Path(path)
        self.symbol = symbol

    def __repr__(self) -> str:
        return f"BarsFile({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to release; for symmetry with the stores."""

    def load(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        start: Any = None,
        end: Any = None,
        regular_hours: bool = False,
        timeframe: str | None = None,
    ) -> MarketColumns:
        """Read the file; keep ``symbols`` and the inclusive ``[start, end]`` range."""
        if regular_hours or timeframe is not None:
            raise DataError(
                f"file '{self.path}': regular_hours and timeframe run in a store's SQL; "
                "ingest the file first: tickstep.data.Store(path).ingest(file)"
            )
        market = read_bars_file(self.path, symbol=self.symbol)
        names = symbol_list(symbols)
        if names is not None:
            missing = sorted(set(names) - set(market.symbols))
            if missing:
                raise DataError(
                    f"file '{self.path}': symbol(s) not in it: {', '.join(map(repr, missing))}",
                    symbol=missing[0],
                )
            market = MarketColumns([market[s] for s in names], market.metadata)
        if start is None and end is None:
            return market
        lo, hi = time_bounds(start, end)
        kept, empty = [], []
        for b in market.bars:
            i, j = np.searchsorted(b.ts, [lo, hi], side="left")
            if j > i:
                cols = [getattr(b, c)[i:j] for c in ("open", "high", "low", "close", "volume")]
                kept.append(SymbolBars._trusted(b.symbol, b.ts[i:j], *cols))
            else:
                empty.append(b.symbol)
        if empty:
            raise DataError(
                f"file '{self.path}': no bars for symbol(s) "
                f"{', '.join(map(repr, empty[:20]))} between {start!r} and {end!r}",
                symbol=empty[0],
            )
        return MarketColumns(kept, market.metadata)


def open_store(
    source: str | PathLike[str] | BarStore | BarsFile, *, read_only: bool = True
) -> BarStore | BarsFile:
    """Something with a ``load`` method, from wherever the bars are.

    A DuckDB file path gives a `Store`, a ``postgresql://`` URL a `PostgresStore`, a
    ``.csv``/``.csv.gz``/``.parquet`` path a `BarsFile`; a store is returned as is.

    Examples
    --------
    >>> open_store(":memory:", read_only=False)
    Store(':memory:')
    """
    if isinstance(source, (BarStore, BarsFile)):
        return source
    text = str(source)
    if text.startswith(_POSTGRES_SCHEMES):
        from tickstep.data._postgres import PostgresStore

        return PostgresStore(text)
    if text.lower().endswith(_FILE_SUFFIXES):
        return BarsFile(text)
    if read_only and text != ":memory:" and not Path(text).exists():
        raise DataError(f"store file '{text}' does not exist", source=text)
    return Store(text, read_only=read_only)


def load(
    source: str | PathLike[str] | BarStore | BarsFile,
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
        `Store`/`PostgresStore`, or a CSV/Parquet file of bars (date range and symbols
        only; see `BarsFile`).
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
    store = open_store(source)
    try:
        return store.load(
            symbols, start=start, end=end, regular_hours=regular_hours, timeframe=timeframe
        )
    finally:
        if store is not source:
            store.close()
