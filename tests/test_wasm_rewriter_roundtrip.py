"""wasm_rewriter: byte-identical round trips, the instruction codec, canonical re-encoding.

Every fixture is parsed and written back unchanged (it must come back byte for
byte), every decoded instruction survives a canonical encode/decode, and
``encode(canonical=True)`` (which ignores every cached original byte) must give
a module that parses to the same structure, validates on the engines and
computes the same results.

What the engines accept: wasmtime 50 validates everything used here with its
default configuration (threads, tail calls, relaxed SIMD, multi-memory,
memory64, exceptions, defined globals read in constant expressions).  wasmer 1.1
(wasmparser/cranelift of early 2021) validates MVP, sign extension, saturating
truncation, multi-value, bulk memory and reference types with funcref tables,
and the early SIMD subset; its translator refuses externref tables and the SIMD
opcodes added late to the proposal (i8x16.popcnt, extend/promote ...), and its
validator refuses shared memories (threads), tail calls, relaxed SIMD, multiple
memories and 64-bit memories.  A tag section (id 13) even makes it panic (it
reads id 13 as module linking), so exception-tag modules never go near wasmer.
Each fixture therefore lists the engines it is checked on.
"""

from __future__ import annotations

import collections
import functools
import struct
import subprocess
from pathlib import Path

import pytest
import wasmer
import wasmer_compiler_cranelift
import wasmtime
from hypothesis import given, settings
from hypothesis import strategies as st

import funk
from examples.graphviz_svg import graphviz_wasm_path
from wasm_rewriter import (
    NAME,
    OP,
    GlobalType,
    Imm,
    Instr,
    Module,
    Reader,
    decode_expr,
    encode_instrs,
    opcodes,
    writer,
)

REPO = Path(__file__).resolve().parent.parent
BOTH = ("wasmtime", "wasmer")
WASMTIME_ONLY = ("wasmtime",)

# ---------------------------------------------------------------------------
# WAT fixtures, one per instruction family.

CONTROL = r"""
(module
  (type $pair (func (param i32) (result i32 i32)))
  (type $bin (func (param i32 i32) (result i32)))
  (table $tab 4 funcref)
  (elem (i32.const 0) $add $sub)
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $pair (param i32) (result i32 i32) (local.get 0) (i32.const 1))
  (func $ctl (export "ctl") (param $x i32) (result i32)
    (local $i i32) (local $l i64) (local f32 f64)
    nop
    block $out (result i32)
      loop $top
        local.get $i i32.const 1 i32.add local.tee $i
        i32.const 10 i32.lt_s br_if $top
      end
      local.get $x
      if (result i32)
        i32.const 1
      else
        i32.const 2
      end
      drop
      block $a
        block $b
          block $c
            local.get $x
            br_table $a $b $c $a
          end
          i32.const 30 br $out
        end
        i32.const 20 return
      end
      local.get $x
      block (param i32) (result i32 i32)
        i32.const 5
      end
      i32.add
      loop (param i32) (result i32)
        i32.const 1 i32.add
      end
      local.get $x
      if (param i32) (result i32)
        i32.const 3 i32.mul
      else
        i32.const 4 i32.mul
      end
      local.get $x
      call $pair
      i32.const 0
      call_indirect $tab (type $bin)
      i32.add
      i32.const 1 i32.const 2 local.get $x select
      i32.add
      local.get $x
      if
        nop
      end
      br 0
    end
    i32.const 0 i32.eqz br_if 0
    drop
    unreachable)
)
"""

MEMORY = r"""
(module
  (memory $m 1 2)
  (func (export "mem") (param $p i32) (result i64)
    (i32.store offset=0 align=4 (local.get $p) (i32.load offset=4 align=1 (local.get $p)))
    (i64.store offset=65536 align=8 (local.get $p) (i64.load offset=8 (local.get $p)))
    (f32.store offset=3 align=2 (local.get $p) (f32.load offset=12 align=4 (local.get $p)))
    (f64.store (local.get $p) (f64.load offset=16 align=2 (local.get $p)))
    (i32.store8 offset=1 (local.get $p) (i32.load8_s (local.get $p)))
    (i32.store16 offset=2 align=1 (local.get $p) (i32.load8_u offset=7 (local.get $p)))
    (i32.store16 (local.get $p) (i32.load16_s offset=4294967295 align=1 (local.get $p)))
    (i32.store (local.get $p) (i32.load16_u (local.get $p)))
    (i64.store8 (local.get $p) (i64.load8_s (local.get $p)))
    (i64.store16 (local.get $p) (i64.load8_u (local.get $p)))
    (i64.store32 offset=100 align=2 (local.get $p) (i64.load16_s (local.get $p)))
    (i64.store (local.get $p) (i64.load16_u (local.get $p)))
    (i64.store (local.get $p) (i64.load32_s (local.get $p)))
    (i64.store (local.get $p) (i64.load32_u offset=200 align=1 (local.get $p)))
    (drop (memory.grow (i32.const 0)))
    (drop (memory.size))
    (i64.load (local.get $p)))
)
"""

# Every MVP numeric opcode (0x45-0xBF), sign extension (0xC0-0xC4) and the
# saturating truncations (0xFC 0-7); constants at their limits and with NaN payloads.
NUMERIC = r"""
(module
  (func (export "num") (param $a i32) (param $b i64) (param $c f32) (param $d f64) (result i32)
    (i32.const 0) (i32.const -1) (i32.const 2147483647) (i32.const -2147483648) (drop) (drop) (drop) (drop)
    (i64.const 0) (i64.const -1) (i64.const 9223372036854775807) (i64.const -9223372036854775808) (drop) (drop) (drop) (drop)
    (f32.const nan) (f32.const -nan) (f32.const nan:0x200001) (f32.const -nan:0x1) (f32.const inf) (f32.const -0) (f32.const 0x1p-149) (f32.const 3.5)
    (drop) (drop) (drop) (drop) (drop) (drop) (drop) (drop)
    (f64.const nan) (f64.const -nan:0x4000000000001) (f64.const nan:0x1) (f64.const -inf) (f64.const -0) (f64.const 0x1p-1074) (f64.const 1.5e300)
    (drop) (drop) (drop) (drop) (drop) (drop) (drop)
    local.get $a i32.eqz drop
    local.get $a local.get $a i32.eq drop local.get $a local.get $a i32.ne drop
    local.get $a local.get $a i32.lt_s drop local.get $a local.get $a i32.lt_u drop
    local.get $a local.get $a i32.gt_s drop local.get $a local.get $a i32.gt_u drop
    local.get $a local.get $a i32.le_s drop local.get $a local.get $a i32.le_u drop
    local.get $a local.get $a i32.ge_s drop local.get $a local.get $a i32.ge_u drop
    local.get $b i64.eqz drop
    local.get $b local.get $b i64.eq drop local.get $b local.get $b i64.ne drop
    local.get $b local.get $b i64.lt_s drop local.get $b local.get $b i64.lt_u drop
    local.get $b local.get $b i64.gt_s drop local.get $b local.get $b i64.gt_u drop
    local.get $b local.get $b i64.le_s drop local.get $b local.get $b i64.le_u drop
    local.get $b local.get $b i64.ge_s drop local.get $b local.get $b i64.ge_u drop
    local.get $c local.get $c f32.eq drop local.get $c local.get $c f32.ne drop
    local.get $c local.get $c f32.lt drop local.get $c local.get $c f32.gt drop
    local.get $c local.get $c f32.le drop local.get $c local.get $c f32.ge drop
    local.get $d local.get $d f64.eq drop local.get $d local.get $d f64.ne drop
    local.get $d local.get $d f64.lt drop local.get $d local.get $d f64.gt drop
    local.get $d local.get $d f64.le drop local.get $d local.get $d f64.ge drop
    local.get $a i32.clz drop local.get $a i32.ctz drop local.get $a i32.popcnt drop
    local.get $a local.get $a i32.add drop local.get $a local.get $a i32.sub drop
    local.get $a local.get $a i32.mul drop local.get $a local.get $a i32.div_s drop
    local.get $a local.get $a i32.div_u drop local.get $a local.get $a i32.rem_s drop
    local.get $a local.get $a i32.rem_u drop local.get $a local.get $a i32.and drop
    local.get $a local.get $a i32.or drop local.get $a local.get $a i32.xor drop
    local.get $a local.get $a i32.shl drop local.get $a local.get $a i32.shr_s drop
    local.get $a local.get $a i32.shr_u drop local.get $a local.get $a i32.rotl drop
    local.get $a local.get $a i32.rotr drop
    local.get $b i64.clz drop local.get $b i64.ctz drop local.get $b i64.popcnt drop
    local.get $b local.get $b i64.add drop local.get $b local.get $b i64.sub drop
    local.get $b local.get $b i64.mul drop local.get $b local.get $b i64.div_s drop
    local.get $b local.get $b i64.div_u drop local.get $b local.get $b i64.rem_s drop
    local.get $b local.get $b i64.rem_u drop local.get $b local.get $b i64.and drop
    local.get $b local.get $b i64.or drop local.get $b local.get $b i64.xor drop
    local.get $b local.get $b i64.shl drop local.get $b local.get $b i64.shr_s drop
    local.get $b local.get $b i64.shr_u drop local.get $b local.get $b i64.rotl drop
    local.get $b local.get $b i64.rotr drop
    local.get $c f32.abs drop local.get $c f32.neg drop local.get $c f32.ceil drop
    local.get $c f32.floor drop local.get $c f32.trunc drop local.get $c f32.nearest drop
    local.get $c f32.sqrt drop local.get $c local.get $c f32.add drop
    local.get $c local.get $c f32.sub drop local.get $c local.get $c f32.mul drop
    local.get $c local.get $c f32.div drop local.get $c local.get $c f32.min drop
    local.get $c local.get $c f32.max drop local.get $c local.get $c f32.copysign drop
    local.get $d f64.abs drop local.get $d f64.neg drop local.get $d f64.ceil drop
    local.get $d f64.floor drop local.get $d f64.trunc drop local.get $d f64.nearest drop
    local.get $d f64.sqrt drop local.get $d local.get $d f64.add drop
    local.get $d local.get $d f64.sub drop local.get $d local.get $d f64.mul drop
    local.get $d local.get $d f64.div drop local.get $d local.get $d f64.min drop
    local.get $d local.get $d f64.max drop local.get $d local.get $d f64.copysign drop
    local.get $b i32.wrap_i64 drop
    local.get $c i32.trunc_f32_s drop local.get $c i32.trunc_f32_u drop
    local.get $d i32.trunc_f64_s drop local.get $d i32.trunc_f64_u drop
    local.get $a i64.extend_i32_s drop local.get $a i64.extend_i32_u drop
    local.get $c i64.trunc_f32_s drop local.get $c i64.trunc_f32_u drop
    local.get $d i64.trunc_f64_s drop local.get $d i64.trunc_f64_u drop
    local.get $a f32.convert_i32_s drop local.get $a f32.convert_i32_u drop
    local.get $b f32.convert_i64_s drop local.get $b f32.convert_i64_u drop
    local.get $d f32.demote_f64 drop
    local.get $a f64.convert_i32_s drop local.get $a f64.convert_i32_u drop
    local.get $b f64.convert_i64_s drop local.get $b f64.convert_i64_u drop
    local.get $c f64.promote_f32 drop
    local.get $c i32.reinterpret_f32 drop local.get $d i64.reinterpret_f64 drop
    local.get $a f32.reinterpret_i32 drop local.get $b f64.reinterpret_i64 drop
    local.get $a i32.extend8_s drop local.get $a i32.extend16_s drop
    local.get $b i64.extend8_s drop local.get $b i64.extend16_s drop local.get $b i64.extend32_s drop
    local.get $c i32.trunc_sat_f32_s drop local.get $c i32.trunc_sat_f32_u drop
    local.get $d i32.trunc_sat_f64_s drop local.get $d i32.trunc_sat_f64_u drop
    local.get $c i64.trunc_sat_f32_s drop local.get $c i64.trunc_sat_f32_u drop
    local.get $d i64.trunc_sat_f64_s drop local.get $d i64.trunc_sat_f64_u drop
    local.get $a)
)
"""

# Bulk memory and reference types over funcref tables; element segments in all
# 8 encodings ($e0 ... $e7 use flags 0 ... 7), active and passive data (and so a
# data count section).
BULK_REF = r"""
(module
  (type $v (func))
  (memory 1)
  (table $t0 4 funcref)
  (table $t1 4 8 funcref)
  (table $t2 2 funcref)
  (func $f0)
  (func $f1)
  (func $f2)
  (elem $e0 (i32.const 0) $f0 $f1)
  (elem $e1 func $f1 $f2)
  (elem $e2 (table $t2) (i32.const 0) func $f2)
  (elem $e3 declare func $f0)
  (elem $e4 (i32.const 2) funcref (ref.func $f0) (ref.null func))
  (elem $e5 funcref (ref.func $f2) (ref.null func))
  (elem $e6 (table $t1) (i32.const 0) funcref (ref.null func) (ref.func $f1))
  (elem $e7 declare funcref (ref.func $f1))
  (data $d0 (i32.const 16) "active")
  (data $d1 "passive")
  (func (export "bulk") (result i32)
    (memory.init $d1 (i32.const 0) (i32.const 1) (i32.const 2))
    (data.drop $d1)
    (memory.copy (i32.const 0) (i32.const 16) (i32.const 4))
    (memory.fill (i32.const 0) (i32.const 255) (i32.const 4))
    (table.init $t0 $e1 (i32.const 0) (i32.const 0) (i32.const 1))
    (table.init $t2 $e5 (i32.const 0) (i32.const 0) (i32.const 1))
    (elem.drop $e1)
    (table.copy $t0 $t2 (i32.const 0) (i32.const 0) (i32.const 1))
    (table.copy $t0 $t0 (i32.const 1) (i32.const 0) (i32.const 1))
    (table.set $t1 (i32.const 1) (ref.func $f2))
    (drop (table.get $t1 (i32.const 1)))
    (drop (table.grow $t1 (ref.null func) (i32.const 1)))
    (drop (table.size $t0))
    (table.fill $t1 (i32.const 0) (ref.null func) (i32.const 2))
    (drop (ref.is_null (ref.func $f0)))
    (drop (select (result funcref) (ref.func $f0) (ref.null func) (i32.const 1)))
    (drop (select (result i64) (i64.const 1) (i64.const 2) (i32.const 1)))
    (i32.load8_u (i32.const 0)))
)
"""

EXTERNREF = r"""
(module
  (table $t 4 8 externref)
  (global $g (mut externref) (ref.null extern))
  (elem (table $t) (i32.const 0) externref (ref.null extern))
  (elem declare externref (ref.null extern))
  (func (export "ext") (param $x externref) (result i32)
    (table.set $t (i32.const 1) (local.get $x))
    (global.set $g (table.get $t (i32.const 1)))
    (drop (table.grow $t (ref.null extern) (i32.const 1)))
    (table.fill $t (i32.const 0) (local.get $x) (i32.const 2))
    (drop (select (result externref) (local.get $x) (ref.null extern) (i32.const 0)))
    (i32.add (table.size $t) (ref.is_null (global.get $g))))
)
"""

# Data segment flags 2 (explicit memory) and memargs with a memory index.
MULTI_MEMORY = r"""
(module
  (memory $m0 1)
  (memory $m1 1 2)
  (data $d (i32.const 0) "zero")
  (data (memory $m1) (i32.const 8) "one")
  (data $p "passive")
  (func (export "mm") (result i32)
    (memory.init $m1 $p (i32.const 0) (i32.const 0) (i32.const 3))
    (memory.copy $m0 $m1 (i32.const 0) (i32.const 8) (i32.const 3))
    (memory.fill $m1 (i32.const 100) (i32.const 7) (i32.const 2))
    (drop (memory.grow $m1 (i32.const 1)))
    (drop (memory.size $m1))
    (i32.store8 $m1 offset=5 (i32.const 0) (i32.const 1))
    (i32.add (i32.load $m1 offset=4 align=1 (i32.const 4)) (i32.load8_u $m0 (i32.const 0))))
)
"""

# 64-bit memory: limits flag bit 2, u64 limits and memarg offsets beyond 4 GiB.
MEMORY64 = r"""
(module
  (memory $m i64 1 65536)
  (func (export "m64") (param $p i64) (result i64)
    (i64.store offset=0x100000000 (local.get $p) (i64.const 1))
    (drop (memory.grow (i64.const 1)))
    (i64.add (memory.size) (i64.load offset=0x7fffffffffff align=1 (local.get $p))))
)
"""

SIMD = r"""
(module
  (memory 1)
  (func (export "simd") (param $p i32) (result i32)
    (local $v v128)
    (local.set $v (v128.const i32x4 1 2 3 0xffffffff))
    (local.set $v (v128.const i8x16 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15))
    (local.set $v (v128.const f32x4 nan -inf 0x1p-149 -nan:0x1))
    (local.set $v (v128.const f64x2 nan:0x4000000000001 -0))
    (local.set $v (i8x16.shuffle 0 17 2 19 4 21 6 23 8 25 10 27 12 29 14 31 (local.get $v) (local.get $v)))
    (local.set $v (i8x16.swizzle (local.get $v) (local.get $v)))
    (local.set $v (i8x16.splat (local.get $p)))
    (local.set $v (i16x8.splat (local.get $p)))
    (local.set $v (i32x4.splat (local.get $p)))
    (local.set $v (i64x2.splat (i64.const 7)))
    (local.set $v (f32x4.splat (f32.const 1)))
    (local.set $v (f64x2.splat (f64.const 1)))
    (drop (i8x16.extract_lane_s 15 (local.get $v)))
    (drop (i8x16.extract_lane_u 3 (local.get $v)))
    (drop (i16x8.extract_lane_s 7 (local.get $v)))
    (drop (i16x8.extract_lane_u 0 (local.get $v)))
    (drop (i32x4.extract_lane 3 (local.get $v)))
    (drop (i64x2.extract_lane 1 (local.get $v)))
    (drop (f32x4.extract_lane 2 (local.get $v)))
    (drop (f64x2.extract_lane 1 (local.get $v)))
    (local.set $v (i8x16.replace_lane 9 (local.get $v) (i32.const 1)))
    (local.set $v (i16x8.replace_lane 5 (local.get $v) (i32.const 1)))
    (local.set $v (i32x4.replace_lane 1 (local.get $v) (i32.const 1)))
    (local.set $v (i64x2.replace_lane 0 (local.get $v) (i64.const 1)))
    (local.set $v (f32x4.replace_lane 3 (local.get $v) (f32.const 1)))
    (local.set $v (f64x2.replace_lane 1 (local.get $v) (f64.const 1)))
    (local.set $v (v128.load (local.get $p)))
    (local.set $v (v128.load offset=16 align=1 (local.get $p)))
    (local.set $v (v128.load8x8_s (local.get $p)))
    (local.set $v (v128.load8x8_u (local.get $p)))
    (local.set $v (v128.load16x4_s (local.get $p)))
    (local.set $v (v128.load16x4_u (local.get $p)))
    (local.set $v (v128.load32x2_s (local.get $p)))
    (local.set $v (v128.load32x2_u (local.get $p)))
    (local.set $v (v128.load8_splat (local.get $p)))
    (local.set $v (v128.load16_splat (local.get $p)))
    (local.set $v (v128.load32_splat (local.get $p)))
    (local.set $v (v128.load64_splat (local.get $p)))
    (local.set $v (v128.load32_zero offset=4 (local.get $p)))
    (local.set $v (v128.load64_zero (local.get $p)))
    (local.set $v (v128.load8_lane 15 (local.get $p) (local.get $v)))
    (local.set $v (v128.load16_lane offset=2 align=1 7 (local.get $p) (local.get $v)))
    (local.set $v (v128.load32_lane 3 (local.get $p) (local.get $v)))
    (local.set $v (v128.load64_lane offset=8 1 (local.get $p) (local.get $v)))
    (v128.store8_lane 1 (local.get $p) (local.get $v))
    (v128.store16_lane 2 (local.get $p) (local.get $v))
    (v128.store32_lane offset=4 align=2 3 (local.get $p) (local.get $v))
    (v128.store64_lane 0 (local.get $p) (local.get $v))
    (v128.store offset=32 (local.get $p) (local.get $v))
    (local.set $v (v128.not (local.get $v)))
    (local.set $v (v128.and (local.get $v) (local.get $v)))
    (local.set $v (v128.andnot (local.get $v) (local.get $v)))
    (local.set $v (v128.or (local.get $v) (local.get $v)))
    (local.set $v (v128.xor (local.get $v) (local.get $v)))
    (local.set $v (v128.bitselect (local.get $v) (local.get $v) (local.get $v)))
    (drop (v128.any_true (local.get $v)))
    (drop (i8x16.all_true (local.get $v)))
    (drop (i32x4.bitmask (local.get $v)))
    (local.set $v (i8x16.eq (local.get $v) (local.get $v)))
    (local.set $v (i16x8.lt_s (local.get $v) (local.get $v)))
    (local.set $v (i32x4.ge_u (local.get $v) (local.get $v)))
    (local.set $v (i64x2.ne (local.get $v) (local.get $v)))
    (local.set $v (f32x4.le (local.get $v) (local.get $v)))
    (local.set $v (f64x2.gt (local.get $v) (local.get $v)))
    (local.set $v (i8x16.abs (local.get $v)))
    (local.set $v (i8x16.popcnt (local.get $v)))
    (local.set $v (i8x16.narrow_i16x8_s (local.get $v) (local.get $v)))
    (local.set $v (i8x16.add_sat_u (local.get $v) (local.get $v)))
    (local.set $v (i8x16.avgr_u (local.get $v) (local.get $v)))
    (local.set $v (i16x8.q15mulr_sat_s (local.get $v) (local.get $v)))
    (local.set $v (i16x8.extmul_high_i8x16_u (local.get $v) (local.get $v)))
    (local.set $v (i16x8.extadd_pairwise_i8x16_s (local.get $v)))
    (local.set $v (i32x4.add (local.get $v) (local.get $v)))
    (local.set $v (i32x4.dot_i16x8_s (local.get $v) (local.get $v)))
    (local.set $v (i32x4.shl (local.get $v) (i32.const 3)))
    (local.set $v (i64x2.mul (local.get $v) (local.get $v)))
    (local.set $v (i64x2.extend_low_i32x4_s (local.get $v)))
    (local.set $v (f32x4.sqrt (local.get $v)))
    (local.set $v (f32x4.pmin (local.get $v) (local.get $v)))
    (local.set $v (f64x2.nearest (local.get $v)))
    (local.set $v (f64x2.div (local.get $v) (local.get $v)))
    (local.set $v (i32x4.trunc_sat_f32x4_s (local.get $v)))
    (local.set $v (i32x4.trunc_sat_f64x2_u_zero (local.get $v)))
    (local.set $v (f32x4.convert_i32x4_u (local.get $v)))
    (local.set $v (f32x4.demote_f64x2_zero (local.get $v)))
    (local.set $v (f64x2.promote_low_f32x4 (local.get $v)))
    (local.set $v (f64x2.convert_low_i32x4_s (local.get $v)))
    (i32x4.extract_lane 0 (local.get $v)))
)
"""

RELAXED_SIMD = r"""
(module
  (func (export "relaxed") (param $v v128) (result v128)
    (local.set $v (i8x16.relaxed_swizzle (local.get $v) (local.get $v)))
    (local.set $v (i32x4.relaxed_trunc_f32x4_s (local.get $v)))
    (local.set $v (f32x4.relaxed_madd (local.get $v) (local.get $v) (local.get $v)))
    (local.set $v (f64x2.relaxed_nmadd (local.get $v) (local.get $v) (local.get $v)))
    (local.set $v (i8x16.relaxed_laneselect (local.get $v) (local.get $v) (local.get $v)))
    (local.set $v (f32x4.relaxed_min (local.get $v) (local.get $v)))
    (local.set $v (i16x8.relaxed_q15mulr_s (local.get $v) (local.get $v)))
    (local.set $v (i16x8.relaxed_dot_i8x16_i7x16_s (local.get $v) (local.get $v)))
    (i32x4.relaxed_dot_i8x16_i7x16_add_s (local.get $v) (local.get $v) (local.get $v)))
)
"""

ATOMICS = r"""
(module
  (memory $m 1 2 shared)
  (func (export "atomics") (param $p i32) (result i64)
    (drop (memory.atomic.notify offset=4 (local.get $p) (i32.const 1)))
    (drop (memory.atomic.wait32 (local.get $p) (i32.const 1) (i64.const 0)))
    (drop (memory.atomic.wait64 offset=8 (local.get $p) (i64.const 1) (i64.const 0)))
    (atomic.fence)
    (drop (i32.atomic.load (local.get $p)))
    (drop (i64.atomic.load offset=8 (local.get $p)))
    (drop (i32.atomic.load8_u (local.get $p)))
    (drop (i32.atomic.load16_u (local.get $p)))
    (drop (i64.atomic.load8_u (local.get $p)))
    (drop (i64.atomic.load16_u (local.get $p)))
    (drop (i64.atomic.load32_u (local.get $p)))
    (i32.atomic.store (local.get $p) (i32.const 1))
    (i64.atomic.store offset=16 (local.get $p) (i64.const 1))
    (i32.atomic.store8 (local.get $p) (i32.const 1))
    (i32.atomic.store16 (local.get $p) (i32.const 1))
    (i64.atomic.store8 (local.get $p) (i64.const 1))
    (i64.atomic.store16 (local.get $p) (i64.const 1))
    (i64.atomic.store32 (local.get $p) (i64.const 1))
    (drop (i32.atomic.rmw.add (local.get $p) (i32.const 1)))
    (drop (i64.atomic.rmw.sub (local.get $p) (i64.const 1)))
    (drop (i32.atomic.rmw8.and_u (local.get $p) (i32.const 1)))
    (drop (i32.atomic.rmw16.or_u (local.get $p) (i32.const 1)))
    (drop (i64.atomic.rmw32.xor_u (local.get $p) (i64.const 1)))
    (drop (i64.atomic.rmw8.xchg_u (local.get $p) (i64.const 1)))
    (drop (i32.atomic.rmw.cmpxchg (local.get $p) (i32.const 1) (i32.const 2)))
    (drop (i64.atomic.rmw32.cmpxchg_u offset=24 (local.get $p) (i64.const 1) (i64.const 2)))
    (i64.atomic.rmw.cmpxchg (local.get $p) (i64.const 1) (i64.const 2)))
)
"""

TAIL_CALLS = r"""
(module
  (type $t (func (param i32 i32) (result i32)))
  (table 1 funcref)
  (elem (i32.const 0) $acc)
  (func $acc (type $t)
    (if (result i32) (i32.eqz (local.get 0))
      (then (local.get 1))
      (else (return_call $acc (i32.sub (local.get 0) (i32.const 1)) (i32.add (local.get 1) (local.get 0))))))
  (func (export "sum") (param i32) (result i32)
    (return_call_indirect (type $t) (local.get 0) (i32.const 0) (i32.const 0)))
)
"""

# Imports of the four MVP kinds, globals of every value type, a start function.
GLOBALS_IMPORTS = r"""
(module
  (import "env" "f" (func $imp_f (param i32) (result i32)))
  (import "env" "tab" (table $imp_t 2 funcref))
  (import "env" "mem" (memory $imp_m 1))
  (import "env" "g" (global $imp_g i32))
  (import "env" "gm" (global $imp_gm (mut i64)))
  (import "env" "gf" (global $imp_gf f32))
  (import "env" "h" (func $imp_h))
  (global $gi32 i32 (i32.const -7))
  (global $gi64 (mut i64) (i64.const 0x7fffffffffffffff))
  (global $gf32 f32 (f32.const nan:0x12345))
  (global $gf64 (mut f64) (f64.const -0x1.8p3))
  (global $gv128 v128 (v128.const i64x2 1 -1))
  (global $gfunc funcref (ref.func $start))
  (global $gnull (mut funcref) (ref.null func))
  (global $gext (mut externref) (ref.null extern))
  (global $gget i32 (global.get $imp_g))
  (func $start (global.set $gi64 (i64.add (global.get $gi64) (i64.const 1))))
  (start $start)
  (func $use (export "use") (result i32) (call $imp_h) (call $imp_f (global.get $gget)))
  (export "g_i32" (global $gi32))
  (export "table" (table $imp_t))
  (export "memory" (memory $imp_m))
  (export "start" (func $start))
)
"""

# The fifth import kind (tags) and the tag section; wasmtime only (see the docstring).
TAGS = r"""
(module
  (import "env" "t" (tag $it (param i32)))
  (tag $e (param i64 f32))
  (export "e" (tag $e))
  (export "it" (tag $it))
)
"""

# Custom sections before, between and after the known sections, plus the name section.
CUSTOMS = r"""
(module
  (@custom "before-all" (before first) "\00\01\02")
  (type (func (param i32) (result i32)))
  (@custom "after-type" (after type) "between")
  (func $double (export "double") (type 0) (param $x i32) (result i32)
    (i32.mul (local.get $x) (i32.const 2)))
  (@custom "after-func" (after func) "")
  (@custom "after-code" (after code) "\ff")
  (@custom "at-end" (after last) "tail")
)
"""

# The compute guests: results must not change through a canonical re-encode.
COMPUTE = r"""
(module
  (type $bin (func (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (table 4 funcref)
  (elem (i32.const 0) $add $sub $mul $xor)
  (data (i32.const 256) "\de\ad\be\ef\01\02\03\04")
  (func $add (type $bin) (i32.add (local.get 0) (local.get 1)))
  (func $sub (type $bin) (i32.sub (local.get 0) (local.get 1)))
  (func $mul (type $bin) (i32.mul (local.get 0) (local.get 1)))
  (func $xor (type $bin) (i32.xor (local.get 0) (local.get 1)))
  (func $fib (export "fib") (param $n i32) (result i32)
    (if (result i32) (i32.lt_u (local.get $n) (i32.const 2))
      (then (local.get $n))
      (else (i32.add (call $fib (i32.sub (local.get $n) (i32.const 1)))
                     (call $fib (i32.sub (local.get $n) (i32.const 2)))))))
  (func (export "sum_squares") (param $n i32) (result i64)
    (local $i i32) (local $acc i64)
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $acc (i64.add (local.get $acc)
          (i64.mul (i64.extend_i32_u (local.get $i)) (i64.extend_i32_u (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $acc))
  (func (export "checksum") (param $n i32) (result i32)
    (local $i i32) (local $h i32)
    (block $filled (loop $fill
      (br_if $filled (i32.ge_u (local.get $i) (local.get $n)))
      (i32.store8 offset=1024 (local.get $i) (i32.mul (local.get $i) (i32.const 37)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $fill)))
    (local.set $h (i32.load offset=256 (i32.const 0)))
    (local.set $i (i32.const 0))
    (block $done (loop $fold
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $h (i32.add (i32.rotl (local.get $h) (i32.const 5))
                             (i32.load8_u offset=1024 (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $fold)))
    (i32.xor (local.get $h) (i32.load16_s offset=260 (i32.const 0))))
  (func (export "apply") (param $op i32) (param $a i32) (param $b i32) (result i32)
    (call_indirect (type $bin) (local.get $a) (local.get $b) (local.get $op)))
  (func (export "dispatch") (param $k i32) (result i32)
    (block $other (block $three (block $two (block $one (block $zero
      (br_table $zero $one $two $three $other (local.get $k)))
      (return (i32.const 100)))
      (return (i32.const 200)))
      (return (i32.const 300)))
      (return (i32.const 400)))
    (i32.const -1))
  (func (export "i64_math") (param $a i64) (param $b i64) (result i64)
    (i64.xor
      (i64.add (i64.mul (local.get $a) (local.get $b)) (i64.rotl (local.get $a) (i64.const 13)))
      (i64.add (i64.div_s (local.get $a) (i64.or (local.get $b) (i64.const 1)))
               (i64.add (i64.clz (local.get $b)) (i64.shr_u (local.get $a) (i64.const 7))))))
  (func (export "f64_math") (param $x f64) (param $y f64) (result f64)
    (f64.add
      (f64.sqrt (f64.add (f64.mul (local.get $x) (local.get $x)) (f64.mul (local.get $y) (local.get $y))))
      (f64.div (f64.nearest (local.get $x)) (f64.max (f64.abs (local.get $y)) (f64.const 0.5)))))
  (func (export "f32_bits") (param $x f32) (result i32)
    (i32.reinterpret_f32 (f32.mul (local.get $x) (f32.const -1.5))))
  (func (export "simd_sum") (param $a i32) (result i32)
    (local $v v128)
    (local.set $v (i32x4.add (i32x4.splat (local.get $a)) (v128.const i32x4 1 2 3 4)))
    (i32.add (i32x4.extract_lane 0 (local.get $v)) (i32x4.extract_lane 3 (local.get $v))))
)
"""

# (export, args, expected result): the expected values are the ones both engines
# compute for the original module (fib(20) = 6765, sum of i*i below 1000 ...).
COMPUTE_CALLS = [
    ("fib", (20,), 6765), ("fib", (1,), 1), ("sum_squares", (1000,), 332833500),
    ("checksum", (300,), -515845373), ("apply", (0, 7, 5), 12), ("apply", (1, 7, 5), 2),
    ("apply", (2, 7, 5), 35), ("apply", (3, 7, 5), 2), ("dispatch", (0,), 100),
    ("dispatch", (3,), 400), ("dispatch", (9,), -1), ("dispatch", (-1,), -1),
    ("i64_math", (123456789012345, -987654321), 1358560547199141408),
    ("i64_math", (-1, 0), -144115188075855935), ("f64_math", (3.0, 4.0), 5.75),
    ("f64_math", (-2.5, 0.25), -1.4875310947197775), ("f32_bits", (1.25,), -1074790400),
    ("simd_sum", (10,), 25),
]

# name -> (WAT, engines that must accept it)
FIXTURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "control": (CONTROL, BOTH),
    "memory": (MEMORY, BOTH),
    "numeric": (NUMERIC, BOTH),
    "bulk_ref": (BULK_REF, BOTH),
    "externref": (EXTERNREF, WASMTIME_ONLY),
    "multi_memory": (MULTI_MEMORY, WASMTIME_ONLY),
    "memory64": (MEMORY64, WASMTIME_ONLY),
    "simd": (SIMD, WASMTIME_ONLY),
    "relaxed_simd": (RELAXED_SIMD, WASMTIME_ONLY),
    "atomics": (ATOMICS, WASMTIME_ONLY),
    "tail_calls": (TAIL_CALLS, WASMTIME_ONLY),
    "globals_imports": (GLOBALS_IMPORTS, BOTH),
    "tags": (TAGS, WASMTIME_ONLY),
    "customs": (CUSTOMS, BOTH),
    "compute": (COMPUTE, BOTH),
}


@functools.cache
def fixture_bytes(name: str) -> bytes:
    return bytes(wasmtime.wat2wasm(FIXTURES[name][0]))


def repo_wasm_files() -> list[str]:
    out = subprocess.run(["git", "ls-files", "*.wasm"], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.split()
    return sorted(out)


REPO_WASM = repo_wasm_files()

# ---------------------------------------------------------------------------
# Helpers independent of the package under test.


def uleb(value: int, width: int = 0) -> bytes:
    """Unsigned LEB128, padded with continuation bytes to ``width`` bytes."""
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            break
    while len(out) < width:
        out[-1] |= 0x80
        out.append(0)
    return bytes(out)


def read_uleb(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return result, pos


def split_sections(data: bytes) -> list[tuple[int, bytes]]:
    """(id, payload) of every section, in order."""
    assert data[:8] == b"\0asm\x01\0\0\0"
    pos, out = 8, []
    while pos < len(data):
        sid = data[pos]
        size, pos = read_uleb(data, pos + 1)
        out.append((sid, data[pos:pos + size]))
        pos += size
    assert pos == len(data)
    return out


def join_sections(sections: list[tuple[int, bytes]], width: int = 0) -> bytes:
    return b"\0asm\x01\0\0\0" + b"".join(
        bytes((sid,)) + uleb(len(p), width) + p for sid, p in sections)


def custom_section(name: str, payload: bytes) -> tuple[int, bytes]:
    raw = name.encode()
    return (0, uleb(len(raw)) + raw + payload)


def wasmtime_accepts(data: bytes) -> None:
    config = wasmtime.Config()
    config.wasm_exceptions = True  # opt-in before wasmtime 48 (the tag fixtures)
    wasmtime.Module(wasmtime.Engine(config), data)


def wasmer_accepts(data: bytes) -> None:
    store = wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))
    wasmer.Module(store, data)


ACCEPTS = {"wasmtime": wasmtime_accepts, "wasmer": wasmer_accepts}


def structure(m: Module) -> tuple[object, ...]:
    """The parsed content of a module, compared field by field (original bytes ignored)."""
    # The parsed name section stands for its custom section (whose payload may be stale).
    customs = [(c.name, c.payload) for c in m.customs if c.name != "name" or m.names is None]
    return (m.types, m.imports, m.functions, m.tables, m.memories, m.globals, m.exports,
            m.start, m.elements, m.data_count, [(b.locals, b.code) for b in m.code], m.data,
            customs, m.names)


def all_exprs(m: Module) -> list[list[Instr]]:
    """Every instruction sequence of a module: bodies and constant expressions."""
    exprs = [body.code for body in m.code]
    exprs += [g.init for g in m.globals]
    for seg in m.elements:
        if seg.offset is not None:
            exprs.append(seg.offset)
        if seg.flags & 4:
            exprs.extend(seg.items)  # type: ignore[arg-type]
    exprs += [seg.offset for seg in m.data if seg.offset is not None]
    return exprs


def names_in(m: Module) -> set[str]:
    return {NAME[ins.op] for expr in all_exprs(m) for ins in expr}


# ---------------------------------------------------------------------------
# Byte-identical round trips.


def test_repo_has_wasm_files() -> None:
    # The parametrised round trip below must not silently run over nothing.
    assert len(REPO_WASM) >= 10
    assert any(p.startswith("tests/guests/wasi/") for p in REPO_WASM)


@pytest.mark.parametrize("path", REPO_WASM)
def test_repo_wasm_round_trips_byte_identically(path: str) -> None:
    data = (REPO / path).read_bytes()
    m = Module.parse(data)
    assert len(m.code) == len(m.functions) > 0
    assert m.encode() == data
    # A second generation is stable too.
    assert Module.parse(m.encode()).encode() == data


@functools.cache
def graphviz_bytes() -> bytes:
    return graphviz_wasm_path().read_bytes()


def test_graphviz_round_trips_byte_identically() -> None:
    data = graphviz_bytes()
    assert len(data) > 900_000
    m = Module.parse(data)
    assert len(m.code) > 1000
    assert m.encode() == data


def test_graphviz_canonical_encoding_is_equivalent() -> None:
    data = graphviz_bytes()
    m = Module.parse(data)
    canon = m.encode(canonical=True)
    again = Module.parse(canon)
    assert structure(again) == structure(m)
    assert again.encode(canonical=True) == canon
    # Validation only (compiling 1 MB on both engines would dominate the run time).
    assert wasmtime.Module.validate(wasmtime.Engine(), canon) is None
    store = wasmer.Store(wasmer.engine.Universal(wasmer_compiler_cranelift.Compiler))
    assert wasmer.Module.validate(store, canon)


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_is_accepted_by_its_engines(name: str) -> None:
    # Guards the fixtures themselves: a test below failing must be the rewriter's fault.
    for engine in FIXTURES[name][1]:
        ACCEPTS[engine](fixture_bytes(name))


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_fixture_round_trips_byte_identically(name: str) -> None:
    data = fixture_bytes(name)
    m = Module.parse(data)
    assert m.encode() == data


def test_padded_leb128s_round_trip_byte_identically() -> None:
    """Non-minimal LEB128s (as wasm-ld leaves them) survive: sizes, counts, immediates."""
    types = uleb(1, 5) + b"\x60\x00\x01\x7f"                      # () -> i32
    funcs = uleb(2, 5) + uleb(0, 5) + uleb(0, 3)
    exports = b"\x01\x01f\x00" + uleb(1, 5)
    body0 = uleb(1, 5) + uleb(2, 5) + b"\x7f" + b"\x41\x80\x80\x80\x80\x00\x0b"  # i32.const 0
    body1 = uleb(0, 4) + b"\x10" + uleb(0, 5) + b"\x0b"           # call 0, padded index
    code = uleb(2, 5) + uleb(len(body0), 5) + body0 + uleb(len(body1), 3) + body1
    data = join_sections([(1, types), (3, funcs), (7, exports), (10, code)], width=5)
    wasmtime_accepts(data)
    wasmer_accepts(data)
    m = Module.parse(data)
    assert m.encode() == data
    assert m.code[0].locals == [(2, 0x7F)]
    assert m.code[0].code[0] == Instr(opcodes.I32_CONST, 0)
    assert m.code[1].code[0] == Instr(opcodes.CALL, 0)
    assert m.code[1].code[0].raw == b"\x10" + uleb(0, 5)
    canon = m.encode(canonical=True)
    assert len(canon) < len(data)
    assert structure(Module.parse(canon)) == structure(m)
    wasmtime_accepts(canon)
    wasmer_accepts(canon)


def test_untouched_sections_keep_their_bytes_after_an_edit() -> None:
    """Only what changed is re-encoded; sizes keep their width where the value still fits."""
    types = uleb(1, 5) + b"\x60\x00\x01\x7f"
    funcs = uleb(1, 5) + uleb(0, 5)
    exports = b"\x01\x01f\x00" + uleb(0, 5)
    body = uleb(0, 4) + b"\x41\x85\x80\x80\x80\x00\x0b"               # i32.const 5, padded
    code = uleb(1, 5) + uleb(len(body), 5) + body
    data = join_sections([(1, types), (3, funcs), (7, exports), (10, code)], width=5)
    m = Module.parse(data)
    g = m.add_global(GlobalType(0x7F, False), [Instr(opcodes.I32_CONST, 37), Instr(opcodes.END)])
    m.code[0].code[1:1] = [Instr(opcodes.GLOBAL_GET, g), Instr(OP["i32.add"])]
    out = m.encode()
    sections = split_sections(out)
    assert [sid for sid, _ in sections] == [1, 3, 6, 7, 10]
    assert dict(sections)[1] == types and dict(sections)[3] == funcs
    assert dict(sections)[7] == exports
    new_code = dict(sections)[10]
    # Count and body size keep their 5-byte width; the untouched i32.const keeps its bytes.
    assert new_code[:5] == uleb(1, 5)
    assert new_code[5:10] == uleb(len(body) + 3, 5)
    assert new_code[10:] == uleb(0, 4) + b"\x41\x85\x80\x80\x80\x00\x23\x00\x6a\x0b"
    assert out.index(b"\x0a" + uleb(len(new_code), 5)) > 0                # the section size too
    inst = funk.instantiate(out, [], backend="wasmtime")
    assert inst.exports.f() == 42


def test_hand_made_custom_sections_everywhere_round_trip() -> None:
    """A custom section before, between each pair of, and after the known sections."""
    sections = split_sections(fixture_bytes("compute"))
    known = [s for s in sections if s[0] != 0]
    spliced = [custom_section("c0", b"first")]
    for i, sec in enumerate(known):
        spliced.append(sec)
        spliced.append(custom_section(f"c{i + 1}", bytes(range(i))))
    data = join_sections(spliced)
    wasmtime_accepts(data)
    m = Module.parse(data)
    assert [c.name for c in m.customs] == [f"c{i}" for i in range(len(known) + 1)]
    assert m.customs[3].payload == bytes(range(2))
    assert m.encode() == data
    canon = m.encode(canonical=True)
    # Canonically re-encoded, the custom sections keep their places among the known ones.
    assert [sid for sid, _ in split_sections(canon)] == [sid for sid, _ in spliced]
    assert structure(Module.parse(canon)) == structure(m)


def test_customs_fixture_keeps_custom_sections_in_place() -> None:
    data = fixture_bytes("customs")
    m = Module.parse(data)
    assert [c.name for c in m.customs] == [
        "before-all", "after-type", "after-func", "after-code", "at-end", "name"]
    assert m.customs[1].payload == b"between"
    assert m.customs[0].payload == b"\x00\x01\x02"
    fn_names = m.names.function_names  # type: ignore[union-attr]
    assert fn_names is not None and dict(fn_names.names) == {0: "double"}
    canon = m.encode(canonical=True)
    assert [sid for sid, _ in split_sections(canon)] == [sid for sid, _ in split_sections(data)]


def test_name_section_is_parsed() -> None:
    m = Module.parse(fixture_bytes("globals_imports"))
    assert m.names is not None
    funcs = dict(m.names.function_names.names)  # type: ignore[union-attr]
    assert funcs == {0: "imp_f", 1: "imp_h", 2: "start", 3: "use"}
    globs = dict(m.names.global_names.names)  # type: ignore[union-attr]
    assert globs[0] == "imp_g" and globs[3] == "gi32" and globs[11] == "gget"


# ---------------------------------------------------------------------------
# What the decoder makes of the fixtures.


def test_numeric_fixture_covers_every_numeric_opcode() -> None:
    found = {ins.op for body in Module.parse(fixture_bytes("numeric")).code for ins in body.code}
    expected = set(range(0x45, 0xC5)) | {0xFC0000 | i for i in range(8)}
    assert expected <= found


def test_bulk_ref_fixture_has_all_segment_forms() -> None:
    m = Module.parse(fixture_bytes("bulk_ref"))
    assert [seg.flags for seg in m.elements] == list(range(8))
    assert [seg.mode for seg in m.elements] == [
        "active", "passive", "active", "declarative"] * 2
    assert m.elements[0].items == [0, 1]
    assert m.elements[2].table == 2
    assert m.elements[6].table == 1
    assert m.elements[4].items == [[Instr(opcodes.REF_FUNC, 0), Instr(opcodes.END)],
                                   [Instr(opcodes.REF_NULL, 0x70), Instr(opcodes.END)]]
    assert [seg.flags for seg in m.data] == [0, 1]
    assert m.data[1].offset is None and m.data[1].data == b"passive"
    assert m.data_count == 2
    ops = names_in(m)
    assert {"memory.init", "data.drop", "memory.copy", "memory.fill", "table.init", "elem.drop",
            "table.copy", "table.set", "table.get", "table.grow", "table.size", "table.fill",
            "ref.is_null", "ref.func", "ref.null"} <= ops
    body = m.code[-1].code
    assert Instr(opcodes.MEMORY_INIT, (1, 0)) in body
    assert Instr(opcodes.TABLE_INIT, (1, 0)) in body      # (elem, table)
    assert Instr(opcodes.TABLE_INIT, (5, 2)) in body
    assert Instr(opcodes.TABLE_COPY, (0, 2)) in body      # (dst, src)
    assert Instr(opcodes.MEMORY_COPY, (0, 0)) in body
    assert Instr(opcodes.SELECT_T, (0x70,)) in body
    assert Instr(opcodes.SELECT_T, (0x7E,)) in body


def test_multi_memory_fixture() -> None:
    m = Module.parse(fixture_bytes("multi_memory"))
    assert [(seg.flags, seg.memory) for seg in m.data] == [(0, 0), (2, 1), (1, 0)]
    body = m.code[0].code
    assert Instr(OP["i32.load"], (0, 4, 1)) in body       # align=1 -> log2 0, memory 1
    assert Instr(OP["i32.load8_u"], (0, 0, 0)) in body
    assert Instr(opcodes.MEMORY_INIT, (2, 1)) in body     # (data, memory)
    assert Instr(opcodes.MEMORY_COPY, (0, 1)) in body     # (dst, src)
    assert Instr(opcodes.MEMORY_SIZE, 1) in body
    assert Instr(opcodes.MEMORY_GROW, 1) in body
    assert Instr(OP["memory.fill"], 1) in body


def test_memory64_fixture() -> None:
    m = Module.parse(fixture_bytes("memory64"))
    assert m.memories[0].is64 and not m.memories[0].shared
    assert (m.memories[0].minimum, m.memories[0].maximum) == (1, 65536)
    body = m.code[0].code
    assert Instr(OP["i64.store"], (3, 0x100000000, 0)) in body
    assert Instr(OP["i64.load"], (0, 0x7FFFFFFFFFFF, 0)) in body


def test_control_fixture_immediates() -> None:
    m = Module.parse(fixture_bytes("control"))
    body = m.code[3].code
    assert Instr(opcodes.BR_TABLE, ((2, 1, 0), 2)) in body
    assert Instr(opcodes.BLOCK, -64) in body              # empty block type
    assert Instr(opcodes.BLOCK, -1) in body               # (result i32)
    assert Instr(opcodes.IF, -1) in body
    # (param i32) (result i32 i32) reuses type 0; the loop's signature gets an index too.
    assert Instr(opcodes.BLOCK, 0) in body
    typed = [ins for ins in body if ins.op in (opcodes.LOOP, opcodes.IF) and ins.imm >= 0]
    assert typed and all(ins.imm < len(m.types) for ins in typed)
    assert Instr(opcodes.CALL_INDIRECT, (1, 0)) in body
    assert Instr(opcodes.CALL, 2) in body
    assert body[-1] == Instr(opcodes.END)
    assert m.code[3].locals == [(1, 0x7F), (1, 0x7E), (1, 0x7D), (1, 0x7C)]


def test_memory_fixture_memargs() -> None:
    body = Module.parse(fixture_bytes("memory")).code[0].code
    assert Instr(OP["i32.load"], (0, 4, 0)) in body
    assert Instr(OP["i32.store"], (2, 0, 0)) in body
    assert Instr(OP["i64.store"], (3, 65536, 0)) in body
    assert Instr(OP["i32.load16_s"], (0, 0xFFFFFFFF, 0)) in body
    assert Instr(OP["i64.load32_u"], (0, 200, 0)) in body
    assert Instr(opcodes.MEMORY_GROW, 0) in body
    assert Instr(opcodes.MEMORY_SIZE, 0) in body


def test_numeric_constants_are_exact() -> None:
    body = Module.parse(fixture_bytes("numeric")).code[0].code
    consts: dict[int, list[object]] = collections.defaultdict(list)
    for ins in body:
        consts[ins.op].append(ins.imm)
    assert consts[opcodes.I32_CONST] == [0, -1, 2**31 - 1, -(2**31)]
    assert consts[opcodes.I64_CONST] == [0, -1, 2**63 - 1, -(2**63)]
    f32 = consts[opcodes.F32_CONST]
    assert all(isinstance(x, bytes) and len(x) == 4 for x in f32)
    assert f32[:6] == [struct.pack("<I", bits) for bits in (
        0x7FC00000, 0xFFC00000, 0x7FA00001, 0xFF800001, 0x7F800000, 0x80000000)]
    f64 = consts[opcodes.F64_CONST]
    assert f64[:5] == [struct.pack("<Q", bits) for bits in (
        0x7FF8000000000000, 0xFFF4000000000001, 0x7FF0000000000001, 0xFFF0000000000000,
        0x8000000000000000)]


def test_simd_fixture_immediates() -> None:
    m = Module.parse(fixture_bytes("simd"))
    body = m.code[0].code
    assert Instr(opcodes.V128_CONST, struct.pack("<4I", 1, 2, 3, 0xFFFFFFFF)) in body
    assert Instr(opcodes.V128_CONST, bytes(range(16))) in body
    assert Instr(opcodes.V128_CONST, struct.pack("<QQ", 0x7FF4000000000001,
                                                 0x8000000000000000)) in body
    assert Instr(opcodes.I8X16_SHUFFLE, bytes([0, 17, 2, 19, 4, 21, 6, 23, 8, 25, 10, 27, 12, 29,
                                               14, 31])) in body
    assert Instr(OP["v128.load8_lane"], (0, 0, 0, 15)) in body
    assert Instr(OP["v128.load16_lane"], (0, 2, 0, 7)) in body
    assert Instr(OP["v128.load64_lane"], (3, 8, 0, 1)) in body
    assert Instr(OP["v128.store32_lane"], (1, 4, 0, 3)) in body
    assert Instr(OP["i8x16.extract_lane_s"], 15) in body
    assert Instr(OP["f64x2.replace_lane"], 1) in body
    assert Instr(OP["v128.load32_zero"], (2, 4, 0)) in body
    assert Instr(OP["v128.load"], (0, 16, 0)) in body
    assert len([n for n in names_in(m) if n.startswith(("v128", "i8x16", "i16x8", "i32x4",
                                                         "i64x2", "f32x4", "f64x2"))]) >= 70


def test_relaxed_simd_atomics_and_tail_call_names() -> None:
    relaxed = names_in(Module.parse(fixture_bytes("relaxed_simd")))
    assert {"i8x16.relaxed_swizzle", "f32x4.relaxed_madd", "i8x16.relaxed_laneselect",
            "i32x4.relaxed_dot_i8x16_i7x16_add_s"} <= relaxed
    atomics = Module.parse(fixture_bytes("atomics"))
    assert atomics.memories[0].shared
    body = atomics.code[0].code
    assert Instr(opcodes.ATOMIC_FENCE, 0) in body
    assert Instr(OP["memory.atomic.notify"], (2, 4, 0)) in body
    assert Instr(OP["i64.atomic.rmw32.cmpxchg_u"], (2, 24, 0)) in body
    assert Instr(OP["i32.atomic.rmw.add"], (2, 0, 0)) in body
    assert len(names_in(atomics)) >= 27
    tail = Module.parse(fixture_bytes("tail_calls"))
    assert Instr(opcodes.RETURN_CALL, 0) in tail.code[0].code
    assert Instr(opcodes.RETURN_CALL_INDIRECT, (0, 0)) in tail.code[1].code


def test_globals_and_imports_fixture() -> None:
    m = Module.parse(fixture_bytes("globals_imports"))
    assert [imp.kind for imp in m.imports] == [0, 1, 2, 3, 3, 3, 0]
    assert m.num_imported(0) == 2 and m.num_imported(3) == 3
    assert m.total_functions == 4 and m.total_globals == 12
    assert m.imports[1].desc.reftype == 0x70 and m.imports[1].desc.limits.minimum == 2
    assert m.imports[4].desc.mutable and m.imports[4].desc.valtype == 0x7E
    assert [(g.type.valtype, g.type.mutable) for g in m.globals] == [
        (0x7F, False), (0x7E, True), (0x7D, False), (0x7C, True), (0x7B, False),
        (0x70, False), (0x70, True), (0x6F, True), (0x7F, False)]
    assert m.globals[2].init == [Instr(opcodes.F32_CONST, struct.pack("<I", 0x7F812345)),
                                 Instr(opcodes.END)]
    assert m.globals[5].init[0] == Instr(opcodes.REF_FUNC, 2)
    assert m.globals[6].init == [Instr(opcodes.REF_NULL, 0x70), Instr(opcodes.END)]
    assert m.globals[8].init[0] == Instr(opcodes.GLOBAL_GET, 0)
    assert m.start == 2
    assert m.function_type(0).params == (0x7F,) and m.function_type(0).results == (0x7F,)
    assert m.function_type(3).results == (0x7F,)
    assert {(e.name, e.kind, e.index) for e in m.exports} == {
        ("g_i32", 3, 3), ("table", 1, 0), ("memory", 2, 0), ("start", 0, 2), ("use", 0, 3)}


def test_tags_fixture() -> None:
    m = Module.parse(fixture_bytes("tags"))
    assert [(imp.kind, imp.desc) for imp in m.imports] == [(4, (0, 0))]
    assert len(m.tags) == 1 and m.tags[0][0] == 0
    assert {(e.name, e.kind) for e in m.exports} == {("e", 4), ("it", 4)}


# ---------------------------------------------------------------------------
# The instruction codec, instruction by instruction.

CODEC_SOURCES = [n for n in sorted(FIXTURES) if n != "tags"] + ["repo:" + p for p in REPO_WASM]


def source_bytes(source: str) -> bytes:
    if source.startswith("repo:"):
        return (REPO / source[5:]).read_bytes()
    return fixture_bytes(source)


@pytest.mark.parametrize("source", CODEC_SOURCES)
def test_instruction_codec(source: str) -> None:
    m = Module.parse(source_bytes(source))
    checked = 0
    for expr in all_exprs(m):
        for ins in expr:
            assert ins.raw is not None
            fresh = Instr(ins.op, ins.imm)
            assert fresh == ins and fresh.raw is None
            if ins.op in (opcodes.BLOCK, opcodes.LOOP, opcodes.IF):
                seq = [fresh, Instr(opcodes.END), Instr(opcodes.END)]
            elif ins.op == opcodes.ELSE:
                seq = [Instr(opcodes.IF, -64), fresh, Instr(opcodes.END), Instr(opcodes.END)]
            elif ins.op == opcodes.END:
                seq = [fresh]
            else:
                seq = [fresh, Instr(opcodes.END)]
            encoded = encode_instrs(seq)
            decoded, end = decode_expr(encoded, 0, len(encoded))
            assert end == len(encoded)
            assert decoded == seq
            assert [d.op for d in decoded] == [s.op for s in seq]
            if not source.startswith("repo:"):
                # wat2wasm writes minimal LEB128s: the canonical encoding is the original.
                assert encode_instrs([fresh]) == ins.raw, ins
            checked += 1
        # Whole sequences too, re-encoded without their raw bytes.
        stripped = [Instr(i.op, i.imm) for i in expr]
        blob = encode_instrs(stripped)
        again, end = decode_expr(blob, 0, len(blob))
        assert again == expr and end == len(blob)
        assert encode_instrs(expr) == b"".join(i.raw for i in expr)  # type: ignore[misc]
    assert checked > 0


# ---------------------------------------------------------------------------
# Canonical re-encoding: same structure, valid, same results.


@pytest.mark.parametrize("name", sorted(FIXTURES))
def test_canonical_encoding_is_structurally_equal_and_valid(name: str) -> None:
    data = fixture_bytes(name)
    m = Module.parse(data)
    canon = m.encode(canonical=True)
    again = Module.parse(canon)
    assert structure(again) == structure(m)
    assert again == m
    # Idempotent: the canonical form of the canonical form is itself.
    assert again.encode(canonical=True) == canon
    assert again.encode() == canon
    for engine in FIXTURES[name][1]:
        ACCEPTS[engine](canon)


@pytest.mark.parametrize("path", REPO_WASM)
def test_repo_wasm_canonical_encoding_validates(path: str) -> None:
    m = Module.parse((REPO / path).read_bytes())
    canon = m.encode(canonical=True)
    assert structure(Module.parse(canon)) == structure(m)
    wasmtime_accepts(canon)
    wasmer_accepts(canon)


def test_compute_guests_same_results_after_canonical_encode(backend: str) -> None:
    original = fixture_bytes("compute")
    canon = Module.parse(original).encode(canonical=True)
    results = []
    for data in (original, canon):
        inst = funk.instantiate(data, [], backend=backend)
        results.append([getattr(inst.exports, name)(*args) for name, args, _ in COMPUTE_CALLS])
    assert results[0] == results[1] == [want for _, _, want in COMPUTE_CALLS]


def test_tail_calls_compute_after_canonical_encode() -> None:
    # Tail calls run on wasmtime only (wasmer 1.1 refuses them).
    canon = Module.parse(fixture_bytes("tail_calls")).encode(canonical=True)
    inst = funk.instantiate(canon, [], backend="wasmtime")
    total = (100_000 * 100_001 // 2) % (1 << 32)  # wraps to 705082704, below 2**31
    assert inst.exports.sum(100_000) == total == 705082704


# ---------------------------------------------------------------------------
# The opcode table.


def test_op_and_name_are_inverses() -> None:
    assert len(OP) > 500
    for name, op in OP.items():
        assert NAME[op] == name
    for op, name in NAME.items():
        # 0x1C (select t*) shares its text name with 0x1B; every other name is unique.
        if op != opcodes.SELECT_T:
            assert OP[name] == op
    assert opcodes.SELECT_T in NAME


def test_instr_value_semantics() -> None:
    add = Instr(OP["i32.add"])
    assert add.imm is None and add.raw is None
    assert "i32.add" in repr(add)
    const = Instr(opcodes.I32_CONST, -5)
    assert "i32.const" in repr(const) and "-5" in repr(const)
    assert const == Instr(opcodes.I32_CONST, -5) != Instr(opcodes.I32_CONST, 5)
    assert const != Instr(opcodes.I64_CONST, -5)
    decoded, _ = decode_expr(b"\x41\xfb\xff\xff\xff\x7f\x0b", 0, 7)   # i32.const -5, padded
    assert decoded[0] == const and decoded[0].raw == b"\x41\xfb\xff\xff\xff\x7f"
    assert isinstance(decoded[0].raw, bytes)
    assert encode_instrs([const, Instr(opcodes.END)]) == b"\x41\x7b\x0b"
    # Raw bytes win for decoded instructions, canonical bytes for new ones.
    assert encode_instrs(decoded) == b"\x41\xfb\xff\xff\xff\x7f\x0b"
    assert encode_instrs([Instr(i.op, i.imm) for i in decoded]) == b"\x41\x7b\x0b"


# (encoder, reader method, bits, signed)
LEB_KINDS = [(writer.u32, "u32", 32, False), (writer.u64, "u64", 64, False),
             (writer.s32, "s32", 32, True), (writer.s33, "s33", 33, True),
             (writer.s64, "s64", 64, True)]


@settings(max_examples=300, deadline=None, database=None)
@given(st.data())
def test_leb128_writer_and_reader_agree(data: st.DataObject) -> None:
    encode, method, bits, signed = data.draw(st.sampled_from(LEB_KINDS))
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    value = data.draw(st.one_of(st.integers(lo, hi), st.sampled_from([lo, hi, 0, -1 if signed
                                                                      else 1, 63, 64, 127])))
    max_width = (bits + 6) // 7
    width = data.draw(st.integers(0, max_width))
    blob = encode(value, width)
    assert max(1, width) <= len(blob) <= max_width
    if width <= 1:
        assert len(blob) == len(encode(value))            # minimal when no width is asked
    reader = Reader(b"\xaa" + blob + b"\xbb", 1)
    assert getattr(reader, method)() == value
    assert reader.pos == 1 + len(blob)


def test_leb128_writer_examples() -> None:
    assert writer.u32(3, width=5) == b"\x83\x80\x80\x80\x00"
    assert writer.u32(624485) == b"\xe5\x8e\x26"
    assert writer.u32(0xFFFFFFFF) == b"\xff\xff\xff\xff\x0f"
    assert writer.s32(-1) == b"\x7f" and writer.s32(-1, width=5) == b"\xff\xff\xff\xff\x7f"
    assert writer.s32(64) == b"\xc0\x00" and writer.s32(-65) == b"\xbf\x7f"
    assert writer.s33(-64) == b"\x40"                       # the empty block type
    assert writer.s64(-(2**63)) == b"\x80" * 9 + b"\x7f"
    assert writer.u64(2**64 - 1) == b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize(("name", "op"), [
    ("unreachable", 0x00), ("nop", 0x01), ("block", 0x02), ("loop", 0x03), ("if", 0x04),
    ("else", 0x05), ("end", 0x0B), ("br", 0x0C), ("br_if", 0x0D), ("br_table", 0x0E),
    ("return", 0x0F), ("call", 0x10), ("call_indirect", 0x11), ("return_call", 0x12),
    ("return_call_indirect", 0x13), ("drop", 0x1A), ("select", 0x1B), ("local.get", 0x20),
    ("local.tee", 0x22), ("global.get", 0x23), ("global.set", 0x24), ("table.get", 0x25),
    ("table.set", 0x26), ("i32.load", 0x28), ("i64.load32_u", 0x35), ("i64.store32", 0x3E),
    ("memory.size", 0x3F), ("memory.grow", 0x40), ("i32.const", 0x41), ("f64.const", 0x44),
    ("i32.eqz", 0x45), ("i32.add", 0x6A), ("i64.rotr", 0x8A), ("f64.copysign", 0xA6),
    ("i32.wrap_i64", 0xA7), ("f64.reinterpret_i64", 0xBF), ("i32.extend8_s", 0xC0),
    ("i64.extend32_s", 0xC4), ("ref.null", 0xD0), ("ref.is_null", 0xD1), ("ref.func", 0xD2),
    ("i32.trunc_sat_f32_s", 0xFC0000), ("i64.trunc_sat_f64_u", 0xFC0007),
    ("memory.init", 0xFC0008), ("data.drop", 0xFC0009), ("memory.copy", 0xFC000A),
    ("memory.fill", 0xFC000B), ("table.init", 0xFC000C), ("elem.drop", 0xFC000D),
    ("table.copy", 0xFC000E), ("table.grow", 0xFC000F), ("table.size", 0xFC0010),
    ("table.fill", 0xFC0011), ("v128.load", 0xFD0000), ("v128.store", 0xFD000B),
    ("v128.const", 0xFD000C), ("i8x16.shuffle", 0xFD000D), ("i8x16.swizzle", 0xFD000E),
    ("i8x16.extract_lane_s", 0xFD0015), ("f64x2.replace_lane", 0xFD0022),
    ("v128.any_true", 0xFD0053), ("v128.load8_lane", 0xFD0054), ("v128.store64_lane", 0xFD005B),
    ("v128.load32_zero", 0xFD005C), ("f64x2.promote_low_f32x4", 0xFD005F),
    ("i32x4.add", 0xFD00AE), ("i32x4.dot_i16x8_s", 0xFD00BA),
    ("f64x2.convert_low_i32x4_u", 0xFD00FF), ("i8x16.relaxed_swizzle", 0xFD0100),
    ("memory.atomic.notify", 0xFE0000), ("memory.atomic.wait32", 0xFE0001),
    ("memory.atomic.wait64", 0xFE0002), ("atomic.fence", 0xFE0003),
    ("i32.atomic.load", 0xFE0010), ("i32.atomic.rmw.add", 0xFE001E),
    ("i64.atomic.rmw.cmpxchg", 0xFE0049), ("i64.atomic.rmw32.cmpxchg_u", 0xFE004E),
])
def test_known_opcode_numbers(name: str, op: int) -> None:
    assert OP[name] == op
    assert NAME[op] == name


def test_opcode_families_are_complete() -> None:
    by_prefix = collections.Counter(op >> 16 for op in NAME if op > 0xFF)
    assert by_prefix[0xFC] == 18            # saturating truncation 0-7, bulk memory/tables 8-17
    assert by_prefix[0xFD] == 236 + 20      # final SIMD, relaxed SIMD
    assert by_prefix[0xFE] == 67            # threads: notify, waits, fence, 63 loads/stores/rmw
    assert set(range(0x45, 0xC5)) <= set(NAME)


# The text written for one instance of each immediate kind (indices all 0).
IMMEDIATE_TEXT = {
    Imm.NONE: "", Imm.U32: "0", Imm.MEMARG: "", Imm.I32: "0", Imm.I64: "0", Imm.F32: "0",
    Imm.F64: "0", Imm.BR_TABLE: "0", Imm.CALL_INDIRECT: "(type 0)",
    Imm.SELECT_T: "(result i32)", Imm.HEAPTYPE: "func", Imm.U32_PAIR: "0 0",
    Imm.V128: "i32x4 0 0 0 0", Imm.LANE: "0", Imm.MEMARG_LANE: "0", Imm.ZERO_BYTE: "",
}
STRUCTURED = {"block", "loop", "if", "else", "end", "try", "catch", "catch_all", "delegate",
              "try_table"}


def test_every_opcode_matches_the_wat_encoder() -> None:
    """Each name of the table, written in WAT, is encoded by wasmtime as that opcode.

    wat2wasm does not validate, so one unreachable-free snippet per instruction is
    enough; the structured ones are covered by the control fixture.
    """
    checked = 0
    for op, name in sorted(NAME.items()):
        if name in STRUCTURED:
            continue
        kind = opcodes.IMMEDIATES[op]
        imm = " ".join(["0"] * 16) if op == opcodes.I8X16_SHUFFLE else IMMEDIATE_TEXT[kind]
        wat = (f"(module (type (func)) (memory 1) (table 1 funcref) (tag) "
               f"(func {name} {imm}) (data \"\") (elem func 0))")
        first = Module.parse(bytes(wasmtime.wat2wasm(wat))).code[0].code[0]
        assert (first.op, NAME[first.op]) == (op, name)
        checked += 1
    assert checked > 500


def test_opcode_constants() -> None:
    assert (opcodes.CALL, opcodes.RETURN_CALL, opcodes.REF_FUNC) == (0x10, 0x12, 0xD2)
    assert (opcodes.GLOBAL_GET, opcodes.GLOBAL_SET) == (0x23, 0x24)
    assert (opcodes.BLOCK, opcodes.LOOP, opcodes.IF, opcodes.ELSE, opcodes.END) == (
        0x02, 0x03, 0x04, 0x05, 0x0B)
    assert (opcodes.BR, opcodes.BR_IF, opcodes.BR_TABLE, opcodes.RETURN) == (
        0x0C, 0x0D, 0x0E, 0x0F)
    assert (opcodes.MEMORY_SIZE, opcodes.MEMORY_GROW) == (0x3F, 0x40)
    assert (opcodes.I32_CONST, opcodes.I64_CONST, opcodes.I64_SUB, opcodes.I64_LT_S) == (
        0x41, 0x42, 0x7D, 0x53)
    assert opcodes.MEMORY_INIT == 0xFC0008 and opcodes.V128_CONST == 0xFD000C
