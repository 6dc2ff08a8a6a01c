"""Shared helpers for the engine tests: tiny hand-made bars and a scripted strategy."""

from __future__ import annotations

import pandas as pd
import pytest
import tickstep


def make_bars(rows, start="2024-01-01", freq="D", volume=1000.0) -> pd.DataFrame:
    """Bars from (open, high, low, close) tuples, one every ``freq`` from ``start`` (UTC)."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = volume
    return frame


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
