"""Streamed backtests of what a strategy sees beyond OHLCV: the same run as in memory.

Extra per-bar columns (``self.value``, ``self.data(sym).<column>``, indicators with
``source=<column>``) stream window by window: each window carries the columns, the kept
past carries them too, a symbol has a column in every window or in none (decided for
the whole run, as a load decides it), and ``allow_nan`` rules gaps as at load. Every test
compares the streamed run with the in-memory run exactly (``check_exact``).
"""

from __future__ import annotations

import os
import uuid

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MINUTE = pd.Timedelta("1min")
TABLES = ("trades", "orders", "fills", "positions")


def assert_same_run(a: tickstep.Result, b: tickstep.Result) -> None:
    pd.testing.assert_series_equal(a.stats, b.stats, check_exact=True)
    pd.testing.assert_series_equal(a.equity, b.equity, check_exact=True)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      obj=name)


def _frames() -> dict[str, pd.DataFrame]:
    """Five symbols of regular-hours minutes over four sessions with missing minutes: one
    starts late, one ends early, one trades every 5 minutes. Extra columns: ``signal``
    (a noisy z-score, NaN every 11th bar, and NaN for a whole session of one symbol: a
    window may hold no value of it) and ``pe`` (held by all but one symbol)."""
    base = td.sample(symbols=5, days=4, seed=11, missing=2.0)
    frames = {b.symbol: b.to_frame() for b in base.bars}
    names = sorted(frames)
    late, early, coarse = names[1], names[2], names[3]
    days = sorted({t.normalize() for t in frames[late].index})
    frames[late] = frames[late][frames[late].index >= days[1]]
    frames[early] = frames[early][frames[early].index < days[2] + pd.Timedelta("20h")]
    frames[coarse] = frames[coarse][frames[coarse].index.minute % 5 == 0]
    rng = np.random.default_rng(5)
    for k, name in enumerate(names):
        f = frames[name]
        close = f["close"]
        f["signal"] = (close - close.rolling(15, min_periods=1).mean()) / close * 100 + rng.normal(
            0, 0.05, len(f))
        f.loc[f.index[k::11], "signal"] = np.nan
        if name == names[0]:
            f.loc[(f.index >= days[2]) & (f.index < days[3]), "signal"] = np.nan
        if name != names[4]:
            f["pe"] = 10 + np.cumsum(rng.normal(0, 0.1, len(f)))
    return frames


FRAMES = _frames()
LOAD = {"allow_nan": ["signal"]}


class OnColumns(tickstep.Strategy):
    """Decisions on every way a column is read: the current value, a history view of it
    (40 bars, across window edges), a rolling mean of it (gaps skipped), and whether the
    symbol has ``pe`` at all (a KeyError when it has not)."""

    def init(self) -> None:
        self.mean = self.sma(8, source="signal")
        self.pe_mean = self.sma(20, source="pe") if "pe" in self.columns else self.mean

    def next(self, symbol: str) -> None:
        now = self.value("signal", symbol)
        past = self.data(symbol, count=40).signal
        try:
            pe = self.value("pe", symbol)
        except KeyError:
            pe = 15.0
        if not self.mean.is_ready() or len(past) < 40 or np.isnan(now):
            return
        drift = np.nansum(past[-10:]) - np.nansum(past[:10])
        if not self.position and self.mean.value < -0.02 and drift < 0 and pe > 9:
            self.buy(size=2)
        elif not self.position and now > 0.3 and self.pe_mean.is_ready():
            self.sell(size=1, limit=self.price() * 1.0005, tif="day")
        elif self.position and (now > 0.1 or np.isnan(pe)):
            self.position.close()


@pytest.fixture(scope="module")
def store() -> td.Store:
    s = td.Store()
    s.ingest(FRAMES, **LOAD)
    return s


@pytest.fixture(scope="module")
def in_memory(store):
    return tickstep.Backtest(store, OnColumns, cash=50_000, **LOAD).run()


def test_the_columns_run_is_not_vacuous(in_memory):
    assert len(in_memory.trades) > 10
    assert (in_memory.orders["status"] == "expired").any()
    # The same run from the frames: the store and the door agree.
    again = tickstep.Backtest(FRAMES, OnColumns, cash=50_000, **LOAD).run()
    assert_same_run(in_memory, again)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.one_of(st.integers(1, 30), st.integers(31, 6 * 24 * 60)), from_store=st.booleans())
def test_streamed_extra_columns_equal_the_in_memory_run(store, in_memory, minutes, from_store):
    # Windows from one minute (a few bars) to six days (all in one window).
    data = store if from_store else FRAMES
    streamed = tickstep.Backtest(data, OnColumns, cash=50_000, stream=minutes * MINUTE,
                                 history=40, **LOAD).run()
    assert_same_run(in_memory, streamed)


def test_a_window_without_a_value_keeps_the_column(store):
    # names[0]'s signal is NaN for a whole session: a one-hour window of that session
    # holds no value of it, yet the symbol has the column (NaN), as in memory; names[4]
    # has no pe in any window: a KeyError in every window, as in memory.
    names = sorted(FRAMES)
    seen: dict[str, set] = {"signal": set(), "pe": set()}

    class Probe(tickstep.Strategy):
        def next(self, symbol: str) -> None:
            for column in seen:
                try:
                    value = self.value(column, symbol)
                except KeyError:
                    seen[column].add((symbol, "missing"))
                else:
                    seen[column].add((symbol, "nan" if np.isnan(value) else "value"))

    tickstep.Backtest(store, Probe, stream="1h", **LOAD).run()
    streamed = {k: set(v) for k, v in seen.items()}
    for v in seen.values():
        v.clear()
    tickstep.Backtest(store, Probe, **LOAD).run()
    assert streamed == seen
    assert (names[0], "nan") in seen["signal"] and (names[4], "missing") in seen["pe"]
    assert (names[4], "missing") not in seen["signal"]


def test_chosen_columns_stream_as_loaded(store):
    only_signal = tickstep.Backtest(store, OnColumns, columns=["signal"], **LOAD).run()
    streamed = tickstep.Backtest(store, OnColumns, columns=["signal"], stream="3h",
                                 history=40, **LOAD).run()
    assert_same_run(only_signal, streamed)
    # A name picked ignoring case is refused by allow_nan alike, before any window.
    for stream in ({}, {"stream": "3h"}):
        with pytest.raises(td.DataError, match="allow_nan names 'SIGNAL'"):
            tickstep.Backtest(store, OnColumns, columns=["SIGNAL"], allow_nan=["SIGNAL"],
                              **stream)


def test_gaps_not_allowed_are_refused_when_streaming_as_at_load(store):
    for data in (store, FRAMES):
        with pytest.raises(td.DataError, match="allow_nan") as loaded:
            tickstep.Backtest(data, OnColumns).run()
        with pytest.raises(td.DataError, match="allow_nan") as streamed:
            tickstep.Backtest(data, OnColumns, stream="1h", history=40).run()
        assert loaded.value.rule == streamed.value.rule
        assert "signal" in str(streamed.value)
    # A misspelt allow_nan name is refused before any window is read.
    with pytest.raises(td.DataError, match="did you mean"):
        tickstep.Backtest(store, OnColumns, stream="1h", allow_nan=["signl"])


URL = os.environ.get("TICKSTEP_PG_URL")


@pytest.mark.skipif(not URL, reason="PostgreSQL tests need TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
def test_streamed_extra_columns_from_postgres_equal_in_memory(in_memory):
    schema = f"tickstep_streamfeat_{uuid.uuid4().hex[:8]}"
    pg = td.PostgresStore(URL, schema=schema)
    try:
        pg.ingest(FRAMES, **LOAD)
        loaded = tickstep.Backtest(pg, OnColumns, cash=50_000, **LOAD).run()
        assert_same_run(in_memory, loaded)
        for window in ("13min", "1D"):
            streamed = tickstep.Backtest(pg, OnColumns, cash=50_000, stream=window, history=40,
                                         **LOAD).run()
            assert_same_run(in_memory, streamed)
        # Resampled at load, in the exchange's regular hours, from PostgreSQL.
        pg.ingest_metadata(pd.DataFrame({"symbol": sorted(FRAMES), "exchange": "XNYS"}))
        for timeframe in ("15min", "1h"):
            options = {"timeframe": timeframe, "regular_hours": True, **LOAD}
            whole = tickstep.Backtest(pg, Quick, **options).run()
            assert len(whole.trades) > 0
            for window in ("70min", "2D"):
                assert_same_run(whole, tickstep.Backtest(pg, Quick, stream=window, history=4,
                                                         **options).run())
    finally:
        pg._run(f'DROP SCHEMA "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


# ---- load-time resampling (timeframe=) with stream= --------------------------------------------


class Quick(tickstep.Strategy):
    """Few bars of warm-up, so resampled (hourly, daily) runs trade too."""

    def init(self) -> None:
        self.mean = self.sma(3)
        self.signal = self.sma(2, source="signal")

    def next(self, symbol: str) -> None:
        closes = self.data(symbol, count=4).close
        if not self.mean.is_ready() or len(closes) < 4:
            return
        if not self.position and closes[-1] > self.mean.value:
            self.buy(size=1, tif="day", limit=closes[-1] * 1.001)
        elif self.position and (closes[-1] < closes[0] or self.value("signal", symbol) > 0.2):
            self.position.close()


def _zoned_store(timezone: str) -> td.Store:
    """Round-the-clock minutes with gaps, an extra column with gaps, in ``timezone``:
    local days and hours fall across UTC days (Auckland's day starts the UTC day before,
    Kolkata's hours are offset by 30 minutes)."""
    market = td.sample(symbols=3, days=5, seed=3, hours="24h", missing=1.0)
    frames = {b.symbol: b.to_frame() for b in market.bars}
    for k, f in enumerate(frames.values()):
        f["signal"] = f["close"].pct_change() * 100
        f.loc[f.index[k::13], "signal"] = np.nan
    s = td.Store()
    s.ingest(frames, **LOAD)
    s.ingest_metadata(pd.DataFrame({"symbol": market.symbols, "timezone": timezone}))
    return s


ZONED = {tz: _zoned_store(tz) for tz in ("Pacific/Auckland", "Asia/Kolkata")}


@settings(max_examples=15, deadline=None)
@given(timeframe=st.sampled_from(["15min", "1h", "4h", "1D"]),
       zone=st.sampled_from(sorted(ZONED)),
       minutes=st.one_of(st.integers(20, 300), st.integers(301, 6 * 24 * 60)))
def test_streamed_resampled_loads_equal_the_loads(timeframe, zone, minutes):
    # Windows cut anywhere (not on bucket edges): each bucket is read whole, in the
    # window of its label, so every resampled bar is the load's.
    store = ZONED[zone]
    whole = tickstep.Backtest(store, Quick, timeframe=timeframe, **LOAD).run()
    streamed = tickstep.Backtest(store, Quick, timeframe=timeframe, stream=minutes * MINUTE,
                                 history=4, **LOAD).run()
    assert_same_run(whole, streamed)


def test_resampled_runs_trade_and_regular_hours_resample_alike(store):
    hourly = tickstep.Backtest(ZONED["Pacific/Auckland"], Quick, timeframe="1h", **LOAD).run()
    assert len(hourly.trades) > 20
    daily = tickstep.Backtest(ZONED["Asia/Kolkata"], Quick, timeframe="1D", **LOAD).run()
    assert len(daily.fills) >= 1
    # Regular hours of an exchange, resampled to 30 minutes, from the five-symbol store.
    store.ingest_metadata(pd.DataFrame({"symbol": sorted(FRAMES), "exchange": "XNYS"}))
    options = {"timeframe": "30min", "regular_hours": True, "cash": 50_000, **LOAD}
    whole = tickstep.Backtest(store, Quick, **options).run()
    assert len(whole.trades) > 10
    for window in ("50min", "1D"):
        assert_same_run(whole, tickstep.Backtest(store, Quick, stream=window, history=4,
                                                 **options).run())


# ---- batches: optimize, run_batch, walk-forward with stream= -----------------------------------

ROW_COLUMNS_VARY = ("run_time", "cached")


def assert_same_rows(a: pd.DataFrame, b: pd.DataFrame) -> None:
    keep = [c for c in a.columns if c not in ROW_COLUMNS_VARY]
    assert (a["status"] == "ok").all(), a["error"].dropna().tolist()[:1]
    pd.testing.assert_frame_equal(a[keep], b[keep], check_exact=True)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("streamfeat") / "bars.duckdb"
    s = td.Store(str(path))
    s.ingest(FRAMES, **LOAD)
    s.close()
    return str(path)


GRID = {"fast": [3, 6], "slow": [12, 25]}


class Crossing(OnColumns):
    """OnColumns with the windows of its means as parameters."""

    fast = 8
    slow = 20

    def init(self) -> None:
        self.mean = self.sma(self.fast, source="signal")
        self.pe_mean = self.sma(self.slow, source="pe" if "pe" in self.columns else "close")


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_optimize_rows_with_stream_equal_rows_without(store_path, executor):
    whole = tickstep.Backtest(store_path, Crossing, cash=50_000, **LOAD).optimize(
        **GRID, cache=False, executor=executor, maximize="Equity Final [$]")
    streamed = tickstep.Backtest(store_path, Crossing, cash=50_000, stream="95min", history=40,
                                 **LOAD).optimize(**GRID, cache=False, executor=executor,
                                                  maximize="Equity Final [$]")
    assert_same_rows(whole, streamed)
    assert whole["# Trades"].min() > 0 and whole["Equity Final [$]"].nunique() > 1
    # Each row is the streamed run of that set alone.
    best = streamed.iloc[0]
    alone = tickstep.Backtest(store_path, Crossing, cash=50_000, stream="1D", history=40,
                              **LOAD).run(fast=int(best["fast"]), slow=int(best["slow"]))
    assert alone.stats["Equity Final [$]"] == best["Equity Final [$]"]


def test_streamed_optimize_from_memory_and_an_open_store(store):
    for data in (FRAMES, store):
        whole = tickstep.Backtest(data, Crossing, cash=50_000, **LOAD).optimize(
            **GRID, cache=False, executor="sequential")
        streamed = tickstep.Backtest(data, Crossing, cash=50_000, stream="4h", history=40,
                                     symbols=sorted(FRAMES)[::-1], **LOAD).optimize(
            **GRID, cache=False, executor="sequential")
        in_order = tickstep.Backtest(data, Crossing, cash=50_000, history=40,
                                     symbols=sorted(FRAMES)[::-1], **LOAD).optimize(
            **GRID, cache=False, executor="sequential")
        assert_same_rows(in_order, streamed)
        assert len(whole) == len(streamed)


def test_run_batch_streams_each_job_and_caches_by_streamed_fingerprints(store_path, tmp_path):
    from tickstep.batch import ResultsCache, run_batch

    kwargs = {"params": GRID, "executor": "sequential", "cash": 50_000, **LOAD}
    whole = run_batch(Crossing, store_path, cache=False, **kwargs)
    cache = ResultsCache(tmp_path / "rows.sqlite")
    streamed = run_batch(Crossing, store_path, cache=cache, stream="2h", history=40, **kwargs)
    assert_same_rows(whole, streamed)
    assert len(streamed) == len(GRID["fast"]) * len(GRID["slow"]) * len(FRAMES)
    again = run_batch(Crossing, store_path, cache=cache, stream="2h", history=40, **kwargs)
    assert again["cached"].all()
    assert_same_rows(streamed, again)


def test_a_signal_strategy_is_refused_when_streaming_saying_why(store_path):
    from tickstep.batch import run_batch

    class Cross(tickstep.SignalStrategy):
        def signals(self, symbol, bars):
            up = bars["close"].to_numpy() > bars["open"].to_numpy()
            return {"entries": up, "exits": ~up}

    with pytest.raises(tickstep.ConfigError, match="signals mode"):
        run_batch(Cross, store_path, stream="1D", cache=False, executor="sequential")
    bt = tickstep.Backtest(store_path, Cross, stream="1D")
    for call in (bt.run, lambda: bt.run_signals(entries=None)):
        with pytest.raises(tickstep.ConfigError, match="signals mode"):
            call()


@pytest.mark.skipif(not URL, reason="PostgreSQL tests need TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
def test_streamed_optimize_from_postgres_equals_rows_without():
    schema = f"tickstep_streamfeat_{uuid.uuid4().hex[:8]}"
    pg = td.PostgresStore(URL, schema=schema)
    try:
        pg.ingest(FRAMES, **LOAD)
        whole = tickstep.Backtest(pg, Crossing, cash=50_000, **LOAD).optimize(
            **GRID, cache=False, executor="sequential")
        streamed = tickstep.Backtest(pg, Crossing, cash=50_000, stream="1D", history=40,
                                     **LOAD).optimize(**GRID, cache=False)
        assert_same_rows(whole, streamed)
    finally:
        pg._run(f'DROP SCHEMA "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


# ---- the broker's per-symbol and per-bar terms, streamed ------------------------------


def _quoted_market(seed=5):
    """Three symbols of 60 days with a borrow fee and a locate quoted at some bars."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")

    def symbol(first):
        close = first * np.exp(np.cumsum(rng.normal(0, 0.03, 60)))
        open_ = np.r_[first, close[:-1]]
        return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.01,
                             "low": np.minimum(open_, close) * 0.99, "close": close,
                             "volume": 1000.0, "fee": rng.choice([0.1, 0.5, np.nan], 60),
                             "locate": rng.choice([0.0, 1.0, np.nan], 60)}, index=index)

    return {"A": symbol(100), "B": symbol(50), "C": symbol(20)}


class _RandomOrders(tickstep.Strategy):
    """Limits (good till cancelled, fill-or-kill, at the close), short sales and closes,
    from a seeded generator."""

    def init(self):
        self.rng = np.random.default_rng(1)

    def next(self, symbol):
        x, price = self.rng.random(), self.price(symbol)
        if x < 0.2:
            self.buy(size=5, limit=round(price * 0.99, 2), tif=self.rng.choice(["gtc", "fok", "close"]))
        elif x < 0.4:
            self.sell(size=5, limit=round(price * 1.01, 2))
        elif x < 0.5:
            self.sell(size=3, tif="fok")
        elif x < 0.55:
            self.close()


@pytest.mark.parametrize("window", ["5D", "13D"])
def test_streamed_runs_keep_the_brokers_terms(window):
    # A margin per unit, limits filled through, fill-or-kill and orders at the close under
    # a volume limit, a borrow fee and locates quoted per bar: the same fills, orders and
    # equity streamed as in memory.
    options = dict(cash=5_000, limit_fill="through", borrow_rate=0.01, borrow_rate_column="fee",
                   shortable_column="locate", allow_nan=["fee", "locate"], volume_limit=0.005,
                   margin_by_symbol={"A": {"initial_margin_per_unit": 20,
                                           "maintenance_margin_per_unit": 10}},
                   on_reject="ignore")
    data = _quoted_market()
    whole = tickstep.Backtest(data, _RandomOrders, **options).run()
    streamed = tickstep.Backtest(data, _RandomOrders, stream=window, **options).run()
    pd.testing.assert_frame_equal(streamed.fills, whole.fills)
    pd.testing.assert_frame_equal(streamed.orders, whole.orders)
    assert streamed.equity.tolist() == whole.equity.tolist()
    reasons = set(whole.orders["reason"])
    assert {"not shortable (shortable): it would sell short",
            "fill or kill: not filled whole on its bar",
            "at the close: not filled at its bar's close"} <= reasons
    assert whole.stats["Carrying Costs [$]"] > 0


@pytest.mark.parametrize(("column", "value", "says"), [
    ("locate", 2.0, "2 in column 'locate' at 2024-02-20.*must be 1"),
    ("fee", -0.5, "borrow fee -0.5 in column 'fee' at 2024-02-20.*0 or above"),
])
def test_a_bad_value_in_a_later_window_is_refused_as_in_memory(column, value, says):
    # Day 51 lies in a window after the first: refused there as the whole market is.
    data = _quoted_market()
    data["B"].loc[data["B"].index[50], column] = value
    options = dict(borrow_rate_column="fee", shortable_column="locate",
                   allow_nan=["fee", "locate"], on_reject="ignore")
    for stream in (None, "5D"):
        with pytest.raises(tickstep.TickstepError, match=r"symbol 'B': " + says):
            tickstep.Backtest(data, _RandomOrders, stream=stream, **options).run()


def test_without_a_cache_a_streamed_batch_reads_each_jobs_bars_once(store_path, monkeypatch):
    # No results cache to key the jobs by their bars: no fingerprinting pass over the
    # store, only each job's own windows (counted as the store's bars queries).
    from tickstep.batch import run_batch
    from tickstep.data._duckdb import Store

    reads: list[int] = []
    fetch = Store._fetch_bars

    def counted(self, *args, **kwargs):
        reads.append(1)
        return fetch(self, *args, **kwargs)

    monkeypatch.setattr(Store, "_fetch_bars", counted)
    tickstep.Backtest(store_path, Crossing, cash=50_000, stream="2h", history=40, **LOAD).run()
    per_run = len(reads)
    reads.clear()
    rows = run_batch(Crossing, store_path, params=GRID, portfolio=True, cache=False,
                     executor="sequential", stream="2h", history=40, cash=50_000, **LOAD)
    assert (rows["status"] == "ok").all() and per_run > 1
    assert len(reads) == len(rows) * per_run
