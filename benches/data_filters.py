"""Filtered loads: ``python benches/data_filters.py [--repeat N] [--pg-url URL]``.

Data: ``tickstep.data.sample(20, 100, hours="24h", missing=0, seed=1)``, i.e. 20 symbols
x 144,000 round-the-clock minutes = 2,880,000 bars, listed on NYSE (exchange XNYS,
timezone America/New_York), ingested once into a DuckDB file and, when a URL is given
(``--pg-url`` or ``TICKSTEP_PG_URL``), into a scratch PostgreSQL schema.

Workloads: ``store.load(regular_hours=True, timeframe="15min")`` -- regular NYSE hours,
then 15-minute bars in New York time (the issue's target: <= 1 s, and <= 2x the
output's size in extra memory, on DuckDB and on PostgreSQL) -- and
``store.load(timeframe="1h")``, hourly bars of every minute (no session filter: all
2.88 M bars are read and aggregated).

Each store and workload is measured in a fresh child process. Its first load is shown
apart: it pays what the process keeps for every later load -- exchange calendars,
lazily imported modules, allocator arenas and, for DuckDB, the buffer pool that now
holds the scanned table's blocks (shown; bounded by DuckDB's ``memory_limit``, none of
it grows with the output). Each of ``--repeat`` timed loads then starts with nothing
of the previous one alive and the memory it freed given back to the system (Python's
garbage collected, pyarrow's pool released, ``malloc_trim``: else the next load reuses
it unseen and reads near 0); its extra memory is the peak resident set during the load
(``VmHWM``, reset through ``/proc/self/clear_refs`` just before it) minus the resident
set before it: what the load adds to the process at its peak, the output included.
The median time and the median and largest extra memory are shown, with the output's
size (ts + five float columns). DuckDB runs inside the process, so all its working
memory counts; PostgreSQL's server backend is a separate process whose private memory
(``RssAnon``) is sampled every 2 ms during the loads: its peak minus its value before
them is shown apart.

How the loads stay near their output's size: DuckDB streams the kept bars in small
batches on one thread and they are folded into buckets as they arrive
(`tickstep.data._buckets`); PostgreSQL resamples on the server and its bars arrive in
small batches, each symbol's joined into arrays when its rows end. ``--count-only``
also runs each DuckDB resampling query in SQL counting its rows inside DuckDB (its
working memory alone, nothing reaching Python).
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
LOADS = ({"regular_hours": True, "timeframe": "15min"}, {"timeframe": "1h"})


def _give_back() -> None:
    """Return freed memory to the system (Python's garbage, pyarrow's pool, the C
    heap), so that the resident set before a load is what is in use: memory the last
    load freed but the allocators kept would otherwise be reused unseen."""
    import ctypes
    import gc

    import pyarrow as pa

    gc.collect()
    pa.default_memory_pool().release_unused()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


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


def child(kind: str, location: str, schema: str | None, repeat: int, load: dict,
          count_only: bool = False, threads: int | None = None) -> dict:
    """Runs in a fresh process: open the store, time the loads, measure memory."""
    import threading

    import tickstep.data as td

    store = td.Store(location, read_only=True) if kind == "duckdb" else td.PostgresStore(
        location, schema=schema
    )
    if threads:
        store._run(f"SET threads = {int(threads)}")
    backend = None
    if kind == "postgres":
        backend = int(store._arrow("SELECT pg_backend_pid()").column(0)[0].as_py())
        store._con.commit()
    run = (lambda: store.load(**load))
    if count_only:
        sql, params = _bars_sql(store, load)
        run = (lambda: store._con.sql(f"SELECT count(*) FROM ({sql})", params=params).fetchall())
    pool = (lambda: 0) if kind != "duckdb" else (lambda: int(store._con.sql(
        "SELECT coalesce(sum(memory_usage_bytes), 0) FROM duckdb_memory()").fetchall()[0][0]))
    pool_before = pool()
    before = _rss_kb()
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    t0 = time.perf_counter()
    market = run()  # the first load: imports, calendars, buffer pool, arenas
    first_s = time.perf_counter() - t0
    first_extra = ((_proc_kb(os.getpid(), "VmHWM") or 0) - before) * 1024
    first_pool = pool() - pool_before
    del market
    server = {"peak": 0, "on": True}

    def sample_server() -> None:
        while server["on"]:
            server["peak"] = max(server["peak"], _proc_kb(backend, "RssAnon") or 0)
            time.sleep(0.002)

    server_before = _proc_kb(backend, "RssAnon") if backend else None
    sampler = threading.Thread(target=sample_server) if backend else None
    if sampler:
        sampler.start()
    times, cpus, extras = [], [], []
    for _ in range(repeat):
        _give_back()
        before = _rss_kb()
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident set (VmHWM) to the current one
        c0, t0 = time.process_time(), time.perf_counter()
        market = run()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
        extras.append(((_proc_kb(os.getpid(), "VmHWM") or 0) - before) * 1024)
        if _ + 1 < repeat:
            del market
    if sampler:
        server["on"] = False
        sampler.join()
    out_bytes = 0 if count_only else sum(b.ts.nbytes + 5 * b.close.nbytes for b in market.bars)
    store.close()
    return {
        "store": kind,
        "load": load,
        "count_only": count_only,
        "duckdb_threads": threads,
        "first_s": first_s,
        "first_extra_bytes": first_extra,
        "first_buffer_pool_bytes": first_pool,
        "median_s": statistics.median(times),
        "times_s": [round(t, 4) for t in times],
        "median_cpu_s": statistics.median(cpus),
        "bars_out": 0 if count_only else market.n_bars,
        "output_bytes": out_bytes,
        "extra_bytes_median": statistics.median(extras),
        "extra_bytes_max": max(extras),
        "extra_bytes": extras,
        "server_extra_bytes": (
            (server["peak"] - server_before) * 1024 if backend and server_before else None
        ),
    }


def _bars_sql(store, load: dict) -> tuple[str, dict]:
    """The statement resampling in SQL would send (captured from one load)."""
    seen = {}
    read = store._read_bars

    def capture(sql, params):
        seen["sql"], seen["params"] = sql, params
        return read(sql, params)

    store._read_bars = capture
    store._fetch_buckets = lambda *args, **kwargs: None  # the SQL aggregate's statement
    store.load(**load)
    del store._fetch_buckets
    store._read_bars = read
    return seen["sql"], seen["params"]


def run_child(kind: str, location: str, schema: str | None, repeat: int, load: dict,
              count_only: bool = False, threads: int | None = None) -> dict:
    spec = json.dumps({"load": load, "count_only": count_only, "threads": threads})
    out = subprocess.run(
        [sys.executable, __file__, "--child", kind, location, schema or "", str(repeat), spec],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def show(row: dict) -> None:
    name = "+".join(["rth"] * bool(row["load"].get("regular_hours")) + [row["load"].get("timeframe", "")])
    if row.get("duckdb_threads"):
        name += f" t={row['duckdb_threads']}"
    mb = 1e6
    if row["count_only"]:
        print(f"{row['store']:<9} {name:<10} count(*) only {row['median_s']:7.3f} s  extra memory "
              f"median {row['extra_bytes_median'] / mb:.1f} MB, max {row['extra_bytes_max'] / mb:.1f} MB "
              f"({', '.join(f'{x / mb:.1f}' for x in row['extra_bytes'])})")
        return
    out = row["output_bytes"]
    server = row["server_extra_bytes"]
    server_text = "" if server is None else f"; server backend private +{server / mb:.1f} MB"
    print(
        f"{row['store']:<9} {name:<10} {row['median_s']:7.3f} s (CPU {row['median_cpu_s']:.3f} s)  "
        f"{row['bars_out']:,} bars out "
        f"({out / mb:.2f} MB); extra memory median {row['extra_bytes_median'] / mb:.2f} MB "
        f"= {row['extra_bytes_median'] / out:.2f}x the output, max {row['extra_bytes_max'] / mb:.1f} MB "
        f"= {row['extra_bytes_max'] / out:.2f}x{server_text}"
    )
    pool = row["first_buffer_pool_bytes"]
    pool_text = f", of which DuckDB's buffer pool {pool / mb:.1f} MB" if pool else ""
    print(f"{'':<20} first load in the process {row['first_s']:.3f} s, "
          f"+{row['first_extra_bytes'] / mb:.1f} MB{pool_text}")


def main(argv: list[str]) -> int:
    if argv and argv[0] == "--child":
        kind, location, schema, repeat, spec = argv[1:6]
        spec = json.loads(spec)
        print(json.dumps(child(kind, location, schema or None, int(repeat), **spec)))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("TICKSTEP_PG_URL"))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--count-only", action="store_true",
                        help="also run each DuckDB query counting its rows inside DuckDB")
    parser.add_argument("--duckdb-threads", type=int,
                        help="also run the DuckDB loads with DuckDB's threads setting at N")
    args = parser.parse_args(argv)

    import pandas as pd
    import tickstep.data as td

    market = td.sample(**SPEC)
    print(f"data: sample({SPEC}) -> {len(market.symbols)} symbols, {market.n_bars:,} bars")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    print(f"tickstep: {Path(td.__file__).parents[1]}")
    print("per load: median wall time (and CPU time of the whole process) of --repeat loads; "
          "extra memory = the peak resident set during the load minus the resident set "
          "just before it, as a multiple of the output's bytes (ts + open, high, low, "
          "close, volume: 48 bytes a bar); target <= 1 s and <= 2x\n")
    meta = pd.DataFrame(
        {"symbol": market.symbols, "exchange": "XNYS", "timezone": "America/New_York"}
    )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "market.duckdb")
        with td.Store(path) as store:
            store.ingest(market, metadata=meta)
        for load in LOADS:
            rows.append(run_child("duckdb", path, None, args.repeat, load))
            show(rows[-1])
            if args.duckdb_threads:
                rows.append(run_child("duckdb", path, None, args.repeat, load,
                                      threads=args.duckdb_threads))
                show(rows[-1])
            if args.count_only:
                rows.append(run_child("duckdb", path, None, args.repeat, load, count_only=True))
                show(rows[-1])
    if args.pg_url:
        schema = f"tickstep_bench_{uuid.uuid4().hex[:8]}"
        store = td.PostgresStore(args.pg_url, schema=schema)
        try:
            store.ingest(market, metadata=meta)
            for load in LOADS:
                rows.append(run_child("postgres", args.pg_url, schema, args.repeat, load))
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
