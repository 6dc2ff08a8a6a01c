"""Strategy parameters checked against their declared type, by name.

A parameter is a class attribute of a `~tickstep.Strategy`. Its type is its annotation
(``limit: float | None = None``), or else the type of its default value:

- ``int``: whole numbers; ``7.0`` is taken as ``7`` (grids often hold floats), ``2.7``,
  ``True`` and ``"7"`` are refused;
- ``float``: any real number except a bool, kept as a float;
- ``bool``: only True or False (``"no"``, ``0`` and ``1.0`` are refused);
- ``str``: only text;
- a union (``float | None``), a ``Literal[...]`` or a class: one of its members, one of
  its values, an instance.

A default of None or of another type, without an annotation, declares no type: any value
is taken. A refusal is a `ParameterError` (a ``TypeError``) naming the strategy, the
parameter, the value and the rule.
"""

from __future__ import annotations

import math
import numbers
import types
import typing
from typing import Any

import numpy as np

from tickstep._core import TickstepError

__all__ = ["ParameterError", "check_value", "declared_types"]


class ParameterError(TickstepError, TypeError):
    """A strategy parameter refused: a name the strategy does not declare, or a value not
    of the parameter's declared type. The message names the strategy, the parameter, the
    value and the rule."""

_NO_TYPE: Any = object()


def declared_types(cls: type, defaults: dict[str, Any]) -> dict[str, Any]:
    """Each parameter's declared type (an annotation or its default's type), if any."""
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # noqa: BLE001 - an annotation naming something undefined: use defaults
        hints = {}
    out = {}
    for name, default in defaults.items():
        if name in hints and not _is_classvar(hints[name]):
            out[name] = hints[name]
        elif isinstance(default, (bool, np.bool_)):
            out[name] = bool
        elif isinstance(default, numbers.Integral):
            out[name] = int
        elif isinstance(default, numbers.Real):
            out[name] = float
        elif isinstance(default, str):
            out[name] = str
    return out


def _is_classvar(tp: Any) -> bool:
    return tp is typing.ClassVar or typing.get_origin(tp) is typing.ClassVar


def _accept(tp: Any, value: Any) -> tuple[bool, Any]:
    """Whether ``value`` fits ``tp``, and the value to run with."""
    if tp is Any:
        return True, value
    if tp is None or tp is type(None):
        return value is None, value
    if tp is bool:
        return isinstance(value, (bool, np.bool_)), bool(value) if isinstance(value, np.bool_) else value
    if tp is int:
        if isinstance(value, (bool, np.bool_)):
            return False, value
        if isinstance(value, numbers.Integral):
            return True, int(value)
        if isinstance(value, numbers.Real) and math.isfinite(value) and float(value).is_integer():
            return True, int(value)
        return False, value
    if tp is float:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            return False, value
        return True, float(value)
    if tp is str:
        return isinstance(value, str), value
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        for member in typing.get_args(tp):
            ok, kept = _accept(member, value)
            if ok:
                return True, kept
        return False, value
    if origin is typing.Literal:
        return any(value == v and type(value) is type(v) for v in typing.get_args(tp)), value
    if isinstance(origin, type):
        return isinstance(value, origin), value
    if isinstance(tp, type):
        return isinstance(value, tp), value
    return True, value  # a typing construct with no runtime meaning here: not checked


def describe(tp: Any) -> str:
    """A type as a reader writes it: ``int``, ``float | None``, ``one of 'a', 'b'``."""
    if tp is None or tp is type(None):
        return "None"
    origin = typing.get_origin(tp)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(describe(m) for m in typing.get_args(tp))
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(v) for v in typing.get_args(tp))
    if isinstance(tp, type):
        return tp.__name__
    return str(tp).replace("typing.", "")


_RULES = {
    int: "int (a whole number)",
    float: "float (a real number)",
    bool: "bool (True or False)",
    str: "str (text)",
}


def check_value(owner: str, name: str, value: Any, declared: Any) -> Any:
    """``value`` for parameter ``name`` if it fits the ``declared`` type (the value to run
    with), else a `ParameterError` naming the strategy ``owner``, the parameter and the rule."""
    ok, kept = _accept(declared, value)
    if not ok:
        rule = _RULES.get(declared) or describe(declared)
        raise ParameterError(
            f"{owner} parameter {name}={value!r}: must be {rule}, got {type(value).__name__}"
        )
    return kept
