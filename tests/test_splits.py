"""Raw bars adjusted for splits (``tickstep.data.adjust_for_splits``), hand-computed and
against a reference: raw bars made from adjusted ones by hand (prices times the ratios of
the splits after each bar, volumes divided by them) come back as those adjusted bars.

The rule: each bar before a split's ex bar (the symbol's first bar on or after its
ex-date, in the calendar of ``timezone=``) has its prices divided by the ratio and its
volume multiplied by it; splits compound.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from conftest import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy

EXACT = dict(rel=1e-12, abs=1e-9)


def raw_bars(closes, volumes=None, start="2024-03-04", freq="D"):
    """Bars with open = high = low = close, daily from ``start`` (bar i is March 4 + i)."""
    index = pd.date_range(start, periods=len(closes), freq=freq, tz="UTC")
    c = np.asarray(closes, dtype=float)
    v = np.full(len(c), 1000.0) if volumes is None else np.asarray(volumes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": v}, index=index)


def splits(*rows):
    return pd.DataFrame(rows, columns=["symbol", "ex_date", "ratio"])


def test_bars_before_a_split_are_divided_by_its_ratio_and_splits_compound():
    # 2-for-1 from March 6 (bar 2) and 3-for-1 from March 8 (bar 4): bars 0-1 are divided
    # by 6 (volumes times 6), bars 2-3 by 3, bars 4-5 stay as they are.
    raw = raw_bars([120, 126, 63, 66, 22, 23], [10, 20, 30, 40, 50, 60])
    got = td.adjust_for_splits({"AAA": raw}, splits(("AAA", "2024-03-06", 2.0),
                                                    ("AAA", "2024-03-08", 3.0)))["AAA"]
    assert got.close.tolist() == pytest.approx([20, 21, 21, 22, 22, 23], **EXACT)
    assert got.open.tolist() == got.high.tolist() == got.low.tolist() == got.close.tolist()
    assert got.volume.tolist() == pytest.approx([60, 120, 90, 120, 50, 60], **EXACT)
    assert got.ts.tolist() == raw.index.as_unit("ns").asi8.tolist()
    # A 1-for-10 reverse split (ratio 0.1) from bar 3: bars 0-2 are multiplied by 10.
    raw = raw_bars([2.0, 2.1, 2.2, 21.0, 20.0], [5000, 5000, 4000, 300, 500])
    got = td.adjust_for_splits({"AAA": raw}, {"AAA": pd.Series([0.1], [pd.Timestamp("2024-03-07")])})
    assert got["AAA"].close.tolist() == pytest.approx([20, 21, 22, 21, 20], **EXACT)
    assert got["AAA"].volume.tolist() == pytest.approx([500, 500, 400, 300, 500], **EXACT)


def test_a_split_outside_a_symbols_bars_adjusts_nothing_and_other_symbols_keep_theirs():
    raw = raw_bars([50, 51, 52])
    table = splits(("AAA", "2024-03-04", 2.0),       # on the first bar: nothing before it
                   ("AAA", "2024-02-01", 4.0),       # before the bars
                   ("AAA", "2024-04-01", 2.0))       # after them
    got = td.adjust_for_splits({"AAA": raw, "BBB": raw * 2}, table)
    assert got["AAA"].close.tolist() == [50, 51, 52]
    assert got["BBB"].close.tolist() == [100, 102, 104]
    assert got.symbols == ["AAA", "BBB"]


def test_an_ex_date_without_a_bar_splits_from_the_next_bar():
    # Saturday March 9 and Sunday March 10 have no bars (business days): the split is
    # effective from Monday March 11's bar, and the bars before it are divided.
    raw = raw_bars([100, 101, 102, 51, 52], freq="B", start="2024-03-06")
    got = td.adjust_for_splits({"AAA": raw}, splits(("AAA", "2024-03-09", 2.0)))
    assert got["AAA"].close.tolist() == pytest.approx([50, 50.5, 51, 51, 52], **EXACT)


def test_intraday_bars_split_from_the_ex_dates_first_bar_in_the_exchanges_calendar():
    # Bars of March 4 and 5 in New York, two of them late on March 4 there (23:00 and
    # 23:30, EST) and so on March 5 in UTC; the split's ex-date is March 5. In New York's
    # days it is effective from March 5's first bar there (14:30 UTC), and every bar of
    # March 4 is divided, the late ones too.
    times = pd.DatetimeIndex(["2024-03-04 14:30", "2024-03-04 20:00", "2024-03-05 04:00",
                              "2024-03-05 04:30", "2024-03-05 14:30", "2024-03-05 15:00"], tz="UTC")
    raw = raw_bars([100, 101, 102, 103, 52, 53]).set_axis(times)
    table = splits(("AAA", "2024-03-05", 2.0))
    ny = td.adjust_for_splits({"AAA": raw}, table, timezone="America/New_York")["AAA"]
    # 04:00 and 04:30 UTC on March 5 are 23:00 and 23:30 on March 4 in New York.
    assert ny.close.tolist() == pytest.approx([50, 50.5, 51, 51.5, 52, 53], **EXACT)
    # In UTC's days the split is from 04:00 UTC on; the check sees no jump there (close
    # 101, open 102) and refuses it, naming the symbol and the bar.
    with pytest.raises(td.DataError, match=r"symbol 'AAA', split of ratio 2 from the bar at "
                                           r"2024-03-05 04:00:00\+00:00: the raw bars do not jump "
                                           r"there \(close 101 before, open 102 at it"):
        td.adjust_for_splits({"AAA": raw}, table)


def test_per_share_columns_are_adjusted_as_prices_and_other_columns_are_not():
    # A dividend of 1.00 per raw share on bar 1, before a 2-for-1 split from bar 3: per
    # adjusted share it is 0.50. A P/E column is no amount per share: left as it is.
    raw = raw_bars([100, 99, 100, 50, 51]).assign(pe=[20.0, 19.8, 20.0, 20.0, 20.4])
    table = pd.DataFrame({"symbol": ["AAA"], "ex_date": ["2024-03-05"], "amount": [1.0]})
    paid = td.with_dividends({"AAA": raw}, table)
    got = td.adjust_for_splits(paid, splits(("AAA", "2024-03-07", 2.0)), per_share=["dividend"])
    assert got["AAA"].extra["dividend"].tolist() == [0, 0.5, 0, 0, 0]
    assert got["AAA"].extra["pe"].tolist() == [20.0, 19.8, 20.0, 20.0, 20.4]
    # 10 raw shares bought at bar 0's close (trade_on_close), 20 adjusted ones at 50, are
    # held into bar 1's dividend: 10 x 1.00 in raw shares, 20 x 0.50 in adjusted ones.
    r = run_script(got, {0: buy(20)}, dividend_column="dividend", trade_on_close=True)
    assert r.stats["Dividends [$]"] == pytest.approx(10.0, **EXACT)
    # 20 adjusted shares at 50 (cash 9,000), the dividend 10, at the end 20 x 51 = 1,020:
    # 10 raw shares at 100 that became 20 at the split, worth the same.
    assert r.equity.iloc[-1] == pytest.approx(9_000 + 10 + 1_020, **EXACT)
    assert td.adjust_for_splits(paid, splits(("AAA", "2024-03-07", 2.0)), per_share="dividend")[
        "AAA"].extra["dividend"].tolist() == [0, 0.5, 0, 0, 0]


def test_a_backtest_on_adjusted_bars_earns_what_the_raw_shares_earned():
    # Raw: 95 shares bought at bar 1's open 100 (9,500); a 4-for-1 split from bar 3 makes
    # them 380, worth 380 x 27 = 10,260 at the end: equity 500 + 10,260 = 10,760.
    # Adjusted: 380 shares bought at 25 (9,500), the same 380 x 27 at the end.
    raw = raw_bars([100, 100, 104, 26, 27])
    adjusted = td.adjust_for_splits({"AAA": raw}, splits(("AAA", "2024-03-07", 4.0)))
    r = run_script(adjusted, {0: buy(380)})
    assert r.fills["price"].tolist() == [25.0]
    assert r.equity.iloc[-1] == pytest.approx(500 + 380 * 27, **EXACT)
    # The raw bars' return of every bar but the split's is the adjusted bars' return.
    raw_returns = pd.Series(raw["close"].to_numpy()).pct_change().drop(index=[0, 3])
    adj_returns = pd.Series(adjusted["AAA"].close).pct_change().drop(index=[0, 3])
    assert adj_returns.tolist() == pytest.approx(raw_returns.tolist(), **EXACT)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.tuples(st.integers(0, 39),
                                                     st.sampled_from([0.1, 0.5, 1.5, 2.0, 3.0, 7.0])),
                                           max_size=4, unique_by=lambda t: t[0]))
def test_raw_bars_made_from_adjusted_ones_come_back_as_those(seed, drawn):
    # A reference: adjusted OHLCV bars drawn at random; raw bars made from them by hand,
    # each bar times the product of the ratios of the splits after it (volumes divided);
    # adjusting the raw bars gives the adjusted ones back, and the table as
    # {symbol: Series} (yfinance's shape) gives the same.
    rng = np.random.default_rng(seed)
    n = 40
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.002, n))
    high, low = np.maximum(open_, close) * 1.003, np.minimum(open_, close) * 0.997
    volume = rng.integers(100, 10_000, n).astype(float)
    index = pd.date_range("2024-01-01", periods=n, freq="D", tz="UTC")
    adjusted = pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                             "volume": volume}, index=index)
    factor = np.ones(n)
    for bar, ratio in drawn:
        factor[:bar] *= ratio
    raw = adjusted.copy()
    for c in ("open", "high", "low", "close"):
        raw[c] = adjusted[c] * factor
    raw["volume"] = adjusted["volume"] / factor
    table = splits(*[("AAA", index[bar].date().isoformat(), ratio) for bar, ratio in drawn])
    got = td.adjust_for_splits({"AAA": raw}, table)["AAA"]
    for c in ("open", "high", "low", "close", "volume"):
        assert getattr(got, c).tolist() == pytest.approx(adjusted[c].tolist(), rel=1e-12)
    series = {"AAA": pd.Series(table["ratio"].to_numpy(), pd.to_datetime(table["ex_date"]))}
    again = td.adjust_for_splits({"AAA": raw}, series)["AAA"]
    assert again.close.tolist() == got.close.tolist()


def test_bad_tables_of_splits_are_refused_by_name():
    data = {"AAA": raw_bars([100, 101, 50, 51])}
    good = {"symbol": ["AAA"], "ex_date": ["2024-03-06"], "ratio": [2.0]}

    def refused(table, match, **options):
        with pytest.raises(td.DataError, match=match):
            td.adjust_for_splits(data, pd.DataFrame(table) if isinstance(table, dict) else table,
                                 **options)

    refused({**good, "symbol": ["AAB"]}, r"splits: symbol 'AAB' is not in the data.*did you mean "
                                         r"'AAA'")
    for ratio in (0.0, -2.0, np.nan, np.inf):
        refused({**good, "ratio": [ratio]}, r"splits: symbol 'AAA', ex-date 2024-03-06: ratio "
                                            r".* must be a finite number above 0 \(new shares per "
                                            r"old share")
    refused({**good, "ratio": ["2:1"]}, r"ratio '2:1' is not a number")
    refused({**good, "ratio": [True]}, r"ratio True is not a number")
    refused({**good, "ex_date": ["someday"]}, r"splits: ex-date 'someday' is not a date")
    refused({"symbol": ["AAA", "AAA"], "ex_date": ["2024-03-06", "2024-03-06"], "ratio": [2.0, 1.5]},
            r"'AAA' has two splits on ex-date 2024-03-06 \(one row per split: multiply their "
            r"ratios")
    refused({"symbol": ["AAA"], "date": ["2024-03-06"], "ratio": [2.0]},
            r"splits: the table has no column 'ex_date'")
    refused([2.0], r"splits: expected a DataFrame with the columns symbol, ex_date and ratio")
    refused(good, r"symbol 'AAA' has no column 'dividends' \(per_share=\)", per_share=["dividends"])
    with pytest.raises(TypeError, match=r"load options"):
        td.adjust_for_splits(td.resolve(data), pd.DataFrame(good), symbols=["AAA"])


def test_a_split_the_raw_bars_do_not_show_is_refused_unless_asked():
    # Bars adjusted already (no jump at March 6) with a 2-for-1 split there: adjusting
    # again would halve the earlier prices. Refused, naming the prices seen; check=False
    # adjusts anyway. A split of a ratio nearer 1 than 1.5 is not checked (a 5% stock
    # dividend's jump is within a day's move).
    adjusted = {"AAA": raw_bars([50, 50.5, 51, 51.5])}
    table = splits(("AAA", "2024-03-06", 2.0))
    with pytest.raises(td.DataError, match=r"adjust_for_splits: symbol 'AAA', split of ratio 2 "
                                           r"from the bar at 2024-03-06 00:00:00\+00:00: the raw "
                                           r"bars do not jump there \(close 50.5 before, open 51 "
                                           r"at it, a ratio of 0.9902\); are they adjusted "
                                           r"already"):
        td.adjust_for_splits(adjusted, table)
    forced = td.adjust_for_splits(adjusted, table, check=False)["AAA"]
    assert forced.close.tolist() == [25, 25.25, 51, 51.5]
    small = td.adjust_for_splits(adjusted, splits(("AAA", "2024-03-06", 1.05)))["AAA"]
    assert small.close.tolist() == pytest.approx([50 / 1.05, 50.5 / 1.05, 51, 51.5], **EXACT)
    # A reverse split the bars do not show is refused the same way.
    with pytest.raises(td.DataError, match=r"split of ratio 0.1 from the bar at 2024-03-06"):
        td.adjust_for_splits(adjusted, splits(("AAA", "2024-03-06", 0.1)))


def test_adjusted_bars_run_like_any_bars_through_the_backtest():
    # Adjusted bars are MarketColumns: Backtest takes them, symbol order kept.
    raw = {"BBB": raw_bars([10, 10, 10, 10]), "AAA": raw_bars([100, 101, 50, 51])}
    adjusted = td.adjust_for_splits(raw, splits(("AAA", "2024-03-06", 2.0)))
    r = tickstep.Backtest(adjusted, cash=10_000).run_signals(
        entries={"AAA": [True, False, False, False], "BBB": [False] * 4},
        exits={"AAA": [False] * 4, "BBB": [False] * 4}, size=100, size_type="amount")
    assert adjusted.call_order == ["BBB", "AAA"]
    # 100 adjusted shares at bar 1's open 50.5; at the end 100 x 51.
    assert r.fills["price"].tolist() == [50.5]
    assert r.equity.iloc[-1] == pytest.approx(10_000 - 5_050 + 5_100, **EXACT)
