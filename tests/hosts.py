"""Host APIs used by the tests: one method per lowering rule.

``TestHost`` exercises every annotation funk supports; the committed C header
``tests/guests/include/funk_test_host.h`` is generated from it, so C guests
and WAT guests call exactly these signatures.
"""

from __future__ import annotations

import enum
import zlib
from typing import Any

from funk import Caller, Trap, export, host_functions, internal, record
from funk.types import (
    Bytes,
    Handle,
    IoSlices,
    IoSlicesMut,
    MultiValue,
    MutBytes,
    Ptr,
    Str,
    WasmType,
    f32,
    f64,
    i8,
    i16,
    i32,
    i64,
    u8,
    u16,
    u32,
    u64,
)


class Status(enum.IntEnum):
    """Status codes returned by ``TestHost`` functions."""

    ok = 0
    bad_input = 1
    not_found = 2


@record
class Point:
    """A 2-D point (8 bytes)."""

    x: i32
    y: i32


@record
class Stat:
    """A record with padding: u8 at 0, u64 at 8, u16 at 16, nested Point at 20; 32 bytes."""

    kind: u8
    size: u64
    mode: u16
    origin: Point


class Blob:
    """A host-side object guests refer to by handle."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.closed = False


class Color(WasmType):
    """A custom lowering: one i32 0xRRGGBB <-> an (r, g, b) tuple.

    The host's ``palette_size`` state bounds what is accepted, to show that a
    lowering can consult the host object.
    """

    wasm_params = ("i32",)
    wasm_results = ("i32",)
    c_type = "uint32_t"

    @classmethod
    def from_wasm(cls, host: Any, caller: Caller, *values: Any) -> Any:
        v = values[0] & 0xFFFFFFFF
        if v >= host.palette_size:
            raise Trap(f"color 0x{v:x} outside the palette")
        return ((v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF)

    @classmethod
    def to_wasm(cls, host: Any, caller: Caller, value: Any) -> Any:
        r, g, b = value
        return (r << 16) | (g << 8) | b


@host_functions(namespace="test")
class TestHost:
    """Every lowering rule, with state so tests can see what the host saw."""

    __test__ = False  # not a pytest test class despite its name

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.seen: dict[str, Any] = {}
        self.palette_size = 1 << 24

    # scalars ---------------------------------------------------------------
    def add(self, a: i32, b: i32) -> i32:
        """a + b (wrapping to i32)."""
        return (a + b + 2**31) % 2**32 - 2**31

    def add64(self, a: i64, b: i64) -> i64:
        return (a + b + 2**63) % 2**64 - 2**63

    def mul_f(self, a: f32, b: f64) -> f64:
        return a * b

    def half_f32(self, a: f32) -> f32:
        return a / 2

    def echo_u32(self, x: u32) -> u32:
        self.seen["u32"] = x
        return x

    def echo_u64(self, x: u64) -> u64:
        self.seen["u64"] = x
        return x

    def echo_i32(self, x: i32) -> i32:
        self.seen["i32"] = x
        return x

    def echo_i64(self, x: i64) -> i64:
        self.seen["i64"] = x
        return x

    def small(self, a: i8, b: u8, c: i16, d: u16) -> i32:
        self.seen["small"] = (a, b, c, d)
        return a + b + c + d

    def bad_result(self, kind: i32) -> i32:
        """Returns something that does not fit an i32 (to test result checks)."""
        return [2**32, -2**31 - 1, "text", None, 1.5][kind]  # type: ignore[return-value]

    # memory ranges ---------------------------------------------------------
    def count_a(self, words: Str) -> i32:
        self.seen["str"] = words
        return words.count("a")

    def checksum(self, data: Bytes) -> u32:
        self.seen["readonly"] = data.readonly
        return zlib.crc32(data)

    def fill(self, buf: MutBytes, byte: u8) -> None:
        buf[:] = bytes([byte]) * len(buf)

    def upper(self, text: Str, out: MutBytes) -> u32:
        """Write text.upper() into out; return bytes written."""
        data = text.upper().encode()[: len(out)]
        out[: len(data)] = data
        return len(data)

    def keep_view(self, data: Bytes) -> None:
        """Keeps the view past the call (it must be released, not dangle)."""
        self.seen["kept"] = data

    def gather(self, parts: IoSlices) -> u32:
        joined = b"".join(bytes(p) for p in parts)
        self.seen["gather"] = joined
        self.seen["readonly"] = all(p.readonly for p in parts)
        return len(joined)

    def scatter(self, parts: IoSlicesMut, seed: u8) -> u32:
        n = 0
        for p in parts:
            for i in range(len(p)):
                p[i] = (seed + n) & 0xFF
                n += 1
        return n

    # pointers ---------------------------------------------------------------
    def store_u64(self, p: Ptr[u64], value: u64) -> None:
        p.set(value)

    def load_u64(self, p: Ptr[u64]) -> u64:
        return p.get()

    def swap_point(self, p: Ptr[Point]) -> None:
        pt = p.get()
        p.set(Point(pt.y, pt.x))

    def stat_at(self, p: Ptr[Stat]) -> u64:
        st = p.get()
        self.seen["stat"] = st
        return st.size

    # results ----------------------------------------------------------------
    def status(self, code: i32) -> Status:
        return Status(code)

    def divmod(self, a: u32, b: u32) -> tuple[Status, u32, u32]:
        """Quotient and remainder through out-pointers; status only on error."""
        if b == 0:
            return Status.bad_input
        return Status.ok, a // b, a % b

    def make_stat(self, size: u64) -> tuple[Status, Stat]:
        return Status.ok, Stat(kind=7, size=size, mode=0o644, origin=Point(-1, 2))

    def wide(self, x: i32) -> tuple[i64, u64, u8]:
        return x * 2**33, 2**64 - 1, 0xAB

    def pair(self, x: i32) -> MultiValue[i32, i64]:
        return x + 1, x * 2**40

    def triple(self) -> MultiValue[f64, i32, Color]:
        return 0.5, -7, (1, 2, 3)

    # custom types and handles -------------------------------------------------
    def mix(self, a: Color, b: Color) -> Color:
        return tuple((x + y) // 2 for x, y in zip(a, b))

    def open_blob(self, data: Bytes) -> Handle[Blob]:
        return Blob(bytes(data))

    def blob_len(self, blob: Handle[Blob]) -> u32:
        return len(blob.data)

    def blob_read(self, blob: Handle[Blob], out: MutBytes) -> u32:
        n = min(len(out), len(blob.data))
        out[:n] = blob.data[:n]
        return n

    def close_blob(self, caller: Caller, blob_id: u64) -> Status:
        caller.resources[Blob].take(blob_id).closed = True
        return Status.ok

    def open_two(self, data: Bytes) -> tuple[Status, Handle[Blob]]:
        return Status.ok, Blob(bytes(data))

    def memory_size(self, caller: Caller) -> u32:
        return caller.memory.size

    # traps -------------------------------------------------------------------
    def trap(self, message: Str) -> None:
        raise Trap(message)

    def fail(self, code: i32) -> i32:
        raise ValueError(f"failure {code}")

    def interrupt(self) -> None:
        raise KeyboardInterrupt

    @export("renamed-function", namespace="other")
    def renamed(self, x: i32) -> i32:
        self.calls.append("renamed")
        return x * 3

    @internal
    def helper(self) -> int:
        return 42


__all__ = ["TestHost", "Status", "Point", "Stat", "Blob", "Color"]
