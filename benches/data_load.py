"""Data loading benchmark: ``python benches/data_load.py [--repeat N] [--pg-url URL]``.

Data: ``tickstep.data.sample(20, 100, hours="24h", missing=0, seed=1)``, i.e. 20 symbols x
144,000 minute bars = 2,880,000 bars, made once outside every timed section.

Workloads (each timed ``--repeat`` times; the median is reported, with bars/s):

- ``sample``: generating that data set (vectorised numpy).
- ``door``: ``to_market_columns`` on a mapping of 20 DataFrames (validation, copies).
- ``duckdb load``: ``Store(path, read_only=True).load()`` of all 20 symbols from a store
  file: the metadata query, the one bars query, Arrow -> numpy, the door's checks.
- ``duckdb load -> engine``: the same plus copying the columns into the Rust core
  (``tickstep.simulation.market_from_columns``): a ready engine. Skipped when the
  compiled extension is not built.
- ``duckdb rth``, ``duckdb 1h``, ``duckdb rth+1D``, ``duckdb rth+15min``: loads with
  SQL-side filters (regular NYSE hours, which keep 538,200 of the round-the-clock bars;
  hourly, daily and 15-minute resampling in New York time). The symbols are given
  exchange XNYS for these.
- ``postgres load`` (and ``-> engine``, ``rth``, ``1h``): the same from PostgreSQL when a
  URL is given (``--pg-url`` or ``TICKSTEP_PG_URL``; ``bash .ci/start-postgres.sh``
  starts a local server and prints one). Works in a scratch schema, dropped at the end.

- ``duckdb daily load`` (and ``-> engine``): ``sample_daily(211, days=1260, seed=3)`` (the
  batch bench's data, 265,860 bars) from a store file. A store keeps its bars in time
  order by day, so a query returns each symbol's rows in runs of one row: the case
  `grouped_columns` sorts rather than places run by run.

- ``duckdb+3 extra load -> engine`` (and ``rth+15min``, and the same for ``postgres``):
  the same bars with three extra columns (a signal, a P/E, an adjusted close) stored
  beside them, loaded in the same single query and handed to the core (issue 16's
  target: store -> ready engine <= 1.5 s). ``--extra-only`` runs just these.

Ingest times (one run each) are printed too. The issue's targets: DuckDB store to a ready
engine in <= 1 s; PostgreSQL at >= 1,000,000 bars/s.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import tickstep.data as td

try:
    from tickstep.simulation import market_from_columns
except ImportError:  # the compiled extension is not built
    market_from_columns = None


CPU = {"cpu": 0.0}


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, list[float]]:
    fn()  # warm caches and imports outside the timings
    times, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    CPU["cpu"] = statistics.median(cpus)
    return statistics.median(times), times


def report(rows: list[dict], name: str, median: float, times: list[float], bars: int) -> None:
    row = {
        "workload": name,
        "median_s": round(median, 4),
        "client_cpu_s": round(CPU["cpu"], 4),
        "bars": bars,
        "bars_per_s": round(bars / median),
        "times_s": [round(t, 4) for t in times],
    }
    rows.append(row)
    print(
        f"{name:<26} {median:8.3f} s   {bars / median / 1e6:7.2f} M bars/s   "
        f"(this process's CPU {CPU['cpu']:.3f} s)"
    )


def as_nyse(store, symbols) -> None:
    """Round-the-clock sample bars, listed on NYSE: regular hours then mean something."""
    tz = "America/New_York"
    store.ingest_metadata(pd.DataFrame({"symbol": symbols, "exchange": "XNYS", "timezone": tz}))


def with_extra_columns(market: td.MarketColumns) -> td.MarketColumns:
    """The bars with three extra columns: a signal (close minus its previous close), a
    P/E (random) and an adjusted close."""
    import numpy as np

    rng = np.random.default_rng(7)
    bars = []
    for b in market.bars:
        signal = np.diff(b.close, prepend=b.close[0])
        extra = {"signal": signal, "pe": rng.uniform(5, 40, len(b)), "adj_close": b.close * 0.98}
        bars.append(
            td.SymbolBars._trusted(
                b.symbol, b.ts, b.open, b.high, b.low, b.close, b.volume, extra=extra
            )
        )
    return td.MarketColumns(bars, market.metadata)


def extra_workloads(rows, label, store, repeat, n_bars) -> None:
    median, times = timed(lambda: market_from_columns(store.load()), repeat)
    report(rows, f"{label}+3 extra load -> engine", median, times, n_bars)
    as_nyse(store, store.symbols().index.tolist())
    kw = {"regular_hours": True, "timeframe": "15min"}
    median, times = timed(lambda: market_from_columns(store.load(**kw)), repeat)
    report(rows, f"{label}+3 extra rth+15min", median, times, n_bars)


def store_workloads(rows, label, store, repeat, n_bars, quick=False) -> None:
    median, times = timed(store.load, repeat)
    report(rows, f"{label} load", median, times, n_bars)
    if market_from_columns is not None:
        try:
            median, times = timed(lambda: market_from_columns(store.load()), repeat)
        except TypeError as exc:  # the engine's constructor and this script disagree
            print(f"{label} load -> engine: skipped ({exc})")
        else:
            report(rows, f"{label} load -> engine", median, times, n_bars)
    if quick:
        return
    as_nyse(store, store.symbols().index.tolist())
    for name, kw in (
        ("rth", {"regular_hours": True}),
        ("1h", {"timeframe": "1h"}),
        ("rth+1D", {"regular_hours": True, "timeframe": "1D"}),
        ("rth+15min", {"regular_hours": True, "timeframe": "15min"}),
    ):
        median, times = timed(lambda kw=kw: store.load(**kw), repeat)
        report(rows, f"{label} {name}", median, times, n_bars)


def daily_workloads(rows, repeat) -> None:
    """``duckdb daily load`` and ``-> engine`` (see the module doc)."""
    daily = td.sample_daily(211, days=1260, seed=3)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "daily.duckdb"
        with td.Store(path) as store:
            store.ingest(daily)
        with td.Store(path, read_only=True) as store:
            median, times = timed(store.load, repeat)
            report(rows, "duckdb daily load", median, times, daily.n_bars)
            if market_from_columns is not None:
                median, times = timed(lambda: market_from_columns(store.load()), repeat)
                report(rows, "duckdb daily load -> engine", median, times, daily.n_bars)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("TICKSTEP_PG_URL"))
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument(
        "--quick", action="store_true", help="only the loads without filters (and to engine)"
    )
    parser.add_argument(
        "--extra-only", action="store_true", help="only the loads with three extra columns"
    )
    args = parser.parse_args(argv)

    rows: list[dict] = []
    spec = {"symbols": 20, "days": 100, "hours": "24h", "missing": 0, "seed": 1}
    market = td.sample(**spec)
    n = market.n_bars
    print(f"data: sample({spec}) -> {len(market.symbols)} symbols, {n:,} bars")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}\n")

    if args.extra_only:
        extra_only(rows, market, args)
    elif not args.quick:
        median, times = timed(lambda: td.sample(**spec), max(1, args.repeat // 2))
        report(rows, "sample", median, times, n)
        frames = {b.symbol: b.to_frame() for b in market.bars}
        median, times = timed(lambda: td.to_market_columns(frames), args.repeat)
        report(rows, "door", median, times, n)

    if args.extra_only:
        pass
    else:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "market.duckdb"
            with td.Store(path) as store:
                t0 = time.perf_counter()
                store.ingest(market)
                print(f"{'duckdb ingest (once)':<26} {time.perf_counter() - t0:8.3f} s")
            with td.Store(path) as store:
                store_workloads(rows, "duckdb", store, args.repeat, n, args.quick)
        if not args.quick:
            daily_workloads(rows, args.repeat)
            extra_only(rows, market, args, postgres=False)

    if args.extra_only:
        pass
    elif args.pg_url:
        schema = f"tickstep_bench_{uuid.uuid4().hex[:8]}"
        store = td.PostgresStore(args.pg_url, schema=schema)
        try:
            t0 = time.perf_counter()
            store.ingest(market)
            print(f"{'postgres ingest (once)':<26} {time.perf_counter() - t0:8.3f} s")
            store_workloads(rows, "postgres", store, args.repeat, n, args.quick)
        finally:
            store._run(f'DROP SCHEMA "{schema}" CASCADE')
            store._con.commit()
            store.close()
    else:
        print("postgres: skipped (set TICKSTEP_PG_URL or pass --pg-url)")

    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


def extra_only(rows, market, args, postgres=True) -> None:
    """The loads with three extra columns, from DuckDB (and PostgreSQL when a URL is given)."""
    extended = with_extra_columns(market)
    n = extended.n_bars
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "extra.duckdb"
        with td.Store(path) as store:
            t0 = time.perf_counter()
            store.ingest(extended)
            print(f"{'duckdb+3 extra ingest':<26} {time.perf_counter() - t0:8.3f} s")
        with td.Store(path) as store:
            extra_workloads(rows, "duckdb", store, args.repeat, n)
    if postgres and args.pg_url:
        schema = f"tickstep_bench_{uuid.uuid4().hex[:8]}"
        store = td.PostgresStore(args.pg_url, schema=schema)
        try:
            t0 = time.perf_counter()
            store.ingest(extended)
            print(f"{'postgres+3 extra ingest':<26} {time.perf_counter() - t0:8.3f} s")
            extra_workloads(rows, "postgres", store, args.repeat, n)
        finally:
            store._run(f'DROP SCHEMA "{schema}" CASCADE')
            store._con.commit()
            store.close()


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
