"""Analysis tables in many runs: optimize, run_batch and walk-forward read the same
records as `Backtest.run`, in worker processes too, and the results cache knows them."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from records_support import make_zones
from tickstep.batch import run_batch


class ZoneBuyer(tickstep.Strategy):
    """Buys when the close is within ``band`` of a support zone; sells above a resistance."""

    band = 0.01

    def next(self, symbol):
        z = self.records("zones")
        if not z:
            return
        close = self.price()
        support = z.zone_type == "support"
        near = np.abs(close - z.level) <= self.band * close
        if (support & near).any() and not self.position:
            self.buy(size=10)
        elif (~support & (close > z.upper)).any() and self.position:
            self.position.close()


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(symbols=3, days=80, seed=8)


@pytest.fixture(scope="module")
def zones(market):
    return make_zones(market, every=3, seed=4)


BANDS = [0.002, 0.01, 0.03]


def _by_band(rows: pd.DataFrame) -> pd.DataFrame:
    return rows.set_index("band").sort_index()


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_optimize_runs_see_the_records_as_run_does(market, zones, executor, tmp_path):
    bt = tickstep.Backtest(market, ZoneBuyer, records={"zones": zones}, cash=100_000)
    rows = _by_band(bt.optimize(band=BANDS, cache=False, executor=executor, max_workers=2))
    assert (rows["status"] == "ok").all(), rows["error"].dropna().tolist()
    for band in BANDS:
        stats = bt.run(band=band).stats
        assert rows.loc[band, "# Trades"] == stats["# Trades"]
        assert rows.loc[band, "Return [%]"] == stats["Return [%]"]
    assert rows["# Trades"].nunique() > 1  # the records decide the trades


def test_run_batch_reads_named_tables_from_a_store_file(market, zones, tmp_path):
    path = tmp_path / "market.duckdb"
    with td.Store(path) as store:
        store.ingest(market)
        store.ingest_records("zones", zones)
    rows = run_batch(ZoneBuyer, str(path), params={"band": BANDS}, records=["zones"],
                     cache=False, executor="sequential", scratch_dir=tmp_path / "scratch")
    assert (rows["status"] == "ok").all(), rows["error"].dropna().tolist()
    per_symbol = rows.set_index(["symbols", "band"]).sort_index()
    for symbol in market.symbols:
        alone = tickstep.Backtest(str(path), ZoneBuyer, records=["zones"], symbols=[symbol])
        assert per_symbol.loc[(symbol, 0.01), "# Trades"] == alone.run(band=0.01).stats["# Trades"]
    assert not [p for p in os.listdir(tmp_path / "scratch") if "records_" in p]  # cleaned up


def test_the_results_cache_keys_on_the_records(market, zones, tmp_path):
    cache = tmp_path / "cache"

    def batch(records):
        return _by_band(run_batch(ZoneBuyer, market, params={"band": BANDS}, portfolio=True,
                                  records={"zones": records}, cache=cache,
                                  executor="sequential"))

    first = batch(zones)
    assert not first["cached"].any()
    assert batch(zones)["cached"].all()
    changed = zones.assign(zone_type="support")  # same keys, other records
    again = batch(changed)
    assert not again["cached"].any()
    bt = tickstep.Backtest(market, ZoneBuyer, records={"zones": changed}, cash=100_000)
    assert again.loc[0.01, "# Trades"] == bt.run(band=0.01).stats["# Trades"]


def test_walk_forward_windows_read_the_records(market, zones):
    bt = tickstep.Backtest(market, ZoneBuyer, records={"zones": zones})
    wf = bt.walk_forward(train="40D", test="20D", band=BANDS, cache=False,
                         executor="sequential", maximize="Return [%]")
    assert len(wf.windows) >= 1
    first = wf.windows.iloc[0]
    again = tickstep.Backtest(market, ZoneBuyer, records={"zones": zones},
                              start=first["test_start"], end=first["test_end"]
                              - pd.Timedelta(1, "ns")).run(band=first["band"])
    assert wf.results[0].stats["# Trades"] == again.stats["# Trades"]
