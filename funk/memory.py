"""Bounds-checked access to a guest's linear memory.

A ``GuestMemory`` holds a ``memoryview`` over the instance's linear memory
and its size.  Both engines are configured so that a memory never moves while
it grows (wasmtime: ``memory_may_move = False``; wasmer: static memories), so
a cached view stays valid; it is only refreshed when an access falls outside
it, which is exactly when the guest may have grown its memory since.

Generated wrappers inline the fast check ``ptr + len > memory.size`` on
exact Python integers (so ``ptr + len`` cannot wrap around 32 bits) and call
``require`` only on the slow path.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from funk.errors import Trap

__all__ = ["GuestMemory", "MissingMemory", "DURING_START"]

_EMPTY = memoryview(bytearray())


class GuestMemory:
    """The linear memory of one instance, as seen from Python.

    ``view`` is a writable ``memoryview`` of format ``B``; ``size`` its length
    in bytes.  Python code driving a guest (not only host functions) can use
    ``read``/``write``/``unpack``/``pack``; every access is bounds-checked and
    out-of-bounds raises ``Trap``.  ``rview`` is a read-only view of the same
    memory.
    """

    __slots__ = ("view", "rview", "size", "_fetch")

    def __init__(self, fetch: Callable[[], tuple[memoryview, int]]) -> None:
        self._fetch = fetch
        self.refresh()

    def refresh(self) -> None:
        """Re-read the memory's current extent from the engine."""
        self.view, self.size = self._fetch()
        #: the same memory, read-only: ``Bytes``/``IoSlices`` views are cut from it
        self.rview = self.view.toreadonly()

    def require(self, ptr: int, length: int, function: str | None = None,
                param: str | None = None) -> None:
        """Trap unless ``[ptr, ptr+length)`` lies inside the memory.

        Refreshes first: the guest may have grown its memory since the view
        was taken.  ``function``/``param`` name the culprit in the message.
        """
        if ptr < 0 or length < 0:
            raise Trap(_where(function, param) + f"negative address or length ({ptr}, {length})")
        if ptr + length > self.size:
            self.refresh()
            if ptr + length > self.size:
                raise Trap(_where(function, param)
                           + f"range [0x{ptr:x}, 0x{ptr + length:x}) is outside guest memory "
                           f"of {self.size} bytes", function=function)

    def slice(self, ptr: int, length: int) -> memoryview:
        """A writable view of ``[ptr, ptr+length)`` (checked)."""
        self.require(ptr, length)
        return self.view[ptr:ptr + length]

    def read(self, ptr: int, length: int) -> bytes:
        """A copy of ``length`` bytes at ``ptr``."""
        self.require(ptr, length)
        return bytes(self.view[ptr:ptr + length])

    def write(self, ptr: int, data: Any) -> None:
        """Copy ``data`` (any bytes-like object) to ``ptr``."""
        data = memoryview(data).cast("B")
        self.require(ptr, len(data))
        self.view[ptr:ptr + len(data)] = data

    def unpack(self, fmt: str, ptr: int) -> tuple[Any, ...]:
        """``struct.unpack_from`` at ``ptr`` (use ``<`` formats: wasm is little-endian)."""
        self.require(ptr, struct.calcsize(fmt))
        return struct.unpack_from(fmt, self.view, ptr)

    def pack(self, fmt: str, ptr: int, *values: Any) -> None:
        """``struct.pack_into`` at ``ptr``."""
        self.require(ptr, struct.calcsize(fmt))
        struct.pack_into(fmt, self.view, ptr, *values)

    def read_cstr(self, ptr: int, limit: int = 1 << 20) -> bytes:
        """Bytes from ``ptr`` up to (not including) a NUL, at most ``limit``."""
        self.require(ptr, 0)
        end = min(self.size, ptr + limit)
        idx = bytes(self.view[ptr:end]).find(b"\0")
        if idx < 0:
            raise Trap(f"no NUL terminator within {end - ptr} bytes at 0x{ptr:x}")
        return bytes(self.view[ptr:ptr + idx])

    def __len__(self) -> int:
        self.refresh()
        return self.size

    def close(self) -> None:
        """Forget the memory (its instance is gone): later accesses trap."""
        self._fetch = _nothing
        self.refresh()


def _nothing() -> tuple[memoryview, int]:
    return _EMPTY, 0


class MissingMemory(GuestMemory):
    """Stands in for the memory of a module that exports none named ``memory``.

    Every access traps with a message saying so, instead of failing obscurely.
    """

    __slots__ = ("reason",)

    def __init__(self, reason: str = "the guest module does not export a memory named "
                                      "'memory'") -> None:
        super().__init__(_nothing)
        self.reason = reason

    def refresh(self) -> None:
        super().refresh()
        # -1: the inlined fast check ``ptr + len > size`` fails even for an
        # empty range at 0, so every access reaches ``require`` and traps
        self.size = -1

    def __len__(self) -> int:
        return 0

    def require(self, ptr: int, length: int, function: str | None = None,
                param: str | None = None) -> None:
        raise Trap(_where(function, param) + self.reason, function=function)


#: what host functions see while the module's start function runs: neither
#: engine hands out the instance's exports before instantiation has finished
DURING_START = ("guest memory is not available while the module's start function runs "
                "(it is linked once instantiation finishes)")


def _where(function: str | None, param: str | None) -> str:
    if function and param:
        return f"{function}: parameter {param!r}: "
    if function:
        return f"{function}: "
    return ""
