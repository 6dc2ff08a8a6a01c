"""The door: every input shape becomes validated columns, or is refused precisely."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from tickstep.data import DataError, MarketColumns, SymbolBars, to_market_columns

MINUTE = 60_000_000_000


def bars_frame(n: int = 5, start: str = "2024-01-02 14:30", seed: int = 0, tz=None):
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = np.concatenate(([100.0], close[:-1]))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n))
    volume = rng.integers(0, 1000, n).astype(float)
    index = pd.date_range(start, periods=n, freq="min", tz=tz, name="ts")
    return pd.DataFrame(
        {"open": open_, "high": high, "low": low, "close": close, "volume": volume}, index=index
    )


def refused(data, **kw) -> DataError:
    with pytest.raises(DataError) as info:
        to_market_columns(data, **kw)
    return info.value


# --- round trip and shapes -------------------------------------------------------------


def test_round_trip_values_are_identical():
    df = bars_frame(50)
    market = to_market_columns({"XYZ": df})
    bars = market.bars[0]
    assert bars.symbol == "XYZ"
    assert bars.ts.dtype == np.int64 and bars.ts.flags.c_contiguous
    np.testing.assert_array_equal(bars.ts, df.index.as_unit("ns").asi8)
    for name in ("open", "high", "low", "close", "volume"):
        col = getattr(bars, name)
        assert col.dtype == np.float64 and col.flags.c_contiguous
        assert not col.flags.writeable
        np.testing.assert_array_equal(col, df[name].to_numpy())
    pd.testing.assert_frame_equal(
        bars.to_frame(), df.tz_localize("UTC"), check_freq=False, check_index_type=False
    )


def test_columns_are_copies_not_views_of_the_input():
    df = bars_frame(5)
    market = to_market_columns({"A": df})
    df.loc[df.index[0], "close"] = 1e9
    assert market.bars[0].close[0] != 1e9


def test_three_input_shapes_agree():
    frames = {"BBB": bars_frame(20, seed=1), "AAA": bars_frame(30, seed=2)}
    from_mapping = to_market_columns(frames)
    long = pd.concat(
        [f.reset_index().assign(symbol=s) for s, f in frames.items()], ignore_index=True
    )
    from_long = to_market_columns(long)
    # Interleaved symbols (each symbol still in time order) give the same columns.
    interleaved = long.sort_values(["ts", "symbol"], kind="stable").reset_index(drop=True)
    from_interleaved = to_market_columns(interleaved)
    multi = long.set_index(["symbol", "ts"])
    from_multi = to_market_columns(multi)
    single = frames["AAA"].copy()
    single.attrs["symbol"] = "AAA"
    from_single = to_market_columns(single)

    assert from_mapping.symbols == ["AAA", "BBB"]
    for other in (from_long, from_interleaved, from_multi):
        assert other.symbols == from_mapping.symbols
        for a, b in zip(from_mapping.bars, other.bars):
            for name in ("ts", "open", "high", "low", "close", "volume"):
                np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(from_single.bars[0].close, from_mapping.bars[0].close)
    assert from_single.symbols == ["AAA"]


def test_single_frame_default_symbol_and_passthrough():
    market = to_market_columns(bars_frame(3))
    assert market.symbols == ["ASSET"]
    assert to_market_columns(market) is market


def test_case_insensitive_names_and_timestamp_columns():
    df = bars_frame(4).reset_index()
    df.columns = ["Date", "Open", "HIGH", "low", "Close", "VoLuMe"]
    market = to_market_columns({"A": df})
    np.testing.assert_array_equal(market.bars[0].high, df["HIGH"].to_numpy())
    for name in ("TS", "Timestamp", "time", "DateTime", "date"):
        renamed = df.rename(columns={"Date": name})
        assert len(to_market_columns({"A": renamed}).bars[0]) == 4
    # Extra columns are ignored.
    assert len(to_market_columns({"A": df.assign(**{"Adj Close": 1.0})}).bars[0]) == 4


def test_string_timestamps_are_parsed():
    df = bars_frame(3).reset_index()
    df["ts"] = df["ts"].dt.strftime("%Y-%m-%d %H:%M:%S")
    bars = to_market_columns({"A": df}).bars[0]
    np.testing.assert_array_equal(bars.ts, bars_frame(3).index.as_unit("ns").asi8)


def test_metadata_aligned_to_symbols():
    meta = pd.DataFrame({"symbol": ["B", "A", "Z"], "sector": ["Energy", "Tech", "Other"]})
    market = to_market_columns({"A": bars_frame(2), "B": bars_frame(2)}, metadata=meta)
    assert list(market.metadata.index) == ["A", "B"]
    assert list(market.metadata["sector"]) == ["Tech", "Energy"]


# --- time zones ---------------------------------------------------------------------------


def test_naive_is_utc_and_aware_is_converted():
    naive = to_market_columns({"A": bars_frame(3, start="2024-01-02 14:30")})
    aware = to_market_columns({"A": bars_frame(3, start="2024-01-02 09:30", tz="America/New_York")})
    np.testing.assert_array_equal(naive.bars[0].ts, aware.bars[0].ts)


def test_mixed_awareness_across_symbols_is_refused():
    err = refused(
        {"A": bars_frame(3), "B": bars_frame(3, start="2024-01-02 09:30", tz="America/New_York")}
    )
    assert "'A'" in str(err) and "'B'" in str(err) and "naive" in str(err)


def test_mixed_awareness_within_a_column_is_refused():
    df = bars_frame(3).reset_index()
    df["ts"] = ["2024-01-02 14:30", "2024-01-02 14:31+00:00", "2024-01-02 14:32"]
    err = refused({"A": df})
    assert err.symbol == "A" and err.row == 1 and "naive" in str(err)


def test_mixed_offsets_all_aware_are_converted():
    df = bars_frame(2).reset_index()
    df["ts"] = ["2024-03-08 09:30-05:00", "2024-03-11 09:30-04:00"]
    bars = to_market_columns({"A": df}).bars[0]
    assert list(pd.to_datetime(bars.ts, utc=True).hour) == [14, 13]


# --- each rule is refused, naming symbol, row and timestamp -------------------------------


def broken(column: str, row: int, value) -> pd.DataFrame:
    df = bars_frame(6)
    df.iloc[row, df.columns.get_loc(column)] = value
    return df


@pytest.mark.parametrize(
    ("column", "row", "value", "rule"),
    [
        ("open", 2, np.nan, "open finite"),
        ("close", 3, np.inf, "close finite"),
        ("volume", 1, np.nan, "volume finite"),
        ("high", 4, -np.inf, "high finite"),
        ("low", 2, 0.0, "low > 0"),
        ("volume", 5, -1.0, "volume >= 0"),
        ("high", 3, 1.0, "high >= low"),
        ("open", 1, 1e6, "low <= open <= high"),
        ("close", 4, 1e-3, "low <= close <= high"),
    ],
)
def test_value_rules(column, row, value, rule):
    df = broken(column, row, value)
    err = refused({"SYM": df})
    assert err.symbol == "SYM" and err.row == row and err.rule == rule
    assert err.timestamp == df.index[row].tz_localize("UTC")
    message = str(err)
    assert "'SYM'" in message and f"row {row}" in message and rule in message
    assert df.index[row].strftime("%Y-%m-%dT%H:%M") in message


def test_negative_prices_refused():
    df = bars_frame(4)
    df.iloc[2] = [-1.0, -0.5, -2.0, -1.0, 10.0]
    err = refused({"N": df})
    assert err.row == 2 and err.rule == "open > 0"


def test_unsorted_and_duplicate_timestamps():
    df = bars_frame(5)
    unsorted = df.iloc[[0, 1, 3, 2, 4]]
    err = refused({"U": unsorted})
    assert (err.row, err.rule) == (3, "timestamps increasing")
    assert "never sorted" in str(err)
    dup = df.iloc[[0, 1, 1, 2]]
    err = refused({"D": dup})
    assert (err.row, err.rule) == (2, "unique timestamps")


def test_long_frame_rows_are_positions_in_the_input():
    a = bars_frame(4, seed=1).reset_index().assign(symbol="A")
    b = bars_frame(4, seed=2).reset_index().assign(symbol="B")
    long = pd.concat([a, b]).sort_values(["ts", "symbol"], kind="stable")
    long = long.reset_index(drop=True)
    bad_row = int(np.flatnonzero((long["symbol"] == "B").to_numpy())[2])
    long.loc[bad_row, "volume"] = -5.0
    err = refused(long)
    assert err.symbol == "B" and err.row == bad_row


def test_duplicate_symbol_timestamp_in_long_frame():
    a = bars_frame(3).reset_index().assign(symbol="A")
    long = pd.concat([a, a.iloc[[1]]], ignore_index=True)
    err = refused(long)
    assert err.symbol == "A" and err.row == 3 and err.rule == "timestamps increasing"


def test_empty_inputs():
    assert "no symbols" in str(refused({}))
    err = refused({"E": bars_frame(0)})
    assert err.symbol == "E" and "no rows" in str(err)
    long = bars_frame(0).reset_index().assign(symbol="A")
    assert "no rows" in str(refused(long))


def test_missing_columns():
    err = refused({"M": bars_frame(3).drop(columns=["volume"])})
    assert err.symbol == "M" and "volume" in str(err) and "required" in str(err)
    err = refused({"M": bars_frame(3).drop(columns=["high", "low"])})
    assert "high, low" in str(err)


def test_missing_timestamps():
    df = bars_frame(3).reset_index(drop=True)
    assert "no timestamps" in str(refused({"T": df}))
    df = bars_frame(3).reset_index()
    df["ts"] = np.arange(3)
    assert "ambiguous" in str(refused({"T": df}))
    with_nat = bars_frame(3)
    with_nat.index = pd.DatetimeIndex([with_nat.index[0], pd.NaT, with_nat.index[2]])
    err = refused({"T": with_nat})
    assert err.row == 1 and err.rule == "timestamp present"


def test_non_numeric_column():
    df = bars_frame(4)
    df["close"] = df["close"].astype(object)
    df.iloc[2, df.columns.get_loc("close")] = "n/a"
    err = refused({"S": df})
    assert err.symbol == "S" and err.row == 2 and "numeric" in str(err) and "'n/a'" in str(err)
    df = bars_frame(3).assign(volume=[True, False, True])
    assert "numeric" in str(refused({"S": df}))


def test_unreadable_timestamp_string():
    df = bars_frame(3).reset_index()
    df["ts"] = ["2024-01-02 14:30", "not a time", "2024-01-02 14:32"]
    err = refused({"S": df})
    assert err.row == 1 and "not a time" in str(err)


def test_ambiguous_columns_refused():
    df = bars_frame(3)
    df["Close"] = df["close"]
    assert "differ only by case" in str(refused({"A": df}))
    df = bars_frame(3)
    df["date"] = df.index
    assert "more than one place" in str(refused({"A": df}))


def test_nullable_dtypes_and_integer_volume():
    df = bars_frame(3)
    df["volume"] = pd.array([1, 2, 3], dtype="Int64")
    assert to_market_columns({"A": df}).bars[0].volume.dtype == np.float64
    df["volume"] = pd.array([1, None, 3], dtype="Int64")
    assert refused({"A": df}).rule == "volume finite"


def test_symbol_bars_validate_on_construction():
    ts = np.array([0, MINUTE, 2 * MINUTE])
    good = {
        "open": np.array([1.0, 1, 1]),
        "high": np.array([2.0, 2, 2]),
        "low": np.array([0.5, 0.5, 0.5]),
        "close": np.array([1.0, 1, 1]),
        "volume": np.array([1.0, 1, 1]),
    }
    assert len(SymbolBars("X", ts, **good)) == 3
    with pytest.raises(DataError, match="unique timestamps"):
        SymbolBars("X", np.array([0, 0, MINUTE]), **good)
    with pytest.raises(DataError, match="int64"):
        SymbolBars("X", ts.astype(float), **good)
    with pytest.raises(DataError, match="sorted"):
        b = SymbolBars("B", ts, **good)
        a = SymbolBars("A", ts, **good)
        MarketColumns([b, a])
