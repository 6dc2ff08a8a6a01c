"""Strategies shipped with tickstep, and the registry of strategy plugins.

A plugin is a :class:`~tickstep.Strategy` subclass advertised by any installed
distribution under the ``tickstep.strategies`` entry-point group::

    [project.entry-points."tickstep.strategies"]
    my_idea = "my_package.strategies:MyIdea"

:func:`available` lists them by name and :func:`load` imports one. The built-in
strategies are always listed, even when tickstep runs from a source tree whose package
metadata (and so its own entry points) is not installed.

Examples
--------
>>> import tickstep.strategies as strategies
>>> strategies.load("sma_cross").__name__
'SmaCross'
>>> sorted(strategies.available())[:2]
['fakeout', 'ranked_portfolio']
"""

from __future__ import annotations

import difflib
from importlib.metadata import EntryPoint, entry_points

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

ENTRY_POINT_GROUP = "tickstep.strategies"

#: The shipped strategies under their registry names (the same names as the entry points
#: in tickstep's own pyproject.toml).
BUILTINS: dict[str, type[Strategy]] = {
    "fakeout": Fakeout,
    "ranked_portfolio": RankedPortfolio,
    "rsi_mean_reversion": RsiMeanReversion,
    "sma_cross": SmaCross,
    "true_breakout": TrueBreakout,
}


class UnknownStrategyError(LookupError):
    """No strategy is registered under the requested name."""


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def available() -> dict[str, EntryPoint | type[Strategy]]:
    """Every registered strategy by name, sorted: entry points of installed distributions
    (not imported yet), plus the built-in classes not already among them.

    A plugin registered under a built-in's name takes its place.
    """
    found: dict[str, EntryPoint | type[Strategy]] = dict(BUILTINS)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[_key(ep.name)] = ep
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
    tickstep.strategies.UnknownStrategyError: no strategy named 'fakeot'; did you mean 'fakeout'?...
    """
    registry = available()
    entry = registry.get(_key(name))
    if entry is None:
        close = difflib.get_close_matches(_key(name), list(registry), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UnknownStrategyError(
            f"no strategy named {name!r}{hint} (available: {', '.join(registry)})"
        )
    # Duck-typed: once Dask is imported, entry points come from the importlib_metadata
    # backport, whose EntryPoint is another class.
    cls = entry if isinstance(entry, type) else entry.load()
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise TypeError(f"strategy {name!r} ({entry!r}) is not a tickstep.Strategy subclass")
    return cls
