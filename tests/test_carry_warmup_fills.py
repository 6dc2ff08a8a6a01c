"""Interest and carrying costs accrue from the day the account opens, never for a warm-up.

A real account earns nothing before it exists: with ``warmup=`` (or ``start=`` after the
first bar) the days before trading only feed indicators, so ``cash_rate`` (like the
borrow fee and margin interest, which need positions the warm-up cannot hold) starts at
the first day end at or after the trading start.
"""

from __future__ import annotations

import pandas as pd
import pytest
import tickstep
from conftest import make_bars


class Idle(tickstep.Strategy):
    def next(self, symbol):
        pass


def test_cash_interest_starts_when_the_account_opens_not_during_the_warm_up():
    # 10 daily bars, Jan 1..10; warm-up of 4 days: trading (and the account) from Jan 5.
    # cash_rate 3.65%: 10,000 x 0.0365 / 365 = 1.00 on the first day, then on the cash
    # grown by it. Day ends from Jan 5 to Jan 10: 6 accruals of one day each (the first
    # counts one day), none for Jan 1..4.
    bars = make_bars([(10.0, 10.0, 10.0, 10.0)] * 10)
    r = tickstep.Backtest({"X": bars}, Idle, cash=10_000, cash_rate=0.0365, warmup="4D").run()
    cash = 10_000.0
    for _ in range(6):
        cash -= -cash * 0.0365 / 365.0
    assert r.equity.index[0] == pd.Timestamp("2024-01-05", tz="UTC")
    assert r.equity.iloc[0] == pytest.approx(10_001.0, rel=1e-12)
    assert r.equity.iloc[-1] == pytest.approx(cash, rel=1e-12)
    assert r.stats["Carrying Costs [$]"] == pytest.approx(10_000.0 - cash, rel=1e-9)
    # The same run without a warm-up earns ten days.
    full = tickstep.Backtest({"X": bars}, Idle, cash=10_000, cash_rate=0.0365).run()
    ten = 10_000.0
    for _ in range(10):
        ten -= -ten * 0.0365 / 365.0
    assert full.equity.iloc[-1] == pytest.approx(ten, rel=1e-12)


def test_streamed_runs_open_the_account_at_the_same_day():
    bars = make_bars([(10.0, 10.0, 10.0, 10.0)] * 10)
    options = dict(cash=10_000, cash_rate=0.0365, warmup="4D")
    whole = tickstep.Backtest({"X": bars}, Idle, **options).run()
    streamed = tickstep.Backtest({"X": bars}, Idle, stream="2D", history=5, **options).run()
    assert streamed.equity.equals(whole.equity)
