"""WasmType subclasses: user lowerings that may consult the host object's state."""

from __future__ import annotations

from typing import Any

import pytest

import funk
from funk import Caller, Trap
from funk.types import WasmType, i32
from tests.guest import guest
from tests.hosts import Color
from tests.hosts import TestHost as Host


class Ratio(WasmType):
    """Two wasm values (numerator i32, denominator i64) <-> a (num, den) tuple."""

    wasm_params = ("i32", "i64")
    wasm_results = ("i32", "i64")

    @classmethod
    def from_wasm(cls, host: Any, caller: Caller, *values: Any) -> Any:
        num, den = values
        if den == 0:
            raise Trap("zero denominator")
        host.lowered.append(values)
        return num, den

    @classmethod
    def to_wasm(cls, host: Any, caller: Caller, value: Any) -> Any:
        return value


class Scaled(WasmType):
    """An f64 scaled by the host's ``scale`` on the way in."""

    wasm_params = ("f64",)
    wasm_results = ("f64",)

    @classmethod
    def from_wasm(cls, host: Any, caller: Caller, *values: Any) -> Any:
        return values[0] * host.scale

    @classmethod
    def to_wasm(cls, host: Any, caller: Caller, value: Any) -> Any:
        return value / host.scale


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self, scale: float = 2.0) -> None:
        self.scale = scale
        self.lowered: list[Any] = []

    def invert(self, r: Ratio) -> Ratio:
        num, den = r
        return int(den), num

    def ratio_num(self, r: Ratio, extra: i32) -> i32:
        return r[0] + extra

    def scaled(self, x: Scaled) -> Scaled:
        return x + 1.0


WAT = guest(
    '(func (export "mix") (param i32 i32) (result i32) (call $test.mix (local.get 0) (local.get 1)))',
    '(func (export "invert") (param i32 i64) (result i32 i64)'
    '  (call $probe.invert (local.get 0) (local.get 1)))',
    '(func (export "ratio_num") (param i32 i64 i32) (result i32)'
    '  (call $probe.ratio_num (local.get 0) (local.get 1) (local.get 2)))',
    '(func (export "scaled") (param f64) (result f64) (call $probe.scaled (local.get 0)))',
    hosts=(Host, Probe),
)


def make(backend: str, palette: int = 1 << 24) -> tuple[funk.Instance, Host, Probe]:
    host, probe = Host(), Probe()
    host.palette_size = palette
    return funk.instantiate(WAT, [host, probe], backend=backend), host, probe


def test_color_lowering_and_lifting(backend: str) -> None:
    inst, _, _ = make(backend)
    # (0x10,0x20,0x30) and (0x30,0x50,0x70) average to (0x20,0x38,0x50)
    assert inst.exports.mix(0x102030, 0x305070) == 0x203850
    assert inst.exports.mix(0xFFFFFF, 0x000000) == 0x7F7F7F
    assert inst.exports.mix(0, 0) == 0


def test_color_helpers_directly() -> None:
    host = Host()
    assert Color.from_wasm(host, None, 0x010203) == (1, 2, 3)  # type: ignore[arg-type]
    assert Color.to_wasm(host, None, (1, 2, 3)) == 0x010203  # type: ignore[arg-type]


def test_lowering_consults_host_state(backend: str) -> None:
    inst, host, _ = make(backend, palette=0x100)
    assert inst.exports.mix(0x10, 0x20) == 0x18
    with pytest.raises(funk.Trap) as info:
        inst.exports.mix(0x10, 0x100)
    assert info.value.message == "color 0x100 outside the palette"
    assert info.value.function == "test.mix"
    # state changes are seen by the next call
    host.palette_size = 0x200
    # (0,0,0x10) and (0,1,0) average to (0,0,8)
    assert inst.exports.mix(0x10, 0x100) == 0x000008


def test_negative_color_is_masked_then_rejected(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.mix(-1, 0)
    assert info.value.message == "color 0xffffffff outside the palette"


def test_each_host_object_has_its_own_palette(backend: str) -> None:
    small, _, _ = make(backend, palette=0x10)
    large, _, _ = make(backend)
    assert large.exports.mix(0x20, 0x20) == 0x20
    with pytest.raises(funk.Trap, match=r"^color 0x20 outside the palette$"):
        small.exports.mix(0x20, 0x20)


def test_trap_from_from_wasm_leaves_instance_usable(backend: str) -> None:
    inst, _, _ = make(backend, palette=0x100)
    for _ in range(3):
        with pytest.raises(funk.Trap, match="outside the palette"):
            inst.exports.mix(0x1000, 0)
        assert inst.exports.mix(2, 4) == 3


def test_two_value_lowering(backend: str) -> None:
    inst, _, probe = make(backend)
    assert inst.exports.ratio_num(3, 2**40, 4) == 7
    assert probe.lowered == [(3, 2**40)]
    # a two-value custom result becomes two wasm results
    assert inst.exports.invert(5, 9) == (9, 5)


def test_two_value_lowering_trap(backend: str) -> None:
    inst, _, probe = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.ratio_num(1, 0, 0)
    assert info.value.message == "zero denominator"
    assert info.value.function == "probe.ratio_num"
    assert probe.lowered == []


def test_float_lowering_uses_state(backend: str) -> None:
    inst, _, probe = make(backend)
    # in: 3.0 * 2 = 6.0; host adds 1 -> 7.0; out: 7.0 / 2 = 3.5
    assert inst.exports.scaled(3.0) == 3.5
    probe.scale = 4.0
    assert inst.exports.scaled(1.0) == 1.25


def test_signatures_from_custom_types() -> None:
    sigs = {f.name: f.signature for f in funk.functions_of(Probe)}
    assert sigs == {"invert": "(i32, i64) -> (i32, i64)",
                    "ratio_num": "(i32, i64, i32) -> i32",
                    "scaled": "(f64) -> f64"}
    assert {f.name: f.signature for f in funk.functions_of(Host)}["mix"] == "(i32, i32) -> i32"
