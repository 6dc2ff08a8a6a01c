"""Batch runs: one strategy over many symbols and parameter sets, in parallel, cached.

>>> from tickstep.batch import run_batch, optimize, ResultsCache, SequentialExecutor

`run_batch` expands a parameter grid over symbols (each alone, or as one portfolio),
answers what it can from the results cache, runs the rest on an executor -- local
processes by default, ``"sequential"`` for debugging, or a ``dask.distributed.Client`` --
and returns one row per job, sorted by the chosen statistic. `optimize` does the same for
an existing `tickstep.Backtest` (``Backtest.optimize`` calls it).

Workers load their own bars (store, file, or a snapshot written once for in-memory
data); a job that raises or kills its worker is reported in its row while every other
job completes, and the call warns once naming those runs (`FailedRunWarning`).
"""

from tickstep.batch.api import FailedRunWarning, optimize, run_batch
from tickstep.batch.cache import ResultsCache, default_cache_dir
from tickstep.batch.executors import SequentialExecutor
from tickstep.batch.jobs import Params, expand_grid, resolve_strategy, sample_sets
from tickstep.batch.sources import DataSource

__all__ = [
    "DataSource",
    "FailedRunWarning",
    "Params",
    "ResultsCache",
    "SequentialExecutor",
    "default_cache_dir",
    "expand_grid",
    "optimize",
    "resolve_strategy",
    "run_batch",
    "sample_sets",
]
