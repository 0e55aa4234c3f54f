"""Process lifecycle tests for the Lunatic runtime, on both engines.

Spec sections 1.4, 7.3-7.5 and the runtime's decisions (``lunatic_api.process``):

* link death spreads along a chain of 100 linked processes (killing or
  trapping either end kills all; ``die_when_link_dies(0)`` at the far end turns
  it into a signal message with the link's tag), also along a chain built by
  spawn-with-link, where the tags are asymmetric (child -> parent: the spawn's
  link tag; parent -> child: untagged);
* a process killed while blocked in ``receive``, ``sleep_ms`` or
  ``send_receive_skip_search`` ends promptly as KILLED and its links hear of it;
* an ended process (killed, trapped, ``proc_exit``, returned) releases what it
  held: TCP streams in its table, in its scratch slot and in messages it never
  received close (a Python peer sees EOF); its registry entries remain, and
  what is sent to it is dropped (resources released);
* normal return does not notify links; ``proc_exit(0)``, ``proc_exit(n)`` and
  traps do, with the right tags; linking to a process that already ended
  abnormally reports at once, to one that returned does nothing;
* native Python processes linked to wasm processes, both directions.
"""

from __future__ import annotations

import queue
import socket
import struct
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from lunatic_api import (
    Config,
    DataMessage,
    Ending,
    LunaticModule,
    NativeProcess,
    Outcome,
    Process,
    Runtime,
    SignalMessage,
    SpawnError,
)
from lunatic_api.net import SharedStream, StreamRef
from tests.lunatic_support import wasm_of
from tests.lunatic_wat import JOIN, STR_BASE, lunatic_module
from tests.lunatic_wat import Collector as BaseCollector

"""Upper bound (s) for something expected to happen: a hang fails instead of blocking CI."""

# tags
SETUP = 1
READY = 2
SIGNALLED = 3
COMMAND = 4
UNBLOCKED = 5
DONE = 6
NEVER = 999  # nobody sends this tag: receive(NEVER) blocks
FINISH = 8
REQUEST = 55

# commands for $await_end
RETURN = 0
TRAP = 1
EXIT = 2

CHAIN_LEN = 100

LIFE_WAT = lunatic_module(
    # The common tail: wait for one message.  A signal message is reported
    # (SIGNALLED, index, its tag) and the process returns; a data message is a
    # command (a, b), reported (COMMAND, index, a): a = 1 traps, a = 2 calls
    # proc_exit(b), anything else returns.
    f"""
    (func $await_end (param $index i32)
      (local $cmd i64)
      (if (i32.eq (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (i32.const 1))
        (then
          (call $report (i64.const {SIGNALLED}) (i64.extend_i32_u (local.get $index))
                        (call $lunatic::message.get_tag))
          (return)))
      (call $read2)
      (local.set $cmd (call $arg_a))
      (call $report (i64.const {COMMAND}) (i64.extend_i32_u (local.get $index)) (local.get $cmd))
      (if (i64.eq (local.get $cmd) (i64.const {TRAP})) (then unreachable))
      (if (i64.eq (local.get $cmd) (i64.const {EXIT})) (then (call $proc_exit (i32.wrap_i64 (call $arg_b))))))
    """,
    # flag 0: die_when_link_dies(0).  SETUP (a, _): if a != 0, link to
    # resource 0 with tag index + 1.  Report READY (with itself), then $await_end.
    f"""
    (func (export "node") (param $index i32) (param $flag i32)
      (if (i32.eqz (local.get $flag)) (then (call $lunatic::process.die_when_link_dies (i32.const 0))))
      (if (call $lunatic::message.receive (i64.const {SETUP}) (i32.const 0)) (then unreachable))
      (call $read2)
      (if (i64.ne (call $arg_a) (i64.const 0))
        (then (call $lunatic::process.link (i64.extend_i32_u (i32.add (local.get $index) (i32.const 1)))
                                           (call $lunatic::message.take_process (i64.const 0)))))
      (call $report_self (i64.const {READY}) (i64.extend_i32_u (local.get $index)) (i64.const 0))
      (call $await_end (local.get $index)))
    """,
    # A chain made by spawn-with-link: arg = depth | quiet << 16.  A node of
    # depth > 1 spawns "spawn_chain" with depth - 1 and link tag 1000 + (depth - 1);
    # the node whose depth is `quiet` calls die_when_link_dies(0).  Report READY
    # (with itself), then $await_end.
    f"""
    (func (export "spawn_chain") (param $arg i32)
      (local $depth i32)
      (local.set $depth (i32.and (local.get $arg) (i32.const 0xffff)))
      (if (i32.eq (local.get $depth) (i32.shr_u (local.get $arg) (i32.const 16)))
        (then (call $lunatic::process.die_when_link_dies (i32.const 0))))
      (if (i32.gt_u (local.get $depth) (i32.const 1))
        (then (call $lunatic::process.drop_process
                (call $spawn1 (i64.extend_i32_u (i32.add (i32.const 999) (local.get $depth)))
                              (i32.const {STR_BASE}) (i32.const 11) (i32.sub (local.get $arg) (i32.const 1))))))
      (call $report_self (i64.const {READY}) (i64.extend_i32_u (local.get $depth)) (i64.const 0))
      (call $await_end (local.get $depth)))
    """,
    # Report READY, then block: kind 0 receive(0) forever, 1 sleep_ms(10^8),
    # 2 send_receive_skip_search to the collector (tag REQUEST) forever,
    # 3 receive(NEVER) forever.  UNBLOCKED if it ever gets past that.
    f"""
    (func (export "blocker") (param $kind i32)
      (call $report_self (i64.const {READY}) (i64.extend_i32_u (local.get $kind)) (i64.const 0))
      (if (i32.eq (local.get $kind) (i32.const 0))
        (then (drop (call $lunatic::message.receive (i64.const 0) (i32.const 0)))))
      (if (i32.eq (local.get $kind) (i32.const 1))
        (then (call $lunatic::process.sleep_ms (i64.const 100000000))))
      (if (i32.eq (local.get $kind) (i32.const 2))
        (then
          (call $lunatic::message.create_data (i64.const {REQUEST}) (i64.const 0))
          (drop (call $lunatic::message.send_receive_skip_search (call $collector) (i32.const 0)))))
      (if (i32.eq (local.get $kind) (i32.const 3))
        (then (drop (call $lunatic::message.receive (i64.const {NEVER}) (i32.const 0)))))
      (call $report (i64.const {UNBLOCKED}) (i64.extend_i32_u (local.get $kind)) (i64.const 0)))
    """,
    # Holds a TCP stream.  mode 0: take it from SETUP and clone it twice;
    # 1: never receive SETUP (it stays queued); 2: receive SETUP but leave the
    # stream in the message (the scratch slot; READY is reported first, since
    # building the report would replace the slot); 3-5: take it like 0.
    # Report READY.  Modes 0-2 then block in receive(NEVER); 3-5 run $await_end.
    f"""
    (func (export "holder") (param $mode i32)
      (local $s i64)
      (if (i32.eq (local.get $mode) (i32.const 2))
        (then (call $report (i64.const {READY}) (i64.const 2) (i64.const 0))))
      (if (i32.ne (local.get $mode) (i32.const 1))
        (then
          (if (call $lunatic::message.receive (i64.const {SETUP}) (i32.const 0)) (then unreachable))
          (if (i32.ne (local.get $mode) (i32.const 2))
            (then
              (local.set $s (call $lunatic::message.take_tcp_stream (i64.const 0)))
              (drop (call $lunatic::networking.clone_tcp_stream (local.get $s)))
              (drop (call $lunatic::networking.clone_tcp_stream (local.get $s)))))))
      (if (i32.ne (local.get $mode) (i32.const 2))
        (then (call $report (i64.const {READY}) (i64.extend_i32_u (local.get $mode)) (i64.const 0))))
      (if (i32.le_u (local.get $mode) (i32.const 2))
        (then (drop (call $lunatic::message.receive (i64.const {NEVER}) (i32.const 0)))))
      (call $await_end (local.get $mode)))
    """,
    # Registers itself as "svc" 1.0.0, reports READY, then $await_end.
    f"""
    (func (export "registered")
      (if (call $lunatic::process.register (i32.const {STR_BASE + 16}) (i32.const 3)
                                           (i32.const {STR_BASE + 32}) (i32.const 5)
                                           (call $lunatic::process.this_env) (call $lunatic::process.this))
        (then unreachable))
      (call $report_self (i64.const {READY}) (i64.const 0) (i64.const 0))
      (call $await_end (i32.const 0)))
    """,
    # Looks "svc" up and sends it count messages, then reports DONE.
    f"""
    (func (export "send_to_svc") (param $count i32)
      (local $to i64) (local $k i32)
      (local.set $to (call $lookup (i32.const {STR_BASE + 16}) (i32.const 3)))
      (block $done (loop $step
        (br_if $done (i32.ge_u (local.get $k) (local.get $count)))
        (call $send2 (local.get $to) (i64.const 0) (i64.extend_i32_u (local.get $k)) (i64.const 0))
        (local.set $k (i32.add (local.get $k) (i32.const 1)))
        (br $step)))
      (call $report (i64.const {DONE}) (i64.extend_i32_u (local.get $count)) (i64.const 0)))
    """,
    data=[(STR_BASE, b"spawn_chain"), (STR_BASE + 16, b"svc"), (STR_BASE + 32, b"1.0.0")],
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
    """Reports of the lifecycle guests."""

    def expect(self, tag: int) -> tuple[int, int, list[Any]]:
        """The next message, which must have ``tag``: (a, b, resources)."""
        message = self.get()
        assert message.tag == tag, (message, struct.unpack_from("<QQ", message.buffer))
        a, b = struct.unpack_from("<QQ", message.buffer)
        return a, b, message.resources

    def ready(self) -> Process:
        """The process in the next READY report."""
        _, _, resources = self.expect(READY)
        process = resources[0]
        assert isinstance(process, Process)
        return process


class Life:
    """One environment with the lifecycle guests and a collector."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.env = rt.environment()
        self.module: LunaticModule = self.env.add_module(LIFE_WAT)
        self.collector = Collector(rt, self.env)

    def node(self, index: int, flag: int = 1, link_to: Process | None = None) -> Process:
        """A ``node`` process, set up (linked to ``link_to`` if given) and READY."""
        process = self.rt.spawn(self.module, "node", [index, flag])
        setup = (1 if link_to else 0, 0)
        self.rt.send(process, struct.pack("<QQ", *setup), SETUP, [link_to] if link_to else [])
        assert self.collector.ready() is process
        return process

    def command(self, process: Process, cmd: int, arg: int = 0) -> None:
        """Send an ``$await_end`` command."""
        assert self.rt.send(process, struct.pack("<QQ", cmd, arg))


def ended(process: Process, ending: Ending) -> Outcome:
    """``process`` ends (within JOIN) with ``ending``; its outcome."""
    outcome = process.join(JOIN)
    assert outcome is not None, f"{process} did not end"
    assert outcome.ending is ending, (process, outcome)
    return outcome


def let_it_block() -> None:
    """Give a process that just reported READY time to enter its blocking call.

    Correctness does not depend on it (a kill before the call is seen at it);
    it only makes the test exercise the blocked case.
    """
    time.sleep(0.05)


def tcp_pair() -> tuple[StreamRef, SharedStream, socket.socket]:
    """A real TCP connection on 127.0.0.1: (a runtime reference to one end, its
    shared stream, the Python peer socket)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        peer = socket.create_connection(listener.getsockname())
        conn, _ = listener.accept()
    stream = SharedStream(conn)
    peer.settimeout(JOIN)
    return stream.new_ref(), stream, peer


def assert_eof(peer: socket.socket) -> None:
    """The Python peer sees the other end closed."""
    try:
        assert peer.recv(16) == b""
    finally:
        peer.close()


# ---------------------------------------------------------------------------
# chains of links


def make_chain(life: Life, flags: dict[int, int]) -> list[Process]:
    """CHAIN_LEN nodes, node i linked to node i+1 with tag i+1; ``flags`` by index."""
    nodes = [life.rt.spawn(life.module, "node", [i, flags.get(i, 1)]) for i in range(CHAIN_LEN)]
    for i, node in enumerate(nodes):
        last = i == CHAIN_LEN - 1
        life.rt.send(node, struct.pack("<QQ", 0 if last else 1, 0), SETUP,
                     [] if last else [nodes[i + 1]])
    ready = {life.collector.ready() for _ in nodes}
    assert ready == set(nodes)
    return nodes


@pytest.mark.parametrize("end", ["kill_first", "kill_last", "trap_first", "trap_last"])
def test_chain_of_links_dies_together(rt: Runtime, end: str) -> None:
    """Killing or trapping either end of 100 linked processes ends all of them."""
    life = Life(rt)
    nodes = make_chain(life, {})
    victim = nodes[0] if end.endswith("first") else nodes[-1]
    if end.startswith("kill"):
        assert rt.kill(victim)
        ended(victim, Ending.KILLED)
    else:
        life.command(victim, TRAP)
        assert "unreachable" in ended(victim, Ending.FAILED).message.lower()
    for node in nodes:
        if node is not victim:
            ended(node, Ending.KILLED)
    assert rt.processes() == [life.collector.process]


@pytest.mark.parametrize("quiet", ["last", "first"])
def test_chain_end_with_die_when_link_dies_off_gets_signal(rt: Runtime, quiet: str) -> None:
    """The far end, with die_when_link_dies(0), gets a signal message tagged by its link."""
    life = Life(rt)
    quiet_index = CHAIN_LEN - 1 if quiet == "last" else 0
    nodes = make_chain(life, {quiet_index: 0})
    victim = nodes[0] if quiet == "last" else nodes[-1]
    survivor = nodes[quiet_index]
    life.command(victim, TRAP)
    assert life.collector.expect(COMMAND)[:2] == (nodes.index(victim), TRAP)
    # node 98 linked to node 99 with tag 99; node 0 to node 1 with tag 1
    expected_tag = CHAIN_LEN - 1 if quiet == "last" else 1
    assert life.collector.expect(SIGNALLED)[:2] == (quiet_index, expected_tag)
    ended(victim, Ending.FAILED)
    ended(survivor, Ending.RETURNED)
    for node in nodes:
        if node not in (victim, survivor):
            ended(node, Ending.KILLED)


def spawn_chain(life: Life, quiet: int) -> dict[int, Process]:
    """A spawn-with-link chain of CHAIN_LEN nodes from depth CHAIN_LEN (the root) down to 1."""
    root = life.rt.spawn(life.module, "spawn_chain", [CHAIN_LEN | quiet << 16])
    by_depth: dict[int, Process] = {}
    for _ in range(CHAIN_LEN):
        depth, _, resources = life.collector.expect(READY)
        by_depth[depth] = resources[0]
    assert sorted(by_depth) == list(range(1, CHAIN_LEN + 1))
    assert by_depth[CHAIN_LEN] is root
    # child -> parent: the spawn's link tag; parent -> child: untagged
    for depth in range(1, CHAIN_LEN):
        child, parent = by_depth[depth], by_depth[depth + 1]
        assert child.links()[parent.id] == 1000 + depth
        assert parent.links()[child.id] == 0
    return by_depth


def test_spawn_link_chain_child_failure_reaches_root_with_link_tag(rt: Runtime) -> None:
    """The leaf traps; every ancestor dies; the root (flag off) gets its child's link tag."""
    life = Life(rt)
    chain = spawn_chain(life, quiet=CHAIN_LEN)
    life.command(chain[1], TRAP)
    assert life.collector.expect(COMMAND)[:2] == (1, TRAP)
    # the root's child has depth 99: it was spawned with link tag 1000 + 99
    assert life.collector.expect(SIGNALLED)[:2] == (CHAIN_LEN, 1000 + CHAIN_LEN - 1)
    ended(chain[1], Ending.FAILED)
    ended(chain[CHAIN_LEN], Ending.RETURNED)
    for depth in range(2, CHAIN_LEN):
        ended(chain[depth], Ending.KILLED)


def test_spawn_link_chain_parent_death_reaches_leaf_untagged(rt: Runtime) -> None:
    """The root is killed; every descendant dies; the leaf (flag off) gets tag 0."""
    life = Life(rt)
    chain = spawn_chain(life, quiet=1)
    assert rt.kill(chain[CHAIN_LEN])
    assert life.collector.expect(SIGNALLED)[:2] == (1, 0)
    ended(chain[CHAIN_LEN], Ending.KILLED)
    ended(chain[1], Ending.RETURNED)
    for depth in range(2, CHAIN_LEN):
        ended(chain[depth], Ending.KILLED)


# ---------------------------------------------------------------------------
# killing blocked processes


@pytest.mark.parametrize("kind", [0, 1, 2, 3],
                         ids=["receive", "sleep_ms", "skip_search", "receive_tag"])
def test_kill_while_blocked(rt: Runtime, kind: int) -> None:
    """A process blocked in a waiting call is killed at once; its links hear of it."""
    life = Life(rt)
    blocker = rt.spawn(life.module, "blocker", [kind])
    assert life.collector.ready() is blocker
    if kind == 2:
        assert life.collector.get().tag == REQUEST
    if kind == 3:  # messages that do not match keep arriving
        for k in range(5):
            rt.send(blocker, struct.pack("<QQ", k, 0), 0)

    # watchers: wasm with the flag off (tag 11), wasm with the flag on (tag 21),
    # native with the flag off (tag 31), native with the flag on (tag 41)
    quiet = life.node(10, 0, link_to=blocker)
    loud = life.node(20, 1, link_to=blocker)
    heard: queue.Queue[Any] = queue.Queue()

    def native(flag: bool, tag: int) -> Callable[[NativeProcess], None]:
        def body(proc: NativeProcess) -> None:
            proc.die_when_link_dies(flag)
            proc.link(blocker, tag)
            heard.put("linked")
            heard.put(proc.receive())
        return body

    native_quiet = rt.spawn_native(native(False, 31))
    native_loud = rt.spawn_native(native(True, 41))
    assert [heard.get(timeout=JOIN) for _ in range(2)] == ["linked", "linked"]
    let_it_block()
    assert blocker.alive and len(blocker.links()) == 4

    assert rt.kill(blocker, "test kill")
    assert ended(blocker, Ending.KILLED).message == "test kill"
    assert life.collector.expect(SIGNALLED)[:2] == (10, 11)
    ended(quiet, Ending.RETURNED)
    ended(loud, Ending.KILLED)
    signal = heard.get(timeout=JOIN)
    assert isinstance(signal, SignalMessage) and signal.tag == 31
    ended(native_quiet, Ending.RETURNED)
    ended(native_loud, Ending.KILLED)
    assert heard.empty()
    assert life.collector.inbox.empty()  # no UNBLOCKED report
    assert not rt.kill(blocker)  # already ended


def test_kill_native_process_blocked_in_sleep_and_request(rt: Runtime) -> None:
    """Native processes are killed in ``sleep`` and ``request`` too."""
    life = Life(rt)
    started: queue.Queue[str] = queue.Queue()

    def sleeper(proc: NativeProcess) -> None:
        started.put("sleep")
        proc.sleep(1e6)

    def requester(proc: NativeProcess) -> None:
        started.put("request")
        proc.request(life.collector.process, b"", REQUEST)

    procs = [rt.spawn_native(sleeper), rt.spawn_native(requester)]
    assert sorted(started.get(timeout=JOIN) for _ in procs) == ["request", "sleep"]
    assert life.collector.get().tag == REQUEST
    let_it_block()
    for process in procs:
        assert rt.kill(process)
    for process in procs:
        ended(process, Ending.KILLED)


# ---------------------------------------------------------------------------
# what an ended process releases


@pytest.mark.parametrize("mode", [0, 1, 2], ids=["in_table", "queued", "in_scratch"])
def test_killed_process_closes_its_streams(rt: Runtime, mode: int) -> None:
    """Streams held in the handle table (cloned too), in an unreceived message or in
    the scratch slot close when the process is killed: the peer sees EOF."""
    life = Life(rt)
    ref, stream, peer = tcp_pair()
    holder = rt.spawn(life.module, "holder", [mode])
    if mode == 2:
        assert life.collector.expect(READY)[0] == mode
        assert rt.send(holder, b"", SETUP, [ref])
        deadline = time.monotonic() + JOIN
        while holder.mailbox_size() and time.monotonic() < deadline:
            time.sleep(0.001)
        assert holder.mailbox_size() == 0  # taken into the scratch slot
    else:
        assert rt.send(holder, b"", SETUP, [ref])
        assert life.collector.expect(READY)[0] == mode
    if mode == 1:
        assert holder.mailbox_size() == 1
    let_it_block()
    assert not stream.closed
    assert rt.kill(holder)
    ended(holder, Ending.KILLED)
    assert stream.closed
    assert_eof(peer)


@pytest.mark.parametrize("how", ["trap", "proc_exit", "return"])
def test_ended_process_closes_its_streams(rt: Runtime, how: str) -> None:
    """A trap, proc_exit(0) or a normal return release the process's streams as well."""
    life = Life(rt)
    ref, stream, peer = tcp_pair()
    mode = {"trap": 3, "proc_exit": 4, "return": 5}[how]
    holder = rt.spawn(life.module, "holder", [mode])
    assert rt.send(holder, b"", SETUP, [ref])
    assert life.collector.expect(READY)[0] == mode
    assert not stream.closed
    life.command(holder, {"trap": TRAP, "proc_exit": EXIT, "return": RETURN}[how])
    ended(holder, Ending.RETURNED if how == "return" else Ending.FAILED)
    assert_eof(peer)


def test_stream_shared_with_a_live_holder_stays_open(rt: Runtime) -> None:
    """Only the dead process's references go: another reference keeps the socket open."""
    life = Life(rt)
    ref, stream, peer = tcp_pair()
    keep = ref.clone()
    holder = rt.spawn(life.module, "holder", [0])
    assert rt.send(holder, b"", SETUP, [ref])
    life.collector.expect(READY)
    assert rt.kill(holder)
    ended(holder, Ending.KILLED)
    assert not stream.closed
    stream.socket.sendall(b"still here")
    assert peer.recv(16) == b"still here"
    keep.release()
    assert_eof(peer)


def test_killed_native_process_closes_received_streams(rt: Runtime) -> None:
    """A native process that received a stream and is killed releases it."""
    ref, stream, peer = tcp_pair()
    got: queue.Queue[Any] = queue.Queue()

    def body(proc: NativeProcess) -> None:
        got.put(proc.receive())
        proc.receive(NEVER)

    native = rt.spawn_native(body)
    assert rt.send(native, b"", 0, [ref])
    message = got.get(timeout=JOIN)
    assert isinstance(message, DataMessage) and message.resources == [ref]
    assert not stream.closed
    assert rt.kill(native)
    ended(native, Ending.KILLED)
    assert_eof(peer)


@pytest.mark.parametrize("how", ["kill", "trap"])
def test_dead_process_stays_registered_and_drops_what_it_is_sent(rt: Runtime, how: str) -> None:
    """Registry entries outlive the process; sends to it vanish, resources released."""
    life = Life(rt)
    victim = rt.spawn(life.module, "registered")
    assert life.collector.ready() is victim
    if how == "kill":
        assert rt.kill(victim)
        ended(victim, Ending.KILLED)
    else:
        life.command(victim, TRAP)
        assert life.collector.expect(COMMAND)[:2] == (0, TRAP)
        ended(victim, Ending.FAILED)
    assert life.env.registry.lookup("svc", "^1") == (0, victim)

    # from Python: refused, and the stream inside is released
    ref, stream, peer = tcp_pair()
    assert rt.send(victim, b"hello", 0, [ref]) is False
    assert_eof(peer)
    # from wasm: looked up and sent to without a trap
    sender = rt.spawn(life.module, "send_to_svc", [3])
    assert life.collector.expect(DONE)[0] == 3
    ended(sender, Ending.RETURNED)
    assert victim.mailbox_size() == 0

    # from a native process: looked up, sent to, nothing comes back
    def native(proc: NativeProcess) -> None:
        found = proc.lookup("svc", "1.0.0")
        assert found is victim
        proc.send(found, b"x")
        assert proc.request(found, b"y", 5, timeout=0.05) is None

    ended(rt.spawn_native(native, environment=life.env), Ending.RETURNED)
    assert victim.mailbox_size() == 0


# ---------------------------------------------------------------------------
# who is told about an ending


@pytest.mark.parametrize("how", ["return", "trap", "proc_exit_0", "proc_exit_3", "kill"])
def test_which_endings_notify_links(rt: Runtime, how: str) -> None:
    """Normal return notifies nobody; traps, proc_exit (any code) and kills do, with tags."""
    life = Life(rt)
    subject = life.node(50)
    watcher = life.node(60, 0, link_to=subject)  # both sides store tag 61
    heard: queue.Queue[Any] = queue.Queue()

    def native(proc: NativeProcess) -> None:
        proc.die_when_link_dies(False)
        proc.link(subject, 77)
        heard.put("linked")
        heard.put(proc.receive())

    native_watcher = rt.spawn_native(native)
    assert heard.get(timeout=JOIN) == "linked"
    assert subject.links() == {watcher.id: 61, native_watcher.id: 77}

    if how == "kill":
        assert rt.kill(subject)
    else:
        cmd, arg = {"return": (RETURN, 0), "trap": (TRAP, 0), "proc_exit_0": (EXIT, 0),
                    "proc_exit_3": (EXIT, 3)}[how]
        life.command(subject, cmd, arg)
        assert life.collector.expect(COMMAND)[:2] == (50, cmd)
    outcome = subject.join(JOIN)
    assert outcome is not None
    if how == "return":
        assert outcome.ending is Ending.RETURNED
        # links are told synchronously as a process ends, before join returns; a
        # message sent now is therefore behind any signal message: none came
        life.command(watcher, RETURN)
        assert life.collector.expect(COMMAND)[:2] == (60, RETURN)
        ended(watcher, Ending.RETURNED)
        rt.send(native_watcher, b"marker")
        marker = heard.get(timeout=JOIN)
        assert isinstance(marker, DataMessage) and bytes(marker.buffer) == b"marker"
    else:
        expected = {"trap": Ending.FAILED, "proc_exit_0": Ending.FAILED,
                    "proc_exit_3": Ending.FAILED, "kill": Ending.KILLED}[how]
        assert outcome.ending is expected
        if how.startswith("proc_exit"):
            assert outcome.exit_code == int(how[-1])
        assert life.collector.expect(SIGNALLED)[:2] == (60, 61)
        ended(watcher, Ending.RETURNED)
        signal = heard.get(timeout=JOIN)
        assert isinstance(signal, SignalMessage) and signal.tag == 77
    ended(native_watcher, Ending.RETURNED)


def test_spawn_link_tags_from_python(rt: Runtime) -> None:
    """``Runtime.spawn(parent=, link_tag=L)``: the child reports L, the parent reports 0."""
    life = Life(rt)
    heard: queue.Queue[Any] = queue.Queue()
    children: queue.Queue[Process] = queue.Queue()

    def parent(proc: NativeProcess) -> None:
        proc.die_when_link_dies(False)
        child = rt.spawn(life.module, "node", [5, 0], parent=proc.process, link_tag=42)
        children.put(child)
        heard.put(proc.receive())

    # the child traps: the parent gets LinkDied(42)
    first = rt.spawn_native(parent)
    child = children.get(timeout=JOIN)
    assert child.links() == {first.id: 42} and first.links() == {child.id: 0}
    rt.send(child, struct.pack("<QQ", 0, 0), SETUP)
    assert life.collector.ready() is child
    life.command(child, TRAP)
    assert life.collector.expect(COMMAND)[:2] == (5, TRAP)
    signal = heard.get(timeout=JOIN)
    assert isinstance(signal, SignalMessage) and signal.tag == 42
    ended(child, Ending.FAILED)
    ended(first, Ending.RETURNED)

    # the parent fails: the child (flag off) gets an untagged signal message
    def failing_parent(proc: NativeProcess) -> None:
        children.put(rt.spawn(life.module, "node", [6, 0], parent=proc.process, link_tag=43))
        proc.receive(READY)
        raise RuntimeError("parent fails")

    second = rt.spawn_native(failing_parent)
    child = children.get(timeout=JOIN)
    rt.send(child, struct.pack("<QQ", 0, 0), SETUP)
    assert life.collector.ready() is child
    rt.send(second, b"", READY)
    assert "parent fails" in ended(second, Ending.FAILED).message
    assert life.collector.expect(SIGNALLED)[:2] == (6, 0)
    ended(child, Ending.RETURNED)


@pytest.mark.parametrize("target", ["trapped", "killed", "returned"])
@pytest.mark.parametrize("flag", [0, 1])
def test_link_to_already_ended_process(rt: Runtime, target: str, flag: int) -> None:
    """Linking to a process that ended abnormally reports LinkDied at once; to one
    that returned normally, nothing happens."""
    life = Life(rt)
    dead = life.node(1)
    if target == "killed":
        assert rt.kill(dead)
    else:
        life.command(dead, TRAP if target == "trapped" else RETURN)
        life.collector.expect(COMMAND)
    assert dead.join(JOIN) is not None
    linker = life.node(70, flag, link_to=dead)  # links with tag 71
    if target == "returned":
        assert linker.links() == {}
        life.command(linker, RETURN)
        assert life.collector.expect(COMMAND)[:2] == (70, RETURN)
        ended(linker, Ending.RETURNED)
    elif flag == 0:
        assert life.collector.expect(SIGNALLED)[:2] == (70, 71)
        ended(linker, Ending.RETURNED)
    else:
        ended(linker, Ending.KILLED)
    assert life.collector.inbox.empty()


@pytest.mark.parametrize("flag", [True, False])
def test_native_process_linked_to_trapping_wasm(rt: Runtime, flag: bool) -> None:
    """A native process linked to a wasm process that traps is killed, or, with
    die_when_link_dies off, gets a signal message with the tag."""
    life = Life(rt)
    wasm = life.node(3)
    heard: queue.Queue[Any] = queue.Queue()

    def body(proc: NativeProcess) -> None:
        proc.die_when_link_dies(flag)
        proc.link(wasm, 12)
        heard.put("linked")
        heard.put(proc.receive())

    native = rt.spawn_native(body)
    assert heard.get(timeout=JOIN) == "linked"
    life.command(wasm, TRAP)
    ended(wasm, Ending.FAILED)
    if flag:
        ended(native, Ending.KILLED)
        assert heard.empty()
    else:
        signal = heard.get(timeout=JOIN)
        assert isinstance(signal, SignalMessage) and signal.tag == 12
        ended(native, Ending.RETURNED)


@pytest.mark.parametrize("how", ["raise", "return"])
def test_wasm_linked_to_native_process(rt: Runtime, how: str) -> None:
    """A native process that raises notifies a linked wasm process; one that returns does not."""
    life = Life(rt)
    go: queue.Queue[str] = queue.Queue()

    def body(proc: NativeProcess) -> None:
        go.get(timeout=JOIN)
        if how == "raise":
            raise ValueError("native failure")

    native = rt.spawn_native(body)
    wasm = life.node(80, 0, link_to=native)
    go.put("go")
    ended(native, Ending.FAILED if how == "raise" else Ending.RETURNED)
    if how == "raise":
        assert life.collector.expect(SIGNALLED)[:2] == (80, 81)
    else:
        life.command(wasm, RETURN)
        assert life.collector.expect(COMMAND)[:2] == (80, RETURN)
    ended(wasm, Ending.RETURNED)


# -- WASI state only for modules that import WASI -----------------------------------

_NO_WASI = """
(module (memory (export "memory") 1) (func (export "main")))
"""
_WITH_WASI = """
(module
  (import "wasi_snapshot_preview1" "sched_yield" (func $yield (result i32)))
  (memory (export "memory") 1)
  (func (export "main") (drop (call $yield))))
"""


def test_wasi_state_only_for_modules_importing_wasi(backend: str, tmp_path: Any) -> None:
    """A process gets WASI state (descriptors, preopened directories) only if its module
    imports WASI: with a preopen that can no longer be opened, only such a module fails
    to spawn, naming the directory."""
    gone = tmp_path / "gone"
    gone.mkdir()
    rt = Runtime(backend)
    try:
        env = rt.environment(Config(preopens=[("data", str(gone))]))
        plain = env.add_module(wasm_of(_NO_WASI), "plain")
        wasi = env.add_module(wasm_of(_WITH_WASI), "wasi")
        assert (plain.uses_wasi, wasi.uses_wasi) == (False, True)
        for module in (plain, wasi):  # both run while the directory exists
            outcome = rt.spawn(module, "main").join(10)
            assert outcome is not None and outcome.ending is Ending.RETURNED, outcome
        gone.rmdir()
        outcome = rt.spawn(plain, "main").join(10)
        assert outcome is not None and outcome.ending is Ending.RETURNED, outcome
        with pytest.raises(SpawnError, match="cannot preopen"):
            rt.spawn(wasi, "main")
    finally:
        assert rt.shutdown(10) == []
