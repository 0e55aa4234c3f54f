"""Exceptions other than Trap raised by host code, and results that cannot be wasm values."""

from __future__ import annotations

import traceback
from typing import Any

import pytest

import funk
from funk import Trap
from funk.types import f64, i32, i64
from tests.guest import guest
from tests.hosts import TestHost as Host


class Custom(Exception):
    pass


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.value: Any = 0

    def zero(self, x: i32) -> i32:
        return x // 0

    def custom(self) -> None:
        raise Custom("my own error")

    def nested(self) -> None:
        try:
            {}["missing"]
        except KeyError as exc:
            raise RuntimeError("wrapped") from exc

    def give64(self) -> i64:
        return self.value

    def give_f(self) -> f64:
        return self.value


WAT = guest(
    '(func (export "fail") (param i32) (result i32) (call $test.fail (local.get 0)))',
    '(func (export "bad_result") (param i32) (result i32) (call $test.bad_result (local.get 0)))',
    '(func (export "add") (param i32 i32) (result i32) (call $test.add (local.get 0) (local.get 1)))',
    '(func (export "zero") (param i32) (result i32) (call $probe.zero (local.get 0)))',
    '(func (export "custom") (call $probe.custom))',
    '(func (export "nested") (call $probe.nested))',
    '(func (export "give64") (result i64) (call $probe.give64))',
    '(func (export "give_f") (result f64) (call $probe.give_f))',
    hosts=(Host, Probe),
)

#: TestHost.bad_result(kind) returns [2**32, -2**31 - 1, "text", None, 1.5][kind]
BAD_VALUES = [2**32, -2**31 - 1, "text", None, 1.5]


def make(backend: str) -> tuple[funk.Instance, Probe]:
    probe = Probe()
    return funk.instantiate(WAT, [Host(), probe], backend=backend), probe


def test_value_error_becomes_trap_with_cause(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.fail(3)
    trap = info.value
    assert trap.message == "test.fail: host function raised ValueError: failure 3"
    assert trap.function == "test.fail"
    assert "test.fail" in str(trap)
    cause = trap.__cause__
    assert type(cause) is ValueError
    assert cause.args == ("failure 3",)


def test_cause_traceback_includes_host_method(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.fail(4)
    cause = info.value.__cause__
    assert cause is not None and cause.__traceback__ is not None
    frames = traceback.extract_tb(cause.__traceback__)
    host_frames = [f for f in frames if f.name == "fail" and f.filename.endswith("hosts.py")]
    assert host_frames, [(f.filename, f.name) for f in frames]
    assert host_frames[-1] is frames[-1]  # the exception was raised there
    assert 'raise ValueError(f"failure {code}")' in (host_frames[-1].line or "")
    text = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    assert "failure 4" in text


def test_other_exception_types(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.zero(1)
    assert info.value.message == "probe.zero: host function raised ZeroDivisionError: " \
                                 "integer division or modulo by zero"
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    with pytest.raises(Trap) as info:
        inst.exports.custom()
    assert info.value.message == "probe.custom: host function raised Custom: my own error"
    assert isinstance(info.value.__cause__, Custom)
    assert info.value.function == "probe.custom"


def test_chained_exception_kept(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.nested()
    assert info.value.message == "probe.nested: host function raised RuntimeError: wrapped"
    cause = info.value.__cause__
    assert isinstance(cause, RuntimeError)
    assert isinstance(cause.__cause__, KeyError)


def test_instance_usable_after_foreign_exception(backend: str) -> None:
    inst, _ = make(backend)
    for code in range(3):
        with pytest.raises(Trap) as info:
            inst.exports.fail(code)
        assert info.value.message.endswith(f"failure {code}")
        assert inst.exports.add(code, 1) == code + 1


@pytest.mark.parametrize("kind", range(len(BAD_VALUES)))
def test_bad_result_traps_clearly(backend: str, kind: int) -> None:
    inst, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.bad_result(kind)
    message = info.value.message
    assert message.startswith("test.bad_result: host function returned "
                              f"{BAD_VALUES[kind]!r}")
    assert info.value.function == "test.bad_result"
    assert inst.exports.add(1, 1) == 2


def test_bad_result_identical_on_both_engines() -> None:
    texts: dict[str, list[str]] = {}
    for backend in ("wasmtime", "wasmer"):
        inst, _ = make(backend)
        texts[backend] = []
        for kind in range(len(BAD_VALUES)):
            with pytest.raises(Trap) as info:
                inst.exports.bad_result(kind)
            texts[backend].append(str(info.value))
    assert texts["wasmtime"] == texts["wasmer"]
    assert len(set(texts["wasmtime"])) == len(BAD_VALUES)


@pytest.mark.parametrize("value", [2**64, -2**63 - 1, "1", 2.0, [1]])
def test_bad_i64_results(backend: str, value: Any) -> None:
    inst, probe = make(backend)
    probe.value = value
    with pytest.raises(Trap) as info:
        inst.exports.give64()
    assert info.value.message.startswith(f"probe.give64: host function returned {value!r}")


@pytest.mark.parametrize("value, expected", [(2**64 - 1, -1), (-2**63, -2**63), (True, 1)])
def test_good_i64_results(backend: str, value: Any, expected: int) -> None:
    inst, probe = make(backend)
    probe.value = value
    assert inst.exports.give64() == expected


@pytest.mark.parametrize("value", ["1.0", None, 10**400])
def test_bad_float_results(backend: str, value: Any) -> None:
    inst, probe = make(backend)
    probe.value = value
    with pytest.raises(Trap) as info:
        inst.exports.give_f()
    assert info.value.message.startswith(f"probe.give_f: host function returned {value!r}")


def test_int_is_a_valid_float_result(backend: str) -> None:
    inst, probe = make(backend)
    probe.value = 3
    assert inst.exports.give_f() == 3.0
    probe.value = -0.0
    assert str(inst.exports.give_f()) == "-0.0"


# -- host code whose own __str__ / __repr__ fail ---------------------------------------


class Unprintable(Exception):
    def __str__(self) -> str:
        raise ValueError("no text for you")


class BadRepr:
    def __repr__(self) -> str:
        raise RuntimeError("no repr either")


@funk.host_functions(namespace="ugly")
class Ugly:
    def unprintable(self) -> None:
        raise Unprintable()

    def bad_result(self) -> i32:
        return BadRepr()  # type: ignore[return-value]

    def unprintable_trap(self) -> None:
        raise Trap(BadRepr())  # type: ignore[arg-type]

    def ok(self) -> i32:
        return 7


UGLY_WAT = """
(module
  (import "ugly" "unprintable" (func $unprintable))
  (import "ugly" "bad_result" (func $bad_result (result i32)))
  (import "ugly" "unprintable_trap" (func $unprintable_trap))
  (import "ugly" "ok" (func $ok (result i32)))
  (func (export "unprintable") (call $unprintable))
  (func (export "bad_result") (result i32) (call $bad_result))
  (func (export "unprintable_trap") (call $unprintable_trap))
  (func (export "ok") (result i32) (call $ok)))
"""


def test_unprintable_exception_and_result_still_trap(backend: str) -> None:
    """A host exception or result whose ``__str__``/``__repr__`` raises is reported with a
    placeholder; on wasmtime it used to abort the interpreter (an exception escaping the
    C callback), on wasmer to leave the failure pending for the next call."""
    inst = funk.instantiate(UGLY_WAT, [Ugly()], backend=backend)
    with pytest.raises(Trap) as info:
        inst.exports.unprintable()
    assert info.value.message == ("ugly.unprintable: host function raised Unprintable: "
                                  "<Unprintable object: str() raised ValueError>")
    assert isinstance(info.value.__cause__, Unprintable)
    assert inst.exports.ok() == 7  # nothing left pending
    with pytest.raises(Trap) as info:
        inst.exports.bad_result()
    assert info.value.message.startswith(
        "ugly.bad_result: host function returned <BadRepr object: repr() raised RuntimeError>, "
        "which does not fit its wasm result type (")
    assert inst.exports.ok() == 7
    with pytest.raises(Trap) as info:
        inst.exports.unprintable_trap()
    assert info.value.function == "ugly.unprintable_trap"
    assert inst.exports.ok() == 7
