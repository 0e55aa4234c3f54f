"""Traps: host-raised, guest-raised, KeyboardInterrupt; the instance survives them."""

from __future__ import annotations

import pytest

import funk
import funk.traps
from funk import Trap
from funk.types import i32
from tests.guest import guest
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="probe")
class Probe:
    def __init__(self) -> None:
        self.trap = Trap("probe says no")

    def raise_it(self) -> None:
        raise self.trap

    def raise_with_function(self) -> i32:
        raise Trap("custom", function="somewhere.else")

    def exit(self) -> None:
        raise SystemExit(3)


WAT = guest(
    '(func (export "trap") (param i32 i32) (call $test.trap (local.get 0) (local.get 1)))',
    '(func (export "raise_it") (call $probe.raise_it))',
    '(func (export "raise_with_function") (result i32) (call $probe.raise_with_function))',
    '(func (export "interrupt") (call $test.interrupt))',
    '(func (export "exit") (call $probe.exit))',
    '(func (export "add") (param i32 i32) (result i32) (call $test.add (local.get 0) (local.get 1)))',
    '(func $inner (unreachable))',
    '(func $middle (call $inner))',
    '(func $unreachable (export "unreachable") (call $middle))',
    '(func $div (export "div") (param i32 i32) (result i32) (i32.div_s (local.get 0) (local.get 1)))',
    '(func $rem (export "rem_u") (param i32 i32) (result i32) (i32.rem_u (local.get 0) (local.get 1)))',
    '(func $oob (export "oob") (param i32) (result i32) (i32.load (local.get 0)))',
    '(func $oob_store (export "oob_store") (param i32) (i64.store (local.get 0) (i64.const 1)))',
    '(func $overflow (export "overflow") (result i32) (i32.div_s (i32.const 0x80000000) (i32.const -1)))',
    '(func $conv (export "conv") (param f64) (result i32) (i32.trunc_f64_s (local.get 0)))',
    # host trap after the guest wrote memory: the write stays (wasm has no rollback)
    '(func (export "write_then_trap") (param i32 i32)'
    '  (i32.store8 (i32.const 4000) (i32.const 9))'
    '  (call $test.trap (local.get 0) (local.get 1)))',
    hosts=(Host, Probe),
    data=[(100, b"disk on fire")],
)

GUEST_TRAPS = [
    ("unreachable", (), "unreachable"),
    ("div", (1, 0), "integer divide by zero"),
    ("rem_u", (1, 0), "integer divide by zero"),
    ("oob", (65535,), "out of bounds memory access"),
    ("oob_store", (65530,), "out of bounds memory access"),
    ("overflow", (), "integer overflow"),
    ("conv", (float("nan"),), "invalid conversion to integer"),
]


def make(backend: str) -> tuple[funk.Instance, Host, Probe]:
    host, probe = Host(), Probe()
    return funk.instantiate(WAT, [host, probe], backend=backend), host, probe


def test_host_trap_message_exact(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.trap(100, 12)
    assert info.value.message == "disk on fire"
    assert info.value.function == "test.trap"
    assert info.value.__cause__ is None
    assert str(info.value).startswith("disk on fire")


def test_host_trap_is_the_same_object(backend: str) -> None:
    inst, _, probe = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.raise_it()
    assert info.value is probe.trap
    assert info.value.message == "probe says no"
    assert info.value.function == "probe.raise_it"


def test_host_trap_keeps_its_own_function(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.raise_with_function()
    assert info.value.message == "custom"
    assert info.value.function == "somewhere.else"


def test_empty_trap_message(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.trap(100, 0)
    assert info.value.message == ""
    assert info.value.function == "test.trap"


@pytest.mark.parametrize("export, args, message", GUEST_TRAPS)
def test_guest_traps(backend: str, export: str, args: tuple, message: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports[export](*args)
    assert info.value.message == message
    assert info.value.function is None
    assert info.value.frames, "a guest trap carries a backtrace"
    assert info.value.__cause__ is None
    assert str(info.value).startswith(message + "\nguest backtrace:\n")


def test_guest_backtrace_names_functions(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap) as info:
        inst.exports.unreachable()
    names = [f.split(" @ ")[0] for f in info.value.frames]
    assert names == ["inner", "middle", "unreachable"]
    assert all(" @ 0x" in f for f in info.value.frames)


def test_guest_traps_identical_on_both_engines() -> None:
    results = {}
    for backend in ("wasmtime", "wasmer"):
        inst, _, _ = make(backend)
        seen = []
        for export, args, _message in GUEST_TRAPS:
            with pytest.raises(Trap) as info:
                inst.exports[export](*args)
            seen.append((info.value.message, info.value.frames))
        results[backend] = seen
    assert results["wasmtime"] == results["wasmer"]


def test_host_trap_identical_on_both_engines() -> None:
    texts = []
    for backend in ("wasmtime", "wasmer"):
        inst, _, _ = make(backend)
        with pytest.raises(Trap) as info:
            inst.exports.trap(100, 12)
        texts.append((str(info.value), info.value.function))
    assert texts[0] == texts[1]


def test_keyboard_interrupt_propagates(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(KeyboardInterrupt) as info:
        inst.exports.interrupt()
    assert type(info.value) is KeyboardInterrupt
    # the instance is still usable and the interrupt is not replayed
    assert inst.exports.add(1, 2) == 3
    with pytest.raises(Trap, match="^disk on fire$"):
        inst.exports.trap(100, 12)


def test_system_exit_propagates(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(SystemExit) as info:
        inst.exports.exit()
    assert info.value.code == 3
    assert inst.exports.add(2, 2) == 4


def test_instance_usable_after_traps(backend: str) -> None:
    inst, _, _ = make(backend)
    for export, args, _message in GUEST_TRAPS:
        with pytest.raises(Trap):
            inst.exports[export](*args)
        assert inst.exports.add(20, 22) == 42
        with pytest.raises(Trap) as info:
            inst.exports.trap(100, 4)
        assert info.value.message == "disk"
        assert inst.exports.div(9, 3) == 3


def test_pending_exception_not_replayed(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap, match="^disk on fire$"):
        inst.exports.trap(100, 12)
    # a guest trap afterwards is reported as itself, not as the earlier host trap
    with pytest.raises(Trap) as info:
        inst.exports.div(1, 0)
    assert info.value.message == "integer divide by zero"
    assert info.value.function is None


def test_memory_written_before_trap_remains(backend: str) -> None:
    inst, _, _ = make(backend)
    with pytest.raises(Trap, match="^disk$"):
        inst.exports.write_then_trap(100, 4)
    assert inst.memory.read(4000, 1) == b"\x09"


def test_closed_instance_raises_trap(backend: str) -> None:
    inst, _, _ = make(backend)
    add = inst.exports.add
    inst.close()
    with pytest.raises(Trap, match="the instance is closed"):
        add(1, 2)
    with pytest.raises(Trap):
        inst.memory.read(0, 1)


def test_trap_in_start_function(backend: str) -> None:
    wat = guest('(func $start (call $probe.raise_it))', '(start $start)', hosts=(Host, Probe))
    probe = Probe()
    with pytest.raises(Trap) as info:
        funk.instantiate(wat, [Host(), probe], backend=backend)
    assert info.value is probe.trap
    assert info.value.message == "probe says no"
    assert info.value.function == "probe.raise_it"


def test_host_memory_access_in_start_function(backend: str) -> None:
    # Neither engine exposes an instance's exports before instantiation ends
    # (wasmer gives host functions no caller at all), so during the start
    # function memory-using host functions trap, identically, saying why.
    wat = guest('(func $start (call $test.trap (i32.const 100) (i32.const 4)))',
                '(start $start)', data=[(100, b"boot")])
    with pytest.raises(Trap) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    assert info.value.message == ("test.trap: parameter 'message': guest memory is not "
                                  "available while the module's start function runs "
                                  "(it is linked once instantiation finishes)")
    assert info.value.function == "test.trap"


def test_guest_trap_in_start_function(backend: str) -> None:
    wat = guest('(func $start unreachable)', '(start $start)')
    with pytest.raises(Trap) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    assert info.value.message == "unreachable"
    assert info.value.function is None


@funk.host_functions(namespace="re")
class Reentrant:
    """Calls back into the guest through ``Caller.instance`` and handles its trap."""

    def __init__(self) -> None:
        self.caught = ""

    def call_back(self, caller: funk.Caller, x: i32) -> i32:
        assert caller.instance is not None
        try:
            caller.instance.exports.boom(x)
        except Trap as exc:
            self.caught = exc.message
            return -1
        return caller.instance.exports.double(x)


def test_trap_in_nested_call_caught_by_host(backend: str) -> None:
    wat = guest(
        '(func (export "double") (param i32) (result i32) (i32.mul (local.get 0) (i32.const 2)))',
        '(func (export "boom") (param i32)'
        # traps (from the host) for odd numbers
        '  (if (i32.and (local.get 0) (i32.const 1))'
        '    (then (call $test.trap (i32.const 0) (i32.const 3)))))',
        '(func (export "outer") (param i32) (result i32) (call $re.call_back (local.get 0)))',
        hosts=(Host, Reentrant), data=[(0, b"bad")])
    re = Reentrant()
    inst = funk.instantiate(wat, [Host(), re], backend=backend)
    assert inst.exports.outer(4) == 8
    assert inst.exports.outer(5) == -1
    assert re.caught == "bad"
    # the caught host trap is not replayed on the outer call or the next one
    assert inst.exports.outer(6) == 12
    assert inst.exports.double(21) == 42


def test_stack_exhaustion(backend: str) -> None:
    wat = guest('(func $rec (export "rec") (param i32) (result i32)'
                '  (i32.add (call $rec (local.get 0)) (i32.const 1)))',
                '(func (export "add") (param i32 i32) (result i32)'
                '  (call $test.add (local.get 0) (local.get 1)))')
    inst = funk.instantiate(wat, [Host()], backend=backend)
    with pytest.raises(Trap) as info:
        inst.exports.rec(1)
    assert info.value.message == "call stack exhausted"
    frames = info.value.frames
    # deep backtraces are capped: first and last frames around a "... more" marker
    assert 0 < len(frames) <= funk.traps.MAX_FRAMES + 1
    assert all(f.startswith("rec") or f.startswith("... ") for f in frames)
    # the instance (and its host functions) survive a stack overflow
    assert inst.exports.add(2, 3) == 5
