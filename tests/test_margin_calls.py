"""Margin calls (``maintenance_margin=``), hand-computed: every expected number is worked
out in the comments. Bars are daily from 2024-01-01 (bar i is at ``T(i)``); the scripted
strategy acts at a symbol's i-th bar (see ``conftest.Scripted``).

The rule: at a tick whose closes put equity at zero or below, or below
``maintenance_margin`` x gross exposure, the broker cancels every working order and
closes every position at its latest close, before the strategy's turn at that tick.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, sell
from tickstep import ConfigError

EXACT = dict(rel=1e-12, abs=1e-9)


def T(i: int) -> pd.Timestamp:
    return pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=i)


def approx(x):
    return pytest.approx(x, **EXACT)


def flat(closes):
    """Bars whose open, high, low and close are each bar's close: an order fills at the
    next bar's open, which is that bar's close."""
    return make_bars([(c, c, c, c) for c in closes])


def note_position(s, sym):
    s.log.append((len(s.data()) - 1, s.position_size(sym)))


LEVERED_LONG = [100, 100, 90, 80, 70, 70]


def test_equity_below_the_maintenance_margin_closes_the_position_at_that_close():
    # Buy 390 at bar 1's open 100 with leverage 4 (39,000 of 40,000 buying power): cash
    # 10,000 - 39,000 = -29,000. Bar 1 closes at 100: equity 10,000, gross 39,000, and
    # 0.25 x 39,000 = 9,750 <= 10,000: no call. Bar 2 closes at 90: equity -29,000 +
    # 35,100 = 6,100 < 0.25 x 35,100 = 8,775: called, sold at 90. Cash 6,100 after.
    r = run_script(flat(LEVERED_LONG), {0: buy(390)}, cash=10_000, leverage=4,
                   maintenance_margin=0.25)
    assert r.stats["# Margin Calls"] == 1
    assert list(r.fills["time"]) == [T(1), T(2)]
    assert list(r.fills["price"]) == [100.0, 90.0]
    assert list(r.fills["side"]) == ["buy", "sell"]
    call = r.orders.iloc[-1]
    assert (call.status, call.reason, call.placed_time, call.closed_time) == (
        "filled", "margin call: equity fell to the maintenance margin", T(2), T(2))
    t = r.trades.iloc[0]
    assert (t.exit_time, t.exit_price, t.pnl) == (T(2), 90.0, approx(-3_900.0))
    assert list(r.equity) == approx([10_000, 10_000, 6_100, 6_100, 6_100, 6_100])
    assert list(r.equity_frame["cash"]) == approx([10_000, -29_000, 6_100, 6_100, 6_100, 6_100])
    assert r.positions.empty or (r.positions["size"] == 0).all()


def test_by_default_an_account_is_closed_out_when_its_equity_is_gone():
    # The same trade without a maintenance margin: equity 6,100 at 90, 2,200 at 80
    # (-29,000 + 31,200), -1,700 at 70 (-29,000 + 27,300): called there, sold at 70.
    # The debt stays: equity -1,700 to the end.
    r = run_script(flat(LEVERED_LONG), {0: buy(390)}, cash=10_000, leverage=4)
    assert r.stats["# Margin Calls"] == 1
    assert list(r.fills["price"]) == [100.0, 70.0]
    assert r.fills["time"].iloc[-1] == T(4)
    assert list(r.equity) == approx([10_000, 10_000, 6_100, 2_200, -1_700, -1_700])
    assert r.stats["Equity Final [$]"] == approx(-1_700.0)


def test_without_a_call_the_run_is_as_before():
    # Leverage 4 and a maintenance of 0.2: at 90, 6,100 >= 0.2 x 35,100 = 7,020? No:
    # 6,100 < 7,020, a call. With 0.15: 0.15 x 35,100 = 5,265 <= 6,100, and at 80 0.15 x
    # 31,200 = 4,680 > 2,200: a call at 80 instead.
    r = run_script(flat(LEVERED_LONG), {0: buy(390)}, cash=10_000, leverage=4,
                   maintenance_margin=0.15)
    assert list(r.fills["price"]) == [100.0, 80.0]
    # Unlevered and long, an account is never called, whatever the maintenance.
    r = run_script(flat(LEVERED_LONG), {0: buy(95)}, cash=10_000, maintenance_margin=0.9)
    assert r.stats["# Margin Calls"] == 0
    assert len(r.fills) == 1


def test_a_short_squeezed_past_the_maintenance_is_bought_back():
    # Short 95 at bar 1's open 100 (cash 19,500). Equity = 19,500 - 95 x close: at 150
    # 5,250, gross 14,250; 0.4 x 14,250 = 5,700 > 5,250: called at 150, bought back.
    closes = [100, 100, 150, 210, 100]
    r = run_script(flat(closes), {0: sell(95)}, cash=10_000, maintenance_margin=0.4)
    assert list(r.fills["price"]) == [100.0, 150.0]
    assert list(r.fills["side"]) == ["sell", "buy"]
    assert r.trades.iloc[0].pnl == approx(-4_750.0)
    assert r.equity.iloc[-1] == approx(5_250.0)
    # By default: at 210 equity is 19,500 - 19,950 = -450: called there.
    r = run_script(flat(closes), {0: sell(95)}, cash=10_000)
    assert list(r.fills["price"]) == [100.0, 210.0]
    assert r.equity.iloc[-1] == approx(-450.0)


def test_a_call_cancels_every_working_order_and_the_strategy_then_sees_a_flat_account():
    # Bar 0: buy 390 with a stop-loss at 50 and take-profit at 150 (bracket legs once
    # filled), and a resting limit buy at 60. Bar 2 closes at 90: called (as in the first
    # test). The legs and the limit are cancelled with the call's reason; the strategy,
    # called after the broker at bar 2, sees no position.
    script = {0: lambda s, sym: (buy(390, sl=50, tp=150)(s, sym), buy(10, limit=60)(s, sym)),
              1: note_position, 2: note_position, 3: note_position}
    r = run_script(flat(LEVERED_LONG), script, cash=10_000, leverage=4,
                   maintenance_margin=0.25)
    assert r.strategy.log == [(1, 390.0), (2, 0.0), (3, 0.0)]
    cancelled = r.orders[r.orders["status"] == "cancelled"]
    assert len(cancelled) == 3  # the stop-loss, the take-profit and the limit buy
    assert set(cancelled["reason"]) == {"margin call: equity fell to the maintenance margin"}
    assert set(cancelled["closed_time"]) == {T(2)}
    assert r.stats["# Margin Calls"] == 1


def test_a_ruined_account_cannot_trade_again():
    # Called at 70 with equity -1,700 (the default rule); a buy placed at bar 4 after the
    # call is rejected: no buying power is left.
    r = run_script(flat(LEVERED_LONG), {0: buy(390), 4: buy(1)}, cash=10_000, leverage=4,
                   on_reject="ignore")
    assert r.stats["# Orders Rejected"] == 1
    assert r.orders.iloc[-1].reason == "insufficient margin"
    assert r.equity.iloc[-1] == approx(-1_700.0)


def test_the_closing_fill_is_slipped_and_charged_as_any_market_order():
    # Slippage 10 bps: the entry at 100 x 1.001 = 100.1, the call's sale at 90 x 0.999 =
    # 89.91; commission 0.1% of each fill. Cash after the buy: 10,000 - 39,039 - 39.039 =
    # -29,078.039; equity at 90: -29,078.039 + 35,100 = 6,021.961 < 8,775: called.
    r = run_script(flat(LEVERED_LONG), {0: buy(390)}, cash=10_000, leverage=4,
                   maintenance_margin=0.25, slippage=10, commission=0.001)
    sale = r.fills.iloc[-1]
    assert (sale.time, sale.price) == (T(2), approx(89.91))
    assert sale.commission == approx(390 * 89.91 * 0.001)
    expected = -29_078.039 + 390 * 89.91 * (1 - 0.001)
    assert r.equity.iloc[-1] == approx(expected)


def _two_symbols(a: str, b: str):
    # `a` trades every day; `b` has no bar on day 2, when `a`'s close calls the account:
    # `b` is closed at its latest close (day 1's, 50).
    days = pd.date_range("2024-01-01", periods=4, freq="D", tz="UTC")
    fa = make_bars([(c, c, c, c) for c in [100, 100, 60, 60]]).set_axis(days)
    fb = make_bars([(c, c, c, c) for c in [50, 50, 40]]).set_axis(days[[0, 1, 3]])
    script = {(a, 0): buy(200), (b, 0): buy(200)}
    return run_script({a: fa, b: fb}, script, cash=10_000, leverage=3,
                      maintenance_margin=0.2)


def test_a_symbol_without_a_bar_at_the_call_is_closed_at_its_latest_close():
    # Bought at day 1's opens: 200 x 100 + 200 x 50 = 30,000 (cash -20,000). Day 2: `A`
    # closes at 60, `B` has no bar (50 still): equity -20,000 + 12,000 + 10,000 = 2,000
    # < 0.2 x 22,000 = 4,400: called; `A` sold at 60, `B` at 50.
    r = _two_symbols("A", "B")
    sales = r.fills[r.fills["side"] == "sell"].set_index("symbol")
    assert sales.loc["A", "price"] == 60.0 and sales.loc["B", "price"] == 50.0
    assert set(sales["time"]) == {T(2)}
    assert r.equity.iloc[-1] == approx(2_000.0)


def test_the_call_is_the_same_whatever_the_symbols_are_called():
    one, other = _two_symbols("A", "B"), _two_symbols("ZZ", "AA")
    rename = {"ZZ": "A", "AA": "B"}
    a = one.fills.drop(columns=["order_id"]).sort_values(["time", "symbol"])
    b = other.fills.drop(columns=["order_id"]).assign(
        symbol=lambda f: f["symbol"].astype(str).map(rename)).sort_values(["time", "symbol"])
    a = a.assign(symbol=a["symbol"].astype(str))
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))
    assert one.equity.equals(other.equity)


def test_signals_mode_calls_the_account_as_the_event_driven_engine_does():
    # The same levered long by signals: an entry at bar 0 (filled at bar 1's open) for
    # 390 units; called at 90 as above.
    data = {"A": flat(LEVERED_LONG)}
    entries = pd.DataFrame({"A": [True, False, False, False, False, False]},
                           index=data["A"].index)
    bt = tickstep.Backtest(data, cash=10_000, leverage=4, maintenance_margin=0.25,
                           record_every_bar=True)
    r = bt.run_signals(entries=entries, size=390, size_type="amount")
    assert r.stats["# Margin Calls"] == 1
    assert list(r.fills["price"]) == [100.0, 90.0]
    assert list(r.equity) == approx([10_000, 10_000, 6_100, 6_100, 6_100, 6_100])


@pytest.mark.parametrize("value", [1.0, 1.5, -0.1, float("nan"), float("inf"), "0.2", True])
def test_a_maintenance_margin_outside_its_range_is_refused_by_name(value):
    with pytest.raises(ConfigError, match="maintenance_margin"):
        tickstep.BacktestConfig(maintenance_margin=value)


def test_a_native_grid_counts_each_sets_calls_as_its_run_alone():
    # Two sets of 390 units: entered at bar 0 (called at 70, its equity gone), and at bar
    # 3 (bought at bar 4's open 70, which it closes at too: never called).
    data = {"A": flat(LEVERED_LONG)}
    index = data["A"].index
    sets = {key: {"entries": pd.DataFrame({"A": np.arange(6) == bar}, index=index)}
            for key, bar in (("early", 0), ("late", 3))}
    bt = tickstep.Backtest(data, cash=10_000, leverage=4)
    alone = {key: bt.run_signals(**signals, size=390, size_type="amount")
             for key, signals in sets.items()}
    assert alone["early"].stats["# Margin Calls"] == 1
    assert alone["late"].stats["# Margin Calls"] == 0
    table = bt.run_signal_grid(sets, size=390, size_type="amount")
    for key, result in alone.items():
        assert table.loc[key, "# Margin Calls"] == result.stats["# Margin Calls"]
        assert table.loc[key, "Equity Final [$]"] == result.stats["Equity Final [$]"]


# --- a property: calls come exactly where the rule says, on random levered trading -------


class LeveredTrader(tickstep.Strategy):
    """Random market orders of up to twice equity's worth, long or short, and a resting
    limit now and then, on every symbol; seeded by ``seed``."""

    seed = 0

    def init(self):
        self.rng = np.random.default_rng(self.seed)

    def next(self, symbol):
        draw = self.rng.random()
        price = self.price()
        units = float(np.floor(self.rng.uniform(0.2, 2.0) * max(self.equity, 0.0) / price))
        if draw < 0.25 and units > 0:
            self.buy(size=units)
        elif draw < 0.5 and units > 0:
            self.sell(size=units)
        elif draw < 0.6:
            self.buy(size=1, limit=round(price * 0.5, 2))
        elif draw < 0.7:
            self.position.close()


def levered_runs(seed, symbols, columns, run_seed, **options):
    """The levered trader on two symbols' 5-minute bars over four days (random walks of
    closes, each symbol's more columns by ``columns(rng, index)``, which may replace the
    volume), from a store in memory: run whole, and streamed a day at a time."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=4 * 288, freq="5min", tz="UTC")
    rows = []
    for symbol in symbols:
        close = np.round(100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index)))), 2)
        rows.append(pd.DataFrame({"symbol": symbol, "ts": index, "open": close, "high": close,
                                  "low": close, "close": close, "volume": 1.0,
                                  **columns(rng, index)}))
    store = tickstep.data.Store()
    store.ingest(pd.concat(rows, ignore_index=True))
    whole = tickstep.Backtest(store, LeveredTrader, **options).run(seed=run_seed)
    streamed = tickstep.Backtest(store, LeveredTrader, stream="1D", **options).run(seed=run_seed)
    return whole, streamed


def _random_market(seed, symbols, ticks):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=ticks, freq="D", tz="UTC")
    frames = {}
    for k in range(symbols):
        keep = rng.random(ticks) >= 0.2
        keep[0] = True
        close = np.round(50 * np.exp(np.cumsum(rng.normal(0, 0.06, ticks))), 2)
        frames[f"S{k}"] = make_bars([(c, c, c, c) for c in close]).set_axis(index)[keep]
    return frames


@settings(max_examples=120, derandomize=True, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), symbols=st.integers(1, 3), ticks=st.integers(5, 60),
       maintenance=st.sampled_from([0.0, 0.1, 0.3]), leverage=st.sampled_from([2.0, 5.0]))
def test_calls_come_exactly_where_equity_falls_to_the_maintenance_margin(
        seed, symbols, ticks, maintenance, leverage):
    frames = _random_market(seed, symbols, ticks)
    r = tickstep.Backtest(frames, LeveredTrader, cash=10_000, leverage=leverage,
                          maintenance_margin=maintenance, record_every_bar=True,
                          on_reject="ignore", commission=0.001).run(seed=seed)
    called = "margin call: equity fell to the maintenance margin"
    eq = r.equity_frame
    calls = r.orders[(r.orders["reason"] == called) & (r.orders["status"] == "filled")]
    call_times = set(calls["closed_time"])
    assert r.stats["# Margin Calls"] == len(call_times)
    # Between calls the account is above the line at every tick's closes: orders fill at
    # the opens (no trade on close, no carrying costs), so the sample at a tick is the
    # account the broker checked there.
    for t, row in eq.iterrows():
        if t in call_times:
            assert row["gross_exposure"] == 0.0  # everything closed at that tick
        elif row["gross_exposure"] > 0:
            assert row["equity"] > 0 and row["equity"] >= maintenance * row["gross_exposure"], t
    fills = r.fills.set_index("order_id")
    for t in call_times:
        closing = fills.loc[calls[calls["closed_time"] == t]["order_id"]]
        # Each position closed at its symbol's latest close at or before the call.
        for _, f in closing.iterrows():
            bars = frames[f["symbol"]]
            assert f["price"] == bars["close"][bars.index <= t].iloc[-1]
        # The account as the broker saw it: closing at the marks changes equity only by
        # the closes' commissions.
        before = eq.loc[t, "equity"] + closing["commission"].sum()
        gross = (closing["size"] * closing["price"]).sum()
        assert before <= 1e-6 * gross or before < maintenance * gross * (1 + 1e-12), t
        # Every order still working then was cancelled by the call.
        working = r.orders[(r.orders["placed_time"] < t) & (r.orders["closed_time"].isna()
                                                            | (r.orders["closed_time"] > t))]
        assert working.empty
        cancelled = r.orders[(r.orders["closed_time"] == t) & (r.orders["status"] == "cancelled")]
        assert set(cancelled["reason"]) <= {called}


def test_the_random_levered_trading_is_called_often():
    """The property above meets calls of both kinds (equity gone, and below maintenance)."""
    counts = {0.0: 0, 0.3: 0}
    for seed in range(30):
        frames = _random_market(seed, 2, 60)
        for maintenance in counts:
            r = tickstep.Backtest(frames, LeveredTrader, cash=10_000, leverage=5.0,
                                  maintenance_margin=maintenance,
                                  on_reject="ignore").run(seed=seed)
            counts[maintenance] += int(r.stats["# Margin Calls"])
    assert counts[0.0] > 1 and counts[0.3] > 20, counts
