"""benches/instructions.py's reading of callgrind's output: the run's totals by event
name, with and without the simulated caches (valgrind itself is not run here)."""

from __future__ import annotations

import sys
from pathlib import Path

BENCHES = Path(__file__).resolve().parents[1] / "benches"
sys.path.insert(0, str(BENCHES))

import instructions  # noqa: E402

#: The head of a callgrind output file as valgrind 3.19 writes it with --cache-sim=yes.
WITH_CACHES = """# callgrind format
version: 1
creator: callgrind-3.19.0
desc: I1 cache: 32768 B, 64 B, 8-way associative
positions: line
events: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw
summary: 287487926 91578009 41817241 5826365 2270135 604728 651 2380 165821

fl=(1) rust/signals.rs
fn=(1) tickstep::signals::run
10 5 2 1 1 0 0 0 0 0

totals: 287487926 91578009 41817241 5826365 2270135 604728 651 2380 165821
"""

INSTRUCTIONS_ONLY = """# callgrind format
version: 1
events: Ir
summary: 10146690

fl=(1) rust/signals.rs
fn=(1) tickstep::signals::run
10 7
"""


def test_the_totals_are_read_by_event_name():
    counts = instructions.totals(WITH_CACHES)
    assert counts["Ir"] == 287_487_926
    assert counts["I1mr"] == 5_826_365
    assert counts["D1mr"] == 2_270_135
    assert len(counts) == 9


def test_without_the_cache_simulation_only_instructions_are_counted():
    assert instructions.totals(INSTRUCTIONS_ONLY) == {"Ir": 10_146_690}


def test_a_file_without_totals_gives_nothing():
    assert instructions.totals("# callgrind format\nevents: Ir\n") == {}
    assert instructions.totals("summary: 12\n") == {}
