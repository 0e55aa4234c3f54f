"""Concurrency tests for the Lunatic runtime, on both engines.

* Cancellation safety (spec 4.12, 4.13, 7.2): a ``receive`` or
  ``send_receive_skip_search`` whose timeout runs out just as a message
  arrives never loses or duplicates it.  A wasm process waits with a small
  timeout, round after round, while another process (native Python or wasm)
  answers at about the moment of the timeout; every reply carries a sequence
  number, and the guest reports everything it received plus everything left
  in its mailbox.  Fast variants run by default, long ones behind ``slow``.
* 1,000 wasm processes in a ring exchanging 100 messages each: every message
  arrives once, in order, nothing is left over.
* Selective receive under concurrency: messages from one sender arrive in the
  order sent, also when taken by tag out of a busy mailbox.
* Native Python processes and wasm processes exchanging messages both ways,
  registering and looking each other up, and MessagePack payloads carrying
  processes as resource indices (``lunatic_api.codec``).
"""

from __future__ import annotations

import itertools
import struct
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lunatic_api import (
    TIMEOUT,
    DataMessage,
    Ending,
    Environment,
    LunaticModule,
    NativeProcess,
    Process,
    Runtime,
    codec,
)
from tests.lunatic_wat import DATA_BASE, JOIN, STR_BASE, lunatic_module
from tests.lunatic_wat import Collector as BaseCollector

"""Upper bound (s) for a process expected to end: a hang fails instead of blocking CI."""

# tags used by the guests below
SETUP = 1
READY = 2
REPORT = 3
FINISH = 4
REPLY = 7
DRAIN = 9

RACE_WAT = lunatic_module(
    # The process under test.  mode 0: send READY(round) to the peer, then
    # receive(REPLY, timeout); mode 1: send_receive_skip_search(peer, timeout)
    # with a REPLY-tagged request.  Every reply received is recorded (its
    # sequence number, a u32, at DATA_BASE + 16 + 4*n).  After the rounds it
    # waits for DRAIN, takes every REPLY still queued (the peer sent DRAIN
    # after its last reply, so they are all queued by then), and sends the
    # collector one REPORT: u32 [got in rounds, timeouts, drained, n] + seqs.
    f"""
    (func (export "racer") (param $mode i32) (param $rounds i32) (param $timeout i32)
      (local $peer i64) (local $r i32) (local $res i32) (local $n i32)
      (local $got i32) (local $timeouts i32) (local $drained i32)
      (drop (call $lunatic::message.receive (i64.const {SETUP}) (i32.const 0)))
      (local.set $peer (call $lunatic::message.take_process (i64.const 0)))
      (block $rounds_done (loop $round
        (br_if $rounds_done (i32.ge_u (local.get $r) (local.get $rounds)))
        (if (i32.eqz (local.get $mode))
          (then
            (call $send2 (local.get $peer) (i64.const {READY}) (i64.extend_i32_u (local.get $r)) (i64.const 0))
            (local.set $res (call $lunatic::message.receive (i64.const {REPLY}) (local.get $timeout))))
          (else
            (call $lunatic::message.create_data (i64.const {REPLY}) (i64.const 16))
            (i64.store (i32.const 0) (i64.extend_i32_u (local.get $r)))
            (i64.store (i32.const 8) (i64.const 0))
            (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 16)))
            (local.set $res (call $lunatic::message.send_receive_skip_search (local.get $peer) (local.get $timeout)))))
        (if (i32.eqz (local.get $res))
          (then
            (call $read2)
            (i32.store (i32.add (i32.const {DATA_BASE + 16}) (i32.shl (local.get $n) (i32.const 2)))
                       (i32.wrap_i64 (call $arg_a)))
            (local.set $n (i32.add (local.get $n) (i32.const 1)))
            (local.set $got (i32.add (local.get $got) (i32.const 1))))
          (else
            (if (i32.ne (local.get $res) (i32.const {TIMEOUT})) (then unreachable))
            (local.set $timeouts (i32.add (local.get $timeouts) (i32.const 1)))))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $round)))
      (if (call $lunatic::message.receive (i64.const {DRAIN}) (i32.const 0)) (then unreachable))
      (block $empty (loop $drain
        (local.set $res (call $lunatic::message.receive (i64.const {REPLY}) (i32.const 1)))
        (br_if $empty (i32.eq (local.get $res) (i32.const {TIMEOUT})))
        (if (local.get $res) (then unreachable))
        (call $read2)
        (i32.store (i32.add (i32.const {DATA_BASE + 16}) (i32.shl (local.get $n) (i32.const 2)))
                   (i32.wrap_i64 (call $arg_a)))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (local.set $drained (i32.add (local.get $drained) (i32.const 1)))
        (br $drain)))
      (i32.store (i32.const {DATA_BASE}) (local.get $got))
      (i32.store (i32.const {DATA_BASE + 4}) (local.get $timeouts))
      (i32.store (i32.const {DATA_BASE + 8}) (local.get $drained))
      (i32.store (i32.const {DATA_BASE + 12}) (local.get $n))
      (call $lunatic::message.create_data (i64.const {REPORT}) (i64.const 0))
      (drop (call $lunatic::message.write_data (i32.const {DATA_BASE})
              (i32.add (i32.const 16) (i32.shl (local.get $n) (i32.const 2)))))
      (call $lunatic::message.send (call $collector)))
    """,
    # The answering side, in wasm: for each request (READY in mode 0, REPLY in
    # mode 1) sleep delay ms, then reply with the next sequence number; DRAIN
    # after the last one.  Requests are 16-byte messages; their payload is ignored.
    f"""
    (func (export "answerer") (param $mode i32) (param $rounds i32) (param $delay i32)
      (local $peer i64) (local $r i32) (local $want i64)
      (drop (call $lunatic::message.receive (i64.const {SETUP}) (i32.const 0)))
      (local.set $peer (call $lunatic::message.take_process (i64.const 0)))
      (local.set $want (select (i64.const {READY}) (i64.const {REPLY}) (i32.eqz (local.get $mode))))
      (block $done (loop $round
        (br_if $done (i32.ge_u (local.get $r) (local.get $rounds)))
        (if (call $lunatic::message.receive (local.get $want) (i32.const 0)) (then unreachable))
        (call $lunatic::process.sleep_ms (i64.extend_i32_u (local.get $delay)))
        (call $send2 (local.get $peer) (i64.const {REPLY}) (i64.extend_i32_u (local.get $r)) (i64.const 0))
        (local.set $r (i32.add (local.get $r) (i32.const 1)))
        (br $round)))
      (call $send2 (local.get $peer) (i64.const {DRAIN}) (i64.const 0) (i64.const 0)))
    """,
    pages=2,
)

RING_WAT = lunatic_module(
    # One ring member: SETUP brings the next process (resource 0).  Then, count
    # times: send (index, k) to the next, receive one message from the previous
    # and check it is (same sender as before, k).  Report (index | pred << 32,
    # ok | bad << 32) and wait for FINISH, so Python can look at the mailboxes.
    f"""
    (func (export "ring") (param $index i32) (param $count i32)
      (local $next i64) (local $k i32) (local $pred i64) (local $ok i64) (local $bad i64)
      (if (call $lunatic::message.receive (i64.const {SETUP}) (i32.const 0)) (then unreachable))
      (local.set $next (call $lunatic::message.take_process (i64.const 0)))
      (local.set $pred (i64.const -1))
      (block $done (loop $step
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (call $send2 (local.get $next) (i64.const {REPLY}) (i64.extend_i32_u (local.get $index))
                     (i64.extend_i32_u (local.get $k)))
        (if (call $lunatic::message.receive (i64.const {REPLY}) (i32.const 0)) (then unreachable))
        (call $read2)
        (if (i64.lt_s (local.get $pred) (i64.const 0)) (then (local.set $pred (call $arg_a))))
        (if (i32.and (i64.eq (call $arg_a) (local.get $pred))
                     (i64.eq (call $arg_b) (i64.extend_i32_u (local.get $k))))
          (then (local.set $ok (i64.add (local.get $ok) (i64.const 1))))
          (else (local.set $bad (i64.add (local.get $bad) (i64.const 1)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step)))
      (call $report (i64.const {REPORT})
        (i64.or (i64.extend_i32_u (local.get $index)) (i64.shl (local.get $pred) (i64.const 32)))
        (i64.or (local.get $ok) (i64.shl (local.get $bad) (i64.const 32))))
      (if (call $lunatic::message.receive (i64.const {FINISH}) (i32.const 0)) (then unreachable)))
    """,
)

ORDER_WAT = lunatic_module(
    # A sender: SETUP brings the receiver; send count messages tagged
    # index+1 with payload (index, k).
    f"""
    (func (export "seq_sender") (param $index i32) (param $count i32)
      (local $to i64) (local $k i32)
      (if (call $lunatic::message.receive (i64.const {SETUP}) (i32.const 0)) (then unreachable))
      (local.set $to (call $lunatic::message.take_process (i64.const 0)))
      (block $done (loop $step
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (call $send2 (local.get $to) (i64.extend_i32_u (i32.add (local.get $index) (i32.const 1)))
                     (i64.extend_i32_u (local.get $index)) (i64.extend_i32_u (local.get $k)))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step))))
    """,
    # The receiver of `senders` senders of `count` messages each.  selective 0:
    # receive(0) everything; 1: all of the last sender's tag first, then the
    # one before, and so on.  The next expected k of each sender is kept at
    # DATA_BASE + 4*index; report (ok, bad).
    f"""
    (func (export "seq_receiver") (param $senders i32) (param $count i32) (param $selective i32)
      (local $i i32) (local $k i32) (local $who i32) (local $ok i64) (local $bad i64) (local $slot i32)
      (local.set $i (local.get $senders))
      (block $all_done (loop $per_sender
        (br_if $all_done (i32.eqz (local.get $i)))
        (local.set $i (i32.sub (local.get $i) (i32.const 1)))
        (local.set $k (i32.const 0))
        (block $done (loop $step
          (br_if $done (i32.ge_u (local.get $k) (if (result i32) (local.get $selective)
                                                     (then (local.get $count))
                                                     (else (i32.mul (local.get $count) (local.get $senders))))))
          (if (call $lunatic::message.receive
                (if (result i64) (local.get $selective)
                  (then (i64.extend_i32_u (i32.add (local.get $i) (i32.const 1))))
                  (else (i64.const 0)))
                (i32.const 0))
            (then unreachable))
          (call $read2)
          (local.set $who (i32.wrap_i64 (call $arg_a)))
          (local.set $slot (i32.add (i32.const {DATA_BASE}) (i32.shl (local.get $who) (i32.const 2))))
          (if (i32.and
                (i64.eq (call $lunatic::message.get_tag) (i64.extend_i32_u (i32.add (local.get $who) (i32.const 1))))
                (i64.eq (call $arg_b) (i64.extend_i32_u (i32.load (local.get $slot)))))
            (then (local.set $ok (i64.add (local.get $ok) (i64.const 1))))
            (else (local.set $bad (i64.add (local.get $bad) (i64.const 1)))))
          (i32.store (local.get $slot) (i32.add (i32.wrap_i64 (call $arg_b)) (i32.const 1)))
          (local.set $k (i32.add (local.get $k) (i32.const 1)))
          (br $step)))
        (if (i32.eqz (local.get $selective)) (then (local.set $i (i32.const 0))))
        (br $per_sender)))
      (call $report (i64.const {REPORT}) (local.get $ok) (local.get $bad)))
    """,
)

NATIVE_WAT = lunatic_module(
    # Echo: receive one message; resource 0 is the process to answer.  Answer
    # with the same tag and the payload's two i64 swapped, and this process as
    # resource 0.  count rounds.
    """
    (func (export "echo") (param $count i32)
      (local $k i32) (local $to i64)
      (block $done (loop $step
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (if (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (then unreachable))
        (call $read2)
        (local.set $to (call $lunatic::message.take_process (i64.const 0)))
        (call $send2_self (local.get $to) (call $lunatic::message.get_tag) (call $arg_b) (call $arg_a))
        (call $lunatic::process.drop_process (local.get $to))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step))))
    """,
    # The wasm side starts: look the native "service" up, then count requests
    # with send_receive_skip_search (tag 100+k, payload (k, k*k)); the reply
    # must be (k*k, k+1) with the same tag.  Report (ok, bad).
    f"""
    (func (export "client") (param $count i32)
      (local $svc i64) (local $k i32) (local $ok i64) (local $bad i64)
      (local.set $svc (call $lookup (i32.const {STR_BASE}) (i32.const 7)))
      (block $done (loop $step
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (call $lunatic::message.create_data (i64.extend_i32_u (i32.add (i32.const 100) (local.get $k))) (i64.const 16))
        (i64.store (i32.const 0) (i64.extend_i32_u (local.get $k)))
        (i64.store (i32.const 8) (i64.extend_i32_u (i32.mul (local.get $k) (local.get $k))))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 16)))
        (drop (call $lunatic::message.push_process (call $lunatic::process.this)))
        (if (call $lunatic::message.send_receive_skip_search (local.get $svc) (i32.const 0))
          (then unreachable))
        (call $read2)
        (if (i32.and (i32.and
              (i64.eq (call $arg_a) (i64.extend_i32_u (i32.mul (local.get $k) (local.get $k))))
              (i64.eq (call $arg_b) (i64.extend_i32_u (i32.add (local.get $k) (i32.const 1)))))
              (i64.eq (call $lunatic::message.get_tag) (i64.extend_i32_u (i32.add (i32.const 100) (local.get $k)))))
          (then (local.set $ok (i64.add (local.get $ok) (i64.const 1))))
          (else (local.set $bad (i64.add (local.get $bad) (i64.const 1)))))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step)))
      (call $report (i64.const {REPORT}) (local.get $ok) (local.get $bad)))
    """,
    # Register this process as "wasm-svc" 1.2.3 in its own environment, tell
    # the collector (with itself as resource), then serve one echo.
    f"""
    (func (export "registered")
      (if (call $lunatic::process.register (i32.const {STR_BASE + 16}) (i32.const 8)
                                           (i32.const {STR_BASE + 32}) (i32.const 5)
                                           (call $lunatic::process.this_env) (call $lunatic::process.this))
        (then unreachable))
      (call $report_self (i64.const {READY}) (i64.const 0) (i64.const 0))
      (call $echo_one))
    (func $echo_one
      (local $to i64)
      (if (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (then unreachable))
      (call $read2)
      (local.set $to (call $lunatic::message.take_process (i64.const 0)))
      (call $send2_self (local.get $to) (call $lunatic::message.get_tag) (call $arg_b) (call $arg_a)))
    """,
    # MessagePack: receive [int, process] (3 bytes: 0x92, fixint, index);
    # take the process at the index and send it MessagePack [fixint + 1,
    # this process] = 0x92, n+1, index of the pushed handle.
    """
    (func (export "msgpack_echo")
      (local $to i64) (local $n i32) (local $idx i64)
      (if (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (then unreachable))
      (if (i64.ne (call $lunatic::message.data_size) (i64.const 3)) (then unreachable))
      (drop (call $lunatic::message.read_data (i32.const 16) (i32.const 3)))
      (if (i32.ne (i32.load8_u (i32.const 16)) (i32.const 0x92)) (then unreachable))
      (local.set $n (i32.load8_u (i32.const 17)))
      (local.set $to (call $lunatic::message.take_process (i64.extend_i32_u (i32.load8_u (i32.const 18)))))
      (call $lunatic::message.create_data (i64.const 0) (i64.const 3))
      (local.set $idx (call $lunatic::message.push_process (call $lunatic::process.this)))
      (i32.store8 (i32.const 0) (i32.const 0x92))
      (i32.store8 (i32.const 1) (i32.add (local.get $n) (i32.const 1)))
      (i32.store8 (i32.const 2) (i32.wrap_i64 (local.get $idx)))
      (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 3)))
      (call $lunatic::message.send (local.get $to)))
    """,
    data=[(STR_BASE, b"service"), (STR_BASE + 16, b"wasm-svc"), (STR_BASE + 32, b"1.2.3")],
)


# ---------------------------------------------------------------------------
# helpers


@pytest.fixture
def rt(backend: str) -> Iterator[Runtime]:
    """A runtime on ``backend``; every process still running at the end is killed."""
    runtime = Runtime(backend=backend)
    yield runtime
    stuck = runtime.shutdown(timeout=10)
    assert not stuck, f"processes did not end: {stuck}"


class Collector(BaseCollector):
    """Reports of the concurrency guests."""

    def reports(self, count: int, tag: int = REPORT) -> list[tuple[int, int]]:
        """``count`` 16-byte messages with ``tag``, as (a, b) pairs."""
        out = []
        for _ in range(count):
            message = self.get()
            assert message.tag == tag, message
            out.append(pair(message))
        return out


def pair(message: DataMessage) -> tuple[int, int]:
    """The two little-endian u64 at the start of a message."""
    a, b = struct.unpack_from("<QQ", message.buffer)
    return a, b


def module_of(rt: Runtime, wat: str) -> tuple[Environment, LunaticModule, Collector]:
    """A fresh environment with a collector, and ``wat`` compiled in it."""
    env = rt.environment()
    return env, env.add_module(wat), Collector(rt, env)


def join_all(processes: list[Process], ending: Ending = Ending.RETURNED) -> None:
    """Wait for every process; each must have ended with ``ending``."""
    for process in processes:
        outcome = process.join(JOIN)
        assert outcome is not None, f"{process} did not end"
        assert outcome.ending is ending, (process, outcome)


# ---------------------------------------------------------------------------
# cancellation safety


def race_offsets(timeout_ms: int) -> Iterator[float]:
    """Delays (s) around ``timeout_ms``: -60% .. +60% of it, in 5% steps, cycling."""
    steps = [timeout_ms * (1 + p / 100) / 1000 for p in range(-60, 61, 5)]
    return itertools.cycle(steps)


def native_answerer(mode: int, rounds: int, timeout_ms: int) -> Callable[[NativeProcess], None]:
    """A native body answering ``rounds`` requests of a racer at about its timeout."""

    def body(proc: NativeProcess) -> None:
        setup = proc.receive(SETUP)
        assert isinstance(setup, DataMessage)
        peer = setup.resources[0]
        delays = race_offsets(timeout_ms)
        for seq in range(rounds):
            request = proc.receive(READY if mode == 0 else REPLY)
            assert isinstance(request, DataMessage)
            time.sleep(next(delays))
            proc.send(peer, struct.pack("<QQ", seq, 0), REPLY)
        proc.send(peer, b"", DRAIN)

    return body


def check_race_report(message: DataMessage, mode: int, rounds: int) -> dict[str, int]:
    """Check a racer's REPORT: every reply seen exactly once; its counters."""
    got, timeouts, drained, n = struct.unpack_from("<4I", message.buffer)
    seqs = list(struct.unpack_from(f"<{n}I", message.buffer, 16))
    assert got + timeouts == rounds
    assert got + drained == n
    # nothing lost, nothing twice: every sequence number exactly once
    assert sorted(seqs) == list(range(rounds)), "lost or duplicated replies"
    in_rounds, in_mailbox = seqs[:got], seqs[got:]
    if mode == 0:
        # receive looks at the queue first: strict FIFO over the whole run
        assert seqs == list(range(rounds))
    else:
        # skip-search only takes new messages: each phase is in order
        assert in_rounds == sorted(in_rounds)
        assert in_mailbox == sorted(in_mailbox)
    return {"got": got, "timeouts": timeouts, "drained": drained}


def run_wasm_racers(rt: Runtime, mode: int, rounds: int, timeout_ms: int, pairs: int,
                    wasm_answerer: bool) -> list[dict[str, int]]:
    """``pairs`` racer/answerer pairs at once; returns each racer's counters."""
    env, module, collector = module_of(rt, RACE_WAT)
    everyone: list[Process] = []
    for _ in range(pairs):
        racer = rt.spawn(module, "racer", [mode, rounds, timeout_ms])
        if wasm_answerer:
            answerer = rt.spawn(module, "answerer", [mode, rounds, timeout_ms])
        else:
            answerer = rt.spawn_native(native_answerer(mode, rounds, timeout_ms),
                                       environment=env)
        rt.send(racer, b"", SETUP, [answerer])
        rt.send(answerer, b"", SETUP, [racer])
        everyone += [racer, answerer]
    stats = [check_race_report(collector.get(), mode, rounds) for _ in range(pairs)]
    join_all(everyone)
    return stats


@pytest.mark.parametrize("mode", [0, 1], ids=["receive", "skip_search"])
@pytest.mark.parametrize("answerer", ["native", "wasm"])
def test_timeout_race_never_loses_or_duplicates(rt: Runtime, mode: int, answerer: str) -> None:
    """A reply arriving at about the timeout is received once or left queued, never both."""
    stats = run_wasm_racers(rt, mode, rounds=120, timeout_ms=2, pairs=2,
                            wasm_answerer=answerer == "wasm")
    assert len(stats) == 2


@pytest.mark.slow
@pytest.mark.parametrize("mode", [0, 1], ids=["receive", "skip_search"])
@pytest.mark.parametrize("answerer", ["native", "wasm"])
def test_timeout_race_long(rt: Runtime, mode: int, answerer: str) -> None:
    """The long variant: more rounds, several pairs at once, two timeouts."""
    for timeout_ms in (1, 3):
        stats = run_wasm_racers(rt, mode, rounds=2500, timeout_ms=timeout_ms, pairs=4,
                                wasm_answerer=answerer == "wasm")
        assert len(stats) == 4


def run_native_racer(rt: Runtime, mode: int, rounds: int, timeout_ms: int) -> None:
    """A native process races its timeouts against a wasm answerer."""
    env, module, collector = module_of(rt, RACE_WAT)
    result: dict[str, Any] = {}

    def racer(proc: NativeProcess) -> None:
        setup = proc.receive(SETUP)
        assert isinstance(setup, DataMessage)
        peer = setup.resources[0]
        seqs: list[int] = []
        got = 0
        for r in range(rounds):
            if mode == 0:
                proc.send(peer, struct.pack("<QQ", r, 0), READY)
                reply = proc.receive(REPLY, timeout_ms / 1000)
            else:
                reply = proc.request(peer, struct.pack("<QQ", r, 0), REPLY,
                                     timeout=timeout_ms / 1000)
            if reply is not None:
                assert isinstance(reply, DataMessage)
                seqs.append(pair(reply)[0])
                got += 1
        drain = proc.receive(DRAIN)
        assert drain is not None
        while (reply := proc.receive(REPLY, 0.001)) is not None:
            assert isinstance(reply, DataMessage)
            seqs.append(pair(reply)[0])
        result.update(got=got, seqs=seqs, left=proc.process.mailbox_size())

    native = rt.spawn_native(racer, environment=env)
    answerer = rt.spawn(module, "answerer", [mode, rounds, timeout_ms])
    rt.send(native, b"", SETUP, [answerer])
    rt.send(answerer, b"", SETUP, [native])
    join_all([native, answerer])
    seqs = result["seqs"]
    assert sorted(seqs) == list(range(rounds)), "lost or duplicated replies"
    assert result["left"] == 0
    if mode == 0:
        assert seqs == list(range(rounds))
    assert collector.inbox.empty()


@pytest.mark.parametrize("mode", [0, 1], ids=["receive", "request"])
def test_native_timeout_race(rt: Runtime, mode: int) -> None:
    """``NativeProcess.receive``/``request`` with timeouts are just as safe."""
    run_native_racer(rt, mode, rounds=120, timeout_ms=2)


@pytest.mark.slow
@pytest.mark.parametrize("mode", [0, 1], ids=["receive", "request"])
def test_native_timeout_race_long(rt: Runtime, mode: int) -> None:
    """The long native variant."""
    run_native_racer(rt, mode, rounds=2500, timeout_ms=1)


# ---------------------------------------------------------------------------
# many processes


RING_SIZE = 1000
RING_MESSAGES = 100


def test_thousand_processes_exchange_messages(rt: Runtime) -> None:
    """1,000 wasm processes in a ring, 100 messages each: all arrive, once, in order."""
    env, module, collector = module_of(rt, RING_WAT)
    ring = [rt.spawn(module, "ring", [i, RING_MESSAGES]) for i in range(RING_SIZE)]
    for i, process in enumerate(ring):
        assert rt.send(process, b"", SETUP, [ring[(i + 1) % RING_SIZE]])
    reports = collector.reports(RING_SIZE)
    seen = set()
    total = 0
    for a, b in reports:
        index, pred = a & 0xFFFFFFFF, a >> 32
        ok, bad = b & 0xFFFFFFFF, b >> 32
        assert (pred, ok, bad) == ((index - 1) % RING_SIZE, RING_MESSAGES, 0), index
        seen.add(index)
        total += ok
    assert seen == set(range(RING_SIZE))
    assert total == RING_SIZE * RING_MESSAGES
    # every member now waits for FINISH: nothing extra is queued anywhere
    assert [p for p in ring if p.mailbox_size()] == []
    for process in ring:
        rt.send(process, b"", FINISH)
    join_all(ring)


@pytest.mark.parametrize("selective", [0, 1], ids=["any_tag", "by_tag"])
def test_one_senders_messages_arrive_in_order(rt: Runtime, selective: int) -> None:
    """Eight concurrent senders, 300 messages each: per sender, order is kept."""
    senders, count = 8, 300
    env, module, collector = module_of(rt, ORDER_WAT)
    receiver = rt.spawn(module, "seq_receiver", [senders, count, selective])
    procs = [rt.spawn(module, "seq_sender", [i, count]) for i in range(senders)]
    for process in procs:  # all start at about the same moment
        rt.send(process, b"", SETUP, [receiver])
    ((ok, bad),) = collector.reports(1)
    assert (ok, bad) == (senders * count, 0)
    join_all([receiver, *procs])


def test_python_senders_in_order_with_selective_receive(rt: Runtime) -> None:
    """Python threads sending concurrently (``Runtime.send``): each one's order is kept."""
    senders, count = 4, 300
    env, module, collector = module_of(rt, ORDER_WAT)
    receiver = rt.spawn(module, "seq_receiver", [senders, count, 1])

    def send_all(index: int) -> None:
        for k in range(count):
            rt.send(receiver, struct.pack("<QQ", index, k), index + 1)

    threads = [threading.Thread(target=send_all, args=(i,)) for i in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert collector.reports(1) == [(senders * count, 0)]
    join_all([receiver])


# ---------------------------------------------------------------------------
# native processes


def test_native_and_wasm_exchange_both_ways(rt: Runtime) -> None:
    """Native -> wasm requests answered, and wasm -> native requests answered, concurrently."""
    env, module, collector = module_of(rt, NATIVE_WAT)
    rounds = 50
    results: dict[str, Any] = {}

    def service(proc: NativeProcess) -> None:
        proc.register("service", "0.1.0")
        results["registered"] = True
        for _ in range(rounds):
            request = proc.receive()
            assert isinstance(request, DataMessage)
            k, k2 = pair(request)
            proc.send(request.resources[0], struct.pack("<QQ", k2, k + 1), request.tag)

    def driver(proc: NativeProcess) -> None:
        echo = proc.spawn(module, "echo", [rounds])
        ok = 0
        for k in range(rounds):
            reply = proc.request(echo, struct.pack("<QQ", k, 3 * k), 500 + k,
                                 [proc.process], timeout=JOIN)
            assert isinstance(reply, DataMessage)
            if (reply.tag, pair(reply), reply.resources) == (500 + k, (3 * k, k), [echo]):
                ok += 1
        results["ok"] = ok

    svc = rt.spawn_native(service, environment=env)
    deadline = time.monotonic() + JOIN
    while "registered" not in results and time.monotonic() < deadline:
        time.sleep(0.001)
    drv = rt.spawn_native(driver, environment=env)
    client = rt.spawn(module, "client", [rounds])
    assert collector.reports(1) == [(rounds, 0)]
    join_all([svc, drv, client])
    assert results["ok"] == rounds


def test_registry_between_native_and_wasm(rt: Runtime) -> None:
    """A wasm process registers itself; a native one looks it up and talks to it."""
    env, module, collector = module_of(rt, NATIVE_WAT)
    wasm = rt.spawn(module, "registered")
    ready = collector.get()
    assert ready.tag == READY and ready.resources == [wasm]
    answer: dict[str, Any] = {}

    def find(proc: NativeProcess) -> None:
        found = proc.lookup("wasm-svc", "^1.2")
        answer["found"] = found
        answer["none"] = proc.lookup("wasm-svc", "^2")
        assert found is not None
        reply = proc.request(found, struct.pack("<QQ", 1, 2), 77, [proc.process], timeout=JOIN)
        assert isinstance(reply, DataMessage)
        answer["reply"] = (reply.tag, pair(reply))

    native = rt.spawn_native(find, environment=env)
    join_all([native, wasm])
    assert answer == {"found": wasm, "none": None, "reply": (77, (2, 1))}
    assert env.registry.lookup("wasm-svc", "=1.2.3") == (0, wasm)


def test_msgpack_round_trip_with_processes(rt: Runtime) -> None:
    """``codec``: processes travel as resource indices, both ways, through wasm."""
    env, module, collector = module_of(rt, NATIVE_WAT)
    wasm = rt.spawn(module, "msgpack_echo")
    got: dict[str, Any] = {}

    def talk(proc: NativeProcess) -> None:
        proc.send_value(wasm, [41, proc.process])
        message = proc.receive(timeout=JOIN)
        assert isinstance(message, DataMessage)
        value = codec.unpack(message.buffer)
        got["value"] = value
        got["process"] = message.resources[value[1]]

    native = rt.spawn_native(talk, environment=env)
    join_all([native, wasm])
    assert got["value"] == [42, 0]
    assert got["process"] is wasm


def test_codec_pack_unpack() -> None:
    """``pack`` lists each process once per mention, in order, as an index."""
    a, b = Process(None, "a"), Process(None, "b")
    value = {"to": a, "both": [b, a], "n": -3, "blob": b"\x00\xff", "text": "é"}
    data, resources = codec.pack(value)
    assert resources == [a, b, a]
    assert codec.unpack(data) == {"to": 0, "both": [1, 2], "n": -3, "blob": b"\x00\xff",
                                  "text": "é"}
    with pytest.raises(TypeError):
        codec.pack(object())


def test_native_value_helpers(rt: Runtime) -> None:
    """``send_value``/``receive_value`` between two native processes, with a process inside."""
    answer: dict[str, Any] = {}

    def receiver(proc: NativeProcess) -> None:
        answer["value"] = proc.receive_value(5, timeout=JOIN)
        with pytest.raises(TimeoutError):
            proc.receive_value(5, timeout=0.01)

    rec = rt.spawn_native(receiver)

    def sender(proc: NativeProcess) -> None:
        proc.send_value(rec, {"who": proc.process, "n": [1, 2, 3]}, tag=5)

    snd = rt.spawn_native(sender)
    join_all([rec, snd])
    assert answer["value"] == {"who": 0, "n": [1, 2, 3]}
