"""Matching a module's imports with host functions.

``LinkPlan.build`` decides, for each import of a module, which host object's
function satisfies it, or that it becomes a trapping stub (when an ``allow``
filter rejects it).  It checks signatures and reports every problem with a
``LinkError`` naming the import, before any engine is involved, so both
backends fail the same way.  A plan depends only on the module's imports, the
host *classes* and the filter, so backends cache what they build from it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from funk.errors import LinkError
from funk.instance import Caller
from funk.signature import HostFunction, host_functions_of

__all__ = ["ImportSpec", "LinkEntry", "LinkPlan", "AllowFilter"]

#: ``allow(namespace, name)`` -> whether the host function is linked for real
AllowFilter = Callable[[str, str], bool]


@dataclass(frozen=True)
class ImportSpec:
    """One import of a module, in engine-neutral terms."""

    namespace: str
    name: str
    kind: str  # "func", "memory", "table", "global"
    params: tuple[str, ...] = ()
    results: tuple[str, ...] = ()

    @property
    def signature(self) -> str:
        res = self.results
        rtext = "()" if not res else res[0] if len(res) == 1 else "(" + ", ".join(res) + ")"
        return f"({', '.join(self.params)}) -> {rtext}"


@dataclass(frozen=True)
class LinkEntry:
    """How one function import is satisfied.

    ``function`` is the host function and ``host_index`` the position of its
    host object in the ``hosts`` list; ``allowed`` is False for a stub that
    traps when called.
    """

    imp: ImportSpec
    function: HostFunction
    host_index: int
    allowed: bool = True

    @property
    def qualname(self) -> str:
        return self.function.qualname


class LinkPlan:
    """The resolved imports of one module against a list of host classes."""

    def __init__(self, entries: Sequence[LinkEntry], classes: Sequence[type]) -> None:
        self.entries = tuple(entries)
        self.classes = tuple(classes)
        # what ``bind`` reads per slot, unpacked once: binding runs for every
        # instance (every Lunatic process), the plan is built once per module
        self._host_indexes = tuple(e.host_index for e in self.entries)
        self._attrs = tuple(e.function.attr for e in self.entries)

    @classmethod
    def build(cls, imports: Sequence[ImportSpec], classes: Sequence[type],
              allow: AllowFilter | None = None) -> LinkPlan:
        """Resolve ``imports`` (raises ``LinkError`` listing every problem)."""
        providers: dict[tuple[str, str], tuple[HostFunction, int]] = {}
        for index, klass in enumerate(classes):
            for fn in host_functions_of(klass):
                key = (fn.namespace, fn.name)
                if key in providers:
                    other = providers[key][0].owner.__qualname__
                    raise LinkError(f"{fn.qualname} is provided twice, by {other} and "
                                    f"{klass.__qualname__}")
                providers[key] = (fn, index)
        entries: list[LinkEntry] = []
        problems: list[str] = []
        for imp in imports:
            if imp.kind != "func":
                problems.append(f"{imp.namespace}.{imp.name}: imports a {imp.kind}; funk hosts "
                                "provide functions only (export the memory from the guest)")
                continue
            found = providers.get((imp.namespace, imp.name))
            if found is None:
                problems.append(f"{imp.namespace}.{imp.name} {imp.signature}: no host object "
                                "provides it")
                continue
            fn, index = found
            if (fn.wasm_params, fn.wasm_results) != (imp.params, imp.results):
                problems.append(f"{imp.namespace}.{imp.name}: the module imports it as "
                                f"{imp.signature} but {fn.owner.__qualname__}.{fn.attr} is "
                                f"{fn.signature}")
                continue
            allowed = allow is None or bool(allow(imp.namespace, imp.name))
            entries.append(LinkEntry(imp, fn, index, allowed))
        if problems:
            raise LinkError("cannot link module:\n  " + "\n  ".join(problems))
        return cls(entries, classes)

    def bind(self, hosts: Sequence[Any]) -> Caller:
        """A fresh ``Caller`` whose slots hold the bound methods of ``hosts``."""
        owners = [hosts[index] for index in self._host_indexes]
        methods: list[Any] = list(map(getattr, owners, self._attrs))
        return Caller(methods, owners)


def classes_of(hosts: Sequence[Any]) -> tuple[type, ...]:
    """The host classes, checking that each object is a ``@host_functions`` one."""
    out = []
    for h in hosts:
        klass = type(h)
        host_functions_of(klass)  # raises DefinitionError with a clear message
        out.append(klass)
    return tuple(out)
