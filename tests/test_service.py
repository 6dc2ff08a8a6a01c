"""The HTTP service end to end: a real `tickstep serve` process and a real HTTP client.

One server for the module, over a DuckDB store holding the shipped daily dataset.
"""

from __future__ import annotations

import io
import json
import math

import httpx
import numpy as np
import pandas as pd
import psutil
import pytest
import tickstep.data as td
from service_support import TOKEN, Server, example_store, wait_done, wait_for
from tickstep.batch import expand_grid, run_batch, sample_sets
from tickstep.metrics import STAT_LABELS

RSI_GRID = {"oversold": [25, 30]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return example_store(tmp_path_factory.mktemp("service"))


@pytest.fixture(scope="module")
def server(store):
    srv = Server(store, "--max-jobs", "2000", "--workers", "2").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def client(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def reference(store):
    """`run_batch`'s rows for the RSI grid, computed here without any cache."""
    return run_batch("rsi_mean_reversion", str(store), params=RSI_GRID, cache=False,
                     executor="sequential")


def submit(client: httpx.Client, body: dict, **headers: str) -> httpx.Response:
    return client.post("/batches", json=body, headers=headers)


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def assert_rows_equal(rows: list[dict], reference: pd.DataFrame) -> None:
    """Every statistic of every job equal to `run_batch`'s (timestamps as ISO text,
    durations in seconds, NaN as null)."""
    from tickstep.service.rows import jsonable

    assert len(rows) == len(reference)
    by_key = {(r["symbols"], r["oversold"]): r for r in rows}
    assert len(by_key) == len(rows)
    for _, ref in reference.iterrows():
        got = by_key[(ref["symbols"], int(ref["oversold"]))]
        assert got["status"] == ref["status"] == "ok"
        for label in STAT_LABELS:
            want = jsonable(ref[label])
            assert _same(got[label], want), (ref["symbols"], label, got[label], want)


def test_full_flow_matches_run_batch_and_sequential_equals_parallel(client, reference):
    accepted = submit(client, {"strategy": "rsi_mean_reversion", "params": RSI_GRID})
    assert accepted.status_code == 202, accepted.text
    batch_id = accepted.json()["batch_id"]
    assert accepted.headers["location"] == f"/batches/{batch_id}"
    assert accepted.json()["jobs_total"] == 16

    status = wait_done(client, batch_id)
    assert status["status"] == "done", status
    assert status["jobs_done"] == status["jobs_total"] == 16
    assert status["rate"] > 0 and status["seconds_left"] == 0
    parallel = client.get(f"/batches/{batch_id}/results").json()["rows"]
    assert_rows_equal(parallel, reference)

    # Sequential, without the cache (so it computes): the same rows.
    seq = submit(client, {"strategy": "rsi_mean_reversion", "params": RSI_GRID,
                          "parallel": False, "cache": False}).json()
    assert wait_done(client, seq["batch_id"])["status"] == "done"
    sequential = client.get(f"/batches/{seq['batch_id']}/results").json()["rows"]
    assert not any(r["cached"] for r in sequential)
    assert_rows_equal(sequential, reference)
    # Each symbol's best set by the Sharpe Ratio (ties in job order), the symbols in job
    # order: run_batch's rows' first of each symbol.
    best = client.get(f"/batches/{batch_id}/results", params={"top": 1}).json()["rows"]
    want = reference.groupby("symbols", sort=False).head(1)
    order = list(dict.fromkeys(r["symbols"] for r in parallel))
    assert [(r["symbols"], r["oversold"]) for r in best] == sorted(
        zip(want["symbols"], want["oversold"]), key=lambda pair: order.index(pair[0]))

    # The stored runs are queryable, best first, and each one has its details.
    top = client.get("/runs", params={"strategy": "rsi_mean_reversion",
                                      "order_by": "Sharpe Ratio", "limit": 3}).json()
    sharpe = [r["sharpe_ratio"] for r in top]
    assert sharpe == sorted(sharpe, reverse=True) and len(top) == 3
    assert sharpe[0] == reference["Sharpe Ratio"].max()
    best = top[0]
    assert isinstance(best["parameters"], dict) and best["calc_ms"] > 0
    detail = client.get(f"/runs/{best['run_id']}").json()
    assert detail["stats"]["Sharpe Ratio"] == best["sharpe_ratio"]
    assert len(detail["trades"]) == best["trades"]
    assert detail["equity"][-1]["equity"] == pytest.approx(detail["stats"]["Equity Final [$]"])
    # Each sample with the buy-and-hold basket's value (the statistic's at the end).
    assert set(detail["equity"][0]) == {"time", "equity", "buy_and_hold"}
    stats = detail["stats"]
    cash = stats["Equity Final [$]"] / (1 + stats["Return [%]"] / 100)
    assert detail["equity"][-1]["buy_and_hold"] == pytest.approx(
        cash * (1 + stats["Buy & Hold Return [%]"] / 100), rel=1e-9)
    summary = client.get("/runs/summary", params={"order_by": "Return [%]"}).json()
    rsi = next(s for s in summary if s["strategy"] == "rsi_mean_reversion")
    assert rsi["runs"] == 32
    assert rsi["average"] == pytest.approx(reference["Return [%]"].mean())


def test_a_benchmark_symbol_measures_each_symbols_runs_as_in_python(client, store):
    # benchmark: "TEW" over HTTP: every group's alpha and beta against TEW's closes (read
    # from the store for BARP's runs too), as run_batch gives them; a run's details hold
    # the cash held in it beside the equity.
    got, want = over_http_and_in_python(client, store, "Beta", {"benchmark": "TEW"})
    np.testing.assert_array_equal(got, want)
    assert len(want) == 4 and not np.isnan(want).any()
    (newest,) = client.get("/batches", params={"strategy": "sma_cross", "limit": 1}).json()
    rows = client.get(f"/batches/{newest['batch_id']}/results").json()["rows"]
    barp = next(r for r in rows if r["symbols"] == "BARP")
    equity = pd.DataFrame(client.get(f"/runs/{barp['run_id']}").json()["equity"])
    assert list(equity.columns) == ["time", "equity", "buy_and_hold", "benchmark"]
    assert equity["benchmark"].notna().all()
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"benchmark": 3}})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", "options", "benchmark"]


def test_results_by_content_negotiation(client):
    batch_id = submit(client, {"strategy": "sma_cross", "params": {"fast": [5, 10]},
                               "symbols": ["BARP", "TEW"]}).json()["batch_id"]
    assert wait_done(client, batch_id)["status"] == "done"
    as_json = pd.DataFrame(client.get(f"/batches/{batch_id}/results").json()["rows"])
    csv = client.get(f"/batches/{batch_id}/results", headers={"Accept": "text/csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    parquet = client.get(f"/batches/{batch_id}/results",
                         headers={"Accept": "application/vnd.apache.parquet"})
    from_csv = pd.read_csv(io.StringIO(csv.text))
    from_parquet = pd.read_parquet(io.BytesIO(parquet.content)).reset_index()
    assert len(as_json) == len(from_csv) == len(from_parquet) == 4
    for frame in (from_csv, from_parquet):
        np.testing.assert_array_equal(frame["Return [%]"].to_numpy(),
                                      as_json["Return [%]"].to_numpy())
        assert list(frame["symbols"]) == list(as_json["symbols"])
    refused = client.get(f"/batches/{batch_id}/results", headers={"Accept": "image/png"})
    assert refused.status_code == 406 and "text/csv" in refused.json()["detail"]


def over_http_and_in_python(client, store, column, options, params=None):
    """Column ``column`` of the rows of sma_cross on BARP and TEW (``params``: fast 5 and
    10) with engine ``options``, from a batch over HTTP and from `run_batch` in this
    process, both sorted by symbol and fast."""
    params = params or {"fast": [5, 10]}
    batch_id = submit(client, {"strategy": "sma_cross", "params": params,
                               "symbols": ["BARP", "TEW"], "options": options,
                               "cache": False}).json()["batch_id"]
    assert wait_done(client, batch_id)["status"] == "done"
    rows = pd.DataFrame(client.get(f"/batches/{batch_id}/results").json()["rows"])
    reference = run_batch("sma_cross", str(store), params=params, symbols=["BARP", "TEW"],
                          cache=False, **options)
    key = ["symbols", "fast"]
    return rows.sort_values(key)[column].to_numpy(), reference.sort_values(key)[column].to_numpy()


def test_a_broker_schedule_given_over_http_charges_as_in_python(client, store):
    # commission_cap defaults to None: over HTTP it is given as a number all the same.
    schedule = {"commission_per_unit": 0.01, "commission_min": 1.0, "commission_cap": 0.003}
    got, want = over_http_and_in_python(client, store, "Commissions [$]", schedule)
    assert len(got) == 4 and (want > 0).all()
    np.testing.assert_array_equal(got, want)


def test_a_symbols_own_schedule_given_over_http_charges_as_in_python(client, store):
    # TEW pays 0.01 a unit, at least 1.00; BARP the account's 0.1%.
    options = {"commission": 0.001, "on_reject": "ignore",
               "commission_by_symbol": {"TEW": {"commission_per_unit": 0.01, "commission_min": 1.0}}}
    got, want = over_http_and_in_python(client, store, "Commissions [$]", options)
    assert len(got) == 4 and (want > 0).all()
    np.testing.assert_array_equal(got, want)
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"commission_by_symbol": {"TEW": {"commision": 0.1}}}})
    assert refused.status_code == 422 and "did you mean 'commission'" in refused.text


def test_margin_calls_over_http_are_stored_and_counted_as_in_python(client, store):
    # Crosses traded both ways (short on a death cross, 95% of equity) under a maintenance
    # of 99%: a rise of a few percent against a short calls the account.
    options = {"maintenance_margin": 0.99, "on_reject": "ignore"}
    got, want = over_http_and_in_python(client, store, "# Margin Calls", options,
                                        params={"fast": [5, 10], "reverse": [True]})
    assert len(got) == 4 and want.sum() > 0
    np.testing.assert_array_equal(got, want)


def test_a_symbols_own_margin_terms_over_http_call_as_in_python(client, store):
    # Crosses traded both ways; TEW alone must keep 99% of what its position is worth:
    # its runs are margin called, BARP's (the account's maintenance of 0) are not.
    options = {"margin_by_symbol": {"TEW": {"maintenance_margin": 0.99}}, "on_reject": "ignore"}
    got, want = over_http_and_in_python(client, store, "# Margin Calls", options,
                                        params={"fast": [5, 10], "reverse": [True]})
    assert list(want > 0) == [False, False, True, True]
    np.testing.assert_array_equal(got, want)
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"margin_by_symbol": {"TEW": {"leverge": 2}}}})
    assert refused.status_code == 422 and "did you mean 'leverage'" in refused.text


def test_a_margin_per_unit_over_http_holds_as_in_python(client, store):
    # TEW's units each require a million to open: its entries are all rejected, BARP's
    # (on the account's terms) fill.
    per_unit = {"initial_margin_per_unit": 1e6, "maintenance_margin_per_unit": 5e5}
    options = {"margin_by_symbol": {"TEW": per_unit}, "on_reject": "ignore"}
    got, want = over_http_and_in_python(client, store, "# Trades", options,
                                        params={"fast": [5, 10]})
    assert list(want > 0) == [True, True, False, False]
    np.testing.assert_array_equal(got, want)
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"], "options": {
        "margin_by_symbol": {"TEW": {"initial_margin_per_unit": 1e6}}}})
    assert refused.status_code == 422 and "maintenance_margin_per_unit is missing" in refused.text


def test_a_symbols_own_borrow_fee_over_http_charges_as_in_python(client, store):
    # Crosses traded both ways; TEW's shorts pay 50% a year, BARP's the account's 1%.
    options = {"borrow_rate": 0.01, "borrow_rate_by_symbol": {"TEW": 0.5}, "on_reject": "ignore"}
    params = {"fast": [5, 10], "reverse": [True]}
    got, want = over_http_and_in_python(client, store, "Carrying Costs [$]", options, params)
    np.testing.assert_array_equal(got, want)
    plain = run_batch("sma_cross", str(store), params=params, symbols=["BARP", "TEW"],
                      cache=False, borrow_rate=0.01, on_reject="ignore")
    plain = plain.sort_values(["symbols", "fast"])["Carrying Costs [$]"].to_numpy()
    assert list(want > plain * 10) == [False, False, True, True]
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"borrow_rate_by_symbol": {"TEW": -1}}})
    assert refused.status_code == 422 and ">= 0" in refused.text


def test_volume_rules_over_http_fill_as_in_python(client, store):
    # A limit of 0.01% of each day's volume and a market impact: the stored rows are
    # run_batch's, and differ from the runs without them.
    options = {"volume_limit": 0.0001, "volume_impact": 50.0, "on_reject": "ignore"}
    got, want = over_http_and_in_python(client, store, "Equity Final [$]", options)
    plain = run_batch("sma_cross", str(store), params={"fast": [5, 10]},
                      symbols=["BARP", "TEW"], cache=False, on_reject="ignore")
    assert len(got) == 4 and (want != plain.sort_values(["symbols", "fast"])["Equity Final [$]"].to_numpy()).all()
    np.testing.assert_array_equal(got, want)
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"volume_limit": 0}})
    assert refused.status_code == 422 and "a fraction of a bar's volume in (0, 1]" in refused.text


def test_multipliers_over_http_run_as_in_python(client, store):
    # TEW's contracts worth 3 a point: the stored rows are run_batch's, and differ from the
    # runs without it.
    # (Sized by a share of equity, TEW's runs buy a third of the units: a third of the
    # commission per unit.)
    terms = {"leverage": 4, "commission_per_unit": 0.05, "on_reject": "ignore"}
    options = {"multiplier": {"TEW": 3}, **terms}
    got, want = over_http_and_in_python(client, store, "Commissions [$]", options)
    plain = run_batch("sma_cross", str(store), params={"fast": [5, 10]},
                      symbols=["BARP", "TEW"], cache=False, **terms)
    plain = plain.sort_values(["symbols", "fast"])
    differs = want != plain["Commissions [$]"].to_numpy()
    assert list(differs) == list(plain["symbols"] == "TEW")
    np.testing.assert_array_equal(got, want)
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"multiplier": {"TEW": -1}}})
    assert refused.status_code == 422 and "must be a positive finite number" in refused.text


def test_the_symbols_that_may_be_sold_short_are_a_list_over_http(client, store):
    # SmaCross reversing into shorts with TEW alone shortable: BARP's shorts refused, as
    # run_batch refuses them; a list of anything but names is refused.
    options = {"shortable": ["TEW"], "on_reject": "ignore"}
    params = {"fast": [5, 10], "reverse": [True]}
    got, want = over_http_and_in_python(client, store, "# Orders Rejected", options, params)
    np.testing.assert_array_equal(got, want)
    free = run_batch("sma_cross", str(store), params=params, symbols=["BARP", "TEW"],
                     cache=False, on_reject="ignore").sort_values(["symbols", "fast"])
    # BARP's two runs refuse more than without the rule; TEW's the same.
    more = want - free["# Orders Rejected"].to_numpy()
    assert list(more > 0) == [True, True, False, False] and list(more[2:]) == [0, 0]
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"shortable": ["TEW", ""]}})
    assert refused.status_code == 422 and "symbols by name" in refused.text


def test_a_batchs_status_counts_the_runs_with_rejected_orders(client, store):
    # A portfolio on 500 of cash: RSI entries soon exceed it, and are rejected.
    body = {"strategy": "rsi_mean_reversion", "params": {"oversold": [25, 30]},
            "portfolio": True, "options": {"cash": 500}, "cache": False}
    status = wait_done(client, submit(client, body).json()["batch_id"])
    reference = run_batch("rsi_mean_reversion", str(store), params={"oversold": [25, 30]},
                          portfolio=True, cash=500, cache=False, on_reject="ignore")
    counts = reference["# Orders Rejected"]
    assert counts.gt(0).sum() > 0  # the case tests something
    assert status["runs_with_rejections"] == int(counts.gt(0).sum())
    assert status["orders_rejected"] == int(counts.sum())
    # Each symbol alone, on the default cash: one position at a time, nothing rejected.
    alone = {**body, "portfolio": False, "options": {}}
    clean = wait_done(client, submit(client, alone).json()["batch_id"])
    assert run_batch("rsi_mean_reversion", str(store), params={"oversold": [25, 30]},
                     cache=False)["# Orders Rejected"].sum() == 0
    assert (clean["runs_with_rejections"], clean["orders_rejected"]) == (0, 0)
    assert clean["jobs_done"] == 16 and clean["jobs_failed"] == 0


def test_a_runs_details_break_its_pnl_down_by_symbol_as_in_python(client, store):
    # A portfolio of three earning 3% on its cash: GET /runs/{id} gives each symbol's row
    # of `symbol_breakdown` and the account's interest, the same as the run in Python,
    # and they add up to the run's P&L.
    import tickstep
    from tickstep.report import symbol_breakdown
    from tickstep.strategies import SmaCross

    symbols = ["BARP", "TEW", "KIMC"]
    options = {"cash_rate": 0.03, "commission": 0.001}
    body = {"strategy": "sma_cross", "symbols": symbols, "portfolio": True,
            "options": options, "cache": False}
    batch_id = submit(client, body).json()["batch_id"]
    assert wait_done(client, batch_id)["status"] == "done"
    (row,) = client.get(f"/batches/{batch_id}/results").json()["rows"]
    detail = client.get(f"/runs/{row['run_id']}").json()
    got = pd.DataFrame(detail["symbols"]).set_index("symbol")
    result = tickstep.Backtest(td.open_store(str(store), read_only=True), SmaCross,
                               symbols=symbols, **options).run()
    want = symbol_breakdown(result)
    assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
    numbers = [c for c in want.columns if c != "Sector"]
    np.testing.assert_array_equal(got[numbers].to_numpy(dtype=float),
                                  want[numbers].to_numpy(dtype=float))
    assert list(got["Sector"]) == list(want["Sector"])
    assert detail["interest"] == result.interest < 0  # earned
    final = detail["stats"]["Equity Final [$]"]
    assert got["P&L [$]"].sum() - detail["interest"] == pytest.approx(
        final - result.initial_cash, rel=1e-9)


def test_a_batchs_status_counts_its_failed_runs(client):
    # sma_cross refuses fast >= slow when it starts: those runs fail, the others run.
    body = {"strategy": "sma_cross", "params": {"fast": [5, 50], "slow": [20]},
            "symbols": ["BARP", "TEW", "KIMC"], "cache": False}
    status = wait_done(client, submit(client, body).json()["batch_id"])
    assert status["status"] == "done"
    assert (status["jobs_done"], status["jobs_failed"]) == (6, 3)
    rows = client.get(f"/batches/{status['batch_id']}/results").json()["rows"]
    assert sorted((r["fast"], r["status"]) for r in rows) == [(5, "ok")] * 3 + [(50, "error")] * 3


def test_a_random_search_runs_the_sets_run_batch_draws(client, store):
    grid = {"fast": [5, 7, 9, 11], "slow": [20, 40]}
    body = {"strategy": "sma_cross", "params": grid, "max_tries": 3, "random_state": 2,
            "symbols": ["BARP", "TEW"], "cache": False}
    accepted = submit(client, body).json()
    assert accepted["jobs_total"] == 6  # 3 of the 8 sets x 2 symbols
    status = wait_done(client, accepted["batch_id"])
    assert (status["status"], status["jobs_done"]) == ("done", 6)
    rows = pd.DataFrame(client.get(f"/batches/{accepted['batch_id']}/results").json()["rows"])
    drawn = sample_sets(expand_grid(grid), 3, random_state=2)
    assert sorted(map(tuple, rows[["fast", "slow"]].drop_duplicates().to_numpy().tolist())) \
        == sorted((p["fast"], p["slow"]) for p in drawn)
    reference = run_batch("sma_cross", str(store), params=grid, max_tries=3, random_state=2,
                          symbols=["BARP", "TEW"], cache=False)
    key = ["fast", "slow", "symbols"]
    ours = rows.set_index(key).sort_index()["Return [%]"]
    theirs = reference.set_index(key).sort_index()["Return [%]"]
    np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy())
    assert list(ours.index) == list(theirs.index)
    # A fraction of the grid: half of the 8 sets.
    half = submit(client, {**body, "max_tries": 0.5}).json()
    assert half["jobs_total"] == 8


def test_a_model_based_search_over_http_runs_the_sets_run_batch_runs(client, store):
    # Each symbol's own search, by the statistic named: the same sets and rows as in
    # Python, and its count of jobs known when accepted.
    grid = {"fast": [2, 3, 4, 5, 6, 7, 8, 9], "slow": [20, 30, 40, 50]}
    body = {"strategy": "sma_cross", "params": grid, "max_tries": 9, "random_state": 1,
            "method": "optuna", "maximize": "Return [%]", "symbols": ["BARP", "TEW"],
            "cache": False}
    accepted = submit(client, body).json()
    assert accepted["jobs_total"] == 18
    status = wait_done(client, accepted["batch_id"])
    assert (status["status"], status["jobs_done"]) == ("done", 18)
    rows = pd.DataFrame(client.get(f"/batches/{accepted['batch_id']}/results").json()["rows"])
    reference = run_batch("sma_cross", str(store), params=grid, max_tries=9, random_state=1,
                          method="optuna", maximize="Return [%]", symbols=["BARP", "TEW"],
                          cache=False)
    key = ["symbols", "fast", "slow"]
    ours = rows.set_index(key).sort_index()["Return [%]"]
    theirs = reference.set_index(key).sort_index()["Return [%]"]
    assert list(ours.index) == list(theirs.index)
    np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy())


def test_several_objectives_over_http_rank_the_rows_as_run_batch_does(client, store):
    # A multi-objective search per symbol: the same sets as in Python, and the results'
    # Pareto Rank each row's there (ranked within its symbol).
    grid = {"fast": [2, 3, 4, 5, 6, 7, 8, 9], "slow": [20, 30, 40, 50]}
    maximize = {"Return [%]": "max", "Volatility (Ann.) [%]": "min"}
    body = {"strategy": "sma_cross", "params": grid, "max_tries": 12, "random_state": 4,
            "method": "optuna", "maximize": maximize, "symbols": ["BARP", "TEW"],
            "cache": False}
    accepted = submit(client, body).json()
    assert wait_done(client, accepted["batch_id"])["status"] == "done"
    rows = pd.DataFrame(client.get(f"/batches/{accepted['batch_id']}/results").json()["rows"])
    reference = run_batch("sma_cross", str(store), params=grid, max_tries=12, random_state=4,
                          method="optuna", maximize=maximize, symbols=["BARP", "TEW"],
                          cache=False)
    key = ["symbols", "fast", "slow"]
    ours = rows.set_index(key).sort_index()
    theirs = reference.set_index(key).sort_index()
    assert list(ours.index) == list(theirs.index)
    np.testing.assert_array_equal(ours["Pareto Rank"].to_numpy(), theirs["Pareto Rank"].to_numpy())
    assert set(ours["Pareto Rank"]) >= {1.0, 2.0}
    # Each group's best three, in run_batch's order (Pareto rank, the first objective,
    # the job), the groups in job order; one group alone, in job order.
    top = pd.DataFrame(client.get(f"/batches/{accepted['batch_id']}/results",
                                  params={"top": 3}).json()["rows"])
    want = reference.groupby("symbols", sort=False).head(3)
    want = pd.concat([want[want["symbols"] == s] for s in ["BARP", "TEW"]])
    assert list(zip(top["symbols"], top["fast"], top["slow"])) == \
        list(zip(want["symbols"], want["fast"], want["slow"]))
    one = pd.DataFrame(client.get(f"/batches/{accepted['batch_id']}/results",
                                  params={"symbols": "TEW"}).json()["rows"])
    assert list(one["job"]) == sorted(rows.loc[rows["symbols"] == "TEW", "job"])
    none = client.get(f"/batches/{accepted['batch_id']}/results", params={"symbols": "NOPE"})
    assert none.json()["rows"] == []
    assert client.get(f"/batches/{accepted['batch_id']}/results",
                      params={"top": 0}).status_code == 422
    # A grid of several objectives too; a walk-forward refuses them.
    plain = submit(client, {**body, "method": "grid", "max_tries": None,
                            "maximize": ["Return [%]", "Max. Drawdown [%]"]}).json()
    assert wait_done(client, plain["batch_id"])["status"] == "done"
    csv = client.get(f"/batches/{plain['batch_id']}/results", headers={"Accept": "text/csv"})
    assert "Pareto Rank" in csv.text.splitlines()[0]
    refused = client.post("/batches", json={**body, "walk_forward": {"train": "200D", "test": "100D"}})
    assert refused.status_code == 422 and "one set per test window" in refused.text
    refused = client.post("/batches", json={**body, "maximize": {"Return [%]": "up"}})
    assert refused.status_code == 422


def test_batches_are_listed_newest_first_and_filtered(client):
    first = submit(client, {"strategy": "sma_cross", "params": {"fast": [5]},
                            "symbols": ["BARP"], "cache": False}).json()["batch_id"]
    second = submit(client, {"strategy": "rsi_mean_reversion", "params": {"oversold": [25, 30]},
                             "symbols": ["TEW"], "cache": False}).json()["batch_id"]
    for batch_id in (first, second):
        assert wait_done(client, batch_id)["status"] == "done"
    newest = client.get("/batches", params={"limit": 2}).json()
    assert [b["batch_id"] for b in newest] == [second, first]
    # Each as its own status answers it.
    assert newest == [client.get(f"/batches/{b}").json() for b in (second, first)]
    every = client.get("/batches", params={"limit": 10_000}).json()
    assert len(every) > 2 and [b["created"] for b in every] == \
        sorted((b["created"] for b in every), reverse=True)
    rsi = client.get("/batches", params={"strategy": "rsi_mean_reversion", "limit": 10_000}).json()
    assert second in [b["batch_id"] for b in rsi] and first not in [b["batch_id"] for b in rsi]
    assert {b["strategy"] for b in rsi} == {"rsi_mean_reversion"}
    assert len(rsi) == sum(b["strategy"] == "rsi_mean_reversion" for b in every)
    done = client.get("/batches", params={"status": "done", "limit": 10_000}).json()
    assert {b["status"] for b in done} == {"done"} and len(done) == sum(
        b["status"] == "done" for b in every)
    assert client.get("/batches", params={"since": "2999-01-01"}).json() == []
    assert [b["batch_id"] for b in client.get("/batches", params={"since": "1h",
                                                                    "limit": 2}).json()] == \
        [second, first]
    for params, where in (({"since": "last week"}, "since"), ({"status": "finished"}, "status"),
                          ({"limit": 0}, "limit")):
        refused = client.get("/batches", params=params)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][-1] == where


def test_progress_events_stream_to_the_end(client):
    batch_id = submit(client, {"strategy": "sma_cross", "params": {"fast": [5, 7, 9]},
                               "cache": False}).json()["batch_id"]
    events = []
    with client.stream("GET", f"/batches/{batch_id}/events") as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in response.iter_lines():
            if line.startswith("event:"):
                kind = line.split(":", 1)[1].strip()
            elif line.startswith("data:"):
                events.append((kind, json.loads(line.split(":", 1)[1])))
                if kind == "end":
                    break
    assert events[-1][0] == "end" and events[-1][1]["status"] == "done"
    done = [e[1]["jobs_done"] for e in events]
    assert done == sorted(done) and done[-1] == 24


def _runner_workers(server) -> list[psutil.Process]:
    """Worker processes of batch runners (children of a runner) under the server."""
    procs = psutil.Process(server.process.pid).children(recursive=True)
    runners = {p.pid for p in procs if "tickstep.service.runner" in " ".join(p.cmdline())}
    return [p for p in procs if p.ppid() in runners and p.is_running()
            and p.status() != psutil.STATUS_ZOMBIE]


def test_cancel_mid_batch_stops_workers_and_keeps_finished_jobs(client, server):
    grid = {"oversold": list(range(10, 46)), "overbought": [60, 70, 80]}  # 864 jobs
    batch_id = submit(client, {"strategy": "rsi_mean_reversion", "params": grid,
                               "cache": False}).json()["batch_id"]
    wait_for(lambda: client.get(f"/batches/{batch_id}").json()["jobs_done"] >= 20)
    cancelled = client.delete(f"/batches/{batch_id}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    wait_for(lambda: not _runner_workers(server), timeout=1.0)
    stored = len(client.get(f"/batches/{batch_id}/results").json()["rows"])
    assert 20 <= stored < 864
    import time

    time.sleep(0.5)  # nothing more arrives
    after = client.get(f"/batches/{batch_id}").json()
    assert after["status"] == "cancelled"
    assert len(client.get(f"/batches/{batch_id}/results").json()["rows"]) == stored


def test_idempotency_key_makes_retries_safe(client):
    body = {"strategy": "sma_cross", "symbols": ["BARP"]}
    first = submit(client, body, **{"Idempotency-Key": "retry-1"})
    again = submit(client, body, **{"Idempotency-Key": "retry-1"})
    assert first.status_code == again.status_code == 202
    assert first.json()["batch_id"] == again.json()["batch_id"]
    other = submit(client, {**body, "symbols": ["TEW"]}, **{"Idempotency-Key": "retry-1"})
    assert other.status_code == 409 and "Idempotency-Key" in other.json()["detail"]


def test_strategies_symbols_health(client, server):
    names = {s["name"]: s for s in client.get("/strategies").json()}
    assert names["rsi_mean_reversion"]["parameters"]["oversold"] == 30
    symbols = client.get("/symbols").json()
    assert sorted(s["symbol"] for s in symbols) == sorted(td.example_daily().symbols)
    assert httpx.get(server.url + "/health").json()["status"] == "ok"  # no token needed
    assert client.get("/openapi.json").json()["paths"]["/batches"]["post"]


def test_report_answers_501_until_the_report_lands(client):
    from tickstep.results import Result

    batch_id = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"]}).json()["batch_id"]
    wait_done(client, batch_id)
    run_id = client.get(f"/batches/{batch_id}/results").json()["rows"][0]["run_id"]
    response = client.get(f"/runs/{run_id}/report")
    if hasattr(Result, "report"):
        assert response.status_code == 200 and "<html" in response.text.lower()
    else:
        assert response.status_code == 501 and "Result.report" in response.json()["detail"]


# ---- refusals: each a 4xx naming the problem ------------------------------------------------


def _problem(response: httpx.Response) -> str:
    return json.dumps(response.json()["detail"])


def test_no_token_and_wrong_token(server):
    no_token = httpx.get(server.url + "/runs")
    assert no_token.status_code == 401 and "bearer token" in no_token.json()["detail"]
    assert no_token.headers["www-authenticate"] == "Bearer"
    with server.client(token="not-" + TOKEN) as wrong:
        response = wrong.post("/batches", json={"strategy": "sma_cross"})
        assert response.status_code == 401 and "wrong bearer token" in response.json()["detail"]


@pytest.mark.parametrize(("body", "where", "words"), [
    ({"strategy": "sma_crossx"}, "strategy", "did you mean 'sma_cross'"),
    ({"strategy": "os.system"}, "strategy", "no strategy named"),
    ({"strategy": "sma_cross", "params": {"fats": [5]}}, "fats", "did you mean 'fast'"),
    ({"strategy": "sma_cross", "params": {"fast": [2.7]}}, "fast", "expected a whole number"),
    ({"strategy": "sma_cross", "params": {"reverse": "no"}}, "reverse", "true or false"),
    ({"strategy": "sma_cross", "params": {"fast": []}}, "fast", "no values"),
    ({"strategy": "sma_cross", "params": [{"fast": 5}, {"slo": 9}]}, "slo", "did you mean 'slow'"),
    ({"strategy": "sma_cross", "options": {"comission": 0.1}}, "comission", "did you mean 'commission'"),
    ({"strategy": "sma_cross", "options": {"cash": "lots"}}, "cash", "expected a number"),
    ({"strategy": "sma_cross", "options": {"commission": 1.5}}, "commission", "must be"),
    ({"strategy": "sma_cross", "options": {"timezone": "Mars/Phobos"}}, "timezone", "Mars"),
    ({"strategy": "sma_cross", "options": {"commission_cap": 2}}, "commission_cap", "(0, 1)"),
    ({"strategy": "sma_cross", "options": {"commission_cap": "1%"}}, "commission_cap", "got str"),
    ({"strategy": "sma_cross", "symbols": ["NOPE"]}, "symbols", "'NOPE'"),
    ({"strategy": "sma_cross", "params": {"fast": list(range(1, 400))}}, "params", "limit is 2,000"),
    ({"strategy": "sma_cross", "data": "../../../etc/passwd"}, "data", "outside"),
    ({"strategy": "sma_cross", "data": "/etc/passwd"}, "data", "relative"),
    ({"strategy": "sma_cross", "data": "postgresql://x@evil/db"}, "data", "inside"),
    ({"strategy": "sma_cross", "code": "import os"}, "code", "Extra inputs"),
    ({"strategy": "sma_cross", "start": "2023-01-01", "end": "2022-01-01"}, "start", "after end"),
    ({"strategy": "sma_cross", "max_tries": 0}, "max_tries", "a whole number of parameter sets >= 1"),
    ({"strategy": "sma_cross", "max_tries": 1.5}, "max_tries", "a fraction of the grid in (0, 1]"),
    ({"strategy": "sma_cross", "max_tries": "all"}, "max_tries", "valid"),
    ({"strategy": "sma_cross", "random_state": -1}, "random_state", "greater than or equal to 0"),
    ({"strategy": "sma_cross", "method": "sambo"}, "method", "'grid' or 'optuna'"),
    ({"strategy": "sma_cross", "params": {"fast": [5, 10]}, "method": "optuna"}, "method",
     "needs max_tries="),
    ({"strategy": "sma_cross", "maximize": "Sharpe"}, "maximize", "'Sharpe' is not a statistic"),
    ({"strategy": "sma_cross", "params": {"fast": [5, 10]}, "round_size": 4}, "round_size",
     "the rounds of a model-based search"),
])
def test_bad_requests_are_422_naming_the_field(client, body, where, words):
    response = submit(client, body)
    assert response.status_code == 422, response.text
    text = _problem(response)
    assert where in text and words in text, text


def test_malformed_json_and_oversized_body(client):
    bad = client.post("/batches", content=b'{"strategy": "sma_cross",',
                      headers={"content-type": "application/json"})
    assert bad.status_code == 422 and "JSON" in _problem(bad)
    huge = client.post("/batches", content=b"{" + b" " * (2 << 20) + b"}",
                       headers={"content-type": "application/json"})
    assert huge.status_code == 413 and "limit" in huge.json()["detail"]


def test_unknown_ids_are_404(client):
    assert client.get("/batches/nope").status_code == 404
    assert client.get("/runs/nope").status_code == 404
    bad_order = client.get("/runs", params={"order_by": "Sharpe; DROP TABLE runs"})
    assert bad_order.status_code == 422 and "cannot order by" in _problem(bad_order)


def test_a_batch_over_http_streams_its_runs_as_in_python(client, store):
    # stream= over HTTP: each job reads its bars window by window from the service's
    # store; the rows are the in-memory batch's, bit for bit.
    got, want = over_http_and_in_python(client, store, "Equity Final [$]", {"stream": "5D"})
    plain = run_batch("sma_cross", str(store), params={"fast": [5, 10]},
                      symbols=["BARP", "TEW"], cache=False)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(want, plain.sort_values(["symbols", "fast"])["Equity Final [$]"])
    refused = submit(client, {"strategy": "sma_cross", "symbols": ["BARP"],
                              "options": {"stream": "soon"}})
    assert refused.status_code == 422 and "window length such as '5D'" in refused.text
