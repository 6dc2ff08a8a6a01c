"""The documentation cannot rot: docstring examples run, public names are documented.

- Every ``>>>`` example in a docstring anywhere in the package runs and prints what it
  shows (the guide's pages are run by docs/conftest.py).
- Every name in ``__all__`` of ``tickstep`` and of its public modules has a docstring
  (a constant: a ``#:`` comment, which is what autodoc shows).
- Every such name appears in the API reference: on the ``tickstep`` page when
  ``tickstep`` exports it, else on its module's page.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re
import types
from pathlib import Path

import pytest
import tickstep
from sphinx.pycode import ModuleAnalyzer

DOCS = Path(__file__).resolve().parents[1] / "docs"
REFERENCE = DOCS / "reference"


def _all_modules() -> list[types.ModuleType]:
    """tickstep and every module under it (private ones too: their examples must run)."""
    modules = [tickstep]
    for info in pkgutil.walk_packages(tickstep.__path__, "tickstep."):
        if info.name == "tickstep.__main__":
            continue
        modules.append(importlib.import_module(info.name))
    return modules


def public_modules() -> list[types.ModuleType]:
    """``tickstep`` and its direct submodules whose names do not start with ``_`` and
    that declare ``__all__``: the public API."""
    found = [tickstep]
    for info in pkgutil.iter_modules(tickstep.__path__, "tickstep."):
        leaf = info.name.rsplit(".", 1)[1]
        if leaf.startswith("_"):
            continue
        module = importlib.import_module(info.name)
        if hasattr(module, "__all__"):
            found.append(module)
    return found


def _public_names() -> list[tuple[str, str]]:
    return [(m.__name__, name) for m in public_modules() for name in m.__all__]


# ---- docstring examples -----------------------------------------------------------------

def _docstring_examples() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests = []
    for module in _all_modules():
        tests.extend(t for t in finder.find(module) if t.examples)
    return sorted(tests, key=lambda t: t.name)


EXAMPLES = _docstring_examples()


def test_the_package_has_docstring_examples():
    # The collector itself could break (e.g. find nothing); the package has dozens.
    assert len(EXAMPLES) >= 20


@pytest.mark.parametrize("example", EXAMPLES, ids=[t.name for t in EXAMPLES])
def test_docstring_example(example, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # the batch results cache lives under ~/.cache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / ".cache"))
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    out: list[str] = []
    example.globs = dict(example.globs)  # each example in a fresh copy of its module's names
    result = runner.run(example, out=out.append)
    assert result.failed == 0, "".join(out)


# ---- every public name documented ---------------------------------------------------------

def _attribute_docs(name: str) -> bool:
    """Whether a module-level constant called ``name`` carries a ``#:`` doc comment in some
    module of the package (a constant has no docstring of its own)."""
    for module in _all_modules():
        try:
            docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        except Exception:  # noqa: BLE001 - the compiled module has no source to analyse
            continue
        if any("".join(lines).strip() for (scope, attr), lines in docs.items()
               if scope == "" and attr == name):
            return True
    return False


def _has_docs(obj: object, name: str) -> bool:
    if isinstance(obj, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
        return bool((obj.__doc__ or "").strip())
    if callable(obj) and not isinstance(obj, (str, bytes, tuple, list, dict)):
        return bool((inspect.getdoc(obj) or "").strip())
    return _attribute_docs(name)


def test_public_api_is_found():
    modules = {m.__name__ for m in public_modules()}
    assert {"tickstep", "tickstep.data", "tickstep.batch", "tickstep.metrics"} <= modules


@pytest.mark.parametrize(("module", "name"), _public_names(),
                         ids=[f"{m}.{n}" for m, n in _public_names()])
def test_public_name_has_a_docstring(module, name):
    obj = getattr(importlib.import_module(module), name)
    assert _has_docs(obj, name), f"{module}.{name} is in __all__ but has no docstring"


# ---- every public name in the API reference ----------------------------------------------

_AUTOMODULE = re.compile(
    r"^\.\. automodule:: (?P<module>\S+)\n(?P<options>(?:[ \t]+:.*\n)*)", re.M
)


_CLICK = re.compile(r"^\.\. click:: (?P<module>[\w.]+):(?P<name>\w+)$", re.M)


def reference_pages() -> dict[str, set[str]]:
    """Module -> names its reference page documents (``__all__`` minus exclusions; a
    Click command documented by ``.. click::`` counts for its name)."""
    pages: dict[str, set[str]] = {}
    for page in REFERENCE.glob("*.md"):
        for match in _CLICK.finditer(page.read_text()):
            pages.setdefault(match["module"], set()).add(match["name"])
        for match in _AUTOMODULE.finditer(page.read_text()):
            module = importlib.import_module(match["module"])
            options = dict(
                (k.strip(), v.strip())
                for k, _, v in (line.strip()[1:].partition(":")
                                for line in match["options"].splitlines())
            )
            if "no-index" in options:
                continue  # shown, not the place where the name is documented
            names = set(getattr(module, "__all__", ()))
            listed = options.get("members", "")
            if listed:
                names &= {n.strip() for n in listed.split(",")}
            names -= {n.strip() for n in options.get("exclude-members", "").split(",")}
            pages.setdefault(match["module"], set()).update(names)
    return pages


def test_reference_pages_name_real_modules():
    pages = reference_pages()
    assert "tickstep" in pages and pages["tickstep"] == set(tickstep.__all__)


@pytest.mark.parametrize(("module", "name"), _public_names(),
                         ids=[f"{m}.{n}" for m, n in _public_names()])
def test_public_name_is_in_the_reference(module, name):
    pages = reference_pages()
    obj = getattr(importlib.import_module(module), name)
    on_top_page = name in pages["tickstep"] and getattr(tickstep, name, None) is obj
    on_own_page = name in pages.get(module, ())
    assert on_top_page or on_own_page, (
        f"{module}.{name} is public but no page of docs/reference documents it: add "
        f"'.. automodule:: {module}' to a page, or export it from tickstep"
    )
