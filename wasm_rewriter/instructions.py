"""Instructions: the ``Instr`` value, the expression decoder and the encoder.

``Instr(op, imm)``: ``op`` numbered as in ``opcodes``; ``imm`` the decoded
immediates, by ``opcodes.Imm`` kind:

============== ==============================================================
NONE           ``None``
U32            ``int`` (an index, a label, a memory or table number)
MEMARG         ``(align, offset, memidx)``; ``align`` without the multi-memory
               flag bit 0x40 (``memidx`` is 0 when the flag is absent)
MEMARG_LANE    ``(align, offset, memidx, lane)``
I32 / I64      ``int``, signed
F32 / F64      ``bytes`` of length 4 / 8, the little-endian bits (NaN payloads
               survive: floats never pass through Python ``float``)
BLOCKTYPE      ``int``: -64 empty, -1 i32, -2 i64, -3 f32, -4 f64, -5 v128,
               -16 funcref, -17 externref, -23 exnref, ``>= 0`` a type index
BR_TABLE       ``(tuple_of_labels, default_label)``
CALL_INDIRECT  ``(type_index, table_index)``
SELECT_T       ``tuple`` of value type bytes
HEAPTYPE       ``int``, the reference type byte (0x70 func, 0x6F extern, 0x69 exn)
U32_PAIR       ``(int, int)``: memory.init (data, memory), memory.copy (dst, src),
               table.init (elem, table), table.copy (dst, src)
V128           ``bytes`` of length 16
LANE           ``int``
ZERO_BYTE      ``int`` (atomic.fence's reserved 0 byte)
TRY_TABLE      ``(blocktype, clauses)``; a clause is ``(0 | 1, tag, label)`` for
               catch / catch_ref or ``(2 | 3, label)`` for catch_all / catch_all_ref
============== ==============================================================

``raw`` is the instruction's original bytes when it came from the decoder; an
``Instr`` is immutable, so ``raw`` can never go stale: changing an instruction
means making a new one, whose ``raw`` is ``None`` and which is encoded
canonically.

Decoding speed: an instruction is identified by its bytes, so the decoder
interns ``Instr`` objects by ``raw`` (one dict per module parse): the second
``local.get 0`` is a dict hit on a two-byte slice instead of a full decode and
a new object.  Immediate-free instructions are module-level singletons.
Sharing is safe precisely because ``Instr`` is immutable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.opcodes import IMMEDIATES, NAME, PREFIXES, Imm, op_bytes
from wasm_rewriter.reader import read_s32, read_s33, read_s64, read_u32, read_u64
from wasm_rewriter.writer import s32, s33, s64, u32, u64

__all__ = [
    "BLOCKTYPE_EMPTY",
    "Instr",
    "decode_body",
    "decode_expr",
    "encode_instr",
    "encode_instrs",
]

BLOCKTYPE_EMPTY = -64
"""The block type of a block with no parameters and no results (the 0x40 byte)."""

# Value types as bytes, and as the negative s33 values a block type uses for them.
VALTYPES = frozenset((0x7F, 0x7E, 0x7D, 0x7C, 0x7B, 0x70, 0x6F, 0x69))
REFTYPES = frozenset((0x70, 0x6F, 0x69))
_BLOCKTYPE_NEGATIVE = frozenset([BLOCKTYPE_EMPTY] + [b - 0x80 for b in VALTYPES])


class Instr:
    """One instruction: opcode, decoded immediates and, if decoded, its original bytes.

    Immutable; equality and hashing use ``(op, imm)`` only, so a re-encoded
    or hand-built instruction equals the decoded one it stands for.
    """

    __slots__ = ("op", "imm", "raw")

    op: int
    imm: Any
    raw: bytes | None

    def __init__(self, op: int, imm: Any = None) -> None:
        kind = IMMEDIATES.get(op)
        if kind is None:
            raise ValueError(f"unknown opcode {op:#x}" if isinstance(op, int) else
                             f"opcode must be an int, not {type(op).__name__}")
        imm = _CHECK[kind](op, imm)
        _set_op(self, op)
        _set_imm(self, imm)
        _set_raw(self, None)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Instr is immutable: make a new Instr instead")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("Instr is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Instr):
            return NotImplemented
        return self.op == other.op and self.imm == other.imm

    def __hash__(self) -> int:
        return hash((self.op, self.imm))

    def __repr__(self) -> str:
        name = NAME.get(self.op, hex(self.op))
        if self.imm is None:
            return f"Instr({name})"
        return f"Instr({name} {self.imm!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickle/copy as a fresh Instr: __setattr__ is blocked, and raw is only an optimisation.
        return (Instr, (self.op, self.imm))

    @property
    def name(self) -> str:
        """The text-format name of the opcode."""
        return NAME[self.op]


# The slot descriptors' setters: the only way past Instr.__setattr__, kept for the decoder.
_set_op = Instr.__dict__["op"].__set__
_set_imm = Instr.__dict__["imm"].__set__
_set_raw = Instr.__dict__["raw"].__set__
_new_object = object.__new__


def _make(op: int, imm: Any, raw: bytes) -> Instr:
    """A decoded instruction (immediates already validated by the decoder)."""
    ins: Instr = _new_object(Instr)
    _set_op(ins, op)
    _set_imm(ins, imm)
    _set_raw(ins, raw)
    return ins


# ---------------------------------------------------------------------------
# Immediate decoders: (buf, pos) -> (imm, new pos).  Offsets in errors are
# positions in ``buf``; running off ``buf`` raises IndexError (see decode_expr).

Decoder = Callable[[bytes, int], "tuple[Any, int]"]


def _d_none(buf: bytes, p: int) -> tuple[Any, int]:
    return None, p


def _d_memarg(buf: bytes, p: int) -> tuple[Any, int]:
    align, p = read_u32(buf, p)
    mem = 0
    if align & 0x40:
        # Multi-memory: bit 6 of the alignment field announces an explicit memory index.
        align ^= 0x40
        mem, p = read_u32(buf, p)
    # The offset is u64 so memory64 modules decode; a 32-bit memory's limit is validation.
    offset, p = read_u64(buf, p)
    return (align, offset, mem), p


def _take(buf: bytes, p: int, n: int) -> tuple[bytes, int]:
    end = p + n
    if end > len(buf):
        raise IndexError(end)
    return buf[p:end], end


def _d_f32(buf: bytes, p: int) -> tuple[Any, int]:
    return _take(buf, p, 4)


def _d_f64(buf: bytes, p: int) -> tuple[Any, int]:
    return _take(buf, p, 8)


def _d_v128(buf: bytes, p: int) -> tuple[Any, int]:
    return _take(buf, p, 16)


def _d_blocktype(buf: bytes, p: int) -> tuple[Any, int]:
    value, q = read_s33(buf, p)
    if value < 0 and value not in _BLOCKTYPE_NEGATIVE:
        raise MalformedModule(p, f"invalid block type {buf[p]:#x}")
    return value, q


def _count(buf: bytes, p: int) -> tuple[int, int]:
    n, q = read_u32(buf, p)
    # Each element takes at least one byte: a larger count is a lie, refused before looping.
    if n > len(buf) - q:
        raise MalformedModule(p, f"vector count {n} larger than the bytes left")
    return n, q


def _d_br_table(buf: bytes, p: int) -> tuple[Any, int]:
    n, p = _count(buf, p)
    labels = []
    for _ in range(n):
        label, p = read_u32(buf, p)
        labels.append(label)
    default, p = read_u32(buf, p)
    return (tuple(labels), default), p


def _d_u32_pair(buf: bytes, p: int) -> tuple[Any, int]:
    a, p = read_u32(buf, p)
    b, p = read_u32(buf, p)
    return (a, b), p


def _d_select_t(buf: bytes, p: int) -> tuple[Any, int]:
    n, p = _count(buf, p)
    types = []
    for _ in range(n):
        t = buf[p]
        if t not in VALTYPES:
            raise MalformedModule(p, f"invalid value type {t:#x}")
        types.append(t)
        p += 1
    return tuple(types), p


def _d_heaptype(buf: bytes, p: int) -> tuple[Any, int]:
    t = buf[p]
    if t not in REFTYPES:
        raise MalformedModule(p, f"invalid heap type {t:#x}")
    return t, p + 1


def _d_lane(buf: bytes, p: int) -> tuple[Any, int]:
    return buf[p], p + 1


def _d_memarg_lane(buf: bytes, p: int) -> tuple[Any, int]:
    (align, offset, mem), p = _d_memarg(buf, p)
    return (align, offset, mem, buf[p]), p + 1


def _d_zero_byte(buf: bytes, p: int) -> tuple[Any, int]:
    if buf[p] != 0:
        raise MalformedModule(p, f"expected a 0x00 byte, found {buf[p]:#x}")
    return 0, p + 1


def _d_try_table(buf: bytes, p: int) -> tuple[Any, int]:
    bt, p = _d_blocktype(buf, p)
    n, p = _count(buf, p)
    clauses: list[tuple[int, ...]] = []
    for _ in range(n):
        kind = buf[p]
        if kind > 3:
            raise MalformedModule(p, f"invalid catch clause kind {kind:#x}")
        p += 1
        if kind < 2:
            tag, p = read_u32(buf, p)
            label, p = read_u32(buf, p)
            clauses.append((kind, tag, label))
        else:
            label, p = read_u32(buf, p)
            clauses.append((kind, label))
    return (bt, tuple(clauses)), p


_DECODE: dict[Imm, Decoder] = {
    Imm.NONE: _d_none,
    Imm.U32: read_u32,
    Imm.MEMARG: _d_memarg,
    Imm.I32: read_s32,
    Imm.I64: read_s64,
    Imm.F32: _d_f32,
    Imm.F64: _d_f64,
    Imm.BLOCKTYPE: _d_blocktype,
    Imm.BR_TABLE: _d_br_table,
    Imm.CALL_INDIRECT: _d_u32_pair,
    Imm.SELECT_T: _d_select_t,
    Imm.HEAPTYPE: _d_heaptype,
    Imm.U32_PAIR: _d_u32_pair,
    Imm.V128: _d_v128,
    Imm.LANE: _d_lane,
    Imm.MEMARG_LANE: _d_memarg_lane,
    Imm.ZERO_BYTE: _d_zero_byte,
    Imm.TRY_TABLE: _d_try_table,
}
# Per-op decoder, so the slow path is one dict lookup.
_OP_DECODER: dict[int, Decoder] = {op: _DECODE[kind] for op, kind in IMMEDIATES.items()}


def _decode_one(buf: bytes, pos: int, cache: dict[bytes, Instr]) -> Instr:
    """Fully decode and validate the instruction at ``pos`` (the decoder's slow path)."""
    op = buf[pos]
    p = pos + 1
    if op in PREFIXES:
        sub, p = read_u32(buf, p)
        op = (op << 16) | sub
        decoder = _OP_DECODER.get(op)
        if decoder is None or sub > 0xFFFF:
            raise MalformedModule(pos, f"unknown opcode {buf[pos]:#x} {sub:#x}")
    else:
        decoder = _OP_DECODER.get(op)
        if decoder is None:
            raise MalformedModule(pos, f"unknown opcode {op:#x}")
    imm, p = decoder(buf, p)
    raw = buf[pos:p]
    ins = cache.get(raw)
    if ins is None:
        ins = cache[raw] = _make(op, imm, raw)
    return ins


# Dispatch codes of the decoder loop, per first byte.
_C_SIMPLE = 0  # no immediates, no effect on nesting
_C_LEB = 1  # exactly one LEB128 immediate (U32, I32, I64), no effect on nesting
_C_MEMARG = 2
_C_BLOCK = 3  # block, loop
_C_IF = 4
_C_END = 5
_C_ELSE = 6
_C_OTHER = 7  # anything else that does not nest: slow path
_C_TRY = 8
_C_TRY_TABLE = 9
_C_CATCH = 10
_C_CATCH_ALL = 11
_C_DELEGATE = 12
_C_UNKNOWN = 13

# Frame kinds on the nesting stack.
_F_BLOCK = 0  # block, loop, try_table
_F_IF = 1
_F_ELSE = 2
_F_TRY = 3
_F_CATCH = 4
_F_CATCH_ALL = 5


def _build_dispatch() -> tuple[list[int], list[Instr | None]]:
    codes = [_C_UNKNOWN] * 256
    singles: list[Instr | None] = [None] * 256
    structural = {0x02: _C_BLOCK, 0x03: _C_BLOCK, 0x04: _C_IF, 0x05: _C_ELSE, 0x0B: _C_END,
                  0x06: _C_TRY, 0x1F: _C_TRY_TABLE, 0x07: _C_CATCH, 0x19: _C_CATCH_ALL,
                  0x18: _C_DELEGATE}
    for op in range(256):
        if op in PREFIXES:
            codes[op] = _C_OTHER
            continue
        kind = IMMEDIATES.get(op)
        if kind is None:
            continue
        if op in structural:
            codes[op] = structural[op]
        elif kind == Imm.NONE:
            codes[op] = _C_SIMPLE
        elif kind in (Imm.U32, Imm.I32, Imm.I64):
            codes[op] = _C_LEB
        elif kind == Imm.MEMARG:
            codes[op] = _C_MEMARG
        else:
            codes[op] = _C_OTHER
        if kind == Imm.NONE:
            singles[op] = _make(op, None, bytes((op,)))
    return codes, singles


_CODES, _SINGLES = _build_dispatch()


def _decode(buf: bytes, pos: int, cache: dict[bytes, Instr]) -> tuple[list[Instr], int]:
    """Decode from ``pos`` to the ``end`` closing depth 0; IndexError if ``buf`` runs out.

    The loop is the rewriter's hot path: the common instructions find their
    length inline and are looked up by their bytes in ``cache``; only a miss
    (or a rare instruction) pays for a full decode in ``_decode_one``.
    """
    codes = _CODES
    singles = _SINGLES
    cache_get = cache.get
    out: list[Instr] = []
    append = out.append
    frames: list[int] = []  # nesting stack: a list, never Python recursion
    push = frames.append
    pop = frames.pop
    ins: Instr | None
    while True:
        op = buf[pos]
        code = codes[op]
        if code == _C_SIMPLE:
            append(singles[op])  # type: ignore[arg-type]
            pos += 1
            continue
        if code <= _C_BLOCK:
            # One or two LEB128s: find the end of the bytes, then look them up.
            p = pos + 1
            if code == _C_MEMARG and buf[p] & 0x40:
                p = -1  # multi-memory memarg: leave it to the slow path
            else:
                while buf[p] & 0x80:
                    p += 1
                p += 1
                if code == _C_MEMARG:
                    while buf[p] & 0x80:
                        p += 1
                    p += 1
            ins = cache_get(buf[pos:p]) if p > 0 else None
            if ins is None:
                ins = _decode_one(buf, pos, cache)
                p = pos + len(ins.raw)  # type: ignore[arg-type]
            append(ins)
            pos = p
            if code == _C_BLOCK:
                push(_F_BLOCK)
            continue
        if code == _C_END:
            append(singles[op])  # type: ignore[arg-type]
            pos += 1
            if not frames:
                return out, pos
            pop()
            continue
        if code == _C_UNKNOWN:
            raise MalformedModule(pos, f"unknown opcode {op:#x}")
        if code == _C_ELSE:
            if not frames or frames[-1] != _F_IF:
                raise MalformedModule(pos, "else without a matching if")
            frames[-1] = _F_ELSE
            append(singles[op])  # type: ignore[arg-type]
            pos += 1
            continue
        if code == _C_CATCH_ALL:
            if not frames or frames[-1] not in (_F_TRY, _F_CATCH):
                raise MalformedModule(pos, "catch_all without a matching try")
            frames[-1] = _F_CATCH_ALL
            append(singles[op])  # type: ignore[arg-type]
            pos += 1
            continue
        start = pos
        ins = _decode_one(buf, pos, cache)
        append(ins)
        pos += len(ins.raw)  # type: ignore[arg-type]
        if code == _C_OTHER:
            continue
        if code == _C_IF:
            push(_F_IF)
        elif code == _C_TRY:
            push(_F_TRY)
        elif code == _C_TRY_TABLE:
            push(_F_BLOCK)
        elif code == _C_CATCH:
            if not frames or frames[-1] not in (_F_TRY, _F_CATCH):
                raise MalformedModule(start, "catch without a matching try")
            frames[-1] = _F_CATCH
        elif code == _C_DELEGATE:
            # delegate closes its try block, as end would.
            if not frames or frames[-1] != _F_TRY:
                raise MalformedModule(start, "delegate without a matching try")
            pop()


def decode_expr(data: bytes, pos: int, end: int, *,
                cache: dict[bytes, Instr] | None = None) -> tuple[list[Instr], int]:
    """Decode instructions from ``data[pos:]`` up to the ``end`` that closes depth 0.

    The closing ``end`` is the last element of the list; the position after it
    is returned.  Nothing at or past ``end`` is read.  Block nesting is checked
    (``else`` only in an ``if``, no stray ``end``); every error is a
    ``MalformedModule`` naming an absolute offset in ``data``.  ``cache`` lets
    several calls share interned instructions (see the module docstring).
    """
    if cache is None:
        cache = {}
    if not isinstance(data, bytes):
        data = bytes(data)  # slices must be bytes: they are the raw encodings and cache keys
    end = min(end, len(data))
    if pos < 0 or pos >= end:
        raise MalformedModule(max(pos, 0), "unexpected end of expression")
    # Const expressions are decoded with ``end`` = the end of a possibly huge
    # section; work on a small window that grows, so each one costs its own size.
    size = min(end - pos, 64)
    while True:
        window = data[pos:pos + size]
        whole = pos + size >= end
        try:
            instrs, used = _decode(window, 0, cache)
        except IndexError:
            if whole:
                raise MalformedModule(end, "unexpected end of expression") from None
        except MalformedModule as exc:
            # A partial window can also trip a vector count check ("more items
            # than bytes left"): only an error seen with every byte in view counts.
            if whole:
                raise MalformedModule(pos + exc.offset, exc.reason) from None
        else:
            return instrs, pos + used
        size = min(end - pos, size * 16)


def decode_body(data: bytes, pos: int, end: int, *,
                cache: dict[bytes, Instr] | None = None) -> list[Instr]:
    """Decode a function body's instructions, which must fill ``data[pos:end]`` exactly.

    Errors: the body runs out before its final ``end``, or bytes follow that
    final ``end`` (both ``MalformedModule`` with absolute offsets).
    """
    if cache is None:
        cache = {}
    if not isinstance(data, bytes):
        data = bytes(data)
    end = min(end, len(data))
    if pos < 0 or pos >= end:
        raise MalformedModule(max(pos, 0), "unexpected end of function body")
    body = data[pos:end]
    try:
        instrs, used = _decode(body, 0, cache)
    except IndexError:
        raise MalformedModule(end, "unexpected end of function body "
                                   "(no final end instruction)") from None
    except MalformedModule as exc:
        raise MalformedModule(pos + exc.offset, exc.reason) from None
    if used != len(body):
        raise MalformedModule(pos + used, "function body continues after its final end")
    return instrs


# ---------------------------------------------------------------------------
# Immediate checks (for hand-built instructions) and encoders.

Check = Callable[[int, Any], Any]


def _fail(op: int, imm: Any, want: str) -> ValueError:
    return ValueError(f"{NAME.get(op, hex(op))}: immediate {imm!r} is not {want}")


def _is_int(value: Any, lo: int, hi: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and lo <= value < hi


def _c_none(op: int, imm: Any) -> Any:
    if imm is not None:
        raise _fail(op, imm, "None")
    return None


# Ops whose u32 is a memory index that was a reserved zero byte in the MVP:
# ``Instr(MEMORY_SIZE)`` means memory 0.
_DEFAULT_ZERO = frozenset((0x3F, 0x40, 0xFC000B))


def _c_u32(op: int, imm: Any) -> Any:
    if imm is None and op in _DEFAULT_ZERO:
        return 0
    if not _is_int(imm, 0, 1 << 32):
        raise _fail(op, imm, "a u32")
    return imm


def _c_i32(op: int, imm: Any) -> Any:
    if not _is_int(imm, -(1 << 31), 1 << 31):
        raise _fail(op, imm, "a signed 32-bit int")
    return imm


def _c_i64(op: int, imm: Any) -> Any:
    if not _is_int(imm, -(1 << 63), 1 << 63):
        raise _fail(op, imm, "a signed 64-bit int")
    return imm


def _c_bytes(n: int) -> Check:
    def check(op: int, imm: Any) -> Any:
        if isinstance(imm, (bytearray, memoryview)):
            imm = bytes(imm)
        if not isinstance(imm, bytes) or len(imm) != n:
            raise _fail(op, imm, f"{n} bytes")
        return imm
    return check


def _c_memarg(op: int, imm: Any) -> Any:
    if (not isinstance(imm, tuple) or len(imm) != 3 or not _is_int(imm[0], 0, 1 << 32)
            or imm[0] & 0x40 or not _is_int(imm[1], 0, 1 << 64)
            or not _is_int(imm[2], 0, 1 << 32)):
        raise _fail(op, imm, "(align, offset, memidx) with align < 2**32 and without bit 0x40")
    return imm


def _c_memarg_lane(op: int, imm: Any) -> Any:
    if not isinstance(imm, tuple) or len(imm) != 4 or not _is_int(imm[3], 0, 256):
        raise _fail(op, imm, "(align, offset, memidx, lane)")
    _c_memarg(op, imm[:3])
    return imm


def _c_blocktype(op: int, imm: Any) -> Any:
    if imm is None:
        return BLOCKTYPE_EMPTY  # Instr(BLOCK) reads naturally as an empty-typed block
    if not (_is_int(imm, 0, 1 << 32) or (isinstance(imm, int) and imm in _BLOCKTYPE_NEGATIVE)):
        raise _fail(op, imm, "a block type (-64, a negative value type or a type index)")
    return imm


def _c_br_table(op: int, imm: Any) -> Any:
    if (not isinstance(imm, tuple) or len(imm) != 2 or not _is_int(imm[1], 0, 1 << 32)
            or not isinstance(imm[0], (tuple, list))
            or not all(_is_int(x, 0, 1 << 32) for x in imm[0])):
        raise _fail(op, imm, "(tuple of labels, default label)")
    return (tuple(imm[0]), imm[1])


def _c_u32_pair(op: int, imm: Any) -> Any:
    if (not isinstance(imm, tuple) or len(imm) != 2
            or not all(_is_int(x, 0, 1 << 32) for x in imm)):
        raise _fail(op, imm, "a pair of u32")
    return imm


def _c_select_t(op: int, imm: Any) -> Any:
    if not isinstance(imm, (tuple, list)) or not all(
            isinstance(t, int) and t in VALTYPES for t in imm):
        raise _fail(op, imm, "a tuple of value type bytes")
    return tuple(imm)


def _c_heaptype(op: int, imm: Any) -> Any:
    if not isinstance(imm, int) or imm not in REFTYPES:
        raise _fail(op, imm, "a reference type byte (0x70, 0x6F or 0x69)")
    return imm


def _c_lane(op: int, imm: Any) -> Any:
    if not _is_int(imm, 0, 256):
        raise _fail(op, imm, "a lane byte")
    return imm


def _c_zero(op: int, imm: Any) -> Any:
    if imm not in (0, None):
        raise _fail(op, imm, "0")
    return 0


def _c_try_table(op: int, imm: Any) -> Any:
    if not isinstance(imm, tuple) or len(imm) != 2 or not isinstance(imm[1], (tuple, list)):
        raise _fail(op, imm, "(blocktype, clauses)")
    _c_blocktype(op, imm[0])
    clauses = []
    for clause in imm[1]:
        ok = isinstance(clause, tuple) and len(clause) >= 2 and clause[0] in (0, 1, 2, 3)
        ok = ok and len(clause) == (3 if clause[0] < 2 else 2)
        ok = ok and all(_is_int(x, 0, 1 << 32) for x in clause[1:])
        if not ok:
            raise _fail(op, imm, "(blocktype, clauses) with valid catch clauses")
        clauses.append(tuple(clause))
    return (imm[0], tuple(clauses))


_CHECK: dict[Imm, Check] = {
    Imm.NONE: _c_none,
    Imm.U32: _c_u32,
    Imm.MEMARG: _c_memarg,
    Imm.I32: _c_i32,
    Imm.I64: _c_i64,
    Imm.F32: _c_bytes(4),
    Imm.F64: _c_bytes(8),
    Imm.BLOCKTYPE: _c_blocktype,
    Imm.BR_TABLE: _c_br_table,
    Imm.CALL_INDIRECT: _c_u32_pair,
    Imm.SELECT_T: _c_select_t,
    Imm.HEAPTYPE: _c_heaptype,
    Imm.U32_PAIR: _c_u32_pair,
    Imm.V128: _c_bytes(16),
    Imm.LANE: _c_lane,
    Imm.MEMARG_LANE: _c_memarg_lane,
    Imm.ZERO_BYTE: _c_zero,
    Imm.TRY_TABLE: _c_try_table,
}


def _e_memarg(imm: Any) -> bytes:
    align, offset, mem = imm[0], imm[1], imm[2]
    if mem:
        return u32(align | 0x40) + u32(mem) + u64(offset)
    return u32(align) + u64(offset)


def _e_try_table(imm: Any) -> bytes:
    parts = [s33(imm[0]), u32(len(imm[1]))]
    for clause in imm[1]:
        parts.append(bytes((clause[0],)))
        parts.extend(u32(x) for x in clause[1:])
    return b"".join(parts)


_ENCODE: dict[Imm, Callable[[Any], bytes]] = {
    Imm.NONE: lambda imm: b"",
    Imm.U32: u32,
    Imm.MEMARG: _e_memarg,
    Imm.I32: s32,
    Imm.I64: s64,
    Imm.F32: bytes,
    Imm.F64: bytes,
    Imm.BLOCKTYPE: s33,
    Imm.BR_TABLE: lambda imm: (u32(len(imm[0])) + b"".join(u32(x) for x in imm[0])
                               + u32(imm[1])),
    Imm.CALL_INDIRECT: lambda imm: u32(imm[0]) + u32(imm[1]),
    Imm.SELECT_T: lambda imm: u32(len(imm)) + bytes(imm),
    Imm.HEAPTYPE: lambda imm: bytes((imm,)),
    Imm.U32_PAIR: lambda imm: u32(imm[0]) + u32(imm[1]),
    Imm.V128: bytes,
    Imm.LANE: lambda imm: bytes((imm,)),
    Imm.MEMARG_LANE: lambda imm: _e_memarg(imm) + bytes((imm[3],)),
    Imm.ZERO_BYTE: lambda imm: b"\x00",
    Imm.TRY_TABLE: _e_try_table,
}
_OP_ENCODE: dict[int, tuple[bytes, Callable[[Any], bytes]]] = {
    op: (op_bytes(op), _ENCODE[kind]) for op, kind in IMMEDIATES.items()}


def encode_instr(ins: Instr) -> bytes:
    """The canonical encoding of one instruction (minimal LEB128s), ignoring ``raw``."""
    prefix, encode = _OP_ENCODE[ins.op]
    if ins.imm is None:
        return prefix
    return prefix + encode(ins.imm)


def encode_instrs(instrs: Iterable[Instr], canonical: bool = False) -> bytes:
    """Encode a sequence of instructions.

    Decoded, unchanged instructions are written from ``raw`` (so a round trip
    is byte-identical, non-minimal LEB128s included); others are encoded
    canonically.  ``canonical=True`` ignores ``raw`` everywhere.
    """
    if canonical:
        return b"".join([encode_instr(ins) for ins in instrs])
    return b"".join([ins.raw or encode_instr(ins) for ins in instrs])
