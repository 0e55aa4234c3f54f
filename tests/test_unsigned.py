"""u32/u64: the same bits as i32/i64, seen unsigned by the host.

The guest passes -1 and the host sees 0xFFFFFFFF; the host returns 2**32-1
and the guest sees -1 as an i32.  Export arguments accept both spellings.
"""

from __future__ import annotations

import pytest

import funk
from tests.guest import guest
from tests.hosts import TestHost as Host

WAT = guest(
    '(func (export "echo_u32") (param i32) (result i32) (call $test.echo_u32 (local.get 0)))',
    '(func (export "echo_u64") (param i64) (result i64) (call $test.echo_u64 (local.get 0)))',
    # guest-side constants: -1 passed, result compared with -1 inside the guest
    '(func (export "u32_minus_one_is_minus_one") (result i32)'
    '  (i32.eq (call $test.echo_u32 (i32.const -1)) (i32.const -1)))',
    '(func (export "u64_minus_one_is_minus_one") (result i32)'
    '  (i64.eq (call $test.echo_u64 (i64.const -1)) (i64.const -1)))',
    # the result is negative as a signed i32 inside the guest
    '(func (export "u32_result_negative") (param i32) (result i32)'
    '  (i32.lt_s (call $test.echo_u32 (local.get 0)) (i32.const 0)))',
    '(func (export "u64_result_negative") (param i64) (result i32)'
    '  (i64.lt_s (call $test.echo_u64 (local.get 0)) (i64.const 0)))',
    '(func (export "echo_i32") (param i32) (result i32) (call $test.echo_i32 (local.get 0)))',
)


def make(backend: str) -> tuple[funk.Instance, Host]:
    host = Host()
    return funk.instantiate(WAT, [host], backend=backend), host


def test_guest_minus_one_is_u32_max_in_host(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.u32_minus_one_is_minus_one() == 1
    assert host.seen["u32"] == 0xFFFFFFFF


def test_guest_minus_one_is_u64_max_in_host(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.u64_minus_one_is_minus_one() == 1
    assert host.seen["u64"] == 0xFFFFFFFFFFFFFFFF


def test_high_bit_values_seen_unsigned(backend: str) -> None:
    inst, host = make(backend)
    inst.exports.echo_u32(-2**31)
    assert host.seen["u32"] == 2**31
    inst.exports.echo_u64(-2**63)
    assert host.seen["u64"] == 2**63
    inst.exports.echo_u32(-2)
    assert host.seen["u32"] == 0xFFFFFFFE


def test_small_values_unchanged(backend: str) -> None:
    inst, host = make(backend)
    for v in (0, 1, 2**31 - 1):
        assert inst.exports.echo_u32(v) == v
        assert host.seen["u32"] == v
    for v in (0, 7, 2**63 - 1):
        assert inst.exports.echo_u64(v) == v
        assert host.seen["u64"] == v


def test_host_u32_max_is_guest_minus_one(backend: str) -> None:
    inst, host = make(backend)
    # the host returns what it saw (0xFFFFFFFF); Python gets the i32 value back
    assert inst.exports.echo_u32(-1) == -1
    assert host.seen["u32"] == 2**32 - 1
    assert inst.exports.u32_result_negative(-1) == 1
    assert inst.exports.u32_result_negative(2**31) == 1
    assert inst.exports.u32_result_negative(2**31 - 1) == 0


def test_host_u64_max_is_guest_minus_one(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.echo_u64(-1) == -1
    assert host.seen["u64"] == 2**64 - 1
    assert inst.exports.u64_result_negative(2**63) == 1
    assert inst.exports.u64_result_negative(2**63 - 1) == 0


@pytest.mark.parametrize("unsigned, signed", [(0xFFFFFFFF, -1), (0x80000000, -2**31),
                                              (0xDEADBEEF, 0xDEADBEEF - 2**32)])
def test_export_accepts_both_spellings_i32(backend: str, unsigned: int, signed: int) -> None:
    inst, host = make(backend)
    assert inst.exports.echo_u32(unsigned) == signed
    assert host.seen["u32"] == unsigned
    assert inst.exports.echo_u32(signed) == signed
    assert host.seen["u32"] == unsigned
    # an i32 host parameter sees the signed spelling of the same bits
    assert inst.exports.echo_i32(unsigned) == signed
    assert host.seen["i32"] == signed


@pytest.mark.parametrize("unsigned, signed", [(2**64 - 1, -1), (2**63, -2**63)])
def test_export_accepts_both_spellings_i64(backend: str, unsigned: int, signed: int) -> None:
    inst, host = make(backend)
    assert inst.exports.echo_u64(unsigned) == signed
    assert host.seen["u64"] == unsigned
    assert inst.exports.echo_u64(signed) == signed
    assert host.seen["u64"] == unsigned


@pytest.mark.parametrize("value", [2**32, -2**31 - 1])
def test_export_rejects_out_of_range_i32(backend: str, value: int) -> None:
    inst, host = make(backend)
    with pytest.raises(OverflowError, match=r"export echo_u32: argument 0 \(-?\d+\) does not fit i32"):
        inst.exports.echo_u32(value)
    assert "u32" not in host.seen


@pytest.mark.parametrize("value", [2**64, -2**63 - 1])
def test_export_rejects_out_of_range_i64(backend: str, value: int) -> None:
    inst, host = make(backend)
    with pytest.raises(OverflowError, match="does not fit i64"):
        inst.exports.echo_u64(value)
    assert "u64" not in host.seen


def test_export_rejects_non_int(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(TypeError, match="argument 0 must be an int for i32, not float"):
        inst.exports.echo_u32(1.0)
    with pytest.raises(TypeError, match="takes 1 arguments"):
        inst.exports.echo_u32(1, 2)
