"""Bounds-checked reading of the binary format's primitives.

Two layers:

* ``read_u32(buf, pos) -> (value, new_pos)`` and friends: plain functions over a
  ``bytes`` with no bounds of their own.  They are the hot path of the
  instruction decoder, so they do not check ``pos`` against an end: running off
  the buffer raises ``IndexError``, which the caller (``Reader`` or the
  instruction decoder) turns into ``MalformedModule``.  Malformed encodings
  (too long, unused bits set) raise ``MalformedModule`` with the offset of the
  offending byte in ``buf``.
* ``Reader``: a cursor with an end (a section or a function body), used by the
  section parsers.  Every error it raises is a ``MalformedModule`` carrying the
  absolute offset in the module.

LEB128 decoding is strict, as the spec requires: at most ceil(N/7) bytes for an
N-bit integer, and the bits of the last byte beyond N must be zero (unsigned) or
copies of the sign bit (signed).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from wasm_rewriter.errors import MalformedModule

__all__ = [
    "Reader",
    "read_s32",
    "read_s33",
    "read_s64",
    "read_u32",
    "read_u64",
]

T = TypeVar("T")


def _too_long(pos: int) -> MalformedModule:
    return MalformedModule(pos, "integer representation too long")


def read_u32(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned 32-bit LEB128 at ``pos``; return (value, position after it)."""
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    result = b & 0x7F
    shift = 7
    pos += 1
    while True:
        b = buf[pos]
        if shift == 28:
            # Fifth byte: only the low 4 bits carry value and there is no sixth byte.
            if b & 0x80:
                raise _too_long(pos)
            if b > 0x0F:
                raise MalformedModule(pos, "integer too large")
            return result | (b << 28), pos + 1
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return result, pos
        shift += 7


def read_u64(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode an unsigned 64-bit LEB128 at ``pos``; return (value, position after it)."""
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        if shift == 63:
            # Tenth byte: a single value bit left.
            if b & 0x80:
                raise _too_long(pos)
            if b > 0x01:
                raise MalformedModule(pos, "integer too large")
            return result | (b << 63), pos + 1
        result |= (b & 0x7F) << shift
        pos += 1
        if b < 0x80:
            return result, pos
        shift += 7


def _read_signed(buf: bytes, pos: int, last_shift: int, last_lo: int, last_hi: int) -> tuple[
        int, int]:
    """Signed LEB128 whose last allowed byte sits at bit ``last_shift``.

    On that last byte only values in ``[0, last_lo)`` and ``[last_hi, 0x80)`` are
    well formed: the bits above the integer's width must repeat its sign bit.
    """
    result = 0
    shift = 0
    while True:
        b = buf[pos]
        if shift == last_shift:
            if b & 0x80:
                raise _too_long(pos)
            if last_lo <= b < last_hi:
                raise MalformedModule(pos, "integer too large")
            result |= (b & 0x7F) << shift
            if b & 0x40:
                result -= 1 << (shift + 7)
            return result, pos + 1
        result |= (b & 0x7F) << shift
        pos += 1
        shift += 7
        if b < 0x80:
            if b & 0x40:
                result -= 1 << shift
            return result, pos


def read_s32(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a signed 32-bit LEB128 at ``pos``; return (value, position after it)."""
    b = buf[pos]
    if b < 0x40:
        return b, pos + 1
    if b < 0x80:
        return b - 0x80, pos + 1
    return _read_signed(buf, pos, 28, 0x08, 0x78)


def read_s33(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a signed 33-bit LEB128 (block types, heap types); return (value, new position)."""
    b = buf[pos]
    if b < 0x40:
        return b, pos + 1
    if b < 0x80:
        return b - 0x80, pos + 1
    return _read_signed(buf, pos, 28, 0x10, 0x70)


def read_s64(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a signed 64-bit LEB128 at ``pos``; return (value, position after it)."""
    b = buf[pos]
    if b < 0x40:
        return b, pos + 1
    if b < 0x80:
        return b - 0x80, pos + 1
    return _read_signed(buf, pos, 63, 0x01, 0x7F)


class Reader:
    """A cursor over ``data[pos:end]`` whose errors name absolute module offsets.

    ``data`` is the whole module, so positions are absolute offsets; ``end``
    bounds the current section or body: reading past it is an error even when
    the module has more bytes.
    """

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, pos: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = pos
        self.end = len(data) if end is None else min(end, len(data))

    # -- state -----------------------------------------------------------------

    @property
    def remaining(self) -> int:
        """Bytes left before ``end``."""
        return self.end - self.pos

    def at_end(self) -> bool:
        """True when every byte up to ``end`` has been consumed."""
        return self.pos >= self.end

    def eof_error(self, what: str = "") -> MalformedModule:
        """The error for running out of bytes (offset: the end of the region)."""
        return MalformedModule(self.end, "unexpected end" + (f" of {what}" if what else ""))

    def expect_end(self, what: str) -> None:
        """Refuse bytes left over after ``what`` was fully decoded."""
        if self.pos != self.end:
            raise MalformedModule(
                self.pos, f"{what}: {self.end - self.pos} unexpected byte(s) before its end")

    # -- primitives --------------------------------------------------------------

    def u8(self) -> int:
        """One byte."""
        pos = self.pos
        if pos >= self.end:
            raise self.eof_error()
        self.pos = pos + 1
        return self.data[pos]

    def _leb(self, fn: Callable[[bytes, int], tuple[int, int]]) -> int:
        pos = self.pos
        if pos >= self.end:
            raise self.eof_error()
        try:
            value, new = fn(self.data, pos)
        except IndexError:
            raise self.eof_error() from None
        if new > self.end:
            # The LEB continued past the region (a lying section or body size).
            raise self.eof_error()
        self.pos = new
        return value

    def u32(self) -> int:
        """Unsigned 32-bit LEB128."""
        data = self.data
        pos = self.pos
        # Fast path: one byte, the vast majority of counts and indices.
        if pos < self.end and data[pos] < 0x80:
            self.pos = pos + 1
            return data[pos]
        return self._leb(read_u32)

    def u64(self) -> int:
        """Unsigned 64-bit LEB128."""
        return self._leb(read_u64)

    def s32(self) -> int:
        """Signed 32-bit LEB128."""
        return self._leb(read_s32)

    def s33(self) -> int:
        """Signed 33-bit LEB128."""
        return self._leb(read_s33)

    def s64(self) -> int:
        """Signed 64-bit LEB128."""
        return self._leb(read_s64)

    def u32_width(self) -> tuple[int, int]:
        """Unsigned 32-bit LEB128 and how many bytes it took (kept for re-encoding)."""
        start = self.pos
        value = self.u32()
        return value, self.pos - start

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes."""
        pos = self.pos
        if n < 0 or n > self.end - pos:
            raise MalformedModule(pos, f"{n} bytes needed, {self.end - pos} left")
        self.pos = pos + n
        return self.data[pos:pos + n]

    def name(self) -> str:
        """A name: u32 byte length, then that many bytes of UTF-8."""
        raw = self.take(self.u32())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedModule(self.pos - len(raw) + exc.start,
                                  "invalid UTF-8 in name") from None

    def count(self, what: str = "vector") -> int:
        """A vector length, refused up front if larger than the bytes left.

        Every vector element of the binary format takes at least one byte, so a
        larger count can only be a lie; checking here keeps hostile counts from
        driving giant allocations or long loops.
        """
        start = self.pos
        n = self.u32()
        if n > self.end - self.pos:
            raise MalformedModule(
                start, f"{what} count {n} larger than the {self.end - self.pos} bytes left")
        return n

    def vec(self, fn: Callable[[], T], what: str = "vector") -> list[T]:
        """A vector: a count (checked by ``count``), then ``fn()`` that many times."""
        return [fn() for _ in range(self.count(what))]
