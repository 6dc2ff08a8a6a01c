"""The service across restarts: finished batches still served, a batch killed with the
server marked interrupted and resumed without recomputing its finished jobs, and the
generated token printed once and kept."""

from __future__ import annotations

import re
import signal
import time

import psutil
import pytest
from service_support import Server, example_store, wait_done, wait_for

GRID = {"oversold": list(range(10, 46))}  # 8 symbols x 36 = 288 jobs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return example_store(tmp_path_factory.mktemp("restart"))


def _token(log: str) -> str | None:
    found = re.search(r"API token \(shown once, keep it\): (\S+)", log)
    return found.group(1) if found else None


def _processes_using(db_path: str) -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        try:
            if db_path in " ".join(p.info["cmdline"] or []) and p.status() != psutil.STATUS_ZOMBIE:
                found.append(p)
        except psutil.Error:
            pass
    return found


def test_restart_serves_finished_batches_and_resumes_a_killed_one(store):
    first = Server(store, "--workers", "2", token=None).start()
    token = _token(first.log.read_text())
    assert token, "a generated token is printed at the first start"
    first.token = token
    with first.client() as client:
        small = client.post("/batches", json={"strategy": "sma_cross", "symbols": ["BARP"]})
        small_id = small.json()["batch_id"]
        assert wait_done(client, small_id)["status"] == "done"
        small_rows = client.get(f"/batches/{small_id}/results").json()["rows"]

        long_id = client.post("/batches", json={"strategy": "rsi_mean_reversion",
                                                "params": GRID}).json()["batch_id"]
        wait_for(lambda: client.get(f"/batches/{long_id}").json()["jobs_done"] >= 40)
    first.stop(signal.SIGKILL)
    # The runner and its workers die with the server.
    db_url = f"{store}.runs.sqlite"
    wait_for(lambda: not _processes_using(db_url), timeout=5)

    second = Server(store, "--workers", "2", token=None)
    second.port = first.port  # clients keep their address
    second.start()
    try:
        assert _token(second.log.read_text()) is None, "the token is printed only once"
        second.token = token  # the first token still opens the door
        with second.client() as client:
            assert client.get(f"/batches/{small_id}").json()["status"] == "done"
            assert client.get(f"/batches/{small_id}/results").json()["rows"] == small_rows

            killed = client.get(f"/batches/{long_id}").json()
            assert killed["status"] == "interrupted" and "resume" in killed["error"]
            stored_before = len(client.get(f"/batches/{long_id}/results").json()["rows"])
            assert 40 <= stored_before < 288

            resumed = client.post(f"/batches/{long_id}/resume")
            assert resumed.status_code == 202, resumed.text
            status = wait_done(client, long_id, timeout=120)
            assert status["status"] == "done" and status["jobs_done"] == 288
            # Finished jobs came from the results cache (all but at most the one chunk in
            # flight when the server died), not computed again.
            chunk = 288 // 16 + 1
            assert status["jobs_cached"] >= stored_before - chunk and status["jobs_cached"] > 0
            rows = client.get(f"/batches/{long_id}/results").json()["rows"]
            assert len(rows) == 288 and {r["status"] for r in rows} == {"ok"}
            assert client.post(f"/batches/{long_id}/resume").status_code == 409
    finally:
        second.stop()


def test_outside_loopback_needs_an_explicit_token(store):
    import subprocess
    import sys

    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tickstep", "serve", "--data", str(store), "--host", "0.0.0.0"],
        capture_output=True, text=True, timeout=60,
        env={k: v for k, v in __import__("os").environ.items() if k != "TICKSTEP_TOKEN"})
    assert done.returncode != 0
    assert "refusing to listen on 0.0.0.0" in done.stderr and "TICKSTEP_TOKEN" in done.stderr
    assert time.monotonic() - started < 60
