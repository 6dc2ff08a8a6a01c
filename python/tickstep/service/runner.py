"""One batch of the service, in a process of its own (``python -m tickstep.service.runner``).

The server starts a runner ahead of need (imports done, waiting on stdin), hands it a
batch id, and starts the next spare. The runner reads the batch's request from the runs
database, calls `tickstep.batch.run_batch` through an executor that records each
finished chunk's runs and the batch's progress in the database as they come, then marks
the batch done (or failed). Everything it knows is in the database, so:

* cancelling kills the runner's process group (it and its workers) at once: finished
  jobs are already stored, and in the results cache;
* a runner dies with the server (``PR_SET_PDEATHSIG``); the restarted server marks the
  batch interrupted, and resuming it runs only what the results cache lacks.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import json
import multiprocessing
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["ObservedExecutor", "main", "run_stored_batch"]


def _die_with_parent(parent: int) -> None:
    """Be killed when ``parent`` dies (Linux), and leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class ObservedExecutor(cf.Executor):
    """Runs tasks on ``inner`` and hands each finished task's rows, with its jobs, to
    ``on_rows(rows, jobs)`` -- how the service sees progress without touching the batch
    machinery. Passed to `run_batch` as its ``executor``."""

    def __init__(self, inner: cf.Executor, on_rows: Callable[[list[dict[str, Any]], Any], None]) -> None:
        self._inner = inner
        self._on_rows = on_rows

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> cf.Future:
        future = self._inner.submit(fn, *args, **kwargs)
        jobs = getattr(args[0], "jobs", None) if args else None
        if jobs is not None:
            future.add_done_callback(lambda f: self._done(f, jobs))
        return future

    def _done(self, future: cf.Future, jobs: Any) -> None:
        if future.cancelled() or future.exception() is not None:
            return  # the batch reports those rows itself
        try:
            self._on_rows(future.result(), jobs)
        except Exception:  # progress is best effort; the final rows are written anyway
            traceback.print_exc()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._inner.shutdown(wait=wait, cancel_futures=cancel_futures)


def _inner_executor(parallel: bool, workers: int, dask_address: str | None) -> tuple[cf.Executor, int]:
    if not parallel:
        from tickstep.batch import SequentialExecutor

        return SequentialExecutor(), 1
    if dask_address:
        from distributed import Client

        client = Client(dask_address, set_as_default=False)
        threads = max(1, sum(client.nthreads().values()))
        return client.get_executor(pure=False), 2 * threads
    ctx = multiprocessing.get_context("fork" if sys.platform.startswith("linux") else None)
    pool = cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_die_with_parent,
                                  initargs=(os.getpid(),))
    return pool, workers


def batch_arguments(request: dict[str, Any], store: str) -> dict[str, Any]:
    """`run_batch` keyword arguments from a stored request (all plain JSON values)."""
    load_options = {}
    if request.get("regular_hours"):
        load_options["regular_hours"] = True
    if request.get("timeframe"):
        load_options["timeframe"] = request["timeframe"]
    return dict(
        data=store,
        params=request.get("params") or None,
        symbols=request.get("symbols"),
        portfolio=bool(request.get("portfolio")),
        start=request.get("start"),
        end=request.get("end"),
        load_options=load_options or None,
        cache=bool(request.get("cache", True)),
        **(request.get("options") or {}),
    )


def run_stored_batch(db: Any, batch_id: str, *, workers: int | None = None,
                     dask_address: str | None = None) -> str:
    """Run the stored batch ``batch_id``; returns its final status."""
    from tickstep.batch import run_batch
    from tickstep.batch.executors import available_cores
    from tickstep.service.rows import frame_rows

    batch = db.batch(batch_id)
    if batch is None:
        raise LookupError(f"no batch {batch_id!r}")
    if not db.update_batch(batch_id, only_if=("queued",), status="running", started=True,
                           attempt=batch["attempt"] + 1, error=None):
        return db.batch(batch_id)["status"]  # cancelled before it started
    request = batch["request"]
    strategy = batch["strategy"]
    lock = threading.Lock()
    done = [db.count_runs(batch_id)]
    db.update_batch(batch_id, jobs_done=done[0])

    def on_rows(rows: list[dict[str, Any]], jobs: Any) -> None:
        by_index = {job.index: job for job in jobs}
        stored = []
        for row in rows:
            job = by_index[row["job"]]
            stored.append({**row, "params": dict(job.params), "symbols": job.label})
        with lock:
            done[0] += db.add_runs(batch_id, strategy, stored)
            db.update_batch(batch_id, only_if=("running",), jobs_done=done[0])

    try:
        inner, capacity = _inner_executor(bool(request.get("parallel", True)),
                                          workers or available_cores(), dask_address)
        try:
            frame = run_batch(strategy, executor=ObservedExecutor(inner, on_rows),
                              max_workers=capacity, progress=False,
                              **batch_arguments(request, request["store"]))
        finally:
            inner.shutdown(wait=False, cancel_futures=True)
    except Exception as exc:
        text = "".join(traceback.format_exception_only(exc)).strip()
        db.update_batch(batch_id, only_if=("running",), status="failed", error=text,
                        finished=True)
        return "failed"
    names = _param_names(request.get("params"))
    with lock:
        db.add_runs(batch_id, strategy, frame_rows(frame, names))  # cached ones, and any missed
    info = frame.attrs.get("batch", {})
    db.update_batch(batch_id, only_if=("running",), status="done", jobs_done=len(frame),
                    jobs_total=len(frame), jobs_cached=int(info.get("cached", 0)), finished=True)
    return "done"


def _param_names(params: Any) -> list[str]:
    if isinstance(params, dict):
        return list(params)
    names: list[str] = []
    for one in params or []:
        names += [n for n in one if n not in names]
    return names


def main(argv: list[str] | None = None) -> int:
    """Wait for one batch id on stdin (a JSON line), run it, exit."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tickstep.service.runner")
    parser.add_argument("--db", required=True, help="runs database URL")
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    # Import and fingerprint tickstep's code now, while waiting: a batch handed over
    # later starts at once.
    from tickstep.batch.jobs import engine_fingerprint
    from tickstep.service.runs import RunsDB

    engine_fingerprint()

    db = RunsDB(args.db)
    line = sys.stdin.readline()
    if not line.strip():
        return 0  # the server closed our stdin: not needed
    task = json.loads(line)
    run_stored_batch(db, task["batch_id"], workers=task.get("workers"),
                     dask_address=task.get("dask_address"))
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
