"""`WorkerCache`: what one process keeps between a batch's chunks, bounded and owned.

A worker runs many jobs on the same symbols; loading their bars, opening the store and
building the core's `Market` once per process instead of once per job is most of a
batch's speed. Everything a process keeps lives in one `WorkerCache`, each part a
bounded LRU (``cachetools``):

* ``bars`` -- loaded symbols, bounded by their total number of bars;
* ``markets`` -- the core's markets of the symbol sets jobs ran on, with their metadata
  and the per-timezone trading-day ends;
* ``stores`` -- open store connections (closed when evicted or when the cache closes);
* ``files`` and ``snapshots`` -- a bars file read whole, memory-mapped snapshots;
* ``classes`` -- strategy classes shipped by name or by value.

Ownership: a batch's parent process makes one for the batch (seeded with the bars it
already holds, inherited by workers forked from it, used by the sequential executor)
and closes it when the batch ends. Any other worker process (spawned, Dask) owns one
for its lifetime, made on first use (`WorkerCache.of_process`).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from cachetools import LRUCache

from tickstep import _core
from tickstep.batch.jobs import StrategyRef, code_fingerprint
from tickstep.batch.sources import DataSource, Snapshot
from tickstep.data import MarketColumns, SymbolBars
from tickstep.simulation import market_from_columns, session_ends
from tickstep.strategy import Strategy

__all__ = ["WorkerCache"]

#: Bars a process keeps loaded (~9.6 GB of columns at most).
BARS_BUDGET = 200_000_000
MARKETS_KEPT = 8
STORES_KEPT = 4
SNAPSHOTS_KEPT = 4  # a long-lived (Dask) worker sees a new snapshot file per batch
CLASSES_KEPT = 64


class _Connections(LRUCache):
    """Open stores: one evicted is closed."""

    def popitem(self) -> tuple[Any, Any]:
        key, store = super().popitem()
        with contextlib.suppress(Exception):  # closing is best effort
            store.close()
        return key, store


class _Market:
    """A core market of some symbols, their metadata, and its trading-day ends by timezone."""

    __slots__ = ("market", "metadata", "ends")

    def __init__(self, market: _core.Market, metadata: pd.DataFrame | None) -> None:
        self.market = market
        self.metadata = metadata
        self.ends: dict[str, np.ndarray | None] = {}

    def session_ends(self, timezone: str) -> np.ndarray | None:
        if timezone not in self.ends:
            self.ends[timezone] = session_ends(self.market, timezone)
        return self.ends[timezone]


class WorkerCache:
    """The bounded caches of one process (see the module doc)."""

    _process: WorkerCache | None = None
    _process_lock = threading.Lock()

    def __init__(self, *, bars_budget: int = BARS_BUDGET) -> None:
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self.bars: LRUCache = LRUCache(bars_budget, getsizeof=lambda entry: max(1, len(entry[0])))
        self.markets: LRUCache = LRUCache(MARKETS_KEPT)
        self.stores: LRUCache = _Connections(STORES_KEPT)
        self.files: LRUCache = LRUCache(1)
        self.snapshots: LRUCache = LRUCache(SNAPSHOTS_KEPT)
        self.classes: LRUCache = LRUCache(CLASSES_KEPT)

    # ---- ownership ----------------------------------------------------------------------

    @classmethod
    def of_process(cls) -> WorkerCache:
        """This process's own cache (made on first use; a forked child gets a new one
        unless its parent installed one for it)."""
        with cls._process_lock:
            current = cls._process
            if current is None or current._pid != os.getpid():
                current = cls._process = WorkerCache()
            return current

    def install(self) -> None:
        """Make this (inherited) cache the process's own: a forked worker's first step."""
        self._pid = os.getpid()
        self.stores = _Connections(STORES_KEPT)  # the parent's handles are not ours
        WorkerCache._process = self

    def close(self) -> None:
        """Close the stores and drop everything held."""
        with self._lock:
            self.stores.clear()  # evicting closes each
            for part in (self.bars, self.markets, self.files, self.snapshots, self.classes):
                part.clear()

    # ---- strategies ---------------------------------------------------------------------

    def strategy_class(self, ref: StrategyRef, code_key: str) -> type[Strategy]:
        """The class, checked to be the code the caller hashed into the cache keys."""
        if ref.cls is not None:  # in the caller's own process
            return ref.cls
        key = (ref.token, code_key)
        with self._lock:
            cls = self.classes.get(key)
            if cls is not None:
                return cls
            cls = ref.load()
            if ref.payload is None and code_fingerprint(cls) != code_key:
                # A long-lived worker (Dask) imported the module before it was edited.
                importlib.reload(sys.modules[cls.__module__])
                cls = ref.load()
                if code_fingerprint(cls) != code_key:
                    raise RuntimeError(
                        f"the code of {ref.name} in this worker differs from the caller's; the "
                        "workers run other files or an older import (restart them)"
                    )
            self.classes[key] = cls
            return cls

    # ---- bars ---------------------------------------------------------------------------

    def _store(self, source: DataSource) -> Any:
        if self._pid != os.getpid():  # a forked child must not use its parent's handles
            self.stores = _Connections(STORES_KEPT)
            self._pid = os.getpid()
        key = source.location if source.kind == "store" else source.token
        store = self.stores.get(key)
        if store is None:
            store = self.stores[key] = source.connect()
        return store

    def load(self, source: DataSource, symbols: Sequence[str]) -> MarketColumns:
        """``symbols`` (sorted) from ``source``, reusing this process's connection,
        file read or snapshot map."""
        names = sorted(symbols)
        with self._lock:
            if source.kind == "snapshot":
                snap = self.snapshots.get(source.location)
                if snap is None:
                    snap = self.snapshots[source.location] = Snapshot.open(source.location)
                return snap.columns(names)
            if source.kind == "file":
                whole = self.files.get(source.token)
                if whole is None:
                    whole = self.files[source.token] = source.read_file()
                return source.select(whole, names)
            return source.load_from(self._store(source), names)

    def _keep(self, source: DataSource, columns: MarketColumns) -> None:
        # Each symbol keeps a reference to its load's metadata frame and its row there:
        # slicing a one-row frame per symbol costs more than a daily backtest's statistics.
        meta = columns.metadata
        rows = meta.index.get_indexer(columns.symbols) if meta is not None else None
        for i, b in enumerate(columns.bars):
            key = (source.token, b.symbol)
            if key in self.bars:
                continue
            row = -1 if rows is None else int(rows[i])
            with contextlib.suppress(ValueError):  # larger than the whole budget: not kept
                self.bars[key] = (b, meta if row >= 0 else None, row)

    def prefetch(self, source: DataSource, symbols: Sequence[str]) -> None:
        """Load the symbols not held yet, in one request."""
        with self._lock:
            wanted = sorted({s for s in symbols if (source.token, s) not in self.bars})
            if wanted:
                self._keep(source, self.load(source, wanted))

    def seed(self, source: DataSource, columns: MarketColumns) -> None:
        """Hold bars this process already has, as if loaded from ``source``.

        The parent seeds what it loaded to fingerprint the data; workers forked
        afterwards share those pages copy-on-write instead of loading them again.
        """
        with self._lock:
            self._keep(source, columns)

    def market(self, source: DataSource, symbols: Sequence[str]) -> _Market:
        """The core `Market` of ``symbols`` (visited in their order) with their metadata."""
        key = (source.token, tuple(symbols))
        with self._lock:
            hit = self.markets.get(key)
            if hit is not None:
                return hit
            parts = []
            for s in symbols:
                part = self.bars.get((source.token, s))
                if part is None:  # not held (or evicted): load what is missing
                    self.prefetch(source, symbols)
                    part = self.bars.get((source.token, s))
                if part is None:  # too large to keep: load it for this market alone
                    loaded = self.load(source, [s])
                    meta = loaded.metadata
                    part = (loaded.bars[0], meta, 0 if meta is not None and len(meta) else -1)
                parts.append(part)
            # Stored by name, visited in the job's order (the order its symbols were given).
            parts.sort(key=lambda p: p[0].symbol)
            columns = MarketColumns([p[0] for p in parts], order=tuple(symbols))
            market = market_from_columns(columns)
            entry = self.markets[key] = _Market(market, _metadata_of(parts))
            return entry


def _metadata_of(parts: list[tuple[SymbolBars, pd.DataFrame | None, int]]) -> pd.DataFrame | None:
    """The metadata rows of a market's symbols, in its order (None if none has any)."""
    pieces = []
    i = 0
    while i < len(parts):
        frame, first = parts[i][1], parts[i][2]
        j = i + 1
        while j < len(parts) and parts[j][1] is frame and parts[j][2] == first + (j - i):
            j += 1
        if frame is not None and first >= 0:  # consecutive rows of one frame: one slice
            pieces.append(frame.iloc[first : first + (j - i)])
        i = j
    if not pieces:
        return None
    return pieces[0] if len(pieces) == 1 else pd.concat(pieces)
