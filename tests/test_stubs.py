"""The hand-written stubs of the compiled module match the module itself."""

import shutil
import subprocess
import sys

import pytest


def test_core_stubs_match_the_compiled_module():
    if shutil.which("mypy") is None and subprocess.run(
        [sys.executable, "-c", "import mypy"], capture_output=True
    ).returncode != 0:
        pytest.fail("mypy is a dev dependency (pip install -e .[dev]); it is needed to check the stubs")
    run = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "tickstep._core"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stdout + run.stderr
