"""Instructions per symbol-bar of the Python idioms' run phase, counted by callgrind.

``python benches/instructions.py [IDIOM ...] [--data minute_10x14k] [--icache]``

Timings on a shared machine move by tens of percent between runs of the same code; the
instructions the CPU executes for the same run do not. This counts them with valgrind's
callgrind for the run phase only (the core's ``Engine.run``: ``init()`` and every tick,
not the data's loading, the set-up of the backtest or the results' tables), for each
idiom of ``benches/accessors.py`` (all by default) on 10 symbols x 14,400 minutes, and
prints them per symbol-bar with the number of trades. ``signals_run`` counts the signals
mode's native run instead (``tickstep::signals::run``: the single run of
``benches/signals.py``, SMA 10/30 cross signals, 4 percent of equity, one thread, on 20
symbols x 144,000 minutes). Run it with another build's interpreter for the figures side
by side (main's ``.venv/bin/python benches/instructions.py``).
Needs ``valgrind`` on the PATH; each idiom takes a minute or so under it.

``--icache`` also simulates a first-level instruction cache of 32 KiB, 8 ways, 64-byte
lines (the size x86 cores have had for a decade; fixed, so that figures from different
machines compare) and prints its misses per symbol-bar. The signals run's hot code is
about 28 KiB: where the linker puts it decides how much of it shares the cache's sets
and is evicted, so a change that adds no instructions can still make runs a few percent
slower (see BENCHMARKS.md, "Code layout and the instruction cache"). The misses show
that in a count as steady as the instructions', where timings would need many rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: Where callgrind starts and stops counting: the binding's `Engine.run` (pyo3's wrapper).
RUN_PHASE = "*PyEngine*__pymethod_run__*"
#: The signals mode's native run, by its name in `benches/signals.py`, its phase and its data.
SIGNALS_RUN = "signals_run"
SIGNALS_PHASE = "tickstep::signals::run"
SIGNALS_DATA = "minute_20x144k"
#: The simulated first-level instruction cache (`--icache`): size, ways, line size.
ICACHE = "32768,8,64"


def child(idiom: str, data: str) -> None:
    """Run one idiom once (under callgrind, started by `main`) and report its trades."""
    import _harness as h
    import accessors
    import tickstep

    columns = h.load(data)
    strategy, options = accessors.IDIOMS[idiom]
    out = tickstep.Backtest(columns, strategy, cash=1e9, **accessors._options(options)).run()
    print("CHILD " + json.dumps({"trades": len(out.trades), "symbol_bars": h.symbol_bars(columns)}))


def signals_child(data: str) -> None:
    """Run the signals bench's single run natively once (under callgrind) and report its trades."""
    import _harness as h
    import signals
    import tickstep
    from tickstep.simulation import market_from_columns

    market = market_from_columns(h.load(data))
    closes = signals.market_closes(market)
    config = tickstep.BacktestConfig(on_reject="ignore")
    (engine,) = signals.native_run(market, config, signals.single_set(closes), 1)()[2]
    trades = len(engine.take_logs()[2])
    print("CHILD " + json.dumps({"trades": trades, "symbol_bars": sum(len(c) for c in closes)}))


def count(idiom: str, data: str, icache: bool = False) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "callgrind.out"
        phase = SIGNALS_PHASE if idiom == SIGNALS_RUN else RUN_PHASE
        cache = ["--cache-sim=yes", f"--I1={ICACHE}"] if icache else []
        cmd = ["valgrind", "--tool=callgrind", *cache, "--collect-atstart=no", f"--toggle-collect={phase}",
               f"--callgrind-out-file={out_file}", sys.executable, __file__, "--child", idiom, "--data", data]
        env = dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED="0")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{idiom}: valgrind failed\n{done.stderr[-2000:]}")
        report = json.loads(next(line[6:] for line in done.stdout.splitlines() if line.startswith("CHILD ")))
        text = out_file.read_text()
    counts = totals(text)
    if "Ir" not in counts:
        raise SystemExit(f"{idiom}: no instruction total in callgrind's output")
    instructions = counts["Ir"]
    per_trade = {"per_trade": instructions / report["trades"]} if report["trades"] else {}
    misses = {}
    if icache:
        if "I1mr" not in counts:
            raise SystemExit(f"{idiom}: no instruction-cache misses in callgrind's output")
        misses = {"icache_misses": counts["I1mr"], "icache_misses_per_bar": counts["I1mr"] / report["symbol_bars"]}
    return {"instructions": instructions, "per_bar": instructions / report["symbol_bars"], **per_trade,
            **misses, **report}


def totals(text: str) -> dict[str, int]:
    """The run's totals in callgrind's output, by event name (``Ir``: instructions;
    ``I1mr``: first-level instruction-cache misses, when simulated)."""
    events = re.search(r"^events:\s+(.+)$", text, re.M)
    total = re.search(r"^(?:summary|totals):\s+(.+)$", text, re.M)
    if events is None or total is None:
        return {}
    return dict(zip(events.group(1).split(), (int(x) for x in total.group(1).split())))


def main() -> None:
    import accessors

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("idioms", nargs="*",
                    help=f"of {', '.join(accessors.IDIOMS)}, {SIGNALS_RUN} (default all idioms)")
    ap.add_argument("--data", help="the idioms' data (default minute_10x14k; signals_run's minute_20x144k)")
    ap.add_argument("--icache", action="store_true",
                    help=f"also count misses of a simulated first-level instruction cache ({ICACHE}: bytes, ways, line)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child == SIGNALS_RUN:
        signals_child(args.data)
        return
    if args.child:
        child(args.child, args.data)
        return
    unknown = [name for name in args.idioms if name not in accessors.IDIOMS and name != SIGNALS_RUN]
    if unknown:
        known = [*accessors.IDIOMS, SIGNALS_RUN]
        raise SystemExit(f"unknown idiom(s) {', '.join(unknown)}; known: {', '.join(known)}")
    results = {}
    print(f"instructions per symbol-bar, run phase ({sys.executable})")
    for name in args.idioms or list(accessors.IDIOMS):
        data = args.data or (SIGNALS_DATA if name == SIGNALS_RUN else "minute_10x14k")
        r = results[name] = count(name, data, args.icache)
        misses = (f"; instruction-cache misses {r['icache_misses_per_bar']:.3f} per symbol-bar, "
                  f"{r['icache_misses']:,} in all" if args.icache else "")
        print(f"  {name:<20} {r['per_bar']:8,.0f}  ({r['instructions']:,} in all on {data}, "
              f"trades={r['trades']}{misses})", flush=True)
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
