"""The embedded store: bars and symbol metadata in one DuckDB file.

Tables (plain SQL, readable by any DuckDB client):

* ``symbols(symbol_id, symbol, name, sector, industry, exchange, timezone, currency, ...)``
* ``bars(symbol_id, ts, open, high, low, close, volume, <extra columns>)`` -- ``ts`` is
  int64 UTC nanoseconds, the start of the bar; ``(symbol_id, ts)`` is unique. Each extra
  column ingested (a signal, a P/E) is one more nullable DOUBLE column, NULL where a
  symbol's data never had it: a load reads it in the same scan as the prices, and
  filters and resampling treat it in the same statement.
* ``bars_view`` -- the same with the symbol's name and ``ts`` as a timestamp, for people.

Rows of ``bars`` are written in time order by UTC day: each ingest appends its rows
ordered by (day, symbol_id, ts), so a day's bars of all symbols lie together and each
symbol's bars of a day form one run. DuckDB keeps the min and max of every column per
row group (~122,880 rows) and skips row groups a filter rules out: a streamed window's
query (``ts`` in ``[start, end)``) then reads only about its own days' rows, and a
single symbol's load still skips most row groups by ``symbol_id`` (each spans few
symbols of one day). A store whose bars were ingested symbol by symbol, or written
before this order, holds each symbol's bars together instead: every window query then
scans the whole table's ``ts``; `Store.reorder` rewrites it once.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tickstep.data._bars_query import DUCKDB, LOOKUP, bucket_capacity, bucket_rows_query
from tickstep.data._buckets import Interleaved, fold_buckets
from tickstep.data._calendars import FilterSpans
from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns
from tickstep.data._metadata import METADATA_COLUMNS, metadata_sql_type
from tickstep.data._request import Timeframe
from tickstep.data._store_base import BarStore, stage_table
from tickstep.timeframes import NS_PER_DAY

__all__ = ["Store"]

# Rows per Arrow record batch of a bars query: large enough that a load is a few batches.
_BATCH_ROWS = 1 << 20
# A resampled load's bars stream in batches sized from its output, with DuckDB's
# read-ahead buffer cut from ~1 MB to 64 KiB. Each row of a batch costs ~400 bytes held
# at the peak (DuckDB's chunk, the Arrow batch, the fold's copies; benches/data_filters.py:
# 20 x 100 days, 1024 -> 4096 -> 16384 rows added ~0.35-0.43 KB a row), and each batch
# a fixed Python cost: a batch of one row per 2 KB of the output's bars keeps the batch
# at ~1/5 of the output (under the 2x with the output itself), as few batches as
# that allows. At least 1024 rows (half a DuckDB vector), at most 65536.
_BUCKET_BATCH_ROWS = (1024, 65536)
_OUTPUT_BYTES_PER_BATCH_ROW = 2048


def _bucket_batch_rows(capacity: dict[int, int], n_extra: int) -> int:
    """Rows per batch of a resampled load whose symbols have at most ``capacity``
    buckets: the largest power of two within `_BUCKET_BATCH_ROWS` not above the
    output's bytes over `_OUTPUT_BYTES_PER_BATCH_ROW` (a bar: ts and five floats, and
    a float and a null flag per extra column)."""
    output_bytes = sum(capacity.values()) * (48 + 9 * n_extra)
    low, high = _BUCKET_BATCH_ROWS
    rows = max(output_bytes // _OUTPUT_BYTES_PER_BATCH_ROW, 1)
    return min(max(1 << (rows.bit_length() - 1), low), high)
_BUCKET_SETTINGS = {"threads": "1", "streaming_buffer_size": "64KiB"}

# DuckDB's memory on a connection opened for a streamed run (see `Store._read_once`).
_READ_ONCE_MEMORY = "256MB"


def _arrow_of(relation: Any) -> pa.Table:
    """A query's rows as Arrow, streamed as record batches: DuckDB converts each chunk as
    the query produces it, instead of first materialising the whole result in its own
    format and then copying it to Arrow (twice the output's size at the peak)."""
    stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
    return stream(_BATCH_ROWS).read_all()


def _default_memory_limit() -> str:
    """DuckDB's default memory_limit as it shows it (a fresh database's)."""
    import duckdb

    with duckdb.connect() as con:
        return str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0])


def _row_order(table: str) -> str:
    """The order ``bars`` rows are written in (see the module's note), for rows of
    ``table``: by UTC day, then symbol, then time. (Integer division truncates below
    zero: still a non-decreasing key of the time.)"""
    return f"{table}.ts // {NS_PER_DAY}, {table}.symbol_id, {table}.ts"


class Store(BarStore):
    """Bars and symbol metadata in an embedded DuckDB database file.

    Parameters
    ----------
    path : str or path-like, default ":memory:"
        Database file, created if missing (with its tables).
    read_only : bool, default False
        Open read-only: many processes may then read the same file at once.

    Examples
    --------
    >>> import tickstep.data as td
    >>> store = td.Store()                      # in memory; pass a path for a file
    >>> store.ingest(td.sample(symbols=3, days=2, seed=1))
    2254
    >>> store.symbols()["bars"].tolist()
    [780, 780, 694]
    >>> market = store.load(["BARP", "LORC"], timeframe="1h")
    >>> [len(b) for b in market.bars]
    [14, 14]
    """

    dialect = DUCKDB

    def __init__(self, path: str | PathLike[str] = ":memory:", *, read_only: bool = False):
        import duckdb

        super().__init__()
        self.path = str(path)
        self.read_only = read_only
        # DuckDB's memory_limit before `_read_once` bounded it (restored by close).
        self._memory_before: str | None = None
        if self.path != ":memory:" and not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        if read_only and self.path != ":memory:" and not Path(self.path).exists():
            raise DataError(f"store file '{self.path}' does not exist", source=self.path)
        try:
            self._con = duckdb.connect(self.path, read_only=read_only)
        except duckdb.Error as exc:
            raise DataError(f"cannot open store '{self.path}': {exc}", source=self.path) from None
        if not read_only:
            self._create_schema()
        else:
            self._check_tables()

    def __repr__(self) -> str:
        return f"Store({self.path!r}{', read_only=True' if self.read_only else ''})"

    def _check_tables(self) -> None:
        # A DuckDB file that is not a tickstep store: said now, not as a catalog error later.
        found = self._con.execute(
            "SELECT list(table_name) FROM information_schema.tables "
            "WHERE table_schema = current_schema() AND table_name IN ('symbols', 'bars')"
        ).fetchall()[0][0] or []
        if self.path != ":memory:" and sorted(found) != ["bars", "symbols"]:
            self._con.close()
            raise DataError(
                f"'{self.path}' is a DuckDB database but not a tickstep store (it has no "
                "'symbols' and 'bars' tables): create one with tickstep.data.Store(path)",
                source=self.path,
            )

    def _check_writable(self) -> None:
        if self.read_only:
            raise DataError(
                f"store '{self.path}' is open read-only: open it with Store(path) to write",
                source=self.path,
                rule="writable store",
            )

    def __getstate__(self) -> dict[str, Any]:
        # Batch workers reopen the file by path; no connection or data is pickled.
        if self.path == ":memory:":
            raise TypeError("an in-memory Store cannot be sent to another process")
        return {"path": self.path}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], read_only=True)

    def close(self) -> None:
        """Close the database connection."""
        if self._memory_before is not None:
            # Connections to one file in one process share a database: give the others
            # back the limit they had (DuckDB's default exactly; another as DuckDB shows
            # it, "953.6 MiB" for 1 GB: within a twentieth of its unit, read back the same).
            if self._memory_before == _default_memory_limit():
                self._con.execute("RESET memory_limit").fetchall()
            else:
                number, _, unit = self._memory_before.partition(" ")
                try:
                    shown = f"{float(number) + 0.05} {unit}"
                except ValueError:
                    shown = self._memory_before
                self._con.execute(f"SET memory_limit = '{shown}'").fetchall()
        self._con.close()

    def _read_once(self) -> None:
        # DuckDB keeps the blocks of the file it has read in its buffer pool, inside this
        # process, up to memory_limit (by default 80% of RAM). A streamed run reads each
        # block once (the symbols' ranges at the start, then window after window), so
        # unbounded that cache grows to the size of the file read: 4 GB resident for a
        # 3.3 GB store of 196 M bars. Bounded, old blocks make way for new ones at no
        # cost in speed (the OS still caches the file); a window's result is Arrow
        # memory, outside the limit, so a large window needs no more. Restored by close.
        self._memory_before = self._con.execute(
            "SELECT current_setting('memory_limit')").fetchall()[0][0]
        self._con.execute(f"SET memory_limit = '{_READ_ONCE_MEMORY}'").fetchall()

    # --- plumbing ------------------------------------------------------------------------

    def _run(self, sql: str, params: Any = None) -> Any:
        self.queries_executed += 1
        return self._con.execute(sql, params)

    def _arrow(self, sql: str, params: Any = None) -> pa.Table:
        self.queries_executed += 1
        relation = self._con.sql(sql, params=params)
        # Newer DuckDB releases name it to_arrow_table, older ones fetch_arrow_table.
        fetch = getattr(relation, "to_arrow_table", None) or relation.fetch_arrow_table
        return fetch()

    def _frame(self, sql: str, params: Any = None) -> pd.DataFrame:
        return self._arrow(sql, params).to_pandas()

    def _run_count(self, sql: str) -> int:
        return int(self._run(sql).fetchone()[0])

    _float_type = "DOUBLE"

    def _stored_columns_sql(self) -> str:
        base = ", ".join(f"'{c}'" for c in ("symbol_id", "ts", *VALUE_COLUMNS))
        return (
            "(SELECT list(column_name ORDER BY ordinal_position) FROM information_schema.columns "
            "WHERE table_name = 'bars' AND table_schema = current_schema() AND "
            f"table_catalog = current_database() AND column_name NOT IN ({base}))"
        )

    def _read_bars(self, sql: str, params: dict[str, Any]) -> pa.Table:
        self.queries_executed += 1
        return _arrow_of(self._con.sql(sql, params=params))

    def _read_aside(self, sql: str, params: dict[str, Any]) -> pa.Table:
        # A cursor of its own: DuckDB's connection refuses a second caller rather than
        # waiting, and a stream's reader thread may be reading a window on it.
        self.queries_executed += 1
        cursor = self._con.cursor()
        try:
            return _arrow_of(cursor.sql(sql, params=params))
        finally:
            cursor.close()

    def _fetch_buckets(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        spans: FilterSpans | None,
        frame: Timeframe,
        extra: tuple[str, ...] = (),
    ) -> dict[int, dict[str, np.ndarray]] | None:
        # Resampling in SQL builds a hash table of every bucket (with first/last states,
        # ~3x the output) and sorts the result. Here the kept bars stream out as small
        # record batches and are folded into buckets as they come, so the load holds its
        # output and a batch. One thread for the statement: the rows come in stored
        # order (the result is the same bits on every run) with nothing buffered to
        # restore that order, and one thread's scratch memory instead of several.
        query = None
        if spans is not None:
            query = bucket_rows_query(self.dialect, ids, lo, hi, spans, frame, extra)
        if query is None:
            return None
        sql, lookups = query
        row = pa.table({
            name: pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), pa.array(values))
            for name, values in lookups.items()
        })
        with self._settings(_BUCKET_SETTINGS), self._staged(LOOKUP, row):
            self.queries_executed += 1
            relation = self._con.sql(sql)
            stream = getattr(relation, "to_arrow_reader", None) or relation.fetch_record_batch
            try:
                capacity = bucket_capacity(ids, lo, hi, spans, frame)
                with stream(_bucket_batch_rows(capacity, len(extra))) as batches:
                    return fold_buckets(batches, len(extra), capacity)
            except Interleaved:
                # A symbol's bars were stored into its past after later ones: the
                # buckets are made in SQL instead (one more statement).
                return None

    @contextmanager
    def _settings(self, settings: dict[str, str]) -> Iterator[None]:
        """DuckDB settings changed for the statements inside, then put back."""
        before = {
            name: self._con.execute(f"SELECT current_setting('{name}')").fetchall()[0][0]
            for name in settings
        }
        for name, value in settings.items():
            self._con.execute(f"SET {name} = '{value}'").fetchall()
        try:
            yield
        finally:
            for name, value in before.items():
                self._con.execute(f"SET {name} = '{value}'").fetchall()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._run("BEGIN TRANSACTION")
        try:
            yield
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise

    @contextmanager
    def _staged(self, name: str, table: pa.Table) -> Iterator[None]:
        self._con.register(name, table)
        try:
            yield
        finally:
            self._con.unregister(name)

    def _create_schema(self) -> None:
        meta_cols = ", ".join(f"{c} VARCHAR" for c in METADATA_COLUMNS)
        self._run(
            "CREATE TABLE IF NOT EXISTS symbols (symbol_id INTEGER PRIMARY KEY, "
            f"symbol VARCHAR NOT NULL UNIQUE, {meta_cols})"
        )
        self._run(
            "CREATE TABLE IF NOT EXISTS bars (symbol_id INTEGER NOT NULL, ts BIGINT NOT NULL, "
            "open DOUBLE NOT NULL, high DOUBLE NOT NULL, low DOUBLE NOT NULL, "
            "close DOUBLE NOT NULL, volume DOUBLE NOT NULL)"
        )
        self._run(
            "CREATE OR REPLACE VIEW bars_view AS SELECT s.symbol, "
            "make_timestamp(b.ts // 1000)::TIMESTAMPTZ AS ts, b.* EXCLUDE (symbol_id, ts) "
            "FROM bars b JOIN symbols s USING (symbol_id)"
        )

    def _symbol_columns(self) -> list[str]:
        rows = self._run(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'symbols' "
            "ORDER BY ordinal_position"
        ).fetchall()
        return [r[0] for r in rows]

    # --- writing ---------------------------------------------------------------------------

    def _register_symbols(self, names: list[str]) -> dict[str, int]:
        self._run(
            "INSERT INTO symbols (symbol_id, symbol) "
            "SELECT (SELECT coalesce(max(symbol_id), 0) FROM symbols) "
            "+ row_number() OVER (ORDER BY n.symbol), n.symbol "
            "FROM (SELECT DISTINCT unnest($1::VARCHAR[]) AS symbol) n "
            "WHERE n.symbol NOT IN (SELECT symbol FROM symbols)",
            [names],
        )
        rows = self._run(
            "SELECT symbol, symbol_id FROM symbols WHERE symbol IN (SELECT unnest($1::VARCHAR[]))",
            [names],
        ).fetchall()
        return dict(rows)

    def _write_metadata(self, meta: pd.DataFrame, *, in_transaction: bool = False) -> None:
        if not in_transaction:
            self._run("BEGIN TRANSACTION")
        try:
            self._register_symbols(list(meta["symbol"]))
            have = set(self._symbol_columns())
            for col in meta.columns:
                if col != "symbol" and col not in have:
                    # col was checked to be a plain identifier; it is quoted as well.
                    self._run(
                        f'ALTER TABLE symbols ADD COLUMN "{col}" {metadata_sql_type(meta[col])}'
                    )
            cols = [c for c in meta.columns if c != "symbol"]
            if cols:
                staged = meta[["symbol", *cols]]
                self._con.register("_tickstep_meta_in", staged)
                try:
                    sets = ", ".join(f'"{c}" = coalesce(m."{c}", symbols."{c}")' for c in cols)
                    self._run(
                        f"UPDATE symbols SET {sets} FROM _tickstep_meta_in m "
                        "WHERE symbols.symbol = m.symbol"
                    )
                finally:
                    self._con.unregister("_tickstep_meta_in")
            if not in_transaction:
                self._run("COMMIT")
        except BaseException:
            if not in_transaction:
                self._run("ROLLBACK")
            raise

    def _ingest(self, market: MarketColumns, meta: pd.DataFrame | None, on_conflict: str) -> int:
        self._run("BEGIN TRANSACTION")
        try:
            ids = self._register_symbols(market.symbols)
            if meta is not None:
                self._write_metadata(meta, in_transaction=True)
            extra = market.columns
            self._add_bar_columns(extra)
            staged = stage_table(market, ids, extra)
            self._con.register("_tickstep_bars_in", staged)
            try:
                changed = self._merge_bars(on_conflict, {v: k for k, v in ids.items()}, extra)
            finally:
                self._con.unregister("_tickstep_bars_in")
            self._run("COMMIT")
        except BaseException:
            self._run("ROLLBACK")
            raise
        return changed

    def _insert_new_bars(self, extra: list[str]) -> int:
        into, values = self._insert_columns(extra)
        added = self._run(
            f"INSERT INTO bars ({into}) SELECT {values} FROM _tickstep_bars_in n "
            "ANTI JOIN bars b ON b.symbol_id = n.symbol_id AND b.ts = n.ts "
            f"ORDER BY {_row_order('n')}"
        ).fetchone()[0]
        return int(added)

    def reorder(self) -> None:
        """Rewrite the stored bars in time order by day (one transaction).

        New ingests write their rows in this order; a store whose bars were ingested
        symbol by symbol (or before tickstep wrote them so) holds each symbol's bars
        together, and a streamed backtest's window query then scans every stored bar's
        time. Once reordered, a window reads only about its own days' rows. Results do
        not change, only where rows lie in the file; the file may keep the old rows'
        space until DuckDB reuses it.

        Examples
        --------
        >>> import tickstep.data as td
        >>> store = td.Store()
        >>> store.ingest(td.sample(symbols=2, days=2, seed=1))
        1070
        >>> store.reorder()
        >>> store.symbols()["bars"].tolist()
        [356, 714]
        """
        with self._transaction():
            self._run(
                "CREATE TABLE _tickstep_bars_ordered AS SELECT * FROM bars b "
                f"ORDER BY {_row_order('b')}"
            )
            self._run("DROP VIEW bars_view")
            self._run("DROP TABLE bars")
            self._run("ALTER TABLE _tickstep_bars_ordered RENAME TO bars")
            self._create_schema()

    # --- reading ---------------------------------------------------------------------------

    def _listing_sql(self) -> str:
        return (
            "SELECT s.*, r.first, r.last, r.bars FROM symbols s LEFT JOIN ("
            "SELECT symbol_id, min(ts) AS first, max(ts) AS last, count(*) AS bars "
            "FROM bars GROUP BY symbol_id) r USING (symbol_id)"
        )

    def _metadata_sql(self, names: list[str] | None, with_range: bool | str) -> tuple[str, Any]:
        where = "" if names is None else "WHERE s.symbol IN (SELECT unnest($names::VARCHAR[]))"
        params = {} if names is None else {"names": names}
        stored = f"{self._stored_columns_sql()} AS bar_columns"
        if not with_range:
            return f"SELECT s.*, {stored} FROM symbols s {where}", params
        if with_range == "overall":
            # One min and max over the requested symbols' bars: an ungrouped aggregate
            # holds two numbers, where grouping by symbol built a hash table over every
            # bar's symbol (up to 1 MB for 2.9 M bars, kept by DuckDB after the query).
            chosen = "" if names is None else f"WHERE symbol_id IN (SELECT symbol_id FROM symbols s {where})"
            sql = (
                f"SELECT s.*, (SELECT min(ts) FROM bars {chosen}) AS first_ts, "
                f"(SELECT max(ts) FROM bars {chosen}) AS last_ts, {stored} FROM symbols s {where}"
            )
            return sql, params
        ranged = (
            ""
            if names is None
            else (
                "WHERE symbol_id IN (SELECT symbol_id FROM symbols "
                "WHERE symbol IN (SELECT unnest($names::VARCHAR[])))"
            )
        )
        sql = (
            f"SELECT s.*, r.first_ts, r.last_ts, {stored} FROM symbols s LEFT JOIN ("
            "SELECT symbol_id, min(ts) AS first_ts, max(ts) AS last_ts FROM bars "
            f"{ranged} GROUP BY symbol_id) r USING (symbol_id) {where}"
        )
        return sql, params
