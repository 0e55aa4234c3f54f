"""Ptr[T]: an i32 address of a scalar or record, bounds-checked when the call begins."""

from __future__ import annotations

import struct

import pytest

import funk
from funk.records import record_layout
from funk.types import Ptr
from tests.guest import guest
from tests.hosts import Point, Stat
from tests.hosts import TestHost as Host

WAT = guest(
    '(func (export "store_u64") (param i32 i64) (call $test.store_u64 (local.get 0) (local.get 1)))',
    '(func (export "load_u64") (param i32) (result i64) (call $test.load_u64 (local.get 0)))',
    '(func (export "swap_point") (param i32) (call $test.swap_point (local.get 0)))',
    '(func (export "stat_at") (param i32) (result i64) (call $test.stat_at (local.get 0)))',
    # the guest stores a value, the host loads it, the guest compares
    '(func (export "guest_store_host_load") (param i32 i64) (result i32)'
    '  (i64.store (local.get 0) (local.get 1))'
    '  (i64.eq (call $test.load_u64 (local.get 0)) (local.get 1)))',
    # the host stores, the guest loads
    '(func (export "host_store_guest_load") (param i32 i64) (result i64)'
    '  (call $test.store_u64 (local.get 0) (local.get 1))'
    '  (i64.load (local.get 0)))',
)

#: Stat in C layout: u8 kind @0, 7 pad, u64 size @8, u16 mode @16, 2 pad, Point @20, 4 pad
STAT_FMT = "<B7xQH2xii4x"


def make(backend: str) -> tuple[funk.Instance, Host]:
    host = Host()
    return funk.instantiate(WAT, [host], backend=backend), host


def test_stat_layout() -> None:
    layout = record_layout(Stat)
    assert layout.size == 32 == struct.calcsize(STAT_FMT)
    assert [(f.name, f.offset) for f in layout.fields] == [
        ("kind", 0), ("size", 8), ("mode", 16), ("origin", 20)]
    assert record_layout(Point).size == 8
    assert Ptr.of(Stat).size == 32


def test_store_u64_exact_bytes(backend: str) -> None:
    inst, _ = make(backend)
    inst.memory.write(64, b"\xcc" * 24)
    inst.exports.store_u64(72, 0x0102030405060708)
    assert inst.memory.read(64, 24) == (b"\xcc" * 8 + bytes([8, 7, 6, 5, 4, 3, 2, 1])
                                        + b"\xcc" * 8)


def test_store_u64_all_ones(backend: str) -> None:
    inst, _ = make(backend)
    inst.exports.store_u64(80, -1)
    assert inst.memory.read(80, 8) == b"\xff" * 8
    assert inst.memory.unpack("<Q", 80) == (2**64 - 1,)
    inst.exports.store_u64(80, 2**63)
    assert inst.memory.read(80, 8) == b"\0" * 7 + b"\x80"


def test_load_u64(backend: str) -> None:
    inst, _ = make(backend)
    inst.memory.pack("<Q", 128, 0xDEADBEEFCAFEBABE)
    # u64 result: the guest (and so Python) receives the i64 bits
    assert inst.exports.load_u64(128) == 0xDEADBEEFCAFEBABE - 2**64
    inst.memory.pack("<Q", 128, 42)
    assert inst.exports.load_u64(128) == 42


def test_unaligned_pointer(backend: str) -> None:
    inst, _ = make(backend)
    inst.exports.store_u64(1001, 0x1122334455667788)
    assert inst.memory.read(1000, 10) == b"\0\x88\x77\x66\x55\x44\x33\x22\x11\0"
    assert inst.exports.load_u64(1001) == 0x1122334455667788


def test_round_trips_with_the_guest(backend: str) -> None:
    inst, _ = make(backend)
    for v in (0, 1, -1, 2**62, -2**63):
        assert inst.exports.guest_store_host_load(256, v) == 1
        assert inst.exports.host_store_guest_load(512, v) == v


def test_pointer_at_end_of_memory(backend: str) -> None:
    inst, _ = make(backend)
    inst.exports.store_u64(65536 - 8, 7)
    assert inst.memory.read(65536 - 8, 8) == b"\7" + b"\0" * 7


def test_pointer_out_of_bounds_traps(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.load_u64(65536 - 4)
    assert info.value.message == ("test.load_u64: parameter 'p': range [0xfffc, 0x10004) "
                                  "is outside guest memory of 65536 bytes")
    assert info.value.function == "test.load_u64"
    with pytest.raises(funk.Trap, match=r"^test.store_u64: parameter 'p': range \[0xffffffff, "):
        inst.exports.store_u64(-1, 1)


def test_swap_point(backend: str) -> None:
    inst, _ = make(backend)
    inst.memory.pack("<iii", 300, -5, 7, 99)
    inst.exports.swap_point(300)
    assert inst.memory.unpack("<iii", 300) == (7, -5, 99)
    assert inst.memory.read(300, 8) == struct.pack("<ii", 7, -5)


def test_point_out_of_bounds(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(funk.Trap, match=r"parameter 'p': range \[0xfffc, 0x10004\)"):
        inst.exports.swap_point(65532)


def test_stat_read_ignores_padding(backend: str) -> None:
    inst, host = make(backend)
    raw = bytearray(b"\xee" * 32)  # padding bytes hold garbage
    raw[0] = 3
    raw[8:16] = (2**40 + 5).to_bytes(8, "little")
    raw[16:18] = (0o755).to_bytes(2, "little")
    raw[20:24] = (-9).to_bytes(4, "little", signed=True)
    raw[24:28] = (11).to_bytes(4, "little", signed=True)
    inst.memory.write(1024, bytes(raw))
    assert inst.exports.stat_at(1024) == 2**40 + 5
    assert host.seen["stat"] == Stat(kind=3, size=2**40 + 5, mode=0o755, origin=Point(-9, 11))
    assert isinstance(host.seen["stat"].origin, Point)
    # reading does not modify memory
    assert inst.memory.read(1024, 32) == bytes(raw)


def test_stat_matches_struct_format(backend: str) -> None:
    inst, host = make(backend)
    inst.memory.write(2048, struct.pack(STAT_FMT, 255, 2**64 - 1, 0xFFFF, -2**31, 2**31 - 1))
    assert inst.exports.stat_at(2048) == -1  # u64 max as the guest's i64
    assert host.seen["stat"] == Stat(255, 2**64 - 1, 0xFFFF, Point(-2**31, 2**31 - 1))


def test_stat_needs_all_32_bytes(backend: str) -> None:
    inst, host = make(backend)
    # 28 bytes would hold every field, but the record (with tail padding) is 32
    with pytest.raises(funk.Trap) as info:
        inst.exports.stat_at(65536 - 28)
    assert info.value.message == ("test.stat_at: parameter 'p': range [0xffe4, 0x10004) "
                                  "is outside guest memory of 65536 bytes")
    assert "stat" not in host.seen
