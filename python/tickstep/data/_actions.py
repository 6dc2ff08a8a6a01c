"""Corporate actions as the bars need them, from the tables vendors give (a vendor's
corporate actions, or yfinance's ``Ticker.dividends`` and ``Ticker.splits``): dividends
put on each symbol's bars as an extra column of the cash dividend per share on the bar it
goes ex (the column ``BacktestConfig.dividend_column`` names), and splits taken out of
raw bars (prices and volumes adjusted back from each split, as vendors' split-adjusted
bars are).

Both read a table of one action per row (symbol, ex-date, value) by the same rules, and
place each action on the symbol's first bar on or after its ex-date (`_ex_bars`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._columns import DataError, MarketColumns, SymbolBars
from tickstep.data._resolve import resolve
from tickstep.hints import did_you_mean

__all__ = ["adjust_for_splits", "with_dividends"]


@dataclasses.dataclass(frozen=True)
class _Kind:
    """A kind of corporate action: how its table is named and what its value must be."""

    #: The table's name in messages ("dividends").
    name: str
    #: One action in messages ("dividend").
    one: str
    #: The column of its value ("amount").
    value: str
    #: Whether a finite value is allowed, and the rule's words when not.
    allowed: Callable[[np.ndarray], np.ndarray]
    rule: str
    #: What to do with two on one day, in the refusal's words.
    together: str

    @property
    def columns(self) -> tuple[str, str, str]:
        return ("symbol", "ex_date", self.value)


DIVIDENDS = _Kind("dividends", "dividend", "amount", lambda v: v >= 0,
                  "be a finite number, 0 or above", "sum them if both are due")
SPLITS = _Kind("splits", "split", "ratio", lambda v: v > 0,
               "be a finite number above 0 (new shares per old share: 2 for a 2-for-1 split, "
               "0.1 for a 1-for-10 reverse split)", "multiply their ratios if both are due")

#: The columns of a table of dividends, one row per (symbol, ex-date).
DIVIDEND_COLUMNS = DIVIDENDS.columns

#: A split whose ratio is at least this far from 1 (either way) is checked against the
#: raw bars: the price must jump there by nearer its ratio than not at all.
_CHECKED_RATIO = 1.5


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
    market = _market(data, load_options)
    table = _table(dividends, DIVIDENDS, market, timezone)
    bars = []
    for b in market.bars:
        if column in b.extra or column.lower() in {k.lower() for k in b.extra}:
            raise DataError(f"symbol {b.symbol!r} already has a column {column!r}; name the "
                            "dividends' column otherwise (column=...)", symbol=b.symbol,
                            rule="a new column")
        at, amounts = _ex_bars(b, table, timezone)
        paid = np.zeros(len(b.ts))
        np.add.at(paid, at, amounts)
        bars.append(dataclasses.replace(b, extra={**b.extra, column: paid}))
    return dataclasses.replace(market, bars=bars)


def adjust_for_splits(data: Any, splits: Any, *, timezone: str = "UTC",
                      per_share: Iterable[str] = (), check: bool = True,
                      **load_options: Any) -> MarketColumns:
    """Raw bars adjusted for splits, as vendors' split-adjusted bars are: each bar before a
    split's ex-date has its prices divided by the split's ratio and its volume multiplied
    by it, so that the prices run on without the split's jump and a share is a share of
    today (the latest split in the data) throughout.

    Parameters
    ----------
    data : MarketColumns or anything `tickstep.data.resolve` takes
        The raw bars (resolved first, with ``load_options``, when not `MarketColumns`).
    splits : DataFrame or mapping
        A table with the columns ``symbol``, ``ex_date`` and ``ratio`` (one row per
        split; the ratio is new shares per old share: 2 for a 2-for-1 split, 0.1 for a
        1-for-10 reverse split), or ``{symbol: Series}`` of ratios indexed by ex-date
        (the shape of yfinance's ``Ticker.splits``).
    timezone : str, default "UTC"
        The calendar the ex-dates are days of, as for `with_dividends`: the split is
        effective from the symbol's first bar on or after its ex-date there.
    per_share : iterable of str, default ()
        Extra columns of amounts per share, adjusted as prices are (divided by the
        ratio): a column of dividends as paid on the raw shares (`with_dividends` of a
        table of raw amounts). Other extra columns are left as they are.
    check : bool, default True
        Check each split of a ratio of 1.5 or more (or 1/1.5 or less) against the raw
        bars: the close before its ex bar over that bar's open must be nearer the ratio
        than 1 (on a log scale), else the bars look adjusted already, or the ex-date is
        not where their prices jump, and the split is refused by name. ``False`` skips it.

    Returns
    -------
    MarketColumns
        The same symbols, times, metadata and call order, the prices, volumes and
        ``per_share`` columns adjusted.

    Notes
    -----
    A split on or before a symbol's first bar, or after its last, adjusts none of its
    bars: the bars are in the shares of their own time already. Several splits
    compound: a bar before two 2-for-1 splits has its prices divided by 4. Adjusted
    bars hold the split's later news in their earlier prices only as a scale: every
    return, and so every signal on returns, is the raw bars'; sizes and per-share
    commissions are in today's shares. Refused, by name: a symbol the data does not
    hold, a missing column, a ratio that is not a finite number above 0, the same symbol
    and ex-date twice, a ``per_share`` column some symbol lacks, and (``check``) a
    split the raw bars do not show.

    Examples
    --------
    >>> import pandas as pd, tickstep.data as td
    >>> raw = pd.DataFrame({"open": [98.0, 100.0, 51.0, 52.0], "high": [101.0, 102.0, 52.0, 53.0],
    ...                     "low": [97.0, 99.0, 50.0, 51.0], "close": [100.0, 101.0, 52.0, 52.5],
    ...                     "volume": [1000.0, 1200.0, 2600.0, 2400.0]},
    ...                    index=pd.date_range("2024-03-04", periods=4, freq="D"))
    >>> table = pd.DataFrame({"symbol": ["AAA"], "ex_date": ["2024-03-06"], "ratio": [2.0]})
    >>> adjusted = td.adjust_for_splits({"AAA": raw}, table)["AAA"]
    >>> adjusted.close.tolist(), adjusted.volume.tolist()
    ([50.0, 50.5, 52.0, 52.5], [2000.0, 2400.0, 2600.0, 2400.0])
    """
    market = _market(data, load_options)
    table = _table(splits, SPLITS, market, timezone)
    per_share = [per_share] if isinstance(per_share, str) else list(per_share)
    bars = []
    for b in market.bars:
        for name in per_share:
            if name not in b.extra:
                raise DataError(f"adjust_for_splits: symbol {b.symbol!r} has no column {name!r} "
                                f"(per_share=){did_you_mean(name, sorted(b.extra))}; its extra "
                                f"columns: {', '.join(sorted(b.extra)) or 'none'}",
                                symbol=b.symbol, rule="per-share columns")
        at, ratios = _ex_bars(b, table, timezone)
        # A split at the first bar has no bar before it to adjust.
        at, ratios = at[at > 0], ratios[at > 0]
        if check:
            _check_jumps(b, at, ratios)
        # Per bar, the product of the ratios of the splits after it: a split at bar i
        # scales bars 0 .. i-1.
        scale = np.ones(len(b.ts) + 1)
        np.multiply.at(scale, at, ratios)
        factor = np.cumprod(scale[::-1])[::-1][1:]
        extra = {k: (v / factor if k in per_share else v) for k, v in b.extra.items()}
        bars.append(SymbolBars(b.symbol, b.ts, b.open / factor, b.high / factor,
                               b.low / factor, b.close / factor, b.volume * factor, extra))
    return dataclasses.replace(market, bars=bars)


def _market(data: Any, load_options: Mapping[str, Any]) -> MarketColumns:
    """``data`` as `MarketColumns` (resolved with ``load_options`` if it is not)."""
    if load_options and isinstance(data, MarketColumns):
        raise TypeError(f"load options {sorted(load_options)} apply to data still to be "
                        "loaded, not to MarketColumns")
    return data if isinstance(data, MarketColumns) else resolve(data, **load_options)


def _check_jumps(b: SymbolBars, at: np.ndarray, ratios: np.ndarray) -> None:
    """Refuse a split of a large ratio that ``b``'s raw bars do not show at its ex bar."""
    for i, ratio in zip(at.tolist(), ratios.tolist(), strict=True):
        if abs(math.log(ratio)) < math.log(_CHECKED_RATIO):
            continue
        before, at_open = float(b.close[i - 1]), float(b.open[i])
        jump = math.log(before / at_open) if before > 0 and at_open > 0 else math.nan
        if not abs(jump - math.log(ratio)) < abs(jump):
            when = pd.Timestamp(int(b.ts[i]), tz="UTC")
            raise DataError(
                f"adjust_for_splits: symbol {b.symbol!r}, split of ratio {ratio:g} from the bar "
                f"at {when}: the raw bars do not jump there (close {before:g} before, open "
                f"{at_open:g} at it, a ratio of {before / at_open:.4g}); are they adjusted "
                "already, or is the ex-date not the day the prices split? (check=False "
                "adjusts anyway)", symbol=b.symbol, timestamp=when,
                rule="a split the raw bars show")


def _ex_bars(b: SymbolBars, table: pd.DataFrame, timezone: str) -> tuple[np.ndarray, np.ndarray]:
    """The bar of each of ``b``'s symbol's actions in ``table`` (its first bar on or after
    the ex-date in ``timezone``'s days), and their values, for those inside its bars."""
    mine = (table["symbol"] == b.symbol).to_numpy()
    days = table["day"].to_numpy()[mine]
    bar_days = _local_days(b.ts, timezone)
    at = np.searchsorted(bar_days, days, side="left")
    inside = (at < len(b.ts)) & (days >= bar_days[0]) if len(b.ts) else at < 0
    return at[inside], table["value"].to_numpy()[mine][inside]


def _table(actions: Any, kind: _Kind, market: MarketColumns, timezone: str) -> pd.DataFrame:
    """The actions as one frame of ``symbol``, ``ex_date``, ``value`` and ``day`` (the
    ex-date's day number in ``timezone``'s calendar), checked."""
    if isinstance(actions, Mapping):
        parts = []
        for symbol, series in actions.items():
            if not isinstance(series, pd.Series):
                raise DataError(f"{kind.name}[{symbol!r}]: expected a pandas Series of "
                                f"{kind.value}s indexed by ex-date, got {type(series).__name__}",
                                symbol=str(symbol), rule=f"{kind.name}' shape")
            parts.append(pd.DataFrame({"symbol": str(symbol), "ex_date": series.index,
                                       kind.value: series.to_numpy()}))
        frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
            {c: [] for c in kind.columns})
    elif isinstance(actions, pd.DataFrame):
        missing = [c for c in kind.columns if c not in actions.columns]
        if missing:
            raise DataError(f"{kind.name}: the table has no column {missing[0]!r} (its columns: "
                            f"{', '.join(map(str, actions.columns)) or 'none'}); a table of "
                            f"{kind.name} has the columns {', '.join(kind.columns)}",
                            rule=f"{kind.name}' shape")
        frame = actions.loc[:, list(kind.columns)].reset_index(drop=True)
    else:
        raise DataError(f"{kind.name}: expected a DataFrame with the columns symbol, ex_date and "
                        f"{kind.value}, or {{symbol: Series of {kind.value}s indexed by "
                        f"ex-date}}, got {type(actions).__name__}", rule=f"{kind.name}' shape")
    symbols = set(market.symbols)
    for symbol in frame["symbol"].unique():
        if symbol not in symbols:
            raise DataError(f"{kind.name}: symbol {symbol!r} is not in the data"
                            f"{did_you_mean(symbol, sorted(symbols))}; keep the table's "
                            "rows of the symbols loaded", symbol=str(symbol),
                            rule=f"{kind.name} of known symbols")

    def where(k: int) -> str:
        return f"{kind.name}: symbol {frame['symbol'].iloc[k]!r}, ex-date {frame['ex_date'].iloc[k]}"

    # Numbers as given: text ("0.25") or a bool is refused, never read as a number.
    for k, value in enumerate(frame[kind.value].tolist()):
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
            raise DataError(f"{where(k)}: {kind.value} {value!r} is not a number",
                            symbol=str(frame["symbol"].iloc[k]), rule=f"{kind.one} {kind.value}s")
    values = frame[kind.value].to_numpy(dtype=float)
    with np.errstate(invalid="ignore"):
        bad = ~(np.isfinite(values) & kind.allowed(values))
    if bad.any():
        k = int(np.argmax(bad))
        raise DataError(f"{where(k)}: {kind.value} {frame[kind.value].tolist()[k]!r} must "
                        f"{kind.rule}", symbol=str(frame["symbol"].iloc[k]),
                        rule=f"{kind.one} {kind.value}s")
    days = _ex_days(frame["ex_date"], kind, timezone)
    twice = pd.DataFrame({"symbol": frame["symbol"], "day": days}).duplicated()
    if twice.any():
        k = int(np.argmax(twice.to_numpy()))
        raise DataError(f"{kind.name}: symbol {frame['symbol'].iloc[k]!r} has two {kind.name} on "
                        f"ex-date {frame['ex_date'].iloc[k]} (one row per {kind.one}: "
                        f"{kind.together})", symbol=str(frame["symbol"].iloc[k]),
                        rule=f"one {kind.one} per ex-date")
    return pd.DataFrame({"symbol": frame["symbol"], "ex_date": frame["ex_date"],
                         "value": values, "day": days})


def _ex_days(values: pd.Series, kind: _Kind, timezone: str) -> np.ndarray:
    """Each ex-date as a day number (days since 1970-01-01) of ``timezone``'s calendar."""
    stamps = pd.to_datetime(values, errors="coerce", format="mixed")
    if stamps.isna().any():
        k = int(np.argmax(stamps.isna().to_numpy()))
        raise DataError(f"{kind.name}: ex-date {values.iloc[k]!r} is not a date",
                        rule=f"{kind.one} ex-dates")
    if getattr(stamps.dt, "tz", None) is not None:
        stamps = stamps.dt.tz_convert(timezone).dt.tz_localize(None)
    return stamps.dt.normalize().to_numpy(dtype="datetime64[D]").astype(np.int64)


def _local_days(ts: np.ndarray, timezone: str) -> np.ndarray:
    """Each bar's day number in ``timezone``'s calendar."""
    local = pd.DatetimeIndex(ts.astype("datetime64[ns]"), tz="UTC").tz_convert(timezone)
    return local.tz_localize(None).normalize().to_numpy(dtype="datetime64[D]").astype(np.int64)
