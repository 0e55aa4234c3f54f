"""The thread scheduler: pooled threads and the CPU hint of a hand-over.

A process handed to a pooled thread starts on its spawner's CPU (the hint)
and is free to use every CPU of the scheduler again once it blocks, runs for
a whole fuel slice, or ends (``lunatic_api.scheduler``).  The hint needs
Linux's ``sched_setaffinity`` and two CPUs; these tests read the affinity the
kernel reports for the threads involved.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from lunatic_api import Ending, Runtime
from lunatic_api.scheduler import ThreadScheduler, release_cpu_hint
from tests.lunatic_support import wasm_of

pytestmark = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="the CPU hint needs sched_setaffinity and at least two CPUs")

GUEST = r"""
(module
  (import "lunatic::message" "receive" (func $receive (param i64 i32) (result i32)))
  (import "lunatic::process" "sleep_ms" (func $sleep_ms (param i64)))
  (import "lunatic::networking" "tcp_bind"
    (func $tcp_bind (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_accept"
    (func $tcp_accept (param i64 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "\7f\00\00\01")  ;; 127.0.0.1
  (func (export "noop"))
  (func (export "idle") (drop (call $receive (i64.const 0) (i32.const 0))))
  (func (export "nap") (call $sleep_ms (i64.const 60000)))
  (func (export "spin") (loop $l (br $l)))
  ;; listen on 127.0.0.1 (any port) and wait for a connection that never comes
  (func (export "listen")
    (if (call $tcp_bind (i32.const 4) (i32.const 0) (i32.const 0) (i32.const 0)
                        (i32.const 0) (i32.const 16))
      (then unreachable))
    (drop (call $tcp_accept (i64.load (i32.const 16)) (i32.const 24) (i32.const 32))))
)
"""


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``condition`` until it holds; whether it did within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def warm(scheduler: ThreadScheduler) -> None:
    """Leave one idle pooled thread, so the next ``start`` is a hand-over."""
    done = threading.Event()
    scheduler.start(done.set, "warm-up")
    assert done.wait(5)
    assert wait_until(lambda: scheduler.idle_threads >= 1)


def thread_named(name: str) -> threading.Thread:
    found: list[threading.Thread] = []
    assert wait_until(lambda: bool(found.extend(t for t in threading.enumerate()
                                                if t.name == name) or found))
    return found[0]


@pytest.fixture
def scheduler() -> Iterator[ThreadScheduler]:
    """A scheduler with the hint on and one idle pooled thread."""
    pool = ThreadScheduler()
    try:
        assert pool.cpus == frozenset(os.sched_getaffinity(0))
        warm(pool)
        yield pool
    finally:
        pool.shutdown()


def test_handover_pins_the_thread_until_released(scheduler: ThreadScheduler) -> None:
    seen: dict[str, set[int]] = {}
    done = threading.Event()

    def body() -> None:
        seen["start"] = os.sched_getaffinity(0)
        release_cpu_hint()
        seen["released"] = os.sched_getaffinity(0)
        release_cpu_hint()  # a second release changes nothing
        seen["again"] = os.sched_getaffinity(0)
        done.set()

    scheduler.start(body, "pinned")
    assert done.wait(5)
    assert len(seen["start"]) == 1 and seen["start"] <= scheduler.cpus
    assert seen["released"] == seen["again"] == scheduler.cpus


def test_thread_is_released_when_its_body_ends(scheduler: ThreadScheduler) -> None:
    tid: list[int] = []
    scheduler.start(lambda: tid.append(threading.get_native_id()), "ends")
    assert wait_until(lambda: bool(tid) and scheduler.idle_threads >= 1)
    assert os.sched_getaffinity(tid[0]) == scheduler.cpus


def test_new_thread_started_by_a_pinned_thread_is_released(scheduler: ThreadScheduler) -> None:
    """A new thread inherits its creator's CPUs: one CPU, if the creator is pinned."""
    seen: dict[str, set[int]] = {}
    done = threading.Event()

    def child() -> None:
        seen["child start"] = os.sched_getaffinity(0)
        release_cpu_hint()
        seen["child released"] = os.sched_getaffinity(0)
        done.set()

    def parent() -> None:
        seen["parent"] = os.sched_getaffinity(0)
        scheduler.start(child, "child")  # no idle thread left: a new one

    scheduler.start(parent, "parent")
    assert done.wait(5)
    assert len(seen["parent"]) == 1
    assert seen["child start"] == seen["parent"]
    assert seen["child released"] == scheduler.cpus


def test_hint_off() -> None:
    scheduler = ThreadScheduler(cpu_hint=False)
    try:
        assert scheduler.cpus is None
        warm(scheduler)
        seen: list[set[int]] = []
        done = threading.Event()
        scheduler.start(lambda: (seen.append(os.sched_getaffinity(0)), done.set()), "free")
        assert done.wait(5)
        assert seen == [os.sched_getaffinity(0)]
    finally:
        scheduler.shutdown()


@pytest.fixture
def runtime(backend: str) -> Iterator[Runtime]:
    rt = Runtime(backend)
    try:
        yield rt
    finally:
        assert rt.shutdown(10) == []


@pytest.mark.parametrize("function", ["idle", "nap", "listen", "spin"])
def test_process_thread_is_released_when_it_blocks_or_keeps_running(
        runtime: Runtime, function: str) -> None:
    """Blocked in ``receive``, ``sleep_ms`` or ``tcp_accept``, or busy past a fuel
    slice: any CPU again."""
    scheduler = runtime.scheduler
    assert isinstance(scheduler, ThreadScheduler)
    module = runtime.environment().add_module(wasm_of(GUEST), "guest")
    assert runtime.spawn(module, "noop").join(10) is not None
    assert wait_until(lambda: scheduler.idle_threads >= 1)
    process = runtime.spawn(module, function)
    tid = thread_named(f"lunatic {function}").native_id
    assert tid is not None
    assert wait_until(lambda: os.sched_getaffinity(tid) == scheduler.cpus), \
        f"{function}: still on CPUs {os.sched_getaffinity(tid)}"
    assert process.alive
    runtime.kill(process)
    outcome = process.join(10)
    assert outcome is not None and outcome.ending is Ending.KILLED
