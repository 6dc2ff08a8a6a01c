"""Extra per-bar columns in the stores (DuckDB and PostgreSQL).

Ingested extra columns are stored beside the prices and come back, with their values,
in the same single bars query (two statements per load, whatever the columns); filters
and resampling treat them in SQL by a stated rule (a resampled bar takes its bucket's
last bar's value); a refused ingest leaves the store as it was, columns included. The
PostgreSQL half runs against the server named by TICKSTEP_PG_URL.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from tickstep.data import DataError

URL = os.environ.get("TICKSTEP_PG_URL")
EXTRA = ("signal", "pe", "Adj Close")


def _drop_schema(name: str) -> None:
    import adbc_driver_postgresql.dbapi as pgdb

    with pgdb.connect(URL) as con, con.cursor() as cur:
        cur.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        con.commit()


@pytest.fixture(params=["duckdb", "postgres"])
def store(request):
    if request.param == "duckdb":
        st = td.Store()
        yield st
        st.close()
        return
    if not URL:
        pytest.fail("PostgreSQL tests need TICKSTEP_PG_URL (see .ci/start-postgres.sh)")
    name = f"tickstep_cols_{uuid.uuid4().hex[:10]}"
    st = td.PostgresStore(URL, schema=name)
    yield st
    st.close()
    _drop_schema(name)


@pytest.fixture(scope="module")
def market():
    return td.sample(3, 3, seed=21, hours="extended", start="2024-03-04")


def with_extras(market: td.MarketColumns) -> pd.DataFrame:
    frame = market.to_frame()
    close = frame.groupby("symbol")["close"]
    frame["signal"] = close.transform(lambda c: c.ewm(span=10, adjust=False).mean())
    frame["pe"] = np.random.default_rng(5).uniform(5, 40, len(frame))
    frame.loc[frame.index[::11], "pe"] = np.nan
    frame["Adj Close"] = frame["close"] * 0.98
    return frame


@pytest.fixture(scope="module")
def frame(market):
    return with_extras(market)


def count_bars(store) -> int:
    return int(store._arrow("SELECT count(*) AS n FROM bars").column(0)[0].as_py())


def test_round_trip_in_one_bars_query(store, frame, market):
    assert store.ingest(frame, metadata=market.metadata, allow_nan=["pe"]) == len(frame)
    assert store.columns() == list(EXTRA)
    before = store.queries_executed
    loaded = store.load(allow_nan=["pe"])
    assert store.queries_executed - before == 2  # metadata (with the column list) + bars
    assert loaded.columns == list(EXTRA)
    assert "bar_columns" not in loaded.metadata.columns  # nothing internal
    for b in loaded.bars:
        part = frame[frame.symbol == b.symbol]
        np.testing.assert_array_equal(b.ts, part.ts.astype("int64"))
        for name in EXTRA:
            np.testing.assert_array_equal(b.extra[name], part[name].to_numpy(), err_msg=name)
    # Choosing columns reads only those; none reads the prices alone.
    chosen = store.load(columns=["Adj Close"])
    assert chosen.columns == ["Adj Close"]
    assert store.load(columns=[]).columns == []
    with pytest.raises(DataError, match=r"the store: columns=\['p/e'\] names 'p/e'"):
        store.load(columns=["p/e"])
    with pytest.raises(DataError, match=r"symbol 'BARP', row 0 .*pe present"):
        store.load()


def test_a_backtest_from_the_store_matches_one_from_memory(store, frame, market):
    class Follow(tickstep.Strategy):
        def init(self):
            self.average = self.sma(5, source="signal")

        def next(self, symbol):
            if not self.average.is_ready() or np.isnan(self.value("pe")):
                return
            if self.value("signal") > self.average.value and not self.position:
                self.buy(size=5)
            elif self.value("signal") < self.average.value and self.position:
                self.position.close()

    store.ingest(frame, metadata=market.metadata, allow_nan=["pe"])
    from_store = tickstep.Backtest(store, Follow, allow_nan=["pe"]).run()
    from_memory = tickstep.Backtest(frame, Follow, allow_nan=["pe"]).run()
    assert len(from_memory.trades) > 10
    pd.testing.assert_frame_equal(from_store.trades, from_memory.trades)


def test_symbols_without_a_column_and_columns_added_later(store, frame):
    first = frame[frame.symbol == "BARP"]
    others = frame[frame.symbol != "BARP"]
    # BARP arrives without any extra column, the others with a signal only.
    store.ingest(first.drop(columns=list(EXTRA)))
    store.ingest(others.drop(columns=["pe", "Adj Close"]))
    loaded = store.load()
    assert loaded.columns == ["signal"]
    assert "signal" not in loaded["BARP"].extra
    np.testing.assert_array_equal(
        loaded["TEW"].extra["signal"], others.loc[others.symbol == "TEW", "signal"]
    )
    # The same bars again with every column: stored bars gain the new values.
    changed = store.ingest(frame, allow_nan=["pe"])
    assert changed == len(first) + len(others)  # every bar gained a value
    assert count_bars(store) == len(frame)
    loaded = store.load(allow_nan=["pe"])
    for name in EXTRA:
        np.testing.assert_array_equal(loaded["BARP"].extra[name], first[name].to_numpy())
    assert store.ingest(frame, allow_nan=["pe"]) == 0  # nothing new


def test_a_gap_among_stored_values_is_refused_unless_allowed(store, frame):
    one = frame[frame.symbol == "LORC"].drop(columns=["pe"])
    half = len(one) // 2
    store.ingest(one.iloc[:half].drop(columns=["Adj Close"]))
    store.ingest(one.iloc[half:])
    with pytest.raises(DataError, match=r"symbol 'LORC', row 0 .*Adj Close present") as err:
        store.load()
    assert err.value.rule == "Adj Close present"
    loaded = store.load(allow_nan=["Adj Close"])
    adj = loaded["LORC"].extra["Adj Close"]
    assert np.isnan(adj[:half]).all()
    np.testing.assert_array_equal(adj[half:], one["Adj Close"].iloc[half:].to_numpy())


def _last_per_bucket(part: pd.DataFrame, rule: str) -> pd.DataFrame:
    indexed = part.set_index("ts")
    grouped = indexed.resample(rule, label="left", closed="left")
    # The bucket's last bar's value, NaN included (pandas' .last() would skip a NaN).
    return grouped[list(EXTRA)].agg(lambda s: s.iloc[-1] if len(s) else np.nan).loc[
        grouped.size() > 0
    ]


def test_resampling_takes_the_last_bars_value(store, frame, market):
    store.ingest(frame, metadata=market.metadata, allow_nan=["pe"])
    loaded = store.load(timeframe="1h", allow_nan=["pe"])
    for b in loaded.bars:
        part = frame[frame.symbol == b.symbol]
        want = _last_per_bucket(part, "1h")  # UTC hours: New York's offset is whole hours
        np.testing.assert_array_equal(b.ts, want.index.as_unit("ns").asi8)
        for name in EXTRA:
            np.testing.assert_array_equal(b.extra[name], want[name].to_numpy(), err_msg=name)
        assert np.isnan(b.extra["pe"]).any()  # a gap on a bucket's last bar stays a gap


def test_regular_hours_keep_each_kept_bars_values(store, frame, market):
    store.ingest(frame, metadata=market.metadata, allow_nan=["pe"])
    plain = store.load(regular_hours=True, columns=[])
    loaded = store.load(regular_hours=True, allow_nan=["pe"])
    for b, p in zip(loaded.bars, plain.bars):
        np.testing.assert_array_equal(b.ts, p.ts)
        part = frame[frame.symbol == b.symbol].set_index(frame.ts.astype("int64")[frame.symbol == b.symbol])
        assert len(b) < len(part)
        for name in EXTRA:
            np.testing.assert_array_equal(b.extra[name], part.loc[b.ts, name].to_numpy())


BAD_INGESTS = [
    ("infinite value", lambda f: f.assign(signal=np.where(np.arange(len(f)) == 9, -np.inf, f.signal)),
     {"allow_nan": ["pe"]}, r"row 9 .*signal not infinite"),
    ("gap not allowed", lambda f: f, {}, r"pe present"),
    ("text column", lambda f: f.assign(note="x"), {"allow_nan": ["pe"]}, r"'note' is not numeric"),
    ("collision", lambda f: f.assign(SYMBOL_ID=1.0), {"allow_nan": ["pe"]},
     r"'SYMBOL_ID' collides with the bar column 'symbol_id'"),
    ("case twin of a stored column", lambda f: f.rename(columns={"signal": "SIGNAL"}),
     {"allow_nan": ["pe"]}, r"column 'SIGNAL' differs only by case from the store's column 'signal'"),
    ("conflicting value", lambda f: f.assign(signal=f.signal + 1.0), {"allow_nan": ["pe"]},
     r"(?s)conflict with bars already in the store.*signal 1"),
    ("a new column in a refused ingest", lambda f: f.assign(extra2=1.0, close=f.close * 2,
                                                             high=f.high * 2, low=f.low * 2, open=f.open * 2),
     {"allow_nan": ["pe"]}, r"conflict with bars already in the store"),
]


@pytest.mark.parametrize("what, change, options, match", BAD_INGESTS, ids=[b[0] for b in BAD_INGESTS])
def test_a_refused_ingest_leaves_the_store_as_it_was(store, frame, what, change, options, match):
    first = frame[frame.symbol != "TEW"]
    store.ingest(first, allow_nan=["pe"])
    rows, columns = count_bars(store), store.columns()
    loaded = store.load(allow_nan=["pe"])
    bad = change(frame.copy())
    with pytest.raises(DataError, match=match):
        store.ingest(bad, **options)
    assert count_bars(store) == rows
    assert store.columns() == columns
    again = store.load(allow_nan=["pe"])
    for a, b in zip(loaded.bars, again.bars):
        for name in EXTRA:
            np.testing.assert_array_equal(a.extra[name], b.extra[name])


def test_postgres_packs_carry_the_extra_columns(frame, market):
    """PostgreSQL loads without filters read packs, extra columns included (a NULL kept
    apart from a NaN); a column added with plain SQL sends loads to the rows instead."""
    if not URL:
        pytest.fail("PostgreSQL tests need TICKSTEP_PG_URL (see .ci/start-postgres.sh)")
    name = f"tickstep_cols_{uuid.uuid4().hex[:10]}"
    store = td.PostgresStore(URL, schema=name)
    try:
        parts = {s: p.drop(columns="symbol").set_index("ts") for s, p in frame.groupby("symbol")}
        parts["BARP"] = parts["BARP"].drop(columns=["pe"])
        store.ingest(parts, allow_nan=["pe"])
        sent = []
        read = store._read_bars
        store._read_bars = lambda sql, params: sent.append(sql) or read(sql, params)
        start, end = frame.ts.iloc[100], frame.ts.iloc[-100]
        for kwargs in ({}, {"start": start, "end": end}, {"columns": ["Adj Close", "pe"]}):
            sent.clear()
            loaded = store.load(allow_nan=["pe"], **kwargs)
            assert "bar_packs" in sent[-1] and len(sent) == 1
            assert "pe" not in loaded["BARP"].extra
            for b in loaded.bars:
                part = frame[frame.symbol == b.symbol]
                part = part[(part.ts >= kwargs.get("start", part.ts.min()))
                            & (part.ts <= kwargs.get("end", part.ts.max()))]
                np.testing.assert_array_equal(b.ts, part.ts.astype("int64"))
                for column in kwargs.get("columns", EXTRA):
                    if column in b.extra:
                        np.testing.assert_array_equal(b.extra[column], part[column].to_numpy())
        store._run("ALTER TABLE bars ADD COLUMN later DOUBLE PRECISION")
        store._con.commit()
        sent.clear()
        loaded = store.load(allow_nan=["pe"])
        assert "bar_packs" in sent[0] and "bar_packs" not in sent[-1]  # packs lack 'later'
        assert set(loaded.columns) == set(EXTRA)  # all NULL: no symbol has "later"
        np.testing.assert_array_equal(
            loaded["TEW"].extra["signal"], frame.loc[frame.symbol == "TEW", "signal"]
        )
    finally:
        store.close()
        _drop_schema(name)
