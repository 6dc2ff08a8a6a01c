"""What keeping a batch's daily returns in the runs database costs: ``python
benches/runs_returns.py [--repeat 3] [--runs 1000] [--days 1260]``.

A batch of ``--runs`` runs of ``--days`` daily returns each (random, seed 0), stored as
the service's runner stores them (`RunsDB.add_runs`, 50 runs a call, as finished chunks
arrive), into SQLite and, with ``TICKSTEP_PG_URL`` set, PostgreSQL; then read back as the
service's judging reads them (`tickstep.service.luck.batch_rows`: every run and its
returns, ranked). Each figure beside the same batch stored without returns. Medians of
``--repeat`` fresh databases.

Prints a line per figure and a ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid

import numpy as np
import pandas as pd
import sqlalchemy as sa

CHUNK = 50


def _rows(runs: int, days: int, returns: bool) -> list[dict]:
    from tickstep.significance import DAILY_RETURNS

    rng = np.random.default_rng(0)
    ends = pd.date_range("2020-01-02 21:00", periods=days, freq="B", tz="UTC")
    rows = []
    for job in range(runs):
        stats: dict = {"Sharpe Ratio": float(rng.normal()), "Return [%]": float(rng.normal())}
        if returns:
            stats[DAILY_RETURNS] = pd.Series(rng.normal(0, 0.01, days), index=ends,
                                             name="return")
        rows.append({"job": job, "params": {"n": job}, "symbols": "AAA", "stats": stats,
                     "run_time": 0.01, "status": "ok", "error": None})
    return rows


def _one(target: str, rows: list[dict]) -> tuple[float, float]:
    """Seconds to store ``rows`` in a fresh database, and to read the batch back."""
    from tickstep.service.luck import batch_rows
    from tickstep.service.runs import RunsDB

    db = RunsDB(target)
    batch = "bench-" + uuid.uuid4().hex[:12]  # beside whatever the database holds
    db.create_batch(batch, "bench", {"returns": True}, total=len(rows))
    t = time.perf_counter()
    for first in range(0, len(rows), CHUNK):
        db.add_runs(batch, "bench", rows[first:first + CHUNK])
    stored = time.perf_counter() - t
    t = time.perf_counter()
    frame = batch_rows(db, batch)
    read = time.perf_counter() - t
    assert len(frame) == len(rows)
    with db.engine.begin() as con:  # leaves the database as it found it
        ids = db.runs.c.run_id.like(batch + "-%")
        con.execute(sa.delete(db.run_returns).where(db.run_returns.c.run_id.like(batch + "-%")))
        con.execute(sa.delete(db.runs).where(ids))
        con.execute(sa.delete(db.batches).where(db.batches.c.batch_id == batch))
    db.close()
    return stored, read


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--days", type=int, default=1260)
    args = parser.parse_args()

    targets = {"sqlite": None}
    if os.environ.get("TICKSTEP_PG_URL"):
        targets["postgresql"] = os.environ["TICKSTEP_PG_URL"]
    result: dict[str, object] = {"workload": "runs_returns", "runs": args.runs,
                                 "days": args.days, "repeat": args.repeat}
    plain, kept = _rows(args.runs, args.days, False), _rows(args.runs, args.days, True)
    with tempfile.TemporaryDirectory() as folder:
        for name, url in targets.items():
            figures: dict[str, list[float]] = {k: [] for k in
                                               ("store", "read", "store_kept", "read_kept")}
            for i in range(args.repeat):  # alternating: the same machine state for both
                target = url or f"{folder}/runs{i}.sqlite"
                store, read = _one(target, plain)
                figures["store"].append(store)
                figures["read"].append(read)
                target = url or f"{folder}/kept{i}.sqlite"
                store, read = _one(target, kept)
                figures["store_kept"].append(store)
                figures["read_kept"].append(read)
            medians = {k: statistics.median(v) for k, v in figures.items()}
            result[name] = medians
            print(f"{name:<10} {args.runs:,} runs x {args.days:,} days: stored "
                  f"{medians['store']:.2f} s without returns, {medians['store_kept']:.2f} s "
                  f"with; read back {medians['read']:.2f} s / {medians['read_kept']:.2f} s")
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
