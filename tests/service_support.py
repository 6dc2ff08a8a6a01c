"""A real `tickstep serve` process on a free loopback port, for the service tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

TOKEN = "test-token-4c1f"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``python -m tickstep serve`` with a store, a runs database and a token."""

    def __init__(self, store: Path, *args: str, token: str | None = TOKEN) -> None:
        self.store = store
        self.args = args
        self.token = token
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        env = {**os.environ}
        env.pop("TICKSTEP_TOKEN", None)
        if self.token:
            env["TICKSTEP_TOKEN"] = self.token
        self.log = self.store.parent / f"serve-{self.port}.log"
        # A file, not a pipe: a chatty server never blocks on a full pipe.
        with open(self.log, "w") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tickstep", "serve", "--data", str(self.store),
                 "--port", str(self.port), *self.args],
                env=env, stdout=out, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start in 30 s")

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def stop(self, sig: int = signal.SIGTERM) -> str:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()


def wait_done(client: httpx.Client, batch_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = client.get(f"/batches/{batch_id}").json()
        if status["status"] in ("done", "failed", "cancelled", "interrupted"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} not finished in {timeout} s: {status}")


def wait_for(predicate, timeout: float = 30, step: float = 0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("condition not met in time")


def example_store(folder: Path) -> Path:
    """A store in ``folder`` holding `tickstep.data.example_daily()`, the service tests'
    market."""
    import tickstep.data as td

    path = folder / "daily.duckdb"
    with td.Store(path, read_only=False) as s:
        s.ingest(td.example_daily())
    return path

