"""The results cache: finished jobs in an embedded SQLite file, keyed by content hashes.

One row per job key (see `tickstep.batch.jobs.job_key`): the hash of the job's data, its
strategy code, its parameters, the engine settings and tickstep itself. The batch's
parent process is the only writer; it commits each finished chunk as it arrives, so a
batch killed midway keeps every result it had received. SQLite in WAL mode makes a
committed row survive the process being killed, and lets several batches (or a reader)
use the same file at once.
"""

from __future__ import annotations

import os
import pickle
import sqlite3
import time
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any, Self

__all__ = ["ResultsCache", "default_cache_dir"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS results (key TEXT PRIMARY KEY, row BLOB NOT NULL, created REAL)",
    "CREATE TABLE IF NOT EXISTS fingerprints (key TEXT PRIMARY KEY, value BLOB NOT NULL, created REAL)",
)
# SQLite's default limit on bound variables is 32766 since 3.32; stay far below it.
_BATCH = 900
FILE_NAME = "results.sqlite"


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/tickstep`` (``~/.cache/tickstep`` by default)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "tickstep"


class ResultsCache:
    """Finished batch jobs on disk, in an embedded SQLite database.

    Parameters
    ----------
    path : str or path-like
        The database file, or a directory (the file is then ``results.sqlite`` in it).
        Created with its parent directories if missing.

    Notes
    -----
    Rows are stored pickled: open only cache files you (or your own batches) wrote.
    Deleting the file empties the cache; nothing else refers to it.

    Examples
    --------
    >>> import tempfile
    >>> cache = ResultsCache(tempfile.mkdtemp())
    >>> cache.put({"k1": {"status": "ok"}})
    >>> cache.get_many(["k1", "k2"])
    {'k1': {'status': 'ok'}}
    >>> len(cache)
    1
    """

    def __init__(self, path: str | PathLike[str]) -> None:
        path = Path(path).expanduser()
        if path.suffix.lower() not in (".sqlite", ".sqlite3", ".db"):
            path = path / FILE_NAME
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._con = sqlite3.connect(str(path), timeout=30.0, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL still makes every commit survive the process being killed.
        self._con.execute("PRAGMA synchronous=NORMAL")
        for sql in _SCHEMA:
            self._con.execute(sql)

    def __repr__(self) -> str:
        return f"ResultsCache({str(self.path)!r})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __getstate__(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"])  # type: ignore[misc]

    def close(self) -> None:
        """Close the database connection."""
        self._con.close()

    def __len__(self) -> int:
        return int(self._con.execute("SELECT count(*) FROM results").fetchone()[0])

    def get_many(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The cached rows among ``keys``, as ``{key: row}`` (missing keys are absent)."""
        keys = list(keys)
        found: dict[str, dict[str, Any]] = {}
        for i in range(0, len(keys), _BATCH):
            part = keys[i : i + _BATCH]
            marks = ",".join("?" * len(part))
            for key, blob in self._con.execute(
                f"SELECT key, row FROM results WHERE key IN ({marks})", part
            ):
                found[key] = pickle.loads(blob)
        return found

    def put(self, rows: Mapping[str, Mapping[str, Any]]) -> None:
        """Store (or replace) rows by key, in one committed transaction."""
        if not rows:
            return
        now = time.time()
        data = [(k, pickle.dumps(dict(v), protocol=5), now) for k, v in rows.items()]
        with self._con:  # BEGIN ... COMMIT
            self._con.execute("BEGIN IMMEDIATE")
            self._con.executemany(
                "INSERT OR REPLACE INTO results (key, row, created) VALUES (?, ?, ?)", data
            )

    def keys(self) -> list[str]:
        """Every cached job key."""
        return [r[0] for r in self._con.execute("SELECT key FROM results")]

    def clear(self) -> None:
        """Forget every cached result and data fingerprint."""
        with self._con:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.execute("DELETE FROM results")
            self._con.execute("DELETE FROM fingerprints")

    # Data fingerprints of stores and files, keyed by the file's identity (path, size,
    # modification time) and the load request: a repeat batch need not read the data.
    def get_fingerprint(self, key: str) -> Any:
        """The value stored under ``key`` by `put_fingerprint`, or None."""
        row = self._con.execute("SELECT value FROM fingerprints WHERE key = ?", [key]).fetchone()
        return None if row is None else pickle.loads(row[0])

    def put_fingerprint(self, key: str, value: Any) -> None:
        """Store ``value`` (pickled) under ``key``, replacing an earlier one."""
        with self._con:
            self._con.execute("BEGIN IMMEDIATE")
            self._con.execute(
                "INSERT OR REPLACE INTO fingerprints (key, value, created) VALUES (?, ?, ?)",
                [key, pickle.dumps(value, protocol=5), time.time()],
            )
