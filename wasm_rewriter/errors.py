"""The one exception the rewriter raises for bad module bytes.

Every decoding failure, however deep (a truncated LEB128, an unknown opcode, a
section whose size lies), ends up as ``MalformedModule`` carrying the absolute
byte offset in the module, so callers need a single ``except`` clause and the
message tells them where to look with a hex dump.
"""

from __future__ import annotations

__all__ = ["MalformedModule"]


class MalformedModule(ValueError):
    """The module bytes are not a well-formed WebAssembly binary.

    Attributes:
        offset: absolute byte offset in the module where the problem was found.
        reason: what is wrong, without the offset.
    """

    def __init__(self, offset: int, reason: str) -> None:
        # Both go to args so the exception pickles and copies like any ValueError.
        super().__init__(offset, reason)
        self.offset = offset
        self.reason = reason

    def __str__(self) -> str:
        return f"malformed module at offset {self.offset:#x} ({self.offset}): {self.reason}"
