"""Where a DuckDB store's bars lie, and how a window's rows are gathered per symbol.

A store writes its bars in time order by day (a streamed window's query then reads only
about its own days' rows); `Store.reorder` rewrites a store written otherwise. Neither
changes any result. A query's rows come as Arrow record batches with each symbol's rows
in runs (one per day); `grouped_columns` gathers them per symbol in one copy, which must
equal a plain stable sort of the rows by symbol.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tickstep
import tickstep.data as td
from hypothesis import given, settings
from hypothesis import strategies as st
from test_stream import assert_same_run
from tickstep.data import _assembly as assembly
from tickstep.data._assembly import _checked_part, _symbol_rows, grouped_columns, window_parts
from tickstep.data._columns import VALUE_COLUMNS, DataError
from tickstep.strategies import SmaCross
from tickstep.timeframes import NS_PER_DAY


def _days_in_row_order(store: td.Store) -> np.ndarray:
    """Each stored row's UTC day, in the order the rows lie in the table."""
    rows = store._run(f"SELECT ts // {NS_PER_DAY} FROM bars ORDER BY rowid").fetchall()
    return np.array([r[0] for r in rows])


def _symbol_major(store: td.Store) -> None:
    """Rewrite ``bars`` with each symbol's bars together, as stores were written before
    (and as an ingest of one symbol at a time still leaves them)."""
    store._run("CREATE OR REPLACE TABLE bars AS SELECT * FROM bars ORDER BY symbol_id, ts")


MARKET = td.sample(symbols=6, days=5, seed=4)


def test_an_ingest_writes_bars_in_time_order_by_day():
    store = td.Store()
    store.ingest(MARKET)
    days = _days_in_row_order(store)
    assert len(days) == sum(len(b) for b in MARKET.bars)
    assert (np.diff(days) >= 0).all()
    assert len(np.unique(days)) == 5  # five sessions, each one UTC day here


def test_a_store_written_symbol_by_symbol_streams_the_same_and_reorder_fixes_its_layout():
    store = td.Store()
    store.ingest(MARKET)
    in_memory = tickstep.Backtest(store, SmaCross, cash=100_000, on_reject="ignore").run()
    _symbol_major(store)
    assert (np.diff(_days_in_row_order(store)) < 0).any()
    scattered = tickstep.Backtest(store, SmaCross, cash=100_000, on_reject="ignore",
                                  stream="1D").run()
    assert_same_run(in_memory, scattered)
    store.reorder()
    assert (np.diff(_days_in_row_order(store)) >= 0).all()
    for stream in ("1D", "2h", None):
        options = {} if stream is None else {"stream": stream}
        again = tickstep.Backtest(store, SmaCross, cash=100_000, on_reject="ignore",
                                  **options).run()
        assert_same_run(in_memory, again)
    # The store stays a store: listing, loads and ingests work after the rewrite.
    assert store.symbols()["bars"].sum() == sum(len(b) for b in MARKET.bars)
    assert store.ingest(MARKET) == 0
    one = store.load(MARKET.symbols[2])
    np.testing.assert_array_equal(one.bars[0].close, MARKET.bars[2].close)


def test_reorder_is_one_transaction(monkeypatch):
    store = td.Store()
    store.ingest(MARKET)
    before = store.load()
    run = store._run

    def failing(sql, params=None):
        if sql.startswith("ALTER TABLE"):
            raise RuntimeError("disk full")
        return run(sql, params)

    monkeypatch.setattr(store, "_run", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        store.reorder()
    monkeypatch.undo()
    after = store.load()
    for a, b in zip(before.bars, after.bars, strict=True):
        np.testing.assert_array_equal(a.ts, b.ts)
        np.testing.assert_array_equal(a.close, b.close)
    assert "_tickstep_bars_ordered" not in {
        r[0] for r in store._run("SELECT table_name FROM information_schema.tables").fetchall()
    }


def _rows(draw_runs: list[tuple[int, int]], n_extra: int) -> pa.Table:
    """Rows in runs of (symbol id, length), times increasing per symbol, an extra column
    with a NULL every 7th row."""
    sid, ts = [], []
    clock: dict[int, int] = {}
    for symbol, length in draw_runs:
        t0 = clock.get(symbol, 0)
        sid.extend([symbol] * length)
        ts.extend(range(t0, t0 + length))
        clock[symbol] = t0 + length
    n = len(sid)
    columns = {"symbol_id": pa.array(sid, pa.int32()), "ts": pa.array(ts, pa.int64())}
    for k, name in enumerate(VALUE_COLUMNS):
        columns[name] = pa.array(np.arange(n, dtype=np.float64) * (k + 1))
    for k in range(n_extra):
        columns[f"e{k}"] = pa.array([None if i % 7 == 3 else float(i) for i in range(n)],
                                    pa.float64())
    return pa.table(columns)


@settings(max_examples=60, deadline=None)
@given(runs=st.lists(st.tuples(st.integers(1, 5), st.integers(1, 9)), min_size=1, max_size=40),
       batch=st.integers(1, 50), n_extra=st.integers(0, 1),
       sort_below=st.sampled_from([0, 5, 10**9]))
def test_grouped_columns_equal_a_stable_sort_by_symbol(runs, batch, n_extra, sort_below):
    """Placed run by run (sort_below 0), sorted by symbol (10**9), or as the runs'
    average length decides (5): the same columns."""
    table = _rows(runs, n_extra)
    table = pa.Table.from_batches(table.to_batches(max_chunksize=batch))
    ids = np.array([5, 3, 1, 4, 2], dtype=np.int32)  # the order symbols are wanted in
    with mock.patch.object(assembly, "SORT_BELOW_RUN_LENGTH", sort_below):
        symbol_id, columns = grouped_columns(table, ids, n_extra)
    raw = table.to_pydict()
    # Each symbol's rows together (one run per symbol), in the order they came.
    heads = symbol_id[np.concatenate(([0], np.flatnonzero(np.diff(symbol_id)) + 1))]
    assert len(set(heads.tolist())) == len(heads)
    for symbol in set(raw["symbol_id"]):
        mine = np.array(raw["symbol_id"]) == symbol
        got = symbol_id == symbol
        for name in ("ts", *VALUE_COLUMNS):
            np.testing.assert_array_equal(columns[name][got], np.array(raw[name])[mine])
        if n_extra:
            values = np.array([np.nan if v is None else v for v in raw["e0"]])[mine]
            nulls = np.array([v is None for v in raw["e0"]])[mine]
            np.testing.assert_array_equal(columns["e0"][got], values)
            mask = columns.get("e0:null", np.zeros(len(symbol_id), bool))
            np.testing.assert_array_equal(mask[got], nulls)
    assert len(symbol_id) == table.num_rows
    # Gathered columns are frozen, so the engine can adopt them without a copy.
    assert all(not columns[name].flags.writeable for name in ("ts", *VALUE_COLUMNS))


@pytest.mark.parametrize("sort_below", [0, 10**9])
def test_grouped_columns_refuse_rows_of_a_symbol_not_asked_for(sort_below):
    table = _rows([(1, 3), (9, 2)], 0)
    table = pa.Table.from_batches(table.to_batches(max_chunksize=2))
    with mock.patch.object(assembly, "SORT_BELOW_RUN_LENGTH", sort_below), \
            pytest.raises(DataError, match="not requested"):
        grouped_columns(table, np.array([1, 2], dtype=np.int32))


def test_a_window_query_reads_rows_of_its_own_days_only(tmp_path):
    # The layout's point, seen from DuckDB's own plan: a one-day window of a store of
    # many days scans only the row groups holding that day.
    path = tmp_path / "days.duckdb"
    with td.Store(path) as store:
        store.ingest(td.sample(symbols=40, days=30, seed=2))
        first = int(pd.Timestamp(store.symbols()["first"].min()).value)
        lo = first - first % NS_PER_DAY + 10 * NS_PER_DAY
        plan = store._run(
            "EXPLAIN ANALYZE SELECT count(*) FROM bars b "
            f"WHERE b.ts >= {lo} AND b.ts < {lo + NS_PER_DAY}"
        ).fetchall()[0][1]
    scanned, groups = _row_groups(plan)
    assert groups >= 3 and scanned < groups / 2


def _row_groups(plan: str) -> tuple[int, int]:
    import re

    found = re.search(r"Row Groups Scanned:\s*([\d,]+)\s*/\s*([\d,]+)", plan)
    assert found is not None, f"DuckDB's plan no longer reports row groups scanned:\n{plan}"
    return tuple(int(g.replace(",", "")) for g in found.groups())  # type: ignore[return-value]


def _per_symbol(symbol_id, columns, ids, symbols, extra, allow_nan):
    """A window's parts as every symbol checked on its own (`_checked_part`): the
    reference the whole-window check must match, result for result, error for error."""
    spans, take = _symbol_rows(symbol_id, ids)
    parts, own = [], []
    for k, symbol in enumerate(symbols):
        if k not in spans:
            parts.append([np.empty(0, np.int64)] + [np.empty(0)] * 5)
            own.append({})
            continue
        rows = take[spans[k]] if take is not None else spans[k]
        part, values = _checked_part(symbol, columns, rows, extra, allow_nan)
        parts.append(part)
        own.append(values)
    return parts, own


_BREAKS = ("none", "high<low", "open>high", "close<low", "nan close", "inf high", "zero low",
           "negative volume", "inf volume", "nan volume", "same ts", "ts back", "nat",
           "inf extra", "nan extra")


@settings(max_examples=150, deadline=None)
@given(lengths=st.lists(st.integers(0, 6), min_size=1, max_size=5),
       shuffle=st.randoms(use_true_random=False), breaks=st.sampled_from(_BREAKS),
       where=st.integers(0, 10_000), n_extra=st.integers(0, 2),
       nulls=st.sampled_from(("none", "some", "all of one symbol")),
       allow_nan=st.sampled_from(((), ("x1",), True)))
def test_a_window_checked_whole_equals_each_symbol_checked(lengths, shuffle, breaks, where,
                                                            n_extra, nulls, allow_nan):
    ids = np.array([7, 3, 5, 1, 4][:len(lengths)], dtype=np.int64)
    symbols = [f"S{k}" for k in range(len(lengths))]
    # Symbols' rows together, in a shuffled order of symbols (a store's id order).
    order = list(range(len(lengths)))
    shuffle.shuffle(order)
    sid = np.concatenate([np.full(lengths[k], ids[k]) for k in order]).astype(np.int32)
    n = len(sid)
    if n == 0:
        return
    ts = np.concatenate([np.arange(lengths[k], dtype=np.int64) * 60 + 1_000 for k in order])
    low = 10.0 + np.arange(n)
    columns = {"ts": ts, "open": low + 0.5, "high": low + 1.0, "low": low, "close": low + 0.25,
               "volume": np.full(n, 100.0)}
    extra = tuple(f"x{j}" for j in range(n_extra))
    for j in range(n_extra):
        values = np.arange(n, dtype=np.float64)
        if nulls != "none":
            mask = np.zeros(n, bool)
            if nulls == "some":
                mask[::3] = True
            else:
                mask[:lengths[order[0]]] = True
            values[mask] = np.nan
            columns[f"e{j}:null"] = mask
        columns[f"e{j}"] = values
    i = where % n
    edits = {"high<low": ("high", 1.0), "open>high": ("open", 1e9), "close<low": ("close", 1.0),
             "nan close": ("close", np.nan), "inf high": ("high", np.inf),
             "zero low": ("low", 0.0), "negative volume": ("volume", -1.0),
             "inf volume": ("volume", np.inf), "nan volume": ("volume", np.nan)}
    if breaks in edits:
        name, value = edits[breaks]
        columns[name][i] = value
    elif breaks in ("same ts", "ts back") and i > 0 and sid[i] == sid[i - 1]:
        ts[i] = ts[i - 1] - (breaks == "ts back")
    elif breaks == "nat":
        ts[i] = np.iinfo(np.int64).min
    elif breaks in ("inf extra", "nan extra") and n_extra:
        columns[f"e{n_extra - 1}"][i] = np.inf if breaks == "inf extra" else np.nan

    def outcome(read):
        try:
            return read(sid, columns, ids, symbols, extra, allow_nan)
        except DataError as err:
            return str(err)

    got, want = outcome(window_parts), outcome(_per_symbol)
    if isinstance(want, str):
        assert got == want
        return
    assert not isinstance(got, str), got
    for k in range(len(symbols)):
        for g, w in zip(got[0][k], want[0][k]):
            np.testing.assert_array_equal(g, w)
            assert g.dtype == w.dtype
        assert list(got[1][k]) == list(want[1][k])
        for name in want[1][k]:
            np.testing.assert_array_equal(got[1][k][name], want[1][k][name])


def _memory_limit(store: td.Store) -> str:
    return store._run("SELECT current_setting('memory_limit')").fetchall()[0][0]


def test_a_stream_bounds_duckdbs_cache_on_its_own_connection_only(tmp_path):
    # DuckDB caches every block it reads up to memory_limit (80% of RAM by default): a
    # stream that opened the store bounds it, a store the user opened keeps its settings,
    # and a database shared with the user's connection gets its limit back at the end.
    from tickstep.data._duckdb import _READ_ONCE_MEMORY
    from tickstep.data._stream import open_stream

    path = tmp_path / "cache.duckdb"
    with td.Store(path) as store:
        store.ingest(MARKET)
    bounded = td.Store(":memory:")
    bounded._run(f"SET memory_limit = '{_READ_ONCE_MEMORY}'")
    default = td.Store(":memory:")
    assert _memory_limit(bounded) != _memory_limit(default)

    own = open_stream(path, window="1D")
    assert _memory_limit(own.store) == _memory_limit(bounded)
    assert sum(w.n_bars for w in own.windows()) == sum(len(b) for b in MARKET.bars)
    own.close()

    mine = td.Store(path, read_only=True)
    theirs = open_stream(mine, window="1D")
    assert _memory_limit(mine) == _memory_limit(default)
    theirs.close()

    shared = open_stream(path, window="1D")  # the same database as ``mine``
    assert _memory_limit(mine) == _memory_limit(bounded)
    shared.close()
    assert _memory_limit(mine) == _memory_limit(default)
    mine._run("SET memory_limit = '1GB'")
    before = _memory_limit(mine)
    open_stream(path, window="1D").close()
    assert _memory_limit(mine) == before
    mine.close()
