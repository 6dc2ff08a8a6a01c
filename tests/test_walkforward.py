"""Walk-forward: the windows, a hand-checked example, no look-ahead (perturbation), and the
warm-up that feeds indicators before trading starts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars
from tickstep.batch import FailedRunWarning
from tickstep.walkforward import plan_windows

DAY = pd.Timedelta(days=1)


class Direction(tickstep.Strategy):
    """Holds 10 units long (direction=1) or short (direction=-1) from its first call."""

    direction = 1

    def next(self, symbol):
        if self.position_size(symbol) == 0:
            if self.direction > 0:
                self.buy(symbol, size=10)
            else:
                self.sell(symbol, size=10)


def zigzag(days=40):
    """Flat bars (open = high = low = close): 100 + d up to day 19, then down 1 a day."""
    prices = [100.0 + d if d <= 19 else 119.0 - (d - 19) for d in range(days)]
    return make_bars([(p, p, p, p) for p in prices])


def test_windows_tile_the_test_periods_without_overlap():
    ticks = pd.date_range("2024-01-01", periods=500, freq="D", tz="UTC").as_unit("ns").asi8
    for anchored in (False, True):
        windows = plan_windows(ticks, "60D", "30D", anchored=anchored)
        assert len(windows) == 15  # (500 - 60) / 30 -> 14 full tests and a partial one
        for a, b in zip(windows, windows[1:]):
            assert a.test_end == b.test_start  # adjacent, never overlapping
            assert b.train_end == b.test_start
            assert b.train_start == (windows[0].train_start if anchored else a.train_start + 30 * DAY)
        for w in windows:
            assert w.train_end - w.train_start == (60 * DAY if not anchored else w.train_end - windows[0].train_start)
            assert w.test_start < w.test_end and w.test_end - w.test_start == 30 * DAY
        assert windows[0].train_start == pd.Timestamp(ticks[0], tz="UTC")
        assert windows[-1].test_start.value <= ticks[-1] < windows[-1].test_end.value
    # With warm-up, windows start after it, so the first train window has data before it.
    warm = plan_windows(ticks, "60D", "30D", warmup="10D")
    assert warm[0].train_start == pd.Timestamp(ticks[0], tz="UTC") + 10 * DAY


def test_window_lengths_are_checked():
    ticks = pd.date_range("2024-01-01", periods=50, freq="D", tz="UTC").as_unit("ns").asi8
    with pytest.raises(ValueError, match="train='soon' is not a duration"):
        plan_windows(ticks, "soon", "10D")
    with pytest.raises(ValueError, match="positive"):
        plan_windows(ticks, "10D", "-1D")
    with pytest.raises(TypeError, match="duration"):
        plan_windows(ticks, 10, "10D")
    months = plan_windows(pd.date_range("2024-01-01", periods=400, freq="D", tz="UTC").as_unit("ns").asi8,
                          pd.DateOffset(months=6), pd.DateOffset(months=3))
    assert [w.test_start.month for w in months[:3]] == [7, 10, 1]


def test_hand_checked_example():
    # Windows of 10 days: train [d0, d10) test [d10, d20); [d10, d20) / [d20, d30);
    # [d20, d30) / [d30, d40). Orders placed at a window's first bar fill at the next open.
    #   1: train rises (long +80, short -80) -> long; test: buy d11 at 111, d19 close 119: +80
    #   2: train rises -> long; test: buy d21 at 117, d29 close 109: -80
    #   3: train falls -> short; test: sell d31 at 107, d39 close 99: +80
    bt = tickstep.Backtest({"ZZ": zigzag()}, Direction, cash=10_000)
    wf = bt.walk_forward(train="10D", test="10D", maximize="Return [%]", direction=[1, -1],
                         cache=False, executor="sequential")
    assert list(wf.windows["direction"]) == [1, 1, -1]
    assert list(wf.windows["in_sample"]) == pytest.approx([0.8, 0.8, 0.8])
    assert list(wf.windows["out_of_sample"]) == pytest.approx([0.8, -0.8, 0.8])
    assert [r.equity.iloc[-1] for r in wf.results] == pytest.approx([10_080, 9_920, 10_080])
    # Stitched: 10,000 * 1.008 * 0.992 * 1.008
    assert wf.equity.iloc[-1] == pytest.approx(10_000 * 1.008 * 0.992 * 1.008)
    assert wf.stats["Return [%]"] == pytest.approx((1.008 * 0.992 * 1.008 - 1) * 100)
    assert wf.stats["# Trades"] == 0  # positions are still open at each window's end
    # Buy and hold over the out-of-sample span: from d10's close (110) to d39's (99).
    assert wf.stats["Buy & Hold Return [%]"] == pytest.approx((99 / 110 - 1) * 100)
    assert wf.equity.index[0] >= wf.windows["test_start"].iloc[0]
    t0 = pd.Timestamp("2024-01-01", tz="UTC")
    assert list(wf.windows["test_start"]) == [t0 + 10 * DAY, t0 + 20 * DAY, t0 + 30 * DAY]
    # The stitched curve is continuous at a window boundary: window 2 starts at 10,080.
    w2 = wf.equity[wf.equity.index >= t0 + 20 * DAY]
    assert w2.iloc[0] == pytest.approx(10_080.0)  # flat on its first day (order fills next day)
    # The basket's value at each stitched sample: 10,000 in ZZ from d10's close, held.
    closes = zigzag()["close"]
    basket = wf.buy_and_hold()
    assert basket.index.equals(wf.equity.index)
    np.testing.assert_allclose(basket, 10_000 * closes.asof(wf.equity.index) / 110, rtol=1e-12)
    assert basket.iloc[-1] == pytest.approx(10_000 * 99 / 110, rel=1e-12)
    fig = wf.plot()
    assert [t.name for t in fig.data] == ["equity", "peak", "buy & hold", "drawdown [%]"]
    np.testing.assert_allclose(fig.data[0].y, wf.equity.to_numpy())
    assert len(fig.layout.shapes) == len(wf.windows)


def test_stitched_stats_carry_the_test_windows_costs_and_the_benchmark():
    # Short 10 units in every window (direction -1 only): a borrow fee accrues each day.
    bt = tickstep.Backtest({"ZZ": zigzag()}, Direction, cash=10_000, borrow_rate=0.5,
                           benchmark="ZZ")
    wf = bt.walk_forward(train="10D", test="10D", direction=[-1], cache=False,
                         executor="sequential")
    costs = [r.stats["Carrying Costs [$]"] for r in wf.results]
    assert all(c > 0 for c in costs)
    assert wf.stats["Carrying Costs [$]"] == pytest.approx(sum(costs), rel=1e-15)
    # Against ZZ itself: a short of 10 units at 99-119 on about 10,000 of equity moves
    # about -0.1 times as much (without a benchmark, both are NaN).
    assert np.isfinite(wf.stats["Alpha [%]"]) and -0.125 < wf.stats["Beta"] < -0.08
    # The cash held in ZZ from the first test window's start (d10's close, 110), drawn.
    held = wf.benchmark_equity()
    closes = zigzag()["close"]
    np.testing.assert_allclose(held, 10_000 * closes.asof(wf.equity.index) / 110, rtol=1e-12)
    assert held.name == "ZZ"
    assert "benchmark (ZZ)" in [t.name for t in wf.plot().data]


class NoFlat(Direction):
    """Direction that refuses direction=0 (every run of it raises)."""

    def next(self, symbol):
        if self.direction == 0:
            raise ValueError("direction 0 is not a direction")
        super().next(symbol)


def test_failed_train_runs_are_warned_of_once_and_the_others_trade():
    bt = tickstep.Backtest({"ZZ": zigzag()}, NoFlat, cash=10_000)
    with pytest.warns(FailedRunWarning) as record:
        wf = bt.walk_forward(train="10D", test="10D", maximize="Return [%]", direction=[1, 0],
                             cache=False, executor="sequential")
    assert list(wf.windows["direction"]) == [1, 1, 1]
    (warning,) = record  # one for the walk-forward, not one per window
    lines = str(warning.message).splitlines()
    assert lines[0] == "3 of 6 runs failed; the first:"
    assert [line.split(": ValueError: direction 0 is not a direction")[0] for line in lines[1:4]] == [
        f"  window {k} train (direction=0)" for k in (1, 2, 3)]
    assert warning.filename == __file__


class Idle(tickstep.Strategy):
    """Never trades: its Sharpe Ratio is NaN in every window."""

    n = 1

    def next(self, symbol):
        pass


def test_an_objective_nan_in_every_train_run_is_warned_of_once():
    bt = tickstep.Backtest({"ZZ": zigzag()}, Idle, cash=10_000)
    with pytest.warns(tickstep.TickstepWarning) as record:
        wf = bt.walk_forward(train="10D", test="10D", n=[1, 2], cache=False,
                             executor="sequential")
    assert list(wf.windows["n"]) == [1, 1, 1]  # the first set, in job order
    (warning,) = record  # one for the walk-forward, not one per window
    assert str(warning.message).startswith(
        "'Sharpe Ratio' is NaN in every train run of window(s) 1, 2, 3: none was best")
    assert warning.filename == __file__


class BuyOnce(tickstep.Strategy):
    """Buys ``size`` units at its first call (filled at the next open, or rejected)."""

    size = 5

    def init(self):
        self.placed = False

    def next(self, symbol):
        if not self.placed:
            self.buy(symbol, size=self.size)
            self.placed = True


def test_rejections_are_counted_per_window_and_warned_of_once():
    # Cash 1,000 at prices 100-119: 5 units fit, 20 never do (one rejected order a run).
    # Windows 1 and 2 train on rising prices: 5 units gain, 20 (rejected) gain nothing, so
    # 5 trades the test; window 3 trains on falling prices: 5 lose, 20 is chosen, and its
    # test window's order is rejected too.
    bt = tickstep.Backtest({"ZZ": zigzag()}, BuyOnce, cash=1_000)
    with pytest.warns(tickstep.RejectedOrderWarning) as record:
        wf = bt.walk_forward(train="10D", test="10D", maximize="Return [%]", size=[5, 20],
                             cache=False, executor="sequential")
    assert list(wf.windows["size"]) == [5, 5, 20]
    assert list(wf.windows["# Orders Rejected"]) == [0, 0, 1]
    assert wf.stats["# Orders Rejected"] == 1 == sum(r.stats["# Orders Rejected"] for r in wf.results)
    (warning,) = record  # one for the walk-forward, not one per run
    assert str(warning.message).splitlines()[:5] == [
        "4 of 9 runs had orders the broker rejected (4 order(s) in all); the first:",
        "  window 1 train (size=20): 1 order(s)",
        "  window 2 train (size=20): 1 order(s)",
        "  window 3 train (size=20): 1 order(s)",
        "  window 3 test (size=20): 1 order(s)",
    ]
    assert warning.filename == __file__


class SmaSide(tickstep.Strategy):
    """Long when close > SMA(n), short when below; records the first call's readiness."""

    n = 5

    def init(self):
        self.avg = self.sma(self.n)
        self.first_call_ready = None

    def next(self, symbol):
        if self.first_call_ready is None:
            self.first_call_ready = (self.time, self.avg.is_ready())
        if not self.avg.is_ready():
            return
        held = self.position_size(symbol)
        if self.price(symbol) > self.avg.value and held <= 0:
            self.buy(symbol, size=10 - held)
        elif self.price(symbol) < self.avg.value and held >= 0:
            self.sell(symbol, size=10 + held)


def noisy(days=120, seed=0):
    rng = np.random.default_rng(seed)
    close = 100 * np.cumprod(1 + rng.normal(0, 0.02, days))
    open_ = np.concatenate(([100.0], close[:-1]))
    high, low = np.maximum(open_, close) * 1.01, np.minimum(open_, close) * 0.99
    return make_bars(list(zip(open_, high, low, close)))


def test_changing_bars_after_a_window_leaves_it_unchanged():
    data = {"AAA": noisy(seed=1), "BBB": noisy(seed=2)}
    kw = dict(train="30D", test="20D", warmup="10D", maximize="Return [%]", n=[3, 5, 8],
              cache=False, executor="sequential")
    base = tickstep.Backtest(data, SmaSide, cash=10_000).walk_forward(**kw)
    assert len(base.windows) >= 3
    cut = base.windows["test_end"].iloc[1]  # everything from window 2's end on changes
    changed = {}
    for s, frame in data.items():
        f = frame.copy()
        later = f.index >= cut
        f.loc[later, ["open", "high", "low", "close"]] *= np.linspace(0.5, 1.5, later.sum())[:, None]
        changed[s] = f
    other = tickstep.Backtest(changed, SmaSide, cash=10_000).walk_forward(**kw)
    for k in (0, 1):
        pd.testing.assert_series_equal(base.results[k].stats, other.results[k].stats)
        pd.testing.assert_frame_equal(base.results[k].trades, other.results[k].trades)
        pd.testing.assert_frame_equal(base.results[k].equity_frame, other.results[k].equity_frame)
    pd.testing.assert_frame_equal(base.windows.iloc[:2], other.windows.iloc[:2])
    # ... while the perturbation does reach the later windows.
    assert not base.results[2].equity_frame.equals(other.results[2].equity_frame)


def test_warmup_feeds_indicators_without_trading():
    data = {"AAA": noisy(seed=3)}
    cold = tickstep.Backtest(data, SmaSide, cash=10_000).walk_forward(
        train="30D", test="20D", maximize="Return [%]", n=[8], cache=False, executor="sequential")
    warm = tickstep.Backtest(data, SmaSide, cash=10_000).walk_forward(
        train="30D", test="20D", warmup="10D", maximize="Return [%]", n=[8], cache=False,
        executor="sequential")
    for wf, ready in ((cold, False), (warm, True)):
        for (_, w), r in zip(wf.windows.iterrows(), wf.results):
            when, is_ready = r.strategy.first_call_ready
            assert when == w["test_start"]  # first called at the window's start ...
            assert is_ready is ready  # ... with indicators warm only after a warm-up
            assert (r.fills["time"] >= w["test_start"]).all()  # no trade before it
            assert r.stats["Start"] == w["test_start"]
            assert r.equity.index[0] >= w["test_start"]


def test_backtest_warmup_starts_trading_at_start():
    data = {"AAA": noisy(seed=4)}
    start = pd.Timestamp("2024-02-01", tz="UTC")
    r = tickstep.Backtest(data, SmaSide, cash=10_000, start="2024-02-01", warmup="10D").run(n=8)
    assert r.strategy.first_call_ready == (start, True)
    assert r.stats["Start"] == start and r.equity.index[0] >= start
    assert (r.fills["time"] > start).all()
    cold = tickstep.Backtest(data, SmaSide, cash=10_000, start="2024-02-01").run(n=8)
    assert cold.strategy.first_call_ready == (start, False)


def test_orders_from_init_cannot_fill_during_warmup():
    class EarlyBird(tickstep.Strategy):
        def init(self):
            self.buy("AAA", size=1)

    with pytest.raises(ValueError, match="warm-up"):
        tickstep.Backtest({"AAA": noisy(seed=5)}, EarlyBird, start="2024-02-01", warmup="10D").run()


def test_walk_forward_refusals():
    bt = tickstep.Backtest({"ZZ": zigzag()}, Direction, cash=10_000)
    with pytest.raises(TypeError, match="at least one parameter"):
        bt.walk_forward(train="10D", test="10D")
    with pytest.raises(ValueError, match="no walk-forward window fits"):
        bt.walk_forward(train="100D", test="10D", direction=[1, -1], cache=False)


class SideSignals(tickstep.SignalStrategy):
    """Long while the close is above its mean over `n` bars, out below (per symbol)."""

    n = 5
    size = 0.4

    def signals(self, symbol, bars):
        above = (bars["close"] > bars["close"].rolling(self.n).mean()).to_numpy()
        before = np.concatenate([[False], above[:-1]])
        return {"entries": above & ~before, "exits": before & ~above}


class StrongestSignals(tickstep.SignalStrategy):
    """Long the symbol with the best return over `n` bars (across symbols)."""

    n = 5
    size = 0.8

    def market_signals(self, bars):
        closes = pd.DataFrame({s: b["close"] for s, b in bars.items()})
        best = (closes / closes.shift(self.n)).rank(axis=1, ascending=False, method="first") == 1
        before = best.shift(1, fill_value=False)
        return {"entries": best & ~before, "exits": before & ~best}


@pytest.mark.parametrize("strategy", [SideSignals, StrongestSignals])
def test_a_signal_strategy_walks_forward_in_signals_mode(strategy):
    data = {"AAA": noisy(seed=6), "BBB": noisy(seed=7), "CCC": noisy(seed=8)}
    wf = tickstep.Backtest(data, strategy, cash=10_000, on_reject="ignore").walk_forward(
        train="30D", test="20D", warmup="10D", maximize="Return [%]", n=[3, 5, 8], cache=False)
    assert len(wf.results) >= 3 and sum(len(r.fills) for r in wf.results) > 0
    # Each test window equals a run of its own, warmed up on the 10 days before it.
    for (_, w), result in zip(wf.windows.iterrows(), wf.results):
        start = w["test_start"]
        window = {s: df[(df.index >= start - 10 * DAY) & (df.index < w["test_end"])] for s, df in data.items()}
        alone = tickstep.Backtest(window, strategy, cash=10_000, start=start, warmup="10D",
                                  on_reject="ignore").run(n=int(w["n"]))
        pd.testing.assert_frame_equal(result.fills, alone.fills)
        assert result.stats["Return [%]"] == alone.stats["Return [%]"]
        assert (result.fills["time"] >= start).all()


@pytest.mark.parametrize("seed", range(4))
def test_a_random_search_draws_the_same_sets_in_every_window(seed):
    # One set of the two drawn: every window trades it, and the walk-forward is the one
    # with that set alone.
    from tickstep.batch import expand_grid, sample_sets

    drawn = sample_sets(expand_grid({"direction": [1, -1]}), 1, seed)[0]["direction"]
    bt = tickstep.Backtest({"ZZ": zigzag()}, Direction, cash=10_000)
    options = {"train": "10D", "test": "10D", "maximize": "Return [%]", "cache": False,
               "executor": "sequential"}
    wf = bt.walk_forward(direction=[1, -1], max_tries=1, random_state=seed, **options)
    alone = bt.walk_forward(direction=[drawn], **options)
    assert list(wf.windows["direction"]) == [drawn] * 3
    pd.testing.assert_series_equal(wf.equity, alone.equity)
