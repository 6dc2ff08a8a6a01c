"""Performance statistics of a finished backtest.

Everything here is plain numpy/pandas and vectorised: no loop over equity
samples or trades. The conventions a user can rely on are stated in the
docstring of :func:`compute_stats`.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any, overload

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep.timeframes import NS_PER_DAY

__all__ = [
    "STAT_LABELS",
    "BenchmarkPrices",
    "alpha_beta",
    "buy_and_hold_return",
    "buy_and_hold_values",
    "held_values",
    "compute_stats",
    "daily_returns",
    "daily_risk_free",
    "drawdown",
    "exact_mean",
    "exact_sum",
    "exposed",
    "format_stat",
    "format_stats",
    "kelly_criterion",
    "monthly_returns",
    "periods_per_year_of",
    "periods_per_year_of_returns",
    "rolling_sharpe",
    "sqn",
    "trade_sums",
]

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
    "Buy & Hold Return [%]",
    "CAGR [%]",
    "Volatility (Ann.) [%]",
    "Sharpe Ratio",
    "Sortino Ratio",
    "Calmar Ratio",
    "Alpha [%]",
    "Beta",
    "Max. Drawdown [%]",
    "Avg. Drawdown [%]",
    "Max. Drawdown Duration",
    "Avg. Drawdown Duration",
    "Best Month [%]",
    "Worst Month [%]",
    "# Trades",
    "# Orders Rejected",
    "# Margin Calls",
    "Win Rate [%]",
    "Best Trade [%]",
    "Worst Trade [%]",
    "Avg. Trade [%]",
    "Max. Trade Duration",
    "Avg. Trade Duration",
    "Profit Factor",
    "Expectancy [$]",
    "SQN",
    "Kelly Criterion",
    "Avg. MAE [%]",
    "Avg. MFE [%]",
    "Commissions [$]",
    "Carrying Costs [$]",
    "Dividends [$]",
    "Avg. Bars Held",
)

_TRADE_COLUMNS = ("pnl", "return_pct", "commission", "bars_held", "mae", "mfe")
#: The columns of the trades the core hands to the statistics (``trade_stat_columns``):
#: those, and each trade's ``duration`` (exit time less entry time, int ns).
_STAT_TRADE_COLUMNS = (*_TRADE_COLUMNS, "duration")
_DAYS_PER_YEAR = 365.25
# A standard deviation this small is rounding noise (e.g. an equity growing by a
# constant factor); dividing by it would report a Sharpe ratio of ~1e15.
_ZERO_STD = 1e-12
# Gross exposure is kept incrementally, so a flat book can read as +-1e-10 (float dust of
# adding and removing large position values). Below this fraction of equity it is flat.
_EXPOSURE_DUST = 1e-9


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


class BenchmarkPrices:
    """A benchmark's prices as an immutable value (for ``benchmark=`` in a config).

    Compares and hashes by content, and its ``repr`` carries a digest of the values, so
    two different price series never share a results-cache key.

    Parameters
    ----------
    prices : pandas.Series
        Prices on a sorted ``DatetimeIndex`` (naive means UTC), finite and positive.
    """

    __slots__ = ("_digest", "name", "prices")

    def __init__(self, prices: pd.Series) -> None:
        if not isinstance(prices, pd.Series) or not isinstance(prices.index, pd.DatetimeIndex):
            raise TypeError("benchmark prices must be a pandas Series on a DatetimeIndex")
        index = _as_utc(prices.index)
        values = prices.to_numpy(dtype=float)
        if len(values) == 0:
            raise ValueError("benchmark prices are empty")
        if not index.is_monotonic_increasing:
            raise ValueError("benchmark prices must be sorted in time order")
        bad = ~np.isfinite(values) | (values <= 0)
        if bad.any():
            raise ValueError(
                f"benchmark price at {index[bad][0]} is {values[bad][0]!r}: prices must be "
                "finite and positive"
            )
        values = values.copy()
        values.flags.writeable = False
        self.prices = pd.Series(values, index=index, name=prices.name)
        self.name = str(prices.name) if prices.name is not None else "benchmark"
        h = hashlib.blake2b(index.asi8.tobytes(), digest_size=12)
        h.update(values.tobytes())
        self._digest = h.hexdigest()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BenchmarkPrices) and other._digest == self._digest

    def __hash__(self) -> int:
        return hash(self._digest)

    def __repr__(self) -> str:
        return f"BenchmarkPrices({self.name!r}, {len(self.prices)} prices, {self._digest})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (BenchmarkPrices, (self.prices,))


# Built once: a fresh index of labels per call costs more than the statistics themselves.
_STATS_INDEX = pd.Index(list(STAT_LABELS), dtype=object)


def compute_stats(
    equity: pd.DataFrame,
    trades: pd.DataFrame,
    *,
    initial_cash: float,
    risk_free_rate: float = 0.0,
    periods_per_year: int | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    timezone: str = "UTC",
    buy_and_hold: tuple[np.ndarray, np.ndarray] | None = None,
    benchmark: pd.Series | BenchmarkPrices | None = None,
    orders_rejected: int = 0,
    carrying_costs: float = 0.0,
    margin_calls: int = 0,
    dividends: float = 0.0,
    exposure_ticks: tuple[int, int] | None = None,
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
        (fraction, ``<= 0``) and ``mfe`` (fraction, ``>= 0``), and, when
        present, ``entry_time`` and ``exit_time`` (for the trade durations). An
        empty frame, even one without columns, means no trades.
    initial_cash : float
        Equity before the first sample; must be positive.
    risk_free_rate : float, default 0.0
        Annual risk-free rate as a fraction (``0.02`` is 2%).
    periods_per_year : int, optional
        Daily returns in a year, to annualise them. Default: from the data's calendar
        (:func:`periods_per_year_of`): 252 for exchange data (no sample on a Saturday
        or Sunday), 365 for round-the-clock data such as crypto.
    start, end : pd.Timestamp, optional
        Span of the backtest (first and last bar time). Default: the first and
        last equity timestamps. Every equity sample must lie within it.
    timezone : str, default "UTC"
        The backtest's timezone: its calendar days are the trading days whose last
        equity samples give the daily returns (and its months the monthly ones), so
        statistics do not depend on how often equity was sampled.
    buy_and_hold : (first, last), optional
        First and last close of every symbol the backtest ran on (two arrays
        in the same symbol order), for **Buy & Hold Return [%]**; NaN without.
    benchmark : pd.Series or BenchmarkPrices, optional
        Benchmark prices on a sorted ``DatetimeIndex``, for **Alpha [%]** and
        **Beta**; NaN without.
    orders_rejected : int, default 0
        Orders the broker rejected during the run (``# Orders Rejected``).
    carrying_costs : float, default 0.0
        Borrow fees and margin interest net of interest earned on cash
        (``Carrying Costs [$]``; already in the equity).
    margin_calls : int, default 0
        How many times the broker closed every position because equity fell to the
        maintenance margin (``# Margin Calls``; see ``BacktestConfig.maintenance_margin``).
    dividends : float, default 0.0
        Dividends the positions received, net of those short positions paid
        (``Dividends [$]``; already in the equity; see ``BacktestConfig.dividend_column``).
    exposure_ticks : (exposed, ticks), optional
        Of the run's ticks from ``start`` on (``ticks``), those at whose end the
        account held a position (``exposed``), for **Exposure Time [%]**: a run's
        engine counts them (``Engine.exposure_ticks``). Without them, the equity
        samples are counted.

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
      the last sample of each calendar day in ``timezone`` (the backtest's
      trading day, so ``record_every_bar`` True or False gives the same days and
      the same daily statistics), with ``initial_cash``
      prepended as the value of the day before the first one, then
      ``pct_change``. Days without a sample are skipped, not filled; so is a
      day that starts with equity at or below zero (the account wiped out or in
      debt: a change from there is no return), the day that ends there keeping its
      own (-100% or below).
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
    * **Annualisation**: ``periods_per_year`` daily returns make a year: 252 for
      exchange data, 365 for data that trade every day of the week (judged from
      the samples' weekdays in ``timezone``: more than 0.6 x 2/7 of the trading
      days on a weekend, as backtesting.py judges), or the number given. Bars of
      a week or longer (the days' median gap 6 days or more) give a return a bar:
      ``round(365.25 / gap)`` a year, 52 weekly, 12 monthly, 4 quarterly, 1 yearly
      (`periods_per_year_of`).
    * **CAGR [%]**: ``(final / initial_cash) ** (1 / years) - 1`` with years
      counted in calendar time, ``years = (end - start) / 365.25 days``, whatever
      the data's calendar (from the first bar to the last); NaN for a span under one day
      or a negative final equity; ``inf`` when it overflows a float.
    * **Max. Drawdown [%]** (``<= 0``) comes from the equity samples as given
      (intraday ones included), with ``initial_cash`` as the first peak,
      placed at ``start``. **Equity Peak [$]** uses the same running peak, so
      it is never below ``initial_cash``.
    * **Max. Drawdown Duration**: the longest time from a peak until equity
      is back at or above it, or until ``end`` if it never is;
      ``Timedelta(0)`` without drawdown.
    * **Avg. Drawdown [%]** and **Avg. Drawdown Duration**: the mean over the
      drawdowns (each from a peak until equity is back at it, or until ``end``) of
      their depths (each its deepest point, ``<= 0``) and of their durations, as
      backtesting.py's; 0 and ``Timedelta(0)`` without drawdown.
    * **Max. / Avg. Trade Duration**: the longest and the mean time from a
      trade's entry to its exit, over the closed trades (the mean rounded to the
      nanosecond); ``NaT`` without trades, or when the trades give no times
      (``entry_time`` and ``exit_time``).
    * **Calmar Ratio**: ``CAGR / |max drawdown|``; NaN without drawdown.
    * **Exposure Time [%]**: share of the run's ticks at whose end the account held
      a position, ``exposure_ticks`` (what the engine counts at every tick, whatever
      the samples kept); without it, the share of equity samples holding a position:
      ``gross_exposure > 1e-9 * |equity|`` (see :func:`exposed`), so the float dust
      an incrementally kept exposure leaves on a flat book never counts. The two are
      the same when equity is sampled at every tick.
    * **Buy & Hold Return [%]**: an equal-weight basket of the backtest's
      symbols, each bought at its first close and held to its last
      (:func:`buy_and_hold_return`), without costs.
    * **Alpha [%] / Beta**: least squares of the daily excess returns on the
      benchmark's daily excess returns over the same days
      (:func:`alpha_beta`); alpha is the daily intercept times
      ``periods_per_year``.
    * **Best / Worst Month [%]**: of :func:`monthly_returns`.
    * **SQN** (:func:`sqn`) and **Kelly Criterion** (:func:`kelly_criterion`)
      from the trades' net P&L.
    * **Trades**: a win is ``pnl > 0``. **Profit Factor** is gross profit over
      gross loss: ``inf`` with profit and no loss, NaN with neither. Trade
      statistics are NaN without trades, except ``# Trades`` (0) and
      ``Commissions [$]`` (0.0). ``[%]`` values are fractions times 100.
    * Every sum and mean over the trades (and over the symbols, for Buy & Hold)
      is exact (:func:`exact_sum`: the exact sum rounded once), so the
      statistics are the same bits whatever order the trades or symbols are
      listed in.

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
    _check_cash(initial_cash)
    if not isinstance(equity.index, pd.DatetimeIndex):
        raise TypeError(f"equity index must be a DatetimeIndex, got {type(equity.index).__name__}")
    for column in ("equity", "gross_exposure"):
        if column not in equity.columns:
            raise ValueError(f"equity frame lacks the {column!r} column")
    if len(equity) == 0:
        raise ValueError("equity frame is empty: nothing to measure")
    columns: dict[str, np.ndarray] = {}
    if len(trades):
        missing = [c for c in _TRADE_COLUMNS if c not in trades.columns]
        if missing:
            raise ValueError(f"trades frame lacks column(s) {missing}")
        columns = {c: trades[c].to_numpy() for c in _TRADE_COLUMNS}
        if "entry_time" in trades.columns and "exit_time" in trades.columns:
            held = pd.to_datetime(trades["exit_time"]) - pd.to_datetime(trades["entry_time"])
            # A closed trade has both times, the exit not before the entry: a NaT would
            # read as -2**63 ns, a negative span as a duration.
            bad = np.flatnonzero(held.isna().to_numpy() | (held < pd.Timedelta(0)).to_numpy())
            if len(bad):
                row = int(bad[0])
                raise ValueError(f"trades frame row {row}: entry_time {trades['entry_time'].iloc[row]} "
                                 f"and exit_time {trades['exit_time'].iloc[row]} are no closed trade's "
                                 "(both times, the exit at or after the entry)")
            columns["duration"] = held.to_numpy(dtype="timedelta64[ns]").view(np.int64)
    return stats_of_columns(
        _as_utc(equity.index).asi8,
        equity["equity"].to_numpy(dtype=float),
        equity["gross_exposure"].to_numpy(dtype=float),
        columns,
        initial_cash=initial_cash, risk_free_rate=risk_free_rate,
        periods_per_year=periods_per_year, start=start, end=end, timezone=timezone,
        buy_and_hold=buy_and_hold, benchmark=benchmark, orders_rejected=orders_rejected,
        carrying_costs=carrying_costs, margin_calls=margin_calls, dividends=dividends,
        exposure_ticks=exposure_ticks,
    )


def stats_of_columns(
    ts: np.ndarray,
    equity: np.ndarray,
    gross_exposure: np.ndarray,
    trades: dict[str, np.ndarray],
    *,
    initial_cash: float,
    risk_free_rate: float = 0.0,
    periods_per_year: int | None = None,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
    timezone: str = "UTC",
    buy_and_hold: tuple[np.ndarray, np.ndarray] | None = None,
    benchmark: pd.Series | BenchmarkPrices | None = None,
    orders_rejected: int = 0,
    carrying_costs: float = 0.0,
    margin_calls: int = 0,
    dividends: float = 0.0,
    trade_sums: dict[str, Any] | None = None,
    exposure_ticks: tuple[int, int] | None = None,
) -> pd.Series:
    """:func:`compute_stats` of plain columns, without building frames: equity samples
    as their times (``ts``, int ns UTC), ``equity`` and ``gross_exposure``; the trades as
    ``{column: values}`` for the trade columns :func:`compute_stats` names, and
    ``duration`` (exit time less entry time, int ns) for the trade durations (empty: no
    trades). The same rules and the same bits (`compute_stats` is this on its frames'
    columns); a grid of many runs calls it once per run, with the trades'
    :func:`trade_sums` its threads made (``trade_sums``).
    """
    _check_cash(initial_cash)
    ts = np.asarray(ts, dtype=np.int64)
    values = np.asarray(equity, dtype=float)
    if len(ts) == 0:
        raise ValueError("equity frame is empty: nothing to measure")
    if len(values) != len(ts) or len(gross_exposure) != len(ts):
        raise ValueError(f"equity columns differ in length: {len(ts)} times, {len(values)} "
                         f"equity, {len(gross_exposure)} gross exposure")
    if len(ts) > 1 and np.any(ts[1:] < ts[:-1]):
        raise ValueError("equity index must be sorted in time order")
    if np.isnan(values).any():
        raise ValueError(f"equity holds NaN at {_utc(int(ts[np.argmax(np.isnan(values))]))}")
    first, last = _utc(int(ts[0])), _utc(int(ts[-1]))
    start = first if start is None else _as_utc_timestamp(start)
    end = last if end is None else _as_utc_timestamp(end)
    if first < start or last > end:
        raise ValueError(f"equity samples span {first} .. {last}, outside start={start} end={end}")

    initial_cash = float(initial_cash)
    final = float(values[-1])
    peak = np.maximum(np.maximum.accumulate(values), initial_cash)
    dd_durations, dd_depths = _drawdowns(values, ts, initial_cash, start, end)
    max_dd = float(np.min(dd_depths, initial=0.0))

    cagr = _cagr(final / initial_cash, end - start)
    local = _local_ns(ts, timezone)
    days = local // NS_PER_DAY
    if periods_per_year is None:
        periods_per_year = periods_per_year_of(days)
    daily, on_days = _period_returns(values, days, initial_cash)
    rf_daily = daily_risk_free(risk_free_rate, periods_per_year)
    sharpe, sortino, volatility = _risk_ratios(daily, rf_daily, periods_per_year)

    exposure = np.asarray(gross_exposure, dtype=float)
    months, _ = _period_returns(values, _months_of_local(local), initial_cash)
    if benchmark is not None:
        if isinstance(benchmark, BenchmarkPrices):
            benchmark = benchmark.prices
        bench = _benchmark_daily_returns(benchmark, ts, start, days)[on_days]
        alpha, beta = alpha_beta(daily - rf_daily, bench - rf_daily, periods_per_year)
    else:
        alpha, beta = math.nan, math.nan
    stats = {
        "Start": start,
        "End": end,
        "Duration": end - start,
        "Exposure Time [%]": _exposure_time(exposure, values, exposure_ticks),
        "Equity Final [$]": float(final),
        "Equity Peak [$]": float(peak[-1]),
        "Return [%]": (final / initial_cash - 1.0) * 100.0,
        "Buy & Hold Return [%]": (
            buy_and_hold_return(*buy_and_hold) * 100.0 if buy_and_hold is not None else math.nan
        ),
        "CAGR [%]": cagr * 100.0,
        "Volatility (Ann.) [%]": volatility * 100.0,
        "Sharpe Ratio": sharpe,
        "Sortino Ratio": sortino,
        "Calmar Ratio": cagr / abs(max_dd) if max_dd < 0 else math.nan,
        "Alpha [%]": alpha * 100.0,
        "Beta": beta,
        # + 0.0 turns a -0.0 (no drawdown) into 0.0 for display.
        "Max. Drawdown [%]": max_dd * 100.0 + 0.0,
        "Avg. Drawdown [%]": float(np.mean(dd_depths)) * 100.0 + 0.0 if len(dd_depths) else 0.0,
        "Max. Drawdown Duration": pd.Timedelta(int(dd_durations.max(initial=0)), unit="ns"),
        "Avg. Drawdown Duration": _mean_duration(int(dd_durations.sum(dtype=object)), len(dd_durations)),
        "Best Month [%]": float(np.max(months)) * 100.0 if len(months) else math.nan,
        "Worst Month [%]": float(np.min(months)) * 100.0 if len(months) else math.nan,
    }
    stats.update(_trade_stats(trades, trade_sums))
    stats["# Orders Rejected"] = int(orders_rejected)
    stats["# Margin Calls"] = int(margin_calls)
    stats["Carrying Costs [$]"] = float(carrying_costs)
    stats["Dividends [$]"] = float(dividends)
    return pd.Series([stats[k] for k in STAT_LABELS], index=_STATS_INDEX, dtype=object,
                     name="stats")


def _check_cash(initial_cash: float) -> None:
    if initial_cash is None or not initial_cash > 0:
        raise ValueError(f"initial_cash must be positive, got {initial_cash!r}")


def _utc(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, tz="UTC")


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


def format_stat(label: str, value: object) -> str:
    """One statistic as text, the way :func:`format_stats` shows it (the report uses it too).

    >>> format_stat("Equity Final [$]", 105028.691), format_stat("# Trades", 3.0)
    ('105,028.69', '3')
    """
    return _format_value(label, value)


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


def _local_ns(ts: np.ndarray, timezone: str) -> np.ndarray:
    """Local wall-clock times in ``timezone`` of instants ``ts`` (int ns UTC), as int ns
    (UTC: the instants themselves). Whole days of them (``// NS_PER_DAY``) number the
    trading days of the backtest's calendar."""
    if timezone.upper() == "UTC":
        return ts
    index = pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC")
    return index.tz_convert(timezone).tz_localize(None).as_unit("ns").asi8


def _months_of_local(local: np.ndarray) -> np.ndarray:
    """The calendar month of each local time (int ns), as year * 12 + month - 1."""
    # Months since 1970-01 (numpy floors a time to its month, before 1970 too).
    return local.view("datetime64[ns]").astype("datetime64[M]").astype(np.int64) + 1970 * 12


#: The share of trading days on a Saturday or Sunday above which the data trade round
#: the clock (2/7 of the days, as crypto does) rather than in exchange sessions:
#: backtesting.py's threshold.
ROUND_THE_CLOCK = 0.6 * 2 / 7


#: The typical gap between trading days (their median, in days) from which the data are
#: bars of a week or longer, a return per bar: a year holds ``365.25 / gap`` of them
#: (52 weekly, 12 monthly, 4 quarterly, 1 yearly).
LONGER_BARS = 6


def periods_per_year_of(days: np.ndarray) -> int:
    """Returns in a year for data sampled on ``days`` (day numbers since the epoch, as
    the trading days of a backtest). Bars of a week or longer (the median gap between
    the distinct days at least ``LONGER_BARS``) make a return a bar: ``365.25 / gap``
    of them a year, rounded (52 weekly, 12 monthly, 4 quarterly, 1 yearly), as
    backtesting.py annualises weekly, monthly and yearly bars. Shorter bars make a return
    a day: 365 when more than ``ROUND_THE_CLOCK`` of the days are Saturdays or Sundays
    (markets open round the clock, e.g. crypto, where 2/7 are), else 252 (exchange
    sessions: an odd weekend session, such as a special Saturday session of an exchange,
    does not make a market open every day).

    >>> monday = pd.Timestamp("2024-03-04").value // NS_PER_DAY
    >>> days = np.arange(monday, monday + 700)
    >>> periods_per_year_of(days), periods_per_year_of(days[(days + 3) % 7 < 5])
    (365, 252)
    >>> periods_per_year_of(days[::7]), periods_per_year_of(days[::30])
    (52, 12)
    """
    days = np.unique(np.asarray(days, dtype=np.int64))
    if len(days) > 1:
        gap = float(np.median(np.diff(days)))
        if gap >= LONGER_BARS:
            return max(1, round(365.25 / gap))
    weekday = (days + 3) % 7  # 1970-01-01 was a Thursday (3)
    return 365 if len(days) and np.mean(weekday >= 5) > ROUND_THE_CLOCK else 252


def _trading_days(ts: np.ndarray, timezone: str) -> np.ndarray:
    """The trading day of each time (ns UTC): its calendar day in ``timezone``, a day
    number (as `stats_of_columns` counts them; `periods_per_year_of` reads their weekdays)."""
    return _local_ns(ts, timezone) // NS_PER_DAY


def _last_of_period(periods: np.ndarray) -> np.ndarray:
    # Samples are sorted, so a period's last sample is the one before the period changes.
    return np.append(periods[1:] != periods[:-1], True)


def _period_returns(values: np.ndarray, periods: np.ndarray,
                    initial_cash: float) -> tuple[np.ndarray, np.ndarray]:
    """Returns of the equity at the end of each period, from the end of the one before
    (``initial_cash`` before the first), and which periods have one: those that start
    with equity above zero. From nothing or from a debt a change of equity is no
    return (0 / 0, or a sign turned over: a debt shrinking would read as a loss), so a
    period that starts with the account wiped out or in debt is skipped, as a day
    without a sample is; the one that ends there keeps its return (-100%, or below)."""
    closes = np.concatenate(([initial_cash], values[_last_of_period(periods)]))
    defined = closes[:-1] > 0.0
    return closes[1:][defined] / closes[:-1][defined] - 1.0, defined


def _benchmark_daily_returns(
    benchmark: pd.Series, ts: np.ndarray, start: pd.Timestamp, days: np.ndarray
) -> np.ndarray:
    """The benchmark's returns over the same days as the equity's daily returns.

    The benchmark is read at the time of each day's last equity sample (its last price at
    or before it) and at ``start`` for the day before the first; a day it has no price
    for yet is NaN.
    """
    if not isinstance(benchmark.index, pd.DatetimeIndex):
        raise TypeError(
            f"benchmark must be a price Series on a DatetimeIndex, got a {type(benchmark.index).__name__}"
        )
    times = _as_utc(benchmark.index).asi8
    if len(times) > 1 and np.any(times[1:] < times[:-1]):
        raise ValueError("benchmark index must be sorted in time order")
    day_ends = ts[_last_of_period(days)]
    read = _last_at_or_before(times, benchmark.to_numpy(dtype=float),
                              np.concatenate(([start.value], day_ends)))
    return read[1:] / read[:-1] - 1.0


def _last_at_or_before(times: np.ndarray, values: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Each of ``at``'s (int ns) last value of ``values`` at ``times`` (sorted) at or
    before it; NaN before the first."""
    pos = np.searchsorted(times, at, side="right") - 1
    return np.where(pos >= 0, values[np.maximum(pos, 0)], np.nan)


def exposed(gross_exposure: np.ndarray, equity: np.ndarray) -> np.ndarray:
    """Which samples hold a position: ``gross_exposure > 1e-9 * |equity|``.

    The core keeps gross exposure incrementally, so a flat book may read a few 1e-10
    (positive or negative) rather than 0; a real position is never that small a share
    of equity.

    Examples
    --------
    >>> exposed(np.array([0.0, -2.3e-10, 2.3e-10, 50.0]), np.array([1e6] * 4)).tolist()
    [False, False, False, True]
    """
    gross = np.asarray(gross_exposure, dtype=float)
    return gross > _EXPOSURE_DUST * np.abs(np.asarray(equity, dtype=float))


def daily_returns(equity: pd.Series, initial_cash: float, timezone: str = "UTC",
                  periods_per_year: int | None = None) -> pd.Series:
    """Return of each trading day in ``timezone``, from its last equity sample: the daily
    returns the Sharpe and Sortino Ratios and the volatility of :func:`compute_stats`
    are computed from, with the annualisation it applies to them.

    Parameters
    ----------
    equity : pd.Series
        Equity samples on a sorted ``DatetimeIndex`` (naive means UTC).
    initial_cash : float
        Equity before the first sample: the first day's return is measured from it.
    timezone : str, default "UTC"
        The backtest's timezone: whose calendar days.
    periods_per_year : int, optional
        The backtest's annualisation, when it set one (:func:`periods_per_year_of_returns`).

    Returns
    -------
    pd.Series
        Fractional returns named ``"return"``, indexed by each day's last sample (UTC);
        days without a sample are skipped, not filled, and so are days that start with
        equity at or below zero (no return from nothing or from a debt).
        ``attrs["periods_per_year"]`` is their annualisation, :func:`compute_stats`'s for the same run: the
        `tickstep.significance` functions annualise by it.

    Examples
    --------
    >>> idx = pd.to_datetime(["2024-01-02 10:00", "2024-01-02 16:00", "2024-01-03 16:00"], utc=True)
    >>> daily_returns(pd.Series([90.0, 110.0, 99.0], index=idx), 100.0).round(6).tolist()
    [0.1, -0.1]
    """
    index = _as_utc(pd.DatetimeIndex(equity.index))
    days = _trading_days(index.asi8, timezone)
    returns, defined = _period_returns(equity.to_numpy(dtype=float), days, float(initial_cash))
    daily = pd.Series(returns, index=index[_last_of_period(days)][defined], name="return")
    daily.attrs["periods_per_year"] = periods_per_year_of_returns(daily, timezone,
                                                                  periods_per_year)
    return daily


def daily_risk_free(risk_free_rate: float, periods_per_year: int) -> float:
    """The risk-free return of one of ``periods_per_year`` days at the annual
    ``risk_free_rate``, compounding to it over a year: what the Sharpe and Sortino
    Ratios subtract from each daily return.

    Examples
    --------
    >>> round((1 + daily_risk_free(0.05, 252)) ** 252 - 1, 12)
    0.05
    """
    return (1.0 + risk_free_rate) ** (1.0 / periods_per_year) - 1.0


def rolling_sharpe(daily: pd.Series, window: int, periods_per_year: int | None = None,
                   risk_free_rate: float = 0.0) -> pd.Series:
    """The Sharpe Ratio of each day's last ``window`` daily returns, by the rule of
    :func:`compute_stats`'s ``Sharpe Ratio``: ``mean(r - rf_daily) / std(r, ddof=1) ×
    sqrt(P)``. How steady a run's edge was: the whole run's Sharpe Ratio is the last
    value of a window as long as the run.

    Parameters
    ----------
    daily : pd.Series
        Daily returns, as :func:`daily_returns` gives them.
    window : int
        Days per window, at least 2.
    periods_per_year : int, optional
        The annualisation ``P``; by default the returns' own
        (``daily.attrs["periods_per_year"]``, which :func:`daily_returns` sets).
    risk_free_rate : float, default 0
        Annual, as the backtest's ``risk_free_rate``.

    Returns
    -------
    pd.Series
        On the returns' index, named ``"rolling_sharpe"``: NaN for the first ``window -
        1`` days and for a window whose returns do not vary.

    Examples
    --------
    >>> days = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    >>> r = pd.Series([0.01, -0.02, 0.03, 0.0, 0.01], index=days)
    >>> rolling_sharpe(r, 3, periods_per_year=252).round(3).tolist()
    [nan, nan, 4.205, 2.103, 13.856]
    """
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 2:
        raise ValueError(f"window={window!r}: days per window, a whole number >= 2")
    if periods_per_year is None:
        periods_per_year = daily.attrs.get("periods_per_year")
        if periods_per_year is None:
            raise ValueError("periods_per_year: the returns carry none (daily_returns sets "
                             "it); give the annualisation")
    returns = daily.to_numpy(dtype=float)
    out = np.full(len(returns), np.nan)
    if len(returns) >= window:
        # Each window by itself, two passes as the statistic's own (a running variance
        # leaves dust where a flat stretch follows a moving one: a Sharpe Ratio of 1e4).
        windows = np.lib.stride_tricks.sliding_window_view(returns, window)
        std = np.std(windows, axis=1, ddof=1)
        excess = np.mean(windows - daily_risk_free(risk_free_rate, periods_per_year), axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            sharpe = excess / std * math.sqrt(periods_per_year)
        out[window - 1:] = np.where(std > _ZERO_STD, sharpe, np.nan)
    return pd.Series(out, index=daily.index, name="rolling_sharpe")


def periods_per_year_of_returns(daily: pd.Series, timezone: str = "UTC",
                                periods_per_year: int | None = None) -> int:
    """Daily returns in a year for a run's daily returns (indexed by each trading day's
    last sample, as :func:`daily_returns` gives them): ``periods_per_year`` when the run
    set it, else :func:`periods_per_year_of` the run's trading days, the calendar days in
    its ``timezone`` (a session's last bar may fall on the next day in UTC) -- the
    annualisation :func:`compute_stats` applied to the same run.

    Examples
    --------
    >>> evenings = pd.bdate_range("2024-01-02", "2024-01-12") + pd.Timedelta("19:59:00")
    >>> ends = evenings.tz_localize("America/New_York").tz_convert("UTC")  # Fridays': Saturday
    >>> daily = pd.Series(0.01, index=ends)
    >>> periods_per_year_of_returns(daily, "America/New_York"), periods_per_year_of_returns(daily)
    (252, 365)
    """
    if periods_per_year is not None:
        return int(periods_per_year)
    index = _as_utc(pd.DatetimeIndex(daily.index))
    return periods_per_year_of(_trading_days(index.asi8, timezone))


def monthly_returns(equity: pd.Series, initial_cash: float, timezone: str = "UTC") -> pd.Series:
    """Return of each calendar month in ``timezone``, from month-end equity.

    Parameters
    ----------
    equity : pd.Series
        Equity samples on a sorted ``DatetimeIndex`` (naive means UTC).
    initial_cash : float
        Equity before the first sample: the first month's return is measured from it.
    timezone : str, default "UTC"
        The backtest's timezone: whose calendar months (as **Best / Worst Month [%]**).

    Returns
    -------
    pd.Series
        Fractional returns named ``"return"``, indexed by the first day of each month
        that has a sample (as a UTC date); months without a sample are skipped, and
        so are months that start with equity at or below zero.

    Examples
    --------
    >>> idx = pd.to_datetime(["2024-01-10", "2024-01-31", "2024-02-29"], utc=True)
    >>> monthly_returns(pd.Series([90.0, 110.0, 99.0], index=idx), 100.0).round(6).tolist()
    [0.1, -0.1]
    """
    index = _as_utc(pd.DatetimeIndex(equity.index))
    months = _months_of_local(_local_ns(index.asi8, timezone))
    returns, defined = _period_returns(equity.to_numpy(dtype=float), months, float(initial_cash))
    firsts = np.unique(months)[defined]
    starts = pd.to_datetime({"year": firsts // 12, "month": firsts % 12 + 1, "day": 1}, utc=True)
    return pd.Series(returns, index=pd.DatetimeIndex(starts, name="month"), name="return")


def buy_and_hold_return(first: np.ndarray, last: np.ndarray) -> float:
    """Return of an equal-weight basket bought at ``first`` prices and held to ``last``.

    ``mean(last / first - 1)`` over the symbols (NaN for none), without costs.

    Examples
    --------
    >>> round(buy_and_hold_return(np.array([10.0, 50.0]), np.array([12.0, 45.0])), 12)
    0.05
    """
    first = np.asarray(first, dtype=float)
    last = np.asarray(last, dtype=float)
    if first.shape != last.shape:
        raise ValueError(f"first and last prices differ in shape: {first.shape} vs {last.shape}")
    if len(first) == 0:
        return math.nan
    # An exact mean: the same bits whatever order (names) the symbols come in.
    return exact_mean(last / first - 1.0)


def buy_and_hold_values(closes: Sequence[tuple[np.ndarray, np.ndarray]], times: np.ndarray,
                        start: int, initial_cash: float) -> np.ndarray:
    """The value at ``times`` (int ns UTC, sorted) of the basket of
    :func:`buy_and_hold_return`: ``initial_cash`` split equally among the symbols, each
    share bought at its symbol's first close at or after ``start`` and held without costs
    (in cash until then; keeping the last close after the symbol's last). ``closes``: per
    symbol, its (times, closes), sorted. Summed exactly: the same bits whatever order the
    symbols come in.

    Examples
    --------
    >>> day = NS_PER_DAY  # tickstep.timeframes
    >>> closes = [(np.array([0, day, 2 * day]), np.array([10.0, 11.0, 12.0])),
    ...           (np.array([day, 2 * day]), np.array([50.0, 45.0]))]
    >>> buy_and_hold_values(closes, np.array([0, day, 2 * day]), 0, 100.0).tolist()
    [100.0, 105.0, 105.0]
    """
    growth = np.ones((len(closes), len(times)))
    for row, (ts, close) in enumerate(closes):
        first = np.searchsorted(ts, start)  # the first close from the start on
        if first == len(ts):
            continue  # no bar from the start: its share stays in cash
        values = np.asarray(close[first:], dtype=float)
        read = _last_at_or_before(ts[first:], values, times)
        growth[row] = np.where(np.isnan(read), 1.0, read / values[0])  # cash until then
    return initial_cash * exact_sum(growth, axis=0) / len(closes)


def held_values(prices: pd.Series, times: np.ndarray, start: int,
                initial_cash: float) -> np.ndarray:
    """The value at ``times`` (int ns UTC) of ``initial_cash`` held in a benchmark of these
    ``prices`` (sorted): ``initial_cash * price / base``, each price its last at or
    before the time and ``base`` its last at or before ``start`` (its first, if it starts
    later; NaN before it) -- the prices `compute_stats` reads for ``Alpha [%]`` and
    ``Beta``, so the daily returns of these values are theirs.

    Examples
    --------
    >>> day = NS_PER_DAY  # tickstep.timeframes
    >>> prices = pd.Series([10.0, 12.0, 9.0], index=pd.to_datetime([0, day, 2 * day], utc=True))
    >>> held_values(prices, np.array([day, 2 * day]), day, 100.0).tolist()
    [100.0, 75.0]
    """
    at_times = pd.DatetimeIndex(prices.index).as_unit("ns").asi8
    values = prices.to_numpy(dtype=float)
    base = values[max(np.searchsorted(at_times, start, side="right") - 1, 0)]
    return initial_cash * _last_at_or_before(at_times, values, times) / base


@overload
def exact_sum(values: Any, axis: None = None) -> float: ...
@overload
def exact_sum(values: Any, axis: int) -> np.ndarray: ...
def exact_sum(values: Any, axis: int | None = None) -> float | np.ndarray:
    """The sum of ``values`` rounded once from their exact sum, as :func:`math.fsum`
    gives it (but ``0.0`` for an exactly zero sum, and NaN rather than an error for NaN
    or both infinities): the same bits in any order.

    The statistics sum trades with it. Trades closed at one instant are listed in the
    order they executed, which may follow the symbols' names; a running or pairwise sum
    (``np.sum``) depends on that order in its last bits.

    Parameters
    ----------
    values : array_like of float
        The numbers to add up.
    axis : {None, 0, 1}, optional
        None: one sum of every value. 0 or 1 (``values`` 2-D): the exact sum of each
        column or of each row, as an array.

    Examples
    --------
    >>> exact_sum(np.array([1e16, 1.0, -1e16])), float(np.sum([1e16, 1.0, -1e16]))
    (1.0, 0.0)
    >>> exact_sum(np.array([[0.1, 0.2, 0.3], [1e16, 1.0, -1e16]]), axis=1).tolist()
    [0.6, 1.0]
    """
    values = np.asarray(values, dtype=np.float64)
    if axis is None:
        return _core.exact_sum(np.ascontiguousarray(values.reshape(-1)))
    if values.ndim != 2 or axis not in (0, 1, -1, -2):
        raise ValueError(
            f"exact_sum: axis={axis!r} sums the rows (1) or the columns (0) of a 2-D array; "
            f"got axis {axis!r} of a {values.ndim}-D array"
        )
    rows = values if axis in (1, -1) else values.T
    return _core.exact_row_sums(np.ascontiguousarray(rows))


def exact_mean(values: np.ndarray) -> float:
    """``exact_sum(values) / len(values)`` (NaN for none): the same bits in any order."""
    n = len(values)
    return exact_sum(values) / n if n else math.nan


def sqn(pnl: np.ndarray) -> float:
    """System Quality Number (Van Tharp): ``sqrt(n) * mean(pnl) / std(pnl, ddof=1)``.

    NaN with fewer than 2 trades or a zero standard deviation. The mean and the squared
    deviations are summed exactly (:func:`exact_sum`): the same bits in any order of the
    trades.

    Examples
    --------
    >>> round(sqn(np.array([10.0, -5.0, 20.0, 15.0])), 6)  # mean 10, std 10.801234
    1.85164
    """
    sums = trade_sums({"pnl": pnl})
    n = len(np.asarray(pnl))
    return _sqn(n, sums["pnl"] / n if n else math.nan, sums["squared_deviations"])


def _sqn(n: int, mean: float, squared_deviations: float) -> float:
    """`sqn` of ``n`` trades of exact mean P&L ``mean`` whose squared deviations from it
    sum (exactly) to ``squared_deviations``."""
    if n < 2:
        return math.nan
    std = math.sqrt(squared_deviations / (n - 1))
    return math.sqrt(n) * mean / std if std > _ZERO_STD else math.nan


def trade_sums(trades: dict[str, Any]) -> dict[str, Any]:
    """The exact sums the trade statistics read, from the trades' columns (``pnl``,
    ``return_pct``, ``mae``, ``mfe``, ``commission``, ``duration``; a column not given
    sums to 0): ``gross_profit`` and ``wins`` (P&L > 0), ``gross_loss`` and ``losses``
    (P&L < 0, a negative sum), ``pnl``, ``squared_deviations`` (of each P&L from the mean
    P&L), the sum of each other column (``duration`` in whole ns, a Python int) and
    ``longest_duration``. Each is :func:`exact_sum`'s, made in the core in one
    place (`results::TradeSums`), which a native grid computes on its own threads.

    Examples
    --------
    >>> s = trade_sums({"pnl": np.array([30.0, 10.0, -10.0, -10.0])})
    >>> s["gross_profit"], s["wins"], s["gross_loss"], s["squared_deviations"]
    (40.0, 2, -20.0, 1100.0)
    """
    empty = np.empty(0)
    duration = np.ascontiguousarray(trades.get("duration", np.empty(0, dtype=np.int64)), dtype=np.int64)
    return _core.trade_sums(*(
        np.ascontiguousarray(trades[c], dtype=np.float64) if c in trades else empty
        for c in ("pnl", "return_pct", "mae", "mfe", "commission")
    ), duration)


def kelly_criterion(pnl: np.ndarray) -> float:
    """Kelly fraction ``W - (1 - W) / R`` of trade P&Ls.

    ``W`` is the share of winning trades (``pnl > 0``) among all trades, ``R`` the average
    win over the average loss (as a positive number). NaN without a win or without a loss
    (the ratio is undefined); minus infinity when ``R`` rounds to 0 (wins vanishingly
    small beside the losses, e.g. a win of 5e-324 against a loss of 2).

    Examples
    --------
    >>> kelly_criterion(np.array([30.0, 10.0, -10.0, -10.0]))  # W = 0.5, R = 20 / 10
    0.25
    """
    s = trade_sums({"pnl": pnl})
    return _kelly(s["gross_profit"], s["wins"], -s["gross_loss"], s["losses"], len(np.asarray(pnl)))


def _kelly(profit: float, wins: int, loss: float, losses: int, trades: int) -> float:
    """`kelly_criterion` of ``trades`` trades of which ``wins`` (``pnl > 0``) made
    ``profit`` and ``losses`` (``pnl < 0``) lost ``loss`` (> 0), both exact sums."""
    if wins == 0 or losses == 0:
        return math.nan
    win_rate = wins / trades
    ratio = (profit / wins) / (loss / losses)
    if ratio == 0.0:
        # The average win so small beside the average loss that their ratio rounds to 0:
        # the formula's limit (an edge of minus infinity), not a division by zero.
        return -math.inf
    return win_rate - (1.0 - win_rate) / ratio


def alpha_beta(
    returns: np.ndarray, benchmark_returns: np.ndarray, periods_per_year: int = 252
) -> tuple[float, float]:
    """Annualised alpha and beta: least squares ``returns = a + beta * benchmark``.

    Pairs where either return is NaN are left out. ``alpha = a * periods_per_year``.
    ``(NaN, NaN)`` with fewer than 2 pairs or a benchmark that does not move.

    Examples
    --------
    >>> a, b = alpha_beta(np.array([0.02, 0.0, 0.04]), np.array([0.01, -0.01, 0.03]), 1)
    >>> round(a, 12), round(b, 12)
    (0.01, 1.0)
    """
    y = np.asarray(returns, dtype=float)
    x = np.asarray(benchmark_returns, dtype=float)
    if x.shape != y.shape:
        raise ValueError(f"returns and benchmark returns differ in shape: {y.shape} vs {x.shape}")
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 2:
        return math.nan, math.nan
    dx = x - x.mean()
    var = float(np.dot(dx, dx))
    if var <= _ZERO_STD**2 * len(x):
        return math.nan, math.nan
    beta = float(np.dot(dx, y - y.mean())) / var
    intercept = float(y.mean()) - beta * float(x.mean())
    return intercept * periods_per_year, beta


def _exposure_time(gross_exposure: np.ndarray, equity: np.ndarray,
                   ticks: tuple[int, int] | None) -> float:
    """``Exposure Time [%]``: the share of the run's ticks that ended holding a position
    (``ticks``: exposed, all), or, without them, of the equity samples."""
    if ticks is not None:
        exposed_ticks, all_ticks = (int(n) for n in ticks)
        if not 0 <= exposed_ticks <= all_ticks:
            raise ValueError(f"exposure_ticks={ticks!r}: (exposed, ticks) with 0 <= exposed <= ticks")
        if all_ticks:
            return exposed_ticks / all_ticks * 100.0
    return float(np.mean(exposed(gross_exposure, equity))) * 100.0


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


def _drawdowns(
    values: np.ndarray,
    ts: np.ndarray,
    initial_cash: float,
    start: pd.Timestamp,
    end: pd.Timestamp,
) -> tuple[np.ndarray, np.ndarray]:
    """Every drawdown's duration (ns: from its peak until equity is back at it, or until
    ``end``) and depth (its deepest point as a fraction of the peak, < 0), in time order."""
    # initial_cash is the first sample, at start: it is the first peak.
    curve = np.concatenate(([initial_cash], values))
    times = np.concatenate(([start.value], ts))
    peak = np.maximum.accumulate(curve)
    under = curve < peak
    # A drawdown is a run of samples under the peak: from the first (its peak is the
    # sample before) to the last (the sample after is back at the peak, if there is one).
    edges = np.diff(np.concatenate(([False], under, [False])).astype(np.int8))
    first, last = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1) - 1
    ends = np.where(last + 1 < len(curve), times[np.minimum(last + 1, len(curve) - 1)], end.value)
    durations = ends - times[first - 1]
    # Each drawdown's deepest point: the minimum from its first sample to the next one's
    # first (the samples between are back at the peak: 0, above any of its own).
    depths = np.minimum.reduceat(curve / peak - 1.0, first) if len(first) else np.empty(0)
    return durations.astype(np.int64), depths


def _mean_duration(total_ns: int, n: int) -> pd.Timedelta:
    """``total_ns / n`` rounded to the nanosecond (half up), exactly: ``Timedelta(0)``
    with nothing to average."""
    return pd.Timedelta((2 * total_ns + n) // (2 * n) if n else 0, unit="ns")


def _trade_stats(trades: dict[str, np.ndarray], sums: dict[str, Any] | None = None) -> dict[str, object]:
    """The trade statistics of the closed trades' columns (empty: no trades); ``sums``:
    their `trade_sums` when the caller has them (a native grid's run)."""
    n = len(trades["pnl"]) if trades else 0
    if n == 0:
        nan = math.nan
        return {
            "# Trades": 0,
            "Win Rate [%]": nan,
            "Best Trade [%]": nan,
            "Worst Trade [%]": nan,
            "Avg. Trade [%]": nan,
            "Profit Factor": nan,
            "Expectancy [$]": nan,
            "SQN": nan,
            "Kelly Criterion": nan,
            "Avg. MAE [%]": nan,
            "Avg. MFE [%]": nan,
            "Commissions [$]": 0.0,
            "Avg. Bars Held": nan,
            "Max. Trade Duration": pd.NaT,
            "Avg. Trade Duration": pd.NaT,
        }
    missing = [c for c in _TRADE_COLUMNS if c not in trades]
    if missing:
        raise ValueError(f"trades frame lacks column(s) {missing}")

    # Every sum exact (`trade_sums`): trades of one instant are listed in the order they
    # executed, which may follow the symbols, and the statistics must not. Bars held are
    # whole numbers: every partial sum is exact (below 2**53), so numpy's mean is too.
    column = {c: np.asarray(trades[c], dtype=float) for c in _TRADE_COLUMNS}
    if sums is None:
        sums = trade_sums({**column, "duration": trades["duration"]} if "duration" in trades else column)
    returns = column["return_pct"]
    gross_profit = sums["gross_profit"]
    gross_loss = -sums["gross_loss"]
    expectancy = sums["pnl"] / n
    if gross_loss > 0:
        profit_factor = gross_profit / gross_loss
    else:
        profit_factor = math.inf if gross_profit > 0 else math.nan
    if "duration" in trades:
        longest = pd.Timedelta(int(sums["longest_duration"]), unit="ns")
        mean_duration = _mean_duration(int(sums["duration"]), n)
    else:
        longest = mean_duration = pd.NaT
    return {
        "# Trades": n,
        "Max. Trade Duration": longest,
        "Avg. Trade Duration": mean_duration,
        # The share of wins: len / n is the division numpy's mean of the mask makes.
        "Win Rate [%]": sums["wins"] / n * 100.0,
        "Best Trade [%]": float(np.max(returns)) * 100.0,
        "Worst Trade [%]": float(np.min(returns)) * 100.0,
        "Avg. Trade [%]": sums["return_pct"] / n * 100.0,
        "Profit Factor": profit_factor,
        "Expectancy [$]": expectancy,
        "SQN": _sqn(n, expectancy, sums["squared_deviations"]),
        "Kelly Criterion": _kelly(gross_profit, sums["wins"], gross_loss, sums["losses"], n),
        "Avg. MAE [%]": sums["mae"] / n * 100.0,
        "Avg. MFE [%]": sums["mfe"] / n * 100.0,
        "Commissions [$]": sums["commission"],
        "Avg. Bars Held": float(np.mean(column["bars_held"])),
    }
