"""IoSlices: (ptr, count) of ciovec records; the host gets read-only views."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import pytest

import funk
from funk.types import IoSlices, u32
from tests.guest import guest
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.kept: list[Any] = []
        self.errors: list[BaseException] = []

    def keep(self, parts: IoSlices) -> u32:
        self.kept.extend(parts)
        for p in parts:
            try:
                p[0] = 1
            except (TypeError, IndexError) as exc:
                self.errors.append(exc)
        return len(parts)


WAT = guest(
    '(func (export "gather") (param i32 i32) (result i32)'
    '  (call $test.gather (local.get 0) (local.get 1)))',
    '(func (export "keep") (param i32 i32) (result i32)'
    '  (call $probe.keep (local.get 0) (local.get 1)))',
    hosts=(Host, Probe),
)


def make(backend: str) -> tuple[funk.Instance, Host, Probe]:
    host, probe = Host(), Probe()
    return funk.instantiate(WAT, [host, probe], backend=backend), host, probe


def layout(inst: funk.Instance, iov_at: int, pieces: Sequence[tuple[int, bytes]]) -> None:
    """Write ``pieces`` at their addresses and a ciovec array describing them at ``iov_at``."""
    for addr, data in pieces:
        inst.memory.write(addr, data)
    table = b"".join(struct.pack("<II", addr, len(data)) for addr, data in pieces)
    inst.memory.write(iov_at, table)


def test_gather_joins_slices_in_order(backend: str) -> None:
    inst, host, _ = make(backend)
    layout(inst, 64, [(1000, b"hello"), (2000, b", "), (1500, b"world")])
    assert inst.exports.gather(64, 3) == 12
    assert host.seen["gather"] == b"hello, world"
    assert host.seen["readonly"] is True


def test_gather_zero_slices(backend: str) -> None:
    inst, host, _ = make(backend)
    assert inst.exports.gather(64, 0) == 0
    assert host.seen["gather"] == b""
    # count 0 at the very end of memory is fine too
    assert inst.exports.gather(65536, 0) == 0


def test_gather_with_empty_slices(backend: str) -> None:
    inst, host, _ = make(backend)
    layout(inst, 64, [(1000, b""), (1100, b"abc"), (65536, b"")])
    assert inst.exports.gather(64, 3) == 3
    assert host.seen["gather"] == b"abc"


def test_gather_overlapping_slices(backend: str) -> None:
    inst, host, _ = make(backend)
    inst.memory.write(3000, b"0123456789")
    inst.memory.write(64, struct.pack("<IIII", 3000, 4, 3002, 5))
    assert inst.exports.gather(64, 2) == 9
    assert host.seen["gather"] == b"012323456"


def test_slices_are_read_only(backend: str) -> None:
    inst, _, probe = make(backend)
    layout(inst, 64, [(1000, b"abc"), (2000, b"de")])
    assert inst.exports.keep(64, 2) == 2
    assert len(probe.errors) == 2
    assert all(isinstance(e, TypeError) for e in probe.errors)
    assert inst.memory.read(1000, 3) == b"abc"
    assert inst.memory.read(2000, 2) == b"de"


def test_slices_released_after_the_call(backend: str) -> None:
    inst, _, probe = make(backend)
    layout(inst, 64, [(1000, b"abc"), (2000, b"de")])
    inst.exports.keep(64, 2)
    assert len(probe.kept) == 2
    for view in probe.kept:
        with pytest.raises(ValueError):
            bytes(view)


def test_iovec_array_out_of_bounds_traps(backend: str) -> None:
    inst, host, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.gather(65536 - 8, 2)
    assert info.value.message == ("test.gather: parameter 'parts': range [0xfff8, 0x10008) "
                                  "is outside guest memory of 65536 bytes")
    assert "gather" not in host.seen


def test_buffer_out_of_bounds_traps_naming_the_entry(backend: str) -> None:
    inst, host, _ = make(backend)
    inst.memory.write(64, struct.pack("<IIII", 1000, 4, 65530, 10))
    with pytest.raises(funk.Trap) as info:
        inst.exports.gather(64, 2)
    assert info.value.message == ("test.gather: parameter 'parts[1]': range [0xfffa, 0x10004) "
                                  "is outside guest memory of 65536 bytes")
    assert info.value.function == "test.gather"
    assert "gather" not in host.seen


def test_buffer_length_does_not_wrap(backend: str) -> None:
    inst, _, _ = make(backend)
    inst.memory.write(64, struct.pack("<II", 0xFFFFFFF0, 0x20))
    with pytest.raises(funk.Trap, match=r"parameter 'parts\[0\]': range \[0xfffffff0, "
                                        r"0x100000010\)"):
        inst.exports.gather(64, 1)


def test_huge_count_traps(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(funk.Trap, match="parameter 'parts': range"):
        inst.exports.gather(0, 0x7FFFFFFF)
