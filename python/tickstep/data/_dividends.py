"""Dividends as the bars carry them: a table of ex-dates and amounts (what a vendor's
corporate actions, or yfinance's ``Ticker.dividends``, give) put on each symbol's bars as
an extra column of the cash dividend per share on the bar it goes ex, the column
``BacktestConfig.dividend_column`` names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._columns import DataError, MarketColumns
from tickstep.data._resolve import resolve
from tickstep.hints import did_you_mean

__all__ = ["with_dividends"]

#: The columns of a table of dividends, one row per (symbol, ex-date).
DIVIDEND_COLUMNS = ("symbol", "ex_date", "amount")


def with_dividends(data: Any, dividends: Any, *, timezone: str = "UTC",
                   column: str = "dividend", **load_options: Any) -> MarketColumns:
    """The bars of ``data`` with a column ``column`` holding each bar's cash dividend per
    share: the amount of a dividend on the symbol's first bar on or after its ex-date,
    0 at every other bar. Run with ``dividend_column=column`` to pay them.

    Parameters
    ----------
    data : MarketColumns or anything `tickstep.data.resolve` takes
        The bars (resolved first, with ``load_options``, when not `MarketColumns`).
    dividends : DataFrame or mapping
        A table with the columns ``symbol``, ``ex_date`` and ``amount`` (one row per
        dividend), or ``{symbol: Series}`` of amounts indexed by ex-date (the shape of
        yfinance's ``Ticker.dividends``).
    timezone : str, default "UTC"
        The calendar the ex-dates are days of: a bar is on or after an ex-date when its
        time's date there is. UTC for daily bars (labelled with their session date at
        00:00 UTC); the exchange's (``"America/New_York"``) for intraday bars, so that the
        dividend is on the ex-date's first bar of the session. An ex-date given with a
        time zone is converted to it first.
    column : str, default "dividend"
        The name of the new column.

    Returns
    -------
    MarketColumns
        The same bars, metadata and call order, each symbol with the new column.

    Notes
    -----
    An ex-date with no bar of its own (a holiday in the data) puts its dividend on the
    next bar; two dividends that so fall on one bar are summed. A dividend before a
    symbol's first bar or after its last one falls outside the data and is left out: no
    position can be held into it. Refused, by name: a symbol the data does not hold, a
    missing column, an amount that is not a finite number of 0 or more, the same
    symbol and ex-date twice, and a ``column`` some symbol already has.

    Examples
    --------
    >>> import pandas as pd, tickstep.data as td
    >>> bars = td.sample_daily(symbols=["AAA"], days=5, seed=1)   # 2020-01-02 .. 01-08
    >>> table = pd.DataFrame({"symbol": ["AAA"], "ex_date": ["2020-01-07"], "amount": [0.25]})
    >>> td.with_dividends(bars, table)["AAA"].extra["dividend"].tolist()
    [0.0, 0.0, 0.0, 0.25, 0.0]
    >>> on_a_saturday = table.assign(ex_date="2020-01-04")           # on Monday's bar
    >>> td.with_dividends(bars, on_a_saturday)["AAA"].extra["dividend"].tolist()
    [0.0, 0.0, 0.25, 0.0, 0.0]
    """
    if load_options and isinstance(data, MarketColumns):
        raise TypeError(f"load options {sorted(load_options)} apply to data still to be "
                        "loaded, not to MarketColumns")
    market = data if isinstance(data, MarketColumns) else resolve(data, **load_options)
    table = _table(dividends)
    symbols = set(market.symbols)
    for symbol in table["symbol"].unique():
        if symbol not in symbols:
            raise DataError(f"dividends: symbol {symbol!r} is not in the data"
                            f"{did_you_mean(symbol, sorted(symbols))}; keep the table's "
                            "rows of the symbols loaded", symbol=str(symbol),
                            rule="dividends of known symbols")
    days = _ex_days(table["ex_date"], timezone)
    twice = pd.DataFrame({"symbol": table["symbol"], "day": days}).duplicated()
    if twice.any():
        k = int(np.argmax(twice.to_numpy()))
        raise DataError(f"dividends: symbol {table['symbol'].iloc[k]!r} has two dividends on "
                        f"ex-date {table['ex_date'].iloc[k]} (one row per dividend: sum them "
                        "if both are due)", symbol=str(table["symbol"].iloc[k]),
                        rule="one dividend per ex-date")
    bars = []
    for b in market.bars:
        if column in b.extra or column.lower() in {k.lower() for k in b.extra}:
            raise DataError(f"symbol {b.symbol!r} already has a column {column!r}; name the "
                            "dividends' column otherwise (column=...)", symbol=b.symbol,
                            rule="a new column")
        mine = (table["symbol"] == b.symbol).to_numpy()
        bar_days = _local_days(b.ts, timezone)
        # The first bar whose day is on or after each ex-date (len(bars): none).
        at = np.searchsorted(bar_days, days[mine], side="left")
        paid = np.zeros(len(b.ts))
        inside = (at < len(b.ts)) & (days[mine] >= bar_days[0])
        np.add.at(paid, at[inside], table["amount"].to_numpy()[mine][inside])
        bars.append(dataclasses.replace(b, extra={**b.extra, column: paid}))
    return dataclasses.replace(market, bars=bars)


def _table(dividends: Any) -> pd.DataFrame:
    """The dividends as one frame of ``symbol``, ``ex_date``, ``amount``, checked."""
    if isinstance(dividends, Mapping):
        parts = []
        for symbol, series in dividends.items():
            if not isinstance(series, pd.Series):
                raise DataError(f"dividends[{symbol!r}]: expected a pandas Series of amounts "
                                f"indexed by ex-date, got {type(series).__name__}",
                                symbol=str(symbol), rule="dividends' shape")
            parts.append(pd.DataFrame({"symbol": str(symbol), "ex_date": series.index,
                                       "amount": series.to_numpy()}))
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {c: [] for c in DIVIDEND_COLUMNS})
    elif isinstance(dividends, pd.DataFrame):
        missing = [c for c in DIVIDEND_COLUMNS if c not in dividends.columns]
        if missing:
            raise DataError(f"dividends: the table has no column {missing[0]!r} (its columns: "
                            f"{', '.join(map(str, dividends.columns)) or 'none'}); a table of "
                            f"dividends has the columns {', '.join(DIVIDEND_COLUMNS)}",
                            rule="dividends' shape")
        frame = dividends.loc[:, list(DIVIDEND_COLUMNS)].reset_index(drop=True)
    else:
        raise DataError("dividends: expected a DataFrame with the columns symbol, ex_date and "
                        "amount, or {symbol: Series of amounts indexed by ex-date}, got "
                        f"{type(dividends).__name__}", rule="dividends' shape")
    # Numbers as given: text ("0.25") or a bool is refused, never read as a number.
    for k, value in enumerate(frame["amount"].tolist()):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise DataError(f"dividends: symbol {frame['symbol'].iloc[k]!r}, ex-date "
                            f"{frame['ex_date'].iloc[k]}: amount {value!r} is not a number",
                            symbol=str(frame["symbol"].iloc[k]), rule="dividend amounts")
    amounts = frame["amount"].to_numpy(dtype=float)
    bad = ~(np.isfinite(amounts) & (amounts >= 0))
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"dividends: symbol {frame['symbol'].iloc[k]!r}, ex-date "
                        f"{frame['ex_date'].iloc[k]}: amount {frame['amount'].tolist()[k]!r} must "
                        "be a finite number, 0 or above", symbol=str(frame["symbol"].iloc[k]),
                        rule="dividend amounts")
    frame["amount"] = amounts
    return frame


def _ex_days(values: pd.Series, timezone: str) -> np.ndarray:
    """Each ex-date as a day number (days since 1970-01-01) of ``timezone``'s calendar."""
    stamps = pd.to_datetime(values, errors="coerce", format="mixed")
    if stamps.isna().any():
        k = int(np.argmax(stamps.isna().to_numpy()))
        raise DataError(f"dividends: ex-date {values.iloc[k]!r} is not a date",
                        rule="dividend ex-dates")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(timezone).dt.tz_localize(None)
    return stamps.dt.normalize().to_numpy(dtype="datetime64[D]").astype(np.int64)


def _local_days(ts: np.ndarray, timezone: str) -> np.ndarray:
    """Each bar's day number in ``timezone``'s calendar."""
    local = pd.DatetimeIndex(ts.astype("datetime64[ns]"), tz="UTC").tz_convert(timezone)
    return local.tz_localize(None).normalize().to_numpy(dtype="datetime64[D]").astype(np.int64)
