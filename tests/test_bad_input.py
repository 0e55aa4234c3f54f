"""Hostile guests: out-of-bounds and wrapping pointers, bad UTF-8, unknown
handles, modules without memory, grown memory, and unloadable modules.

Every memory-using lowering of ``TestHost`` (Str, Bytes, MutBytes, IoSlices,
IoSlicesMut records and buffers, Ptr[u64], Ptr[Point], Ptr[Stat] and tuple
out-pointers) must reject a range that does not lie inside guest memory with
a ``Trap`` naming the host function and the parameter, on both engines,
without touching memory or calling the host method.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import funk
from codegen.wat import func_type
from funk import CompileError, Trap
from tests.hosts import TestHost

PAGE = 65536
MEM = PAGE  # the guests below start with one page


# --------------------------------------------------------------------------
# Guests (inline WAT): every TestHost import forwarded by an export of the same name


def _forwarding_wat(memory: str | None = '(memory (export "memory") 1)', extra: str = "") -> str:
    fns = funk.functions_of(TestHost)
    lines = ["(module"]
    for i, f in enumerate(fns):
        sig = (" " + func_type(f)).rstrip()
        lines.append(f'  (import "{f.namespace}" "{f.name}" (func $f{i}{sig}))')
    if memory:
        lines.append("  " + memory)
    for i, f in enumerate(fns):
        sig = (" " + func_type(f)).rstrip()
        gets = " ".join(f"local.get {k}" for k in range(len(f.wasm_params)))
        lines.append(f'  (func (export "{f.name}"){sig} {gets} call $f{i})')
    lines.append(extra)
    lines.append(")")
    return "\n".join(lines)


_COUNT_A = [i for i, f in enumerate(funk.functions_of(TestHost)) if f.name == "count_a"][0]

GROW_WAT = _forwarding_wat(extra=f"""
  (func (export "grow") (param i32) (result i32) (memory.grow (local.get 0)))
  (func (export "grow_then_count") (param $p i32) (result i32)
    (drop (memory.grow (i32.const 1)))
    (i32.store8 (local.get $p) (i32.const 97))
    (i32.store8 (i32.add (local.get $p) (i32.const 1)) (i32.const 98))
    (i32.store8 (i32.add (local.get $p) (i32.const 2)) (i32.const 97))
    (call $f{_COUNT_A} (local.get $p) (i32.const 3)))
""")

_modules: dict[tuple[str, str], Any] = {}


def _module(wat: str, backend: str) -> Any:
    key = (wat, backend)
    if key not in _modules:
        _modules[key] = funk.compile(wat, backend)
    return _modules[key]


def _instance(backend: str, wat: str = GROW_WAT) -> Any:
    return _module(wat, backend).instantiate([TestHost()])


def _trap(call: Callable[[], Any]) -> Trap:
    with pytest.raises(Trap) as info:
        call()
    return info.value


def _assert_bounds_trap(trap: Trap, function: str, param: str, size: int = MEM) -> None:
    msg = trap.message
    assert msg.startswith(f"{function}: parameter {param!r}: "), msg
    assert f"outside guest memory of {size} bytes" in msg, msg
    assert trap.function == function


# --------------------------------------------------------------------------
# Range lowerings: (ptr, len) chosen by the test


@dataclass(frozen=True)
class RangeCase:
    """A memory range the guest passes to one host function parameter.

    ``call(inst, ptr, length)`` makes the call with every *other* memory
    argument valid; ``ok(inst, ptr, length, result)`` checks a successful
    call's effect; ``length`` is in bytes (IoSlices record arrays: count * 8).
    """

    id: str
    function: str
    param: str
    call: Callable[[Any, int, int], Any]
    ok: Callable[[Any, int, int, Any], None]
    unit: int = 1  # bytes per unit of the length argument
    #: sets up memory for a call (before the "memory unchanged" snapshot)
    prepare: Callable[[Any, int, int], None] | None = None

    def run(self, inst: Any, ptr: int, length: int) -> Any:
        if self.prepare is not None:
            self.prepare(inst, ptr, length)
        return self.call(inst, ptr, length)


SCRATCH = 1024  # valid area used for the "other" arguments


def _count_a(inst: Any, p: int, n: int) -> Any:
    return inst.exports.count_a(p, n)


def _count_a_ok(inst: Any, p: int, n: int, r: Any) -> None:
    assert r == inst.memory.read(p, n).decode().count("a")


def _checksum_ok(inst: Any, p: int, n: int, r: Any) -> None:
    assert r & 0xFFFFFFFF == zlib.crc32(inst.memory.read(p, n))


def _fill_ok(inst: Any, p: int, n: int, r: Any) -> None:
    assert r is None
    assert inst.memory.read(p, n) == b"\x41" * n


def _upper_text(inst: Any, p: int, n: int) -> Any:
    return inst.exports.upper(p, n, SCRATCH, 64)


def _upper_text_ok(inst: Any, p: int, n: int, r: Any) -> None:
    text = inst.memory.read(p, n).decode().upper().encode()[:64]
    assert r == len(text)


def _upper_out(inst: Any, p: int, n: int) -> Any:
    return inst.exports.upper(SCRATCH, 3, p, n)


def _upper_out_prepare(inst: Any, p: int, n: int) -> None:
    inst.memory.write(SCRATCH, b"abc")


def _zero_records(inst: Any, p: int, n: int) -> None:
    """Valid (empty) records wherever the array lies inside memory."""
    if p < inst.memory.size:
        end = min(p + 8 * n, inst.memory.size)
        inst.memory.write(p, bytes(end - p))


def _upper_out_ok(inst: Any, p: int, n: int, r: Any) -> None:
    assert r == min(3, n)
    assert inst.memory.read(p, r) == b"ABC"[:r]


def _gather_records(inst: Any, p: int, n: int) -> Any:
    return inst.exports.gather(p, n)


def _gather_records_ok(inst: Any, p: int, n: int, r: Any) -> None:
    total = 0
    for k in range(n):
        buf, ln = inst.memory.unpack("<II", p + 8 * k)
        total += ln
    assert r == total


def _scatter_records(inst: Any, p: int, n: int) -> Any:
    return inst.exports.scatter(p, n, 1)


def _iovec_buffer(export: str, index: int) -> Callable[[Any, int, int], Any]:
    """Records at SCRATCH: all but ``index`` are valid 2-byte buffers."""

    def call(inst: Any, p: int, n: int) -> Any:
        if export == "gather":
            return inst.exports.gather(SCRATCH, index + 2)
        return inst.exports.scatter(SCRATCH, index + 2, 0x10)

    return call


def _iovec_prepare(index: int) -> Callable[[Any, int, int], None]:
    def prepare(inst: Any, p: int, n: int) -> None:
        recs = []
        for k in range(index + 2):
            recs.append((p, n) if k == index else (SCRATCH + 256 + 2 * k, 2))
        inst.memory.write(SCRATCH, b"".join(struct.pack("<II", *r) for r in recs))

    return prepare


def _iovec_buffer_ok(export: str, index: int) -> Callable[[Any, int, int, Any], None]:
    def ok(inst: Any, p: int, n: int, r: Any) -> None:
        assert r == n + 2 * (index + 1)
        if export == "scatter":
            # the buffer under test is written after `index` 2-byte buffers
            start = 2 * index
            assert inst.memory.read(p, n) == bytes((0x10 + start + k) & 0xFF for k in range(n))

    return ok


RANGE_CASES = [
    RangeCase("Str", "test.count_a", "words", _count_a, _count_a_ok),
    RangeCase("Str(upper.text)", "test.upper", "text", _upper_text, _upper_text_ok),
    RangeCase("Bytes", "test.checksum", "data",
              lambda i, p, n: i.exports.checksum(p, n), _checksum_ok),
    RangeCase("Bytes(open_blob)", "test.open_blob", "data",
              lambda i, p, n: i.exports.open_blob(p, n),
              lambda i, p, n, r: None if i.exports.blob_len(r) == n else pytest.fail("len")),
    RangeCase("MutBytes", "test.fill", "buf", lambda i, p, n: i.exports.fill(p, n, 0x41),
              _fill_ok),
    RangeCase("MutBytes(upper.out)", "test.upper", "out", _upper_out, _upper_out_ok,
              prepare=_upper_out_prepare),
    RangeCase("IoSlices(records)", "test.gather", "parts", _gather_records,
              _gather_records_ok, unit=8, prepare=_zero_records),
    RangeCase("IoSlicesMut(records)", "test.scatter", "parts", _scatter_records,
              _gather_records_ok, unit=8, prepare=_zero_records),
    RangeCase("IoSlices(buffer0)", "test.gather", "parts[0]", _iovec_buffer("gather", 0),
              _iovec_buffer_ok("gather", 0), prepare=_iovec_prepare(0)),
    RangeCase("IoSlices(buffer2)", "test.gather", "parts[2]", _iovec_buffer("gather", 2),
              _iovec_buffer_ok("gather", 2), prepare=_iovec_prepare(2)),
    RangeCase("IoSlicesMut(buffer0)", "test.scatter", "parts[0]", _iovec_buffer("scatter", 0),
              _iovec_buffer_ok("scatter", 0), prepare=_iovec_prepare(0)),
    RangeCase("IoSlicesMut(buffer1)", "test.scatter", "parts[1]", _iovec_buffer("scatter", 1),
              _iovec_buffer_ok("scatter", 1), prepare=_iovec_prepare(1)),
]


def _fresh(backend: str) -> Any:
    inst = _instance(backend)
    # some text (valid UTF-8 with a's) all over memory, zero records at SCRATCH
    pattern = (b"banana " * (MEM // 7 + 1))[:MEM]
    inst.memory.write(0, pattern)
    inst.memory.write(SCRATCH, bytes(512))
    return inst


def _snapshot(inst: Any) -> bytes:
    return inst.memory.read(0, inst.memory.size)


@pytest.mark.parametrize("case", RANGE_CASES, ids=lambda c: c.id)
class TestRanges:
    def _rejects(self, inst: Any, case: RangeCase, ptr: int, count: int) -> Trap:
        if case.prepare is not None:
            case.prepare(inst, ptr, count)
        before = _snapshot(inst)
        trap = _trap(lambda: case.call(inst, ptr, count))
        _assert_bounds_trap(trap, case.function, case.param)
        # nothing was written by the rejected call
        after = _snapshot(inst)
        assert after == before
        return trap

    def test_ptr_out_of_bounds(self, backend: str, case: RangeCase) -> None:
        inst = _fresh(backend)
        for ptr in (MEM + 16, MEM * 2, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF):
            trap = self._rejects(inst, case, ptr, 1)
            assert f"range [0x{ptr:x}, " in trap.message
        # the instance keeps working after the traps
        assert inst.exports.count_a(0, 7) == 3

    def test_ptr_plus_len_overflows_32_bits(self, backend: str, case: RangeCase) -> None:
        inst = _fresh(backend)
        # in u32 arithmetic these would wrap to a small, in-bounds end address
        trap = self._rejects(inst, case, 0xFFFFFFF0, 0x20 // case.unit)
        assert "[0xfffffff0, 0x1000000" in trap.message
        self._rejects(inst, case, 0xFFFFFFFF, 1)
        self._rejects(inst, case, 0xFFFFFFFF, 0xFFFFFFFF // case.unit)
        self._rejects(inst, case, 1, 0xFFFFFFFF)
        self._rejects(inst, case, 0, 0xFFFFFFFF)
        self._rejects(inst, case, 0x80000000, 0x80000000 // case.unit)
        self._rejects(inst, case, 16, (0x100000000 - 8) // case.unit)

    def test_edges_of_memory(self, backend: str, case: RangeCase) -> None:
        inst = _fresh(backend)
        u = case.unit
        # zero length exactly at the end of memory: accepted
        result = case.run(inst, MEM, 0)
        case.ok(inst, MEM, 0, result)
        # the last bytes of memory: accepted
        result = case.run(inst, MEM - 3 * u, 3)
        case.ok(inst, MEM - 3 * u, 3, result)
        # one byte (unit) too far, or zero length one past the end: trap
        self._rejects(inst, case, MEM - 3 * u + 1, 3)
        self._rejects(inst, case, MEM - 3 * u, 4)
        trap = self._rejects(inst, case, MEM + 1, 0)
        assert f"[0x{MEM + 1:x}, 0x{MEM + 1:x})" in trap.message
        # zero length at address 0 and at a random inner address are fine
        case.ok(inst, 0, 0, case.run(inst, 0, 0))
        case.ok(inst, 4000, 0, case.run(inst, 4000, 0))


# --------------------------------------------------------------------------
# Fixed-size targets: Ptr[T] and tuple out-pointers


@dataclass(frozen=True)
class FixedCase:
    id: str
    function: str
    param: str
    size: int
    call: Callable[[Any, int], Any]
    ok: Callable[[Any, int, Any], None]


def _u64_at(inst: Any, p: int) -> int:
    return int(inst.memory.unpack("<Q", p)[0])


def _load_u64(inst: Any, p: int) -> Any:
    inst.memory.pack("<Q", p, 0x0123456789ABCDEF) if p + 8 <= inst.memory.size else None
    return inst.exports.load_u64(p)


def _stat_at(inst: Any, p: int) -> Any:
    if p + 32 <= inst.memory.size:
        inst.memory.write(p, bytes(32))
        inst.memory.pack("<Q", p + 8, 0xFEEDFACE12345)
    return inst.exports.stat_at(p)


def _swap_point(inst: Any, p: int) -> Any:
    if p + 8 <= inst.memory.size:
        inst.memory.pack("<ii", p, 3, -4)
    return inst.exports.swap_point(p)


def _divmod(slot: int) -> Callable[[Any, int], Any]:
    def call(inst: Any, p: int) -> Any:
        addrs = [SCRATCH, SCRATCH + 8]
        addrs[slot] = p
        return inst.exports.divmod(17, 5, *addrs)

    return call


def _divmod_ok(slot: int) -> Callable[[Any, int, Any], None]:
    def ok(inst: Any, p: int, r: Any) -> None:
        assert r == 0
        assert inst.memory.unpack("<I", p) == ((17 // 5, 17 % 5)[slot],)

    return ok


def _wide(slot: int) -> Callable[[Any, int], Any]:
    def call(inst: Any, p: int) -> Any:
        addrs = [SCRATCH, SCRATCH + 8]
        addrs[slot] = p
        return inst.exports.wide(3, *addrs)

    return call


def _wide_ok(slot: int) -> Callable[[Any, int, Any], None]:
    def ok(inst: Any, p: int, r: Any) -> None:
        assert r == 3 * 2**33
        if slot == 0:
            assert _u64_at(inst, p) == 2**64 - 1
        else:
            assert inst.memory.read(p, 1) == b"\xab"

    return ok


def _make_stat_ok(inst: Any, p: int, r: Any) -> None:
    assert r == 0
    kind, size, mode, x, y = struct.unpack_from("<B7xQH2xii4x", inst.memory.read(p, 32))
    assert (kind, size, mode, x, y) == (7, 99, 0o644, -1, 2)


def _open_two(inst: Any, p: int) -> Any:
    return inst.exports.open_two(SCRATCH, 4, p)


def _open_two_ok(inst: Any, p: int, r: Any) -> None:
    assert r == 0
    handle = _u64_at(inst, p)
    assert inst.exports.blob_len(handle) == 4


FIXED_CASES = [
    FixedCase("Ptr[u64](load)", "test.load_u64", "p", 8, _load_u64,
              lambda i, p, r: None if r == 0x0123456789ABCDEF else pytest.fail(hex(r))),
    FixedCase("Ptr[u64](store)", "test.store_u64", "p", 8,
              lambda i, p: i.exports.store_u64(p, 0x1122334455667788),
              lambda i, p, r: None if _u64_at(i, p) == 0x1122334455667788 else pytest.fail()),
    FixedCase("Ptr[Point]", "test.swap_point", "p", 8, _swap_point,
              lambda i, p, r: None if i.memory.unpack("<ii", p) == (-4, 3) else pytest.fail()),
    FixedCase("Ptr[Stat]", "test.stat_at", "p", 32, _stat_at,
              lambda i, p, r: None if r == 0xFEEDFACE12345 else pytest.fail(hex(r))),
    FixedCase("out(divmod.result1)", "test.divmod", "result1", 4, _divmod(0), _divmod_ok(0)),
    FixedCase("out(divmod.result2)", "test.divmod", "result2", 4, _divmod(1), _divmod_ok(1)),
    FixedCase("out(wide.result1:u64)", "test.wide", "result1", 8, _wide(0), _wide_ok(0)),
    FixedCase("out(wide.result2:u8)", "test.wide", "result2", 1, _wide(1), _wide_ok(1)),
    FixedCase("out(make_stat.result1:Stat)", "test.make_stat", "result1", 32,
              lambda i, p: i.exports.make_stat(99, p), _make_stat_ok),
    FixedCase("out(open_two.result1:Handle)", "test.open_two", "result1", 8, _open_two,
              _open_two_ok),
]


@pytest.mark.parametrize("case", FIXED_CASES, ids=lambda c: c.id)
class TestFixedSize:
    def _rejects(self, inst: Any, case: FixedCase, ptr: int) -> Trap:
        before = _snapshot(inst)
        trap = _trap(lambda: case.call(inst, ptr))
        _assert_bounds_trap(trap, case.function, case.param)
        assert f"range [0x{ptr:x}, 0x{ptr + case.size:x})" in trap.message
        assert _snapshot(inst) == before
        return trap

    def test_out_of_bounds(self, backend: str, case: FixedCase) -> None:
        inst = _fresh(backend)
        for ptr in (MEM, MEM + 100, 0x7FFFFFFF, 0x80000000):
            self._rejects(inst, case, ptr)
        assert inst.exports.count_a(0, 7) == 3

    def test_end_wraps_32_bits(self, backend: str, case: FixedCase) -> None:
        inst = _fresh(backend)
        # ptr + size wraps past 2**32 to a small address
        for ptr in (0xFFFFFFFF, 0x100000000 - case.size, 0x100000000 - max(case.size // 2, 1)):
            self._rejects(inst, case, ptr)

    def test_edges(self, backend: str, case: FixedCase) -> None:
        inst = _fresh(backend)
        p = MEM - case.size
        case.ok(inst, p, case.call(inst, p))
        self._rejects(inst, case, p + 1)
        case.ok(inst, 0, case.call(inst, 0))


# --------------------------------------------------------------------------
# Invalid UTF-8, unknown handles


@pytest.mark.parametrize("data, bad_at", [
    (b"\xff", 0),
    (b"abc\xfe", 3),
    (b"ab\xc3", 2),                # truncated 2-byte sequence
    (b"\xc0\xaf", 0),              # overlong encoding of '/'
    (b"a\xed\xa0\x80", 1),         # an encoded surrogate
    (b"aaaa\xf4\x90\x80\x80", 4),  # beyond U+10FFFF
])
def test_invalid_utf8_traps_naming_parameter(backend: str, data: bytes, bad_at: int) -> None:
    inst = _fresh(backend)
    inst.memory.write(2000, data)
    trap = _trap(lambda: inst.exports.count_a(2000, len(data)))
    assert trap.message.startswith("test.count_a: parameter 'words' is not valid UTF-8 ("), \
        trap.message
    assert trap.message.endswith(f" at byte {bad_at})"), trap.message
    assert trap.function == "test.count_a"
    assert "str" not in inst.hosts[0].seen  # the host method never ran
    # the second Str parameter of another function is named too
    trap = _trap(lambda: inst.exports.upper(2000, len(data), SCRATCH, 16))
    assert trap.message.startswith("test.upper: parameter 'text' is not valid UTF-8"), \
        trap.message


def test_valid_multibyte_utf8_is_accepted(backend: str) -> None:
    inst = _fresh(backend)
    text = "ñaña ☃ 𝄞 a"
    data = text.encode()
    inst.memory.write(2000, data)
    assert inst.exports.count_a(2000, len(data)) == 3
    assert inst.hosts[0].seen["str"] == text
    # cutting a multi-byte character in half is invalid
    trap = _trap(lambda: inst.exports.count_a(2000, 1))
    assert "parameter 'words' is not valid UTF-8" in trap.message


def test_unknown_handle_traps(backend: str) -> None:
    inst = _fresh(backend)
    for rid in (0, 1, 999):
        trap = _trap(lambda rid=rid: inst.exports.blob_len(rid))
        assert trap.message == f"unknown Blob handle {rid}"
        assert trap.function == "test.blob_len"
    trap = _trap(lambda: inst.exports.blob_len(-1))
    assert trap.message == f"unknown Blob handle {2**64 - 1}"
    trap = _trap(lambda: inst.exports.blob_read(7, SCRATCH, 8))
    assert trap.message == "unknown Blob handle 7" and trap.function == "test.blob_read"
    trap = _trap(lambda: inst.exports.close_blob(5))
    assert trap.message == "unknown Blob handle 5" and trap.function == "test.close_blob"
    # a real handle works; once closed it is unknown again (ids are not reused)
    inst.memory.write(SCRATCH, b"hello")
    rid = inst.exports.open_blob(SCRATCH, 5)
    assert rid == 0
    assert inst.exports.blob_len(rid) == 5
    assert inst.exports.close_blob(rid) == 0
    trap = _trap(lambda: inst.exports.blob_len(rid))
    assert trap.message == f"unknown Blob handle {rid}"
    assert inst.exports.open_blob(SCRATCH, 2) == 1
    # handles are per instance
    other = _instance(backend)
    trap = _trap(lambda: other.exports.blob_len(1))
    assert trap.message == "unknown Blob handle 1"


# --------------------------------------------------------------------------
# Modules without an exported "memory"

NO_MEMORY_WATS = {
    "none": _forwarding_wat(memory=None),
    "other-name": _forwarding_wat(memory='(memory (export "mem") 1)'),
}

MEMORY_CALLS = [
    ("test.count_a", "words", lambda e: e.count_a(0, 4)),
    ("test.checksum", "data", lambda e: e.checksum(0, 1)),
    ("test.fill", "buf", lambda e: e.fill(0, 1, 0)),
    ("test.upper", "text", lambda e: e.upper(0, 1, 0, 1)),
    ("test.gather", "parts", lambda e: e.gather(0, 1)),
    ("test.scatter", "parts", lambda e: e.scatter(0, 1, 0)),
    ("test.load_u64", "p", lambda e: e.load_u64(0)),
    ("test.store_u64", "p", lambda e: e.store_u64(0, 1)),
    ("test.stat_at", "p", lambda e: e.stat_at(0)),
    ("test.divmod", "result1", lambda e: e.divmod(7, 2, 0, 4)),
    ("test.make_stat", "result1", lambda e: e.make_stat(1, 0)),
    ("test.open_two", "data", lambda e: e.open_two(0, 1, 8)),
]


@pytest.mark.parametrize("variant", sorted(NO_MEMORY_WATS))
def test_module_without_memory_export(backend: str, variant: str) -> None:
    inst = _instance(backend, NO_MEMORY_WATS[variant])
    assert inst.exports.add(2, 3) == 5  # functions without memory work
    for function, param, call in MEMORY_CALLS:
        trap = _trap(lambda call=call: call(inst.exports))
        assert trap.message == (f"{function}: parameter {param!r}: the guest module does not "
                                "export a memory named 'memory'"), trap.message
        assert trap.function == function
    with pytest.raises(Trap, match="does not export a memory named 'memory'"):
        inst.memory.read(0, 1)


# --------------------------------------------------------------------------
# memory.grow: the cached view must be refreshed for pointers into new pages


def test_grow_in_guest_then_pointer_into_new_pages(backend: str) -> None:
    inst = _instance(backend)
    assert inst.memory.size == MEM
    # the guest grows its memory and writes "aba" in the new page, then calls
    # count_a: the host's cached view (one page) is stale at that moment
    assert inst.exports.grow_then_count(MEM + 100) == 2
    assert inst.hosts[0].seen["str"] == "aba"
    assert inst.memory.size == 2 * MEM
    assert inst.memory.read(MEM + 100, 3) == b"aba"


def test_grow_then_every_kind_of_pointer(backend: str) -> None:
    inst = _instance(backend)
    assert inst.memory.size == MEM
    assert inst.exports.grow(2) == 1  # Python has not looked at memory since
    new = MEM + 1000
    # MutBytes in the new pages
    inst.exports.fill(new, 16, 0x5A)
    assert inst.memory.size == 3 * MEM
    assert inst.memory.read(new, 16) == b"Z" * 16
    # Ptr[u64] at the very end of the grown memory, and one byte past it
    inst.exports.store_u64(3 * MEM - 8, 0xA1B2C3D4E5F60718)
    assert inst.exports.load_u64(3 * MEM - 8) == 0xA1B2C3D4E5F60718 - 2**64
    trap = _trap(lambda: inst.exports.load_u64(3 * MEM - 7))
    _assert_bounds_trap(trap, "test.load_u64", "p", 3 * MEM)
    # out-pointers in new pages
    assert inst.exports.divmod(100, 7, new + 64, new + 68) == 0
    assert inst.memory.unpack("<II", new + 64) == (14, 2)
    # IoSlices records in page 0 pointing at buffers in the new pages
    assert inst.exports.grow(1) == 3
    inst.memory.write(3 * MEM + 10, b"xyz")  # refreshes the view itself
    inst.memory.write(0, struct.pack("<IIII", new, 4, 3 * MEM + 10, 3))
    assert inst.exports.gather(0, 2) == 7
    assert inst.hosts[0].seen["gather"] == b"ZZZZxyz"
    assert inst.exports.grow(1) == 4
    # a record array itself in the newest page, before Python refreshed
    trap = _trap(lambda: inst.exports.gather(5 * MEM - 8, 2))
    _assert_bounds_trap(trap, "test.gather", "parts", 5 * MEM)


def test_grow_in_guest_then_str_at_end(backend: str) -> None:
    inst = _instance(backend)
    assert inst.exports.grow(1) == 1
    # a zero-length Str exactly at the new end is fine; one past is not
    assert inst.exports.count_a(2 * MEM, 0) == 0
    trap = _trap(lambda: inst.exports.count_a(2 * MEM + 1, 0))
    _assert_bounds_trap(trap, "test.count_a", "words", 2 * MEM)


# --------------------------------------------------------------------------
# Modules that cannot be loaded

VALID_WAT = """(module
  (import "test" "add" (func $add (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (param i32 i32) (result i32) (call $add (local.get 0) (local.get 1)))
  (func (export "seven") (result i32) (i32.const 7)))
"""


def _valid_wasm() -> bytes:
    import wasmtime

    return bytes(wasmtime.wat2wasm(VALID_WAT))


BAD_INPUTS = {
    "empty": b"",
    "garbage": b"\x00\x01\x02 this is not wasm \xff\xfe",
    "text-garbage": b"hello world",
    "magic-only": b"\0asm",
    "bad-version": b"\0asm\x02\0\0\0",
    "bad-section-id": b"\0asm\x01\0\0\0\x7f\x01\x00",
    "section-too-long": b"\0asm\x01\0\0\0\x01\xff\xff\xff\x0f\x00",
    "magic-then-noise": b"\0asm\x01\0\0\0" + bytes(range(256)) * 4,
    "bad-wat": "(module (func (result i32) i32.const))",
    "bad-wat-bytes": b"(module (oops",
    "invalid-module": "(module (func (result i32)))",   # parses, fails validation
    "type-mismatch": "(module (func (result i32) (i64.const 1)))",
}


@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_bad_module_gives_compile_error(backend: str, name: str) -> None:
    source = BAD_INPUTS[name]
    with pytest.raises(CompileError) as info:
        funk.compile(source, backend)
    assert str(info.value)
    with pytest.raises(CompileError):
        funk.instantiate(source, [TestHost()], backend=backend)


def test_compile_error_names_engine(backend: str) -> None:
    with pytest.raises(CompileError, match=f"{backend} cannot compile the module"):
        funk.compile(BAD_INPUTS["invalid-module"], backend)
    with pytest.raises(CompileError, match="invalid WAT"):
        funk.compile(BAD_INPUTS["bad-wat"], backend)


def test_truncated_module(backend: str) -> None:
    wasm = _valid_wasm()
    assert funk.instantiate(wasm, [TestHost()], backend=backend).exports.run(2, 3) == 5
    # cuts inside a section must fail to compile
    for cut in (len(wasm) - 1, len(wasm) - 3, 9, 10, 11):
        with pytest.raises(CompileError):
            funk.compile(wasm[:cut], backend)
    # every prefix either compiles (a cut at a section boundary) or gives
    # CompileError: never another exception, never a crash
    compiled = 0
    for cut in range(len(wasm)):
        try:
            funk.compile(wasm[:cut], backend)
            compiled += 1
        except CompileError:
            pass
    assert compiled < len(wasm) // 4


def test_corrupted_bytes(backend: str) -> None:
    wasm = bytearray(_valid_wasm())
    for i in range(8, len(wasm)):
        for value in (0x00, 0xFF):
            if wasm[i] == value:
                continue
            mutated = bytes(wasm[:i]) + bytes([value]) + bytes(wasm[i + 1:])
            try:
                module = funk.compile(mutated, backend)
            except CompileError:
                continue
            # some mutations stay valid (e.g. a constant): they still behave
            try:
                inst = module.instantiate([TestHost()])
            except (funk.LinkError, Trap):
                continue
            assert isinstance(inst, funk.Instance)


def test_nonexistent_path(backend: str, tmp_path: Path) -> None:
    missing = tmp_path / "nope" / "module.wasm"
    for source in (missing, str(missing)):
        with pytest.raises(CompileError, match="cannot read"):
            funk.compile(source, backend)
    with pytest.raises(CompileError, match="cannot read"):
        funk.compile(str(tmp_path), backend)  # a directory


def test_files_with_bad_content(backend: str, tmp_path: Path) -> None:
    junk = tmp_path / "junk.wasm"
    junk.write_bytes(b"\x13\x37 not a module")
    with pytest.raises(CompileError, match="not a wasm module"):
        funk.compile(junk, backend)
    truncated = tmp_path / "truncated.wasm"
    truncated.write_bytes(_valid_wasm()[:-2])
    with pytest.raises(CompileError, match=f"{backend} cannot compile"):
        funk.compile(truncated, backend)
    bad_wat = tmp_path / "bad.wat"
    bad_wat.write_text("(module (func $f (param i32) (result i32) local.get 7))")
    with pytest.raises(CompileError):
        funk.compile(bad_wat, backend)
    # positive controls: the same paths work with good content
    good = tmp_path / "good.wasm"
    good.write_bytes(_valid_wasm())
    assert funk.instantiate(good, [TestHost()], backend=backend).exports.seven() == 7
    good_wat = tmp_path / "good.wat"
    good_wat.write_text(VALID_WAT)
    assert funk.instantiate(good_wat, [TestHost()], backend=backend).exports.run(4, 5) == 9


V128_WAT = """
(module
  (import "env" "takes_v128" (func (param v128)))
  (func (export "echo") (param v128) (result v128) local.get 0)
  (func (export "make") (result v128) v128.const i64x2 1 2)
  (func (export "add") (param i32 i32) (result i32) (i32.add (local.get 0) (local.get 1))))
"""


def test_v128_signatures_are_described_not_fatal(backend: str) -> None:
    """Imports and exports with ``v128`` in their signatures compile and are described
    (wasmtime-py aborts the whole process when asked for such a signature, so funk reads
    signatures from the binary); linking a v128 import is a ``LinkError``, calling a
    v128 export from Python a ``TypeError``, and the other exports work."""
    module = funk.compile(V128_WAT, backend)
    (imp,) = module.imports
    assert (imp.params, imp.results) == (("v128",), ())
    with pytest.raises(funk.LinkError, match="takes_v128"):
        module.instantiate([])
    plain = funk.compile(V128_WAT.replace(
        '(import "env" "takes_v128" (func (param v128)))', ""), backend)
    instance = plain.instantiate([])
    assert instance.exports.add(2, 3) == 5
    for name, args in (("echo", (0,)), ("make", ())):
        with pytest.raises(TypeError, match="v128"):
            instance.exports[name](*args)
