"""Streamed backtests (``stream=``): the same run as in memory, bit for bit.

The market is read in time windows (from a DuckDB store, from PostgreSQL, or cut from
bars in memory) and fed to the core window by window; rolling caches, candles, cursors,
orders (day orders too) and history reads carry across window edges. Each test runs the
same strategy on the same bars in memory and streamed and compares every table and
every statistic exactly (``check_exact``): no tolerance.
"""

from __future__ import annotations

import os
import re
import uuid

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tickstep import ConfigError, _core
from tickstep._core import StateError

MINUTE = pd.Timedelta("1min")


def _market() -> td.MarketColumns:
    """Five symbols of regular-hours minutes over four sessions, with missing minutes;
    one starts late (second session), one ends early (third), one trades only every
    5 minutes (a coarser spacing beside the others)."""
    base = td.sample(symbols=5, days=4, seed=11, missing=2.0)
    frames = {b.symbol: b.to_frame() for b in base.bars}
    names = sorted(frames)
    late, early, coarse = names[1], names[2], names[3]
    days = sorted({t.normalize() for t in frames[late].index})
    frames[late] = frames[late][frames[late].index >= days[1]]
    frames[early] = frames[early][frames[early].index < days[2] + pd.Timedelta("20h")]
    frames[coarse] = frames[coarse][frames[coarse].index.minute % 5 == 0]
    return td.to_market_columns(frames)


MARKET = _market()


class Mixed(tickstep.Strategy):
    """Indicators on bars and on 30-minute candles, history reads reaching 40 bars back,
    day orders, brackets and closes: state that must survive every window edge."""

    fast = 5
    slow = 20

    def init(self) -> None:
        self.f = self.sma(self.fast)
        self.s = self.ema(self.slow)
        self.tf = self.timeframe("30min", history=20)
        self.range = self.atr(3, timeframe=self.tf)
        self.top = self.highest(15)

    def next(self, symbol: str) -> None:
        closes = self.data(symbol, count=40).close
        candles = self.tf.candles(symbol, count=3)
        if not (self.f.is_ready() and len(closes) == 40):
            return
        drift = closes[-1] - closes[0]
        if not self.position and self.f.value > self.s.value and drift > 0:
            price = self.price()
            self.buy(size=3, sl=price * 0.99, tp=price * 1.02)
        elif not self.position and self.f.value < self.s.value and len(candles["close"]) == 3:
            self.sell(size=2, limit=self.price() * 1.001, tif="day")
        elif self.position and self.price() >= self.top.value:
            self.position.close()


TABLES = ("trades", "orders", "fills", "positions", "holding_spans")


def assert_same_run(a: tickstep.Result, b: tickstep.Result) -> None:
    pd.testing.assert_series_equal(a.stats, b.stats, check_exact=True)
    pd.testing.assert_series_equal(a.equity, b.equity, check_exact=True)
    for name in TABLES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True,
                                      obj=name)


@pytest.fixture(scope="module")
def store() -> td.Store:
    s = td.Store()
    s.ingest(MARKET)
    return s


@pytest.fixture(scope="module")
def in_memory(store):
    return {
        "utc": tickstep.Backtest(store, Mixed, **OPTIONS["utc"]).run(),
        "ny": tickstep.Backtest(store, Mixed, **OPTIONS["ny"]).run(),
        "close": tickstep.Backtest(store, Mixed, **OPTIONS["close"]).run(),
        "delisted": tickstep.Backtest(store, Mixed, **OPTIONS["delisted"]).run(),
    }


# Besides the defaults: days in New York with equity at every bar, market orders filled
# at the close of their bar with a short's borrow fee accruing at each day end, and
# symbols that stop trading closed.
OPTIONS = {
    "utc": {"cash": 50_000},
    "ny": {"cash": 50_000, "timezone": "America/New_York", "record_every_bar": True},
    "close": {"cash": 50_000, "trade_on_close": True, "borrow_rate": 0.05, "commission": 0.001},
    # The symbol ending early stops trading there: its position closed, its orders cancelled.
    "delisted": {"cash": 50_000, "close_delisted": True, "timezone": "America/New_York"},
}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(minutes=st.one_of(st.integers(1, 30), st.integers(31, 6 * 24 * 60)),
       case=st.sampled_from(sorted(OPTIONS)), from_store=st.booleans())
def test_streamed_runs_equal_the_in_memory_run(store, in_memory, minutes, case, from_store):
    # Windows from one minute (a few bars) to six days (all in one window).
    data = store if from_store else MARKET
    streamed = tickstep.Backtest(data, Mixed, stream=minutes * MINUTE, history=40,
                                 **OPTIONS[case]).run()
    assert_same_run(in_memory[case], streamed)


def test_the_run_trades_across_window_edges(in_memory):
    # Guard against a vacuous comparison: the run has trades, day orders that expired,
    # brackets, and bars of every symbol.
    run = in_memory["utc"]
    assert len(run.trades) > 10
    assert (run.orders["status"] == "expired").any()
    assert run.stats["# Trades"] > 10
    close = in_memory["close"]
    assert (close.trades["side"] == "short").any() and close.stats["Carrying Costs [$]"] > 0


def test_streamed_run_with_trade_start_and_benchmark(store):
    kwargs = {"cash": 50_000, "benchmark": MARKET.symbols[0], "start": "2024-01-03",
              "warmup": "1D"}
    a = tickstep.Backtest(store, Mixed, **kwargs).run()
    b = tickstep.Backtest(store, Mixed, stream="47min", history=40, **kwargs).run()
    assert_same_run(a, b)
    assert np.isfinite(a.stats["Beta"])


def test_a_history_read_beyond_the_bound_is_refused_saying_how_to_keep_more(store):
    class Greedy(tickstep.Strategy):
        def next(self, symbol: str) -> None:
            assert len(self.data(symbol, count=120).close) <= 120

    for kwargs in ({"stream": "1h", "history": 100}, {"history": 100}):
        with pytest.raises(StateError) as info:
            tickstep.Backtest(store, Greedy, **kwargs).run()
        message = str(info.value)
        assert "120 bars" in message and "history=100" in message, message
        assert "pass history=N to Backtest" in message
    # Within the bound (the default 1,000 when streaming) it reads as in memory.
    tickstep.Backtest(store, Greedy, stream="1D").run()


def test_the_next_window_keeps_the_last_history_bars_then_the_new_ones():
    # The core joins each symbol's kept past and its new bars (Market.following):
    # run indices continue, the timeline holds only the new ticks.
    def cols(ts, price):
        ts = np.asarray(ts, dtype=np.int64)
        return [ts] + [np.full(len(ts), price)] * 4 + [np.ones(len(ts))]

    a, b = cols([1, 2, 3, 4], 1.0), cols([2, 4], 2.0)
    first = _core.Market.window(["A", "B"], *([a[k], b[k]] for k in range(6)), [0, 0], 1)
    new_a, new_b = cols([5, 7], 1.5), cols([], 2.0)
    second = first.following(3, *([new_a[k], new_b[k]] for k in range(6)))
    assert list(second.timeline()) == [5, 7]
    # Run indices: A's bars 1..5 are held (bar 0 let go), B's 0..1.
    assert (second.base(0), second.base(1)) == (1, 0)
    assert list(second.column(0, "ts", 0, 6)) == [2, 3, 4, 5, 7]
    assert list(second.column(0, "close", 0, 6)) == [1.0, 1.0, 1.0, 1.5, 1.5]
    assert list(second.column(1, "ts", 0, 2)) == [2, 4]
    late = cols([7], 1.0)
    with pytest.raises(td.DataError, match=r"A: the next window's first bar \(7\) is not after"):
        second.following(3, *([late[k], new_b[k]] for k in range(6)))


def test_reading_every_bar_so_far_is_refused_when_streaming(store):
    class All(tickstep.Strategy):
        def next(self, symbol: str) -> None:
            len(self.data(symbol))

    with pytest.raises(StateError, match="every bar so far"):
        tickstep.Backtest(store, All, stream="1D").run()


def test_what_needs_every_bar_is_refused_when_streaming(store):
    class Vectorised(tickstep.Strategy):
        def init(self) -> None:
            self.x = self.I(lambda c: c.rolling(3).mean())

    with pytest.raises(ConfigError, match=re.escape("self.I")):
        tickstep.Backtest(store, Vectorised, stream="1D").run()
    tickstep.Backtest(store, Vectorised).run()  # in memory it runs


@pytest.mark.parametrize("bad", ["soon", 0, -5, "-1h", 1.5])
def test_a_bad_window_is_refused_naming_the_option(bad):
    with pytest.raises(ConfigError, match="stream="):
        tickstep.BacktestConfig(stream=bad)


def test_regular_hours_stream_from_the_store():
    market = td.sample(symbols=3, days=3, seed=5, hours="extended")
    store = td.Store()
    store.ingest(market)
    store.ingest_metadata(pd.DataFrame({"symbol": market.symbols, "exchange": "XNYS"}))
    a = tickstep.Backtest(store, Mixed, regular_hours=True).run()
    b = tickstep.Backtest(store, Mixed, regular_hours=True, stream="2h", history=40).run()
    assert_same_run(a, b)


URL = os.environ.get("TICKSTEP_PG_URL")


@pytest.mark.skipif(not URL, reason="PostgreSQL tests need TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
def test_streamed_from_postgres_equals_in_memory(in_memory):
    schema = f"tickstep_stream_{uuid.uuid4().hex[:8]}"
    pg = td.PostgresStore(URL, schema=schema)
    try:
        pg.ingest(MARKET)
        for window in ("13min", "1D"):
            streamed = tickstep.Backtest(pg, Mixed, cash=50_000, stream=window, history=40).run()
            assert_same_run(in_memory["utc"], streamed)
        # Symbols that stop trading: their last bars found by one query of the server.
        streamed = tickstep.Backtest(pg, Mixed, stream="1D", history=40,
                                     **OPTIONS["delisted"]).run()
        assert_same_run(in_memory["delisted"], streamed)
    finally:
        pg._run(f'DROP SCHEMA "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


class DayCounter(tickstep.Strategy):
    """Records how many UTC-day candles each bar sees complete, and trades on them."""

    def init(self) -> None:
        self.tf = self.timeframe("1d", history=5)
        self.seen: list[int] = []

    def next(self, symbol: str) -> None:
        self.seen.append(self.tf.count())
        last = self.tf.last()
        if last is not None and not self.position and last.close > last.open:
            self.buy(size=1)
        elif self.position and last is not None and last.close < last.open:
            self.position.close()


def test_a_streamed_run_reads_bar_spacing_on_the_wall_clock_as_in_memory():
    # Daily bars at New York midnight over three years (six changes of offset), streamed a
    # week at a time: each bar completes its own day in both runs (the wall clock's
    # span is the stream's, not its first window's), and the runs are the same.
    rng = np.random.default_rng(3)
    days = pd.date_range("2022-01-03", "2024-12-31", freq="B").tz_localize("America/New_York")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(days))))
    frame = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.005, len(days))), "close": close,
                          "volume": 1.0}, index=days)
    frame["high"], frame["low"] = frame[["open", "close"]].max(axis=1), frame[["open", "close"]].min(axis=1)
    options = {"cash": 10_000, "timezone": "America/New_York"}
    whole = tickstep.Backtest({"NYD": frame}, DayCounter, **options).run()
    streamed = tickstep.Backtest({"NYD": frame}, DayCounter, stream="7D", history=5, **options).run()
    assert whole.strategy.seen == streamed.strategy.seen == [0, *range(2, len(days) + 1)]
    assert_same_run(whole, streamed)
    assert len(whole.trades) > 10


def test_symbols_stop_trading_by_the_last_bar_not_the_requested_end(store):
    # end= falls on a New York day after the last bar read (Friday 01:00 there; the last
    # bars are Thursday's): in memory no symbol stops trading before the run's last day,
    # and streamed neither (the run's last day is its latest bar's, not the bound's).
    options = {**OPTIONS["delisted"], "end": "2024-01-05 06:00", "history": 40}
    whole = tickstep.Backtest(store, Mixed, **options).run()
    assert whole.trades["exit_time"].max() < pd.Timestamp("2024-01-05", tz="UTC")
    for window in ("1h", "1D"):
        assert_same_run(whole, tickstep.Backtest(store, Mixed, stream=window, **options).run())


class HalfHours(tickstep.Strategy):
    """Half-hour candles, traded on: declared in init(), when a streamed run's market
    holds only its first window."""

    def init(self) -> None:
        self.tf = self.timeframe("30min", history=3)

    def next(self, symbol: str) -> None:
        last = self.tf.last()
        if last is not None and not self.position and last.close > last.open:
            self.buy(size=1)
        elif self.position and last is not None and last.close < last.open:
            self.position.close()


def test_a_timeframe_is_checked_against_every_bar_when_the_first_window_is_coarser(store):
    # The first symbol opens with bars 4 minutes apart (its minutes between missing), then
    # every minute: a 10-minute first window's gaps have a gcd of 4 minutes, which 30
    # minutes is not a multiple of; the whole run's is one minute, which it is.
    frames = {b.symbol: b.to_frame() for b in MARKET.bars}
    name = MARKET.symbols[0]
    bars = frames[name]
    start = bars.index[0]
    opening = (bars.index - start) < pd.Timedelta("20min")
    frames[name] = bars[~opening | ((bars.index - start) % pd.Timedelta("4min") == pd.Timedelta(0))]
    data = td.to_market_columns(frames)
    s = td.Store()
    s.ingest(data)
    whole = tickstep.Backtest(data, HalfHours).run()
    assert whole.stats["# Trades"] > 0
    for source in (data, s):
        assert_same_run(whole, tickstep.Backtest(source, HalfHours, stream="10min").run())

    class Seconds(HalfHours):
        def init(self) -> None:
            self.tf = self.timeframe("90s")

    # A period that is not a multiple of the whole run's spacing is refused streamed too.
    for source in (data, s):
        with pytest.raises(ValueError, match=re.escape("timeframe '90s' is not a multiple")):
            tickstep.Backtest(source, Seconds, stream="10min").run()


# (Not "ny": it samples equity at every bar, so a streamed run keeps no closes; see
# test_report.py's refusal.) "delisted" samples New York's day ends.
@pytest.mark.parametrize("case", ["utc", "close", "delisted"])
@pytest.mark.parametrize("window", ["13min", "1D"])
def test_a_streamed_run_keeps_the_closes_its_equity_was_marked_at(store, in_memory, case, window):
    from tickstep.report.tables import position_values, symbol_breakdown

    whole = in_memory[case]
    streamed = tickstep.Backtest(store, Mixed, stream=window, history=40, **OPTIONS[case]).run()
    samples = whole.equity.index
    for symbol in whole.symbols:
        everything, kept = whole.prices(symbol), streamed.prices(symbol)
        # Each kept close is a bar's own (its time, its close), and at every equity
        # sample the latest kept close is the latest bar's: all the marks read.
        pd.testing.assert_series_equal(kept, everything.loc[kept.index], check_exact=True)
        assert len(kept) <= len({t.normalize() for t in everything.index}) + 1
        at = np.searchsorted(everything.index.asi8, samples.asi8, side="right") - 1
        mine = np.searchsorted(kept.index.asi8, samples.asi8, side="right") - 1
        np.testing.assert_array_equal(np.where(at >= 0, everything.to_numpy()[np.maximum(at, 0)], np.nan),
                                      np.where(mine >= 0, kept.to_numpy()[np.maximum(mine, 0)], np.nan))
    pd.testing.assert_frame_equal(position_values(streamed), position_values(whole), check_exact=True)
    pd.testing.assert_frame_equal(symbol_breakdown(streamed), symbol_breakdown(whole), check_exact=True)


def test_a_streamed_run_from_trade_start_keeps_closes_from_there(store, tmp_path):
    from tickstep.report.tables import position_values

    kwargs = {"cash": 50_000, "start": "2024-01-03", "warmup": "1D", "history": 40}
    whole = tickstep.Backtest(store, Mixed, **kwargs).run()
    streamed = tickstep.Backtest(store, Mixed, stream="47min", **kwargs).run()
    for symbol in whole.symbols:
        assert streamed.prices(symbol).index.min() >= pd.Timestamp("2024-01-03", tz="UTC")
    pd.testing.assert_frame_equal(position_values(streamed), position_values(whole), check_exact=True)
    # Saved and loaded, the closes and the report go with it.
    streamed.save(tmp_path / "run")
    loaded = tickstep.load_result(tmp_path / "run")
    for symbol in whole.symbols:
        pd.testing.assert_series_equal(loaded.prices(symbol), streamed.prices(symbol), check_exact=True)
    page = loaded.report(tmp_path / "report.html").read_text()
    assert all(symbol in page for symbol in whole.symbols)


class SessionCandles(tickstep.Strategy):
    """Candles aligned on the New York session (hours from 09:30, cut at 16:00, and one
    per session), with rolling statistics over them: their buckets are computed for each
    window's bars as the run streams."""

    def init(self) -> None:
        tz = "America/New_York"
        self.hours = self.timeframe("1h", align="exchange", timezone=tz,
                                    session=("09:30", "16:00"), history=10)
        self.days = self.timeframe("1d", align="exchange", timezone=tz, history=5)
        self.hourly = self.sma(3, timeframe=self.hours)
        self.range = self.atr(2, timeframe=self.days)
        self.seen: list[tuple] = []

    def next(self, symbol: str) -> None:
        last = self.hours.last()
        day = self.days.last()
        self.seen.append((symbol, self.now, last and last.ts, day and day.ts,
                          self.hours.count(), self.days.count()))
        if not (self.hourly.is_ready() and self.range.is_ready()):
            return
        if not self.position and self.price() > self.hourly.value:
            self.buy(size=2, sl=self.price() - self.range.value)
        elif self.position and self.price() < self.hourly.value:
            self.position.close()


def _across_dst():
    """Three symbols of regular-hours minutes from March 6 to 14, 2024 (New York moves to
    summer time on March 10), one missing the first day's morning."""
    base = td.sample(symbols=3, days=6, seed=21, start="2024-03-06", missing=2.0)
    frames = {b.symbol: b.to_frame() for b in base.bars}
    late = sorted(frames)[1]
    frames[late] = frames[late][frames[late].index >= pd.Timestamp("2024-03-06 17:00", tz="UTC")]
    return td.to_market_columns(frames, metadata=base.metadata)


_ACROSS_DST = _across_dst()


@pytest.mark.parametrize("window", ["7min", "65min", "1D", "3D"])
def test_exchange_aligned_candles_stream_as_in_memory(window):
    data = _across_dst()
    s = td.Store()
    s.ingest(data)
    whole = tickstep.Backtest(data, SessionCandles, cash=50_000).run()
    assert whole.stats["# Trades"] > 0
    seen = whole.strategy.seen
    assert len({row[3] for row in seen if row[3] is not None}) >= 4  # session candles completed
    for source in (data, s):
        streamed = tickstep.Backtest(source, SessionCandles, cash=50_000, stream=window,
                                     history=40).run()
        assert_same_run(whole, streamed)
        assert streamed.strategy.seen == seen  # every candle completed at the same bar


def test_the_breakout_strategy_streams_with_exchange_aligned_candles():
    from tickstep.strategies import Fakeout

    data = _across_dst()
    options = {"reference": "1h", "confirmation": "1m", "align": "exchange"}
    whole = tickstep.Backtest(data, Fakeout, cash=100_000, timezone="America/New_York",
                              on_reject="ignore").run(**options)
    assert whole.stats["# Trades"] > 0
    streamed = tickstep.Backtest(data, Fakeout, cash=100_000, timezone="America/New_York",
                                 on_reject="ignore", stream="2h", history=600).run(**options)
    assert_same_run(whole, streamed)


def test_a_bars_session_bucket_depends_on_its_time_alone():
    # Any slice of the bars gets the buckets of the whole's slice: across New York's and
    # Sydney's summer time changes (2024-04-07 in Sydney, 2024-11-03 in New York).
    from tickstep.studies import session_buckets

    ts = pd.date_range("2023-12-28", "2024-11-10", freq="37min", tz="UTC").as_unit("ns").asi8
    rng = np.random.default_rng(3)
    for tz, session in (("America/New_York", ("09:30", "16:00")), ("Australia/Sydney", None)):
        for period in (pd.Timedelta("1h").value, pd.Timedelta("1D").value):
            label, end = session_buckets(ts, period, tz, session)
            for _ in range(20):
                a, b = sorted(rng.integers(0, len(ts), 2))
                part = session_buckets(ts[a:b + 1], period, tz, session)
                np.testing.assert_array_equal(part[0], label[a:b + 1])
                np.testing.assert_array_equal(part[1], end[a:b + 1])


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(minutes=st.integers(1, 3 * 24 * 60), period=st.sampled_from(["15min", "1h", "2h", "1d"]),
       tz=st.sampled_from(["America/New_York", "Europe/London", "Asia/Tokyo"]),
       session=st.sampled_from([None, ("09:30", "16:00"), ("08:00", "12:30")]))
def test_streamed_exchange_candles_equal_in_memory_ones(minutes, period, tz, session):
    data = _ACROSS_DST

    class Aligned(tickstep.Strategy):
        def init(self) -> None:
            self.tf = self.timeframe(period, align="exchange", timezone=tz, session=session,
                                     history=4)
            self.mean = self.sma(2, timeframe=self.tf)
            self.seen: list[tuple] = []

        def next(self, symbol: str) -> None:
            last = self.tf.last()
            self.seen.append((symbol, self.now, last, self.tf.count(), self.mean.value))
            if self.mean.is_ready() and not self.position and self.price() > self.mean.value:
                self.buy(size=1)
            elif self.position and self.price() < self.mean.value:
                self.position.close()

    whole = tickstep.Backtest(data, Aligned, cash=20_000).run()
    streamed = tickstep.Backtest(data, Aligned, cash=20_000, stream=minutes * MINUTE,
                                 history=10).run()
    assert_same_run(whole, streamed)
    assert str(streamed.strategy.seen) == str(whole.strategy.seen)  # (NaN means equal as text)
