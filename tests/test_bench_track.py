"""The benchmark tracker (benches/track.py, track_criterion.py, track_chart.py) as a
program: its records follow the schema, its check passes a normal build and fails a
deliberately slowed one, criterion's comparison files read back as a table.

No figure of the engine's speed is asserted here: the end-to-end check runs on a tiny
data set with a slowdown far beyond any threshold, and the threshold logic is tested on
hand-made numbers.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import sys
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHES = ROOT / "benches"
sys.path.insert(0, str(BENCHES))

import track  # noqa: E402
import track_criterion  # noqa: E402

TINY = "minute_10x14k"
TRACKED = "native_studies,noop"


def run_tracker(*args: str, slowdown: int = 0) -> tuple[int, str]:
    """``benches/track.py ARGS`` in this process (no second interpreter start-up), with
    ``TICKSTEP_BENCH_SLOWDOWN`` set to ``slowdown``: exit code and printed output."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out):
        mp.setenv("TICKSTEP_BENCH_SLOWDOWN", str(slowdown))
        try:
            code = track.main(list(args))
        except SystemExit as e:  # argparse and the tracker's own refusals
            code = e.code if isinstance(e.code, int) else 2
            print(e.code)
    return code, out.getvalue()


@pytest.fixture(scope="module")
def tiny_history(tmp_path_factory) -> Path:
    """A history with one record of the tracked workloads on the tiny data set."""
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    code, out = run_tracker(
        "record", "--data", TINY, "--only", TRACKED, "--rounds", "5", "--history", str(path)
    )
    assert code == 0, out
    return path


# ---- the record ----------------------------------------------------------------------------


def test_committed_history_follows_the_schema():
    records = track.read_history(track.HISTORY)
    assert records, "benches/history.jsonl holds no record"
    for rec in records:
        track.validate(rec)
        assert rec["slowdown"] == 0
        assert set(track.CHECKED) <= set(rec["ratios"]), "a record must cover what the check runs"


def test_a_fresh_record_follows_the_schema(tiny_history):
    (rec,) = track.read_history(tiny_history)
    track.validate(rec)
    assert rec["rounds"] == 5 and rec["slowdown"] == 0
    assert set(rec["ratios"]) == set(TRACKED.split(","))
    # each workload is judged against its reference, which ran in the same rounds
    assert rec["ratios"]["noop"]["reference"] == "python_call"
    assert rec["ratios"]["native_studies"]["reference"] == "numpy_loop"
    for name, ratio in rec["ratios"].items():
        probe, ref = rec["probes"][name], rec["probes"][ratio["reference"]]
        assert probe["dataset"] == ref["dataset"] == TINY
        # the median of per-round ratios lies between the extreme ratios of medians
        lo = (probe["cpu_s"]["min"] / probe["elements"]) / (ref["cpu_s"]["max"] / ref["elements"])
        hi = (probe["cpu_s"]["max"] / probe["elements"]) / (ref["cpu_s"]["min"] / ref["elements"])
        assert lo <= ratio["median"] <= hi
        assert ratio["min"] <= ratio["median"] <= ratio["max"]


@pytest.mark.parametrize(
    "breakage, error",
    [
        (lambda r: r.pop("commit"), jsonschema.ValidationError),
        (lambda r: r.update(commit="HEAD"), jsonschema.ValidationError),
        (lambda r: r["machine"].update(cores=0), jsonschema.ValidationError),
        (lambda r: r["machine"].update(load_before=[1.0, 2.0]), jsonschema.ValidationError),
        (lambda r: r["probes"]["noop"]["cpu_s"].update(median=-1.0), jsonschema.ValidationError),
        (lambda r: r["ratios"]["noop"].update(reference="wall_clock"), jsonschema.ValidationError),
        (lambda r: r.update(extra_field=1), jsonschema.ValidationError),
        (lambda r: r["probes"]["noop"]["cpu_samples_s"].pop(), ValueError),
        (lambda r: r["probes"].pop("python_call"), ValueError),
        (lambda r: r["ratios"].update(fakeout=r["ratios"]["noop"]), ValueError),
    ],
)
def test_the_schema_refuses_a_broken_record(tiny_history, breakage, error):
    (rec,) = track.read_history(tiny_history)
    broken = copy.deepcopy(rec)
    breakage(broken)
    with pytest.raises(error):
        track.validate(broken)


# ---- the check on recorded numbers ----------------------------------------------------------


def record(ratio: float, spread: float, *, cpu="cpu A", elements=1000, slowdown=0, commit="a"):
    """A minimal history record of one workload (noop) judged against python_call."""
    summary = {"median": 1.0, "spread": 0.0, "min": 1.0, "max": 1.0}
    probe = {
        "kind": "workload",
        "dataset": "d",
        "elements": elements,
        "cpu_s": summary,
        "wall_s": summary,
        "cpu_samples_s": [1.0],
    }
    return {
        "commit": commit * 40,
        "machine": {"cpu": cpu},
        "slowdown": slowdown,
        "probes": {"noop": probe, "python_call": {**probe, "kind": "reference"}},
        "ratios": {
            "noop": {
                "reference": "python_call",
                "median": ratio,
                "spread": spread,
                "min": ratio,
                "max": ratio,
                "to": {"python_call": ratio},
            }
        },
    }


def test_the_check_passes_changes_within_the_noise_and_fails_beyond():
    history = [record(2.0, 0.02)]
    (same,) = track.judge(record(2.0, 0.02), history)
    (slower,) = track.judge(record(2.2, 0.02), history)  # +10%: under the 15% floor
    (faster,) = track.judge(record(1.0, 0.02), history)
    (regressed,) = track.judge(record(2.4, 0.02), history)  # +20%
    assert not same.regressed and same.change == 0
    assert not slower.regressed and slower.threshold == track.FLOOR
    assert not faster.regressed and faster.change == -0.5
    assert regressed.regressed and regressed.change == pytest.approx(0.2)


def test_the_threshold_grows_with_the_observed_spread():
    # spreads of 10% in both runs: pooled 14.1%, allowed 4 x that = 56.6%
    (noisy,) = track.judge(record(2.4, 0.10), [record(2.0, 0.10)])
    assert noisy.threshold == pytest.approx(track.NOISE_FACTOR * 0.1 * 2**0.5)
    assert not noisy.regressed
    (far,) = track.judge(record(3.4, 0.10), [record(2.0, 0.10)])  # +70%
    assert far.regressed


def test_the_baseline_is_the_last_comparable_record():
    history = [
        record(2.0, 0.01, commit="a"),
        record(4.0, 0.01, commit="b", cpu="cpu B"),  # another machine
        record(9.0, 0.01, commit="c", slowdown=50),  # a slowed build never counts
        record(8.0, 0.01, commit="d", elements=5),  # other data
    ]
    (v,) = track.judge(record(2.1, 0.01), history)
    assert v.baseline_commit == "a" * 10 and not v.regressed
    # with no record of this CPU, the last comparable one of another machine is used
    (v,) = track.judge(record(2.1, 0.01, cpu="cpu C"), history)
    assert v.baseline_commit == "b" * 10 and v.change < 0
    assert track.judge(record(2.0, 0.01, elements=7), history) == []


# ---- the check end to end ---------------------------------------------------------------------


def test_the_check_passes_the_normal_build(tmp_path):
    # Each attempt records the build and checks it right after, so both runs see the same
    # phase of the machine. On the tiny data set a round takes milliseconds and a burst of
    # other work can still move one run's ratio beyond the allowed noise (seen once in CI:
    # noop 1.26 -> 1.75 x python_call while python_call itself moved 36-58 ms), so a false
    # alarm is allowed to clear on a second or third attempt; a check that flags the same
    # build every time fails. That the check fails a slowed build is the next test.
    outputs = []
    for attempt in range(3):
        args = ("--data", TINY, "--only", TRACKED, "--rounds", "5",
                "--history", str(tmp_path / f"history{attempt}.jsonl"))
        code, out = run_tracker("record", *args)
        assert code == 0, out
        code, out = run_tracker("check", *args)
        outputs.append(out)
        if code == 0:
            break
    assert code == 0, "\n\n".join(outputs)
    assert "no regression" in out and "2 ratios compared" in out


def test_the_check_fails_a_slowed_build(tiny_history):
    # 30 extra loop iterations in every Python callback, 30 extra rolling means in the
    # native loop: several times the work of each workload's hot loop
    code, out = run_tracker(
        "check",
        "--data",
        TINY,
        "--only",
        TRACKED,
        "--rounds",
        "3",
        "--history",
        str(tiny_history),
        slowdown=30,
    )
    assert code == 1, out
    verdict = out.splitlines()[-1]
    assert verdict.startswith("REGRESSION:")
    assert "noop is +" in verdict and "native_studies is +" in verdict
    assert "measuring them again" in out  # a regression is confirmed before failing
    assert "2 ratios compared" in out


def test_a_slowed_build_is_never_recorded(tmp_path):
    path = tmp_path / "h.jsonl"
    code, out = run_tracker(
        "record", "--data", TINY, "--only", "noop", "--history", str(path), slowdown=5
    )
    assert code == 2 and "refusing" in out
    assert not path.exists()


def test_the_slowed_strategy_trades_like_the_original(monkeypatch):
    """The switch adds work, not behaviour: the slowed SmaCross makes the same trades."""
    import _harness as h
    import tickstep
    import workloads
    from tickstep.strategies import SmaCross

    market = h.load(TINY)
    monkeypatch.setenv("TICKSTEP_BENCH_SLOWDOWN", "3")
    slowed = workloads.slowed(SmaCross)
    assert slowed is not SmaCross and issubclass(slowed, SmaCross)
    runs = [
        tickstep.Backtest(market, s, cash=1e6, sizer=tickstep.FixedSize(1)).run()
        for s in (SmaCross, slowed)
    ]
    assert len(runs[0].trades) > 0
    assert runs[0].trades.equals(runs[1].trades)
    monkeypatch.setenv("TICKSTEP_BENCH_SLOWDOWN", "0")
    assert workloads.slowed(SmaCross) is SmaCross


def test_the_chart_draws_every_workload(tiny_history, tmp_path):
    import track_chart

    history = track.read_history(tiny_history)
    fig = track_chart.figure(history)
    lines = {t.name: t for t in fig.data if t.name and " / " in t.name}
    assert set(lines) == {f"{n} / {r['reference']}" for n, r in history[0]["ratios"].items()}
    for name, ratio in history[0]["ratios"].items():
        assert list(lines[f"{name} / {ratio['reference']}"].y) == [ratio["median"]]
    out = track_chart.write(history, tmp_path / "chart.html")
    assert "plotly" in out.read_text()[:5_000_000].lower()


# ---- criterion's comparison --------------------------------------------------------------------


def write_bench(
    root: Path, group: str, bench: str, base: float, new: float, ci: tuple[float, float]
):
    """criterion's files of one bench compared against a baseline named 'main'."""
    d = root / group / bench

    def estimate(point: float, lo: float, hi: float) -> dict:
        ci = {"confidence_level": 0.95, "lower_bound": lo, "upper_bound": hi}
        return {"point_estimate": point, "standard_error": 0.0, "confidence_interval": ci}

    for sub, point in (("main", base), ("new", new)):
        (d / sub).mkdir(parents=True)
        (d / sub / "estimates.json").write_text(
            json.dumps({"median": estimate(point * 1e9, point * 1e9, point * 1e9)})
        )
    (d / "new" / "benchmark.json").write_text(json.dumps({"full_id": f"{group}/{bench}"}))
    (d / "change").mkdir()
    change = new / base - 1
    (d / "change" / "estimates.json").write_text(json.dumps({"median": estimate(change, *ci)}))


def test_criterion_comparisons_read_back_as_a_table(tmp_path):
    write_bench(tmp_path, "tick_loop", "20", 0.100, 0.130, (0.25, 0.35))
    write_bench(tmp_path, "tick_loop", "1", 0.100, 0.101, (-0.03, 0.05))
    write_bench(tmp_path, "rolling", "mean", 0.100, 0.080, (-0.25, -0.15))
    rows = {r["bench"]: r for r in track_criterion.comparisons("main", root=tmp_path)}
    assert rows["tick_loop/20"]["verdict"] == "REGRESSED"
    assert rows["tick_loop/20"]["change"] == pytest.approx(0.3)
    assert rows["tick_loop/1"]["verdict"] == "within noise"
    assert rows["rolling/mean"]["verdict"] == "improved"
    text = track_criterion.table(list(rows.values()), "main")
    assert "+30.0%" in text and "[+25.0%, +35.0%]" in text
    assert "3 benches: 1 regressed, 1 improved" in text
    # a bench compared against another baseline is not reported
    assert track_criterion.comparisons("other", root=tmp_path) == []


@pytest.mark.parametrize(
    "lower, upper, verdict",
    [
        (0.021, 0.5, "REGRESSED"),
        (0.019, 0.5, "within noise"),
        (-0.5, -0.021, "improved"),
        (-0.5, 0.5, "within noise"),
    ],
)
def test_criterion_verdict_follows_its_noise_rule(lower, upper, verdict):
    assert track_criterion.verdict(lower, upper) == verdict
