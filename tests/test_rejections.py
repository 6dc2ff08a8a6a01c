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


class Sized(tickstep.Strategy):
    """TooBig with the AAA order's size as a parameter: 30 never fits, 1 always does."""

    size = 30

    def next(self, symbol):
        if symbol == "AAA" and len(self.data(symbol)) <= 3:
            self.buy(size=self.size)
        if symbol == "BBB" and len(self.data(symbol)) == 1:
            self.buy(size=10)


@pytest.mark.parametrize("executor", ["sequential", "process"])
def test_a_batch_warns_once_for_all_its_runs_naming_those_with_rejections(executor, tmp_path):
    from tickstep.batch import run_batch

    def batch():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            rows = run_batch(Sized, DATA, params={"size": [1, 30, 40]}, cash=1_000,
                             executor=executor, max_workers=2, cache=tmp_path)
        return rows, [w for w in caught if issubclass(w.category, tickstep.RejectedOrderWarning)]

    rows, (warning,) = batch()
    message = str(warning.message)
    # Per symbol and size: AAA's three orders of 30 or 40 are rejected, of 1 filled; BBB's fits.
    counts = rows.set_index(["symbols", "size"])["# Orders Rejected"]
    assert counts.to_dict() == {("AAA", 1): 0, ("AAA", 30): 3, ("AAA", 40): 3,
                                ("BBB", 1): 0, ("BBB", 30): 0, ("BBB", 40): 0}
    assert message.startswith("2 of 6 runs had orders the broker rejected (6 order(s) in all)")
    assert "  AAA (size=30): 3 order(s)\n  AAA (size=40): 3 order(s)\n" in message
    assert "BBB" not in message and "size=1)" not in message
    assert warning.filename == __file__  # the caller's line, not a worker's
    # Answered from the cache, the same runs had the same rejections: the same warning.
    again, (cached,) = batch()
    assert again["cached"].all() and str(cached.message) == message


def test_a_batch_warning_can_become_an_error_in_the_caller():
    with warnings.catch_warnings():
        warnings.simplefilter("error", tickstep.RejectedOrderWarning)
        with pytest.raises(tickstep.RejectedOrderWarning, match="1 of 2 runs"):
            tickstep.Backtest(DATA, Sized, cash=1_000).optimize(size=[1, 30], cache=False)


def test_a_batch_under_ignore_says_nothing_and_under_raise_fails_those_runs():
    from tickstep.batch import FailedRunWarning, run_batch

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        quiet = run_batch(Sized, DATA, params={"size": [1, 30]}, cash=1_000, on_reject="ignore",
                          executor="sequential", cache=False, maximize="Return [%]")
    # Under "raise" a run with rejections fails as it would alone: a failed run (warned of
    # as one), no rejection warning.
    with pytest.warns(FailedRunWarning) as record:
        strict = run_batch(Sized, DATA, params={"size": [1, 30]}, cash=1_000, on_reject="raise",
                           executor="sequential", cache=False, maximize="Return [%]")
    (failed_runs,) = record
    assert str(failed_runs.message).splitlines()[:2] == [
        "1 of 4 runs failed; the first:",
        "  AAA (size=30): tickstep.rejections.RejectedOrdersError: 3 order(s) rejected "
        "(3 insufficient margin); the first:"]
    assert quiet["# Orders Rejected"].sum() == 3
    failed = strict[strict["status"] == "error"]
    assert list(zip(failed["symbols"], failed["size"])) == [("AAA", 30)]
    assert "RejectedOrdersError: 3 order(s) rejected" in failed["error"].iloc[0]
    assert (strict.loc[strict["status"] == "ok", "# Orders Rejected"] == 0).all()


def test_the_summary_counts_only_runs_with_rejections_and_skips_failed_ones():
    from tickstep.rejections import warn_of_rejected_runs

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert warn_of_rejected_runs([("a", 0), ("b", None), ("c", float("nan"))], "warn") == 0
        assert warn_of_rejected_runs([("a", 2)], "ignore") == 1
    runs = [(f"run {k}", k % 3) for k in range(10)]  # runs 1, 2, 4, 5, 7, 8 have 1 or 2
    with pytest.warns(tickstep.RejectedOrderWarning) as record:
        assert warn_of_rejected_runs(runs, "warn") == 6
    lines = str(record[0].message).splitlines()
    assert lines[0] == "6 of 10 runs had orders the broker rejected (9 order(s) in all); the first:"
    assert lines[1:6] == ["  run 1: 1 order(s)", "  run 2: 2 order(s)", "  run 4: 1 order(s)",
                          "  run 5: 2 order(s)", "  run 7: 1 order(s)"]
