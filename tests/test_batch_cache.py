"""The results cache: hits for unchanged jobs, misses for any change, nothing lost on a kill."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import tickstep.data as td
from pandas.testing import assert_frame_equal
from test_batch_helpers import RaiseOn
from tickstep.batch import ResultsCache, run_batch

TESTS = Path(__file__).parent
HOLDS = {"hold": [3, 5]}


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(6, days=200, seed=11)


@pytest.fixture()
def store_path(tmp_path, market):
    path = tmp_path / "bars.duckdb"
    with td.Store(path) as store:
        store.ingest(market)
    return path


def _run(strategy, data, cache, **kwargs):
    kwargs.setdefault("params", HOLDS)
    kwargs.setdefault("max_workers", 2)
    return run_batch(strategy, data, cache=cache, **kwargs)


def _counts(frame):
    return frame.attrs["batch"]["cached"], frame.attrs["batch"]["ran"]


def test_a_repeat_is_answered_from_the_cache_beside_the_store(store_path):
    first = _run(RaiseOn, str(store_path), True)
    assert _counts(first) == (0, 12)
    assert (store_path.parent / "bars.duckdb.results.sqlite").exists()
    again = _run(RaiseOn, str(store_path), True)
    assert _counts(again) == (12, 0) and again["cached"].all()
    # Same rows, same order, the original run times included.
    assert_frame_equal(first.drop(columns="cached"), again.drop(columns="cached"))


@pytest.mark.parametrize("portfolio", [False, True])
def test_without_a_cache_the_data_is_not_fingerprinted_nor_the_jobs_keyed(
        store_path, tmp_path, monkeypatch, portfolio):
    """Nothing keys on them without a cache, so a store is loaded once and not hashed;
    the rows (and a portfolio's order of symbols) are those of a batch with a cache."""
    from tickstep.batch import api, sources

    calls = {"fingerprints": 0, "keys": 0}

    def counted(name, fn):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(sources, "fingerprint_columns",
                        counted("fingerprints", sources.fingerprint_columns))
    monkeypatch.setattr(api, "job_key", counted("keys", api.job_key))
    plain = _run(RaiseOn, str(store_path), False, portfolio=portfolio)
    assert calls == {"fingerprints": 0, "keys": 0}
    cached = _run(RaiseOn, str(store_path), tmp_path / "cache", portfolio=portfolio)
    assert calls["fingerprints"] == 1 and calls["keys"] == len(cached)
    assert_frame_equal(plain.drop(columns=["run_time", "cached"]),
                       cached.drop(columns=["run_time", "cached"]))
    assert _counts(plain) == (0, len(plain)) and (plain["status"] != "crashed").all()


def test_changed_bars_miss_only_for_their_symbol(store_path, market, tmp_path):
    cache = tmp_path / "cache"
    _run(RaiseOn, str(store_path), cache)
    changed = market.symbols[2]
    frame = market[changed].to_frame()
    frame.iloc[50, :4] *= 1.01  # one bar, all four prices: still a valid bar
    with td.Store(store_path) as store:
        store.ingest(frame, symbol=changed, on_conflict="replace")
    rows = _run(RaiseOn, str(store_path), cache)
    assert _counts(rows) == (10, 2)
    assert set(rows.loc[~rows["cached"], "symbols"]) == {changed}


def test_changed_metadata_misses(market, tmp_path):
    cache = tmp_path / "cache"
    _run(RaiseOn, market, cache, scratch_dir=tmp_path)
    meta = market.metadata.copy()
    meta.loc[market.symbols[0], "sector"] = "Something else"
    renamed = td.MarketColumns(market.bars, meta)
    rows = _run(RaiseOn, renamed, cache, scratch_dir=tmp_path)
    assert _counts(rows) == (10, 2)


def test_changed_parameters_miss_and_unchanged_ones_hit(market, tmp_path):
    cache = tmp_path / "cache"
    _run(RaiseOn, market, cache, scratch_dir=tmp_path)
    rows = _run(RaiseOn, market, cache, params={"hold": [3, 5, 7]}, scratch_dir=tmp_path)
    assert _counts(rows) == (12, 6)
    assert set(rows.loc[~rows["cached"], "hold"]) == {7}
    # An int parameter given 5.0 runs with 5 (checked against its declared type): the
    # same run, the same key. 5.5 is refused before anything runs.
    rows = _run(RaiseOn, market, cache, params={"hold": [5.0]}, scratch_dir=tmp_path)
    assert _counts(rows) == (6, 0)
    assert rows["hold"].map(type).eq(int).all()
    with pytest.raises(TypeError, match=r"hold=5\.5"):
        _run(RaiseOn, market, cache, params={"hold": [5.5]}, scratch_dir=tmp_path)
    # A different value misses.
    rows = _run(RaiseOn, market, cache, params={"hold": [4]}, scratch_dir=tmp_path)
    assert _counts(rows) == (0, 6)


def test_changed_engine_options_miss(market, tmp_path):
    cache = tmp_path / "cache"
    base = _run(RaiseOn, market, cache, scratch_dir=tmp_path)
    rows = _run(RaiseOn, market, cache, commission=0.001, scratch_dir=tmp_path)
    assert _counts(rows) == (0, 12)
    assert (rows["Commissions [$]"] > 0).all() and (base["Commissions [$]"] == 0).all()
    rows = _run(RaiseOn, market, cache, timezone="America/New_York", scratch_dir=tmp_path)
    assert _counts(rows) == (0, 12)
    assert _counts(_run(RaiseOn, market, cache, scratch_dir=tmp_path)) == (12, 0)
    assert _counts(_run(RaiseOn, market, cache, refresh=True, scratch_dir=tmp_path)) == (0, 12)


STRATEGY_V1 = '''
import tickstep
from {helper} import entry_bar


class Hold(tickstep.Strategy):
    hold = 3

    def init(self):
        self.seen = {{}}

    def next(self, symbol):
        n = self.seen[symbol] = self.seen.get(symbol, 0) + 1
        if n == entry_bar():
            self.buy(symbol, size=1)
        elif n == entry_bar() + self.hold:
            self.close(symbol)
'''
HELPER_V1 = "def entry_bar():\n    return 1\n"


def _write_module(directory: Path, name: str, text: str) -> None:
    (directory / f"{name}.py").write_text(text)
    shutil.rmtree(directory / "__pycache__", ignore_errors=True)
    importlib.invalidate_caches()


@pytest.mark.parametrize("executor", [None, "sequential"])
def test_changed_strategy_code_misses(market, tmp_path, monkeypatch, executor):
    monkeypatch.syspath_prepend(str(tmp_path))
    strategy_name, helper_name = f"strat_{tmp_path.name}", f"helper_{tmp_path.name}"
    _write_module(tmp_path, helper_name, HELPER_V1)
    _write_module(tmp_path, strategy_name, STRATEGY_V1.format(helper=helper_name))
    module = importlib.import_module(strategy_name)
    helper = importlib.import_module(helper_name)
    cache = tmp_path / "cache"
    kw = {"scratch_dir": tmp_path, "executor": executor}
    try:
        first = _run(module.Hold, market, cache, **kw)
        assert _counts(first) == (0, 12)
        assert _counts(_run(module.Hold, market, cache, **kw)) == (12, 0)

        # The strategy's own module changes: everything misses, results follow the code.
        _write_module(tmp_path, strategy_name,
                      STRATEGY_V1.format(helper=helper_name).replace("size=1", "size=2"))
        importlib.reload(module)
        rows = _run(module.Hold, market, cache, **kw)
        assert _counts(rows) == (0, 12)
        assert not np.allclose(rows.sort_index()["Equity Final [$]"],
                               first.sort_index()["Equity Final [$]"])

        # A helper module it imports from changes: misses too.
        _write_module(tmp_path, helper_name, HELPER_V1.replace("1", "2"))
        importlib.reload(helper)
        importlib.reload(module)
        assert _counts(_run(module.Hold, market, cache, **kw)) == (0, 12)
        assert _counts(_run(module.Hold, market, cache, **kw)) == (12, 0)
    finally:
        sys.modules.pop(strategy_name, None)
        sys.modules.pop(helper_name, None)


def test_errors_are_cached_with_their_traceback(market, tmp_path):
    cache = tmp_path / "cache"
    params = {"bad": market.symbols[1]}
    first = _run(RaiseOn, market, cache, params=params, scratch_dir=tmp_path)
    again = _run(RaiseOn, market, cache, params=params, scratch_dir=tmp_path)
    assert _counts(again) == (6, 0)
    assert (again["status"] == "error").sum() == 1
    assert_frame_equal(first.drop(columns="cached"), again.drop(columns="cached"))


KILLED_BATCH = """
# batch {marker}
import sys
sys.path.insert(0, {tests!r})
from tickstep.batch import run_batch
from test_batch_helpers import Sleepy
run_batch(Sleepy, {store!r}, params={params!r}, cache={cache!r}, max_workers=2)
"""


def _cached_rows(cache_dir: Path) -> int:
    path = cache_dir / "results.sqlite"
    if not path.exists():
        return 0
    with sqlite3.connect(path, timeout=10) as con:
        try:
            return int(con.execute("SELECT count(*) FROM results").fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


def _processes_running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_batch_rerun_computes_only_what_is_missing(store_path, tmp_path):
    cache = tmp_path / "cache"
    marker = f"killed-batch-{os.getpid()}-{tmp_path.name}"
    params = {"delay": 0.08, "hold": [2, 3, 4, 5, 6]}  # 30 jobs, ~1.2 s on two workers
    script = KILLED_BATCH.format(marker=marker, tests=str(TESTS), store=str(store_path),
                                 params=params, cache=str(cache))
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)],
                            start_new_session=True, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _cached_rows(cache) < 6:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the batch made no progress"
            time.sleep(0.01)
        running = _processes_running(marker)
        assert len(running) == 3, running  # the batch and its two workers
        proc.send_signal(signal.SIGKILL)  # the batch's process only: no cleanup at all
        proc.wait()
        # Its workers notice and die too, rather than idle forever.
        deadline = time.monotonic() + 10
        while _processes_running(marker):
            assert time.monotonic() < deadline, "orphaned workers left running"
            time.sleep(0.05)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    finished = _cached_rows(cache)
    assert 6 <= finished < 30, finished

    from test_batch_helpers import Sleepy

    rows = run_batch(Sleepy, str(store_path), params=params, cache=cache, max_workers=2)
    assert _counts(rows) == (finished, 30 - finished)
    assert (rows["status"] == "ok").all() and len(rows) == 30
    with ResultsCache(cache) as results:
        assert len(results) == 30
