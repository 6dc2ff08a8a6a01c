"""Bad analysis tables: each refused with a clear error naming table, column, row and rule;
a refused ingest changes no row (DuckDB and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from records_support import STORE_KINDS, make_zones, open_store, row_counts


@pytest.fixture(scope="module")
def market():
    return td.sample_daily(symbols=3, days=20, seed=4)


@pytest.fixture(scope="module")
def zones(market):
    return make_zones(market, every=2, seed=1)


def _swap_rows(frame: pd.DataFrame, i: int, j: int) -> pd.DataFrame:
    out = frame.copy()
    out.iloc[[i, j]] = out.iloc[[j, i]].to_numpy()
    return out


def _later_key_row(zones: pd.DataFrame) -> int:
    """The first row of the second key of the first symbol."""
    first = zones["ts"].iloc[0]
    return int(np.flatnonzero((zones["ts"] != first).to_numpy())[0])


# (case, make bad records from good ones, rule, words the message must hold)
BAD = [
    ("unknown symbol", lambda z: z.assign(symbol=z["symbol"].where(z.index != 3, "BARPP")),
     "known symbol", ["'BARPP'", "row 3", "did you mean 'BARP'"]),
    ("unsorted keys", lambda z: _swap_rows(z, 0, _later_key_row(z)), "sorted keys",
     ["'zones'", "column 'ts'", "row ", "keys must arrive in time order"]),
    ("missing key time", lambda z: z.assign(ts=z["ts"].where(z.index != 2)), "key time present",
     ["column 'ts'", "row 2"]),
    ("missing symbol", lambda z: z.assign(symbol=z["symbol"].where(z.index != 5)),
     "symbol present", ["column 'symbol'", "row 5"]),
    ("text in a number column", lambda z: z.assign(level=z["level"].astype(object).where(
        z.index != 4, "high")), "one kind per field", ["column 'level'", "row 4", "'high'"]),
    ("infinite value", lambda z: z.assign(upper=z["upper"].where(z.index != 6, np.inf)),
     "finite numbers", ["column 'upper'", "row 6", "infinite"]),
    ("missing int", lambda z: z.assign(strength=z["strength"].astype("Int64").where(
        z.index != 7)), "no missing int", ["column 'strength'", "row 7"]),
    ("reserved field name", lambda z: z.rename(columns={"level": "frame"}), "field names",
     ["column 'frame'", "reserved"]),
    ("field name not an identifier", lambda z: z.rename(columns={"level": "zone level"}),
     "field names", ["column 'zone level'", "identifiers"]),
    ("two key time columns", lambda z: z.assign(time=z["ts"]), "one key time",
     ["'ts'", "'time'"]),
    ("no key time", lambda z: z.drop(columns="ts"), "timestamps present",
     ["no timestamp column"]),
    ("no symbol column", lambda z: z.drop(columns="symbol"), "symbol column present",
     ["no symbol column", "symbol="]),
    ("empty", lambda z: z.iloc[:0], "non-empty", ["no rows"]),
    ("all-missing field", lambda z: z.assign(note=None), "typed fields", ["column 'note'"]),
    ("columns differing by case", lambda z: z.assign(LEVEL=1.0), "unambiguous columns",
     ["differ only by case"]),
]


def _assert_clear(err: td.DataError, rule: str, words: list[str]) -> None:
    message = str(err)
    assert err.rule == rule, message
    assert "'zones'" in message, message
    for word in words:
        assert word in message, (word, message)


@pytest.mark.parametrize("kind", STORE_KINDS)
def test_refused_ingests_name_the_culprit_and_change_no_row(kind, market, zones):
    store, drop = open_store(kind)
    try:
        store.ingest(market)
        store.ingest_records("zones", zones.iloc[:10])
        before = row_counts(store)
        for case, make, rule, words in BAD:
            with pytest.raises(td.DataError) as err:
                store.ingest_records("zones", make(zones))
            _assert_clear(err.value, rule, words)
            assert row_counts(store) == before, case
        # A later part that conflicts with what is stored: refused whole (the new keys too).
        changed = zones.assign(level=zones["level"] + 1.0)
        with pytest.raises(td.DataError, match="1 key\\(s\\) are already stored|key\\(s\\)") as err:
            store.ingest_records("zones", changed)
        assert err.value.rule == "no conflicting keys"
        assert row_counts(store) == before
        # Fields that differ from the stored table's.
        with pytest.raises(td.DataError, match="missing field\\(s\\) \\['upper'\\]") as err:
            store.ingest_records("zones", zones.drop(columns="upper"))
        assert err.value.rule == "same fields"
        with pytest.raises(td.DataError, match="string in the data but float") as err:
            store.ingest_records("zones", zones.assign(level="x"))
        assert err.value.rule == "same field kinds"
        # Timestamps finer than stores keep.
        fine = zones.assign(first_touch=zones["first_touch"] + pd.Timedelta(1, "ns"))
        with pytest.raises(td.DataError, match="nanoseconds") as err:
            store.ingest_records("zones", fine)
        assert err.value.rule == "microsecond timestamps"
        # Table names and options.
        with pytest.raises(td.DataError, match="lower-case identifier") as err:
            store.ingest_records("Zones; drop table bars", zones)
        assert err.value.rule == "table name"
        with pytest.raises(td.DataError, match="on_conflict"):
            store.ingest_records("zones", zones, on_conflict="merge")
        assert row_counts(store) == before
        # An int field may fill a float one; the rest of the records go in now.
        assert store.ingest_records("zones", zones.iloc[10:].assign(level=1)) == len(zones) - 10
        # Loading a table that does not exist names the ones that do.
        with pytest.raises(td.DataError, match="no records table 'zone'.*did you mean 'zones'"):
            store.load_records("zone")
        with pytest.raises(td.DataError, match="'NOPE'"):
            store.load_records("zones", ["NOPE"])
    finally:
        drop()


# Records without a symbol column are a one-symbol backtest's own (tested below).
IN_MEMORY = [b for b in BAD if b[0] != "no symbol column"]


@pytest.mark.parametrize("case, make, rule, words", IN_MEMORY, ids=[b[0] for b in IN_MEMORY])
def test_bad_records_in_memory_are_refused_by_the_backtest(market, zones, case, make, rule, words):
    with pytest.raises(td.DataError) as err:
        tickstep.Backtest(market, tickstep.Strategy, records={"zones": make(zones)})
    _assert_clear(err.value, rule, words)


def test_records_without_symbols_need_a_one_symbol_backtest(market, zones):
    with pytest.raises(td.DataError, match="no symbol column") as err:
        tickstep.Backtest(market, tickstep.Strategy, records={"zones": zones.drop(columns="symbol")})
    assert err.value.rule == "symbol column present"


def test_csv_errors_name_the_file_and_line(tmp_path, market, zones):
    path = tmp_path / "zones.csv"
    _swap_rows(zones, 0, _later_key_row(zones)).to_csv(path, index=False)
    store = td.Store()
    store.ingest(market)
    with pytest.raises(td.DataError) as err:
        store.ingest_records("zones", path)
    message = str(err.value)
    # Row 0 now holds a later key: row 1 (line 3, after the header) is the first going back.
    assert err.value.row == 1
    assert f"file '{path}', line 3: records table 'zones', column 'ts', row 1" in message
    assert err.value.rule == "sorted keys"
    assert store.record_tables().empty


def test_what_a_backtest_asks_for_must_exist(market, zones, tmp_path):
    with pytest.raises(td.DataError, match="only a store .* holds named record tables"):
        tickstep.Backtest(market, tickstep.Strategy, records=["zones"])
    with pytest.raises(td.DataError, match="lower-case identifier"):
        tickstep.Backtest(market, tickstep.Strategy, records={"Zones": zones})
    with pytest.raises(td.DataError, match="names 'zones' twice"):
        tickstep.Backtest(market, tickstep.Strategy, records=["zones", "zones"])
    with pytest.raises(td.DataError, match="records table names|table names of the store"):
        tickstep.Backtest(market, tickstep.Strategy, records=42)
    store = td.Store()
    store.ingest(market)
    store.ingest_records("zones", zones)
    with pytest.raises(td.DataError, match="no records table 'zonez'.*did you mean 'zones'"):
        tickstep.Backtest(store, tickstep.Strategy, records=["zonez"])

    class Asks(tickstep.Strategy):
        def next(self, symbol):
            self.records("levels")

    with pytest.raises(KeyError, match="no records table 'levels'.*tables of this backtest: zones"):
        tickstep.Backtest(store, Asks, records=["zones"]).run()
    with pytest.raises(KeyError, match="this backtest was given none"):
        tickstep.Backtest(store, Asks).run()


def test_a_datetime_index_beside_a_time_column_is_ambiguous(market, zones):
    with pytest.raises(td.DataError, match="a DatetimeIndex and a key time column 'ts'") as err:
        tickstep.Backtest(market, tickstep.Strategy,
                          records={"zones": zones.set_index(zones["ts"].rename(None))})
    assert err.value.rule == "one key time"
    table = tickstep.Backtest(market, tickstep.Strategy, records={"zones": zones}).records["zones"]
    with pytest.raises(td.DataError, match="'BARPP'.*did you mean 'BARP'"):
        table.frame("BARPP")


def test_plain_python_numbers_in_an_object_column_are_numbers(market, zones):
    table = tickstep.Backtest(market, tickstep.Strategy, records={"zones": zones.assign(
        level=zones["level"].astype(object), strength=zones["strength"].astype(object))},
    ).records["zones"]
    assert table.kinds["level"] == "float" and table.kinds["strength"] == "int"
    np.testing.assert_array_equal(table.frame()["level"], zones.sort_values(
        ["symbol", "ts"], kind="stable")["level"])
