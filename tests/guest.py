"""Build small WAT guests for the tests.

Every guest imports all of ``TestHost``'s functions (``$test.add``,
``$test.divmod``, ... and ``$other.renamed-function``) with the signatures
generated from the class itself, exports one page of memory as ``memory``
and adds the functions a test states::

    wat = guest('(func (export "run") (param i32) (result i32)'
                '  (call $test.echo_u32 (local.get 0)))')
    inst = funk.instantiate(wat, [TestHost()], backend=backend)
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import funk
from codegen.wat import emit_wat
from tests.hosts import TestHost

__all__ = ["guest", "imports_of", "bare_module", "wat_bytes"]


@cache
def imports_of(cls: type) -> str:
    """The import lines of ``cls``'s functions (``emit_wat`` without its module parens)."""
    text = emit_wat(funk.functions_of(cls)).rstrip()
    assert text.startswith("(module") and text.endswith(")")
    return text[len("(module"):-1].rstrip() + "\n"


def guest(*functions: str, data: Iterable[tuple[int, bytes]] = (),
          hosts: Iterable[type] = (TestHost,), pages: int | None = 1) -> str:
    """A module importing ``hosts``' functions, with memory, data and ``functions``.

    ``data`` is ``(offset, bytes)`` pairs placed in memory by data segments;
    ``pages=None`` leaves out the memory.
    """
    parts = ["(module"]
    for cls in hosts:
        parts.append(imports_of(cls))
    if pages is not None:
        parts.append(f'  (memory (export "memory") {pages})')
    for offset, blob in data:
        parts.append(f"  (data (i32.const {offset}) \"{wat_bytes(blob)}\")")
    for fn in functions:
        parts.append("  " + fn.strip())
    parts.append(")")
    return "\n".join(parts) + "\n"


def bare_module(*items: str) -> str:
    """A module made only of ``items`` (hand-written imports, funcs ...)."""
    return "(module\n" + "\n".join("  " + i.strip() for i in items) + "\n)\n"


def wat_bytes(blob: bytes) -> str:
    """``blob`` spelled as a WAT string body (every byte escaped)."""
    return "".join(f"\\{b:02x}" for b in blob)
