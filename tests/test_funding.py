"""Funding of perpetual futures (``funding_column=``), hand-computed: every expected
number is worked out in the comments. Bars are 8-hourly from 2024-01-01 (bar i is at
``T(i)``), the funding rate in the data's column ``funding_rate`` (0: none at that bar).

The rule: at the close of a bar with a rate, a position held pays size x close x rate (a
long pays a positive rate, a short receives it), from cash, counted in
``Carrying Costs [$]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import following, run_script
from test_engine_fills import buy, sell

EXACT = dict(rel=1e-12, abs=1e-9)


def approx(x):
    return pytest.approx(x, **EXACT)


def perp(closes, rates):
    index = pd.date_range("2024-01-01", periods=len(closes), freq="8h", tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0,
                         "funding_rate": np.asarray(rates, dtype=float)}, index=index)


CLOSES = [100, 100, 110, 120, 100, 100]
RATES = [0, 0.001, 0, 0.002, -0.001, 0]


def test_a_long_pays_positive_rates_and_receives_negative_ones():
    # Buy 10 at bar 1's open 100 (cash 9,000). Bar 1 closes at 100 with 0.1%: pays 1.00.
    # Bar 3 closes at 120 with 0.2%: pays 2.40. Bar 4 closes at 100 with -0.1%: receives
    # 1.00. Equity: 9,999 at bar 1, 10,099 at bar 2 (1,100 held), 10,196.60, 9,997.60.
    r = run_script({"BTC": perp(CLOSES, RATES)}, {0: buy(10)}, funding_column="funding_rate")
    assert list(r.equity) == approx([10_000, 9_999, 10_099, 10_196.6, 9_997.6, 9_997.6])
    assert r.stats["Carrying Costs [$]"] == approx(1.0 + 2.4 - 1.0)
    # Without the option, the column is data and nothing is paid.
    plain = run_script({"BTC": perp(CLOSES, RATES)}, {0: buy(10)})
    assert plain.equity.iloc[-1] == approx(10_000.0) and plain.stats["Carrying Costs [$]"] == 0


def test_a_short_receives_positive_rates():
    # Short 10 at bar 1's open 100 (cash 11,000): receives 1.00 at bar 1, 2.40 at bar 3,
    # pays 1.00 at bar 4. Equity at the end: 11,000 + 2.40 - 10 x 100 = 10,002.40.
    r = run_script({"BTC": perp(CLOSES, RATES)}, {0: sell(10)}, funding_column="funding_rate")
    assert r.equity.iloc[-1] == approx(10_002.4)
    assert r.stats["Carrying Costs [$]"] == approx(-2.4)


def test_only_positions_held_at_the_close_pay():
    # Bought at bar 1's open, sold at bar 3's open (placed at bar 2): held at the closes of
    # bars 1 and 2 only. Bar 1's 0.1% is paid (1.00); bar 3's rate finds it flat.
    r = run_script({"BTC": perp(CLOSES, RATES)}, {0: buy(10), 2: lambda s, sym: s.close()},
                   funding_column="funding_rate")
    assert r.stats["Carrying Costs [$]"] == approx(1.0)
    # Sold at 120: 10 x 20 of P&L, less 1.00 of funding.
    assert r.equity.iloc[-1] == approx(10_000 + 200 - 1.0)


def test_signals_mode_settles_the_same_funding():
    data = {"BTC": perp(CLOSES, RATES), "ETH": perp([50, 55, 50, 45, 50, 55], [0, 0.003, 0, -0.002, 0.001, 0])}
    index = data["BTC"].index
    entries = pd.DataFrame({"BTC": [True, False, False, False, False, False],
                            "ETH": [False, True, False, False, False, False]}, index=index)
    exits = pd.DataFrame({"BTC": [False, False, False, False, False, False],
                          "ETH": [False, False, False, True, False, False]}, index=index)

    ByHand = following(entries, exits, 10)
    bt = tickstep.Backtest(data, ByHand, funding_column="funding_rate", record_every_bar=True)
    native = bt.run_signals(entries=entries, exits=exits, size=10, size_type="amount")
    by_hand = bt.run()
    assert native.stats["Carrying Costs [$]"] == by_hand.stats["Carrying Costs [$]"] != 0
    pd.testing.assert_series_equal(native.equity, by_hand.equity, check_exact=True)


def test_funding_can_bring_a_margin_call():
    # Four times leverage: 390 bought at 100 (cash -29,000). A rate of 1% at bar 2's close
    # (100): pays 390; equity 10,000 - 390 = 9,610 < 0.25 x 39,000 = 9,750: called there.
    closes, rates = [100, 100, 100, 100], [0, 0, 0.01, 0]
    r = run_script({"BTC": perp(closes, rates)}, {0: buy(390)}, cash=10_000, leverage=4,
                   maintenance_margin=0.25, funding_column="funding_rate")
    assert r.stats["# Margin Calls"] == 1
    assert r.fills["time"].iloc[-1] == perp(closes, rates).index[2]
    assert r.equity.iloc[-1] == approx(9_610.0)


def test_bad_funding_columns_are_refused_by_name():
    data = {"BTC": perp(CLOSES, RATES)}
    with pytest.raises(tickstep.ConfigError, match=r"funding_column=.funding.: the data has no such "
                                                   r"column \(its extra columns: funding_rate\)"):
        run_script(data, {}, funding_column="funding")
    with pytest.raises(tickstep.ConfigError, match=r"funding_column=3: must be None or the name"):
        tickstep.BacktestConfig(funding_column=3)
    # An infinite rate is refused where the data comes in, naming the symbol and row.
    broken = perp(CLOSES, [0, np.inf, 0, 0, 0, 0])
    with pytest.raises(tickstep.data.DataError, match=r"symbol 'BTC', row 1 .*funding_rate=inf"):
        run_script({"BTC": broken}, {}, funding_column="funding_rate")


def test_a_streamed_run_settles_and_calls_as_the_run_in_memory():
    # Two perpetuals on 5-minute bars over four days, funding every 8 hours (0 between),
    # traded with five times leverage under a 20% maintenance by the random levered
    # trader: streamed a day at a time, the run is the same, bit for bit.
    from test_margin_calls import levered_runs

    def funding(rng, index):
        at = index.hour.isin([0, 8, 16]) & (index.minute == 0)
        return {"funding_rate": np.where(at, rng.normal(0.0002, 0.0005, len(index)), 0.0)}

    whole, streamed = levered_runs(5, ("BTC", "ETH"), funding, 3, cash=10_000, leverage=5.0,
                                   maintenance_margin=0.2, commission=0.0005,
                                   funding_column="funding_rate", on_reject="ignore")
    assert whole.stats["# Margin Calls"] > 0 and whole.stats["Carrying Costs [$]"] != 0
    pd.testing.assert_series_equal(whole.stats, streamed.stats, check_exact=True)
    pd.testing.assert_frame_equal(whole.fills, streamed.fills, check_exact=True)
