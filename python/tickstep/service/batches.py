"""The queue of batches and the runner processes that work them.

At most ``max_batches`` run at once, each in a runner process (see
`tickstep.service.runner`) with its worker processes; the rest wait in a queue of at
most ``max_queue``. One long-lived thread (the dispatcher) hands batches to runners,
sees from the database when a runner has finished one, and keeps runners imported and
waiting (idle ones are reused, up to ``RUNNER_USES`` batches each; at least one spare),
so a batch starts without paying for Python's imports. Runners are only ever started from that thread: a runner dies with
the thread that started it (``PR_SET_PDEATHSIG``), so request threads must not.

Nothing here blocks the event loop: requests only append to the queue or signal.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import threading
from collections import deque
from dataclasses import dataclass
from typing import Any

from tickstep.service.runs import FINAL_STATES, RunsDB

__all__ = ["BatchManager", "QueueFull"]

#: Batches one runner process works before it is replaced (bounds what it accumulates).
RUNNER_USES = 50


class QueueFull(RuntimeError):
    """The queue of waiting batches is at its limit."""


@dataclass
class _Runner:
    process: subprocess.Popen[bytes]
    uses: int = 0
    ready: bool = False

    def alive(self) -> bool:
        return self.process.poll() is None

    def is_ready(self) -> bool:
        """Whether it has finished its imports (it prints one line then)."""
        if not self.ready and self.process.stdout is not None:
            readable, _, _ = select.select([self.process.stdout], [], [], 0)
            if readable:
                self.process.stdout.readline()
                self.ready = True
        return self.ready


@dataclass
class _Running:
    batch_id: str
    runner: _Runner

    @property
    def process(self) -> subprocess.Popen[bytes]:
        return self.runner.process


class BatchManager:
    """Queue, start, cancel and resume batches stored in ``db``."""

    def __init__(self, db: RunsDB, *, max_batches: int = 2, max_queue: int = 100,
                 workers: int | None = None, dask_address: str | None = None) -> None:
        self.db = db
        self.max_batches = max_batches
        self.max_queue = max_queue
        self.workers = workers
        self.dask_address = dask_address
        self._queue: deque[str] = deque()
        self._running: dict[str, _Running] = {}
        self._cancelling: set[str] = set()
        self._idle: list[_Runner] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- life --------------------------------------------------------------------------

    def start(self) -> list[str]:
        """Mark batches a previous server left queued or running as interrupted (they can
        be resumed); start the dispatcher. Returns the interrupted batch ids."""
        interrupted = []
        for batch in self.db.batches_in(("queued", "running")):
            if self.db.update_batch(batch["batch_id"], only_if=("queued", "running"),
                                    status="interrupted", finished=True,
                                    error="the service stopped while the batch was "
                                    f"{batch['status']}; POST /batches/{batch['batch_id']}/resume "
                                    "runs what is missing"):
                interrupted.append(batch["batch_id"])
        self._thread = threading.Thread(target=self._dispatch, name="tickstep-batches",
                                        daemon=True)
        self._thread.start()
        return interrupted

    def stop(self) -> None:
        """Stop the dispatcher; running batches are killed and marked interrupted."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        with self._lock:
            running = list(self._running.values())
            self._running.clear()
            queued = list(self._queue)
            self._queue.clear()
        for run in running:
            _kill_group(run.process)
        for batch_id in [r.batch_id for r in running] + queued:
            self.db.update_batch(batch_id, only_if=("queued", "running"), status="interrupted",
                                 finished=True, error="the service stopped; resume to finish")
        for runner in self._idle:
            _kill_group(runner.process)
        self._idle.clear()

    # ---- requests ----------------------------------------------------------------------

    def submit(self, batch_id: str) -> None:
        with self._lock:
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} batches are waiting (the limit); retry later")
            self._queue.append(batch_id)
        self._wake.set()

    def check_room(self) -> None:
        with self._lock:
            if len(self._queue) >= self.max_queue:
                raise QueueFull(f"{len(self._queue)} batches are waiting (the limit); retry later")

    def cancel(self, batch_id: str) -> str:
        """Cancel a batch: a queued one leaves the queue, a running one's processes are
        killed (its finished jobs stay stored). Returns the batch's status after."""
        with self._lock:
            if batch_id in self._queue:
                self._queue.remove(batch_id)
            run = self._running.get(batch_id)
            if run is not None:
                self._cancelling.add(batch_id)
        # Mark first: the runner's later writes are conditional on "running".
        self.db.update_batch(batch_id, only_if=("queued", "running"), status="cancelled",
                             finished=True)
        if run is not None:
            _kill_group(run.process)
        batch = self.db.batch(batch_id)
        return batch["status"] if batch else "unknown"

    def resume(self, batch_id: str) -> bool:
        """Queue an interrupted (or cancelled, or failed) batch again."""
        if not self.db.update_batch(batch_id, only_if=("interrupted", "cancelled", "failed"),
                                    status="queued", finished=None, error=None):
            return False
        try:
            self.submit(batch_id)
        except QueueFull:
            self.db.update_batch(batch_id, status="interrupted")
            raise
        return True

    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    # ---- the dispatcher thread ---------------------------------------------------------

    def _dispatch(self) -> None:
        while not self._stop.is_set():
            self._reap()
            self._start_waiting()
            self._idle = [r for r in self._idle if r.alive()]
            if not self._idle:
                self._idle.append(_Runner(self._spawn()))
            self._wake.wait(0.02 if self._running else 0.5)
            self._wake.clear()

    def _spawn(self) -> subprocess.Popen[bytes]:
        cmd = [sys.executable, "-m", "tickstep.service.runner", "--db", self.db.url,
               "--parent", str(os.getpid())]
        # Its own process group: a cancel kills the runner and its workers together.
        return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                start_new_session=True)

    def _start_waiting(self) -> None:
        while True:
            with self._lock:
                if not self._queue or len(self._running) >= self.max_batches:
                    return
                batch_id = self._queue.popleft()
            self._idle = [r for r in self._idle if r.alive()]
            # A runner done importing first; else one still starting (it reads the
            # batch when ready), else a new one.
            self._idle.sort(key=lambda r: r.is_ready())
            runner = self._idle.pop() if self._idle else _Runner(self._spawn())
            task = {"batch_id": batch_id, "workers": self.workers,
                    "dask_address": self.dask_address}
            assert runner.process.stdin is not None
            try:
                runner.process.stdin.write((json.dumps(task) + "\n").encode())
                runner.process.stdin.flush()
            except OSError:  # it died while waiting: queue the batch again
                with self._lock:
                    self._queue.appendleft(batch_id)
                continue
            runner.uses += 1
            with self._lock:
                self._running[batch_id] = _Running(batch_id, runner)

    def _reap(self) -> None:
        with self._lock:
            running = list(self._running.values())
        for run in running:
            dead = not run.runner.alive()
            with self._lock:
                being_cancelled = run.batch_id in self._cancelling
            if being_cancelled and not dead:
                continue  # cancel() is killing it: never reuse it
            batch = None
            if not dead:
                batch = self.db.batch(run.batch_id)
                if batch is not None and batch["status"] not in FINAL_STATES:
                    continue  # still working
            with self._lock:
                self._running.pop(run.batch_id, None)
                cancelled = run.batch_id in self._cancelling
                self._cancelling.discard(run.batch_id)
            if dead:
                if not cancelled:  # a runner always ends its batch: it died on its way
                    code = run.process.returncode
                    self.db.update_batch(
                        run.batch_id, only_if=("running", "queued"), status="failed",
                        finished=True, error=f"the batch's runner process died (exit code {code})")
            elif run.runner.uses < RUNNER_USES and self._reusable(batch):
                self._idle.append(run.runner)  # done with that batch: ready for the next
            else:
                _retire(run.runner)


    def _reusable(self, batch: dict[str, Any] | None) -> bool:
        """Whether a runner is as clean after ``batch`` as before: jobs that ran in the
        runner itself (sequential) or beside a Dask client leave open stores and threads
        that later forked workers must not inherit."""
        if batch is None or self.dask_address:
            return False
        return bool(batch["request"].get("parallel", True))


def _retire(runner: _Runner) -> None:
    """Let a runner end on its own: it exits when its input closes."""
    try:
        if runner.process.stdin is not None:
            runner.process.stdin.close()
    except OSError:
        pass


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    """Kill a runner and the workers it started (its process group), and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL is not ignorable
        pass

