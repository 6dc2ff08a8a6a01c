"""A store's query result -> MarketColumns: rows grouped by symbol without a loop over rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns, SymbolBars, check_bars
from tickstep.data._metadata import metadata_frame

__all__ = ["arrow_columns", "assemble"]


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
