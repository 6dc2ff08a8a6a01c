"""The shapes bars come in, and the rules every in-memory reader applies the same way.

Bars in memory come as one symbol's table, a mapping ``symbol -> table``, or one long
table with a symbol column (see `_memory.to_market_columns`); the table may be a pandas
DataFrame (`_frames`) or anything Arrow speaks (`_arrow`). Both readers find columns,
the timestamp source and the symbol column, split a long table by symbol and refuse bad
input through the functions here, so a given mistake gets the same refusal from every
kind of table.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tickstep._core import ConfigError
from tickstep.data._columns import (
    TIMESTAMP_COLUMNS,
    VALUE_COLUMNS,
    DataError,
    SymbolBars,
    _where,
    check_bars,
    check_extra_columns,
    check_extra_name,
    refuse_case_twins,
)
from tickstep.hints import did_you_mean

__all__ = [
    "ALL_EXTRA",
    "ExtraColumns",
    "check_symbol_names",
    "find_columns",
    "refuse_identifier_column",
    "refuse_mixed_awareness",
    "refuse_no_rows",
    "split_by_symbol",
    "symbol_label",
    "timestamp_label",
]

DEFAULT_SYMBOL = "ASSET"
# Names people give an instrument's identifier; a numeric column so named is taken for
# one (a text column is, whatever its name).
_IDENTIFIER_NAMES = re.compile(
    r"^(symbol|sym|ticker|tickers|instrument|asset|security|secid|sec_id|id|code|isin|"
    r"cusip|sedol|figi|ric|permno|permco|gvkey|conid|contract)s?$",
    re.IGNORECASE,
)


def find_columns(labels: Sequence[Any], symbol: str | None) -> dict[str, Any]:
    """Map canonical names (open, ..., volume, ts, ...) to the table's own labels.

    Names are matched case-insensitively; two labels that differ only by case are
    refused, and so is a table missing any of open, high, low, close, volume.
    """
    by_lower: dict[str, list[Any]] = {}
    for col in labels:
        if isinstance(col, str):
            by_lower.setdefault(col.strip().lower(), []).append(col)
    found = {}
    for name in VALUE_COLUMNS + TIMESTAMP_COLUMNS:
        matches = by_lower.get(name, [])
        if len(matches) > 1:
            raise DataError(
                f"{_where(symbol) or 'data'}: columns {matches} differ only by case; keep one",
                symbol=symbol,
                rule="unambiguous columns",
            )
        if matches:
            found[name] = matches[0]
    missing = [name for name in VALUE_COLUMNS if name not in found]
    if missing:
        have = ", ".join(map(str, labels))
        hint = (
            " (volume is required: sizing and volume-based rules need it; pass zeros if "
            "your source has none)"
            if "volume" in missing
            else ""
        )
        raise DataError(
            f"{_where(symbol) or 'data'}: missing column(s) {', '.join(missing)}; "
            f"columns present: {have}{hint}",
            symbol=symbol,
            rule="required columns",
        )
    return found


@dataclass(frozen=True)
class ExtraColumns:
    """What a load asks of the columns beside OHLCV.

    ``names`` None keeps every extra column (all must be numeric); a tuple keeps those
    (found by exact name, else ignoring case) and drops the rest, and a chosen boolean
    column reads as 0/1. ``allow_nan`` names the extra columns that may hold missing
    values (NaN, null, an empty CSV cell); ``True`` allows them in every extra column.
    """

    names: tuple[str, ...] | None = None
    allow_nan: frozenset[str] | bool = frozenset()

    @classmethod
    def of(cls, columns: Any = None, allow_nan: Any = None) -> ExtraColumns:
        """The options as the user gave them (``columns=``, ``allow_nan=``), checked."""
        names = None if columns is None else _names_option("columns", columns)
        if names is not None:
            try:
                for name in names:
                    check_extra_name(name)
                refuse_case_twins(list(names))
            except DataError as err:
                raise ConfigError(f"columns={list(names)!r}: {err}".replace("data: ", "")) from None
            if len(set(names)) != len(names):
                dup = next(n for n in names if names.count(n) > 1)
                raise ConfigError(f"columns=: {dup!r} is named twice")
        if allow_nan is None or allow_nan is False:
            nan: frozenset[str] | bool = frozenset()
        elif allow_nan is True:
            nan = True
        else:
            nan = frozenset(_names_option("allow_nan", allow_nan))
            prices = sorted(n for n in nan if n.strip().lower() in VALUE_COLUMNS)
            if prices:
                raise ConfigError(
                    f"allow_nan={sorted(nan)!r}: {prices[0]!r} is a bar column; prices and "
                    "volume are never missing (allow_nan names extra columns)"
                )
            if names is not None:
                unchosen = sorted(nan - set(names))
                if unchosen:
                    raise ConfigError(
                        f"allow_nan names {unchosen[0]!r}, which is not among "
                        f"columns={list(names)!r}"
                    )
        return cls(names, nan)

    def pick(
        self, labels: Sequence[Any], used: Iterable[Any], symbol: str | None
    ) -> list[tuple[str, Any]]:
        """The extra columns to read as (name, the table's label), given the table's
        labels and those already used (OHLCV, timestamps, symbol, a saved index). A column
        chosen by a name differing in case from its label takes the chosen name."""
        used = set(used)
        rest = [c for c in labels if c not in used]
        if self.names is None:
            for label in rest:
                check_extra_name(label, symbol)
            refuse_case_twins(rest, symbol)
            return [(label, label) for label in rest]
        picked = []
        for name in self.names:
            if name in rest:
                picked.append((name, name))
                continue
            folded = [c for c in rest if isinstance(c, str) and c.strip().lower() == name.lower()]
            if len(folded) != 1:
                have = [str(c) for c in rest]
                raise DataError(
                    f"{_where(symbol) or 'data'}: columns={list(self.names)!r} names {name!r}, "
                    f"which is not a column beside OHLCV; extra columns present: "
                    f"{', '.join(have) or 'none'}"
                    + did_you_mean(name, have),
                    symbol=symbol,
                    rule="chosen columns present",
                )
            picked.append((name, folded[0]))
        return picked

    def check_nan_names(self, found: Iterable[str]) -> None:
        """``allow_nan`` names only columns the data has (a misspelling is refused)."""
        if isinstance(self.allow_nan, bool) or not self.allow_nan:
            return
        found = list(found)
        unknown = sorted(set(self.allow_nan) - set(found))
        if unknown:
            raise DataError(
                f"allow_nan names {unknown[0]!r}, which is not an extra column of the data "
                f"(extra columns: {', '.join(found) or 'none'})" + did_you_mean(unknown[0], found),
                rule="allow_nan names extra columns",
            )


#: Every extra column kept, none may hold NaN: what a load asks when it says nothing.
ALL_EXTRA = ExtraColumns()


def _names_option(option: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    try:
        names = tuple(value)
    except TypeError:
        raise ConfigError(
            f"{option}={value!r}: give a list of column names"
            + (" (or True for every extra column)" if option == "allow_nan" else "")
        ) from None
    bad = [n for n in names if not isinstance(n, str) or not n]
    if bad:
        raise ConfigError(f"{option}=: column names are non-empty strings, got {bad[0]!r}")
    return names


def not_numeric(label: Any, dtype: Any, row: int, value: Any, symbol: str | None, chosen: bool) -> DataError:
    """The refusal of a non-numeric extra column, saying how to keep or drop it."""
    how = (
        "the engine holds numbers only: convert it before the backtest"
        if chosen
        else "extra columns beside OHLCV are kept as numbers; choose the columns to keep "
        "with columns=[...] (leaving this one out drops it)"
    )
    return DataError(
        f"{_where(symbol, row)}: column {label!r} is not numeric (dtype {dtype}, value "
        f"{value!r}); {how}",
        symbol=symbol,
        row=row,
        rule="numeric extra columns",
    )


def timestamp_label(
    found: dict[str, Any], index_label: Any | None, index_name: str, symbol: str | None
) -> Any:
    """The one place timestamps come from: a named column or the table's time index.

    ``index_label`` is the index's label (None when the table has no time index) and
    ``index_name`` how to call it in messages. More than one source, or none, is refused.
    """
    named = [found[n] for n in TIMESTAMP_COLUMNS if n in found]
    if len(named) > 1 or (named and index_label is not None):
        where = ", ".join(map(repr, named)) + (
            f" and the {index_name}" if index_label is not None else ""
        )
        raise DataError(
            f"{_where(symbol) or 'data'}: timestamps found in more than one place ({where}); "
            "keep exactly one of a DatetimeIndex or a column named ts/timestamp/time/"
            "datetime/date",
            symbol=symbol,
            rule="one timestamp source",
        )
    if named:
        return named[0]
    if index_label is not None:
        return index_label
    raise DataError(
        f"{_where(symbol) or 'data'}: no timestamps; use a DatetimeIndex or a column named "
        "ts, timestamp, time, datetime or date",
        symbol=symbol,
        rule="timestamps present",
    )


def symbol_label(labels: Sequence[Any], symbol_column: str | None) -> Any | None:
    """The label of the symbol column (case-insensitive), or None.

    ``symbol_column`` None means the default name ``symbol``, which may be absent (the
    table is then one symbol's); a name the user gave must be there.
    """
    wanted = (symbol_column or "symbol").lower()
    matches = [c for c in labels if isinstance(c, str) and c.strip().lower() == wanted]
    if len(matches) > 1:
        raise DataError(
            f"columns {matches} differ only by case; keep one", rule="unambiguous columns"
        )
    if not matches and symbol_column is not None:
        raise DataError(
            f"symbol_column={symbol_column!r} is not a column; columns present: "
            f"{', '.join(map(str, labels))}",
            rule="symbol column present",
        )
    return matches[0] if matches else None


def refuse_identifier_column(label: Any, distinct: Sequence[Any], symbol: str | None) -> None:
    """Refuse a column that names instruments in a table read as one symbol's bars.

    Two instruments in one price series would be silently merged; the user names the
    symbol column (``symbol_column=``) or drops the column.
    """
    shown = ", ".join(map(repr, list(distinct)[:3])) + (", ..." if len(distinct) > 3 else "")
    raise DataError(
        f"{_where(symbol) or 'data'}: column {label!r} holds {len(distinct)} different values "
        f"({shown}) in bars read as one symbol's; if it names the symbols pass "
        f"symbol_column={label!r}, otherwise drop it",
        symbol=symbol,
        rule="one instrument per symbol",
    )


def is_identifier_name(label: Any) -> bool:
    return isinstance(label, str) and bool(_IDENTIFIER_NAMES.match(label.strip()))


def names_instrument(label: Any, text: bool, symbol_column: str | None) -> bool:
    """Whether a column names the instrument rather than holding data about its bars: a
    text column called like an identifier (``ticker``, ``isin``; several names in one
    symbol's table are refused earlier), or the symbol column itself."""
    wanted = (symbol_column or "symbol").lower()
    if isinstance(label, str) and label.strip().lower() == wanted:
        return True
    return text and is_identifier_name(label)


def refuse_no_rows(n: int, symbol: str | None) -> None:
    if n == 0:
        raise DataError(
            f"{_where(symbol) or 'data'}: no rows (empty data)",
            symbol=symbol,
            rule="non-empty",
        )


def check_symbol_names(codes: np.ndarray, uniques: Sequence[Any], raw: Any) -> None:
    """Every row names a symbol, and every name is a non-empty string."""
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"row {row}: symbol is missing", row=row, rule="symbol present")
    for k, u in enumerate(uniques):
        if not isinstance(u, str) or not u:
            row = int(np.flatnonzero(codes == k)[0])
            raise DataError(
                f"row {row}: symbol names must be non-empty strings, got {u!r}",
                row=row,
                rule="symbol names",
            )


def split_by_symbol(
    codes: np.ndarray,
    uniques: Sequence[str],
    ts: np.ndarray,
    values: list[np.ndarray],
    extra: dict[str, np.ndarray] | None = None,
    allow_nan: Any = (),
    rows: np.ndarray | None = None,
) -> list[SymbolBars]:
    """A long table's rows grouped by symbol code, each symbol's rows in input order, the
    symbols in order of first appearance (the order the table gives them in).

    Already grouped rows are cut into slices (views, no copy); interleaved ones are
    gathered after a stable sort of small integer codes (a radix sort). Every symbol's
    columns are checked, with row numbers of the input, or ``rows[k]`` for its row ``k``
    (the row of the user's table it came from, when the long table was made of another).
    """
    extra = extra or {}
    n_symbols = len(uniques)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    if len(change) + 1 == n_symbols:
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [len(codes)]))
        selections = [
            (int(codes[s]), slice(int(s), int(e)), np.arange(s, e)) for s, e in zip(starts, ends)
        ]
    else:
        small = codes.astype(np.int16 if n_symbols < 2**15 else np.int64)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(small[order], np.arange(n_symbols + 1))
        # The stable sort puts each symbol's first row at the head of its run.
        appearance = np.argsort(order[bounds[:-1]], kind="stable")
        selections = [
            (k, order[bounds[k] : bounds[k + 1]], order[bounds[k] : bounds[k + 1]])
            for k in map(int, appearance)
        ]
    out = []
    for code, sel, numbers in selections:
        symbol = str(uniques[code])
        part = [ts[sel], *(v[sel] for v in values)]
        numbers = numbers if rows is None else rows[numbers]
        check_bars(symbol, *part, rows=numbers)
        own = {name: v[sel] for name, v in extra.items()}
        check_extra_columns(symbol, part[0], own, allow_nan, rows=numbers)
        out.append(SymbolBars._trusted(symbol, *part, extra=own))
    return out


def refuse_mixed_awareness(awareness: dict[bool, str]) -> None:
    """Symbols of one mapping are all naive or all tz-aware."""
    if len(awareness) > 1:
        raise DataError(
            f"symbol {awareness[False]!r} has naive timestamps but symbol "
            f"{awareness[True]!r} has tz-aware ones; a mix of naive and tz-aware "
            "timestamps is refused (naive would be taken as UTC)",
            symbol=awareness[False],
            rule="consistent timezone awareness",
        )
