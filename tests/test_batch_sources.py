"""`run_batch` rows equal `Backtest.run` for every kind of data source.

Both turn the data argument into columns through the one door (`tickstep.data.resolve`)
and run it through the one simulation path, so for the same ``symbols/start/end`` each
batch row must equal the statistics of the matching `Backtest.run`, bit for bit, whether
the bars come from memory, CSV, Parquet, Arrow, DuckDB or PostgreSQL.
"""

from __future__ import annotations

import os
import uuid

import pandas as pd
import pyarrow as pa
import pytest
import tickstep
import tickstep.data as td
from pyarrow import feather
from tickstep.batch import run_batch
from tickstep.strategies import RsiMeanReversion

URL = os.environ.get("TICKSTEP_PG_URL")
KINDS = ["long-frame", "market-columns", "csv", "parquet", "arrow", "duckdb-path",
         "duckdb-store", "postgresql"]
SYMBOLS = ["AAA", "BBB", "CCC"]
# A date alone is that whole day, for every source: both ends are inclusive.
START, END = "2020-02-03", "2020-11-30"
PARAMS = {"oversold": [30.0, 40.0], "rsi_period": 7}
OPTIONS = {"cash": 25_000, "commission": 0.0005, "slippage": 1.0}


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(SYMBOLS + ["DDD"], days=260, seed=11)


@pytest.fixture(scope="module")
def sources(market, tmp_path_factory):
    root = tmp_path_factory.mktemp("batch-sources")
    frame = market.to_frame()
    made = {"long-frame": frame, "market-columns": market}
    frame.to_csv(root / "bars.csv", index=False)
    made["csv"] = str(root / "bars.csv")
    frame.to_parquet(root / "bars.parquet", index=False)
    made["parquet"] = str(root / "bars.parquet")
    feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), root / "bars.arrow")
    made["arrow"] = str(root / "bars.arrow")
    with td.Store(root / "bars.duckdb") as store:
        store.ingest(market)
    made["duckdb-path"] = str(root / "bars.duckdb")
    writable = td.Store(root / "open.duckdb")  # held open for writing: workers get a snapshot
    writable.ingest(market)
    made["duckdb-store"] = writable
    schema = None
    if URL is not None:
        schema = "batch_sources_" + uuid.uuid4().hex[:8]
        pg = td.PostgresStore(URL, schema=schema)
        pg.ingest(market)
        pg.close()
        made["postgresql-store"] = td.PostgresStore(URL, schema=schema)
    yield made
    writable.close()
    if schema is not None:
        pg = made["postgresql-store"]
        pg._run(f'DROP SCHEMA "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


def _source(sources, kind):
    if kind == "postgresql":
        if URL is None:
            pytest.skip("PostgreSQL sources need TICKSTEP_PG_URL")
        return sources["postgresql-store"]
    return sources[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_batch_rows_equal_backtest_run(sources, kind, tmp_path):
    data = _source(sources, kind)
    rows = run_batch(RsiMeanReversion, data, params=PARAMS, symbols=SYMBOLS, start=START,
                     end=END, cache=False, max_workers=2, scratch_dir=tmp_path, **OPTIONS)
    assert len(rows) == len(SYMBOLS) * 2
    assert (rows["status"] == "ok").all(), rows["error"].dropna().tolist()[:1]
    for symbol in SYMBOLS:
        bt = tickstep.Backtest(data, RsiMeanReversion, symbols=[symbol], start=START, end=END,
                               **OPTIONS)
        assert bt.market.timeline()[0] == pd.Timestamp(START, tz="UTC").value
        assert bt.market.timeline()[-1] == pd.Timestamp(END, tz="UTC").value  # whole last day
        for oversold in PARAMS["oversold"]:
            expected = bt.run(oversold=oversold, rsi_period=7).stats
            got = rows[(rows["symbols"] == symbol) & (rows["oversold"] == oversold)]
            assert len(got) == 1
            got = got.iloc[0]
            for label, value in expected.items():
                same = got[label] == value or (pd.isna(got[label]) and pd.isna(value))
                assert same, (kind, symbol, oversold, label, got[label], value)


def test_every_source_gives_the_same_rows(sources, tmp_path):
    """The sources agree with each other too (not only each with its own Backtest)."""
    frames = []
    for kind in KINDS:
        if kind == "postgresql" and URL is None:
            continue
        rows = run_batch(RsiMeanReversion, _source(sources, kind), params=PARAMS,
                         symbols=SYMBOLS, start=START, end=END, cache=False,
                         executor="sequential", scratch_dir=tmp_path, **OPTIONS)
        frames.append(rows.drop(columns=["run_time", "cached"]).sort_index())
    for other in frames[1:]:
        pd.testing.assert_frame_equal(frames[0], other)
