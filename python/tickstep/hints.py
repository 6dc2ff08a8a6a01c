"""The "did you mean ...?" hint every refusal of a misspelled name carries.

One helper so that options, parameters, symbols, statistics and strategy names all
suggest the same way: the closest known name by :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


def closest(name: object, known: Iterable[object]) -> str | None:
    """The known name closest to ``name``, or None when nothing is close enough."""
    names = [str(k) for k in known]
    matches = difflib.get_close_matches(str(name), names, n=1)
    return matches[0] if matches else None


def did_you_mean(name: object, known: Iterable[object]) -> str:
    """``" — did you mean 'x'?"`` to append to an error message, or ``""``.

    >>> "unknown option 'comission'" + did_you_mean("comission", ["cash", "commission"])
    "unknown option 'comission' — did you mean 'commission'?"
    >>> did_you_mean("zzz", ["cash"])
    ''
    """
    match = closest(name, known)
    return f" — did you mean {match!r}?" if match is not None else ""
