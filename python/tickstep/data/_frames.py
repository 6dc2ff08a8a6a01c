"""pandas DataFrames -> validated columns (one symbol's frame, or a long frame).

Columns are found by name (case-insensitive), timestamps from a DatetimeIndex or one
timestamp column, and every rule of `check_bars` runs per symbol with the row positions
of the user's own frame. The columns are copied once: the frame stays the caller's to
change. The shapes and their rules are shared with the Arrow reader (`_shapes`).
"""

from __future__ import annotations

import warnings
from typing import Any, NoReturn

import numpy as np
import pandas as pd

from tickstep.data._columns import (
    TIMESTAMP_COLUMNS,
    VALUE_COLUMNS,
    DataError,
    SymbolBars,
    _where,
    check_bars,
    check_extra_columns,
)
from tickstep.data._shapes import (
    ALL_EXTRA,
    DEFAULT_SYMBOL,
    ExtraColumns,
    check_symbol_names,
    find_columns,
    is_identifier_name,
    names_instrument,
    not_numeric,
    refuse_identifier_column,
    refuse_no_rows,
    split_by_symbol,
    symbol_label,
    timestamp_label,
)

__all__ = ["extra_values", "float_column", "read_one", "read_table", "timestamps_ns"]

_INDEX = object()  # stands for the frame's DatetimeIndex among column labels

# A time of day followed by a zone designator: "...09:30Z", "...09:30:00-05:00", "... UTC".
_AWARE_STRING = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:[Zz]|UTC|GMT|[+-]\d{2}(?::?\d{2})?)$"


def float_column(series: pd.Series, name: str, symbol: str | None) -> np.ndarray:
    dtype = series.dtype
    if pd.api.types.is_complex_dtype(dtype):
        # numpy would drop the imaginary parts: refused rather than read as something else.
        raise DataError(
            f"{_where(symbol, 0)}: column {name!r} must be real numbers, has dtype {dtype}",
            symbol=symbol,
            row=0,
            rule="numeric columns",
        )
    if pd.api.types.is_bool_dtype(dtype) or not pd.api.types.is_numeric_dtype(dtype):
        coerced = pd.to_numeric(series, errors="coerce")
        bad = (coerced.isna() & series.notna()).to_numpy()
        row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
        raise DataError(
            f"{_where(symbol, row)}: column {name!r} must be numeric, has dtype {dtype} "
            f"(value {series.iloc[row]!r})",
            symbol=symbol,
            row=row,
            rule="numeric columns",
        )
    # A private copy: the caller may go on mutating its DataFrame.
    return np.array(series.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)


def extra_values(
    series: pd.Series, label: Any, symbol: str | None, chosen: bool, names: Any = None
) -> np.ndarray:
    """An extra column as float64 (a private copy); nulls read as NaN. A boolean column
    reads as 0/1 when the user chose it; other non-numeric columns are refused. ``names``
    gives the symbol of each row of a long frame, for the message."""
    dtype = series.dtype
    boolean = pd.api.types.is_bool_dtype(dtype)
    real = pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype)
    if (boolean and chosen) or (real and not boolean):
        return np.array(series.to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
    present = series.notna().to_numpy()
    row = int(np.flatnonzero(present)[0]) if present.any() else 0
    if names is not None:
        symbol = str(names.iloc[row])
    raise not_numeric(label, dtype, row, series.iloc[row], symbol, chosen)


def _is_text(series: pd.Series) -> bool:
    dtype = series.dtype
    return (
        pd.api.types.is_object_dtype(dtype)
        or pd.api.types.is_string_dtype(dtype)
        or isinstance(dtype, pd.CategoricalDtype)
    )


def _extra_columns(
    df: pd.DataFrame,
    used: set[Any],
    symbol: str | None,
    extra: ExtraColumns,
    symbol_column: str | None = None,
    names: Any = None,
) -> dict[str, np.ndarray]:
    labels = [
        c for c in df.columns if not names_instrument(c, _is_text(df[c]), symbol_column)
    ]
    chosen = extra.names is not None
    return {
        name: extra_values(df[label], label, symbol, chosen, names)
        for name, label in extra.pick(labels, used, symbol)
    }


def timestamps_ns(values: pd.Series, symbol: str | None) -> tuple[np.ndarray, bool]:
    """Timestamps as int64 UTC ns and whether they were tz-aware."""
    dtype = values.dtype
    try:
        if isinstance(dtype, pd.DatetimeTZDtype):
            utc = values.dt.tz_convert(None).dt.as_unit("ns")
            return utc.to_numpy().view(np.int64), True
        if dtype.kind == "M":
            return values.dt.as_unit("ns").to_numpy().view(np.int64), False
    except (pd.errors.OutOfBoundsDatetime, OverflowError) as exc:
        raise DataError(
            f"{_where(symbol) or 'data'}: timestamp out of range: {exc}",
            symbol=symbol,
            rule="timestamp in range",
        ) from exc
    if pd.api.types.is_numeric_dtype(dtype):
        raise DataError(
            f"{_where(symbol) or 'data'}: timestamps are numbers (dtype {dtype}); their unit "
            "is ambiguous: convert with pandas.to_datetime(values, unit=...)",
            symbol=symbol,
            rule="datetime timestamps",
        )
    return _parse_object_timestamps(values, symbol)


def _awareness(values: pd.Series) -> np.ndarray | None:
    """Per value, whether it carries a timezone (None for values that are all missing)."""
    present = values.notna().to_numpy()
    if not present.any():
        return None
    if pd.api.types.is_string_dtype(values.dtype) and values[present].map(type).eq(str).all():
        return values.str.contains(_AWARE_STRING, regex=True, na=False).to_numpy()
    return values.map(lambda x: getattr(x, "tzinfo", None) is not None).to_numpy()


def _parse_object_timestamps(values: pd.Series, symbol: str | None) -> tuple[np.ndarray, bool]:
    # A number among them is refused as a column of numbers is (`timestamps_ns`): its
    # unit is ambiguous, and pandas would read 20240102 as a date's digits where a later
    # pandas reads it as an epoch.
    number = (values.map(lambda x: isinstance(x, (int, float, np.number, np.bool_))).to_numpy()
              & values.notna().to_numpy())
    if number.any():
        row = int(np.flatnonzero(number)[0])
        raise DataError(
            f"{_where(symbol, row)}: timestamp {values.iloc[row]!r} is a number; its unit is "
            "ambiguous: give times (datetime, pandas.Timestamp, ISO 8601 text) or convert "
            "with pandas.to_datetime(values, unit=...)",
            symbol=symbol,
            row=row,
            rule="datetime timestamps",
        )
    # Mixed awareness is refused before parsing: a parser may read the naive values as
    # UTC and give no sign of it.
    aware = _awareness(values)
    if aware is not None:
        present = values.notna().to_numpy()
        first = int(np.flatnonzero(present)[0])
        odd = present & (aware != aware[first])
        if odd.any():
            row = int(np.flatnonzero(odd)[0])
            kinds = ("naive", "tz-aware") if aware[first] else ("tz-aware", "naive")
            raise DataError(
                f"{_where(symbol, row)}: timestamp {values.iloc[row]!r} is {kinds[0]} "
                f"but row {first} is {kinds[1]}; a mix of naive and tz-aware timestamps "
                "is refused",
                symbol=symbol,
                row=row,
                rule="consistent timezone awareness",
            )
    try:
        with warnings.catch_warnings():
            # pandas < 3 warns before returning objects for mixed offsets; handled below.
            warnings.simplefilter("ignore", FutureWarning)
            parsed = pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        parsed = None
    if parsed is None or parsed.dtype == object:
        try:
            parsed = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError, OverflowError):
            bad = pd.to_datetime(values, errors="coerce", utc=True, format="mixed").isna()
            bad = (bad & values.notna()).to_numpy()
            row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
            raise DataError(
                f"{_where(symbol, row)}: cannot read {values.iloc[row]!r} as a timestamp",
                symbol=symbol,
                row=row,
                rule="parsable timestamps",
            ) from None
    return timestamps_ns(parsed, symbol)


def _refuse_levels(df: pd.DataFrame, why: str = "") -> NoReturn:
    first = df.columns[0] if len(df.columns) else ()
    raise DataError(
        f"the columns have {df.columns.nlevels} levels (e.g. {first!r}){why}: give one "
        "table per symbol, {symbol: frame}, e.g. {s: frame.xs(s, axis=1, level=1) for s in "
        "symbols}, a long table with a symbol column, or columns in two levels, one of "
        "them open, high, low, close and volume and the other the symbols",
        rule="one level of columns",
    )


def _long_from_levels(df: pd.DataFrame, symbol_column: str | None) -> tuple[pd.DataFrame, np.ndarray]:
    """Columns in two levels, the bars' fields (open, ..., volume in any case, and any
    extra columns) in one and the symbols in the other, as a multi-ticker download gives
    them (``yfinance.download(["AAPL", "MSFT"])``, or with ``group_by="ticker"`` the
    other way round): the same bars as a long table with a symbol column.

    A time at which a symbol has no value in any of its columns is no bar of it: the
    wide table's only way to say that a symbol did not trade then (one listed later, a
    market's holiday). A row with only some values missing stays, for the bars' checks
    to refuse by symbol and row; a symbol with no value at all is refused, as a download
    that failed gives it. Returns the long table and, for each of its rows, its row in
    ``df`` (what a refusal names).
    """
    if df.columns.nlevels != 2:
        _refuse_levels(df)
    wanted = set(VALUE_COLUMNS)
    holds_fields = [
        wanted <= {str(v).strip().lower() for v in df.columns.get_level_values(k)}
        for k in (0, 1)
    ]
    if holds_fields.count(True) != 1:
        why = ("" if not any(holds_fields) else
               ", both of them named like the bars' fields, so neither is the symbols")
        _refuse_levels(df, why or ", neither of them open, high, low, close and volume")
    fields = holds_fields.index(True)
    # Each symbol's own columns hold the bars' fields (stacked, a missing one would read
    # as NaN at every row).
    own: dict[Any, set[str]] = {}
    for pair in df.columns:
        own.setdefault(pair[1 - fields], set()).add(str(pair[fields]).strip().lower())
    for symbol, names in own.items():
        find_columns(sorted(names), str(symbol))
    label = symbol_column or "symbol"
    wide = df.copy(deep=False)
    wide.columns = wide.columns.set_names(["field", label] if fields == 0 else [label, "field"])
    long = wide.stack(level=label, future_stack=True)
    held = long.notna().any(axis=1)
    by_symbol = held.groupby(level=label, sort=False).any()
    if not by_symbol.all():
        empty = [s for s, any_value in by_symbol.items() if not any_value]
        raise DataError(
            f"symbol(s) {', '.join(map(repr, empty))}: no value in any row of the two-level "
            "columns (a download that failed?); drop them or give their bars",
            symbol=str(empty[0]),
            rule="bars present",
        )
    kept = held.to_numpy()
    # Stacked row by row of `df`, a row per symbol each.
    rows = np.repeat(np.arange(len(df)), len(by_symbol))[kept]
    long = long[kept]
    long.columns = list(long.columns)
    return long.reset_index(level=label), rows


def _unwrap_index(df: pd.DataFrame, symbol_column: str | None) -> pd.DataFrame:
    """Turn a (symbol, ts) MultiIndex or a named symbol/ts index into ordinary columns.
    Columns in several levels are refused, saying how to pass them (a table of all the
    symbols in two levels, fields and symbols, is read by `_long_from_levels` first)."""
    if isinstance(df.columns, pd.MultiIndex):
        _refuse_levels(df)
    names = [str(n).lower() for n in df.index.names if n is not None]
    wanted = {(symbol_column or "symbol").lower(), *TIMESTAMP_COLUMNS}
    if isinstance(df.index, pd.MultiIndex) or (names and names[0] in wanted):
        return df.reset_index()
    return df


def _frame_columns(
    df: pd.DataFrame, symbol: str | None
) -> tuple[np.ndarray, bool, list[np.ndarray], dict[str, Any]]:
    found = find_columns(list(df.columns), symbol)
    index = _INDEX if isinstance(df.index, pd.DatetimeIndex) else None
    refuse_no_rows(len(df), symbol)
    label = timestamp_label(found, index, "DatetimeIndex", symbol)
    source = pd.Series(df.index, copy=False) if label is _INDEX else df[label]
    ts, aware = timestamps_ns(source, symbol)
    ts = np.array(ts, copy=True)
    values = [float_column(df[found[name]], name, symbol) for name in VALUE_COLUMNS]
    return ts, aware, values, found


def _refuse_identifiers(df: pd.DataFrame, used: set[Any], symbol: str | None) -> None:
    """A frame read as one symbol's bars holds no column naming several instruments."""
    for label in df.columns:
        if label in used:
            continue
        dtype = df[label].dtype
        text = (
            pd.api.types.is_object_dtype(dtype)
            or pd.api.types.is_string_dtype(dtype)
            or isinstance(dtype, pd.CategoricalDtype)
        )
        if text or (pd.api.types.is_integer_dtype(dtype) and is_identifier_name(label)):
            distinct = pd.unique(df[label].dropna())
            if len(distinct) > 1:
                refuse_identifier_column(label, list(distinct), symbol)


def read_one(
    df: Any, symbol: str, extra: ExtraColumns = ALL_EXTRA, *, alone: bool = False
) -> tuple[SymbolBars, bool]:
    """One symbol's frame -> its bars and whether its timestamps were tz-aware.

    ``alone``: the frame is all the data (so ``allow_nan`` must name its columns)."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"symbol {symbol!r}: expected a pandas DataFrame, got {type(df).__name__}",
            symbol=symbol,
        )
    df = _unwrap_index(df, None)
    ts, aware, values, found = _frame_columns(df, symbol)
    used = set(found.values())
    _refuse_identifiers(df, used, symbol)
    columns = _extra_columns(df, used, symbol, extra)
    if alone:
        extra.check_nan_names(columns)
    check_bars(symbol, ts, *values)
    check_extra_columns(symbol, ts, columns, extra.allow_nan)
    return SymbolBars._trusted(symbol, ts, *values, extra=columns), aware


def read_table(
    df: pd.DataFrame,
    *,
    symbol_column: str | None,
    symbol: str | None,
    extra: ExtraColumns = ALL_EXTRA,
) -> list[SymbolBars]:
    """A frame for one symbol, a long frame with a symbol column, or a wide one with its
    columns in two levels (`_long_from_levels`) -> bars per symbol."""
    rows = None
    if isinstance(df.columns, pd.MultiIndex) and df.columns.nlevels == 2:
        df, rows = _long_from_levels(df, symbol_column)
    frame = _unwrap_index(df, symbol_column)
    label = symbol_label(list(frame.columns), symbol_column)
    if label is None:
        name = symbol or df.attrs.get("symbol", DEFAULT_SYMBOL)
        return [read_one(frame, name, extra, alone=True)[0]]
    refuse_no_rows(len(frame), None)
    names = frame[label]
    codes, uniques = pd.factorize(names, sort=True, use_na_sentinel=True)
    check_symbol_names(codes, list(uniques), names)
    ts, _aware, values, found = _frame_columns(frame, None)
    used = {*found.values(), label}
    columns = _extra_columns(frame, used, None, extra, symbol_column, names)
    extra.check_nan_names(columns)
    return split_by_symbol(
        codes, [str(u) for u in uniques], ts, values, columns, extra.allow_nan, rows=rows
    )
