"""Walk-forward over a streamed backtest (``stream=``): the same result as in memory, bit
for bit, while no run holds more than its window's bars.

The windows are planned from the stream's ticks; every train grid's jobs and every test
run stream their window's bars from the source (bars in memory cut into windows, a DuckDB
store in memory or on disk, PostgreSQL), and the statistics of the stitched equity read
only what the test runs passed (plus one symbol's closes for a benchmark). Each case runs
the same walk-forward in memory and streamed and compares the windows, the stitched
equity, the statistics, the trades and every test window's run exactly.
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
from test_stream import MARKET, Mixed, assert_same_run
from tickstep import ConfigError
from tickstep.data._duckdb import Store
from tickstep.data._stream import open_stream

GRID = dict(fast=[3, 5], slow=[10, 20])


def assert_same_walk(a, b) -> None:
    pd.testing.assert_frame_equal(a.windows, b.windows, check_exact=True)
    pd.testing.assert_frame_equal(a.equity_frame, b.equity_frame, check_exact=True)
    pd.testing.assert_series_equal(a.stats, b.stats, check_exact=True)
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    assert len(a.results) == len(b.results)
    for x, y in zip(a.results, b.results, strict=True):
        assert list(x.symbols) == list(y.symbols)
        assert_same_run(x, y)


def walk(data, window=None, options=None, **kw):
    options = {"history": 40, **(options or {})}
    if window is not None:
        options["stream"] = window
    kw = {"maximize": "Return [%]", "cache": False, "executor": "sequential", **GRID, **kw}
    return tickstep.Backtest(data, Mixed, **options).walk_forward(**kw)


@pytest.fixture(scope="module")
def store():
    s = td.Store()
    s.ingest(MARKET)
    return s


# The market's five symbols: one starts on the second session, one ends early on the
# third, one trades every 5 minutes; sessions are January 2-5, 2024.
CASES = {
    "rolling": (dict(train="1D", test="1D"), {}),
    "anchored, warm-up, benchmark": (dict(train="1D", test="12h", warmup="3h", anchored=True),
                                     {"benchmark": MARKET.symbols[0], "commission": 0.001}),
    "short windows, New York days": (dict(train="20h", test="5h", warmup="2h"),
                                     {"timezone": "America/New_York", "cash": 50_000}),
    # Test windows end on days after their last bar: symbols with bars on a window's last
    # day trade to its end, as in memory.
    "symbols that stop trading": (dict(train="1D", test="1D", warmup="1h"),
                                  {"close_delisted": True, "timezone": "America/New_York"}),
    # Three of the five, visited in the order asked (the late starter among them).
    "a selection": (dict(train="1D", test="1D"),
                    {"symbols": [MARKET.symbols[3], MARKET.symbols[1], MARKET.symbols[4]]}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("window", ["7min", "2h", "3D"])
def test_a_streamed_walk_forward_equals_the_one_in_memory(store, case, window):
    kw, options = CASES[case]
    whole = walk(store, None, options, **kw)
    assert len(whole.windows) >= 3 and whole.stats["# Trades"] > 0
    assert_same_walk(whole, walk(store, window, options, **kw))


def test_bars_in_memory_stream_the_same_walk_forward():
    kw, options = CASES["anchored, warm-up, benchmark"]
    assert_same_walk(walk(MARKET, None, options, **kw), walk(MARKET, "90min", options, **kw))


def test_a_store_on_disk_streams_in_worker_processes(tmp_path):
    path = tmp_path / "bars.duckdb"
    with Store(path) as s:
        s.ingest(MARKET)
    kw, options = CASES["rolling"]
    # Workers open the file themselves (read-only) and stream their jobs' windows.
    streamed = walk(str(path), "2h", options, executor="process", max_workers=2, **kw)
    assert_same_walk(walk(str(path), None, options, **kw), streamed)


def test_a_symbol_without_bars_in_a_window_is_left_out_of_its_runs():
    # HALT has bars on the first and the last session only: the windows between hold none
    # of its bars, and their runs leave it out (in memory and streamed alike).
    frames = {b.symbol: b.to_frame() for b in MARKET.bars}
    names = sorted(frames)
    days = sorted({t.normalize() for t in frames[names[0]].index})
    halted = frames[names[0]]
    frames["HALT"] = halted[(halted.index < days[1]) | (halted.index >= days[3])]
    data = td.to_market_columns(frames)
    kw = dict(train="1D", test="1D")
    whole, streamed = walk(data, None, {}, **kw), walk(data, "3h", {}, **kw)
    assert_same_walk(whole, streamed)
    held = [("HALT" in list(r.symbols)) for r in streamed.results]
    assert held == [False, False, True]  # the test windows: the second to fourth sessions


def test_each_run_reads_only_its_window_a_window_at_a_time(tmp_path, monkeypatch):
    # Every read of the store's bars during the streamed walk-forward (train jobs in this
    # process, from a file they open read-only, as workers do): none spans more than the
    # stream's window.
    path = str(tmp_path / "bars.duckdb")
    with Store(path) as s:
        s.ingest(MARKET)
    reads: list[tuple[int, int]] = []
    fetch = Store._fetch_bars

    def recorded(self, ids, lo, hi, *args, **kwargs):
        reads.append((int(lo), int(hi)))
        return fetch(self, ids, lo, hi, *args, **kwargs)

    monkeypatch.setattr(Store, "_fetch_bars", recorded)
    kw, options = CASES["rolling"]
    streamed = walk(path, "2h", options, **kw)
    assert len(reads) > 3 * len(streamed.windows)
    assert max(hi - lo for lo, hi in reads) <= pd.Timedelta("2h").value
    monkeypatch.undo()
    assert_same_walk(walk(path, None, options, **kw), streamed)


def test_a_resampled_store_and_signals_mode_are_refused_with_the_reason(store):
    with pytest.raises(ConfigError, match=re.escape("timeframe='1h'")):
        tickstep.Backtest(store, Mixed, stream="1D", timeframe="1h").walk_forward(
            train="1D", test="1D", fast=[3, 5], cache=False)

    class Crossing(tickstep.SignalStrategy):
        fast = 3

        def signals(self, bars):
            mean = bars.close.rolling(self.fast).mean()
            return {"entries": bars.close > mean, "exits": bars.close < mean}

    with pytest.raises(ConfigError, match="signals mode cannot stream"):
        tickstep.Backtest(store, Crossing, stream="1D").walk_forward(
            train="1D", test="1D", fast=[3, 5], cache=False)


URL = os.environ.get("TICKSTEP_PG_URL")


@pytest.mark.skipif(not URL, reason="PostgreSQL tests need TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
def test_a_walk_forward_streamed_from_postgres_equals_the_one_in_memory(store):
    schema = f"tickstep_wf_stream_{uuid.uuid4().hex[:8]}"
    pg = td.PostgresStore(URL, schema=schema)
    try:
        pg.ingest(MARKET)
        kw, options = CASES["anchored, warm-up, benchmark"]
        assert_same_walk(walk(store, None, options, **kw), walk(pg, "1D", options, **kw))
    finally:
        pg._run(f'DROP SCHEMA "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


def test_the_stream_plans_from_its_ticks_alone(store):
    stream = open_stream(store, window="1D")
    ticks = np.unique(np.concatenate([b.ts for b in MARKET.bars]))
    np.testing.assert_array_equal(stream.timeline(), ticks)
    np.testing.assert_array_equal(open_stream(MARKET, window="1D").timeline(), ticks)
    late, early = MARKET.symbols[1], MARKET.symbols[2]
    day = pd.Timestamp("2024-01-02", tz="UTC").value
    first_day = stream.symbols_between(day, day + pd.Timedelta("1D").value)
    assert late not in first_day and early in first_day
    last_day = stream.symbols_between(day + pd.Timedelta("3D").value, day + pd.Timedelta("4D").value)
    assert early not in last_day and late in last_day


def test_buy_and_hold_spans_the_test_windows_only():
    # Five sessions (Tuesday January 2 to Monday January 8): one-day windows leave the
    # weekend and the Monday out (no train window with bars before it), so the stitched
    # equity ends with Friday's test window and the basket is held to Friday's last close,
    # in memory and streamed, not to Monday's.
    data = td.sample(symbols=4, days=5, seed=3)
    kw = dict(train="1D", test="1D")
    whole, streamed = walk(data, None, {}, **kw), walk(data, "2h", {}, **kw)
    assert_same_walk(whole, streamed)
    end = whole.windows["test_end"].iloc[-1]
    assert whole.equity.index[-1] < end < pd.Timestamp("2024-01-08", tz="UTC")
    first = [b.close[np.searchsorted(b.ts, whole.windows["test_start"].iloc[0].value)]
             for b in data.bars]
    last = [b.close[np.searchsorted(b.ts, end.value) - 1] for b in data.bars]
    basket = np.mean(np.array(last) / np.array(first)) - 1.0
    assert whole.stats["Buy & Hold Return [%]"] == pytest.approx(basket * 100.0, rel=1e-12)


def test_analysis_tables_stream_with_the_walk_forward(tmp_path):
    # A portfolio ranked by zones read from the store's analysis table at each tick.
    from records_support import make_zones
    from test_records import NearestZone

    path = str(tmp_path / "bars.duckdb")
    with Store(path) as s:
        s.ingest(MARKET)
        s.ingest_records("zones", make_zones(MARKET, every=7))
    kw = dict(train="1D", test="1D", warmup="1h", top=[1, 2], max_distance=[0.01, 0.03])
    options = {"records": ["zones"], "cash": 100_000, "on_reject": "ignore"}

    def run(window):
        bt = tickstep.Backtest(path, NearestZone, **options, **({"stream": window} if window else {}))
        return bt.walk_forward(maximize="Return [%]", cache=False, executor="sequential", **kw)

    whole = run(None)
    assert whole.stats["# Trades"] > 0
    assert_same_walk(whole, run("3h"))


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(train=st.sampled_from(["6h", "18h", "1D", "30h"]), test=st.sampled_from(["3h", "10h", "1D"]),
       warmup=st.sampled_from([None, "45min", "5h"]), anchored=st.booleans(),
       window=st.sampled_from(["11min", "97min", "1D"]),
       timezone=st.sampled_from(["UTC", "America/New_York"]))
def test_streamed_walk_forwards_equal_in_memory_ones(store, train, test, warmup, anchored, window,
                                                     timezone):
    kw = dict(train=train, test=test, warmup=warmup, anchored=anchored)
    options = {"timezone": timezone, "close_delisted": True, "cash": 20_000}
    try:
        whole = walk(store, None, options, **kw)
    except ValueError as e:  # no window fits: refused streamed alike
        with pytest.raises(ValueError, match=re.escape(str(e)[:40])):
            walk(store, window, options, **kw)
        return
    assert_same_walk(whole, walk(store, window, options, **kw))
