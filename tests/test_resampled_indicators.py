"""A function of a higher timeframe's candles as an indicator: ``self.I(func, timeframe=)``
and backtesting.py's ``tickstep.lib.resample_apply``.

Held against the engine's own candles, read live at every bar (``Timeframe.last()``: the
rule of when a candle completes lives there), against pandas on the bars of each candle,
and against the same run on data cut short (nothing a bar reads depends on a later bar).
backtesting.py's ``resample_apply`` itself is compared in ``test_backtesting_py_idioms.py``.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep.lib import resample_apply

#: The extra column has gaps, said so.
OPTIONS = {"cash": 1e6, "allow_nan": ["signal"]}


def SMA(values, n):  # noqa: N802 (backtesting.py's spelling)
    return pd.Series(values).rolling(n).mean()


def gappy(seed: int, symbols: int = 3, n: int = 600, freq: str = "15min") -> dict[str, pd.DataFrame]:
    """Bars every ``freq`` with about one in six missing, each symbol its own, and an
    extra column ``signal`` with NaNs in it."""
    rng = np.random.default_rng(seed)
    out = {}
    for k in range(symbols):
        index = pd.date_range("2024-03-01 09:00", periods=n, freq=freq, tz="UTC")
        keep = rng.random(n) > 1 / 6
        close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        frame = pd.DataFrame({"open": close * (1 + rng.normal(0, 0.002, n)), "close": close,
                              "volume": rng.integers(1, 100, n).astype(float)}, index=index)
        frame["high"] = frame[["open", "close"]].max(axis=1) * 1.003
        frame["low"] = frame[["open", "close"]].min(axis=1) * 0.997
        frame["signal"] = np.where(rng.random(n) < 0.2, np.nan, rng.normal(0, 1, n))
        out[f"S{k}"] = frame[keep]
    return out


class Live(tickstep.Strategy):
    """Reads, at every bar of every symbol, the indicators on candles beside the engine's
    live candles of the same timeframe."""

    period = "1h"
    seen: ClassVar[list] = []

    def init(self):  # type: ignore[no-untyped-def]
        self.tf = self.timeframe(self.period)
        self.close = self.I(lambda c: c, timeframe=self.tf)
        self.close_by_period = self.I(lambda c: c, timeframe=self.period)
        self.range = self.I(lambda bars: bars["high"] - bars["low"], source=None, timeframe=self.tf)
        self.mean = self.I(SMA, 3, timeframe=self.tf)
        self.engine_mean = self.sma(3, timeframe=self.tf)
        self.signal = self.I(lambda s: s, source="signal", timeframe=self.tf)
        rule = self.period.replace("1d", "D")  # pandas' spelling of a day
        self.mean_signal = resample_apply(rule, None, self.data.signal, agg="mean")
        self.upper, self.lower = self.I(lambda c: (c + 1, c - 1), self.data.Close, timeframe=self.tf)
        self.seen.clear()

    def next(self, symbol):  # type: ignore[no-untyped-def]
        last = self.tf.last()
        self.seen.append({
            "symbol": symbol, "now": self.now, "candle": None if last is None else (last.ts, last.end),
            "close": self.close.value, "close_by_period": self.close_by_period.value,
            "range": self.range.value, "mean": self.mean.value, "engine_mean": self.engine_mean.value,
            "signal": self.signal.value, "mean_signal": self.mean_signal.value,
            "upper": self.upper.value, "lower": self.lower.value,
            "live": None if last is None else (last.close, last.high - last.low),
        })


def run_live(data, period: str) -> list[dict]:  # type: ignore[no-untyped-def]
    strategy = type("LiveRun", (Live,), {"period": period, "seen": []})
    tickstep.Backtest(data, strategy, **OPTIONS).run()
    return strategy.seen


@pytest.mark.parametrize("period", ["1h", "4h", "1d"])
@pytest.mark.parametrize("seed", range(3))
def test_a_bar_reads_the_latest_candle_completed_by_it(seed, period):
    data = gappy(seed)
    seen = run_live(data, period)
    assert len(seen) == sum(len(f) for f in data.values())
    shown = 0
    completed_at: dict = {}  # (symbol, candle) -> the time of the bar it completed at
    for row in seen:
        if row["candle"] is None:  # no candle complete yet: nothing to show
            for key in ("close", "close_by_period", "range", "mean", "signal", "mean_signal", "upper"):
                assert np.isnan(row[key])
            continue
        shown += 1
        close, spread = row["live"]
        assert row["close"] == close
        assert row["close_by_period"] == close
        assert row["range"] == spread
        assert (row["upper"], row["lower"]) == (close + 1, close - 1)
        # The engine's O(1) mean of the same candles' closes, and pandas' mean of the
        # candle's bars for the extra column (its last value, and agg="mean").
        assert row["mean"] == pytest.approx(row["engine_mean"], rel=1e-12, nan_ok=True)
        # The candle's bars: its bucket's, up to the bar it completed at (a bar of its
        # bucket arriving later starts a candle of its own).
        bars = data[row["symbol"]]
        start, end = (pd.Timestamp(t, tz="UTC") for t in row["candle"])
        until = pd.Timestamp(completed_at.setdefault((row["symbol"], row["candle"]), row["now"]), tz="UTC")
        inside = bars["signal"][(bars.index >= start) & (bars.index < end) & (bars.index <= until)]
        last = inside.dropna()
        assert row["signal"] == pytest.approx(last.iloc[-1] if len(last) else np.nan, nan_ok=True, rel=0)
        assert row["mean_signal"] == pytest.approx(inside.mean(), nan_ok=True, rel=1e-12)
    assert shown > len(seen) // 2


@pytest.mark.parametrize("seed", range(3))
def test_nothing_a_bar_reads_depends_on_a_later_bar(seed):
    data = gappy(seed, symbols=2)
    whole = run_live(data, "1h")
    cut = pd.Timestamp("2024-03-03 17:20", tz="UTC")
    short = run_live({s: f[f.index <= cut] for s, f in data.items()}, "1h")
    keys = ("close", "range", "mean", "signal", "mean_signal", "upper")
    assert len(short) > 100
    for a, b in zip(short, whole):
        assert (a["symbol"], a["now"]) == (b["symbol"], b["now"])
        for key in keys:
            assert a[key] == pytest.approx(b[key], nan_ok=True, rel=0, abs=0)


def test_a_session_timeframe_gives_its_own_candles():
    # Exchange-aligned days in New York: the buckets are the declared timeframe's.
    data = {"S0": gappy(4, symbols=1, n=800)["S0"]}

    class Session(tickstep.Strategy):
        seen: ClassVar[list] = []

        def init(self):  # type: ignore[no-untyped-def]
            self.tf = self.timeframe("1d", align="exchange", timezone="America/New_York")
            self.close = self.I(lambda c: c, timeframe=self.tf)

        def next(self, symbol):  # type: ignore[no-untyped-def]
            last = self.tf.last()
            self.seen.append((self.close.value, np.nan if last is None else last.close))

    tickstep.Backtest(data, Session, **OPTIONS).run()
    values = np.array(Session.seen)
    assert np.isfinite(values[:, 1]).sum() > 400
    np.testing.assert_array_equal(values[:, 0], values[:, 1])


def test_a_function_of_candles_returns_one_value_per_candle():
    class PerBar(tickstep.Strategy):
        def init(self):  # type: ignore[no-untyped-def]
            self.I(lambda c: np.zeros(len(c) + 1), timeframe="1h")

    with pytest.raises(tickstep.ConfigError, match=r"S0: indicator '<lambda>' returned shape \(\d+,\), expected"):
        tickstep.Backtest(gappy(0, symbols=1), PerBar, **OPTIONS).run()


def declaring(declare):  # type: ignore[no-untyped-def]
    return type("Declaring", (tickstep.Strategy,), {"init": lambda self: declare(self)})


@pytest.mark.parametrize(("declare", "error", "message"), [
    (lambda s: resample_apply("2W", SMA, s.data.Close, 3), tickstep.ConfigError,
     r"resample_apply\(rule='2W'\): a fixed length .* or one calendar day, week, month"),
    (lambda s: resample_apply("B", SMA, s.data.Close, 3), tickstep.ConfigError, r"rule='B'"),
    (lambda s: resample_apply("fortnight", SMA, s.data.Close, 3), tickstep.ConfigError,
     r"resample_apply\(rule='fortnight'\): not a pandas offset"),
    (lambda s: resample_apply("1h", SMA, s.sma(3), 3), tickstep.ConfigError,
     r"resample_apply\(series=an indicator\): a column of the data"),
    (lambda s: resample_apply("1h", 3, s.data.Close), tickstep.ConfigError,
     r"resample_apply\(func=3\): a function"),
    (lambda s: s.I(SMA, 3, timeframe="20min"), ValueError,
     r"timeframe '20min' is not a multiple of S0's bar spacing \(0 days 00:15:00\)"),
    (lambda s: s.I(SMA, 3, timeframe="1 fortnight"), ValueError, r"self.I\(timeframe=\)"),
])
def test_what_cannot_be_resampled_is_refused_by_name(declare, error, message):
    with pytest.raises(error, match=message):
        tickstep.Backtest(gappy(0, symbols=1), declaring(declare), **OPTIONS).run()


def test_resample_apply_outside_a_strategy_is_refused():
    with pytest.raises(tickstep.ConfigError, match=r"call it in a strategy's init\(\)"):
        resample_apply("1h", SMA, None, 3)


def test_the_whole_bars_resampled_are_the_candles():
    # resample_apply on self.data.df (and self.data): each candle's OHLCV, by
    # backtesting.py's names, with the extra column's last value.
    data = gappy(5, symbols=1)

    class Frames(tickstep.Strategy):
        seen: ClassVar[list] = []

        def init(self):  # type: ignore[no-untyped-def]
            self.tf = self.timeframe("4h")
            self.frame = resample_apply("4h", lambda df: df["High"] - df["Low"] + df["Volume"], self.data.df)
            self.bars = resample_apply("4h", lambda df: df["Close"] * 0 + df["signal"], self.data)

        def next(self, symbol):  # type: ignore[no-untyped-def]
            last = self.tf.last()
            self.seen.append((self.frame.value, self.bars.value, last, self.now))

    tickstep.Backtest(data, Frames, **OPTIONS).run()
    bars = data["S0"]
    checked = 0
    completed_at: dict = {}  # candle -> the time of the bar it completed at
    for frame_value, bars_value, last, now in Frames.seen:
        if last is None:
            assert np.isnan(frame_value)
            continue
        assert frame_value == last.high - last.low + last.volume
        start, end = pd.Timestamp(last.ts, tz="UTC"), pd.Timestamp(last.end, tz="UTC")
        until = pd.Timestamp(completed_at.setdefault((last.ts, last.end), now), tz="UTC")
        signal = bars["signal"][(bars.index >= start) & (bars.index < end) & (bars.index <= until)].dropna()
        assert bars_value == pytest.approx(signal.iloc[-1] if len(signal) else np.nan, nan_ok=True, rel=0)
        checked += 1
    assert checked > 300
