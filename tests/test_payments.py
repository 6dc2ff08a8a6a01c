"""What each symbol was paid and charged besides its fills (``Result.payments``), and the
account's interest on its cash (``Result.interest``), hand-computed; and the breakdown by
symbol, whose P&L counts them, summing with that interest to the run's P&L whatever the
symbols are called, run by either loop, saved or pickled.

Bars are daily from 2024-03-01, one price per bar (open = high = low = close) unless said.
"""

from __future__ import annotations

import html
import itertools
import json
import math
import pickle
import re

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, sell
from tickstep.metrics import format_stat
from tickstep.report import sector_breakdown, symbol_breakdown

EXACT = dict(rel=1e-12, abs=1e-9)


def approx(x):
    return pytest.approx(x, **EXACT)


def bars(prices, *, dividend=None, funding=None, start="2024-03-01", freq="D"):
    index = pd.date_range(start, periods=len(prices), freq=freq, tz="UTC")
    c = np.asarray(prices, dtype=float)
    frame = pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1e6}, index=index)
    if dividend is not None:
        frame["dividend"] = np.asarray(dividend, dtype=float)
    if funding is not None:
        frame["funding"] = np.asarray(funding, dtype=float)
    return frame


def test_each_short_pays_its_own_share_of_the_borrow_fee():
    # Short 100 X and 40 Y at 50 at bar 1's open (market values 5,000 and 2,000): 3.65% a
    # year is 0.50 and 0.20 a day, charged at the 30 day ends that hold them (bars 1..30):
    # 15.00 and 6.00. The cash earns nothing: no interest.
    flat = [50.0] * 31
    script = {("X", 0): sell(100), ("Y", 0): sell(40)}
    r = run_script({"X": bars(flat), "Y": bars(flat)}, script, cash=10_000, borrow_rate=0.0365)
    assert list(r.payments["carrying_costs"]) == approx([15.0, 6.0])
    assert list(r.payments["dividends"]) == [0.0, 0.0]
    assert r.interest == 0.0
    assert r.stats["Carrying Costs [$]"] == approx(21.0)
    table = symbol_breakdown(r)
    # Flat prices, no commission: each symbol's P&L is its fee.
    assert list(table["P&L [$]"]) == approx([-15.0, -6.0])
    assert list(table["Carrying Costs [$]"]) == approx([15.0, 6.0])


def test_a_symbol_borrowed_at_its_own_rate_pays_that_rate():
    # The same, Y hard to borrow at 36.5% (2.00 a day on 2,000): 60.00 over 30 day ends.
    flat = [50.0] * 31
    script = {("X", 0): sell(100), ("Y", 0): sell(40)}
    r = run_script({"X": bars(flat), "Y": bars(flat)}, script, cash=10_000, borrow_rate=0.0365,
                   borrow_rate_by_symbol={"Y": 0.365})
    assert list(r.payments["carrying_costs"]) == approx([15.0, 60.0])
    assert r.stats["Carrying Costs [$]"] == approx(75.0)


def test_interest_on_the_accounts_cash_is_no_symbols():
    # Buy 300 X at 50 on 10,000 of cash with leverage 2 (cash -5,000 from bar 1): the loan
    # pays 7.3% a year; the first day end's 10,000 earned 5%. All of it is interest; X
    # pays nothing of its own.
    flat = [50.0] * 11
    r = run_script({"X": bars(flat)}, {0: buy(300)}, cash=10_000, leverage=2, margin_rate=0.073,
                   cash_rate=0.05)
    assert list(r.payments["carrying_costs"]) == [0.0]
    assert r.interest == approx(r.stats["Carrying Costs [$]"])
    assert r.interest == approx(10_000 - r.equity.iloc[-1])  # flat prices: equity moves by it
    assert r.interest > 0
    # The table's X made nothing; the account's interest is the whole loss.
    table = symbol_breakdown(r)
    assert table.loc["X", "P&L [$]"] == approx(0.0)


def test_dividends_are_the_symbol_that_paid_them():
    # Long 100 X from bar 1's open, X goes ex 0.50 at bar 3: receives 50.00. Short 40 Y
    # from bar 1's open, Y goes ex 1.00 at bar 2 and 0.25 at bar 4: pays 40.00 + 10.00.
    x = bars([20.0] * 6, dividend=[0, 0, 0, 0.5, 0, 0])
    y = bars([30.0] * 6, dividend=[0, 0, 1.0, 0, 0.25, 0])
    script = {("X", 0): buy(100), ("Y", 0): sell(40)}
    r = run_script({"X": x, "Y": y}, script, cash=10_000, dividend_column="dividend")
    assert list(r.payments["dividends"]) == approx([50.0, -50.0])
    assert r.stats["Dividends [$]"] == approx(0.0)
    table = symbol_breakdown(r)
    assert list(table["P&L [$]"]) == approx([50.0, -50.0])
    assert list(table["Dividends [$]"]) == approx([50.0, -50.0])


def test_funding_is_the_contract_that_settled_it():
    # 8-hourly perpetuals. Long 10 BTC from bar 1's open at 100; funding 0.1% at bar 1's
    # close (100: pays 1.00) and 0.2% at bar 3's (120: pays 2.40). Short 5 ETH from bar 1's
    # open at 40; funding 0.1% at bar 2's close (40: receives 0.20).
    btc = bars([100, 100, 110, 120, 120], funding=[0, 0.001, 0, 0.002, 0], freq="8h")
    eth = bars([40.0] * 5, funding=[0, 0, 0.001, 0, 0], freq="8h")
    script = {("BTC", 0): buy(10), ("ETH", 0): sell(5)}
    r = run_script({"BTC": btc, "ETH": eth}, script, cash=10_000, funding_column="funding")
    assert list(r.payments["carrying_costs"]) == approx([3.4, -0.2])
    assert r.stats["Carrying Costs [$]"] == approx(3.2)
    table = symbol_breakdown(r)
    # BTC: bought at 100, worth 120 at the end (+200), less its funding; ETH: flat, plus.
    assert list(table["P&L [$]"]) == approx([200.0 - 3.4, 0.2])


# --- every kind at once: the invariants ------------------------------------------------


def busy_data(names=("A", "B", "C", "D"), n=400, seed=0):
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=n, freq="6h", tz="UTC")
    data = {}
    for name in names:
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frame = pd.DataFrame({"open": close, "high": close * 1.002, "low": close * 0.998,
                              "close": close, "volume": 1e6}, index=index)
        frame["dividend"] = np.where(rng.random(n) < 0.02, 0.5, 0.0)
        frame["funding"] = np.where(index.hour == 0, rng.normal(0.0001, 0.0003, n), 0.0)
        data[name] = frame
    return data


OPTIONS = dict(cash=100_000, commission=0.0005, borrow_rate=0.05, margin_rate=0.07,
               cash_rate=0.03, leverage=2, dividend_column="dividend", funding_column="funding")


def crossing_signals(data):
    closes = pd.DataFrame({s: d["close"] for s, d in data.items()})
    fast, slow = closes.rolling(5).mean(), closes.rolling(20).mean()
    up = (fast > slow) & (fast.shift() <= slow.shift())
    down = (fast < slow) & (fast.shift() >= slow.shift())
    return up, down


def signals_run(data, **extra):
    up, down = crossing_signals(data)
    bt = tickstep.Backtest(data, **OPTIONS, **extra)
    return bt.run_signals(entries=up, exits=down, short_entries=down, short_exits=up, size=0.4)


def assert_adds_up(r):
    paid = r.payments
    assert paid["dividends"].sum() == approx(r.stats["Dividends [$]"])
    assert paid["carrying_costs"].sum() + r.interest == approx(r.stats["Carrying Costs [$]"])
    table = symbol_breakdown(r)
    pnl = table["P&L [$]"].sum() - r.interest
    assert pnl == pytest.approx(r.stats["Equity Final [$]"] - r.initial_cash, rel=1e-9)


@pytest.mark.parametrize("seed", range(3))
def test_the_symbols_and_the_account_add_up_to_the_run(seed):
    data = busy_data(seed=seed)
    r = signals_run(data)
    assert (r.payments["carrying_costs"] != 0).all() and (r.payments["dividends"] != 0).any()
    assert r.interest != 0 and len(r.trades) > 20
    assert_adds_up(r)


def test_the_engines_loop_books_what_the_signals_driver_books():
    # A symbol given the account's own borrow rate sends the run through the engine's
    # loop (no position parked): the same payments, to the bit.
    data = busy_data(seed=4)
    sparse = signals_run(data)
    looped = signals_run(data, borrow_rate_by_symbol={"A": OPTIONS["borrow_rate"]})
    assert looped.equity.equals(sparse.equity)
    pd.testing.assert_frame_equal(looped.payments, sparse.payments, check_exact=True)
    assert looped.interest == sparse.interest


def test_a_strategys_run_adds_up_too():
    data = busy_data(seed=5)
    up, down = crossing_signals(data)

    class Crossing(tickstep.Strategy):
        def next(self, symbol):
            i = len(self.data) - 1
            if up[symbol].iloc[i]:
                self.order_target(percent=0.4)
            elif down[symbol].iloc[i]:
                self.order_target(percent=-0.4)

    r = tickstep.Backtest(data, Crossing, **OPTIONS).run()
    assert (r.payments["carrying_costs"] != 0).all()
    assert_adds_up(r)


def test_the_same_payments_whatever_the_symbols_are_called():
    data = busy_data(seed=6)
    renamed = dict(zip(data, ("ZZ", "AA", "MM", "BB")))
    r = signals_run(data)
    s = signals_run({renamed[k]: v for k, v in data.items()})
    back = s.payments.rename(index={v: k for k, v in renamed.items()}).loc[r.payments.index]
    np.testing.assert_array_equal(back.to_numpy(), r.payments.to_numpy())
    assert s.interest == r.interest


def test_kept_through_saving_and_pickling(tmp_path):
    r = signals_run(busy_data(seed=7))
    again = pickle.loads(pickle.dumps(r))
    loaded = tickstep.load_result(r.save(tmp_path / "run"))
    for other in (again, loaded):
        pd.testing.assert_frame_equal(other.payments, r.payments, check_exact=True)
        assert other.interest == r.interest
        pd.testing.assert_frame_equal(symbol_breakdown(other), symbol_breakdown(r), check_exact=True)
    # The open positions' table keeps its own columns.
    assert list(loaded.positions.columns) == ["size", "average_price", "last_price"]


def test_a_result_saved_before_payments_were_kept(tmp_path):
    # Format version 3 kept no payments: NaN when the run had some, 0 when it had none.
    data = busy_data(seed=8)
    up, down = crossing_signals(data)
    without = tickstep.Backtest(data, cash=100_000).run_signals(up, down, size=0.2)
    assert without.stats["Carrying Costs [$]"] == 0 and without.stats["Dividends [$]"] == 0
    for r, known in ((signals_run(data), False), (without, True)):
        path = r.save(tmp_path / f"run{known}")
        pd.read_parquet(path / "positions.parquet").drop(
            columns=["dividends", "carrying_costs"]).to_parquet(path / "positions.parquet")
        meta = json.loads((path / "result.json").read_text())
        meta.pop("interest")
        (path / "result.json").write_text(json.dumps(meta | {"version": 3}))
        back = tickstep.load_result(path)
        if known:
            assert (back.payments == 0).all().all() and back.interest == 0
            pd.testing.assert_frame_equal(symbol_breakdown(back), symbol_breakdown(r), check_exact=True)
        else:
            assert back.payments.isna().all().all() and np.isnan(back.interest)
            assert symbol_breakdown(back)["P&L [$]"].isna().all()
        # Saved again, still version 3.
        again = back.save(tmp_path / f"again{known}")
        assert json.loads((again / "result.json").read_text())["version"] == 3


def test_sectors_sum_their_symbols_payments():
    data = busy_data(seed=9)
    r = signals_run(data)
    r.metadata = pd.DataFrame({"sector": ["Tech", "Energy", "Tech", "Energy"]},
                              index=pd.Index(list(data), name="symbol"))
    by_symbol, by_sector = symbol_breakdown(r), sector_breakdown(r)
    for column in ("Dividends [$]", "Carrying Costs [$]", "P&L [$]"):
        sums = by_symbol.groupby(r.metadata["sector"])[column].sum()
        assert list(by_sector[column]) == approx(list(sums.loc[by_sector.index]))


def test_the_report_shows_them_where_the_run_had_some(tmp_path):
    data = busy_data(seed=10)
    r = signals_run(data)
    text = r.report(tmp_path / "paid.html").read_text()
    head = re.search(r'<table id="by-symbol"><thead><tr>(.*?)</tr>', text).group(1)
    assert "<th>Dividends [$]</th>" in head and "<th>Carrying Costs [$]</th>" in head
    note = re.search(r'<p class="note" id="interest">(.*?)</p>', text).group(1)
    assert html.escape(format_stat("Carrying Costs [$]", -r.interest)) in note
    # A run without any: neither the columns nor the line.
    up, down = crossing_signals(data)
    plain = tickstep.Backtest(data, cash=100_000).run_signals(up, down, size=0.2)
    text = plain.report(tmp_path / "plain.html").read_text()
    head = re.search(r'<table id="by-symbol"><thead><tr>(.*?)</tr>', text).group(1)
    assert "Dividends" not in head and "Carrying Costs" not in head
    assert 'id="interest"' not in text


# --- the property: any run adds up, and the names change nothing ------------------------


@settings(max_examples=15, deadline=None, derandomize=True)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(1, 4),
    rates=st.tuples(st.sampled_from([0.0, 0.04]), st.sampled_from([0.0, 0.07]),
                    st.sampled_from([0.0, 0.02])),
    paid=st.tuples(st.booleans(), st.booleans()),
    permutation=st.integers(0, 23),
)
def test_any_run_adds_up_and_the_names_change_nothing(seed, n, rates, paid, permutation):
    # Each symbol's payments and the account's interest sum to the statistics', the
    # symbols' P&L less the interest is the run's, and under other names (visited in
    # another order) every symbol keeps the same payments, bit for bit, so the drawn
    # orders must be drawn per symbol: each symbol's own stream of draws.
    names = ("A", "B", "C", "D")[:n]
    data = busy_data(names, n=120, seed=seed)
    borrow, margin, cash = rates
    options = dict(cash=50_000, commission=0.0005, borrow_rate=borrow, margin_rate=margin,
                   cash_rate=cash, leverage=2, on_reject="ignore")
    if paid[0]:
        options["dividend_column"] = "dividend"
    if paid[1]:
        options["funding_column"] = "funding"
    # The same orders under any names: a strategy per symbol's own draws.
    script = {name: np.random.default_rng([seed, k]).random((120, 2)) for k, name in enumerate(names)}

    class Drawn(tickstep.Strategy):
        def next(self, symbol):
            u, v = script[self.own[symbol]][len(self.data) - 1]
            size = float(1 + int(v * 40))
            if u < 0.08:
                self.buy(size=size)
            elif u < 0.16:
                self.sell(size=size)
            elif u < 0.2 and self.position:
                self.position.close()

    Drawn.own = {name: name for name in names}
    r = tickstep.Backtest(data, Drawn, **options).run()
    assert_adds_up(r)
    others = list(itertools.permutations(("W", "X", "Y", "Z")[:n]))[permutation % math.factorial(n)]
    renamed = dict(zip(names, others))
    Drawn.own = {renamed[name]: name for name in names}
    s = tickstep.Backtest({renamed[k]: v for k, v in data.items()}, Drawn, **options).run()
    back = s.payments.rename(index={v: k for k, v in renamed.items()}).loc[r.payments.index]
    np.testing.assert_array_equal(back.to_numpy(), r.payments.to_numpy())
    assert s.interest == r.interest
