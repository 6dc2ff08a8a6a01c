"""``Exposure Time [%]`` counts every tick, whatever the equity samples kept: the share of
the run's ticks (from its start) at whose end the account held a position. By hand on
intraday bars (where day-end samples would see none of it), the same with and without
``record_every_bar``, in signals mode and the engine's loop, streamed, in a grid, in a
walk-forward; and, sampled at every bar, the share of the samples as before."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy
from tickstep.batch import run_batch
from tickstep.metrics import exposed
from tickstep.strategies import SmaCross


def two_days(prices_per_day=4):
    """Two days of ``prices_per_day`` hourly bars at a flat 100 (8 ticks)."""
    rows = [(100.0, 100.0, 100.0, 100.0)] * prices_per_day
    a = make_bars(rows, start="2024-03-04 14:00", freq="h")
    b = make_bars(rows, start="2024-03-05 14:00", freq="h")
    return pd.concat([a, b])


def close_position(s, sym):
    s.position.close()


@pytest.mark.parametrize("every_bar", [False, True])
def test_a_position_held_within_a_day_counts(every_bar):
    # Bought at bar 1's open (placed at bar 0), closed at bar 3's open (placed at bar 2):
    # held at the ends of bars 1 and 2 of the 8, flat at both day ends.
    r = run_script({"X": two_days()}, {0: buy(10), 2: close_position},
                   record_every_bar=every_bar)
    assert r.stats["Exposure Time [%]"] == 25.0
    assert r.exposure_ticks == (2, 8)
    day_end_samples = tickstep.Backtest({"X": two_days()}, tickstep.Strategy).run()
    assert len(day_end_samples.equity) == 2  # what the samples alone would have said: 0%


def test_ticks_before_the_trade_start_are_not_counted():
    # trade_start at the second day: its 4 ticks are the run's; bought at its bar 1's
    # open and held to the end: 3 of 4.
    class BuyOnce(tickstep.Strategy):
        def next(self, symbol):
            if not self.position and not self.orders:
                self.buy(size=1)

    r = tickstep.Backtest({"X": two_days()}, BuyOnce, trade_start="2024-03-05").run()
    assert r.exposure_ticks == (3, 4) and r.stats["Exposure Time [%]"] == 75.0


def intraday_data(n_symbols=3, days=6, seed=0):
    return tickstep.data.sample(symbols=n_symbols, days=days, seed=seed)


def crossing(data):
    closes = pd.DataFrame({b.symbol: b.to_frame()["close"] for b in data.bars})
    fast, slow = closes.rolling(5).mean(), closes.rolling(30).mean()
    up = (fast > slow) & (fast.shift() <= slow.shift())
    down = (fast < slow) & (fast.shift() >= slow.shift())
    return up.fillna(False), down.fillna(False)


def test_signals_mode_counts_the_ticks_its_driver_skips():
    # The sparse driver runs only the ticks with something to do; the ticks it skips
    # count as what the account held. The same with every bar visited, and by the
    # engine's own loop (a symbol's own borrow rate sends the run there).
    data = intraday_data()
    up, down = crossing(data)
    runs = [tickstep.Backtest(data, cash=100_000, **options).run_signals(up, down, size=0.3)
            for options in ({}, {"record_every_bar": True},
                            {"borrow_rate_by_symbol": {data.symbols[0]: 0.0}})]
    exposures = {r.stats["Exposure Time [%]"] for r in runs}
    ticks = {r.exposure_ticks for r in runs}
    assert len(exposures) == 1 and len(ticks) == 1
    (exposed_ticks, all_ticks), = ticks
    assert all_ticks == len(data.to_frame()["ts"].unique()) and 0 < exposed_ticks < all_ticks
    # Sampled at every bar, it is the share of the samples.
    every = runs[1].equity_frame
    share = float(np.mean(exposed(every["gross_exposure"].to_numpy(), every["equity"].to_numpy())))
    assert runs[0].stats["Exposure Time [%]"] == share * 100.0


def test_a_batchs_rows_count_as_their_runs_alone():
    # run_batch's rows come from the engines' counts without building results.
    data = intraday_data(seed=2)
    rows = run_batch(SmaCross, data, params={"fast": [5, 10]},
                                    portfolio=True, cache=False, cash=100_000, on_reject="ignore")
    for fast in (5, 10):
        single = tickstep.Backtest(data, SmaCross, cash=100_000,
                                   on_reject="ignore").run(fast=fast)
        row = rows.loc[rows["fast"] == fast, "Exposure Time [%]"]
        assert list(row) == [single.stats["Exposure Time [%]"]]
        assert 0 < single.stats["Exposure Time [%]"] < 100


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 1000), n=st.integers(1, 3))
def test_any_run_counts_the_same_whatever_the_sampling(seed, n):
    rng = np.random.default_rng(seed)
    draws = {k: rng.random((2000, 2)) for k in range(n)}

    class Drawn(tickstep.Strategy):
        def next(self, symbol):
            u, v = draws[self.symbols.index(symbol)][len(self.data) - 1]
            if u < 0.02:
                self.buy(size=1 + int(v * 5))
            elif u < 0.04:
                self.sell(size=1 + int(v * 5))
            elif u < 0.08 and self.position:
                self.position.close()

    data = intraday_data(n, days=3, seed=seed)
    day_ends = tickstep.Backtest(data, Drawn, on_reject="ignore").run()
    every = tickstep.Backtest(data, Drawn, on_reject="ignore", record_every_bar=True).run()
    assert day_ends.stats["Exposure Time [%]"] == every.stats["Exposure Time [%]"]
    frame = every.equity_frame
    share = float(np.mean(exposed(frame["gross_exposure"].to_numpy(), frame["equity"].to_numpy())))
    assert every.stats["Exposure Time [%]"] == share * 100.0


def test_a_walk_forward_counts_its_test_windows_ticks(tmp_path):
    data = intraday_data(2, days=30, seed=3)
    bt = tickstep.Backtest(data, SmaCross, cash=100_000, on_reject="ignore")
    wf = bt.walk_forward(train="10D", test="5D", maximize="Return [%]", fast=[5, 10], cache=False)
    counted = [r.exposure_ticks for r in wf.results]
    exposed_ticks, ticks = sum(c[0] for c in counted), sum(c[1] for c in counted)
    assert wf.stats["Exposure Time [%]"] == exposed_ticks / ticks * 100.0
    # Kept through saving.
    one = wf.results[0]
    back = tickstep.load_result(one.save(tmp_path / "w"))
    assert back.exposure_ticks == one.exposure_ticks
    assert json.loads((tmp_path / "w" / "result.json").read_text())["exposure_ticks"] == list(
        one.exposure_ticks)


def test_each_symbols_ticks_and_a_sectors_union_by_hand():
    # X bought at bar 1's open and closed at bar 3's (held at the ends of ticks 1 and 2);
    # Y bought at bar 5's open (the second day's second bar) and held to the end (ticks 5,
    # 6, 7). Day-end samples would see X never and Y once of two.
    from tickstep.report import sector_breakdown, symbol_breakdown

    script = {("X", 0): buy(10), ("X", 2): close_position, ("Y", 4): buy(5)}
    r = run_script({"X": two_days(), "Y": two_days()}, script, record_every_bar=False)
    spans = r.holding_spans
    assert [(str(s), a, b) for s, a, b in zip(spans["symbol"], spans["from_tick"], spans["to_tick"])] == [
        ("X", 1, 3), ("Y", 5, 8)]
    assert r.exposure_ticks == (5, 8) and r.stats["Exposure Time [%]"] == 62.5
    table = symbol_breakdown(r)
    assert list(table["Exposure Time [%]"]) == [25.0, 37.5]
    r.metadata = pd.DataFrame({"sector": ["Tech", "Tech"]}, index=pd.Index(["X", "Y"], name="symbol"))
    assert sector_breakdown(r).loc["Tech", "Exposure Time [%]"] == 62.5


@settings(max_examples=10, deadline=None, derandomize=True)
@given(seed=st.integers(0, 1000), n=st.integers(2, 4))
def test_the_symbols_spans_cover_the_accounts_exposed_ticks(seed, n):
    from tickstep.report import sector_breakdown, symbol_breakdown

    data = intraday_data(n, days=3, seed=seed)
    up, down = crossing(data)
    r = tickstep.Backtest(data, cash=100_000, on_reject="ignore").run_signals(
        up, down, short_entries=down, short_exits=up, size=0.2)
    spans = r.holding_spans
    ticks = np.zeros(r.exposure_ticks[1], dtype=bool)
    for a, b in zip(spans["from_tick"], spans["to_tick"]):
        ticks[a:b] = True
    assert int(ticks.sum()) == r.exposure_ticks[0]
    # One sector of them all is the account.
    r.metadata = pd.DataFrame({"sector": ["All"] * n}, index=pd.Index(r.symbols, name="symbol"))
    assert sector_breakdown(r).loc["All", "Exposure Time [%]"] == pytest.approx(
        r.stats["Exposure Time [%]"], rel=1e-12)
    held = symbol_breakdown(r)["Exposure Time [%]"]
    assert (held <= r.stats["Exposure Time [%]"] + 1e-9).all() and held.sum() >= r.stats["Exposure Time [%]"] - 1e-9


def test_a_result_saved_before_the_spans_counts_its_samples(tmp_path):
    from tickstep.report import symbol_breakdown

    r = tickstep.Backtest(intraday_data(seed=5), SmaCross, on_reject="ignore",
                          record_every_bar=True).run()
    path = r.save(tmp_path / "run")
    (path / "holding_spans.parquet").unlink()
    meta = json.loads((path / "result.json").read_text())
    meta["tables"].remove("holding_spans")
    (path / "result.json").write_text(json.dumps(meta | {"version": 4}))
    back = tickstep.load_result(path)
    assert back.holding_spans is None
    frame = back.equity_frame
    share = exposed(frame["gross_exposure"].to_numpy(), frame["equity"].to_numpy())
    values = np.abs(tickstep.report.position_values(back).to_numpy()) > 0
    np.testing.assert_array_equal(symbol_breakdown(back)["Exposure Time [%]"].to_numpy(),
                                  values.mean(axis=0) * 100.0)
    assert share.any()


def spans_of(r):
    spans = r.holding_spans
    return [(str(s), a, b) for s, a, b in zip(spans["symbol"], spans["from_tick"], spans["to_tick"])]


def test_a_lot_trimmed_added_to_and_reopened_is_held_until_its_last_unit_goes():
    # X: 10 bought at bar 1's open, 4 sold at bar 2's (a trade of 4 closed, the lot still
    # open), 5 more at bar 3's (a second lot), all closed at bar 5's: held at the ends of
    # ticks 1 to 4. Then 3 bought at bar 5's open as well (placed after the close, same
    # tick: the tick ends held) and held to the end: one span, ticks 1 to 7.
    from test_engine_fills import sell
    from tickstep.report import symbol_breakdown

    def close_then_buy(s, sym):
        s.position.close()
        s.buy(size=3)

    script = {("X", 0): buy(10), ("X", 1): sell(4), ("X", 2): buy(5), ("X", 4): close_then_buy}
    r = run_script({"X": two_days()}, script, record_every_bar=False)
    assert len(r.trades) == 3  # 4, then 6 and 5 closed
    assert spans_of(r) == [("X", 1, 8)]
    assert r.exposure_ticks == (7, 8)
    assert list(symbol_breakdown(r)["Exposure Time [%]"]) == [87.5]


def test_the_spans_are_kept_whatever_is_read_first(tmp_path):
    data = intraday_data(2, days=3, seed=4)
    up, down = crossing(data)

    def run():
        return tickstep.Backtest(data, cash=100_000, on_reject="ignore").run_signals(up, down, size=0.3)

    first = run()
    spans = first.holding_spans
    assert len(spans) > 5
    trades_first = run()
    trades_first.trades  # noqa: B018 - the core's trade log exported before the spans are asked
    pd.testing.assert_frame_equal(trades_first.holding_spans, spans, check_exact=True)
    pickled = run()
    import pickle

    pd.testing.assert_frame_equal(pickle.loads(pickle.dumps(pickled)).holding_spans, spans, check_exact=True)
    saved = tickstep.load_result(run().save(tmp_path / "r"))
    pd.testing.assert_frame_equal(saved.holding_spans, spans, check_exact=True)
    pd.testing.assert_frame_equal(saved.to_arrow("holding_spans").to_pandas().astype({"symbol": str}),
                                  spans.astype({"symbol": str}), check_exact=True)
