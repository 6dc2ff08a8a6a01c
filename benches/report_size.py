"""The HTML report of a big run: its size and how long it takes to build.

Workload: Fakeout (the breakout strategy of ``benches/workloads.py``) on 20 symbols x
144,000 minute bars (``minute_20x144k``), equity recorded at every bar (the worst case
for the report: 144,000 equity samples, 2.88 M prices to draw from) and once a day.
Targets (issue 12): a report of at most 5 MB, built in at most 3 s.

Timed: ``result.report(path)`` alone (the backtest runs before, outside the timing);
the first call in the process (it packs plotly.js once) and the median of the next
``--repeat``; also ``result.plot()`` (the notebook figure). Run::

    python benches/report_size.py [--repeat 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h  # noqa: E402
import tickstep  # noqa: E402
from tickstep.strategies import Fakeout  # noqa: E402

TARGET_BYTES = 5 * 1024 * 1024
TARGET_SECONDS = 3.0


def measure(market, record_every_bar: bool, repeat: int, directory: Path) -> dict:
    bt = tickstep.Backtest(market, Fakeout, cash=1_000_000.0, record_every_bar=record_every_bar,
                           sizer=tickstep.RiskPerTrade(0.01, max_fraction=0.2))
    result = bt.run()
    path = directory / f"report-{'bars' if record_every_bar else 'days'}.html"
    t0 = time.perf_counter()
    result.report(path)
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result.report(path)
        times.append(time.perf_counter() - t0)
    plot_times = []
    for _ in range(max(1, repeat // 2)):
        t0 = time.perf_counter()
        result.plot()
        plot_times.append(time.perf_counter() - t0)
    size = path.stat().st_size
    return {
        "equity_samples": len(result.equity),
        "trades": len(result.trades),
        "fills": len(result.fills),
        "report_bytes": size,
        "report_first_s": round(first, 3),
        "report_median_s": round(statistics.median(times), 3),
        "plot_median_s": round(statistics.median(plot_times), 3),
        "within_targets": size <= TARGET_BYTES and max(first, statistics.median(times)) <= TARGET_SECONDS,
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    market = h.load("minute_20x144k")
    out = {"data": "minute_20x144k (20 symbols x 144,000 minutes)", "strategy": "Fakeout"}
    with tempfile.TemporaryDirectory() as d:
        for every_bar in (False, True):
            label = "equity every bar" if every_bar else "equity once a day"
            out[label] = measure(market, every_bar, args.repeat, Path(d))
            print(f"{label}: {json.dumps(out[label])}", flush=True)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
