"""Indicators through the public API, against independent references.

A strategy declares rolling statistics (on base bars and on higher-timeframe candles)
and ``self.I`` series in ``init()``, records what it reads in ``next()`` / ``on_tick()``,
and the run is compared afterwards with references computed here from the raw bars:

- sum / mean / min / max: pandas ``rolling(n)``;
- std: a two-pass std per window (``sliding_window_view(...).std(ddof=1)``), not pandas'
  incremental ``rolling().std()``, which drifts on long price series;
- ema: ``ewm(span=n, adjust=False)``, NaN before the n-th value;
- rsi / atr: Wilder's smoothing written out below, seeded by the simple mean of the
  first n changes / true ranges.

The data are random minute bars for several symbols with missing bars (scattered
minutes, whole hours, a late start), a flat stretch, and a large price with small moves.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import tickstep
from numpy.lib.stride_tricks import sliding_window_view

RTOL = 1e-9
MINUTE = 60 * 10**9
KINDS = ("sum", "mean", "min", "max", "std", "ema", "rsi", "atr")
# The column each kind reads in the main grid (atr reads high/low/close regardless).
SOURCE_OF = {"sum": "volume", "mean": "close", "min": "low", "max": "high",
             "std": "close", "ema": "close", "rsi": "close", "atr": "close"}
NEVER = 100_000  # a window longer than any symbol's data
WINDOWS = (1, 2, 14, 100, NEVER)
EXTRA = (("mean", 7, "open"), ("std", 9, "volume"), ("min", 5, "close"), ("max", 30, "volume"),
         ("ema", 20, "high"), ("rsi", 6, "low"), ("sum", 3, "close"), ("std", 2, "high"))
RESET_SPECS = (("sum", 5), ("mean", 5), ("min", 4), ("max", 4), ("std", 6), ("ema", 5),
               ("rsi", 5), ("atr", 5))
# Bar indices (per symbol) after whose next() the reset indicators are reset.
RESET_AT = {"AAA": (3, 150, 151, 900), "BBB": (0, 400), "CCC": (60,), "DDD": (777,)}
HTF_SPECS = {"15m": (("sum", 3, "volume"), ("mean", 4, "close"), ("min", 3, "low"),
                     ("max", 3, "high"), ("std", 4, "close"), ("ema", 5, "close"),
                     ("rsi", 4, "close"), ("atr", 3, "close"), ("mean", NEVER, "close")),
             "1h": (("mean", 3, "close"), ("std", 2, "close"), ("rsi", 3, "close"),
                    ("atr", 2, "close"), ("max", 2, "high"))}



def i8(index):
    """int64 ns of a DatetimeIndex (pandas 3 defaults to microseconds for many inputs)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


# ---- data -------------------------------------------------------------------------------


def _bars(rng, n, start, price, vol, tick=None):
    """``n`` random minute bars from ``start`` (UTC): a log random walk, OHLC consistent."""
    index = pd.date_range(start, periods=n, freq="1min", tz="UTC")
    close = price * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    if tick is not None:
        close = np.round(close / tick) * tick
    open_ = np.r_[close[0], close[:-1]]
    spread = np.abs(rng.normal(0.0, vol, n)) * price
    if tick is not None:
        spread = np.round(spread / tick) * tick
    high = np.maximum(open_, close) + spread * rng.uniform(0, 1, n)
    low = np.minimum(open_, close) - spread * rng.uniform(0, 1, n)
    volume = np.round(rng.lognormal(5.0, 1.0, n), 2)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close,
                         "volume": volume}, index=index)


def make_data(seed=20240607):
    """Four symbols of minute bars with gaps of every kind."""
    rng = np.random.default_rng(seed)
    n = 3000
    aaa = _bars(rng, n, "2024-03-04 00:00", 100.0, 1e-3)
    aaa.iloc[:25, :4] = 100.0  # flat start: std 0, RSI seeded with no change at all (50)
    aaa.iloc[1200:1240, :4] = aaa["close"].iloc[1199]  # a flat stretch in the middle
    aaa = aaa[rng.uniform(size=n) > 0.1]  # ~10% scattered missing minutes
    bbb = _bars(rng, n, "2024-03-04 00:00", 52_000.0, 2e-5, tick=0.01)  # large price, tiny moves
    hours = bbb.index.floor("1h")
    gone = hours.isin(pd.DatetimeIndex(["2024-03-04 03:00", "2024-03-04 07:00", "2024-03-04 08:00",
                                        "2024-03-04 09:00", "2024-03-04 20:00"], tz="UTC"))
    bbb = bbb[~gone]  # whole hours missing, including a 4h boundary
    bbb = bbb[rng.uniform(size=len(bbb)) > 0.03]
    ccc = _bars(rng, n // 2, "2024-03-04 13:37", 3.0, 5e-3)  # starts late, low price
    ccc = ccc[rng.uniform(size=len(ccc)) > 0.4]  # very sparse
    ddd = _bars(rng, n, "2024-03-04 00:00", 250.0, 2e-3, tick=0.05)  # coarse ticks: many ties
    return {"AAA": aaa, "BBB": bbb, "CCC": ccc, "DDD": ddd}


# ---- references ---------------------------------------------------------------------------


def ref_rolling(kind, frame, n, source="close"):
    """The reference value of ``kind(n)`` at every bar of ``frame`` (NaN until ready)."""
    x = frame[source].to_numpy(dtype=float)
    out = np.full(len(x), np.nan)
    if kind in ("sum", "mean", "min", "max"):
        return getattr(pd.Series(x).rolling(n), kind)().to_numpy()
    if kind == "std":
        if len(x) >= n:
            out[n - 1:] = sliding_window_view(x, n).std(axis=1, ddof=1)
        return out
    if kind == "ema":
        ema = pd.Series(x).ewm(span=n, adjust=False).mean().to_numpy()
        out[n - 1:] = ema[n - 1:]
        return out
    if kind == "rsi":
        return ref_rsi(x, n)
    if kind == "atr":
        return ref_atr(*(frame[c].to_numpy(dtype=float) for c in ("high", "low", "close")), n)
    raise ValueError(kind)


def _rsi_of(gain, loss):
    if loss == 0.0:
        return 50.0 if gain == 0.0 else 100.0
    return 100.0 - 100.0 / (1.0 + gain / loss)


def ref_rsi(x, n):
    """Wilder's RSI: first averages = simple means of the first n gains/losses, then
    avg = (avg * (n - 1) + x) / n. Ready at the (n + 1)-th value."""
    out = np.full(len(x), np.nan)
    if len(x) <= n:
        return out
    change = np.diff(x)
    gains, losses = np.maximum(change, 0.0), np.maximum(-change, 0.0)
    gain, loss = math.fsum(gains[:n]) / n, math.fsum(losses[:n]) / n
    out[n] = _rsi_of(gain, loss)
    for t in range(n, len(change)):
        gain = (gain * (n - 1) + gains[t]) / n
        loss = (loss * (n - 1) + losses[t]) / n
        out[t + 1] = _rsi_of(gain, loss)
    return out


def ref_atr(high, low, close, n):
    """Wilder's ATR: TR = max(h - l, |h - c_prev|, |l - c_prev|) (h - l on the first
    bar); the first ATR is the mean of the first n TRs, then (atr * (n - 1) + TR) / n."""
    out = np.full(len(high), np.nan)
    if len(high) < n:
        return out
    tr = high - low
    tr[1:] = np.maximum.reduce([tr[1:], np.abs(high[1:] - close[:-1]), np.abs(low[1:] - close[:-1])])
    atr = math.fsum(tr[:n]) / n
    out[n - 1] = atr
    for t in range(n, len(tr)):
        atr = (atr * (n - 1) + tr[t]) / n
        out[t] = atr
    return out


def ready_from(kind, n):
    """Index of the first bar (or candle) at which ``kind(n)`` is ready."""
    return n if kind == "rsi" else n - 1


def resample(frame, period):
    """pandas candles of ``frame``: left-labelled, left-closed, empty buckets dropped."""
    period = pd.Timedelta(minutes=int(period[:-1])) if period.endswith("m") else pd.Timedelta(period)
    agg = frame.resample(period, label="left", closed="left").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    return agg[frame["open"].resample(period, label="left", closed="left").count() > 0]


def completed_counts(ts, period_ns, base_ns=MINUTE):
    """Per bar, how many candles of a clock timeframe have completed once the bar is
    processed: every earlier non-empty bucket, plus the bar's own when the bar reaches
    its end (ts + base >= bucket end)."""
    label = ts // period_ns * period_ns
    rank = np.cumsum(np.r_[True, label[1:] != label[:-1]]) - 1  # index of the bar's bucket
    return rank + (ts + base_ns >= label + period_ns)


def assert_series(got, want, what, *, rtol=RTOL, atol=0.0):
    """``got == want`` within rtol (NaN where and only where the reference is NaN)."""
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    assert got.shape == want.shape, f"{what}: {got.shape} values, expected {want.shape}"
    both_nan = np.isnan(got) & np.isnan(want)
    ok = both_nan | np.isclose(got, want, rtol=rtol, atol=atol, equal_nan=False)
    if not ok.all():
        bad = np.flatnonzero(~ok)
        i = bad[0]
        raise AssertionError(
            f"{what}: {len(bad)} of {len(got)} values differ; first at index {i}: "
            f"got {got[i]!r}, expected {want[i]!r}")


def same_or_both_nan(a, b):
    return (a == b) | (np.isnan(a) & np.isnan(b))


# ---- the recording strategy -----------------------------------------------------------------


class Recorder(tickstep.Strategy):
    """Declares every indicator of the module's grids and records, per symbol and bar,
    (value, prev, is_ready) of each; resets the reset grid at ``RESET_AT``."""

    def init(self):
        self.base = {}
        for kind in KINDS:
            for n in WINDOWS:
                if kind == "std" and n == 1:
                    continue
                self.base[(kind, n, SOURCE_OF[kind])] = self.indicator(kind, n, SOURCE_OF[kind])
        for kind, n, source in EXTRA:
            self.base[(kind, n, source)] = self.indicator(kind, n, source)
        # The shorthand declarations are the same statistics.
        self.short = {("mean", 14, "close"): self.sma(14), ("ema", 14, "close"): self.ema(14),
                      ("rsi", 14, "close"): self.rsi(14), ("atr", 14, "close"): self.atr(14),
                      ("std", 14, "close"): self.rolling_std(14),
                      ("max", 14, "high"): self.highest(14), ("min", 14, "low"): self.lowest(14)}
        self.resettable = {(k, n): self.indicator(k, n, SOURCE_OF[k]) for k, n in RESET_SPECS}
        self.tfs = {p: self.timeframe(p) for p in HTF_SPECS}
        self.htf = {(p, spec): self.indicator(spec[0], spec[1], spec[2], timeframe=self.tfs[p])
                    for p, specs in HTF_SPECS.items() for spec in specs}
        self.groups = {"base": self.base, "short": self.short, "reset": self.resettable,
                       "htf": self.htf}
        self.rec = {s: {g: [] for g in self.groups} for s in self.symbols}
        self.after_reset = {s: [] for s in self.symbols}
        self.bar_no = dict.fromkeys(self.symbols, -1)
        self.ticks = []  # (now, {symbol: (mean14, rsi14, atr14 via get(symbol))})
        self.watch = [self.base[("mean", 14, "close")], self.base[("rsi", 14, "close")],
                      self.base[("atr", 14, "close")], self.htf[("15m", ("mean", 4, "close"))]]

    def next(self, symbol):
        self.bar_no[symbol] += 1
        rec = self.rec[symbol]
        for name, group in self.groups.items():
            rec[name].append([(ind.value, ind.prev, ind.is_ready()) for ind in group.values()])
        if self.bar_no[symbol] in RESET_AT.get(symbol, ()):
            for ind in self.resettable.values():
                ind.reset()
            self.after_reset[symbol].append(
                [(ind.value, ind.prev, ind.is_ready()) for ind in self.resettable.values()])

    def on_tick(self):
        self.ticks.append((self.now, {s: [(w.get(s), w.previous(s), w.is_ready(s)) for w in self.watch]
                                      for s in self.symbols}))


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def run(data):
    return tickstep.Backtest(data, Recorder, cash=1e6).run().strategy


def recorded(run, symbol, group):
    """(values, prevs, ready) arrays of shape (bars, indicators) for one group."""
    arr = np.array(run.rec[symbol][group], dtype=object)
    return (arr[:, :, 0].astype(float), arr[:, :, 1].astype(float), arr[:, :, 2].astype(bool))


def std_atol(frame):
    # The two-pass reference itself rounds a window of equal prices to a residue of about
    # 1e-16 x price instead of 0; anything real is many orders of magnitude above this.
    return 1e-14 * float(frame["close"].abs().max())


# ---- base-bar rolling caches ------------------------------------------------------------------


SYMBOLS = ("AAA", "BBB", "CCC", "DDD")


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("group", ["base", "short"])
def test_rolling_values_match_reference(run, data, symbol, group):
    frame = data[symbol]
    values, prevs, ready = recorded(run, symbol, group)
    assert values.shape[0] == len(frame), "next() must run once per bar of the symbol"
    for j, (kind, n, source) in enumerate(getattr(run, group)):
        want = ref_rolling(kind, frame, n, source)
        atol = std_atol(frame) if kind == "std" else 0.0
        what = f"{symbol} {kind}({n}, {source})"
        assert_series(values[:, j], want, what, atol=atol)
        # prev is the value one bar earlier (NaN at the first bar).
        assert_series(prevs[:, j], np.r_[np.nan, values[:-1, j]], what + " .prev")
        # is_ready flips exactly at the window and stays.
        first = ready_from(kind, n)
        expect_ready = np.arange(len(frame)) >= first
        assert (ready[:, j] == expect_ready).all(), (
            f"{what}: is_ready first True at bar {np.argmax(ready[:, j]) if ready[:, j].any() else None}, "
            f"expected {first if first < len(frame) else None}")
        assert (np.isnan(values[:, j]) == ~expect_ready).all(), f"{what}: NaN exactly until ready"


def fsum_windows(x, n):
    """``math.fsum`` of every complete window of ``n`` values of ``x`` (the exact sum,
    rounded once), NaN before the first."""
    out = np.full(len(x), np.nan)
    if len(x) >= n:
        out[n - 1:] = [math.fsum(w) for w in sliding_window_view(x, n)]
    return out


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_sums_and_means_are_the_exact_window_sum_rounded_once(run, data, symbol):
    """Beyond pandas' tolerance: a rolling sum is bit for bit ``math.fsum`` of its window,
    a mean that over n (so neither depends on the bars before the window)."""
    frame = data[symbol]
    values, _, _ = recorded(run, symbol, "base")
    checked = 0
    for j, (kind, n, source) in enumerate(run.base):
        if kind not in ("sum", "mean") or n > len(frame):
            continue
        want = fsum_windows(frame[source].to_numpy(dtype=float), n)
        if kind == "mean":
            want = want / n
        got = values[:, j]
        same = (got == want) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{symbol} {kind}({n}, {source}) first differs at bar {np.argmin(same)}"
        checked += 1
    assert checked >= 5


class _SumsOfVolume(tickstep.Strategy):
    def init(self):
        self.seen = {s: [] for s in self.symbols}
        self.stats = [self.indicator("sum", 3, "volume"), self.sma(20, source="volume"),
                      self.sma(20)]

    def next(self, symbol):
        self.seen[symbol].append([ind.value for ind in self.stats])


def test_exact_sums_hold_for_values_far_apart():
    """Volumes from 1e-9 to 1e12 in one window (wider than 64-bit counts hold) and a price
    jumping between 1e-200 and 1e200 (wider than any integer count): still fsum, bit for bit."""
    rng = np.random.default_rng(7)
    n = 600
    index = pd.date_range("2024-01-02", periods=n, freq="1min", tz="UTC")
    frames = {}
    volume = 10.0 ** rng.uniform(-9, 12, n)
    volume[200:400] = np.round(rng.uniform(1, 1000, 200))  # then ordinary integers again
    close = 100.0 + np.cumsum(rng.normal(0, 0.1, n))
    close[::50] = 1e200
    close[25::50] = 1e-200
    for name, c in (("FRAC", 100.0 + np.cumsum(rng.normal(0, 0.1, n))), ("JUMP", close)):
        frames[name] = pd.DataFrame({"open": c, "high": c, "low": c, "close": c,
                                     "volume": volume}, index=index)
    seen = tickstep.Backtest(frames, _SumsOfVolume, cash=1e6).run().strategy.seen
    for name, frame in frames.items():
        got = np.array(seen[name])
        wants = (fsum_windows(frame["volume"].to_numpy(), 3),
                 fsum_windows(frame["volume"].to_numpy(), 20) / 20,
                 fsum_windows(frame["close"].to_numpy(), 20) / 20)
        for j, want in enumerate(wants):
            same = (got[:, j] == want) | (np.isnan(got[:, j]) & np.isnan(want))
            assert same.all(), f"{name} statistic {j} first differs at bar {np.argmin(same)}"


def test_window_longer_than_data_is_never_ready(run, data):
    for symbol in SYMBOLS:
        values, prevs, ready = recorded(run, symbol, "base")
        for j, key in enumerate(run.base):
            if key[1] == NEVER:
                assert not ready[:, j].any(), f"{symbol} {key}: ready with {len(data[symbol])} bars"
                assert np.isnan(values[:, j]).all() and np.isnan(prevs[:, j]).all(), f"{symbol} {key}"


def test_std_is_exactly_zero_on_flat_windows(run, data):
    frame = data["AAA"]
    values, _, _ = recorded(run, "AAA", "base")
    j = list(run.base).index(("std", 14, "close"))
    flat = pd.Series(frame["close"].to_numpy()).rolling(14).apply(lambda w: np.ptp(w) == 0, raw=True)
    flat = flat.to_numpy() == 1.0
    assert flat.sum() > 10, "the data should hold flat windows"
    assert (values[flat, j] == 0.0).all()


def test_rsi_seeded_on_no_change_is_50(run, data):
    # AAA's first 25 closes are equal: the RSI(14) seed has neither gains nor losses.
    values, _, _ = recorded(run, "AAA", "base")
    j = list(run.base).index(("rsi", 14, "close"))
    frame = data["AAA"]
    assert (frame["close"].iloc[:15] == 100.0).all()
    assert values[14, j] == 50.0


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_reset_restarts_from_the_next_bar(run, data, symbol):
    frame = data[symbol]
    values, prevs, ready = recorded(run, symbol, "reset")
    resets = [k for k in RESET_AT.get(symbol, ()) if k < len(frame)]
    after = np.array(run.after_reset[symbol], dtype=object)
    assert len(after) == len(resets)
    if resets:
        # Right after reset(): nothing is known any more.
        assert np.isnan(after[:, :, 0].astype(float)).all()
        assert np.isnan(after[:, :, 1].astype(float)).all()
        assert not after[:, :, 2].astype(bool).any()
    # Segments: bars [0, r0], [r0 + 1, r1], ..., [r_last + 1, end): each restarts from zero.
    starts = [0] + [r + 1 for r in resets]
    stops = [r + 1 for r in resets] + [len(frame)]
    for j, (kind, n) in enumerate(run.resettable):
        source = SOURCE_OF[kind]
        what = f"{symbol} {kind}({n}) reset at {resets}"
        want = np.concatenate([ref_rolling(kind, frame.iloc[a:b], n, source) for a, b in zip(starts, stops)])
        want_ready = np.concatenate([np.arange(b - a) >= ready_from(kind, n) for a, b in zip(starts, stops)])
        atol = std_atol(frame) if kind == "std" else 0.0
        assert_series(values[:, j], want, what, atol=atol)
        # prev: the value before the latest update, i.e. NaN at a segment's first bar.
        want_prev = np.r_[np.nan, values[:-1, j]]
        want_prev[[a for a in starts if a < len(frame)]] = np.nan
        assert_series(prevs[:, j], want_prev, what + " .prev")
        assert (ready[:, j] == want_ready).all(), what + " is_ready"


def test_get_for_other_symbols_reads_their_latest_bar(run, data):
    """From on_tick, ``get(symbol)`` of every symbol, active at the tick or not, is its
    value as of its latest bar so far (NaN before its first bar)."""
    now = np.array([t for t, _ in run.ticks])
    keys = [("mean", 14, "close"), ("rsi", 14, "close"), ("atr", 14, "close")]
    for symbol in SYMBOLS:
        frame = data[symbol]
        ts = i8(frame.index)
        last = np.searchsorted(ts, now, side="right") - 1  # latest bar index, -1 before the first
        got = np.array([d[symbol] for _, d in run.ticks], dtype=object)
        for j, key in enumerate(keys):
            ref = ref_rolling(key[0], frame, key[1], key[2])
            want = np.where(last >= 0, ref[np.maximum(last, 0)], np.nan)
            want_prev = np.where(last >= 1, ref[np.maximum(last - 1, 0)], np.nan)
            assert_series(got[:, j, 0].astype(float), want, f"{symbol} {key} get() in on_tick")
            assert_series(got[:, j, 1].astype(float), want_prev, f"{symbol} {key} previous() in on_tick")
            assert (got[:, j, 2].astype(bool) == (last >= ready_from(key[0], key[1]))).all()


def test_invalid_windows_are_refused(data):
    for kind, n in (("std", 1), ("mean", 0), ("ema", 0)):
        class Bad(tickstep.Strategy):
            def init(self, kind=kind, n=n):
                self.indicator(kind, n)

        with pytest.raises(tickstep.ConfigError):
            tickstep.Backtest({"AAA": data["AAA"].iloc[:50]}, Bad).run()


# ---- rolling caches on a higher timeframe ------------------------------------------------------


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("period", list(HTF_SPECS))
def test_timeframe_indicators_match_reference_on_completed_candles(run, data, symbol, period):
    frame = data[symbol]
    candles = resample(frame, period)
    done = completed_counts(i8(frame.index), int(pd.Timedelta(period).value))  # "15m": minutes
    assert done[-1] in (len(candles) - 1, len(candles)) and (np.diff(done) >= 0).all()  # self-check
    values, prevs, ready = recorded(run, symbol, "htf")
    keys = list(run.htf)
    for spec in HTF_SPECS[period]:
        j = keys.index((period, spec))
        kind, n, source = spec
        what = f"{symbol} {kind}({n}, {source})@{period}"
        ref = ref_rolling(kind, candles, n, source)

        def ref_at(k, ref=ref):
            return np.where(k >= 1, ref[np.clip(k - 1, 0, len(ref) - 1)], np.nan)

        atol = std_atol(frame) if kind == "std" else 0.0
        # At each bar: the statistic of the candles completed so far...
        assert_series(values[:, j], ref_at(done), what, atol=atol)
        # ... prev is its value one candle earlier, ready once n candles completed...
        assert_series(prevs[:, j], ref_at(done - 1), what + " .prev", atol=atol)
        assert (ready[:, j] == (done > ready_from(kind, n))).all(), what + " is_ready"
        # ... and it only changes on a bar that completes a candle.
        changed = ~same_or_both_nan(values[1:, j], values[:-1, j])
        completed = done[1:] > done[:-1]
        assert not (changed & ~completed).any(), what + " changed without a completed candle"


# ---- self.I: vectorised indicators revealed bar by bar ------------------------------------------


def _ewm_range(df, span):
    return (df["high"] - df["low"]).ewm(span=span).mean()


class Revealer(tickstep.Strategy):
    def init(self):
        self.seen = {}

        def position(series):
            self.seen.setdefault("position", []).append(series)
            return np.arange(len(series), dtype=float)

        self.series = {
            "position": self.I(position),
            "sma5": self.I(lambda s: s.rolling(5).mean(), name="sma5"),
            "range": self.I(_ewm_range, 3, source=None),
            "scaled": self.I(lambda s, k, scale=1.0: s.pct_change(k) * scale, 2, scale=100.0,
                             source="volume", name="scaled"),
        }
        self.rec = {s: [] for s in self.symbols}
        self.ticks = []

    def next(self, symbol):
        self.rec[symbol].append([(i.value, i.prev, i.is_ready()) for i in self.series.values()])

    def on_tick(self):
        pos = self.series["position"]
        self.ticks.append((self.now, {s: (pos.get(s), pos.previous(s), pos.is_ready(s))
                                      for s in self.symbols}))


def full_series(frame):
    return {
        "position": np.arange(len(frame), dtype=float),
        "sma5": frame["close"].rolling(5).mean().to_numpy(),
        "range": _ewm_range(frame, 3).to_numpy(),
        "scaled": (frame["volume"].pct_change(2) * 100.0).to_numpy(),
    }


@pytest.fixture(scope="module")
def revealed(data):
    return tickstep.Backtest(data, Revealer, cash=1e6).run().strategy


def test_I_gets_each_symbols_full_history(revealed, data):
    seen = revealed.seen["position"]
    assert [len(s) for s in seen] == [len(data[s]) for s in revealed.symbols]
    for series, symbol in zip(seen, revealed.symbols):
        assert (i8(series.index) == i8(data[symbol].index)).all()
        assert (series.to_numpy() == data[symbol]["close"].to_numpy()).all()


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_I_values_are_revealed_bar_by_bar(revealed, data, symbol):
    frame = data[symbol]
    got = np.array(revealed.rec[symbol], dtype=object)
    assert got.shape[0] == len(frame)
    for j, (name, full) in enumerate(full_series(frame).items()):
        what = f"{symbol} I({name})"
        # At bar i: func(full history)[i], prev = [i - 1]: never a value of a later bar.
        assert_series(got[:, j, 0].astype(float), full, what)
        assert_series(got[:, j, 1].astype(float), np.r_[np.nan, full[:-1]], what + " .prev")
        first = np.flatnonzero(~np.isnan(full))[0]
        assert (got[:, j, 2].astype(bool) == (np.arange(len(frame)) >= first)).all(), what + " is_ready"


def test_I_is_never_visible_ahead_of_its_bar_from_other_symbols(revealed, data):
    """Read from on_tick for every symbol: the value is that symbol's bar index as of the
    tick (so a value of a bar not yet processed can never be read), NaN before its first
    bar."""
    now = np.array([t for t, _ in revealed.ticks])
    for symbol in SYMBOLS:
        last = np.searchsorted(i8(data[symbol].index), now, side="right") - 1
        got = np.array([d[symbol] for _, d in revealed.ticks], dtype=object)
        want = np.where(last >= 0, last, np.nan).astype(float)
        assert_series(got[:, 0].astype(float), want, f"{symbol} I(position).get()")
        assert_series(got[:, 1].astype(float), np.where(last >= 1, last - 1, np.nan).astype(float),
                      f"{symbol} I(position).previous()")
        assert (got[:, 2].astype(bool) == (last >= 0)).all()


def test_I_refuses_a_wrong_length(data):
    class Short(tickstep.Strategy):
        def init(self):
            self.I(lambda s: s.to_numpy()[:-1])

    with pytest.raises(ValueError, match="shape"):
        tickstep.Backtest({"AAA": data["AAA"].iloc[:50]}, Short).run()


def test_I_reads_a_series_by_its_index(data):
    """A Series returned on the bars' times, on more times or in another order, or naive,
    is read by its times; on the positions 0, 1, 2, ... by position (as an array). One
    shifted off the bars' times (``shift(1, freq=...)``) or indexed by text is refused:
    read by position, each bar would see another bar's value."""
    frame = {"AAA": data["AAA"].iloc[:80]}
    shapes = {
        "the bars' times": lambda s: s.rolling(3).mean(),
        "reversed": lambda s: s.rolling(3).mean()[::-1],
        "naive": lambda s: s.rolling(3).mean().tz_localize(None),
        "more times": lambda s: s.rolling(3).mean().reindex(
            s.index.append(s.index[-1:] + pd.Timedelta("1D"))),
        "positions": lambda s: s.rolling(3).mean().reset_index(drop=True),
    }

    class Reads(tickstep.Strategy):
        func = None

        def init(self):
            self.x = self.I(type(self).func)
            self.seen = []

        def next(self, symbol):
            self.seen.append(self.x.value)

    want = frame["AAA"]["close"].rolling(3).mean().to_numpy()
    for shape, func in shapes.items():
        reads = type("Reads", (Reads,), {"func": staticmethod(func)})
        got = tickstep.Backtest(frame, reads).run().strategy.seen
        assert_series(np.array(got, dtype=float), want, shape)
    for func, words in ((lambda s: s.shift(1, freq="D"), "no value at the bar"),
                        (lambda s: s.set_axis(s.index.astype(str)), "indexed by str")):
        refused = type("Reads", (Reads,), {"func": staticmethod(func)})
        with pytest.raises(tickstep.ConfigError, match=words):
            tickstep.Backtest(frame, refused).run()


def test_I_cannot_be_reset(data):
    class ResetSeries(tickstep.Strategy):
        def init(self):
            self.x = self.I(lambda s: s.to_numpy())

        def next(self, symbol):
            self.x.reset()

    with pytest.raises(tickstep.ConfigError):
        tickstep.Backtest({"AAA": data["AAA"].iloc[:50]}, ResetSeries).run()


def _read_only(a):
    a.flags.writeable = False
    return a


# How self.I may get its values: a read-only contiguous array is read where it is (kept
# alive by the run, not copied); any other kind is copied when declared.
I_ARRAY_KINDS = {
    "read-only, held by nobody else": lambda c: _read_only(c.to_numpy() * 2.0),
    "read-only view of pandas' result": lambda c: np.asarray((c * 2.0).rolling(1).mean()),
    "writeable": lambda c: c.to_numpy() * 2.0,
    "read-only, strided": lambda c: _read_only(np.repeat(c.to_numpy() * 2.0, 2))[::2],
    "float32": lambda c: (c.to_numpy() * 2.0).astype(np.float32),
}


def test_I_reads_every_kind_of_array_alike_and_keeps_it_alive(data):
    class Kinds(tickstep.Strategy):
        def init(self):
            self.series = {kind: self.I(func) for kind, func in I_ARRAY_KINDS.items()}
            import gc

            gc.collect()  # nothing but the run holds the arrays read in place now
            self.rows = {s: [] for s in self.symbols}

        def next(self, symbol):
            self.rows[symbol].append([(i.value, i.prev) for i in self.series.values()])

    strategy = tickstep.Backtest(data, Kinds, cash=1e6).run().strategy
    for symbol in SYMBOLS:
        doubled = data[symbol]["close"].to_numpy() * 2.0
        got = np.array(strategy.rows[symbol], dtype=float)
        for j, kind in enumerate(I_ARRAY_KINDS):
            want = doubled.astype(np.float32).astype(float) if kind == "float32" else doubled
            np.testing.assert_array_equal(got[:, j, 0], want, err_msg=f"{symbol} {kind}")
            np.testing.assert_array_equal(got[:, j, 1], np.r_[np.nan, want[:-1]], err_msg=f"{symbol} {kind}")


def test_I_copies_a_writeable_array_so_later_writes_do_not_reach_the_run(data):
    class Scribbler(tickstep.Strategy):
        def init(self):
            self.kept = []

            def doubled(c):
                out = c.to_numpy() * 2.0
                self.kept.append(out)
                return out

            self.x = self.I(doubled)
            self.rows = []

        def next(self, symbol):
            for a in self.kept:
                a[:] = -1.0  # the strategy's own array, changed after it was declared
            self.rows.append((symbol, len(self.data()), self.x.value))

    strategy = tickstep.Backtest(data, Scribbler, cash=1e6).run().strategy
    for symbol, n, value in strategy.rows:
        assert value == data[symbol]["close"].iloc[n - 1] * 2.0


def test_I_functions_may_write_to_their_series_without_reaching_the_data_or_each_other(data):
    """Each call gets a Series of its own over the core's memory: a function that writes
    to it (values or index name) changes only its own copy, never the bars, a later
    call's Series or another run's."""

    def clobber(close):
        close.iloc[:] = -1.0
        close.index.name = "clobbered"
        close.name = "clobbered"
        return close

    class Writer(tickstep.Strategy):
        def init(self):
            self.seen = []

            def keep(close):
                self.seen.append((close.to_numpy().copy(), close.index.name, close.name))
                return close

            self.first = self.I(keep)
            self.clobbered = self.I(clobber)
            self.second = self.I(keep)
            self.rows = []

        def next(self, symbol):
            self.rows.append((symbol, len(self.data()), self.first.value, self.clobbered.value, self.second.value,
                              self.price()))

    bt = tickstep.Backtest(data, Writer, cash=1e6)
    for _ in range(2):  # a second run on the same market reuses its bar times
        strategy = bt.run().strategy
        for values, index_name, name in strategy.seen:
            assert (index_name, name) == ("time", "close")
            assert (values > 0).all()
        for symbol, n, first, clobbered, second, price in strategy.rows:
            close = data[symbol]["close"].iloc[n - 1]
            assert (first, clobbered, second, price) == (close, -1.0, close, close)


def test_I_makes_each_symbols_bar_times_once_per_market(data, monkeypatch):
    import tickstep.strategy as strategy_module

    made = []
    real = strategy_module._utc_index
    monkeypatch.setattr(strategy_module, "_utc_index", lambda ts: made.append(len(ts)) or real(ts))

    class Twice(tickstep.Strategy):
        def init(self):
            self.a = self.I(lambda c: c.rolling(3).mean())
            self.b = self.I(lambda c: c.rolling(5).mean())

    bt = tickstep.Backtest(data, Twice, cash=1e6)
    bt.run()
    assert sorted(made) == sorted(len(data[s]) for s in SYMBOLS)
    bt.run()  # the same market: its bar times are made already
    assert len(made) == len(SYMBOLS)
    tickstep.Backtest(data, Twice, cash=1e6).run()  # a new market makes its own
    assert len(made) == 2 * len(SYMBOLS)


# ---- looking further back: lookback= --------------------------------------------------------


LOOKBACK = 7
LOOKBACK_BASE = (("mean", 14, "close"), ("ema", 5, "close"), ("max", 30, "high"), ("atr", 3, "close"),
                 ("std", 2, "close"), ("sum", 1, "volume"))


class LookingBack(tickstep.Strategy):
    """The Recorder's base-bar, reset and timeframe statistics again, declared with a
    lookback, recording at each bar ``[-1]`` ... ``[-lookback]`` and ``[-lookback:]`` of
    each (the reset ones reset after the same bars as the Recorder's)."""

    def init(self):
        self.base = {spec: self.indicator(*spec, lookback=LOOKBACK) for spec in LOOKBACK_BASE}
        self.resettable = {(k, n): self.indicator(k, n, SOURCE_OF[k], lookback=5) for k, n in RESET_SPECS}
        self.tfs = {p: self.timeframe(p) for p in HTF_SPECS}
        self.htf = {(p, spec): self.indicator(*spec, timeframe=self.tfs[p], lookback=4)
                    for p, specs in HTF_SPECS.items() for spec in specs}
        self.groups = {"base": (self.base, LOOKBACK), "reset": (self.resettable, 5), "htf": (self.htf, 4)}
        self.rec = {s: {g: [] for g in self.groups} for s in self.symbols}
        self.bar_no = dict.fromkeys(self.symbols, -1)
        self.watched = (self.base[("mean", 14, "close")], self.htf[("15m", ("mean", 4, "close"))],
                        self.I(lambda close: close.rolling(6).mean(), name="mean6"))
        self.ticks = []

    def next(self, symbol):
        self.bar_no[symbol] += 1
        for name, (group, back) in self.groups.items():
            reads = []
            for ind in group.values():
                each = [ind[-k] for k in range(1, back + 1)]
                np.testing.assert_array_equal(ind[-back:], each[::-1])  # the slice: oldest first
                np.testing.assert_array_equal(ind[-2:], each[1::-1])
                assert each[0] is not None and same_or_both_nan(each[0], ind.value)
                reads.append(each)
            self.rec[symbol][name].append(reads)
        if self.bar_no[symbol] in RESET_AT.get(symbol, ()):
            for ind in self.resettable.values():
                ind.reset()

    def on_tick(self):
        # Every symbol's, named, at every tick: a base-bar mean, a timeframe mean and a
        # self.I mean, each read with ago=0 ... 6 (the self.I one further: it keeps all).
        self.ticks.append((self.now, {s: ([self.watched[0].get(s, ago=k) for k in range(LOOKBACK)],
                                          [self.watched[1].get(s, ago=k) for k in range(4)],
                                          [self.watched[2].get(s, ago=k) for k in range(40)])
                                      for s in self.symbols}))


@pytest.fixture(scope="module")
def looked_back(data):
    return tickstep.Backtest(data, LookingBack, cash=1e6).run().strategy


def _back(values, k):
    """Per bar, ``values`` (one per bar) ``k`` bars before it (NaN before the first)."""
    return np.r_[np.full(min(k, len(values)), np.nan), values[: len(values) - k]]


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_lookback_reads_the_values_of_the_bars_before(looked_back, data, symbol):
    """``[-k]`` of a base-bar statistic is the pandas reference k - 1 bars before, on
    symbols with gaps, across the blocks the engine computes ahead."""
    frame = data[symbol]
    reads = np.array(looked_back.rec[symbol]["base"], dtype=float)  # (bars, indicators, k)
    assert reads.shape == (len(frame), len(LOOKBACK_BASE), LOOKBACK)
    for j, (kind, n, source) in enumerate(LOOKBACK_BASE):
        want = ref_rolling(kind, frame, n, source)
        atol = std_atol(frame) if kind == "std" else 0.0
        for k in range(LOOKBACK):
            assert_series(reads[:, j, k], _back(want, k), f"{symbol} {kind}({n}, {source})[-{k + 1}]",
                          atol=atol)


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_a_lookback_reads_nan_before_a_reset(looked_back, run, symbol):
    """After a reset at bar r, the bars up to r read NaN; otherwise ``[-k]`` is what the
    Recorder's same statistics read k - 1 bars before."""
    values = recorded(run, symbol, "reset")[0]
    reads = np.array(looked_back.rec[symbol]["reset"], dtype=float)
    bars = np.arange(len(values))
    resets = np.array(RESET_AT.get(symbol, ()), dtype=int)
    for k in range(5):
        source = bars - k
        # A reset at r, after bar r's next: bars up to r are forgotten from bar r + 1 on.
        forgotten = np.array([((source <= r) & (r < bars)) for r in resets]).any(axis=0) \
            if len(resets) else np.zeros(len(bars), dtype=bool)
        for j, spec in enumerate(RESET_SPECS):
            want = np.where(forgotten, np.nan, _back(values[:, j], k))
            assert_series(reads[:, j, k], want, f"{symbol} {spec}[-{k + 1}] with resets at {resets}")
    assert len(resets) == 0 or np.isnan(reads[resets[0] + 1, :, 1:]).all()


@pytest.mark.parametrize("symbol", SYMBOLS)
@pytest.mark.parametrize("period", list(HTF_SPECS))
def test_a_lookback_on_a_timeframe_reads_the_candles_before(looked_back, data, symbol, period):
    """On a timeframe ``[-k]`` is the statistic k - 1 completed candles before (NaN
    before the first): an update is a candle, not a bar."""
    frame = data[symbol]
    candles = resample(frame, period)
    done = completed_counts(i8(frame.index), int(pd.Timedelta(period).value))
    assert done[-1] > 8
    reads = np.array(looked_back.rec[symbol]["htf"], dtype=float)
    keys = list(looked_back.htf)
    for spec in HTF_SPECS[period]:
        j = keys.index((period, spec))
        ref = ref_rolling(spec[0], candles, spec[1], spec[2])
        atol = std_atol(frame) if spec[0] == "std" else 0.0
        for k in range(4):
            at = done - k
            want = np.where(at >= 1, ref[np.clip(at - 1, 0, len(ref) - 1)], np.nan)
            assert_series(reads[:, j, k], want, f"{symbol} {spec}@{period}[-{k + 1}]", atol=atol)


def test_a_lookback_is_refused_past_what_it_keeps_and_declared_by_its_rule(data):
    refused = []

    class Reads(tickstep.Strategy):
        def init(self):
            self.kept = self.sma(3, lookback=4)
            self.plain = self.ema(3)

        def next(self, symbol):
            if refused:
                return
            for ind, index in ((self.kept, -5), (self.kept, 0), (self.kept, slice(-5, None)),
                               (self.kept, slice(-3, -1)), (self.kept, slice(None, None, -1)),
                               (self.plain, -3)):
                try:
                    ind[index]
                    refused.append(f"{index!r}: no error")
                except IndexError as error:
                    refused.append(str(error))
            for ago in (4, -1):
                try:
                    self.kept.get(symbol, ago=ago)
                    refused.append(f"ago={ago}: no error")
                except (IndexError, ValueError) as error:
                    refused.append(f"{type(error).__name__}: {error}")

    tickstep.Backtest(data, Reads, cash=1e6).run()
    four = ("this rolling statistic keeps its latest 4 values ([-1] to [-4], or a slice [-m:] of "
            "them; get(ago=0) to get(ago=3)); declare it with lookback=n to read n values back, "
            "or use self.I, whose indicators keep every bar's")
    two = four.replace("4", "2").replace("ago=3", "ago=1")
    name = "Indicator(mean(3, close))"
    assert refused == [f"{name}[-5]: {four}", f"{name}[0]: {four}", f"{name}[slice(-5, None, None)]: {four}",
                       f"{name}[slice(-3, -1, None)]: {four}", f"{name}[slice(None, None, -1)]: {four}",
                       f"Indicator(ema(3, close))[-3]: {two}",
                       f"IndexError: {name}.get(ago=4): {four}",
                       f"ValueError: {name}.get(ago=-1): ago is how many updates back, a whole number >= 0"]

    for bad, rule in ((1, "from 2"), (True, "from 2"), (2.5, "from 2"), (0, "from 2")):
        class Bad(tickstep.Strategy):
            def init(self, bad=bad):
                self.sma(3, lookback=bad)

            def next(self, symbol):
                pass

        with pytest.raises(tickstep.ConfigError, match=rf"sma\(lookback={bad!r}\): .*{rule}"):
            tickstep.Backtest(data, Bad, cash=1e6).run()

    class Misspelt(tickstep.Strategy):
        def init(self):
            self.sma(3, lookbak=4)

        def next(self, symbol):
            pass

    with pytest.raises(tickstep.ConfigError, match="lookbak=...\\): not an option.*did you mean 'lookback'"):
        tickstep.Backtest(data, Misspelt, cash=1e6).run()


@pytest.mark.parametrize("symbol", SYMBOLS)
def test_get_ago_reads_a_named_symbols_values_back_at_every_tick(looked_back, data, symbol):
    """In ``on_tick``, ``ind.get(symbol, ago=k)`` is the symbol's value k updates before
    its latest bar's (whether or not it has a bar at this tick): a base-bar mean k bars
    before, a timeframe mean k candles before, a ``self.I`` mean k bars before."""
    frame = data[symbol]
    times = i8(frame.index)
    mean = ref_rolling("mean", frame, 14, "close")
    series = frame["close"].rolling(6).mean().to_numpy()
    candles = ref_rolling("mean", resample(frame, "15m"), 4, "close")
    done = completed_counts(times, int(pd.Timedelta("15m").value))
    seen = 0
    for now, reads in looked_back.ticks:
        latest = np.searchsorted(times, pd.Timestamp(now).value, side="right") - 1
        base, htf, mine = (np.array(r, dtype=float) for r in reads[symbol])
        if latest < 0:
            assert np.isnan(base).all() and np.isnan(mine).all()
            continue
        seen += 1
        back = latest - np.arange(LOOKBACK)
        want = np.where(back >= 0, mean[np.clip(back, 0, None)], np.nan)
        assert np.allclose(base, want, rtol=RTOL, atol=0, equal_nan=True)
        back = latest - np.arange(40)
        assert same_or_both_nan(mine, np.where(back >= 0, series[np.clip(back, 0, None)], np.nan)).all()  # as given
        at = done[latest] - np.arange(4)
        want = np.where(at >= 1, candles[np.clip(at - 1, 0, len(candles) - 1)], np.nan)
        assert np.allclose(htf, want, rtol=RTOL, atol=0, equal_nan=True)
    assert seen > len(frame) // 2
