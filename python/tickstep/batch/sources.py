"""Where a batch's workers find their bars: small picklable descriptions of data sources.

Workers never receive bars. They receive a `DataSource` -- a store path, a file path, or
a snapshot file the parent wrote once for in-memory data -- plus the symbols a job needs,
and load them themselves. Each process keeps what it loaded in its
`~tickstep.batch.worker_cache.WorkerCache`, so many jobs on the same symbols load them
once.

The parent fingerprints the data (a hash of each symbol's timestamps, prices, volumes and
metadata) to key the results cache. For stores and files the fingerprints are cached
too, keyed by the file's identity (path, size, modification time) and the load request,
so a repeated batch does not read the data at all.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import socket
import tempfile
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from pyarrow import ipc

from tickstep import _core
from tickstep.batch.jobs import _digest, canonical, loader_fingerprint
from tickstep.data import (
    BarsFile,
    BarStore,
    DataError,
    MarketColumns,
    SymbolBars,
    open_store,
    resolve,
)
from tickstep.data._files import file_format

__all__ = [
    "DataSource",
    "PreparedData",
    "Snapshot",
    "default_scratch_dir",
    "prepare_data",
    "snapshot_owner",
    "snapshot_path",
    "sweep_stale_snapshots",
]

_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
_POSTGRES_SCHEMES = ("postgresql:", "postgres:")
_SNAPSHOT_SYMBOLS = b"tickstep.symbols"
# Extra columns of a snapshot: {name: [indices of the symbols that have it]}; the column
# is stored as "extra:<name>", NaN in the rows of symbols without it.
_SNAPSHOT_EXTRA = b"tickstep.extra"


def default_scratch_dir() -> Path:
    """Where snapshots of in-memory data are written for workers (the system temp dir).

    A batch removes its snapshot when it ends; one killed before it could is removed by
    the next batch using the same directory (`sweep_stale_snapshots`).
    """
    return Path(tempfile.gettempdir()) / "tickstep-batch"


# ---- snapshot files and their owners ---------------------------------------------------------

# A snapshot is named <token>-<owner pid>-<random>-<host>.arrow (+ ".meta"; while being
# written ".<name>.<pid>.<random>.tmp"): the owner is known from the name alone.
# The host is in the name because a scratch directory may be shared by several machines
# (Dask): a pid only means something on the machine that made the file.
_HOST = hashlib.blake2b(socket.gethostname().encode(), digest_size=4).hexdigest()


def snapshot_path(scratch: Path, token: str) -> Path:
    """A new snapshot's path in ``scratch``, owned by this process."""
    return scratch / f"{token}-{os.getpid()}-{uuid.uuid4().hex[:12]}-{_HOST}.arrow"


def snapshot_owner(name: str) -> int | None:
    """The pid of the process on this machine that owns the snapshot file ``name``
    (the snapshot, its ``.meta`` or a temporary file), or None if it is none of ours."""
    if ".arrow" not in name:
        return None
    parts = name.lstrip(".").split(".arrow", 1)[0].split("-")
    if len(parts) != 4 or parts[3] != _HOST or not parts[1].isdigit():
        return None
    return int(parts[1])


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:  # a zombie (killed, not yet reaped by its parent) holds nothing open
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def sweep_stale_snapshots(scratch: Path) -> list[Path]:
    """Remove the snapshot files in ``scratch`` whose owner process is gone (a batch
    killed before it could clean up); never one whose owner still runs. Returns them."""
    removed = []
    try:
        entries = list(os.scandir(scratch))
    except FileNotFoundError:
        return removed
    for entry in entries:
        pid = snapshot_owner(entry.name)
        if pid is None or pid == os.getpid() or _process_exists(pid):
            continue
        with contextlib.suppress(FileNotFoundError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


# ---- fingerprints ----------------------------------------------------------------------------


def _metadata_rows(metadata: pd.DataFrame | None) -> dict[str, str]:
    if metadata is None or len(metadata) == 0:
        return {}
    cols = [str(c) for c in metadata.columns]
    return {
        str(sym): canonical(list(zip(cols, (canonical(v) for v in row))))
        for sym, row in zip(metadata.index, metadata.itertuples(index=False, name=None))
    }


def fingerprint_stream(stream: Any) -> dict[str, str]:
    """`fingerprint_columns` of a streamed batch: per symbol a hash of its bars read
    window by window (timestamps, OHLCV and extra columns of each window in turn) and
    its metadata row, keyed in the stream's call order; never all bars at once."""
    meta = _metadata_rows(stream.metadata)
    hashes = {}
    for name, owned in zip(stream.symbols, stream.owned):
        h = hashlib.blake2b(digest_size=20)
        h.update(name.encode() + b"\0" + meta.get(name, "").encode() + b"\0stream\0")
        h.update(canonical(list(owned)).encode())
        hashes[name] = h
    for window in stream.windows():
        for s, name in enumerate(stream.symbols):
            part = window.parts[s]
            if not len(part[0]):
                continue
            h = hashes[name]
            for values in (*part, *(window.extra[s].values() if window.extra else ())):
                h.update(memoryview(np.ascontiguousarray(values)).cast("B"))
    return {name: hashes[name].hexdigest() for name in stream.call_order}


def fingerprint_columns(columns: MarketColumns) -> dict[str, str]:
    """Per symbol, a hash of its bars (timestamps, OHLCV bytes) and metadata row, keyed
    in the order the engine visits the symbols (`MarketColumns.call_order`), which the
    batch keeps with the fingerprints."""
    meta = _metadata_rows(columns.metadata)
    out = {}
    by_name = {b.symbol: b for b in columns.bars}
    for b in (by_name[name] for name in columns.call_order):
        h = hashlib.blake2b(digest_size=20)
        h.update(b.symbol.encode() + b"\0" + meta.get(b.symbol, "").encode() + b"\0")
        for name in _COLUMNS:
            h.update(memoryview(np.ascontiguousarray(getattr(b, name))).cast("B"))
        for name, values in b.extra.items():
            h.update(b"\0extra\0" + name.encode() + b"\0")
            h.update(memoryview(np.ascontiguousarray(values)).cast("B"))
        out[b.symbol] = h.hexdigest()
    return out


def _file_identity(path: str | PathLike[str]) -> str:
    p = Path(path)
    parts = []
    for q in (p, p.with_name(p.name + ".wal")):
        try:
            st = q.stat()
        except FileNotFoundError:
            continue
        parts.append(f"{q.name}:{st.st_size}:{st.st_mtime_ns}:{st.st_ino}")
    return f"{p.resolve()}|" + "|".join(parts)


# ---- data sources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataSource:
    """How a worker loads bars: a small, picklable description; never the bars.

    Attributes
    ----------
    kind : {"store", "store-object", "file", "snapshot"}
        A DuckDB store file (opened read-only); any other pickled store object (e.g. a
        PostgreSQL store, pickled as its URL); a CSV/Parquet/Arrow file of bars; or a
        snapshot the batch wrote for in-memory data.
    location : str
        The path (or, for ``store-object``, a description).
    token : str
        Identity of the content (file identity or data hash); per-process caches are
        keyed by it, so a changed file is never served from a stale cache.
    start, end, load_options :
        The load request (store sources only take ``load_options``).
    payload : bytes, optional
        The pickled store, for ``store-object``.
    """

    kind: str
    location: str
    token: str
    start: Any = None
    end: Any = None
    load_options: tuple[tuple[str, Any], ...] = ()
    payload: bytes | None = field(default=None, repr=False)

    def connect(self) -> Any:
        """A new connection to the store (``store`` and ``store-object`` sources)."""
        if self.kind == "store":
            return open_store(self.location, read_only=True)
        return pickle.loads(self.payload or b"")  # e.g. a PostgresStore reconnects by URL

    def load_from(self, store: Any, symbols: Sequence[str]) -> MarketColumns:
        """``symbols`` from an open ``store`` with this source's request, through the door."""
        return resolve(store, symbols=sorted(symbols), start=self.start, end=self.end,
                       **dict(self.load_options))

    def read_file(self) -> MarketColumns:
        """The whole bars file (``file`` sources); `select` keeps the request's part."""
        return resolve(self.location, **dict(self.load_options))

    def select(self, columns: MarketColumns, symbols: Sequence[str]) -> MarketColumns:
        """``symbols`` of ``columns`` within this source's ``start``/``end`` (the door's rule)."""
        return resolve(columns, symbols=sorted(symbols), start=self.start, end=self.end)

    def stream(self, symbols: Sequence[str], window: Any) -> Any:
        """``symbols`` (visited in their order) as a `~tickstep.data.BarStream` of
        ``window``, with this source's request: a store is read window by window (its
        own connection, closed with the stream); a snapshot or file is in memory anyway
        and is cut into the same windows."""
        from tickstep.data._stream import open_stream

        names = list(symbols)
        if self.kind == "snapshot":
            columns = Snapshot.open(self.location).columns(sorted(names))
            return open_stream(columns, window=window, symbols=names)
        if self.kind == "file":
            return open_stream(self.location, window=window, symbols=names, start=self.start,
                               end=self.end, **dict(self.load_options))
        # A connection of its own, closed with the stream.
        return open_stream(self.connect(), window=window, symbols=names, start=self.start,
                           end=self.end, close_store=True, **dict(self.load_options))

    def load(self, symbols: Sequence[str]) -> MarketColumns:
        """Load ``symbols`` once, holding nothing open afterwards (the parent's case;
        workers load through their `WorkerCache`)."""
        if self.kind == "snapshot":
            return Snapshot.open(self.location).columns(sorted(symbols))
        if self.kind == "file":
            return resolve(self.location, symbols=sorted(symbols), start=self.start,
                           end=self.end, **dict(self.load_options))
        store = self.connect()
        try:
            return self.load_from(store, symbols)
        finally:
            store.close()


# Snapshots: one Arrow IPC file, rows sorted by symbol, read by memory map (no copy).
def write_snapshot(columns: MarketColumns, path: Path) -> None:
    """Write validated columns as an Arrow IPC snapshot (atomically)."""
    bars = columns.bars
    lengths = np.array([len(b) for b in bars], dtype=np.int64)
    extra = columns.columns
    table = pa.table(
        {"symbol": pa.array(np.repeat(np.arange(len(bars), dtype=np.int32), lengths))}
        | {name: pa.array(np.concatenate([getattr(b, name) for b in bars])) for name in _COLUMNS}
        | {
            f"extra:{name}": pa.array(
                np.concatenate([b.extra.get(name, np.full(len(b), np.nan)) for b in bars])
            )
            for name in extra
        }
    ).replace_schema_metadata(
        {
            _SNAPSHOT_SYMBOLS: json.dumps(columns.symbols).encode(),
            _SNAPSHOT_EXTRA: json.dumps(
                {name: [i for i, b in enumerate(bars) if name in b.extra] for name in extra}
            ).encode(),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    with pa.OSFile(str(tmp), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=max(1, table.num_rows))
    if columns.metadata is not None:
        meta_tmp = tmp.with_suffix(".meta.tmp")
        pa_meta = pa.Table.from_pandas(columns.metadata, preserve_index=True)
        with pa.OSFile(str(meta_tmp), "wb") as sink, ipc.new_file(sink, pa_meta.schema) as w:
            w.write_table(pa_meta)
        os.replace(meta_tmp, _meta_path(path))
    os.replace(tmp, path)


def _meta_path(path: Path) -> Path:
    return path.with_name(path.name + ".meta")


@dataclass
class Snapshot:
    """A snapshot file, memory-mapped: all symbols' columns, rows sorted by symbol."""

    names: list[str]
    starts: np.ndarray
    arrays: dict[str, np.ndarray]
    metadata: pd.DataFrame | None
    #: Extra column name -> the indices of the symbols that have it.
    extra: dict[str, set[int]] = field(default_factory=dict)

    @classmethod
    def open(cls, path: str) -> Snapshot:
        table = ipc.open_file(pa.memory_map(path)).read_all()
        names = json.loads(table.schema.metadata[_SNAPSHOT_SYMBOLS])
        extra = {
            name: set(held)
            for name, held in json.loads(table.schema.metadata.get(_SNAPSHOT_EXTRA, b"{}")).items()
        }
        arrays = {
            name: table.column(name).combine_chunks().to_numpy(zero_copy_only=True)
            for name in ("symbol", *_COLUMNS, *(f"extra:{n}" for n in extra))
        }
        starts = np.searchsorted(arrays.pop("symbol"), np.arange(len(names) + 1, dtype=np.int32))
        meta_file = _meta_path(Path(path))
        metadata = None
        if meta_file.exists():
            metadata = ipc.open_file(pa.memory_map(str(meta_file))).read_all().to_pandas()
        return cls(names, starts, arrays, metadata, extra)

    def columns(self, names: list[str]) -> MarketColumns:
        """The bars of ``names`` (views of the mapped file) and their metadata."""
        where = {n: i for i, n in enumerate(self.names)}
        missing = [n for n in names if n not in where]
        if missing:
            raise DataError(f"symbol(s) not in the batch's data: {missing}", symbol=missing[0])
        trusted = getattr(SymbolBars, "_trusted", None)
        bars = []
        for n in names:
            a, b = self.starts[where[n]], self.starts[where[n] + 1]
            cols = [self.arrays[c][a:b] for c in _COLUMNS]
            extra = {
                name: self.arrays[f"extra:{name}"][a:b]
                for name, held in self.extra.items()
                if where[n] in held
            }
            # The snapshot was written from validated columns.
            bars.append(
                trusted(n, *cols, extra=extra) if trusted is not None else SymbolBars(n, *cols)
            )
        meta = self.metadata
        if meta is not None:
            meta = meta.reindex(names)
        return MarketColumns(bars, meta)


# ---- the parent's side ---------------------------------------------------------------------------


@dataclass
class PreparedData:
    """The batch's data as the parent sees it: symbols, fingerprints, the workers' source.

    Attributes
    ----------
    symbols : list of str
        Every symbol available to the batch (after the ``symbols`` selection), sorted.
    fingerprints : dict
        ``symbol -> hash`` of its bars and metadata, in the order ``next`` sees the
        symbols; computed from ``loaded`` on first need when the batch did not ask for
        them up front (no results cache to key).
    """

    symbols: list[str]
    _fingerprints: dict[str, str] | None
    _source: DataSource | None
    _materialize: Callable[[], DataSource] | None = None
    #: The bars, when this process holds them anyway (in-memory data, or loaded to
    #: fingerprint a store); None when the fingerprints came from the cache.
    loaded: MarketColumns | None = None
    #: The symbols in the order ``next`` sees them, when neither fingerprints nor bars
    #: are at hand to say it (a streamed batch without a results cache).
    order: list[str] | None = None

    @property
    def fingerprints(self) -> dict[str, str]:
        if self._fingerprints is None:
            assert self.loaded is not None, "fingerprints come from the cache or the bars"
            self._fingerprints = fingerprint_columns(self.loaded)
        return self._fingerprints

    @property
    def call_order(self) -> list[str]:
        """The symbols in the order ``next`` sees them (the fingerprints keep it)."""
        if self._fingerprints is None and self.loaded is not None:
            return list(self.loaded.call_order)
        if self._fingerprints is None and self.order is not None:
            return list(self.order)
        return list(self.fingerprints)

    def source(self) -> DataSource:
        """The workers' data source (writing a snapshot first, if one is needed)."""
        if self._source is None:
            assert self._materialize is not None
            self._source = self._materialize()
        return self._source

    def cleanup(self) -> None:
        """Remove the snapshot this batch wrote, if any."""
        if self._materialize is not None and self._source is not None:
            for path in (Path(self._source.location), _meta_path(Path(self._source.location))):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()

    def data_key(self, symbols: Sequence[str]) -> str:
        """Hash of the bars and metadata of ``symbols`` (a job's data)."""
        return _digest(*(self.fingerprints[s] for s in symbols))


def _snapshot_source(
    load: Callable[[], MarketColumns], fingerprints: dict[str, str], scratch: Path
) -> Callable[[], DataSource]:
    def materialize() -> DataSource:
        token = _digest(*(f"{s}={f}" for s, f in sorted(fingerprints.items())))
        # One file per batch, removed when it ends (PreparedData.cleanup): never shared,
        # so never removed under another batch's workers. The owner is in the name.
        path = snapshot_path(scratch, token)
        write_snapshot(load(), path)
        return DataSource("snapshot", str(path), token)

    return materialize


def _symbol_request(symbols: Sequence[str] | None) -> list[str] | None:
    # In the order given: it is the order `next` sees the symbols in.
    return None if symbols is None else list(dict.fromkeys(symbols))


def prepare_data(
    data: Any,
    *,
    symbols: Sequence[str] | None,
    start: Any,
    end: Any,
    load_options: Mapping[str, Any],
    cache: Any,
    scratch_dir: Path | None,
    stream: Any = None,
) -> PreparedData:
    """Resolve ``data`` into symbols, fingerprints and a source workers can load from.

    Parameters
    ----------
    data : store, path, URL, MarketColumns, DataFrame or mapping
        Anything `tickstep.Backtest` accepts.
    symbols : sequence of str, optional
        Restrict to these symbols (all otherwise).
    start, end, load_options :
        The load request, as for `tickstep.Backtest`.
    cache : ResultsCache or None
        Where fingerprints of stores and files are remembered between batches.
    scratch_dir : path, optional
        Where snapshots of in-memory data go (see `default_scratch_dir`).
    stream : window, optional
        A streamed batch (``stream=`` of its config): a store the workers can open
        themselves (a DuckDB path or read-only store, PostgreSQL) is fingerprinted
        window by window and never loaded whole; other data are in memory anyway and
        are prepared as without streaming (workers cut them into windows).
    """
    scratch = Path(scratch_dir) if scratch_dir is not None else default_scratch_dir()
    sweep_stale_snapshots(scratch)
    request = _symbol_request(symbols)
    options = tuple(sorted(load_options.items()))
    if isinstance(data, _core.Market):
        raise TypeError("pass the data (store, path, DataFrame, MarketColumns), not a Market")
    if stream is not None:
        streamed = _streamed_store(data, request, start, end, load_options, cache, stream)
        if streamed is not None:
            return streamed

    def load() -> MarketColumns:  # the one door, as `Backtest` uses it
        return resolve(data, symbols=request, start=start, end=end, **load_options)

    is_path = isinstance(data, (str, PathLike))
    if is_path and not str(data).startswith(_POSTGRES_SCHEMES):
        # A file or a DuckDB store by path: fingerprints are remembered by the file's
        # identity, so a repeated batch reads nothing; workers open the path themselves.
        path = str(Path(data).expanduser())
        kind = "file" if file_format(path) is not None else "store"
        if kind == "store" and not Path(path).exists():
            resolve(path)  # refuses, naming the path and the kinds of source
        return _stat_keyed(kind, path, start, end, options, load, request, cache, None)
    if is_path or isinstance(data, (BarStore, BarsFile)):
        store = open_store(data) if is_path else data

        def load_store() -> MarketColumns:
            return resolve(store, symbols=request, start=start, end=end, **load_options)

        path = getattr(store, "path", None) if isinstance(store, BarStore) else None
        if path is not None and str(path) != ":memory:":
            # A store this process writes to holds the file's lock, so workers could not
            # open it: they get a snapshot of what the batch loads, written once.
            snapshot = None if getattr(store, "read_only", False) else scratch
            return _stat_keyed(
                "store", str(path), start, end, options, load_store, request, cache, snapshot
            )
        try:
            payload = pickle.dumps(store, protocol=5)
        except (TypeError, AttributeError, pickle.PicklingError):  # exists only here
            payload = None
        columns = load_store()
        fingerprints = fingerprint_columns(columns)
        if payload is not None and len(payload) < 1 << 16:
            token = _digest(repr(store), *sorted(fingerprints.values()))
            src = DataSource("store-object", repr(store), token, start, end, options, payload)
            return PreparedData(sorted(fingerprints), fingerprints, src, loaded=columns)
        return PreparedData(
            sorted(fingerprints), fingerprints, None,
            _snapshot_source(lambda: columns, fingerprints, scratch), loaded=columns,
        )
    # In memory: validated once here, then written once as a snapshot the workers map.
    columns = load()
    fingerprints = fingerprint_columns(columns)
    return PreparedData(
        sorted(fingerprints), fingerprints, None,
        _snapshot_source(lambda: columns, fingerprints, scratch), loaded=columns,
    )


def _streamed_store(data: Any, request: list[str] | None, start: Any, end: Any,
                    load_options: Mapping[str, Any], cache: Any,
                    window: Any) -> PreparedData | None:
    """The `PreparedData` of a streamed batch over a store workers open themselves, or
    None (in-memory data, files, a store only this process can read)."""
    from tickstep.data._stream import open_stream

    options = tuple(sorted(load_options.items()))
    is_path = isinstance(data, (str, PathLike))
    if is_path and not str(data).startswith(_POSTGRES_SCHEMES):
        path = str(Path(data).expanduser())
        if file_format(path) is not None or not Path(path).exists():
            return None
        kind, location, payload = "store", path, None
    elif is_path or isinstance(data, BarStore):
        store = open_store(data) if is_path else data
        path = getattr(store, "path", None)
        if path is not None and str(path) != ":memory:":
            if not getattr(store, "read_only", False):
                return None  # this process holds the file's lock: workers could not open it
            kind, location, payload = "store", str(path), None
        else:
            try:
                payload = pickle.dumps(store, protocol=5)
            except (TypeError, AttributeError, pickle.PicklingError):  # exists only here
                return None
            if len(payload) >= 1 << 16:
                return None
            kind, location = "store-object", repr(store)
    else:
        return None
    identity = _digest(kind, _file_identity(location) if kind == "store" else location,
                       canonical(request), canonical(start), canonical(end),
                       canonical(list(options)), f"stream={canonical(window)}",
                       loader_fingerprint())
    fingerprints = (cache.get_fingerprint(identity)
                    if cache is not None and kind == "store" else None)
    if fingerprints is None:
        source = DataSource(kind, location, identity, start, end, options, payload)
        if request is not None:
            streamed = source.stream(request, window)
        else:  # every symbol of the store, in name order
            streamed = open_stream(source.connect(), window=window, start=start, end=end,
                                   close_store=True, **load_options)
        try:
            if cache is None:
                # No cache to key the jobs by their bars: the symbols alone (the request's
                # metadata), no pass over the bars; the source is known by the request.
                order = list(streamed.call_order)
                return PreparedData(sorted(order), None, source, order=order)
            fingerprints = fingerprint_stream(streamed)
        finally:
            streamed.close()
        if cache is not None and kind == "store":
            cache.put_fingerprint(identity, fingerprints)
    token = _digest(identity, *sorted(fingerprints.values()))
    src = DataSource(kind, location, token, start, end, options, payload)
    return PreparedData(sorted(fingerprints), fingerprints, src)


def _stat_keyed(
    kind: str,
    location: str,
    start: Any,
    end: Any,
    options: tuple[tuple[str, Any], ...],
    load: Callable[[], MarketColumns],
    request: list[str] | None,
    cache: Any,
    snapshot_dir: Path | None,
) -> PreparedData:
    """Fingerprints of a file-backed source, remembered by the file's identity.

    With ``snapshot_dir``, workers read a snapshot written (on first need) from ``load``
    instead of the file itself.
    """
    identity = _digest(
        kind,
        _file_identity(location),
        canonical(request),
        canonical(start),
        canonical(end),
        canonical(list(options)),
        loader_fingerprint(),
    )
    fingerprints = cache.get_fingerprint(identity) if cache is not None else None
    loaded: list[MarketColumns] = []
    if fingerprints is None:
        loaded.append(load())
        # Without a results cache nothing keys on them, unless a snapshot is named by them.
        if cache is not None or snapshot_dir is not None:
            fingerprints = fingerprint_columns(loaded[0])
        if cache is not None:
            cache.put_fingerprint(identity, fingerprints)
    held = loaded[0] if loaded else None
    if snapshot_dir is not None:
        materialize = _snapshot_source(
            lambda: loaded[0] if loaded else load(), fingerprints, snapshot_dir
        )
        return PreparedData(sorted(fingerprints), fingerprints, None, materialize, held)
    src = DataSource(kind, location, identity, start, end, options)
    symbols = sorted(fingerprints) if fingerprints is not None else sorted(loaded[0].symbols)
    return PreparedData(symbols, fingerprints, src, loaded=held)
