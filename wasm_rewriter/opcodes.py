"""The instruction table: every opcode the rewriter decodes, its name and immediates.

Numbering: a plain opcode is its byte (0x00-0xFB); a prefixed one is
``(prefix << 16) | sub`` where ``sub`` is the u32 that follows the 0xFC, 0xFD or
0xFE prefix byte, e.g. ``0xFC0008`` is ``memory.init`` and ``0xFD000C`` is
``v128.const``.  Names are the text-format names.

Covered: the MVP, sign extension, non-trapping float-to-int, bulk memory,
reference types, multi-value block types, tail calls, SIMD with relaxed SIMD,
threads/atomics, and exception handling (the legacy ``try``/``catch``/
``delegate`` form and the ``try_table``/``throw_ref`` form).  Not covered: GC
and typed function references (``call_ref``, the 0xFB prefix); their opcodes are
"unknown" to the decoder.

``IMMEDIATES[op]`` is an ``Imm`` kind; ``instructions`` documents the Python
value each kind decodes to.
"""

from __future__ import annotations

import enum

__all__ = [
    "IMMEDIATES",
    "NAME",
    "OP",
    "PREFIXES",
    "Imm",
    "op_bytes",
]


class Imm(enum.IntEnum):
    """The immediate operands an opcode carries in the binary format."""

    NONE = 0  # no immediate
    U32 = 1  # one u32: an index (local, global, function, label, table, memory, tag...)
    MEMARG = 2  # align (+ memory index when align has bit 0x40) + offset
    I32 = 3  # s32 (i32.const)
    I64 = 4  # s64 (i64.const)
    F32 = 5  # 4 raw bytes
    F64 = 6  # 8 raw bytes
    BLOCKTYPE = 7  # s33: empty (0x40), a value type, or a type index
    BR_TABLE = 8  # vec(label) + default label
    CALL_INDIRECT = 9  # type index + table index
    SELECT_T = 10  # vec(valtype)
    HEAPTYPE = 11  # one reference type byte (ref.null)
    U32_PAIR = 12  # two u32 (memory.init, memory.copy, table.init, table.copy)
    V128 = 13  # 16 raw bytes (v128.const, i8x16.shuffle)
    LANE = 14  # one lane byte
    MEMARG_LANE = 15  # memarg + lane byte
    ZERO_BYTE = 16  # one reserved byte, 0x00 (atomic.fence)
    TRY_TABLE = 17  # blocktype + vec(catch clause)


PREFIXES = (0xFC, 0xFD, 0xFE)
"""The prefix bytes whose sub-opcode is a u32."""

_N = Imm.NONE
_U = Imm.U32
_M = Imm.MEMARG

# (opcode, name, immediates) for the one-byte opcodes.
_PLAIN: list[tuple[int, str, Imm]] = [
    (0x00, "unreachable", _N),
    (0x01, "nop", _N),
    (0x02, "block", Imm.BLOCKTYPE),
    (0x03, "loop", Imm.BLOCKTYPE),
    (0x04, "if", Imm.BLOCKTYPE),
    (0x05, "else", _N),
    (0x06, "try", Imm.BLOCKTYPE),
    (0x07, "catch", _U),
    (0x08, "throw", _U),
    (0x09, "rethrow", _U),
    (0x0A, "throw_ref", _N),
    (0x0B, "end", _N),
    (0x0C, "br", _U),
    (0x0D, "br_if", _U),
    (0x0E, "br_table", Imm.BR_TABLE),
    (0x0F, "return", _N),
    (0x10, "call", _U),
    (0x11, "call_indirect", Imm.CALL_INDIRECT),
    (0x12, "return_call", _U),
    (0x13, "return_call_indirect", Imm.CALL_INDIRECT),
    (0x18, "delegate", _U),
    (0x19, "catch_all", _N),
    (0x1A, "drop", _N),
    (0x1B, "select", _N),
    (0x1C, "select", Imm.SELECT_T),  # same text name, typed form: NAME maps 0x1C to it
    (0x1F, "try_table", Imm.TRY_TABLE),
    (0x20, "local.get", _U),
    (0x21, "local.set", _U),
    (0x22, "local.tee", _U),
    (0x23, "global.get", _U),
    (0x24, "global.set", _U),
    (0x25, "table.get", _U),
    (0x26, "table.set", _U),
    (0x28, "i32.load", _M),
    (0x29, "i64.load", _M),
    (0x2A, "f32.load", _M),
    (0x2B, "f64.load", _M),
    (0x2C, "i32.load8_s", _M),
    (0x2D, "i32.load8_u", _M),
    (0x2E, "i32.load16_s", _M),
    (0x2F, "i32.load16_u", _M),
    (0x30, "i64.load8_s", _M),
    (0x31, "i64.load8_u", _M),
    (0x32, "i64.load16_s", _M),
    (0x33, "i64.load16_u", _M),
    (0x34, "i64.load32_s", _M),
    (0x35, "i64.load32_u", _M),
    (0x36, "i32.store", _M),
    (0x37, "i64.store", _M),
    (0x38, "f32.store", _M),
    (0x39, "f64.store", _M),
    (0x3A, "i32.store8", _M),
    (0x3B, "i32.store16", _M),
    (0x3C, "i64.store8", _M),
    (0x3D, "i64.store16", _M),
    (0x3E, "i64.store32", _M),
    (0x3F, "memory.size", _U),
    (0x40, "memory.grow", _U),
    (0x41, "i32.const", Imm.I32),
    (0x42, "i64.const", Imm.I64),
    (0x43, "f32.const", Imm.F32),
    (0x44, "f64.const", Imm.F64),
    (0xD0, "ref.null", Imm.HEAPTYPE),
    (0xD1, "ref.is_null", _N),
    (0xD2, "ref.func", _U),
]

# Numeric instructions 0x45-0xC4 have no immediates; listed in opcode order.
_NUMERIC = """
i32.eqz i32.eq i32.ne i32.lt_s i32.lt_u i32.gt_s i32.gt_u i32.le_s i32.le_u i32.ge_s i32.ge_u
i64.eqz i64.eq i64.ne i64.lt_s i64.lt_u i64.gt_s i64.gt_u i64.le_s i64.le_u i64.ge_s i64.ge_u
f32.eq f32.ne f32.lt f32.gt f32.le f32.ge
f64.eq f64.ne f64.lt f64.gt f64.le f64.ge
i32.clz i32.ctz i32.popcnt i32.add i32.sub i32.mul i32.div_s i32.div_u i32.rem_s i32.rem_u
i32.and i32.or i32.xor i32.shl i32.shr_s i32.shr_u i32.rotl i32.rotr
i64.clz i64.ctz i64.popcnt i64.add i64.sub i64.mul i64.div_s i64.div_u i64.rem_s i64.rem_u
i64.and i64.or i64.xor i64.shl i64.shr_s i64.shr_u i64.rotl i64.rotr
f32.abs f32.neg f32.ceil f32.floor f32.trunc f32.nearest f32.sqrt
f32.add f32.sub f32.mul f32.div f32.min f32.max f32.copysign
f64.abs f64.neg f64.ceil f64.floor f64.trunc f64.nearest f64.sqrt
f64.add f64.sub f64.mul f64.div f64.min f64.max f64.copysign
i32.wrap_i64 i32.trunc_f32_s i32.trunc_f32_u i32.trunc_f64_s i32.trunc_f64_u
i64.extend_i32_s i64.extend_i32_u i64.trunc_f32_s i64.trunc_f32_u i64.trunc_f64_s i64.trunc_f64_u
f32.convert_i32_s f32.convert_i32_u f32.convert_i64_s f32.convert_i64_u f32.demote_f64
f64.convert_i32_s f64.convert_i32_u f64.convert_i64_s f64.convert_i64_u f64.promote_f32
i32.reinterpret_f32 i64.reinterpret_f64 f32.reinterpret_i32 f64.reinterpret_i64
i32.extend8_s i32.extend16_s i64.extend8_s i64.extend16_s i64.extend32_s
""".split()

# 0xFC prefix: saturating truncation (0-7), bulk memory and table instructions (8-17).
_FC: list[tuple[int, str, Imm]] = [
    (0, "i32.trunc_sat_f32_s", _N),
    (1, "i32.trunc_sat_f32_u", _N),
    (2, "i32.trunc_sat_f64_s", _N),
    (3, "i32.trunc_sat_f64_u", _N),
    (4, "i64.trunc_sat_f32_s", _N),
    (5, "i64.trunc_sat_f32_u", _N),
    (6, "i64.trunc_sat_f64_s", _N),
    (7, "i64.trunc_sat_f64_u", _N),
    (8, "memory.init", Imm.U32_PAIR),  # data index, memory index
    (9, "data.drop", _U),
    (10, "memory.copy", Imm.U32_PAIR),  # destination memory, source memory
    (11, "memory.fill", _U),
    (12, "table.init", Imm.U32_PAIR),  # element index, table index
    (13, "elem.drop", _U),
    (14, "table.copy", Imm.U32_PAIR),  # destination table, source table
    (15, "table.grow", _U),
    (16, "table.size", _U),
    (17, "table.fill", _U),
]

# 0xFD prefix, sub-opcodes 0x00-0xFF in order; "-" marks an unassigned number.
_SIMD = """
v128.load v128.load8x8_s v128.load8x8_u v128.load16x4_s v128.load16x4_u
v128.load32x2_s v128.load32x2_u v128.load8_splat v128.load16_splat v128.load32_splat
v128.load64_splat v128.store v128.const i8x16.shuffle i8x16.swizzle
i8x16.splat i16x8.splat i32x4.splat i64x2.splat f32x4.splat f64x2.splat
i8x16.extract_lane_s i8x16.extract_lane_u i8x16.replace_lane
i16x8.extract_lane_s i16x8.extract_lane_u i16x8.replace_lane
i32x4.extract_lane i32x4.replace_lane i64x2.extract_lane i64x2.replace_lane
f32x4.extract_lane f32x4.replace_lane f64x2.extract_lane f64x2.replace_lane
i8x16.eq i8x16.ne i8x16.lt_s i8x16.lt_u i8x16.gt_s i8x16.gt_u i8x16.le_s i8x16.le_u
i8x16.ge_s i8x16.ge_u
i16x8.eq i16x8.ne i16x8.lt_s i16x8.lt_u i16x8.gt_s i16x8.gt_u i16x8.le_s i16x8.le_u
i16x8.ge_s i16x8.ge_u
i32x4.eq i32x4.ne i32x4.lt_s i32x4.lt_u i32x4.gt_s i32x4.gt_u i32x4.le_s i32x4.le_u
i32x4.ge_s i32x4.ge_u
f32x4.eq f32x4.ne f32x4.lt f32x4.gt f32x4.le f32x4.ge
f64x2.eq f64x2.ne f64x2.lt f64x2.gt f64x2.le f64x2.ge
v128.not v128.and v128.andnot v128.or v128.xor v128.bitselect v128.any_true
v128.load8_lane v128.load16_lane v128.load32_lane v128.load64_lane
v128.store8_lane v128.store16_lane v128.store32_lane v128.store64_lane
v128.load32_zero v128.load64_zero
f32x4.demote_f64x2_zero f64x2.promote_low_f32x4
i8x16.abs i8x16.neg i8x16.popcnt i8x16.all_true i8x16.bitmask
i8x16.narrow_i16x8_s i8x16.narrow_i16x8_u
f32x4.ceil f32x4.floor f32x4.trunc f32x4.nearest
i8x16.shl i8x16.shr_s i8x16.shr_u i8x16.add i8x16.add_sat_s i8x16.add_sat_u
i8x16.sub i8x16.sub_sat_s i8x16.sub_sat_u
f64x2.ceil f64x2.floor
i8x16.min_s i8x16.min_u i8x16.max_s i8x16.max_u
f64x2.trunc i8x16.avgr_u
i16x8.extadd_pairwise_i8x16_s i16x8.extadd_pairwise_i8x16_u
i32x4.extadd_pairwise_i16x8_s i32x4.extadd_pairwise_i16x8_u
i16x8.abs i16x8.neg i16x8.q15mulr_sat_s i16x8.all_true i16x8.bitmask
i16x8.narrow_i32x4_s i16x8.narrow_i32x4_u
i16x8.extend_low_i8x16_s i16x8.extend_high_i8x16_s
i16x8.extend_low_i8x16_u i16x8.extend_high_i8x16_u
i16x8.shl i16x8.shr_s i16x8.shr_u i16x8.add i16x8.add_sat_s i16x8.add_sat_u
i16x8.sub i16x8.sub_sat_s i16x8.sub_sat_u
f64x2.nearest i16x8.mul i16x8.min_s i16x8.min_u i16x8.max_s i16x8.max_u
- i16x8.avgr_u
i16x8.extmul_low_i8x16_s i16x8.extmul_high_i8x16_s
i16x8.extmul_low_i8x16_u i16x8.extmul_high_i8x16_u
i32x4.abs i32x4.neg - i32x4.all_true i32x4.bitmask - -
i32x4.extend_low_i16x8_s i32x4.extend_high_i16x8_s
i32x4.extend_low_i16x8_u i32x4.extend_high_i16x8_u
i32x4.shl i32x4.shr_s i32x4.shr_u i32x4.add - - i32x4.sub - - -
i32x4.mul i32x4.min_s i32x4.min_u i32x4.max_s i32x4.max_u i32x4.dot_i16x8_s -
i32x4.extmul_low_i16x8_s i32x4.extmul_high_i16x8_s
i32x4.extmul_low_i16x8_u i32x4.extmul_high_i16x8_u
i64x2.abs i64x2.neg - i64x2.all_true i64x2.bitmask - -
i64x2.extend_low_i32x4_s i64x2.extend_high_i32x4_s
i64x2.extend_low_i32x4_u i64x2.extend_high_i32x4_u
i64x2.shl i64x2.shr_s i64x2.shr_u i64x2.add - - i64x2.sub - - -
i64x2.mul i64x2.eq i64x2.ne i64x2.lt_s i64x2.gt_s i64x2.le_s i64x2.ge_s
i64x2.extmul_low_i32x4_s i64x2.extmul_high_i32x4_s
i64x2.extmul_low_i32x4_u i64x2.extmul_high_i32x4_u
f32x4.abs f32x4.neg - f32x4.sqrt f32x4.add f32x4.sub f32x4.mul f32x4.div
f32x4.min f32x4.max f32x4.pmin f32x4.pmax
f64x2.abs f64x2.neg - f64x2.sqrt f64x2.add f64x2.sub f64x2.mul f64x2.div
f64x2.min f64x2.max f64x2.pmin f64x2.pmax
i32x4.trunc_sat_f32x4_s i32x4.trunc_sat_f32x4_u
f32x4.convert_i32x4_s f32x4.convert_i32x4_u
i32x4.trunc_sat_f64x2_s_zero i32x4.trunc_sat_f64x2_u_zero
f64x2.convert_low_i32x4_s f64x2.convert_low_i32x4_u
""".split()

# Relaxed SIMD: 0xFD sub-opcodes from 0x100, in order.
_RELAXED_SIMD = """
i8x16.relaxed_swizzle
i32x4.relaxed_trunc_f32x4_s i32x4.relaxed_trunc_f32x4_u
i32x4.relaxed_trunc_f64x2_s_zero i32x4.relaxed_trunc_f64x2_u_zero
f32x4.relaxed_madd f32x4.relaxed_nmadd f64x2.relaxed_madd f64x2.relaxed_nmadd
i8x16.relaxed_laneselect i16x8.relaxed_laneselect i32x4.relaxed_laneselect
i64x2.relaxed_laneselect
f32x4.relaxed_min f32x4.relaxed_max f64x2.relaxed_min f64x2.relaxed_max
i16x8.relaxed_q15mulr_s i16x8.relaxed_dot_i8x16_i7x16_s i32x4.relaxed_dot_i8x16_i7x16_add_s
""".split()


def _simd_imm(sub: int) -> Imm:
    if sub <= 0x0B or sub in (0x5C, 0x5D):
        return _M  # loads, stores, load*_zero
    if sub in (0x0C, 0x0D):
        return Imm.V128  # v128.const, i8x16.shuffle
    if 0x15 <= sub <= 0x22:
        return Imm.LANE  # extract_lane / replace_lane
    if 0x54 <= sub <= 0x5B:
        return Imm.MEMARG_LANE  # load*_lane / store*_lane
    return _N


# 0xFE prefix: threads.  The read-modify-write families repeat one shape per
# operation: i32, i64, then the narrow unsigned forms.
_ATOMIC_RMW_SHAPES = ("i32.atomic.rmw.{}", "i64.atomic.rmw.{}", "i32.atomic.rmw8.{}_u",
                      "i32.atomic.rmw16.{}_u", "i64.atomic.rmw8.{}_u", "i64.atomic.rmw16.{}_u",
                      "i64.atomic.rmw32.{}_u")


def _atomics() -> list[tuple[int, str, Imm]]:
    table: list[tuple[int, str, Imm]] = [
        (0x00, "memory.atomic.notify", _M),
        (0x01, "memory.atomic.wait32", _M),
        (0x02, "memory.atomic.wait64", _M),
        (0x03, "atomic.fence", Imm.ZERO_BYTE),
    ]
    plain = ("i32.atomic.load i64.atomic.load i32.atomic.load8_u i32.atomic.load16_u "
             "i64.atomic.load8_u i64.atomic.load16_u i64.atomic.load32_u "
             "i32.atomic.store i64.atomic.store i32.atomic.store8 i32.atomic.store16 "
             "i64.atomic.store8 i64.atomic.store16 i64.atomic.store32").split()
    sub = 0x10
    for name in plain:
        table.append((sub, name, _M))
        sub += 1
    for operation in ("add", "sub", "and", "or", "xor", "xchg", "cmpxchg"):
        for shape in _ATOMIC_RMW_SHAPES:
            table.append((sub, shape.format(operation), _M))
            sub += 1
    return table


def _build() -> tuple[dict[int, str], dict[str, int], dict[int, Imm]]:
    names: dict[int, str] = {}
    imms: dict[int, Imm] = {}

    def add(op: int, name: str, imm: Imm) -> None:
        assert op not in names, hex(op)
        names[op] = name
        imms[op] = imm

    for op, name, imm in _PLAIN:
        add(op, name, imm)
    for i, name in enumerate(_NUMERIC):
        add(0x45 + i, name, _N)
    assert 0x45 + len(_NUMERIC) == 0xC5
    for sub, name, imm in _FC:
        add(0xFC0000 | sub, name, imm)
    assert len(_SIMD) == 256
    for sub, name in enumerate(_SIMD):
        if name != "-":
            add(0xFD0000 | sub, name, _simd_imm(sub))
    for i, name in enumerate(_RELAXED_SIMD):
        add(0xFD0100 + i, name, _N)
    for sub, name, imm in _atomics():
        add(0xFE0000 | sub, name, imm)
    by_name = {name: op for op, name in names.items()}
    # "select" names two opcodes; the plain one is what a bare "select" means.
    by_name["select"] = 0x1B
    return names, by_name, imms


NAME, OP, IMMEDIATES = _build()
"""``NAME``: op -> text name; ``OP``: text name -> op; ``IMMEDIATES``: op -> ``Imm``."""

SELECT_T = 0x1C
"""The typed ``select t*`` (its text name is also "select"; ``OP["select"]`` is 0x1B)."""


def op_bytes(op: int) -> bytes:
    """The opcode's own encoding: one byte, or the prefix byte and the sub-opcode as u32."""
    if op <= 0xFF:
        return bytes((op,))
    sub = op & 0xFFFF
    out = bytearray((op >> 16,))
    while True:
        b = sub & 0x7F
        sub >>= 7
        if sub:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


# Constants for the opcodes callers build or look for; every other opcode is OP["name"].
UNREACHABLE = 0x00
NOP = 0x01
BLOCK = 0x02
LOOP = 0x03
IF = 0x04
ELSE = 0x05
TRY = 0x06
CATCH = 0x07
THROW = 0x08
RETHROW = 0x09
THROW_REF = 0x0A
END = 0x0B
BR = 0x0C
BR_IF = 0x0D
BR_TABLE = 0x0E
RETURN = 0x0F
CALL = 0x10
CALL_INDIRECT = 0x11
RETURN_CALL = 0x12
RETURN_CALL_INDIRECT = 0x13
DELEGATE = 0x18
CATCH_ALL = 0x19
DROP = 0x1A
SELECT = 0x1B
TRY_TABLE = 0x1F
LOCAL_GET = 0x20
LOCAL_SET = 0x21
LOCAL_TEE = 0x22
GLOBAL_GET = 0x23
GLOBAL_SET = 0x24
TABLE_GET = 0x25
TABLE_SET = 0x26
I32_LOAD = 0x28
I64_LOAD = 0x29
I32_STORE = 0x36
I64_STORE = 0x37
MEMORY_SIZE = 0x3F
MEMORY_GROW = 0x40
I32_CONST = 0x41
I64_CONST = 0x42
F32_CONST = 0x43
F64_CONST = 0x44
I32_EQZ = 0x45
I32_EQ = 0x46
I32_NE = 0x47
I32_LT_S = 0x48
I32_LT_U = 0x49
I32_GT_S = 0x4A
I32_GT_U = 0x4B
I32_LE_S = 0x4C
I32_LE_U = 0x4D
I32_GE_S = 0x4E
I32_GE_U = 0x4F
I64_EQZ = 0x50
I64_EQ = 0x51
I64_NE = 0x52
I64_LT_S = 0x53
I64_LT_U = 0x54
I64_GT_S = 0x55
I64_GT_U = 0x56
I64_LE_S = 0x57
I64_LE_U = 0x58
I64_GE_S = 0x59
I64_GE_U = 0x5A
I32_ADD = 0x6A
I32_SUB = 0x6B
I32_MUL = 0x6C
I32_AND = 0x71
I32_OR = 0x72
I64_ADD = 0x7C
I64_SUB = 0x7D
I64_MUL = 0x7E
I64_AND = 0x83
I64_OR = 0x84
I32_WRAP_I64 = 0xA7
I64_EXTEND_I32_S = 0xAC
I64_EXTEND_I32_U = 0xAD
REF_NULL = 0xD0
REF_IS_NULL = 0xD1
REF_FUNC = 0xD2
MEMORY_INIT = 0xFC0008
DATA_DROP = 0xFC0009
MEMORY_COPY = 0xFC000A
MEMORY_FILL = 0xFC000B
TABLE_INIT = 0xFC000C
ELEM_DROP = 0xFC000D
TABLE_COPY = 0xFC000E
TABLE_GROW = 0xFC000F
TABLE_SIZE = 0xFC0010
TABLE_FILL = 0xFC0011
V128_CONST = 0xFD000C
I8X16_SHUFFLE = 0xFD000D
ATOMIC_FENCE = 0xFE0003

FUNCTION_INDEX_OPS = frozenset((CALL, RETURN_CALL, REF_FUNC))
"""Opcodes whose immediate is a function index (shifted when a function import is added)."""

GLOBAL_INDEX_OPS = frozenset((GLOBAL_GET, GLOBAL_SET))
"""Opcodes whose immediate is a global index (shifted when a global import is added)."""
