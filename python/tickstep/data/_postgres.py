"""The same store on PostgreSQL, with bulk transfer through ADBC (binary COPY to Arrow).

Tables mirror the DuckDB store: ``symbols`` (identity ``symbol_id``, ``symbol`` unique,
metadata columns) and ``bars`` (``symbol_id, ts`` primary key, float8 values, one more
nullable float8 column per extra column ingested), plus the ``bars_view`` for people.
Filters and resampling run in SQL exactly as in `Store`.

Transfer: the ADBC PostgreSQL driver runs a query without bind parameters as a binary
``COPY ... TO STDOUT`` and decodes it to Arrow in C++, and ingests Arrow tables with
binary ``COPY ... FROM STDIN``.

Packs: loads without regular-hours or resampling filters read ``bar_packs``, each
symbol's bars of a UTC day as one ``bytea`` (see `tickstep.data._packs`). Packs hold
OHLCV only: a load that reads extra columns runs the row query on ``bars``.
Every value a user typed (symbol names, metadata) reaches SQL as a bound parameter or
as Arrow data, never as SQL text.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from tickstep.data import _packs as packs
from tickstep.data._bars_query import POSTGRES, bars_query, quote
from tickstep.data._buckets import split_by_symbol
from tickstep.data._calendars import FilterSpans
from tickstep.data._columns import VALUE_COLUMNS, DataError, MarketColumns
from tickstep.data._metadata import METADATA_COLUMNS, metadata_sql_type
from tickstep.data._request import Timeframe
from tickstep.data._store_base import BarStore, stage_table

__all__ = ["PostgresStore"]

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
# Bytes per Arrow batch of a resampled load's bars (the driver's default is 16 MB, the
# whole result of most loads in one batch).
_BUCKET_BATCH_BYTES = 1 << 16


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

    dialect = POSTGRES

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
            raise DataError(
                f"cannot connect to PostgreSQL at {_redact(url)}: {exc}", source=_redact(url)
            ) from None
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

    def _run_count(self, sql: str) -> int:
        return self._run(sql)

    def _end_read(self) -> None:
        self._con.commit()

    def _stored_columns_sql(self) -> str:
        base = ", ".join(f"'{c}'" for c in ("symbol_id", "ts", *VALUE_COLUMNS))
        return (
            "(SELECT array_agg(column_name::text ORDER BY ordinal_position) FROM "
            "information_schema.columns WHERE table_schema = current_schema() AND "
            f"table_name = 'bars' AND column_name NOT IN ({base}))"
        )

    def _add_bar_columns(self, names: list[str]) -> bool:
        """As in every store; also shows new columns in the view (PostgreSQL's lists its
        columns when created). Whether any column was added."""
        before = self._bar_columns()
        super()._add_bar_columns(names)
        if not [n for n in names if n not in before]:
            return False
        self._run(self._view_sql(self._bar_columns()))
        return True

    @staticmethod
    def _view_sql(extra: list[str]) -> str:
        shown = "".join(f", b.{quote(c)}" for c in extra)
        return (
            "CREATE OR REPLACE VIEW bars_view AS SELECT s.symbol, "
            f"to_timestamp(b.ts / 1e9) AS ts, b.open, b.high, b.low, b.close, b.volume{shown} "
            "FROM bars b JOIN symbols s USING (symbol_id)"
        )

    def _stage(self, name: str, table: pa.Table) -> None:
        self.queries_executed += 1
        cur = self._con.cursor()
        try:
            cur.adbc_ingest(name, table, mode="create", temporary=True)
        finally:
            cur.close()

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        try:
            yield
            self._con.commit()
        except BaseException:
            self._con.rollback()
            raise

    @contextmanager
    def _staged(self, name: str, table: pa.Table) -> Iterator[None]:
        self._stage(name, table)
        self._run(f"ANALYZE {name}")  # a fresh temp table has no statistics
        yield
        self._run(f"DROP TABLE {name}")

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
        for statement in packs.SCHEMA:
            self._run(statement)
        self._run(self._view_sql(self._bar_columns()))

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
            extra = market.columns
            new_layout = self._add_bar_columns(extra)
            self._stage("_tickstep_bars_in", stage_table(market, ids, extra))
            # A fresh temp table has no statistics; without them the planner may pick
            # a nested loop over millions of rows for the merge.
            self._run("ANALYZE _tickstep_bars_in")
            changed = self._merge_bars(on_conflict, {v: k for k, v in ids.items()}, extra)
            # A new extra column changes every pack's layout: rebuild them all.
            self._rebuild_packs(
                f"SELECT DISTINCT symbol_id, {packs.day_of('ts')} AS day "
                f"FROM {'bars' if new_layout else '_tickstep_bars_in'}"
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

    def _insert_new_bars(self, extra: list[str]) -> int:
        into, values = self._insert_columns(extra)
        return self._run(
            f"INSERT INTO bars ({into}) SELECT {values} FROM _tickstep_bars_in n WHERE NOT EXISTS ("
            "SELECT 1 FROM bars b WHERE b.symbol_id = n.symbol_id AND b.ts = n.ts) "
            "ORDER BY n.symbol_id, n.ts"
        )

    def _rebuild_packs(self, days_sql: str) -> None:
        """Rebuild the packs of the (symbol_id, day) pairs ``days_sql`` selects."""
        for statement in packs.rebuild_statements(days_sql, self._bar_columns()):
            self._run(statement)

    def rebuild_packs(self) -> None:
        """Rebuild every pack from ``bars``, e.g. after changing bars with plain SQL.

        Until then, loads stay correct but use the slower row query.
        """
        try:
            self._rebuild_packs(f"SELECT DISTINCT symbol_id, {packs.day_of('ts')} AS day FROM bars")
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

    def _metadata_rows(self, names: list[str] | None, *, with_range: bool | str) -> pd.DataFrame:
        rows = super()._metadata_rows(names, with_range=with_range)
        if "packs_valid" in rows.columns:
            self._packs_valid = bool(rows["packs_valid"].all()) and len(rows) > 0
            rows = rows.drop(columns=["packs_valid"])
            listed = rows["bar_columns"].iloc[0] if len(rows) else None
            self._stored = [] if listed is None else [str(c) for c in listed]
        return rows

    def _metadata_sql(self, names: list[str] | None, with_range: bool | str) -> tuple[str, Any]:
        where = "" if names is None else "WHERE s.symbol = ANY($1::TEXT[])"
        params = None if names is None else (names,)
        valid = f"{packs.PACKS_VALID} AS packs_valid, {self._stored_columns_sql()} AS bar_columns"
        if not with_range:
            return f"SELECT s.*, {valid} FROM symbols s {where}", params
        # min/max per symbol come from the primary key index, not a scan.
        sql = (
            f"SELECT s.*, r.first_ts, r.last_ts, {valid} FROM symbols s LEFT JOIN LATERAL ("
            "SELECT min(b.ts) AS first_ts, max(b.ts) AS last_ts FROM bars b "
            f"WHERE b.symbol_id = s.symbol_id) r ON true {where}"
        )
        return sql, params

    def _read_bars(self, sql: str, params: dict[str, Any]) -> pa.Table:
        table = self._arrow(sql, params or None)
        self._con.commit()  # end the read transaction
        return table

    def _fetch_buckets(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        spans: FilterSpans | None,
        frame: Timeframe,
        extra: tuple[str, ...] = (),
    ) -> dict[int, dict[str, np.ndarray]] | None:
        # The server resamples (see bars_query); its bars, ordered by symbol, arrive in
        # small Arrow batches and each symbol's are joined into arrays when its rows end:
        # the client never holds the whole result as a table beside the arrays.
        if spans is None:
            return None
        sql, params = bars_query(self.dialect, ids, lo, hi, spans, frame, extra)
        cur = self._con.cursor()
        try:
            cur.adbc_statement.set_options(
                **{"adbc.postgresql.batch_size_hint_bytes": str(_BUCKET_BATCH_BYTES)}
            )
        except self._errors:  # pragma: no cover - an older driver: its default batches
            pass
        self.queries_executed += 1
        try:
            cur.execute(sql, parameters=params or None)
            return split_by_symbol(cur.fetch_record_batch(), len(extra))
        except self._errors as exc:
            self._con.rollback()
            raise DataError(f"PostgreSQL refused a statement: {exc}") from None
        finally:
            cur.close()
            self._con.commit()  # end the read transaction

    def _fetch_bars(
        self,
        ids: np.ndarray,
        lo: int,
        hi: int,
        spans: FilterSpans | None,
        frame: Timeframe | None,
        extra: tuple[str, ...] = (),
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        stored = getattr(self, "_stored", [])
        if spans is None and getattr(self, "_packs_valid", False) and set(extra) <= set(stored):
            sections = [stored.index(c) for c in extra]
            table = self._read_bars(packs.packs_query(ids, lo, hi, sections, len(stored)), {})
            # Packs built before a column was added with plain SQL lack its section.
            complete = pc.all(pc.equal(table.column("extra"), len(stored))).as_py()
            if table.num_rows and complete:
                return packs.unpack(table, len(extra))
            # No packs: none in range, or bars changed since the metadata query; the
            # row query is the authority (one more statement, rarely).
        return super()._fetch_bars(ids, lo, hi, spans, frame, extra)


def _redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
