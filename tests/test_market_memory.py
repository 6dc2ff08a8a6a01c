"""The core adopts immutable columns in place and copies mutable ones."""

import numpy as np
import pandas as pd
import tickstep
from tickstep.data import MarketColumns, SymbolBars
from tickstep.simulation import _immutable


def _bars(n=50):
    ts = np.arange(n, dtype=np.int64) * 60_000_000_000
    price = np.linspace(10.0, 20.0, n).copy()  # owns its memory (linspace returns a view)
    return ts, price


def test_a_frozen_buffer_is_read_in_place():
    ts, price = _bars()
    for a in (ts, price):
        a.flags.writeable = False
    cols = MarketColumns([SymbolBars("X", ts, price, price, price, price, price)])
    bt = tickstep.Backtest(cols, tickstep.Strategy)
    view = bt.market.column(0, "close", 0, 50)
    # Same memory as the caller's frozen array: no copy was made.
    assert view.__array_interface__["data"][0] == price.__array_interface__["data"][0]
    np.testing.assert_array_equal(view, price)


def test_a_view_of_writeable_memory_is_copied_so_later_writes_cannot_reach_the_core():
    ts, price = _bars()
    frame = pd.DataFrame({"open": price, "high": price, "low": price, "close": price,
                          "volume": 1.0}, index=pd.to_datetime(ts, utc=True))
    bt = tickstep.Backtest(frame, tickstep.Strategy)
    before = bt.market.column(0, "close", 0, 50).copy()
    frame.iloc[3, 3] = 1e6
    price[4] = 1e6
    np.testing.assert_array_equal(bt.market.column(0, "close", 0, 50), before)


def test_immutability_follows_the_chain_of_views():
    owner = np.arange(10.0)
    view = owner[2:5]
    view.flags.writeable = False
    assert not _immutable(view)  # the owner can still be written
    owner.flags.writeable = False
    assert _immutable(owner[2:5])
    assert not _immutable(np.frombuffer(bytearray(80)))  # a writeable buffer underneath
    assert _immutable(np.frombuffer(bytes(80)))


def test_arrow_backed_columns_are_adopted():
    pa = __import__("pyarrow")
    values = pa.array(np.linspace(1.0, 2.0, 10))
    view = values.to_numpy(zero_copy_only=True)
    assert _immutable(view)
