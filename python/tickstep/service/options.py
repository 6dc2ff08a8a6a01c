"""Engine options a client may set by value, and the registered strategies as plain data.

The service and the command line accept every `tickstep.BacktestConfig` option whose
value is plain data (numbers, booleans, a timezone name), and those off by default that
take a number when given (``commission_cap``, ``commission_maker``, ``periods_per_year``,
``history``); the sizer, an object, keeps its default. The config itself holds each
option's rule: values are checked by building one (`check_config`).
"""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from tickstep.config import BacktestConfig

__all__ = ["ENGINE_DEFAULTS", "FLAG_OR_SYMBOLS", "PLAIN_TYPES", "check_config", "describe_strategies",
           "describe_strategy"]

PLAIN_TYPES = (bool, int, float, str)

#: Options off by default (None) that take a plain number when given (``commission_cap``,
#: ``commission_maker``, ``volume_limit``, ``periods_per_year``, ``history``), a name
#: (``funding_column``, ``dividend_column``, ``borrow_rate_column``, ``shortable_column``)
#: or plain data (JSON's:
#: ``commission_by_symbol``'s, ``margin_by_symbol``'s, ``borrow_rate_by_symbol``'s and
#: ``slippage_by_symbol``'s mappings, ``multiplier``'s number or mapping), a duration
#: (``stream``'s window, "5D") or a symbol (``benchmark``'s: a price Series is for Python),
#: by their declared types.
_PLAIN_OR_NONE = ("float | None", "int | None", "str | None",
                  "Mapping[str, Mapping[str, float]] | None", "Mapping[str, float] | None",
                  "float | Mapping[str, float] | None", "pd.Timedelta | None",
                  "str | BenchmarkPrices | None")

#: Engine options given by value, with their defaults (from `BacktestConfig`); a value
#: given for one whose default is None is checked by the config's rule alone.
ENGINE_DEFAULTS: dict[str, Any] = {
    f.name: default
    for f, default in zip(dataclasses.fields(BacktestConfig), BacktestConfig().options().values())
    if isinstance(default, PLAIN_TYPES) or f.type in _PLAIN_OR_NONE
}


#: Options that are a flag or the symbols it applies to (``shortable``: True, False or the
#: symbols that may be sold short), by their declared types: over HTTP true, false or a
#: list of names; on the command line true, false or names separated by commas.
FLAG_OR_SYMBOLS = frozenset(f.name for f in dataclasses.fields(BacktestConfig)
                            if f.type == "bool | tuple[str, ...]")


def check_config(options: dict[str, Any]) -> BacktestConfig:
    """The config of ``options``; `tickstep.ConfigError` names a value breaking its rule."""
    return BacktestConfig(**options)


def describe_strategy(name: str) -> dict[str, Any]:
    """A registered strategy as plain data: name, class, parameters with defaults, docs."""
    from tickstep.strategies import load

    cls = load(name)
    doc = inspect.getdoc(cls) or ""
    return {
        "name": name,
        "class": f"{cls.__module__}:{cls.__qualname__}",
        "parameters": cls.parameters(),
        "summary": doc.split("\n\n", 1)[0].replace("\n", " "),
        "doc": doc,
    }


def describe_strategies() -> list[dict[str, Any]]:
    """Every registered strategy, by name (see `describe_strategy`)."""
    from tickstep.strategies import available

    return [describe_strategy(name) for name in available()]
