"""funk: WebAssembly host APIs from decorated Python classes.

Write a class whose methods are annotated with funk's types, decorate it
with ``@host_functions``, and link instances of it into wasm modules on
wasmtime or wasmer::

    from funk import host_functions, instantiate, Trap
    from funk.types import i32, Str

    @host_functions(namespace="env")
    class Counter:
        def add(self, a: i32, b: i32) -> i32:
            return a + b

    inst = instantiate(wasm, [Counter()], backend="wasmer")
    inst.exports.run(1, 2)

The marshalling code for each method is generated once per engine (see
``python -m codegen``) and is what runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, overload

from funk import backends
from funk.backends.base import CompiledModule
from funk.errors import CompileError, DefinitionError, FunkError, LinkError, Trap
from funk.instance import Caller, Instance
from funk.linking import AllowFilter
from funk.records import record
from funk.signature import (
    _FUNCTIONS_ATTR,
    HostFunction,
    describe_class,
    export,
    host_functions_of,
    internal,
)
from funk.wasm_input import WasmSource, to_wasm_bytes

__version__ = "0.1.0"

__all__ = [
    "host_functions", "export", "internal", "record", "instantiate", "compile", "Trap",
    "FunkError", "DefinitionError", "LinkError", "CompileError", "Caller", "Instance",
    "CompiledModule", "HostFunction", "functions_of", "DEFAULT_BACKEND",
]

DEFAULT_BACKEND = "wasmtime"

C = TypeVar("C", bound=type)


@overload
def host_functions(cls: C) -> C: ...
@overload
def host_functions(*, namespace: str = "env") -> Callable[[C], C]: ...


def host_functions(cls: C | None = None, *, namespace: str = "env") -> Any:
    """Class decorator: expose the class's public methods as wasm imports.

    Every public method becomes a host function in ``namespace`` under its own
    name (``@export`` changes either; ``@internal`` hides a method).  All
    annotations are checked now: an unsupported one raises
    ``DefinitionError`` naming the class, method and parameter.  The list of
    ``HostFunction`` descriptions (with their wasm signatures) is available as
    ``funk.functions_of(cls)``.
    """

    def decorate(klass: C) -> C:
        setattr(klass, _FUNCTIONS_ATTR, describe_class(klass, namespace))
        return klass

    if cls is not None:
        return decorate(cls)
    return decorate


def functions_of(cls_or_obj: Any) -> tuple[HostFunction, ...]:
    """The host functions (with final wasm signatures) of a host class or object."""
    cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
    return host_functions_of(cls)


def compile(wasm: WasmSource, backend: str = DEFAULT_BACKEND) -> CompiledModule:
    """Compile a module once; ``.instantiate(hosts)`` it as often as needed.

    ``wasm`` is module bytes, WAT text, or a path to a ``.wasm``/``.wat`` file.
    A compiled module may be instantiated from any thread.
    """
    return backends.get(backend).compile(to_wasm_bytes(wasm))


def instantiate(wasm: Any, hosts: Sequence[Any] = (), backend: str = DEFAULT_BACKEND,
                allow: AllowFilter | None = None) -> Instance:
    """Compile (unless given a compiled module) and instantiate with ``hosts``.

    ``hosts`` are instances of ``@host_functions`` classes; each keeps its own
    state.  ``allow(namespace, name)`` may restrict which host functions are
    really linked: the others become stubs with the same signature that trap
    with a message naming them.
    """
    module = wasm if isinstance(wasm, CompiledModule) else compile(wasm, backend)
    return module.instantiate(hosts, allow)
