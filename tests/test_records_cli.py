"""``tickstep data ingest --records TABLE`` and the listing of analysis tables."""

from __future__ import annotations

import tickstep.data as td
from records_support import make_zones
from tickstep.cli import main


def test_ingest_records_from_files_and_list_them(tmp_path, capsys):
    store = tmp_path / "market.duckdb"
    assert main(["data", "sample", "--symbols", "3", "--days", "2", "--seed", "3", "--out",
                 str(store)]) == 0
    market = td.load(store)
    zones = make_zones(market, every=60, seed=2)
    zones.to_parquet(tmp_path / "zones.parquet")
    argv = ["data", "ingest", str(store), str(tmp_path / "zones.parquet"), "--records", "zones"]
    capsys.readouterr()
    assert main(argv) == 0
    assert f"{len(zones)} new records in zones" in capsys.readouterr().out.replace(",", "")
    assert main(argv) == 0
    assert ": 0 new records in zones" in capsys.readouterr().out
    assert main(["data", "list", str(store)]) == 0
    text = capsys.readouterr().out
    assert "analysis tables (records):" in text and "level:float" in text
    with td.Store(store, read_only=True) as s:
        assert s.record_tables().loc["zones", "records"] == len(zones)


def test_refused_records_ingest_names_the_file_line_and_rule(tmp_path, capsys):
    store = tmp_path / "market.duckdb"
    assert main(["data", "sample", "--symbols", "2", "--days", "1", "--out", str(store)]) == 0
    bad = tmp_path / "zones.csv"
    bad.write_text("symbol,ts,level\nNOPE,2024-01-02T15:00:00Z,1.5\n")
    capsys.readouterr()
    assert main(["data", "ingest", str(store), str(bad), "--records", "zones"]) == 1
    err = capsys.readouterr().err
    assert "zones.csv', line 2" in err and "'NOPE'" in err and "known symbol" in err
    with td.Store(store, read_only=True) as s:
        assert s.record_tables().empty
