"""Host-API mistakes are reported when the class is decorated.

Each case is a class statement that must raise ``DefinitionError`` itself
(not at instantiation or at the first call), with a message naming the
class, the method and, where there is one, the parameter.

(No ``from __future__ import annotations`` here: the classes are local to
test functions, and their annotations must be real objects.)
"""

import enum
import typing
from collections.abc import Sequence
from typing import Any, Optional

import pytest

import funk
from funk import DefinitionError, export, host_functions, record
from funk.types import (
    Bytes,
    Handle,
    IoSlices,
    MultiValue,
    MutBytes,
    Ptr,
    Str,
    WasmType,
    f32,
    i32,
    i64,
    u8,
    u32,
    u64,
)


def _message(excinfo: Any) -> str:
    return str(excinfo.value)


def _assert_names(msg: str, *parts: str) -> None:
    for part in parts:
        assert part in msg, f"{part!r} not in {msg!r}"


# --------------------------------------------------------------------------
# Parameters


def test_unannotated_parameter() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class NoAnnotation:
            def fine(self, a: i32) -> i32:
                return a

            def send(self, fd: i32, data) -> i32:  # type: ignore[no-untyped-def]
                return 0

    _assert_names(_message(info), "NoAnnotation.send", "parameter 'data'", "no annotation")
    assert "'fd'" not in _message(info)


def test_missing_return_annotation() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions(namespace="env")
        class NoReturn:
            def tick(self, n: i32):  # type: ignore[no-untyped-def]
                pass

    _assert_names(_message(info), "NoReturn.tick", "missing return annotation", "-> None")


@pytest.mark.parametrize("annotation, shown", [
    (list[int], "list[int]"),
    (typing.List[int], "List[int]"),  # noqa: UP006 - a value under test
    (list, "list"),
    (str, "str"),
    (int, "int"),
    (float, "float"),
    (bytes, "bytes"),
    (dict, "dict"),
    (dict[str, int], "dict[str, int]"),
    (typing.Dict[str, int], "Dict[str, int]"),  # noqa: UP006 - a value under test
    (Optional[i32], "Optional"),  # noqa: UP045 - a value under test
    (Sequence[int], "Sequence[int]"),
    (tuple[i32, i32], "tuple["),
    (typing.Tuple[i32, i32], "Tuple["),  # noqa: UP006 - a value under test
    (Ptr, "Ptr"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_unsupported_parameter_annotation(annotation: Any, shown: str) -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Unsupported:
            def put(self, key: i32, value: annotation) -> None:  # type: ignore[valid-type]
                pass

    msg = _message(info)
    _assert_names(msg, "Unsupported.put", "parameter 'value'", "unsupported annotation", shown)


def test_builtin_generic_parameter() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Builtins:
            def put(self, items: list[int]) -> None:
                pass

    _assert_names(_message(info), "Builtins.put", "parameter 'items'", "list[int]")


def test_var_positional_parameter() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Varargs:
            def log(self, level: i32, *parts: i32) -> None:
                pass

    _assert_names(_message(info), "Varargs.log", "parameter 'parts'", "*args")


def test_var_keyword_parameter() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Kwargs:
            def log(self, level: i32, **extra: i32) -> None:
                pass

    _assert_names(_message(info), "Kwargs.log", "parameter 'extra'", "**kwargs")


def test_keyword_only_parameter() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class KwOnly:
            def log(self, level: i32, *, flush: i32) -> None:
                pass

    _assert_names(_message(info), "KwOnly.log", "parameter 'flush'", "keyword-only")


class NotARecord:
    x: i32
    y: i32


@pytest.mark.parametrize("target, shown", [
    (NotARecord, "NotARecord"),
    (int, "int"),
    (Str, "Str"),
    (Ptr[u32], "Ptr"),
    (list[int], "list[int]"),
])
def test_ptr_to_something_without_layout(target: Any, shown: str) -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Pointers:
            def poke(self, p: Ptr[target]) -> None:  # type: ignore[valid-type]
                pass

    _assert_names(_message(info), "Pointers.poke", "parameter 'p'", "Ptr target",
                  "no memory layout", shown)


def test_record_with_non_scalar_field() -> None:
    with pytest.raises(DefinitionError) as info:
        @record
        class Named:
            id: u32
            name: Str

    _assert_names(_message(info), "record Named", "field 'name'")
    with pytest.raises(DefinitionError) as info:
        @record
        class Listy:
            count: u8
            items: list

    _assert_names(_message(info), "record Listy", "field 'items'")
    with pytest.raises(DefinitionError) as info:
        @record
        class Nested:
            a: u8
            inner: NotARecord  # a plain class, not a @record

    _assert_names(_message(info), "record Nested", "field 'inner'")


def test_record_valid_nested_is_fine() -> None:
    @record
    class Inner:
        a: u8
        b: u64

    @record
    class Outer:
        tag: u8
        inner: Inner

    @host_functions
    class UsesRecord:
        def look(self, p: Ptr[Outer]) -> u8:
            return 0

    (fn,) = funk.functions_of(UsesRecord)
    assert fn.signature == "(i32) -> i32"


class BadValtype(WasmType):
    wasm_params = ("i128",)
    wasm_results = ("i32",)


class BadResultValtype(WasmType):
    wasm_params = ("i32",)
    wasm_results = ("v128",)


class NoResults(WasmType):
    wasm_params = ("i32",)
    wasm_results = ()


class FloatResult(WasmType):
    wasm_params = ("f32",)
    wasm_results = ("f32",)


def test_wasm_type_with_invalid_wasm_params() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Custom:
            def take(self, handle: BadValtype) -> None:
                pass

    _assert_names(_message(info), "Custom.take", "parameter 'handle'",
                  "BadValtype.wasm_params", "'i128'")


def test_wasm_type_with_invalid_wasm_results() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Custom:
            def give(self) -> BadResultValtype:
                return BadResultValtype()

    _assert_names(_message(info), "Custom.give", "return annotation",
                  "BadResultValtype.wasm_results", "'v128'")


def test_wasm_type_without_results_as_result() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Custom:
            def give(self) -> NoResults:
                return NoResults()

    _assert_names(_message(info), "Custom.give", "return annotation", "NoResults",
                  "no wasm_results")


# --------------------------------------------------------------------------
# Results


class Code(enum.IntEnum):
    ok = 0


@pytest.mark.parametrize("annotation, item", [
    (MultiValue[i32, Str], 1),
    (MultiValue[Bytes], 0),
    (MultiValue[i64, f32, str], 2),
    (MultiValue[i32, Ptr[u32]], 1),
])
def test_multivalue_with_unsupported_item(annotation: Any, item: int) -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Multi:
            def many(self, x: i32) -> annotation:  # type: ignore[valid-type]
                return ()

    _assert_names(_message(info), "Multi.many", "return annotation",
                  f"(MultiValue item {item})", "unsupported result type")


def test_tuple_result_with_ellipsis() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Tuples:
            def many(self, x: i32) -> tuple[i32, ...]:
                return (x,)

    _assert_names(_message(info), "Tuples.many", "return annotation",
                  "a tuple result needs fixed item types")
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class OldTuples:
            def many(self, x: i32) -> typing.Tuple[Code, ...]:  # noqa: UP006
                return (Code.ok,)

    _assert_names(_message(info), "OldTuples.many", "needs fixed item types")


def test_tuple_result_with_unsupported_item() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Spill:
            def stat(self, fd: i32) -> tuple[Code, Str]:
                return Code.ok

    _assert_names(_message(info), "Spill.stat", "return annotation", "(tuple item 1)",
                  "no memory layout")
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class SpillFloat:
            def stat(self, fd: i32) -> tuple[Code, FloatResult]:
                return Code.ok

    _assert_names(_message(info), "SpillFloat.stat", "(tuple item 1)", "FloatResult",
                  "exactly one i32 or i64")


@pytest.mark.parametrize("annotation, shown", [
    (str, "str"), (Str, "Str"), (Bytes, "Bytes"), (MutBytes, "MutBytes"),
    (IoSlices, "IoSlices"), (list, "list"), (int, "int"), (Ptr[u32], "Ptr"),
    (list[int], "list[int]"), (dict[str, i32], "dict[str, "),
])
def test_unsupported_result(annotation: Any, shown: str) -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Results:
            def get(self, x: i32) -> annotation:  # type: ignore[valid-type]
                return None

    _assert_names(_message(info), "Results.get", "return annotation",
                  "unsupported result type", shown)


def test_empty_multivalue() -> None:
    # MultiValue[()] spelled the way typing spells an empty parameter list
    ann = MultiValue[()]  # type: ignore[misc]
    if typing.get_args(ann):  # some Python versions keep () as an argument
        pytest.skip("this Python spells MultiValue[()] with an argument")
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Empty:
            def nothing(self) -> ann:  # type: ignore[valid-type]
                return ()

    _assert_names(_message(info), "Empty.nothing", "MultiValue needs at least one")


# --------------------------------------------------------------------------
# Names


def test_two_methods_exported_under_the_same_name() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions(namespace="env")
        class Clash:
            def write(self, fd: i32) -> i32:
                return 0

            @export("write")
            def write_all(self, fd: i32) -> i32:
                return 0

    _assert_names(_message(info), "Clash", "'write'", "'write_all'", "env.write")


def test_same_name_in_an_explicit_namespace() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions(namespace="env")
        class Clash2:
            @export("fd_write", namespace="wasi")
            def a(self, fd: i32) -> i32:
                return 0

            @export("fd_write", namespace="wasi")
            def b(self, fd: i32) -> i32:
                return 0

    _assert_names(_message(info), "Clash2", "'a'", "'b'", "wasi.fd_write")


def test_same_name_in_different_namespaces_is_fine() -> None:
    @host_functions(namespace="env")
    class NoClash:
        def write(self, fd: i32) -> i32:
            return 0

        @export("write", namespace="other")
        def write_other(self, fd: i32) -> i32:
            return 1

    assert sorted(f.qualname for f in funk.functions_of(NoClash)) == ["env.write",
                                                                     "other.write"]


def test_clash_with_inherited_method() -> None:
    @host_functions
    class Base:
        def ping(self) -> i32:
            return 1

    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Child(Base):
            @export("ping")
            def pong(self) -> i32:
                return 2

    _assert_names(_message(info), "Child", "'ping'", "'pong'", "env.ping")


# --------------------------------------------------------------------------
# The error is raised by the class statement, before anything else runs


def test_error_is_raised_at_decoration_not_later() -> None:
    created = []

    def remember(cls: type) -> type:
        created.append(cls)
        return cls

    with pytest.raises(DefinitionError):
        @host_functions
        @remember
        class Late:
            def bad(self, x: dict) -> None:
                pass

    # the class body ran, the decorator raised: no class was bound
    assert len(created) == 1
    assert "Late" not in locals()


def test_definition_error_is_a_type_error_and_funk_error() -> None:
    with pytest.raises(TypeError):
        @host_functions
        class Bad:
            def f(self, x: str) -> None:
                pass

    assert issubclass(DefinitionError, funk.FunkError)


def test_undecorated_class_used_as_host() -> None:
    class Plain:
        def f(self, x: i32) -> i32:
            return x

    with pytest.raises(DefinitionError, match="Plain is not decorated with @host_functions"):
        funk.functions_of(Plain)
    with pytest.raises(DefinitionError, match="not decorated"):
        funk.instantiate("(module)", [Plain()])


def test_unresolvable_string_annotation() -> None:
    with pytest.raises(DefinitionError) as info:
        @host_functions
        class Strings:
            def f(self, x: "NoSuchType") -> None:  # type: ignore[name-defined]  # noqa: F821
                pass

    _assert_names(_message(info), "Strings.f", "cannot resolve annotations", "NoSuchType")


def test_handle_and_valid_types_are_accepted() -> None:
    """Control: the same shapes with supported annotations decorate fine."""

    class Thing:
        pass

    @host_functions(namespace="ok")
    class Fine:
        def a(self, s: Str, b: Bytes, m: MutBytes, io: IoSlices, p: Ptr[u64],
              h: Handle[Thing]) -> tuple[Code, u32]:
            return Code.ok, 0

        def b(self) -> MultiValue[i32, i64]:
            return 1, 2

    (a, b) = funk.functions_of(Fine)
    assert a.signature == "(i32, i32, i32, i32, i32, i32, i32, i32, i32, i64, i32) -> i32"
    assert b.signature == "() -> (i32, i64)"
