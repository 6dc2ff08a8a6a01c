"""Optimisation heatmaps: the table behind them by hand, the aggregation rule, the figure."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep.report import heatmap_table, plot_heatmap
from tickstep.strategies import SmaCross


def grid_rows() -> pd.DataFrame:
    # fast x slow x stop, one row per set; one failed run (its value must not count).
    rows = []
    for fast in (5, 10):
        for slow in (20, 40):
            for stop in (1, 2, 3):
                rows.append({"fast": fast, "slow": slow, "stop": stop, "symbols": "portfolio",
                             "Return [%]": fast + slow / 10 + stop, "status": "ok"})
    frame = pd.DataFrame(rows)
    frame.loc[(frame.fast == 10) & (frame.slow == 40) & (frame.stop == 3), ["Return [%]", "status"]] = [999.0, "error"]
    return frame


def test_max_is_the_best_reachable_value_per_pair():
    table = heatmap_table(grid_rows(), x="fast", y="slow", metric="Return [%]")
    # max over stop: fast + slow/10 + 3, except (10, 40) whose stop=3 run failed -> stop 2
    assert list(table.index) == [20, 40] and list(table.columns) == [5, 10]
    np.testing.assert_allclose(table.to_numpy(), [[5 + 2 + 3, 10 + 2 + 3], [5 + 4 + 3, 10 + 4 + 2]])


def test_other_aggregations():
    mean = heatmap_table(grid_rows(), x="fast", y="slow", metric="Return [%]", agg="mean")
    np.testing.assert_allclose(mean.to_numpy(), [[5 + 2 + 2, 10 + 2 + 2], [5 + 4 + 2, 10 + 4 + 1.5]])
    low = heatmap_table(grid_rows(), x="stop", y="fast", metric="Return [%]", agg="min")
    assert list(low.columns) == [1, 2, 3]
    np.testing.assert_allclose(low.loc[5].to_numpy(), [5 + 2 + 1, 5 + 2 + 2, 5 + 2 + 3])
    spread = heatmap_table(grid_rows(), x="fast", y="slow", metric="Return [%]",
                           agg=lambda s: s.max() - s.min())
    np.testing.assert_allclose(spread.to_numpy(), [[2, 2], [2, 1]])


def test_refusals_name_the_column():
    rows = grid_rows()
    with pytest.raises(KeyError, match="did you mean 'fast'"):
        heatmap_table(rows, x="fats", y="slow", metric="Return [%]")
    with pytest.raises(KeyError, match="no column 'Sharp'"):
        heatmap_table(rows, x="fast", y="slow", metric="Sharp")
    with pytest.raises(ValueError, match="two different"):
        heatmap_table(rows, x="fast", y="fast", metric="Return [%]")
    with pytest.raises(ValueError, match="agg='sum'"):
        heatmap_table(rows, x="fast", y="slow", metric="Return [%]", agg="sum")


def test_heatmap_of_a_real_optimisation():
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    rows = bt.optimize(fast=[5, 10, 20], slow=[30, 60], cache=False, executor="sequential",
                       maximize="Return [%]")
    fig = plot_heatmap(rows, x="fast", y="slow", metric="Return [%]")
    (trace,) = fig.data
    assert trace.type == "heatmap"
    assert list(trace.x) == ["5", "10", "20"] and list(trace.y) == ["30", "60"]
    for i, slow in enumerate((30, 60)):
        for j, fast in enumerate((5, 10, 20)):
            want = rows[(rows.fast == fast) & (rows.slow == slow)]["Return [%]"].iloc[0]
            assert trace.z[i][j] == pytest.approx(want)
    # A callable objective leaves a "score" column: the default metric then.
    scored = bt.optimize(fast=[5, 10], slow=[30], cache=False, executor="sequential",
                         maximize=lambda s: -s["Max. Drawdown [%]"])
    assert heatmap_table(scored, x="fast", y="slow").to_numpy().ravel().tolist() == pytest.approx(
        [-scored.set_index("fast").loc[f, "Max. Drawdown [%]"] for f in (5, 10)])


def test_a_signal_grid_s_table_is_read_by_the_levels_of_its_index():
    data = tickstep.data.example_daily()
    closes = data.to_frame().pivot(index="ts", columns="symbol", values="close")

    def crossing(f, s):
        fast, slow = closes.rolling(f).mean(), closes.rolling(s).mean()
        return (fast > slow) & (fast.shift() <= slow.shift()), (fast < slow) & (fast.shift() >= slow.shift())

    sets = {(f, s): crossing(f, s) for f in (5, 10, 20) for s in (30, 60)}
    frames = [pd.concat({k: v[j] for k, v in sets.items()}, axis=1, names=["fast", "slow", "symbol"])
              for j in (0, 1)]
    bt = tickstep.Backtest(data, cash=100_000, on_reject="ignore")
    table = bt.run_signal_grid(entries=frames[0], exits=frames[1], size=0.1)
    heat = heatmap_table(table, x="fast", y="slow", metric="Return [%]")
    assert list(heat.index) == [30, 60] and list(heat.columns) == [5, 10, 20]
    for (f, s), value in table["Return [%]"].items():
        assert heat.loc[s, f] == value
    with pytest.raises(KeyError, match="no parameter 'fats'"):
        heatmap_table(table, x="fats", y="slow", metric="Return [%]")


def test_the_optimisation_reports_reality_check_is_against_the_benchmark_given(tmp_path):
    # Cash by default; a buy-and-hold run's daily returns called by their name (or "the
    # benchmark" for a run's unrenamed ones); a daily return. Each p-value is
    # reality_check's on the sets that ran, against the same benchmark.
    import html
    import re
    import warnings

    from tickstep.report import write_optimization_report
    from tickstep.significance import reality_check
    from tickstep.strategies import BuyAndHold

    data = tickstep.data.example_daily()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = tickstep.Backtest(data, SmaCross, cash=100_000).optimize(
            fast=[5, 10, 20], slow=[30, 60], returns=True, cache=False, executor="sequential")
        hold = tickstep.Backtest(data, BuyAndHold, cash=100_000).run().daily_returns()
    ok = rows[rows["status"] == "ok"]
    cases = ((None, "cash"), (hold.rename("buy & hold"), "buy & hold"),
             (hold, "the benchmark"), (0.0001, "a daily return of 0.0100%"))
    pvalues = set()
    for benchmark, label in cases:
        given = {} if benchmark is None else {"benchmark": benchmark}
        text = write_optimization_report(rows, tmp_path / "r.html", reps=100,
                                         **given).read_text()
        found = reality_check(ok, 0.0 if benchmark is None else benchmark, reps=100, seed=0)
        row = re.escape(f"reality check p-value (no set beats {html.escape(label)})")
        assert re.search(f'<td class="label">{row}</td><td>{found.pvalue:.3f}</td>', text), label
        assert f"whether any set beats {html.escape(label)} at all" in text
        pvalues.add(found.pvalue)
    assert len(pvalues) > 1  # holding is not cash
    with pytest.raises(tickstep.ConfigError, match="benchmark=nan"):
        write_optimization_report(rows, tmp_path / "r.html", benchmark=float("nan"))
