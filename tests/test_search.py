"""A model-based parameter search (``method="optuna"``): the sets it runs, that its rows
are the grid's, that the same seed gives the same search anywhere, that it learns, and
its refusals."""

from __future__ import annotations

import json
import warnings

import numpy as np
import optuna
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from hypothesis import given, settings
from hypothesis import strategies as st
from pandas.testing import assert_frame_equal
from test_batch_helpers import RaiseOn
from tickstep.batch import expand_grid, run_batch, sample_sets
from tickstep.batch.search import ROUND, GridSearch, _Axis, search_of
from tickstep.strategies import RsiMeanReversion, SmaCross

GRID = {"fast": range(2, 40), "slow": range(10, 120, 2)}


def fast_below_slow(p):
    return p.fast < p.slow


@pytest.fixture(scope="module")
def daily():
    return tickstep.data.example_daily()


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(3, days=400, seed=11)


def _same(a: pd.DataFrame, b: pd.DataFrame) -> None:
    """Two results tables equal but for their timings and where a row came from."""
    drop = ["run_time", "cached"]
    assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop))


def _searched(search, objective):
    """Run ``search`` to its end against ``objective(params)``; the sets in order proposed."""
    ran = []
    while sets := search.propose():
        assert isinstance(search, GridSearch) or len(sets) <= ROUND
        ran += sets
        search.tell([objective(p) for p in sets])
    return ran


# ---- the search's sets ----------------------------------------------------------------------


def test_a_model_search_runs_max_tries_distinct_sets_the_constraint_keeps_each_as_run_alone(daily):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows, studies = run_batch(SmaCross, daily, params=GRID, portfolio=True,
                                  constraint=fast_below_slow, max_tries=24, method="optuna",
                                  maximize="Return [%]", cache=False, return_optimization=True)
        sets = [{"fast": int(f), "slow": int(s)} for f, s in zip(rows["fast"], rows["slow"])]
        assert len(rows) == 24 and len({(p["fast"], p["slow"]) for p in sets}) == 24
        assert all(p["fast"] < p["slow"] and p["slow"] % 2 == 0 for p in sets)
        # Each row is the run of its set alone: the same sets as an explicit list.
        alone = run_batch(SmaCross, daily, params=sorted(sets, key=lambda p: (p["fast"], p["slow"])),
                          portfolio=True, maximize="Return [%]", cache=False)
    key = ["fast", "slow"]
    _same(rows.sort_values(key).reset_index(drop=True), alone.sort_values(key).reset_index(drop=True))
    assert rows["Return [%]"].is_monotonic_decreasing
    # The study: every proposal, the objective of each set that ran; its best is row 0.
    study = studies["portfolio"]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 24
    assert study.best_value == rows["Return [%]"].iloc[0]
    assert study.best_trial.user_attrs["params"] == {"fast": rows["fast"].iloc[0],
                                                     "slow": rows["slow"].iloc[0]}
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.PRUNED:
            assert trial.user_attrs["refused"]
            assert trial.params["fast"] >= trial.params["slow"]


def test_the_same_seed_gives_the_same_search_on_any_executor_and_a_second_call_is_cached(
        daily, tmp_path):
    ask = dict(params=GRID, portfolio=True, constraint=fast_below_slow, max_tries=20,
               method="optuna", random_state=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        pooled = run_batch(SmaCross, daily, cache=tmp_path / "c.sqlite", **ask)
        alone = run_batch(SmaCross, daily, cache=False, executor="sequential", **ask)
        one = run_batch(SmaCross, daily, cache=False, max_workers=1, **ask)
        again = run_batch(SmaCross, daily, cache=tmp_path / "c.sqlite", **ask)
        other = run_batch(SmaCross, daily, cache=False, **{**ask, "random_state": 4})
    _same(pooled, alone)
    _same(pooled, one)
    _same(pooled, again)
    assert pooled.attrs["batch"]["ran"] == 20 and again.attrs["batch"]["cached"] == 20
    assert again["cached"].all() and not pooled["cached"].any()
    # Another seed, another search.
    assert set(zip(other["fast"], other["slow"])) != set(zip(pooled["fast"], pooled["slow"]))


def test_a_model_search_learns_it_finds_better_sets_than_a_random_draw_of_as_many():
    # A smooth objective with one peak, known at every set: the sampler's best of 40
    # tries against a random draw's best of 40, seed by seed.
    params = {"a": range(0, 40), "b": range(0, 40)}

    def objective(p):
        return -((p["a"] - 29) ** 2 + 0.5 * (p["b"] - 8) ** 2)

    values = sorted({objective(p) for p in expand_grid(params)}, reverse=True)
    model, drawn = [], []
    for seed in range(8):
        found = _searched(search_of("optuna", params, None, 40, seed, dict)(), objective)
        assert len(found) == 40
        model.append(values.index(max(map(objective, found))))
        drawn.append(values.index(max(map(objective, sample_sets(expand_grid(params), 40, seed)))))
    assert sum(m < r for m, r in zip(model, drawn)) >= 6, (model, drawn)
    assert np.median(model) < np.median(drawn) / 2, (model, drawn)


def test_when_the_model_proposes_refused_or_repeated_sets_the_round_is_filled_at_random():
    # 12 sets of 4 x 3, the constraint keeping 7: the sampler soon proposes sets it has
    # run or the constraint refused; the search still runs 6 distinct sets it keeps.
    params = {"x": [1, 2, 3, 4], "y": ["a", "b", "c"]}

    def keep(p):
        return (p.x + "abc".index(p.y)) % 2 == 0 or p.x == 4

    kept = expand_grid(params, keep)
    assert len(kept) == 7
    search = search_of("optuna", params, keep, 6, 0, dict)()
    found = _searched(search, lambda p: float(p["x"]))
    assert len(found) == 6 and all(p in kept for p in found)
    assert len({(p["x"], p["y"]) for p in found}) == 6
    states = [t.state for t in search.study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 6
    fruitless = [t for t in search.study.trials if t.state != optuna.trial.TrialState.COMPLETE]
    assert fruitless and all(t.user_attrs.get("refused") or t.user_attrs.get("repeat")
                             for t in fruitless)
    # As many tries as the constraint keeps: the grid, nothing for a model to choose.
    everything = search_of("optuna", params, keep, 7, 0, dict)()
    assert isinstance(everything, GridSearch) and everything.propose() == kept


@settings(max_examples=30, deadline=None, derandomize=True)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=3),
       modulus=st.integers(1, 4), tries=st.integers(1, 60), seed=st.integers(0, 5))
def test_property_a_search_runs_min_of_tries_and_kept_sets_distinct_and_repeatably(
        sizes, modulus, tries, seed):
    params = {f"p{k}": list(range(n)) for k, n in enumerate(sizes)}

    def keep(p):
        return sum(p.values()) % modulus == 0

    def objective(p):
        return float(np.sin(sum((k + 1) * v for k, v in enumerate(p.values()))))

    kept = expand_grid(params, keep)
    runs = [_searched(search_of("optuna", params, keep, tries, seed, dict)(), objective)
            for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(runs[0]) == min(tries, len(kept))
    assert all(p in kept for p in runs[0])
    assert len({tuple(p.values()) for p in runs[0]}) == len(runs[0])


def test_each_parameter_is_shown_to_the_sampler_in_its_kind():
    steps = _Axis("n", list(range(5, 50, 5)))
    assert (steps.kind, steps.low, steps.high, steps.step) == ("int", 5, 45, 5)
    uneven = _Axis("n", [20, 5, 50, 10])
    assert uneven.kind == "rank" and [uneven.encode(i) for i in range(4)] == [2, 0, 3, 1]
    assert _Axis("x", [0.1, 0.2, 0.4]).kind == "rank"
    assert _Axis("k", ["ema", "sma"]).kind == "category"
    assert _Axis("b", [True, False]).kind == "category"
    assert _Axis("m", [1, 2, 2]).kind == "category"  # a value twice: no order to draw by
    # A position encoded and drawn back (as the search fills a round) is itself.
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for axis in (steps, uneven, _Axis("k", ["a", "b", "c"])):
        for position in range(3):
            study.enqueue_trial({axis.name: axis.encode(position)})
            assert axis.suggest(study.ask()) == position


def test_each_symbol_has_its_own_search_the_same_as_searching_it_alone(market):
    ask = dict(params={"rsi_period": range(5, 30), "oversold": [20.0, 25.0, 30.0, 35.0]},
               max_tries=10, method="optuna", maximize="Return [%]", cache=False)
    rows, studies = run_batch(RsiMeanReversion, market, return_optimization=True, **ask)
    assert sorted(studies) == sorted(market.symbols)
    for symbol in market.symbols:
        mine = rows[rows["symbols"] == symbol]
        assert len(mine) == 10
        alone = run_batch(RsiMeanReversion, market, symbols=[symbol], **ask)
        _same(mine.reset_index(drop=True), alone.reset_index(drop=True))


def test_a_run_that_raises_is_its_row_the_search_goes_on_and_leaves_it_out(market):
    # RaiseOn raises for the symbol it names: every run of that one fails.
    symbol = market.symbols[0]
    with pytest.warns(tickstep.batch.FailedRunWarning):
        rows, studies = run_batch(RaiseOn, market, symbols=[symbol],
                                  params={"bad": symbol, "hold": range(1, 30)}, max_tries=9,
                                  method="optuna", cache=False, executor="sequential",
                                  return_optimization=True)
    assert len(rows) == 9 and (rows["status"] == "error").all()
    assert all(t.state == optuna.trial.TrialState.FAIL for t in studies[symbol].trials)


def test_an_optuna_sampler_of_ones_own_searches(daily):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows, studies = run_batch(SmaCross, daily, params=GRID, portfolio=True,
                                  constraint=fast_below_slow, max_tries=12, cache=False,
                                  method=optuna.samplers.RandomSampler(seed=5),
                                  return_optimization=True)
    assert len(rows) == 12
    assert isinstance(studies["portfolio"].sampler, optuna.samplers.RandomSampler)


class SignalCross(tickstep.SignalStrategy):
    """SMA cross signals from each symbol's own bars."""

    fast = 3
    slow = 8

    def signals(self, symbol, bars):
        f = bars["close"].rolling(self.fast).mean().to_numpy()
        s = bars["close"].rolling(self.slow).mean().to_numpy()
        above = f > s
        before = np.concatenate([[False], above[:-1]])
        return {"entries": above & ~before, "exits": ~above & before}


def test_a_signal_strategys_search_runs_natively_and_its_rows_are_the_grids(daily):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = run_batch(SignalCross, daily, params=GRID, portfolio=True,
                         constraint=fast_below_slow, max_tries=16, method="optuna",
                         cache=False)
        sets = [{"fast": int(f), "slow": int(s)} for f, s in zip(rows["fast"], rows["slow"])]
        alone = run_batch(SignalCross, daily, params=sets, portfolio=True, cache=False)
    key = ["fast", "slow"]
    assert len(rows) == 16
    _same(rows.sort_values(key).reset_index(drop=True), alone.sort_values(key).reset_index(drop=True))


# ---- Backtest.optimize, walk-forward, MultiBacktest ------------------------------------------


def test_optimize_returns_rows_heatmap_and_study_as_backtesting_py(daily):
    bt = tickstep.Backtest(daily, SmaCross, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows, heatmap, study = bt.optimize(method="optuna", max_tries=16, cache=False,
                                           return_heatmap=True, return_optimization=True,
                                           constraint=fast_below_slow, **GRID)
        alone = bt.optimize(method="optuna", max_tries=16, cache=False, executor="sequential",
                            constraint=fast_below_slow, **GRID)
        best = bt.run(fast=int(rows["fast"].iloc[0]), slow=int(rows["slow"].iloc[0])).stats
    _same(rows, alone)
    assert len(heatmap) == 16 and heatmap.max() == rows["Sharpe Ratio"].iloc[0]
    assert study.best_value == best["Sharpe Ratio"] == rows["Sharpe Ratio"].iloc[0]


def test_a_walk_forward_searches_each_train_window_and_with_every_set_is_the_grids(daily):
    bt = tickstep.Backtest(daily, SmaCross, cash=100_000)
    ask = dict(train="365D", test="180D", warmup="60D", maximize="Return [%]", cache=False,
               executor="sequential", fast=range(2, 30), slow=range(10, 80, 2),
               constraint=fast_below_slow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        searched = bt.walk_forward(method="optuna", max_tries=12, **ask)
        again = bt.walk_forward(method="optuna", max_tries=12, **ask)
        small = dict(ask, fast=[5, 10], slow=[20, 40])
        every = bt.walk_forward(method="optuna", max_tries=4, **small)
        grid = bt.walk_forward(**small)
    assert_frame_equal(searched.windows, again.windows)
    assert (searched.windows["fast"] < searched.windows["slow"]).all()
    assert_frame_equal(every.windows, grid.windows)
    pd.testing.assert_series_equal(every.stats, grid.stats)
    # Each window's in-sample objective is the best its own search found: a search of
    # that train window alone (the same seed) finds it.
    w = searched.windows.iloc[0]
    train = tickstep.Backtest(daily, SmaCross, cash=100_000, start=w["train_start"] - pd.Timedelta("60D"),
                              trade_start=w["train_start"], end=w["train_end"] - pd.Timedelta(1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = train.optimize(method="optuna", max_tries=12, maximize="Return [%]", cache=False,
                              executor="sequential", fast=range(2, 30), slow=range(10, 80, 2),
                              constraint=fast_below_slow)
    assert (rows["fast"].iloc[0], rows["slow"].iloc[0]) == (w["fast"], w["slow"])
    assert rows["Return [%]"].iloc[0] == pytest.approx(w["in_sample"])


def test_multibacktest_optimize_searches_each_frame():
    from tickstep.lib import MultiBacktest

    def frame(seed):
        close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, 400)))
        return pd.DataFrame({"Open": close, "High": close * 1.01, "Low": close * 0.99,
                             "Close": close, "Volume": 1_000.0},
                            index=pd.date_range("2020-01-01", periods=400, freq="D"))

    frames = [frame(1), frame(2)]
    multi = MultiBacktest(frames, SmaCross, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        heatmaps = multi.optimize(method="optuna", max_tries=8, constraint=fast_below_slow,
                                  **GRID)
    assert list(heatmaps.columns) == [0, 1]
    assert (heatmaps.notna().sum() == 8).all()


# ---- refusals --------------------------------------------------------------------------------


@pytest.mark.parametrize(("ask", "message"), [
    (dict(method="sambo", max_tries=10), r"method='sambo': 'grid' .* 'optuna' .*backtesting.py's 'sambo' is not built in"),
    (dict(method="optuna"), r"method='optuna': needs max_tries=, how many parameter sets"),
    (dict(method=42, max_tries=10), r"method=int: 'grid'"),
    (dict(method="optuna", max_tries=0), r"max_tries=0: must be a whole number"),
    (dict(method="optuna", max_tries=10, random_state=-1), r"random_state=-1: must be a whole number"),
    (dict(method="optuna", max_tries=10, return_optimization=1), r"return_optimization=1: True or False"),
])
def test_a_search_is_refused_by_name_before_any_run(daily, ask, message):
    with pytest.raises(tickstep.ConfigError, match=message):
        run_batch(SmaCross, daily, params=GRID, portfolio=True, cache=False, **ask)


def test_a_list_of_sets_cannot_be_searched_by_a_model(daily):
    with pytest.raises(tickstep.ConfigError, match=r"draws from ranges \(\{name: values\}\), not a list"):
        run_batch(SmaCross, daily, params=[{"fast": 5}, {"fast": 10}], method="optuna",
                  max_tries=1, cache=False)


def test_optimize_refuses_return_optimization_of_a_grid_and_takes_a_strategys_method_parameter(daily):
    bt = tickstep.Backtest(daily, SmaCross, cash=100_000)
    with pytest.raises(tickstep.ConfigError, match=r"return_optimization=True\): the study of a model"):
        bt.optimize(return_optimization=True, fast=[5, 10], slow=[20, 40], cache=False)

    class WithMethod(SmaCross):
        method = "a"

    bt = tickstep.Backtest(daily, WithMethod, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = bt.optimize(method=["a", "b"], fast=[5], slow=[20], cache=False,
                           executor="sequential")
    assert sorted(rows["method"]) == ["a", "b"]


# ---- the command line and the service -------------------------------------------------------


def test_the_command_line_searches_with_method_optuna(tmp_path, capsys):
    from tickstep.cli import main

    store = tmp_path / "m.duckdb"
    with td.Store(store, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=2, days=300, seed=3))
    out = tmp_path / "rows.csv"
    code = main(["batch", "sma_cross", "--data", str(store), "-p", "fast=2,4,6,8,10,12",
                  "-p", "slow=20,30,40,50", "--method", "optuna", "--max-tries", "9",
                  "--round-size", "4", "--no-cache", "--out", str(out), "--sequential"])
    assert code == 0, capsys.readouterr()
    rows = pd.read_csv(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        expected = run_batch("sma_cross", str(store), params={"fast": [2, 4, 6, 8, 10, 12],
                                                              "slow": [20, 30, 40, 50]},
                             method="optuna", max_tries=9, round_size=4, cache=False)
    assert len(rows) == 18
    assert sorted(zip(rows["symbols"], rows["fast"], rows["slow"])) == \
        sorted(zip(expected["symbols"], expected["fast"], expected["slow"]))
    capsys.readouterr()
    assert main(["batch", "sma_cross", "--data", str(store), "-p", "fast=2,4",
                 "--method", "optuna"]) != 0
    assert "needs max_tries=" in capsys.readouterr().err


def test_a_batch_request_takes_method_and_maximize_and_refuses_them_by_field():
    from tickstep.service.models import BatchRequest, Problem, check_batch

    def check(**body):
        return check_batch(BatchRequest(strategy="sma_cross", **body), store_symbols=["A", "B"],
                           max_jobs=1000, max_symbols=10)

    _, jobs = check(params={"fast": [2, 4, 6, 8], "slow": [20, 30, 40]}, method="optuna",
                    max_tries=5, maximize="Return [%]")
    assert jobs == 10
    with pytest.raises(Problem) as no_tries:
        check(params={"fast": [2, 4]}, method="optuna")
    assert no_tries.value.loc == ("body", "method") and "needs max_tries=" in str(no_tries.value)
    with pytest.raises(Problem) as unknown:
        check(params={"fast": [2, 4]}, maximize="Sharpe")
    assert unknown.value.loc == ("body", "maximize") and "Sharpe Ratio" in str(unknown.value)
    from tickstep.service.runner import batch_arguments

    assert batch_arguments(json.loads(json.dumps({"method": "optuna", "maximize": "Return [%]"})),
                           "s.duckdb")["method"] == "optuna"
    assert batch_arguments({}, "s.duckdb")["method"] == "grid"


def test_a_streamed_backtests_search_runs_the_sets_and_rows_of_the_one_in_memory(tmp_path):
    # Each set streams its bars from the store; the sampler is told the same objectives,
    # so it proposes the same sets, and every row is the in-memory row.
    store = tmp_path / "m.duckdb"
    with td.Store(store, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=3, days=400, seed=5))
    ask = dict(method="optuna", max_tries=10, random_state=2, maximize="Return [%]",
               cache=False, executor="sequential", fast=range(2, 20), slow=range(20, 60, 5),
               constraint=fast_below_slow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        with td.open_store(str(store), read_only=True) as opened:
            held = tickstep.Backtest(opened, SmaCross, cash=100_000).optimize(**ask)
            streamed = tickstep.Backtest(opened, SmaCross, cash=100_000,
                                         stream="30D").optimize(**ask)
    _same(held, streamed)


def test_rounds_of_the_users_size_and_their_refusals(daily):
    params = {"a": range(0, 30), "b": range(0, 30)}

    def objective(p):
        return -((p["a"] - 21) ** 2 + (p["b"] - 4) ** 2)

    for size in (1, 3, 20):
        search = search_of("optuna", params, None, 25, 0, dict, size)()
        rounds = []
        while sets := search.propose():
            rounds.append(len(sets))
            search.tell([objective(p) for p in sets])
        assert rounds == [size] * (25 // size) + ([25 % size] if 25 % size else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        ask = dict(params=GRID, portfolio=True, constraint=fast_below_slow, max_tries=12,
                   method="optuna", cache=False, executor="sequential")
        pd.testing.assert_frame_equal(
            run_batch(SmaCross, daily, round_size=4, **ask).drop(columns="run_time"),
            run_batch(SmaCross, daily, round_size=4, **ask).drop(columns="run_time"))
        rows = tickstep.Backtest(daily, SmaCross, cash=100_000).optimize(
            method="optuna", max_tries=12, round_size=4, cache=False, executor="sequential",
            constraint=fast_below_slow, **GRID)
    assert len(rows) == 12
    with pytest.raises(tickstep.ConfigError, match=r"round_size=4: the rounds of a model-based"):
        run_batch(SmaCross, daily, params=GRID, round_size=4, cache=False)
    with pytest.raises(tickstep.ConfigError, match=r"round_size=0: how many sets"):
        run_batch(SmaCross, daily, params=GRID, method="optuna", max_tries=5, round_size=0,
                  cache=False)


def test_daily_returns_kept_by_every_run_path_are_the_runs_own(daily, tmp_path):
    # In memory on worker processes, a SignalStrategy's native grid, and streamed from a
    # store: each row's daily returns are those of its set run alone.
    from tickstep.significance import DAILY_RETURNS

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        native = run_batch(SignalCross, daily, params={"fast": [3, 5], "slow": [20, 40]},
                           portfolio=True, cache=False, returns=True)
        for _, row in native.iterrows():
            alone = tickstep.Backtest(daily, SignalCross).run(fast=int(row["fast"]),
                                                               slow=int(row["slow"]))
            pd.testing.assert_series_equal(row[DAILY_RETURNS], alone.daily_returns())
        store = tmp_path / "m.duckdb"
        with td.Store(store, read_only=False) as s:
            s.ingest(td.sample_daily(symbols=3, days=300, seed=5))
        with td.open_store(str(store), read_only=True) as opened:
            held = tickstep.Backtest(opened, SmaCross).optimize(
                fast=[5, 10], slow=[30, 50], returns=True, cache=False)
            streamed = tickstep.Backtest(opened, SmaCross, stream="20D").optimize(
                fast=[5, 10], slow=[30, 50], returns=True, cache=False, executor="sequential")
    assert len(held) == len(streamed) == 4
    for (_, a), (_, b) in zip(held.iterrows(), streamed.iterrows()):
        pd.testing.assert_series_equal(a[DAILY_RETURNS], b[DAILY_RETURNS])
