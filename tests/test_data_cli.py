"""``tickstep data ...`` commands, through `tickstep.cli.main(argv)`."""

from __future__ import annotations

import tickstep.data as td
from tickstep.cli import main


def test_sample_then_list(tmp_path, capsys):
    out = tmp_path / "market.duckdb"
    assert main(["data", "sample", "--symbols", "4", "--days", "2", "--seed", "3", "--out",
                 str(out)]) == 0
    assert "for 4 symbols" in capsys.readouterr().out
    assert main(["data", "list", str(out)]) == 0
    text = capsys.readouterr().out
    assert "4 symbols" in text and "sector" in text
    assert td.load(out).n_bars == td.sample(4, 2, seed=3).n_bars


def test_ingest_files_and_metadata(tmp_path, capsys):
    bars = td.sample(["AAA"], 1, seed=1).bars[0].to_frame().reset_index()
    bars.to_csv(tmp_path / "AAA.csv", index=False)
    (tmp_path / "meta.csv").write_text("symbol,sector,exchange\nAAA,Energy,XNYS\n")
    store = tmp_path / "s.duckdb"
    argv = [
        "data",
        "ingest",
        str(store),
        str(tmp_path / "AAA.csv"),
        "--metadata",
        str(tmp_path / "meta.csv"),
    ]
    assert main(argv) == 0
    assert f"{len(bars)} new bars" in capsys.readouterr().out.replace(",", "")
    assert main(argv) == 0
    assert ": 0 new bars" in capsys.readouterr().out
    with td.Store(store, read_only=True) as s:
        assert s.metadata().loc["AAA", "timezone"] == "America/New_York"


def test_errors_go_to_stderr_with_a_nonzero_status(tmp_path, capsys):
    assert main(["data", "list", str(tmp_path / "missing.duckdb")]) == 1
    assert "does not exist" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text("ts,open,high,low,close,volume\n2024-01-02,1,2,0.5\n")
    assert main(["data", "ingest", str(tmp_path / "s.duckdb"), str(bad)]) == 1
    assert "bad.csv', line 2" in capsys.readouterr().err
    assert main(["data", "ingest", str(tmp_path / "s.duckdb")]) == 2
    assert "nothing to ingest" in capsys.readouterr().err
    assert main(["data", "frobnicate"]) == 2
    assert main(["data", "--help"]) == 0
