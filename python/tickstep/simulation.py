"""The one simulation path: a market, a strategy class, a config and parameters -> a run.

`tickstep.Backtest.run`, the batch workers, the command line and the service all come
here; nothing else builds an engine. ``simulate`` returns the full `Result`;
``simulate_stats`` runs the same simulation and computes the same statistics
(`tickstep.metrics.compute_stats`) from the columns they use, skipping the frames a
batch row does not keep (fills, orders, positions).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep._core import ConfigError
from tickstep.config import BacktestConfig
from tickstep.data import MarketColumns
from tickstep.metrics import compute_stats
from tickstep.rejections import check_rejections
from tickstep.results import Result, build_result, market_stats_inputs, samples_since
from tickstep.strategy import Strategy

__all__ = [
    "engine_for", "market_from_columns", "result_of", "session_ends", "simulate", "simulate_stats",
    "stats_of", "trade_start_ns",
]

_TRADE_STAT_COLUMNS = ("pnl", "return_pct", "commission", "bars_held", "mae", "mfe")


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
        all(
            _immutable(c)
            for c in (b.ts, b.open, b.high, b.low, b.close, b.volume, *b.extra.values())
        )
        for b in bars
    ]
    names = columns.columns
    return _core.Market(
        columns.symbols,
        [b.ts for b in bars],
        [b.open for b in bars],
        [b.high for b in bars],
        [b.low for b in bars],
        [b.close for b in bars],
        [b.volume for b in bars],
        adopt,
        names,
        [[b.extra.get(name) for b in bars] for name in names],
    )


def session_ends(market: _core.Market, timezone: str) -> np.ndarray | None:
    """Per tick of ``market``'s timeline, whether it is the last tick of a calendar day in
    ``timezone`` (equity is sampled there); None for UTC, the engine's own default."""
    if timezone.upper() == "UTC":
        return None
    times = pd.DatetimeIndex(pd.to_datetime(market.timeline(), utc=True)).tz_convert(timezone)
    day = times.normalize().asi8
    ends = np.ones(len(day), dtype=bool)
    ends[:-1] = day[1:] != day[:-1]
    return ends


_UNSET: Any = object()


def engine_for(market: _core.Market, config: BacktestConfig, ends: Any = _UNSET) -> _core.Engine:
    """A fresh engine for one run of ``market`` under ``config`` (equity sampled at the
    day ends of ``config.timezone``; ``ends`` when the caller computed them already)."""
    engine = _core.Engine(market, **config.engine_options())
    if ends is _UNSET:
        ends = session_ends(market, config.timezone)
    if ends is not None:
        engine.set_session_ends(ends)
    return engine


def _run(
    market: _core.Market,
    strategy: type[Strategy],
    config: BacktestConfig,
    params: Mapping[str, Any],
    metadata: pd.DataFrame | None,
    ends: np.ndarray | None,
    records: Mapping[str, Any] | None = None,
) -> tuple[_core.Engine, Strategy, int]:
    """One run of the engine: the finished engine, the strategy instance and the number
    of rejected orders (warned about or raised as ``config.on_reject`` says)."""
    if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
        raise TypeError(f"strategy must be a subclass of tickstep.Strategy, got {strategy!r}")
    if not isinstance(config, BacktestConfig):
        raise TypeError(f"config must be a tickstep.BacktestConfig, got {type(config).__name__}")
    params = strategy.check_parameters(params)
    engine = engine_for(market, config, ends)
    ctx = _core.Context(market)
    instance = strategy(ctx, list(market.symbols), params, config.sizer, market, metadata,
                        records=records)
    next_call = instance.next if strategy.next is not Strategy.next else None
    on_tick = instance.on_tick if strategy.on_tick is not Strategy.on_tick else None
    start = trade_start_ns(market, config)
    if start is not None:
        next_call, on_tick = _from(ctx, start, next_call), _from(ctx, start, on_tick)
    engine.run(ctx, init=instance.init, next=next_call, on_tick=on_tick)
    if start is not None:
        fills = engine.fills()["ts"]
        if len(fills) and int(fills.min()) < start:
            raise ValueError(
                f"an order placed in init() filled at {pd.Timestamp(int(fills.min()), tz='UTC')}, "
                f"during the warm-up before trade_start={config.trade_start}: place orders from "
                "next() or on_tick(), which are called from trade_start on"
            )
    rejected = check_rejections(engine.orders(), list(market.symbols), config.on_reject)
    return engine, instance, rejected


def trade_start_ns(market: _core.Market, config: BacktestConfig) -> int | None:
    """``config.trade_start`` in ns when bars come before it (None: trade from the first)."""
    if config.trade_start is None:
        return None
    timeline = market.timeline()
    start = int(config.trade_start.value)
    if start > int(timeline[-1]):
        raise ConfigError(
            f"trade_start={config.trade_start} is after the data's last bar "
            f"({pd.Timestamp(int(timeline[-1]), tz='UTC')})"
        )
    return start if start > int(timeline[0]) else None


def _from(ctx: _core.Context, start: int, callback: Any) -> Any:
    """``callback`` called only from tick ``start`` on: before it the market phase still
    runs (indicators, candles), the strategy is not asked anything."""
    if callback is None:
        return None
    now = ctx.now

    def from_start(*args: Any) -> Any:
        if now() >= start:
            return callback(*args)
        return None

    return from_start


def _span(market: _core.Market, config: BacktestConfig) -> tuple[pd.Timestamp, pd.Timestamp]:
    timeline = market.timeline()
    first = trade_start_ns(market, config)
    return (pd.Timestamp(int(timeline[0]) if first is None else first, tz="UTC"),
            pd.Timestamp(int(timeline[-1]), tz="UTC"))


def simulate(
    market: _core.Market,
    strategy: type[Strategy],
    config: BacktestConfig,
    params: Mapping[str, Any] | None = None,
    *,
    metadata: pd.DataFrame | None = None,
    symbols: pd.CategoricalDtype | None = None,
    ends: np.ndarray | None = _UNSET,
    records: Mapping[str, Any] | None = None,
) -> Result:
    """Run ``strategy`` with ``params`` (over its class defaults) on ``market``.

    Parameters
    ----------
    market : tickstep._core.Market
        The bars (see `market_from_columns`); shared, never modified.
    strategy : type[Strategy]
    config : BacktestConfig
    params : mapping, optional
        Parameters overriding the strategy's class-level defaults (checked first).
    metadata : DataFrame, optional
        Symbol metadata the strategy reads as ``self.metadata``.
    symbols, ends :
        Precomputed by a caller that runs the same market many times: the symbols'
        categorical dtype and `session_ends` for ``config.timezone``.
    records : mapping, optional
        Analysis tables by name (`tickstep.data._records.RecordTable`) the strategy reads
        with ``self.records(name, symbol)``.

    A strategy's exception propagates unchanged (same type and traceback) with a note
    naming the symbol and time at which it happened.
    """
    params = strategy.check_parameters(params or {})
    engine, instance, rejected = _run(market, strategy, config, params, metadata, ends, records)
    return result_of(engine, market, config, params={**strategy.parameters(), **params},
                     strategy=instance, metadata=metadata, symbols=symbols, rejected=rejected)


def result_of(
    engine: _core.Engine,
    market: _core.Market,
    config: BacktestConfig,
    *,
    params: dict[str, Any],
    strategy: Any,
    metadata: pd.DataFrame | None,
    symbols: pd.CategoricalDtype | None,
    rejected: int,
) -> Result:
    """The `Result` of a finished engine (any strategy that drove it)."""
    start, end = _span(market, config)
    return build_result(
        engine,
        symbols if symbols is not None else pd.CategoricalDtype(list(market.symbols)),
        cash=config.cash,
        risk_free_rate=config.risk_free_rate,
        start=start,
        end=end,
        params=params,
        strategy=strategy,
        market=market,
        options=config.options(),
        metadata=metadata,
        benchmark=config.benchmark,
        orders_rejected=rejected,
        timezone=config.timezone,
        periods_per_year=config.periods_per_year,
    )


def _times(ns: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(ns, dtype="int64").view("datetime64[ns]")).tz_localize("UTC")


def simulate_stats(
    market: _core.Market,
    strategy: type[Strategy],
    config: BacktestConfig,
    params: Mapping[str, Any] | None = None,
    *,
    metadata: pd.DataFrame | None = None,
    ends: np.ndarray | None = _UNSET,
    records: Mapping[str, Any] | None = None,
) -> pd.Series:
    """``simulate(...).stats``, without building the frames statistics do not read.

    The same run and the same `~tickstep.metrics.compute_stats` on the columns it
    documents using (equity, gross exposure; trade pnl, return, commission, bars held,
    MAE, MFE): equal to ``simulate(...).stats`` bit for bit.
    """
    engine, instance, rejected = _run(market, strategy, config, params or {}, metadata, ends,
                                      records)
    raw = engine.trades()
    eq = engine.equity()
    carrying_costs = engine.carrying_costs()
    # The core's objects must die on this thread: a profiler holding this frame (Dask's
    # samples every worker thread) would otherwise free them on its own thread.
    del engine, instance
    return stats_of(raw, eq, carrying_costs, market, config, rejected)


def stats_of(raw: dict[str, np.ndarray], eq: dict[str, np.ndarray], carrying_costs: float,
             market: _core.Market, config: BacktestConfig, rejected: int) -> pd.Series:
    """Statistics of a finished run from its trades and equity columns and carrying costs
    (the engine's ``trades()``, ``equity()`` and ``carrying_costs()``): equal to its
    `result_of(...).stats` bit for bit."""
    start, end = _span(market, config)
    eq = samples_since(eq, start.value)
    trades = pd.DataFrame({c: raw[c] for c in _TRADE_STAT_COLUMNS})
    equity = pd.DataFrame(
        {"equity": eq["equity"], "gross_exposure": eq["gross_exposure"]}, index=_times(eq["ts"])
    )
    return compute_stats(
        equity,
        trades,
        initial_cash=config.cash,
        risk_free_rate=config.risk_free_rate,
        start=start,
        end=end,
        **market_stats_inputs(market, config.benchmark, since=start.value),
        orders_rejected=rejected,
        timezone=config.timezone,
        periods_per_year=config.periods_per_year,
        carrying_costs=carrying_costs,
    )
