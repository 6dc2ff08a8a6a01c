"""The "did you mean ...?" hint every refusal of a misspelled name carries.

One helper so that options, parameters, symbols, statistics and strategy names all
suggest the same way: the closest known name by :func:`difflib.get_close_matches`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = ["closest", "did_you_mean"]


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
