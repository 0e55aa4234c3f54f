"""Busy processes: killing them and not starving the others (spec sections 7.3, 7.5, 7.6),
both engines.

A *spinner* loops in pure wasm (``(loop $l (br $l))``: no host call of its
own).  The fuel checks injected into every module reach the host at least
every 100,000 fuel, which is what lets the runtime

* kill it: ``Runtime.kill`` ends it as KILLED promptly (asserted within a
  generous 2 s: a liveness bound, not a benchmark; ``bench/limits.py`` has
  the figures), its links hear of it as the spec says (a signal message
  with the tag where ``die_when_link_dies`` is off, death where it is on,
  even for a linked spinner), several at once too;
* keep other processes running next to it: a ping-pong between two wasm
  processes, and one between a native Python process and a wasm process,
  complete their round trips while a spinner runs, and ``rt.spawn`` still
  starts new processes.  On wasmer, which keeps the interpreter lock while
  wasm runs, only the checks' visits to the host let other threads run at
  all: without them these tests would hang.

Every test runs in a ``lab`` (``tests/lunatic_support.py``), whose teardown
shuts the runtime down (killing every process, spinners included) and fails
if anything is still running; nothing here relies on a spinner ending by
itself.
"""

from __future__ import annotations

import threading
import time

import pytest

from lunatic_api import DataMessage, Ending, NativeProcess, Process, SignalMessage
from lunatic_api.environment import LunaticModule
from tests.lunatic_support import (  # noqa: F401
    Lab,
    Strings,
    assert_returned,
    lab_fixture,
    wasm_of,
)

KILL_BOUND = 2.0
"""Seconds a killed spinner may take to end (generous: the runtime needs well under 1 ms
of wasm; a loaded CI machine may not schedule the thread for a while)."""

DEADLINE = 20.0
"""Seconds the round trips next to a spinner may take (normally well under one)."""

ROUNDS = 300
"""Round trips of each ping-pong."""

PING_TAG = 7

GUEST = f"""
;; report 1 to the collector, then spin forever without calling the host
(func (export "spin")
  (call $setup)
  (call $rec (i64.const 1))
  (call $flush)
  (loop $l (br $l)))

;; n times: receive a message, send an empty one with its tag to the process in it
(func (export "pong") (param $n i32) (local $peer i64)
  (loop $l
    (if (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (then unreachable))
    (local.set $peer (call $lunatic::message.take_process (i64.const 0)))
    (call $lunatic::message.create_data (call $lunatic::message.get_tag) (i64.const 0))
    (call $lunatic::message.send (local.get $peer))
    (call $lunatic::process.drop_process (local.get $peer))
    (local.set $n (i32.sub (local.get $n) (i32.const 1)))
    (br_if $l (local.get $n))))

;; n round trips with pong (handle 1): send itself, wait for the reply; report n
(func (export "ping") (param $n i32) (local $pong i64) (local $i i32)
  (call $setup)
  (local.set $pong (call $handle (i32.const 1)))
  (loop $l
    (call $lunatic::message.create_data (i64.const {PING_TAG}) (i64.const 0))
    (drop (call $lunatic::message.push_process (call $lunatic::process.this)))
    (call $lunatic::message.send (local.get $pong))
    (if (call $lunatic::message.receive (i64.const {PING_TAG}) (i32.const 0)) (then unreachable))
    (local.set $i (i32.add (local.get $i) (i32.const 1)))
    (br_if $l (i32.lt_u (local.get $i) (local.get $n))))
  (call $rec32 (local.get $i))
  (call $flush))

;; wait for any message (a data message returns; a kill or link death ends it)
(func (export "wait")
  (drop (call $lunatic::message.receive (i64.const 0) (i32.const 0))))

(func (export "done"))
"""


def start_spinners(lab: Lab, module: LunaticModule, count: int = 1,
                   parent: Process | None = None, link_tag: int = 0) -> list[Process]:
    """``count`` spinners, returned once each has reported that it is about to spin."""
    spinners = [lab.spawn(module, "spin", parent=parent, link_tag=link_tag)
                for _ in range(count)]
    seen = len(lab.reports)
    lab.wait_reports(seen + count)
    assert all(s.alive for s in spinners)
    return spinners


def kill_and_time(lab: Lab, process: Process) -> float:
    """Kill ``process``; seconds until it ended (a test failure if not within KILL_BOUND)."""
    start = time.monotonic()
    assert lab.runtime.kill(process, "spinner killed")
    outcome = process.join(KILL_BOUND)
    elapsed = time.monotonic() - start
    assert outcome is not None, f"a killed spinner still runs after {KILL_BOUND} s"
    assert outcome.ending is Ending.KILLED and outcome.message == "spinner killed", outcome
    return elapsed


# ---------------------------------------------------------------------------
# kill


def test_kill_ends_a_spinner_and_its_link_hears_of_it(lab: Lab) -> None:
    """A spinner linked to the collector (flag off, tag 3) is killed from Python: it ends
    as KILLED within the bound and the collector gets a signal message with tag 3."""
    module = lab.module(GUEST)
    (spinner,) = start_spinners(lab, module, parent=lab.collector, link_tag=3)
    time.sleep(0.05)  # well into its loop
    assert spinner.alive
    assert kill_and_time(lab, spinner) < KILL_BOUND
    (signal,) = lab.wait_messages(1)
    assert isinstance(signal, SignalMessage) and signal.tag == 3


def test_killed_spinner_takes_linked_processes_with_it(lab: Lab) -> None:
    """With ``die_when_link_dies`` on (the default), what is linked to a killed spinner
    dies too: a native process, a wasm process waiting in ``receive``, and a second
    spinner (its child), which is itself in pure wasm."""
    module = lab.module(GUEST)
    (spinner,) = start_spinners(lab, module)
    (child,) = start_spinners(lab, module, parent=spinner, link_tag=4)
    waiter = lab.spawn(module, "wait", setup=False)
    waiter.link(spinner, 5)
    linked = threading.Event()

    def native(proc: NativeProcess) -> None:
        proc.link(spinner, 6)
        linked.set()
        proc.receive()

    native_process = lab.spawn_native(native)
    assert linked.wait(KILL_BOUND)
    assert len(spinner.links()) == 3
    kill_and_time(lab, spinner)
    for process in (child, waiter, native_process):
        outcome = process.join(KILL_BOUND)
        assert outcome is not None and outcome.ending is Ending.KILLED, (process, outcome)


def test_killing_a_linked_child_spinner_kills_the_spinning_parent(lab: Lab) -> None:
    """The other direction: the child dies, the spinning parent (flag on) follows."""
    module = lab.module(GUEST)
    (parent,) = start_spinners(lab, module)
    (child,) = start_spinners(lab, module, parent=parent, link_tag=4)
    kill_and_time(lab, child)
    outcome = parent.join(KILL_BOUND)
    assert outcome is not None and outcome.ending is Ending.KILLED


def test_several_spinners_killed_at_once(lab: Lab) -> None:
    """Four spinners on two cores, killed together: all end as KILLED within the bound."""
    module = lab.module(GUEST)
    spinners = start_spinners(lab, module, count=4)
    start = time.monotonic()
    for spinner in spinners:
        assert lab.runtime.kill(spinner)
    for spinner in spinners:
        outcome = spinner.join(max(0.0, start + KILL_BOUND - time.monotonic()))
        assert outcome is not None and outcome.ending is Ending.KILLED, spinner
    assert not lab.runtime.kill(spinners[0])  # already ended


START_SPIN = '(module (func $spin (loop $l (br $l))) (start $spin) (func (export "main")))'
"""A module whose start function spins: ``spawn`` of it never returns by itself."""

OUT = 0x800
EMBED = 0x1000


def test_killing_the_spawner_stops_a_start_function_that_spins(lab: Lab) -> None:
    """A process spawns a module whose start function spins forever (no fuel limit).
    The child is not a process yet (it is being instantiated), so nothing else could
    kill it: killing the spawner stops the start function too, the spawner ends as
    KILLED within the bound and no child is left behind."""
    spin = wasm_of(START_SPIN)
    strings = Strings(0x400)
    module = lab.module(f"""
      (func (export "spawner") (local $m i64)
        (call $setup)
        (if (call $lunatic::process.add_module (call $lunatic::process.this_env)
              (i32.const {EMBED}) (i32.const {len(spin)}) (i32.const {OUT}))
          (then unreachable))
        (local.set $m (i64.load (i32.const {OUT})))
        (call $rec (i64.const 1))
        (call $flush)
        (drop (call $lunatic::process.spawn (i64.const 0) (local.get $m)
          {strings.arg("main")} (i32.const 0) (i32.const 0) (i32.const {OUT}))))""",
                        data=strings.data + [(EMBED, spin)])
    before = set(lab.runtime.processes())
    seen = len(lab.reports)
    spawner = lab.spawn(module, "spawner")
    lab.wait_reports(seen + 1)
    time.sleep(0.05)  # into spawn (a kill before it would be noticed just as well)
    kill_and_time(lab, spawner)
    assert set(lab.runtime.processes()) == before


# ---------------------------------------------------------------------------
# preemption: the others keep running


@pytest.mark.parametrize("spinner_count", [1, 2])
def test_ping_pongs_complete_next_to_spinners(lab: Lab, spinner_count: int) -> None:
    """While spinners run (one, or as many as the cores), a wasm-wasm ping-pong and a
    native-wasm ping-pong both complete their round trips within the deadline; the
    spinners are still spinning afterwards."""
    module = lab.module(GUEST)
    spinners = start_spinners(lab, module, count=spinner_count)
    pong = lab.spawn(module, "pong", [ROUNDS], setup=False)
    native_pong = lab.spawn(module, "pong", [ROUNDS], setup=False)
    replies: list[int] = []

    def native_ping(proc: NativeProcess) -> None:
        for k in range(ROUNDS):
            reply = proc.request(native_pong, b"", PING_TAG, [proc.process], timeout=DEADLINE)
            assert isinstance(reply, DataMessage) and reply.tag == PING_TAG, k
            replies.append(k)

    start = time.monotonic()
    ping = lab.spawn(module, "ping", [ROUNDS], handles=[pong])
    native = lab.spawn_native(native_ping)
    for process in (ping, pong, native, native_pong):
        outcome = process.join(max(0.0, start + DEADLINE - time.monotonic()))
        assert outcome is not None, f"{process} did not finish within {DEADLINE} s"
        assert_returned(outcome)
    assert lab.wait_reports(spinner_count + 1)[-1] == [ROUNDS]
    assert replies == list(range(ROUNDS))
    assert all(s.alive for s in spinners)


def test_spawning_goes_on_next_to_a_spinner(lab: Lab) -> None:
    """``rt.spawn`` keeps starting processes (which run and return) while a spinner
    runs."""
    module = lab.module(GUEST)
    (spinner,) = start_spinners(lab, module)
    start = time.monotonic()
    started = [lab.runtime.spawn(module, "done") for _ in range(20)]
    for process in started:
        outcome = process.join(max(0.0, start + DEADLINE - time.monotonic()))
        assert outcome is not None and outcome.ending is Ending.RETURNED, process
    assert spinner.alive
