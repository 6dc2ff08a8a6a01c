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
from collections.abc import Sequence
from typing import Any

import numpy as np

from tickstep.data._columns import (
    TIMESTAMP_COLUMNS,
    VALUE_COLUMNS,
    DataError,
    SymbolBars,
    _where,
    check_bars,
)

__all__ = [
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
    codes: np.ndarray, uniques: Sequence[str], ts: np.ndarray, values: list[np.ndarray]
) -> list[SymbolBars]:
    """A long table's rows grouped by symbol code, each symbol's rows in input order.

    Already grouped rows are cut into slices (views, no copy); interleaved ones are
    gathered after a stable sort of small integer codes (a radix sort). Every symbol's
    columns are checked, with row numbers of the input.
    """
    n_symbols = len(uniques)
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    if len(change) + 1 == n_symbols:
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [len(codes)]))
        selections = sorted(
            (int(codes[s]), slice(int(s), int(e)), np.arange(s, e)) for s, e in zip(starts, ends)
        )
    else:
        small = codes.astype(np.int16 if n_symbols < 2**15 else np.int64)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(small[order], np.arange(n_symbols + 1))
        selections = [
            (k, order[bounds[k] : bounds[k + 1]], order[bounds[k] : bounds[k + 1]])
            for k in range(n_symbols)
        ]
    out = []
    for code, sel, rows in selections:
        symbol = str(uniques[code])
        part = [ts[sel], *(v[sel] for v in values)]
        check_bars(symbol, *part, rows=rows)
        out.append(SymbolBars._trusted(symbol, *part))
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
