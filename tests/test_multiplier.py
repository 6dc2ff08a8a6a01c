"""Contracts' multipliers (``multiplier=``), hand-computed and against a reference: a run
on contracts of multiplier m is, in money, the run on units whose prices are m times the
contracts' (every amount is units x price x m), fill for fill.

Bars are daily from 2024-01-01 (bar i is day i + 1), one price per bar unless given.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, close, sell

EXACT = dict(rel=1e-12, abs=1e-9)


def approx(x):
    return pytest.approx(x, **EXACT)


def flat_bars(closes, volume=1e5):
    index = pd.date_range("2024-01-01", periods=len(closes), freq="D", tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": volume}, index=index)


ES = [5000.0, 5010.0, 5020.0, 4990.0, 5030.0, 5030.0]


def test_a_contract_gains_its_multiplier_per_point():
    # Two E-mini contracts (50 a point) bought at day 2's open 5,010: commission 0.01% of
    # 2 x 5,010 x 50 = 501,000 (50.10) + 2.00 a contract = 54.10. Marked at 5,020 they
    # are up 2 x 10 x 50 = 1,000; at 4,990, down 2,000; sold at day 5's open 5,030
    # (+2 x 20 x 50 = 2,000, commission 50.30 + 4.00). The trade's P&L: 2,000 - 54.10 -
    # 54.30 = 1,891.60, its return 1,891.60 / (501,000 + 108.40).
    r = run_script({"ES": flat_bars(ES)}, {0: buy(2), 3: close}, cash=100_000, leverage=10,
                   multiplier=50, commission=0.0001, commission_per_unit=2.0)
    assert r.fills["price"].tolist() == [5010, 5030]
    assert r.fills["commission"].tolist() == approx([54.1, 54.3])
    assert list(r.equity) == approx([100_000, 99_945.9, 100_945.9, 97_945.9, 101_891.6, 101_891.6])
    trade = r.trades.iloc[0]
    assert (trade["entry_price"], trade["exit_price"], trade["size"]) == (5010, 5030, 2)
    assert trade["pnl"] == approx(1_891.6)
    assert trade["return_pct"] == approx(1_891.6 / (501_000 + 108.4))
    # The account lends nothing it does not have: 2 contracts are worth 501,000, past
    # 100,000 x leverage 1. Rejected.
    with pytest.warns(tickstep.RejectedOrderWarning):
        r = run_script({"ES": flat_bars(ES)}, {0: buy(2)}, cash=100_000, multiplier=50)
    assert r.orders["status"].tolist() == ["rejected"]


def test_a_short_contract_and_the_account_identity():
    # Short 3 crude oil contracts (1,000 a barrel) at 80.00, marked at 81.50 and 79.00:
    # -4,500 and +3,000; equity is cash plus size x close x multiplier at every bar.
    closes = [80.0, 80.0, 81.5, 79.0]
    r = run_script({"CL": flat_bars(closes)}, {0: sell(3)}, cash=50_000, leverage=10,
                   multiplier=1_000)
    assert list(r.equity) == approx([50_000, 50_000, 45_500, 53_000])
    cash = r.equity_frame["cash"]
    assert cash.iloc[-1] == approx(50_000 + 3 * 80 * 1_000)
    held = -3 * np.asarray(closes) * 1_000
    assert list(r.equity_frame["cash"].iloc[1:] + held[1:]) == approx(list(r.equity.iloc[1:]))
    assert list(r.equity_frame["gross_exposure"].iloc[1:]) == approx(list(-held[1:]))


def test_each_symbol_takes_its_own_multiplier_and_others_one():
    # ES at 50 a point and shares of XYZ at 1, in one account: 1 contract bought at 5,010,
    # 100 shares at 20; a day later ES is up 10 (500), XYZ up 1 (100).
    data = {"ES": flat_bars([5000.0, 5010.0, 5020.0]), "XYZ": flat_bars([20.0, 20.0, 21.0])}
    r = run_script(data, {("ES", 0): buy(1), ("XYZ", 0): buy(100)}, cash=1_000_000,
                   multiplier={"ES": 50})
    assert list(r.equity) == approx([1_000_000, 1_000_000, 1_000_600])
    assert r.positions.loc["ES", "size"] == 1 and r.positions.loc["XYZ", "size"] == 100


class Sized(tickstep.Strategy):
    """At bar 0, one order of each kind the strategy sizes in money (``how``); the units
    logged."""

    how = "sizer"

    def next(self, symbol):
        if len(self.data) != 1:
            return
        if self.how == "sizer":
            self.buy()
        elif self.how == "value":
            self.order_target(value=900_000)
        elif self.how == "percent":
            self.order_target(percent=2.0)
        elif self.how == "rebalance":
            self.rebalance({symbol: 2.0})
        elif self.how == "risk":
            self.buy(sl=4_950.0)


@pytest.mark.parametrize(("how", "sizer", "units"), [
    # 95% of 100,000 in contracts worth 5,000 x 50 = 250,000: 0.38.
    ("sizer", None, 0.95 * 100_000 / 250_000),
    # A value of 900,000 is 3.6 contracts; 200% of equity, 0.8.
    ("value", None, 3.6),
    ("percent", None, 0.8),
    ("rebalance", None, 0.8),
    # Risking 1% (1,000) on a stop 50 points away (2,500 a contract): 0.4 contracts.
    ("risk", tickstep.sizing.RiskPerTrade(0.01), 0.4),
    # Capped: at most 200% of equity in exposure, 0.8 contracts; asked for 5.
    ("sizer", tickstep.sizing.Limits(tickstep.sizing.FixedSize(5), max_gross_exposure=2.0), 0.8),
])
def test_sizing_in_money_buys_units_worth_price_times_multiplier(how, sizer, units):
    options = {"sizer": sizer} if sizer is not None else {}
    bt = tickstep.Backtest({"ES": flat_bars(ES)}, Sized, cash=100_000, leverage=10, multiplier=50,
                           **options)
    r = bt.run(how=how)
    assert r.fills["size"].tolist() == approx([units])


def test_a_python_sizer_is_told_the_multiplier():
    told = []

    def sizer(req):
        told.append((req.price, req.multiplier))
        return 1.0

    run_script({"ES": flat_bars(ES)}, {0: lambda s, sym: s.buy()}, cash=1e6, sizer=sizer,
               multiplier={"ES": 50})
    assert told == [(5000.0, 50.0)]


def test_positions_and_trades_read_in_money():
    seen = {}

    def look(s, sym):
        p, t = s.position, s.trades[0]
        seen.update(value=p.value, pl=p.pl, pl_pct=p.pl_pct, trade_pl=t.pl, trade_value=t.value,
                    trade_pl_pct=t.pl_pct)

    # 2 contracts bought at 5,010, read at day 3's close 5,020: worth 2 x 5,020 x 50.
    run_script({"ES": flat_bars(ES)}, {0: buy(2), 2: look}, cash=100_000, leverage=10,
               multiplier=50)
    assert seen["value"] == approx(502_000) and seen["trade_value"] == approx(502_000)
    assert seen["pl"] == approx(1_000) and seen["trade_pl"] == approx(1_000)
    assert seen["pl_pct"] == approx(1_000 / 501_000 * 100)
    assert seen["trade_pl_pct"] == approx(10 / 5_010)
    # A closed trade read after the run: sold at day 5's open 5,030, worth 2 x 5,030 x 50.
    kept = []
    run_script({"ES": flat_bars(ES)}, {0: buy(2), 3: close,
                                      5: lambda s, sym: kept.append(s.closed_trades[0])},
               cash=100_000, leverage=10, multiplier=50)
    assert kept[0].value == approx(503_000) and kept[0].pl == approx(2_000)


def test_funding_and_dividends_are_paid_on_what_the_contracts_are_worth():
    # One perpetual contract of 10 coins held through a funding rate of 0.1% at day 3's
    # close 100: pays 1 x 100 x 10 x 0.001 = 1.00. A dividend of 0.50 a unit on 10 units
    # per contract: 5.00.
    bars = flat_bars([100.0, 100.0, 100.0, 100.0]).assign(funding=[0, 0, 0.001, 0],
                                                          dividend=[0, 0, 0, 0.5])
    r = run_script({"X": bars}, {0: buy(1)}, cash=10_000, multiplier=10, funding_column="funding",
                   dividend_column="dividend")
    assert r.stats["Carrying Costs [$]"] == approx(1.0)
    assert r.stats["Dividends [$]"] == approx(5.0)
    assert r.equity.iloc[-1] == approx(10_000 - 1 + 5)


def test_a_margin_call_counts_in_money():
    # 3 contracts (50 a point) at 5,010 on 100,000 with leverage 10 (751,500 of 1,000,000
    # allowed) and maintenance 10%: at 5,020, equity 101,500 against 10% of 753,000; at
    # 4,500, equity 100,000 - 3 x 510 x 50 = 23,500 against 10% of 675,000 = 67,500:
    # called, closed at that close.
    closes = [5000.0, 5010.0, 5020.0, 4500.0, 4600.0]
    r = run_script({"ES": flat_bars(closes)}, {0: buy(3)}, cash=100_000, leverage=10,
                   multiplier=50, maintenance_margin=0.1)
    assert r.stats["# Margin Calls"] == 1
    assert r.fills["price"].tolist() == [5010, 4500]
    assert list(r.equity) == approx([100_000, 100_000, 101_500, 23_500, 23_500])
    # Four contracts would be 1,002,000 of exposure: past 10 x 100,000, rejected.
    with pytest.warns(tickstep.RejectedOrderWarning):
        r = run_script({"ES": flat_bars(closes)}, {0: buy(4)}, cash=100_000, leverage=10,
                       multiplier=50)
    assert r.orders["reason"].tolist() == ["insufficient margin"]


def scaled(data, m):
    out = {}
    for symbol, frame in data.items():
        f = frame.copy()
        for c in ("open", "high", "low", "close"):
            f[c] = f[c] * m
        out[symbol] = f
    return out


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([50.0, 0.1, 12.5, 1_000.0]),
       st.lists(st.tuples(st.integers(0, 28), st.sampled_from(["A", "B"]),
                          st.sampled_from([-3.0, -1.0, -0.5, 0.0, 0.5, 2.0, 4.0])), max_size=16),
       st.booleans())
def test_a_run_on_contracts_is_the_run_on_prices_times_the_multiplier(seed, m, orders, sized):
    # Random market orders (sizes, or the default sizer when `sized`: 0 is a close) with
    # commission and slippage on random walks. A reference: the same run with multiplier 1
    # on prices m times as high. Equity, cash, exposure, trades' P&L and returns are the
    # same; fill prices m times lower.
    rng = np.random.default_rng(seed)
    data = {}
    for s in ("A", "B"):
        closes = 40 * np.exp(np.cumsum(rng.normal(0, 0.02, 30)))
        open_ = closes * np.exp(rng.normal(0, 0.005, 30))
        data[s] = pd.DataFrame({"open": open_, "high": np.maximum(open_, closes) * 1.01,
                                "low": np.minimum(open_, closes) * 0.99, "close": closes,
                                "volume": 1e6}, index=pd.date_range("2024-01-01", periods=30,
                                                                    freq="D", tz="UTC"))
    script = {}
    for bar, symbol, size in orders:
        if size == 0:
            act = close
        elif sized:
            act = (lambda s, sym: s.buy()) if size > 0 else (lambda s, sym: s.sell())
        else:
            act = buy(size) if size > 0 else sell(-size)
        script[(symbol, bar)] = act
    terms = dict(cash=1_000_000.0 * max(m, 1.0), commission=0.0005, commission_per_unit=0.25,
                 slippage=3.0, leverage=2.0, sizer=tickstep.sizing.PercentOfEquity(0.2))
    contracts = run_script(data, script, multiplier=m, **terms)
    reference = run_script(scaled(data, m), script, **terms)
    assert list(contracts.equity) == pytest.approx(list(reference.equity), rel=1e-9)
    assert list(contracts.equity_frame["gross_exposure"]) == pytest.approx(
        list(reference.equity_frame["gross_exposure"]), rel=1e-9, abs=1e-6)
    assert list(contracts.fills["size"]) == pytest.approx(list(reference.fills["size"]), rel=1e-9)
    assert list(contracts.fills["price"] * m) == pytest.approx(list(reference.fills["price"]), rel=1e-9)
    assert list(contracts.fills["commission"]) == pytest.approx(list(reference.fills["commission"]),
                                                                rel=1e-9)
    for column in ("pnl", "return_pct", "commission"):
        assert list(contracts.trades[column]) == pytest.approx(list(reference.trades[column]),
                                                               rel=1e-9, abs=1e-6)


def test_signals_mode_sizes_contracts_by_what_they_are_worth():
    # A value of 600,000 at day 1's close 5,000 x 50 is 2.4 contracts, in whole lots 2;
    # 200% of equity (100,000) is 0.8. Filled at day 2's open 5,010.
    bt = tickstep.Backtest({"ES": flat_bars(ES)}, cash=100_000, leverage=10, multiplier=50)
    entries = {"ES": [True, False, False, False, False, False]}
    exits = {"ES": [False] * 6}
    r = bt.run_signals(entries=entries, exits=exits, size=600_000, size_type="value", lot_size=1)
    assert r.fills["size"].tolist() == [2.0]
    assert r.equity.iloc[-1] == approx(100_000 + 2 * 20 * 50)
    r = bt.run_signals(entries=entries, exits=exits, size=2.0, size_type="percent")
    assert r.fills["size"].tolist() == approx([0.8])


def test_bad_multipliers_are_refused_by_name():
    data = {"ES": flat_bars(ES)}
    for bad, match in [(0, r"multiplier=0: must be None \(1: shares, coins\), a finite number "
                          r"above 0"),
                       (-50, r"multiplier=-50"), (float("nan"), r"multiplier=nan"),
                       ("50", r"multiplier='50': .* got str"), (True, r"multiplier=True"),
                       ({"ES": 0}, r"multiplier\['ES'\]=0: must be a positive finite number"),
                       ({"ES": "50"}, r"multiplier\['ES'\]='50'"),
                       ({1: 50}, r"\(symbols by name\)")]:
        with pytest.raises(tickstep.ConfigError, match=match):
            tickstep.BacktestConfig(multiplier=bad)
    with pytest.raises(tickstep.UnknownSymbolError, match=r"multiplier: 'ESS' is not a symbol of "
                                                          r"the data.*did you mean 'ES'"):
        tickstep.Backtest(data, tickstep.Strategy, multiplier={"ESS": 50}).run()
