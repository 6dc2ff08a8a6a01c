"""What ranking a batch's rows by several objectives costs: ``python benches/pareto.py
[--repeat 5]``.

1. `tickstep.batch.objectives.pareto_ranks` alone on random points (normal, seed 0) of
   two and three objectives, 1,000 / 10,000 / 50,000 sets: median seconds and the
   fronts found.
2. A whole `Backtest.optimize` (``SmaCross`` over ``example_daily()``, the 1,850 sets of
   ``benches/search.py``'s grid, answered from a results cache warmed first, so that
   what differs is the ranking) by one objective and by two, alternating: median
   seconds of each, and their difference.

Prints a line per figure and a ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import warnings

import numpy as np

SIZES = (1_000, 10_000, 50_000)
RANGES = {"fast": range(2, 40), "slow": range(10, 120, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed calls per figure (median)")
    args = parser.parse_args()

    import tickstep
    from tickstep.batch.cache import ResultsCache
    from tickstep.batch.objectives import pareto_ranks
    from tickstep.strategies import SmaCross

    result: dict[str, object] = {"workload": "pareto", "repeat": args.repeat}
    ranks: dict[str, dict[str, float]] = {}
    for k in (2, 3):
        for n in SIZES:
            points = np.random.default_rng(0).normal(size=(n, k))
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                found = pareto_ranks(points)
                times.append(time.perf_counter() - t)
            seconds = statistics.median(times)
            fronts = int(np.nanmax(found))
            ranks[f"{k}x{n}"] = {"seconds": seconds, "fronts": fronts}
            print(f"pareto_ranks  {k} objectives  {n:>6,} sets  {seconds * 1000:9.2f} ms  "
                  f"({fronts} fronts)")
    result["pareto_ranks"] = ranks

    warnings.simplefilter("ignore", tickstep.TickstepWarning)
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    with tempfile.TemporaryDirectory() as folder:
        cache = ResultsCache(f"{folder}/cache.sqlite")

        def optimize(maximize):
            t = time.perf_counter()
            rows = bt.optimize(cache=cache, constraint=lambda p: p.fast < p.slow, **RANGES,
                               maximize=maximize, progress=False)
            return time.perf_counter() - t, rows

        optimize("Sharpe Ratio")  # warms the cache: the calls below run no backtest
        one, two = [], []
        for _ in range(args.repeat):
            one.append(optimize("Sharpe Ratio")[0])
            seconds, rows = optimize(["Sharpe Ratio", "Max. Drawdown [%]"])
            two.append(seconds)
        cache.close()
    fronts = int(rows["Pareto Rank"].max())
    print(f"optimize, {len(rows):,} sets from the cache: one objective "
          f"{statistics.median(one) * 1000:.1f} ms, two {statistics.median(two) * 1000:.1f} ms "
          f"({fronts} fronts)")
    result["optimize_cached"] = {"sets": len(rows), "one_objective_s": statistics.median(one),
                                 "two_objectives_s": statistics.median(two), "fronts": fronts}
    print("RESULT " + json.dumps(result))


if __name__ == "__main__":
    main()
