"""Service benchmark: batches through the HTTP API, and status polls while one runs.

``python benches/service_batch.py [--repeat N] [--poll-seconds S] [--clients C]``

A real ``tickstep serve`` process on a free loopback port, over a copy of the batch
benchmark's store (``sample_daily(211, days=1260, seed=3)``: 211 symbols x 5 years of
daily bars; made once, not timed), with a real HTTP client (httpx). Workloads:

- ``each_cold``: ``POST /batches`` of ``rsi_mean_reversion`` over every symbol, one job
  per symbol (211 jobs), with an empty results cache; timed from the POST until the
  status says done (polled every 2 ms), and until the rows are fetched
  (``GET /batches/{id}/results``, JSON).
- ``each_warm``: the same request again, answered from the results cache.
- ``direct_cold`` / ``direct_warm``: the same batch by `tickstep.batch.run_batch` in
  this process (its own copy of the store and cache), measured in the same run: the
  ratio to ``each_*`` is what the HTTP service adds.
- ``polls``: while a long batch runs (211 symbols x 12 RSI thresholds, no cache), C
  clients (threads with keep-alive connections) call ``GET /batches/{id}`` as fast as
  they can for S seconds: requests per second and latency percentiles.

Targets (from the issue): cold <= 1 s, warm <= 0.1 s, polls >= 200 requests/s with
p99 <= 50 ms. Prints one line per workload and a final ``RESULT {json}`` line. The
machine's load shows in the figures: run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch_rsi import store_path  # noqa: E402  (the same data as the batch benchmark)

TOKEN = "bench-token"
STRATEGY = "rsi_mean_reversion"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(store: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "TICKSTEP_TOKEN": TOKEN}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tickstep", "serve", "--data", str(store),
                                 "--port", str(port)], env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    raise RuntimeError(log.read_text())


def run_batch_over_http(client: httpx.Client, body: dict) -> tuple[float, float, dict]:
    """(seconds to done, seconds to rows fetched, final status)."""
    t0 = time.perf_counter()
    batch_id = client.post("/batches", json=body).json()["batch_id"]
    while True:
        status = client.get(f"/batches/{batch_id}").json()
        if status["status"] in ("done", "failed", "cancelled", "interrupted"):
            break
        time.sleep(0.002)
    done = time.perf_counter() - t0
    rows = client.get(f"/batches/{batch_id}/results").json()["rows"]
    fetched = time.perf_counter() - t0
    assert status["status"] == "done" and len(rows) == status["jobs_total"], status
    return done, fetched, status


def drop_cache(store: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}.results.sqlite{suffix}").unlink(missing_ok=True)


def polls(url: str, batch_id: str, seconds: float, clients: int) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def hammer(i: int) -> None:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                response = c.get(f"/batches/{batch_id}")
                latencies[i].append(time.perf_counter() - t0)
                assert response.status_code == 200

    t0 = time.perf_counter()
    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    every = sorted(x for xs in latencies for x in xs)
    return {
        "requests": len(every),
        "per_second": len(every) / wall,
        "p50_ms": 1000 * every[len(every) // 2],
        "p99_ms": 1000 * every[min(len(every) - 1, int(len(every) * 0.99))],
        "max_ms": 1000 * every[-1],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per workload (median)")
    parser.add_argument("--poll-seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="tickstep-service-bench-"))
    store = work / "market.duckdb"
    shutil.copy(store_path(), store)
    port = free_port()
    server = start_server(store, port, work / "serve.log")
    url = f"http://127.0.0.1:{port}"
    out: dict = {"load_average": os.getloadavg()}
    try:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"},
                          timeout=120) as client:
            body = {"strategy": STRATEGY}
            run_batch_over_http(client, {**body, "cache": False})  # warm the spare runner
            for name, cold in (("each_cold", True), ("each_warm", False)):
                done, fetched = [], []
                for _ in range(args.repeat):
                    if cold:
                        drop_cache(store)
                    else:
                        run_batch_over_http(client, body)  # make sure the cache is full
                    d, f, status = run_batch_over_http(client, body)
                    assert (status["jobs_cached"] == status["jobs_total"]) == (not cold), status
                    done.append(d)
                    fetched.append(f)
                out[name] = {"done_s": statistics.median(done),
                             "with_rows_s": statistics.median(fetched),
                             "runs": [round(x, 4) for x in done]}
                print(f"{name:10s} done {out[name]['done_s']:.3f} s, with rows "
                      f"{out[name]['with_rows_s']:.3f} s (median of {args.repeat}; "
                      f"{status['jobs_total']} jobs)", flush=True)

            from tickstep.batch import run_batch

            direct = work / "direct.duckdb"
            shutil.copy(store, direct)
            for name, cold in (("direct_cold", True), ("direct_warm", False)):
                times = []
                for _ in range(args.repeat):
                    if cold:
                        drop_cache(direct)
                    else:
                        run_batch(STRATEGY, str(direct), progress=False)
                    t0 = time.perf_counter()
                    rows = run_batch(STRATEGY, str(direct), progress=False)
                    times.append(time.perf_counter() - t0)
                    assert (rows.attrs["batch"]["cached"] == len(rows)) == (not cold)
                out[name] = {"done_s": statistics.median(times),
                             "runs": [round(x, 4) for x in times]}
                http = out[name.replace("direct", "each")]["done_s"]
                print(f"{name:10s} done {out[name]['done_s']:.3f} s (median of {args.repeat}); "
                      f"HTTP / direct = {http / out[name]['done_s']:.2f}", flush=True)

            long = client.post("/batches", json={
                "strategy": STRATEGY, "params": {"oversold": list(range(20, 32))},
                "cache": False}).json()["batch_id"]
            while client.get(f"/batches/{long}").json()["status"] != "running":
                time.sleep(0.01)
            out["polls"] = polls(url, long, args.poll_seconds, args.clients)
            still = client.get(f"/batches/{long}").json()
            out["polls"]["batch_status_after"] = still["status"]
            out["polls"]["jobs_done_during"] = still["jobs_done"]
            client.delete(f"/batches/{long}")
            p = out["polls"]
            print(f"polls      {p['per_second']:.0f} requests/s, p50 {p['p50_ms']:.1f} ms, "
                  f"p99 {p['p99_ms']:.1f} ms, max {p['max_ms']:.1f} ms ({args.clients} clients, "
                  f"{args.poll_seconds:.0f} s, batch {still['status']} at {still['jobs_done']}/"
                  f"{still['jobs_total']} jobs)", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)
    print("RESULT " + json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
