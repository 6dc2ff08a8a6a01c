"""How a position that is added to and partly reduced becomes trades: FIFO lots, a
closed piece per closing fill, commissions shared by units, returns on all the trade
cost (so a sliver carrying a fixed fee never shows a return of many times its size)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep


def bars(opens):
    opens = np.asarray(opens, float)
    index = pd.date_range("2024-01-02", periods=len(opens), freq="D", tz="UTC")
    return pd.DataFrame({"open": opens, "high": opens, "low": opens, "close": opens, "volume": 1.0},
                        index=index)


class Scripted(tickstep.Strategy):
    script = {}

    def next(self, symbol):
        step = self.script.get(len(self.data()) - 1)
        if step:
            step(self)


def test_a_partly_reduced_position_becomes_fifo_pieces_by_hand():
    # Opens 10, 12, 11, 13 on days 1-4 (orders placed the day before).
    script = {0: lambda s: s.buy(size=100), 1: lambda s: s.buy(size=50),
              2: lambda s: s.sell(size=120), 3: lambda s: s.close()}
    r = tickstep.Backtest({"X": bars([10, 10, 12, 11, 13])}, Scripted, cash=10_000,
                          commission=0.001).run(script=script)
    t = r.trades.reset_index(drop=True)
    # Fees: 100 x 10 x 0.001 = 1.0; 50 x 12 x 0.001 = 0.6; 120 x 11 x 0.001 = 1.32; 30 x 13 x 0.001 = 0.39.
    # The sale of 120 closes the first lot (100 units, 100/120 of its fee = 1.1) and 20 of
    # the second (20/120 of the fee = 0.22, and 20/50 of the lot's entry fee = 0.24).
    assert list(t["size"]) == [100.0, 20.0, 30.0]
    assert list(t["entry_price"]) == [10.0, 12.0, 12.0]
    assert list(t["exit_price"]) == [11.0, 11.0, 13.0]
    assert t["trade_id"][1] == t["trade_id"][2] != t["trade_id"][0]  # pieces of one lot
    assert list(t["commission"]) == pytest.approx([2.1, 0.46, 0.36 + 0.39])
    assert list(t["pnl"]) == pytest.approx([100 - 2.1, -20 - 0.46, 30 - 0.75])
    assert list(t["return_pct"]) == pytest.approx([97.9 / 1002.1, -20.46 / 240.46, 29.25 / 360.75])
    assert t["pnl"].sum() == pytest.approx(r.equity.iloc[-1] - 10_000)


def test_a_sliver_with_a_fixed_fee_is_not_the_worst_trade_by_far():
    """A top-up of 0.01 units paying a fixed fee of 1: it lost about all it cost (-90%),
    not 10 times its notional (-990%, the return on notional alone)."""
    script = {0: lambda s: s.buy(size=100), 1: lambda s: s.buy(size=0.01), 2: lambda s: s.close()}
    r = tickstep.Backtest({"X": bars([10, 10, 10, 11])}, Scripted, cash=10_000,
                          commission_fixed=1.0).run(script=script)
    t = r.trades.reset_index(drop=True)
    share = 0.01 / 100.01  # of the closing fill's fee
    assert t["size"].tolist() == pytest.approx([100.0, 0.01])
    assert t["pnl"][1] == pytest.approx(0.01 - 1 - share)
    assert t["return_pct"][1] == pytest.approx((0.01 - 1 - share) / (0.1 + 1 + share))
    assert -1 < r.stats["Worst Trade [%]"] / 100 < -0.89
