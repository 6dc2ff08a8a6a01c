"""Time constants and the one grammar for bar lengths ("5m", "15min", "4h", "1d").

Every place that reads a timeframe from a user — ``Strategy.timeframe``, a store's
``load(timeframe=...)``, the command line — goes through :func:`timeframe_ns`, so
``"1h"`` means the same thing everywhere.

The grammar is ``<whole number><unit>`` (the number may be left out: ``"h"`` is one
hour). Units, case-insensitive:

=========  ==========================================
seconds    ``s``, ``sec``, ``secs``, ``second``, ``seconds``
minutes    ``m``, ``min``, ``mins``, ``minute``, ``minutes``
hours      ``h``, ``hr``, ``hrs``, ``hour``, ``hours``
days       ``d``, ``day``, ``days``
weeks      ``w``, ``wk``, ``wks``, ``week``, ``weeks``
=========  ==========================================

A capital ``M`` alone is refused: traders write it for minutes, pandas reads it as a
month. Months and years are refused too (they have no fixed length), as are units
pandas would guess at (``T``, ``ms``, ...). A :class:`datetime.timedelta`,
``pandas.Timedelta`` or ``numpy.timedelta64`` is taken as it is; a plain int is a
number of nanoseconds.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import ConfigError

__all__ = [
    "NS_PER_DAY",
    "NS_PER_HOUR",
    "NS_PER_MINUTE",
    "NS_PER_SECOND",
    "TIMEFRAME_UNITS",
    "duration",
    "timeframe_ns",
]

#: Nanoseconds in a second (timestamps are int64 UTC nanoseconds).
NS_PER_SECOND = 1_000_000_000
#: Nanoseconds in a minute.
NS_PER_MINUTE = 60 * NS_PER_SECOND
#: Nanoseconds in an hour.
NS_PER_HOUR = 60 * NS_PER_MINUTE
#: Nanoseconds in a day of 24 hours.
NS_PER_DAY = 24 * NS_PER_HOUR

_SPELLINGS = {
    NS_PER_SECOND: ("s", "sec", "secs", "second", "seconds"),
    NS_PER_MINUTE: ("m", "min", "mins", "minute", "minutes"),
    NS_PER_HOUR: ("h", "hr", "hrs", "hour", "hours"),
    NS_PER_DAY: ("d", "day", "days"),
    7 * NS_PER_DAY: ("w", "wk", "wks", "week", "weeks"),
}
#: unit spelling (lower case) -> its length in nanoseconds
TIMEFRAME_UNITS: dict[str, int] = {s: ns for ns, names in _SPELLINGS.items() for s in names}

_MONTH = "is a month, which has no fixed length"
# Spellings a reader could take two ways, refused with the reason (exact case first).
_REFUSED = {
    "M": "is ambiguous (a month in pandas, a minute to many traders): write 'min' or 'm' for minutes",
    "MS": "is a month start in pandas: write 'min' or 'm' for minutes",
    "ME": "is a month end in pandas: write 'min' or 'm' for minutes",
    "mo": _MONTH, "mon": _MONTH, "month": _MONTH, "months": _MONTH,
    "y": "is a year, which has no fixed length", "yr": "is a year, which has no fixed length",
    "year": "is a year, which has no fixed length", "years": "is a year, which has no fixed length",
    "q": "is a quarter, which has no fixed length",
    "t": "is pandas' old minute alias (deprecated there): write 'min' or 'm'",
}
_TEXT = re.compile(r"^\s*(\d*)\s*([A-Za-z]+)\s*$")
_ACCEPTED = "s, m or min, h, d, w (e.g. '30s', '5m', '15min', '4h', '1d', '1w')"


def timeframe_ns(value: Any, *, name: str = "timeframe") -> int:
    """A bar length -> nanoseconds (positive), or a :class:`~tickstep.ConfigError`
    naming ``name``, the value and the accepted spellings.

    >>> timeframe_ns("15min") == timeframe_ns("15m") == 15 * NS_PER_MINUTE
    True
    >>> timeframe_ns("1D") == NS_PER_DAY
    True
    """
    if isinstance(value, str):
        ns = _parse_text(value, name)
    elif isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name}={value!r} is not a bar length: use e.g. '5m', '1h', '1d'")
    elif isinstance(value, (dt.timedelta, np.timedelta64)):  # before int: timedelta64 is one
        delta = pd.Timedelta(value)
        if delta is pd.NaT:
            raise ConfigError(f"{name}={value!r} is not a bar length")
        ns = int(delta.as_unit("ns").value)
    elif isinstance(value, (int, np.integer)):  # nanoseconds, as the bars' times are
        ns = int(value)
    else:
        raise ConfigError(
            f"{name} must be a string such as '5m', '1h', '1d' or a timedelta, "
            f"got {type(value).__name__} {value!r}"
        )
    if ns <= 0:
        raise ConfigError(f"{name}={value!r}: a bar length must be positive")
    return ns


def _parse_text(text: str, name: str) -> int:
    match = _TEXT.match(text)
    if match is None:
        raise ConfigError(
            f"{name}={text!r} is not a bar length: write a whole number and a unit; "
            f"accepted units: {_ACCEPTED}"
        )
    digits, unit = match.groups()
    reason = _REFUSED.get(unit) or _REFUSED.get(unit.lower())
    if reason is not None:
        raise ConfigError(f"{name}={text!r}: {unit!r} {reason}; accepted units: {_ACCEPTED}")
    step = TIMEFRAME_UNITS.get(unit.lower())
    if step is None:
        raise ConfigError(f"{name}={text!r}: unknown unit {unit!r}; accepted units: {_ACCEPTED}")
    count = int(digits) if digits else 1
    return count * step


def duration(value: Any) -> pd.Timedelta:
    """A length of time (a window, a warm-up, a walk-forward span) as pandas reads one
    (``"90D"``, ``"1 days 02:00:00"``, ``"1.5h"``, ``"500ms"``, a Timedelta), with the
    spellings of this module's grammar read by it (``"120d"``, ``"6H"``, ``"2w"``,
    ``"3days"``, ``"2wk"``): pandas warns it will stop reading some of those (``"d"``,
    ``"H"``, ``"S"``, ``"w"``) and reads others not at all. What neither reads raises as
    ``pd.Timedelta`` does (``"3M"``, a month, among them).

    >>> duration("120d") == duration("120D") == pd.Timedelta(days=120)
    True
    >>> duration("2wk") == duration("14 days")
    True
    """
    if isinstance(value, str):
        try:
            return pd.Timedelta(_parse_text(value, "duration"), unit="ns")
        except ConfigError:
            pass  # not the grammar's: pandas' to read or refuse
    return pd.Timedelta(value)
