"""Engine backends: one module per engine, all behind ``base.Backend``.

``get(name)`` imports a backend on first use, so a missing engine package
only matters to code that asks for that engine.
"""

from __future__ import annotations

import importlib

from funk.backends.base import Backend, CompiledModule
from funk.errors import FunkError

__all__ = ["Backend", "CompiledModule", "get", "NAMES"]

#: the engines funk knows, in order of preference
NAMES = ("wasmtime", "wasmer")

_loaded: dict[str, Backend] = {}


def get(name: str) -> Backend:
    """The backend called ``name`` ("wasmtime" or "wasmer")."""
    try:
        return _loaded[name]
    except KeyError:
        pass
    if name not in NAMES:
        raise ValueError(f"unknown backend {name!r}; choose one of {', '.join(NAMES)}")
    try:
        module = importlib.import_module(f"funk.backends.{name}")
    except ImportError as exc:
        raise FunkError(f"the {name} backend is not available: {exc}") from exc
    backend = _loaded[name] = module.BACKEND
    return backend
