"""``tickstep strategies``, ``tickstep demo`` and ``tickstep serve``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from tickstep.cli._common import UsageError, check_output, dumps

__all__ = ["demo", "serve", "strategies"]


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print names, parameters and docs as JSON.")
def strategies(as_json: bool) -> int:
    """List the registered strategies (entry points of group tickstep.strategies)."""
    from tickstep.service.options import describe_strategies

    infos = describe_strategies()
    if as_json:
        click.echo(dumps(infos))
        return 0
    for info in infos:
        params = ", ".join(f"{k}={v!r}" for k, v in info["parameters"].items())
        click.echo(f"{info['name']:20s} {info['class']}")
        click.echo(f"{'':20s} {params or '(no parameters)'}")
    return 0


def _is_this_demo_store(path: Path, market: Any) -> bool:
    """Whether ``path`` is a store holding exactly this demo's sample (made by an
    earlier ``tickstep demo`` with the same options)."""
    from tickstep import data

    try:
        with data.Store(path, read_only=True) as store:
            listing = store.symbols()
    except Exception:  # not a store at all: certainly not ours
        return False
    counts = {b.symbol: len(b.ts) for b in market.bars}
    have = {str(s): int(n) for s, n in listing["bars"].items()}
    return have == counts


@click.command()
@click.option("--symbols", type=click.IntRange(min=1), default=20, show_default=True,
              help="Number of symbols.")
@click.option("--days", type=click.IntRange(min=1), default=60, show_default=True,
              help="Trading days of minute bars.")
@click.option("--store", default=".tickstep-demo/market.duckdb", show_default=True,
              help="Store file to create (or reuse when an earlier demo made it).")
@click.option("--strategy", default="sma_cross", show_default=True,
              help="Registered strategy name.")
@click.option("--report", default=None,
              help="HTML report of the run to write (default: report.html beside the store; "
                   "'' for none).")
def demo(symbols: int, days: int, store: str, strategy: str, report: str | None) -> int:
    """Build a sample store of minute bars and backtest a strategy on it.

    The store is created if missing and reused if an earlier demo with the same
    --symbols/--days made it. Any other existing file is left untouched: the demo
    refuses rather than overwrite data it did not create.
    """
    import tickstep
    from tickstep import data
    from tickstep.strategies import load as load_strategy

    cls = load_strategy(strategy)
    if report:
        check_output(report, "--report", "report")  # before any work
    path = Path(store)
    t0 = time.perf_counter()
    market = data.sample(symbols=symbols, days=days, seed=42)
    if path.exists():
        if not _is_this_demo_store(path, market):
            raise click.ClickException(
                f"{path} exists and does not hold this demo's sample data; tickstep never "
                "overwrites a file it did not create: give another --store, or remove the "
                "file yourself")
        click.echo(f"sample store: {path} (reused: {symbols} symbols x {days} days of minute bars)")
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with data.Store(path, read_only=False) as created:
                created.ingest(market)
        except BaseException:
            path.unlink(missing_ok=True)  # ours, half-made
            raise
        click.echo(f"sample store: {path} ({symbols} symbols x {days} days of minute bars, "
                   f"{time.perf_counter() - t0:.2f} s)")
    t0 = time.perf_counter()
    # Each symbol may take an equal share of equity, so all of them can hold a position.
    # Equity at every bar: the strategies trade within days, whose drawdowns day-end
    # samples would not see.
    bt = tickstep.Backtest(str(path), cls, cash=1_000_000, commission=0.0002,
                           sizer=tickstep.PercentOfEquity(0.95 / symbols),
                           timezone="America/New_York", record_every_bar=True)
    loaded = time.perf_counter() - t0
    bars = bt.market.bar_count()
    t0 = time.perf_counter()
    result = bt.run()
    ran = time.perf_counter() - t0
    click.echo(f"loaded {bars:,} bars of {len(bt.symbols)} symbols in {loaded:.2f} s; "
               f"{cls.__name__} ran in {ran:.2f} s ({bars / ran / 1e6:.2f} M symbol-bars/s)\n")
    click.echo(result.summary())
    if len(result.trades):
        click.echo("\nlast trades:")
        cols = ["symbol", "side", "size", "entry_time", "exit_time", "entry_price", "exit_price",
                "pnl"]
        click.echo(result.trades[cols].tail(5).to_string(index=False))
    if report is None:
        report = str(path.with_name("report.html"))
    if report:
        target = check_output(report, "--report", "report")
        click.echo(f"\nreport: {result.report(target).resolve()}")
    return 0


@click.command()
@click.option("--data", "-d", metavar="STORE",
              help="Default store of the batches: a DuckDB file or postgresql:// URL.")
@click.option("--data-dir", type=click.Path(file_okay=False, exists=True),
              help="Directory whose stores requests may name (default: the store's directory).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; other than loopback needs TICKSTEP_TOKEN set.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--results", metavar="DB",
              help="Runs database: SQLite file or postgresql:// URL (default: STORE.runs.sqlite).")
@click.option("--dask", "dask_address", metavar="tcp://HOST:PORT",
              help="Run batches on this Dask scheduler's workers instead of local processes.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes per batch (default: cores).")
@click.option("--max-batches", type=click.IntRange(min=1), default=2, show_default=True,
              help="Batches running at once; more wait in the queue.")
@click.option("--max-queue", type=click.IntRange(min=0), default=100, show_default=True,
              help="Batches waiting at most; beyond, submissions get 429.")
@click.option("--max-jobs", type=click.IntRange(min=1), default=100_000, show_default=True,
              help="Jobs (symbol groups x parameter sets) one batch may have.")
@click.option("--max-symbols", type=click.IntRange(min=1), default=5_000, show_default=True,
              help="Symbols one batch may name.")
def serve(data: str | None, data_dir: str | None, host: str, port: int, results: str | None,
          dask_address: str | None, workers: int | None, max_batches: int, max_queue: int,
          max_jobs: int, max_symbols: int) -> int:
    """Serve the backtest HTTP API (OpenAPI page at /docs).

    Every request but /health needs `Authorization: Bearer TOKEN`: the token is
    TICKSTEP_TOKEN, or one generated at the first start, printed once, and kept (hashed)
    in the runs database.
    """
    try:
        from tickstep.service.app import ServiceSettings, run_server
    except ImportError as exc:
        raise click.ClickException(
            f"the service needs its extra: pip install 'tickstep[service]' ({exc})") from None
    if data is None and data_dir is None:
        raise UsageError("give --data STORE and/or --data-dir DIR")
    try:
        settings = ServiceSettings.build(
            store=data, data_dir=data_dir, results=results, host=host, port=port,
            token=os.environ.get("TICKSTEP_TOKEN") or None, dask_address=dask_address,
            workers=workers, max_batches=max_batches, max_queue=max_queue, max_jobs=max_jobs,
            max_symbols=max_symbols)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    run_server(settings)
    return 0
