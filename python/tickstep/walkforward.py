"""Walk-forward analysis: optimise on a past window, trade the next one, move on.

The timeline is cut into windows from its first tick (plus ``warmup`` when given, so
that every window has data to warm up on). Window ``k``:

* **train** ``[train_start, train_end)``: ``train`` long; rolling windows move by
  ``test`` each time, anchored ones all start at the first window's start;
* **test** ``[train_end, train_end + test)``: the next ``test`` of the timeline. Test
  windows follow each other without overlap; the last one ends with the data.

On each train window the parameter grid runs (`tickstep.batch.run_batch`, one
portfolio over all symbols, any executor) and the best set by ``maximize`` is chosen;
that set then runs on the test window. Both runs see only their own window's bars, plus
``warmup`` of bars before it, which feed indicators while the strategy is not yet
called (`tickstep.BacktestConfig.trade_start`): nothing after a window's end can change
what was chosen for it or how it traded.

A streamed backtest (``stream=``) walks forward without holding the market: the windows
are planned from its ticks alone (one statement to a store), each train grid streams
its window's bars in every job (`tickstep.batch.run_batch` with ``stream=``), each test
run streams its own, and the statistics read only the closes the test runs passed. The
result equals the one in memory, bit for bit (the test runs keep the closes their equity
was marked at, as streamed runs do, not every bar's).

Each test window is its own run, starting flat with the backtest's cash. The stitched
out-of-sample equity compounds them: window ``k``'s curve is scaled by the equity the
windows before it reached, as if its account had been carried over.

Orders the broker rejects are counted per test window (``windows["# Orders Rejected"]``,
summed in ``stats``) and warned of once for the whole walk-forward, naming the train and
test runs that had any (see `tickstep.rejections`), not once per run. Train runs that
fail are warned of once too (`tickstep.batch.FailedRunWarning`); the best of the others
is chosen, and a window whose runs all fail stops the walk-forward with their first
error.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from tickstep.batch import run_batch
from tickstep.batch.api import run_label, warn_of_failed_runs
from tickstep.batch.objectives import Objective
from tickstep.config import ConfigError
from tickstep.data import MarketColumns, SymbolBars
from tickstep.data._request import time_bounds
from tickstep.data._stream import open_stream
from tickstep.metrics import (
    buy_and_hold_values,
    compute_stats,
    exact_sum,
    format_stats,
    held_values,
)
from tickstep.rejections import (
    TickstepWarning,
    caller_outside_tickstep,
    quiet_runs,
    warn_of_rejected_runs,
)
from tickstep.results import DailyReturnsMixin, Result, benchmark_prices, market_stats_inputs
from tickstep.signals import is_signal_strategy, run_strategy
from tickstep.simulation import RunSummary, market_from_columns, simulate, stream_run
from tickstep.timeframes import duration

__all__ = ["MarketWindows", "StreamedWindows", "Window", "WalkForwardResult", "plan_windows",
           "walk_forward"]

_BIG = 1 << 62


@dataclass(frozen=True)
class Window:
    """One walk-forward window: train on ``[train_start, train_end)``, trade
    ``[test_start, test_end)`` (``test_start == train_end``); UTC."""

    number: int
    train_start: pd.Timestamp
    train_end: pd.Timestamp
    test_start: pd.Timestamp
    test_end: pd.Timestamp


def _span(value: Any, name: str) -> pd.Timedelta | pd.DateOffset:
    """A window length: a duration (``"90D"``, ``pd.Timedelta``) or a ``pd.DateOffset``."""
    if isinstance(value, pd.DateOffset):
        probe = pd.Timestamp("2000-01-01", tz="UTC")
        if probe + value <= probe:
            raise ValueError(f"{name}={value!r} must be a positive length")
        return value
    if isinstance(value, (bool, int, float)) or value is None:
        raise TypeError(
            f"{name}={value!r}: give a duration such as '90D' or '6h', a pandas Timedelta, "
            "or a pandas DateOffset such as pd.DateOffset(months=3)"
        )
    try:
        span = duration(value)
    except (ValueError, TypeError) as e:
        raise ValueError(
            f"{name}={value!r} is not a duration: give '90D', '6h', a pandas Timedelta or a "
            f"pandas DateOffset ({e})"
        ) from None
    if span <= pd.Timedelta(0):
        raise ValueError(f"{name}={value!r} must be a positive length")
    return span


def plan_windows(timeline: np.ndarray, train: Any, test: Any, *, anchored: bool = False,
                 warmup: Any = None) -> list[Window]:
    """The windows over ``timeline`` (sorted int64 UTC ns) that hold bars to train on and
    to trade; windows whose train or test span holds no tick are left out.

    Examples
    --------
    >>> days = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC").as_unit("ns").asi8
    >>> [(w.train_start.day, w.test_start.day, w.test_end.day)
    ...  for w in plan_windows(days, "10D", "10D")]
    [(1, 11, 21), (11, 21, 31), (21, 31, 10)]
    """
    train_span, test_span = _span(train, "train"), _span(test, "test")
    timeline = np.asarray(timeline, dtype=np.int64)
    if len(timeline) == 0:
        return []
    first = pd.Timestamp(int(timeline[0]), tz="UTC")
    if warmup is not None:
        first = first + _span(warmup, "warmup")
    last = int(timeline[-1])
    windows: list[Window] = []
    k = 0
    while True:
        train_start = first if anchored else first + test_span * k
        train_end = first + train_span + test_span * k
        test_end = train_end + test_span
        if train_end.value > last:
            break
        has_train = np.searchsorted(timeline, train_start.value) < np.searchsorted(timeline, train_end.value)
        has_test = np.searchsorted(timeline, train_end.value) < np.searchsorted(timeline, test_end.value)
        if has_train and has_test:
            windows.append(Window(len(windows) + 1, train_start, train_end, train_end, test_end))
        k += 1
    return windows


def _columns(market: Any, metadata: pd.DataFrame | None, lo: int, hi: int) -> MarketColumns:
    """The market's bars in ``[lo, hi)`` (views, no validation: the core holds checked
    bars); symbols without a bar there are left out."""
    bars = []
    trusted = SymbolBars._trusted
    for i, name in enumerate(market.symbols):
        ts = market.column(i, "ts", 0, _BIG)
        a, b = np.searchsorted(ts, [lo, hi])
        if b > a:
            cols = [market.column(i, c, int(a), int(b)) for c in ("ts", "open", "high", "low", "close", "volume")]
            extra = {c: market.column(i, c, int(a), int(b)) for c in market.columns if market.has_column(i, c)}
            bars.append(trusted(name, *cols, extra=extra))
    if not bars:
        raise ValueError(f"no bars between {pd.Timestamp(lo, tz='UTC')} and {pd.Timestamp(hi, tz='UTC')}")
    if metadata is not None:
        metadata = metadata.loc[metadata.index.intersection([b.symbol for b in bars], sort=False)]
    names = market.symbols
    return MarketColumns(bars, metadata).in_order(names[i] for i in market.call_order)


class MarketWindows:
    """A walk-forward's runs over a market in memory: each window's bars are cut from it
    (views, no copy)."""

    def __init__(self, market: Any, metadata: pd.DataFrame | None) -> None:
        self.market, self.metadata = market, metadata

    def timeline(self) -> np.ndarray:
        return self.market.timeline()

    def train(self, strategy: Any, lo: int, hi: int, **batch: Any) -> pd.DataFrame:
        """``run_batch`` of the grid, one portfolio of the symbols with bars in ``[lo, hi)``."""
        return run_batch(strategy, _columns(self.market, self.metadata, lo, hi), portfolio=True,
                         **batch)

    def test(self, strategy: Any, lo: int, hi: int, config: Any, chosen: dict[str, Any],
             records: Any) -> Result:
        """One run of ``chosen`` over the bars in ``[lo, hi)``."""
        data = _columns(self.market, self.metadata, lo, hi)
        if is_signal_strategy(strategy):  # (run_batch refused its records=)
            return run_strategy(market_from_columns(data), strategy, config, chosen,
                                metadata=data.metadata)
        return simulate(market_from_columns(data), strategy, config, chosen,
                        metadata=data.metadata, records=records)

    def stats_inputs(self, benchmark: Any, since: int, until: int) -> dict[str, Any]:
        """The buy-and-hold basket over the test windows, ``[since, until)``, and the
        benchmark's prices."""
        return market_stats_inputs(self.market, benchmark, since=since, until=until)


class StreamedWindows:
    """A walk-forward's runs over a streamed backtest's source: each run streams the bars
    of its window, as `Backtest.run` streams all of them (``config.stream``).

    Parameters
    ----------
    stream : tickstep.data.BarStream
        The backtest's stream: its ticks plan the windows, and it names the symbols with
        bars in each window (of those the backtest asked for).
    data, start, end, load_options :
        The backtest's request, which each window's runs read again within the
        window's bounds.
    """

    def __init__(self, stream: Any, data: Any, *, start: Any, end: Any,
                 load_options: dict[str, Any]) -> None:
        if load_options.get("timeframe") is not None:
            raise ConfigError(
                f"walk_forward with stream= and timeframe={load_options['timeframe']!r}: each "
                "window's runs read the store within the window's bounds, where an edge may "
                "cut a resampled bar; ingest the resampled bars as their own store, or walk "
                "forward without stream=")
        self.stream, self.data, self.load_options = stream, data, dict(load_options)
        # This process's runs read through the backtest's open store (one connection, no
        # connect and close per run); workers open the data themselves.
        self._reader = stream.store if stream.store is not None else data
        self._start, self._end = start, end
        self._bounds = time_bounds(start, end)
        # What each test run read of the market over its test window: (start, end, summary).
        self._seen: list[tuple[int, int, Any]] = []

    def timeline(self) -> np.ndarray:
        return self.stream.timeline()

    def _request(self, lo: int, hi: int) -> dict[str, Any]:
        """The load of the window ``[lo, hi)``: the symbols with bars there (in the
        backtest's order, as a window cut in memory keeps them) and inclusive bounds."""
        symbols = self.stream.symbols_between(lo, hi)
        if not symbols:
            raise ValueError(f"no bars between {pd.Timestamp(lo, tz='UTC')} and "
                             f"{pd.Timestamp(hi, tz='UTC')}")
        return {"symbols": symbols, "start": max(lo, self._bounds[0]),
                "end": min(hi, self._bounds[1]) - 1}

    def train(self, strategy: Any, lo: int, hi: int, **batch: Any) -> pd.DataFrame:
        return run_batch(strategy, self.data, portfolio=True, load_options=self.load_options,
                         **self._request(lo, hi), **batch)

    def test(self, strategy: Any, lo: int, hi: int, config: Any, chosen: dict[str, Any],
             records: Any) -> Result:
        stream = open_stream(self._reader, window=config.stream, **self._request(lo, hi),
                             **self.load_options)
        try:
            result, summary = stream_run(stream, strategy, config, chosen, records=records)
        finally:
            stream.close()
        self._seen.append((config.trade_start.value, hi, summary))
        return result

    def stats_inputs(self, benchmark: Any, since: int, until: int) -> dict[str, Any]:
        """As in memory: each symbol's first close from ``since`` on and its last before
        ``until``, from what the test runs passed over their test windows and, for the
        spans between them (windows left out for want of a train window's bars, whose
        test span may hold some), a stream of those spans; a benchmark symbol's closes are
        read whole, one symbol's stream."""
        seen = sorted(self._seen + self._between_tests(since, until), key=lambda s: s[0])
        index = {name: k for k, name in enumerate(self.stream.symbols)}
        first = np.full(len(index), np.nan)
        last = np.full(len(index), np.nan)
        for start, end, summary in seen:  # in time order
            for name, opened, latest in summary.closes():
                k = index[name]
                if opened is not None and np.isnan(first[k]):
                    first[k] = opened[1]
                # (A run's last bar may be in its warm-up, a span seen before.)
                if latest is not None and start <= latest[0] < end:
                    last[k] = latest[1]
        # A symbol with no close from `since` on has neither (as `first_last_closes`).
        last[np.isnan(first)] = np.nan
        return {"buy_and_hold": (first, last),
                "benchmark": self._benchmark(benchmark) if isinstance(benchmark, str)
                else benchmark_prices(benchmark, None)}

    def _between_tests(self, since: int, until: int) -> list[tuple[int, int, Any]]:
        """The spans of ``[since, until)`` no test run read, each streamed and summarised
        as a run's summary is (its first and last close per symbol)."""
        spans, at = [], since
        for start, end, _ in sorted(self._seen, key=lambda s: s[0]):
            if start > at:
                spans.append((at, start))
            at = max(at, end)
        if at < until:
            spans.append((at, until))
        out = []
        for lo, hi in spans:
            symbols = self.stream.symbols_between(lo, hi)
            if not symbols:
                continue
            summary = RunSummary(symbols, lo, None)
            stream = open_stream(self._reader, window=self.stream.window, symbols=symbols,
                                 start=lo, end=hi - 1, **self.load_options)
            try:
                order = [stream.symbols.index(s) for s in symbols]
                for window in stream.windows():
                    summary.observe([window.parts[i] for i in order],
                                    np.array([window.first_tick], dtype=np.int64))
            finally:
                stream.close()
            out.append((lo, hi, summary))
        return out

    def _benchmark(self, symbol: str) -> pd.Series:
        stream = open_stream(self._reader, window=self.stream.window, symbols=[symbol],
                             start=self._start, end=self._end, **self.load_options)
        try:
            parts = [w.parts[0] for w in stream.windows()]
        finally:
            stream.close()
        ts = np.concatenate([p[0] for p in parts]).astype(np.int64)
        close = np.concatenate([p[4] for p in parts])
        return pd.Series(close, index=pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC"),
                         name=symbol)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class WalkForwardResult(DailyReturnsMixin):
    """What `walk_forward` returns.

    Attributes
    ----------
    windows : pandas.DataFrame
        One row per window: train and test bounds (UTC; starts inclusive, ends
        exclusive), the chosen parameters, the in-sample and out-of-sample value of the
        objective, and the test window's return, trade count and rejected orders
        (``# Orders Rejected``).
    equity : pandas.Series
        The stitched out-of-sample equity (see the module notes).
    equity_frame : pandas.DataFrame
        The same with cash and gross exposure, scaled alike.
    stats : pandas.Series
        Statistics of the stitched equity and of all test windows' trades; ``# Orders
        Rejected``, ``# Margin Calls``, ``Carrying Costs [$]`` and ``Dividends [$]`` sum
        the test windows' own, ``Buy & Hold
        Return [%]`` holds the basket over the test windows (from the first one's start to
        the last one's end: bars after it, in windows left out for want of a train
        window's bars, are not out of sample), and ``Alpha
        [%]`` / ``Beta`` compare with the config's benchmark over the same days.
    results : list of Result
        Each test window's own run.
    trades : pandas.DataFrame
        Every test window's closed trades, with a ``window`` column.
    initial_cash : float
        The cash each test window starts with (and the stitched curve from).
    parameters : list of str
        The parameters varied (the grid's names, columns of `windows`).
    objective : str
        What was maximised: a statistic's name, or ``"score"`` for a function of them.
    """

    windows: pd.DataFrame
    equity_frame: pd.DataFrame
    stats: pd.Series
    results: list[Result]
    trades: pd.DataFrame
    initial_cash: float
    parameters: list[str] = dataclasses.field(default_factory=list)
    objective: str = ""

    def plot(self, *, max_points: int = 2000) -> Any:
        """The stitched out-of-sample equity and its drawdown, a dotted line at each test
        window's start (Plotly figure; needs ``tickstep[plot]``)."""
        from tickstep.report._deps import plotly_objects
        from tickstep.report.figures import walk_forward_equity

        return plotly_objects().Figure(walk_forward_equity(self, max_points).spec())

    def report(self, path: str | Path, *, max_points: int = 2000, title: str | None = None,
               bootstrap: int | None = None) -> Path:
        """Write the walk-forward's HTML report to ``path``: the stitched statistics, the
        probabilistic Sharpe Ratio of the out-of-sample returns (with ``bootstrap=N``, the
        ranges of N bootstrapped histories, as `Result.report`), the windows (bounds,
        parameters chosen, objective in and out of sample, return, trades), the
        out-of-sample equity, drawdown and exposure, and each window's objective and
        parameters drawn; one self-contained file that works offline (as `Result.report`;
        needs ``tickstep[plot]``). Returns the path."""
        from tickstep.report.html import write_walk_forward_report

        return write_walk_forward_report(self, path, max_points=max_points, title=title,
                                         bootstrap=bootstrap)

    @property
    def equity(self) -> pd.Series:
        """The stitched out-of-sample equity: the ``equity`` column of `equity_frame`."""
        return self.equity_frame["equity"]

    def buy_and_hold(self) -> pd.Series:
        """What the initial cash would be worth at each stitched equity sample in the
        basket of ``Buy & Hold Return [%]`` over the test windows (split equally among the
        symbols, each share from its symbol's first close of the first test window, held
        without costs); its last value is ``initial_cash * (1 + Buy & Hold Return [%] /
        100)``, and the plot and the report draw it beside the equity (as
        `tickstep.Result.buy_and_hold`, from the test windows' kept closes: a streamed
        walk-forward's are its day ends', so there it starts at the first day's last
        close)."""
        symbols = self.results[0].symbols
        closes = []
        for symbol in symbols:
            kept = pd.concat([r.prices(symbol) for r in self.results])
            closes.append((kept.index.asi8, kept.to_numpy()))
        basket = buy_and_hold_values(closes, self.equity.index.asi8, self._start,
                                     self.initial_cash)
        return pd.Series(basket, index=self.equity.index, name="buy & hold")

    def benchmark_equity(self) -> pd.Series:
        """The initial cash held in the walk-forward's ``benchmark=`` from the first test
        window's start, at each stitched equity sample (the prices its ``Alpha [%]`` and
        ``Beta`` read; as `tickstep.Result.benchmark_equity`); drawn beside the equity."""
        kept = [r.benchmark for r in self.results if r.benchmark is not None]
        if not kept:
            raise ValueError("this walk-forward had no benchmark: BacktestConfig(benchmark="
                             "...) takes a symbol of the data or a price Series")
        # A symbol's prices are each window's own bars (a window's market): joined, the
        # bars two windows share (a warm-up) kept once.
        prices = pd.concat(kept)
        prices = prices[~prices.index.duplicated(keep="last")].sort_index()
        held = held_values(prices, self.equity.index.asi8, self._start, self.initial_cash)
        return pd.Series(held, index=self.equity.index, name=kept[0].name)

    @property
    def _start(self) -> int:
        """The out-of-sample span's start (int ns): the first test window's."""
        return pd.Timestamp(self.windows["test_start"].iloc[0]).value

    @property
    def _run_options(self) -> Mapping[str, Any]:
        # Every test run has the walk-forward's options (its timezone, risk-free rate and
        # annualisation); only their trade start differs.
        return self.results[0].options if self.results else {}

    def summary(self) -> str:
        """The statistics as readable text."""
        return format_stats(self.stats)

    def __repr__(self) -> str:
        return (f"<WalkForwardResult {len(self.results)} windows, out-of-sample final equity "
                f"{self.equity.iloc[-1]:,.2f}>")


def walk_forward(backtest: Any, *, train: Any, test: Any,
                 maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
                 anchored: bool = False, warmup: Any = None,
                 constraint: Callable[[Any], bool] | None = None,
                 max_tries: int | float | None = None, random_state: int = 0,
                 method: Any = "grid", round_size: int | None = None,
                 executor: Any = None, max_workers: int | None = None, cache: Any = True,
                 progress: bool | None = False, source: MarketWindows | StreamedWindows | None = None,
                 **grid: Any) -> WalkForwardResult:
    """Walk-forward optimisation of ``backtest``'s strategy (see the module notes).

    ``Backtest.walk_forward`` calls this; its docstring has the parameters. ``source``:
    where the windows' runs read their bars (`StreamedWindows` for a streamed backtest);
    by default the backtest's market in memory.
    """
    if not grid:
        raise TypeError("walk_forward needs at least one parameter range, e.g. fast=[5, 10, 20]")
    objective = Objective(maximize)
    if objective.several:
        raise ConfigError(
            f"maximize={maximize!r}: a walk-forward trades one set per test window, the best "
            "by one objective; give one statistic, or a function of the statistics that "
            "weighs several (several rank a batch's rows by Pareto front: optimize, run_batch)")
    config, strategy = backtest.config, backtest.strategy
    if source is None:
        source = MarketWindows(backtest.market, backtest.metadata)
    # Analysis tables are read by time, so each window sees only what was known then.
    records = getattr(backtest, "records", None) or None
    timeline = source.timeline()
    windows = plan_windows(timeline, train, test, anchored=anchored, warmup=warmup)
    if not windows:
        raise ValueError(
            f"no walk-forward window fits the data ({pd.Timestamp(int(timeline[0]), tz='UTC')} "
            f"to {pd.Timestamp(int(timeline[-1]), tz='UTC')}) with train={train!r}, "
            f"test={test!r}, warmup={warmup!r}"
        )
    lead = _span(warmup, "warmup") if warmup is not None else pd.Timedelta(0)
    # Its runs (every train grid's and every test window's) warn of no rejected order
    # themselves: the walk-forward warns once, naming the runs that had any.
    quiet = quiet_runs(config)
    rejections: list[tuple[str, Any]] = []
    failures: list[tuple[str, dict[str, Any]]] = []
    undecided: list[int] = []  # windows whose train runs all left the objective NaN
    by, what = objective.columns[0], objective.describe()

    rows, results, trades = [], [], []
    for w in windows:
        # Train: the grid on [train_start, train_end), warmed up on the bars before it.
        with warnings.catch_warnings():
            # Its failed runs, and a statistic NaN in all of them, are named once for the
            # whole walk-forward, below (its rejections are counted quietly already).
            warnings.simplefilter("ignore", TickstepWarning)
            tried = source.train(
                strategy, (w.train_start - lead).value, w.train_end.value, params=grid,
                maximize=maximize,
                constraint=constraint, max_tries=max_tries, random_state=random_state,
                method=method, round_size=round_size, executor=executor,
                max_workers=max_workers, cache=cache, progress=progress,
                config=quiet.replace(trade_start=w.train_start),
                records=records,
            )
        for job in tried.index.sort_values():
            run = tried.loc[job]
            label = run_label(f"window {w.number} train", {n: _plain(run[n]) for n in grid})
            failures.append((label, {"status": run["status"], "error": run["error"]}))
            rejections.append((label, run["# Orders Rejected"]))
        ok = tried[tried["status"] == "ok"]
        if len(ok) == 0:
            first = tried["error"].dropna()
            raise RuntimeError(
                f"walk-forward window {w.number} ({w.train_start} to {w.train_end}): every "
                f"parameter set failed on the train window; first error: "
                f"{first.iloc[0] if len(first) else 'none recorded'}"
            )
        best = ok.iloc[0]
        if ok[by].isna().all():
            undecided.append(w.number)
        chosen = {name: _plain(best[name]) for name in grid}
        in_sample = float(best[by])

        # Test: the chosen set on [test_start, test_end), warmed up the same way.
        test_config = quiet.replace(trade_start=w.test_start)
        result = source.test(strategy, (w.test_start - lead).value, w.test_end.value,
                             test_config, chosen, records)
        rejected = int(result.stats["# Orders Rejected"])
        rejections.append((run_label(f"window {w.number} test", chosen), rejected))
        results.append(result)
        trades.append(result.trades.assign(window=w.number))
        rows.append({
            "window": w.number, "train_start": w.train_start, "train_end": w.train_end,
            "test_start": w.test_start, "test_end": w.test_end, **chosen,
            "in_sample": in_sample, "out_of_sample": objective.values({"status": "ok", "stats": result.stats})[0],
            "Return [%]": result.stats["Return [%]"], "# Trades": result.stats["# Trades"],
            "# Orders Rejected": rejected,
            "# Margin Calls": int(result.stats["# Margin Calls"]),
        })

    table = pd.DataFrame(rows).set_index("window")
    frame = _stitch([r.equity_frame for r in results], config.cash)
    all_trades = pd.concat(trades, ignore_index=True) if trades else pd.DataFrame()
    # What a single run's statistics read besides its run, over the out-of-sample span:
    # the buy-and-hold basket over the test windows (from the first one's start to the
    # last one's end, which the stitched equity ends in), the benchmark, and the test
    # windows' rejected orders, carrying costs and dividends (in their own money, as their trades).
    carried = exact_sum([float(r.stats["Carrying Costs [$]"]) for r in results])
    dividends = exact_sum([float(r.stats["Dividends [$]"]) for r in results])
    # Exposure over the test windows' ticks, each counted by its own run.
    counted = [r.exposure_ticks for r in results]
    exposure = (None if any(c is None for c in counted)
                else (sum(c[0] for c in counted), sum(c[1] for c in counted)))
    stats = compute_stats(frame, all_trades, initial_cash=config.cash,
                          risk_free_rate=config.risk_free_rate, start=windows[0].test_start,
                          end=frame.index[-1], timezone=config.timezone,
                          periods_per_year=config.periods_per_year,
                          orders_rejected=int(table["# Orders Rejected"].sum()),
                          carrying_costs=carried,
                          margin_calls=int(table["# Margin Calls"].sum()),
                          dividends=dividends, exposure_ticks=exposure,
                          **source.stats_inputs(config.benchmark, windows[0].test_start.value,
                                                windows[-1].test_end.value))
    if undecided:
        warnings.warn(
            f"{what} is NaN in every train run of window(s) "
            f"{', '.join(map(str, undecided))}: none was best, and the first parameter set "
            "traded the test window; check the runs' # Trades, or maximize another statistic",
            TickstepWarning, stacklevel=caller_outside_tickstep())
    warn_of_failed_runs(failures, where="The best of the others traded each test window "
                                        "(a window whose runs all fail stops the walk-forward)")
    warn_of_rejected_runs(rejections, config.on_reject,
                          where="wf.windows['# Orders Rejected'] counts each test window's "
                                "(wf.results: their runs)")
    return WalkForwardResult(windows=table, equity_frame=frame, stats=stats, results=results,
                             trades=all_trades, initial_cash=config.cash, parameters=list(grid),
                             objective=by)


def _stitch(frames: list[pd.DataFrame], cash: float) -> pd.DataFrame:
    """Compound the test windows: each window's money columns scaled by the equity the
    windows before it reached over the starting cash."""
    scaled, level = [], 1.0
    for frame in frames:
        scaled.append(frame[["equity", "cash", "gross_exposure"]] * level)
        level *= float(frame["equity"].iloc[-1]) / cash
        if not math.isfinite(level):
            raise ValueError("stitched equity is not finite (a window ended at zero equity)")
    return pd.concat(scaled)
