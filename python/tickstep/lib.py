"""backtesting.py's strategy helpers (``backtesting.lib``) for strategies ported to tickstep.

``from tickstep.lib import crossover, resample_apply`` in place of
``from backtesting.lib import crossover, resample_apply``: the same calls, read the same
way. Where tickstep's rule differs, it is its own everywhere (a higher timeframe's value
shows when its candle completes, by the rule `Strategy.timeframe`'s candles complete by),
and the docstring says so.
"""

from __future__ import annotations

import inspect
from numbers import Number
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from tickstep._core import ConfigError
from tickstep.strategy import (
    _WHOLE_FRAME,
    EachSymbols,
    Strategy,
    _BarsAtInit,
    _check_chart_options,
    _placeholder_in,
    _utc_index,
)
from tickstep.studies import Indicator
from tickstep.timeframes import NS_PER_DAY

__all__ = ["MultiBacktest", "TrailingStrategy", "barssince", "cross", "crossover", "plot_heatmaps", "quantile", "resample_apply"]

#: backtesting.py's chart options of an indicator and their defaults (as `Strategy.I`'s).
_CHART_DEFAULTS = {"plot": True, "overlay": None, "color": None, "scatter": False}


def _last_two(series: Any) -> Any:
    """A number as a constant series, a Series by position; anything else as it is (an
    indicator, an array, a list: read with ``[-2]`` and ``[-1]``)."""
    if isinstance(series, Number):
        return (series, series)
    if isinstance(series, pd.Series):
        return series.to_numpy()
    return series


def crossover(series1: Any, series2: Any) -> bool:
    """Whether ``series1`` crossed above ``series2`` at this bar: below it at the bar
    before (``[-2]``), above it now (``[-1]``). Either may be an indicator, an array, a
    Series or a number; with fewer than two values (or a NaN) it is False, as in
    backtesting.py."""
    a, b = _last_two(series1), _last_two(series2)
    try:
        return bool(a[-2] < b[-2] and a[-1] > b[-1])
    except IndexError:
        return False


def cross(series1: Any, series2: Any) -> bool:
    """Whether the two crossed at this bar, either way (`crossover` one way or the other)."""
    return crossover(series1, series2) or crossover(series2, series1)


def barssince(condition: Any, default: Any = np.inf) -> Any:
    """The number of bars since ``condition`` (a sequence of truth values, oldest first,
    such as ``self.data.Close > self.data.Open``) was last true: 0 when it is true now,
    ``default`` when it never was."""
    true = np.flatnonzero(np.asarray(condition, dtype=bool))
    return default if len(true) == 0 else len(condition) - 1 - int(true[-1])


def quantile(series: Any, quantile: float | None = None) -> float:
    """With ``quantile`` None, the share of ``series``' earlier values below its last one
    (the last value's rank, 0 to 1; NaN with no value); else the value of ``series`` at
    that quantile (0 to 1; NaNs left out)."""
    values = np.asarray(series, dtype=float)
    if quantile is None:
        return float(np.mean(values[:-1] < values[-1])) if len(values) else float("nan")
    if isinstance(quantile, bool) or not isinstance(quantile, (int, float, np.number)) \
            or not 0 <= quantile <= 1:
        raise ConfigError(f"quantile(quantile={quantile!r}): a fraction in [0, 1] (0.1 for the "
                          "10th percentile), or None for the last value's rank")
    return float(np.nanpercentile(values, quantile * 100))


def resample_apply(rule: str, func: Any, series: Any, *args: Any, agg: Any = None, **kwargs: Any) -> Any:
    """backtesting.py's ``resample_apply``: ``func`` applied to ``series`` on the higher
    timeframe ``rule``, declared as an indicator of the strategy whose ``init()`` calls it,
    e.g. ``self.daily = resample_apply("D", SMA, self.data.Close, 10)``.

    - ``rule``: a pandas offset. Fixed lengths that divide a day (``"4h"``, ``"30min"``,
      ``"90min"``) count on the wall clock of the backtest's ``timezone=`` from each
      local midnight (in UTC, clock buckets from the epoch, as `Strategy.timeframe`'s;
      other lengths are such clock buckets in any zone); days (``"D"``),
      weeks (``"W"`` ends on Sunday, ``"W-FRI"`` on Friday), months (``"ME"``),
      quarters (``"QE"``) and years (``"YE"``) are calendar periods, one at a time, in
      the backtest's ``timezone=`` (its trading calendar, UTC by default; in UTC days
      are fixed lengths, ``"2D"`` too).
    - ``series``: a column of the data (``self.data.Close``, ``.s``, backtesting.py's
      ``pd.Series(self.data.Close)``) or its whole bars (``self.data.df``, ``self.data``).
      ``func`` gets each symbol's completed candles' column (a DataFrame for the bars),
      indexed by candle start; ``func=None`` gives the candles' values themselves.
    - ``agg``: how a candle's value is made from its bars, any pandas ``agg`` (a name,
      a function, a dict by column). By default a candle's open, high, low, close and
      volume (first, max, min, last, sum, as backtesting.py's ``OHLCV_AGG``), and the
      last value of any other column.

    At each bar the indicator reads ``func``'s value for the latest candle completed by
    then, NaN before the first. A candle completes at the bar that ends its period (the
    23:00 hourly bar completes a day), or else at the first bar of a later one (a week
    of daily bars completes on Monday): intraday, a value shows one bar earlier than in
    backtesting.py, whose ``resample_apply`` labels a period by its end and shows it from
    there (the bar after). Neither sees a bar before its time. Bars stamped at local
    midnight keep their day's spacing across a change of UTC offset (daylight saving):
    it is read on the wall clock of the backtest's ``timezone=``.
    """
    strategy = _calling_strategy()
    if func is None:
        def func(values: Any, *_: Any, **__: Any) -> Any:
            return values
        func.__name__ = "resample_apply"
    elif not callable(func):
        raise ConfigError(f"resample_apply(func={func!r}): a function of the resampled series, or None")
    column = _column_of(series)
    # backtesting.py hands its chart options to self.I, not to func.
    chart = _check_chart_options(**{k: kwargs.pop(k, d) for k, d in _CHART_DEFAULTS.items()})
    chart["where"] = f"[{rule}]"
    return strategy._declare_series(func, (column, *args), kwargs, source="close", name=None,
                                    candles=_rule_buckets(strategy, rule), agg=agg, chart=chart)


def _calling_strategy() -> Strategy:
    """The strategy whose method (``init()``) called `resample_apply`: the nearest caller
    a few frames up holding a `Strategy` as ``self``, as backtesting.py finds it."""
    frame = inspect.currentframe()
    try:
        for _ in range(6):
            frame = frame.f_back if frame is not None else None
            if frame is None:
                break
            owner = frame.f_locals.get("self")
            if isinstance(owner, Strategy):
                return owner
    finally:
        del frame
    raise ConfigError("resample_apply: call it in a strategy's init() (it declares an indicator "
                      "of that strategy, as self.I does)")


def _column_of(series: Any) -> EachSymbols:
    """``series`` as the column (or bars) of the data it names, refused by name otherwise."""
    if isinstance(series, _BarsAtInit):
        return EachSymbols("df", _WHOLE_FRAME)
    series = _placeholder_in(series)
    if isinstance(series, EachSymbols):
        return series
    what = "an indicator" if isinstance(series, Indicator) else type(series).__name__
    raise ConfigError(f"resample_apply(series={what}): a column of the data "
                      "(self.data.Close, self.data.Close.s) or its bars (self.data.df) in init(); "
                      "for an indicator's own function on the higher timeframe, give the column "
                      "and the function")


def _rule_buckets(strategy: Strategy, rule: Any) -> Any:
    """``rule`` as the buckets the core's ``candle_history`` takes for symbol ``i``: clock
    buckets for fixed lengths in UTC (days too) and for lengths no day divides into, else
    each bar's period on the wall clock of the backtest's ``timezone=`` (its trading
    calendar): a length that divides a day from the local midnight, or a calendar one."""
    try:
        offset = to_offset(rule)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"resample_apply(rule={rule!r}): not a pandas offset ({exc})") from None
    zone = strategy._calendar
    utc = zone == "UTC"
    # (A Day is a Tick before pandas 3: a calendar day either way here.)
    fixed = isinstance(offset, pd.offsets.Tick) and not isinstance(offset, pd.offsets.Day)
    within_day = fixed and NS_PER_DAY % offset.nanos == 0
    if (fixed and (utc or not within_day)) or (isinstance(offset, pd.offsets.Day) and utc):
        # A day is 24 hours in UTC, so days there are fixed lengths too; so is a length
        # that no day divides into, in any zone.
        return strategy._buckets_of(pd.Timedelta(offset.n, "D") if isinstance(offset, pd.offsets.Day)
                                    else pd.Timedelta(offset.nanos, "ns"))
    calendar = (pd.offsets.Day, pd.offsets.Week, pd.offsets.MonthEnd, pd.offsets.QuarterEnd,
                pd.offsets.YearEnd)
    if not within_day and (not isinstance(offset, calendar) or offset.n != 1):
        raise ConfigError(f"resample_apply(rule={rule!r}): a fixed length (\"4h\", \"D\", \"2D\" "
                          "in UTC) or one calendar day, week, month, quarter or year (\"D\", \"W\", "
                          f"\"W-FRI\", \"ME\", \"QE\", \"YE\"){'' if utc else f' in {zone}'}")

    def at(naive: pd.DatetimeIndex) -> np.ndarray:  # a local wall time as UTC ns
        return naive.tz_localize(zone, ambiguous=True, nonexistent="shift_forward") \
            .tz_convert("UTC").as_unit("ns").asi8

    def periods(i: int) -> dict[str, np.ndarray]:
        local = _utc_index(strategy._all_ts(i)).tz_convert(zone).tz_localize(None)
        if within_day:
            # Lengths that divide a day, on the wall clock from each local midnight (an
            # hour is the local hour, also where the zone is half an hour off UTC).
            step = pd.Timedelta(offset.nanos, "ns")
            start = local.floor(step)
            return {"labels": at(start), "ends": at(start + step)}
        times = local.to_period(offset)
        end = times.end_time.as_unit("ns") + pd.Timedelta(1, "ns")
        return {"labels": at(times.start_time.as_unit("ns")), "ends": at(end)}

    return periods


def _mean_true_range(bars: pd.DataFrame, periods: int) -> np.ndarray:
    """The mean of the last ``periods`` true ranges (high - low, or from the close before
    when it gapped), NaN until ``periods`` bars have one: the first bar has no close
    before it."""
    close_before = bars["close"].shift(1)
    true_range = np.max([bars["high"] - bars["low"], (close_before - bars["high"]).abs(),
                         (close_before - bars["low"]).abs()], axis=0)
    return pd.Series(true_range).rolling(periods).mean().to_numpy()


class TrailingStrategy(Strategy):
    """backtesting.py's ``TrailingStrategy``: every open trade's stop-loss trails the
    close, ``n_atr`` mean true ranges behind it (6 by default, of the last 100 bars), and
    only ever tightens. Subclass it and call ``super().init()`` and ``super().next()``
    from your own, as there.

    Two differences, both to keep the future out of the past: the mean true range is
    NaN until it has its ``periods`` bars, and no stop is set before (backtesting.py
    fills those bars with the first mean, made of later bars); and
    `set_trailing_pct` trails by that fraction of the close itself (backtesting.py turns
    it into a multiple of the mean true range by an average over the whole data).
    tickstep's own trailing stops, which the book moves at every bar, are ``sl_trail=``
    on an order.
    """

    _n_atr: float = 6.0
    _pct: float | None = None

    def init(self) -> None:
        super().init()
        self.set_atr_periods()

    def set_atr_periods(self, periods: int = 100) -> None:
        """The number of bars the mean true range is taken over (100 by default: a
        steady one)."""
        if isinstance(periods, bool) or not isinstance(periods, (int, np.integer)) or periods < 1:
            raise ConfigError(f"set_atr_periods(periods={periods!r}): a whole number of bars >= 1")
        self._atr = self.I(_mean_true_range, int(periods), source=None, name=f"ATR({periods})")

    def set_trailing_sl(self, n_atr: float = 6) -> None:
        """Trail each stop-loss ``n_atr`` mean true ranges from the close."""
        if isinstance(n_atr, bool) or not isinstance(n_atr, (int, float, np.number)) \
                or not (np.isfinite(n_atr) and n_atr > 0):
            raise ConfigError(f"set_trailing_sl(n_atr={n_atr!r}): a positive number of mean true ranges")
        self._n_atr, self._pct = float(n_atr), None

    def set_trailing_pct(self, pct: float = 0.05) -> None:
        """Trail each stop-loss ``pct`` of the close from it (0.05: 5% below a long's
        close, above a short's)."""
        if isinstance(pct, bool) or not isinstance(pct, (int, float, np.number)) or not 0 < pct < 1:
            raise ConfigError(f"set_trailing_pct(pct={pct!r}): a fraction of the close in (0, 1), "
                              "0.05 for 5%")
        self._pct = float(pct)

    def next(self, symbol: str | None = None) -> None:
        close = self.data.Close[-1]
        distance = close * self._pct if self._pct is not None else self._atr[-1] * self._n_atr
        if not np.isfinite(distance):
            return  # the mean true range has not its bars yet
        for trade in self.trades:
            if trade.is_long:
                floor = close - distance
                if floor > 0 and (trade.sl is None or floor > trade.sl):
                    trade.sl = floor
            else:
                ceiling = close + distance
                if trade.sl is None or ceiling < trade.sl:
                    trade.sl = ceiling


def plot_heatmaps(heatmap: pd.Series, agg: str | Any = "max", *, ncols: int = 3, plot_width: int = 1200,
                  filename: str = "", open_browser: bool = True) -> Any:
    """backtesting.py's ``plot_heatmaps``: the heatmap of ``Backtest.optimize(...,
    return_heatmap=True)`` drawn for every pair of its parameters, ``ncols`` to a row,
    the other parameters aggregated by ``agg`` (``"max"``, ``"min"``, ``"mean"``,
    ``"median"`` or a function: `tickstep.report.heatmap.heatmap_table`'s rule).

    Returns the Plotly figure; with ``filename`` it is also written there as HTML
    (opened in a browser when ``open_browser``). Needs ``tickstep[plot]``.
    """
    from itertools import combinations

    from tickstep.report._deps import plotly_objects
    from tickstep.report.heatmap import agg_name, heatmap_cells, heatmap_table

    names = [n for n in heatmap.index.names if n is not None] if isinstance(heatmap, pd.Series) else []
    if len(names) < 2 or len(names) != heatmap.index.nlevels:
        raise ConfigError("plot_heatmaps(heatmap=): the Series of optimize(..., return_heatmap=True) "
                          "over at least two named parameters")
    if isinstance(ncols, bool) or not isinstance(ncols, int) or ncols < 1:
        raise ConfigError(f"plot_heatmaps(ncols={ncols!r}): a whole number >= 1")
    metric = str(heatmap.name or "value")
    rows = heatmap.rename(metric).reset_index()
    pairs = list(combinations(names, 2))
    cols = min(ncols, len(pairs))
    nrows = -(-len(pairs) // cols)
    go = plotly_objects()
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=nrows, cols=cols, subplot_titles=[f"{y} by {x}" for x, y in pairs],
                        horizontal_spacing=0.08, vertical_spacing=0.12)
    for k, (x, y) in enumerate(pairs):
        table = heatmap_table(rows, x=x, y=y, metric=metric, agg=agg)
        fig.add_trace(go.Heatmap(
            z=heatmap_cells(table),
            x=[str(v) for v in table.columns], y=[str(v) for v in table.index],
            coloraxis="coloraxis", name=f"{y} by {x}",
            hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}: %{{z:.4g}}<extra></extra>",
        ), row=k // cols + 1, col=k % cols + 1)
        fig.update_xaxes(title_text=x, type="category", row=k // cols + 1, col=k % cols + 1)
        fig.update_yaxes(title_text=y, type="category", row=k // cols + 1, col=k % cols + 1)
    fig.update_layout(template="plotly_white", width=plot_width, height=120 + 320 * nrows,
                      coloraxis={"colorscale": "Viridis", "colorbar": {"title": {"text": metric}}},
                      title={"text": f"{metric} (other parameters: {agg_name(agg)})"})
    if filename:
        fig.write_html(filename, include_plotlyjs=True, auto_open=bool(open_browser))
    return fig


class MultiBacktest:
    """backtesting.py's ``MultiBacktest``: one strategy on several instruments, each
    frame of ``df_list`` a backtest of its own (``**kwargs`` are `tickstep.Backtest`'s
    options), run in parallel by `tickstep.batch.run_batch` (its ``executor=`` and
    ``max_workers=`` may be given too; its results cache is not used). For one account
    over all of them, give `tickstep.Backtest` the frames as a mapping instead.
    """

    def __init__(self, df_list: Any, strategy_cls: type[Strategy], *, executor: Any = None,
                 max_workers: int | None = None, **kwargs: Any) -> None:
        frames = list(df_list)
        if not frames or not all(isinstance(f, pd.DataFrame) for f in frames):
            raise ConfigError("MultiBacktest(df_list=): a list of at least one DataFrame of bars")
        self._data = {str(i): f for i, f in enumerate(frames)}
        self._strategy = strategy_cls
        self._options = kwargs
        self._where = {"executor": executor, "max_workers": max_workers}

    def _rows(self, params: Any, **search: Any) -> pd.DataFrame:
        from tickstep.batch import run_batch

        return run_batch(self._strategy, self._data, params=params, cache=False, progress=False,
                         **self._where, **search, **self._options)

    def run(self, **params: Any) -> pd.DataFrame:
        """The strategy with ``params`` on each frame: its statistics, a column per frame
        (0, 1, ... in the order given), as backtesting.py's."""
        from tickstep.metrics import STAT_LABELS

        rows = self._rows([params] if params else None).set_index("symbols")
        table = rows.loc[list(self._data), [c for c in STAT_LABELS if c in rows.columns]]
        table.index = range(len(self._data))
        return table.transpose()

    def optimize(self, *, maximize: Any = "Sharpe Ratio", constraint: Any = None,
                 max_tries: int | float | None = None, random_state: int = 0,
                 **ranges: Any) -> pd.DataFrame:
        """`tickstep.Backtest.optimize` on each frame, as backtesting.py's: each frame's
        heatmap (the value maximised of each parameter set that ran, indexed by the
        parameters) as a column (0, 1, ...)."""
        from tickstep.backtest import _heatmap_of, heatmap_metric
        from tickstep.batch.search import option_of

        heatmap_metric(maximize, "MultiBacktest.optimize")

        # A model-based method= runs max_tries sets per frame.
        method = option_of(self._strategy, ranges, "method", "grid")
        rows = self._rows(ranges, maximize=maximize, constraint=constraint, max_tries=max_tries,
                          random_state=random_state, method=method)
        return pd.DataFrame({i: _heatmap_of(rows[rows["symbols"] == name], list(ranges), maximize)
                             for i, name in enumerate(self._data)})
