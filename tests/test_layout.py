"""The package's shape: no import circles, and each rule in one place."""

from __future__ import annotations

import graphlib

import grimp
import pytest


@pytest.fixture(scope="module")
def imports() -> dict[str, set[str]]:
    """Every module of tickstep -> the tickstep modules it imports (lazy imports too)."""
    graph = grimp.build_graph("tickstep")
    deps: dict[str, set[str]] = {}
    for module in graph.modules:
        found = set(graph.find_modules_directly_imported_by(module))
        if "tickstep" in found:
            # grimp sees no Python file for the compiled core, so `from tickstep import
            # _core` reads as an import of the package itself; it is an import of a leaf.
            lines = {d["line_contents"] for d in
                     graph.get_import_details(importer=module, imported="tickstep")}
            if lines <= {"from tickstep import _core"}:
                found.discard("tickstep")
                found.add("tickstep._core")
        deps[module] = found
    return deps


def test_no_import_circles(imports):
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as exc:
        cycle = exc.args[1]
        pytest.fail("import circle: " + " -> ".join(reversed(cycle)))


def test_the_cycle_check_sees_a_circle():
    """The check itself would fail on a circle (so passing means something)."""
    with pytest.raises(graphlib.CycleError):
        graphlib.TopologicalSorter({"a": {"b"}, "b": {"a"}}).prepare()


def test_batch_does_not_import_backtest(imports):
    batch = {m for m in imports if m.startswith("tickstep.batch")}
    assert batch
    for module in batch:
        assert "tickstep.backtest" not in imports[module], module


def test_only_the_simulation_path_builds_an_engine():
    """`_core.Engine(` is called in tickstep.simulation alone."""
    from pathlib import Path

    import tickstep

    root = Path(tickstep.__file__).parent
    callers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                     if "_core.Engine(" in p.read_text() or "Engine(market" in p.read_text())
    assert callers == ["simulation.py"]
