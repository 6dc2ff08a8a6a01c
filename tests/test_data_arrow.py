"""The door speaks Arrow: pyarrow, Polars and Arrow stream producers (DuckDB relations).

The same bars as pandas, pyarrow (Table, RecordBatch, RecordBatchReader), Polars
(DataFrame, LazyFrame) and a DuckDB relation, in each shape (one symbol, a mapping, a
long table), give identical columns and bit-identical backtests; clean float64/int64
Arrow columns reach the engine without a copy; every bad-input class is refused the same
way (type, rule, symbol, row) whatever kind of table carries it.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import polars as pl
import pyarrow as pa
import pytest
import tickstep
import tickstep.data as td
from tickstep.simulation import market_from_columns
from tickstep.strategies import SmaCross

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


@pytest.fixture(scope="module")
def market():
    return td.sample(symbols=3, days=3, seed=9, hours="24h", missing=0.2)


def long_frame(market) -> pd.DataFrame:
    return market.to_frame()


def one_frame(market) -> pd.DataFrame:
    return market.bars[0].to_frame().reset_index()


def as_kind(frame: pd.DataFrame, kind: str):
    """The pandas frame as the given kind of table (same values, same column names)."""
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if kind == "pandas":
        return frame
    if kind == "arrow-table":
        return table
    if kind == "arrow-batch":
        return table.combine_chunks().to_batches()[0]
    if kind == "arrow-reader":
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=997))
    if kind == "polars":
        return pl.from_arrow(table)
    if kind == "polars-lazy":
        return pl.from_arrow(table).lazy()
    if kind == "duckdb-relation":
        con = duckdb.connect()
        return con.from_arrow(table)
    raise AssertionError(kind)


KINDS = [
    "pandas",
    "arrow-table",
    "arrow-batch",
    "arrow-reader",
    "polars",
    "polars-lazy",
    "duckdb-relation",
]


def assert_same_columns(got: td.MarketColumns, want: td.MarketColumns) -> None:
    assert got.symbols == want.symbols
    for g, w in zip(got.bars, want.bars):
        for name in COLUMNS:
            a, b = getattr(g, name), getattr(w, name)
            assert a.dtype == b.dtype and np.array_equal(a, b), (g.symbol, name)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_of_table_gives_the_same_columns_in_every_shape(kind, market):
    long = td.resolve(as_kind(long_frame(market), kind))
    assert_same_columns(long, market)
    mapping = td.resolve({b.symbol: as_kind(b.to_frame().reset_index(), kind) for b in market.bars})
    assert_same_columns(mapping, market)
    one = td.to_market_columns(as_kind(one_frame(market), kind), symbol=market.symbols[0])
    assert_same_columns(one, td.MarketColumns([market.bars[0]]))


@pytest.mark.parametrize("kind", KINDS)
def test_symbols_and_the_time_rule_apply_to_arrow_inputs(kind, market):
    got = td.resolve(as_kind(long_frame(market), kind), symbols=market.symbols[1], end="2024-01-03")
    b = market.bars[1]
    keep = b.ts < pd.Timestamp("2024-01-04", tz="UTC").value
    assert got.symbols == [b.symbol]
    assert np.array_equal(got.bars[0].close, b.close[keep])


def _addresses(bars: td.SymbolBars) -> dict[str, int]:
    return {name: getattr(bars, name).__array_interface__["data"][0] for name in COLUMNS}


def test_clean_arrow_columns_reach_the_engine_without_a_copy(market):
    table = pa.Table.from_pandas(long_frame(market), preserve_index=False).combine_chunks()
    table = table.cast(
        pa.schema(
            [pa.field("symbol", pa.string())]
            + [
                pa.field(c, pa.timestamp("ns", tz="UTC") if c == "ts" else pa.float64())
                for c in COLUMNS
            ]
        )
    )
    buffers = {
        c: table.column(c).chunk(0).buffers()[1].address + 8 * table.column(c).chunk(0).offset
        for c in COLUMNS
    }
    columns = td.resolve(table)
    # The long table is grouped by symbol: each symbol's columns are slices of the
    # table's own buffers.
    first = columns.bars[0]
    for name, address in _addresses(first).items():
        assert address == buffers[name], name
    row = len(first)
    second = _addresses(columns.bars[1])
    assert second["close"] == buffers["close"] + 8 * row
    # The engine adopts them in place too.
    engine_market = market_from_columns(columns)
    view = engine_market.column(1, "close", 0, len(columns.bars[1]))
    assert view.__array_interface__["data"][0] == buffers["close"] + 8 * row


def test_polars_frames_are_used_without_a_copy_where_arrow_allows(market):
    frame = pl.from_arrow(pa.Table.from_pandas(one_frame(market), preserve_index=False))
    frame = frame.with_columns(pl.col("ts").dt.cast_time_unit("ns"))
    got = td.to_market_columns(frame, symbol="X").bars[0]
    close = frame.to_arrow().column("close").chunk(0)
    assert got.close.__array_interface__["data"][0] == close.buffers()[1].address


def test_other_types_are_converted_once(market):
    frame = pl.from_arrow(pa.Table.from_pandas(one_frame(market), preserve_index=False))
    frame = frame.with_columns(
        pl.col("ts").dt.cast_time_unit("us"), pl.col("volume").cast(pl.Int64)
    )
    got = td.to_market_columns(frame, symbol="X").bars[0]
    assert got.ts.dtype == np.int64 and got.volume.dtype == np.float64
    np.testing.assert_array_equal(got.ts, market.bars[0].ts)
    np.testing.assert_array_equal(got.volume, np.trunc(market.bars[0].volume))


def test_polars_is_not_imported_unless_a_polars_frame_is_given(tmp_path):
    import subprocess
    import sys

    code = (
        "import sys, tickstep, tickstep.data as td;"
        "td.resolve(td.example_daily().to_frame());"
        "print('polars' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("kind", ["pandas", "arrow-table", "polars", "duckdb-relation"])
def test_backtests_are_bit_identical_whatever_the_table(kind):
    data = td.example_daily().to_frame()
    reference = tickstep.Backtest(data, SmaCross, cash=100_000).run(fast=10, slow=30)
    result = tickstep.Backtest(as_kind(data, kind), SmaCross, cash=100_000).run(fast=10, slow=30)
    pd.testing.assert_series_equal(result.equity, reference.equity, check_exact=True)
    pd.testing.assert_frame_equal(result.trades, reference.trades, check_exact=True)
    assert len(reference.trades) > 0


# --- bad inputs: the same refusal from every kind of table ----------------------------


def _bars(n=4, **changes):
    frame = pd.DataFrame(
        {
            "ts": pd.date_range("2024-01-02 14:30", periods=n, freq="min", tz="UTC"),
            "open": 10.0,
            "high": 11.0,
            "low": 9.0,
            "close": 10.5,
            "volume": 100.0,
        }
    )
    for name, value in changes.items():
        frame[name] = value
    return frame


def _set(frame, row, column, value):
    frame = frame.copy()
    frame.loc[row, column] = value
    return frame


BAD = {
    # name: (frame, rule, row, words the message must contain)
    "nan price": (_set(_bars(), 2, "close", np.nan), "close finite", 2, ["close"]),
    "inf volume": (_set(_bars(), 1, "volume", np.inf), "volume finite", 1, ["volume"]),
    "non-positive price": (_set(_bars(), 3, "low", 0.0), "low > 0", 3, ["low=0.0"]),
    "high below low": (_set(_bars(), 0, "high", 8.0), "high >= low", 0, ["high=8.0"]),
    "close above high": (_set(_bars(), 1, "close", 12.0), "low <= close <= high", 1, ["close"]),
    "negative volume": (_set(_bars(), 2, "volume", -1.0), "volume >= 0", 2, ["volume=-1.0"]),
    "duplicate timestamp": (
        _set(_bars(), 2, "ts", pd.Timestamp("2024-01-02 14:31", tz="UTC")),
        "unique timestamps",
        2,
        ["14:31"],
    ),
    "unsorted timestamps": (
        _set(_bars(), 2, "ts", pd.Timestamp("2024-01-02 14:00", tz="UTC")),
        "timestamps increasing",
        2,
        ["14:00"],
    ),
    "missing volume": (_bars().drop(columns="volume"), "required columns", None, ["volume"]),
    "text prices": (
        _bars().assign(open=["10", "ten", "10", "10"]),
        "numeric columns",
        1,
        ["'open'", "'ten'"],
    ),
    "no timestamps": (_bars().drop(columns="ts"), "timestamps present", None, ["timestamp"]),
    "two timestamp columns": (
        _bars().assign(time=pd.date_range("2024-01-02", periods=4, freq="min", tz="UTC")),
        "one timestamp source",
        None,
        ["'ts'", "'time'"],
    ),
    "numbers as timestamps": (
        _bars().assign(ts=np.arange(4) * 60),
        "datetime timestamps",
        None,
        ["numbers"],
    ),
    "unparsable timestamp text": (
        _bars().assign(ts=["2024-01-02 14:30", "2024-01-02 14:31", "soon", "2024-01-02 14:33"]),
        "parsable timestamps",
        2,
        ["'soon'"],
    ),
    "naive and aware text mixed": (
        _bars().assign(
            ts=[
                "2024-01-02 14:30",
                "2024-01-02 14:31+00:00",
                "2024-01-02 14:32",
                "2024-01-02 14:33",
            ]
        ),
        "consistent timezone awareness",
        1,
        ["14:31+00:00"],
    ),
    "identifier under another name": (
        _bars().assign(ticker=["AAA", "BBB", "AAA", "BBB"]),
        "one instrument per symbol",
        None,
        ["'ticker'", "symbol_column='ticker'"],
    ),
    "empty": (_bars().iloc[:0], "non-empty", None, ["no rows"]),
}


@pytest.mark.parametrize("kind", ["pandas", "arrow-table", "polars", "duckdb-relation"])
@pytest.mark.parametrize("case", list(BAD), ids=str)
def test_every_bad_input_class_is_refused_the_same_way(case, kind):
    frame, rule, row, words = BAD[case]
    data = as_kind(frame, kind)
    with pytest.raises(td.DataError) as info:
        td.to_market_columns(data, symbol="ABC")
    err = info.value
    assert err.rule == rule, str(err)
    assert err.row == row, str(err)
    if case not in ("identifier under another name",):
        assert "ABC" in str(err) or err.symbol in (None, "ABC")
    for word in words:
        assert word in str(err), (word, str(err))
