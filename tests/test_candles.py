"""Higher-timeframe candles through the public API, against pandas.

A strategy declares timeframes in ``init()`` and records, after every bar of every
symbol, what it can see: ``last()``, ``count()``, ``candles(count=2, forming=True)`` and
``at(now)``; at a symbol's final bar it also records every candle and a set of ``at()``
lookups. The run is then compared with candles built here from the raw bars:

- values: pandas ``resample(period, label="left", closed="left")`` with
  first/max/min/last/sum, empty buckets dropped (UTC alignment); for
  ``align="exchange"``, a groupby on the exchange's local clock (sessions by local date);
- visibility: after a symbol's bar at ``ts``, a candle ``[label, end)`` of that symbol is
  complete iff one of its bars so far reached the end by the symbol's bar spacing known at
  that bar (the gcd of its gaps up to it), or a bar of the symbol at or after the end has
  arrived; the latest complete candle is ``last()``, and the bucket of the current bar,
  unless complete, is the forming candle and equals the bars so far in it. (Nothing from
  later bars or other symbols: the spacing tests at the end check that directly.)

Data: random minute bars; missing minutes, missing last minutes of buckets, a symbol
missing whole hours and a whole day, a symbol starting late; New York sessions with
pre/post-market bars around both DST changes of 2024.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep

MINUTE = 60 * 10**9
NO_BUCKET = np.iinfo(np.int64).min
NY = "America/New_York"
BIG = 10**7  # "all the candles"
PERIODS = ("5m", "15m", "1h", "4h", "1d")


def ns(period):
    """ "5m" (minutes, as traders write it), "1h", "1d" -> int ns."""
    if period.endswith("m"):
        return int(pd.Timedelta(minutes=int(period[:-1])).value)
    if period.endswith("d"):
        return int(pd.Timedelta(days=int(period[:-1])).value)
    if period.endswith("w"):
        return int(pd.Timedelta(weeks=int(period[:-1])).value)
    return int(pd.Timedelta(period).value)



def i8(index):
    """int64 ns of a DatetimeIndex (pandas 3 defaults to microseconds for many inputs)."""
    return pd.DatetimeIndex(index).as_unit("ns").asi8


# ---- data -------------------------------------------------------------------------------


def bars_at(rng, index, price=100.0, vol=1e-3):
    """Random consistent OHLCV bars at the given UTC instants."""
    n = len(index)
    close = price * np.exp(np.cumsum(rng.normal(0.0, vol, n)))
    open_ = np.r_[price, close[:-1]] * np.exp(rng.normal(0.0, vol / 4, n))
    high = np.maximum(open_, close) * (1 + np.abs(rng.normal(0.0, vol, n)))
    low = np.minimum(open_, close) * (1 - np.abs(rng.normal(0.0, vol, n)))
    volume = np.round(rng.lognormal(4.0, 1.0, n), 3)
    return pd.DataFrame({"open": open_, "high": high, "low": low, "close": close, "volume": volume},
                        index=pd.DatetimeIndex(index, name="time"))


def utc_data(seed=7):
    """Five days of minute bars (2024-03-04 .. 03-08, UTC) for three symbols."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-03-04", "2024-03-09", freq="1min", tz="UTC", inclusive="left")
    aaa = bars_at(rng, index, 100.0)
    drop = rng.uniform(size=len(aaa)) < 0.1  # scattered missing minutes
    drop |= (aaa.index.minute == 59) & (aaa.index.hour % 3 == 0)  # last minute of some hours
    drop |= aaa.index.isin(pd.DatetimeIndex(["2024-03-04 23:59", "2024-03-06 23:55", "2024-03-06 23:56",
                                             "2024-03-06 23:57", "2024-03-06 23:58", "2024-03-06 23:59",
                                             "2024-03-05 03:59"], tz="UTC"))
    aaa = aaa[~drop]
    bbb = bars_at(rng, index, 2500.0, 2e-4)
    hour = bbb.index.floor("1h")
    gone = hour.isin(pd.DatetimeIndex(["2024-03-04 03:00", "2024-03-05 10:00", "2024-03-05 11:00",
                                       "2024-03-08 22:00", "2024-03-08 23:00"], tz="UTC"))
    gone |= (bbb.index >= "2024-03-05 04:00") & (bbb.index < "2024-03-05 08:00")  # a whole 4h bucket
    gone |= (bbb.index >= "2024-03-06 14:00") & (bbb.index < "2024-03-07 00:00")  # 10 hours
    gone |= bbb.index.normalize() == pd.Timestamp("2024-03-07", tz="UTC")  # a whole day
    bbb = bbb[~gone]
    bbb = bbb[rng.uniform(size=len(bbb)) > 0.02]
    ccc = bars_at(rng, index[index >= "2024-03-05 13:37"], 8.0, 3e-3)  # starts late, sparse
    ccc = ccc[rng.uniform(size=len(ccc)) > 0.5]
    return {"AAA": aaa, "BBB": bbb, "CCC": ccc}


def ny_session_data(seed=11):
    """New York minute bars 04:00-20:00 local on weekdays around both 2024 DST changes."""
    rng = np.random.default_rng(seed)
    days = ["2024-03-07", "2024-03-08", "2024-03-11", "2024-03-12",
            "2024-10-31", "2024-11-01", "2024-11-04", "2024-11-05"]
    local = pd.DatetimeIndex(np.concatenate([
        pd.date_range(f"{d} 04:00", f"{d} 20:00", freq="1min", inclusive="left").to_numpy() for d in days]))
    index = local.tz_localize(NY).tz_convert("UTC")
    out = {}
    for sym, price in (("XNY", 50.0), ("YNY", 420.0)):
        frame = bars_at(rng, index, price, 5e-4)
        t = frame.index.tz_convert(NY).tz_localize(None)
        day, tod = t.normalize(), t - t.normalize()
        drop = rng.uniform(size=len(frame)) < 0.05
        if sym == "XNY":
            drop |= (day == "2024-03-08") & (tod == pd.Timedelta("09:30:00"))  # no opening bar
            # no closing bars: the session's last bar is 15:57 / 15:40, post-market follows
            drop |= (day == "2024-03-11") & (tod >= pd.Timedelta("15:58:00")) & (tod < pd.Timedelta("16:00:00"))
            drop |= (day == "2024-11-01") & (tod >= pd.Timedelta("15:41:00")) & (tod < pd.Timedelta("16:00:00"))
        else:
            drop |= day == "2024-03-12"  # a whole day missing
            drop |= (day == "2024-11-04") & (tod >= pd.Timedelta("12:00:00")) & (tod < pd.Timedelta("14:00:00"))
            drop |= (day == "2024-10-31") & (tod >= pd.Timedelta("15:30:00"))  # closes early, no post-market
            drop |= (day == "2024-11-05") & (tod >= pd.Timedelta("15:59:00"))  # data ends at 15:58
        out[sym] = frame[~drop]
    return out


def ny_24h_data(change, seed=13):
    """Round-the-clock minute bars across a New York DST change (spring or fall 2024)."""
    rng = np.random.default_rng(seed)
    if change == "spring":  # 2024-03-10 02:00 EST -> 03:00 EDT
        index = pd.date_range("2024-03-09 21:00", "2024-03-11 09:00", freq="1min", tz="UTC", inclusive="left")
    else:  # 2024-11-03 02:00 EDT -> 01:00 EST: 01:00-02:00 local happens twice
        index = pd.date_range("2024-11-02 21:00", "2024-11-04 09:00", freq="1min", tz="UTC", inclusive="left")
    a = bars_at(rng, index, 30.0)
    b = bars_at(rng, index, 900.0)
    b = b[rng.uniform(size=len(b)) > 0.2]
    return {"A24": a, "B24": b}


# ---- expectations ----------------------------------------------------------------------------


def resample(frame, period, origin="epoch"):
    """pandas candles: left label, left closed, first/max/min/last/sum, empty dropped."""
    r = frame.resample(pd.Timedelta(ns(period)), label="left", closed="left", origin=origin)
    agg = r.agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    return agg[r["open"].count() > 0]


def clock_buckets(frame, period, origin_ns=0):
    p = ns(period)
    label = origin_ns + (i8(frame.index) - origin_ns) // p * p
    return label, label + p


def local_clock(frame):
    t = frame.index.tz_convert(NY).tz_localize(None)
    return t, t.normalize(), t - t.normalize()


def to_utc(naive_local):
    return i8(pd.DatetimeIndex(naive_local).tz_localize(NY).tz_convert("UTC"))


def session_buckets_expected(frame, period, open_="09:30", close="16:00"):
    """Exchange buckets: the regular session of each local date (``1d``), or periods
    counted from the session open, the last one ending at the close."""
    _, day, tod = local_clock(frame)
    o, c = pd.Timedelta(open_ + ":00"), pd.Timedelta(close + ":00")
    inside = (tod >= o) & (tod < c)
    if period == "1d":
        lab_local, end_local = day + o, day + c
    else:
        p = pd.Timedelta(ns(period))
        lab_local = day + o + ((tod - o) // p) * p
        end_local = pd.DatetimeIndex(np.minimum(i8(lab_local + p), i8(day + c)))  # ints: ns
    label = np.where(inside, to_utc(lab_local), NO_BUCKET)
    end = np.where(inside, to_utc(end_local), NO_BUCKET)
    return label, end


def wallclock_buckets_expected(frame, period):
    """Exchange buckets without a session: local calendar days (``1d``), 4h blocks counted
    in absolute time from the local midnight; for 5m/15m/1h New York's whole-hour offset makes local boundaries the
    UTC ones, so the repeated hour of the fall change gives two candles, as in pandas."""
    t, day, _ = local_clock(frame)
    if period in ("5m", "15m", "1h"):
        return clock_buckets(frame, period)
    if period == "1d":
        return to_utc(day), to_utc(day + pd.Timedelta(days=1))
    # Longer intraday periods: absolute durations counted from the local date's midnight
    # instant, the last one cut at the next local midnight (the documented rule).
    p = ns(period)
    start, stop = to_utc(day), to_utc(day + pd.Timedelta(days=1))
    utc_ns = i8(frame.index)
    lab = start + (utc_ns - start) // p * p
    return lab, np.minimum(lab + p, stop)


def candles_from_buckets(frame, label, end):
    """Candles of per-bar buckets (NO_BUCKET = no candle), and each bar's running candle."""
    inside = label != NO_BUCKET
    f = frame[inside].copy()
    f["label"], f["end"] = label[inside], end[inside]
    g = f.groupby("label", sort=False)
    candles = g.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                    close=("close", "last"), volume=("volume", "sum"), end=("end", "first"))
    assert (g["end"].nunique() == 1).all(), "one end per bucket"
    running = pd.DataFrame({"label": f["label"], "end": f["end"], "open": g["open"].transform("first"),
                            "high": g["high"].cummax(), "low": g["low"].cummin(), "close": f["close"],
                            "volume": g["volume"].cumsum()}, index=f.index)
    return candles, running.reindex(frame.index), inside


def spacing_so_far(ts):
    """The symbol's bar spacing known at each bar: gcd of its gaps so far (0 = unknown)."""
    return np.r_[0, np.gcd.accumulate(np.diff(ts))] if len(ts) else np.zeros(0, np.int64)


def bar_ends(ts, zone=None):
    """Where each bar is taken to end, as known at that bar (-1: not yet known): a
    spacing after it, the spacing read on the clock the bars keep: UTC, or the wall clock
    of the backtest's ``zone`` when its gcd of the gaps (those above 0) is the coarser,
    the wall time a spacing on then placed in the zone (the later of a repeated wall time,
    the change itself for a skipped one)."""
    utc = spacing_so_far(ts)
    ends = np.where(utc > 0, ts + utc, -1)
    if zone is None or not len(ts):
        return ends
    wall = i8(pd.to_datetime(ts, utc=True).tz_convert(zone).tz_localize(None))
    gaps = np.diff(wall)
    spacing = np.r_[0, np.gcd.accumulate(np.where(gaps > 0, gaps, 0))]
    on_wall = spacing > utc
    if on_wall.any():
        local = pd.DatetimeIndex((wall + spacing)[on_wall].astype("datetime64[ns]"))
        later = np.maximum(*(i8(local.tz_localize(zone, ambiguous=np.full(len(local), dst),
                                                  nonexistent="shift_forward")) for dst in (True, False)))
        ends[on_wall] = later
    return ends


def expected_view(frame, label, end, zone=None):
    """What a strategy must see after each bar: count of complete candles, and the
    forming candle (or None); bar spacing read on ``zone``'s wall clock too."""
    candles, running, inside = candles_from_buckets(frame, label, end)
    ends = candles["end"].to_numpy()
    assert (np.diff(ends) > 0).all() and (np.diff(candles.index.to_numpy()) > 0).all()
    ts = i8(frame.index)
    bar_end = bar_ends(ts, zone)
    reaches = inside & (bar_end >= 0) & (bar_end >= end)
    # These data never complete a bucket before its last bar (that case has its own test).
    assert not (reaches[:-1] & (label[1:] == label[:-1])).any()
    # Each candle completes at its bar that reaches its end, else at the symbol's first
    # bar at or after its end.
    n = len(ts)
    reach_at = pd.Series(np.where(reaches, np.arange(n), n)).groupby(label).min()
    completed_at = np.minimum(reach_at.reindex(candles.index).to_numpy(),
                              np.searchsorted(ts, ends, side="left"))
    assert (np.diff(completed_at) >= 0).all()
    done = np.searchsorted(completed_at, np.arange(n), side="right")
    own = completed_at[np.searchsorted(candles.index.to_numpy(), np.where(inside, label, 0)).clip(0, len(ends) - 1)] \
        if len(ends) else np.zeros(n, np.int64)
    forming = inside & (own > np.arange(n))
    return candles, running, done, forming


# ---- the recording strategy --------------------------------------------------------------------


class CandleRecorder(tickstep.Strategy):
    """Declares ``specs`` (name -> keyword arguments of ``timeframe``) and records what
    each shows after every bar, plus everything and ``at()`` lookups at ``final[symbol]``."""

    specs = None
    final = None

    def init(self):
        self.tfs = {name: self.timeframe(**kw) for name, kw in self.specs.items()}
        # Bar by bar, the bounded ones only report how many candles they hold.
        self.watched = [(n, tf) for n, tf in self.tfs.items() if self.specs[n].get("history", 500) > 500]
        self.bounded = [(n, tf) for n, tf in self.tfs.items() if self.specs[n].get("history", 500) <= 500]
        self.rec = {(name, s): [] for name in self.tfs for s in self.symbols}
        self.end = {}

    def next(self, symbol):
        now = self.now
        for name, tf in self.watched:
            cols = tf.candles(count=2, forming=True)
            tail = None
            if len(cols["ts"]):
                tail = (cols["open"][-1], cols["high"][-1], cols["low"][-1], cols["close"][-1], cols["volume"][-1])
            at = tf.at(now)
            self.rec[(name, symbol)].append(
                (tf.count(), tf.last(), cols["ts"].tolist(), cols["end"].tolist(), tail,
                 None if at is None else at.ts))
        for name, tf in self.bounded:
            self.rec[(name, symbol)].append(len(tf.candles(count=BIG)["ts"]))
        if now == self.final[symbol]:
            self.end[symbol] = {name: self._finish(tf) for name, tf in self.tfs.items()}

    def _finish(self, tf):
        done = tf.candles(count=BIG, as_frame=True)
        every = tf.candles(count=BIG, forming=True, as_frame=True)
        lookups = {}
        ts, ends = i8(done.index), done["end"].to_numpy()
        for k, (label, end) in enumerate(zip(ts, ends)):
            for q in (label, (label + end) // 2, end - 1):
                lookups[int(q)] = tf.at(int(q))
            if k + 1 < len(ts) and ts[k + 1] > end:  # an empty bucket follows
                lookups[int(end)] = tf.at(int(end))
        if len(ts):
            lookups[int(ts[0]) - 1] = tf.at(int(ts[0]) - 1)
            lookups["ts"] = tf.at(pd.Timestamp(int(ts[-1]), tz="UTC"))
            lookups["far"] = tf.at(int(ts[-1]) + 10**15)
        return {"done": done, "every": every, "lookups": lookups, "count": tf.count(),
                "len": len(tf.candles(count=BIG)["ts"])}


def run_recorder(data, specs, timezone="UTC"):
    final = {s: int(i8(f.index)[-1]) for s, f in data.items()}
    bt = tickstep.Backtest(data, CandleRecorder, cash=1e6, timezone=timezone)
    return bt.run(specs=specs, final=final).strategy


def as_frame(candles):
    return candles[["open", "high", "low", "close", "volume"]]


def assert_candles_equal(got, want, what):
    """Completed candles (DataFrame by label) equal the expected ones: labels and prices
    exactly, volume to 1e-12 relative (summation order)."""
    got_ts = i8(got.index) if isinstance(got.index, pd.DatetimeIndex) else np.asarray(got.index)
    want_ts = i8(want.index) if isinstance(want.index, pd.DatetimeIndex) else np.asarray(want.index)
    if len(got_ts) != len(want_ts) or (got_ts != want_ts).any():
        fmt = lambda a: [str(pd.Timestamp(int(x), tz="UTC")) for x in a]
        missing = sorted(set(want_ts) - set(got_ts))[:4]
        extra = sorted(set(got_ts) - set(want_ts))[:4]
        raise AssertionError(f"{what}: {len(got_ts)} candles, expected {len(want_ts)}; "
                             f"missing {fmt(missing)}, unexpected {fmt(extra)}; "
                             f"duplicated labels: {len(got_ts) - len(set(got_ts))}")
    for c in ("open", "high", "low", "close"):
        g, w = got[c].to_numpy(), want[c].to_numpy()
        if (g != w).any():
            i = int(np.flatnonzero(g != w)[0])
            raise AssertionError(f"{what}: {c} of candle {pd.Timestamp(int(want_ts[i]), tz='UTC')}: "
                                 f"got {g[i]!r}, expected {w[i]!r}")
    np.testing.assert_allclose(got["volume"].to_numpy(), want["volume"].to_numpy(), rtol=1e-12,
                               err_msg=f"{what}: volume")


def _packed(rows, width=3):
    """Tuples of up to ``width`` ints -> an array padded with -1 at the end."""
    out = np.full((len(rows), width), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def _compact(cols):
    """Columns of ints (-1 = absent) -> rows with the present values first, in order."""
    arr = np.stack(cols, axis=1)
    order = np.argsort(arr == -1, axis=1, kind="stable")
    return np.take_along_axis(arr, order, axis=1)


def check_visibility(rec, frame, label, end, what, zone=None):
    """After each bar: count(), last(), candles(count=2, forming=True) and at(now)."""
    candles, running, done, forming = expected_view(frame, label, end, zone)
    labels, ends = candles.index.to_numpy(), candles["end"].to_numpy()
    rows = candles[["open", "high", "low", "close", "volume"]].to_numpy()
    run_lab, run_end = running["label"].to_numpy(), running["end"].to_numpy()
    run_rows = running[["open", "high", "low", "close", "volume"]].to_numpy()
    ts = i8(frame.index)
    n = len(frame)
    assert len(rec) == n, f"{what}: {len(rec)} records for {n} bars"
    k = done.astype(np.int64)
    has1, has2 = k >= 1, k >= 2
    prev1 = np.maximum(k - 1, 0)
    prev2 = np.maximum(k - 2, 0)

    def first_bad(ok, message):
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            raise AssertionError(f"{what}, after the bar at {pd.Timestamp(int(ts[i]), tz='UTC')} "
                                 f"(and {int((~ok).sum()) - 1} more bars): {message(i)}")

    stamp = lambda x: None if x < 0 else str(pd.Timestamp(int(x), tz="UTC"))
    count = np.array([r[0] for r in rec])
    first_bad(count == k, lambda i: f"count() = {count[i]}, expected {k[i]}")
    last_ts = np.array([-1 if r[1] is None else r[1].ts for r in rec], dtype=np.int64)
    want_last = np.where(has1, labels[prev1], -1)
    first_bad(last_ts == want_last, lambda i: f"last() is the candle of {stamp(last_ts[i])}, "
                                              f"expected {stamp(want_last[i])}")
    last_rows = np.array([[np.nan] * 6 if r[1] is None else list(r[1])[1:] for r in rec], dtype=float)
    want_rows = np.where(has1[:, None], np.c_[ends[prev1], rows[prev1]], np.nan)
    same = lambda a, b: np.all((a == b) | (np.isnan(a) & np.isnan(b)), axis=1)
    first_bad(same(last_rows[:, :5], want_rows[:, :5]) & np.isclose(last_rows[:, 5], want_rows[:, 5], rtol=1e-12, equal_nan=True),
              lambda i: f"last() = {last_rows[i]}, expected {want_rows[i]}")
    # candles(count=2, forming=True): the last two completed, then the forming one if any.
    want_ts = _compact([np.where(has2, labels[prev2], -1), want_last, np.where(forming, run_lab, -1)])
    got_ts = _packed([r[2] for r in rec])
    first_bad((got_ts == want_ts).all(axis=1),
              lambda i: f"candles(count=2, forming=True) labels {[stamp(x) for x in got_ts[i]]}, "
                        f"expected {[stamp(x) for x in want_ts[i]]}")
    want_ends = _compact([np.where(has2, ends[prev2], -1), np.where(has1, ends[prev1], -1),
                          np.where(forming, run_end, -1)])
    got_ends = _packed([r[3] for r in rec])
    first_bad((got_ends == want_ends).all(axis=1),
              lambda i: f"candle ends {[stamp(x) for x in got_ends[i]]}, expected {[stamp(x) for x in want_ends[i]]}")
    # The newest row returned: the forming candle so far, else the last completed one.
    tail = np.array([[np.nan] * 5 if r[4] is None else r[4] for r in rec], dtype=float)
    want_tail = np.where(forming[:, None], run_rows, np.where(has1[:, None], rows[prev1], np.nan))
    first_bad(same(tail[:, :4], want_tail[:, :4]) & np.isclose(tail[:, 4], want_tail[:, 4], rtol=1e-12, equal_nan=True),
              lambda i: f"{'forming' if forming[i] else 'last'} candle {tail[i]}, expected {want_tail[i]}")
    # at(now) never shows the forming candle: it is the latest completed one.
    at = np.array([-1 if r[5] is None else r[5] for r in rec], dtype=np.int64)
    first_bad(at == want_last, lambda i: f"at(now) is the candle of {stamp(at[i])}, expected {stamp(want_last[i])}")


# ---- clock-aligned (UTC) candles ---------------------------------------------------------------


UTC_SPECS = {p: {"period": p, "history": 100_000} for p in PERIODS}
UTC_SPECS["1h@:30"] = {"period": "1h", "origin": "2024-01-01 00:30", "history": 100_000}
UTC_SPECS["4h@01:00"] = {"period": "4h", "origin": pd.Timestamp("2024-03-04 01:00", tz="UTC"), "history": 100_000}
UTC_SPECS["15m@h3"] = {"period": "15m", "history": 3}  # memory bound
UTC_SPECS["5m@500"] = {"period": "5m"}  # default history: 500 of the ~1400 candles kept
ORIGIN = {"1h@:30": pd.Timestamp("2024-01-01 00:30", tz="UTC"), "4h@01:00": pd.Timestamp("2024-03-04 01:00", tz="UTC")}


@pytest.fixture(scope="module")
def utc():
    data = utc_data()
    return data, run_recorder(data, UTC_SPECS)


def test_utc_data_has_the_gaps_we_mean(utc):
    data, _ = utc
    bbb = data["BBB"]
    assert not ((bbb.index >= "2024-03-05 04:00") & (bbb.index < "2024-03-05 08:00")).any()
    assert not (bbb.index.normalize() == pd.Timestamp("2024-03-07", tz="UTC")).any()
    assert data["CCC"].index[0] >= pd.Timestamp("2024-03-05 13:37", tz="UTC")


@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC"])
@pytest.mark.parametrize("name", [*PERIODS, "1h@:30", "4h@01:00"])
def test_utc_candles_equal_pandas_resample(utc, symbol, name):
    data, run = utc
    frame = data[symbol]
    period = UTC_SPECS[name]["period"]
    want = resample(frame, period, origin=ORIGIN.get(name, "epoch"))
    end = run.end[symbol][name]
    # Everything, with the forming candle (if the data end inside a bucket) last.
    assert_candles_equal(as_frame(end["every"]), want, f"{symbol} {name} candles(forming=True)")
    assert (end["every"]["end"].to_numpy() == i8(want.index) + ns(period)).all(), f"{symbol} {name}: ends"
    # The completed ones: all but a final bucket the last bar did not reach the end of.
    last_ts = i8(frame.index)[-1]
    complete = i8(want.index) + ns(period) <= last_ts + MINUTE
    assert_candles_equal(as_frame(end["done"]), want[complete], f"{symbol} {name} completed candles")
    assert end["count"] == complete.sum()


@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC"])
@pytest.mark.parametrize("name", [*PERIODS, "1h@:30", "4h@01:00"])
def test_utc_candles_visibility_bar_by_bar(utc, symbol, name):
    data, run = utc
    frame = data[symbol]
    origin = ORIGIN.get(name)
    label, end = clock_buckets(frame, UTC_SPECS[name]["period"], 0 if origin is None else origin.value)
    # The expectation's own candles are pandas' (a check of the test itself).
    candles, _, _ = candles_from_buckets(frame, label, end)
    want = resample(frame, UTC_SPECS[name]["period"], origin=ORIGIN.get(name, "epoch"))
    assert (candles.index.to_numpy() == i8(want.index)).all()
    check_visibility(run.rec[(name, symbol)], frame, label, end, f"{symbol} {name}")


@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC"])
def test_at_finds_the_candle_containing_a_time(utc, symbol):
    _, run = utc
    for name in ("1h", "4h", "1d", "5m@500"):
        period = ns(UTC_SPECS[name]["period"])
        end = run.end[symbol][name]
        done = end["done"]
        labels = i8(done.index)
        for q, got in end["lookups"].items():
            if q == "far":  # long after the data: the latest completed candle (as of then)
                assert got is not None and got.ts == labels[-1], f"{symbol} {name} at(far future)"
                continue
            if q == "ts":  # a Timestamp works as well as int ns
                assert got is not None and got.ts == labels[-1], f"{symbol} {name} at(Timestamp)"
                continue
            k = np.searchsorted(labels, q, side="right") - 1
            if k < 0:
                assert got is None, f"{symbol} {name}: at({pd.Timestamp(q, tz='UTC')}) before the oldest kept candle"
                continue
            assert got is not None and got.ts == labels[k], (
                f"{symbol} {name}: at({pd.Timestamp(q, tz='UTC')}) = {got}, expected the candle of "
                f"{pd.Timestamp(int(labels[k]), tz='UTC')}")
            row = done.iloc[k]
            assert (got.end, got.open, got.high, got.low, got.close, got.volume) == (
                row["end"], row["open"], row["high"], row["low"], row["close"], row["volume"])
            if q < labels[k] + period:
                assert got.ts <= q < got.end  # the bucket contains the time asked for
            assert isinstance(got, tickstep.studies.Candle)


@pytest.mark.parametrize("symbol", ["AAA", "BBB", "CCC"])
def test_history_bounds_memory(utc, symbol):
    data, run = utc
    frame = data[symbol]
    for name, keep in (("15m@h3", 3), ("5m@500", 500)):
        period = UTC_SPECS[name]["period"]
        want = resample(frame, period)
        complete = want[i8(want.index) + ns(period) <= i8(frame.index)[-1] + MINUTE]
        end = run.end[symbol][name]
        assert end["count"] == len(complete), "count() counts every candle ever completed"
        assert end["len"] == min(keep, len(complete)), f"{symbol} {name}: kept {end['len']}, history={keep}"
        assert_candles_equal(as_frame(end["done"]), complete.iloc[-keep:], f"{symbol} {name} kept candles")
        # What fell out of the ring is not found any more.
        if len(complete) > keep:
            first_kept = int(i8(complete.index)[-keep])
            assert end["lookups"][first_kept - 1] is None
    # Bar by bar, a history of 3 never shows more than 3 completed candles.
    kept = np.array(run.rec[("15m@h3", symbol)])
    assert kept.max() == 3 and (np.diff(kept) >= 0).all()


def test_candles_as_frame(utc):
    _, run = utc
    frame = run.end["AAA"]["1h"]["done"]
    assert isinstance(frame.index, pd.DatetimeIndex) and str(frame.index.tz) == "UTC"
    assert list(frame.columns) == ["end", "open", "high", "low", "close", "volume"]


# ---- exchange-aligned candles: New York regular sessions ------------------------------------------


SESSION = ("09:30", "16:00")
NY_SPECS = {p: {"period": p, "align": "exchange", "timezone": NY, "session": SESSION, "history": 100_000}
            for p in ("1d", "1h", "4h", "15m")}


@pytest.fixture(scope="module")
def ny():
    data = ny_session_data()
    return data, run_recorder(data, NY_SPECS)


def regular_hours_daily(frame):
    """The reference: regular-hours bars grouped by New York date."""
    _, day, tod = local_clock(frame)
    inside = (tod >= pd.Timedelta("09:30:00")) & (tod < pd.Timedelta("16:00:00"))
    reg = frame[inside]
    g = reg.groupby(day[inside])
    out = g.agg(open=("open", "first"), high=("high", "max"), low=("low", "min"),
                close=("close", "last"), volume=("volume", "sum"))
    labels = to_utc(out.index + pd.Timedelta("09:30:00"))
    ends = to_utc(out.index + pd.Timedelta("16:00:00"))
    out.index = pd.DatetimeIndex(pd.to_datetime(labels, utc=True))
    out["end"] = ends
    return out


@pytest.mark.parametrize("symbol", ["XNY", "YNY"])
def test_session_daily_candles_equal_regular_hours_by_local_date(ny, symbol):
    data, run = ny
    frame = data[symbol]
    want = regular_hours_daily(frame)
    # DST: the session opens at 14:30 UTC before the March change, 13:30 after it, and
    # again 13:30 before the November change, 14:30 after.
    opens = want.index.tz_convert(NY)
    assert ((opens.hour == 9) & (opens.minute == 30)).all()
    assert {13, 14} <= set(want.index.hour)
    got = run.end[symbol]["1d"]["every"]
    assert_candles_equal(as_frame(got), as_frame(want), f"{symbol} 1d@{NY} session candles")
    assert (got["end"].to_numpy() == want["end"].to_numpy()).all(), f"{symbol}: the candle ends at the close"


@pytest.mark.parametrize("symbol", ["XNY", "YNY"])
@pytest.mark.parametrize("period", ["1h", "4h", "15m"])
def test_session_intraday_candles_count_from_the_open(ny, symbol, period):
    data, run = ny
    frame = data[symbol]
    label, end = session_buckets_expected(frame, period)
    candles, _, _ = candles_from_buckets(frame, label, end)
    got = run.end[symbol][period]["every"]
    assert_candles_equal(as_frame(got), as_frame(candles), f"{symbol} {period}@{NY} session candles")
    assert (got["end"].to_numpy() == candles["end"].to_numpy()).all()
    local = pd.DatetimeIndex(pd.to_datetime(candles.index, utc=True)).tz_convert(NY)
    assert (local.minute == 30).all() or period == "15m"


@pytest.mark.parametrize("symbol", ["XNY", "YNY"])
@pytest.mark.parametrize("period", ["1d", "1h", "4h", "15m"])
def test_session_candles_visibility_bar_by_bar(ny, symbol, period):
    """A session candle is complete once a bar of the symbol at or after the close has
    been processed (post-market included) or its last bar reaches the close."""
    data, run = ny
    frame = data[symbol]
    label, end = session_buckets_expected(frame, period)
    check_visibility(run.rec[(period, symbol)], frame, label, end, f"{symbol} {period}@{NY}")


# ---- exchange-aligned candles round the clock, across DST changes --------------------------------


@pytest.fixture(scope="module", params=["spring", "fall"])
def ny24(request):
    data = ny_24h_data(request.param)
    specs = {p: {"period": p, "align": "exchange", "timezone": NY, "history": 100_000} for p in PERIODS}
    return request.param, data, run_recorder(data, specs)


@pytest.mark.parametrize("period", PERIODS)
def test_exchange_wallclock_candles_across_dst(ny24, period):
    change, data, run = ny24
    for symbol, frame in data.items():
        label, end = wallclock_buckets_expected(frame, period)
        candles, _, _ = candles_from_buckets(frame, label, end)
        if period in ("5m", "15m", "1h"):
            assert (candles.index.to_numpy() == i8(resample(frame, period).index)).all()
        if period == "1d":  # calendar days of 23 / 25 hours, as pandas has them in the zone
            want = frame.tz_convert(NY).resample("1D").agg({"open": "first"}).dropna()
            assert (candles.index.to_numpy() == i8(want.index.tz_convert("UTC"))).all()
        what = f"{symbol} {period}@{NY} round the clock, {change} DST change"
        got = run.end[symbol][period]["every"]
        assert_candles_equal(as_frame(got), as_frame(candles), what)
        assert (got["end"].to_numpy() == candles["end"].to_numpy()).all(), what + ": ends"
        check_visibility(run.rec[(period, symbol)], frame, label, end, what)


# ---- bars on local time in the backtest's timezone, across changes of UTC offset -----------------
# Daily bars stamped at local midnight are 23 or 25 hours apart across a change (71 or 73
# over a weekend): in UTC their spacing would read as an hour. The engine reads it on the
# backtest's wall clock too (`bar_ends`), so a day still ends at the next local midnight.


def local_days(zone, seed):
    """Two symbols' bars: at local midnight on weekdays of 2024 (about one day in twenty
    missing), and at local 00:00/06:00/12:00/18:00 every day of 2024."""
    rng = np.random.default_rng(seed)
    days = pd.date_range("2024-01-01", "2024-12-31", freq="B")
    days = days[rng.uniform(size=len(days)) > 0.05]
    six = pd.date_range("2024-01-01", "2024-12-31 18:00", freq="6h")
    return {"DAILY": bars_at(rng, days.tz_localize(zone).tz_convert("UTC")),
            "SIXHOURLY": bars_at(rng, six.tz_localize(zone).tz_convert("UTC"), 40.0)}


def zone_buckets(frame, period, zone):
    """Exchange buckets without a session in ``zone``: local calendar days, or periods
    counted in absolute time from the local midnight, the last cut at the next one."""
    local = frame.index.tz_convert(zone).tz_localize(None).normalize()
    start = i8(local.tz_localize(zone).tz_convert("UTC"))
    stop = i8((local + pd.Timedelta(days=1)).tz_localize(zone).tz_convert("UTC"))
    if period == "1d":
        return start, stop
    p = ns(period)
    label = start + (i8(frame.index) - start) // p * p
    return label, np.minimum(label + p, stop)


LOCAL_SPECS = {"1d@local": {"period": "1d", "align": "exchange"}, "4h@local": {"period": "4h", "align": "exchange"},
               "1d": {"period": "1d"}, "1w": {"period": "1w"}}


@pytest.fixture(scope="module", params=["America/New_York", "Europe/London", "Australia/Sydney"])
def local_run(request):
    zone = request.param
    data = local_days(zone, seed=len(zone))
    specs = {name: {**spec, "history": 100_000} | ({"timezone": zone} if "align" in spec else {})
             for name, spec in LOCAL_SPECS.items()}
    return zone, data, run_recorder(data, specs, timezone=zone)


@pytest.mark.parametrize("symbol", ["DAILY", "SIXHOURLY"])
@pytest.mark.parametrize("name", list(LOCAL_SPECS))
def test_bars_on_local_time_complete_by_the_wall_clock_across_changes(local_run, symbol, name):
    zone, data, run = local_run
    frame = data[symbol]
    period = LOCAL_SPECS[name]["period"]
    label, end = zone_buckets(frame, period, zone) if "@local" in name else clock_buckets(frame, period)
    what = f"{symbol} {name} in {zone}"
    candles, _, _ = candles_from_buckets(frame, label, end)
    assert_candles_equal(as_frame(run.end[symbol][name]["every"]), as_frame(candles), what)
    # The reference's bars end no sooner than the nearest two are apart (23 or 5 hours,
    # on the wall clock a day or 6 hours), not UTC's gcd of an hour.
    ts = i8(frame.index)
    assert (bar_ends(ts, zone)[1:] - ts[1:] >= np.diff(ts).min()).all()
    check_visibility(run.rec[(name, symbol)], frame, label, end, what, zone)


def test_each_local_midnight_bar_completes_its_own_day(local_run):
    # By hand: after its first bar (the spacing unknown), each daily bar completes its
    # own local day, the same bar, before and after both changes of the year.
    zone, data, run = local_run
    counts = [r[0] for r in run.rec[("1d@local", "DAILY")]]
    assert counts[0] == 0
    assert counts[1:] == list(range(2, len(counts) + 1)), zone


def test_bars_on_utc_keep_their_utc_spacing_in_a_zone_with_changes():
    # Four-hourly bars on the UTC clock are 3 or 5 hours apart on New York's wall clock
    # across a change: UTC's spacing is the coarser, and a UTC day completes at its
    # 20:00 bar all year, as in a UTC backtest.
    rng = np.random.default_rng(5)
    index = pd.date_range("2024-01-01", "2024-12-31 20:00", freq="4h", tz="UTC")
    data = {"UTC4H": bars_at(rng, index)}
    specs = {"1d": {"period": "1d", "history": 100_000}}
    ny, utc = (run_recorder(data, specs, timezone=zone).rec[("1d", "UTC4H")] for zone in (NY, "UTC"))
    assert [r[0] for r in ny] == [r[0] for r in utc]
    counts = np.array([r[0] for r in ny])
    assert (counts[5::6] == np.arange(1, len(counts) // 6 + 1)).all()
    label, end = clock_buckets(data["UTC4H"], "1d")
    check_visibility(ny, data["UTC4H"], label, end, "UTC4H 1d in New York", NY)


# ---- when a candle completes: the symbol's own bars so far, nothing else ----------------------


class CompletionRecorder(tickstep.Strategy):
    """Records, per symbol and bar, (bar time, count(), labels of completed candles) of a
    15-minute timeframe."""

    def init(self):
        self.tf = self.timeframe("15m", history=1000)
        self.rec = {s: [] for s in self.symbols}

    def next(self, symbol):
        done = self.tf.candles(count=1000)
        self.rec[symbol].append((self.now, self.tf.count(), done["ts"].tolist()))
        self.latest = self.tf.candles(count=1000, as_frame=True)


def completions(data):
    return tickstep.Backtest(data, CompletionRecorder, cash=1e6).run().strategy.rec


def minute_bars(minutes, seed=3):
    index = pd.DatetimeIndex([pd.Timestamp("2024-03-04", tz="UTC") + pd.Timedelta(minutes=int(m)) for m in minutes])
    return bars_at(np.random.default_rng(seed), index)


def count_at(rec, minute):
    t0 = pd.Timestamp("2024-03-04", tz="UTC").value
    return {int((r[0] - t0) // MINUTE): r[1] for r in rec}[minute]


def test_a_candle_of_five_minute_bars_completes_at_its_last_bar():
    five = minute_bars(range(0, 60, 5))
    rec = completions({"FIVE": five})["FIVE"]
    # The 00:00 candle completes at the 00:10 bar, 00:15 at 00:25, ...
    assert [count_at(rec, m) for m in (0, 5, 10, 15, 20, 25, 55)] == [0, 0, 1, 1, 1, 2, 4]


def test_completion_does_not_depend_on_later_finer_bars():
    """5-minute bars for an hour, then 1-minute bars: the first hour's candles complete
    exactly as they do without the later data."""
    first_hour = list(range(0, 60, 5))
    switching = minute_bars(first_hour + list(range(60, 120)))
    alone = completions({"X": switching.iloc[:len(first_hour)]})["X"]
    whole = completions({"X": switching})["X"]
    assert whole[:len(alone)] == alone
    assert count_at(whole, 10) == 1  # not 00:15: the 1-minute bars come later
    # From 01:00 on, the 01:00 candle's bar at 01:00 cannot be known to be 1 minute long;
    # from 01:01 the spacing is 1 minute: [01:00, 01:15) completes at 01:14.
    assert count_at(whole, 73) == 4 and count_at(whole, 74) == 5


def test_completion_does_not_depend_on_other_symbols():
    """The same 5-minute symbol alone and beside a 1-minute symbol (and under another
    name, sorting before or after it): identical completions."""
    five = minute_bars(range(0, 120, 5), seed=1)
    one = minute_bars(range(0, 120), seed=2)
    alone = completions({"FIVE": five})["FIVE"]
    assert completions({"FIVE": five, "ONE": one})["FIVE"] == alone
    assert completions({"AFIVE": five, "ONE": one})["AFIVE"] == alone
    assert count_at(alone, 10) == 1


def test_a_bar_for_a_completed_bucket_starts_a_candle_of_its_own():
    """5-minute bars up to 01:10, 1-minute bars after: the 01:00 candle completed at the
    01:10 bar (its last by the spacing then known), so 01:11-01:14 form a candle
    labelled 01:11; nothing already shown changes."""
    minutes = list(range(0, 75, 5)) + list(range(71, 90))
    data = minute_bars(minutes)
    strategy = tickstep.Backtest({"X": data}, CompletionRecorder, cash=1e6).run().strategy
    rec = strategy.rec["X"]
    t0 = pd.Timestamp("2024-03-04", tz="UTC").value
    labels = [(t - t0) // MINUTE for t in rec[-1][2]]
    assert labels == [0, 15, 30, 45, 60, 71, 75]
    assert count_at(rec, 70) == 5 and count_at(rec, 73) == 5 and count_at(rec, 74) == 6
    late = strategy.latest.iloc[5]
    part = data.iloc[minutes.index(71):minutes.index(75)]
    assert late["end"] == t0 + 75 * MINUTE
    assert (late["open"], late["close"]) == (part["open"].iloc[0], part["close"].iloc[-1])
    assert (late["high"], late["low"]) == (part["high"].max(), part["low"].min())
    # The candles shown before the late bars are the same as without them.
    shown = [r for r in rec if r[0] <= t0 + 70 * MINUTE]
    assert shown == completions({"X": data.iloc[:minutes.index(71)]})["X"]


def test_a_period_must_be_a_multiple_of_each_symbols_spacing():
    data = {"FIVE": minute_bars(range(0, 60, 5)), "SEVEN": minute_bars(range(0, 70, 7))}

    class Bad(tickstep.Strategy):
        def init(self):
            self.timeframe("15m")

    with pytest.raises(ValueError, match="SEVEN's bar spacing"):
        tickstep.Backtest(data, Bad, cash=1e6).run()
