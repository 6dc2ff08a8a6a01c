"""Shared helpers of the whole-workload benchmarks: data sets, timing, memory.

Data sets are made by `tickstep.data.sample` / `sample_daily` (seeded) once and cached
as ``.npz`` files under ``target/bench-data/`` (override with ``TICKSTEP_BENCH_CACHE``);
the cache key includes the generator's source, so a changed generator makes new data.
Generation always runs in a child process, so it never inflates a measured peak RSS.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(os.environ.get("TICKSTEP_BENCH_CACHE", ROOT / "target" / "bench-data"))
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
#: Deliberate slowdown for testing the regression check (see `slowdown`).
SLOWDOWN_ENV = "TICKSTEP_BENCH_SLOWDOWN"

#: name -> (generator, keyword arguments). Shapes follow the issue.
DATASETS: dict[str, tuple[str, dict[str, Any]]] = {
    # 20 symbols x 144,000 minutes (100 days round the clock), ~5% of minutes missing.
    "minute_20x144k": (
        "sample",
        {"symbols": 20, "days": 100, "hours": "24h", "missing": 0.17, "seed": 1},
    ),
    # 100 symbols x 1 year (252 NYSE sessions) of 30-minute bars, regular hours.
    "halfhour_100x1y": ("sample", {"symbols": 100, "days": 252, "freq": "30min", "seed": 2}),
    # 211 symbols x 5 years (1,260 sessions) of daily bars.
    "daily_211x5y": ("sample_daily", {"symbols": 211, "days": 1260, "seed": 3}),
    # 100 symbols x 1 year (252 NYSE sessions x 390 minutes) of minute bars.
    "minute_100x1y": ("sample", {"symbols": 100, "days": 252, "seed": 4}),
    # One symbol, 100,800 minutes (70 days round the clock), no gaps: the peers' data.
    "peer_1x100k": ("sample", {"symbols": 1, "days": 70, "hours": "24h", "missing": 0, "seed": 5}),
    # 10 symbols x 14,400 minutes (10 days round the clock): the tests' run of the tracker.
    "minute_10x14k": (
        "sample",
        {"symbols": 10, "days": 10, "hours": "24h", "missing": 0.17, "seed": 6},
    ),
}


def slowdown() -> int:
    """Extra work per symbol-bar asked for with ``TICKSTEP_BENCH_SLOWDOWN=N`` (0 when unset).

    This is a deliberately slowed build for testing the regression check
    (``benches/track.py check``): the benches' Python strategies spin ``N`` empty loop
    iterations in every callback and the native workloads declare ``N`` extra rolling
    means, so their hot loops do more work while the engine's source stays untouched.
    """
    raw = os.environ.get(SLOWDOWN_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit():
        raise SystemExit(f"{SLOWDOWN_ENV} must be a whole number of work units >= 0, got {raw!r}")
    return int(raw)


def _generator_digest() -> str:
    import tickstep.data._sample as gen

    return hashlib.sha256(Path(gen.__file__).read_bytes()).hexdigest()[:12]


def cache_path(name: str) -> Path:
    kind, kwargs = DATASETS[name]
    key = json.dumps([kind, kwargs, _generator_digest()], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:12]
    return CACHE / f"{name}-{digest}.npz"


def prepare(name: str) -> Path:
    """Generate data set ``name`` into the cache (in this process) unless present."""
    import tickstep.data as td

    path = cache_path(name)
    if path.exists():
        return path
    kind, kwargs = DATASETS[name]
    market = getattr(td, kind)(**kwargs)
    lengths = np.array([len(b) for b in market.bars], dtype=np.int64)
    arrays = {c: np.concatenate([getattr(b, c) for b in market.bars]) for c in COLUMNS}
    meta = "" if market.metadata is None else market.metadata.to_json(orient="split")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(
        tmp, lengths=lengths, symbols=np.array(market.symbols), metadata=np.array(meta), **arrays
    )
    tmp.replace(path)
    return path


def load(name: str, *, validate: bool = True) -> Any:
    """Data set ``name`` as `MarketColumns`, generated in a child process if not cached.

    Each symbol's columns are views of one array per column (no copy). With ``validate``
    every symbol goes through the door's checks, as user data would.
    """
    import io

    import pandas as pd
    from tickstep.data import MarketColumns, SymbolBars

    path = cache_path(name)
    if not path.exists():
        subprocess.run([sys.executable, __file__, "prepare", name], check=True)
    with np.load(path) as z:
        lengths = z["lengths"]
        symbols = [str(s) for s in z["symbols"]]
        meta_json = str(z["metadata"])
        arrays = {c: z[c] for c in COLUMNS}
    for a in arrays.values():
        # Loaded data is immutable: freeze the buffer's owner (views of it are what the
        # symbols get) so the core may adopt the columns in place rather than copy them.
        while isinstance(a.base, np.ndarray):
            a = a.base
        a.flags.writeable = False
    edges = np.concatenate([[0], np.cumsum(lengths)])
    bars = []
    for k, sym in enumerate(symbols):
        cols = [arrays[c][edges[k] : edges[k + 1]] for c in COLUMNS]
        bars.append(SymbolBars(sym, *cols) if validate else SymbolBars._trusted(sym, *cols))
    meta = pd.read_json(io.StringIO(meta_json), orient="split") if meta_json else None
    if meta is not None:
        meta.index.name = "symbol"
    return MarketColumns(bars, meta)


def symbol_bars(market: Any) -> int:
    return int(sum(len(b) for b in market.bars))


def raw_bytes(market: Any) -> int:
    """Bytes of the raw columns: int64 ts + five float64 per bar."""
    return symbol_bars(market) * 8 * len(COLUMNS)


def rss_mb() -> float:
    """Current resident set size of this process, MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class Timings:
    """Wall and CPU seconds of repeated runs.

    CPU time (``time.process_time``: this process, all threads) excludes the time spent
    waiting for a core, so on a shared, busy machine it is the better estimate of what
    an idle machine would show; wall time is what a user waits. Both are reported.
    """

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []

    def add(self, wall: float, cpu: float) -> None:
        self.wall.append(wall)
        self.cpu.append(cpu)

    @property
    def median_wall(self) -> float:
        return median(self.wall)

    @property
    def median_cpu(self) -> float:
        return median(self.cpu)


def repeat(fn: Callable[[], Any], times: int) -> tuple[Timings, Any]:
    """Run ``fn`` ``times`` times; the timings of each run and the last result."""
    timings, out = Timings(), None
    for _ in range(times):
        c0, t0 = time.process_time(), time.perf_counter()
        out = fn()
        timings.add(time.perf_counter() - t0, time.process_time() - c0)
    return timings, out


def load_average() -> str:
    """The 1/5/15-minute load averages, to judge how busy the machine was."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def spread(xs: list[float]) -> str:
    """'min..max' of repeated timings, to show the noise beside a median."""
    return f"{min(xs):.3g}..{max(xs):.3g}" if xs else ""


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "prepare":
        for dataset in sys.argv[2:]:
            print(prepare(dataset))
    else:
        sys.exit(f"usage: {sys.argv[0]} prepare NAME... (names: {', '.join(DATASETS)})")
