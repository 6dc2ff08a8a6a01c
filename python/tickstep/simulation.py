"""The one simulation path: a market, a strategy class, a config and parameters -> a run.

`tickstep.Backtest.run`, the batch workers, the command line and the service all come
here; nothing else builds an engine. ``simulate`` returns the full `Result`;
``simulate_stats`` runs the same simulation and computes the same statistics
(`tickstep.metrics.compute_stats`) from the columns they use, skipping the frames a
batch row does not keep (fills, orders, positions).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep._core import ConfigError
from tickstep.config import BacktestConfig, multipliers
from tickstep.data import MarketColumns
from tickstep.data._actions import _local_days
from tickstep.metrics import _STAT_TRADE_COLUMNS, daily_returns, stats_of_columns
from tickstep.rejections import check_rejections
from tickstep.results import Result, build_result, market_stats_inputs, samples_since
from tickstep.strategy import Bar, Strategy
from tickstep.timeframes import NS_PER_DAY

__all__ = [
    "engine_for", "market_from_columns", "result_of", "session_ends", "simulate", "simulate_stats",
    "simulate_stream", "stats_inputs", "stats_of", "trade_start_ns",
]


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
        _call_order(columns),
    )


def _call_order(columns: MarketColumns) -> list[int] | None:
    """The symbols' indices in the order the engine visits them (None: name order)."""
    if columns.order is None:
        return None
    index = {s: i for i, s in enumerate(columns.symbols)}
    return [index[s] for s in columns.order]


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


@functools.lru_cache(maxsize=64)
def wall_clock(timezone: str, first: int, last: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The UTC offsets of ``timezone`` from bars at ``first`` to ``last`` (ns UTC) and a
    year beyond (a bar ends a spacing after it starts): ``(starts, offsets)``, the offset
    (ns, local minus UTC) in force from each start on, to the instant; None for UTC.

    The engine reads each symbol's bar spacing on this clock as well as in UTC, so daily
    bars stamped at local midnight stay a day apart across a daylight-saving change.
    Offsets are probed hourly (no zone has changed its offset twice within an hour) and
    each change found to the nanosecond by bisection. Cached: a batch's runs share it."""
    if timezone.upper() == "UTC":
        return None

    def offsets_at(ns: np.ndarray) -> np.ndarray:
        local = pd.DatetimeIndex(pd.to_datetime(ns, utc=True)).tz_convert(timezone)
        return local.tz_localize(None).asi8 - ns

    hour = 3_600 * 10**9
    probes = np.arange(first - 2 * NS_PER_DAY, last + 366 * NS_PER_DAY + hour, hour, dtype=np.int64)
    offsets = offsets_at(probes)
    changes = np.flatnonzero(offsets[1:] != offsets[:-1])
    lo, hi = probes[changes], probes[changes + 1]
    # The first instant of each new offset: lo keeps the old offset, hi has the new one.
    while len(lo) and np.any(hi - lo > 1):
        mid = lo + (hi - lo) // 2
        new = offsets_at(mid) == offsets[changes + 1]
        hi, lo = np.where(new, mid, hi), np.where(new, lo, mid)
    clock = (np.concatenate([probes[:1], hi]).astype(np.int64),
             np.concatenate([offsets[:1], offsets[changes + 1]]).astype(np.int64))
    for column in clock:  # cached and shared: nobody may write to them
        column.setflags(write=False)
    return clock


_UNSET: Any = object()


def engine_for(market: _core.Market, config: BacktestConfig, ends: Any = _UNSET) -> _core.Engine:
    """A fresh engine for one run of ``market`` under ``config`` (equity sampled at the
    day ends of ``config.timezone``, whose wall clock the candles read too; ``ends`` when
    the caller computed them already)."""
    engine = _core.Engine(market, **config.engine_options())
    set_symbol_terms(engine, config, market.symbols)
    if config.close_delisted and len(market.timeline()):
        engine.set_delistings(delistings(market.last_times(), int(market.timeline()[-1]),
                                         config.timezone, config.close_delisted, market.symbols))
    if ends is _UNSET:
        ends = session_ends(market, config.timezone)
    if ends is not None:
        engine.set_session_ends(ends)
    timeline = market.timeline()
    if len(timeline):
        _set_wall_clock(engine, config.timezone, int(timeline[0]), int(timeline[-1]))
    return engine


#: No time: a symbol that does not stop trading (`delistings`).
_NEVER = np.iinfo(np.int64).min


def delistings(last_times: np.ndarray, end: int, timezone: str, which: Any = True,
               symbols: Any = ()) -> np.ndarray:
    """Per symbol, the time of its last bar (``last_times``) when it stops trading before
    the run's last day (``end``'s, in ``timezone``'s days), else `_NEVER`: the rule of
    ``BacktestConfig.close_delisted`` (``which``: True for every symbol, or the names of
    those it applies to, of ``symbols`` in the market's order). A symbol with bars on the
    last day trades to the end, its last bar some minutes before the run's or not."""
    times = np.asarray(last_times, dtype=np.int64)
    known = times != _NEVER
    if which is not True:
        known &= np.isin(np.asarray(list(symbols), dtype=object), list(which))
    days = np.full(len(times), np.iinfo(np.int64).max)
    days[known] = _local_days(times[known], timezone)
    last_day = _local_days(np.array([end], dtype=np.int64), timezone)[0]
    return np.where(known & (days < last_day), times, _NEVER)


def set_symbol_terms(engine: _core.Engine, config: BacktestConfig, symbols: Any) -> None:
    """The symbols' own terms for the symbols of this run (a run of some of the data's
    symbols, one job of a batch, sets those it has): the schedules of
    ``config.commission_by_symbol``, the margin terms of ``config.margin_by_symbol``, the
    borrow fees of ``config.borrow_rate_by_symbol``, the slippage of
    ``config.slippage_by_symbol``, the multipliers of ``config.multiplier`` and the symbols ``config.shortable`` does not
    allow to be sold short."""
    present = set(symbols)
    for symbol, parts in (config.commission_by_symbol or {}).items():
        if symbol in present:
            engine.set_symbol_commission(symbol, **parts)
    for symbol, parts in (config.margin_by_symbol or {}).items():
        if symbol in present:
            engine.set_symbol_margin(symbol, **parts)
    for symbol, rate in (config.borrow_rate_by_symbol or {}).items():
        if symbol in present:
            engine.set_borrow_rate(symbol, rate)
    for symbol, bps in (config.slippage_by_symbol or {}).items():
        if symbol in present:
            engine.set_slippage(symbol, bps)
    if config.shortable is not True:
        for symbol in symbols:
            if config.shortable is False or symbol not in config.shortable:
                engine.set_shortable(symbol, False)
    if config.multiplier is not None:
        named = list(symbols)
        for symbol, value in zip(named, multipliers(config.multiplier, named), strict=True):
            if value != 1.0:
                engine.set_multiplier(symbol, value)


def _set_wall_clock(engine: _core.Engine, timezone: str, first: int, last: int) -> None:
    clock = wall_clock(timezone, first, last)
    if clock is not None:
        engine.set_wall_clock(*clock)


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
    engine.set_history(config.history)
    ctx = _core.Context(market, bar_class=Bar)
    instance = strategy(ctx, list(market.symbols), params, config.sizer, market, metadata,
                        records=records, calendar=config.timezone)
    hooks = instance._hooks()
    start = trade_start_ns(market, config)
    if start is not None:
        hooks = _from(ctx, start, hooks)
        engine.set_account_opens(start)  # no interest or costs for the warm-up's days
    engine.run(ctx, **hooks)
    if start is not None:
        fills = engine.fills()["ts"]
        if len(fills) and int(fills.min()) < start:
            raise ValueError(
                f"an order placed in init() filled at {pd.Timestamp(int(fills.min()), tz='UTC')}, "
                f"during the warm-up before trade_start={config.trade_start}: place orders from "
                "next() or on_tick(), which are called from trade_start on"
            )
    rejected = check_rejections(engine.rejected_orders(), list(market.symbols), config.on_reject)
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


def _from(ctx: _core.Context, start: int, hooks: dict[str, Any]) -> dict[str, Any]:
    """The strategy's hooks (`Strategy._hooks`) with ``next`` and ``on_tick`` called only
    from tick ``start`` on: before it the market phase still runs (indicators, candles),
    the strategy is not asked anything."""
    now = ctx.now

    def from_start(callback: Any) -> Any:
        if callback is None:
            return None

        def called(*args: Any) -> Any:
            if now() >= start:
                return callback(*args)
            return None

        return called

    return {**hooks, "next": from_start(hooks["next"]), "on_tick": from_start(hooks["on_tick"])}


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
    keep_prices: bool = True,
    prices: list[tuple[np.ndarray, np.ndarray]] | None = None,
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
        keep_prices=keep_prices,
        prices=prices,
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
    returns: bool = False,
) -> Any:
    """``simulate(...).stats``, without building the frames statistics do not read.

    The same run and the same `~tickstep.metrics.compute_stats` on the columns it
    documents using (equity, gross exposure; trade pnl, return, commission, bars held,
    MAE, MFE): equal to ``simulate(...).stats`` bit for bit. With ``returns``, the pair
    ``(stats, daily returns)`` (`returns_of`: ``simulate(...).daily_returns()``).
    """
    engine, instance, rejected = _run(market, strategy, config, params or {}, metadata, ends,
                                      records)
    raw = engine.trade_stat_columns()
    eq = engine.equity()
    carrying_costs = engine.carrying_costs()
    margin_calls = engine.margin_calls()
    dividends = engine.dividends()
    exposure_ticks = engine.exposure_ticks()
    # The core's objects must die on this thread: a profiler holding this frame (Dask's
    # samples every worker thread) would otherwise free them on its own thread.
    del engine, instance
    inputs = stats_inputs(market, config)  # the run's span, read by both below
    stats = stats_of(raw, eq, carrying_costs, market, config, rejected, inputs,
                     margin_calls=margin_calls, dividends=dividends, exposure_ticks=exposure_ticks)
    return (stats, returns_of(eq, market, config, inputs)) if returns else stats


def returns_of(eq: dict[str, np.ndarray], market: _core.Market, config: BacktestConfig,
               inputs: dict[str, Any] | None = None) -> pd.Series:
    """A finished run's daily returns from its equity columns (the engine's ``equity()``):
    those of its `Result.daily_returns`, which its Sharpe Ratio is computed from."""
    if inputs is None:
        inputs = stats_inputs(market, config)
    eq = samples_since(eq, inputs["start"].value)
    equity = pd.Series(eq["equity"], index=pd.DatetimeIndex(pd.to_datetime(eq["ts"], utc=True),
                                                            name="time"))  # as Result.equity
    return daily_returns(equity, config.cash, config.timezone, config.periods_per_year)


def stats_inputs(market: _core.Market, config: BacktestConfig) -> dict[str, Any]:
    """What the statistics of any run of ``market`` under ``config`` read besides the run
    (its span, the buy-and-hold basket, the benchmark): computed once for many runs."""
    start, end = _span(market, config)
    return {"start": start, "end": end,
            **market_stats_inputs(market, config.benchmark, since=start.value)}


def stats_of(raw: dict[str, np.ndarray], eq: dict[str, np.ndarray], carrying_costs: float,
             market: _core.Market, config: BacktestConfig, rejected: int,
             inputs: dict[str, Any] | None = None,
             trade_sums: dict[str, Any] | None = None, margin_calls: int = 0,
             dividends: float = 0.0, exposure_ticks: tuple[int, int] | None = None) -> pd.Series:
    """Statistics of a finished run from its trades and equity columns, carrying costs,
    margin calls, dividends and exposed ticks (the engine's ``trade_stat_columns()``,
    ``equity()``, ``carrying_costs()``, ``margin_calls()``, ``dividends()`` and
    ``exposure_ticks()``): equal to its
    `result_of(...).stats` bit for bit. ``inputs``: `stats_inputs` of the market and
    config when the caller has them (a grid of runs); ``trade_sums``: the trades'
    `tickstep.metrics.trade_sums`, when the core made them (a native grid's run)."""
    if inputs is None:
        inputs = stats_inputs(market, config)
    eq = samples_since(eq, inputs["start"].value)
    return stats_of_columns(
        eq["ts"],
        eq["equity"],
        eq["gross_exposure"],
        {c: raw[c] for c in _STAT_TRADE_COLUMNS},
        initial_cash=config.cash,
        risk_free_rate=config.risk_free_rate,
        **inputs,
        orders_rejected=rejected,
        timezone=config.timezone,
        periods_per_year=config.periods_per_year,
        carrying_costs=carrying_costs,
        margin_calls=margin_calls,
        dividends=dividends,
        trade_sums=trade_sums,
        exposure_ticks=exposure_ticks,
    )


# ---- streamed runs ----------------------------------------------------------------------------

#: Bars of each symbol a streamed run keeps for history reads unless ``history=`` says.
STREAM_HISTORY = 1_000


def _day_ends(ticks: np.ndarray, following: int | None, timezone: str) -> np.ndarray:
    """Per tick of a window, whether it ends a trading day: its calendar day (in
    ``timezone``) differs from the next tick's, ``following`` being the first tick after
    the window (None at the end of the run). The rule of `session_ends` (and of the
    core's UTC default), decided one window at a time."""
    ts = np.asarray(ticks, dtype=np.int64)
    if following is not None:
        ts = np.append(ts, np.int64(following))
    if timezone.upper() == "UTC":
        day = ts // NS_PER_DAY
    else:
        times = pd.DatetimeIndex(pd.to_datetime(ts, utc=True)).tz_convert(timezone)
        day = times.normalize().asi8
    ends = np.ones(len(ticks), dtype=bool)
    ends[: len(day) - 1] = day[1:] != day[:-1]
    return ends


_ALL = 1 << 62  # a bar index past any market's end: "to the last bar"


class RunSummary:
    """What a result reads of the market besides the run, collected as windows pass:
    the first and last tick, each symbol's first close from ``since`` and last close
    (the buy-and-hold basket), and the benchmark symbol's closes. Duck-types the
    ``symbols``, ``timeline()`` and ``column()`` of a `tickstep._core.Market` for
    `result_of`, holding two bars per symbol instead of all.

    With ``marks``, also each symbol's bars whose close marked an equity sample (the
    latest bar at each day end from ``since`` on, `sample`): what the result's position
    values, plot and report read, a bar per symbol and day at most."""

    def __init__(self, symbols: list[str], since: int | None, benchmark: int | None,
                 marks: bool = False) -> None:
        self.symbols = symbols
        self._since = since
        self._benchmark = benchmark
        n = len(symbols)
        self._first: list[tuple[int, float] | None] = [None] * n
        self._last: list[tuple[int, float] | None] = [None] * n
        self._bench: list[tuple[np.ndarray, np.ndarray]] = []
        self._ticks = [np.iinfo(np.int64).max, np.iinfo(np.int64).min]
        self._marks: list[list[tuple[np.ndarray, np.ndarray]]] | None = (
            [[] for _ in symbols] if marks else None)

    def sample(self, market: Any, ends: np.ndarray) -> None:
        """Keep, per symbol, the bar of ``market`` (a window's) latest at each of its day
        ends (``ends``: the engine's equity samples), from ``since`` on."""
        if self._marks is None:
            return
        ticks = market.timeline()[ends]
        if self._since is not None:
            ticks = ticks[ticks >= self._since]
        if not len(ticks):
            return
        for s, kept in enumerate(self._marks):
            ts = market.column(s, "ts", 0, _ALL)
            at = np.unique(np.searchsorted(ts, ticks, side="right") - 1)
            at = at[at >= 0]
            if self._since is not None:
                at = at[ts[at] >= self._since]
            if kept and len(at) and ts[at[0]] == kept[-1][0][-1]:
                at = at[1:]  # marked already at the window before's last day end
            if len(at):
                kept.append((ts[at], market.column(s, "close", 0, _ALL)[at]))

    def marks(self) -> list[tuple[np.ndarray, np.ndarray]] | None:
        """Per symbol, the (times, closes) `sample` kept (None without ``marks``)."""
        if self._marks is None:
            return None
        empty = (np.empty(0, dtype=np.int64), np.empty(0))
        return [(np.concatenate([p[0] for p in kept]), np.concatenate([p[1] for p in kept]))
                if kept else empty for kept in self._marks]

    def observe(self, parts: list[list[np.ndarray]], ticks: np.ndarray) -> None:
        self._ticks = [min(self._ticks[0], int(ticks[0])), max(self._ticks[1], int(ticks[-1]))]
        for s, (ts, _o, _h, _l, close, _v) in enumerate(parts):
            if not len(ts):
                continue
            if self._first[s] is None:
                k = 0 if self._since is None else int(np.searchsorted(ts, self._since))
                if k < len(ts):
                    self._first[s] = (int(ts[k]), float(close[k]))
            self._last[s] = (int(ts[-1]), float(close[-1]))
            if s == self._benchmark:
                self._bench.append((np.array(ts), np.array(close)))

    def timeline(self) -> np.ndarray:
        return np.array(self._ticks, dtype=np.int64)

    def closes(self) -> Iterator[tuple[str, tuple[int, float] | None, tuple[int, float] | None]]:
        """Each symbol with its first bar from ``since`` on and its last bar seen, each as
        (time, close), or None where it had none."""
        return zip(self.symbols, self._first, self._last, strict=True)

    def column(self, symbol: int, name: str, start: int, stop: int) -> np.ndarray:
        if symbol == self._benchmark:
            k = 0 if name == "ts" else 1
            values = np.concatenate([p[k] for p in self._bench]) if self._bench else np.empty(0)
            return values[start:stop]
        bars = [b for b in dict.fromkeys([self._first[symbol], self._last[symbol]]) if b is not None]
        values = np.array([b[0 if name == "ts" else 1] for b in bars],
                          dtype=np.int64 if name == "ts" else np.float64)
        return values[start:stop]


def _window_markets(windows: Any, symbols: list[str], keep: int, timezone: str,
                    summary: RunSummary, call_order: list[str] | None = None,
                    columns: list[str] | None = None) -> Any:
    """Windows of bars -> the core's window markets and their day ends, one window
    behind the reader (a window's last day end needs the next window's first tick).

    Each market holds, per symbol, the last ``keep`` bars seen before the window (for
    history reads) then the window's bars, extra columns (``columns``) included; its
    base is the run index of the first. The first window's market is made of its bars;
    each next one by the core from the one before (`Market.following`), which joins the
    kept past and the new bars without the interpreter, so the engine running a Python
    strategy meanwhile is not held up."""
    columns = list(columns or ())
    index = {s: i for i, s in enumerate(symbols)}
    order = None if call_order is None else [index[s] for s in call_order]
    market = pending = None
    for window in itertools.chain(windows, [None]):
        if pending is not None:
            following = None if window is None else window.first_tick
            ends = _day_ends(pending.timeline(), following, timezone)
            summary.sample(pending, ends)
            yield pending, ends
        if window is None:
            return
        parts = window.parts
        extra = window.extra or [{} for _ in parts]
        new = [[p[k] for p in parts] for k in range(6)]
        more = [[e.get(name) for e in extra] for name in columns]
        adopt = [all(_immutable(c) for c in (*p, *e.values())) for p, e in zip(parts, extra)]
        if market is None:
            market = _core.Market.window(symbols, *new, [0] * len(symbols), window.start, adopt,
                                         order, columns, more)
        else:
            market = market.following(keep, *new, adopt, more)
        summary.observe(parts, market.timeline())
        # Only the market holds the bars now (the window's arrays were copied or adopted).
        pending = market
        del window, parts, extra, new, more


def _with_given_buckets(markets: Any, strategy: Strategy) -> Any:
    """Each next window's market and day ends, with the buckets of the strategy's
    exchange-aligned timeframes for its bars (computed here, in the engine's thread, when
    the engine takes the window: after init() declared them)."""
    for market, ends in markets:
        yield market, ends, strategy._given_buckets(market)


def simulate_stream(stream: Any, strategy: type[Strategy], config: BacktestConfig,
                    params: Mapping[str, Any] | None = None, **options: Any) -> Result:
    """``simulate`` over a `tickstep.data.BarStream`, window by window: the same `Result`
    as ``simulate`` on all its bars at once, bit for bit (its close prices only those its
    equity samples were marked at, `RunSummary.sample`; no indicator lines), holding only
    a few windows and ``config.history`` bars of each symbol's past. The next windows are
    read on a thread while one runs. ``options``: those of `stream_run`."""
    return stream_run(stream, strategy, config, params, **options)[0]


def stream_run(
    stream: Any,
    strategy: type[Strategy],
    config: BacktestConfig,
    params: Mapping[str, Any] | None = None,
    *,
    symbols: pd.CategoricalDtype | None = None,
    records: Mapping[str, Any] | None = None,
    marks: bool = True,
) -> tuple[Result, RunSummary]:
    """`simulate_stream`, and what it read of the market besides the run (its
    `RunSummary`: the buy-and-hold basket's closes, the benchmark's), for statistics
    over several streamed runs (a streamed walk-forward's test windows). ``marks=False``
    keeps no closes for the result's prices (a batch's job, whose statistics are all
    that is kept)."""
    from tickstep.data._stream import read_ahead

    if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
        raise TypeError(f"strategy must be a subclass of tickstep.Strategy, got {strategy!r}")
    params = strategy.check_parameters(params or {})
    names = list(stream.symbols)
    keep = config.history or STREAM_HISTORY
    since = None if config.trade_start is None else int(config.trade_start.value)
    if since is not None and since > stream.last:
        raise ConfigError(
            f"trade_start={config.trade_start} is after the data's last bar "
            f"({pd.Timestamp(stream.last, tz='UTC')})"
        )
    bench = names.index(config.benchmark) if config.benchmark in names else None
    # The closes equity samples are marked at are kept for the report, unless every tick
    # is a sample (record_every_bar: that would be every bar's close).
    summary = RunSummary(names, since, bench, marks=marks and not config.record_every_bar)
    # Each symbol's last bar in the whole stream, found before the reader starts (a
    # store's connection reads one statement at a time). The run's last day is that of
    # the latest of them, as in memory: `stream.last` is only a bound (a store's is the
    # request's end), which may fall on a later day than any bar.
    if config.close_delisted:
        last_times = stream.last_times()
        ended = delistings(last_times, int(last_times.max()), config.timezone,
                           config.close_delisted, names)
    else:
        ended = None
    # The reader thread reads each window and builds its market (the kept past joined,
    # the columns handed to the core) while the engine runs the one before.
    markets = read_ahead(_window_markets(stream.windows(), names, keep, config.timezone, summary,
                                         getattr(stream, "call_order", None),
                                         getattr(stream, "columns", ())))
    try:
        try:
            first, ends = next(markets)
        except StopIteration:
            raise ConfigError("the stream has no bars") from None
        engine = _core.Engine(first, **config.engine_options())
        set_symbol_terms(engine, config, names)
        if ended is not None:
            engine.set_delistings(ended)
        engine.set_session_ends(ends)
        _set_wall_clock(engine, config.timezone, int(stream.first), int(stream.last))
        engine.set_history(keep)
        ctx = _core.Context(first, bar_class=Bar)
        instance = strategy(ctx, names, params, config.sizer, first, stream.metadata,
                            records=records, calendar=config.timezone)
        instance._streamed_spacing = stream.bar_spacing  # (and so `_streamed`)
        hooks = instance._hooks()
        if since is not None:
            hooks = _from(ctx, since, hooks)
            engine.set_account_opens(since)  # no interest or costs for the warm-up's days
        engine.run_stream(ctx, _with_given_buckets(markets, instance), **hooks)
    finally:
        markets.close()
    start = trade_start_ns(summary, config)
    if start is not None:
        fills = engine.fills()["ts"]
        if len(fills) and int(fills.min()) < start:
            raise ValueError(
                f"an order placed in init() filled at {pd.Timestamp(int(fills.min()), tz='UTC')}, "
                f"during the warm-up before trade_start={config.trade_start}: place orders from "
                "next() or on_tick(), which are called from trade_start on"
            )
    rejected = check_rejections(engine.rejected_orders(), names, config.on_reject)
    result = result_of(engine, summary, config, params={**strategy.parameters(), **params},
                       strategy=instance, metadata=stream.metadata,
                       symbols=symbols if symbols is not None else pd.CategoricalDtype(names),
                       rejected=rejected, keep_prices=False, prices=summary.marks())
    return result, summary
