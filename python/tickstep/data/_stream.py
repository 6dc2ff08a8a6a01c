"""Bars read in time windows, in time order, for a streamed backtest.

A streamed run (``Backtest(..., stream="5D")``) never holds the whole market: it reads
the bars of ``[t, t + window)`` for every requested symbol at once, runs them, and
reads the next window. `open_stream` is the streaming side of the door: the same
``symbols``, ``start``, ``end`` rule and the same checks of every bar as `resolve`.

- From a store (`Store`, `PostgresStore`, or a path or URL of one): one metadata query
  at the start (names, unknown symbols, each symbol's range), then one bars query per
  window, fetched as Arrow record batches (`BarStore._fetch_bars`: DuckDB's stream of
  batches, PostgreSQL's binary COPY or its day packs). ``regular_hours`` filters each
  window in SQL against the calendar's sessions of that window only.
- From bars already in memory (anything `resolve` takes): the validated columns are
  cut into the same windows (views, no copy): the same run as from a store, handy for
  checking that streaming changes nothing.

Extra columns come with each window. Which symbol has which column is decided for the
whole run first (from a store: one counting statement at the start), so every window
holds the same columns for the same symbols; gaps are checked against ``allow_nan`` in
each window, as a load checks them.

`read_ahead` reads the next windows on a thread while the engine runs the current one
(DuckDB and the PostgreSQL driver release the interpreter while they work).

Resampling (``timeframe=`` of a store's load) streams by resampled bars: a window holds
the buckets labelled in it, each read whole (its stored bars may lie past the window's
edges), so no bucket is ever cut by a window edge.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from tickstep.data._assembly import window_parts
from tickstep.data._bars_query import bars_query, extra_column
from tickstep.data._calendars import FilterSpans, filter_spans
from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns, check_extra_columns
from tickstep.data._metadata import metadata_frame
from tickstep.data._request import (
    Timeframe,
    check_options,
    describe_request,
    parse_timeframe,
    refuse_unknown_symbols,
    symbol_list,
    symbols_in_order,
    time_bounds,
)
from tickstep.data._resolve import _source, resolve
from tickstep.data._shapes import ALL_EXTRA, ExtraColumns
from tickstep.data._store_base import BarStore
from tickstep.timeframes import NS_PER_DAY, duration

__all__ = ["BarStream", "Window", "open_stream", "read_ahead"]

_COLUMNS = ("ts", *VALUE_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Window:
    """The bars of ``[start, end)``: per symbol (in the stream's order) its columns
    ``(ts, open, high, low, close, volume)``, maybe empty, and its extra columns by name
    (``extra[s]``: every column the symbol has over the whole run, NaN where a bar has
    no value; none when the stream has no extra columns)."""

    start: int
    end: int
    parts: list[list[np.ndarray]]
    extra: list[dict[str, np.ndarray]] = dataclasses.field(default_factory=list)

    @property
    def first_tick(self) -> int:
        """The earliest bar's time (the window's first tick)."""
        return min(int(p[0][0]) for p in self.parts if len(p[0]))

    @property
    def n_bars(self) -> int:
        return sum(len(p[0]) for p in self.parts)


class BarStream:
    """The bars of some symbols over ``[lo, hi)``, read window by window in time order.

    Attributes
    ----------
    symbols : list of str
        Sorted by name: the order a backtest sees them in.
    metadata : DataFrame or None
        Symbol metadata indexed by symbol (as `MarketColumns.metadata`).
    first, last : int
        The first and last bar's time (ns) the stream can meet.
    window : int
        Window length in ns.
    columns : list of str
        The extra columns beside OHLCV (as `MarketColumns.columns` of the whole load).
    owned : list of tuple of str
        Per symbol, the extra columns it has: decided for the whole run before the first
        window (as a load decides it from all its rows), so a name reads the same column
        in every window.
    """

    def __init__(self, symbols: list[str], metadata: pd.DataFrame | None, first: int, last: int,
                 window: int) -> None:
        self.symbols = symbols
        #: The symbols in the order ``next`` sees them (see `MarketColumns.order`).
        self.call_order = list(symbols)
        self.metadata = metadata
        self.first = first
        self.last = last
        self.window = window
        self.columns: list[str] = []
        self.owned: list[tuple[str, ...]] = [() for _ in symbols]

    def bounds(self) -> Iterator[tuple[int, int]]:
        """The windows ``[start, end)`` covering ``[first, last]``."""
        start = self.first
        while start <= self.last:
            end = min(start + self.window, self.last + 1)
            yield start, end
            start = end

    def windows(self) -> Iterator[Window]:
        """Every window with at least one bar, in time order (read as iterated)."""
        for start, end in self.bounds():
            window = self._read(start, end)
            if window is not None and window.n_bars:
                yield window

    def _read(self, start: int, end: int) -> Window | None:  # pragma: no cover - abstract
        raise NotImplementedError

    def last_times(self) -> np.ndarray:  # pragma: no cover - abstract
        """Each symbol's (in `symbols` order) last bar's time (ns) in the stream, as its
        windows will hold it (after any filters and resampling); int64's least for a
        symbol with none."""
        raise NotImplementedError

    def timeline(self) -> np.ndarray:  # pragma: no cover - abstract
        """Every tick of the stream (the times at which any symbol has a bar, as its
        windows will hold them), sorted: 8 bytes a tick, never the bars."""
        raise NotImplementedError

    def symbols_between(self, lo: int, hi: int) -> list[str]:  # pragma: no cover - abstract
        """The symbols with a bar in ``[lo, hi)`` (as the windows will hold them), in
        `call_order`."""
        raise NotImplementedError

    def bar_spacing(self, symbol: int) -> int:
        """The gcd of the gaps between the bars of ``symbol`` (its index in `symbols`)
        over the whole stream, as its windows will hold them (0 with fewer than two)."""
        gaps = self._gaps(symbol)
        return int(np.gcd.reduce(gaps)) if len(gaps) else 0

    def _gaps(self, symbol: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def store(self) -> Any:
        """The store the windows are read from (None for bars in memory)."""
        return getattr(self, "_store", None)

    def close(self) -> None:
        """Release the source (a store opened from a path or URL)."""


class _MemoryStream(BarStream):
    """Validated columns in memory, cut into windows (views)."""

    def __init__(self, market: MarketColumns, window: int) -> None:
        first = min(int(b.ts[0]) for b in market.bars)
        last = max(int(b.ts[-1]) for b in market.bars)
        super().__init__(list(market.symbols), market.metadata, first, last, window)
        self.call_order = market.call_order
        self.columns = market.columns
        self.owned = [tuple(b.extra) for b in market.bars]
        self._bars = market.bars

    def last_times(self) -> np.ndarray:
        return np.array([int(b.ts[-1]) if len(b.ts) else np.iinfo(np.int64).min
                         for b in self._bars], dtype=np.int64)

    def timeline(self) -> np.ndarray:
        return np.unique(np.concatenate([b.ts for b in self._bars]))

    def _gaps(self, symbol: int) -> np.ndarray:
        return np.diff(self._bars[symbol].ts)

    def symbols_between(self, lo: int, hi: int) -> list[str]:
        has = {b.symbol for b in self._bars if np.searchsorted(b.ts, lo) < np.searchsorted(b.ts, hi)}
        return [s for s in self.call_order if s in has]

    def _read(self, start: int, end: int) -> Window:
        parts, extra = [], []
        for b in self._bars:
            a, z = np.searchsorted(b.ts, [start, end])
            parts.append([getattr(b, c)[a:z] for c in _COLUMNS])
            extra.append({name: values[a:z] for name, values in b.extra.items()})
        return Window(start, end, parts, extra)


class _StoreStream(BarStream):
    """A store read with one bars query per window."""

    def __init__(self, store: BarStore, opened: bool, names: list[str] | None, lo: int, hi: int,
                 regular_hours: bool, window: int, filters: str,
                 extra: ExtraColumns = ALL_EXTRA, order: list[str] | None = None,
                 frame: Timeframe | None = None) -> None:
        if opened:  # a connection of the stream's own (a store you opened keeps its settings)
            store._read_once()
        meta = store._metadata_rows(names, with_range=True)
        listed = meta["bar_columns"].iloc[0] if len(meta) else None
        stored = [] if listed is None else [str(c) for c in listed]
        picked = extra.pick(stored, (), None)
        # As a load reads them: the stored labels, named as the user chose.
        self._labels = tuple(label for _, label in picked)
        self._names = tuple(name for name, _ in picked)
        self._allow_nan = extra.allow_nan
        try:
            extra.check_nan_names(self._labels)
        except DataError as err:
            raise DataError(str(err).replace("data: ", "the store: ", 1), rule=err.rule) from None
        if names is not None:
            known = list(meta["symbol"])
            if len(known) < len(names):
                known = store._metadata_rows(None, with_range=False)["symbol"]
            refuse_unknown_symbols(set(names) - set(meta["symbol"]), known, "the store")
        if len(meta) == 0:
            raise DataError("the store has no symbols", rule="non-empty")
        has = meta["first_ts"].notna().to_numpy() & (meta["first_ts"].fillna(hi).to_numpy() < hi)
        has &= meta["last_ts"].fillna(lo - 1).to_numpy() >= lo
        if not has.all():
            empty = list(meta["symbol"][~has])
            raise DataError(
                f"no bars for symbol(s) {', '.join(map(repr, empty[:20]))} ({filters})",
                symbol=empty[0],
                rule="non-empty result",
            )
        first = max(lo, int(meta["first_ts"].min()))
        last = min(hi - 1, int(meta["last_ts"].max()))
        self._spans: FilterSpans | None = None
        self._frame = frame
        if regular_hours or frame is not None:
            # The spans a load computes (over the data's range within the bounds).
            self._spans = filter_spans(meta, regular_hours=regular_hours, timeframe=frame,
                                       first_ns=first, last_ns=min(hi, int(meta["last_ts"].max())))
        self._lo, self._hi = lo, hi
        meta = meta.drop(columns=["first_ts", "last_ts", "bar_columns"])
        super().__init__(list(meta["symbol"]), metadata_frame(meta), first, last, window)
        # As `resolve` orders a store's symbols: a symbols= list's order, else name order.
        if order is not None:
            self.call_order = list(dict.fromkeys(order))
        self._store, self._opened = store, opened
        self._ids = meta["symbol_id"].to_numpy(np.int32)
        if self._labels:
            self._own_columns(lo, hi)

    def last_times(self) -> np.ndarray:
        # One statement over the run's range, filtered and resampled as the windows are.
        sql, params = bars_query(self._store.dialect, self._ids, self._lo, self._hi, self._spans,
                                 self._frame)
        table = self._store._read_bars(
            f"SELECT symbol_id, max(ts) AS last_ts FROM ({sql}) q GROUP BY symbol_id", params)
        found = dict(zip(table.column("symbol_id").to_pylist(), table.column("last_ts").to_pylist(),
                         strict=True))
        return np.array([found.get(int(i), np.iinfo(np.int64).min) for i in self._ids],
                        dtype=np.int64)

    def timeline(self) -> np.ndarray:
        # One statement over the run's range, filtered and resampled as the windows are.
        sql, params = bars_query(self._store.dialect, self._ids, self._lo, self._hi, self._spans,
                                 self._frame)
        table = self._store._read_bars(f"SELECT DISTINCT ts FROM ({sql}) q ORDER BY ts", params)
        return table.column("ts").to_numpy().astype(np.int64)

    def _gaps(self, symbol: int) -> np.ndarray:
        # The distinct gaps only (a handful: a minute, a night, a weekend), one statement.
        sql, params = bars_query(self._store.dialect, self._ids[symbol:symbol + 1], self._lo,
                                 self._hi, self._spans, self._frame)
        # (Asked from init(), while the reader thread may be reading a window.)
        table = self._store._read_aside(
            f"SELECT DISTINCT gap FROM (SELECT ts - lag(ts) OVER (ORDER BY ts) AS gap "
            f"FROM ({sql}) q) g WHERE gap IS NOT NULL", params)
        return table.column("gap").to_numpy().astype(np.int64)

    def symbols_between(self, lo: int, hi: int) -> list[str]:
        # The run's bars (filtered, resampled) whose times fall in [lo, hi).
        sql, params = bars_query(self._store.dialect, self._ids, self._lo, self._hi, self._spans,
                                 self._frame)
        int8 = self._store.dialect.int_types["int8"]
        table = self._store._read_bars(
            f"SELECT DISTINCT symbol_id FROM ({sql}) q "
            f"WHERE ts >= CAST({int(lo)} AS {int8}) AND ts < CAST({int(hi)} AS {int8})", params)
        found = {int(i) for i in table.column("symbol_id").to_pylist()}
        names = {name for name, i in zip(self.symbols, self._ids, strict=True) if int(i) in found}
        return [s for s in self.call_order if s in names]

    def _own_columns(self, lo: int, hi: int) -> None:
        """Which symbol has which extra column over the whole run, in one statement: a
        symbol has a column when any of its bars in range (after the filters) has a value
        (`assemble`'s rule for a load), whichever window those bars fall in."""
        sql, params = bars_query(self._store.dialect, self._ids, lo, hi, self._spans,
                                 self._frame, self._labels)
        counts = ", ".join(f"count({extra_column(k)}) AS {extra_column(k)}"
                           for k in range(len(self._labels)))
        table = self._store._read_bars(
            f"SELECT symbol_id, {counts} FROM ({sql}) q GROUP BY symbol_id", params)
        found = {int(i): k for k, i in enumerate(table.column("symbol_id").to_pylist())}
        counts_of = [table.column(extra_column(k)).to_pylist() for k in range(len(self._labels))]
        self.owned = []
        for symbol_id in self._ids:
            row = found.get(int(symbol_id))
            self.owned.append(tuple(
                name for k, name in enumerate(self._names)
                if row is not None and counts_of[k][row]
            ))
        # The order a load's `MarketColumns.columns` has: first met, symbols by name.
        self.columns = list(dict.fromkeys(name for owned in self.owned for name in owned))

    def _read(self, start: int, end: int) -> Window | None:
        if self._frame is not None:
            return self._read_resampled(start, end)
        spans = self._spans
        if spans is not None:
            keep = (spans.end > start) & (spans.start < end)
            if not keep.any():
                return None
            spans = dataclasses.replace(
                spans, group=spans.group[keep], start=spans.start[keep], end=spans.end[keep],
                day=spans.day[keep], offset=spans.offset[keep],
            )
        symbol_id, columns = self._store._fetch_bars(self._ids, start, end, spans, None,
                                                     self._labels)
        parts, extra = window_parts(symbol_id, columns, self._ids, self.symbols, self._names,
                                    self._allow_nan)
        return Window(start, end, parts, _own_extra(self.symbols, parts, extra, self.owned,
                                                     self._allow_nan))

    def _read_resampled(self, start: int, end: int) -> Window | None:
        """The resampled bars labelled in ``[start, end)`` (the first window: before
        ``end``; the last: from ``start``), each bucket whole: its bars are read from
        wherever they are, a margin beyond the window's edges (a bucket's bars lie in
        ``[label, label + step)``, a day's within two days of its label), within the
        load's bounds. So each bucket is aggregated from exactly the bars a load
        aggregates it from, once, in the window of its label."""
        frame, spans = self._frame, self._spans
        assert frame is not None and spans is not None
        before, after = (2 * NS_PER_DAY, 2 * NS_PER_DAY) if frame.daily else (0, int(frame.step_ns))
        lo, hi = max(self._lo, start - before), min(self._hi, end + after)
        keep = (spans.end > lo) & (spans.start < hi)
        if not keep.any():
            return None
        spans = dataclasses.replace(
            spans, group=spans.group[keep], start=spans.start[keep], end=spans.end[keep],
            day=spans.day[keep], offset=spans.offset[keep],
        )
        symbol_id, columns = self._store._fetch_bars(self._ids, lo, hi, spans, frame,
                                                     self._labels)
        first_window, last_window = start <= self.first, end > self.last
        label = columns["ts"]
        mine = np.ones(len(label), dtype=bool)
        if not first_window:
            mine &= label >= start
        if not last_window:
            mine &= label < end
        if not mine.all():
            symbol_id = symbol_id[mine]
            columns = {name: values[mine] for name, values in columns.items()}
        if not len(symbol_id):
            return None
        parts, extra = window_parts(symbol_id, columns, self._ids, self.symbols, self._names,
                                    self._allow_nan)
        # The first window may hold buckets labelled before its first raw bar.
        start = min(start, int(columns["ts"].min()))
        return Window(start, end, parts, _own_extra(self.symbols, parts, extra, self.owned,
                                                     self._allow_nan))

    def close(self) -> None:
        if self._opened:
            self._store.close()


def window_ns(value: Any) -> int:
    """A window length (``"5D"``, ``"6h"``, a Timedelta, or True for one day) in ns."""
    if value is True:
        return NS_PER_DAY
    try:
        span = duration(value)
    except (ValueError, TypeError):
        span = pd.NaT
    if span is pd.NaT or span <= pd.Timedelta(0):
        raise DataError(f"stream={value!r}: must be True or a positive duration such as '5D' or '6h'",
                        rule="positive duration")
    return int(span.value)


def open_stream(
    data: Any,
    *,
    window: Any,
    symbols: str | Sequence[str] | None = None,
    start: Any = None,
    end: Any = None,
    close_store: bool = False,
    **load_options: Any,
) -> BarStream:
    """The streaming door: ``data`` (anything `resolve` takes) as windows of ``window``.

    Same ``symbols``, ``start`` and ``end`` rule and the same checks of each bar as
    `resolve`; a store is read one window at a time, anything else is resolved once and
    cut. ``regular_hours=True`` works with stores; ``timeframe=`` is refused.
    ``close_store``: the stream closes ``data``, a store opened for it, when it closes.
    """
    size = window_ns(window)
    source, opened = _source(data)
    opened = opened or close_store
    if not isinstance(source, BarStore):
        if opened:
            source.close()
        market = resolve(data, symbols=symbols, start=start, end=end, **load_options)
        return _MemoryStream(market, size)
    try:
        check_options(load_options, ("regular_hours", "timeframe", "columns", "allow_nan"),
                      repr(source))
        extra = ExtraColumns.of(load_options.get("columns"), load_options.get("allow_nan"))
        regular_hours = bool(load_options.get("regular_hours", False))
        timeframe = load_options.get("timeframe")
        lo, hi = time_bounds(start, end)
        filters = describe_request(start, end, regular_hours, timeframe)
        return _StoreStream(source, opened, symbol_list(symbols), lo, hi, regular_hours, size,
                            filters, extra, None if symbols is None else symbols_in_order(symbols),
                            parse_timeframe(timeframe))
    except BaseException:
        if opened:
            source.close()
        raise


def _own_extra(symbols: list[str], parts: list[list[np.ndarray]],
               found: list[dict[str, np.ndarray]], owned: list[tuple[str, ...]],
               allow_nan: Any) -> list[dict[str, np.ndarray]]:
    """Each symbol's extra columns in a window: exactly those it has over the run. A
    column with no value in this window is all NaN here (refused, as at load, unless
    ``allow_nan`` names it); values of a column the symbol was found not to have mean
    the store changed during the run."""
    out = []
    for s, symbol in enumerate(symbols):
        have = found[s]
        stray = set(have) - set(owned[s])
        if stray:
            raise DataError(
                f"symbol {symbol!r}: the store gained values of column {sorted(stray)[0]!r} "
                "while the backtest streamed it; run it again",
                symbol=symbol, rule="unchanged store",
            )
        ts = parts[s][0]
        gaps = {name: np.full(len(ts), np.nan) for name in owned[s] if name not in have}
        if gaps and len(ts):
            check_extra_columns(symbol, ts, gaps, allow_nan)
        out.append({name: have[name] if name in have else gaps[name] for name in owned[s]})
    return out


_DONE = object()
_T = TypeVar("_T")


def read_ahead(windows: Iterator[_T]) -> Iterator[_T]:
    """``windows`` (windows, or the markets made of them) produced on a thread, one ahead
    of the consumer: the next is produced while the consumer works on the one it took,
    and no further (one produced is held until taken, so memory holds at most one in
    flight).

    Errors of the reader reach the consumer at the window where they happened; closing
    the returned generator (the run stopped) stops the reader.
    """
    slots: queue.Queue[Any] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def put(item: Any) -> bool:
        slots.put(item)
        # Read the next window only once this one is taken (or the run stopped).
        while not stop.is_set():
            with slots.all_tasks_done:
                if not slots.unfinished_tasks:
                    return True
                slots.all_tasks_done.wait(timeout=0.05)
        return False

    def read() -> None:
        try:
            for window in windows:
                if not put(window):
                    return
            put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            put(exc)

    reader = threading.Thread(target=read, name="tickstep-stream-reader", daemon=True)
    reader.start()
    try:
        while True:
            item = slots.get()
            slots.task_done()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        reader.join()
