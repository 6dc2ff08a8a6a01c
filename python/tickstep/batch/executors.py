"""Running chunks of jobs: local processes, in this process, or on a Dask cluster.

Every executor is driven the `concurrent.futures` way -- submit, wait for the first
done, collect -- by one loop (`execute`) that also isolates failures:

* a job that raises comes back as a row with status ``"error"`` (the worker catches it);
* a job that kills its worker process breaks a local pool: the pool is recreated and the
  unfinished jobs are resubmitted, first one job per task, then, for those that were
  running when it broke again, one at a time, so the culprit is found and recorded as
  ``"crashed"`` while every other job completes. On Dask, tasks on a worker that died
  end with ``KilledWorker`` (after the scheduler's own retries); they are split and
  retried the same way, and a job is ``"crashed"`` only once it killed a worker while
  running alone.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import gc
import multiprocessing
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace
from typing import Any

from tickstep.batch.worker import Chunk, run_chunk
from tickstep.batch.worker_cache import WorkerCache

__all__ = ["SequentialExecutor", "available_cores", "execute", "make_backend"]

FREEZE_BEFORE_FORK = True


def available_cores() -> int:
    """CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class SequentialExecutor(cf.Executor):
    """A `concurrent.futures.Executor` that runs each call at once, in this process.

    For debugging (breakpoints and prints work; results equal a parallel run's). A job
    that kills its process kills this one: there is no crash isolation here.

    Examples
    --------
    >>> SequentialExecutor().submit(pow, 2, 5).result()
    32
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller via the future
            future.set_exception(exc)
        return future


def _worker_init(parent: int, cache: WorkerCache | None) -> None:
    # Ctrl-C goes to the whole process group: let the parent alone decide what to do.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if cache is not None:  # forked: the batch's cache, with the bars the parent holds
        cache.install()
    if sys.platform.startswith("linux"):
        # Die with the parent: a batch killed with SIGKILL leaves no idle workers behind.
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)


# ---- backends: one small adapter per kind of executor ---------------------------------------


class _Backend:
    capacity: int = 1
    recovers: bool = False  # whether a crash can be survived by restarting
    shares_memory: bool = False  # runs in this process or in children forked from it

    def submit(self, chunk: Chunk) -> Any:
        raise NotImplementedError

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        done, _ = cf.wait(list(handles), return_when=cf.FIRST_COMPLETED)
        return set(done)

    def result(self, handle: Any) -> list[dict[str, Any]]:
        return handle.result()

    def is_crash(self, exc: BaseException) -> bool:
        return isinstance(exc, BrokenProcessPool)

    def crash_detail(self) -> str:
        return ""

    def restart(self) -> None:
        raise NotImplementedError

    def abort(self, handles: list[Any]) -> None:
        """Stop the work in flight now (the batch is interrupted, e.g. by Ctrl-C)."""
        for handle in handles:
            with contextlib.suppress(Exception):
                handle.cancel()

    def close(self) -> None:
        pass


class _ProcessBackend(_Backend):
    """Our own process pool (fork on Linux: workers start in milliseconds)."""

    recovers = True

    def __init__(self, workers: int, mp_context: str | None, cache: WorkerCache | None) -> None:
        self.capacity = workers
        method = mp_context or ("fork" if sys.platform.startswith("linux") else None)
        self._ctx = multiprocessing.get_context(method)
        self.shares_memory = self._ctx.get_start_method() == "fork"
        # Forked workers inherit the batch's cache (initargs are not pickled on fork).
        self._cache = cache if self.shares_memory else None
        self._pool: cf.ProcessPoolExecutor | None = None
        self._procs: list[Any] = []

    def _ensure(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(
                self.capacity, mp_context=self._ctx, initializer=_worker_init,
                initargs=(os.getpid(), self._cache),
            )
            self._procs = []
        return self._pool

    def submit(self, chunk: Chunk) -> Any:
        pool = self._ensure()
        if self._procs:
            return pool.submit(run_chunk, chunk)
        # The first submit forks the workers. Frozen objects are never visited by the
        # workers' garbage collector, so the pages they share with this process stay
        # shared instead of being copied, one page fault at a time.
        frozen = FREEZE_BEFORE_FORK and self.shares_memory
        if frozen:
            gc.freeze()
        try:
            future = pool.submit(run_chunk, chunk)
        finally:
            if frozen:
                gc.unfreeze()
        # Kept to read a dead worker's exit code; the pool's own table empties when it breaks.
        self._procs = list(getattr(pool, "_processes", {}).values())
        return future

    def crash_detail(self) -> str:
        codes = [p.exitcode for p in self._procs]
        codes = [c for c in codes if c not in (None, 0, -signal.SIGTERM)]
        if not codes:
            return ""
        code = codes[0]
        if code < 0:
            try:
                return f" (killed by {signal.Signals(-code).name})"
            except ValueError:
                return f" (exit code {code})"
        return f" (exit code {code})"

    def restart(self) -> None:
        if self._pool is not None:  # wait: the dead worker's exit code is read next
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def abort(self, handles: list[Any]) -> None:
        """Terminate the workers at once: their running jobs are abandoned (and not
        cached), nothing is left running behind the interrupted batch."""
        if self._pool is None:
            return
        procs = list(getattr(self._pool, "_processes", {}).values()) or self._procs
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.terminate()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        deadline = time.monotonic() + 0.5
        for proc in procs:
            with contextlib.suppress(Exception):
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.is_alive():  # SIGTERM held off (e.g. inside a C call): be sure
                    proc.kill()
                    proc.join(0.5)

    def close(self) -> None:
        if self._pool is not None:  # idle workers exit on their own; no need to wait
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None


class _FuturesBackend(_Backend):
    """Any `concurrent.futures.Executor` the caller passes (it stays theirs)."""

    def __init__(self, executor: cf.Executor, workers: int | None,
                 cache: WorkerCache | None = None) -> None:
        self._executor = executor
        self._cache: WorkerCache | None = None
        if isinstance(executor, SequentialExecutor):
            self.capacity = 1
            self.shares_memory = True
            self._cache = cache  # runs here: the batch's own cache
        else:
            self.capacity = workers or getattr(executor, "_max_workers", None) or available_cores()

    def submit(self, chunk: Chunk) -> Any:
        if self._cache is not None:
            return self._executor.submit(run_chunk, chunk, self._cache)
        return self._executor.submit(run_chunk, chunk)


class _DaskBackend(_Backend):
    """A `dask.distributed.Client`: tasks go to its cluster's workers."""

    def __init__(self, client: Any, workers: int | None) -> None:
        import distributed

        self._client = client
        self._distributed = distributed
        threads = sum(client.nthreads().values()) if workers is None else workers
        # A little more than the cluster runs at once, so no worker waits for work.
        self.capacity = max(1, 2 * threads)

    def submit(self, chunk: Chunk) -> Any:
        return self._client.submit(run_chunk, chunk, pure=False)

    def wait(self, handles: Iterable[Any]) -> set[Any]:
        done, _ = self._distributed.wait(list(handles), return_when="FIRST_COMPLETED")
        return set(done)

    def is_crash(self, exc: BaseException) -> bool:
        return isinstance(exc, self._distributed.KilledWorker)

    def crash_detail(self) -> str:
        return " (Dask: KilledWorker)"

    def abort(self, handles: list[Any]) -> None:
        with contextlib.suppress(Exception):
            self._client.cancel(handles)

    def close(self) -> None:
        pass


def _is_dask_client(obj: Any) -> bool:
    cls = type(obj)
    return cls.__name__ == "Client" and cls.__module__.split(".")[0] == "distributed"


def make_backend(
    executor: Any,
    n_jobs: int,
    max_workers: int | None,
    mp_context: str | None = None,
    cache: WorkerCache | None = None,
) -> _Backend:
    """The adapter for ``executor``: None/"process", "sequential", a Dask client, an Executor.

    ``cache`` is the batch's `WorkerCache`: workers forked from this process and chunks
    run in it use it; other workers keep their own.
    """
    if executor is None or executor == "process":
        # Even one job runs in a worker process: a crash must not take the caller down.
        workers = max_workers or min(available_cores(), max(1, n_jobs))
        return _ProcessBackend(workers, mp_context, cache)
    if executor == "sequential":
        return _FuturesBackend(SequentialExecutor(), 1, cache)
    if _is_dask_client(executor):
        return _DaskBackend(executor, max_workers)
    if isinstance(executor, SequentialExecutor):
        return _FuturesBackend(executor, 1, cache)
    if isinstance(executor, cf.Executor):
        return _FuturesBackend(executor, max_workers)
    raise TypeError(
        "executor must be None or 'process' (local processes), 'sequential', a "
        f"dask.distributed.Client or a concurrent.futures.Executor, got {executor!r}"
    )


# ---- the loop --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Task:
    chunk: Chunk
    level: int = 0  # 0: as planned; 1: one job, after a crash; 2: one job, run alone


def _split(task: _Task, level: int) -> list[_Task]:
    return [_Task(replace(task.chunk, jobs=(job,)), level) for job in task.chunk.jobs]


def _crash_rows(chunk: Chunk, message: str) -> list[dict[str, Any]]:
    return [
        {"job": job.index, "stats": {}, "run_time": 0.0, "status": "crashed", "error": message}
        for job in chunk.jobs
    ]


def _failed_rows(chunk: Chunk, exc: BaseException) -> list[dict[str, Any]]:
    import traceback

    text = "".join(traceback.format_exception(exc)).rstrip()
    return [
        {"job": job.index, "stats": {}, "run_time": 0.0, "status": "error", "error": text}
        for job in chunk.jobs
    ]


def execute(
    chunks: list[Chunk],
    backend: _Backend,
    on_rows: Callable[[list[dict[str, Any]]], None],
) -> None:
    """Run ``chunks`` on ``backend``, handing each finished chunk's rows to ``on_rows``.

    Returns when every job has a row (ok, error or crashed). The backend stays open for
    more (a search's next round): its owner closes it.
    """
    queue: deque[_Task] = deque(_Task(c) for c in chunks)
    alone: deque[_Task] = deque()
    inflight: dict[Any, _Task] = {}
    try:
        _run_all(queue, alone, inflight, backend, on_rows)
    except BaseException:
        # Interrupted (Ctrl-C) or failed: stop the workers now rather than let them
        # finish their chunks after the caller has moved on.
        backend.abort(list(inflight))
        raise


def _run_all(
    queue: deque[_Task],
    alone: deque[_Task],
    inflight: dict[Any, _Task],
    backend: _Backend,
    on_rows: Callable[[list[dict[str, Any]]], None],
) -> None:
    """The loop of `execute`: submit, wait for the first done, collect, recover."""
    while queue or alone or inflight:
        while queue and len(inflight) < backend.capacity:
            task = queue.popleft()
            inflight[backend.submit(task.chunk)] = task
        if not inflight and alone:
            task = alone.popleft()
            inflight[backend.submit(task.chunk)] = task
        done = backend.wait(inflight)
        crashed: list[_Task] = []
        for handle in done:
            task = inflight.pop(handle)
            try:
                rows = backend.result(handle)
            except BaseException as exc:
                if isinstance(exc, KeyboardInterrupt):
                    raise
                if backend.is_crash(exc):
                    crashed.append(task)
                    continue
                rows = _failed_rows(task.chunk, exc)
            on_rows(rows)
        if not crashed:
            continue
        if isinstance(backend, (_ProcessBackend, _FuturesBackend)):
            # A broken pool fails every task it held: collect them all.
            for handle, task in list(inflight.items()):
                try:
                    on_rows(backend.result(handle))
                except BaseException as exc:
                    if isinstance(exc, KeyboardInterrupt):
                        raise
                    if not backend.is_crash(exc):
                        on_rows(_failed_rows(task.chunk, exc))
                    else:
                        crashed.append(task)
            inflight.clear()
        if backend.recovers:
            backend.restart()  # joins the old workers: their exit codes are known after
        detail = backend.crash_detail()
        if not backend.recovers and isinstance(backend, _FuturesBackend):
            message = (
                "the executor broke: a worker process died while this job was running or "
                "waiting" + detail + "; pass executor=None to isolate crashes automatically"
            )
            for task in crashed + list(queue) + list(alone):
                on_rows(_crash_rows(task.chunk, message))
            return
        # In a local pool every task in flight fails with the pool, so a lone crashed
        # task ran alone. Dask fails the tasks queued on the dead worker too, so only
        # a task it ran with nothing else in flight is known to be the culprit.
        ran_alone = len(crashed) == 1 and not isinstance(backend, _DaskBackend)
        for task in crashed:
            single = len(task.chunk.jobs) == 1
            if single and (task.level == 2 or ran_alone):
                message = "the worker process died while running this job" + detail
                on_rows(_crash_rows(task.chunk, message))
            elif not single:
                queue.extendleft(reversed(_split(task, 1)))
            else:
                alone.append(replace(task, level=2))
