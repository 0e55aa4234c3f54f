"""tuple[...] results: the first is returned, the others written through out-pointers."""

from __future__ import annotations

import struct
from typing import Union

import pytest

import funk
from funk.types import u8, u32
from tests.guest import guest
from tests.hosts import Point, Stat, Status
from tests.hosts import TestHost as Host

#: Stat in C layout: u8 kind @0, 7 pad, u64 size @8, u16 mode @16, 2 pad, Point @20, 4 pad
STAT_FMT = "<B7xQH2xii4x"
SENTINEL = b"\xde\xad\xbe\xef"


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.called = 0

    def too_big(self, v: u32) -> tuple[Status, u8]:
        self.called += 1
        return Status.ok, v


WAT = guest(
    '(func (export "divmod") (param i32 i32 i32 i32) (result i32)'
    '  (call $test.divmod (local.get 0) (local.get 1) (local.get 2) (local.get 3)))',
    '(func (export "make_stat") (param i64 i32) (result i32)'
    '  (call $test.make_stat (local.get 0) (local.get 1)))',
    '(func (export "wide") (param i32 i32 i32) (result i64)'
    '  (call $test.wide (local.get 0) (local.get 1) (local.get 2)))',
    # the guest computes q*b + r from the out-pointers it passed: 8 and 12
    '(func (export "divmod_check") (param i32 i32) (result i32)'
    '  (if (call $test.divmod (local.get 0) (local.get 1) (i32.const 8) (i32.const 12))'
    '    (then (return (i32.const -1))))'
    '  (i32.add (i32.mul (i32.load (i32.const 8)) (local.get 1)) (i32.load (i32.const 12))))',
    '(func (export "too_big") (param i32 i32) (result i32)'
    '  (call $probe.too_big (local.get 0) (local.get 1)))',
    hosts=(Host, Probe),
)


def make(backend: str) -> funk.Instance:
    return funk.instantiate(WAT, [Host(), Probe()], backend=backend)


def test_signatures() -> None:
    sigs = {f.name: f.signature for f in funk.functions_of(Host)}
    assert sigs["divmod"] == "(i32, i32, i32, i32) -> i32"
    assert sigs["make_stat"] == "(i64, i32) -> i32"
    assert sigs["wide"] == "(i32, i32, i32) -> i64"
    assert sigs["open_two"] == "(i32, i32, i32) -> i32"


def test_divmod(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.divmod(17, 5, 100, 200) == Status.ok
    assert inst.memory.unpack("<I", 100) == (3,)
    assert inst.memory.unpack("<I", 200) == (2,)


def test_divmod_unsigned_operands(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.divmod(-1, 2, 100, 104) == Status.ok
    assert inst.memory.read(100, 8) == struct.pack("<II", 0x7FFFFFFF, 1)


def test_divmod_in_guest(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.divmod_check(1234567, 89) == 1234567
    assert inst.memory.unpack("<II", 8) == (1234567 // 89, 1234567 % 89)
    assert inst.exports.divmod_check(5, 0) == -1


def test_status_only_leaves_out_pointers_untouched(backend: str) -> None:
    inst = make(backend)
    inst.memory.write(100, SENTINEL * 2)
    inst.memory.write(200, SENTINEL)
    assert inst.exports.divmod(10, 0, 100, 200) == Status.bad_input
    assert inst.memory.read(100, 8) == SENTINEL * 2
    assert inst.memory.read(200, 4) == SENTINEL


def test_out_pointers_written_exactly(backend: str) -> None:
    inst = make(backend)
    inst.memory.write(96, SENTINEL * 4)
    assert inst.exports.divmod(7, 2, 100, 104) == Status.ok
    assert inst.memory.read(96, 16) == SENTINEL + struct.pack("<II", 3, 1) + SENTINEL


def test_out_pointer_out_of_bounds_traps(backend: str) -> None:
    inst = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.divmod(7, 2, 100, 65534)
    assert info.value.message == ("test.divmod: parameter 'result2': range [0xfffe, 0x10002) "
                                  "is outside guest memory of 65536 bytes")
    assert inst.memory.read(100, 4) == b"\0\0\0\0"  # checked before anything is written


def test_make_stat_record_out(backend: str) -> None:
    inst = make(backend)
    inst.memory.write(1024 - 4, b"\xee" * 40)
    assert inst.exports.make_stat(2**40 + 3, 1024) == Status.ok
    raw = inst.memory.read(1024, 32)
    assert raw == struct.pack(STAT_FMT, 7, 2**40 + 3, 0o644, -1, 2)
    assert raw[0] == 7 and raw[1:8] == b"\0" * 7          # kind, padding zeroed
    assert raw[8:16] == (2**40 + 3).to_bytes(8, "little")  # size
    assert raw[16:18] == (0o644).to_bytes(2, "little")     # mode
    assert raw[20:24] == b"\xff\xff\xff\xff"               # origin.x = -1
    assert raw[24:28] == (2).to_bytes(4, "little")         # origin.y
    # bytes around the record are untouched
    assert inst.memory.read(1020, 4) == b"\xee" * 4
    assert inst.memory.read(1056, 4) == b"\xee" * 4


def test_make_stat_u64_max(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.make_stat(-1, 2048) == Status.ok
    assert inst.memory.read(2048 + 8, 8) == b"\xff" * 8


def test_make_stat_needs_room_for_the_whole_record(backend: str) -> None:
    inst = make(backend)
    with pytest.raises(funk.Trap, match=r"^test.make_stat: parameter 'result1': range "
                                        r"\[0xfff0, 0x10010\)"):
        inst.exports.make_stat(1, 65536 - 16)


def test_wide_outs(backend: str) -> None:
    inst = make(backend)
    inst.memory.write(300, b"\xcc" * 16)
    inst.memory.write(400, b"\xcc" * 4)
    assert inst.exports.wide(3, 300, 400) == 3 * 2**33
    assert inst.memory.read(300, 16) == b"\xff" * 8 + b"\xcc" * 8  # u64 2**64-1
    assert inst.memory.read(400, 4) == b"\xab\xcc\xcc\xcc"          # u8 writes one byte


def test_wide_negative_i64_first(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.wide(-5, 300, 400) == -5 * 2**33


def test_wide_u8_at_last_byte(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.wide(1, 300, 65535) == 2**33
    assert inst.memory.read(65535, 1) == b"\xab"


def test_out_value_that_does_not_fit_traps(backend: str) -> None:
    inst = make(backend)
    inst.memory.write(500, b"\xee")
    with pytest.raises(funk.Trap) as info:
        inst.exports.too_big(300, 500)
    assert info.value.message.startswith("probe.too_big: ")
    assert "300" in info.value.message
    assert info.value.function == "probe.too_big"
    assert inst.exports.too_big(255, 500) == Status.ok
    assert inst.memory.read(500, 1) == b"\xff"


def test_out_value_trap_identical_on_both_engines() -> None:
    messages = []
    for backend in ("wasmtime", "wasmer"):
        with pytest.raises(funk.Trap) as info:
            make(backend).exports.too_big(300, 500)
        messages.append(info.value.message)
    assert messages[0] == messages[1]


def test_point_record_class_usable() -> None:
    assert Stat(1, 2, 3, Point(4, 5)).origin == Point(4, 5)


def test_union_spelling_is_the_same_spill(backend: str) -> None:
    """``tuple[A, B] | A`` (what a type checker wants) means ``tuple[A, B]``."""
    @funk.host_functions(namespace="union")
    class Typed:
        def half(self, v: u32) -> Union[tuple[Status, u32], Status]:  # noqa: UP007
            return Status.bad_input if v % 2 else (Status.ok, v // 2)

        def third(self, v: u32) -> tuple[Status, u32] | Status:
            return Status.bad_input if v % 3 else (Status.ok, v // 3)

    sigs = {f.name: f.signature for f in funk.functions_of(Typed)}
    assert sigs == {"half": "(i32, i32) -> i32", "third": "(i32, i32) -> i32"}
    wat = ('(module (import "union" "half" (func $h (param i32 i32) (result i32)))'
           '(import "union" "third" (func $t (param i32 i32) (result i32)))'
           '(memory (export "memory") 1)'
           '(func (export "half") (param i32 i32) (result i32) (call $h (local.get 0) (local.get 1)))'
           '(func (export "third") (param i32 i32) (result i32) (call $t (local.get 0) (local.get 1))))')
    inst = funk.instantiate(wat, [Typed()], backend=backend)
    inst.memory.write(16, SENTINEL)
    assert inst.exports.half(7, 16) == Status.bad_input
    assert inst.memory.read(16, 4) == SENTINEL
    assert inst.exports.half(10, 16) == Status.ok
    assert inst.memory.unpack("<I", 16) == (5,)
    assert inst.exports.third(9, 16) == Status.ok
    assert inst.memory.unpack("<I", 16) == (3,)


def test_other_unions_are_rejected() -> None:
    with pytest.raises(funk.DefinitionError, match="unsupported union"):
        @funk.host_functions(namespace="union")
        class Bad:
            def f(self, v: u32) -> u32 | None:
                return v
    with pytest.raises(funk.DefinitionError, match="unsupported union"):
        @funk.host_functions(namespace="union")
        class Mismatch:
            def f(self, v: u32) -> tuple[Status, u32] | u32:
                return v
