"""``tickstep data sample|ingest|list``: make sample stores, ingest files, list a store.

Examples
--------
::

    tickstep data sample --symbols 20 --days 100 --out market.duckdb
    tickstep data ingest market.duckdb bars/*.csv --metadata symbols.csv
    tickstep data ingest market.duckdb zones.parquet --records zones
    tickstep data list market.duckdb
"""

from __future__ import annotations

import time

import click

from tickstep.cli._common import UsageError, writable_store

__all__ = ["data"]


@click.group()
def data() -> None:
    """Market data: sample stores, ingest files, list a store."""


@data.command()
@click.option("--symbols", type=click.IntRange(min=1), default=20, show_default=True,
              help="Number of symbols.")
@click.option("--days", type=click.IntRange(min=1), default=100, show_default=True,
              help="Number of sessions.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--freq", default="1min", show_default=True, help="Bar length.")
@click.option("--hours", type=click.Choice(["regular", "extended", "24h"]), default="regular",
              show_default=True, help="Trading hours of the bars.")
@click.option("--start", default="2024-01-02", show_default=True, help="First day.")
@click.option("--out", required=True, metavar="STORE",
              help="Store to write: a DuckDB file or postgresql:// URL.")
def sample(symbols: int, days: int, seed: int, freq: str, hours: str, start: str, out: str) -> int:
    """Write seeded, realistic minute bars to a store."""
    from tickstep.data import sample as make_sample

    t0 = time.perf_counter()
    market = make_sample(symbols, days, seed=seed, freq=freq, hours=hours, start=start)
    with writable_store(out, "--out") as store:
        added = store.ingest(market)
    click.echo(f"wrote {added:,} bars for {len(market.symbols)} symbols to {out} "
               f"({market.n_bars:,} generated, {time.perf_counter() - t0:.1f} s)")
    return 0


@data.command()
@click.argument("store")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option("--symbol", help="Symbol of a single file without a symbol column.")
@click.option("--metadata", type=click.Path(exists=True, dir_okay=False),
              help="CSV of symbol metadata (symbol, sector, exchange, ...).")
@click.option("--replace", is_flag=True, help="Overwrite conflicting rows instead of refusing.")
@click.option("--records", "table", metavar="TABLE",
              help="FILES are records of the analysis table TABLE (e.g. zones), not bars.")
def ingest(store: str, files: tuple[str, ...], symbol: str | None, metadata: str | None,
           replace: bool, table: str | None) -> int:
    """Add CSV/Parquet FILES of bars (or, with --records, of an analysis table) to STORE
    (a DuckDB file, created if missing, or a postgresql:// URL)."""
    if not files and not metadata:
        raise UsageError("nothing to ingest: give files and/or --metadata")
    if symbol and len(files) != 1:
        raise UsageError("--symbol applies to exactly one file")
    on_conflict = "replace" if replace else "refuse"
    with writable_store(store, "STORE") as opened:
        if metadata:
            click.echo(f"metadata for {opened.ingest_metadata(metadata)} symbols")
        for path in files:
            if table is not None:
                added = opened.ingest_records(table, path, symbol=symbol, on_conflict=on_conflict)
                click.echo(f"{path}: {added:,} new records in {table}")
                continue
            added = opened.ingest(path, symbol=symbol, on_conflict=on_conflict)
            click.echo(f"{path}: {added:,} new bars")
    return 0


@data.command(name="list")
@click.argument("store")
def list_(store: str) -> int:
    """Symbols in STORE with date ranges and bar counts, then its analysis tables."""
    import pandas as pd

    from tickstep.data import open_store

    with open_store(store, read_only=True) as opened:
        listing = opened.symbols()
        tables = opened.record_tables() if hasattr(opened, "record_tables") else None
    if listing.empty:
        click.echo("(no symbols)")
        return 0
    listing = listing.dropna(axis=1, how="all")
    with pd.option_context("display.max_rows", None, "display.width", 200):
        click.echo(listing.to_string())
    click.echo(f"{len(listing)} symbols, {int(listing['bars'].sum()):,} bars")
    if tables is not None and len(tables):
        click.echo("\nanalysis tables (records):")
        with pd.option_context("display.max_colwidth", 80, "display.width", 200):
            click.echo(tables.to_string())
    return 0
