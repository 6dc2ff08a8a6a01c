"""Filtered loads: ``python benches/data_filters.py [--repeat N] [--pg-url URL]``.

Data: ``tickstep.data.sample(20, 100, hours="24h", missing=0, seed=1)``, i.e. 20 symbols
x 144,000 round-the-clock minutes = 2,880,000 bars, listed on NYSE (exchange XNYS,
timezone America/New_York), ingested once into a DuckDB file and, when a URL is given
(``--pg-url`` or ``TICKSTEP_PG_URL``), into a scratch PostgreSQL schema.

Workload: ``store.load(regular_hours=True, timeframe="15min")`` -- regular NYSE hours,
then 15-minute bars in New York time (the issue's target: <= 1 s, and <= 2x the
output's size in extra memory, on DuckDB and on PostgreSQL).

Each store is measured in a fresh child process: the median of ``--repeat`` timed loads
after one warm-up load (imports; exchange calendars are built and cached then), and the
peak extra memory of the timed loads: the peak resident set (``VmHWM``, reset through
``/proc/self/clear_refs`` after the warm-up) minus the resident set before them. DuckDB
runs inside that process, so its working memory is counted; PostgreSQL's server
backend is a separate process: its peak since it started minus its resident set before
the timed loads is shown apart when ``/proc`` lets us read it.
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
import uuid
from pathlib import Path

SPEC = {"symbols": 20, "days": 100, "hours": "24h", "missing": 0, "seed": 1}
LOAD = {"regular_hours": True, "timeframe": "15min"}


def _rss_kb() -> int:
    return _proc_kb(os.getpid(), "VmRSS") or 0


def _proc_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def child(kind: str, location: str, schema: str | None, repeat: int) -> dict:
    """Runs in a fresh process: open the store, time the load, measure memory."""
    import tickstep.data as td

    store = td.Store(location, read_only=True) if kind == "duckdb" else td.PostgresStore(
        location, schema=schema
    )
    backend = None
    if kind == "postgres":
        backend = int(store._arrow("SELECT pg_backend_pid()").column(0)[0].as_py())
        store._con.commit()
    market = store.load(**LOAD)  # warm-up: imports, calendars built and cached
    del market
    server_before = _proc_kb(backend, "VmRSS") if backend else None
    before = _rss_kb()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak resident set (VmHWM) to the current one
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        market = store.load(**LOAD)
        times.append(time.perf_counter() - t0)
    peak = _proc_kb(os.getpid(), "VmHWM") or 0
    out_bytes = sum(b.ts.nbytes + 5 * b.close.nbytes for b in market.bars)
    server_peak = _proc_kb(backend, "VmHWM") if backend else None
    store.close()
    return {
        "store": kind,
        "median_s": statistics.median(times),
        "times_s": [round(t, 4) for t in times],
        "bars_out": market.n_bars,
        "output_bytes": out_bytes,
        "client_extra_bytes": (peak - before) * 1024,
        "server_extra_bytes": (
            (server_peak - server_before) * 1024 if server_peak and server_before else None
        ),
    }


def run_child(kind: str, location: str, schema: str | None, repeat: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, location, schema or "", str(repeat)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(row: dict) -> None:
    ratio = row["client_extra_bytes"] / row["output_bytes"]
    server = row["server_extra_bytes"]
    server_text = "" if server is None else f", server backend +{server / 1e6:.1f} MB"
    print(
        f"{row['store']:<9} rth+15min  {row['median_s']:7.3f} s  {row['bars_out']:,} bars out "
        f"({row['output_bytes'] / 1e6:.1f} MB); peak extra memory {row['client_extra_bytes'] / 1e6:.1f} MB "
        f"= {ratio:.2f}x the output{server_text}"
    )


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        kind, location, schema, repeat = argv[1:5]
        print(json.dumps(child(kind, location, schema or None, int(repeat))))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("TICKSTEP_PG_URL"))
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    import pandas as pd
    import tickstep.data as td

    market = td.sample(**SPEC)
    print(f"data: sample({SPEC}) -> {len(market.symbols)} symbols, {market.n_bars:,} bars")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")
    meta = pd.DataFrame(
        {"symbol": market.symbols, "exchange": "XNYS", "timezone": "America/New_York"}
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "market.duckdb")
        with td.Store(path) as store:
            store.ingest(market, metadata=meta)
        rows.append(run_child("duckdb", path, None, args.repeat))
        show(rows[-1])
    if args.pg_url:
        schema = f"tickstep_bench_{uuid.uuid4().hex[:8]}"
        store = td.PostgresStore(args.pg_url, schema=schema)
        try:
            store.ingest(market, metadata=meta)
            rows.append(run_child("postgres", args.pg_url, schema, args.repeat))
            show(rows[-1])
        finally:
            store._run(f'DROP SCHEMA "{schema}" CASCADE')
            store._con.commit()
            store.close()
    else:
        print("postgres: skipped (set TICKSTEP_PG_URL or pass --pg-url)")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
