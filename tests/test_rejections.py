"""Rejected orders are never silent: one warning at the end of a run (or an error, or
nothing, by ``on_reject``), and ``# Orders Rejected`` in the statistics."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep import BacktestConfig
from tickstep.simulation import market_from_columns, simulate_stats


def frame(closes):
    closes = np.asarray(closes, float)
    index = pd.date_range("2024-01-02", periods=len(closes), freq="D", tz="UTC")
    return pd.DataFrame({"open": closes, "high": closes, "low": closes, "close": closes, "volume": 1.0},
                        index=index)


DATA = {"AAA": frame([50, 50, 50, 50, 50, 50]), "BBB": frame([20, 20, 20, 20, 20, 20])}


class TooBig(tickstep.Strategy):
    """Cash 1,000 at leverage 1: 30 AAA (1,500) never fits; 10 BBB (200) does."""

    def next(self, symbol):
        if symbol == "AAA" and len(self.data(symbol)) <= 3:
            self.buy(size=30)
        if symbol == "BBB" and len(self.data(symbol)) == 1:
            self.buy(size=10)


def test_a_run_with_rejections_warns_once_with_counts_and_orders():
    with pytest.warns(tickstep.RejectedOrderWarning) as record:
        result = tickstep.Backtest(DATA, TooBig, cash=1_000).run()
    assert len(record) == 1
    warning = record[0]
    message = str(warning.message)
    assert message.startswith("3 order(s) rejected (3 insufficient margin)")
    assert "buy 30 AAA at 2024-01-03 00:00:00+00:00 (insufficient margin)" in message
    assert "BBB" not in message
    assert warning.filename == __file__  # points at the line that ran the backtest
    assert isinstance(warning.message, tickstep.TickstepWarning)
    assert result.stats["# Orders Rejected"] == 3
    rejected = result.orders[result.orders["status"] == "rejected"]
    assert len(rejected) == 3 and set(rejected["symbol"]) == {"AAA"}
    assert result.positions.loc["BBB", "size"] == 10


def test_the_warning_can_become_an_error_or_be_filtered():
    with warnings.catch_warnings():
        warnings.simplefilter("error", tickstep.RejectedOrderWarning)
        with pytest.raises(tickstep.RejectedOrderWarning):
            tickstep.Backtest(DATA, TooBig, cash=1_000).run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", category=tickstep.TickstepWarning)
        assert tickstep.Backtest(DATA, TooBig, cash=1_000).run().stats["# Orders Rejected"] == 3


def test_on_reject_raise_and_ignore():
    with pytest.raises(tickstep.RejectedOrdersError, match="3 order\\(s\\) rejected"):
        tickstep.Backtest(DATA, TooBig, cash=1_000, on_reject="raise").run()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tickstep.Backtest(DATA, TooBig, cash=1_000, on_reject="ignore").run()
    assert result.stats["# Orders Rejected"] == 3
    with pytest.raises(tickstep.ConfigError, match="on_reject='loud'"):
        BacktestConfig(on_reject="loud")


def test_no_rejections_no_warning_and_a_zero_count():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = tickstep.Backtest(DATA, TooBig, cash=10_000).run()
    assert result.stats["# Orders Rejected"] == 0


def test_the_stats_only_path_counts_them_too():
    market = market_from_columns(tickstep.data.resolve(DATA))
    with pytest.warns(tickstep.RejectedOrderWarning):
        stats = simulate_stats(market, TooBig, BacktestConfig(cash=1_000))
    assert stats["# Orders Rejected"] == 3
    full = tickstep.Backtest(DATA, TooBig, cash=1_000, on_reject="ignore").run().stats
    assert stats.drop(["Start", "End"]).equals(full.drop(["Start", "End"]))
