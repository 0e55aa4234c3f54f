"""The ``name`` custom section: debug names for functions, locals, labels and globals.

Only the subsections whose indices the rewriter may have to shift are parsed:
function names (1), local names (2), label names (3) and global names (7).
Every other subsection (module name, type names...) is kept as raw bytes, in
its original place.  Name maps are lists of ``(index, name)`` pairs in the
order found (the spec wants them sorted; a shift by one keeps them sorted).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.reader import Reader
from wasm_rewriter.writer import name as enc_name
from wasm_rewriter.writer import u32

__all__ = [
    "IndirectNameMap",
    "NameMap",
    "NameSection",
    "RawNameSubsection",
    "encode_name_section",
    "parse_name_section",
]

MODULE_NAME = 0
FUNCTION_NAMES = 1
LOCAL_NAMES = 2
LABEL_NAMES = 3
GLOBAL_NAMES = 7


@dataclass
class NameMap:
    """A name map subsection (function names: id 1, global names: id 7)."""

    id: int
    names: list[tuple[int, str]]


@dataclass
class IndirectNameMap:
    """An indirect name map (local names: id 2, label names: id 3): per function index."""

    id: int
    names: list[tuple[int, list[tuple[int, str]]]]


@dataclass
class RawNameSubsection:
    """A subsection kept as its payload bytes (ids other than 1, 2, 3 and 7)."""

    id: int
    payload: bytes


NameSubsection = NameMap | IndirectNameMap | RawNameSubsection


@dataclass
class NameSection:
    """The parsed ``name`` section: its subsections in their original order."""

    subsections: list[NameSubsection] = field(default_factory=list)

    def get(self, subsection_id: int) -> NameSubsection | None:
        """The first subsection with this id, if any."""
        for sub in self.subsections:
            if sub.id == subsection_id:
                return sub
        return None

    @property
    def module_name(self) -> str | None:
        """Subsection 0, the module's own name, if present and well formed."""
        sub = self.get(MODULE_NAME)
        if not isinstance(sub, RawNameSubsection):
            return None
        try:
            r = Reader(sub.payload)
            name = r.name()
            r.expect_end("module name")
        except MalformedModule:
            return None
        return name

    @property
    def function_names(self) -> NameMap | None:
        """Subsection 1, if present and parsed."""
        sub = self.get(FUNCTION_NAMES)
        return sub if isinstance(sub, NameMap) else None

    @property
    def global_names(self) -> NameMap | None:
        """Subsection 7, if present and parsed."""
        sub = self.get(GLOBAL_NAMES)
        return sub if isinstance(sub, NameMap) else None


def _name_map(r: Reader) -> list[tuple[int, str]]:
    def entry() -> tuple[int, str]:
        index = r.u32()
        return (index, r.name())
    return r.vec(entry, "name map")


def _indirect_name_map(r: Reader) -> list[tuple[int, list[tuple[int, str]]]]:
    def entry() -> tuple[int, list[tuple[int, str]]]:
        index = r.u32()
        return (index, _name_map(r))
    return r.vec(entry, "indirect name map")


def parse_name_section(data: bytes, pos: int, end: int) -> NameSection:
    """Parse the payload ``data[pos:end]`` of a ``name`` section (offsets are absolute)."""
    r = Reader(data, pos, end)
    subs: list[NameSubsection] = []
    while not r.at_end():
        sid = r.u8()
        size = r.u32()
        if size > r.remaining:
            raise MalformedModule(r.pos, f"name subsection size {size} exceeds the section")
        sub_end = r.pos + size
        sr = Reader(data, r.pos, sub_end)
        sub: NameSubsection
        if sid in (FUNCTION_NAMES, GLOBAL_NAMES):
            sub = NameMap(sid, _name_map(sr))
        elif sid in (LOCAL_NAMES, LABEL_NAMES):
            sub = IndirectNameMap(sid, _indirect_name_map(sr))
        else:
            sub = RawNameSubsection(sid, sr.take(size))
        sr.expect_end(f"name subsection {sid}")
        subs.append(sub)
        r.pos = sub_end
    return NameSection(subs)


def _encode_map(names: list[tuple[int, str]]) -> bytes:
    return u32(len(names)) + b"".join(u32(i) + enc_name(n) for i, n in names)


def encode_name_section(section: NameSection) -> bytes:
    """The canonical payload of a ``name`` section."""
    parts = []
    for sub in section.subsections:
        if isinstance(sub, NameMap):
            body = _encode_map(sub.names)
        elif isinstance(sub, IndirectNameMap):
            body = u32(len(sub.names)) + b"".join(
                u32(i) + _encode_map(m) for i, m in sub.names)
        else:
            body = sub.payload
        parts.append(bytes((sub.id,)) + u32(len(body)) + body)
    return b"".join(parts)
