"""A Result after the run: pickles without engine objects, saves to Parquet + JSON and loads
back equal, hands out Arrow tables, and its statistics match references from the data."""

from __future__ import annotations

import io
import json
import pickle

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tickstep
from test_report_runs import busy_result
from tickstep.strategies import SmaCross


def assert_results_equal(a: tickstep.Result, b: tickstep.Result) -> None:
    assert a.stats.equals(b.stats), pd.concat([a.stats, b.stats], axis=1)
    assert list(a.stats.index) == list(b.stats.index)
    pd.testing.assert_frame_equal(a.trades, b.trades, check_exact=True)
    pd.testing.assert_frame_equal(a.equity_frame, b.equity_frame, check_exact=True)
    pd.testing.assert_frame_equal(a.orders, b.orders, check_exact=True)
    pd.testing.assert_frame_equal(a.fills, b.fills, check_exact=True)
    pd.testing.assert_frame_equal(a.positions, b.positions, check_exact=True)
    assert a.params == b.params
    assert a.options == b.options
    assert a.initial_cash == b.initial_cash
    assert a.symbols == b.symbols
    assert a.strategy_name == b.strategy_name
    for symbol in a.symbols:
        pd.testing.assert_series_equal(a.prices(symbol), b.prices(symbol), check_exact=True)
    if a.metadata is None:
        assert b.metadata is None
    else:
        pd.testing.assert_frame_equal(a.metadata, b.metadata)


class _NoCoreObjects(pickle.Pickler):
    """A pickler that fails on any object of the compiled core."""

    def reducer_override(self, obj):
        if type(obj).__module__.startswith("tickstep._core"):
            raise AssertionError(f"a core object is pickled: {obj!r}")
        return NotImplemented


def test_result_pickles_without_core_objects_and_round_trips():
    r = busy_result()
    _ = r.fills, r.orders  # the lazy frames too
    buffer = io.BytesIO()
    _NoCoreObjects(buffer).dump(r)
    back = pickle.loads(buffer.getvalue())
    assert_results_equal(r, back)
    assert back.strategy is None  # it belonged to the engine
    assert r.strategy is not None  # the original keeps it for inspection


def test_save_and_load_round_trip(tmp_path):
    r = busy_result()
    path = r.save(tmp_path / "run")
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["result.json", "trades.parquet", "equity.parquet", "orders.parquet", "fills.parquet",
         "positions.parquet", "prices.parquet", "metadata.parquet", "holding_spans.parquet"]
    )
    back = tickstep.load_result(path)
    assert_results_equal(r, back)
    pd.testing.assert_frame_equal(back.holding_spans, r.holding_spans, check_exact=True)
    assert back.exposure_ticks == r.exposure_ticks
    # Saving the loaded result again gives the same files' content.
    again = tickstep.load_result(back.save(tmp_path / "again"))
    assert_results_equal(r, again)
    for name in ("trades", "equity", "orders", "fills"):
        pd.testing.assert_frame_equal(back.to_arrow(name).to_pandas(), r.to_arrow(name).to_pandas())


def test_saved_files_are_readable_by_other_tools(tmp_path):
    r = busy_result()
    path = r.save(tmp_path / "run")
    meta = json.loads((path / "result.json").read_text())  # standard JSON (no NaN tokens)
    stats = {s["label"]: s for s in meta["stats"]}
    assert stats["# Trades"] == {"label": "# Trades", "type": "int", "value": len(r.trades)}
    trades = pd.read_parquet(path / "trades.parquet")
    assert list(trades["symbol"].astype(str)) == list(r.trades["symbol"].astype(str))
    np.testing.assert_array_equal(trades["pnl"].to_numpy(), r.trades["pnl"].to_numpy())


def test_a_second_save_replaces_the_first(tmp_path):
    r = busy_result()
    plain = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000).run()
    plain.metadata = None  # a result without metadata
    r.save(tmp_path / "run")
    back = tickstep.load_result(plain.save(tmp_path / "run"))
    assert back.metadata is None  # the first save's metadata.parquet is not read
    assert back.stats.equals(plain.stats)


def test_a_result_saved_by_format_version_1_loads_without_the_columns_added_since(tmp_path):
    # Version 1 saved the trades without their entry order and tag (added in 2), and the
    # orders without their parent (added in 3): such a result, as version 1 wrote it,
    # loads with the rest of every table as it was.
    r = busy_result()
    path = r.save(tmp_path / "run")
    trades = pd.read_parquet(path / "trades.parquet")
    assert {"entry_order", "tag"} <= set(trades.columns)
    trades.drop(columns=["entry_order", "tag"]).to_parquet(path / "trades.parquet")
    pd.read_parquet(path / "orders.parquet").drop(columns=["parent_id"]).to_parquet(
        path / "orders.parquet")
    meta = json.loads((path / "result.json").read_text())
    (path / "result.json").write_text(json.dumps(meta | {"version": 1}))
    back = tickstep.load_result(path)
    expected = r.trades.drop(columns=["entry_order", "tag"])
    pd.testing.assert_frame_equal(back.trades, expected, check_exact=True)
    pd.testing.assert_frame_equal(back.orders, r.orders.drop(columns=["parent_id"]),
                                  check_exact=True)
    assert back.stats.equals(r.stats)
    assert back.to_arrow("trades").column_names == list(expected.columns)
    # Saved again, it is what it was: a version 1 result.
    again = back.save(tmp_path / "again")
    assert json.loads((again / "result.json").read_text())["version"] == 1
    pd.testing.assert_frame_equal(tickstep.load_result(again).trades, expected, check_exact=True)


def test_a_result_saved_by_format_version_2_loads_without_the_orders_parents(tmp_path):
    r = busy_result()
    path = r.save(tmp_path / "run")
    assert json.loads((path / "result.json").read_text())["version"] == 5
    pd.read_parquet(path / "orders.parquet").drop(columns=["parent_id"]).to_parquet(
        path / "orders.parquet")
    meta = json.loads((path / "result.json").read_text())
    (path / "result.json").write_text(json.dumps(meta | {"version": 2}))
    back = tickstep.load_result(path)
    pd.testing.assert_frame_equal(back.orders, r.orders.drop(columns=["parent_id"]),
                                  check_exact=True)
    pd.testing.assert_frame_equal(back.trades, r.trades, check_exact=True)
    again = back.save(tmp_path / "again")
    assert json.loads((again / "result.json").read_text())["version"] == 2


def test_load_refuses_what_is_not_a_saved_result(tmp_path):
    with pytest.raises(FileNotFoundError, match="no result.json"):
        tickstep.load_result(tmp_path)
    (tmp_path / "result.json").write_text(json.dumps({"format": "tickstep.result", "version": 99}))
    with pytest.raises(ValueError, match="format version 1 to 5"):
        tickstep.load_result(tmp_path)


def test_unusual_params_are_saved_as_text(tmp_path):
    r = busy_result()
    odd = pickle.loads(pickle.dumps(r))
    odd.params = {"window": 5, "weights": (0.5, 0.5), "fn": len, "limit": float("inf")}
    back = tickstep.load_result(odd.save(tmp_path / "odd"))
    assert back.params == {"window": 5, "weights": [0.5, 0.5], "fn": repr(len),
                           "limit": {"float": "inf"}}


def test_to_arrow_matches_the_pandas_tables_without_building_them():
    r = tickstep.Backtest(tickstep.data.example_daily(), type(busy_result().strategy),
                          cash=100_000, commission=0.001).run()
    tables = r.to_arrow()
    assert set(tables) == {"trades", "equity", "orders", "fills"}
    assert "fills" not in vars(r) and "orders" not in vars(r)  # pandas frames not built
    utc = pa.timestamp("ns", tz="UTC")
    assert tables["fills"].schema.field("time").type == utc
    assert pa.types.is_dictionary(tables["trades"].schema.field("symbol").type)
    for name, frame in (("trades", r.trades), ("orders", r.orders), ("fills", r.fills)):
        table = tables[name]
        assert table.column_names == list(frame.columns)
        for column in frame.columns:
            got = table.column(column).to_pandas()
            want = frame[column]
            if isinstance(want.dtype, pd.CategoricalDtype):
                got, want = got.astype(str), want.astype(str)
            if want.dtype == object or str(want.dtype) == "str":
                assert list(got) == list(want), column
            else:
                pd.testing.assert_series_equal(got, want.reset_index(drop=True), check_names=False,
                                               check_exact=True)
    equity = tables["equity"]
    np.testing.assert_array_equal(equity.column("equity").to_numpy(), r.equity.to_numpy())
    assert list(equity.column("time").to_pandas()) == list(r.equity.index)
    with pytest.raises(ValueError, match="no table 'trade'"):
        r.to_arrow("trade")


def test_exposure_of_a_flat_book_is_zero_and_matches_the_positions():
    # SmaCross on the sample leaves float dust of ~1e-10 on flat days in the engine's sum.
    r = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, cash=100_000).run()
    fills = r.fills
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["size"].to_numpy()
    # Reference: the net position of every symbol after the fills up to each sample.
    held = np.zeros(len(r.equity))
    times = r.equity.index.asi8
    for symbol in r.symbols:
        mine = (fills["symbol"] == symbol).to_numpy()
        position = np.cumsum(signed[mine])
        at = np.searchsorted(pd.DatetimeIndex(fills["time"]).asi8[mine], times, side="right")
        after = np.where(at > 0, position[np.maximum(at - 1, 0)], 0.0)
        held += np.abs(np.round(after, 9)) > 0
    exposure = r.equity_frame["gross_exposure"].to_numpy()
    np.testing.assert_array_equal(exposure > 0, held > 0)
    assert (exposure >= 0).all()
    assert r.stats["Exposure Time [%]"] == pytest.approx(np.mean(held > 0) * 100)


def test_buy_and_hold_from_the_data():
    data = tickstep.data.example_daily()
    r = tickstep.Backtest(data, SmaCross, cash=100_000).run()
    growth = [b.close[-1] / b.close[0] - 1 for b in data.bars]
    assert r.stats["Buy & Hold Return [%]"] == pytest.approx(np.mean(growth) * 100, rel=1e-12)
    # The batch path (statistics only) reports the same numbers.
    from tickstep.simulation import simulate_stats

    bt = tickstep.Backtest(data, SmaCross, cash=100_000, benchmark="BYN")
    assert simulate_stats(bt.market, SmaCross, bt.config).equals(bt.run().stats)
