"""IntEnum results are returned to the guest as i32."""

from __future__ import annotations

import enum

import pytest

import funk
from funk.types import i32
from tests.guest import guest
from tests.hosts import Status
from tests.hosts import TestHost as Host


class Wide(enum.IntEnum):
    minus_one = -1
    top = 0x7FFFFFFF
    all_bits = 0xFFFFFFFF


@funk.host_functions(namespace="probe")
class Probe:
    def wide(self, which: i32) -> Wide:
        return list(Wide)[which]

    def plain_int(self) -> Status:
        return 2  # type: ignore[return-value]  # an int is accepted as well

    def two(self, a: i32) -> tuple[Status, Status]:
        return Status.ok, Status(a)


WAT = guest(
    '(func (export "status") (param i32) (result i32) (call $test.status (local.get 0)))',
    '(func (export "status_is") (param i32 i32) (result i32)'
    '  (i32.eq (call $test.status (local.get 0)) (local.get 1)))',
    '(func (export "wide") (param i32) (result i32) (call $probe.wide (local.get 0)))',
    '(func (export "plain_int") (result i32) (call $probe.plain_int))',
    '(func (export "two") (param i32 i32) (result i32)'
    '  (call $probe.two (local.get 0) (local.get 1)))',
    hosts=(Host, Probe),
)


def make(backend: str) -> funk.Instance:
    return funk.instantiate(WAT, [Host(), Probe()], backend=backend)


def test_signature_is_i32() -> None:
    sigs = {f.name: f.signature for f in funk.functions_of(Host)}
    assert sigs["status"] == "(i32) -> i32"
    assert {f.name: f.signature for f in funk.functions_of(Probe)}["wide"] == "(i32) -> i32"


@pytest.mark.parametrize("member", list(Status))
def test_status_values(backend: str, member: Status) -> None:
    inst = make(backend)
    result = inst.exports.status(int(member))
    assert result == member.value
    assert type(result) is int  # a plain number reaches Python, not the enum
    assert inst.exports.status_is(int(member), member.value) == 1


def test_enum_values_at_i32_limits(backend: str) -> None:
    inst = make(backend)
    assert inst.exports.wide(0) == -1
    assert inst.exports.wide(1) == 0x7FFFFFFF
    assert inst.exports.wide(2) == -1  # 0xFFFFFFFF is the i32 -1


def test_plain_int_accepted(backend: str) -> None:
    assert make(backend).exports.plain_int() == 2


def test_invalid_enum_value_traps(backend: str) -> None:
    inst = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.status(7)
    assert info.value.message == ("test.status: host function raised ValueError: "
                                  "7 is not a valid Status")
    assert isinstance(info.value.__cause__, ValueError)


def test_enum_through_out_pointer(backend: str) -> None:
    inst = make(backend)
    inst.memory.write(800, b"\xee" * 8)
    assert inst.exports.two(2, 800) == Status.ok
    assert inst.memory.read(800, 8) == (2).to_bytes(4, "little") + b"\xee" * 4
