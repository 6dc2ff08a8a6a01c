"""Is a stored batch's best set luck? Over a real `tickstep serve` process and a real HTTP
client: a batch that keeps its runs' daily returns is judged as the same batch run in
Python is (the probability of backtest overfitting, the reality check, the optimisation
report), and everything else is refused by name."""

from __future__ import annotations

import io
import math
import os
import re

import numpy as np
import pandas as pd
import pytest
from service_support import Server, example_store, wait_done
from tickstep.batch import run_batch
from tickstep.significance import DAILY_RETURNS, backtest_overfitting, reality_check

PG_URL = os.environ.get("TICKSTEP_PG_URL")
GRID = {"fast": [2, 3, 5, 8, 13], "slow": [20, 30, 50]}
SYMBOLS = ["BARP", "TEW"]
BODY = {"strategy": "sma_cross", "params": GRID, "symbols": SYMBOLS, "returns": True,
        "cache": False}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return example_store(tmp_path_factory.mktemp("luck"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def client(request, store):
    """A server keeping its runs in SQLite beside the store, or in PostgreSQL."""
    results = []
    if request.param == "postgresql":
        if not PG_URL:
            pytest.skip("needs TICKSTEP_PG_URL (bash .ci/start-postgres.sh)")
        results = ["--results", PG_URL]
    srv = Server(store, "--workers", "2", *results).start()
    with srv.client() as c:
        yield c
    srv.stop()


@pytest.fixture(scope="module")
def batch(client):
    """The grid's batch, done, with its runs' daily returns kept."""
    accepted = client.post("/batches", json=BODY).json()
    assert wait_done(client, accepted["batch_id"])["status"] == "done"
    return accepted["batch_id"]


@pytest.fixture(scope="module")
def reference(store):
    """The same batch in Python: `run_batch(returns=True)`'s rows."""
    return run_batch("sma_cross", str(store), params=GRID, symbols=SYMBOLS, returns=True,
                     cache=False, executor="sequential")


def _group(rows: pd.DataFrame, label: str) -> pd.DataFrame:
    return rows[(rows["symbols"] == label) & (rows["status"] == "ok")]


def _same(got, want) -> bool:
    """A JSON figure against a float: exactly, NaN as null."""
    if want is None or (isinstance(want, float) and math.isnan(want)):
        return got is None
    return got == want


def test_each_runs_daily_returns_are_kept_exactly(client, batch, reference):
    rows = pd.DataFrame(client.get(f"/batches/{batch}/results").json()["rows"])
    assert len(rows) == len(reference) == len(SYMBOLS) * 15
    for _, row in rows.iterrows():
        want = reference[(reference["symbols"] == row["symbols"])
                         & (reference["fast"] == row["fast"])
                         & (reference["slow"] == row["slow"])][DAILY_RETURNS].iloc[0]
        got = client.get(f"/runs/{row['run_id']}/returns").json()
        assert got["run_id"] == row["run_id"]
        assert pd.DatetimeIndex(got["day_end"]).equals(want.index)
        np.testing.assert_array_equal(np.array(got["return"]), want.to_numpy())
        assert got["periods_per_year"] == want.attrs["periods_per_year"] == 252
    # The same as a table (CSV: the days and returns to the last bit of their text).
    csv = client.get(f"/runs/{rows['run_id'].iloc[0]}/returns", headers={"Accept": "text/csv"})
    table = pd.read_csv(io.StringIO(csv.text), index_col="day_end", parse_dates=True)
    assert list(table.columns) == ["return"] and len(table) == len(want)
    parquet = client.get(f"/runs/{rows['run_id'].iloc[0]}/returns",
                         headers={"Accept": "application/vnd.apache.parquet"})
    first = reference[(reference["symbols"] == rows["symbols"].iloc[0])
                      & (reference["fast"] == rows["fast"].iloc[0])
                      & (reference["slow"] == rows["slow"].iloc[0])][DAILY_RETURNS].iloc[0]
    kept = pd.read_parquet(io.BytesIO(parquet.content))["return"]
    np.testing.assert_array_equal(kept.to_numpy(), first.to_numpy())


@pytest.mark.parametrize("n_splits", [8, 16])
def test_overfitting_is_the_functions_on_the_same_rows(client, batch, reference, n_splits):
    got = client.get(f"/batches/{batch}/overfitting",
                     params={"n_splits": n_splits, "splits": True}).json()
    assert got["status"] == "done"
    assert [g["symbols"] for g in got["groups"]] == SYMBOLS
    for entry in got["groups"]:
        found = backtest_overfitting(_group(reference, entry["symbols"]), n_splits)
        assert entry["probability"] == found.probability
        assert entry["loss_probability"] == found.loss_probability
        assert (entry["trials"], entry["blocks"], entry["splits"]) == \
            (15, n_splits, math.comb(n_splits, n_splits // 2))
        assert entry["in_sample_median"] == float(np.median(found.in_sample))
        assert entry["out_of_sample_median"] == float(np.median(found.out_of_sample))
        assert all(_same(a, b) for a, b in zip(entry["logits"], found.logits.tolist()))
        assert all(_same(a, b) for a, b in zip(entry["out_of_sample"],
                                               found.out_of_sample.tolist()))
    # One group asked for: only it; without splits, no per-split figures.
    one = client.get(f"/batches/{batch}/overfitting", params={"symbols": "TEW"}).json()
    assert [g["symbols"] for g in one["groups"]] == ["TEW"]
    assert "logits" not in one["groups"][0]


def test_the_sharpe_ratios_are_annualised_as_the_batchs_runs(client, batch, store):
    # A batch whose options annualise by 365 days (its runs' Sharpe Ratios so): the
    # overfitting's Sharpe Ratios too, as `run_batch`'s rows with the same option give them.
    body = {**BODY, "symbols": ["TEW"], "options": {"periods_per_year": 365}}
    crypto = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, crypto)["status"] == "done"
    rows = run_batch("sma_cross", str(store), params=GRID, symbols=["TEW"], returns=True,
                     cache=False, executor="sequential", periods_per_year=365)
    found = backtest_overfitting(_group(rows, "TEW"), 8)
    entry = client.get(f"/batches/{crypto}/overfitting", params={"n_splits": 8}).json()
    assert entry["groups"][0]["in_sample_median"] == float(np.median(found.in_sample))
    assert entry["groups"][0]["out_of_sample_median"] == float(np.median(found.out_of_sample))
    exchange = client.get(f"/batches/{batch}/overfitting",
                          params={"n_splits": 8, "symbols": "TEW"}).json()["groups"][0]
    assert entry["groups"][0]["in_sample_median"] == pytest.approx(
        exchange["in_sample_median"] * math.sqrt(365 / 252), rel=1e-12)
    assert entry["groups"][0]["probability"] == exchange["probability"]
    one = client.get(f"/batches/{crypto}/results").json()["rows"][0]["run_id"]
    assert client.get(f"/runs/{one}/returns").json()["periods_per_year"] == 365


def test_the_reality_check_is_the_functions_on_the_same_rows(client, batch, reference):
    for options in ({"reps": 300, "seed": 3},
                    {"reps": 200, "seed": 1, "benchmark": -0.001, "block": 5, "size": 0.1}):
        got = client.get(f"/batches/{batch}/reality-check", params=options).json()
        assert [g["symbols"] for g in got["groups"]] == SYMBOLS
        for entry in got["groups"]:
            group = _group(reference, entry["symbols"])
            found = reality_check(group, options.get("benchmark", 0.0), reps=options["reps"],
                                  block=options.get("block"), size=options.get("size", 0.05),
                                  seed=options["seed"])
            assert entry["pvalue"] == found.pvalue and entry["pvalues"] == found.pvalues
            assert (entry["trials"], entry["days"], entry["block"], entry["reps"]) == \
                (found.trials, found.days, found.block, found.reps)
            named = [{"fast": int(group.loc[j, "fast"]), "slow": int(group.loc[j, "slow"])}
                     for j in found.superior]
            assert [s["parameters"] for s in entry["superior"]] == named
    # A benchmark every set beats (a loss of 5% a day): every set named, p-values at 0.
    easy = client.get(f"/batches/{batch}/reality-check",
                      params={"benchmark": -0.05, "reps": 100, "symbols": "BARP"}).json()
    entry = easy["groups"][0]
    assert len(entry["superior"]) == 15 and entry["pvalue"] == 0.0
    runs = {s["run_id"] for s in entry["superior"]}
    assert all(client.get(f"/runs/{r}", params={"details": False}).json()["symbols"] == "BARP"
               for r in runs)


def test_the_reality_check_against_a_buy_and_hold_batch_is_the_functions(client, batch,
                                                                         reference, store,
                                                                         tmp_path):
    # Does any set beat holding each group's symbols? The group's run in a buy_and_hold
    # batch of the same symbols is its benchmark, as its Python run's returns are.
    body = {"strategy": "buy_and_hold", "symbols": SYMBOLS, "returns": True, "cache": False}
    hold = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, hold)["status"] == "done"
    held = run_batch("buy_and_hold", str(store), symbols=SYMBOLS, returns=True, cache=False,
                     executor="sequential")
    got = client.get(f"/batches/{batch}/reality-check",
                     params={"benchmark_batch": hold, "reps": 300, "seed": 2}).json()
    assert [g["symbols"] for g in got["groups"]] == SYMBOLS
    for entry in got["groups"]:
        label = entry["symbols"]
        benchmark = held[held["symbols"] == label][DAILY_RETURNS].iloc[0]
        found = reality_check(_group(reference, label), benchmark, reps=300, seed=2)
        assert entry["pvalue"] == found.pvalue and entry["pvalues"] == found.pvalues
        assert [s["job"] for s in entry["superior"]] == [int(j) for j in found.superior]
        # Holding is not cash: the answers differ from those against a daily return of 0.
        cash = reality_check(_group(reference, label), 0.0, reps=300, seed=2)
        assert found.pvalues != cash.pvalues
    # A benchmark batch without one run of a group, or over other days, is that group's
    # entry; the other groups are judged.
    one = client.post("/batches", json={**body, "symbols": ["TEW"]}).json()["batch_id"]
    later = client.post("/batches", json={**body, "start": "2021-01-01"}).json()["batch_id"]
    for other in (one, later):
        assert wait_done(client, other)["status"] == "done"
    got = client.get(f"/batches/{batch}/reality-check",
                     params={"benchmark_batch": one, "reps": 50}).json()["groups"]
    assert got[0]["error"] == (f"not made: benchmark_batch {one} has 0 runs of BARP that ran; "
                               "a benchmark is one run of the group's symbols")
    assert "pvalue" in got[1]
    grid = client.get(f"/batches/{hold}/reality-check",
                      params={"benchmark_batch": batch, "reps": 50}).json()["groups"]
    assert all("has 15 runs of" in g["error"] for g in grid)
    got = client.get(f"/batches/{batch}/reality-check",
                     params={"benchmark_batch": later, "reps": 50}).json()["groups"]
    assert all("other days" in g["error"] and "a run over the same span" in g["error"]
               for g in got), got
    # Refused by name: with a benchmark too, unknown, not kept with returns.
    both = client.get(f"/batches/{batch}/reality-check",
                      params={"benchmark_batch": hold, "benchmark": 0.0})
    assert both.status_code == 422
    assert both.json()["detail"][0]["loc"] == ["query", "benchmark_batch"]
    unknown = client.get(f"/batches/{batch}/reality-check", params={"benchmark_batch": "nope"})
    assert unknown.status_code == 422 and "benchmark_batch: no batch 'nope'" in unknown.text
    bare = client.post("/batches", json={**body, "returns": False}).json()["batch_id"]
    assert wait_done(client, bare)["status"] == "done"
    refused = client.get(f"/batches/{batch}/reality-check", params={"benchmark_batch": bare})
    assert refused.status_code == 409
    assert refused.json()["detail"].startswith(f"benchmark_batch: batch {bare} kept no daily")
    # The report's reality check against it: write_optimization_report's with the same
    # benchmark, named by its strategy and batch.
    from tickstep.report import write_optimization_report

    page = client.get(f"/batches/{batch}/report",
                      params={"symbols": "TEW", "reps": 100, "benchmark_batch": hold})
    assert page.status_code == 200, page.text
    benchmark = held[held["symbols"] == "TEW"][DAILY_RETURNS].iloc[0]
    mine = write_optimization_report(
        reference, tmp_path / "r.html", symbols="TEW", reps=100,
        benchmark=benchmark.rename(f"buy_and_hold (batch {hold})")).read_text()
    got, want = (re.search('<table id="luck-table">.*?</table>', text, re.S).group(0)
                 for text in (page.text, mine))
    assert got == want and f"no set beats buy_and_hold (batch {hold})" in got
    refused = client.get(f"/batches/{batch}/report",
                         params={"symbols": "TEW", "benchmark_batch": later})
    assert refused.status_code == 422
    detail = refused.json()["detail"][0]
    assert detail["loc"] == ["query", "benchmark_batch"] and "other days" in detail["msg"]


def test_the_batch_report_is_the_optimisation_report_of_its_rows(client, batch, reference,
                                                                  tmp_path):
    from tickstep.report import write_optimization_report

    page = client.get(f"/batches/{batch}/report", params={"symbols": "TEW", "reps": 100})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    mine = write_optimization_report(reference, tmp_path / "r.html", symbols="TEW",
                                     reps=100).read_text()
    # The luck figures and the best sets (by job) are those of the rows run in Python.
    for table in ("luck-table", "best"):
        got, want = (re.search(f'<table id="{table}">.*?</table>', text, re.S).group(0)
                     for text in (page.text, mine))
        assert got == want, table
    assert "probability of backtest overfitting" in page.text and "not judged" not in page.text
    assert 'id="fig-heatmap"' in page.text
    # Several groups: one must be named.
    refused = client.get(f"/batches/{batch}/report")
    assert refused.status_code == 422 and "name one of BARP, TEW" in refused.text
    refused = client.get(f"/batches/{batch}/report", params={"symbols": "TEW", "x": "nope",
                                                              "y": "slow"})
    assert refused.status_code == 422 and "nope" in refused.text


def test_a_batch_answered_from_the_results_cache_keeps_the_same_returns(client, batch):
    # Run twice through the results cache: the second batch computes nothing, and its
    # runs' returns (and so its judging) are the first's.
    body = {**BODY, "cache": True, "symbols": ["BARP"]}
    first = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, first)["status"] == "done"
    second = client.post("/batches", json=body).json()["batch_id"]
    status = wait_done(client, second)
    assert status["status"] == "done" and status["jobs_cached"] == 15
    judged = [client.get(f"/batches/{b}/overfitting", params={"n_splits": 8}).json()["groups"]
              for b in (first, second, batch)]
    assert judged[0] == judged[1] == judged[2][:1]  # the uncached batch's BARP too
    runs = [client.get(f"/batches/{b}/results").json()["rows"] for b in (first, second)]
    for a, b in zip(runs[0], runs[1]):
        assert client.get(f"/runs/{a['run_id']}/returns").json()["return"] == \
            client.get(f"/runs/{b['run_id']}/returns").json()["return"]


def test_a_batch_without_returns_reports_without_the_luck_figures(client):
    body = {**BODY, "returns": False, "symbols": ["TEW"]}
    plain = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, plain)["status"] == "done"
    page = client.get(f"/batches/{plain}/report")
    assert page.status_code == 200 and "hold no daily returns" in page.text
    for path in ("overfitting", "reality-check"):
        refused = client.get(f"/batches/{plain}/{path}")
        assert refused.status_code == 409 and '"returns": true' in refused.json()["detail"]
    run_id = client.get(f"/batches/{plain}/results").json()["rows"][0]["run_id"]
    refused = client.get(f"/runs/{run_id}/returns")
    assert refused.status_code == 409 and "kept no daily returns" in refused.text


def test_a_group_that_cannot_be_judged_says_why_and_the_others_are_judged(client, store):
    # One set: nothing was chosen among others, so no probability of overfitting; the
    # reality check still tests that one set.
    body = {**BODY, "params": {"fast": 5, "slow": 30}}
    one = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, one)["status"] == "done"
    got = client.get(f"/batches/{one}/overfitting").json()["groups"]
    assert [g["symbols"] for g in got] == SYMBOLS
    assert all(g["error"].startswith("not judged: returns: 1 trial") for g in got)
    checked = client.get(f"/batches/{one}/reality-check", params={"reps": 100}).json()
    assert all(g["trials"] == 1 and "pvalue" in g for g in checked["groups"])
    # Too many blocks for the days is the group's answer, not the request's fault.
    many = client.get(f"/batches/{one}/overfitting", params={"n_splits": 5000}).json()
    assert all("cannot make 5000 blocks" in g["error"] for g in many["groups"])
    # Runs that failed (sma_cross refuses fast >= slow) are not among the sets judged;
    # a group none of whose runs ran says so.
    body = {**BODY, "params": [{"fast": 5, "slow": 30}, {"fast": 8, "slow": 30},
                               {"fast": 50, "slow": 30}], "symbols": ["TEW"]}
    some = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, some)["jobs_failed"] == 1
    (entry,) = client.get(f"/batches/{some}/overfitting", params={"n_splits": 8}).json()["groups"]
    assert entry["trials"] == 2
    body = {**body, "params": {"fast": [50, 60], "slow": [30]}}
    none = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, none)["jobs_failed"] == 2
    for path, words in (("overfitting", "not judged"), ("reality-check", "not made")):
        (entry,) = client.get(f"/batches/{none}/{path}").json()["groups"]
        assert entry["error"] == f"{words}: none of its runs ran to the end (every row's " \
            "status is an error)"
    # Sets that never trade (averages longer than the data): their returns are flat,
    # nothing can be chosen in any split, and the group says so (it read 1.0 before).
    body = {**body, "params": {"fast": [2000, 3000], "slow": [5000]}}
    idle = client.post("/batches", json=body).json()["batch_id"]
    assert wait_done(client, idle)["status"] == "done"
    (entry,) = client.get(f"/batches/{idle}/overfitting", params={"n_splits": 8}).json()["groups"]
    assert entry == {"symbols": "TEW", "error": "not judged: returns: no split has a set with a "
                     "Sharpe Ratio in sample (every set's returns are flat there: none traded)"}


@pytest.mark.parametrize("path, params, where", [
    ("overfitting", {"n_splits": 7}, "n_splits"),
    ("overfitting", {"n_splits": 0}, "n_splits"),
    ("overfitting", {"symbols": "NOPE"}, "symbols"),
    ("reality-check", {"reps": 0}, "reps"),
    ("reality-check", {"size": 1.5}, "size"),
    ("reality-check", {"seed": -1}, "seed"),
    ("reality-check", {"block": 0}, "block"),
    ("reality-check", {"benchmark": "nan"}, "benchmark"),
    ("reality-check", {"benchmark": "inf"}, "benchmark"),
    ("report", {"symbols": "TEW", "n_splits": 3}, "n_splits"),
    ("report", {"symbols": "TEW", "reps": -2}, "reps"),
])
def test_bad_options_are_422_naming_the_option(client, batch, path, params, where):
    refused = client.get(f"/batches/{batch}/{path}", params=params)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"][0]
    assert detail["loc"][-1] == where, detail


def test_walk_forwards_keep_no_returns_and_unknown_ids_are_404(client):
    body = {**BODY, "walk_forward": {"train": "400D", "test": "200D"}}
    refused = client.post("/batches", json=body)
    assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == "returns"
    walked = client.post("/batches", json={**body, "returns": False}).json()["batch_id"]
    refused = client.get(f"/batches/{walked}/report",
                         params={"symbols": "TEW", "benchmark_batch": walked})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["msg"].startswith("benchmark_batch: a walk-forward's")
    client.delete(f"/batches/{walked}")
    for path in ("/batches/nope/overfitting", "/batches/nope/reality-check",
                 "/runs/nope-0/returns", "/batches/nope/report"):
        assert client.get(path).status_code == 404, path
