"""``Module``: a whole parsed module, the editing operations, and the encoder.

Parsing keeps each known section's original bytes; encoding writes a section
from those bytes unless it was changed (the ``add_*`` methods and ``touch``
mark it dirty; a changed entry count or ``start`` / ``data_count`` value is
noticed even without ``touch``).  The code section is the exception: it is
always re-encoded from the decoded instructions, keeping the original width of
every size field that still fits, so an unmodified module comes back byte for
byte *through* the instruction codec.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.instructions import Instr, decode_body, encode_instrs
from wasm_rewriter.names import (
    IndirectNameMap,
    NameMap,
    NameSection,
    encode_name_section,
    parse_name_section,
)
from wasm_rewriter.opcodes import END, FUNCTION_INDEX_OPS, GLOBAL_INDEX_OPS
from wasm_rewriter.reader import Reader
from wasm_rewriter.sections import (
    KIND_FUNC,
    KIND_GLOBAL,
    KIND_MEMORY,
    KIND_TABLE,
    KIND_TAG,
    SECTION_CODE,
    SECTION_CUSTOM,
    SECTION_DATA,
    SECTION_DATA_COUNT,
    SECTION_ELEMENT,
    SECTION_EXPORT,
    SECTION_FUNCTION,
    SECTION_GLOBAL,
    SECTION_IMPORT,
    SECTION_MEMORY,
    SECTION_ORDER,
    SECTION_START,
    SECTION_TABLE,
    SECTION_TAG,
    SECTION_TYPE,
    CustomSection,
    DataSegment,
    ElementSegment,
    Export,
    FunctionBody,
    FuncType,
    Global,
    GlobalType,
    Import,
    Limits,
    TableType,
    encode_data,
    encode_element,
    encode_export,
    encode_functype,
    encode_global,
    encode_import,
    encode_limits,
    encode_locals,
    encode_tabletype,
    encode_tagtype,
    read_data,
    read_element,
    read_export,
    read_functype,
    read_global,
    read_import,
    read_limits,
    read_locals,
    read_tabletype,
    read_tagtype,
)
from wasm_rewriter.writer import name as enc_name
from wasm_rewriter.writer import u32

__all__ = ["Module"]

_HEADER = b"\0asm\x01\x00\x00\x00"
_RANK = {sid: rank for rank, sid in enumerate(SECTION_ORDER)}
_NAME_SECTION = "name"

# Sections whose parsed form is a list attribute of Module.
_LIST_SECTIONS = {
    SECTION_TYPE: "types",
    SECTION_IMPORT: "imports",
    SECTION_FUNCTION: "functions",
    SECTION_TABLE: "tables",
    SECTION_MEMORY: "memories",
    SECTION_TAG: "tags",
    SECTION_GLOBAL: "globals",
    SECTION_EXPORT: "exports",
    SECTION_ELEMENT: "elements",
    SECTION_CODE: "code",
    SECTION_DATA: "data",
}


def _section(sid: int, payload: bytes, width: int = 0) -> bytes:
    """A section: id byte, payload size (at least ``width`` bytes wide), payload."""
    return bytes((sid,)) + u32(len(payload), width) + payload


class Module:
    """A WebAssembly module, parsed into sections and decoded instructions.

    Attributes (all public and editable; see ``touch`` for direct edits):
        types: function types.
        imports: imports, in order.
        functions: the type index of each defined function.
        tables, memories: defined tables and memories.
        tags: defined tags, as (attribute, type index).
        globals: defined globals.
        exports: exports, in order.
        start: the start function index, or None.
        elements, data: element and data segments.
        data_count: the data count section's value, or None when absent.
        code: one ``FunctionBody`` per defined function.
        customs: custom sections, each knowing which known section it follows.
        names: the parsed ``name`` section, or None (absent or malformed).
        names_error: why the ``name`` section could not be parsed (it is then
            kept as raw bytes, like engines that ignore a bad name section), or None.
    """

    def __init__(self) -> None:
        self.types: list[FuncType] = []
        self.imports: list[Import] = []
        self.functions: list[int] = []
        self.tables: list[TableType] = []
        self.memories: list[Limits] = []
        self.tags: list[tuple[int, int]] = []
        self.globals: list[Global] = []
        self.exports: list[Export] = []
        self.start: int | None = None
        self.elements: list[ElementSegment] = []
        self.data_count: int | None = None
        self.code: list[FunctionBody] = []
        self.data: list[DataSegment] = []
        self.customs: list[CustomSection] = []
        self.names: NameSection | None = None
        self.names_error: MalformedModule | None = None
        # Original encodings, for writing unchanged sections back as they were.
        self._raw: dict[int, bytes] = {}
        self._size_width: dict[int, int] = {}
        self._orig_len: dict[int, int] = {}
        self._orig_start: int | None = None
        self._orig_data_count: int | None = None
        self._code_count_width = 0
        self._dirty: set[int] = set()
        self._name_custom: CustomSection | None = None
        self._names_dirty = False

    # -- parsing ------------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes) -> Module:
        """Parse a binary module; every problem is a ``MalformedModule`` with its offset."""
        if isinstance(data, (bytearray, memoryview)):
            data = bytes(data)
        if not isinstance(data, bytes):
            raise TypeError(f"Module.parse needs bytes, not {type(data).__name__}")
        if data[:4] != _HEADER[:4]:
            raise MalformedModule(0, "not a wasm module (bad magic number)")
        if len(data) < 8:
            raise MalformedModule(len(data), "unexpected end of the module header")
        if data[4:8] != _HEADER[4:]:
            raise MalformedModule(4, f"unsupported version {data[4:8].hex()} (only 1)")
        m = cls()
        cache: dict[bytes, Instr] = {}  # interned instructions, shared by the whole module
        r = Reader(data, 8)
        last_rank = -1
        last_known = 0
        offsets: dict[int, int] = {}
        while not r.at_end():
            start = r.pos
            sid = r.u8()
            size_pos = r.pos
            size, width = r.u32_width()
            if size > r.remaining:
                raise MalformedModule(
                    size_pos, f"section size {size} exceeds the {r.remaining} bytes left")
            end = r.pos + size
            if sid == SECTION_CUSTOM:
                m._parse_custom(data, start, r.pos, end, last_known)
            else:
                rank = _RANK.get(sid)
                if rank is None:
                    raise MalformedModule(start, f"unknown section id {sid}")
                if rank <= last_rank:
                    raise MalformedModule(start, f"section {sid} out of order or repeated")
                last_rank = rank
                last_known = sid
                offsets[sid] = start
                sr = Reader(data, r.pos, end)
                m._parse_section(sid, sr, cache)
                sr.expect_end(f"section {sid}")
                m._raw[sid] = data[start:end]
                m._size_width[sid] = width
            r.pos = end
        if len(m.functions) != len(m.code):
            raise MalformedModule(offsets.get(SECTION_CODE, len(data)),
                                  f"{len(m.functions)} functions declared but "
                                  f"{len(m.code)} bodies in the code section")
        if m.data_count is not None and m.data_count != len(m.data):
            raise MalformedModule(offsets.get(SECTION_DATA, len(data)),
                                  f"data count section says {m.data_count} segments, "
                                  f"data section has {len(m.data)}")
        for sid, attr in _LIST_SECTIONS.items():
            m._orig_len[sid] = len(getattr(m, attr))
        m._orig_start = m.start
        m._orig_data_count = m.data_count
        return m

    def _parse_custom(self, data: bytes, start: int, pos: int, end: int,
                      after: int) -> None:
        cr = Reader(data, pos, end)
        name = cr.name()
        custom = CustomSection(name, data[cr.pos:end], after)
        custom._raw = data[start:end]
        custom._orig = (name, custom.payload)
        self.customs.append(custom)
        if name == _NAME_SECTION and self._name_custom is None:
            self._name_custom = custom
            try:
                self.names = parse_name_section(data, cr.pos, end)
            except MalformedModule as exc:
                # Engines ignore a bad name section; so do we, keeping its bytes.
                self.names_error = exc

    def _parse_section(self, sid: int, r: Reader, cache: dict[bytes, Instr]) -> None:
        if sid == SECTION_TYPE:
            self.types = r.vec(lambda: read_functype(r), "type")
        elif sid == SECTION_IMPORT:
            self.imports = r.vec(lambda: read_import(r), "import")
        elif sid == SECTION_FUNCTION:
            self.functions = r.vec(r.u32, "function")
        elif sid == SECTION_TABLE:
            self.tables = r.vec(lambda: read_tabletype(r), "table")
        elif sid == SECTION_MEMORY:
            self.memories = r.vec(lambda: read_limits(r), "memory")
        elif sid == SECTION_TAG:
            self.tags = r.vec(lambda: read_tagtype(r), "tag")
        elif sid == SECTION_GLOBAL:
            self.globals = r.vec(lambda: read_global(r, cache), "global")
        elif sid == SECTION_EXPORT:
            self.exports = r.vec(lambda: read_export(r), "export")
        elif sid == SECTION_START:
            self.start = r.u32()
        elif sid == SECTION_ELEMENT:
            self.elements = r.vec(lambda: read_element(r, cache), "element segment")
        elif sid == SECTION_DATA_COUNT:
            self.data_count = r.u32()
        elif sid == SECTION_CODE:
            self._parse_code(r, cache)
        elif sid == SECTION_DATA:
            self.data = r.vec(lambda: read_data(r, cache), "data segment")

    def _parse_code(self, r: Reader, cache: dict[bytes, Instr]) -> None:
        count_pos = r.pos
        count = r.count("function body")
        self._code_count_width = r.pos - count_pos
        if count != len(self.functions):
            raise MalformedModule(count_pos, f"code section has {count} bodies for "
                                             f"{len(self.functions)} declared functions")
        data = r.data
        bodies = []
        for _ in range(count):
            size_pos = r.pos
            size, width = r.u32_width()
            if size > r.remaining:
                raise MalformedModule(
                    size_pos, f"function body size {size} exceeds the {r.remaining} bytes left")
            end = r.pos + size
            br = Reader(data, r.pos, end)
            locals_ = read_locals(br)
            body = FunctionBody(locals_, decode_body(data, br.pos, end, cache=cache))
            body._raw_locals = data[r.pos:br.pos]
            body._orig_locals = list(locals_)
            body._size_width = width
            bodies.append(body)
            r.pos = end
        self.code = bodies

    # -- encoding -----------------------------------------------------------------------

    def encode(self, canonical: bool = False) -> bytes:
        """The module's bytes.

        Unchanged sections are copied from the input; changed ones are encoded
        from their parsed form; the code section is always encoded from the
        instructions.  ``canonical=True`` ignores every original byte and
        encodes every section (and the parsed ``name`` section) from its parsed
        form with minimal LEB128s.
        """
        if len(self.functions) != len(self.code):
            raise ValueError(f"{len(self.functions)} functions but {len(self.code)} bodies")
        anchored: dict[int, list[CustomSection]] = {}
        for custom in self.customs:
            if custom.after != 0 and custom.after not in _RANK:
                raise ValueError(f"custom section {custom.name!r}: after={custom.after} "
                                 "is not a known section id")
            anchored.setdefault(custom.after, []).append(custom)
        out = [_HEADER]
        for custom in anchored.get(0, ()):
            out.append(self._encode_custom(custom, canonical))
        for sid in SECTION_ORDER:
            section = self._encode_section(sid, canonical)
            if section is not None:
                out.append(section)
            for custom in anchored.get(sid, ()):
                out.append(self._encode_custom(custom, canonical))
        return b"".join(out)

    def _encode_custom(self, custom: CustomSection, canonical: bool) -> bytes:
        if (custom is self._name_custom and self.names is not None
                and (canonical or self._names_dirty)):
            return _section(SECTION_CUSTOM, enc_name(custom.name)
                            + encode_name_section(self.names))
        orig = custom._orig
        if (not canonical and custom._raw is not None and orig is not None
                and custom.name == orig[0] and custom.payload == orig[1]):
            return custom._raw
        return _section(SECTION_CUSTOM, enc_name(custom.name) + bytes(custom.payload))

    def _is_dirty(self, sid: int) -> bool:
        if sid in self._dirty:
            return True
        if sid == SECTION_START:
            return self.start != self._orig_start
        if sid == SECTION_DATA_COUNT:
            return self.data_count != self._orig_data_count
        # An entry added or removed without touch() still counts as a change.
        return len(getattr(self, _LIST_SECTIONS[sid])) != self._orig_len.get(sid, 0)

    def _encode_section(self, sid: int, canonical: bool) -> bytes | None:
        if sid == SECTION_CODE:
            return self._encode_code(canonical)
        if sid == SECTION_START:
            if self.start is None:
                return None
        elif sid == SECTION_DATA_COUNT:
            if self.data_count is None:
                return None
        elif sid not in self._raw and not getattr(self, _LIST_SECTIONS[sid]):
            return None
        if not canonical and sid in self._raw and not self._is_dirty(sid):
            return self._raw[sid]
        payload = self._encode_payload(sid, canonical)
        return _section(sid, payload, 0 if canonical else self._size_width.get(sid, 0))

    def _encode_payload(self, sid: int, canonical: bool) -> bytes:
        if sid == SECTION_START:
            assert self.start is not None
            return u32(self.start)
        if sid == SECTION_DATA_COUNT:
            assert self.data_count is not None
            return u32(self.data_count)
        encoders: dict[int, Callable[[Any], bytes]] = {
            SECTION_TYPE: encode_functype,
            SECTION_IMPORT: encode_import,
            SECTION_FUNCTION: u32,
            SECTION_TABLE: encode_tabletype,
            SECTION_MEMORY: encode_limits,
            SECTION_TAG: encode_tagtype,
            SECTION_GLOBAL: lambda g: encode_global(g, canonical),
            SECTION_EXPORT: encode_export,
            SECTION_ELEMENT: lambda s: encode_element(s, canonical),
            SECTION_DATA: lambda s: encode_data(s, canonical),
        }
        encode = encoders[sid]
        items = getattr(self, _LIST_SECTIONS[sid])
        return u32(len(items)) + b"".join([encode(item) for item in items])

    def _encode_code(self, canonical: bool) -> bytes | None:
        if not self.code and SECTION_CODE not in self._raw:
            return None
        parts = [u32(len(self.code), 0 if canonical else self._code_count_width)]
        for body in self.code:
            if (not canonical and body._raw_locals is not None
                    and body.locals == body._orig_locals):
                locals_ = body._raw_locals
            else:
                locals_ = encode_locals(body.locals)
            instrs = encode_instrs(body.code, canonical)
            # The size keeps its original width when the value still fits in it.
            parts.append(u32(len(locals_) + len(instrs), 0 if canonical else body._size_width))
            parts.append(locals_)
            parts.append(instrs)
        return _section(SECTION_CODE, b"".join(parts),
                        0 if canonical else self._size_width.get(SECTION_CODE, 0))

    def touch(self, section_id: int) -> None:
        """Mark a section changed after editing its parsed form directly.

        ``touch(0)`` marks the parsed ``name`` section changed (other custom
        sections are compared with their original bytes, no touch needed).
        The code section is always re-encoded, so touching it is a no-op.
        """
        if section_id == SECTION_CUSTOM:
            self._names_dirty = True
        elif section_id in _RANK:
            self._dirty.add(section_id)
        else:
            raise ValueError(f"unknown section id {section_id}")

    # -- queries ------------------------------------------------------------------------

    def num_imported(self, kind: int) -> int:
        """How many imports of this kind (0 func, 1 table, 2 memory, 3 global, 4 tag)."""
        return sum(1 for imp in self.imports if imp.kind == kind)

    @property
    def total_functions(self) -> int:
        """Size of the function index space: imported, then defined functions."""
        return self.num_imported(KIND_FUNC) + len(self.functions)

    @property
    def total_globals(self) -> int:
        """Size of the global index space: imported, then defined globals."""
        return self.num_imported(KIND_GLOBAL) + len(self.globals)

    def _kind_total(self, kind: int) -> int:
        defined: dict[int, list[Any]] = {
            KIND_FUNC: self.functions, KIND_TABLE: self.tables, KIND_MEMORY: self.memories,
            KIND_GLOBAL: self.globals, KIND_TAG: self.tags}
        return self.num_imported(kind) + len(defined[kind])

    def function_type(self, func_index: int) -> FuncType:
        """The signature of a function, imported or defined, by function index."""
        if func_index >= 0:
            n = 0
            for imp in self.imports:
                if imp.kind == KIND_FUNC:
                    if n == func_index:
                        return self.types[imp.desc]  # type: ignore[index]
                    n += 1
            i = func_index - n
            if i < len(self.functions):
                return self.types[self.functions[i]]
        raise IndexError(f"function index {func_index} out of range "
                         f"({self.total_functions} functions)")

    # -- editing ------------------------------------------------------------------------

    def _check_type_index(self, type_index: int) -> None:
        if not isinstance(type_index, int) or not 0 <= type_index < len(self.types):
            raise ValueError(f"type index {type_index!r} out of range "
                             f"({len(self.types)} types)")

    def add_type(self, ft: FuncType) -> int:
        """The index of a function type equal to ``ft``, appended if there is none."""
        for i, existing in enumerate(self.types):
            if existing == ft:
                return i
        self.types.append(ft)
        self._dirty.add(SECTION_TYPE)
        return len(self.types) - 1

    def _insert_import(self, imp: Import) -> int:
        """Insert after the last import of the same kind; return its index in that space."""
        count = 0
        where = len(self.imports)
        for i, existing in enumerate(self.imports):
            if existing.kind == imp.kind:
                count += 1
                where = i + 1
        self.imports.insert(where, imp)
        self._dirty.add(SECTION_IMPORT)
        return count

    def add_function_import(self, module: str, name: str, type_index: int) -> int:
        """Import a function; return its index.

        The new function takes the index after the last imported function, so
        every defined function's index grows by one, and every reference to one
        is fixed: call / return_call / ref.func in all code, global
        initialisers, element segments, exports, the start function and the
        ``name`` section's function, local and label maps.  Indices a caller
        holds from before (e.g. from ``add_function``) shift too.
        """
        self._check_type_index(type_index)
        index = self._insert_import(Import(module, name, KIND_FUNC, type_index))
        self._shift(KIND_FUNC, index)
        return index

    def add_global_import(self, module: str, name: str, gt: GlobalType) -> int:
        """Import a global; return its index, shifting every defined global's index by one.

        Fixed: global.get / global.set in all code and constant expressions
        (global initialisers, element and data segment offsets, element
        expressions), exports of globals and the ``name`` section's global map.
        """
        if not isinstance(gt, GlobalType):
            raise TypeError(f"add_global_import needs a GlobalType, not {type(gt).__name__}")
        index = self._insert_import(Import(module, name, KIND_GLOBAL, gt))
        self._shift(KIND_GLOBAL, index)
        return index

    def add_global(self, gt: GlobalType, init: list[Instr]) -> int:
        """Define a global (appended: no index shifts); return its index."""
        if not init or init[-1].op != END:
            raise ValueError("a global initialiser must end with an end instruction")
        self.globals.append(Global(gt, list(init)))
        self._dirty.add(SECTION_GLOBAL)
        return self.total_globals - 1

    def add_function(self, type_index: int, locals: list[tuple[int, int]],
                     code: list[Instr]) -> int:
        """Define a function (appended: no index shifts); return its index.

        ``locals`` are (count, value type) runs; ``code`` must end with ``end``.
        """
        self._check_type_index(type_index)
        if not code or code[-1].op != END:
            raise ValueError("a function body must end with an end instruction")
        self.functions.append(type_index)
        self.code.append(FunctionBody(list(locals), list(code)))
        self._dirty.add(SECTION_FUNCTION)
        return self.total_functions - 1

    def add_export(self, name: str, kind: int, index: int) -> None:
        """Export an item; a name already exported raises ``ValueError``."""
        if any(exp.name == name for exp in self.exports):
            raise ValueError(f"export name {name!r} already used")
        if kind not in (KIND_FUNC, KIND_TABLE, KIND_MEMORY, KIND_GLOBAL, KIND_TAG):
            raise ValueError(f"invalid export kind {kind!r}")
        if not isinstance(index, int) or not 0 <= index < self._kind_total(kind):
            raise ValueError(f"export {name!r}: index {index!r} out of range for kind {kind}")
        self.exports.append(Export(name, kind, index))
        self._dirty.add(SECTION_EXPORT)

    # -- index shifting -----------------------------------------------------------------

    def _shift(self, kind: int, threshold: int) -> None:
        """Add one to every function (or global) index >= ``threshold``, everywhere."""
        ops = FUNCTION_INDEX_OPS if kind == KIND_FUNC else GLOBAL_INDEX_OPS
        memo: dict[Instr, Instr] = {}

        def fix(instrs: list[Instr]) -> bool:
            changed = False
            for i, ins in enumerate(instrs):
                if ins.op in ops and ins.imm >= threshold:
                    new = memo.get(ins)
                    if new is None:
                        new = memo[ins] = Instr(ins.op, ins.imm + 1)
                    instrs[i] = new
                    changed = True
            return changed

        for body in self.code:
            fix(body.code)
        if any([fix(g.init) for g in self.globals]):
            self._dirty.add(SECTION_GLOBAL)
        changed = False
        for seg in self.elements:
            if seg.offset is not None and fix(seg.offset):
                changed = True
            if seg.flags & 4:
                exprs: list[list[Instr]] = seg.items  # type: ignore[assignment]
                if any([fix(e) for e in exprs]):
                    changed = True
            elif kind == KIND_FUNC:
                indices: list[int] = seg.items  # type: ignore[assignment]
                for i, f in enumerate(indices):
                    if f >= threshold:
                        indices[i] = f + 1
                        changed = True
        if changed:
            self._dirty.add(SECTION_ELEMENT)
        if any([fix(seg.offset) for seg in self.data if seg.offset is not None]):
            self._dirty.add(SECTION_DATA)
        for exp in self.exports:
            if exp.kind == kind and exp.index >= threshold:
                exp.index += 1
                self._dirty.add(SECTION_EXPORT)
        if kind == KIND_FUNC and self.start is not None and self.start >= threshold:
            self.start += 1
            self._dirty.add(SECTION_START)
        if self.names is not None:
            self._shift_names(kind, threshold)

    def _shift_names(self, kind: int, threshold: int) -> None:
        assert self.names is not None
        for sub in self.names.subsections:
            if isinstance(sub, NameMap) and sub.id == (1 if kind == KIND_FUNC else 7):
                for i, (index, text) in enumerate(sub.names):
                    if index >= threshold:
                        sub.names[i] = (index + 1, text)
                        self._names_dirty = True
            elif isinstance(sub, IndirectNameMap) and kind == KIND_FUNC:
                # Local (2) and label (3) names are keyed by function index.
                for i, (index, inner) in enumerate(sub.names):
                    if index >= threshold:
                        sub.names[i] = (index + 1, inner)
                        self._names_dirty = True

    # -- comparison ---------------------------------------------------------------------

    def _structure(self) -> tuple[Any, ...]:
        customs: list[tuple[str, int, object]] = []
        for custom in self.customs:
            if custom is self._name_custom and self.names is not None:
                customs.append((custom.name, custom.after, self.names))
            else:
                customs.append((custom.name, custom.after, bytes(custom.payload)))
        return (self.types, self.imports, self.functions, self.tables, self.memories,
                self.tags, self.globals, self.exports, self.start, self.elements,
                self.data_count, self.code, self.data, customs)

    def __eq__(self, other: object) -> bool:
        """Structural equality: same parsed sections and instructions (original bytes ignored)."""
        if not isinstance(other, Module):
            return NotImplemented
        return self._structure() == other._structure()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"<Module: {len(self.types)} types, {len(self.imports)} imports, "
                f"{len(self.functions)} functions, {len(self.globals)} globals, "
                f"{len(self.exports)} exports, {len(self.customs)} custom sections>")
