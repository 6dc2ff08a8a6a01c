"""The stored runs database on embedded SQLite and on a real PostgreSQL server
(TICKSTEP_PG_URL, e.g. the one `bash .ci/start-postgres.sh` starts)."""

from __future__ import annotations

import json
import os
import sqlite3
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from tickstep.metrics import STAT_LABELS
from tickstep.service.runs import RunsDB, stat_column

PG_URL = os.environ.get("TICKSTEP_PG_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def target(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "runs.sqlite")
    if not PG_URL:
        pytest.skip("needs TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
    db = RunsDB(PG_URL)  # a clean slate in this helper's own database
    db.meta.drop_all(db.engine)
    db.close()
    return PG_URL


def _row(job, sharpe, ret, symbols="AAA", status="ok", **extra):
    stats = {"Sharpe Ratio": sharpe, "Return [%]": ret, "# Trades": 3,
             "Start": pd.Timestamp("2024-01-02", tz="UTC"),
             "Duration": pd.Timedelta(days=2, hours=6)}
    return {"job": job, "params": {"fast": job + 1}, "symbols": symbols, "stats": stats,
            "run_time": 0.0125, "status": status, "error": None, **extra}


def test_every_statistic_is_a_column_named_after_it(target):
    db = RunsDB(target)
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("runs")}
    assert {stat_column(s) for s in STAT_LABELS} <= columns
    assert {"run_id", "batch_id", "strategy", "parameters", "symbols", "calc_ms", "status",
            "error", "created"} <= columns
    db.create_batch("b1", "sma_cross", {"strategy": "sma_cross"}, total=1)
    db.add_runs("b1", "sma_cross", [_row(0, 1.25, 4.5)])
    run = db.run("b1-0")
    assert run["sharpe_ratio"] == 1.25 and run["return_pct"] == 4.5 and run["trades"] == 3
    assert run["start"] == datetime(2024, 1, 2, tzinfo=UTC)
    assert run["duration_seconds"] == 2 * 86400 + 6 * 3600
    assert run["calc_ms"] == 12.5 and run["parameters"] == {"fast": 1}
    assert db.stats_of(run)["Sharpe Ratio"] == 1.25
    db.close()


def test_queries_order_filter_and_summarize(target):
    db = RunsDB(target)
    db.create_batch("b1", "sma_cross", {}, total=3)
    db.create_batch("b2", "rsi", {}, total=2)
    db.add_runs("b1", "sma_cross", [_row(0, 0.5, 1.0), _row(1, 2.0, 3.0), _row(2, None, None,
                                                                               status="error")])
    db.add_runs("b2", "rsi", [_row(0, 1.0, 10.0), _row(1, -1.0, -2.0)])
    best = db.query_runs(order_by="Sharpe Ratio")
    assert [r["run_id"] for r in best] == ["b1-1", "b2-0", "b1-0", "b2-1", "b1-2"]
    assert [r["run_id"] for r in db.query_runs(order_by="sharpe_ratio", ascending=True,
                                               limit=2)] == ["b2-1", "b1-0"]
    assert {r["run_id"] for r in db.query_runs(strategy="rsi")} == {"b2-0", "b2-1"}
    future = datetime.now(UTC) + timedelta(hours=1)
    assert db.query_runs(since=future) == []
    summary = {s["strategy"]: s for s in db.summary(order_by="Return [%]")}
    assert summary["rsi"]["average"] == pytest.approx(4.0)
    assert summary["sma_cross"]["average"] == pytest.approx(2.0) and summary["sma_cross"]["runs"] == 2
    assert [s["strategy"] for s in db.summary()] == ["rsi", "sma_cross"]  # best average first
    with pytest.raises(ValueError, match="cannot order by 'Sharpe; DROP TABLE runs'"):
        db.query_runs(order_by="Sharpe; DROP TABLE runs")
    db.close()


def test_values_are_bound_never_spliced(target):
    db = RunsDB(target)
    nasty = "x'); DROP TABLE runs; --"
    db.create_batch("b'1", nasty, {"strategy": nasty}, total=1, idempotency_key=nasty)
    db.add_runs("b'1", nasty, [_row(0, 1.0, 1.0, symbols=nasty)])
    assert db.query_runs(strategy=nasty)[0]["symbols"] == nasty
    assert db.batch_by_key(nasty)["request"] == {"strategy": nasty}
    db.close()


def test_survives_reopening_and_keeps_the_first_copy_of_a_run(target):
    db = RunsDB(target)
    db.create_batch("b1", "sma_cross", {"a": 1}, total=2)
    assert db.add_runs("b1", "sma_cross", [_row(0, 1.0, 1.0)]) == 1
    assert db.add_runs("b1", "sma_cross", [_row(0, 9.0, 9.0), _row(1, 2.0, 2.0)]) == 1
    db.update_batch("b1", status="done", jobs_done=2, finished=True)
    db.close()
    again = RunsDB(target)
    assert again.batch("b1")["status"] == "done" and again.batch("b1")["request"] == {"a": 1}
    assert [r["sharpe_ratio"] for r in again.batch_runs("b1")] == [1.0, 2.0]
    assert not again.update_batch("b1", only_if=("running",), status="failed")
    assert again.batch("b1")["status"] == "done"
    again.close()


def test_daily_returns_are_kept_to_the_bit_and_the_first_copy_wins(target):
    from tickstep.significance import DAILY_RETURNS

    rng = np.random.default_rng(5)
    ends = pd.date_range("2024-01-02 21:00", periods=300, freq="B", tz="UTC")
    first = pd.Series(rng.normal(0, 0.01, 300), index=ends, name="return")
    first.iloc[3] = 0.1 + 0.2  # a value with all 53 bits of its mantissa in use
    db = RunsDB(target)
    db.create_batch("b1", "sma_cross", {}, total=3)
    kept = _row(0, 1.0, 1.0)
    kept["stats"][DAILY_RETURNS] = first
    db.add_runs("b1", "sma_cross", [kept, _row(1, 2.0, 2.0, symbols="BBB")])
    # Added again (a cached run stored at the end), with other returns: the first stay.
    again = _row(0, 9.0, 9.0)
    again["stats"][DAILY_RETURNS] = first * 2
    third = _row(2, 3.0, 3.0)
    third["stats"][DAILY_RETURNS] = first.iloc[:10].tz_convert("America/New_York")
    assert db.add_runs("b1", "sma_cross", [again, third]) == 1
    got = db.daily_returns(["b1-0", "b1-1", "b1-2", "nope-0"])
    assert set(got) == {"b1-0", "b1-2"}  # a run without returns is left out
    assert got["b1-0"].index.equals(ends) and str(got["b1-0"].index.tz) == "UTC"
    np.testing.assert_array_equal(got["b1-0"].to_numpy(), first.to_numpy())
    assert got["b1-0"].iloc[3] == 0.1 + 0.2
    assert got["b1-2"].index.equals(ends[:10])  # the same instants, in UTC
    assert db.batch_groups("b1") == ["AAA", "BBB"]
    db.close()


def test_returns_of_a_large_batch_are_stored_and_stored_once(target):
    # More runs in one call than one statement may bind (SQLite's limit was 999): the
    # runner hands the whole batch over again at its end.
    from tickstep.significance import DAILY_RETURNS

    ends = pd.date_range("2024-01-02 21:00", periods=3, freq="B", tz="UTC")

    def rows(scale):
        out = []
        for job in range(1200):
            row = _row(job, 1.0, 1.0)
            row["stats"][DAILY_RETURNS] = pd.Series([job * scale, -1.0, 0.5], index=ends)
            out.append(row)
        return out

    db = RunsDB(target)
    if db.dialect == "sqlite":  # the limit of older SQLite builds (this one's may be higher)
        sa.event.listen(db.engine, "connect", lambda con, _: con.setlimit(
            sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999))
        db.engine.dispose()
    db.create_batch("big", "sma_cross", {}, total=1200)
    assert db.add_runs("big", "sma_cross", rows(1e-4)[:700]) == 700
    assert db.add_runs("big", "sma_cross", rows(9.0)) == 500  # the first 700 keep theirs
    got = db.daily_returns([f"big-{j}" for j in range(1200)])
    assert len(got) == 1200
    assert [got[f"big-{j}"].iloc[0] for j in (0, 699, 700, 1199)] == [0.0, 699e-4, 6300.0, 10791.0]
    # Many batches' troubles in one call: each counted, those without runs left out.
    for k in range(1100):
        db.create_batch(f"b{k}", "sma_cross", {}, total=1)
    db.add_runs("b1099", "sma_cross", [_row(0, 1.0, 1.0, status="error")])
    troubles = db.troubles_of(["big", *(f"b{k}" for k in range(1100))])
    assert troubles == {"big": (0, 0, 0), "b1099": (1, 0, 0)}
    db.close()


def test_a_statistic_newer_than_the_database_becomes_a_column(target):
    db = RunsDB(target)
    with db.engine.begin() as con:
        con.exec_driver_sql("ALTER TABLE runs DROP COLUMN avg_bars_held")
    db.close()
    db = RunsDB(target)
    columns = {c["name"] for c in sa.inspect(db.engine).get_columns("runs")}
    assert "avg_bars_held" in columns
    db.close()


def test_cli_batch_results_into_postgresql(tmp_path, capsys):
    if not PG_URL:
        pytest.skip("needs TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
    import tickstep.data as td
    from tickstep.cli import main

    db = RunsDB(PG_URL)
    db.meta.drop_all(db.engine)
    db.close()
    store = tmp_path / "m.duckdb"
    with td.Store(store, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=2, days=200, seed=3))
    assert main(["batch", "sma_cross", "--data", str(store), "-p", "fast=5,8", "--results",
                 PG_URL, "--no-cache", "--sequential"]) == 0
    capsys.readouterr()
    assert main(["runs", "--results", PG_URL, "--by", "Return [%]", "--json"]) == 0
    runs = json.loads(capsys.readouterr().out)
    assert len(runs) == 4 and {r["strategy"] for r in runs} == {"sma_cross"}
    returns = [r["return_pct"] for r in runs]
    assert returns == sorted(returns, reverse=True)


def test_run_batch_hands_each_finished_row_to_on_rows():
    import tickstep.data as td
    from tickstep.batch import run_batch

    seen: list[dict] = []
    rows = run_batch("sma_cross", td.example_daily(), params={"fast": [5, 10]}, cache=False,
                     executor="sequential", on_rows=seen.extend)
    assert sorted(r["job"] for r in seen) == sorted(rows.index)
    for row in seen:
        frame_row = rows.loc[row["job"]]
        assert row["symbols"] == frame_row["symbols"]
        assert row["params"] == {"fast": frame_row["fast"]}
        assert row["stats"]["Return [%]"] == frame_row["Return [%]"]
