"""The command line end to end: `python -m tickstep ...` in a subprocess, on a small
store; output, exit codes, one-line errors, closed pipes, and files it must not touch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from tickstep.batch import expand_grid, sample_sets
from tickstep.strategies import SmaCross


def tickstep_cli(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "TICKSTEP_TOKEN"}
    return subprocess.run([sys.executable, "-m", "tickstep", *args], capture_output=True,
                          text=True, cwd=cwd, env=env, timeout=300)


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """The same command line called in this process (fast: no interpreter start)."""
    from tickstep.cli import main

    capsys.readouterr()
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "market.duckdb"
    with td.Store(path, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=3, days=300, seed=7))
    return path


def test_a_symbols_own_schedule_is_given_as_json(store):
    # One symbol of the store pays a schedule of its own; the rest the account's.
    with tickstep.data.open_store(str(store), read_only=True) as opened:
        symbol = opened.symbols().index[0]
    own = {symbol: {"commission_per_unit": 0.01, "commission_min": 1.0}}
    done = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", "commission=0.001",
                        "-o", f"commission_by_symbol={json.dumps(own)}", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["stats"]
    expected = tickstep.Backtest(str(store), SmaCross, commission=0.001, on_reject="ignore",
                                 commission_by_symbol=own).run().stats
    plain = tickstep.Backtest(str(store), SmaCross, commission=0.001, on_reject="ignore").run().stats
    assert out["Commissions [$]"] == expected["Commissions [$]"] != plain["Commissions [$]"]
    refused = tickstep_cli("run", "sma_cross", "--data", str(store),
                           "-o", "commission_by_symbol={bad json")
    assert refused.returncode != 0 and "expected a mapping written as JSON" in refused.stderr


def test_a_symbols_own_margin_terms_are_given_as_json(store):
    # One symbol must keep 99% of what its position is worth: reversing crosses are
    # called, as the API calls them.
    with tickstep.data.open_store(str(store), read_only=True) as opened:
        symbol = opened.symbols().index[0]
    own = {symbol: {"maintenance_margin": 0.99}}
    done = tickstep_cli("run", "sma_cross", "--data", str(store), "-p", "reverse=true",
                        "-o", f"margin_by_symbol={json.dumps(own)}", "-o", "on_reject=ignore",
                        "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["stats"]
    expected = tickstep.Backtest(str(store), SmaCross, margin_by_symbol=own,
                                 on_reject="ignore").run(reverse=True).stats
    assert out["# Margin Calls"] == expected["# Margin Calls"] > 0
    assert out["Equity Final [$]"] == expected["Equity Final [$]"]


def test_run_prints_the_same_statistics_as_the_api(store):
    done = tickstep_cli("run", "sma_cross", "--data", str(store), "-p", "fast=5", "-p",
                        "slow=20", "-o", "cash=50000", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    expected = tickstep.Backtest(str(store), SmaCross, cash=50_000).run(fast=5, slow=20).stats
    assert out["parameters"] == {"fast": 5, "slow": 20, "reverse": False}
    assert out["stats"]["Return [%]"] == expected["Return [%]"]
    assert out["stats"]["# Trades"] == expected["# Trades"]
    text = tickstep_cli("run", "sma_cross", "--data", str(store), "-p", "fast=5", "-p", "slow=20",
                        "-o", "cash=50000")
    assert text.returncode == 0 and "Return [%]" in text.stdout


def test_run_by_symbol_prints_the_breakdown_the_api_gives(store):
    # Earning 3% on its cash: each symbol's row of symbol_breakdown and the account's
    # interest, in JSON and as text.
    args = ("run", "sma_cross", "--data", str(store), "-o", "cash_rate=0.03",
            "-o", "on_reject=ignore", "--by-symbol")
    done = tickstep_cli(*args, "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    from tickstep.report import symbol_breakdown

    result = tickstep.Backtest(str(store), SmaCross, cash_rate=0.03, on_reject="ignore").run()
    want = symbol_breakdown(result)
    got = pd.DataFrame(out["by_symbol"]).set_index("symbol")
    assert list(got.index) == list(want.index) and list(got.columns) == list(want.columns)
    numbers = [c for c in want.columns if c != "Sector"]
    pd.testing.assert_frame_equal(got[numbers].astype(float), want[numbers].astype(float),
                                  check_exact=True, check_names=False)
    assert out["interest"] == result.interest < 0
    text = tickstep_cli(*args)
    assert text.returncode == 0, text.stderr
    assert "by symbol:" in text.stdout and all(s in text.stdout for s in want.index)
    assert f"{-result.interest:,.2f} in the P&L" in text.stdout


def test_options_off_by_default_are_given_by_number(store):
    # commission_cap and periods_per_year default to None; given, they are numbers.
    schedule = dict(commission_per_unit=0.01, commission_min=1.0, commission_cap=0.003)
    done = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", "commission_per_unit=0.01",
                        "-o", "commission_min=1", "-o", "commission_cap=0.003",
                        "-o", "periods_per_year=365", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["stats"]
    expected = tickstep.Backtest(str(store), SmaCross, periods_per_year=365, **schedule).run().stats
    assert out["Commissions [$]"] == expected["Commissions [$]"] > 0
    assert out["Sharpe Ratio"] == expected["Sharpe Ratio"]
    refused = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", "commission_cap=2")
    assert refused.returncode != 0 and "commission_cap=2" in refused.stderr
    assert "a fraction of notional in (0, 1)" in refused.stderr


def test_volume_rules_are_options_of_the_command_line(store):
    # A limit of 0.01% of each day's volume and an impact: orders fill in parts, at
    # moved prices, as the same options give through the API.
    options = dict(volume_limit=0.0001, volume_impact=50.0, on_reject="ignore")
    done = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", "volume_limit=0.0001",
                        "-o", "volume_impact=50", "-o", "on_reject=ignore", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)["stats"]
    expected = tickstep.Backtest(str(store), SmaCross, **options).run()
    plain = tickstep.Backtest(str(store), SmaCross, on_reject="ignore").run().stats
    assert (expected.orders["reason"].str.startswith("filled in part")).any()
    assert out["Equity Final [$]"] == expected.stats["Equity Final [$]"] != plain["Equity Final [$]"]
    refused = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", "volume_limit=10")
    assert refused.returncode != 0 and "a fraction of a bar's volume in (0, 1]" in refused.stderr


def test_multipliers_are_options_of_the_command_line(store):
    # One multiplier for all, then one symbol's as JSON: the runs are the API's, in money.
    with tickstep.data.open_store(str(store), read_only=True) as opened:
        symbol = opened.symbols().index[0]
    # (Sized by a share of equity, a run buys a third of the units at three times their
    # worth: the same money, but a third of the commission per unit.)
    terms = dict(leverage=4, commission_per_unit=0.05, on_reject="ignore")
    for text, value in (("3", 3), (json.dumps({symbol: 3}), {symbol: 3})):
        done = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", f"multiplier={text}",
                            *[f"-o{k}={v}" for k, v in terms.items()], "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)["stats"]
        expected = tickstep.Backtest(str(store), SmaCross, multiplier=value, **terms).run().stats
        plain = tickstep.Backtest(str(store), SmaCross, **terms).run().stats
        assert out["Commissions [$]"] == expected["Commissions [$]"] != plain["Commissions [$]"]
        assert out["Equity Final [$]"] == expected["Equity Final [$]"]
    refused = tickstep_cli("run", "sma_cross", "--data", str(store), "-o", "multiplier=0")
    assert refused.returncode != 0 and "a finite number above 0" in refused.stderr


def test_the_symbols_that_may_be_sold_short_are_named_on_the_command_line(store):
    # SmaCross reversing into shorts, one symbol shortable: the others' shorts refused,
    # as the API's run with the same list; "false" for none.
    with tickstep.data.open_store(str(store), read_only=True) as opened:
        symbol = opened.symbols().index[0]
    for text, value in ((symbol, [symbol]), ("false", False)):
        done = tickstep_cli("run", "sma_cross", "--data", str(store), "-p", "reverse=true",
                            "-o", f"shortable={text}", "-o", "on_reject=ignore", "--json")
        assert done.returncode == 0, done.stderr
        out = json.loads(done.stdout)["stats"]
        expected = tickstep.Backtest(str(store), SmaCross, shortable=value,
                                     on_reject="ignore").run(reverse=True).stats
        assert out["# Orders Rejected"] == expected["# Orders Rejected"] > 0
        assert out["Equity Final [$]"] == expected["Equity Final [$]"]


def test_batch_writes_rows_and_stores_runs_then_runs_queries_them(store, tmp_path, capsys):
    out, db = tmp_path / "rows.csv", tmp_path / "runs.sqlite"
    done = tickstep_cli("batch", "sma_cross", "--data", str(store), "-p", "fast=5,10",
                        "-p", "slow=20,40", "--out", str(out), "--results", str(db),
                        "--no-cache", "--top", "3")
    assert done.returncode == 0, done.stderr
    assert "12 jobs (0 from the cache, 12 ran, 0 failed)" in done.stderr
    rows = pd.read_csv(out)
    assert len(rows) == 12 and set(rows["fast"]) == {5, 10} and set(rows["slow"]) == {20, 40}
    assert rows["Sharpe Ratio"].is_monotonic_decreasing  # best first
    assert len(done.stdout.strip().splitlines()) == 1 + 1 + 3  # header, index name, 3 rows

    code, out, err = in_process(capsys, "runs", "--results", str(db), "--by", "Sharpe Ratio",
                                "--top", "2", "--json")
    assert code == 0, err
    best = json.loads(out)
    assert [r["sharpe_ratio"] for r in best] == list(rows["Sharpe Ratio"].head(2))
    assert best[0]["parameters"] == {"fast": int(rows["fast"][0]), "slow": int(rows["slow"][0])}
    assert best[0]["calc_ms"] > 0 and best[0]["status"] == "ok"
    per = json.loads(in_process(capsys, "runs", "--results", str(db), "--per-strategy",
                                "--json")[1])
    assert per[0]["strategy"] == "sma_cross" and per[0]["runs"] == 12
    assert per[0]["average"] == pytest.approx(rows["Return [%]"].mean())
    table = tickstep_cli("runs", "--results", str(db), "--strategy", "sma_cross", "--since",
                         "today")
    assert table.returncode == 0 and table.stdout.count("sma_cross") == 12
    # A batch stored without its returns cannot be judged later, and says how to.
    code, _, err = in_process(capsys, "runs", "--results", str(db), "--batch",
                              best[0]["batch_id"], "--overfitting", "8")
    assert code == 2 and "kept no daily returns" in err
    # The batches, newest first: this one, done, 12 jobs, no returns kept.
    code, out, err = in_process(capsys, "runs", "--results", str(db), "--batches", "--json")
    assert code == 0, err
    (listed,) = json.loads(out)
    assert (listed["batch_id"], listed["strategy"], listed["status"], listed["jobs_done"],
            listed["jobs_total"], listed["jobs_failed"], listed["returns"]) == \
        (best[0]["batch_id"], "sma_cross", "done", 12, 12, 0, False)
    code, out, _ = in_process(capsys, "runs", "--results", str(db), "--batches")
    assert code == 0 and best[0]["batch_id"] in out and "done" in out
    code, out, _ = in_process(capsys, "runs", "--results", str(db), "--batches", "--strategy",
                              "rsi_mean_reversion")
    assert code == 0 and out.strip() == "(no batches)"
    code, _, err = in_process(capsys, "runs", "--results", str(db), "--batches", "--by",
                              "Sharpe Ratio")
    assert code == 2 and "--batches lists batches" in err


def test_batch_runs_a_random_search_of_the_grid(store, tmp_path, capsys):
    out = tmp_path / "rows.parquet"
    code, _, err = in_process(capsys, "batch", "sma_cross", "--data", str(store), "-p",
                              "fast=5,7,9,11", "-p", "slow=20,40", "--max-tries", "3",
                              "--random-state", "2", "--sequential", "--no-cache", "--out", str(out))
    assert code == 0, err
    rows = pd.read_parquet(out)
    drawn = sample_sets(expand_grid({"fast": [5, 7, 9, 11], "slow": [20, 40]}), 3, random_state=2)
    assert sorted(set(zip(rows["fast"], rows["slow"]))) == sorted((p["fast"], p["slow"]) for p in drawn)
    assert len(rows) == 3 * rows["symbols"].nunique()
    code, _, err = in_process(capsys, "batch", "sma_cross", "--data", str(store), "-p",
                              "fast=5,7,9,11", "--max-tries", "0.5", "--sequential", "--no-cache",
                              "--out", str(out))
    assert code == 0, err
    assert set(pd.read_parquet(out)["fast"]) == {p["fast"] for p in sample_sets(
        expand_grid({"fast": [5, 7, 9, 11]}), 0.5)}


def test_sequential_batch_equals_parallel(store, tmp_path, capsys):
    frames = []
    for flag in ("--sequential", "--workers=2"):
        out = tmp_path / f"rows{flag}.parquet"
        code, _, err = in_process(capsys, "batch", "rsi_mean_reversion", "--data", str(store),
                                  "-p", "oversold=25,30", flag, "--no-cache", "--out", str(out))
        assert code == 0, err
        frames.append(pd.read_parquet(out).drop(columns=["run_time"]).sort_index())
    pd.testing.assert_frame_equal(frames[0], frames[1])


@pytest.mark.parametrize(("args", "code", "words"), [
    (["run", "sma_cros", "--data", "STORE"], 2, "did you mean 'sma_cross'"),
    (["run", "sma_cross", "--data", "STORE", "-p", "fast=2.7"], 2, "fast=2.7: expected a whole number"),
    (["run", "sma_cross", "--data", "STORE", "-p", "fats=3"], 2, "did you mean 'fast'"),
    (["run", "sma_cross", "--data", "STORE", "-p", "reverse=maybe"], 2, "expected true or false"),
    (["run", "sma_cross", "--data", "STORE", "-o", "comission=0.1"], 2, "did you mean 'commission'"),
    (["run", "sma_cross", "--data", "missing.duckdb"], 2, "no such file"),
    (["run", "sma_cross", "--data", "STORE", "-p", "fast=50", "-p", "slow=20"], 1, "fast < slow"),
    (["batch", "sma_cross", "--data", "STORE", "--out", "rows.xlsx"], 2, ".parquet, .csv or .json"),
    (["batch", "sma_cross", "--data", "STORE", "--max-tries", "some"], 2, "--max-tries 'some': a whole number"),
    (["batch", "sma_cross", "--data", "STORE", "--max-tries", "0"], 2, "max_tries=0: must be a whole number"),
    (["runs"], 2, "--results DB or --data STORE"),
    (["runs", "--results", "nowhere.sqlite"], 2, "no runs database"),
    (["frobnicate"], 2, "No such command"),
])
def test_errors_are_one_line_with_an_exit_code(store, args, code, words, capsys):
    got, _, err = in_process(capsys, *[str(store) if a == "STORE" else a for a in args])
    assert got == code, err
    assert words in err
    assert "Traceback" not in err
    if "frobnicate" not in args:  # click's own usage errors show the usage too
        assert len(err.strip().splitlines()) == 1, err


def test_errors_from_a_real_process(store):
    done = tickstep_cli("run", "sma_cross", "--data", str(store), "-p", "fast=2.7")
    assert done.returncode == 2 and done.stderr.strip().splitlines() == [
        "Error: fast=2.7: expected a whole number (fast defaults to 10)"]


def test_a_strategys_exception_is_one_line_with_its_type_and_where(store, tmp_path, capsys):
    plugin = tmp_path / "boom.py"
    plugin.write_text(
        "import tickstep\n"
        "class Boom(tickstep.Strategy):\n"
        "    def next(self, symbol):\n"
        "        if len(self.data(symbol)) > 5:\n"
        "            raise ValueError('no row for this bar')\n")
    code, _, err = in_process(capsys, "run", f"{plugin}:Boom", "--data", str(store))
    # The same strategy through the API: its exception, and the note saying where.
    from tickstep.cli._common import load_strategy

    with pytest.raises(ValueError, match="no row for this bar") as raised:
        tickstep.Backtest(str(store), load_strategy(f"{plugin}:Boom")).run()
    (note,) = raised.value.__notes__
    assert note.startswith("tickstep: raised by the strategy while handling symbol ")
    assert code == 1
    assert err.strip() == (f"error: ValueError: no row for this bar ({note.removeprefix('tickstep: ')}"
                           f"; --debug shows the traceback)")


def test_rejections_print_as_one_warning_line_then_the_message(store):
    # 500 of cash: the portfolio's entries soon exceed it, and are rejected.
    args = ("--data", str(store), "-p", "oversold=25,30", "-o", "cash=500", "--portfolio",
            "--no-cache")
    done = tickstep_cli("batch", "rsi_mean_reversion", *args)
    assert done.returncode == 0, done.stderr
    rows = tickstep.batch.run_batch("rsi_mean_reversion", str(store), params={"oversold": [25, 30]},
                                    cash=500, portfolio=True, cache=False, on_reject="ignore")
    counts = rows.set_index("oversold")["# Orders Rejected"]
    assert counts.gt(0).all()
    lines = done.stderr.splitlines()
    assert lines[0] == (f"warning: 2 of 2 runs had orders the broker rejected "
                        f"({counts.sum()} order(s) in all); the first:")
    assert lines[1:3] == [f"  portfolio (oversold={k!r}): {counts[k]} order(s)" for k in (25.0, 30.0)]
    assert "click" not in done.stderr and "callback" not in done.stderr
    alone = tickstep_cli("run", "rsi_mean_reversion", "--data", str(store), "-o", "cash=500",
                         "-p", "oversold=30")
    assert alone.stderr.startswith(f"warning: {counts[30.0]} order(s) rejected"), alone.stderr
    quiet = tickstep_cli("run", "rsi_mean_reversion", "--data", str(store), "-o", "cash=500",
                         "-p", "oversold=30", "-o", "on_reject=ignore")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_help_everywhere_and_strategies_json(capsys):
    for command in ([], ["run"], ["batch"], ["walk-forward"], ["runs"], ["serve"], ["data"], ["data", "list"],
                    ["strategies"], ["demo"]):
        code, out, _ = in_process(capsys, *command, "--help")
        assert code == 0 and out.startswith("Usage: tickstep"), command
    done = tickstep_cli("strategies", "--help")  # the real entry point too
    assert done.returncode == 0 and "Usage: tickstep strategies" in done.stdout
    code, out, _ = in_process(capsys, "strategies", "--json")
    listing = json.loads(out)
    rsi = next(s for s in listing if s["name"] == "rsi_mean_reversion")
    assert rsi["parameters"]["oversold"] == 30 and rsi["class"].endswith(":RsiMeanReversion")


def test_a_closed_pipe_ends_quietly(tmp_path):
    big = tmp_path / "big.duckdb"
    with td.Store(big, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=400, days=2, seed=1))
    done = subprocess.run(f"{sys.executable} -m tickstep data list {big} | head -n 2",
                          shell=True, capture_output=True, text=True, timeout=120)
    assert len(done.stdout.splitlines()) == 2
    assert done.stderr == "", done.stderr


def test_demo_never_overwrites_a_file_it_did_not_create(tmp_path, store, capsys):
    mine = tmp_path / "mine.duckdb"
    mine.write_bytes(b"my precious data")
    done = tickstep_cli("demo", "--store", str(mine), "--symbols", "2", "--days", "2")
    assert done.returncode == 1 and "never overwrites" in done.stderr
    assert mine.read_bytes() == b"my precious data"

    # A real store of the user's: not touched either (same bytes after).
    before = store.read_bytes()
    code, _, err = in_process(capsys, "demo", "--store", str(store), "--symbols", "2",
                              "--days", "2")
    assert code == 1 and "never overwrites" in err
    assert store.read_bytes() == before

    # Its own store: made once, then reused as it is.
    own = tmp_path / "demo" / "market.duckdb"
    code, first, err = in_process(capsys, "demo", "--store", str(own), "--symbols", "2",
                                  "--days", "2")
    assert code == 0, err
    made = own.read_bytes()
    code, second, _ = in_process(capsys, "demo", "--store", str(own), "--symbols", "2",
                                 "--days", "2")
    assert code == 0 and "reused" in second
    # The same backtest on the same bars: the same statistics.
    assert second.split("\n\n", 1)[1] == first.split("\n\n", 1)[1]
    assert own.read_bytes() == made


def test_run_writes_the_html_report(store, tmp_path, capsys):
    out = tmp_path / "report.html"
    code, text, err = in_process(capsys, "run", "sma_cross", "--data", str(store), "-p",
                                 "fast=5", "-p", "slow=20", "--report", str(out))
    assert code == 0, err
    assert f"report: {out}" in text
    html = out.read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and "SmaCross" in html


def test_walk_forward_prints_what_the_api_walks_streamed_or_not(store, tmp_path, capsys):
    from tickstep.strategies import SmaCross

    args = ["walk-forward", "sma_cross", "--data", str(store), "-p", "fast=5,10", "-p",
            "slow=20,40", "--train", "120D", "--test", "60D", "--warmup", "40D", "--by",
            "Return [%]", "--sequential", "--no-cache", "-o", "on_reject=ignore"]
    expected = tickstep.Backtest(str(store), SmaCross, on_reject="ignore").walk_forward(
        train="120D", test="60D", warmup="40D", maximize="Return [%]", fast=[5, 10],
        slow=[20, 40], cache=False, executor="sequential")
    for more in ([], ["-o", "stream=30D"]):  # every run streamed from the store, the same
        code, out, _ = in_process(capsys, *args, *more, "--json")
        assert code == 0
        printed = json.loads(out)
        assert [(w["fast"], w["slow"]) for w in printed["windows"]] == list(
            zip(expected.windows["fast"], expected.windows["slow"]))
        assert printed["stats"]["Return [%]"] == expected.stats["Return [%]"]
        assert printed["stats"]["# Trades"] == expected.stats["# Trades"]
    windows, figure, report = tmp_path / "windows.csv", tmp_path / "wf.html", tmp_path / "r.html"
    code, out, _ = in_process(capsys, *args, "--out", str(windows), "--plot", str(figure),
                              "--report", str(report))
    assert code == 0 and "Return [%]" in out and f"windows: {windows}" in out
    assert f"report: {report}" in out and "tickstep walk-forward report" in report.read_text()
    table = pd.read_csv(windows, index_col="window")
    assert table["out_of_sample"].tolist() == pytest.approx(expected.windows["out_of_sample"].tolist(),
                                                          rel=1e-12)
    assert "walk-forward: out-of-sample equity" in figure.read_text()
    # Written again over its own files; never over a file tickstep did not write.
    assert in_process(capsys, *args, "--out", str(windows), "--plot", str(figure),
                      "--report", str(report))[0] == 0
    mine = tmp_path / "mine.csv"
    mine.write_text("a,b\n1,2\n")
    code, _, err = in_process(capsys, *args, "--out", str(mine))
    assert code == 2 and "is not a tickstep windows file" in err and mine.read_text() == "a,b\n1,2\n"
    code, _, err = in_process(capsys, *args[:10], "--test", "60D", "-o", "stream=soon")
    assert code == 1 and "stream='soon': must be None" in err  # the config's rule, as any option's
    code, _, err = in_process(capsys, "walk-forward", "sma_cross", "--data", str(store),
                              "--train", "120D", "--test", "60D")
    assert code == 2 and "at least one parameter to vary" in err


def test_walk_forward_searches_each_train_window_with_method_optuna(store, capsys):
    from tickstep.strategies import SmaCross

    grid = {"fast": [2, 3, 4, 5, 6, 8, 10], "slow": [20, 25, 30, 40, 50]}
    expected = tickstep.Backtest(str(store), SmaCross, on_reject="ignore").walk_forward(
        train="120D", test="60D", warmup="40D", maximize="Return [%]", method="optuna",
        max_tries=6, random_state=2, cache=False, executor="sequential", **grid)
    code, out, _ = in_process(
        capsys, "walk-forward", "sma_cross", "--data", str(store), "-p", "fast=2,3,4,5,6,8,10",
        "-p", "slow=20,25,30,40,50", "--train", "120D", "--test", "60D", "--warmup", "40D",
        "--by", "Return [%]", "--method", "optuna", "--max-tries", "6", "--random-state", "2",
        "--sequential", "--no-cache", "-o", "on_reject=ignore", "--json")
    assert code == 0
    printed = json.loads(out)
    assert [(w["fast"], w["slow"], w["in_sample"]) for w in printed["windows"]] == list(
        zip(expected.windows["fast"], expected.windows["slow"], expected.windows["in_sample"]))
    assert printed["stats"]["Return [%]"] == expected.stats["Return [%]"]


def test_run_says_how_likely_luck_is_and_with_bootstrap_the_ranges(store, capsys):
    from tickstep.strategies import SmaCross

    with tickstep.data.open_store(str(store), read_only=True) as opened:
        result = tickstep.Backtest(opened, SmaCross, on_reject="ignore").run()
    args = ["run", "sma_cross", "--data", str(store), "-o", "on_reject=ignore"]
    code, out, _ = in_process(capsys, *args, "--json")
    assert code == 0
    printed = json.loads(out)
    assert printed["probabilistic_sharpe"] == result.probabilistic_sharpe()
    assert "bootstrap" not in printed
    code, out, _ = in_process(capsys, *args, "--bootstrap", "150", "--json")
    ranges = json.loads(out)["bootstrap"]
    expected = result.bootstrap(150, seed=0).quantile([0.05, 0.5, 0.95])
    for label in expected.columns:
        assert [ranges[label][q] for q in ("5%", "50%", "95%")] == pytest.approx(
            expected[label].tolist(), rel=1e-12)
    code, out, _ = in_process(capsys, *args, "--bootstrap", "150")
    assert code == 0 and "Probabilistic Sharpe Ratio (true Sharpe > 0): " in out
    assert "150 bootstrapped histories" in out and "Max. Drawdown [%]" in out
    code, _, err = in_process(capsys, *args, "--bootstrap", "0")
    assert code == 2 and "--bootstrap" in err


def test_batch_judges_each_groups_overfitting_as_python_does(store, tmp_path, capsys):
    # One line per symbol: the probability of backtest overfitting of run_batch's rows
    # with their daily returns, as backtest_overfitting computes it; the rows written
    # without the returns. An odd number of blocks is refused before anything runs.
    from tickstep.batch import run_batch
    from tickstep.significance import backtest_overfitting, reality_check

    out = tmp_path / "rows.csv"
    code, printed, err = in_process(capsys, "batch", "sma_cross", "--data", str(store),
                                    "-p", "fast=3,5,8,13", "-p", "slow=20,30,40",
                                    "--overfitting", "6", "--sequential", "--no-cache",
                                    "--out", str(out), "--results", str(tmp_path / "runs.sqlite"))
    assert code == 0, err
    rows = run_batch("sma_cross", str(store), params={"fast": [3, 5, 8, 13], "slow": [20, 30, 40]},
                     returns=True, cache=False, executor="sequential", on_reject="ignore")
    lines = [line for line in printed.splitlines() if "overfitting" in line]
    assert len(lines) == rows["symbols"].nunique() == 3
    for line in lines:
        label = line.split(":")[0]
        found = backtest_overfitting(rows[rows["symbols"] == label], 6)
        assert f"probability of backtest overfitting {found.probability:.3f} " in line
        assert f"({found.trials} sets, {len(found.logits):,} splits of 6 blocks)" in line
    written = pd.read_csv(out)
    assert "Daily Returns" not in written.columns and len(written) == len(rows)
    # The runs database keeps them: the service judges the stored batch as Python does.
    from tickstep.service.luck import batch_overfitting
    from tickstep.service.runs import RunsDB

    db = RunsDB(tmp_path / "runs.sqlite")
    (batch,) = [r["batch_id"] for r in db.query_runs(limit=1)]
    assert db.batch(batch)["request"]["returns"] is True
    db.close()
    judged = batch_overfitting(str(tmp_path / "runs.sqlite"), batch, 6)
    for entry in judged:
        found = backtest_overfitting(rows[rows["symbols"] == entry["symbols"]], 6)
        assert entry["probability"] == found.probability
    # `runs` judges the stored batch later: the same lines, and its reality check is the
    # one `batch --reality-check` prints.
    db_path = str(tmp_path / "runs.sqlite")
    code, again, err = in_process(capsys, "runs", "--results", db_path, "--batch", batch,
                                  "--overfitting", "6", "--reality-check")
    assert code == 0, err
    assert [line for line in again.splitlines() if "overfitting" in line] == lines
    checked = [line for line in again.splitlines() if "reality check" in line]
    assert len(checked) == 3
    for line in checked:
        label = line.split(":")[0]
        found = reality_check(rows[(rows["symbols"] == label) & (rows["status"] == "ok")])
        assert f"reality check p-value {found.pvalue:.3f} that no set beats cash" in line
    code, out, _ = in_process(capsys, "runs", "--results", db_path, "--batches", "--json")
    assert [(b["batch_id"], b["returns"]) for b in json.loads(out)] == [(batch, True)]
    for args, words in ((["--overfitting", "6"], "give --batch ID"),
                        (["--batch", batch, "--overfitting", "5"], "--overfitting 5:"),
                        (["--batch", "nope", "--reality-check"], "no such batch")):
        code, _, err = in_process(capsys, "runs", "--results", db_path, *args)
        assert code == 2 and words in err, err
    code, _, err = in_process(capsys, "batch", "sma_cross", "--data", str(store), "-p",
                              "fast=3,5", "--overfitting", "5")
    assert code == 2 and "--overfitting 5: the blocks of days, an even whole number" in err


def test_batch_of_sets_that_never_trade_says_why_overfitting_is_not_judged(store, tmp_path, capsys):
    # Averages longer than the data: no set trades, no split can choose one, and each
    # group's line says so rather than a probability.
    code, printed, err = in_process(capsys, "batch", "sma_cross", "--data", str(store),
                                    "-p", "fast=2000,3000", "-p", "slow=5000",
                                    "--overfitting", "6", "--sequential", "--no-cache")
    assert code == 0, err
    lines = [line for line in printed.splitlines() if "overfitting" in line]
    assert len(lines) == 3
    assert all(line.endswith(": overfitting not judged: returns: no split has a set with a "
                             "Sharpe Ratio in sample (every set's returns are flat there: "
                             "none traded)") for line in lines)



def test_batch_makes_each_groups_reality_check_as_python_does(store, capsys):
    # One line per symbol: the SPA p-value of run_batch's rows with their daily returns
    # against cash, and the sets StepM names by their parameters.
    from tickstep.batch import run_batch
    from tickstep.significance import reality_check

    code, printed, err = in_process(capsys, "batch", "sma_cross", "--data", str(store),
                                    "-p", "fast=3,5,8,13", "-p", "slow=20,40",
                                    "--reality-check", "--sequential", "--no-cache")
    assert code == 0, err
    rows = run_batch("sma_cross", str(store), params={"fast": [3, 5, 8, 13], "slow": [20, 40]},
                     returns=True, cache=False, executor="sequential", on_reject="ignore")
    lines = [line for line in printed.splitlines() if "reality check" in line]
    assert len(lines) == rows["symbols"].nunique() == 3
    for line in lines:
        label = line.split(":")[0]
        group = rows[rows["symbols"] == label]
        found = reality_check(group)
        assert f"reality check p-value {found.pvalue:.3f} that no set beats cash " in line
        assert f"({found.trials} sets, {found.days} days" in line
        named = [f"(fast={group.loc[j, 'fast']}, slow={group.loc[j, 'slow']})"
                 for j in found.superior]
        assert line.endswith(", ".join(named) if named else "names none")


def test_the_reality_check_against_buy_and_hold_as_python_does(store, tmp_path, capsys):
    # --benchmark buy_and_hold: each group's sets against holding its symbol, run over the
    # same span and options; a buy_and_hold batch stored with --returns is the same
    # benchmark for `runs --batch ID --reality-check --benchmark-batch HOLD`.
    from tickstep.batch import run_batch
    from tickstep.significance import DAILY_RETURNS, reality_check

    grid = ["-p", "fast=3,5,8,13", "-p", "slow=20,40"]
    db_path = str(tmp_path / "runs.sqlite")
    code, printed, err = in_process(capsys, "batch", "sma_cross", "--data", str(store), *grid,
                                    "--start", "2020-03-01", "-o", "commission=0.001",
                                    "--reality-check", "--benchmark", "buy_and_hold",
                                    "--sequential", "--no-cache", "--results", db_path)
    assert code == 0, err
    options = dict(cache=False, executor="sequential", on_reject="ignore",
                   start="2020-03-01", commission=0.001, returns=True)
    rows = run_batch("sma_cross", str(store), params={"fast": [3, 5, 8, 13], "slow": [20, 40]},
                     **options)
    held = run_batch("buy_and_hold", str(store), **options)
    lines = [line for line in printed.splitlines() if "reality check" in line]
    assert len(lines) == rows["symbols"].nunique() == 3
    for line in lines:
        label = line.split(":")[0]
        benchmark = held[held["symbols"] == label][DAILY_RETURNS].iloc[0]
        found = reality_check(rows[rows["symbols"] == label], benchmark)
        assert f"reality check p-value {found.pvalue:.3f} that no set beats buy_and_hold " \
               f"({found.trials} sets, {found.days} days" in line
    code, _, err = in_process(capsys, "batch", "buy_and_hold", "--data", str(store),
                              "--start", "2020-03-01", "-o", "commission=0.001", "--returns",
                              "--sequential", "--no-cache", "--results", db_path)
    assert code == 0, err
    code, out, _ = in_process(capsys, "runs", "--results", db_path, "--batches", "--json")
    hold, judged = [b["batch_id"] for b in json.loads(out)]  # newest first
    code, again, err = in_process(capsys, "runs", "--results", db_path, "--batch", judged,
                                  "--reality-check", "--benchmark-batch", hold)
    assert code == 0, err
    assert [line.replace(f"buy_and_hold (batch {hold})", "buy_and_hold")
            for line in again.splitlines() if "reality check" in line] == lines
    # Refused by name: a benchmark without the check; --returns without --results; an
    # unknown strategy or batch; a benchmark batch that kept no returns.
    for args, words in ((["batch", "sma_cross", "--data", str(store), "--benchmark",
                          "buy_and_hold"], "--benchmark is what --reality-check's sets"),
                        (["batch", "sma_cross", "--data", str(store), "--returns"],
                         "--returns stores the runs' daily returns with --results DB"),
                        (["batch", "sma_cross", "--data", str(store), "--reality-check",
                          "--benchmark", "buy_and_holt"], "--benchmark: no strategy named 'buy_and_holt'"),
                        (["runs", "--results", db_path, "--batch", judged, "--reality-check",
                          "--benchmark-batch", "nope"], "--benchmark-batch 'nope': no such"),
                        (["runs", "--results", db_path, "--batch", judged,
                          "--benchmark-batch", hold], "--benchmark-batch is what")):
        code, _, err = in_process(capsys, *args)
        assert code == 2 and words in err, err
    code, _, err = in_process(capsys, "batch", "buy_and_hold", "--data", str(store),
                              "--sequential", "--no-cache", "--results", db_path)
    assert code == 0, err
    code, out, _ = in_process(capsys, "runs", "--results", db_path, "--batches", "--json")
    bare = json.loads(out)[0]["batch_id"]
    code, _, err = in_process(capsys, "runs", "--results", db_path, "--batch", judged,
                              "--reality-check", "--benchmark-batch", bare)
    assert code == 2 and f"--benchmark-batch {bare!r} kept no daily returns" in err, err
