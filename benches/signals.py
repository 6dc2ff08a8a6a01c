"""Signals mode: one native run and a native grid, medians and ratios in one run.

Workloads (data ``minute_20x144k``: 20 symbols x 144,000 minutes, built outside the timing):

- ``single``: SMA(10)/SMA(30) cross signals (long entries and exits, made with numpy before
  timing) through ``_core.run_signals`` on one thread: symbol-bars/s of the native run
  (engine built outside the timing), then the whole ``Backtest.run_signals`` (the same run
  plus the `Result`: frames and statistics), the same calls split where the native call
  starts and ends (before it, in it, after it), and the building of that `Result` alone (from
  a finished engine: the end-of-run rejection check, the logs, frames and statistics), then
  the same bars with no signal set (what the mode costs when nothing happens).
- ``grid``: 100 (fast, slow) pairs x the same 20 symbols in one native call
  (``_core.run_signals`` over 100 engines) on 1 thread and on 2 threads: wall time, CPU
  time and the speed-up; then the whole ``Backtest.run_signal_grid`` (the stats table: a
  row of statistics per set) on 1 thread and on 2 threads, side by side, with the CPU time
  the statistics take on the calling thread (each run's, as its summary comes in).
- ``optimize``: ``Backtest.optimize`` of a `SignalStrategy` whose ``signals`` are a pandas
  SMA cross (rolling means of each symbol's closes), 16 (fast, slow) pairs on all cores: wall and CPU time, beside the time ``signals`` alone takes for those sets
  on one thread (the Python part the native grid overlaps).
- ``peer``: vectorbt's ``Portfolio.from_signals`` on the same closes and signals, when
  vectorbt is importable (``--vectorbt-python`` may name another interpreter with it;
  the closes and signals are handed over in an .npz file). Its calls are timed in turn
  with the native runs (one of each, ``--repeat`` times; on the peers' data five of each),
  so a slow spell of the shared machine falls on both sides alike.
- ``cache scan`` (``--cache-scan 1000,5000,...``, alone): the single run on the first N
  bars of each of the 20 symbols, for each N: how the rate falls as the market outgrows
  the caches (about 48 bytes a symbol-bar: 1,000 bars of 20 symbols fit a core's L2).
- ``peers' data``: the native run and vectorbt's ``from_signals`` again, on the peer
  comparison's data (``benches/peers/compare.py``: one symbol, 100,800 minutes), where
  issue 15 sets its 30x target; a run there takes about a millisecond, so it is repeated
  five times as often.

Wall time is what a user waits; CPU time (this process, all threads) is the better
estimate of an idle machine's figures on a busy one. Both are printed, with the load.

Run: ``.venv/bin/python benches/signals.py [--repeat 5] [--grid-repeat 3] [--single-only |
--grid-only | --optimize-only | --cache-scan N,N,...]`` (``--single-only``: the single run
and the peer, no grid;
``--grid-only``: the grid and the optimize row; ``--optimize-only``: that row alone).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _harness as h  # noqa: E402
import tickstep  # noqa: E402
from peers.compare import DATASET as PEERS_DATA  # noqa: E402
from tickstep import _core  # noqa: E402
from tickstep.rejections import check_rejections  # noqa: E402
from tickstep.simulation import engine_for, market_from_columns, result_of  # noqa: E402


def rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    """Mean of the last ``n`` values (NaN before ``n`` values): the SMA a strategy sees."""
    c = np.cumsum(np.concatenate([[0.0], x]))
    out = np.full(len(x), np.nan)
    out[n - 1 :] = (c[n:] - c[:-n]) / n
    return out


def sma_cross(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """Entries where the fast SMA crosses above the slow one, exits where it crosses below."""
    f, s = rolling_mean(close, fast), rolling_mean(close, slow)
    above = f > s
    below = f < s
    prev_above = np.concatenate([[False], above[:-1]])
    prev_below = np.concatenate([[False], below[:-1]])
    return above & ~prev_above & ~np.isnan(s), below & ~prev_below & ~np.isnan(s)


class PandasSmaCross(tickstep.SignalStrategy):
    """SMA cross signals as a pandas user writes them: entries where the fast rolling mean
    of the closes crosses above the slow one, exits where it crosses below."""

    size = 0.04
    fast = 10
    slow = 30

    def signals(self, symbol, bars):  # type: ignore[no-untyped-def]
        f = bars["close"].rolling(self.fast).mean()
        s = bars["close"].rolling(self.slow).mean()
        above, below = (f > s).to_numpy(), (f < s).to_numpy()
        was_above = np.concatenate([[False], above[:-1]])
        was_below = np.concatenate([[False], below[:-1]])
        return {"entries": above & ~was_above, "exits": below & ~was_below}


def market_closes(market) -> list[np.ndarray]:  # type: ignore[no-untyped-def]
    """Each symbol's closes, in the market's symbol order (views of the core's columns)."""
    return [np.asarray(market.column(s, "close", 0, sys.maxsize)) for s in range(len(market.symbols))]


def single_set(closes: list[np.ndarray]) -> list[tuple[list[np.ndarray], list[np.ndarray]]]:
    """The single run's one signal set: SMA 10/30 cross entries and exits per symbol."""
    pairs = [sma_cross(c, 10, 30) for c in closes]
    return [([e for e, _ in pairs], [x for _, x in pairs])]


def native_run(market, config, sets, threads):  # type: ignore[no-untyped-def]
    """Engines built outside the timing; returns a function timing only the native call."""

    def run() -> list:
        engines = [engine_for(market, config, None) for _ in sets]
        c0, t0 = time.process_time(), time.perf_counter()
        nothing = [[None] * len(sets[0][0])] * len(sets)
        _core.run_signals(engines, [e for e, _ in sets], [x for _, x in sets], nothing, nothing,
                          size=[0.04] * len(sets), size_type=["percent"] * len(sets),
                          sl=[None] * len(sets), tp=[None] * len(sets), sl_price=nothing,
                          tp_price=nothing, threads=threads)
        return [time.perf_counter() - t0, time.process_time() - c0, engines]

    return run


def result_building(market, config, sets):  # type: ignore[no-untyped-def]
    """A finished engine made outside the timing; returns a function timing what
    ``Backtest.run_signals`` does after the native run: the rejection check and the
    `Result` (frames and statistics)."""
    native = native_run(market, config, sets, 1)

    def run() -> list:
        (engine,) = native()[2]
        # The rejected orders alone where the engine exports them so (else every order).
        rejected_orders = getattr(engine, "rejected_orders", engine.orders)
        c0, t0 = time.process_time(), time.perf_counter()
        rejected = check_rejections(rejected_orders(), list(market.symbols), config.on_reject)
        result = result_of(engine, market, config, params={}, strategy=None, metadata=None,
                           symbols=None, rejected=rejected)
        return [time.perf_counter() - t0, time.process_time() - c0, result]

    return run


class _NativeMarks:
    """`tickstep._core` as `tickstep.signals` sees it, noting the wall and CPU times at
    which each ``run_signals`` call starts and ends (everything else passes through)."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []
        #: CPU seconds of the calling thread in the summaries' ``on_run`` (the statistics).
        self.on_run_cpu = 0.0

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        return getattr(_core, name)

    def run_signals(self, *args, on_run=None, **kwargs):  # type: ignore[no-untyped-def]
        if on_run is not None:  # a grid's summaries: the time in on_run
            def timed_on_run(k, summary):  # type: ignore[no-untyped-def]
                c0 = time.thread_time()
                try:
                    return on_run(k, summary)
                finally:
                    self.on_run_cpu += time.thread_time() - c0

            return _core.run_signals(*args, on_run=timed_on_run, **kwargs)
        self.marks.append((time.perf_counter(), time.process_time()))
        try:
            return _core.run_signals(*args, **kwargs)
        finally:
            self.marks.append((time.perf_counter(), time.process_time()))


def split_calls(bt, entries, exits, times: int) -> dict[str, h.Timings]:  # type: ignore[no-untyped-def]
    """``Backtest.run_signals`` timed in three parts within the same calls: before its
    native call (signals checked and converted, engine made), the native call, after it
    (the rejection check and the `Result`). Parts of one call add up to that call, where
    medians of separate timings (native run, Result alone, whole call) taken at different
    moments of a shared machine need not."""
    import tickstep.signals as signals_module

    marked = _NativeMarks()
    parts = {"before": h.Timings(), "native": h.Timings(), "after": h.Timings()}
    signals_module._core = marked  # type: ignore[assignment]
    try:
        for _ in range(times):
            marked.marks.clear()
            c0, t0 = time.process_time(), time.perf_counter()
            bt.run_signals(entries, exits, size=0.04)
            t3, c3 = time.perf_counter(), time.process_time()
            (t1, c1), (t2, c2) = marked.marks
            parts["before"].add(t1 - t0, c1 - c0)
            parts["native"].add(t2 - t1, c2 - c1)
            parts["after"].add(t3 - t2, c3 - c2)
    finally:
        signals_module._core = _core
    return parts


def timed(run, times: int) -> h.Timings:  # type: ignore[no-untyped-def]
    t = h.Timings()
    for _ in range(times):
        wall, cpu, _ = run()
        t.add(wall, cpu)
    return t


#: The child interpreter's side of `VectorbtPeer`: loads the closes and signals, makes
#: one untimed call, says it is ready, then times as many calls as each line asks for.
VECTORBT_CHILD = r"""
import json, sys, time, numpy as np, pandas as pd, vectorbt as vbt
z = np.load(sys.argv[1])
close = pd.DataFrame(z["close"]); en = pd.DataFrame(z["entries"]); ex = pd.DataFrame(z["exits"])

def call():
    pf = vbt.Portfolio.from_signals(close, en, ex, size=0.04, size_type="percent",
                                    init_cash=10_000, cash_sharing=True)
    pf.final_value()

# numba compiles on first use, for the arrays' exact types and layouts (a call on a slice
# of them compiled other variants and left ~4 s in the first timed call): one untimed call
# exactly like the timed ones
call()
print(json.dumps({"version": vbt.__version__}), flush=True)
for line in sys.stdin:
    call()  # after the other side's block, with the caches refilled (not timed)
    times = []
    for _ in range(int(line)):
        c0, t0 = time.process_time(), time.perf_counter()
        call()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    print(json.dumps(times), flush=True)
"""


class VectorbtPeer:
    """vectorbt's ``Portfolio.from_signals`` timed in a child interpreter (one with vectorbt)
    on demand, so that its rounds alternate with tickstep's: on this shared machine a
    process can run at half speed for seconds, and timing one side after the other let
    such a spell fall on either and move the ratio by a quarter. Both sides run on one
    core (see `one_core`), and each side's block starts with a call it does not time."""

    def __init__(self, proc: subprocess.Popen, version: str) -> None:
        self.proc, self.version = proc, version

    @classmethod
    @contextmanager
    def started(cls, python: str, closes, entries, exits) -> Iterator[VectorbtPeer | None]:  # type: ignore[no-untyped-def]
        """The peer on these closes and signals (None when `python` cannot run vectorbt),
        its child ended on leaving."""
        # Its messages go to a file: a pipe nobody reads while it runs could fill and stop it.
        with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryFile("w+") as errors:
            path = Path(tmp) / "signals.npz"
            np.savez(path, close=closes, entries=entries, exits=exits)
            proc = subprocess.Popen([python, "-c", VECTORBT_CHILD, str(path)], text=True,
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors)
            assert proc.stdin is not None and proc.stdout is not None
            try:
                ready = proc.stdout.readline()  # the data is loaded once this line comes
                if not ready:
                    errors.seek(0)
                    print(f"vectorbt not run ({python}): {errors.read().strip().splitlines()[-1:]}")
                    yield None
                else:
                    yield cls(proc, json.loads(ready)["version"])
            finally:
                proc.stdin.close()
                proc.wait()

    def time(self, calls: int, into: h.Timings) -> None:
        """Time `calls` more calls, adding them to `into`."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{calls}\n")
        self.proc.stdin.flush()
        for wall, cpu in json.loads(self.proc.stdout.readline()):
            into.add(wall, cpu)


@contextmanager
def one_core() -> Iterator[None]:
    """This process (and the children it starts meanwhile) on one core. Two processes
    taking turns on two cores leave each core idle while the other works, and a core
    coming back from idle here runs the next few milliseconds at up to half speed: the
    native run's first runs after each of vectorbt's blocks took 1.2-2.0 ms against 0.9."""
    if not hasattr(os, "sched_setaffinity"):  # not on Linux: as the system places them
        yield
        return
    cores = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cores)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, cores)


def alternate(run, peer: VectorbtPeer | None, rounds: int, each: int) -> tuple[h.Timings, dict | None]:  # type: ignore[no-untyped-def]
    """`rounds` rounds of `each` native runs then `each` of vectorbt's calls, each block
    after a run or call it does not time: both sides' timings, vectorbt's as the dict the
    figures read (None without vectorbt). Call within `one_core`, the peer started there."""
    native, theirs = h.Timings(), h.Timings()
    for _ in range(rounds):
        run()
        for _ in range(each):
            wall, cpu, _ = run()
            native.add(wall, cpu)
        if peer is not None:
            peer.time(each, theirs)
    if peer is None:
        return native, None
    return native, {"wall": theirs.median_wall, "cpu": theirs.median_cpu, "version": peer.version}


def one_run(args, market, config, bt, closes, bars, n_sym, out):  # type: ignore[no-untyped-def]
    """The single run, its Result and the bare loop, then vectorbt on the same signals;
    their timings (and vectorbt's figures or None)."""
    # ---- one run ------------------------------------------------------------------------
    one = single_set(closes)
    entry_cols, exit_cols = one[0]
    if len({len(c) for c in closes}) == 1:
        peer_data = (np.column_stack(closes), np.column_stack(entry_cols), np.column_stack(exit_cols))
    else:
        # vectorbt needs one index: align on the union timeline, NaN where a symbol has no bar.
        timeline = np.asarray(market.timeline())
        full = np.full((len(timeline), n_sym), np.nan)
        en = np.zeros((len(timeline), n_sym), bool)
        ex = np.zeros((len(timeline), n_sym), bool)
        for s in range(n_sym):
            rows = np.searchsorted(timeline, np.asarray(market.column(s, "ts", 0, sys.maxsize)))
            full[rows, s], en[rows, s], ex[rows, s] = closes[s], entry_cols[s], exit_cols[s]
        peer_data = (full, en, ex)
    # The native run and vectorbt's, one of each in turn.
    with one_core(), VectorbtPeer.started(args.vectorbt_python, *peer_data) as peer:
        single, vb = alternate(native_run(market, config, one, 1), peer, args.repeat, 1)
    quiet = [np.zeros(len(c), bool) for c in closes]
    bare = timed(native_run(market, config, [(quiet, quiet)], 1), args.repeat)
    building = timed(result_building(market, config, one), args.repeat)
    whole = h.Timings()
    entries = dict(zip(market.symbols, entry_cols))
    exits = dict(zip(market.symbols, exit_cols))
    for _ in range(args.repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        result = bt.run_signals(entries, exits, size=0.04)
        whole.add(time.perf_counter() - t0, time.process_time() - c0)
    trades = int(result.stats["# Trades"])
    parts = split_calls(bt, entries, exits, args.repeat)
    out["single"] = {
        "symbol_bars": bars, "trades": trades,
        "native_wall": single.median_wall, "native_cpu": single.median_cpu,
        "rate_wall": bars / single.median_wall, "rate_cpu": bars / single.median_cpu,
        "result_wall": whole.median_wall, "result_cpu": whole.median_cpu,
        "building_wall": building.median_wall, "building_cpu": building.median_cpu,
        "no_signals_cpu": bare.median_cpu, "no_signals_rate_cpu": bars / bare.median_cpu,
        **{f"split_{part}_cpu": t.median_cpu for part, t in parts.items()},
    }
    print(f"single run, {n_sym} x {bars // n_sym:,} bars, SMA 10/30 cross, {trades} trades:\n"
          f"  native run: {single.median_wall * 1e3:.1f} ms wall ({bars / single.median_wall / 1e6:.0f} M "
          f"symbol-bars/s), {single.median_cpu * 1e3:.1f} ms CPU ({bars / single.median_cpu / 1e6:.0f} M/s)\n"
          f"  Backtest.run_signals with the Result: {whole.median_wall:.3f} s wall, "
          f"{whole.median_cpu:.3f} s CPU ({whole.median_cpu / single.median_cpu:.2f}x the native "
          f"run's CPU)\n"
          f"  within the same calls: {parts['before'].median_cpu * 1e3:.1f} ms CPU before the "
          f"native call (signals converted, engine made), {parts['native'].median_cpu * 1e3:.1f} "
          f"ms in it, {parts['after'].median_cpu * 1e3:.1f} ms after (rejection check, Result)\n"
          f"  its Result alone (rejection check, frames, statistics): "
          f"{building.median_wall * 1e3:.1f} ms wall, {building.median_cpu * 1e3:.1f} ms CPU\n"
          f"  the same bars with no signal (the mode's bare loop): {bare.median_cpu * 1e3:.1f} ms "
          f"CPU ({bars / bare.median_cpu / 1e6:.0f} M symbol-bars/s)")

    # ---- the peer (timed above, in turn with the native run) -------------------------
    if vb is not None:
        out["vectorbt"] = vb
        print(f"  vectorbt {vb['version']} from_signals, same signals: {vb['wall']:.3f} s wall, "
              f"{vb['cpu']:.3f} s CPU -> tickstep native {vb['wall'] / single.median_wall:.1f}x "
              f"(wall), {vb['cpu'] / single.median_cpu:.1f}x (CPU)")
    return single, vb


def peers_data_run(args, config, out):  # type: ignore[no-untyped-def]
    """The native run and vectorbt's `from_signals` on the peer comparison's data (one
    symbol, no gaps), the same SMA 10/30 cross signals and sizing; their timings."""
    market = market_from_columns(h.load(PEERS_DATA))
    closes = market_closes(market)
    bars = sum(len(c) for c in closes)
    one = single_set(closes)
    entries, exits = one[0]
    # Five runs of each in turn, as many rounds as `--repeat`.
    with one_core(), VectorbtPeer.started(args.vectorbt_python, np.column_stack(closes),
                                          np.column_stack(entries), np.column_stack(exits)) as peer:
        native, vb = alternate(native_run(market, config, one, 1), peer, args.repeat, 5)
    (engine,) = native_run(market, config, one, 1)()[2]
    trades = len(engine.take_logs()[2])
    out["peers_data"] = {"data": PEERS_DATA, "symbol_bars": bars, "trades": trades,
                         "native_wall": native.median_wall, "native_cpu": native.median_cpu}
    print(f"the peers' data ({PEERS_DATA}: {len(closes)} x {bars:,} minutes), {trades} trades:\n"
          f"  native run: {native.median_wall * 1e3:.2f} ms wall, {native.median_cpu * 1e3:.2f} ms "
          f"CPU ({bars / native.median_cpu / 1e6:.0f} M symbol-bars/s)")
    if vb is not None:
        out["peers_data"]["vectorbt"] = vb
        print(f"  vectorbt {vb['version']} from_signals, same signals: {vb['wall'] * 1e3:.1f} ms "
              f"wall, {vb['cpu'] * 1e3:.1f} ms CPU -> tickstep native "
              f"{vb['wall'] / native.median_wall:.1f}x (wall), {vb['cpu'] / native.median_cpu:.1f}x (CPU)")
    return native, vb


def cache_scan(args, config) -> dict:  # type: ignore[no-untyped-def]
    """The single run on the first N bars of each symbol, for each N of `--cache-scan`."""
    from tickstep.data import MarketColumns

    columns = h.load("minute_20x144k")
    out = {}
    print("single run on the first N bars of each symbol (the market's size against the caches):")
    for n in (int(x) for x in args.cache_scan.split(",")):
        market = market_from_columns(MarketColumns([b.slice(0, n) for b in columns.bars]))
        closes = market_closes(market)
        bars = sum(len(c) for c in closes)
        # About 20 M symbol-bars in all per size, at least five runs.
        t = timed(native_run(market, config, single_set(closes), 1), max(5, 20_000_000 // bars))
        out[n] = {"symbol_bars": bars, "native_cpu": t.median_cpu, "fastest_cpu": min(t.cpu)}
        print(f"  {len(closes)} x {n:>7,} bars ({bars * 48 / 2**20:6.1f} MiB): "
              f"{t.median_cpu * 1e3:8.3f} ms CPU, {bars / t.median_cpu / 1e6:4.0f} M symbol-bars/s "
              f"(fastest {bars / min(t.cpu) / 1e6:.0f} M/s)")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--grid-repeat", type=int, default=3)
    ap.add_argument("--no-optimize", action="store_true",
                    help="skip the optimize row of a SignalStrategy")
    ap.add_argument("--vectorbt-python", default=sys.executable,
                    help="an interpreter with vectorbt (default: this one)")
    ap.add_argument("--single-only", action="store_true",
                    help="the single run and the peer only (no grid)")
    ap.add_argument("--grid-only", action="store_true",
                    help="only the grid (no single run, no vectorbt)")
    ap.add_argument("--optimize-only", action="store_true",
                    help="only the optimize row of a SignalStrategy")
    ap.add_argument("--cache-scan", metavar="N,N,...",
                    help="only the single run on the first N bars of each symbol, for each N")
    args = ap.parse_args()
    print(f"signals mode bench, load average {h.load_average()}")
    if args.cache_scan:
        scan = cache_scan(args, tickstep.BacktestConfig(on_reject="ignore"))
        print(f"load average now {h.load_average()}")
        print("RESULT " + json.dumps({"cache_scan": scan}))
        return
    columns = h.load("minute_20x144k")
    market = market_from_columns(columns)
    del columns
    n_sym = len(market.symbols)
    closes = market_closes(market)
    bars = sum(len(c) for c in closes)
    config = tickstep.BacktestConfig(on_reject="ignore")
    bt = tickstep.Backtest(market, tickstep.Strategy, config)
    out: dict = {}

    if args.optimize_only:
        optimize_row(args, market, config, out)
        print(f"load average now {h.load_average()}")
        print("RESULT " + json.dumps(out))
        return
    single = vb = None
    peers = None
    if not args.grid_only:
        single, vb = one_run(args, market, config, bt, closes, bars, n_sym, out)
        peers = peers_data_run(args, config, out)

    if args.single_only:
        rate = bars / single.median_cpu
        print("targets (issue 15):")
        print(f"  signals run >= 100 M symbol-bars/s on one core: {rate / 1e6:.0f} M/s by CPU "
              f"time, {bars / single.median_wall / 1e6:.0f} M/s by wall")
        native, peer_vb = peers
        if peer_vb is not None:
            print(f"  >= 30x vectorbt from_signals on the peers' data: "
                  f"{peer_vb['cpu'] / native.median_cpu:.1f}x by CPU time, "
                  f"{peer_vb['wall'] / native.median_wall:.1f}x by wall")
        if vb is not None:
            print(f"  (the same on {n_sym} x {bars // n_sym:,} minutes: {vb['cpu'] / single.median_cpu:.1f}x "
                  f"by CPU time, {vb['wall'] / single.median_wall:.1f}x by wall)")
        print(f"load average now {h.load_average()}")
        print("RESULT " + json.dumps(out))
        return

    # ---- the grid ----------------------------------------------------------------------
    grid = [(f, s) for f in range(5, 15) for s in range(20, 70, 5)]
    sets = []
    for f, s in grid:
        p = [sma_cross(c, f, s) for c in closes]
        sets.append(([e for e, _ in p], [x for _, x in p]))
    t1 = timed(native_run(market, config, sets, 1), args.grid_repeat)
    t2 = timed(native_run(market, config, sets, 2), args.grid_repeat)
    total = bars * len(grid)
    signal_sets = {k: {"entries": dict(zip(market.symbols, e)), "exits": dict(zip(market.symbols, x))}
                   for k, (e, x) in zip(grid, sets)}

    tables: dict = {}

    import tickstep.signals as signals_module

    marked = _NativeMarks()
    on_run_cpu: dict[int, list[float]] = {1: [], 2: []}

    def stats_table(threads: int):  # type: ignore[no-untyped-def]
        def run() -> list:
            marked.on_run_cpu = 0.0
            signals_module._core = marked  # type: ignore[assignment]
            try:
                c0, t0 = time.process_time(), time.perf_counter()
                tables[threads] = bt.run_signal_grid(signal_sets, size=0.04, threads=threads)
                wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            finally:
                signals_module._core = _core
            on_run_cpu[threads].append(marked.on_run_cpu)
            return [wall, cpu, None]

        return run

    tt1 = timed(stats_table(1), args.grid_repeat)
    tt2 = timed(stats_table(2), args.grid_repeat)
    table = tables[2]
    table_wall, table_cpu = tt2.median_wall, tt2.median_cpu
    out["grid"] = {
        "sets": len(grid), "symbol_bars": total,
        "wall_1": t1.median_wall, "cpu_1": t1.median_cpu,
        "wall_2": t2.median_wall, "cpu_2": t2.median_cpu,
        "speedup_wall": t1.median_wall / t2.median_wall,
        "table_wall": table_wall, "table_cpu": table_cpu, "rows": len(table),
        "table_wall_1": tt1.median_wall, "table_cpu_1": tt1.median_cpu,
        "table_speedup_wall": tt1.median_wall / tt2.median_wall,
        "table_stats_cpu_2": sorted(on_run_cpu[2])[len(on_run_cpu[2]) // 2],
    }
    stats_cpu = out["grid"]["table_stats_cpu_2"]
    stops = stops_by_symbol(args, bt, signal_sets)
    out["grid"].update(stops)
    print(f"grid, {len(grid)} parameter sets x {n_sym} symbols x {bars // n_sym:,} bars "
          f"({total / 1e6:.0f} M symbol-bars):\n"
          f"  1 thread:  {t1.median_wall:.2f} s wall, {t1.median_cpu:.2f} s CPU\n"
          f"  2 threads: {t2.median_wall:.2f} s wall, {t2.median_cpu:.2f} s CPU "
          f"-> speed-up {t1.median_wall / t2.median_wall:.2f}x (wall)\n"
          f"  Backtest.run_signal_grid with the stats table, 1 thread: {tt1.median_wall:.2f} s "
          f"wall, {tt1.median_cpu:.2f} s CPU\n"
          f"  Backtest.run_signal_grid with the stats table (2 threads): {table_wall:.2f} s wall, "
          f"{table_cpu:.2f} s CPU -> speed-up {tt1.median_wall / table_wall:.2f}x (wall)\n"
          f"    of which the statistics on the calling thread (on_run): {stats_cpu:.2f} s CPU "
          f"({stats_cpu / len(grid) * 1e3:.1f} ms per set)\n"
          f"  the same sets, each with its own stop-loss and take-profit per symbol, every "
          f"number its own (2 threads): "
          f"{stops['stops_wall']:.2f} s wall, {stops['stops_cpu']:.2f} s CPU; Python's peak "
          f"memory in the call {stops['stops_peak_mib']:.0f} MiB")
    # The targets, side by side with what this run measured (CPU time is the
    # better estimate on a shared machine; an idle one gives wall == CPU for one thread).
    print("targets (issue 15):")
    if single is not None:
        rate = bars / single.median_cpu
        print(f"  signals run >= 100 M symbol-bars/s on one core: {rate / 1e6:.0f} M/s by CPU "
              f"time, {bars / single.median_wall / 1e6:.0f} M/s by wall")
    if vb is not None and single is not None:
        print(f"  >= 30x vectorbt from_signals: {vb['cpu'] / single.median_cpu:.1f}x by CPU time, "
              f"{vb['wall'] / single.median_wall:.1f}x by wall")
    print(f"  grid <= 3 s on 2 cores: {t2.median_wall:.2f} s wall, {t2.median_cpu / 2:.2f} s "
          f"(CPU time / 2, the idle-machine estimate); speed-up >= 1.8x: "
          f"{t1.median_wall / t2.median_wall:.2f}x by wall")
    print(f"  the stats table: {table_wall:.2f} s wall, {table_cpu / 2:.2f} s (CPU time / 2); "
          f"speed-up {tt1.median_wall / table_wall:.2f}x by wall")
    if not args.no_optimize:
        optimize_row(args, market, config, out)
    print(f"load average now {h.load_average()}")
    print("RESULT " + json.dumps(out))


def stops_by_symbol(args, bt, signal_sets) -> dict:  # type: ignore[no-untyped-def]
    """The grid's sets, each with its own stop-loss and take-profit per symbol, every
    number its own (as stops scaled to each symbol's volatility by a factor the grid
    varies): the wall and CPU time of `Backtest.run_signal_grid` on two threads, and the
    peak of what Python allocates during one more call (numpy's columns included; the
    core's own allocations are not traced). A number per symbol goes to the core as one
    value, so this stays near the signals' own size instead of a column per set, symbol
    and kind."""
    n = len(bt.symbols)
    sets = {key: {**sig, "sl": {s: 0.01 + (k * n + j) * 1e-5 for j, s in enumerate(bt.symbols)},
                  "tp": {s: 0.02 + (k * n + j) * 3e-5 for j, s in enumerate(bt.symbols)}}
            for k, (key, sig) in enumerate(signal_sets.items())}

    def run() -> list:
        c0, t0 = time.process_time(), time.perf_counter()
        bt.run_signal_grid(sets, size=0.04, threads=2)
        return [time.perf_counter() - t0, time.process_time() - c0, None]

    t = timed(run, args.grid_repeat)
    tracemalloc.start()
    try:
        bt.run_signal_grid(sets, size=0.04, threads=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return {"stops_wall": t.median_wall, "stops_cpu": t.median_cpu, "stops_peak_mib": peak / 2**20}


def optimize_row(args, market, config, out) -> None:  # type: ignore[no-untyped-def]
    """``Backtest.optimize`` of `PandasSmaCross` on all cores, beside its signals alone."""
    fast, slow = [5, 8, 10, 12], [30, 40, 50, 60]
    bt = tickstep.Backtest(market, PandasSmaCross, config)
    frames = {}
    for s, name in enumerate(market.symbols):
        index = np.asarray(market.column(s, "ts", 0, sys.maxsize)).view("datetime64[ns]")
        frames[name] = pd.DataFrame({"close": market.column(s, "close", 0, sys.maxsize)},
                                    index=pd.DatetimeIndex(index, tz="UTC"))
    n_sets = len(fast) * len(slow)
    c0, t0 = time.process_time(), time.perf_counter()
    for f in fast:
        for s in slow:
            one = PandasSmaCross.__new__(PandasSmaCross)
            one.fast, one.slow = f, s
            for name, bars in frames.items():
                one.signals(name, bars)
    signals_wall, signals_cpu = time.perf_counter() - t0, time.process_time() - c0
    t = h.Timings()
    for _ in range(args.grid_repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        rows = bt.optimize(fast=fast, slow=slow, cache=False, progress=False)
        t.add(time.perf_counter() - t0, time.process_time() - c0)
    assert len(rows) == n_sets and (rows["status"] == "ok").all(), rows["error"].dropna()[:1]
    out["optimize"] = {"sets": n_sets, "wall": t.median_wall, "cpu": t.median_cpu,
                       "signals_wall": signals_wall, "signals_cpu": signals_cpu}
    print(f"optimize of a SignalStrategy (pandas SMA cross), {n_sets} sets x "
          f"{len(market.symbols)} symbols, all cores: {t.median_wall:.2f} s wall, "
          f"{t.median_cpu:.2f} s CPU\n"
          f"  its signals() alone on one thread: {signals_wall:.2f} s wall, "
          f"{signals_cpu:.2f} s CPU")


if __name__ == "__main__":
    main()
