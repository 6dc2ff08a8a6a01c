"""backtesting.py habits that must not silently misbehave: ``self.position`` as the running
symbol's position, indicators declared only in ``init()``, windows checked by the name
the user wrote."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep


def frame(closes, start="2024-01-02"):
    closes = np.asarray(closes, dtype=float)
    index = pd.date_range(start, periods=len(closes), freq="D", tz="UTC")
    return pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes,
                         "volume": 1.0}, index=index)


DATA = {"AAA": frame([10, 11, 12, 13, 14, 15, 16, 17]), "BBB": frame([50, 49, 48, 47, 46, 45, 44, 43])}


class BuyOnceThenClose(tickstep.Strategy):
    """backtesting.py style: buy when flat, close two bars later."""

    def init(self):
        self.seen = []

    def next(self, symbol):
        pos = self.position
        self.seen.append((symbol, bool(pos), pos.size, pos.symbol))
        if not self.position:
            if len(self.seen) < 4:
                self.buy(size=1 if symbol == "AAA" else 2)
        elif self.bar().close in (13.0, 47.0):
            self.position.close()


def test_position_is_the_running_symbols_position():
    result = tickstep.Backtest(DATA, BuyOnceThenClose, cash=10_000).run()
    seen = result.strategy.seen
    # Day 1: both flat (buy); day 2: AAA holds 1, BBB holds 2 (bought at day 2's open).
    assert seen[:4] == [("AAA", False, 0.0, "AAA"), ("BBB", False, 0.0, "BBB"),
                        ("AAA", True, 1.0, "AAA"), ("BBB", True, 2.0, "BBB")]
    # Closed on day 4 (closes 13 / 47): filled at day 5's open, flat from then on.
    assert [s[1] for s in seen[4:8]] == [True] * 4
    assert [s[1] for s in seen[8:]] == [False] * (len(seen) - 8)
    trades = result.trades
    assert len(trades) == 2
    assert sorted(trades["size"].abs().tolist()) == [1.0, 2.0]
    # Exit at day 5's open: AAA 14 - 11 = +3 per unit, BBB (46 - 49) x 2 = -6.
    assert sorted(trades["pnl"].round(9).tolist()) == [-6.0, 3.0]


class Explicit(tickstep.Strategy):
    def init(self):
        self.rows = []
        self.buy("BBB", size=3)

    def next(self, symbol):
        # The call form still works, with or without a symbol.
        self.rows.append(("next", symbol, self.position().size, self.position("BBB").size,
                          self.position(symbol) is self.position(symbol)))

    def on_tick(self):
        self.rows.append(("tick", self.position("AAA").size, self.position("BBB").size,
                          sorted(self.positions)))


def test_explicit_symbol_form_and_on_tick():
    rows = tickstep.Backtest(DATA, Explicit, cash=10_000).run().strategy.rows
    ticks = [r for r in rows if r[0] == "tick"]
    # An order placed in init() joins the book at the first tick's end: filled on day 2.
    assert ticks[0] == ("tick", 0.0, 0.0, [])
    assert all(r[1:] == (0.0, 3.0, ["BBB"]) for r in ticks[1:])
    nexts = [r for r in rows if r[0] == "next"]
    assert ("next", "AAA", 0.0, 3.0, True) in nexts and ("next", "BBB", 3.0, 3.0, True) in nexts


def test_position_without_a_running_symbol_says_to_name_one():
    class Bare(tickstep.Strategy):
        def on_tick(self):
            if self.position:
                pass

    with pytest.raises(tickstep.UnknownSymbolError, match="pass the symbol explicitly"):
        tickstep.Backtest(DATA, Bare, cash=10_000).run()


def test_position_value_is_marked_to_market():
    class Value(tickstep.Strategy):
        def init(self):
            self.values = []
            self.sell("BBB", size=2)

        def next(self, symbol):
            if symbol == "BBB":
                self.values.append((self.position.value, self.position.size * self.price()))

    values = tickstep.Backtest(DATA, Value, cash=10_000).run().strategy.values
    assert values[-1] == (-86.0, -86.0)  # short 2 at the last close 43


@pytest.mark.parametrize("call, n", [
    ("sma", -5), ("sma", 0), ("ema", 10**30), ("rsi", 2.5), ("highest", True), ("lowest", "5"),
    ("atr", -1), ("rolling_std", 1),
])
def test_bad_windows_are_refused_by_the_users_name(call, n):
    class Bad(tickstep.Strategy):
        def init(self):
            getattr(self, call)(n)

    with pytest.raises(tickstep.ConfigError) as info:
        tickstep.Backtest(DATA, Bad, cash=10_000).run()
    message = str(info.value)
    assert f"{call}(n={n!r})" in message
    assert "window" not in message.split(":")[0] and "unsigned" not in message
