"""Symbols that stop trading (``close_delisted=True``), hand-computed: a symbol whose bars
end before the run's last day has its working orders cancelled and its position closed at
its last bar's close. Bars are daily from 2024-01-01 (bar i is day i + 1).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import following, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy

EXACT = dict(rel=1e-12, abs=1e-9)
DELISTED = ("its symbol stopped trading (close_delisted): its orders cancelled, its position "
            "closed at its last bar's close")


def bars(closes, start="2024-01-01", freq="D"):
    index = pd.date_range(start, periods=len(closes), freq=freq, tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1e5}, index=index)


# AAA trades all six days; BBB stops after day 4.
DATA = {"AAA": bars([10, 10, 11, 12, 13, 14]), "BBB": bars([20, 20, 22, 25])}


def both(s, sym):
    s.buy(size=10)
    s.buy(size=5, limit=1.0)   # never fills


def test_a_symbol_that_stops_trading_is_closed_at_its_last_close():
    # BBB: 10 bought at day 2's open (20), closed at day 4's close (25): +50 - 2 x 1.00;
    # its limit cancelled. AAA: 10 bought at 10, held: its limit stays open.
    r = run_script(DATA, {0: both}, cash=10_000, commission_fixed=1.0, close_delisted=True)
    bbb = r.orders[r.orders["symbol"] == "BBB"]
    assert bbb["status"].tolist() == ["filled", "cancelled", "filled"]
    assert bbb["reason"].tolist() == ["", DELISTED, DELISTED]
    assert bbb["closed_time"].dt.day.tolist() == [2, 4, 4]
    closing = r.fills[r.fills["symbol"] == "BBB"].iloc[-1]
    assert (closing["side"], closing["size"], closing["price"], closing["role"]) == ("sell", 10, 25, "close")
    assert r.trades.set_index("symbol").loc["BBB", "pnl"] == pytest.approx(48.0, **EXACT)
    assert r.orders[r.orders["symbol"] == "AAA"]["status"].tolist() == ["filled", "open"]
    # Cash: 10,000 - 2 x 1 - 100 - 200 + 250 - 1 = 9,947; AAA's 10 at 14 at the end.
    assert r.equity_frame["cash"].iloc[-1] == pytest.approx(9_947.0, **EXACT)
    assert list(r.equity) == pytest.approx([10_000, 9_998, 10_028, 10_067, 10_077, 10_087], **EXACT)
    assert list(r.positions.index) == ["AAA"]


def test_off_the_position_stays_to_the_end_at_its_last_close():
    r = run_script(DATA, {0: both}, cash=10_000, commission_fixed=1.0)
    assert r.positions.loc["BBB", "size"] == 10 and r.positions.loc["BBB", "last_price"] == 25
    assert (r.orders["status"] == "open").sum() == 2
    # The same equity but the closing fill's commission: 10,088 against 10,087.
    assert r.equity.iloc[-1] == pytest.approx(10_088.0, **EXACT)


def test_the_freed_cash_buys_what_the_held_position_could_not():
    # 450 of BBB at 20 (9,000 of 10,000), which stops on day 4; on day 5 the strategy
    # spends its cash on AAA (at most 15 a share): with BBB closed at 25, 1,000 + 11,250 =
    # 12,250 buys 816; with BBB held to the end, 1,000 buys 66.
    def spend(s, sym):
        s.buy(size=int(s.cash // 15))

    script = {("BBB", 0): lambda s, sym: s.buy(size=450), ("AAA", 4): spend}
    closed = run_script(DATA, script, cash=10_000, close_delisted=True)
    held = run_script(DATA, script, cash=10_000)
    assert closed.fills[closed.fills["symbol"] == "AAA"]["size"].tolist() == [816]
    assert held.fills[held.fills["symbol"] == "AAA"]["size"].tolist() == [66]


def test_a_symbol_with_bars_on_the_last_day_trades_to_the_end():
    # Hourly bars: BBB's last bar is at 14:00 of the last day, AAA's at 16:00: BBB trades
    # to the end (a thin symbol's last bar some hours early), its position kept.
    data = {"AAA": bars([10, 10, 11, 12, 13], start="2024-01-02 12:00", freq="h"),
            "BBB": bars([20, 20, 22], start="2024-01-02 12:00", freq="h")}
    r = run_script(data, {0: buy(10)}, cash=10_000, close_delisted=True)
    assert sorted(r.positions.index) == ["AAA", "BBB"]
    # On the exchange's days in New York, the same.
    r = run_script(data, {0: buy(10)}, cash=10_000, close_delisted=True,
                   timezone="America/New_York")
    assert sorted(r.positions.index) == ["AAA", "BBB"]


def test_signals_mode_closes_the_same_positions():
    # AAA is held from day 1 (parked by the sparse driver, no signal until the end); BBB
    # enters on day 2 and is held into its last bar: both runs close it there, bit for bit.
    index = DATA["AAA"].index
    entries = pd.DataFrame({"AAA": [True] + [False] * 5, "BBB": [False, True] + [False] * 4},
                           index=index)
    exits = pd.DataFrame({"AAA": [False] * 6, "BBB": [False] * 6}, index=index)
    data = {"AAA": DATA["AAA"], "BBB": DATA["BBB"]}
    bt = tickstep.Backtest(data, following(entries, exits, 10), close_delisted=True,
                           record_every_bar=True, commission=0.001)
    native = bt.run_signals(entries=entries, exits=exits, size=10, size_type="amount")
    by_hand = bt.run()
    assert native.fills["price"].tolist() == by_hand.fills["price"].tolist() == [10, 22, 25]
    pd.testing.assert_series_equal(native.equity, by_hand.equity, check_exact=True)
    pd.testing.assert_series_equal(native.stats, by_hand.stats, check_exact=True)
    table = bt.run_signal_grid({"one": {"entries": entries, "exits": exits}}, size=10,
                               size_type="amount")
    assert table.loc["one", "Equity Final [$]"] == native.stats["Equity Final [$]"]


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(3, 30), min_size=3, max_size=3))
def test_each_position_ends_at_its_symbols_last_close(seed, lengths):
    # Three symbols ending on random days, random entries and exits (signals mode and the
    # event-driven run of the same rules): no position is left in a symbol that stopped
    # trading; every delisting's fill is at its symbol's last close; the two runs agree.
    rng = np.random.default_rng(seed)
    data = {f"S{k}": bars(50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))) for k, n in
            enumerate([*lengths, 30])}
    index = data["S3"].index
    entries = pd.DataFrame({s: rng.random(30) < 0.15 for s in data}, index=index)
    exits = pd.DataFrame({s: rng.random(30) < 0.1 for s in data}, index=index) & ~entries
    bt = tickstep.Backtest(data, following(entries, exits, 3), close_delisted=True,
                           cash=1_000_000, record_every_bar=True)
    # (The strategy adds to a position at each entry: signals mode with accumulate=True.)
    native = bt.run_signals(entries=entries, exits=exits, size=3, size_type="amount",
                            accumulate=True)
    by_hand = bt.run()
    pd.testing.assert_series_equal(native.equity, by_hand.equity, check_exact=True)
    ended = [s for s, n in zip(data, [*lengths, 30], strict=True) if n < 30]
    assert not set(native.positions.index) & set(ended)
    o = native.orders
    for _, order in o[(o["reason"] == DELISTED) & (o["status"] == "filled")].iterrows():
        assert order["fill_price"] == data[order["symbol"]]["close"].iloc[-1]


class BothAtFirstBar(tickstep.Strategy):
    """`both` at each symbol's first bar (no read of the whole history: streamable)."""

    def init(self):
        self.seen = set()

    def next(self, symbol):
        if symbol not in self.seen:
            self.seen.add(symbol)
            both(self, symbol)


@pytest.mark.parametrize("window", ["1D", "2D", "7D"])
def test_a_streamed_run_closes_the_same_positions(window, tmp_path):
    # Windows of one, two and all days, from memory and from a store: each symbol's last
    # bar is found before the first window, and the runs are the one in memory, exactly.
    terms = dict(cash=10_000, commission_fixed=1.0, close_delisted=True)
    in_memory = tickstep.Backtest(DATA, BothAtFirstBar, **terms).run()
    assert (in_memory.orders["reason"] == DELISTED).sum() == 2
    store = tickstep.data.Store(tmp_path / "bars.duckdb", read_only=False)
    store.ingest(tickstep.data.resolve(DATA))
    for data in (DATA, store):
        streamed = tickstep.Backtest(data, BothAtFirstBar, stream=window, **terms).run()
        pd.testing.assert_series_equal(streamed.equity, in_memory.equity, check_exact=True)
        pd.testing.assert_frame_equal(streamed.orders, in_memory.orders, check_exact=True)
        pd.testing.assert_frame_equal(streamed.fills, in_memory.fills, check_exact=True)
    store.close()


def test_only_the_symbols_named_are_closed_when_their_bars_end():
    # BBB and CCC both stop early; only BBB is named as delisted: CCC's position stays,
    # marked at its last close (a gap in its data, say), its orders working.
    data = {**DATA, "CCC": bars([30, 30, 33])}
    r = run_script(data, {0: both}, cash=10_000, close_delisted=["BBB"])
    closed = r.orders[r.orders["reason"] == DELISTED]
    assert set(closed["symbol"]) == {"BBB"}
    assert sorted(r.positions.index) == ["AAA", "CCC"]
    everyone = run_script(data, {0: both}, cash=10_000, close_delisted=True)
    assert sorted(everyone.positions.index) == ["AAA"]
    # None named: as off.
    none = run_script(data, {0: both}, cash=10_000, close_delisted=[])
    assert sorted(none.positions.index) == ["AAA", "BBB", "CCC"]


def test_the_symbols_named_are_the_datas_and_kept_sorted():
    assert tickstep.BacktestConfig(close_delisted=["BBB", "AAA"]).close_delisted == ("AAA", "BBB")
    with pytest.raises(tickstep.UnknownSymbolError, match=r"close_delisted: 'BB' is not a symbol"):
        tickstep.Backtest(DATA, tickstep.Strategy, close_delisted=["BB"])
    with pytest.raises(tickstep.ConfigError, match="close_delisted='BBB'"):
        tickstep.BacktestConfig(close_delisted="BBB")


@pytest.mark.parametrize("window", ["1D", "2D"])
def test_a_streamed_run_closes_only_the_symbols_named(window):
    data = {**DATA, "CCC": bars([30, 30, 33])}
    whole = tickstep.Backtest(data, _Both, close_delisted=["CCC"]).run()
    streamed = tickstep.Backtest(data, _Both, close_delisted=["CCC"], stream=window).run()
    pd.testing.assert_frame_equal(streamed.fills, whole.fills)
    assert sorted(whole.positions.index) == ["AAA", "BBB"]


class _Both(tickstep.Strategy):
    def init(self):
        self.placed = set()

    def next(self, symbol):
        if symbol not in self.placed:
            self.placed.add(symbol)
            self.buy(size=10)


def test_the_symbols_named_on_the_command_line_and_over_http():
    # The option is a flag or its symbols, as shortable: true/false or names by commas.
    from tickstep.cli._common import parse_engine_options
    from tickstep.service.options import FLAG_OR_SYMBOLS, check_config

    assert "close_delisted" in FLAG_OR_SYMBOLS
    assert parse_engine_options(["close_delisted=LEH,BSC"]) == {"close_delisted": ["LEH", "BSC"]}
    assert parse_engine_options(["close_delisted=true"]) == {"close_delisted": True}
    assert check_config({"close_delisted": ["LEH"]}).close_delisted == ("LEH",)
