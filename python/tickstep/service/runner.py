"""One batch of the service, in a process of its own (``python -m tickstep.service.runner``).

The server starts runners ahead of need (imports done, waiting on stdin) and hands each
a batch id at a time; a runner that finished a batch waits for the next. The runner reads the batch's request from the runs
database, calls `tickstep.batch.run_batch`, records each finished task's runs and the
batch's progress in the database as they come (its ``on_rows``), then marks the batch
done (or failed). Everything it knows is in the database, so:

* cancelling kills the runner's process group (it and its workers) at once: finished
  jobs are already stored, and in the results cache;
* a runner dies with the server (``PR_SET_PDEATHSIG``); the restarted server marks the
  batch interrupted, and resuming it runs only what the results cache lacks.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import traceback
from typing import Any

__all__ = ["batch_arguments", "main", "run_stored_batch"]


#: How much lower than the server's the runners' (and their workers') CPU priority is.
RUNNER_NICENESS = 5


def _die_with_parent(parent: int) -> None:
    """Be killed when ``parent`` dies (Linux), and leave Ctrl-C to the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


def _executor(parallel: bool, dask_address: str | None) -> Any:
    """`run_batch`'s executor: its own local processes (crash isolation, bars shared with
    forked workers), this process (``parallel=False``), or a Dask cluster."""
    if not parallel:
        return "sequential"
    if dask_address:
        from distributed import Client

        return Client(dask_address)  # the default client: the batch waits through it
    return None


def batch_arguments(request: dict[str, Any], store: str) -> dict[str, Any]:
    """`run_batch` keyword arguments from a stored request (all plain JSON values)."""
    from tickstep.service.details import load_options_of

    load_options = load_options_of(request)
    return dict(
        data=store,
        params=request.get("params") or None,
        max_tries=request.get("max_tries"),
        random_state=request.get("random_state", 0),
        method=request.get("method", "grid"),
        round_size=request.get("round_size"),
        maximize=request.get("maximize", "Sharpe Ratio"),
        symbols=request.get("symbols"),
        portfolio=bool(request.get("portfolio")),
        start=request.get("start"),
        end=request.get("end"),
        load_options=load_options or None,
        cache=bool(request.get("cache", True)),
        returns=bool(request.get("returns", False)),
        **(request.get("options") or {}),
    )


def run_stored_batch(db: Any, batch_id: str, *, workers: int | None = None,
                     dask_address: str | None = None) -> str:
    """Run the stored batch ``batch_id``; returns its final status."""
    from tickstep.batch import run_batch
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

    def on_rows(rows: list[dict[str, Any]]) -> None:
        with lock:
            done[0] += db.add_runs(batch_id, strategy, rows)
            db.update_batch(batch_id, only_if=("running",), jobs_done=done[0])

    executor = None
    try:
        executor = _executor(bool(request.get("parallel", True)), dask_address)
        if request.get("walk_forward"):
            from tickstep.service.walkforwards import run_walk_forwards

            run_walk_forwards(db, batch_id, request, executor=executor, workers=workers)
            db.update_batch(batch_id, only_if=("running",), status="done", finished=True)
            return "done"
        frame = run_batch(strategy, executor=executor, max_workers=workers, progress=False,
                          on_rows=on_rows, **batch_arguments(request, request["store"]))
    except Exception as exc:
        text = "".join(traceback.format_exception_only(exc)).strip()
        db.update_batch(batch_id, only_if=("running",), status="failed", error=text,
                        finished=True)
        return "failed"
    finally:
        if executor is not None and hasattr(executor, "close"):
            executor.close()  # the Dask client
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
    """Run each batch named on stdin (a JSON line each) in turn; exit when stdin closes."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tickstep.service.runner")
    parser.add_argument("--db", required=True, help="runs database URL")
    parser.add_argument("--parent", type=int, default=os.getppid())
    args = parser.parse_args(argv)
    _die_with_parent(args.parent)
    # Batch work yields the CPU to the server (and its workers inherit this): status
    # requests stay fast while a batch keeps every core busy.
    with contextlib.suppress(OSError):
        os.nice(RUNNER_NICENESS)
    # Import and fingerprint tickstep's code now, while waiting: a batch handed over
    # later starts at once.
    from tickstep.batch.jobs import engine_fingerprint
    from tickstep.service.runs import RunsDB

    engine_fingerprint()

    db = RunsDB(args.db)
    print("ready", flush=True)  # the server prefers runners that have said so
    for line in sys.stdin:  # one batch per line, until the server closes our input
        if not line.strip():
            continue
        task = json.loads(line)
        try:
            run_stored_batch(db, task["batch_id"], workers=task.get("workers"),
                             dask_address=task.get("dask_address"))
        except Exception as exc:  # the batch fails, the runner stays for the next one
            text = "".join(traceback.format_exception_only(exc)).strip()
            db.update_batch(task["batch_id"], only_if=("queued", "running"), status="failed",
                            error=text, finished=True)
    db.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
