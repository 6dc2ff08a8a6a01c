"""What runs inside a worker process: a chunk of jobs in, one row per job out.

A chunk carries the strategy (by name or pickled class), the data source, the engine
options and a few jobs (symbols + parameters). The worker loads the chunk's symbols in
one request (unless this process already has them), runs each job, and returns rows of
plain values: statistics, run time, status and, for a failed job, its traceback text.
A job's exception never escapes: it becomes that job's row.
"""

from __future__ import annotations

import contextlib
import importlib
import math
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickstep.backtest import Backtest
from tickstep.batch.jobs import Job, StrategyRef, code_fingerprint
from tickstep.batch.sources import DataSource, market_for, prefetch
from tickstep.metrics import compute_stats
from tickstep.strategy import Strategy

__all__ = ["Chunk", "run_chunk", "run_stats"]

_TRADE_STAT_COLUMNS = ("pnl", "return_pct", "commission", "bars_held", "mae", "mfe")


@dataclass(frozen=True)
class Chunk:
    """A few jobs sharing a strategy, a data source and engine options."""

    strategy: StrategyRef
    code_key: str
    source: DataSource
    options: dict[str, Any]
    options_key: str
    jobs: tuple[Job, ...]


_LOCK = threading.RLock()
_CLASSES: dict[tuple[str, str], type[Strategy]] = {}
_BACKTESTS: OrderedDict[tuple[Any, ...], Backtest] = OrderedDict()
_BACKTESTS_KEPT = 16


def _strategy_class(ref: StrategyRef, code_key: str) -> type[Strategy]:
    """The class, checked to be the code the caller hashed into the cache keys."""
    if ref.cls is not None:  # in the caller's own process
        return ref.cls
    key = (ref.token, code_key)
    cls = _CLASSES.get(key)
    if cls is not None:
        return cls
    cls = ref.load()
    if ref.payload is None and code_fingerprint(cls) != code_key:
        # A long-lived worker (Dask) imported the module before it was edited.
        importlib.reload(sys.modules[cls.__module__])
        cls = ref.load()
        if code_fingerprint(cls) != code_key:
            raise RuntimeError(
                f"the code of {ref.name} in this worker differs from the caller's; the "
                "workers run other files or an older import (restart them)"
            )
    _CLASSES[key] = cls
    return cls


def forget() -> None:
    """Drop this process's cached backtests and strategy classes."""
    with _LOCK:
        _BACKTESTS.clear()
        _CLASSES.clear()


def _backtest(chunk: Chunk, cls: type[Strategy], symbols: tuple[str, ...]) -> Backtest:
    # Keyed by the class object itself: a reloaded module's class is a new backtest.
    key = (chunk.source.token, symbols, cls, chunk.options_key)
    with _LOCK:
        bt = _BACKTESTS.get(key)
        if bt is not None:
            _BACKTESTS.move_to_end(key)
            return bt
        market, metadata = market_for(chunk.source, symbols)
        bt = Backtest(market, cls, metadata=metadata, **chunk.options)
        _BACKTESTS[key] = bt
        while len(_BACKTESTS) > _BACKTESTS_KEPT:
            _BACKTESTS.popitem(last=False)
        return bt


def _times(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


def run_stats(bt: Backtest, params: dict[str, Any]) -> pd.Series:
    """``bt.run(**params).stats``, without building the frames a batch does not keep.

    The simulation is `Backtest.run`'s; the statistics come from the same
    `~tickstep.metrics.compute_stats` on the columns it documents using (equity, gross
    exposure; trade pnl, return, commission, bars held, MAE, MFE). Fills, orders and
    positions frames are skipped: they cost more than the statistics.
    """
    engine, strategy = bt._simulate(params)
    raw = engine.trades()
    eq = engine.equity()
    # The core's objects must die on this thread: a profiler holding this frame (Dask's
    # samples every worker thread) would otherwise free them on its own thread.
    del engine, strategy
    trades = pd.DataFrame({c: raw[c] for c in _TRADE_STAT_COLUMNS})
    equity = pd.DataFrame(
        {"equity": eq["equity"], "gross_exposure": eq["gross_exposure"]}, index=_times(eq["ts"])
    )
    timeline = bt._market.timeline()
    return compute_stats(
        equity,
        trades,
        initial_cash=bt._settings["cash"],
        risk_free_rate=bt._risk_free_rate,
        start=pd.Timestamp(int(timeline[0]), tz="UTC"),
        end=pd.Timestamp(int(timeline[-1]), tz="UTC"),
    )


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
    # Free the failed run's objects now, on this thread (see run_stats).
    traceback.clear_frames(exc.__traceback__)
    return text


def run_chunk(chunk: Chunk) -> list[dict[str, Any]]:
    """Run every job of ``chunk``; return one row per job, in the chunk's order.

    Each row: ``job`` (index), ``stats`` (dict, empty on error), ``run_time`` (seconds),
    ``status`` (``"ok"`` or ``"error"``) and ``error`` (traceback text or None).
    """
    rows = []
    try:
        cls = _strategy_class(chunk.strategy, chunk.code_key)
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        text = _error_text(exc)
        return [_row(job, {}, 0.0, "error", text) for job in chunk.jobs]
    # One load for the whole chunk; a failure here is reported by each job below.
    with contextlib.suppress(Exception):
        prefetch(chunk.source, sorted({s for job in chunk.jobs for s in job.symbols}))
    for job in chunk.jobs:
        t0 = time.perf_counter()
        try:
            bt = _backtest(chunk, cls, job.symbols)
            stats = run_stats(bt, job.params)
            row = _row(job, {str(k): _plain(v) for k, v in stats.items()},
                       time.perf_counter() - t0, "ok", None)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            row = _row(job, {}, time.perf_counter() - t0, "error", _error_text(exc))
        rows.append(row)
    return rows


def _row(job: Job, stats: dict[str, Any], run_time: float, status: str, error: str | None) -> dict[str, Any]:
    return {
        "job": job.index,
        "stats": stats,
        "run_time": float(run_time) if math.isfinite(run_time) else 0.0,
        "status": status,
        "error": error,
    }
