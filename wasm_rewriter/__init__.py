"""A WebAssembly binary module rewriter: parse, edit, re-encode; no engine involved.

The project's one parser and one encoder for module binaries; the runtime's
fuel metering / preemption injection and Lunatic plugins
(``lunatic::plugin``: add_function_type, add_function, add_function_export)
use it.

The model:

* ``Module.parse(data)`` splits the module into sections and decodes them into
  plain dataclasses (``sections``, ``names``), decoding every instruction of
  every function body and constant expression into ``Instr`` values
  (``instructions``; the opcode table is ``opcodes``).
* Callers edit the lists (``module.code[i].code`` is a list of ``Instr``) or use
  ``add_type``, ``add_function_import``, ``add_global_import``, ``add_global``,
  ``add_function``, ``add_export``.  Adding an import shifts an index space;
  the module fixes every reference that shifts.
* ``module.encode()`` writes it back: untouched sections from their original
  bytes, changed ones from their parsed form, the code section always from
  the instructions (unchanged instructions keep their original bytes), so an
  unmodified module round-trips byte-identically.  ``encode(canonical=True)``
  re-encodes everything from the parsed form.
* Bad input raises ``MalformedModule`` (a ``ValueError``) naming the byte
  offset; decoding never recurses, whatever the nesting depth.
"""

from __future__ import annotations

from wasm_rewriter import opcodes
from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.instructions import (
    BLOCKTYPE_EMPTY,
    Instr,
    decode_body,
    decode_expr,
    encode_instr,
    encode_instrs,
)
from wasm_rewriter.module import Module
from wasm_rewriter.names import IndirectNameMap, NameMap, NameSection, RawNameSubsection
from wasm_rewriter.opcodes import NAME, OP, Imm
from wasm_rewriter.reader import Reader
from wasm_rewriter.sections import (
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
)

__all__ = [
    "BLOCKTYPE_EMPTY",
    "NAME",
    "OP",
    "CustomSection",
    "DataSegment",
    "ElementSegment",
    "Export",
    "FuncType",
    "FunctionBody",
    "Global",
    "GlobalType",
    "Imm",
    "Import",
    "IndirectNameMap",
    "Instr",
    "Limits",
    "MalformedModule",
    "Module",
    "NameMap",
    "NameSection",
    "RawNameSubsection",
    "Reader",
    "TableType",
    "decode_body",
    "decode_expr",
    "encode_instr",
    "encode_instrs",
    "opcodes",
]
