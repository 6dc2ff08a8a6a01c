"""Several objectives: a batch's rows ranked by Pareto dominance (tickstep.batch.objectives).

The ranks are held to the definition written out here by brute force (a set is on the
k-th front when every set dominating it is on an earlier one, and one is on the (k-1)-th),
on random points with ties and undefined values (hypothesis) and on real grids; the rows'
order, the per-group ranking, the multi-objective optuna search, the command line and the
refusals by name.
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from hypothesis import given, settings
from hypothesis import strategies as st
from tickstep.batch import run_batch
from tickstep.batch.objectives import PARETO_RANK, Objective, pareto_ranks
from tickstep.strategies import SmaCross


def dominates(a, b) -> bool:
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def reference_ranks(points) -> list[float]:
    """Fronts peeled by the definition: each round, the points left that no point left
    dominates (an all-pairs check)."""
    ranks = [np.nan] * len(points)
    left = [i for i, p in enumerate(points) if all(np.isfinite(p))]
    rank = 1
    while left:
        front = [i for i in left if not any(dominates(points[j], points[i]) for j in left)]
        for i in front:
            ranks[i] = float(rank)
        left = [i for i in left if i not in front]
        rank += 1
    return ranks


def same(a, b) -> bool:
    return np.array_equal(np.asarray(a, float), np.asarray(b, float), equal_nan=True)


values = st.one_of(st.integers(-3, 3).map(float), st.just(np.nan), st.just(np.inf))


@settings(max_examples=300, deadline=None)
@given(st.integers(1, 4).flatmap(
    lambda k: st.lists(st.tuples(*[values] * k), min_size=0, max_size=40)))
def test_pareto_ranks_are_the_fronts_peeled_by_definition(points):
    # Few distinct values: many ties and equal points (which share a rank); NaN and
    # infinite values leave a point unranked.
    k = len(points[0]) if points else 2
    got = pareto_ranks(np.array(points, dtype=float).reshape(len(points), k))
    assert same(got, reference_ranks(points))


@settings(max_examples=500, deadline=None)
@given(st.lists(st.tuples(*[st.integers(0, 3).map(float)] * 3), min_size=0, max_size=60))
def test_three_objectives_rank_by_the_definition(points):
    # Three objectives take their own path (a staircase per front): few distinct values,
    # so equal points, equal pairs and steps replaced are common.
    got = pareto_ranks(np.array(points, dtype=float).reshape(len(points), 3))
    assert same(got, reference_ranks(points))


def test_three_objectives_rank_as_the_general_path_on_many_points():
    # A fourth objective equal for every point changes no dominance and takes the general
    # path: the same ranks on thousands of points, ties included (values rounded).
    for seed in range(3):
        points = np.round(np.random.default_rng(seed).normal(size=(3000, 3)), 1)
        got = pareto_ranks(points)
        assert np.nanmax(got) > 10
        np.testing.assert_array_equal(got, pareto_ranks(np.c_[points, np.zeros(3000)]))


def test_pareto_ranks_by_hand():
    points = np.array([[3.0, 1.0], [1.0, 3.0], [2.0, 2.0], [2.0, 1.0], [1.0, 1.0],
                       [2.0, 2.0], [0.0, 0.0], [np.nan, 5.0]])
    # (3,1), (1,3) and both (2,2) are beaten by none; (2,1) only by the first front;
    # (1,1) by (2,1); (0,0) by all; NaN: no rank.
    assert same(pareto_ranks(points), [1, 1, 1, 2, 3, 1, 4, np.nan])


@pytest.fixture(scope="module")
def market():
    return td.example_daily()


def objectives_of(rows: pd.DataFrame, directions: dict[str, str]) -> np.ndarray:
    signs = [1.0 if d == "max" else -1.0 for d in directions.values()]
    return rows[list(directions)].to_numpy(dtype=float) * signs


def check_ranked(rows: pd.DataFrame, directions: dict[str, str]) -> None:
    """Each group's ranks are the brute-force ranks of its rows' objectives, and the rows
    run by (rank, first objective best first, job), unranked last."""
    for _, group in rows.groupby("symbols", sort=False):
        points = [tuple(p) for p in objectives_of(group, directions)]
        assert same(group[PARETO_RANK], reference_ranks(points))
    first = objectives_of(rows, directions)[:, 0]
    key = list(zip(rows[PARETO_RANK].fillna(np.inf), -np.nan_to_num(first, nan=-np.inf),
                   rows.index))
    assert key == sorted(key)


def test_two_objectives_rank_an_optimize_by_pareto_front(market):
    bt = tickstep.Backtest(market, SmaCross, cash=100_000)
    grid = dict(fast=range(2, 30, 3), slow=range(10, 100, 10), constraint=lambda p: p.fast < p.slow)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.RejectedOrderWarning)
        single = bt.optimize(**grid, maximize="Return [%]", cache=False)
        both = bt.optimize(**grid, maximize=["Return [%]", "Max. Drawdown [%]"], cache=False)
    directions = {"Return [%]": "max", "Max. Drawdown [%]": "max"}
    check_ranked(both, directions)
    assert both[PARETO_RANK].min() == 1 and both[PARETO_RANK].max() > 2
    # The same runs as one objective's, in another order; the best return is on the front.
    cols = ["fast", "slow", "Return [%]", "Max. Drawdown [%]", "# Trades"]
    pd.testing.assert_frame_equal(both[cols].sort_index(), single[cols].sort_index(),
                                  check_exact=True)
    assert both.iloc[0]["Return [%]"] == single.iloc[0]["Return [%]"]
    # No set off the front beats a front set by both objectives, and every set off the
    # front is beaten by one on it.
    front = both[both[PARETO_RANK] == 1]
    points = objectives_of(both, directions)
    on_front = points[both[PARETO_RANK].to_numpy() == 1]
    for p, rank in zip(points, both[PARETO_RANK]):
        beaten = any(dominates(f, p) for f in on_front)
        assert beaten == (rank > 1)
    assert len(front) >= 2


def test_a_direction_each_and_a_single_minimised_objective(market):
    bt = tickstep.Backtest(market, SmaCross, cash=100_000)
    grid = dict(fast=[5, 10, 20], slow=[30, 60, 90])
    directions = {"Return [%]": "max", "Volatility (Ann.) [%]": "min"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.RejectedOrderWarning)
        rows = bt.optimize(**grid, maximize=directions, cache=False)
        calm = bt.optimize(**grid, maximize={"Volatility (Ann.) [%]": "min"}, cache=False)
    check_ranked(rows, directions)
    # One objective minimised: ascending, no rank column.
    assert PARETO_RANK not in calm.columns
    assert calm["Volatility (Ann.) [%]"].is_monotonic_increasing
    assert calm.iloc[0]["Volatility (Ann.) [%]"] == rows["Volatility (Ann.) [%]"].min()


def test_each_symbol_group_is_ranked_alone(market):
    symbols = list(market.symbols)[:3]
    directions = {"Sharpe Ratio": "max", "# Trades": "min"}
    kwargs = dict(params={"oversold": [20, 25, 30, 35], "overbought": [65, 70, 75]},
                  maximize=directions, cache=False, executor="sequential", on_reject="ignore")
    rows = run_batch("rsi_mean_reversion", market, symbols=symbols, **kwargs)
    check_ranked(rows, directions)
    for symbol in symbols:
        alone = run_batch("rsi_mean_reversion", market, symbols=[symbol], **kwargs)
        mine = rows[rows["symbols"] == symbol]
        assert sorted(zip(mine["oversold"], mine["overbought"], mine[PARETO_RANK])) == \
            sorted(zip(alone["oversold"], alone["overbought"], alone[PARETO_RANK]))


def test_a_run_without_every_objective_has_no_rank_and_comes_last(market):
    class SometimesFails(SmaCross):
        def init(self):
            if self.fast == 7:
                raise RuntimeError("no fast 7 here")
            super().init()

    bt = tickstep.Backtest(market, SometimesFails, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = bt.optimize(fast=[3, 7, 12], slow=[20, 40], cache=False,
                           executor="sequential", maximize=["Sharpe Ratio", "Return [%]"])
    failed = rows[rows["status"] != "ok"]
    assert len(failed) == 2 and failed[PARETO_RANK].isna().all()
    assert list(rows.index[-2:]) == list(failed.index)
    assert rows[rows["status"] == "ok"][PARETO_RANK].notna().all()


def test_a_multi_objective_search_is_optunas_and_its_front_is_rank_one(market):
    pytest.importorskip("optuna")
    bt = tickstep.Backtest(market, SmaCross, cash=100_000)
    wide = dict(fast=range(2, 40, 2), slow=range(10, 120, 5), constraint=lambda p: p.fast < p.slow)
    directions = {"Return [%]": "max", "Volatility (Ann.) [%]": "min"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.RejectedOrderWarning)
        rows, study = bt.optimize(**wide, maximize=directions, method="optuna", max_tries=30,
                                  return_optimization=True, cache=False)
        again = bt.optimize(**wide, maximize=directions, method="optuna", max_tries=30,
                            cache=False)
    import optuna

    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE,
                                optuna.study.StudyDirection.MINIMIZE]
    assert len(rows) == 30
    check_ranked(rows, directions)
    front = {tuple(t.user_attrs["params"][n] for n in ("fast", "slow")) for t in study.best_trials}
    ranked_first = set(zip(rows.loc[rows[PARETO_RANK] == 1, "fast"],
                           rows.loc[rows[PARETO_RANK] == 1, "slow"]))
    assert front == ranked_first
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            row = rows[(rows["fast"] == t.user_attrs["params"]["fast"])
                       & (rows["slow"] == t.user_attrs["params"]["slow"])].iloc[0]
            assert t.values == [row["Return [%]"], row["Volatility (Ann.) [%]"]]
    # The same seed, the same sets.
    assert sorted(zip(rows["fast"], rows["slow"])) == sorted(zip(again["fast"], again["slow"]))


@pytest.mark.parametrize(("maximize", "words"), [
    (["Sharpe Ratio", "Sharpe"], ["'Sharpe' is not a statistic", "did you mean 'Sharpe Ratio'"]),
    ({"Return [%]": "up"}, ["direction of 'Return [%]'", "'max' or 'min'"]),
    (["Return [%]", lambda s: 1.0], ["is not a statistic's name"]),
    (["Return [%]", "Return [%]"], ["names a statistic twice"]),
    ([], ["names no statistic"]),
    (3, ["maximize=3", "several statistics"]),
])
def test_bad_objectives_are_refused_by_name(market, maximize, words):
    with pytest.raises(tickstep.ConfigError) as info:
        run_batch(SmaCross, market, params={"fast": [5]}, maximize=maximize, cache=False)
    for word in words:
        assert word in str(info.value)


def test_what_shows_one_objective_refuses_several(market):
    bt = tickstep.Backtest(market, SmaCross, cash=100_000)
    several = ["Return [%]", "Max. Drawdown [%]"]
    with pytest.raises(tickstep.ConfigError, match="heatmap shows one value per set"):
        bt.optimize(fast=[5, 10], slow=[30], maximize=several, return_heatmap=True, cache=False)
    with pytest.raises(tickstep.ConfigError, match="walk-forward trades one set per test window"):
        bt.walk_forward(train="365D", test="180D", fast=[5, 10], maximize=several, cache=False)
    from tickstep.lib import MultiBacktest

    whole = market.to_frame()
    frames = [whole[whole["symbol"] == s] for s in list(market.symbols)[:2]]
    with pytest.raises(tickstep.ConfigError, match="MultiBacktest.optimize"):
        MultiBacktest(frames, SmaCross).optimize(fast=[5, 10], maximize=several)


def test_objective_reads_a_run(market):
    objective = Objective({"Return [%]": "max", "Avg. Trade Duration": "min"})
    stats = {"Return [%]": 12.5, "Avg. Trade Duration": pd.Timedelta(hours=36)}
    assert objective.values({"status": "ok", "stats": stats}) == (12.5, 36 * 3600.0)
    assert same(objective.values({"status": "error", "stats": {}}), [np.nan, np.nan])
    assert objective.directions == ["maximize", "minimize"] and objective.several
    assert not Objective("Sharpe Ratio").several


def test_the_command_line_ranks_by_several(tmp_path, capsys):
    from tickstep.cli import main

    store = tmp_path / "m.duckdb"
    with td.Store(store, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=2, days=300, seed=7))
    out = tmp_path / "rows.csv"
    capsys.readouterr()
    code = main(["batch", "sma_cross", "--data", str(store), "-p", "fast=5,10,20",
                 "-p", "slow=30,60", "--by", "Return [%]", "--by", "Volatility (Ann.) [%]:min",
                 "--sequential", "--no-cache", "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == 0, err
    assert "Pareto Rank" in printed and "Volatility (Ann.) [%]" in printed
    got = pd.read_csv(out)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = run_batch("sma_cross", str(store), params={"fast": [5, 10, 20], "slow": [30, 60]},
                             cache=False, executor="sequential",
                             maximize={"Return [%]": "max", "Volatility (Ann.) [%]": "min"})
    check_ranked(got.set_index("job"), {"Return [%]": "max", "Volatility (Ann.) [%]": "min"})
    assert list(zip(got["symbols"], got["fast"], got["slow"], got[PARETO_RANK])) == \
        list(zip(expected["symbols"], expected["fast"], expected["slow"], expected[PARETO_RANK]))
    bad = main(["batch", "sma_cross", "--data", str(store), "-p", "fast=5",
                "--by", "Return [%]:up"])
    assert bad == 2
    assert "STATISTIC:max or STATISTIC:min" in capsys.readouterr().err


def test_itertools_reference_agrees_on_a_small_exhaustive_case():
    # Every 2-objective point set of 4 points over {0, 1}: the peeling and the definition.
    for points in itertools.product(itertools.product([0.0, 1.0], repeat=2), repeat=4):
        assert same(pareto_ranks(np.array(points)), reference_ranks(points))


def test_the_pareto_plot_draws_every_set_and_its_front(market):
    pytest.importorskip("plotly")
    from tickstep.report import pareto_table, plot_pareto

    bt = tickstep.Backtest(market, SmaCross, cash=100_000)
    directions = {"Return [%]": "max", "Volatility (Ann.) [%]": "min"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.RejectedOrderWarning)
        # Ranked by three objectives; the plot ranks by its two alone.
        rows = bt.optimize(fast=range(2, 30, 3), slow=range(10, 100, 10), cache=False,
                           maximize={**directions, "Sharpe Ratio": "max"})
    table = pareto_table(rows, directions)
    ok = rows[rows["status"] == "ok"]
    assert len(table) == len(ok) and list(table.columns) == ["fast", "slow", *directions, PARETO_RANK]
    points = [tuple(p) for p in objectives_of(table, directions)]
    assert same(table[PARETO_RANK], reference_ranks(points))
    fig = plot_pareto(rows, directions)
    sets, front = fig.data
    assert sorted(zip(sets.x, sets.y)) == sorted(zip(ok["Return [%]"], ok["Volatility (Ann.) [%]"]))
    on_front = table[table[PARETO_RANK] == 1]
    assert list(zip(front.x, front.y)) == sorted(zip(on_front["Return [%]"],
                                                     on_front["Volatility (Ann.) [%]"]))
    first = table.iloc[0]
    assert f"fast={first['fast']}<br>slow={first['slow']}<br>Pareto rank 1" in sets.text
    assert f"{len(on_front)} of {len(table)} sets" in fig.layout.title.text
    # Several groups: one is named; a third objective or one alone is refused.
    many = run_batch(SmaCross, market, params={"fast": [5, 10], "slow": [30, 60]}, cache=False,
                     executor="sequential", on_reject="ignore")
    with pytest.raises(ValueError, match="name the one to draw"):
        pareto_table(many, directions)
    one = pareto_table(many, directions, symbols=many["symbols"].iloc[0])
    assert len(one) == 4
    with pytest.raises(KeyError, match="no such group"):
        pareto_table(many, directions, symbols="NOPE")
    with pytest.raises(tickstep.ConfigError, match="two axes"):
        plot_pareto(rows, [*directions, "Sharpe Ratio"])
    with pytest.raises(tickstep.ConfigError, match="two axes"):
        plot_pareto(rows, "Return [%]")


def test_an_optimisation_report_says_what_it_can_and_refuses_what_it_cannot(market, tmp_path):
    pytest.importorskip("plotly")
    from tickstep.report import write_optimization_report

    bt = tickstep.Backtest(market, SmaCross, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.RejectedOrderWarning)
        rows = bt.optimize(fast=[5, 10], slow=[30, 60], cache=False)
    text = write_optimization_report(rows, tmp_path / "a.html").read_text()
    # One objective: the heatmap, no Pareto front; no daily returns: says how to get them.
    assert 'id="fig-heatmap"' in text and 'id="fig-pareto"' not in text
    assert "run optimize(..., returns=True)" in text
    assert text.count("<tr>") - 1 == len(rows)  # the best table: a header and every set
    many = run_batch(SmaCross, market, params={"fast": [5, 10], "slow": [30, 60]}, cache=False,
                     executor="sequential", on_reject="ignore")
    with pytest.raises(ValueError, match="name the one to draw"):
        write_optimization_report(many, tmp_path / "b.html")
    symbol = many["symbols"].iloc[0]
    text = write_optimization_report(many, tmp_path / "b.html", symbols=symbol, top=2).read_text()
    assert f"on {symbol}" in text and text.count("<tr>") - 1 == 2
    with pytest.raises(tickstep.ConfigError, match="top=0"):
        write_optimization_report(rows, tmp_path / "c.html", top=0)
    with pytest.raises(ValueError, match="give both parameters"):
        write_optimization_report(rows, tmp_path / "c.html", x="fast")
    with pytest.raises(KeyError, match="no column 'score'"):
        write_optimization_report(rows, tmp_path / "c.html", maximize=lambda s: 1.0)
