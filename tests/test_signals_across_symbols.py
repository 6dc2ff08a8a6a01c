"""A `SignalStrategy` whose signals depend on other symbols (``market_signals``): a rank
across symbols by hand, its grid rows against runs alone, and what is refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars, walk


class Leader(tickstep.SignalStrategy):
    """Hold the ``top`` symbols by their return over ``lookback`` bars: enter a symbol
    when it joins them, exit when it leaves."""

    lookback = 3
    top = 1
    size = 0.5

    def market_signals(self, bars):
        closes = pd.DataFrame({s: b["close"] for s, b in bars.items()})
        momentum = closes / closes.shift(self.lookback) - 1
        leading = momentum.rank(axis=1, ascending=False, method="first") <= self.top
        before = leading.shift(1, fill_value=False)
        return {"entries": leading & ~before, "exits": before & ~leading}


def _bars(closes):
    """Bars opening at the close before (the first at its own close), each range the two."""
    opens = [closes[0], *closes[:-1]]
    return make_bars([(o, max(o, c), min(o, c), c) for o, c in zip(opens, closes)])


def test_the_leader_by_hand():
    # Returns over three bars: A leads from bar 3 (3% against 0 and -3%); at bar 6 B's 1%
    # passes A's 0.97% (104 / 103), and B keeps rising. C only falls.
    a = [100, 101, 102, 103, 104, 105, 104, 103, 102, 101, 100, 99]
    b = [100] * 6 + [101, 103, 106, 110, 115, 121]
    c = [100 - k for k in range(12)]
    bt = tickstep.Backtest({"A": _bars(a), "B": _bars(b), "C": _bars(c)}, Leader, cash=10_000)
    result = bt.run()
    fills = result.fills
    assert list(zip(fills["symbol"].astype(str), fills["side"])) == [("A", "buy"), ("A", "sell"), ("B", "buy")]
    times = pd.DatetimeIndex(fills["time"])
    days = list((times - times[0]).days)
    assert days == [0, 3, 3]  # bar 4 (decided at 3), then bar 7 (decided at 6)
    # Half the equity at the decision bar's close, filled at the next open (that close).
    units_a = 0.5 * 10_000 / 103
    equity_at_6 = 10_000 - units_a * 103 + units_a * 104
    assert list(fills["size"]) == pytest.approx([units_a, units_a, 0.5 * equity_at_6 / 101], rel=1e-12)
    assert list(fills["price"]) == pytest.approx([103, 104, 101], rel=1e-12)
    # B is held to the end: marked at its last close.
    units_b = 0.5 * equity_at_6 / 101
    assert result.stats["Equity Final [$]"] == pytest.approx(equity_at_6 - units_b * 101 + units_b * 121, rel=1e-12)


def test_a_grid_of_signals_across_symbols_equals_each_set_alone():
    prices = walk(11, 260, 5)
    data = {f"S{k}": make_bars(list(zip(*(prices[c][:, k] for c in ("open", "high", "low", "close")))))
            for k in range(5)}
    bt = tickstep.Backtest(data, Leader, cash=100_000, commission=0.001, on_reject="ignore")
    alone = bt.run(lookback=5, top=2, size=0.3)
    assert alone.stats["# Trades"] > 10
    # The same signals given to run_signals: the same run.
    made = Leader.market_signals(type("P", (), {"lookback": 5, "top": 2})(), dict(data))
    by_signals = bt.run_signals(**made, size=0.3)
    pd.testing.assert_frame_equal(alone.fills, by_signals.fills)
    rows = bt.optimize(lookback=[3, 5, 10], top=[1, 2], size=[0.3], cache=False)
    assert len(rows) == 6 and set(rows["status"]) == {"ok"}
    for _, row in rows.iterrows():
        run = bt.run(lookback=int(row["lookback"]), top=int(row["top"]), size=0.3).stats
        for stat in ("Equity Final [$]", "# Trades", "Sharpe Ratio", "Max. Drawdown [%]"):
            assert row[stat] == run[stat], (row["lookback"], row["top"], stat)


class Both(Leader):
    def signals(self, symbol, bars):
        return {"entries": np.ones(len(bars), bool)}


class Listed(Leader):
    def market_signals(self, bars):
        return [super().market_signals(bars)]


class Misspelt(Leader):
    def market_signals(self, bars):
        return {"entry": super().market_signals(bars)["entries"]}


class Stranger(Leader):
    def market_signals(self, bars):
        out = super().market_signals(bars)
        return {**out, "entries": out["entries"].assign(Z=False)}


class Failing(Leader):
    def market_signals(self, bars):
        return bars["A"]["close"] / 0 + bars["nope"]


def test_what_market_signals_may_not_do_is_refused_by_name():
    data = {"A": _bars([100.0 + k for k in range(12)]), "B": _bars([100.0 - k for k in range(12)])}
    cases = [
        (Both, r"^Both defines both signals\(symbol, bars\) and market_signals\(bars\): define one"),
        (Listed, r"^Listed.market_signals\(bars\) returned list, not a mapping of signals"),
        (Misspelt, r"^Misspelt.market_signals\(bars\): unknown signal 'entry' — did you mean 'entries'\?"),
        (Stranger, r"^entries column 'Z': 'Z' is not a symbol of the data"),
    ]
    for cls, message in cases:
        with pytest.raises(tickstep.ConfigError, match=message) as caught:
            tickstep.Backtest(data, cls).run()
        if cls is Stranger:
            assert "in what Stranger.market_signals(bars) returned" in "".join(caught.value.__notes__)
    # The strategy's own error, unchanged, with where it was raised.
    with pytest.raises(KeyError, match="nope") as caught:
        tickstep.Backtest(data, Failing).run()
    assert "raised by Failing.market_signals(bars)" in "".join(caught.value.__notes__)


class SectorLeaders(Leader):
    """`Leader` with at most one symbol per sector among those held (`self.metadata`)."""

    def market_signals(self, bars):
        closes = pd.DataFrame({s: b["close"] for s, b in bars.items()})
        momentum = closes / closes.shift(self.lookback) - 1
        # Each sector's best at each bar, then the best `top` of those.
        sector = self.metadata.loc[closes.columns, "sector"]
        best_of_sector = momentum.T.groupby(sector.to_numpy()).rank(ascending=False, method="first").T == 1
        leading = momentum.where(best_of_sector).rank(axis=1, ascending=False, method="first") <= self.top
        before = leading.shift(1, fill_value=False)
        return {"entries": leading & ~before, "exits": before & ~leading}


def test_signals_across_symbols_read_the_symbols_metadata():
    market = tickstep.data.example_daily()
    sectors = market.metadata["sector"]
    assert sectors.duplicated().any()  # two symbols share a sector in the example data
    runs = {cls: tickstep.Backtest(market, cls, cash=100_000, on_reject="ignore").run(lookback=10, top=3, size=0.3)
            for cls in (Leader, SectorLeaders)}
    assert all(result.stats["# Trades"] > 10 for result in runs.values())
    # Held together at some time: two of a sector for Leader, never for SectorLeaders.
    def shared_sectors(result):
        fills = result.fills.assign(symbol=result.fills["symbol"].astype(str))
        held = fills.assign(units=np.where(fills["side"] == "buy", 1, -1) * fills["size"])
        held = held.pivot_table(index="time", columns="symbol", values="units", aggfunc="sum").fillna(0).cumsum()
        counts = (held.abs() > 1e-9).T.groupby(sectors.loc[held.columns].to_numpy()).sum().T
        return int((counts > 1).any(axis=1).sum())
    assert shared_sectors(runs[Leader]) > 0
    assert shared_sectors(runs[SectorLeaders]) == 0
