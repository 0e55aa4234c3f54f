"""Passes that make a module enforce resource limits on any engine.

``meter_fuel`` injects fuel metering, the same on every engine (the wasmer
1.1 Python package has no metering of its own).  A mutable ``i64`` global
holds the fuel left in the current *slice*; each function works on a copy in
a local of its own (a register, where a global is a memory access), written
back before every call, return and throw and read again after a call.

Every straight-line run of code (the function's start, a loop's body, an
``if`` or ``else`` arm, the code after a block's ``end``, after a ``br_if``)
starts by subtracting its instruction count from the local.  At a function
entry and at each loop header the subtraction is followed by the check::

    local.get $f  i64.const COST  i64.sub  local.tee $f  i64.const 0  i64.lt_s
    if  (local.get $x  global.set $save_x)*
        local.get $f  global.set $fuel  call $step  global.get $fuel  local.set $f
        (global.get $save_x  local.set $x)*
    end

(at the entry the count starts from ``global.get $fuel`` and nothing is
saved).  ``$step``, a function the pass adds, is ``global.set $fuel (call
$refuel (global.get $fuel))``.  The rarely taken ``if`` has this shape so
that the engines' register allocators keep a tight loop in registers:

* the fuel local reaches ``refuel`` through the global, never as a call's
  argument or result: a value tied to the argument register in one place and
  to the result register in another is spilled by wasmtime's allocator, a
  store and a load of the fuel on every iteration of every loop (the sieve
  of ``bench/limits.py`` ran 2.1x slower than the original, 1.15x now);
* a call clobbers the caller-saved registers (the float ones all are), so
  whatever is live across it must sit in one of five callee-saved registers
  or on the stack, and the allocators (wasmer's older one most) then spill
  loop variables the original kept in registers.  Every local the loop
  reads or writes is therefore stored to a global before the call and read
  back after it: none is live across the call any more, for a few stores
  and loads on a path taken once per slice.  The ``$save_*`` globals are
  shared by all checks (one per value type and position); ``v128`` and
  reference locals stay as they are, and so do all of a loop's locals when
  it touches more than ``MAX_SAVED``.  So ``refuel`` must not call back into
  the instance (a check there would overwrite them).

A loop whose header run costs at most ``PREPAY_MAX`` and which is entered
and repeated only by plain branches (no ``br_table``, no exception handling
in the function, and the branch back is not in the header's own run) has
its header paid in advance instead: the run before the ``loop`` and the run
ending with the branch back add the header's count to their own, the run
after a back-edge ``br_if`` (not taken) subtracts it again, and the header
check only tests the local.

Instructions are
counted as wasmtime's fuel counts them: one each, plus one per function
call; ``nop``, ``drop``, ``block``, ``loop``, ``end``, ``else``,
``unreachable`` and ``return`` are free.  Since a run is charged when it
starts, the count matches wasmtime's for code that does not trap.  A
function that catches exceptions keeps the global current after every
charge and reads it back where a catch lands, so a callee's spending is not
lost when it throws.

When the slice is overdrawn the injected code calls ``refuel(left)``, an
import the host provides: it learns how much was used (the slice it handed
out minus ``left``), may trap (out of fuel, killed), may let other threads
run, and returns the next slice.  Checks sit only at function entries and
loop headers, so a slice is overdrawn by at most one loop iteration or one
function's straight-line code.  The global starts at 0, so the first check
of an instance calls the host, which hands out the first slice: the
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

__all__ = ["FREE_OPS", "MAX_SAVED", "PREPAY_MAX", "MeteredModule", "meter_fuel", "cap_memory",
           "PAGE_SIZE", "MAX_PAGES"]

I32, I64, F32, F64 = 0x7F, 0x7E, 0x7D, 0x7C
PAGE_SIZE = 65536
MAX_PAGES = 65536
"""Pages of a 32-bit memory: 4 GiB."""

_BLOCKS = frozenset((op.BLOCK, op.IF, op.TRY, op.TRY_TABLE))
"""Block openers other than ``loop``."""

FREE_OPS = frozenset((op.NOP, op.DROP, op.BLOCK, op.LOOP, op.END, op.ELSE, op.UNREACHABLE,
                      op.RETURN))
"""Instructions that cost no fuel (as in wasmtime)."""

MAX_SAVED = 16
"""A loop touching more locals than this saves none around its check's call.

Each save is code in every such check, and on wasmer a register for the
global's address all through the function: on ``graphviz.wasm`` (~0.9 MB)
saving every loop's locals made wasmer compile the metered module ~4x
slower than the original, with this cap ~2x (~1.5x with no saves at all)."""

PREPAY_MAX = 8
"""Only a loop header costing at most this is paid for on the edges into the loop.

Paying a header's cost with the run that branches back (and with the run
before the loop) leaves the header a test without a subtraction: one fewer
per iteration, which the tight loops measurably gain on wasmer (sieve of
``bench/limits.py``: 1.2x -> 1.1x of the original).  In longer loops the
subtraction hardly matters and moving it made wasmtime's code slower (the
interpreter kernel 1.2x -> 1.4x), so those keep their own charge."""

_ZERO = {I32: Instr(op.I32_CONST, 0), I64: Instr(op.I64_CONST, 0),
         F32: Instr(op.F32_CONST, bytes(4)), F64: Instr(op.F64_CONST, bytes(8))}
"""The value types a check saves around its call, with their initialisers."""


@dataclass(frozen=True)
class MeteredModule:
    """Where ``meter_fuel`` put things."""

    refuel_function: int  #: index of the imported ``refuel`` function
    fuel_global: int      #: index of the global holding the slice's fuel left
    checks: int           #: how many checks were injected
    step_function: int    #: index of the defined function that calls ``refuel``


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
    first_defined = module.num_imported(0)
    defined = len(module.code)
    # appended after the module's own functions, so it is not metered itself
    step = first_defined + defined
    slots = _SaveSlots(module)
    for n, body in enumerate(module.code[:defined]):
        params = module.function_type(first_defined + n).params
        types = [*params, *(t for count, t in body.locals for _ in range(count))]
        local = len(types)
        body.locals = [*body.locals, (1, I64)]
        body.code, injected = _meter_body(body.code, local, fuel, step, types, slots)
        checks += injected
    added = module.add_function(module.add_type(FuncType((), ())), [], [
        Instr(op.GLOBAL_GET, fuel), Instr(op.CALL, refuel), Instr(op.GLOBAL_SET, fuel),
        Instr(op.END)])
    assert added == step
    module.touch(10)
    return MeteredModule(refuel, fuel, checks, step)


class _SaveSlots:
    """The globals a check stores the loop's locals in around its call, added as needed."""

    def __init__(self, module: Module) -> None:
        self.module = module
        self.by_type: dict[int, list[int]] = {}

    def get(self, value_type: int, position: int) -> int:
        """The global for the ``position``-th saved local of ``value_type`` in one check."""
        slots = self.by_type.setdefault(value_type, [])
        while len(slots) <= position:
            slots.append(self.module.add_global(GlobalType(value_type, True),
                                                [_ZERO[value_type], Instr(op.END)]))
        return slots[position]

    def save(self, local_ids: list[int], types: list[int]) -> list[tuple[int, int]]:
        """(local, global) for each of ``local_ids`` of a type that can be saved."""
        out: list[tuple[int, int]] = []
        counts: dict[int, int] = {}
        for x in local_ids:
            t = types[x]
            if t in _ZERO:
                out.append((x, self.get(t, counts.get(t, 0))))
                counts[t] = counts.get(t, 0) + 1
        return out


class _Charge:
    """A placeholder in the output: the charge at the start of one straight-line run."""

    __slots__ = ("cost", "check", "entry", "after_end", "save", "plus", "minus", "prepaid")

    def __init__(self, check: bool, entry: bool = False, after_end: bool = False) -> None:
        self.cost = 1 if entry else 0  # a call costs one
        self.check = check
        self.entry = entry
        #: the run starts after a block's end or a catch: where a caught exception lands
        self.after_end = after_end
        #: (local, global): what the check stores before its call and reads back after
        self.save: list[tuple[int, int]] = []
        #: loop headers whose cost this run pays in advance (it enters or repeats the loop)
        self.plus: list[_Charge] = []
        #: loop headers paid in advance by a ``br_if`` that was not taken: refunded here
        self.minus: list[_Charge] = []
        #: a loop header whose cost the edges into it pay: it only tests the fuel
        self.prepaid = False

    def total(self) -> int:
        """The fuel this run's charge subtracts."""
        own = 0 if self.prepaid else self.cost
        return own + sum(h.cost for h in self.plus) - sum(h.cost for h in self.minus)


class _Loop:
    """A loop while its body is metered: where its header's cost could be paid instead."""

    __slots__ = ("header", "before", "repeats", "refunds", "foldable")

    def __init__(self, header: _Charge, before: _Charge) -> None:
        self.header = header
        self.before = before  #: the run that enters the loop
        self.repeats: list[_Charge] = []  #: runs ending with a branch back to the header
        self.refunds: list[_Charge] = []  #: runs after a back-edge ``br_if`` (not taken)
        #: false when a ``br_table`` targets the loop or the header's own run branches
        #: back (a single-run loop: paying on the edge would save nothing)
        self.foldable = True

    def fold(self) -> None:
        """Pay the header's cost on the edges into the loop (if that is possible)."""
        if not self.foldable or self.header.cost > PREPAY_MAX:
            return
        self.header.prepaid = True
        for run in (self.before, *self.repeats):
            run.plus.append(self.header)
        for run in self.refunds:
            run.minus.append(self.header)


_TRIES = frozenset((op.TRY, op.TRY_TABLE))
_CALLS = frozenset((op.CALL, op.CALL_INDIRECT))
_LEAVES = frozenset((op.RETURN, op.RETURN_CALL, op.RETURN_CALL_INDIRECT, op.THROW,
                     op.RETHROW, op.THROW_REF))
_BRANCHES = frozenset((op.BR, op.BR_IF, op.BR_TABLE))
_RUN_ENDS = frozenset((op.BR, op.BR_IF, op.BR_TABLE, op.RETURN, op.UNREACHABLE,
                       op.RETURN_CALL, op.RETURN_CALL_INDIRECT, op.THROW, op.RETHROW,
                       op.THROW_REF, op.IF, op.ELSE, op.CATCH, op.CATCH_ALL))
"""After these a new straight-line run starts."""


def _meter_body(code: list[Instr], local: int, fuel: int, step: int, types: list[int],
                slots: _SaveSlots) -> tuple[list[Instr], int]:
    """``code`` with its charges and checks.

    ``local`` is the function's fuel copy, ``step`` the function that calls
    ``refuel``, ``types`` the value types of the function's own locals
    (parameters first), ``slots`` where checks save them.
    """
    loop_locals = _loop_locals(code)
    out: list[Instr | _Charge] = []
    charges: list[_Charge] = []

    def run(check: bool, entry: bool = False, after_end: bool = False) -> _Charge:
        charge = _Charge(check, entry, after_end)
        charges.append(charge)
        out.append(charge)
        return charge

    flush = (Instr(op.LOCAL_GET, local), Instr(op.GLOBAL_SET, fuel))
    reload = (Instr(op.GLOBAL_GET, fuel), Instr(op.LOCAL_SET, local))
    current = run(True, entry=True)
    depth = 0  # open blocks inside the function body (its own label is depth 0's target)
    # With exception handling a catch can branch to a loop: no header is prepaid then.
    exceptions = any(instr.op in _TRIES for instr in code)
    labels: list[_Loop | None] = []  # per open block: its loop, None for other blocks
    loops: list[_Loop] = []
    refund: _Loop | None = None  # a back-edge br_if just ended the run: the next one refunds
    free = FREE_OPS
    last = len(code) - 1
    for i, instr in enumerate(code):
        opcode = instr.op
        if opcode in _BRANCHES and not exceptions:
            refund = _back_edge(instr, labels, current)
        if opcode not in free:
            current.cost += 1
        # write the count back wherever control may leave the function
        if opcode in _CALLS or opcode in _LEAVES or i == last:
            out.extend(flush)
        elif opcode in _BRANCHES and _leaves_function(instr, depth):
            out.extend(flush)
        out.append(instr)
        if opcode in _CALLS:
            out.extend(reload)  # the callee spent from the global
        if opcode == op.LOOP:
            depth += 1
            before = current
            current = run(True)
            touched = loop_locals[i]
            if len(touched) <= MAX_SAVED:
                current.save = slots.save(touched, types)
            loop = _Loop(current, before)
            loops.append(loop)
            labels.append(loop)
        elif opcode in _BLOCKS:
            depth += 1
            labels.append(None)
            if opcode == op.IF:
                current = run(False)
        elif opcode == op.END:
            if depth:
                depth -= 1
                labels.pop()
                current = run(False, after_end=True)
        elif opcode == op.DELEGATE:
            depth -= 1  # ends a (legacy) try block
            labels.pop()
            current = run(False, after_end=True)
        elif opcode in _RUN_ENDS:
            current = run(False, after_end=opcode in (op.CATCH, op.CATCH_ALL))
        if refund is not None:
            refund.refunds.append(current)
            refund = None
    for loop in loops:
        loop.fold()
    # With exception handling, a throw from a callee lands at a catch or after
    # a try_table's label without passing the reload that follows a call: there
    # the function keeps the global current after every charge and reads it
    # back where a caught exception can land.
    result: list[Instr] = []
    checks = 0
    for item in out:
        if not isinstance(item, _Charge):
            result.append(item)
            continue
        if exceptions and item.after_end:
            result += reload
        cost = item.total()
        if item.check:
            checks += 1
            if item.entry:  # costs at least the call
                result += [Instr(op.GLOBAL_GET, fuel), Instr(op.I64_CONST, cost),
                           Instr(op.I64_SUB), Instr(op.LOCAL_TEE, local)]
            elif cost:
                result += [Instr(op.LOCAL_GET, local), Instr(op.I64_CONST, cost),
                           Instr(op.I64_SUB), Instr(op.LOCAL_TEE, local)]
            else:  # a loop header the edges into it paid for
                result.append(Instr(op.LOCAL_GET, local))
            result += [Instr(op.I64_CONST, 0), Instr(op.I64_LT_S), Instr(op.IF, BLOCKTYPE_EMPTY)]
            for x, g in item.save:
                result += [Instr(op.LOCAL_GET, x), Instr(op.GLOBAL_SET, g)]
            result += [*flush, Instr(op.CALL, step), *reload]
            for x, g in item.save:
                result += [Instr(op.GLOBAL_GET, g), Instr(op.LOCAL_SET, x)]
            result.append(Instr(op.END))
        elif cost:
            result += [Instr(op.LOCAL_GET, local), Instr(op.I64_CONST, cost),
                       Instr(op.I64_SUB), Instr(op.LOCAL_SET, local)]
        else:
            continue
        if exceptions:
            result += flush
    return result, checks


_LOCAL_OPS = frozenset((op.LOCAL_GET, op.LOCAL_SET, op.LOCAL_TEE))
_OPENERS = frozenset((op.BLOCK, op.LOOP, op.IF, op.TRY, op.TRY_TABLE))


def _loop_locals(code: list[Instr]) -> dict[int, list[int]]:
    """For each ``loop`` (by its position in ``code``): the locals its body reads or writes.

    One pass: a nested loop's locals are added to the enclosing loop's when it ends.
    """
    out: dict[int, list[int]] = {}
    # one entry per open block: (position, the locals seen) for a loop, None otherwise
    open_blocks: list[tuple[int, set[int]] | None] = []
    innermost: set[int] | None = None
    for i, instr in enumerate(code):
        opcode = instr.op
        if opcode in _LOCAL_OPS:
            if innermost is not None:
                innermost.add(instr.imm)
        elif opcode in _OPENERS:
            if opcode == op.LOOP:
                innermost = set()
                open_blocks.append((i, innermost))
            else:
                open_blocks.append(None)
        elif (opcode == op.END or opcode == op.DELEGATE) and open_blocks:
            closed = open_blocks.pop()
            if closed is not None:
                position, seen = closed
                out[position] = sorted(seen)
                innermost = next((entry[1] for entry in reversed(open_blocks)
                                  if entry is not None), None)
                if innermost is not None:
                    innermost |= seen
    return out


def _back_edge(instr: Instr, labels: list[_Loop | None], run: _Charge) -> _Loop | None:
    """Note a branch back to a loop header, ending ``run``; the loop if it is a ``br_if``."""
    if instr.op == op.BR_TABLE:
        for open_loop in labels:
            if open_loop is not None:
                open_loop.foldable = False
        return None
    label = instr.imm
    if label >= len(labels) or (loop := labels[-1 - label]) is None:
        return None
    if run is loop.header:
        loop.foldable = False
        return None
    loop.repeats.append(run)
    return loop if instr.op == op.BR_IF else None


def _leaves_function(instr: Instr, depth: int) -> bool:
    """Whether a branch can target the function's own label (leaving the function)."""
    if instr.op == op.BR_TABLE:
        labels, default = instr.imm
        return default >= depth or any(label >= depth for label in labels)
    return bool(instr.imm >= depth)


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
