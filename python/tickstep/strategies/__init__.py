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
['buy_and_hold', 'fakeout']
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import EntryPoint, entry_points

from tickstep._core import TickstepError
from tickstep.hints import did_you_mean
from tickstep.strategies.breakout import Fakeout, RangeBreakout, RangeSetup, TrueBreakout
from tickstep.strategies.classic import BuyAndHold, RsiMeanReversion, SmaCross
from tickstep.strategies.portfolio import RankedPortfolio
from tickstep.strategy import Strategy

__all__ = [
    "ENTRY_POINT_GROUP",
    "BuyAndHold",
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
    return dict(_registry())


# Reading the entry points scans the metadata of every installed distribution: ~12 ms
# with 165 of them, more in a large environment, and a batch or a service request that
# names its strategy would pay it each time. The registry is read again only when
# something could have changed it: the import path, or the last change of one of its
# folders (installing or removing a distribution adds or removes its metadata folder
# there). importlib.metadata keeps its listing of a folder by the same rule, so this is
# never staler than a read of the entry points would be.
_read: tuple[tuple[tuple[str, int | None], ...], dict[str, EntryPoint]] | None = None


def _installation() -> tuple[tuple[str, int | None], ...]:
    """The import path's folders ("" is the working directory), each with its last change."""
    state = []
    for entry in sys.path:
        where = os.path.abspath(entry or os.curdir)
        try:
            changed: int | None = os.stat(where).st_mtime_ns
        except OSError:
            changed = None
        state.append((where, changed))
    return tuple(state)


def _registry() -> dict[str, EntryPoint]:
    global _read
    state = _installation()
    if _read is None or _read[0] != state:
        found = {_key(ep.name): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        _read = (state, dict(sorted(found.items())))
    return _read[1]


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
    registry = _registry()
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
