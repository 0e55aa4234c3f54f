"""A module's interface: its imports and exports with their function types, read quickly.

``Module.parse`` decodes every function body; an embedder that only wants to
know what a module imports and exports (funk's backends, before linking)
needs four small sections, plus the start section (whether instantiating
runs code).  ``read_interface`` reads just those and skips the rest by their
sizes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.reader import Reader
from wasm_rewriter.sections import (
    KIND_FUNC,
    SECTION_EXPORT,
    SECTION_FUNCTION,
    SECTION_IMPORT,
    SECTION_START,
    SECTION_TYPE,
    VALUE_TYPE_NAMES,
    Export,
    FuncType,
    Import,
    read_export,
    read_functype,
    read_import,
)

__all__ = ["Interface", "read_interface", "VALUE_TYPE_NAMES"]

_HEADER = b"\0asm\x01\0\0\0"


@dataclass(frozen=True)
class Interface:
    """The types, imports, defined functions' type indices and exports of a module,
    and its start function (``None``: it has none)."""

    types: tuple[FuncType, ...]
    imports: tuple[Import, ...]
    functions: tuple[int, ...]
    exports: tuple[Export, ...]
    start: int | None = None

    def type_index_of(self, function: int) -> int:
        """The type index of function ``function`` (imported functions first)."""
        imported = [imp.desc for imp in self.imports if imp.kind == KIND_FUNC]
        if function < len(imported):
            type_index = imported[function]
            assert isinstance(type_index, int)
            return type_index
        return self.functions[function - len(imported)]


def read_interface(data: bytes) -> Interface:
    """The interface of a module binary (``MalformedModule`` if those sections are bad)."""
    if data[:8] != _HEADER:
        raise MalformedModule(0, "not a version 1 wasm module")
    r = Reader(data, 8)
    types: list[FuncType] = []
    imports: list[Import] = []
    functions: list[int] = []
    exports: list[Export] = []
    start: int | None = None
    while not r.at_end():
        sid = r.u8()
        size = r.u32()
        if size > r.remaining:
            raise MalformedModule(r.pos, f"section size {size} exceeds the {r.remaining} "
                                         "bytes left")
        end = r.pos + size
        sr = Reader(data, r.pos, end)
        if sid == SECTION_TYPE:
            types = sr.vec(partial(read_functype, sr), "type")
        elif sid == SECTION_IMPORT:
            imports = sr.vec(partial(read_import, sr), "import")
        elif sid == SECTION_FUNCTION:
            functions = sr.vec(sr.u32, "function")
        elif sid == SECTION_EXPORT:
            exports = sr.vec(partial(read_export, sr), "export")
        elif sid == SECTION_START:
            start = sr.u32()
        r.pos = end
    return Interface(tuple(types), tuple(imports), tuple(functions), tuple(exports), start)
