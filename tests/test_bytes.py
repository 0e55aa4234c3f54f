"""Bytes: a read-only memoryview of guest memory, released when the call ends."""

from __future__ import annotations

import zlib
from typing import Any

import pytest

import funk
from funk.types import Bytes, u32
from tests.guest import guest, imports_of
from tests.hosts import TestHost as Host

DATA = bytes(range(256)) * 3


@funk.host_functions(namespace="probe")
class Probe:
    """Tries to write through a Bytes view; records what happened."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.views: list[Any] = []

    def try_write(self, data: Bytes) -> u32:
        self.views.append(data)
        try:
            data[0] = 0x42
        except TypeError as exc:
            self.errors.append(exc)
        try:
            data[:] = bytes(len(data))
        except TypeError as exc:
            self.errors.append(exc)
        return len(data)

    def first_byte(self, data: Bytes) -> u32:
        return data[0]


WAT = guest(
    '(func (export "checksum") (param i32 i32) (result i32)'
    '  (call $test.checksum (local.get 0) (local.get 1)))',
    '(func (export "keep_view") (param i32 i32) (call $test.keep_view (local.get 0) (local.get 1)))',
    '(func (export "try_write") (param i32 i32) (result i32)'
    '  (call $probe.try_write (local.get 0) (local.get 1)))',
    # the guest stores a byte, then the host reads it: no stale copy
    '(func (export "store_then_read") (param i32 i32) (result i32)'
    '  (i32.store8 (local.get 0) (local.get 1))'
    '  (call $probe.first_byte (local.get 0) (i32.const 1)))',
    hosts=(Host, Probe),
    data=[(100, DATA)],
)


def make(backend: str) -> tuple[funk.Instance, Host, Probe]:
    host, probe = Host(), Probe()
    return funk.instantiate(WAT, [host, probe], backend=backend), host, probe


def u32_of(value: int) -> int:
    return value & 0xFFFFFFFF


def test_host_reads_guest_bytes(backend: str) -> None:
    inst, host, _ = make(backend)
    assert u32_of(inst.exports.checksum(100, len(DATA))) == zlib.crc32(DATA)
    assert u32_of(inst.exports.checksum(100 + 10, 20)) == zlib.crc32(DATA[10:30])
    assert host.seen["readonly"] is True


def test_empty_bytes(backend: str) -> None:
    inst, host, _ = make(backend)
    assert inst.exports.checksum(0, 0) == 0
    assert inst.exports.checksum(65536, 0) == 0
    assert host.seen["readonly"] is True


def test_writes_raise_type_error_in_host(backend: str) -> None:
    inst, _, probe = make(backend)
    assert inst.exports.try_write(100, 16) == 16
    assert len(probe.errors) == 2
    assert all(isinstance(e, TypeError) for e in probe.errors)
    assert "read-only" in str(probe.errors[0])
    # guest memory is unchanged
    assert inst.memory.read(100, 16) == DATA[:16]


def test_view_sees_current_guest_memory(backend: str) -> None:
    inst, _, _ = make(backend)
    assert inst.exports.store_then_read(5000, 0x7E) == 0x7E
    assert inst.exports.store_then_read(5000, 0x11) == 0x11


def test_kept_view_is_released_after_the_call(backend: str) -> None:
    inst, host, _ = make(backend)
    inst.exports.keep_view(100, 8)
    kept = host.seen["kept"]
    assert isinstance(kept, memoryview)
    with pytest.raises(ValueError, match="released"):
        bytes(kept)
    with pytest.raises(ValueError):
        kept[0]
    with pytest.raises(ValueError):
        len(kept)
    # the instance and its memory are unaffected
    assert inst.memory.read(100, 8) == DATA[:8]
    assert u32_of(inst.exports.checksum(100, 8)) == zlib.crc32(DATA[:8])


def test_probe_views_released_too(backend: str) -> None:
    inst, _, probe = make(backend)
    inst.exports.try_write(100, 4)
    with pytest.raises(ValueError):
        probe.views[0].tobytes()


def test_out_of_bounds_bytes_traps(backend: str) -> None:
    inst, host, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.checksum(65000, 1000)
    assert info.value.message == ("test.checksum: parameter 'data': range [0xfde8, 0x101d0) "
                                  "is outside guest memory of 65536 bytes")
    assert "readonly" not in host.seen


def test_imports_of_probe_are_generated() -> None:
    assert '(import "probe" "try_write" (func $probe.try_write (param i32 i32) (result i32)))' \
        in imports_of(Probe)
