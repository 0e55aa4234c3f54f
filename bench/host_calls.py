"""Host-call cost: funk's generated wrappers vs hand-written engine code.

For each engine and each case, a guest loop calls one import N times; the
cost per call is measured for

* ``funk``: the host function defined with ``@host_functions`` (generated code);
* ``hand``: the same host method exposed with glue written by hand on that
  engine's fastest path (wasmtime: a C-API unchecked callback with a cached
  memoryview; wasmer: the bound method itself, or a closure with a cached
  memoryview).  Both variants call the very same ``BenchHost`` method, so the
  ratio is the cost of funk's generated marshalling against the least a
  careful hand-writer can do.  The ``Ptr[u64]`` case has no method to share
  (the method receives funk's ``Ptr``), so its hand version writes the u64
  with ``struct.pack_into`` directly;
* ``define_func`` (wasmtime only): wasmtime-py's public ``Linker.define_func``
  with ``Caller`` memory access.

Variants are measured interleaved, repeatedly; the script prints medians and
the median of per-round ratios (machines here are noisy: trust ratios).
Targets: funk/hand <= 1.3 on each engine; define_func/funk >= 8 on wasmtime.

    python bench/host_calls.py [--calls 20000] [--rounds 9]
"""

from __future__ import annotations

import argparse
import ctypes
import statistics
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wasmtime  # noqa: E402
from wasmtime import _ffi as ffi  # noqa: E402

import funk  # noqa: E402
import funk.wasm_input  # noqa: E402
from funk.types import Bytes, Ptr, Str, i32, u64  # noqa: E402

CASES = ("add", "str16", "bytes4k", "ptr_u64")

GUEST = r"""
(module
  (import "bench" "add" (func $add (param i32 i32) (result i32)))
  (import "bench" "str16" (func $str16 (param i32 i32) (result i32)))
  (import "bench" "bytes4k" (func $bytes4k (param i32 i32) (result i32)))
  (import "bench" "ptr_u64" (func $ptr_u64 (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 1024) "abracadabra-abra")
  (func (export "add") (param $n i32) (result i32) (local $acc i32)
    (block $b (loop $l (br_if $b (i32.eqz (local.get $n)))
      (local.set $acc (call $add (local.get $acc) (i32.const 1)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $l)))
    (local.get $acc))
  (func (export "str16") (param $n i32) (result i32) (local $acc i32)
    (block $b (loop $l (br_if $b (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (call $str16 (i32.const 1024) (i32.const 16))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $l)))
    (local.get $acc))
  (func (export "bytes4k") (param $n i32) (result i32) (local $acc i32)
    (block $b (loop $l (br_if $b (i32.eqz (local.get $n)))
      (local.set $acc (i32.add (local.get $acc) (call $bytes4k (i32.const 8192) (i32.const 4096))))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $l)))
    (local.get $acc))
  (func (export "ptr_u64") (param $n i32) (result i32)
    (block $b (loop $l (br_if $b (i32.eqz (local.get $n)))
      (call $ptr_u64 (i32.const 64))
      (local.set $n (i32.sub (local.get $n) (i32.const 1))) (br $l)))
    (i32.const 0)))
"""


@funk.host_functions(namespace="bench")
class BenchHost:
    """The four benchmarked host functions, as a funk user writes them."""

    def add(self, a: i32, b: i32) -> i32:
        return a + b

    def str16(self, text: Str) -> i32:
        return len(text)

    def bytes4k(self, data: Bytes) -> i32:
        return data[4095]

    def ptr_u64(self, out: Ptr[u64]) -> None:
        out.set(0x1122334455667788)


_U64 = struct.Struct("<Q")
_NULL_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))


def _memoryview_of(store: wasmtime.Store, memory: wasmtime.Memory) -> memoryview:
    at = ctypes.pythonapi.PyMemoryView_FromMemory
    at.restype = ctypes.py_object
    at.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
    base = ctypes.cast(memory.data_ptr(store), ctypes.c_void_p).value
    return at(base, memory.data_len(store), 0x200)


class _Trap(Exception):
    pass


def wasmtime_hand() -> Callable[[str, int], int]:
    """The four functions hand-written as unchecked callbacks (the fast path)."""
    from funk.backends.wasmtime import engine as shared_engine  # same config as funk

    eng = shared_engine()
    module = wasmtime.Module(eng, GUEST)
    linker = wasmtime.Linker(eng)
    state: dict[str, memoryview] = {}

    def trap(msg: str) -> int:
        data = msg.encode()
        return ctypes.cast(ffi.wasmtime_trap_new(ctypes.create_string_buffer(data), len(data)),
                           ctypes.c_void_p).value or 0

    host = BenchHost()
    h_add, h_str16, h_bytes4k = host.add, host.str16, host.bytes4k

    def add(env, caller, args, n):  # type: ignore[no-untyped-def]
        args[0].i32 = h_add(args[0].i32, args[1].i32)
        return 0

    def str16(env, caller, args, n):  # type: ignore[no-untyped-def]
        mem = state["mem"]
        p = args[0].i32 & 0xFFFFFFFF
        ln = args[1].i32 & 0xFFFFFFFF
        if p + ln > len(mem):
            return trap("out of bounds")
        args[0].i32 = h_str16(str(mem[p:p + ln], "utf-8"))
        return 0

    def bytes4k(env, caller, args, n):  # type: ignore[no-untyped-def]
        mem = state["mem"]
        rmem = state["rmem"]
        p = args[0].i32 & 0xFFFFFFFF
        ln = args[1].i32 & 0xFFFFFFFF
        if p + ln > len(mem):
            return trap("out of bounds")
        args[0].i32 = h_bytes4k(rmem[p:p + ln])
        return 0

    def ptr_u64(env, caller, args, n):  # type: ignore[no-untyped-def]
        mem = state["mem"]
        p = args[0].i32 & 0xFFFFFFFF
        if p + 8 > len(mem):
            return trap("out of bounds")
        _U64.pack_into(mem, p, 0x1122334455667788)
        return 0

    keep = []
    types = {"add": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()]),
             "str16": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()]),
             "bytes4k": ([wasmtime.ValType.i32()] * 2, [wasmtime.ValType.i32()]),
             "ptr_u64": ([wasmtime.ValType.i32()], [])}
    for name, fn in [("add", add), ("str16", str16), ("bytes4k", bytes4k),
                     ("ptr_u64", ptr_u64)]:
        cb = ffi.wasmtime_func_unchecked_callback_t(fn)
        keep.append(cb)
        ty = wasmtime.FuncType(*types[name])
        ffi.wasmtime_linker_define_func_unchecked(linker.ptr(), b"bench", 5, name.encode(),
                                                  len(name), ty.ptr(), cb, None,
                                                  _NULL_FINALIZER)
    store = wasmtime.Store(eng)
    inst = linker.instantiate(store, module)
    exports = inst.exports(store)
    state["mem"] = _memoryview_of(store, exports["memory"])
    state["rmem"] = state["mem"].toreadonly()
    funcs = {c: exports[c] for c in CASES}
    return _raw_caller(store, funcs, keep)


def _raw_caller(store: wasmtime.Store, funcs: dict[str, wasmtime.Func],
                keep: list[object]) -> Callable[[str, int], int]:
    """Call exports with wasmtime_func_call_unchecked, as funk does."""

    def call(case: str, n: int) -> int:
        buf = (ffi.wasmtime_val_raw_t * 1)()
        buf[0].i32 = n
        trap = ctypes.POINTER(ffi.wasm_trap_t)()
        err = ffi.wasmtime_func_call_unchecked(store._context(), ctypes.byref(funcs[case]._func),
                                               buf, 1, ctypes.byref(trap))
        assert not err and not trap
        keep.__len__()
        return buf[0].i32

    return call


def wasmtime_define_func() -> Callable[[str, int], int]:
    """The same functions through wasmtime-py's public ``Linker.define_func``."""
    eng = wasmtime.Engine()
    module = wasmtime.Module(eng, GUEST)
    linker = wasmtime.Linker(eng)
    i = wasmtime.ValType.i32()

    def add(a: int, b: int) -> int:
        return a + b

    def str16(caller: wasmtime.Caller, p: int, n: int) -> int:
        mem = caller["memory"]
        return len(mem.read(caller, p, p + n).decode())

    def bytes4k(caller: wasmtime.Caller, p: int, n: int) -> int:
        mem = caller["memory"]
        return mem.read(caller, p, p + n)[4095]

    def ptr_u64(caller: wasmtime.Caller, p: int) -> None:
        caller["memory"].write(caller, _U64.pack(0x1122334455667788), p)

    linker.define_func("bench", "add", wasmtime.FuncType([i, i], [i]), add)
    linker.define_func("bench", "str16", wasmtime.FuncType([i, i], [i]), str16, True)
    linker.define_func("bench", "bytes4k", wasmtime.FuncType([i, i], [i]), bytes4k, True)
    linker.define_func("bench", "ptr_u64", wasmtime.FuncType([i], []), ptr_u64, True)
    store = wasmtime.Store(eng)
    inst = linker.instantiate(store, module)
    exports = inst.exports(store)
    funcs = {c: exports[c] for c in CASES}
    return _raw_caller(store, funcs, [])


def wasmer_hand() -> Callable[[str, int], int]:
    """The four functions hand-written as ``wasmer.Function`` closures."""
    import wasmer

    from funk.backends.wasmer import store as thread_store

    s = thread_store()
    module = wasmer.Module(s, funk.wasm_input.to_wasm_bytes(GUEST))
    state: dict[str, memoryview] = {}
    host = BenchHost()
    add = host.add  # no glue needed: the bound method is the host function
    h_str16, h_bytes4k = host.str16, host.bytes4k

    def str16(p: int, n: int) -> int:
        mem = state["mem"]
        p &= 0xFFFFFFFF
        n &= 0xFFFFFFFF
        if p + n > len(mem):
            raise _Trap("out of bounds")
        return h_str16(str(mem[p:p + n], "utf-8"))

    def bytes4k(p: int, n: int) -> int:
        mem = state["rmem"]
        p &= 0xFFFFFFFF
        n &= 0xFFFFFFFF
        if p + n > len(mem):
            raise _Trap("out of bounds")
        return h_bytes4k(mem[p:p + n])

    def ptr_u64(p: int) -> None:
        mem = state["mem"]
        p &= 0xFFFFFFFF
        if p + 8 > len(mem):
            raise _Trap("out of bounds")
        _U64.pack_into(mem, p, 0x1122334455667788)

    I32 = wasmer.Type.I32
    imports = wasmer.ImportObject()
    imports.register("bench", {
        "add": wasmer.Function(s, add, wasmer.FunctionType([I32, I32], [I32])),
        "str16": wasmer.Function(s, str16, wasmer.FunctionType([I32, I32], [I32])),
        "bytes4k": wasmer.Function(s, bytes4k, wasmer.FunctionType([I32, I32], [I32])),
        "ptr_u64": wasmer.Function(s, ptr_u64, wasmer.FunctionType([I32], [])),
    })
    inst = wasmer.Instance(module, imports)
    state["mem"] = memoryview(inst.exports.memory.buffer)
    state["rmem"] = state["mem"].toreadonly()
    funcs = {c: getattr(inst.exports, c) for c in CASES}
    return lambda case, n: funcs[case](n)


def funk_variant(backend: str) -> Callable[[str, int], int]:
    """The funk-defined host functions on ``backend``."""
    inst = funk.instantiate(GUEST, [BenchHost()], backend=backend)
    exports = {c: inst.exports[c] for c in CASES}
    return lambda case, n: exports[case](n)


def _per_call(call: Callable[[str, int], int], case: str, n: int) -> float:
    start = time.perf_counter()
    call(case, n)
    return (time.perf_counter() - start) / n


def measure(variants: dict[str, Callable[[str, int], int]], calls: int,
            rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per case, per variant: the per-call times of each round (interleaved)."""
    out: dict[str, dict[str, list[float]]] = {c: {v: [] for v in variants} for c in CASES}
    for call in variants.values():  # warm-up
        for case in CASES:
            call(case, 200)
    for _ in range(rounds):
        for case in CASES:
            for name, call in variants.items():
                n = calls if name != "define_func" else max(calls // 10, 100)
                out[case][name].append(_per_call(call, case, n))
    return out


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def report(engine: str, times: dict[str, dict[str, list[float]]]) -> list[tuple[str, float,
                                                                                  float]]:
    """Print one engine's table; return (case, funk/hand, define_func/funk)."""
    rows = []
    print(f"\n== {engine} ==")
    header = f"{'case':10} {'funk ns':>9} {'hand ns':>9}"
    if "define_func" in times[CASES[0]]:
        header += f" {'define_func ns':>15}"
    header += f" {'funk/hand':>10}"
    if "define_func" in times[CASES[0]]:
        header += f" {'define_func/funk':>17}"
    print(header)
    for case in CASES:
        t = times[case]
        fk, hd = statistics.median(t["funk"]), statistics.median(t["hand"])
        r_hand = _ratio(t["funk"], t["hand"])
        line = f"{case:10} {fk * 1e9:9.0f} {hd * 1e9:9.0f}"
        r_df = float("nan")
        if "define_func" in t:
            line += f" {statistics.median(t['define_func']) * 1e9:15.0f}"
        line += f" {r_hand:10.2f}"
        if "define_func" in t:
            r_df = _ratio(t["define_func"], t["funk"])
            line += f" {r_df:17.1f}"
        print(line)
        rows.append((case, r_hand, r_df))
    return rows


def main() -> int:
    """Run the benchmark and print the tables and target verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000, help="host calls per measurement")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds")
    args = parser.parse_args()
    results = {}
    results["wasmtime"] = report("wasmtime", measure(
        {"funk": funk_variant("wasmtime"), "hand": wasmtime_hand(),
         "define_func": wasmtime_define_func()}, args.calls, args.rounds))
    results["wasmer"] = report("wasmer", measure(
        {"funk": funk_variant("wasmer"), "hand": wasmer_hand()}, args.calls, args.rounds))
    print("\ntargets: funk/hand <= 1.3 on each engine; define_func/funk >= 8 on wasmtime")
    for engine, rows in results.items():
        for case, r_hand, r_df in rows:
            marks = [f"funk/hand {r_hand:.2f} {'ok' if r_hand <= 1.3 else 'MISSED'}"]
            if r_df == r_df:  # not NaN
                marks.append(f"define_func/funk {r_df:.1f} {'ok' if r_df >= 8 else 'MISSED'}")
            print(f"  {engine:9} {case:10} " + "; ".join(marks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
