"""Streamed vs in-memory backtests: ``python benches/streaming.py [--symbols N] [--days D]``.

Data: ``tickstep.data.sample(N, D, seed=1)`` -- N symbols x D sessions of regular-hours
minute bars (390 a session, ~1% missing) -- ingested once into a DuckDB file in a
temporary directory (``--keep DIR`` keeps it there for another run), deleted at the end.

Workloads, each in a fresh process (so each peak resident set is that run's alone), the
same backtest in memory (``Backtest(path, S)``: the whole market loaded, then run) and
streamed (``Backtest(path, S, stream=W)``: read and run window by window):

- ``native``: a strategy with two rolling means declared and no callback: the Rust loop
  alone (market phase, studies), the case where reading the store weighs most;
- ``sma_cross``: the shipped SMA(10)/SMA(30) crossover, whose ``next()`` runs in Python
  for every bar (the issue's "Python SMA crossover").

For each: wall time of ``Backtest(...)`` + ``run()`` (loading included: a streamed run
reads while it runs), the process's CPU time, symbol-bars per second, and the peak
resident set above the one measured after imports and a first open of the store (``VmHWM`` reset through
``/proc/self/clear_refs`` just before), against the raw size of the bars (ts + five
float64 columns). The ratios printed are streamed / in memory, per bar, from runs side
by side in one sitting; with ``--repeat`` > 1 the medians.

DuckDB keeps the blocks of the store file it has read in its buffer pool (up to its
``memory_limit``, by default 80% of RAM), inside this process: a streamed run over a
store file larger than that cache shows it in its peak. ``--duckdb-memory-limit``
bounds it (both runs).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(path: str, workload: str, stream: str | None, memory_limit: str | None = None) -> dict:
    import tickstep
    from tickstep.strategies import SmaCross

    class Native(tickstep.Strategy):
        """Indicators maintained by the core, no Python call per bar."""

        def init(self) -> None:
            self.fast = self.sma(10)
            self.slow = self.sma(30)

    strategy = {"native": Native, "sma_cross": SmaCross}[workload]
    options = {} if stream is None else {"stream": stream}
    # Imports and first touches outside the measure: DuckDB, the store's catalog.
    import tickstep.data as td

    td.Store(path, read_only=True).close()
    data: object = path
    if memory_limit:
        data = td.Store(path, read_only=True)
        data._run(f"SET memory_limit = '{memory_limit}'")
    before = _kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    c0, t0 = time.process_time(), time.perf_counter()
    result = tickstep.Backtest(data, strategy, cash=1_000_000, **options).run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {
        "workload": workload,
        "stream": stream,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_extra_bytes": (_kb("VmHWM") - before) * 1024,
        "trades": int(result.stats["# Trades"]),
        "final_equity": float(result.stats["Equity Final [$]"]),
    }


def run_child(path: str, workload: str, stream: str | None, memory_limit: str | None) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", path, workload, stream or "", memory_limit or ""],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], argv[2], argv[3] or None, argv[4] or None)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=200)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--window", default="5D", help="stream window (default 5D)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--workloads", default="native,sma_cross")
    parser.add_argument("--keep", help="directory to keep (or reuse) the DuckDB store in")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--duckdb-memory-limit",
                        help="DuckDB's memory_limit for both runs (e.g. 256MB): bounds the "
                             "blocks of the store file DuckDB keeps cached")
    args = parser.parse_args(argv)

    import tickstep.data as td

    tmp = None
    folder = Path(args.keep) if args.keep else Path(tmp := tempfile.mkdtemp())
    path = folder / f"stream_{args.symbols}x{args.days}.duckdb"
    try:
        if not path.exists():
            t0 = time.perf_counter()
            market = td.sample(args.symbols, args.days, seed=1)
            with td.Store(path) as store:
                store.ingest(market)
            del market
            print(f"store: {path} made in {time.perf_counter() - t0:.1f} s")
        with td.Store(path, read_only=True) as store:
            listing = store.symbols()
        bars = int(listing["bars"].sum())
        raw = bars * 48
        print(f"data: sample({args.symbols}, {args.days}, seed=1) -> {bars:,} bars "
              f"({raw / 1e6:.0f} MB raw), DuckDB file {path.stat().st_size / 1e6:.0f} MB")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"window {args.window}\n")
        rows = []
        for workload in args.workloads.split(","):
            runs: dict[str | None, list[dict]] = {None: [], args.window: []}
            for _ in range(args.repeat):
                for stream in (None, args.window):  # side by side, alternated
                    runs[stream].append(run_child(str(path), workload, stream,
                                                  args.duckdb_memory_limit))
            med = {
                s: {k: statistics.median(r[k] for r in rs) for k in ("wall_s", "cpu_s", "peak_extra_bytes")}
                for s, rs in runs.items()
            }
            for s, rs in runs.items():
                m = med[s]
                print(f"{workload:<10} {'in memory' if s is None else 'stream ' + s:<12} "
                      f"{m['wall_s']:7.2f} s wall {m['cpu_s']:7.2f} s CPU  "
                      f"{bars / m['wall_s'] / 1e6:6.2f} M bars/s  peak +{m['peak_extra_bytes'] / 1e6:7.0f} MB "
                      f"({m['peak_extra_bytes'] / raw:.2f}x raw)  trades {rs[0]['trades']}")
                rows.extend(rs)
            a, b = med[None], med[args.window]
            same = {(r["trades"], r["final_equity"]) for rs in runs.values() for r in rs}
            print(f"{workload:<10} streamed/in memory: wall {b['wall_s'] / a['wall_s']:.2f}x, "
                  f"CPU {b['cpu_s'] / a['cpu_s']:.2f}x, throughput {a['wall_s'] / b['wall_s']:.0%} "
                  f"of in memory, peak memory {b['peak_extra_bytes'] / a['peak_extra_bytes']:.2f}x; "
                  f"same results: {len(same) == 1}\n")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    finally:
        if tmp is not None:
            path.unlink(missing_ok=True)
            os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
