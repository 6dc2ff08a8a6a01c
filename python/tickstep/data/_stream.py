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

`read_ahead` reads the next windows on a thread while the engine runs the current one
(DuckDB and the PostgreSQL driver release the interpreter while they work).

Resampling (``timeframe=`` of a load) is refused with streaming: a bucket could straddle
two windows. Candles declared by the strategy (``self.timeframe``) stream fine.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import pandas as pd

from tickstep.data._assembly import window_parts
from tickstep.data._calendars import FilterSpans, filter_spans
from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns
from tickstep.data._metadata import metadata_frame
from tickstep.data._request import (
    check_options,
    describe_request,
    refuse_unknown_symbols,
    symbol_list,
    symbols_in_order,
    time_bounds,
)
from tickstep.data._resolve import _source, resolve
from tickstep.data._shapes import ALL_EXTRA, ExtraColumns
from tickstep.data._store_base import BarStore
from tickstep.timeframes import NS_PER_DAY

__all__ = ["BarStream", "Window", "open_stream", "read_ahead"]

_COLUMNS = ("ts", *VALUE_COLUMNS)


@dataclasses.dataclass(frozen=True)
class Window:
    """The bars of ``[start, end)``: per symbol (in the stream's order) its columns
    ``(ts, open, high, low, close, volume)``, maybe empty."""

    start: int
    end: int
    parts: list[list[np.ndarray]]

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
        self._bars = market.bars

    def _read(self, start: int, end: int) -> Window:
        parts = []
        for b in self._bars:
            a, z = np.searchsorted(b.ts, [start, end])
            parts.append([getattr(b, c)[a:z] for c in _COLUMNS])
        return Window(start, end, parts)


class _StoreStream(BarStream):
    """A store read with one bars query per window."""

    def __init__(self, store: BarStore, opened: bool, names: list[str] | None, lo: int, hi: int,
                 regular_hours: bool, window: int, filters: str,
                 extra: ExtraColumns = ALL_EXTRA, order: list[str] | None = None) -> None:
        meta = store._metadata_rows(names, with_range=True)
        listed = meta["bar_columns"].iloc[0] if len(meta) else None
        stored = [] if listed is None else [str(c) for c in listed]
        _refuse_extra_columns([name for name, _ in extra.pick(stored, (), None)])
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
        if regular_hours:
            self._spans = filter_spans(meta, regular_hours=True, timeframe=None,
                                       first_ns=first, last_ns=last)
        meta = meta.drop(columns=["first_ts", "last_ts", "bar_columns"])
        super().__init__(list(meta["symbol"]), metadata_frame(meta), first, last, window)
        # As `resolve` orders a store's symbols: a symbols= list's order, else name order.
        if order is not None:
            self.call_order = list(dict.fromkeys(order))
        self._store, self._opened = store, opened
        self._ids = meta["symbol_id"].to_numpy(np.int32)

    def _read(self, start: int, end: int) -> Window | None:
        spans = self._spans
        if spans is not None:
            keep = (spans.end > start) & (spans.start < end)
            if not keep.any():
                return None
            spans = dataclasses.replace(
                spans, group=spans.group[keep], start=spans.start[keep], end=spans.end[keep],
                day=spans.day[keep], offset=spans.offset[keep],
            )
        symbol_id, columns = self._store._fetch_bars(self._ids, start, end, spans, None)
        return Window(start, end, window_parts(symbol_id, columns, self._ids, self.symbols))

    def close(self) -> None:
        if self._opened:
            self._store.close()


def window_ns(value: Any) -> int:
    """A window length (``"5D"``, ``"6h"``, a Timedelta, or True for one day) in ns."""
    if value is True:
        return NS_PER_DAY
    try:
        span = pd.Timedelta(value)
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
    **load_options: Any,
) -> BarStream:
    """The streaming door: ``data`` (anything `resolve` takes) as windows of ``window``.

    Same ``symbols``, ``start`` and ``end`` rule and the same checks of each bar as
    `resolve`; a store is read one window at a time, anything else is resolved once and
    cut. ``regular_hours=True`` works with stores; ``timeframe=`` is refused.
    """
    size = window_ns(window)
    if load_options.get("timeframe") is not None:
        raise DataError(
            "timeframe= (resampling at load) cannot be streamed: a bucket could straddle two "
            "windows; stream the stored bars and declare candles with self.timeframe(...), or "
            "load without stream=",
            rule="streamable load",
        )
    load_options.pop("timeframe", None)
    source, opened = _source(data)
    if not isinstance(source, BarStore):
        if opened:
            source.close()
        market = resolve(data, symbols=symbols, start=start, end=end, **load_options)
        _refuse_extra_columns(market.columns)
        return _MemoryStream(market, size)
    try:
        check_options(load_options, ("regular_hours", "columns", "allow_nan"), repr(source))
        extra = ExtraColumns.of(load_options.get("columns"), load_options.get("allow_nan"))
        regular_hours = bool(load_options.get("regular_hours", False))
        lo, hi = time_bounds(start, end)
        filters = describe_request(start, end, regular_hours, None)
        return _StoreStream(source, opened, symbol_list(symbols), lo, hi, regular_hours, size,
                            filters, extra, None if symbols is None else symbols_in_order(symbols))
    except BaseException:
        if opened:
            source.close()
        raise


def _refuse_extra_columns(names: Sequence[str]) -> None:
    """Windows carry OHLCV only: extra columns are refused, never dropped unsaid."""
    if names:
        raise DataError(
            f"extra columns ({', '.join(map(repr, names))}) cannot be streamed yet: pass "
            "columns=[] to leave them out, or run without stream=",
            rule="streamable load",
        )


_DONE = object()


def read_ahead(windows: Iterator[Window]) -> Iterator[Window]:
    """``windows`` read on a thread, one ahead of the consumer: the next window is read
    while the consumer works on the one it took, and no further (a window read is held
    until taken, so memory holds at most one window in flight).

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
