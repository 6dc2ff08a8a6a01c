"""What a model-based parameter search finds, against a random draw of as many sets and
the whole grid: ``python benches/search.py [--tries 40] [--seeds 5]``.

The workload: ``SmaCross`` over ``tickstep.data.example_daily()`` (one portfolio of its
symbols), ``fast`` in 2..39 and ``slow`` in 10..118 by 2, ``fast < slow``: 1,850 sets. The
whole grid runs once (its wall time, every set's Sharpe Ratio); then, for each seed, a
random draw of ``--tries`` sets (``max_tries``) and a search of as many
(``method="optuna"``), each timed as one ``Backtest.optimize`` call (no results cache).
Printed per seed: the best Sharpe Ratio each found and its rank among the grid's 1,850
(1 is the grid's best); then the medians, and a ``RESULT {json}`` line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

import numpy as np

RANGES = {"fast": range(2, 40), "slow": range(10, 120, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tries", type=int, default=40, help="sets each search runs")
    parser.add_argument("--seeds", type=int, default=5, help="seeds (random_state 0..n-1)")
    args = parser.parse_args()

    import tickstep
    from tickstep.strategies import SmaCross

    warnings.simplefilter("ignore", tickstep.TickstepWarning)
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)

    def optimize(**search):
        t = time.perf_counter()
        rows = bt.optimize(cache=False, constraint=lambda p: p.fast < p.slow, **RANGES,
                           **search)
        return rows, time.perf_counter() - t

    grid, grid_s = optimize()
    values = np.sort(grid["Sharpe Ratio"].dropna().to_numpy())[::-1]

    def rank(best: float) -> int:
        return int(np.searchsorted(-values, -best, side="left")) + 1

    print(f"grid: {len(grid)} sets in {grid_s:.2f} s; best Sharpe Ratio {values[0]:.4f}")
    found: dict[str, list[int]] = {"random": [], "optuna": []}
    seconds: dict[str, list[float]] = {"random": [], "optuna": []}
    for seed in range(args.seeds):
        line = [f"seed {seed}:"]
        for name, search in (("random", {}), ("optuna", {"method": "optuna"})):
            rows, s = optimize(max_tries=args.tries, random_state=seed, **search)
            best = float(rows["Sharpe Ratio"].iloc[0])
            found[name].append(rank(best))
            seconds[name].append(s)
            line.append(f"{name} {best:.4f} (rank {rank(best)}, {s:.2f} s)")
        print("  ".join(line))
    summary = {
        "sets": len(grid), "tries": args.tries, "grid_seconds": grid_s,
        **{f"{n}_median_rank": statistics.median(found[n]) for n in found},
        **{f"{n}_median_seconds": statistics.median(seconds[n]) for n in seconds},
        "ranks": found,
    }
    print(f"median rank of the best set found: random {summary['random_median_rank']}, "
          f"optuna {summary['optuna_median_rank']} (of {len(grid)}); median seconds: random "
          f"{summary['random_median_seconds']:.2f}, optuna {summary['optuna_median_seconds']:.2f}")
    print("RESULT " + json.dumps(summary))


if __name__ == "__main__":
    main()
