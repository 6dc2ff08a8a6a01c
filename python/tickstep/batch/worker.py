"""What runs inside a worker process: a chunk of jobs in, one row per job out.

A chunk carries the strategy (by name or pickled class), the data source, the
`~tickstep.BacktestConfig` and a few jobs (symbols + parameters). The worker loads the chunk's symbols in
one request (unless this process already has them), runs each job, and returns rows of
plain values: statistics, run time, status and, for a failed job, its traceback text.
A job's exception never escapes: it becomes that job's row.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
import traceback
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickstep.batch.jobs import Job, StrategyRef
from tickstep.batch.sources import DataSource
from tickstep.batch.worker_cache import WorkerCache
from tickstep.config import BacktestConfig
from tickstep.data._records import RecordTable, read_record_snapshot
from tickstep.rejections import quiet_runs
from tickstep.signals import is_signal_strategy, strategy_grid_stats
from tickstep.significance import DAILY_RETURNS
from tickstep.simulation import simulate_stats, simulate_stream

__all__ = ["Chunk", "forget_record_snapshots", "run_chunk"]


@dataclass(frozen=True)
class Chunk:
    """A few jobs sharing a strategy, a data source and a config."""

    strategy: StrategyRef
    code_key: str
    source: DataSource
    config: BacktestConfig
    jobs: tuple[Job, ...]
    #: Analysis tables as (name, snapshot path) pairs (see `tickstep.data.RecordSet`).
    records: tuple[tuple[str, str], ...] = ()
    #: Threads of a `~tickstep.SignalStrategy`'s native grid (None: all cores).
    threads: int | None = 1
    #: Each row also keeps the run's daily returns (``stats[DAILY_RETURNS]``).
    returns: bool = False


def _plain(value: Any) -> Any:
    """Statistics as plain Python values, so every executor hands back equal rows."""
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, np.datetime64):
        return pd.Timestamp(value)
    if isinstance(value, np.timedelta64):
        return pd.Timedelta(value)
    return value


def _error_text(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc)).rstrip()
    # Free the failed run's objects now, on this thread (see simulation.simulate_stats).
    traceback.clear_frames(exc.__traceback__)
    return text


def run_chunk(chunk: Chunk, cache: WorkerCache | None = None) -> list[dict[str, Any]]:
    """Run every job of ``chunk``; return one row per job, in the chunk's order.

    ``cache`` is the batch's own when the chunk runs in the batch's process; elsewhere
    the worker process's (`WorkerCache.of_process`).

    Each row: ``job`` (index), ``stats`` (dict, empty on error), ``run_time`` (seconds),
    ``status`` (``"ok"`` or ``"error"``) and ``error`` (traceback text or None).
    """
    if cache is None:
        cache = WorkerCache.of_process()
    rows = []
    try:
        cls = cache.strategy_class(chunk.strategy, chunk.code_key)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = _error_text(exc)
        return [_row(job, {}, 0.0, "error", text) for job in chunk.jobs]
    # Rejections are counted in each row and warned about once by the batch.
    config = quiet_runs(chunk.config)
    if config.stream is not None:
        return [_run_streamed(chunk, cls, job) for job in chunk.jobs]
    # One load for the whole chunk; a failure here is reported by each job below.
    with contextlib.suppress(Exception):
        cache.prefetch(chunk.source, sorted({s for job in chunk.jobs for s in job.symbols}))
    if is_signal_strategy(cls):
        return _run_signal_chunk(chunk, cls, cache)
    for job in chunk.jobs:
        t0 = time.perf_counter()
        try:
            market = cache.market(chunk.source, job.symbols)
            records = {name: _record_table(path).subset(list(market.market.symbols))
                       for name, path in chunk.records}
            ran = simulate_stats(
                market.market, cls, config, job.params,
                metadata=market.metadata, ends=market.session_ends(config.timezone),
                records=records, returns=chunk.returns,
            )
            row = _row(job, _stats_row(ran), time.perf_counter() - t0, "ok", None)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            row = _row(job, {}, time.perf_counter() - t0, "error", _error_text(exc))
        rows.append(row)
    return rows


def _run_streamed(chunk: Chunk, cls: Any, job: Job) -> dict[str, Any]:
    """One job of a streamed batch (``stream=`` in its config): its bars read window by
    window from the chunk's source, never held whole; the same statistics as the job
    run in memory."""
    t0 = time.perf_counter()
    try:
        stream = chunk.source.stream(job.symbols, chunk.config.stream)
        try:
            records = {name: _record_table(path).subset(list(stream.symbols))
                       for name, path in chunk.records}
            config = quiet_runs(chunk.config)
            result = simulate_stream(stream, cls, config, job.params, records=records,
                                     marks=False)
        finally:
            stream.close()
        ran = (result.stats, result.daily_returns()) if chunk.returns else result.stats
        return _row(job, _stats_row(ran), time.perf_counter() - t0, "ok", None)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        return _row(job, {}, time.perf_counter() - t0, "error", _error_text(exc))


@functools.lru_cache(maxsize=8)
def _record_table(path: str) -> RecordTable:
    """An analysis table's snapshot, read once per process (a batch writes each once)."""
    return read_record_snapshot(path)


def forget_record_snapshots() -> None:
    """Drop the tables read in this process (the batch that wrote them has ended)."""
    _record_table.cache_clear()


def _run_signal_chunk(chunk: Chunk, cls: Any, cache: WorkerCache) -> list[dict[str, Any]]:
    """The jobs of a `~tickstep.SignalStrategy`: each symbol group's parameter sets in
    native grids (`tickstep.signals.strategy_grid_stats`), one row per job as if run alone
    (its parameters by symbol narrowed to its symbols); a job's run time is its share of
    its group's."""
    groups: dict[tuple[str, ...], list[Job]] = {}
    for job in chunk.jobs:
        groups.setdefault(job.symbols, []).append(job)
    config = quiet_runs(chunk.config)
    done: dict[int, dict[str, Any]] = {}
    for symbols, jobs in groups.items():
        t0 = time.perf_counter()
        try:
            market = cache.market(chunk.source, symbols)
            results = strategy_grid_stats(
                market.market, cls, config, [job.params for job in jobs],
                metadata=market.metadata, ends=market.session_ends(config.timezone),
                threads=chunk.threads, returns=chunk.returns, part=True,
            )
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            results = [exc] * len(jobs)
        share = (time.perf_counter() - t0) / len(jobs)
        for job, result in zip(jobs, results):
            if isinstance(result, BaseException):
                done[job.index] = _row(job, {}, share, "error", _error_text(result))
            else:
                done[job.index] = _row(job, _stats_row(result), share, "ok", None)
    return [done[job.index] for job in chunk.jobs]


def _stats_row(ran: Any) -> dict[str, Any]:
    """A run's statistics as a row keeps them (plain values); a run's (statistics, daily
    returns) adds the returns under `DAILY_RETURNS`."""
    stats, daily = ran if isinstance(ran, tuple) else (ran, None)
    row = {str(k): _plain(v) for k, v in stats.items()}
    if daily is not None:
        row[DAILY_RETURNS] = daily
    return row


def _row(job: Job, stats: dict[str, Any], run_time: float, status: str, error: str | None) -> dict[str, Any]:
    return {
        "job": job.index,
        "stats": stats,
        "run_time": float(run_time) if math.isfinite(run_time) else 0.0,
        "status": status,
        "error": error,
    }
