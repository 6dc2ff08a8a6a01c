"""Resampling as a store's rows stream in: bars -> one bar per (symbol, bucket).

The embedded store hands the bars a resampled load keeps as a stream of small Arrow
record batches, in its stored order, each row with its bucket (the start of the bar it
falls in). Here they are folded into buckets batch by batch, so a load's memory is its
output plus one batch -- never a hash table of all buckets, nor the rows kept.

The rule of a bucket, as in SQL: open is the first bar's open, high the max, low the
min, close the last bar's close, volume the sum (added one bar after another in time
order), an extra column's value the last bar's (a gap stays a gap).

Stored order is per ingest, day by day, each symbol's bars of the day in time: a
symbol's rows go forward in time, other symbols' between them, and each goes into its own
arrays as it comes (no join, no sort). An ingest of days before those already stored
takes a symbol back in time: a new stretch starts there, and the stretches, which follow
each other in time, are joined when the rows end; a bucket two of them share (an ingest
that ended inside it) is made one bar, its volume the sum of the two parts'. Stretches
that overlap in time (bars stored between stored ones) raise `Interleaved`, and the store
resamples in SQL instead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pyarrow as pa

from tickstep.data._bars_query import extra_column
from tickstep.data._columns import VALUE_COLUMNS

__all__ = ["Interleaved", "fold_buckets", "split_by_symbol"]


def _sequential_sums(values: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Each run's sum, added left to right whatever the runs' lengths (``np.add.reduce``
    and ``reduceat`` add long contiguous stretches in pairs, whose last bits differ):
    runs of one length are stacked as the columns of a matrix and accumulated down it."""
    out = np.empty(len(starts), dtype=np.float64)
    # The lengths present, from a count of each (cheaper than sorting them).
    for length in np.flatnonzero(np.bincount(lengths)):
        which = np.flatnonzero(lengths == length)
        rows = starts[which][None, :] + np.arange(int(length))[:, None]
        out[which] = np.cumsum(values[rows], axis=0)[-1]
    return out


class _Batch:
    """One batch's columns as numpy arrays (names as in the bars query's result)."""

    def __init__(self, columns: dict[str, np.ndarray]) -> None:
        self.columns = columns

    @classmethod
    def of(cls, batch: pa.RecordBatch, n_extra: int, bucketed: bool = True) -> _Batch:
        columns: dict[str, np.ndarray] = {}
        keys = ("symbol_id", "bucket", "ts") if bucketed else ("symbol_id", "ts")
        for name in (*keys, *VALUE_COLUMNS):
            columns[name] = batch.column(name).to_numpy(zero_copy_only=False)
        for k in range(n_extra):
            values = batch.column(extra_column(k))
            if values.type != pa.float64():
                values = values.cast(pa.float64())
            columns[f"{extra_column(k)}:null"] = values.is_null().to_numpy(zero_copy_only=False)
            columns[extra_column(k)] = values.fill_null(np.nan).to_numpy(zero_copy_only=False)
        return cls(columns)

    def __len__(self) -> int:
        return len(self.columns["ts"]) if self.columns else 0

    def split(self, at: int) -> tuple[_Batch, _Batch]:
        return (
            _Batch({k: v[:at] for k, v in self.columns.items()}),
            _Batch({k: v[at:] for k, v in self.columns.items()}),
        )

    def then(self, other: _Batch) -> _Batch:
        if not len(self):
            return other
        return _Batch({k: np.concatenate((v, other.columns[k])) for k, v in self.columns.items()})

    def runs(self) -> np.ndarray:
        """Where runs of one symbol's consecutive bars of one bucket start (and len)."""
        c = self.columns
        sid, bucket, ts = c["symbol_id"], c["bucket"], c["ts"]
        cut = (sid[1:] != sid[:-1]) | (bucket[1:] != bucket[:-1]) | (ts[1:] <= ts[:-1])
        return np.concatenate(([0], np.flatnonzero(cut) + 1, [len(ts)]))

    def fold(self, bounds: np.ndarray, n_extra: int) -> dict[str, np.ndarray]:
        """One partial bar per run between ``bounds``."""
        c = self.columns
        starts, ends = bounds[:-1], bounds[1:]
        last = ends - 1
        part = {
            "symbol_id": c["symbol_id"][starts],
            "ts": c["bucket"][starts],
            "first_ts": c["ts"][starts],
            "last_ts": c["ts"][last],
            "open": c["open"][starts],
            "high": np.maximum.reduceat(c["high"], starts),
            "low": np.minimum.reduceat(c["low"], starts),
            "close": c["close"][last],
            "volume": _sequential_sums(c["volume"], starts, ends - starts),
        }
        for k in range(n_extra):
            alias = extra_column(k)
            part[alias] = c[alias][last]
            part[f"{alias}:null"] = c[f"{alias}:null"][last]
        return part


class Interleaved(Exception):
    """A symbol's stored stretches overlap in time (bars stored between stored ones):
    its buckets cannot be made from the stretches; the caller resamples in SQL."""


class _Stretch:
    """A symbol's finished bars from rows that go forward in time, appended into arrays
    that grow by doubling (``ndarray.resize``: a realloc, so pages are touched only as
    bars arrive)."""

    def __init__(self, first_ts: int, capacity: int = 64) -> None:
        self.columns: dict[str, np.ndarray] = {}
        self.n = 0
        self.capacity = capacity  # bars the arrays are first made for
        self.first_ts = first_ts  # times of the first and last bar folded in
        self.last_ts = first_ts

    def append(self, part: dict[str, np.ndarray], lo: int, hi: int, last_ts: int) -> None:
        """Partial bars ``part[lo:hi]``, made of bars after this stretch's last one;
        ``last_ts`` the time of the last bar they were made of."""
        if self.n and part["ts"][lo] == self.columns["ts"][self.n - 1]:
            # The bucket the stretch ended in goes on: one bar, its volume the sum of
            # the two parts'.
            last = self.n - 1
            c = self.columns
            c["high"][last] = max(c["high"][last], part["high"][lo])
            c["low"][last] = min(c["low"][last], part["low"][lo])
            c["volume"][last] = c["volume"][last] + part["volume"][lo]
            for name in c:
                if name not in ("ts", "open", "high", "low", "volume"):
                    c[name][last] = part[name][lo]  # close and extras: the last bar's
            lo += 1
        k = hi - lo
        if k > 0:
            if not self.columns:
                # Pages of an array are touched only as bars are written: a generous
                # capacity costs no memory, and saves the copies of growing.
                size = max(k, self.capacity)
                self.columns = {n: np.empty(size, dtype=part[n].dtype) for n in _names(part)}
            capacity = len(self.columns["ts"])
            if self.n + k > capacity:
                grown = max(2 * capacity, self.n + k)
                for values in self.columns.values():
                    values.resize(grown, refcheck=False)
            for name, values in self.columns.items():
                values[self.n : self.n + k] = part[name][lo:hi]
            self.n += k
        self.last_ts = last_ts

    def bars(self) -> dict[str, np.ndarray]:
        """The arrays cut to their length."""
        for values in self.columns.values():
            values.resize(self.n, refcheck=False)
        return self.columns


def _names(part: dict[str, np.ndarray]) -> list[str]:
    """A partial bars' columns that are the output's."""
    return [n for n in part if n not in ("symbol_id", "first_ts", "last_ts")]


class _SymbolBars:
    """One symbol's bars as its rows arrive: stretches that each go forward in time (one
    per ingest that went back before an earlier one's bars), joined at the end."""

    def __init__(self, capacity: int = 64) -> None:
        self.stretches: list[_Stretch] = []
        self.capacity = capacity

    def add(self, part: dict[str, np.ndarray], lo: int, hi: int) -> None:
        first, last = part["first_ts"], part["last_ts"]
        # Time goes back between two of the part's runs: a new stretch starts there.
        back = np.flatnonzero(first[lo + 1 : hi] <= last[lo : hi - 1]) + lo + 1
        for a, b in zip(np.concatenate(([lo], back)), np.concatenate((back, [hi]))):
            a, b = int(a), int(b)
            if not self.stretches or first[a] <= self.stretches[-1].last_ts:
                # The first stretch is made for all the symbol's bars (usually the only
                # one); a later one (a backfill) grows as its bars come.
                self.stretches.append(_Stretch(int(first[a]), 64 if self.stretches else self.capacity))
            self.stretches[-1].append(part, a, b, int(last[b - 1]))

    def finish(self) -> dict[str, np.ndarray]:
        """The bars, read-only (the engine adopts them in place); a null mask only if
        some bar has a gap. Raises `Interleaved` when two stretches overlap in time."""
        if len(self.stretches) == 1:
            bars = self.stretches[0].bars()
        else:
            stretches = sorted(self.stretches, key=lambda s: s.first_ts)
            for before, after in zip(stretches[:-1], stretches[1:]):
                if after.first_ts <= before.last_ts:
                    raise Interleaved
            # Joined in time order into one stretch sized for them all.
            joined = _Stretch(stretches[0].first_ts)
            total = sum(s.n for s in stretches)
            joined.columns = {
                n: np.empty(total, dtype=v.dtype) for n, v in stretches[0].columns.items()
            }
            for stretch in stretches:
                joined.append(stretch.bars(), 0, stretch.n, stretch.last_ts)
                stretch.columns = {}
            bars = joined.bars()
        out = {}
        for name, values in bars.items():
            if name.endswith(":null") and not values.any():
                continue
            values.flags.writeable = False
            out[name] = values
        return out


def fold_buckets(
    batches: Iterable[pa.RecordBatch], n_extra: int = 0, capacity: Mapping[int, int] | None = None
) -> dict[int, dict[str, np.ndarray]]:
    """Stream of bucketed bars -> {symbol id: {"ts", "open", ..., "volume", "e0", ...}}.

    ``batches`` have columns ``symbol_id, bucket, ts, open, high, low, close, volume`` and
    ``e0, e1, ...`` (the ``n_extra`` extra columns, NULL where a bar has none), each
    symbol's bars in time order (symbols may take turns, e.g. day by day). The output's
    ``e0:null`` (present only when some bar's is NULL) marks buckets whose last bar had
    no value. Each symbol's bars are written into its own growing arrays as they come,
    so the load holds its output and a batch.

    ``capacity``: per symbol id, how many buckets it may have at most (more only cost
    the arrays' growing).

    Raises `Interleaved` when a symbol's stretches of bars going forward in time overlap.
    """
    growing: dict[int, _SymbolBars] = {}
    held = _Batch({})

    def add(part: dict[str, np.ndarray]) -> None:
        sid = part["symbol_id"]
        cut = np.flatnonzero(sid[1:] != sid[:-1]) + 1
        for lo, hi in zip(np.concatenate(([0], cut)), np.concatenate((cut, [len(sid)]))):
            symbol = int(sid[lo])
            target = growing.get(symbol)
            if target is None:
                target = growing[symbol] = _SymbolBars((capacity or {}).get(symbol, 64))
            target.add(part, int(lo), int(hi))

    for record_batch in batches:
        if not record_batch.num_rows:
            continue
        batch = held.then(_Batch.of(record_batch, n_extra))
        bounds = batch.runs()
        # The last run may go on in the next batch: it is held until then.
        ready, held = batch.split(int(bounds[-2]))
        if len(ready):
            add(ready.fold(bounds[:-1], n_extra))
    if len(held):
        add(held.fold(held.runs(), n_extra))
    return {symbol: bars.finish() for symbol, bars in growing.items()}


def _frozen(bars: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Read-only arrays (the engine adopts them in place); a null mask only if any null."""
    out = {}
    for name, values in bars.items():
        if name.endswith(":null") and not values.any():
            continue
        values = np.ascontiguousarray(values)
        values.flags.writeable = False
        out[name] = values
    return out


def split_by_symbol(
    batches: Iterable[pa.RecordBatch], n_extra: int = 0
) -> dict[int, dict[str, np.ndarray]]:
    """Stream of resampled bars ordered by symbol -> {symbol id: its columns}, as
    `fold_buckets` gives them, each symbol's arrays joined when its rows end (so at most
    one symbol's rows and one batch are held besides the output).

    ``batches`` have columns ``symbol_id, ts, open, high, low, close, volume, e0, ...``,
    each symbol's rows together (PostgreSQL's resampled bars, ORDER BY symbol_id, ts).
    """
    done: dict[int, dict[str, np.ndarray]] = {}
    pieces: list[dict[str, np.ndarray]] = []

    def finish() -> None:
        sid = int(pieces[0]["symbol_id"][0])
        if sid in done:  # pragma: no cover - the query orders by symbol
            raise ValueError("the store returned a symbol's bars apart")
        done[sid] = _frozen(
            {n: np.concatenate([p[n] for p in pieces]) for n in pieces[0] if n != "symbol_id"}
        )
        pieces.clear()

    for record_batch in batches:
        if not record_batch.num_rows:
            continue
        batch = _Batch.of(record_batch, n_extra, bucketed=False).columns
        sid = batch["symbol_id"]
        cut = np.flatnonzero(sid[1:] != sid[:-1]) + 1
        for lo, hi in zip(np.concatenate(([0], cut)), np.concatenate((cut, [len(sid)]))):
            if pieces and pieces[0]["symbol_id"][0] != sid[lo]:
                finish()
            pieces.append({k: v[lo:hi] for k, v in batch.items()})
    if pieces:
        finish()
    return done
