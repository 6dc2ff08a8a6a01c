"""Whole workloads of the issue, one per process: ``python benches/workloads.py NAME``.

Each workload loads its data set (cached, see ``_harness.py``) outside the timed part,
then times ``Backtest(...)`` (copying the columns into the core: "setup") and
``Backtest.run()`` (the tick loop, Python callbacks and the results: "run"), repeated, and
prints one human line and one ``RESULT {json}`` line with the medians, every timing and
the process's peak resident memory (``ru_maxrss``). ``run_all.py`` starts one process
per workload so that each peak belongs to that workload alone.

Workloads (symbol-bars = bars summed over symbols):

- ``native``: the Rust tick loop with no Python callback, 20 symbols x 144,000 minute
  bars (~5% missing), timed around ``Engine.run`` only; ``native_studies``: the same
  with two rolling means declared (the market phase of ``sma_cross``).
- ``noop``: a Python ``next()`` that does nothing, 20 symbols x 144,000 minute bars.
- ``sma_cross``: SMA(10)/SMA(30) crossover on the engine's rolling means (``self.sma``),
  long-only, 1 unit, same data.
- ``fakeout``: the shipped Fakeout strategy, same data.
- ``ranked``: the shipped ranked-portfolio strategy with risk sizing, 100 symbols x 1 year
  of 30-minute bars.
- ``rsi_portfolio``: RSI mean reversion over 211 symbols x 5 years of daily bars as one
  portfolio backtest (the batch form lives in ``benches/batch_rsi.py``).
- ``memory``: 100 symbols x 1 year of minute bars through a strategy that trades every
  day; peak resident memory against the raw size of the columns.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _harness as h
import tickstep
from tickstep import Strategy
from tickstep.strategies import Fakeout, RankedPortfolio, RsiMeanReversion, SmaCross

# ---- strategies of the benchmarks ------------------------------------------------------------


class NoOp(Strategy):
    """Called for every symbol-bar; does nothing (the cost of the callback itself)."""

    def next(self, symbol: str) -> None:
        pass


class DailyFlip(Strategy):
    """Trades every symbol once a day (at a fixed tick of the session): enough fills,
    trades and equity samples to show that their records stay bounded."""

    every = 390

    def init(self) -> None:
        self.ticks = 0

    def on_tick(self) -> None:
        self.ticks += 1
        if self.ticks % self.every:
            return
        for symbol in self.active_symbols():
            if self.position(symbol):
                self.close(symbol)
            else:
                self.buy(symbol, size=1)


# ---- the timed units ---------------------------------------------------------------------


def slowed(strategy: type[Strategy]) -> type[Strategy]:
    """``strategy`` itself, or with ``TICKSTEP_BENCH_SLOWDOWN=N`` (see `_harness.slowdown`)
    a subclass whose ``next`` (``on_tick`` if it has no ``next``) first spins ``N`` empty
    loop iterations: a deliberately slowed build for testing the regression check."""
    units = h.slowdown()
    if not units:
        return strategy
    spin = range(units)
    hook = "next" if strategy.next is not Strategy.next else "on_tick"
    inner = getattr(strategy, hook)

    def slow_hook(self: Strategy, *args: Any) -> None:
        for _ in spin:
            pass
        inner(self, *args)

    return type(f"Slowed{strategy.__name__}", (strategy,), {hook: slow_hook})


#: The workloads timed as ``Backtest(...)`` + ``run()``: name -> (data set, strategy,
#: Backtest options). Options are built per call (a sizer is an object).
BACKTESTS: dict[str, tuple[str, type[Strategy], Callable[[], dict[str, Any]]]] = {
    "noop": ("minute_20x144k", NoOp, lambda: {}),
    "sma_cross": ("minute_20x144k", SmaCross, lambda: {"sizer": tickstep.FixedSize(1)}),
    "fakeout": (
        "minute_20x144k",
        Fakeout,
        lambda: {"sizer": tickstep.RiskPerTrade(0.01, max_fraction=0.2)},
    ),
    # Sizes its own entries by risk (1% of equity to the stop, capped per position).
    "ranked": ("halfhour_100x1y", RankedPortfolio, lambda: {}),
    "rsi_portfolio": (
        "daily_211x5y",
        RsiMeanReversion,
        lambda: {"sizer": tickstep.PercentOfEquity(1 / 211)},
    ),
}


def backtest_job(name: str, market: Any) -> Callable[[], Any]:
    """Workload ``name`` of `BACKTESTS` on ``market`` as one call: ``Backtest(...)`` (the
    columns into the core) and ``run()`` (tick loop, callbacks, results, statistics)."""
    _, strategy, options = BACKTESTS[name]
    strategy = slowed(strategy)
    return lambda: tickstep.Backtest(market, strategy, cash=1_000_000.0, **options()).run()


def native_job(market: Any, *, studies: bool) -> Callable[[], Any]:
    """The native tick loop as one call: ``Engine.run`` on a core ``Market`` with no Python
    callback per bar; with ``studies``, two rolling means of the close declared in
    ``init`` (the market phase of ``sma_cross``). ``TICKSTEP_BENCH_SLOWDOWN=N`` declares
    ``N`` more means, work added in the native loop itself."""
    from tickstep import _core

    means = (2 if studies else 0) + h.slowdown()

    def run() -> Any:
        engine = _core.Engine(market, cash=1_000_000.0)
        ctx = _core.Context(market)

        def declare() -> None:
            for k in range(means):
                ctx.add_rolling("mean", 10 if k == 0 else 30 + k - 1, "close", None)

        engine.run(ctx, init=declare if means else None)
        return engine

    return run


# ---- measuring ---------------------------------------------------------------------------


def measure(
    name: str, repeats: int, *, params: dict[str, Any] | None = None, note: str = ""
) -> dict[str, Any]:
    dataset, strategy, options = BACKTESTS[name]
    strategy = slowed(strategy)
    market = h.load(dataset)
    n = h.symbol_bars(market)
    symbols = len(market.symbols)

    def setup_once(m: Any = market) -> tickstep.Backtest:
        return tickstep.Backtest(m, strategy, cash=1_000_000.0, **options())

    setup, bt = h.repeat(setup_once, repeats)
    del market  # the core holds its own copy
    gc.collect()
    runs, result = h.repeat(lambda: bt.run(**(params or {})), repeats)
    return {
        "workload": name,
        "data": f"{symbols} x {n // symbols:,} bars ({dataset})",
        "symbol_bars": n,
        "strategy": f"{strategy.__module__}.{strategy.__qualname__}",
        **timing_fields(n, runs, setup),
        "trades": len(result.trades),
        "fills": len(result.fills),
        "peak_rss_mb": h.peak_rss_mb(),
        "slowdown": h.slowdown(),
        "note": note,
    }


def timing_fields(n: int, runs: h.Timings, setup: h.Timings | None = None) -> dict[str, Any]:
    """Medians and every timing, wall and CPU; total = setup + run."""
    out: dict[str, Any] = {
        "runs_wall": runs.wall,
        "runs_cpu": runs.cpu,
        "run_wall_s": runs.median_wall,
        "run_cpu_s": runs.median_cpu,
        "throughput_wall": n / runs.median_wall,
        "throughput_cpu": n / runs.median_cpu,
        "total_wall_s": runs.median_wall,
        "total_cpu_s": runs.median_cpu,
    }
    if setup is not None:
        out["setup_wall_s"], out["setup_cpu_s"] = setup.median_wall, setup.median_cpu
        out["total_wall_s"] += setup.median_wall
        out["total_cpu_s"] += setup.median_cpu
    return out


def verdict(r: dict[str, Any], target: str, metric: str, limit: float) -> dict[str, Any]:
    """Whether ``target`` is met, judged on CPU time (``ok``) and on wall time
    (``ok_wall``). ``metric`` "throughput" must reach ``limit``; "total" (seconds) must
    stay within it."""
    if metric == "throughput":
        cpu, wall = r["throughput_cpu"] >= limit, r["throughput_wall"] >= limit
    else:
        cpu, wall = r["total_cpu_s"] <= limit, r["total_wall_s"] <= limit
    return {**r, "target": target, "ok": cpu, "ok_wall": wall}


def native(repeats: int, *, studies: bool = False) -> dict[str, Any]:
    """The native tick loop alone, timed around ``Engine.run`` with no Python callback
    per bar (``studies``: two rolling means of the close declared in ``init``): the
    figure of the ``tick_loop`` / ``tick_loop_studies`` criterion benches, in CPU time."""
    from tickstep.simulation import market_from_columns

    columns = h.load("minute_20x144k")
    n = h.symbol_bars(columns)
    market = market_from_columns(columns)
    del columns
    timings, _ = h.repeat(native_job(market, studies=studies), repeats)
    name = "native_studies" if studies else "native"
    r = {
        "workload": name,
        "data": f"{len(market.symbols)} x {n // len(market.symbols):,} bars (minute_20x144k)",
        "symbol_bars": n,
        "strategy": "none (Engine.run without callbacks)"
        + (" + 2 rolling means" if studies else ""),
        **timing_fields(n, timings),
        "peak_rss_mb": h.peak_rss_mb(),
        "slowdown": h.slowdown(),
    }
    if studies:
        return {**r, "target": "-", "ok": None, "ok_wall": None}
    return verdict(r, "≥ 50M symbol-bars/s", "throughput", 50e6)


def noop(repeats: int) -> dict[str, Any]:
    r = measure("noop", repeats)
    return verdict(r, "≥ 3M symbol-bars/s", "throughput", 3e6)


def sma_cross(repeats: int) -> dict[str, Any]:
    r = measure("sma_cross", repeats)
    return verdict(r, "≥ 1M symbol-bars/s", "throughput", 1e6)


def fakeout(repeats: int) -> dict[str, Any]:
    r = measure("fakeout", repeats)
    return verdict(r, "≤ 10 s", "total", 10.0)


def ranked(repeats: int) -> dict[str, Any]:
    r = measure("ranked", repeats)
    return verdict(r, "≤ 3 s", "total", 3.0)


def rsi_portfolio(repeats: int) -> dict[str, Any]:
    r = measure(
        "rsi_portfolio", repeats, note="one portfolio backtest over all 211 symbols, not the batch"
    )
    # The target (<= 1 s) is for the batch (benches/batch_rsi.py); this single
    # portfolio run is the reference it can be compared with.
    return verdict(r, "≤ 1 s (one run; batch below)", "total", 1.0)


def _clear_peak() -> bool:
    """Reset this process's peak RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def memory(repeats: int) -> dict[str, Any]:
    """Peak RSS while loading and running, against the raw size of the columns.

    The ratio counts what the workload adds to the interpreter: (peak - baseline) / raw,
    where the baseline is the RSS after imports, before any data is loaded.
    """
    gc.collect()
    baseline = h.rss_mb()
    market = h.load("minute_100x1y")
    n = h.symbol_bars(market)
    raw_mb = h.raw_bytes(market) / 2**20
    loaded = h.rss_mb()
    bt = tickstep.Backtest(market, DailyFlip, cash=1_000_000.0)
    del market
    gc.collect()
    after_setup = h.rss_mb()
    load_peak = _hwm_mb()
    reset = _clear_peak()
    runs, result = h.repeat(bt.run, 1)
    run_peak = _hwm_mb()
    peak = max(load_peak, run_peak)
    ratio = (peak - baseline) / raw_mb
    return {
        "workload": "memory",
        "data": f"{len(bt.symbols)} x {n // len(bt.symbols):,} bars (minute_100x1y)",
        "symbol_bars": n,
        "strategy": f"{DailyFlip.__module__}.DailyFlip",
        **timing_fields(n, runs),
        "trades": len(result.trades),
        "fills": len(result.fills),
        "equity_samples": len(result.equity_frame),
        "raw_mb": raw_mb,
        "baseline_mb": baseline,
        "loaded_mb": loaded,
        "after_setup_mb": after_setup,
        "load_peak_mb": load_peak,
        "run_peak_mb": run_peak if reset else float("nan"),
        "peak_rss_mb": peak,
        "ratio": ratio,
        "run_ratio": (run_peak - baseline) / raw_mb if reset else float("nan"),
        "target": "≤ 1.5x raw",
        "ok": ratio <= 1.5,
        "ok_wall": ratio <= 1.5,
    }


WORKLOADS: dict[str, Callable[[int], dict[str, Any]]] = {
    "native": native,
    "native_studies": lambda repeats: native(repeats, studies=True),
    "noop": noop,
    "sma_cross": sma_cross,
    "fakeout": fakeout,
    "ranked": ranked,
    "rsi_portfolio": rsi_portfolio,
    "memory": memory,
}


def describe(r: dict[str, Any]) -> str:
    runs = r["runs_wall"]
    parts = [
        f"{r['workload']}: {r['data']}",
        (
            f"run {r['run_wall_s']:.3f} s wall (median of {len(runs)}: {h.spread(runs)}), "
            f"{r['run_cpu_s']:.3f} s CPU"
        ),
        (
            f"{r['throughput_wall'] / 1e6:.2f}M symbol-bars/s wall, "
            f"{r['throughput_cpu'] / 1e6:.2f}M CPU"
        ),
        f"peak RSS {r['peak_rss_mb']:.0f} MiB",
    ]
    if "setup_wall_s" in r:
        parts.insert(1, f"setup {r['setup_wall_s']:.3f} s")
    if "ratio" in r:
        parts.append(
            f"raw {r['raw_mb']:.0f} MiB, (peak - baseline {r['baseline_mb']:.0f})"
            f" / raw = {r['ratio']:.2f}x (run phase {r['run_ratio']:.2f}x)"
        )
    return "; ".join(parts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("workload", choices=sorted(WORKLOADS))
    ap.add_argument("--repeat", type=int, default=5, help="timed runs (median reported)")
    args = ap.parse_args()
    load_before = h.load_average()
    r = WORKLOADS[args.workload](args.repeat)
    r["load_average"] = f"{load_before} -> {h.load_average()}"
    print(describe(r), flush=True)
    print("RESULT " + json.dumps(r, default=str))


if __name__ == "__main__":
    main()
