"""Property: random (ptr, len) pairs never do anything but the right thing.

For every memory-using lowering of ``TestHost``, hypothesis throws pointers
and lengths from the whole u32 range (biased toward 0, the memory size, 2**31
and 2**32 - 1) at the host function through a guest, on both engines.  A
pure-Python model computes the expected outcome from the same memory
contents: either the result (and the exact memory contents afterwards) or
the exact trap message.  Any other exception, a wrong message, a wrong
result or a stray write fails the test.

One instance per engine is reused (memory is reset before every call).
"""

from __future__ import annotations

import random
import struct
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import funk
from codegen.wat import func_type
from funk import Trap
from tests.hosts import Blob, TestHost

MEM = 65536
U32 = 0xFFFFFFFF

EXAMPLES = 100       # hypothesis examples per rule and engine
CALLS_PER_EXAMPLE = 4  # at most; 1..4 calls per example (memory reset before each)


def _forwarding_wat() -> str:
    fns = funk.functions_of(TestHost)
    lines = ["(module"]
    sigs = []
    for i, f in enumerate(fns):
        sig = (" " + func_type(f)).rstrip()
        sigs.append(sig)
        lines.append(f'  (import "{f.namespace}" "{f.name}" (func $f{i}{sig}))')
    lines.append('  (memory (export "memory") 1)')
    for i, f in enumerate(fns):
        gets = " ".join(f"local.get {k}" for k in range(len(f.wasm_params)))
        lines.append(f'  (func (export "{f.name}"){sigs[i]} {gets} call $f{i})')
    lines.append(")")
    return "\n".join(lines)


WAT = _forwarding_wat()


def _pattern() -> bytes:
    """Mostly ASCII text with 'a's, sprinkled with multi-byte characters and
    invalid UTF-8, so random ranges decode sometimes and fail sometimes."""
    rng = random.Random(20240611)
    out = bytearray()
    while len(out) < MEM:
        x = rng.random()
        if x < 0.002:
            out += b"\xff"
        elif x < 0.004:
            out += b"\xe2\x98\x83"  # snowman: cut in half by many ranges
        elif x < 0.01:
            out += "é".encode()
        else:
            out.append(rng.choice(b"aaabcdefgh "))
    return bytes(out[:MEM])


PATTERN = _pattern()

_instances: dict[str, Any] = {}
CALLS: dict[str, int] = {}


def _inst(backend: str) -> Any:
    if backend not in _instances:
        _instances[backend] = funk.instantiate(WAT, [TestHost()], backend=backend)
    return _instances[backend]


# --------------------------------------------------------------------------
# Strategies: u32 values biased toward the interesting edges

EDGES = sorted({0, 1, 2, 3, 4, 7, 8, 9, 16, 31, 32, 33, MEM - 33, MEM - 32, MEM - 31, MEM - 9,
                MEM - 8, MEM - 7, MEM - 4, MEM - 1, MEM, MEM + 1, MEM + 8, 2 * MEM,
                2**31 - 1, 2**31, 2**31 + 1, 2**32 - 33, 2**32 - 32, 2**32 - 9, 2**32 - 8,
                2**32 - 1, 2**32 - 2})

addresses = st.one_of(
    st.sampled_from(EDGES),
    st.integers(MEM - 48, MEM + 48),
    st.integers(0, MEM),
    st.integers(0, U32),
    st.integers(U32 - 48, U32),
    st.integers(2**31 - 48, 2**31 + 48),
)
lengths = st.one_of(
    st.sampled_from([0, 1, 2, 3, 8, 31, 32, MEM - 1, MEM, MEM + 1, 2**31, 2**31 - 1,
                     2**32 - 16, 2**32 - 1]),
    st.integers(0, 64),
    st.integers(0, 600),
    st.integers(0, U32),
)


def _near_fit(ptr_len: tuple[int, int]) -> tuple[int, int]:
    """(ptr, len) with ptr + len within a few bytes of the memory end."""
    ptr, delta = ptr_len
    return ptr, max(0, MEM - ptr + delta)


ranges = st.one_of(
    st.tuples(addresses, lengths),
    st.tuples(st.integers(0, MEM), st.integers(-3, 3)).map(_near_fit),
    st.tuples(st.integers(0, MEM), st.integers(0, 300)),
)


def fixed_ptr(size: int) -> st.SearchStrategy[int]:
    return st.one_of(addresses, st.integers(MEM - size - 4, MEM - size + 4).filter(
        lambda p: p >= 0), st.integers(U32 - size - 4, U32))


# --------------------------------------------------------------------------
# The model


class Expect(Exception):
    """The model's verdict: the call must trap with exactly this message."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _check(mem: bytearray, function: str, param: str, ptr: int, length: int) -> None:
    if ptr + length > len(mem):
        raise Expect(f"{function}: parameter {param!r}: range [0x{ptr:x}, 0x{ptr + length:x}) "
                     f"is outside guest memory of {len(mem)} bytes")


def _text(mem: bytearray, function: str, param: str, ptr: int, length: int) -> str:
    _check(mem, function, param, ptr, length)
    try:
        return bytes(mem[ptr:ptr + length]).decode("utf-8")
    except UnicodeDecodeError as err:
        raise Expect(f"{function}: parameter {param!r} is not valid UTF-8 "
                     f"({err.reason} at byte {err.start})") from None


def _records(mem: bytearray, function: str, ptr: int, count: int) -> list[tuple[int, int]]:
    _check(mem, function, "parts", ptr, count * 8)
    recs = [struct.unpack_from("<II", mem, ptr + 8 * i) for i in range(count)]
    for i, (buf, ln) in enumerate(recs):
        _check(mem, function, f"parts[{i}]", buf, ln)
    return recs


@dataclass
class Rule:
    """A host function, how to draw its arguments, and the model of a call.

    ``model(mem, *args)`` returns the expected export result (after mutating
    ``mem`` as the call should) or raises ``Expect``.  ``result`` is the wasm
    type of the export's result (compared modulo 2**bits).
    """

    name: str
    function: str
    args: st.SearchStrategy[tuple[Any, ...]]
    model: Callable[..., Any]
    result: str | None = "i32"
    #: memory writes (addr, bytes) done before the call, from the arguments
    setup: Callable[..., list[tuple[int, bytes]]] = lambda *a: []


def m_count_a(mem: bytearray, p: int, n: int) -> int:
    return _text(mem, "test.count_a", "words", p, n).count("a")


def m_checksum(mem: bytearray, p: int, n: int) -> int:
    _check(mem, "test.checksum", "data", p, n)
    return zlib.crc32(bytes(mem[p:p + n]))


def m_fill(mem: bytearray, p: int, n: int, byte: int) -> None:
    _check(mem, "test.fill", "buf", p, n)
    mem[p:p + n] = bytes([byte & 0xFF]) * n


def m_upper(mem: bytearray, tp: int, tn: int, op: int, on: int) -> int:
    text = _text(mem, "test.upper", "text", tp, tn)
    _check(mem, "test.upper", "out", op, on)
    data = text.upper().encode()[:on]
    mem[op:op + len(data)] = data
    return len(data)


def m_gather(mem: bytearray, p: int, count: int, recs: Any) -> int:
    return sum(ln for _, ln in _records(mem, "test.gather", p, count))


def m_scatter(mem: bytearray, p: int, count: int, seed: int, recs: Any) -> int:
    n = 0
    for buf, ln in _records(mem, "test.scatter", p, count):
        for i in range(ln):
            mem[buf + i] = (seed + n) & 0xFF
            n += 1
    return n


def m_load_u64(mem: bytearray, p: int) -> int:
    _check(mem, "test.load_u64", "p", p, 8)
    return int(struct.unpack_from("<Q", mem, p)[0])


def m_store_u64(mem: bytearray, p: int, v: int) -> None:
    _check(mem, "test.store_u64", "p", p, 8)
    struct.pack_into("<Q", mem, p, v)


def m_swap_point(mem: bytearray, p: int) -> None:
    _check(mem, "test.swap_point", "p", p, 8)
    x, y = struct.unpack_from("<ii", mem, p)
    struct.pack_into("<ii", mem, p, y, x)


def m_stat_at(mem: bytearray, p: int) -> int:
    _check(mem, "test.stat_at", "p", p, 32)
    return int(struct.unpack_from("<Q", mem, p + 8)[0])


def m_divmod(mem: bytearray, a: int, b: int, r1: int, r2: int) -> int:
    _check(mem, "test.divmod", "result1", r1, 4)
    _check(mem, "test.divmod", "result2", r2, 4)
    if b == 0:
        return 1  # Status.bad_input, out-pointers untouched
    struct.pack_into("<I", mem, r1, a // b)
    struct.pack_into("<I", mem, r2, a % b)
    return 0


def m_make_stat(mem: bytearray, size: int, r1: int) -> int:
    _check(mem, "test.make_stat", "result1", r1, 32)
    struct.pack_into("<B7xQH2xii4x", mem, r1, 7, size, 0o644, -1, 2)
    return 0


def m_wide(mem: bytearray, x: int, r1: int, r2: int) -> int:
    _check(mem, "test.wide", "result1", r1, 8)
    _check(mem, "test.wide", "result2", r2, 1)
    struct.pack_into("<Q", mem, r1, 2**64 - 1)
    mem[r2] = 0xAB
    return x * 2**33


HANDLE = object()  # the model cannot know a handle id: checked separately


def m_open_two(mem: bytearray, p: int, n: int, r1: int) -> Any:
    _check(mem, "test.open_two", "data", p, n)
    _check(mem, "test.open_two", "result1", r1, 8)
    return HANDLE


def m_open_blob(mem: bytearray, p: int, n: int) -> Any:
    _check(mem, "test.open_blob", "data", p, n)
    return HANDLE


_valid_record = st.tuples(st.integers(0, MEM - 40), st.integers(0, 40))
records = st.lists(st.one_of(_valid_record, _valid_record,
                             st.tuples(st.one_of(addresses, st.integers(0, MEM)),
                                       st.one_of(st.integers(0, 40), lengths))),
                   min_size=0, max_size=5)
io_args = st.one_of(
    st.tuples(st.one_of(addresses, st.integers(0, MEM - 64)), records,
              st.one_of(st.none(), lengths)),
    # a record array that fits, every buffer inside memory (count = its length)
    st.tuples(st.integers(0, MEM - 64), st.lists(_valid_record, max_size=5), st.none()),
)


def _io(t: tuple[int, list[tuple[int, int]], int | None]) -> tuple[int, int, Any]:
    ptr, recs, count = t
    return ptr, (len(recs) if count is None else count), tuple(recs)


def _write_records(p: int, count: int, *rest: Any) -> list[tuple[int, bytes]]:
    recs = rest[-1]
    return [(p, b"".join(struct.pack("<II", b, ln) for b, ln in recs))]


u64s = st.one_of(st.sampled_from([0, 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
u32s = st.one_of(st.sampled_from([0, 1, 7, U32]), st.integers(0, U32))


def _tup(*parts: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(*parts).map(lambda t: tuple(x for part in t for x in
                                                  (part if isinstance(part, tuple) else (part,))))


RULES = [
    Rule("Str", "test.count_a", ranges, m_count_a),
    Rule("Str+MutBytes", "test.upper", _tup(ranges, ranges), m_upper),
    Rule("Bytes", "test.checksum", ranges, m_checksum),
    Rule("Bytes->Handle", "test.open_blob", ranges, m_open_blob, result="i64"),
    Rule("MutBytes", "test.fill", _tup(ranges, st.integers(0, 255)), m_fill, result=None),
    Rule("IoSlices", "test.gather", io_args.map(_io), m_gather, setup=_write_records),
    Rule("IoSlicesMut", "test.scatter",
         st.tuples(io_args.map(_io), st.integers(0, 255)).map(
             lambda t: (t[0][0], t[0][1], t[1], t[0][2])),
         m_scatter, setup=_write_records),
    Rule("Ptr[u64].get", "test.load_u64", st.tuples(fixed_ptr(8)), m_load_u64, result="i64"),
    Rule("Ptr[u64].set", "test.store_u64", st.tuples(fixed_ptr(8), u64s), m_store_u64,
         result=None),
    Rule("Ptr[Point]", "test.swap_point", st.tuples(fixed_ptr(8)), m_swap_point, result=None),
    Rule("Ptr[Stat]", "test.stat_at", st.tuples(fixed_ptr(32)), m_stat_at, result="i64"),
    Rule("out u32,u32", "test.divmod",
         st.tuples(u32s, st.one_of(st.just(0), u32s), fixed_ptr(4), fixed_ptr(4)), m_divmod),
    Rule("out Stat", "test.make_stat", st.tuples(u64s, fixed_ptr(32)), m_make_stat),
    Rule("out u64,u8", "test.wide", st.tuples(st.integers(-1000, 1000), fixed_ptr(8),
                                              fixed_ptr(1)), m_wide, result="i64"),
    Rule("out Handle", "test.open_two", _tup(ranges, fixed_ptr(8)), m_open_two),
]

_BITS = {"i32": 32, "i64": 64}


def _scatter_strip(args: tuple[Any, ...], rule: Rule) -> tuple[Any, ...]:
    """Export arguments: drop the records tuple the IoSlices strategies carry."""
    if rule.name in ("IoSlices", "IoSlicesMut"):
        return args[:-1]
    return args


def _call_once(backend: str, rule: Rule, args: tuple[Any, ...]) -> None:
    inst = _inst(backend)
    mem = inst.memory
    mem.write(0, PATTERN)
    model_mem = bytearray(PATTERN)
    for addr, data in rule.setup(*args):
        if addr + len(data) <= MEM:
            mem.write(addr, data)
            model_mem[addr:addr + len(data)] = data
    try:
        expected = rule.model(model_mem, *args)
        expected_trap = None
    except Expect as e:
        expected, expected_trap = None, e.message
    export = inst.exports[rule.function.split(".", 1)[1]]
    CALLS[backend] = CALLS.get(backend, 0) + 1
    try:
        got = export(*_scatter_strip(args, rule))
    except Trap as trap:
        assert expected_trap is not None, f"unexpected trap {trap.message!r} for {args}"
        assert trap.message == expected_trap
        assert trap.function == rule.function
        assert mem.read(0, MEM) == bytes(model_mem), "a trapping call wrote to memory"
        return
    assert expected_trap is None, f"expected trap {expected_trap!r}, got {got!r} for {args}"
    after = bytearray(mem.read(0, MEM))
    if expected is HANDLE:
        if rule.function == "test.open_two":
            assert got == 0
            r1 = args[-1]
            handle = struct.unpack_from("<Q", after, r1)[0]
            after[r1:r1 + 8] = model_mem[r1:r1 + 8]
        else:
            handle = got & (2**64 - 1)
        blob = inst.resources[Blob].get(handle)
        assert blob.data == bytes(PATTERN[args[0]:args[0] + args[1]])
        assert inst.exports.close_blob(handle) == 0
    elif rule.result is None:
        assert got is None
    else:
        mask = (1 << _BITS[rule.result]) - 1
        assert got & mask == expected & mask, (got, expected, args)
    assert after == model_mem, "memory differs from the model after the call"


def _ids(r: Rule) -> str:
    return r.name


@pytest.mark.parametrize("rule", RULES, ids=_ids)
def test_random_ranges(backend: str, rule: Rule) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, derandomize=False,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.lists(rule.args, min_size=1, max_size=CALLS_PER_EXAMPLE))
    def check(calls: Sequence[tuple[Any, ...]]) -> None:
        for args in calls:
            _call_once(backend, rule, args)

    before = CALLS.get(backend, 0)
    check()
    assert CALLS[backend] - before >= EXAMPLES  # every example made at least one call


@pytest.mark.parametrize("rule", RULES, ids=_ids)
def test_edge_grid(backend: str, rule: Rule) -> None:
    """Deterministic sweep: every edge address with every edge length."""
    grid = [0, 1, 8, 32, MEM - 32, MEM - 8, MEM - 1, MEM, MEM + 1, 2**31, 2**32 - 8, 2**32 - 1]
    lens = [0, 1, 8, 32, MEM, 2**31, 2**32 - 1]
    cases: list[tuple[Any, ...]] = []
    for p in grid:
        if rule.name in ("Str", "Bytes", "Bytes->Handle"):
            cases.extend((p, n) for n in lens)
        elif rule.name == "MutBytes":
            cases.extend((p, n, 0x33) for n in lens)
        elif rule.name == "Str+MutBytes":
            cases.extend((p, n, q, 5) for n in lens for q in (0, MEM - 5, MEM - 4))
        elif rule.name == "IoSlices":
            cases.extend((p, c, ((0, 4), (MEM - 1, 1))) for c in (0, 1, 2, 2**29, 2**32 - 1))
        elif rule.name == "IoSlicesMut":
            cases.extend((p, c, 9, ((MEM - 2, 2), (0, 3))) for c in (0, 1, 2, 2**32 - 1))
        elif rule.name == "Ptr[u64].set":
            cases.append((p, 2**64 - 1))
        elif rule.name == "out u32,u32":
            cases.extend([(100, 7, p, 0), (100, 7, 0, p), (100, 0, p, p)])
        elif rule.name == "out Stat":
            cases.append((5, p))
        elif rule.name == "out u64,u8":
            cases.extend([(3, p, 0), (3, 0, p)])
        elif rule.name == "out Handle":
            cases.extend([(0, 4, p), (p, 4, 0)])
        else:
            cases.append((p,))
    for args in cases:
        _call_once(backend, rule, args)
