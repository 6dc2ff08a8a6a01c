"""pandas shapes -> validated columns: one frame, a mapping of frames, a long frame.

Columns are found by name (case-insensitive), timestamps from a DatetimeIndex or one
timestamp column, and every rule of `check_bars` runs per symbol with the row positions
of the user's own frame.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._columns import (
    TIMESTAMP_COLUMNS,
    VALUE_COLUMNS,
    DataError,
    MarketColumns,
    SymbolBars,
    _where,
    check_bars,
)

__all__ = ["to_market_columns"]

# An ISO-like time of day followed by a zone designator: "...09:30Z", "...09:30:00-05:00".
_AWARE_STRING = r"\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\s*(?:Z|[+-]\d{2}(?::?\d{2})?)$"


def _find_columns(df: pd.DataFrame, symbol: str | None) -> dict[str, Any]:
    """Map lower-case canonical names to the frame's own column labels."""
    by_lower: dict[str, list[Any]] = {}
    for col in df.columns:
        if isinstance(col, str):
            by_lower.setdefault(col.strip().lower(), []).append(col)
    found = {}
    wanted = VALUE_COLUMNS + TIMESTAMP_COLUMNS
    for name in wanted:
        labels = by_lower.get(name, [])
        if len(labels) > 1:
            raise DataError(
                f"{_where(symbol) or 'data'}: columns {labels} differ only by case; keep one",
                symbol=symbol,
                rule="unambiguous columns",
            )
        if labels:
            found[name] = labels[0]
    missing = [name for name in VALUE_COLUMNS if name not in found]
    if missing:
        have = ", ".join(map(str, df.columns))
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


def _float_column(series: pd.Series, name: str, symbol: str | None) -> np.ndarray:
    dtype = series.dtype
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


def _timestamps_ns(values: pd.Series, symbol: str | None) -> tuple[np.ndarray, bool]:
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


def _parse_object_timestamps(values: pd.Series, symbol: str | None) -> tuple[np.ndarray, bool]:
    try:
        with warnings.catch_warnings():
            # pandas < 3 warns before returning objects for mixed offsets; handled below.
            warnings.simplefilter("ignore", FutureWarning)
            parsed = pd.to_datetime(values, format="ISO8601")
    except (ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.dtype == object:
        if pd.api.types.is_string_dtype(values.dtype) and values.map(type).eq(str).all():
            aware = values.str.contains(_AWARE_STRING, regex=True, na=False).to_numpy()
        else:
            aware = values.map(lambda x: getattr(x, "tzinfo", None) is not None).to_numpy()
        if aware.any() and not aware.all():
            row = int(np.flatnonzero(aware != aware[0])[0])
            kinds = ("naive", "tz-aware") if aware[0] else ("tz-aware", "naive")
            raise DataError(
                f"{_where(symbol, row)}: timestamp {values.iloc[row]!r} is {kinds[0]} "
                f"but row 0 is {kinds[1]}; a mix of naive and tz-aware timestamps is refused",
                symbol=symbol,
                row=row,
                rule="consistent timezone awareness",
            )
        try:
            parsed = pd.to_datetime(values, utc=True, format="ISO8601")
        except (ValueError, TypeError):
            bad = pd.to_datetime(values, errors="coerce", utc=True, format="mixed").isna()
            bad = (bad & values.notna()).to_numpy()
            row = int(np.flatnonzero(bad)[0]) if bad.any() else 0
            raise DataError(
                f"{_where(symbol, row)}: cannot read {values.iloc[row]!r} as a timestamp",
                symbol=symbol,
                row=row,
                rule="parsable timestamps",
            ) from None
    return _timestamps_ns(parsed, symbol)


def _timestamp_source(df: pd.DataFrame, cols: dict[str, Any], symbol: str | None) -> pd.Series:
    named = [cols[n] for n in TIMESTAMP_COLUMNS if n in cols]
    index_is_time = isinstance(df.index, pd.DatetimeIndex)
    if len(named) > 1 or (named and index_is_time):
        where = ", ".join(map(repr, named)) + (" and the DatetimeIndex" if index_is_time else "")
        raise DataError(
            f"{_where(symbol) or 'data'}: timestamps found in more than one place ({where}); "
            "keep exactly one of a DatetimeIndex or a column named ts/timestamp/time/"
            "datetime/date",
            symbol=symbol,
            rule="one timestamp source",
        )
    if named:
        return df[named[0]]
    if index_is_time:
        return pd.Series(df.index, copy=False)
    raise DataError(
        f"{_where(symbol) or 'data'}: no timestamps; use a DatetimeIndex or a column named "
        "ts, timestamp, time, datetime or date",
        symbol=symbol,
        rule="timestamps present",
    )


def _unwrap_index(df: pd.DataFrame, symbol_column: str) -> pd.DataFrame:
    """Turn a (symbol, ts) MultiIndex or a named symbol/ts index into ordinary columns."""
    names = [str(n).lower() for n in df.index.names if n is not None]
    wanted = {symbol_column.lower(), *TIMESTAMP_COLUMNS}
    if isinstance(df.index, pd.MultiIndex) or (names and names[0] in wanted):
        return df.reset_index()
    return df


def _frame_columns(
    df: pd.DataFrame, symbol: str | None
) -> tuple[np.ndarray, bool, list[np.ndarray]]:
    cols = _find_columns(df, symbol)
    ts, aware = _timestamps_ns(_timestamp_source(df, cols, symbol), symbol)
    ts = np.array(ts, copy=True)
    values = [_float_column(df[cols[name]], name, symbol) for name in VALUE_COLUMNS]
    return ts, aware, values


def _one_frame(df: pd.DataFrame, symbol: str) -> tuple[SymbolBars, bool]:
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"symbol {symbol!r}: expected a pandas DataFrame, got {type(df).__name__}",
            symbol=symbol,
        )
    df = _unwrap_index(df, "symbol")
    ts, aware, values = _frame_columns(df, symbol)
    check_bars(symbol, ts, *values)
    return SymbolBars._trusted(symbol, ts, *values), aware


def _symbol_column(df: pd.DataFrame, symbol_column: str) -> Any | None:
    labels = [c for c in df.columns if isinstance(c, str) and c.lower() == symbol_column.lower()]
    if len(labels) > 1:
        raise DataError(f"columns {labels} differ only by case; keep one", rule="unambiguous")
    return labels[0] if labels else None


def _long_frame(df: pd.DataFrame, label: Any) -> list[SymbolBars]:
    if len(df) == 0:
        raise DataError("no data: the DataFrame has no rows", rule="non-empty")
    names = df[label]
    codes, uniques = pd.factorize(names, sort=True, use_na_sentinel=True)
    if (codes < 0).any():
        row = int(np.flatnonzero(codes < 0)[0])
        raise DataError(f"row {row}: symbol is missing", row=row, rule="symbol present")
    bad_names = [u for u in uniques if not isinstance(u, str) or not u]
    if bad_names:
        row = int(np.flatnonzero(names.to_numpy() == bad_names[0])[0])
        raise DataError(
            f"row {row}: symbol names must be non-empty strings, got {bad_names[0]!r}",
            row=row,
            rule="symbol names",
        )
    ts, _aware, values = _frame_columns(df, None)
    # Group rows by symbol, keeping each symbol's rows in their input order: a stable
    # sort of small integer codes (radix sort), or plain slices when already grouped.
    change = np.flatnonzero(codes[1:] != codes[:-1]) + 1
    if len(change) + 1 == len(uniques):
        starts = np.concatenate(([0], change))
        ends = np.concatenate((change, [len(codes)]))
        groups = [(int(codes[s]), np.arange(s, e)) for s, e in zip(starts, ends)]
        groups.sort()
        selections = [(code, slice(int(r[0]), int(r[-1]) + 1), r) for code, r in groups]
    else:
        small = codes.astype(np.int16 if len(uniques) < 2**15 else np.int64)
        order = np.argsort(small, kind="stable")
        bounds = np.searchsorted(small[order], np.arange(len(uniques) + 1))
        selections = [
            (k, order[bounds[k] : bounds[k + 1]], order[bounds[k] : bounds[k + 1]])
            for k in range(len(uniques))
        ]
    out = []
    for code, sel, rows in selections:
        symbol = str(uniques[code])
        part = [ts[sel], *(v[sel] for v in values)]
        check_bars(symbol, *part, rows=rows)
        out.append(SymbolBars._trusted(symbol, *part))
    return out


def _align_metadata(metadata: pd.DataFrame | None, symbols: list[str]) -> pd.DataFrame | None:
    if metadata is None:
        return None
    if not isinstance(metadata, pd.DataFrame):
        raise DataError(f"metadata must be a DataFrame indexed by symbol, got {type(metadata)}")
    meta = metadata
    if meta.index.name != "symbol" and "symbol" in meta.columns:
        meta = meta.set_index("symbol")
    if not meta.index.is_unique:
        dup = meta.index[meta.index.duplicated()].unique().tolist()
        raise DataError(f"metadata has more than one row for symbol(s) {dup}", rule="unique")
    meta = meta.reindex(symbols)
    meta.index.name = "symbol"
    return meta


def to_market_columns(
    data: Any,
    *,
    symbol_column: str = "symbol",
    metadata: pd.DataFrame | None = None,
) -> MarketColumns:
    """Turn bars in any supported shape into validated per-symbol numpy columns.

    This is the door of the engine: whatever comes in leaves as contiguous int64 UTC
    nanosecond timestamps and float64 open/high/low/close/volume per symbol, or is refused
    with a `DataError` naming the symbol, the row (position and timestamp) and the rule.

    Parameters
    ----------
    data : DataFrame, Mapping[str, DataFrame] or MarketColumns
        One of:

        * a DataFrame for one symbol, named ``df.attrs["symbol"]`` or ``"ASSET"``;
        * a mapping ``symbol -> DataFrame``;
        * a long DataFrame with a symbol column (see `symbol_column`), or indexed by a
          ``(symbol, ts)`` MultiIndex; each symbol's rows must be in time order, but the
          symbols may be interleaved;
        * a `MarketColumns`, returned as is.
    symbol_column : str, default "symbol"
        Name of the symbol column of a long DataFrame (case-insensitive).
    metadata : DataFrame, optional
        Symbol metadata (sector, exchange, timezone, ...) indexed by symbol or with a
        ``symbol`` column; aligned to the loaded symbols.

    Returns
    -------
    MarketColumns
        Symbols sorted by name.

    Raises
    ------
    DataError
        On the first broken rule. Nothing is silently dropped, sorted or repaired.

    Notes
    -----
    Columns ``open, high, low, close, volume`` are found case-insensitively (``Open``,
    ``OPEN``); other columns are ignored. ``volume`` is required: volume-based sizing
    and rules need it, so a source without it must say so explicitly (zeros).

    Timestamps come from a ``DatetimeIndex`` or from one column named ``ts``,
    ``timestamp``, ``time``, ``datetime`` or ``date`` (case-insensitive). Naive
    timestamps are taken as UTC; tz-aware ones are converted to UTC. A mix of naive and
    tz-aware timestamps (across symbols, or within one column) is refused.

    Rules, each refused with the symbol, row and timestamp: no symbols or a symbol with
    no rows; missing or non-numeric columns; timestamps not strictly increasing
    (unsorted or duplicate); NaN or infinite prices or volume; prices <= 0; high < low;
    open or close outside [low, high]; negative volume.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame(
    ...     {"Open": [10.0, 10.2], "High": [10.5, 10.4], "Low": [9.9, 10.0],
    ...      "Close": [10.2, 10.1], "Volume": [1200, 900]},
    ...     index=pd.to_datetime(["2024-01-02 14:30", "2024-01-02 14:31"]),
    ... )
    >>> market = to_market_columns({"ABC": df})
    >>> market.symbols
    ['ABC']
    >>> market.bars[0].close
    array([10.2, 10.1])
    """
    if isinstance(data, MarketColumns):
        if metadata is not None:
            return MarketColumns(data.bars, _align_metadata(metadata, data.symbols))
        return data
    if isinstance(data, pd.DataFrame):
        frame = _unwrap_index(data, symbol_column)
        label = _symbol_column(frame, symbol_column)
        if label is not None:
            bars = _long_frame(frame, label)
        else:
            symbol = data.attrs.get("symbol", "ASSET")
            bars = [_one_frame(frame, symbol)[0]]
    elif isinstance(data, Mapping):
        if len(data) == 0:
            raise DataError("no data: the mapping has no symbols", rule="non-empty")
        bad = [k for k in data if not isinstance(k, str) or not k]
        if bad:
            raise DataError(f"symbol names must be non-empty strings, got {bad[0]!r}")
        bars = []
        awareness: dict[bool, str] = {}
        for symbol in sorted(data):
            one, aware = _one_frame(data[symbol], symbol)
            awareness.setdefault(aware, symbol)
            bars.append(one)
        if len(awareness) > 1:
            raise DataError(
                f"symbol {awareness[False]!r} has naive timestamps but symbol "
                f"{awareness[True]!r} has tz-aware ones; a mix of naive and tz-aware "
                "timestamps is refused (naive would be taken as UTC)",
                symbol=awareness[False],
                rule="consistent timezone awareness",
            )
    else:
        raise DataError(
            f"cannot read bars from {type(data).__name__}: pass a DataFrame, a mapping "
            "symbol -> DataFrame, a long DataFrame with a symbol column, or MarketColumns"
        )
    return MarketColumns(bars, _align_metadata(metadata, [b.symbol for b in bars]))
