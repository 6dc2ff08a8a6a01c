"""A store's query result -> MarketColumns: rows grouped by symbol without a loop over rows."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tickstep.data._bars_query import extra_column
from tickstep.data._columns import (
    VALUE_COLUMNS,
    DataError,
    MarketColumns,
    SymbolBars,
    check_bars,
    check_extra_columns,
)
from tickstep.data._metadata import metadata_frame

_COLUMNS = ("ts", *VALUE_COLUMNS)
_NAT = np.iinfo(np.int64).min

__all__ = ["arrow_columns", "assemble", "assemble_symbols", "grouped_columns", "window_parts"]


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


def _symbol_rows(symbol_id: np.ndarray, ids: np.ndarray) -> tuple[dict[int, slice], np.ndarray | None]:
    """Where each requested symbol's rows are: {position in ``ids``: slice} over the rows
    (reordered by ``take`` first when the store did not return them grouped)."""
    order_ids = np.argsort(ids)
    sorted_ids = ids[order_ids]

    def codes_of(values: np.ndarray) -> np.ndarray:
        """Positions in ``ids`` of store symbol ids ``values``."""
        pos = np.minimum(np.searchsorted(sorted_ids, values), len(ids) - 1)
        if len(values) and not np.array_equal(sorted_ids[pos], values):
            raise DataError("the store returned bars for a symbol that was not requested")
        return order_ids[pos]

    # Runs of equal symbol ids, found without a per-row array of positions: when the
    # store returned each symbol's rows contiguously (it usually does) only the runs'
    # heads are looked up, so grouping costs memory per symbol, not per row.
    n = len(symbol_id)
    change = np.flatnonzero(symbol_id[1:] != symbol_id[:-1]) + 1
    starts = np.concatenate(([0], change)) if n else np.array([], dtype=np.int64)
    ends = np.concatenate((change, [n])) if n else starts
    heads = codes_of(symbol_id[starts])
    if len(np.unique(heads)) == len(heads):
        return {int(k): slice(int(s), int(e)) for k, s, e in zip(heads, starts, ends)}, None
    codes = codes_of(symbol_id).astype(np.int16 if len(ids) < 2**15 else np.int32)
    take = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[take], np.arange(len(ids) + 1))
    spans = {
        k: slice(int(bounds[k]), int(bounds[k + 1]))
        for k in range(len(ids))
        if bounds[k + 1] > bounds[k]
    }
    return spans, take


def _checked_part(
    symbol: str,
    columns: dict[str, np.ndarray],
    rows: Any,
    extra: tuple[str, ...] = (),
    allow_nan: Any = (),
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """One symbol's (ts, open, ..., volume) rows and extra columns, sorted by time if they
    were not, checked. An extra column all NULL in these rows is not the symbol's."""
    part = [columns["ts"][rows], *(columns[name][rows] for name in VALUE_COLUMNS)]
    own = {}
    for k, name in enumerate(extra):
        nulls = columns.get(f"{extra_column(k)}:null")
        if nulls is None or not nulls[rows].all():
            own[name] = columns[extra_column(k)][rows]
    if len(part[0]) > 1 and not (np.diff(part[0]) > 0).all():
        by_time = np.argsort(part[0], kind="stable")
        part = [p[by_time] for p in part]
        own = {name: v[by_time] for name, v in own.items()}
    check_bars(symbol, *part)
    check_extra_columns(symbol, part[0], own, allow_nan)
    return part, own


def assemble(
    symbol_id: np.ndarray,
    columns: dict[str, np.ndarray],
    meta: pd.DataFrame,
    filters: str,
    extra: tuple[str, ...] = (),
    allow_nan: Any = (),
) -> MarketColumns:
    """Rows of many symbols (any order) -> MarketColumns, without a loop over rows.

    ``meta`` has one row per requested symbol, sorted by name, with ``symbol_id``.
    Rows are grouped by a stable radix sort of small symbol codes (skipped when the store
    returned each symbol's rows contiguously) and each symbol's timestamps are sorted only
    if the store returned them out of order.

    ``extra`` names the stored extra columns the rows hold as ``e0, e1, ...`` (NaN where
    NULL, with the NULL mask under ``e0:null``, ...): a symbol whose rows are all NULL in
    one has no such column; a NULL among values is a missing value, refused outside
    ``allow_nan`` as at the door.
    """
    ids = meta["symbol_id"].to_numpy(np.int64)
    symbols = list(meta["symbol"])
    spans, take = _symbol_rows(symbol_id, ids)
    empty = [symbols[k] for k in range(len(ids)) if k not in spans]
    if empty:
        raise DataError(
            f"no bars for symbol(s) {', '.join(map(repr, empty[:20]))} after filters ({filters})",
            symbol=empty[0],
            rule="non-empty result",
        )
    parts, own = _parts(spans, take, columns, symbols, extra, allow_nan)
    bars = [SymbolBars._trusted(symbol, *part, extra=values)
            for symbol, part, values in zip(symbols, parts, own)]
    return MarketColumns(bars, metadata_frame(meta))


def assemble_symbols(
    parts: dict[int, dict[str, np.ndarray]],
    meta: pd.DataFrame,
    filters: str,
    extra: tuple[str, ...] = (),
    allow_nan: Any = (),
) -> MarketColumns:
    """Each symbol's columns already apart ({store symbol id: columns as `assemble`
    takes them}) -> MarketColumns, with the same checks and refusals as `assemble`."""
    symbols = list(meta["symbol"])
    ids = [int(i) for i in meta["symbol_id"]]
    empty = [s for s, i in zip(symbols, ids) if i not in parts]
    if empty:
        raise DataError(
            f"no bars for symbol(s) {', '.join(map(repr, empty[:20]))} after filters ({filters})",
            symbol=empty[0],
            rule="non-empty result",
        )
    if set(parts) - set(ids):
        raise DataError("the store returned bars for a symbol that was not requested")
    bars = []
    for symbol, sid in zip(symbols, ids):
        part, own = _checked_part(symbol, parts.pop(sid), slice(None), extra, allow_nan)
        bars.append(SymbolBars._trusted(symbol, *part, extra=own))
    return MarketColumns(bars, metadata_frame(meta))


def window_parts(
    symbol_id: np.ndarray, columns: dict[str, np.ndarray], ids: np.ndarray, symbols: list[str],
    extra: tuple[str, ...] = (), allow_nan: Any = (),
) -> tuple[list[list[np.ndarray]], list[dict[str, np.ndarray]]]:
    """Rows of one time window of a streamed run -> per requested symbol (in ``symbols``
    order, ``ids`` their store ids) its checked (ts, open, ..., volume) columns and the
    extra columns ``extra`` with a value in this window (checked as `assemble` does); a
    symbol without bars in the window gets empty ones.

    A window holds a few bars of many symbols, read hundreds of times a run (and a whole
    load, `assemble`, bars of hundreds of symbols): the rules are checked over the whole
    window's columns at once (`_window_clean`), and a symbol's columns are views of them.
    Only when some row breaks a rule (or a symbol's rows need sorting) is every symbol
    checked on its own, which names the culprit."""
    spans, take = _symbol_rows(symbol_id, np.asarray(ids, dtype=np.int64))
    return _parts(spans, take, columns, symbols, extra, allow_nan)


def _parts(
    spans: dict[int, slice], take: np.ndarray | None, columns: dict[str, np.ndarray],
    symbols: list[str], extra: tuple[str, ...], allow_nan: Any,
) -> tuple[list[list[np.ndarray]], list[dict[str, np.ndarray]]]:
    """Per symbol of ``symbols`` (``spans``: where its rows are, after ``take``), its
    checked columns and extra columns (`window_parts`): the rules checked over whole
    columns at once when the rows are grouped, each symbol on its own otherwise or when
    a rule is broken (which names the symbol and the row)."""
    owned = None if take is not None else _window_clean(columns, spans, extra, allow_nan)
    parts, own = [], []
    for k, symbol in enumerate(symbols):
        span = spans.get(k)
        if span is None:
            parts.append([np.empty(0, np.int64)] + [np.empty(0, np.float64) for _ in VALUE_COLUMNS])
            own.append({})
        elif owned is not None:
            parts.append([columns["ts"][span], *(columns[name][span] for name in VALUE_COLUMNS)])
            own.append({name: columns[extra_column(j)][span]
                        for j, name in enumerate(extra) if owned[j][k]})
        else:
            rows = take[span] if take is not None else span
            part, values = _checked_part(symbol, columns, rows, extra, allow_nan)
            parts.append(part)
            own.append(values)
    return parts, own


def _window_clean(
    columns: dict[str, np.ndarray], spans: dict[int, slice], extra: tuple[str, ...],
    allow_nan: Any,
) -> list[np.ndarray] | None:
    """Whether every symbol's rows (``spans``: contiguous, in row order) pass every rule of
    `check_bars` and `check_extra_columns` as they are (times increasing: no sort), checked
    in whole-column passes; then, per extra column, which symbols have a value there (by
    position in ``ids``: `_checked_part`'s rule). None when any symbol needs
    `_checked_part` (to sort its rows or to name the row that breaks a rule)."""
    if not spans:
        return [np.zeros(0, bool) for _ in extra]
    ts, o, h, lo, c, v = (columns[name] for name in _COLUMNS)
    ok = lo > 0
    # With low > 0 and low <= open, close <= high < inf, every price is positive and
    # finite (NaN fails each comparison) and high >= low.
    for rule in (lo <= o, o <= h, lo <= c, c <= h, h < np.inf, v >= 0, v < np.inf):
        ok &= rule
    if not ok.all() or (ts == _NAT).any():
        return None
    keys = sorted(spans, key=lambda k: spans[k].start)
    starts = np.array([spans[k].start for k in keys], dtype=np.int64)
    increasing = ts[1:] > ts[:-1]
    increasing[starts[1:] - 1] = True  # a symbol's first row follows another symbol's rows
    if not increasing.all():
        return None
    owned = []
    for j, name in enumerate(extra):
        values = columns[extra_column(j)]
        if np.isinf(values).any():
            return None
        mine = np.zeros(max(keys) + 1, bool)
        nulls = columns.get(f"{extra_column(j)}:null")
        if nulls is None:
            mine[keys] = True
        else:
            sizes = np.diff(np.append(starts, len(ts)))
            mine[keys] = np.add.reduceat(nulls, starts, dtype=np.int64) < sizes
        if allow_nan is not True and name not in allow_nan:
            nan_rows = np.add.reduceat(np.isnan(values), starts, dtype=np.int64) > 0
            if (nan_rows & mine[keys]).any():
                return None
        owned.append(mine)
    return owned


def grouped_columns(
    table: pa.Table, ids: np.ndarray, n_extra: int = 0
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The bars query's Arrow result -> numpy columns as `arrow_columns` gives them, with
    each symbol's rows together (a symbol's rows in the order they came; ``ids``: the
    symbols asked for), gathered from the record batches in one copy.

    A store that keeps a day's bars of all symbols together (DuckDB's time order) returns
    a symbol's rows in runs, one per day; a large result comes in several batches. Both
    would cost a copy each (joining the batches, then sorting rows by symbol): here each
    run is copied once, straight from its batch to its symbol's place. A result already
    grouped in one batch is returned without a copy. Runs of a few rows (daily bars: one
    row per symbol and day) cost more to place one by one than the rows cost to sort:
    those are joined and sorted by symbol instead (`_sorted_by_symbol`).
    """
    batches = [b for b in table.to_batches() if b.num_rows]
    if len(batches) <= 1:
        symbol_id, columns = arrow_columns(table, n_extra)
        if _grouped(symbol_id):
            return symbol_id, columns
        batches_columns = [(symbol_id, columns)]
    else:
        batches_columns = [arrow_columns(pa.Table.from_batches([b]), n_extra) for b in batches]
    rows = sum(len(symbol_id) for symbol_id, _ in batches_columns)
    runs = sum(int(np.count_nonzero(symbol_id[1:] != symbol_id[:-1])) + 1
               for symbol_id, _ in batches_columns)
    if runs * SORT_BELOW_RUN_LENGTH > rows and len(ids) < 0xFFFF and _small_ids(ids):
        return _sorted_by_symbol(batches_columns, ids)
    ids = np.asarray(ids, dtype=np.int64)
    by_id = np.argsort(ids)
    # Runs of equal symbol ids in each batch: (batch, start, length, symbol's position).
    runs = []
    for k, (symbol_id, _) in enumerate(batches_columns):
        n = len(symbol_id)
        starts = np.concatenate(([0], np.flatnonzero(symbol_id[1:] != symbol_id[:-1]) + 1))
        heads = symbol_id[starts].astype(np.int64)
        pos = np.minimum(np.searchsorted(ids[by_id], heads), len(ids) - 1)
        if not np.array_equal(ids[by_id][pos], heads):
            raise DataError("the store returned bars for a symbol that was not requested")
        runs.append((np.full(len(starts), k), starts, np.diff(np.append(starts, n)), by_id[pos]))
    batch, start, length, code = (np.concatenate(r) for r in zip(*runs))
    # Each run's place: its symbol's first row plus the rows of that symbol's earlier runs.
    order = np.argsort(code, kind="stable")
    first_row = np.concatenate(([0], np.cumsum(length[order])[:-1]))
    place = np.empty_like(first_row)
    place[order] = first_row
    total = int(length.sum())
    names = dict.fromkeys(name for _, cols in batches_columns for name in cols)
    out = {}
    for name in names:
        dtype = next(cols[name].dtype for _, cols in batches_columns if name in cols)
        # A batch without a null mask has no nulls there.
        out[name] = np.zeros(total, dtype) if name.endswith(":null") else np.empty(total, dtype)
    for k, (_, cols) in enumerate(batches_columns):
        mine = batch == k
        # Row i of the batch goes to its run's place plus its offset in the run.
        to = np.repeat(place[mine] - start[mine], length[mine]) + np.arange(int(length[mine].sum()))
        for name, values in cols.items():
            out[name][to] = values
        del to
    for values in out.values():
        values.flags.writeable = False  # nobody else holds them: the engine may adopt them
    counts = np.bincount(code, weights=length, minlength=len(ids)).astype(np.int64)
    dtype = batches_columns[0][0].dtype
    return np.repeat(ids.astype(dtype), counts), out


#: Below this many rows per run on average, `grouped_columns` sorts the rows by symbol
#: rather than placing run by run: measured on a day-major DuckDB store, daily bars (runs
#: of one row) gather in 12 ms sorted against 34 ms by runs, minute bars (runs of 390)
#: in 50-60 ms by runs against 110-130 ms sorted; the costs cross near five rows a run.
SORT_BELOW_RUN_LENGTH = 5


def _id_limit(wanted: int) -> int:
    """The largest store id `_sorted_by_symbol`'s table of places takes, for ``wanted``
    symbols asked for (a store hands out ids in turn: they stay small)."""
    return 64 * wanted + 4096


def _small_ids(ids: np.ndarray) -> bool:
    """Whether store ids ``ids`` fit `_sorted_by_symbol`'s table."""
    ids = np.asarray(ids)
    return bool(len(ids)) and int(ids.min()) >= 0 and int(ids.max()) <= _id_limit(len(ids))


def _sorted_by_symbol(
    batches_columns: list[tuple[np.ndarray, dict[str, np.ndarray]]], ids: np.ndarray
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """`grouped_columns` of batches of short runs: the batches joined, then every column
    gathered in the order of a stable sort by the symbol's place in ``ids`` (a radix sort
    of 16-bit places: linear), so each symbol's rows stay in the order they came."""
    ids = np.asarray(ids, dtype=np.int64)
    symbol_id = np.concatenate([sid for sid, _ in batches_columns])
    # Each row's place in ``ids``, by a table indexed by store id (ids are small numbers
    # a store hands out in turn; 0xFFFF: not requested).
    lo, hi = int(symbol_id.min()), int(symbol_id.max())
    if lo < 0 or hi > _id_limit(len(ids)):  # not one of ``ids``, which fit the table
        raise DataError("the store returned bars for a symbol that was not requested")
    table = np.full(max(hi, int(ids.max())) + 1, 0xFFFF, dtype=np.uint16)
    table[ids] = np.arange(len(ids), dtype=np.uint16)
    place = table[symbol_id]
    if (place == 0xFFFF).any():
        raise DataError("the store returned bars for a symbol that was not requested")
    order = np.argsort(place, kind="stable")
    names = dict.fromkeys(name for _, cols in batches_columns for name in cols)
    out = {}
    for name in names:
        dtype = next(cols[name].dtype for _, cols in batches_columns if name in cols)
        # A batch without a null mask has no nulls there.
        parts = [cols[name] if name in cols else np.zeros(len(sid), dtype)
                 for sid, cols in batches_columns]
        out[name] = np.concatenate(parts).take(order)
        out[name].flags.writeable = False  # nobody else holds them: the engine may adopt them
    counts = np.bincount(place, minlength=len(ids))
    return np.repeat(ids.astype(symbol_id.dtype), counts), out


def _grouped(symbol_id: np.ndarray) -> bool:
    """Whether each symbol's rows are together (one run per symbol id)."""
    if len(symbol_id) < 2:
        return True
    heads = symbol_id[np.concatenate(([0], np.flatnonzero(symbol_id[1:] != symbol_id[:-1]) + 1))]
    return len(np.unique(heads)) == len(heads)


def arrow_columns(table: pa.Table, n_extra: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The bars query's Arrow result -> numpy columns (zero-copy for a single chunk).

    The ``n_extra`` extra columns ``e0, e1, ...`` come with NULLs as NaN and, when they
    have NULLs, their mask under ``e0:null``, ...
    """
    columns = {"ts": _column(table, "ts", np.int64)}
    for name in VALUE_COLUMNS:
        columns[name] = _column(table, name, np.float64)
    for k in range(n_extra):
        alias = extra_column(k)
        values = table.column(alias)
        if values.type != pa.float64():
            values = pc.cast(values, pa.float64())
        if values.null_count:
            columns[f"{alias}:null"] = values.is_null().to_numpy(zero_copy_only=False)
            values = pc.fill_null(values, np.nan)
        columns[alias] = values.combine_chunks().to_numpy(zero_copy_only=False)
    # Symbol ids keep the store's integer type (no per-row widening copy).
    ids = table.column("symbol_id")
    return _column(table, "symbol_id", ids.type.to_pandas_dtype()), columns
