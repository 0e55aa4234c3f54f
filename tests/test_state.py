"""Host objects keep their own state; instances are independent; compile once, instantiate often."""

from __future__ import annotations

import funk
from funk.types import i32
from tests.guest import guest
from tests.hosts import Blob
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="counter")
class Counter:
    def __init__(self, start: int = 0) -> None:
        self.value = start

    def bump(self, by: i32) -> i32:
        self.value += by
        return self.value


@funk.host_functions(namespace="log")
class Log:
    def __init__(self) -> None:
        self.lines: list[int] = []

    def write(self, x: i32) -> None:
        self.lines.append(x)


WAT = guest(
    '(func (export "bump") (param i32) (result i32) (call $counter.bump (local.get 0)))',
    '(func (export "log") (param i32) (call $log.write (local.get 0)))',
    '(func (export "echo") (param i32) (result i32) (call $test.echo_i32 (local.get 0)))',
    '(func (export "open_blob") (param i32 i32) (result i64)'
    '  (call $test.open_blob (local.get 0) (local.get 1)))',
    # one guest call touching all three hosts
    '(func (export "all") (param i32) (result i32)'
    '  (call $log.write (local.get 0))'
    '  (drop (call $test.echo_i32 (local.get 0)))'
    '  (call $counter.bump (local.get 0)))',
    '(func (export "poke") (param i32 i32) (i32.store8 (local.get 0) (local.get 1)))',
    hosts=(Host, Counter, Log),
)


def test_each_host_object_keeps_its_own_state(backend: str) -> None:
    host, counter, log = Host(), Counter(100), Log()
    inst = funk.instantiate(WAT, [host, counter, log], backend=backend)
    assert inst.exports.bump(5) == 105
    inst.exports.log(7)
    assert inst.exports.echo(9) == 9
    assert inst.exports.all(1) == 106
    assert counter.value == 106
    assert log.lines == [7, 1]
    assert host.seen["i32"] == 1
    assert inst.hosts == (host, counter, log)


def test_two_instances_are_independent(backend: str) -> None:
    h1, c1, l1 = Host(), Counter(), Log()
    h2, c2, l2 = Host(), Counter(1000), Log()
    one = funk.instantiate(WAT, [h1, c1, l1], backend=backend)
    two = funk.instantiate(WAT, [h2, c2, l2], backend=backend)
    assert one.exports.bump(1) == 1
    assert two.exports.bump(1) == 1001
    assert one.exports.bump(1) == 2
    one.exports.log(11)
    two.exports.log(22)
    one.exports.echo(3)
    assert (l1.lines, l2.lines) == ([11], [22])
    assert h1.seen == {"i32": 3} and h2.seen == {}
    # memories are separate too
    one.exports.poke(50, 0x77)
    assert one.memory.read(50, 1) == b"\x77"
    assert two.memory.read(50, 1) == b"\0"
    # and resource tables
    assert one.exports.open_blob(0, 1) == 0
    assert one.exports.open_blob(0, 1) == 1
    assert two.exports.open_blob(0, 1) == 0


def test_shared_host_object_shares_state(backend: str) -> None:
    counter = Counter()
    one = funk.instantiate(WAT, [Host(), counter, Log()], backend=backend)
    two = funk.instantiate(WAT, [Host(), counter, Log()], backend=backend)
    assert one.exports.bump(1) == 1
    assert two.exports.bump(1) == 2
    assert counter.value == 2
    # the resource tables are still per instance
    assert one.exports.open_blob(0, 1) == 0
    assert two.exports.open_blob(0, 1) == 0


def test_compile_once_instantiate_many(backend: str) -> None:
    module = funk.compile(WAT, backend=backend)
    assert isinstance(module, funk.CompiledModule)
    assert {"bump", "log", "echo", "all", "memory"} <= set(module.exports)
    assert {(i.namespace, i.name) for i in module.imports} >= {
        ("counter", "bump"), ("log", "write"), ("test", "echo_i32")}
    instances = []
    for n in range(20):
        counter, log = Counter(n * 10), Log()
        inst = module.instantiate([Host(), counter, log])
        instances.append((inst, counter, log))
    for n, (inst, _counter, _log) in enumerate(instances):
        assert inst.backend == backend
        assert inst.exports.bump(n) == n * 11
        inst.exports.log(n)
        inst.exports.poke(10, n)
    for n, (inst, counter, log) in enumerate(instances):
        assert counter.value == n * 11
        assert log.lines == [n]
        assert inst.memory.read(10, 1) == bytes([n])
        assert inst.exports.open_blob(0, 2) == 0
        assert len(inst.resources[Blob]) == 1


def test_instantiate_accepts_compiled_module(backend: str) -> None:
    module = funk.compile(WAT, backend=backend)
    a = funk.instantiate(module, [Host(), Counter(1), Log()])
    b = funk.instantiate(module, [Host(), Counter(2), Log()])
    assert a.exports.bump(0) == 1
    assert b.exports.bump(0) == 2
    assert a.backend == b.backend == backend


def test_state_survives_traps(backend: str) -> None:
    counter = Counter()
    wat = guest('(func (export "bump_then_trap") (param i32)'
                '  (drop (call $counter.bump (local.get 0))) unreachable)',
                '(func (export "bump") (param i32) (result i32) (call $counter.bump (local.get 0)))',
                hosts=(Counter,))
    inst = funk.instantiate(wat, [counter], backend=backend)
    try:
        inst.exports.bump_then_trap(5)
    except funk.Trap as exc:
        assert exc.message == "unreachable"
    else:  # pragma: no cover
        raise AssertionError("no trap")
    assert counter.value == 5
    assert inst.exports.bump(1) == 6


def test_wasm_bytes_input(backend: str) -> None:
    import wasmtime

    binary = wasmtime.wat2wasm(WAT)
    inst = funk.instantiate(bytes(binary), [Host(), Counter(3), Log()], backend=backend)
    assert inst.exports.bump(4) == 7
