"""The embedded DuckDB store: ingest, list, load with SQL-side filters, errors."""

from __future__ import annotations

import pickle

import exchange_calendars as xc
import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from tickstep.data import DataError, Store

# exchange_calendars, called directly below, uses APIs that recent pandas deprecates.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::FutureWarning")

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


@pytest.fixture(scope="module")
def minute_market():
    # Extended hours across the US DST change (2024-03-10) and Good Friday (2024-03-29).
    return td.sample(6, 20, seed=11, hours="extended", start="2024-03-04")


@pytest.fixture(scope="module")
def store(minute_market):
    s = Store()
    s.ingest(minute_market)
    return s


def assert_same(a: td.MarketColumns, b: td.MarketColumns) -> None:
    assert a.symbols == b.symbols
    for x, y in zip(a.bars, b.bars):
        for name in ("ts", "open", "high", "low", "close", "volume"):
            np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)


def as_frame(bars: td.SymbolBars) -> pd.DataFrame:
    return bars.to_frame()


# --- round trip, re-ingest, conflicts -------------------------------------------------------


def test_round_trip_dataframes_store_columns_identical(tmp_path):
    frames = {
        "AAA": td.sample(["AAA"], 3, seed=1).bars[0].to_frame(),
        "BBB": td.sample(["BBB"], 3, seed=2, missing=3.0).bars[0].to_frame(),
    }
    expected = td.to_market_columns(frames)
    path = tmp_path / "market.duckdb"
    with Store(path) as store:
        assert store.ingest(frames) == expected.n_bars
    with Store(path, read_only=True) as store:
        loaded = store.load()
    assert_same(loaded, expected)
    assert all(b.ts.flags.c_contiguous and b.close.dtype == np.float64 for b in loaded.bars)


def test_reingest_adds_nothing_and_conflicts_are_named(minute_market):
    store = Store()
    assert store.ingest(minute_market) == minute_market.n_bars
    assert store.ingest(minute_market) == 0
    assert store.symbols()["bars"].sum() == minute_market.n_bars

    frame = minute_market.bars[1].to_frame()
    changed = frame.iloc[[5, 9]].copy()
    changed["volume"] += 1.0
    symbol = minute_market.symbols[1]
    with pytest.raises(DataError) as info:
        store.ingest({symbol: pd.concat([changed, frame.iloc[[10]]]).sort_index()})
    message = str(info.value)
    assert "2 row(s) conflict" in message and symbol in message
    assert frame.index[5].isoformat() in message and "replace" in message
    # Nothing was written: the failed ingest was one transaction.
    assert_same(store.load([symbol]), td.to_market_columns({symbol: frame}))

    assert store.ingest({symbol: changed}, on_conflict="replace") == 2
    reloaded = store.load([symbol]).bars[0]
    np.testing.assert_array_equal(reloaded.volume[[5, 9]], changed["volume"].to_numpy())
    assert len(reloaded) == len(frame)


def test_incremental_ingest_out_of_order_still_loads_sorted(minute_market):
    bars = minute_market.bars[0]
    frame = bars.to_frame()
    store = Store()
    store.ingest({bars.symbol: frame.iloc[500:]})
    store.ingest({"OTHER": minute_market.bars[2].to_frame()})
    store.ingest({bars.symbol: frame.iloc[:500]})
    assert_same(store.load([bars.symbol]), td.to_market_columns({bars.symbol: frame}))


def test_symbols_lists_ranges_counts_and_metadata(store, minute_market):
    listing = store.symbols()
    assert list(listing.index) == minute_market.symbols
    for bars in minute_market.bars:
        row = listing.loc[bars.symbol]
        assert row["bars"] == len(bars)
        assert row["first"] == pd.Timestamp(bars.ts[0], tz="UTC")
        assert row["last"] == pd.Timestamp(bars.ts[-1], tz="UTC")
        assert row["sector"] == minute_market.metadata.loc[bars.symbol, "sector"]


def test_load_issues_the_same_two_statements_for_one_or_many_symbols(store, minute_market):
    before = store.queries_executed
    store.load(minute_market.symbols[:1])
    one = store.queries_executed - before
    before = store.queries_executed
    market = store.load(minute_market.symbols, regular_hours=True, timeframe="1h")
    many = store.queries_executed - before
    assert one == many == 2  # one batched metadata query + one bars query for all symbols
    assert list(market.metadata["sector"]) == list(minute_market.metadata["sector"])


# --- SQL-side filters equal pandas ----------------------------------------------------------


def pandas_regular_hours(frame: pd.DataFrame, exchange: str) -> pd.DataFrame:
    cal = xc.get_calendar(exchange, start="2024-01-01", end="2024-12-31")
    local = frame.index.tz_convert(cal.tz)
    day = pd.DatetimeIndex(local.date)
    sched = cal.schedule.reindex(day)
    inside = (frame.index >= sched["open"].to_numpy()) & (frame.index < sched["close"].to_numpy())
    return frame[np.asarray(inside, dtype=bool)]


def test_regular_hours_in_sql_equal_pandas(store, minute_market):
    loaded = store.load(regular_hours=True)
    for raw, got in zip(minute_market.bars, loaded.bars):
        expected = pandas_regular_hours(raw.to_frame(), "XNYS")
        pd.testing.assert_frame_equal(got.to_frame(), expected, check_freq=False)
        local = got.to_frame().index.tz_convert("America/New_York")
        assert local.strftime("%H:%M").min() >= "09:30" and local.strftime("%H:%M").max() < "16:00"
        assert "2024-03-29" not in set(local.strftime("%Y-%m-%d"))


@pytest.mark.parametrize(
    ("timeframe", "end"),
    [("5min", "2024-03-13"), ("1h", "2024-03-13"), ("4h", "2024-03-08"), ("30min", None)],
)
def test_intraday_resampling_in_sql_equals_pandas(store, minute_market, timeframe, end):
    # Buckets align on each local midnight; pandas keeps absolute steps from the first
    # one, so for steps over an hour the two agree only away from a DST change.
    loaded = store.load(timeframe=timeframe, start="2024-03-06", end=end)
    for raw, got in zip(minute_market.bars, loaded.bars):
        frame = raw.to_frame().loc["2024-03-06":end]
        local = frame.tz_convert("America/New_York")
        expected = local.resample(timeframe).agg(AGG).dropna().tz_convert("UTC")
        pd.testing.assert_frame_equal(
            got.to_frame(), expected, check_freq=False, check_names=False, check_index_type=False
        )


def test_daily_resampling_of_regular_hours_equals_pandas(store, minute_market):
    loaded = store.load(regular_hours=True, timeframe="1D")
    for raw, got in zip(minute_market.bars, loaded.bars):
        rth = pandas_regular_hours(raw.to_frame(), "XNYS").tz_convert("America/New_York")
        expected = rth.resample("1D").agg(AGG).dropna()
        expected.index = expected.index.tz_localize(None).tz_localize("UTC")
        pd.testing.assert_frame_equal(
            got.to_frame(), expected, check_freq=False, check_names=False, check_index_type=False
        )


def test_date_range_is_inclusive_and_dates_cover_whole_days(store, minute_market):
    loaded = store.load(start="2024-03-07", end="2024-03-08")
    for raw, got in zip(minute_market.bars, loaded.bars):
        expected = raw.to_frame().loc["2024-03-07":"2024-03-08"]
        pd.testing.assert_frame_equal(got.to_frame(), expected, check_freq=False)
    exact = store.load(start="2024-03-07 14:30", end="2024-03-07 14:35")
    assert all(len(b) <= 6 for b in exact.bars)
    assert pd.Timestamp(exact.bars[0].ts[-1], tz="UTC") <= pd.Timestamp("2024-03-07 14:35Z")


def test_lunch_breaks_and_other_timezones():
    market = td.sample(2, 3, seed=4, hours="24h", start="2024-03-27", missing=0)
    store = Store()
    store.ingest(market)
    store.ingest_metadata(pd.DataFrame({"symbol": market.symbols, "exchange": ["XHKG", "XLON"]}))
    meta = store.metadata()
    assert list(meta["timezone"]) == ["Asia/Hong_Kong", "Europe/London"]
    loaded = store.load(regular_hours=True)
    for raw, got, ex in zip(market.bars, loaded.bars, ["XHKG", "XLON"]):
        cal = xc.get_calendar(ex, start="2024-03-20", end="2024-04-05")
        frame = raw.to_frame()
        keep = np.zeros(len(frame), dtype=bool)
        for _, s in cal.schedule.loc["2024-03-27":"2024-03-29"].iterrows():
            inside = (frame.index >= s["open"]) & (frame.index < s["close"])
            if pd.notna(s["break_start"]):
                inside &= ~((frame.index >= s["break_start"]) & (frame.index < s["break_end"]))
            keep |= inside
        pd.testing.assert_frame_equal(got.to_frame(), frame[keep], check_freq=False)
    daily = store.load(timeframe="1D")
    london = raw.to_frame().tz_convert("Europe/London").resample("1D").agg(AGG).dropna()
    london.index = london.index.tz_localize(None).tz_localize("UTC")
    pd.testing.assert_frame_equal(
        daily.bars[1].to_frame(),
        london,
        check_freq=False,
        check_names=False,
        check_index_type=False,
    )


def test_a_session_crossing_an_offset_change_resamples_in_both_offsets():
    # A round-the-clock calendar (sessions are UTC days) for a symbol kept in New York
    # time: the DST change at 07:00 UTC on 2024-03-10 falls inside a session, which the
    # filter cuts in two, each part with its own UTC offset.
    market = td.sample(["NYC"], 3, seed=6, hours="24h", start="2024-03-09", missing=0)
    store = Store()
    store.ingest(market)
    store.ingest_metadata(
        pd.DataFrame({"symbol": ["NYC"], "exchange": ["24/7"], "timezone": ["America/New_York"]})
    )
    for timeframe in ("1h", "30min"):
        got = store.load(regular_hours=True, timeframe=timeframe).bars[0].to_frame()
        local = market.bars[0].to_frame().tz_convert("America/New_York")
        expected = local.resample(timeframe).agg(AGG).dropna().tz_convert("UTC")
        pd.testing.assert_frame_equal(
            got, expected, check_freq=False, check_names=False, check_index_type=False
        )


def test_filtered_load_work_grows_with_the_days_not_their_square():
    # The join table of a filtered load holds one row per (group, unit) of the days
    # loaded: regular minutes of each session, not sessions x offset slots.
    from tickstep.data._calendars import filter_spans
    from tickstep.data._request import parse_timeframe

    meta = pd.DataFrame(
        {"symbol": ["A", "B"], "exchange": ["XNYS", "XNYS"], "timezone": [None, None]}
    )
    for days in (30, 120):
        first = pd.Timestamp("2024-01-02", tz="UTC").value
        last = first + days * 86_400 * 10**9
        spans = filter_spans(
            meta,
            regular_hours=True,
            timeframe=parse_timeframe("15min"),
            first_ns=first,
            last_ns=last,
        )
        units = int((spans.end - spans.start).sum()) // spans.unit_ns
        assert list(spans.group_of) == [0, 0]  # one group: same exchange, same timezone
        assert units <= 390 * (days + 4)  # regular minutes of the sessions, no more


# --- files ----------------------------------------------------------------------------------


def test_ingest_csv_and_parquet_files(tmp_path, minute_market):
    long = minute_market.to_frame()
    long.to_parquet(tmp_path / "bars.parquet")
    one = minute_market.bars[0].to_frame().reset_index()
    one.to_csv(tmp_path / "SOLO.csv.gz", index=False)
    store = Store()
    assert store.ingest(tmp_path / "bars.parquet") == minute_market.n_bars
    assert store.ingest(str(tmp_path / "SOLO.csv.gz")) == len(one)
    solo = store.load("SOLO").bars[0]
    np.testing.assert_allclose(solo.close, minute_market.bars[0].close)
    np.testing.assert_array_equal(solo.ts, minute_market.bars[0].ts)


def write(path, text: str):
    path.write_text(text)
    return path


HEADER = "symbol,ts,open,high,low,close,volume\n"
ROW = "A,2024-01-02 14:3{m},10,11,9,10.5,100\n"


def test_malformed_short_and_long_csv_rows_name_file_and_line(tmp_path):
    store = Store()
    short = write(tmp_path / "short.csv", HEADER + ROW.format(m=0) + "A,2024-01-02 14:31,10,11\n")
    with pytest.raises(DataError, match=r"short\.csv', line 3: malformed CSV row.*got 4"):
        store.ingest(short)
    long = write(tmp_path / "long.csv", HEADER + ROW.format(m=0) + ROW.format(m=1)[:-1] + ",7\n")
    with pytest.raises(DataError, match=r"long\.csv', line 3"):
        store.ingest(long)


def test_wrong_types_and_duplicates_in_csv_name_file_and_line(tmp_path):
    store = Store()
    bad = HEADER + ROW.format(m=0) + ROW.format(m=1) + "A,2024-01-02 14:32,10,11,9,ten,100\n"
    with pytest.raises(DataError) as info:
        store.ingest(write(tmp_path / "types.csv", bad))
    assert "types.csv', line 4" in str(info.value) and "'ten'" in str(info.value)
    dup = HEADER + ROW.format(m=0) + ROW.format(m=1) + ROW.format(m=1)
    with pytest.raises(DataError) as info:
        store.ingest(write(tmp_path / "dup.csv", dup))
    assert "dup.csv', line 4" in str(info.value) and "symbol 'A'" in str(info.value)
    with pytest.raises(DataError, match="does not exist"):
        store.ingest(tmp_path / "missing.csv")
    assert len(store.symbols()) == 0


# --- errors ---------------------------------------------------------------------------------


def test_unknown_symbols_and_empty_results_are_named(store):
    with pytest.raises(DataError, match=r"not in the store: 'NOPE', 'ZZZ'"):
        store.load(["NOPE", store.symbols().index[0], "ZZZ"])
    with pytest.raises(DataError, match=r"no bars for symbol\(s\).*start='2030-01-01'"):
        store.load(start="2030-01-01")
    with pytest.raises(DataError, match="start='2024-03-08' is after end='2024-03-07'"):
        store.load(start="2024-03-08", end="2024-03-07")
    with pytest.raises(DataError, match="timeframe"):
        store.load(timeframe="7min")
    with pytest.raises(DataError, match="timeframe"):
        store.load(timeframe="banana")


def test_unknown_timezone_or_exchange_named():
    store = Store()
    with pytest.raises(DataError, match=r"row 1: symbol 'B' has unknown timezone 'Mars/Olympus'"):
        store.ingest_metadata(
            pd.DataFrame({"symbol": ["A", "B"], "timezone": ["UTC", "Mars/Olympus"]})
        )
    with pytest.raises(DataError, match=r"symbol 'A' has unknown exchange 'NOWHERE'"):
        store.ingest_metadata(pd.DataFrame({"symbol": ["A"], "exchange": ["NOWHERE"]}))
    store.ingest({"A": td.sample(["A"], 1, seed=1).bars[0].to_frame()})
    with pytest.raises(DataError, match="regular_hours needs each symbol's exchange"):
        store.load(regular_hours=True)


def test_user_values_reach_sql_only_as_parameters():
    nasty = "X'); DROP TABLE bars; --"
    store = Store()
    frame = td.sample(["A"], 1, seed=3).bars[0].to_frame()
    store.ingest({nasty: frame})
    store.ingest_metadata(pd.DataFrame({"symbol": [nasty], "sector": ['O\'Reilly "quoted"']}))
    loaded = store.load([nasty])
    assert loaded.symbols == [nasty]
    assert loaded.metadata.loc[nasty, "sector"] == 'O\'Reilly "quoted"'
    with pytest.raises(DataError, match="plain lower-case name"):
        store.ingest_metadata(pd.DataFrame({"symbol": ["A"], 'x" varchar); --': [1]}))


def test_new_metadata_columns_and_no_erasing_with_missing_values():
    store = Store()
    store.ingest_metadata(pd.DataFrame({"symbol": ["A", "B"], "sector": ["Energy", "Tech"]}))
    store.ingest_metadata(
        pd.DataFrame({"symbol": ["A", "B"], "sector": [None, "Health"], "market_cap": [1e9, 2e9]})
    )
    meta = store.metadata()
    assert list(meta["sector"]) == ["Energy", "Health"]
    assert list(meta["market_cap"]) == [1e9, 2e9]


def test_store_pickles_by_path(tmp_path, minute_market):
    path = tmp_path / "p.duckdb"
    with Store(path) as s:
        s.ingest(minute_market)
    reader = Store(path, read_only=True)
    clone = pickle.loads(pickle.dumps(reader))
    assert clone.read_only and clone.path == str(path)
    assert_same(clone.load(minute_market.symbols[:2]), reader.load(minute_market.symbols[:2]))
    with pytest.raises(TypeError):
        pickle.dumps(Store())


def test_top_level_load_from_path(tmp_path, minute_market):
    path = tmp_path / "m.duckdb"
    with Store(path) as s:
        s.ingest(minute_market)
    market = td.load(path, minute_market.symbols[:3], timeframe="1D")
    assert market.symbols == minute_market.symbols[:3]
    with pytest.raises(DataError, match="does not exist"):
        td.load(tmp_path / "nope.duckdb")


def test_bars_files_behind_the_load_interface(tmp_path, minute_market):
    path = tmp_path / "bars.parquet"
    minute_market.to_frame().to_parquet(path)
    source = td.open_store(str(path))
    assert isinstance(source, td.BarsFile)
    picked = source.load(minute_market.symbols[1:3], start="2024-03-07", end="2024-03-08")
    with Store() as store:
        store.ingest(minute_market)
        assert_same(
            picked, store.load(minute_market.symbols[1:3], start="2024-03-07", end="2024-03-08")
        )
    assert td.load(path).n_bars == minute_market.n_bars
    with pytest.raises(tickstep.ConfigError, match="ingest the data into a store first"):
        td.load(path, regular_hours=True)
    with pytest.raises(DataError, match="not in file .*bars.parquet': 'NOPE'"):
        source.load(["NOPE"])
