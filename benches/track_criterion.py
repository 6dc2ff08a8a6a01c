"""Criterion baselines of the core benches (``benches/engine.rs``), saved and compared.

    python benches/track_criterion.py save NAME [FILTER]     # make bench-save NAME=main
    python benches/track_criterion.py compare NAME [FILTER]  # make bench-compare NAME=main
    python benches/track_criterion.py table NAME             # the last comparison again

``save`` runs ``cargo bench --bench engine -- --save-baseline NAME``; ``compare`` runs
``cargo bench --bench engine -- --baseline NAME`` (the baseline is left as it was) and
prints one table: each bench's median then and now, criterion's bootstrap estimate of
the change of the median with its 95% confidence interval, and a verdict by
criterion's own rule: "regressed" when the whole interval lies above its noise
threshold (+2%), "improved" when it lies below -2%, else "within noise". FILTER is a
criterion filter (a regular expression on bench names, e.g. ``tick_loop``).

The figures are read from criterion's files: ``target/criterion/<group>/<bench>/`` holds
``NAME/estimates.json`` (the baseline), ``new/estimates.json`` (this run) and
``change/estimates.json`` (the relative change). Only benches this run touched are
shown. On this shared machine criterion's wall-clock figures move with the load: a
comparison means something when both runs saw similar load (compare the load averages
printed above the table), or use ``benches/track.py check`` (in-run ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
#: criterion's default noise threshold (``Criterion::noise_threshold``): changes whose
#: confidence interval stays within +-2% are reported as noise.
NOISE = 0.02


def criterion_dir() -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "criterion"


def cargo_bench(*criterion_args: str) -> None:
    cmd = ["cargo", "bench", "--bench", "engine", "--", *criterion_args]
    print("$ " + " ".join(cmd), flush=True)
    code = subprocess.run(cmd, cwd=ROOT).returncode
    if code:
        raise SystemExit(f"cargo bench failed (exit {code}); a --baseline needs a saved baseline")


def _median(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())["median"]


def comparisons(
    baseline: str, since: float = 0.0, root: Path | None = None
) -> list[dict[str, Any]]:
    """Every bench with a baseline ``baseline`` whose comparison was written at or after
    ``since`` (a time.time()): name, medians (s) then and now, relative change of the
    median with its confidence interval."""
    root = root or criterion_dir()
    rows = []
    for change in sorted(root.glob("**/change/estimates.json")):
        bench = change.parent.parent
        base, new = bench / baseline / "estimates.json", bench / "new" / "estimates.json"
        if not (base.exists() and new.exists()) or change.stat().st_mtime < since:
            continue
        meta = json.loads((bench / "new" / "benchmark.json").read_text())
        rel = _median(change)
        ci = rel["confidence_interval"]
        rows.append(
            {
                "bench": meta["full_id"],
                "baseline_s": _median(base)["point_estimate"] / 1e9,
                "now_s": _median(new)["point_estimate"] / 1e9,
                "change": rel["point_estimate"],
                "ci": (ci["lower_bound"], ci["upper_bound"]),
                "confidence": ci["confidence_level"],
                "verdict": verdict(ci["lower_bound"], ci["upper_bound"]),
            }
        )
    return rows


def verdict(lower: float, upper: float, noise: float = NOISE) -> str:
    """criterion's rule (``compare_to_threshold``), on the change of the median."""
    if upper < -noise:
        return "improved"
    if lower > noise:
        return "REGRESSED"
    return "within noise"


def table(rows: list[dict[str, Any]], baseline: str) -> str:
    head = ("bench", baseline, "now", "change", "95% CI", "verdict")
    body = [
        (
            r["bench"],
            f"{r['baseline_s'] * 1e3:.2f} ms",
            f"{r['now_s'] * 1e3:.2f} ms",
            f"{r['change']:+.1%}",
            f"[{r['ci'][0]:+.1%}, {r['ci'][1]:+.1%}]",
            r["verdict"],
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in [head, *body]) for i in range(len(head))]
    right = {1, 2, 3, 4}

    def line(row: tuple[str, ...]) -> str:
        cells = [
            c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))
        ]
        return "  ".join(cells).rstrip()

    out = [line(head), "-" * len(line(head)), *map(line, body)]
    counts = {v: sum(r["verdict"] == v for r in rows) for v in ("REGRESSED", "improved")}
    out.append(
        f"\n{len(rows)} benches: {counts['REGRESSED']} regressed, {counts['improved']} improved, "
        f"the rest within criterion's ±{NOISE:.0%} noise threshold"
    )
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("action", choices=["save", "compare", "table"])
    ap.add_argument("name", help="baseline name, e.g. main")
    ap.add_argument("filter", nargs="?", default="", help="criterion filter (regex)")
    args = ap.parse_args(argv)
    if not args.name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise SystemExit(f"baseline name {args.name!r}: use letters, digits, '-', '_', '.'")
    extra = [args.filter] if args.filter else []
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    if args.action == "save":
        cargo_bench("--save-baseline", args.name, *extra)
        print(f"\nsaved criterion baseline {args.name!r} (load average before: {load})")
        return 0
    since = 0.0
    if args.action == "compare":
        since = time.time() - 1
        cargo_bench("--baseline", args.name, *extra)
    rows = comparisons(args.name, since)
    if not rows:
        print(f"no comparison with baseline {args.name!r} found under {criterion_dir()}")
        return 2
    print(f"\nchange against baseline {args.name!r} (load average before: {load})\n")
    print(table(rows, args.name))
    return 0


if __name__ == "__main__":
    sys.exit(main())
