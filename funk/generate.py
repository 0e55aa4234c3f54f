"""The codegen driver: generate, load and cache wrapper modules.

``factories(cls, backend)`` asks ``codegen`` for the source of ``cls``'s
wrapper module for that backend, executes exactly that source (with the
definitions' own objects supplied by name) and returns its factory
functions by host-function name.  Generation happens once per class and
backend, on first use.
"""

from __future__ import annotations

import linecache
import threading
from collections.abc import Callable
from typing import Any

from funk.signature import host_functions_of

__all__ = ["factories", "source"]

_cache: dict[tuple[type, str], dict[str, Callable[..., Any]]] = {}
_lock = threading.Lock()


def source(cls: type, backend: str) -> str:
    """The generated wrapper source of ``cls`` for ``backend``."""
    from codegen.emitter import emit_module

    return emit_module(cls, host_functions_of(cls), backend).source


def factories(cls: type, backend: str) -> dict[str, Callable[..., Any]]:
    """Factory functions of ``cls``'s wrappers for ``backend``, by qualname."""
    key = (cls, backend)
    try:
        return _cache[key]
    except KeyError:
        pass
    with _lock:
        if key not in _cache:
            _cache[key] = _load(cls, backend)
        return _cache[key]


def _load(cls: type, backend: str) -> dict[str, Callable[..., Any]]:
    from codegen.emitter import emit_module

    generated = emit_module(cls, host_functions_of(cls), backend)
    filename = f"<funk {backend} wrappers of {cls.__module__}.{cls.__qualname__}>"
    # Register the text so tracebacks through generated code show its lines.
    lines = generated.source.splitlines(keepends=True)
    linecache.cache[filename] = (len(generated.source), None, lines, filename)
    namespace: dict[str, Any] = dict(generated.refs)
    namespace["__name__"] = f"funk.generated.{backend}.{cls.__qualname__}"
    exec(compile(generated.source, filename, "exec"), namespace)
    return {qualname: namespace[name] for qualname, name in generated.factories.items()}
