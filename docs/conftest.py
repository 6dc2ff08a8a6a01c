"""Every Python code block of the documentation pages runs in the test suite (Sybil).

A page's blocks run top to bottom in one namespace, as a reader would type them, inside a
scratch directory of their own (files a page writes, and the batch results cache, land
there). Blocks written as ``>>>`` sessions have their output checked (doctest); other
``python`` blocks must simply run. A block that needs PostgreSQL is preceded by
``% skip: next if(PG_URL is None, reason=...)`` and runs whenever ``TICKSTEP_PG_URL`` is
set, as in CI.
"""

from __future__ import annotations

import os
from doctest import ELLIPSIS, NORMALIZE_WHITESPACE

import pytest
from sybil import Sybil
from sybil.parsers.myst import PythonCodeBlockParser, SkipParser


@pytest.fixture(scope="module")
def docs_workdir(tmp_path_factory):
    """A fresh working directory and home for one page (scoped to the page)."""
    path = tmp_path_factory.mktemp("docs-page")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(path)
        mp.setenv("HOME", str(path))
        mp.setenv("XDG_CACHE_HOME", str(path / ".cache"))
        yield path


def _setup(namespace: dict) -> None:
    namespace["PG_URL"] = os.environ.get("TICKSTEP_PG_URL") or None


pytest_collect_file = Sybil(
    parsers=[
        PythonCodeBlockParser(doctest_optionflags=ELLIPSIS | NORMALIZE_WHITESPACE),
        SkipParser(),
    ],
    patterns=["*.md"],
    fixtures=["docs_workdir"],
    setup=_setup,
).pytest()
