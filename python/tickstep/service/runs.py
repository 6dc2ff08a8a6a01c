"""Stored runs: every batch and every run (one job of a batch) as rows of a real database.

Embedded SQLite by default (a file beside the store: several processes may write it at
once), PostgreSQL from a ``postgresql://`` URL. Values reach SQL only as bound parameters
(SQLAlchemy Core); names a client chooses (``order_by``) are looked up among the known
columns, never pasted into a statement.

Tables
------
``batches``
    One row per batch: id, strategy, the validated request (JSON, enough to resume it),
    status (queued, running, done, failed, cancelled, interrupted), jobs done of total,
    jobs answered from the results cache, error text, idempotency key, times.
``runs``
    One row per run: ``run_id`` (``<batch_id>-<job>``), ``batch_id``, ``job``,
    ``strategy``, ``parameters`` (JSON), ``symbols``, then every statistic of
    `tickstep.metrics.STAT_LABELS` as its own column (named by `stat_column`:
    ``"Sharpe Ratio"`` -> ``sharpe_ratio``, ``"Return [%]"`` -> ``return_pct``;
    timestamps as UTC timestamps, durations in seconds), ``calc_ms`` (calculation time),
    ``status``, ``error``, ``cached`` and ``created``. A statistic added to tickstep later
    becomes a new column the next time the database is opened.
``run_returns``
    A batch's runs' daily returns, when its request kept them (``"returns": true``): a row
    per run and trading day, ``run_id``, ``day_end`` (the day's last bar, UTC) and
    ``daily_return`` (a fraction: ``0.01`` is 1%), as `tickstep.Result.daily_returns`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from tickstep.metrics import STAT_LABELS

__all__ = [
    "BATCH_STATES",
    "since_text",
    "FINAL_STATES",
    "RunsDB",
    "database_url",
    "default_runs_path",
    "stat_column",
]

BATCH_STATES = ("queued", "running", "done", "failed", "cancelled", "interrupted")
FINAL_STATES = frozenset({"done", "failed", "cancelled", "interrupted"})
_TIMESTAMP_STATS = {"Start", "End"}
#: The statistics that are lengths of time ("Duration", "Avg. Trade Duration", ...),
#: stored in seconds.
_DURATION_STATS = {label for label in STAT_LABELS if label.endswith("Duration")}
_COUNT_STATS = {"# Trades", "# Margin Calls"}


def stat_column(label: str) -> str:
    """The column of a statistic: lower case, ``[%]`` -> ``_pct``, other signs dropped.

    Examples
    --------
    >>> [stat_column(s) for s in ("Sharpe Ratio", "Return [%]", "# Trades", "Equity Final [$]")]
    ['sharpe_ratio', 'return_pct', 'trades', 'equity_final']
    >>> stat_column("Duration"), stat_column("Volatility (Ann.) [%]")
    ('duration_seconds', 'volatility_ann_pct')
    """
    text = label.replace("[%]", " pct").replace("[$]", "").replace("#", "")
    name = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    return name + "_seconds" if label in _DURATION_STATS else name


def default_runs_path(store: str | PathLike[str]) -> Path:
    """The embedded runs database of a store: ``<store>.runs.sqlite`` beside it."""
    p = Path(store).expanduser()
    return p.with_name(p.name + ".runs.sqlite")


def _stat_type(label: str) -> sa.types.TypeEngine:
    if label in _TIMESTAMP_STATS:
        return sa.DateTime(timezone=True)
    if label in _COUNT_STATS:
        return sa.BigInteger()
    return sa.Float()


def database_url(target: str | PathLike[str]) -> str:
    """A SQLAlchemy URL: ``postgresql://`` -> psycopg 3; a path -> SQLite file.

    Examples
    --------
    >>> database_url("postgresql://u:p@127.0.0.1/db")
    'postgresql+psycopg://u:p@127.0.0.1/db'
    >>> database_url("runs.sqlite").startswith("sqlite:///")
    True
    """
    text = str(target)
    for scheme in ("postgresql://", "postgres://"):
        if text.startswith(scheme):
            return "postgresql+psycopg://" + text[len(scheme):]
    if "://" in text:
        return text
    return "sqlite:///" + str(Path(text).expanduser().resolve())


def _now() -> datetime:
    return datetime.now(UTC)


def _stat_value(label: str, value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if label in _TIMESTAMP_STATS:
        ts = pd.Timestamp(value)
        if pd.isna(ts):
            return None
        return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()
    if label in _DURATION_STATS:
        td = pd.Timedelta(value)
        return None if pd.isna(td) else td.total_seconds()
    if label in _COUNT_STATS:
        return int(value)
    value = float(value)
    return value if math.isfinite(value) else None


class RunsDB:
    """The stored batches and runs.

    Parameters
    ----------
    target : path or URL
        A SQLite file (created with its directory) or a ``postgresql://`` URL.

    Examples
    --------
    >>> import tempfile, os
    >>> db = RunsDB(os.path.join(tempfile.mkdtemp(), "runs.sqlite"))
    >>> db.create_batch("b1", "sma_cross", {"strategy": "sma_cross"}, total=2)
    >>> db.add_runs("b1", "sma_cross", [{"job": 0, "params": {"fast": 5}, "symbols": "AAA",
    ...     "stats": {"Sharpe Ratio": 1.5}, "run_time": 0.01, "status": "ok", "error": None}])
    1
    >>> db.query_runs(order_by="Sharpe Ratio")[0]["sharpe_ratio"]
    1.5
    """

    def __init__(self, target: str | PathLike[str]) -> None:
        url = database_url(target)
        self.url = url
        self.dialect = url.split(":", 1)[0].split("+", 1)[0]
        if self.dialect == "sqlite":
            path = Path(url[len("sqlite:///"):])
            path.parent.mkdir(parents=True, exist_ok=True)
            self.engine = sa.create_engine(
                url, connect_args={"timeout": 30, "check_same_thread": False}
            )
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = sa.create_engine(url, pool_pre_ping=True)
        self.meta = sa.MetaData()
        self.batches = sa.Table(
            "batches", self.meta,
            sa.Column("batch_id", sa.String(64), primary_key=True),
            sa.Column("strategy", sa.String(200), nullable=False),
            sa.Column("request", sa.Text, nullable=False),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("jobs_total", sa.Integer, nullable=False),
            sa.Column("jobs_done", sa.Integer, nullable=False, default=0),
            sa.Column("jobs_cached", sa.Integer, nullable=False, default=0),
            sa.Column("error", sa.Text),
            sa.Column("idempotency_key", sa.String(200), unique=True),
            sa.Column("request_hash", sa.String(64)),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
            sa.Column("started", sa.DateTime(timezone=True)),
            sa.Column("finished", sa.DateTime(timezone=True)),
            sa.Column("attempt", sa.Integer, nullable=False, default=0),
        )
        self.stat_columns = {label: stat_column(label) for label in STAT_LABELS}
        self.runs = sa.Table(
            "runs", self.meta,
            sa.Column("run_id", sa.String(80), primary_key=True),
            sa.Column("batch_id", sa.String(64), nullable=False, index=True),
            sa.Column("job", sa.Integer, nullable=False),
            sa.Column("strategy", sa.String(200), nullable=False, index=True),
            sa.Column("parameters", sa.Text, nullable=False),
            sa.Column("symbols", sa.Text, nullable=False),
            *(sa.Column(col, _stat_type(label)) for label, col in self.stat_columns.items()),
            sa.Column("calc_ms", sa.Float),
            sa.Column("status", sa.String(16), nullable=False),
            sa.Column("error", sa.Text),
            sa.Column("cached", sa.Boolean, nullable=False, default=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False, index=True),
        )
        # A walk-forward batch's walk-forwards, one per symbol group: its windows (bounds,
        # the set chosen, each objective in and out of sample, the job of its test run's
        # row in `runs`) and the stitched out-of-sample statistics, as JSON.
        self.walk_forwards = sa.Table(
            "walk_forwards", self.meta,
            sa.Column("batch_id", sa.String(64), primary_key=True),
            sa.Column("symbols", sa.String(200), primary_key=True),
            sa.Column("position", sa.Integer, nullable=False),
            sa.Column("windows", sa.Text, nullable=False),
            sa.Column("stats", sa.Text, nullable=False),
            sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        )
        self.run_returns = sa.Table(
            "run_returns", self.meta,
            sa.Column("run_id", sa.String(80), primary_key=True),
            sa.Column("day_end", sa.DateTime(timezone=True), primary_key=True),
            sa.Column("daily_return", sa.Float(precision=53), nullable=False),
        )
        self.settings = sa.Table(
            "service_settings", self.meta,
            sa.Column("name", sa.String(64), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        self.meta.create_all(self.engine)
        self._add_new_stat_columns()

    def __repr__(self) -> str:
        return f"RunsDB({self.engine.url.render_as_string(hide_password=True)!r})"

    def close(self) -> None:
        self.engine.dispose()

    def _add_new_stat_columns(self) -> None:
        have = {c["name"] for c in sa.inspect(self.engine).get_columns("runs")}
        with self.engine.begin() as con:
            for col in self.stat_columns.values():
                if col not in have:  # a statistic newer than the database
                    type_ = self.runs.c[col].type.compile(dialect=self.engine.dialect)
                    name = self.engine.dialect.identifier_preparer.quote(col)
                    con.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {name} {type_}")

    # ---- settings ------------------------------------------------------------------------

    def setting(self, name: str) -> str | None:
        with self.engine.connect() as con:
            return con.execute(
                sa.select(self.settings.c.value).where(self.settings.c.name == name)
            ).scalar_one_or_none()

    def set_setting(self, name: str, value: str) -> None:
        with self.engine.begin() as con:
            con.execute(sa.delete(self.settings).where(self.settings.c.name == name))
            con.execute(sa.insert(self.settings).values(name=name, value=value))

    # ---- batches -------------------------------------------------------------------------

    def create_batch(
        self,
        batch_id: str,
        strategy: str,
        request: Mapping[str, Any],
        *,
        total: int,
        idempotency_key: str | None = None,
        request_hash: str | None = None,
        status: str = "queued",
    ) -> None:
        with self.engine.begin() as con:
            con.execute(sa.insert(self.batches).values(
                batch_id=batch_id, strategy=strategy, request=json.dumps(request, sort_keys=True),
                status=status, jobs_total=int(total), jobs_done=0, jobs_cached=0,
                idempotency_key=idempotency_key, request_hash=request_hash, created=_now(),
                attempt=0,
            ))

    def batch(self, batch_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as con:
            row = con.execute(
                sa.select(self.batches).where(self.batches.c.batch_id == batch_id)
            ).mappings().first()
        return _batch_dict(row) if row is not None else None

    def batch_by_key(self, key: str) -> dict[str, Any] | None:
        with self.engine.connect() as con:
            row = con.execute(
                sa.select(self.batches).where(self.batches.c.idempotency_key == key)
            ).mappings().first()
        return _batch_dict(row) if row is not None else None

    def batches_in(self, states: Iterable[str]) -> list[dict[str, Any]]:
        with self.engine.connect() as con:
            rows = con.execute(
                sa.select(self.batches)
                .where(self.batches.c.status.in_(list(states)))
                .order_by(self.batches.c.created)
            ).mappings().all()
        return [_batch_dict(r) for r in rows]

    def update_batch(self, batch_id: str, *, only_if: Sequence[str] | None = None, **values: Any) -> bool:
        """Set columns of a batch; with ``only_if``, only while its status is one of those.
        Returns whether a row changed."""
        for key in ("started", "finished"):
            if values.get(key) is True:
                values[key] = _now()
        stmt = sa.update(self.batches).where(self.batches.c.batch_id == batch_id)
        if only_if is not None:
            stmt = stmt.where(self.batches.c.status.in_(list(only_if)))
        with self.engine.begin() as con:
            return con.execute(stmt.values(**values)).rowcount > 0

    # ---- runs ----------------------------------------------------------------------------

    def _run_values(self, batch_id: str, strategy: str, row: Mapping[str, Any], created: datetime) -> dict[str, Any]:
        stats = row.get("stats") or {}
        values: dict[str, Any] = {
            "run_id": f"{batch_id}-{int(row['job'])}",
            "batch_id": batch_id,
            "job": int(row["job"]),
            "strategy": strategy,
            "parameters": json.dumps(row.get("params") or {}, sort_keys=True),
            "symbols": str(row["symbols"]),
            "calc_ms": float(row.get("run_time") or 0.0) * 1000.0,
            "status": str(row["status"]),
            "error": row.get("error"),
            "cached": bool(row.get("cached", False)),
            "created": created,
        }
        for label, col in self.stat_columns.items():
            values[col] = _stat_value(label, stats.get(label))
        return values

    def add_runs(self, batch_id: str, strategy: str, rows: Iterable[Mapping[str, Any]]) -> int:
        """Insert runs (a run already stored for the same job is kept); returns how many
        were new. Each row: ``job``, ``params``, ``symbols``, ``stats`` (by label; a
        run's daily returns, a Series, under `tickstep.significance.DAILY_RETURNS`),
        ``run_time`` (seconds), ``status``, ``error``, optionally ``cached``."""
        from tickstep.significance import DAILY_RETURNS

        created = _now()
        rows = list(rows)
        values = [self._run_values(batch_id, strategy, r, created) for r in rows]
        if not values:
            return 0
        returns = {v["run_id"]: r["stats"][DAILY_RETURNS] for v, r in zip(values, rows)
                   if DAILY_RETURNS in (r.get("stats") or {})}
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        stmt = insert(self.runs).on_conflict_do_nothing(index_elements=["run_id"])
        # The returns go in the same transaction: a run is never stored without them.
        with self.engine.begin() as con:
            if self.dialect == "sqlite":  # its executemany counts rows; no RETURNING needed
                if returns:  # runs stored before (a cached run added again) keep theirs
                    ids, stored = list(returns), set()
                    for first in range(0, len(ids), 500):  # bound the statement's parameters
                        stored.update(con.execute(sa.select(self.runs.c.run_id).where(
                            self.runs.c.run_id.in_(ids[first:first + 500]))).scalars())
                    returns = {k: v for k, v in returns.items() if k not in stored}
                added = con.execute(stmt, values).rowcount
                _sqlite_returns(con, returns)
                return added
            # psycopg's many-row insert reports no row count: count what came back
            new = set(con.execute(stmt.returning(self.runs.c.run_id), values).scalars())
            _postgresql_returns(con, {k: v for k, v in returns.items() if k in new})
            return len(new)

    def daily_returns(self, run_ids: Sequence[str]) -> dict[str, pd.Series]:
        """The kept daily returns of these runs, by run id (a run without them is left
        out): Series named ``"return"`` indexed by each day's last bar (UTC), as
        `tickstep.Result.daily_returns` gave them."""
        table = self.run_returns
        # SQLite's text read as text and parsed at once, not a datetime a row.
        end = (sa.type_coerce(table.c.day_end, sa.String) if self.dialect == "sqlite"
               else table.c.day_end)
        out: dict[str, pd.Series] = {}
        for start in range(0, len(run_ids), 500):  # bound the statement's parameters
            chunk = list(run_ids[start:start + 500])
            with self.engine.connect() as con:
                got = con.execute(sa.select(table.c.run_id, end, table.c.daily_return)
                                  .where(table.c.run_id.in_(chunk))
                                  .order_by(table.c.run_id, table.c.day_end)).all()
            if not got:
                continue
            ids, ends, values = zip(*got)
            at = pd.DatetimeIndex(pd.to_datetime(list(ends), utc=True)).as_unit("ns")
            returns = np.array(values, dtype=float)
            ids_array = np.array(ids, dtype=object)
            cuts = np.flatnonzero(ids_array[1:] != ids_array[:-1]) + 1
            for first, last in zip([0, *cuts], [*cuts, len(ids_array)]):
                out[str(ids_array[first])] = pd.Series(returns[first:last],
                                                       index=at[first:last], name="return")
        return out

    # ---- walk-forwards --------------------------------------------------------------------

    def put_walk_forward(self, batch_id: str, symbols: str, position: int,
                         windows: list[dict[str, Any]], stats: Mapping[str, Any]) -> None:
        """Store (or replace, when a batch runs again) one group's walk-forward: its
        windows and its stitched statistics, as JSON values."""
        table = self.walk_forwards
        with self.engine.begin() as con:
            con.execute(sa.delete(table).where(table.c.batch_id == batch_id,
                                               table.c.symbols == symbols))
            con.execute(sa.insert(table).values(
                batch_id=batch_id, symbols=symbols, position=int(position),
                windows=json.dumps(windows), stats=json.dumps(dict(stats)), created=_now()))

    def walk_forwards_of(self, batch_id: str) -> list[dict[str, Any]]:
        """A batch's walk-forwards in group order: ``symbols``, ``windows``, ``stats``."""
        table = self.walk_forwards
        with self.engine.connect() as con:
            rows = con.execute(sa.select(table).where(table.c.batch_id == batch_id)
                               .order_by(table.c.position)).mappings().all()
        return [{"symbols": r["symbols"], "windows": json.loads(r["windows"]),
                 "stats": json.loads(r["stats"])} for r in rows]

    def batch_groups(self, batch_id: str) -> list[str]:
        """The symbol groups of a batch's stored runs, in job order."""
        first = sa.func.min(self.runs.c.job)
        with self.engine.connect() as con:
            got = con.execute(sa.select(self.runs.c.symbols, first)
                              .where(self.runs.c.batch_id == batch_id)
                              .group_by(self.runs.c.symbols).order_by(first)).all()
        return [str(label) for label, _ in got]

    def count_runs(self, batch_id: str) -> int:
        with self.engine.connect() as con:
            return con.execute(
                sa.select(sa.func.count()).select_from(self.runs).where(self.runs.c.batch_id == batch_id)
            ).scalar_one()

    def troubles(self, batch_id: str) -> tuple[int, int, int]:
        """Of the batch's stored runs: how many failed (status not ``ok``), how many had
        orders the broker rejected, and how many orders in all (``# Orders Rejected``,
        summed)."""
        return self.troubles_of([batch_id]).get(batch_id, (0, 0, 0))

    def troubles_of(self, batch_ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """`troubles` of each of these batches in one query (a batch without runs is
        left out)."""
        count = self.runs.c[self.stat_columns["# Orders Rejected"]]

        def how_many(condition: Any) -> Any:
            return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)

        ids, got = list(batch_ids), []
        with self.engine.connect() as con:
            for first in range(0, len(ids), 500):  # bound the statement's parameters
                got += con.execute(
                    sa.select(self.runs.c.batch_id, how_many(self.runs.c.status != "ok"),
                              how_many(count > 0), sa.func.coalesce(sa.func.sum(count), 0))
                    .where(self.runs.c.batch_id.in_(ids[first:first + 500]))
                    .group_by(self.runs.c.batch_id)
                ).all()
        return {str(b): (int(failed), int(runs), int(orders)) for b, failed, runs, orders in got}

    def query_batches(self, *, status: str | None = None, strategy: str | None = None,
                      since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Stored batches, newest first (by submission), of a status, a strategy, or
        submitted since a time."""
        table = self.batches
        stmt = sa.select(table)
        if status is not None:
            stmt = stmt.where(table.c.status == status)
        if strategy is not None:
            stmt = stmt.where(table.c.strategy == strategy)
        if since is not None:
            stmt = stmt.where(table.c.created >= since)
        stmt = stmt.order_by(table.c.created.desc(), table.c.batch_id).limit(int(limit))
        with self.engine.connect() as con:
            rows = con.execute(stmt).mappings().all()
        return [_batch_dict(r) for r in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as con:
            row = con.execute(sa.select(self.runs).where(self.runs.c.run_id == run_id)).mappings().first()
        return self._run_dict(row) if row is not None else None

    def batch_runs(self, batch_id: str, *, symbols: str | None = None) -> list[dict[str, Any]]:
        """A batch's stored runs in job order (``symbols``: one group's only)."""
        stmt = sa.select(self.runs).where(self.runs.c.batch_id == batch_id)
        if symbols is not None:
            stmt = stmt.where(self.runs.c.symbols == symbols)
        with self.engine.connect() as con:
            rows = con.execute(stmt.order_by(self.runs.c.job)).mappings().all()
        return [self._run_dict(r) for r in rows]

    @staticmethod
    def column_of(name: str) -> str:
        """The column a statistic's label (or a column name) refers to."""
        return stat_column(name) if name in STAT_LABELS else name

    def order_column(self, name: str) -> sa.ColumnElement[Any]:
        """A known column by its name or its statistic's label (``"Sharpe Ratio"``).

        Raises
        ------
        ValueError
            Not a column; the message lists the accepted names.
        """
        col = self.stat_columns.get(name, name)
        if col not in self.runs.c:
            from tickstep.hints import did_you_mean

            names = [*self.stat_columns.values(), "calc_ms", "created", "strategy", "symbols"]
            hint = did_you_mean(col, names)
            raise ValueError(f"cannot order by {name!r}{hint} (columns: {', '.join(names)})")
        return self.runs.c[col]

    def query_runs(
        self,
        *,
        strategy: str | None = None,
        batch_id: str | None = None,
        since: datetime | None = None,
        order_by: str | None = None,
        ascending: bool = False,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored runs, newest first or by a column (best first: descending)."""
        stmt = sa.select(self.runs)
        if strategy is not None:
            stmt = stmt.where(self.runs.c.strategy == strategy)
        if batch_id is not None:
            stmt = stmt.where(self.runs.c.batch_id == batch_id)
        if since is not None:
            stmt = stmt.where(self.runs.c.created >= since)
        if order_by:
            col = self.order_column(order_by)
            # Runs without the value (failed, no trades) last either way.
            stmt = stmt.order_by(col.is_(None), col.asc() if ascending else col.desc(),
                                 self.runs.c.run_id)
        else:
            stmt = stmt.order_by(self.runs.c.created.desc(), self.runs.c.run_id)
        with self.engine.connect() as con:
            rows = con.execute(stmt.limit(int(limit))).mappings().all()
        return [self._run_dict(r) for r in rows]

    def summary(self, *, by: str = "strategy", since: datetime | None = None,
                order_by: str = "Return [%]", limit: int = 100) -> list[dict[str, Any]]:
        """Per strategy (or per batch): run count, average of a statistic and of the
        calculation time, best first."""
        key = {"strategy": self.runs.c.strategy, "batch": self.runs.c.batch_id}.get(by)
        if key is None:
            raise ValueError(f"cannot group by {by!r} (strategy or batch)")
        col = self.order_column(order_by)
        avg = sa.func.avg(col).label("average")
        stmt = sa.select(
            key.label(by), sa.func.count().label("runs"), avg,
            sa.func.avg(self.runs.c.calc_ms).label("avg_calc_ms"),
        ).where(self.runs.c.status == "ok")
        if since is not None:
            stmt = stmt.where(self.runs.c.created >= since)
        stmt = stmt.group_by(key).order_by(avg.is_(None), avg.desc()).limit(int(limit))
        with self.engine.connect() as con:
            rows = con.execute(stmt).mappings().all()
        return [{**dict(r), "of": col.name} for r in rows]

    def _run_dict(self, row: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(row)
        out["parameters"] = json.loads(out["parameters"])
        for key in ("created",) + tuple(self.stat_columns[s] for s in _TIMESTAMP_STATS):
            if out.get(key) is not None:
                out[key] = _utc(out[key])
        out["cached"] = bool(out["cached"])
        return out

    def stats_of(self, run: Mapping[str, Any]) -> dict[str, Any]:
        """A stored run's statistics by their labels (as `compute_stats` names them)."""
        return {label: run.get(col) for label, col in self.stat_columns.items()}


def _day_ends(daily: pd.Series) -> pd.DatetimeIndex:
    ends = pd.DatetimeIndex(daily.index)
    return ends.tz_localize("UTC") if ends.tz is None else ends.tz_convert("UTC")


def _sqlite_returns(con: Any, returns: Mapping[str, pd.Series]) -> None:
    """Runs' daily returns into SQLite's ``run_returns`` in one statement run for every
    row by the driver (a thousand runs of five years are 1.26 million rows: SQLAlchemy's
    work for each would take most of the time). The times are written as SQLAlchemy
    writes a UTC time there; a day already stored keeps its return (another process
    storing the same run at the same moment)."""
    rows: list[tuple[str, str, float]] = []
    for run_id, daily in returns.items():
        ends = _day_ends(daily).strftime("%Y-%m-%d %H:%M:%S.%f")
        rows += zip([run_id] * len(daily), ends, daily.to_numpy(dtype=float).tolist())
    if rows:
        con.exec_driver_sql("INSERT OR IGNORE INTO run_returns (run_id, day_end, daily_return) "
                            "VALUES (?, ?, ?)", rows)


def _postgresql_returns(con: Any, returns: Mapping[str, pd.Series]) -> None:
    """Runs' daily returns (of runs this transaction stored) into PostgreSQL's
    ``run_returns`` by COPY, psycopg writing each value (a float to its last bit)."""
    if not returns:
        return
    cursor = con.connection.dbapi_connection.cursor()
    with cursor.copy("COPY run_returns (run_id, day_end, daily_return) FROM STDIN") as copy:
        for run_id, daily in returns.items():
            for end, value in zip(_day_ends(daily).to_pydatetime(),
                                  daily.to_numpy(dtype=float).tolist()):
                copy.write_row((run_id, end, value))


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _batch_dict(row: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(row)
    out["request"] = json.loads(out["request"])
    for key in ("created", "started", "finished"):
        if out.get(key) is not None:
            out[key] = _utc(out[key])
    return out


def _sqlite_pragmas(con: Any, _record: Any) -> None:
    # WAL: readers never block the writer and a commit survives the process being killed.
    cur = con.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def since_text(text: str) -> datetime:
    """``"2026-12-01"``, an ISO time, ``"today"`` or a span back from now (``"7d"``,
    ``"12h"``, ``"30min"``) -> an aware UTC time."""
    low = text.strip().lower()
    if low == "today":
        return pd.Timestamp.now(tz="UTC").normalize().to_pydatetime()
    span = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(w|d|h|min|s)", low)
    if span:
        unit = {"w": "weeks", "d": "days", "h": "hours", "min": "minutes", "s": "seconds"}[span[2]]
        return datetime.now(UTC) - timedelta(**{unit: float(span[1])})
    try:
        ts = pd.Timestamp(text)
    except ValueError:
        raise ValueError(f"since={text!r}: expected a date, an ISO time, 'today' or a span like '7d'") from None
    return (ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")).to_pydatetime()

