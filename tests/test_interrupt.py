"""Ctrl-C stops a long backtest within a second, with or without Python callbacks, and a
batch with its workers; a killed batch's snapshot is swept by the next batch.

Each case runs in its own process. A shell that starts the suite as a background job
starts it with SIGINT ignored, which children inherit (Python then installs no
KeyboardInterrupt handler): every child script restores the default handler first, so
these tests check tickstep, not how the suite was started.
"""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import tickstep.data as td
from tickstep.batch import run_batch
from tickstep.batch.sources import snapshot_owner, snapshot_path, sweep_stale_snapshots

TESTS = Path(__file__).resolve().parent
RESTORE_SIGINT = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"

SCRIPT = RESTORE_SIGINT + textwrap.dedent(
    """
    import sys, numpy as np, tickstep
    from tickstep.data import MarketColumns, SymbolBars

    n = 3_000_000  # far longer than the test waits
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    price = np.full(n, 100.0)
    bars = MarketColumns([SymbolBars("X", ts, price, price, price, price, price)])

    class Busy(tickstep.Strategy):
        def next(self, symbol):
            pass

    class Silent(tickstep.Strategy):
        pass

    cls = Busy if sys.argv[1] == "python" else Silent
    bt = tickstep.Backtest(bars, cls)
    print("running", flush=True)
    # The whole loop in the try: a signal that arrives as a run ends is taken at the
    # loop's jump back, outside a try around the call alone (it escaped the script).
    try:
        for _ in range(100):  # a native-only run is fast: repeat so the signal lands mid-run
            bt.run()
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


# "ignored": started as a background job of a non-interactive shell starts it, SIGINT
# ignored from the start (so Python installs no handler): the script's own restore is
# what makes it interruptible, whatever started the suite.
@pytest.mark.parametrize("inherited", ["default", "ignored"])
@pytest.mark.parametrize("kind", ["python", "native"])
def test_ctrl_c_stops_a_run_within_a_second(kind, inherited):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_ignore_sigint if inherited == "ignored" else None,
    )
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        line = proc.stdout.readline()  # printed once KeyboardInterrupt reached the script
        elapsed = time.monotonic() - sent
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 3, (line, out, err)
    assert line.strip() == "interrupted"
    # The engine polls signals every 4096 ticks (the interpreter's exit is not counted).
    assert elapsed < 1.0, elapsed


# ---- batches ---------------------------------------------------------------------------------

BATCH = RESTORE_SIGINT + textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    import tickstep.data as td
    from tickstep.batch import run_batch
    from test_batch_helpers import Sleepy

    market = td.sample_daily(4, days=40, seed=2)
    print("running", flush=True)
    try:
        # Jobs far longer than the test waits; in-memory data: a snapshot is written.
        run_batch(Sleepy, market, params={{"delay": 60.0, "hold": [2, 3]}}, cache=False,
                  max_workers=2, chunk_size=1, scratch_dir={scratch!r})
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(3)
    """
)


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                fields = stat.rsplit(")", 1)[1].split()
                if int(fields[1]) == pid and fields[0] != "Z":
                    found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start_batch(scratch: Path, inherited: str = "default") -> tuple[subprocess.Popen, list[int]]:
    """A batch in its own process group, once its two workers run and its snapshot exists."""
    script = BATCH.format(tests=str(TESTS), scratch=str(scratch))
    proc = subprocess.Popen([sys.executable, "-c", script], start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_ignore_sigint if inherited == "ignored" else None)
    assert proc.stdout.readline().strip() == "running"
    deadline = time.monotonic() + 60
    while True:
        workers = _children(proc.pid)
        if len(workers) == 2 and list(scratch.glob("*.arrow")):
            return proc, workers
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "the batch did not start its workers"
        time.sleep(0.02)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("inherited", ["default", "ignored"])
def test_ctrl_c_stops_a_batch_and_its_workers_within_a_second(tmp_path, inherited):
    proc, workers = _start_batch(tmp_path, inherited)
    try:
        time.sleep(0.3)  # the workers are inside their 60 s jobs
        sent = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group
        line = proc.stdout.readline()  # run_batch has returned by raising
        interrupted = time.monotonic() - sent
        while any(_alive(w) for w in workers):
            assert time.monotonic() - sent < 5, "workers left running"
            time.sleep(0.01)
        workers_gone = time.monotonic() - sent
        out, err = proc.communicate(timeout=10)
        exited = time.monotonic() - sent
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 3, (line, out, err)
    assert line.strip() == "interrupted"
    # The workers stopped within a second (they were in 60 s jobs), and the batch's
    # process was not held up by them on its way out (it waited ~8 s for them before).
    assert interrupted < 1.0 and workers_gone < 1.0, (interrupted, workers_gone)
    assert exited < 3.0, exited
    assert not list(tmp_path.glob("*.arrow*")), "the interrupted batch left its snapshot"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_batchs_snapshot_is_swept_by_the_next_one_never_one_in_use(tmp_path):
    proc, workers = _start_batch(tmp_path)
    try:
        stale = sorted(tmp_path.glob("*.arrow*"))
        assert stale and all(snapshot_owner(p.name) == proc.pid for p in stale)
        proc.send_signal(signal.SIGKILL)  # no cleanup at all
        proc.wait()
        deadline = time.monotonic() + 10
        while any(_alive(w) for w in workers):  # the workers die with their parent
            assert time.monotonic() < deadline, "orphaned workers"
            time.sleep(0.02)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert all(p.exists() for p in stale)  # left behind by the kill

    # A snapshot in use: owned by a live process (this one, then another one).
    mine = snapshot_path(tmp_path, "f" * 40)
    mine.write_bytes(b"in use")
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmp_path / mine.name.replace(f"-{os.getpid()}-", f"-{other.pid}-")
        theirs.write_bytes(b"in use")
        assert snapshot_owner(theirs.name) == other.pid
        unrelated = tmp_path / "notes.arrow"
        unrelated.write_bytes(b"not a snapshot")

        rows = run_batch("sma_cross", td.sample_daily(2, days=60, seed=1), cache=False,
                         executor="sequential", scratch_dir=tmp_path)
        assert (rows["status"] == "ok").all()
        assert not any(p.exists() for p in stale), "the stale snapshot was not swept"
        assert mine.exists() and theirs.exists() and unrelated.exists()
    finally:
        other.kill()
        other.wait()
    # Once its owner is gone, the next sweep takes it; the others stay.
    assert sweep_stale_snapshots(tmp_path) == [theirs]
    assert mine.exists() and unrelated.exists()
