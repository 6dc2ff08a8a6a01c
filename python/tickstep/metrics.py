"""Performance statistics of a finished backtest.

Everything here is plain numpy/pandas and vectorised: no loop over equity
samples or trades. The conventions a user can rely on are stated in the
docstring of :func:`compute_stats`.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from tickstep.timeframes import NS_PER_DAY

__all__ = ["STAT_LABELS", "compute_stats", "drawdown", "format_stats"]

#: Index labels of the Series returned by :func:`compute_stats`, in order.
#: Other code and tests key on these strings: add new ones, never rename.
STAT_LABELS: tuple[str, ...] = (
    "Start",
    "End",
    "Duration",
    "Exposure Time [%]",
    "Equity Final [$]",
    "Equity Peak [$]",
    "Return [%]",
    "CAGR [%]",
    "Volatility (Ann.) [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
    "Max. Drawdown [%]",
    "Max. Drawdown Duration",
    "# Trades",
    "Win Rate [%]",
    "Best Trade [%]",
    "Worst Trade [%]",
    "Avg. Trade [%]",
    "Profit Factor",
    "Expectancy [$]",
    "Avg. MAE [%]",
    "Avg. MFE [%]",
    "Commissions [$]",
    "Avg. Bars Held",
)

_TRADE_COLUMNS = ("pnl", "return_pct", "commission", "bars_held", "mae", "mfe")
_DAYS_PER_YEAR = 365.25
# A standard deviation this small is rounding noise (e.g. an equity growing by a
# constant factor); dividing by it would report a Sharpe ratio of ~1e15.
_ZERO_STD = 1e-12


def drawdown(equity: pd.Series, initial: float | None = None) -> pd.Series:
    """Fractional drawdown of an equity curve from its running peak.

    Parameters
    ----------
    equity : pd.Series
        Equity samples in time order.
    initial : float, optional
        Starting equity before the first sample. When given it is the first
        peak, so a curve that starts below it is already in drawdown.

    Returns
    -------
    pd.Series
        ``equity / running_peak - 1`` on the same index, named ``"drawdown"``:
        ``0.0`` at a peak, negative below it (``-0.25`` is 25% under the peak).

    Examples
    --------
    >>> drawdown(pd.Series([100.0, 120.0, 90.0, 120.0])).tolist()
    [0.0, 0.0, -0.25, 0.0]
    >>> drawdown(pd.Series([90.0]), initial=100.0).round(6).tolist()
    [-0.1]
    """
    values = equity.to_numpy(dtype=float)
    peak = np.maximum.accumulate(values) if len(values) else values
    if initial is not None:
        peak = np.maximum(peak, float(initial))
    return pd.Series(values / peak - 1.0, index=equity.index, name="drawdown")


# Built once: a fresh index of labels per call costs more than the statistics themselves.
_STATS_INDEX = pd.Index(list(STAT_LABELS), dtype=object)


def compute_stats(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    *,
    initial_cash: float,
    risk_free_rate: float = 0.0,
    periods_per_year: int = 252,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.Series:
    """Summary statistics of a backtest, as a readable ``pd.Series``.

    Parameters
    ----------
    equity : pd.DataFrame
        Equity samples, one row per bar or one per trading day. Index: a
        sorted ``DatetimeIndex`` (a naive index is taken as UTC; an aware one
        is converted to UTC). Columns used: ``"equity"`` and
        ``"gross_exposure"`` (sum of absolute position values, ``>= 0``).
    trades : pd.DataFrame
        One row per closed trade. Columns used: ``pnl``, ``return_pct``
        (net fractional return), ``commission``, ``bars_held``, ``mae``
        (fraction, ``<= 0``) and ``mfe`` (fraction, ``>= 0``). An empty
        frame, even one without columns, means no trades.
    initial_cash : float
        Equity before the first sample; must be positive.
    risk_free_rate : float, default 0.0
        Annual risk-free rate as a fraction (``0.02`` is 2%).
    periods_per_year : int, default 252
        Periods used to annualise daily statistics.
    start, end : pd.Timestamp, optional
        Span of the backtest (first and last bar time). Default: the first and
        last equity timestamps. Every equity sample must lie within it.

    Returns
    -------
    pd.Series
        Named ``"stats"``, indexed by :data:`STAT_LABELS` in that order.

    Raises
    ------
    TypeError
        If the equity index is not a ``DatetimeIndex``.
    ValueError
        If a required column is missing, the equity frame is empty, unsorted or
        holds NaN, ``initial_cash <= 0``, or samples fall outside
        ``[start, end]``.

    Notes
    -----
    Conventions:

    * **Daily returns** come from end-of-day equity whatever the sampling:
      the last sample of each UTC calendar day, with ``initial_cash``
      prepended as the value of the day before the first one, then
      ``pct_change``. Days without a sample are skipped, not filled.
    * **Volatility (Ann.)**: ``std(daily, ddof=1) * sqrt(periods_per_year)``;
      NaN with fewer than 2 daily returns.
    * **Sharpe Ratio**: ``mean(excess) / std(daily, ddof=1) *
      sqrt(periods_per_year)``, where ``excess = daily - rf_daily`` and
      ``rf_daily = (1 + risk_free_rate) ** (1 / periods_per_year) - 1``.
      NaN with fewer than 2 daily returns or a zero std (below 1e-12).
    * **Sortino Ratio**: like Sharpe, dividing by the downside deviation
      ``sqrt(mean(min(excess, 0) ** 2))`` taken over all days. NaN when that
      is zero, and, as for Sharpe, with fewer than 2 daily returns.
    * **Return [%]**: ``final / initial_cash - 1``.
    * **CAGR [%]**: ``(final / initial_cash) ** (1 / years) - 1`` with
      ``years = (end - start) / 365.25 days``; NaN for a span under one day
      or a negative final equity; ``inf`` when it overflows a float.
    * **Max. Drawdown [%]** (``<= 0``) comes from the equity samples as given
      (intraday ones included), with ``initial_cash`` as the first peak,
      placed at ``start``. **Equity Peak [$]** uses the same running peak, so
      it is never below ``initial_cash``.
    * **Max. Drawdown Duration**: the longest time from a peak until equity
      is back at or above it, or until ``end`` if it never is;
      ``Timedelta(0)`` without drawdown.
    * **Calmar Ratio**: ``CAGR / |max drawdown|``; NaN without drawdown.
    * **Exposure Time [%]**: share of equity samples with
      ``gross_exposure > 0``.
    * **Trades**: a win is ``pnl > 0``. **Profit Factor** is gross profit over
      gross loss: ``inf`` with profit and no loss, NaN with neither. Trade
      statistics are NaN without trades, except ``# Trades`` (0) and
      ``Commissions [$]`` (0.0). ``[%]`` values are fractions times 100.

    Examples
    --------
    >>> idx = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    >>> eq = pd.DataFrame({"equity": [102.0, 99.0, 105.0],
    ...                    "gross_exposure": [50.0, 0.0, 50.0]}, index=idx)
    >>> stats = compute_stats(eq, pd.DataFrame(), initial_cash=100.0)
    >>> round(stats["Return [%]"], 6), stats["# Trades"]
    (5.0, 0)
    >>> stats["Max. Drawdown Duration"]
    Timedelta('2 days 00:00:00')
    """
    if initial_cash is None or not initial_cash > 0:
        raise ValueError(f"initial_cash must be positive, got {initial_cash!r}")
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise TypeError(f"equity index must be a DatetimeIndex, got {type(equity.index).__name__}")
    for column in ("equity", "gross_exposure"):
        if column not in equity.columns:
            raise ValueError(f"equity frame lacks the {column!r} column")
    if len(equity) == 0:
        raise ValueError("equity frame is empty: nothing to measure")

    index = _as_utc(equity.index)
    if not index.is_monotonic_increasing:
        raise ValueError("equity index must be sorted in time order")
    values = equity["equity"].to_numpy(dtype=float)
    if np.isnan(values).any():
        raise ValueError(f"equity holds NaN at {index[np.isnan(values)][0]}")
    start = index[0] if start is None else _as_utc_timestamp(start)
    end = index[-1] if end is None else _as_utc_timestamp(end)
    if index[0] < start or index[-1] > end:
        raise ValueError(
            f"equity samples span {index[0]} .. {index[-1]}, outside start={start} end={end}"
        )

    initial_cash = float(initial_cash)
    final = float(values[-1])
    peak = np.maximum(np.maximum.accumulate(values), initial_cash)
    max_dd = float(np.min(values / peak - 1.0, initial=0.0))

    cagr = _cagr(final / initial_cash, end - start)
    daily = _daily_returns(values, index, initial_cash)
    rf_daily = (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0
    sharpe, sortino, volatility = _risk_ratios(daily, rf_daily, periods_per_year)

    exposure = equity["gross_exposure"].to_numpy(dtype=float)
    stats = {
        "Start": start,
        "End": end,
        "Duration": end - start,
        "Exposure Time [%]": float(np.mean(exposure > 0)) * 100.0,
        "Equity Final [$]": float(final),
        "Equity Peak [$]": float(peak[-1]),
        "Return [%]": (final / initial_cash - 1.0) * 100.0,
        "CAGR [%]": cagr * 100.0,
        "Volatility (Ann.) [%]": volatility * 100.0,
        "Sharpe Ratio": sharpe,
        "Sortino Ratio": sortino,
        "Calmar Ratio": cagr / abs(max_dd) if max_dd < 0 else math.nan,
        # + 0.0 turns a -0.0 (no drawdown) into 0.0 for display.
        "Max. Drawdown [%]": max_dd * 100.0 + 0.0,
        "Max. Drawdown Duration": _max_drawdown_duration(values, index, initial_cash, start, end),
    }
    stats.update(_trade_stats(trades))
    return pd.Series([stats[k] for k in STAT_LABELS], index=_STATS_INDEX, dtype=object,
                     name="stats")


def format_stats(s: pd.Series) -> str:
    """Render stats as aligned ``label  value`` lines for printing.

    Parameters
    ----------
    s : pd.Series
        Typically the result of :func:`compute_stats`.

    Returns
    -------
    str
        One line per entry. Money (``[$]``) and percentages (``[%]``) show two
        decimals, money with thousands separators; counts (``#`` labels) show
        as integers; other floats show three; NaN shows as ``NaN`` and
        infinity as ``inf``.

    Examples
    --------
    >>> print(format_stats(pd.Series({"Return [%]": 5.02869, "Sharpe Ratio": 8.48528,
    ...                               "Equity Final [$]": 105028.69, "# Trades": 3})))
    Return [%]        5.03
    Sharpe Ratio      8.485
    Equity Final [$]  105,028.69
    # Trades          3
    """
    labels = [str(label) for label in s.index]
    width = max((len(label) for label in labels), default=0)
    lines = [
        f"{label.ljust(width)}  {_format_value(label, value)}"
        for label, value in zip(labels, s.to_numpy(dtype=object))
    ]
    return "\n".join(lines)


def _format_value(label: str, value: object) -> str:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (float, np.floating)):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if label.startswith("#") and float(value).is_integer():
        return str(int(value))  # a count that a float-typed Series turned into 3.0
    if label.endswith("[$]"):
        return f"{value:,.2f}"
    if label.endswith("[%]"):
        return f"{value:.2f}"
    return f"{value:.3f}"


def _as_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    # Integer time arithmetic below is in nanoseconds (Timestamp.value's unit).
    return index.as_unit("ns")


def _as_utc_timestamp(ts: pd.Timestamp | str) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tz is None else ts.tz_convert("UTC")


def _daily_returns(values: np.ndarray, index: pd.DatetimeIndex, initial_cash: float) -> np.ndarray:
    """Returns of end-of-day equity (last sample per UTC date), from initial_cash."""
    # index is sorted, so the last row of each date is the one before the date changes.
    # Whole UTC days since the epoch (normalize() would also infer a frequency: slow).
    dates = index.as_unit("ns").asi8 // NS_PER_DAY
    last_of_day = np.append(dates[1:] != dates[:-1], True)
    closes = np.concatenate(([initial_cash], values[last_of_day]))
    return closes[1:] / closes[:-1] - 1.0


def _risk_ratios(
    daily: np.ndarray, rf_daily: float, periods_per_year: int
) -> tuple[float, float, float]:
    """(Sharpe, Sortino, annualised volatility) of daily returns."""
    if len(daily) < 2:
        return math.nan, math.nan, math.nan
    annualise = math.sqrt(periods_per_year)
    std = float(np.std(daily, ddof=1))
    excess = daily - rf_daily
    mean_excess = float(np.mean(excess))
    downside = math.sqrt(float(np.mean(np.minimum(excess, 0.0) ** 2)))
    sharpe = mean_excess / std * annualise if std > _ZERO_STD else math.nan
    sortino = mean_excess / downside * annualise if downside > _ZERO_STD else math.nan
    return sharpe, sortino, std * annualise


def _cagr(growth: float, span: pd.Timedelta) -> float:
    years = span / pd.Timedelta(days=1) / _DAYS_PER_YEAR
    if span < pd.Timedelta(days=1) or growth < 0:
        return math.nan
    # A big gain over a few days annualises past float range: that is inf, not an error.
    with np.errstate(over="ignore"):
        return float(np.power(growth, 1.0 / years)) - 1.0


def _max_drawdown_duration(
    values: np.ndarray,
    index: pd.DatetimeIndex,
    initial_cash: float,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> pd.Timedelta:
    """Longest time from a peak until equity is back at it (or until end)."""
    # initial_cash is the first sample, at start: it is the first peak.
    curve = np.concatenate(([initial_cash], values))
    times = np.concatenate(([start.value], index.asi8))
    at_peak = curve >= np.maximum.accumulate(curve)
    positions = np.arange(len(curve))
    last_peak = np.maximum.accumulate(np.where(at_peak, positions, 0))
    # A drawdown ends where equity is back at its peak right after being under it.
    recovered = np.flatnonzero(at_peak[1:] & ~at_peak[:-1]) + 1
    durations = times[recovered] - times[last_peak[recovered - 1]]
    if not at_peak[-1]:
        durations = np.append(durations, end.value - times[last_peak[-1]])
    return pd.Timedelta(int(durations.max(initial=0)), unit="ns")


def _trade_stats(trades: pd.DataFrame) -> dict[str, object]:
    if len(trades) == 0:
        nan = math.nan
        return {
            "# Trades": 0,
            "Win Rate [%]": nan,
            "Best Trade [%]": nan,
            "Worst Trade [%]": nan,
            "Avg. Trade [%]": nan,
            "Profit Factor": nan,
            "Expectancy [$]": nan,
            "Avg. MAE [%]": nan,
            "Avg. MFE [%]": nan,
            "Commissions [$]": 0.0,
            "Avg. Bars Held": nan,
        }
    missing = [c for c in _TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise ValueError(f"trades frame lacks column(s) {missing}")

    pnl = trades["pnl"].to_numpy(dtype=float)
    returns = trades["return_pct"].to_numpy(dtype=float)
    gross_profit = float(pnl[pnl > 0].sum())
    gross_loss = float(-pnl[pnl < 0].sum())
    if gross_loss > 0:
        profit_factor = gross_profit / gross_loss
    else:
        profit_factor = math.inf if gross_profit > 0 else math.nan
    return {
        "# Trades": len(trades),
        "Win Rate [%]": float(np.mean(pnl > 0)) * 100.0,
        "Best Trade [%]": float(np.max(returns)) * 100.0,
        "Worst Trade [%]": float(np.min(returns)) * 100.0,
        "Avg. Trade [%]": float(np.mean(returns)) * 100.0,
        "Profit Factor": profit_factor,
        "Expectancy [$]": float(np.mean(pnl)),
        "Avg. MAE [%]": float(np.mean(trades["mae"].to_numpy(dtype=float))) * 100.0,
        "Avg. MFE [%]": float(np.mean(trades["mfe"].to_numpy(dtype=float))) * 100.0,
        "Commissions [$]": float(np.sum(trades["commission"].to_numpy(dtype=float))),
        "Avg. Bars Held": float(np.mean(trades["bars_held"].to_numpy(dtype=float))),
    }
