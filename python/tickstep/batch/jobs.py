"""What a batch is made of: strategy references, parameter grids, jobs and their keys.

A job is (strategy, parameters, symbols, data source, engine options). Everything a
worker needs travels as small picklable values: the strategy as ``"module:Class"`` (or,
for a class that cannot be imported by name, its cloudpickle), the data as a
`~tickstep.batch.sources.DataSource`, never as bars.

A job's cache key hashes what determines its result: the fingerprint of its symbols'
bars and metadata, the strategy's code, the parameters, the engine options and
tickstep's own code.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import itertools
import math
import pickle
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from tickstep._core import ConfigError
from tickstep.strategy import Strategy

__all__ = [
    "Job",
    "Params",
    "StrategyRef",
    "code_fingerprint",
    "engine_fingerprint",
    "expand_grid",
    "sample_sets",
    "job_key",
    "loader_fingerprint",
    "options_fingerprint",
    "resolve_strategy",
]

KEY_VERSION = "tickstep-batch-1"


def _digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=20)
    for p in parts:
        b = p.encode() if isinstance(p, str) else p
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)
    return h.hexdigest()


# ---- strategies ----------------------------------------------------------------------------


def _import_qualname(module: str, qualname: str) -> Any:
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


@dataclass(frozen=True)
class StrategyRef:
    """A strategy class as workers receive it: by importable name, or pickled by value.

    Attributes
    ----------
    name : str
        ``"module:QualName"`` (by reference) or the class's qualified name (by value).
    payload : bytes or None
        cloudpickle of the class when it cannot be imported by name in another process
        (defined in ``__main__``, a notebook or a function); None otherwise.
    """

    name: str
    payload: bytes | None = None
    cls: type[Strategy] | None = field(default=None, compare=False, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        # Workers rebuild the class from the name or the payload; the class is not sent.
        return {"name": self.name, "payload": self.payload}

    def __setstate__(self, state: dict[str, Any]) -> None:
        object.__setattr__(self, "name", state["name"])
        object.__setattr__(self, "payload", state["payload"])
        object.__setattr__(self, "cls", None)

    @property
    def token(self) -> str:
        """Identity of the class as shipped (for per-process caches)."""
        return self.name if self.payload is None else _digest(self.name, self.payload)

    def load(self) -> type[Strategy]:
        """The strategy class (imported, or unpickled)."""
        if self.cls is not None:
            return self.cls
        if self.payload is not None:
            cls = pickle.loads(self.payload)
        else:
            module, _, qualname = self.name.partition(":")
            cls = _import_qualname(module, qualname)
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"{self.name} is not a tickstep.Strategy subclass")
        return cls


def resolve_strategy(strategy: type[Strategy] | str) -> StrategyRef:
    """Turn a class, ``"module:Class"`` or a plugin name into a `StrategyRef`.

    Parameters
    ----------
    strategy : type[Strategy] or str
        A `Strategy` subclass; ``"package.module:ClassName"``; or a name from the plugin
        registry (`tickstep.strategies.load`: the ``tickstep.strategies`` entry-point
        group, where tickstep's own strategies are registered too).

    Returns
    -------
    StrategyRef
        By reference when the class can be imported by name, else by value (needs
        ``cloudpickle``, installed with ``tickstep[dask]``).
    """
    if isinstance(strategy, str) and ":" not in strategy:
        from tickstep import strategies

        # The plugin registry (the tickstep.strategies entry points, ours included).
        strategy = strategies.load(strategy)
    if isinstance(strategy, str):
        module, _, qualname = strategy.partition(":")
        cls = _import_qualname(module.strip(), qualname.strip())
        if not (isinstance(cls, type) and issubclass(cls, Strategy)):
            raise TypeError(f"{strategy!r} names {cls!r}, not a tickstep.Strategy subclass")
        return StrategyRef(f"{module.strip()}:{qualname.strip()}", None, cls)
    if not (isinstance(strategy, type) and issubclass(strategy, Strategy)):
        raise TypeError(f"strategy must be a tickstep.Strategy subclass or a name, got {strategy!r}")
    cls = strategy
    name = f"{cls.__module__}:{cls.__qualname__}"
    if cls.__module__ != "__main__" and "<locals>" not in cls.__qualname__:
        try:
            if _import_qualname(cls.__module__, cls.__qualname__) is cls:
                return StrategyRef(name, None, cls)
        except (ImportError, AttributeError):
            pass
    try:
        import cloudpickle
    except ImportError:  # pragma: no cover - cloudpickle comes with the dask extra
        raise TypeError(
            f"{cls.__qualname__} cannot be imported by name from another process (it is "
            "defined in __main__ or inside a function); move it to a module, or install "
            "cloudpickle (pip install 'tickstep[dask]') to send it by value"
        ) from None
    return StrategyRef(name, cloudpickle.dumps(cls), cls)


# ---- code fingerprints ---------------------------------------------------------------------


def _library_roots() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    roots = {paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths}
    roots.add(sys.base_prefix)
    return tuple(sorted(str(Path(r).resolve()) for r in roots))


def _is_user_module(module: types.ModuleType | None) -> bool:
    """A module of the user's own code: file-backed, not stdlib, site-packages or tickstep."""
    if module is None or module.__name__.split(".")[0] in ("tickstep", "builtins"):
        return False
    file = getattr(module, "__file__", None)
    if not file or not str(file).endswith(".py"):
        return module.__name__ == "__main__"
    resolved = str(Path(file).resolve())
    return not resolved.startswith(_library_roots())


def _code_digest(h: Any, code: types.CodeType) -> None:
    h.update(code.co_code)
    h.update(repr(code.co_names).encode())
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            _code_digest(h, const)
        else:
            h.update(repr(const).encode())


def _class_digest(cls: type) -> str:
    """Fallback when no source file exists: the class's bytecode and attribute values."""
    h = hashlib.blake2b(digest_size=20)
    for name, value in sorted(vars(cls).items()):
        h.update(name.encode())
        func = getattr(value, "__func__", value)
        code = getattr(func, "__code__", None)
        if isinstance(code, types.CodeType):
            _code_digest(h, code)
        elif not name.startswith("__"):
            h.update(repr(value).encode())
    return h.hexdigest()


def _module_source(module: types.ModuleType) -> str | None:
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):
        return None


_CODE_MEMO: weakref.WeakKeyDictionary[type, str] = weakref.WeakKeyDictionary()


def code_fingerprint(cls: type[Strategy]) -> str:
    """Hash of the code that defines ``cls``'s behaviour.

    The source of the module of every class in its MRO (outside tickstep, which
    `engine_fingerprint` covers), plus the source of the user modules those modules
    import names from (one level). Classes without a source file (an interactive
    session) are hashed by bytecode and attribute values.

    The fingerprint is computed once per class object: editing a module changes it
    after the module is reloaded (a new class object), which is also when this process
    starts running the new code.
    """
    memo = _CODE_MEMO.get(cls)
    if memo is not None:
        return memo
    parts: dict[str, str] = {}
    for klass in cls.__mro__:
        if klass is object or not issubclass(klass, Strategy) or klass is Strategy:
            continue
        module = sys.modules.get(klass.__module__)
        if not _is_user_module(module):
            parts[f"lib:{klass.__module__}:{klass.__qualname__}"] = ""
            continue
        assert module is not None
        source = _module_source(module)
        try:
            parts[f"class:{klass.__qualname__}"] = inspect.getsource(klass)
        except (OSError, TypeError):
            parts[f"class:{klass.__qualname__}"] = _class_digest(klass)
        if source is None:
            continue
        parts[f"module:{module.__name__}"] = source
        for value in list(vars(module).values()):
            if not isinstance(value, (types.ModuleType, type, types.FunctionType)):
                continue
            dep = value if isinstance(value, types.ModuleType) else inspect.getmodule(value)
            if dep is not None and dep is not module and _is_user_module(dep):
                dep_source = _module_source(dep)
                if dep_source is not None:
                    parts[f"module:{dep.__name__}"] = dep_source
    digest = _digest(*(f"{k}\0{v}" for k, v in sorted(parts.items())))
    _CODE_MEMO[cls] = digest
    return digest


def _tickstep_sources(include: Callable[[Path], bool]) -> list[str]:
    root = Path(__file__).resolve().parents[1]  # the tickstep package
    parts = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if include(rel):
            parts += [rel.as_posix(), path.read_bytes().decode("utf-8", "replace")]
    return parts


def _affects_results(rel: Path) -> bool:
    # Loading code is covered by the data's own fingerprint (a hash of the loaded bars),
    # and the batch machinery by KEY_VERSION, except the worker's run_stats.
    top = rel.parts[0]
    if top in ("data", "cli", "service") or rel.as_posix() in ("__main__.py", "cli.py"):
        return False
    return top != "batch" or rel.name == "worker.py"


@lru_cache(maxsize=1)
def engine_fingerprint() -> str:
    """Hash of the tickstep code a result depends on: its version, the compiled core's
    bytes, and the Python files of the engine, metrics, sizing and shipped strategies.

    A development build changes the hash whenever that code does, not only on a
    release, so cached results never outlive an engine change.
    """
    from tickstep import _core

    core = hashlib.blake2b(Path(_core.__file__).read_bytes(), digest_size=20).hexdigest()
    return _digest(KEY_VERSION, str(_core.__version__), core,
                   *_tickstep_sources(_affects_results))


@lru_cache(maxsize=1)
def loader_fingerprint() -> str:
    """Hash of tickstep's data-loading code (keys the cached fingerprints of stores)."""
    return _digest(KEY_VERSION, *_tickstep_sources(lambda rel: rel.parts[0] == "data"))


# ---- values, parameters, grids -------------------------------------------------------------


def canonical(value: Any) -> str:
    """A stable text form of a parameter or option value, for hashing.

    Floats are written exactly (``float.hex``), so 0.1 and 0.1000000001 differ, and
    ``1``, ``1.0`` and ``True`` are three different values.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, int):
        return f"i{value}"
    if isinstance(value, float):
        return f"f{value.hex()}" if math.isfinite(value) else f"f{value}"
    if isinstance(value, (list, tuple)):
        return f"{type(value).__name__}[{','.join(canonical(v) for v in value)}]"
    if isinstance(value, Mapping):
        items = sorted((canonical(k), canonical(v)) for k, v in value.items())
        return "{" + ",".join(f"{k}:{v}" for k, v in items) + "}"
    text = repr(value)
    if " at 0x" in text:
        # An object without a meaningful repr: hash its pickle (picklable is required
        # anyway to reach a worker).
        return "p" + hashlib.blake2b(pickle.dumps(value, protocol=5), digest_size=16).hexdigest()
    return f"{type(value).__module__}.{type(value).__qualname__}:{text}"


def options_fingerprint(options: Mapping[str, Any]) -> str:
    """Hash of the engine options (cash, commission, sizer, ...)."""
    return _digest(*(f"{k}={canonical(v)}" for k, v in sorted(options.items())))


class Params(dict):
    """One parameter set; read as a mapping or by attribute (``p.fast < p.slow``).

    Examples
    --------
    >>> p = Params(fast=10, slow=30)
    >>> p.fast < p.slow, p["slow"]
    (True, 30)
    """

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable)


def expand_grid(
    params: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
    constraint: Callable[[Params], bool] | None = None,
) -> list[dict[str, Any]]:
    """Parameter sets of a batch, in grid order.

    Parameters
    ----------
    params : mapping or sequence of mappings, optional
        ``{name: values}``: the Cartesian product of the values (a scalar, string or
        mapping counts as one value), the last name varying fastest; or an explicit
        list of parameter sets. None: one run with the strategy's defaults.
    constraint : callable, optional
        ``constraint(p) -> bool`` keeps only the sets it accepts; ``p`` is a `Params`.

    Returns
    -------
    list of dict

    Examples
    --------
    >>> expand_grid({"fast": [5, 10], "slow": [10, 20]}, lambda p: p.fast < p.slow)
    [{'fast': 5, 'slow': 10}, {'fast': 5, 'slow': 20}, {'fast': 10, 'slow': 20}]
    """
    if isinstance(params, Mapping):
        return [p for _, p in indexed_grid(params, constraint)]
    sets: list[dict[str, Any]] = [{}] if params is None else [dict(p) for p in params]
    _check_constraint(constraint)
    if constraint is not None:
        sets = [p for p in sets if constraint(Params(p))]
    return sets


def grid_axes(params: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Each parameter's values to try, in the order given (a scalar, string or mapping
    is one value).

    Examples
    --------
    >>> grid_axes({"fast": range(5, 15, 5), "kind": "ema"})
    {'fast': [5, 10], 'kind': ['ema']}
    """
    axes = {name: [v] if _is_scalar(v) else list(v) for name, v in params.items()}
    for name, values in axes.items():
        if not values:
            raise ConfigError(f"parameter {name!r} has no values to try")
    return axes


def indexed_grid(params: Mapping[str, Any], constraint: Callable[[Params], bool] | None = None
                 ) -> list[tuple[tuple[int, ...], dict[str, Any]]]:
    """The grid's sets the constraint keeps, in grid order, each with its position along
    every axis of `grid_axes` (how a model-based search names a set).

    Examples
    --------
    >>> indexed_grid({"fast": [5, 10], "slow": [10, 20]}, lambda p: p.fast < p.slow)
    [((0, 0), {'fast': 5, 'slow': 10}), ((0, 1), {'fast': 5, 'slow': 20}), ((1, 1), {'fast': 10, 'slow': 20})]
    """
    axes = grid_axes(params)
    _check_constraint(constraint)
    names = list(axes)
    grid = []
    for at in itertools.product(*(range(len(values)) for values in axes.values())):
        p = {name: axes[name][i] for name, i in zip(names, at)}
        if constraint is None or constraint(Params(p)):
            grid.append((at, p))
    return grid


def _check_constraint(constraint: Any) -> None:
    if constraint is not None and not callable(constraint):
        raise ConfigError(
            f"constraint={constraint!r}: must be a function of the parameter set returning "
            "True to run it, e.g. constraint=lambda p: p.fast < p.slow"
        )


def sample_sets(sets: list[dict[str, Any]], max_tries: int | float | None,
                random_state: int = 0) -> list[dict[str, Any]]:
    """A random search's parameter sets: ``max_tries`` of ``sets`` drawn without
    replacement (a whole number), or that fraction of them (a float in (0, 1], at least
    one), kept in grid order; all of them for None or a number at least their count.
    The same ``random_state`` draws the same sets.

    Examples
    --------
    >>> grid = expand_grid({"fast": [5, 10, 20], "slow": [30, 60]})
    >>> sample_sets(grid, 2, random_state=1) == sample_sets(grid, 2, random_state=1)
    True
    >>> len(sample_sets(grid, 0.5)), all(p in grid for p in sample_sets(grid, 0.5))
    (3, True)
    """
    if max_tries is None:
        return sets
    n = len(sets)
    k = tries_of(n, max_tries, random_state)
    if k >= n:
        return sets
    picked = np.random.default_rng(int(random_state)).choice(n, size=k, replace=False)
    return [sets[i] for i in sorted(picked.tolist())]


def tries_of(n: int, max_tries: int | float, random_state: int) -> int:
    """How many of a grid's ``n`` sets a search of ``max_tries`` runs (a whole number of
    sets, or a fraction of the grid in (0, 1], at least one); ``random_state`` is checked
    here too (the seed of every search).

    Examples
    --------
    >>> tries_of(40, 10, 0), tries_of(40, 0.25, 0), tries_of(40, 0.001, 0), tries_of(4, 10, 0)
    (10, 10, 1, 4)
    """
    whole = isinstance(max_tries, (int, np.integer)) and not isinstance(max_tries, (bool, np.bool_))
    fraction = isinstance(max_tries, (float, np.floating))
    if not ((whole and max_tries >= 1) or (fraction and 0.0 < max_tries <= 1.0)):
        raise ConfigError(
            f"max_tries={max_tries!r}: must be a whole number of parameter sets >= 1, or a "
            "fraction of the grid in (0, 1]"
        )
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, (int, np.integer)) \
            or random_state < 0:
        raise ConfigError(f"random_state={random_state!r}: must be a whole number >= 0 (the "
                          "draw's seed: the same one draws the same parameter sets)")
    return min(n, int(max_tries) if whole else max(1, int(max_tries * n)))


@dataclass(frozen=True)
class Job:
    """One backtest of a batch.

    Attributes
    ----------
    index : int
        Position in the batch (grid order x symbol-group order).
    label : str
        The ``symbols`` column of the result row: the symbol, or the group's name.
    symbols : tuple of str
        Symbols the run trades, sorted.
    params : dict
        Parameters overriding the strategy's defaults.
    """

    index: int
    label: str
    symbols: tuple[str, ...]
    params: dict[str, Any]


def job_key(
    *,
    engine: str,
    code: str,
    options: str,
    data: str,
    params: Mapping[str, Any],
) -> str:
    """The cache key of one job: a hash of everything its result depends on."""
    return _digest(KEY_VERSION, engine, code, options, data, canonical(dict(params)))
