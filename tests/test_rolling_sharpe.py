"""The rolling Sharpe Ratio: each day's last ``window`` daily returns by the rule of the
``Sharpe Ratio`` statistic (numpy by hand, and the statistic itself over a window as long
as the run), in the run's units; and where the report draws it."""

from __future__ import annotations

import base64
import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep.metrics import daily_risk_free, rolling_sharpe
from tickstep.strategies import SmaCross


def drawn_line(text: str) -> np.ndarray:
    """The rolling Sharpe Ratio's line as a report's page holds it (its equity figure)."""
    found = re.search(r'<script type="application/json" id="fig-equity-data">(.*?)</script>',
                      text, re.S)
    spec = json.loads(found.group(1).replace("<\\/", "</"))
    y = next(t for t in spec["data"] if t["name"] == "rolling Sharpe Ratio")["y"]
    return np.frombuffer(base64.b64decode(y["bdata"]), dtype=y["dtype"])


def by_hand(r: np.ndarray, window: int, periods: int, rate: float) -> list[float]:
    rf = (1 + rate) ** (1 / periods) - 1
    out = []
    for end in range(1, len(r) + 1):
        if end < window:
            out.append(math.nan)
            continue
        w = r[end - window:end]
        std = np.std(w, ddof=1)
        # A window whose returns do not vary (flat, out of the market) has none.
        out.append(float(np.mean(w - rf) / std * math.sqrt(periods)) if std > 1e-12 else math.nan)
    return out


@pytest.mark.parametrize("window", [2, 5, 40])
def test_each_window_is_the_sharpe_ratio_of_its_days(window):
    rng = np.random.default_rng(window)
    days = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    r = pd.Series(rng.normal(0.0005, 0.01, len(days)), index=days)
    got = rolling_sharpe(r, window, periods_per_year=365, risk_free_rate=0.04)
    np.testing.assert_allclose(got.to_numpy(), by_hand(r.to_numpy(), window, 365, 0.04),
                               rtol=1e-9, equal_nan=True)
    assert got.index.equals(r.index) and got.name == "rolling_sharpe"


def test_a_window_as_long_as_the_run_is_its_sharpe_ratio():
    # Crypto-like data every day (365 a year) and a risk-free rate: the last value of a
    # window of all the days is the run's own statistic, in the run's own units.
    data = tickstep.data.sample(symbols=3, days=60, seed=4, hours="24h", freq="1h")
    result = tickstep.Backtest(data, SmaCross, risk_free_rate=0.03).run()
    daily = result.daily_returns()
    assert daily.attrs["periods_per_year"] == 365
    whole = result.rolling_sharpe(len(daily))
    assert whole.iloc[:-1].isna().all()
    assert whole.iloc[-1] == pytest.approx(result.stats["Sharpe Ratio"], rel=1e-9)
    # Shorter windows: by hand, with the run's rate and annualisation.
    np.testing.assert_allclose(result.rolling_sharpe(20).to_numpy(),
                               by_hand(daily.to_numpy(), 20, 365, 0.03), rtol=1e-9, equal_nan=True)


def test_flat_windows_and_bad_windows():
    days = pd.date_range("2024-01-01", periods=6, freq="D", tz="UTC")
    r = pd.Series([0.0, 0.0, 0.0, 0.01, -0.01, 0.02], index=days)
    got = rolling_sharpe(r, 3, periods_per_year=252)
    assert got.iloc[:3].isna().all() and got.iloc[3:].notna().all()  # a flat window: NaN
    # Flat after moving (out of the market after trading): NaN too, not a running
    # variance's dust divided into a huge ratio.
    later = pd.Series([0.013, -0.021, 0.034, 0.0, 0.0, 0.0, 0.0], index=pd.date_range(
        "2024-01-01", periods=7, freq="D", tz="UTC"))
    assert rolling_sharpe(later, 3, periods_per_year=252).iloc[5:].isna().all()
    for bad in (1, 0, 2.5, True, "3"):
        with pytest.raises(ValueError, match="window="):
            rolling_sharpe(r, bad, periods_per_year=252)
    with pytest.raises(ValueError, match="periods_per_year"):
        rolling_sharpe(r, 3)
    assert daily_risk_free(0.0, 252) == 0.0


def test_the_report_draws_it_under_the_equity_for_runs_long_enough(tmp_path):
    long = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, on_reject="ignore").run()
    assert len(long.daily_returns()) >= 2 * 126
    text = long.report(tmp_path / "long.html").read_text()
    assert "Sharpe Ratio over 126 days" in text
    # The figure's line is the result's, from its first whole window (downsampled no
    # further: fewer days than the report's points).
    want = long.rolling_sharpe(126).dropna()
    np.testing.assert_array_equal(drawn_line(text), want.to_numpy())
    short = tickstep.Backtest(tickstep.data.sample(symbols=2, days=30, seed=1), SmaCross,
                              on_reject="ignore").run()
    assert "Sharpe Ratio over" not in short.report(tmp_path / "short.html").read_text()


def test_an_idle_runs_report_draws_no_line_of_nothing(tmp_path):
    class Idle(tickstep.Strategy):
        pass

    idle = tickstep.Backtest(tickstep.data.example_daily(), Idle).run()
    assert idle.rolling_sharpe(126).isna().all()
    assert "Sharpe Ratio over" not in idle.report(tmp_path / "idle.html").read_text()


def test_a_walk_forwards_report_draws_its_stitched_runs(tmp_path):
    # Its out-of-sample days, stitched: the same rule on the walk-forward's daily returns.
    bt = tickstep.Backtest(tickstep.data.example_daily(), SmaCross, on_reject="ignore")
    wf = bt.walk_forward(train="180D", test="180D", maximize="Return [%]", fast=[5, 10],
                         cache=False)
    daily = wf.daily_returns()
    assert len(daily) >= 2 * 126
    np.testing.assert_allclose(wf.rolling_sharpe(40).to_numpy(),
                               by_hand(daily.to_numpy(), 40, daily.attrs["periods_per_year"], 0.0),
                               rtol=1e-9, equal_nan=True)
    text = wf.report(tmp_path / "wf.html").read_text()
    assert "Sharpe Ratio over 126 days" in text
    np.testing.assert_array_equal(drawn_line(text), wf.rolling_sharpe(126).dropna().to_numpy())
