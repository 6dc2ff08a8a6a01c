"""Continuous futures (``tickstep.data.roll_contracts``), hand-computed and against a
reference: the continuous series' move from each bar to the next is the held contract's
own move (at a roll, the new contract's from its close at the old one's last bar held),
in points with ``adjust="difference"``, as a return with ``"ratio"``.

Contracts' bars are daily from 2024-03-11 (day i is March 11 + i), one price per bar.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep.data as td
from conftest import run_script
from hypothesis import given, settings
from hypothesis import strategies as st
from test_engine_fills import buy

EXACT = dict(rel=1e-12, abs=1e-9)


def contract(closes, volumes, start="2024-03-11"):
    index = pd.date_range(start, periods=len(closes), freq="D", tz="UTC")
    c = np.asarray(closes, dtype=float)
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c,
                         "volume": np.asarray(volumes, dtype=float)}, index=index)


# March (H) trades on days 0-4; June (M) on days 0-6; September (U) on days 3-8.
H = contract([100, 101, 102, 103, 104], [900, 800, 300, 100, 50])
M = contract([110, 111, 113, 114, 115, 117, 118], [100, 500, 600, 900, 950, 700, 300])
U = contract([120, 121, 123, 126, 127, 129], [10, 600, 800, 900, 1000, 1000], start="2024-03-14")
DATA = {"H": H, "M": M, "U": U}


def test_rolled_by_volume_from_the_day_after_the_next_contract_traded_more():
    # M traded more than H on day 2 (600 > 300): M from day 3. U traded more than M on
    # day 5 (800 > 700; on days 3 and 4, 10 and 600 against 900 and 950): U from day 6.
    es = td.roll_contracts(DATA, {"ES": ["H", "M", "U"]}, adjust=None)["ES"]
    assert es.extra["contract"].tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    # Unadjusted: H's closes, then M's, then U's.
    assert es.close.tolist() == [100, 101, 102, 114, 115, 117, 126, 127, 129]
    assert es.ts.tolist() == pd.date_range("2024-03-11", periods=9, freq="D", tz="UTC").as_unit(
        "ns").asi8.tolist()


def test_the_difference_adjustment_adds_the_gaps_of_later_rolls():
    # The gaps at the last bar held of each: M - H at day 2 = 113 - 102 = 11; U - M at
    # day 5 = 123 - 117 = 6. H's bars + 17, M's + 6, U's as traded.
    es = td.roll_contracts(DATA, {"ES": ["H", "M", "U"]})["ES"]
    assert es.close.tolist() == pytest.approx([117, 118, 119, 120, 121, 123, 126, 127, 129],
                                              **EXACT)
    # Ratio: H's bars x (113 / 102) x (123 / 117), M's x (123 / 117).
    ratio = td.roll_contracts(DATA, {"ES": ["H", "M", "U"]}, adjust="ratio")["ES"]
    m, h = 123 / 117, 113 / 102 * 123 / 117
    assert ratio.close.tolist() == pytest.approx(
        [100 * h, 101 * h, 102 * h, 114 * m, 115 * m, 117 * m, 126, 127, 129], **EXACT)


def test_rolled_by_open_interest_at_each_days_last_bar():
    # Two bars a day (09:00, 15:00); open interest is read at each day's last bar: M's
    # passes H's at day 1's 15:00 (5,000 > 4,000; at 09:00 it was below), so M from day 2.
    # A day's volume would have rolled a day earlier (M's 900 + 900 on day 0).
    times = pd.DatetimeIndex([f"2024-03-{11 + d} {h}:00" for d in range(4) for h in (9, 15)],
                             tz="UTC")

    def intraday(closes, volumes, interest):
        c = np.asarray(closes, dtype=float)
        return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": volumes,
                             "open_interest": interest}, index=times)

    data = {"H": intraday(np.arange(100, 108), [100] * 8,
                          [9e3, 9e3, 8e3, 4e3, 3e3, 2e3, 1e3, 1e3]),
            "M": intraday(np.arange(110, 118), [900] * 8,
                          [1e3, 1e3, 4e3, 5e3, 6e3, 7e3, 8e3, 9e3])}
    es = td.roll_contracts(data, {"ES": ["H", "M"]}, roll="open_interest")["ES"]
    assert es.extra["contract"].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    # The gap at H's last bar held (day 1, 15:00): 113 - 103 = 10.
    assert es.close.tolist() == [110, 111, 112, 113, 114, 115, 116, 117]
    assert es.extra["open_interest"].tolist() == [9e3, 9e3, 8e3, 4e3, 6e3, 7e3, 8e3, 9e3]
    by_volume = td.roll_contracts(data, {"ES": ["H", "M"]})["ES"]
    assert by_volume.extra["contract"].tolist() == [0, 0, 1, 1, 1, 1, 1, 1]


def test_rolled_a_number_of_days_before_a_contracts_last_bar():
    # roll=2: H's last two days (days 3 and 4) are M's; M's last two (5 and 6) are U's.
    es = td.roll_contracts(DATA, {"ES": ["H", "M", "U"]}, roll=2, adjust=None)["ES"]
    assert es.extra["contract"].tolist() == [0, 0, 0, 1, 1, 2, 2, 2, 2]
    assert es.close.tolist() == [100, 101, 102, 114, 115, 123, 126, 127, 129]
    # roll=0: each to its last bar, the next from its first bar after it.
    es = td.roll_contracts(DATA, {"ES": ["H", "M", "U"]}, roll=0, adjust=None)["ES"]
    assert es.extra["contract"].tolist() == [0, 0, 0, 0, 0, 1, 1, 2, 2]


def test_other_symbols_stay_and_the_chain_takes_its_first_contracts_place():
    stock = contract([50, 51, 52, 53, 54, 55, 56, 57, 58], [1] * 9)
    data = td.resolve({"SPY": stock, "M": M, "H": H, "U": U})
    rolled = td.roll_contracts(data, {"ES": ["H", "M", "U"]})
    assert rolled.symbols == ["ES", "SPY"]
    # In the call order the chain takes its first contract's place (H's, after M's).
    assert rolled.call_order == ["SPY", "ES"]
    assert rolled["SPY"].close.tolist() == stock["close"].tolist()


def test_holding_through_the_rolls_earns_each_contracts_points():
    # A buy of 2 at day 1's open (118: H's 101 adjusted) held to the end (129): 2 x 11 x
    # 50 = 1,100 = 2 x 50 x (H's 102 - 101 + M's 117 - 113 + U's 129 - 123).
    es = td.roll_contracts(DATA, {"ES": ["H", "M", "U"]})
    r = run_script(es, {0: buy(2)}, cash=100_000, leverage=20, multiplier=50)
    assert r.fills["price"].tolist() == [118]
    assert r.equity.iloc[-1] == pytest.approx(
        100_000 + 2 * 50 * ((102 - 101) + (117 - 113) + (129 - 123)), **EXACT)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from(["volume", 0, 1, 3]),
       st.sampled_from(["difference", "ratio"]))
def test_each_move_is_the_held_contracts_own(seed, roll, adjust):
    # Four contracts of random walks overlapping by 10 to 20 days, random volumes: between
    # two bars of the series, its move is the held contract's own (at a roll, the new
    # contract's from its close at the roll's measuring bar), in points or as a ratio.
    rng = np.random.default_rng(seed)
    chain, data, start = [], {}, pd.Timestamp("2024-01-01", tz="UTC")
    for k in range(4):
        n = int(rng.integers(30, 60))
        closes = (100 + 10 * k) * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
        volumes = rng.integers(1, 1000, n) * (1 + np.arange(n))  # rising into expiry
        frame = contract(closes, volumes, start=start.date().isoformat())
        data[f"C{k}"] = frame
        chain.append(f"C{k}")
        start = frame.index[-1] - pd.Timedelta(days=int(rng.integers(10, 20)))
    es = td.roll_contracts(data, {"ES": chain}, roll=roll, adjust=adjust)["ES"]
    held = es.extra["contract"].astype(int)
    assert (np.diff(held) >= 0).all() and np.diff(es.ts).min() > 0
    for i in range(1, len(es.ts)):
        frame = data[chain[held[i]]]
        now = frame["close"].asof(pd.Timestamp(int(es.ts[i]), tz="UTC"))
        before = frame["close"].asof(pd.Timestamp(int(es.ts[i - 1]), tz="UTC"))
        if adjust == "difference":
            assert es.close[i] - es.close[i - 1] == pytest.approx(now - before, rel=1e-9, abs=1e-9)
        else:
            assert es.close[i] / es.close[i - 1] == pytest.approx(now / before, rel=1e-9)
    # The last contract's bars are as traded.
    last = data[chain[held[-1]]]["close"]
    assert es.close[-1] == pytest.approx(last.iloc[-1], **EXACT)


def test_bad_chains_are_refused_by_name():
    def refused(match, chains=None, **options):
        with pytest.raises(td.DataError, match=match):
            td.roll_contracts(DATA, chains or {"ES": ["H", "M", "U"]}, **options)

    refused(r"chains\['ES'\]: contract 'N' is not in the data", {"ES": ["H", "N"]})
    refused(r"contract 'M' is in chains\['ES'\] and chains\['ES2'\]",
            {"ES": ["H", "M"], "ES2": ["M", "U"]})
    refused(r"'U' is a symbol of the data already", {"U": ["H", "M"]})
    refused(r"chains\['ES'\] must list its contracts", {"ES": "HMU"})
    refused(r"roll=-1 must be 'volume', the name of an extra column \(open interest\) or a "
            r"whole number of days >= 0", roll=-1)
    refused(r"roll='expiry': contract 'H' has no such column \(its extra columns: none\)",
            roll="expiry")
    refused(r"adjust='add' is not one of 'difference', 'ratio', None", adjust="add")
    # Listed out of order: H has no bar after M's last to roll to.
    refused(r"contract 'H' has no bar after the last of 'M'", {"ES": ["M", "H"]}, roll=0)
    # U starts on day 3; rolled into from H's second day (roll=4), H is held to day 2 and U
    # has no bar then to measure the gap at.
    with pytest.raises(td.DataError, match=r"contract 'U' has no bar at or before 2024-03-13 "
                                           r"00:00:00\+00:00, the last bar of 'H' held"):
        td.roll_contracts({"H": H, "U": U}, {"ES": ["H", "U"]}, roll=4)
    # A difference adjustment taking earlier prices to 0 or below: refused, naming ratio.
    # A's 5 and 10, then B at 1 from day 2: A's bars - 9, to -4.
    falling = {"A": contract([5, 10], [1, 1]), "B": contract([1, 1, 1, 1], [1, 1, 1, 1])}
    with pytest.raises(td.DataError, match=r"'F': adjusting by the differences between contracts "
                                           r"takes its low to -4 at 2024-03-11 00:00:00\+00:00; "
                                           r"prices must stay above 0: take adjust='ratio'"):
        td.roll_contracts(falling, {"F": ["A", "B"]}, roll=0)
    ratio = td.roll_contracts(falling, {"F": ["A", "B"]}, roll=0, adjust="ratio")["F"]
    assert ratio.close.tolist() == pytest.approx([0.5, 1, 1, 1], **EXACT)
