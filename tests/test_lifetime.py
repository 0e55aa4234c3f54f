"""Instances are freed when dropped, on both engines, and views die with them.

wasmer's host functions live in native code that holds funk's wrappers; any
strong reference from the wrappers back to the instance would form a cycle
Python cannot collect (and a collection on another thread would touch
wasmer's thread-bound objects).  These tests pin the no-cycle design.
"""

from __future__ import annotations

import gc
import weakref

import pytest

import funk
from funk import Trap
from tests.hosts import TestHost

GUEST = """
(module
  (import "test" "add" (func $add (param i32 i32) (result i32)))
  (import "test" "keep_view" (func $keep (param i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 8) "secret")
  (func (export "run") (result i32) (call $add (i32.const 1) (i32.const 2)))
  (func (export "keep") (call $keep (i32.const 8) (i32.const 6))))
"""


def test_dropped_instances_free_their_hosts_without_gc(backend: str) -> None:
    module = funk.compile(GUEST, backend)
    refs = []
    gc.disable()
    try:
        for _ in range(50):
            host = TestHost()
            refs.append(weakref.ref(host))
            inst = module.instantiate([host])
            assert inst.exports.run() == 3
            del inst, host
        # freed by reference counting alone, in this thread
        assert sum(r() is not None for r in refs) == 0
    finally:
        gc.enable()


def test_exports_keep_their_instance_alive(backend: str) -> None:
    run = funk.instantiate(GUEST, [TestHost()], backend=backend).exports.run
    assert run() == 3  # the export object holds the instance
    exports = funk.instantiate(GUEST, [TestHost()], backend=backend).exports
    assert exports.run() == 3


def test_memory_and_views_are_dead_after_drop(backend: str) -> None:
    host = TestHost()
    inst = funk.instantiate(GUEST, [host], backend=backend)
    memory = inst.memory
    inst.exports.keep()
    kept = host.seen["kept"]
    with pytest.raises(ValueError):  # released when the host call returned
        bytes(kept)
    del inst
    assert memory.size == 0
    with pytest.raises(Trap):
        memory.read(8, 6)


def test_close_drops_resources_and_traps_later_calls(backend: str) -> None:
    inst = funk.instantiate(GUEST, [TestHost()], backend=backend)
    dropped = []
    table = inst.resources.table("thing")
    table.on_drop = dropped.append
    table.add("a")
    table.add("b")
    inst.close()
    assert dropped == ["a", "b"]
    with pytest.raises(Trap):
        inst.exports.run()
