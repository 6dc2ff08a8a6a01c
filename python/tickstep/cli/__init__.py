"""The command line: ``tickstep COMMAND`` (or ``python -m tickstep COMMAND``).

Commands: ``run`` (one backtest), ``batch`` (a strategy over symbols x a parameter grid),
``runs`` (query stored runs), ``serve`` (the HTTP service), ``data sample|ingest|list``,
``strategies``, ``demo``. ``tickstep COMMAND --help`` describes each.

Errors print one line (``error: ...``) on stderr and exit non-zero: 2 for a bad command
line, 1 for anything else (``--debug`` shows the traceback); a strategy's own exception
keeps its type and the note saying where it was raised (symbol and time). tickstep's
warnings (rejected orders, a batch's failed runs) print as ``warning: ...`` on stderr,
without the source line Python would show (which, here, is the command line library's).
Output piped into a command that stops reading (``tickstep data list | head``) ends
quietly.
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import click

from tickstep.cli.backtests import batch, run, runs, walk_forward
from tickstep.cli.data import data
from tickstep.cli.misc import demo, serve, strategies

__all__ = ["cli", "main"]

# Click's own code for a closed pipe (it quiets the streams and exits 1); ours matches.
EXIT_PIPE_CLOSED = 1


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="tickstep", prog_name="tickstep")
@click.option("--debug", is_flag=True, help="Show the full traceback of an error.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """tickstep: event-driven multi-symbol backtesting.

    \b
    Examples:
      tickstep data sample --symbols 5 --days 20 --out market.duckdb
      tickstep run sma_cross --data market.duckdb -p fast=5 -p slow=20
      tickstep batch rsi_mean_reversion --data market.duckdb -p oversold=25,30 --results runs.sqlite
      tickstep walk-forward sma_cross --data market.duckdb -p fast=5,10 --train 365D --test 90D
      tickstep runs --results runs.sqlite --top 5 --by "Sharpe Ratio"
      tickstep serve --data market.duckdb
    """
    ctx.ensure_object(dict)["debug"] = debug


for command in (run, batch, walk_forward, runs, serve, data, strategies, demo):
    cli.add_command(command)


def _quiet_stdout() -> None:
    # The reader is gone: point stdout at /dev/null so the interpreter's final flush
    # does not raise again at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 failed, 2 bad usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args[:1] or os.environ.get("TICKSTEP_DEBUG") == "1"
    try:
        try:
            with warnings.catch_warnings():
                warnings.showwarning = _show_warning
                code = cli.main(args=args, prog_name="tickstep", standalone_mode=False)
        finally:
            sys.stdout.flush()
        return code if isinstance(code, int) else 0
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_PIPE_CLOSED
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except SystemExit as exc:  # click's exit after a closed pipe
        return exc.code if isinstance(exc.code, int) else 1
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except (click.Abort, KeyboardInterrupt):
        click.echo("interrupted", err=True)
        return 130
    except Exception as exc:  # one line for the user; --debug for the whole story
        if debug:
            raise
        click.echo(f"error: {_one_line(exc)}", err=True)
        return 1


_python_showwarning = warnings.showwarning


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """tickstep's warnings as ``warning: ...`` (what a user of the command line can act
    on); any other as Python shows it."""
    from tickstep.rejections import TickstepWarning

    if issubclass(category, TickstepWarning):
        click.echo(f"warning: {message}", err=True)
    else:
        _python_showwarning(message, category, filename, lineno, file, line)


def _one_line(exc: BaseException) -> str:
    from tickstep import TickstepError
    from tickstep.data import DataError
    from tickstep.strategies import UnknownStrategyError

    text = str(exc).strip()
    if isinstance(exc, UnknownStrategyError):
        return text
    # A strategy's own exception (the core notes where it was raised): its type, message
    # and that note, whatever its type, so nothing the user needs is left out.
    notes = [n.removeprefix("tickstep: ") for n in getattr(exc, "__notes__", ())
             if n.startswith("tickstep: raised by the strategy")]
    if notes:
        first = text.splitlines()[0] if text else ""
        return f"{type(exc).__name__}: {first} ({notes[0]}; --debug shows the traceback)"
    if isinstance(exc, (TickstepError, DataError, ValueError, TypeError, LookupError, OSError)):
        first = text.splitlines()[0] if text else type(exc).__name__
    else:  # an unexpected kind: its type says what happened
        first = f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}".rstrip(": ")
    return first
