"""The strategy's hooks: call order, what is visible inside them (no look-ahead), on_tick."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep


def ragged_market(n_symbols: int, n_ticks: int, seed: int, p_missing: float = 0.4, freq="min"):
    """Random bars on a minute grid, each symbol missing random minutes (>= 1 bar each)."""
    rng = np.random.default_rng(seed)
    grid = pd.date_range("2024-03-01 14:30", periods=n_ticks, freq=freq, tz="UTC").as_unit("ns")
    out = {}
    for k in range(n_symbols):
        keep = rng.random(n_ticks) >= p_missing
        keep[rng.integers(n_ticks)] = True
        n = int(keep.sum())
        close = 50 + np.cumsum(rng.normal(0, 0.5, n)).round(2)
        close = np.maximum(close, 1.0)
        open_ = np.concatenate(([close[0]], close[:-1]))
        out[f"X{k:03d}"] = pd.DataFrame(
            {
                "open": open_,
                "high": np.maximum(open_, close) + 0.1,
                "low": np.minimum(open_, close) - 0.1,
                "close": close,
                "volume": rng.integers(0, 100, n).astype(float),
            },
            index=grid[keep],
        )
    return out


def stamps(frame):
    return frame.index.as_unit("ns").asi8


class Recorder(tickstep.Strategy):
    """Records every call and what it could see."""

    frames = None

    def init(self):
        self.events = []
        self.problems = []

    def next(self, symbol):
        now = self.now
        self.events.append(("next", now, symbol))
        frame = self.frames[symbol]
        ts = stamps(frame)
        seen = int(np.searchsorted(ts, now, side="right"))
        hist = self.data()
        # Inside next(): the current bar is the last visible one, and nothing beyond.
        if len(hist) != seen or hist.ts[-1] != now:
            self.problems.append(f"next({symbol}) at {now}: {len(hist)} bars visible, expected {seen}")
        if hist.close[-1] != frame["close"].iloc[seen - 1]:
            self.problems.append(f"next({symbol}) at {now}: close[-1] is not the current close")
        if not np.array_equal(hist.close, frame["close"].to_numpy()[:seen]):
            self.problems.append(f"next({symbol}) at {now}: history differs from the input")
        last3 = self.data(count=3)
        if not np.array_equal(last3.close, frame["close"].to_numpy()[max(0, seen - 3):seen]):
            self.problems.append(f"next({symbol}) at {now}: data(count=3) is not the last 3 bars")
        if self.bar().time != now or self.price() != frame["close"].iloc[seen - 1]:
            self.problems.append(f"next({symbol}) at {now}: bar()/price() is not the current bar")
        if self.time != pd.Timestamp(now, tz="UTC"):
            self.problems.append("time and now disagree")

    def on_tick(self):
        now = self.now
        self.events.append(("tick", now, tuple(self.active_symbols())))
        for s in self.symbols:
            ts = stamps(self.frames[s])
            has = bool(len(ts)) and ts[min(np.searchsorted(ts, now), len(ts) - 1)] == now
            if self.has_data(s) != has:
                self.problems.append(f"has_data({s}) at {now} is {self.has_data(s)}, input says {has}")
            seen = int(np.searchsorted(ts, now, side="right"))
            if len(self.data(s)) != seen:
                self.problems.append(f"data({s}) at {now} shows {len(self.data(s))} bars of {seen}")


def expected_ticks(frames):
    """(time, active symbols in order) for every tick of the union timeline."""
    union = np.unique(np.concatenate([stamps(f) for f in frames.values()]))
    names = sorted(frames)
    return [(int(t), tuple(s for s in names if t in set(stamps(frames[s])))) for t in union]


@pytest.mark.parametrize("n_symbols, seed", [(1, 0), (3, 1), (5, 2), (70, 3)])
def test_on_tick_once_per_tick_after_the_next_calls(n_symbols, seed):
    frames = ragged_market(n_symbols, 30, seed)
    r = tickstep.Backtest(frames, Recorder).run(frames=frames)
    assert r.strategy.problems == []
    # Rebuild the exact expected sequence: per tick, next() for each symbol with a bar, in
    # symbol order, then exactly one on_tick() that sees those symbols as active.
    want = []
    for t, active in expected_ticks(frames):
        want += [("next", t, s) for s in active]
        want.append(("tick", t, active))
    assert r.strategy.events == want
    if n_symbols == 70:  # more than one 64-bit word of bitmap, and a really ragged input
        assert len({a for _, a in expected_ticks(frames)}) > 1


def test_on_tick_without_next():
    class TickOnly(tickstep.Strategy):
        def init(self):
            self.ticks = []

        def on_tick(self):
            self.ticks.append((self.now, tuple(self.active_symbols())))

    frames = ragged_market(4, 20, 7)
    r = tickstep.Backtest(frames, TickOnly).run()
    assert r.strategy.ticks == expected_ticks(frames)


def test_portfolio_orders_from_on_tick():
    # on_tick buys 1 unit of every active symbol at the first tick: each fills at that
    # symbol's next bar open, whenever that is.
    class Basket(tickstep.Strategy):
        def on_tick(self):
            if not hasattr(self, "done"):
                self.done = True
                for s in self.active_symbols():
                    self.buy(s, size=1)

    frames = ragged_market(6, 25, 11, p_missing=0.5)
    r = tickstep.Backtest(frames, Basket).run()
    first_t, active = expected_ticks(frames)[0]
    expected = {}
    for s in active:
        ts = stamps(frames[s])
        if len(ts) > 1:
            expected[s] = (int(ts[1]), float(frames[s]["open"].iloc[1]))
    got = {f.symbol: (int(f.time.value), f.price) for f in r.fills.itertuples()}
    assert got == expected
    assert len(expected) >= 1


def test_history_views_are_read_only():
    class Writer(tickstep.Strategy):
        def init(self):
            self.errors = 0

        def next(self, symbol):
            try:
                self.data().close[0] = -1.0
            except ValueError:
                self.errors += 1

    frames = ragged_market(2, 5, 0, p_missing=0.0)
    r = tickstep.Backtest(frames, Writer).run()
    assert r.strategy.errors == 10


def test_strategy_sees_its_fill_on_the_next_bar_not_before():
    rows = [(100, 101, 99, 100), (102, 103, 101, 102), (104, 105, 103, 104)]
    index = pd.date_range("2024-01-01", periods=3, freq="D", tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index)
    frame["volume"] = 1.0

    class Watch(tickstep.Strategy):
        def init(self):
            self.seen = []

        def next(self, symbol):
            if len(self.data()) == 1:
                self.buy(size=3)
            p = self.position()
            self.seen.append((p.size, p.average_price if p else None, self.cash, self.equity))

    r = tickstep.Backtest(frame, Watch).run()
    # bar 0: flat; bar 1: filled at its open 102 -> cash 10000 - 306, equity + 3 * (102 - 102);
    # bar 2: equity 9694 + 3 * 104.
    assert r.strategy.seen == [
        (0.0, None, 10000.0, 10000.0),
        (3.0, 102.0, 9694.0, 9694.0 + 306.0),
        (3.0, 102.0, 9694.0, 9694.0 + 312.0),
    ]
