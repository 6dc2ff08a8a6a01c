"""Batch runs: same rows from every executor, failures isolated, the API's contracts."""

from __future__ import annotations

import os
import sys

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from pandas.testing import assert_frame_equal
from test_batch_helpers import CrashOn, MetadataCheck, RaiseOn, add_to_path
from tickstep.batch import (
    FailedRunWarning,
    SequentialExecutor,
    expand_grid,
    optimize,
    resolve_strategy,
    run_batch,
    sample_sets,
)
from tickstep.simulation import simulate_stats
from tickstep.strategies import RsiMeanReversion

GRID = {"rsi_period": [10, 14], "oversold": [25.0, 35.0]}


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(8, days=300, seed=7)


@pytest.fixture()
def scratch(tmp_path):
    return tmp_path / "scratch"


def _comparable(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["run_time"])


@pytest.fixture(scope="module")
def dask_client():
    import importlib.machinery

    # Importing distributed imports the importlib_metadata backport, which puts its own
    # finder first on sys.meta_path and deletes the standard library's: from then on
    # importlib.metadata returns the backport's EntryPoint class. Leave the import
    # system as this module found it, for the test modules that run after it.
    finders = list(sys.meta_path)
    path_finder = importlib.machinery.PathFinder
    find_distributions = path_finder.__dict__.get("find_distributions")
    distributed = pytest.importorskip("distributed")
    import dask

    # A LocalCluster closes a worker's nanny for good when no worker of that name is back
    # `lost-worker-timeout` (15 s) after one was lost. On a loaded machine a worker killed
    # twice by a test's crashing jobs can take longer than that to restart: the cluster
    # then kills the restarted worker as it registers -- with the next job, an innocent
    # one, already sent to it (KilledWorker: "crashed") -- and is left short of workers.
    # Here workers are lost on purpose and always restarted: never give up on one.
    settings = dask.config.set({"distributed.deploy.lost-worker-timeout": "1 hour"})
    cluster = distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        # No retries of a task whose worker died: the batch isolates crashes itself.
        scheduler_kwargs={"allowed_failures": 0},
    )
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
    settings.__exit__(None, None, None)
    sys.meta_path[:] = [
        f for f in sys.meta_path
        if f in finders or not type(f).__module__.startswith("importlib_metadata")
    ]
    if find_distributions is not None and "find_distributions" not in path_finder.__dict__:
        path_finder.find_distributions = find_distributions


def test_sequential_process_and_dask_give_identical_rows(market, scratch, dask_client):
    kwargs = {"params": GRID, "cache": False, "scratch_dir": scratch, "cash": 100_000,
              "commission": 0.001}
    sequential = run_batch(RsiMeanReversion, market, executor="sequential", **kwargs)
    processes = run_batch(RsiMeanReversion, market, max_workers=2, **kwargs)
    dask = run_batch(RsiMeanReversion, market, executor=dask_client, **kwargs)

    assert len(sequential) == 8 * 4
    assert (sequential["status"] == "ok").all()
    assert_frame_equal(_comparable(sequential), _comparable(processes))
    assert_frame_equal(_comparable(sequential), _comparable(dask))
    # Sorted by the statistic, best first; failures would come last.
    sharpe = sequential["Sharpe Ratio"].to_numpy()
    assert (np.diff(sharpe[~np.isnan(sharpe)]) <= 0).all()
    assert list(sequential.columns[:3]) == ["rsi_period", "oversold", "symbols"]


def test_rows_equal_backtest_run(market, scratch):
    rows = run_batch(RsiMeanReversion, market, params={"oversold": 35.0}, cache=False,
                     executor="sequential", scratch_dir=scratch, cash=50_000, slippage=2.0)
    for symbol in market.symbols[:3]:
        bt = tickstep.Backtest(market, RsiMeanReversion, symbols=[symbol], cash=50_000,
                               slippage=2.0)
        expected = bt.run(oversold=35.0).stats
        got = rows[rows["symbols"] == symbol].iloc[0]
        for label, value in expected.items():
            assert got[label] == value or (pd.isna(got[label]) and pd.isna(value)), label
        assert simulate_stats(bt.market, RsiMeanReversion, bt.config, {"oversold": 35.0}).equals(expected)


def test_a_symbols_own_schedule_in_a_batch_is_its_runs_alone(market, scratch):
    # One symbol pays 0.05 a unit, at least 2.00; each run (one symbol each) is the
    # Backtest of that symbol with the same options. A symbol the data lacks is refused
    # when the batch runs every symbol; with a selection, a schedule of a symbol left out
    # is kept for the runs that have it.
    first, second = market.symbols[:2]
    options = dict(commission=0.001, on_reject="ignore",
                   commission_by_symbol={first: {"commission_per_unit": 0.05, "commission_min": 2.0}})
    rows = run_batch(RsiMeanReversion, market, symbols=[first, second], params={"oversold": 35.0},
                     cache=False, executor="sequential", scratch_dir=scratch, **options)
    for symbol in (first, second):
        alone = tickstep.Backtest(market, RsiMeanReversion, symbols=[symbol], **options)
        expected = alone.run(oversold=35.0).stats["Commissions [$]"]
        assert rows[rows["symbols"] == symbol].iloc[0]["Commissions [$]"] == expected
    with pytest.raises(tickstep.UnknownSymbolError, match="'NOPE' is not a symbol of the data"):
        run_batch(RsiMeanReversion, market, params={"oversold": 35.0}, cache=False,
                  executor="sequential", scratch_dir=scratch,
                  commission_by_symbol={"NOPE": {"commission": 0.01}})


def test_portfolio_mode_is_one_backtest_of_all_symbols(market, scratch):
    rows = run_batch(RsiMeanReversion, market, portfolio=True, params={"rsi_period": [10, 14]},
                     cache=False, scratch_dir=scratch, max_workers=2)
    assert list(rows["symbols"]) == ["portfolio", "portfolio"]
    expected = tickstep.Backtest(market, RsiMeanReversion).run(rsi_period=10).stats
    got = rows[rows["rsi_period"] == 10].iloc[0]
    assert got["Equity Final [$]"] == expected["Equity Final [$]"]
    assert got["# Trades"] == expected["# Trades"]


def test_named_symbol_groups_are_portfolios(market, scratch):
    groups = {"first": market.symbols[:3], "last": market.symbols[-2:]}
    rows = run_batch(RsiMeanReversion, market, symbols=groups, cache=False,
                     executor="sequential", scratch_dir=scratch)
    assert sorted(rows["symbols"]) == ["first", "last"]
    expected = tickstep.Backtest(market, RsiMeanReversion, symbols=groups["last"]).run().stats
    assert rows.set_index("symbols").loc["last", "Equity Final [$]"] == expected["Equity Final [$]"]


@pytest.mark.parametrize("executor", ["sequential", None])
def test_a_job_that_raises_is_reported_and_the_others_complete(market, scratch, executor):
    bad = market.symbols[5]
    with pytest.warns(FailedRunWarning) as record:
        rows = run_batch(RaiseOn, market, params={"bad": bad, "hold": [3, 5]}, cache=False,
                         executor=executor, scratch_dir=scratch)
    # One warning for the batch, naming its failed runs by the exception that ended each.
    (warning,) = [w for w in record if w.category is FailedRunWarning]
    lines = str(warning.message).splitlines()
    assert lines[0] == "2 of 16 runs failed; the first:"
    for hold, line in zip((3, 5), lines[1:3]):
        assert line.startswith(f"  {bad} (bad={bad!r}, hold={hold}): ValueError: refusing to trade {bad}; "
                               f"tickstep: raised by the strategy while handling symbol"), line
    assert warning.filename == __file__
    failed = rows[rows["status"] != "ok"]
    assert len(rows) == 16 and len(failed) == 2
    assert set(failed["symbols"]) == {bad} and set(failed["status"]) == {"error"}
    for text in failed["error"]:
        assert "Traceback (most recent call last)" in text
        assert f"ValueError: refusing to trade {bad}" in text
        assert "test_batch_helpers.py" in text  # the strategy's own frame
    ok = rows[rows["status"] == "ok"]
    assert ok["error"].isna().all() and (ok["# Trades"] == 1).all()
    assert list(rows.index[-2:]) == list(failed.index)  # failures sort last


def test_a_job_that_kills_its_worker_is_crashed_and_the_others_complete(market, scratch):
    bad = market.symbols[2]
    with pytest.warns(FailedRunWarning, match=r"^3 of 24 runs failed; the first:\n"
                      rf"  {bad} \(bad='{bad}', hold=2\): the worker process died"):
        rows = run_batch(CrashOn, market, params={"bad": bad, "hold": [2, 3, 4]}, cache=False,
                         max_workers=2, chunk_size=4, scratch_dir=scratch)
    crashed = rows[rows["status"] == "crashed"]
    assert len(rows) == 24
    assert set(crashed["symbols"]) == {bad} and len(crashed) == 3
    assert all("worker process died" in e and "exit code 3" in e for e in crashed["error"]), list(crashed["error"])
    assert (rows.loc[rows["symbols"] != bad, "status"] == "ok").all()


def test_strategy_by_name_plugin_and_local_class(market, scratch):
    by_name = run_batch("tickstep.strategies:RsiMeanReversion", market, cache=False,
                        executor="sequential", scratch_dir=scratch)
    by_plugin = run_batch("rsi_mean_reversion", market, cache=False, executor="sequential",
                          scratch_dir=scratch)
    assert_frame_equal(_comparable(by_name), _comparable(by_plugin))

    class Local(RsiMeanReversion):  # not importable by name: sent by value
        oversold = 40.0

    assert resolve_strategy(Local).payload is not None
    local = run_batch(Local, market, cache=False, max_workers=2, scratch_dir=scratch)
    direct = run_batch(RsiMeanReversion, market, params={"oversold": 40.0}, cache=False,
                       executor="sequential", scratch_dir=scratch)
    assert_frame_equal(_comparable(local), _comparable(direct).drop(columns=["oversold"]))


def test_grid_constraint_and_callable_maximize(market, scratch):
    grid = {"oversold": [20.0, 30.0, 40.0], "overbought": [35.0, 70.0]}
    assert len(expand_grid(grid, lambda p: p.oversold < p.overbought)) == 5
    rows = run_batch(RsiMeanReversion, market, symbols=market.symbols[:2], params=grid,
                     constraint=lambda p: p.oversold < p.overbought, cache=False,
                     maximize=lambda s: -s["Max. Drawdown [%]"] if s["# Trades"] else np.nan,
                     executor=SequentialExecutor(), scratch_dir=scratch)
    assert len(rows) == 10
    assert "score" in rows.columns
    scores = rows["score"].dropna().to_numpy()
    assert (np.diff(scores) <= 0).all()
    assert (rows["oversold"] < rows["overbought"]).all()


def test_optimize_a_backtest(market, scratch):
    bt = tickstep.Backtest(market, RsiMeanReversion, cash=100_000, commission=0.001)
    rows = optimize(bt, oversold=[25.0, 35.0], overbought=[65.0, 75.0], cache=False,
                    maximize="Return [%]", executor="sequential")
    assert len(rows) == 4 and set(rows["symbols"]) == {"portfolio"}
    best = rows.iloc[0]
    rerun = bt.run(oversold=best["oversold"], overbought=best["overbought"]).stats
    assert rerun["Return [%]"] == best["Return [%]"] == rows["Return [%]"].max()


def test_bad_names_are_refused_with_a_hint(market, scratch):
    with pytest.raises(TypeError, match="did you mean 'oversold'"):
        run_batch(RsiMeanReversion, market, params={"oversould": [1]}, cache=False)
    with pytest.raises(tickstep.ConfigError, match="unknown option 'comission' — did you mean 'commission'"):
        run_batch(RsiMeanReversion, market, comission=0.1, cache=False)
    with pytest.raises(ValueError, match="did you mean 'Sharpe Ratio'"):
        run_batch(RsiMeanReversion, market, maximize="Sharpe", cache=False)
    with pytest.raises(ValueError, match="symbols is empty"):
        run_batch(RsiMeanReversion, market, symbols=[], cache=False)

    class Collides(RaiseOn):
        status = 0  # a parameter named like a result column

    with pytest.raises(ValueError, match="collide"):
        run_batch(Collides, market, params={"status": [1]}, cache=False)
    with pytest.raises(ValueError, match="constraint"):
        run_batch(RsiMeanReversion, market, params={"oversold": [1]}, constraint=lambda p: False)


def test_progress_bar_only_when_asked_or_on_a_terminal(market, scratch, capsys):
    run_batch(RsiMeanReversion, market, cache=False, executor="sequential", scratch_dir=scratch)
    assert capsys.readouterr().err == ""  # stderr is not a terminal under pytest
    run_batch(RsiMeanReversion, market, cache=False, executor="sequential", scratch_dir=scratch,
              progress=True)
    err = capsys.readouterr().err
    assert "8/8" in err


def test_own_progress_bar_without_tqdm(monkeypatch, capsys):
    from tickstep.batch import progress

    monkeypatch.setitem(sys.modules, "tqdm", None)
    bar = progress.make_progress(True, total=4, initial=1)
    assert isinstance(bar, progress.Progress)
    bar.update(3)
    bar.close()
    err = capsys.readouterr().err
    assert "4/4" in err and "jobs/s" in err and "ETA" in err


def test_dask_workers_follow_edited_strategy_code(market, tmp_path, dask_client):
    import importlib
    import shutil

    name = f"edited_{tmp_path.name}"
    source = (
        "from tickstep.strategies import RsiMeanReversion\n\n"
        "class Edited(RsiMeanReversion):\n    oversold = {}\n"
    )

    def write(value):
        (tmp_path / f"{name}.py").write_text(source.format(value))
        shutil.rmtree(tmp_path / "__pycache__", ignore_errors=True)
        importlib.invalidate_caches()

    write(25.0)
    sys.path.insert(0, str(tmp_path))
    dask_client.run(add_to_path, str(tmp_path))
    try:
        module = importlib.import_module(name)
        kwargs = {"cache": False, "scratch_dir": tmp_path, "executor": dask_client}
        before = run_batch(module.Edited, market, **kwargs)
        write(40.0)  # the workers imported the old file: they must reload it
        importlib.reload(module)
        after = run_batch(module.Edited, market, **kwargs)
        assert (after["status"] == "ok").all(), after["error"].iloc[0]
        expected = run_batch(RsiMeanReversion, market, params={"oversold": 40.0},
                             executor="sequential", cache=False, scratch_dir=tmp_path)
        assert_frame_equal(_comparable(after), _comparable(expected).drop(columns="oversold"))
        assert not before["Equity Final [$]"].equals(after["Equity Final [$]"])
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)


def test_a_parquet_file_is_read_by_the_workers(market, tmp_path):
    path = tmp_path / "bars.parquet"
    market.to_frame().to_parquet(path)
    from_file = run_batch(RsiMeanReversion, str(path), cache=tmp_path / "cache", max_workers=2)
    in_memory = run_batch(RsiMeanReversion, td.MarketColumns(market.bars),
                          cache=False, executor="sequential", scratch_dir=tmp_path)
    assert_frame_equal(_comparable(from_file), _comparable(in_memory))
    again = run_batch(RsiMeanReversion, str(path), cache=tmp_path / "cache")
    assert again["cached"].all()


def test_backtest_optimize_method(market):
    bt = tickstep.Backtest(market, RsiMeanReversion)
    rows = bt.optimize(oversold=[25.0, 35.0], cache=False, executor="sequential")
    assert_frame_equal(rows, optimize(bt, oversold=[25.0, 35.0], cache=False,
                                      executor="sequential").assign(run_time=rows["run_time"]))


def test_max_tries_draws_sets_of_the_grid_without_replacement_in_grid_order():
    # Grids of every size up to 40 sets, counts and fractions around the limits, seeds:
    # the sets drawn are distinct sets of the grid, as many as asked (all when asked for
    # as many or more), in grid order, the same for the same seed.
    rng = np.random.default_rng(3)
    for n in range(1, 41):
        grid = expand_grid({"a": list(range(n))})
        for max_tries in [1, 2, n - 1, n, n + 5, 0.01, 0.5, 1.0, float(rng.uniform(0.01, 1))]:
            if max_tries == 0:
                continue
            for seed in (0, 1, 12345):
                got = sample_sets(grid, max_tries, seed)
                want = min(n, max_tries) if isinstance(max_tries, int) else max(1, int(max_tries * n))
                picked = [p["a"] for p in got]
                assert len(picked) == want, (n, max_tries)
                assert picked == sorted(set(picked)) and set(picked) <= set(range(n))
                assert got == sample_sets(grid, max_tries, seed)
    grid = expand_grid({"a": list(range(30))})
    draws = {tuple(p["a"] for p in sample_sets(grid, 5, seed)) for seed in range(10)}
    assert len(draws) > 5  # seeds draw different sets
    assert sample_sets(grid, None) == grid


@pytest.mark.parametrize("bad", [0, -3, 1.5, 0.0, -0.5, True, "3", float("nan")])
def test_max_tries_out_of_range_is_refused_by_name(bad):
    with pytest.raises(tickstep.ConfigError, match=r"max_tries=.*whole number of parameter sets >= 1"):
        sample_sets(expand_grid({"a": [1, 2, 3]}), bad)


@pytest.mark.parametrize("bad", [-1, 1.5, True, "7", None])
def test_random_state_must_be_a_whole_number(bad):
    with pytest.raises(tickstep.ConfigError, match=r"random_state=.*whole number >= 0"):
        sample_sets(expand_grid({"a": [1, 2, 3]}), 2, bad)


def test_a_random_search_gives_the_full_grids_rows_for_the_sets_it_draws(market):
    bt = tickstep.Backtest(market, RsiMeanReversion, cash=100_000, commission=0.001)
    grid = {"oversold": [20.0, 25.0, 30.0, 35.0], "overbought": [65.0, 70.0, 75.0]}
    full = bt.optimize(**grid, cache=False, executor="sequential", maximize="Return [%]",
                       constraint=lambda p: p.overbought - p.oversold > 35)
    some = bt.optimize(**grid, cache=False, executor="sequential", maximize="Return [%]",
                       constraint=lambda p: p.overbought - p.oversold > 35, max_tries=0.5,
                       random_state=11)
    assert len(full) == 9 and len(some) == 4  # half of 9, rounded down
    by_set = full.set_index(["oversold", "overbought"])
    for _, row in some.iterrows():
        reference = by_set.loc[(row["oversold"], row["overbought"])]
        assert row["Return [%]"] == reference["Return [%]"]
        assert row["Sharpe Ratio"] == reference["Sharpe Ratio"] or np.isnan(row["Sharpe Ratio"])
    assert some["Return [%]"].is_monotonic_decreasing
    again = bt.optimize(**grid, cache=False, executor="sequential", maximize="Return [%]",
                        constraint=lambda p: p.overbought - p.oversold > 35, max_tries=0.5,
                        random_state=11)
    assert_frame_equal(_comparable(again), _comparable(some))


@pytest.mark.parametrize("share", [True, False])
def test_workers_load_their_symbols_from_the_store(market, tmp_path, monkeypatch, share):
    from tickstep.batch import api

    monkeypatch.setattr(api, "SHARE_WITH_FORKED_WORKERS", share)
    path = tmp_path / "bars.duckdb"
    with td.Store(path) as store:
        store.ingest(market)
    kwargs = {"params": {"oversold": [25.0, 35.0]}, "start": "2020-03-01", "end": "2020-12-31"}
    from_store = run_batch(RsiMeanReversion, str(path), cache=False, max_workers=2,
                           chunk_size=3, **kwargs)
    in_memory = run_batch(RsiMeanReversion, market, cache=False, executor="sequential",
                          scratch_dir=tmp_path, **kwargs)
    assert_frame_equal(_comparable(from_store), _comparable(in_memory))
    assert (from_store["Start"] == pd.Timestamp("2020-03-02", tz="UTC")).all()
    # Each backtest sees the metadata rows of its own symbols, whichever way they came.
    groups = {"some": market.symbols[1:4], "odd": market.symbols[::3]}
    for symbols in (None, groups):
        for data in (str(path), market):
            rows = run_batch(MetadataCheck, data, symbols=symbols, cache=False, max_workers=2,
                             chunk_size=2, scratch_dir=tmp_path)
            assert (rows["status"] == "ok").all(), rows["error"].dropna().tolist()[:1]


@pytest.mark.skipif(not os.environ.get("TICKSTEP_PG_URL"),
                    reason="needs TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")
def test_workers_reconnect_to_a_postgres_store(market, tmp_path, monkeypatch):
    import uuid

    pytest.importorskip("adbc_driver_postgresql")
    from tickstep.batch import api
    from tickstep.data import PostgresStore

    monkeypatch.setattr(api, "SHARE_WITH_FORKED_WORKERS", False)  # workers query it
    url = os.environ["TICKSTEP_PG_URL"]
    schema = f"tickstep_batch_{uuid.uuid4().hex[:10]}"
    pg = PostgresStore(url, schema=schema)
    try:
        pg.ingest(market)
        kwargs = {"params": {"oversold": [25.0, 35.0]}, "cache": False}
        from_pg = run_batch(RsiMeanReversion, pg, max_workers=2, chunk_size=3, **kwargs)
        expected = run_batch(RsiMeanReversion, market, executor="sequential",
                             scratch_dir=tmp_path, **kwargs)
        assert_frame_equal(_comparable(from_pg), _comparable(expected))
    finally:
        pg._run(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        pg._con.commit()
        pg.close()


def test_on_dask_a_job_that_kills_its_worker_is_crashed(market, scratch, dask_client):
    bad = market.symbols[2]
    rows = run_batch(CrashOn, market, params={"bad": bad, "hold": [2, 3]}, cache=False,
                     executor=dask_client, scratch_dir=scratch)
    crashed = rows[rows["status"] == "crashed"]
    assert set(crashed["symbols"]) == {bad} and len(crashed) == 2
    assert all("KilledWorker" in e for e in crashed["error"])
    assert (rows.loc[rows["symbols"] != bad, "status"] == "ok").all() and len(rows) == 16
    dask_client.wait_for_workers(2, timeout=60)


class NeverTrades(tickstep.Strategy):
    """Places nothing: every run's equity is flat, its Sharpe Ratio undefined (NaN)."""

    n = 1

    def next(self, symbol):
        pass


def test_a_statistic_nan_in_every_run_is_warned_of_as_no_best(market, scratch):
    import warnings

    bt = tickstep.Backtest(market, NeverTrades)
    with pytest.warns(tickstep.TickstepWarning) as record:
        rows = bt.optimize(n=[1, 2, 3], cache=False, executor="sequential")
    assert rows["Sharpe Ratio"].isna().all() and list(rows.index) == [0, 1, 2]  # job order
    (warning,) = record
    assert str(warning.message).startswith(
        "'Sharpe Ratio' is NaN in every run that finished (3 of 3): the rows keep job order "
        "and none is best")
    assert warning.filename == __file__
    # Another statistic, defined in every run (0 here), is a ranking: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bt.optimize(n=[1, 2], cache=False, executor="sequential", maximize="Return [%]")


def test_the_results_table_holds_each_jobs_parameters_statistics_and_status_ranked():
    # The table alone, from rows as workers hand them back: parameters first (NaN where a
    # job's set lacks one), then symbols, every statistic, the score for a function, and
    # the row's tail; ranked best first, a failed run last; a statistic of timestamps
    # keeps its dtype with NaT in the failed row.
    from tickstep.batch.api import ROW_TAIL, _frame
    from tickstep.batch.jobs import Job
    from tickstep.batch.objectives import Objective
    from tickstep.metrics import STAT_LABELS

    start = pd.Timestamp("2024-01-02 14:30", tz="UTC")
    jobs = [Job(0, "AAA", ("AAA",), {"n": 1}), Job(1, "BBB", ("BBB",), {"n": 2, "m": 0.5}),
            Job(2, "AAA", ("AAA",), {"n": 3})]

    def row(job, stats, status="ok", error=None):
        return {"job": job, "stats": stats, "run_time": 0.25 * job, "status": status,
                "error": error, "cached": job == 1}

    rows = {0: row(0, {"Sharpe Ratio": 1.5, "Start": start, "# Trades": 4, "Extra": "x"}),
            1: row(1, {"Sharpe Ratio": 2.5, "Start": start, "# Trades": 6}),
            2: row(2, {}, "error", "Traceback: boom")}
    frame = _frame(jobs, rows, Objective("Sharpe Ratio"))
    assert list(frame.columns) == ["n", "m", "symbols", *STAT_LABELS, "Extra", *ROW_TAIL]
    assert list(frame.index) == [1, 0, 2]
    assert frame["n"].tolist() == [2, 1, 3]
    assert np.isnan(frame.loc[0, "m"]) and frame.loc[1, "m"] == 0.5
    assert frame["Sharpe Ratio"].dtype == np.float64
    assert isinstance(frame["Start"].dtype, pd.DatetimeTZDtype) and str(frame["Start"].dt.tz) == "UTC"
    assert frame.loc[1, "Start"] == start and pd.isna(frame.loc[2, "Start"])
    assert frame.loc[0, "Extra"] == "x" and pd.isna(frame.loc[1, "Extra"])
    assert frame["status"].tolist() == ["ok", "ok", "error"]
    assert frame.loc[2, "error"] == "Traceback: boom"
    assert frame["cached"].tolist() == [True, False, False]
    assert frame["run_time"].tolist() == [0.25, 0.0, 0.5]

    scored = _frame(jobs, rows, Objective(lambda s: -s["Sharpe Ratio"]))
    assert list(scored.columns[-5:]) == ["score", *ROW_TAIL]
    assert list(scored.index) == [0, 1, 2]
    assert scored["score"].tolist()[:2] == [-1.5, -2.5] and np.isnan(scored.loc[2, "score"])
