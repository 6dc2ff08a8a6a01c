"""The same store on PostgreSQL, with bulk transfer through ADBC (binary COPY to Arrow).

Tables mirror the DuckDB store: ``symbols`` (identity ``symbol_id``, ``symbol`` unique,
metadata columns) and ``bars`` (``symbol_id, ts`` primary key, float8 values), plus the
``bars_view`` for people. Filters and resampling run in SQL exactly as in `Store`.

Transfer: the ADBC PostgreSQL driver runs a query without bind parameters as a binary
``COPY ... TO STDOUT`` and decodes it to Arrow in C++, and ingests Arrow tables with
binary ``COPY ... FROM STDIN``.

Packs: PostgreSQL spends about half a microsecond per row on COPY output, and a client
as much again decoding it, so a row-per-bar transfer tops out near 1.5 million bars/s on
two cores. Ingest therefore also keeps ``bar_packs``: per symbol and UTC day, the day's
bars as one ``bytea`` (ts, then open, high, low, close, volume; big-endian 8-byte
values, column after column), built in SQL from ``bars``. An unfiltered or date-range
load reads packs -- a few thousand rows -- trimmed to the range in SQL, and numpy views
the bytes. ``bars`` stays the single source of truth: a statement-level trigger counts
every change to it, and packs are used only when they were built at the current count,
so a change made outside tickstep (plain SQL) makes loads fall back to the row query
until the next ingest rebuilds them. Loads with regular-hours or resampling filters
always run on ``bars``. The bars query therefore carries no bind parameters: it
holds only integers this module derived itself (symbol ids read from the database,
nanosecond bounds and calendar tables computed in Python), rendered from Python ints.
Every value a user typed (symbol names, metadata) reaches SQL as a bound parameter or
as Arrow data, never as SQL text.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from tickstep.data._assembly import arrow_columns
from tickstep.data._calendars import FilterTables
from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns
from tickstep.data._metadata import METADATA_COLUMNS, metadata_sql_type
from tickstep.data._request import Timeframe
from tickstep.data._store_base import BarStore, stage_table
from tickstep.timeframes import NS_PER_DAY, NS_PER_MINUTE

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_PACK_COLUMNS = ("ts", *VALUE_COLUMNS)


def _int_array(values: np.ndarray, sql_type: str) -> str:
    """A PostgreSQL array literal of integers this module computed (never user text)."""
    body = ",".join(str(int(v)) for v in np.asarray(values, dtype=np.int64))
    return f"'{{{body}}}'::{sql_type}[]"


def _int(value: int) -> str:
    return str(int(value))


class PostgresStore(BarStore):
    """Bars and symbol metadata in PostgreSQL; the same interface as `Store`.

    Parameters
    ----------
    url : str
        A ``postgresql://user:password@host:port/database`` URL.
    schema : str, optional
        Schema holding the tables (created if missing); the server's default
        ``search_path`` when omitted. Plain lower-case identifier.

    Notes
    -----
    Needs the ``adbc-driver-postgresql`` package. Tables are created if missing. The
    connection sets, for its own session only: ``jit = off``, ``enable_mergejoin = off``,
    ``work_mem = '256MB'``.
    `queries_executed` counts statements as for `Store`: a load is two (metadata, bars).

    Examples
    --------
    >>> store = PostgresStore("postgresql://tickstep:tickstep@127.0.0.1:54329/tickstep")
    ... # doctest: +SKIP
    """

    def __init__(self, url: str, *, schema: str | None = None) -> None:
        try:
            import adbc_driver_postgresql.dbapi as pgdb
        except ImportError as exc:  # pragma: no cover - depends on the installation
            raise ImportError(
                "PostgresStore needs the ADBC PostgreSQL driver: pip install adbc-driver-postgresql"
            ) from exc
        super().__init__()
        self._errors = pgdb.Error
        self.url = url
        self.schema = schema
        if schema is not None and not _SCHEMA_NAME.match(schema):
            raise DataError(f"schema {schema!r} is not a plain lower-case identifier")
        try:
            self._con = pgdb.connect(url)
        except pgdb.Error as exc:
            raise DataError(f"cannot connect to PostgreSQL: {exc}", source=_redact(url)) from None
        # Session settings for this connection only. JIT compiling our few, simple
        # plans costs seconds and saves nothing; the planner misjudges the row counts of
        # the calendar tables expanded in SQL and then prefers merge joins over sorts
        # spilled to disk, where hash joins in memory take a third of the time.
        self._run("SET jit = off")
        self._run("SET enable_mergejoin = off")
        self._run("SET work_mem = '256MB'")
        if schema is not None:
            self._run(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            self._run(f'SET search_path TO "{schema}"')
        self._create_schema()
        self._con.commit()

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.url)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "schema": self.schema}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], schema=state["schema"])

    def close(self) -> None:
        """Close the connection."""
        self._con.close()

    # --- plumbing ------------------------------------------------------------------------

    def _cursor_run(self, sql: str, params: Any = None) -> Any:
        self.queries_executed += 1
        cur = self._con.cursor()
        try:
            cur.execute(sql, parameters=params)
        except self._errors as exc:
            cur.close()
            self._con.rollback()
            raise DataError(f"PostgreSQL refused a statement: {exc}") from None
        return cur

    def _run(self, sql: str, params: Any = None) -> int:
        cur = self._cursor_run(sql, params)
        try:
            return cur.rowcount
        finally:
            cur.close()

    def _arrow(self, sql: str, params: Any = None) -> pa.Table:
        cur = self._cursor_run(sql, params)
        try:
            return cur.fetch_arrow_table()
        finally:
            cur.close()

    def _frame(self, sql: str, params: Any = None) -> pd.DataFrame:
        table = self._arrow(sql, params)
        self._con.commit()  # end the read transaction
        return table.to_pandas()

    def _stage(self, name: str, table: pa.Table) -> None:
        self.queries_executed += 1
        cur = self._con.cursor()
        try:
            cur.adbc_ingest(name, table, mode="create", temporary=True)
        finally:
            cur.close()

    def _create_schema(self) -> None:
        meta_cols = ", ".join(f"{c} TEXT" for c in METADATA_COLUMNS)
        self._run(
            "CREATE TABLE IF NOT EXISTS symbols (symbol_id INTEGER GENERATED BY DEFAULT AS "
            f"IDENTITY PRIMARY KEY, symbol TEXT NOT NULL UNIQUE, {meta_cols})"
        )
        self._run(
            "CREATE TABLE IF NOT EXISTS bars (symbol_id INTEGER NOT NULL, "
            "ts BIGINT NOT NULL, open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT "
            "NULL, low DOUBLE PRECISION NOT NULL, close DOUBLE PRECISION NOT NULL, "
            "volume DOUBLE PRECISION NOT NULL, PRIMARY KEY (symbol_id, ts))"
        )
        self._run(
            "CREATE TABLE IF NOT EXISTS bar_packs (symbol_id INTEGER NOT NULL, "
            "day BIGINT NOT NULL, n INTEGER NOT NULL, first_ts BIGINT NOT NULL, "
            "last_ts BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (symbol_id, day))"
        )
        # Uncompressed out-of-line storage: reading a pack is a plain copy.
        self._run("ALTER TABLE bar_packs ALTER COLUMN data SET STORAGE EXTERNAL")
        self._run(
            "CREATE TABLE IF NOT EXISTS tickstep_state (one BOOLEAN PRIMARY KEY DEFAULT true "
            "CHECK (one), generation BIGINT NOT NULL, packs_generation BIGINT NOT NULL)"
        )
        # Bars stored by an older layout have no packs: mark them stale from the start.
        self._run(
            "INSERT INTO tickstep_state (generation, packs_generation) SELECT "
            "CASE WHEN EXISTS (SELECT 1 FROM bars) THEN 1 ELSE 0 END, 0 "
            "ON CONFLICT (one) DO NOTHING"
        )
        self._run(
            "CREATE OR REPLACE FUNCTION tickstep_bars_changed() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN "
            "UPDATE tickstep_state SET generation = generation + 1; RETURN NULL; END $$"
        )
        self._run(
            "CREATE OR REPLACE TRIGGER tickstep_bars_changed AFTER INSERT OR UPDATE OR "
            "DELETE OR TRUNCATE ON bars FOR EACH STATEMENT "
            "EXECUTE FUNCTION tickstep_bars_changed()"
        )
        self._run(
            "CREATE OR REPLACE VIEW bars_view AS SELECT s.symbol, "
            "to_timestamp(b.ts / 1e9) AS ts, b.open, b.high, b.low, b.close, b.volume "
            "FROM bars b JOIN symbols s USING (symbol_id)"
        )

    def _symbol_columns(self) -> list[str]:
        table = self._arrow(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'symbols' "
            "AND table_schema = current_schema() ORDER BY ordinal_position"
        )
        return table.column(0).to_pylist()

    # --- writing ---------------------------------------------------------------------------

    def _register_symbols(self, names: list[str]) -> dict[str, int]:
        self._run(
            "INSERT INTO symbols (symbol) SELECT DISTINCT unnest($1::TEXT[]) "
            "ON CONFLICT (symbol) DO NOTHING",
            (names,),
        )
        table = self._arrow(
            "SELECT symbol, symbol_id FROM symbols WHERE symbol = ANY($1::TEXT[])", (names,)
        )
        return dict(zip(table.column(0).to_pylist(), table.column(1).to_pylist()))

    def _write_metadata(self, meta: pd.DataFrame, *, in_transaction: bool = False) -> None:
        try:
            self._register_symbols(list(meta["symbol"]))
            have = set(self._symbol_columns())
            cols = [c for c in meta.columns if c != "symbol"]
            for col in cols:
                if col not in have:
                    # col was checked to be a plain identifier; it is quoted as well.
                    kind = metadata_sql_type(meta[col])
                    self._run(f'ALTER TABLE symbols ADD COLUMN IF NOT EXISTS "{col}" {kind}')
            if cols:
                arrays = {"symbol": pa.array(list(meta["symbol"]), type=pa.string())}
                for col in cols:
                    if metadata_sql_type(meta[col]) == "TEXT":
                        values = [None if pd.isna(v) else str(v) for v in meta[col]]
                        arrays[col] = pa.array(values, type=pa.string())
                    else:
                        arrays[col] = pa.array(meta[col].to_numpy(np.float64), type=pa.float64())
                self._stage("_tickstep_meta_in", pa.table(arrays))
                sets = ", ".join(f'"{c}" = coalesce(m."{c}", s."{c}")' for c in cols)
                self._run(
                    f"UPDATE symbols s SET {sets} FROM _tickstep_meta_in m "
                    "WHERE s.symbol = m.symbol"
                )
                self._run("DROP TABLE _tickstep_meta_in")
            if not in_transaction:
                self._con.commit()
        except BaseException:
            if not in_transaction:
                self._con.rollback()
            raise

    def _ingest(self, market: MarketColumns, meta: pd.DataFrame | None, on_conflict: str) -> int:
        try:
            ids = self._register_symbols(market.symbols)
            if meta is not None:
                self._write_metadata(meta, in_transaction=True)
            self._stage("_tickstep_bars_in", stage_table(market, ids))
            # A fresh temp table has no statistics; without them the planner may pick
            # a nested loop over millions of rows for the merge.
            self._run("ANALYZE _tickstep_bars_in")
            changed = self._merge_bars(on_conflict, {v: k for k, v in ids.items()})
            self._rebuild_packs(
                "SELECT DISTINCT symbol_id, ts / {day} AS day FROM _tickstep_bars_in"
            )
            self._run("DROP TABLE _tickstep_bars_in")
            self._con.commit()
            # Fresh statistics, or the planner may take a big table for a tiny one and
            # choose nested loops for the filter joins (seconds become minutes).
            self._run("ANALYZE bars")
            self._run("ANALYZE bar_packs")
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise
        return changed

    def _insert_new_bars(self) -> int:
        return self._run(
            "INSERT INTO bars SELECT n.* FROM _tickstep_bars_in n WHERE NOT EXISTS ("
            "SELECT 1 FROM bars b WHERE b.symbol_id = n.symbol_id AND b.ts = n.ts) "
            "ORDER BY n.symbol_id, n.ts"
        )

    def _rebuild_packs(self, days_sql: str) -> None:
        """Rebuild the packs of the (symbol_id, day) pairs ``days_sql`` selects."""
        day = NS_PER_DAY
        self._run(f"CREATE TEMP TABLE _tickstep_days AS {days_sql.format(day=day)}")
        self._run(
            "DELETE FROM bar_packs p USING _tickstep_days d "
            "WHERE p.symbol_id = d.symbol_id AND p.day = d.day"
        )
        sections = " || ".join(
            f"string_agg({'int8send' if c == 'ts' else 'float8send'}(b.{c}), ''::bytea "
            "ORDER BY b.ts)"
            for c in _PACK_COLUMNS
        )
        self._run(
            "INSERT INTO bar_packs (symbol_id, day, n, first_ts, last_ts, data) "
            f"SELECT b.symbol_id, d.day, count(*), min(b.ts), max(b.ts), {sections} "
            "FROM _tickstep_days d JOIN bars b ON b.symbol_id = d.symbol_id "
            f"AND b.ts >= d.day * {day} AND b.ts < (d.day + 1) * {day} "
            "GROUP BY b.symbol_id, d.day"
        )
        self._run("DROP TABLE _tickstep_days")
        self._run("UPDATE tickstep_state SET packs_generation = generation")

    def rebuild_packs(self) -> None:
        """Rebuild every pack from ``bars``, e.g. after changing bars with plain SQL.

        Until then, loads stay correct but use the slower row query.
        """
        try:
            self._rebuild_packs("SELECT DISTINCT symbol_id, ts / {day} AS day FROM bars")
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise

    # --- reading ---------------------------------------------------------------------------

    def _listing_sql(self) -> str:
        return (
            "SELECT s.*, r.first, r.last, r.bars FROM symbols s LEFT JOIN ("
            "SELECT symbol_id, min(ts) AS first, max(ts) AS last, count(*) AS bars "
            "FROM bars GROUP BY symbol_id) r USING (symbol_id)"
        )

    def _metadata_rows(self, names: list[str] | None, *, with_range: bool) -> pd.DataFrame:
        rows = super()._metadata_rows(names, with_range=with_range)
        if "packs_valid" in rows.columns:
            self._packs_valid = bool(rows["packs_valid"].all()) and len(rows) > 0
            rows = rows.drop(columns=["packs_valid"])
        return rows

    def _metadata_sql(self, names: list[str] | None, with_range: bool) -> tuple[str, Any]:
        where = "" if names is None else "WHERE s.symbol = ANY($1::TEXT[])"
        params = None if names is None else (names,)
        valid = "(SELECT generation = packs_generation FROM tickstep_state) AS packs_valid"
        if not with_range:
            return f"SELECT s.*, {valid} FROM symbols s {where}", params
        # min/max per symbol come from the primary key index, not a scan.
        sql = (
            f"SELECT s.*, r.first_ts, r.last_ts, {valid} FROM symbols s LEFT JOIN LATERAL ("
            "SELECT min(b.ts) AS first_ts, max(b.ts) AS last_ts FROM bars b "
            f"WHERE b.symbol_id = s.symbol_id) r ON true {where}"
        )
        return sql, params

    def _fetch_bars(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        tables: FilterTables | None,
        frame: Timeframe | None,
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        if tables is None and frame is None and getattr(self, "_packs_valid", False):
            table = self._arrow(self._packs_sql(ids, lo, hi))
            self._con.commit()
            if table.num_rows:
                return _unpack(table)
            # No packs: none in range, or bars changed since the metadata query; the
            # row query below is the authority (one more statement, rarely).
        table = self._arrow(self._bars_sql(ids, lo, hi, tables, frame))
        self._con.commit()
        return arrow_columns(table)

    def _packs_sql(self, ids: np.ndarray, lo: int, hi: int) -> str:
        """Packs of the symbols overlapping [lo, hi), trimmed to it in SQL.

        A pack cut by a bound is sliced: the bars before the cut are counted on the
        primary key of ``bars`` (at most a day of them), each column section is cut with
        ``substring``. Packs inside the range are sent as they are.
        """
        lo_s, hi_s = _int(lo), _int(hi)
        before_lo = (
            f"CASE WHEN p.first_ts >= {lo_s} THEN 0 ELSE (SELECT count(*) FROM bars b "
            f"WHERE b.symbol_id = p.symbol_id AND b.ts >= p.first_ts AND b.ts < {lo_s}) END"
        )
        before_hi = (
            f"CASE WHEN p.last_ts < {hi_s} THEN p.n ELSE (SELECT count(*) FROM bars b "
            f"WHERE b.symbol_id = p.symbol_id AND b.ts >= p.first_ts AND b.ts < {hi_s}) END"
        )
        sliced = " || ".join(
            f"substring(p.data FROM {k} * p.n * 8 + c.i0 * 8 + 1 FOR (c.i1 - c.i0) * 8)"
            for k in range(len(_PACK_COLUMNS))
        )
        return (
            "SELECT p.symbol_id, (c.i1 - c.i0)::int4 AS n, CASE WHEN c.i0 = 0 AND c.i1 = p.n "
            f"THEN p.data ELSE {sliced} END AS data FROM bar_packs p "
            f"CROSS JOIN LATERAL (SELECT ({before_lo})::int4 AS i0, ({before_hi})::int4 AS i1) c "
            f"WHERE p.symbol_id = ANY({_int_array(ids, 'int4')}) "
            f"AND p.first_ts < {hi_s} AND p.last_ts >= {lo_s} "
            "AND (SELECT generation = packs_generation FROM tickstep_state) "
            "ORDER BY p.symbol_id, p.day"
        )

    def _bars_sql(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        tables: FilterTables | None,
        frame: Timeframe | None,
    ) -> str:
        bounds = f"b.ts >= {_int(lo)} AND b.ts < {_int(hi)}"
        cols = "b.symbol_id, b.ts, b.open, b.high, b.low, b.close, b.volume"
        if tables is None:
            # No ORDER BY: a sequential scan streams fastest; rows are grouped and
            # ordered in numpy afterwards (vectorised), as for DuckDB.
            return (
                f"SELECT {cols} FROM bars b WHERE b.symbol_id = ANY("
                f"{_int_array(ids, 'int4')}) AND {bounds}"
            )
        requested = (
            "req AS (SELECT * FROM unnest("
            f"{_int_array(ids, 'int4')}, {_int_array(tables.calendar_of, 'int4')}, "
            f"{_int_array(tables.tz_of, 'int4')}) AS r(symbol_id, cal, tzk))"
        )
        ctes = [requested]
        joins = ["JOIN req r USING (symbol_id)"]
        day = None
        if tables.sessions is not None:
            s = tables.sessions
            ctes.append(
                "sess AS (SELECT * FROM unnest("
                f"{_int_array(s['s_cal'], 'int4')}, {_int_array(s['s_day'], 'int8')}, "
                f"{_int_array(s['s_open'], 'int8')}, {_int_array(s['s_close'], 'int8')}) "
                "AS s(cal, day, open_ns, close_ns))"
            )
            # Every regular minute of every session: bars join it on (calendar, minute).
            ctes.append(
                f"rth AS (SELECT cal, day, generate_series(open_ns / {NS_PER_MINUTE}, "
                f"close_ns / {NS_PER_MINUTE} - 1) AS minute FROM sess)"
            )
            joins.append(f"JOIN rth m ON m.cal = r.cal AND m.minute = b.ts / {NS_PER_MINUTE}")
            day = "m.day"
        if frame is not None:
            z = tables.offsets
            slot = _int(z["z_slot"])
            ctes.append(
                "zone AS (SELECT * FROM unnest("
                f"{_int_array(z['z_key'], 'int4')}, {_int_array(z['z_from'], 'int8')}, "
                f"{_int_array(z['z_to'], 'int8')}, {_int_array(z['z_off'], 'int8')}) "
                "AS z(tzk, from_ns, to_ns, off_ns))"
            )
            ctes.append(
                f"slots AS (SELECT tzk, off_ns, generate_series(from_ns / {slot}, "
                f"to_ns / {slot} - 1) AS slot FROM zone)"
            )
            joins.append(f"JOIN slots z ON z.tzk = r.tzk AND z.slot = b.ts / {slot}")
        head = "WITH " + ", ".join(ctes) + " "
        if frame is None:
            return head + f"SELECT {cols} FROM bars b {' '.join(joins)} WHERE {bounds}"
        if frame.daily:
            bucket = (
                f"{day} * {NS_PER_DAY}"
                if day
                else f"((b.ts + z.off_ns) / {NS_PER_DAY}) * {NS_PER_DAY}"
            )
        else:
            step = _int(frame.step_ns)
            bucket = f"b.ts - ((((b.ts + z.off_ns) % {step}) + {step}) % {step})"
        body = (
            f"SELECT b.symbol_id, ({bucket})::int8 AS bucket, b.ts, b.open, b.high, b.low, "
            f"b.close, b.volume FROM bars b {' '.join(joins)} WHERE {bounds}"
        )
        agg = (
            "SELECT symbol_id, bucket AS ts, (array_agg(open ORDER BY ts))[1] AS open, "
            "max(high) AS high, min(low) AS low, "
            "(array_agg(close ORDER BY ts DESC))[1] AS close, sum(volume) AS volume "
            "FROM bucketed GROUP BY symbol_id, bucket ORDER BY symbol_id, bucket"
        )
        return head.rstrip() + f", bucketed AS ({body}) " + agg


def _unpack(table: pa.Table) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Packs (symbol_id, n, data) -> numpy columns; no Python work per bar.

    Each pack holds n big-endian 8-byte values per column, column after column, and all
    packs are viewed as one big-endian word array. Few long packs (intraday bars, a day
    each) are cut into column sections with a loop over packs; many short ones (daily
    bars) go through one vectorised gather per column instead.
    """
    table = table.combine_chunks()
    n = table.column("n").to_numpy().astype(np.int64)
    keep = n > 0
    ids = table.column("symbol_id").to_numpy().astype(np.int64)
    data = table.column("data").chunk(0) if table.num_rows else pa.array([], pa.binary())
    if data.type != pa.large_binary():
        data = data.cast(pa.large_binary())
    offsets = np.frombuffer(data.buffers()[1], dtype=np.int64)[
        data.offset : data.offset + len(data) + 1
    ]
    words = np.frombuffer(data.buffers()[2] or b"", dtype=">i8")
    if (offsets % 8).any() or not np.array_equal(np.diff(offsets), n * 8 * len(_PACK_COLUMNS)):
        raise DataError("bar packs have an unexpected size; run PostgresStore.rebuild_packs()")
    n, starts = n[keep], offsets[:-1][keep] // 8
    columns = {}
    if len(n) <= 20_000:
        # Few, long packs (intraday bars): copy each column section whole.
        sizes, firsts = n.tolist(), starts.tolist()
        for k, name in enumerate(_PACK_COLUMNS):
            typed = _typed(words, name)
            parts = [typed[f + k * m : f + (k + 1) * m] for f, m in zip(firsts, sizes)]
            values = np.concatenate(parts) if parts else typed[:0]
            columns[name] = values.astype(np.int64 if name == "ts" else np.float64)
        return np.repeat(ids[keep], n), columns
    # Many short packs (daily bars): one vectorised gather per column.
    # Word index of bar j of pack i in column k: starts[i] + k * n[i] + j.
    total = int(n.sum())
    pack_n = np.repeat(n, n)
    first = np.repeat(starts - (np.cumsum(n) - n), n)
    first += np.arange(total)
    for k, name in enumerate(_PACK_COLUMNS):
        values = _typed(words, name)[first + k * pack_n if k else first]
        columns[name] = values.astype(np.int64 if name == "ts" else np.float64)
    return np.repeat(ids[keep], n), columns


def _typed(words: np.ndarray, name: str) -> np.ndarray:
    """The big-endian words seen as the column's type (before any copy converts them)."""
    return words if name == "ts" else words.view(">f8")


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
