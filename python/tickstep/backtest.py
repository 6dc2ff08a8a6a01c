"""`Backtest`: data + a strategy class + broker settings -> one or many runs."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep.data import MarketColumns, to_market_columns
from tickstep.results import Result, build_result
from tickstep.sizing import PercentOfEquity, Sizer
from tickstep.strategy import Strategy

__all__ = ["Backtest"]


def _load(data: Any, symbols: list[str] | None, start: Any, end: Any, options: dict[str, Any]) -> MarketColumns:
    """Any accepted data source -> validated columns (the door)."""
    if isinstance(data, str):
        from tickstep import data as data_module

        data = data_module.open_store(data)
    if hasattr(data, "load") and not isinstance(data, (pd.DataFrame, Mapping, MarketColumns)):
        return data.load(symbols=symbols, start=start, end=end, **options)
    if options:
        raise TypeError(f"unexpected options for in-memory data: {sorted(options)}")
    columns = to_market_columns(data)
    if symbols is not None:
        missing = [s for s in symbols if s not in columns.symbols]
        if missing:
            raise _core.UnknownSymbolError(f"symbols not in the data: {missing}")
        columns = MarketColumns([columns[s] for s in symbols], columns.metadata)
    if start is not None or end is not None:
        columns = _slice(columns, start, end)
    return columns


def _ns(t: Any) -> int:
    ts = pd.Timestamp(t)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value)


def _slice(columns: MarketColumns, start: Any, end: Any) -> MarketColumns:
    lo = _ns(start) if start is not None else np.iinfo(np.int64).min
    hi = _ns(end) if end is not None else np.iinfo(np.int64).max
    kept = []
    for b in columns.bars:
        i, j = np.searchsorted(b.ts, lo, "left"), np.searchsorted(b.ts, hi, "right")
        if j > i:
            kept.append(type(b)(b.symbol, b.ts[i:j], b.open[i:j], b.high[i:j], b.low[i:j], b.close[i:j], b.volume[i:j]))
    if not kept:
        raise ValueError(f"no bars between {start} and {end}")
    return MarketColumns(kept, columns.metadata)


def _immutable(array: np.ndarray) -> bool:
    """Whether nobody can write ``array``'s values: it and every array it views are
    read-only, down to a read-only buffer (e.g. Arrow's) or memory it owns."""
    a: Any = array
    while isinstance(a, np.ndarray):
        if a.flags.writeable:
            return False
        if a.base is None:
            return True
        a = a.base
    if type(a).__module__.startswith("pyarrow"):
        return True  # Arrow arrays and buffers are immutable
    try:
        return memoryview(a).readonly
    except TypeError:
        return False


def market_from_columns(columns: MarketColumns) -> _core.Market:
    """Hand validated columns to the core: immutable buffers are adopted in place (no
    copy, so data loaded from a store or made by the door is held once), others copied."""
    bars = columns.bars
    adopt = [
        all(_immutable(c) for c in (b.ts, b.open, b.high, b.low, b.close, b.volume))
        for b in bars
    ]
    return _core.Market(
        columns.symbols,
        [b.ts for b in bars],
        [b.open for b in bars],
        [b.high for b in bars],
        [b.low for b in bars],
        [b.close for b in bars],
        [b.volume for b in bars],
        adopt,
    )


class Backtest:
    """A strategy over market data with a simulated broker.

    Parameters
    ----------
    data : DataFrame, mapping of symbol -> DataFrame, long DataFrame with a ``symbol``
        column, :class:`tickstep.data.MarketColumns`, a store (``tickstep.data.Store``) or a
        path / ``postgresql://`` URL of one, or a prepared ``tickstep._core.Market`` (then
        ``metadata=`` may be passed). Column names are case-insensitive.
    strategy : type[Strategy]
    cash : float
        Starting cash, shared by all symbols.
    commission : float
        Fraction of notional charged per fill (0.001 = 0.1%).
    commission_fixed : float
        Fixed amount charged per fill, on top.
    slippage : float
        Basis points against the trader on market and stop fills (limits never slip).
    trade_on_close : bool
        Fill market orders at the close of the bar on which they are placed instead of the
        next bar's open.
    leverage : float
        Gross exposure may reach ``leverage`` x equity; fills beyond are rejected.
    sizer : callable, optional
        Sizes orders placed without ``size`` (default ``PercentOfEquity(0.95)``).
    record_every_bar : bool
        Sample equity at every tick, not only at the end of each trading day.
    timezone : str
        Timezone whose calendar days end the trading days for equity sampling (default UTC).
    risk_free_rate : float
        Annual rate for Sharpe/Sortino.
    symbols, start, end :
        Restrict the data to these symbols and this time range (inclusive).
    **load_options :
        Passed to a store's ``load`` (e.g. ``regular_hours=True``, ``timeframe="1d"``).

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
        strategy: type[Strategy],
        *,
        cash: float = 10_000.0,
        commission: float = 0.0,
        commission_fixed: float = 0.0,
        slippage: float = 0.0,
        trade_on_close: bool = False,
        leverage: float = 1.0,
        sizer: Sizer | None = None,
        record_every_bar: bool = False,
        timezone: str = "UTC",
        risk_free_rate: float = 0.0,
        symbols: list[str] | None = None,
        start: Any = None,
        end: Any = None,
        **load_options: Any,
    ) -> None:
        if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
            raise TypeError(f"strategy must be a subclass of tickstep.Strategy, got {strategy!r}")
        self._strategy = strategy
        if isinstance(data, _core.Market):
            # Already in the core (e.g. cached by a batch worker): nothing to copy.
            self._market = data
            metadata = load_options.pop("metadata", None)
            if symbols is not None or start is not None or end is not None or load_options:
                raise TypeError("a prepared Market takes no symbols/start/end/load options")
        else:
            columns = _load(data, symbols, start, end, load_options)
            metadata = columns.metadata
            # The core adopts the door's immutable arrays (or copies the others once).
            self._market = market_from_columns(columns)
            del columns
        self._symbols = list(self._market.symbols)
        self._symbol_dtype = pd.CategoricalDtype(self._symbols)
        self._metadata = metadata
        self._settings = dict(
            cash=float(cash),
            commission=float(commission),
            commission_fixed=float(commission_fixed),
            slippage_bps=float(slippage),
            fill_at="close" if trade_on_close else "next_open",
            leverage=float(leverage),
            record_every_bar=bool(record_every_bar),
        )
        # Checks every option now, at the door, rather than at the first run.
        _core.Engine(self._market, **self._settings)
        self._sizer = sizer if sizer is not None else PercentOfEquity(0.95)
        self._risk_free_rate = float(risk_free_rate)
        self._timezone = timezone  # batch runs (optimize) rebuild the backtest from its options
        self._session_ends = self._trading_day_ends(timezone)

    def _trading_day_ends(self, timezone: str) -> np.ndarray | None:
        if timezone.upper() == "UTC":
            return None  # the engine's own default
        times = pd.DatetimeIndex(pd.to_datetime(self._market.timeline(), utc=True)).tz_convert(timezone)
        day = times.normalize().asi8
        ends = np.ones(len(day), dtype=bool)
        ends[:-1] = day[1:] != day[:-1]
        return ends

    @property
    def symbols(self) -> list[str]:
        return list(self._symbols)

    @property
    def market(self) -> _core.Market:
        """The loaded market (shared by every run of this backtest)."""
        return self._market

    @property
    def metadata(self) -> pd.DataFrame | None:
        return self._metadata

    @property
    def settings(self) -> dict[str, Any]:
        """The engine settings (for caches and reports)."""
        return dict(self._settings, risk_free_rate=self._risk_free_rate)

    def _simulate(self, params: dict[str, Any]) -> tuple[_core.Engine, Strategy]:
        """One run of the engine with ``params``: the finished engine and the strategy."""
        cls = self._strategy
        cls.check_parameters(params)
        engine = _core.Engine(self._market, **self._settings)
        if self._session_ends is not None:
            engine.set_session_ends(self._session_ends)
        ctx = _core.Context(self._market)
        strategy = cls(ctx, self.symbols, params, self._sizer, self._market, self._metadata)
        engine.run(
            ctx,
            init=strategy.init,
            next=strategy.next if cls.next is not Strategy.next else None,
            on_tick=strategy.on_tick if cls.on_tick is not Strategy.on_tick else None,
        )
        return engine, strategy

    def run(self, **params: Any) -> Result:
        """Run the strategy once with ``params`` overriding its class-level defaults.

        A strategy exception propagates unchanged (same type and traceback) with a note
        naming the symbol and time at which it happened.
        """
        cls = self._strategy
        engine, strategy = self._simulate(params)
        timeline = self._market.timeline()
        return build_result(
            engine,
            self._symbol_dtype,
            cash=self._settings["cash"],
            risk_free_rate=self._risk_free_rate,
            start=pd.Timestamp(int(timeline[0]), tz="UTC"),
            end=pd.Timestamp(int(timeline[-1]), tz="UTC"),
            params={**cls.parameters(), **params},
            strategy=strategy,
        )

    def optimize(
        self,
        *,
        maximize: str | Callable[[pd.Series], float] = "Sharpe Ratio",
        constraint: Callable[[Any], bool] | None = None,
        executor: Any = None,
        max_workers: int | None = None,
        cache: Any = True,
        progress: bool | None = None,
        **ranges: Any,
    ) -> pd.DataFrame:
        """Run the strategy over a grid of parameters, in parallel; one row per set, best first.

        Parameters
        ----------
        maximize : str or callable, default "Sharpe Ratio"
            A statistic of ``Result.stats``, or ``f(stats) -> float`` (a ``score`` column).
        constraint : callable, optional
            ``constraint(p) -> bool`` keeps the parameter sets it accepts; ``p`` reads as a
            dict or by attribute: ``lambda p: p.fast < p.slow``.
        executor : None, "process", "sequential", dask Client or Executor
            Where the runs go (local processes by default); see `tickstep.batch.run_batch`.
        max_workers : int, optional
            Worker processes for the local pool.
        cache : bool, path or ResultsCache, default True
            The on-disk results cache (``~/.cache/tickstep``); False to bypass it.
        progress : bool, optional
            Progress bar on stderr (by default only on a terminal).
        **ranges
            ``name=values`` per parameter to vary; a scalar is a fixed value.

        Returns
        -------
        pandas.DataFrame
            One row per parameter set: the parameters, every statistic, run time, status
            and error text, sorted by ``maximize`` (``.iloc[0]`` is the best).

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
        from tickstep.batch import optimize

        return optimize(
            self,
            maximize=maximize,
            constraint=constraint,
            executor=executor,
            max_workers=max_workers,
            cache=cache,
            progress=progress,
            **ranges,
        )
