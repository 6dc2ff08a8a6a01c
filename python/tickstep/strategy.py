"""`Strategy`: what a user subclasses.

Parameters are class attributes; ``init()`` runs once before the first tick; ``next(symbol)``
runs for every symbol that has a bar at the tick, in symbol order; ``on_tick()`` runs once
per tick after them, for portfolio logic. Orders placed in any of them join the book at
the end of the tick and fill from the symbol's next bar on.
"""

from __future__ import annotations

import inspect
import math
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pandas as pd

from tickstep._core import (
    ConfigError,
    HistoryBase,
    OrderError,
    OrdersBase,
    PositionBase,
    StateError,
    StrategyBase,
    UnknownSymbolError,
)
from tickstep.data._records import RecordBook, RecordSet
from tickstep.hints import did_you_mean
from tickstep.parameters import ParameterError, check_value, declared_types
from tickstep.results import ROLES, EngineLine, IndicatorLine
from tickstep.sizing import SizingRequest, native_sizing, order_to_target, rebalance_orders
from tickstep.studies import Crossing, Indicator, Timeframe, session_buckets
from tickstep.timeframes import timeframe_ns

if TYPE_CHECKING:
    from tickstep._core import Context
    from tickstep.sizing import Sizer

__all__ = ["Position", "Strategy"]

#: The longest rolling window accepted, in bars: beyond any real history.
_MAX_WINDOW = 2**32
#: The chart options an engine indicator takes (``self.I``'s), and their defaults.
_ENGINE_CHART = {"plot": True, "overlay": None, "color": None, "scatter": False}
#: How the report names the engine's indicators, by the method declaring them.
_CHART_NAMES = {"sma": "SMA", "ema": "EMA", "rsi": "RSI", "atr": "ATR", "rolling_std": "STD",
                "highest": "MAX", "lowest": "MIN"}


def _finite(call: str, what: str, value: Any) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not math.isfinite(value):
        raise ValueError(f"{call}: the {what} must be a finite number, got {value!r}")
    return float(value)


def _check_lots(lot_size: Any, min_value: Any) -> None:
    sizes = lot_size.values() if isinstance(lot_size, Mapping) else [lot_size]
    for lot in sizes:
        if lot is not None and not (_finite("lot_size", "lot size", lot) > 0):
            raise ValueError(f"lot_size={lot!r}: must be a positive number of units")
    if not _finite("min_value", "minimum trade value", min_value) >= 0:
        raise ValueError(f"min_value={min_value!r}: must be >= 0")


class Position(PositionBase):
    """The position in one symbol, read live from the engine.

    ``self.position`` inside ``next(symbol)`` is the running symbol's position, as in
    backtesting.py: ``if not self.position:``, ``self.position.size``,
    ``self.position.close()``. Calling it names a symbol explicitly (what ``on_tick``
    needs, where no symbol is running): ``self.position("AAPL").size``.
    ``self.position()`` is the running symbol's position again.

    A strategy keeps one of these per symbol for the whole run (its size, truth value
    and prices are read from the core in one call each; nothing is allocated per bar).
    """

    __slots__ = ("_s",)

    def __init__(self, ctx: Context, index: int, strategy: Strategy,
                 kept: list[Position | None] | None = None) -> None:
        #: The strategy (for naming other symbols); the index lives in the core's base.
        self._s = strategy

    # The core's members, named here so that they are documented with the class.
    size = PositionBase.size
    average_price = PositionBase.average_price
    value = PositionBase.value
    pl = PositionBase.pl
    is_long = PositionBase.is_long
    is_short = PositionBase.is_short
    close = PositionBase.close

    # Calling it (``self.position("AAPL")``) is the core's ``__call__``: the kept object
    # of that symbol in one call, else `Strategy._position_of` makes and keeps it.

    @property
    def symbol(self) -> str:
        """The symbol of this position (the running one for ``self.position``)."""
        return self._s._name(self.index)

    @property
    def pl_pct(self) -> float:
        """Unrealised profit (or loss) of the open trades **in percent** of their entry
        value, as backtesting.py's ``position.pl_pct`` (``-5`` is a 5% loss; 0 when flat).
        A trade's ``pl_pct`` is a fraction, as there."""
        size = self.size
        if size == 0:
            return 0.0
        multiplier = self._s._ctx.multiplier(self.index)
        return self.pl / (abs(size) * self.average_price * multiplier) * 100.0

    def __repr__(self) -> str:
        return f"Position({self.symbol!r}, size={self.size:g})"


class _Sided:
    """``is_long`` and ``is_short`` of what has a signed ``size`` (a trade, an order)."""

    __slots__ = ()
    size: float

    @property
    def is_long(self) -> bool:
        return self.size > 0

    @property
    def is_short(self) -> bool:
        return self.size < 0


class Trade(_Sided):
    """A trade (one entry, possibly partly closed since), as backtesting.py's
    ``self.trades`` and ``self.closed_trades`` give them.

    An open trade is the same object at every read of ``self.trades`` while it is open,
    and reads the book when asked: ``size``, ``sl`` and ``tp`` are as they are now, and
    ``pl``, ``pl_pct`` and ``value`` mark it at its symbol's latest price. Setting ``sl``
    or ``tp`` and ``close()`` act on the trade as it is now, from the symbol's next bar,
    and are refused once it has closed. Once it has closed, an object read while it was
    open reads as its last close (``self.closed_trades``' last part of it): the units
    that close took, its exit price and time, its P&L; no exits. After the run, a trade
    gives what it gave when last read in it.
    """

    __slots__ = ("_s", "_c", "_k", "symbol", "id", "tag", "_size", "_sl", "_tp", "entry_price",
                 "_entry_ns", "entry_bar", "exit_price", "_exit_ns", "_closed", "_multiplier")

    def __init__(self, strategy: Strategy, k: int, trade_id: int, size: float,
                 entry_price: float, entry_ns: int, tag: int) -> None:
        # The strategy, its context and the symbol's index, for the core's reads.
        self._s, self._c, self._k = strategy, strategy._ctx, k
        #: The symbol traded.
        self.symbol = strategy._symbols[k]
        #: The trade's id (``trade_id`` in the results' trades).
        self.id = trade_id
        #: The tag of the order that opened it (``buy(tag=...)``; 0 without one).
        self.tag = tag
        # As last read (what a read after the run gives): of a closed trade (or part), the
        # units it took.
        self._size = size
        self._sl: float | None = None
        self._tp: float | None = None
        self.entry_price = entry_price
        # Times kept as ns and made Timestamps when read (making one costs more than the
        # rest of a trade read).
        self._entry_ns = entry_ns
        #: The symbol's bar the trade was entered on (``len(self.data) - 1`` then);
        #: None for a closed trade.
        self.entry_bar: int | None = None
        self.exit_price: float | None = None
        self._exit_ns: int | None = None
        #: A closed trade's (net P&L, return) as the results' trades give them.
        self._closed: tuple[float, float] | None = None
        # The symbol's multiplier (money per unit and point), read while the run is live:
        # a closed trade's value is read after it too.
        self._multiplier = self._c.multiplier(k)

    @property
    def size(self) -> float:
        """Units still open, negative for a short trade; of a closed trade, the units
        that close took."""
        return self._now()

    def _now(self) -> float:
        """The units read from the book (kept: what a read after the run gives); an
        object read open whose trade has closed since becomes its last close here."""
        if self._closed is None:
            try:
                size = self._c.trade_size(self._k, self.id)
            except StateError:
                return self._size  # after the run: as last read in it
            if size is None:
                self._settle()
            else:
                self._size = size
        return self._size

    @property
    def is_long(self) -> bool:
        return self._size > 0  # (the side never changes: no read of the book)

    @property
    def is_short(self) -> bool:
        return self._size < 0

    def _settle(self) -> None:
        """The trade has closed since this object was read open: read as its last close."""
        part = next(t for t in reversed(self._s._closed_parts(self._k)) if t.id == self.id)
        self._size, self.exit_price, self._exit_ns = part._size, part.exit_price, part._exit_ns
        self._closed, self._sl, self._tp = part._closed, None, None

    @property
    def entry_time(self) -> pd.Timestamp:
        return pd.Timestamp(self._entry_ns, tz="UTC")

    @property
    def exit_time(self) -> pd.Timestamp | None:
        """When a closed trade (this part of it) closed; None for an open one."""
        self._now()
        return None if self._exit_ns is None else pd.Timestamp(self._exit_ns, tz="UTC")

    @property
    def pl(self) -> float:
        """Profit or loss in cash: of an open trade, marked at the latest price, before
        commissions (as ``self.position.pl``); of a closed one, net of its commissions
        (``pnl`` in the results' trades)."""
        size = self._now()
        if self._closed is not None:
            return self._closed[0]
        return size * (self._s.price(self.symbol) - self.entry_price) * self._multiplier

    @property
    def pl_pct(self) -> float:
        """Return as a fraction: of an open trade, of its entry price at the latest price;
        of a closed one, ``return_pct`` of the results' trades (net, of all it cost)."""
        self._now()
        if self._closed is not None:
            return self._closed[1]
        return math.copysign(1.0, self._size) * (self._s.price(self.symbol) / self.entry_price - 1.0)

    @property
    def value(self) -> float:
        """Units times the latest price (the exit price of a closed trade) times the
        symbol's multiplier."""
        size = self._now()
        price = self.exit_price if self._closed is not None else self._s.price(self.symbol)
        return abs(size) * price * self._multiplier

    @property
    def sl(self) -> float | None:
        """The stop-loss price working now, None without one (where a trailing one has
        moved to; None once the trade has closed). Set it to place or move the trade's
        stop-loss, None to cancel it: it works from the symbol's next bar and closes this
        trade alone."""
        if self._closed is None:
            try:
                self._sl = self._c.trade_exit(self._k, self.id, False)
            except StateError:
                pass  # after the run: as last read in it
        return self._sl

    @sl.setter
    def sl(self, price: float | None) -> None:
        self._sl = self._set_exit("sl", price)

    @property
    def tp(self) -> float | None:
        """The take-profit (limit) price working now, None without one; set it as ``sl``."""
        if self._closed is None:
            try:
                self._tp = self._c.trade_exit(self._k, self.id, True)
            except StateError:
                pass
        return self._tp

    @tp.setter
    def tp(self, price: float | None) -> None:
        self._tp = self._set_exit("tp", price)

    def _set_exit(self, which: str, price: float | None) -> float | None:
        # (Set at every bar by a stop trailed by hand: a float goes straight to the core.)
        if self._closed is not None:
            self._refuse_closed(f"set its {which}")
        if price is not None and price.__class__ is not float:
            if not _is_number(price):
                raise OrderError(f"{self.symbol}: trade {self.id}: {which} must be a price or None, "
                                 f"got {type(price).__name__}")
            price = float(price)
        self._c.set_trade_exit(self._k, self.id, which, price)
        return price

    def close(self, portion: float = 1.0) -> int:
        """Close ``portion`` (0 < portion <= 1) of what is left of this trade at the
        symbol's next fill (sized then), leaving the position's other trades as they are.
        Returns the order's id."""
        if self._closed is not None:
            self._refuse_closed("close it")
        return self._c.close_trade(self._k, self.id, portion)

    def _refuse_closed(self, what: str) -> None:
        raise OrderError(f"{self.symbol}: trade {self.id} is closed: cannot {what}")

    def __repr__(self) -> str:
        size = self._now()
        state = f"exit={self.exit_price:g}" if self._closed is not None else "open"
        return (f"Trade({self.symbol!r}, id={self.id}, size={size:g}, "
                f"entry={self.entry_price:g}, {state})")


class Order(_Sided):
    """A working order, as backtesting.py's ``self.orders`` gives them: ``id``,
    ``symbol``, ``size`` (negative for a sell), ``limit``, ``stop``, ``sl``, ``tp`` (None
    when it has none), ``tag``, ``role`` (``"entry"``, ``"stop_loss"``, ``"take_profit"``
    or ``"close"``), ``trade_id`` (the trade an exit or a close of one trade is for, else
    None), and ``cancel()``; and how it was placed: ``tif``, ``valid``, ``trail``,
    ``oco`` and ``parent_id``. Its fields are those of the moment ``self.orders`` was
    read (a trailing stop's ``stop`` where it had moved to then).
    """

    __slots__ = ("_s", "id", "symbol", "size", "limit", "stop", "sl", "tp", "role", "trade_id", "tag",
                 "_details")

    def __init__(self, strategy: Strategy, symbol: str, row: tuple) -> None:
        self._s, self.symbol = strategy, symbol
        (order_id, side, size, self.limit, self.stop, self.sl, self.tp, role, self.trade_id, self.tag,
         self._details) = row
        self.id, self.size, self.role = order_id, side * size, ROLES[role]

    @property
    def tif(self) -> str:
        """Its time in force as placed: ``"gtc"`` (with or without ``valid``), ``"day"``,
        ``"ioc"``, ``"fok"``, ``"opg"`` (at the open) or ``"close"`` (at the close)."""
        return "gtc" if self._details is None else self._details[0]

    @property
    def valid(self) -> int | pd.Timestamp | None:
        """``valid=`` as placed: the number of the symbol's bars it was good for, or the
        time it was good till; None when it was given none."""
        if self._details is None:
            return None
        bars, until = self._details[1], self._details[2]
        return bars if bars is not None else None if until is None else pd.Timestamp(until, tz="UTC")

    @property
    def trail(self) -> float | str | tuple[str, float] | None:
        """How far a trailing stop follows the best price: a price distance, a percentage
        (``"2%"``) or ``("atr", multiple)``; None for an order that does not trail."""
        if self._details is None or self._details[3] is None:
            return None
        kind, value = self._details[3]
        if kind == "distance":
            return value
        return f"{value * 100:g}%" if kind == "fraction" else ("atr", value)

    @property
    def oco(self) -> int | None:
        """Its one-cancels-other group (the id of the group's first order), None if in
        none."""
        return None if self._details is None else self._details[4]

    @property
    def parent_id(self) -> int | None:
        """The order whose fill made it (a bracket leg's entry, the order it is the rest
        of under ``volume_limit``), as ``parent_id`` in ``Result.orders``; None for the
        strategy's own orders."""
        return (self._details[5] or None) if self._details is not None else None

    @property
    def is_contingent(self) -> bool:
        """Whether it exits a trade or closes a position (not an entry of the strategy's
        own): backtesting.py's contingent orders."""
        return self.role != "entry"

    def cancel(self) -> bool:
        """Cancel it (a trade's exit too); False if it had already ended."""
        return self._s._ctx.cancel(self.id)

    def __repr__(self) -> str:
        prices = "".join(f", {k}={v:g}" for k in ("limit", "stop", "sl", "tp")
                         if (v := getattr(self, k)) is not None)
        return f"Order({self.symbol!r}, id={self.id}, {self.role}, size={self.size:g}{prices})"


class Orders(OrdersBase):
    """``self.orders``: the working orders (those placed this tick included), as
    backtesting.py's ``self.orders`` reads: iterated, counted or tested, the running
    symbol's inside ``next`` (every symbol's in ``on_tick``) as `Order` objects, oldest
    first (``for order in self.orders: order.cancel()``, ``if not self.orders:``).
    Called, their ids: ``self.orders("AAPL")`` (the running symbol's without one).

    One object for the run; calling, counting and testing it are the core's (one call,
    no object made), iterating it makes the orders."""

    __slots__ = ("_s",)

    def __init__(self, ctx: Context, strategy: Strategy) -> None:
        self._s = strategy

    def _all(self) -> list[Order]:
        s = self._s
        names, ctx = s._symbols, s._ctx
        return [Order(s, names[k], row) for k in s._in_view() for row in ctx.working_orders(k)]

    def __iter__(self) -> Iterator[Order]:
        return iter(self._all())

    def __getitem__(self, i: int) -> Order:
        return self._all()[i]

    def __repr__(self) -> str:
        return f"Orders({self._all()!r})"


def _placeholder_in(arg: Any) -> Any:
    """``arg``, or the column it wraps when it is backtesting.py's ``pd.Series(self.data.Close)``
    written in ``init()``: pandas makes of the column (a placeholder there) a Series of one
    object, which can mean nothing but the column as a Series (``self.data.Close.s``)."""
    if isinstance(arg, pd.Series) and arg.dtype == object and len(arg) == 1 \
            and isinstance(arg.iloc[0], EachSymbols):
        return arg.iloc[0]
    return arg


def _call_label(base: str, args: tuple[Any, ...], kwargs: dict[str, Any], source: str | None) -> str:
    """An indicator's label in the report, as backtesting.py labels it: the function and
    its arguments, ``SMA(Close, 10)`` (the column it was given first when not among them)."""
    def shown(value: Any) -> str:
        if isinstance(value, EachSymbols):
            return value.name
        if isinstance(value, (bool, int, float, str, np.number)):
            return repr(value) if isinstance(value, str) else str(value)
        return type(value).__name__

    named = any(isinstance(a, EachSymbols) for a in (*args, *kwargs.values()))
    parts = ([] if named else ["bars" if source is None else source]) + [shown(a) for a in args] \
        + [f"{k}={shown(v)}" for k, v in kwargs.items()]
    return f"{base}({', '.join(parts)})"


def _unchangeable(values: np.ndarray) -> np.ndarray:
    """``values`` as the report keeps them: as they are when nobody may write to them (the
    core reads those where they are too), else a read-only copy."""
    if not values.flags.writeable:
        return values
    kept = values.copy()
    kept.flags.writeable = False
    return kept


def _check_chart_options(call: str = "self.I", **options: Any) -> dict[str, Any]:
    """backtesting.py's chart options of ``self.I`` (and of the engine's indicators,
    ``call`` naming which), refused by name when of the wrong type: ``plot`` and
    ``scatter`` are bools, ``overlay`` a bool or None, ``color`` a colour name (or one per
    line) or None. Returns them."""
    for name in ("plot", "scatter", "overlay"):
        value = options[name]
        if not (isinstance(value, (bool, np.bool_)) or (name == "overlay" and value is None)):
            rule = "True, False or None" if name == "overlay" else "True or False"
            raise ConfigError(f"{call}({name}={value!r}): backtesting.py's chart option is {rule}")
    color = options["color"]
    colors = [color] if isinstance(color, str) else color
    if color is not None and not (isinstance(colors, (list, tuple)) and all(isinstance(c, str) for c in colors)):
        raise ConfigError(f"{call}(color={color!r}): backtesting.py's chart option is a colour name, "
                          "a list of them (one per line) or None")
    return options


def indexed_by_position(index: pd.Index) -> bool:
    """Whether ``index`` is the positions 0, 1, 2, ... (a default index): the one index
    besides times by which values a user hands over per bar (signals, an indicator's
    Series) are read, by position. Any other says something the reader cannot check."""
    return pd.api.types.is_integer_dtype(index.dtype) and index.equals(pd.RangeIndex(len(index)))


def as_utc(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """``index`` with naive times read as UTC (the bars' own zone), aware ones as they are:
    how times handed over per bar (signals, an indicator's Series) meet the bars' times."""
    return index if index.tz is not None else index.tz_localize("UTC")


def _on_bar_times(out: pd.Series, bars: pd.Index, what: str) -> np.ndarray | pd.Series:
    """A Series an indicator's function returned on another index than the bars' times,
    read by its times, or by position when indexed 0, 1, 2, ... (never by position past
    an index that says otherwise: a Series shifted with ``freq=`` or reordered would show
    each bar another bar's value)."""
    index = out.index
    if isinstance(index, pd.DatetimeIndex):
        index = as_utc(index)
        if not index.is_unique:
            raise ConfigError(f"{what} returned a Series holding the time "
                              f"{index[index.duplicated()][0]} more than once")
        rows = index.get_indexer(bars)
        if (rows >= 0).all():
            return out.to_numpy()[rows]
        raise ConfigError(f"{what} returned a Series with no value at the bar "
                          f"{bars[np.argmax(rows < 0)]}: return one value per bar, on the "
                          "bars' times (the index of the Series it was given) or as an array")
    if indexed_by_position(index):
        return out  # by position, as an array would be
    raise ConfigError(f"{what} returned a Series indexed by {index.dtype}, not by the bars' "
                      "times nor by position (0, 1, 2, ...): return it on the index of the "
                      "Series it was given, or as an array")


def _indicator_lines(out: Any, bars: pd.Index, what: str) -> tuple[list[str] | None, list[np.ndarray]]:
    """What an indicator's function returned for one symbol, as its lines (one value per
    bar each) and their labels: None and one line for a single series (an array, a
    Series, a list of numbers); a label per line for several, given as backtesting.py
    takes them: a tuple or list of series, a 2-D array (a row per line, or a column per
    line when its other side is the bars'), or a DataFrame (a column per line)."""
    if isinstance(out, pd.DataFrame):
        return [str(c) for c in out.columns], [_indicator_line(out[c], bars, f"{what} column {c!r}")
                                               for c in out.columns]
    if isinstance(out, (tuple, list)) and out and all(np.ndim(x) >= 1 for x in out):
        return [str(j) for j in range(len(out))], [_indicator_line(x, bars, f"{what} line {j}")
                                                   for j, x in enumerate(out)]
    if not isinstance(out, pd.Series):
        array = np.asarray(out, dtype=np.float64)
        if array.ndim == 2:
            n = len(bars)
            if array.shape[1] == n and array.shape[0] != n:
                rows = array
            elif array.shape[0] == n and array.shape[1] != n:
                rows = array.T  # a column per line, as np.column_stack or df.to_numpy() give
            else:
                raise ConfigError(f"{what} returned shape {array.shape}: expected ({n},) for one "
                                  f"line, or (lines, {n}) or ({n}, lines) for several"
                                  + (" (with as many lines as bars, say which: return a tuple of "
                                     "lines)" if array.shape == (n, n) else ""))
            return [str(j) for j in range(len(rows))], [np.ascontiguousarray(r) for r in rows]
    return None, [_indicator_line(out, bars, what)]


def _indicator_line(out: Any, bars: pd.Index, what: str) -> np.ndarray:
    """One line of an indicator: one float per bar, read by the bars' times when it is a
    Series on other times (see `_on_bar_times`)."""
    if isinstance(out, pd.Series) and not out.index.equals(bars):
        out = _on_bar_times(out, bars, what)
    out = np.asarray(out, dtype=np.float64)
    if out.ndim != 1 or len(out) != len(bars):
        raise ConfigError(f"{what} returned shape {out.shape}, expected ({len(bars)},)")
    return np.ascontiguousarray(out)


def _in_candles(bars: pd.Series | pd.DataFrame, history: dict[str, np.ndarray],
                agg: Any) -> pd.Series | pd.DataFrame:
    """A symbol's column (or bars) by bar, as its completed candles in ``history`` (the
    core's ``candle_history``) have it, indexed by candle start: with ``agg`` None the
    candles' own open, high, low, close and volume, and the last value in each candle of
    any other column; else pandas' ``agg`` of each candle's bars."""
    n = len(history["ts"])
    index = _utc_index(history["ts"]).rename("time")
    joined = history["joined"]
    inside = (joined >= 0) & (joined < n)  # the final candle never completed: left out

    def grouped(values: pd.Series | pd.DataFrame, how: Any) -> pd.Series | pd.DataFrame:
        out = values[inside].groupby(joined[inside]).agg(how).reindex(range(n))
        out.index = index
        return out

    if agg is not None:
        return grouped(bars, agg)

    def column(values: pd.Series) -> pd.Series:
        key = _BAR_COLUMNS.get(str(values.name), values.name)
        if key in _BAR_COLUMNS.values():  # open first, high max, low min, close last, volume sum
            return pd.Series(history[key], index=index, name=values.name)
        return grouped(values, "last")

    if isinstance(bars, pd.DataFrame):
        return pd.DataFrame({c: column(bars[c]) for c in bars.columns}, index=index)
    return column(bars)


def _revealed(line: np.ndarray, completed: np.ndarray) -> np.ndarray:
    """A value per candle as a value per bar: at each bar, the value of the latest candle
    completed by then (``completed`` of them), NaN before the first."""
    return np.ascontiguousarray(np.concatenate(([np.nan], line))[completed])


def _count_lines(labels: list[str] | None, lines: list[np.ndarray]) -> str:
    return "one series" if labels is None else f"{len(lines)} lines"


def _line_names(name: Any, base: str, labels: list[str]) -> list[str]:
    """The names of an indicator's lines: ``name`` when it names each (a list, as
    backtesting.py takes it), else ``name`` (or the function's) with each line's label."""
    if isinstance(name, (list, tuple)):
        if len(name) != len(labels) or not all(isinstance(x, str) for x in name):
            raise ConfigError(f"self.I(name={name!r}): the indicator has {len(labels)} lines; "
                              f"name each with a string, or give one name for all")
        return list(name)
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"self.I(name={name!r}): a string, or a list naming each line")
    return [f"{name or base}[{label}]" for label in labels]


class Strategy(StrategyBase):
    """Base class of trading strategies.

    Subclass it, declare parameters as class attributes, override ``init`` and ``next``
    (per symbol) and/or ``on_tick`` (per tick). A strategy is constructed by
    :class:`~tickstep.Backtest`; never instantiate it yourself.

    Attributes
    ----------
    position : Position
        The running symbol's position inside ``next(symbol)`` (truthy when not flat,
        ``.size``, ``.close()``, ...); ``self.position("AAPL")`` for a named symbol, as
        ``on_tick`` needs. One object for the whole run (a plain attribute: reading it
        costs nothing; assigning to it is refused, as it would hide the engine's), see
        :class:`Position`.
    data : Bars
        The running symbol's bars up to the current tick (``self.data.close``,
        backtesting.py's ``self.data.Close[-1]``); ``self.data("AAPL", count=10)`` for
        any symbol's last bars. In ``init()`` its columns are each symbol's whole column,
        for ``self.I(func, self.data.Close, ...)``. See `Bars`.

    Examples
    --------
    >>> class BuyTheDip(Strategy):
    ...     drop = 0.02
    ...     def next(self, symbol):
    ...         bar = self.bar()
    ...         if not self.position and bar.close < bar.open * (1 - self.drop):
    ...             self.buy(size=10, tp=bar.close * 1.03, sl=bar.close * 0.97)
    """

    #: Parameters found on the class (filled in per subclass).
    _params: ClassVar[dict[str, Any]] = {}
    #: Their declared types (found on first check: annotations may name later classes).
    _param_types: ClassVar[dict[str, Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        params: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass is object or not issubclass(klass, Strategy) or klass is Strategy:
                continue
            for name, value in vars(klass).items():
                if name.startswith("_") or callable(value) or isinstance(value, (property, classmethod, staticmethod)):
                    continue
                params[name] = value
        cls._params = params
        cls._param_types = None

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """The strategy's parameters and their defaults."""
        return dict(cls._params)

    @classmethod
    def check_parameters(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """Check ``params`` and return the values to run with.

        Names that are not parameters of this strategy are refused with a hint; values
        are checked against the parameter's declared type -- its annotation, or else the
        type of its default (see `tickstep.parameters`): an int parameter given ``2.7``
        or a bool parameter given ``"no"`` is a `~tickstep.ParameterError` (a ``TypeError``)
        naming the parameter.
        """
        known = list(cls._params)
        types = cls._param_types
        if types is None:
            types = cls._param_types = declared_types(cls, cls._params)
        checked = {}
        for name, value in params.items():
            if name not in cls._params:
                listing = ", ".join(known) if known else "none"
                raise ParameterError(
                    f"{cls.__name__} has no parameter {name!r}{did_you_mean(name, known)} "
                    f"(parameters: {listing})"
                )
            declared = types.get(name)
            checked[name] = value if declared is None else check_value(cls.__name__, name, value, declared)
        return checked

    def __init__(self, ctx: Context, symbols: list[str], params: dict[str, Any], sizer: Sizer,
                 market: Any = None, metadata: pd.DataFrame | None = None, *,
                 records: Mapping[str, Any] | None = None, calendar: str = "UTC") -> None:
        params = type(self).check_parameters(params)
        #: History views by (symbol, count) as asked for; each one reads live.
        self._histories: dict[tuple[Any, Any], History] = {}
        # One object for the run, as self.position; unless the class has a `data` of its
        # own (a parameter, a method), which stays its own as it hid the method this was.
        if not hasattr(type(self), "data"):
            self.data = Bars(ctx, -1, None)
            self.data._serve(self._histories, self._history)
        if not hasattr(type(self), "orders"):  # the same for self.orders
            self.orders = Orders(ctx, self)
        for name, value in params.items():
            setattr(self, name, value)  # a parameter named "position" is refused here
        self._ctx = ctx
        # Orders and reads at many bars (buy, sell, close, price, position_size) are the
        # core base's methods: one call into the core, no Python function in between.
        self._adopt_context(ctx)
        self._symbols = list(symbols)
        self._index = {s: i for i, s in enumerate(symbols)}
        # `trades` as last read, per symbol: the core's key of its open trades, and them.
        self._open_trades: list[tuple[int, tuple[Trade, ...]]] = [(0, ()) for _ in self._symbols]
        #: `closed_trades` as built so far: all, and by symbol.
        self._closed_trades: list[Trade] = []
        self._closed_by_symbol: list[list[Trade]] = [[] for _ in self._symbols]
        # `closed_trades` as last handed out, by symbol (-1: all), until another closes:
        # a read every bar copies nothing (a tuple of all so far was O(trades) a read).
        self._closed_views: dict[int, tuple[Trade, ...]] = {}
        # The symbols in the order the engine visits them (the order the user gave them).
        order = getattr(market, "call_order", None)
        self._call_order = list(order) if order is not None else list(range(len(self._symbols)))
        self._sizer = sizer
        # Orders without a size are sized by the core: FixedSize and PercentOfEquity
        # computed there, any other sizer called with a SizingRequest it makes.
        ctx.use_sizer(sizer, SizingRequest, native_sizing(sizer))
        self._market = market
        # Extra columns (beside OHLCV) by name -> the core's index, for self.value().
        self._column_index = {c: k for k, c in enumerate(getattr(market, "columns", ()))}
        # Reusable handles: nothing is allocated per bar. The running symbol's position
        # is a plain attribute, the cheapest read there is (see the class docstring).
        self._symbol_positions: list[Position | None] = [None] * len(self._symbols)
        # The one store of self.position: assigning to it later is refused (StrategyBase).
        self._adopt_position(Position(ctx, -1, self, kept=self._symbol_positions))
        # Working orders of order_target/rebalance by symbol index: a new target replaces them.
        self._target_orders: dict[int, int] = {}
        #: Symbol metadata (sector, exchange, timezone, ...) indexed by symbol, if any.
        self.metadata = metadata
        # Analysis tables with a read cursor per (table, symbol): see records().
        self._record_book = RecordBook(records)
        # The backtest's timezone= (whose calendar days are its trading days): the days,
        # weeks and months of tickstep.lib.resample_apply.
        self._calendar = calendar
        # Bar times per symbol index as self.I gives them (made when first asked for, kept
        # with the market for every run on it), and the columns self.I hands out views of
        # (see _full_series). Attributes like the others: reading the instance's __dict__
        # would make the interpreter's attribute reads of this strategy (self.fast, ...)
        # slower for the run.
        self._full_indexes = _bar_times(market)
        self._full_columns: dict[tuple[int, str], pd.Series] = {}
        #: self.I's lines to draw in the report (its plot=True ones), in declaration order.
        self._charted: list[IndicatorLine | EngineLine] = []

    # ---- hooks ---------------------------------------------------------------------------

    def _hooks(self) -> dict[str, Any]:
        """What the engine calls, as ``Engine.run`` takes it: ``init`` (with
        ``self.data``'s columns standing for each symbol's, for ``self.I``), ``next``
        (None when not overridden) and whether it takes the symbol (one written as
        backtesting.py's ``next(self)`` is called without it), ``on_tick`` (None when not
        overridden)."""
        cls = type(self)

        def init() -> None:
            bars = self.data
            if type(bars) is not Bars:  # the class's own `data` (a parameter, a method)
                self.init()
                return
            self.data = _BarsAtInit(bars, self._column_index)
            try:
                self.init()
            finally:
                self.data = bars

        step = self.next if cls.next is not Strategy.next else None
        return {
            "init": init,
            "next": step,
            "on_tick": self.on_tick if cls.on_tick is not Strategy.on_tick else None,
            "next_takes_symbol": step is None or not _takes_no_symbol(step),
        }

    def init(self) -> None:
        """Declare indicators and state. Runs once, before the first tick."""

    def next(self, symbol: str) -> None:
        """Called for each symbol with a bar at this tick (only if overridden)."""

    def on_tick(self) -> None:
        """Called once per tick after every ``next`` (only if overridden)."""

    # ---- indicators and timeframes (declare in init) ----------------------------------------

    def timeframe(
        self,
        period: str | pd.Timedelta,
        *,
        align: str = "utc",
        timezone: str | None = None,
        session: tuple[str, str] | None = None,
        origin: Any = None,
        history: int = 500,
    ) -> Timeframe:
        """Declare higher-timeframe candles, e.g. ``self.timeframe("4h")``.

        Parameters
        ----------
        period : "5m", "15m", "1h", "4h", "1d", ... (a multiple of each symbol's bar spacing)
        align : "utc" (clock boundaries counted from ``origin``, default the epoch) or
            "exchange" (each symbol's session dates in ``timezone``; ``session`` local
            open/close times restrict candles to regular hours).
        history : how many completed candles are kept per symbol (memory stays bounded).

        Notes
        -----
        When a candle completes is decided per symbol from its own bars up to the current
        tick: nothing later in the data, nothing from other symbols. A bar starting at
        ``ts`` is taken to end at ``ts + spacing``, ``spacing`` being the greatest common
        divisor of the gaps between the symbol's bars so far, read on the clock the bars
        keep: UTC, or the wall clock of the backtest's ``timezone=`` when that gives the
        coarser spacing (daily bars at local midnight stay a day apart across a
        daylight-saving change; a bar on local time ends a spacing later on that clock).
        The candle completes, and
        ``last()``, ``count()`` and the indicators on this timeframe change,

        - at the tick of the bar that ends at or after the candle's end (with 5-minute
          bars, a 15-minute candle of 00:00 completes at the 00:10 bar), or
        - when the spacing is not known yet (the symbol's first bar) or the bucket's
          last bars are missing: at the tick of the symbol's first bar of a later
          bucket (or its first bar outside the session at or after the candle's end).

        In between, ``candles(forming=True)`` shows the forming candle so far. Missing
        bars never make a candle complete early (the gcd is at most the smallest gap).
        A completed candle is never changed: if the symbol's bars turn out finer than
        every gap before (e.g. data switching from 5-minute to 1-minute bars), a bar
        arriving for an already completed bucket starts a new candle of that bucket,
        labelled by the bar's own time.
        """
        ns = self._period_ns(period, "period")
        name = str(period)
        if align == "utc":
            origin_ns = 0 if origin is None else int(pd.Timestamp(origin).value)
            tf = self._ctx.add_clock_timeframe(ns, origin_ns, history)
        elif align == "exchange":
            tz = timezone or self._timezone_of_data()
            spec = (ns, tz, session)
            tf = self._ctx.add_given_timeframe(*_exchange_buckets(self._market, spec), history)
            self._exchange_timeframes = (*self._exchange_timeframes, (tf, spec))
            name = f"{period}@{tz}"
        else:
            raise ValueError(f"align must be 'utc' or 'exchange', got {align!r}")
        return Timeframe(self._ctx, tf, ns, name)

    def _given_buckets(self, market: Any) -> list[tuple[int, list[np.ndarray], list[np.ndarray]]]:
        """The buckets of each exchange-aligned timeframe for ``market``'s bars (a streamed
        run's next window): (timeframe id, labels per symbol, ends per symbol)."""
        return [(tf, *_exchange_buckets(market, spec)) for tf, spec in self._exchange_timeframes]

    def _period_ns(self, period: Any, what: str) -> int:
        """A timeframe's period in ns (`timeframe_ns`'s grammar, refused as ``what``),
        refused when it is not a multiple of some symbol's bar spacing."""
        ns = timeframe_ns(period, name=what)
        for i, symbol in enumerate(self._symbols):
            spacing = self._bar_spacing(i)
            if spacing and ns % spacing and self._streamed_spacing is not None:
                # A streamed run's market at init() is its first window, whose gaps' gcd
                # is a multiple of the whole run's: ask the stream for the whole run's.
                spacing = self._streamed_spacing(i)
            if spacing and ns % spacing:
                raise ValueError(f"timeframe {period!r} is not a multiple of {symbol}'s bar spacing "
                                 f"({pd.Timedelta(spacing)})")
        return ns

    def indicator(self, kind: str, n: int, source: str = "close", timeframe: Timeframe | None = None,
                  lookback: int = 2, **chart: Any) -> Indicator:
        """Declare a rolling statistic: kind in sum, mean, min, max, std, ema, rsi, atr.

        ``lookback`` is how many of its values ``next`` can read, the latest included:
        ``[-1]`` (``.value``) and ``[-2]`` (``.prev``) by default; with ``lookback=5``
        also ``[-3]`` to ``[-5]`` and the slice ``[-5:]`` (on a timeframe, values of the
        candles before). Every engine indicator (this, `sma`, `ema`, ...) takes it, and
        ``self.I``'s chart options as keywords: ``plot=False`` keeps it out of the plot
        and report, ``overlay``, ``color`` and ``scatter`` draw it as `I` says."""
        return self._rolling(kind, kind, n, source, timeframe, chart, lookback)

    def _rolling(self, call: str, kind: str, n: int, source: str, timeframe: Timeframe | None,
                 chart: dict[str, Any], lookback: int = 2) -> Indicator:
        unknown = sorted(set(chart) - set(_ENGINE_CHART))
        if unknown:
            raise ConfigError(f"{call}({unknown[0]}=...): not an option; besides n, source, timeframe "
                              f"and lookback an indicator takes the chart options {', '.join(_ENGINE_CHART)}"
                              f"{did_you_mean(unknown[0], [*_ENGINE_CHART, 'lookback'])}")
        chart = _check_chart_options(call, **(_ENGINE_CHART | chart))
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= _MAX_WINDOW:
            raise ConfigError(f"{call}(n={n!r}): n, the window in bars (or candles), must be a whole "
                             f"number from 1 to {_MAX_WINDOW:,}")
        if isinstance(lookback, bool) or not isinstance(lookback, (int, np.integer)) \
                or not 2 <= lookback <= _MAX_WINDOW:
            raise ConfigError(f"{call}(lookback={lookback!r}): how many values next reads, the latest "
                              f"included ([-1] to [-lookback]), must be a whole number from 2 to "
                              f"{_MAX_WINDOW:,}")
        tf = None if timeframe is None else timeframe.id
        try:
            sid = self._ctx.add_rolling(kind, int(n), source, tf, int(lookback))
        except ValueError as err:  # the core's rule (e.g. std needs n >= 2), named as called
            raise type(err)(f"{call}(n={n!r}): {err}") from None
        where = "" if timeframe is None else f"@{timeframe.name}"
        # Kept for the report under its trader's name (SMA(close, 10), ATR(14)@1d).
        label = _CHART_NAMES.get(call, call.upper())
        shown = f"{label}({n})" if kind == "atr" else f"{label}({source}, {n})"
        if chart["plot"]:
            color = chart["color"][0] if isinstance(chart["color"], (list, tuple)) else chart["color"]
            self._charted.append(EngineLine(self._unique_chart_name(shown + where), sid, chart["overlay"],
                                            color, chart["scatter"]))
        return Indicator(self._ctx, sid, f"{kind}({n}, {source}){where}")

    def sma(self, n: int, source: str = "close", timeframe: Timeframe | None = None,
            lookback: int = 2, **chart: Any) -> Indicator:
        """Simple moving average over ``n`` bars (or completed candles)."""
        return self._rolling("sma", "mean", n, source, timeframe, chart, lookback)

    def ema(self, n: int, source: str = "close", timeframe: Timeframe | None = None,
            lookback: int = 2, **chart: Any) -> Indicator:
        """Exponential moving average: ``ewm(span=n, adjust=False)``, ready from the n-th value."""
        return self._rolling("ema", "ema", n, source, timeframe, chart, lookback)

    def rsi(self, n: int = 14, source: str = "close", timeframe: Timeframe | None = None,
            lookback: int = 2, **chart: Any) -> Indicator:
        """Relative strength index over ``n`` changes, Wilder's smoothing."""
        return self._rolling("rsi", "rsi", n, source, timeframe, chart, lookback)

    def atr(self, n: int = 14, timeframe: Timeframe | None = None, lookback: int = 2,
            **chart: Any) -> Indicator:
        """Average true range over ``n`` bars (or completed candles), Wilder's smoothing."""
        return self._rolling("atr", "atr", n, "close", timeframe, chart, lookback)

    def rolling_std(self, n: int, source: str = "close", timeframe: Timeframe | None = None,
                    lookback: int = 2, **chart: Any) -> Indicator:
        """Rolling standard deviation over ``n`` values (ddof=1, as pandas)."""
        return self._rolling("rolling_std", "std", n, source, timeframe, chart, lookback)

    def highest(self, n: int, source: str = "high", timeframe: Timeframe | None = None,
                lookback: int = 2, **chart: Any) -> Indicator:
        """Highest ``source`` (default the high) of the last ``n`` bars or candles."""
        return self._rolling("highest", "max", n, source, timeframe, chart, lookback)

    def lowest(self, n: int, source: str = "low", timeframe: Timeframe | None = None,
               lookback: int = 2, **chart: Any) -> Indicator:
        """Lowest ``source`` (default the low) of the last ``n`` bars or candles."""
        return self._rolling("lowest", "min", n, source, timeframe, chart, lookback)

    def crossing(self, indicator: Indicator, other: Indicator | float) -> Crossing:
        """Declare the crossing of ``indicator`` with ``other`` (another indicator or a
        level), read in one: its ``value`` is ``1`` on the update ``indicator`` crossed
        above ``other``, ``-1`` on the one it crossed below, else ``0`` (see `Crossing`).

        >>> def init(self):                                      # doctest: +SKIP
        ...     self.cross = self.crossing(self.sma(10), self.sma(30))
        ... def next(self, symbol):
        ...     if self.cross.value == 1:   # a golden cross at this bar
        ...         self.buy()
        """
        if not isinstance(indicator, Indicator):
            raise TypeError(f"crossing(indicator={indicator!r}): give an indicator declared in init() "
                            "(self.sma(10), self.I(...), ...)")
        if isinstance(other, Indicator):
            name = f"{indicator.name} x {other.name}"
        elif isinstance(other, (int, float, np.integer, np.floating)) and not isinstance(other, bool) \
                and math.isfinite(other):
            name = f"{indicator.name} x {float(other):g}"
            other = float(other)
        else:
            raise TypeError(f"crossing(other={other!r}): give another indicator or a finite level")
        return Crossing(self._ctx, indicator, other, name)

    def I(self, func: Any, *args: Any, source: str | None = "close", name: str | list[str] | None = None,  # noqa: E743, N802
          timeframe: Timeframe | str | timedelta | None = None,
          plot: bool = True, overlay: bool | None = None, color: Any = None, scatter: bool = False,
          **kwargs: Any) -> Indicator | tuple[Indicator, ...]:
        """A vectorised indicator computed once over each symbol's whole history and
        revealed bar by bar: ``func(series, *args, **kwargs)`` gets the symbol's ``source``
        column as a pandas Series by time (a price, volume or an extra column; the whole
        DataFrame of OHLCV and the symbol's extra columns when ``source`` is None) and must
        return one value per bar: an array, or a Series, read by its times (it must hold
        every bar's) or by position when indexed 0, 1, 2, .... At a tick only values up to that tick's
        bar are readable, so the engine never shows it ahead of its bar (``func`` itself
        must not shift data backwards). A read-only result (pandas' are) is read where it
        is, not copied; any other is copied here, so changing it later changes nothing.

        A function may return several lines, as backtesting.py's may (bands, a MACD and
        its signal): a tuple or list of series, a 2-D array (a row per line, or a column
        per line) or a DataFrame (a column per line). ``self.I`` then returns a tuple of
        indicators, one per line (``upper, lower = self.I(bands, 20)``), named by ``name``
        (a list names each line) or the function, with the line's number or column.

        backtesting.py's form names the columns among the arguments instead:
        ``self.I(SMA, self.data.Close, 10)`` calls ``SMA(closes, 10)`` with each symbol's
        closes, and ``self.I(f, self.data.High, self.data.Low, n)`` hands over two columns
        (``source`` is then not used: giving another one is refused). As there,
        ``self.data.Close.s`` is the column as a Series and ``self.data.df`` the symbol's
        whole bars as a DataFrame (``Open`` ... ``Volume`` and its extra columns).

        With ``timeframe`` (a `Timeframe` from `timeframe`, or a period such as ``"1d"``,
        clock-aligned from the epoch as `timeframe`'s are, declaring no candles of the
        engine's), ``func`` gets each symbol's completed candles on it instead of its bars
        (their ``source`` column, or backtesting.py's columns among the arguments: each a
        Series by candle start; open, high, low, close and volume as the candles have
        them, any other column its last value in the candle) and returns one value per
        candle. At each bar the indicator reads the value of the latest candle completed
        by that bar, by the rule `timeframe`'s candles complete by (NaN before the
        first): ``self.I(SMA, 10, timeframe="1d")`` is a 10-day mean seen intraday, as
        ``self.sma(10, timeframe=...)`` is, and ``[-2]`` is its value at the bar before.
        (backtesting.py's ``resample_apply`` is `tickstep.lib.resample_apply`.)

        backtesting.py's chart options ``plot``, ``overlay``, ``color`` and ``scatter``
        are taken as it takes them, not handed to ``func``: with ``plot`` (the default)
        the lines are kept in the result (`Result.indicators`, each symbol's values as
        ``next`` read them) and drawn by its plot and report, over the prices when
        ``overlay`` (None: when most values are within 40% of their bar's close), else in a pane
        below them, in ``color`` (one, or one per line), as points with ``scatter``."""
        chart = _check_chart_options(plot=plot, overlay=overlay, color=color, scatter=scatter)
        if timeframe is not None:
            chart["where"] = f"@{timeframe.name if isinstance(timeframe, Timeframe) else timeframe}"
        candles = None if timeframe is None else self._buckets_of(timeframe)
        return self._declare_series(func, args, kwargs, source=source, name=name, candles=candles,
                                    chart=chart)

    def _buckets_of(self, timeframe: Any) -> Any:
        """``self.I``'s ``timeframe=`` as what the core's ``candle_history`` takes for
        symbol ``i``: a declared timeframe's id, or clock buckets of a period."""
        if isinstance(timeframe, Timeframe):
            tf_id = timeframe.id
            return lambda i: {"timeframe": tf_id}
        ns = self._period_ns(timeframe, "self.I(timeframe=)")
        return lambda i: {"period": ns, "origin": 0}

    def _declare_series(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], *,
                        source: str | None, name: Any, candles: Any = None,
                        agg: Any = None, chart: dict[str, Any] | None = None,
                        ) -> Indicator | tuple[Indicator, ...]:
        """`I`'s work (see there): ``candles``, when given, maps a symbol's index to the
        buckets ``func`` sees its candles in (`_buckets_of`); ``agg`` is how a candle's
        value of a column is made from its bars (pandas' ``agg``; None: the candle's own
        prices, the last value of other columns); ``chart``, the checked chart options
        (`_check_chart_options`): with ``plot`` true the lines are kept for the report."""
        self._refuse_streamed("self.I (func is called once with each symbol's whole series; "
                              "computed window by window its values could differ, and "
                              "nothing shows that func reads no later bar)")
        args = tuple(_placeholder_in(a) for a in args)
        kwargs = {k: _placeholder_in(v) for k, v in kwargs.items()}
        named = [a for a in (*args, *kwargs.values()) if isinstance(a, EachSymbols)]
        if named and source != "close":
            raise ConfigError(f"self.I(source={source!r}) with {named[0]!r} among the arguments: "
                              "name the columns one way, as arguments or by source=")
        what = getattr(func, "__name__", func)
        values: list[tuple[list[str] | None, list[np.ndarray]]] = []  # per symbol, its lines
        for i, sym in enumerate(self._symbols):
            history = None if candles is None else self._ctx.candle_history(i, **candles(i))
            if named:
                each = {id(a): self._given(i, sym, a.column, history, agg) for a in named}
                call_args = [each[id(a)] if isinstance(a, EachSymbols) else a for a in args]
                call_kwargs = {k: each[id(v)] if isinstance(v, EachSymbols) else v for k, v in kwargs.items()}
                index = each[id(named[0])].index
                out = func(*call_args, **call_kwargs)
            else:
                arg = self._given(i, sym, source, history, agg)
                index = arg.index
                out = func(arg, *args, **kwargs)
            labels, lines = _indicator_lines(out, index, f"{sym}: indicator {what!r}")
            if history is not None:
                lines = [_revealed(line, history["completed"]) for line in lines]
            if values and _count_lines(labels, lines) != _count_lines(*values[0]):
                raise ConfigError(f"{sym}: indicator {what!r} returned {_count_lines(labels, lines)}, "
                                  f"for {self._symbols[0]} {_count_lines(*values[0])}: every symbol's "
                                  "indicator has the same lines")
            values.append((labels, lines))
        base = getattr(func, "__name__", "I")
        labels = values[0][0]
        if labels is None:
            if name is not None and not isinstance(name, str):
                raise ConfigError(f"self.I(name={name!r}): one name for an indicator of one line")
            names = [name or base]
        else:
            names = _line_names(name, base, labels)
        per_line = [[lines[j] for _, lines in values] for j in range(len(names))]
        made = tuple(Indicator(self._ctx, self._ctx.add_series(line), names[j])
                     for j, line in enumerate(per_line))
        if chart is not None and chart["plot"]:
            call = name if isinstance(name, str) else _call_label(base, args, kwargs, source) \
                + chart.get("where", "")
            shown = [call] if labels is None else names if isinstance(name, (list, tuple)) \
                else [f"{call} {label}" for label in labels]
            self._chart_lines(shown, per_line, chart)
        return made[0] if labels is None else made

    def _chart_lines(self, names: list[str], lines: list[list[np.ndarray]], chart: dict[str, Any]) -> None:
        """Keep an indicator's ``lines`` (per line, per symbol) for the report, each under
        its name in ``names`` (numbered when an earlier line has it), with the colours of
        ``chart`` (one for all, or one per line in turn)."""
        colors = list(chart["color"]) if isinstance(chart["color"], (list, tuple)) else [chart["color"]]
        colors = colors or [None]
        for j, line in enumerate(lines):
            self._charted.append(IndicatorLine(self._unique_chart_name(names[j]), chart["overlay"],
                                               colors[j % len(colors)], chart["scatter"],
                                               [_unchangeable(v) for v in line]))

    def _unique_chart_name(self, name: str) -> str:
        """``name``, numbered when a line kept before has it (``SMA(Close, 10) (2)``)."""
        taken = {x.name for x in self._charted}
        label, k = name, 2
        while label in taken:
            label, k = f"{name} ({k})", k + 1
        return label

    def _given(self, i: int, sym: str, source: str | None, history: dict[str, np.ndarray] | None,
               agg: Any) -> pd.Series | pd.DataFrame:
        """What ``self.I`` hands its function for symbol ``i`` (``sym``): its column
        ``source`` (its whole bars when None), by bar, or in the candles of ``history``."""
        bars = self._full_frame(i) if source is None else self._source(i, sym, source)
        return bars if history is None else _in_candles(bars, history, agg)

    def _source(self, i: int, sym: str, source: str) -> pd.Series | pd.DataFrame:
        """Symbol ``i``'s (``sym``'s) whole column ``source`` for ``self.I``, refused
        naming the symbol and its columns when it has none so named."""
        if source == _WHOLE_FRAME:  # self.data.df: the bars, with backtesting.py's names
            return self._full_frame(i).rename(columns={v: k for k, v in _BAR_COLUMNS.items()})
        names = self._frame_columns(i)
        if source not in names:
            raise KeyError(f"self.I: {sym} has no column {source!r} (columns: {', '.join(names)})")
        return self._full_series(i, source)

    # The two below are the class's until set: an instance attribute more for every
    # strategy would slow every attribute read of some (CPython keeps at most 30 in an
    # instance's fast layout, and the base class already sets about two dozen).
    #: Set on a streamed run's instance (whose market holds one window, not every bar):
    #: the bar spacing of symbol ``i`` over the whole stream (`BarStream.bar_spacing`).
    _streamed_spacing: Callable[[int], int] | None = None
    #: The exchange-aligned timeframes declared: (timeframe id, (period ns, timezone,
    #: session)), whose buckets a streamed run computes again for each window's bars.
    _exchange_timeframes: tuple[tuple[int, tuple[int, str, Any]], ...] = ()

    @property
    def _streamed(self) -> bool:
        """Whether this run streams its bars."""
        return self._streamed_spacing is not None

    def _refuse_streamed(self, what: str) -> None:
        if self._streamed:
            raise ConfigError(f"{what} needs every bar in memory at init(); this backtest streams "
                              "its bars (stream=): run it without stream=, use the rolling "
                              "indicators (self.sma, self.ema, ...) and timeframes (clock- or "
                              "exchange-aligned), or store precomputed values as an extra column "
                              "of the bars (read with self.value or source=), which streams")

    def _bar_spacing(self, i: int) -> int:
        """The gcd of the gaps between symbol ``i``'s bars (0 with fewer than two): a
        check of a declared period, never used to decide when a candle completes."""
        ts = self._all_ts(i)
        return int(np.gcd.reduce(np.diff(ts))) if len(ts) > 1 else 0

    def _timezone_of_data(self) -> str:
        meta = getattr(self, "metadata", None)
        if meta is not None and "timezone" in getattr(meta, "columns", ()):
            zones = meta["timezone"].dropna().unique()
            if len(zones) == 1:
                return str(zones[0])
        raise ValueError("align='exchange' needs timezone=... (no single timezone in the symbol metadata)")

    def _all_ts(self, i: int) -> np.ndarray:
        return self._market.column(i, "ts", 0, 1 << 62)

    def _full_index(self, i: int) -> pd.DatetimeIndex:
        """Symbol ``i``'s bar times, made once per market (``self.I`` reuses it; an index
        is immutable, and each Series handed out has its own view of it)."""
        cache = self._full_indexes
        index = cache.get(i)
        if index is None:
            index = cache[i] = _utc_index(self._all_ts(i)).rename("time")
        return index

    def _full_series(self, i: int, source: str) -> pd.Series:
        """Column ``source`` of symbol ``i``'s whole history as a Series by time, sharing
        the core's memory: a shallow copy of one Series per column and run, so pandas
        copies the values (copy-on-write) only if the function writes to them, and each
        call gets a Series (and index) of its own."""
        key = (i, source)
        column = self._full_columns.get(key)
        if column is None:
            values = self._market.column(i, source, 0, 1 << 62)
            column = self._full_columns[key] = pd.Series(values, index=self._full_index(i), name=source, copy=False)
        return column.copy(deep=False)

    def _full_frame(self, i: int) -> pd.DataFrame:
        """Symbol ``i``'s whole history: OHLCV and the extra columns it has."""
        m = self._market
        cols = {c: m.column(i, c, 0, 1 << 62) for c in self._frame_columns(i)}
        return pd.DataFrame(cols, index=self._full_index(i))

    def _frame_columns(self, i: int) -> list[str]:
        """OHLCV and the extra columns symbol ``i`` has."""
        m = self._market
        return ["open", "high", "low", "close", "volume"] + [c for c in self._column_index if m.has_column(i, c)]

    # ---- symbols and time ----------------------------------------------------------------

    def _sym(self, symbol: str | None) -> int:
        if symbol is None:
            return -1
        try:
            return self._index[symbol]
        except (KeyError, TypeError):
            raise UnknownSymbolError(
                f"unknown symbol {symbol!r}{did_you_mean(str(symbol), self._symbols)}"
            ) from None

    @property
    def symbols(self) -> list[str]:
        """All symbols of the backtest, in the order ``next`` sees them: the order they
        were given in (a ``symbols=`` list, a mapping's keys, first appearance in a long
        table; a store's symbols without a list: name order)."""
        names = self._symbols
        return [names[i] for i in self._call_order]

    @property
    def now(self) -> int:
        """Current tick time as int nanoseconds since the epoch, UTC."""
        return self._ctx.now()

    @property
    def time(self) -> pd.Timestamp:
        """Current tick time as a UTC timestamp."""
        return pd.Timestamp(self._ctx.now(), tz="UTC")

    def has_data(self, symbol: str) -> bool:
        """Whether ``symbol`` has a bar at this tick."""
        return self._ctx.has_data(symbol)

    def active_symbols(self) -> list[str]:
        """Symbols with a bar at this tick, in the order ``next`` sees them."""
        names = self._symbols
        return [names[i] for i in self._ctx.active()]

    # ---- prices --------------------------------------------------------------------------

    price = StrategyBase.price

    def bar(self, symbol: str | None = None) -> Bar | None:
        """Latest bar as a named tuple (time, open, high, low, close, volume); None
        before the symbol's first bar."""
        return self._ctx.bar(symbol)

    def _history(self, symbol: str | None, count: int | None) -> History:
        """``self.data(symbol, count)`` the first time (see `Bars`): the view, checked,
        made and kept in ``self._histories`` by ``(symbol, count)``."""
        index = -1 if symbol is None else self._sym(symbol)
        if count is not None and (isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0):
            raise ConfigError(f"data(count={count!r}): count must be a whole number of bars >= 0")
        history = History(self._ctx, index, None if count is None else int(count))
        if len(self._histories) >= _MAX_HISTORIES:  # bounded, whatever counts a strategy asks for
            self._histories.clear()
        self._histories[(symbol, count)] = history
        return history

    @property
    def columns(self) -> list[str]:
        """Names of the data's extra columns beside OHLCV (a signal, a P/E, ...)."""
        return list(self._column_index)

    def value(self, column: str, symbol: str | None = None) -> float:
        """The value of ``column`` at ``symbol``'s latest bar (the current symbol inside
        ``next``): an extra column such as ``"pe"``, or ``open ... volume``. Like
        `price`, never a later bar's value; NaN before the symbol's first bar (and where
        the data has a gap the door was told to allow)."""
        k = self._column_index.get(column)
        if k is not None:
            return self._ctx.value(k, symbol)
        return self._bar_value(column, symbol)

    def _bar_value(self, column: str, symbol: str | None) -> float:
        try:
            field = _Bar._fields.index(column)
        except ValueError:
            known = [*_Bar._fields[1:], *self._column_index]
            raise KeyError(
                f"unknown column {column!r}{did_you_mean(str(column), known)} (columns: "
                f"{', '.join(known)})"
            ) from None
        raw = self._ctx.bar(symbol)
        return math.nan if raw is None or field == 0 else float(raw[field])

    # ---- analysis tables (records) ---------------------------------------------------------

    def records(self, table: str, symbol: str | None = None) -> RecordSet:
        """The record set of ``symbol`` (the running one in ``next``) in analysis table
        ``table``, at the latest key time at or before now: never a record stamped after
        the current tick; empty (``len 0``, ``.time`` None) before the symbol's first key.

        Fields are read-only numpy columns (``zones.level``), ``len(zones)`` counts the
        records, ``for z in zones`` gives named tuples, ``zones.frame()`` a DataFrame.
        Tables come from ``Backtest(..., records=[...])``; see `tickstep.data.RecordSet`.
        """
        i = self._current_index() if symbol is None else self._sym(symbol)
        return self._record_book.current(table, i, self._ctx.now())

    # ---- portfolio -----------------------------------------------------------------------

    position_size = StrategyBase.position_size

    @property
    def positions(self) -> dict[str, Position]:
        """The open (non-flat) positions by symbol, in the order ``next`` sees them."""
        ctx, names = self._ctx, self._symbols
        return {names[i]: self._position_of(names[i]) for i in self._call_order if ctx.position(i) != 0}

    def _position_of(self, symbol: str | None) -> Position:
        i = self._sym(symbol)
        if i < 0:
            return self.position
        cached = self._symbol_positions[i]
        if cached is None:
            cached = self._symbol_positions[i] = Position(self._ctx, i, self)
        return cached

    def _in_view(self) -> list[int]:
        """The symbols (indices) a read that names none is about: the running one inside
        ``next``, every symbol in the order ``next`` sees them where none runs."""
        i = self._ctx.current()
        return [i] if i >= 0 else self._call_order

    def _current_index(self) -> int:
        i = self._ctx.current()
        if i < 0:
            raise UnknownSymbolError("no symbol is running here (init() or on_tick()): "
                                     "name it, e.g. self.position('AAPL')")
        return i

    @property
    def equity(self) -> float:
        """Cash plus every position marked at its symbol's latest price."""
        return self._ctx.equity()

    @property
    def cash(self) -> float:
        """Cash of the one account all symbols share."""
        return self._ctx.cash()

    def open_trades(self, symbol: str | None = None) -> list[dict[str, Any]]:
        """Open trades of ``symbol``, oldest first: id, direction, size, entry price, time
        (ns) and bar, their stop-loss and take-profit orders' ids and prices (None without
        one), and the tag of the order that opened them. ``self.trades`` gives them as
        objects that also act."""
        keys = ("trade_id", "direction", "size", "entry_price", "entry_ts", "entry_bar",
                "sl_order", "tp_order", "sl", "tp", "tag")
        return [dict(zip(keys, t)) for t in self._ctx.trades(symbol)]

    @property
    def trades(self) -> tuple[Trade, ...]:
        """Open trades as `Trade` objects, oldest first, as backtesting.py's
        ``self.trades``: the running symbol's inside ``next``; in ``on_tick``, where no
        symbol runs, every symbol's (symbols in the order ``next`` sees them).
        ``for trade in self.trades: trade.sl = ...`` moves their stop-losses.

        A trade is the same object at every read while it is open (``trade in
        self.trades`` holds until it closes); its size and exits are read from the book
        when asked."""
        ctx = self._ctx
        i = ctx.current()
        if i >= 0:
            # (The usual read, inside next, inlined: the same trades as last read while no
            # trade of the symbol has opened or closed since.)
            key = ctx.trades_key(i)
            kept_key, kept = self._open_trades[i]
            return kept if key == kept_key and key >= 0 else self._open_trades_of(i, key)
        return tuple(t for k in self._call_order for t in self._open_trades_of(k, ctx.trades_key(k)))

    def _open_trades_of(self, k: int, key: int) -> tuple[Trade, ...]:
        """Symbol ``k``'s open trades: the same tuple while no trade of it has opened or
        closed (``key``, the core's key of them, says so), else made anew, keeping the
        objects of the trades still open."""
        kept_key, kept = self._open_trades[k]
        if key == kept_key and key >= 0:
            return kept
        before = {t.id: t for t in kept}
        out = []
        for trade_id, direction, size, price, ts, bar, _, _, sl, tp, tag in self._ctx.trades(k):
            t = before.get(trade_id)
            if t is None:
                t = Trade(self, k, trade_id, direction * size, price, ts, tag)
                t.entry_bar = bar
            t._size, t._sl, t._tp = direction * size, sl, tp
            out.append(t)
        trades = tuple(out)  # the trades closed since are let go
        self._open_trades[k] = (key, trades)
        return trades

    @property
    def closed_trades(self) -> tuple[Trade, ...]:
        """Closed trades as `Trade` objects, in the order they closed, as backtesting.py's
        ``self.closed_trades``: the running symbol's inside ``next``, every symbol's in
        ``on_tick``. A trade closed in parts is there once per part (as a row of the
        results' trades), with the units that part took. The same tuple is handed back
        while no trade closes: a read at every bar copies nothing."""
        ctx = self._ctx
        i = ctx.current()
        if ctx.closed_count() == len(self._closed_trades):  # none closed since the last read
            view = self._closed_views.get(i)
            if view is not None:
                return view
        self._build_closed()
        view = self._closed_views[i] = tuple(self._closed_by_symbol[i] if i >= 0 else self._closed_trades)
        return view

    def _closed_parts(self, k: int) -> list[Trade]:
        """Symbol ``k``'s closed trades (parts) so far, in the order they closed."""
        self._build_closed()
        return self._closed_by_symbol[k]

    def _build_closed(self) -> None:
        """Every symbol's closed trades (parts) up to now, each built once: only those
        closed since the last build are new."""
        closed, by_symbol = self._closed_trades, self._closed_by_symbol
        for (s, trade_id, direction, size, entry_ts, exit_ts, entry_price, exit_price, pnl, ret,
             tag) in self._ctx.closed_trades(len(closed)):
            t = Trade(self, s, trade_id, direction * size, entry_price, entry_ts, tag)
            t.exit_price, t._exit_ns = exit_price, exit_ts
            t._closed = (pnl, ret)
            closed.append(t)
            by_symbol[s].append(t)
            self._closed_views.clear()

    # ---- orders --------------------------------------------------------------------------

    # The core's (see StrategyBase), named here to be documented with the class.
    buy = StrategyBase.buy

    sell = StrategyBase.sell

    def _order(self, symbol, buy, size, limit, stop, sl, tp, tag, *, trail=None, sl_trail=None,  # type: ignore[no-untyped-def]
               tif="gtc", valid=None, oco=None):
        # An order good till a date or trailing (the others take buy()'s one call). The
        # symbol goes to the core as given: it is resolved there (the running symbol's own
        # name object first), with the same "did you mean" refusal.
        sized = size is None
        if sized:
            size = self._ctx.size_order(symbol, buy, limit if limit is not None else stop, sl)
            if not size > 0:
                return None
        elif size.__class__ is bool:  # a number of units, never read from True/False
            raise OrderError(f"size={size!r}: must be a positive number of units, got bool")
        try:
            if valid is None and trail is None and sl_trail is None:
                return self._ctx.submit(symbol, buy, size, limit, stop, sl, tp, tag, tif, None, None, None,
                                        None, oco, sized)
            valid_bars, valid_until = self._valid(valid)
            return self._ctx.submit(symbol, buy, size, limit, stop, sl, tp, tag, tif, valid_bars, valid_until,
                                    _trail("trail", trail), _trail("sl_trail", sl_trail), oco, sized)
        except TypeError:
            # The core could not read an argument: name it, then the original error.
            _refuse_order_types(size=size, limit=limit, stop=stop, sl=sl, tp=tp, tag=tag, oco=oco)
            raise

    def _valid(self, valid: Any) -> tuple[int | None, int | None]:
        """``valid=`` as (bars, until ns): an int counts the symbol's bars."""
        if valid is None:
            return None, None
        if isinstance(valid, bool):
            raise OrderError(f"valid={valid!r}: give a number of bars, a timedelta or a timestamp")
        if isinstance(valid, (int, np.integer)):
            if valid < 1:
                raise OrderError(f"valid={valid}: an order must be valid for at least 1 bar")
            return int(valid), None
        if isinstance(valid, (pd.Timedelta, timedelta, np.timedelta64)):
            delta = pd.Timedelta(valid)
            if delta <= pd.Timedelta(0):
                raise OrderError(f"valid={delta}: a duration must be positive")
            return None, self._ctx.now() + int(delta.value)
        try:
            when = pd.Timestamp(valid)
        except (TypeError, ValueError):
            raise OrderError(f"valid={valid!r}: give a number of bars, a timedelta or a timestamp") from None
        when = when.tz_localize("UTC") if when.tzinfo is None else when.tz_convert("UTC")
        return None, int(when.value)

    def sizing_request(self, symbol: str | None = None, side: int = 1, *, price: float | None = None,
                       sl: float | None = None) -> SizingRequest:
        """What a sizer would be told for an order now (equity marked to market)."""
        return self._request(self._sym(symbol), side > 0, price, sl)

    def _request(self, symbol: Any, buy: bool, price: float | None, sl: float | None) -> SizingRequest:
        # Everything the sizer is told, read and made into a SizingRequest by the core in
        # one call (its frozen __init__ would cost more than the rest of a sized order).
        return self._ctx.sizing_request(SizingRequest, symbol, buy, price, sl)

    @property
    def open_position_count(self) -> int:
        """Number of symbols with a non-zero position."""
        return self._ctx.open_position_count()

    @property
    def gross_exposure(self) -> float:
        """Sum of ``|units| x latest price`` over all positions."""
        return self._ctx.gross_exposure()

    @property
    def margin_used(self) -> float:
        """The initial margin the positions hold at their latest prices: gross exposure /
        ``leverage``, or with symbols on terms of their own (``margin_by_symbol``) the sum
        of each position's worth / its leverage (worth: ``|units| x price x multiplier``)
        or ``|units| x`` its initial margin per unit."""
        return self._ctx.margin_used()

    def buying_power(self, symbol: str | None = None) -> float:
        """How much more of ``symbol`` (default: the running one) the account may hold, in
        money at the latest prices: the equity its margin leaves free (equity -
        ``margin_used``) times the symbol's leverage (at a margin per unit: the units it
        pays for, at their worth at the latest price; 0 before the symbol's first bar); 0
        when none is free. An increase
        worth more is rejected; commissions, slippage and a fill away from the latest
        price count against it too, so leave room. A short's worth counts as a long's."""
        return self._ctx.buying_power(symbol)

    close = StrategyBase.close

    def cancel(self, order_id: int) -> bool:
        """Cancel a working order (bracket legs too), or the rest of one that filled in
        part under ``volume_limit`` and works on; False if nothing of it was working."""
        return self._ctx.cancel(order_id)

    def modify(self, order_id: int, *, limit: float | None = None, stop: float | None = None,
               size: float | None = None) -> None:
        """Change a working order's ``limit``, ``stop`` or ``size``; it applies from the
        symbol's next bar, like a new order. Refused (``OrderError``) for filled,
        cancelled, expired or unknown orders (one filled in part under ``volume_limit``:
        the message names its rest, which may be modified), and for what the order does
        not have."""
        self._ctx.modify(order_id, limit, stop, size)

    # ---- targets -------------------------------------------------------------------------

    def order_target(self, symbol: str | None = None, *, size: float | None = None,
                     value: float | None = None, percent: float | None = None,
                     lot_size: float | None = None, min_value: float = 0.0) -> int | None:
        """Trade ``symbol`` (the running one inside ``next``) to a target holding, with a
        market order for the difference from what is held now.

        Give exactly one of ``size`` (signed units), ``value`` (signed money at the latest
        price) or ``percent`` (a signed fraction of current equity, marked to market:
        ``0.25`` = 25%, ``-0.1`` = short 10%). The target is rounded towards zero to
        whole ``lot_size`` units; a trade worth less than ``min_value`` is not placed,
        unless it closes the position. A working order from an earlier ``order_target``
        or ``rebalance`` for the symbol is cancelled first: the latest target wins.
        Returns the order id, or None when no trade is needed.
        """
        given = [(k, v) for k, v in (("size", size), ("value", value), ("percent", percent)) if v is not None]
        if len(given) != 1:
            raise TypeError("order_target() takes exactly one of size=, value= or percent=, "
                            f"got {', '.join(k for k, _ in given) or 'none'}")
        kind, amount = given[0]
        amount = _finite(f"order_target({kind}=...)", kind, amount)
        _check_lots(lot_size, min_value)
        i = self._sym(symbol)
        if i < 0:
            # The running symbol by its own index: the target-order book and the order
            # itself are keyed by it (-1 would read as the last symbol there).
            i = self._current_index()
        ctx = self._ctx
        # What one unit is worth: its price times its symbol's multiplier.
        unit = ctx.unit_value(i)
        if kind != "size" and not unit > 0:
            raise ValueError(f"order_target({kind}={amount!r}): {self._name(i)} has no price yet (no bar so far)")
        if kind == "size":
            target = amount
        elif kind == "value":
            target = amount / unit
        else:
            target = amount * ctx.equity() / unit
        units = order_to_target(ctx.position(i), target, unit, lot_size=lot_size, min_value=min_value)
        return self._place_target(i, units)

    def rebalance(self, weights: Mapping[str, float], *, close_others: bool = True,
                  lot_size: float | Mapping[str, float] | None = None, min_value: float = 0.0) -> dict[str, int]:
        """Trade the portfolio to ``weights``: ``{symbol: fraction of equity}`` (negative =
        short), from current equity marked to market and each symbol's latest price.

        Symbols held but missing from ``weights`` are closed (``close_others=False`` leaves
        them alone). Targets are rounded towards zero to whole lots (``lot_size``: one
        size or ``{symbol: size}``); trades worth less than ``min_value`` are skipped,
        except closing ones. Orders are market orders, the reductions placed first: they
        fill at the symbols' next bars, and fills at one instant execute reductions
        before increases, so sales pay for purchases. Keep the weights' sum a little
        under ``leverage`` (e.g. 0.98): purchases also pay commission and the next open.
        Returns ``{symbol: order id}`` of the orders placed.
        """
        _check_lots(lot_size, min_value)
        if not isinstance(close_others, bool):
            raise TypeError(f"rebalance(close_others={close_others!r}): must be True or False")
        ctx = self._ctx
        # In the order the symbols were given: the orders for held symbols left out of
        # ``weights`` are placed in it, never in name order.
        names = self._symbols
        held = {names[i]: ctx.position(i) for i in self._call_order}
        targets = {}
        for name, weight in weights.items():
            i = self._sym(name)
            targets[name] = _finite(f"rebalance({{{name!r}: ...}})", "weight", weight)
            if not ctx.price(i) > 0:
                raise ValueError(f"rebalance: {name} has no price yet (no bar so far); leave it out until its first bar")
        prices = {name: ctx.unit_value(i) for i, name in enumerate(self._symbols)
                  if name in targets or held[name] != 0}
        lots = dict(lot_size) if isinstance(lot_size, Mapping) else lot_size
        orders = rebalance_orders(targets, held, prices, ctx.equity(), close_others=close_others,
                                  lot_size=lots, min_value=min_value)
        placed = {}
        for name, units in orders:
            order_id = self._place_target(self._index[name], units)
            if order_id is not None:
                placed[name] = order_id
        return placed

    def _place_target(self, i: int, units: float) -> int | None:
        if self._ctx.exclusive_orders():
            # Its order trades the difference from what is held, which the option would
            # close first: the position would end at the difference, not the target.
            raise ConfigError("order_target() and rebalance() trade the difference from what is "
                              "held, and exclusive_orders=True closes what is held before each "
                              "order: use one or the other")
        previous = self._target_orders.pop(i, None)
        if previous is not None:
            self._ctx.cancel(previous)
        if units == 0:
            return None
        symbol = self._symbols[i]
        order_id = self.buy(symbol, size=units) if units > 0 else self.sell(symbol, size=-units)
        if order_id is not None:
            self._target_orders[i] = order_id
        return order_id

    def _name(self, i: int) -> str:
        return self._symbols[i if i >= 0 else self._current_index()]


def _is_number(value: Any, whole: bool = False) -> bool:
    """Whether ``value`` is what an order's price or size (``whole``: its tag or group)
    may be: a real number (a whole one), never a bool."""
    kinds = (int, np.integer) if whole else (int, float, np.integer, np.floating)
    return isinstance(value, kinds) and not isinstance(value, (bool, np.bool_))


def _refuse_order_types(**arguments: Any) -> None:
    """An `OrderError` naming the first order argument of the wrong type: prices and
    sizes are real numbers (not bools), ``tag`` and ``oco`` whole numbers."""
    for name, value in arguments.items():
        if value is None:
            continue
        whole = name in ("tag", "oco")
        if not _is_number(value, whole):
            rule = "a whole number" if whole else "a number"
            raise OrderError(f"{name}={value!r}: must be {rule}, got {type(value).__name__}")


def _trail(name: str, value: Any) -> tuple[str, float, int | None] | None:
    """A trail as the user gives it -> (kind, value, ATR id) for the core."""
    if value is None:
        return None
    if isinstance(value, str) and value.strip().endswith("%"):
        try:
            percent = float(value.strip()[:-1])
        except ValueError:
            raise OrderError(f"{name}={value!r}: a percentage reads like '2%'") from None
        return ("fraction", percent / 100.0, None)
    if isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], Indicator):
        return ("atr", float(value[1]), value[0].id)
    if isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool):
        return ("distance", float(value), None)
    raise OrderError(
        f"{name}={value!r}: give a price distance (2.5), a percentage ('2%') or (atr, multiple)"
    )


class Bar(tuple):
    """A bar: (time ns, open, high, low, close, volume) with named fields (made by the
    core in one call)."""

    __slots__ = ()
    _fields = ("time", "open", "high", "low", "close", "volume")

    def __new__(cls, *values: Any) -> Bar:
        return tuple.__new__(cls, values)

    # Field reads run in C (itemgetter), not in a Python function.
    time = property(itemgetter(0), doc="Bar start, int ns UTC.")
    open = property(itemgetter(1), doc="Open.")
    high = property(itemgetter(2), doc="High.")
    low = property(itemgetter(3), doc="Low.")
    close = property(itemgetter(4), doc="Close.")
    volume = property(itemgetter(5), doc="Volume.")

    def __repr__(self) -> str:
        t = pd.Timestamp(self[0], tz="UTC")
        return f"Bar({t}, o={self[1]:g}, h={self[2]:g}, l={self[3]:g}, c={self[4]:g}, v={self[5]:g})"


#: The previous name of `Bar`.
_Bar = Bar

#: How many (symbol, count) history views a strategy keeps before starting afresh.
_MAX_HISTORIES = 4096


class History(HistoryBase):
    """Read-only numpy views of one symbol's bars up to the current tick (no look-ahead).

    ``.ts``, ``.open``, ``.high``, ``.low``, ``.close``, ``.volume`` and ``len()`` are read
    from the core when asked (views into its memory, never a copy): an object kept from
    an earlier tick shows the bars up to the current one.
    """

    __slots__ = ()

    ts = HistoryBase.ts
    open = HistoryBase.open
    high = HistoryBase.high
    low = HistoryBase.low
    close = HistoryBase.close
    volume = HistoryBase.volume
    # backtesting.py's names of the same columns (self.data.Close[-1]), read as fast: the
    # data door reads them ignoring case, and no extra column may be named so.
    Open = HistoryBase.open
    High = HistoryBase.high
    Low = HistoryBase.low
    Close = HistoryBase.close
    Volume = HistoryBase.volume

    def _col(self, name: str) -> np.ndarray:
        return self.column(name)

    def __getattr__(self, name: str) -> np.ndarray:
        # Extra columns read like prices: self.data("AAPL").signal.
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._col(name)
        except KeyError as err:
            raise AttributeError(err.args[0] if err.args else name) from None

    def __getitem__(self, name: str) -> np.ndarray:
        """Any column by name, also one that is no Python identifier (``["Adj Close"]``)."""
        return self._col(name)

    @property
    def index(self) -> pd.DatetimeIndex:
        """The bar times as a UTC DatetimeIndex."""
        return _utc_index(self.ts)

    def df(self) -> pd.DataFrame:
        """The same bars as a DataFrame indexed by UTC time (a copy), with the symbol's
        extra columns."""
        market, i = self._ctx.market, self._symbol()
        extra = [c for c in market.columns if market.has_column(i, c)]
        cols = {c: self.column(c) for c in ("open", "high", "low", "close", "volume", *extra)}
        return pd.DataFrame(cols, index=self.index)

    def _symbol(self) -> int:
        i = self.symbol_index
        return i if i >= 0 else self._ctx.current()


def _takes_no_symbol(method: Any) -> bool:
    """Whether a bound ``next`` is written without the symbol, as backtesting.py's is
    (``def next(self)``): it takes no positional argument at all."""
    try:
        parameters = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):  # no signature to read: called with the symbol
        return False
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                  inspect.Parameter.VAR_POSITIONAL)
    return not any(p.kind in positional for p in parameters)


#: backtesting.py's names of the bar columns: a `History`'s attributes too, and in
#: ``init()`` the columns ``self.data.Close`` and the like stand for.
_BAR_COLUMNS = {"Open": "open", "High": "high", "Low": "low", "Close": "close", "Volume": "volume"}
#: The "column" of `EachSymbols` standing for a symbol's whole bars (``self.data.df``).
_WHOLE_FRAME = "<bars>"


class Bars(History):
    """``self.data``: the running symbol's bars up to the current tick, a `History`
    (``self.data.close``, or backtesting.py's ``self.data.Close[-1]``, ``len(self.data)``),
    and, called, any symbol's: ``self.data("AAPL", count=10).close``.

    ``self.data(symbol=None, count=None)`` gives the last ``count`` bars (all so far by
    default) of ``symbol`` (the running one by default) as read-only numpy columns, extra
    columns included (``.signal``, or ``["Adj Close"]`` for any name). The same
    ``(symbol, count)`` gives the same object for the whole run: it reads the bars up to
    the current tick whenever a column is read.

    One object for the whole run, as ``self.position`` is. In ``init()``, where no symbol
    is running, its columns stand for every symbol's whole column, for `Strategy.I`:
    ``self.I(SMA, self.data.Close, 10)`` calls ``SMA`` with each symbol's closes.
    """

    __slots__ = ()

    @property
    def df(self) -> pd.DataFrame:  # type: ignore[override]
        """backtesting.py's ``self.data.df``: the running symbol's bars so far as a
        DataFrame indexed by UTC time (a copy), OHLCV named as backtesting.py names them
        (``Open`` ... ``Volume``), then the symbol's extra columns. (Called,
        ``self.data(symbol).df()`` gives any symbol's with the engine's names.)"""
        return History.df(self).rename(columns={v: k for k, v in _BAR_COLUMNS.items()})


class _BarsAtInit:
    """``self.data`` while ``init()`` runs: its columns (``self.data.Close``,
    ``self.data.signal``, ``self.data["Adj Close"]``) are `EachSymbols`, what `Strategy.I`
    hands ``func`` symbol by symbol; called, it is ``self.data`` as ever."""

    __slots__ = ("_bars", "_columns")

    def __init__(self, bars: Bars, columns: Mapping[str, int]) -> None:
        self._bars, self._columns = bars, columns

    def __call__(self, symbol: str | None = None, count: int | None = None) -> History:
        return self._bars(symbol, count)

    def __getattr__(self, name: str) -> EachSymbols:
        if name.startswith("_"):
            raise AttributeError(name)
        return self[name]

    @property
    def df(self) -> EachSymbols:
        """backtesting.py's ``self.data.df`` in ``init()``: each symbol's whole bars as a
        DataFrame (its column names), for `Strategy.I`."""
        return EachSymbols("df", _WHOLE_FRAME)

    def __getitem__(self, name: str) -> EachSymbols:
        column = _BAR_COLUMNS.get(name, name)
        if column not in _BAR_COLUMNS.values() and column not in self._columns:
            known = [*_BAR_COLUMNS.values(), *self._columns]
            hint = did_you_mean(name, [*known, *_BAR_COLUMNS])
            raise AttributeError(f"self.data.{name}: the data has no column {name!r}{hint} "
                                 f"(columns: {', '.join(known)})")
        return EachSymbols(name, column)

    def __len__(self) -> int:
        raise UnknownSymbolError("len(self.data) in init(): no symbol is running and no bar has "
                                 "come yet; each symbol's whole history is read through self.I")


class EachSymbols:
    """A column of ``self.data`` read in ``init()`` (``self.data.Close``): it stands for
    that column of each symbol in turn, and only `Strategy.I` reads it. Given as an
    argument, ``self.I(func, self.data.Close, self.data.High, n)`` calls ``func`` with
    each symbol's columns as pandas Series by time in their place."""

    __slots__ = ("name", "column")

    def __init__(self, name: str, column: str) -> None:
        self.name, self.column = name, column

    def __repr__(self) -> str:
        what = "bars" if self.column == _WHOLE_FRAME else f"{self.column!r} column"
        return f"self.data.{self.name} (each symbol's {what}, for self.I)"

    @property
    def s(self) -> EachSymbols:
        """backtesting.py's ``self.data.Close.s`` (the column as a Series): the same column,
        which `Strategy.I` hands over as a Series by time."""
        return self

    def _refuse(self, use: str) -> TypeError:
        return TypeError(f"{self!r} is no array in init() ({use}): hand it to self.I, which calls "
                         f"its function with each symbol's column in turn (self.I(func, "
                         f"self.data.{self.name}, ...)), and compute with it there (as a "
                         f"Series: self.data.{self.name}.s or pd.Series(self.data.{self.name}) "
                         f"among self.I's arguments)")

    def __array__(self, *args: Any, **kwargs: Any) -> np.ndarray:
        raise self._refuse("read as an array")

    def __len__(self) -> int:
        raise self._refuse("its length")

    def __getitem__(self, index: Any) -> Any:
        raise self._refuse(f"[{index!r}]")

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        raise self._refuse(f".{name}")


#: Per market, its symbols' bar times as ``self.I`` gives them (symbol index -> index),
#: kept while the market lives: every run on it (``optimize``, repeated ``run``) reuses
#: them instead of making each again.
_BAR_TIMES: weakref.WeakKeyDictionary[Any, dict[int, pd.DatetimeIndex]] = weakref.WeakKeyDictionary()


def _exchange_buckets(market: Any, spec: tuple[int, str, Any]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Per symbol of ``market``, the session bucket (label, end) of each bar it holds
    (`session_buckets`; ``spec``: period ns, timezone, session): a bar's bucket depends on
    its own time alone, so a window's bars get those the whole run's would."""
    period, tz, session = spec
    labels, ends = [], []
    for i in range(len(market.symbols)):
        label, end = session_buckets(market.column(i, "ts", 0, 1 << 62), period, tz, session)
        labels.append(label)
        ends.append(end)
    return labels, ends


def _bar_times(market: Any) -> dict[int, pd.DatetimeIndex]:
    """The bar-times cache of ``market`` (a fresh one for an object that cannot be
    referred to weakly)."""
    try:
        return _BAR_TIMES.setdefault(market, {})
    except TypeError:
        return {}


def _utc_index(ts: np.ndarray) -> pd.DatetimeIndex:
    """int64 ns UTC -> a UTC DatetimeIndex (a view: no parsing of each value)."""
    return pd.DatetimeIndex(np.asarray(ts).view("datetime64[ns]"), dtype="datetime64[ns, UTC]")
