"""Validated bars: `SymbolBars`, `MarketColumns` and the rules every bar must keep.

Everything downstream (the Rust market, the clock, the broker) trusts these columns and
never re-validates them, so each rule is checked once (`check_bars`), vectorised, and a
broken rule is reported with the symbol, the row position, the timestamp and the rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from tickstep._core import TickstepError

__all__ = ["DataError", "MarketColumns", "SymbolBars", "check_bars", "check_extra_columns"]

PRICE_COLUMNS = ("open", "high", "low", "close")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")
TIMESTAMP_COLUMNS = ("ts", "timestamp", "time", "datetime", "date")
#: Names an extra column may not take (compared ignoring case): the bar's own columns,
#: the timestamp and symbol columns, and the stores' key.
RESERVED_NAMES = frozenset((*VALUE_COLUMNS, *TIMESTAMP_COLUMNS, "symbol", "symbol_id"))
#: The longest extra column name: PostgreSQL's identifier limit (63 bytes).
MAX_NAME_BYTES = 63

_NAT = np.iinfo(np.int64).min


class DataError(TickstepError, ValueError):
    """Bad market data, refused at the door.

    The message names the source (symbol, file), the row (position and timestamp) and the
    rule broken. The same facts are available as attributes for programs.

    Attributes
    ----------
    symbol : str or None
        The symbol whose data broke the rule.
    row : int or None
        Zero-based position of the first offending row in the input as given (for a long
        DataFrame: the position in that frame; for a file: the data row, header excluded).
    timestamp : pandas.Timestamp or None
        UTC timestamp of the offending row, when it has one.
    rule : str or None
        Short name of the rule broken, e.g. ``"high >= low"``.
    source : str or None
        File, table or URL the data came from, when not a DataFrame.
    """

    def __init__(
        self,
        message: str,
        *,
        symbol: str | None = None,
        row: int | None = None,
        timestamp: pd.Timestamp | None = None,
        rule: str | None = None,
        source: str | None = None,
    ) -> None:
        super().__init__(message)
        self.symbol = symbol
        self.row = row
        self.timestamp = timestamp
        self.rule = rule
        self.source = source


def _fmt_ts(ns: int) -> str:
    if ns == _NAT:
        return "NaT"
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def _where(symbol: str | None, row: int | None = None, ts_ns: int | None = None) -> str:
    parts = []
    if symbol is not None:
        parts.append(f"symbol {symbol!r}")
    if row is not None:
        parts.append(f"row {row}" + (f" ({_fmt_ts(ts_ns)})" if ts_ns is not None else ""))
    return ", ".join(parts)


def _refuse_rows(
    bad: np.ndarray,
    rule: str,
    detail: Any,
    symbol: str,
    ts: np.ndarray,
    rows: np.ndarray | None,
) -> None:
    """Raise a DataError for the first True position of ``bad``.

    ``detail`` is a callable ``i -> str`` describing the values at position ``i``.
    """
    hits = np.flatnonzero(bad)
    i = int(hits[0])
    row = int(rows[i]) if rows is not None else i
    ts_ns = int(ts[i])
    more = f"; {len(hits) - 1} more row(s) break this rule" if len(hits) > 1 else ""
    raise DataError(
        f'{_where(symbol, row, ts_ns)}: breaks rule "{rule}" ({detail(i)}){more}',
        symbol=symbol,
        row=row,
        timestamp=None if ts_ns == _NAT else pd.Timestamp(ts_ns, unit="ns", tz="UTC"),
        rule=rule,
    )


def check_bars(
    symbol: str,
    ts: np.ndarray,
    o: np.ndarray,
    h: np.ndarray,
    lo: np.ndarray,
    c: np.ndarray,
    v: np.ndarray,
    rows: np.ndarray | None = None,
) -> None:
    """Check every rule of the door on one symbol's columns; raise DataError on the first.

    Vectorised: a handful of whole-array numpy passes, no loop over rows.
    ``rows`` maps positions in these arrays to row positions in the user's input.
    """
    n = len(ts)
    if n == 0:
        raise DataError(f"symbol {symbol!r}: no rows (empty data)", symbol=symbol, rule="non-empty")
    for name, arr in zip(VALUE_COLUMNS, (o, h, lo, c, v)):
        if len(arr) != n:
            raise DataError(
                f"symbol {symbol!r}: column {name!r} has {len(arr)} values for {n} timestamps",
                symbol=symbol,
                rule="equal lengths",
            )

    nat = ts == _NAT
    if nat.any():
        _refuse_rows(nat, "timestamp present", lambda i: "timestamp is NaT", symbol, ts, rows)
    if n > 1:
        step = np.diff(ts)
        if (step <= 0).any():
            bad = np.concatenate(([False], step <= 0))
            i0 = int(np.flatnonzero(bad)[0])
            rule = "unique timestamps" if step[i0 - 1] == 0 else "timestamps increasing"
            _refuse_rows(
                bad,
                rule,
                lambda i: (
                    f"previous row has {_fmt_ts(ts[i - 1])}; data is never sorted "
                    "or de-duplicated for you"
                ),
                symbol,
                ts,
                rows,
            )

    for name, arr in zip(VALUE_COLUMNS, (o, h, lo, c, v)):
        finite = np.isfinite(arr)
        if not finite.all():
            _refuse_rows(
                ~finite,
                f"{name} finite",
                lambda i, a=arr, nm=name: f"{nm}={a[i]}",
                symbol,
                ts,
                rows,
            )
    for name, arr in zip(PRICE_COLUMNS, (o, h, lo, c)):
        nonpos = arr <= 0
        if nonpos.any():
            _refuse_rows(
                nonpos, f"{name} > 0", lambda i, a=arr, nm=name: f"{nm}={a[i]}", symbol, ts, rows
            )
    inverted = h < lo
    if inverted.any():
        _refuse_rows(
            inverted, "high >= low", lambda i: f"high={h[i]}, low={lo[i]}", symbol, ts, rows
        )
    for name, arr in (("open", o), ("close", c)):
        outside = (arr < lo) | (arr > h)
        if outside.any():
            _refuse_rows(
                outside,
                f"low <= {name} <= high",
                lambda i, a=arr, nm=name: f"{nm}={a[i]}, low={lo[i]}, high={h[i]}",
                symbol,
                ts,
                rows,
            )
    negative = v < 0
    if negative.any():
        _refuse_rows(negative, "volume >= 0", lambda i: f"volume={v[i]}", symbol, ts, rows)


def check_extra_columns(
    symbol: str,
    ts: np.ndarray,
    extra: dict[str, np.ndarray],
    allow_nan: Any = (),
    rows: np.ndarray | None = None,
) -> None:
    """The rules of the door for one symbol's extra columns (beside OHLCV).

    Each has one value per timestamp; no value is infinite; NaN (a missing value: an empty
    CSV cell, a null) only in the columns named in ``allow_nan`` (``True``: any).
    """
    n = len(ts)
    for name, arr in extra.items():
        if len(arr) != n:
            raise DataError(
                f"symbol {symbol!r}: column {name!r} has {len(arr)} values for {n} timestamps",
                symbol=symbol,
                rule="equal lengths",
            )
        if np.isinf(arr).any():
            _refuse_rows(
                np.isinf(arr),
                f"{name} not infinite",
                lambda i, a=arr, nm=name: f"{nm}={a[i]}",
                symbol,
                ts,
                rows,
            )
        if allow_nan is not True and name not in allow_nan:
            missing = np.isnan(arr)
            if missing.any():
                _refuse_rows(
                    missing,
                    f"{name} present",
                    lambda i, nm=name: (
                        f"{nm} is missing (NaN or null); if {nm!r} may have gaps, say so "
                        f"with allow_nan=[{nm!r}]"
                    ),
                    symbol,
                    ts,
                    rows,
                )


def _frozen_array(arr: Any, dtype: type) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=dtype)
    if out.flags.writeable:
        out.flags.writeable = False
    return out


@dataclass(frozen=True, eq=False)
class SymbolBars:
    """One symbol's bars as contiguous numpy columns, checked at construction.

    Parameters
    ----------
    symbol : str
        The symbol's name.
    ts : numpy.ndarray
        int64 nanoseconds since the Unix epoch, UTC, strictly increasing. A bar's
        timestamp is the start of its interval; a daily bar is labelled with its
        session date at 00:00 UTC.
    open, high, low, close, volume : numpy.ndarray
        float64, one value per timestamp.
    extra : dict of str to numpy.ndarray, optional
        Extra columns beside OHLCV (a signal, a P/E, an adjusted close): float64, one
        value per timestamp, never infinite; NaN marks a missing value (built by hand,
        the columns are taken as they are; the door allows NaN only in the columns the
        user names with ``allow_nan=``).

    Notes
    -----
    Arrays are stored C-contiguous and read-only. Constructing a ``SymbolBars`` runs every
    rule of the door (see `to_market_columns`) and raises `DataError` on the first broken.

    Examples
    --------
    >>> import numpy as np
    >>> bars = SymbolBars("ABC", np.array([0, 60_000_000_000]), np.array([1.0, 1.1]),
    ...                   np.array([1.2, 1.2]), np.array([0.9, 1.0]), np.array([1.1, 1.05]),
    ...                   np.array([100.0, 80.0]))
    >>> len(bars)
    2
    """

    symbol: str
    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.symbol, str) or not self.symbol:
            raise DataError(f"symbol names must be non-empty strings, got {self.symbol!r}")
        if np.asarray(self.ts).dtype.kind not in "iu":
            raise DataError(
                f"symbol {self.symbol!r}: ts must be int64 nanoseconds since the epoch (UTC), "
                f"got dtype {np.asarray(self.ts).dtype}",
                symbol=self.symbol,
                rule="ts int64",
            )
        object.__setattr__(self, "ts", _frozen_array(self.ts, np.int64))
        for name in VALUE_COLUMNS:
            object.__setattr__(self, name, _frozen_array(getattr(self, name), np.float64))
        check_bars(self.symbol, self.ts, self.open, self.high, self.low, self.close, self.volume)
        extra = dict(self.extra)
        for name in extra:
            check_extra_name(name, self.symbol)
        refuse_case_twins(list(extra), self.symbol)
        extra = {k: _frozen_array(v, np.float64) for k, v in extra.items()}
        check_extra_columns(self.symbol, self.ts, extra, allow_nan=True)
        object.__setattr__(self, "extra", extra)

    @classmethod
    def _trusted(
        cls,
        symbol: str,
        ts: np.ndarray,
        *values: np.ndarray,
        extra: dict[str, np.ndarray] | None = None,
    ) -> SymbolBars:
        """Build from columns the caller has already run through `check_bars` (and
        `check_extra_columns`)."""
        self = object.__new__(cls)
        object.__setattr__(self, "symbol", symbol)
        object.__setattr__(self, "ts", _frozen_array(ts, np.int64))
        for name, arr in zip(VALUE_COLUMNS, values):
            object.__setattr__(self, name, _frozen_array(arr, np.float64))
        extra = {} if extra is None else {k: _frozen_array(v, np.float64) for k, v in extra.items()}
        object.__setattr__(self, "extra", extra)
        return self

    def slice(self, start: int, stop: int) -> SymbolBars:
        """Bars ``[start, stop)`` with every column (views, no copy)."""
        return SymbolBars._trusted(
            self.symbol,
            self.ts[start:stop],
            *(getattr(self, c)[start:stop] for c in VALUE_COLUMNS),
            extra={k: v[start:stop] for k, v in self.extra.items()},
        )

    def __len__(self) -> int:
        return len(self.ts)

    def __repr__(self) -> str:
        span = f"{_fmt_ts(self.ts[0])} .. {_fmt_ts(self.ts[-1])}" if len(self) else "empty"
        return f"SymbolBars({self.symbol!r}, {len(self)} bars, {span})"

    def to_frame(self) -> pd.DataFrame:
        """The bars as a DataFrame indexed by a UTC ``DatetimeIndex`` named ``ts``."""
        index = pd.DatetimeIndex(self.ts.view("datetime64[ns]"), name="ts").tz_localize("UTC")
        columns = {name: getattr(self, name) for name in VALUE_COLUMNS}
        return pd.DataFrame({**columns, **self.extra}, index=index)


def check_extra_name(name: Any, symbol: str | None = None) -> str:
    """An extra column's name is text any store can hold and no bar column's name."""
    where = _where(symbol) or "data"
    if not isinstance(name, str) or not name.strip():
        raise DataError(
            f"{where}: column {name!r}: extra column names must be non-empty text",
            symbol=symbol,
            rule="extra column names",
        )
    if name.strip().lower() in RESERVED_NAMES:
        raise DataError(
            f"{where}: column {name!r} collides with the bar column "
            f"{name.strip().lower()!r} (names are compared ignoring case); rename it",
            symbol=symbol,
            rule="no collision with OHLCV",
        )
    if len(name.encode()) > MAX_NAME_BYTES or any(ord(ch) < 32 for ch in name):
        raise DataError(
            f"{where}: column {name!r}: extra column names are at most {MAX_NAME_BYTES} "
            "bytes without control characters (every store must hold them)",
            symbol=symbol,
            rule="extra column names",
        )
    return name


def refuse_case_twins(names: list[str], symbol: str | None = None) -> None:
    """Two extra columns whose names differ only by case would read as one in a store."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise DataError(
                f"{_where(symbol) or 'data'}: columns {other!r} and {name!r} differ only by "
                "case; keep one",
                symbol=symbol,
                rule="unambiguous columns",
            )


@dataclass(frozen=True, eq=False)
class MarketColumns:
    """Validated bars for many symbols: what the engine's Market is built from.

    Parameters
    ----------
    bars : list of SymbolBars
        One entry per symbol, sorted by symbol name, names unique.
    metadata : pandas.DataFrame, optional
        Indexed by symbol; columns such as ``sector``, ``exchange``, ``timezone``.
    order : tuple of str, optional
        The symbols in the order the user gave them (a ``symbols=`` list, a mapping's
        keys, first appearance in a long table): the order the engine visits the symbols
        of a tick in (``next`` is called in it), so that no name decides which comes
        first. None: name order (a store's symbols without a ``symbols=`` list: a store
        keeps no order of its own).

    Examples
    --------
    >>> import tickstep.data as td
    >>> market = td.sample(symbols=3, days=2, seed=1)
    >>> market.symbols == sorted(market.symbols)
    True
    """

    bars: list[SymbolBars]
    metadata: pd.DataFrame | None = field(default=None)
    order: tuple[str, ...] | None = field(default=None)

    def __post_init__(self) -> None:
        names = [b.symbol for b in self.bars]
        if self.order is not None:
            order = tuple(self.order)
            if sorted(order) != names:
                raise DataError(
                    f"MarketColumns.order must list each symbol once, got {list(order)[:20]!r} "
                    f"for {names[:20]!r}",
                    rule="call order",
                )
            object.__setattr__(self, "order", None if list(order) == names else order)
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise DataError(f"symbols appear more than once: {', '.join(dup)}", rule="unique")
        if names != sorted(names):
            raise DataError(
                "MarketColumns.bars must be sorted by symbol name (deterministic order)",
                rule="sorted symbols",
            )
        refuse_case_twins(self.columns)

    @property
    def symbols(self) -> list[str]:
        """Symbol names, in the order of `bars`."""
        return [b.symbol for b in self.bars]

    @property
    def call_order(self) -> list[str]:
        """Symbol names in the order the engine visits them (``order``, else name order)."""
        return list(self.order) if self.order is not None else self.symbols

    def in_order(self, names: Any) -> MarketColumns:
        """The same columns visited in the order of ``names`` (the symbols it holds, each
        once; names it does not hold are left out, symbols it leaves out come after, in
        the current order)."""
        held = set(self.symbols)
        first = list(dict.fromkeys(n for n in names if n in held))
        chosen = set(first)
        rest = [n for n in self.call_order if n not in chosen]
        return MarketColumns(self.bars, self.metadata, tuple(first + rest))

    @property
    def columns(self) -> list[str]:
        """Names of the extra columns beside OHLCV, over all symbols (a symbol may lack
        some), in the order they were first met."""
        names: dict[str, None] = {}
        for b in self.bars:
            names.update(dict.fromkeys(b.extra))
        return list(names)

    @property
    def n_bars(self) -> int:
        """Total number of bars over all symbols."""
        return sum(len(b) for b in self.bars)

    def __getitem__(self, symbol: str) -> SymbolBars:
        for b in self.bars:
            if b.symbol == symbol:
                return b
        raise KeyError(symbol)

    def __len__(self) -> int:
        return len(self.bars)

    def __repr__(self) -> str:
        shown = ", ".join(self.symbols[:5]) + (", ..." if len(self.bars) > 5 else "")
        return f"MarketColumns({len(self.bars)} symbols [{shown}], {self.n_bars} bars)"

    def to_frame(self) -> pd.DataFrame:
        """All bars as one long DataFrame with columns ``symbol, ts, open, ..., volume``
        and the extra columns (NaN for a symbol without one)."""
        counts = [len(b) for b in self.bars]
        ts = np.concatenate([b.ts for b in self.bars])
        frame = pd.DataFrame(
            {
                "symbol": np.repeat(np.array(self.symbols, dtype=object), counts),
                "ts": pd.DatetimeIndex(ts.view("datetime64[ns]")).tz_localize("UTC"),
            }
        )
        for name in VALUE_COLUMNS:
            frame[name] = np.concatenate([getattr(b, name) for b in self.bars])
        for name in self.columns:
            frame[name] = np.concatenate(
                [b.extra.get(name, np.full(len(b), np.nan)) for b in self.bars]
            )
        return frame
