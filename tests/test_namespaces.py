"""Namespaces and linking: @export renames, several hosts, link errors, allow filters."""

from __future__ import annotations

import pytest

import funk
from funk import export
from funk.types import i32
from tests.guest import bare_module, guest
from tests.hosts import TestHost as Host


@funk.host_functions(namespace="alpha")
class Alpha:
    def __init__(self) -> None:
        self.calls = 0

    def get(self) -> i32:
        self.calls += 1
        return 1

    def twice(self, x: i32) -> i32:
        return 2 * x


@funk.host_functions(namespace="beta")
class Beta:
    def get(self) -> i32:  # same method name as Alpha.get, another namespace
        return 2


@funk.host_functions(namespace="main")
class Spanning:
    """One class whose methods live in three namespaces."""

    def here(self) -> i32:
        return 10

    @export(namespace="side")
    def there(self) -> i32:
        return 20

    @export("odd name!", namespace="wasi_snapshot_preview1")
    def odd(self, x: i32) -> i32:
        return x + 30


RENAMED = guest('(func (export "renamed") (param i32) (result i32)'
                '  (call $other.renamed-function (local.get 0)))')


def test_renamed_function_in_other_namespace(backend: str) -> None:
    host = Host()
    inst = funk.instantiate(RENAMED, [host], backend=backend)
    assert inst.exports.renamed(7) == 21
    assert inst.exports.renamed(-2) == -6
    assert host.calls == ["renamed", "renamed"]


def test_renamed_description() -> None:
    (fn,) = [f for f in funk.functions_of(Host) if f.attr == "renamed"]
    assert (fn.namespace, fn.name, fn.qualname) == ("other", "renamed-function",
                                                    "other.renamed-function")
    assert "helper" not in {f.attr for f in funk.functions_of(Host)}  # @internal
    assert {f.namespace for f in funk.functions_of(Host)} == {"test", "other"}


def test_renamed_not_under_python_name(backend: str) -> None:
    wat = bare_module('(import "other" "renamed" (func (param i32) (result i32)))')
    with pytest.raises(funk.LinkError, match=r"other\.renamed \(i32\) -> i32: no host object "
                                             r"provides it"):
        funk.instantiate(wat, [Host()], backend=backend)


def test_two_classes_in_different_namespaces(backend: str) -> None:
    wat = guest('(func (export "run") (result i32)'
                '  (i32.add (i32.mul (call $alpha.get) (i32.const 100))'
                '           (i32.add (call $beta.get) (call $test.add (i32.const 3) (i32.const 4)))))',
                '(func (export "twice") (param i32) (result i32) (call $alpha.twice (local.get 0)))',
                hosts=(Host, Alpha, Beta))
    alpha = Alpha()
    inst = funk.instantiate(wat, [Host(), alpha, Beta()], backend=backend)
    assert inst.exports.run() == 100 + 2 + 7
    assert inst.exports.twice(21) == 42
    assert alpha.calls == 1


def test_host_order_does_not_matter(backend: str) -> None:
    wat = guest('(func (export "run") (result i32) (i32.sub (call $alpha.get) (call $beta.get)))',
                hosts=(Alpha, Beta))
    for hosts in ([Alpha(), Beta()], [Beta(), Alpha()]):
        assert funk.instantiate(wat, hosts, backend=backend).exports.run() == -1


def test_only_the_imports_used_need_hosts(backend: str) -> None:
    wat = bare_module('(import "beta" "get" (func $get (result i32)))',
                      '(func (export "run") (result i32) (call $get))')
    # Alpha and Host are linked but unused; Beta provides the one import
    assert funk.instantiate(wat, [Alpha(), Beta(), Host()], backend=backend).exports.run() == 2


def test_one_class_spanning_namespaces(backend: str) -> None:
    wat = bare_module(
        '(import "main" "here" (func $here (result i32)))',
        '(import "side" "there" (func $there (result i32)))',
        '(import "wasi_snapshot_preview1" "odd name!" (func $odd (param i32) (result i32)))',
        '(func (export "run") (result i32)'
        '  (i32.add (call $here) (i32.add (call $there) (call $odd (i32.const 1)))))')
    inst = funk.instantiate(wat, [Spanning()], backend=backend)
    assert inst.exports.run() == 10 + 20 + 31
    assert {f.qualname for f in funk.functions_of(Spanning)} == {
        "main.here", "side.there", "wasi_snapshot_preview1.odd name!"}


def test_missing_import_names_it(backend: str) -> None:
    wat = bare_module('(import "test" "nope" (func (param i32) (result i32)))')
    with pytest.raises(funk.LinkError) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    assert "test.nope (i32) -> i32: no host object provides it" in str(info.value)


def test_missing_host_object(backend: str) -> None:
    wat = bare_module('(import "alpha" "get" (func (result i32)))',
                      '(import "test" "add" (func (param i32 i32) (result i32)))')
    with pytest.raises(funk.LinkError) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    message = str(info.value)
    assert "alpha.get () -> i32: no host object provides it" in message
    assert "test.add" not in message  # that one is fine


def test_every_problem_listed(backend: str) -> None:
    wat = bare_module('(import "x" "one" (func))',
                      '(import "x" "two" (func (param f64)))',
                      '(import "test" "add" (func (param i64) (result i32)))')
    with pytest.raises(funk.LinkError) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    message = str(info.value)
    assert "x.one () -> (): no host object provides it" in message
    assert "x.two (f64) -> (): no host object provides it" in message
    assert "test.add: the module imports it as (i64) -> i32" in message


def test_signature_mismatch_names_both(backend: str) -> None:
    wat = bare_module('(import "test" "add" (func (param i64) (result i32)))')
    with pytest.raises(funk.LinkError) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    assert ("test.add: the module imports it as (i64) -> i32 but TestHost.add is "
            "(i32, i32) -> i32") in str(info.value)


def test_result_mismatch_names_both(backend: str) -> None:
    wat = bare_module('(import "test" "pair" (func (param i32) (result i32)))')
    with pytest.raises(funk.LinkError) as info:
        funk.instantiate(wat, [Host()], backend=backend)
    assert ("test.pair: the module imports it as (i32) -> i32 but TestHost.pair is "
            "(i32) -> (i32, i64)") in str(info.value)


def test_link_error_identical_on_both_engines() -> None:
    wat = bare_module('(import "test" "add" (func (param i64) (result i32)))',
                      '(import "test" "nope" (func))')
    messages = []
    for backend in ("wasmtime", "wasmer"):
        with pytest.raises(funk.LinkError) as info:
            funk.instantiate(wat, [Host()], backend=backend)
        messages.append(str(info.value))
    assert messages[0] == messages[1]


def test_same_function_provided_twice(backend: str) -> None:
    wat = bare_module('(import "test" "add" (func (param i32 i32) (result i32)))')
    with pytest.raises(funk.LinkError, match="test.add is provided twice, by TestHost and TestHost"):
        funk.instantiate(wat, [Host(), Host()], backend=backend)


def test_memory_import_rejected(backend: str) -> None:
    wat = bare_module('(import "env" "memory" (memory 1))')
    with pytest.raises(funk.LinkError, match=r"env\.memory: imports a memory"):
        funk.instantiate(wat, [Host()], backend=backend)


ALLOW_WAT = guest(
    '(func (export "add") (param i32 i32) (result i32) (call $test.add (local.get 0) (local.get 1)))',
    '(func (export "echo") (param i32) (result i32) (call $test.echo_i32 (local.get 0)))',
    '(func (export "renamed") (param i32) (result i32) (call $other.renamed-function (local.get 0)))',
)


def test_allow_filter_makes_trapping_stub(backend: str) -> None:
    host = Host()
    asked = []

    def allow(namespace: str, name: str) -> bool:
        asked.append((namespace, name))
        return name != "add"

    inst = funk.instantiate(ALLOW_WAT, [host], backend=backend, allow=allow)
    assert ("test", "add") in asked and ("other", "renamed-function") in asked
    with pytest.raises(funk.Trap) as info:
        inst.exports.add(1, 2)
    assert info.value.message == "host function test.add is not allowed in this environment"
    assert info.value.function == "test.add"
    # the other functions are linked for real
    assert inst.exports.echo(5) == 5
    assert host.seen["i32"] == 5
    assert inst.exports.renamed(2) == 6
    # the stub keeps trapping; the instance stays usable
    with pytest.raises(funk.Trap, match="test.add is not allowed"):
        inst.exports.add(3, 4)
    assert inst.exports.echo(6) == 6


def test_allow_filter_by_namespace(backend: str) -> None:
    host = Host()
    inst = funk.instantiate(ALLOW_WAT, [host], backend=backend,
                            allow=lambda ns, name: ns != "other")
    assert inst.exports.add(1, 2) == 3
    with pytest.raises(funk.Trap) as info:
        inst.exports.renamed(1)
    assert info.value.message == ("host function other.renamed-function is not allowed in "
                                  "this environment")
    assert host.calls == []  # the method never ran


def test_allow_filter_still_checks_links(backend: str) -> None:
    wat = bare_module('(import "test" "add" (func (param i64) (result i32)))')
    with pytest.raises(funk.LinkError, match="the module imports it as"):
        funk.instantiate(wat, [Host()], backend=backend, allow=lambda ns, name: False)


def test_stub_message_identical_on_both_engines() -> None:
    texts = []
    for backend in ("wasmtime", "wasmer"):
        inst = funk.instantiate(ALLOW_WAT, [Host()], backend=backend,
                                allow=lambda ns, name: False)
        with pytest.raises(funk.Trap) as info:
            inst.exports.echo(1)
        texts.append((info.value.message, info.value.function))
    assert texts[0] == texts[1] == ("host function test.echo_i32 is not allowed in this "
                                    "environment", "test.echo_i32")
