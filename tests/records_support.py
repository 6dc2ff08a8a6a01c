"""Shared by the records tests: generated zones, stores of both kinds, statement counting."""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest
import tickstep.data as td

PG_URL = os.environ.get("TICKSTEP_PG_URL")
NEEDS_PG = pytest.mark.skipif(
    not PG_URL,
    reason="PostgreSQL tests need a server: export TICKSTEP_PG_URL=$(bash .ci/start-postgres.sh)",
)
STORE_KINDS = ["duckdb", pytest.param("postgres", marks=NEEDS_PG)]


def make_zones(market: td.MarketColumns, *, every: int = 3, seed: int = 0,
               max_zones: int = 5, shift: str | None = None) -> pd.DataFrame:
    """Confluence zones per analysis time: for each symbol, a key every ``every`` bars
    (stamped at a bar, or ``shift`` after it), 1..max_zones zones per key around the
    close: level, upper, lower, strength, zone type, first/last touch."""
    rng = np.random.default_rng(seed)
    parts = []
    for bars in market.bars:
        keys = bars.ts[::every]
        close = bars.close[::every]
        if shift is not None:
            keys = keys + pd.Timedelta(shift).value
        counts = rng.integers(1, max_zones + 1, size=len(keys))
        n = int(counts.sum())
        ts = np.repeat(keys, counts)
        base = np.repeat(close, counts)
        level = base * (1 + rng.normal(0, 0.03, n))
        width = base * rng.uniform(0.002, 0.01, n)
        touch = ts - rng.integers(1, 20, n) * 86_400_000_000_000
        parts.append(pd.DataFrame({
            "symbol": bars.symbol,
            "ts": pd.to_datetime(ts, utc=True),
            "level": level,
            "upper": level + width,
            "lower": level - width,
            "strength": rng.integers(1, 10, n),
            "zone_type": rng.choice(["support", "resistance"], n),
            "first_touch": pd.to_datetime(touch, utc=True),
            "last_touch": pd.to_datetime(ts - 86_400_000_000_000, utc=True),
        }))
    return pd.concat(parts, ignore_index=True)


class CountingConnection:
    """Wraps a store's connection and counts every statement sent through it
    (DuckDB ``execute``/``sql``; ADBC cursors' ``execute``/``adbc_ingest``)."""

    def __init__(self, con):
        self._con = con
        self.statements: list[str] = []

    def __getattr__(self, name):
        return getattr(self._con, name)

    def execute(self, sql, *args, **kwargs):
        self.statements.append(sql)
        return self._con.execute(sql, *args, **kwargs)

    def sql(self, sql, *args, **kwargs):
        self.statements.append(sql)
        return self._con.sql(sql, *args, **kwargs)

    def cursor(self):
        return _CountingCursor(self._con.cursor(), self.statements)


class _CountingCursor:
    def __init__(self, cur, statements):
        self._cur = cur
        self._statements = statements

    def __getattr__(self, name):
        return getattr(self._cur, name)

    def execute(self, sql, *args, **kwargs):
        self._statements.append(sql)
        return self._cur.execute(sql, *args, **kwargs)

    def adbc_ingest(self, name, *args, **kwargs):
        self._statements.append(f"COPY {name}")
        return self._cur.adbc_ingest(name, *args, **kwargs)


def count_statements(store) -> CountingConnection:
    counting = CountingConnection(store._con)
    store._con = counting
    return counting


def open_store(kind: str):
    """A fresh store of ``kind``; PostgreSQL in a schema of its own (dropped on close)."""
    if kind == "duckdb":
        return td.Store(), lambda: None
    schema = f"tickstep_rec_{uuid.uuid4().hex[:10]}"
    store = td.PostgresStore(PG_URL, schema=schema)

    def drop():
        import adbc_driver_postgresql.dbapi as pgdb

        store.close()
        with pgdb.connect(PG_URL) as con, con.cursor() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            con.commit()

    return store, drop


def row_counts(store) -> dict[str, int]:
    """Rows of bars, symbols and every record table (for 'nothing changed' checks)."""
    counts = {
        "bars": int(store._frame("SELECT count(*) AS n FROM bars")["n"].iloc[0]),
        "symbols": int(store._frame("SELECT count(*) AS n FROM symbols")["n"].iloc[0]),
    }
    tables = store.record_tables()
    for name in tables.index:
        counts[f"records_{name}"] = int(tables.loc[name, "records"])
    return counts


def reference_sets(zones: pd.DataFrame, symbol: str, now: int) -> pd.DataFrame:
    """pandas reference: the rows of ``symbol`` stamped at the latest key <= now."""
    mine = zones[zones["symbol"] == symbol]
    stamps = mine["ts"].astype("int64") if mine["ts"].dtype.kind == "i" else \
        mine["ts"].dt.tz_convert("UTC").dt.as_unit("ns").astype("int64")
    before = stamps[stamps <= now]
    if before.empty:
        return mine.iloc[:0]
    return mine[stamps == before.max()]
