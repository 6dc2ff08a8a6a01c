"""Signals mode: hand-checked runs, the equivalence with a Python strategy placing the same
orders in ``next`` (hypothesis), the grid against runs alone, and refusals of bad input."""

from __future__ import annotations

import math
import tracemalloc
from typing import NamedTuple

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tickstep.signals import CONFLICT_RULES, PRICE_KINDS, SIGNAL_KINDS, signal_columns
from tickstep.sizing import order_to_target, round_to_lot


class ByHand(tickstep.Strategy):
    """The signals-mode rules written as a user would, with orders placed in ``next``."""

    signals = None
    rules = None

    def init(self):
        self.bar = dict.fromkeys(self.symbols, -1)
        self.bar_at = {s: {} for s in self.symbols}  # each bar's index by its time
        # With time exits of the symbols' own: the one the position held keeps, the
        # number on the bar of the entry placed while flat or reversing.
        self.hold_for = dict.fromkeys(self.symbols)

    def next(self, symbol):
        self.bar[symbol] += 1
        i = self.bar[symbol]
        self.bar_at[symbol][self.now] = i

        def column(kind):
            return (self.signals.get(kind) or {}).get(symbol)

        def at(kind):
            c = column(kind)
            return c is not None and bool(c[i])

        # Sizes per bar, when given: NaN or 0 means no entry on that bar.
        sizes = column("size")
        size = self.rules["size"] if sizes is None else float(sizes[i])
        sized = size > 0
        # A time exit: the oldest open trade entered `exit_after_bars` bars ago or more.
        held = self.position_size(symbol)
        own_time_exits = "exit_after_bars" in self.signals
        n = self.hold_for[symbol] if own_time_exits else self.rules.get("exit_after_bars")
        trades = self.open_trades(symbol) if n is not None and held != 0 else []
        timed_out = bool(trades) and i - self.bar_at[symbol][min(t["entry_ts"] for t in trades)] >= n
        r = self.rules
        long_entry, exit_long = at("entries") and sized, at("exits")
        short_entry, exit_short = at("short_entries") and sized, at("short_exits")
        # An entry and an exit of one side together: the exit acts (or as `conflict` says).
        reading = {"exit": (False, True), "entry": (True, False), "ignore": (False, False)}
        conflict = reading[r.get("conflict", "exit")]
        if long_entry and exit_long:
            long_entry, exit_long = conflict
        if short_entry and exit_short:
            short_entry, exit_short = conflict
        # The time exit is the rules' own: it exits whatever the signals say.
        if timed_out and held > 0:
            long_entry, exit_long = False, True
        if timed_out and held < 0:
            short_entry, exit_short = False, True
        # Both entries together: neither (or the side `side_conflict` names).
        side = r.get("side_conflict", "ignore")
        want = (1 if long_entry and (not short_entry or side == "long")
                else -1 if short_entry and (not long_entry or side == "short") else 0)
        # An exit signal closes its portion of the position (the symbol's own on the bar,
        # NaN: all; else the run's); a time exit or an entry against the position acting
        # on it (reversing or closing it), all of it.
        if timed_out or (held * want < 0 and r.get("opposite_entry", "reverse") != "ignore"):
            portion = 1.0
        elif "exit_portion" in self.signals:
            own = column("exit_portion")
            portion = 1.0 if own is None or math.isnan(own[i]) else float(own[i])
        else:
            portion = r.get("exit_portion") or 1.0
        # An entry against the position reverses it (or only closes it, or does nothing).
        if held * want < 0 and r.get("opposite_entry", "reverse") != "reverse":
            if r["opposite_entry"] == "close":
                exit_long, exit_short = exit_long or held > 0, exit_short or held < 0
            want = 0
        exits = (held > 0 and exit_long) or (held < 0 and exit_short)
        # A limit entry still working is cancelled by an entry (a new one replaces it) or
        # an exit of its side, before anything else.
        for o in self.orders:
            if o.role == "entry" and o.limit is not None and (
                    want != 0 or (exit_long if o.size > 0 else exit_short)):
                o.cancel()
        lots = r.get("lot_size")
        lot = lots.get(symbol) if isinstance(lots, dict) else lots
        price = self.price(symbol)
        limit = None  # a market entry
        if r["size_type"] == "target_percent":
            limit = self._limit(r, i, price, want, column) if want else None
            # With a limit, a reversal closes at the market first.
            closes = exits or (limit is not None and held * want < 0)
            if closes:
                self.close(symbol, portion=portion)
            if want == 0:
                return
            price = price if limit is None else limit
            target = want * size * self.equity / price
            units = order_to_target(0.0 if closes else held, target, price, lot_size=lot)
            limit = limit if units * want > 0 else None  # a re-size down: a market order
        else:
            if exits or held * want < 0:
                self.close(symbol, portion=portion)
            if want == 0 or (held * want > 0 and not r.get("accumulate")):
                return
            at_fill = r["size_type"] == "percent_at_fill"
            # A limit entry: placed at its limit, sized and stopped from it.
            limit = self._limit(r, i, price, want, column)
            price = price if limit is None else limit
            units = {"amount": size, "value": size / price, "percent": size * self.equity / price,
                     "percent_at_fill": size * self.equity / price}[r["size_type"]]
            # (Sized at the fill, by the backtest's sizer: the estimate is in any units.)
            units = units if at_fill else round_to_lot(units, lot)
            if not (math.isfinite(units) and units > 0):
                return
            units = want * units
        if not math.isfinite(units) or units == 0:
            return
        sl = tp = trail = None
        if (units > 0) == (want > 0):
            if own_time_exits and held * want <= 0:  # this order opens a position
                counts = column("exit_after_bars")
                own = None if counts is None else counts[i]
                self.hold_for[symbol] = None if own is None or math.isnan(own) else int(own)
            sl, tp = self._stop("sl", r, i, price, -want, column), self._stop("tp", r, i, price, want, column)
            # The trailing stop as a user writes it: a percentage (its fraction, exactly),
            # the run's or the symbol's own on this bar (NaN: none).
            percent = r.get("sl_trail_percent")
            if "sl_trail_percent" in self.signals:
                percents = column("sl_trail_percent")
                percent = None if percents is None or math.isnan(percents[i]) else float(percents[i])
            trail = None if percent is None else f"{percent!r}%"
        sized = {} if r["size_type"] == "percent_at_fill" else {"size": abs(units)}
        placed = {} if limit is None else {"limit": limit, "valid": r.get("limit_bars")}
        (self.buy if units > 0 else self.sell)(symbol, **sized, sl=sl, tp=tp, sl_trail=trail, **placed)

    def _limit(self, r, i, price, want, column):
        prices = column("limit_price")
        if prices is not None:
            return None if math.isnan(prices[i]) else float(prices[i])
        fraction = r.get("limit")
        if "limit" in self.signals:
            fractions = column("limit")
            fraction = None if fractions is None or math.isnan(fractions[i]) else float(fractions[i])
        return None if fraction is None else price * (1 - want * fraction)

    def _stop(self, name, r, i, price, toward, column):
        prices = column(f"{name}_price")
        if prices is not None:
            return None if math.isnan(prices[i]) else float(prices[i])
        # The symbol's own fractions per bar (NaN: none; a symbol without them has none),
        # else the run's one.
        fraction = r[name]
        if name in self.signals:
            fractions = column(name)
            fraction = None if fractions is None or math.isnan(fractions[i]) else float(fractions[i])
        return None if fraction is None else price * (1 + toward * fraction)


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


def test_stops_per_symbol_and_per_bar_by_hand():
    # Two symbols with the same bars, each entered long at bar 0's close 100 (10 units at
    # bar 1's open 100). Bar 2 reaches 106 and 94.
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (100, 106, 94, 95), (95, 96, 94, 95)]
    data = {"A": make_bars(rows), "B": make_bars(rows)}
    bt = tickstep.Backtest(data, tickstep.Strategy)
    entries = {s: np.array([True, False, False, False]) for s in data}
    # A's stop-loss 5% (95), B's 10% (90); a take-profit of 5% (105) on B's entry bar
    # only: A's is NaN there (none).
    tp = pd.DataFrame({"A": [np.nan, 0.05, 0.05, 0.05], "B": [0.05, np.nan, np.nan, np.nan]},
                      index=data["A"].index)
    result = bt.run_signals(entries=entries, size=10.0, size_type="amount",
                            sl={"A": 0.05, "B": 0.1}, tp=tp)
    trades = result.trades.set_index("symbol")
    assert trades.loc["A", "exit_price"] == pytest.approx(95.0)
    assert trades.loc["A", "pnl"] == pytest.approx(-50.0)
    assert trades.loc["B", "exit_price"] == pytest.approx(105.0)
    assert trades.loc["B", "pnl"] == pytest.approx(50.0)
    entered = result.orders[result.orders["role"] == "entry"].set_index("symbol")
    assert entered.loc["A", "sl"] == pytest.approx(95.0)
    assert entered.loc["B", "sl"] == pytest.approx(90.0)
    assert entered.loc["B", "tp"] == pytest.approx(105.0)
    assert math.isnan(entered.loc["A", "tp"])  # NaN on A's entry bar: no take-profit
    # A trailing stop of A's own (10%), none for B (left out of the mapping): A's best
    # price since the fill reaches bar 2's high 106 (stop 95.4), and bar 3 opens at 95,
    # through it: out at that open. B is held to the end.
    trailed = bt.run_signals(entries=entries, size=10.0, size_type="amount",
                             sl_trail=pd.Series({"A": 0.1}))
    assert list(trailed.trades["symbol"]) == ["A"]
    assert trailed.trades.iloc[0]["exit_price"] == pytest.approx(95.0)
    assert list(trailed.positions.index) == ["B"]


def test_bad_stops_per_symbol_or_per_bar_are_refused_by_name():
    a = make_bars([(100, 101, 99, 100)] * 5)
    bt = tickstep.Backtest({"A": a, "B": a}, tickstep.Strategy)
    entries = {"A": np.ones(5, bool), "B": np.ones(5, bool)}
    # A fraction its stop does not take, named with the symbol, the bar and the rule.
    with pytest.raises(tickstep.ConfigError, match=r"sl of B on the bar at 2024-01-02 00:00:00 UTC \(its bar 1\) = "
                                                   r"1.5: must be a fraction of the price in \(0, 1\)"):
        bt.run_signals(entries=entries, sl={"A": 0.1, "B": [np.nan, 1.5, 0.1, 0.1, 0.1]})
    # (One per symbol: named by the symbol alone.)
    with pytest.raises(tickstep.ConfigError, match=r"sl_trail of A = 0: must be a fraction of the best price"):
        bt.run_signals(entries=entries, sl_trail={"A": 0.0})
    with pytest.raises(tickstep.ConfigError, match=r"tp of A = inf: must be a fraction of the price > 0"):
        bt.run_signals(entries=entries, tp=pd.Series({"A": np.inf}))
    # A take-profit of 1 or more is a short's target at or below zero: refused on the bars
    # of short entries (one for the symbol: if it has any), taken on a long's.
    shorts = {"A": np.array([False, True, False, False, False])}
    with pytest.raises(tickstep.ConfigError, match=r"tp of A = 1.5: must be below 1 with short entries"):
        bt.run_signals(short_entries=shorts, tp={"A": 1.5})
    with pytest.raises(tickstep.ConfigError, match=r"tp of A on the bar at 2024-01-02 00:00:00 UTC \(its bar 1\) = "
                                                   r"1.5: must be below 1 with short entries"):
        bt.run_signals(short_entries=shorts, tp={"A": np.full(5, 1.5)})
    assert bt.run_signals(entries=entries, tp={"A": 1.5}, size=1.0, size_type="amount").stats["# Trades"] == 0
    # One stop-loss per symbol: a fraction, a price or a trail.
    with pytest.raises(tickstep.ConfigError, match=r"sl of A: give sl as a fraction or as prices per bar, not both"):
        bt.run_signals(entries=entries, sl={"A": 0.1}, sl_price={"A": np.full(5, 90.0)})
    with pytest.raises(tickstep.ConfigError, match=r"sl of B: give sl or sl_trail, not both"):
        bt.run_signals(entries=entries, sl={"B": 0.1}, sl_trail=0.05)
    with pytest.raises(tickstep.ConfigError, match=r"sl_price of A: give sl_price or sl_trail, not both"):
        bt.run_signals(entries=entries, sl_trail={"A": 0.05}, sl_price={"A": np.full(5, 90.0)})
    # Shapes and types, as for sizes.
    with pytest.raises(tickstep.ConfigError, match=r"tp: 'Z' is not a symbol of the data"):
        bt.run_signals(entries=entries, tp={"Z": 0.1})
    with pytest.raises(tickstep.ConfigError, match=r"sl\['A'\]: stops as fractions must be numbers"):
        bt.run_signals(entries=entries, sl={"A": ["x"] * 5})
    with pytest.raises(tickstep.ConfigError, match=r"sl\['A'\]: 3 values for its 5 bars"):
        bt.run_signals(entries=entries, sl={"A": [0.1] * 3})
    with pytest.raises(tickstep.ConfigError, match=r"sl='2%': must be a number, one per symbol"):
        bt.run_signals(entries=entries, sl="2%")
    with pytest.raises(tickstep.ConfigError, match=r"a Series is one symbol's values by bar; .*"
                                                   r"or index it by symbol for one stop per symbol"):
        bt.run_signals(entries=entries, sl=pd.Series([0.1] * 5))


@st.composite
def markets_and_signals(draw):
    n_symbols = draw(st.integers(1, 3))
    data, signals = {}, {k: {} for k in (*SIGNAL_KINDS, *PRICE_KINDS)}
    # Stop prices per bar only with long entries alone (a long's stop is below its close).
    price_stops = draw(st.booleans())
    for s in range(n_symbols):
        n = draw(st.integers(3, 40))
        start = draw(st.integers(0, 5))
        steps = draw(st.lists(st.floats(-0.05, 0.05), min_size=n, max_size=n))
        closes = 100 * np.exp(np.cumsum(steps))
        opens = np.concatenate([[100.0], closes[:-1]])
        rows = [(o, max(o, c) * 1.02, min(o, c) * 0.98, c) for o, c in zip(opens, closes)]
        name = f"S{s}"
        data[name] = make_bars(rows, start=f"2024-01-{1 + start:02d}")
        # Volumes from none to plenty: under a volume limit orders fill in parts (rests
        # working on), entries sized at their fill are limited after their sizing.
        data[name]["volume"] = np.array(draw(st.lists(st.sampled_from([0.0, 3.0, 20.0, 60.0, 500.0]),
                                                      min_size=n, max_size=n)))
        for kind in SIGNAL_KINDS:
            if kind == "short_entries" and price_stops:
                continue
            if draw(st.booleans()):
                signals[kind][name] = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
        if price_stops:
            for kind, toward in (("sl_price", -1), ("tp_price", 1)):
                away = np.array(draw(st.lists(st.floats(0.005, 0.15), min_size=n, max_size=n)))
                none = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
                signals[kind][name] = np.where(none, np.nan, closes * (1 + toward * away))
    size_type = draw(st.sampled_from(["amount", "value", "percent", "target_percent"]))
    size = {"amount": draw(st.floats(1, 40)), "value": draw(st.floats(100, 6_000)),
            "percent": draw(st.floats(0.05, 1.0)), "target_percent": draw(st.floats(0.05, 1.0))}[size_type]
    sl = None if price_stops else draw(st.none() | st.floats(0.01, 0.2))
    tp = None if price_stops else draw(st.none() | st.floats(0.01, 0.2))
    # A trailing stop-loss instead of a fixed one, as a percentage (the order's form).
    trail = None if price_stops or sl is not None else draw(st.none() | st.floats(0.5, 12.0))
    options = {"commission": draw(st.sampled_from([0.0, 0.001])),
               "trade_on_close": draw(st.booleans()), "record_every_bar": True,
               "volume_limit": draw(st.sampled_from([None, 0.1, 0.5])),
               "volume_impact": draw(st.sampled_from([0.0, 0.3]))}
    rules = {"size": size, "size_type": size_type, "sl": sl, "tp": tp,
             "sl_trail": None if trail is None else trail / 100.0}
    # Each symbol's own stops now and then, one per symbol (some symbols none) or one per
    # bar around the run's (NaN: none on that bar), given as {symbol: ...} or a frame by
    # time; the trail's as percentages for the strategy by hand, fractions for the run.
    own_stops = None if price_stops else draw(st.sampled_from([None, "symbol", "bar"]))
    for kind, base in (("sl", sl), ("tp", tp), ("sl_trail", trail)) if own_stops else ():
        if base is None:
            continue
        per_bar = {}
        for name, df in data.items():
            n = len(df)
            if own_stops == "symbol":
                if draw(st.booleans()):
                    per_bar[name] = np.full(n, base * draw(st.floats(0.5, 1.5)))
                continue
            scale = np.array(draw(st.lists(st.floats(0.5, 1.5), min_size=n, max_size=n)))
            none = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            per_bar[name] = np.where(none, np.nan, base * scale)
        fractions = {name: v / 100.0 for name, v in per_bar.items()} if kind == "sl_trail" else per_bar
        signals["sl_trail_percent" if kind == "sl_trail" else kind] = per_bar
        rules[kind] = as_given(draw, data, fractions, own_stops == "symbol")
    if draw(st.booleans()):
        # Sizes per bar around that size, for every symbol (any may get entries), with bars
        # of no entry (NaN or 0) among them; given as a DataFrame by time or per symbol.
        sizes = {}
        for name, df in data.items():
            n = len(df)
            scale = np.array(draw(st.lists(st.floats(0.2, 1.8), min_size=n, max_size=n)))
            none = np.array(draw(st.lists(st.sampled_from([None, None, None, None, np.nan, 0.0]), min_size=n,
                                          max_size=n)), dtype=object)
            sizes[name] = np.where(none == None, size * scale, none).astype(float)  # noqa: E711
        signals["size"] = sizes
        rules["size"] = sizes
        if draw(st.booleans()):
            union = pd.DatetimeIndex(sorted(set().union(*(df.index for df in data.values()))))
            rules["size"] = pd.DataFrame({name: pd.Series(v, index=data[name].index)
                                          for name, v in sizes.items()}).reindex(union)
    # Pyramiding now and then (entries on the side held add to it), not with target percent.
    rules["accumulate"] = size_type != "target_percent" and draw(st.booleans())
    # A time exit now and then, one to eight bars after the entry: one for the run, or
    # each symbol's own (some none), one per symbol or one per bar (NaN: none for an
    # entry on that bar), as {symbol: ...} or a frame by time.
    own_time_exits = draw(st.sampled_from([None, None, "symbol", "bar"]))
    rules["exit_after_bars"] = None if own_time_exits else draw(st.none() | st.integers(1, 8))
    if own_time_exits:
        counts = {}
        for name, df in data.items():
            n = len(df)
            if own_time_exits == "symbol":
                if draw(st.booleans()):
                    counts[name] = np.full(n, float(draw(st.integers(1, 8))))
                continue
            drawn = np.array(draw(st.lists(st.integers(0, 8), min_size=n, max_size=n)), dtype=float)
            counts[name] = np.where(drawn == 0, np.nan, drawn)
        signals["exit_after_bars"] = counts
        rules["exit_after_bars"] = as_given(draw, data, counts, own_time_exits == "symbol", int)
    # Entries in whole lots now and then: one lot size for all, or some symbols' own.
    rules["lot_size"] = draw(st.none() | st.sampled_from([0.5, 1.0, 3.0])
                             | st.dictionaries(st.sampled_from(sorted(data)),
                                               st.sampled_from([1.0, 2.0]), max_size=2))
    # A broker's schedule now and then: both modes charge every fill by the one rule.
    options.update(draw(st.sampled_from([{}, {"commission_per_unit": 0.02, "commission_min": 2.0},
                                         {"commission_min": 1.0, "commission_cap": 0.002},
                                         {"commission_maker": 0.0002},
                                         {"commission_maker": -0.0001}])))
    # Borrowed buying power and a maintenance margin now and then, entries sized up to
    # match (one size for all bars): both modes call the account by the one rule.
    margin = draw(st.sampled_from([{}, {}, {"leverage": 2.0},
                                   {"leverage": 4.0, "maintenance_margin": 0.2},
                                   {"leverage": 8.0, "maintenance_margin": 0.1}]))
    options.update(margin)
    if margin and isinstance(rules["size"], float):
        rules["size"] *= margin["leverage"] * 0.9
    # A symbol's own schedule now and then: both modes charge its fills by it.
    own = draw(st.sampled_from([None, {"commission_per_unit": 0.02, "commission_min": 2.0},
                                {"commission": 0.002, "commission_maker": -0.0001}]))
    if own is not None:
        options["commission_by_symbol"] = {sorted(data)[0]: own}
    # Take-profits filled only through their price now and then: both modes by one rule.
    options["limit_fill"] = draw(st.sampled_from(["touch", "touch", "through"]))
    # Limit entries now and then (not with stop prices, which a limit below them would
    # make refused): one fraction for the run, each symbol's own
    # (some none) one per symbol or per bar (NaN: a market entry there), or prices per
    # bar on either side of the close; working a few bars or until cancelled.
    limits = None if price_stops else draw(st.sampled_from([None, "run", "symbol", "bar", "price"]))
    rules["limit"] = draw(st.floats(0.0, 0.05)) if limits == "run" else None
    rules["limit_bars"] = draw(st.none() | st.integers(1, 5)) if limits else None
    if limits in ("symbol", "bar", "price"):
        own = {}
        for name, df in data.items():
            n = len(df)
            if limits == "symbol":
                if draw(st.booleans()):
                    own[name] = np.full(n, draw(st.floats(0.0, 0.05)))
                continue
            drawn = np.array(draw(st.lists(st.floats(-0.02, 0.05), min_size=n, max_size=n)))
            none = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
            closes = df["close"].to_numpy()
            values = closes * (1 - drawn) if limits == "price" else np.abs(drawn)
            own[name] = np.where(none, np.nan, values)
        if limits == "price":
            signals["limit_price"] = own
        else:
            signals["limit"] = own
            rules["limit"] = ({name: float(v[0]) for name, v in own.items()} if limits == "symbol"
                              else own)
    # Other readings of signals that contradict each other or the position now and then.
    if draw(st.booleans()):
        rules.update((name, draw(st.sampled_from(readings))) for name, readings in CONFLICT_RULES.items())
    # Exits that close a portion of the position now and then (not with lot sizes, which
    # refuse them): one for the run, or each symbol's own (some none: all), one per symbol
    # or one per bar (NaN: all), as {symbol: ...} or a frame by time.
    portions = None if rules["lot_size"] is not None else draw(
        st.sampled_from([None, None, "run", "symbol", "bar"]))
    if portions == "run":
        rules["exit_portion"] = draw(st.sampled_from([0.25, 0.5, 0.8, 1.0]))
    elif portions:
        own = {}
        for name, df in data.items():
            n = len(df)
            if portions == "symbol":
                if draw(st.booleans()):
                    own[name] = np.full(n, draw(st.sampled_from([0.3, 0.5, 1.0])))
                continue
            drawn = draw(st.lists(st.sampled_from([np.nan, 0.25, 0.5, 0.9, 1.0]), min_size=n, max_size=n))
            own[name] = np.array(drawn)
        signals["exit_portion"] = own
        rules["exit_portion"] = as_given(draw, data, own, portions == "symbol")
    # No entries drawn at all: an entry on every bar (something to trade).
    if not signals["entries"] and not signals["short_entries"]:
        signals["entries"] = {name: np.ones(len(df), dtype=bool) for name, df in data.items()}
    return data, signals, rules, trail, options


def as_given(draw, data, columns, one_per_symbol, number=float):
    """Symbols' own values (``columns``: {symbol: array}) as a drawn case hands them to
    the run: one number per symbol (``one_per_symbol``: each column holds one value), or
    per bar as ``{symbol: array}`` or a frame by time over every symbol's bars."""
    if one_per_symbol:
        return {name: number(v[0]) for name, v in columns.items()}
    if draw(st.booleans()):
        return columns
    union = pd.DatetimeIndex(sorted(set().union(*(df.index for df in data.values()))))
    return pd.DataFrame({name: pd.Series(v, index=data[name].index)
                         for name, v in columns.items()}).reindex(union)


def signal_kinds(signals):
    """The signals and stop and limit prices of a drawn case, as `run_signals` takes them."""
    return {k: v for k, v in signals.items() if k in (*SIGNAL_KINDS, *PRICE_KINDS, "limit_price")}


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets_and_signals())
def test_signals_run_equals_the_same_orders_placed_in_next(case):
    data, signals, rules, trail_percent, options = case
    bt = tickstep.Backtest(data, ByHand, on_reject="ignore", **options)
    # (Sizes and stops per bar are rules; the strategy by hand reads them as columns.)
    native = bt.run_signals(**signal_kinds(signals), **rules)
    by_hand = bt.run(signals=signals, rules={**rules, "sl_trail_percent": trail_percent})
    assert_same_run(native, by_hand)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets_and_signals(), st.floats(0.05, 1.0))
def test_signals_sized_at_the_fill_equal_the_same_orders_sized_by_the_sizer_at_the_fill(case, fraction):
    # `size_type="percent_at_fill"` against `buy()` in `next` with the backtest's sizer
    # `PercentOfEquity(fraction, lot_size, at="fill")`: one fraction for every entry (a
    # sizer has one), one lot size for every symbol.
    data, signals, rules, trail_percent, options = case
    signals.pop("size", None)
    lot = rules["lot_size"] if not isinstance(rules["lot_size"], dict) else None
    fraction *= options.get("leverage", 1.0) * 0.9 if "leverage" in options else 1.0
    rules = {**rules, "size": fraction, "size_type": "percent_at_fill", "lot_size": lot}
    bt = tickstep.Backtest(data, ByHand, on_reject="ignore",
                           sizer=tickstep.PercentOfEquity(fraction, lot_size=lot, at="fill"), **options)
    native = bt.run_signals(**signal_kinds(signals), **rules)
    by_hand = bt.run(signals=signals, rules={**rules, "sl_trail_percent": trail_percent})
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
    with pytest.raises(tickstep.ConfigError, match=r"entries\['B'\]: 5 values for its 4 bars"):
        bt.run_signals(entries={"A": np.ones(5, bool), "B": np.ones(5, bool)})
    with pytest.raises(tickstep.ConfigError, match=r"must be booleans .* got dtype int64"):
        bt.run_signals(entries={"A": np.ones(5, dtype=np.int64)})
    # A missing value (a NaN left by shift(), pandas' NA) is neither True nor False.
    shifted = pd.DataFrame({"A": [True, False, True, False, True]}, index=a.index).shift()
    with pytest.raises(tickstep.ConfigError, match=r"entries column 'A': .* got dtype object with a missing value \(nan\) at row 0; "
                                                   r"fill them, False for no signal"):
        bt.run_signals(entries=shifted)
    with pytest.raises(tickstep.ConfigError, match=r"got dtype object with a missing value \(<NA>\) at row 3"):
        bt.run_signals(entries={"A": pd.array([True, False, True, None, True], dtype="boolean")})
    # Booleans pandas holds as objects are booleans still.
    as_objects = bt.run_signals(entries=shifted.fillna(False).astype(object), size=1.0, size_type="amount")
    assert_same_run(as_objects, bt.run_signals(entries=shifted.fillna(False).astype(bool), size=1.0,
                                                size_type="amount"))
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
    with pytest.raises(tickstep.ConfigError, match=r"sl_price\['A'\]: stop prices must be positive .* got -1.0 at row 2"):
        bt.run_signals(entries={"A": np.ones(5, bool)}, sl_price={"A": [np.nan, 99, -1, 99, 99]})
    # A stop price on the wrong side of the entry bar's close stops the run, as `buy(sl=)`
    # in `next` would, naming the symbol, the bar and the option.
    closes = a["close"].to_numpy()
    wrong = {"A": np.where(np.arange(5) == 2, closes * 1.01, closes * 0.99)}
    with pytest.raises(tickstep.OrderError, match=(
            r"A: sl [0-9.]+ must be below the entry price [0-9.]+ for a buy, from the stop prices "
            r"given per bar \(sl_price, tp_price\) on the bar at 2024-01-03 00:00:00 UTC \(the "
            r"symbol's bar 2\)")):
        bt.run_signals(entries={"A": np.ones(5, bool)}, sl_price=wrong, size=1.0, size_type="amount")
    with pytest.raises(tickstep.OrderError, match=r"A: tp [0-9.]+ must be below .* for a sell, "
                                                  r"from the stop prices given per bar .* bar 2\)"):
        bt.run_signals(short_entries={"A": np.arange(5) == 2}, tp_price=wrong, size=1.0,
                       size_type="amount")
    with pytest.raises(tickstep.ConfigError, match=r"tp_price\['A'\]: stop prices must be numbers"):
        bt.run_signals(entries={"A": np.ones(5, bool)}, tp_price={"A": np.ones(5, bool)})
    with pytest.raises(tickstep.ConfigError, match=r"sl of A: give sl as a fraction or as prices"):
        bt.run_signals(entries={"A": np.ones(5, bool)}, sl=0.1, sl_price={"A": np.full(5, 90.0)})
    with pytest.raises(tickstep.ConfigError, match=r"size_type='targetpercent'.*did you mean 'target_percent'"):
        bt.run_signals(entries={"A": np.ones(5, bool)}, size_type="targetpercent")


def test_a_backtest_without_a_strategy_serves_signals_mode_and_refuses_the_rest():
    bars = {"A": _walk(300, 5), "B": _walk(250, 6, "2024-02-01")}
    signals = _cross_signals(bars, 5, 20)
    entries, exits = signals["entries"], signals["exits"]
    bare = tickstep.Backtest(bars, cash=50_000, commission=0.001)
    with_class = tickstep.Backtest(bars, tickstep.Strategy, cash=50_000, commission=0.001)
    result = bare.run_signals(entries, exits, size=0.2)
    assert len(result.trades) > 0
    assert_same_run(result, with_class.run_signals(entries, exits, size=0.2))
    grid = bare.run_signal_grid({"x": {"entries": entries, "exits": exits}}, size=0.2)
    assert grid.loc["x", "Equity Final [$]"] == result.stats["Equity Final [$]"]
    # What needs a strategy says so, naming the way out, rather than failing inside.
    without = r"made without a strategy.*run_signals.*Backtest\(data, MyStrategy"
    with pytest.raises(tickstep.ConfigError, match=without):
        bare.run()
    with pytest.raises(tickstep.ConfigError, match=without):
        bare.optimize(fast=[5, 10], cache=False)
    with pytest.raises(tickstep.ConfigError, match=without):
        bare.walk_forward(train="100D", test="50D", fast=[5, 10], cache=False)
    with pytest.raises(tickstep.ConfigError, match=without):
        bare.strategy  # noqa: B018 (the property is what raises)
    with pytest.raises(TypeError, match="strategy must be a subclass of tickstep.Strategy, got 'SmaCross'"):
        tickstep.Backtest(bars, "SmaCross")


def _shared_account_by_loop(bars, signals, size, commission, slippage_bps, cash, on_close=False,
                            exit_after=None, lot=None, accumulate=False, size_type="percent",
                            portion=None):
    """Signals on one account, written as a plain loop from the stated rules alone.

    The orders placed at a close fill at the next open (``on_close``: at that close, after
    every symbol's rules), those that reduce a position first, slipped against the
    trader. An order first reduces what it opposes, oldest lot first (a trade per lot or
    part of one), and opens a lot with the rest. At each close the equity is cash + size x
    close summed over symbols, and each symbol in turn (by name) reads its signals: it
    closes a position on an exit of its side or an entry of the other side, and opens one
    on an entry while flat or reversing, sized by ``size`` (one number, or ``{symbol:
    sizes by bar}``) as ``size_type`` says: "percent" of equity / close, "value" / close,
    "amount" (an entry with an exit of its side on the same bar, or with the other side's
    entry, is ignored). With ``exit_after`` a position whose oldest lot was entered that
    many of its bars before or more is exited as by an exit signal of its side; with
    ``lot`` entries buy or sell whole lots, rounded down (a quotient within 1e-9 below a
    whole number counts as it; none below one lot); with ``accumulate`` an entry on the
    side held adds a lot. With "target_percent" an entry is one order for the difference
    between what will be held and size x equity / close on its side (a lot size rounds
    that target towards zero). With ``portion`` (one number, or ``{symbol: portions by
    bar}``, NaN: all) an exit signal closes that share of what is held when it fills; a
    time exit or an entry against the position closes all of it. Equity is sampled at
    each close after its fills."""
    target = size_type == "target_percent"
    names = sorted(bars)
    n = len(bars[names[0]])
    held = dict.fromkeys(names, 0.0)
    lots = {s: [] for s in names}  # [entry time, entry bar, price, units, commission left]
    trades, curve = [], []

    def fill(orders, t, column):
        nonlocal cash
        # (Reductions first: closes, and orders against what is held.)
        closes = [(s, u) for s, u in orders if isinstance(u, Portion)]
        for s, units in closes + sorted((o for o in orders if not isinstance(o[1], Portion)),
                                        key=lambda o: not o[1] * held[o[0]] < 0):
            if isinstance(units, Portion):  # a close: that share of what is held then
                units = -held[s] * units.share
            side = np.sign(units)
            price = bars[s][column].iloc[t] * (1 + side * slippage_bps * 1e-4)
            cash -= units * price + commission * abs(units) * price
            left = abs(units)
            while left > 0 and lots[s] and np.sign(held[s]) == -side:
                opened, _, entry_price, size, entry_fee = lot = lots[s][0]
                take = min(left, size)
                fee = entry_fee * take / size
                trades.append((s, opened, bars[s].index[t], -side * take, entry_price, price,
                               -side * (price - entry_price) * take - fee - commission * take * price))
                lot[3], lot[4] = size - take, entry_fee - fee
                held[s] += side * take
                left -= take
                if lot[3] <= size * 1e-9:
                    lots[s].pop(0)
            if left > abs(units) * 1e-9:
                lots[s].append([bars[s].index[t], t, price, left, commission * left * price])
                held[s] += side * left
            if not lots[s]:
                held[s] = 0.0

    def share_closed(s, t, all_of_it):
        own = portion[s][t] if isinstance(portion, dict) else portion
        return 1.0 if all_of_it or own is None or np.isnan(own) else float(own)

    pending = []
    for t in range(n):
        fill(pending, t, "open")
        pending = []
        close = {s: bars[s]["close"].iloc[t] for s in names}
        equity = cash + sum(held[s] * close[s] for s in names)
        for s in names:
            kinds = {k: bool(v[s][t]) for k, v in signals.items()}
            h = held[s]
            timed_out = exit_after is not None and h != 0 and t - lots[s][0][1] >= exit_after
            exit_long = kinds["exits"] or (timed_out and h > 0)
            exit_short = kinds["short_exits"] or (timed_out and h < 0)
            long_entry = kinds["entries"] and not exit_long
            short_entry = kinds["short_entries"] and not exit_short
            want = (1 if long_entry else -1) if long_entry != short_entry else 0
            exits = (h > 0 and exit_long) or (h < 0 and exit_short)
            amount = size[s][t] if isinstance(size, dict) else size
            units = {"amount": amount, "value": amount / close[s]}.get(size_type, amount * equity / close[s])
            if lot is not None:  # down to whole lots, forgiving a hair of float noise
                units = np.floor(units / lot + 1e-9) * lot
            if target:
                if exits:
                    pending.append((s, Portion(share_closed(s, t, timed_out or h * want < 0))))
                if want != 0 and want * units - (0.0 if exits else h) != 0:
                    pending.append((s, want * units - (0.0 if exits else h)))
                continue
            if h != 0 and (exits or h * want < 0):
                pending.append((s, Portion(share_closed(s, t, timed_out or h * want < 0))))
                h = 0.0 if pending[-1][1].share == 1.0 else h
            if want != 0 and (h == 0 or (accumulate and h * want > 0)) and units > 0:
                pending.append((s, want * units))
        if on_close:
            fill(pending, t, "close")
            pending = []
        curve.append(cash + sum(held[s] * close[s] for s in names))
    return sorted(trades, key=lambda row: (row[0], row[1], row[2])), curve


class Portion(NamedTuple):
    """A close in `_shared_account_by_loop`: ``share`` of what is held when it fills."""

    share: float


def _assert_equals_loop(result, trades, curve):
    """The run's trades (symbol, entry and exit times, signed size, prices, P&L) and its
    equity at every close (daily bars: sampled at each) equal the loop's, to 1e-11 of
    each column's scale (a trade to a target percent is the difference of two nearly
    equal holdings: its size carries their rounding, ~1e-15 of them, not of itself)."""
    t = result.trades
    got = sorted(zip(t["symbol"].astype(str), t["entry_time"], t["exit_time"],
                     np.where(t["side"] == "long", 1, -1) * t["size"], t["entry_price"], t["exit_price"],
                     t["pnl"]), key=lambda row: (row[0], row[1], row[2]))
    assert [row[:3] for row in got] == [row[:3] for row in trades]
    if trades:
        mine = np.array([row[3:] for row in got], dtype=float)
        loop = np.array([row[3:] for row in trades], dtype=float)
        scale = np.abs(loop).max(axis=0)
        off = np.abs(mine - loop) > 1e-11 * scale
        assert not off.any(), (f"trades {np.flatnonzero(off.any(axis=1)).tolist()}: "
                               f"{mine[off.any(axis=1)]} against the loop's {loop[off.any(axis=1)]}")
    np.testing.assert_allclose(result.equity.to_numpy(), curve, rtol=1e-11)


@pytest.mark.parametrize(("seed", "shorts", "portion"), [(1, False, None), (2, True, None), (3, True, None),
                                                       (4, True, 0.5), (5, False, 0.3)])
def test_a_shared_account_equals_a_plain_loop_of_the_stated_rules(seed, shorts, portion):
    rng = np.random.default_rng(seed)
    bars = {f"S{k}": _walk(300, 10 * seed + k) for k in range(4)}
    kinds = ["entries", "exits", "short_entries", "short_exits"]
    signals = {k: {s: rng.random(300) < (0.08 if shorts or k in kinds[:2] else 0.0) for s in bars}
               for k in kinds}
    result = tickstep.Backtest(bars, cash=100_000, commission=0.001, slippage=5).run_signals(
        **signals, size=0.2, size_type="percent", exit_portion=portion)
    trades, curve = _shared_account_by_loop(bars, signals, 0.2, 0.001, 5, 100_000.0, portion=portion)
    assert len(trades) > 20
    assert (result.trades["side"] == "short").any() == shorts
    _assert_equals_loop(result, trades, curve)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), symbols=st.integers(1, 4), bars=st.integers(30, 160),
       rate=st.floats(0.02, 0.25), shorts=st.booleans(), percent=st.floats(0.01, 0.3),
       commission=st.sampled_from([0.0, 0.0005, 0.004]), slippage=st.sampled_from([0.0, 2.5, 20.0]),
       on_close=st.booleans(), exit_after=st.one_of(st.none(), st.integers(1, 12)),
       lot=st.sampled_from([None, 1.0, 7.0, 0.25]),
       adding=st.sampled_from(["no", "accumulate", "target_percent"]),
       size_type=st.sampled_from(["percent", "value", "amount"]), per_bar=st.booleans(),
       portions=st.sampled_from([None, None, 0.5, 0.3, "per bar"]))
def test_a_shared_account_equals_the_plain_loop_for_drawn_markets_and_rules(
        seed, symbols, bars, rate, shorts, percent, commission, slippage, on_close, exit_after, lot, adding,
        size_type, per_bar, portions):
    rng = np.random.default_rng(seed)
    data = {f"S{k}": _walk(bars, seed % 1000 + k) for k in range(symbols)}
    kinds = ["entries", "exits", "short_entries", "short_exits"]
    signals = {k: {s: rng.random(bars) < (rate if shorts or k in kinds[:2] else 0.0) for s in data}
               for k in kinds}
    size_type = "target_percent" if adding == "target_percent" else size_type
    size = percent * {"value": 50_000, "amount": 500}.get(size_type, 1)
    rules = signals
    if per_bar:
        # Sizes by bar; NaN or 0 on a bar means no entry there, of either side (exits act).
        size = {s: size * rng.uniform(0.5, 1.5, bars) * rng.choice([1.0, 0.0, np.nan], bars, p=[0.75, 0.125, 0.125])
                for s in data}
        sized = {s: np.nan_to_num(size[s]) > 0 for s in data}
        rules = {k: {s: v & sized[s] if "entries" in k else v for s, v in by.items()} for k, by in signals.items()}
    # Exits closing a portion of the position (not with lots, which refuse them): one for
    # the run, or each symbol's own by bar (NaN: all of it).
    portion = None if lot is not None else portions
    if portion == "per bar":
        portion = {s: rng.choice([np.nan, 0.25, 0.5, 1.0], bars) for s in data}
    # Leverage enough that no order is ever refused: the loop has no margin rule.
    result = tickstep.Backtest(data, cash=50_000, commission=commission, slippage=slippage, leverage=20,
                               trade_on_close=on_close).run_signals(
        **signals, size=size, size_type=size_type, exit_after_bars=exit_after, lot_size=lot,
        accumulate=adding == "accumulate", exit_portion=portion)
    assert result.stats["# Orders Rejected"] == 0
    trades, curve = _shared_account_by_loop(data, rules, size, commission, slippage, 50_000.0, on_close,
                                            exit_after, lot, adding == "accumulate", size_type, portion)
    _assert_equals_loop(result, trades, curve)


def _gapping_walk(n, seed):
    """Bars whose opens gap from the close before, with wicks beyond both."""
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opens = np.concatenate([[100.0], closes[:-1]]) * np.exp(rng.normal(0, 0.01, n))
    highs = np.maximum(opens, closes) * np.exp(np.abs(rng.normal(0, 0.01, n)))
    lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.normal(0, 0.01, n)))
    return make_bars(list(zip(opens, highs, lows, closes)))


def _bracketed_by_loop(bars, entries, exits, percent, sl, tp, commission, slippage_bps, cash, trail=False,
                      side=1, prices=None):
    """Signals of one side (``side`` +1 long, -1 short) with a stop-loss ``sl`` from the
    signal bar's close (with ``trail``: ``sl`` from the best price since the entry filled)
    and a take-profit ``tp`` beyond it (None: none), or at the prices ``prices["sl"]`` /
    ``prices["tp"]`` give on the signal bar (NaN: none), on one account, as a plain loop
    from the stated rules alone.

    At each open, in the order the orders were placed: a trade's legs (placed when it
    opened) fill at the open when it is through them, then the market orders of the
    close before (closes, then entries: an entry's new legs may fill at once if the open
    is through them). Then within the bar, stops before limits: a stop at its price, a
    take-profit at its price. Market orders and stops slip against the trader, limits do
    not; one leg filling ends the trade and the other leg. A trailing stop starts from the
    entry's fill price, follows each open before it is checked there, and follows the
    bar's favourable extreme only after surviving that bar (for the next one). A short's
    rules are a long's mirrored."""
    names = sorted(bars)
    held = dict.fromkeys(names, 0.0)
    legs, entered, trades, curve, pending = {}, {}, [], [], []
    best_of = max if side > 0 else min

    def exit_at(s, price, slips):
        nonlocal cash
        price = price * (1 - side * slippage_bps * 1e-4) if slips else price
        units, fee = abs(held[s]), commission * abs(held[s]) * price
        cash += held[s] * price - fee
        opened, entry_price, entry_fee = entered.pop(s)
        trades.append((s, opened, bars[s].index[now], held[s], entry_price, price,
                       side * (price - entry_price) * units - entry_fee - fee))
        held[s] = 0.0
        legs.pop(s, None)

    def stop_of(leg):
        return leg["best"] * (1 - side * sl) if trail else leg["stop"]

    def through(price, level):  # a stop: at or beyond its level on the losing side
        return level is not None and side * (price - level) <= 0

    def reached(price, take):  # a take-profit: at or beyond it on the winning side
        return take is not None and side * (price - take) >= 0

    def at_open(s, price):
        leg = legs[s]
        if trail:
            leg["best"] = best_of(leg["best"], price)
        if through(price, stop_of(leg)):
            exit_at(s, price, True)
        elif reached(price, leg["take"]):
            exit_at(s, price, False)

    for now in range(len(bars[names[0]])):
        bar = {s: bars[s].iloc[now] for s in names}
        for s in [s for s in names if s in legs]:
            at_open(s, bar[s]["open"])
        for s, kind, (units, signal_close, signal_bar) in sorted(pending, key=lambda order: order[1] != "close"):
            if kind == "close":
                if held[s] != 0:
                    exit_at(s, bar[s]["open"], True)
                continue
            price = bar[s]["open"] * (1 + side * slippage_bps * 1e-4)
            fee = commission * units * price
            cash -= side * units * price + fee
            held[s] = side * units
            entered[s] = (bars[s].index[now], price, fee)
            if prices is None:
                stop, take = signal_close * (1 - side * sl), None if tp is None else signal_close * (1 + side * tp)
            else:
                stop, take = (None if np.isnan(level) else level
                              for level in (prices["sl"][s][signal_bar], prices["tp"][s][signal_bar]))
            legs[s] = {"stop": stop, "best": price, "take": take}
            at_open(s, bar[s]["open"])
        pending = []
        for s in [s for s in names if s in legs]:
            leg = legs[s]
            adverse, favourable = (bar[s]["low"], bar[s]["high"])[::side]
            if through(adverse, stop_of(leg)):
                exit_at(s, stop_of(leg), True)
            elif reached(favourable, leg["take"]):
                exit_at(s, leg["take"], False)
            elif trail:
                leg["best"] = best_of(leg["best"], favourable)
        equity = cash + sum(held[s] * bar[s]["close"] for s in names)
        for s in names:
            if exits[s][now] and held[s] != 0:
                pending.append((s, "close", (None, None, None)))
            elif entries[s][now] and not exits[s][now] and held[s] == 0:
                pending.append((s, "entry", (percent * equity / bar[s]["close"], bar[s]["close"], now)))
        curve.append(equity)
    return sorted(trades, key=lambda row: (row[0], row[1], row[2])), curve


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), symbols=st.integers(1, 4), bars=st.integers(30, 160),
       rate=st.floats(0.02, 0.2), percent=st.floats(0.01, 0.3), sl=st.floats(0.003, 0.05),
       tp=st.one_of(st.none(), st.floats(0.003, 0.06)), stops=st.sampled_from(["fractions", "trail", "prices"]),
       side=st.sampled_from([1, -1]), commission=st.sampled_from([0.0, 0.001]),
       slippage=st.sampled_from([0.0, 5.0]))
def test_brackets_on_a_shared_account_equal_the_plain_loop(seed, symbols, bars, rate, percent, sl, tp, stops,
                                                           side, commission, slippage):
    rng = np.random.default_rng(seed)
    data = {f"S{k}": _gapping_walk(bars, seed % 1000 + k) for k in range(symbols)}
    entries = {s: rng.random(bars) < rate for s in data}
    exits = {s: rng.random(bars) < rate for s in data}
    rules, prices = {"tp": tp, "sl_trail" if stops == "trail" else "sl": sl}, None
    if stops == "prices":
        # Stop prices by bar about sl / tp from each close, NaN (none) on some bars.
        def levels(away):
            return {s: df["close"].to_numpy() * (1 + away * rng.uniform(0.5, 1.5, bars))
                    * rng.choice([1.0, np.nan], bars, p=[0.8, 0.2]) for s, df in data.items()}
        prices = {"sl": levels(-side * sl), "tp": levels(side * (tp or 0.02))}
        rules = {"sl_price": prices["sl"], "tp_price": prices["tp"]}
    signals = {"entries": entries, "exits": exits} if side > 0 else {"short_entries": entries,
                                                                     "short_exits": exits}
    result = tickstep.Backtest(data, cash=50_000, commission=commission, slippage=slippage, leverage=20
                               ).run_signals(**signals, size=percent, size_type="percent", **rules)
    assert result.stats["# Orders Rejected"] == 0
    trades, curve = _bracketed_by_loop(data, entries, exits, percent, sl, tp, commission, slippage, 50_000.0,
                                       stops == "trail", side, prices)
    _assert_equals_loop(result, trades, curve)


def test_sizes_per_bar_by_hand_as_a_frame_beside_the_signals():
    # Closes (= next opens) A: 100, 110, 120, 90, 95; B: 50, 40, 60, 55, 50.
    a = make_bars([(100, 101, 99, 100), (100, 111, 99, 110), (110, 121, 109, 120),
                   (120, 121, 89, 90), (90, 96, 89, 95)])
    b = make_bars([(50, 51, 49, 50), (50, 51, 39, 40), (40, 61, 39, 60), (60, 61, 54, 55),
                   (55, 56, 49, 50)])
    bt = tickstep.Backtest({"A": a, "B": b}, tickstep.Strategy)
    entries = pd.DataFrame({"A": [True, False, True, False, False],
                            "B": [True, False, False, True, False]}, index=a.index)
    exits = pd.DataFrame({"A": [False, True, False, True, False],
                          "B": [False, True, False, False, False]}, index=a.index)
    # A: 1 000 of cash on bar 0, NaN on bar 2 (no entry); B: 500 on bar 0, 0 on bar 3.
    sizes = pd.DataFrame({"A": [1_000.0, 7.0, np.nan, 7.0, 7.0],
                          "B": [500.0, 7.0, 7.0, 0.0, 7.0]}, index=a.index)
    result = bt.run_signals(entries=entries, exits=exits, size=sizes, size_type="value")
    fills = result.fills.sort_values(["time", "symbol"]).reset_index(drop=True)
    # A: 1 000 / close 100 = 10 units at bar 1's open 100, out at bar 2's open 110 (+100);
    # B: 500 / 50 = 10 units at 50, out at 40 (-100). Nothing else: bar 2's entry of A and
    # bar 3's of B have no size.
    assert list(fills["symbol"]) == ["A", "B", "A", "B"]
    assert list(fills["size"]) == [10.0, 10.0, 10.0, 10.0]
    assert list(fills["price"]) == [100.0, 50.0, 110.0, 40.0]
    assert sorted(result.trades["pnl"]) == [-100.0, 100.0]
    assert result.stats["Equity Final [$]"] == 10_000.0
    assert result.params["size"] == "per bar"


def test_entries_in_whole_lots_by_hand():
    # Closes (= next opens) 37, 40, 40, 40; half the equity an entry.
    rows = [(37, 38, 36, 37), (37, 41, 36, 40), (40, 41, 39, 40), (40, 41, 39, 40)]
    bt = tickstep.Backtest({"A": make_bars(rows), "B": make_bars(rows)}, tickstep.Strategy)
    entries = np.array([True, False, False, False])
    result = bt.run_signals(entries={"A": entries, "B": entries}, size=0.3,
                            lot_size={"A": 10})
    fills = result.fills.set_index("symbol")
    # A: 0.3 x 10 000 / 37 = 81.08 -> 80 units (lots of 10); B: no lot size, 81.08...
    assert fills.loc["A", "size"] == 80.0
    assert fills.loc["B", "size"] == pytest.approx(3_000 / 37)
    # Below one lot: nothing placed.
    none = bt.run_signals(entries={"A": entries}, size=300.0, size_type="value", lot_size=10)
    assert len(none.fills) == 0 and len(none.orders) == 0


def test_accumulate_adds_entries_on_the_side_held_by_hand():
    rows = [(100, 101, 99, 100)] * 3 + [(100, 111, 99, 110), (110, 111, 109, 110)]
    bt = tickstep.Backtest(make_bars(rows), tickstep.Strategy)
    entries = np.array([True, True, False, False, False])
    exits = np.array([False, False, False, True, False])
    once = bt.run_signals(entries=entries, exits=exits, size=10.0, size_type="amount")
    twice = bt.run_signals(entries=entries, exits=exits, size=10.0, size_type="amount",
                           accumulate=True)
    # Without: the second entry is ignored (10 units); with: 10 + 10 bought at 100, all 20
    # sold on bar 4's open 110 (two trades, one per entry's lot: +100 each).
    assert list(once.fills["size"]) == [10.0, 10.0]
    assert list(twice.fills["size"]) == [10.0, 10.0, 20.0]
    assert list(twice.fills["price"]) == [100.0, 100.0, 110.0]
    assert twice.stats["Equity Final [$]"] == 10_000.0 + 200.0
    with pytest.raises(tickstep.ConfigError, match=r"accumulate with size_type 'target_percent'"):
        bt.run_signals(entries=entries, size_type="target_percent", accumulate=True)
    with pytest.raises(tickstep.ConfigError, match=r"accumulate='yes': must be True or False"):
        bt.run_signals(entries=entries, accumulate="yes")


def test_a_time_exit_closes_n_bars_after_the_entry_by_hand():
    closes = [100, 101, 102, 103, 104, 105]
    opens = [100, *closes[:-1]]
    rows = [(o, max(o, c) + 1, min(o, c) - 1, c) for o, c in zip(opens, closes)]
    bt = tickstep.Backtest(make_bars(rows), tickstep.Strategy)
    entries = np.array([True, False, False, True, False, False])
    run = bt.run_signals(entries=entries, size=10.0, size_type="amount", exit_after_bars=2)
    # Bought at bar 1's open 100 (the entry's bar); 2 bars later, on bar 3, the time exit
    # acts like an exit signal: bar 3's own entry (same side) is ignored, and the close
    # fills at bar 4's open 103: +30.
    assert list(run.fills["price"]) == [100.0, 103.0]
    assert list(run.fills["role"]) == ["entry", "close"]
    assert run.trades.iloc[0]["pnl"] == pytest.approx(30.0)
    # At the close: bought at bar 0's close 100, sold at bar 2's close 102; bar 3's entry
    # then opens again, its time exit due at bar 5 (fills at that close 105).
    on_close = tickstep.Backtest(make_bars(rows), tickstep.Strategy, trade_on_close=True)
    run = on_close.run_signals(entries=entries, size=10.0, size_type="amount", exit_after_bars=2)
    assert list(run.fills["price"]) == [100.0, 102.0, 103.0, 105.0]
    with pytest.raises(tickstep.ConfigError, match=r"exit_after_bars=0: must be a whole number of bars >= 1"):
        bt.run_signals(entries=entries, exit_after_bars=0)
    with pytest.raises(tickstep.ConfigError, match=r"exit_after_bars=2.5: must be a whole number"):
        bt.run_signals(entries=entries, exit_after_bars=2.5)


def test_time_exits_per_symbol_or_per_bar_keep_the_opening_entrys_number():
    rows = [(100 + i, 101 + i, 99 + i, 100 + i) for i in range(10)]
    bt = tickstep.Backtest({"A": make_bars(rows), "B": make_bars(rows)}, tickstep.Strategy)
    first = np.zeros(10, bool)
    first[0] = True

    def fills(run):
        return [(s, role, price) for s, role, price in zip(run.fills["symbol"], run.fills["role"], run.fills["price"])]

    # One per symbol: A's positions are exited 2 bars after they open (bought at bar 1's
    # open 101, exited on bar 3, filled at bar 4's open 104); B, left out, has none.
    run = bt.run_signals(entries={"A": first, "B": first}, size=10.0, size_type="amount",
                         exit_after_bars={"A": 2})
    assert fills(run) == [("A", "entry", 101.0), ("B", "entry", 101.0), ("A", "close", 104.0)]
    by_series = bt.run_signals(entries={"A": first, "B": first}, size=10.0, size_type="amount",
                               exit_after_bars=pd.Series({"A": 2}))
    assert fills(by_series) == fills(run)
    # One per bar, read on the bar of the entry that opens the position: 3 bars for the
    # entry of bar 0 (filled at 101, exited on bar 4, at 105), 1 for the one of bar 6
    # (filled at 107, exited on bar 8, at 109); NaN on the other bars.
    entries = first.copy()
    entries[6] = True
    n = np.full(10, np.nan)
    n[0], n[6] = 3, 1
    run = bt.run_signals(entries={"A": entries}, size=10.0, size_type="amount", exit_after_bars={"A": n})
    assert fills(run) == [("A", "entry", 101.0), ("A", "close", 105.0),
                          ("A", "entry", 107.0), ("A", "close", 109.0)]
    assert list(run.trades["pnl"]) == [pytest.approx(40.0), pytest.approx(20.0)]
    # The same as a DataFrame by time.
    by_time = bt.run_signals(entries={"A": entries}, size=10.0, size_type="amount",
                             exit_after_bars=pd.DataFrame({"A": n}, index=make_bars(rows).index))
    assert fills(by_time) == fills(run)
    # NaN on the opening entry's bar: no time exit.
    n_none = n.copy()
    n_none[0] = np.nan
    run = bt.run_signals(entries={"A": first}, size=10.0, size_type="amount", exit_after_bars={"A": n_none})
    assert fills(run) == [("A", "entry", 101.0)]
    # Pyramiding: an entry added to the position does not move its time exit. Bar 0's
    # entry opens it with 4 bars (due on bar 5, filled at 106); bar 2's adds to it, its
    # own 1 unused (the oldest lot, opened at bar 1, would have been due on bar 2).
    adds = first.copy()
    adds[2] = True
    n = np.full(10, np.nan)
    n[0], n[2] = 4, 1
    run = bt.run_signals(entries={"A": adds}, size=10.0, size_type="amount", accumulate=True,
                         exit_after_bars={"A": n})
    assert fills(run) == [("A", "entry", 101.0), ("A", "entry", 103.0), ("A", "close", 106.0)]


def test_bad_time_exits_per_symbol_or_per_bar_are_refused_by_name():
    rows = [(100, 101, 99, 100)] * 5
    bt = tickstep.Backtest({"A": make_bars(rows), "B": make_bars(rows)}, tickstep.Strategy)
    entries = {"A": np.ones(5, bool), "B": np.ones(5, bool)}
    with pytest.raises(tickstep.ConfigError, match=r"exit_after_bars of B on the bar at 2024-01-0\d "
                                                   r"00:00:00 UTC \(its bar 2\) = 2.5: must be a whole "
                                                   r"number of bars >= 1 \(NaN: no time exit"):
        bt.run_signals(entries=entries, exit_after_bars={"A": 3, "B": [1, 2, 2.5, 1, 1]})
    for bad in (0, -1, np.inf):
        with pytest.raises(tickstep.ConfigError, match=rf"exit_after_bars of A = {bad}: must be a whole"):
            bt.run_signals(entries=entries, exit_after_bars={"A": bad})
    with pytest.raises(tickstep.ConfigError, match=r"exit_after_bars\['A'\]: time exits must be whole "
                                                   r"numbers of bars \(NaN for none\), got dtype <U1"):
        bt.run_signals(entries=entries, exit_after_bars={"A": ["1"] * 5})
    with pytest.raises(tickstep.ConfigError, match=r"exit_after_bars: 'C' is not a symbol of the data"):
        bt.run_signals(entries=entries, exit_after_bars={"C": 2})
    with pytest.raises(tickstep.ConfigError, match=r"exit_after_bars=2.5: must be a whole number of bars "
                                                   r">= 1 \(or None: no time exit\), one per symbol"):
        bt.run_signals(entries=entries, exit_after_bars=2.5)


def test_bad_sizes_per_bar_are_refused_by_name():
    a = make_bars([(100, 101, 99, 100)] * 5)
    b = make_bars([(100, 101, 99, 100)] * 4)
    bt = tickstep.Backtest({"A": a, "B": b}, tickstep.Strategy)
    both = {"A": np.ones(5, bool), "B": np.ones(4, bool)}
    with pytest.raises(tickstep.ConfigError, match=r"size\['A'\]: sizes must be finite and >= 0 "
                                                   r"\(NaN or 0: no entry on that bar\), got -2.0 at row 3"):
        bt.run_signals(entries=both, size={"A": [1, 1, 1, -2, 1], "B": np.ones(4)})
    with pytest.raises(tickstep.ConfigError, match=r"size column 'B': sizes must be finite .* got inf at row 0"):
        bt.run_signals(entries=both, size=pd.DataFrame({"A": np.ones(5), "B": [np.inf, 1, 1, 1, 1]},
                                                       index=a.index))
    with pytest.raises(tickstep.ConfigError, match=r"size\['B'\]: sizes must be numbers .* got dtype bool"):
        bt.run_signals(entries=both, size={"A": np.ones(5), "B": np.ones(4, bool)})
    with pytest.raises(tickstep.ConfigError, match=r"size\['B'\]: 5 values for its 4 bars"):
        bt.run_signals(entries=both, size={"A": np.ones(5), "B": np.ones(5)})
    with pytest.raises(tickstep.ConfigError, match=r"sizes are given per bar, but none for B, "
                                                   r"which has entry signals"):
        bt.run_signals(entries=both, size={"A": np.ones(5)})
    with pytest.raises(tickstep.ConfigError, match=r"size='all': must be a number, or one per bar"):
        bt.run_signals(entries=both, size="all")
    with pytest.raises(tickstep.ConfigError, match=r"signal set 1: size=None: must be a number"):
        bt.run_signal_grid({1: {"entries": both, "size": None}})
    with pytest.raises(tickstep.ConfigError, match=r"lot_size of A = 0: must be a finite number of units > 0"):
        bt.run_signals(entries=both, lot_size=0)
    with pytest.raises(tickstep.ConfigError, match=r"lot_size: 'Z' is not a symbol"):
        bt.run_signals(entries=both, lot_size={"Z": 1})
    with pytest.raises(tickstep.ConfigError, match=r"lot_size='ten': must be a number of units"):
        bt.run_signals(entries=both, lot_size="ten")
    # One size per symbol: each symbol's own number for all its bars.
    per_symbol = bt.run_signals(entries=both, size={"A": 3.0, "B": 2.0}, size_type="amount")
    assert per_symbol.fills.groupby("symbol")["size"].first().to_dict() == {"A": 3.0, "B": 2.0}
    # A Series indexed by symbol reads as that dict (a row of a table of weights); sizes by
    # bar in a Series need a symbol to belong to, and a symbol given twice is refused.
    by_series = bt.run_signals(entries=both, size=pd.Series({"B": 2.0, "A": 3.0}), size_type="amount")
    assert_same_run(by_series, per_symbol)
    with pytest.raises(tickstep.ConfigError, match=r"size: 'A' is given twice"):
        bt.run_signals(entries=both, size=pd.Series([3.0, 2.0], index=["A", "A"]), size_type="amount")
    with pytest.raises(tickstep.ConfigError, match=r"size: 'Z' is not a symbol of the data"):
        bt.run_signals(entries=both, size=pd.Series({"A": 3.0, "Z": 2.0}), size_type="amount")
    with pytest.raises(tickstep.ConfigError, match=r"a Series is one symbol's values by bar; .*"
                                                   r"or index it by symbol for one size per symbol"):
        bt.run_signals(entries=both, size=pd.Series(np.ones(5)), size_type="amount")
    lots = bt.run_signals(entries=both, size=10.0, size_type="amount", lot_size=pd.Series({"A": 4.0, "B": 3.0}))
    assert lots.fills.groupby("symbol")["size"].first().to_dict() == {"A": 8.0, "B": 9.0}
    with pytest.raises(tickstep.ConfigError, match=r"lot_size: 'B' is given twice"):
        bt.run_signals(entries=both, lot_size=pd.Series([4.0, 3.0], index=["B", "B"]))
    with pytest.raises(tickstep.ConfigError, match=r"size\['B'\]: sizes must be finite .* got -1.0$"):
        bt.run_signals(entries=both, size={"A": 3.0, "B": -1.0})  # (one for all its bars: no row)
    # Sizes only for the symbol with entries are enough.
    only_a = bt.run_signals(entries={"A": np.ones(5, bool)}, size={"A": np.full(5, 2.0)},
                            size_type="amount")
    assert list(only_a.fills["size"]) == [2.0]


def _walk(n, seed, start="2024-01-01"):
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    opens = np.concatenate([[100.0], closes[:-1]])
    return make_bars([(o, max(o, c) * 1.01, min(o, c) * 0.99, c) for o, c in zip(opens, closes)],
                     start=start)


def test_grid_sets_with_their_own_sizes_and_stops_equal_runs_alone():
    data = {"A": _walk(80, 1), "B": _walk(70, 2, "2024-01-05")}
    bt = tickstep.Backtest(data, tickstep.Strategy, on_reject="ignore")
    rng = np.random.default_rng(3)
    sets = {}
    for k, (size, size_type, sl) in enumerate([(0.3, "percent", None), (0.6, "target_percent", 0.05),
                                               (20.0, "amount", None), (2_000.0, "value", 0.02)]):
        entries = {s: rng.random(len(df)) < 0.2 for s, df in data.items()}
        exits = {s: rng.random(len(df)) < 0.1 for s, df in data.items()}
        sets[k] = {"entries": entries, "exits": exits, "size": size, "size_type": size_type, "sl": sl}
    sets["lots"] = {**sets[0], "lot_size": {"A": 5.0}}  # A's entries in lots of 5
    sets["pyramid"] = {**sets[2], "accumulate": True}    # entries add to the side held
    sets["timed"] = {**sets[1], "exit_after_bars": 3}     # positions held 3 bars at most
    table = bt.run_signal_grid(sets, threads=2)
    assert table["# Trades"].min() > 0
    for key, sig in sets.items():
        alone = bt.run_signals(**sig).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    # The sets differ only in their rules: the rows differ.
    assert table["Equity Final [$]"].nunique() == len(sets)


def _grid_case(seed, exit_rate):
    """Two symbols' random walks (B's starting later), a backtest of them, a random
    generator, and random entries and exits."""
    data = {"A": _walk(80, seed), "B": _walk(70, seed + 1, "2024-01-05")}
    bt = tickstep.Backtest(data, tickstep.Strategy, on_reject="ignore")
    rng = np.random.default_rng(seed + 2)
    entries = {s: rng.random(len(df)) < 0.2 for s, df in data.items()}
    exits = {s: rng.random(len(df)) < exit_rate for s, df in data.items()}
    return data, bt, rng, entries, exits


def test_grid_sets_with_stops_per_symbol_or_per_bar_equal_runs_alone():
    data, bt, rng, entries, exits = _grid_case(7, 0.05)

    def per_bar(scale):
        return {s: np.where(rng.random(len(df)) < 0.3, np.nan, scale * (0.5 + rng.random(len(df))))
                for s, df in data.items()}

    sets = {"one": {"entries": entries, "exits": exits, "sl": 0.01},
            "by symbol": {"entries": entries, "exits": exits, "sl": {"A": 0.01, "B": 0.02},
                          "tp": pd.Series({"B": 0.015})},
            "by bar": {"entries": entries, "exits": exits, "sl": per_bar(0.01), "tp": per_bar(0.02)},
            "trail by symbol": {"entries": entries, "exits": exits, "sl_trail": {"A": 0.01}},
            # The call's stops (per bar) for a set that names none.
            "call's": {"entries": entries, "exits": exits}}
    call_tp = per_bar(0.01)
    table = bt.run_signal_grid(sets, tp=call_tp, threads=2)
    assert table["# Trades"].min() > 0
    for key, sig in sets.items():
        alone = bt.run_signals(**{"tp": call_tp, **sig}).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    assert table["Equity Final [$]"].nunique() == len(sets)
    # Stops per set as frames of sets (vectorbt's layout): a column per set and symbol.
    union = data["A"].index.union(data["B"].index)
    sl = pd.concat({k: pd.DataFrame({s: pd.Series(v, index=data[s].index) for s, v in per_bar(0.01 * k).items()})
                    .reindex(union) for k in (1, 2)}, axis=1, names=["k", "symbol"])
    by_frames = bt.run_signal_grid(entries=pd.DataFrame({s: pd.Series(v, index=data[s].index)
                                                         for s, v in entries.items()}).reindex(union, fill_value=False),
                                   sl=sl)
    for k in (1, 2):
        alone = bt.run_signals(entries=entries, sl=sl[k]).stats
        pd.testing.assert_series_equal(by_frames.loc[k].rename(None), alone.rename(None)[by_frames.columns],
                                       check_exact=True, check_dtype=False)


def test_a_grid_holds_no_column_for_numbers_per_symbol_and_one_per_shared_object():
    # Sixty sets of stops over the same entries and exits, each set's numbers per symbol
    # its own: they go to the core as one value each, and the shared signals are
    # converted to columns once, not once per set (a grid of 100 such sets over 20
    # symbols × 136,544 minutes held 4.7 GB before). The rows still equal the runs alone.
    bars = 20_000
    data = {"A": _walk(bars, 11), "B": _walk(bars, 12)}
    bt = tickstep.Backtest(data, tickstep.Strategy, on_reject="ignore")
    rng = np.random.default_rng(13)
    entries = {s: rng.random(bars) < 0.02 for s in data}
    exits = {s: rng.random(bars) < 0.02 for s in data}
    sets = {k: {"entries": entries, "exits": exits, "size": 0.3,
                "sl": {"A": 0.01 + k / 2_000, "B": 0.04 - k / 3_000},
                "tp": {"A": 0.02 + k / 1_000, "B": 0.08 - k / 1_500}} for k in range(60)}
    tracemalloc.start()
    try:
        table = bt.run_signal_grid(sets, threads=2)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    one_set = 2 * bars * (2 * 8 + 2 * 1)  # two symbols' stop columns and signal columns
    assert peak < 10 * one_set, f"{peak / 1e6:.1f} MB traced for the grid's {len(sets)} sets"
    for key in (0, 1, 7, 59):
        alone = bt.run_signals(**sets[key]).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    assert table["# Trades"].min() > 0 and table["Equity Final [$]"].nunique() > 1


def test_a_number_per_symbol_is_one_read_only_value():
    market = tickstep.Backtest({"A": _walk(30, 1), "B": _walk(30, 2)}, tickstep.Strategy).market
    # Sizes, stops, time exits and limits: one value, which the core reads on every bar.
    for kind in ("size", "sl", "tp", "sl_trail", "exit_after_bars", "limit"):
        a, b = signal_columns(market, {"A": 2, "B": np.nan}, kind)
        assert a.tolist() == [2.0] and np.isnan(b).all() and len(b) == 1
        with pytest.raises(ValueError, match="read-only"):
            a[0] = 0.5


def test_grid_sets_with_sizes_per_bar_equal_runs_alone():
    data, bt, rng, entries, exits = _grid_case(4, 0.1)

    def sizes(scale):
        return {s: np.where(rng.random(len(df)) < 0.2, np.nan, scale * rng.random(len(df)))
                for s, df in data.items()}

    sets = {("per bar", "value"): {"entries": entries, "exits": exits, "size": sizes(3_000.0),
                                   "size_type": "value"},
            ("per bar", "target_percent"): {"entries": entries, "exits": exits,
                                             "size": sizes(0.5), "size_type": "target_percent"},
            ("one", "value"): {"entries": entries, "exits": exits, "size": 1_500.0,
                               "size_type": "value"}}
    # And sizes per bar given to the call, for every set that names none.
    call_sizes = sizes(20.0)
    sets[("call", "amount")] = {"entries": entries, "exits": exits, "size_type": "amount"}
    table = bt.run_signal_grid(sets, size=call_sizes, threads=2)
    assert table["# Trades"].min() > 0
    for key, sig in sets.items():
        alone = bt.run_signals(**{"size": call_sizes, **sig}).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    assert table["Equity Final [$]"].nunique() == len(sets)


class Cross(tickstep.SignalStrategy):
    """SMA cross signals from each symbol's own bars."""

    size = 0.3
    fast = 3
    slow = 8

    def signals(self, symbol, bars):
        f = bars["close"].rolling(self.fast).mean().to_numpy()
        s = bars["close"].rolling(self.slow).mean().to_numpy()
        above, below = f > s, f < s
        before_above = np.concatenate([[False], above[:-1]])
        before_below = np.concatenate([[False], below[:-1]])
        return {"entries": above & ~before_above, "exits": below & ~before_below}


def _cross_signals(data, fast, slow):
    by_symbol = {s: Cross.signals(type("P", (), {"fast": fast, "slow": slow})(), s, df)
                 for s, df in data.items()}
    return {k: {s: v[k] for s, v in by_symbol.items()} for k in ("entries", "exits")}


def test_a_signal_strategy_runs_natively_and_its_grid_rows_equal_runs_alone():
    data = {"A": _walk(120, 4), "B": _walk(100, 5, "2024-01-10"), "C": _walk(90, 6)}
    bt = tickstep.Backtest(data, Cross, on_reject="ignore")
    result = bt.run(fast=4, sl=0.05)
    assert result.stats["# Trades"] > 0
    assert result.strategy_name == "Cross"
    by_signals = bt.run_signals(**_cross_signals(data, 4, 8), size=0.3, sl=0.05)
    assert_same_run(result, by_signals)

    rows = bt.optimize(fast=[2, 3, 4], slow=[8, 12], size=[0.2, 0.5], cache=False,
                       constraint=lambda p: p.fast < p.slow)
    assert len(rows) == 12 and set(rows["status"]) == {"ok"}
    for _, row in rows.iterrows():
        alone = bt.run(fast=int(row["fast"]), slow=int(row["slow"]), size=float(row["size"])).stats
        for stat in ("Equity Final [$]", "# Trades", "Sharpe Ratio", "Max. Drawdown [%]"):
            assert row[stat] == alone[stat] or (pd.isna(row[stat]) and pd.isna(alone[stat])), stat


def _risk_sizes(bars, risk):
    """``risk`` / the bars' recent range as a fraction of the close (NaN before it is known)."""
    spread = (bars["high"] - bars["low"]).rolling(5).mean() / bars["close"]
    return (risk / spread).to_numpy()


class VolSizedCross(Cross):
    """The cross, each entry sized per bar to a cash risk: ``risk`` / the close's recent
    range (NaN, so no entry, before the range is known)."""

    size_type = "value"
    risk = 50.0

    def signals(self, symbol, bars):
        return {**super().signals(symbol, bars), "size": _risk_sizes(bars, self.risk)}


def test_a_signal_strategy_may_size_its_entries_per_bar():
    data = {"A": _walk(120, 7), "B": _walk(100, 8, "2024-01-10")}
    bt = tickstep.Backtest(data, VolSizedCross, on_reject="ignore")
    result = bt.run(fast=4)
    assert result.stats["# Trades"] > 0
    sig = _cross_signals(data, 4, 8)
    sizes = {s: _risk_sizes(df, 50.0) for s, df in data.items()}
    assert_same_run(result, bt.run_signals(**sig, size=sizes, size_type="value"))
    # Each entry's value is risk / spread at its bar: fills differ from a fixed size's.
    fixed = bt.run_signals(**sig, size=1_000.0, size_type="value")
    assert not result.fills["size"].equals(fixed.fills["size"])
    rows = bt.optimize(fast=[3, 4], risk=[20.0, 50.0], cache=False)
    assert set(rows["status"]) == {"ok"}
    # The rules are parameters too: whole lots (one for all, or by symbol), pyramiding.
    in_lots = bt.run(fast=4, lot_size={"A": 10.0}, accumulate=True, exit_after_bars=5)
    assert (in_lots.fills.query("symbol == 'A'")["size"] % 10 == 0).all()
    assert_same_run(in_lots, bt.run_signals(**sig, size=sizes, size_type="value",
                                            lot_size={"A": 10.0}, accumulate=True,
                                            exit_after_bars=5))
    for _, row in rows.iterrows():
        alone = bt.run(fast=int(row["fast"]), risk=float(row["risk"])).stats
        assert row["Equity Final [$]"] == alone["Equity Final [$]"]


class RangeStoppedCross(Cross):
    """The cross, each entry's stop-loss ``width`` times the close's recent range below
    it (as a fraction of the close, per bar; NaN, so no stop, before the range is known)."""

    width = 2.0

    def signals(self, symbol, bars):
        spread = (bars["high"] - bars["low"]).rolling(5).mean() / bars["close"]
        return {**super().signals(symbol, bars), "sl": (self.width * spread).to_numpy()}


def test_a_signal_strategy_may_give_its_stops_per_bar_or_per_symbol():
    data = {"A": _walk(120, 9), "B": _walk(100, 10, "2024-01-10")}
    bt = tickstep.Backtest(data, RangeStoppedCross, on_reject="ignore")
    sig = _cross_signals(data, 4, 8)
    result = bt.run(fast=4, size=0.3, tp={"B": 0.03})
    stops = {s: (2.0 * (df["high"] - df["low"]).rolling(5).mean() / df["close"]).to_numpy()
             for s, df in data.items()}
    assert_same_run(result, bt.run_signals(**sig, size=0.3, sl=stops, tp={"B": 0.03}))
    assert set(result.fills["role"]) >= {"stop_loss", "take_profit"}
    # Other widths, other stops: the parameter reaches the stops per bar.
    rows = bt.optimize(fast=[4], width=[1.0, 3.0], size=[0.3], cache=False)
    assert set(rows["status"]) == {"ok"}
    for _, row in rows.iterrows():
        alone = bt.run(fast=4, width=float(row["width"]), size=0.3).stats
        assert row["Equity Final [$]"] == alone["Equity Final [$]"]
    assert rows["Equity Final [$]"].nunique() == 2
    # Parameters by symbol: each symbol's own size (where the class sets one number),
    # the trailing stop of A alone.
    sized = tickstep.Backtest(data, Cross, on_reject="ignore").run(fast=4, size={"A": 0.2, "B": 0.4})
    assert_same_run(sized, bt.run_signals(**sig, size={"A": 0.2, "B": 0.4}))
    trailed = tickstep.Backtest(data, Cross, on_reject="ignore").run(fast=4, size=0.3,
                                                                     sl_trail={"A": 0.02})
    assert_same_run(trailed, bt.run_signals(**sig, size=0.3, sl_trail={"A": 0.02}))


class TimedCross(Cross):
    """The cross, each entry's position held at most ``hold`` bars, twice that when the
    close is above its 20-bar mean (per bar)."""

    hold = 3

    def signals(self, symbol, bars):
        above = (bars["close"] > bars["close"].rolling(20, min_periods=1).mean()).to_numpy()
        return {**super().signals(symbol, bars), "exit_after_bars": np.where(above, 2 * self.hold, self.hold)}


def test_time_exits_per_symbol_or_per_bar_in_a_grid_and_a_signal_strategy_equal_runs_alone():
    data, bt, rng, entries, exits = _grid_case(17, 0.02)
    # (NaN on some bars, not on A's first entry's: a position opened there is held to its
    # exit signal, as without a time exit.)
    per_bar = {s: np.where(rng.random(len(df)) < 0.2, np.nan, rng.integers(1, 6, len(df))) for s, df in data.items()}
    per_bar["A"][np.argmax(entries["A"])] = 3
    sets = {"one": {"entries": entries, "exits": exits, "exit_after_bars": 2},
            "by symbol": {"entries": entries, "exits": exits, "exit_after_bars": {"A": 1, "B": 4}},
            "by bar": {"entries": entries, "exits": exits, "exit_after_bars": per_bar},
            "call's": {"entries": entries, "exits": exits}}
    table = bt.run_signal_grid(sets, exit_after_bars={"B": 2}, threads=2)
    for key, sig in sets.items():
        alone = bt.run_signals(**{"exit_after_bars": {"B": 2}, **sig}).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    assert table["Equity Final [$]"].nunique() == len(sets)
    # Frames of sets (vectorbt's layout): each set's time exits per bar.
    union = data["A"].index.union(data["B"].index)
    frames = pd.concat({k: pd.DataFrame({s: pd.Series(np.full(len(df), float(k)), index=df.index)
                                         for s, df in data.items()}).reindex(union) for k in (1, 3)},
                       axis=1, names=["hold", "symbol"])
    by_entries = pd.DataFrame({s: pd.Series(v, index=data[s].index) for s, v in entries.items()}
                              ).reindex(union, fill_value=False)
    by_frames = bt.run_signal_grid(entries=by_entries, exit_after_bars=frames)
    for k in (1, 3):
        alone = bt.run_signals(entries=entries, exit_after_bars=k).stats
        pd.testing.assert_series_equal(by_frames.loc[k].rename(None), alone.rename(None)[by_frames.columns],
                                       check_exact=True, check_dtype=False)
    # A SignalStrategy: the parameter by symbol, or its time exits per bar from signals().
    cross = tickstep.Backtest(data, Cross, on_reject="ignore")
    sig = _cross_signals(data, 3, 8)
    assert_same_run(cross.run(exit_after_bars={"A": 2}), bt.run_signals(**sig, size=0.3, exit_after_bars={"A": 2}))
    timed = tickstep.Backtest(data, TimedCross, on_reject="ignore")
    holds = {s: np.where((df["close"] > df["close"].rolling(20, min_periods=1).mean()).to_numpy(), 6, 3)
             for s, df in data.items()}
    result = timed.run()
    assert_same_run(result, bt.run_signals(**sig, size=0.3, exit_after_bars=holds))
    rows = timed.optimize(hold=[1, 3], cache=False)
    assert set(rows["status"]) == {"ok"} and rows["Equity Final [$]"].nunique() == 2
    for _, row in rows.iterrows():
        assert row["Equity Final [$]"] == timed.run(hold=int(row["hold"])).stats["Equity Final [$]"]


def test_run_batch_of_a_signal_strategy_natively_equals_worker_processes():
    from tickstep.batch import run_batch

    data = {"A": _walk(120, 7), "B": _walk(100, 8)}
    params = {"fast": [2, 3], "slow": [9, 15]}
    native = run_batch(Cross, data, params=params, cache=False, on_reject="ignore")
    pooled = run_batch(Cross, data, params=params, cache=False, on_reject="ignore",
                       executor="process", max_workers=2)
    assert len(native) == 8 and set(native["status"]) == {"ok"}
    columns = ["fast", "slow", "symbols", "Equity Final [$]", "# Trades", "Sharpe Ratio"]
    pd.testing.assert_frame_equal(native.sort_index()[columns], pooled.sort_index()[columns])
    bt = tickstep.Backtest({"B": data["B"]}, Cross, on_reject="ignore")
    row = native[(native["symbols"] == "B") & (native["fast"] == 3) & (native["slow"] == 15)].iloc[0]
    assert row["Equity Final [$]"] == bt.run(fast=3, slow=15).stats["Equity Final [$]"]


class StoppedCross(Cross):
    """The cross with a take-profit of its own for A and C (a default by symbol)."""

    tp = {"A": 0.03, "C": 0.02}


def test_a_batch_of_each_symbol_alone_gives_each_its_own_entries_of_parameters_by_symbol():
    from tickstep.batch import run_batch

    data = {"A": _walk(150, 21), "B": _walk(130, 22, "2024-01-03"), "C": _walk(140, 23)}
    params = {"sl": [{"A": 0.01, "B": 0.015}, {"C": 0.01}],
              "size": [{"A": 0.2, "B": 0.4, "C": 0.3}], "exit_after_bars": [None, {"B": 3}]}
    columns = ["Equity Final [$]", "# Trades", "Sharpe Ratio", "Max. Drawdown [%]", "Exposure Time [%]"]
    for executor in (None, "sequential"):
        rows = run_batch(StoppedCross, data, params=params, cache=False, on_reject="ignore",
                         executor=executor)
        assert len(rows) == 12 and set(rows["status"]) == {"ok"}
        for _, row in rows.iterrows():
            symbol = row["symbols"]
            # Alone, the symbol is given its own entries (a mapping without it: none).
            own = {name: {s: v for s, v in row[name].items() if s == symbol} if isinstance(row[name], dict)
                   else row[name] for name in ("sl", "size", "exit_after_bars")}
            alone = tickstep.Backtest({symbol: data[symbol]}, StoppedCross, on_reject="ignore").run(
                **own, tp={"A": 0.03, "C": 0.02}.get(symbol)).stats
            for stat in columns:
                assert row[stat] == alone[stat] or (pd.isna(row[stat]) and pd.isna(alone[stat])), (symbol, stat)
    # The entries mattered: A's own stop, B's time exit, A's and C's take-profits.
    a_rows = rows[rows["symbols"] == "A"].set_index(rows["sl"].map(str)[rows["symbols"] == "A"])
    assert a_rows["Equity Final [$]"].nunique() == 2
    b_rows = rows[rows["symbols"] == "B"]
    assert b_rows["Equity Final [$]"].nunique() > 1
    stopped = tickstep.Backtest({"A": data["A"]}, Cross, on_reject="ignore")
    assert "stop_loss" in set(stopped.run(sl=0.01, size=0.2, tp=0.03).fills["role"])
    assert "take_profit" in set(stopped.run(size=0.2, tp=0.03).fills["role"])
    # All symbols in one run: each row is the portfolio's run with the mappings whole.
    together = run_batch(StoppedCross, data, params=params, portfolio=True, cache=False,
                         on_reject="ignore")
    bt = tickstep.Backtest(data, StoppedCross, on_reject="ignore")
    for _, row in together.iterrows():
        alone = bt.run(sl=row["sl"], size=row["size"], exit_after_bars=row["exit_after_bars"]).stats
        assert row["Equity Final [$]"] == alone["Equity Final [$]"]


def test_a_symbol_a_batchs_parameter_by_symbol_names_is_checked_against_the_data_once():
    from tickstep.batch import run_batch

    data = {"A": _walk(80, 24), "B": _walk(80, 25)}
    with pytest.raises(tickstep.ConfigError,
                       match=r"Cross parameter sl=\{'A': 0.01, 'BB': 0.02\}: 'BB' is not a symbol "
                             r"of the data — did you mean 'B'\?"):
        run_batch(Cross, data, params={"sl": [{"A": 0.01}, {"A": 0.01, "BB": 0.02}]}, cache=False)
    with pytest.raises(tickstep.ConfigError, match=r"size=\{'AA': 0.2\}: 'AA' is not a symbol"):
        run_batch(Cross, data, params=[{"fast": 2}, {"size": {"AA": 0.2}}], cache=False)
    # A default by symbol too, and through optimize (one run over all the symbols).
    with pytest.raises(tickstep.ConfigError, match=r"StoppedCross parameter tp=.*'C' is not a symbol"):
        run_batch(StoppedCross, data, params={"fast": [2, 3]}, cache=False)
    with pytest.raises(tickstep.ConfigError, match=r"lot_size=\{'a': 1\}: 'a' is not a symbol .* 'A'"):
        tickstep.Backtest(data, Cross).optimize(fast=[2, 3], lot_size=[None, {"a": 1}], cache=False)
    # Some symbols of the data chosen: a name among the others is theirs (as for the
    # options by symbol), and the chosen ones run as alone.
    rows = run_batch(StoppedCross, {**data, "C": _walk(80, 26)}, symbols=["A", "B"], params={"fast": [2]},
                     cache=False, on_reject="ignore")
    assert set(rows["status"]) == {"ok"}
    a = rows[rows["symbols"] == "A"].iloc[0]
    assert a["Equity Final [$]"] == tickstep.Backtest({"A": data["A"]}, Cross, on_reject="ignore").run(
        fast=2, tp=0.03).stats["Equity Final [$]"]

def test_limit_entries_by_hand_fill_at_their_limit_and_are_cancelled_replaced_or_expire():
    rows = [(100, 101, 99, 100), (100, 101, 99, 100), (99, 99.5, 97, 98), (98, 100, 98, 99),
            (99, 102, 98, 101), (101, 102, 100, 101)]
    bt = tickstep.Backtest(make_bars(rows), tickstep.Strategy)
    on = lambda *bars: np.isin(np.arange(len(rows)), bars)  # noqa: E731
    # Bar 0's entry: a buy limit 2% below its close, 98, of 980 / 98 = 10 units (sized at
    # the limit); bar 1's low 99 does not reach it, bar 2's 97 does: bought at 98. Its
    # stops are fractions of the limit: the stop-loss at 98 x 0.9 = 88.2. The exit on bar
    # 4 sells at bar 5's open 101: P&L 10 x 3 = 30.
    result = bt.run_signals(entries=on(0), exits=on(4), size=980.0, size_type="value", limit=0.02, sl=0.1)
    entry = result.orders[result.orders["role"] == "entry"].iloc[0]
    assert entry["limit"] == pytest.approx(98.0) and entry["sl"] == pytest.approx(88.2)
    assert list(result.fills["price"]) == pytest.approx([98.0, 101.0])
    assert list(result.fills["size"]) == pytest.approx([10.0, 10.0])
    assert result.fills["time"].iloc[0] == make_bars(rows).index[2]
    assert result.trades.iloc[0]["pnl"] == pytest.approx(30.0)
    # An exit of its side before it fills cancels it (bar 1): nothing is bought.
    cancelled = bt.run_signals(entries=on(0), exits=on(1), size=980.0, size_type="value", limit=0.02)
    assert result.stats["# Trades"] == 1 and cancelled.stats["# Trades"] == 0
    order = cancelled.orders.iloc[0]
    assert order["status"] == "cancelled" and order["limit"] == pytest.approx(98.0)
    # Working one bar only: bar 1 does not reach it, and it expires there.
    expired = bt.run_signals(entries=on(0), size=980.0, size_type="value", limit=0.02, limit_bars=1)
    assert expired.stats["# Trades"] == 0 and expired.orders.iloc[0]["status"] == "expired"
    # A later entry replaces it: bar 0's limit 98.5 (1.5% below 100) is not reached by bar
    # 1 (low 99), whose entry cancels it and places its own (98.5 again), reached by bar
    # 2's low 97: one fill, of the second order.
    replaced = bt.run_signals(entries=on(0, 1), size=985.0, size_type="value", limit=0.015)
    orders = replaced.orders[replaced.orders["role"] == "entry"]
    assert list(orders["status"]) == ["cancelled", "filled"]
    assert list(orders["limit"]) == pytest.approx([98.5, 98.5])
    assert list(replaced.fills["order_id"]) == [orders["order_id"].iloc[1]]
    assert list(replaced.fills["price"]) == pytest.approx([98.5])
    # A short's limit is above the close: bar 0's sell limit at 100 x 1.01 = 101, reached
    # by bar 4's high 102 (bars 1-3 top at 101, 99.5 and 100: bar 1 touches it).
    short = bt.run_signals(short_entries=on(0), size=10.0, size_type="amount", limit=0.01)
    assert list(short.fills["price"]) == pytest.approx([101.0])
    assert short.fills["time"].iloc[0] == make_bars(rows).index[1]
    # To a target: bar 0's long limit 99 (1% under 100) for half the equity, 5 000 / 99
    # units, reached by bar 1's low 99; bar 3's short entry reverses: the long is closed
    # at bar 4's open 99 (a market order) and the short's limit, 99 x 1.01 = 99.99, for
    # half the equity then (10 000: bought and marked at 99), is reached by bar 4's high.
    target = bt.run_signals(entries=on(0), short_entries=on(3), size=0.5, size_type="target_percent",
                            limit=0.01)
    assert list(target.fills["role"]) == ["entry", "close", "entry"]
    assert list(target.fills["price"]) == pytest.approx([99.0, 99.0, 99.99])
    assert list(target.fills["size"]) == pytest.approx([5_000 / 99, 5_000 / 99, 5_000 / 99.99])
    assert list(target.fills["side"]) == ["buy", "sell", "sell"]
    # Prices per bar instead (NaN: a market entry on that bar): bar 0's at 97.5 fills at
    # bar 2 (low 97), bar 2's exit sells at bar 3's open 98; a market entry on bar 3 is
    # bought at bar 4's open 99.
    prices = np.array([97.5, np.nan, np.nan, np.nan, np.nan, np.nan])
    priced = bt.run_signals(entries=on(0, 3), exits=on(2), size=10.0, size_type="amount",
                            limit_price=prices)
    assert list(priced.fills["price"]) == pytest.approx([97.5, 98.0, 99.0])


def test_bad_limits_are_refused_by_name():
    rows = [(100, 101, 99, 100)] * 4
    bt = tickstep.Backtest({"A": make_bars(rows), "B": make_bars(rows)}, tickstep.Strategy)
    entries = {"A": np.array([True, False, False, False])}
    with pytest.raises(tickstep.ConfigError, match=r"limit = 1: must be a fraction of the close in \[0, 1\)"):
        bt.run_signals(entries, limit=1.0)
    with pytest.raises(tickstep.ConfigError, match=r"limit of A on the bar at .* \(its bar 2\) = -0.01: must be a "
                                                   r"fraction of the close"):
        bt.run_signals(entries, limit={"A": np.array([0.01, np.nan, -0.01, 0.0])})
    with pytest.raises(tickstep.ConfigError, match=r"limit_price\['A'\]: limit prices must be positive and finite .* "
                                                   r"got -5.0 at row 1"):
        bt.run_signals(entries, limit_price={"A": np.array([99.0, -5.0, np.nan, np.nan])})
    with pytest.raises(tickstep.ConfigError, match=r"limit of A: give limit as a fraction or limit_price per bar"):
        bt.run_signals(entries, limit=0.01, limit_price={"A": np.full(4, 99.0)})
    with pytest.raises(tickstep.ConfigError, match=r"limit_bars=0: must be a whole number of bars >= 1"):
        bt.run_signals(entries, limit=0.01, limit_bars=0)
    with pytest.raises(tickstep.ConfigError, match=r"limit='1%': must be a fraction of the entry bar's close"):
        bt.run_signals(entries, limit="1%")
    with pytest.raises(tickstep.ConfigError, match=r"limit: 'C' is not a symbol of the data"):
        bt.run_signals(entries, limit={"C": 0.01})


class LimitCross(Cross):
    """The cross, entering with a limit 2% better than the close, for two bars."""

    limit = 0.02
    limit_bars = 2


def test_limit_entries_in_a_grid_and_a_signal_strategy_equal_runs_alone():
    data, bt, rng, entries, exits = _grid_case(31, 0.1)
    per_bar = {s: np.where(rng.random(len(df)) < 0.3, np.nan, rng.random(len(df)) * 0.02)
               for s, df in data.items()}
    sets = {"one": {"entries": entries, "exits": exits, "limit": 0.01},
            "by symbol": {"entries": entries, "exits": exits, "limit": {"A": 0.005}, "limit_bars": 2},
            "by bar": {"entries": entries, "exits": exits, "limit": per_bar},
            "market": {"entries": entries, "exits": exits}}
    table = bt.run_signal_grid(sets, threads=2)
    for key, sig in sets.items():
        alone = bt.run_signals(**sig).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    assert table["Equity Final [$]"].nunique() == len(sets)
    cross = tickstep.Backtest(data, LimitCross, on_reject="ignore")
    sig = _cross_signals(data, 3, 8)
    result = cross.run()
    assert_same_run(result, bt.run_signals(**sig, size=0.3, limit=0.02, limit_bars=2))
    assert set(result.orders.loc[result.orders["role"] == "entry", "status"]) >= {"filled", "expired"}
    rows = cross.optimize(limit=[0.0, 0.01, {"A": 0.02}], limit_bars=[None, 2], cache=False)
    assert set(rows["status"]) == {"ok"} and rows["Equity Final [$]"].nunique() > 3
    for _, row in rows.iterrows():
        bars = None if pd.isna(row["limit_bars"]) else int(row["limit_bars"])
        alone = cross.run(limit=row["limit"], limit_bars=bars).stats
        assert row["Equity Final [$]"] == alone["Equity Final [$]"]

class Failing(Cross):
    def signals(self, symbol, bars):
        if self.fast == 3:
            raise ValueError("no signals for fast=3")
        return super().signals(symbol, bars)


def test_a_failing_parameter_set_is_its_own_error_row_and_misuse_is_refused():
    data = {"A": _walk(60, 9)}
    bt = tickstep.Backtest(data, Failing, on_reject="ignore")
    rows = bt.optimize(fast=[2, 3, 4], cache=False)
    status = dict(zip(rows["fast"], rows["status"]))
    assert status == {2: "ok", 3: "error", 4: "ok"}
    assert "no signals for fast=3" in rows.loc[rows["fast"] == 3, "error"].iloc[0]

    class Unknown(tickstep.SignalStrategy):
        def signals(self, symbol, bars):
            return {"entry": np.ones(len(bars), bool)}

    with pytest.raises(tickstep.ConfigError, match=r"unknown signal 'entry'.*did you mean 'entries'"):
        tickstep.Backtest(data, Unknown).run()

    class Short(tickstep.SignalStrategy):
        fast = 2

        def signals(self, symbol, bars):
            return {"entries": np.ones(len(bars) - 1, bool)}

    # A refusal of what signals() returned names the symbol and the rule, and says where
    # the values came from; in a grid, in that set's error row.
    with pytest.raises(tickstep.ConfigError, match=r"entries\['A'\]: 59 values for its 60 bars") as refused:
        tickstep.Backtest(data, Short).run()
    assert refused.value.__notes__ == ["tickstep: in what Short.signals(symbol, bars) returned"]
    rows = tickstep.Backtest(data, Short).optimize(fast=[2, 3], cache=False)
    assert list(rows["status"]) == ["error", "error"]
    assert all("in what Short.signals(symbol, bars) returned" in e for e in rows["error"])
    with pytest.raises(TypeError, match=r"Cross has no parameter 'fats'"):
        tickstep.Backtest(data, Cross).run(fats=2)
    from tickstep.simulation import simulate

    with pytest.raises(TypeError, match=r"Cross is a SignalStrategy: it runs in signals mode"):
        simulate(tickstep.Backtest(data, Cross).market, Cross, tickstep.BacktestConfig())


def test_signals_that_contradict_each_other_or_the_position_are_read_as_asked():
    # Every price 100; 5 units an entry, filled at the next open (bar k's fill: day k).
    bt = tickstep.Backtest({"X": make_bars([(100, 101, 99, 100)] * 9)}, tickstep.Strategy)

    def on(*bars):
        return {"X": np.isin(np.arange(9), bars)}

    def fills(**signals_and_rules):
        r = bt.run_signals(size=5, size_type="amount", **signals_and_rules)
        days = (r.fills["time"] - pd.Timestamp("2024-01-01", tz="UTC")).dt.days
        signed = np.where(r.fills["side"] == "buy", 1, -1) * r.fills["size"]
        return list(zip(days, signed))

    # An entry and an exit together on bar 2 (long) and bar 5 (flat); an exit on bar 4.
    same_side = {"entries": on(0, 2, 5), "exits": on(2, 4, 5)}
    assert fills(**same_side) == [(1, 5), (3, -5)]  # the exit acts
    assert fills(**same_side, conflict="exit") == [(1, 5), (3, -5)]
    # The entry acts: bar 2's adds nothing (no pyramiding), bar 5's buys at day 6.
    assert fills(**same_side, conflict="entry") == [(1, 5), (5, -5), (6, 5)]
    assert fills(**same_side, conflict="ignore") == [(1, 5), (5, -5)]  # neither acts
    # Both entries on bar 0; exits of both sides on bar 2.
    both = {"entries": on(0), "short_entries": on(0), "exits": on(2), "short_exits": on(2)}
    assert fills(**both) == []
    assert fills(**both, side_conflict="long") == [(1, 5), (3, -5)]
    assert fills(**both, side_conflict="short") == [(1, -5), (3, 5)]
    # Long from bar 0, a short entry on bar 2, exits of both sides on bar 6.
    opposite = {"entries": on(0), "short_entries": on(2), "exits": on(6), "short_exits": on(6)}
    assert fills(**opposite) == [(1, 5), (3, -5), (3, -5), (7, 5)]  # reversed
    assert fills(**opposite, opposite_entry="close") == [(1, 5), (3, -5)]
    assert fills(**opposite, opposite_entry="ignore") == [(1, 5), (7, -5)]
    # With target percent: the opposite entry only closes, or does nothing.
    target = {"size": 0.05, "size_type": "target_percent"}
    r = bt.run_signals(**opposite, **target, opposite_entry="close")
    assert list(r.fills["side"]) == ["buy", "sell"] and r.fills["size"].tolist() == [5.0, 5.0]
    r = bt.run_signals(**opposite, **target, opposite_entry="ignore")
    assert r.fills["time"].dt.day.tolist() == [2, 8]
    # A time exit is the rules' own: 2 bars after the fill at day 1 it exits on bar 3
    # (filled at day 4) even where an entry wins over exit signals; a short entry there
    # still reverses, or only closes nothing more, or is ignored.
    timed = {"entries": on(0, 3), "short_entries": on(3), "exits": on(6), "short_exits": on(6),
             "exit_after_bars": 2, "conflict": "entry"}
    assert fills(**timed) == [(1, 5), (4, -5), (4, -5), (7, 5)]
    assert fills(**timed, opposite_entry="close") == [(1, 5), (4, -5)]
    assert fills(**timed, opposite_entry="ignore") == [(1, 5), (4, -5)]


def test_readings_of_conflicting_signals_are_refused_by_name_and_vary_in_a_grid_and_a_strategy():
    data, bt, rng, entries, exits = _grid_case(41, 0.2)
    with pytest.raises(tickstep.ConfigError, match=r"conflict='exits': must be one of exit, entry, "
                                                   r"ignore — did you mean 'exit'\?"):
        bt.run_signals(entries, exits, conflict="exits")
    with pytest.raises(tickstep.ConfigError, match=r"side_conflict='both': must be one of ignore, long, "
                                                   r"short"):
        bt.run_signals(entries, exits, side_conflict="both")
    with pytest.raises(tickstep.ConfigError, match=r"signal set 'b': opposite_entry=True: must be one "
                                                   r"of reverse, close, ignore"):
        bt.run_signal_grid({"a": {"entries": entries}, "b": {"entries": entries, "opposite_entry": True}})
    shorts = {s: rng.random(len(df)) < 0.2 for s, df in data.items()}
    sets = {(conflict, opposite): {"entries": entries, "exits": exits, "short_entries": shorts,
                                   "conflict": conflict, "opposite_entry": opposite}
            for conflict in CONFLICT_RULES["conflict"] for opposite in CONFLICT_RULES["opposite_entry"]}
    table = bt.run_signal_grid(sets, size=0.2, threads=2)
    for key, sig in sets.items():
        alone = bt.run_signals(**sig, size=0.2).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    # Each reading of each option changed the run (with the other option's default).
    equity = table["Equity Final [$]"]
    assert equity.xs("reverse", level=1).nunique() == equity.xs("exit", level=0).nunique() == 3
    # The readings are a SignalStrategy's parameters too: a grid over them.
    cross = tickstep.Backtest(data, Cross, on_reject="ignore")
    sig = _cross_signals(data, 3, 8)
    assert_same_run(cross.run(conflict="ignore"), bt.run_signals(**sig, size=0.3, conflict="ignore"))
    rows = cross.optimize(conflict=list(CONFLICT_RULES["conflict"]), cache=False)
    for _, row in rows.iterrows():
        assert row["Equity Final [$]"] == cross.run(conflict=row["conflict"]).stats["Equity Final [$]"]


def _renamed(value, names):
    """``value`` (a mapping by symbol, a frame with a column per symbol, a Series indexed
    by symbol, or anything else) with the symbols renamed by ``names``."""
    if isinstance(value, dict) and value and set(value) <= set(names):
        return {names[k]: v for k, v in value.items()}
    if isinstance(value, pd.DataFrame):
        return value.rename(columns=names)
    if isinstance(value, pd.Series) and set(value.index) <= set(names):
        return value.rename(index=names)
    return value


def _named_by_place(result, order):
    """The run's fills, trades and orders with each symbol replaced by its place in the
    data's order, and its statistics."""
    place = {name: k for k, name in enumerate(order)}
    frames = []
    for frame in (result.fills, result.trades, result.orders):
        frame = frame.reset_index(drop=True).copy()
        frame["symbol"] = frame["symbol"].astype(str).map(place)
        frames.append(frame)
    return frames, result.equity, result.stats.drop(["Strategy"], errors="ignore")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markets_and_signals())
def test_a_signals_run_is_the_same_whatever_the_symbols_are_called(case):
    # The symbols renamed so that their names sort the other way round (the data's order
    # kept): every fill, trade, order, the equity and the statistics are the same, bit for
    # bit, with each symbol in its place. Cash is short now and then, so entries of one
    # bar compete for it and the order they are served in shows.
    data, signals, rules, _, options = case
    options = {**options, "cash": 10_000.0 if len(data) % 2 else 1_500.0}
    names = {name: f"{'ZYX'[k]}_{name.lower()}" for k, name in enumerate(data)}
    runs = []
    for rename in ({name: name for name in data}, names):
        bt = tickstep.Backtest(_renamed(data, rename), tickstep.Strategy, on_reject="ignore",
                               **{k: _renamed(v, rename) for k, v in options.items()})
        kinds = {k: _renamed(v, rename) for k, v in signal_kinds(signals).items()}
        run = bt.run_signals(**kinds, **{k: _renamed(v, rename) for k, v in rules.items()})
        runs.append(_named_by_place(run, list(rename.values())))
    (frames, equity, stats), (frames_renamed, equity_renamed, stats_renamed) = runs
    for a, b in zip(frames, frames_renamed):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    pd.testing.assert_series_equal(equity, equity_renamed, check_exact=True)
    pd.testing.assert_series_equal(stats, stats_renamed, check_exact=True)


def test_an_exit_closes_its_portion_of_the_position_by_hand():
    # Opens equal closes: 100, 100, 110, 120, 130, 140; fills at the next open.
    rows = [(p, p + 1, p - 1, p) for p in (100, 100, 110, 120, 130, 140)]
    bt = tickstep.Backtest({"A": make_bars(rows)}, tickstep.Strategy)
    entries = np.array([True, False, False, False, False, False])
    exits = np.array([False, True, False, True, False, False])
    half = bt.run_signals(entries=entries, exits=exits, size=10.0, size_type="amount",
                          exit_portion=0.5)
    # 10 bought at bar 1's open 100; half sold at bar 2's 110 (+50), half of the 5 left
    # at bar 4's 130 (+75); 2.5 held, worth 140 at the last close (+100).
    assert list(half.fills["size"]) == [10.0, 5.0, 2.5]
    assert list(half.fills["price"]) == [100.0, 110.0, 130.0]
    assert list(half.trades["size"]) == [5.0, 2.5]
    assert list(half.trades["pnl"]) == [50.0, 75.0]
    assert half.stats["Equity Final [$]"] == 10_000.0 + 50.0 + 75.0 + 100.0
    # The same given per symbol (a Series by symbol, or {symbol: number}).
    for by_symbol in (pd.Series({"A": 0.5}), {"A": 0.5}):
        same = bt.run_signals(entries=entries, exits=exits, size=10.0, size_type="amount",
                              exit_portion=by_symbol)
        assert_same_run(same, half)
    # Per bar: a fifth on bar 1 (2 units, +20), then NaN: all 8 left (+240).
    portions = np.full(6, np.nan)
    portions[1] = 0.2
    own = bt.run_signals(entries=entries, exits=exits, size=10.0, size_type="amount",
                         exit_portion={"A": portions})
    assert list(own.fills["size"]) == [10.0, 2.0, 8.0]
    assert own.stats["Equity Final [$]"] == 10_000.0 + 20.0 + 240.0
    # None, 1 and NaN on every bar: all of it at the first exit.
    whole = bt.run_signals(entries=entries, exits=exits, size=10.0, size_type="amount")
    assert list(whole.fills["size"]) == [10.0, 10.0]
    for by_symbol in (1.0, {"A": np.full(6, np.nan)}):
        assert_same_run(bt.run_signals(entries=entries, exits=exits, size=10.0,
                                       size_type="amount", exit_portion=by_symbol), whole)


def test_exit_portions_out_of_range_or_with_lots_are_refused_by_name():
    rows = [(p, p + 1, p - 1, p) for p in (100, 100, 110, 120)]
    bt = tickstep.Backtest({"A": make_bars(rows), "B": make_bars(rows)}, tickstep.Strategy)
    both = {s: np.array([True, False, False, False]) for s in ("A", "B")}
    exits = {s: np.array([False, True, True, False]) for s in ("A", "B")}
    for bad in (0.0, 1.5, -0.2, np.nan):
        with pytest.raises(tickstep.ConfigError, match=r"exit_portion = .*: must be a portion of "
                                                       r"the position in \(0, 1\]"):
            bt.run_signals(entries=both, exits=exits, exit_portion=bad)
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion='half': must be the portion"):
        bt.run_signals(entries=both, exits=exits, exit_portion="half")
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion=True: must be the portion"):
        bt.run_signals(entries=both, exits=exits, exit_portion=True)
    portions = pd.DataFrame({"A": [np.nan, 0.5, 2.0, np.nan]}, index=make_bars(rows).index)
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion of A on the bar at 2024-01-03 "
                                                   r"00:00:00 UTC \(its bar 2\) = 2: must be a "
                                                   r"portion of the position in \(0, 1\]"):
        bt.run_signals(entries=both, exits=exits, exit_portion=portions)
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion of B = 0: must be a portion"):
        bt.run_signals(entries=both, exits=exits, exit_portion={"A": 0.5, "B": 0})
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion: 'Z' is not a symbol"):
        bt.run_signals(entries=both, exits=exits, exit_portion={"Z": 0.5})
    with pytest.raises(tickstep.ConfigError, match=r"exit portions must be numbers"):
        bt.run_signals(entries=both, exits=exits, exit_portion={"A": ["half"] * 4})
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion of A with lot_size = 10: a "
                                                   r"portion of the position below 1"):
        bt.run_signals(entries=both, exits=exits, exit_portion=0.5, lot_size={"A": 10})
    # All of it goes with lots; a symbol without lots may close a portion.
    lots = bt.run_signals(entries=both, exits=exits, size=30.0, size_type="amount",
                          exit_portion={"B": 0.5}, lot_size={"A": 10})
    assert list(lots.fills["size"]) == [30.0, 30.0, 30.0, 15.0, 7.5]


def test_grid_sets_with_their_own_exit_portions_equal_runs_alone():
    data, bt, rng, entries, exits = _grid_case(11, 0.15)
    per_bar = {s: rng.choice([np.nan, 0.3, 0.6], len(df)) for s, df in data.items()}
    sets = {"all": {"entries": entries, "exits": exits},
            "half": {"entries": entries, "exits": exits, "exit_portion": 0.5},
            "by symbol": {"entries": entries, "exits": exits, "exit_portion": {"A": 0.25}},
            "by bar": {"entries": entries, "exits": exits, "exit_portion": per_bar},
            "adding": {"entries": entries, "exits": exits, "exit_portion": 0.5, "accumulate": True}}
    table = bt.run_signal_grid(sets, size=0.2, threads=2)
    for key, sig in sets.items():
        alone = bt.run_signals(**{"size": 0.2, **sig}).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)
    assert table["Equity Final [$]"].nunique() == len(sets)
    # The call's own portion applies to every set that gives none.
    called = bt.run_signal_grid({"a": sets["all"]}, size=0.2, exit_portion=0.5)
    pd.testing.assert_series_equal(called.loc["a"].rename(None), table.loc["half"].rename(None))
    # A set's portion the core refuses is named with the set.
    bad = {**sets, "too much": {**sets["all"], "exit_portion": {"A": 2.0}}}
    with pytest.raises(tickstep.ConfigError, match=r"^signal set 'too much': exit_portion of A = 2: "
                                                   r"must be a portion of the position in \(0, 1\]"):
        bt.run_signal_grid(bad, size=0.2)
    with pytest.raises(tickstep.ConfigError, match=r"^signal set 'too much': limit = 2: must be"):
        bt.run_signal_grid({**sets, "too much": {**sets["all"], "limit": 2.0}}, size=0.2)


class PartCross(Cross):
    """The cross, each exit selling ``exit_portion`` of the position."""

    exit_portion = 0.5


def test_a_signal_strategy_may_close_a_portion_on_exits_and_grid_over_it():
    data = {"A": _walk(150, 21), "B": _walk(120, 22, "2024-01-10")}
    bt = tickstep.Backtest(data, PartCross, on_reject="ignore")
    result = bt.run(fast=4)
    sig = _cross_signals(data, 4, 8)
    assert_same_run(result, bt.run_signals(**sig, size=0.3, exit_portion=0.5))
    assert not result.fills.equals(bt.run_signals(**sig, size=0.3).fills)
    rows = bt.optimize(fast=[3, 4], exit_portion=[0.25, 0.5, 1.0], cache=False)
    assert set(rows["status"]) == {"ok"} and len(rows) == 6
    for _, row in rows.iterrows():
        alone = bt.run(fast=int(row["fast"]), exit_portion=float(row["exit_portion"])).stats
        for stat in ("Equity Final [$]", "# Trades", "Sharpe Ratio"):
            assert row[stat] == alone[stat] or (pd.isna(row[stat]) and pd.isna(alone[stat])), stat
    with pytest.raises(tickstep.ConfigError, match=r"exit_portion = 2: must be a portion"):
        bt.run(exit_portion=2.0)
