"""Turning the user's data argument into selected columns, until `tickstep.data.resolve`
(the one door) replaces it: shared by `Backtest` and batch so neither imports the other."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep.data import MarketColumns, to_market_columns


def load(data: Any, symbols: list[str] | None, start: Any, end: Any, options: dict[str, Any]) -> MarketColumns:
    """Any accepted data source -> validated columns (the door)."""
    if isinstance(data, str):
        from tickstep import data as data_module

        data = data_module.open_store(data)
    if hasattr(data, "load") and not isinstance(data, (pd.DataFrame, Mapping, MarketColumns)):
        return data.load(symbols=symbols, start=start, end=end, **options)
    if options:
        raise TypeError(f"unexpected options for in-memory data: {sorted(options)}")
    columns = to_market_columns(data)
    if symbols is not None:
        missing = [s for s in symbols if s not in columns.symbols]
        if missing:
            raise _core.UnknownSymbolError(f"symbols not in the data: {missing}")
        columns = MarketColumns([columns[s] for s in symbols], columns.metadata)
    if start is not None or end is not None:
        columns = _slice(columns, start, end)
    return columns


def _ns(t: Any) -> int:
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def _slice(columns: MarketColumns, start: Any, end: Any) -> MarketColumns:
    lo = _ns(start) if start is not None else np.iinfo(np.int64).min
    hi = _ns(end) if end is not None else np.iinfo(np.int64).max
    kept = []
    for b in columns.bars:
        i, j = np.searchsorted(b.ts, lo, "left"), np.searchsorted(b.ts, hi, "right")
        if j > i:
            kept.append(type(b)(b.symbol, b.ts[i:j], b.open[i:j], b.high[i:j], b.low[i:j], b.close[i:j], b.volume[i:j]))
    if not kept:
        raise ValueError(f"no bars between {start} and {end}")
    return MarketColumns(kept, columns.metadata)


def select(columns: MarketColumns, symbols: list[str], start: Any, end: Any) -> MarketColumns:
    """``symbols`` of in-memory ``columns`` within ``[start, end]``."""
    return load(columns, symbols, start, end, {})
