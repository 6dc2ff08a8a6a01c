"""The one bars query of a load, built once for both stores' SQL dialects.

A load fetches every requested symbol's bars in one statement. Without filters it is a
plain scan of ``bars`` within ``[lo, hi)``. With ``regular_hours`` and/or ``timeframe``
each bar is joined, on (group, unit), against the expanded `FilterSpans` -- which gives
its session day and local UTC offset -- and, when resampling, aggregated per bucket:
open is the first open, high the max, low the min, close the last close, volume the sum.

The statement is the same for DuckDB and PostgreSQL; a `Dialect` supplies the few
spellings that differ (arrays, integer division, series, the per-bucket aggregate).
Every value in the SQL text is an integer this module derived itself (symbol ids read
from the database, nanosecond bounds and calendar spans computed in Python); nothing a
user typed is ever rendered into it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tickstep.data._calendars import FilterSpans
from tickstep.data._request import Timeframe
from tickstep.timeframes import NS_PER_DAY

__all__ = ["DUCKDB", "POSTGRES", "Dialect", "bars_query", "bucket_rows_query", "extra_column", "quote"]

_COLUMNS = "b.symbol_id, b.ts, b.open, b.high, b.low, b.close, b.volume"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1


@dataclass(frozen=True)
class Dialect:
    """How one SQL engine spells what the bars query needs, and how it runs it best.

    ``bind_arrays``: arrays are bound parameters (DuckDB) rather than literals in the
    text (PostgreSQL, whose bulk transfer runs statements without parameters).
    ``index_ranges``: the engine reads ``bars`` by its (symbol_id, ts) index, so a
    filtered load scans only each (symbol, span)'s range (PostgreSQL); otherwise the
    spans are expanded to units and every bar in ``[lo, hi)`` is hash-joined (DuckDB,
    whose column scans are faster than any index).
    """

    name: str
    bind_arrays: bool
    index_ranges: bool
    int_types: dict[str, str] = field(default_factory=dict)

    def int_array(self, values: np.ndarray, kind: str, params: dict[str, Any]) -> str:
        """An integer array (``kind`` "int4" or "int8") as SQL."""
        sql_type = self.int_types[kind]
        if self.bind_arrays:
            name = f"p{len(params)}"
            params[name] = np.asarray(values, dtype=np.int64 if kind == "int8" else np.int32)
            return f"${name}::{sql_type}[]"
        body = ",".join(str(int(v)) for v in np.asarray(values, dtype=np.int64))
        return f"'{{{body}}}'::{sql_type}[]"

    def rows(self, columns: dict[str, str]) -> str:
        """A SELECT giving one row per element of equally long arrays (name -> array SQL)."""
        if self.name == "duckdb":
            return "SELECT " + ", ".join(f"unnest({a}) AS {n}" for n, a in columns.items())
        names = ", ".join(columns)
        return f"SELECT * FROM unnest({', '.join(columns.values())}) AS t({names})"

    def floor_div(self, a: str, b: int) -> str:
        """``a`` divided by the positive integer ``b``, rounded down (also below zero)."""
        if self.name == "duckdb":
            return f"(({a}) // {int(b)})"
        return f"(({a}) / {int(b)} - CASE WHEN ({a}) % {int(b)} < 0 THEN 1 ELSE 0 END)"

    def series(self, first: str, last: str) -> str:
        """A set-returning expression: first, first + 1, ..., last - 1."""
        if self.name == "duckdb":
            return f"unnest(range({first}, {last}))"
        return f"generate_series({first}, {last} - 1)"

    def member(self, column: str, ids: np.ndarray, params: dict[str, Any]) -> str:
        """``column`` is one of the symbol ``ids``."""
        if self.name == "duckdb":
            # A plain filter keeps the stored order (in time order by day, each symbol's
            # rows of a day in one sorted run), so rows need no sort by time; a semi-join
            # shuffles them. Ids given in runs (a whole store's symbols are 1..N): a range,
            # which costs no more than no filter and lets a scan skip row groups by their
            # ids' min and max. Else list_contains, whose cost per row grows with the list
            # (about 10 ns per 1,000 ids): a semi-join beyond _MEMBER_LIST ids.
            wanted = np.unique(np.asarray(ids, dtype=np.int64))
            if len(wanted) and wanted[-1] - wanted[0] + 1 == len(wanted):
                return f"{column} BETWEEN {int(wanted[0])} AND {int(wanted[-1])}"
            array = self.int_array(ids, "int4", params)
            if len(ids) <= _MEMBER_LIST:
                return f"list_contains({array}, {column})"
            return f"{column} IN (SELECT unnest({array}))"
        return f"{column} = ANY({self.int_array(ids, 'int4', params)})"

    def first(self, value: str) -> str:
        """The ``value`` of a group's earliest bar (DuckDB; PostgreSQL probes by key)."""
        return f"arg_min({value}, b.ts)"

    def last(self, value: str) -> str:
        """The ``value`` of a group's latest bar."""
        return f"arg_max({value}, b.ts)"

    def last_or_null(self, value: str) -> str:
        """The ``value`` of a group's latest bar, NULL when that bar's is NULL (arg_max
        would pass over it to an earlier bar's value; an extra column's gap must stay a
        gap, as PostgreSQL's probe by key keeps it)."""
        return f"arg_max_null({value}, b.ts)"


# Most symbol ids a DuckDB filter tests by list_contains (see `Dialect.member`).
_MEMBER_LIST = 4096

DUCKDB = Dialect(
    "duckdb", bind_arrays=True, index_ranges=False, int_types={"int4": "INTEGER", "int8": "BIGINT"}
)
POSTGRES = Dialect(
    "postgres", bind_arrays=False, index_ranges=True, int_types={"int4": "int4", "int8": "int8"}
)


def quote(name: str) -> str:
    """A column name as a quoted SQL identifier (names were checked at the door)."""
    return '"' + name.replace('"', '""') + '"'


def extra_column(k: int) -> str:
    """The alias of the ``k``-th extra column in a query's result (and a staging table):
    stored names may be any text, aliases are plain."""
    return f"e{k}"


def bars_query(
    dialect: Dialect,
    ids: np.ndarray,
    lo: int,
    hi: int,
    spans: FilterSpans | None,
    timeframe: Timeframe | None,
    extra: tuple[str, ...] = (),
) -> tuple[str, dict[str, Any]]:
    """The bars of symbols ``ids`` in ``[lo, hi)``, filtered and resampled as asked.

    Returns the SQL and its bound parameters (empty for a dialect without bound arrays).
    Rows come as ``symbol_id, ts, open, high, low, close, volume`` and the stored extra
    columns ``extra`` as ``e0, e1, ...``; unfiltered rows in no particular order (the
    caller groups them), resampled rows ordered. A resampled bar's extra value is the
    one of its bucket's last bar (as the close), NULL when that bar has none.
    """
    params: dict[str, Any] = {}
    bounds = _time_bounds(dialect, lo, hi)
    picked = "".join(f", b.{quote(n)} AS {extra_column(k)}" for k, n in enumerate(extra))
    if spans is None:
        if timeframe is not None:
            raise ValueError("resampling needs the filter spans")  # pragma: no cover
        wanted = dialect.member("b.symbol_id", ids, params)
        return f"SELECT {_COLUMNS}{picked} FROM bars b WHERE {wanted} AND {bounds}", params
    span_rows = dialect.rows(
        {
            "grp": dialect.int_array(spans.group, "int4", params),
            "start_ns": dialect.int_array(spans.start, "int8", params),
            "end_ns": dialect.int_array(spans.end, "int8", params),
            "day": dialect.int_array(spans.day, "int8", params),
            "off_ns": dialect.int_array(spans.offset, "int8", params),
        }
    )
    ctes = [f"spans AS ({span_rows})"]
    if dialect.index_ranges:
        req = dialect.rows(
            {
                "symbol_id": dialect.int_array(ids, "int4", params),
                "grp": dialect.int_array(spans.group_of, "int4", params),
            }
        )
        ctes.insert(0, f"req AS ({req})")
        # One index range scan of bars per (symbol, span): only the bars kept are read.
        # OFFSET 0 keeps the planner from flattening the lateral subquery into a join it
        # may misjudge (a hash join testing every bar against every span).
        source = (
            "req r JOIN spans u ON u.grp = r.grp CROSS JOIN LATERAL (SELECT * FROM bars b "
            "WHERE b.symbol_id = r.symbol_id AND b.ts >= u.start_ns AND b.ts < u.end_ns "
            f"AND {bounds} OFFSET 0) b"
        )
    else:
        # The coarsest unit every span bound is a whole number of: NYSE's sessions
        # (9:30-16:00, early closes at 13:00) are cut into half hours, not minutes,
        # so the hash table joined against is 30 times smaller.
        unit = int(np.gcd.reduce(np.concatenate((spans.start, spans.end)))) or spans.unit_ns
        series = dialect.series(
            dialect.floor_div("start_ns", unit), dialect.floor_div("end_ns", unit)
        )
        ctes.append(f"units AS (SELECT grp, day, off_ns, {series} AS unit FROM spans)")
        # Each bar's group is looked up by its symbol id in a dense array (-1: not
        # requested), so the one hash table built is the units' (a few per minute of
        # the sessions). Joining a table of the requested symbols instead lets the
        # planner cross it with the units first and hash symbols x units rows: 20
        # symbols x 100 days of regular hours built 30 MB to return 2 MB.
        ids = np.asarray(ids, dtype=np.int64)
        group_of = np.full(int(ids.max(initial=0)) + 1, -1, dtype=np.int32)
        group_of[ids] = spans.group_of
        group = f"({dialect.int_array(group_of, 'int4', params)})[b.symbol_id + 1]"
        first_id, last_id = (int(ids.min()), int(ids.max())) if len(ids) else (0, -1)
        source = (
            f"bars b JOIN units u ON u.grp = {group} AND u.unit = {dialect.floor_div('b.ts', unit)}"
        )
        # The id range lets the scan skip other symbols' row groups.
        bounds = f"{bounds} AND b.symbol_id BETWEEN {first_id} AND {last_id}"
    head = "WITH " + ", ".join(ctes)
    if timeframe is None:
        return f"{head} SELECT {_COLUMNS}{picked} FROM {source} WHERE {bounds}", params
    bucket = _bucket(dialect, spans, timeframe, "u.off_ns", "u.day")
    if dialect.index_ranges:
        return f"{head} {_aggregate_by_ranges(bucket, bounds, extra)}", params
    last_extra = "".join(
        f", {dialect.last_or_null(f'b.{quote(n)}')} AS {extra_column(k)}"
        for k, n in enumerate(extra)
    )
    aggregate = (
        f"SELECT b.symbol_id, {bucket} AS ts, {dialect.first('b.open')} AS open, "
        f"max(b.high) AS high, min(b.low) AS low, {dialect.last('b.close')} AS close, "
        f"sum(b.volume) AS volume{last_extra} FROM {source} WHERE {bounds} "
        "GROUP BY b.symbol_id, 2 ORDER BY b.symbol_id, 2"
    )
    return f"{head} {aggregate}", params


def _bucket(dialect: Dialect, spans: FilterSpans, timeframe: Timeframe, off: str, day: str) -> str:
    """The start of the bar ``b.ts`` falls in, given its span's UTC offset and day."""
    if timeframe.daily:
        # Regular hours: a daily bar is the session's; else the bar's local date.
        bucket = (
            f"{day} * {NS_PER_DAY}"
            if spans.sessions
            else f"{dialect.floor_div(f'b.ts + {off}', NS_PER_DAY)} * {NS_PER_DAY}"
        )
    else:
        step = int(timeframe.step_ns)
        bucket = f"b.ts - ((((b.ts + {off}) % {step}) + {step}) % {step})"
    return f"CAST({bucket} AS {dialect.int_types['int8']})"


# Most units a bucket-rows query looks spans up in (4 bytes each, in its lookup row):
# 10 years of minutes of one group; beyond, the store resamples in SQL.
MAX_UNITS = 1 << 22

def bucket_capacity(
    ids: np.ndarray, lo: int, hi: int, spans: FilterSpans, timeframe: Timeframe
) -> dict[int, int]:
    """Per symbol id, the most buckets a resampled load can give it: a stretch of time of
    length L meets at most ceil(L / step) + 1 buckets of one step (a local day is at
    least 22 hours), summed over its group's spans inside ``[lo, hi)``."""
    step = 22 * 3_600 * 10**9 if timeframe.daily else int(timeframe.step_ns)
    length = np.maximum(np.minimum(spans.end, hi) - np.maximum(spans.start, lo), 0)
    per_span = np.where(length > 0, -(-length // step) + 1, 0)
    n_groups = int(spans.group.max()) + 1 if len(spans.group) else 0
    per_group = np.bincount(spans.group, weights=per_span, minlength=n_groups)
    return {int(sid): int(per_group[g]) for sid, g in zip(ids, spans.group_of) if g >= 0}


#: The one-row relation a bucket-rows query reads its lookup arrays from (as ``lk``).
LOOKUP = "tickstep_bucket_lookup"


def bucket_rows_query(
    dialect: Dialect,
    ids: np.ndarray,
    lo: int,
    hi: int,
    spans: FilterSpans,
    timeframe: Timeframe,
    extra: tuple[str, ...] = (),
) -> tuple[str, dict[str, np.ndarray]] | None:
    """The bars a resampled load keeps, in stored order, each with its bucket -- for
    `tickstep.data._buckets` to fold as they stream in (DuckDB) -- or None when the
    spans' lookup table would exceed `MAX_UNITS`.

    Rows come as ``symbol_id, bucket, ts, open, high, low, close, volume, e0, ...``. No
    join: a bar's span is read from a dense table of the spans' units, indexed by its
    group and unit (-1: outside every span), so the scan's order is the result's.

    The lookup arrays are returned by name, for the caller to provide as the one row of
    the relation `LOOKUP` (a list column each): bound as parameters instead, DuckDB
    holds each element as a value object of its own (~190 bytes, not 4), and a load of
    2 MB of bars spent 1 MB on them.
    """
    lookups: dict[str, np.ndarray] = {}
    unit = int(np.gcd.reduce(np.concatenate((spans.start, spans.end)))) or spans.unit_ns
    if not len(spans.start) or not len(ids):
        return None
    first = int(spans.start.min()) // unit
    width = int(spans.end.max()) // unit - first
    n_groups = int(spans.group.max()) + 1
    if n_groups * width > MAX_UNITS:
        return None
    span_of = np.full(n_groups * width, -1, dtype=np.int32)
    for k, (g, a, b) in enumerate(zip(spans.group, spans.start // unit, spans.end // unit)):
        span_of[int(g) * width + int(a) - first : int(g) * width + int(b) - first] = k
    ids = np.asarray(ids, dtype=np.int64)
    group_of = np.full(int(ids.max()) + 1, -1, dtype=np.int32)
    group_of[ids] = spans.group_of
    lookups["group_of"], lookups["span_of"] = group_of, span_of
    group = "lk.group_of[b.symbol_id + 1]"
    slot = f"({dialect.floor_div('b.ts', unit)} - {first})"
    # The bounds let the scan skip row groups; the CASE guards the lookup itself, as a
    # negative index would count from the table's end.
    where = (
        f"{_time_bounds(dialect, lo, hi)} AND b.symbol_id BETWEEN {int(ids.min())} AND "
        f"{int(ids.max())} AND b.ts >= CAST({first * unit} AS BIGINT) AND "
        f"b.ts < CAST({(first + width) * unit} AS BIGINT)"
    )
    lookup = (
        f"lk.span_of[CASE WHEN {group} >= 0 AND "
        f"{slot} >= 0 AND {slot} < {width} THEN {group} * {width} + {slot} + 1 END]"
    )
    picked = "".join(f", b.{quote(n)}" for n in extra)
    located = (
        f"SELECT b.symbol_id, b.ts, b.open, b.high, b.low, b.close, b.volume{picked}, "
        f"{lookup} AS span FROM bars b, {LOOKUP} lk WHERE {where}"
    )
    # Only the per-span values the bucket needs are looked up.
    by_day = timeframe.daily and spans.sessions
    lookups["per_span"] = np.asarray(spans.day if by_day else spans.offset, dtype=np.int64)
    value = "lk.per_span[b.span + 1]"
    bucket = _bucket(dialect, spans, timeframe, value, value)
    aliases = "".join(f", b.{quote(n)} AS {extra_column(k)}" for k, n in enumerate(extra))
    sql = (
        f"SELECT b.symbol_id, {bucket} AS bucket, b.ts, b.open, b.high, b.low, b.close, "
        f"b.volume{aliases} FROM ({located}) b, {LOOKUP} lk WHERE b.span >= 0"
    )
    return sql, lookups


def _aggregate_by_ranges(bucket: str, bounds: str, extra: tuple[str, ...] = ()) -> str:
    """Resampling by index range scans (PostgreSQL): each (symbol, span) range is
    aggregated per bucket inside its own scan, then the few partial rows of a bucket
    cut by a span's edge (a lunch break, an offset change) are merged.

    Why not one aggregate over all scanned bars: the planner cannot know how many rows
    the range scans return (it guesses ~1% of them) and sorts them all for a group
    aggregate, spilling to disk after filling ``work_mem``; and PostgreSQL has no
    arg_min/arg_max (an ordered aggregate sorts each group; min/max over (ts, value)
    arrays copies a new array into a group's state for every later bar, never freed
    until the end). Here each scan's rows are at most one span's, and a bucket's first
    open and last close are read by the primary key, one index probe each per output
    bar. The extra columns of a bucket's last bar come from one more probe of that key.
    """
    scan = (
        f"SELECT {bucket} AS bucket, min(b.ts) AS first_ts, max(b.ts) AS last_ts, "
        "max(b.high) AS high, min(b.low) AS low, sum(b.volume) AS volume FROM bars b "
        "WHERE b.symbol_id = r.symbol_id AND b.ts >= u.start_ns AND b.ts < u.end_ns "
        f"AND {bounds} GROUP BY 1"
    )
    merged = (
        "SELECT r.symbol_id, p.bucket, min(p.first_ts) AS first_ts, max(p.last_ts) AS last_ts, "
        "max(p.high) AS high, min(p.low) AS low, sum(p.volume) AS volume "
        f"FROM req r JOIN spans u ON u.grp = r.grp CROSS JOIN LATERAL ({scan}) p "
        "GROUP BY r.symbol_id, p.bucket"
    )
    probe = "(SELECT x.{v} FROM bars x WHERE x.symbol_id = a.symbol_id AND x.ts = a.{t})"
    last_bar = ""
    picked = ""
    if extra:
        values = ", ".join(f"x.{quote(n)} AS {extra_column(k)}" for k, n in enumerate(extra))
        last_bar = (
            f" LEFT JOIN LATERAL (SELECT {values} FROM bars x "
            "WHERE x.symbol_id = a.symbol_id AND x.ts = a.last_ts) l ON true"
        )
        picked = "".join(f", l.{extra_column(k)}" for k in range(len(extra)))
    return (
        f"SELECT a.symbol_id, a.bucket AS ts, {probe.format(v='open', t='first_ts')} AS open, "
        f"a.high, a.low, {probe.format(v='close', t='last_ts')} AS close, a.volume{picked} "
        f"FROM ({merged}) a{last_bar} ORDER BY a.symbol_id, a.bucket"
    )


def _time_bounds(dialect: Dialect, lo: int, hi: int) -> str:
    """``lo <= b.ts < hi`` as SQL; an open end is left out (no predicate to evaluate)
    and the literals are typed as the column, so the scan can skip blocks by them."""
    int8 = dialect.int_types["int8"]
    parts = []
    if lo > INT64_MIN:
        parts.append(f"b.ts >= CAST({int(lo)} AS {int8})")
    if hi < INT64_MAX:
        parts.append(f"b.ts < CAST({int(hi)} AS {int8})")
    return " AND ".join(parts) or "TRUE"
