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
  for every bar (the issue's "Python SMA crossover");
- ``walk_forward``: ``walk_forward`` of the shipped crossover (fast 10 or 20, slow 30;
  train and test windows of a quarter of the days each, one portfolio; in this process,
  ``executor="sequential"``, so the peak is every run's): its train grids and test runs
  read each bar several times, so its "bars/s" counts the data's bars once.

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
import resource
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


def child(path: str, workload: str, stream: str | None, memory_limit: str | None = None,
          end: str | None = None, days: int = 20) -> dict:
    import tickstep
    from tickstep.strategies import SmaCross

    class Native(tickstep.Strategy):
        """Indicators maintained by the core, no Python call per bar."""

        def init(self) -> None:
            self.fast = self.sma(10)
            self.slow = self.sma(30)

    strategy = {"native": Native, "sma_cross": SmaCross, "walk_forward": SmaCross}[workload]
    options: dict = {} if stream is None else {"stream": stream}
    if end:
        options["end"] = end
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
    bt = tickstep.Backtest(data, strategy, cash=1_000_000, **options)
    if workload == "walk_forward":
        span = f"{max(1, days // 4)}D"
        result = bt.walk_forward(train=span, test=span, fast=[10, 20], slow=[30],
                                 maximize="Return [%]", executor="sequential", cache=False)
    else:
        result = bt.run()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "workload": workload,
        "stream": stream,
        "end": end,
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_extra_bytes": (_kb("VmHWM") - before) * 1024,
        "peak_bytes": _kb("VmHWM") * 1024,
        "max_rss_bytes": usage.ru_maxrss * 1024,
        "load_avg": os.getloadavg()[0],
        "trades": int(result.stats["# Trades"]),
        "final_equity": float(result.stats["Equity Final [$]"]),
        "return_pct": float(result.stats["Return [%]"]),
    }


def make_store(path: Path, symbols: int, days: int, memory_limit: str | None,
               missing: float = 1.0) -> None:
    """The store of ``symbols`` sample symbols x ``days`` sessions: one ingest of
    ``td.sample(symbols, days, seed=1)`` when small; else ingested in time order, a
    block of sessions at a time (about ``_CHUNK_BARS`` bars, all symbols), each block its
    own ``td.sample`` from the day after the last (seed 1, 2, ...: prices restart at
    each block's edge, which changes no cost), so memory holds one block and every
    ingest appends after the stored days (no reordering afterwards)."""
    import pandas as pd
    import tickstep.data as td

    t0 = time.perf_counter()
    with td.Store(path) as store:
        if memory_limit:
            store._run(f"SET memory_limit = '{memory_limit}'")
        if symbols * days * 390 <= 20_000_000:
            store.ingest(td.sample(symbols, days, seed=1, missing=missing))
        else:
            names = list(td.sample(symbols, 1, seed=1).symbols)
            step = max(1, _CHUNK_BARS // (symbols * 390))
            start, done, k = pd.Timestamp("2024-01-02"), 0, 0
            while done < days:
                block = td.sample(names, min(step, days - done), seed=1 + k, start=start,
                                  missing=missing)
                store.ingest(block)
                done, k = done + min(step, days - done), k + 1
                last = max(int(b.ts[-1]) for b in block.bars)
                start = pd.Timestamp(last, unit="ns").normalize() + pd.Timedelta(days=1)
                del block
                print(f"  ingested {done} of {days} days in {time.perf_counter() - t0:.0f} s",
                      flush=True)
        store._run("CHECKPOINT")
    print(f"store: {path} made in {time.perf_counter() - t0:.1f} s", flush=True)


# Bars per ingest when making a large store (a block of sessions of all symbols).
_CHUNK_BARS = 5_000_000


def run_child(path: str, workload: str, stream: str | None, memory_limit: str | None,
              end: str | None = None, days: int = 20) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", path, workload, stream or "", memory_limit or "",
         end or "", str(days)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def count_bars(path: Path, end: str | None) -> int:
    """Bars a run reads: all stored, or those up to ``end`` (a date: that whole day)."""
    import pandas as pd
    import tickstep.data as td

    with td.Store(path, read_only=True) as store:
        if end is None:
            return int(store.symbols()["bars"].sum())
        hi = int((pd.Timestamp(end, tz="UTC") + pd.Timedelta(days=1)).value)
        return int(store._run(f"SELECT count(*) FROM bars WHERE ts < {hi}").fetchone()[0])


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], argv[2], argv[3] or None, argv[4] or None,
                               argv[5] or None, int(argv[6]))))
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
    parser.add_argument("--memory-end",
                        help="run in memory only up to this date (a subset that fits); the "
                             "streamed run reads the whole store, compared per bar; a streamed "
                             "run of the same subset is added")
    parser.add_argument("--missing", type=float, default=1.0,
                        help="td.sample's missing: 1 (default) misses ~15%% of minutes, 0 none "
                             "(1,000 symbols x 504 days -> 196 M bars)")
    parser.add_argument("--make-only", action="store_true",
                        help="only make the store (with --keep: for later runs)")
    args = parser.parse_args(argv)

    tmp = None
    folder = Path(args.keep) if args.keep else Path(tmp := tempfile.mkdtemp())
    full = "" if args.missing == 1.0 else f"_missing{args.missing:g}"
    path = folder / f"stream_{args.symbols}x{args.days}{full}.duckdb"
    try:
        if not path.exists():
            make_store(path, args.symbols, args.days, args.duckdb_memory_limit, args.missing)
        if args.make_only:
            return 0
        bars = count_bars(path, None)
        subset = count_bars(path, args.memory_end) if args.memory_end else bars
        raw = bars * 48
        print(f"data: {args.symbols} sample symbols x {args.days} days -> {bars:,} bars "
              f"({raw / 1e6:.0f} MB raw), DuckDB file {path.stat().st_size / 1e6:.0f} MB")
        if args.memory_end:
            print(f"in memory: up to {args.memory_end}, {subset:,} bars ({subset * 48 / 1e6:.0f} MB raw)")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; "
              f"window {args.window}\n")
        # (label, stream, end, bars read)
        runs_of = [("in memory", None, args.memory_end, subset),
                   (f"stream {args.window}", args.window, None, bars)]
        if args.memory_end:
            runs_of.insert(1, (f"stream {args.window} subset", args.window, args.memory_end, subset))
        rows = []
        for workload in args.workloads.split(","):
            runs: dict[str, list[dict]] = {label: [] for label, *_ in runs_of}
            for _ in range(args.repeat):
                for label, stream, end, _n in runs_of:  # side by side, alternated
                    runs[label].append(run_child(str(path), workload, stream,
                                                 args.duckdb_memory_limit, end, args.days))
            keys = ("wall_s", "cpu_s", "peak_extra_bytes", "peak_bytes", "load_avg")
            med = {label: {k: statistics.median(r[k] for r in rs) for k in keys}
                   for label, rs in runs.items()}
            for label, _stream, _end, n in runs_of:
                m = med[label]
                print(f"{workload:<10} {label:<18} {n / 1e6:7.1f} M bars {m['wall_s']:8.2f} s wall "
                      f"{m['cpu_s']:8.2f} s CPU {n / m['wall_s'] / 1e6:6.2f} M bars/s "
                      f"(CPU {n / m['cpu_s'] / 1e6:5.2f})  peak RSS {m['peak_bytes'] / 1e6:6.0f} MB "
                      f"(+{m['peak_extra_bytes'] / 1e6:.0f} MB, {m['peak_extra_bytes'] / (n * 48):.2f}x "
                      f"raw)  load {m['load_avg']:.1f}  trades {runs[label][0]['trades']}")
                rows.extend(runs[label])
            base = med["in memory"]
            for label, _stream, _end, n in runs_of[1:]:
                m = med[label]
                wall = (m["wall_s"] / n) / (base["wall_s"] / subset)
                cpu = (m["cpu_s"] / n) / (base["cpu_s"] / subset)
                print(f"{workload:<10} {label} / in memory, per bar: wall {wall:.2f}x, CPU {cpu:.2f}x, "
                      f"throughput {1 / wall:.0%} of in memory, peak memory "
                      f"{m['peak_extra_bytes'] / base['peak_extra_bytes']:.2f}x")
            same = {(r["trades"], r["final_equity"]) for label, _, end, _n in runs_of
                    if end == args.memory_end for r in runs[label]}
            print(f"{workload:<10} same results in memory and streamed over the same bars: "
                  f"{len(same) == 1}\n")
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=2))
    finally:
        if tmp is not None:
            path.unlink(missing_ok=True)
            os.rmdir(tmp)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
