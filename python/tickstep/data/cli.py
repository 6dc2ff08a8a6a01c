"""``python -m tickstep data ...``: make sample stores, ingest files, list a store.

Examples
--------
::

    python -m tickstep data sample --symbols 20 --days 100 --out market.duckdb
    python -m tickstep data ingest market.duckdb bars/*.csv --metadata symbols.csv
    python -m tickstep data list market.duckdb
"""

from __future__ import annotations

import argparse
import sys
import time

import pandas as pd

from tickstep.data._columns import DataError
from tickstep.data._resolve import open_store
from tickstep.data._sample import sample

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tickstep data", description="Market data: sample, ingest, list."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = commands.add_parser("sample", help="write seeded, realistic minute bars to a store")
    gen.add_argument("--symbols", type=int, default=20, help="number of symbols (20)")
    gen.add_argument("--days", type=int, default=100, help="number of sessions (100)")
    gen.add_argument("--seed", type=int, default=0, help="random seed (0)")
    gen.add_argument("--freq", default="1min", help="bar length (1min)")
    gen.add_argument(
        "--hours", choices=("regular", "extended", "24h"), default="regular", help="(regular)"
    )
    gen.add_argument("--start", default="2024-01-02", help="first day (2024-01-02)")
    gen.add_argument("--out", required=True, help="store: a DuckDB file or postgresql:// URL")

    ing = commands.add_parser("ingest", help="add CSV/Parquet files of bars to a store")
    ing.add_argument("store", help="a DuckDB file (created if missing) or postgresql:// URL")
    ing.add_argument("files", nargs="*", help="CSV (.csv, .csv.gz) or Parquet files")
    ing.add_argument("--symbol", help="symbol of a single file without a symbol column")
    ing.add_argument("--metadata", help="CSV of symbol metadata (symbol, sector, exchange, ...)")
    ing.add_argument(
        "--replace", action="store_true", help="overwrite conflicting rows instead of refusing"
    )

    lst = commands.add_parser("list", help="symbols in a store with date ranges and bar counts")
    lst.add_argument("store", help="a DuckDB file or postgresql:// URL")
    return parser


def _sample(args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    market = sample(
        args.symbols,
        args.days,
        seed=args.seed,
        freq=args.freq,
        hours=args.hours,
        start=args.start,
    )
    with open_store(args.out, read_only=False) as store:
        added = store.ingest(market)
    elapsed = time.perf_counter() - t0
    print(
        f"wrote {added:,} bars for {len(market.symbols)} symbols to {args.out} "
        f"({market.n_bars:,} generated, {elapsed:.1f} s)"
    )
    return 0


def _ingest(args: argparse.Namespace) -> int:
    if not args.files and not args.metadata:
        print("error: nothing to ingest: give files and/or --metadata", file=sys.stderr)
        return 2
    if args.symbol and len(args.files) != 1:
        print("error: --symbol applies to exactly one file", file=sys.stderr)
        return 2
    conflict = "replace" if args.replace else "refuse"
    with open_store(args.store, read_only=False) as store:
        if args.metadata:
            print(f"metadata for {store.ingest_metadata(args.metadata)} symbols")
        for path in args.files:
            added = store.ingest(path, symbol=args.symbol, on_conflict=conflict)
            print(f"{path}: {added:,} new bars")
    return 0


def _list(args: argparse.Namespace) -> int:
    with open_store(args.store, read_only=True) as store:
        listing = store.symbols()
    if listing.empty:
        print("(no symbols)")
        return 0
    listing = listing.dropna(axis=1, how="all")
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(listing.to_string())
    print(f"{len(listing)} symbols, {int(listing['bars'].sum()):,} bars")
    return 0


def main(argv: list[str]) -> int:
    """Run a ``data`` command; ``argv`` is what follows ``data`` on the command line.

    Returns
    -------
    int
        0 on success, 2 on bad usage or data (the message goes to stderr).
    """
    parser = _parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help and on errors
        return int(exc.code or 0)
    try:
        return {"sample": _sample, "ingest": _ingest, "list": _list}[args.command](args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main(sys.argv[1:]))
