"""Resampled store loads folded as the rows stream in (`tickstep.data._buckets`).

The embedded store streams a resampled load's kept bars in stored order and folds them
into buckets batch by batch. Checked here against a reference built bar by bar (volume
added one bar after another in time), against DuckDB's own SQL aggregate, for any batch
size, and for stores filled by several ingests (in time order, backfilled, interleaved).
"""

from __future__ import annotations

import functools
import operator

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tickstep.data as td
from tickstep.data._buckets import Interleaved, fold_buckets
from tickstep.data._duckdb import Store

COLUMNS = ["open", "high", "low", "close", "volume", "sig"]


def frame(n: int, start: str, seed: int) -> pd.DataFrame:
    """Minute bars with fractional volumes (sums whose last bits depend on the order)
    and an extra column with gaps."""
    rng = np.random.default_rng(seed)
    close = 100 + np.cumsum(rng.standard_normal(n) * 0.1)
    open_ = close + rng.standard_normal(n) * 0.1
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) + 0.5,
            "low": np.minimum(open_, close) - 0.5,
            "close": close,
            "volume": rng.random(n) * 1000 + rng.random(n) * 1e-7,
            "sig": np.where(rng.random(n) < 0.2, np.nan, rng.standard_normal(n)),
        },
        index=pd.date_range(start, periods=n, freq="min", tz="UTC", name="ts"),
    )


FULL = {s: frame(3000, "2024-03-04", seed) for seed, s in enumerate(["AAA", "BBB", "CCC"])}


def reference(bars: pd.DataFrame, rule: str) -> pd.DataFrame:
    """Bar by bar: first open, max high, min low, last close, volume added in time order,
    the extra column's value at the bucket's last bar (a gap stays a gap)."""
    groups = bars.groupby(bars.index.floor(rule))
    return pd.DataFrame(
        {
            "open": groups["open"].first(),
            "high": groups["high"].max(),
            "low": groups["low"].min(),
            "close": groups["close"].last(),
            "volume": groups["volume"].agg(lambda v: functools.reduce(operator.add, v.tolist(), 0.0)),
            "sig": groups["sig"].agg(lambda v: v.iloc[-1]),
        }
    )


def in_sql(store: Store, **options) -> td.MarketColumns:
    """The same load resampled by DuckDB's SQL aggregate (the fallback path)."""
    fold = Store._fetch_buckets
    Store._fetch_buckets = lambda self, *a, **k: None
    try:
        return store.load(**options)
    finally:
        Store._fetch_buckets = fold


def ingest(store: Store, pieces: list[dict[str, pd.DataFrame]]) -> Store:
    for piece in pieces:
        store.ingest(piece, columns=["sig"], allow_nan=["sig"])
    return store


def assert_bars(got: td.SymbolBars, expected: pd.DataFrame, exact_volume: bool = True) -> None:
    frame = got.to_frame()
    np.testing.assert_array_equal(frame.index, expected.index)
    for name in COLUMNS:
        if name == "volume" and not exact_volume:
            np.testing.assert_allclose(frame[name], expected[name], rtol=1e-12)
        else:
            np.testing.assert_array_equal(frame[name].to_numpy(), expected[name].to_numpy(), err_msg=name)


def test_one_ingest_equals_the_bar_by_bar_reference_bit_for_bit():
    store = ingest(Store(), [FULL])
    market = store.load(timeframe="15min", allow_nan=["sig"])
    for bars in market.bars:
        assert_bars(bars, reference(FULL[bars.symbol], "15min"))
    # DuckDB's aggregate agrees on everything but the order it adds volumes in.
    for ours, theirs in zip(market.bars, in_sql(store, timeframe="15min", allow_nan=["sig"]).bars):
        assert_bars(ours, theirs.to_frame(), exact_volume=False)
        np.testing.assert_array_equal(ours.close, theirs.close)


def test_a_load_is_two_statements():
    store = ingest(Store(), [FULL])
    before = store.queries_executed
    store.load(timeframe="1h", allow_nan=["sig"])
    assert store.queries_executed - before == 2


@pytest.mark.parametrize("cut", [1007, 1005, 1, 2999])
def test_ingests_in_time_order_join_into_the_same_buckets(cut):
    # The first ingest ends inside a bucket (cut 1007: at 16:47) or on its edge: the
    # bucket the two share is one bar; its volume is the sum of the two parts'.
    pieces = [{k: v.iloc[:cut] for k, v in FULL.items()}, {k: v.iloc[cut:] for k, v in FULL.items()}]
    for order in (pieces, pieces[::-1]):  # later days first: a backfill that follows on
        store = ingest(Store(), order)
        before = store.queries_executed
        market = store.load(timeframe="15min", allow_nan=["sig"])
        assert store.queries_executed - before == 2  # folded, not resampled in SQL
        for bars in market.bars:
            assert_bars(bars, reference(FULL[bars.symbol], "15min"), exact_volume=cut % 15 == 0)


def test_interleaved_ingests_are_resampled_in_sql():
    # Every other minute, then the minutes between: a symbol's stretches overlap in time.
    store = ingest(Store(), [{k: v.iloc[::2] for k, v in FULL.items()}, {k: v.iloc[1::2] for k, v in FULL.items()}])
    before = store.queries_executed
    market = store.load(timeframe="15min", allow_nan=["sig"])
    assert store.queries_executed - before == 3  # the fold gave up; one SQL aggregate
    for bars in market.bars:
        assert_bars(bars, reference(FULL[bars.symbol], "15min"), exact_volume=False)


def rows_table(rule: str) -> pa.Table:
    """Bucketed rows as the store streams them: symbol after symbol, in time."""
    parts = []
    for sid, bars in enumerate(FULL.values(), start=1):
        parts.append(
            pd.DataFrame(
                {
                    "symbol_id": np.int32(sid),
                    "bucket": bars.index.floor(rule).as_unit("ns").asi8,
                    "ts": bars.index.as_unit("ns").asi8,
                    **{c: bars[c].to_numpy() for c in COLUMNS[:5]},
                    "e0": bars["sig"].to_numpy(),
                }
            )
        )
    table = pa.Table.from_pandas(pd.concat(parts, ignore_index=True), preserve_index=False)
    # Gaps as NULL, as the store gives them.
    e0 = table.column("e0")
    return table.set_column(table.schema.get_field_index("e0"), "e0", pa.compute.if_else(pa.compute.is_nan(e0), None, e0))


@pytest.mark.parametrize("rule", ["15min", "1h", "1D"])
def test_the_fold_is_the_same_for_any_batch_size(rule):
    table = rows_table(rule)
    whole = fold_buckets(table.to_batches(), 1)
    for size in (1, 2, 7, 15, 16, 1000):
        folded = fold_buckets(table.to_batches(max_chunksize=size), 1)
        assert folded.keys() == whole.keys()
        for sid, columns in whole.items():
            assert folded[sid].keys() == columns.keys()
            for name, values in columns.items():
                np.testing.assert_array_equal(folded[sid][name], values, err_msg=f"{size} {name}")
                assert not folded[sid][name].flags.writeable  # adopted by the engine in place
    for sid, bars in enumerate(FULL.values(), start=1):
        expected = reference(bars, rule)
        np.testing.assert_array_equal(whole[sid]["ts"], expected.index.as_unit("ns").asi8)
        np.testing.assert_array_equal(whole[sid]["volume"], expected["volume"].to_numpy())
        gaps = whole[sid].get("e0:null", np.zeros(len(expected), dtype=bool))  # only if any
        np.testing.assert_array_equal(gaps, expected["sig"].isna().to_numpy())
        np.testing.assert_array_equal(whole[sid]["e0"], expected["sig"].to_numpy())


def test_overlapping_stretches_raise_interleaved():
    table = rows_table("15min")
    # The first symbol's rows again at the end: its two stretches overlap in time.
    again = pa.concat_tables([table, table.slice(0, 100)])
    with pytest.raises(Interleaved):
        fold_buckets(again.to_batches(max_chunksize=500), 1)


def by_day(table: pa.Table, days_order: list[int] | None = None) -> pa.Table:
    """The rows as a store writes them: day by day, each symbol's bars of the day in time
    (symbols take turns); ``days_order`` the order the days were ingested in."""
    day = pa.compute.divide(table.column("ts"), np.int64(86_400 * 10**9)).to_numpy()
    days = sorted(set(day.tolist()))
    pieces = []
    for d in [days[i] for i in (days_order or range(len(days)))]:
        for sid in (1, 2, 3):
            mask = (day == d) & (table.column("symbol_id").to_numpy() == sid)
            pieces.append(table.filter(pa.array(mask)))
    return pa.concat_tables(pieces)


@pytest.mark.parametrize("rule", ["15min", "1h", "1D"])
@pytest.mark.parametrize("days_order", [None, [1, 2, 0], [2, 0, 1]])
def test_symbols_taking_turns_and_backfilled_days_fold_the_same(rule, days_order):
    # Days end on a bucket's edge for these rules, so every sum is the reference's.
    table = rows_table(rule)
    expected = fold_buckets(table.to_batches(), 1)
    turns = by_day(table, days_order)
    for size in (1, 7, 1000, len(turns)):
        folded = fold_buckets(turns.to_batches(max_chunksize=size), 1)
        assert folded.keys() == expected.keys()
        for sid, columns in expected.items():
            assert folded[sid].keys() == columns.keys()
            for name, values in columns.items():
                np.testing.assert_array_equal(folded[sid][name], values, err_msg=f"{size} {name}")
                assert not folded[sid][name].flags.writeable


def test_a_backfill_inside_one_batch_overlapping_its_symbols_past_raises_interleaved():
    table = rows_table("15min")
    first = table.filter(pa.compute.equal(table.column("symbol_id"), 1))
    # One symbol, rows 1000.. then rows 500..1500: time goes back inside a batch onto
    # bars already folded.
    again = pa.concat_tables([first.slice(1000), first.slice(500, 1000)])
    with pytest.raises(Interleaved):
        fold_buckets(again.to_batches(), 1)


@pytest.mark.parametrize("capacity", [{}, {1: 1, 2: 5}, {1: 10_000, 2: 10_000, 3: 10_000}])
def test_any_capacity_folds_the_same(capacity):
    # Too small (the arrays grow), none, or more than needed: the same bars.
    table = rows_table("15min")
    expected = fold_buckets(table.to_batches(), 1)
    folded = fold_buckets(by_day(table).to_batches(max_chunksize=100), 1, capacity)
    for sid, columns in expected.items():
        for name, values in columns.items():
            np.testing.assert_array_equal(folded[sid][name], values, err_msg=name)


@pytest.mark.parametrize(
    "options",
    [{"regular_hours": True, "timeframe": "15min"}, {"timeframe": "1h"}, {"timeframe": "1D"},
     {"regular_hours": True, "timeframe": "1D"}, {"timeframe": "5min", "start": "2024-03-08 18:07"}],
)
def test_bucket_capacity_bounds_every_symbols_bars(options):
    # Across a DST change (2024-03-10 in New York), in local time: no symbol gets more
    # buckets than the capacity its arrays are made for.
    from tickstep.data import _duckdb
    from tickstep.data._bars_query import bucket_capacity

    seen = {}

    def spy(*args):
        seen.update(bucket_capacity(*args))
        return seen

    market = td.sample(3, 12, hours="24h", missing=0.2, seed=5, start="2024-03-04")
    meta = pd.DataFrame({"symbol": market.symbols, "exchange": "XNYS", "timezone": "America/New_York"})
    store = Store()
    store.ingest(market, metadata=meta)
    ids = dict(zip(store.symbols().index, store._metadata_rows(None, with_range=False)["symbol_id"]))
    original = _duckdb.bucket_capacity
    _duckdb.bucket_capacity = spy
    try:
        loaded = store.load(**options)
    finally:
        _duckdb.bucket_capacity = original
    assert seen
    for bars in loaded.bars:
        assert 0 < len(bars.ts) <= seen[int(ids[bars.symbol])], bars.symbol


def test_batch_rows_grow_with_the_output_between_a_floor_and_a_ceiling():
    from tickstep.data._duckdb import (
        _BUCKET_BATCH_ROWS,
        _OUTPUT_BYTES_PER_BATCH_ROW,
        _bucket_batch_rows,
    )

    low, high = _BUCKET_BATCH_ROWS
    assert _bucket_batch_rows({}, 0) == low
    assert _bucket_batch_rows({1: 10}, 2) == low
    assert _bucket_batch_rows({1: 10**9}, 0) == high
    previous = low
    for buckets in (10**4, 10**5, 3 * 10**5, 10**6, 10**7):
        rows = _bucket_batch_rows({1: buckets // 2, 2: buckets - buckets // 2}, 1)
        assert rows & (rows - 1) == 0 and low <= rows <= high  # a power of two
        # A batch's rows stay within the output's bytes over the rule's ratio (or the floor).
        assert rows == low or rows * _OUTPUT_BYTES_PER_BATCH_ROW <= buckets * (48 + 9)
        assert rows * 2 * _OUTPUT_BYTES_PER_BATCH_ROW > buckets * (48 + 9) or rows == high
        assert rows >= previous
        previous = rows


@pytest.mark.parametrize("rows", [1, 7, 1000, 4096])
def test_a_store_load_is_the_same_bits_for_any_batch_size(rows, monkeypatch):
    # Batches whose edges fall inside buckets (7 and 1000 rows of minute bars into
    # 15-minute buckets) fold into the same bars as one batch of everything.
    from tickstep.data import _duckdb

    store = ingest(Store(), [{k: v.iloc[:1007] for k, v in FULL.items()}, {k: v.iloc[1007:] for k, v in FULL.items()}])
    monkeypatch.setattr(_duckdb, "_bucket_batch_rows", lambda capacity, n_extra: 1 << 20)
    whole = store.load(timeframe="15min", allow_nan=["sig"])
    monkeypatch.setattr(_duckdb, "_bucket_batch_rows", lambda capacity, n_extra: rows)
    before = store.queries_executed
    batched = store.load(timeframe="15min", allow_nan=["sig"])
    assert store.queries_executed - before == 2  # folded, not resampled in SQL
    for ours, theirs in zip(batched.bars, whole.bars):
        assert ours.symbol == theirs.symbol
        for name in ("ts", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(ours, name), getattr(theirs, name), err_msg=f"{rows} {name}")
        pd.testing.assert_frame_equal(ours.to_frame(), theirs.to_frame())
