"""Many threads, one compiled module: instances per thread, at the same time.

``funk.compile`` runs once per engine; 8 threads each instantiate it with
their own ``TestHost`` and hammer host functions (Str, Bytes, MutBytes,
IoSlices, out-pointers) with thread-specific data, released together by a
``threading.Barrier``.  Traps raised concurrently must reach their own
thread's caller with their own message (wasmtime finds the calling instance
through a thread-local; both engines carry host exceptions per ``Caller``).
"""

from __future__ import annotations

import struct
import sys
import threading
import zlib
from collections.abc import Callable
from typing import Any

import pytest

import funk
from funk import Trap
from tests.hosts import TestHost

THREADS = 8
ROUNDS = 300

WAT = """(module
  (import "test" "count_a" (func $count_a (param i32 i32) (result i32)))
  (import "test" "checksum" (func $checksum (param i32 i32) (result i32)))
  (import "test" "upper" (func $upper (param i32 i32 i32 i32) (result i32)))
  (import "test" "gather" (func $gather (param i32 i32) (result i32)))
  (import "test" "divmod" (func $divmod (param i32 i32 i32 i32) (result i32)))
  (import "test" "make_stat" (func $make_stat (param i64 i32) (result i32)))
  (import "test" "trap" (func $trap (param i32 i32)))
  (import "test" "fail" (func $fail (param i32) (result i32)))
  (import "test" "add" (func $add (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "count_a") (param i32 i32) (result i32) (call $count_a (local.get 0) (local.get 1)))
  (func (export "checksum") (param i32 i32) (result i32)
    (call $checksum (local.get 0) (local.get 1)))
  (func (export "upper") (param i32 i32 i32 i32) (result i32)
    (call $upper (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "gather") (param i32 i32) (result i32) (call $gather (local.get 0) (local.get 1)))
  (func (export "divmod") (param i32 i32 i32 i32) (result i32)
    (call $divmod (local.get 0) (local.get 1) (local.get 2) (local.get 3)))
  (func (export "make_stat") (param i64 i32) (result i32)
    (call $make_stat (local.get 0) (local.get 1)))
  (func (export "trap") (param i32 i32) (call $trap (local.get 0) (local.get 1)))
  (func (export "fail") (param i32) (result i32) (call $fail (local.get 0)))
  ;; a guest loop making many host calls per export call
  (func (export "count_loop") (param $p i32) (param $n i32) (param $times i32) (result i32)
    (local $sum i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $times)))
        (local.set $sum (i32.add (local.get $sum) (call $count_a (local.get $p) (local.get $n))))
        (local.set $times (i32.sub (local.get $times) (i32.const 1)))
        (br $again)))
    (local.get $sum))
  ;; a host trap deep inside guest code, after other host calls
  (func (export "add_then_trap") (param $p i32) (param $n i32) (result i32)
    (drop (call $add (i32.const 1) (i32.const 2)))
    (call $trap (local.get $p) (local.get $n))
    (i32.const 99)))
"""


def _run_threads(target: Callable[[int], Any]) -> list[Any]:
    """Run ``target(i)`` in THREADS threads released together; re-raise failures."""
    barrier = threading.Barrier(THREADS)
    results: dict[int, Any] = {}
    errors: dict[int, BaseException] = {}

    def main(i: int) -> None:
        try:
            barrier.wait(timeout=60)
            results[i] = target(i)
        except BaseException as exc:  # noqa: B036 - reported below
            errors[i] = exc

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # switch threads as often as possible
    try:
        threads = [threading.Thread(target=main, args=(i,)) for i in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not any(t.is_alive() for t in threads), "a thread hung"
    finally:
        sys.setswitchinterval(old)
    if errors:
        i, exc = sorted(errors.items())[0]
        raise AssertionError(f"thread {i} failed ({len(errors)} threads failed): {exc!r}") from exc
    return [results[i] for i in range(THREADS)]


def test_concurrent_instances_of_one_module(backend: str) -> None:
    module = funk.compile(WAT, backend)

    def work(i: int) -> int:
        host = TestHost()
        inst = module.instantiate([host])
        ex, mem = inst.exports, inst.memory
        text = ("a" * (i + 1) + "b" * 3) * 5  # a different count per thread
        data = text.encode()
        mem.write(100, data)
        calls = 0
        for r in range(ROUNDS):
            assert ex.count_a(100, len(data)) == 5 * (i + 1)
            assert host.seen["str"] == text
            blob = bytes([i, r & 0xFF]) * (8 + i)
            mem.write(2000, blob)
            assert ex.checksum(2000, len(blob)) & 0xFFFFFFFF == zlib.crc32(blob)
            a, b = 1000 * (i + 1) + r, i + 2
            assert ex.divmod(a, b, 3000, 3004) == 0
            assert mem.unpack("<II", 3000) == (a // b, a % b)
            assert ex.make_stat(i * 1000 + r, 3100) == 0
            assert struct.unpack_from("<Q", mem.read(3108, 8))[0] == i * 1000 + r
            assert ex.upper(100, len(data), 4000, 64) == len(data)
            assert mem.read(4000, len(data)) == text.upper().encode()
            mem.write(5000, struct.pack("<IIII", 100, i + 1, 2000, 2))
            assert ex.gather(5000, 2) == i + 3
            assert host.seen["gather"] == b"a" * (i + 1) + bytes([i, r & 0xFF])
            calls += 7
        # a guest loop: many host calls inside one export call
        assert ex.count_loop(100, len(data), 200) == 200 * 5 * (i + 1)
        return calls + 200

    results = _run_threads(work)
    assert results == [ROUNDS * 7 + 200] * THREADS


def test_concurrent_traps_reach_their_own_caller(backend: str) -> None:
    module = funk.compile(WAT, backend)

    def work(i: int) -> int:
        inst = module.instantiate([TestHost()])
        ex, mem = inst.exports, inst.memory
        message = f"thread {i}".encode()
        mem.write(64, message)
        seen = 0
        for r in range(ROUNDS):
            with pytest.raises(Trap) as info:
                ex.trap(64, len(message))
            trap = info.value
            assert trap.message == f"thread {i}"
            assert trap.function == "test.trap"
            # a non-Trap exception becomes a Trap caused by it
            with pytest.raises(Trap) as info:
                ex.fail(i * 1000 + r)
            assert info.value.message == (f"test.fail: host function raised ValueError: "
                                          f"failure {i * 1000 + r}")
            assert isinstance(info.value.__cause__, ValueError)
            assert str(info.value.__cause__) == f"failure {i * 1000 + r}"
            # a trap after other host calls inside the guest
            with pytest.raises(Trap) as info:
                ex.add_then_trap(64, len(message))
            assert info.value.message == f"thread {i}"
            # bounds traps name this thread's own arguments
            with pytest.raises(Trap) as info:
                ex.count_a(70000 + i, r)
            assert info.value.message.startswith(
                f"test.count_a: parameter 'words': range [0x{70000 + i:x}, "
                f"0x{70000 + i + r:x})")
            # and the instance still works between traps
            assert ex.count_a(64, len(message)) == 1
            assert inst.caller.pending is None
            seen += 1
        return seen

    assert _run_threads(work) == [ROUNDS] * THREADS


def test_traps_and_successes_interleaved_across_threads(backend: str) -> None:
    """Half the threads trap on every call while the others must never see a
    trap: a pending exception must not leak into another thread's call."""
    module = funk.compile(WAT, backend)

    def work(i: int) -> int:
        inst = module.instantiate([TestHost()])
        ex, mem = inst.exports, inst.memory
        mem.write(0, b"banana")
        message = f"thread {i} traps".encode()
        mem.write(64, message)
        ok = 0
        for _ in range(ROUNDS * 2):
            if i % 2:
                with pytest.raises(Trap, match=f"^thread {i} traps$"):
                    ex.trap(64, len(message))
            else:
                assert ex.count_a(0, 6) == 3
                ok += 1
        return ok

    results = _run_threads(work)
    assert results == [ROUNDS * 2 if i % 2 == 0 else 0 for i in range(THREADS)]


def test_instances_from_threads_are_independent(backend: str) -> None:
    """Instances created concurrently have their own memory and handles."""
    module = funk.compile(WAT, backend)
    made: dict[int, Any] = {}

    def work(i: int) -> bytes:
        inst = module.instantiate([TestHost()])
        made[i] = inst
        inst.memory.write(0, bytes([i]) * 32)
        barrier_value = inst.exports.checksum(0, 32) & 0xFFFFFFFF
        assert barrier_value == zlib.crc32(bytes([i]) * 32)
        return inst.memory.read(0, 32)

    results = _run_threads(work)
    assert results == [bytes([i]) * 32 for i in range(THREADS)]
    assert len({id(inst.caller) for inst in made.values()}) == THREADS


RELEASE_SCRIPT = """
import gc, sys, threading
import funk
backend = sys.argv[1]
WAT = '(module (memory (export "memory") 1) (func (export "f")))'

# 1. a module compiled here, instantiated in workers that leave garbage cycles
#    behind; the workers end, then everything is collected and dropped here
module = funk.compile(WAT, backend=backend)
def work():
    inst = module.instantiate([])
    inst.exports.f()
    inst.memory.read(0, 4)
    class Cycle: pass
    c = Cycle(); c.me = c; c.inst = inst; c.export = inst.exports.f; c.memory = inst.memory
threads = [threading.Thread(target=work) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
gc.collect()
del module
gc.collect()

# 2. garbage of this thread collected by another thread's collection
inst = funk.instantiate(WAT, [], backend=backend)
class Cycle: pass
c = Cycle(); c.me = c; c.inst = inst; c.export = inst.exports.f; c.memory = inst.memory
del c, inst
t = threading.Thread(target=gc.collect); t.start(); t.join()

# 3. this thread keeps working afterwards (and releases what was handed back)
funk.instantiate(WAT, [], backend=backend).exports.f()
print("ok")
"""


def test_engine_objects_released_by_other_threads(backend: str) -> None:
    """Garbage collection may run in any thread; engine objects must not care.

    wasmer-python panics when one of its objects is released in a thread
    other than its creator's; funk hands such objects back to their owner
    thread.  Checked in a fresh interpreter, including its shutdown.
    """
    import subprocess

    proc = subprocess.run([sys.executable, "-c", RELEASE_SCRIPT, backend], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "ok\n"
    assert "panicked" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
