"""The native grid's rows of statistics (the core keeping of each run only what they
read) against each set run alone: edge cases of the statistics, rejected orders under
each ``on_reject``, calendars, warm-ups, benchmarks and symbol names."""

from __future__ import annotations

import gc

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars

# An engine is bound to the thread that made it: one dropped elsewhere (e.g. kept alive by
# a row's exception) is reported as unraisable; here that fails the test.
pytestmark = pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")


def _walk(n, seed, start="2024-01-01", freq="h"):
    rng = np.random.default_rng(seed)
    closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    opens = np.concatenate([[100.0], closes[:-1]])
    return make_bars([(o, max(o, c) * 1.005, min(o, c) * 0.995, c) for o, c in zip(opens, closes)],
                     start=start, freq=freq)


def _falling(n, start="2024-01-01", freq="h"):
    closes = 100.0 * 0.99 ** np.arange(1, n + 1)
    opens = np.concatenate([[100.0], closes[:-1]])
    return make_bars([(o, o * 1.001, c * 0.999, c) for o, c in zip(opens, closes)],
                     start=start, freq=freq)


def _same_row(row, alone):
    pd.testing.assert_series_equal(row.rename(None), alone.rename(None)[row.index],
                                   check_exact=True, check_dtype=False)


def _sets(data, rng):
    """Signal sets covering the statistics' edge cases (by name)."""
    never = {s: np.zeros(len(df), bool) for s, df in data.items()}
    often = {s: rng.random(len(df)) < 0.2 for s, df in data.items()}
    exits = {s: rng.random(len(df)) < 0.1 for s, df in data.items()}
    first = {s: np.arange(len(df)) == 3 for s, df in data.items()}
    return {
        "no trades": {"entries": never},
        "one open position, no closed trade": {"entries": first},
        "busy": {"entries": often, "exits": exits, "sl": 0.01},
        "shorts with stops": {"short_entries": often, "short_exits": exits, "tp": 0.02,
                              "size_type": "target_percent", "size": 0.3},
        # Amounts far beyond the cash: the broker rejects most of them.
        "rejected": {"entries": often, "exits": exits, "size": 5_000.0, "size_type": "amount"},
    }


@pytest.mark.parametrize("options", [
    {},
    {"commission": 0.001, "timezone": "America/New_York", "benchmark": "A"},
    {"trade_start": "2024-01-05", "borrow_rate": 0.05, "cash_rate": 0.02, "timezone": "Asia/Tokyo"},
    {"record_every_bar": True, "risk_free_rate": 0.03, "commission_fixed": 1.0},
    # Symbols' own margin terms and borrow fees (run by the engine's loop).
    {"margin_by_symbol": {"C": {"leverage": 0.5}, "A": {"maintenance_margin": 0.2}},
     "borrow_rate": 0.01, "borrow_rate_by_symbol": {"B": 0.3}},
])
def test_grid_rows_equal_runs_alone_in_the_statistics_edge_cases(options):
    data = {"A": _walk(300, 1), "B": _walk(250, 2, "2024-01-02"), "C": _falling(280)}
    bt = tickstep.Backtest(data, tickstep.Strategy, on_reject="ignore", **options)
    sets = _sets(data, np.random.default_rng(5))
    table = bt.run_signal_grid(sets, threads=2)
    assert list(table.index) == list(sets)
    assert table.loc["no trades", "# Trades"] == 0
    assert table.loc["one open position, no closed trade", "# Trades"] == 0
    assert table.loc["rejected", "# Orders Rejected"] > 0
    for key, sig in sets.items():
        _same_row(table.loc[key], bt.run_signals(**sig).stats)


def test_all_losing_trades_equal_runs_alone():
    data = {"X": _falling(200), "Y": _falling(150, "2024-01-03")}
    bt = tickstep.Backtest(data, tickstep.Strategy, commission=0.002)
    every = {s: np.arange(len(df)) % 4 == 0 for s, df in data.items()}
    out = {s: np.arange(len(df)) % 4 == 2 for s, df in data.items()}
    sets = {k: {"entries": every, "exits": out, "size": 0.1 * (k + 1)} for k in range(3)}
    table = bt.run_signal_grid(sets)
    assert (table["Win Rate [%]"] == 0).all()
    assert table["Profit Factor"].eq(0).all()
    for key, sig in sets.items():
        _same_row(table.loc[key], bt.run_signals(**sig).stats)


def test_rejections_are_counted_and_warned_of_once_or_raised_as_a_run_alone_raises_them():
    data = {"A": _walk(120, 3), "B": _walk(120, 4)}
    sig = {"entries": {s: np.arange(120) % 5 == 0 for s in data},
           "exits": {s: np.arange(120) % 5 == 3 for s in data},
           "size": 1_000.0, "size_type": "amount"}
    warn = tickstep.Backtest(data, tickstep.Strategy)  # on_reject="warn"
    with pytest.warns(tickstep.RejectedOrderWarning):
        alone = warn.run_signals(**sig).stats
    with pytest.warns(tickstep.RejectedOrderWarning) as record:
        table = warn.run_signal_grid({"big": sig, "small": {**sig, "size": 1.0}})
    (summary,) = record  # one for the grid, naming the set with rejections
    n = table.loc["big", "# Orders Rejected"]
    assert str(summary.message).startswith(f"1 of 2 runs had orders the broker rejected ({n} ")
    assert f"  signal set 'big': {n} order(s)" in str(summary.message)
    assert "'small'" not in str(summary.message)
    _same_row(table.loc["big"], alone)
    assert table.loc["big", "# Orders Rejected"] > 0
    assert table.loc["small", "# Orders Rejected"] == 0
    strict = tickstep.Backtest(data, tickstep.Strategy, on_reject="raise")
    with pytest.raises(tickstep.RejectedOrdersError) as by_itself:
        strict.run_signals(**sig)
    with pytest.raises(tickstep.RejectedOrdersError) as in_grid:
        strict.run_signal_grid({"small": {**sig, "size": 1.0}, "big": sig})
    assert str(in_grid.value) == str(by_itself.value)


def test_grid_rows_do_not_depend_on_the_symbols_names():
    a, b = _walk(200, 8), _walk(180, 9, "2024-01-02")
    rng = np.random.default_rng(2)
    en = [rng.random(200) < 0.2, rng.random(180) < 0.2]
    ex = [rng.random(200) < 0.1, rng.random(180) < 0.1]
    rows = []
    for names in (("A", "B"), ("Z", "M")):
        bt = tickstep.Backtest(dict(zip(names, (a, b))), tickstep.Strategy, on_reject="ignore")
        sets = {k: {"entries": dict(zip(names, en)), "exits": dict(zip(names, ex)),
                    "size": 0.2 + 0.1 * k} for k in range(3)}
        rows.append(bt.run_signal_grid(sets, threads=2))
    pd.testing.assert_frame_equal(rows[0], rows[1], check_exact=True)


class _WithStops(tickstep.SignalStrategy):
    """Entries every 5 bars, a stop-loss price 2% under each close; ``size`` in units."""

    size = 5.0
    size_type = "amount"

    def signals(self, symbol, bars):
        close = bars["close"].to_numpy()
        n = len(close)
        return {"entries": np.arange(n) % 5 == 0, "exits": np.arange(n) % 5 == 3,
                "sl_price": close * 0.98}


def test_a_set_the_core_refuses_or_whose_rejections_raise_is_its_own_row():
    data = {"A": _walk(150, 11), "B": _walk(140, 12, "2024-01-02")}
    strict = tickstep.Backtest(data, _WithStops, on_reject="raise")
    market = strict._in_memory("test")
    sets = [{"size": 5.0}, {"sl": 0.05}, {"size": 1_000.0}, {"size": 2.0}]
    rows = tickstep.signals.strategy_grid_stats(market, _WithStops, strict._config, sets,
                                                threads=2, batch=3)
    assert isinstance(rows[1], tickstep.ConfigError)
    assert "give sl as a fraction or as prices" in str(rows[1])
    assert isinstance(rows[2], tickstep.RejectedOrdersError)
    for k in (0, 3):
        _same_row(rows[k], strict.run(**sets[k]).stats)
    with pytest.raises(tickstep.RejectedOrdersError) as alone:
        strict.run(**sets[2])
    assert str(rows[2]) == str(alone.value)
    with pytest.raises(tickstep.ConfigError, match="give sl as a fraction or as prices"):
        strict.run_signal_grid({"fine": {"entries": {"A": np.arange(150) % 5 == 0}},
                                "both": {"entries": {"A": np.arange(150) % 5 == 0}, "sl": 0.05,
                                         "sl_price": {"A": np.full(150, 90.0)}}})


class _Ragged(tickstep.SignalStrategy):
    """Entries one bar short of B's bars when ``ragged``."""

    ragged = False

    def signals(self, symbol, bars):
        n = len(bars) - (1 if self.ragged and symbol == "B" else 0)
        return {"entries": np.arange(n) % 4 == 0, "exits": np.arange(n) % 4 == 2}


def test_a_set_with_refused_signals_is_its_own_row_in_a_signal_strategy_grid():
    data = {"A": _walk(90, 13), "B": _walk(80, 14)}
    bt = tickstep.Backtest(data, _Ragged, on_reject="ignore")
    sets = [{}, {"ragged": True}, {"size": 0.5}]
    rows = tickstep.signals.strategy_grid_stats(bt._in_memory("test"), _Ragged, bt._config, sets,
                                                threads=2)
    assert isinstance(rows[1], tickstep.ConfigError)
    assert "entries['B']: 79 values for its 80 bars" in str(rows[1])
    for k in (0, 2):
        _same_row(rows[k], bt.run(**sets[k]).stats)


class _EveryK(tickstep.SignalStrategy):
    """Entries every ``k`` bars (exits two bars later); refuses ``k`` = 0 itself."""

    k = 3
    size = 0.3

    def signals(self, symbol, bars):
        if self.k == 0:
            raise ValueError("k must be positive")
        n = len(bars)
        return {"entries": np.arange(n) % self.k == 0, "exits": np.arange(n) % self.k == 2}


def test_signals_made_on_several_threads_give_rows_in_order_equal_to_runs_alone():
    data = {"A": _walk(160, 21), "B": _walk(150, 22, "2024-01-02")}
    bt = tickstep.Backtest(data, _EveryK, on_reject="ignore")
    sets = [{"k": 3}, {"k": 0}, {"k": 4, "size": 0.2}, {"k": 5}, {"k": 0}, {"k": 7},
            {"k": 2, "sl": 0.01}, {"k": 9}, {"k": 6}]
    for threads, batch in ((3, 2), (2, None), (1, 4)):
        rows = tickstep.signals.strategy_grid_stats(bt._in_memory("test"), _EveryK, bt._config,
                                                    sets, threads=threads, batch=batch)
        assert len(rows) == len(sets)
        for params, row in zip(sets, rows):
            if params["k"] == 0:
                assert isinstance(row, ValueError) and "k must be positive" in str(row)
                assert any("_EveryK.signals" in note for note in row.__notes__)
            else:
                _same_row(row, bt.run(**params).stats)


class _DropsGarbage(_EveryK):
    """Lets go of ``held`` (a reference cycle holding an engine) in ``signals`` and asks for
    a collection at almost every allocation from then on, on whichever thread."""

    held: list = []

    def signals(self, symbol, bars):
        if _DropsGarbage.held:
            _DropsGarbage.held.clear()
            gc.set_threshold(1, 1, 1)
        return super().signals(symbol, bars)


def test_an_engine_left_in_garbage_is_not_dropped_on_a_signals_thread():
    from tickstep.simulation import engine_for

    data = {"A": _walk(120, 23)}
    bt = tickstep.Backtest(data, _DropsGarbage, on_reject="ignore")
    market = bt._in_memory("test")
    threshold = gc.get_threshold()
    gc.collect()
    gc.set_threshold(10**8)  # the cycle stays in the youngest generation until it is garbage
    try:
        cycle: list = [engine_for(market, bt._config, None)]  # bound to this thread
        cycle.append(cycle)
        _DropsGarbage.held.append(cycle)
        del cycle
        rows = tickstep.signals.strategy_grid_stats(market, _DropsGarbage, bt._config,
                                                    [{"k": k} for k in range(2, 12)], threads=2)
        assert gc.isenabled()
        gc.collect()  # here, on the engine's own thread
    finally:
        gc.set_threshold(*threshold)
    assert all(isinstance(row, pd.Series) for row in rows)


def test_a_misshapen_grid_is_refused_naming_the_set_or_the_option():
    data = {"A": _walk(30, 1), "B": _walk(30, 2)}
    bt = tickstep.Backtest(data, on_reject="ignore")  # (both symbols' 95% entries clash)
    good = {"entries": {s: np.arange(30) % 7 == 0 for s in data}}
    with pytest.raises(tickstep.ConfigError, match=r"signal_sets must be a mapping \{key: .*got list"):
        bt.run_signal_grid([good])
    with pytest.raises(tickstep.ConfigError, match=r"signal set 'x': must be a mapping of its signals .* got DataFrame"):
        bt.run_signal_grid({"x": pd.DataFrame(good["entries"], index=data["A"].index)})
    # A set whose signals are refused is named first, whatever the refusal.
    with pytest.raises(tickstep.ConfigError, match=r"^signal set 2: entries\['B'\]: signals must be booleans"):
        bt.run_signal_grid({1: good, 2: {"entries": {"B": np.ones(30, dtype=int)}}})
    with pytest.raises(tickstep.ConfigError, match=r"^signal set 2: entries: 'C' is not a symbol"):
        bt.run_signal_grid({1: good, 2: {"entries": {"C": np.ones(30, bool)}}})
    for threads in (0, -1, 1.5, "2", True):
        with pytest.raises(tickstep.ConfigError, match=r"threads=.*: must be a whole number of threads >= 1"):
            bt.run_signal_grid({1: good}, threads=threads)
    assert bt.run_signal_grid({1: good, 2: good}, threads=1).equals(bt.run_signal_grid({1: good, 2: good}))


def _crosses(close, fast, slow):
    f, s = close.rolling(fast).mean(), close.rolling(slow).mean()
    return (f > s) & (f.shift() <= s.shift()), (f < s) & (f.shift() >= s.shift())


def test_frames_of_sets_as_columns_equal_each_set_run_alone():
    data = {"A": _walk(200, 1), "B": _walk(160, 2, "2024-01-03"), "C": _walk(180, 3)}
    bt = tickstep.Backtest(data, on_reject="ignore", commission=0.001)
    close = pd.DataFrame({s: df["close"] for s, df in data.items()})
    rng = np.random.default_rng(7)
    keys = [(f, s) for f in (3, 6) for s in (12, 30)]
    entries, sizes, stops = {}, {}, {}
    for key in keys:
        entries[key] = _crosses(close, *key)[0]
        # Sizes per bar (NaN: no entry there) and stop prices per bar, each set its own.
        sizes[key] = pd.DataFrame(rng.uniform(0.05, 0.3, close.shape), index=close.index,
                                  columns=close.columns).mask(rng.random(close.shape) < 0.2)
        stops[key] = close * (1 - rng.uniform(0.005, 0.03, close.shape))
    exits = _crosses(close, 5, 20)[1]  # one frame by symbol: shared by every set
    names = ["fast", "slow", "symbol"]
    wide = {kind: pd.concat(frames, axis=1, names=names)
            for kind, frames in (("entries", entries), ("size", sizes), ("sl_price", stops))}
    table = bt.run_signal_grid(entries=wide["entries"], exits=exits, size=wide["size"],
                               sl_price=wide["sl_price"], size_type="percent", threads=2)
    assert list(table.index) == keys and list(table.index.names) == ["fast", "slow"]
    assert (table["# Trades"] > 0).all()
    for key in keys:
        alone = bt.run_signals(entries=entries[key], exits=exits, size=sizes[key],
                               sl_price=stops[key]).stats
        _same_row(table.loc[key], alone)
    # The symbol's level may come first when it is named so, and a set's columns need not
    # be side by side (here sorted by symbol); the sets keep the order they first come in.
    first = wide["entries"].reorder_levels(["symbol", "fast", "slow"], axis=1).sort_index(axis=1)
    again = bt.run_signal_grid(entries=first, exits=exits, size=wide["size"],
                               sl_price=wide["sl_price"])
    assert again.equals(table)


def test_vectorbts_frames_of_crossings_run_as_a_grid():
    import vectorbt as vbt

    data = {"A": _walk(300, 4), "B": _walk(300, 5)}
    bt = tickstep.Backtest(data, on_reject="ignore")
    close = pd.DataFrame({s: df["close"] for s, df in data.items()}).rename_axis(columns="symbol")
    fast, slow = vbt.MA.run_combs(close, window=[4, 9, 21], r=2, short_names=["fast", "slow"])
    entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
    table = bt.run_signal_grid(entries=entries, exits=exits, size=0.4)
    assert list(table.index.names) == ["fast_window", "slow_window"]
    assert list(table.index) == [(4, 9), (4, 21), (9, 21)]
    for key in table.index:
        alone = bt.run_signals(entries=entries[key], exits=exits[key], size=0.4).stats
        assert alone["# Trades"] > 0
        _same_row(table.loc[key], alone)


def test_frames_of_sets_that_do_not_fit_are_refused_by_name():
    data = {"A": _walk(40, 1), "B": _walk(40, 2)}
    bt = tickstep.Backtest(data, on_reject="ignore")
    close = pd.DataFrame({s: df["close"] for s, df in data.items()})
    entries = pd.concat({n: _crosses(close, 2, n)[0] for n in (5, 8)}, axis=1, names=["slow", "symbol"])
    exits = pd.concat({n: _crosses(close, 2, n)[1] for n in (5, 8, 13)}, axis=1, names=["slow", "symbol"])
    with pytest.raises(tickstep.ConfigError, match=r"^entries: no columns for the signal set 13, which "
                                                   r"exits has; every frame of signal sets must name the same sets"):
        bt.run_signal_grid(entries=entries, exits=exits)
    with pytest.raises(tickstep.ConfigError, match=r"^exits: no columns for the signal set 13, which entries has"):
        bt.run_signal_grid(entries=exits, exits=entries)
    by_two = pd.concat({(2, n): _crosses(close, 2, n)[1] for n in (5, 8)}, axis=1,
                       names=["fast", "slow", "symbol"])
    with pytest.raises(tickstep.ConfigError, match=r"^exits names its signal sets by the column levels "
                                                   r"\(fast, slow\), entries by \(slow\): every frame"):
        bt.run_signal_grid(entries=entries, exits=by_two)
    with pytest.raises(tickstep.ConfigError, match=r"^exits names its signal sets by the column levels "
                                                   r"\(fast\), entries by \(slow\)"):
        bt.run_signal_grid(entries=entries, exits=exits.rename_axis(columns=["fast", "symbol"]))
    # The symbol's level: the one named so, else the last.
    swapped = entries.swaplevel(axis=1).rename_axis(columns=["x", "y"])
    with pytest.raises(tickstep.ConfigError, match=r"^entries: column level 1 \(the last\) holds 5, not a "
                                                   r"symbol of the data; .* the others name the set"):
        bt.run_signal_grid(entries=swapped)
    with pytest.raises(tickstep.ConfigError, match=r"^run_signal_grid: no frame of signal sets among "
                                                   r"entries=, exits=: give frames whose columns are a MultiIndex"):
        bt.run_signal_grid(entries=close > 0, exits=close < 0)
    with pytest.raises(tickstep.ConfigError, match=r"^run_signal_grid: no signal sets: give signal_sets, a "
                                                   r"mapping .* or frames of sets \(entries=, exits=, \.\.\.\)"):
        bt.run_signal_grid(size=0.5)
    with pytest.raises(tickstep.ConfigError, match=r"either as signal_sets \(a mapping\) or as frames of sets"):
        bt.run_signal_grid({1: {"entries": close > 0}}, entries=entries)
    # One run takes one column per symbol: a frame of sets is pointed to the grid.
    with pytest.raises(tickstep.ConfigError, match=r"^entries: the columns are a MultiIndex \(slow, symbol\), "
                                                   r"one column per signal set and symbol: run_signal_grid runs"):
        bt.run_signals(entries=entries)
    # A set's own refusal names the set, as in the mapping form.
    twice = pd.concat([entries, entries.xs(8, axis=1, level="slow", drop_level=False)], axis=1)
    with pytest.raises(tickstep.ConfigError, match=r"^signal set 8: entries: column 'A' appears more than once"):
        bt.run_signal_grid(entries=twice)


def test_a_column_index_of_one_level_is_read_as_the_symbols():
    data = {"A": _walk(60, 1), "B": _walk(60, 2)}
    bt = tickstep.Backtest(data, on_reject="ignore")
    close = pd.DataFrame({s: df["close"] for s, df in data.items()})
    entries, exits = _crosses(close, 3, 9)
    one_level = entries.set_axis(pd.MultiIndex.from_arrays([entries.columns], names=["symbol"]), axis=1)
    flat, wrapped = bt.run_signals(entries=entries, exits=exits), bt.run_signals(entries=one_level, exits=exits)
    assert len(flat.fills) > 0
    pd.testing.assert_frame_equal(wrapped.fills, flat.fills)
