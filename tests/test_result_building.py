"""How a Result is built from a finished engine: the fast way gives the frames of the plain way.

The plain way, written out here as a reference: every log exported whole by the engine,
every label column handed to pandas (or Arrow) as strings. The result's way:
the order log, the fills and the trades moved out of the engine and exported only when
read (`Engine.take_logs`), labels taken from their codes in Arrow, logs exported a block of
records at a time. Every frame, column, dtype, index and value must be the same.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import tickstep
from test_results_io import _NoCoreObjects
from tickstep import metrics, results, simulation
from tickstep.data import example_daily, sample
from tickstep.strategies import SmaCross


class _Recorded:
    """A finished engine whose logs are first exported whole, the plain way (as `raw`),
    before the result is built from it."""

    def __init__(self, engine):
        self._engine = engine
        self.raw = {name: getattr(engine, name)()
                    for name in ("orders", "fills", "trades", "equity", "positions")}

    def __getattr__(self, name):
        return getattr(self._engine, name)


@pytest.fixture
def recorded(monkeypatch):
    """Runs through the public API record their engines' plain exports here."""
    seen: list[_Recorded] = []
    build = results.build_result

    def build_recorded(engine, *args, **kwargs):
        seen.append(_Recorded(engine))
        return build(seen[-1], *args, **kwargs)

    monkeypatch.setattr(simulation, "build_result", build_recorded)
    return seen


def _plain_column(col, values, symbols):
    """The column as pandas got it before: labels as numpy strings, text as a list."""
    if col.kind == "float":
        return np.asarray(values, dtype="float64")
    if col.kind == "int":
        return np.asarray(values, dtype="int64")
    if col.kind in ("time", "maybe_time"):
        ns = np.asarray(values, dtype="int64")
        missing = ns == np.iinfo(np.int64).min
        times = pd.DatetimeIndex(np.where(missing, 0, ns).view("M8[ns]")).tz_localize("UTC")
        return times.where(~missing) if col.kind == "maybe_time" else times
    if col.kind == "symbol":
        return pd.Categorical.from_codes(np.asarray(values, dtype="int64"), dtype=symbols)
    if col.kind == "choice":
        return np.asarray(col.labels, dtype=object)[np.asarray(values, dtype=np.int64)]
    if col.kind == "sign":
        return np.where(np.asarray(values) > 0, col.labels[0], col.labels[1])
    return list(values)


def _plain_frame(table, raw, symbols):
    return pd.DataFrame({c.name: _plain_column(c, raw[c.raw], symbols)
                         for c in results._TABLES[table]})


def _plain_equity(raw, since):
    keep = np.asarray(raw["ts"]) >= since
    eq = {k: np.asarray(v)[keep] for k, v in raw.items()}
    gross = np.where(eq["gross_exposure"] > 1e-9 * np.abs(eq["equity"]), eq["gross_exposure"], 0.0)
    index = pd.DatetimeIndex(eq["ts"].view("M8[ns]")).tz_localize("UTC").rename("time")
    return pd.DataFrame({"equity": eq["equity"], "cash": eq["cash"], "gross_exposure": gross},
                        index=index)


def _assert_same_frame(got, want):
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert list(got.dtypes) == list(want.dtypes)
    for column in want.columns:
        # Arrow-backed strings: the same Arrow type too (large_string), not only the dtype.
        a, b = getattr(got[column].array, "_pa_array", None), getattr(want[column].array, "_pa_array", None)
        assert (a is None) == (b is None), column
        if a is not None:
            assert a.type == b.type, column


def _plain_arrow(table, raw, symbols):
    """The Arrow table as `Result.to_arrow` built it before: labels as string objects."""
    utc = pa.timestamp("ns", tz="UTC")
    arrays = {}
    for c in results._TABLES[table]:
        v = raw[c.raw]
        if c.kind in ("float", "int"):
            arrays[c.name] = pa.array(np.asarray(v, dtype=c.dtype if c.kind == "int" else "float64"))
        elif c.kind == "time":
            arrays[c.name] = pa.array(np.asarray(v, dtype="int64"), type=pa.int64()).cast(utc)
        elif c.kind == "maybe_time":
            ns = np.asarray(v, dtype="int64")
            arrays[c.name] = pa.array(ns, mask=ns == np.iinfo(np.int64).min, type=pa.int64()).cast(utc)
        elif c.kind == "symbol":
            arrays[c.name] = pa.DictionaryArray.from_arrays(
                pa.array(np.asarray(v, dtype="int32")), pa.array(symbols, type=pa.string()))
        elif c.kind == "choice":
            arrays[c.name] = pa.array(np.asarray(c.labels, dtype=object)[np.asarray(v, dtype=np.int64)],
                                      type=pa.string())
        elif c.kind == "sign":
            arrays[c.name] = pa.array(np.where(np.asarray(v) > 0, c.labels[0], c.labels[1]),
                                      type=pa.string())
        else:
            arrays[c.name] = pa.array(list(v), type=pa.string())
    return pa.table(arrays)


def _assert_same_table(got, want):
    assert got.schema == want.schema
    for name in want.column_names:
        a, b = got.column(name), want.column(name)
        if pa.types.is_floating(b.type):  # NaN (no price) equals NaN here
            np.testing.assert_array_equal(a.to_numpy(), b.to_numpy(), err_msg=name)
        else:
            assert a.equals(b), name


def _assert_built_the_plain_way(result, rec, market, config):
    symbols = pd.CategoricalDtype(list(market.symbols))
    raw = rec.raw
    _assert_same_frame(result.trades, _plain_frame("trades", raw["trades"], symbols))
    _assert_same_frame(result.fills, _plain_frame("fills", raw["fills"], symbols))
    _assert_same_frame(result.orders, _plain_frame("orders", raw["orders"], symbols))
    start = simulation._span(market, config)[0]
    _assert_same_frame(result.equity_frame, _plain_equity(raw["equity"], start.value))
    positions = _plain_frame("positions", {"symbol": np.arange(len(symbols.categories)),
                                           **raw["positions"]}, symbols)
    positions = positions.set_index(pd.Index(list(symbols.categories), name="symbol"))
    positions = positions.drop(columns="symbol")
    held = positions[positions["size"] != 0]
    _assert_same_frame(result.positions, held[["size", "average_price", "last_price"]])
    # Every symbol's payments, from the same table's other columns.
    _assert_same_frame(result.payments, positions[["dividends", "carrying_costs"]])
    names = list(symbols.categories)
    for table in ("trades", "fills", "orders"):
        _assert_same_table(result.to_arrow(table), _plain_arrow(table, raw[table], names))
    # The statistics from the plain exports (the grid's way: columns, no frames).
    rejected = int((raw["orders"]["status"] == 3).sum())
    columns = {**raw["trades"], "duration": raw["trades"]["exit_ts"] - raw["trades"]["entry_ts"]}
    want = simulation.stats_of(columns, raw["equity"], rec.carrying_costs(), market, config,
                               rejected, exposure_ticks=rec.exposure_ticks())
    pd.testing.assert_series_equal(result.stats, want, check_exact=True)
    assert [type(v) for v in result.stats] == [type(v) for v in want]
    # And as `compute_stats` of the plain frames (what the result's statistics mean).
    end = simulation._span(market, config)[1]
    frames = metrics.compute_stats(
        _plain_equity(raw["equity"], start.value), _plain_frame("trades", raw["trades"], symbols),
        initial_cash=config.cash, risk_free_rate=config.risk_free_rate, start=start, end=end,
        orders_rejected=rejected, timezone=config.timezone,
        periods_per_year=config.periods_per_year, carrying_costs=rec.carrying_costs(),
        exposure_ticks=rec.exposure_ticks(),
        **results.market_stats_inputs(market, config.benchmark, start.value))
    pd.testing.assert_series_equal(result.stats, frames, check_exact=True)


def _market(data):
    return simulation.market_from_columns(tickstep.data.resolve(data))


def test_a_signals_run_of_every_kind_of_row_is_built_as_the_plain_way(recorded):
    market = _market(sample(symbols=4, days=30, seed=3))
    config = tickstep.BacktestConfig(cash=10_000, commission=0.0005, on_reject="ignore")
    bt = tickstep.Backtest(market, tickstep.Strategy, config)
    rng = np.random.default_rng(7)
    n = [len(market.column(s, "ts", 0, 2**62)) for s in range(len(market.symbols))]
    draw = lambda p: {sym: rng.random(k) < p for sym, k in zip(market.symbols, n)}  # noqa: E731
    # Large sizes for rejections; stops for stop-loss and take-profit fills; shorts.
    r = bt.run_signals(draw(0.06), draw(0.06), short_entries=draw(0.03), short_exits=draw(0.06),
                       size=0.6, sl=0.002, tp=0.003)
    assert len(r.orders) > 2 * 1024 and len(r.trades) > 1024  # several blocks of the export
    assert set(r.orders["status"]) >= {"filled", "rejected", "cancelled"}
    assert set(r.fills["role"]) >= {"entry", "stop_loss", "take_profit", "close"}
    assert set(r.trades["side"]) == {"long", "short"}
    (rec,) = recorded
    _assert_built_the_plain_way(r, rec, market, config)


def test_an_event_driven_run_is_built_as_the_plain_way(recorded):
    market = _market(example_daily())
    config = tickstep.BacktestConfig(cash=100_000, commission=0.001, on_reject="ignore")
    r = tickstep.Backtest(market, SmaCross, config).run(fast=3)
    assert len(r.trades) > 0 and (r.orders["status"] == "rejected").any()
    (rec,) = recorded
    _assert_built_the_plain_way(r, rec, market, config)


def test_a_run_without_orders_keeps_the_dtypes_of_empty_columns(recorded):
    market = _market(example_daily())
    config = tickstep.BacktestConfig()
    r = tickstep.Backtest(market, tickstep.Strategy, config).run()
    assert len(r.trades) == len(r.orders) == len(r.fills) == 0
    (rec,) = recorded
    _assert_built_the_plain_way(r, rec, market, config)


def _finished_engine(**signal_options):
    market = _market(sample(symbols=3, days=40, seed=1))
    config = tickstep.BacktestConfig(cash=10_000, on_reject="ignore")
    n = [len(market.column(s, "ts", 0, 2**62)) for s in range(len(market.symbols))]
    rng = np.random.default_rng(2)
    signals = {k: {sym: rng.random(m) < 0.06 for sym, m in zip(market.symbols, n)}
               for k in ("entries", "exits")}
    rules = tickstep.signals._rules(size=signal_options.get("size", 0.05), size_type="percent",
                                    sl=None, tp=None)
    (engine,), (error,) = tickstep.signals._run_native(market, config, [signals], [rules],
                                                      None, threads=1)
    assert error is None
    return engine


def _assert_same_columns(got, want):
    assert list(got) == list(want)
    for name in want:
        if isinstance(want[name], list):
            assert got[name] == want[name], name
        else:
            assert got[name].dtype == want[name].dtype, name
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_take_logs_moves_the_order_log_the_fills_and_the_trades_out_of_the_engine():
    engine = _finished_engine()
    orders, fills, trades = engine.orders(), engine.fills(), engine.trades()
    assert len(orders["order_id"]) > 2 * 1024 and len(trades["exit_order"]) > 1024
    order_log, fill_log, trade_log = engine.take_logs()
    assert len(order_log) == len(orders["order_id"]) and len(fill_log) == len(fills["ts"])
    assert len(trade_log) == len(trades["exit_order"])
    _assert_same_columns(order_log.columns(), orders)
    _assert_same_columns(fill_log.columns(), fills)
    _assert_same_columns(trade_log.columns(), trades)  # joined with the moved order log
    # Moved, not copied: the engine has none left.
    assert len(engine.orders()["order_id"]) == 0 and len(engine.fills()["ts"]) == 0
    assert len(engine.trades()["exit_order"]) == 0
    assert len(engine.trade_stat_columns()["pnl"]) == 0


def test_the_trade_columns_of_the_statistics_are_those_of_the_trades():
    engine = _finished_engine()
    trades, stat_columns = engine.trades(), engine.trade_stat_columns()
    assert len(trades["pnl"]) > 1024
    assert list(stat_columns) == list(metrics._STAT_TRADE_COLUMNS)
    _assert_same_columns(stat_columns, {c: trades[c] for c in metrics._TRADE_COLUMNS}
                         | {"duration": trades["exit_ts"] - trades["entry_ts"]})


def test_the_logs_exported_by_blocks_keep_each_record_whole():
    """Rows of one record stay together across the export's blocks of 1024 records: ids run
    1..n in the log's order, each fill matches its order, each trade its closing order."""
    engine = _finished_engine()
    orders, fills, trades = engine.orders(), engine.fills(), engine.trades()
    n = len(orders["order_id"])
    assert n > 2 * 1024 and len(trades["exit_order"]) > 1024
    np.testing.assert_array_equal(orders["order_id"], np.arange(1, n + 1))
    at = fills["order_id"] - 1
    assert (orders["status"][at] == 1).all()  # filled
    np.testing.assert_array_equal(orders["symbol"][at], fills["symbol"])
    np.testing.assert_array_equal(orders["closed_ts"][at], fills["ts"])
    np.testing.assert_array_equal(orders["fill_price"][at], fills["price"])
    np.testing.assert_array_equal(np.where(orders["filled_side"][at] == 1, 1, -1), fills["side"])
    closing = trades["exit_order"] - 1
    np.testing.assert_array_equal(orders["symbol"][closing], trades["symbol"])
    np.testing.assert_array_equal(orders["closed_ts"][closing], trades["exit_ts"])
    assert (trades["entry_ts"] <= trades["exit_ts"]).all()
    reasons = orders["reason"]
    assert len(reasons) == n
    assert all(r == "" for r, s in zip(reasons, orders["status"]) if s == 1)


def test_rejected_orders_are_the_rejected_rows_of_the_order_log():
    engine = _finished_engine(size=0.9)
    orders = engine.orders()
    rejected = orders["status"] == 3
    assert 0 < rejected.sum() < len(rejected)
    want = {k: ([x for x, keep in zip(v, rejected) if keep] if isinstance(v, list) else v[rejected])
            for k, v in orders.items()}
    _assert_same_columns(engine.rejected_orders(), want)


def test_a_result_pickles_its_logs_as_columns_before_they_are_read():
    bt = tickstep.Backtest(example_daily(), SmaCross, cash=100_000, on_reject="ignore")
    r = bt.run()
    buffer = pickle.dumps(r)  # neither orders nor fills read yet
    import io

    _NoCoreObjects(io.BytesIO()).dump(r)
    back = pickle.loads(buffer)
    _assert_same_frame(back.orders, bt.run().orders)
    _assert_same_frame(back.fills, bt.run().fills)


@pytest.mark.parametrize("frame", ["trades", "equity_frame"])
def test_a_lazy_frame_is_built_when_first_read(frame):
    bt = tickstep.Backtest(example_daily(), SmaCross, cash=100_000, on_reject="ignore")
    r = bt.run()
    assert frame not in vars(r)  # not built by the run (its statistics read the columns)
    back = pickle.loads(pickle.dumps(r))  # nor by a pickle
    assert frame not in vars(back)
    read = getattr(r, frame)
    assert len(read) > 0 and frame in vars(r)
    assert getattr(r, frame) is read  # built once
    _assert_same_frame(getattr(back, frame), read)  # the plain way's: see above
    # A frame read (and changed) before pickling goes as it is.
    read["note"] = 1
    assert "note" in getattr(pickle.loads(pickle.dumps(r)), frame).columns


def test_rejections_still_warn_from_the_rejected_rows():
    bt = tickstep.Backtest(example_daily(), SmaCross, cash=100_000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = bt.run(fast=3)
    (w,) = [c for c in caught if issubclass(c.category, tickstep.RejectedOrderWarning)]
    n = int((r.orders["status"] == "rejected").sum())
    assert n > 0 and str(w.message).startswith(f"{n} order(s) rejected ({n} insufficient margin)")
    assert r.stats["# Orders Rejected"] == n


def test_strings_follow_pandas_when_it_keeps_them_as_objects(recorded):
    """With pandas' string inference switched off (a deprecated option of pandas 3), label
    columns are objects, as the plain way makes them."""
    market = _market(example_daily())
    config = tickstep.BacktestConfig(cash=100_000, on_reject="ignore")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the option's deprecation
        if not hasattr(pd.options.future, "infer_string"):
            pytest.skip("this pandas has no option to switch string inference off")
        with pd.option_context("future.infer_string", False):
            r = tickstep.Backtest(market, SmaCross, config).run()
            assert r.trades["side"].dtype == object and r.orders["reason"].dtype == object
            (rec,) = recorded
            _assert_built_the_plain_way(r, rec, market, config)
