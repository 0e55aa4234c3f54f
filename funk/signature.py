"""From annotated Python methods to wasm import signatures.

``@host_functions`` calls ``describe_class``, which reads every exported
method's annotations and produces one ``HostFunction`` per method: which wasm
values each Python parameter consumes (its *lowering*), how the result is
returned (nothing, one value, spilled through out-pointers, or multi-value),
and so the final wasm signature.  Anything funk cannot lower is reported
here, at decoration time, naming the class, method and parameter.

The code generator (``codegen``) consumes these descriptions; nothing here
runs at call time.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from funk.errors import DefinitionError
from funk.records import is_record, record_layout
from funk.types import (
    BYTES,
    IO_SLICES,
    IO_SLICES_MUT,
    MUT_BYTES,
    STR,
    WASM_VALTYPES,
    MultiValue,
    Ptr,
    Scalar,
    WasmType,
    _Marker,
)

__all__ = [
    "HostFunction", "Param", "Result", "Lowering", "ScalarLowering", "RangeLowering",
    "IoSlicesLowering", "PtrLowering", "CustomLowering", "CallerLowering", "Lifting",
    "ScalarLifting", "EnumLifting", "CustomLifting", "OutSlot", "describe_class",
    "host_functions_of", "export", "internal",
]


# --------------------------------------------------------------------------
# Parameter lowerings: guest wasm values -> the Python value the host receives


@dataclass(frozen=True)
class Lowering:
    """How one Python parameter is carried by wasm values."""

    @property
    def wasm_types(self) -> tuple[str, ...]:
        """The wasm value types this parameter consumes, in order."""
        raise NotImplementedError

    def c_params(self, name: str) -> list[tuple[str, str]]:
        """(C type, C name) pairs for generated headers."""
        raise NotImplementedError

    def wasm_names(self, name: str) -> list[str]:
        """Names of the individual wasm parameters, for WAT and headers."""
        return [n for _, n in self.c_params(name)]


@dataclass(frozen=True)
class ScalarLowering(Lowering):
    """A number passed as one wasm value; unsigned types are reinterpreted."""

    scalar: Scalar

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return (self.scalar.valtype,)

    def c_params(self, name: str) -> list[tuple[str, str]]:
        return [(self.scalar.c_type, name)]


@dataclass(frozen=True)
class RangeLowering(Lowering):
    """``Str``, ``Bytes`` or ``MutBytes``: a (ptr, len) pair."""

    marker: _Marker

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return ("i32", "i32")

    @property
    def is_str(self) -> bool:
        return self.marker is STR

    @property
    def writable(self) -> bool:
        return self.marker is MUT_BYTES

    def c_params(self, name: str) -> list[tuple[str, str]]:
        ctype = {STR: "const char *", BYTES: "const uint8_t *", MUT_BYTES: "uint8_t *"}[self.marker]
        return [(ctype, f"{name}_ptr"), ("size_t", f"{name}_len")]


@dataclass(frozen=True)
class IoSlicesLowering(Lowering):
    """``IoSlices``/``IoSlicesMut``: (ptr, count) of 8-byte (buf, len) records."""

    writable: bool

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return ("i32", "i32")

    def c_params(self, name: str) -> list[tuple[str, str]]:
        ctype = "const funk_iovec *" if self.writable else "const funk_ciovec *"
        return [(ctype, f"{name}_ptr"), ("size_t", f"{name}_count")]


@dataclass(frozen=True)
class PtrLowering(Lowering):
    """``Ptr[T]``: one i32 address of a scalar or record ``T``."""

    target: Any  # Scalar or record class

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return ("i32",)

    @property
    def size(self) -> int:
        return _target_size(self.target)

    def c_params(self, name: str) -> list[tuple[str, str]]:
        return [(_target_c_type(self.target) + " *", name)]


@dataclass(frozen=True)
class CustomLowering(Lowering):
    """A user ``WasmType`` subclass (resource handles among them)."""

    cls: type[WasmType]

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return tuple(self.cls.wasm_params)

    def c_params(self, name: str) -> list[tuple[str, str]]:
        types = self.cls.wasm_params
        if len(types) == 1:
            return [(self.cls.c_type or _C_OF_VALTYPE[types[0]], name)]
        return [(_C_OF_VALTYPE[t], f"{name}_{i}") for i, t in enumerate(types)]


@dataclass(frozen=True)
class CallerLowering(Lowering):
    """A parameter annotated ``Caller``: consumes no wasm value."""

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return ()

    def c_params(self, name: str) -> list[tuple[str, str]]:
        return []


# --------------------------------------------------------------------------
# Result liftings: the Python value the host returns -> guest wasm values


@dataclass(frozen=True)
class Lifting:
    """How one returned Python value becomes wasm values."""

    @property
    def wasm_types(self) -> tuple[str, ...]:
        raise NotImplementedError

    @property
    def c_type(self) -> str:
        raise NotImplementedError


@dataclass(frozen=True)
class ScalarLifting(Lifting):
    """A number returned as one wasm value."""

    scalar: Scalar

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return (self.scalar.valtype,)

    @property
    def c_type(self) -> str:
        return self.scalar.c_type


@dataclass(frozen=True)
class EnumLifting(Lifting):
    """An ``IntEnum`` (a status code) returned as an i32."""

    enum_cls: type

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return ("i32",)

    @property
    def c_type(self) -> str:
        return "int32_t"


@dataclass(frozen=True)
class CustomLifting(Lifting):
    """A user ``WasmType`` subclass used as a result."""

    cls: type[WasmType]

    @property
    def wasm_types(self) -> tuple[str, ...]:
        return tuple(self.cls.wasm_results)

    @property
    def c_type(self) -> str:
        types = self.cls.wasm_results
        return self.cls.c_type or _C_OF_VALTYPE[types[0]]


@dataclass(frozen=True)
class OutSlot:
    """A further result written through an out-pointer parameter.

    ``target`` is a Scalar or record written at the pointer; ``lifting`` is
    set instead for custom types (their single wasm result is stored as a
    scalar of that wasm type).
    """

    name: str
    target: Any
    lifting: CustomLifting | None = None

    @property
    def size(self) -> int:
        return _target_size(self.target)

    @property
    def c_type(self) -> str:
        if self.lifting is not None:
            return self.lifting.c_type
        return _target_c_type(self.target)


@dataclass(frozen=True)
class Result:
    """The result shape of a host function.

    ``kind`` is ``"none"``, ``"single"`` (``values[0]``), ``"spill"``
    (``values[0]`` returned, ``outs`` written through out-pointers) or
    ``"multi"`` (every entry of ``values`` is a wasm result).
    """

    kind: str
    values: tuple[Lifting, ...] = ()
    outs: tuple[OutSlot, ...] = ()

    @property
    def wasm_types(self) -> tuple[str, ...]:
        out: list[str] = []
        for v in self.values:
            out.extend(v.wasm_types)
        return tuple(out)


# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Param:
    """One Python parameter of a host method and its lowering."""

    name: str
    lowering: Lowering


@dataclass(frozen=True, eq=False)
class HostFunction:
    """Everything funk knows about one exported host method.

    ``namespace``/``name`` are the import module and field the guest uses;
    ``attr`` is the Python method name.  ``wasm_params``/``wasm_results`` are
    the final wasm signature (out-pointer parameters included).
    """

    owner: type
    attr: str
    namespace: str
    name: str
    params: tuple[Param, ...]
    result: Result
    doc: str = field(default="", repr=False)

    @property
    def qualname(self) -> str:
        """``namespace.name`` as used in messages."""
        return f"{self.namespace}.{self.name}"

    @property
    def wasm_params(self) -> tuple[str, ...]:
        out: list[str] = []
        for p in self.params:
            out.extend(p.lowering.wasm_types)
        out.extend("i32" for _ in self.result.outs)
        return tuple(out)

    @property
    def wasm_results(self) -> tuple[str, ...]:
        return self.result.wasm_types

    @property
    def signature(self) -> str:
        """The wasm function type, e.g. ``(i32, i32) -> i32``."""
        res = self.wasm_results
        rtext = "()" if not res else res[0] if len(res) == 1 else "(" + ", ".join(res) + ")"
        return f"({', '.join(self.wasm_params)}) -> {rtext}"

    def wasm_param_names(self) -> list[str]:
        """A name for each wasm parameter (for WAT comments and C headers)."""
        names: list[str] = []
        for p in self.params:
            names.extend(p.lowering.wasm_names(p.name))
        names.extend(o.name for o in self.result.outs)
        return names

    def __repr__(self) -> str:
        return f"<HostFunction {self.qualname} {self.signature}>"


# --------------------------------------------------------------------------
# Decorators and class analysis

_EXPORT_ATTR = "__funk_export__"
_FUNCTIONS_ATTR = "__funk_functions__"


def export(name: str | None = None, *, namespace: str | None = None) -> Callable[[Any], Any]:
    """Export a method under another import name and/or namespace.

    ``@export("fd_write", namespace="wasi_snapshot_preview1")`` lets one class
    span several namespaces and use names that are not Python identifiers.
    """

    def mark(fn: Any) -> Any:
        setattr(fn, _EXPORT_ATTR, (namespace, name))
        return fn

    return mark


def internal(fn: Any) -> Any:
    """Keep a public-looking method out of the guest's imports."""
    setattr(fn, _EXPORT_ATTR, False)
    return fn


def host_functions_of(cls: type) -> tuple[HostFunction, ...]:
    """The host functions of a ``@host_functions`` class."""
    try:
        return typing.cast(tuple[HostFunction, ...], getattr(cls, _FUNCTIONS_ATTR))
    except AttributeError:
        raise DefinitionError(f"{cls.__qualname__} is not decorated with @host_functions") from None


def describe_class(cls: type, namespace: str) -> tuple[HostFunction, ...]:
    """Analyse every exported method of ``cls`` (see module docstring)."""
    seen: dict[str, HostFunction] = {}
    for klass in reversed(cls.__mro__):
        if klass is object:
            continue
        for attr, value in klass.__dict__.items():
            if attr.startswith("_") or not inspect.isfunction(value):
                continue
            mark = getattr(value, _EXPORT_ATTR, None)
            if mark is False:
                seen.pop(attr, None)
                continue
            ns, name = mark if mark else (None, None)
            seen[attr] = describe_method(cls, attr, value, ns or namespace, name or attr)
    functions = tuple(seen.values())
    names: dict[tuple[str, str], str] = {}
    for f in functions:
        key = (f.namespace, f.name)
        if key in names:
            raise DefinitionError(
                f"{cls.__qualname__}: methods {names[key]!r} and {f.attr!r} are both "
                f"exported as {f.qualname}")
        names[key] = f.attr
    return functions


def describe_method(cls: type, attr: str, fn: Callable[..., Any], namespace: str,
                    name: str) -> HostFunction:
    """Build the ``HostFunction`` for one method (errors name the culprit)."""
    where = f"{cls.__qualname__}.{attr}"
    try:
        hints = typing.get_type_hints(fn, include_extras=True)
    except Exception as exc:
        raise DefinitionError(f"{where}: cannot resolve annotations: {exc}") from exc
    sig = inspect.signature(fn)
    params: list[Param] = []
    for i, (pname, p) in enumerate(sig.parameters.items()):
        if i == 0:
            continue  # self
        if p.kind not in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            raise DefinitionError(f"{where}: parameter {pname!r}: *args, **kwargs and "
                                  "keyword-only parameters cannot come from wasm")
        if pname not in hints:
            raise DefinitionError(f"{where}: parameter {pname!r} has no annotation")
        params.append(Param(pname, _lowering(hints[pname], f"{where}: parameter {pname!r}")))
    if "return" not in hints:
        raise DefinitionError(f"{where}: missing return annotation (use -> None for no result)")
    result = _result(hints["return"], f"{where}: return annotation")
    return HostFunction(cls, attr, namespace, name, tuple(params), result,
                        inspect.getdoc(fn) or "")


def _metadata(ann: Any) -> tuple[Any, ...]:
    return tuple(getattr(ann, "__metadata__", ()))


def _lowering(ann: Any, where: str) -> Lowering:
    from funk.instance import Caller

    for meta in _metadata(ann):
        if isinstance(meta, Scalar):
            return ScalarLowering(meta)
        if meta in (STR, BYTES, MUT_BYTES):
            return RangeLowering(meta)
        if meta in (IO_SLICES, IO_SLICES_MUT):
            return IoSlicesLowering(meta is IO_SLICES_MUT)
    if typing.get_origin(ann) is Ptr:
        (target,) = typing.get_args(ann)
        return PtrLowering(_memory_target(target, where + " (Ptr target)"))
    if ann is Caller:
        return CallerLowering()
    if isinstance(ann, type) and issubclass(ann, WasmType):
        _check_valtypes(ann.wasm_params, where, ann, "wasm_params")
        return CustomLowering(ann)
    raise DefinitionError(f"{where}: unsupported annotation {_show(ann)}; {_HINT}")


def _result(ann: Any, where: str) -> Result:
    if ann is None or ann is type(None):
        return Result("none")
    if typing.get_origin(ann) is MultiValue:
        items = typing.get_args(ann)
        if not items:
            raise DefinitionError(f"{where}: MultiValue needs at least one result type")
        return Result("multi", tuple(_lifting(a, f"{where} (MultiValue item {i})")
                                     for i, a in enumerate(items)))
    ann = _spill_of_union(ann, where)
    if typing.get_origin(ann) is tuple:
        args = typing.get_args(ann)
        if not args or args[-1] is Ellipsis:
            raise DefinitionError(f"{where}: a tuple result needs fixed item types, "
                                  f"got {_show(ann)}")
        first = _lifting(args[0], f"{where} (tuple item 0)")
        outs = tuple(_out_slot(a, f"result{i}", f"{where} (tuple item {i})")
                     for i, a in enumerate(args[1:], start=1))
        return Result("spill", (first,), outs)
    return Result("single", (_lifting(ann, where),))


def _spill_of_union(ann: Any, where: str) -> Any:
    """``tuple[A, B] | A`` (the honest type of a spilled result) means ``tuple[A, B]``.

    A spilling method may return the bare status ``A``; spelling that in the
    annotation keeps type checkers happy and changes nothing at run time.
    """
    if typing.get_origin(ann) not in (typing.Union, types.UnionType):
        return ann
    members = typing.get_args(ann)
    tuples = [m for m in members if typing.get_origin(m) is tuple]
    others = [m for m in members if typing.get_origin(m) is not tuple]
    if (len(tuples) == 1 and len(others) == 1 and typing.get_args(tuples[0])
            and typing.get_args(tuples[0])[0] == others[0]):
        return tuples[0]
    raise DefinitionError(f"{where}: unsupported union {_show(ann)}; the only union allowed "
                          "is tuple[A, B, ...] | A (a spilled result that may be just A)")


def _lifting(ann: Any, where: str) -> Lifting:
    for meta in _metadata(ann):
        if isinstance(meta, Scalar):
            return ScalarLifting(meta)
    if isinstance(ann, type) and issubclass(ann, enum.IntEnum):
        return EnumLifting(ann)
    if isinstance(ann, type) and issubclass(ann, WasmType):
        _check_valtypes(ann.wasm_results, where, ann, "wasm_results")
        if not ann.wasm_results:
            raise DefinitionError(f"{where}: {ann.__name__} declares no wasm_results")
        return CustomLifting(ann)
    raise DefinitionError(f"{where}: unsupported result type {_show(ann)}; results may be "
                          "funk scalars, IntEnum classes or WasmType subclasses")


def _out_slot(ann: Any, name: str, where: str) -> OutSlot:
    if isinstance(ann, type) and issubclass(ann, enum.IntEnum):
        from funk.types import I32
        return OutSlot(name, I32)
    if isinstance(ann, type) and issubclass(ann, WasmType):
        lifting = _lifting(ann, where)
        if len(lifting.wasm_types) != 1 or lifting.wasm_types[0] not in ("i32", "i64"):
            raise DefinitionError(f"{where}: {ann.__name__} must have exactly one i32 or i64 "
                                  "wasm result to be written through an out-pointer")
        from funk.types import U32, U64
        return OutSlot(name, U32 if lifting.wasm_types[0] == "i32" else U64,
                       typing.cast(CustomLifting, lifting))
    return OutSlot(name, _memory_target(ann, where))


def _memory_target(ann: Any, where: str) -> Any:
    for meta in _metadata(ann):
        if isinstance(meta, Scalar):
            return meta
    if is_record(ann):
        return ann
    raise DefinitionError(f"{where}: {_show(ann)} has no memory layout; use a funk scalar "
                          "or a @record class")


def _check_valtypes(types: Sequence[str], where: str, cls: type, attr: str) -> None:
    bad = [t for t in types if t not in WASM_VALTYPES]
    if bad:
        raise DefinitionError(f"{where}: {cls.__name__}.{attr} has invalid wasm types {bad}")


def _target_size(target: Any) -> int:
    return target.size if isinstance(target, Scalar) else record_layout(target).size


def _target_c_type(target: Any) -> str:
    return target.c_type if isinstance(target, Scalar) else target.__name__


_C_OF_VALTYPE = {"i32": "int32_t", "i64": "int64_t", "f32": "float", "f64": "double"}

_HINT = ("parameters may be funk scalars (i32, u32, i64, u64, f32, f64, ...), Str, Bytes, "
         "MutBytes, IoSlices, IoSlicesMut, Ptr[T], Caller, or WasmType subclasses such as "
         "Handle[T]")


def _show(ann: Any) -> str:
    # ``list[int]`` passes ``isinstance(..., type)`` but its qualname is just "list"
    if isinstance(ann, type) and not typing.get_args(ann):
        return ann.__qualname__
    return repr(ann)

