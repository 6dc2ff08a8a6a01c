"""tickstep against other backtesters, side by side in one run.

The same data (one symbol of seeded minute bars, ``peer_1x100k``: 100,800 bars, no
gaps), the same strategy and the same conventions everywhere:

- SMA(10) and SMA(30) of the close; a golden cross at bar t is fast > slow at t and
  fast <= slow at t-1, a death cross the mirror (NaN compares false, so no signal
  before both averages and their previous values exist);
- long-only, 1 unit: buy on a golden cross when flat, close on a death cross when long;
- decided on bar t's close, filled at bar t+1's open; zero commission, no slippage.

Repeats are interleaved (tickstep, peer, peer, ..., then again) so that the noise of a
shared machine hits every contender alike; medians are reported, in wall and CPU time.
The ratio column is tickstep's throughput over the peer's, from this same run, against
a tickstep run on the same number of bars. backtrader and nautilus_trader, the slowest,
get the first ``--slow-bars`` bars (default 25,000) so that a run stays well under a
minute on a busy machine; their throughput is per bar like everyone's.

Trade counts are checked against three references computed here from the same rules:
``exact`` (averages compared exactly, in integer cents), ``fsum`` (each average the
correctly rounded float mean of its window, what a compensated or exact summation
gives) and ``pandas`` (pandas' rolling means). Prices sit on a one-cent grid, so the two
averages are often exactly equal; at such a tie a float implementation sees a difference
of a few ulps whose sign depends on how it sums, and crosses there or a bar later, or
not at all. ``--jitter`` moves the prices off the grid (by a few parts per million) to
remove the ties: then every contender must agree with every reference.

The peers are optional (``pip install backtesting backtrader vectorbt``); a missing one
is listed as such. nautilus_trader pins pandas < 3, which tickstep's environment does not
allow, so it runs from its own virtualenv (``TICKSTEP_BENCH_NAUTILUS_PYTHON``, default
``target/bench-venvs/nautilus/bin/python``) in a child process that times itself.

Usage: ``python benches/peers/compare.py [--repeat 3] [--bars N] [--slow-bars N]
[--jitter]``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import _harness as h  # noqa: E402 - after the sys.path line above

os.environ.setdefault("TQDM_DISABLE", "1")  # backtesting.py's progress bar

DATASET = "peer_1x100k"
FAST, SLOW = 10, 30
#: In-process contenders, in the order they run within a round.
MODULES = ["run_tickstep", "run_backtesting", "run_backtrader", "run_vectorbt"]
#: Peers slow enough to be given fewer bars (--slow-bars).
SLOW_PEERS = {"backtrader", "nautilus_trader"}
NAUTILUS_PYTHON = Path(
    os.environ.get(
        "TICKSTEP_BENCH_NAUTILUS_PYTHON",
        h.ROOT / "target" / "bench-venvs" / "nautilus" / "bin" / "python",
    )
)
TARGETS = {"backtesting.py": 8.0, "backtrader": 100.0}


def peer_frame(jitter: bool = False) -> pd.DataFrame:
    """The bars as a DataFrame with a naive (UTC) DatetimeIndex, the form every peer
    takes fastest (vectorbt turns a tz-aware index into Timestamp objects, which costs it
    seconds per run)."""
    bars = h.load(DATASET).bars[0]
    index = pd.DatetimeIndex(bars.ts.view("datetime64[ns]"), name="time")
    cols = {
        "Open": np.array(bars.open),
        "High": np.array(bars.high),
        "Low": np.array(bars.low),
        "Close": np.array(bars.close),
        "Volume": np.array(bars.volume),
    }
    if jitter:
        # One factor per bar for all four prices keeps low <= open, close <= high.
        factor = np.exp(np.random.default_rng(11).normal(0.0, 3e-6, len(index)))
        for name in ("Open", "High", "Low", "Close"):
            cols[name] *= factor
    return pd.DataFrame(cols, index=index)


def fast_minus_slow(df: pd.DataFrame, how: str) -> np.ndarray:
    """The sign (or value) of SMA(FAST) - SMA(SLOW) per bar, NaN before both exist.

    ``how``: "exact" (integer cents; needs prices on a one-cent grid), "fsum" (correctly
    rounded float means) or "pandas" (``Series.rolling(n).mean()``).
    """
    close = df["Close"].to_numpy()
    n = len(close)
    out = np.full(n, np.nan)
    if how == "pandas":
        s = df["Close"]
        return s.rolling(FAST).mean().to_numpy() - s.rolling(SLOW).mean().to_numpy()
    i = np.arange(SLOW - 1, n)
    if how == "exact":
        cents = np.rint(close * 100).astype(np.int64)
        if not np.array_equal(cents / 100, close):
            return out  # not on the grid: no exact reference
        cum = np.concatenate([[0], np.cumsum(cents)])
        out[i] = np.sign(
            (cum[i + 1] - cum[i + 1 - FAST]) * SLOW - (cum[i + 1] - cum[i + 1 - SLOW]) * FAST
        )
        return out
    fast = [math.fsum(close[k + 1 - FAST : k + 1]) / FAST for k in i]
    slow = [math.fsum(close[k + 1 - SLOW : k + 1]) / SLOW for k in i]
    out[i] = np.array(fast) - np.array(slow)
    return out


def reference(d: np.ndarray) -> dict[str, int]:
    """Trade counts of the rules in the module doc, by a plain loop over the signals."""
    if np.isnan(d).all():
        return {}
    golden = np.zeros(len(d), bool)
    death = np.zeros(len(d), bool)
    golden[1:] = (d[1:] > 0) & (d[:-1] <= 0)  # NaN compares false
    death[1:] = (d[1:] < 0) & (d[:-1] >= 0)
    long, pending, buys, sells = False, 0, 0, 0
    for t in range(len(d)):
        if pending:  # fills at this bar's open
            long = pending > 0
            buys += pending > 0
            sells += pending < 0
            pending = 0
        if golden[t] and not long:
            pending = 1
        elif death[t] and long:
            pending = -1
    return {"buys": buys, "sells": sells, "closed": sells}


class Contender:
    def __init__(self, name: str, style: str, bars: int, repeats: int) -> None:
        self.name, self.style, self.bars, self.repeats = name, style, bars, repeats
        self.timings = h.Timings()
        self.counts: dict[str, int] = {}
        self.note = ""
        self.run: Callable[[], dict[str, int]] | None = None

    def once(self) -> None:
        assert self.run is not None
        c0, t0 = time.process_time(), time.perf_counter()
        counts = self.run()
        self.timings.add(time.perf_counter() - t0, time.process_time() - c0)
        self.counts = counts

    def throughput(self, clock: str) -> float:
        t = self.timings.median_cpu if clock == "cpu" else self.timings.median_wall
        return self.bars / t if self.timings.wall else float("nan")


class Nautilus(Contender):
    """nautilus_trader in its own interpreter; the child reports its own timing."""

    def __init__(self, data: Path, *args: object) -> None:
        super().__init__(*args)  # type: ignore[arg-type]
        self.data = data

    def once(self) -> None:
        cmd = [str(NAUTILUS_PYTHON), str(HERE / "run_nautilus.py"), str(self.data)]
        cmd += ["--bars", str(self.bars), "--fast", str(FAST), "--slow", str(SLOW)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"nautilus child failed: {out.stderr.strip()[-500:]}")
        r = json.loads(line[7:])
        self.timings.add(r["seconds"], r["cpu"])
        self.counts = r["counts"]


def write_npz(df: pd.DataFrame, path: Path) -> None:
    """The frame in the data cache's layout, for the nautilus child."""
    np.savez(
        path,
        lengths=np.array([len(df)]),
        ts=df.index.asi8,
        **{c.lower(): df[c].to_numpy() for c in ("Open", "High", "Low", "Close", "Volume")},
    )


def contenders(
    df: pd.DataFrame, args: argparse.Namespace, scratch: Path
) -> tuple[list[Contender], list[str]]:
    ready, missing = [], []
    slow_bars = min(len(df), args.slow_bars)
    bars_all = min(len(df), args.bars)
    for module in MODULES:
        mod = importlib.import_module(module)
        sizes = [slow_bars if mod.NAME in SLOW_PEERS else bars_all]
        if mod.NAME == "tickstep" and slow_bars != bars_all:
            sizes.append(slow_bars)  # the reference for the slow peers' ratios
        for bars in sizes:
            c = Contender(mod.NAME, mod.STYLE, bars, args.repeat)
            try:
                t0 = time.perf_counter()
                c.run = mod.prepare(df.iloc[:bars], FAST, SLOW)
                c.note = f"prepare {time.perf_counter() - t0:.2f} s"
            except ImportError as e:
                missing.append(f"{mod.NAME}: not installed ({e.name})")
                break
            ready.append(c)
    if NAUTILUS_PYTHON.exists():
        data = scratch / "peer.npz"
        write_npz(df, data)
        style = "event-driven, Rust/Cython core + Python strategy"
        ready.append(Nautilus(data, "nautilus_trader", style, slow_bars, args.repeat))
    else:
        missing.append(f"nautilus_trader: no interpreter at {NAUTILUS_PYTHON}")
    return ready, missing


def agreement(counts: dict[str, int], refs: dict[str, dict[str, int]]) -> str:
    same = [name for name, ref in refs.items() if ref and counts == ref]
    if same:
        return "= " + ", ".join(same)
    return "differs from all (" + ", ".join(f"{k} {v.get('buys')}" for k, v in refs.items()) + ")"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--bars", type=int, default=1 << 62, help="bars per run (default all)")
    ap.add_argument(
        "--slow-bars",
        type=int,
        default=25_000,
        help="bars for backtrader and nautilus_trader (default 25,000)",
    )
    ap.add_argument("--jitter", action="store_true", help="move prices off the cent grid")
    args = ap.parse_args()

    df = peer_frame(args.jitter)
    print(
        f"data: 1 symbol x {len(df):,} minute bars ({DATASET}{', jittered' if args.jitter else ''}"
        f"); SMA({FAST})/SMA({SLOW}) long-only crossover, 1 unit, next-open fills, zero "
        f"commission; load average {h.load_average()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench_peers_") as scratch:
        ready, missing = contenders(df, args, Path(scratch))
        for c in ready:
            if c.note:
                print(f"{c.name} ({c.bars:,} bars): {c.note}", flush=True)
        for r in range(args.repeat):
            for c in ready:
                if r < c.repeats:
                    try:
                        c.once()
                    except Exception as e:  # noqa: BLE001 - report a broken peer, go on
                        c.note = f"failed: {type(e).__name__}: {e}"
                        c.repeats = r
            done = [c for c in ready if len(c.timings.wall) > r]
            print(
                f"round {r + 1}: "
                + ", ".join(f"{c.name} {c.timings.wall[-1]:.3f} s" for c in done),
                flush=True,
            )

    ts_by_bars = {c.bars: c for c in ready if c.name == "tickstep" and c.timings.wall}
    refs_by_bars: dict[int, dict[str, dict[str, int]]] = {}
    ties = 0
    head = (
        f"{'contender':<16} {'bars':>8} {'wall s':>7} {'CPU s':>7} {'bars/s CPU':>11} "
        f"{'tickstep x':>10} {'(wall)':>7} {'buys':>5} {'sells':>5}  trade counts"
    )
    print()
    print(head)
    print("-" * len(head))
    rows = []
    for c in ready:
        if not c.timings.wall:
            print(f"{c.name:<16} {c.note}")
            continue
        if c.bars not in refs_by_bars:
            part = df.iloc[: c.bars]
            diffs = {how: fast_minus_slow(part, how) for how in ("exact", "fsum", "pandas")}
            refs_by_bars[c.bars] = {how: reference(d) for how, d in diffs.items()}
            if c.bars == len(df):
                ties = int(np.sum(diffs["exact"] == 0))
        refs = refs_by_bars[c.bars]
        ts = ts_by_bars.get(c.bars)
        ratio = ts.throughput("cpu") / c.throughput("cpu") if ts else float("nan")
        ratio_wall = ts.throughput("wall") / c.throughput("wall") if ts else float("nan")
        print(
            f"{c.name:<16} {c.bars:>8,} {c.timings.median_wall:>7.3f} "
            f"{c.timings.median_cpu:>7.3f} {c.throughput('cpu'):>11,.0f} {ratio:>9.1f}x "
            f"{ratio_wall:>6.1f}x {c.counts.get('buys', 0):>5} {c.counts.get('sells', 0):>5}  "
            f"{agreement(c.counts, refs)}"
        )
        target = TARGETS.get(c.name)
        rows.append(
            {
                "name": c.name,
                "style": c.style,
                "bars": c.bars,
                "runs_wall": c.timings.wall,
                "runs_cpu": c.timings.cpu,
                "median_wall_s": c.timings.median_wall,
                "median_cpu_s": c.timings.median_cpu,
                "throughput_cpu": c.throughput("cpu"),
                "throughput_wall": c.throughput("wall"),
                "tickstep_ratio_cpu": ratio,
                "tickstep_ratio_wall": ratio_wall,
                "counts": c.counts,
                "references": refs,
                "target_ratio": target,
                "ok": None if target is None else ratio >= target,
                "ok_wall": None if target is None else ratio_wall >= target,
                "note": c.note,
            }
        )
    if not args.jitter:
        print(
            f"\nthe two averages are exactly equal at {ties} of the {len(df):,} bars (prices "
            "on a one-cent grid); there a float implementation sees a difference of a few "
            "ulps whose sign depends on its summation, hence different crosses. Run with "
            "--jitter to remove the ties."
        )
    if any(c.name == "nautilus_trader" for c in ready):
        print(
            "nautilus_trader fills a market order at the signal bar's close; on these "
            "gapless bars that is the next bar's open price (see run_nautilus.py)."
        )
    for m in missing:
        print(m)
    for row in rows:
        if row["target_ratio"]:
            verdict = "met" if row["ok"] else "MISSED"
            print(
                f"target tickstep >= {row['target_ratio']:g}x {row['name']}: "
                f"{row['tickstep_ratio_cpu']:.1f}x on CPU time "
                f"({row['tickstep_ratio_wall']:.1f}x wall), {verdict}"
            )
    result = {
        "peers": rows,
        "missing": missing,
        "ties": ties,
        "jitter": args.jitter,
        "load_average": h.load_average(),
    }
    print("RESULT " + json.dumps(result, default=str))


if __name__ == "__main__":
    main()
