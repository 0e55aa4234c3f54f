"""Resource limits of wasm processes: fuel, memory, preemption and kill (spec section 7.6).

Every module added to an environment is rewritten once (``instrument``,
cached per module hash and memory cap) by ``wasm_rewriter.limits``:

* fuel checks at every function entry and loop header call the host
  function ``refuel`` when the slice of fuel the host handed out is used up;
* the memory's declared maximum is lowered to the environment's
  ``max_memory``, so ``memory.grow`` past it returns -1 on both engines.

The checks are what make limits hold on both engines alike.  ``Meter``, the
host side of ``refuel``, runs at least once per slice of fuel (``GIL_SLICE``,
the spec's 100,000, on wasmer; ``SLICE``, 1,000,000, on wasmtime) and there:

* counts the fuel used and traps with "all fuel consumed" past
  ``max_fuel`` (units of 100,000 fuel; 0 is unlimited);
* ends the process if it has been killed, so a process spinning in pure
  wasm dies within one slice (well under a millisecond);
* on engines that hold the interpreter lock while wasm runs (wasmer), lets
  the other threads run, which is what keeps a busy process from starving
  the others.

The rewritten module imports ``refuel`` from ``METER_NAMESPACE``; a guest
module that imports anything from that namespace itself is refused, so a
guest can never hand itself fuel.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import funk
from funk.errors import CompileError, Trap
from funk.types import i64
from lunatic_api.process import WOKEN, Process
from lunatic_api.scheduler import HOST_STACK_MARGIN, release_cpu_hint
from wasm_rewriter import MalformedModule, Module
from wasm_rewriter.limits import MAX_PAGES, PAGE_SIZE, cap_memory, meter_fuel

__all__ = [
    "METER_NAMESPACE", "FUEL_UNIT", "SLICE", "GIL_SLICE", "fuel_slice", "Instrumented",
    "instrument", "Meter",
    "memory_pages", "OUT_OF_FUEL",
]

METER_NAMESPACE = "lunatic_runtime::meter"
"""The import module of the injected ``refuel`` function (reserved: guests may not use it)."""

FUEL_UNIT = 100_000
"""wasm fuel per ``max_fuel`` unit (spec section 9 item 2)."""

GIL_SLICE = FUEL_UNIT
"""Fuel a process runs between two visits to the host on an engine that holds the
interpreter lock while wasm runs (wasmer): the spec's fuel yield, every 100,000 fuel
(5-10 us of wasm), short enough that a busy process leaves the others about half the
lock."""

SLICE = 10 * FUEL_UNIT
"""The same on an engine that releases the lock (wasmtime): the operating system
shares the CPUs, so the host is visited only to count fuel and to notice a kill, and
a longer slice keeps the cost of those visits near 3% (a kill still lands within
about 0.1 ms)."""


HANDOFF = 100e-6
"""Seconds a busy process on wasmer sleeps in ``refuel`` while woken processes wait."""


def fuel_slice(holds_gil: bool) -> int:
    """The fuel slice for an engine that holds the interpreter lock in wasm, or not."""
    return GIL_SLICE if holds_gil else SLICE

OUT_OF_FUEL = "all fuel consumed"
"""The start of the trap message of a process that used up its ``max_fuel``."""

_CACHE_SIZE = 64


def memory_pages(max_memory: int) -> int:
    """The most 64 KiB pages ``max_memory`` bytes allow (at most a 32-bit memory's)."""
    return min(max_memory // PAGE_SIZE, MAX_PAGES)


@dataclass(frozen=True)
class Instrumented:
    """A module rewritten for the runtime."""

    wasm: bytes
    #: the memory's initial size in pages (``None``: the module defines no memory)
    initial_pages: int | None


_cache: OrderedDict[tuple[bytes, int], Instrumented] = OrderedDict()
_cache_lock = threading.Lock()


def instrument(wasm: bytes, max_memory: int) -> Instrumented:
    """``wasm`` with fuel checks and its memory capped at ``max_memory`` bytes.

    Cached per (module hash, memory cap): adding the same module again, to
    any environment with the same cap, does not rewrite it again.  Raises
    ``funk.CompileError`` for a malformed module or one that imports the
    reserved ``METER_NAMESPACE``.
    """
    pages = memory_pages(max_memory)
    key = (hashlib.sha256(wasm).digest(), pages)
    with _cache_lock:
        found = _cache.get(key)
        if found is not None:
            _cache.move_to_end(key)
            return found
    try:
        module = Module.parse(wasm)
        meter_fuel(module, METER_NAMESPACE, "refuel")
    except MalformedModule as exc:
        raise CompileError(f"cannot rewrite the module: {exc}") from None
    except ValueError as exc:
        raise CompileError(str(exc)) from None
    initial = cap_memory(module, pages)
    result = Instrumented(module.encode(), initial)
    with _cache_lock:
        _cache[key] = result
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return result


@funk.host_functions(namespace=METER_NAMESPACE)
class Meter:
    """The host side of the injected fuel checks, one per process.

    ``max_fuel`` is in units of ``FUEL_UNIT`` (0: unlimited);
    ``yield_gil`` is set on engines that hold the interpreter lock in wasm.
    While the process is being instantiated, ``spawner`` is the process
    waiting for it (if any): killing that one stops the start function too.
    """

    #: wasmer runs these methods on the wasm stack: trap the guest rather than run
    #: them with less native stack than this left (``funk.stack``)
    __funk_stack_reserve__ = HOST_STACK_MARGIN

    def __init__(self, process: Process, max_fuel: int, yield_gil: bool,
                 spawner: Process | None = None) -> None:
        self.process = process
        self.spawner = spawner
        #: total fuel allowed, ``None`` for unlimited
        self.limit: int | None = max_fuel * FUEL_UNIT if max_fuel else None
        self.max_fuel = max_fuel
        #: fuel used by the slices handed out before the current one
        self.used = 0
        #: the current slice
        self.given = 0
        self.yield_gil = yield_gil
        self.slice = fuel_slice(yield_gil)

    def refuel(self, left: i64) -> i64:
        """Account for the slice just used (``left`` is what remains, < 0); the next slice."""
        self.used += self.given - left
        # the first call comes at the process's first fuel check; later ones
        # after a whole slice: the process is busy
        busy = self.given != 0
        if busy:
            release_cpu_hint()  # let it use any CPU
        self.given = 0
        self.process.check_killed()
        spawner = self.spawner
        if spawner is not None:
            spawner.check_killed()
        if self.limit is None:
            grant = self.slice
        else:
            remaining = self.limit - self.used
            if remaining < 0:
                # function="": the trap is the guest's, not a host function's
                # failure, so nothing names the injected ``refuel`` in front of it
                raise Trap(f"{OUT_OF_FUEL}: the process used its max_fuel of "
                           f"{self.max_fuel} units ({self.limit:,} fuel)", function="")
            grant = min(self.slice, remaining)
        if self.yield_gil and busy:
            # wasmer runs wasm holding the interpreter lock: this is the only
            # moment another process's thread can take it.  A bare host call
            # hands it over only when a waiter has asked for it for 5 ms (the
            # switch interval).  A zero sleep releases it for an instant, which
            # a thread woken on the same CPU catches; one woken on another CPU
            # takes 30-100 us to run in these VMs and misses it, so while some
            # process woken by a message has not resumed (``WOKEN``) the busy
            # process sleeps long enough for it.
            time.sleep(HANDOFF if WOKEN else 0)
        self.given = grant
        return grant
