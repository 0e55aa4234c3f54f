"""Passes that make a module enforce resource limits on any engine.

``meter_fuel`` injects fuel metering, the same on every engine (the wasmer
1.1 Python package has no metering of its own).  A mutable ``i64`` global
holds the fuel left in the current *slice*.  At every function entry and
at every loop header the pass inserts::

    global.get $fuel  i64.const COST  i64.sub  global.set $fuel
    global.get $fuel  i64.const 0  i64.lt_s
    if  global.get $fuel  call $refuel  global.set $fuel  end

``COST`` is the instruction count of the code that check stands for: at a
function entry 1 (the call itself) plus every instruction of the function
outside its loops; at a loop header every instruction of the loop's body
outside its inner loops.  Instructions are counted as wasmtime's fuel counts
them: one each, except ``nop``, ``drop``, ``block``, ``loop``, ``end``,
``else``, ``unreachable`` and ``return``, which are free.  Code skipped by a
branch is charged anyway (the count is static), so a process may run out of
fuel a little early, never late.

When the slice is overdrawn the injected code calls ``refuel(left)``, an
import the host provides: it learns how much was used (the slice it handed
out minus ``left``), may trap (out of fuel, killed), may let other threads
run, and returns the next slice.  The global starts at 0, so the first
check of a process calls the host, which hands out the first slice: the
rewritten module does not depend on any limit's value and is cached once
per module.

``cap_memory`` lowers the declared maximum of the module's memory so that
``memory.grow`` past a limit returns -1 on every engine, as wasm requires.
"""

from __future__ import annotations

from dataclasses import dataclass

from wasm_rewriter import opcodes as op
from wasm_rewriter.instructions import BLOCKTYPE_EMPTY, Instr
from wasm_rewriter.module import Module
from wasm_rewriter.sections import FuncType, GlobalType, Limits

__all__ = ["FREE_OPS", "MeteredModule", "meter_fuel", "cap_memory", "PAGE_SIZE",
           "MAX_PAGES"]

I64 = 0x7E
PAGE_SIZE = 65536
MAX_PAGES = 65536
"""Pages of a 32-bit memory: 4 GiB."""

_BLOCKS = frozenset((op.BLOCK, op.IF, op.TRY, op.TRY_TABLE))
"""Block openers other than ``loop``."""

FREE_OPS = frozenset((op.NOP, op.DROP, op.BLOCK, op.LOOP, op.END, op.ELSE, op.UNREACHABLE,
                      op.RETURN))
"""Instructions that cost no fuel (as in wasmtime)."""


@dataclass(frozen=True)
class MeteredModule:
    """Where ``meter_fuel`` put things."""

    refuel_function: int  #: index of the imported ``refuel`` function
    fuel_global: int      #: index of the global holding the slice's fuel left
    checks: int           #: how many checks were injected


def _check(cost: int, fuel: int, refuel: int) -> list[Instr]:
    """The instructions charging ``cost`` and calling ``refuel`` when overdrawn."""
    return [
        Instr(op.GLOBAL_GET, fuel), Instr(op.I64_CONST, cost), Instr(op.I64_SUB),
        Instr(op.GLOBAL_SET, fuel),
        Instr(op.GLOBAL_GET, fuel), Instr(op.I64_CONST, 0), Instr(op.I64_LT_S),
        Instr(op.IF, BLOCKTYPE_EMPTY),
        Instr(op.GLOBAL_GET, fuel), Instr(op.CALL, refuel), Instr(op.GLOBAL_SET, fuel),
        Instr(op.END),
    ]


def meter_fuel(module: Module, import_module: str, import_name: str) -> MeteredModule:
    """Inject fuel checks into every function of ``module`` (see the module docstring).

    ``refuel`` is imported as ``import_module.import_name`` with the type
    ``(i64) -> i64``.  Raises ``ValueError`` if the module already imports
    something from ``import_module`` (a guest must not reach the meter).
    """
    for imp in module.imports:
        if imp.module == import_module:
            raise ValueError(f"the module imports {imp.module}::{imp.name}, and "
                             f"{import_module} is reserved for the runtime's fuel metering")
    refuel_type = module.add_type(FuncType((I64,), (I64,)))
    refuel = module.add_function_import(import_module, import_name, refuel_type)
    fuel = module.add_global(GlobalType(I64, True), [Instr(op.I64_CONST, 0), Instr(op.END)])
    checks = 0
    for body in module.code:
        body.code, injected = _meter_body(body.code, fuel, refuel)
        checks += injected
    module.touch(10)
    return MeteredModule(refuel, fuel, checks)


def _meter_body(code: list[Instr], fuel: int, refuel: int) -> tuple[list[Instr], int]:
    """``code`` with its checks; the number of checks."""
    # Costs are known only once a loop (or the function) has been scanned, so
    # the output gets a placeholder check per segment, filled in at the end.
    out: list[Instr] = []
    costs = [1]                # per segment: 0 is the function, then loops in order
    slots = [0]                # where each segment's check starts in ``out``
    open_segments = [0]        # segments being scanned, innermost last
    kinds: list[bool] = []     # per open block: True if it is a loop
    out.extend(_check(0, fuel, refuel))
    free = FREE_OPS
    for instr in code:
        opcode = instr.op
        out.append(instr)
        if opcode not in free:
            costs[open_segments[-1]] += 1
        if opcode == op.LOOP:
            kinds.append(True)
            open_segments.append(len(costs))
            costs.append(0)
            slots.append(len(out))
            out.extend(_check(0, fuel, refuel))
        elif opcode in _BLOCKS:
            kinds.append(False)
        elif opcode == op.END and kinds:
            if kinds.pop():
                open_segments.pop()
        elif opcode == op.DELEGATE and kinds:
            kinds.pop()  # ends a (legacy) try block, never a loop
    for segment, start in enumerate(slots):
        out[start + 1] = Instr(op.I64_CONST, costs[segment])
    return out, len(slots)


def cap_memory(module: Module, max_pages: int) -> int | None:
    """Lower the declared maximum of the module's memory to ``max_pages``.

    Returns the memory's initial size in pages (``None`` if the module
    defines no memory; with several memories, each is capped and the
    largest initial size is returned).  When the initial size is already above
    ``max_pages`` nothing is changed: the caller refuses to instantiate
    (a maximum below the minimum would make the module invalid).
    """
    if not module.memories:
        return None
    initial = max(limits.minimum for limits in module.memories)
    if initial > max_pages:
        return initial
    for i, limits in enumerate(module.memories):
        if limits.maximum is None or limits.maximum > max_pages:
            module.memories[i] = Limits(limits.minimum, max_pages, limits.flags)
            module.touch(5)
    return initial
