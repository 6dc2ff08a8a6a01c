"""Command line: ``python -m tickstep demo`` and ``python -m tickstep data ...``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

USAGE = """usage: python -m tickstep <command> [options]

commands:
  demo         build a sample market store and run a multi-symbol backtest on it
  data         market data tools (sample, list); see `python -m tickstep data --help`
  strategies   list the strategies registered as plugins
"""


def demo(argv: list[str]) -> int:
    import tickstep
    from tickstep import data

    p = argparse.ArgumentParser(prog="python -m tickstep demo", description=demo.__doc__)
    p.add_argument("--symbols", type=int, default=20, help="number of symbols (default 20)")
    p.add_argument("--days", type=int, default=60, help="trading days of minute bars (default 60)")
    p.add_argument("--store", default=".tickstep-demo/market.duckdb", help="store file to create/reuse")
    p.add_argument("--strategy", default="sma_cross", help="registered strategy name (default sma_cross)")
    args = p.parse_args(argv)

    path = Path(args.store)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    t0 = time.perf_counter()
    store = data.Store(path)
    store.ingest(data.sample(symbols=args.symbols, days=args.days, seed=42))
    store.close()
    print(f"sample store: {path} ({args.symbols} symbols x {args.days} days of minute bars, "
          f"{time.perf_counter() - t0:.2f} s)")

    from tickstep.strategies import load as load_strategy

    strategy = load_strategy(args.strategy)
    t0 = time.perf_counter()
    # Each symbol may take an equal share of equity, so all of them can hold a position.
    bt = tickstep.Backtest(str(path), strategy, cash=1_000_000, commission=0.0002,
                           sizer=tickstep.PercentOfEquity(0.95 / args.symbols),
                           timezone="America/New_York")
    loaded = time.perf_counter() - t0
    bars = bt.market.bar_count()
    t0 = time.perf_counter()
    result = bt.run()
    ran = time.perf_counter() - t0
    print(f"loaded {bars:,} bars of {len(bt.symbols)} symbols in {loaded:.2f} s; "
          f"{strategy.__name__} ran in {ran:.2f} s ({bars / ran / 1e6:.2f} M symbol-bars/s)\n")
    print(result.summary())
    if len(result.trades):
        print("\nlast trades:")
        cols = ["symbol", "side", "size", "entry_time", "exit_time", "entry_price", "exit_price", "pnl"]
        print(result.trades[cols].tail(5).to_string(index=False))
    return 0


demo.__doc__ = "Build a sample store of minute bars and backtest a strategy on it."


def strategies(argv: list[str]) -> int:
    from tickstep.strategies import available

    for name, target in sorted(available().items()):
        print(f"{name:20s} {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "demo":
        return demo(rest)
    if command == "data":
        from tickstep.data.cli import main as data_main

        return data_main(rest)
    if command == "strategies":
        return strategies(rest)
    print(f"unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
