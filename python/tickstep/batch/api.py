"""`run_batch` and `optimize`: many backtests in one call, one row per job."""

from __future__ import annotations

import math
import sqlite3
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep._core import ConfigError
from tickstep.batch.cache import ResultsCache, default_cache_dir
from tickstep.batch.executors import execute, make_backend
from tickstep.batch.jobs import (
    Job,
    Params,
    _digest,
    code_fingerprint,
    engine_fingerprint,
    grid_axes,
    job_key,
    options_fingerprint,
    resolve_strategy,
)
from tickstep.batch.objectives import PARETO_RANK, Objective
from tickstep.batch.progress import make_progress
from tickstep.batch.search import option_of, search_of
from tickstep.batch.sources import default_scratch_dir, prepare_data, snapshot_path
from tickstep.batch.worker import Chunk, forget_record_snapshots
from tickstep.batch.worker_cache import WorkerCache
from tickstep.config import BacktestConfig, check_symbols, read_benchmark, split_options
from tickstep.data import LOAD_OPTIONS, BarStore, MarketColumns, SymbolBars, open_store
from tickstep.data._arrow import readable_twice
from tickstep.data._records import RecordTable, records_for_backtest, write_record_snapshot
from tickstep.metrics import STAT_LABELS
from tickstep.rejections import TickstepWarning, caller_outside_tickstep, warn_of_rejected_runs
from tickstep.signals import check_symbols_named, is_signal_strategy
from tickstep.strategy import Strategy

__all__ = ["optimize", "run_batch"]

ROW_TAIL = ("run_time", "status", "error", "cached")
#: Forked workers take the bars the parent holds (copy-on-write pages, nothing pickled)
#: instead of each loading them; off, they always load from the data source.
SHARE_WITH_FORKED_WORKERS = True
_RESERVED = {"symbols", "score", PARETO_RANK, *ROW_TAIL, *STAT_LABELS}


def _open_cache(cache: Any, data: Any) -> ResultsCache | None:
    if cache is None or cache is False:
        return None
    if isinstance(cache, ResultsCache):
        return cache
    if isinstance(cache, (str, PathLike)):
        return ResultsCache(cache)
    if cache is True:
        path = getattr(data, "path", data)
        if isinstance(path, (str, PathLike)) and str(path) != ":memory:":
            p = Path(path).expanduser()
            if p.exists() and not str(path).startswith(("postgres:", "postgresql:")):
                # Beside the store: results live and go with their data.
                beside = p.with_name(p.name + ".results.sqlite")
                try:
                    return ResultsCache(beside)
                except (OSError, sqlite3.Error):  # a read-only directory: the user cache
                    pass
        return ResultsCache(default_cache_dir())
    raise TypeError(f"cache must be True, False, a path or a ResultsCache, got {cache!r}")


def _groups(
    symbols: Sequence[str] | Mapping[str, Sequence[str]] | None, portfolio: bool
) -> tuple[list[str] | None, dict[str, tuple[str, ...]] | None]:
    """(symbols to load, named groups or None for one group per symbol / one portfolio)."""
    if isinstance(symbols, str):
        symbols = [symbols]
    if symbols is not None and len(symbols) == 0:
        raise ValueError("symbols is empty: pass None for every symbol of the data")
    if isinstance(symbols, Mapping):
        # Each group in the order given: the order `next` sees its symbols in.
        groups = {str(k): tuple(dict.fromkeys(v)) for k, v in symbols.items()}
        for label, syms in groups.items():
            if not syms:
                raise ValueError(f"symbol group {label!r} is empty")
        return sorted({s for g in groups.values() for s in g}), groups
    return (None if symbols is None else list(symbols)), None


def _values(params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None
            ) -> list[tuple[str, Any]]:
    """Every (name, value) a batch's ``params`` may run (a grid's values or the sets')."""
    if params is None:
        return []
    if isinstance(params, Mapping):
        return [(name, value) for name, values in grid_axes(params).items() for value in values]
    return [item for p in params for item in p.items()]


def _chunk_size(n_jobs: int, workers: int) -> int:
    # ~8 tasks per worker balances load and keeps what a kill can lose small, while
    # amortising the per-task cost (a pickle round trip, a data load).
    return max(1, min(32, math.ceil(n_jobs / (8 * max(1, workers)))))


def run_batch(
    strategy: type[Strategy] | str,
    data: Any,
    *,
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
    symbols: Sequence[str] | Mapping[str, Sequence[str]] | None = None,
    portfolio: bool = False,
    maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
    constraint: Callable[[Params], bool] | None = None,
    max_tries: int | float | None = None,
    random_state: int = 0,
    method: Any = "grid",
    round_size: int | None = None,
    return_optimization: bool = False,
    returns: bool = False,
    executor: Any = None,
    max_workers: int | None = None,
    chunk_size: int | None = None,
    cache: bool | str | PathLike[str] | ResultsCache = True,
    refresh: bool = False,
    progress: bool | None = None,
    start: Any = None,
    end: Any = None,
    load_options: Mapping[str, Any] | None = None,
    scratch_dir: str | PathLike[str] | None = None,
    config: BacktestConfig | None = None,
    on_rows: Callable[[list[dict[str, Any]]], None] | None = None,
    records: Any = None,
    **options: Any,
) -> pd.DataFrame | tuple[pd.DataFrame, dict[str, Any]]:
    """Run one strategy over many symbols and parameter sets; one row per backtest.

    Parameters
    ----------
    strategy : type[Strategy] or str
        The class, ``"module:Class"``, or a plugin name (entry-point group
        ``tickstep.strategies``).
    data : store, path, URL, MarketColumns, DataFrame or mapping
        Anything `tickstep.Backtest` accepts. Workers load their own bars from a store
        or file; in-memory data is written once to a snapshot file they read.
    params : mapping or sequence of mappings, optional
        ``{name: values}`` for a grid (Cartesian product), or a list of parameter sets.
        Scalars and strings are single values. None: the strategy's defaults.
    symbols : sequence of str or mapping, optional
        Which symbols (all by default). A mapping ``{name: [symbols]}`` makes named
        portfolios, one job per group.
    portfolio : bool, default False
        False: each symbol is its own backtest. True: all symbols in one backtest,
        labelled ``"portfolio"``.
    maximize : str, callable, list or dict, default "Sharpe Ratio"
        The statistic rows are sorted by, best first; or ``f(stats) -> float`` on each
        job's statistics (a ``pd.Series``), stored in a ``score`` column. Several
        statistics (a list, each maximised, or ``{statistic: "max" or "min"}``) rank the
        rows by Pareto dominance within each symbol group, in a ``Pareto Rank`` column
        (1: no other set is as good by every objective and better by one), then by the
        first objective; a model-based search is then multi-objective. See
        `tickstep.batch.objectives`.
    constraint : callable, optional
        ``constraint(p) -> bool`` keeps the parameter sets it accepts; ``p`` reads as a
        dict or by attribute (``lambda p: p.fast < p.slow``).
    max_tries : int or float, optional
        A random search: run only this many of the parameter sets the constraint keeps,
        drawn without replacement (a whole number), or this fraction of them (a float in
        (0, 1], at least one set), in grid order (backtesting.py's ``max_tries``). All of
        them by default.
    random_state : int, default 0
        The seed of that draw (or of the model-based search): the same one draws the
        same sets, so a search is repeatable (and cached) as a whole grid is.
    method : "grid", "optuna" or an optuna sampler, default "grid"
        How the sets are chosen. ``"grid"``: every set the constraint keeps, or with
        ``max_tries`` a random draw of them. ``"optuna"``: a model-based search of
        ``max_tries`` sets (needed), optuna's TPE sampler seeded by ``random_state``
        proposing sets in rounds of `tickstep.batch.search.ROUND` from the objective
        (``maximize``) of those run before; an optuna sampler instance
        (``optuna.samplers.GPSampler(seed=1)``, ...) searches with it instead. Each
        symbol group has its own search. Needs ``pip install 'tickstep[search]'``; see
        `tickstep.batch.search`.
    round_size : int, optional
        The sets a model-based search proposes before it is told how they did (8 by
        default, whatever the machine: the same seed, the same search). A cluster of many
        workers wants more; fewer follow the model more closely.
    return_optimization : bool, default False
        Also return each symbol group's ``optuna.Study`` (None for a grid): ``(rows,
        {label: study})``, every set proposed, its objective, or why it did not run.
    returns : bool, default False
        Each row also keeps its run's daily returns (a ``Daily Returns`` column of Series,
        as `tickstep.Result.daily_returns`), for
        `tickstep.significance.backtest_overfitting`. Cached apart from rows without.
    executor : None, "process", "sequential", dask Client or Executor
        None or ``"process"``: local worker processes, ``min(cores, tasks)`` of them
        (or ``max_workers``). ``"sequential"``: in this process, for debugging. A
        ``dask.distributed.Client``: its cluster (workers must see the data's path).
        Any ``concurrent.futures.Executor`` works too.
    max_workers : int, optional
        Worker processes for the local pool.
    chunk_size : int, optional
        Jobs per task (automatic by default).
    cache : bool, path or ResultsCache, default True
        True: the results cache beside the store (``<store>.results.sqlite``), else in
        ``~/.cache/tickstep``. A path (directory or ``.sqlite`` file) or a
        `ResultsCache` to choose; False to neither read nor write it.
    refresh : bool, default False
        Recompute every job, replacing what the cache holds.
    progress : bool, optional
        Show a progress bar on stderr; by default only when stderr is a terminal.
    start, end : optional
        Time range of the data (inclusive), as for `tickstep.Backtest`.
    load_options : mapping, optional
        Passed to the store's ``load`` (``regular_hours``, ``timeframe``); they may also
        be passed by name among ``**options``.
    scratch_dir : path, optional
        Where snapshots of in-memory data are written (a directory all workers see).
    config : BacktestConfig, optional
        The options of every run; options passed by name override it.
    on_rows : callable, optional
        Called with each finished task's computed rows as they arrive (``job``,
        ``symbols`` label, ``params``, ``stats``, ``run_time``, ``status``, ``error``):
        how the HTTP service records progress while the batch runs.
    records : list of str or mapping, optional
        Analysis tables the strategy reads with ``self.records`` (as for
        `tickstep.Backtest`; or the loaded tables of ``Backtest.records``). They are
        read once here, written once to a snapshot file per table for the workers, and
        part of every job's cache key.
    **options
        Options of `tickstep.BacktestConfig` for every run (``cash``, ``commission``,
        ``slippage``, ``sizer``, ...) or load options; any other name is refused with a
        "did you mean" hint.

    Returns
    -------
    pandas.DataFrame
        One row per job, indexed by ``job`` (its position in the batch: symbol groups
        in order, parameter sets varying fastest), sorted by ``maximize`` (best first,
        failures last, ties in job order; several objectives: by ``Pareto Rank``, then
        the first objective). Columns: the parameters, ``symbols`` (the
        symbol, ``"portfolio"`` or the group name), every statistic of
        `tickstep.metrics.compute_stats`, ``run_time`` (seconds), ``status``
        (``"ok"``, ``"error"`` or ``"crashed"``), ``error`` (traceback text) and
        ``cached`` (answered from the cache). ``df.attrs["batch"]`` holds counts and
        timings.

    Raises
    ------
    tickstep.ConfigError
        Unknown or invalid options (naming the option, with a hint).
    TypeError
        Unknown parameter names (with a hint), or an unusable executor.
    ValueError
        No parameter set left after ``constraint``, or an unknown ``maximize``.

    Notes
    -----
    A job's cache key hashes its bars and metadata, the strategy's source code (its
    module and the user modules it imports from), the parameters, the engine options
    and tickstep's own code: any change misses, anything unchanged is a hit. Rows are
    written to the cache as each task finishes, so an interrupted batch, started
    again, runs only what is missing.

    Examples
    --------
    >>> import tickstep.data as td
    >>> from tickstep.batch import run_batch
    >>> rows = run_batch("rsi_mean_reversion", td.example_daily(),
    ...                  params={"oversold": [25, 30]}, cache=False)
    >>> len(rows), rows["status"].unique().tolist()
    (16, ['ok'])
    >>> list(rows.columns[:2]), rows["Sharpe Ratio"].is_monotonic_decreasing
    (['oversold', 'symbols'], True)
    """
    t_start = time.perf_counter()
    config_options, more_load_options = split_options(options, LOAD_OPTIONS)
    if config is not None and not isinstance(config, BacktestConfig):
        raise TypeError(f"config must be a tickstep.BacktestConfig, got {type(config).__name__}")
    config = (config or BacktestConfig()).replace(**config_options)
    load_options = {**dict(load_options or {}), **more_load_options}
    ref = resolve_strategy(strategy)
    cls = ref.load()
    if records and is_signal_strategy(cls):
        raise ConfigError(f"records=: {cls.__name__} is a SignalStrategy, whose signals() "
                          "reads its bars only; analysis tables are for strategies' next()")
    if config.stream is not None and is_signal_strategy(cls):
        raise ConfigError(f"stream=: {cls.__name__} is a SignalStrategy, whose signals() are "
                          "computed over every bar at once (signals mode holds the market in "
                          "memory); run it without stream=, or as a Strategy with next()")

    def check(p: dict[str, Any]) -> dict[str, Any]:
        # Checked once here (names and declared types), then run with the checked values.
        clash = sorted(set(p) & _RESERVED)
        if clash:
            raise ConfigError(f"parameter name(s) {clash} collide with result columns")
        return cls.check_parameters(p)

    for name, flag in (("return_optimization", return_optimization), ("returns", returns)):
        if flag is not True and flag is not False:
            raise ConfigError(f"{name}={flag!r}: True or False")
    objective = Objective(maximize)
    new_search = search_of(method, params, constraint, max_tries, random_state, check,
                           round_size, objective.directions)

    store = _open_cache(cache, data)
    load_request, groups = _groups(symbols, portfolio)
    # What this batch's process and the workers forked from it hold; closed at the end.
    held = WorkerCache()
    prepared = None
    snapshots: list[tuple[str, str]] = []  # analysis tables written for the workers
    if isinstance(config.benchmark, str):
        # A benchmark symbol is read after the batch's symbols (below).
        data = readable_twice(data)
    try:
        prepared = prepare_data(
            data,
            symbols=load_request,
            start=start,
            end=end,
            load_options=load_options,
            cache=store,
            scratch_dir=Path(scratch_dir) if scratch_dir is not None else None,
            stream=config.stream,
        )
        if symbols is None:
            # Every symbol of the data: one a schedule names must be among them. (With a
            # selection, a schedule of a symbol left out is kept for the runs that have it.)
            check_symbols(config, prepared.symbols)
            read_benchmark(config, data, prepared.symbols, every_symbol=True)  # refuses only
            if is_signal_strategy(cls):
                check_symbols_named(cls, _values(params), prepared.symbols)
        # A benchmark symbol is read from the data once, for every group: each measures
        # against it, whether or not the group holds it (each symbol alone against SPY).
        config = read_benchmark(config, data, (), start=start, end=end,
                                load_options=load_options)
        if groups is None:
            groups = (
                {"portfolio": tuple(prepared.call_order)}
                if portfolio
                else {s: (s,) for s in prepared.symbols}
            )
        searches = {label: new_search() for label in groups}
        total = sum(search.total for search in searches.values())

        code_fp = code_fingerprint(cls)
        tables = _record_tables(data, records, prepared.symbols, symbols is not None, start, end)
        # The jobs' cache keys, when there is a cache to look them up in (without one,
        # the data need not even be fingerprinted).
        keys: list[str] = []
        if store is not None:
            engine_fp = engine_fingerprint()
            # Rows with their daily returns are other rows than those without.
            options_fp = options_fingerprint({**config.options(),
                                              **({"daily returns": True} if returns else {})})
            data_keys = {label: prepared.data_key(syms) for label, syms in groups.items()}
            if tables:  # the records are part of every job's data
                records_fp = _digest(*(f"{n}={t.fingerprint()}" for n, t in sorted(tables.items())))
                data_keys = {label: _digest(key, records_fp) for label, key in data_keys.items()}
        jobs: list[Job] = []
        rows: dict[int, dict[str, Any]] = {}
        ranked: dict[int, tuple[float, ...]] = {}  # each job's objectives, as ranked
        ran = 0
        # A SignalStrategy's sets run as native grids on all cores in this process (one
        # chunk per symbol group); other strategies go to the executor's workers.
        native = is_signal_strategy(cls) and executor is None
        backend = None
        t_prepared = time.perf_counter()
        bar = make_progress(progress, total, 0)

        def collect(done: list[dict[str, Any]]) -> None:
            fresh = {}
            for row in done:
                row = {**row, "cached": False}
                rows[row["job"]] = row
                if store is not None and row["status"] != "crashed":  # a crash may not recur
                    fresh[keys[row["job"]]] = {k: v for k, v in row.items()
                                               if k not in ("job", "cached")}
            if store is not None:
                store.put(fresh)
            bar.update(len(done))
            if on_rows is not None:
                on_rows([{**r, "symbols": jobs[r["job"]].label,
                          "params": dict(jobs[r["job"]].params)} for r in done])

        try:
            # The grid is one round. A model-based search proposes a round of sets for
            # each group, is told how they did, and proposes again until it is done.
            while True:
                fresh_jobs = [Job(len(jobs) + i, label, groups[label], p)
                              for i, (label, p) in enumerate(
                                  (label, p) for label, search in searches.items()
                                  for p in search.propose())]
                if not fresh_jobs:
                    break
                jobs += fresh_jobs
                if store is not None:
                    keys += [job_key(engine=engine_fp, code=code_fp, options=options_fp,
                                     data=data_keys[job.label], params=job.params)
                             for job in fresh_jobs]
                    found = {} if refresh else store.get_many(keys[fresh_jobs[0].index:])
                    for job in fresh_jobs:
                        hit = found.get(keys[job.index])
                        if hit is not None:
                            rows[job.index] = {**hit, "job": job.index, "cached": True}
                    bar.update(sum(job.index in rows for job in fresh_jobs))
                missing = [job for job in fresh_jobs if job.index not in rows]
                if missing:
                    if backend is None:
                        backend = make_backend("sequential" if native else executor,
                                               total - len(rows), max_workers, cache=held)
                        source = prepared.source()
                        # A streamed batch's jobs each read their windows (nothing held to share).
                        if (SHARE_WITH_FORKED_WORKERS and backend.shares_memory
                                and config.stream is None):
                            # Workers forked from here (or this process itself) share what
                            # it holds; loading once here beats a query per task. Others
                            # (and a later round's symbols not loaded here) load from
                            # `source`.
                            columns = prepared.loaded
                            if columns is None:
                                # No database handle is left open across the fork.
                                columns = source.load(sorted({s for job in missing
                                                              for s in job.symbols}))
                            held.seed(source, columns)
                        scratch = (Path(scratch_dir) if scratch_dir is not None
                                   else default_scratch_dir())
                        for name, table in tables.items():
                            written = snapshot_path(scratch, f"records_{name}")
                            write_record_snapshot(table, written)
                            snapshots.append((name, str(written)))
                    size = chunk_size or _chunk_size(len(missing), backend.capacity)
                    if native:
                        by_group: dict[str, list[Job]] = {}
                        for job in missing:
                            by_group.setdefault(job.label, []).append(job)
                        chunks = [Chunk(ref, code_fp, source, config, tuple(group),
                                        threads=max_workers, returns=returns)
                                  for group in by_group.values()]
                    else:
                        chunks = [Chunk(ref, code_fp, source, config,
                                        tuple(missing[i : i + size]), records=tuple(snapshots),
                                        returns=returns)
                                  for i in range(0, len(missing), size)]
                    ran += len(missing)
                    execute(chunks, backend, collect)
                told: dict[str, list[tuple[float, ...]]] = {label: [] for label in searches}
                for job in fresh_jobs:  # in each group's order proposed
                    ranked[job.index] = objective.values(rows[job.index])
                    told[job.label].append(ranked[job.index])
                for label, search in searches.items():
                    search.tell(told[label])
        finally:
            bar.close()
            if backend is not None:
                backend.close()
    finally:
        if prepared is not None:
            prepared.cleanup()
        for _, path in snapshots:
            Path(path).unlink(missing_ok=True)
        if snapshots:
            forget_record_snapshots()
        held.close()
        if store is not None and store is not cache:
            store.close()
    frame = _frame(jobs, rows, objective, ranked)
    # One warning for the batch (its runs, here or in workers, warn of none themselves),
    # cached rows included: they are this call's results too.
    warn_of_rejected_runs(((_job_label(job), rows[job.index]["stats"].get("# Orders Rejected"))
                           for job in jobs), config.on_reject)
    # A run that raised is its row (the others go on), never silent: one warning names them.
    warn_of_failed_runs([(_job_label(job), rows[job.index]) for job in jobs])
    _warn_if_none_is_best(frame, objective)
    frame.attrs["batch"] = {
        "jobs": len(jobs),
        "cached": len(jobs) - ran,
        "ran": ran,
        "prepare_seconds": t_prepared - t_start,
        "seconds": time.perf_counter() - t_start,
        "cache": None if store is None else str(store.path),
    }
    if return_optimization:
        return frame, {label: search.study for label, search in searches.items()}
    return frame


class FailedRunWarning(TickstepWarning):
    """A batch (``run_batch``, ``Backtest.optimize``, a walk-forward's train windows) had
    runs that raised or killed their worker process: their rows' ``status`` is
    ``"error"`` or ``"crashed"``, with the traceback or the cause in ``error``."""


def warn_of_failed_runs(runs: list[tuple[str, dict[str, Any]]], *,
                        where: str = "Their rows' status is 'error' ('crashed': the run "
                                     "killed its worker process), their 'error' the "
                                     "traceback") -> int:
    """Warn once about the runs (label, row) of one call whose status is not ``"ok"``,
    naming the first few with their error in a line; ``where`` says where the
    caller finds the rest. Returns how many failed."""
    failed = [(label, row) for label, row in runs if row["status"] != "ok"]
    if failed:
        lines = [f"{len(failed)} of {len(runs)} runs failed; the first:"]
        lines += [f"  {label}: {_error_in_a_line(row['error'])}" for label, row in failed[:5]]
        lines.append(f"{where}.")
        warnings.warn("\n".join(lines), FailedRunWarning, stacklevel=caller_outside_tickstep())
    return len(failed)


def _warn_if_none_is_best(frame: pd.DataFrame, objective: Objective) -> None:
    """Warn when no run that finished has every objective defined: the rows then keep
    job order and the first is no better than the others (no trades, or a flat equity,
    leave a Sharpe Ratio undefined)."""
    ok = frame[frame["status"] == "ok"]
    undefined = (ok[objective.columns[0]].isna() if not objective.several
                 else ok[objective.columns].isna().any(axis=1))
    if len(ok) and undefined.all():
        is_nan = "is NaN" if not objective.several else "leave one NaN"
        warnings.warn(
            f"{objective.describe()} {is_nan} in every run that finished ({len(ok)} of "
            f"{len(frame)}): the rows keep job order and none is best; check the runs' "
            "# Trades, or maximize another statistic", TickstepWarning,
            stacklevel=caller_outside_tickstep())


def _error_in_a_line(error: str | None) -> str:
    """A run's error in a line: of a traceback, the exception that ended it (the first
    line after its last frame) and the notes tickstep added to it (where it was raised);
    else the text's first line (a crash's cause)."""
    text = (error or "").strip()
    if not text:
        return "no error recorded"
    last = text.rsplit("Traceback (most recent call last):", 1)[-1]
    # Frames are indented; the exception's first line is not, nor are the notes.
    tail = [line.strip() for line in last.splitlines() if line.strip() and not line[0].isspace()]
    if not tail:
        return text.splitlines()[0]
    return "; ".join([tail[0], *(line for line in tail[1:] if line.startswith("tickstep: "))])


def run_label(label: Any, params: Mapping[str, Any]) -> str:
    """A run of many as a warning names it: ``label (name=value, ...)``."""
    text = ", ".join(f"{k}={v!r}" for k, v in params.items())
    return f"{label} ({text})" if text else str(label)


def _job_label(job: Job) -> str:
    """A job as a warning names it: its symbols' label and its parameters."""
    return run_label(job.label, job.params)


def _frame(
    jobs: list[Job], rows: dict[int, dict[str, Any]], objective: Objective,
    ranked: dict[int, tuple[float, ...]] | None = None,
) -> pd.DataFrame:
    """The results table of ``jobs``, best first; ``ranked``: each job's objectives, as
    the search computed them (else computed here)."""
    param_names = list(dict.fromkeys(name for job in jobs for name in job.params))
    stat_names = list(dict.fromkeys([*STAT_LABELS, *(n for r in rows.values() for n in r["stats"])]))
    ordered = [rows[job.index] for job in jobs]
    stats = [row["stats"] for row in ordered]
    # Built a column at a time (a list per column): a dict per row for
    # `DataFrame.from_records` took 1.7x as long (the 633-job grid of `batch_rsi.py`:
    # 9.9 ms against 5.9 alone, 21 against 12 right after its workers' run).
    columns: dict[str, list[Any]] = {n: [job.params.get(n, np.nan) for job in jobs]
                                     for n in param_names}
    columns["symbols"] = [job.label for job in jobs]
    for n in stat_names:
        columns[n] = [s.get(n, np.nan) for s in stats]
    if ranked is None:
        ranked = {job.index: objective.values(rows[job.index]) for job in jobs}
    if objective.function is not None:
        columns["score"] = [ranked[job.index][0] for job in jobs]
    for n in ROW_TAIL:
        columns[n] = [row[n] for row in ordered]
    frame = pd.DataFrame(columns, index=pd.RangeIndex(len(jobs), name="job"))
    for n in stat_names:  # all-NaN columns of timestamps/durations keep their dtype
        if frame[n].dtype == object:
            frame[n] = _infer(frame[n])
    values = (np.array([ranked[job.index] for job in jobs], dtype=float)
              .reshape(len(jobs), len(objective.columns)) if objective.several else None)
    return objective.rank(frame, values)


def _infer(column: pd.Series) -> pd.Series:
    values = column.dropna()
    if len(values) and all(isinstance(v, pd.Timestamp) for v in values):
        return pd.to_datetime(column, utc=True)
    if len(values) and all(isinstance(v, pd.Timedelta) for v in values):
        return pd.to_timedelta(column)
    return column.infer_objects()


def _record_tables(data: Any, records: Any, symbols: list[str], selected: bool, start: Any,
                   end: Any) -> dict[str, RecordTable]:
    """``records=`` of a batch as loaded tables for its symbols (names are read from the
    data's store, opened here once)."""
    if not records:
        return {}
    names_only = isinstance(records, (str, list, tuple)) or (
        isinstance(records, Mapping) and any(v is None for v in records.values()))
    if names_only and isinstance(data, (str, PathLike)):
        with open_store(data) as store:
            return records_for_backtest(store, records, symbols, selected=selected,
                                        start=start, end=end)
    source = data if isinstance(data, BarStore) else None
    return records_for_backtest(source, records, symbols, selected=selected, start=start,
                                end=end)


def _market_columns(market: _core.Market, metadata: pd.DataFrame | None) -> MarketColumns:
    big = 1 << 62
    bars = []
    for i, name in enumerate(market.symbols):
        cols = [market.column(i, c, 0, big) for c in ("ts", "open", "high", "low", "close", "volume")]
        extra = {c: market.column(i, c, 0, big) for c in market.columns if market.has_column(i, c)}
        # The core holds validated bars.
        bars.append(SymbolBars._trusted(name, *cols, extra=extra))
    names = market.symbols
    return MarketColumns(bars, metadata).in_order(names[i] for i in market.call_order)


def optimize(
    backtest: Any,
    *,
    maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
    constraint: Callable[[Params], bool] | None = None,
    max_tries: int | float | None = None,
    random_state: int = 0,
    executor: Any = None,
    max_workers: int | None = None,
    cache: bool | str | PathLike[str] | ResultsCache = True,
    progress: bool | None = None,
    **ranges: Any,
) -> pd.DataFrame:
    """Run ``backtest`` over a parameter grid; rows sorted best first.

    ``Backtest.optimize`` calls this. Each parameter set is one run over all the
    backtest's symbols together, as `Backtest.run` does.

    Parameters
    ----------
    backtest : tickstep.Backtest
        Its strategy, market, metadata and config (read through its public API).
    maximize, constraint, max_tries, random_state, executor, max_workers, cache, progress
        As for `run_batch` (``max_tries``: a random search over the grid, or the sets a
        model-based ``method`` runs).
    **ranges
        ``name=values`` for each parameter to vary (a scalar is a fixed value); and
        ``method=`` as for `run_batch`, unless the strategy has a parameter of that name
        (as `tickstep.Backtest.optimize`; its study: ``return_optimization=True`` there).

    Returns
    -------
    pandas.DataFrame
        As `run_batch` returns: ``.iloc[0]`` is the best parameter set.

    Examples
    --------
    >>> import tickstep
    >>> from tickstep.batch import optimize
    >>> from tickstep.strategies import SmaCross
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    >>> rows = optimize(bt, fast=[5, 10, 20], slow=[30, 60], cache=False,
    ...                 constraint=lambda p: p.fast < p.slow)
    >>> best = rows.iloc[0]
    >>> stats = bt.run(fast=int(best["fast"]), slow=int(best["slow"])).stats
    >>> bool(stats["Sharpe Ratio"] == best["Sharpe Ratio"])
    True
    """
    method = option_of(backtest.strategy, ranges, "method", "grid")
    if not ranges:
        raise TypeError("optimize needs at least one parameter range, e.g. fast=[5, 10, 20]")
    return run_batch(
        backtest.strategy,
        _market_columns(backtest.market, backtest.metadata),
        params=ranges,
        portfolio=True,
        maximize=maximize,
        constraint=constraint,
        max_tries=max_tries,
        random_state=random_state,
        method=method,
        executor=executor,
        max_workers=max_workers,
        cache=cache,
        progress=progress,
        config=backtest.config,
        records=backtest.records or None,
    )
