"""``tickstep run``, ``tickstep batch``, ``tickstep walk-forward`` and ``tickstep runs``."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import click

from tickstep.cli._common import (
    UsageError,
    check_output,
    dumps,
    open_data,
    parse_assignments,
    parse_engine_options,
    parse_symbols,
)

__all__ = ["batch", "run", "runs", "walk_forward"]

_DATA_HELP = "Bars: a DuckDB store file, a postgresql:// URL, or a CSV/Parquet file."
_STRATEGY_HELP = ("STRATEGY: a registered name (see `tickstep strategies`), "
                  "package.module:Class, or path/to/file.py:Class; a Strategy or a "
                  "SignalStrategy (traded in signals mode).")
_OPTION_HELP = ("Engine option NAME=VALUE, repeatable: cash, commission, commission_fixed, "
                "commission_per_unit, commission_min, commission_cap, commission_maker, slippage, trade_on_close, exclusive_orders, leverage, record_every_bar, timezone, "
                "risk_free_rate, on_reject (warn, raise or ignore: what a run with rejected orders "
                "does), stream (a window such as 5D: the bars read from the store window by "
                "window, never held whole).")


def _strategy(text: str) -> tuple[type, str | type]:
    """STRATEGY as given -> (its class, what `run_batch` is handed: the text, or the class
    of a file, which workers cannot import by name)."""
    from tickstep.cli._common import load_strategy

    cls = load_strategy(text)
    return cls, (cls if _is_file(text) else text)


def _is_file(text: str) -> bool:
    return text.rpartition(":")[0].endswith(".py")


def _by_symbol(cls: type) -> tuple[str, ...]:
    """The parameters of ``cls`` that also take one number per symbol (as JSON on the
    command line): a `tickstep.SignalStrategy`'s sizes, stops, time exit and lot size."""
    from tickstep.signals import BY_SYMBOL_PARAMETERS, is_signal_strategy

    return BY_SYMBOL_PARAMETERS if is_signal_strategy(cls) else ()


def _data_options(f: Any) -> Any:
    for decorator in reversed([
        click.option("--data", "-d", required=True, metavar="STORE|FILE", help=_DATA_HELP),
        click.option("--symbols", "-s", multiple=True, metavar="SYM[,SYM...]",
                     help="Symbols to use (all by default); repeatable or comma-separated."),
        click.option("--start", metavar="TIME", help="First time to use (inclusive)."),
        click.option("--end", metavar="TIME", help="Last time to use (inclusive)."),
        click.option("-o", "--option", "options", multiple=True, metavar="NAME=VALUE",
                     help=_OPTION_HELP),
    ]):
        f = decorator(f)
    return f


@click.command()
@click.argument("strategy")
@_data_options
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Strategy parameter, repeatable (read as the type of its default).")
@click.option("--report", type=click.Path(dir_okay=False), help="Write the HTML report here.")
@click.option("--bootstrap", type=click.IntRange(min=1), metavar="N",
              help="Also draw N histories from the daily returns (the stationary "
                   "bootstrap, seed 0) and print the 5%/50%/95% ranges of the figures "
                   "(in the report too; needs tickstep[bootstrap]).")
@click.option("--by-symbol", is_flag=True,
              help="Also print the P&L, trades, payments and exposure of each symbol, and "
                   "the account's interest on its cash (tickstep.report.symbol_breakdown).")
@click.option("--json", "as_json", is_flag=True, help="Print the statistics as JSON.")
def run(strategy: str, data: str, symbols: tuple[str, ...], start: str | None, end: str | None,
        options: tuple[str, ...], params: tuple[str, ...], report: str | None,
        bootstrap: int | None, by_symbol: bool, as_json: bool) -> int:
    """Backtest STRATEGY once: a registered name (see `tickstep strategies`),
    package.module:Class or path/to/file.py:Class; a Strategy, or a SignalStrategy
    (traded in signals mode).

    \b
    Examples:
      tickstep run sma_cross --data market.duckdb -p fast=5 -p slow=20 -o cash=100000
      tickstep run my_signals.py:Cross --data market.duckdb -p fast=10
      tickstep run sma_cross --data market.duckdb --by-symbol
    """
    import tickstep

    cls, _ = _strategy(strategy)
    values = parse_assignments(params, cls.parameters(), what="parameter", lists=False,
                               by_symbol=_by_symbol(cls))
    engine = parse_engine_options(options)
    if report:
        check_output(report, "--report", "report")  # before the backtest runs, not after
    source = open_data(data)
    try:
        t0 = time.perf_counter()
        bt = tickstep.Backtest(source, cls, symbols=parse_symbols(symbols), start=start, end=end,
                               **engine)
        result = bt.run(**values)
        seconds = time.perf_counter() - t0
    finally:
        source.close()
    if report:
        write_report = getattr(result, "report", None)
        if write_report is None:
            raise UsageError("--report: this tickstep has no HTML report yet (Result.report)")
        write_report(report, bootstrap=bootstrap)
    ranges = None
    if bootstrap:
        ranges = result.bootstrap(bootstrap, seed=0).quantile([0.05, 0.5, 0.95]).T
        ranges.columns = ["5%", "50%", "95%"]
    luck = _probabilistic_sharpe(result)
    breakdown = None
    if by_symbol:
        from tickstep.report.tables import symbol_breakdown

        breakdown = symbol_breakdown(result)
    if as_json:
        click.echo(dumps({
            "strategy": strategy,
            "parameters": {**cls.parameters(), **values},
            "symbols": list(bt.symbols),
            "stats": dict(result.stats.items()),
            "probabilistic_sharpe": luck,
            **({"bootstrap": ranges.to_dict(orient="index")} if ranges is not None else {}),
            **({"by_symbol": breakdown.reset_index().to_dict(orient="records"),
                "interest": result.interest} if breakdown is not None else {}),
            "seconds": seconds,
        }))
    else:
        import pandas as pd

        click.echo(result.summary())
        if luck is not None:
            click.echo(f"Probabilistic Sharpe Ratio (true Sharpe > 0): {luck:.4f}")
        if ranges is not None:
            click.echo(f"{bootstrap} bootstrapped histories (blocks of days, seed 0):")
            with pd.option_context("display.width", 160, "display.float_format", "{:.2f}".format):
                click.echo(ranges.to_string())
        if breakdown is not None:
            click.echo("\nby symbol:")
            with pd.option_context("display.width", 200, "display.max_columns", None,
                                   "display.float_format", "{:,.2f}".format):
                click.echo(breakdown.to_string())
            if result.interest != 0:
                click.echo(f"interest on the account's cash (no symbol's): "
                           f"{-result.interest:,.2f} in the P&L")
        if report:
            click.echo(f"report: {report}")
    return 0


def _probabilistic_sharpe(result: Any) -> float | None:
    """The run's probabilistic Sharpe Ratio; None without two daily returns to judge by,
    or when they do not vary."""
    try:
        value = result.probabilistic_sharpe()
    except ValueError:
        return None
    return None if value != value else value


@click.command()
@click.argument("strategy")
@_data_options
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=V1[,V2...]",
              help="Parameter values to try, repeatable; the grid is every combination.")
@click.option("--max-tries", metavar="N|FRACTION",
              help="A random search: N of the grid's parameter sets, or that fraction of "
                   "them (0.25), drawn without replacement (default: every set).")
@click.option("--random-state", type=click.IntRange(min=0), default=0, show_default=True,
              help="The search's seed: the same one draws the same sets.")
@click.option("--method", type=click.Choice(["grid", "optuna"]), default="grid",
              show_default=True,
              help="grid: every set (or --max-tries drawn at random); optuna: a model-based "
                   "search of --max-tries sets, optuna's TPE proposing sets from those run "
                   "(each symbol's own search; needs tickstep[search]).")
@click.option("--round-size", type=click.IntRange(min=1), metavar="N",
              help="With --method optuna: sets proposed at a time (default 8).")
@click.option("--portfolio", is_flag=True,
              help="All symbols in one backtest (default: each symbol alone).")
@click.option("--sequential", is_flag=True, help="Run in this process, one job after another.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: cores).")
@click.option("--by", "maximize", multiple=True, metavar="STATISTIC[:min]",
              help="Statistic the rows are sorted by, best first (default: Sharpe Ratio). "
                   "Repeated: several objectives, each maximised (or ':min' minimised), the "
                   "rows ranked by Pareto front ('Pareto Rank').")
@click.option("--top", type=click.IntRange(min=0), default=10, show_default=True,
              help="Rows to print.")
@click.option("--overfitting", "splits", type=int, metavar="S", default=None,
              help="Keep each run's daily returns and print, for each symbol group, the "
                   "probability that choosing its best set overfits (CSCV over S blocks of "
                   "days, even; 16 is usual): tickstep.significance.backtest_overfitting.")
@click.option("--reality-check", "reality", is_flag=True,
              help="Keep each run's daily returns and print, for each symbol group, whether "
                   "any set beats holding cash once all were tried (Hansen's SPA p-value, "
                   "1,000 draws, seed 0) and the sets StepM names: "
                   "tickstep.significance.reality_check.")
@click.option("--benchmark", "benchmark", metavar="STRATEGY",
              help="With --reality-check: what the sets must beat instead of cash, STRATEGY "
                   "with its defaults run on each group's symbols over the same span and "
                   "options (buy_and_hold: holding them).")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write every row to a .parquet, .csv or .json file.")
@click.option("--results", metavar="DB",
              help="Also store every run in this database (SQLite file or postgresql:// URL).")
@click.option("--returns", "keep_returns", is_flag=True,
              help="With --results: store each run's daily returns too (as --overfitting and "
                   "--reality-check do), to judge the batch later or beat it "
                   "(`tickstep runs --batch ID --reality-check [--benchmark-batch ID]`).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the results cache.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bar on stderr (default: when stderr is a terminal).")
def batch(strategy: str, data: str, symbols: tuple[str, ...], start: str | None, end: str | None,
          options: tuple[str, ...], params: tuple[str, ...], max_tries: str | None,
          random_state: int, method: str, round_size: int | None, portfolio: bool,
          sequential: bool,
          workers: int | None, maximize: tuple[str, ...], top: int, splits: int | None,
          reality: bool, benchmark: str | None, out: str | None, results: str | None,
          keep_returns: bool, no_cache: bool, progress: bool | None) -> int:
    """Backtest STRATEGY over symbols x a parameter grid, in parallel, cached. STRATEGY
    as for `tickstep run`; a SignalStrategy's grid runs in one native call on all cores.

    \b
    Example:
      tickstep batch sma_cross --data market.duckdb -p fast=5,10,20 -p slow=30,60 \\
          --out rows.parquet --results runs.sqlite
    """
    import pandas as pd

    from tickstep.batch import run_batch

    cls, handed = _strategy(strategy)
    grid = parse_assignments(params, cls.parameters(), what="parameter", lists=True,
                             by_symbol=_by_symbol(cls))
    engine = parse_engine_options(options)
    if out and Path(out).suffix.lower() not in (".parquet", ".csv", ".json"):
        raise UsageError(f"--out {out!r}: the file must end in .parquet, .csv or .json")
    if out:
        check_output(out, "--out", "rows")
    if not data.startswith(("postgresql://", "postgres://")) and not Path(data).exists():
        raise UsageError(f"--data {data!r}: no such file")
    tries = _max_tries(max_tries)
    objectives = _objectives(maximize)
    if splits is not None:
        _check_splits(splits)  # refused before anything runs
    if benchmark is not None and not reality:
        raise UsageError("--benchmark is what --reality-check's sets must beat: give both")
    if keep_returns and not results:
        raise UsageError("--returns stores the runs' daily returns with --results DB: give both")
    kept = splits is not None or reality or keep_returns
    held = None
    if benchmark is not None:
        try:
            held = _strategy(benchmark)[1]
        except UsageError as exc:
            raise UsageError(f"--benchmark: {exc.message}") from None
    rows = run_batch(
        handed, data, params=grid or None, max_tries=tries, random_state=random_state,
        method=method, round_size=round_size, symbols=parse_symbols(symbols),
        portfolio=portfolio,
        maximize=objectives, executor="sequential" if sequential else None, max_workers=workers,
        cache=not no_cache, progress=progress, start=start, end=end,
        returns=kept, **engine,
    )
    info = rows.attrs.get("batch", {})
    if splits is not None:
        _print_overfitting(rows, splits)
    if reality:
        against = None
        if held is not None:
            against = run_batch(
                held, data, symbols=parse_symbols(symbols), portfolio=portfolio,
                executor="sequential" if sequential else None, max_workers=workers,
                cache=not no_cache, progress=False, start=start, end=end, returns=True,
                **engine)
        _print_reality_check(rows, list(grid), against, f"--benchmark {benchmark}",
                             benchmark or "cash")
    if out:
        from tickstep.significance import DAILY_RETURNS

        # A Series a row: for Python and the runs database, not files.
        _write_rows(rows.drop(columns=DAILY_RETURNS) if kept else rows, Path(out))
    if results:
        from tickstep.service.rows import frame_rows, jsonable
        from tickstep.service.runs import RunsDB

        db = RunsDB(results)
        try:
            batch_id = uuid.uuid4().hex[:16]
            request = {"strategy": strategy, "data": data, "params": grid,
                       "max_tries": tries, "random_state": random_state, "method": method,
                       "round_size": round_size,
                       "symbols": parse_symbols(symbols), "portfolio": portfolio,
                       "maximize": objectives, "returns": kept,
                       "options": engine, "start": start, "end": end, "source": "cli"}
            db.create_batch(batch_id, strategy, jsonable(request), total=len(rows),
                            status="running")
            db.add_runs(batch_id, strategy, frame_rows(rows, list(grid)))
            db.update_batch(batch_id, status="done", jobs_done=len(rows),
                            jobs_cached=int(info.get("cached", 0)), started=True, finished=True)
        finally:
            db.close()
    ranked_by = ([objectives] if isinstance(objectives, str)
                 else [*objectives, "Pareto Rank"])
    shown = [c for c in rows.columns if c in grid] + [
        "symbols", *ranked_by, "Return [%]", "# Trades", "status"]
    shown = list(dict.fromkeys(c for c in shown if c in rows.columns))
    if top:
        with pd.option_context("display.width", 160, "display.max_columns", 20):
            click.echo(rows[shown].head(top).to_string())
    failed = int((rows["status"] != "ok").sum())
    summary = (f"{info.get('jobs', len(rows))} jobs ({info.get('cached', 0)} from the cache, "
               f"{info.get('ran', len(rows))} ran, {failed} failed) in "
               f"{info.get('seconds', float('nan')):.2f} s")
    if out:
        summary += f"; rows in {out}"
    if results:
        summary += f"; stored as batch {batch_id} in {results}"
    click.echo(summary, err=True)
    return 1 if failed == len(rows) else 0


def _check_splits(splits: int) -> None:
    """``--overfitting S`` by the statistic's own rule, else a usage error."""
    from tickstep.significance import check_splits

    try:
        check_splits(splits)
    except ValueError as exc:
        raise UsageError(f"--overfitting {splits}: {str(exc).split(': ', 1)[1]}") from None


def _print_overfitting(rows: Any, splits: int) -> None:
    """Each symbol group's probability of backtest overfitting, a line each (to stdout,
    before the rows); a group that cannot be judged (fewer than two sets that ran, too few
    days for the blocks) says why."""

    from tickstep.significance import backtest_overfitting

    for label in dict.fromkeys(rows["symbols"]):
        group = rows[(rows["symbols"] == label) & (rows["status"] == "ok")]
        try:
            found = backtest_overfitting(group, splits)
        except ValueError as exc:
            click.echo(f"{label}: overfitting not judged: {exc}")
            continue
        click.echo(
            f"{label}: probability of backtest overfitting {found.probability:.3f} "
            f"({found.trials} sets, {len(found.logits):,} splits of {found.splits} blocks); "
            f"the set chosen in sample: median Sharpe Ratio {found.medians[0]:.2f} "
            f"in sample, {found.medians[1]:.2f} out; a loss out of sample in "
            f"{found.loss_probability:.0%} of splits")


def _print_reality_check(rows: Any, parameters: list[str], against: Any = None,
                         source: str = "", beaten: str = "cash") -> None:
    """Each symbol group's reality check, a line each (to stdout, before the rows): the
    SPA p-value and the sets StepM names (by their parameters); a group that cannot be
    tested says why. Against cash, or each group's run among the rows ``against`` (with
    their returns; ``source`` names them in a refusal, ``beaten`` in the line)."""
    from tickstep.service.luck import group_benchmark
    from tickstep.significance import reality_check

    for label in dict.fromkeys(rows["symbols"]):
        group = rows[(rows["symbols"] == label) & (rows["status"] == "ok")]
        try:
            base = 0.0 if against is None or group.empty else group_benchmark(
                against[against["status"] == "ok"], group, source)
            found = reality_check(group, base)
        except ValueError as exc:
            click.echo(f"{label}: reality check not made: {exc}")
            continue
        named = ["(" + ", ".join(f"{p}={group.loc[job, p]}" for p in parameters) + ")"
                 for job in found.superior]
        click.echo(
            f"{label}: reality check p-value {found.pvalue:.3f} that no set beats {beaten} "
            f"({found.trials} sets, {found.days} days, Hansen's SPA); StepM at 5% names "
            + (", ".join(named) if named else "none"))


def _objectives(given: tuple[str, ...]) -> str | dict[str, str]:
    """``--by`` as ``maximize=``: one statistic (Sharpe Ratio if none), or several, each
    ``STATISTIC`` or ``STATISTIC:max|min`` (a statistic's name holds no colon)."""
    if not given:
        return "Sharpe Ratio"
    if len(given) == 1 and ":" not in given[0]:
        return given[0]
    directions: dict[str, str] = {}
    for text in given:
        name, _, direction = text.rpartition(":") if ":" in text else (text, "", "max")
        if direction not in ("max", "min"):
            raise UsageError(f"--by {text!r}: a statistic, or STATISTIC:max or STATISTIC:min")
        if name in directions:
            raise UsageError(f"--by {name!r} is given twice")
        directions[name] = direction
    return directions


@click.command("walk-forward")
@click.argument("strategy")
@_data_options
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=V1[,V2...]",
              help="Parameter values to try on each train window, repeatable; the grid is "
                   "every combination.")
@click.option("--train", required=True, metavar="SPAN",
              help="Train window length: a duration such as 365D or 6h.")
@click.option("--test", "test_span", required=True, metavar="SPAN",
              help="Test window length; test windows follow each other without overlap.")
@click.option("--warmup", metavar="SPAN",
              help="Bars before each window fed to indicators, the strategy not called.")
@click.option("--anchored", is_flag=True,
              help="Train windows all start at the first one's start (growing).")
@click.option("--by", "maximize", default="Sharpe Ratio", show_default=True,
              help="Statistic chosen on each train window, best first.")
@click.option("--max-tries", metavar="N|FRACTION",
              help="A random search of the grid on each train window (as for batch).")
@click.option("--random-state", type=click.IntRange(min=0), default=0, show_default=True,
              help="The search's seed.")
@click.option("--method", type=click.Choice(["grid", "optuna"]), default="grid",
              show_default=True,
              help="As for batch, on each train window (optuna: --max-tries sets by a "
                   "model-based search).")
@click.option("--round-size", type=click.IntRange(min=1), metavar="N",
              help="With --method optuna: sets proposed at a time (default 8).")
@click.option("--sequential", is_flag=True, help="Run in this process, one job after another.")
@click.option("--workers", type=click.IntRange(min=1), help="Worker processes (default: cores).")
@click.option("--no-cache", is_flag=True, help="Neither read nor write the results cache.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Write the windows table to a .parquet, .csv or .json file.")
@click.option("--plot", type=click.Path(dir_okay=False),
              help="Write the out-of-sample equity's figure here (HTML).")
@click.option("--report", type=click.Path(dir_okay=False),
              help="Write the walk-forward's HTML report here (statistics, windows, figures).")
@click.option("--json", "as_json", is_flag=True, help="Print the windows and statistics as JSON.")
def walk_forward(strategy: str, data: str, symbols: tuple[str, ...], start: str | None,
                 end: str | None, options: tuple[str, ...], params: tuple[str, ...], train: str,
                 test_span: str, warmup: str | None, anchored: bool, maximize: str,
                 max_tries: str | None, random_state: int, method: str,
                 round_size: int | None, sequential: bool,
                 workers: int | None, no_cache: bool, out: str | None, plot: str | None,
                 report: str | None, as_json: bool) -> int:
    """Walk-forward optimisation of STRATEGY (as for `tickstep run`): on each train window
    the grid runs and the best set by --by is chosen, then trades the next test window;
    the out-of-sample windows are stitched. With -o stream=SPAN every run streams its
    window's bars from the store.

    \b
    Example:
      tickstep walk-forward sma_cross --data market.duckdb -p fast=5,10 -p slow=30,60 \\
          --train 365D --test 90D --warmup 60D --by "Return [%]" --out windows.csv
    """
    import pandas as pd

    import tickstep

    cls, _ = _strategy(strategy)
    grid = parse_assignments(params, cls.parameters(), what="parameter", lists=True,
                             by_symbol=_by_symbol(cls))
    if not grid:
        raise UsageError("walk-forward needs at least one parameter to vary: -p NAME=V1,V2")
    engine = parse_engine_options(options)
    if out and Path(out).suffix.lower() not in (".parquet", ".csv", ".json"):
        raise UsageError(f"--out {out!r}: the file must end in .parquet, .csv or .json")
    for path, flag, what in ((out, "--out", "windows"), (plot, "--plot", "figure"),
                             (report, "--report", "report")):
        if path:
            check_output(path, flag, what)  # before the runs, not after
    tries = _max_tries(max_tries)
    source = open_data(data)
    try:
        bt = tickstep.Backtest(source, cls, symbols=parse_symbols(symbols), start=start, end=end,
                               **engine)
        wf = bt.walk_forward(train=train, test=test_span, warmup=warmup, anchored=anchored,
                             maximize=maximize, max_tries=tries, random_state=random_state,
                             method=method, round_size=round_size, executor="sequential" if sequential else None,
                             max_workers=workers, cache=not no_cache, **grid)
    finally:
        source.close()
    windows = wf.windows
    if out:
        _write_rows(windows, Path(out))
    if plot:
        wf.plot().write_html(plot, include_plotlyjs=True)
    if report:
        wf.report(report)
    if as_json:
        click.echo(dumps({
            "strategy": strategy,
            "windows": windows.reset_index().to_dict(orient="records"),
            "stats": dict(wf.stats.items()),
        }))
        return 0
    shown = ["test_start", "test_end", *grid, "in_sample", "out_of_sample", "Return [%]",
             "# Trades"]
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        click.echo(windows[[c for c in shown if c in windows.columns]].to_string())
    click.echo(wf.summary())
    for path, what in ((out, "windows"), (plot, "figure"), (report, "report")):
        if path:
            click.echo(f"{what}: {path}")
    return 0


def _write_rows(rows: Any, path: Path) -> None:
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        rows.to_parquet(path)
    elif suffix == ".csv":
        rows.to_csv(path)
    else:
        path.write_text(dumps(rows.reset_index().to_dict(orient="records")))


@click.command()
@click.option("--results", metavar="DB",
              help="The runs database (SQLite file or postgresql:// URL).")
@click.option("--data", "-d", metavar="STORE",
              help="Or the store whose runs database sits beside it (STORE.runs.sqlite).")
@click.option("--strategy", help="Only runs of this strategy.")
@click.option("--batch", "batch_id", help="Only runs of this batch.")
@click.option("--since", help="Only runs created since: a date, 'today', or a span like 7d.")
@click.option("--by", "order_by", help="Sort by this statistic or column, best first "
              "(default: newest first).")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many rows.")
@click.option("--per-strategy", is_flag=True,
              help="One row per strategy: run count, average of --by (default Return [%]) "
                   "and average calculation time.")
@click.option("--overfitting", "splits", type=int, metavar="S", default=None,
              help="With --batch (one that kept its runs' daily returns): print each symbol "
                   "group's probability of backtest overfitting (CSCV over S blocks of days), "
                   "as `tickstep batch --overfitting` does.")
@click.option("--reality-check", "reality", is_flag=True,
              help="With --batch (one that kept its runs' daily returns): print each symbol "
                   "group's reality check against cash, as `tickstep batch --reality-check`.")
@click.option("--benchmark-batch", "benchmark_batch", metavar="ID",
              help="With --reality-check: what the sets must beat instead of cash, the run "
                   "of each group's symbols in the stored batch ID (e.g. a buy_and_hold "
                   "batch of the same symbols and span that kept its returns).")
@click.option("--batches", "list_batches", is_flag=True,
              help="One row per stored batch, newest first (with --strategy, --since, --top): "
                   "its id (for --batch), strategy, status, jobs, failed runs, whether it "
                   "kept its returns.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def runs(results: str | None, data: str | None, strategy: str | None, batch_id: str | None,
         since: str | None, order_by: str | None, top: int, per_strategy: bool,
         splits: int | None, reality: bool, benchmark_batch: str | None, list_batches: bool,
         as_json: bool) -> int:
    """Query stored runs (from `tickstep batch --results` and the service).

    \b
    Examples:
      tickstep runs --results runs.sqlite --top 5 --by "Sharpe Ratio"
      tickstep runs --results runs.sqlite --per-strategy --since 7d
      tickstep runs --results runs.sqlite --batches --since 7d
      tickstep runs --results runs.sqlite --batch ID --overfitting 16 --reality-check
    """
    import pandas as pd

    from tickstep.service.runs import RunsDB, default_runs_path, since_text

    if (results is None) == (data is None):
        raise UsageError("give --results DB or --data STORE (its runs database sits beside it)")
    target = results or str(default_runs_path(data))
    if not target.startswith(("postgresql://", "postgres://")) and not Path(target).exists():
        raise UsageError(f"no runs database at {target!r}")
    try:
        when = since_text(since) if since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    judging = splits is not None or reality
    if judging and (batch_id is None or per_strategy or as_json):
        raise UsageError("--overfitting and --reality-check judge one batch: give --batch ID "
                         "(without --per-strategy or --json)")
    if list_batches and (batch_id or order_by or per_strategy or judging):
        raise UsageError("--batches lists batches: with --strategy, --since, --top and --json "
                         "only")
    if splits is not None:
        _check_splits(splits)
    if benchmark_batch is not None and not reality:
        raise UsageError("--benchmark-batch is what --reality-check's sets must beat: give "
                         "both")
    from sqlalchemy.exc import DatabaseError

    try:
        db = RunsDB(target)
    except DatabaseError as exc:
        raise UsageError(f"--results {target!r} is not a runs database ({exc.orig})") from None
    try:
        if judging:
            _judge_stored(db, str(batch_id), splits, reality, benchmark_batch)
        try:
            if list_batches:
                found = _stored_batches(db, strategy, when, top)
            elif per_strategy:
                found = db.summary(since=when, order_by=order_by or "Return [%]", limit=top)
            else:
                found = db.query_runs(strategy=strategy, batch_id=batch_id, since=when,
                                      order_by=order_by, limit=top)
        except ValueError as exc:
            raise UsageError(f"--by: {exc}") from None
        except DatabaseError as exc:
            raise UsageError(f"--results {target!r} is not a runs database ({exc.orig})") from None
    finally:
        db.close()
    if as_json:
        click.echo(dumps(found))
        return 0
    if not found:
        click.echo("(no batches)" if list_batches else "(no runs)")
        return 0
    frame = pd.DataFrame(found)
    if not (per_strategy or list_batches):
        by_col = RunsDB.column_of(order_by) if order_by else None
        cols = ["run_id", "strategy", "parameters", "symbols", "return_pct", "sharpe_ratio",
                "trades", "calc_ms", "status", "created"]
        if by_col and by_col not in cols:
            cols.insert(4, by_col)
        frame = frame[[c for c in cols if c in frame.columns]]
        frame["parameters"] = frame["parameters"].map(
            lambda p: ",".join(f"{k}={v}" for k, v in p.items()))
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.max_colwidth", 40):
        click.echo(frame.to_string(index=False))
    return 0


def _stored_batches(db: Any, strategy: str | None, since: Any, top: int) -> list[dict[str, Any]]:
    """The stored batches, newest first, a row each (as `GET /batches` lists them)."""
    stored = db.query_batches(strategy=strategy, since=since, limit=top)
    troubles = db.troubles_of([b["batch_id"] for b in stored])
    return [{"batch_id": b["batch_id"], "strategy": b["strategy"], "status": b["status"],
             "jobs_done": b["jobs_done"], "jobs_total": b["jobs_total"],
             "jobs_failed": troubles.get(b["batch_id"], (0, 0, 0))[0],
             "returns": bool(b["request"].get("returns")), "created": b["created"]}
            for b in stored]


def _judge_stored(db: Any, batch_id: str, splits: int | None, reality: bool,
                  benchmark_batch: str | None = None) -> None:
    """A stored batch's luck, printed as `batch` prints a batch's it just ran: its rows
    read back with their daily returns (`tickstep.service.luck.batch_rows`)."""
    from tickstep.report.pareto import parameter_columns

    rows = _stored_rows(db, batch_id, "--batch")
    against, beaten = None, "cash"
    if benchmark_batch is not None:
        against = _stored_rows(db, benchmark_batch, "--benchmark-batch")
        beaten = f"{db.batch(benchmark_batch)['strategy']} (batch {benchmark_batch})"
    if splits is not None:
        _print_overfitting(rows, splits)
    if reality:
        _print_reality_check(rows, parameter_columns(rows), against,
                             f"--benchmark-batch {benchmark_batch}", beaten)


def _stored_rows(db: Any, batch_id: str, option: str) -> Any:
    """A stored batch's rows with their daily returns, if it is done and kept them; else
    refused naming ``option``."""
    from tickstep.service.luck import batch_rows

    stored = db.batch(batch_id)
    if stored is None:
        raise UsageError(f"{option} {batch_id!r}: no such batch in the runs database")
    if not stored["request"].get("returns"):
        raise UsageError(f"{option} {batch_id!r} kept no daily returns: run it again with "
                         "--overfitting or --reality-check (or over HTTP with \"returns\": "
                         "true) and --results")
    if stored["status"] != "done":
        raise UsageError(f"{option} {batch_id!r} is {stored['status']}: a choice is judged "
                         "among all its sets, when it is done")
    return batch_rows(db, batch_id)


def _max_tries(text: str | None) -> int | float | None:
    """``--max-tries`` as `run_batch` takes it: digits alone are a number of sets, a
    number with a point a fraction (its range is `sample_sets`'s to check)."""
    from tickstep import ConfigError
    from tickstep.batch import sample_sets

    if text is None:
        return None
    try:
        tries = float(text) if any(c in text for c in ".eE") else int(text)
        sample_sets([], tries)  # its rule, checked before any data is read
    except ConfigError as exc:  # a ValueError too: first
        raise UsageError(f"--max-tries {text!r}: {exc}") from None
    except ValueError:
        raise UsageError(f"--max-tries {text!r}: a whole number of parameter sets, or a "
                         "fraction of the grid such as 0.25") from None
    return tries
