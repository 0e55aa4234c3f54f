"""The parsed form of the known sections' entries, with their readers and encoders.

Each entry type has a ``read_*`` function (from a ``Reader`` positioned on it)
and an ``encode_*`` function (to its canonical bytes).  Constant expressions
(global initialisers, segment offsets, element expressions) are instruction
lists decoded by the same decoder as function bodies.  ``module`` strings the
entries together into sections.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.instructions import VALTYPES, Instr, decode_expr, encode_instrs
from wasm_rewriter.reader import Reader
from wasm_rewriter.writer import name as enc_name
from wasm_rewriter.writer import u32, u64

__all__ = [
    "CustomSection",
    "DataSegment",
    "ElementSegment",
    "Export",
    "FuncType",
    "FunctionBody",
    "Global",
    "GlobalType",
    "Import",
    "ImportDesc",
    "Limits",
    "TableType",
]

# Section ids.
SECTION_CUSTOM = 0
SECTION_TYPE = 1
SECTION_IMPORT = 2
SECTION_FUNCTION = 3
SECTION_TABLE = 4
SECTION_MEMORY = 5
SECTION_GLOBAL = 6
SECTION_EXPORT = 7
SECTION_START = 8
SECTION_ELEMENT = 9
SECTION_CODE = 10
SECTION_DATA = 11
SECTION_DATA_COUNT = 12
SECTION_TAG = 13

SECTION_ORDER = (SECTION_TYPE, SECTION_IMPORT, SECTION_FUNCTION, SECTION_TABLE, SECTION_MEMORY,
                 SECTION_TAG, SECTION_GLOBAL, SECTION_EXPORT, SECTION_START, SECTION_ELEMENT,
                 SECTION_DATA_COUNT, SECTION_CODE, SECTION_DATA)
"""Known section ids in the order the spec requires them."""

# External kinds (imports and exports).
KIND_FUNC = 0
KIND_TABLE = 1
KIND_MEMORY = 2
KIND_GLOBAL = 3
KIND_TAG = 4

# Value types (their bytes).
I32 = 0x7F
I64 = 0x7E
F32 = 0x7D
F64 = 0x7C
V128 = 0x7B
FUNCREF = 0x70
EXTERNREF = 0x6F
EXNREF = 0x69
_REFTYPES = frozenset((FUNCREF, EXTERNREF, EXNREF))

VALUE_TYPE_NAMES = {I32: "i32", I64: "i64", F32: "f32", F64: "f64", V128: "v128",
                    FUNCREF: "funcref", EXTERNREF: "externref", EXNREF: "exnref"}
"""The text names of value type bytes (as engines print them)."""


def _valtype(r: Reader) -> int:
    pos = r.pos
    t = r.u8()
    if t not in VALTYPES:
        raise MalformedModule(pos, f"invalid value type {t:#x}")
    return t


def _reftype(r: Reader) -> int:
    pos = r.pos
    t = r.u8()
    if t not in _REFTYPES:
        raise MalformedModule(pos, f"invalid reference type {t:#x}")
    return t


def read_expr(r: Reader, cache: dict[bytes, Instr]) -> list[Instr]:
    """A constant expression (instructions up to and including its final ``end``)."""
    instrs, r.pos = decode_expr(r.data, r.pos, r.end, cache=cache)
    return instrs


# -- types ----------------------------------------------------------------------


@dataclass(frozen=True)
class FuncType:
    """A function signature: parameter and result value type bytes."""

    params: tuple[int, ...] = ()
    results: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        # Accept lists from callers but keep the value hashable.
        object.__setattr__(self, "params", tuple(self.params))
        object.__setattr__(self, "results", tuple(self.results))


def read_functype(r: Reader) -> FuncType:
    """A function type (form byte 0x60, params, results)."""
    pos = r.pos
    form = r.u8()
    if form != 0x60:
        raise MalformedModule(pos, f"unsupported type form {form:#x} (only func types)")
    params = tuple(r.vec(lambda: _valtype(r), "parameter"))
    results = tuple(r.vec(lambda: _valtype(r), "result"))
    return FuncType(params, results)


def encode_functype(ft: FuncType) -> bytes:
    """The canonical bytes of a function type."""
    return b"\x60" + u32(len(ft.params)) + bytes(ft.params) + u32(len(ft.results)) + bytes(
        ft.results)


@dataclass(frozen=True)
class Limits:
    """Memory or table limits.

    ``flags`` is the limits byte: bit 0 has-maximum (kept in step with
    ``maximum``), bit 1 shared (threads), bit 2 64-bit index (memory64), kept
    so a shared or 64-bit memory re-encodes as such.
    """

    minimum: int
    maximum: int | None = None
    flags: int = 0

    def __post_init__(self) -> None:
        flags = (self.flags & ~1) | (0 if self.maximum is None else 1)
        object.__setattr__(self, "flags", flags)

    @property
    def shared(self) -> bool:
        """Shared memory (threads proposal)."""
        return bool(self.flags & 2)

    @property
    def is64(self) -> bool:
        """64-bit addresses (memory64 proposal)."""
        return bool(self.flags & 4)


def read_limits(r: Reader) -> Limits:
    """Limits: a flags byte, the minimum and, if flagged, the maximum."""
    pos = r.pos
    flags = r.u8()
    if flags > 7:
        raise MalformedModule(pos, f"invalid limits flags {flags:#x}")
    read = r.u64 if flags & 4 else r.u32
    minimum = read()
    maximum = read() if flags & 1 else None
    return Limits(minimum, maximum, flags)


def encode_limits(limits: Limits) -> bytes:
    """The canonical bytes of limits."""
    enc = u64 if limits.flags & 4 else u32
    out = bytes((limits.flags,)) + enc(limits.minimum)
    if limits.maximum is not None:
        out += enc(limits.maximum)
    return out


@dataclass(frozen=True)
class TableType:
    """A table: element reference type byte and limits."""

    reftype: int
    limits: Limits


def read_tabletype(r: Reader) -> TableType:
    """A table type."""
    reftype = _reftype(r)
    return TableType(reftype, read_limits(r))


def encode_tabletype(tt: TableType) -> bytes:
    """The canonical bytes of a table type."""
    return bytes((tt.reftype,)) + encode_limits(tt.limits)


@dataclass(frozen=True)
class GlobalType:
    """A global's value type byte and mutability."""

    valtype: int
    mutable: bool = False


def read_globaltype(r: Reader) -> GlobalType:
    """A global type: value type, then 0 (const) or 1 (var)."""
    valtype = _valtype(r)
    pos = r.pos
    mut = r.u8()
    if mut > 1:
        raise MalformedModule(pos, f"invalid mutability {mut:#x}")
    return GlobalType(valtype, bool(mut))


def encode_globaltype(gt: GlobalType) -> bytes:
    """The canonical bytes of a global type."""
    return bytes((gt.valtype, 1 if gt.mutable else 0))


# -- imports, exports, globals, tags ------------------------------------------------

ImportDesc = int | TableType | Limits | GlobalType | tuple[int, int]
"""Function: type index; table: TableType; memory: Limits; global: GlobalType;
tag: (attribute, type index)."""


@dataclass
class Import:
    """An import: ``kind`` 0 func, 1 table, 2 memory, 3 global, 4 tag; ``desc`` by kind."""

    module: str
    name: str
    kind: int
    desc: ImportDesc


def read_tagtype(r: Reader) -> tuple[int, int]:
    """A tag type: attribute byte (0 = exception) and type index."""
    pos = r.pos
    attribute = r.u8()
    if attribute != 0:
        raise MalformedModule(pos, f"invalid tag attribute {attribute:#x}")
    return (attribute, r.u32())


def encode_tagtype(tag: tuple[int, int]) -> bytes:
    """The canonical bytes of a tag type."""
    return bytes((tag[0],)) + u32(tag[1])


def read_import(r: Reader) -> Import:
    """An import entry."""
    module = r.name()
    name = r.name()
    pos = r.pos
    kind = r.u8()
    desc: ImportDesc
    if kind == KIND_FUNC:
        desc = r.u32()
    elif kind == KIND_TABLE:
        desc = read_tabletype(r)
    elif kind == KIND_MEMORY:
        desc = read_limits(r)
    elif kind == KIND_GLOBAL:
        desc = read_globaltype(r)
    elif kind == KIND_TAG:
        desc = read_tagtype(r)
    else:
        raise MalformedModule(pos, f"invalid import kind {kind:#x}")
    return Import(module, name, kind, desc)


def encode_import(imp: Import) -> bytes:
    """The canonical bytes of an import."""
    head = enc_name(imp.module) + enc_name(imp.name) + bytes((imp.kind,))
    desc = imp.desc
    if imp.kind == KIND_FUNC and isinstance(desc, int):
        return head + u32(desc)
    if imp.kind == KIND_TABLE and isinstance(desc, TableType):
        return head + encode_tabletype(desc)
    if imp.kind == KIND_MEMORY and isinstance(desc, Limits):
        return head + encode_limits(desc)
    if imp.kind == KIND_GLOBAL and isinstance(desc, GlobalType):
        return head + encode_globaltype(desc)
    if imp.kind == KIND_TAG and isinstance(desc, tuple):
        return head + encode_tagtype(desc)
    raise ValueError(f"import {imp.module}.{imp.name}: kind {imp.kind} does not fit {desc!r}")


@dataclass
class Export:
    """An export: name, kind (as for imports) and index in that kind's index space."""

    name: str
    kind: int
    index: int


def read_export(r: Reader) -> Export:
    """An export entry."""
    name = r.name()
    pos = r.pos
    kind = r.u8()
    if kind > KIND_TAG:
        raise MalformedModule(pos, f"invalid export kind {kind:#x}")
    return Export(name, kind, r.u32())


def encode_export(exp: Export) -> bytes:
    """The canonical bytes of an export."""
    return enc_name(exp.name) + bytes((exp.kind,)) + u32(exp.index)


@dataclass
class Global:
    """A defined global: its type and its initialiser (a constant expression ending in end)."""

    type: GlobalType
    init: list[Instr]


def read_global(r: Reader, cache: dict[bytes, Instr]) -> Global:
    """A global entry."""
    gt = read_globaltype(r)
    return Global(gt, read_expr(r, cache))


def encode_global(g: Global, canonical: bool = False) -> bytes:
    """The bytes of a global (instructions from ``raw`` unless ``canonical``)."""
    return encode_globaltype(g.type) + encode_instrs(g.init, canonical)


# -- element and data segments --------------------------------------------------------


@dataclass
class ElementSegment:
    """An element segment in any of its 8 encodings, ``flags`` 0-7.

    Flag bits: 0 passive or declarative (else active); 1 with bit 0 clear, an
    explicit table index; with bit 0 set, declarative; 2 ``items`` are
    expressions (``list[list[Instr]]``) rather than function indices
    (``list[int]``).  ``table`` and ``offset`` matter only for active segments
    (``offset`` is ``None`` otherwise).  ``elem_type`` is the reference type
    byte; the index forms can only hold functions (0x70), which flags 0 and 4
    imply and flags 1-3 write as the element kind byte 0x00.
    """

    flags: int
    table: int
    offset: list[Instr] | None
    elem_type: int
    items: list[int] | list[list[Instr]]

    @property
    def mode(self) -> str:
        """``"active"``, ``"passive"`` or ``"declarative"``."""
        if not self.flags & 1:
            return "active"
        return "declarative" if self.flags & 2 else "passive"

    @property
    def uses_exprs(self) -> bool:
        """True when ``items`` are expressions, not function indices."""
        return bool(self.flags & 4)


def read_element(r: Reader, cache: dict[bytes, Instr]) -> ElementSegment:
    """An element segment."""
    pos = r.pos
    flags = r.u32()
    if flags > 7:
        raise MalformedModule(pos, f"invalid element segment flags {flags}")
    table = 0
    offset: list[Instr] | None = None
    elem_type = FUNCREF
    if not flags & 1:
        if flags & 2:
            table = r.u32()
        offset = read_expr(r, cache)
    if flags & 3:  # every form but 0 and 4 spells out the element kind / type
        if flags & 4:
            elem_type = _reftype(r)
        else:
            kpos = r.pos
            kind = r.u8()
            if kind != 0x00:
                raise MalformedModule(kpos, f"invalid element kind {kind:#x}")
    items: list[int] | list[list[Instr]]
    if flags & 4:
        items = r.vec(lambda: read_expr(r, cache), "element expression")
    else:
        items = r.vec(r.u32, "element function index")
    return ElementSegment(flags, table, offset, elem_type, items)


def encode_element(seg: ElementSegment, canonical: bool = False) -> bytes:
    """The bytes of an element segment, in the encoding its ``flags`` name."""
    flags = seg.flags
    if not 0 <= flags <= 7:
        raise ValueError(f"element segment flags {flags} not in 0-7")
    parts = [u32(flags)]
    if not flags & 1:
        if seg.offset is None:
            raise ValueError("active element segment without an offset expression")
        if flags & 2:
            parts.append(u32(seg.table))
        elif seg.table != 0:
            raise ValueError(f"element segment flags {flags} imply table 0, not {seg.table}")
        parts.append(encode_instrs(seg.offset, canonical))
    if flags & 4:
        if flags & 3:
            parts.append(bytes((seg.elem_type,)))
        elif seg.elem_type != FUNCREF:
            raise ValueError(f"element segment flags {flags} imply funcref")
        exprs: list[list[Instr]] = seg.items  # type: ignore[assignment]
        parts.append(u32(len(exprs)))
        parts.extend(encode_instrs(e, canonical) for e in exprs)
    else:
        if seg.elem_type != FUNCREF:
            raise ValueError("element segments of function indices hold funcref only")
        if flags & 3:
            parts.append(b"\x00")
        indices: list[int] = seg.items  # type: ignore[assignment]
        parts.append(u32(len(indices)))
        parts.extend(u32(i) for i in indices)
    return b"".join(parts)


@dataclass
class DataSegment:
    """A data segment: ``flags`` 0 (active, memory 0), 1 (passive), 2 (active, explicit memory).

    ``offset`` is ``None`` for a passive segment.
    """

    flags: int
    memory: int
    offset: list[Instr] | None
    data: bytes

    @property
    def mode(self) -> str:
        """``"active"`` or ``"passive"``."""
        return "passive" if self.flags == 1 else "active"


def read_data(r: Reader, cache: dict[bytes, Instr]) -> DataSegment:
    """A data segment."""
    pos = r.pos
    flags = r.u32()
    if flags > 2:
        raise MalformedModule(pos, f"invalid data segment flags {flags}")
    memory = r.u32() if flags == 2 else 0
    offset = None if flags == 1 else read_expr(r, cache)
    size = r.u32()
    return DataSegment(flags, memory, offset, r.take(size))


def encode_data(seg: DataSegment, canonical: bool = False) -> bytes:
    """The bytes of a data segment."""
    parts = [u32(seg.flags)]
    if seg.flags == 2:
        parts.append(u32(seg.memory))
    elif seg.flags in (0, 1):
        if seg.memory != 0:
            raise ValueError(f"data segment flags {seg.flags} imply memory 0")
    else:
        raise ValueError(f"data segment flags {seg.flags} not in 0-2")
    if seg.flags != 1:
        if seg.offset is None:
            raise ValueError("active data segment without an offset expression")
        parts.append(encode_instrs(seg.offset, canonical))
    parts.append(u32(len(seg.data)))
    parts.append(bytes(seg.data))
    return b"".join(parts)


# -- code ------------------------------------------------------------------------------


@dataclass
class FunctionBody:
    """A defined function's locals, as (count, value type) runs, and instructions.

    ``code`` ends with the function's final ``end``.  The hidden fields remember
    the original encoding of the locals and of the body size, so an untouched
    body re-encodes byte for byte.
    """

    locals: list[tuple[int, int]]
    code: list[Instr]
    # Original bytes of the locals vector and the list they decoded to: used
    # only while ``locals`` still equals that list.
    _raw_locals: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _orig_locals: list[tuple[int, int]] | None = field(
        default=None, init=False, repr=False, compare=False)
    _size_width: int = field(default=0, init=False, repr=False, compare=False)


def read_locals(r: Reader) -> list[tuple[int, int]]:
    """A function body's locals vector."""
    def entry() -> tuple[int, int]:
        n = r.u32()
        return (n, _valtype(r))
    return r.vec(entry, "locals")


def encode_locals(locals_: list[tuple[int, int]]) -> bytes:
    """The canonical bytes of a locals vector."""
    return u32(len(locals_)) + b"".join(u32(n) + bytes((t,)) for n, t in locals_)


# -- custom sections ---------------------------------------------------------------


@dataclass
class CustomSection:
    """A custom section: name and payload, and where it sits.

    ``after`` is the id of the known section it follows (0: before every known
    section); the encoder writes it right after that section, in the original
    order among customs sharing the anchor.  The default places a new custom
    section at the end of the module.
    """

    name: str
    payload: bytes
    after: int = SECTION_DATA
    # The section's original bytes and the (name, payload) they decoded to.
    _raw: bytes | None = field(default=None, init=False, repr=False, compare=False)
    _orig: tuple[str, bytes] | None = field(default=None, init=False, repr=False, compare=False)
