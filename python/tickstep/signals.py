"""Signals mode: trade boolean entry/exit signals at native speed.

The signals are run by a strategy inside the core (``rust/signals.rs``) through the same
engine, order book, fill rules, portfolio and statistics as a Python strategy, so a
signals run returns the same `tickstep.Result` as `Backtest.run`. A signal on a symbol's
bar ``t`` acts exactly like an order placed in ``next`` at bar ``t``: it fills at the
next bar's open (at this bar's close with ``trade_on_close``). No shift is needed, and
no look-ahead is possible.

Rules, per symbol and bar:

- an entry with an exit of the same side on the same bar is ignored (the exit wins); a
  long and a short entry together are ignored; ``conflict="entry"`` lets the entry win
  instead, ``conflict="ignore"`` ignores both (vectorbt's default); ``side_conflict=
  "long"`` or ``"short"`` lets that side's entry win;
- long and an exit (or a short entry): close; short and a short exit (or a long entry):
  close; ``exit_portion`` (in (0, 1]: 0.5 = half) has an exit signal close only that
  portion of the position, the oldest trades first, as ``close(symbol, portion)`` in
  ``next`` does (one number, one per symbol or one per bar as ``size`` is, read on the
  exit's bar; NaN there, or a symbol left out: all of it); a time exit, a stop or an
  entry against the position still closes all of it;
- a long entry while flat or short buys (a reversal fills the close first, in one batch);
  a short entry while flat or long sells (``opposite_entry="close"``: an entry against
  the position only closes it; ``"ignore"``: it does nothing); a time exit is the rules'
  own, not a signal: it acts whatever these say; an entry on the side already held is ignored,
  unless ``accumulate=True`` (pyramiding): then it adds an order of its size, with its
  own stops, as another ``buy`` in ``next`` would (not with ``"target_percent"``, whose
  entries re-size the position to the target instead);
- an entry is sized at the bar's close: ``size_type="amount"`` units,
  ``"value"`` cash / close, ``"percent"`` (a fraction: 0.5 = half) x equity / close
  (with a ``multiplier``, close x multiplier: what a contract is worth); or
  ``"percent_at_fill"``, sized when it fills: the most units whose cost there (slippage
  and commission included) is the fraction x the buying power then, vectorbt's
  ``"percent"``;
  ``size`` is one number for every entry, one per symbol (``{symbol: number}``, or a
  Series indexed by symbol), or one per bar in the shapes signals take (e.g. a DataFrame
  of sizes beside the DataFrame of entries, or ``{symbol: array}``), read on the entry's
  bar: NaN or 0 there means no entry on that bar (its exits still act); every symbol
  with entries then needs its sizes;
- ``exit_after_bars=n`` is a time exit: a position whose oldest open lot was entered n or
  more of the symbol's bars before is exited on this bar, as by an exit signal of its
  side (an entry of that side on the bar is then ignored, an opposite one reverses); it
  fills as any exit does (the next open, or this close with ``trade_on_close``). One
  number, one per symbol or one per bar as ``size`` is: a position then keeps the number
  on the bar of the entry that opened it (the entry decided while flat, or reversing);
  NaN there means no time exit for it, and a symbol left out has none;
- ``lot_size`` (a number, or ``{symbol: number}`` or a Series indexed by symbol) buys and
  sells entries in whole lots (shares, contracts, board lots): units are rounded down to
  whole lots, nothing below one lot; a ``"target_percent"`` target is rounded towards
  zero (never overshot), as `tickstep.sizing.order_to_target` does;
- ``size_type="target_percent"`` (vectorbt's ``targetpercent``): an entry means "hold
  ``size`` x equity on this side". One market order for the difference from what will be
  held: from flat it buys what ``"percent"`` buys; a reversal is one order that flips
  the position (its reducing part first); an entry on the side already held re-sizes the
  position to the target (nothing when it is there exactly);
- ``sl`` / ``tp`` are fractions of that close: a long's stop-loss at close x (1 - sl),
  take-profit at close x (1 + tp), a short's mirrored; one number, one per symbol
  (``{symbol: number}``, or a Series indexed by symbol) or one per bar in the shapes
  signals take (NaN: no stop for an entry on that bar; a symbol left out has none); or
  ``sl_price`` / ``tp_price`` give the prices, one per bar in the shapes signals take
  (NaN: no stop for an entry on that bar). They become the bracket of the order that
  adds to the position;
- ``sl_trail`` (instead of ``sl``) is a trailing stop-loss: that fraction below the best
  price since the entry filled (above, for a short), as ``sl_trail="x%"`` on an order
  placed in ``next`` (the same book rule: it follows the open first, then the bar's
  favourable extreme for the next bar); given as ``sl`` is. A symbol's stop-loss is a
  fraction, a price or a trail, not two of them;
- ``limit`` (given as ``sl`` is; NaN: a market entry) or ``limit_price`` (per bar)
  makes an entry a limit order, ``limit`` x the close better than it (a long's below, a
  short's above), sized at its limit and carrying stops that are fractions of it; it
  works until it fills, for ``limit_bars`` of the symbol's bars when given, or until a
  later bar of the symbol with an entry of either side or an exit of its side cancels
  it (a new entry replaces it). With ``"target_percent"`` a reversal closes at the market
  first and the limit order goes to the target from flat.

Signals (and stop prices) may be given as

- a DataFrame, one column per symbol (any subset, by name), indexed by time: each symbol
  reads the rows at its own bars' times (every one must be there); or indexed by
  position (0, 1, 2, ...: a default index), one row per bar of each symbol it names
  (any other index, dates held as text say, is refused);
- a mapping ``{symbol: 1-D array}``, each as long as that symbol's bars (a Series is
  read by its index, as a frame's column is: what `SignalStrategy.signals` returns);
- a 2-D array ``(bars, symbols)`` in the market's symbol order, when every symbol has
  that many bars (a 1-D array for a market of one symbol).

`run_signal_grid` runs many such signal sets in one native call on all cores, each
with its own sizes and stops if it names them; the sets come as a mapping, or as frames
with one column per set and symbol (vectorbt's layout). `SignalStrategy` makes signals a
function of parameters: `Backtest.run` trades it in signals mode, and ``optimize`` /
`run_batch` run its parameter grid in one native call on all cores instead of a process
pool.
"""

from __future__ import annotations

import gc
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd

from tickstep import _core
from tickstep._core import ConfigError
from tickstep.config import BacktestConfig
from tickstep.hints import did_you_mean
from tickstep.rejections import check_rejections, quiet_runs, warn_of_rejected_runs
from tickstep.results import Result
from tickstep.simulation import (
    engine_for,
    result_of,
    returns_of,
    session_ends,
    stats_inputs,
    stats_of,
    trade_start_ns,
)
from tickstep.strategy import Strategy, as_utc, indexed_by_position

__all__ = ["SignalStrategy", "run_signal_grid", "run_signals", "signal_columns"]

SIGNAL_KINDS = ("entries", "exits", "short_entries", "short_exits")
#: Stop prices per bar, in the shapes signals take.
PRICE_KINDS = ("sl_price", "tp_price")
#: Entries' sizes per bar, in the shapes signals take (``size`` given per bar).
SIZE_KIND = "size"
#: The rules' size when sizes are given per bar (as the run's parameter reads).
PER_BAR = "per bar"
#: Stops as fractions of the entry bar's close given per symbol or per bar (NaN: none on
#: that bar), in the shapes signals take, instead of one number for the run.
FRACTION_KINDS = ("sl", "tp", "sl_trail")
#: A time exit given per symbol or per bar (NaN: none for an entry on that bar).
TIME_EXIT_KIND = "exit_after_bars"
#: Entries as limit orders a fraction better than the entry bar's close, given per symbol
#: or per bar (NaN: a market entry on that bar) instead of one number for the run.
LIMIT_KIND = "limit"
#: Entries' limit prices per bar (NaN: a market entry), in the shapes signals take.
LIMIT_PRICE_KIND = "limit_price"
#: The portion of the position an exit signal closes, given per symbol or per bar (NaN:
#: all of it) instead of one number for the run.
EXIT_PORTION_KIND = "exit_portion"
#: Rules that may be given one per symbol or one per bar rather than one number.
PER_BAR_RULES = (SIZE_KIND, *FRACTION_KINDS, TIME_EXIT_KIND, LIMIT_KIND, EXIT_PORTION_KIND)
#: A `SignalStrategy`'s parameters that may be one number per symbol (``{symbol: number}``).
BY_SYMBOL_PARAMETERS = (*PER_BAR_RULES, "lot_size")
#: What a set of signals may hold: the signals, numbers per bar.
BAR_KINDS = (*SIGNAL_KINDS, *PRICE_KINDS, LIMIT_PRICE_KIND, *PER_BAR_RULES)
SIZE_TYPES = ("amount", "value", "percent", "percent_at_fill", "target_percent")
#: How signals that contradict each other or the position held are read: each option's
#: readings, its default first (the core's `Conflicts`).
CONFLICT_RULES = {"conflict": ("exit", "entry", "ignore"),
                  "side_conflict": ("ignore", "long", "short"),
                  "opposite_entry": ("reverse", "close", "ignore")}
#: What a signal set of a grid may set for itself (else the call's values apply).
RULES = ("size", "size_type", "sl", "tp", "sl_trail", "lot_size", "accumulate", "exit_after_bars",
         "limit", "limit_bars", *CONFLICT_RULES, EXIT_PORTION_KIND)
#: Rules the core takes one per run (``lot_size`` goes to it per symbol).
RUN_RULES = ("size", "size_type", "sl", "tp", "sl_trail", "accumulate", "exit_after_bars",
             "limit", "limit_bars", *CONFLICT_RULES, EXIT_PORTION_KIND)

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
    if a.dtype == object and all(isinstance(v, (bool, np.bool_)) for v in a.ravel()):
        a = a.astype(np.bool_)  # booleans held as objects (pandas leaves some so): exact
    if a.dtype != np.bool_:
        # A missing value (pandas' NA, a NaN left by shift()) is named with its row: it is
        # neither True nor False, and treating it as either would be a guess.
        missing = pd.isna(a) if a.dtype.kind in "fO" and a.ndim == 1 else np.zeros(0, bool)
        if missing.any():
            row = int(np.argmax(missing))
            raise ConfigError(f"{where}: signals must be booleans (True/False), got dtype "
                              f"{a.dtype} with a missing value ({a[row]}) at row {row}; fill "
                              "them, False for no signal")
        raise ConfigError(f"{where}: signals must be booleans (True/False), got dtype {a.dtype}")
    return _one_column(a, where, bars)


def _numbers(values: Any, where: str, bars: int, what: str, *,
             one_for_all: bool = False) -> np.ndarray:
    """``values`` as a contiguous float64 column of ``bars`` numbers, or a refusal naming
    the dtype and ``what`` they must be. With ``one_for_all``, one number (a symbol's own,
    from a mapping) stands for every bar of the symbol, as a column of that one value
    (`_one_value`)."""
    a = np.asarray(values)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise ConfigError(f"{where}: {what}, got dtype {a.dtype}")
    if one_for_all and a.ndim == 0:
        return _one_value(float(a))
    return _one_column(a.astype(np.float64, copy=False), where, bars)


def _one_value(value: float) -> np.ndarray:
    """``value`` as a read-only column of one value, which the core reads on each of the
    symbol's bars: a grid whose sets give sizes, stops, time exits or limits per symbol
    then holds a value, not a column of the symbol's bars, per set, symbol and kind (100
    sets of 20 symbols' stops over 136,544 bars were 2.2 GB a kind)."""
    column = np.full(1, value, dtype=np.float64)
    column.flags.writeable = False
    return column


def _positive_prices(values: Any, where: str, bars: int, what: str, nan: str) -> np.ndarray:
    """``values`` as a contiguous float64 column of ``what`` (prices; NaN: ``nan``), or a
    refusal naming the row."""
    a = _numbers(values, where, bars, f"{what} must be numbers (NaN {nan})")
    bad = ~np.isnan(a) & ~(np.isfinite(a) & (a > 0))
    if bad.any():
        row = int(np.argmax(bad))
        raise ConfigError(f"{where}: {what} must be positive and finite (NaN {nan}), "
                          f"got {float(a[row])!r} at row {row}")
    return a


def _prices(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of stop prices (NaN: none), or a refusal."""
    return _positive_prices(values, where, bars, "stop prices", "for none")


def _sizes(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of entries' sizes (NaN or 0: no entry on
    that bar), or a clear refusal. One number (a symbol's own size, from a mapping) stands
    for every bar of the symbol."""
    a = _numbers(values, where, bars, "sizes must be numbers (NaN or 0 for no entry)",
                 one_for_all=True)
    bad = ~np.isnan(a) & ~(np.isfinite(a) & (a >= 0))
    if bad.any():
        row = int(np.argmax(bad))
        at = "" if len(a) == 1 and bars != 1 else f" at row {row}"  # (one for all its bars)
        raise ConfigError(f"{where}: sizes must be finite and >= 0 (NaN or 0: no entry on that "
                          f"bar), got {float(a[row])!r}{at}")
    return a


def _fractions(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of a stop's fractions (NaN: none on that
    bar), or a refusal. One number (a symbol's own, from a mapping) stands for every bar
    of the symbol, handed over as one value. The core refuses a fraction its stop does
    not take, naming the bar."""
    return _numbers(values, where, bars, "stops as fractions must be numbers (NaN for none)",
                    one_for_all=True)


def _time_exits(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of time exits in bars (NaN: none for an
    entry on that bar), or a refusal. One number (a symbol's own, from a mapping) stands
    for every bar of the symbol. The core refuses one that is not a whole number >= 1,
    naming the bar."""
    return _numbers(values, where, bars, "time exits must be whole numbers of bars (NaN for "
                    "none)", one_for_all=True)


def _limit_prices(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of entries' limit prices (NaN: a market
    entry on that bar), or a refusal."""
    return _positive_prices(values, where, bars, "limit prices", "for a market entry")


def _limits(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of limits as fractions of the close (NaN:
    a market entry on that bar), or a refusal. One number (a symbol's own, from a
    mapping) stands for every bar of the symbol. The core refuses a fraction outside
    [0, 1), naming the bar."""
    return _numbers(values, where, bars, "limits as fractions must be numbers (NaN for a "
                    "market entry)", one_for_all=True)


def _portions(values: Any, where: str, bars: int) -> np.ndarray:
    """``values`` as a contiguous float64 column of the portions of the position exit
    signals close (NaN: all of it), or a refusal. One number (a symbol's own, from a
    mapping) stands for every bar of the symbol. The core refuses a portion outside
    (0, 1], naming the bar."""
    return _numbers(values, where, bars, "exit portions must be numbers (NaN for all of the "
                    "position)", one_for_all=True)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, (bool, np.bool_))


def _gives_per_bar(size: Any) -> bool:
    """Whether ``size`` is given per bar (in a shape signals take), not as one number."""
    if isinstance(size, np.ndarray):
        return size.ndim > 0
    return isinstance(size, (pd.DataFrame, pd.Series, Mapping, list, tuple))


def _one_column(a: np.ndarray, where: str, bars: int) -> np.ndarray:
    if a.ndim != 1:
        raise ConfigError(f"{where}: expected one column of values, got shape {a.shape}")
    if len(a) != bars:
        raise ConfigError(
            f"{where}: {len(a)} values for its {bars} bars (signals are aligned to each "
            "symbol's own bars)"
        )
    return np.ascontiguousarray(a)


def _by_symbol(series: pd.Series, symbols: list[str]) -> bool:
    """Whether ``series`` is indexed by symbols rather than by bars: its labels are all
    names and one at least is a symbol of the data (bars are indexed by times or by
    position; a name that is not a symbol is then refused as such, by name)."""
    index = series.index
    if len(index) == 0 or isinstance(index, pd.DatetimeIndex):
        return False
    return all(isinstance(label, str) for label in index) and not set(index).isdisjoint(symbols)


def _per_symbol(series: pd.Series, what: str) -> dict[Any, Any]:
    """A Series indexed by symbol as ``{symbol: value}``; a symbol given twice is refused
    (a dict would keep one of its values silently)."""
    repeated = series.index[series.index.duplicated()]
    if len(repeated):
        raise ConfigError(f"{what}: {repeated[0]!r} is given twice (one value per symbol)")
    return series.to_dict()


def _symbol_index(symbols: list[str], name: Any, what: str) -> int:
    if name not in symbols:
        raise ConfigError(f"{what}: {name!r} is not a symbol of the data{did_you_mean(name, symbols)}")
    return symbols.index(name)


Convert = Callable[[Any, str, int], np.ndarray]


class _BarRows:
    """Where each symbol's bars are in the rows of time-indexed frames of signals (-1: no
    row), looked up once per index and symbol for every frame of a call with that index:
    entries and exits (and every set of a grid) usually share one, and a lookup of a
    symbol's 100k bar times costs as much as reading its column."""

    def __init__(self, market: _core.Market) -> None:
        self._market = market
        # Per index seen (as UTC ns): the index to look up in, and rows by symbol.
        self._seen: list[tuple[np.ndarray, pd.Index, dict[int, np.ndarray]]] = []

    def of(self, times: np.ndarray, s: int) -> np.ndarray:
        """Symbol ``s``'s rows in a frame indexed by ``times`` (UTC ns)."""
        same = (seen for seen in self._seen
                if len(seen[0]) == len(times) and np.array_equal(seen[0], times))
        _, index, rows = next(same, None) or self._add(times)
        if s not in rows:
            rows[s] = _rows_in(times, index, _bar_times(self._market, s))
        return rows[s]

    def _add(self, times: np.ndarray) -> tuple[np.ndarray, pd.Index, dict[int, np.ndarray]]:
        self._seen.append((times, pd.Index(times), {}))
        return self._seen[-1]


def _rows_in(times: np.ndarray, index: pd.Index, ts: np.ndarray) -> np.ndarray:
    """``index.get_indexer(ts)``: the row of each time of ``ts`` in ``times`` (``index``'s
    values), -1 where there is none. A strictly increasing index (a timeline) is searched
    in order, without building its hash table."""
    if not index.is_monotonic_increasing or not index.is_unique:
        return index.get_indexer(ts)
    rows = np.searchsorted(times, ts)
    found = times[np.minimum(rows, len(times) - 1)] == ts if len(times) else rows < 0
    return np.where(found, rows, -1)


def _on_bars(market: _core.Market, series: pd.Series, s: int) -> bool:
    """Whether ``series`` is indexed by symbol ``s``'s own bar times, in order (what
    `SignalStrategy.signals` gets back from pandas on its ``bars``): its values are then
    the bars' values as they stand, with no look-up."""
    index = series.index
    if not isinstance(index, pd.DatetimeIndex) or len(index) != _bar_count(market, s):
        return False
    return bool(np.array_equal(as_utc(index).tz_convert("UTC").as_unit("ns").asi8,
                               _bar_times(market, s)))


def _from_frame(market: _core.Market, frame: pd.DataFrame, name: str, convert: Convert,
                bar_rows: _BarRows) -> Columns:
    symbols = list(market.symbols)
    columns: Columns = [None] * len(symbols)
    if isinstance(frame.columns, pd.MultiIndex) and frame.columns.nlevels == 1:
        frame = frame.set_axis(frame.columns.get_level_values(0), axis=1)
    if isinstance(frame.columns, pd.MultiIndex):
        # One column per set and symbol (vectorbt's layout) is many runs, not one.
        levels = ", ".join(str(n) for n in frame.columns.names)
        raise ConfigError(f"{name}: the columns are a MultiIndex ({levels}), one column per "
                          "signal set and symbol: run_signal_grid runs each set (with "
                          f"{name}= such a frame); one run takes one column per symbol")
    if not frame.columns.is_unique:
        twice = frame.columns[frame.columns.duplicated()][0]
        raise ConfigError(f"{name}: column {twice!r} appears more than once (one column "
                          "per symbol)")
    timed = isinstance(frame.index, pd.DatetimeIndex)
    if timed:
        index = as_utc(frame.index)
        if not index.is_unique:
            # Which of the rows would the bar read? Neither is assumed.
            twice = index[index.duplicated()][0]
            raise ConfigError(f"{name}: the index holds the time {twice} more than once "
                              "(one row per bar time)")
        times = index.tz_convert("UTC").as_unit("ns").asi8
    elif not indexed_by_position(frame.index):
        # Rows are then read by position: only positions say so. Dates held as text, say,
        # would be read in whatever order they are in.
        first = frame.index[0] if len(frame) else None
        first = first.item() if isinstance(first, np.generic) else first
        raise ConfigError(
            f"{name}: signals in a frame or a Series are indexed by time (a DatetimeIndex) or by "
            f"position (0, 1, 2, ...); got an index of dtype {frame.index.dtype} starting "
            f"{first!r}: convert times with pd.to_datetime"
        )
    for col in frame.columns:
        s = _symbol_index(symbols, col, f"{name} column {col!r}")
        where = f"{name} column {col!r}"
        values = frame[col].to_numpy()
        if timed:
            rows = bar_rows.of(times, s)
            if (rows < 0).any():
                ts = _bar_times(market, s)
                missing = pd.Timestamp(int(ts[np.argmax(rows < 0)]), tz="UTC")
                raise ConfigError(
                    f"{where}: no row for the bar at {missing} (the index must hold every "
                    f"bar time of {col})"
                )
            values = values[rows]
        columns[s] = convert(values, where, _bar_count(market, s))
    return columns


def signal_columns(market: _core.Market, signals: Any, name: str = "signals", *,
                   bar_rows: _BarRows | None = None) -> Columns:
    """One column per symbol of ``market`` (None where nothing is given), each aligned to
    that symbol's own bars; see the module documentation for the shapes. Booleans for the
    signal kinds, float prices for ``sl_price`` / ``tp_price``, float sizes for ``size``.
    ``bar_rows``: the symbols' rows in time-indexed frames looked up so far by a caller
    converting many frames."""
    convert: Convert = (_prices if name in PRICE_KINDS else _sizes if name == SIZE_KIND
                        else _fractions if name in FRACTION_KINDS
                        else _time_exits if name == TIME_EXIT_KIND
                        else _limits if name == LIMIT_KIND
                        else _portions if name == EXIT_PORTION_KIND
                        else _limit_prices if name == LIMIT_PRICE_KIND else _bools)
    bar_rows = bar_rows if bar_rows is not None else _BarRows(market)
    symbols = list(market.symbols)
    n = len(symbols)
    if signals is None:
        return [None] * n
    if isinstance(signals, pd.DataFrame):
        return _from_frame(market, signals, name, convert, bar_rows)
    per_symbol_rule = name in PER_BAR_RULES
    if per_symbol_rule and isinstance(signals, pd.Series) and _by_symbol(signals, symbols):
        # Sizes or stops indexed by symbols (e.g. a row of a table of weights): one per
        # symbol, as {symbol: number} gives.
        signals = _per_symbol(signals, name)
    elif isinstance(signals, pd.Series):
        if n != 1:
            one = {SIZE_KIND: "size", TIME_EXIT_KIND: "time exit", LIMIT_KIND: "limit",
                   EXIT_PORTION_KIND: "exit portion"}.get(name, "stop")
            per_symbol = f", or index it by symbol for one {one} per symbol" if per_symbol_rule else ""
            raise ConfigError(f"{name}: a Series is one symbol's values by bar; give a "
                              f"DataFrame with a column per symbol for these {n} symbols"
                              f"{per_symbol}")
        return _from_frame(market, signals.to_frame(symbols[0]), name, convert, bar_rows)
    if isinstance(signals, Mapping):
        columns: Columns = [None] * n
        for key, values in signals.items():
            s = _symbol_index(symbols, key, name)
            if isinstance(values, pd.Series) and not _on_bars(market, values, s):
                # A Series is read by its index, as a frame's column is (never by position
                # past an index that says otherwise).
                columns[s] = _from_frame(market, values.to_frame(symbols[s]), name, convert,
                                         bar_rows)[s]
            else:
                columns[s] = convert(values, f"{name}[{key!r}]", _bar_count(market, s))
        return columns
    a = np.asarray(signals)
    if a.ndim == 1 and n == 1:
        return [convert(a, f"{name} of {symbols[0]}", _bar_count(market, 0))]
    if a.ndim != 2 or a.shape[1] != n:
        raise ConfigError(
            f"{name}: an array must have shape (bars, {n} symbols), got {a.shape}"
        )
    return [convert(a[:, s], f"{name} column {s} ({symbols[s]})", _bar_count(market, s))
            for s in range(n)]


def _per_bar(signals: dict[str, Any], rules: dict[str, Any]) -> dict[str, Any]:
    """``rules`` as the run takes them: those of `PER_BAR_RULES` given per symbol or per
    bar (a mapping, a Series, an array, a frame) are put in ``signals`` under their own
    names and read `PER_BAR` in the rules; the others are as given."""
    out = dict(rules)
    for name in PER_BAR_RULES:
        if name in out and _gives_per_bar(out[name]):
            signals[name] = out[name]
            out[name] = PER_BAR
    return out


def _rules(size: Any, size_type: Any, sl: Any, tp: Any, sl_trail: Any = None,
           lot_size: Any = None, accumulate: Any = False, exit_after_bars: Any = None,
           limit: Any = None, limit_bars: Any = None, conflict: Any = "exit",
           side_conflict: Any = "ignore", opposite_entry: Any = "reverse",
           exit_portion: Any = None, where: str = "") -> dict[str, Any]:
    """The order rules checked (option names as the user spells them); ``size`` a number
    or `PER_BAR` (the rules' size is then None)."""
    readings = {"size_type": (size_type, SIZE_TYPES)}
    readings.update((name, (value, CONFLICT_RULES[name])) for name, value in (
        ("conflict", conflict), ("side_conflict", side_conflict), ("opposite_entry", opposite_entry)))
    for name, (value, takes) in readings.items():
        if not isinstance(value, str) or value not in takes:
            hint = did_you_mean(value, takes) if isinstance(value, str) else ""
            raise ConfigError(f"{where}{name}={value!r}: must be one of {', '.join(takes)}{hint}")
    if size is not PER_BAR and not _is_number(size):
        raise ConfigError(f"{where}size={size!r}: must be a number, or one per bar (in the "
                          "shapes signals take)")
    for name, value in (("sl", sl), ("tp", tp), ("sl_trail", sl_trail)):
        if value is not None and value is not PER_BAR and not _is_number(value):
            raise ConfigError(f"{where}{name}={value!r}: must be a number, one per symbol "
                              "({symbol: number}, or a Series indexed by symbol) or one per "
                              "bar (in the shapes signals take)")
    if not isinstance(accumulate, (bool, np.bool_)):
        raise ConfigError(f"{where}accumulate={accumulate!r}: must be True or False")
    if exit_after_bars is not None and exit_after_bars is not PER_BAR and (
            isinstance(exit_after_bars, (bool, np.bool_))
            or not isinstance(exit_after_bars, (int, np.integer)) or exit_after_bars < 1):
        raise ConfigError(f"{where}exit_after_bars={exit_after_bars!r}: must be a whole number "
                          "of bars >= 1 (or None: no time exit), one per symbol ({symbol: "
                          "number}, or a Series indexed by symbol) or one per bar (in the "
                          "shapes signals take)")
    if limit is not None and limit is not PER_BAR and not _is_number(limit):
        raise ConfigError(f"{where}limit={limit!r}: must be a fraction of the entry bar's close "
                          "(0.01: a long's limit 1% below it, a short's 1% above), one per "
                          "symbol ({symbol: number}, or a Series indexed by symbol) or one per "
                          "bar (in the shapes signals take)")
    if exit_portion is not None and exit_portion is not PER_BAR and not _is_number(exit_portion):
        raise ConfigError(f"{where}exit_portion={exit_portion!r}: must be the portion of the "
                          "position an exit signal closes, in (0, 1] (None: all of it), one "
                          "per symbol ({symbol: number}, or a Series indexed by symbol) or one "
                          "per bar (in the shapes signals take)")
    if limit_bars is not None and (isinstance(limit_bars, (bool, np.bool_))
                                   or not isinstance(limit_bars, (int, np.integer))
                                   or limit_bars < 1):
        raise ConfigError(f"{where}limit_bars={limit_bars!r}: must be a whole number of bars "
                          ">= 1 (or None: a limit entry works until it fills or a later "
                          "signal cancels it)")
    if isinstance(lot_size, pd.Series):  # by symbol: a lot size per bar means nothing
        lot_size = _per_symbol(lot_size, f"{where}lot_size")
    lots = lot_size.values() if isinstance(lot_size, Mapping) else [lot_size]
    if not all(lot is None or _is_number(lot) for lot in lots):
        raise ConfigError(f"{where}lot_size={lot_size!r}: must be a number of units, or "
                          "{symbol: number}")
    def number(value: Any) -> float | None:
        return None if value is None or value is PER_BAR else float(value)

    return {"size": number(size), "size_type": size_type, "sl": number(sl), "tp": number(tp),
            "sl_trail": number(sl_trail), "lot_size": lot_size,
            "accumulate": bool(accumulate),
            "exit_after_bars": (None if exit_after_bars is None or exit_after_bars is PER_BAR
                                else int(exit_after_bars)),
            "limit": number(limit), "limit_bars": None if limit_bars is None else int(limit_bars),
            "conflict": conflict, "side_conflict": side_conflict, "opposite_entry": opposite_entry,
            "exit_portion": number(exit_portion)}


def _lots(market: _core.Market, lot_size: Any) -> list[float | None]:
    """Each symbol's lot size (None: units as computed): one for all, or by symbol."""
    symbols = list(market.symbols)
    if not isinstance(lot_size, Mapping):
        return [None if lot_size is None else float(lot_size)] * len(symbols)
    lots: list[float | None] = [None] * len(symbols)
    for name, lot in lot_size.items():
        lots[_symbol_index(symbols, name, "lot_size")] = None if lot is None else float(lot)
    return lots


def _check_kinds(signals: Mapping[str, Any], what: str, extra: Sequence[str] = ()) -> None:
    known = tuple(dict.fromkeys((*BAR_KINDS, *extra)))
    for key in signals:
        if key not in known:
            raise ConfigError(f"{what}: unknown signal {key!r}{did_you_mean(key, known)}; "
                              f"signals are {', '.join(SIGNAL_KINDS)} (stop prices "
                              f"{', '.join(PRICE_KINDS)}, sizes {SIZE_KIND}, stops as fractions "
                              f"{', '.join(FRACTION_KINDS)}, time exits {TIME_EXIT_KIND}, "
                              f"limits {LIMIT_KIND}, {LIMIT_PRICE_KIND}, exit portions "
                              f"{EXIT_PORTION_KIND})")
    if signals.get("entries") is None and signals.get("short_entries") is None:
        raise ConfigError(f"{what}: give entries and/or short_entries (nothing would be traded)")


def _native_call(market: _core.Market, config: BacktestConfig,
                 signal_sets: list[Mapping[str, Any]], rules: list[dict[str, Any]], ends: Any,
                 threads: int | None, *, names: Sequence[Any] | None = None,
                 on_run: Callable[[int, Any], None] | None = None,
                 ) -> tuple[list[_core.Engine], Any]:
    """One engine per signal set, all run in one native call (`_core.run_signals`; with
    ``on_run``, each run's summary handed to it as the run ends), the interpreter
    released; the engines and what the call returns. ``names``: the sets' keys, which a
    refusal of one set's signals names."""
    if config.exclusive_orders:
        raise ConfigError("exclusive_orders=True is for orders a strategy places; signals mode "
                          "does not take it: its own rules already close a position before an "
                          "opposite entry (a reversal) and ignore an entry of the same side")
    if config.order_delay:
        raise ConfigError(f"order_delay={config.order_delay} is for orders a strategy places; "
                          "signals mode does not take it: its rules decide from the position "
                          "held at each signal bar, which a delayed order has not changed yet; "
                          "shift the signals by the bars instead (entries.shift(n)), or write "
                          "the rule as a strategy's next()")
    if threads is not None and (isinstance(threads, (bool, np.bool_))
                                or not isinstance(threads, (int, np.integer)) or threads < 1):
        raise ConfigError(f"threads={threads!r}: must be a whole number of threads >= 1 (or "
                          "None: all cores)")
    if ends is _FROM_CONFIG:
        ends = session_ends(market, config.timezone)
    bar_rows = _BarRows(market)  # one lookup per frame index and symbol for every set
    kinds: dict[str, list[Columns]] = {k: [] for k in BAR_KINDS}
    # Sets often share a kind's very object (a grid of stops over the same entries):
    # converted once, its columns lent to each. The sets hold every object alive for the
    # call, so an id is never reused within it.
    converted: dict[tuple[str, int], Columns] = {}
    for j, sig in enumerate(signal_sets):
        try:
            for k in BAR_KINDS:
                value = sig.get(k)
                if (k, id(value)) not in converted:
                    converted[k, id(value)] = signal_columns(market, value, k, bar_rows=bar_rows)
                kinds[k].append(converted[k, id(value)])
        except ConfigError as err:
            if names is not None:  # the set's key first, as for its other refusals
                err.args = (f"signal set {names[j]!r}: {err}", *err.args[1:])
            raise
    engines = [engine_for(market, config, ends) for _ in signal_sets]
    outcomes = _core.run_signals(
        engines, *(kinds[k] for k in SIGNAL_KINDS),
        **{k: [r[k] for r in rules] for k in RUN_RULES},
        sl_price=kinds["sl_price"], tp_price=kinds["tp_price"], sizes=kinds[SIZE_KIND],
        sl_fraction=kinds["sl"], tp_fraction=kinds["tp"], trail_fraction=kinds["sl_trail"],
        time_exits=kinds[TIME_EXIT_KIND], limit_price=kinds[LIMIT_PRICE_KIND],
        limit_fraction=kinds[LIMIT_KIND], exit_portions=kinds[EXIT_PORTION_KIND],
        lot_size=[_lots(market, r["lot_size"]) for r in rules],
        trade_start=trade_start_ns(market, config), threads=threads, on_run=on_run)
    return engines, outcomes


def _run_native(market: _core.Market, config: BacktestConfig, signal_sets: list[Mapping[str, Any]],
                rules: list[dict[str, Any]], ends: Any,
                threads: int | None) -> tuple[list[_core.Engine], list[BaseException | None]]:
    """One engine per signal set, all run in one native call (the interpreter released);
    the engines and, per engine, None or the exception its run ended with."""
    return _native_call(market, config, signal_sets, rules, ends, threads)


def run_signals(
    market: _core.Market,
    config: BacktestConfig,
    *,
    entries: Any = None,
    exits: Any = None,
    short_entries: Any = None,
    short_exits: Any = None,
    size: Any = 0.95,
    size_type: str = "percent",
    sl: Any = None,
    tp: Any = None,
    sl_price: Any = None,
    tp_price: Any = None,
    sl_trail: Any = None,
    lot_size: Any = None,
    accumulate: bool = False,
    exit_after_bars: Any = None,
    limit: Any = None,
    limit_price: Any = None,
    limit_bars: int | None = None,
    conflict: str = "exit",
    side_conflict: str = "ignore",
    opposite_entry: str = "reverse",
    exit_portion: Any = None,
    metadata: pd.DataFrame | None = None,
    symbols: pd.CategoricalDtype | None = None,
    ends: Any = _FROM_CONFIG,
    params: Mapping[str, Any] | None = None,
    strategy: Any = None,
) -> Result:
    """Backtest boolean signals natively; the same `Result` as a strategy run.

    See the module documentation for the rules and the shapes signals may take.
    ``size`` with ``size_type`` sizes each entry (default: 95% of equity, like the
    default sizer's share), one number, one per symbol or one per bar (NaN or 0: no entry
    on that bar); ``sl``/``tp`` are fractions of the entry bar's close,
    ``sl_price``/``tp_price`` prices per bar; ``sl_trail`` a trailing stop-loss as a
    fraction of the best price since the entry (``sl``, ``tp`` and ``sl_trail`` one
    number, one per symbol or one per bar, NaN for no stop on that bar); ``lot_size`` (a
    number, or ``{symbol: number}``) trades entries in whole lots; ``accumulate`` lets an entry add to a
    position on its side (pyramiding); ``exit_after_bars`` exits a position that many
    bars after its entry (a time exit); ``limit`` (a fraction better than the entry bar's
    close: one number, one per symbol or one per bar) or ``limit_price`` (per bar) makes
    entries limit orders, working ``limit_bars`` bars (None: until filled or cancelled by
    a later signal). ``conflict`` says what an entry and an exit of the same side on one
    bar do (``"exit"``: the exit acts; ``"entry"``: the entry does; ``"ignore"``: neither,
    vectorbt's default), ``side_conflict`` what a long and a short entry on one bar do
    (``"ignore"``, ``"long"``, ``"short"``), ``opposite_entry`` what an entry against the
    position does (``"reverse"``, ``"close"``: only close it, ``"ignore"``).
    ``exit_portion`` is the portion of the position an exit signal closes (0.5: half, the
    oldest trades first; None: all; one number, one per symbol or one per bar, NaN for
    all). Options (cash, commission, trade_on_close, ...) come from ``config``.
    """
    signals = {"entries": entries, "exits": exits, "short_entries": short_entries,
               "short_exits": short_exits, "sl_price": sl_price, "tp_price": tp_price,
               LIMIT_PRICE_KIND: limit_price}
    _check_kinds(signals, "run_signals")
    given = _per_bar(signals, {"size": size, "sl": sl, "tp": tp, "sl_trail": sl_trail,
                               "exit_after_bars": exit_after_bars, "limit": limit,
                               "exit_portion": exit_portion})
    rules = _rules(**given, size_type=size_type, lot_size=lot_size, accumulate=accumulate,
                   limit_bars=limit_bars, conflict=conflict, side_conflict=side_conflict,
                   opposite_entry=opposite_entry)
    (engine,), (error,) = _run_native(market, config, [signals], [rules], ends, threads=1)
    if error is not None:
        raise error
    rejected = check_rejections(engine.rejected_orders(), list(market.symbols), config.on_reject)
    shown = params or {**rules, **{k: v for k, v in given.items() if v is PER_BAR}}
    return result_of(engine, market, config, params=dict(shown), strategy=strategy,
                     metadata=metadata, symbols=symbols, rejected=rejected)


def _row_maker(market: _core.Market, config: BacktestConfig,
               returns: bool = False) -> Callable[[Any], Any]:
    """A run's statistics (as `run_signals(...).stats`) from its summary (see
    `_core.run_signals` with ``on_run``), or the exception it ended with. Rejected orders are
    counted without a warning each (``on_reject="raise"`` raises, as the run alone).
    With ``returns``, the pair (statistics, daily returns)."""
    quiet = quiet_runs(config)
    symbols = list(market.symbols)
    inputs = stats_inputs(market, config)

    def row_of(run: Any) -> pd.Series | BaseException:
        if isinstance(run, BaseException):
            return run
        rejected = check_rejections(run["rejected"], symbols, quiet.on_reject)
        stats = stats_of(run["trades"], run["equity"], run["carrying_costs"], market, config,
                         rejected, inputs, trade_sums=run["trade_sums"],
                         margin_calls=run["margin_calls"], dividends=run["dividends"],
                         exposure_ticks=run["exposure_ticks"])
        return (stats, returns_of(run["equity"], market, config, inputs)) if returns else stats

    return row_of


def _grid_stats(market: _core.Market, config: BacktestConfig, sets: list[Mapping[str, Any]],
                rules: list[dict[str, Any]], ends: Any, threads: int | None,
                names: Sequence[Any] | None = None,
                returns: bool = False) -> list[Any]:
    """Per set, its statistics (as `run_signals(...).stats`) or the exception its run (or
    its statistics: rejected orders under ``on_reject="raise"``) ended with.

    The core keeps of each run only what its statistics read (no order or fill log is
    built) and hands it over as the run ends: its statistics are computed on this thread
    while the other runs go on."""
    row_of = _row_maker(market, config, returns)
    rows: list[Any] = [None] * len(sets)

    def on_run(k: int, run: Any) -> None:
        try:
            rows[k] = row_of(run)
        except Exception as exc:  # noqa: BLE001 - the set's own error becomes its row
            rows[k] = exc

    engines, _ = _native_call(market, config, sets, rules, ends, threads, names=names,
                              on_run=on_run)
    # The engines die on the thread that made them (they are bound to it): emptied, not
    # just unnamed, as a row's exception holds the frames of this call (and their names).
    engines.clear()
    done = [row for row in rows if row is not None]
    if len(done) != len(rows):
        raise RuntimeError("the native grid did not hand back every run")  # never expected
    return done


def _of_sets(value: Any) -> bool:
    """Whether ``value`` is a frame of signal sets: columns a MultiIndex of two levels or
    more (the sets' and the symbol's)."""
    return (isinstance(value, pd.DataFrame) and isinstance(value.columns, pd.MultiIndex)
            and value.columns.nlevels > 1)


def _columns_of_set(frame: pd.DataFrame, places: list[int], set_levels: list[int]
                    ) -> pd.DataFrame:
    """The columns at ``places`` of a frame of signal sets (one set's), by symbol: a view
    of the frame when they are side by side (a set's columns most often are), so a grid
    of many sets holds no second copy of their signals."""
    start = places[0]
    if places == list(range(start, start + len(places))):
        part = frame.iloc[:, start:start + len(places)]
    else:
        part = frame.iloc[:, places]
    return part.set_axis(part.columns.droplevel(set_levels), axis=1)


def _levels(names: list[Any]) -> str:
    return ", ".join("unnamed" if n is None else str(n) for n in names)


def _frames_of_sets(market: _core.Market, given: Mapping[str, Any]
                    ) -> tuple[dict[Any, dict[str, Any]], list[Any]]:
    """Signal sets from frames holding one column per set and symbol (``given``: kind ->
    what the call got), the layout vectorbt's indicators make: a MultiIndex of columns
    whose level named ``symbol`` (else the last) names the symbol and whose other levels
    name the set. A kind given in any other shape (a frame by symbol, a mapping, an array)
    is shared by every set. Returns the sets, in the order their columns first come, and
    the names of the levels that name them."""
    symbols = set(market.symbols)
    wide: dict[str, tuple[pd.DataFrame, list[int]]] = {}
    for kind, frame in given.items():
        if not _of_sets(frame):
            continue
        columns = frame.columns
        named = [k for k, n in enumerate(columns.names) if n == "symbol"]
        level = named[0] if len(named) == 1 else columns.nlevels - 1
        strangers = [v for v in columns.get_level_values(level).unique() if v not in symbols]
        if strangers:
            label = "'symbol'" if named else f"{level} (the last)"
            raise ConfigError(
                f"{kind}: column level {label} holds {strangers[0]!r}, not a symbol of the "
                "data; in a frame of signal sets one column level names the symbol (the "
                "one named 'symbol', else the last) and the others name the set")
        wide[kind] = (frame, [k for k in range(columns.nlevels) if k != level])
    if not wide:
        raise ConfigError(
            "run_signal_grid: no frame of signal sets among " + ", ".join(f"{k}=" for k in given)
            + ": give frames whose columns are a MultiIndex (set..., symbol), one column per "
            "set and symbol, or a mapping {key: {'entries': ..., ...}}; for one set, use "
            "run_signals")
    # The sets are named alike by every frame: by as many levels, of the same names.
    named_by = {kind: [frame.columns.names[k] for k in levels]
                for kind, (frame, levels) in wide.items()}
    (first, first_names), *rest = named_by.items()
    for kind, names in rest:
        if len(names) != len(first_names) or (None not in names + first_names
                                              and names != first_names):
            raise ConfigError(
                f"{kind} names its signal sets by the column levels ({_levels(names)}), "
                f"{first} by ({_levels(first_names)}): every frame of signal sets must name "
                "them by the same levels (a frame by symbol is shared by every set)")
    keys_of: dict[str, dict[Any, list[int]]] = {}
    for kind, (frame, levels) in wide.items():
        heads = frame.columns.droplevel([k for k in range(frame.columns.nlevels)
                                         if k not in levels])
        places: dict[Any, list[int]] = {}
        for k, head in enumerate(heads):
            places.setdefault(head, []).append(k)
        keys_of[kind] = places
    keys = keys_of[first]
    ours = set(keys)
    for kind, theirs in keys_of.items():
        named = set(theirs)
        lacking = [(kind, first, k) for k in keys if k not in named]
        lacking += [(first, kind, k) for k in theirs if k not in ours]
        if lacking:
            lacks, has, key = lacking[0]
            raise ConfigError(
                f"{lacks}: no columns for the signal set {key!r}, which {has} has; every "
                "frame of signal sets must name the same sets (or be one frame by symbol, "
                "shared by every set)")
    sets: dict[Any, dict[str, Any]] = {}
    for key in keys:
        sig = {}
        for kind, value in given.items():
            if kind in wide:
                value = _columns_of_set(wide[kind][0], keys_of[kind][key], wide[kind][1])
            sig[kind] = value
        sets[key] = sig
    return sets, first_names


def run_signal_grid(
    market: _core.Market,
    config: BacktestConfig,
    signal_sets: Mapping[Any, Mapping[str, Any]] | None = None,
    *,
    entries: Any = None,
    exits: Any = None,
    short_entries: Any = None,
    short_exits: Any = None,
    sl_price: Any = None,
    tp_price: Any = None,
    size: Any = 0.95,
    size_type: str = "percent",
    sl: Any = None,
    tp: Any = None,
    sl_trail: Any = None,
    lot_size: Any = None,
    accumulate: bool = False,
    exit_after_bars: Any = None,
    limit: Any = None,
    limit_price: Any = None,
    limit_bars: int | None = None,
    conflict: str = "exit",
    side_conflict: str = "ignore",
    opposite_entry: str = "reverse",
    exit_portion: Any = None,
    threads: int | None = None,
    ends: Any = _FROM_CONFIG,
) -> pd.DataFrame:
    """Backtest many signal sets in one native call, on ``threads`` threads (all cores
    when None) sharing one market; one row of statistics per set, indexed by its key.

    ``signal_sets`` maps a key (e.g. a parameter tuple) to the signals of one backtest,
    ``{"entries": ..., "exits": ..., "short_entries": ..., "short_exits": ...}``, each in
    any shape `run_signals` takes, plus optionally its own ``size``, ``sl``, ``tp``,
    ``sl_trail``, ``exit_after_bars``, ``limit``, ``exit_portion`` (each a number, one
    per symbol or one per bar), ``size_type``, ``lot_size``, ``accumulate``, ``limit_bars``, ``conflict``,
    ``side_conflict``, ``opposite_entry``, ``sl_price``,
    ``tp_price`` and ``limit_price`` (else
    the call's apply; one given per symbol or per bar to the call applies to every set).
    Each row
    equals ``run_signals(...).stats`` of that set run alone. Rejected orders are counted
    per row (``# Orders Rejected``), with one warning for the grid naming the sets that
    had any (not one per set); ``on_reject="raise"`` still raises.

    Or, instead of ``signal_sets``, the sets as columns (vectorbt's layout): ``entries``,
    ``exits``, ``short_entries``, ``short_exits``, ``sl_price``, ``tp_price``,
    ``limit_price``, ``size``, ``sl``, ``tp``, ``sl_trail``, ``exit_after_bars``,
    ``limit`` or ``exit_portion`` as DataFrames by time whose
    columns are a MultiIndex,
    one column per set and symbol:
    the level named ``symbol`` (else the last) names the symbol, the other levels the set
    (and the rows of the table, with their names). One given as a frame by symbol (or in
    any other shape signals take) is shared by every set.
    """
    given = {kind: value for kind, value in (
        ("entries", entries), ("exits", exits), ("short_entries", short_entries),
        ("short_exits", short_exits), ("sl_price", sl_price), ("tp_price", tp_price),
        (LIMIT_PRICE_KIND, limit_price))
        if value is not None}
    level_names: list[Any] = []
    # Sizes, stops, time exits or limits in frames of sets: each set has its own, per bar.
    call_rules = {"size": size, "sl": sl, "tp": tp, "sl_trail": sl_trail,
                  "exit_after_bars": exit_after_bars, "limit": limit,
                  "exit_portion": exit_portion}
    per_set = {name: value for name, value in call_rules.items() if _of_sets(value)}
    if given or per_set:
        if signal_sets is not None:
            raise ConfigError("run_signal_grid: give the signal sets either as signal_sets "
                              "(a mapping) or as frames of sets (entries=, exits=, ...), "
                              "not both")
        given.update(per_set)
        # (The call's own then stands for none of those: the default size, no stop.)
        size, sl, tp, sl_trail, exit_after_bars, limit, exit_portion = (
            ({"size": 0.95}.get(k) if k in per_set else v) for k, v in call_rules.items())
        signal_sets, level_names = _frames_of_sets(market, given)
    if signal_sets is None:
        raise ConfigError("run_signal_grid: no signal sets: give signal_sets, a mapping {key: "
                          "{'entries': ..., 'exits': ...}}, or frames of sets (entries=, "
                          "exits=, ...) with one column per set and symbol")
    if not isinstance(signal_sets, Mapping):
        raise ConfigError("run_signal_grid: signal_sets must be a mapping {key: {'entries': "
                          "..., 'exits': ...}}, one signal set per key; got "
                          + type(signal_sets).__name__)
    if not signal_sets:
        raise ConfigError("run_signal_grid: signal_sets is empty")
    keys = list(signal_sets)
    sets, rules = [], []
    for key in keys:
        if not isinstance(signal_sets[key], Mapping):
            raise ConfigError(f"signal set {key!r}: must be a mapping of its signals "
                              f"({{'entries': ..., 'exits': ...}}), got "
                              f"{type(signal_sets[key]).__name__}")
        sig = dict(signal_sets[key])
        _check_kinds(sig, f"signal set {key!r}", RULES)
        own = {"size": size, "size_type": size_type, "sl": sl, "tp": tp, "sl_trail": sl_trail,
               "lot_size": lot_size, "accumulate": accumulate, "exit_after_bars": exit_after_bars,
               "limit": limit, "limit_bars": limit_bars, "conflict": conflict,
               "side_conflict": side_conflict, "opposite_entry": opposite_entry,
               "exit_portion": exit_portion}
        own.update((k, sig.pop(k)) for k in RULES if k in sig)
        rules.append(_rules(**_per_bar(sig, own), where=f"signal set {key!r}: "))
        sets.append(sig)
    rows = _grid_stats(market, config, sets, rules, ends, threads, names=keys)
    for key, row in zip(keys, rows):
        if isinstance(row, ConfigError):  # the core's refusal of the set's rules: whose
            row.args = (f"signal set {key!r}: {row}", *row.args[1:])
        if isinstance(row, BaseException):
            raise row
    warn_of_rejected_runs(((f"signal set {key!r}", row["# Orders Rejected"])
                           for key, row in zip(keys, rows)), config.on_reject)
    if all(isinstance(k, tuple) for k in keys):
        index = pd.MultiIndex.from_tuples(keys, names=level_names or None)
    else:
        index = pd.Index(keys, name=level_names[0] if len(level_names) == 1 else None)
    return pd.DataFrame(rows, index=index)


# ---- signals as a function of parameters ----------------------------------------------------


class SignalStrategy(Strategy):
    """A strategy given as signals computed from each symbol's bars and parameters.

    Subclass it, declare parameters as class attributes (as for any `Strategy`), and
    write ``signals(symbol, bars)``: it receives one symbol's bars (a DataFrame of
    ``open, high, low, close, volume`` indexed by time, read-only) and returns a mapping
    with ``entries`` and/or ``short_entries`` (and optionally ``exits``, ``short_exits``,
    ``sl_price``, ``tp_price``, ``limit_price``, and ``size``, ``sl``, ``tp``,
    ``sl_trail``, ``exit_after_bars``, ``limit``, ``exit_portion``: the entries' sizes,
    stop fractions, time exits and limits and the exits' portions per bar, instead of the
    parameters of those names), each an
    array as long as ``bars``. A signal on bar t acts
    like an order placed in ``next`` at bar t, so it may use bar t's close; the run never
    shows it later bars.

    The order rules are parameters too, so a grid may vary them: ``size``,
    ``size_type`` (``"amount"``, ``"value"``, ``"percent"``, ``"percent_at_fill"``, ``"target_percent"``),
    ``sl`` and ``tp`` (fractions of the entry bar's close), ``sl_trail`` (a trailing
    stop-loss, a fraction of the best price since the entry), ``lot_size`` (entries in
    whole lots), ``accumulate`` (pyramiding), ``exit_after_bars`` (a time exit),
    ``limit`` (entries as limit orders that fraction better than the close),
    ``limit_bars`` (how long they work), ``conflict``, ``side_conflict`` and
    ``opposite_entry`` (how signals that contradict each other or the position are read),
    and ``exit_portion`` (the portion of the position an exit signal closes); ``size``,
    the three stops, the time exit, the limit and the exit portion one number or
    ``{symbol: number}``; see `tickstep.signals`.

    Signals that depend on other symbols (a rank across them, a spread, a pair) are
    written ``market_signals(bars)`` instead: it receives every symbol's bars at once
    (``{symbol: DataFrame}``, each as ``signals`` gets it) and returns the same kinds for
    all of them, each in any shape `run_signals` takes: most often a DataFrame by time
    with a column per symbol (any subset). A class defines one of the two.

    `Backtest.run` trades it in signals mode (natively); ``Backtest.optimize`` and
    `tickstep.batch.run_batch` run its parameter sets in one native call per symbol
    group on all cores (``executor=None``), each row equal to the set run alone. There,
    ``signals`` of different parameter sets run on several threads at once (each set with
    its own strategy object): keep it free of state shared between calls.

    Examples
    --------
    >>> import numpy as np, tickstep
    >>> class Cross(tickstep.SignalStrategy):
    ...     size = 0.1  # of equity per entry: room for ten positions
    ...     fast = 5
    ...     slow = 20
    ...     def signals(self, symbol, bars):
    ...         f = bars.close.rolling(self.fast).mean()
    ...         s = bars.close.rolling(self.slow).mean()
    ...         above = (f > s).to_numpy()
    ...         below = (f < s).to_numpy()
    ...         return {"entries": above & ~np.roll(above, 1), "exits": below & ~np.roll(below, 1)}
    >>> bt = tickstep.Backtest(tickstep.data.example_daily(), Cross, cash=100_000)
    >>> int(bt.run(fast=10).stats["# Trades"]) > 0
    True
    """

    size: float | dict[str, float] = 0.95
    size_type: str = "percent"
    sl: float | dict[str, float] | None = None
    tp: float | dict[str, float] | None = None
    sl_trail: float | dict[str, float] | None = None
    lot_size: float | dict[str, float] | None = None
    accumulate: bool = False
    exit_after_bars: int | dict[str, int] | None = None
    limit: float | dict[str, float] | None = None
    limit_bars: int | None = None
    conflict: str = "exit"
    side_conflict: str = "ignore"
    opposite_entry: str = "reverse"
    exit_portion: float | dict[str, float] | None = None

    def signals(self, symbol: str, bars: pd.DataFrame) -> Mapping[str, Any]:
        """This symbol's signals from its bars (see the class documentation)."""
        raise NotImplementedError(
            f"{type(self).__name__}.signals(symbol, bars) must return the symbol's signals, "
            "e.g. {'entries': ..., 'exits': ...} (or define market_signals(bars), every "
            "symbol's at once)"
        )

    def market_signals(self, bars: Mapping[str, pd.DataFrame]) -> Mapping[str, Any]:
        """Every symbol's signals at once from every symbol's bars, for rules across
        symbols (see the class documentation); defined instead of `signals`."""
        raise NotImplementedError(f"{type(self).__name__} defines signals(symbol, bars)")

    def init(self) -> None:
        raise TypeError(
            f"{type(self).__name__} is a SignalStrategy: it runs in signals mode "
            "(Backtest.run, optimize, run_batch), not through next()"
        )


#: A parameter set's signals, order rules and strategy object, or the error making them.
Made = tuple[dict[str, Any], dict[str, Any], SignalStrategy] | BaseException


def _bars_frames(market: _core.Market) -> dict[str, pd.DataFrame]:
    """Each symbol's bars as a read-only DataFrame (views of the market's columns)."""
    frames = {}
    for s, name in enumerate(market.symbols):
        cols = {c: market.column(s, c, 0, sys.maxsize) for c in ("open", "high", "low", "close", "volume")}
        index = pd.DatetimeIndex(np.asarray(_bar_times(market, s)).view("datetime64[ns]"), name="time")
        frames[name] = pd.DataFrame(cols, index=index.tz_localize("UTC"), copy=False)
    return frames


def _signals_of(cls: type[SignalStrategy], params: Mapping[str, Any], symbols: list[str],
                frames: Mapping[str, pd.DataFrame], metadata: pd.DataFrame | None, *,
                part: bool = False) -> tuple[dict[str, Any], dict[str, Any], SignalStrategy]:
    """One parameter set's signals ({kind: {symbol: column}}), order rules and the
    strategy object that made them. ``part``: the market is some of a batch's symbols
    (see `strategy_grid_stats`)."""
    instance = cls.__new__(cls)
    for name, value in {**cls.parameters(), **params}.items():
        if part and name in BY_SYMBOL_PARAMETERS and isinstance(value, Mapping):
            value = {symbol: v for symbol, v in value.items() if symbol in symbols}
        setattr(instance, name, value)
    instance._symbols = list(symbols)
    instance.metadata = metadata
    sets: dict[str, Any] = {}
    if _across_symbols(cls):
        # One call for every symbol (a fresh mapping: the strategy may keep or change it).
        where = f"{cls.__name__}.market_signals(bars)"
        out = _called(where, instance.market_signals, {s: frames[s] for s in symbols})
        sets = {kind: values for kind, values in _kinds(where, out) if values is not None}
    else:
        for symbol in symbols:
            where = f"{cls.__name__}.signals({symbol!r}, bars)"
            out = _called(where, instance.signals, symbol, frames[symbol])
            for kind, values in _kinds(where, out):
                if values is not None:
                    sets.setdefault(kind, {})[symbol] = values
    if not _given(sets.get("entries")) and not _given(sets.get("short_entries")):
        method = "market_signals" if _across_symbols(cls) else "signals"
        raise ConfigError(f"{cls.__name__}.{method}: no entries or short_entries for any symbol "
                          "(nothing would be traded)")
    # Sizes or stops per bar from `signals` stand instead of the parameters; parameters
    # given per symbol (or per bar) go with the signals.
    given = {name: PER_BAR if name in sets else getattr(instance, name)
             for name in PER_BAR_RULES}
    rules = _rules(**_per_bar(sets, given), size_type=instance.size_type,
                   lot_size=instance.lot_size, accumulate=instance.accumulate,
                   limit_bars=instance.limit_bars, conflict=instance.conflict,
                   side_conflict=instance.side_conflict, opposite_entry=instance.opposite_entry,
                   where=f"{cls.__name__}: ")
    return sets, rules, instance


def _across_symbols(cls: type[SignalStrategy]) -> bool:
    """Whether ``cls`` makes its signals across symbols (``market_signals``) rather than
    per symbol (``signals``); a class defining both is refused (which would run?)."""
    across = cls.market_signals is not SignalStrategy.market_signals
    if across and cls.signals is not SignalStrategy.signals:
        raise ConfigError(f"{cls.__name__} defines both signals(symbol, bars) and "
                          "market_signals(bars): define one (market_signals for signals "
                          "across symbols, signals for each symbol alone)")
    return across


def _called(where: str, method: Callable[..., Any], *args: Any) -> Any:
    """``method(*args)``; the strategy's own error unchanged, with where it was raised."""
    try:
        return method(*args)
    except Exception as err:
        err.add_note(f"tickstep: raised by {where}")
        raise


def _kinds(where: str, out: Any) -> Iterator[tuple[str, Any]]:
    """The signals a strategy's method returned, by kind (each kind checked)."""
    if not isinstance(out, Mapping):
        raise ConfigError(f"{where} returned {type(out).__name__}, not a mapping of signals")
    for kind, values in out.items():
        if kind not in BAR_KINDS:
            raise ConfigError(f"{where}: unknown signal {kind!r}{did_you_mean(kind, BAR_KINDS)}")
        yield kind, values


def _given(values: Any) -> bool:
    """Whether signals of one kind were given for some symbol (a non-empty shape)."""
    if isinstance(values, pd.DataFrame):
        return len(values.columns) > 0
    if isinstance(values, Mapping):
        return len(values) > 0
    return values is not None


@contextmanager
def _returned_by(cls: type[SignalStrategy]) -> Iterator[None]:
    """A refusal of signals a `SignalStrategy` made names where they came from (the
    message names the symbol and the rule; the note, the strategy's method)."""
    try:
        yield
    except ConfigError as err:
        method = "market_signals(bars)" if _across_symbols(cls) else "signals(symbol, bars)"
        err.add_note(f"tickstep: in what {cls.__name__}.{method} returned")
        raise


def check_symbols_named(strategy: type[SignalStrategy], values: Iterable[tuple[str, Any]],
                        symbols: Sequence[str]) -> None:
    """Refuse a symbol that a parameter by symbol (`BY_SYMBOL_PARAMETERS`) names and
    ``symbols`` lack, among ``values`` ((name, value) pairs: a batch's every value) and
    ``strategy``'s defaults: a misspelt ticker would leave that symbol without its stops
    or size in every run of the batch, each of which takes only its own symbols'."""
    known = list(symbols)
    for name, value in [*strategy.parameters().items(), *values]:
        if name in BY_SYMBOL_PARAMETERS and isinstance(value, Mapping):
            for symbol in value:
                if symbol not in known:
                    raise ConfigError(
                        f"{strategy.__name__} parameter {name}={dict(value)!r}: {symbol!r} is "
                        f"not a symbol of the data{did_you_mean(str(symbol), known)}")


def is_signal_strategy(strategy: Any) -> bool:
    """Whether ``strategy`` is a `SignalStrategy` class (run in signals mode)."""
    return isinstance(strategy, type) and issubclass(strategy, SignalStrategy)


def run_strategy(market: _core.Market, strategy: type[SignalStrategy], config: BacktestConfig,
                 params: Mapping[str, Any] | None = None, *, metadata: pd.DataFrame | None = None,
                 symbols: pd.CategoricalDtype | None = None, ends: Any = _FROM_CONFIG) -> Result:
    """One run of a `SignalStrategy` with ``params``: its `Result`."""
    params = strategy.check_parameters(params or {})
    names = list(market.symbols)
    sets, rules, instance = _signals_of(strategy, params, names, _bars_frames(market), metadata)
    # (Sizes per bar, if any, are in `sets`: they stand for the rules' None.)
    with _returned_by(strategy):
        return run_signals(market, config, **{**rules, **sets}, metadata=metadata,
                           symbols=symbols, ends=ends,
                           params={**strategy.parameters(), **params}, strategy=instance)


def strategy_grid_stats(market: _core.Market, strategy: type[SignalStrategy],
                        config: BacktestConfig, param_sets: Sequence[Mapping[str, Any]], *,
                        metadata: pd.DataFrame | None = None, ends: Any = _FROM_CONFIG,
                        threads: int | None = None, batch: int | None = None,
                        returns: bool = False, part: bool = False) -> list[Any]:
    """Statistics of a `SignalStrategy` for each parameter set (or the exception that set
    ended with), in the order of ``param_sets``: the sets run ``batch`` at a time (default
    4 per thread, so the signals held stay bounded) in one native call each, on
    ``threads`` threads (all cores when None). Each equals the set run alone.

    The strategy's ``signals`` of the next batch are made on ``threads`` threads (one set
    at a time each; numpy and pandas release the interpreter in their kernels) while the
    batch before runs natively (on a helper thread that makes the engines, waits for the
    core, the interpreter released, and computes each run's statistics), so the cores
    are not idle while signals are computed. With ``returns``, each set's
    (statistics, daily returns).

    ``part``: the market is some of a batch's symbols (each symbol alone, a named group),
    and a parameter by symbol (`BY_SYMBOL_PARAMETERS`) may name the batch's others: each
    run takes its own symbols' entries (the batch checked every name, see
    `check_symbols_named`), as the run of those symbols alone would be given them."""
    if ends is _FROM_CONFIG:
        ends = session_ends(market, config.timezone)
    names = list(market.symbols)
    workers = threads or os.cpu_count() or 1
    step = batch or 4 * workers
    # Each thread reads its own frames (views of the same columns): pandas objects are
    # not shared between threads that may touch their caches at once.
    local = threading.local()

    def make(params: Mapping[str, Any]) -> Made:
        try:
            frames = getattr(local, "frames", None)
            if frames is None:
                frames = local.frames = _bars_frames(market)
            signals, rules, instance = _signals_of(
                strategy, strategy.check_parameters(params), names, frames, metadata, part=part)
            with _returned_by(strategy):
                for kind, columns in signals.items():
                    signal_columns(market, columns, kind)  # a refusal is this set's own
            return signals, rules, instance
        except Exception as exc:  # noqa: BLE001 - the set's own error becomes its row
            return exc

    out: list[Any] = []

    def finish(made: list[Made], running: Future[list[Any]] | None) -> None:
        rows = iter(running.result() if running is not None else [])
        out.extend(m if isinstance(m, BaseException) else next(rows) for m in made)

    batches = [param_sets[first:first + step] for first in range(0, len(param_sets), step)]
    # No collection of cyclic garbage on the helper threads: garbage made before this call
    # may hold engines (of a run that raised, in its frames), which are bound to the
    # thread that made them and cannot be dropped on another. It is collected after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tickstep-grid") as native, \
                ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tickstep-signals") as makers:
            making = [makers.submit(make, params) for params in batches[0]] if batches else []
            pending: tuple[list[Made], Future[list[Any]] | None] | None = None
            for b in range(len(batches)):
                made = [m.result() for m in making]  # in the order of the sets
                ready = [m for m in made if not isinstance(m, BaseException)]
                running = native.submit(_grid_stats, market, config, [m[0] for m in ready],
                                        [m[1] for m in ready], ends, threads,
                                        returns=returns) if ready else None
                if pending is not None:
                    finish(*pending)
                pending = (made, running)
                # The next batch's signals are made while this one runs (two batches held).
                making = ([makers.submit(make, params) for params in batches[b + 1]]
                          if b + 1 < len(batches) else [])
            if pending is not None:
                finish(*pending)
    finally:
        if collecting:
            gc.enable()
    return out
