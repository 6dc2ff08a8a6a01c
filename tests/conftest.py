"""Shared helpers for the engine tests: tiny hand-made bars and a scripted strategy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep


def make_bars(rows, start="2024-01-01", freq="D", volume=1000.0) -> pd.DataFrame:
    """Bars from (open, high, low, close) tuples, one every ``freq`` from ``start`` (UTC)."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = volume
    return frame


def walk(seed: int, n: int, symbols: int) -> dict[str, np.ndarray]:
    """OHLC random walks on one timeline, one column per symbol, for the comparisons with
    independent libraries (`test_signals_vectorbt.py`, `test_engine_backtesting_py.py`).
    Each bar's range stays under 2% of its close (their stop-losses and take-profits are
    2.5% apart, so never both inside one bar), while opens gap from the close before by
    up to about 1% (some bars open beyond a stop)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (n, symbols)), axis=0))
    before = np.vstack([np.full((1, symbols), 100.0), close[:-1]])
    open_ = before * np.exp(np.clip(rng.normal(0, 0.004, (n, symbols)), -0.009, 0.009))
    open_ = np.clip(open_, close / 1.009, close * 1.009)
    wick = np.clip(np.abs(rng.normal(0, 0.002, (n, symbols))), 0, 0.004)
    high = np.maximum(open_, close) * np.exp(wick)
    low = np.minimum(open_, close) * np.exp(-wick[::-1])
    return {"open": open_, "high": high, "low": low, "close": close}


class Scripted(tickstep.Strategy):
    """Calls ``script[i](self, symbol)`` (or ``script[(symbol, i)]``) at a symbol's i-th bar.

    Order ids can be kept in ``self.ids``; ``self.log`` is free for the script's notes.
    """

    script = None

    def init(self):
        self.ids = {}
        self.log = []

    def next(self, symbol):
        i = len(self.data()) - 1
        script = self.script or {}
        for key in (i, (symbol, i)):
            action = script.get(key)
            if action is not None:
                action(self, symbol)


def following(entries, exits, size):
    """A strategy placing in ``next`` what signals mode's rules place for ``entries`` and
    ``exits`` (frames by time, a column per symbol) with ``size`` units, one position at
    a time: a buy at an entry, a close of what is held at an exit."""

    class Following(tickstep.Strategy):
        def next(self, symbol):
            i = len(self.data) - 1
            if entries[symbol].iloc[i]:
                self.buy(size=size)
            elif exits[symbol].iloc[i] and self.position:
                self.position.close()

    return Following


def market_orders(orders):
    """A script of market orders from ``(bar, symbol, size)`` draws: a buy of ``size`` (> 0)
    or a sale of ``-size`` (< 0) at the symbol's bar, several at one bar in the order
    drawn, none for 0."""
    def order(size):
        def act(s, sym):
            (s.buy if size > 0 else s.sell)(size=abs(size))
        return act

    script = {}
    for bar, symbol, size in orders:
        if size:
            act, previous = order(size), script.get((symbol, bar))
            script[(symbol, bar)] = act if previous is None else (
                lambda s, sym, a=previous, b=act: (a(s, sym), b(s, sym)))
    return script


def run_script(data, script, **settings):
    """Run ``Scripted`` over ``data``; equity is recorded at every bar unless told otherwise."""
    settings.setdefault("record_every_bar", True)
    return tickstep.Backtest(data, Scripted, **settings).run(script=script)


@pytest.fixture(scope="session")
def bars():
    return make_bars


@pytest.fixture(scope="session")
def run():
    return run_script
