"""Extra per-bar columns: kept at the door, held by the core, read by strategies.

Numeric columns beside OHLCV (a precomputed signal, a P/E, an adjusted close) survive
every in-memory and file source with their values; strategies read them like prices
(history views, the current value, engine indicators, ``self.I``) and never ahead of the
current bar; bad extra columns are refused naming symbol, column, row and rule.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest
import tickstep
import tickstep.data as td
from tickstep._core import ConfigError
from tickstep.data import DataError

EXTRA = ("signal", "pe", "Adj Close")


def with_extras(market: td.MarketColumns, *, gaps: bool = True) -> pd.DataFrame:
    """A long frame of ``market`` with three extra columns: a signal (the close's EMA), a
    P/E with gaps (NaN every 7th bar when ``gaps``) and an adjusted close."""
    frame = market.to_frame()
    close = frame.groupby("symbol")["close"]
    frame["signal"] = close.transform(lambda c: c.ewm(span=10, adjust=False).mean())
    rng = np.random.default_rng(3)
    frame["pe"] = rng.uniform(5, 40, len(frame))
    if gaps:
        frame.loc[frame.index[::7], "pe"] = np.nan
    frame["Adj Close"] = frame["close"] * 0.98
    return frame


@pytest.fixture(scope="module")
def market():
    return td.sample(symbols=3, days=2, seed=11, hours="24h", missing=0.1)


@pytest.fixture(scope="module")
def frame(market):
    return with_extras(market)


def expected(frame: pd.DataFrame) -> dict[str, dict[str, np.ndarray]]:
    return {
        sym: {c: part[c].to_numpy(np.float64) for c in EXTRA}
        for sym, part in frame.groupby("symbol", sort=True)
    }


def assert_extras(columns: td.MarketColumns, frame: pd.DataFrame, names=EXTRA) -> None:
    want = expected(frame)
    assert columns.symbols == sorted(want)
    assert columns.columns == list(names)
    for b in columns.bars:
        assert list(b.extra) == list(names)
        for name in names:
            np.testing.assert_array_equal(b.extra[name], want[b.symbol][name], err_msg=name)
        np.testing.assert_array_equal(b.close, frame.loc[frame.symbol == b.symbol, "close"])


# ---- round trips through every in-memory and file source -------------------------------


def test_long_frame_keeps_every_numeric_column(frame):
    assert_extras(td.resolve(frame, allow_nan=["pe"]), frame)


def test_wide_mapping_keeps_each_symbols_own_columns(frame):
    parts = {
        sym: part.drop(columns="symbol").set_index("ts")
        for sym, part in frame.groupby("symbol", sort=True)
    }
    first = sorted(parts)[0]
    parts[first] = parts[first].drop(columns=["pe"])  # this symbol has no P/E
    columns = td.resolve(parts, allow_nan=["pe"])
    assert columns.columns == ["signal", "Adj Close", "pe"] or set(columns.columns) == set(EXTRA)
    assert "pe" not in columns[first].extra
    for sym in sorted(parts)[1:]:
        np.testing.assert_array_equal(columns[sym].extra["pe"], parts[sym]["pe"].to_numpy())
    np.testing.assert_array_equal(columns[first].extra["signal"], parts[first]["signal"].to_numpy())


def test_one_symbols_frame_with_a_datetime_index(frame):
    one = frame[frame.symbol == frame.symbol.iloc[0]].drop(columns="symbol").set_index("ts")
    columns = td.resolve(one, allow_nan=["pe"])
    np.testing.assert_array_equal(columns.bars[0].extra["Adj Close"], one["Adj Close"].to_numpy())


@pytest.mark.parametrize("kind", ["arrow", "polars", "duckdb-relation"])
def test_arrow_tables_keep_the_columns(frame, kind):
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if kind == "polars":
        pl = pytest.importorskip("polars")
        table = pl.from_arrow(table)
    elif kind == "duckdb-relation":
        import duckdb

        table = duckdb.connect().from_arrow(table)
    assert_extras(td.resolve(table, allow_nan=["pe"]), frame)


def test_clean_float64_arrow_extra_columns_reach_the_engine_without_a_copy(frame):
    table = pa.Table.from_pandas(frame[frame.symbol == "BARP"], preserve_index=False)
    table = table.combine_chunks()
    signal = table.column("signal").chunk(0).to_numpy(zero_copy_only=True)
    bt = tickstep.Backtest(table, tickstep.Strategy, allow_nan=["pe"])
    view = bt.market.column(0, "signal", 0, len(signal))
    assert view.__array_interface__["data"][0] == signal.__array_interface__["data"][0]


@pytest.mark.parametrize("suffix", [".csv", ".csv.gz", ".parquet", ".arrow"])
def test_files_keep_the_columns(frame, tmp_path, suffix):
    path = tmp_path / f"bars{suffix}"
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if suffix.startswith(".csv"):
        frame.to_csv(path, index=False)
    elif suffix == ".parquet":
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)
    got = td.resolve(path, allow_nan=["pe"])
    if suffix.startswith(".csv"):  # text round trip of floats: repr precision
        want = expected(frame)
        for b in got.bars:
            for name in EXTRA:
                np.testing.assert_allclose(b.extra[name], want[b.symbol][name], rtol=1e-15)
    else:
        assert_extras(got, frame)


def test_a_parquet_file_written_by_pandas_keeps_its_index_out(frame, tmp_path):
    path = tmp_path / "indexed.parquet"
    frame.set_index(pd.RangeIndex(5, 5 + len(frame), name="row")).to_parquet(path)
    assert_extras(td.resolve(path, allow_nan=["pe"]), frame)


def test_columns_chooses_and_renames_by_the_chosen_spelling(frame):
    got = td.resolve(frame, columns=["adj close", "signal"])
    assert got.columns == ["adj close", "signal"]
    want = expected(frame)
    for b in got.bars:
        np.testing.assert_array_equal(b.extra["adj close"], want[b.symbol]["Adj Close"])
    assert td.resolve(frame, columns=[]).columns == []


def test_a_chosen_boolean_column_reads_as_zero_and_one(frame):
    flagged = frame.assign(flag=frame["close"] > frame["open"])
    with pytest.raises(DataError, match="column 'flag' is not numeric") as err:
        td.resolve(flagged, allow_nan=["pe"])
    assert err.value.rule == "numeric extra columns"
    got = td.resolve(flagged, columns=["flag"])
    np.testing.assert_array_equal(
        got.bars[0].extra["flag"],
        flagged.loc[flagged.symbol == got.symbols[0], "flag"].to_numpy(np.float64),
    )


def test_time_range_selection_slices_the_extra_columns(frame):
    start, end = frame.ts.iloc[40], frame.ts.iloc[-40]
    got = td.resolve(frame, start=start, end=end, allow_nan=True)
    for b in got.bars:
        part = frame[(frame.symbol == b.symbol) & (frame.ts >= start) & (frame.ts <= end)]
        np.testing.assert_array_equal(b.extra["signal"], part["signal"].to_numpy())


def test_backtest_passes_the_options_through_the_one_door(frame):
    bt = tickstep.Backtest(frame, tickstep.Strategy, columns=["signal", "pe"], allow_nan=["pe"])
    assert bt.market.columns == ["signal", "pe"]
    with pytest.raises(DataError, match="pe present"):
        tickstep.Backtest(frame, tickstep.Strategy, columns=["pe"])


# ---- bad input: each a clear error -------------------------------------------------------


def _first(frame):
    return frame[frame.symbol == "BARP"].reset_index(drop=True)


BAD = [
    # (what, change to the long frame, options, error type, match, rule)
    (
        "text column not asked for",
        lambda f: f.assign(note=np.where(np.arange(len(f)) == 4, "late", "ok")),
        {"allow_nan": ["pe"]},
        DataError,
        r"row 0: column 'note' is not numeric .*columns=\[\.\.\.\]",
        "numeric extra columns",
    ),
    (
        "text column asked for",
        lambda f: f.assign(note="x"),
        {"columns": ["note"]},
        DataError,
        r"column 'note' is not numeric .*convert it",
        "numeric extra columns",
    ),
    (
        "infinite value",
        lambda f: f.assign(signal=np.where(np.arange(len(f)) == 5, np.inf, f.signal)),
        {"allow_nan": ["pe"]},
        DataError,
        r"symbol 'BARP', row 5 .*signal not infinite.*signal=inf",
        "signal not infinite",
    ),
    (
        "NaN where not allowed",
        lambda f: f,
        {},
        DataError,
        r"symbol 'BARP', row 0 .*pe present.*allow_nan=\['pe'\]",
        "pe present",
    ),
    (
        "NaN allowed elsewhere only",
        lambda f: f,
        {"allow_nan": ["signal"]},
        DataError,
        r"pe present",
        "pe present",
    ),
    (
        "collision with a bar column in the data",
        lambda f: f.assign(symbol_id=1.0),
        {"allow_nan": ["pe"]},
        DataError,
        r"column 'symbol_id' collides with the bar column 'symbol_id'",
        "no collision with OHLCV",
    ),
    (
        "two columns differing by case",
        lambda f: f.assign(PE=1.0),
        {"allow_nan": True},
        DataError,
        r"columns 'pe' and 'PE' differ only by case",
        "unambiguous columns",
    ),
    (
        "chosen column absent",
        lambda f: f,
        {"columns": ["sginal"]},
        DataError,
        r"columns=\['sginal'\] names 'sginal', which is not a column beside OHLCV.*did you mean 'signal'",
        "chosen columns present",
    ),
    (
        "allow_nan names no column",
        lambda f: f,
        {"allow_nan": ["p/e"]},
        DataError,
        r"allow_nan names 'p/e', which is not an extra column",
        "allow_nan names extra columns",
    ),
]


@pytest.mark.parametrize("kind", ["pandas", "arrow"])
@pytest.mark.parametrize("what, change, options, error, match, rule", BAD, ids=[b[0] for b in BAD])
def test_bad_extra_columns_are_refused(frame, kind, what, change, options, error, match, rule):
    data = change(_first(frame))
    if kind == "arrow":
        data = pa.Table.from_pandas(data, preserve_index=False)
    with pytest.raises(error, match=match) as err:
        td.resolve(data, **options)
    assert err.value.rule == rule


@pytest.mark.parametrize(
    "options, match",
    [
        ({"columns": ["Close"]}, r"'Close' collides with the bar column 'close'"),
        ({"columns": ["signal", "SIGNAL"]}, r"differ only by case"),
        ({"columns": "signal", "allow_nan": ["pe"]}, r"allow_nan names 'pe', which is not among"),
        ({"allow_nan": ["volume"]}, r"'volume' is a bar column"),
        ({"allow_nan": 3}, r"allow_nan=3: give a list of column names"),
    ],
)
def test_bad_options_are_config_errors(frame, options, match):
    with pytest.raises(ConfigError, match=match):
        td.resolve(frame, **options)


def test_bad_extra_columns_in_a_csv_name_the_file_and_line(frame, tmp_path):
    path = tmp_path / "bars.csv"
    _first(frame).assign(pe=lambda f: f.pe.fillna(1.0)).assign(
        signal=lambda f: np.where(np.arange(len(f)) == 3, np.inf, f.signal)
    ).to_csv(path, index=False)
    with pytest.raises(DataError, match=r"line 5: symbol 'BARP', row 3 .*signal not infinite"):
        td.resolve(path)


# ---- strategies read them like prices ---------------------------------------------------


class BreakoutOnColumns(tickstep.Strategy):
    """Long at a 12-bar high, out at a 12-bar low, the extremes read from precomputed
    columns (a rolling max and min are exact, so both versions see the same numbers)."""

    def next(self, symbol):
        high, low = self.value("high12"), self.value("low12")
        if np.isnan(high):
            return
        if self.price() >= high and not self.position:
            self.buy(size=10)
        elif self.price() <= low and self.position:
            self.position.close()


class BreakoutOnIndicators(tickstep.Strategy):
    """The same logic on the engine's own indicators."""

    def init(self):
        self.high = self.highest(12, source="close")
        self.low = self.lowest(12, source="close")

    def next(self, symbol):
        if not self.high.is_ready():
            return
        if self.price() >= self.high.value and not self.position:
            self.buy(size=10)
        elif self.price() <= self.low.value and self.position:
            self.position.close()


def test_a_precomputed_signal_trades_like_the_indicator_it_was_computed_from(market):
    frame = market.to_frame()
    close = frame.groupby("symbol")["close"]
    frame["high12"] = close.transform(lambda c: c.rolling(12).max())
    frame["low12"] = close.transform(lambda c: c.rolling(12).min())
    on_column = tickstep.Backtest(frame, BreakoutOnColumns, allow_nan=True).run()
    on_indicator = tickstep.Backtest(market, BreakoutOnIndicators).run()
    assert len(on_indicator.trades) > 20
    pd.testing.assert_frame_equal(on_column.trades, on_indicator.trades)
    pd.testing.assert_frame_equal(on_column.fills, on_indicator.fills)


class Reader(tickstep.Strategy):
    """Records, per symbol and bar, every way of reading the extra columns."""

    def init(self):
        self.rows = []
        self.mean = self.sma(5, source="signal")
        self.top = self.highest(3, source="Adj Close")
        self.framed = self.I(lambda d: d["signal"] - d["close"], source=None)
        self.pe_mean = self.I(lambda s: s.rolling(3).mean(), source="pe")

    def next(self, symbol):
        d = self.data(symbol)
        assert d.signal[-1] == self.value("signal") == d["signal"][-1]
        assert self.value("close") == self.price()
        self.rows.append(
            (
                symbol,
                self.now,
                self.value("signal"),
                self.value("pe"),
                self.value("Adj Close"),
                float(np.nansum(d.pe)),
                len(d.signal),
                self.mean.value,
                self.top.value,
                self.framed.value,
                self.pe_mean.value,
            )
        )
        if self.mean.is_ready() and self.value("signal") > self.mean.value and not self.position:
            self.buy(size=1)
        elif self.position and self.value("signal") < self.mean.value:
            self.position.close()


def run_reader(frame):
    bt = tickstep.Backtest(frame, Reader, allow_nan=["pe"])
    result = bt.run()
    names = ["symbol", "ts", "signal", "pe", "adj", "pe_sum", "n", "mean", "top", "framed", "pe3"]
    return pd.DataFrame(result.strategy.rows, columns=names), result


@pytest.fixture(scope="module")
def read(frame):
    return run_reader(frame)


def test_reads_match_the_data_bar_by_bar(frame, read):
    rows, _ = read
    rows = rows.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    want = frame.assign(ts=frame.ts.astype("int64")).sort_values(["symbol", "ts"], kind="stable")
    want = want.reset_index(drop=True)
    np.testing.assert_array_equal(rows.ts, want.ts)
    np.testing.assert_array_equal(rows.signal, want.signal)
    np.testing.assert_array_equal(rows.pe, want.pe)
    np.testing.assert_array_equal(rows.adj, want["Adj Close"])
    g = want.groupby("symbol")
    np.testing.assert_allclose(rows.pe_sum, g.pe.transform(lambda s: s.fillna(0).cumsum()),
                               rtol=1e-12)
    np.testing.assert_array_equal(rows.n, g.cumcount().to_numpy() + 1)
    np.testing.assert_allclose(rows["mean"], g.signal.transform(lambda s: s.rolling(5).mean()),
                               rtol=1e-12)
    np.testing.assert_allclose(rows.top, g["Adj Close"].transform(lambda s: s.rolling(3).max()))
    np.testing.assert_allclose(rows.framed, want.signal - want.close)
    np.testing.assert_allclose(rows.pe3, g.pe.transform(lambda s: s.rolling(3).mean()))


def test_changing_a_column_after_t_never_changes_anything_at_or_before_t(frame, read):
    rows, result = read
    times = np.sort(frame.ts.astype("int64").unique())
    for t in times[[len(times) // 4, len(times) // 2, 3 * len(times) // 4]]:
        later = frame.ts.astype("int64") > t
        changed = frame.copy()
        rng = np.random.default_rng(int(t) % 2**32)
        for name in ("signal", "pe", "Adj Close"):
            changed.loc[later, name] = rng.uniform(1, 100, later.sum())
        rows2, result2 = run_reader(changed)
        upto = rows.ts <= t
        pd.testing.assert_frame_equal(rows[upto], rows2[rows2.ts <= t])
        placed = result.orders[result.orders.placed_time <= pd.Timestamp(int(t), tz="UTC")]
        placed2 = result2.orders[result2.orders.placed_time <= pd.Timestamp(int(t), tz="UTC")]
        decided = ["order_id", "symbol", "side", "size", "limit", "stop", "sl", "tp", "placed_time"]
        assert len(placed) > 3
        pd.testing.assert_frame_equal(placed[decided], placed2[decided])
        # The perturbation does change later decisions (the test can fail).
        assert not rows[~upto].reset_index(drop=True).equals(rows2[rows2.ts > t].reset_index(drop=True))


def test_unknown_columns_are_refused_with_the_known_ones(frame):
    class Typo(tickstep.Strategy):
        def next(self, symbol):
            self.value("sginal")

    with pytest.raises(KeyError, match=r"unknown column 'sginal'.*did you mean 'signal'"):
        tickstep.Backtest(frame, Typo, allow_nan=True).run()

    class Attribute(tickstep.Strategy):
        def next(self, symbol):
            self.data().sginal  # noqa: B018

    with pytest.raises(AttributeError, match=r"unknown column \"sginal\".*signal, pe, Adj Close"):
        tickstep.Backtest(frame, Attribute, allow_nan=True).run()


def test_an_indicator_on_a_timeframe_cannot_read_an_extra_column(frame):
    class OnCandles(tickstep.Strategy):
        def init(self):
            self.sma(3, source="signal", timeframe=self.timeframe("1h"))

    with pytest.raises(ConfigError, match="candles of a timeframe carry open, high, low, close"):
        tickstep.Backtest(frame, OnCandles, allow_nan=True).run()


def test_a_symbol_without_the_column_says_so(frame):
    parts = {s: p.drop(columns="symbol").set_index("ts") for s, p in frame.groupby("symbol")}
    parts["BARP"] = parts["BARP"].drop(columns=["pe"])

    class ReadsPe(tickstep.Strategy):
        def init(self):
            self.mean = self.sma(3, source="pe")

        def next(self, symbol):
            if symbol == "BARP":
                assert not self.mean.is_ready()
                assert "pe" not in self.data().df().columns
                self.value("pe")

    with pytest.raises(KeyError, match="symbol \"BARP\" has no column \"pe\""):
        tickstep.Backtest(parts, ReadsPe, allow_nan=["pe"]).run()


# ---- the memory promise holds with extra columns -----------------------------------------

MEMORY_SCRIPT = """
import gc
import numpy as np, pyarrow as pa
import tickstep

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024

gc.collect()
base = status("VmRSS:")
rng = np.random.default_rng(0)
n = 200_000
data = {}
for k in range(6):
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000 + 1_700_000_000 * 10**9
    close = 100 + rng.normal(size=n).cumsum() * 0.01
    data[f"S{k}"] = pa.table({
        "ts": pa.array(ts.view("datetime64[ns]")), "open": pa.array(close),
        "high": pa.array(close + 0.5), "low": pa.array(close - 0.5), "close": pa.array(close.copy()),
        "volume": pa.array(np.full(n, 100.0)), "signal": pa.array(rng.normal(size=n)),
        "pe": pa.array(rng.uniform(5, 40, n)), "adj": pa.array(close * 0.98),
    })
    del ts, close
raw = sum(t.nbytes for t in data.values())

class Averages(tickstep.Strategy):
    def init(self):
        self.signal = self.sma(20, source="signal")
        self.pe = self.ema(5, source="pe")

result = tickstep.Backtest(data, Averages).run()
print((status("VmHWM:") - base) / raw)
"""


def test_resident_data_stays_within_one_and_a_half_times_the_raw_bytes():
    """In a fresh process: the data (6 symbols x 200,000 bars, OHLCV + 3 extra columns)
    plus everything the door and the engine add, at the peak, over the raw bytes."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT], capture_output=True, text=True,
                         check=True)
    ratio = float(out.stdout.strip().splitlines()[-1])
    assert ratio <= 1.5, ratio


def test_streamed_runs_keep_extra_columns(frame):
    """Streamed (tests/test_stream_features.py has the property over windows): the same
    columns, values and gaps as the run in memory, never dropped."""

    class Reads(tickstep.Strategy):
        def init(self):
            self.mean = self.sma(4, source="Adj Close")

        def next(self, symbol):
            pe = self.value("pe", symbol)
            if self.mean.is_ready() and not self.position and (np.isnan(pe) or pe < 12):
                self.buy(size=1)
            elif self.position and self.data(symbol, count=3).signal[-1] > self.mean.value:
                self.position.close()

    store = td.Store()
    store.ingest(frame, allow_nan=["pe"])
    for data in (frame, store):
        whole = tickstep.Backtest(data, Reads, allow_nan=["pe"]).run()
        streamed = tickstep.Backtest(data, Reads, stream="3h", allow_nan=["pe"]).run()
        assert len(whole.trades) > 3
        pd.testing.assert_frame_equal(whole.trades, streamed.trades, check_exact=True)
        pd.testing.assert_series_equal(whole.stats, streamed.stats, check_exact=True)
        bt = tickstep.Backtest(data, tickstep.Strategy, stream="1D", columns=[])
        assert bt.run().stats["# Trades"] == 0


def test_batch_runs_carry_the_columns_to_their_workers(frame, tmp_path):
    """optimize sends in-memory data to workers as a snapshot and stores by path: both
    keep the extra columns, and each row equals the backtest run alone."""

    class Follow(tickstep.Strategy):
        n = 3

        def init(self):
            self.mean = self.sma(self.n, source="signal")

        def next(self, symbol):
            if not self.mean.is_ready():
                return
            if self.value("signal") > self.mean.value and not self.position:
                self.buy(size=1)
            elif self.position and self.value("signal") < self.mean.value:
                self.position.close()

    path = tmp_path / "extra.duckdb"
    with td.Store(path) as store:
        store.ingest(frame, allow_nan=["pe"])
    for data in (frame, str(path)):
        bt = tickstep.Backtest(data, Follow, allow_nan=["pe"])
        rows = bt.optimize(n=[3, 8], maximize="Equity Final [$]", cache=False)
        for n, equity in zip(rows["n"], rows["Equity Final [$]"]):
            assert equity == bt.run(n=n).stats["Equity Final [$]"]
        assert rows["# Trades"].min() > 5
