"""The annotation vocabulary of funk host APIs.

Every name here is meant to be used as a parameter or return annotation of a
method of a ``@host_functions`` class.  Each one says two things: which wasm
values the guest passes (or receives), and which Python value the host method
sees.  ``funk.signature`` reads these annotations; ``codegen`` turns them into
marshalling code.

Scalars are ``typing.Annotated`` aliases of ``int``/``float`` so that type
checkers see plain numbers while funk sees the wasm type in the metadata.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar

from funk.errors import Trap

if typing.TYPE_CHECKING:
    from funk.instance import Caller
    from funk.memory import GuestMemory

__all__ = [
    "i8", "u8", "i16", "u16", "i32", "u32", "i64", "u64", "f32", "f64",
    "Str", "Bytes", "MutBytes", "IoSlices", "IoSlicesMut", "Ptr", "MultiValue",
    "WasmType", "Handle", "Scalar", "Caller",
]

WASM_VALTYPES = ("i32", "i64", "f32", "f64")


@dataclass(frozen=True)
class Scalar:
    """A number passed as one wasm value (or stored in memory).

    ``name`` is the funk name (``u32``), ``valtype`` the wasm value type that
    carries it (``i32``), ``fmt`` its ``struct`` code in guest memory.
    """

    name: str
    valtype: str
    fmt: str
    signed: bool
    is_float: bool = False

    @property
    def size(self) -> int:
        """Bytes the value occupies in guest memory."""
        return struct.calcsize("<" + self.fmt)

    @property
    def bits(self) -> int:
        """Width of the integer in bits."""
        return self.size * 8

    @property
    def c_type(self) -> str:
        """The C spelling of this type, for generated headers."""
        if self.is_float:
            return "float" if self.size == 4 else "double"
        return f"{'int' if self.signed else 'uint'}{self.bits}_t"

    def __repr__(self) -> str:
        return self.name


I8 = Scalar("i8", "i32", "b", True)
U8 = Scalar("u8", "i32", "B", False)
I16 = Scalar("i16", "i32", "h", True)
U16 = Scalar("u16", "i32", "H", False)
I32 = Scalar("i32", "i32", "i", True)
U32 = Scalar("u32", "i32", "I", False)
I64 = Scalar("i64", "i64", "q", True)
U64 = Scalar("u64", "i64", "Q", False)
F32 = Scalar("f32", "f32", "f", True, is_float=True)
F64 = Scalar("f64", "f64", "d", True, is_float=True)

i8 = Annotated[int, I8]
u8 = Annotated[int, U8]
i16 = Annotated[int, I16]
u16 = Annotated[int, U16]
i32 = Annotated[int, I32]
u32 = Annotated[int, U32]
i64 = Annotated[int, I64]
u64 = Annotated[int, U64]
f32 = Annotated[float, F32]
f64 = Annotated[float, F64]


class _Marker:
    """Metadata object identifying one of funk's memory-range lowerings."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


STR = _Marker("Str")
BYTES = _Marker("Bytes")
MUT_BYTES = _Marker("MutBytes")
IO_SLICES = _Marker("IoSlices")
IO_SLICES_MUT = _Marker("IoSlicesMut")

#: ``(ptr, len)`` of UTF-8 text; the host gets a ``str``.  Invalid UTF-8 traps.
Str = Annotated[str, STR]
#: ``(ptr, len)``; the host gets a read-only ``memoryview`` of guest memory.
Bytes = Annotated[memoryview, BYTES]
#: ``(ptr, len)``; the host gets a writable ``memoryview`` of guest memory.
MutBytes = Annotated[memoryview, MUT_BYTES]
#: ``(ptr, count)`` of ciovec records; the host gets read-only views.
IoSlices = Annotated[Sequence[memoryview], IO_SLICES]
#: ``(ptr, count)`` of iovec records; the host gets writable views.
IoSlicesMut = Annotated[Sequence[memoryview], IO_SLICES_MUT]

T = TypeVar("T")


class Ptr(Generic[T]):
    """An ``i32`` address of a ``T`` in guest memory: a scalar or a record.

    The host receives a ``Ptr`` whose target was bounds-checked when the call
    began; ``get()`` reads the value, ``set(v)`` writes it (little-endian, C
    layout).  A ``Ptr`` is only valid during the host call that received it.
    """

    __slots__ = ("memory", "address")

    #: filled in by the per-type subclasses funk creates (``Ptr.of``)
    target: ClassVar[Any] = None
    size: ClassVar[int] = 0

    def __init__(self, memory: GuestMemory, address: int) -> None:
        self.memory = memory
        self.address = address

    def get(self) -> T:
        """Read the pointed-to value."""
        raise NotImplementedError

    def set(self, value: T) -> None:
        """Write ``value`` at the pointed-to address."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"Ptr[{self.target!r}](0x{self.address:x})"

    _specialised: ClassVar[dict[Any, type]] = {}

    @classmethod
    def of(cls, target: Any) -> type[Ptr[Any]]:
        """The concrete ``Ptr`` subclass for ``target`` (a Scalar or a record)."""
        from funk.records import record_layout

        try:
            return cls._specialised[target]
        except KeyError:
            pass
        if isinstance(target, Scalar):
            packer = struct.Struct("<" + target.fmt)
            unpack_from, pack_into = packer.unpack_from, packer.pack_into

            def get(self: Ptr[Any]) -> Any:
                return unpack_from(self.memory.view, self.address)[0]

            def set_(self: Ptr[Any], value: Any) -> None:
                try:
                    pack_into(self.memory.view, self.address, value)
                except struct.error as exc:
                    raise Trap(f"cannot store {value!r} as {target.name}: {exc}") from None

            size = packer.size
        else:
            layout = record_layout(target)

            def get(self: Ptr[Any]) -> Any:
                return layout.read(self.memory.view, self.address)

            def set_(self: Ptr[Any], value: Any) -> None:
                layout.write(self.memory.view, self.address, value)

            size = layout.size
        sub = type(f"Ptr[{getattr(target, '__name__', target)!r}]", (cls,), {
            "__slots__": (), "get": get, "set": set_, "target": target, "size": size,
        })
        cls._specialised[target] = sub
        return sub


class MultiValue(tuple):
    """Return annotation for true wasm multi-value results.

    ``-> MultiValue[i32, i64]``: the host returns a tuple ``(a, b)`` and the
    guest function type has two results, instead of spilling ``b`` through an
    out-pointer as a plain ``tuple[...]`` annotation would.
    (``MultiValue[...]`` is a generic alias whose arguments are the results.)
    """

    __slots__ = ()


class WasmType:
    """Base class for user-defined lowerings.

    A subclass says which wasm values carry it and how to convert:

    * ``wasm_params``: value types the guest passes for one parameter,
      converted by ``from_wasm(host, caller, *values)`` into what the host
      method receives;
    * ``wasm_results``: value types the guest receives for a result, produced
      by ``to_wasm(host, caller, value)`` (a single value or a tuple).

    ``host`` is the host object whose method is being called, so a lowering
    can consult its state; ``caller`` is the per-instance ``Caller``.
    Raise ``Trap`` to reject a value.
    """

    wasm_params: ClassVar[tuple[str, ...]] = ()
    wasm_results: ClassVar[tuple[str, ...]] = ()
    c_type: ClassVar[str] = ""

    @classmethod
    def from_wasm(cls, host: Any, caller: Caller, *values: Any) -> Any:
        """Convert the guest's wasm values into the host-side value."""
        raise NotImplementedError(f"{cls.__name__} cannot be used as a parameter")

    @classmethod
    def to_wasm(cls, host: Any, caller: Caller, value: Any) -> Any:
        """Convert a host-side value into the guest's wasm value(s)."""
        raise NotImplementedError(f"{cls.__name__} cannot be used as a result")


class Handle(WasmType):
    """A resource handle: a ``u64`` id in a per-instance table of ``kind``.

    ``Handle[Socket]`` as a parameter looks the id up in the calling instance's
    table for ``Socket`` (an unknown id traps) and passes the object; as a
    result it stores the returned object in that table and gives the guest the
    new id.  Ids count up from 0 per table and are never reused.
    """

    kind: ClassVar[Any] = None
    wasm_params = ("i64",)
    wasm_results = ("i64",)
    c_type = "uint64_t"
    _specialised: ClassVar[dict[Any, type[Handle]]] = {}

    def __class_getitem__(cls, kind: Any) -> type[Handle]:
        try:
            return cls._specialised[kind]
        except KeyError:
            name = getattr(kind, "__name__", str(kind))
            sub = type(f"Handle[{name}]", (cls,), {"kind": kind})
            cls._specialised[kind] = sub
            return sub

    @classmethod
    def from_wasm(cls, host: Any, caller: Caller, *values: Any) -> Any:
        return caller.resources.table(cls.kind).get(values[0] & 0xFFFFFFFFFFFFFFFF)

    @classmethod
    def to_wasm(cls, host: Any, caller: Caller, value: Any) -> Any:
        return caller.resources.table(cls.kind).add(value)


def __getattr__(name: str) -> Any:
    # ``Caller`` lives in funk.instance (it needs the backends' context object);
    # re-export it lazily to avoid an import cycle.
    if name == "Caller":
        from funk.instance import Caller
        return Caller
    raise AttributeError(name)
