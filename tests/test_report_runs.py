"""A busy backtest for the result, report and saving tests: it leaves a row of every kind.

Longs with a stop-loss and a take-profit, shorts, closes, an order rejected for margin, an
order placed in init() that never fills (open at the end, no times), positions still open
at the end, on the shipped 8-symbol daily sample with its sector metadata.
"""

from __future__ import annotations

from functools import cache

import tickstep


class Busy(tickstep.Strategy):
    cycle = 50

    def init(self):
        self.bars_seen = dict.fromkeys(self.symbols, 0)
        self.buy(self.symbols[0], size=1, limit=0.01)  # never fills

    def next(self, symbol):
        i = self.bars_seen[symbol]
        self.bars_seen[symbol] = i + 1
        held = self.position_size(symbol)
        price = self.price(symbol)
        step = i % self.cycle
        if i == 3:
            self.buy(symbol, size=1e9)  # far beyond the account: rejected
        elif step == 2 and held == 0:
            self.buy(symbol, size=10, sl=price * 0.9, tp=price * 1.1)
        elif step == 30 and held > 0:
            self.close(symbol)
        elif step == 35 and held == 0 and self.symbols.index(symbol) % 2:
            self.sell(symbol, size=5, sl=price * 1.08)
        elif step == 45 and held < 0:
            self.close(symbol)


@cache
def busy_backtest(**options) -> tickstep.Backtest:
    options.setdefault("cash", 100_000)
    options.setdefault("commission", 0.001)
    options.setdefault("on_reject", "ignore")  # the rejection is on purpose
    return tickstep.Backtest(tickstep.data.example_daily(), Busy, **options)


@cache
def busy_result() -> tickstep.Result:
    return busy_backtest().run()


def test_the_busy_run_leaves_every_kind_of_row():
    r = busy_result()
    assert set(r.orders["status"]) == {"open", "filled", "cancelled", "rejected"}
    assert set(r.fills["role"]) == {"entry", "stop_loss", "take_profit", "close"}
    assert set(r.trades["side"]) == {"long", "short"}
    assert r.orders["placed_time"].isna().any()  # placed in init()
    assert r.orders["closed_time"].isna().any()  # still open
    assert len(r.positions) > 0
    assert r.metadata is not None and "sector" in r.metadata.columns
