"""Configs, environments and modules (spec sections 5.1-5.9, 7.6, 7.7).

A ``Config`` is mutable settings; an ``Environment`` is built from a snapshot
of one and adds a registry.  A ``LunaticModule`` is compiled code bound to
one environment: every process spawned from it runs with that environment's
host-function filter, WASI settings and registry.

Namespace filtering (spec section 1.7): a host function is linked for real
when one allowed prefix is a plain string prefix of
``"<import module>::<name>"``; the others become stubs with the same
signature that trap with a message naming the function.  Unlike v0.6.0, the
filter applies to *every* WASI function (v0.6.0 never stubbed
``environ_sizes_get`` and ``path_create_directory``, spec section 9 item 5): a
guest refused WASI gets no WASI at all.

``max_memory`` and ``max_fuel`` are recorded, with the ABI's units (bytes;
units of 100,000 fuel, 0 = unlimited), and reported by ``limits``, but not
enforced yet: that needs the module rewriter of a later issue to behave the
same on both engines.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import TYPE_CHECKING

import funk
from funk.backends.base import CompiledModule
from lunatic_api.registry import Registry

if TYPE_CHECKING:
    from lunatic_api.runtime import Runtime

__all__ = [
    "Config", "Environment", "LunaticModule", "DEFAULT_NAMESPACES", "DEFAULT_MAX_MEMORY",
    "FUEL_UNIT", "allow_filter",
]

DEFAULT_NAMESPACES = ("lunatic::", "wasi_snapshot_preview1::")
"""What the default config (the ``lunatic`` command's main environment) allows."""

DEFAULT_MAX_MEMORY = 0xA00000000
"""The default config's memory limit: 40 GiB, i.e. unlimited for wasm32 (spec 9 item 3)."""

FUEL_UNIT = 100_000
"""wasm fuel per ``max_fuel`` unit (spec section 9 item 2)."""


@dataclass
class Config:
    """Settings an environment is built from.

    ``create_config`` makes one with no namespaces and no WASI settings; the
    defaults here are the ``lunatic`` command's main environment.  Besides
    the ABI's fields, WASI ``args``/``env`` and ``preopens`` (guest name ->
    host directory; an extension of this runtime, used by ``lunatic --dir``)
    are given to every process of the environment.
    """

    max_memory: int = DEFAULT_MAX_MEMORY
    max_fuel: int = 0
    namespaces: list[str] = field(default_factory=lambda: list(DEFAULT_NAMESPACES))
    wasi_args: list[str] = field(default_factory=list)
    wasi_env: dict[str, str] = field(default_factory=dict)
    preopens: list[tuple[str, str]] = field(default_factory=list)

    @classmethod
    def empty(cls, max_memory: int, max_fuel: int) -> Config:
        """What ``create_config`` makes: nothing allowed, no WASI settings."""
        return cls(max_memory=max_memory, max_fuel=max_fuel, namespaces=[])

    def allow(self, prefix: str) -> None:
        """Allow host functions whose full name starts with ``prefix`` (duplicates harmless)."""
        if prefix not in self.namespaces:
            self.namespaces.append(prefix)

    def snapshot(self) -> Config:
        """An independent copy (later changes to this config do not affect it)."""
        return Config(self.max_memory, self.max_fuel, list(self.namespaces),
                      list(self.wasi_args), dict(self.wasi_env), list(self.preopens))


AllowFilter = Callable[[str, str], bool]


@cache
def allow_filter(prefixes: tuple[str, ...]) -> AllowFilter | None:
    """The funk ``allow`` filter for a prefix list; ``None`` when everything passes.

    Cached per prefix list, so environments with the same list share funk's
    linking work (it is cached per filter object).
    """
    from lunatic_api.context import host_function_names

    def allowed(namespace: str, name: str) -> bool:
        full = f"{namespace}::{name}"
        return any(full.startswith(prefix) for prefix in prefixes)

    if all(allowed(namespace, name) for namespace, name in host_function_names()):
        return None
    return allowed


_numbers = itertools.count(1)


class Environment:
    """A config snapshot, a registry, and the engine its modules compile for."""

    def __init__(self, runtime: Runtime, config: Config) -> None:
        self.runtime = runtime
        self.config = config.snapshot()
        self.registry = Registry()
        #: a small number for logs and reprs
        self.number = next(_numbers)
        self.allow = allow_filter(tuple(self.config.namespaces))

    @property
    def backend(self) -> str:
        """The engine modules of this environment are compiled for."""
        return self.runtime.backend

    @property
    def limits(self) -> Mapping[str, int]:
        """``max_memory`` (bytes) and ``max_fuel`` (units), as recorded (not yet enforced)."""
        return {"max_memory": self.config.max_memory, "max_fuel": self.config.max_fuel}

    def allows(self, namespace: str, name: str) -> bool:
        """Whether ``namespace::name`` is linked for real in this environment."""
        return self.allow is None or self.allow(namespace, name)

    def add_module(self, wasm: bytes | bytearray | memoryview | str | os.PathLike[str],
                   name: str = "") -> LunaticModule:
        """Compile ``wasm`` (bytes, WAT text or a path) into a module of this environment.

        Raises ``funk.CompileError`` if it does not compile.
        """
        if isinstance(wasm, (bytearray, memoryview)):
            wasm = bytes(wasm)
        data = funk.wasm_input.to_wasm_bytes(wasm)
        compiled = funk.compile(data, self.backend)
        return LunaticModule(self, compiled, data, name)

    def __repr__(self) -> str:
        return f"<Environment #{self.number} allows {self.config.namespaces}>"


class LunaticModule:
    """Compiled code of one environment; ``wasm`` keeps the original bytes."""

    def __init__(self, environment: Environment, compiled: CompiledModule, wasm: bytes,
                 name: str = "") -> None:
        self.environment = environment
        self.compiled = compiled
        self.wasm = wasm
        self.name = name

    def with_environment(self, environment: Environment) -> LunaticModule:
        """The same code bound to another environment (``add_this_module``).

        Reuses the compilation when the engine is the same: compiling does not
        depend on the environment until plugins exist.
        """
        if environment.backend == self.compiled.backend.name:
            return LunaticModule(environment, self.compiled, self.wasm, self.name)
        return environment.add_module(self.wasm, self.name)

    def __repr__(self) -> str:
        return f"<LunaticModule {self.name or '?'} of environment #{self.environment.number}>"

