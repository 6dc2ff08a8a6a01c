"""Sample data: realistic, seeded, fast; and the small daily dataset shipped in the package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tickstep.data import DataError, MarketColumns, example_daily, sample, sample_daily

MINUTE = 60_000_000_000


def test_same_seed_same_bars_other_seed_other_bars():
    a, b, c = sample(4, 3, seed=5), sample(4, 3, seed=5), sample(4, 3, seed=6)
    for x, y in zip(a.bars, b.bars):
        for name in ("ts", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name))
    pd.testing.assert_frame_equal(a.metadata, b.metadata)
    assert a.symbols == c.symbols
    assert not np.array_equal(a.bars[0].close[:50], c.bars[0].close[:50])


def test_regular_hours_follow_the_exchange_calendar():
    # 2024-11-27..2024-12-02: Thanksgiving holiday (28th) and an early close (29th).
    market = sample(3, 3, start="2024-11-27", missing=0)
    assert isinstance(market, MarketColumns)
    local = pd.to_datetime(market.bars[0].ts, utc=True).tz_convert("America/New_York")
    per_day = pd.Series(1, index=local).groupby(local.date).size()
    assert [str(d) for d in per_day.index] == ["2024-11-27", "2024-11-29", "2024-12-02"]
    assert list(per_day) == [390, 210, 390]
    assert local.min().strftime("%H:%M") == "09:30" and local.max().strftime("%H:%M") == "15:59"
    assert set(market.metadata.columns) >= {"sector", "exchange", "timezone"}
    assert set(market.metadata["timezone"]) == {"America/New_York"}


def test_extended_and_24h_hours():
    ext = sample(2, 1, hours="extended", missing=0, start="2024-03-05")
    local = pd.to_datetime(ext.bars[0].ts, utc=True).tz_convert("America/New_York")
    assert (local[0].strftime("%H:%M"), local[-1].strftime("%H:%M")) == ("04:00", "19:59")
    assert len(local) == 16 * 60
    full = sample(2, 2, hours="24h", missing=0, freq="5min")
    assert len(full.bars[0]) == 2 * 288
    assert np.all(np.diff(full.bars[0].ts) == 5 * MINUTE)


def test_thin_symbols_miss_minutes_and_missing_zero_gives_all():
    market = sample(20, 5, seed=0)
    counts = np.array([len(b) for b in market.bars])
    assert counts.max() == 5 * 390 and counts.min() < 5 * 390 * 0.98
    full = sample(20, 5, seed=0, missing=0)
    assert all(len(b) == 5 * 390 for b in full.bars)
    ext = sample(5, 5, hours="extended")
    assert sum(len(b) for b in ext.bars) < 5 * 5 * 960


def test_u_shaped_volume_and_overnight_gaps():
    market = sample(10, 20, seed=3, missing=0)
    minute = np.arange(20 * 390) % 390
    vol = np.mean([b.volume for b in market.bars], axis=0)
    edges = vol[(minute < 30) | (minute >= 360)].mean()
    midday = vol[(minute >= 150) & (minute < 240)].mean()
    assert edges > 1.5 * midday
    bars = market.bars[0]
    first = minute == 0
    gaps = np.log(bars.open[first][1:] / bars.close[np.roll(first, -1)][:-1])
    moves = np.log(bars.close[~first] / bars.open[~first])
    assert np.std(gaps) > 3 * np.std(moves)


def test_prices_on_cent_grid_and_valid():
    market = sample(5, 2, seed=9)
    for b in market.bars:
        for col in (b.open, b.high, b.low, b.close):
            np.testing.assert_allclose(col * 100, np.round(col * 100), atol=1e-6)
        assert (b.low > 0).all() and (b.high >= np.maximum(b.open, b.close)).all()


def test_bad_arguments():
    with pytest.raises(DataError, match="hours"):
        sample(2, 2, hours="night")
    with pytest.raises(DataError, match="whole number of minutes"):
        sample(2, 2, freq="30s")
    with pytest.raises(DataError, match="unknown exchange"):
        sample(2, 2, exchange="NOPE")
    with pytest.raises(DataError, match="distinct"):
        sample(["A", "A"], 2)
    assert sample(["ZZ", "AA"], 1).symbols == ["AA", "ZZ"]


def test_sample_makes_the_benchmark_shape_20_symbols_144k_bars():
    # Its speed is measured in benches/data_load.py, not here.
    market = sample(20, 100, hours="24h", missing=0)
    assert market.n_bars == 20 * 144_000
    assert all(len(b) == 144_000 for b in market.bars)


def test_sample_daily():
    market = sample_daily(3, days=30, seed=1, start="2024-01-02")
    ts = pd.to_datetime(market.bars[0].ts, utc=True)
    assert (ts == ts.normalize()).all()
    assert ts[0] == pd.Timestamp("2024-01-02", tz="UTC")
    assert pd.Timestamp("2024-01-15", tz="UTC") not in ts  # Martin Luther King Jr. Day
    assert len(market.metadata) == 3


def test_example_daily_ships_with_the_package():
    market = example_daily()
    assert len(market.symbols) == 8
    assert all(len(b) == 1006 for b in market.bars)
    assert pd.Timestamp(market.bars[0].ts[0], tz="UTC") == pd.Timestamp("2020-01-02", tz="UTC")
    assert list(market.metadata.index) == market.symbols
    assert market.metadata["sector"].notna().all()
    # The shipped file is what the generator makes (rounded to cents).
    fresh = sample_daily(8, days=1006, seed=2024, start="2020-01-02")
    for a, b in zip(market.bars, fresh.bars):
        np.testing.assert_allclose(a.close, b.close, atol=1e-9)
