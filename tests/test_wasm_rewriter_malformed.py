"""wasm_rewriter: malformed and hostile input gives ``MalformedModule``, nothing else.

Specific cases check the offset the error names; property-based cases throw
random bytes, mutations and truncations of valid modules at the parser and
require either a ``Module`` (which then encodes back to the very same bytes,
and canonically to an equal structure) or a ``MalformedModule``.
"""

from __future__ import annotations

import sys
import tracemalloc
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_wasm_rewriter_roundtrip import FIXTURES, fixture_bytes, structure, uleb
from wasm_rewriter import MalformedModule, Module, Reader, decode_expr

HEADER = b"\0asm\x01\0\0\0"


def section(sid: int, payload: bytes) -> bytes:
    return bytes((sid,)) + uleb(len(payload)) + payload


def vec(*items: bytes) -> bytes:
    return uleb(len(items)) + b"".join(items)


TYPE_SECTION = section(1, vec(b"\x60\x00\x00"))           # one type: () -> ()
FUNC_SECTION = section(3, vec(b"\x00"))                    # one function of type 0
# The code section below starts here; its first body's instructions start 5 bytes later
# (id, section size, body count, body size, locals count: one byte each for small bodies).
CODE_AT = len(HEADER) + len(TYPE_SECTION) + len(FUNC_SECTION)
INSTRS_AT = CODE_AT + 5


def one_function(instrs: bytes, locals_: bytes = b"\x00") -> bytes:
    """A module with one () -> () function whose body is ``locals_`` + ``instrs``."""
    body = locals_ + instrs
    assert len(body) < 0x80
    return HEADER + TYPE_SECTION + FUNC_SECTION + section(10, vec(uleb(len(body)) + body))


def malformed(data: bytes) -> MalformedModule:
    with pytest.raises(MalformedModule) as info:
        Module.parse(data)
    err = info.value
    assert isinstance(err, ValueError)
    assert isinstance(err.offset, int) and 0 <= err.offset <= len(data)
    assert isinstance(err.reason, str) and err.reason
    text = str(err)
    assert f"{err.offset:#x}" in text and f"({err.offset})" in text, text
    return err


# ---------------------------------------------------------------------------
# Specific cases


def test_valid_helper_module_parses() -> None:
    # The base the cases below corrupt: it must be fine as it is.
    m = Module.parse(one_function(b"\x01\x0b"))
    assert len(m.code) == 1 and m.code[0].code[-1].op == 0x0B
    assert m.encode() == one_function(b"\x01\x0b")


def test_str_names_offset_in_hex_and_decimal() -> None:
    err = MalformedModule(499, "unknown opcode 0xfd 0x1ff")
    assert str(err) == "malformed module at offset 0x1f3 (499): unknown opcode 0xfd 0x1ff"
    assert (err.offset, err.reason) == (499, "unknown opcode 0xfd 0x1ff")
    assert isinstance(err, ValueError)


def test_empty_input() -> None:
    assert malformed(b"").offset == 0


def test_bad_magic() -> None:
    assert malformed(b"\0asn\x01\0\0\0").offset in (0, 3)
    assert malformed(b"\x01asm\x01\0\0\0").offset == 0
    assert malformed(b"not wasm at all").offset == 0


def test_bad_version() -> None:
    assert malformed(b"\0asm\x02\0\0\0").offset == 4
    assert malformed(b"\0asm\x01\0\0\x01").offset in (4, 7)
    # A component (version 0x0d, layer 1) is not a core module either.
    assert malformed(b"\0asm\x0d\0\x01\0").offset == 4


def test_header_cut_short() -> None:
    for n in range(1, 8):
        err = malformed(HEADER[:n])
        assert err.offset <= n


def test_truncated_at_every_byte() -> None:
    """Every prefix: a MalformedModule, unless it ends exactly between two sections."""
    data = fixture_bytes("globals_imports")
    boundaries = {len(HEADER)}
    pos = len(HEADER)
    while pos < len(data):
        size_at = pos + 1
        size = shift = 0
        while True:
            b = data[size_at]
            size_at += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        pos = size_at + size
        boundaries.add(pos)
    failures = 0
    for n in range(len(data)):
        prefix = data[:n]
        if n in boundaries:
            # A prefix made of whole sections may be a module in its own right (the header
            # alone is), or not (functions declared but the code section cut off).
            try:
                Module.parse(prefix)
            except MalformedModule as exc:
                assert exc.offset <= n
            continue
        err = malformed(prefix)
        assert err.offset <= n
        failures += 1
    assert failures > len(data) - 30


def test_section_size_past_the_end() -> None:
    data = HEADER + b"\x01\x05\x01\x60\x00"        # the type section claims 5 bytes, has 3
    assert malformed(data).offset in (8, 9)
    # And a huge size (4 GiB - 1) with nothing behind it.
    assert malformed(HEADER + b"\x00\xff\xff\xff\xff\x0f").offset in (8, 9)


def test_section_size_too_small() -> None:
    # The type entry needs 4 bytes (count, 0x60, params, results); the size says 3, so
    # reading the results count runs into the section's end at offset 8 + 2 + 3.
    data = HEADER + b"\x01\x03\x01\x60\x00\x00"
    assert malformed(data).offset == 13


def test_section_with_bytes_left_over() -> None:
    # A type section of 5 bytes holding a 4-byte vector: the extra byte is refused.
    data = HEADER + b"\x01\x05\x01\x60\x00\x00\x00"
    assert malformed(data).offset == 14


def test_leb128_too_long() -> None:
    # The type count as 6 bytes: a u32 takes at most 5.
    data = HEADER + b"\x01\x07\x80\x80\x80\x80\x80\x00\x00"
    assert 10 <= malformed(data).offset <= 15
    # A section size with 6 bytes.
    assert 9 <= malformed(HEADER + b"\x00\x80\x80\x80\x80\x80\x00").offset <= 14
    # An i32.const immediate of 6 bytes inside a body.
    data = one_function(b"\x41\x80\x80\x80\x80\x80\x00\x1a\x0b")
    assert INSTRS_AT <= malformed(data).offset <= INSTRS_AT + 6


def test_leb128_unused_bits_set() -> None:
    # u32 count: 5th byte 0x1f carries bits 32-35.
    data = HEADER + b"\x01\x06\xff\xff\xff\xff\x1f\x00"
    assert malformed(data).offset in (10, 14)
    # s32 of i32.const: the last byte must be a sign extension (0x00-0x07 or 0x78-0x7f).
    data = one_function(b"\x41\xff\xff\xff\xff\x4f\x1a\x0b")
    assert malformed(data).offset in (INSTRS_AT, INSTRS_AT + 1, INSTRS_AT + 5)
    # A memarg alignment with bits past 32.
    data = one_function(b"\x41\x00\x28\x80\x80\x80\x80\x70\x00\x1a\x0b")
    assert INSTRS_AT + 2 <= malformed(data).offset <= INSTRS_AT + 7


def test_unknown_section_id() -> None:
    assert malformed(HEADER + b"\x0e\x00").offset == 8
    assert malformed(HEADER + TYPE_SECTION + b"\x7f\x01\x00").offset == 8 + len(TYPE_SECTION)


def test_sections_out_of_order_or_repeated() -> None:
    malformed(HEADER + FUNC_SECTION + TYPE_SECTION)
    err = malformed(HEADER + TYPE_SECTION + TYPE_SECTION)
    assert err.offset == 8 + len(TYPE_SECTION)


def test_unknown_opcode() -> None:
    for op in (0x27, 0xC5, 0xFF):
        err = malformed(one_function(b"\x01" + bytes((op,)) + b"\x0b"))
        assert err.offset == INSTRS_AT + 1, err
        assert err.reason.startswith("unknown opcode")


@pytest.mark.parametrize("sub", [
    b"\xfc\x50",            # 0xFC 80
    b"\xfc\xff\x03",        # 0xFC 511
    b"\xfd\xff\x03",        # 0xFD 511
    b"\xfd\x80\x80\x04",    # 0xFD 65536
    b"\xfe\x7f",            # 0xFE 127
    b"\xfe\x04",            # 0xFE 4 (a gap after atomic.fence)
])
def test_unknown_prefixed_opcode(sub: bytes) -> None:
    err = malformed(one_function(b"\x01" + sub + b"\x0b"))
    assert err.offset in (INSTRS_AT + 1, INSTRS_AT + 2), err
    assert err.reason.startswith("unknown opcode")


def test_function_and_code_counts_differ() -> None:
    two = section(3, vec(b"\x00", b"\x00"))
    code = section(10, vec(b"\x02\x00\x0b"))
    data = HEADER + TYPE_SECTION + two + code
    err = malformed(data)
    code_at = 8 + len(TYPE_SECTION) + len(two)
    assert code_at <= err.offset <= len(data)
    # Functions declared, code section missing altogether.
    malformed(HEADER + TYPE_SECTION + FUNC_SECTION)
    # A code section without a function section.
    malformed(HEADER + TYPE_SECTION + code)


def test_body_not_ending_with_end() -> None:
    err = malformed(one_function(b"\x01\x01"))       # nop nop: the body runs out
    assert INSTRS_AT <= err.offset <= INSTRS_AT + 2
    # An end, then more bytes in the body.
    err = malformed(one_function(b"\x0b\x01"))
    assert err.offset == INSTRS_AT + 1
    # A block opened and never closed: the function's end only closes the block.
    err = malformed(one_function(b"\x02\x40\x0b"))
    assert INSTRS_AT <= err.offset <= INSTRS_AT + 3


def test_stray_end_and_else() -> None:
    assert malformed(one_function(b"\x0b\x0b")).offset == INSTRS_AT + 1
    assert malformed(one_function(b"\x05\x0b")).offset == INSTRS_AT
    # else inside a block (not an if), and a second else in one if.
    assert malformed(one_function(b"\x02\x40\x05\x0b\x0b")).offset == INSTRS_AT + 2
    data = one_function(b"\x41\x01\x04\x40\x05\x05\x0b\x0b")
    assert malformed(data).offset == INSTRS_AT + 5


def test_invalid_utf8_in_names() -> None:
    export = section(7, vec(b"\x02a\xff" + b"\x00\x00"))
    data = HEADER + TYPE_SECTION + FUNC_SECTION + export + section(10, vec(b"\x02\x00\x0b"))
    name_at = 8 + len(TYPE_SECTION) + len(FUNC_SECTION) + 3       # the length byte
    assert name_at <= malformed(data).offset <= name_at + 2
    imports = section(2, vec(b"\x02\xc3\x28" + b"\x01f" + b"\x00\x00"))
    assert 11 + len(TYPE_SECTION) <= malformed(HEADER + TYPE_SECTION + imports).offset
    # A custom section's own name must be UTF-8 too.
    malformed(HEADER + section(0, b"\x03\xed\xa0\x80payload"))


def test_bad_name_section_is_kept_raw() -> None:
    # Engines ignore a malformed name section, so the module still parses and round-trips.
    bad_names = section(0, b"\x04name" + b"\x01\x04\x01\x00\x02\xff")
    data = one_function(b"\x0b") + bad_names
    m = Module.parse(data)
    assert m.names is None
    assert isinstance(m.names_error, MalformedModule)
    assert m.encode() == data
    assert Module.parse(m.encode(canonical=True)).encode() == data


@pytest.mark.parametrize("hostile", [
    HEADER + b"\x01\x06\xff\xff\xff\xff\x0f\x60",                   # 4 billion types
    HEADER + TYPE_SECTION + FUNC_SECTION + b"\x0a\x06\xff\xff\xff\xff\x0f\x00",  # bodies
    one_function(b"\x0b", locals_=b"\xff\xff\xff\xff\x0f\x7f"),     # locals entries
    one_function(b"\x41\x00\x0e\xff\xff\xff\xff\x0f\x00\x0b"),       # br_table labels
    one_function(b"\x1c\xff\xff\xff\xff\x0f\x7f\x0b"),               # select t* types
    HEADER + section(11, b"\x01\x00\x41\x00\x0b\xff\xff\xff\xff\x0f"),  # 4 GiB of data
    HEADER + section(7, b"\x01\xff\xff\xff\xff\x0f"),               # a 4 GiB export name
    HEADER + section(9, b"\x01\x00\x41\x00\x0b\xff\xff\xff\xff\x0f"),  # element indices
])
def test_huge_counts_fail_without_allocating(hostile: bytes) -> None:
    tracemalloc.start()
    try:
        malformed(hostile)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Failing fast means no list or buffer sized by the lying count.
    assert peak < 1 << 20


def _stack_depth() -> int:
    frame, depth = sys._getframe(), 0
    while frame is not None:
        frame, depth = frame.f_back, depth + 1  # type: ignore[assignment]
    return depth


def _parse_with_little_stack(data: bytes) -> Module | MalformedModule:
    """Parse with the recursion limit barely above the current depth.

    A parser that recursed per nesting level would hit RecursionError here.
    """
    old = sys.getrecursionlimit()
    sys.setrecursionlimit(_stack_depth() + 150)
    try:
        try:
            return Module.parse(data)
        except MalformedModule as exc:
            return exc
    finally:
        sys.setrecursionlimit(old)


def test_deep_nesting_parses_without_recursion() -> None:
    depth = 100_000
    body = b"\x00" + b"\x02\x40" * depth + b"\x0b" * depth + b"\x0b"
    data = (HEADER + TYPE_SECTION + FUNC_SECTION
            + section(10, vec(uleb(len(body)) + body)))
    result = _parse_with_little_stack(data)
    assert isinstance(result, Module)
    assert len(result.code[0].code) == 2 * depth + 1
    assert result.encode() == data
    assert result.encode(canonical=True) == data


def test_deep_nesting_unclosed_fails_cleanly() -> None:
    depth = 100_000
    body = b"\x00" + b"\x02\x40" * depth + b"\x0b" * (depth // 2)
    data = (HEADER + TYPE_SECTION + FUNC_SECTION
            + section(10, vec(uleb(len(body)) + body)))
    result = _parse_with_little_stack(data)
    assert isinstance(result, MalformedModule)
    assert result.offset <= len(data)


def test_deep_nesting_in_a_constant_expression() -> None:
    # Constant expressions use the same decoder: no recursion there either.
    depth = 100_000
    init = b"\x02\x40" * depth + b"\x0b" * depth + b"\x41\x00\x0b"
    data = HEADER + section(6, vec(b"\x7f\x00" + init))
    result = _parse_with_little_stack(data)
    assert isinstance(result, Module)
    assert len(result.globals[0].init) == 2 * depth + 2
    assert result.encode() == data


def reader_error(call: Callable[[], object]) -> MalformedModule:
    with pytest.raises(MalformedModule) as info:
        call()
    return info.value


def test_reader_leb128_is_strict_with_absolute_offsets() -> None:
    r = Reader(b"xx\xe5\x8e\x26", 2)
    assert r.u32() == 624485 and r.pos == 5
    assert 2 <= reader_error(Reader(b"xx" + b"\x80" * 5 + b"\x00", 2).u32).offset <= 7
    assert reader_error(Reader(b"xx\xff\xff\xff\xff\x1f", 2).u32).offset in (2, 6)
    assert Reader(b"\xff\xff\xff\xff\x0f").u32() == 2**32 - 1
    assert Reader(b"\x80\x80\x80\x80\x78").s32() == -(2**31)
    assert Reader(b"\xff\xff\xff\xff\x07").s32() == 2**31 - 1
    assert reader_error(Reader(b"\xff\xff\xff\xff\x4f").s32).offset in (0, 4)
    assert reader_error(Reader(b"\x80\x80\x80\x80\x08").s32).offset in (0, 4)
    assert Reader(b"\x40").s33() == -64
    assert Reader(b"\xff\xff\xff\xff\x0f").s33() == 2**32 - 1
    assert reader_error(Reader(b"\xff\xff\xff\xff\x1f").s33).offset in (0, 4)
    assert Reader(b"\xff" * 9 + b"\x01").u64() == 2**64 - 1
    assert reader_error(Reader(b"\xff" * 9 + b"\x02").u64).offset in (0, 9)
    assert reader_error(Reader(b"\x80" * 10 + b"\x00").u64).offset in range(11)
    assert Reader(b"\x80" * 9 + b"\x7f").s64() == -(2**63)
    assert reader_error(Reader(b"\x80" * 9 + b"\x7e").s64).offset in (0, 9)


def test_reader_respects_its_end() -> None:
    r = Reader(b"\x01\x02\x03", 0, 2)
    assert (r.u8(), r.u8()) == (1, 2)
    assert reader_error(r.u8).offset == 2
    assert reader_error(lambda: Reader(b"\x01\x02\x03", 0, 2).take(3)).offset in (0, 2)
    # A LEB128 that continues past the region's end is cut off, even though bytes follow.
    assert reader_error(Reader(b"\x80\x01", 0, 1).u32).offset in (0, 1)
    assert reader_error(Reader(b"", 0).u32).offset == 0


def test_reader_names_and_vectors() -> None:
    assert Reader(b"\x02\xc3\xa9").name() == "\u00e9"
    assert 2 <= reader_error(Reader(b"xx\x02\xc3\x28", 2).name).offset <= 4
    assert reader_error(Reader(b"\x05abc").name).offset in (0, 1)
    r = Reader(b"\x03\x01\x02\x03")
    assert r.vec(r.u8) == [1, 2, 3]
    hostile = Reader(b"\xff\xff\xff\xff\x0f\x00")
    calls: list[int] = []
    err = reader_error(lambda: hostile.vec(lambda: calls.append(hostile.u8())))
    assert err.offset == 0 and calls == []          # refused before reading a single element


def test_decode_expr_errors_name_absolute_offsets() -> None:
    blob = b"junk" + b"\x01\x27\x0b"
    with pytest.raises(MalformedModule) as info:
        decode_expr(blob, 4, len(blob))
    assert info.value.offset == 5
    with pytest.raises(MalformedModule):
        decode_expr(blob, 4, 6)                        # the end lies beyond ``end``


# ---------------------------------------------------------------------------
# Property-based: nothing but Module or MalformedModule, ever.


def parse_or_malformed(data: bytes) -> None:
    try:
        m = Module.parse(data)
    except MalformedModule as exc:
        assert 0 <= exc.offset <= len(data)
        return
    # Whatever parses, round-trips byte for byte and re-encodes canonically to the same thing.
    assert m.encode() == data
    assert structure(Module.parse(m.encode(canonical=True))) == structure(m)


SEEDS = [fixture_bytes(name) for name in sorted(FIXTURES)]
SETTINGS = settings(max_examples=600, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes(data: bytes) -> None:
    parse_or_malformed(data)


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_after_a_valid_header(data: bytes) -> None:
    parse_or_malformed(HEADER + data)


@st.composite
def random_sections(draw: st.DrawFn) -> bytes:
    """A header and sections with honest sizes but random ids and payloads."""
    parts = [HEADER]
    for _ in range(draw(st.integers(0, 4))):
        sid = draw(st.sampled_from([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]))
        parts.append(section(sid, draw(st.binary(max_size=40))))
    return b"".join(parts)


@SETTINGS
@given(random_sections())
def test_random_sections(data: bytes) -> None:
    parse_or_malformed(data)


@SETTINGS
@given(st.data())
def test_single_byte_mutations_of_valid_modules(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(SEEDS))
    pos = data.draw(st.integers(8, len(seed) - 1))
    byte = data.draw(st.integers(0, 255))
    parse_or_malformed(seed[:pos] + bytes((byte,)) + seed[pos + 1:])


def section_spans(data: bytes) -> dict[int, tuple[int, int]]:
    """(start of payload, end) of each known section, by id (an independent mini-parser)."""
    spans, pos = {}, len(HEADER)
    while pos < len(data):
        sid, at = data[pos], pos + 1
        size = shift = 0
        while True:
            b = data[at]
            at += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        spans[sid] = (at, at + size)
        pos = at + size
    return spans


CODE_SEEDS = [(seed, section_spans(seed)[10]) for seed in SEEDS if 10 in section_spans(seed)]


@SETTINGS
@given(st.data())
def test_mutations_inside_function_bodies(data: st.DataObject) -> None:
    # Aim at the code section, where the instruction decoder's corner cases live.
    seed, (start, end) = data.draw(st.sampled_from(CODE_SEEDS))
    pos = data.draw(st.integers(start, end - 1))
    mutated = bytearray(seed)
    for i in range(data.draw(st.integers(1, 3))):
        if pos + i < end:
            mutated[pos + i] = data.draw(st.integers(0, 255))
    parse_or_malformed(bytes(mutated))


@SETTINGS
@given(st.data())
def test_truncations_and_insertions(data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(SEEDS))
    cut = data.draw(st.integers(0, len(seed)))
    parse_or_malformed(seed[:cut])
    insert = data.draw(st.binary(min_size=1, max_size=4))
    parse_or_malformed(seed[:cut] + insert + seed[cut:])
