"""What every command shares: reading ``name=value`` arguments, opening data, printing.

Strategy parameters given on the command line are text; each is read as the type of the
parameter's default on the strategy class (int, float, bool or str), so ``fast=2.7`` for
an int parameter is refused with the parameter's name instead of becoming 2. A parameter
that also takes one number per symbol (a `tickstep.SignalStrategy`'s ``size``, stops,
time exit, lot size) takes a mapping written as JSON: ``-p 'sl={"AAPL": 0.02}'``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import click
import numpy as np

__all__ = [
    "UsageError",
    "check_output",
    "load_strategy",
    "open_data",
    "parse_assignments",
    "parse_engine_options",
    "parse_symbols",
    "read_value",
    "writable_store",
]

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class UsageError(click.ClickException):
    """A bad argument: one line naming it (``Error: ...``), exit code 2."""

    exit_code = 2


def read_value(name: str, text: str, default: Any, *, by_symbol: bool = False) -> Any:
    """``text`` as the type of ``default`` (a strategy parameter's or option's default); with
    ``by_symbol`` (the parameter also takes one number per symbol), a mapping written as
    JSON too.

    Examples
    --------
    >>> read_value("fast", "5", 10), read_value("reverse", "yes", False)
    (5, True)
    >>> read_value("fast", "2.7", 10)
    Traceback (most recent call last):
    ...
    tickstep.cli._common.UsageError: fast=2.7: expected a whole number (fast defaults to 10)
    >>> read_value("size", '{"AAPL": 0.2}', 0.95, by_symbol=True)
    {'AAPL': 0.2}
    """
    text = text.strip()
    kind = type(default)
    try:
        if by_symbol and text.startswith("{"):
            return _literal(text)
        if isinstance(default, bool):
            low = text.lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError("expected true or false")
        if isinstance(default, (int, np.integer)):
            try:
                return int(text)
            except ValueError:
                raise ValueError("expected a whole number") from None
        if isinstance(default, (float, np.floating)):
            value = float(text)
            if math.isnan(value):
                raise ValueError("expected a number, not NaN")
            return value
        if default is None:  # no declared type: the most specific reading
            return _literal(text)
        if isinstance(default, str):
            return text
        raise ValueError(f"parameters of type {kind.__name__} cannot be given on the command line")
    except ValueError as exc:
        msg = str(exc) if str(exc).startswith(("expected", "parameters")) else f"expected {kind.__name__}"
        raise UsageError(f"{name}={text}: {msg} ({name} defaults to {default!r})") from None


def _split_values(text: str) -> list[str]:
    """``text`` split at its commas, except those inside a JSON mapping's braces (``sl={"A":
    0.02, "B": 0.03},0.05`` is two values)."""
    parts, depth, start = [], 0, 0
    for k, ch in enumerate(text):
        depth += (ch == "{") - (ch == "}")
        if ch == "," and depth == 0:
            parts.append(text[start:k])
            start = k + 1
    parts.append(text[start:])
    return parts


def _literal(text: str) -> Any:
    if text.startswith("{"):  # a mapping, written as JSON (e.g. commission_by_symbol)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"expected a mapping written as JSON ({exc})") from None
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


def parse_assignments(
    items: Iterable[str], defaults: Mapping[str, Any], *, what: str, lists: bool,
    by_symbol: Collection[str] = (),
) -> dict[str, Any]:
    """``["fast=5,10", "slow=30"]`` -> ``{"fast": [5, 10], "slow": 30}`` (lists only when
    ``lists``, split at the commas outside JSON mappings), each value read as its
    default's type (or, for the names in ``by_symbol``, as a mapping when written as
    one); unknown names refused with a hint."""
    from tickstep.hints import did_you_mean

    out: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"{what} {item!r}: expected NAME=VALUE")
        if name not in defaults:
            hint = did_you_mean(name, list(defaults))
            known = ", ".join(defaults) or "none"
            raise UsageError(f"unknown {what} {name!r}{hint} ({what}s: {known})")
        if name in out:
            raise UsageError(f"{what} {name!r} given twice")
        parts = _split_values(text) if lists else [text]
        if any(not p.strip() for p in parts):
            raise UsageError(f"{what} {item!r}: empty value")
        values = [read_value(name, p, defaults[name], by_symbol=name in by_symbol)
                  for p in parts]
        out[name] = values if len(values) > 1 else values[0]
    return out


def load_strategy(text: str) -> type:
    """A strategy class from the command line: a registered name (the plugin registry,
    `tickstep.strategies.load`), ``package.module:Class`` (imported, the current directory
    first on the path, as ``python -m`` does) or ``path/to/file.py:Class`` (the file run
    as a module of its own). Any `tickstep.Strategy` subclass, `tickstep.SignalStrategy`
    included; anything else is refused naming the argument."""
    import importlib
    import importlib.util
    import os
    import sys

    from tickstep.strategies import UnknownStrategyError, load
    from tickstep.strategy import Strategy

    if ":" not in text:
        try:
            return load(text)
        except UnknownStrategyError as exc:
            raise UsageError(f"{exc} (or give package.module:Class or file.py:Class)") from None
    where, _, qualname = text.rpartition(":")
    where, qualname = where.strip(), qualname.strip()
    if not where or not qualname:
        raise UsageError(f"strategy {text!r}: expected package.module:Class or file.py:Class")
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise UsageError(f"strategy {text!r}: no such file {where!r}")
        # Its own module name (never a stdlib or installed one's); kept in sys.modules so
        # annotations resolve and forked batch workers have it.
        name = "tickstep_cli_" + "".join(c if c.isalnum() else "_" for c in path.stem)
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    else:
        if os.getcwd() not in sys.path and "" not in sys.path:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(where)
        except ModuleNotFoundError as exc:
            raise UsageError(f"strategy {text!r}: no module {exc.name!r}") from None
    obj: Any = module
    for part in qualname.split("."):
        if not hasattr(obj, part):
            from tickstep.hints import did_you_mean

            names = [n for n in vars(module) if not n.startswith("_")]
            raise UsageError(f"strategy {text!r}: {where} has no {part!r}"
                             f"{did_you_mean(part, names)}")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, Strategy)):
        raise UsageError(f"strategy {text!r} is {obj!r}, not a tickstep.Strategy subclass "
                         "(or tickstep.SignalStrategy)")
    return obj


def parse_engine_options(items: Iterable[str]) -> dict[str, Any]:
    """``-o name=value`` engine options, each read as its default's type; a flag that may
    name symbols instead (``-o shortable=SPY,QQQ``) reads a word not true or false as
    the symbols, separated by commas."""
    from tickstep.service.options import ENGINE_DEFAULTS, FLAG_OR_SYMBOLS

    items = list(items)
    symbols: dict[str, Any] = {}
    for item in items:
        name, _, text = item.partition("=")
        name = name.strip()
        if name in FLAG_OR_SYMBOLS and text.strip().lower() not in _TRUE | _FALSE:
            symbols[name] = [s.strip() for s in text.split(",") if s.strip()]
    rest = [item for item in items if item.partition("=")[0].strip() not in symbols]
    return {**parse_assignments(rest, ENGINE_DEFAULTS, what="option", lists=False), **symbols}


def parse_symbols(values: Iterable[str]) -> list[str] | None:
    """``--symbols A,B --symbols C`` -> ``["A", "B", "C"]``; nothing given -> None (all)."""
    out = [s.strip() for v in values for s in v.split(",") if s.strip()]
    return out or None


def open_data(text: str) -> Any:
    """A store file, ``postgresql://`` URL or CSV/Parquet file, refused clearly if missing."""
    from tickstep import data

    if not text.startswith(("postgresql://", "postgres://")) and not Path(text).exists():
        raise UsageError(f"--data {text!r}: no such file")
    return data.open_store(text, read_only=True)


def _tickstep_report(path: Path) -> bool:
    """Whether ``path`` is a report tickstep wrote (a backtest's or a walk-forward's)."""
    head = path.read_text(errors="replace")[:5000]
    return "tickstep backtest report" in head or "tickstep walk-forward report" in head


def _walk_forward_figure(path: Path) -> bool:
    """Whether ``path`` is the figure ``tickstep walk-forward --plot`` writes."""
    return "walk-forward: out-of-sample equity" in path.read_text(errors="replace")


def _tickstep_rows(path: Path, columns: frozenset[str] = frozenset({"symbols", "status"})) -> bool:
    """Whether ``path`` holds a batch's rows as ``tickstep batch --out`` writes them (or,
    with ``columns`` of its own, another table the command line writes)."""
    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            import pyarrow.parquet as pq

            names = set(pq.read_schema(path).names)
        elif suffix == ".csv":
            with open(path, errors="replace") as f:
                names = set(f.readline().strip().split(","))
        else:
            rows = json.loads(path.read_text(errors="replace"))
            names = set(rows[0]) if isinstance(rows, list) and rows and isinstance(rows[0], dict) else set()
    except (OSError, ValueError, IndexError):
        return False
    except Exception:  # pyarrow's refusal of a file that is not Parquet
        return False
    return columns <= names


_MADE_BY_TICKSTEP = {
    "report": _tickstep_report,
    "rows": _tickstep_rows,
    # `tickstep walk-forward --out`'s table and `--plot`'s figure.
    "windows": partial(_tickstep_rows, columns=frozenset({"test_start", "out_of_sample"})),
    "figure": _walk_forward_figure,
}


def check_output(text: str, option: str, kind: str) -> Path:
    """The file ``option`` writes, refused (before any work) when its directory is missing
    or it exists and tickstep did not write it: tickstep never overwrites a user's file.
    ``kind`` is what tickstep writes there ("report" or "rows"), recognised by content."""
    path = Path(text)
    if not path.resolve().parent.is_dir():
        raise UsageError(f"{option} {text!r}: its directory {str(path.parent)!r} does not exist")
    if path.is_dir():
        raise UsageError(f"{option} {text!r} is a directory")
    if path.exists() and not _MADE_BY_TICKSTEP[kind](path):
        raise UsageError(f"{option} {text!r} exists and is not a tickstep {kind} file; tickstep "
                         "never overwrites a file it did not create: give another path")
    return path


def writable_store(text: str, option: str) -> Any:
    """A store to write to: a DuckDB file (created if missing) or a ``postgresql://`` URL;
    a file of bars (CSV, Parquet, ...) or any other file is refused naming ``option``."""
    from tickstep import data

    opened = data.open_store(text, read_only=False)
    if not hasattr(opened, "ingest"):
        opened.close()
        raise UsageError(f"{option} {text!r} is a file of bars, not a store: write to a DuckDB "
                         "file (e.g. market.duckdb) or a postgresql:// URL")
    return opened


def dumps(value: Any) -> str:
    from tickstep.service.rows import jsonable

    return json.dumps(jsonable(value), indent=2, allow_nan=False)
