"""`tickstep serve --dask tcp://...`: batches run on a Dask cluster's workers."""

from __future__ import annotations

import pytest
import tickstep.data as td
from service_support import Server, wait_done
from tickstep.batch import run_batch

distributed = pytest.importorskip("distributed")


def test_a_batch_runs_on_the_dask_cluster(tmp_path):
    store = tmp_path / "daily.duckdb"
    with td.Store(store, read_only=False) as s:
        s.ingest(td.example_daily())
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                                  dashboard_address=None) as cluster:
        server = Server(store, "--dask", cluster.scheduler_address).start()
        try:
            with server.client() as client, distributed.Client(cluster.scheduler_address) as dask:
                body = {"strategy": "sma_cross", "params": {"fast": [5, 7]},
                        "symbols": ["BARP", "TEW"], "cache": False}
                batch_id = client.post("/batches", json=body).json()["batch_id"]
                status = wait_done(client, batch_id, timeout=120)
                assert status["status"] == "done", status
                rows = client.get(f"/batches/{batch_id}/results").json()["rows"]
                # The cluster's worker ran them (it keeps a log of the tasks it ran).
                ran = dask.run(lambda dask_worker: len(dask_worker.state.log))
                assert sum(ran.values()) > 0
        finally:
            server.stop()
    expected = run_batch("sma_cross", str(store), params={"fast": [5, 7]},
                         symbols=["BARP", "TEW"], cache=False, executor="sequential")
    got = {(r["symbols"], r["fast"]): r["Return [%]"] for r in rows}
    assert got == {(s, f): r for s, f, r in zip(expected["symbols"], expected["fast"],
                                                 expected["Return [%]"])}
