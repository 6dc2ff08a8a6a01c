"""Strategies for the batch tests, importable by name from worker processes.

(No tests here: pytest collects the file and finds none. Workers -- forked, spawned or
Dask -- import it as ``test_batch_helpers`` from the tests directory on ``sys.path``.)
"""

from __future__ import annotations

import os
import time

import tickstep


class RaiseOn(tickstep.Strategy):
    """Buys on its first bar; raises ValueError on ``bad``'s tenth bar."""

    bad = ""
    hold = 5

    def init(self):
        self.seen = {}

    def next(self, symbol):
        n = self.seen[symbol] = self.seen.get(symbol, 0) + 1
        if symbol == self.bad and n == 10:
            raise ValueError(f"refusing to trade {symbol}")
        if n == 1:
            self.buy(symbol, size=1)
        elif n == 1 + self.hold:
            self.close(symbol)


class CrashOn(RaiseOn):
    """Kills its own worker process (no exception, no cleanup) on ``bad``'s tenth bar."""

    def next(self, symbol):
        if symbol == self.bad and self.seen.get(symbol, 0) == 9:
            os._exit(3)
        super().next(symbol)


class Sleepy(RaiseOn):
    """Takes ``delay`` seconds per run (a stand-in for a long job)."""

    delay = 0.05

    def init(self):
        super().init()
        time.sleep(self.delay)


class MetadataCheck(RaiseOn):
    """Refuses to run unless its metadata holds exactly its symbols' rows, in order."""

    def init(self):
        super().init()
        if self.metadata is None or list(self.metadata.index) != self.symbols:
            raise AssertionError(f"metadata {self.metadata!r} for symbols {self.symbols}")
        if self.metadata["sector"].isna().any():
            raise AssertionError("metadata rows without a sector")


def add_to_path(directory: str) -> None:
    """Put ``directory`` first on this process's ``sys.path`` (for ``Client.run``)."""
    import sys

    if directory not in sys.path:
        sys.path.insert(0, directory)
