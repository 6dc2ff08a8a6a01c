"""A `SignalStrategy` through the real command line and the real HTTP service.

The strategy lives outside tickstep: a plugin (a module and its distribution's
``tickstep.strategies`` entry point, found on ``PYTHONPATH`` as an installed package's
would be), and the same class named by module path and by file path. Each run is checked
against `Backtest.run_signals` given the signals computed here by hand, so a parameter
that did not arrive, or a run that went through ``next``, would show.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tickstep
import tickstep.data as td
from service_support import Server, wait_done

PLUGIN = textwrap.dedent('''
    import numpy as np
    import tickstep


    class Cross(tickstep.SignalStrategy):
        """Long while the fast mean is above the slow one."""

        size = 0.3
        fast = 5
        slow = 20

        def signals(self, symbol, bars):
            f = bars.close.rolling(self.fast).mean().to_numpy()
            s = bars.close.rolling(self.slow).mean().to_numpy()
            return {"entries": f > s, "exits": f < s}
''')


def cross_signals(close: np.ndarray, fast: int, slow: int) -> tuple[np.ndarray, np.ndarray]:
    """The plugin's rule written again: rolling means by cumulative sums."""

    def mean(n: int) -> np.ndarray:
        out = np.full(len(close), np.nan)
        c = np.concatenate(([0.0], np.cumsum(close)))
        out[n - 1:] = (c[n:] - c[:-n]) / n
        return out

    f, s = mean(fast), mean(slow)
    with np.errstate(invalid="ignore"):
        return f > s, f < s


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """A directory holding the module ``signal_plugin`` and its distribution's metadata
    (entry point ``signal_cross``): on PYTHONPATH it is an installed plugin."""
    root = tmp_path_factory.mktemp("plugin")
    (root / "signal_plugin.py").write_text(PLUGIN)
    info = root / "signal_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: signal-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[tickstep.strategies]\nsignal_cross = signal_plugin:Cross\n")
    return root


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    path = tmp_path_factory.mktemp("signals-cli") / "market.duckdb"
    with td.Store(path, read_only=False) as s:
        s.ingest(td.sample_daily(symbols=3, days=300, seed=11))
    return path


def env_with(plugin) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TICKSTEP_TOKEN"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin), env.get("PYTHONPATH")]))
    return env


def tickstep_cli(*args: str, env: dict[str, str], cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tickstep", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300)


def expected_stats(store, fast: int, slow: int, symbols=None, **options) -> pd.Series:
    """The run by hand: the rule's signals given to `Backtest.run_signals`."""
    bt = tickstep.Backtest(str(store), tickstep.Strategy, symbols=symbols, **options)
    with td.Store(store, read_only=True) as s:
        market = s.load(symbols=symbols)
    entries, exits = {}, {}
    for bars in market.bars:
        entries[bars.symbol], exits[bars.symbol] = cross_signals(bars.close, fast, slow)
    return bt.run_signals(entries, exits, size=0.3, size_type="percent").stats


def test_strategies_lists_the_plugin(plugin):
    done = tickstep_cli("strategies", env=env_with(plugin))
    assert done.returncode == 0, done.stderr
    assert "signal_cross" in done.stdout


@pytest.mark.parametrize("how", ["plugin", "module", "file"])
def test_run_trades_a_signal_strategy_by_name_module_or_file(plugin, store, how, tmp_path):
    env = env_with(plugin)
    name = {"plugin": "signal_cross", "module": "signal_plugin:Cross",
            "file": f"{plugin / 'signal_plugin.py'}:Cross"}[how]
    if how == "file":
        env.pop("PYTHONPATH")  # nothing to import it by: the file is read as it is
    done = tickstep_cli("run", name, "--data", str(store), "-p", "fast=7", "-p", "slow=30",
                        "-o", "cash=50000", "--json", env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["parameters"] == {"size": 0.3, "size_type": "percent", "sl": None, "tp": None,
                                 "sl_trail": None, "lot_size": None, "accumulate": False, "exit_after_bars": None,
                                 "limit": None, "limit_bars": None, "conflict": "exit",
                                 "side_conflict": "ignore", "opposite_entry": "reverse", "exit_portion": None,
                                 "fast": 7,
                                 "slow": 30}
    expected = expected_stats(store, 7, 30, cash=50_000)
    assert expected["# Trades"] > 0
    for label in ("# Trades", "Equity Final [$]", "Return [%]", "Commissions [$]"):
        assert out["stats"][label] == expected[label], label


def test_batch_runs_a_signal_strategys_grid(plugin, store, tmp_path):
    rows_file = tmp_path / "rows.csv"
    done = tickstep_cli("batch", "signal_cross", "--data", str(store), "-p", "fast=5,8",
                        "-p", "slow=30", "--no-cache", "--out", str(rows_file),
                        env=env_with(plugin))
    assert done.returncode == 0, done.stderr
    assert "6 jobs (0 from the cache, 6 ran, 0 failed)" in done.stderr
    rows = pd.read_csv(rows_file)
    with td.Store(store, read_only=True) as s:
        symbols = list(s.load().symbols)
    for symbol in symbols:
        for fast in (5, 8):
            row = rows[(rows["symbols"] == symbol) & (rows["fast"] == fast)]
            assert len(row) == 1
            expected = expected_stats(store, fast, 30, symbols=[symbol])
            assert row["# Trades"].iloc[0] == expected["# Trades"]
            assert row["Equity Final [$]"].iloc[0] == pytest.approx(
                expected["Equity Final [$]"], rel=1e-12)  # through CSV text


def test_rules_by_symbol_are_given_as_json_to_run_and_batch(plugin, store, tmp_path):
    # A parameter that also takes one number per symbol (sizes, stops, a time exit) takes
    # a mapping written as JSON, even where its default is a number (size's 0.3); in a
    # batch's list the commas inside a mapping do not split it.
    with td.Store(store, read_only=True) as s:
        symbols = list(s.load().symbols)
    first = symbols[0]
    sizes = dict(zip(symbols, (0.2, 0.4, 0.1)))  # every symbol with entries gives its own
    holds = {first: 3}
    done = tickstep_cli("run", "signal_cross", "--data", str(store), "-p", "fast=7", "-p", "slow=30",
                        "-p", f"size={json.dumps(sizes)}", "-p", f"exit_after_bars={json.dumps(holds)}",
                        "-p", "exit_portion=0.5", "--json", env=env_with(plugin), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["parameters"]["size"] == sizes and out["parameters"]["exit_after_bars"] == holds
    assert out["parameters"]["exit_portion"] == 0.5
    bt = tickstep.Backtest(str(store), tickstep.Strategy)
    with td.Store(store, read_only=True) as s:
        market = s.load()
    entries, exits = {}, {}
    for bars in market.bars:
        entries[bars.symbol], exits[bars.symbol] = cross_signals(bars.close, 7, 30)
    expected = bt.run_signals(entries, exits, size=sizes, exit_after_bars=holds, exit_portion=0.5).stats
    assert expected["# Trades"] > 0
    for label in ("# Trades", "Equity Final [$]", "Return [%]"):
        assert out["stats"][label] == expected[label], label
    without = bt.run_signals(entries, exits, size=sizes).stats
    assert without["Equity Final [$]"] != expected["Equity Final [$]"]  # the time exit acted
    # Limit entries: the first symbol's own limit as a mapping, the bars they work a number.
    done = tickstep_cli("run", "signal_cross", "--data", str(store), "-p", "fast=7", "-p", "slow=30",
                        "-p", f"limit={json.dumps({first: 0.01})}", "-p", "limit_bars=3", "--json",
                        env=env_with(plugin), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["parameters"]["limit"] == {first: 0.01} and out["parameters"]["limit_bars"] == 3
    limited = bt.run_signals(entries, exits, size=0.3, limit={first: 0.01}, limit_bars=3).stats
    for label in ("# Trades", "Equity Final [$]", "Return [%]"):
        assert out["stats"][label] == limited[label], label
    assert limited["Equity Final [$]"] != bt.run_signals(entries, exits, size=0.3).stats["Equity Final [$]"]
    # How conflicting signals are read: words.
    done = tickstep_cli("run", "signal_cross", "--data", str(store), "-p", "fast=7", "-p", "slow=30",
                        "-p", "conflict=entry", "-p", "opposite_entry=close", "--json",
                        env=env_with(plugin), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["parameters"]["conflict"], out["parameters"]["opposite_entry"]) == ("entry", "close")
    read = bt.run_signals(entries, exits, size=0.3, conflict="entry", opposite_entry="close").stats
    for label in ("# Trades", "Equity Final [$]", "Return [%]"):
        assert out["stats"][label] == read[label], label

    rows_file = tmp_path / "rows.csv"
    stops = [{first: 0.02, symbols[1]: 0.05}, {first: 0.1}]
    done = tickstep_cli("batch", "signal_cross", "--data", str(store), "-p", "fast=7", "-p", "slow=30",
                        "-p", "sl=" + ",".join(json.dumps(s) for s in stops), "--portfolio",
                        "--no-cache", "--out", str(rows_file), env=env_with(plugin))
    assert done.returncode == 0, done.stderr
    assert "2 jobs (0 from the cache, 2 ran, 0 failed)" in done.stderr
    rows = pd.read_csv(rows_file)
    for stop in stops:
        row = rows[rows["sl"] == str(stop)]
        assert len(row) == 1, rows[["symbols", "sl"]]
        alone = bt.run_signals(entries, exits, size=0.3, sl=stop).stats
        assert row["Equity Final [$]"].iloc[0] == pytest.approx(alone["Equity Final [$]"], rel=1e-12)
    assert rows["Equity Final [$]"].nunique() == 2
    # Each symbol alone: a job takes its symbol's entry of the mapping (none: no stop).
    done = tickstep_cli("batch", "signal_cross", "--data", str(store), "-p", "fast=7", "-p", "slow=30",
                        "-p", "sl=" + json.dumps(stops[0]), "--no-cache", "--out", str(rows_file),
                        env=env_with(plugin))
    assert done.returncode == 0, done.stderr
    rows = pd.read_csv(rows_file).set_index("symbols")
    assert sorted(rows.index) == sorted(symbols)
    for symbol in symbols:
        alone = tickstep.Backtest(str(store), tickstep.Strategy, symbols=[symbol])
        own = alone.run_signals({symbol: entries[symbol]}, {symbol: exits[symbol]}, size=0.3,
                                sl=stops[0].get(symbol)).stats
        assert rows.loc[symbol, "Equity Final [$]"] == pytest.approx(own["Equity Final [$]"], rel=1e-12)
    misspelt = tickstep_cli("batch", "signal_cross", "--data", str(store), "-p", "fast=7",
                            "-p", 'sl={"' + first.lower() + '": 0.02}', "--no-cache",
                            env=env_with(plugin))
    assert misspelt.returncode == 1, misspelt.stderr
    assert f"{first.lower()!r} is not a symbol of the data — did you mean {first!r}?" in misspelt.stderr

    refused = tickstep_cli("run", "signal_cross", "--data", str(store), "-p", "size={bad json",
                           env=env_with(plugin))
    assert refused.returncode == 2 and "size={bad json: expected a mapping written as JSON" in refused.stderr


def test_cli_refuses_what_is_not_a_strategy_naming_it(plugin, store, tmp_path):
    env = env_with(plugin)
    cases = [
        ("signal_plugin:Crosss", "has no 'Crosss' — did you mean 'Cross'?"),
        ("signal_plugin:np", "not a tickstep.Strategy subclass"),
        ("no_such_module:Cross", "no module 'no_such_module'"),
        (f"{tmp_path / 'missing.py'}:Cross", "no such file"),
        ("signal_crosss", "did you mean 'signal_cross'?"),
    ]
    for name, words in cases:
        done = tickstep_cli("run", name, "--data", str(store), env=env)
        assert done.returncode == 2, (name, done.stderr)
        assert words in done.stderr and name in done.stderr, (name, done.stderr)


def test_the_service_runs_a_plugin_signal_strategy(plugin, store, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", env_with(plugin)["PYTHONPATH"])
    server = Server(store, "--workers", "2").start()
    try:
        with server.client() as client:
            listed = {s["name"]: s for s in client.get("/strategies").json()}
            assert listed["signal_cross"]["parameters"]["fast"] == 5
            for parallel in (True, False):
                accepted = client.post("/batches", json={
                    "strategy": "signal_cross", "params": {"fast": [5, 8], "slow": [30]},
                    "parallel": parallel, "cache": False})
                assert accepted.status_code == 202, accepted.text
                batch_id = accepted.json()["batch_id"]
                status = wait_done(client, batch_id)
                assert status["status"] == "done", status
                rows = client.get(f"/batches/{batch_id}/results").json()["rows"]
                assert len(rows) == 6
                for row in rows:
                    assert row["status"] == "ok", row
                    expected = expected_stats(store, row["fast"], 30, symbols=[row["symbols"]])
                    assert row["# Trades"] == expected["# Trades"]
                    assert row["Equity Final [$]"] == expected["Equity Final [$]"]
            refused = client.post("/batches", json={"strategy": "signal_cross",
                                                    "params": {"fast": [2.5]}})
            assert refused.status_code == 422 and "fast" in refused.text
    finally:
        server.stop()
