"""Instructions per symbol-bar of the Python idioms' run phase, counted by callgrind.

``python benches/instructions.py [IDIOM ...] [--data minute_10x14k]``

Timings on a shared machine move by tens of percent between runs of the same code; the
instructions the CPU executes for the same run do not. This counts them with valgrind's
callgrind for the run phase only (the core's ``Engine.run``: ``init()`` and every tick,
not the data's loading, the set-up of the backtest or the results' tables), for each
idiom of ``benches/accessors.py`` (all by default) on 10 symbols x 14,400 minutes, and
prints them per symbol-bar with the number of trades. Run it with another build's
interpreter for the figures side by side (main's ``.venv/bin/python benches/instructions.py``).
Needs ``valgrind`` on the PATH; each idiom takes a minute or so under it.
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


def child(idiom: str, data: str) -> None:
    """Run one idiom once (under callgrind, started by `main`) and report its trades."""
    import _harness as h
    import accessors
    import tickstep

    columns = h.load(data)
    strategy, options = accessors.IDIOMS[idiom]
    out = tickstep.Backtest(columns, strategy, cash=1e9, **accessors._options(options)).run()
    print("CHILD " + json.dumps({"trades": len(out.trades), "symbol_bars": h.symbol_bars(columns)}))


def count(idiom: str, data: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        out_file = Path(tmp) / "callgrind.out"
        cmd = ["valgrind", "--tool=callgrind", "--collect-atstart=no", f"--toggle-collect={RUN_PHASE}",
               f"--callgrind-out-file={out_file}", sys.executable, __file__, "--child", idiom, "--data", data]
        env = dict(os.environ, TQDM_DISABLE="1", PYTHONHASHSEED="0")
        done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{idiom}: valgrind failed\n{done.stderr[-2000:]}")
        report = json.loads(next(line[6:] for line in done.stdout.splitlines() if line.startswith("CHILD ")))
        text = out_file.read_text()
        total = re.search(r"^(?:summary|totals):\s+(\d+)", text, re.M)
        if total is None:
            raise SystemExit(f"{idiom}: no instruction total in callgrind's output")
    instructions = int(total.group(1))
    return {"instructions": instructions, "per_bar": instructions / report["symbol_bars"], **report}


def main() -> None:
    import accessors

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("idioms", nargs="*", help=f"of {', '.join(accessors.IDIOMS)} (default all)")
    ap.add_argument("--data", default="minute_10x14k")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.data)
        return
    unknown = [name for name in args.idioms if name not in accessors.IDIOMS]
    if unknown:
        raise SystemExit(f"unknown idiom(s) {', '.join(unknown)}; known: {', '.join(accessors.IDIOMS)}")
    results = {}
    print(f"instructions per symbol-bar, run phase ({args.data}; {sys.executable})")
    for name in args.idioms or list(accessors.IDIOMS):
        r = results[name] = count(name, args.data)
        print(f"  {name:<20} {r['per_bar']:8,.0f}  ({r['instructions']:,} in all, trades={r['trades']})", flush=True)
    print("RESULT " + json.dumps(results))


if __name__ == "__main__":
    main()
