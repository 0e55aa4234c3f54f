"""LEB128 encoders for the binary format's integers.

Each returns ``bytes``.  ``width`` asks for at least that many bytes: the value
is padded with continuation bytes the way wasm-ld leaves relocatable fields
(e.g. ``u32(3, width=5) == b"\\x83\\x80\\x80\\x80\\x00"``), which is how the
module encoder keeps a size field's original width and so a round trip
byte-identical.  A width beyond what the integer type allows (5 bytes for 32
and 33 bits, 10 for 64) raises ``ValueError``; so does a value out of range.
"""

from __future__ import annotations

__all__ = ["name", "s32", "s33", "s64", "u32", "u64", "vec"]

# One-byte encodings, shared: most counts, indices and sizes are below 128.
_SMALL = [bytes((i,)) for i in range(128)]


def _unsigned(value: int, bits: int, width: int) -> bytes:
    if value < 0 or value >> bits:
        raise ValueError(f"{value} does not fit in u{bits}")
    if value < 0x80 and width <= 1:
        return _SMALL[value]
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        if value:
            out.append(b | 0x80)
        else:
            out.append(b)
            break
    if width > len(out):
        _pad(out, width, (bits + 6) // 7, 0x80, 0x00)
    return bytes(out)


def _signed(value: int, bits: int, width: int) -> bytes:
    limit = 1 << (bits - 1)
    if not -limit <= value < limit:
        raise ValueError(f"{value} does not fit in s{bits}")
    if -0x40 <= value < 0x40 and width <= 1:
        return _SMALL[value & 0x7F]
    negative = value < 0
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7  # arithmetic shift: stays -1 for negatives
        if (value == 0 and not b & 0x40) or (value == -1 and b & 0x40):
            out.append(b)
            break
        out.append(b | 0x80)
    if width > len(out):
        if negative:
            _pad(out, width, (bits + 6) // 7, 0xFF, 0x7F)
        else:
            _pad(out, width, (bits + 6) // 7, 0x80, 0x00)
    return bytes(out)


def _pad(out: bytearray, width: int, max_width: int, filler: int, last: int) -> None:
    """Extend a minimal LEB128 in place to ``width`` bytes with sign/zero filler bytes."""
    if width > max_width:
        raise ValueError(f"LEB128 width {width} exceeds the {max_width} bytes allowed")
    out[-1] |= 0x80
    out.extend(bytes((filler,)) * (width - len(out) - 1))
    out.append(last)


def u32(value: int, width: int = 0) -> bytes:
    """Unsigned 32-bit LEB128, padded to at least ``width`` bytes."""
    return _unsigned(value, 32, width)


def u64(value: int, width: int = 0) -> bytes:
    """Unsigned 64-bit LEB128, padded to at least ``width`` bytes."""
    return _unsigned(value, 64, width)


def s32(value: int, width: int = 0) -> bytes:
    """Signed 32-bit LEB128, padded to at least ``width`` bytes."""
    return _signed(value, 32, width)


def s33(value: int, width: int = 0) -> bytes:
    """Signed 33-bit LEB128 (block types), padded to at least ``width`` bytes."""
    return _signed(value, 33, width)


def s64(value: int, width: int = 0) -> bytes:
    """Signed 64-bit LEB128, padded to at least ``width`` bytes."""
    return _signed(value, 64, width)


def name(text: str) -> bytes:
    """A name: its UTF-8 byte length as u32, then the bytes."""
    raw = text.encode("utf-8")
    return _unsigned(len(raw), 32, 0) + raw


def vec(items: list[bytes]) -> bytes:
    """A vector of already-encoded elements: the count as u32, then the elements."""
    return _unsigned(len(items), 32, 0) + b"".join(items)
