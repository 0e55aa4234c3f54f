"""Spawn parameters (spec section 5.10 step 3) and the spawn error.

``spawn`` and ``inherit_spawn`` take an array of 17-byte records: a type
code (``0x7F`` i32, ``0x7E`` i64, ``0x7B`` v128) and a little-endian u128.
"""

from __future__ import annotations

from funk.errors import Trap

__all__ = ["Param", "SpawnError", "decode_params", "RECORD_SIZE"]

Param = tuple[str | None, int]
"""``(wasm type, value)``; a ``None`` type takes the entry function's own."""

RECORD_SIZE = 17

_PARAM_TYPES = {0x7F: "i32", 0x7E: "i64", 0x7B: "v128"}


class SpawnError(Exception):
    """A process could not be created; the text becomes the guest's error resource."""


def decode_params(raw: bytes | memoryview) -> list[Param]:
    """The spawn params: ``(type, value)`` per whole 17-byte record.

    Values are reduced to their type's width, unsigned; a trailing partial
    record is ignored; an unknown type code (f32/f64 included) traps.
    """
    data = bytes(raw)
    out: list[Param] = []
    for offset in range(0, len(data) - len(data) % RECORD_SIZE, RECORD_SIZE):
        code = data[offset]
        kind = _PARAM_TYPES.get(code)
        if kind is None:
            raise Trap(f"spawn: parameter {offset // RECORD_SIZE} has the unsupported type "
                       f"code 0x{code:02x} (only i32 0x7f, i64 0x7e and v128 0x7b)")
        value = int.from_bytes(data[offset + 1:offset + RECORD_SIZE], "little")
        if kind == "i32":
            value &= 0xFFFFFFFF
        elif kind == "i64":
            value &= 0xFFFFFFFFFFFFFFFF
        out.append((kind, value))
    return out
