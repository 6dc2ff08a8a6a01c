"""Symbol metadata (sector, exchange, timezone, ...): checked before a store keeps it."""

from __future__ import annotations

import functools
import re
import zoneinfo
from os import PathLike
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._calendars import exchange_timezone
from tickstep.data._columns import DataError

__all__ = ["METADATA_COLUMNS", "clean_metadata", "metadata_frame", "metadata_sql_type"]

# Metadata columns every store has; more can be added by ingesting them.
METADATA_COLUMNS = ("name", "sector", "industry", "exchange", "timezone", "currency")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_RESERVED = {"symbol", "symbol_id"}


@functools.lru_cache(maxsize=1)
def _exchange_names() -> frozenset[str]:
    import exchange_calendars as xc

    return frozenset(xc.get_calendar_names(include_aliases=True))


def clean_metadata(metadata: Any) -> pd.DataFrame:
    """Validate symbol metadata: a DataFrame (or CSV path) indexed by or with ``symbol``.

    Column names are lower-cased and must be plain identifiers. ``timezone`` must be an
    IANA name, ``exchange`` an ``exchange_calendars`` name; a missing timezone is
    filled from the exchange's calendar. Errors name the symbol and the row.
    """
    source = None
    if isinstance(metadata, (str, PathLike)):
        source = str(metadata)
        try:
            metadata = pd.read_csv(metadata, dtype={"symbol": str})
        except (OSError, ValueError) as exc:
            raise DataError(f"file '{source}': cannot read metadata: {exc}") from None
    if not isinstance(metadata, pd.DataFrame):
        raise DataError(f"metadata must be a DataFrame or a CSV path, got {type(metadata)}")
    meta = metadata.copy()
    if meta.index.name is not None and str(meta.index.name).lower() == "symbol":
        meta = meta.reset_index()
    meta.columns = [str(c).strip().lower() for c in meta.columns]
    prefix = f"file '{source}': " if source else ""
    if "symbol" not in meta.columns:
        raise DataError(f"{prefix}metadata needs a 'symbol' column or index")
    for col in meta.columns:
        if col != "symbol" and (not _IDENTIFIER.match(col) or col in _RESERVED):
            raise DataError(
                f"{prefix}metadata column {col!r} is not a plain lower-case name "
                "(letters, digits, underscores)"
            )
    names = meta["symbol"]
    bad = names.isna() | ~names.map(lambda s: isinstance(s, str) and bool(s))
    if bad.any():
        row = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{prefix}metadata row {row}: symbol {names.iloc[row]!r} is not a name")
    dup = names.duplicated()
    if dup.any():
        row = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataError(
            f"{prefix}metadata row {row}: symbol {names.iloc[row]!r} appears twice", row=row
        )
    if "timezone" in meta.columns:
        valid = zoneinfo.available_timezones() | {"UTC"}
        for row, (sym, tz) in enumerate(zip(names, meta["timezone"])):
            if isinstance(tz, str) and tz not in valid or not (isinstance(tz, str) or pd.isna(tz)):
                raise DataError(
                    f"{prefix}metadata row {row}: symbol {sym!r} has unknown timezone {tz!r} "
                    "(expected an IANA name such as 'America/New_York')",
                    symbol=sym,
                    row=row,
                    rule="known timezone",
                )
    if "exchange" in meta.columns:
        known = _exchange_names()
        for row, (sym, ex) in enumerate(zip(names, meta["exchange"])):
            if not (pd.isna(ex) or (isinstance(ex, str) and ex in known)):
                raise DataError(
                    f"{prefix}metadata row {row}: symbol {sym!r} has unknown exchange {ex!r} "
                    "(expected an exchange_calendars name such as 'XNYS', 'NYSE', 'XLON')",
                    symbol=sym,
                    row=row,
                    rule="known exchange",
                )
        if "timezone" not in meta.columns:
            meta["timezone"] = None
        fill = meta["timezone"].isna() & meta["exchange"].notna()
        meta.loc[fill, "timezone"] = meta.loc[fill, "exchange"].map(exchange_timezone)
    return meta.reset_index(drop=True)


def metadata_sql_type(series: pd.Series) -> str:
    """SQL type for a metadata column: numbers as DOUBLE PRECISION, else text."""
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series):
        return "DOUBLE PRECISION"
    return "TEXT"


def metadata_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Stored symbol rows -> the ``MarketColumns.metadata`` frame (index symbol)."""
    meta = rows.drop(columns=[c for c in ("symbol_id",) if c in rows.columns])
    meta = meta.set_index("symbol")
    meta.index.name = "symbol"
    return meta
