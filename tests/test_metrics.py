"""Tests of tickstep.metrics: hand-computed tiny cases, edge cases, properties.

Expected numbers are worked out by hand in the comments (or by a closed formula
written out in the test), never copied from a run of the code under test.
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tickstep.metrics import (
    STAT_LABELS,
    alpha_beta,
    compute_stats,
    daily_returns,
    drawdown,
    exact_mean,
    exact_sum,
    format_stats,
    kelly_criterion,
    monthly_returns,
    sqn,
)

APPROX = {"rel": 1e-9, "abs": 1e-12}


def equity_frame(times, values, exposure=None) -> pd.DataFrame:
    index = pd.DatetimeIndex(pd.to_datetime(times))
    if index.tz is None:
        index = index.tz_localize("UTC")
    values = [float(v) for v in values]
    if exposure is None:
        exposure = [0.0] * len(values)
    return pd.DataFrame(
        {"equity": values, "cash": values, "gross_exposure": [float(x) for x in exposure]},
        index=index,
    )


def trades_frame(pnl, return_pct, commission, bars_held, mae, mfe) -> pd.DataFrame:
    n = len(pnl)
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    return pd.DataFrame(
        {
            "symbol": ["AAA"] * n,
            "side": ["long"] * n,
            "size": [1.0] * n,
            "entry_time": [t0] * n,
            "exit_time": [t0 + pd.Timedelta(days=1)] * n,
            "entry_price": [10.0] * n,
            "exit_price": [10.0] * n,
            "pnl": pnl,
            "return_pct": return_pct,
            "commission": commission,
            "bars_held": bars_held,
            "mae": mae,
            "mfe": mfe,
        }
    )


NO_TRADES = trades_frame([], [], [], [], [], [])

# Five daily closes from initial_cash = 100 with daily returns
#   r = [+2%, -1%, -1%, +3%, +2%]
#   100 * 1.02 = 102; * 0.99 = 100.98; * 0.99 = 99.9702; * 1.03 = 102.969306;
#   * 1.02 = 105.02869212.
FIVE_DAYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
FIVE_CLOSES = [102.0, 100.98, 99.9702, 102.969306, 105.02869212]


@pytest.fixture
def five_day_stats() -> pd.Series:
    equity = equity_frame(FIVE_DAYS, FIVE_CLOSES, exposure=[0, 50, 50, 0, 80])
    return compute_stats(equity, NO_TRADES, initial_cash=100.0)


def test_labels_are_stable_and_ordered(five_day_stats):
    assert list(five_day_stats.index) == [
        "Start",
        "End",
        "Duration",
        "Exposure Time [%]",
        "Equity Final [$]",
        "Equity Peak [$]",
        "Return [%]",
        "Buy & Hold Return [%]",
        "CAGR [%]",
        "Volatility (Ann.) [%]",
        "Sharpe Ratio",
        "Sortino Ratio",
        "Calmar Ratio",
        "Alpha [%]",
        "Beta",
        "Max. Drawdown [%]",
        "Avg. Drawdown [%]",
        "Max. Drawdown Duration",
        "Avg. Drawdown Duration",
        "Best Month [%]",
        "Worst Month [%]",
        "# Trades",
        "# Orders Rejected",
        "# Margin Calls",
        "Win Rate [%]",
        "Best Trade [%]",
        "Worst Trade [%]",
        "Avg. Trade [%]",
        "Max. Trade Duration",
        "Avg. Trade Duration",
        "Profit Factor",
        "Expectancy [$]",
        "SQN",
        "Kelly Criterion",
        "Avg. MAE [%]",
        "Avg. MFE [%]",
        "Commissions [$]",
        "Carrying Costs [$]",
        "Dividends [$]",
        "Avg. Bars Held",
    ]
    assert tuple(five_day_stats.index) == STAT_LABELS
    assert five_day_stats.name == "stats"


def test_five_days_by_hand(five_day_stats):
    s = five_day_stats
    assert s["Start"] == pd.Timestamp("2024-01-01", tz="UTC")
    assert s["End"] == pd.Timestamp("2024-01-05", tz="UTC")
    assert s["Duration"] == pd.Timedelta(days=4)
    # exposure > 0 on 3 of 5 samples
    assert s["Exposure Time [%]"] == pytest.approx(60.0)
    assert s["Equity Final [$]"] == pytest.approx(105.02869212)
    assert s["Equity Peak [$]"] == pytest.approx(105.02869212)
    # 1.02 * 0.99 * 0.99 * 1.03 * 1.02 = 1.0502869212
    assert s["Return [%]"] == pytest.approx(5.02869212, **APPROX)
    # mean r = 0.05 / 5 = 0.01; deviations +1, -2, -2, +2, +1 (x 0.01)
    # -> sum of squares 14e-4, var (ddof=1) = 14e-4 / 4 = 3.5e-4
    # vol = sqrt(3.5e-4 * 252) = sqrt(0.0882)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(math.sqrt(0.0882) * 100, **APPROX)
    # Sharpe = 0.01 / sqrt(3.5e-4) * sqrt(252) = sqrt(1e-4 * 252 / 3.5e-4) = sqrt(72)
    assert s["Sharpe Ratio"] == pytest.approx(math.sqrt(72), **APPROX)
    # downside: min(r, 0)^2 = 1e-4 on two days, mean over 5 days = 4e-5
    # Sortino = 0.01 / sqrt(4e-5) * sqrt(252) = sqrt(2.5 * 252) = sqrt(630)
    assert s["Sortino Ratio"] == pytest.approx(math.sqrt(630), **APPROX)
    # peak 102 (Jan 1) -> trough 99.9702 (Jan 3): 0.99 * 0.99 - 1 = -1.99%
    assert s["Max. Drawdown [%]"] == pytest.approx(-1.99, **APPROX)
    # 102 is regained on Jan 4 (102.969306): Jan 1 -> Jan 4
    assert s["Max. Drawdown Duration"] == pd.Timedelta(days=3)
    # The one drawdown is the average one too.
    assert s["Avg. Drawdown [%]"] == pytest.approx(-1.99, **APPROX)
    assert s["Avg. Drawdown Duration"] == pd.Timedelta(days=3)
    # CAGR over 4 days: 1.0502869212 ** (365.25 / 4) - 1
    assert s["CAGR [%]"] == pytest.approx((1.0502869212 ** (365.25 / 4) - 1) * 100, rel=1e-9)
    assert s["Calmar Ratio"] == pytest.approx(s["CAGR [%]"] / 1.99, rel=1e-9)


def test_risk_free_rate_is_compounded_to_daily():
    # periods_per_year = 2 and rf = 1.005^2 - 1 make the daily rf exactly 0.005.
    # excess = r - 0.005 = [+1.5%, -1.5%, -1.5%, +2.5%, +1.5%], mean 0.005,
    # std unchanged: sqrt(3.5e-4).
    # Sharpe = 0.005 / sqrt(3.5e-4) * sqrt(2) = sqrt(2.5e-5 * 2 / 3.5e-4) = sqrt(1/7)
    # downside: 2 * (0.015)^2 / 5 = 9e-5 -> Sortino = sqrt(2.5e-5 * 2 / 9e-5) = sqrt(5/9)
    # vol = sqrt(3.5e-4 * 2) = sqrt(7e-4)
    equity = equity_frame(FIVE_DAYS, FIVE_CLOSES)
    s = compute_stats(
        equity,
        NO_TRADES,
        initial_cash=100.0,
        risk_free_rate=1.005**2 - 1,
        periods_per_year=2,
    )
    assert s["Sharpe Ratio"] == pytest.approx(math.sqrt(1 / 7), rel=1e-9)
    assert s["Sortino Ratio"] == pytest.approx(math.sqrt(5 / 9), rel=1e-9)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(math.sqrt(7e-4) * 100, rel=1e-9)


def test_intraday_samples_drive_drawdown_but_not_daily_ratios():
    # Same five daily closes (the last sample of each UTC day), plus intraday samples.
    times = [
        "2024-01-01 09:30",
        "2024-01-01 12:00",
        "2024-01-01 16:00",
        "2024-01-02 10:00",
        "2024-01-02 16:00",
        "2024-01-03 16:00",
        "2024-01-04 16:00",
        "2024-01-05 16:00",
    ]
    values = [101.0, 95.0, 102.0, 103.5, 100.98, 99.9702, 102.969306, 105.02869212]
    s = compute_stats(
        equity_frame(times, values, exposure=[0, 1, 1, 1, 0, 0, 0, 0]),
        NO_TRADES,
        initial_cash=100.0,
    )
    # Daily returns are those of the five-day case.
    assert s["Sharpe Ratio"] == pytest.approx(math.sqrt(72), **APPROX)
    assert s["Sortino Ratio"] == pytest.approx(math.sqrt(630), **APPROX)
    # Intraday: peak 101 -> 95 is the deepest: 95/101 - 1 = -5.9406%
    # (the other dip, 103.5 -> 99.9702, is 99.9702/103.5 - 1 = -3.41%).
    assert s["Max. Drawdown [%]"] == pytest.approx((95 / 101 - 1) * 100, **APPROX)
    # Longest: peak 103.5 at Jan 2 10:00, regained only at Jan 5 16:00 = 3 days 6 hours
    # (the first dip, 09:30 -> 16:00 on Jan 1, lasts 6.5 hours).
    assert s["Max. Drawdown Duration"] == pd.Timedelta(days=3, hours=6)
    assert s["Equity Peak [$]"] == pytest.approx(105.02869212)
    # 3 of 8 samples exposed
    assert s["Exposure Time [%]"] == pytest.approx(37.5)


def test_days_are_utc_dates_whatever_the_index_timezone():
    # 10:00 and 20:00 New York time on Jan 1 are 15:00 on Jan 1 and 01:00 on Jan 2 in UTC:
    # two UTC days, so two daily returns: 101/100 - 1 = 0.01 and 99/101 - 1.
    index = pd.DatetimeIndex(["2024-01-01 10:00", "2024-01-01 20:00"]).tz_localize(
        "America/New_York"
    )
    equity = pd.DataFrame({"equity": [101.0, 99.0], "gross_exposure": [0.0, 0.0]}, index=index)
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    # std (ddof=1) of two values is |a - b| / sqrt(2)
    vol = abs(0.01 - (99 / 101 - 1)) / math.sqrt(2) * math.sqrt(252)
    assert s["Volatility (Ann.) [%]"] == pytest.approx(vol * 100, rel=1e-9)
    assert s["Start"] == pd.Timestamp("2024-01-01 15:00", tz="UTC")
    assert s["End"] == pd.Timestamp("2024-01-02 01:00", tz="UTC")


def test_naive_index_is_taken_as_utc():
    index = pd.DatetimeIndex(FIVE_DAYS)  # no tz
    equity = pd.DataFrame({"equity": FIVE_CLOSES, "gross_exposure": 0.0}, index=index)
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert s["Start"] == pd.Timestamp("2024-01-01", tz="UTC")
    assert s["Sharpe Ratio"] == pytest.approx(math.sqrt(72), **APPROX)


def test_cagr_over_one_year_span():
    # 2020 is a leap year: Jan 1 -> Dec 31 is 365 days, + 6 hours = 365.25 days = 1 year.
    start = pd.Timestamp("2020-01-01", tz="UTC")
    end = pd.Timestamp("2020-12-31 06:00", tz="UTC")
    equity = equity_frame([pd.Timestamp("2020-06-01", tz="UTC"), end], [95.0, 110.0])
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0, start=start, end=end)
    # 110 / 100 over exactly one year
    assert s["CAGR [%]"] == pytest.approx(10.0, rel=1e-9)
    # initial_cash is the first peak: 95 / 100 - 1 = -5%
    assert s["Max. Drawdown [%]"] == pytest.approx(-5.0, rel=1e-9)
    assert s["Calmar Ratio"] == pytest.approx(10.0 / 5.0, rel=1e-9)
    # the initial peak sits at start and is regained at end (110 >= 100)
    assert s["Max. Drawdown Duration"] == pd.Timedelta(days=365, hours=6)
    assert s["Duration"] == pd.Timedelta(days=365, hours=6)
    assert s["Start"] == start and s["End"] == end


def test_cagr_over_two_years_is_geometric():
    # 730.5 days = 2 years; 121 / 100 = 1.1^2 -> 10% a year (not 21% / 2).
    start = pd.Timestamp("2020-01-01", tz="UTC")
    end = start + pd.Timedelta(days=730.5)
    equity = equity_frame([start, end], [100.0, 121.0])
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert s["CAGR [%]"] == pytest.approx(10.0, rel=1e-9)
    assert s["Return [%]"] == pytest.approx(21.0, rel=1e-9)


def test_cagr_is_nan_for_a_span_under_a_day():
    equity = equity_frame(["2024-01-01 09:30", "2024-01-01 16:00"], [101.0, 99.0])
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert math.isnan(s["CAGR [%]"])
    assert math.isnan(s["Calmar Ratio"])
    assert s["Return [%]"] == pytest.approx(-1.0)


def test_trade_statistics_by_hand():
    trades = trades_frame(
        pnl=[50.0, -20.0, 30.0, -10.0, 0.0],
        return_pct=[0.05, -0.02, 0.03, -0.01, 0.0],
        commission=[1.5, 1.0, 1.0, 0.5, 1.0],
        bars_held=[3, 1, 4, 1, 6],
        mae=[-0.01, -0.03, -0.02, -0.02, 0.0],
        mfe=[0.06, 0.01, 0.04, 0.0, 0.01],
    )
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    assert s["# Trades"] == 5
    # 2 of 5 with pnl > 0 (the zero-pnl trade is not a win)
    assert s["Win Rate [%]"] == pytest.approx(40.0)
    assert s["Best Trade [%]"] == pytest.approx(5.0)
    assert s["Worst Trade [%]"] == pytest.approx(-2.0)
    # (5 - 2 + 3 - 1 + 0) / 5 = 1%
    assert s["Avg. Trade [%]"] == pytest.approx(1.0)
    # (50 + 30) / (20 + 10)
    assert s["Profit Factor"] == pytest.approx(80 / 30)
    # (50 - 20 + 30 - 10 + 0) / 5
    assert s["Expectancy [$]"] == pytest.approx(10.0)
    # (-1 - 3 - 2 - 2 + 0) / 5 and (6 + 1 + 4 + 0 + 1) / 5
    assert s["Avg. MAE [%]"] == pytest.approx(-1.6)
    assert s["Avg. MFE [%]"] == pytest.approx(2.4)
    assert s["Commissions [$]"] == pytest.approx(5.0)
    # (3 + 1 + 4 + 1 + 6) / 5
    assert s["Avg. Bars Held"] == pytest.approx(3.0)


def test_all_winning_trades_have_infinite_profit_factor():
    trades = trades_frame(
        pnl=[10.0, 5.0],
        return_pct=[0.1, 0.05],
        commission=[0.0, 0.0],
        bars_held=[2, 2],
        mae=[0.0, -0.01],
        mfe=[0.1, 0.05],
    )
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    assert s["Profit Factor"] == math.inf
    assert s["Win Rate [%]"] == pytest.approx(100.0)
    assert s["Worst Trade [%]"] == pytest.approx(5.0)


def test_flat_trades_have_no_profit_factor():
    trades = trades_frame(
        pnl=[0.0],
        return_pct=[0.0],
        commission=[0.0],
        bars_held=[1],
        mae=[0.0],
        mfe=[0.0],
    )
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    assert math.isnan(s["Profit Factor"])
    assert s["Win Rate [%]"] == 0.0


@pytest.mark.parametrize("trades", [NO_TRADES, pd.DataFrame()], ids=["typed", "bare"])
def test_no_trades(trades):
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    assert s["# Trades"] == 0
    for label in [
        "Win Rate [%]",
        "Best Trade [%]",
        "Worst Trade [%]",
        "Avg. Trade [%]",
        "Profit Factor",
        "Expectancy [$]",
        "SQN",
        "Kelly Criterion",
        "Avg. MAE [%]",
        "Avg. MFE [%]",
        "Avg. Bars Held",
    ]:
        assert math.isnan(s[label]), label
    assert s["Commissions [$]"] == 0.0
    # equity statistics are unaffected
    assert s["Sharpe Ratio"] == pytest.approx(math.sqrt(72), **APPROX)


def test_single_equity_point():
    equity = equity_frame(["2024-03-01 16:00"], [90.0], exposure=[10.0])
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert s["Start"] == s["End"]
    assert s["Duration"] == pd.Timedelta(0)
    assert s["Return [%]"] == pytest.approx(-10.0)
    assert s["Equity Final [$]"] == 90.0
    assert s["Equity Peak [$]"] == 100.0  # the initial cash
    assert s["Max. Drawdown [%]"] == pytest.approx(-10.0)
    assert s["Exposure Time [%]"] == 100.0
    # one daily return: no std, no Sharpe; span 0: no CAGR
    for label in ["Volatility (Ann.) [%]", "Sharpe Ratio", "Sortino Ratio", "CAGR [%]"]:
        assert math.isnan(s[label]), label
    # start == end == the sample: the drawdown has lasted no time yet
    assert s["Max. Drawdown Duration"] == pd.Timedelta(0)


def test_single_equity_point_with_explicit_start():
    equity = equity_frame(["2024-03-01 16:00"], [90.0])
    start = pd.Timestamp("2024-02-29 16:00", tz="UTC")
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0, start=start)
    assert s["Duration"] == pd.Timedelta(days=1)
    # the initial peak sits at start and is never regained
    assert s["Max. Drawdown Duration"] == pd.Timedelta(days=1)
    # exactly one day of span: 0.9 ** 365.25 - 1
    assert s["CAGR [%]"] == pytest.approx((0.9**365.25 - 1) * 100, rel=1e-9)


def test_constant_equity():
    equity = equity_frame(FIVE_DAYS, [100.0] * 5)
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert s["Return [%]"] == 0.0
    assert s["CAGR [%]"] == 0.0
    assert s["Volatility (Ann.) [%]"] == 0.0
    assert s["Max. Drawdown [%]"] == 0.0
    assert s["Max. Drawdown Duration"] == pd.Timedelta(0)
    for label in ["Sharpe Ratio", "Sortino Ratio", "Calmar Ratio"]:
        assert math.isnan(s[label]), label
    assert s["Exposure Time [%]"] == 0.0


def test_constant_growth_has_no_sharpe_from_rounding_noise():
    # 1% every day: all daily returns equal, up to float rounding. Std is zero
    # in exact arithmetic, so Sharpe must be NaN, not ~1e15.
    values = [100.0 * 1.01**k for k in range(1, 21)]
    times = pd.date_range("2024-01-01", periods=20, freq="D", tz="UTC")
    s = compute_stats(equity_frame(times, values), NO_TRADES, initial_cash=100.0)
    assert math.isnan(s["Sharpe Ratio"])
    assert math.isnan(s["Sortino Ratio"])  # no down day either
    assert s["Volatility (Ann.) [%]"] == pytest.approx(0.0, abs=1e-9)


def test_equity_that_never_recovers():
    # 100 (initial) -> 100, 120 (peak, Jan 2), 110, 90, 95: never back at 120.
    equity = equity_frame(FIVE_DAYS, [100.0, 120.0, 110.0, 90.0, 95.0])
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert s["Max. Drawdown [%]"] == pytest.approx(-25.0)  # 90 / 120 - 1
    assert s["Max. Drawdown Duration"] == pd.Timedelta(days=3)  # Jan 2 -> end (Jan 5)
    assert s["Equity Peak [$]"] == 120.0
    # with a later end the drawdown lasts until that end: Jan 2 -> Jan 10
    later = compute_stats(
        equity, NO_TRADES, initial_cash=100.0, end=pd.Timestamp("2024-01-10", tz="UTC")
    )
    assert later["Max. Drawdown Duration"] == pd.Timedelta(days=8)


def test_drawdown_helper():
    eq = pd.Series([100.0, 120.0, 90.0, 120.0, 130.0])
    # peaks 100, 120, 120, 120, 130
    assert drawdown(eq).tolist() == pytest.approx([0.0, 0.0, -0.25, 0.0, 0.0])
    # with initial 150 as the first peak: x / 150 - 1 throughout
    assert drawdown(eq, initial=150.0).tolist() == pytest.approx(
        [-1 / 3, -0.2, -0.4, -0.2, 130 / 150 - 1]
    )
    assert drawdown(eq).index.equals(eq.index)


def test_format_stats(five_day_stats):
    text = format_stats(five_day_stats)
    lines = text.splitlines()
    assert len(lines) == len(STAT_LABELS)
    for line, label in zip(lines, STAT_LABELS):
        assert line.startswith(label), (line, label)
    by_label = {label: line[len(label) :].strip() for line, label in zip(lines, STAT_LABELS)}
    assert by_label["Return [%]"] == "5.03"  # 5.02869212
    assert by_label["Sharpe Ratio"] == "8.485"  # sqrt(72) = 8.48528...
    assert by_label["Max. Drawdown [%]"] == "-1.99"
    assert by_label["Equity Final [$]"] == "105.03"
    assert by_label["# Trades"] == "0"
    assert by_label["Win Rate [%]"] == "NaN"
    assert by_label["Max. Drawdown Duration"] == str(pd.Timedelta(days=3))
    # values start in one column
    value_columns = {
        len(line) - len(line[len(label) :].lstrip()) for line, label in zip(lines, STAT_LABELS)
    }
    assert len(value_columns) == 1


def test_format_stats_money_and_infinity():
    text = format_stats(pd.Series({"Equity Final [$]": 1234567.891, "Profit Factor": math.inf}))
    assert "1,234,567.89" in text
    assert text.splitlines()[1].endswith("inf")


@pytest.mark.parametrize(
    ("frame", "kwargs", "error"),
    [
        (pd.DataFrame({"equity": [1.0], "gross_exposure": [0.0]}), {}, TypeError),
        (equity_frame(FIVE_DAYS, FIVE_CLOSES).drop(columns="equity"), {}, ValueError),
        (equity_frame(FIVE_DAYS, FIVE_CLOSES).drop(columns="gross_exposure"), {}, ValueError),
        (equity_frame(FIVE_DAYS, FIVE_CLOSES).iloc[:0], {}, ValueError),
        (equity_frame(FIVE_DAYS, FIVE_CLOSES).iloc[::-1], {}, ValueError),
        (equity_frame(FIVE_DAYS, [1.0, math.nan, 1.0, 1.0, 1.0]), {}, ValueError),
        (equity_frame(FIVE_DAYS, FIVE_CLOSES), {"initial_cash": 0.0}, ValueError),
        (
            equity_frame(FIVE_DAYS, FIVE_CLOSES),
            {"start": pd.Timestamp("2024-01-02", tz="UTC")},
            ValueError,
        ),
    ],
    ids=[
        "no-datetime-index",
        "no-equity",
        "no-exposure",
        "empty",
        "unsorted",
        "nan",
        "no-cash",
        "sample-before-start",
    ],
)
def test_bad_input_is_refused(frame, kwargs, error):
    kwargs = {"initial_cash": 100.0, **kwargs}
    with pytest.raises(error):
        compute_stats(frame, NO_TRADES, **kwargs)


def test_drawdowns_average_their_depths_and_durations():
    # From 100: 90 (a drawdown of -10% from Jan 1's start), back to 100 on Jan 3; a new
    # peak 120, then 96 (-20%) and 108 (-10%), never back by the end (Jan 7).
    times = pd.date_range("2024-01-01", periods=7, freq="D", tz="UTC")
    s = compute_stats(equity_frame(times, [100, 90, 100, 120, 96, 108, 110]), NO_TRADES,
                      initial_cash=100.0)
    # The first runs from the peak of Jan 1 (100) through 90 on Jan 2, back on Jan 3: 2
    # days. The second from the peak 120 of Jan 4, under until the end, Jan 7: 3 days.
    assert s["Max. Drawdown [%]"] == pytest.approx(-20.0, **APPROX)
    assert s["Avg. Drawdown [%]"] == pytest.approx((-10.0 - 20.0) / 2, **APPROX)
    assert s["Max. Drawdown Duration"] == pd.Timedelta(days=3)
    assert s["Avg. Drawdown Duration"] == pd.Timedelta(days=2.5)
    flat = compute_stats(equity_frame(times, [100, 101, 102, 103, 104, 105, 106]), NO_TRADES,
                         initial_cash=100.0)
    assert (flat["Avg. Drawdown [%]"], flat["Avg. Drawdown Duration"]) == (0.0, pd.Timedelta(0))


def test_trade_durations_from_entry_to_exit():
    trades = trades_frame([1.0, -1.0, 2.0], [0.01, -0.01, 0.02], [0.0] * 3, [1, 1, 1],
                          [0.0] * 3, [0.01] * 3)
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    trades["entry_time"] = [t0, t0, t0 + pd.Timedelta(hours=5)]
    # Held 1 ns, 2 ns and 1 day: the longest is the day, the mean (86,400e9 + 3) / 3 ns
    # = 28,800e9 + 1 ns exactly.
    trades["exit_time"] = [t0 + pd.Timedelta(1, "ns"), t0 + pd.Timedelta(2, "ns"),
                           t0 + pd.Timedelta(hours=29)]
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    assert s["Max. Trade Duration"] == pd.Timedelta(days=1)
    assert s["Avg. Trade Duration"] == pd.Timedelta(hours=8) + pd.Timedelta(1, "ns")
    # Halves round up: 1 ns and 2 ns average 1.5 ns, shown as 2 ns.
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades.iloc[:2], initial_cash=100.0)
    assert s["Avg. Trade Duration"] == pd.Timedelta(2, "ns")
    # Without the trades' times, no durations; without trades, none either.
    untimed = trades.drop(columns=["entry_time", "exit_time"])
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), untimed, initial_cash=100.0)
    assert s["Max. Trade Duration"] is pd.NaT and s["Avg. Trade Duration"] is pd.NaT
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), NO_TRADES, initial_cash=100.0)
    assert s["Max. Trade Duration"] is pd.NaT and s["# Trades"] == 0


@pytest.mark.parametrize("exit_time", [pd.NaT, pd.Timestamp("2023-12-31", tz="UTC")])
def test_a_trade_without_an_exit_or_exiting_before_its_entry_is_refused(exit_time):
    trades = trades_frame([1.0, 2.0], [0.01, 0.02], [0.0] * 2, [1, 1], [0.0] * 2, [0.01] * 2)
    trades.loc[1, "exit_time"] = exit_time
    with pytest.raises(ValueError, match=r"trades frame row 1: entry_time .* no closed trade's"):
        compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)


def test_trades_missing_a_column_are_refused():
    trades = trades_frame([1.0], [0.01], [0.0], [1], [0.0], [0.01]).drop(columns="mae")
    with pytest.raises(ValueError, match="mae"):
        compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)


# --- properties against a naive loop ---------------------------------------------------


def naive_drawdown(values, times, initial, start, end):
    """Max drawdown (fraction), its longest duration and every drawdown as (duration,
    depth), one sample at a time."""
    peak, peak_time, under = initial, start, False
    worst, longest, episodes, depth = 0.0, pd.Timedelta(0), [], 0.0
    for value, time in zip(values, times):
        if value >= peak:
            if under:
                longest = max(longest, time - peak_time)
                episodes.append((time - peak_time, depth))
            peak, peak_time, under, depth = value, time, False, 0.0
        else:
            under = True
            worst = min(worst, value / peak - 1)
            depth = min(depth, value / peak - 1)
    if under:
        longest = max(longest, end - peak_time)
        episodes.append((end - peak_time, depth))
    return worst, longest, episodes


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(
        st.floats(min_value=1.0, max_value=1e6, allow_nan=False), min_size=1, max_size=60
    ),
    initial=st.floats(min_value=1.0, max_value=1e6, allow_nan=False),
    data=st.data(),
)
def test_drawdown_and_return_match_a_naive_loop(values, initial, data):
    gaps = data.draw(
        st.lists(st.integers(min_value=1, max_value=72), min_size=len(values), max_size=len(values))
    )
    times = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(gaps), unit="h")
    stats = compute_stats(equity_frame(times, values), NO_TRADES, initial_cash=initial)

    worst, longest, episodes = naive_drawdown(values, list(times), initial, times[0], times[-1])
    assert stats["Max. Drawdown [%]"] == pytest.approx(worst * 100, rel=1e-9, abs=1e-9)
    assert stats["Max. Drawdown Duration"] == longest
    depths = [d for _, d in episodes]
    assert stats["Avg. Drawdown [%]"] == pytest.approx(
        sum(depths) / len(depths) * 100 if depths else 0.0, rel=1e-9, abs=1e-9)
    # The mean duration in whole ns, halves up.
    total = sum(t.value for t, _ in episodes)
    mean = math.floor(Fraction(total, len(episodes)) + Fraction(1, 2)) if episodes else 0
    assert stats["Avg. Drawdown Duration"] == pd.Timedelta(mean, unit="ns")
    assert stats["Return [%]"] == pytest.approx((values[-1] / initial - 1) * 100, rel=1e-9)
    assert stats["Equity Peak [$]"] == max([initial, *values])


def test_cagr_overflow_is_infinite_not_an_error():
    # x7 in one day annualises to 7 ** 365.25, beyond float range.
    equity = equity_frame(["2024-01-01", "2024-01-02"], [1.0, 7.0])
    s = compute_stats(equity, NO_TRADES, initial_cash=1.0)
    assert s["CAGR [%]"] == math.inf


# --- statistics beside the basic ones: exposure dust, months, SQN, Kelly, alpha/beta -----


def test_exposure_ignores_float_dust_of_a_flat_book():
    # Incremental exposure of a flat book reads +-2.3e-10 on a 1e6 account: not exposed.
    # Exposed: 50.0 and 1e-2 (a real if tiny position); flat: 0, -2.3e-10, 2.3e-10.
    equity = equity_frame(FIVE_DAYS, [1e6] * 5, exposure=[0.0, -2.3e-10, 2.3e-10, 50.0, 1e-2])
    s = compute_stats(equity, NO_TRADES, initial_cash=1e6)
    assert s["Exposure Time [%]"] == pytest.approx(40.0)


def test_best_and_worst_month_by_hand():
    # Month ends: Jan 31 110 (+10% from 100), Feb 29 99 (-10%), Mar 15 103.95 (+5%).
    # Samples inside a month (Jan 10: 90) do not count, only the month's last one.
    times = ["2024-01-10", "2024-01-31", "2024-02-10", "2024-02-29", "2024-03-15"]
    equity = equity_frame(times, [90.0, 110.0, 120.0, 99.0, 103.95])
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0)
    assert s["Best Month [%]"] == pytest.approx(10.0, **APPROX)
    assert s["Worst Month [%]"] == pytest.approx(-10.0, **APPROX)


def test_monthly_returns_match_pandas_resample():
    rng = np.random.default_rng(7)
    index = pd.date_range("2023-11-03", periods=400, freq="17h", tz="UTC")
    values = 1000.0 * np.cumprod(1 + rng.normal(0, 0.01, len(index)))
    got = monthly_returns(pd.Series(values, index=index), 1000.0)
    month_end = pd.Series(values, index=index).resample("MS").last().dropna()
    want = pd.concat([pd.Series([1000.0]), pd.Series(month_end.to_numpy())]).pct_change().iloc[1:]
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    assert list(got.index) == list(month_end.index)


def test_sqn_and_kelly_by_hand():
    pnl = [10.0, -5.0, 20.0, 15.0, -10.0]
    n = len(pnl)
    trades = trades_frame(pnl, [p / 100 for p in pnl], [0.0] * n, [1] * n, [0.0] * n, [0.0] * n)
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    # mean = 30 / 5 = 6; squared deviations 16 + 121 + 196 + 81 + 256 = 670; std = sqrt(670 / 4)
    assert s["SQN"] == pytest.approx(math.sqrt(5) * 6.0 / math.sqrt(670 / 4), **APPROX)
    # W = 3/5; average win 15, average loss 7.5 -> R = 2; Kelly = 0.6 - 0.4 / 2 = 0.4
    assert s["Kelly Criterion"] == pytest.approx(0.4, **APPROX)


def test_kelly_and_sqn_undefined_cases():
    assert math.isnan(kelly_criterion(np.array([5.0, 3.0])))  # no loss: R undefined
    assert math.isnan(kelly_criterion(np.array([-5.0, 0.0])))  # no win
    assert math.isnan(sqn(np.array([5.0])))  # one trade: no spread
    assert math.isnan(sqn(np.array([5.0, 5.0])))  # zero spread
    # a zero P&L trade counts in W (it is not a win): W = 1/3, R = 10 / 5 -> 1/3 - 2/3 / 2 = 0
    assert kelly_criterion(np.array([10.0, -5.0, 0.0])) == pytest.approx(0.0, abs=1e-15)
    # R = (5e-324 / 1) / 2 rounds to 0: the limit of W - (1 - W) / R, not a ZeroDivisionError
    # (a case hypothesis found); the statistics of such trades carry it too.
    assert kelly_criterion(np.array([5e-324, -2.0])) == -math.inf
    assert kelly_criterion(np.array([1e-300, -2.0])) == pytest.approx(0.5 - 0.5 / 5e-301)
    trades = trades_frame([5e-324, -2.0], [0.0, -0.02], [0.0] * 2, [1] * 2, [0.0] * 2, [0.0] * 2)
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)
    assert s["Kelly Criterion"] == -math.inf


def test_buy_and_hold_is_an_equal_weight_basket():
    first, last = np.array([10.0, 50.0, 4.0]), np.array([12.0, 45.0, 5.0])
    s = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), NO_TRADES, initial_cash=100.0,
                      buy_and_hold=(first, last))
    # (+20% - 10% + 25%) / 3 = 11.666..%
    assert s["Buy & Hold Return [%]"] == pytest.approx(35.0 / 3, **APPROX)
    assert math.isnan(compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), NO_TRADES,
                                    initial_cash=100.0)["Buy & Hold Return [%]"])


def test_alpha_beta_against_numpy_least_squares():
    rng = np.random.default_rng(11)
    # Four samples a day (intraday ones must not count), 60 days; the benchmark has its own
    # clock (every 5 hours) and is read at each day's last equity sample.
    index = pd.date_range("2024-03-01 03:00", periods=240, freq="6h", tz="UTC")
    bench_index = pd.date_range("2024-02-28", periods=300, freq="5h", tz="UTC")
    bench = pd.Series(50.0 * np.cumprod(1 + rng.normal(0, 0.01, len(bench_index))), index=bench_index)
    values = 1e5 * np.cumprod(1 + rng.normal(0.0005, 0.008, len(index)))
    rf = 0.03
    s = compute_stats(equity_frame(index, values), NO_TRADES, initial_cash=1e5, periods_per_year=252,
                      risk_free_rate=rf, benchmark=bench)

    # Reference: pandas day ends, asof lookups, numpy lstsq on excess returns.
    eq = pd.Series(values, index=index)
    day_last = eq.groupby(eq.index.floor("D")).tail(1)
    strat = np.diff(np.concatenate(([1e5], day_last.to_numpy()))) / np.concatenate(([1e5], day_last.to_numpy()[:-1]))
    bench_read = bench.asof(pd.DatetimeIndex([index[0]]).append(day_last.index)).to_numpy()
    bench_ret = bench_read[1:] / bench_read[:-1] - 1
    rf_daily = (1 + rf) ** (1 / 252) - 1
    X = np.column_stack([np.ones(len(bench_ret)), bench_ret - rf_daily])
    (a, b), *_ = np.linalg.lstsq(X, strat - rf_daily, rcond=None)
    assert s["Beta"] == pytest.approx(b, rel=1e-9)
    assert s["Alpha [%]"] == pytest.approx(a * 252 * 100, rel=1e-9)


def test_alpha_beta_leave_out_days_before_the_benchmark_starts():
    index = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    values = [101.0, 103.0, 102.0, 105.0, 104.0, 108.0]
    # The benchmark starts on day 3: the first days have no benchmark return.
    bench = pd.Series([10.0, 10.5, 10.2, 10.9], index=index[2:])
    s = compute_stats(equity_frame(index, values), NO_TRADES, initial_cash=100.0, benchmark=bench,
                      periods_per_year=252)
    strat = np.array(values[3:]) / np.array(values[2:-1]) - 1  # days 4..6
    b = bench.to_numpy()
    x = b[1:] / b[:-1] - 1
    (a, beta), *_ = np.linalg.lstsq(np.column_stack([np.ones(3), x]), strat, rcond=None)
    assert s["Beta"] == pytest.approx(beta, rel=1e-9)
    assert s["Alpha [%]"] == pytest.approx(a * 252 * 100, rel=1e-9)
    a2, b2 = alpha_beta(np.array([0.01, 0.02]), np.array([0.0, 0.0]))
    assert math.isnan(a2) and math.isnan(b2)  # a benchmark that does not move: undefined


# --- benchmark= through a backtest --------------------------------------------------------


def test_benchmark_symbol_or_series_gives_alpha_beta_of_its_closes():
    import tickstep
    from tickstep.strategies import SmaCross

    data = tickstep.data.example_daily()
    byn = next(b for b in data.bars if b.symbol == "BYN")
    closes = pd.Series(np.asarray(byn.close), index=pd.to_datetime(np.asarray(byn.ts), utc=True))
    by_symbol = tickstep.Backtest(data, SmaCross, cash=1e5, benchmark="BYN").run()
    by_series = tickstep.Backtest(data, SmaCross, cash=1e5, benchmark=closes).run()
    assert by_symbol.stats.equals(by_series.stats)
    # Reference: numpy least squares on daily returns of equity and of the closes.
    eq = by_symbol.equity
    strat = np.diff(np.concatenate(([1e5], eq.to_numpy()))) / np.concatenate(([1e5], eq.to_numpy()[:-1]))
    read = closes.asof(pd.DatetimeIndex([by_symbol.stats["Start"]]).append(eq.index)).to_numpy()
    bench = read[1:] / read[:-1] - 1
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones(len(bench)), bench]), strat, rcond=None)
    assert by_symbol.stats["Beta"] == pytest.approx(b, rel=1e-9)
    assert by_symbol.stats["Alpha [%]"] == pytest.approx(a * 252 * 100, rel=1e-9)
    assert by_symbol.options["benchmark"] == "BYN"


def test_a_runs_benchmark_equity_is_its_cash_held_in_the_benchmark(tmp_path):
    # The cash held in the benchmark at each equity sample, from its price at the run's
    # start: by hand, and its daily returns are those the run's Alpha and Beta read.
    import pickle

    import tickstep
    from tickstep.metrics import daily_returns
    from tickstep.strategies import SmaCross

    data = tickstep.data.example_daily()
    byn = next(b for b in data.bars if b.symbol == "BYN")
    closes = pd.Series(np.asarray(byn.close), index=pd.to_datetime(np.asarray(byn.ts), utc=True))
    result = tickstep.Backtest(data, SmaCross, cash=1e5, benchmark="BYN").run()
    held = result.benchmark_equity()
    base = closes.asof(result.stats["Start"])
    np.testing.assert_allclose(held, 1e5 * closes.asof(result.equity.index) / base, rtol=1e-12)
    assert held.name == "BYN" and held.index.equals(result.equity.index)
    bench = daily_returns(held, 1e5).to_numpy()
    strat = result.daily_returns().to_numpy()
    (a, b), *_ = np.linalg.lstsq(np.column_stack([np.ones(len(bench)), bench]), strat, rcond=None)
    assert result.stats["Beta"] == pytest.approx(b, rel=1e-9)
    assert result.stats["Alpha [%]"] == pytest.approx(a * 252 * 100, rel=1e-9)
    # A price Series that starts later: NaN before its first price, from which it counts.
    later = closes.iloc[100:].rename("index")
    late = tickstep.Backtest(data, SmaCross, cash=1e5, benchmark=later).run().benchmark_equity()
    first = late.index.searchsorted(later.index[0])
    assert late.iloc[:first].isna().all() and late.iloc[first] == pytest.approx(1e5, rel=1e-12)
    assert late.name == "index"
    # Kept through a pickle and a save; a run without a benchmark says how to give one.
    for again in (pickle.loads(pickle.dumps(result)),
                  tickstep.load_result(result.save(tmp_path / "r"))):
        pd.testing.assert_series_equal(again.benchmark_equity(), held)
    plain = tickstep.Backtest(data, SmaCross, cash=1e5).run()
    with pytest.raises(ValueError, match=r"this run had no benchmark: BacktestConfig\(benchmark"):
        plain.benchmark_equity()
    # The plot draws it beside the equity (and the buy-and-hold basket).
    names = [t.name for t in result.plot(symbols=["BYN"]).data]
    assert names[:4] == ["equity", "peak", "buy & hold", "benchmark (BYN)"]
    assert "benchmark (BYN)" not in [t.name for t in plain.plot(symbols=["BYN"]).data]


def test_a_benchmark_symbol_left_out_of_the_run_is_read_from_the_data(tmp_path):
    # One symbol's backtest against another of the same data (a dict, a DuckDB store, a
    # streamed store, a batch of one group a symbol): the alpha and beta of the same run
    # given the benchmark's closes as a Series, bit for bit.
    import warnings

    import tickstep
    import tickstep.data as td
    from tickstep.batch import run_batch
    from tickstep.strategies import SmaCross

    data = tickstep.data.example_daily()
    tew = next(b for b in data.bars if b.symbol == "TEW")
    closes = pd.Series(np.asarray(tew.close), index=pd.to_datetime(np.asarray(tew.ts), utc=True),
                       name="TEW")
    store = tmp_path / "daily.duckdb"
    with td.Store(store, read_only=False) as s:
        s.ingest(data)
    labels = ["Alpha [%]", "Beta", "Sharpe Ratio"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        want = tickstep.Backtest(data, SmaCross, cash=1e5, symbols=["BARP"],
                                 benchmark=closes).run().stats[labels]
        runs = {
            "dict": tickstep.Backtest(data, SmaCross, cash=1e5, symbols=["BARP"],
                                      benchmark="TEW").run(),
            "store": tickstep.Backtest(str(store), SmaCross, cash=1e5, symbols=["BARP"],
                                       benchmark="TEW").run(),
            "streamed": tickstep.Backtest(str(store), SmaCross, cash=1e5, symbols=["BARP"],
                                          benchmark="TEW", stream="90D").run(),
        }
        rows = run_batch(SmaCross, str(store), benchmark="TEW", cash=1e5, cache=False,
                         executor="sequential")
    assert not math.isnan(want["Beta"])
    for how, result in runs.items():
        assert result.stats[labels].tolist() == want.tolist(), how
        assert result.benchmark_equity().name == "TEW", how
    barp = rows[rows["symbols"] == "BARP"].iloc[0]
    assert barp[labels].tolist() == want.tolist()
    # Each symbol alone against it, the benchmark's own group too.
    assert rows["Beta"].notna().all() and len(rows) == len(data.bars)
    alone = tickstep.Backtest(data, SmaCross, cash=1e5, benchmark="TEW", symbols=["TEW"]).run()
    assert rows[rows["symbols"] == "TEW"].iloc[0]["Beta"] == alone.stats["Beta"]
    # A name the data does not hold: refused naming the option, with the closest.
    with pytest.raises(tickstep.data.DataError, match=r"benchmark='TEWW': .*did you mean 'TEW'"):
        tickstep.Backtest(str(store), SmaCross, symbols=["BARP"], benchmark="TEWW")
    with pytest.raises(KeyError, match=r"benchmark 'TEWW' is not a symbol of the data.*'TEW'"):
        run_batch(SmaCross, str(store), benchmark="TEWW", cache=False, executor="sequential")
    import pyarrow as pa

    # A single-use stream of record batches, read once for the run's symbols and the
    # benchmark's (in a batch too).
    def stream():
        batches = pa.Table.from_pandas(data.to_frame().reset_index()).to_batches(max_chunksize=500)
        return pa.RecordBatchReader.from_batches(batches[0].schema, batches)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", tickstep.TickstepWarning)
        once = tickstep.Backtest(stream(), SmaCross, cash=1e5, symbols=["BARP"], benchmark="TEW").run()
        batch = run_batch(SmaCross, stream(), symbols=["BARP"], benchmark="TEW", cash=1e5,
                          cache=False, executor="sequential")
    assert once.stats[labels].tolist() == want.tolist()
    assert batch.iloc[0][labels].tolist() == want.tolist()


def test_benchmark_refusals():
    import tickstep
    from tickstep.strategies import SmaCross

    data = tickstep.data.example_daily()
    with pytest.raises(KeyError, match="did you mean 'BYN'"):
        tickstep.Backtest(data, SmaCross, benchmark="BYM")
    with pytest.raises(tickstep.ConfigError, match="benchmark"):
        tickstep.Backtest(data, SmaCross, benchmark=pd.Series([1.0, 2.0]))
    with pytest.raises(tickstep.ConfigError, match="finite and positive"):
        tickstep.BacktestConfig(benchmark=pd.Series(
            [1.0, -2.0], index=pd.to_datetime(["2024-01-01", "2024-01-02"], utc=True)))
    with pytest.raises(tickstep.ConfigError, match="benchmark"):
        tickstep.BacktestConfig(benchmark=42)


def test_benchmark_prices_are_a_value():
    from tickstep.batch.jobs import canonical
    from tickstep.metrics import BenchmarkPrices

    idx = pd.date_range("2024-01-01", periods=1000, freq="D", tz="UTC")
    a = pd.Series(np.linspace(10, 20, 1000), index=idx)
    b = a.copy()
    b.iloc[500] += 0.01  # differs in the middle, where a truncated repr would not show it
    assert BenchmarkPrices(a) == BenchmarkPrices(a.copy())
    assert BenchmarkPrices(a) != BenchmarkPrices(b)
    assert canonical(BenchmarkPrices(a)) != canonical(BenchmarkPrices(b))
    import pickle

    assert pickle.loads(pickle.dumps(BenchmarkPrices(a))) == BenchmarkPrices(a)


def _same_bits(a, b) -> bool:
    return np.float64(a).tobytes() == np.float64(b).tobytes() or (math.isnan(a) and math.isnan(b))


# P&Ls with ties, zeros of both signs, tiny and huge values, and sometimes a NaN.
_PNL = st.lists(
    st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False),
        st.sampled_from([0.0, -0.0, 1.0, -1.0, 1e-300, -1e-300]),
        st.just(math.nan),
    ),
    min_size=1,
    max_size=400,
)


_VALUES = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False)


def _fsum_mean(values) -> float:
    return math.fsum(values) / len(values) if len(values) else math.nan


@settings(max_examples=300, deadline=None)
@given(pnl=_PNL, data=st.data())
def test_trade_statistics_are_exact_sums_in_any_order(pnl, data):
    """Every sum over the trades is exact (math.fsum's value, an independent exact sum), so
    any order of the same trades gives the same bits: the rule that keeps statistics from
    depending on the symbols' names (trades of one instant come in execution order)."""
    n = len(pnl)
    column = st.lists(_VALUES, min_size=n, max_size=n)
    trades = pd.DataFrame({
        "pnl": np.array(pnl), "return_pct": np.array(data.draw(column)),
        "commission": np.abs(np.array(data.draw(column))),
        "bars_held": np.array(data.draw(st.lists(st.integers(0, 10**6), min_size=n, max_size=n))),
        "mae": np.array(data.draw(column)), "mfe": np.array(data.draw(column)),
    })
    got = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES), trades, initial_cash=100.0)

    p = np.array(pnl)
    wins, losses = p[p > 0], p[p < 0]
    profit, loss = math.fsum(wins), -math.fsum(losses)
    factor = profit / loss if loss > 0 else (math.inf if profit > 0 else math.nan)
    w = len(wins) / n
    if len(wins) and len(losses):
        ratio = _fsum_mean(wins) / -_fsum_mean(losses)
        kelly = -math.inf if ratio == 0.0 else w - (1.0 - w) / ratio
    else:
        kelly = math.nan
    mean = _fsum_mean(p)
    std = math.sqrt(math.fsum((p - mean) ** 2) / (n - 1)) if n > 1 else math.nan
    want = {
        "Win Rate [%]": w * 100.0,
        "Profit Factor": factor,
        "Kelly Criterion": kelly,
        "Expectancy [$]": mean,
        "SQN": math.sqrt(n) * mean / std if std > 1e-12 else math.nan,
        "Avg. Trade [%]": _fsum_mean(trades["return_pct"].to_numpy()) * 100.0,
        "Avg. MAE [%]": _fsum_mean(trades["mae"].to_numpy()) * 100.0,
        "Avg. MFE [%]": _fsum_mean(trades["mfe"].to_numpy()) * 100.0,
        "Commissions [$]": math.fsum(trades["commission"]),
        "Avg. Bars Held": math.fsum(trades["bars_held"].astype(float)) / n,
    }
    for label, value in want.items():
        # + 0.0: an exactly zero sum is +0.0 here, where fsum keeps a -0.0.
        assert _same_bits(got[label] + 0.0, value + 0.0), (label, got[label], value)

    order = data.draw(st.permutations(range(n)))
    shuffled = compute_stats(equity_frame(FIVE_DAYS, FIVE_CLOSES),
                             trades.iloc[order].reset_index(drop=True), initial_cash=100.0)
    for label in want:
        assert _same_bits(shuffled[label], got[label]), label


@settings(max_examples=300, deadline=None)
@given(values=st.lists(st.floats(min_value=-1e300, max_value=1e300), max_size=60),
       data=st.data())
def test_exact_sum_is_fsum_in_any_order(values, data):
    """exact_sum is the exactly rounded sum (math.fsum's bits; +0.0 for a zero sum) and
    the same bits in any order, where numpy's sum differs in its last bits."""
    got = exact_sum(np.array(values))
    assert _same_bits(got, math.fsum(values) + 0.0)
    order = data.draw(st.permutations(values))
    assert _same_bits(exact_sum(np.array(order)), got)
    assert _same_bits(exact_mean(np.array(order)), got / len(values) if values else math.nan)


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(0, 6), columns=st.integers(0, 6), data=st.data())
def test_exact_sums_along_an_axis_are_fsum_of_each_row_or_column(rows, columns, data):
    """axis=1 / axis=0: math.fsum of each row / column, bit for bit, whatever the
    matrix's layout (a transposed or strided view is read as its values)."""
    values = np.array(data.draw(st.lists(st.floats(min_value=-1e300, max_value=1e300),
                                         min_size=rows * columns, max_size=rows * columns)),
                      dtype=float).reshape(rows, columns)
    for matrix in (values, np.asfortranarray(values), np.repeat(values, 2, axis=1)[:, ::2]):
        by_row = exact_sum(matrix, axis=1)
        by_column = exact_sum(matrix, axis=0)
        assert by_row.shape == (rows,) and by_column.shape == (columns,)
        for k in range(rows):
            assert _same_bits(by_row[k], math.fsum(values[k]) + 0.0)
        for k in range(columns):
            assert _same_bits(by_column[k], math.fsum(values[:, k]) + 0.0)
        assert _same_bits(exact_sum(matrix, axis=-1)[0] if rows else 0.0,
                          by_row[0] if rows else 0.0)


def test_exact_sum_refuses_an_axis_it_cannot_sum_along():
    with pytest.raises(ValueError, match=r"axis=2 .* 2-D array"):
        exact_sum(np.ones((2, 2)), axis=2)
    with pytest.raises(ValueError, match=r"axis=0 .* 1-D array"):
        exact_sum(np.ones(3), axis=0)
    assert exact_sum(np.ones((2, 3))) == 6.0  # no axis: every value


def test_exact_sum_of_special_values():
    assert exact_sum(np.array([1e16, 1.0, -1e16])) == 1.0  # np.sum gives 0.0
    assert exact_sum(np.array([0.1] * 10)) == 1.0  # a running sum gives 0.9999999999999999
    assert exact_sum(np.array([])) == 0.0
    assert exact_sum(np.array([1e308, 1e308])) == math.inf  # fsum raises OverflowError
    assert exact_sum(np.array([math.inf, 1.0])) == math.inf
    assert math.isnan(exact_sum(np.array([math.inf, -math.inf])))  # fsum raises ValueError
    assert math.isnan(exact_sum(np.array([1.0, math.nan])))
    assert exact_sum(np.arange(10.0)[::2]) == 20.0  # a strided view is read as its values
    assert exact_sum([1, 2, 3]) == 6.0  # a list of ints, as float64


# ---- an account wiped out or in debt --------------------------------------------------
#
# A return is a change of equity over the equity it started from; from nothing (0 / 0)
# or from a debt (the sign turned over: a debt shrinking reads as a loss) there is none,
# so the days that start there are skipped as days without a sample are.


def test_days_starting_wiped_out_have_no_return_and_warn_of_nothing():
    # 100 -> 120 (+20%), 30 (-75%), 0 (-100%), then 0 and 0 again: no return from there.
    days = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]
    equity = equity_frame(days, [120.0, 30.0, 0.0, 0.0, 0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's 0 / 0 warning, say
        s = compute_stats(equity, NO_TRADES, initial_cash=100.0, periods_per_year=252)
        daily = daily_returns(equity["equity"], 100.0)
    assert daily.to_numpy().tolist() == pytest.approx([0.2, -0.75, -1.0], **APPROX)
    assert list(daily.index) == list(equity.index[:3])
    r = np.array([0.2, -0.75, -1.0])
    assert s["Volatility (Ann.) [%]"] == pytest.approx(np.std(r, ddof=1) * math.sqrt(252) * 100, **APPROX)
    assert s["Sharpe Ratio"] == pytest.approx(r.mean() / np.std(r, ddof=1) * math.sqrt(252), **APPROX)
    downside = math.sqrt(np.mean(np.minimum(r, 0.0) ** 2))
    assert s["Sortino Ratio"] == pytest.approx(r.mean() / downside * math.sqrt(252), **APPROX)
    assert s["Return [%]"] == -100.0
    assert s["Worst Month [%]"] == -100.0  # January: 100 -> 0


def test_days_starting_in_debt_are_skipped_and_the_benchmark_keeps_to_the_same_days():
    # 100 -> -50 (-150%: lost one and a half times what there was); -25 and 10 start
    # from a debt (no return: -25 / -50 - 1 = -50% would call the debt halving a loss);
    # 10 -> 20 (+100%), 20 -> 18 (-10%).
    days = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    equity = equity_frame(days, [-50.0, -25.0, 10.0, 20.0, 18.0, 27.0])
    got = daily_returns(equity["equity"], 100.0)
    assert got.to_numpy().tolist() == pytest.approx([-1.5, 1.0, -0.1, 0.5], **APPROX)
    assert list(got.index) == [days[0], days[3], days[4], days[5]]
    # Beta against a benchmark read on the same days only, numpy's least squares.
    bench = pd.Series([100.0, 90.0, 99.0, 108.9, 98.01, 107.811, 97.0299],
                      index=pd.date_range("2023-12-31", periods=7, freq="D", tz="UTC"))
    s = compute_stats(equity, NO_TRADES, initial_cash=100.0, periods_per_year=252, benchmark=bench)
    # Read at the run's start (its first sample) and at each day's last sample.
    b = bench.asof(pd.DatetimeIndex([days[0], *days])).to_numpy()
    bench_ret = (b[1:] / b[:-1] - 1)[[0, 3, 4, 5]]
    x = np.column_stack([np.ones(4), bench_ret])
    (alpha, beta), *_ = np.linalg.lstsq(x, got.to_numpy(), rcond=None)
    assert s["Beta"] == pytest.approx(beta, rel=1e-9)
    assert s["Alpha [%]"] == pytest.approx(alpha * 252 * 100, rel=1e-9)
    # Months alike: January ends at 27 from 100 (-73%); a February from a debt has none.
    into_feb = equity_frame([*days, pd.Timestamp("2024-01-31", tz="UTC"),
                             pd.Timestamp("2024-02-29", tz="UTC")],
                            [-50.0, -25.0, 10.0, 20.0, 18.0, 27.0, -4.0, 8.0])
    months = monthly_returns(into_feb["equity"], 100.0)
    assert months.to_numpy().tolist() == pytest.approx([-1.04], **APPROX)
    assert list(months.index) == [pd.Timestamp("2024-01-01", tz="UTC")]


@settings(max_examples=60, deadline=None)
@given(values=st.lists(st.sampled_from([-30.0, -5.0, 0.0, 0.0, 4.0, 50.0, 100.0, 150.0]),
                       min_size=1, max_size=30),
       hours=st.lists(st.integers(1, 40), min_size=30, max_size=30))
def test_daily_returns_are_pandas_pct_change_from_positive_equity(values, hours):
    # Reference: pandas' day ends, the initial cash before them, pct_change, and the days
    # whose previous close is above zero kept.
    times = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.cumsum(hours[: len(values)]), unit="h")
    equity = pd.Series(values, index=times)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = daily_returns(equity, 100.0)
        stats = compute_stats(equity_frame(times, values), NO_TRADES, initial_cash=100.0,
                              periods_per_year=252)
    closes = equity.groupby(equity.index.floor("D")).tail(1)
    before = pd.Series([100.0, *closes.to_numpy()[:-1]], index=closes.index)
    want = (closes / before - 1)[before > 0]
    assert list(got.index) == list(want.index)
    np.testing.assert_allclose(got.to_numpy(), want.to_numpy(), rtol=1e-12)
    if len(want) >= 2 and np.std(want, ddof=1) > 1e-12:
        assert stats["Sharpe Ratio"] == pytest.approx(
            want.mean() / np.std(want.to_numpy(), ddof=1) * math.sqrt(252), rel=1e-9)
    else:
        assert math.isnan(stats["Sharpe Ratio"])
