"""Ctrl-C stops a long backtest within a second, with or without Python callbacks."""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

SCRIPT = textwrap.dedent(
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
    for _ in range(100):  # a native-only run is fast: repeat so the signal lands mid-run
        try:
            bt.run()
        except KeyboardInterrupt:
            print("interrupted", flush=True)
            sys.exit(3)
    """
)


@pytest.mark.parametrize("kind", ["python", "native"])
def test_ctrl_c_stops_a_run_within_a_second(kind):
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, kind], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout.readline().strip() == "running"
        time.sleep(0.5)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
        elapsed = time.monotonic() - sent
    finally:
        proc.kill()
    assert proc.returncode == 3, (out, err)
    assert "interrupted" in out
    # Includes the child's interpreter shutdown; the engine polls signals every 4096 ticks.
    assert elapsed < 1.0, elapsed
