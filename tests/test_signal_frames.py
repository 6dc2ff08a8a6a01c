"""Signals given as time-indexed DataFrames: each symbol reads the rows at its own bars'
times. The rows are looked up once per index and symbol for all the frames of a call
(entries, exits, every set of a grid); they must be exactly the rows a lookup per column
(``pd.Index(times).get_indexer(bar_times)``, the plain way) finds, whatever the index:
sorted or not, naive or in another timezone, shared by the frames or not."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import tickstep
from conftest import make_bars
from tickstep.signals import signal_columns


def _data(rng):
    data = {}
    for name, n, start in (("A", 80, "2024-01-01"), ("B", 50, "2024-01-20"), ("C", 70, "2024-01-05")):
        closes = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
        opens = np.concatenate([[100.0], closes[:-1]])
        data[name] = make_bars([(o, max(o, c) * 1.01, min(o, c) * 0.99, c)
                                for o, c in zip(opens, closes)], start=start)
    return data


def _plain_columns(market, frame):
    """The plain way: a fresh index and lookup for every column."""
    index = frame.index if frame.index.tz is not None else frame.index.tz_localize("UTC")
    times = index.tz_convert("UTC").as_unit("ns").asi8
    out = [None] * len(market.symbols)
    for col in frame.columns:
        s = list(market.symbols).index(col)
        ts = market.column(s, "ts", 0, 2**62)
        out[s] = frame[col].to_numpy()[pd.Index(times).get_indexer(ts)]
    return out


def _assert_columns_equal(got, want):
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if w is not None:
            assert g.dtype == w.dtype
            np.testing.assert_array_equal(g, w)


@pytest.fixture
def setup():
    rng = np.random.default_rng(11)
    data = _data(rng)
    bt = tickstep.Backtest(data, tickstep.Strategy, on_reject="ignore")
    union = data["A"].index.union(data["B"].index).union(data["C"].index)
    extra = union.union(pd.date_range("2023-12-25", periods=5, freq="D", tz="UTC"))
    return bt, rng, union, extra


def test_every_kind_of_index_gives_the_rows_of_a_lookup_per_column(setup):
    bt, rng, union, extra = setup
    market = bt.market
    for index in (union, extra,                                   # the timeline; more rows
                  extra[rng.permutation(len(extra))],             # not sorted
                  extra.tz_convert("America/New_York"),           # another timezone
                  extra.tz_localize(None)):                       # naive: UTC
        frame = pd.DataFrame(rng.random((len(index), 3)) < 0.3, index=index, columns=["C", "A", "B"])
        _assert_columns_equal(signal_columns(market, frame, "entries"), _plain_columns(market, frame))
        prices = pd.DataFrame(rng.uniform(50, 150, (len(index), 2)), index=index, columns=["B", "A"])
        _assert_columns_equal(signal_columns(market, prices, "sl_price"),
                              _plain_columns(market, prices))


def test_frames_of_one_call_with_different_indexes_each_read_their_own_rows(setup):
    bt, rng, union, extra = setup
    shuffled = extra[rng.permutation(len(extra))]
    entries = pd.DataFrame(rng.random((len(union), 3)) < 0.2, index=union, columns=["A", "B", "C"])
    exits = pd.DataFrame(rng.random((len(shuffled), 3)) < 0.2, index=shuffled, columns=["A", "B", "C"])
    stops = pd.DataFrame(rng.uniform(10, 50, (len(extra), 3)), index=extra, columns=["A", "B", "C"])
    by_arrays = {}
    for kind, frame in (("entries", entries), ("exits", exits), ("sl_price", stops)):
        columns = _plain_columns(bt.market, frame)
        by_arrays[kind] = {s: columns[i] for i, s in enumerate(bt.market.symbols)}
    r, want = bt.run_signals(entries, exits, sl_price=stops), bt.run_signals(**by_arrays)
    assert len(want.trades) > 0
    pd.testing.assert_frame_equal(r.trades, want.trades, check_exact=True)
    pd.testing.assert_series_equal(r.stats, want.stats, check_exact=True)


def test_grid_sets_with_their_own_indexes_equal_runs_alone(setup):
    bt, rng, union, extra = setup
    sets = {}
    for k, index in enumerate((union, extra, union.copy(), extra[::-1])):
        frame = pd.DataFrame(rng.random((len(index), 3)) < 0.2, index=index, columns=["A", "B", "C"])
        sets[k] = {"entries": frame, "exits": frame.shift(3, fill_value=False)}
    table = bt.run_signal_grid(sets, threads=1)
    for key, sig in sets.items():
        alone = bt.run_signals(**sig).stats
        pd.testing.assert_series_equal(table.loc[key].rename(None), alone.rename(None)[table.columns],
                                       check_exact=True, check_dtype=False)


def test_a_missing_or_repeated_time_or_a_repeated_column_is_refused(setup):
    bt, rng, union, extra = setup
    short = union.delete(len(union) // 2)
    frame = pd.DataFrame(True, index=short, columns=["A", "B", "C"])
    missing = union[len(union) // 2]
    symbols = list(bt.market.symbols)
    first = next(s for s in "ABC"
                 if missing.value in bt.market.column(symbols.index(s), "ts", 0, 2**62))
    with pytest.raises(tickstep.ConfigError,
                       match=re.escape(f"exits column '{first}': no row for the bar at {missing} ")):
        bt.run_signals(pd.DataFrame(True, index=union, columns=["A", "B", "C"]), frame)
    # Which of two rows would the bar read? Neither is assumed: the time is named.
    repeated = union.append(union[3:4]).sort_values()
    with pytest.raises(tickstep.ConfigError,
                       match=re.escape(f"entries: the index holds the time {union[3]} more than once")):
        bt.run_signals(pd.DataFrame(True, index=repeated, columns=["A", "B", "C"]))
    with pytest.raises(tickstep.ConfigError, match="exits: column 'B' appears more than once"):
        bt.run_signals(pd.DataFrame(True, index=union, columns=["A", "B", "C"]),
                       pd.DataFrame(False, index=union, columns=["A", "B", "B"]))


def test_a_series_per_symbol_is_read_by_its_index_as_a_frames_column_is(setup):
    """``{symbol: Series}`` (what `SignalStrategy.signals` returns) reads each Series by
    its times, as the frame's column of that symbol: on the symbol's own bar times, on
    more times, in reverse order, naive. A Series indexed by positions is read by
    position; by anything else (dates held as text), refused; shifted off the bars' times,
    refused naming the first bar without a row."""
    bt, rng, union, extra = setup
    frame = pd.DataFrame(rng.random((len(extra), 3)) < 0.2, index=extra, columns=["A", "B", "C"])
    exits = frame.shift(3, fill_value=False)
    want = bt.run_signals(frame, exits)
    times = {s: pd.DatetimeIndex(bt.market.column(k, "ts", 0, 2**62), tz="UTC")
             for k, s in enumerate(bt.market.symbols)}
    own = {s: frame[s].reindex(times[s]) for s in frame.columns}
    shapes = {
        "own bar times": own,
        "more times": {s: frame[s] for s in frame.columns},
        "reversed": {s: frame[s][::-1] for s in frame.columns},
        "naive": {s: frame[s].tz_localize(None) for s in frame.columns},
        "positions": {s: v.reset_index(drop=True) for s, v in own.items()},
    }
    for shape, entries in shapes.items():
        got = bt.run_signals(entries, {s: exits[s] for s in exits.columns})
        pd.testing.assert_frame_equal(got.fills, want.fills, obj=shape)
        pd.testing.assert_series_equal(got.equity, want.equity, obj=shape)
    with pytest.raises(tickstep.ConfigError, match=r"indexed by time .* or by position .* dtype str"):
        bt.run_signals({"A": own["A"].set_axis(own["A"].index.astype(str))})
    first = own["A"].index[0]
    with pytest.raises(tickstep.ConfigError,
                       match=re.escape(f"entries column 'A': no row for the bar at {first} ")):
        bt.run_signals({"A": own["A"].shift(1, freq="D")})
