"""``funk.plugins`` without Lunatic: plugins written in WAT, run with ``apply_plugins``, both engines.

Every plugin here is a WAT module importing the three ``lunatic::plugin``
functions.  What a plugin *saw* (return codes, the u64 written at ``out``) is
made observable without any back door: the plugin logs the values in its own
memory, and at the end of its hook ``$report`` adds to the target module one
function per value, ``() -> i64`` returning it, exported as ``<tag>NN``.  The
test instantiates the result and reads them (``seen``).  So every reported
value also went through ``add_function_type``/``add_function``/
``add_function_export`` and a validation of the result.

Covered: the ABI (all value type bytes, appended types, locals records, the
function index counting imports, exports of added / defined / imported
functions, exact return codes and out values), chains of plugins, the
encoding of the result (custom and name sections, data count, empty module,
start function, tables and elements, ``memory.init`` without a data count
section), every documented failure with its message, and that the same
``Plugin`` objects work again after any failure.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

import funk
from funk import CompileError, host_functions
from funk.plugins import (
    HOST_CALL_FUEL,
    SLICE,
    VALUE_TYPES,
    ModuleEditor,
    Plugin,
    PluginError,
    apply_plugins,
)
from funk.types import i32
from funk.wasm_input import to_wasm_bytes
from tests.conftest import selected_backends
from tests.test_wasm_rewriter_roundtrip import read_uleb, uleb
from wasm_rewriter import FuncType, Module

# -- wasm spelling helpers ----------------------------------------------------------------------

I32, I64, F32, F64, V128, FUNCREF, EXTERNREF = 0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F
ALL_TYPES = bytes((I32, I64, F32, F64, V128, FUNCREF, EXTERNREF))

END = b"\x0b"


def sleb(n: int) -> bytes:
    """``n`` as signed LEB128."""
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if (n == 0 and not byte & 0x40) or (n == -1 and byte & 0x40):
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def i32_const(n: int) -> bytes:
    return b"\x41" + sleb(n)


def local_get(i: int) -> bytes:
    return b"\x20" + uleb(i)


def local_set(i: int) -> bytes:
    return b"\x21" + uleb(i)


def global_get(i: int) -> bytes:
    return b"\x23" + uleb(i)


def call(f: int) -> bytes:
    return b"\x10" + uleb(f)


I32_ADD, I32_SUB, I32_MUL = b"\x6a", b"\x6b", b"\x6c"
UNREACHABLE = b"\x00"


def local_record(count: int, kind: int) -> bytes:
    """One 5-byte ``add_function`` locals record: u32 LE count, then the type byte."""
    return count.to_bytes(4, "little") + bytes((kind,))


def wat_str(blob: bytes) -> str:
    """``blob`` as the body of a WAT string (every byte escaped)."""
    return "".join(f"\\{b:02x}" for b in blob)


# -- the plugin scaffold ------------------------------------------------------------------------

OUT = 0x100
"""Where ``$type``/``$func`` have the out value written; 0x5A bytes around it are checked."""
SENTINEL = 0x5A5A5A5A5A5A5A5A
LOG = 0x200
"""The values ``$see`` logged (i64 each, 64 at most)."""
NAME = 0x400
"""The report export names: the tag, then two decimal digits."""
REPORT_BODY = 0x480
REPORT_OUT = 0x4F8
DATA = 0x1000
"""Where ``Blobs`` places the test's bytes."""

SCAFFOLD = """
  (import "lunatic::plugin" "add_function_type"
    (func $lp_type (param i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::plugin" "add_function"
    (func $lp_func (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::plugin" "add_function_export" (func $lp_export (param i32 i32 i32)))
  (global $seen (mut i32) (i32.const 0))
  (data (i32.const 0x4f0) "\\7e")

  ;; log a value for the test
  (func $see (param $v i64)
    (if (i32.ge_u (global.get $seen) (i32.const 64)) (then unreachable))
    (i64.store (i32.add (i32.const 0x200) (i32.shl (global.get $seen) (i32.const 3)))
               (local.get $v))
    (global.set $seen (i32.add (global.get $seen) (i32.const 1))))

  (func $arm  ;; 0x5A in the out slot and the 8 bytes on each side of it
    (i64.store (i32.const 0xf8) (i64.const 0x5A5A5A5A5A5A5A5A))
    (i64.store (i32.const 0x100) (i64.const 0x5A5A5A5A5A5A5A5A))
    (i64.store (i32.const 0x108) (i64.const 0x5A5A5A5A5A5A5A5A)))
  (func $check_guards  ;; out values are 8 bytes: nothing around the slot may change
    (if (i64.ne (i64.load (i32.const 0xf8)) (i64.const 0x5A5A5A5A5A5A5A5A)) (then unreachable))
    (if (i64.ne (i64.load (i32.const 0x108)) (i64.const 0x5A5A5A5A5A5A5A5A)) (then unreachable)))

  ;; the three imports with out at 0x100: each logs its return code, then the u64 at out
  (func $type (param $p i32) (param $pl i32) (param $r i32) (param $rl i32) (result i64)
    (call $arm)
    (call $see (i64.extend_i32_u
      (call $lp_type (local.get $p) (local.get $pl) (local.get $r) (local.get $rl)
                     (i32.const 0x100))))
    (call $check_guards)
    (call $see (i64.load (i32.const 0x100)))
    (i64.load (i32.const 0x100)))
  (func $func (param $t i32) (param $l i32) (param $ll i32) (param $b i32) (param $bl i32)
              (result i64)
    (call $arm)
    (call $see (i64.extend_i32_u
      (call $lp_func (local.get $t) (local.get $l) (local.get $ll) (local.get $b) (local.get $bl)
                     (i32.const 0x100))))
    (call $check_guards)
    (call $see (i64.load (i32.const 0x100)))
    (i64.load (i32.const 0x100)))
  (func $export (param $n i32) (param $nl i32) (param $f i32)
    (call $lp_export (local.get $n) (local.get $nl) (local.get $f)))

  ;; signed LEB128 of $v at $p; the address after it
  (func $sleb (param $p i32) (param $v i64) (result i32)
    (local $byte i32)
    (loop $more
      (local.set $byte (i32.and (i32.wrap_i64 (local.get $v)) (i32.const 0x7f)))
      (local.set $v (i64.shr_s (local.get $v) (i64.const 7)))
      (if (i32.or
            (i32.and (i64.eqz (local.get $v))
                     (i32.eqz (i32.and (local.get $byte) (i32.const 0x40))))
            (i32.and (i64.eq (local.get $v) (i64.const -1))
                     (i32.ne (i32.and (local.get $byte) (i32.const 0x40)) (i32.const 0))))
        (then (i32.store8 (local.get $p) (local.get $byte))
              (return (i32.add (local.get $p) (i32.const 1)))))
      (i32.store8 (local.get $p) (i32.or (local.get $byte) (i32.const 0x80)))
      (local.set $p (i32.add (local.get $p) (i32.const 1)))
      (br $more))
    unreachable)

  ;; one exported () -> i64 function per logged value (nothing if none was logged)
  (func $report
    (local $i i32) (local $t i32) (local $end i32)
    (if (i32.eqz (global.get $seen)) (then (return)))
    (if (call $lp_type (i32.const 0) (i32.const 0) (i32.const 0x4f0) (i32.const 1)
                       (i32.const 0x4f8))
      (then unreachable))
    (local.set $t (i32.wrap_i64 (i64.load (i32.const 0x4f8))))
    (loop $next
      (i32.store8 (i32.const 0x480) (i32.const 0x42))  ;; i64.const
      (local.set $end (call $sleb (i32.const 0x481)
        (i64.load (i32.add (i32.const 0x200) (i32.shl (local.get $i) (i32.const 3))))))
      (i32.store8 (local.get $end) (i32.const 0x0b))  ;; end
      (if (call $lp_func (local.get $t) (i32.const 0) (i32.const 0) (i32.const 0x480)
                         (i32.sub (i32.add (local.get $end) (i32.const 1)) (i32.const 0x480))
                         (i32.const 0x4f8))
        (then unreachable))
      (i32.store8 (i32.add (i32.const 0x400) (global.get $tag_len))
                  (i32.add (i32.const 48) (i32.div_u (local.get $i) (i32.const 10))))
      (i32.store8 (i32.add (i32.const 0x401) (global.get $tag_len))
                  (i32.add (i32.const 48) (i32.rem_u (local.get $i) (i32.const 10))))
      (call $lp_export (i32.const 0x400) (i32.add (global.get $tag_len) (i32.const 2))
                       (i32.wrap_i64 (i64.load (i32.const 0x4f8))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (global.get $seen)))))
"""


class Blobs:
    """The test's bytes placed in the plugin's memory: ``blobs(data)`` is ``(ptr) (len)``."""

    def __init__(self) -> None:
        self.placed: list[tuple[int, bytes]] = []
        self.next = DATA

    def at(self, data: bytes) -> int:
        """Place ``data``; its address."""
        addr = self.next
        self.placed.append((addr, data))
        self.next = (addr + len(data) + 16) & ~15
        return addr

    def __call__(self, data: bytes) -> str:
        return f"(i32.const {self.at(data)}) (i32.const {len(data)})"

    def segments(self) -> str:
        return "\n".join(f'  (data (i32.const {addr}) "{wat_str(data)}")'
                         for addr, data in self.placed)


def plugin_wat(hook: str | None, blobs: Blobs | None = None, *, tag: str = "seen",
               report: bool = True, initialize: str | None = None, extra: str = "",
               module_name: str = "", memory: bool = True) -> str:
    """A plugin: the scaffold, ``blobs``, and a hook running ``hook`` then ``$report``.

    ``hook=None`` gives no hook export at all; ``initialize`` is the body of an
    ``_initialize`` export; ``extra`` adds module fields.
    """
    fields = [SCAFFOLD, f"  (global $tag_len i32 (i32.const {len(tag)}))",
              f'  (data (i32.const {NAME}) "{tag}")']
    fields.append('  (memory (export "memory") 1)' if memory else "  (memory 1)")
    if blobs is not None:
        fields.append(blobs.segments())
    if initialize is not None:
        fields.append(f'  (func (export "_initialize") {initialize})')
    if hook is not None:
        fields.append(f'  (func (export "lunatic_create_module_hook") {hook}'
                      f'{" (call $report)" if report else ""})')
    fields.append(extra)
    name = f" ${module_name}" if module_name else ""
    return f"(module{name}\n" + "\n".join(fields) + "\n)"


@host_functions(namespace="env")
class Env:
    """Host functions for targets with imports."""

    def triple(self, x: i32) -> i32:
        """Three times ``x``."""
        return 3 * x

    def negate(self, x: i32) -> i32:
        """``-x``."""
        return -x


def instance_of(wasm: bytes, backend: str) -> funk.Instance:
    """``wasm`` instantiated on ``backend`` with the ``Env`` host (unused if not imported)."""
    return funk.instantiate(wasm, [Env()], backend=backend)


def seen(wasm: bytes, backend: str, tag: str = "seen") -> list[int]:
    """The values the plugin reported under ``tag``, in the order it logged them."""
    inst = instance_of(wasm, backend)
    try:
        values: list[int] = []
        while f"{tag}{len(values):02d}" in inst.exports:
            values.append(inst.exports[f"{tag}{len(values):02d}"]())
        return values
    finally:
        inst.close()


def compiles_everywhere(wasm: bytes) -> None:
    """Every engine of this test run accepts ``wasm`` (it is valid, whoever made it)."""
    for engine in selected_backends():
        funk.compile(wasm, engine)


def sections(wasm: bytes) -> list[tuple[int, str | None, bytes]]:
    """The module's sections in order: (id, custom section name or None, payload).

    Read here, independently of ``wasm_rewriter``, to check what it wrote.
    """
    assert wasm[:8] == b"\0asm\x01\0\0\0"
    out: list[tuple[int, str | None, bytes]] = []
    pos = 8
    while pos < len(wasm):
        sid = wasm[pos]
        size, start = read_uleb(wasm, pos + 1)
        payload = wasm[start:start + size]
        name = None
        if sid == 0:
            length, at = read_uleb(wasm, start)
            name = wasm[at:at + length].decode()
            payload = wasm[at + length:start + size]
        out.append((sid, name, payload))
        pos = start + size
    return out


def section_ids(wasm: bytes) -> list[int | str]:
    """Section ids in order, custom sections by their name."""
    return [name if sid == 0 and name is not None else sid for sid, name, _ in sections(wasm)]


def calls_agree(before: bytes, after: bytes, backend: str,
                calls: Sequence[tuple[str, Sequence[Any]]]) -> None:
    """The original exports compute the same on the plugged module as on the original."""
    old, new = instance_of(before, backend), instance_of(after, backend)
    try:
        for name, args in calls:
            assert new.exports[name](*args) == old.exports[name](*args), name
    finally:
        old.close()
        new.close()


def make(hook: str | None, backend: str, blobs: Blobs | None = None, *, name: str = "p",
         **kw: Any) -> Plugin:
    """A plugin from ``plugin_wat`` compiled for ``backend``."""
    return Plugin(plugin_wat(hook, blobs, **kw), backend, name=name)


# A target with two imported functions (so function indices of defined ones start at 2),
# two defined functions, two types and an export.
TARGET_WITH_IMPORTS = to_wasm_bytes("""(module
  (import "env" "triple" (func $triple (param i32) (result i32)))
  (import "env" "negate" (func $negate (param i32) (result i32)))
  (func $thousand (export "thousand") (result i32) (i32.const 1000))
  (func $nine (param i32) (result i32) (call $triple (i32.const 3)))
  (func (export "f") (param i32) (result i32) (call $negate (call $triple (local.get 0))))
)""")

SIMPLE_TARGET = to_wasm_bytes("""(module
  (func (export "one") (result i32) (i32.const 1))
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))""")


def types_target(n: int) -> bytes:
    """A module with exactly ``n`` (distinct) types and nothing else."""
    fields = " ".join(f"(type (func (param{' i32' * k})))" for k in range(n))
    return to_wasm_bytes(f"(module {fields})")


# -- 1. the ABI ---------------------------------------------------------------------------------


def test_add_function_type_accepts_every_value_type_and_always_appends(backend: str) -> None:
    """All 7 value type bytes as params and results; each call returns 0 and writes the next
    index as a full u64 (over a 0x5A sentinel, the bytes around it untouched: ``$type``
    checks); a duplicate type is appended again."""
    b = Blobs()
    hook = "".join(f"(drop (call $type {b(bytes((t,)))} {b(b'')}))" for t in ALL_TYPES)
    hook += "".join(f"(drop (call $type {b(b'')} {b(bytes((t,)))}))" for t in ALL_TYPES)
    hook += f"(drop (call $type {b(ALL_TYPES)} {b(ALL_TYPES)}))"
    hook += f"(drop (call $type {b(b'')} {b(b'')}))" * 2  # the same type twice
    target = types_target(3)
    out = apply_plugins(target, [make(hook, backend, b)], backend)
    values = seen(out, backend)
    assert values == [v for index in range(3, 3 + 17) for v in (0, index)]
    types = Module.parse(out).types
    expected = ([FuncType((t,), ()) for t in ALL_TYPES] + [FuncType((), (t,)) for t in ALL_TYPES]
                + [FuncType(tuple(ALL_TYPES), tuple(ALL_TYPES)), FuncType((), ()),
                   FuncType((), ())])
    assert types[3:20] == expected
    assert set(VALUE_TYPES) == set(ALL_TYPES)
    compiles_everywhere(out)


def test_add_function_type_on_an_empty_module_starts_at_zero(backend: str) -> None:
    """On a module without a type section the first type gets index 0, and a type section is
    made: the only section of the result."""
    b = Blobs()
    hook = f"(drop (call $type {b(bytes((I32,)))} {b(bytes((I64,)))}))"
    out = apply_plugins("(module)", [make(hook, backend, b, report=False)], backend)
    assert section_ids(out) == [1]
    assert sections(out)[0][2] == b"\x01\x60\x01\x7f\x01\x7e"  # one type: (i32) -> (i64)
    compiles_everywhere(out)
    out = apply_plugins("(module)", [make(hook, backend, b)], backend)
    assert seen(out, backend) == [0, 0]


def test_out_is_written_as_eight_unaligned_bytes(backend: str) -> None:
    """``out_ptr`` need not be aligned: exactly the 8 bytes at it are written, little-endian."""
    b = Blobs()
    p = b.at(bytes((I32,)))
    hook = f"""
      (i64.store (i32.const 0x300) (i64.const -1)) (i64.store (i32.const 0x308) (i64.const -1))
      (i64.store (i32.const 0x310) (i64.const -1))
      (call $see (i64.extend_i32_u
        (call $lp_type (i32.const {p}) (i32.const 1) (i32.const 0) (i32.const 0) (i32.const 0x303))))
      (call $see (i64.load (i32.const 0x300))) (call $see (i64.load (i32.const 0x308)))
      (call $see (i64.load (i32.const 0x310)))
    """
    out = apply_plugins(types_target(5), [make(hook, backend, b)], backend)
    # index 5 written at 0x303..0x30b: 0x300 = ff ff ff 05 00 00 00 00, 0x308 = 00 00 00 ff ..
    assert seen(out, backend) == [0, 0x05FFFFFF, -(1 << 24), -1]


def test_add_function_locals_runs_and_params(backend: str) -> None:
    """Locals records with several runs and counts > 1 become the function's locals, after its
    params, zero-initialised; the body uses both; the records are encoded as given."""
    b = Blobs()
    params = bytes((I32, I64))
    # params 0: i32, 1: i64; locals 2-3: i32, 4: i64, 5-7: f64
    locals_ = (local_record(2, I32) + local_record(1, I64) + local_record(3, F64))
    body = (local_get(0) + local_set(3)                    # l3 = a
            + local_get(1) + local_set(4)                  # l4 = b
            + local_get(3) + b"\xb7" + local_set(7)        # l7 = f64(l3)
            + local_get(4) + b"\xb9" + local_get(7) + b"\xa0"  # f64(l4) + l7
            + local_get(2) + b"\xb7" + b"\xa0"             # + f64(l2), still 0
            + local_get(6) + b"\xa0"                       # + l6, still 0.0
            + END)
    hook = f"""(local $t i32) (local $f i32)
      (local.set $t (i32.wrap_i64 (call $type {b(params)} {b(bytes((F64,)))})))
      (local.set $f (i32.wrap_i64 (call $func (local.get $t) {b(locals_)} {b(body)})))
      (call $export {b(b"mixed")} (local.get $f))"""
    out = apply_plugins(SIMPLE_TARGET, [make(hook, backend, b)], backend)
    assert seen(out, backend) == [0, 2, 0, 2]  # the target had 2 types and 2 functions
    inst = instance_of(out, backend)
    assert inst.exports.mixed(3, 4) == 7.0
    assert inst.exports.mixed(-10, 1 << 40) == float((1 << 40) - 10)
    inst.close()
    assert Module.parse(out).code[2].locals == [(2, I32), (1, I64), (3, F64)]
    calls_agree(SIMPLE_TARGET, out, backend, [("one", ()), ("add", (2, 40))])


def test_add_function_accepts_locals_of_every_value_type_and_empty_runs(backend: str) -> None:
    """A locals record may have any of the 7 value types, or a count of 0."""
    b = Blobs()
    locals_ = b"".join(local_record(1, t) for t in ALL_TYPES) + local_record(0, I32)
    body = local_get(0) + END  # the first local, an i32: zero
    hook = f"""(drop (call $func (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
                   {b(locals_)} {b(body)}))"""
    out = apply_plugins("(module)", [make(hook, backend, b)], backend)
    assert seen(out, backend) == [0, 0, 0, 0]
    assert Module.parse(out).code[0].locals == [(1, t) for t in ALL_TYPES] + [(0, I32)]
    compiles_everywhere(out)


def test_add_function_index_counts_imports_and_the_export_names_the_added_function(
        backend: str) -> None:
    """On a module with 2 imported and 3 defined functions the new function is index 5 (what
    ``call`` and exports use), and exporting that index exports the new function: calling the
    export runs the added body (its result differs from every other function's)."""
    b = Blobs()
    # (param i32 i32) (result i32): a - b, then + triple(1) through call 0 (an import)
    body = local_get(0) + local_get(1) + I32_SUB + i32_const(1) + call(0) + I32_ADD + END
    hook = f"""(local $f i32)
      (local.set $f (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(bytes((I32, I32)))} {b(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b(body)})))
      (call $export {b(b"added")} (local.get $f))"""
    out = apply_plugins(TARGET_WITH_IMPORTS, [make(hook, backend, b)], backend)
    assert seen(out, backend) == [0, 2, 0, 5]
    inst = instance_of(out, backend)
    assert inst.exports.added(10, 3) == 10 - 3 + 3
    inst.close()
    calls_agree(TARGET_WITH_IMPORTS, out, backend, [("thousand", ()), ("f", (7,))])


def test_add_function_export_of_defined_and_imported_functions(backend: str) -> None:
    """Any index of the function index space can be exported: an import (re-exported), a
    function the module defined, unexported until now, and one function under two names;
    names are any UTF-8, the empty one included."""
    b = Blobs()
    hook = f"""
      (call $export {b(b"negate_again")} (i32.const 1))
      (call $export {b(b"nine")} (i32.const 3))
      (call $export {b(b"nine_too")} (i32.const 3))
      (call $export {b("grüß ✓".encode())} (i32.const 4))
      (call $export {b(b"")} (i32.const 2))"""  # the empty name is a name
    out = apply_plugins(TARGET_WITH_IMPORTS, [make(hook, backend, b, report=False)], backend)
    inst = instance_of(out, backend)
    assert inst.exports.negate_again(5) == -5
    assert inst.exports.nine(0) == 9 and inst.exports.nine_too(0) == 9
    assert inst.exports[""]() == 1000
    assert inst.exports["grüß ✓"](2) == -6
    inst.close()
    assert [e.name for e in Module.parse(out).exports] == [
        "thousand", "f", "negate_again", "nine", "nine_too", "grüß ✓", ""]  # appended
    compiles_everywhere(out)


def test_add_function_with_a_type_the_same_plugin_added_and_calls_between_added_functions(
        backend: str) -> None:
    """An added body may call another added function by the index it got (imports counted),
    and use a type index the plugin just added (the boundary: index == old type count)."""
    b = Blobs()
    # f5 (i32) -> i32: x * 2 ; f6 (i32) -> i32: f5(x) + triple(x)
    hook = f"""(local $t i32) (local $f i32) (local $g i32)
      (local.set $t (i32.wrap_i64 (call $type {b(bytes((I32,)))} {b(bytes((I32,)))})))
      (local.set $f (i32.wrap_i64 (call $func (local.get $t) (i32.const 0) (i32.const 0)
        {b(local_get(0) + i32_const(2) + I32_MUL + END)})))
      (local.set $g (i32.wrap_i64 (call $func (local.get $t) (i32.const 0) (i32.const 0)
        {b(local_get(0) + call(5) + local_get(0) + call(0) + I32_ADD + END)})))
      (call $export {b(b"g")} (local.get $g))"""
    out = apply_plugins(TARGET_WITH_IMPORTS, [make(hook, backend, b)], backend)
    assert seen(out, backend) == [0, 2, 0, 5, 0, 6]
    inst = instance_of(out, backend)
    assert inst.exports.g(4) == 8 + 12
    inst.close()


def test_ranges_in_memory_the_plugin_grew_are_readable(backend: str) -> None:
    """A plugin may grow its memory and pass ranges (and ``out``) in the new pages."""
    hook = """(drop (memory.grow (i32.const 1)))
      (i32.store8 (i32.const 0x10000) (i32.const 0x7e))
      (call $see (i64.extend_i32_u (call $lp_type (i32.const 0x10000) (i32.const 1)
                                                  (i32.const 0x10000) (i32.const 1)
                                                  (i32.const 0x1fff8))))
      (call $see (i64.load (i32.const 0x1fff8)))"""
    out = apply_plugins(SIMPLE_TARGET, [make(hook, backend)], backend)
    assert seen(out, backend) == [0, 2]
    assert Module.parse(out).types[2] == FuncType((I64,), (I64,))


def test_failed_calls_return_one_number_errors_from_one_and_add_nothing(backend: str) -> None:
    """Each failing call returns 1 and writes the next id of the run's private error table
    (1, 2, 3..., afresh in every run); nothing is added, so the next good call gets the index a first call would;
    a plugin that only failed leaves the bytes as they were."""
    b = Blobs()
    bad_calls = f"""
      (drop (call $type {b(bytes((I32, 0x40)))} {b(b'')}))
      (drop (call $type {b(b'')} {b(bytes((0x00,)))}))
      (drop (call $func (i32.const 0) {b(local_record(1, 0x7A))} {b(END)}))
      (drop (call $func (i32.const 0) {b(b'abcd')} {b(END)}))
      (drop (call $func (i32.const 99) (i32.const 0) (i32.const 0) {b(END)}))
      (drop (call $func (i32.const 0) (i32.const 0) (i32.const 0) {b(b'')}))"""
    good = f"(drop (call $type {b(b'')} {b(b'')}))"
    target = types_target(1)
    plugin = make(bad_calls + good, backend, b)
    for _ in range(2):  # each run has its own error table: ids start at 1 again
        out = apply_plugins(target, [plugin], backend)
        assert seen(out, backend) == [1, 1, 1, 2, 1, 3, 1, 4, 1, 5, 1, 6, 0, 1]
    # the same plugin without the good call (and without the report) changed nothing
    silent = make(bad_calls, backend, b, report=False)
    assert apply_plugins(target, [silent], backend) == target


# -- 2. chains ----------------------------------------------------------------------------------


def test_a_chain_of_plugins_sees_each_others_changes_in_order(backend: str) -> None:
    """Plugin 2 gets the indices after plugin 1's (its report's included), exports a function
    plugin 1 added and calls it from a body it adds; plugin 3 exports plugin 2's function
    under another name.  Plugins run in the order given."""
    b1 = Blobs()
    first = make(f"""(local $f i32)
      (local.set $f (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b1(bytes((I32,)))} {b1(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b1(local_get(0) + i32_const(2) + I32_MUL + END)})))
      (call $export {b1(b"double")} (local.get $f))""", backend, b1, tag="one", name="first")
    # TARGET_WITH_IMPORTS: 2 types, functions 0-1 imported, 2-4 defined.  Plugin 1: type 2,
    # function 5, then its report: type 3, functions 6-9 (one per value it logged).
    b2 = Blobs()
    second = make(f"""(local $f i32)
      (local.set $f (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b2(bytes((I32,)))} {b2(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b2(local_get(0) + call(5) + i32_const(1) + I32_ADD + END)})))
      (call $export {b2(b"double_plus_one")} (local.get $f))
      (call $export {b2(b"double_again")} (i32.const 5))""", backend, b2, tag="two",
                  name="second")
    b3 = Blobs()
    third = make(f"(call $export {b3(b'renamed')} (i32.const 10))", backend, b3,
                 report=False, name="third")
    out = apply_plugins(TARGET_WITH_IMPORTS, [first, second, third], backend)
    assert seen(out, backend, "one") == [0, 2, 0, 5]
    assert seen(out, backend, "two") == [0, 4, 0, 10]
    inst = instance_of(out, backend)
    assert inst.exports.double(21) == 42
    assert inst.exports.double_again(21) == 42
    assert inst.exports.double_plus_one(21) == 43
    assert inst.exports.renamed(1) == 3
    inst.close()
    calls_agree(TARGET_WITH_IMPORTS, out, backend, [("thousand", ()), ("f", (2,))])
    # run first, "third" finds no function 10 yet
    with pytest.raises(PluginError, match=r"plugin third \(1 of 3\): lunatic_create_module_hook "
                                          r"trapped: .*function index 10 out of range \(the "
                                          r"module has 5 functions: 2 imported, 3 defined\)"):
        apply_plugins(TARGET_WITH_IMPORTS, [third, first, second], backend)


def test_each_module_gets_a_fresh_plugin_instance(backend: str) -> None:
    """A plugin's globals start afresh for every module (and every place in a chain)."""
    b = Blobs()
    counter = make("""(global.set $n (i32.add (global.get $n) (i32.const 1)))
                     (call $see (i64.extend_i32_u (global.get $n)))""", backend, b,
                   extra="(global $n (mut i32) (i32.const 0))")
    for _ in range(2):
        assert seen(apply_plugins("(module)", [counter], backend), backend) == [1]
    # the same Plugin twice in one chain: a second instance, not the first one again
    strict = make(f"""(global.set $n (i32.add (global.get $n) (i32.const 1)))
                     (if (i32.ne (global.get $n) (i32.const 1)) (then unreachable))
                     (drop (call $type {b(b'')} {b(b'')}))""", backend, b, report=False,
                  extra="(global $n (mut i32) (i32.const 0))")
    assert len(Module.parse(apply_plugins("(module)", [strict, strict], backend)).types) == 2


# -- 3. encoding validity -----------------------------------------------------------------------

CUSTOMS_TARGET = to_wasm_bytes("""(module $tgt
  (@custom "first" (before first) "A")
  (import "env" "triple" (func $triple (param i32) (result i32)))
  (func $alpha (export "alpha") (result i32) (call $triple (i32.const 2)))
  (@custom "mid" (after func) "B")
  (func $beta (export "beta") (param $x i32) (result i32) (local $y i32) (local.get $x))
  (func $gamma (export "gamma") unreachable)
  (memory 1)
  (@custom "after_code" (after code) "C")
  (data (i32.const 0) "xyz")
  (@custom "last" "D")
)""")


def test_custom_and_name_sections_survive_in_place(backend: str) -> None:
    """Custom sections keep their bytes and their place among the known sections (known
    sections only added or changed in their standard order); the name section still names
    the module, its functions and locals: the engines' backtraces name the old functions and
    leave the added one unnamed."""
    b = Blobs()
    hook = f"""(local $t i32)
      (local.set $t (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))})))
      (call $export {b(b"plus")} (i32.wrap_i64 (call $func (local.get $t)
        (i32.const 0) (i32.const 0) {b(i32_const(40) + call(0) + END)})))
      (call $export {b(b"boom")} (i32.wrap_i64 (call $func (local.get $t)
        (i32.const 0) (i32.const 0) {b(UNREACHABLE + END)})))"""
    plugin = make(hook, backend, b, report=False)
    out = apply_plugins(CUSTOMS_TARGET, [plugin], backend)
    before, after = sections(CUSTOMS_TARGET), sections(out)
    assert section_ids(CUSTOMS_TARGET) == ["first", 1, 2, 3, "mid", 5, 7, 10, "after_code", 11,
                                           "last", "name"]
    assert section_ids(out) == section_ids(CUSTOMS_TARGET)
    for (sid, name, payload), (_, name2, payload2) in zip(before, after):
        if sid in (0, 2, 5, 11):  # customs (the name section too), imports, memory, data
            assert (name2, payload2) == (name, payload)
    old, new = Module.parse(CUSTOMS_TARGET).names, Module.parse(out).names
    assert old is not None and new is not None
    assert new.module_name == "tgt"
    assert new.subsections == old.subsections  # local names included
    assert new.function_names is not None
    assert new.function_names.names == [(0, "triple"), (1, "alpha"), (2, "beta"),
                                        (3, "gamma")]
    inst = instance_of(out, backend)
    assert inst.exports.plus() == 120
    with pytest.raises(funk.Trap) as named:
        inst.exports.gamma()
    assert named.value.frames[0].startswith("gamma ")
    with pytest.raises(funk.Trap) as unnamed:
        inst.exports.boom()
    assert unnamed.value.frames[0].startswith("<func 5> ")
    inst.close()
    compiles_everywhere(out)
    calls_agree(CUSTOMS_TARGET, out, backend, [("alpha", ()), ("beta", (5,))])


def test_a_plugin_that_changes_nothing_returns_identical_bytes(backend: str) -> None:
    """A plugin with neither export, a hook that does nothing, no plugins at all: the very
    same bytes come back (customs, name section and all), not a re-encoding."""
    nothing = Plugin('(module (memory (export "memory") 1))', backend)
    idle = make("", backend, report=False)
    for target in (CUSTOMS_TARGET, TARGET_WITH_IMPORTS, to_wasm_bytes("(module)")):
        assert apply_plugins(target, [nothing], backend) == target
        assert apply_plugins(target, [idle, nothing, idle], backend) == target
        assert apply_plugins(target, [], backend) == target
    # a memory-less plugin with no exports at all is fine as well
    assert apply_plugins(CUSTOMS_TARGET, [Plugin("(module)", backend)], backend) == CUSTOMS_TARGET


def test_a_data_count_section_is_kept(backend: str) -> None:
    """A target with a data count section (it uses ``memory.init``) keeps it, once, before
    the code section; the added function and the old ones run."""
    target = to_wasm_bytes("""(module
      (memory 1) (data "hello")
      (func (export "init") (result i32)
        (memory.init 0 (i32.const 8) (i32.const 1) (i32.const 3))
        (i32.load8_u (i32.const 9))))""")
    assert section_ids(target) == [1, 3, 5, 7, 12, 10, 11]
    b = Blobs()
    hook = f"""(call $export {b(b"seven")} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b(i32_const(7) + END)})))"""
    out = apply_plugins(target, [make(hook, backend, b, report=False)], backend)
    assert section_ids(out) == [1, 3, 5, 7, 12, 10, 11]
    assert [p for sid, _, p in sections(out) if sid == 12] == [b"\x01"]
    inst = instance_of(out, backend)
    assert inst.exports.seven() == 7
    inst.close()
    compiles_everywhere(out)
    calls_agree(target, out, backend, [("init", ())])


def test_memory_init_in_an_added_body_adds_a_data_count_section(backend: str) -> None:
    """A passive segment never used with ``memory.init`` has no data count section; a body
    using ``memory.init`` and ``data.drop`` makes one (value 2, before the code section), and the
    result validates and runs."""
    target = to_wasm_bytes("""(module
      (memory (export "mem") 1)
      (data (i32.const 0) "active")
      (data "hello")
      (func (export "peek") (param i32) (result i32) (i32.load8_u (local.get 0))))""")
    assert 12 not in section_ids(target)
    b = Blobs()
    # copy "ell" of segment 1 to 100, drop it, return the byte at 101
    body = (i32_const(100) + i32_const(1) + i32_const(3) + b"\xfc\x08\x01\x00"
            + b"\xfc\x09\x01" + i32_const(101) + b"\x2d\x00\x00" + END)
    hook = f"""(call $export {b(b"init")} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b(body)})))"""
    out = apply_plugins(target, [make(hook, backend, b, report=False)], backend)
    assert section_ids(out) == [1, 3, 5, 7, 12, 10, 11]
    assert [p for sid, _, p in sections(out) if sid == 12] == [b"\x02"]
    inst = instance_of(out, backend)
    assert inst.exports.init() == ord("l")
    assert inst.exports.peek(100) == ord("e")
    with pytest.raises(funk.Trap):  # the segment was dropped
        inst.exports.init()
    inst.close()
    compiles_everywhere(out)
    calls_agree(target, out, backend, [("peek", (2,))])


def test_an_empty_module_gets_its_sections_in_order(backend: str) -> None:
    """``(module)`` has no section at all: an added type, function and export make the type,
    function, export and code sections, in that order, and the function runs."""
    b = Blobs()
    hook = f"""(call $export {b(b"answer")} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
        {b(local_record(1, I32))} {b(i32_const(42) + local_set(0) + local_get(0) + END)})))"""
    out = apply_plugins("(module)", [make(hook, backend, b, report=False)], backend)
    assert out == (b"\0asm\x01\0\0\0"
                   b"\x01\x05\x01\x60\x00\x01\x7f"          # type: () -> i32
                   b"\x03\x02\x01\x00"                      # function: type 0
                   b"\x07\x0a\x01\x06answer\x00\x00"        # export "answer" func 0
                   b"\x0a\x0c\x01\x0a\x01\x01\x7f\x41\x2a\x21\x00\x20\x00\x0b")  # code
    inst = instance_of(out, backend)
    assert inst.exports.answer() == 42
    inst.close()
    compiles_everywhere(out)


def test_a_start_function_still_runs_and_keeps_its_index(backend: str) -> None:
    """A target with imports and a start function: the start section keeps naming the same
    function (nothing shifts: functions are appended), and an added body sees what it did."""
    target = to_wasm_bytes("""(module
      (import "env" "triple" (func $triple (param i32) (result i32)))
      (global $g (mut i32) (i32.const 0))
      (func $init (global.set $g (call $triple (i32.const 5))))
      (start $init)
      (func (export "g") (result i32) (global.get $g)))""")
    b = Blobs()
    hook = f"""(call $export {b(b"g_plus_one")} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b(global_get(0) + i32_const(1) + I32_ADD + END)})))"""
    out = apply_plugins(target, [make(hook, backend, b, report=False)], backend)
    assert [p for sid, _, p in sections(out) if sid == 8] == [b"\x01"]
    inst = instance_of(out, backend)
    assert (inst.exports.g(), inst.exports.g_plus_one()) == (15, 16)
    inst.close()
    compiles_everywhere(out)


def test_tables_and_elements_with_call_indirect_and_ref_func(backend: str) -> None:
    """A target with a table, an element segment and ``call_indirect``: an added body calls
    through the table and uses ``ref.func`` of a function the segment declares; another uses
    ``ref.func`` of the added function, declared by having been exported."""
    target = to_wasm_bytes("""(module
      (type $ret (func (result i32)))
      (table 2 funcref)
      (elem (i32.const 0) $ten $twenty)
      (func $ten (result i32) (i32.const 10))
      (func $twenty (result i32) (i32.const 20))
      (func (export "pick") (param i32) (result i32) (call_indirect (type $ret) (local.get 0))))""")
    b = Blobs()
    # (i32) -> i32: table[x]() + 100 + (ref.is_null (ref.func 1)), function 3
    body = (local_get(0) + b"\x11\x00\x00" + i32_const(100) + I32_ADD
            + b"\xd2\x01\xd1" + I32_ADD + END)
    # (i32) -> i32: ref.func 3 is declared by the export of function 3 made just before
    body2 = b"\xd2\x03\xd1" + local_get(0) + I32_ADD + END
    hook = f"""(local $t i32)
      (local.set $t (i32.wrap_i64 (call $type {b(bytes((I32,)))} {b(bytes((I32,)))})))
      (call $export {b(b"pick100")} (i32.wrap_i64 (call $func (local.get $t)
        (i32.const 0) (i32.const 0) {b(body)})))
      (call $export {b(b"ref_exported")} (i32.wrap_i64 (call $func (local.get $t)
        (i32.const 0) (i32.const 0) {b(body2)})))"""
    out = apply_plugins(target, [make(hook, backend, b, report=False)], backend)
    inst = instance_of(out, backend)
    assert (inst.exports.pick100(0), inst.exports.pick100(1)) == (110, 120)
    assert inst.exports.ref_exported(5) == 5
    inst.close()
    compiles_everywhere(out)
    calls_agree(target, out, backend, [("pick", (0,)), ("pick", (1,))])


def padded(wasm: bytes) -> bytes:
    """``wasm`` with every section size and function body size as a 5-byte LEB128, the way
    some linkers write them (so they can be patched in place)."""
    def pad(n: int) -> bytes:
        return bytes([(n >> shift) & 0x7F | 0x80 for shift in (0, 7, 14, 21)]) + bytes([n >> 28])

    out = [wasm[:8]]
    for sid, name, payload in sections(wasm):
        if sid == 0:
            assert name is not None
            payload = uleb(len(name.encode())) + name.encode() + payload
        elif sid == 10:
            count, pos, bodies = payload[0], 1, [payload[:1]]
            assert count < 0x80
            for _ in range(count):
                size, start = read_uleb(payload, pos)
                bodies.append(pad(size) + payload[start:start + size])
                pos = start + size
            payload = b"".join(bodies)
        out.append(bytes((sid,)) + pad(len(payload)) + payload)
    return b"".join(out)


def test_padded_sizes_and_sizes_that_outgrow_their_encoding(backend: str) -> None:
    """Sizes written wider than needed keep working when a plugin adds to those sections, and
    minimal sizes that must grow a byte (a code section of just under 128 bytes getting one
    more function, an export section of just under 128 bytes one more export) grow it."""
    filler = " ".join(["(drop (i32.const 1000000))"] * 20)  # 5 bytes each: a 100-byte body
    near = to_wasm_bytes(f"""(module
      (func (export "{"e" * 100}") (result i32) {filler} (i32.const 3)))""")
    code_size = [len(p) for sid, _, p in sections(near) if sid == 10][0]
    export_size = [len(p) for sid, _, p in sections(near) if sid == 7][0]
    assert 100 < code_size < 128 and 100 < export_size < 128
    b = Blobs()
    body = (b"\x41\x00\x1a" * 20) + i32_const(4) + END  # 64 more bytes of code
    hook = f"""(call $export {b(b"f" * 30)} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
        {b(local_record(2, I64))} {b(body)})))"""
    plugin = make(hook, backend, b, report=False)
    for target in (near, padded(near), padded(CUSTOMS_TARGET), padded(TARGET_WITH_IMPORTS)):
        out = apply_plugins(target, [plugin], backend)
        compiles_everywhere(out)
        inst = instance_of(out, backend)
        assert inst.exports["f" * 30]() == 4
        inst.close()
    out = apply_plugins(near, [plugin], backend)
    assert [len(p) for sid, _, p in sections(out) if sid == 10][0] > 128
    calls_agree(near, out, backend, [("e" * 100, ())])
    calls_agree(padded(CUSTOMS_TARGET), apply_plugins(padded(CUSTOMS_TARGET), [plugin], backend),
                backend, [("alpha", ()), ("beta", (3,))])


def test_imports_of_other_kinds_do_not_count_as_functions(backend: str) -> None:
    """Imported globals, memories and tables are not in the function index space: with one
    imported function among them the first added function is index 1 + defined ones."""
    target = to_wasm_bytes("""(module
      (import "env" "g" (global i32))
      (import "env" "triple" (func (param i32) (result i32)))
      (import "env" "mem" (memory 1))
      (import "env" "table" (table 1 funcref))
      (func (result i32) (global.get 0)))""")
    b = Blobs()
    hook = f"""(call $export {b(b"added")} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b(i32_const(2) + call(0) + END)})))"""
    out = apply_plugins(target, [make(hook, backend, b, report=False)], backend)
    compiles_everywhere(out)
    assert [(e.name, e.kind, e.index) for e in Module.parse(out).exports] == [("added", 0, 2)]


def test_apply_plugins_accepts_wat_and_a_path(backend: str, tmp_path: Any) -> None:
    """The target may be WAT text or a path, like everything funk takes as wasm; so may the
    plugin; the result is bytes."""
    b = Blobs()
    wat = plugin_wat(f"(drop (call $type {b(b'')} {b(b'')}))", b)
    plugin_path = tmp_path / "plugin.wat"
    plugin_path.write_text(wat)
    target_path = tmp_path / "target.wasm"
    target_path.write_bytes(SIMPLE_TARGET)
    out = apply_plugins(target_path, [Plugin(plugin_path, backend)], backend)
    assert seen(out, backend) == [0, 2]
    out = apply_plugins("(module (type (func)))", [Plugin(wat, backend)])
    assert seen(out, backend) == [0, 1]


# -- 4. failures --------------------------------------------------------------------------------


def test_a_trap_in_the_hook_names_the_plugin_and_its_place(backend: str) -> None:
    """``unreachable`` in the hook: ``PluginError`` (a ``CompileError``) naming the plugin, its
    place in the chain and the export that trapped."""
    good = make("", backend, report=False, name="good")
    bad = make("unreachable", backend, name="bad")
    with pytest.raises(PluginError) as info:
        apply_plugins(SIMPLE_TARGET, [good, bad, good], backend)
    assert isinstance(info.value, CompileError)
    assert str(info.value).startswith(
        "plugin bad (2 of 3): lunatic_create_module_hook trapped: ")
    assert "unreachable" in str(info.value)
    # a plugin's name defaults to the module's own name (name section); else none
    named = Plugin(plugin_wat("unreachable", module_name="my_plugin"), backend)
    with pytest.raises(PluginError, match=r"^plugin my_plugin \(1 of 1\): lunatic_create_"):
        apply_plugins(SIMPLE_TARGET, [named], backend)
    anonymous = Plugin(plugin_wat("unreachable"), backend)
    with pytest.raises(PluginError, match=r"^plugin \(1 of 2\): lunatic_create_module_hook"):
        apply_plugins(SIMPLE_TARGET, [anonymous, named], backend)


def test_initialize_runs_before_the_hook(backend: str) -> None:
    """``_initialize`` runs first, in the same instance: the hook sees the global it set and
    what it logged; the editor works there too, so a plugin with only ``_initialize`` edits."""
    b = Blobs()
    plugin = make("(call $see (i64.extend_i32_u (global.get $g)))", backend, b,
                  initialize="(global.set $g (i32.const 42)) (call $see (i64.const 7))",
                  extra="(global $g (mut i32) (i32.const 0))")
    assert seen(apply_plugins(SIMPLE_TARGET, [plugin], backend), backend) == [7, 42]
    only_init = make(None, backend, b, initialize=f"(drop (call $type {b(b'')} {b(b'')}))"
                                                    "(call $report)")
    assert seen(apply_plugins(SIMPLE_TARGET, [only_init], backend), backend) == [0, 2]


def test_a_trap_in_initialize_or_the_start_function(backend: str) -> None:
    """A trap in ``_initialize`` (the hook does not run) or in the plugin's start function
    (while it is instantiated) fails the run, naming the step."""
    init = make("(call $see (i64.const 1))", backend, initialize="unreachable", name="init")
    with pytest.raises(PluginError, match=r"^plugin init \(1 of 1\): _initialize trapped: "
                                          r"unreachable"):
        apply_plugins(SIMPLE_TARGET, [init], backend)
    start = Plugin("(module (func $s unreachable) (start $s))", backend, name="start")
    with pytest.raises(PluginError, match=r"^plugin start \(1 of 1\): instantiation trapped: "
                                          r"unreachable"):
        apply_plugins(SIMPLE_TARGET, [start], backend)


@pytest.mark.parametrize("imports, culprit", [
    ('(import "wasi_snapshot_preview1" "fd_write" (func (param i32 i32 i32 i32) (result i32)))',
     "wasi_snapshot_preview1::fd_write"),
    ('(import "env" "f" (func))', "env::f"),
    ('(import "lunatic::process" "add_plugin" (func (param i64 i32 i32 i32) (result i32)))',
     "lunatic::process::add_plugin"),
    ('(import "lunatic::plugin" "take_module" (func))', "lunatic::plugin::take_module"),
    ('(import "lunatic::plugin" "add_function" (memory 1))', "lunatic::plugin::add_function"),
    ('(import "funk::plugin_meter" "refuel" (func (param i64) (result i64)))',
     "funk::plugin_meter::refuel"),
], ids=["wasi", "env", "lunatic-process", "unknown-name", "memory", "meter"])
def test_a_plugin_importing_anything_else_is_refused_when_made(backend: str, imports: str,
                                                                culprit: str) -> None:
    """WASI, another namespace, an unknown ``lunatic::plugin`` name, a non-function import
    and the meter's own namespace: ``PluginError`` from ``Plugin()``, naming the import."""
    with pytest.raises(PluginError) as info:
        Plugin(f'(module {imports} (memory (export "memory") 1))', backend, name="greedy")
    assert str(info.value) == (
        f"plugin greedy: it imports {culprit}, but a plugin may import only the functions of "
        "lunatic::plugin (add_function, add_function_export, add_function_type)")


@pytest.mark.parametrize("name, signature", [
    ("add_function_type", "(param i32 i32 i32 i32 i32)"),
    ("add_function_type", "(param i32 i32 i32 i32 i64) (result i32)"),
    ("add_function", "(param i32 i32 i32 i32 i32) (result i32)"),
    ("add_function_export", "(param i32 i32)"),
    ("add_function_export", "(param i32 i32 i32) (result i32)"),
], ids=['type-no-result', 'type-i64', 'func-5', 'export-2', 'export-result'])
def test_a_wrong_signature_is_refused_when_made(backend: str, name: str, signature: str) -> None:
    """A ``lunatic::plugin`` function imported with another type: ``PluginError`` from
    ``Plugin()`` giving both types."""
    with pytest.raises(PluginError) as info:
        Plugin(f'(module (import "lunatic::plugin" "{name}" (func {signature})))', backend,
               name="typo")
    text = str(info.value)
    assert text.startswith("plugin typo: ") and f"lunatic::plugin.{name}" in text
    assert "the module imports it as" in text


@pytest.mark.parametrize("entry", ["lunatic_create_module_hook", "_initialize"])
@pytest.mark.parametrize("field, problem", [
    ("(func (export \"{}\") (param i32))", "must take and return nothing, not (i32) -> ()"),
    ("(func (export \"{}\") (result i64) (i64.const 0))",
     "must take and return nothing, not () -> (i64)"),
    ("(global (export \"{}\") i32 (i32.const 0))", "is not a function"),
], ids=['params', 'results', 'global'])
def test_entry_points_of_the_wrong_kind_are_refused_when_made(backend: str, entry: str,
                                                               field: str, problem: str) -> None:
    """The hook and ``_initialize`` must be ``() -> ()`` functions: checked by ``Plugin()``."""
    with pytest.raises(PluginError, match=rf"^plugin odd: its {entry} export {re.escape(problem)}"):
        Plugin(f"(module {field.format(entry)})", backend, name="odd")


@pytest.mark.parametrize("wasm, reason", [
    (b"\0asm\x01\0\0\0\x01\x05", "not a valid wasm module: malformed module at offset 0x9"),
    (b"\0asm\x02\0\0\0", "not a valid wasm module"),
    (b"junk", "not a wasm module"),
    (b"", "not a wasm module"),
    ("(module (func (result i32)))", "cannot compile the module"),
    ("(module (fun))", "invalid WAT"),
], ids=['truncated', 'version', 'junk', 'empty', 'invalid', 'bad-wat'])
def test_malformed_or_invalid_plugin_bytes_are_refused_when_made(backend: str, wasm: Any,
                                                                 reason: str) -> None:
    """Bytes that are not a (valid) module, or bad WAT: ``PluginError`` from ``Plugin()``."""
    with pytest.raises(PluginError) as info:
        Plugin(wasm, backend, name="junk")
    assert str(info.value).startswith("plugin junk: ") and reason in str(info.value)


@pytest.mark.parametrize("hook, param", [
    ("(drop (call $lp_type (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) "
     "(i32.const 0)))", "lunatic::plugin.add_function_type: parameter 'params'"),
    ("(drop (call $lp_func (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0) "
     "(i32.const 0) (i32.const 0)))", "lunatic::plugin.add_function: parameter 'locals'"),
    ("(call $lp_export (i32.const 0) (i32.const 0) (i32.const 0))",
     "lunatic::plugin.add_function_export: parameter 'name'"),
], ids=["add_function_type", "add_function", "add_function_export"])
def test_a_plugin_without_memory_traps_on_any_call(backend: str, hook: str, param: str) -> None:
    """A plugin that exports no ``memory`` may be made, but each of the three functions traps
    (even with empty ranges)."""
    plugin = make(hook, backend, memory=False, report=False)
    with pytest.raises(PluginError) as info:
        apply_plugins(SIMPLE_TARGET, [plugin], backend)
    assert str(info.value) == (
        f"plugin p (1 of 1): lunatic_create_module_hook trapped: {param}: the guest module does "
        "not export a memory named 'memory'")


GOOD_TYPE = "(i32.const 0x600) (i32.const 1)"  # one i32 (the body at 0x610: i32.const 0, end)
OOB = [
    ("params", "$lp_type (i32.const 0xffff) (i32.const 2) (i32.const 0) (i32.const 0) "
               "(i32.const 0)", "add_function_type", "[0xffff, 0x10001)"),
    ("params", "$lp_type (i32.const -16) (i32.const 32) (i32.const 0) (i32.const 0) "
               "(i32.const 0)", "add_function_type", "[0xfffffff0, 0x100000010)"),
    ("results", f"$lp_type {GOOD_TYPE} (i32.const 0x10000) (i32.const 1) (i32.const 0)",
     "add_function_type", "[0x10000, 0x10001)"),
    ("out", f"$lp_type {GOOD_TYPE} {GOOD_TYPE} (i32.const 0xfff9)", "add_function_type",
     "[0xfff9, 0x10001)"),
    ("locals", "$lp_func (i32.const 0) (i32.const 0xfffc) (i32.const 5) (i32.const 0x610) "
               "(i32.const 3) (i32.const 0)", "add_function", "[0xfffc, 0x10001)"),
    ("body", "$lp_func (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x610) "
             "(i32.const 0x20000) (i32.const 0)", "add_function", "[0x610, 0x20610)"),
    ("out", "$lp_func (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x610) "
            "(i32.const 3) (i32.const -1)", "add_function", "[0xffffffff, 0x100000007)"),
    ("name", "$lp_export (i32.const 0x620) (i32.const 0xffffffff) (i32.const 0)",
     "add_function_export", "[0x620, 0x10000061f)"),
]


@pytest.mark.parametrize("param, call_, function, span", OOB,
                         ids=[f"{f}-{p}-{n}" for n, (p, _, f, _) in enumerate(OOB)])
def test_out_of_bounds_ranges_trap(backend: str, param: str, call_: str, function: str,
                                   span: str) -> None:
    """Every pointer/length pair and every out pointer of the three functions is checked:
    a range past the end of memory (or wrapping past 4 GiB) traps, naming the parameter."""
    extra = ('(data (i32.const 0x600) "\\7f") (data (i32.const 0x610) "\\41\\00\\0b")'
             '(data (i32.const 0x620) "x")')
    hook = f"(call {call_})" if function == "add_function_export" else f"(drop (call {call_}))"
    plugin = make(hook, backend, report=False, extra=extra)
    with pytest.raises(PluginError) as info:
        apply_plugins(SIMPLE_TARGET, [plugin], backend)
    assert str(info.value) == (
        f"plugin p (1 of 1): lunatic_create_module_hook trapped: lunatic::plugin.{function}: "
        f"parameter '{param}': range {span} is outside guest memory of 65536 bytes")


BAD_TYPE_BYTES = [0x00, 0x40, 0x60, 0x64, 0x69, 0x6E, 0x7A, 0x80, 0xFF]


@pytest.mark.parametrize("bad", BAD_TYPE_BYTES, ids=[f"0x{b:02x}" for b in BAD_TYPE_BYTES])
def test_an_unknown_value_type_byte_returns_one_wherever_it_is(backend: str, bad: int) -> None:
    """In params, results or a locals record, an unknown byte makes the call return 1 with an
    error id: the plugin goes on, and nothing was added by those calls."""
    b = Blobs()
    hook = f"""
      (drop (call $type {b(bytes((I32, bad)))} {b(b'')}))
      (drop (call $type {b(b'')} {b(bytes((I64, F32, bad)))}))
      (drop (call $func (i32.const 0) {b(local_record(1, I32) + local_record(2, bad))}
                        {b(i32_const(1) + END)}))"""
    out = apply_plugins(SIMPLE_TARGET, [make(hook, backend, b)], backend)
    assert seen(out, backend) == [1, 1, 1, 2, 1, 3]
    assert len(Module.parse(out).types) == 2 + 1  # the report's type only


@pytest.mark.parametrize("call_, error", [
    ("$type {params} {none}", "add_function_type: params[1]: unknown value type byte 0x40"),
    ("$type {none} {results}", "add_function_type: results[2]: unknown value type byte 0x00"),
    ("$func (i32.const 0) {locals} {body}",
     "add_function: locals[1]: unknown value type byte 0x7a"),
    ("$func (i32.const 0) {four} {body}", "add_function: locals are 5-byte records, 4 bytes is "
                                          "not a whole number of them"),
    ("$func (i32.const 2) {none} {body}", "add_function: type index 2 out of range (the module "
                                          "has 2 types)"),
    ("$func (i32.const -1) {none} {body}", "add_function: type index 4294967295 out of range "
                                           "(the module has 2 types)"),
    ("$func (i32.const 0) {none} {none}", "add_function: the body does not decode: "),
    ("$func (i32.const 0) {none} {no_end}", "add_function: the body does not decode: "),
], ids=['params', 'results', 'locals', 'locals-len', 'type-index', 'type-index-max', 'empty-body', 'no-end'])
def test_the_last_error_is_quoted_when_the_plugin_then_traps(backend: str, call_: str,
                                                             error: str) -> None:
    """A plugin that gives up (traps) after a call returned 1: the failure quotes that error."""
    b = Blobs()
    blobs = {"none": b(b""), "params": b(bytes((I32, 0x40))), "results": b(b"\x7e\x7d\x00"),
             "locals": b(local_record(1, I32) + local_record(1, 0x7A)),
             "four": b(b"\x01\0\0\0"), "body": b(i32_const(1) + END),
             "no_end": b(i32_const(1))}
    hook = f"(if (i64.ne (call {call_.format(**blobs)}) (i64.const 1)) (then unreachable))"
    # the error id is 1 (first error of the run); the plugin then gives up
    plugin = make(hook + "(unreachable)", backend, b, report=False, name="quitter")
    with pytest.raises(PluginError) as info:
        apply_plugins(SIMPLE_TARGET, [plugin], backend)
    text = str(info.value)
    assert text.startswith("plugin quitter (1 of 1): lunatic_create_module_hook trapped: ")
    assert f"(its last lunatic::plugin error: {error}" in text


@pytest.mark.parametrize("locals_len", [1, 4, 6, 9, 11])
def test_locals_must_be_whole_five_byte_records(backend: str, locals_len: int) -> None:
    """Locals of a length that is not a multiple of 5 return 1 (the error id, 1, at out)."""
    b = Blobs()
    records = (local_record(1, I32) * 3)[:locals_len]
    hook = f"(drop (call $func (i32.const 0) {b(records)} {b(i32_const(1) + END)}))"
    assert seen(apply_plugins(SIMPLE_TARGET, [make(hook, backend, b)], backend), backend) == [1, 1]


@pytest.mark.parametrize("body", [
    b"",                                    # empty
    i32_const(1),                           # no final end
    b"\x04\x40" + END,                      # an if closed, the body not
    END + END,                              # bytes after the final end
    b"\x41",                                # an immediate cut short
    b"\x41\x80\x80\x80\x80\x80\x80" + END,  # an over-long LEB128
    b"\xff" + END,                          # an unknown opcode
    b"\xfc\xff\x01" + END,                  # an unknown prefixed opcode
], ids=["empty", "no-end", "open-if", "after-end", "cut", "long-leb", "opcode", "prefixed"])
def test_a_body_that_does_not_decode_returns_one(backend: str, body: bytes) -> None:
    """Bodies the decoder refuses return 1; the plugin goes on and the module is unchanged."""
    b = Blobs()
    hook = f"(drop (call $func (i32.const 0) (i32.const 0) (i32.const 0) {b(body)}))"
    assert seen(apply_plugins(SIMPLE_TARGET, [make(hook, backend, b)], backend), backend) == [1, 1]
    silent = make(hook, backend, b, report=False)
    assert apply_plugins(SIMPLE_TARGET, [silent], backend) == SIMPLE_TARGET


@pytest.mark.parametrize("type_, locals_, body", [
    (b"", b"", END),                                    # () -> i32 returning nothing
    (b"", b"", i32_const(1) + i32_const(2) + END),      # one value too many
    (b"", b"", call(99) + END),                         # no function 99
    (b"", b"", local_get(0) + END),                     # no local 0
    (b"", b"", i32_const(0) + b"\x28\x02\x00" + END),   # i32.load: the target has no memory
    (b"", b"", b"\xd2\x00\x1a" + i32_const(0) + END),  # ref.func of a function not declared
    (b"", local_record(0xFFFFFFFF, I32), i32_const(0) + END),  # too many locals
], ids=["no-result", "extra-value", "call", "local", "memory", "ref-func", "locals"])
def test_a_body_that_decodes_but_is_invalid_fails_the_run(backend: str, type_: bytes,
                                                          locals_: bytes, body: bytes) -> None:
    """A body that decodes is added (return 0), but the module is then invalid: the run fails
    with ``PluginError`` naming the plugin that produced it, with the engine's reason."""
    target = to_wasm_bytes("(module (func (result i32) (i32.const 5)))")  # not exported
    b = Blobs()
    hook = f"""(drop (call $func
      (i32.wrap_i64 (call $type {b(type_)} {b(bytes((I32,)))})) {b(locals_)} {b(body)}))
      (if (i64.ne (i64.load (i32.const {LOG + 16})) (i64.const 0)) (then unreachable))"""
    fine = make("", backend, report=False, name="fine")
    broken = make(hook, backend, b, report=False, name="broken")
    with pytest.raises(PluginError) as info:
        apply_plugins(target, [fine, broken, fine], backend)
    assert str(info.value).startswith(
        f"plugin broken (2 of 3): the module it produced is invalid: {backend}")


@pytest.mark.parametrize("name, index, message", [
    (b"added", 5, "function index 5 out of range (the module has 5 functions: 2 imported, "
                  "3 defined)"),
    (b"added", -1, "function index 4294967295 out of range"),
    (b"f", 2, "export name 'f' already used"),
    (b"thousand", 4, "export name 'thousand' already used"),
    (b"\xff", 2, "lunatic::plugin.add_function_export: parameter 'name' is not valid UTF-8"),
    (b"ok\xed\xa0\x80", 2, "lunatic::plugin.add_function_export: parameter 'name' is not valid "
                           "UTF-8"),  # a UTF-16 surrogate
    (b"\xc3", 2, "lunatic::plugin.add_function_export: parameter 'name' is not valid UTF-8"),
], ids=['index', 'index-max', 'dup-f', 'dup-thousand', 'utf8-ff', 'utf8-surrogate', 'utf8-cut'])
def test_bad_exports_trap(backend: str, name: bytes, index: int, message: str) -> None:
    """``add_function_export`` has no return code: an index out of range, a name already
    exported (by the module or by the plugin) or a name that is not UTF-8 traps."""
    b = Blobs()
    plugin = make(f"(call $export {b(name)} (i32.const {index}))", backend, b, name="exporter")
    with pytest.raises(PluginError) as info:
        apply_plugins(TARGET_WITH_IMPORTS, [plugin], backend)
    assert str(info.value).startswith(
        f"plugin exporter (1 of 1): lunatic_create_module_hook trapped: {message}")
    twice = make(f"(call $export {b(b'x')} (i32.const 0)) (call $export {b(b'x')} (i32.const 1))",
                 backend, b, name="twice")
    with pytest.raises(PluginError, match="trapped: export name 'x' already used"):
        apply_plugins(TARGET_WITH_IMPORTS, [twice], backend)


SPIN = "(loop $spin (br $spin))"


def test_a_plugin_that_loops_forever_runs_out_of_fuel(backend: str) -> None:
    """A spinning hook or ``_initialize`` fails once its ``fuel`` is used up (a small budget
    keeps this fast), saying so."""
    spinner = make(SPIN, backend, name="spinner")
    with pytest.raises(PluginError) as info:
        apply_plugins(SIMPLE_TARGET, [spinner], backend, fuel=10_000)
    assert str(info.value) == ("plugin spinner (1 of 1): lunatic_create_module_hook trapped: "
                               "used all its fuel (10,000); a plugin that loops forever?")
    init_spinner = make("", backend, initialize=SPIN, name="init")
    with pytest.raises(PluginError, match=r"^plugin init \(1 of 1\): _initialize trapped: used "
                                          r"all its fuel \(12,345\)"):
        apply_plugins(SIMPLE_TARGET, [init_spinner], backend, fuel=12_345)


def test_lunatic_plugin_calls_cost_fuel(backend: str) -> None:
    """Each ``lunatic::plugin`` call costs ``HOST_CALL_FUEL``: a plugin looping on calls runs
    out of fuel long before its instructions alone would use it; a budget smaller than one
    slice still pays for the calls it covers."""
    b = Blobs()
    calls = 40
    hook = f"""(local $n i32) (local.set $n (i32.const {calls}))
      (loop $more  ;; calls that fail (an unknown type byte): nothing changes
        (drop (call $lp_type {b(bytes((0x40,)))} {b(b'')} (i32.const 0x100)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br_if $more (local.get $n)))"""
    plugin = make(hook, backend, b, report=False)
    cost = calls * HOST_CALL_FUEL
    assert apply_plugins(SIMPLE_TARGET, [plugin], backend, fuel=cost * 2) == SIMPLE_TARGET
    with pytest.raises(PluginError, match=r"trapped: used all its fuel \(100,000\)"):
        apply_plugins(SIMPLE_TARGET, [plugin], backend, fuel=cost // 2)
    one_call = make(f"(drop (call $type {b(b'')} {b(b'')}))", backend, b, report=False)
    assert 2 * HOST_CALL_FUEL < SLICE
    out = apply_plugins(SIMPLE_TARGET, [one_call], backend, fuel=2 * HOST_CALL_FUEL)
    assert len(Module.parse(out).types) == 3
    with pytest.raises(PluginError, match="used all its fuel"):
        apply_plugins(SIMPLE_TARGET, [one_call], backend, fuel=HOST_CALL_FUEL // 2)


def burner(backend: str, iterations: int, tag: str = "seen") -> Plugin:
    """A plugin whose hook counts down from ``iterations`` (fuel grows with it), then logs 1."""
    return make(f"""(local $n i32) (local.set $n (i32.const {iterations}))
      (loop $more
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br_if $more (local.get $n)))
      (call $see (i64.const 1))""", backend, name="burner", tag=tag)


def test_every_run_gets_the_whole_fuel_budget(backend: str) -> None:
    """The budget is per plugin and per module: a plugin needing more than half of it runs
    again and again, and two of them in a chain both finish; with less fuel it fails."""
    plugin = burner(backend, 5_000)
    low, high = 1, 1_000_000  # bisect: the least fuel it finishes with
    while low < high:
        middle = (low + high) // 2
        low, high = (low, middle) if _finishes(plugin, middle) else (middle + 1, high)
    needed = low
    fuel = needed * 3 // 2  # enough for one run, not for two
    for _ in range(3):
        assert seen(apply_plugins(SIMPLE_TARGET, [plugin], backend, fuel=fuel), backend) == [1]
    out = apply_plugins(SIMPLE_TARGET, [plugin, burner(backend, 5_000, "more")], backend,
                        fuel=fuel)
    assert seen(out, backend) == [1] and seen(out, backend, "more") == [1]
    assert not _finishes(plugin, needed // 2)


def _finishes(plugin: Plugin, fuel: int) -> bool:
    try:
        apply_plugins(SIMPLE_TARGET, [plugin], plugin.backend, fuel=fuel)
    except PluginError as exc:
        assert "used all its fuel" in str(exc)
        return False
    return True


class Stop(BaseException):
    """What a caller raises from ``on_slice`` to stop a run (like Lunatic's ``ProcessKilled``)."""


class Oops(Exception):
    """An ordinary exception raised from ``on_slice``."""


def test_on_slice_is_called_every_slice_and_may_stop_the_run(backend: str) -> None:
    """``on_slice`` is called as the plugin uses its fuel (about once per ``SLICE``); whatever
    it raises, a ``BaseException`` like a kill or an ordinary exception, stops the run at
    once, however much fuel is left, and comes out of ``apply_plugins`` as it is."""
    calls: list[int] = []
    plugin = burner(backend, 200_000)
    out = apply_plugins(SIMPLE_TARGET, [plugin], backend, on_slice=lambda: calls.append(1))
    assert seen(out, backend) == [1]
    assert len(calls) >= 3  # 200,000 iterations use several slices of 100,000
    assert SLICE == 100_000

    def stop() -> None:
        raise Stop("killed")

    spinner = make(SPIN, backend, name="spinner")
    with pytest.raises(Stop, match="killed"):
        apply_plugins(SIMPLE_TARGET, [spinner], backend, on_slice=stop)

    def oops() -> None:
        raise Oops("enough")

    with pytest.raises(Oops, match="enough"):
        apply_plugins(SIMPLE_TARGET, [spinner], backend, on_slice=oops)


@pytest.mark.parametrize("target, reason", [
    (b"\0asm\x01\0\0\0\x01\x05\x01", "the module is malformed: "),
    (b"\0asm\x01\0\0\0\x0a\x01\x00\x03\x01\x00", "the module is malformed: "),  # out of order
    (b"\0asm\x01\0\0\0\x03\x02\x01\x00", "the module is malformed: "),  # no bodies
    ("(module (func (result i32)))", ""),  # decodes, does not validate: the engine says why
    (b"junk", "not a wasm module"),
], ids=['truncated', 'order', 'no-bodies', 'invalid', 'junk'])
def test_a_malformed_or_invalid_target_is_a_compile_error(backend: str, target: Any,
                                                          reason: str) -> None:
    """The target is checked before any plugin runs (a spinning one would fail otherwise):
    ``CompileError``, not ``PluginError``."""
    spinner = make(SPIN, backend, name="spinner")
    with pytest.raises(CompileError) as info:
        apply_plugins(target, [spinner], backend, fuel=10_000)
    assert not isinstance(info.value, PluginError)
    assert str(info.value).startswith(reason)


def test_a_plugin_made_for_one_engine_runs_on_another(backend: str) -> None:
    """A ``Plugin`` is compiled for the engine it was made for, and again on first use for
    another; without ``backend`` ``apply_plugins`` uses the first plugin's engine."""
    others = [engine for engine in selected_backends() if engine != backend] or [backend]
    b = Blobs()
    plugin = Plugin(plugin_wat(f"(drop (call $type {b(b'')} {b(b'')}))", b), others[0])
    assert seen(apply_plugins(SIMPLE_TARGET, [plugin], backend), backend) == [0, 2]
    assert backend in repr(plugin) and others[0] in repr(plugin)
    assert seen(apply_plugins(SIMPLE_TARGET, [plugin]), backend) == [0, 2]


def test_plugins_run_from_several_threads_at_once(backend: str) -> None:
    """The same ``Plugin`` objects serve several threads at once (Lunatic processes add modules
    concurrently): every run gets its own instance, editor and budget."""
    b = Blobs()
    plugins = [make(f"(drop (call $type {b(b'')} {b(b'')}))", backend, b),
               burner(backend, 20_000, "burn")]
    results: list[tuple[list[int], list[int]]] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(3):
                out = apply_plugins(SIMPLE_TARGET, plugins, backend)
                results.append((seen(out, backend), seen(out, backend, "burn")))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert results == [([0, 2], [1])] * 12


# -- 5. nothing is left over after a failure ----------------------------------------------------


PICKY_FUEL = 300_000
"""Plenty for the picky plugin's few calls, little enough to end its spinning at once."""


def test_the_same_plugins_work_again_after_every_kind_of_failure(backend: str) -> None:
    """One chain of ``Plugin`` objects fails on one module in each documented way (which way
    depends on the type index the target's type count gives it), then works on the next, then
    fails again: no fuel, instance, error table or module state is carried over."""
    b = Blobs()
    dup_name = b"good"  # the second plugin's export: taken when picky exports under it first
    picky_hook = f"""(local $t i32) (local $f i32)
      (local.set $t (i32.wrap_i64 (call $type {b(b'')} {b(bytes((I32,)))})))
      (if (i32.eqz (local.get $t)) (then {SPIN}))
      (if (i32.eq (local.get $t) (i32.const 1)) (then unreachable))
      (if (i32.eq (local.get $t) (i32.const 2))
        (then (drop (call $func (local.get $t) (i32.const 0) (i32.const 0) {b(END)}))))
      (if (i32.eq (local.get $t) (i32.const 3))
        (then (drop (call $type {b(bytes((0x40,)))} {b(b'')})) unreachable))
      (if (i32.eq (local.get $t) (i32.const 4)) (then (call $export {b(b"x")} (i32.const 99))))
      ;; otherwise (and after case 2): a function returning $t, exported as "picky"
      (i32.store8 (i32.const 0x601) (local.get $t))
      (local.set $f (i32.wrap_i64
        (call $func (local.get $t) (i32.const 0) (i32.const 0) (i32.const 0x600) (i32.const 3))))
      (call $export {b(b"picky")} (local.get $f))
      (if (i32.eq (local.get $t) (i32.const 5)) (then (call $export {b(dup_name)} (local.get $f))))
      """
    picky = make(picky_hook, backend, b, report=False, name="picky",
                 extra='(data (i32.const 0x600) "\\41\\00\\0b")')
    b2 = Blobs()
    good = make(f"""(call $export {b2(dup_name)} (i32.wrap_i64 (call $func
        (i32.wrap_i64 (call $type {b2(b'')} {b2(bytes((I32,)))}))
        (i32.const 0) (i32.const 0) {b2(i32_const(-1) + END)})))""", backend, b2, report=False,
                name="good")
    failures = [
        "plugin picky (1 of 2): lunatic_create_module_hook trapped: used all its fuel (300,000)",
        "plugin picky (1 of 2): lunatic_create_module_hook trapped: unreachable",
        "plugin picky (1 of 2): the module it produced is invalid: ",
        "(its last lunatic::plugin error: add_function_type: params[0]: unknown value type "
        "byte 0x40)",
        "plugin picky (1 of 2): lunatic_create_module_hook trapped: function index 99 out of "
        "range (the module has 0 functions: 0 imported, 0 defined)",
        "plugin good (2 of 2): lunatic_create_module_hook trapped: export name 'good' already "
        "used",
    ]

    def works(types: int) -> None:
        out = apply_plugins(types_target(types), [picky, good], backend, fuel=PICKY_FUEL)
        inst = instance_of(out, backend)
        assert (inst.exports.picky(), inst.exports.good()) == (types, -1)
        inst.close()

    for _ in range(2):
        for types, message in enumerate(failures):
            with pytest.raises(PluginError) as info:
                apply_plugins(types_target(types), [picky, good], backend, fuel=PICKY_FUEL)
            assert message in str(info.value), (types, str(info.value))
            works(10 + types)
        with pytest.raises(Stop):
            apply_plugins(types_target(0), [picky, good], backend, on_slice=_raise_stop)
        works(20)


def _raise_stop() -> None:
    raise Stop("killed")


PLUGIN_IMPORTS_WAT = Path(__file__).resolve().parent.parent / "wat" / "plugin_imports.wat"


def test_plugin_imports_wat_is_the_plugin_abi(backend: str) -> None:
    """``wat/plugin_imports.wat``, written by hand from spec section 7.10, imports exactly
    the three ``lunatic::plugin`` functions with the signatures ``ModuleEditor`` has, and is
    accepted as a plugin that changes nothing."""
    wasm = to_wasm_bytes(PLUGIN_IMPORTS_WAT.read_text())
    compiled = funk.compile(wasm, backend)
    declared = {(imp.namespace, imp.name, imp.params, imp.results) for imp in compiled.imports}
    assert len(declared) == len(compiled.imports) == 3
    expected = {(fn.namespace, fn.name, fn.wasm_params, fn.wasm_results)
                for fn in funk.functions_of(ModuleEditor)}
    assert declared == expected
    plugin = Plugin(wasm, backend)
    target = to_wasm_bytes(SIMPLE_TARGET)
    assert apply_plugins(target, [plugin], backend) == target
