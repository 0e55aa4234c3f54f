"""funk's code generator.

From the ``HostFunction`` descriptions of ``@host_functions`` classes it emits:

* ``emitter``: the Python wrapper module per class and backend (what runs);
* ``wat``: a WAT module importing every host function (``all_imports.wat``);
* ``c_header``: a C header declaring the imports for wasm32 guests.

``python -m codegen module:Class ...`` prints any of them; ``--check``
verifies the generated files committed to the repository (``artifacts``).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable

from funk.signature import HostFunction, host_functions_of

__all__ = ["load_class", "functions_of_classes"]


def load_class(spec: str) -> type:
    """Import ``package.module:Class`` (``Class`` may be dotted)."""
    if ":" not in spec:
        raise ValueError(f"expected module:Class, got {spec!r}")
    module_name, qualname = spec.split(":", 1)
    obj: object = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    if not isinstance(obj, type):
        raise ValueError(f"{spec} is not a class")
    return obj


def functions_of_classes(classes: Iterable[type]) -> list[HostFunction]:
    """All host functions of the given classes, in class order."""
    out: list[HostFunction] = []
    for cls in classes:
        out.extend(host_functions_of(cls))
    return out
