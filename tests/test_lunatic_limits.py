"""Resource limits of the Lunatic runtime (spec section 7.6): fuel, memory, the reserved
metering namespace; both engines.

* Metering does not change what code computes: compute guests (recursion,
  nested loops with ``br_table``, memory loads/stores, i64/f64 math,
  ``call_indirect`` (also to an import), multi-value blocks and loops, early
  ``br`` out of a loop, ``return`` from inside loops, a start function) give
  the same results rewritten by ``wasm_rewriter.limits.meter_fuel`` as
  unchanged, whatever slice the host's ``refuel`` hands out; the fuel they
  are charged is the same for every slice and exactly what wasmtime's own
  fuel charges the same call.  Every C guest of the repository still
  compiles once ``lunatic_api.limits.instrument`` rewrote it.
* ``max_fuel`` (units of 100,000 fuel): a loop of known cost stops with
  "all fuel consumed" within 10% of the iteration count the fuel model
  predicts, checked against wasmtime's native fuel on the original module;
  calls count (recursion alone runs out too), and so does the start
  function; 0 is unlimited; running out is a failure (links hear of it),
  also for a process a guest spawned in an environment of its own.
* ``max_memory`` (bytes, rounded down to whole pages): an initial memory over
  it fails the spawn (``SpawnError``, or 1 and an error from the guest ABI);
  ``memory.grow`` up to it succeeds and past it returns -1; 0 allows no memory
  at all; the default (40 GiB) leaves a 4 GiB memory alone; a module's own
  smaller maximum is kept; ``add_this_module`` applies the target
  environment's limit.
* A guest module importing from ``lunatic_runtime::meter`` is refused.

Preemption and killing busy processes are in ``test_lunatic_preemption.py``.
"""

from __future__ import annotations

import struct
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import wasmtime

import funk
from funk.errors import CompileError, Trap
from funk.types import i32, i64
from lunatic_api import Config, Ending, SignalMessage
from lunatic_api.environment import DEFAULT_MAX_MEMORY
from lunatic_api.limits import FUEL_UNIT, METER_NAMESPACE, OUT_OF_FUEL, Meter, instrument
from lunatic_api.native import NativeProcess
from lunatic_api.process import Process
from lunatic_api.runtime import SpawnError
from tests.lunatic_support import (
    Lab,
    Strings,
    assert_returned,
    assert_trap,
    lab_fixture,  # noqa: F401
    wasm_of,
)
from wasm_rewriter import FuncType, Instr, Module
from wasm_rewriter import opcodes as op
from wasm_rewriter.limits import PAGE_SIZE, meter_fuel
from wasm_rewriter.sections import I64, KIND_FUNC

REPO = Path(__file__).resolve().parent.parent

# ---------------------------------------------------------------------------
# metered code computes what the original computes

COMPUTE_WAT = r"""
(module
  (type $bin (func (param i32 i32) (result i32)))
  ;; an import: the rewriter's own import shifts every defined function's index
  (import "env" "mix" (func $mix (type $bin)))
  (table 5 funcref)
  (elem (i32.const 0) $add $sub $mul $xor $mix)
  (memory (export "memory") 1)
  (func $init (i64.store (i32.const 0x8000) (i64.const 0x1122334455667788)))
  (start $init)
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))
  (func $xor (type $bin) (i32.xor (local.get 0) (local.get 1)))

  ;; recursion, no loop: only the function entry checks meter it
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))

  ;; nested loops dispatching through br_table on (i * j) % 4
  (func (export "switchy") (param $n i32) (result i32)
    (local $i i32) (local $j i32) (local $acc i32)
    (loop $outer
      (local.set $j (i32.const 0))
      (loop $inner
        (block $out
          (block $c3
            (block $c2
              (block $c1
                (block $c0
                  (br_table $c0 $c1 $c2 $c3
                    (i32.rem_u (i32.mul (local.get $i) (local.get $j)) (i32.const 4))))
                (local.set $acc (i32.add (local.get $acc) (i32.const 1)))
                (br $out))
              (local.set $acc (i32.add (local.get $acc) (local.get $i)))
              (br $out))
            (local.set $acc (i32.add (local.get $acc) (local.get $j)))
            (br $out))
          (local.set $acc (i32.mul (local.get $acc) (i32.const 3))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $inner (i32.lt_u (local.get $j) (local.get $n))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $outer (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))

  ;; fill n bytes, then fold them with loads of three widths, from what $init stored
  (func (export "checksum") (param $n i32) (result i64) (local $i i32) (local $sum i64)
    (local.set $sum (i64.load (i32.const 0x8000)))
    (loop $fill
      (i32.store8 (local.get $i) (i32.add (i32.mul (local.get $i) (i32.const 31)) (i32.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $fill (i32.lt_u (local.get $i) (local.get $n))))
    (i64.store offset=8 (local.get $n) (i64.const 0x0123456789abcdef))
    (local.set $i (i32.const 0))
    (loop $sum
      (local.set $sum (i64.add (i64.rotl (local.get $sum) (i64.const 5))
        (i64.xor (i64.load (local.get $i))
                 (i64.extend_i32_u (i32.load16_u offset=3 (local.get $i))))))
      (local.set $i (i32.add (local.get $i) (i32.const 8)))
      (br_if $sum (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $sum))

  ;; i64 and f64 arithmetic and conversions
  (func (export "math") (param $n i64) (result f64) (local $i i64) (local $x f64) (local $k i64)
    (loop $l
      (local.set $k (i64.rem_s (i64.mul (local.get $i) (i64.const 2654435761))
                               (i64.const 1000003)))
      (local.set $x (f64.add (local.get $x)
        (f64.div (f64.sqrt (f64.convert_i64_s (local.get $k)))
                 (f64.add (f64.convert_i64_u (local.get $i)) (f64.const 1.5)))))
      (local.set $x (f64.add (local.get $x) (f64.convert_i64_s
        (i64.trunc_f64_s (f64.floor (f64.mul (local.get $x) (f64.const 0.001)))))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $l (i64.lt_s (local.get $i) (local.get $n))))
    (local.get $x))

  ;; call_indirect through the table, one of five functions (one imported) per iteration
  (func (export "indirect") (param $n i32) (result i32) (local $i i32) (local $acc i32)
    (local.set $acc (i32.const 1))
    (loop $l
      (local.set $acc (call_indirect (type $bin)
        (local.get $acc) (i32.add (local.get $i) (i32.const 3)) (i32.rem_u (local.get $i) (i32.const 5))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
    (local.get $acc))

  ;; multi-value: a function with two results, a loop and a block with params
  (func $divmod (param i32 i32) (result i32 i32)
    (i32.div_u (local.get 0) (local.get 1)) (i32.rem_u (local.get 0) (local.get 1)))
  (func (export "multi") (param $n i32) (result i32 i64) (local $i i32) (local $t i64)
    (i32.const 0) (i64.const 0)
    (loop $l (param i32 i64) (result i32 i64)
      (block (param i32 i64) (result i32 i64)
        (local.set $t)
        (call $divmod (local.get $i) (i32.const 7))
        (i32.mul)
        (i32.add)
        (i64.add (local.get $t) (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $l (i32.lt_u (local.get $i) (local.get $n)))))

  ;; the first i < n with i*i % 1009 == target, by a br out of the loop; -1 if none
  (func (export "find") (param $n i32) (param $target i32) (result i32) (local $i i32)
    (block $found
      (loop $l
        (br_if $found (i32.eq (i32.rem_u (i32.mul (local.get $i) (local.get $i)) (i32.const 1009))
                              (local.get $target)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
      (return (i32.const -1)))
    (local.get $i))

  ;; i, j with i*i + j*j == n (j <= i), returned from inside the inner loop
  (func (export "pair") (param $n i32) (result i32) (local $i i32) (local $j i32)
    (loop $oi
      (local.set $j (i32.const 0))
      (loop $oj
        (if (i32.eq (i32.add (i32.mul (local.get $i) (local.get $i))
                             (i32.mul (local.get $j) (local.get $j)))
                    (local.get $n))
          (then (return (i32.or (i32.shl (local.get $i) (i32.const 16)) (local.get $j)))))
        (local.set $j (i32.add (local.get $j) (i32.const 1)))
        (br_if $oj (i32.le_u (local.get $j) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $oi (i32.lt_u (local.get $i) (i32.const 1000))))
    (i32.const -1))
)
"""

COMPUTE_FUNCTIONS = 14
COMPUTE_LOOPS = 10

CASES: list[tuple[str, tuple[int, ...], Any]] = [
    ("fib", (20,), 6765),
    ("switchy", (60,), None),
    ("checksum", (4096,), None),
    ("math", (3000,), None),
    ("indirect", (1000,), None),
    ("multi", (500,), (sum((i // 7) * (i % 7) for i in range(500)), sum(range(500)))),
    ("find", (2000, 500), None),
    ("find", (20, 10000), -1),
    ("pair", (25 * 25 + 7 * 7,), (25 << 16) | 7),
]
"""(export, arguments, the result when known in advance; otherwise the original's result
is the reference)."""

GRANTS = (1, 997, 1 << 40)
"""Slices ``refuel`` hands out: every check refuels, some do, only the first does."""

TEST_METER = "test::meter"


def mix(a: int, b: int) -> int:
    """The imported ``env.mix``: (a * 31) xor b, as a wrapping i32."""
    bits = ((a * 31) ^ b) & 0xFFFFFFFF
    return bits - (1 << 32) if bits >= 1 << 31 else bits


@funk.host_functions(namespace="env")
class Env:
    """The compute guest's import."""

    def mix(self, a: i32, b: i32) -> i32:
        """(a * 31) xor b."""
        return mix(a, b)


@funk.host_functions(namespace=TEST_METER)
class Refuel:
    """A ``refuel`` host: hands out ``grant`` fuel each time, counts calls and fuel used."""

    def __init__(self, grant: int) -> None:
        self.grant = grant
        self.calls = 0
        self.used = 0   # fuel of the slices handed out before the current one
        self.given = 0  # the current slice

    def refuel(self, left: i64) -> i64:
        """The next slice; ``left`` (< 0) is what is left of the current one."""
        self.calls += 1
        self.used += self.given - left
        self.given = self.grant
        return self.grant


@cache
def compute_original() -> bytes:
    """``COMPUTE_WAT`` compiled."""
    return wasm_of(COMPUTE_WAT)


@cache
def metered(wasm: bytes) -> tuple[bytes, int]:
    """``wasm`` with fuel checks calling ``test::meter.refuel``, plus an export
    ``fuel_left`` (not metered itself) reading the fuel global; the number of checks."""
    module = Module.parse(wasm)
    meter = meter_fuel(module, TEST_METER, "refuel")
    getter = module.add_function(module.add_type(FuncType((), (I64,))), [],
                                 [Instr(op.GLOBAL_GET, meter.fuel_global), Instr(op.END)])
    module.add_export("fuel_left", KIND_FUNC, getter)
    return module.encode(), meter.checks


def compute_metered() -> tuple[bytes, int]:
    """``COMPUTE_WAT`` metered (see ``metered``)."""
    return metered(compute_original())


@cache
def native_fuel(name: str, args: tuple[int, ...]) -> tuple[Any, int]:
    """The original export run by wasmtime with its own fuel metering: (result, fuel the
    call used).  Only the call is measured: what wasmtime charges for running the start
    function changed between versions (50 adds 2)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    store = wasmtime.Store(wasmtime.Engine(config))
    store.set_fuel(10**12)
    mix_type = wasmtime.FuncType([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()])
    imports = [wasmtime.Func(store, mix_type, mix)]
    instance = wasmtime.Instance(store, wasmtime.Module(store.engine, compute_original()), imports)
    function = instance.exports(store)[name]
    assert isinstance(function, wasmtime.Func)
    before = store.get_fuel()
    result = function(store, *args)
    return (tuple(result) if isinstance(result, list) else result), before - store.get_fuel()


def run_metered(backend: str, grant: int, name: str, args: tuple[int, ...],
                wasm: bytes | None = None) -> tuple[Any, int, Refuel]:
    """Run an export of ``wasm`` (default ``COMPUTE_WAT``) metered: its result, the fuel the
    call was charged (not counting the start function), the ``refuel`` host."""
    host = Refuel(grant)
    code = compute_metered()[0] if wasm is None else metered(wasm)[0]
    instance = funk.instantiate(code, [host, Env()], backend=backend)

    def charged() -> int:
        return host.used + host.given - instance.exports["fuel_left"]()

    before = charged()
    result = instance.exports[name](*args)
    return result, charged() - before, host


def test_metering_injects_a_check_per_function_and_loop(backend: str) -> None:
    """One check at each function entry and each loop header; ``refuel`` imported after
    the module's own import; the start function is metered too (it has run, charged 4,
    once instantiated)."""
    wasm, checks = compute_metered()
    assert checks == COMPUTE_FUNCTIONS + COMPUTE_LOOPS
    imports = [(imp.module, imp.name) for imp in Module.parse(wasm).imports]
    assert imports == [("env", "mix"), (TEST_METER, "refuel")]
    host = Refuel(1 << 40)
    instance = funk.instantiate(wasm, [host, Env()], backend=backend)
    assert host.calls == 1
    # $init: its entry, i32.const, i64.const, i64.store
    assert host.used + host.given - instance.exports["fuel_left"]() == 4
    assert struct.unpack("<Q", instance.memory.read(0x8000, 8)) == (0x1122334455667788,)


@pytest.mark.parametrize("name, args, known", CASES,
                         ids=[f"{name}{args}" for name, args, _ in CASES])
def test_metered_results_equal_the_originals(backend: str, name: str, args: tuple[int, ...],
                                             known: Any) -> None:
    """Same results with every slice size; the charge does not depend on the slice;
    a slice bigger than the run means one ``refuel`` (the first check), a slice of 1
    one per check executed (more than one)."""
    original = funk.instantiate(compute_original(), [Env()], backend=backend).exports[name](*args)
    if known is not None:
        assert original == known
    charges = set()
    for grant in GRANTS:
        result, charged, host = run_metered(backend, grant, name, args)
        assert result == original, f"slice {grant}"
        charges.add(charged)
        if grant == GRANTS[-1]:
            assert host.calls == 1
        elif grant == 1:
            assert host.calls > 1
    assert len(charges) == 1, charges


@pytest.mark.parametrize("name, args", [(name, args) for name, args, _ in CASES],
                         ids=[f"{name}{args}" for name, args, _ in CASES])
def test_metered_charge_follows_wasmtime_fuel(backend: str, name: str,
                                              args: tuple[int, ...]) -> None:
    """The charge is wasmtime's native fuel for the same call, to the unit: straight-line
    code is charged as it is entered, so code a branch skips is not charged."""
    result, charged, _ = run_metered(backend, GRANTS[-1], name, args)
    native_result, fuel = native_fuel(name, args)
    assert result == native_result
    assert charged == fuel


def c_guest_paths() -> list[Path]:
    """Every compiled C guest of the repository."""
    paths = sorted((REPO / "tests" / "guests").rglob("*.wasm"))
    paths += sorted((REPO / "examples" / "lunatic" / "wasm").glob("*.wasm"))
    assert len(paths) >= 10, paths
    return paths


def test_instrumented_c_guests_validate(backend: str) -> None:
    """Every C guest, rewritten as ``add_module`` rewrites it, compiles on the engine and
    imports the meter's ``refuel``; the rewrite is cached (the same object again)."""
    for path in c_guest_paths():
        wasm = path.read_bytes()
        rewritten = instrument(wasm, DEFAULT_MAX_MEMORY)
        assert rewritten.wasm != wasm
        assert instrument(wasm, DEFAULT_MAX_MEMORY) is rewritten
        imports = {(imp.module, imp.name) for imp in Module.parse(rewritten.wasm).imports}
        assert (METER_NAMESPACE, "refuel") in imports, path.name
        compiled = funk.compile(rewritten.wasm, backend)
        assert compiled.exports, path.name


# ---------------------------------------------------------------------------
# max_fuel

COUNT_WAT = """
(module
  (memory (export "memory") 1)
  (func $step (param $i i32) (result i32)
    (i32.add (local.get $i) (i32.const 1)))
  ;; n iterations (0: practically forever), the count stored at address 0 each time
  (func (export "count") (param $n i32) (local $i i32)
    (loop $top
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (i32.store (i32.const 0) (local.get $i))
      (br_if $top (i32.ne (local.get $i) (local.get $n)))))
  ;; the same, the increment done by a call
  (func (export "count_calls") (param $n i32) (local $i i32)
    (loop $top
      (local.set $i (call $step (local.get $i)))
      (i32.store (i32.const 0) (local.get $i))
      (br_if $top (i32.ne (local.get $i) (local.get $n)))))
  ;; no loop at all: only function entries are metered
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2))))))))
"""

COUNT_COST = 11
"""Fuel per iteration of ``count`` under the fuel model: local.get, i32.const, i32.add,
local.set, i32.const, local.get, i32.store, local.get, local.get, i32.ne, br_if (loop and
end are free)."""

COUNT_CALLS_COST = 10 + 4
"""``count_calls``: the loop as ``count`` with local.get, call, local.set for the four
instructions of the increment (10), plus ``$step``: 1 for the entry, local.get, i32.const,
i32.add."""

FIB_LEAF_COST = 1 + 3 + 1 + 1
"""A ``fib`` call with n < 2: 1 for the entry, local.get, i32.const, i32.lt_u, if, and the
then arm's local.get."""
FIB_INNER_COST = 1 + 3 + 1 + 9
"""A ``fib`` call with n >= 2: the entry, the condition, if, and the else arm's local.get,
i32.const, i32.sub, call, local.get, i32.const, i32.sub, call, i32.add."""

MAX_FUEL = 3
"""Units of ``max_fuel`` the exhaustion tests allow (300,000 fuel)."""


def fib_calls(n: int) -> int:
    """Calls ``fib(n)`` makes, itself included."""
    return 1 if n < 2 else 1 + fib_calls(n - 1) + fib_calls(n - 2)


def fib_fuel(n: int) -> int:
    """The fuel ``fib(n)`` costs: a binary tree of calls, one more leaf than inner calls."""
    leaves = fib_calls(n) // 2 + 1
    return leaves * FIB_LEAF_COST + (leaves - 1) * FIB_INNER_COST


def count_module() -> bytes:
    """``COUNT_WAT`` compiled."""
    return wasm_of(COUNT_WAT)


def test_the_fuel_model_matches_wasmtime(backend: str) -> None:
    """The costs above are what the rewriter charges (``refuel`` host) and what wasmtime's
    own fuel charges the original module, exactly: per loop iteration (the difference
    between two run lengths) and per ``fib`` call (only the arm taken)."""
    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, count_module())

    def native(name: str, arg: int) -> int:
        store = wasmtime.Store(engine)
        store.set_fuel(10**9)
        function = wasmtime.Instance(store, module, []).exports(store)[name]
        assert isinstance(function, wasmtime.Func)
        function(store, arg)
        return 10**9 - store.get_fuel()

    def ours(name: str, arg: int) -> int:
        return run_metered(backend, 1 << 40, name, (arg,), count_module())[1]

    for name, cost in (("count", COUNT_COST), ("count_calls", COUNT_CALLS_COST)):
        assert native(name, 1000) - native(name, 100) == 900 * cost, name
        assert ours(name, 1000) - ours(name, 100) == 900 * cost, name
    assert native("fib", 15) == fib_fuel(15)
    assert ours("fib", 15) == fib_fuel(15)


@pytest.mark.parametrize("name, cost", [("count", COUNT_COST), ("count_calls", COUNT_CALLS_COST)])
def test_fuel_runs_out_where_the_model_says(backend: str, name: str, cost: int) -> None:
    """The rewritten module with the runtime's ``Meter`` and ``max_fuel`` = 3 units traps
    with "all fuel consumed" after 300,000 / cost iterations (within 10%); wasmtime's
    native fuel, given the same 300,000 on the original module, stops within 10% of the
    same count, and the original module running the metered run's iteration count uses
    300,000 native fuel within 10%."""
    limit = MAX_FUEL * FUEL_UNIT
    expected = limit / cost
    wasm = instrument(count_module(), DEFAULT_MAX_MEMORY).wasm
    meter = Meter(Process(None, name="fuel"), MAX_FUEL,
                  yield_gil=funk.backends.get(backend).holds_gil)
    instance = funk.instantiate(wasm, [meter], backend=backend)
    with pytest.raises(Trap) as caught:
        instance.exports[name](0)
    assert str(caught.value).startswith(OUT_OF_FUEL)
    assert f"max_fuel of {MAX_FUEL} units" in str(caught.value)
    (reached,) = struct.unpack("<I", instance.memory.read(0, 4))
    assert abs(reached - expected) <= 0.1 * expected, (reached, expected)
    assert limit < meter.used <= limit + cost  # over by at most one check's charge

    config = wasmtime.Config()
    config.consume_fuel = True
    engine = wasmtime.Engine(config)
    module = wasmtime.Module(engine, count_module())
    store = wasmtime.Store(engine)
    store.set_fuel(limit)
    native = wasmtime.Instance(store, module, [])
    function = native.exports(store)[name]
    memory = native.exports(store)["memory"]
    assert isinstance(function, wasmtime.Func) and isinstance(memory, wasmtime.Memory)
    with pytest.raises(wasmtime.Trap):
        function(store, 0)
    (native_reached,) = struct.unpack("<I", memory.read(store, 0, 4))
    assert abs(native_reached - expected) <= 0.1 * expected, (native_reached, expected)

    store = wasmtime.Store(engine)
    store.set_fuel(10 * limit)
    function = wasmtime.Instance(store, module, []).exports(store)[name]
    assert isinstance(function, wasmtime.Func)
    function(store, reached)
    native_used = 10 * limit - store.get_fuel()
    assert abs(native_used - limit) <= 0.1 * limit, (native_used, limit)


@pytest.mark.parametrize("name, per_iteration",
                         [("count", COUNT_COST), ("count_calls", COUNT_CALLS_COST)])
def test_max_fuel_brackets_the_iteration_count(lab: Lab, name: str, per_iteration: int) -> None:
    """A process with ``max_fuel`` = 3 units returns after 90% of the predicted
    iterations and fails with "all fuel consumed" trying 110%; with fuel 0 (unlimited)
    it runs 30 times as long."""
    expected = MAX_FUEL * FUEL_UNIT // per_iteration
    limited = lab.runtime.environment(Config(max_fuel=MAX_FUEL)).add_module(count_module())
    assert_returned(lab.join(lab.runtime.spawn(limited, name, [expected * 9 // 10])))
    outcome = lab.join(lab.runtime.spawn(limited, name, [expected * 11 // 10]))
    assert_trap(outcome, None, OUT_OF_FUEL, f"max_fuel of {MAX_FUEL} units", "300,000 fuel")
    unlimited = lab.runtime.environment(Config(max_fuel=0)).add_module(count_module())
    assert_returned(lab.join(lab.runtime.spawn(unlimited, name, [expected * 30])))


def test_recursion_without_loops_runs_out_of_fuel(lab: Lab) -> None:
    """Calls alone are metered: ``fib(20)`` (21,891 calls, 218,906 fuel) fits in 3 units
    and not in 2."""
    units = fib_fuel(20) // FUEL_UNIT
    assert units == 2
    enough = lab.runtime.environment(Config(max_fuel=units + 1)).add_module(count_module())
    assert_returned(lab.join(lab.runtime.spawn(enough, "fib", [20])))
    short = lab.runtime.environment(Config(max_fuel=units)).add_module(count_module())
    assert_trap(lab.join(lab.runtime.spawn(short, "fib", [20])), None, OUT_OF_FUEL,
                f"max_fuel of {units} units")


#: ``main(rounds)``: each round calls ``$burn``, which spins 5,000 iterations (about
#: 25,000 fuel) and throws, caught in ``main`` by a ``try_table`` (wasmtime only: wasmer
#: 1.1 has no exception handling)
CATCHING_WAT = """
(module
  (tag $e)
  (func $burn (param $n i32)
    (loop $l
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br_if $l (local.get $n)))
    (throw $e))
  (func (export "main") (param $rounds i32)
    (loop $again
      (block $caught
        (try_table (catch $e $caught)
          (call $burn (i32.const 5000))))
      (local.set $rounds (i32.sub (local.get $rounds) (i32.const 1)))
      (br_if $again (local.get $rounds)))))
"""


def test_fuel_spent_by_a_callee_that_throws_is_charged() -> None:
    """A caught exception does not hide what the throwing callee spent: 1,000 rounds
    (~25M fuel) run out of 10 units, and a kill still lands at once (wasmtime only)."""
    with Lab("wasmtime") as lab:
        try:
            funk.compile(CATCHING_WAT, "wasmtime")
        except CompileError as exc:  # wasmtime < 48: exceptions are not enabled
            assert "exceptions proposal not enabled" in str(exc)
            with pytest.raises(CompileError, match="exceptions proposal"):
                lab.runtime.environment(Config()).add_module(CATCHING_WAT)
            return
        _check_catching(lab)


def _check_catching(lab: Lab) -> None:
    short = lab.runtime.environment(Config(max_fuel=10)).add_module(CATCHING_WAT)
    assert_trap(lab.join(lab.runtime.spawn(short, "main", [1000])), None, OUT_OF_FUEL)
    enough = lab.runtime.environment(Config(max_fuel=1000)).add_module(CATCHING_WAT)
    assert_returned(lab.join(lab.runtime.spawn(enough, "main", [1000])))
    forever = lab.runtime.environment(Config()).add_module(CATCHING_WAT)
    spinner = lab.runtime.spawn(forever, "main", [0])  # 0 rounds: wraps, runs ~forever
    lab.runtime.kill(spinner)
    assert lab.join(spinner, timeout=2.0).ending is Ending.KILLED


def test_running_out_of_fuel_is_a_failure_links_hear_of(lab: Lab) -> None:
    """The out-of-fuel trap notifies linked processes: the collector (flag off) gets a
    signal message with the link tag; a native parent with the flag on dies."""
    env = lab.runtime.environment(Config(max_fuel=1))
    module = env.add_module(count_module())
    spinner = lab.runtime.spawn(module, "count", [0], parent=lab.collector, link_tag=5)
    assert_trap(lab.join(spinner), None, OUT_OF_FUEL)
    (signal,) = lab.wait_messages(1)
    assert isinstance(signal, SignalMessage) and signal.tag == 5

    children: list[Process] = []

    def parent(proc: NativeProcess) -> None:
        children.append(proc.spawn(module, "count", [0], link_tag=8))
        proc.receive()  # never returns: the child's death kills this process

    loud = lab.runtime.spawn_native(parent, environment=env)
    assert lab.join(loud).ending is Ending.KILLED
    assert_trap(lab.join(children[0]), None, OUT_OF_FUEL)


def test_the_start_function_spends_the_process_fuel(lab: Lab) -> None:
    """A start function runs inside ``spawn`` on the new process's fuel: spinning there
    under ``max_fuel`` makes ``rt.spawn`` fail with the fuel message, leaving nothing
    running."""
    env = lab.runtime.environment(Config(max_fuel=1))
    module = env.add_module(wasm_of(
        '(module (func $start (loop $l (br $l))) (start $start) (func (export "main")))'))
    before = set(lab.runtime.processes())
    with pytest.raises(SpawnError) as caught:
        lab.runtime.spawn(module, "main")
    assert OUT_OF_FUEL in str(caught.value) and "max_fuel of 1 units" in str(caught.value)
    assert set(lab.runtime.processes()) == before


SPIN_WAT = """
(module
  (func (export "spin") (loop $l (br $l))))
"""
"""Spins forever; no memory, no imports but the meter's."""

OUT = 0x800
EMBED = 0x1000


def test_guest_made_config_limits_fuel_and_the_parent_gets_link_died(lab: Lab) -> None:
    """A guest creates a config with ``max_fuel`` = 2, no namespaces and ``max_memory`` 0
    (the spinner has no memory), an environment,
    adds a spinning module and spawns it linked (tag 9): the child fails out of fuel
    (the meter is linked even where nothing is allowed) and the parent receives the
    signal message with tag 9."""
    spin = wasm_of(SPIN_WAT)
    strings = Strings(0x400)
    run = lab.run(lab.module(f"""
      (func (export "main") (local $env i64) (local $m i64) (local $child i64)
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (if (call $lunatic::process.create_environment
              (call $lunatic::process.create_config (i64.const 0) (i64.const 2)) (i32.const {OUT}))
          (then unreachable))
        (local.set $env (i64.load (i32.const {OUT})))
        (call $rec32 (call $lunatic::process.add_module (local.get $env)
          (i32.const {EMBED}) (i32.const {len(spin)}) (i32.const {OUT})))
        (local.set $m (i64.load (i32.const {OUT})))
        (call $rec32 (call $lunatic::process.spawn (i64.const 9) (local.get $m)
          {strings.arg("spin")} (i32.const 0) (i32.const 0) (i32.const {OUT})))
        (local.set $child (i64.load (i32.const {OUT})))
        (call $export_handle (local.get $child))
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))""", data=strings.data + [(EMBED, spin)]))
    assert_returned(run)
    assert run.records == [0, 0, 1, 9]
    (child,) = run.handles
    outcome = lab.join(child)
    assert_trap(outcome, None, OUT_OF_FUEL, "max_fuel of 2 units")


# ---------------------------------------------------------------------------
# max_memory

GROW = """
(func (export "grow") (param $a i32) (param $b i32)
  (call $setup)
  (call $rec (i64.extend_i32_s (memory.grow (local.get $a))))
  (call $rec (i64.extend_i32_s (memory.grow (local.get $b))))
  (call $rec (i64.extend_i32_s (memory.size)))
  (call $flush))
"""
"""Grows the (1-page) memory by a, then b pages; records both results and the size."""


@pytest.mark.parametrize("max_memory, grows, records", [
    (3 * PAGE_SIZE, (2, 1), [1, -1, 3]),           # exactly the limit, then one past it
    (3 * PAGE_SIZE + 1000, (2, 1), [1, -1, 3]),    # rounded down to 3 pages
    (3 * PAGE_SIZE - 1, (2, 1), [-1, 1, 2]),       # 2 pages: +2 fails, +1 fits exactly
    (1 * PAGE_SIZE, (1, 0), [-1, 1, 1]),           # no growth at all (grow 0 is fine)
    (DEFAULT_MAX_MEMORY, (100, 0x10000), [1, -1, 101]),  # past 4 GiB: wasm's own limit
], ids=["exact", "rounded", "below", "one_page", "default"])
def test_memory_grow_stops_at_max_memory(lab: Lab, max_memory: int, grows: tuple[int, int],
                                         records: list[int]) -> None:
    """``memory.grow`` up to ``max_memory`` (whole pages) succeeds, past it returns -1."""
    env = lab.runtime.environment(Config(max_memory=max_memory))
    run = lab.run(lab.module(GROW, env=env), "grow", list(grows))
    assert_returned(run)
    assert run.records == records


BIG_MEMORY = """
(module
  (memory (export "memory") 1 {maximum})
  (func $check (param i32) (if (i32.eqz (local.get 0)) (then unreachable)))
  (func (export "main")
    (call $check (i32.eq (memory.grow (i32.const {grow})) (i32.const 1)))
    (call $check (i32.eq (memory.size) (i32.const {size})))
    (call $check (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
    ;; the last byte of the memory is there
    (i32.store8 (i32.const {last}) (i32.const 7))
    (call $check (i32.eq (i32.load8_u (i32.const {last})) (i32.const 7)))))
"""


FOUR_GIB = """
(module
  (memory (export "memory") 1 0x10000)
  (func $check (param i32) (if (i32.eqz (local.get 0)) (then unreachable)))
  (func (export "main") (param $pages i32)
    (call $check (i32.eq (memory.grow (i32.sub (local.get $pages) (i32.const 1))) (i32.const 1)))
    (call $check (i32.eq (memory.size) (local.get $pages)))
    ;; the last byte of the memory is there
    (i32.store8 (i32.sub (i32.shl (local.get $pages) (i32.const 16)) (i32.const 1)) (i32.const 7))
    (call $check (i32.eq (i32.load8_u (i32.sub (i32.shl (local.get $pages) (i32.const 16))
                                               (i32.const 1)))
                         (i32.const 7)))))
"""
"""A memory of up to 4 GiB; ``main(pages)`` grows it to ``pages`` and uses its last byte."""


def test_default_config_leaves_a_4_gib_memory_alone(lab: Lab) -> None:
    """In the default environment (40 GiB) a memory declared up to 65,536 pages keeps that
    maximum and grows to 65,535 pages (4 GiB - 64 KiB).  wasmer 1.1 itself refuses the
    65,536th page (the unmodified module too), so only wasmtime grows to the full 4 GiB."""
    wasm = wasm_of(FOUR_GIB)
    rewritten = Module.parse(instrument(wasm, DEFAULT_MAX_MEMORY).wasm)
    assert [(m.minimum, m.maximum) for m in rewritten.memories] == [(1, 0x10000)]
    module = lab.env.add_module(wasm)
    assert_returned(lab.join(lab.runtime.spawn(module, "main", [0xFFFF])))
    if lab.backend == "wasmtime":
        assert_returned(lab.join(lab.runtime.spawn(module, "main", [0x10000])))


@pytest.mark.parametrize("declared, max_memory, pages", [
    (2, 10 * PAGE_SIZE, 2),    # its own maximum is below the environment's: kept
    (100, 3 * PAGE_SIZE, 3),   # above: lowered to the environment's
    (None, 5 * PAGE_SIZE, 5),  # none: the environment's
])
def test_memory_maximum_is_the_lower_of_module_and_environment(
        lab: Lab, declared: int | None, max_memory: int, pages: int) -> None:
    """The rewritten memory's maximum is min(declared, max_memory pages); the process
    grows to exactly that many pages."""
    maximum = "" if declared is None else str(declared)
    wasm = wasm_of(BIG_MEMORY.format(maximum=maximum, grow=pages - 1, size=pages,
                                     last=pages * PAGE_SIZE - 1))
    rewritten = Module.parse(instrument(wasm, max_memory).wasm)
    assert [(m.minimum, m.maximum) for m in rewritten.memories] == [(1, pages)]
    module = lab.runtime.environment(Config(max_memory=max_memory)).add_module(wasm)
    assert_returned(lab.join(lab.runtime.spawn(module, "main")))


SPAWN_CHECK = """
(module
  {memory}
  (func (export "main")
    {body}))
"""


@pytest.mark.parametrize("memory, body", [
    ("", ""),
    ("(memory 0)", "(if (i32.ne (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))"),
    ("(memory 0 0)", "(if (i32.ne (memory.size) (i32.const 0)) (then unreachable))"),
], ids=["no_memory", "zero_pages", "zero_max"])
def test_max_memory_zero_allows_only_no_memory(lab: Lab, memory: str, body: str) -> None:
    """``max_memory`` = 0 is not unlimited: a module without memory, or with 0 pages
    (which cannot grow), runs."""
    env = lab.runtime.environment(Config(max_memory=0))
    module = env.add_module(wasm_of(SPAWN_CHECK.format(memory=memory, body=body)))
    assert_returned(lab.join(lab.runtime.spawn(module, "main")))


@pytest.mark.parametrize("max_memory, pages", [(0, 1), (PAGE_SIZE, 2), (2 * PAGE_SIZE - 1, 2)])
def test_initial_memory_over_max_memory_fails_the_spawn(lab: Lab, max_memory: int,
                                                        pages: int) -> None:
    """``rt.spawn`` raises ``SpawnError`` saying so; no process is left behind."""
    env = lab.runtime.environment(Config(max_memory=max_memory))
    module = env.add_module(wasm_of(SPAWN_CHECK.format(memory=f"(memory {pages})", body="")))
    before = set(lab.runtime.processes())
    with pytest.raises(SpawnError) as caught:
        lab.runtime.spawn(module, "main")
    assert str(caught.value) == (
        f"the module's initial memory ({pages} pages, {pages * PAGE_SIZE:,} bytes) exceeds "
        f"the environment's max_memory of {max_memory:,} bytes")
    assert set(lab.runtime.processes()) == before


def test_guest_spawn_over_max_memory_returns_an_error(lab: Lab) -> None:
    """Through the guest ABI, in an environment of one page: ``add_module`` of a 2-page
    module succeeds (compiling does not instantiate), its ``spawn`` returns 1 and the
    error says why; a 1-page module spawns (0) and returns."""
    two = wasm_of(SPAWN_CHECK.format(memory="(memory 2)", body=""))
    one = wasm_of(SPAWN_CHECK.format(memory="(memory 1)", body=""))
    strings = Strings(0x400)
    spawn = f"""(call $lunatic::process.spawn (i64.const 0) (i64.load (i32.const {OUT}))
          {strings.arg("main")} (i32.const 0) (i32.const 0) (i32.const {OUT}))"""
    run = lab.run(lab.module(f"""
      (func (export "main") (local $env i64) (local $code i32)
        (call $setup)
        (if (call $lunatic::process.create_environment
              (call $lunatic::process.create_config (i64.const {PAGE_SIZE}) (i64.const 0))
              (i32.const {OUT}))
          (then unreachable))
        (local.set $env (i64.load (i32.const {OUT})))
        (call $rec32 (call $lunatic::process.add_module (local.get $env)
          (i32.const {EMBED}) (i32.const {len(two)}) (i32.const {OUT})))
        (local.set $code {spawn})
        (call $rec32 (local.get $code))
        (if (local.get $code) (then (call $rec_error (i64.load (i32.const {OUT})))))
        (call $rec32 (call $lunatic::process.add_module (local.get $env)
          (i32.const {EMBED + 0x400}) (i32.const {len(one)}) (i32.const {OUT})))
        (call $rec32 {spawn})
        (call $export_handle (i64.load (i32.const {OUT})))
        (call $flush))""", data=strings.data + [(EMBED, two), (EMBED + 0x400, one)]))
    assert_returned(run)
    assert run.records[:2] == [0, 1]
    assert run.records[2] == (b"the module's initial memory (2 pages, 131,072 bytes) exceeds "
                              b"the environment's max_memory of 65,536 bytes")
    assert run.records[3:] == [0, 0]
    assert_returned(lab.join(run.handles[0]))


def test_add_this_module_applies_the_other_environments_memory_limit(lab: Lab) -> None:
    """``add_this_module`` into an environment of 2 pages (``lunatic::`` allowed): the
    caller's own code, spawned there, grows to 2 pages and no further, while the caller
    (default environment) grows past that."""
    strings = Strings(0x400)
    run = lab.run(lab.module(GROW, f"""
      (func (export "main") (local $cfg i64) (local $env i64) (local $child i64)
        (call $setup)
        (local.set $cfg (call $lunatic::process.create_config (i64.const {2 * PAGE_SIZE})
                                                              (i64.const 0)))
        (call $lunatic::process.allow_namespace (local.get $cfg) {strings.arg("lunatic::")})
        (if (call $lunatic::process.create_environment (local.get $cfg) (i32.const {OUT}))
          (then unreachable))
        (local.set $env (i64.load (i32.const {OUT})))
        (if (call $lunatic::process.add_this_module (local.get $env) (i32.const {OUT}))
          (then unreachable))
        (i32.store8 (i32.const {OUT + 16}) (i32.const 0x7f))
        (i64.store (i32.const {OUT + 17}) (i64.const 1))
        (i64.store (i32.const {OUT + 25}) (i64.const 0))
        (i32.store8 (i32.const {OUT + 33}) (i32.const 0x7f))
        (i64.store (i32.const {OUT + 34}) (i64.const 1))
        (i64.store (i32.const {OUT + 42}) (i64.const 0))
        (if (call $lunatic::process.spawn (i64.const 0) (i64.load (i32.const {OUT}))
              {strings.arg("grow")} (i32.const {OUT + 16}) (i32.const 34) (i32.const {OUT}))
          (then unreachable))
        (local.set $child (i64.load (i32.const {OUT})))
        (call $give_collector (local.get $child))
        (call $export_handle (local.get $child))
        (call $rec (i64.extend_i32_s (memory.grow (i32.const 2))))
        (call $flush))""", data=strings.data))
    assert_returned(run)
    (child,) = run.handles
    assert_returned(lab.join(child))
    reports = lab.wait_reports(2)
    assert sorted(reports) == sorted([[1], [1, -1, 2]])


# ---------------------------------------------------------------------------
# the reserved namespace


@pytest.mark.parametrize("name, signature", [("refuel", "(param i64) (result i64)"),
                                              ("anything", "")])
def test_importing_the_meter_namespace_is_refused(lab: Lab, name: str, signature: str) -> None:
    """``add_module`` raises ``CompileError`` naming the reserved namespace; through the
    guest ABI, ``add_module`` returns 1 with that text."""
    wasm = wasm_of(f'(module (import "{METER_NAMESPACE}" "{name}" (func {signature}))'
                   ' (func (export "main")))')
    with pytest.raises(CompileError) as caught:
        lab.env.add_module(wasm)
    text = str(caught.value)
    assert f"{METER_NAMESPACE}::{name}" in text and "reserved" in text
    run = lab.run(lab.module(f"""
      (func (export "main") (local $code i32)
        (call $setup)
        (local.set $code (call $lunatic::process.add_module (call $lunatic::process.this_env)
          (i32.const {EMBED}) (i32.const {len(wasm)}) (i32.const {OUT})))
        (call $rec32 (local.get $code))
        (if (local.get $code) (then (call $rec_error (i64.load (i32.const {OUT})))))
        (call $flush))""", data=[(EMBED, wasm)]))
    assert_returned(run)
    assert run.records == [1, text.encode()]
