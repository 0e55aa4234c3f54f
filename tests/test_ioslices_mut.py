"""IoSlicesMut: (ptr, count) of iovec records; the host writes into guest memory."""

from __future__ import annotations

import struct
from typing import Any

import pytest

import funk
from funk.types import IoSlicesMut, u32
from tests.guest import guest
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.readonly: list[bool] = []

    def keep(self, parts: IoSlicesMut) -> u32:
        self.kept.extend(parts)
        self.readonly.extend(p.readonly for p in parts)
        return len(parts)


WAT = guest(
    '(func (export "scatter") (param i32 i32 i32) (result i32)'
    '  (call $test.scatter (local.get 0) (local.get 1) (local.get 2)))',
    # scatter, then the guest reads back the first 4 bytes of the first buffer
    '(func (export "scatter_and_load") (param i32 i32 i32) (result i32)'
    '  (drop (call $test.scatter (local.get 0) (local.get 1) (local.get 2)))'
    '  (i32.load (i32.load (local.get 0))))',
    '(func (export "keep") (param i32 i32) (result i32)'
    '  (call $probe.keep (local.get 0) (local.get 1)))',
    hosts=(Host, Probe),
)


def make(backend: str) -> tuple[funk.Instance, Host, Probe]:
    host, probe = Host(), Probe()
    return funk.instantiate(WAT, [host, probe], backend=backend), host, probe


def iovecs(inst: funk.Instance, at: int, *entries: tuple[int, int]) -> None:
    inst.memory.write(at, b"".join(struct.pack("<II", a, n) for a, n in entries))


def test_scatter_writes_each_buffer(backend: str) -> None:
    inst, _, _ = make(backend)
    inst.memory.write(999, b"\xee" * 10)
    inst.memory.write(1999, b"\xee" * 10)
    iovecs(inst, 64, (1000, 3), (2000, 4))
    assert inst.exports.scatter(64, 2, 10) == 7
    assert inst.memory.read(999, 5) == b"\xee\x0a\x0b\x0c\xee"
    assert inst.memory.read(1999, 6) == b"\xee\x0d\x0e\x0f\x10\xee"


def test_guest_reads_back(backend: str) -> None:
    inst, _, _ = make(backend)
    iovecs(inst, 64, (1000, 2), (1002, 2))
    assert inst.exports.scatter_and_load(64, 2, 1) == int.from_bytes(b"\1\2\3\4", "little")


def test_seed_is_masked_and_values_wrap(backend: str) -> None:
    inst, _, _ = make(backend)
    iovecs(inst, 64, (1000, 4))
    assert inst.exports.scatter(64, 1, 0x1FE) == 4
    assert inst.memory.read(1000, 4) == b"\xfe\xff\x00\x01"


def test_zero_and_empty_slices(backend: str) -> None:
    inst, _, _ = make(backend)
    assert inst.exports.scatter(64, 0, 5) == 0
    iovecs(inst, 64, (1000, 0), (1001, 1), (65536, 0))
    assert inst.exports.scatter(64, 3, 5) == 1
    assert inst.memory.read(1000, 3) == b"\0\5\0"


def test_views_are_writable_and_released(backend: str) -> None:
    inst, _, probe = make(backend)
    iovecs(inst, 64, (1000, 2), (2000, 3))
    assert inst.exports.keep(64, 2) == 2
    assert probe.readonly == [False, False]
    for view in probe.kept:
        with pytest.raises(ValueError):
            view[0] = 1
    assert inst.memory.read(1000, 2) == b"\0\0"


def test_buffer_out_of_bounds_traps_before_writing(backend: str) -> None:
    inst, _, _ = make(backend)
    iovecs(inst, 64, (1000, 4), (65534, 4))
    with pytest.raises(funk.Trap) as info:
        inst.exports.scatter(64, 2, 1)
    assert info.value.message == ("test.scatter: parameter 'parts[1]': range [0xfffe, 0x10002) "
                                  "is outside guest memory of 65536 bytes")
    # the first buffer was not written: the host method never ran
    assert inst.memory.read(1000, 4) == b"\0\0\0\0"


def test_array_out_of_bounds_traps(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(funk.Trap, match=r"^test.scatter: parameter 'parts': range "
                                        r"\[0xfffc, 0x10004\)"):
        inst.exports.scatter(65532, 1, 0)
