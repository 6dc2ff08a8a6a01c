"""Signals mode: hand-checked runs, the equivalence with a Python strategy placing the same
orders in ``next`` (hypothesis), the grid against runs alone, and refusals of bad input."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tickstep.signals import SIGNAL_KINDS


class ByHand(tickstep.Strategy):
    """The signals-mode rules written as a user would, with orders placed in ``next``."""

    signals = None
    rules = None

    def init(self):
        self.bar = dict.fromkeys(self.symbols, -1)

    def next(self, symbol):
        self.bar[symbol] += 1
        i = self.bar[symbol]

        def at(kind):
            column = (self.signals.get(kind) or {}).get(symbol)
            return column is not None and bool(column[i])

        exit_long, exit_short = at("exits"), at("short_exits")
        long_entry = at("entries") and not exit_long
        short_entry = at("short_entries") and not exit_short
        want = 1 if long_entry and not short_entry else -1 if short_entry and not long_entry else 0
        held = self.position_size(symbol)
        if (held > 0 and (exit_long or want < 0)) or (held < 0 and (exit_short or want > 0)):
            self.close(symbol)
        if (want > 0 and held <= 0) or (want < 0 and held >= 0):
            r = self.rules
            price = self.price(symbol)
            units = {"amount": r["size"], "value": r["size"] / price,
                     "percent": r["size"] * self.equity / price}[r["size_type"]]
            if not (math.isfinite(units) and units > 0):
                return
            long = want > 0
            sl = None if r["sl"] is None else price * (1 - r["sl"]) if long else price * (1 + r["sl"])
            tp = None if r["tp"] is None else price * (1 + r["tp"]) if long else price * (1 - r["tp"])
            (self.buy if long else self.sell)(symbol, size=units, sl=sl, tp=tp)


def _frames(result):
    return result.fills, result.trades, result.equity.to_frame()


def assert_same_run(a, b):
    for x, y in zip(_frames(a), _frames(b)):
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y.reset_index(drop=True),
                                      check_exact=True)
    pd.testing.assert_series_equal(a.stats.drop(["Strategy"], errors="ignore"),
                                   b.stats.drop(["Strategy"], errors="ignore"), check_exact=True)


def test_hand_checked_long_entry_exit_and_value_sizing():
    # Opens 100, 110, 120, 90, 95; each close equals the next open.
    rows = [(100, 111, 99, 110), (110, 121, 109, 120), (120, 121, 89, 90), (90, 96, 89, 95),
            (95, 96, 94, 95)]
    bt = tickstep.Backtest(make_bars(rows), tickstep.Strategy, commission=0.001)
    result = bt.run_signals(entries=np.array([True, False, False, False, False]),
                            exits=np.array([False, True, False, False, False]),
                            size=1_100.0, size_type="value")
    fills = result.fills
    # 1 100 / close 110 = 10 units at bar 1's open 110; the exit decided on bar 1 fills at
    # bar 2's open 120. P&L 10 x 10 = 100, commission 0.1% of 1 100 + 1 200 = 2.3.
    assert list(fills["price"]) == [110.0, 120.0]
    assert list(fills["size"]) == [10.0, 10.0]
    trade = result.trades.iloc[0]
    assert trade["pnl"] == pytest.approx(100.0 - 2.3)
    assert result.stats["Equity Final [$]"] == pytest.approx(10_000 + 100 - 2.3)
    assert result.stats["# Trades"] == 1


def test_stops_short_side_and_percent_sizing_by_hand():
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (100, 111, 99, 104), (104, 105, 103, 104)]
    bt = tickstep.Backtest(make_bars(rows), tickstep.Strategy)
    result = bt.run_signals(short_entries=np.array([True, False, False, False]),
                            size=0.5, size_type="percent", sl=0.1)
    # 0.5 x 10 000 / 100 = 50 units sold at bar 1's open; stop at 100 x 1.1 = 110, touched
    # by bar 2's high 111: covered at 110, a loss of 50 x 10.
    assert list(result.fills["price"]) == pytest.approx([100.0, 110.0])
    assert result.trades.iloc[0]["pnl"] == pytest.approx(-500.0)
    assert result.trades.iloc[0]["side"] == "short"


@st.composite
def markets_and_signals(draw):
    n_symbols = draw(st.integers(1, 3))
    data, signals = {}, {k: {} for k in SIGNAL_KINDS}
    for s in range(n_symbols):
        n = draw(st.integers(3, 40))
        start = draw(st.integers(0, 5))
        steps = draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
        closes = 100 * np.exp(np.cumsum(steps))
        opens = np.concatenate([[100.0], closes[:-1]])
        rows = [(o, max(o, c) * 1.02, min(o, c) * 0.98, c) for o, c in zip(opens, closes)]
        name = f"S{s}"
        data[name] = make_bars(rows, start=f"2024-01-{1 + start:02d}")
        for kind in SIGNAL_KINDS:
            if draw(st.booleans()):
                signals[kind][name] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    size_type = draw(st.sampled_from(["amount", "value", "percent"]))
    size = {"amount": draw(st.floats(1, 40)), "value": draw(st.floats(100, 6_000)),
            "percent": draw(st.floats(0.05, 1.0))}[size_type]
    sl = draw(st.none() | st.floats(0.01, 0.2))
    tp = draw(st.none() | st.floats(0.01, 0.2))
    options = {"commission": draw(st.sampled_from([0.0, 0.001])),
               "trade_on_close": draw(st.booleans()), "record_every_bar": True}
    return data, signals, {"size": size, "size_type": size_type, "sl": sl, "tp": tp}, options


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets_and_signals())
def test_signals_run_equals_the_same_orders_placed_in_next(case):
    data, signals, rules, options = case
    if not signals["entries"] and not signals["short_entries"]:
        signals["entries"] = {name: np.ones(len(df), dtype=bool) for name, df in data.items()}
    bt = tickstep.Backtest(data, ByHand, on_reject="ignore", **options)
    native = bt.run_signals(**signals, **rules)
    by_hand = bt.run(signals=signals, rules=rules)
    assert_same_run(native, by_hand)


def test_dataframe_by_time_equals_per_symbol_arrays_and_grid_rows_equal_runs_alone():
    rng = np.random.default_rng(7)
    data = {}
    for name, n, start in (("A", 60, "2024-01-01"), ("B", 45, "2024-01-10")):
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        opens = np.concatenate([[100.0], closes[:-1]])
        data[name] = make_bars([(o, max(o, c) * 1.01, min(o, c) * 0.99, c)
                                for o, c in zip(opens, closes)], start=start)
    bt = tickstep.Backtest(data, tickstep.Strategy, on_reject="ignore")
    union = data["A"].index.union(data["B"].index)
    sets = {}
    for k in range(4):
        frame = pd.DataFrame(rng.random((len(union), 2)) < 0.15, index=union, columns=["A", "B"])
        sets[(k, "x")] = {"entries": frame, "exits": frame.shift(2, fill_value=False)}
    first = sets[(0, "x")]
    by_arrays = {kind: {s: first[kind][s].reindex(data[s].index).to_numpy() for s in "AB"}
                 for kind in first}
    assert_same_run(bt.run_signals(**first), bt.run_signals(**by_arrays))
    table = bt.run_signal_grid(sets, threads=2)
    assert list(table.index) == list(sets)
    assert table["# Trades"].sum() > 0
    for key, sig in sets.items():
        alone = bt.run_signals(**sig).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)


def test_bad_signals_are_refused_by_name():
    a = make_bars([(100, 101, 99, 100)] * 5)
    b = make_bars([(100, 101, 99, 100)] * 4)
    bt = tickstep.Backtest({"A": a, "B": b}, tickstep.Strategy)
    with pytest.raises(tickstep.ConfigError, match=r"entries\['B'\]: 5 signals for its 4 bars"):
        bt.run_signals(entries={"A": np.ones(5, bool), "B": np.ones(5, bool)})
    with pytest.raises(tickstep.ConfigError, match=r"must be booleans .* got dtype int64"):
        bt.run_signals(entries={"A": np.ones(5, dtype=np.int64)})
    with pytest.raises(tickstep.ConfigError, match=r"'C' is not a symbol"):
        bt.run_signals(entries=pd.DataFrame({"C": [True] * 5}, index=a.index))
    with pytest.raises(tickstep.ConfigError, match=r"column 'A': no row for the bar at 2024-01-05"):
        bt.run_signals(entries=pd.DataFrame({"A": [True] * 4}, index=a.index[:4]))
    with pytest.raises(tickstep.ConfigError, match=r"shape \(bars, 2 symbols\)"):
        bt.run_signals(entries=np.ones((5, 3), bool))
    with pytest.raises(tickstep.ConfigError, match=r"size_type='shares'"):
        bt.run_signals(entries={"A": np.ones(5, bool)}, size_type="shares")
    with pytest.raises(tickstep.ConfigError, match=r"sl = 1.5"):
        bt.run_signals(entries={"A": np.ones(5, bool)}, sl=1.5)
    with pytest.raises(tickstep.ConfigError, match=r"give entries and/or short_entries"):
        bt.run_signals(exits={"A": np.ones(5, bool)})
    with pytest.raises(tickstep.ConfigError, match=r"unknown signal 'entry'"):
        bt.run_signal_grid({1: {"entry": {"A": np.ones(5, bool)}}})
