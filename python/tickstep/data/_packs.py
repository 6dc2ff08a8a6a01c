"""PostgreSQL's bar packs: each symbol's bars of a UTC day as one ``bytea``, for fast loads.

PostgreSQL spends about half a microsecond per row on COPY output, and a client
as much again decoding it, so a row-per-bar transfer tops out near 1.5 million bars/s on
two cores. Ingest therefore also keeps ``bar_packs``: per symbol and UTC day, the day's
bars as one ``bytea`` (ts, then open, high, low, close, volume; big-endian 8-byte
values, column after column), built in SQL from ``bars``. An unfiltered or date-range
load reads packs -- a few thousand rows -- trimmed to the range in SQL, and numpy views
the bytes. ``bars`` stays the single source of truth: a statement-level trigger counts
every change to it, and packs are used only when they were built at the current count,
so a change made outside tickstep (plain SQL) makes loads fall back to the row query
until the next ingest rebuilds them. Loads with regular-hours or resampling filters
always run on ``bars``. The packs query holds only integers derived here (symbol ids
read from the database, nanosecond bounds), rendered from Python ints.

Extra columns (see `tickstep.data._store_base`) follow the prices in each pack, one
section per stored extra column in the table's order; a NULL is stored as `NULL_WORD`
(a quiet NaN with a payload, so it reads as a missing value and is told apart only to
find symbols without the column). ``extra`` counts a pack's extra sections: adding a
column rebuilds every pack, and a load whose packs do not hold every stored column
(columns added with plain SQL) reads the rows instead. A load sends only the sections
it asks for.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tickstep.data._bars_query import POSTGRES, extra_column, quote
from tickstep.data._columns import VALUE_COLUMNS, DataError
from tickstep.timeframes import NS_PER_DAY

__all__ = ["NULL_WORD", "PACK_COLUMNS", "SCHEMA", "packs_query", "rebuild_statements", "unpack"]

PACK_COLUMNS = ("ts", *VALUE_COLUMNS)
#: How a pack stores an extra column's NULL: a quiet NaN whose payload PostgreSQL's
#: float8send never gives a NaN (it sends 0x7ff8000000000000).
NULL_WORD = 0x7FF800000000DEAD

# The packs' tables, the change counter of ``bars`` and the trigger that keeps it.
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS bar_packs (symbol_id INTEGER NOT NULL, "
    "day BIGINT NOT NULL, n INTEGER NOT NULL, first_ts BIGINT NOT NULL, "
    "last_ts BIGINT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (symbol_id, day))",
    # Uncompressed out-of-line storage: reading a pack is a plain copy.
    "ALTER TABLE bar_packs ALTER COLUMN data SET STORAGE EXTERNAL",
    # How many extra-column sections follow the prices in a pack.
    "ALTER TABLE bar_packs ADD COLUMN IF NOT EXISTS extra INTEGER NOT NULL DEFAULT 0",
    "CREATE TABLE IF NOT EXISTS tickstep_state (one BOOLEAN PRIMARY KEY DEFAULT true "
    "CHECK (one), generation BIGINT NOT NULL, packs_generation BIGINT NOT NULL)",
    # Bars stored by an older layout have no packs: mark them stale from the start.
    "INSERT INTO tickstep_state (generation, packs_generation) SELECT "
    "CASE WHEN EXISTS (SELECT 1 FROM bars) THEN 1 ELSE 0 END, 0 "
    "ON CONFLICT (one) DO NOTHING",
    "CREATE OR REPLACE FUNCTION tickstep_bars_changed() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "UPDATE tickstep_state SET generation = generation + 1; RETURN NULL; END $$",
    "CREATE OR REPLACE TRIGGER tickstep_bars_changed AFTER INSERT OR UPDATE OR "
    "DELETE OR TRUNCATE ON bars FOR EACH STATEMENT "
    "EXECUTE FUNCTION tickstep_bars_changed()",
)

# Whether the packs were built at the current generation of ``bars``.
PACKS_VALID = "(SELECT generation = packs_generation FROM tickstep_state)"


def day_of(ts: str) -> str:
    """The UTC day (days since the epoch) of the ns timestamp expression ``ts``."""
    return POSTGRES.floor_div(ts, NS_PER_DAY)


def rebuild_statements(days_sql: str, extra: list[str] | tuple[str, ...] = ()) -> list[str]:
    """Statements rebuilding the packs of the (symbol_id, day) pairs ``days_sql`` selects,
    with the stored extra columns ``extra`` (all of them, in the table's order)."""
    day = NS_PER_DAY
    null = f"decode('{NULL_WORD:016x}', 'hex')"
    parts = [
        f"string_agg({'int8send' if c == 'ts' else 'float8send'}(b.{c}), ''::bytea ORDER BY b.ts)"
        for c in PACK_COLUMNS
    ] + [
        f"string_agg(coalesce(float8send(b.{quote(c)}), {null}), ''::bytea ORDER BY b.ts)"
        for c in extra
    ]
    sections = " || ".join(parts)
    return [
        f"CREATE TEMP TABLE _tickstep_days AS {days_sql}",
        "DELETE FROM bar_packs p USING _tickstep_days d "
        "WHERE p.symbol_id = d.symbol_id AND p.day = d.day",
        "INSERT INTO bar_packs (symbol_id, day, n, first_ts, last_ts, data, extra) "
        f"SELECT b.symbol_id, d.day, count(*), min(b.ts), max(b.ts), {sections}, {len(extra)} "
        "FROM _tickstep_days d JOIN bars b ON b.symbol_id = d.symbol_id "
        f"AND b.ts >= d.day * {day} AND b.ts < (d.day + 1) * {day} "
        "GROUP BY b.symbol_id, d.day",
        "DROP TABLE _tickstep_days",
        "UPDATE tickstep_state SET packs_generation = generation",
    ]


def packs_query(
    ids: np.ndarray, lo: int, hi: int, extra: list[int] | None = None, stored: int = 0
) -> str:
    """Packs of the symbols overlapping [lo, hi), trimmed to it in SQL.

    A pack cut by a bound is sliced: the bars before the cut are counted on the
    primary key of ``bars`` (at most a day of them), each column section is cut with
    ``substring``. Packs inside the range are sent as they are when every section is
    asked for. ``extra``: the positions (among the ``stored`` extra columns) of the extra
    sections to send after the prices, in that order; each pack's ``extra`` count comes
    along so the caller can check it holds them all.
    """
    extra = list(extra or [])
    sections = [*range(len(PACK_COLUMNS)), *(len(PACK_COLUMNS) + k for k in extra)]
    whole = extra == list(range(stored))
    lo_s, hi_s = str(int(lo)), str(int(hi))
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
        for k in sections
    )
    data = f"CASE WHEN c.i0 = 0 AND c.i1 = p.n THEN p.data ELSE {sliced} END" if whole else sliced
    return (
        f"SELECT p.symbol_id, (c.i1 - c.i0)::int4 AS n, p.extra, {data} AS data FROM bar_packs p "
        f"CROSS JOIN LATERAL (SELECT ({before_lo})::int4 AS i0, ({before_hi})::int4 AS i1) c "
        f"WHERE p.symbol_id = ANY({POSTGRES.int_array(ids, 'int4', {})}) "
        f"AND p.first_ts < {hi_s} AND p.last_ts >= {lo_s} "
        f"AND {PACKS_VALID} "
        "ORDER BY p.symbol_id, p.day"
    )


def unpack(table: pa.Table, extra: int = 0) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Packs (symbol_id, n, data) -> numpy columns; no Python work per bar.

    Each pack holds n big-endian 8-byte values per column, column after column, and all
    packs are viewed as one big-endian word array. Few long packs (intraday bars, a day
    each) are cut into column sections with a loop over packs; many short ones (daily
    bars) go through one vectorised gather per column instead. ``extra`` sections follow
    the prices: they come back as ``e0, e1, ...`` (NaN where NULL) with the NULL mask
    as ``e0:null``, ... where there are NULLs.
    """
    names = (*PACK_COLUMNS, *(extra_column(k) for k in range(extra)))
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
    if (offsets % 8).any() or not np.array_equal(np.diff(offsets), n * 8 * len(names)):
        raise DataError("bar packs have an unexpected size; run PostgresStore.rebuild_packs()")
    n, starts = n[keep], offsets[:-1][keep] // 8
    columns = {}
    if len(n) <= 20_000:
        # Few, long packs (intraday bars): copy each column section whole, turning it
        # native-endian on the way (one pass over the bytes).
        sizes, firsts = n.tolist(), starts.tolist()
        total = int(n.sum())
        for k, name in enumerate(names):
            typed = _typed(words, name)
            values = np.empty(total, np.int64 if name == "ts" else np.float64)
            at = 0
            for f, m in zip(firsts, sizes):
                values[at : at + m] = typed[f + k * m : f + (k + 1) * m]
                at += m
            _store(columns, name, values)
        return np.repeat(ids[keep], n), columns
    # Many short packs (daily bars): one vectorised gather per column.
    # Word index of bar j of pack i in column k: starts[i] + k * n[i] + j.
    total = int(n.sum())
    pack_n = np.repeat(n, n)
    first = np.repeat(starts - (np.cumsum(n) - n), n)
    first += np.arange(total)
    for k, name in enumerate(names):
        _store(columns, name, _typed(words, name)[first + k * pack_n if k else first])
    return np.repeat(ids[keep], n), columns


def _store(columns: dict[str, np.ndarray], name: str, values: np.ndarray) -> None:
    """A decoded section into ``columns``: native-endian, in a new array nobody else holds,
    frozen so the engine adopts it instead of copying it; for an extra column, its NULL
    mask beside it when it has NULLs."""
    out = values.astype(np.int64 if name == "ts" else np.float64, copy=False)
    out.flags.writeable = False
    columns[name] = out
    if name not in PACK_COLUMNS:
        nulls = out.view(np.int64) == NULL_WORD
        if nulls.any():
            columns[f"{name}:null"] = nulls


def _typed(words: np.ndarray, name: str) -> np.ndarray:
    """The big-endian words seen as the column's type (before any copy converts them)."""
    return words if name == "ts" else words.view(">f8")
