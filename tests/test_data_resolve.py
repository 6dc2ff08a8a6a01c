"""The door: the same data through every source gives the same columns, by one rule.

Memory (a long frame, a mapping of frames, MarketColumns), files (CSV, gzipped CSV,
Parquet, Arrow IPC), the DuckDB store and PostgreSQL all go through
`tickstep.data.resolve`; for the same ``symbols/start/end`` they must give identical
columns, bit for bit. PostgreSQL cases run when TICKSTEP_PG_URL names a server.
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tickstep
import tickstep.data as td
from pyarrow import feather

URL = os.environ.get("TICKSTEP_PG_URL")
NS_DAY = 86_400_000_000_000


@pytest.fixture(scope="module")
def market():
    # Round-the-clock minutes over four UTC days, with missing minutes: day bounds and
    # whole-day ends bite on every source.
    return td.sample(symbols=3, days=4, seed=5, hours="24h", missing=0.3, start="2024-01-02")


@pytest.fixture(scope="module")
def pg_store(market):
    if URL is None:
        pytest.skip("PostgreSQL sources need TICKSTEP_PG_URL")
    schema = "resolve_" + uuid.uuid4().hex[:8]
    store = td.PostgresStore(URL, schema=schema)
    store.ingest(market)
    yield store
    store._run(f'DROP SCHEMA "{schema}" CASCADE')
    store._con.commit()
    store.close()


def _long_frame(market):
    return market.to_frame()


SOURCES = [
    "long-frame",
    "mapping",
    "two-level-columns",
    "two-level-columns-fields-first",
    "market-columns",
    "csv",
    "csv.gz",
    "parquet",
    "arrow",
    "duckdb",
    "postgresql",
]


@pytest.fixture(scope="module")
def sources(market, tmp_path_factory):
    """Each source kind as the argument a user would pass to resolve."""
    root = tmp_path_factory.mktemp("sources")
    frame = _long_frame(market)
    made = {
        "long-frame": frame,
        "mapping": {b.symbol: b.to_frame() for b in market.bars},
        "market-columns": market,
    }
    # A column per symbol and field, as a multi-ticker download gives them: a minute a
    # symbol has no bar is a row of NaN in its columns.
    wide = pd.concat(made["mapping"], axis=1, names=["Ticker", "Price"])
    assert wide.isna().any().any()
    made["two-level-columns"] = wide
    made["two-level-columns-fields-first"] = wide.swaplevel(axis=1).sort_index(axis=1)
    frame.to_csv(root / "bars.csv", index=False)
    made["csv"] = str(root / "bars.csv")
    frame.to_csv(root / "bars.csv.gz", index=False)
    made["csv.gz"] = str(root / "bars.csv.gz")
    frame.to_parquet(root / "bars.parquet", index=False)
    made["parquet"] = str(root / "bars.parquet")
    feather.write_feather(pa.Table.from_pandas(frame, preserve_index=False), root / "bars.arrow")
    made["arrow"] = str(root / "bars.arrow")
    with td.Store(root / "bars.duckdb") as store:
        store.ingest(market)
    made["duckdb"] = str(root / "bars.duckdb")
    return made


def _source(kind, sources, request):
    if kind == "postgresql":
        return request.getfixturevalue("pg_store")
    return sources[kind]


def assert_same_columns(got: td.MarketColumns, want: td.MarketColumns) -> None:
    assert got.symbols == want.symbols
    for g, w in zip(got.bars, want.bars):
        for name in ("ts", "open", "high", "low", "close", "volume"):
            a, b = getattr(g, name), getattr(w, name)
            assert a.dtype == b.dtype, (g.symbol, name)
            assert np.array_equal(a, b), (g.symbol, name)


def _expected(market, symbols, lo, hi):
    """The reference: plain numpy masks over the generated columns, [lo, hi)."""
    if isinstance(symbols, str):
        symbols = [symbols]
    names = sorted(set(symbols)) if symbols is not None else market.symbols
    bars = []
    for s in names:
        b = market[s]
        keep = (b.ts >= lo) & (b.ts < hi)
        cols = [getattr(b, c)[keep] for c in ("ts", "open", "high", "low", "close", "volume")]
        bars.append(td.SymbolBars(s, *cols))
    return td.MarketColumns(bars)


def _ns(text):
    return int(pd.Timestamp(text, tz="UTC").value)


# (symbols, start, end, [lo, hi) the rule says they mean)
REQUESTS = [
    (None, None, None, -(2**63), 2**63 - 1),
    # A date alone is the whole day, as start and as end.
    (["LORC", "BARP"], "2024-01-03", "2024-01-04", _ns("2024-01-03"), _ns("2024-01-05")),
    ("TEW", None, "2024-01-03", -(2**63), _ns("2024-01-04")),
    # A time is that instant, inclusive at both ends.
    (
        None,
        "2024-01-03 10:15",
        "2024-01-04 09:30:00",
        _ns("2024-01-03 10:15"),
        _ns("2024-01-04 09:30") + 1,
    ),
    # Aware bounds are converted to UTC; date objects are whole days.
    (
        None,
        pd.Timestamp("2024-01-03 05:00", tz="America/New_York"),
        __import__("datetime").date(2024, 1, 4),
        _ns("2024-01-03 10:00"),
        _ns("2024-01-05"),
    ),
]


@pytest.mark.parametrize("kind", SOURCES)
@pytest.mark.parametrize("request_", REQUESTS, ids=lambda r: f"{r[0]}-{r[1]}-{r[2]}")
def test_every_source_gives_the_same_columns(kind, request_, market, sources, request):
    symbols, start, end, lo, hi = request_
    got = td.resolve(_source(kind, sources, request), symbols=symbols, start=start, end=end)
    assert_same_columns(got, _expected(market, symbols, lo, hi))


@pytest.mark.parametrize("kind", SOURCES)
def test_start_after_end_is_refused_by_every_source(kind, sources, request):
    with pytest.raises(td.DataError, match="start='2024-01-04' is after end='2024-01-03 12:00'"):
        td.resolve(_source(kind, sources, request), start="2024-01-04", end="2024-01-03 12:00")


@pytest.mark.parametrize("kind", SOURCES)
def test_unknown_symbol_is_refused_by_every_source_with_a_hint(kind, sources, request):
    with pytest.raises(td.DataError, match="'LORK'.*did you mean 'LORC'") as info:
        td.resolve(_source(kind, sources, request), symbols=["LORK", "TEW"])
    assert info.value.symbol == "LORK"


@pytest.mark.parametrize("kind", SOURCES)
def test_a_symbol_without_bars_in_the_range_is_refused_by_every_source(kind, sources, request):
    with pytest.raises(td.DataError, match="no bars for symbol.*'BARP'"):
        td.resolve(_source(kind, sources, request), symbols="BARP", start="2025-01-01")


@pytest.mark.parametrize("kind", SOURCES)
def test_misspelt_load_option_is_refused_naming_it(kind, sources, request):
    with pytest.raises(tickstep.ConfigError, match="'regular_hour'.*did you mean 'regular_hours'"):
        td.resolve(_source(kind, sources, request), regular_hour=True)


@pytest.mark.parametrize("kind", ["long-frame", "csv", "parquet", "arrow"])
def test_store_only_options_are_refused_by_frames_and_files_saying_where(kind, sources):
    with pytest.raises(tickstep.ConfigError, match="'timeframe' is not available.*store"):
        td.resolve(sources[kind], timeframe="15min")


@pytest.mark.parametrize(
    "bound",
    ["2024-01", "2024", "yesterday-ish", True, np.datetime64("2024-01", "M")],
    ids=str,
)
def test_a_bound_that_is_not_a_date_or_time_is_refused(bound, market):
    with pytest.raises(td.DataError, match="end=") as info:
        td.resolve(market, end=bound)
    assert info.value.rule == "date or time"


def test_integer_bounds_are_utc_nanoseconds(market):
    first = int(market.bars[0].ts[0])
    got = td.resolve(market, symbols=market.symbols[0], start=first, end=first)
    assert got.bars[0].ts.tolist() == [first]


def test_unknown_suffix_of_a_missing_path_names_the_file_kinds(tmp_path):
    with pytest.raises(td.DataError, match="bars.xlsx' does not exist.*'.xlsx' is not a file of bars"):
        td.resolve(str(tmp_path / "bars.xlsx"))


def test_a_file_that_is_not_a_store_is_refused_naming_it(tmp_path):
    path = tmp_path / "notes.md"
    path.write_text("# not bars\n")
    with pytest.raises(td.DataError, match="notes.md"):
        td.resolve(str(path))


def test_resolve_refuses_an_object_it_cannot_read():
    with pytest.raises(td.DataError, match="cannot read bars from list"):
        td.resolve([1, 2, 3])


def test_symbol_column_option_reads_a_long_frame_with_another_name(market):
    frame = _long_frame(market).rename(columns={"symbol": "ticker"})
    got = td.resolve(frame, symbol_column="ticker", symbols=["TEW"])
    assert_same_columns(got, _expected(market, ["TEW"], -(2**63), 2**63 - 1))


def test_selection_is_a_view_of_the_validated_columns(market):
    got = td.resolve(market, symbols=["TEW"], start="2024-01-03", end="2024-01-03")
    assert np.shares_memory(got.bars[0].close, market["TEW"].close)


def test_a_multi_ticker_downloads_table_is_its_symbols_bars():
    # The shape `yfinance.download(["AAA", "BBB", "NEW"])` gives: a naive daily "Date"
    # index, columns (Price, Ticker) in capitals with "Adj Close" beside, and NEW listed a
    # week later (NaN in its columns before). Either way round, the same bars as each
    # symbol's own table without those rows, its extra column kept.
    index = pd.date_range("2024-01-01", periods=30, freq="B", name="Date")
    rng = np.random.default_rng(3)
    tables = {}
    for symbol in ("AAA", "BBB", "NEW"):
        close = 100 + rng.standard_normal(30).cumsum()
        tables[symbol] = pd.DataFrame({"Adj Close": close * 0.98, "Close": close, "High": close + 1,
                                       "Low": close - 1, "Open": close + 0.5, "Volume": 1e6},
                                      index=index)
    tables["NEW"].iloc[:5] = np.nan
    by_ticker = pd.concat(tables, axis=1, names=["Ticker", "Price"])
    by_price = by_ticker.swaplevel(axis=1).sort_index(axis=1)
    own = td.resolve({s: t.dropna() for s, t in tables.items()})
    for wide in (by_price, by_ticker):
        got = td.resolve(wide)
        assert_same_columns(got, own)
        assert len(got["NEW"].ts) == 25
        for s in own.symbols:
            np.testing.assert_array_equal(got[s].extra["Adj Close"], own[s].extra["Adj Close"])

    class Hold(tickstep.Strategy):
        def next(self, symbol):
            if not self.position:
                self.buy(size=1)

    wide = tickstep.Backtest(by_price, Hold).run()
    mine = tickstep.Backtest({s: t.dropna() for s, t in tables.items()}, Hold).run()
    assert wide.equity.equals(mine.equity)
    pd.testing.assert_frame_equal(wide.fills, mine.fills)
