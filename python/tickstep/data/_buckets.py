"""Resampling as a store's rows stream in: bars -> one bar per (symbol, bucket).

The embedded store hands the bars a resampled load keeps as a stream of small Arrow
record batches, in its stored order, each row with its bucket (the start of the bar it
falls in). Here they are folded into buckets batch by batch, so a load's memory is its
output plus one batch -- never a hash table of all buckets, nor the rows kept.

The rule of a bucket, as in SQL: open is the first bar's open, high the max, low the
min, close the last bar's close, volume the sum (added one bar after another in time
order), an extra column's value the last bar's (a gap stays a gap).

Stored order is each symbol's bars in time, symbol after symbol, per ingest: a symbol's
rows come in stretches that each go forward in time. Stretches that follow each other in
time (ingests of later days, or of earlier ones) are joined; a bucket two of them share
(an ingest that ended inside it) is made one bar, its volume the sum of the two parts'.
Stretches that overlap in time (bars stored between stored ones) raise `Interleaved`,
and the store resamples in SQL instead.
"""

from __future__ import annotations

from collections.abc import Iterable

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
    for length in np.unique(lengths):
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
    """A symbol's stored stretches overlap in time (bars stored into its past after
    later ones): buckets cannot be joined from finished stretches; the caller runs the
    aggregate in SQL instead."""


def _finish(chunks: list[dict[str, np.ndarray]]) -> tuple[dict[str, np.ndarray], int, int]:
    """A stretch's partial bars, chunk after chunk -> its bars, and the times of the
    first and last bar they were made of."""
    if len(chunks) == 1:
        parts = dict(chunks[0])
    else:
        parts = {n: np.concatenate([c[n] for c in chunks]) for n in chunks[0]}
    first, last = int(parts["first_ts"][0]), int(parts["last_ts"][-1])
    return (
        {k: v for k, v in parts.items() if k not in ("symbol_id", "first_ts", "last_ts")},
        first,
        last,
    )


def _join_stretches(
    stretches: list[tuple[dict[str, np.ndarray], int, int]],
) -> dict[str, np.ndarray]:
    """A symbol's bars from stretches of stored rows that follow each other in time
    (several ingests): concatenated, the bucket two stretches share made one bar."""
    stretches = sorted(stretches, key=lambda s: s[1])
    bars, _, end = stretches[0]
    for nxt, first, last in stretches[1:]:
        if first <= end:
            raise Interleaved
        if len(bars["ts"]) and len(nxt["ts"]) and bars["ts"][-1] == nxt["ts"][0]:
            joined = {}
            for name, values in nxt.items():
                head = values[:1].copy()
                if name == "open":
                    head[0] = bars["open"][-1]
                elif name == "high":
                    head[0] = max(head[0], bars["high"][-1])
                elif name == "low":
                    head[0] = min(head[0], bars["low"][-1])
                elif name == "volume":
                    head[0] = bars["volume"][-1] + head[0]
                joined[name] = np.concatenate((bars[name][:-1], head, values[1:]))
            bars = joined
        else:
            bars = {n: np.concatenate((v, nxt[n])) for n, v in bars.items()}
        end = last
    return bars


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


def fold_buckets(
    batches: Iterable[pa.RecordBatch], n_extra: int = 0
) -> dict[int, dict[str, np.ndarray]]:
    """Stream of bucketed bars -> {symbol id: {"ts", "open", ..., "volume", "e0", ...}}.

    ``batches`` have columns ``symbol_id, bucket, ts, open, high, low, close, volume`` and
    ``e0, e1, ...`` (the ``n_extra`` extra columns, NULL where a bar has none). The
    output's ``e0:null`` (present only when some bar's is NULL) marks buckets whose last
    bar had no value. A symbol's partial bars are joined into arrays when its rows end,
    so at most one symbol's are held twice.

    Raises `Interleaved` when a symbol's stored stretches overlap in time.
    """
    done: dict[int, list[tuple[dict[str, np.ndarray], int, int]]] = {}
    chunks: list[dict[str, np.ndarray]] = []
    previous = (-1, np.iinfo(np.int64).max)  # the last partial bar's symbol and time
    held = _Batch({})

    def add(part: dict[str, np.ndarray]) -> None:
        # A stretch ends where the symbol changes or time goes back.
        nonlocal chunks, previous
        sid, first = part["symbol_id"], part["first_ts"]
        before_sid = np.concatenate(([previous[0]], sid[:-1]))
        before_ts = np.concatenate(([previous[1]], part["last_ts"][:-1]))
        cut = np.flatnonzero((sid != before_sid) | (first <= before_ts))
        bounds = np.concatenate((cut, [len(sid)]))
        if not len(cut) or cut[0] != 0:
            bounds = np.concatenate(([0], bounds))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if lo in cut and chunks:
                done.setdefault(int(chunks[0]["symbol_id"][0]), []).append(_finish(chunks))
                chunks = []
            chunks.append({k: v[lo:hi] for k, v in part.items()})
        previous = (int(sid[-1]), int(part["last_ts"][-1]))

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
    if chunks:
        done.setdefault(int(chunks[0]["symbol_id"][0]), []).append(_finish(chunks))
    return {
        symbol: _frozen(stretches[0][0] if len(stretches) == 1 else _join_stretches(stretches))
        for symbol, stretches in done.items()
    }


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
