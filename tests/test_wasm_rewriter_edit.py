"""wasm_rewriter: editing a module (imports, globals, functions, exports, injected code).

Each edit is checked three ways: the parsed result (indices shifted where they
must, nowhere else; the name section follows), the engines (the edited module
validates and instantiates), and behaviour (every export computes what it did
before, and the added pieces do what they should).

Engine coverage: wasmer 1.1 refuses tail calls and constant expressions that
read defined globals (both wasm 3.0 features wasmtime 50 accepts), so the
modules below include those parts only when the backend is wasmtime.
"""

from __future__ import annotations

import functools
import re
import struct
from pathlib import Path
from typing import Any

import pytest
import wasmer
import wasmer_compiler_cranelift
import wasmtime

import funk
from examples.graphviz_svg import GraphvizRenderer, graphviz_wasm_path
from funk.types import i32, i64
from tests.test_wasm_rewriter_roundtrip import ACCEPTS, fixture_bytes, read_uleb
from wasm_rewriter import FuncType, Global, GlobalType, Instr, Module, opcodes

I32, I64, F64 = 0x7F, 0x7E, 0x7C
KIND_FUNC, KIND_GLOBAL = 0, 3


@funk.host_functions(namespace="env")
class Env:
    """The host side of the edited guests: records what the guest calls."""

    def __init__(self) -> None:
        self.logged: list[int] = []
        self.hooked: list[int] = []
        self.wide: list[int] = []
        self.ticks = 0

    def log(self, x: i32) -> None:
        self.logged.append(x)

    def hook(self, x: i32) -> i32:
        self.hooked.append(x)
        return x + 1000

    def hook64(self, x: i64) -> None:
        self.wide.append(x)

    def tick(self) -> None:
        self.ticks += 1


def edit_wat(tail: bool) -> str:
    """A module using every kind of function reference the rewriter must shift."""
    tail_funcs = r"""
  (func $countdown (param $n i32) (param $acc i32) (result i32)
    (if (result i32) (i32.eqz (local.get $n)) (then (local.get $acc))
      (else (return_call $countdown (i32.sub (local.get $n) (i32.const 1))
                                    (i32.add (local.get $acc) (i32.const 2))))))
  (func (export "tail") (param i32) (result i32) (return_call $countdown (local.get 0) (i32.const 0)))
""" if tail else ""
    return r"""
(module
  (type $bin (func (param i32 i32) (result i32)))
  (type $un (func (param i32) (result i32)))
  (import "env" "log" (func $log (param i32)))
  (memory (export "memory") 1)
  (table $tab 8 funcref)
  (global $state (mut i32) (i32.const 0))
  (global $fref funcref (ref.func $triple))
  (elem (i32.const 0) $add $sub)
  (elem (i32.const 2) funcref (ref.func $mul) (ref.null func))
  (elem declare func $neg)
  (elem $pe funcref (ref.func $triple))
  (elem (i32.const 7) $log)
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))
  (func $neg (param $v i32) (result i32) (i32.sub (i32.const 0) (local.get $v)))
  (func $triple (type $un) (i32.mul (local.get 0) (i32.const 3)))
  (func $init (global.set $state (i32.const 42)) (call $log (i32.const 1)))
  (start $init)
  (func $boom (unreachable))
  (func $explode (export "explode") (call $boom))
  (func $apply (export "apply") (param $op i32) (param $a i32) (param $b i32) (result i32)
    (block $named (result i32)
      (call_indirect $tab (type $bin) (local.get $a) (local.get $b) (local.get $op))))
  (func $calls (export "calls") (param i32) (result i32) (call $triple (call $neg (local.get 0))))
  (func (export "via_ref") (param i32) (result i32)
    (table.set $tab (i32.const 4) (ref.func $neg))
    (call_indirect $tab (type $un) (local.get 0) (i32.const 4)))
  (func (export "via_global") (param i32) (result i32)
    (table.set $tab (i32.const 5) (global.get $fref))
    (call_indirect $tab (type $un) (local.get 0) (i32.const 5)))
  (func (export "via_passive") (param i32) (result i32)
    (table.init $tab $pe (i32.const 6) (i32.const 0) (i32.const 1))
    (call_indirect $tab (type $un) (local.get 0) (i32.const 6)))
  (func (export "state") (result i32) (global.get $state))
  (export "triple" (func $triple))
  (export "log_again" (func $log))
""" + tail_funcs + ")\n"


EDIT_CALLS = [("apply", (0, 5, 3), 8), ("apply", (1, 5, 3), 2), ("apply", (2, 5, 3), 15),
              ("calls", (5,), -15), ("via_ref", (5,), -5), ("via_global", (5,), 15),
              ("via_passive", (5,), 15), ("state", (), 42), ("triple", (7,), 21),
              ("log_again", (9,), None)]
TAIL_CALLS = [("tail", (10,), 20)]


def calls_for(backend: str) -> list[tuple[str, tuple[int, ...], int]]:
    return EDIT_CALLS + (TAIL_CALLS if backend == "wasmtime" else [])


def edit_bytes(backend: str) -> bytes:
    return bytes(wasmtime.wat2wasm(edit_wat(tail=backend == "wasmtime")))


def run_calls(data: bytes, backend: str, calls: list[tuple[str, tuple[int, ...], int]],
              env: Env | None = None) -> list[Any]:
    inst = funk.instantiate(data, [env or Env()], backend=backend)
    return [getattr(inst.exports, name)(*args) for name, args, _ in calls]


def function_names(m: Module) -> dict[int, str]:
    assert m.names is not None and m.names.function_names is not None
    return dict(m.names.function_names.names)


def indirect_names(m: Module, sub_id: int) -> dict[int, dict[int, str]]:
    assert m.names is not None
    sub = m.names.get(sub_id)
    assert sub is not None
    return {index: dict(inner) for index, inner in sub.names}  # type: ignore[union-attr]


def global_names(m: Module) -> dict[int, str]:
    assert m.names is not None and m.names.global_names is not None
    return dict(m.names.global_names.names)


def shifted(mapping: dict[int, Any], threshold: int, by: int = 1) -> dict[int, Any]:
    return {(i + by if i >= threshold else i): v for i, v in mapping.items()}


def section_ids(data: bytes) -> list[int]:
    """The section ids of a binary module, in order (an independent mini-parser)."""
    assert data[:8] == b"\0asm\x01\0\0\0"
    pos, ids = 8, []
    while pos < len(data):
        ids.append(data[pos])
        size, pos = read_uleb(data, pos + 1)
        pos += size
    assert pos == len(data)
    return ids


SPEC_ORDER = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11]


def assert_spec_order(data: bytes) -> list[int]:
    known = [sid for sid in section_ids(data) if sid != 0]
    assert known == sorted(known, key=SPEC_ORDER.index)
    assert len(set(known)) == len(known)
    return known


# ---------------------------------------------------------------------------
# Raw engine access, for modules importing globals (funk links functions only).


class RawInstance:
    """An instance on either engine with imports given by name: callables or global values."""

    def __init__(self, backend: str, data: bytes, imports: dict[str, Any]) -> None:
        self.backend = backend
        if backend == "wasmtime":
            self.store = wasmtime.Store()
            module = wasmtime.Module(self.store.engine, data)
            externs: list[Any] = []
            for imp in module.imports:
                value = imports[imp.name]
                if isinstance(imp.type, wasmtime.GlobalType):
                    externs.append(wasmtime.Global(self.store, imp.type, value))
                else:
                    externs.append(wasmtime.Func(self.store, imp.type, value))
            self.exports = wasmtime.Instance(self.store, module, externs).exports(self.store)
        else:
            store = wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))
            module = wasmer.Module(store, data)
            namespace: dict[str, Any] = {}
            for imp in module.imports:
                value = imports[imp.name]
                if isinstance(imp.type, wasmer.GlobalType):
                    assert imp.type.type == wasmer.Type.I32
                    namespace[imp.name] = wasmer.Global(store, wasmer.Value.i32(value),
                                                        mutable=imp.type.mutable)
                else:
                    namespace[imp.name] = wasmer.Function(store, value, imp.type)
            import_object = wasmer.ImportObject()
            import_object.register("env", namespace)
            # wasmer-python reads freed memory if the imported globals die before the
            # instance: keep every object alive as long as the instance is.
            self.keep = (store, module, namespace, import_object)
            self.exports = wasmer.Instance(module, import_object).exports

    def call(self, name: str, *args: Any) -> Any:
        if self.backend == "wasmtime":
            return self.exports[name](self.store, *args)
        return getattr(self.exports, name)(*args)

    def global_value(self, name: str) -> Any:
        if self.backend == "wasmtime":
            return self.exports[name].value(self.store)
        return getattr(self.exports, name).value


# ---------------------------------------------------------------------------
# add_function_import


def test_add_function_import_shifts_every_function_reference(backend: str) -> None:
    data = edit_bytes(backend)
    m = Module.parse(data)
    names_before = function_names(m)
    locals_before = indirect_names(m, 2)
    labels_before = indirect_names(m, 3)
    exports_before = {e.name: (e.kind, e.index) for e in m.exports}
    elements_before = [list(seg.items) for seg in m.elements]
    assert m.num_imported(KIND_FUNC) == 1
    total = m.total_functions
    ntypes = len(m.types)

    un = m.add_type(FuncType((I32,), (I32,)))
    assert un == 1 and len(m.types) == ntypes       # $un already exists: no new type
    hook = m.add_function_import("env", "hook", un)
    assert hook == 1
    assert m.total_functions == total + 1
    log_type = m.imports[0].desc
    assert [(i.module, i.name, i.kind, i.desc) for i in m.imports] == [
        ("env", "log", 0, log_type), ("env", "hook", 0, un)]
    assert m.types[log_type] == FuncType((I32,), ())
    assert m.function_type(hook) == FuncType((I32,), (I32,))

    out = m.encode()
    again = Module.parse(out)
    assert again == m
    assert Module.parse(m.encode(canonical=True)) == again
    # Defined functions moved up by one; the old import stays at 0.
    names_after = function_names(again)
    assert {i: n for i, n in names_after.items() if i != hook} == shifted(names_before, 1)
    assert indirect_names(again, 2) == shifted(locals_before, 1)
    assert indirect_names(again, 3) == shifted(labels_before, 1)
    assert labels_before and locals_before
    for e in again.exports:
        kind, index = exports_before[e.name]
        assert e.kind == kind
        # Defined functions move; the re-exported import (index 0) and non-functions do not.
        assert e.index == (index + 1 if kind == KIND_FUNC and index >= 1 else index)
    assert exports_before["log_again"] == (KIND_FUNC, 0)
    by_name = {n: i for i, n in names_after.items()}
    assert again.start == by_name["init"]
    assert again.elements[0].items == [by_name["add"], by_name["sub"]]
    assert again.elements[0].items == [i + 1 for i in elements_before[0]]  # type: ignore[operator]
    assert again.elements[1].items[0] == [Instr(opcodes.REF_FUNC, by_name["mul"]),
                                          Instr(opcodes.END)]
    assert again.elements[2].items == [by_name["neg"]]
    assert again.elements[3].items == [[Instr(opcodes.REF_FUNC, by_name["triple"]),
                                        Instr(opcodes.END)]]
    assert again.elements[4].items == [0]                  # the import keeps its index
    assert again.globals[1].init[0] == Instr(opcodes.REF_FUNC, by_name["triple"])
    calls = again.code[by_name["calls"] - 2].code
    assert Instr(opcodes.CALL, by_name["neg"]) in calls
    assert Instr(opcodes.CALL, by_name["triple"]) in calls
    init = again.code[by_name["init"] - 2].code
    assert Instr(opcodes.CALL, 0) in init            # the call to the import did not move
    if backend == "wasmtime":
        countdown = again.code[by_name["countdown"] - 2].code
        assert Instr(opcodes.RETURN_CALL, by_name["countdown"]) in countdown

    env_before, env_after = Env(), Env()
    before = run_calls(data, backend, calls_for(backend), env_before)
    after = run_calls(out, backend, calls_for(backend), env_after)
    assert before == after == [want for _, _, want in calls_for(backend)]
    # The start function ran once, and it is still $init (it logs 1); "log_again" is still
    # the imported log.
    assert env_before.logged == env_after.logged == [1, 9]
    assert env_after.hooked == []


def test_new_function_import_is_called(backend: str) -> None:
    m = Module.parse(edit_bytes(backend))
    hook = m.add_function_import("env", "hook", m.add_type(FuncType((I32,), (I32,))))
    calls = next(e.index for e in m.exports if e.name == "calls")
    body = m.code[calls - m.num_imported(KIND_FUNC)]
    body.code[0:0] = [Instr(opcodes.I32_CONST, 7), Instr(opcodes.CALL, hook),
                      Instr(opcodes.DROP)]
    m.touch(10)
    env = Env()
    inst = funk.instantiate(m.encode(), [env], backend=backend)
    assert inst.exports.calls(5) == -15
    assert inst.exports.calls(-2) == 6
    assert env.hooked == [7, 7]


def test_trap_backtrace_names_the_shifted_functions(backend: str) -> None:
    m = Module.parse(edit_bytes(backend))
    m.add_function_import("env", "hook", m.add_type(FuncType((I32,), (I32,))))
    out = m.encode()
    inst = funk.instantiate(out, [Env()], backend=backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.explode()
    frames = info.value.frames
    assert frames[0].startswith("boom @ ") and frames[1].startswith("explode @ "), frames
    if backend == "wasmtime":
        # wasmtime's own message names the frames from the name section.
        store = wasmtime.Store()
        log = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()], []),
                            lambda x: None)
        hook = wasmtime.Func(store, wasmtime.FuncType([wasmtime.ValType.i32()],
                                                      [wasmtime.ValType.i32()]), lambda x: x)
        raw = wasmtime.Instance(store, wasmtime.Module(store.engine, out), [log, hook])
        with pytest.raises(wasmtime.Trap) as trap:
            raw.exports(store)["explode"](store)
        names = re.findall(r"^\s*\d+:\s+0x[0-9a-f]+ - .*!(\S+)$", str(trap.value), re.M)
        assert names == ["boom", "explode"], str(trap.value)


def test_add_function_import_twice(backend: str) -> None:
    data = edit_bytes(backend)
    m = Module.parse(data)
    names_before = function_names(m)
    ntypes = len(m.types)
    first = m.add_function_import("env", "hook", m.add_type(FuncType((I32,), (I32,))))
    wide_type = m.add_type(FuncType((I64,), ()))
    assert wide_type == ntypes and len(m.types) == ntypes + 1   # a new signature is appended
    second = m.add_function_import("env", "hook64", wide_type)
    assert (first, second) == (1, 2)
    assert [i.name for i in m.imports] == ["log", "hook", "hook64"]
    # Call the second one from "calls": i64.const -5, call hook64.
    calls = next(e.index for e in m.exports if e.name == "calls")
    assert names_before[calls - 2] == "calls"
    m.code[calls - 3].code[0:0] = [Instr(opcodes.I64_CONST, -(2**40)), Instr(opcodes.CALL, second)]
    out = m.encode()
    again = Module.parse(out)
    names_after = function_names(again)
    assert {i: n for i, n in names_after.items() if i not in (1, 2)} == shifted(names_before, 1, 2)
    env = Env()
    results = run_calls(out, backend, calls_for(backend), env)
    assert results == [want for _, _, want in calls_for(backend)]
    assert env.wide == [-(2**40)] and env.logged == [1, 9]


def test_imports_go_after_the_last_import_of_their_kind() -> None:
    """Imports of every kind, function imports first and last: where do new ones go?"""
    data = fixture_bytes("globals_imports")
    m = Module.parse(data)
    kinds_before = [(i.name, i.kind) for i in m.imports]
    assert kinds_before == [("f", 0), ("tab", 1), ("mem", 2), ("g", 3), ("gm", 3), ("gf", 3),
                            ("h", 0)]
    fnames, gnames = function_names(m), global_names(m)
    fn = m.add_function_import("env", "new_f", m.add_type(FuncType((), ())))
    assert fn == 2
    gl = m.add_global_import("env", "new_g", GlobalType(I64, True))
    assert gl == 3
    assert [i.name for i in m.imports] == ["f", "tab", "mem", "g", "gm", "gf", "new_g", "h",
                                           "new_f"]
    out = m.encode()
    for accepts in ACCEPTS.values():
        accepts(out)
    again = Module.parse(out)
    assert {i: n for i, n in function_names(again).items() if i != fn} == shifted(fnames, 2)
    assert {i: n for i, n in global_names(again).items() if i != gl} == shifted(gnames, 3)
    assert again.start == m.start == 3                    # $start moved from 2 to 3
    assert {(e.name, e.kind, e.index) for e in again.exports} == {
        ("g_i32", 3, 4), ("table", 1, 0), ("memory", 2, 0), ("start", 0, 3), ("use", 0, 4)}
    assert again.globals[5].init[0] == Instr(opcodes.REF_FUNC, 3)    # ref.func $start
    assert again.globals[8].init[0] == Instr(opcodes.GLOBAL_GET, 0)  # reads import $imp_g
    start_body = again.code[0].code
    assert start_body[0] == Instr(opcodes.GLOBAL_GET, 5)             # $gi64: 4 -> 5
    assert Instr(opcodes.GLOBAL_SET, 5) in start_body
    use_body = again.code[1].code
    assert Instr(opcodes.CALL, 1) in use_body and Instr(opcodes.CALL, 0) in use_body
    assert Instr(opcodes.GLOBAL_GET, 12) in use_body                 # $gget: 11 -> 12


NO_IMPORTS = r"""
(module
  (type $un (func (param i32) (result i32)))
  (table 2 funcref)
  (elem (i32.const 0) $double $fib)
  (global $started (mut i32) (i32.const 0))
  (func $double (type $un) (i32.add (local.get 0) (local.get 0)))
  (func $fib (type $un)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2)) (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $boot (global.set $started (i32.add (global.get $started) (i32.const 1))))
  (start $boot)
  (func (export "fib") (param i32) (result i32) (call $fib (local.get 0)))
  (func (export "indirect") (param i32 i32) (result i32)
    (call_indirect (type $un) (local.get 1) (local.get 0)))
  (func (export "started") (result i32) (global.get $started))
)
"""


def test_add_function_import_creates_the_import_section(backend: str) -> None:
    data = bytes(wasmtime.wat2wasm(NO_IMPORTS))
    assert 2 not in section_ids(data)
    m = Module.parse(data)
    tick = m.add_function_import("env", "tick", m.add_type(FuncType((), ())))
    assert tick == 0
    # Make every defined function call the import first (a preemption-point injection).
    for body in m.code:
        body.code[0:0] = [Instr(opcodes.CALL, tick)]
    m.touch(10)
    out = m.encode()
    known = assert_spec_order(out)
    assert known[:3] == [1, 2, 3]
    env = Env()
    inst = funk.instantiate(out, [env], backend=backend)
    assert env.ticks == 1                                   # the start function, once
    assert inst.exports.started() == 1
    assert inst.exports.fib(10) == 55
    # started: 1; fib(10): one call to the export, 177 to $fib.
    assert env.ticks == 1 + 1 + 1 + 177
    assert inst.exports.indirect(0, 21) == 42 and inst.exports.indirect(1, 7) == 13
    assert Module.parse(out).elements[0].items == [1, 2]


def test_direct_edits_with_touch(backend: str) -> None:
    m = Module.parse(bytes(wasmtime.wat2wasm(NO_IMPORTS)))
    fib = next(e for e in m.exports if e.name == "fib")
    fib.name = "fibonacci"
    m.touch(7)
    m.globals[0] = Global(m.globals[0].type, [Instr(opcodes.I32_CONST, 100), Instr(opcodes.END)])
    m.touch(6)
    # The code section is always encoded from the instructions: no touch needed.
    double = m.code[0].code
    assert double[-2] == Instr(opcodes.I32_ADD)
    double[-2] = Instr(opcodes.I32_MUL)
    inst = funk.instantiate(m.encode(), [], backend=backend)
    assert "fib" not in inst.exports and inst.exports.fibonacci(12) == 144
    assert inst.exports.started() == 101
    assert inst.exports.indirect(0, 9) == 81                   # double now squares


# ---------------------------------------------------------------------------
# add_global_import


def global_wat(extended: bool) -> str:
    """Globals read in code, in constant expressions and exported.

    ``extended`` adds data / element offsets and a global initialiser that read
    *defined* globals (wasm 3.0 constant expressions): the references that
    really shift when a global import is added, since imported globals keep
    their indices.
    """
    extra_globals = r"""
  (global $doff i32 (i32.const 100))
  (global $eoff i32 (i32.const 2))
  (global $again i32 (global.get $doff))
  (data (global.get $doff) "hello")
  (elem (global.get $eoff) $seven)
  (func (export "again") (result i32) (global.get $again))
""" if extended else ""
    return r"""
(module
  (import "env" "base" (global $base i32))
  (memory (export "memory") 1)
  (table 4 funcref)
  (global $counter (mut i32) (i32.const 5))
  (global $k i64 (i64.const 1234567890123))
  (global $copy i32 (global.get $base))
  (data (global.get $base) "base!")
  (elem (i32.const 0) $seven)
  (func $seven (result i32) (i32.const 7))
  (func (export "bump") (result i32)
    (global.set $counter (i32.add (global.get $counter) (i32.const 1)))
    (global.get $counter))
  (func (export "read") (result i64)
    (i64.add (global.get $k) (i64.extend_i32_s (i32.add (global.get $copy) (global.get $base)))))
  (func (export "load") (param i32) (result i32) (i32.load8_u (local.get 0)))
  (func (export "slot") (param i32) (result i32) (call_indirect (result i32) (local.get 0)))
  (export "counter" (global $counter))
  (export "k" (global $k))
""" + extra_globals + ")\n"


def _wasmtime_takes_defined_globals_in_consts() -> bool:
    """Whether this wasmtime accepts ``global.get`` of a defined global in a const expr."""
    probe = "(module (global $g i32 (i32.const 1)) (global i32 (global.get $g)))"
    try:
        wasmtime.Module(wasmtime.Engine(), wasmtime.wat2wasm(probe))
    except wasmtime.WasmtimeError:
        return False
    return True


def test_add_global_import_shifts_every_global_reference(backend: str) -> None:
    # wasmer 1.1 and wasmtime before 48 refuse defined globals in const exprs
    extended = backend == "wasmtime" and _wasmtime_takes_defined_globals_in_consts()
    data = bytes(wasmtime.wat2wasm(global_wat(extended)))
    m = Module.parse(data)
    gnames_before = global_names(m)
    assert m.num_imported(KIND_GLOBAL) == 1
    total = m.total_globals
    extra = m.add_global_import("env", "extra", GlobalType(I32, False))
    assert extra == 1 and m.total_globals == total + 1
    assert [(i.name, i.kind) for i in m.imports] == [("base", 3), ("extra", 3)]
    reader = m.add_function(m.add_type(FuncType((), (I32,))), [],
                            [Instr(opcodes.GLOBAL_GET, extra), Instr(opcodes.END)])
    m.add_export("extra", KIND_FUNC, reader)
    out = m.encode()
    again = Module.parse(out)

    gnames = global_names(again)
    assert {i: n for i, n in gnames.items() if i != extra} == shifted(gnames_before, 1)
    by_name = {n: i for i, n in gnames.items()}
    before = {n: i for i, n in gnames_before.items()}
    assert by_name["base"] == before["base"] == 0
    assert by_name["counter"] == before["counter"] + 1 == 2
    exports = {e.name: (e.kind, e.index) for e in again.exports}
    assert exports["counter"] == (KIND_GLOBAL, by_name["counter"])
    assert exports["k"] == (KIND_GLOBAL, by_name["k"])
    assert again.globals[2].init[0] == Instr(opcodes.GLOBAL_GET, 0)   # $copy reads the import
    assert again.data[0].offset == [Instr(opcodes.GLOBAL_GET, 0), Instr(opcodes.END)]
    if extended:
        assert again.globals[5].init[0] == Instr(opcodes.GLOBAL_GET, by_name["doff"])
        assert again.data[1].offset == [Instr(opcodes.GLOBAL_GET, by_name["doff"]),
                                        Instr(opcodes.END)]
        assert again.elements[1].offset == [Instr(opcodes.GLOBAL_GET, by_name["eoff"]),
                                            Instr(opcodes.END)]

    results = []
    for blob, imports in ((data, {"base": 16}), (out, {"base": 16, "extra": 99})):
        inst = RawInstance(backend, blob, imports)
        row = [inst.call("bump"), inst.call("bump"), inst.call("read"),
               inst.call("load", 16), inst.call("load", 20), inst.call("slot", 0),
               inst.global_value("counter"), inst.global_value("k")]
        if extended:
            row += [inst.call("load", 100), inst.call("slot", 2), inst.call("again")]
        results.append(row)
        if blob is out:
            assert inst.call("extra") == 99
    expected = [6, 7, 1234567890123 + 32, ord("b"), ord("!"), 7, 7, 1234567890123]
    if extended:
        expected += [ord("h"), 7, 100]
    assert results[0] == results[1] == expected


# ---------------------------------------------------------------------------
# add_global / add_function / add_export / add_type


NO_GLOBALS = r"""
(module
  (memory 1)
  (data (i32.const 0) "x")
  (func $one (export "one") (result i32) (i32.const 1))
)
"""


def test_added_global_function_and_export_are_callable(backend: str) -> None:
    data = bytes(wasmtime.wat2wasm(NO_GLOBALS))
    assert 6 not in section_ids(data)
    m = Module.parse(data)
    g = m.add_global(GlobalType(I32, True), [Instr(opcodes.I32_CONST, 41), Instr(opcodes.END)])
    assert g == 0 and m.total_globals == 1
    f64 = m.add_global(GlobalType(F64, False), [
        Instr(opcodes.F64_CONST, struct.pack("<d", 2.5)), Instr(opcodes.END)])
    assert f64 == 1
    getter = m.add_type(FuncType((), (I32,)))
    assert getter == 0                                  # "one" already has () -> i32
    answer = m.add_function(getter, [(1, I32)], [
        Instr(opcodes.GLOBAL_GET, g), Instr(opcodes.I32_CONST, 1), Instr(opcodes.I32_ADD),
        Instr(opcodes.LOCAL_TEE, 0), Instr(opcodes.GLOBAL_SET, g), Instr(opcodes.LOCAL_GET, 0),
        Instr(opcodes.END)])
    assert answer == 1 and m.total_functions == 2
    half = m.add_function(m.add_type(FuncType((), (F64,))), [],
                          [Instr(opcodes.GLOBAL_GET, f64), Instr(opcodes.END)])
    m.add_export("answer", KIND_FUNC, answer)
    m.add_export("half", KIND_FUNC, half)
    m.add_export("g", KIND_GLOBAL, g)
    out = m.encode()
    # The new global section sits between memory (5) and export (7).
    assert assert_spec_order(out) == [1, 3, 5, 6, 7, 10, 11]
    assert section_ids(out)[-1] == 0                    # the name section stays last
    inst = funk.instantiate(out, [], backend=backend)
    assert inst.exports.answer() == 42
    assert inst.exports.answer() == 43
    assert inst.exports.half() == 2.5
    assert inst.exports.one() == 1
    again = Module.parse(out)
    assert [(e.name, e.kind, e.index) for e in again.exports] == [
        ("one", 0, 0), ("answer", 0, 1), ("half", 0, 2), ("g", 3, 0)]
    assert function_names(again) == {0: "one"}


def test_building_a_module_from_nothing(backend: str) -> None:
    m = Module.parse(b"\0asm\x01\0\0\0")
    assert m.encode() == b"\0asm\x01\0\0\0"
    ty = m.add_type(FuncType((I32, I32), (I32,)))
    assert ty == 0 and m.add_type(FuncType((I32, I32), (I32,))) == 0
    g = m.add_global(GlobalType(I32, False), [Instr(opcodes.I32_CONST, 100),
                                              Instr(opcodes.END)])
    f = m.add_function(ty, [], [Instr(opcodes.LOCAL_GET, 0), Instr(opcodes.LOCAL_GET, 1),
                                Instr(opcodes.I32_MUL), Instr(opcodes.GLOBAL_GET, g),
                                Instr(opcodes.I32_ADD), Instr(opcodes.END)])
    m.add_export("muladd", KIND_FUNC, f)
    out = m.encode()
    assert section_ids(out) == [1, 3, 6, 7, 10]
    assert funk.instantiate(out, [], backend=backend).exports.muladd(6, 7) == 142


def test_add_type_dedupes() -> None:
    m = Module.parse(bytes(wasmtime.wat2wasm(NO_IMPORTS)))
    n = len(m.types)
    assert m.add_type(FuncType((I32,), (I32,))) == 0
    assert m.add_type(FuncType([I32], [I32])) == 0       # lists are accepted and equal
    new = m.add_type(FuncType((I64, F64), ()))
    assert new == n and len(m.types) == n + 1
    assert m.add_type(FuncType((I64, F64), ())) == new
    assert m.add_type(FuncType((F64, I64), ())) == n + 1  # order matters
    assert m.add_type(FuncType((), (I64, F64))) == n + 2  # params vs results matter
    again = Module.parse(m.encode())
    assert again.types[n:] == [FuncType((I64, F64), ()), FuncType((F64, I64), ()),
                               FuncType((), (I64, F64))]


def test_add_export_refuses_a_duplicate_name() -> None:
    m = Module.parse(edit_bytes("wasmer"))
    exports = [(e.name, e.kind, e.index) for e in m.exports]
    with pytest.raises(ValueError, match="triple"):
        m.add_export("triple", KIND_FUNC, 3)
    with pytest.raises(ValueError):
        m.add_export("memory", KIND_FUNC, 2)             # same name, other kind: still taken
    assert [(e.name, e.kind, e.index) for e in m.exports] == exports
    m.add_export("triple2", KIND_FUNC, 5)
    with pytest.raises(ValueError):
        m.add_export("triple2", KIND_FUNC, 5)
    assert len(m.exports) == len(exports) + 1


# ---------------------------------------------------------------------------
# Injection


INJECT = r"""
(module
  (func $fib (export "fib") (param i32) (result i32)
    (if (result i32) (i32.lt_u (local.get 0) (i32.const 2)) (then (local.get 0))
      (else (i32.add (call $fib (i32.sub (local.get 0) (i32.const 1)))
                     (call $fib (i32.sub (local.get 0) (i32.const 2)))))))
  (func $sum (export "sum") (param $n i32) (result i64) (local $acc i64)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (local.set $acc (i64.add (local.get $acc) (i64.extend_i32_u (local.get $n))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (local.get $acc))
)
"""


def test_injected_counter_counts_function_entries(backend: str) -> None:
    data = bytes(wasmtime.wat2wasm(INJECT))
    m = Module.parse(data)
    counter = m.add_global(GlobalType(I32, True), [Instr(opcodes.I32_CONST, 0),
                                                   Instr(opcodes.END)])
    prologue = [Instr(opcodes.GLOBAL_GET, counter), Instr(opcodes.I32_CONST, 1),
                Instr(opcodes.I32_ADD), Instr(opcodes.GLOBAL_SET, counter)]
    for body in m.code:
        body.code[0:0] = prologue
    m.touch(10)
    getter = m.add_function(m.add_type(FuncType((), (I32,))), [],
                            [Instr(opcodes.GLOBAL_GET, counter), Instr(opcodes.END)])
    m.add_export("entries", KIND_FUNC, getter)
    out = m.encode()
    again = Module.parse(out)
    assert all(body.code[:4] == prologue for body in again.code[:2])
    assert again.code[0].code[4:] == Module.parse(data).code[0].code

    original = funk.instantiate(data, [], backend=backend)
    inst = funk.instantiate(out, [], backend=backend)
    assert inst.exports.entries() == 0
    assert inst.exports.fib(10) == original.exports.fib(10) == 55
    assert inst.exports.entries() == 177                 # 2 * fib(11) - 1 calls
    assert inst.exports.sum(1000) == original.exports.sum(1000) == 500500
    assert inst.exports.entries() == 178
    assert inst.exports.fib(1) == 1
    assert inst.exports.entries() == 179


@functools.cache
def graphviz_with_counter() -> bytes:
    """graphviz.wasm with a counter bumped on every function entry, canonically re-encoded."""
    m = Module.parse(graphviz_wasm_path().read_bytes())
    counter = m.add_global(GlobalType(I64, True), [Instr(opcodes.I64_CONST, 0),
                                                   Instr(opcodes.END)])
    prologue = [Instr(opcodes.GLOBAL_GET, counter), Instr(opcodes.I64_CONST, 1),
                Instr(opcodes.I64_ADD), Instr(opcodes.GLOBAL_SET, counter)]
    for body in m.code:
        body.code[0:0] = prologue
    getter = m.add_function(m.add_type(FuncType((), (I64,))), [],
                            [Instr(opcodes.GLOBAL_GET, counter), Instr(opcodes.END)])
    m.add_export("entries", KIND_FUNC, getter)
    return m.encode(canonical=True)


GRAPH = "digraph { a -> b; b -> c; c -> a; c -> d [label=\"x\"] }"


@functools.cache
def original_graphviz_svg() -> bytes:
    # funk makes both engines render the same bytes, so one reference render serves both.
    renderer = GraphvizRenderer("wasmtime")
    try:
        return renderer.render(GRAPH)
    finally:
        renderer.close()


def test_graphviz_with_injected_counter_renders_the_same(backend: str, tmp_path: Path) -> None:
    """A real 1 MB program, instrumented everywhere, computes exactly what it did."""
    want = original_graphviz_svg()
    assert want.startswith(b"<?xml") and b"</svg>" in want
    edited = tmp_path / "graphviz_counted.wasm"
    edited.write_bytes(graphviz_with_counter())
    counted = GraphvizRenderer(backend, wasm=edited)
    try:
        assert counted.render(GRAPH) == want
        entries = counted._instance.exports["entries"]()
        assert entries > 1000
        assert counted.render(GRAPH) == want
        assert counted._instance.exports["entries"]() > entries
    finally:
        counted.close()
