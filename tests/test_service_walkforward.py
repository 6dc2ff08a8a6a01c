"""A walk-forward over HTTP: a real `tickstep serve` process and a real client; what it
stores and serves equals `Backtest.walk_forward` in Python."""

from __future__ import annotations

import warnings

import pytest
import tickstep
import tickstep.data as td
from service_support import Server, example_store, wait_done
from tickstep.service.rows import jsonable
from tickstep.strategies import SmaCross

GRID = {"fast": [5, 10, 20], "slow": [30, 50]}
SPEC = {"train": "365D", "test": "180D", "warmup": "60D"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return example_store(tmp_path_factory.mktemp("service_wf"))


@pytest.fixture(scope="module")
def client(store):
    server = Server(store, "--max-jobs", "2000", "--workers", "2").start()
    with server.client() as c:
        yield c
    server.stop()


def _python(store, symbols, **more):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        with td.open_store(str(store), read_only=True) as opened:
            bt = tickstep.Backtest(opened, SmaCross, symbols=symbols, on_reject="ignore")
            return bt.walk_forward(**SPEC, maximize="Return [%]", cache=False,
                                   executor="sequential", **GRID, **more)


def test_each_symbol_walks_forward_as_in_python_windows_rows_and_report(client, store):
    symbols = ["BARP", "TEW"]
    body = {"strategy": "sma_cross", "params": GRID, "symbols": symbols, "cache": False,
            "maximize": "Return [%]", "walk_forward": SPEC,
            "options": {"on_reject": "ignore"}}
    accepted = client.post("/batches", json=body).json()
    assert accepted["jobs_total"] == 2  # a walk-forward per symbol
    status = wait_done(client, accepted["batch_id"], timeout=120)
    assert (status["status"], status["jobs_done"], status["jobs_failed"]) == ("done", 2, 0)
    batch = accepted["batch_id"]
    served = client.get(f"/batches/{batch}/walk-forward").json()["walk_forwards"]
    assert [wf["symbols"] for wf in served] == symbols
    rows = client.get(f"/batches/{batch}/results").json()["rows"]
    by_job = {r["job"]: r for r in rows}
    for wf, symbol in zip(served, symbols):
        expected = _python(store, [symbol])
        windows = expected.windows.reset_index()
        assert len(wf["windows"]) == len(windows) >= 2
        for got, want, result in zip(wf["windows"], windows.to_dict(orient="records"),
                                     expected.results):
            assert (got["fast"], got["slow"]) == (want["fast"], want["slow"])
            assert got["test_start"] == jsonable(want["test_start"])
            assert got["out_of_sample"] == pytest.approx(want["out_of_sample"], rel=1e-12)
            row = by_job[got["job"]]  # the window's test run, a row of the batch
            assert row["symbols"] == symbol and (row["fast"], row["slow"]) == (got["fast"], got["slow"])
            assert row["Return [%]"] == pytest.approx(result.stats["Return [%]"], rel=1e-12)
            assert row["# Trades"] == result.stats["# Trades"]
        assert wf["stats"]["Return [%]"] == pytest.approx(expected.stats["Return [%]"], rel=1e-12)
        assert wf["stats"]["# Trades"] == expected.stats["# Trades"]
    # A window's run in full: its test window's bars again, the same statistics.
    first = served[0]["windows"][1]
    detail = client.get(f"/runs/{batch}-{first['job']}").json()
    assert detail["stats"]["Return [%]"] == pytest.approx(by_job[first["job"]]["Return [%]"],
                                                          rel=1e-12)
    assert all(first["test_start"] <= t["entry_time"] < first["test_end"]
               for t in detail["trades"])
    # A group's report: the walk-forward's HTML page.
    page = client.get(f"/batches/{batch}/report", params={"symbols": "TEW"})
    assert page.status_code == 200 and "tickstep walk-forward report" in page.text
    unnamed = client.get(f"/batches/{batch}/report")
    assert unnamed.status_code == 422 and "name one of BARP, TEW" in unnamed.text


def test_a_portfolio_walks_forward_with_a_model_based_search(client, store):
    body = {"strategy": "sma_cross", "params": {"fast": [3, 5, 8, 10, 15, 20],
                                                "slow": [30, 40, 50, 60]},
            "symbols": ["BARP", "TEW", "KIMC"], "portfolio": True, "cache": False,
            "maximize": "Return [%]", "method": "optuna", "max_tries": 6,
            "random_state": 3, "walk_forward": SPEC, "options": {"on_reject": "ignore"}}
    accepted = client.post("/batches", json=body).json()
    status = wait_done(client, accepted["batch_id"], timeout=120)
    assert (status["status"], status["jobs_done"]) == ("done", 1)
    (served,) = client.get(f"/batches/{accepted['batch_id']}/walk-forward").json()["walk_forwards"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        with td.open_store(str(store), read_only=True) as opened:
            expected = tickstep.Backtest(opened, SmaCross, symbols=["BARP", "TEW", "KIMC"],
                                         on_reject="ignore").walk_forward(
                **SPEC, maximize="Return [%]", method="optuna", max_tries=6, random_state=3,
                cache=False, executor="sequential", fast=[3, 5, 8, 10, 15, 20],
                slow=[30, 40, 50, 60])
    assert served["symbols"] == "portfolio"
    assert [(w["fast"], w["slow"]) for w in served["windows"]] == list(
        zip(expected.windows["fast"], expected.windows["slow"]))
    assert served["stats"]["Return [%]"] == pytest.approx(expected.stats["Return [%]"], rel=1e-12)
    page = client.get(f"/batches/{accepted['batch_id']}/report")  # one group: no name needed
    assert page.status_code == 200


def test_a_group_that_cannot_walk_forward_is_a_failed_row_the_others_go_on(client):
    # A train window longer than the data: no window fits; the batch still ends.
    body = {"strategy": "sma_cross", "params": GRID, "symbols": ["BARP"], "cache": False,
            "walk_forward": {"train": "5000D", "test": "90D"}}
    accepted = client.post("/batches", json=body).json()
    status = wait_done(client, accepted["batch_id"], timeout=60)
    assert (status["status"], status["jobs_failed"]) == ("done", 1)
    (row,) = client.get(f"/batches/{accepted['batch_id']}/results").json()["rows"]
    assert row["status"] == "error" and "no walk-forward window fits the data" in row["error"]


@pytest.mark.parametrize(("body", "where", "words"), [
    ({"params": {"fast": [5]}, "walk_forward": SPEC}, "params", "a walk-forward chooses among"),
    ({"params": [{"fast": 5}, {"fast": 10}], "walk_forward": SPEC}, "params",
     "a walk-forward chooses among"),
    ({"params": GRID, "walk_forward": {"train": "soon", "test": "90D"}}, "train",
     "is not a duration"),
    ({"params": GRID, "walk_forward": {"train": "365D", "test": "-5D"}}, "test",
     "must be a positive length"),
    ({"params": GRID, "walk_forward": {"train": "365D"}}, "test", "Field required"),
    ({"params": GRID, "walk_forward": {**SPEC, "step": "30D"}}, "step", "Extra inputs"),
])
def test_a_bad_walk_forward_is_422_naming_the_field(client, body, where, words):
    response = client.post("/batches", json={"strategy": "sma_cross", **body})
    assert response.status_code == 422, response.text
    assert where in response.text and words in response.text, response.text


def test_a_batch_that_is_not_a_walk_forward_has_none_to_serve(client):
    accepted = client.post("/batches", json={"strategy": "sma_cross", "params": {"fast": [5]},
                                             "symbols": ["BARP"], "cache": False}).json()
    wait_done(client, accepted["batch_id"])
    response = client.get(f"/batches/{accepted['batch_id']}/walk-forward")
    assert response.status_code == 409 and "is not a walk-forward" in response.text
    # Its report is a grid's: the optimisation report of its one set.
    report = client.get(f"/batches/{accepted['batch_id']}/report")
    assert report.status_code == 200 and "Optimisation of 1 parameter set on BARP" in report.text
