"""Signals mode: trade boolean entry/exit signals at native speed.

The signals are run by a strategy inside the core (``rust/signals.rs``) through the same
engine, order book, fill rules, portfolio and statistics as a Python strategy, so a
signals run returns the same `tickstep.Result` as `Backtest.run`. A signal on a symbol's
bar ``t`` acts exactly like an order placed in ``next`` at bar ``t``: it fills at the
next bar's open (at this bar's close with ``trade_on_close``). No shift is needed, and
no look-ahead is possible.

Rules, per symbol and bar:

- an entry with an exit of the same side on the same bar is ignored (the exit wins); a
  long and a short entry together are ignored;
- long and an exit (or a short entry): close; short and a short exit (or a long entry):
  close;
- a long entry while flat or short buys (a reversal fills the close first, in one batch);
  a short entry while flat or long sells; an entry on the side already held is ignored;
- an entry is sized at the bar's close: ``size_type="amount"`` units,
  ``"value"`` cash / close, ``"percent"`` (a fraction: 0.5 = half) x equity / close;
- ``sl`` / ``tp`` are fractions of that close: a long's stop-loss at close x (1 - sl),
  take-profit at close x (1 + tp), a short's mirrored; they become the order's bracket.

Signals may be given as

- a DataFrame of booleans, one column per symbol (any subset, by name), indexed by time:
  each symbol reads the rows at its own bars' times (every one must be there); or with a
  plain (non-time) index, one row per bar of each symbol it names;
- a mapping ``{symbol: 1-D boolean array}``, each as long as that symbol's bars;
- a 2-D boolean array ``(bars, symbols)`` in the market's symbol order, when every
  symbol has that many bars (a 1-D array for a market of one symbol).

`run_signal_grid` runs many such signal sets in one native call on all cores.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep._core import ConfigError
from tickstep.config import BacktestConfig
from tickstep.hints import did_you_mean
from tickstep.rejections import check_rejections
from tickstep.results import Result
from tickstep.simulation import engine_for, result_of, session_ends, stats_of, trade_start_ns

__all__ = ["run_signal_grid", "run_signals", "signal_columns"]

SIGNAL_KINDS = ("entries", "exits", "short_entries", "short_exits")
SIZE_TYPES = ("amount", "value", "percent")

Columns = list["np.ndarray | None"]

# `ends` not given: computed from the config's timezone.
_FROM_CONFIG: Any = object()


def _bar_times(market: _core.Market, s: int) -> np.ndarray:
    return market.column(s, "ts", 0, sys.maxsize)


def _bar_count(market: _core.Market, s: int) -> int:
    return len(_bar_times(market, s))


def _bools(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous boolean column of ``bars`` values, or a clear refusal."""
    a = np.asarray(values)
    if a.dtype != np.bool_:
        raise ConfigError(f"{where}: signals must be booleans (True/False), got dtype {a.dtype}")
    if a.ndim != 1:
        raise ConfigError(f"{where}: expected one column of signals, got shape {a.shape}")
    if len(a) != bars:
        raise ConfigError(
            f"{where}: {len(a)} signals for its {bars} bars (signals are aligned to each "
            "symbol's own bars)"
        )
    return np.ascontiguousarray(a)


def _symbol_index(symbols: list[str], name: Any, what: str) -> int:
    if name not in symbols:
        raise ConfigError(f"{what}: {name!r} is not a symbol of the data{did_you_mean(name, symbols)}")
    return symbols.index(name)


def _from_frame(market: _core.Market, frame: pd.DataFrame, name: str) -> Columns:
    symbols = list(market.symbols)
    columns: Columns = [None] * len(symbols)
    timed = isinstance(frame.index, pd.DatetimeIndex)
    if timed:
        index = frame.index if frame.index.tz is not None else frame.index.tz_localize("UTC")
        times = index.tz_convert("UTC").as_unit("ns").asi8
    for col in frame.columns:
        s = _symbol_index(symbols, col, f"{name} column {col!r}")
        where = f"{name} column {col!r}"
        values = frame[col].to_numpy()
        if timed:
            ts = _bar_times(market, s)
            rows = pd.Index(times).get_indexer(ts)
            if (rows < 0).any():
                missing = pd.Timestamp(int(ts[np.argmax(rows < 0)]), tz="UTC")
                raise ConfigError(
                    f"{where}: no row for the bar at {missing} (the index must hold every "
                    f"bar time of {col})"
                )
            values = values[rows]
        columns[s] = _bools(values, where, _bar_count(market, s))
    return columns


def signal_columns(market: _core.Market, signals: Any, name: str = "signals") -> Columns:
    """One boolean column per symbol of ``market`` (None where no signal is given), each
    aligned to that symbol's own bars; see the module documentation for the shapes."""
    symbols = list(market.symbols)
    n = len(symbols)
    if signals is None:
        return [None] * n
    if isinstance(signals, pd.DataFrame):
        return _from_frame(market, signals, name)
    if isinstance(signals, pd.Series):
        if n != 1:
            raise ConfigError(f"{name}: a Series is one symbol's signals; give a DataFrame "
                              f"with a column per symbol for these {n} symbols")
        return _from_frame(market, signals.to_frame(symbols[0]), name)
    if isinstance(signals, Mapping):
        columns: Columns = [None] * n
        for key, values in signals.items():
            s = _symbol_index(symbols, key, name)
            columns[s] = _bools(values, f"{name}[{key!r}]", _bar_count(market, s))
        return columns
    a = np.asarray(signals)
    if a.ndim == 1 and n == 1:
        return [_bools(a, f"{name} of {symbols[0]}", _bar_count(market, 0))]
    if a.ndim != 2 or a.shape[1] != n:
        raise ConfigError(
            f"{name}: an array of signals must have shape (bars, {n} symbols), got {a.shape}"
        )
    return [_bools(a[:, s], f"{name} column {s} ({symbols[s]})", _bar_count(market, s))
            for s in range(n)]


def _rules(size: float, size_type: str, sl: float | None, tp: float | None) -> dict[str, Any]:
    if size_type not in SIZE_TYPES:
        raise ConfigError(f"size_type={size_type!r}: must be one of {', '.join(SIZE_TYPES)}"
                          f"{did_you_mean(size_type, SIZE_TYPES)}")
    return {"size": float(size), "size_type": size_type,
            "sl": None if sl is None else float(sl), "tp": None if tp is None else float(tp)}


def _run_native(market: _core.Market, config: BacktestConfig, signal_sets: list[dict[str, Any]],
                rules: dict[str, Any], ends: Any, threads: int | None) -> list[_core.Engine]:
    """One engine per signal set, all run in one native call (the interpreter released)."""
    if ends is _FROM_CONFIG:
        ends = session_ends(market, config.timezone)
    engines = [engine_for(market, config, ends) for _ in signal_sets]
    kinds = {k: [signal_columns(market, sig.get(k), k) for sig in signal_sets] for k in SIGNAL_KINDS}
    _core.run_signals(engines, kinds["entries"], kinds["exits"], kinds["short_entries"],
                      kinds["short_exits"], **rules, trade_start=trade_start_ns(market, config),
                      threads=threads)
    return engines


def _check_kinds(signals: Mapping[str, Any], what: str) -> None:
    for key in signals:
        if key not in SIGNAL_KINDS:
            raise ConfigError(f"{what}: unknown signal {key!r}{did_you_mean(key, SIGNAL_KINDS)}; "
                              f"signals are {', '.join(SIGNAL_KINDS)}")
    if signals.get("entries") is None and signals.get("short_entries") is None:
        raise ConfigError(f"{what}: give entries and/or short_entries (nothing would be traded)")


def run_signals(
    market: _core.Market,
    config: BacktestConfig,
    *,
    entries: Any = None,
    exits: Any = None,
    short_entries: Any = None,
    short_exits: Any = None,
    size: float = 0.95,
    size_type: str = "percent",
    sl: float | None = None,
    tp: float | None = None,
    metadata: pd.DataFrame | None = None,
    symbols: pd.CategoricalDtype | None = None,
    ends: Any = _FROM_CONFIG,
) -> Result:
    """Backtest boolean signals natively; the same `Result` as a strategy run.

    See the module documentation for the rules and the shapes signals may take.
    ``size`` with ``size_type`` sizes each entry (default: 95% of equity, like the
    default sizer's share); ``sl``/``tp`` are fractions of the entry bar's close.
    Options (cash, commission, trade_on_close, ...) come from ``config``.
    """
    signals = {"entries": entries, "exits": exits, "short_entries": short_entries,
               "short_exits": short_exits}
    _check_kinds(signals, "run_signals")
    rules = _rules(size, size_type, sl, tp)
    (engine,) = _run_native(market, config, [signals], rules, ends, threads=1)
    rejected = check_rejections(engine.orders(), list(market.symbols), config.on_reject)
    return result_of(engine, market, config, params=rules, strategy=None, metadata=metadata,
                     symbols=symbols, rejected=rejected)


def run_signal_grid(
    market: _core.Market,
    config: BacktestConfig,
    signal_sets: Mapping[Any, Mapping[str, Any]],
    *,
    size: float = 0.95,
    size_type: str = "percent",
    sl: float | None = None,
    tp: float | None = None,
    threads: int | None = None,
    ends: Any = _FROM_CONFIG,
) -> pd.DataFrame:
    """Backtest many signal sets in one native call, on ``threads`` threads (all cores
    when None) sharing one market; one row of statistics per set, indexed by its key.

    ``signal_sets`` maps a key (e.g. a parameter tuple) to the signals of one backtest,
    ``{"entries": ..., "exits": ..., "short_entries": ..., "short_exits": ...}``, each in
    any shape `run_signals` takes. Each row equals ``run_signals(...).stats`` of that set
    run alone. Rejected orders are counted per row (``# Orders Rejected``) without a
    warning per set; ``on_reject="raise"`` still raises.
    """
    if not signal_sets:
        raise ConfigError("run_signal_grid: signal_sets is empty")
    keys = list(signal_sets)
    sets = [dict(signal_sets[k]) for k in keys]
    for key, sig in zip(keys, sets):
        _check_kinds(sig, f"signal set {key!r}")
    rules = _rules(size, size_type, sl, tp)
    engines = _run_native(market, config, sets, rules, ends, threads)
    quiet = config.replace(on_reject="ignore") if config.on_reject == "warn" else config
    symbols = list(market.symbols)
    rows = []
    for engine in engines:
        rejected = check_rejections(engine.orders(), symbols, quiet.on_reject)
        rows.append(stats_of(engine.trades(), engine.equity(), engine.carrying_costs(), market,
                             config, rejected))
    del engines
    index = pd.MultiIndex.from_tuples(keys) if all(isinstance(k, tuple) for k in keys) else keys
    return pd.DataFrame(rows, index=index)
