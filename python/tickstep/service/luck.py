"""Is a stored batch's best set luck? Its runs judged as `tickstep.significance` judges a
results table, over HTTP.

A batch whose request kept its runs' daily returns (``"returns": true``, stored in the
runs database's ``run_returns``) is read back as the rows ``run_batch(returns=True)``
returned: the same statistics, the same daily returns, in the same order (by the batch's
``maximize``, ties in job order; `tickstep.batch.objectives.Objective.rank`). So the
probability of backtest overfitting, the reality check and the optimisation report of a
stored batch are those of the same batch run by hand. Each symbol group chooses its own
set, so each is judged alone; a group that cannot be (a single set that ran, too few days
for the blocks) says why in its entry, and the others are still judged.

The service calls these functions in its worker process (plain values in and out), never
on its event loop: the reality check of a large batch takes seconds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pandas as pd

from tickstep.service.rows import jsonable
from tickstep.significance import DAILY_RETURNS

__all__ = ["NoBenchmark", "annualised", "batch_overfitting", "batch_reality_check", "batch_rows",
           "group_benchmark", "optimization_report"]

_NONE_RAN = "none of its runs ran to the end (every row's status is an error)"


def batch_rows(db: Any, batch_id: str, symbols: str | None = None) -> pd.DataFrame:
    """A stored batch's rows with their daily returns, as ``run_batch(returns=True)``
    ranked them (every group's rows, or the group ``symbols`` names; each group's in its
    own ranked order)."""
    from tickstep.batch.objectives import Objective
    from tickstep.service.rows import runs_frame

    batch = db.batch(batch_id)
    runs = db.batch_runs(batch_id, symbols=symbols)
    returns = db.daily_returns([r["run_id"] for r in runs])
    for daily in returns.values():
        annualised(daily, batch["request"])
    frame = runs_frame(runs, db.stat_columns, returns)
    objective = Objective(batch["request"].get("maximize", "Sharpe Ratio"))
    return objective.rank(frame, objective.values_of(frame) if objective.several else None)


def annualised(daily: pd.Series, request: dict[str, Any]) -> pd.Series:
    """A stored run's daily returns given the annualisation its statistics used
    (``attrs["periods_per_year"]``, as `tickstep.Result.daily_returns` gives them): by its
    batch's ``request`` options, the rule of `tickstep.metrics.periods_per_year_of_returns`."""
    from tickstep.metrics import periods_per_year_of_returns

    options = request.get("options") or {}
    daily.attrs["periods_per_year"] = periods_per_year_of_returns(
        daily, options.get("timezone", "UTC"), options.get("periods_per_year"))
    return daily


def _groups(rows: pd.DataFrame, symbols: str | None) -> dict[str, pd.DataFrame]:
    """The rows that ran (status ``ok``) of each symbol group (the groups in job order),
    or of the one named."""
    labels = list(dict.fromkeys(rows.sort_index()["symbols"]))
    if symbols is not None:
        labels = [symbols]
    ran = rows[rows["status"] == "ok"]
    return {label: ran[ran["symbols"] == label] for label in labels}


def batch_overfitting(url: str, batch_id: str, n_splits: int, symbols: str | None = None,
                      splits: bool = False) -> list[dict[str, Any]]:
    """Each symbol group's probability of backtest overfitting
    (`tickstep.significance.backtest_overfitting` with ``n_splits`` blocks), as JSON
    values; ``splits``: also each split's figures (the logits, and the chosen set's
    Sharpe Ratio in and out of sample)."""
    from tickstep.significance import backtest_overfitting

    def judge(group: pd.DataFrame) -> dict[str, Any]:
        found = backtest_overfitting(group, n_splits)
        inside, outside = found.medians
        entry = dict(
            probability=found.probability, loss_probability=found.loss_probability,
            trials=found.trials, blocks=found.splits, splits=len(found.logits),
            in_sample_median=inside, out_of_sample_median=outside)
        if splits:
            entry.update(logits=found.logits.tolist(), in_sample=found.in_sample.tolist(),
                         out_of_sample=found.out_of_sample.tolist())
        return entry

    rows, _ = _read(url, batch_id, symbols)
    return _each_group(rows, symbols, "not judged", judge)


def batch_reality_check(url: str, batch_id: str, *, benchmark: float, reps: int,
                        block: int | None, size: float, seed: int,
                        symbols: str | None = None,
                        benchmark_batch: str | None = None) -> list[dict[str, Any]]:
    """Each symbol group's reality check (`tickstep.significance.reality_check` against a
    daily return ``benchmark``, or against the daily returns of the run of the group's
    symbols in ``benchmark_batch``), as JSON values: the p-values, and the sets StepM
    names (their job, run id and parameters, in the batch's order)."""
    from tickstep.report.pareto import parameter_columns
    from tickstep.significance import reality_check

    against = None if benchmark_batch is None else _benchmark_runs(url, benchmark_batch)

    def judge(group: pd.DataFrame) -> dict[str, Any]:
        base = benchmark if against is None else group_benchmark(
            against, group, f"benchmark_batch {benchmark_batch}")
        found = reality_check(group, base, reps=reps, block=block, size=size, seed=seed)
        return dict(
            pvalue=found.pvalue, pvalues=found.pvalues, size=found.size,
            trials=found.trials, days=found.days, block=found.block, reps=found.reps,
            superior=[{"job": int(job), "run_id": group.loc[job, "run_id"],
                       "parameters": {n: group.loc[job, n] for n in names
                                      if not pd.isna(group.loc[job, n])}}
                      for job in found.superior])

    rows, _ = _read(url, batch_id, symbols)
    names = parameter_columns(rows)
    return _each_group(rows, symbols, "not made", judge)


def _benchmark_runs(url: str, batch_id: str) -> pd.DataFrame:
    """The runs of a benchmark batch that ran, with their daily returns."""
    rows, _ = _read(url, batch_id, None)
    return rows[rows["status"] == "ok"]


class NoBenchmark(ValueError):
    """A symbol group has no benchmark among the runs named (`group_benchmark`)."""


def group_benchmark(runs: pd.DataFrame, group: pd.DataFrame, source: str) -> pd.Series:
    """What a symbol group's sets must beat in a reality check against other runs: the
    daily returns of the one run of the group's symbols among ``runs`` (rows with their
    returns, those that ran; named ``source`` in messages), on the group's days; else a
    ValueError saying why (the group's entry, the others still judged)."""
    label = group["symbols"].iloc[0]
    mine = runs[runs["symbols"] == label]
    if len(mine) != 1:
        raise NoBenchmark(f"{source} has {len(mine)} runs of {label} that ran; a benchmark is "
                          "one run of the group's symbols")
    daily = mine[DAILY_RETURNS].iloc[0]
    days = group[DAILY_RETURNS].iloc[0].index
    if not daily.index.equals(days):
        raise NoBenchmark(f"the run of {label} in {source} has other days ({len(daily)}, "
                         f"from {daily.index[0]:%Y-%m-%d}) than the sets' ({len(days)}, from "
                         f"{days[0]:%Y-%m-%d}): a run over the same span")
    return pd.Series(daily.to_numpy(), index=days)


def optimization_report(url: str, batch_id: str, path: str,
                        benchmark_batch: str | None = None, **options: Any) -> str:
    """Write a stored batch's optimisation report (one symbol group's:
    `tickstep.report.write_optimization_report` with the batch's ``maximize`` and
    ``options``; its reality check against the group's run in ``benchmark_batch``, if
    named: a ValueError says why there is none) to ``path``."""
    from tickstep.report import write_optimization_report
    from tickstep.service.runs import RunsDB

    rows, request = _read(url, batch_id, options.get("symbols"))
    ran = rows[rows["status"] == "ok"]
    if rows[DAILY_RETURNS].isna().all():  # a batch that kept none: the report says how
        rows = rows.drop(columns=DAILY_RETURNS)
    elif benchmark_batch is not None and not ran.empty:
        db = RunsDB(url)
        try:
            strategy = db.batch(benchmark_batch)["strategy"]
        finally:
            db.close()
        options["benchmark"] = group_benchmark(
            _benchmark_runs(url, benchmark_batch), ran,
            f"benchmark_batch {benchmark_batch}").rename(f"{strategy} (batch {benchmark_batch})")
    write_optimization_report(rows, path, maximize=request.get("maximize", "Sharpe Ratio"),
                              **options)
    return path


def _read(url: str, batch_id: str, symbols: str | None) -> tuple[pd.DataFrame, dict[str, Any]]:
    """`batch_rows` of the runs database at ``url`` (opened for the call), and the
    batch's request."""
    from tickstep.service.runs import RunsDB

    db = RunsDB(url)
    try:
        return batch_rows(db, batch_id, symbols), db.batch(batch_id)["request"]
    finally:
        db.close()


def _each_group(rows: pd.DataFrame, symbols: str | None, refused: str,
                judge: Callable[[pd.DataFrame], dict[str, Any]]) -> list[dict[str, Any]]:
    """``judge`` of each group's rows that ran, an entry each (JSON values: a NaN figure,
    a Sharpe Ratio of no variance, as null); a group it cannot judge (a ``ValueError``),
    or none of whose runs ran, says why after ``refused``."""
    out = []
    for label, group in _groups(rows, symbols).items():
        try:
            if group.empty:
                raise ValueError(_NONE_RAN)
            out.append({"symbols": label, **judge(group)})
        except ValueError as exc:
            out.append({"symbols": label, "error": f"{refused}: {exc}"})
    return jsonable(out)
