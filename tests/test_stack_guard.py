"""``funk.stack``: reading the native stack, and the wasmer backend's stack reserve.

wasmer lets wasm use the whole thread stack; a host call made near its end
would overflow inside Python frames, which wasmer unwinds without running
them (locks stay held).  A host class that declares ``__funk_stack_reserve__``
gets its calls refused with a trap instead when less than that is left.
"""

from __future__ import annotations

import threading

import pytest

import funk
from funk.stack import STACK_RESERVE_ATTR, remaining, stack_pointer, stack_reserve_of
from funk.types import i32
from tests.conftest import selected_backends

RESERVE = 64 << 10


def test_remaining_shrinks_with_depth_and_fits_the_thread_stack() -> None:
    """``remaining()`` is positive, smaller one call deeper, and within a thread's stack
    (the size asked for; 8 MiB if another thread changed the process-wide setting first)."""
    top = remaining()
    if top is None:
        pytest.skip("the stack pointer cannot be read on this machine")

    def deeper(n: int) -> int:
        left = remaining()
        assert left is not None
        return deeper(n - 1) if n else left

    assert 0 < deeper(20) < top
    sp = stack_pointer()
    assert sp is not None and sp > 0
    seen: list[int | None] = []
    old = threading.stack_size(1 << 20)
    try:
        thread = threading.Thread(target=lambda: seen.append(remaining()))
        thread.start()
        thread.join()
    finally:
        threading.stack_size(old)
    (left,) = seen
    assert left is not None and 0 < left <= 8 << 20


def test_stack_reserve_must_be_a_byte_count() -> None:
    class Good:
        __funk_stack_reserve__ = 4096

    class Bad:
        __funk_stack_reserve__ = "lots"

    assert stack_reserve_of(Good) == 4096
    assert stack_reserve_of(object) == 0
    with pytest.raises(TypeError, match=STACK_RESERVE_ATTR):
        stack_reserve_of(Bad)


@funk.host_functions(namespace="env")
class Guarded:
    """A host function that must not run short of native stack."""

    __funk_stack_reserve__ = RESERVE

    def __init__(self) -> None:
        self.calls = 0

    def touch(self, x: i32) -> i32:
        self.calls += 1
        return x


RECURSE = """
(module
  (import "env" "touch" (func $touch (param i32) (result i32)))
  (func $down (export "down") (param $n i32)
    (if (local.get $n)
      (then (drop (call $touch (local.get $n)))
            (call $down (i32.sub (local.get $n) (i32.const 1)))))))
"""


@pytest.mark.skipif("wasmer" not in selected_backends(), reason="wasmer is not tested")
def test_wasmer_refuses_a_guarded_call_near_the_end_of_the_stack() -> None:
    """Recursing without end, calling the guarded host function at every level, ends in a
    trap naming the function and the reserve, in a thread with a small stack; the same
    instance works afterwards (nothing was left held)."""
    if remaining() is None:
        pytest.skip("the stack pointer cannot be read on this machine")
    outcome: dict[str, object] = {}

    def run() -> None:
        host = Guarded()
        instance = funk.instantiate(RECURSE, [host], backend="wasmer")
        try:
            instance.exports.down(-1)
        except funk.Trap as exc:
            outcome["trap"] = exc
        outcome["calls"] = host.calls
        instance.exports.down(10)
        outcome["after"] = host.calls
        instance.close()

    old = threading.stack_size(1 << 20)
    try:
        thread = threading.Thread(target=run)
        thread.start()
        thread.join(60)
    finally:
        threading.stack_size(old)
    trap = outcome["trap"]
    assert isinstance(trap, funk.Trap)
    assert trap.function == "env.touch"
    assert "call stack exhausted" in trap.message and f"needs {RESERVE:,}" in trap.message
    calls = outcome["calls"]
    assert isinstance(calls, int) and calls > 1000
    assert outcome["after"] == calls + 10
