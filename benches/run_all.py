"""Run every Python benchmark of tickstep and print one table (``make bench`` runs this
after ``cargo bench``).

Each workload of ``workloads.py`` runs in its own process, so each peak resident memory
belongs to that workload alone; the data sets are generated first, in another process,
and cached (see ``_harness.py``). Then the peer comparison (``peers/compare.py``) and,
when present, the batch and data-loading benchmarks (``batch_rsi.py``,
``data_load.py``) run the same way. Every child prints a ``RESULT {json}`` line; with
``--json PATH`` they are all saved together.

Timings are medians of ``--repeat`` runs, in wall time and in CPU time of the process;
on a shared machine the CPU figure is the better estimate of an idle machine (see
BENCHMARKS.md). A target is marked met when it is met on CPU time, and the wall figure
is shown beside it.

Usage: ``python benches/run_all.py [--repeat 5] [--only noop,sma_cross] [--no-peers]
[--no-extra] [--json results.json]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as h  # noqa: E402 - after the sys.path line above

WORKLOADS = [
    "native",
    "native_studies",
    "noop",
    "sma_cross",
    "fakeout",
    "ranked",
    "rsi_portfolio",
    "memory",
]
DATASETS = {
    "native": "minute_20x144k",
    "native_studies": "minute_20x144k",
    "noop": "minute_20x144k",
    "sma_cross": "minute_20x144k",
    "fakeout": "minute_20x144k",
    "ranked": "halfhour_100x1y",
    "rsi_portfolio": "daily_211x5y",
    "memory": "minute_100x1y",
}
#: Benchmarks kept by others beside these; run when present, with their own options.
EXTRA = {"batch_rsi": ["batch_rsi.py"], "data_load": ["data_load.py"]}


def run_child(args: list[str], label: str) -> dict[str, Any] | None:
    """Run a Python benchmark script, echo its output, return its RESULT json."""
    print(f"\n$ {Path(sys.executable).name} {' '.join(args)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, *args], cwd=h.ROOT, stdout=subprocess.PIPE, text=True, bufsize=1
    )
    result = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.startswith("RESULT "):
            result = json.loads(line[7:])
        else:
            print("  " + line.rstrip(), flush=True)
    code = proc.wait()
    if code != 0:
        print(f"  {label}: exited with {code} after {time.perf_counter() - t0:.0f} s", flush=True)
    return result


def fmt_time(r: dict[str, Any]) -> str:
    return f"{r['total_wall_s']:.2f} / {r['total_cpu_s']:.2f}"


def fmt_rate(r: dict[str, Any]) -> str:
    return f"{r['throughput_wall'] / 1e6:.2f} / {r['throughput_cpu'] / 1e6:.2f}"


def verdict(ok: bool | None, ok_wall: bool | None = None) -> str:
    if ok is None:
        return "-"
    text = "met" if ok else "MISSED"
    if ok and ok_wall is False:
        text += " (not on wall)"
    return text


def table(results: dict[str, Any]) -> str:
    rows = [
        ("workload", "data", "time s wall/CPU", "M sym-bars/s wall/CPU", "peak RSS", "target", "")
    ]
    for name in WORKLOADS:
        r = results.get(name)
        if r is None:
            rows.append((name, DATASETS[name], "not run", "", "", "", ""))
            continue
        extra = f" ({r['ratio']:.2f}x raw)" if "ratio" in r else ""
        rows.append(
            (
                name,
                r["data"].split(" (")[0],
                fmt_time(r),
                fmt_rate(r),
                f"{r['peak_rss_mb']:.0f} MiB{extra}",
                r["target"],
                verdict(r["ok"], r.get("ok_wall")),
            )
        )
    batch = results.get("batch_rsi")
    if batch:
        wall = batch.get("median_seconds", {})
        cpu = batch.get("median_cpu_seconds", {})
        for key in ("each_cold", "portfolio_cold"):
            if key in wall:
                shown = f"{wall[key]:.2f} / {cpu[key]:.2f}" if key in cpu else f"{wall[key]:.2f}"
                # Judged on wall time: the batch's work is spread over worker processes.
                ok = wall[key] <= 1.0
                rows.append(
                    (
                        f"batch {key}",
                        "211 x 1,260 bars",
                        shown,
                        "",
                        "",
                        "≤ 1 s",
                        verdict(ok) + " (wall)",
                    )
                )
    peers = results.get("peers")
    if peers:
        for p in peers["peers"]:
            rows.append(
                (
                    f"peer {p['name']}",
                    f"1 x {p['bars']:,}",
                    f"{p['median_wall_s']:.2f} / {p['median_cpu_s']:.2f}",
                    f"{p['throughput_wall'] / 1e6:.3f} / {p['throughput_cpu'] / 1e6:.3f}",
                    f"tickstep {p['tickstep_ratio_cpu']:.1f}x",
                    f"≥ {p['target_ratio']:g}x" if p["target_ratio"] else "",
                    verdict(p["ok"], p.get("ok_wall")),
                )
            )
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def criterion_results(root: Path = h.ROOT / "target" / "criterion") -> list[dict[str, Any]]:
    """The latest ``cargo bench`` figures, read from criterion's files: median time per
    iteration and throughput in symbol-bars/s, with the time the bench ran."""
    out = []

    def order(path: Path) -> tuple[str, int, str]:
        name = path.parts[-3]
        return (path.parts[-4], int(name) if name.isdigit() else 0, name)

    for bench in sorted(root.glob("*/*/new/benchmark.json"), key=order):
        meta = json.loads(bench.read_text())
        est = json.loads((bench.parent / "estimates.json").read_text())["median"]
        elements = (meta.get("throughput") or {}).get("Elements")
        seconds = est["point_estimate"] / 1e9
        out.append(
            {
                "bench": meta["full_id"],
                "median_s": seconds,
                "ci_s": [
                    est["confidence_interval"]["lower_bound"] / 1e9,
                    est["confidence_interval"]["upper_bound"] / 1e9,
                ],
                "symbol_bars": elements,
                "throughput": elements / seconds if elements else None,
                "ran": dt.datetime.fromtimestamp(bench.stat().st_mtime, dt.UTC).isoformat(),
            }
        )
    return out


def criterion_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'bench':<24} {'median':>10} {'95% CI':>21} {'M symbol-bars/s':>16}"]
    for r in rows:
        rate = f"{r['throughput'] / 1e6:16.2f}" if r["throughput"] else f"{'':16}"
        lo, hi = r["ci_s"]
        lines.append(
            f"{r['bench']:<24} {r['median_s'] * 1e3:8.1f} ms "
            f"[{lo * 1e3:7.1f}, {hi * 1e3:7.1f}] ms {rate}"
        )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per workload")
    ap.add_argument("--only", help="comma-separated workloads (default all)")
    ap.add_argument("--no-peers", action="store_true", help="skip the peer comparison")
    ap.add_argument("--no-extra", action="store_true", help="skip batch_rsi.py, data_load.py")
    ap.add_argument("--peer-repeat", type=int, default=3)
    ap.add_argument("--json", help="write every result to this file")
    args = ap.parse_args()
    chosen = args.only.split(",") if args.only else WORKLOADS
    unknown = sorted(set(chosen) - set(WORKLOADS))
    if unknown:
        sys.exit(f"unknown workloads {unknown}; choose from {WORKLOADS}")

    started = dt.datetime.now(dt.UTC)
    print(
        f"tickstep benchmarks, {started:%Y-%m-%d %H:%M UTC}, {platform.node()}, "
        f"Python {platform.python_version()}, load average {h.load_average()}"
    )
    if h.slowdown():
        print(
            f"WARNING: {h.SLOWDOWN_ENV}={h.slowdown()}: a deliberately slowed build "
            "(for testing benches/track.py check); these figures are not tickstep's"
        )
    needed = sorted({DATASETS[w] for w in chosen} | (set() if args.no_peers else {"peer_1x100k"}))
    subprocess.run(
        [sys.executable, str(HERE / "_harness.py"), "prepare", *needed],
        check=True,
        stdout=subprocess.DEVNULL,
    )

    results: dict[str, Any] = {}
    for name in chosen:
        repeat = 1 if name == "memory" else args.repeat
        r = run_child([str(HERE / "workloads.py"), name, "--repeat", str(repeat)], name)
        if r is not None:
            results[name] = r
    if not args.no_peers:
        r = run_child(
            [str(HERE / "peers" / "compare.py"), "--repeat", str(args.peer_repeat)], "peers"
        )
        if r is not None:
            results["peers"] = r
    if not args.no_extra:
        for name, script in EXTRA.items():
            if (HERE / script[0]).exists():
                r = run_child([str(HERE / script[0]), "--repeat", str(args.repeat)], name)
                if r is not None:
                    results[name] = r

    print(f"\nSummary ({started:%Y-%m-%d}; medians; load average now {h.load_average()})\n")
    print(table(results))
    core = criterion_results()
    if core:
        ran = max(r["ran"] for r in core)[:16].replace("T", " ")
        print(f"\nCore (criterion, wall time, from the last cargo bench, {ran} UTC)\n")
        print(criterion_table(core))
        results["criterion"] = core
    if args.json:
        meta = {
            "started": started.isoformat(),
            "host": platform.node(),
            "python": platform.python_version(),
            "argv": sys.argv,
        }
        Path(args.json).write_text(json.dumps({"meta": meta, **results}, indent=1, default=str))
        print(f"\nresults written to {args.json}")


if __name__ == "__main__":
    main()
