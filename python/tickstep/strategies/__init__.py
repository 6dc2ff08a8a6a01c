"""Strategies shipped with tickstep, and the registry of strategy plugins.

A plugin is a :class:`~tickstep.Strategy` subclass advertised by any installed
distribution under the ``tickstep.strategies`` entry-point group::

    [project.entry-points."tickstep.strategies"]
    my_idea = "my_package.strategies:MyIdea"

:func:`available` lists them by name and :func:`load` imports one. tickstep's own
strategies are registered the same way, in its ``pyproject.toml``: that table is the one
list of shipped strategies (so tickstep must be installed, e.g. ``make build``, for them
to be listed).

Examples
--------
>>> import tickstep.strategies as strategies
>>> strategies.load("sma_cross").__name__
'SmaCross'
>>> sorted(strategies.available())[:2]
['fakeout', 'ranked_portfolio']
"""

from __future__ import annotations

from importlib.metadata import EntryPoint, entry_points

from tickstep._core import TickstepError
from tickstep.hints import did_you_mean
from tickstep.strategies.breakout import Fakeout, RangeBreakout, RangeSetup, TrueBreakout
from tickstep.strategies.classic import RsiMeanReversion, SmaCross
from tickstep.strategies.portfolio import RankedPortfolio
from tickstep.strategy import Strategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "Fakeout",
    "RangeBreakout",
    "RangeSetup",
    "RankedPortfolio",
    "RsiMeanReversion",
    "SmaCross",
    "TrueBreakout",
    "UnknownStrategyError",
    "available",
    "load",
]

#: The entry-point group under which installed distributions register strategies.
ENTRY_POINT_GROUP = "tickstep.strategies"


class UnknownStrategyError(TickstepError, LookupError):
    """No strategy is registered under the requested name."""


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available() -> dict[str, EntryPoint]:
    """Every registered strategy by name, sorted: the entry points of installed
    distributions, tickstep's own included (not imported yet)."""
    found = {_key(ep.name): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return dict(sorted(found.items()))


def load(name: str) -> type[Strategy]:
    """The strategy class registered as ``name`` (case and ``-``/``_`` do not matter).

    Raises
    ------
    UnknownStrategyError
        No such name; the message suggests the closest one.
    TypeError
        The entry point does not name a :class:`~tickstep.Strategy` subclass.

    Examples
    --------
    >>> load("rsi-mean-reversion").__name__
    'RsiMeanReversion'
    >>> load("fakeot")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    tickstep.strategies.UnknownStrategyError: no strategy named 'fakeot' — did you mean 'fakeout'?...
    """
    registry = available()
    entry = registry.get(_key(name))
    if entry is None:
        raise UnknownStrategyError(
            f"no strategy named {name!r}{did_you_mean(_key(name), registry)} "
            f"(available: {', '.join(registry)})"
        )
    cls = entry.load()
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"strategy {name!r} ({entry.value}) is not a tickstep.Strategy subclass")
    return cls
