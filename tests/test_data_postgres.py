"""PostgresStore against a real server: same interface and results as the DuckDB store.

Runs when TICKSTEP_PG_URL names a server, e.g. the one `bash .ci/start-postgres.sh`
starts (it prints the URL). Each run works in a fresh schema and drops it afterwards.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest
import tickstep.data as td
from tickstep.data import DataError, PostgresStore, Store

URL = os.environ.get("TICKSTEP_PG_URL")
pytestmark = [
    pytest.mark.skipif(
        not URL,
        reason="PostgreSQL tests need a server: run `export TICKSTEP_PG_URL=$(bash "
        ".ci/start-postgres.sh)` (installs and starts one on loopback) and re-run pytest",
    ),
    pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning"),
]


@pytest.fixture(scope="module")
def schema():
    name = f"tickstep_test_{uuid.uuid4().hex[:10]}"
    yield name
    import adbc_driver_postgresql.dbapi as pgdb

    with pgdb.connect(URL) as con, con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        con.commit()


@pytest.fixture(scope="module")
def market():
    return td.sample(5, 15, seed=21, hours="extended", start="2024-03-04")


@pytest.fixture(scope="module")
def stores(schema, market):
    pg = PostgresStore(URL, schema=schema)
    pg.ingest(market)
    duck = Store()
    duck.ingest(market)
    yield pg, duck
    pg.close()


def assert_same(a: td.MarketColumns, b: td.MarketColumns) -> None:
    assert a.symbols == b.symbols
    for x, y in zip(a.bars, b.bars):
        for name in ("ts", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


def test_round_trip_and_listing(stores, market):
    pg, _ = stores
    assert_same(pg.load(), market)
    listing = pg.symbols()
    assert list(listing["bars"]) == [len(b) for b in market.bars]
    assert listing.loc[market.symbols[0], "first"] == pd.Timestamp(market.bars[0].ts[0], tz="UTC")
    assert list(pg.metadata()["sector"]) == list(market.metadata["sector"])


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"start": "2024-03-06", "end": "2024-03-12"},
        {"regular_hours": True},
        {"timeframe": "5min"},
        {"timeframe": "1h", "start": "2024-03-08"},
        {"timeframe": "1D"},
        {"regular_hours": True, "timeframe": "1D"},
        {"regular_hours": True, "timeframe": "30min", "end": "2024-03-14 18:00"},
    ],
)
def test_postgres_and_duckdb_load_identical_columns(stores, market, filters):
    pg, duck = stores
    symbols = market.symbols[1:4]
    got = pg.load(symbols, **filters)
    assert_same(got, duck.load(symbols, **filters))
    pd.testing.assert_frame_equal(
        got.metadata[["sector", "exchange", "timezone"]],
        duck.load(symbols, **filters).metadata[["sector", "exchange", "timezone"]],
    )


def test_one_load_is_two_statements_whatever_the_symbols(stores, market):
    pg, _ = stores
    before = pg.queries_executed
    pg.load(market.symbols[:1])
    one = pg.queries_executed - before
    before = pg.queries_executed
    pg.load(market.symbols, regular_hours=True, timeframe="1h")
    assert one == pg.queries_executed - before == 2


def test_reingest_conflicts_and_replace(schema, market):
    pg = PostgresStore(URL, schema=schema + "_w")
    try:
        frame = market.bars[0].to_frame()
        symbol = market.symbols[0]
        assert pg.ingest({symbol: frame}) == len(frame)
        assert pg.ingest({symbol: frame}) == 0
        changed = frame.iloc[[3]].copy()
        changed["volume"] += 1
        with pytest.raises(DataError, match=r"1 row\(s\) conflict") as info:
            pg.ingest({symbol: changed})
        assert frame.index[3].isoformat() in str(info.value)
        np.testing.assert_array_equal(pg.load(symbol).bars[0].volume, frame["volume"])
        assert pg.ingest({symbol: changed}, on_conflict="replace") == 1
        assert pg.load(symbol).bars[0].volume[3] == changed["volume"].iloc[0]
    finally:
        pg._run(f'DROP SCHEMA "{schema}_w" CASCADE')
        pg._con.commit()
        pg.close()


def test_bars_changed_outside_tickstep_are_never_hidden_by_packs(schema, market):
    pg = PostgresStore(URL, schema=schema + "_p")
    try:
        symbol = market.symbols[0]
        frame = market.bars[0].to_frame()
        pg.ingest({symbol: frame})
        ranged = pg.load(symbol, start="2024-03-06 15:00", end="2024-03-07 16:00:30")
        expected = frame.loc["2024-03-06 15:00":"2024-03-07 16:00:30"]
        np.testing.assert_array_equal(ranged.bars[0].close, expected["close"])
        # A change made with plain SQL: loads fall back to the rows until packs are rebuilt.
        pg._run("UPDATE bars SET volume = volume + 1 WHERE ts = (SELECT min(ts) FROM bars)")
        pg._con.commit()
        assert pg.load(symbol).bars[0].volume[0] == frame["volume"].iloc[0] + 1
        pg.rebuild_packs()
        before = pg.queries_executed
        assert pg.load(symbol).bars[0].volume[0] == frame["volume"].iloc[0] + 1
        assert pg.queries_executed - before == 2
    finally:
        pg._run(f'DROP SCHEMA "{schema}_p" CASCADE')
        pg._con.commit()
        pg.close()


def test_errors_and_bound_parameters(schema, stores):
    pg, _ = stores
    with pytest.raises(DataError, match=r"not in the store: 'NOPE'"):
        pg.load(["NOPE"])
    with pytest.raises(DataError, match="no bars for symbol"):
        pg.load(start="2031-01-01")
    nasty = "Q'); DROP TABLE bars; --"
    pg.ingest({nasty: td.sample(["A"], 1, seed=2).bars[0].to_frame()})
    pg.ingest_metadata(pd.DataFrame({"symbol": [nasty], "sector": ["it's"], "beta": [1.5]}))
    loaded = pg.load([nasty])
    assert loaded.symbols == [nasty] and loaded.metadata.loc[nasty, "sector"] == "it's"
    assert loaded.metadata.loc[nasty, "beta"] == 1.5


def test_top_level_load_from_url(stores, market):
    pg, _ = stores
    loaded = td.load(pg, market.symbols[:2], timeframe="1D")
    assert loaded.symbols == market.symbols[:2]


@pytest.fixture(scope="module")
def twin_stores(market):
    """A PostgreSQL and a DuckDB store holding exactly the same bars (nothing else)."""
    name = f"tickstep_twin_{uuid.uuid4().hex[:10]}"
    pg = PostgresStore(URL, schema=name)
    pg.ingest(market)
    duck = Store()
    duck.ingest(market)
    yield pg, duck
    pg.close()
    import adbc_driver_postgresql.dbapi as pgdb

    with pgdb.connect(URL) as con, con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        con.commit()


@pytest.mark.parametrize("filters", [{}, {"regular_hours": True}, {"timeframe": "15min"}])
def test_postgres_and_duckdb_give_identical_backtests(twin_stores, filters):
    """The same strategy over the same bars from either store: identical to the bit."""
    import tickstep
    from pandas.testing import assert_frame_equal
    from tickstep.strategies import SmaCross

    pg, duck = twin_stores
    runs = []
    for store in (pg, duck):
        bt = tickstep.Backtest(store, SmaCross, cash=100_000, commission=0.0005,
                               sizer=tickstep.PercentOfEquity(0.19), **filters)
        runs.append(bt.run(fast=5, slow=20))
    a, b = runs
    assert len(a.trades) > 10  # the comparison is not vacuous
    assert_frame_equal(a.trades, b.trades, check_exact=True)
    assert_frame_equal(a.fills, b.fills, check_exact=True)
    assert_frame_equal(a.equity_frame, b.equity_frame, check_exact=True)
    pd.testing.assert_series_equal(a.stats, b.stats, check_exact=True)
