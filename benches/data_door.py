"""The door from in-memory tables: ``python benches/data_door.py [--repeat N]``.

Data: ``tickstep.data.sample(20, 100, hours="24h", missing=0, seed=1)``, i.e. 20 symbols x
144,000 minutes = 2,880,000 bars, as one long table (``symbol, ts, open, ..., volume``,
grouped by symbol, timestamps in ns UTC) in each kind the door reads. Tables are built
once, outside the timings.

Workloads, each ``tickstep.data.resolve(table)`` (validation, grouping by symbol, and
the columns the engine adopts):

- ``pandas long``: a pandas DataFrame (columns are copied once: the frame is mutable).
- ``arrow long``: a pyarrow Table.
- ``polars long``: a Polars DataFrame (the issue's target: no slower than pandas).
- ``duckdb relation``: a DuckDB relation over the Arrow table, read through its Arrow
  PyCapsule stream.

Each is measured in a fresh child process: the median of ``--repeat`` runs after one
warm-up, and the peak extra memory of those runs (``VmHWM`` reset through
``/proc/self/clear_refs`` after the warm-up, minus the resident set then), against the
raw columns' size (2.88 M bars x 48 bytes = 138 MB; the issue's target for clean inputs:
<= 0.2x).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SPEC = {"symbols": 20, "days": 100, "hours": "24h", "missing": 0, "seed": 1}
KINDS = ("pandas long", "arrow long", "polars long", "duckdb relation")


def _kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def child(kind: str, repeat: int) -> dict:
    import pyarrow as pa
    import tickstep.data as td

    market = td.sample(**SPEC)
    frame = market.to_frame()
    raw = market.n_bars * 48
    del market
    table = pa.Table.from_pandas(frame, preserve_index=False).combine_chunks()
    if kind == "pandas long":
        data = frame
    else:
        del frame
        if kind == "arrow long":
            data = table
        elif kind == "polars long":
            import polars as pl

            data = pl.from_arrow(table)
        else:
            import duckdb

            con = duckdb.connect()
            data = None

            def relation():
                return con.from_arrow(table)

    def run():
        return td.resolve(relation() if kind == "duckdb relation" else data)

    run()  # warm-up: imports, first-touch of the pages
    before = _kb("VmRSS")
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - t0)
        del result
    extra = (_kb("VmHWM") - before) * 1024
    return {
        "workload": kind,
        "median_s": statistics.median(times),
        "times_s": [round(t, 4) for t in times],
        "raw_bytes": raw,
        "extra_bytes": extra,
    }


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        print(json.dumps(child(argv[1], int(argv[2]))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    print(f"data: sample({SPEC}) -> 2,880,000 bars as one long table")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    rows = []
    for kind in KINDS:
        out = subprocess.run(
            [sys.executable, __file__, "--child", kind, str(args.repeat)],
            check=True,
            capture_output=True,
            text=True,
        )
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(
            f"{kind:<16} {row['median_s']:7.3f} s   peak extra memory "
            f"{row['extra_bytes'] / 1e6:7.1f} MB = {row['extra_bytes'] / row['raw_bytes']:.2f}x "
            "the raw columns"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
