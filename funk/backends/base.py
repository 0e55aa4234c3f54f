"""What every engine backend provides.

A ``Backend`` compiles bytes into a ``CompiledModule``; a compiled module
instantiates with host objects into a ``funk.instance.Instance``.  Linking
decisions (``LinkPlan``) and trap conversion (``raise_trap``) are shared, so
only the engine calls differ between backends.
"""

from __future__ import annotations

import abc
import threading
from collections.abc import Sequence
from typing import Any

from funk.instance import Instance
from funk.linking import AllowFilter, ImportSpec, LinkPlan, classes_of

__all__ = ["Backend", "CompiledModule"]


class Backend(abc.ABC):
    """An engine: compiles modules."""

    name: str
    #: whether the engine keeps the interpreter lock while wasm runs (wasmer
    #: does): other Python threads then run only while the guest is in a host
    #: call, so a runtime that wants fairness must make the guest call out
    holds_gil: bool = False

    @abc.abstractmethod
    def compile(self, wasm: bytes) -> CompiledModule:
        """Compile a module binary (raises ``CompileError``)."""

    def validate(self, wasm: bytes) -> None:
        """Raise ``CompileError`` (with the engine's reason) unless ``wasm`` is valid.

        This default compiles and drops the result; engines that can check
        without compiling do so.
        """
        self.compile(wasm)


class CompiledModule(abc.ABC):
    """A module compiled once, instantiable many times, from any thread.

    ``imports`` and ``exports`` describe the module; ``instantiate`` links it
    with host objects.  ``allow(namespace, name)``, if given, decides which
    host functions are linked for real; the others become stubs with the same
    signature that trap naming the function.
    """

    backend: Backend
    imports: tuple[ImportSpec, ...]
    exports: tuple[str, ...]
    wasm: bytes
    #: whether an instance must be used only by the thread that created it
    #: (wasmer); wasmtime instances may be handed to another thread (one
    #: thread at a time)
    thread_bound: bool = False

    def __init__(self) -> None:
        self._plans: dict[tuple[tuple[type, ...], AllowFilter | None], Any] = {}
        self._plans_lock = threading.Lock()

    def instantiate(self, hosts: Sequence[Any] = (), allow: AllowFilter | None = None
                    ) -> Instance:
        """A new instance linked with ``hosts`` (see class docstring)."""
        # Plans are keyed by the bare classes: a key that is in the cache was
        # validated when its plan was built, so only a miss checks the classes.
        key = (tuple(map(type, hosts)), allow)
        prepared = self._plans.get(key)
        if prepared is None:
            with self._plans_lock:
                prepared = self._plans.get(key)
                if prepared is None:
                    plan = LinkPlan.build(self.imports, classes_of(hosts), allow)
                    prepared = self._plans[key] = self._prepare(plan)
        return self._instantiate(prepared, hosts)

    @abc.abstractmethod
    def _prepare(self, plan: LinkPlan) -> Any:
        """Engine-side objects reusable for every instance with this plan."""

    @abc.abstractmethod
    def _instantiate(self, prepared: Any, hosts: Sequence[Any]) -> Instance:
        """One instance from prepared objects."""
