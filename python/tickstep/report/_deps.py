"""The plotting extra: imported on first use, with a message saying what to install."""

from __future__ import annotations

from types import ModuleType

INSTALL_HINT = "pip install 'tickstep[plot]'  (plotly and tsdownsample)"


def _need(module: str) -> ModuleType:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise ImportError(
            f"tickstep's plots and reports need {module.split('.')[0]!r}, which is not "
            f"installed: {INSTALL_HINT}"
        ) from e


def plotly_objects() -> ModuleType:
    """``plotly.graph_objects``."""
    return _need("plotly.graph_objects")


def plotly_offline() -> ModuleType:
    """``plotly.offline`` (it ships plotly.js, embedded in reports)."""
    return _need("plotly.offline")


def tsdownsample() -> ModuleType:
    return _need("tsdownsample")
