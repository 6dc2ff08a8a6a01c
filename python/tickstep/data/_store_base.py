"""What every store offers -- ingest, metadata, listing, load -- written once.

`Store` (DuckDB) and `PostgresStore` supply only their dialect: the connection, the
schema, the statements that differ, and the transfer of bulk rows. Loading issues two
statements whatever the number of symbols: one batched metadata query (which also
resolves names and finds unknown symbols) and one bars query for all symbols, fetched as
Arrow and turned into numpy columns without per-row Python. Filters (date range, regular
hours, resampling) run inside that bars query.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike
from typing import Any, Self

import numpy as np
import pandas as pd
import pyarrow as pa

from tickstep.data import _records
from tickstep.data._assembly import assemble, assemble_symbols, grouped_columns
from tickstep.data._bars_query import Dialect, bars_query, extra_column, quote
from tickstep.data._calendars import FilterSpans, filter_spans
from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns
from tickstep.data._files import read_bars_file
from tickstep.data._memory import to_market_columns
from tickstep.data._metadata import clean_metadata
from tickstep.data._request import (
    Timeframe,
    describe_request,
    parse_timeframe,
    refuse_unknown_symbols,
    symbol_list,
    time_bounds,
)
from tickstep.data._shapes import ExtraColumns
from tickstep.hints import named_options

__all__ = ["BarStore"]

_ON_CONFLICT = ("refuse", "replace")


def _fmt_ns(ns: int) -> str:
    return pd.Timestamp(int(ns), unit="ns", tz="UTC").isoformat()


def as_market(data: Any, *, symbol: str | None = None, **extra: Any) -> MarketColumns:
    """Anything a store can ingest -> validated MarketColumns: bars in memory (see
    `to_market_columns`), a file of bars, or a list of files. ``extra``: the door's
    ``columns`` and ``allow_nan`` options."""
    if isinstance(data, (str, PathLike)):
        return read_bars_file(data, symbol=symbol, **extra)
    if (
        isinstance(data, (list, tuple))
        and data
        and all(isinstance(p, (str, PathLike)) for p in data)
    ):
        parts = [read_bars_file(p, **extra) for p in data]
        bars = sorted((b for m in parts for b in m.bars), key=lambda b: b.symbol)
        return MarketColumns(bars)
    return to_market_columns(data, symbol=symbol, **extra)


def stage_table(
    market: MarketColumns, ids: dict[str, int], extra: list[str] | None = None
) -> pa.Table:
    """All bars as one Arrow table (symbol_id, ts, open, ..., volume, then the extra
    columns ``extra`` as e0, e1, ...: NULL for a symbol without one) for bulk insert."""
    counts = [len(b) for b in market.bars]
    sid = np.repeat(np.array([ids[b.symbol] for b in market.bars], dtype=np.int32), counts)
    columns = {"symbol_id": sid, "ts": np.concatenate([b.ts for b in market.bars])}
    for name in VALUE_COLUMNS:
        columns[name] = np.concatenate([getattr(b, name) for b in market.bars])
    for k, name in enumerate(extra or ()):
        parts = [
            pa.array(b.extra[name]) if name in b.extra else pa.nulls(len(b), pa.float64())
            for b in market.bars
        ]
        columns[extra_column(k)] = pa.concat_arrays(parts)
    return pa.table(columns)


class BarStore:
    """What every store offers; `Store` (DuckDB) and `PostgresStore` implement it.

    Attributes
    ----------
    queries_executed : int
        Number of SQL statements this store object has sent. A `load` adds exactly two
        (metadata, bars) whatever the number of symbols.
    """

    # The load options a store takes besides symbols, start and end.
    options = ("regular_hours", "timeframe", "columns", "allow_nan")
    # How the store's engine spells the bars query (see `tickstep.data._bars_query`).
    dialect: Dialect

    def __init__(self) -> None:
        self.queries_executed = 0
        # Symbol ids seen in metadata queries: an id never changes once given, so a
        # records load after a bars load needs no second lookup of the names.
        self._known_ids: dict[str, int] = {}

    # Subclasses provide the SQL and the transfer.
    def _frame(self, sql: str, params: Any = None) -> pd.DataFrame:  # pragma: no cover
        """A small query's result as a DataFrame."""
        raise NotImplementedError

    def _read_bars(self, sql: str, params: dict[str, Any]) -> pa.Table:  # pragma: no cover
        """Run the bars query and fetch its rows as Arrow (the bulk transfer)."""
        raise NotImplementedError

    def _read_aside(self, sql: str, params: dict[str, Any]) -> pa.Table:
        """`_read_bars` from another thread than a stream's reader, which may be reading
        a window meanwhile (a connection that serialises its callers needs nothing more)."""
        return self._read_bars(sql, params)

    def _fetch_bars(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        spans: FilterSpans | None,
        frame: Timeframe | None,
        extra: tuple[str, ...] = (),
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """One bulk query: symbol_id and {ts, open, ..., volume, e0, ...} numpy columns,
        each symbol's rows together (see `grouped_columns`)."""
        sql, params = bars_query(self.dialect, ids, lo, hi, spans, frame, extra)
        return grouped_columns(self._read_bars(sql, params), ids, len(extra))

    def _check_writable(self) -> None:
        """Refuse a write to a store opened read-only (before any work, naming it)."""

    def _fetch_buckets(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        spans: FilterSpans | None,
        frame: Timeframe,
        extra: tuple[str, ...] = (),
    ) -> dict[int, dict[str, np.ndarray]] | None:
        """A resampled load's bars per symbol id, when the store resamples them as they
        stream in (see `tickstep.data._buckets`); None: `_fetch_bars` resamples in SQL."""
        return None

    def _read_once(self) -> None:
        """Set up a connection the caller opened for reading rows once each, in time order
        (a streamed run's own connection): nothing to do by default."""

    def _stored_columns_sql(self) -> str:  # pragma: no cover
        """A scalar subquery: the names of the extra columns of ``bars``, in order (the
        metadata query carries it, so a load stays two statements)."""
        raise NotImplementedError

    def _add_bar_columns(self, names: list[str]) -> bool:
        """Add the extra columns ``names`` to ``bars`` if missing (within the caller's
        transaction). ``bars`` holds them as nullable float columns: NULL where a
        symbol's data never had the column. Whether any was added."""
        added = False
        stored = self._bar_columns()
        folded = {c.lower(): c for c in stored}
        for name in names:
            if name in stored:
                continue
            if name.lower() in folded:
                raise DataError(
                    f"column {name!r} differs only by case from the store's column "
                    f"{folded[name.lower()]!r}; rename it (names are compared ignoring case)",
                    rule="unambiguous columns",
                )
            self._run(f"ALTER TABLE bars ADD COLUMN {quote(name)} {self._float_type}")
            folded[name.lower()] = name
            added = True
        return added

    _float_type = "DOUBLE PRECISION"

    def _bar_columns(self) -> list[str]:
        """The extra columns stored in ``bars`` (beside symbol_id, ts and OHLCV)."""
        table = self._arrow(f"SELECT {self._stored_columns_sql()} AS names")
        names = table.column(0).to_pylist()[0]
        return list(names or [])

    def columns(self) -> list[str]:
        """The extra columns the store holds beside OHLCV (a signal, a P/E, ...), in the
        order they were first ingested."""
        names = self._bar_columns()
        self._end_read()
        return names

    def _end_read(self) -> None:
        """End a read transaction, where the dialect opens one."""

    def _ingest(self, market: MarketColumns, meta: pd.DataFrame | None, on_conflict: str) -> int:
        raise NotImplementedError  # pragma: no cover - abstract

    def _write_metadata(self, meta: pd.DataFrame) -> None:
        raise NotImplementedError  # pragma: no cover - abstract

    def _arrow(self, sql: str, params: Any = None) -> pa.Table:  # pragma: no cover
        raise NotImplementedError

    def _run(self, sql: str, params: Any = None) -> Any:  # pragma: no cover
        raise NotImplementedError

    def _insert_new_bars(self, extra: list[str]) -> int:  # pragma: no cover
        """Insert the staged rows not stored yet (with the extra columns ``extra``, staged
        as e0, e1, ...); the number inserted."""
        raise NotImplementedError

    def _insert_columns(self, extra: list[str]) -> tuple[str, str]:
        """The column list of ``bars`` and the matching staged columns, for an insert."""
        stored = ["symbol_id", "ts", *VALUE_COLUMNS]
        into = ", ".join([*stored, *(quote(c) for c in extra)])
        values = ", ".join([*(f"n.{c}" for c in stored), *(f"n.{extra_column(k)}" for k in range(len(extra)))])
        return into, values

    def _merge_bars(
        self, on_conflict: str, names: dict[int, str], extra: list[str] | None = None
    ) -> int:
        """Merge the staged ``_tickstep_bars_in`` into ``bars`` within the caller's
        transaction: rows whose values differ from stored ones are refused (naming them)
        or replaced; rows stored with the same values are skipped, so re-ingesting adds
        nothing. An extra column conflicts only where both hold a value (NaN equals NaN);
        a stored row without a value there gets the new one. Returns the number of rows
        added or changed."""
        pairs = [(f"b.{c}", f"n.{c}", c) for c in VALUE_COLUMNS] + [
            (f"b.{quote(c)}", f"n.{extra_column(k)}", c) for k, c in enumerate(extra or ())
        ]
        differs = " OR ".join(f"{old} <> {new}" for old, new, _ in pairs)
        old_new = ", ".join(
            f"{old} AS old_{k}, {new} AS new_{k}" for k, (old, new, _) in enumerate(pairs)
        )
        conflicts = self._arrow(
            f"SELECT n.symbol_id, n.ts, {old_new}, count(*) OVER () AS total "
            "FROM _tickstep_bars_in n JOIN bars b ON b.symbol_id = n.symbol_id AND b.ts = n.ts "
            f"WHERE {differs} ORDER BY n.symbol_id, n.ts LIMIT 5"
        ).to_pylist()
        if conflicts:
            if on_conflict == "refuse":
                raise self._conflict_error(conflicts, names, [c for _, _, c in pairs])
            self._run(
                "DELETE FROM bars b USING _tickstep_bars_in n "
                f"WHERE b.symbol_id = n.symbol_id AND b.ts = n.ts AND ({differs})"
            )
        filled = 0
        if extra:
            fills = [(quote(name), f"n.{extra_column(k)}") for k, name in enumerate(extra)]
            sets = ", ".join(f"{c} = coalesce(b.{c}, {new})" for c, new in fills)
            gaps = " OR ".join(f"(b.{c} IS NULL AND {new} IS NOT NULL)" for c, new in fills)
            filled = self._run_count(
                f"UPDATE bars b SET {sets} FROM _tickstep_bars_in n "
                f"WHERE b.symbol_id = n.symbol_id AND b.ts = n.ts AND ({gaps})"
            )
        return self._insert_new_bars(extra or []) + filled

    def _run_count(self, sql: str) -> int:  # pragma: no cover
        """Run a statement changing rows; the number changed."""
        raise NotImplementedError

    def _listing_sql(self) -> str:
        raise NotImplementedError  # pragma: no cover - abstract

    def _metadata_sql(self, names: list[str] | None, with_range: bool) -> tuple[str, Any]:
        raise NotImplementedError  # pragma: no cover - abstract

    # --- public API, shared -------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - abstract
        """Release the connection; the store cannot be used afterwards."""
        raise NotImplementedError

    @named_options
    def ingest(
        self,
        data: Any,
        *,
        symbol: str | None = None,
        metadata: Any = None,
        on_conflict: str = "refuse",
        columns: Any = None,
        allow_nan: Any = None,
    ) -> int:
        """Add bars; return how many rows were new (or gained extra values).

        Parameters
        ----------
        data : table, mapping, MarketColumns, path or list of paths
            Anything `to_market_columns` accepts (pandas, Polars, Arrow), or files of
            bars (CSV, Parquet, Arrow; see `FILE_FORMATS`). A file without a symbol
            column holds one symbol: ``symbol``, or the file's name (``AAPL.csv`` ->
            ``AAPL``).
        symbol : str, optional
            Symbol for a single-symbol table or file.
        metadata : DataFrame or path, optional
            Symbol metadata to store alongside (see `ingest_metadata`); a
            `MarketColumns` brings its own.
        on_conflict : {"refuse", "replace"}, default "refuse"
            Rows whose (symbol, ts) is already stored with the same values are skipped,
            so re-ingesting adds nothing. Rows with different values are refused, naming
            them, unless ``"replace"``.
        columns, allow_nan : optional
            The extra columns beside OHLCV to store (all by default) and those that may
            have gaps, as at the door (`to_market_columns`). The store adds a column to
            ``bars`` for each new one (NULL for the bars and symbols without it); a stored
            bar without a value there receives the new one.

        Returns
        -------
        int
            Rows added or replaced.

        Raises
        ------
        DataError
            Bad data (naming file, symbol and row) or conflicting rows. Nothing is
            written then: ingestion is one transaction.
        """
        self._check_writable()
        if on_conflict not in _ON_CONFLICT:
            raise DataError(f"on_conflict must be 'refuse' or 'replace', got {on_conflict!r}")
        market = as_market(data, symbol=symbol, columns=columns, allow_nan=allow_nan)
        if metadata is None and market.metadata is not None:
            metadata = market.metadata
        meta = clean_metadata(metadata) if metadata is not None else None
        return self._ingest(market, meta, on_conflict)

    def ingest_metadata(self, metadata: Any) -> int:
        """Add or update symbol metadata; return the number of symbols touched.

        Parameters
        ----------
        metadata : DataFrame or path to a CSV
            Indexed by ``symbol`` or with a ``symbol`` column; columns such as
            ``sector``, ``exchange`` (an ``exchange_calendars`` name: ``XNYS``,
            ``NYSE``, ``NASDAQ``, ``XLON``, ...), ``timezone`` (IANA). New columns are
            added to the store. Missing values never erase stored ones. A missing
            timezone is taken from the exchange's calendar.
        """
        self._check_writable()
        meta = clean_metadata(metadata)
        self._write_metadata(meta)
        return len(meta)

    def symbols(self) -> pd.DataFrame:
        """Every stored symbol with its date range, bar count and metadata.

        Returns
        -------
        DataFrame
            Indexed by symbol: ``first``, ``last`` (UTC timestamps), ``bars``, then the
            metadata columns.
        """
        frame = self._frame(self._listing_sql())
        for col in ("first", "last"):
            frame[col] = pd.to_datetime(frame[col], unit="ns", utc=True)
        frame["bars"] = frame["bars"].fillna(0).astype(np.int64)
        return frame.drop(columns=["symbol_id"]).set_index("symbol").sort_index()

    def metadata(self, symbols: str | Sequence[str] | None = None) -> pd.DataFrame:
        """Symbol metadata, indexed by symbol (all symbols when ``symbols`` is None)."""
        names = symbol_list(symbols)
        rows = self._metadata_rows(names, with_range=False)
        return rows.drop(columns=["symbol_id", "bar_columns"]).set_index("symbol")

    @named_options
    def load(
        self,
        symbols: str | Sequence[str] | None = None,
        *,
        start: Any = None,
        end: Any = None,
        regular_hours: bool = False,
        timeframe: str | None = None,
        columns: Any = None,
        allow_nan: Any = None,
    ) -> MarketColumns:
        """Load bars for a backtest, filtered and resampled in SQL.

        Parameters
        ----------
        symbols : str or sequence of str, optional
            Which symbols; all stored symbols when omitted.
        start, end : date, datetime or str, optional
            Inclusive bounds; naive values are UTC; an ``end`` given as a date (no time
            of day) includes that whole day.
        regular_hours : bool, default False
            Keep only bars that start inside the exchange's regular session, in the
            exchange's own timezone, with holidays, early closes and lunch breaks from
            ``exchange_calendars``. Needs each symbol's ``exchange`` in the metadata.
        timeframe : str, optional
            Resample to a coarser bar: whole minutes dividing a day (``"5min"``,
            ``"1h"``) aligned on the exchange's local midnight, or ``"1D"`` (one bar per
            local date, labelled with that date at 00:00 UTC). Open is the first open,
            high the max, low the min, close the last close, volume the sum; bars are
            labelled with the start of their interval; intervals without bars are absent.
            Applied after the other filters. An extra column's value is its value at the
            interval's last bar (as the close); regular hours keep each kept bar's values.
        columns : list of str, optional
            The stored extra columns to load beside OHLCV (all by default; ``[]`` for
            none). A symbol without values in a column (all NULL) has no such column.
        allow_nan : list of str or True, optional
            The extra columns that may have gaps (NaN, or NULL among a symbol's values);
            a gap elsewhere is refused, naming symbol, column, row and rule, as at the door.

        Returns
        -------
        MarketColumns
            Symbols sorted by name, with their metadata.

        Raises
        ------
        DataError
            Unknown symbols (named), symbols left without bars by the filters (named),
            missing exchange for ``regular_hours``, bad arguments.

        Notes
        -----
        Two statements whatever the number of symbols and columns: one metadata query
        (which also lists the stored extra columns) and one bars query; see
        `queries_executed`.
        """
        names = symbol_list(symbols)
        lo, hi = time_bounds(start, end)
        frame = parse_timeframe(timeframe)
        wanted = ExtraColumns.of(columns, allow_nan)
        # Calendars are expanded over the data's own range, not the (maybe wide) bounds:
        # the requested symbols' first and last bar ("overall": a store may give every
        # symbol the range of them all, which is all this needs).
        need_range = regular_hours or frame is not None
        meta = self._metadata_rows(names, with_range="overall" if need_range else False)
        if names is not None:
            known = list(meta["symbol"])
            if len(known) < len(names):
                known = self._metadata_rows(None, with_range=False)["symbol"]
            refuse_unknown_symbols(set(names) - set(meta["symbol"]), known, "the store")
        if len(meta) == 0:
            raise DataError("the store has no symbols", rule="non-empty")
        filters = describe_request(start, end, regular_hours, timeframe)
        spans = None
        if regular_hours or frame is not None:
            first, last = lo, hi
            if need_range:
                if meta["first_ts"].isna().all():
                    shown = ", ".join(map(repr, list(meta["symbol"])[:20]))
                    raise DataError(f"no bars for symbol(s) {shown} ({filters})")
                first = max(lo, int(meta["first_ts"].min()))
                last = min(hi, int(meta["last_ts"].max()))
            spans = filter_spans(
                meta, regular_hours=regular_hours, timeframe=frame, first_ns=first, last_ns=last
            )
        listed = meta["bar_columns"].iloc[0] if len(meta) else None
        stored = [] if listed is None else [str(c) for c in listed]
        meta = meta.drop(
            columns=[c for c in ("first_ts", "last_ts", "bar_columns") if c in meta.columns]
        )
        try:
            extra = tuple(label for _, label in wanted.pick(stored, (), None))
            wanted.check_nan_names(extra)
        except DataError as err:
            raise DataError(
                str(err).replace("data: ", "the store: ", 1), rule=err.rule
            ) from None
        ids = meta["symbol_id"].to_numpy(np.int32)
        names_as = tuple(name for name, _ in wanted.pick(stored, (), None))
        if frame is not None:
            parts = self._fetch_buckets(ids, lo, hi, spans, frame, extra)
            if parts is not None:
                return assemble_symbols(parts, meta, filters, names_as, wanted.allow_nan)
        symbol_id, values = self._fetch_bars(ids, lo, hi, spans, frame, extra)
        return assemble(symbol_id, values, meta, filters, names_as, wanted.allow_nan)

    # --- analysis tables (records; see tickstep.data._records) ---------------------------

    @named_options
    def ingest_records(
        self,
        table: str,
        data: Any,
        *,
        symbol: str | None = None,
        symbol_column: str | None = None,
        on_conflict: str = "refuse",
    ) -> int:
        """Add records to the analysis table ``table``; return how many were added.

        Parameters
        ----------
        table : str
            A lower-case name (``"zones"``); stored as the SQL table ``records_<table>``,
            created with the data's fields on the first ingest.
        data : DataFrame, Arrow/Polars table, mapping symbol -> frame, or file path
            One row per record: ``symbol``, a key time (``ts``, ``timestamp``, ``time``,
            ``datetime`` or ``date``, or a DatetimeIndex) and fields -- numbers, bools,
            text or timestamps. Several rows may share a key: they are that key's
            record set, in the order given. Within a symbol, key times must not go
            back (refused, not sorted).
        symbol, symbol_column :
            The symbol of data without a symbol column; the symbol column's name.
        on_conflict : {"refuse", "replace"}, default "refuse"
            A key already stored with the same records is skipped; with different
            records it is refused, naming it, unless ``"replace"`` (its whole set is
            replaced).

        Raises
        ------
        DataError
            Bad records (naming table, column, row and rule), symbols the store does
            not hold, fields different from the stored table's, conflicting keys.
            Nothing is written then: an ingest is one transaction.
        """
        self._check_writable()
        return _records.ingest_records(self, table, data, symbol=symbol,
                                       symbol_column=symbol_column, on_conflict=on_conflict)

    @named_options
    def load_records(
        self,
        table: str,
        symbols: str | Sequence[str] | None = None,
        *,
        start: Any = None,
        end: Any = None,
    ) -> _records.RecordTable:
        """Load an analysis table for ``symbols`` in one statement, grouped by symbol.

        Keys from ``start`` to ``end`` are loaded, and for each symbol the latest key at
        or before ``start`` (the records in force when a backtest starts).
        """
        return _records.load_records(self, table, symbol_list(symbols), start=start,
                                     end=end)

    def record_tables(self) -> pd.DataFrame:
        """The analysis tables in the store: fields (name:kind), symbols, keys, records."""
        return _records.record_tables(self)

    # --- helpers shared by the dialects --------------------------------------------------

    def _metadata_rows(self, names: list[str] | None, *, with_range: bool | str) -> pd.DataFrame:
        sql, params = self._metadata_sql(names, with_range)
        rows = self._frame(sql, params)
        self._known_ids.update(zip(rows["symbol"], rows["symbol_id"].astype(int)))
        return rows.sort_values("symbol", kind="stable").reset_index(drop=True)

    def _conflict_error(
        self, rows: list[dict[str, Any]], names: dict[int, str], columns: list[str]
    ) -> DataError:
        lines = []
        total = int(rows[0]["total"])
        for row in rows:  # at most a handful of rows, for the message
            diffs = []
            for k, c in enumerate(columns):
                old, new = row[f"old_{k}"], row[f"new_{k}"]
                # NULL (None) never conflicts; NaN equals NaN as in SQL.
                if old is None or new is None or old == new or (old != old and new != new):
                    continue
                diffs.append(f"{c} {old!r} -> {new!r}")
            lines.append(
                f"  symbol {names[row['symbol_id']]!r} at {_fmt_ns(row['ts'])}: {', '.join(diffs)}"
            )
        first = rows[0]
        return DataError(
            f"{total} row(s) conflict with bars already in the store (same symbol and ts, "
            f"different values); pass on_conflict='replace' to overwrite:\n"
            + "\n".join(lines)
            + (f"\n  ... and {total - len(rows)} more" if total > len(rows) else ""),
            symbol=names[int(first["symbol_id"])],
            timestamp=pd.Timestamp(int(first["ts"]), unit="ns", tz="UTC"),
            rule="no conflicting rows",
        )
