"""Tests of the shipped strategies (tickstep.strategies) and their registry.

Expected trades in the crafted cases are worked out by hand in the comments. The range
strategies are also checked against slow pandas re-implementations of their volume
average: the trades must be identical, not merely close.
"""

from __future__ import annotations

import math
import os
import shutil
from importlib.metadata import EntryPoint

import numpy as np
import pandas as pd
import pytest
import tickstep
from tickstep import FixedSize, RiskPerTrade, strategies
from tickstep.strategies import (
    BuyAndHold,
    Fakeout,
    RangeBreakout,
    RankedPortfolio,
    RsiMeanReversion,
    SmaCross,
    TrueBreakout,
)
from tickstep.timeframes import timeframe_ns

MINUTE = 60 * 10**9


def frame(rows, start="2024-01-01", freq="D", volume=1000.0) -> pd.DataFrame:
    """Bars from (open, high, low, close[, volume]) tuples, one every ``freq`` (UTC)."""
    index = pd.date_range(start, periods=len(rows), freq=freq, tz="UTC")
    rows = [tuple(r) + (volume,) if len(r) == 4 else tuple(r) for r in rows]
    return pd.DataFrame(
        rows, columns=["open", "high", "low", "close", "volume"], index=index, dtype=float
    )


# ---- slow volume averages, pandas only ---------------------------------------------------


def _completed_candles(ts: np.ndarray, volume: np.ndarray, period: int, base: int):
    """Clock-aligned candles of ``period`` built from base bars: (volume, time at which each
    became complete) -- its last bar if that bar reaches the bucket's end, else the first
    bar of a later bucket. The forming candle is left out."""
    label = ts - ts % period
    starts = np.flatnonzero(np.r_[True, label[1:] != label[:-1]])
    first = ts[starts]
    last = ts[np.r_[starts[1:], len(ts)] - 1]
    never = np.iinfo(np.int64).max
    done_at = np.where(last + base >= label[starts] + period, last, np.r_[first[1:], never])
    complete = done_at != never
    return np.add.reduceat(volume, starts)[complete], done_at[complete]


def history_volume_average(strategy: RangeBreakout, symbol: str, base: int) -> float:
    """The documented average rebuilt from the raw bars: the ``volume_window`` confirmation
    candles before the latest, among those completed after the latest reference candle
    was (NaN before the first reference candle)."""
    reference = timeframe_ns(strategy.reference)
    confirmation = timeframe_ns(strategy.confirmation)
    n = strategy.volume_window
    bars = strategy.data(symbol, count=3 * reference // base + 2 * (n + 1) * confirmation // base)
    ts, volume = bars.ts, bars.volume
    _, reference_done = _completed_candles(ts, volume, reference, base)
    if len(reference_done) == 0:
        return math.nan
    volumes, done_at = _completed_candles(ts, volume, confirmation, base)
    before = pd.Series(volumes[done_at > reference_done[-1]][:-1])
    return float(before.iloc[-n:].mean()) if len(before) >= n else math.nan


def candles_volume_average(strategy: RangeBreakout, symbol: str) -> float:
    """The same average from the confirmation timeframe's candles, with pandas."""
    n = strategy.volume_window
    setup = strategy.setups[symbol]
    since = strategy.confirmation_candles.count(symbol) - setup.confirmation_start
    if not setup.ready or since < n + 1:
        return math.nan
    candles = strategy.confirmation_candles.candles(symbol, count=n + 1, as_frame=True)
    return float(candles["volume"].iloc[:-1].mean())


def with_average(cls: type[RangeBreakout], how: str, base: int) -> type[RangeBreakout]:
    """``cls`` reading its volume average from a pandas implementation."""
    if how == "engine":
        return cls
    if how == "history":

        def volume_average(self, symbol):
            return history_volume_average(self, symbol, base)
    else:

        def volume_average(self, symbol):
            return candles_volume_average(self, symbol)

    return type(f"{cls.__name__}_{how}", (cls,), {"volume_average": volume_average})


# ---- data ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def five_minute_bars():
    """Round-the-clock 5-minute bars: 4 symbols, 12 days, some bars missing."""
    return tickstep.data.sample(symbols=4, days=12, seed=3, freq="5min", hours="24h")


@pytest.fixture(scope="module")
def minute_bars():
    """1-minute bars with gaps (thin symbols miss minutes), so 5-minute candles often
    complete late, on the first bar of a later bucket."""
    return tickstep.data.sample(symbols=3, days=6, seed=11, freq="1min", hours="24h")


@pytest.fixture(scope="module")
def daily_bars():
    return tickstep.data.example_daily()


RANGE_CASES = [
    # (name, fixture, base interval, strategy params, minimum trades)
    ("5m", "five_minute_bars", 5 * MINUTE, {}, 20),
    (
        "1m",
        "minute_bars",
        MINUTE,
        {"reference": "1h", "confirmation": "5m", "volume_window": 6},
        20,
    ),
]


# ---- registry ------------------------------------------------------------------------------


def test_registry_lists_and_loads_the_builtins():
    names = strategies.available()
    assert {"fakeout", "true_breakout", "rsi_mean_reversion", "sma_cross", "ranked_portfolio",
            "buy_and_hold"} <= set(names)
    assert strategies.load("buy_and_hold") is BuyAndHold
    assert strategies.load("fakeout") is Fakeout
    assert strategies.load("True-Breakout") is TrueBreakout
    assert strategies.load(" RSI_mean_reversion ") is RsiMeanReversion
    assert strategies.load("sma_cross") is SmaCross
    assert strategies.load("ranked_portfolio") is RankedPortfolio


def test_registry_unknown_name_suggests_the_closest():
    with pytest.raises(strategies.UnknownStrategyError, match="did you mean 'sma_cross'"):
        strategies.load("sma_crosss")
    with pytest.raises(LookupError, match="available: buy_and_hold, fakeout, "):
        strategies.load("zzz")


def test_registry_reads_entry_points(monkeypatch):
    group = strategies.ENTRY_POINT_GROUP
    plugins = [
        EntryPoint("my_cross", "tickstep.strategies.classic:SmaCross", group),
        EntryPoint("not_a_strategy", "tickstep.sizing:FixedSize", group),
    ]
    monkeypatch.setattr(strategies, "entry_points", lambda group: plugins)
    monkeypatch.setattr(strategies, "_read", None)  # the installed registry, read before
    names = strategies.available()
    assert isinstance(names["my_cross"], EntryPoint)  # listed, not imported
    assert set(names) == {"my_cross", "not_a_strategy"}  # the entry points are the one list
    assert strategies.load("my-cross") is SmaCross
    with pytest.raises(TypeError, match="not a tickstep.Strategy subclass"):
        strategies.load("not_a_strategy")


def _install_plugin(folder, name: str, target: str) -> None:
    """A distribution's metadata in ``folder``, registering strategy ``name`` as ``target``."""
    info = folder / f"{name}_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{strategies.ENTRY_POINT_GROUP}]\n{name} = {target}\n")


def _touch(folder, step: int) -> None:
    """Give ``folder`` a last change of its own, whatever the file system clock's resolution."""
    stamp = folder.stat().st_mtime_ns + step * 1_000_000_000
    os.utime(folder, ns=(stamp, stamp))


def test_registry_is_read_once_while_nothing_is_installed(monkeypatch):
    reads = []
    real = strategies.entry_points

    def counted(group):
        reads.append(group)
        return real(group=group)

    monkeypatch.setattr(strategies, "entry_points", counted)
    monkeypatch.setattr(strategies, "_read", None)
    first = strategies.available()
    assert strategies.load("sma_cross") is SmaCross
    assert strategies.load("Fakeout") is Fakeout
    assert strategies.available() == first
    assert reads == [strategies.ENTRY_POINT_GROUP]
    first["mine"] = first["fakeout"]  # the caller's copy: the registry is not changed
    assert "mine" not in strategies.available()
    with pytest.raises(strategies.UnknownStrategyError):
        strategies.load("no_such_strategy")
    assert len(reads) == 1


def test_registry_sees_plugins_installed_and_removed_while_running(tmp_path, monkeypatch):
    monkeypatch.setattr(strategies, "_read", None)
    before = strategies.available()
    assert "cross_one" not in before
    _install_plugin(tmp_path, "cross_one", "tickstep.strategies.classic:SmaCross")
    monkeypatch.syspath_prepend(str(tmp_path))  # a new folder on the import path
    assert "cross_one" in strategies.available()
    assert strategies.load("cross-one") is SmaCross
    # Installed into a folder already read: its last change moves.
    _install_plugin(tmp_path, "cross_two", "tickstep.strategies.classic:RsiMeanReversion")
    _touch(tmp_path, 1)
    assert set(strategies.available()) == set(before) | {"cross_one", "cross_two"}
    assert strategies.load("cross_two") is RsiMeanReversion
    # Removed: gone from the list.
    shutil.rmtree(tmp_path / "cross_one_plugin-1.0.dist-info")
    _touch(tmp_path, 2)
    assert "cross_one" not in strategies.available()
    with pytest.raises(strategies.UnknownStrategyError, match="cross_one"):
        strategies.load("cross_one")


def test_installed_entry_points_are_the_pyproject_table():
    """The shipped strategies are listed once, in pyproject.toml; the installed metadata
    carries exactly that table and each name loads a Strategy subclass."""
    import tomllib
    from importlib.metadata import entry_points
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    declared = pyproject["project"]["entry-points"][strategies.ENTRY_POINT_GROUP]
    ours = {
        ep.name: ep.value
        for ep in entry_points(group=strategies.ENTRY_POINT_GROUP)
        if ep.value.startswith("tickstep.")
    }
    assert ours == declared
    for name in declared:
        assert issubclass(strategies.load(name), tickstep.Strategy)


def test_parameters_are_documented_class_attributes():
    assert Fakeout.parameters() == {
        "reference": "4h",
        "confirmation": "5m",
        "align": "utc",
        "volume_window": 12,
        "volume_multiplier": 1.0,
        "risk_per_trade": None,
        "confirm_within": 3,
        "stop_buffer": 0.0,
        "reward_risk": None,
    }
    assert TrueBreakout.parameters()["stop_at"] == "range"
    assert RsiMeanReversion.parameters() == {
        "rsi_period": 14,
        "oversold": 30.0,
        "overbought": 70.0,
        "short": False,
    }
    assert SmaCross.parameters() == {"fast": 10, "slow": 30, "reverse": False}
    assert RankedPortfolio.parameters()["max_positions"] == 5
    for cls in (Fakeout, TrueBreakout, RsiMeanReversion, SmaCross, RankedPortfolio):
        for name in cls.parameters():
            assert name in cls.__doc__ or name in RangeBreakout.__doc__, (cls, name)


# ---- Fakeout / TrueBreakout: crafted ---------------------------------------------------------

# Base bars of 5 minutes from 00:00; reference "1h", confirmation "5m", volume_window 3.
# Hour 0 is the reference candle: range [99, 101], every bar with volume 1000.
HOUR0 = [(100, 101, 99, 100, 1000)] + [(100, 100.5, 99.5, 100, 1000)] * 11


def crafted(hour1):
    return {"X": frame(HOUR0 + hour1, start="2024-01-01", freq="5min")}


RANGE_PARAMS = {"reference": "1h", "confirmation": "5m", "volume_window": 3}


def test_fakeout_crafted_short_after_low_volume_break_above():
    hour1 = [
        (100, 100.5, 99.5, 100, 100),  # 01:00
        (100, 100.5, 99.5, 100, 100),  # 01:05
        # 01:10: low-volume break above, closes back inside; but only 2 candles since
        # the reference candle completed -> no average yet -> ignored. (Had the average
        # not restarted at 01:00 it would hold hour 0's 1000s, and this would trade.)
        (100, 101.5, 99.5, 100.5, 10),
        (100.5, 100.7, 100, 100.5, 100),  # 01:15
        # 01:20: average of 01:05..01:15 = (100 + 10 + 100) / 3 = 70; volume 50 < 70:
        # low-volume break above (high 102), closes inside at 100.5 -> sell next open,
        # stop at the extreme 102, target the range's low 99.
        (100.5, 102, 100.4, 100.5, 50),
        (100.4, 100.6, 100, 100.2, 100),  # 01:25: short fills at the open, 100.4
        (100, 100.2, 98.5, 98.8, 100),  # 01:30: low 98.5 reaches the target 99
        (98.8, 99.5, 98.7, 99, 100),
    ]
    result = tickstep.Backtest(crafted(hour1), Fakeout, sizer=FixedSize(10)).run(**RANGE_PARAMS)
    trades = result.trades
    assert len(trades) == 1
    t = trades.iloc[0]
    assert t.side == "short" and t["size"] == 10
    assert t.entry_time == pd.Timestamp("2024-01-01 01:25", tz="UTC")
    assert t.entry_price == 100.4
    assert t.exit_time == pd.Timestamp("2024-01-01 01:30", tz="UTC")
    assert t.exit_price == 99
    entry = result.orders[result.orders.role == "entry"].iloc[0]
    assert (entry.sl, entry.tp) == (102, 99)


def test_fakeout_ignores_high_volume_breaks_and_truebreakout_takes_them():
    hour1 = [
        (100, 100.5, 99.5, 100, 100),  # 01:00
        (100, 100.5, 99.5, 100, 100),  # 01:05
        (100, 100.5, 99.5, 100, 100),  # 01:10
        # 01:15: average 100, volume 300 >= 100: high volume; closes outside at 101.5.
        # Fakeout: not low volume -> nothing. TrueBreakout: buy next open, stop at the
        # range's other side 99, target 2R.
        (100.5, 101.8, 100.4, 101.5, 300),
        (101.6, 101.9, 101.4, 101.8, 100),  # 01:20: long fills at 101.6; risk 2.6
        (102, 107, 101.9, 106, 100),  # 01:25: target 101.6 + 2 x 2.6 = 106.8 reached
        (106, 106.5, 105, 105.5, 100),
    ]
    data = crafted(hour1)
    fade = tickstep.Backtest(data, Fakeout, sizer=FixedSize(10)).run(**RANGE_PARAMS)
    assert len(fade.trades) == 0 and len(fade.orders) == 0
    follow = tickstep.Backtest(data, TrueBreakout, sizer=FixedSize(10)).run(**RANGE_PARAMS)
    assert len(follow.trades) == 1
    t = follow.trades.iloc[0]
    assert t.side == "long" and t.entry_price == 101.6
    assert t.entry_time == pd.Timestamp("2024-01-01 01:20", tz="UTC")
    assert t.exit_price == 106.5
    # stop at the reference's middle instead: 100, risk 1.5, target 104.5
    mid = tickstep.Backtest(data, TrueBreakout, sizer=FixedSize(10)).run(
        stop_at="mid", **RANGE_PARAMS
    )
    order = mid.orders[mid.orders.role == "entry"].iloc[0]
    assert order.sl == 100
    assert order.tp == 104.5
    assert mid.trades.iloc[0].exit_price == 104.5


def test_truebreakout_waits_for_confirming_closes():
    hour1 = [
        (100, 100.5, 99.5, 100, 100),
        (100, 100.5, 99.5, 100, 100),
        (100, 100.5, 99.5, 100, 100),
        (100.5, 101.8, 100.4, 101.5, 300),  # 01:15 breakout, 1st close outside
        (101.6, 101.9, 101.4, 101.8, 100),  # 01:20 2nd close outside -> buy next open
        (101.9, 102, 101.7, 101.9, 100),  # 01:25 fills at 101.9
        (101.9, 102, 101.7, 101.9, 100),
    ]
    result = tickstep.Backtest(crafted(hour1), TrueBreakout, sizer=FixedSize(1)).run(
        confirm_closes=2, **RANGE_PARAMS
    )
    assert result.positions.loc["X", "average_price"] == 101.9


def test_one_trade_per_reference_candle(five_minute_bars):
    result = tickstep.Backtest(
        five_minute_bars, Fakeout, cash=1e6, sizer=RiskPerTrade(0.002, max_fraction=0.2)
    ).run()
    entries = result.orders[result.orders.role == "entry"].copy()
    assert len(entries) > 20
    entries["reference"] = entries["placed_time"].dt.floor("4h")
    # placed after the reference candle completed: one per (symbol, 4h period after it)
    assert not entries.duplicated(["symbol", "reference"]).any()


# ---- Fakeout / TrueBreakout: the engine's average against pandas -----------------------------


@pytest.mark.parametrize("cls", [Fakeout, TrueBreakout])
@pytest.mark.parametrize("case", RANGE_CASES, ids=[c[0] for c in RANGE_CASES])
def test_range_strategies_trade_identically_with_a_pandas_average(request, cls, case):
    _, fixture, base, params, minimum = case
    data = request.getfixturevalue(fixture)
    sizer = RiskPerTrade(0.002, max_fraction=0.2)
    results = {
        how: tickstep.Backtest(data, with_average(cls, how, base), cash=1e6, sizer=sizer).run(
            **params
        )
        for how in ("engine", "candles", "history")
    }
    engine = results["engine"]
    assert len(engine.trades) >= minimum
    assert engine.trades["symbol"].nunique() == len(data.symbols)
    for how in ("candles", "history"):
        pd.testing.assert_frame_equal(results[how].trades, engine.trades)
        pd.testing.assert_frame_equal(results[how].orders, engine.orders)


@pytest.mark.parametrize("case", RANGE_CASES, ids=[c[0] for c in RANGE_CASES])
def test_volume_average_matches_pandas_at_every_confirmation_candle(request, case):
    _, fixture, base, params, _ = case
    data = request.getfixturevalue(fixture)

    class Recording(Fakeout):
        def init(self):
            super().init()
            self.seen = {}
            self.records = []

        def next(self, symbol):
            super().next(symbol)
            count = self.setups[symbol].confirmation_count
            if self.seen.get(symbol) != count:
                self.seen[symbol] = count
                self.records.append(
                    (
                        self.volume_average(symbol),
                        candles_volume_average(self, symbol),
                        history_volume_average(self, symbol, base),
                    )
                )

    bars = tickstep.data.MarketColumns(data.bars[:2], data.metadata)
    rec = tickstep.Backtest(bars, Recording, end=bars.bars[0].ts[0] + 2 * 86_400 * 10**9)
    values = np.array(rec.run(**params).strategy.records)
    ready = ~np.isnan(values[:, 0])
    assert ready.sum() > 100 and (~ready).sum() > 10  # restarts at every reference candle
    np.testing.assert_array_equal(values[:, 1], values[:, 0])
    np.testing.assert_array_equal(values[:, 2], values[:, 0])


def test_range_strategies_size_by_risk_per_trade(five_minute_bars):
    result = tickstep.Backtest(five_minute_bars, Fakeout, cash=100_000, record_every_bar=True).run(
        risk_per_trade=0.001
    )
    orders = result.orders[result.orders.role == "entry"]
    assert len(orders) > 5
    closes = {
        b.symbol: pd.Series(b.close, index=pd.to_datetime(b.ts, utc=True))
        for b in five_minute_bars.bars
    }
    for _, order in orders.iterrows():
        # 0.1% of the equity at that moment, over the distance from the latest close
        equity = result.equity.loc[order.placed_time]
        price = closes[order.symbol].loc[order.placed_time]
        assert order["size"] == pytest.approx(0.001 * equity / abs(price - order.sl), rel=1e-12)


def test_range_strategies_refuse_bad_parameters(five_minute_bars):
    bt = tickstep.Backtest(five_minute_bars, TrueBreakout)
    with pytest.raises(ValueError, match="stop_at"):
        bt.run(stop_at="middle")
    with pytest.raises(ValueError, match="shorter than the reference"):
        bt.run(reference="5m", confirmation="1h")
    with pytest.raises(TypeError, match="did you mean 'volume_window'"):
        bt.run(volume_windows=3)


# ---- RsiMeanReversion ------------------------------------------------------------------------


def test_rsi_buys_at_the_next_open_after_crossing_below_oversold():
    # rsi_period = 3 (Wilder): the first RSI is the mean gain / mean loss of 3 changes.
    closes = [10, 11, 12, 13, 12, 10, 9, 9.5, 11, 13, 13, 13]
    # bar 3: changes +1 +1 +1 -> gain 1, loss 0 -> RSI 100
    # bar 4: -1 -> gain 2/3, loss 1/3 -> RS 2 -> RSI 66.7
    # bar 5: -2 -> gain 4/9, loss (2/3 + 2)/3 = 8/9 -> RS 0.5 -> RSI 33.3
    # bar 6: -1 -> gain 8/27, loss (16/9 + 1)/3 = 25/27 -> RSI 100 - 100/(1 + 8/25) = 24.2
    #        below 30: buy at bar 7's open
    # bar 7: +0.5 -> gain (16/27 + 0.5)/3 = 59/162, loss 50/81 -> RSI 37.1
    # bar 8: +1.5 -> gain (59/81 + 1.5)/3 = 0.743, loss 100/243 = 0.412 -> RSI 64.4
    # bar 9: +2 -> gain (1.486 + 2)/3 = 1.162, loss 0.274 -> RSI 80.9 > 70: close at bar 10
    rows = [(c - 0.2 if i else c, c + 0.5, c - 0.5, c) for i, c in enumerate(closes)]
    rows[7] = (8.8, 9.8, 8.7, 9.5)  # bar 7 opens at 8.8
    rows[10] = (13.3, 13.5, 12.5, 13)  # bar 10 opens at 13.3
    data = {"A": frame(rows), "B": frame([(20, 21, 19, 20)] * len(rows))}
    result = tickstep.Backtest(data, RsiMeanReversion, sizer=FixedSize(5)).run(rsi_period=3)
    trades = result.trades
    assert len(trades) == 1
    t = trades.iloc[0]
    days = frame(rows).index
    assert (t.symbol, t.side, t["size"]) == ("A", "long", 5)
    assert (t.entry_time, t.entry_price) == (days[7], 8.8)
    assert (t.exit_time, t.exit_price) == (days[10], 13.3)


def test_rsi_short_mode_mirrors(daily_bars):
    longs = tickstep.Backtest(daily_bars, RsiMeanReversion, sizer=FixedSize(10)).run()
    both = tickstep.Backtest(daily_bars, RsiMeanReversion, sizer=FixedSize(10)).run(short=True)
    assert set(longs.trades["side"]) == {"long"}
    assert set(both.trades["side"]) == {"long", "short"}


# ---- SmaCross --------------------------------------------------------------------------------


def test_sma_cross_trades_the_bar_after_each_pandas_cross(daily_bars):
    result = tickstep.Backtest(daily_bars, SmaCross, cash=1e7, sizer=FixedSize(1)).run(
        fast=5, slow=20
    )
    trades = result.trades
    assert trades["symbol"].nunique() == len(daily_bars.symbols)
    for bars in daily_bars.bars:
        close = pd.Series(bars.close)
        fast, slow = close.rolling(5).mean(), close.rolling(20).mean()
        known = fast.notna() & slow.notna() & fast.shift().notna() & slow.shift().notna()
        golden = known & (fast > slow) & (fast.shift() <= slow.shift())
        death = known & (fast < slow) & (fast.shift() >= slow.shift())
        times = pd.to_datetime(bars.ts, utc=True)
        expected, entry = [], None  # (entry, exit) times: the bar after each cross
        for i in range(len(times) - 1):
            if golden[i] and entry is None:
                entry = times[i + 1]
            elif death[i] and entry is not None:
                expected.append((entry, times[i + 1]))
                entry = None
        mine = trades[trades["symbol"] == bars.symbol]
        assert list(zip(mine["entry_time"], mine["exit_time"])) == expected
        assert (bars.symbol in result.positions.index) == (entry is not None)


def test_sma_cross_reverse_goes_short(daily_bars):
    result = tickstep.Backtest(daily_bars, SmaCross, cash=1e7, sizer=FixedSize(1)).run(reverse=True)
    sides = result.trades.groupby("side").size()
    assert sides["long"] > 5 and sides["short"] > 5
    # always in the market after the first cross: each exit is the next entry
    for _, mine in result.trades.groupby("symbol", observed=True):
        assert (
            mine["entry_time"].iloc[1:].to_numpy() == mine["exit_time"].iloc[:-1].to_numpy()
        ).all()


def test_sma_cross_refuses_fast_not_below_slow(daily_bars):
    with pytest.raises(ValueError, match="fast < slow"):
        tickstep.Backtest(daily_bars, SmaCross).run(fast=30, slow=10)


# ---- every strategy on many symbols ------------------------------------------------------------


@pytest.mark.parametrize(
    "cls, fixture, params",
    [
        (Fakeout, "five_minute_bars", {}),
        (TrueBreakout, "five_minute_bars", {}),
        (RsiMeanReversion, "daily_bars", {}),
        (SmaCross, "daily_bars", {}),
        (RankedPortfolio, "daily_bars", {}),
    ],
)
def test_each_strategy_trades_several_symbols(request, cls, fixture, params):
    data = request.getfixturevalue(fixture)
    result = tickstep.Backtest(
        data, cls, cash=1e6, sizer=RiskPerTrade(0.002, max_fraction=0.1, fallback=FixedSize(10))
    ).run(**params)
    assert len(result.trades) >= 5
    assert result.trades["symbol"].nunique() >= 2
    assert np.isfinite(result.equity).all()


# ---- RankedPortfolio ----------------------------------------------------------------------------


def open_counts(fills: pd.DataFrame) -> pd.Series:
    """Open positions after each timestamp, rebuilt from the fills alone."""
    signed = np.where(fills["side"] == "buy", fills["size"], -fills["size"])
    position: dict[str, float] = {}
    counts = {}
    for (time, symbol), units in zip(zip(fills["time"], fills["symbol"]), signed):
        position[symbol] = position.get(symbol, 0.0) + units
        if abs(position[symbol]) < 1e-9:
            position[symbol] = 0.0
        counts[time] = sum(1 for u in position.values() if u != 0)
    return pd.Series(counts)


@pytest.mark.parametrize("k", [1, 3])
def test_ranked_portfolio_never_holds_more_than_k(k):
    data = tickstep.data.sample_daily(symbols=20, days=500, seed=5)
    result = tickstep.Backtest(data, RankedPortfolio, cash=100_000).run(
        max_positions=k, min_score=0.5
    )
    counts = open_counts(result.fills)
    assert len(result.trades) > 30
    assert counts.max() == k  # the cap binds, and is never passed
    assert (result.equity_frame["gross_exposure"] <= result.equity_frame["equity"] * 1.0001).all()


def jump_bars(jump: float, n_flat: int = 8, n_after: int = 4) -> pd.DataFrame:
    """Flat at 100 (true range 2), a jump of ``jump`` on bar ``n_flat``, flat after."""
    top = 100 + jump
    rows = [(100, 101, 99, 100)] * n_flat + [(100, top + 1, 99, top)]
    return frame(rows + [(top, top + 1, top - 1, top)] * n_after)


def ranked_case(metadata):
    # sma_period 5, atr_period 3. On the jump bar: SMA = 100 + J/5; true range J + 2, so
    # ATR = (2 x 2 + J + 2) / 3 = (J + 6) / 3; score = (4J/5) / ((J + 6)/3) = 12J / (5(J + 6)):
    # T1 (J=10) 1.5, T2 (J=6) 1.2, E1 (J=3) 0.8, U1 (J=0) 0.
    frames = {"T1": jump_bars(10), "T2": jump_bars(6), "E1": jump_bars(3), "U1": jump_bars(0)}
    data = tickstep.data.to_market_columns(frames, metadata=metadata)
    params = {
        "max_positions": 2,
        "sma_period": 5,
        "atr_period": 3,
        "min_score": 0.5,
        "reward_risk": None,
        "max_bars": None,
    }
    result = tickstep.Backtest(data, RankedPortfolio, cash=100_000).run(**params)
    entries = result.fills[result.fills.role == "entry"]
    assert (entries["time"] == jump_bars(0).index[9]).all()  # the bar after the jump
    return set(entries["symbol"])


def test_ranked_portfolio_prefers_an_empty_sector():
    sectors = pd.DataFrame(
        {"sector": ["Tech", "Tech", "Energy", "Utilities"]},
        index=pd.Index(["T1", "T2", "E1", "U1"], name="symbol"),
    )
    # T1 first (1.5); then T2 is worth 1.2 / (1 + 1) = 0.6 next to E1's 0.8 / 1: E1.
    assert ranked_case(sectors) == {"T1", "E1"}
    # one sector for all (no metadata): plain ranking, T1 and T2.
    assert ranked_case(None) == {"T1", "T2"}
    # a sector column with holes: the unknowns share one sector, here T2's and E1's.
    holes = sectors.assign(sector=["Tech", None, None, "Utilities"])
    assert ranked_case(holes) == {"T1", "T2"}


def test_ranked_portfolio_sizes_by_risk_and_stops_by_time(daily_bars):
    result = tickstep.Backtest(
        daily_bars, RankedPortfolio, cash=100_000, record_every_bar=True
    ).run(max_positions=4, max_bars=5, reward_risk=None, risk_per_trade=0.005)
    trades, orders = result.trades, result.orders.set_index("order_id")
    exit_role = orders.loc[trades["exit_order"], "role"].to_numpy()
    assert (exit_role == "close").sum() > 5  # time stops happened...
    assert (trades["bars_held"][exit_role == "close"] == 5).all()  # ...after 5 bars
    assert trades["bars_held"].max() <= 5
    closes = {
        b.symbol: pd.Series(b.close, index=pd.to_datetime(b.ts, utc=True)) for b in daily_bars.bars
    }
    entries = orders[orders.role == "entry"]
    assert len(entries) > 20
    for _, order in entries.iterrows():
        # 0.5% of equity at the stop, capped at 0.95 / 4 of equity in value
        equity = result.equity.loc[order.placed_time]
        price = closes[order.symbol].loc[order.placed_time]
        expected = min(0.005 * equity / (price - order.sl), 0.95 / 4 * equity / price)
        assert order["size"] == pytest.approx(expected, rel=1e-12)


# ---- BuyAndHold: the benchmark, through the same broker ------------------------------------


def _hold_market() -> dict[str, pd.DataFrame]:
    """AAA from Jan 1; BBB's data start on Jan 3."""
    return {
        "AAA": frame([(99, 101, 98, 100), (102, 103, 101, 102.5), (103, 105, 102, 104),
                      (104, 106, 103, 105), (106, 108, 105, 107)]),
        "BBB": frame([(49, 51, 48, 50), (51, 53, 50, 52), (53, 54, 52, 53.5)],
                     start="2024-01-03"),
    }


@pytest.mark.parametrize("names", [("AAA", "BBB"), ("ZZZ", "AAB")])
def test_buy_and_hold_buys_each_symbol_once_at_its_first_bar_by_hand(names):
    market = dict(zip(names, _hold_market().values()))
    first, second = names
    result = tickstep.Backtest(market, BuyAndHold, cash=100_000, commission=0.001).run(
        fraction=0.5)
    # Jan 1: the first symbol's target is a quarter (0.5 / 2 symbols) of 100,000 at the
    # close of 100: 250 units, bought at Jan 2's open of 102 with 0.1% commission.
    units_a = 0.25 * 100_000 / 100
    cash = 100_000 - units_a * 102 * 1.001
    # Jan 3: the second symbol's first bar; equity marks the first at 104.
    units_b = 0.25 * (cash + units_a * 104) / 50
    cash -= units_b * 51 * 1.001  # bought at Jan 4's open of 51
    fills = result.fills
    assert fills["symbol"].tolist() == [first, second]
    assert fills["side"].tolist() == ["buy", "buy"]
    np.testing.assert_allclose(fills["size"], [units_a, units_b], rtol=1e-12)
    np.testing.assert_allclose(fills["price"], [102.0, 51.0])
    assert fills["time"].tolist() == [pd.Timestamp("2024-01-02", tz="UTC"),
                                      pd.Timestamp("2024-01-04", tz="UTC")]
    # Held to the end, never sold, marked at the last closes.
    final = cash + units_a * 107 + units_b * 53.5
    assert result.equity.iloc[-1] == pytest.approx(final, rel=1e-12)
    assert result.stats["Return [%]"] == pytest.approx((final / 100_000 - 1) * 100, rel=1e-12)
    assert len(result.orders) == 2 and result.stats["# Trades"] == 0


def test_buy_and_hold_is_the_frictionless_basket_without_costs_or_gaps():
    # Symbols that start together, all of equity, no commission, filled at the close it
    # was decided on: the run is the results row's Buy & Hold, day by day.
    aaa = _hold_market()["AAA"]
    bbb = frame([(49, 51, 48, 50), (51, 53, 50, 52), (53, 54, 52, 53.5), (53, 55, 52, 54),
                 (54, 55, 50, 51)])
    market = {"AAA": aaa, "BBB": bbb}
    result = tickstep.Backtest(market, BuyAndHold, cash=100_000, trade_on_close=True).run(
        fraction=1.0)
    assert result.fills["price"].tolist() == [100.0, 50.0]
    assert result.stats["Return [%]"] == pytest.approx(result.stats["Buy & Hold Return [%]"],
                                                       rel=1e-12)
    basket = (aaa["close"] / 100 + bbb["close"] / 50) / 2  # each half of the cash
    np.testing.assert_allclose(result.daily_returns(), basket.pct_change().fillna(0.0),
                               rtol=1e-12, atol=1e-15)
    # ... and the results' basket (`Result.buy_and_hold`, what the plot draws) is its equity.
    np.testing.assert_allclose(result.buy_and_hold(), result.equity, rtol=1e-12)


@pytest.mark.parametrize("names", [("AAA", "BBB", "CCC"), ("ZZZ", "MMM", "AAA")])
def test_a_results_buy_and_hold_basket_is_the_statistics_by_hand(names, tmp_path):
    # Three symbols: one from Jan 1 to the end, one from Jan 3, one whose data end on
    # Jan 3. A third of the cash in each from its first close; a share waits in cash
    # until its symbol's first bar and keeps the last close after its last.
    aaa = _hold_market()["AAA"]
    bbb = _hold_market()["BBB"]
    ccc = frame([(20, 21, 19, 20), (21, 22, 20, 21.5), (21, 23, 21, 22.5)])
    market = dict(zip(names, (aaa, bbb, ccc)))
    result = tickstep.Backtest(market, SmaCross, cash=90_000).run(fast=1, slow=2)
    days = aaa.index
    growth_a = aaa["close"] / 100
    growth_b = (bbb["close"] / 50).reindex(days).fillna(1.0)
    growth_c = (ccc["close"] / 20).reindex(days).ffill()
    by_hand = 90_000 * (growth_a + growth_b + growth_c) / 3
    basket = result.buy_and_hold()
    assert basket.index.equals(result.equity.index) and basket.name == "buy & hold"
    np.testing.assert_allclose(basket, by_hand.reindex(result.equity.index), rtol=1e-12)
    assert basket.iloc[-1] == pytest.approx(
        90_000 * (1 + result.stats["Buy & Hold Return [%]"] / 100), rel=1e-12)
    # The same bits whatever the symbols are called.
    first = tickstep.Backtest(dict(zip(("AAA", "BBB", "CCC"), (aaa, bbb, ccc))), SmaCross,
                              cash=90_000).run(fast=1, slow=2).buy_and_hold()
    pd.testing.assert_series_equal(basket, first)
    # A saved result draws the same basket.
    again = tickstep.load_result(result.save(tmp_path / "saved"))
    pd.testing.assert_series_equal(again.buy_and_hold(), basket)


@pytest.mark.parametrize("fraction", [0, -0.5, math.inf, math.nan])
def test_buy_and_hold_refuses_a_fraction_not_above_zero(fraction):
    with pytest.raises(ValueError, match=r"need fraction > 0 \(the share of equity invested\)"):
        tickstep.Backtest(_hold_market(), BuyAndHold, cash=100_000).run(fraction=fraction)


def test_buy_and_hold_does_not_chase_a_rejected_entry():
    # All of the cash at the close of 100, the next open 110: the order is short of cash
    # and rejected; it is not placed again, the cash stays cash.
    market = {"AAA": frame([(99, 101, 98, 100), (110, 112, 108, 111), (111, 113, 110, 112)])}
    result = tickstep.Backtest(market, BuyAndHold, cash=10_000, on_reject="ignore").run(
        fraction=1.0)
    assert result.orders["status"].tolist() == ["rejected"]
    assert result.fills.empty and result.stats["# Orders Rejected"] == 1
    assert (result.equity == 10_000).all()
