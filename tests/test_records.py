"""Analysis tables (records): store round trips, one statement per table, what a strategy
sees at each tick (checked against pandas), visibility by perturbation, and a strategy
ranking entries by the nearest zone checked against a merge_asof reference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from records_support import (
    STORE_KINDS,
    count_statements,
    make_zones,
    open_store,
    reference_sets,
)

FIELDS = ["level", "upper", "lower", "strength", "zone_type", "first_touch", "last_touch"]


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(symbols=4, days=60, seed=3)


@pytest.fixture(scope="module")
def zones(market):
    return make_zones(market, every=4, seed=5)


@pytest.fixture(params=STORE_KINDS)
def store(request, market, zones):
    opened, drop = open_store(request.param)
    opened.ingest(market)
    opened.ingest_records("zones", zones)
    yield opened
    drop()


class Logger(tickstep.Strategy):
    """Logs what ``self.records`` answers at every call."""

    def init(self):
        self.log = []

    def next(self, symbol):
        z = self.records("zones")
        self.log.append((symbol, self.now, z.ts, z.frame()))


def _same_rows(seen: pd.DataFrame, expected: pd.DataFrame) -> None:
    expected = expected[FIELDS].reset_index(drop=True)
    expected["strength"] = expected["strength"].astype("int64")
    pd.testing.assert_frame_equal(seen.reset_index(drop=True), expected, check_dtype=False)


def _check_log(log, zones):
    assert log
    for symbol, now, key, frame in log:
        ref = reference_sets(zones, symbol, now)
        if ref.empty:
            assert key is None and frame.empty
            continue
        assert key is not None and key <= now  # never a record stamped after now
        assert key == int(ref["ts"].iloc[0].value)
        _same_rows(frame, ref)


# ---- the store ---------------------------------------------------------------------------


def test_store_round_trip_keeps_kinds_order_and_values(store, zones):
    table = store.load_records("zones")
    assert table.kinds == {"level": "float", "upper": "float", "lower": "float",
                           "strength": "int", "zone_type": "string",
                           "first_touch": "timestamp", "last_touch": "timestamp"}
    back = table.frame()
    want = zones.sort_values(["symbol", "ts"], kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(back[["symbol", "ts"]], want[["symbol", "ts"]], check_dtype=False)
    _same_rows(back[FIELDS], want)
    listing = store.record_tables()
    assert listing.loc["zones", "records"] == len(zones)
    assert listing.loc["zones", "keys"] == len(zones[["symbol", "ts"]].drop_duplicates())
    assert listing.loc["zones", "symbols"] == zones["symbol"].nunique()
    # The same records again add nothing.
    assert store.ingest_records("zones", zones) == 0


def test_a_backtest_loads_each_table_in_one_statement(store, market, zones):
    levels = zones[["symbol", "ts", "level"]].rename(columns={"level": "price"})
    store.ingest_records("levels", levels)
    counts = []
    middle = pd.Timestamp(int(market.bars[0].ts[30]), tz="UTC")
    for symbols, start in ((None, None), (market.symbols[:2], None), (market.symbols[:1], None),
                           (None, middle)):
        counted = count_statements(store)
        try:
            bt = tickstep.Backtest(store, Logger, records=["zones", "levels"], symbols=symbols,
                                   start=start)
        finally:
            store._con = counted._con
        # metadata, bars, one per record table -- whatever the symbols and timestamps
        record_statements = [s for s in counted.statements if "records_" in s]
        assert len(record_statements) == 2, counted.statements
        assert any('"records_zones"' in s for s in record_statements)
        assert any('"records_levels"' in s for s in record_statements)
        counts.append(len(counted.statements))
        assert set(bt.records) == {"zones", "levels"}
    assert counts == [4, 4, 4, 4]
    # The store's own counter says the same.
    before = store.queries_executed
    tickstep.Backtest(store, Logger, records=["zones"])
    assert store.queries_executed - before == 3


def test_what_a_strategy_sees_matches_pandas(store, zones):
    result = tickstep.Backtest(store, Logger, records=["zones"]).run()
    _check_log(result.strategy.log, zones)


def test_records_before_start_are_in_force_at_the_first_tick(store, market, zones):
    start = pd.Timestamp(int(market.bars[0].ts[10]), tz="UTC")
    keys = zones["ts"]
    assert (keys < start).any() and not (keys == start).all()
    result = tickstep.Backtest(store, Logger, records=["zones"], start=start).run()
    log = result.strategy.log
    first = [entry for entry in log if entry[1] == log[0][1]]
    assert all(key is not None and key < start.value for _, _, key, _ in first)
    _check_log(log, zones)
    # The store's records and the same records in memory give the same answers.
    memory = tickstep.Backtest(market, Logger, records={"zones": zones}, start=start).run()
    assert [e[:3] for e in memory.strategy.log] == [e[:3] for e in log]


def test_store_and_memory_give_identical_backtests(store, market, zones):
    a = tickstep.Backtest(store, NearestZone, records=["zones"], cash=100_000).run()
    b = tickstep.Backtest(market, NearestZone, records={"zones": zones}, cash=100_000).run()
    assert a.strategy.picks == b.strategy.picks
    pd.testing.assert_frame_equal(a.fills, b.fills)
    assert a.stats.equals(b.stats)


def test_replace_swaps_a_keys_whole_set(store, zones):
    key = zones.iloc[[0]][["symbol", "ts"]]
    new = key.assign(level=1.0, upper=2.0, lower=0.5, strength=3, zone_type="support",
                     first_touch=zones["first_touch"].iloc[0],
                     last_touch=zones["last_touch"].iloc[0])
    with pytest.raises(td.DataError, match="already stored with different records") as err:
        store.ingest_records("zones", new)
    assert err.value.rule == "no conflicting keys"
    assert store.ingest_records("zones", new, on_conflict="replace") == 1
    table = store.load_records("zones", [key["symbol"].iloc[0]])
    frame = table.frame()
    mine = frame[frame["ts"] == key["ts"].iloc[0]]
    assert mine["level"].tolist() == [1.0]  # the old set (several zones) is gone
    old = zones[(zones["symbol"] == key["symbol"].iloc[0]) & (zones["ts"] == key["ts"].iloc[0])]
    assert len(old) >= 1
    assert store.record_tables().loc["zones", "records"] == len(zones) - len(old) + 1


def test_files_ingest_and_feed_a_backtest(tmp_path, market, zones):
    csv, parquet = tmp_path / "zones.csv", tmp_path / "zones.parquet"
    zones.to_csv(csv, index=False)
    zones.to_parquet(parquet)
    store = td.Store()
    store.ingest(market)
    assert store.ingest_records("zones", parquet) == len(zones)
    assert store.ingest_records("zones", csv) == 0  # same records from the CSV
    result = tickstep.Backtest(market, Logger, records={"zones": csv}).run()
    _check_log(result.strategy.log, zones)


# ---- in memory -------------------------------------------------------------------------


def test_records_between_bars_show_from_the_next_bar(market):
    zones = make_zones(market, every=5, seed=2, shift="6h")
    result = tickstep.Backtest(market, Logger, records={"zones": zones}).run()
    log = result.strategy.log
    _check_log(log, zones)
    first_key = int(zones["ts"].iloc[0].value)
    symbol = zones["symbol"].iloc[0]
    mine = [(now, key) for s, now, key, _ in log if s == symbol]
    assert mine[0][1] is None  # nothing before the first key
    seen = next(now for now, key in mine if key == first_key)
    assert seen == first_key + 18 * 3_600_000_000_000  # the next daily bar, not earlier


def test_record_set_reads_like_columns(market, zones):
    captured = {}

    class Capture(tickstep.Strategy):
        def next(self, symbol):
            z = self.records("zones", symbol)
            if z and symbol not in captured:
                captured[symbol] = (z, self.now)

    tickstep.Backtest(market, Capture, records={"zones": zones}).run()
    z, now = captured[market.symbols[0]]
    ref = reference_sets(zones, market.symbols[0], now)
    assert len(z) == len(ref) and z.fields == tuple(FIELDS)
    np.testing.assert_array_equal(z.level, ref["level"].to_numpy())
    assert z["zone_type"].tolist() == ref["zone_type"].tolist()
    assert z.first_touch.dtype == np.int64
    np.testing.assert_array_equal(z.first_touch, ref["first_touch"].astype("int64").to_numpy())
    assert z.time == ref["ts"].iloc[0]
    rows = list(z)
    assert rows[0].level == ref["level"].iloc[0] and rows[0].zone_type == ref["zone_type"].iloc[0]
    with pytest.raises(ValueError):
        z.level[0] = 0.0  # read-only: a strategy cannot change the table
    with pytest.raises(AttributeError, match="did you mean 'level'"):
        z.levle  # noqa: B018
    assert isinstance(z.frame()["first_touch"].dtype, pd.DatetimeTZDtype)


def test_empty_set_before_the_first_key(market, zones):
    late = zones[zones["ts"] >= zones["ts"].iloc[0] + pd.Timedelta("20D")]
    seen = []

    class First(tickstep.Strategy):
        def next(self, symbol):
            if not seen:
                z = self.records("zones")
                seen.append(z)

    tickstep.Backtest(market, First, records={"zones": late}).run()
    z = seen[0]
    assert len(z) == 0 and not z and z.time is None and z.ts is None
    assert z.level.dtype == np.float64 and len(z.level) == 0
    assert list(z.frame().columns) == FIELDS


def test_one_symbol_records_without_a_symbol_column(bars):
    frame = bars([(10, 11, 9, 10.5)] * 6)
    notes = pd.DataFrame({"ts": frame.index[[1, 1, 4]], "level": [1.0, 2.0, 3.0]})
    seen = []

    class Read(tickstep.Strategy):
        def next(self, symbol):
            seen.append(self.records("notes").level.tolist())

    tickstep.Backtest(frame, Read, records={"notes": notes}).run()
    assert seen == [[], [1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [3.0], [3.0]]


def test_records_in_on_tick_name_the_symbol(market, zones):
    seen = []

    class Tick(tickstep.Strategy):
        def on_tick(self):
            seen.append(len(self.records("zones", self.symbols[1])))

    tickstep.Backtest(market, Tick, records={"zones": zones}).run()
    assert any(seen)

    class Unnamed(tickstep.Strategy):
        def on_tick(self):
            self.records("zones")

    with pytest.raises(tickstep.UnknownSymbolError, match="no symbol is running"):
        tickstep.Backtest(market, Unnamed, records={"zones": zones}).run()


def test_selected_symbols_leave_other_symbols_records_out(market, zones):
    bt = tickstep.Backtest(market, Logger, records={"zones": zones}, symbols=market.symbols[:2])
    assert bt.records["zones"].symbols == market.symbols[:2]
    _check_log(bt.run().strategy.log, zones)


# ---- visibility by perturbation ----------------------------------------------------------------


class ZoneTrader(tickstep.Strategy):
    """Buys near a support zone, sells above the strongest resistance; logs decisions."""

    def init(self):
        self.decisions = []

    def next(self, symbol):
        z = self.records("zones")
        price = self.price()
        if not z:
            self.decisions.append((self.now, symbol, "none"))
            return
        support = z.zone_type == "support"
        near = bool(np.any(support & (z.lower <= price) & (price <= z.upper * 1.01)))
        above = bool(np.any(~support & (price > z.upper)))
        summary = (round(float(z.level.sum()), 9), int(z.strength.sum()), len(z))
        self.decisions.append((self.now, symbol, near, above, summary))
        if near and not self.position:
            self.buy(size=10)
        elif above and self.position:
            self.position.close()


@pytest.fixture(scope="module")
def small_market():
    return td.sample_daily(symbols=3, days=50, seed=11)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_records_stamped_after_t_never_change_decisions_up_to_t(small_market, data):
    market = small_market
    seed = data.draw(st.integers(0, 2**16), label="seed")
    zones = make_zones(market, every=data.draw(st.integers(1, 6), label="every"), seed=seed)
    timeline = np.unique(np.concatenate([b.ts for b in market.bars]))
    cut = int(timeline[data.draw(st.integers(0, len(timeline) - 2), label="cut")])
    after = zones["ts"].astype("int64") > cut
    rng = np.random.default_rng(seed + 1)
    later = zones[after].copy()
    later["level"] *= rng.uniform(0.9, 1.1, len(later))
    later["upper"] = later["level"] * 1.01
    later["zone_type"] = rng.choice(["support", "resistance"], len(later))
    later = later.sample(frac=data.draw(st.floats(0.0, 1.0), label="kept"), random_state=seed)
    # extra keys after the cut, some between bars
    extra = make_zones(market, every=2, seed=seed + 2, shift="3h")
    extra = extra[extra["ts"].astype("int64") > cut]
    perturbed = pd.concat([zones[~after], later, extra]).sort_values(["symbol", "ts"], kind="stable")

    def run(records):
        return tickstep.Backtest(market, ZoneTrader, records={"zones": records}, cash=1e6).run()

    a, b = run(zones), run(perturbed)
    upto = [d for d in a.strategy.decisions if d[0] <= cut]
    assert upto == [d for d in b.strategy.decisions if d[0] <= cut]
    fills_a = a.fills[a.fills["time"].astype("int64") <= cut]
    fills_b = b.fills[b.fills["time"].astype("int64") <= cut]
    pd.testing.assert_frame_equal(fills_a, fills_b)


# ---- ranking entries by the nearest zone, against merge_asof ---------------------------------------


class NearestZone(tickstep.Strategy):
    """The original portfolio rule: at each tick, among symbols with a bar, the distance
    from the close to the nearest *support* zone level (relative to the close); symbols
    within ``max_distance`` are ranked nearest first (then by name) and the best
    ``top`` held in equal weights."""

    top = 2
    max_distance = 0.03

    def init(self):
        self.picks = []

    def on_tick(self):
        ranked = []
        for symbol in self.active_symbols():
            z = self.records("zones", symbol)
            if not z:
                continue
            levels = z.level[z.zone_type == "support"]
            if len(levels) == 0:
                continue
            close = self.price(symbol)
            distance = float(np.min(np.abs(close - levels) / close))
            if distance <= self.max_distance:
                ranked.append((distance, symbol))
        ranked.sort()
        chosen = [s for _, s in ranked[: self.top]]
        self.picks.append((self.now, chosen))
        if chosen:
            self.rebalance({s: 0.95 / self.top for s in chosen})


def nearest_zone_reference(market: td.MarketColumns, zones: pd.DataFrame, top: int,
                           max_distance: float) -> list[tuple[int, list[str]]]:
    bars = pd.concat([pd.DataFrame({"symbol": b.symbol, "ts": b.ts, "close": b.close})
                      for b in market.bars], ignore_index=True).sort_values("ts", kind="stable")
    keys = zones[["symbol", "ts"]].drop_duplicates().copy()
    keys["key"] = keys["ts"].astype("int64")
    keys = keys.drop(columns="ts").sort_values("key")
    asof = pd.merge_asof(bars, keys, left_on="ts", right_on="key", by="symbol",
                         direction="backward")
    z = zones.assign(key=zones["ts"].astype("int64")).drop(columns="ts")
    z = z[z["zone_type"] == "support"]
    joined = asof.dropna(subset=["key"]).astype({"key": "int64"}).merge(z, on=["symbol", "key"])
    joined["distance"] = np.abs(joined["close"] - joined["level"]) / joined["close"]
    best = joined.groupby(["ts", "symbol"], as_index=False)["distance"].min()
    best = best[best["distance"] <= max_distance].sort_values(["ts", "distance", "symbol"])
    chosen = best.groupby("ts")["symbol"].apply(lambda s: list(s[:top]))
    timeline = np.unique(bars["ts"])
    return [(int(t), chosen.get(t, [])) for t in timeline]


@pytest.mark.parametrize("seed", [1, 2])
def test_nearest_zone_ranking_matches_merge_asof(seed):
    market = td.sample_daily(symbols=8, days=120, seed=seed)
    zones = make_zones(market, every=3, seed=seed + 10)
    result = tickstep.Backtest(market, NearestZone, records={"zones": zones}, cash=1e6,
                               on_reject="ignore").run()
    expected = nearest_zone_reference(market, zones, NearestZone.top, NearestZone.max_distance)
    assert result.strategy.picks == expected
    assert sum(1 for _, chosen in expected if chosen) > 20  # the rule does pick, often
    assert len(result.fills) > 0


@pytest.mark.parametrize("shape", ["polars", "arrow", "multiindex", "mapping", "naive"])
def test_every_shape_of_records_gives_the_same_answers(market, zones, shape):
    import polars as pl
    import pyarrow as pa

    data = {
        "polars": lambda: pl.from_pandas(zones),
        "arrow": lambda: pa.Table.from_pandas(zones),
        "multiindex": lambda: zones.set_index(["symbol", "ts"]),
        "mapping": lambda: {s: g.drop(columns="symbol") for s, g in zones.groupby("symbol")},
        "naive": lambda: zones.assign(ts=zones["ts"].dt.tz_localize(None)),  # naive = UTC
    }[shape]()
    result = tickstep.Backtest(market, Logger, records={"zones": data}).run()
    _check_log(result.strategy.log, zones)


# ---- the cursor against brute force -------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.integers(-50, 50), min_size=0, max_size=12),
    counts=st.lists(st.integers(1, 3), min_size=12, max_size=12),
    queries=st.lists(st.integers(-60, 60), min_size=1, max_size=40),
)
def test_cursor_answers_the_latest_key_at_or_before_any_time(keys, counts, queries):
    """Any sequence of times (forwards, backwards, on a key, before the first, after the
    last): the answer is the set of the greatest key <= the time, as brute force says."""
    from tickstep.data._records import RecordBook, RecordTable

    keys = sorted(set(keys))
    ts = np.repeat(np.array(keys, dtype=np.int64), counts[: len(keys)])
    value = np.arange(len(ts), dtype=np.float64)
    table = RecordTable("t", ["A", "B"], np.zeros(len(ts), dtype=np.int64), ts,
                        {"value": value}, {"value": "float"})
    book = RecordBook({"t": table})
    for now in queries:
        got = book.current("t", 0, now)
        before = [k for k in keys if k <= now]
        if not before:
            assert got.ts is None and len(got) == 0
        else:
            assert got.ts == max(before)
            np.testing.assert_array_equal(got.value, value[ts == max(before)])
        assert len(book.current("t", 1, now)) == 0  # B has no records at all


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_streamed_backtests_see_the_same_records(kind, market, zones):
    opened, drop = open_store(kind)
    try:
        opened.ingest(market)
        opened.ingest_records("zones", zones)
        whole = tickstep.Backtest(opened, NearestZone, records=["zones"], cash=1e6).run()
        streamed = tickstep.Backtest(opened, NearestZone, records=["zones"], cash=1e6,
                                     stream="9D").run()
        assert streamed.strategy.picks == whole.strategy.picks
        pd.testing.assert_frame_equal(streamed.fills, whole.fills)
        memory = tickstep.Backtest(market, Logger, records={"zones": zones}, stream="9D").run()
        _check_log(memory.strategy.log, zones)
    finally:
        drop()
