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

Plugins (spec section 7.10, ``funk.plugins``): a config's plugins rewrite
every module later added to an environment made from it, before the limits
below are injected and the module is compiled.  A plugin that fails makes
``add_module`` fail with a ``CompileError`` naming the plugin and the cause.
The module keeps its original bytes (``add_this_module`` starts from them).

Limits (``max_memory`` in bytes, ``max_fuel`` in units of 100,000 fuel, 0 =
unlimited) hold on both engines because every module is rewritten when it is
added (``lunatic_api.limits``): fuel checks in its code, its memory's maximum
lowered to ``max_memory``.  A module whose *initial* memory is already over
the limit compiles but fails to spawn (``LunaticModule.check_spawnable``).
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
from funk.plugins import Plugin, apply_plugins
from lunatic_api.limits import FUEL_UNIT, METER_NAMESPACE, PAGE_SIZE, instrument, memory_pages
from lunatic_api.registry import Registry
from lunatic_api.spawn_params import SpawnError
from lunatic_api.wasi.abi import NAMESPACE as WASI_NAMESPACE

if TYPE_CHECKING:
    from lunatic_api.runtime import Runtime

__all__ = [
    "Config", "Environment", "LunaticModule", "DEFAULT_NAMESPACES", "DEFAULT_MAX_MEMORY",
    "FUEL_UNIT", "allow_filter",  # FUEL_UNIT is limits' (re-exported)
]

DEFAULT_NAMESPACES = ("lunatic::", "wasi_snapshot_preview1::")
"""What the default config (the ``lunatic`` command's main environment) allows."""

DEFAULT_MAX_MEMORY = 0xA00000000
"""The default config's memory limit: 40 GiB, i.e. unlimited for wasm32 (spec 9 item 3)."""

@dataclass
class Config:
    """Settings an environment is built from.

    ``create_config`` makes one with no namespaces and no WASI settings; the
    defaults here are the ``lunatic`` command's main environment.  Besides
    the ABI's fields, WASI ``args``/``env`` and ``preopens`` (guest name ->
    host directory; an extension of this runtime, used by ``lunatic --dir``)
    are given to every process of the environment.  ``plugins`` rewrite the
    modules added to its environments, in order.
    """

    max_memory: int = DEFAULT_MAX_MEMORY
    max_fuel: int = 0
    namespaces: list[str] = field(default_factory=lambda: list(DEFAULT_NAMESPACES))
    wasi_args: list[str] = field(default_factory=list)
    wasi_env: dict[str, str] = field(default_factory=dict)
    preopens: list[tuple[str, str]] = field(default_factory=list)
    plugins: list[Plugin] = field(default_factory=list)

    @classmethod
    def empty(cls, max_memory: int, max_fuel: int) -> Config:
        """What ``create_config`` makes: nothing allowed, no WASI settings."""
        return cls(max_memory=max_memory, max_fuel=max_fuel, namespaces=[])

    def allow(self, prefix: str) -> None:
        """Allow host functions whose full name starts with ``prefix`` (duplicates harmless)."""
        if prefix not in self.namespaces:
            self.namespaces.append(prefix)

    def add_plugin(self, plugin: Plugin) -> None:
        """Run ``plugin`` (after the ones already added) on modules of later environments."""
        self.plugins.append(plugin)

    def snapshot(self) -> Config:
        """An independent copy (later changes to this config do not affect it)."""
        return Config(self.max_memory, self.max_fuel, list(self.namespaces),
                      list(self.wasi_args), dict(self.wasi_env), list(self.preopens),
                      list(self.plugins))


AllowFilter = Callable[[str, str], bool]


@cache
def allow_filter(prefixes: tuple[str, ...]) -> AllowFilter | None:
    """The funk ``allow`` filter for a prefix list; ``None`` when everything passes.

    Cached per prefix list, so environments with the same list share funk's
    linking work (it is cached per filter object).
    """
    from lunatic_api.context import host_function_names

    def allowed(namespace: str, name: str) -> bool:
        if namespace == METER_NAMESPACE:
            return True  # the injected fuel checks' host side, never filtered
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
        """``max_memory`` (bytes) and ``max_fuel`` (units of 100,000 fuel; 0 unlimited)."""
        return {"max_memory": self.config.max_memory, "max_fuel": self.config.max_fuel}

    @property
    def memory_pages(self) -> int:
        """The most wasm pages a process's memory may have here."""
        return memory_pages(self.config.max_memory)

    def allows(self, namespace: str, name: str) -> bool:
        """Whether ``namespace::name`` is linked for real in this environment."""
        return self.allow is None or self.allow(namespace, name)

    def add_module(self, wasm: bytes | bytearray | memoryview | str | os.PathLike[str],
                   name: str = "", on_slice: Callable[[], None] | None = None
                   ) -> LunaticModule:
        """Compile ``wasm`` (bytes, WAT text or a path) into a module of this environment.

        The environment's plugins run on it first (``on_slice`` is called while
        they run and may raise to stop them, see ``funk.plugins``), then it is
        rewritten to enforce the environment's limits.  Raises
        ``funk.CompileError`` if it is malformed, a plugin fails, it does not
        compile, or it imports the runtime's reserved metering namespace.
        """
        if isinstance(wasm, (bytearray, memoryview)):
            wasm = bytes(wasm)
        data = funk.wasm_input.to_wasm_bytes(wasm)
        plugged = apply_plugins(data, self.config.plugins, self.backend, on_slice=on_slice)
        rewritten = instrument(plugged, self.config.max_memory)
        compiled = funk.compile(rewritten.wasm, self.backend)
        return LunaticModule(self, compiled, data, name, rewritten.initial_pages)

    def __repr__(self) -> str:
        return f"<Environment #{self.number} allows {self.config.namespaces}>"


class LunaticModule:
    """Compiled code of one environment; ``wasm`` keeps the original bytes.

    ``initial_pages`` is the size its memory starts with (``None``: the
    module defines no memory).
    """

    def __init__(self, environment: Environment, compiled: CompiledModule, wasm: bytes,
                 name: str = "", initial_pages: int | None = None) -> None:
        self.environment = environment
        self.compiled = compiled
        self.wasm = wasm
        self.name = name
        self.initial_pages = initial_pages
        #: whether it imports anything of WASI (a process of it needs WASI state)
        self.uses_wasi = any(imp.namespace == WASI_NAMESPACE for imp in compiled.imports)

    def check_spawnable(self) -> None:
        """``SpawnError`` if the memory the module starts with is over its environment's limit."""
        pages = self.initial_pages
        if pages is not None and pages > self.environment.memory_pages:
            raise SpawnError(
                f"the module's initial memory ({pages} pages, {pages * PAGE_SIZE:,} bytes) "
                f"exceeds the environment's max_memory of "
                f"{self.environment.config.max_memory:,} bytes")

    def with_environment(self, environment: Environment,
                         on_slice: Callable[[], None] | None = None) -> LunaticModule:
        """The same module, from its original bytes, in another environment (``add_this_module``).

        Reuses the compilation when what compiled code depends on is the
        same: the engine, the memory cap and the plugins.
        """
        mine = self.environment
        if (environment.backend == self.compiled.backend.name
                and environment.memory_pages == mine.memory_pages
                and environment.config.plugins == mine.config.plugins):
            return LunaticModule(environment, self.compiled, self.wasm, self.name,
                                 self.initial_pages)
        return environment.add_module(self.wasm, self.name, on_slice)

    def __repr__(self) -> str:
        return f"<LunaticModule {self.name or '?'} of environment #{self.environment.number}>"

