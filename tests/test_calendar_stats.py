"""Statistics follow the backtest's calendar: the same trading days (those of
``timezone``) whether equity is sampled once a day or at every bar, and annualisation by
the data's calendar (252 exchange sessions, 365 round-the-clock days, or as given)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep.metrics import compute_stats, periods_per_year_of

NY = "America/New_York"


def hourly(days, seed, weekdays_only=False, start="2024-03-04"):
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=24 * days, freq="1h", tz="UTC")
    if weekdays_only:
        index = index[index.tz_convert(NY).day_of_week < 5]
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(index))))
    open_ = np.r_[100.0, close[:-1]]
    return pd.DataFrame({"open": open_, "high": np.maximum(open_, close) * 1.001,
                         "low": np.minimum(open_, close) * 0.999, "close": close, "volume": 1.0}, index=index)


class Swing(tickstep.Strategy):
    """Long or short a few units, switching every 7 bars: equity moves all day long."""

    def next(self, symbol):
        n = len(self.data())
        if n % 7 == 1:
            target = 5 if (n // 7) % 2 == 0 else -3
            self.order_target(size=target)


DAILY = ["Equity Final [$]", "Return [%]", "CAGR [%]", "Volatility (Ann.) [%]", "Sharpe Ratio",
         "Sortino Ratio", "Best Month [%]", "Worst Month [%]", "# Trades", "Win Rate [%]",
         "Best Trade [%]", "Worst Trade [%]", "Avg. Trade [%]", "Profit Factor", "Commissions [$]"]


@pytest.mark.parametrize("timezone", [NY, "Asia/Tokyo", "UTC"])
def test_same_days_and_statistics_in_both_recording_modes(timezone):
    data = {"X": hourly(40, 1), "Y": hourly(40, 2)}
    runs = {every: tickstep.Backtest(data, Swing, cash=10_000, commission=0.0005, timezone=timezone,
                                     record_every_bar=every).run()
            for every in (False, True)}
    daily, every_bar = runs[False], runs[True]
    assert len(every_bar.equity) > 20 * len(daily.equity)
    # The per-bar samples' last of each local day are the daily samples, value for value.
    local_days = every_bar.equity.index.tz_convert(timezone).normalize()
    day_ends = every_bar.equity.groupby(local_days).last()
    assert day_ends.to_numpy().tolist() == daily.equity.to_numpy().tolist()
    for label in DAILY:
        a, b = daily.stats[label], every_bar.stats[label]
        assert a == b or (isinstance(a, float) and math.isnan(a) and math.isnan(b)), label


def test_daily_statistics_by_hand_on_the_local_calendar():
    """Sharpe from the last equity of each New York day, annualised by 365 (bars every day)."""
    data = {"X": hourly(30, 3)}
    result = tickstep.Backtest(data, Swing, cash=10_000, timezone=NY, record_every_bar=True).run()
    eq = result.equity
    closes = np.r_[10_000.0, eq.groupby(eq.index.tz_convert(NY).normalize()).last().to_numpy()]
    daily = closes[1:] / closes[:-1] - 1
    assert result.stats["Sharpe Ratio"] == pytest.approx(daily.mean() / daily.std(ddof=1) * math.sqrt(365),
                                                         rel=1e-12)
    assert result.stats["Volatility (Ann.) [%]"] == pytest.approx(daily.std(ddof=1) * math.sqrt(365) * 100,
                                                                  rel=1e-12)


def test_annualisation_follows_the_calendar_or_the_option():
    weekdays = {"X": hourly(40, 4, weekdays_only=True)}
    every_day = {"X": hourly(40, 4)}
    runs = [tickstep.Backtest(d, Swing, cash=10_000, timezone=NY, **kw).run()
            for d, kw in ((weekdays, {}), (every_day, {}), (every_day, {"periods_per_year": 52}))]
    vol = []
    for r in runs:
        eq = r.equity
        closes = np.r_[10_000.0, eq.to_numpy()]
        vol.append(np.std(closes[1:] / closes[:-1] - 1, ddof=1))
    assert runs[0].stats["Volatility (Ann.) [%]"] == pytest.approx(vol[0] * math.sqrt(252) * 100, rel=1e-12)
    assert runs[1].stats["Volatility (Ann.) [%]"] == pytest.approx(vol[1] * math.sqrt(365) * 100, rel=1e-12)
    assert runs[2].stats["Volatility (Ann.) [%]"] == pytest.approx(vol[2] * math.sqrt(52) * 100, rel=1e-12)
    with pytest.raises(tickstep.ConfigError, match="periods_per_year=0"):
        tickstep.BacktestConfig(periods_per_year=0)
    with pytest.raises(tickstep.ConfigError, match="periods_per_year=252.5"):
        tickstep.BacktestConfig(periods_per_year=252.5)


def test_periods_per_year_of_day_numbers():
    monday = pd.Timestamp("2024-03-04").value // 86_400_000_000_000
    assert periods_per_year_of(np.arange(monday, monday + 5)) == 252
    assert periods_per_year_of(np.arange(monday, monday + 7)) == 365  # every day
    # A year of weekdays with three special Saturday sessions (as exchanges hold now and
    # then): still an exchange's calendar; a day counted once however many samples it has.
    days = np.arange(monday, monday + 364)
    weekdays = days[(days + 3) % 7 < 5]
    saturdays = days[(days + 3) % 7 == 5][[3, 20, 40]]
    assert periods_per_year_of(np.sort(np.r_[weekdays, saturdays])) == 252
    assert periods_per_year_of(np.repeat(np.arange(monday, monday + 7), [9, 9, 9, 9, 9, 1, 1])) == 365
    # Sessions opening on Sunday evening in UTC (futures): a sixth day a week, 1/6 of them,
    # under backtesting.py's threshold of 0.6 x 2/7.
    sundays = days[(days + 3) % 7 == 6]
    assert periods_per_year_of(np.sort(np.r_[weekdays, sundays])) == 252
    # Its rule on pandas' weekdays, as backtesting.py writes it, on random calendars of
    # days (at least every other day kept: daily bars, not weekly ones).
    rng = np.random.default_rng(4)
    for _ in range(200):
        picked = days[rng.random(len(days)) < rng.uniform(0.5, 1.0)]
        index = pd.to_datetime(picked * 86_400_000_000_000)
        theirs = 365 if index.day_of_week.to_series().between(5, 6).mean() > 2 / 7 * 0.6 else 252
        assert periods_per_year_of(picked) == theirs


def test_cagr_counts_calendar_years_from_the_first_bar_to_the_last():
    idx = pd.DatetimeIndex([pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-12-31 12:00", tz="UTC")])
    eq = pd.DataFrame({"equity": [100.0, 121.0], "gross_exposure": [0.0, 0.0]}, index=idx)
    stats = compute_stats(eq, pd.DataFrame(), initial_cash=100.0)
    years = (idx[1] - idx[0]) / pd.Timedelta(days=365.25)
    assert stats["CAGR [%]"] == pytest.approx((1.21 ** (1 / years) - 1) * 100, rel=1e-12)


@pytest.mark.parametrize(("freq", "per_year"), [("W-FRI", 52), ("ME", 12), ("MS", 12), ("QE", 4),
                                                ("YE", 1), ("2W-FRI", 26)])
def test_bars_of_a_week_or_longer_are_annualised_by_their_count_in_a_year(freq, per_year):
    # A return a bar, so a year holds 52 weekly ones, not 252 (which overstated a weekly
    # run's Sharpe Ratio and volatility by sqrt(252 / 52), 2.2 times), as backtesting.py
    # annualises them; the statistics are numpy's of the bars' returns at that rate.
    index = pd.date_range("2001-01-01", periods=60, freq=freq, tz="UTC")
    closes = 100.0 * np.cumprod(1 + np.random.default_rng(6).normal(0.004, 0.03, len(index)))
    bars = pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes,
                         "volume": 1.0}, index=index)

    class Hold(tickstep.Strategy):
        def next(self, symbol):
            if not self.position:
                self.buy(size=50)

    r = tickstep.Backtest({"A": bars}, Hold, cash=10_000).run()
    daily = r.daily_returns()
    assert daily.attrs["periods_per_year"] == per_year and len(daily) == len(index)
    equity = np.r_[10_000.0, r.equity.to_numpy()]
    returns = equity[1:] / equity[:-1] - 1
    assert r.stats["Volatility (Ann.) [%]"] == pytest.approx(
        np.std(returns, ddof=1) * math.sqrt(per_year) * 100, rel=1e-12)
    assert r.stats["Sharpe Ratio"] == pytest.approx(
        returns.mean() / np.std(returns, ddof=1) * math.sqrt(per_year), rel=1e-12)


def test_daily_bars_with_holidays_or_a_long_halt_stay_daily():
    # The median gap decides: weekends, holidays and a two-week halt leave days daily.
    days = pd.bdate_range("2024-01-01", periods=300, tz="UTC")
    days = days[(days < "2024-05-01") | (days > "2024-05-15")]
    assert periods_per_year_of(days.as_unit("ns").asi8 // 86_400_000_000_000) == 252
    monday = pd.Timestamp("2024-03-04").value // 86_400_000_000_000
    assert periods_per_year_of(np.array([monday])) == 252  # one day: no gap to judge by
