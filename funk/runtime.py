"""Helpers called by generated wrappers on their slow or rare paths.

Generated code inlines the common case (masking, bounds checks, slicing);
whatever is long or only needed on failure lives here, so wrappers stay
short and readable.
"""

from __future__ import annotations

import struct

from funk.errors import Trap
from funk.memory import GuestMemory

__all__ = ["_release", "_io_slices", "_utf8_trap", "_new"]

#: allocate an object without running ``__init__`` (used for ``Ptr``s)
_new = object.__new__

_iovec = struct.Struct("<II")


def _release(views: list[memoryview]) -> None:
    """Release views of guest memory once the host call is over.

    A host method that keeps a view past its call would otherwise hold a
    pointer into memory that may be unmapped later; a released view raises
    ``ValueError`` on use instead of crashing the interpreter.
    """
    for view in views:
        try:
            view.release()
        except BufferError:
            pass  # the host exported it further (e.g. to numpy); leave it be


def _io_slices(mem: GuestMemory, ptr: int, count: int, writable: bool, function: str,
               param: str) -> list[memoryview]:
    """Views of the buffers described by ``count`` (buf, len) records at ``ptr``."""
    size = count * 8
    if ptr + size > mem.size:
        mem.require(ptr, size, function, param)
    view = mem.view
    if not writable:
        view = mem.rview
    out: list[memoryview] = []
    for i, (buf, length) in enumerate(_iovec.iter_unpack(view[ptr:ptr + size])):
        if buf + length > mem.size:
            mem.require(buf, length, function, f"{param}[{i}]")
            view = mem.view if writable else mem.rview
        out.append(view[buf:buf + length])
    return out


def _utf8_trap(function: str, param: str, err: UnicodeDecodeError) -> Trap:
    return Trap(f"{function}: parameter {param!r} is not valid UTF-8 "
                f"({err.reason} at byte {err.start})", function=function)
