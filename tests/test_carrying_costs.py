"""Carrying costs, as a broker charges them: a borrow fee on short market value, interest
on negative cash and (optionally) on positive cash, accrued for each calendar day at the
end of each trading day, in the equity and in ``Carrying Costs [$]``."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep


def flat_bars(index, price=50.0):
    n = len(index)
    return pd.DataFrame({"open": [price] * n, "high": [price] * n, "low": [price] * n,
                         "close": [price] * n, "volume": [1.0] * n}, index=index)


class ShortOnce(tickstep.Strategy):
    size = 100

    def init(self):
        self.sell("X", size=self.size)


def test_a_month_of_borrow_fees_by_hand():
    """Short 100 at 50 (5,000 of market value) through March 2024, daily bars every day:
    3.65% a year is 0.50 a day; filled at the second bar's open (March 2), so 30 day ends
    hold the short: 15.00 in all."""
    index = pd.date_range("2024-03-01", "2024-03-31", freq="D", tz="UTC")
    r = tickstep.Backtest({"X": flat_bars(index)}, ShortOnce, cash=10_000, borrow_rate=0.0365).run()
    eq = r.equity
    assert len(eq) == 31
    assert eq.iloc[0] == 10_000.0  # no short yet at the first day's end
    assert np.diff(eq.to_numpy()) == pytest.approx([-0.5] * 30, abs=1e-9)
    assert eq.iloc[-1] == pytest.approx(10_000 - 15.0, abs=1e-9)
    assert r.stats["Carrying Costs [$]"] == pytest.approx(15.0, abs=1e-9)
    assert r.equity_frame["cash"].iloc[-1] == pytest.approx(15_000 - 15.0, abs=1e-9)


def test_weekends_are_charged_at_the_next_session_end():
    """Exchange days ending 21:00 UTC, Monday to Friday: Friday's end to Monday's is three
    days of fees, charged at Monday's end."""
    days = pd.bdate_range("2024-03-04", "2024-03-15", tz="UTC") + pd.Timedelta(hours=21)
    r = tickstep.Backtest({"X": flat_bars(days)}, ShortOnce, cash=10_000, borrow_rate=0.0365).run()
    charges = -np.diff(r.equity.to_numpy())
    # Tue..Fri 0.5 each, Mon 1.5, Tue..Fri 0.5 each.
    assert charges == pytest.approx([0.5] * 4 + [1.5] + [0.5] * 4, abs=1e-9)


class BuyOnMargin(tickstep.Strategy):
    def init(self):
        self.buy("X", size=300)  # 15,000 with 10,000 of cash: -5,000


def test_margin_interest_and_cash_interest():
    index = pd.date_range("2024-03-01", periods=11, freq="D", tz="UTC")
    r = tickstep.Backtest({"X": flat_bars(index)}, BuyOnMargin, cash=10_000, leverage=2,
                          margin_rate=0.073, cash_rate=0.05).run()
    cash = r.equity_frame["cash"].to_numpy()
    # First day end: still all cash, earning 5%: 10,000 x 0.05 / 365.
    assert cash[0] == pytest.approx(10_000 * (1 + 0.05 / 365), rel=1e-12)
    # Then the loan grows by 7.3% / 365 a day, compounding on the balance.
    for before, after in zip(cash[1:], cash[2:]):
        assert after == pytest.approx(before * (1 + 0.073 / 365), rel=1e-12)
    # Flat prices, no commission: every change of equity is a carrying cost (or income).
    assert r.stats["Carrying Costs [$]"] == pytest.approx(10_000 - r.equity.iloc[-1], rel=1e-12)
    assert r.stats["Carrying Costs [$]"] > 0


def test_rates_are_checked():
    with pytest.raises(tickstep.ConfigError, match="borrow_rate=-0.01"):
        tickstep.BacktestConfig(borrow_rate=-0.01)
    with pytest.raises(tickstep.ConfigError, match="margin_rate=nan"):
        tickstep.BacktestConfig(margin_rate=float("nan"))


class ShortBoth(tickstep.Strategy):
    def init(self):
        self.sell("X", size=100)  # 5,000 at 50
        self.sell("HTB", size=40)  # 2,000 at 50


def test_a_hard_to_borrow_symbol_pays_its_own_fee():
    """X's short (5,000) pays the account's 3.65% (0.50 a day), HTB's (2,000) its own
    36.5% (2.00 a day): 2.50 a day over the 30 day ends that hold them."""
    index = pd.date_range("2024-03-01", "2024-03-31", freq="D", tz="UTC")
    data = {"X": flat_bars(index), "HTB": flat_bars(index)}
    r = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate=0.0365,
                          borrow_rate_by_symbol={"HTB": 0.365}).run()
    assert np.diff(r.equity.to_numpy()) == pytest.approx([-2.5] * 30, abs=1e-9)
    assert r.stats["Carrying Costs [$]"] == pytest.approx(75.0, abs=1e-9)
    # A rate of 0 of its own: HTB borrowed for free, X at the account's.
    free = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate=0.0365,
                             borrow_rate_by_symbol={"HTB": 0.0}).run()
    assert free.stats["Carrying Costs [$]"] == pytest.approx(15.0, abs=1e-9)


@pytest.mark.parametrize("rates", [{"X": 0.0365}, {"X": 0.0365, "HTB": 0.0365}])
def test_the_accounts_fee_given_per_symbol_is_the_accounts(rates):
    # Each short's fee rounded once and summed exactly against the account's sum of
    # shorts times one rate: the same charges within a hair, and the same fills.
    index = pd.date_range("2024-03-01", periods=20, freq="D", tz="UTC")
    rng = np.random.default_rng(3)
    data = {s: flat_bars(index).assign(close=50 * np.exp(np.cumsum(rng.normal(0, 0.02, 20))))
            .pipe(lambda f: f.assign(open=f["close"], high=f["close"], low=f["close"]))
            for s in ("X", "HTB")}
    plain = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate=0.0365).run()
    own = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate=0.0365,
                            borrow_rate_by_symbol=rates).run()
    pd.testing.assert_frame_equal(own.fills, plain.fills)
    assert own.equity.to_numpy() == pytest.approx(plain.equity.to_numpy(), rel=1e-14)
    assert own.stats["Carrying Costs [$]"] == pytest.approx(
        plain.stats["Carrying Costs [$]"], rel=1e-12)


def test_signals_mode_charges_the_same_fees():
    index = pd.date_range("2024-03-01", "2024-03-31", freq="D", tz="UTC")
    data = {"X": flat_bars(index), "HTB": flat_bars(index)}
    short_entries = pd.DataFrame({"X": [True] + [False] * 30, "HTB": [True] + [False] * 30},
                                 index=index)
    none = short_entries & False
    bt = tickstep.Backtest(data, cash=10_000, borrow_rate=0.0365,
                           borrow_rate_by_symbol={"HTB": 0.365})
    r = bt.run_signals(entries=none, exits=none, short_entries=short_entries,
                       short_exits=none, size={"X": 100, "HTB": 40}, size_type="amount")
    assert r.stats["Carrying Costs [$]"] == pytest.approx(75.0, abs=1e-9)


def test_borrow_rates_by_symbol_are_checked():
    with pytest.raises(tickstep.ConfigError, match=r"borrow_rate_by_symbol\['HTB'\]=-0.1"):
        tickstep.BacktestConfig(borrow_rate_by_symbol={"HTB": -0.1})
    index = pd.date_range("2024-03-01", periods=3, freq="D", tz="UTC")
    with pytest.raises(tickstep.UnknownSymbolError, match=r"borrow_rate_by_symbol: 'HBT'.*'HTB'"):
        tickstep.Backtest({"X": flat_bars(index), "HTB": flat_bars(index)}, ShortBoth,
                          borrow_rate_by_symbol={"HBT": 0.3})


# ---- a borrow fee that moves day by day (borrow_rate_column) -------------------------

MARCH = pd.date_range("2024-03-01", "2024-03-31", freq="D", tz="UTC")
#: HTB's quoted fee: 36.5% through March 10, 73% through March 20, none quoted after.
FEES = np.r_[[0.365] * 10, [0.73] * 10, [np.nan] * 11]


def test_a_quoted_fee_is_paid_as_it_moves():
    """HTB's short (40 at 50: 2,000) pays its bar's fee: 2.00 a day on March 2-10 (9 day
    ends), 4.00 on March 11-20 (10), and where none is quoted the account's 3.65%, 0.20,
    on March 21-31 (11): 60.20. X has no such column: the account's 0.50 a day, 15.00."""
    data = {"X": flat_bars(MARCH), "HTB": flat_bars(MARCH).assign(fee=FEES)}
    r = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate=0.0365,
                          borrow_rate_column="fee", allow_nan=["fee"]).run()
    daily = -np.diff(r.equity.to_numpy())
    assert daily == pytest.approx([2.5] * 9 + [4.5] * 10 + [0.7] * 11, abs=1e-9)
    assert r.stats["Carrying Costs [$]"] == pytest.approx(75.2, abs=1e-9)
    # Unquoted days fall to the symbol's own rate when it has one: 1.00 a day.
    own = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate=0.0365,
                            borrow_rate_by_symbol={"HTB": 0.1825}, borrow_rate_column="fee",
                            allow_nan=["fee"]).run()
    assert own.stats["Carrying Costs [$]"] == pytest.approx(18 + 40 + 11 + 15, abs=1e-9)


def test_a_day_without_a_bar_pays_the_latest_quote_never_a_later_one():
    # HTB has no bar on March 3: that day's end (X's bar) charges March 2's 36.5%
    # (2.00), not March 4's 73% (4.00).
    index = MARCH[:4]
    htb = flat_bars(index).assign(fee=[0.0, 0.365, 0.5, 0.73]).drop(index[2])
    data = {"X": flat_bars(index), "HTB": htb}
    r = tickstep.Backtest(data, ShortBoth, cash=10_000, borrow_rate_column="fee").run()
    assert -np.diff(r.equity.to_numpy()) == pytest.approx([2.0, 2.0, 4.0], abs=1e-9)


def test_signals_mode_pays_the_quoted_fees_too():
    data = {"X": flat_bars(MARCH), "HTB": flat_bars(MARCH).assign(fee=FEES)}
    short_entries = pd.DataFrame({"X": [True] + [False] * 30, "HTB": [True] + [False] * 30},
                                 index=MARCH)
    none = short_entries & False
    bt = tickstep.Backtest(data, cash=10_000, borrow_rate=0.0365, borrow_rate_column="fee",
                           allow_nan=["fee"])
    r = bt.run_signals(entries=none, exits=none, short_entries=short_entries,
                       short_exits=none, size={"X": 100, "HTB": 40}, size_type="amount")
    assert r.stats["Carrying Costs [$]"] == pytest.approx(75.2, abs=1e-9)


def test_a_quoted_fee_column_is_checked():
    data = {"X": flat_bars(MARCH), "HTB": flat_bars(MARCH).assign(fee=-FEES)}
    with pytest.raises(tickstep.TickstepError, match=r"symbol 'HTB': borrow fee -0.365 in column "
                                                     r"'fee' at 2024-03-01.*0 or above"):
        tickstep.Backtest(data, ShortBoth, borrow_rate_column="fee", allow_nan=["fee"]).run()
    with pytest.raises(tickstep.TickstepError, match=r'borrow_rate_column="fees": the data has '
                                                     r"no such column.*fee"):
        tickstep.Backtest(data, ShortBoth, borrow_rate_column="fees", allow_nan=["fee"]).run()
