"""Engine options a client may set by value: their names, defaults and checking.

The service and the command line accept every `tickstep.Backtest` option whose value is
plain data (numbers, booleans, a timezone name); the sizer, an object, keeps its default.
"""

from __future__ import annotations

import inspect
from typing import Any

from tickstep.backtest import Backtest

__all__ = ["ENGINE_DEFAULTS", "PLAIN_TYPES", "describe_strategies", "describe_strategy"]

PLAIN_TYPES = (bool, int, float, str)

#: Engine options given by value, with their defaults (from `Backtest`'s signature).
ENGINE_DEFAULTS: dict[str, Any] = {
    name: p.default
    for name, p in inspect.signature(Backtest.__init__).parameters.items()
    if p.kind is inspect.Parameter.KEYWORD_ONLY
    and name not in ("symbols", "start", "end")
    and isinstance(p.default, PLAIN_TYPES)
}


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
