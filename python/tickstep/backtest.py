"""`Backtest`: data + a strategy class + a `BacktestConfig` -> one or many runs."""

from __future__ import annotations

import numbers
import sys
import webbrowser
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from tickstep import _core
from tickstep.config import (
    BacktestConfig,
    ConfigError,
    check_symbols,
    read_benchmark,
    split_options,
)
from tickstep.data import LOAD_OPTIONS, resolve
from tickstep.data._arrow import readable_twice
from tickstep.data._records import records_for_backtest
from tickstep.data._resolve import resolve_with_records
from tickstep.data._stream import open_stream
from tickstep.results import Result, benchmark_prices
from tickstep.signals import is_signal_strategy, run_signal_grid, run_signals, run_strategy
from tickstep.simulation import market_from_columns, session_ends, simulate, simulate_stream
from tickstep.strategy import Strategy
from tickstep.timeframes import duration

__all__ = ["Backtest"]


def _duration(value: Any, name: str) -> pd.Timedelta:
    try:
        span = duration(value)
    except (ValueError, TypeError):
        raise ValueError(f"{name}={value!r} is not a duration such as '30D' or '6h'") from None
    if span is pd.NaT or span < pd.Timedelta(0):
        raise ValueError(f"{name}={value!r} must be a duration >= 0 such as '30D' or '6h'")
    return span


class Backtest:
    """A strategy over market data with a simulated broker.

    Parameters
    ----------
    data : DataFrame, mapping of symbol -> DataFrame, long DataFrame with a ``symbol``
        column, :class:`tickstep.data.MarketColumns`, a file of bars (CSV, Parquet,
        Arrow), a store (``tickstep.data.Store``) or a path / ``postgresql://`` URL of
        one -- anything `tickstep.data.resolve` takes -- or a prepared
        ``tickstep._core.Market``.
    strategy : type[Strategy], optional
        What `run`, `optimize` and `walk_forward` trade. Without one the backtest serves
        signals mode alone (`run_signals`, `run_signal_grid`), which needs no class.
    config : BacktestConfig, optional
        Every engine and accounting option at once; options passed by name below
        override it.
    symbols, start, end :
        Restrict the data to these symbols and this time range, both inclusive; a date
        alone means that whole day (the rule of `tickstep.data.resolve`).
    records : list of str or mapping, optional
        Analysis tables a strategy reads with ``self.records(name, symbol)``: names of
        tables in the data's store (``records=["zones"]``, one query per table for all
        symbols and times), or ``{name: records}`` with a DataFrame, Arrow/Polars table
        or file per table. See the guide page on analysis tables.
    warmup : duration, optional
        Also load this much data before ``start`` (``"30D"``, ``"6h"``, a Timedelta) and
        feed it to indicators and candles without calling the strategy, which starts at
        ``start`` (without ``start``: at the first bar + ``warmup``). Statistics, equity
        and orders begin there too (`BacktestConfig.trade_start`).
    **options :
        Any option of `tickstep.BacktestConfig` by name -- ``cash``, ``commission``,
        ``commission_fixed``, ``commission_per_unit``, ``commission_min``, ``commission_cap``, ``commission_maker``,
        ``slippage``, ``trade_on_close``, ``exclusive_orders``, ``leverage``, ``sizer``,
        ``record_every_bar``, ``timezone``, ``risk_free_rate``, ``benchmark`` -- or a load option of the
        data source (``regular_hours=True``, ``timeframe="1d"``, ``symbol_column="ticker"``,
        ``columns=["signal"]`` and ``allow_nan=["pe"]`` for the extra columns beside OHLCV;
        see `tickstep.data.LOAD_OPTIONS`). Any other name is refused
        with a "did you mean" hint.

    Examples
    --------
    >>> import tickstep
    >>> from tickstep.strategies import SmaCross
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
    >>> result = bt.run(fast=10, slow=30)
    >>> float(result.stats["# Trades"]) >= 0
    True
    """

    def __init__(
        self,
        data: Any,
        strategy: type[Strategy] | None = None,
        config: BacktestConfig | None = None,
        *,
        symbols: list[str] | None = None,
        start: Any = None,
        end: Any = None,
        warmup: Any = None,
        records: Any = None,
        **options: Any,
    ) -> None:
        if strategy is not None and not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
            raise TypeError(f"strategy must be a subclass of tickstep.Strategy, got {strategy!r}")
        if config is not None and not isinstance(config, BacktestConfig):
            raise TypeError(f"config must be a tickstep.BacktestConfig, got {type(config).__name__}")
        # Options first: a misspelled one is refused before any data is read.
        config_options, load_options = split_options(options, LOAD_OPTIONS)
        base = config if config is not None else BacktestConfig()
        self._config = base.replace(**config_options) if config_options else base
        self._strategy = strategy
        # What `plot` draws: the latest run's result, or optimize's best set to run again.
        self._latest: Result | dict[str, Any] | None = None
        self._stream = None
        if self._config.stream is not None:
            # Streamed: the data are read window by window at each run, never held whole.
            if isinstance(data, _core.Market):
                raise TypeError("a prepared Market is already in memory: it cannot be streamed")
            if warmup is not None and start is not None:
                self._config = self._config.replace(trade_start=start)
                start = self._config.trade_start - _duration(warmup, "warmup")
            self._stream = open_stream(data, window=self._config.stream, symbols=symbols,
                                       start=start, end=end, **load_options)
            # What optimize's runs stream again, each from the start.
            self._stream_request = {"data": data, "symbols": symbols, "start": start,
                                    "end": end, "load_options": load_options}
            # Analysis tables are small beside the bars: read whole, once, and looked up
            # by time as in memory.
            self._records = {} if records is None else records_for_backtest(
                self._stream.store, records, list(self._stream.symbols),
                selected=symbols is not None, start=start, end=end)
            self._market = None
            self._symbols = list(self._stream.symbols)
            self._symbol_dtype = pd.CategoricalDtype(self._symbols)
            self._metadata = self._stream.metadata
            if warmup is not None and self._config.trade_start is None:
                first = pd.Timestamp(self._stream.first, tz="UTC")
                self._config = self._config.replace(trade_start=first + _duration(warmup, "warmup"))
            if symbols is None:
                check_symbols(self._config, self._symbols)
            self._config = read_benchmark(self._config, data, self._symbols,
                                          every_symbol=symbols is None, start=start, end=end,
                                          load_options=load_options)
            self._session_ends = None
            return
        if isinstance(data, _core.Market):
            # Already in the core: nothing to copy.
            if symbols is not None or start is not None or end is not None or load_options:
                raise TypeError("a prepared Market takes no symbols/start/end/load options")
            if records is not None:
                raise TypeError("a prepared Market takes no records: pass the data itself")
            self._market = data
            metadata = None
            self._records: dict[str, Any] = {}
        else:
            if warmup is not None and start is not None:
                # Trading starts at `start`; the bars of the warm-up before it are loaded too.
                self._config = self._config.replace(trade_start=start)
                start = self._config.trade_start - _duration(warmup, "warmup")
            if isinstance(self._config.benchmark, str) and symbols is not None:
                # A benchmark symbol maybe left out of the selection is read after it.
                data = readable_twice(data)
            # The one door: every kind of data, one rule for symbols, start and end.
            if records is None:
                columns = resolve(data, symbols=symbols, start=start, end=end, **load_options)
                self._records = {}
            else:
                columns, self._records = resolve_with_records(
                    data, records, symbols=symbols, start=start, end=end, **load_options)
            metadata = columns.metadata
            # The core adopts the door's immutable arrays (or copies the others once).
            self._market = market_from_columns(columns)
            del columns
        self._symbols = list(self._market.symbols)
        self._symbol_dtype = pd.CategoricalDtype(self._symbols)
        self._metadata = metadata
        if warmup is not None and self._config.trade_start is None:
            first = pd.Timestamp(int(self._market.timeline()[0]), tz="UTC")
            self._config = self._config.replace(trade_start=first + _duration(warmup, "warmup"))
        if not isinstance(data, _core.Market):  # a benchmark among the symbols left out
            self._config = read_benchmark(self._config, data, self._symbols,
                                          every_symbol=symbols is None, start=start, end=end,
                                          load_options=load_options)
        # A benchmark symbol missing from the data is refused now, not after a run (as a
        # symbol with a schedule of its own).
        benchmark_prices(self._config.benchmark, self._market)
        if symbols is None:  # (a selection's runs keep the schedules of symbols left out)
            check_symbols(self._config, self._symbols)
        # Computed once: every run of this backtest samples equity at the same ticks.
        self._session_ends = session_ends(self._market, self._config.timezone)

    @property
    def strategy(self) -> type[Strategy]:
        """The strategy class. A backtest made without one has none to give: reading it
        raises `ConfigError` (what `run`, `optimize` and `walk_forward` then say)."""
        if self._strategy is None:
            raise ConfigError(
                "this Backtest was made without a strategy, so it serves signals mode alone "
                "(run_signals, run_signal_grid); to run, optimize or walk forward a strategy, "
                "pass its class: Backtest(data, MyStrategy, ...)")
        return self._strategy

    @property
    def config(self) -> BacktestConfig:
        """The options every run of this backtest uses."""
        return self._config

    @property
    def symbols(self) -> list[str]:
        """The backtest's symbols, sorted by name: the order ``next`` sees them in."""
        return list(self._symbols)

    @property
    def market(self) -> _core.Market:
        """The loaded market (shared by every run of this backtest)."""
        return self._in_memory("market")

    def _in_memory(self, what: str) -> _core.Market:
        if self._market is None:
            raise ConfigError(f"{what} needs the bars in memory; this backtest streams them "
                              f"(stream={self._config.stream}): build it without stream=")
        return self._market

    def _refuse_signals_mode(self) -> None:
        if self._stream is not None:
            raise ConfigError(
                f"signals mode cannot stream (stream={self._config.stream}): its signals are "
                "arrays over every bar (or signals() computed over each symbol's whole "
                "series), so the bars must all be in memory; run it without stream=, or write "
                "the rule as a Strategy's next(), which streams")

    @property
    def records(self) -> dict[str, Any]:
        """The analysis tables loaded for this backtest, by name (`RecordTable`)."""
        return dict(self._records)

    @property
    def metadata(self) -> pd.DataFrame | None:
        """Symbol metadata (sector, exchange, timezone, ...) indexed by symbol, or None."""
        return self._metadata

    def run(self, **params: Any) -> Result:
        """Run the strategy once with ``params`` overriding its class-level defaults.

        A strategy exception propagates unchanged (same type and traceback) with a note
        naming the symbol and time at which it happened. A `tickstep.SignalStrategy` runs
        in signals mode (natively).
        """
        strategy = self.strategy
        if is_signal_strategy(strategy):
            self._refuse_signals_mode()
            if self._records:
                raise ConfigError(f"records=: {strategy.__name__} is a SignalStrategy, whose "
                                  "signals() reads its bars only; analysis tables are for "
                                  "strategies' next()")
            self._latest = run_strategy(self._in_memory("run"), strategy, self._config, params,
                                        metadata=self._metadata, symbols=self._symbol_dtype,
                                        ends=self._session_ends)
            return self._latest
        if self._stream is not None:
            result = simulate_stream(self._stream, strategy, self._config, params,
                                     symbols=self._symbol_dtype, records=self._records)
        else:
            result = simulate(self._market, strategy, self._config, params, metadata=self._metadata,
                              symbols=self._symbol_dtype, ends=self._session_ends, records=self._records)
        self._latest = result
        return result
    def run_signals(self, entries: Any = None, exits: Any = None, short_entries: Any = None,
                    short_exits: Any = None, *, size: Any = 0.95, size_type: str = "percent",
                    sl: Any = None, tp: Any = None, sl_price: Any = None,
                    tp_price: Any = None, sl_trail: Any = None,
                    lot_size: Any = None, accumulate: bool = False,
                    exit_after_bars: Any = None, limit: Any = None, limit_price: Any = None,
                    limit_bars: int | None = None, conflict: str = "exit",
                    side_conflict: str = "ignore", opposite_entry: str = "reverse",
                    exit_portion: Any = None) -> Result:
        """Backtest boolean signals natively (signals mode), with this backtest's data and
        options; returns the same `Result` as `run`. No strategy class is used (a backtest
        made without one, ``Backtest(data, cash=...)``, serves it).

        A signal on bar t acts like an order placed in ``next`` at bar t. Rules, sizes
        (``size_type`` "amount", "value", "percent" of equity as a fraction, or
        "target_percent"; ``size`` one number, one per symbol, or one per bar in the shapes
        signals take, NaN or 0 for no entry on that bar), stops (``sl``/``tp`` as fractions
        of the entry bar's close, or ``sl_price``/``tp_price`` per bar; ``sl_trail`` a
        trailing stop-loss as a fraction of the best price since the entry; ``sl``, ``tp``
        and ``sl_trail`` one number, one per symbol or one per bar as ``size`` is, NaN for
        no stop on that bar; ``lot_size``, a
        number or ``{symbol: number}``:
        entries in whole lots; ``accumulate`` for pyramiding; ``exit_after_bars`` a time
        exit, one number, one per symbol or one per bar as ``size`` is, the position
        keeping the number on its opening entry's bar; ``limit``, a fraction better than
        the close as ``sl`` is given, or ``limit_price`` per bar: entries as limit orders,
        working ``limit_bars`` bars or until a later signal cancels them; ``conflict``,
        ``side_conflict`` and ``opposite_entry``: how signals that contradict each other or
        the position are read; ``exit_portion``: the portion of the position an exit signal
        closes, given as ``size`` is, NaN or None for all of it) and the shapes signals may
        take: `tickstep.signals`.
        """
        self._refuse_signals_mode()
        self._latest = run_signals(
            self._in_memory("run_signals"), self._config, entries=entries, exits=exits,
            short_entries=short_entries, short_exits=short_exits, size=size,
            size_type=size_type, sl=sl, tp=tp, sl_price=sl_price, tp_price=tp_price,
            sl_trail=sl_trail, lot_size=lot_size, accumulate=accumulate,
            exit_after_bars=exit_after_bars, limit=limit, limit_price=limit_price,
            limit_bars=limit_bars, conflict=conflict, side_conflict=side_conflict,
            opposite_entry=opposite_entry, exit_portion=exit_portion, metadata=self._metadata,
            symbols=self._symbol_dtype, ends=self._session_ends,
        )
        return self._latest

    def run_signal_grid(self, signal_sets: Any = None, *, entries: Any = None, exits: Any = None,
                        short_entries: Any = None, short_exits: Any = None,
                        sl_price: Any = None, tp_price: Any = None,
                        size: Any = 0.95, size_type: str = "percent",
                        sl: Any = None, tp: Any = None,
                        sl_trail: Any = None, lot_size: Any = None,
                        accumulate: bool = False, exit_after_bars: Any = None,
                        limit: Any = None, limit_price: Any = None,
                        limit_bars: int | None = None, conflict: str = "exit",
                        side_conflict: str = "ignore", opposite_entry: str = "reverse",
                        exit_portion: Any = None, threads: int | None = None) -> pd.DataFrame:
        """Backtest many signal sets (``{key: {"entries": ..., "exits": ...}}``, or frames
        with one column per set and symbol as ``entries=``, ``exits=``, ...: vectorbt's
        layout) in one native call on all cores; a table of statistics, one row per set,
        each equal to `run_signals` of that set alone (`tickstep.signals.run_signal_grid`)."""
        self._refuse_signals_mode()
        return run_signal_grid(
            self._in_memory("run_signal_grid"), self._config, signal_sets, entries=entries,
            exits=exits, short_entries=short_entries, short_exits=short_exits,
            sl_price=sl_price, tp_price=tp_price, size=size, size_type=size_type, sl=sl,
            tp=tp, sl_trail=sl_trail, lot_size=lot_size, accumulate=accumulate,
            exit_after_bars=exit_after_bars, limit=limit, limit_price=limit_price,
            limit_bars=limit_bars, conflict=conflict, side_conflict=side_conflict,
            opposite_entry=opposite_entry, exit_portion=exit_portion, threads=threads,
            ends=self._session_ends,
        )

    def optimize(
        self,
        *,
        maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
        constraint: Callable[[Any], bool] | None = None,
        max_tries: int | float | None = None,
        random_state: int = 0,
        executor: Any = None,
        max_workers: int | None = None,
        cache: Any = True,
        progress: bool | None = None,
        return_heatmap: bool = False,
        round_size: int | None = None,
        returns: bool = False,
        **ranges: Any,
    ) -> pd.DataFrame | tuple[pd.DataFrame, pd.Series]:
        """Run the strategy over a grid of parameters, in parallel; one row per set, best first.

        Parameters
        ----------
        maximize : str, callable, list or dict, default "Sharpe Ratio"
            A statistic of ``Result.stats``, or ``f(stats) -> float`` (a ``score`` column);
            or several statistics (``["Return [%]", "Max. Drawdown [%]"]``, each
            maximised, or ``{statistic: "max" or "min"}``): the rows are then ranked by
            Pareto front, a ``Pareto Rank`` column (see `tickstep.batch.objectives`).
        constraint : callable, optional
            ``constraint(p) -> bool`` keeps the parameter sets it accepts; ``p`` reads as a
            dict or by attribute: ``lambda p: p.fast < p.slow``.
        max_tries : int or float, optional
            A random search, as backtesting.py's: only this many of the sets the
            constraint keeps (or this fraction of them, a float in (0, 1]), drawn without
            replacement; all of them by default.
        random_state : int, default 0
            The draw's seed: the same one draws the same sets.
        executor : None, "process", "sequential", dask Client or Executor
            Where the runs go (local processes by default); see `tickstep.batch.run_batch`.
        max_workers : int, optional
            Worker processes for the local pool.
        cache : bool, path or ResultsCache, default True
            The on-disk results cache (``~/.cache/tickstep``); False to bypass it.
        progress : bool, optional
            Progress bar on stderr (by default only on a terminal).
        return_heatmap : bool, default False
            Also return backtesting.py's heatmap: ``(rows, heatmap)``.
        method : "grid", "optuna" or an optuna sampler, default "grid"
            ``"grid"``: every set (or, with ``max_tries``, a random draw of them).
            ``"optuna"``: a model-based search of ``max_tries`` sets, optuna's TPE
            sampler (seeded by ``random_state``) proposing sets from how those run did
            (backtesting.py's ``"sambo"`` is not built in; this searches the same way);
            or an optuna sampler of your own. See `tickstep.batch.run_batch`. (A
            strategy with a parameter named ``method`` varies it instead.)
        round_size : int, optional
            The sets a model-based ``method`` proposes at a time (8 by default); see
            `tickstep.batch.run_batch`.
        returns : bool, default False
            Each row also keeps its run's daily returns (a ``Daily Returns`` column), for
            `tickstep.significance.backtest_overfitting`: how likely choosing the best of
            these sets overfits.
        return_optimization : bool, default False
            With a model-based ``method``, also return its ``optuna.Study`` (every set
            proposed and its objective), last, as backtesting.py returns its SAMBO
            result.
        **ranges
            ``name=values`` per parameter to vary; a scalar is a fixed value.

        Returns
        -------
        pandas.DataFrame
            One row per parameter set: the parameters, every statistic, run time, status
            and error text, sorted by ``maximize`` (``.iloc[0]`` is the best; with
            several objectives, the first of the Pareto front by the first objective).
        pandas.Series
            With ``return_heatmap``: the value maximised (the statistic, or ``score``) of
            each set that ran, indexed by the parameters of ``ranges`` in grid order, as
            backtesting.py's (`tickstep.lib.plot_heatmaps` draws it).
        optuna.Study
            With ``return_optimization``: the model-based search's study (with several
            objectives a multi-objective study: ``study.best_trials`` is its front).

        Examples
        --------
        >>> import tickstep
        >>> from tickstep.strategies import SmaCross
        >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
        >>> rows = bt.optimize(fast=[5, 10], slow=[20, 40], cache=False,
        ...                    constraint=lambda p: p.fast < p.slow)
        >>> len(rows), list(rows.columns[:3])
        (4, ['fast', 'slow', 'symbols'])
        """
        if return_heatmap is not True and return_heatmap is not False:
            raise ConfigError(f"optimize(return_heatmap={return_heatmap!r}): True or False")
        if return_heatmap:
            heatmap_metric(maximize, "optimize(return_heatmap=True)")
        from tickstep.batch.search import option_of

        method = option_of(self.strategy, ranges, "method", "grid")
        study = option_of(self.strategy, ranges, "return_optimization", False)
        if study is not True and study is not False:
            raise ConfigError(f"optimize(return_optimization={study!r}): True or False")
        if study and method == "grid":
            raise ConfigError("optimize(return_optimization=True): the study of a model-based "
                              "search (method='optuna'); a grid's result is its rows "
                              "(return_heatmap=True adds the heatmap)")
        rows, studies = self._optimize(
            ranges, maximize=maximize, constraint=constraint, max_tries=max_tries,
            random_state=random_state, method=method, round_size=round_size,
            returns=returns, executor=executor, max_workers=max_workers, cache=cache,
            progress=progress)
        # `plot` then draws the best set's run, run again when asked (a batch keeps no
        # prices), as backtesting.py's plot after its optimize.
        ok = rows[rows["status"] == "ok"] if "status" in rows else rows
        if len(ok) and self.strategy is not None and not is_signal_strategy(self.strategy):
            from tickstep.walkforward import _plain

            self._latest = {name: _plain(ok.iloc[0][name]) for name in ranges}
        answer = (rows, *([_heatmap_of(rows, list(ranges), maximize)] if return_heatmap else []),
                  *([studies["portfolio"]] if study else []))
        return answer if len(answer) > 1 else rows

    def _has_parameter(self, name: str) -> bool:
        strategy = self.strategy
        return strategy is not None and name in strategy.parameters()

    def _optimize(self, ranges: dict[str, Any], **search: Any
                  ) -> tuple[pd.DataFrame, dict[str, Any]]:
        """The rows of `optimize` and its search's study (``{"portfolio": study}``): each
        parameter set one run over all the backtest's symbols together, as `run`."""
        from tickstep.batch import run_batch
        from tickstep.batch.api import _market_columns

        if not ranges:
            raise TypeError("optimize needs at least one parameter range, e.g. fast=[5, 10, 20]")
        if self._stream is not None:
            # Each parameter set streams the data again, as `run` does.
            request = self._stream_request
            return run_batch(
                self.strategy, request["data"], params=ranges, symbols=request["symbols"],
                portfolio=True, return_optimization=True, start=request["start"],
                end=request["end"], load_options=request["load_options"], config=self._config,
                records=self._records or None, **search)
        return run_batch(self.strategy, _market_columns(self._market, self._metadata),
                         params=ranges, portfolio=True, return_optimization=True,
                         config=self._config, records=self._records or None, **search)

    def plot(self, *, results: Result | None = None, filename: str | Path | None = None,
             open_browser: bool = True, symbols: list[str] | None = None, max_points: int = 2000,
             plot_equity: bool = True, plot_drawdown: bool = True, plot_trades: bool = True,
             resample: bool = True, plot_width: int | None = None, show_legend: bool = True,
             **others: Any) -> Any:
        """backtesting.py's ``bt.plot()``: the figure of the latest `run` (`Result.plot`;
        after `optimize`, of its best set, run again here), or of ``results``.

        backtesting.py's options that mean the same here: ``plot_equity`` and
        ``plot_drawdown`` (the account's rows; exposure is drawn with the equity),
        ``plot_trades`` (fills and bracket levels on the prices), ``resample`` (False
        draws every point, else lines are downsampled to ``max_points``),
        ``plot_width`` (pixels; None fills the page), ``show_legend``, ``filename`` (the
        figure written there as HTML) and ``open_browser`` (opens that file; nothing is
        opened without a ``filename``: the figure is returned, and a notebook shows it).
        Its other options draw panes this figure does not have (``plot_volume``,
        ``plot_pl``, ``plot_return``, ``superimpose``, ...) and are refused by name.
        Needs ``pip install 'tickstep[plot]'``.
        """
        if others:
            raise ConfigError(
                f"plot({', '.join(f'{k}=' for k in others)}): not an option of tickstep's plot; it "
                "takes results, filename, open_browser, symbols, max_points, plot_equity, "
                "plot_drawdown, plot_trades, resample, plot_width and show_legend (backtesting.py's "
                "volume, P/L, return and superimposed panes are not drawn here)")
        for name, value in (("open_browser", open_browser), ("plot_equity", plot_equity),
                            ("plot_drawdown", plot_drawdown), ("plot_trades", plot_trades),
                            ("resample", resample), ("show_legend", show_legend)):
            if value is not True and value is not False:
                raise ConfigError(f"plot({name}={value!r}): True or False")
        if plot_width is not None and not (isinstance(plot_width, numbers.Integral)
                                           and not isinstance(plot_width, bool) and plot_width > 0):
            raise ConfigError(f"plot(plot_width={plot_width!r}): a width in pixels (a positive whole "
                              "number), or None to fill the page")
        if results is None:
            results = self._latest_result()
        elif not isinstance(results, Result):
            raise ConfigError(f"plot(results={type(results).__name__}): a tickstep Result (what "
                              "run() returns), or None for the latest run")
        from tickstep.report.figures import plot

        rows = ("equity", "exposure") * plot_equity + ("drawdown",) * plot_drawdown
        fig = plot(results, symbols, max_points=max_points if resample else sys.maxsize,
                   rows=tuple(r for r in ("equity", "drawdown", "exposure") if r in rows),
                   trades=plot_trades)
        fig.update_layout(showlegend=show_legend, **({"width": plot_width} if plot_width else {}))
        if filename is not None:
            path = Path(filename)
            fig.write_html(path, include_plotlyjs=True)
            if open_browser:
                webbrowser.open(path.resolve().as_uri())
        return fig

    def _latest_result(self) -> Result:
        latest = self._latest
        if latest is None:
            raise ConfigError("plot(): nothing has run yet: call run() (or optimize()) first, or "
                              "pass results=")
        if isinstance(latest, dict):  # optimize's best set, run again to be drawn
            latest = self.run(**latest)
        return latest

    def walk_forward(
        self,
        *,
        train: Any,
        test: Any,
        maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
        anchored: bool = False,
        warmup: Any = None,
        constraint: Callable[[Any], bool] | None = None,
        max_tries: int | float | None = None,
        random_state: int = 0,
        executor: Any = None,
        max_workers: int | None = None,
        cache: Any = True,
        progress: bool | None = False,
        round_size: int | None = None,
        **ranges: Any,
    ) -> Any:
        """Walk-forward optimisation: optimise on each train window, trade the next one.

        Parameters
        ----------
        train, test : duration or pandas.DateOffset
            Window lengths (``"365D"``, ``"90D"``, ``pd.DateOffset(months=3)``). Test
            windows follow each other without overlap; each train window ends where its
            test window starts.
        maximize : str or callable, default "Sharpe Ratio"
            The objective chosen on each train window (as in `optimize`).
        anchored : bool, default False
            Train windows all start at the first window's start (growing) instead of
            rolling forward by ``test``.
        warmup : duration, optional
            Bars before each window fed to indicators without calling the strategy, so no
            window starts cold (the first window starts ``warmup`` after the data).
        constraint, max_tries, random_state, method, round_size, executor, max_workers, cache, progress :
            As in `optimize`, for each train window's grid (a random search draws the
            same sets in every window: the grid and the seed are the same; a model-based
            ``method`` searches each train window afresh, with the same seed).
        **ranges
            ``name=values`` per parameter to vary.

        Returns
        -------
        tickstep.walkforward.WalkForwardResult
            ``windows`` (bounds, chosen parameters, in- and out-of-sample objective),
            ``equity`` (the stitched out-of-sample equity), ``stats``, ``results`` (each
            test window's `Result`) and ``trades``; ``plot()`` and ``report(path)``. See
            `tickstep.walkforward`. A backtest built with ``stream=`` walks forward
            without holding the market: every run streams its window's bars, and the
            result is the one in memory.

        Examples
        --------
        >>> import tickstep
        >>> from tickstep.strategies import SmaCross
        >>> bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000)
        >>> wf = bt.walk_forward(train="365D", test="180D", warmup="60D", fast=[5, 10],
        ...                      slow=[30, 50], maximize="Return [%]", cache=False,
        ...                      executor="sequential")
        >>> list(wf.windows.columns[:6])
        ['train_start', 'train_end', 'test_start', 'test_end', 'fast', 'slow']
        """
        from tickstep.batch.search import option_of
        from tickstep.walkforward import MarketWindows, StreamedWindows, walk_forward

        method = option_of(self.strategy, ranges, "method", "grid")
        if self._stream is None:
            source = MarketWindows(self._market, self._metadata)
        else:
            if is_signal_strategy(self.strategy):
                self._refuse_signals_mode()
            # Each window's runs stream their bars from the same request.
            request = self._stream_request
            source = StreamedWindows(self._stream, request["data"], start=request["start"],
                                     end=request["end"],
                                     load_options=request["load_options"])
        return walk_forward(self, train=train, test=test, maximize=maximize, anchored=anchored,
                            warmup=warmup, constraint=constraint, max_tries=max_tries,
                            random_state=random_state, method=method,
                            round_size=round_size, executor=executor,
                            max_workers=max_workers, cache=cache, progress=progress,
                            source=source, **ranges)


def heatmap_metric(maximize: Any, where: str) -> str:
    """The column a heatmap of ``maximize`` shows (the statistic, or ``score`` for a
    function), checked before anything runs: several objectives have no one value to
    show. ``where``: the call, as the refusal names it."""
    from tickstep.batch.objectives import Objective

    objective = Objective(maximize)
    if objective.several:
        raise ConfigError(
            f"{where}: a heatmap shows one value per set, and maximize={maximize!r} names "
            "several; the rows rank them by Pareto front (the 'Pareto Rank' column)")
    return objective.columns[0]


def _heatmap_of(rows: pd.DataFrame, names: list[str], maximize: Any) -> pd.Series:
    """backtesting.py's heatmap of an optimisation's ``rows``: the value maximised (the
    statistic ``maximize`` names, or ``score`` for a function) of each set that ran,
    indexed by the parameters ``names``, sorted by them."""
    metric = heatmap_metric(maximize, "return_heatmap=True")
    ok = rows[rows["status"] == "ok"] if "status" in rows.columns else rows
    heatmap = ok.set_index(names)[metric].astype(float).sort_index()
    heatmap.name = metric
    return heatmap
