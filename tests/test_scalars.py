"""Scalars: i32/i64/f32/f64 pass unchanged; i8/u8/i16/u16 are masked and sign-extended."""

from __future__ import annotations

import math
import struct

import funk
from tests.guest import guest
from tests.hosts import TestHost as Host

WAT = guest(
    '(func (export "add") (param i32 i32) (result i32)'
    '  (call $test.add (local.get 0) (local.get 1)))',
    '(func (export "add64") (param i64 i64) (result i64)'
    '  (call $test.add64 (local.get 0) (local.get 1)))',
    '(func (export "mul_f") (param f32 f64) (result f64)'
    '  (call $test.mul_f (local.get 0) (local.get 1)))',
    '(func (export "half_f32") (param f32) (result f32)'
    '  (call $test.half_f32 (local.get 0)))',
    '(func (export "echo_i32") (param i32) (result i32) (call $test.echo_i32 (local.get 0)))',
    '(func (export "echo_i64") (param i64) (result i64) (call $test.echo_i64 (local.get 0)))',
    '(func (export "small") (param i32 i32 i32 i32) (result i32)'
    '  (call $test.small (local.get 0) (local.get 1) (local.get 2) (local.get 3)))',
    # the guest adds 1 to the host's i32 result: the value really is an i32
    '(func (export "add_plus_one") (param i32 i32) (result i32)'
    '  (i32.add (call $test.add (local.get 0) (local.get 1)) (i32.const 1)))',
    # i64 result compared inside the guest
    '(func (export "add64_is") (param i64 i64 i64) (result i32)'
    '  (i64.eq (call $test.add64 (local.get 0) (local.get 1)) (local.get 2)))',
)


def f32(x: float) -> float:
    """``x`` rounded to single precision."""
    return struct.unpack("<f", struct.pack("<f", x))[0]


def make(backend: str) -> tuple[funk.Instance, Host]:
    host = Host()
    return funk.instantiate(WAT, [host], backend=backend), host


def test_i32_add(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.add(2, 3) == 5
    assert inst.exports.add(-7, 3) == -4
    assert inst.exports.add_plus_one(40, 1) == 42


def test_i32_wraps_in_host_and_guest(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.add(2**31 - 1, 1) == -2**31
    assert inst.exports.add(-2**31, -1) == 2**31 - 1
    assert inst.exports.add_plus_one(2**31 - 2, 0) == 2**31 - 1


def test_i32_extremes_round_trip(backend: str) -> None:
    inst, host = make(backend)
    for v in (0, 1, -1, 2**31 - 1, -2**31, 123456789):
        assert inst.exports.echo_i32(v) == v
        assert host.seen["i32"] == v


def test_i64_passing(backend: str) -> None:
    inst, host = make(backend)
    big = 0x1234_5678_9ABC_DEF0
    assert inst.exports.add64(big, 1) == big + 1
    assert inst.exports.add64(2**63 - 1, 1) == -2**63
    assert inst.exports.add64_is(2**40, -2**41, -2**40) == 1
    for v in (-1, -2**63, 2**63 - 1, 2**32, -2**32 - 5):
        assert inst.exports.echo_i64(v) == v
        assert host.seen["i64"] == v


def test_i64_seen_signed_by_host(backend: str) -> None:
    inst, host = make(backend)
    inst.exports.echo_i64(-5)
    assert host.seen["i64"] == -5  # i64 is signed: no unsigned reinterpretation


def test_f32_and_f64_passing(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.mul_f(1.5, 2.25) == 3.375
    # f32 parameter: the host receives the single-precision value exactly
    assert inst.exports.mul_f(0.1, 1.0) == f32(0.1)
    assert inst.exports.mul_f(0.1, 1.0) != 0.1
    # f64 keeps full precision
    assert inst.exports.mul_f(1.0, 0.1) == 0.1


def test_f32_result(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.half_f32(3.0) == 1.5
    assert inst.exports.half_f32(-1.0) == -0.5
    # the host computes in double precision; the f32 result is rounded
    assert inst.exports.half_f32(f32(0.3)) == f32(f32(0.3) / 2)


def test_float_specials(backend: str) -> None:
    inst, _ = make(backend)
    assert math.isnan(inst.exports.mul_f(float("nan"), 1.0))
    assert inst.exports.mul_f(float("inf"), 2.0) == float("inf")
    assert inst.exports.half_f32(float("-inf")) == float("-inf")
    assert math.copysign(1.0, inst.exports.mul_f(-0.0, 1.0)) == -1.0


def test_small_ints_in_range(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.small(-128, 255, -32768, 65535) == -128 + 255 - 32768 + 65535
    assert host.seen["small"] == (-128, 255, -32768, 65535)
    assert inst.exports.small(1, 2, 3, 4) == 10
    assert host.seen["small"] == (1, 2, 3, 4)


def test_small_ints_sign_extension(backend: str) -> None:
    inst, host = make(backend)
    # the guest passes the full-width unsigned bit patterns
    inst.exports.small(0xFF, 0xFF, 0xFFFF, 0xFFFF)
    assert host.seen["small"] == (-1, 255, -1, 65535)
    inst.exports.small(0x80, 0x80, 0x8000, 0x8000)
    assert host.seen["small"] == (-128, 128, -32768, 32768)
    inst.exports.small(0x7F, 0x7F, 0x7FFF, 0x7FFF)
    assert host.seen["small"] == (127, 127, 32767, 32767)


def test_small_ints_high_bits_masked(backend: str) -> None:
    inst, host = make(backend)
    # garbage above the low 8/16 bits is ignored, as a C callee would
    assert inst.exports.small(0x12345680, 0x123456FF, 0xABCD8000, 0xFFFF1234) == (
        -128 + 255 - 32768 + 0x1234)
    assert host.seen["small"] == (-128, 255, -32768, 0x1234)
    inst.exports.small(-1, -1, -1, -1)
    assert host.seen["small"] == (-1, 255, -1, 65535)
    inst.exports.small(0x100, 0x100, 0x10000, 0x10000)
    assert host.seen["small"] == (0, 0, 0, 0)


def test_small_ints_from_guest_constants(backend: str) -> None:
    wat = guest('(func (export "run") (result i32)'
                '  (call $test.small (i32.const -129) (i32.const 511)'
                '                    (i32.const 0x18000) (i32.const -2)))')
    host = Host()
    inst = funk.instantiate(wat, [host], backend=backend)
    # -129 = 0x...FF7F -> i8 127; 511 -> u8 255; 0x18000 -> i16 -32768; -2 -> u16 65534
    assert inst.exports.run() == 127 + 255 - 32768 + 65534
    assert host.seen["small"] == (127, 255, -32768, 65534)


def test_scalar_types_of_values_seen(backend: str) -> None:
    inst, host = make(backend)
    inst.exports.small(1, 2, 3, 4)
    assert all(type(v) is int for v in host.seen["small"])
    inst.exports.echo_i64(3)
    assert type(host.seen["i64"]) is int
    assert type(inst.exports.mul_f(1.0, 2.0)) is float
