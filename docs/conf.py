"""Sphinx configuration of tickstep's documentation (``make docs`` -> target/docs).

Pages are MyST Markdown (the guide reads like the README and its code blocks are run by
the test suite through Sybil, see docs/conftest.py); the API reference is autodoc over
the installed package, docstrings in numpydoc format. The build is offline: no
intersphinx, no remote assets needed to build.
"""

from __future__ import annotations

import tickstep

project = "tickstep"
author = "the tickstep developers"
copyright = "the tickstep developers"
release = version = tickstep.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "numpydoc",
    "sphinx.ext.viewcode",
    "sphinx_click",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "conftest.py", "__init__.py"]

# `name` in a docstring links to that object when it can be found; no warning otherwise
# (pandas/numpy names are not resolved in an offline build).
default_role = "py:obj"

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "none"  # numpydoc sections carry the types; signatures stay short
# A member without a docstring of its own shows none, rather than its base class's (the
# standard library's Executor.submit text is not ours, nor valid reST).
autodoc_inherit_docstrings = False
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": True}

numpydoc_show_class_members = False  # autodoc lists the members itself
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "furo"
html_title = f"tickstep {release}"
html_show_sourcelink = False
pygments_style = "sphinx"
# Command lines and option names stay as typed: no "--" turned into a dash.
smartquotes = False


def _module_sections_as_rubrics(app, what, name, obj, options, lines):
    """numpydoc leaves module docstrings alone, so their ``Examples`` / ``--------``
    headings would become page sections (and clash between pages); show them as the
    rubrics numpydoc makes of the same headings in classes and functions."""
    if what != "module":
        return
    for i in range(len(lines) - 1):
        title, underline = lines[i].strip(), lines[i + 1].strip()
        if title and underline and set(underline) == {"-"} and len(underline) >= len(title):
            lines[i] = f".. rubric:: {title}"
            lines[i + 1] = ""


def setup(app):
    app.connect("autodoc-process-docstring", _module_sections_as_rubrics)
