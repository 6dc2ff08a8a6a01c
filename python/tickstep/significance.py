"""Is a Sharpe Ratio more than luck? The probabilistic and the deflated Sharpe Ratio.

A backtest's Sharpe Ratio is an estimate from a few hundred daily returns, often fat-tailed
and skewed; and the best of many parameter sets tried is the luckiest of them as much as
the best. Two statistics of Bailey and López de Prado answer with a probability:

- the **probabilistic Sharpe Ratio** (PSR, 2012): the probability that the Sharpe Ratio of
  the process behind the returns is above a benchmark, given how many returns there are
  and their skewness and kurtosis:
  ``PSR = Φ((SR - SR*) * sqrt(T - 1) / sqrt(1 - skew * SR + (kurtosis - 1) / 4 * SR²))``,
  with ``SR`` the returns' Sharpe Ratio per period (not annualised), ``SR*`` the
  benchmark's, ``T`` the number of returns, ``skew`` and ``kurtosis`` their sample moments
  (kurtosis 3 for normal returns) and ``Φ`` the standard normal distribution function;
- the **deflated Sharpe Ratio** (DSR, 2014): the PSR against the Sharpe Ratio the best of
  ``N`` trials would reach by luck alone, when no strategy has any skill (mean Sharpe 0)
  and the trials' Sharpe Ratios vary as those run did:
  ``SR0 = sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))``, ``V`` the variance
  of the trials' Sharpe Ratios, ``γ`` the Euler–Mascheroni constant.

A DSR of 0.95 says: after the selection among ``N`` trials, the chance that the chosen
strategy's true Sharpe Ratio is not above zero is 5%. Trials that are not independent
(neighbouring parameters of one grid) count as fewer: ``n_trials=`` takes an effective
number instead of the count.

Conventions here, as `tickstep.metrics.compute_stats`'s: the returns are daily (from
each trading day's last equity), excess over the daily risk-free rate, their standard
deviation with ``ddof=1``; annualised figures (benchmarks, the trials' ``Sharpe Ratio``
column) are divided by ``sqrt(periods_per_year)``, by default the returns' own: a run's
daily returns (``result.daily_returns()``, a results table's ``Daily Returns``) carry the
annualisation its statistics used (``attrs["periods_per_year"]``: 365 for data that trade
at weekends, as crypto, unless the run set another), other returns are taken as exchange
days' (252). The trials' variance is the sample
variance (``ddof=1``) of their finite Sharpe Ratios. `tickstep.Result` has both as methods
(``result.probabilistic_sharpe()``, ``result.deflated_sharpe(rows)``).

How far could the same strategy's figures have been from the run's, by the luck of which
days came when? `bootstrap_stats` draws the daily returns again in blocks of random
length (Politis and Romano's stationary bootstrap, arch's ``StationaryBootstrap``, the
mean block length by Politis and White's rule unless given), so runs of good and bad days
stay together, and computes the return, CAGR, volatility, Sharpe and Sortino Ratios and
maximum drawdown of each history drawn; ``result.bootstrap()`` of a run.

Is the way the best set was chosen itself overfit? `backtest_overfitting` is the
probability of backtest overfitting of Bailey, Borwein, López de Prado and Zhu (2015), by
combinatorially symmetric cross-validation: the trials' daily returns are cut into ``S``
blocks of consecutive days; for every way of taking half of them as the in-sample days
(the rest out of sample) the set with the best in-sample Sharpe Ratio is ranked among all
sets out of sample; the probability is the share of those ways in which it ranks in the
lower half. It needs every trial's daily returns: ``optimize(..., returns=True)`` (or
`tickstep.batch.run_batch`) keeps them in a ``Daily Returns`` column.

Does any set beat a benchmark at all, once all of them were tried on the same days?
`reality_check` is the test of data snooping that White's Reality Check (2000) began and
Hansen's test of superior predictive ability (SPA, 2005) refined, as Sullivan, Timmermann
and White applied it to technical trading rules (1999): the null hypothesis is that no
trial's expected daily return exceeds the benchmark's; the p-value comes from the
stationary bootstrap of the trials' and the benchmark's daily returns together, so the
trials' correlation is kept. Romano and Wolf's stepwise test (StepM, 2005) then names the
trials that beat the benchmark, holding the chance of naming any wrongly to ``size``.
Both on arch's ``arch.bootstrap.SPA``, on losses = −returns (StepM's steps are taken
here: arch 8.0's ``StepM`` tests once more after every trial is named, on none, and fails).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import ConfigError
from tickstep.metrics import _risk_ratios, daily_risk_free

__all__ = [
    "BOOTSTRAP_STATS",
    "DAILY_RETURNS",
    "Overfitting",
    "RealityCheck",
    "backtest_overfitting",
    "bootstrap_stats",
    "deflated_sharpe_ratio",
    "expected_max_sharpe_ratio",
    "probabilistic_sharpe_ratio",
    "reality_check",
]

#: The statistics of each history `bootstrap_stats` draws, as `tickstep.Result.stats`
#: names them (the drawdown of daily equity: a run's own counts its intraday samples).
BOOTSTRAP_STATS = ("Return [%]", "CAGR [%]", "Volatility (Ann.) [%]", "Sharpe Ratio",
                   "Sortino Ratio", "Max. Drawdown [%]")

#: The column of a results table (``optimize(..., returns=True)``) holding each run's
#: daily returns (a Series on each trading day's last equity sample, UTC).
DAILY_RETURNS = "Daily Returns"

_NORMAL = NormalDist()
_EULER_GAMMA = 0.5772156649015329


def probabilistic_sharpe_ratio(returns: Any, benchmark: float = 0.0, *,
                               periods_per_year: int | None = None,
                               risk_free_rate: float = 0.0) -> float:
    """The probability that the true Sharpe Ratio of ``returns`` is above ``benchmark``.

    Parameters
    ----------
    returns : array-like of float
        Daily returns (fractions), in time order; at least two, none NaN.
    benchmark : float, default 0.0
        The annualised Sharpe Ratio to beat.
    periods_per_year : int, optional
        Returns in a year (252 for exchange days, 365 for crypto): how ``benchmark`` and
        ``risk_free_rate`` become daily. By default the returns' own (a run's daily
        returns carry ``attrs["periods_per_year"]``), else 252.
    risk_free_rate : float, default 0.0
        Annual risk-free rate: the returns' excess over its daily rate is measured.

    Returns
    -------
    float
        In [0, 1]; NaN when the returns' standard deviation is zero.

    Examples
    --------
    >>> daily = np.random.default_rng(0).normal(0.001, 0.01, 500)
    >>> round(probabilistic_sharpe_ratio(daily), 4)
    0.945
    """
    periods_per_year = _annualisation(periods_per_year, returns)
    daily = _returns(returns, periods_per_year, risk_free_rate)
    if isinstance(benchmark, bool) or not isinstance(benchmark, (int, float)) \
            or not math.isfinite(benchmark):
        raise ConfigError(f"benchmark={benchmark!r}: an annualised Sharpe Ratio, a number")
    sharpe, skew, kurtosis = _moments(daily)
    return _psr(sharpe, benchmark / math.sqrt(periods_per_year), len(daily), skew, kurtosis)


def expected_max_sharpe_ratio(trials: Any, *, n_trials: int | None = None) -> float:
    """The Sharpe Ratio the best of ``n_trials`` strategies without skill would show by
    luck: ``sqrt(V) * ((1 - γ) Φ⁻¹(1 - 1/N) + γ Φ⁻¹(1 - 1/(N e)))``, in the trials'
    units (annualised, as a results table's ``Sharpe Ratio``).

    Parameters
    ----------
    trials : array-like of float, or a results table
        The Sharpe Ratios of every trial (NaN ones left out), or the rows of
        `tickstep.Backtest.optimize` / `tickstep.batch.run_batch` (their ``Sharpe Ratio``
        column, the rows whose status is ``"ok"``).
    n_trials : int, optional
        How many independent trials were made (N); by default the count of finite
        Sharpe Ratios. Correlated trials count as fewer.

    Examples
    --------
    >>> round(expected_max_sharpe_ratio([0.5, -0.5, 1.0, -1.0, 0.0]), 4)
    0.9428
    """
    sharpes = _trial_sharpes(trials)
    n = _count(n_trials, len(sharpes))
    if n == 1 or len(sharpes) < 2:
        return 0.0  # one trial: its expected Sharpe Ratio without skill
    spread = math.sqrt(float(np.var(sharpes, ddof=1)))
    return spread * ((1 - _EULER_GAMMA) * _NORMAL.inv_cdf(1 - 1 / n)
                     + _EULER_GAMMA * _NORMAL.inv_cdf(1 - 1 / (n * math.e)))


def deflated_sharpe_ratio(returns: Any, trials: Any, *, n_trials: int | None = None,
                          periods_per_year: int | None = None,
                          risk_free_rate: float = 0.0) -> float:
    """The probability that the strategy chosen among ``trials`` has a true Sharpe Ratio
    above zero, allowing for the choice: its `probabilistic_sharpe_ratio` against
    `expected_max_sharpe_ratio` of the trials.

    Parameters
    ----------
    returns : array-like of float
        The chosen strategy's daily returns.
    trials, n_trials
        As for `expected_max_sharpe_ratio` (annualised Sharpe Ratios, or a results table).
    periods_per_year, risk_free_rate
        As for `probabilistic_sharpe_ratio`.

    Examples
    --------
    >>> rng = np.random.default_rng(1)
    >>> daily = rng.normal(0.0008, 0.01, 750)
    >>> tried = rng.normal(0.0, 0.4, 50)  # the Sharpe Ratios of 50 sets tried
    >>> deflated = deflated_sharpe_ratio(daily, tried)
    >>> deflated < probabilistic_sharpe_ratio(daily)  # the best of 50 is partly luck
    True
    """
    luck = expected_max_sharpe_ratio(trials, n_trials=n_trials)
    return probabilistic_sharpe_ratio(returns, luck, periods_per_year=periods_per_year,
                                      risk_free_rate=risk_free_rate)


def bootstrap_stats(returns: Any, n: int = 1000, *, block: int | None = None,
                    seed: int = 0, years: float | None = None,
                    periods_per_year: int | None = None,
                    risk_free_rate: float = 0.0) -> pd.DataFrame:
    """The statistics of ``n`` histories drawn from ``returns`` by the stationary
    bootstrap: each history as long as ``returns``, made of blocks of consecutive days
    (wrapping at the end) of random length, ``block`` days on average.

    Parameters
    ----------
    returns : array-like of float
        Daily returns (fractions), in time order; at least two, none NaN.
    n : int, default 1000
        Histories to draw.
    block : int, optional
        The mean block length in days: 1 draws days independently; by default Politis and
        White's optimal length for these returns (``arch.bootstrap.optimal_block_length``),
        rounded, at least 1.
    seed : int, default 0
        The draw's seed: the same one draws the same histories.
    years : float, optional
        The span the returns cover, for the CAGR (a run's calendar years); by default
        ``len(returns) / periods_per_year``.
    periods_per_year, risk_free_rate
        As for `probabilistic_sharpe_ratio` (the Sharpe and Sortino Ratios and the
        volatility annualised as `tickstep.metrics.compute_stats` does).

    Returns
    -------
    pandas.DataFrame
        A row per history, the columns of `BOOTSTRAP_STATS`; ``attrs["block"]`` the mean
        block length used.

    Examples
    --------
    >>> daily = np.random.default_rng(2).normal(0.0005, 0.01, 500)
    >>> drawn = bootstrap_stats(daily, 200, seed=1)
    >>> list(drawn.columns) == list(BOOTSTRAP_STATS), len(drawn)
    (True, 200)
    >>> bool(drawn["Max. Drawdown [%]"].le(0).all())
    True
    """
    try:
        from arch.bootstrap import StationaryBootstrap, optimal_block_length
    except ImportError:
        raise ImportError("the bootstrap needs arch: pip install 'tickstep[bootstrap]'") from None

    # The histories draw the returns themselves: the rate is checked here, taken per draw.
    periods_per_year = _annualisation(periods_per_year, returns)
    daily = _returns(returns, periods_per_year, 0.0)
    _check_rate(risk_free_rate)
    _whole(n, "n", 1, "how many histories to draw")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r}: a whole number >= 0 (the same one draws the same "
                          "histories)")
    if block is not None:
        _whole(block, "block", 1, "the mean block length in days")
    if years is None:
        years = len(daily) / periods_per_year
    elif isinstance(years, bool) or not (isinstance(years, (int, float)) and years > 0
                                         and math.isfinite(years)):
        raise ConfigError(f"years={years!r}: the span of the returns in years, > 0")
    if block is None:
        optimal = float(optimal_block_length(daily)["stationary"].iloc[0])
        block = max(1, round(optimal)) if math.isfinite(optimal) else 1
    rf_daily = daily_risk_free(risk_free_rate, periods_per_year)
    sampler = StationaryBootstrap(int(block), daily, seed=np.random.default_rng(seed))
    rows = [_history_stats(drawn[0], rf_daily, periods_per_year, years)
            for drawn, _ in sampler.bootstrap(n)]
    frame = pd.DataFrame(rows, columns=list(BOOTSTRAP_STATS))
    frame.index.name = "history"
    frame.attrs["block"] = int(block)
    return frame


@dataclass(frozen=True)
class Overfitting:
    """What `backtest_overfitting` found.

    Attributes
    ----------
    probability : float
        The probability of backtest overfitting: the share of the in/out-of-sample splits in
        which the set chosen in sample ranked in the lower half out of sample. A split in
        which no set has a Sharpe Ratio in sample (each one's returns flat there: it never
        traded) chooses none and is not counted (`backtest_overfitting` refuses the sets
        when no split chose).
    logits : numpy.ndarray
        Per split that chose, the logit of the chosen set's relative rank out of sample,
        ``ln(w / (1 - w))``, ``w`` its rank (1 the worst, ties averaged) over ``N + 1``:
        the probability is the share at or below zero.
    in_sample, out_of_sample : numpy.ndarray
        Per split, the chosen set's Sharpe Ratio (annualised) in and out of sample: the
        degradation from choosing.
    loss_probability : float
        The share of splits in which the chosen set lost out of sample (Sharpe Ratio below
        zero).
    splits : int
        ``S``, the blocks of days (the splits are the ``C(S, S/2)`` ways of taking half).
    trials : int
        ``N``, the sets compared.
    """

    probability: float
    logits: np.ndarray
    in_sample: np.ndarray
    out_of_sample: np.ndarray
    loss_probability: float
    splits: int
    trials: int

    @property
    def medians(self) -> tuple[float, float]:
        """The chosen set's median Sharpe Ratio in sample and out of sample, over the
        splits in which it has one (a set flat out of sample has none there); NaN for
        none."""
        return _finite_median(self.in_sample), _finite_median(self.out_of_sample)


def _finite_median(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(np.median(finite)) if len(finite) else math.nan


def backtest_overfitting(returns: Any, n_splits: int = 16, *,
                         periods_per_year: int | None = None) -> Overfitting:
    """The probability that choosing the best of these trials in sample overfits: CSCV
    (see the module notes).

    Parameters
    ----------
    returns : pandas.DataFrame
        The trials' daily returns, a column each on the same days (none missing); or a
        results table of `tickstep.Backtest.optimize` / `tickstep.batch.run_batch` made
        with ``returns=True`` (its ``Daily Returns`` column, the rows whose status is
        ``"ok"``, all of one symbol group).
    n_splits : int, default 16
        ``S``, the blocks of consecutive days: even, at least 2, with at least two days a
        block. Every ``C(S, S/2)`` way of taking half is a split (12,870 for 16).
    periods_per_year : int, optional
        How the Sharpe Ratios reported are annualised (the ranking does not depend on
        it). By default the returns' own: a results table's as its rows' ``Sharpe
        Ratio``; a DataFrame's ``attrs["periods_per_year"]``; else 252.

    Returns
    -------
    Overfitting

    Examples
    --------
    >>> noise = pd.DataFrame(np.random.default_rng(0).normal(0, 0.01, (600, 20)))
    >>> found = backtest_overfitting(noise, n_splits=8)
    >>> found.trials, len(found.logits)  # 20 trials, C(8, 4) splits
    (20, 70)
    >>> bool(found.probability == np.mean(found.logits <= 0))
    True
    """
    import itertools

    frame = _trial_frame(returns)
    matrix, trials = frame.to_numpy(dtype=float), frame.shape[1]
    periods_per_year = _annualisation(periods_per_year, frame)
    check_splits(n_splits)
    days = matrix.shape[0]
    if days < 2 * n_splits:
        raise ValueError(f"returns: {days} days cannot make {n_splits} blocks of two days or "
                         "more; fewer splits (n_splits=) or more days")
    if trials < 2:
        raise ValueError(f"returns: {trials} trial; overfitting is choosing among two or more")
    blocks = np.array_split(np.arange(days), n_splits)
    count = np.array([len(b) for b in blocks], dtype=float)
    sums = np.array([matrix[b].sum(axis=0) for b in blocks])  # S x N
    squares = np.array([(matrix[b] ** 2).sum(axis=0) for b in blocks])
    chosen = np.array(list(itertools.combinations(range(n_splits), n_splits // 2)), dtype=int)
    taken = np.zeros((len(chosen), n_splits))
    taken[np.arange(len(chosen))[:, None], chosen] = 1.0
    logits, ins, outs = [], [], []
    step = max(1, 2_000_000 // (trials * n_splits))  # splits at a time: bounded memory
    for first in range(0, len(taken), step):
        part = taken[first:first + step]
        inside = _block_sharpe(part, count, sums, squares)
        outside = _block_sharpe(1.0 - part, count, sums, squares)
        # A split in which no trial has a Sharpe Ratio in sample (every one flat there)
        # offers nothing to choose: it is left out, rather than "choosing" the first.
        chose = ~np.isnan(inside).all(axis=1)
        inside, outside = inside[chose], outside[chose]
        best = np.argmax(np.where(np.isnan(inside), -np.inf, inside), axis=1)
        rows = np.arange(len(inside))
        mine = outside[rows, best]
        ranked = np.where(np.isnan(outside), -np.inf, outside)
        mine_ranked = ranked[rows, best][:, None]
        below = (ranked < mine_ranked).sum(axis=1)
        level = (ranked == mine_ranked).sum(axis=1)
        rank = below + (level + 1) / 2.0  # 1 the worst; ties share the mean rank
        share = rank / (trials + 1)
        logits.append(np.log(share / (1.0 - share)))
        ins.append(inside[rows, best])
        outs.append(mine)
    logit = np.concatenate(logits)
    if not len(logit):
        raise ValueError("returns: no split has a set with a Sharpe Ratio in sample (every "
                         "set's returns are flat there: none traded)")
    annual = math.sqrt(periods_per_year)
    outside_all = np.concatenate(outs)
    return Overfitting(probability=float(np.mean(logit <= 0)), logits=logit,
                       in_sample=np.concatenate(ins) * annual,
                       out_of_sample=outside_all * annual,
                       loss_probability=float(np.mean(outside_all < 0)),
                       splits=int(n_splits), trials=trials)


@dataclass(frozen=True)
class RealityCheck:
    """What `reality_check` found.

    Attributes
    ----------
    pvalue : float
        Hansen's consistent p-value: the chance of a best trial this much better than the
        benchmark if none were better in truth. Small: some trial beats the benchmark,
        after all were tried.
    pvalues : dict
        Hansen's ``lower``, ``consistent`` and ``upper`` p-values (the upper, recentred
        at every trial's mean, is White's Reality Check's).
    superior : list
        The trials that beat the benchmark by Romano and Wolf's StepM at ``size``: the
        labels of the results table's rows (its jobs), or the returns' columns.
    size : float
        The familywise error rate of ``superior``.
    trials : int
        The trials compared.
    days : int
        The days of returns.
    block : int
        The mean block length of the stationary bootstrap, in days.
    reps : int
        The bootstrap's draws.
    """

    pvalue: float
    pvalues: dict[str, float]
    superior: list[Any]
    size: float
    trials: int
    days: int
    block: int
    reps: int


def reality_check(returns: Any, benchmark: Any = 0.0, *, reps: int = 1000,
                  block: int | None = None, size: float = 0.05, seed: int = 0) -> RealityCheck:
    """Does any of these trials beat ``benchmark``, allowing for all of them having been
    tried? Hansen's test of superior predictive ability, and the trials that beat it by
    Romano and Wolf's StepM (see the module notes).

    Parameters
    ----------
    returns : pandas.DataFrame
        As for `backtest_overfitting`: the trials' daily returns, or a results table made
        with ``returns=True`` (its trials labelled by its rows' ``job``).
    benchmark : float or pandas.Series, default 0.0
        What a trial must beat: a daily return every day (0: staying in cash; a daily
        risk-free rate), or daily returns on the trials' days (a buy-and-hold run's
        ``result.daily_returns()``, say).
    reps : int, default 1000
        The bootstrap's draws.
    block : int, optional
        The stationary bootstrap's mean block length in days; by default the square root
        of the days, rounded (arch's rule).
    size : float, default 0.05
        StepM's familywise error rate, in (0, 1).
    seed : int, default 0
        The draws' seed: the same one, the same p-values.

    Returns
    -------
    RealityCheck

    Notes
    -----
    A trial whose difference from the benchmark is the same every day (to rounding: a
    set that never trades, against cash) is judged without draws: it beats the
    benchmark exactly when that difference is above zero (then it is named, and the
    p-values are 0); the others are tested among themselves.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noise = pd.DataFrame(rng.normal(0, 0.01, (750, 20)))
    >>> noise[20] = rng.normal(0.002, 0.01, 750)  # one trial with skill
    >>> found = reality_check(noise, reps=500)
    >>> bool(found.pvalue < 0.05), found.superior
    (True, [20])
    """
    try:
        from arch.bootstrap import SPA
    except ImportError:
        raise ImportError("the reality check needs arch: pip install 'tickstep[bootstrap]'") \
            from None

    trials = _trial_frame(returns)
    days = len(trials)
    check_reality_options(benchmark=benchmark, reps=reps, block=block, size=size, seed=seed)
    if days < 2:
        raise ValueError(f"returns: {days} day(s); the test needs two or more")
    if isinstance(benchmark, (int, float, np.integer, np.floating)):
        base = np.full(days, float(benchmark))
    elif isinstance(benchmark, pd.Series):
        if not benchmark.index.equals(trials.index):
            raise ValueError("benchmark: its days differ from the trials'; give its daily "
                             "returns on the same days (reindex it)")
        base = benchmark.to_numpy(dtype=float)
        if not np.isfinite(base).all():
            raise ValueError("benchmark: a daily return not finite")
    else:
        raise TypeError(f"benchmark: a daily return, or a Series of daily returns on the "
                        f"trials' days, got {type(benchmark).__name__}")
    block = max(1, round(math.sqrt(days))) if block is None else int(block)
    # The tests read the trials' differences from the benchmark only (the benchmark's
    # loss minus each trial's), handed over as the losses against a benchmark of none.
    ahead = trials.to_numpy(dtype=float) - base[:, None]
    # A trial that is the benchmark plus a constant, to rounding (a set that never
    # trades against cash, the benchmark run among the sets), is ahead by that constant
    # every day: no draw is needed to judge it, and in the bootstrap its difference, the
    # same in every draw, meets the critical value it sets itself, so that rounding
    # decided whether it was named. It beats the benchmark exactly when it is ahead.
    scale = np.abs(ahead).mean(axis=0) + trials.to_numpy(dtype=float).std(axis=0) + base.std()
    constant = ahead.std(axis=0) <= 1e-10 * scale
    certain = np.flatnonzero(constant & (ahead.mean(axis=0) > 0))
    drawn = np.flatnonzero(~constant)
    pvalues = {"lower": 1.0, "consistent": 1.0, "upper": 1.0}
    named: list[int] = []
    if len(drawn):
        losses, base_loss = -ahead[:, drawn], np.zeros(days)
        spa = SPA(base_loss, losses, block_size=block, reps=int(reps), bootstrap="stationary",
                  seed=np.random.default_rng(seed))
        spa.compute()
        pvalues = {str(k): float(v) for k, v in spa.pvalues.items()}
        named = [int(drawn[k]) for k in _step_down(spa, len(drawn), float(size))]
    if len(certain):
        pvalues = {"lower": 0.0, "consistent": 0.0, "upper": 0.0}
    labels = list(trials.columns)
    superior = [labels[k] for k in sorted([*named, *certain.tolist()])]
    return RealityCheck(pvalue=float(pvalues["consistent"]), pvalues=pvalues,
                        superior=superior, size=float(size), trials=trials.shape[1],
                        days=days, block=block, reps=int(reps))


def _step_down(spa: Any, trials: int, size: float) -> list[int]:
    """Romano and Wolf's StepM on a computed ``spa`` of ``trials`` models: name those
    beating the benchmark at ``size``, set them aside and test the rest on the same
    draws, until a step names none or none is left. The positions named, sorted."""
    named = [int(k) for k in spa.better_models(size)]
    fresh = named
    while fresh and len(named) < trials:
        rest = np.ones(trials, dtype=bool)
        rest[named] = False
        spa.subset(rest)
        spa.compute()
        fresh = [int(k) for k in spa.better_models(size)]
        named += fresh
    return sorted(named)


def _block_sharpe(taken: np.ndarray, count: np.ndarray, sums: np.ndarray,
                  squares: np.ndarray) -> np.ndarray:
    """Per split (a row of ``taken``: 1 for each block in it) and trial, the Sharpe Ratio
    per day (ddof=1) of the days of the blocks taken; NaN without spread."""
    n = taken @ count
    total = taken @ sums
    mean = total / n[:, None]
    var = (taken @ squares - n[:, None] * mean**2) / (n[:, None] - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(var > 1e-24, mean / np.sqrt(np.maximum(var, 0.0)), np.nan)


def _trial_frame(returns: Any) -> pd.DataFrame:
    """The trials' daily returns, a column each (a results table's: labelled by its
    rows' index, the jobs), checked."""
    if isinstance(returns, pd.DataFrame) and DAILY_RETURNS in returns.columns:
        ok = returns[returns["status"] == "ok"] if "status" in returns.columns else returns
        if "symbols" in ok.columns and ok["symbols"].nunique() > 1:
            raise ValueError("returns: a results table of several symbol groups; choose one "
                             "(rows[rows['symbols'] == ...]): each group chooses its own set")
        series = list(ok[DAILY_RETURNS])
        if not series or not all(isinstance(s, pd.Series) for s in series):
            raise ValueError(f"returns: its '{DAILY_RETURNS}' column holds no returns (made "
                             "with returns=True?)")
        index = series[0].index
        for s in series[1:]:
            if not s.index.equals(index):
                raise ValueError("returns: the trials' days differ; every trial must have "
                                 "the same days")
        own = sorted({s.attrs["periods_per_year"] for s in series
                      if "periods_per_year" in s.attrs})
        returns = pd.DataFrame({job: s.to_numpy() for job, s in zip(ok.index, series)},
                               index=index)
        if own:  # several: refused by `_annualisation` unless the caller gives one
            returns.attrs["periods_per_year"] = own[0] if len(own) == 1 else own
    elif isinstance(returns, pd.DataFrame) and ("Sharpe Ratio" in returns.columns):
        raise ValueError(f"returns: a results table without a '{DAILY_RETURNS}' column: run "
                         "optimize (or run_batch) with returns=True")
    if not isinstance(returns, pd.DataFrame):
        raise TypeError("returns: a DataFrame of daily returns (a column per trial), or a "
                        "results table made with returns=True")
    matrix = returns.to_numpy(dtype=float)
    bad = np.argwhere(~np.isfinite(matrix))
    if len(bad):
        day, trial = bad[0]
        raise ValueError(f"returns: {len(bad)} not finite, the first on row {day} of trial "
                         f"{returns.columns[trial]!r}")
    return returns


def _history_stats(path: np.ndarray, rf_daily: float, periods_per_year: int,
                   years: float) -> tuple[float, ...]:
    """`BOOTSTRAP_STATS` of one history of daily returns, by `compute_stats`'s rules (the
    equity of each day from 1, the peak never below it)."""
    growth = np.cumprod(1.0 + path)
    final = float(growth[-1])
    sharpe, sortino, volatility = _risk_ratios(path, rf_daily, periods_per_year)
    peaks = np.maximum(np.maximum.accumulate(growth), 1.0)
    cagr = final ** (1.0 / years) - 1.0 if final > 0 else math.nan
    return ((final - 1.0) * 100.0, cagr * 100.0, volatility * 100.0, sharpe, sortino,
            float(np.min(growth / peaks - 1.0, initial=0.0)) * 100.0 + 0.0)


def _psr(sharpe: float, benchmark: float, n: int, skew: float, kurtosis: float) -> float:
    """The PSR of a per-period Sharpe Ratio from ``n`` returns with these moments."""
    spread = 1 - skew * sharpe + (kurtosis - 1) / 4 * sharpe**2
    if not math.isfinite(sharpe) or not spread > 0:
        return math.nan
    return _NORMAL.cdf((sharpe - benchmark) * math.sqrt(n - 1) / math.sqrt(spread))


def _moments(daily: np.ndarray) -> tuple[float, float, float]:
    """(Sharpe Ratio per period with ddof=1, skewness, kurtosis) of excess returns; the
    moments are the sample's own (biased, as the papers'), NaN for no spread."""
    std = float(np.std(daily, ddof=1))
    centred = daily - daily.mean()
    m2 = float(np.mean(centred**2))
    if not std > 1e-12 or not m2 > 0:
        return math.nan, math.nan, math.nan
    skew = float(np.mean(centred**3)) / m2**1.5
    kurtosis = float(np.mean(centred**4)) / m2**2
    return float(daily.mean()) / std, skew, kurtosis


def check_splits(n_splits: Any) -> None:
    """``n_splits`` of `backtest_overfitting`: an even whole number >= 2, else refused."""
    if isinstance(n_splits, bool) or not isinstance(n_splits, (int, np.integer)) \
            or n_splits < 2 or n_splits % 2:
        raise ConfigError(f"n_splits={n_splits!r}: the blocks of days, an even whole number >= 2")


def check_reps(reps: Any) -> None:
    """``reps`` of `reality_check`: a whole number >= 1, else refused."""
    _whole(reps, "reps", 1, "the bootstrap's draws")


def check_reality_options(*, benchmark: Any = 0.0, reps: Any = 1000, block: Any = None,
                          size: Any = 0.05, seed: Any = 0) -> None:
    """The options of `reality_check` by its rules (a benchmark of daily returns is
    checked against the trials' days there), else refused by name."""
    check_reps(reps)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed={seed!r}: a whole number >= 0 (the same one draws the same "
                          "samples)")
    if isinstance(size, bool) or not isinstance(size, (int, float)) or not 0.0 < size < 1.0:
        raise ConfigError(f"size={size!r}: StepM's familywise error rate, in (0, 1)")
    if block is not None:
        _whole(block, "block", 1, "the mean block length in days")
    if isinstance(benchmark, bool):
        raise ConfigError(f"benchmark={benchmark!r}: a daily return, or daily returns on the "
                          "trials' days")
    if isinstance(benchmark, (int, float, np.integer, np.floating)) \
            and not math.isfinite(benchmark):
        raise ConfigError(f"benchmark={benchmark!r}: a finite daily return")


def _whole(value: Any, name: str, least: int, what: str) -> None:
    """``value`` is a whole number at least ``least`` (never a bool), else refused by name."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ConfigError(f"{name}={value!r}: {what}, a whole number >= {least}")


def _annualisation(periods_per_year: Any, returns: Any) -> int:
    """``periods_per_year`` checked; by default the returns' own (``attrs``: a run's daily
    returns carry the annualisation its statistics used), else 252 (exchange days)."""
    if periods_per_year is None:
        own = returns.attrs if isinstance(returns, (pd.Series, pd.DataFrame)) else {}
        periods_per_year = own.get("periods_per_year", 252)
        if isinstance(periods_per_year, list):
            raise ValueError(f"returns: the trials' returns are annualised differently "
                             f"({', '.join(map(str, periods_per_year))} a year); give "
                             "periods_per_year=")
    _check_periods(periods_per_year)
    return int(periods_per_year)


def _check_periods(periods_per_year: Any) -> None:
    _whole(periods_per_year, "periods_per_year",
           1, "returns in a year (252 for exchange days, 365 for crypto)")


def _check_rate(risk_free_rate: Any) -> None:
    if isinstance(risk_free_rate, bool) or not isinstance(risk_free_rate, (int, float)) \
            or not math.isfinite(risk_free_rate) or risk_free_rate <= -1:
        raise ConfigError(f"risk_free_rate={risk_free_rate!r}: an annual rate as a fraction, > -1")


def _returns(returns: Any, periods_per_year: int, risk_free_rate: float) -> np.ndarray:
    """Daily returns, checked, as their excess over the daily risk-free rate."""
    _check_periods(periods_per_year)
    _check_rate(risk_free_rate)
    daily = np.asarray(returns, dtype=float)
    if daily.ndim != 1 or len(daily) < 2:
        raise ValueError(f"returns: at least two daily returns in a 1-d array, got shape {daily.shape}")
    bad = np.flatnonzero(~np.isfinite(daily))
    if len(bad):
        raise ValueError(f"returns: {len(bad)} not finite, the first at position {bad[0]} "
                         f"({daily[bad[0]]}); a return is a number")
    return daily - daily_risk_free(risk_free_rate, periods_per_year)


def _trial_sharpes(trials: Any) -> np.ndarray:
    if isinstance(trials, pd.DataFrame):
        if "Sharpe Ratio" not in trials.columns:
            raise ValueError("trials: a results table with a 'Sharpe Ratio' column (the rows "
                             "of optimize or run_batch), or the trials' Sharpe Ratios")
        ok = trials[trials["status"] == "ok"] if "status" in trials.columns else trials
        trials = ok["Sharpe Ratio"]
    values = np.asarray(trials, dtype=float).ravel()
    values = values[~np.isnan(values)]
    if len(values) == 0:
        raise ValueError("trials: no Sharpe Ratio to compare with (every trial's is NaN, or "
                         "there are none)")
    if not np.isfinite(values).all():
        raise ValueError("trials: an infinite Sharpe Ratio among them")
    return values


def _count(n_trials: int | None, finite: int) -> int:
    if n_trials is None:
        return finite
    _whole(n_trials, "n_trials", 1, "how many independent trials were made")
    return int(n_trials)

