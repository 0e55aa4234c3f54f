"""MutBytes: a writable view of guest memory itself (no copy); released after the call."""

from __future__ import annotations

from typing import Any

import pytest

import funk
from funk import Caller
from funk.types import MutBytes, u32
from tests.guest import guest
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.readonly: list[bool] = []

    def poke(self, caller: Caller, buf: MutBytes, addr: u32) -> u32:
        """Write through the view, then read guest memory directly at ``addr``."""
        self.readonly.append(buf.readonly)
        buf[0] = 0x5A
        seen = caller.memory.read(addr, 1)[0]
        buf[0] = 0x6B
        return seen * 256 + caller.memory.read(addr, 1)[0]

    def keep(self, buf: MutBytes) -> None:
        self.kept.append(buf)


WAT = guest(
    '(func (export "fill") (param i32 i32 i32) (call $test.fill (local.get 0) (local.get 1) (local.get 2)))',
    # fill, then the guest reads back one i32 from the filled range
    '(func (export "fill_and_load") (param i32 i32 i32) (result i32)'
    '  (call $test.fill (local.get 0) (local.get 1) (local.get 2))'
    '  (i32.load (local.get 0)))',
    # upper() into out, then the guest loads the first 4 bytes written
    '(func (export "upper_and_load") (param i32 i32 i32 i32) (result i32)'
    '  (drop (call $test.upper (local.get 0) (local.get 1) (local.get 2) (local.get 3)))'
    '  (i32.load (local.get 2)))',
    '(func (export "poke") (param i32 i32) (result i32)'
    '  (call $probe.poke (local.get 0) (local.get 1) (local.get 0)))',
    '(func (export "keep") (param i32 i32) (call $probe.keep (local.get 0) (local.get 1)))',
    '(func (export "load8") (param i32) (result i32) (i32.load8_u (local.get 0)))',
    hosts=(Host, Probe),
)


def make(backend: str) -> tuple[funk.Instance, Host, Probe]:
    host, probe = Host(), Probe()
    return funk.instantiate(WAT, [host, probe], backend=backend), host, probe


def test_fill_visible_to_guest(backend: str) -> None:
    inst, _, _ = make(backend)
    assert inst.exports.fill_and_load(100, 16, 0xAB) == -0x54545455  # 0xABABABAB as i32
    assert inst.memory.read(100, 16) == b"\xab" * 16
    # bytes around the range are untouched
    assert inst.memory.read(99, 1) == b"\0"
    assert inst.memory.read(116, 1) == b"\0"


def test_fill_byte_is_masked_to_u8(backend: str) -> None:
    inst, _, _ = make(backend)
    inst.exports.fill(200, 3, 0x1FF)
    assert inst.memory.read(200, 4) == b"\xff\xff\xff\0"
    assert inst.exports.load8(200) == 0xFF


def test_fill_empty_range(backend: str) -> None:
    inst, _, _ = make(backend)
    inst.memory.write(300, b"xyz")
    inst.exports.fill(300, 0, 1)
    assert inst.memory.read(300, 3) == b"xyz"


def test_fill_up_to_end_of_memory(backend: str) -> None:
    inst, _, _ = make(backend)
    inst.exports.fill(65536 - 4, 4, 7)
    assert inst.memory.read(65536 - 5, 5) == b"\0\7\7\7\7"


def test_writes_go_straight_to_guest_memory(backend: str) -> None:
    inst, _, probe = make(backend)
    # the host sees its own write in guest memory before the call returns: no copy
    assert inst.exports.poke(4000, 8) == 0x5A * 256 + 0x6B
    assert probe.readonly == [False]
    assert inst.exports.load8(4000) == 0x6B


def test_upper_result_read_by_guest(backend: str) -> None:
    inst, _, _ = make(backend)
    inst.memory.write(500, b"wasm!")
    assert inst.exports.upper_and_load(500, 5, 600, 16) == int.from_bytes(b"WASM", "little")
    assert inst.memory.read(600, 6) == b"WASM!\0"


def test_kept_view_released(backend: str) -> None:
    inst, _, probe = make(backend)
    inst.exports.keep(700, 4)
    (kept,) = probe.kept
    with pytest.raises(ValueError):
        kept[0] = 1
    with pytest.raises(ValueError):
        bytes(kept)
    assert inst.memory.read(700, 4) == b"\0\0\0\0"


def test_out_of_bounds_mutbytes_traps(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.fill(65535, 2, 1)
    assert info.value.message == ("test.fill: parameter 'buf': range [0xffff, 0x10001) "
                                  "is outside guest memory of 65536 bytes")
    assert inst.memory.read(65535, 1) == b"\0"  # nothing was written
