"""Cash dividends (``dividend_column=``), hand-computed: every expected number is worked
out in the comments. Bars are daily from 2024-01-01 (bar i is day i + 1), one price per
bar (open = high = low = close), the dividend per share in the data's column ``dividend``
on the bar the stock goes ex (0: none).

The rule: a position held into the open of an ex bar (before that bar's fills) receives
size x dividend into cash, a short pays it; counted in ``Dividends [$]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import following, run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy, sell

EXACT = dict(rel=1e-12, abs=1e-9)


def approx(x):
    return pytest.approx(x, **EXACT)


def stock(closes, dividends, freq="D"):
    index = pd.date_range("2024-01-01", periods=len(closes), freq=freq, tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0,
                         "dividend": np.asarray(dividends, dtype=float)}, index=index)


# Goes ex 2.00 at bar 2 (the price drops by it) and 1.00 at bar 4.
CLOSES = [100, 100, 98, 99, 97, 97]
DIVIDENDS = [0, 0, 2.0, 0, 1.0, 0]


def close_position(s, sym):
    s.close()


def test_a_long_receives_what_the_price_drops_by():
    # Buy 10 at bar 1's open 100 (cash 9,000). Bar 2: 20.00 received at the open, the
    # close 98: equity 9,020 + 980 = 10,000. Bar 3: 9,020 + 990 = 10,010. Bar 4: 10.00
    # received, 9,030 + 970 = 10,000. The dividends make up the drops.
    r = run_script({"XYZ": stock(CLOSES, DIVIDENDS)}, {0: buy(10)}, dividend_column="dividend")
    assert list(r.equity) == approx([10_000, 10_000, 10_000, 10_010, 10_000, 10_000])
    assert r.stats["Dividends [$]"] == approx(30.0)
    assert r.stats["Carrying Costs [$]"] == 0
    assert r.equity_frame["cash"].iloc[-1] == approx(9_030.0)
    # Without the option the column is data: the drops are losses.
    plain = run_script({"XYZ": stock(CLOSES, DIVIDENDS)}, {0: buy(10)})
    assert plain.equity.iloc[-1] == approx(9_970.0) and plain.stats["Dividends [$]"] == 0


def test_a_short_pays_the_dividend_to_the_lender():
    # Short 10 at bar 1's open 100 (cash 11,000). Bar 2: pays 20.00, 10,980 - 980 =
    # 10,000; bar 3: 10,980 - 990 = 9,990; bar 4: pays 10.00, 10,970 - 970 = 10,000.
    r = run_script({"XYZ": stock(CLOSES, DIVIDENDS)}, {0: sell(10)}, dividend_column="dividend")
    assert list(r.equity) == approx([10_000, 10_000, 10_000, 9_990, 10_000, 10_000])
    assert r.stats["Dividends [$]"] == approx(-30.0)


def test_a_buy_at_the_ex_open_is_too_late_and_a_sale_there_still_gets_it():
    data = {"XYZ": stock(CLOSES, DIVIDENDS)}
    # Placed at bar 1, filled at bar 2's open (ex): not held into it, no 20.00; held into
    # bar 4: 10.00. Bought at 98, held to 97: equity 10,000 - 10 + 10 = 10,000.
    late = run_script(data, {1: buy(10)}, dividend_column="dividend")
    assert late.stats["Dividends [$]"] == approx(10.0)
    assert late.equity.iloc[-1] == approx(10_000.0)
    # Bought at bar 1's open, sold at bar 2's open (placed at bar 1): held into bar 2,
    # so it receives 20.00, then sells at 98: 10,000 - 20 + 20 = 10,000.
    sold = run_script(data, {0: buy(10), 1: close_position}, dividend_column="dividend")
    assert sold.stats["Dividends [$]"] == approx(20.0)
    assert sold.equity.iloc[-1] == approx(10_000.0)
    assert sold.fills["price"].tolist() == [100.0, 98.0]


def test_bought_at_the_close_before_the_ex_bar_it_is_held_into_it():
    # trade_on_close: placed at bar 1, filled at bar 1's close (100): held into bar 2.
    r = run_script({"XYZ": stock(CLOSES, DIVIDENDS)}, {1: buy(10)}, trade_on_close=True,
                   dividend_column="dividend")
    assert r.stats["Dividends [$]"] == approx(30.0)


def test_dividends_follow_carrying_costs_in_the_statistics():
    labels = list(tickstep.metrics.STAT_LABELS)
    assert labels.index("Dividends [$]") == labels.index("Carrying Costs [$]") + 1


def test_signals_mode_pays_the_same_dividends():
    # Two stocks; AAA is held across both of its ex bars with no signal at them (the
    # sparse driver parks it there), BBB enters on its ex bar (too late) and exits after.
    data = {"AAA": stock(CLOSES, DIVIDENDS),
            "BBB": stock([50, 51, 52, 50, 49, 50], [0, 0, 0.5, 0, 0.25, 0.4])}
    index = data["AAA"].index
    entries = pd.DataFrame({"AAA": [True, False, False, False, False, False],
                            "BBB": [False, True, False, False, False, False]}, index=index)
    exits = pd.DataFrame({"AAA": [False] * 6,
                          "BBB": [False, False, False, False, True, False]}, index=index)

    ByHand = following(entries, exits, 10)
    bt = tickstep.Backtest(data, ByHand, dividend_column="dividend", record_every_bar=True)
    native = bt.run_signals(entries=entries, exits=exits, size=10, size_type="amount")
    by_hand = bt.run()
    # AAA: 10 x (2 + 1); BBB bought at bar 2's open (ex 0.5: too late), held into bar 4
    # (0.25), sold at bar 5's open (0.4 still its own): 10 x (0.25 + 0.4).
    assert native.stats["Dividends [$]"] == by_hand.stats["Dividends [$]"] == approx(36.5)
    pd.testing.assert_series_equal(native.equity, by_hand.equity, check_exact=True)
    pd.testing.assert_series_equal(native.stats, by_hand.stats, check_exact=True)
    # A grid's row (the native grid's own statistics) is the same run's.
    table = bt.run_signal_grid({"both": {"entries": entries, "exits": exits},
                                "none": {"entries": entries & False, "exits": exits}},
                               size=10, size_type="amount")
    assert table.loc["both", "Dividends [$]"] == native.stats["Dividends [$]"]
    assert table.loc["none", "Dividends [$]"] == 0


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 14), st.integers(-20, 20)), max_size=12),
       st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.35, 1.0, 2.5]), min_size=16, max_size=16))
def test_dividends_are_the_position_held_into_each_ex_bar(orders, dividends):
    # Random market orders (size > 0 buys, < 0 sells) at random bars, cash enough for
    # any: the dividends are, by a pandas reference from the fills, the sum over the ex
    # bars of dividend x the position filled before that bar; and the account is cash +
    # position x close with cash = initial - signed notional - commissions + dividends.
    closes = 100 + np.arange(16) % 5
    data = {"XYZ": stock(closes, dividends)}
    script = {}
    for bar, size in orders:
        if size:
            previous = script.get(bar)
            act = buy(size) if size > 0 else sell(-size)
            script[bar] = act if previous is None else (
                lambda s, sym, a=previous, b=act: (a(s, sym), b(s, sym)))
    r = run_script(data, script, cash=1_000_000, commission=0.001, dividend_column="dividend")
    fills = r.fills
    signed = np.where(fills["side"] == "buy", 1.0, -1.0) * fills["size"].to_numpy()
    index = data["XYZ"].index
    held_before = pd.Series(signed, index=pd.DatetimeIndex(fills["time"])).groupby(level=0).sum()
    held_before = held_before.reindex(index, fill_value=0.0).cumsum().shift(1, fill_value=0.0)
    want = float((held_before * data["XYZ"]["dividend"]).sum())
    assert r.stats["Dividends [$]"] == approx(want)
    cash = (1_000_000 - float((signed * fills["price"].to_numpy()).sum())
            - float(fills["commission"].sum()) + want)
    held = float(signed.sum())
    assert r.equity.iloc[-1] == pytest.approx(cash + held * closes[-1], rel=1e-12, abs=1e-6)


def test_a_streamed_run_pays_as_the_run_in_memory():
    # Two stocks on 5-minute bars over four days, each going ex at some days' first bar,
    # traded long and short by the random levered trader: streamed a day at a time, the
    # run is the same, bit for bit.
    from test_margin_calls import levered_runs

    def dividends(rng, index):
        first = (index.hour == 0) & (index.minute == 0) & (index.day > 1)
        return {"dividend": np.where(first, np.round(rng.uniform(0.1, 1.5, len(index)), 2), 0.0)}

    whole, streamed = levered_runs(11, ("AAA", "BBB"), dividends, 3, cash=10_000, leverage=2.0,
                                   commission=0.0005, dividend_column="dividend",
                                   on_reject="ignore")
    assert whole.stats["Dividends [$]"] != 0
    pd.testing.assert_series_equal(whole.stats, streamed.stats, check_exact=True)
    pd.testing.assert_frame_equal(whole.fills, streamed.fills, check_exact=True)


def test_bad_dividend_columns_are_refused_by_name():
    data = {"XYZ": stock(CLOSES, DIVIDENDS)}
    with pytest.raises(tickstep.ConfigError, match=r"dividend_column=.dividends.: the data has no "
                                                   r"such column \(its extra columns: dividend\)"):
        run_script(data, {}, dividend_column="dividends")
    with pytest.raises(tickstep.ConfigError, match=r"dividend_column=3: must be None or the name"):
        tickstep.BacktestConfig(dividend_column=3)
    # A negative dividend is refused naming the symbol, the amount and the bar's time.
    broken = stock(CLOSES, [0, 0, -2.0, 0, 0, 0])
    with pytest.raises(tickstep.data.DataError,
                       match=r"symbol 'XYZ': dividend -2 in column 'dividend' at 2024-01-03 "
                             r"00:00:00 UTC: must be a finite number, 0 or above"):
        run_script({"XYZ": broken}, {}, dividend_column="dividend")
    # The same column as data, without the option, is not judged.
    assert run_script({"XYZ": broken}, {0: buy(1)}).stats["Dividends [$]"] == 0


def test_walk_forward_sums_the_test_windows_dividends():
    # A stock going ex 0.50 every fifth day, held long 10 shares in each window: each
    # test window's own dividends, summed, are the stitched run's.
    from test_walkforward import Direction

    closes = 100.0 + np.arange(40) % 7
    dividends = np.where(np.arange(40) % 5 == 4, 0.5, 0.0)
    bt = tickstep.Backtest({"XYZ": stock(closes, dividends)}, Direction,
                           dividend_column="dividend")
    wf = bt.walk_forward(train="10D", test="10D", direction=[1], cache=False,
                         executor="sequential")
    paid = [r.stats["Dividends [$]"] for r in wf.results]
    # Test windows are days 10-19, 20-29, 30-39; ex days are 4, 9, 14, ..., 39. Each
    # window buys at its first day, fills at its second, and is held into two ex days
    # (14 and 19; 24 and 29; 34 and 39): 2 x 10 x 0.50 each.
    assert paid == [approx(10.0)] * 3
    assert wf.stats["Dividends [$]"] == approx(sum(paid))


# ---- a table of ex-dates put on the bars: tickstep.data.with_dividends ---------------------


def test_each_dividend_goes_on_the_first_bar_of_its_ex_date_or_after():
    # Daily bars on Jan 1-3 and Jan 8-10 (a gap). Ex-dates: Jan 2 (its own bar), Jan 5
    # (no bar: the next one, Jan 8), Jan 6 (also Jan 8: summed), Dec 31 (before the first
    # bar: left out), Jan 12 (after the last: left out).
    days = pd.DatetimeIndex(["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-08",
                             "2024-01-09", "2024-01-10"], tz="UTC")
    frame = stock([100] * 6, [0] * 6).drop(columns="dividend").set_axis(days)
    table = pd.DataFrame({"symbol": "XYZ",
                          "ex_date": ["2024-01-02", "2024-01-05", "2024-01-06", "2023-12-31",
                                      "2024-01-12"],
                          "amount": [0.5, 0.25, 0.125, 9.0, 9.0]})
    market = tickstep.data.with_dividends({"XYZ": frame}, table)
    assert market["XYZ"].extra["dividend"].tolist() == [0, 0.5, 0, 0.375, 0, 0]
    # The same as yfinance's shape: {symbol: amounts indexed by ex-date}.
    series = pd.Series(table["amount"].to_numpy(), index=pd.to_datetime(table["ex_date"]))
    by_series = tickstep.data.with_dividends({"XYZ": frame}, {"XYZ": series})
    np.testing.assert_array_equal(by_series["XYZ"].extra["dividend"],
                                  market["XYZ"].extra["dividend"])


def test_intraday_bars_take_the_dividend_at_the_ex_dates_first_bar_in_the_given_days():
    # Hourly bars round the clock from Jan 2 12:00 UTC to Jan 3 23:00 UTC. Ex-date Jan 3:
    # in New York's days its first bar is 05:00 UTC (midnight there); in UTC's, 00:00.
    index = pd.date_range("2024-01-02 12:00", "2024-01-03 23:00", freq="1h", tz="UTC")
    frame = stock([100] * len(index), [0] * len(index)).drop(columns="dividend").set_axis(index)
    table = pd.DataFrame({"symbol": ["XYZ"], "ex_date": ["2024-01-03"], "amount": [0.3]})

    def paid_at(timezone, table=table):
        paid = tickstep.data.with_dividends({"XYZ": frame}, table, timezone=timezone)
        (at,) = np.flatnonzero(paid["XYZ"].extra["dividend"])
        return index[at]

    assert paid_at("America/New_York") == pd.Timestamp("2024-01-03 05:00Z")
    assert paid_at("UTC") == pd.Timestamp("2024-01-03 00:00Z")
    # An ex-date with a zone is a day of the given calendar once converted to it: New
    # York's midnight is Jan 3 in UTC's days too.
    aware = table.assign(ex_date=pd.Timestamp("2024-01-03", tz="America/New_York"))
    assert paid_at("UTC", aware) == pd.Timestamp("2024-01-03 00:00Z")
    late = table.assign(ex_date=pd.Timestamp("2024-01-02 22:00", tz="America/New_York"))
    assert paid_at("UTC", late) == pd.Timestamp("2024-01-03 00:00Z")  # Jan 3 03:00 UTC
    assert paid_at("America/New_York", late) == pd.Timestamp("2024-01-02 12:00Z")


def test_a_run_on_bars_with_dividends_from_a_table_pays_them():
    frame = stock(CLOSES, [0] * 6).drop(columns="dividend")
    table = pd.DataFrame({"symbol": ["XYZ", "XYZ"], "ex_date": ["2024-01-03", "2024-01-05"],
                          "amount": [2.0, 1.0]})
    market = tickstep.data.with_dividends({"XYZ": frame}, table)
    r = run_script(market, {0: buy(10)}, dividend_column="dividend")
    # The same bars as DIVIDENDS above (bar 2 is Jan 3, bar 4 Jan 5): 10 x 3.00.
    assert r.stats["Dividends [$]"] == approx(30.0)
    assert list(r.equity) == approx([10_000, 10_000, 10_000, 10_010, 10_000, 10_000])


def test_bad_tables_of_dividends_are_refused_by_name():
    data = {"XYZ": stock(CLOSES, [0] * 6).drop(columns="dividend")}
    good = {"symbol": ["XYZ"], "ex_date": ["2024-01-03"], "amount": [1.0]}

    def refused(table, match, **options):
        with pytest.raises(tickstep.data.DataError, match=match):
            tickstep.data.with_dividends(data, pd.DataFrame(table) if isinstance(table, dict)
                                         else table, **options)

    refused({**good, "symbol": ["XZY"]}, r"symbol 'XZY' is not in the data.*did you mean 'XYZ'")
    refused({**good, "amount": [-1.0]}, r"symbol 'XYZ', ex-date 2024-01-03: amount -1.0 must "
                                        r"be a finite number, 0 or above")
    refused({**good, "amount": [np.nan]}, r"amount nan must be a finite number")
    refused({**good, "ex_date": ["soon"]}, r"ex-date 'soon' is not a date")
    refused({"symbol": ["XYZ", "XYZ"], "ex_date": ["2024-01-03", "2024-01-03 00:00"],
             "amount": [1.0, 2.0]}, r"'XYZ' has two dividends on ex-date 2024-01-03")
    refused({"symbol": ["XYZ"], "date": ["2024-01-03"], "amount": [1.0]},
            r"the table has no column 'ex_date' \(its columns: symbol, date, amount\)")
    refused([1.0], r"expected a DataFrame with the columns symbol, ex_date and amount")
    with_column = {"XYZ": data["XYZ"].assign(Dividend=0.0)}
    with pytest.raises(tickstep.data.DataError, match=r"'XYZ' already has a column 'dividend'"):
        tickstep.data.with_dividends(with_column, pd.DataFrame(good))


def test_an_amount_given_as_text_is_refused_not_read_as_a_number():
    data = {"XYZ": stock(CLOSES, [0] * 6).drop(columns="dividend")}
    table = pd.DataFrame({"symbol": ["XYZ"], "ex_date": ["2024-01-03"], "amount": ["0.25"]})
    with pytest.raises(tickstep.data.DataError, match=r"symbol 'XYZ', ex-date 2024-01-03: amount "
                                                      r"'0.25' is not a number"):
        tickstep.data.with_dividends(data, table)
    with pytest.raises(tickstep.data.DataError, match=r"amount True is not a number"):
        tickstep.data.with_dividends(data, table.assign(amount=True))
