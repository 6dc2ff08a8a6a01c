"""The probabilistic and the deflated Sharpe Ratio: the papers' own example, what the
probabilities mean when simulated (no skill, skill, the best of many), and a run's
figures from its own daily returns."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import tickstep
from hypothesis import given, settings
from hypothesis import strategies as st
from tickstep.metrics import daily_returns, periods_per_year_of_returns
from tickstep.significance import (
    BOOTSTRAP_STATS,
    _psr,
    backtest_overfitting,
    bootstrap_stats,
    deflated_sharpe_ratio,
    expected_max_sharpe_ratio,
    probabilistic_sharpe_ratio,
    reality_check,
)
from tickstep.strategies import SmaCross


def _sharpe(returns: np.ndarray) -> np.ndarray:
    """Annualised Sharpe Ratios of rows of daily returns (ddof=1, 252 a year)."""
    return returns.mean(axis=-1) / returns.std(axis=-1, ddof=1) * math.sqrt(252)


def test_the_deflated_sharpe_ratio_papers_numerical_example():
    # Bailey & López de Prado (2014), "The Deflated Sharpe Ratio", its numerical example:
    # 100 trials whose annualised Sharpe Ratios vary by 0.5, the best 2.5 annualised
    # over 1,250 daily returns with skewness -3 and kurtosis 10: SR0 = 0.1132 a day,
    # DSR = 0.9004.
    trials = np.array([-1.0, 1.0])
    trials = trials / trials.std(ddof=1) * math.sqrt(0.5)  # sample variance 0.5
    luck = expected_max_sharpe_ratio(trials, n_trials=100) / math.sqrt(250)
    assert round(luck, 4) == 0.1132
    assert round(_psr(2.5 / math.sqrt(250), luck, 1250, -3.0, 10.0), 4) == 0.9004


def test_without_skill_the_psr_is_above_095_one_time_in_twenty():
    # 2,000 series of 500 returns with a true Sharpe Ratio of zero: PSR(0) is uniform,
    # so above 0.95 (and below 0.05) in 5% of them, within three binomial deviations.
    rng = np.random.default_rng(7)
    psr = np.array([probabilistic_sharpe_ratio(r) for r in rng.normal(0, 0.01, (2000, 500))])
    sd = math.sqrt(0.05 * 0.95 / 2000)
    assert abs((psr > 0.95).mean() - 0.05) < 3 * sd
    assert abs((psr < 0.05).mean() - 0.05) < 3 * sd
    # Fat tails and skew widen the estimate's spread: the same mean and deviation with
    # negatively skewed returns gives a PSR closer to 1/2.
    normal = rng.normal(0.001, 0.01, 1000)
    skewed = np.where(rng.random(1000) < 0.1, -0.03, 0.00333)
    skewed = (skewed - skewed.mean()) / skewed.std(ddof=1) * normal.std(ddof=1) + normal.mean()
    assert 0.5 < probabilistic_sharpe_ratio(skewed) < probabilistic_sharpe_ratio(normal)


def test_the_best_of_many_without_skill_passes_the_psr_but_not_the_dsr():
    # 300 experiments of 40 strategies without skill (fat-tailed returns): the best one's
    # PSR is above 0.95 most of the time; its DSR, allowing for the choice, at most in
    # 5% of them.
    rng = np.random.default_rng(11)
    psr_passes = dsr_passes = 0
    for _ in range(300):
        returns = rng.standard_t(5, (40, 750)) * 0.01
        tried = _sharpe(returns)
        best = returns[np.argmax(tried)]
        psr_passes += probabilistic_sharpe_ratio(best) > 0.95
        dsr_passes += deflated_sharpe_ratio(best, tried) > 0.95
    assert psr_passes / 300 > 0.5
    assert dsr_passes / 300 <= 0.05


def test_a_strategy_with_skill_among_many_passes_the_dsr_mostly():
    # One strategy of 40 has a true Sharpe Ratio of 3: chosen, it passes the DSR at 0.95
    # in most experiments.
    rng = np.random.default_rng(5)
    passes = 0
    for _ in range(200):
        returns = rng.normal(0, 0.01, (40, 750))
        returns[0] += 3 / math.sqrt(252) * 0.01
        tried = _sharpe(returns)
        passes += deflated_sharpe_ratio(returns[np.argmax(tried)], tried) > 0.95
    assert passes / 200 > 0.6


def test_more_trials_deflate_more_and_one_trial_is_the_psr():
    rng = np.random.default_rng(3)
    daily = rng.normal(0.0008, 0.01, 750)
    tried = rng.normal(0.0, 0.5, 30)
    values = [deflated_sharpe_ratio(daily, tried, n_trials=n) for n in (1, 2, 10, 100, 1000)]
    assert values[0] == probabilistic_sharpe_ratio(daily)
    assert all(a > b for a, b in zip(values, values[1:]))
    assert expected_max_sharpe_ratio([1.3]) == 0.0  # one trial's expected luck
    # A benchmark above the Sharpe Ratio estimated: below one half.
    sharpe = float(_sharpe(daily))
    assert probabilistic_sharpe_ratio(daily, sharpe + 0.5) < 0.5 < probabilistic_sharpe_ratio(
        daily, sharpe - 0.5)


def test_a_runs_figures_come_from_the_daily_returns_its_sharpe_ratio_is_computed_from(tmp_path):
    data = tickstep.data.example_daily()
    bt = tickstep.Backtest(data, SmaCross, cash=100_000, risk_free_rate=0.02)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = bt.optimize(fast=[5, 10, 15, 20], slow=[30, 50, 80], cache=False,
                           executor="sequential")
        best = bt.run(fast=int(rows["fast"].iloc[0]), slow=int(rows["slow"].iloc[0]))
        every_bar = tickstep.Backtest(data, SmaCross, cash=100_000, risk_free_rate=0.02,
                                      record_every_bar=True).run(
            fast=int(rows["fast"].iloc[0]), slow=int(rows["slow"].iloc[0]))
    daily = best.daily_returns()
    pd.testing.assert_series_equal(daily, every_bar.daily_returns())
    assert daily.iloc[-1] == pytest.approx(best.equity.iloc[-1] / best.equity.iloc[-2] - 1)
    rf = 1.02 ** (1 / 252) - 1
    excess = daily.to_numpy() - rf
    assert excess.mean() / excess.std(ddof=1) * math.sqrt(252) == pytest.approx(
        best.stats["Sharpe Ratio"], rel=1e-12)
    assert best.probabilistic_sharpe() == probabilistic_sharpe_ratio(
        daily.to_numpy(), risk_free_rate=0.02)
    assert best.probabilistic_sharpe(benchmark=1.0) < best.probabilistic_sharpe()
    deflated = best.deflated_sharpe(rows)
    assert deflated == deflated_sharpe_ratio(daily.to_numpy(), rows["Sharpe Ratio"],
                                             risk_free_rate=0.02)
    assert deflated < best.probabilistic_sharpe()
    # A result saved and loaded (or pickled) answers the same.
    import pickle

    for again in (pickle.loads(pickle.dumps(best)), tickstep.load_result(best.save(tmp_path / "r"))):
        assert again.probabilistic_sharpe() == best.probabilistic_sharpe()
        assert again.deflated_sharpe(rows) == deflated
    # A failed run's row is no trial's Sharpe Ratio.
    failed = pd.concat([rows, rows.iloc[[0]].assign(status="error", **{"Sharpe Ratio": 9.0})])
    assert best.deflated_sharpe(failed) == deflated


def test_daily_returns_take_each_days_last_sample_in_the_timezone():
    idx = pd.to_datetime(["2024-01-02 14:00", "2024-01-03 03:00", "2024-01-03 20:00"], utc=True)
    equity = pd.Series([110.0, 99.0, 120.0], index=idx)
    # UTC: two days (the 2nd, the 3rd); New York: 03:00 UTC on the 3rd is the 2nd.
    assert daily_returns(equity, 100.0).round(9).tolist() == [0.1, round(120 / 110 - 1, 9)]
    ny = daily_returns(equity, 100.0, "America/New_York")
    assert ny.round(9).tolist() == [-0.01, round(120 / 99 - 1, 9)]
    assert list(ny.index) == [idx[1], idx[2]]


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: probabilistic_sharpe_ratio([0.01]), ValueError, "at least two daily returns"),
    (lambda: probabilistic_sharpe_ratio([0.01, np.nan, 0.02]), ValueError,
     "1 not finite, the first at position 1"),
    (lambda: probabilistic_sharpe_ratio([0.01, 0.02], periods_per_year=0), tickstep.ConfigError,
     "periods_per_year=0"),
    (lambda: probabilistic_sharpe_ratio([0.01, 0.02], risk_free_rate=-1.5), tickstep.ConfigError,
     "risk_free_rate=-1.5"),
    (lambda: expected_max_sharpe_ratio([np.nan, np.nan]), ValueError, "no Sharpe Ratio"),
    (lambda: expected_max_sharpe_ratio([1.0, 2.0], n_trials=0), tickstep.ConfigError,
     "n_trials=0"),
    (lambda: expected_max_sharpe_ratio(pd.DataFrame({"Return [%]": [1.0]})), ValueError,
     "a 'Sharpe Ratio' column"),
])
def test_bad_input_is_refused_naming_it(call, error, words):
    with pytest.raises(error, match=None) as raised:
        call()
    assert words in str(raised.value)


def test_flat_returns_have_no_probability():
    assert math.isnan(probabilistic_sharpe_ratio([0.01, 0.01, 0.01]))


# ---- the bootstrap ----------------------------------------------------------------------------


def test_each_historys_statistics_are_compute_stats_of_its_equity():
    # One history's figures by the rules of compute_stats: its daily returns as the equity
    # of consecutive weekdays from 100,000, with a risk-free rate.
    from tickstep.metrics import compute_stats
    from tickstep.significance import _history_stats

    path = np.random.default_rng(4).normal(0.0004, 0.012, 300)
    days = pd.bdate_range("2021-01-04", periods=300, tz="UTC") + pd.Timedelta("20h")
    equity = pd.DataFrame({"equity": 100_000 * np.cumprod(1 + path), "gross_exposure": 1.0},
                          index=days)
    start = days[0] - pd.Timedelta(days=1)
    stats = compute_stats(equity, pd.DataFrame(), initial_cash=100_000, risk_free_rate=0.03,
                          periods_per_year=252, start=start, end=days[-1])
    years = (days[-1] - start) / pd.Timedelta(days=1) / 365.25
    ours = dict(zip(BOOTSTRAP_STATS, _history_stats(path, 1.03 ** (1 / 252) - 1, 252, years)))
    for label, value in ours.items():
        assert value == pytest.approx(stats[label], rel=1e-9), label


def test_blocks_as_long_as_the_run_draw_its_days_in_turn_so_its_own_figures():
    # A block of every day: each history is the run's returns from some day on, wrapping
    # around; the order-free figures are the run's own, the drawdown is not.
    data = tickstep.data.example_daily()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        result = tickstep.Backtest(data, SmaCross, cash=100_000, risk_free_rate=0.01).run()
    drawn = result.bootstrap(50, block=10**9, seed=3)  # a new block one day in 10**9
    for label in ("Return [%]", "CAGR [%]", "Volatility (Ann.) [%]", "Sharpe Ratio",
                  "Sortino Ratio"):
        np.testing.assert_allclose(drawn[label], result.stats[label], rtol=1e-9, err_msg=label)
    assert drawn["Max. Drawdown [%]"].nunique() > 1
    assert (drawn["Max. Drawdown [%]"] >= result.stats["Max. Drawdown [%]"] - 1e-9).any()


def test_the_bootstrap_is_repeatable_and_centred_on_the_run():
    data = tickstep.data.example_daily()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        result = tickstep.Backtest(data, SmaCross, cash=100_000).run()
    first = result.bootstrap(300, seed=1)
    pd.testing.assert_frame_equal(first, result.bootstrap(300, seed=1))
    assert not first.equals(result.bootstrap(300, seed=2))
    assert first.attrs["block"] >= 1 and list(first.columns) == list(BOOTSTRAP_STATS)
    # Days drawn independently (block 1): the histories' mean daily return is the run's,
    # so their mean Sharpe Ratio is near the run's (three standard errors).
    iid = result.bootstrap(2000, block=1, seed=5)
    error = iid["Sharpe Ratio"].std() / math.sqrt(len(iid))
    assert abs(iid["Sharpe Ratio"].mean() - result.stats["Sharpe Ratio"]) < 3 * error + 0.05
    low, high = iid["Sharpe Ratio"].quantile([0.05, 0.95])
    assert low < result.stats["Sharpe Ratio"] < high
    assert (iid["Max. Drawdown [%]"] <= 0).all()
    daily = result.daily_returns().to_numpy()
    same = bootstrap_stats(daily, 2000, block=1, seed=5, years=result.stats["Duration"]
                           / pd.Timedelta(days=1) / 365.25, periods_per_year=252)
    pd.testing.assert_frame_equal(iid, same)


@pytest.mark.parametrize(("ask", "words"), [
    ({"n": 0}, "n=0: how many histories"),
    ({"block": 0}, "block=0: the mean block length"),
    ({"block": 2.5}, "block=2.5: the mean block length"),
    ({"seed": -1}, "seed=-1: a whole number >= 0"),
    ({"years": 0.0}, "years=0.0: the span"),
])
def test_a_bootstrap_is_refused_by_its_option(ask, words):
    with pytest.raises(tickstep.ConfigError, match=None) as raised:
        bootstrap_stats(np.full(10, 0.001) + np.arange(10) * 1e-4, **ask)
    assert words in str(raised.value)


def test_a_walk_forwards_stitched_returns_answer_as_a_runs_and_its_report_says_so(tmp_path):
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000,
                           risk_free_rate=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        wf = bt.walk_forward(train="365D", test="180D", warmup="60D", fast=[5, 10, 20],
                             slow=[30, 50], cache=False, executor="sequential")
    daily = wf.daily_returns()
    # The stitched curve's own daily returns: those its Sharpe Ratio is computed from.
    excess = daily.to_numpy() - (1.01 ** (1 / 252) - 1)
    assert excess.mean() / excess.std(ddof=1) * math.sqrt(252) == pytest.approx(
        wf.stats["Sharpe Ratio"], rel=1e-12)
    assert wf.probabilistic_sharpe() == probabilistic_sharpe_ratio(
        daily.to_numpy(), risk_free_rate=0.01)
    drawn = wf.bootstrap(100, block=10**9, seed=1)  # rotations: the order-free figures
    np.testing.assert_allclose(drawn["Sharpe Ratio"], wf.stats["Sharpe Ratio"], rtol=1e-9)
    text = wf.report(tmp_path / "wf.html", bootstrap=100).read_text()
    assert f"Probabilistic Sharpe Ratio: {wf.probabilistic_sharpe():.4f}:" in text
    assert 'id="bootstrap"' in text
    with pytest.raises(tickstep.ConfigError, match=r"report\(bootstrap=True\)"):
        wf.report(tmp_path / "x.html", bootstrap=True)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(seed=st.integers(0, 10_000), n=st.integers(3, 400), scale=st.floats(0.01, 100.0),
       drift=st.floats(-0.002, 0.002), bench=st.floats(-2.0, 2.0))
def test_property_the_psr_ignores_the_returns_scale_and_order_and_falls_with_the_benchmark(
        seed, n, scale, drift, bench):
    # The Sharpe Ratio, skewness and kurtosis do not change when every return is scaled
    # by the same positive number or the days are reordered; a higher benchmark is less
    # likely beaten.
    rng = np.random.default_rng(seed)
    daily = rng.standard_t(4, n) * 0.01 + drift
    psr = probabilistic_sharpe_ratio(daily, bench)
    if math.isnan(psr):
        return
    assert 0.0 <= psr <= 1.0
    assert probabilistic_sharpe_ratio(daily * scale, bench) == pytest.approx(psr, abs=1e-9)
    assert probabilistic_sharpe_ratio(rng.permutation(daily), bench) == pytest.approx(psr, abs=1e-9)
    assert probabilistic_sharpe_ratio(daily, bench + 0.5) <= psr + 1e-12


# ---- the probability of backtest overfitting ---------------------------------------------------


def _pbo_by_hand(matrix: np.ndarray, n_splits: int) -> tuple[float, list[float]]:
    """CSCV written out: every split of the blocks in two halves, pandas' Sharpe Ratio of
    each trial on each half, the in-sample best's rank out of sample (ties averaged; a
    trial flat there, with no Sharpe Ratio, ranks last); a split in which no trial has a
    Sharpe Ratio in sample chooses none and is skipped."""
    import itertools

    frame = pd.DataFrame(matrix)
    blocks = np.array_split(np.arange(len(frame)), n_splits)
    logits = []
    for half in itertools.combinations(range(n_splits), n_splits // 2):
        inside = np.concatenate([blocks[b] for b in half])
        outside = np.concatenate([blocks[b] for b in range(n_splits) if b not in half])
        sharpe_in = frame.iloc[inside].mean() / frame.iloc[inside].std()
        sharpe_out = frame.iloc[outside].mean() / frame.iloc[outside].std()
        if sharpe_in.isna().all():
            continue
        best = int(np.argmax(sharpe_in.fillna(-np.inf).to_numpy()))
        rank = sharpe_out.fillna(-np.inf).rank(method="average").iloc[best]
        share = rank / (frame.shape[1] + 1)
        logits.append(math.log(share / (1 - share)))
    return float(np.mean(np.array(logits) <= 0)) if logits else math.nan, logits


def test_a_split_with_no_set_to_choose_in_sample_is_not_counted():
    # Sets that never traded have flat (zero) returns and no Sharpe Ratio: choosing among
    # them chooses nothing. Every set flat: nothing is judged (it was 1.0, "overfit").
    with pytest.raises(ValueError, match="returns: no split has a set with a Sharpe Ratio in "
                       "sample"):
        backtest_overfitting(pd.DataFrame(np.zeros((90, 4))), n_splits=6)
    # Sets flat over the first three of six blocks (they began trading later): the one
    # split that keeps those three in sample is not counted, the other 19 are, as written
    # out; the split that keeps them out of sample ranks every set alike (none has a
    # Sharpe Ratio there).
    rng = np.random.default_rng(8)
    matrix = rng.normal(0.0003, 0.01, (90, 5))
    matrix[:45] = 0.0
    by_hand, logits = _pbo_by_hand(matrix, 6)
    found = backtest_overfitting(pd.DataFrame(matrix), n_splits=6)
    assert len(found.logits) == len(logits) == 19
    np.testing.assert_allclose(found.logits, logits, rtol=1e-12, atol=1e-12)
    assert found.probability == by_hand
    # The medians are over the splits in which the chosen set has a Sharpe Ratio.
    out = found.out_of_sample
    assert np.isnan(out).sum() == 1
    assert found.medians[1] == pytest.approx(float(np.median(out[~np.isnan(out)])))


@pytest.mark.parametrize("seed", range(4))
def test_the_probability_of_overfitting_is_cscv_written_out(seed):
    rng = np.random.default_rng(seed)
    matrix = rng.normal(0.0003, 0.01, (90, 7))
    if seed == 3:
        matrix = np.round(matrix, 3)  # returns in steps: ties out of sample
        matrix[:, 5] = matrix[:, 4]  # two trials alike
    by_hand, logits = _pbo_by_hand(matrix, 6)
    found = backtest_overfitting(pd.DataFrame(matrix), n_splits=6)
    assert found.probability == by_hand
    np.testing.assert_allclose(found.logits, logits, rtol=1e-12, atol=1e-12)
    assert (found.splits, found.trials, len(found.logits)) == (6, 7, 20)


def test_without_skill_choosing_overfits_half_the_time_with_skill_rarely():
    rng = np.random.default_rng(21)
    noise = [backtest_overfitting(pd.DataFrame(rng.normal(0, 0.01, (1000, 40)))).probability
             for _ in range(12)]
    assert 0.35 < np.mean(noise) < 0.65
    skilled = rng.normal(0, 0.01, (1000, 40))
    skilled[:, 7] += 3 / math.sqrt(252) * 0.01  # a true Sharpe Ratio of 3
    found = backtest_overfitting(pd.DataFrame(skilled))
    # It is chosen in sample in most splits, and then ranks near the top out of sample.
    assert found.probability < 0.2 and found.loss_probability < 0.2
    assert np.median(found.out_of_sample) > 1.0


def test_optimize_keeps_each_sets_daily_returns_for_the_probability_of_overfitting(tmp_path):
    data = tickstep.data.example_daily()
    bt = tickstep.Backtest(data, SmaCross, cash=100_000)
    grid = dict(fast=[5, 10, 20, 40], slow=[50, 100, 150])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = bt.optimize(returns=True, cache=tmp_path / "c.sqlite", **grid)
        again = bt.optimize(returns=True, cache=tmp_path / "c.sqlite", **grid)
        plain = bt.optimize(cache=tmp_path / "c.sqlite", **grid)
        for _, row in rows.iterrows():
            alone = bt.run(fast=int(row["fast"]), slow=int(row["slow"]))
            pd.testing.assert_series_equal(row["Daily Returns"], alone.daily_returns())
    assert again.attrs["batch"]["cached"] == 12 and plain.attrs["batch"]["cached"] == 0
    assert "Daily Returns" not in plain.columns
    for (_, a), (_, b) in zip(rows.iterrows(), again.iterrows()):
        pd.testing.assert_series_equal(a["Daily Returns"], b["Daily Returns"])
    found = backtest_overfitting(rows, n_splits=8)
    matrix = pd.DataFrame({k: s.to_numpy() for k, s in enumerate(rows["Daily Returns"])})
    assert found.probability == backtest_overfitting(matrix, n_splits=8).probability
    with pytest.raises(ValueError, match=r"without a 'Daily Returns' column: run optimize"):
        backtest_overfitting(plain)


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: backtest_overfitting(pd.DataFrame(np.zeros((40, 3))), n_splits=5),
     tickstep.ConfigError, "n_splits=5: the blocks of days, an even whole number"),
    (lambda: backtest_overfitting(pd.DataFrame(np.zeros((20, 3))), n_splits=16), ValueError,
     "20 days cannot make 16 blocks"),
    (lambda: backtest_overfitting(pd.DataFrame(np.zeros((40, 1))), n_splits=4), ValueError,
     "1 trial; overfitting is choosing among two or more"),
    (lambda: backtest_overfitting(pd.DataFrame({"a": [0.1, np.nan] * 20, "b": 0.0}), n_splits=4),
     ValueError, "20 not finite, the first on row 1 of trial 'a'"),
    (lambda: backtest_overfitting(np.zeros((40, 3))), TypeError, "a DataFrame of daily returns"),
])
def test_the_probability_of_overfitting_refuses_bad_input_naming_it(call, error, words):
    with pytest.raises(error) as raised:
        call()
    assert words in str(raised.value)


@pytest.mark.parametrize("timezone", ["Asia/Tokyo", "America/New_York", "UTC"])
def test_a_runs_annualisation_is_its_statistics_in_any_timezone(timezone):
    # The trading days are the calendar days in the run's timezone, east of UTC too: the
    # bootstrap's rotations give back the run's own Sharpe Ratio and volatility.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        result = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000,
                                   timezone=timezone).run()
    drawn = result.bootstrap(5, block=10**9, seed=2)
    for label in ("Sharpe Ratio", "Volatility (Ann.) [%]"):
        np.testing.assert_allclose(drawn[label], result.stats[label], rtol=1e-9, err_msg=label)


# ---- the reality check: does any set beat the benchmark after all were tried? ----------


def _noise(seed: int, days: int = 500, trials: int = 10, mean: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame(np.random.default_rng(seed).normal(mean, 0.01, (days, trials)))


def test_the_reality_check_is_arch_spa_and_stepm_on_losses():
    # The plumbing against arch called directly: losses are minus the returns, the
    # benchmark's too, the same seed and block; StepM's trials named by the columns.
    from arch.bootstrap import SPA, StepM

    trials = _noise(3, days=400, trials=6).rename(columns=lambda k: f"set{k}")
    trials["set2"] += 0.0025
    bench = pd.Series(np.random.default_rng(4).normal(0.0003, 0.008, 400))
    found = reality_check(trials, bench, reps=400, block=7, seed=11)
    spa = SPA(-bench.to_numpy(), -trials.to_numpy(), block_size=7, reps=400,
              seed=np.random.default_rng(11))
    spa.compute()
    assert found.pvalues == {k: float(v) for k, v in spa.pvalues.items()}
    assert found.pvalue == float(spa.pvalues["consistent"])
    stepm = StepM(-bench.to_numpy(), -trials.to_numpy(), size=0.05, block_size=7, reps=400,
                  seed=np.random.default_rng(11))
    stepm.compute()
    assert found.superior == [f"set{k}" for k in sorted(stepm.superior_models)] == ["set2"]
    assert (found.trials, found.days, found.block, found.reps) == (6, 400, 7, 400)
    # Repeatable; by default the block is the square root of the days, rounded.
    assert reality_check(trials, bench, reps=400, block=7, seed=11) == found
    assert reality_check(trials, reps=50).block == 20


def test_stepm_steps_down_as_arch_does_and_past_every_trial_named():
    # StepM's steps are taken on arch's SPA: the sets named are arch's StepM's whenever
    # arch's finishes (30 draws of 8 trials, some with skill, several steps)...
    from arch.bootstrap import SPA, StepM

    steps = 0
    for seed in range(30):
        trials = _noise(seed, days=300, trials=8) + np.linspace(0.0, 0.003, 8)
        found = reality_check(trials, reps=200, block=9, seed=seed)
        stepm = StepM(np.zeros(300), -trials.to_numpy(), size=0.05, block_size=9, reps=200,
                      seed=np.random.default_rng(seed))
        try:
            stepm.compute()
        except ValueError:  # arch's StepM past its last trial: below
            continue
        assert found.superior == sorted(stepm.superior_models), seed
        spa = SPA(np.zeros(300), -trials.to_numpy(), block_size=9, reps=200,
                  seed=np.random.default_rng(seed))
        spa.compute()
        steps += len(spa.better_models(0.05)) < len(found.superior)
    assert steps >= 3  # cases that needed a second step were among them
    # ...and when a later step names the last trials left, every trial is named (arch
    # 8.0's StepM tests once more, on none, and raises).
    trials = pd.DataFrame(np.random.default_rng(7).normal(0, 0.01, (500, 3))) \
        + np.array([0.004, 0.004, 0.0013])
    spa = SPA(np.zeros(500), -trials.to_numpy(), block_size=22, reps=300,
              seed=np.random.default_rng(0))
    spa.compute()
    assert list(spa.better_models(0.05)) == [0, 1]  # the first step names two of three
    assert reality_check(trials, reps=300, block=22).superior == [0, 1, 2]


def test_without_skill_the_reality_check_rejects_at_most_its_size():
    # 60 experiments of 10 trials without skill: p < 0.05 at most 5% of the time (the
    # test is conservative), within three binomial deviations.
    pvalues = [reality_check(_noise(seed), reps=300, seed=seed).pvalue for seed in range(60)]
    rejected = np.mean(np.array(pvalues) < 0.05)
    assert rejected <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 60)
    assert np.mean(pvalues) > 0.3


def test_a_set_with_skill_among_many_is_found_and_named():
    named_wrongly = 0
    for seed in range(5):
        trials = _noise(seed, days=750, trials=20)
        trials[7] += 0.002  # a Sharpe Ratio of about 3
        found = reality_check(trials, reps=300, seed=seed)
        assert found.pvalue < 0.01 and 7 in found.superior
        named_wrongly += len(found.superior) - 1
    assert named_wrongly <= 1
    # Against a benchmark as good as the best set, nothing is better.
    trials = _noise(9, days=750, trials=20)
    trials[7] += 0.002
    assert reality_check(trials, trials[7] + 0.001, reps=300).superior == []


def test_a_set_that_is_the_benchmark_plus_a_constant_is_judged_by_the_constant():
    # Its difference from the benchmark is that constant every day, but for rounding
    # (about 1e-18): left as it is, studentizing divides by the rounding and named the
    # set always behind the benchmark as beating it. A set that never trades against
    # cash is the usual case (a difference of exactly 0).
    bench = pd.Series(np.random.default_rng(5).normal(0.0004, 0.01, 750))
    trials = _noise(6, days=750, trials=8)
    trials[2] = bench - 0.001                   # always behind
    trials[3] = bench + 0.0                     # the benchmark itself
    trials[4] = 0.0                             # cash
    found = reality_check(trials, bench, reps=300)
    assert found.superior == [] and found.pvalue > 0.2
    trials[5] = bench + 0.001                   # always ahead
    ahead = reality_check(trials, bench, reps=300)
    assert ahead.superior == [5] and ahead.pvalues == {"lower": 0.0, "consistent": 0.0,
                                                       "upper": 0.0}
    # Only such sets: none drawn, nothing ahead.
    level = reality_check(trials[[2, 3]], bench, reps=300)
    assert level.superior == [] and level.pvalue == 1.0
    # Against cash the benchmark's own mean counts: 14 bp a day ahead over 750 days is
    # skill, 6 bp behind is not.
    against_cash = reality_check(trials, reps=300).superior
    assert 5 in against_cash and 2 not in against_cash


def test_the_reality_check_reads_an_optimisations_rows(tmp_path):
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = bt.optimize(fast=[5, 10, 20], slow=[50, 100], returns=True, cache=False)
    found = reality_check(rows, reps=200)
    matrix = pd.DataFrame({job: s.to_numpy() for job, s in zip(rows.index, rows["Daily Returns"])},
                          index=rows["Daily Returns"].iloc[0].index)
    same = reality_check(matrix, reps=200)
    assert found == same and found.trials == 6
    assert set(found.superior) <= set(rows.index)
    # A buy-and-hold run's returns as the benchmark: on the same days.
    hold = bt.run(fast=5, slow=50).daily_returns()
    assert reality_check(rows, hold, reps=50).days == len(hold)


@pytest.mark.parametrize(("call", "error", "words"), [
    (lambda: reality_check(_noise(0), reps=0), tickstep.ConfigError, "reps=0"),
    (lambda: reality_check(_noise(0), size=1.5), tickstep.ConfigError,
     "size=1.5: StepM's familywise error rate, in (0, 1)"),
    (lambda: reality_check(_noise(0), block=0), tickstep.ConfigError, "block=0"),
    (lambda: reality_check(_noise(0), seed=-1), tickstep.ConfigError, "seed=-1"),
    (lambda: reality_check(_noise(0), "cash"), TypeError, "benchmark: a daily return"),
    (lambda: reality_check(_noise(0), float("nan")), tickstep.ConfigError,
     "a finite daily return"),
    (lambda: reality_check(_noise(0), pd.Series(0.0, index=range(1, 501))), ValueError,
     "its days differ from the trials'"),
    (lambda: reality_check(_noise(0), pd.Series([np.nan] + [0.0] * 499)), ValueError,
     "a daily return not finite"),
    (lambda: reality_check(np.zeros((40, 3))), TypeError, "a DataFrame of daily returns"),
])
def test_the_reality_check_refuses_bad_input_naming_it(call, error, words):
    with pytest.raises(error) as raised:
        call()
    assert words in str(raised.value)



# ---- annualisation: a run's returns carry the one its statistics used --------------------


def _per_day(matrix: np.ndarray) -> np.ndarray:
    """Each column's Sharpe Ratio per day (ddof=1), not annualised."""
    return matrix.mean(axis=0) / matrix.std(axis=0, ddof=1)


def _market(days: pd.DatetimeIndex, seed: int = 3) -> dict[str, pd.DataFrame]:
    close = 100 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, len(days))))
    return {"COIN": pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                                  "close": close, "volume": 1.0}, index=days)}


# Every calendar day (crypto: 365); weekdays only, but each session's last bar at 19:59 New
# York time, after midnight UTC, so Friday's is a Saturday in UTC (252 in the run's
# timezone, 365 if judged in UTC); weekdays with the run's own annualisation (260).
_CALENDARS = {
    "every day": (pd.date_range("2021-01-01 23:59", periods=700, freq="D", tz="UTC"), {}, 365),
    "evenings in New York": (
        pd.bdate_range("2021-01-04", periods=700).shift(19 * 60 + 59, freq="min")
        .tz_localize("America/New_York").tz_convert("UTC"),
        {"timezone": "America/New_York"}, 252),
    "own annualisation": (pd.bdate_range("2021-01-04 16:00", periods=700, tz="UTC"),
                          {"periods_per_year": 260}, 260),
}


@pytest.mark.parametrize("calendar", list(_CALENDARS))
def test_luck_is_annualised_as_each_runs_statistics(calendar):
    days, options, per_year = _CALENDARS[calendar]
    bt = tickstep.Backtest(_market(days), SmaCross, cash=100_000, **options)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        rows = bt.optimize(fast=[3, 5, 10, 20], slow=[30, 50, 80], returns=True, cache=False,
                           executor="sequential")
        result = bt.run(fast=5, slow=30)
    matrix = np.array([s.to_numpy() for s in rows["Daily Returns"]]).T
    # Each row's Sharpe Ratio is its returns' per day times the root of what they carry.
    assert {s.attrs["periods_per_year"] for s in rows["Daily Returns"]} == {per_year}
    np.testing.assert_allclose(_per_day(matrix) * math.sqrt(per_year), rows["Sharpe Ratio"],
                               rtol=1e-12)
    # The overfitting's Sharpe Ratios are annualised alike: the two halves by hand.
    found = backtest_overfitting(rows, n_splits=2)
    halves = np.array_split(np.arange(len(matrix)), 2)
    per_day = [_per_day(matrix[h]) for h in halves]
    chosen = [int(np.argmax(p)) for p in per_day]
    inside = np.array([per_day[0][chosen[0]], per_day[1][chosen[1]]])
    outside = np.array([per_day[1][chosen[0]], per_day[0][chosen[1]]])
    np.testing.assert_allclose(found.in_sample, inside * math.sqrt(per_year), rtol=1e-12)
    np.testing.assert_allclose(found.out_of_sample, outside * math.sqrt(per_year), rtol=1e-12)
    # Returns without an annualisation of their own are exchange days'; one given rules.
    bare = pd.DataFrame(matrix)
    np.testing.assert_allclose(backtest_overfitting(bare, 2).in_sample,
                               found.in_sample * math.sqrt(252 / per_year), rtol=1e-12)
    np.testing.assert_allclose(backtest_overfitting(rows, 2, periods_per_year=100).in_sample,
                               found.in_sample * math.sqrt(100 / per_year), rtol=1e-12)
    # A run's own figures, and the functions on its returns, agree.
    daily = result.daily_returns()
    assert daily.attrs["periods_per_year"] == per_year
    assert result.probabilistic_sharpe(1.0) == probabilistic_sharpe_ratio(daily, 1.0)
    assert result.probabilistic_sharpe(1.0) == probabilistic_sharpe_ratio(
        daily.to_numpy(), 1.0, periods_per_year=per_year)
    assert result.deflated_sharpe(rows) == deflated_sharpe_ratio(daily, rows)
    drawn = bootstrap_stats(daily, 3, block=10**9, seed=1)
    np.testing.assert_allclose(drawn["Sharpe Ratio"], result.stats["Sharpe Ratio"], rtol=1e-9)


def test_the_annualisation_of_returns_is_judged_in_the_runs_timezone():
    days, _, _ = _CALENDARS["evenings in New York"]
    daily = pd.Series(0.01, index=days)
    assert periods_per_year_of_returns(daily, "America/New_York") == 252
    # In UTC the winter Fridays' 19:59 is a Saturday: 8% of the days, an exchange's still.
    assert periods_per_year_of_returns(daily) == 252
    # Sessions ending at 21:00 in New York end on the next day in UTC all year: each
    # Friday's on a Saturday, a fifth of the days, as a market open every day would have.
    late = pd.Series(0.01, index=pd.bdate_range("2021-01-04", periods=700).shift(21 * 60, freq="min")
                     .tz_localize("America/New_York").tz_convert("UTC"))
    assert periods_per_year_of_returns(late, "America/New_York") == 252
    assert periods_per_year_of_returns(late) == 365
    assert periods_per_year_of_returns(daily, periods_per_year=260) == 260


def test_trials_annualised_differently_are_refused_by_name():
    days = pd.date_range("2021-01-01", periods=40, freq="D", tz="UTC")
    noise = np.random.default_rng(0).normal(0, 0.01, (40, 2))
    series = [pd.Series(noise[:, k], index=days) for k in range(2)]
    series[0].attrs["periods_per_year"], series[1].attrs["periods_per_year"] = 252, 365
    rows = pd.DataFrame({"status": "ok", "Daily Returns": pd.Series(series, dtype=object)})
    with pytest.raises(ValueError, match=r"annualised differently \(252, 365 a year\); give "
                                         r"periods_per_year="):
        backtest_overfitting(rows, 4)
    assert backtest_overfitting(rows, 4, periods_per_year=365).trials == 2
