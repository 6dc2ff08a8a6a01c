"""Performance over time: record whole-workload figures in ``benches/history.jsonl``,
check a change against the last record, draw the history as an HTML chart.

    python benches/track.py record [--rounds 7] [--only noop,sma_cross] [--note TEXT]
    python benches/track.py check  [--rounds 5] [--only ...]
    python benches/track.py chart  [--out target/bench-history.html]

(``make bench-record``, ``make bench-check``, ``make bench-chart``.)

Why ratios. This machine is shared: the same binary's wall time varies 2-4x between
runs and even CPU time moves with the load (caches and the other hyperthread are
shared). Absolute figures from different days or machines cannot be compared, so every
run also times *references* that no change to tickstep can make faster or slower, and
the tracked figure of a workload is its cost per symbol-bar divided by a reference's
cost per element, measured in the same round:

- ``numpy_loop``: an SMA(10)/SMA(30) crossover of every symbol's closes in numpy, the
  machine's speed at streaming native loops over columns; the reference of the native
  workloads (``native_noop``, ``native_studies``).
- ``python_call``: a Python loop calling a no-op method, the interpreter's call floor;
  the reference of the workloads that call a Python strategy per bar.
- ``native_noop``: tickstep's own tick loop with no callback (``Engine.run``), the
  engine's floor. It is a workload too (judged against ``numpy_loop``); every Python
  workload's ratio to it is recorded as well ("how much Python adds"), but not judged.

Rounds run every probe once in a fixed order, references before and after the
workloads; a round's ratio uses the mean of its two reference timings, so a burst of
load that slows one round slows both sides of its ratios. Times are CPU seconds of this
process (``time.process_time``; wall seconds are recorded beside them). Each figure is
the median over rounds, with its spread (1.4826 x the median absolute deviation over
the median: a robust relative standard deviation).

The check: see `judge` and the README's benchmarks section for its threshold.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _harness as h  # noqa: E402 - after the sys.path line above

HISTORY = HERE / "history.jsonl"
SCHEMA = HERE / "history.schema.json"
SCHEMA_VERSION = 1

#: The threshold of the check (see `judge`): a judged ratio may worsen by
#: max(FLOOR, NOISE_FACTOR x the pooled spread of the two runs) before the check fails.
FLOOR = 0.15
NOISE_FACTOR = 4.0

MINUTE_DATA = "minute_20x144k"


@dataclass(frozen=True)
class Probe:
    """One timed unit of the suite: a reference or a workload."""

    name: str
    dataset: str
    #: The reference a workload's ratio is judged against (None for a reference).
    judged_against: str | None
    what: str


REFERENCES = ("numpy_loop", "python_call", "native_noop")
PROBES: dict[str, Probe] = {
    p.name: p
    for p in [
        Probe(
            "numpy_loop", MINUTE_DATA, None, "numpy SMA(10)/SMA(30) crossover of each close column"
        ),
        Probe(
            "python_call",
            MINUTE_DATA,
            None,
            "a Python loop calling a no-op method once per element",
        ),
        Probe("native_noop", MINUTE_DATA, "numpy_loop", "Engine.run, no callback"),
        Probe(
            "native_studies", MINUTE_DATA, "numpy_loop", "Engine.run, two rolling means declared"
        ),
        Probe(
            "noop", MINUTE_DATA, "python_call", "Backtest + run, Python next() that does nothing"
        ),
        Probe("sma_cross", MINUTE_DATA, "python_call", "Backtest + run, shipped SmaCross, 1 unit"),
        Probe(
            "fakeout", MINUTE_DATA, "python_call", "Backtest + run, shipped Fakeout, risk sizing"
        ),
        Probe(
            "ranked", "halfhour_100x1y", "python_call", "Backtest + run, shipped RankedPortfolio"
        ),
        Probe(
            "rsi_portfolio",
            "daily_211x5y",
            "python_call",
            "Backtest + run, RsiMeanReversion, 211 symbols",
        ),
    ]
}
#: What `make bench-check` runs: the engine's floor, its market phase, the Python
#: callback floor and a real strategy on top of it (~3 CPU-seconds a round).
CHECKED = ("native_noop", "native_studies", "noop", "sma_cross")


# ---- the references ------------------------------------------------------------------------


#: References do at least this many elements of work (repeating their loop over the
#: data), so that each lasts tens of milliseconds also on the tests' small data set: a
#: shorter timing is at the mercy of one scheduler tick or a burst of CPU steal.
MIN_REFERENCE_ELEMENTS = 1_000_000


def numpy_loop(closes: list[Any], times: int = 1) -> Callable[[], int]:
    """Golden crosses of SMA(10) over SMA(30), vectorised per symbol (cumulative sums),
    over all the columns ``times`` times. Every result goes to a buffer allocated once:
    fresh megabyte arrays would be fresh pages, and the kernel's page faults vary with
    the machine's memory traffic far more than the streaming loop itself."""
    import numpy as np

    size = max(len(c) for c in closes)
    cs, fast, slow = np.empty(size), np.empty(size), np.empty(size)
    above, cross = np.empty(size, dtype=bool), np.empty(size, dtype=bool)

    def run() -> int:
        crosses = 0
        for c in closes * times:
            n = len(c) - 30
            np.cumsum(c, out=cs[: len(c)])
            np.subtract(cs[30 : len(c)], cs[20 : len(c) - 10], out=fast[:n])
            np.subtract(cs[30 : len(c)], cs[: len(c) - 30], out=slow[:n])
            np.multiply(fast[:n], 3.0, out=fast[:n])  # fast/10 > slow/30 <=> 3 fast > slow
            np.greater(fast[:n], slow[:n], out=above[:n])
            np.greater(above[1:n], above[: n - 1], out=cross[: n - 1])
            crosses += int(np.count_nonzero(cross[: n - 1]))
        return crosses

    return run


class _Callee:
    def next(self, symbol: str) -> None:
        pass


def python_call(calls: int) -> Callable[[], None]:
    """``calls`` calls of a bound no-op method with one argument: what the engine pays at
    least per symbol-bar to reach a Python ``next(symbol)``, in plain Python."""
    symbols = [f"S{k:02d}" for k in range(20)]
    order = [symbols[i % 20] for i in range(calls)]

    def run() -> None:
        call = _Callee().next
        for symbol in order:
            call(symbol)

    return run


# ---- building the suite ------------------------------------------------------------------


def build_jobs(
    names: Iterable[str], data: str | None
) -> dict[str, tuple[Callable[[], Any], int, str]]:
    """name -> (job, elements, data set) for the chosen probes; ``data`` replaces the
    minute data set (the tests run the suite on a small one)."""
    import workloads as w
    from tickstep.simulation import market_from_columns

    loaded: dict[str, Any] = {}
    cores: dict[str, Any] = {}

    def columns(dataset: str) -> Any:
        if dataset not in loaded:
            loaded[dataset] = h.load(dataset)
        return loaded[dataset]

    def core(dataset: str) -> Any:
        if dataset not in cores:
            cores[dataset] = market_from_columns(columns(dataset))
        return cores[dataset]

    jobs: dict[str, tuple[Callable[[], Any], int, str]] = {}
    for name in names:
        probe = PROBES[name]
        dataset = data if (data and probe.dataset == MINUTE_DATA) else probe.dataset
        market = columns(dataset)
        n = h.symbol_bars(market)
        if name == "numpy_loop":
            times = -(-MIN_REFERENCE_ELEMENTS // n)
            job: Callable[[], Any] = numpy_loop([b.close for b in market.bars], times)
            n *= times
        elif name == "python_call":
            n = max(n, MIN_REFERENCE_ELEMENTS)
            job = python_call(n)
        elif name in ("native_noop", "native_studies"):
            job = w.native_job(core(dataset), studies=name == "native_studies")
        else:
            job = w.backtest_job(name, market)
        jobs[name] = (job, n, dataset)
    return jobs


# ---- statistics --------------------------------------------------------------------------


def robust_spread(xs: list[float]) -> float:
    """1.4826 x median absolute deviation / median: the relative standard deviation of a
    normal sample, robust to the odd round hit by a burst of load."""
    m = statistics.median(xs)
    if len(xs) < 2 or m == 0:
        return 0.0
    return 1.4826 * statistics.median(abs(x - m) for x in xs) / abs(m)


def summary(xs: list[float]) -> dict[str, float]:
    return {
        "median": statistics.median(xs),
        "spread": robust_spread(xs),
        "min": min(xs),
        "max": max(xs),
    }


# ---- running -----------------------------------------------------------------------------


@dataclass
class Run:
    """The timings of one run of the suite, per probe and round (a reference's timing in
    a round is the mean of its runs before and after the workloads)."""

    cpu: dict[str, list[float]] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)


def measure(
    names: list[str], rounds: int, data: str | None = None, *, log: Callable[[str], None] = print
) -> tuple[Run, dict[str, tuple[int, str]]]:
    """Time the chosen probes (and the references they are judged against) for
    ``rounds`` rounds after one untimed warm-up round."""
    refs = [n for n in names if PROBES[n].judged_against is None]
    workloads = [n for n in names if PROBES[n].judged_against is not None]
    jobs = build_jobs(names, data)
    run = Run()

    def timed(job: Callable[[], Any]) -> tuple[float, float]:
        gc.collect()
        c0, t0 = time.process_time(), time.perf_counter()
        job()
        return time.process_time() - c0, time.perf_counter() - t0

    # What exists now (data, interpreter, a test session's modules) is set aside from
    # the collector, so each collection before a timing only walks what runs made.
    gc.collect()
    gc.freeze()
    try:
        for r in range(rounds + 1):
            before = {ref: timed(jobs[ref][0]) for ref in refs}
            now = {name: timed(jobs[name][0]) for name in workloads}
            after = {ref: timed(jobs[ref][0]) for ref in refs}
            if r == 0:
                continue  # warm-up: caches, allocator pools, lazy imports
            for ref in refs:
                run.cpu.setdefault(ref, []).append((before[ref][0] + after[ref][0]) / 2)
                run.wall.setdefault(ref, []).append((before[ref][1] + after[ref][1]) / 2)
            for name in workloads:
                run.cpu.setdefault(name, []).append(now[name][0])
                run.wall.setdefault(name, []).append(now[name][1])
            log(
                f"round {r}/{rounds}: "
                + ", ".join(f"{n} {run.cpu[n][-1] * 1e3:.0f} ms" for n in [*refs, *workloads])
            )
    finally:
        gc.unfreeze()
    return run, {name: (n, dataset) for name, (_, n, dataset) in jobs.items()}


def ratios(run: Run, elements: dict[str, tuple[int, str]]) -> dict[str, Any]:
    """Per workload: its judged ratio (median and spread over rounds of its cost per
    symbol-bar over the reference's cost per element, same round) and its median ratio
    to every other reference that ran."""
    out: dict[str, Any] = {}
    for name, cpu in run.cpu.items():
        judged = PROBES[name].judged_against
        if judged is None:
            continue
        per_round: dict[str, list[float]] = {}
        for ref in REFERENCES:
            if ref == name or ref not in run.cpu:
                continue
            per_round[ref] = [
                (t / elements[name][0]) / (r / elements[ref][0]) for t, r in zip(cpu, run.cpu[ref])
            ]
        if judged not in per_round:
            continue
        out[name] = {
            "reference": judged,
            **summary(per_round[judged]),
            "to": {ref: statistics.median(xs) for ref, xs in per_round.items()},
        }
    return out


# ---- the record --------------------------------------------------------------------------


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=h.ROOT, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.strip()


def commit_info() -> dict[str, Any]:
    """The commit measured, and whether tracked files differed from it (the history file
    itself aside: recording changes it)."""
    status = _git("status", "--porcelain", "--untracked-files=no") or ""
    history = HISTORY.relative_to(h.ROOT).as_posix()
    changed = [line[3:] for line in status.splitlines() if line[3:] != history]
    return {
        "commit": _git("rev-parse", "HEAD") or "unknown",
        "subject": _git("log", "-1", "--format=%s") or "",
        "dirty": bool(changed),
    }


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(load_before: tuple[float, ...]) -> dict[str, Any]:
    try:
        rustc = subprocess.run(["rustc", "-V"], capture_output=True, text=True).stdout.strip()
    except OSError:
        rustc = ""
    return {
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count() or 1,
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "rustc": rustc or None,
        "platform": platform.platform(),
    }


def make_record(
    run: Run,
    elements: dict[str, tuple[int, str]],
    *,
    rounds: int,
    load_before: tuple[float, ...],
    note: str = "",
) -> dict[str, Any]:
    probes = {}
    for name, cpu in run.cpu.items():
        n, dataset = elements[name]
        probes[name] = {
            "kind": "reference" if PROBES[name].judged_against is None else "workload",
            "dataset": dataset,
            "elements": n,
            "cpu_s": summary(cpu),
            "wall_s": summary(run.wall[name]),
            "cpu_samples_s": [round(x, 6) for x in cpu],
        }
    return {
        "schema": SCHEMA_VERSION,
        **commit_info(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(load_before),
        "rounds": rounds,
        "clock": "process_time",
        "slowdown": h.slowdown(),
        "note": note,
        "probes": probes,
        "ratios": ratios(run, elements),
    }


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = []
    for k, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise SystemExit(f"{path}:{k}: not a JSON record ({e.msg})") from None
    return records


def validate(record: dict[str, Any]) -> None:
    """Raise `jsonschema.ValidationError` unless ``record`` follows history.schema.json,
    or ValueError where its parts disagree (what a JSON schema cannot say)."""
    import jsonschema

    jsonschema.validate(record, json.loads(SCHEMA.read_text()))
    probes = record["probes"]
    for name, probe in probes.items():
        if len(probe["cpu_samples_s"]) != record["rounds"]:
            raise ValueError(
                f"probe {name!r}: {len(probe['cpu_samples_s'])} samples for {record['rounds']} rounds"
            )
    for name, ratio in record["ratios"].items():
        if probes.get(name, {}).get("kind") != "workload":
            raise ValueError(f"ratio {name!r}: no workload {name!r} among the probes")
        for ref in (ratio["reference"], *ratio["to"]):
            if ref not in probes:
                raise ValueError(f"ratio {name!r}: reference {ref!r} is not among the probes")
        if ratio["to"].get(ratio["reference"]) is None:
            raise ValueError(f"ratio {name!r}: its judged reference is missing from 'to'")


# ---- the check ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    workload: str
    reference: str
    baseline: float
    now: float
    change: float  # now / baseline - 1: positive is slower
    threshold: float
    baseline_commit: str
    #: change of the workload's own CPU time per symbol-bar, shown beside the ratio
    #: (not judged; None when the record was made on another CPU model)
    cpu_change: float | None = None

    @property
    def regressed(self) -> bool:
        return self.change > self.threshold


def threshold(baseline_spread: float, now_spread: float) -> float:
    """How much worse a judged ratio may get before the check fails.

    The ratio's noise in a run is its spread over rounds; two runs' noises add in
    quadrature. Four times that pooled spread (two runs of one build differ by more
    only when a run was hit by load the rounds did not see) and never less than FLOOR:
    with 5-7 rounds the spread estimate itself is rough, and between-run changes of
    up to ~10% were seen on this machine with nothing changed (README).
    """
    pooled = math.hypot(baseline_spread, now_spread)
    return max(FLOOR, NOISE_FACTOR * pooled)


def baseline_for(
    workload: str, probe: dict[str, Any], history: list[dict[str, Any]], cpu: str
) -> dict[str, Any] | None:
    """The last recorded run of ``workload`` on the same data and reference, preferring
    records made on the same CPU model; records of a slowed build never count."""
    usable = [
        rec
        for rec in history
        if rec.get("slowdown", 0) == 0
        and workload in rec["ratios"]
        and rec["ratios"][workload]["reference"] == PROBES[workload].judged_against
        and rec["probes"][workload]["dataset"] == probe["dataset"]
        and rec["probes"][workload]["elements"] == probe["elements"]
    ]
    same = [rec for rec in usable if rec["machine"]["cpu"] == cpu]
    chosen = same or usable
    return chosen[-1] if chosen else None


def judge(current: dict[str, Any], history: list[dict[str, Any]]) -> list[Verdict]:
    """Compare every judged ratio of ``current`` with its last recorded value."""
    verdicts = []
    for name, ratio in current["ratios"].items():
        base = baseline_for(name, current["probes"][name], history, current["machine"]["cpu"])
        if base is None:
            continue
        b = base["ratios"][name]
        now_probe, base_probe = current["probes"][name], base["probes"][name]
        same_cpu = base["machine"]["cpu"] == current["machine"]["cpu"]
        verdicts.append(
            Verdict(
                workload=name,
                reference=ratio["reference"],
                baseline=b["median"],
                now=ratio["median"],
                change=ratio["median"] / b["median"] - 1,
                threshold=threshold(b["spread"], ratio["spread"]),
                baseline_commit=base["commit"][:10],
                cpu_change=now_probe["cpu_s"]["median"] / base_probe["cpu_s"]["median"] - 1
                if same_cpu
                else None,
            )
        )
    return verdicts


def verdict_table(verdicts: list[Verdict]) -> str:
    rows = [
        (
            "workload",
            "ratio to",
            "recorded",
            "now",
            "change",
            "allowed",
            "",
            "CPU time",
            "recorded at",
        )
    ]
    for v in verdicts:
        rows.append(
            (
                v.workload,
                v.reference,
                f"{v.baseline:.3g}",
                f"{v.now:.3g}",
                f"{v.change:+.1%}",
                f"+{v.threshold:.0%}",
                "REGRESSED" if v.regressed else "ok",
                "" if v.cpu_change is None else f"{v.cpu_change:+.1%}",
                v.baseline_commit,
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def run_suite(
    names: list[str],
    rounds: int,
    data: str | None,
    note: str = "",
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    needed = set(names) | {ref for n in names if (ref := PROBES[n].judged_against)}
    ordered = [n for n in PROBES if n in needed]
    load_before = os.getloadavg()
    run, elements = measure(ordered, rounds, data, log=log)
    return make_record(run, elements, rounds=rounds, load_before=load_before, note=note)


def check(args: argparse.Namespace) -> int:
    history = read_history(Path(args.history))
    if not history:
        print(f"no records in {args.history}: run `make bench-record` first")
        return 2
    names = chosen(args.only, CHECKED)
    t0 = time.perf_counter()
    current = run_suite(names, args.rounds, args.data)
    verdicts = judge(current, history)
    if not verdicts:
        print("nothing to compare: no recorded run of these workloads on this data")
        return 2
    print(verdict_table(verdicts))
    suspects = [v.workload for v in verdicts if v.regressed]
    if suspects:
        # One run can be caught by a burst of load the rounds did not average out: a
        # regression counts only if an independent second run of the suspects agrees.
        print(f"\nslower than allowed: {', '.join(suspects)}; measuring them again to confirm")
        again = {v.workload: v for v in judge(run_suite(suspects, args.rounds, args.data), history)}
        print(verdict_table(list(again.values())))
        verdicts = [again.get(v.workload, v) for v in verdicts]
    if any(v.cpu_change is None for v in verdicts):
        print(
            f"\nnote: no record made on this CPU ({current['machine']['cpu']}); compared with "
            "another machine's, where ratios agree only roughly: record one here first"
        )
    bad = [v for v in verdicts if v.regressed]
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    print(
        f"\n{len(verdicts)} ratios compared in {time.perf_counter() - t0:.0f} s (load average {load})"
    )
    if bad:
        print(
            "REGRESSION: "
            + "; ".join(
                f"{v.workload} is {v.change:+.1%} against {v.reference} (allowed +{v.threshold:.0%})"
                for v in bad
            )
        )
        return 1
    print("no regression beyond the allowed noise")
    return 0


def record(args: argparse.Namespace) -> int:
    if h.slowdown():
        print(f"refusing to record a slowed build ({h.SLOWDOWN_ENV} is set)")
        return 2
    names = chosen(args.only, [n for n in PROBES if PROBES[n].judged_against])
    rec = run_suite(names, args.rounds, args.data, note=args.note)
    validate(rec)
    path = Path(args.history)
    with path.open("a") as f:
        f.write(json.dumps(rec, separators=(",", ":")) + "\n")
    width = max(len(n) for n in rec["ratios"])
    for name, r in rec["ratios"].items():
        p = rec["probes"][name]
        print(
            f"{name:<{width}}  {p['elements'] / p['cpu_s']['median'] / 1e6:8.2f} M/s CPU  "
            f"x{r['median']:.3g} {r['reference']} (spread {r['spread']:.1%})"
        )
    print(f"appended to {path} (commit {rec['commit'][:10]}{', dirty' if rec['dirty'] else ''})")
    return 0


def chosen(only: str | None, default: Iterable[str]) -> list[str]:
    names = only.split(",") if only else list(default)
    unknown = [n for n in names if n not in PROBES or PROBES[n].judged_against is None]
    if unknown:
        workloads = [n for n in PROBES if PROBES[n].judged_against]
        raise SystemExit(f"unknown workloads {unknown}; choose from {', '.join(workloads)}")
    return names


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, rounds in (("record", 7), ("check", 5)):
        p = sub.add_parser(name)
        p.add_argument("--rounds", type=int, default=rounds, help="timed rounds (median)")
        p.add_argument("--only", help="comma-separated workloads")
        p.add_argument("--history", default=str(HISTORY))
        p.add_argument("--data", choices=sorted(h.DATASETS), help="replace the minute data set")
        if name == "record":
            p.add_argument("--note", default="", help="a line saying what changed")
    p = sub.add_parser("chart")
    p.add_argument("--history", default=str(HISTORY))
    p.add_argument("--out", default=str(h.ROOT / "target" / "bench-history.html"))
    args = ap.parse_args(argv)
    if args.command == "chart":
        import track_chart

        out = track_chart.write(read_history(Path(args.history)), Path(args.out))
        print(f"wrote {out}")
        return 0
    if getattr(args, "rounds", 1) < 1:
        raise SystemExit("--rounds must be at least 1")
    return record(args) if args.command == "record" else check(args)


if __name__ == "__main__":
    sys.exit(main())
