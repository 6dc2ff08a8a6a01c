"""The "did you mean ...?" hint every refusal of a misspelled name carries.

One helper so that options, parameters, symbols, statistics and strategy names all
suggest the same way: the closest known name by :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

__all__ = ["closest", "did_you_mean", "named_options"]

F = TypeVar("F", bound=Callable[..., Any])


def closest(name: object, known: Iterable[object]) -> str | None:
    """The known name closest to ``name``, or None when nothing is close enough: as
    spelled, else ignoring case, else the one known name that starts with it
    (``"sharpe"`` -> ``"Sharpe Ratio"``)."""
    names = [str(k) for k in known]
    text = str(name)
    matches = difflib.get_close_matches(text, names, n=1)
    if matches:
        return matches[0]
    folded = {n.lower(): n for n in names}
    matches = difflib.get_close_matches(text.lower(), list(folded), n=1)
    if matches:
        return folded[matches[0]]
    starting = [n for n in names if text and n.lower().startswith(text.lower())]
    return starting[0] if len(starting) == 1 else None


def did_you_mean(name: object, known: Iterable[object]) -> str:
    """``" — did you mean 'x'?"`` to append to an error message, or ``""``.

    >>> "unknown option 'comission'" + did_you_mean("comission", ["cash", "commission"])
    "unknown option 'comission' — did you mean 'commission'?"
    >>> did_you_mean("zzz", ["cash"])
    ''
    """
    match = closest(name, known)
    return f" — did you mean {match!r}?" if match is not None else ""


def named_options(method: F) -> F:
    """Refuse a keyword ``method`` does not take as an unknown option with the hint
    (`tickstep.ConfigError`), instead of Python's "got an unexpected keyword argument".

    >>> class Box:
    ...     @named_options
    ...     def load(self, *, start=None, regular_hours=False): ...
    >>> Box().load(regular_hour=True)
    Traceback (most recent call last):
    ...
    tickstep.ConfigError: Box.load(): unknown option 'regular_hour' — did you mean 'regular_hours'? (options: start, regular_hours)
    """
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    names = [p.name for p in inspect.signature(method).parameters.values()
             if p.kind in kinds and p.name != "self"]

    @functools.wraps(method)
    def checked(*args: Any, **kwargs: Any) -> Any:
        for name in kwargs:
            if name not in names:
                from tickstep._core import ConfigError

                # Named by the class the caller has (Store, not the base defining it).
                where = method.__qualname__
                if args and "." in where:
                    where = f"{type(args[0]).__name__}.{method.__name__}"
                raise ConfigError(
                    f"{where}(): unknown option {name!r}"
                    f"{did_you_mean(name, names)} (options: {', '.join(names)})"
                )
        return method(*args, **kwargs)

    return checked  # type: ignore[return-value]
