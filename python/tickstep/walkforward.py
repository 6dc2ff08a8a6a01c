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

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from tickstep.batch import run_batch
from tickstep.batch.api import ranked_by, run_label, warn_of_failed_runs
from tickstep.data import MarketColumns, SymbolBars
from tickstep.metrics import compute_stats, exact_sum, format_stats
from tickstep.rejections import (
    TickstepWarning,
    caller_outside_tickstep,
    quiet_runs,
    warn_of_rejected_runs,
)
from tickstep.results import Result, market_stats_inputs
from tickstep.signals import is_signal_strategy, run_strategy
from tickstep.simulation import market_from_columns, simulate

__all__ = ["Window", "WalkForwardResult", "plan_windows", "walk_forward"]

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
        span = pd.Timedelta(value)
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


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


@dataclass
class WalkForwardResult:
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
        Return [%]`` holds the basket from the first test window's start, and ``Alpha
        [%]`` / ``Beta`` compare with the config's benchmark over the same days.
    results : list of Result
        Each test window's own run.
    trades : pandas.DataFrame
        Every test window's closed trades, with a ``window`` column.
    initial_cash : float
        The cash each test window starts with (and the stitched curve from).
    """

    windows: pd.DataFrame
    equity_frame: pd.DataFrame
    stats: pd.Series
    results: list[Result]
    trades: pd.DataFrame
    initial_cash: float

    def plot(self, *, max_points: int = 2000) -> Any:
        """The stitched out-of-sample equity and its drawdown, a dotted line at each test
        window's start (Plotly figure; needs ``tickstep[plot]``)."""
        from tickstep.report._deps import plotly_objects
        from tickstep.report.figures import Canvas, add_drawdown, add_equity

        go = plotly_objects()
        canvas = Canvas([(0.7, 1), (0.3, 1)], height=520,
                        title="walk-forward: out-of-sample equity")
        add_equity(canvas, 1, self, max_points)
        add_drawdown(canvas, 2, self, max_points)
        canvas.time_axis(1, first=1, labels=False)
        canvas.time_axis(2, first=1)
        canvas.layout["shapes"] = [
            {"type": "line", "xref": "x", "yref": "paper", "x0": t.value / 1e6, "x1": t.value / 1e6,
             "y0": 0, "y1": 1, "line": {"color": "#999", "width": 1, "dash": "dot"}}
            for t in self.windows["test_start"]
        ]
        return go.Figure(canvas.spec())

    @property
    def equity(self) -> pd.Series:
        """The stitched out-of-sample equity: the ``equity`` column of `equity_frame`."""
        return self.equity_frame["equity"]

    def summary(self) -> str:
        """The statistics as readable text."""
        return format_stats(self.stats)

    def __repr__(self) -> str:
        return (f"<WalkForwardResult {len(self.results)} windows, out-of-sample final equity "
                f"{self.equity.iloc[-1]:,.2f}>")


def _objective(maximize: str | Callable[[pd.Series], float], stats: pd.Series) -> float:
    if callable(maximize):
        return float(maximize(stats))
    return float(stats[maximize])


def walk_forward(backtest: Any, *, train: Any, test: Any,
                 maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
                 anchored: bool = False, warmup: Any = None,
                 constraint: Callable[[Any], bool] | None = None,
                 max_tries: int | float | None = None, random_state: int = 0,
                 executor: Any = None, max_workers: int | None = None, cache: Any = True,
                 progress: bool | None = False, **grid: Any) -> WalkForwardResult:
    """Walk-forward optimisation of ``backtest``'s strategy (see the module notes).

    ``Backtest.walk_forward`` calls this; its docstring has the parameters.
    """
    if not grid:
        raise TypeError("walk_forward needs at least one parameter range, e.g. fast=[5, 10, 20]")
    if not (callable(maximize) or isinstance(maximize, str)):
        raise TypeError(f"maximize must be a statistic's name or a function of the stats, got {maximize!r}")
    market, metadata, config, strategy = (backtest.market, backtest.metadata, backtest.config,
                                          backtest.strategy)
    # Analysis tables are read by time, so each window sees only what was known then.
    records = getattr(backtest, "records", None) or None
    windows = plan_windows(market.timeline(), train, test, anchored=anchored, warmup=warmup)
    if not windows:
        raise ValueError(
            f"no walk-forward window fits the data ({pd.Timestamp(int(market.timeline()[0]), tz='UTC')} "
            f"to {pd.Timestamp(int(market.timeline()[-1]), tz='UTC')}) with train={train!r}, "
            f"test={test!r}, warmup={warmup!r}"
        )
    lead = _span(warmup, "warmup") if warmup is not None else pd.Timedelta(0)
    # Its runs (every train grid's and every test window's) warn of no rejected order
    # themselves: the walk-forward warns once, naming the runs that had any.
    quiet = quiet_runs(config)
    rejections: list[tuple[str, Any]] = []
    failures: list[tuple[str, dict[str, Any]]] = []
    undecided: list[int] = []  # windows whose train runs all left the objective NaN
    by, objective = ranked_by(maximize)

    rows, results, trades = [], [], []
    for w in windows:
        # Train: the grid on [train_start, train_end), warmed up on the bars before it.
        train_data = _columns(market, metadata, (w.train_start - lead).value, w.train_end.value)
        with warnings.catch_warnings():
            # Its failed runs, and a statistic NaN in all of them, are named once for the
            # whole walk-forward, below (its rejections are counted quietly already).
            warnings.simplefilter("ignore", TickstepWarning)
            tried = run_batch(
                strategy, train_data, params=grid, portfolio=True, maximize=maximize,
                constraint=constraint, max_tries=max_tries, random_state=random_state,
                executor=executor, max_workers=max_workers, cache=cache, progress=progress,
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
        test_data = _columns(market, metadata, (w.test_start - lead).value, w.test_end.value)
        test_config = quiet.replace(trade_start=w.test_start)
        if is_signal_strategy(strategy):  # (run_batch refused its records= above)
            result = run_strategy(market_from_columns(test_data), strategy, test_config,
                                  chosen, metadata=test_data.metadata)
        else:
            result = simulate(market_from_columns(test_data), strategy, test_config, chosen,
                              metadata=test_data.metadata, records=records)
        rejected = int(result.stats["# Orders Rejected"])
        rejections.append((run_label(f"window {w.number} test", chosen), rejected))
        results.append(result)
        trades.append(result.trades.assign(window=w.number))
        rows.append({
            "window": w.number, "train_start": w.train_start, "train_end": w.train_end,
            "test_start": w.test_start, "test_end": w.test_end, **chosen,
            "in_sample": in_sample, "out_of_sample": _objective(maximize, result.stats),
            "Return [%]": result.stats["Return [%]"], "# Trades": result.stats["# Trades"],
            "# Orders Rejected": rejected,
            "# Margin Calls": int(result.stats["# Margin Calls"]),
        })

    table = pd.DataFrame(rows).set_index("window")
    frame = _stitch([r.equity_frame for r in results], config.cash)
    all_trades = pd.concat(trades, ignore_index=True) if trades else pd.DataFrame()
    # What a single run's statistics read besides its run, over the out-of-sample span:
    # the buy-and-hold basket from the first test window on, the benchmark, and the test
    # windows' rejected orders, carrying costs and dividends (in their own money, as their trades).
    carried = exact_sum([float(r.stats["Carrying Costs [$]"]) for r in results])
    dividends = exact_sum([float(r.stats["Dividends [$]"]) for r in results])
    stats = compute_stats(frame, all_trades, initial_cash=config.cash,
                          risk_free_rate=config.risk_free_rate, start=windows[0].test_start,
                          end=frame.index[-1], timezone=config.timezone,
                          periods_per_year=config.periods_per_year,
                          orders_rejected=int(table["# Orders Rejected"].sum()),
                          carrying_costs=carried,
                          margin_calls=int(table["# Margin Calls"].sum()),
                          dividends=dividends,
                          **market_stats_inputs(market, config.benchmark,
                                                since=windows[0].test_start.value))
    if undecided:
        warnings.warn(
            f"{objective} is NaN in every train run of window(s) "
            f"{', '.join(map(str, undecided))}: none was best, and the first parameter set "
            "traded the test window; check the runs' # Trades, or maximize another statistic",
            TickstepWarning, stacklevel=caller_outside_tickstep())
    warn_of_failed_runs(failures, where="The best of the others traded each test window "
                                        "(a window whose runs all fail stops the walk-forward)")
    warn_of_rejected_runs(rejections, config.on_reject,
                          where="wf.windows['# Orders Rejected'] counts each test window's "
                                "(wf.results: their runs)")
    return WalkForwardResult(windows=table, equity_frame=frame, stats=stats, results=results,
                             trades=all_trades, initial_cash=config.cash)


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
