"""Fixed-layout records in guest memory (C layout, little-endian).

``@record`` turns an annotated class into a dataclass whose fields are funk
scalars or other records, and computes where each field lives exactly as a
C compiler for wasm32 would (natural alignment, trailing padding).  Records
can be read and written through ``Ptr[Record]`` and returned through
out-pointers.
"""

from __future__ import annotations

import struct
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from funk.errors import DefinitionError, Trap
from funk.types import Scalar

__all__ = ["record", "record_layout", "RecordLayout", "is_record"]

C = TypeVar("C", bound=type)

_LAYOUT_ATTR = "__funk_record__"


@dataclass(frozen=True)
class RecordField:
    """One field: its name, offset from the record start, and its type."""

    name: str
    offset: int
    type: Any  # Scalar or a record class


class RecordLayout:
    """Size, alignment and a compiled ``struct`` for one record class."""

    def __init__(self, cls: type, fields: list[RecordField], size: int, align: int) -> None:
        self.cls = cls
        self.fields = fields
        self.size = size
        self.align = align
        fmt, self._build = _flatten(cls, fields, size)
        self.struct = struct.Struct("<" + fmt)

    def read(self, buffer: Any, offset: int) -> Any:
        """Decode a record instance from ``buffer`` at ``offset``."""
        values = self.struct.unpack_from(buffer, offset)
        return self._build(iter(values))

    def write(self, buffer: Any, offset: int, value: Any) -> None:
        """Encode ``value`` (an instance of the record class) at ``offset``."""
        if not isinstance(value, self.cls):
            raise Trap(f"expected a {self.cls.__name__} record, got {type(value).__name__}")
        try:
            self.struct.pack_into(buffer, offset, *_values(value))
        except struct.error as exc:
            raise Trap(f"cannot store {value!r}: {exc}") from None

    def c_definition(self) -> str:
        """A C struct declaration with the same layout, for generated headers."""
        lines = [f"typedef struct {self.cls.__name__} {{"]
        for f in self.fields:
            ctype = f.type.c_type if isinstance(f.type, Scalar) else f.type.__name__
            lines.append(f"    {ctype} {f.name};")
        lines.append(f"}} {self.cls.__name__};")
        lines.append(f"_Static_assert(sizeof({self.cls.__name__}) == {self.size}, "
                     f"\"{self.cls.__name__} layout\");")
        return "\n".join(lines)


def _values(value: Any) -> list[Any]:
    out: list[Any] = []
    for f in record_layout(type(value)).fields:
        v = getattr(value, f.name)
        if isinstance(f.type, Scalar):
            out.append(v)
        else:
            out.extend(_values(v))
    return out


def _flatten(cls: type, fields: list[RecordField], size: int) -> tuple[str, Callable[[Any], Any]]:
    """A struct format covering the record, and a builder from flat values."""
    fmt = []
    pos = 0
    builders: list[Callable[[Any], Any]] = []
    for f in fields:
        if f.offset > pos:
            fmt.append(f"{f.offset - pos}x")
        if isinstance(f.type, Scalar):
            fmt.append(f.type.fmt)
            builders.append(next)
            pos = f.offset + f.type.size
        else:
            inner = record_layout(f.type)
            inner_fmt, inner_build = _flatten(f.type, inner.fields, inner.size)
            fmt.append(inner_fmt)
            builders.append(inner_build)
            pos = f.offset + inner.size
    if size > pos:
        fmt.append(f"{size - pos}x")

    def build(values: Any) -> Any:
        return cls(*[b(values) for b in builders])

    return "".join(fmt), build


def is_record(obj: Any) -> bool:
    """True if ``obj`` is a class decorated with ``@record``."""
    return isinstance(obj, type) and _LAYOUT_ATTR in obj.__dict__


def record_layout(cls: Any) -> RecordLayout:
    """The layout of a ``@record`` class (raises ``DefinitionError`` otherwise)."""
    try:
        return typing.cast(RecordLayout, cls.__dict__[_LAYOUT_ATTR])
    except (KeyError, AttributeError):
        raise DefinitionError(f"{cls!r} is not a @record class") from None


def _scalar_of(annotation: Any) -> Any:
    for meta in getattr(annotation, "__metadata__", ()):
        if isinstance(meta, Scalar):
            return meta
    return None


if TYPE_CHECKING:  # type checkers learn that @record classes are dataclasses
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform() -> Callable[[Any], Any]:
        return lambda fn: fn


@dataclass_transform()
def record(cls: C) -> C:
    """Declare a fixed-layout record: a dataclass laid out like a C struct.

    Fields must be funk scalars (``u8`` ... ``f64``) or other records::

        @record
        class Prestat:
            tag: u8
            name_len: u32        # at offset 4, size 8, align 4
    """
    hints = typing.get_type_hints(cls, include_extras=True)
    fields: list[RecordField] = []
    offset = 0
    align = 1
    for name in cls.__dict__.get("__annotations__", {}):
        ann = hints[name]
        scalar = _scalar_of(ann)
        if scalar is not None:
            f_size, f_align, f_type = scalar.size, scalar.size, scalar
        elif is_record(ann):
            inner = record_layout(ann)
            f_size, f_align, f_type = inner.size, inner.align, ann
        else:
            raise DefinitionError(
                f"record {cls.__name__}: field {name!r} has type {ann!r}; "
                "record fields must be funk scalars (u8..u64, i8..i64, f32, f64) or records")
        offset = (offset + f_align - 1) // f_align * f_align
        fields.append(RecordField(name, offset, f_type))
        offset += f_size
        align = max(align, f_align)
    size = (offset + align - 1) // align * align
    data_cls: C = typing.cast(C, dataclass(cls))
    setattr(data_cls, _LAYOUT_ATTR, RecordLayout(data_cls, fields, size, align))
    return data_cls

