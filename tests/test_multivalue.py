"""MultiValue[...] results: several wasm results, and multi-value exports seen from Python."""

from __future__ import annotations

import pytest

import funk
from funk.types import MultiValue, f32, i32, i64
from tests.guest import guest
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.result: object = (1, 2)

    def give(self) -> MultiValue[i32, i64]:
        return self.result  # type: ignore[return-value]

    def floats(self, x: f32) -> MultiValue[f32, i32]:
        return x * 2, int(x)


WAT = guest(
    '(func (export "pair") (param i32) (result i32 i64) (call $test.pair (local.get 0)))',
    '(func (export "triple") (result f64 i32 i32) (call $test.triple))',
    # the guest consumes both values: i64(first) + second
    '(func (export "pair_sum") (param i32) (result i64)'
    '  (local $a i32) (local $b i64)'
    '  (call $test.pair (local.get 0))'
    '  (local.set $b) (local.set $a)'
    '  (i64.add (i64.extend_i32_s (local.get $a)) (local.get $b)))',
    # a multi-value export that does not call the host
    '(func (export "consts") (result i32 i64 f32 f64)'
    '  (i32.const -1) (i64.const 0x7fffffffffffffff) (f32.const 1.5) (f64.const -2.25))',
    '(func (export "swap") (param i32 i64) (result i64 i32) (local.get 1) (local.get 0))',
    '(func (export "give") (result i32 i64) (call $probe.give))',
    '(func (export "floats") (param f32) (result f32 i32) (call $probe.floats (local.get 0)))',
    hosts=(Host, Probe),
)


def make(backend: str) -> tuple[funk.Instance, Probe]:
    probe = Probe()
    return funk.instantiate(WAT, [Host(), probe], backend=backend), probe


def test_signatures() -> None:
    sigs = {f.name: f.signature for f in funk.functions_of(Host)}
    assert sigs["pair"] == "(i32) -> (i32, i64)"
    assert sigs["triple"] == "() -> (f64, i32, i32)"


def test_pair(backend: str) -> None:
    inst, _ = make(backend)
    result = inst.exports.pair(5)
    assert result == (6, 5 * 2**40)
    assert type(result) is tuple
    assert inst.exports.pair(-3) == (-2, -3 * 2**40)


def test_pair_consumed_by_guest(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.pair_sum(2) == 3 + 2 * 2**40
    assert inst.exports.pair_sum(-1) == 0 - 2**40


def test_triple_with_custom_type(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.triple() == (0.5, -7, 0x010203)


def test_pure_guest_multi_value_export(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.consts() == (-1, 2**63 - 1, 1.5, -2.25)
    assert inst.exports.swap(7, -8) == (-8, 7)
    assert inst.exports.consts.results == ("i32", "i64", "f32", "f64")


def test_f32_multi_value(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.floats(2.5) == (5.0, 2)


def test_unsigned_spelling_in_multi_value(backend: str) -> None:
    inst, probe = make(backend)
    probe.result = (0xFFFFFFFF, 2**64 - 1)
    assert inst.exports.give() == (-1, -1)


@pytest.mark.parametrize("bad", [5, (1,), (1, 2, 3), None])
def test_wrong_arity_traps(backend: str, bad: object) -> None:
    inst, probe = make(backend)
    probe.result = bad
    with pytest.raises(funk.Trap) as info:
        inst.exports.give()
    assert info.value.message.startswith("probe.give: ")
    assert repr(bad) in info.value.message
    assert info.value.function == "probe.give"
    probe.result = (1, 2)
    assert inst.exports.give() == (1, 2)  # still usable


def test_out_of_range_value_traps(backend: str) -> None:
    inst, probe = make(backend)
    probe.result = (2**32, 0)
    with pytest.raises(funk.Trap) as info:
        inst.exports.give()
    assert info.value.message.startswith("probe.give: host function returned ")
    assert "4294967296" in info.value.message


def test_wrong_arity_message_identical_on_both_engines() -> None:
    messages = []
    for backend in ("wasmtime", "wasmer"):
        inst, probe = make(backend)
        probe.result = (1, 2, 3)
        with pytest.raises(funk.Trap) as info:
            inst.exports.give()
        messages.append(info.value.message)
    assert messages[0] == messages[1]
