"""Data beyond OHLCV (issue 16): ``python benches/custom_data.py [--repeat N] [--pg-url URL]``.

Data, made once outside every timed section:

- bars: ``tickstep.data.sample(20, 100, hours="24h", missing=0, seed=1)``: 20 symbols x
  144,000 minutes = 2,880,000 bars, with 3 extra per-bar columns when the door keeps them
  (``signal``, ``pe``, ``adj_close``; until then the bars alone, and the output says so);
- a zones table: per symbol a key every 58 minutes (~2,480 keys, ~49,700 in all), 1 to 9
  zones per key (~5 on average, ~250,000 records) with level, upper, lower (float),
  strength (int), zone_type (text), first_touch and last_touch (timestamps).

Workloads (medians of ``--repeat`` runs, wall and this process's CPU):

- ``<store> bars -> engine``: ``Backtest(store, Noop)`` from a store: metadata and bars in
  two statements, the core's market, the session ends: a ready engine.
- ``<store> records load``: ``store.load_records("zones", symbols)``: one statement and
  the grouping in memory.
- ``<store> bars+zones -> engine``: ``Backtest(store, Noop, records=["zones"])``: what
  the issue times (target <= 1.5 s on DuckDB).
- ``records() per call``: a strategy reading the current zones in ``next`` (1 and 10 reads
  per bar, over all 2.88 M bars) against the same strategy without the reads; the
  difference per read (target <= 2 us). Also ``RecordBook.current`` alone at a key
  change (binary search) and between keys (the cursor), by ``timeit``.

DuckDB works on a store file in a temporary directory; PostgreSQL (``--pg-url`` or
``TICKSTEP_PG_URL``) in a scratch schema dropped at the end. The load average is printed
before and after.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import statistics
import sys
import tempfile
import time
import timeit
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import tickstep
import tickstep.data as td
from tickstep.data._records import RecordBook

SPEC = {"symbols": 20, "days": 100, "hours": "24h", "missing": 0, "seed": 1}
EXTRA_COLUMNS = ("signal", "pe", "adj_close")
KEY_EVERY_MINUTES = 58


def timed(fn, repeat: int) -> dict:
    fn()  # imports and caches outside the timings
    walls, cpus = [], []
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return {"wall_s": statistics.median(walls), "cpu_s": statistics.median(cpus),
            "walls_s": [round(w, 4) for w in walls]}


def with_extra_columns(market: td.MarketColumns) -> tuple[object, bool]:
    """The bars plus 3 extra per-bar columns as a long frame, if the door keeps them."""
    frame = market.to_frame().reset_index()
    rng = np.random.default_rng(7)
    n = len(frame)
    frame["signal"] = rng.normal(0, 1, n)
    frame["pe"] = rng.uniform(5, 40, n)
    frame["adj_close"] = frame["close"] * 0.98
    try:
        kept = td.to_market_columns(frame)
    except Exception:  # noqa: BLE001 - an older door refusing or ignoring them
        return market, False
    bars = kept.bars[0]
    has = all(hasattr(bars, c) or c in getattr(bars, "extra", {}) for c in EXTRA_COLUMNS)
    return (kept if has else market), has


def make_zones(market: td.MarketColumns, seed: int = 3) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    parts = []
    for bars in market.bars:
        keys = bars.ts[::KEY_EVERY_MINUTES]
        close = bars.close[::KEY_EVERY_MINUTES]
        counts = rng.integers(1, 10, len(keys))
        n = int(counts.sum())
        ts = np.repeat(keys, counts)
        level = np.repeat(close, counts) * (1 + rng.normal(0, 0.01, n))
        width = level * rng.uniform(0.001, 0.004, n)
        parts.append(pd.DataFrame({
            "symbol": bars.symbol,
            "ts": pd.to_datetime(ts, utc=True),
            "level": level, "upper": level + width, "lower": level - width,
            "strength": rng.integers(1, 10, n),
            "zone_type": rng.choice(["support", "resistance"], n),
            "first_touch": pd.to_datetime(ts - rng.integers(1, 500, n) * 60_000_000_000, utc=True),
            "last_touch": pd.to_datetime(ts - 60_000_000_000, utc=True),
        }))
    return pd.concat(parts, ignore_index=True)


def stores_extra(store, symbols) -> bool:
    """Whether a load from ``store`` brings the extra columns back."""
    bars = store.load(symbols[:1]).bars[0]
    return set(EXTRA_COLUMNS) <= set(getattr(bars, "extra", {}))


class Noop(tickstep.Strategy):
    pass


def reader(reads: int, use: bool) -> type[tickstep.Strategy]:
    class Reads(tickstep.Strategy):
        def next(self, symbol):
            if use:
                records = self.records
                for _ in range(reads):
                    records("zones", symbol)
            else:
                for _ in range(reads):
                    pass

    return Reads


def show(rows: list, name: str, figure: dict, target: str = "") -> None:
    figure = {"workload": name, **figure}
    rows.append(figure)
    print(f"{name:<34} {figure['wall_s']:8.3f} s wall  {figure['cpu_s']:8.3f} s CPU  {target}")


def store_workloads(rows, label, store, symbols, repeat) -> None:
    show(rows, f"{label} bars -> engine", timed(lambda: tickstep.Backtest(store, Noop), repeat))
    show(rows, f"{label} records load",
         timed(lambda: store.load_records("zones", symbols), repeat))
    before = store.queries_executed
    tickstep.Backtest(store, Noop, records=["zones"])
    statements = store.queries_executed - before
    show(rows, f"{label} bars+zones -> engine",
         timed(lambda: tickstep.Backtest(store, Noop, records=["zones"]), repeat),
         f"(target <= 1.5 s; {statements} statements)")


def per_call(rows, market, zones, repeat) -> None:
    calls = market.n_bars
    for reads in (1, 10):
        bt_use = tickstep.Backtest(market, reader(reads, True), records={"zones": zones})
        bt_not = tickstep.Backtest(market, reader(reads, False), records={"zones": zones})
        use, base = [], []
        for _ in range(repeat):  # side by side in one sitting
            c0 = time.process_time()
            bt_use.run()
            use.append(time.process_time() - c0)
            c0 = time.process_time()
            bt_not.run()
            base.append(time.process_time() - c0)
        diff = (statistics.median(use) - statistics.median(base)) / (calls * reads) * 1e6
        rows.append({"workload": f"records() x{reads} per bar", "us_per_call_cpu": diff,
                     "run_cpu_s": statistics.median(use), "base_cpu_s": statistics.median(base)})
        print(f"{'records() x' + str(reads) + ' per bar':<34} {diff:8.3f} us per read (CPU; run "
              f"{statistics.median(use):.2f} s vs {statistics.median(base):.2f} s without reads, "
              f"{calls * reads:,} reads; target <= 2 us)")
    # The lookup alone: a key change (binary search) and a hit (the cursor).
    table = tickstep.Backtest(market, Noop, records={"zones": zones}).records["zones"]
    book = RecordBook({"zones": table})
    keys = table.keys[0]
    mids = [(a + b) // 2 for a, b in zip(keys[:-1], keys[1:])]
    n = 200_000

    def per_lookup(times) -> float:
        it = itertools.cycle(times)
        return min(timeit.repeat(lambda: book.current("zones", 0, next(it)), number=n,
                                 repeat=3)) / n * 1e6

    following = per_lookup(mids)  # every call the next key: the cursor steps on
    shuffled = list(mids)
    random.Random(1).shuffle(shuffled)
    jumping = per_lookup(shuffled)  # every call a random key: binary search
    hit = per_lookup([mids[100]])  # the same key again: the cursor's answer
    rows.append({"workload": "RecordBook.current", "next_key_us": following,
                 "random_key_us": jumping, "same_key_us": hit})
    print(f"{'RecordBook.current (timeit)':<34} next key {following:.3f} us, random key "
          f"{jumping:.3f} us, same key {hit:.3f} us (best of 3, lambda call included)")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pg-url", default=os.environ.get("TICKSTEP_PG_URL"))
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    market = td.sample(**SPEC)
    market, extra = with_extra_columns(market)
    zones = make_zones(market)
    keys = len(zones[["symbol", "ts"]].drop_duplicates())
    print(f"bars: sample({SPEC}) -> {len(market.symbols)} symbols, {market.n_bars:,} bars, "
          + ("with 3 extra columns" if extra else
             "WITHOUT extra columns (the door does not keep them yet: bars only)"))
    print(f"zones: {keys:,} keys, {len(zones):,} records ({len(zones) / keys:.1f} per key)")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()}\n")
    rows: list[dict] = []
    symbols = market.symbols

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "market.duckdb"
        with td.Store(path) as store:
            t0 = time.perf_counter()
            store.ingest(market)
            t1 = time.perf_counter()
            store.ingest_records("zones", zones)
            print(f"duckdb ingest (once): bars {t1 - t0:.2f} s, zones "
                  f"{time.perf_counter() - t1:.2f} s")
        with td.Store(path, read_only=True) as store:
            stored = stores_extra(store, symbols)
            print(f"duckdb store holds the extra columns: {stored}")
            store_workloads(rows, "duckdb", store, symbols, args.repeat)

    if args.pg_url:
        schema = f"tickstep_bench_{uuid.uuid4().hex[:8]}"
        store = td.PostgresStore(args.pg_url, schema=schema)
        try:
            t0 = time.perf_counter()
            store.ingest(market)
            t1 = time.perf_counter()
            store.ingest_records("zones", zones)
            print(f"postgres ingest (once): bars {t1 - t0:.2f} s, zones "
                  f"{time.perf_counter() - t1:.2f} s")
            print(f"postgres store holds the extra columns: {stores_extra(store, symbols)}")
            store_workloads(rows, "postgres", store, symbols, args.repeat)
        finally:
            store._run(f'DROP SCHEMA "{schema}" CASCADE')
            store._con.commit()
            store.close()
    else:
        print("postgres: skipped (set TICKSTEP_PG_URL or pass --pg-url)")

    per_call(rows, market, zones, max(3, args.repeat // 2))
    print(f"\nload average at the end {os.getloadavg()}")
    result = {"extra_columns_in_memory": extra, "keys": keys, "records": len(zones), "rows": rows,
              "load_average": os.getloadavg()}
    print("RESULT " + json.dumps(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
