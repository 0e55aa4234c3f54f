"""ABI conformance of ``lunatic::message`` (spec sections 4, 7.1, 7.2, 7.4), on both engines.

Every function of the namespace through WAT guests: building a data message
(``create_data``, ``write_data``), reading one (``read_data``, ``seek_data``,
``get_tag``, ``data_size``), moving resources (``push_*``/``take_*``,
one shared index space), ``send``, ``receive`` (tags, selective receive,
FIFO order, timeouts leave the slot as it was, signal messages) and
``send_receive_skip_search`` (skips queued messages, timeout leaves the slot
empty, a late reply goes to the mailbox, signal messages count).  Every trap
the spec lists: an empty slot, a signal message where data is needed, out of
bounds ranges, reading past a seek beyond the end, unknown ids, resources
of the wrong kind, taken twice or out of range.

Guests report through the collector of ``tests.lunatic_support`` (handle 0);
peers are native processes handed to the guest as handles 1, 2, ...
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from lunatic_api import TIMEOUT, DataMessage, Process, SignalMessage
from lunatic_api.environment import LunaticModule
from lunatic_api.native import NativeProcess
from lunatic_api.net import StreamRef
from tests.lunatic_support import (
    Lab,
    assert_returned,
    assert_trap,
    guest_wat,
    lab_fixture,  # noqa: F401
    tcp_stream_pair,
)

BUF = 0x100
OUT = 0x800

HELPERS = f"""
(func $rec_slot (local $n i32)
  ;; record the slot's tag, size and the bytes from the read position on
  (call $rec (call $lunatic::message.get_tag))
  (call $rec (call $lunatic::message.data_size))
  (local.set $n (call $lunatic::message.read_data (i32.const {BUF}) (i32.const 1024)))
  (call $rec_mem (i32.const {BUF}) (local.get $n)))
(func $expect_data (param $tag i64)
  ;; receive a data message with $tag (waiting as long as needed) and record it
  (if (i32.ne (call $lunatic::message.receive (local.get $tag) (i32.const 0)) (i32.const 0))
    (then unreachable))
  (call $rec_slot))
(func $send_bytes (param $to i64) (param $tag i64) (param $ptr i32) (param $len i32)
  (call $lunatic::message.create_data (local.get $tag) (i64.const 0))
  (drop (call $lunatic::message.write_data (local.get $ptr) (local.get $len)))
  (call $lunatic::message.send (local.get $to)))
"""


def module(lab: Lab, body: str, data: list[tuple[int, bytes]] | None = None) -> LunaticModule:
    """A guest with the helpers above and ``body`` (which exports its functions)."""
    return lab.module(HELPERS, body, data=data or [])


def failing_peer(proc: NativeProcess) -> None:
    """A native process that fails (abnormally) on its first message."""
    proc.receive()
    raise RuntimeError("the peer fails on purpose")


def echo(reply_tag: int | None = None, noise: bool = False) -> Callable[[NativeProcess], None]:
    """A native process answering one request: to the request's resource 0, with the
    request's tag (or ``reply_tag``), after an unrelated tag-8 message if ``noise``."""
    def body(proc: NativeProcess) -> None:
        request = proc.receive()
        assert isinstance(request, DataMessage)
        to = request.resources[0]
        if noise:
            proc.send(to, b"noise", tag=8)
        proc.send(to, b"reply", tag=request.tag if reply_tag is None else reply_tag)
    return body


# ---------------------------------------------------------------------------
# building and reading


def test_write_data_appends_and_send_delivers_it(lab: Lab) -> None:
    """``write_data`` returns the length and appends; ``send`` delivers tag and bytes."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 5) (i64.const 0))
        (call $rec32 (call $lunatic::message.write_data (i32.const 0) (i32.const 5)))
        (call $rec32 (call $lunatic::message.write_data (i32.const 5) (i32.const 6)))
        (call $rec32 (call $lunatic::message.write_data (i32.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.data_size))
        (call $rec (call $lunatic::message.get_tag))
        (call $lunatic::message.send (call $handle (i32.const 0)))
        (call $flush))""", [(0, b"hello world")]))
    assert_returned(run)
    assert run.records == [5, 6, 0, 11, 5]
    (message,) = run.messages
    assert isinstance(message, DataMessage)
    assert (message.tag, bytes(message.buffer), message.read_pos, message.resources) == (
        5, b"hello world", 0, [])


def test_write_data_ignores_the_read_position(lab: Lab) -> None:
    """Bytes always go to the end of the buffer, wherever reading stands."""
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 6)))
        (call $rec32 (call $lunatic::message.read_data (i32.const {BUF}) (i32.const 2)))
        (drop (call $lunatic::message.write_data (i32.const 6) (i32.const 2)))
        (call $rec_slot)
        (call $lunatic::message.seek_data (i64.const 0))
        (call $rec_slot)
        (call $flush))""", [(0, b"abcdefXY")]))
    assert_returned(run)
    assert run.records == [2, 0, 8, b"cdefXY", 0, 8, b"abcdefXY"]


def test_read_data_partial_reads_seek_and_end(lab: Lab) -> None:
    """``read_data`` copies ``min(len, size - pos)``, 0 at the end; ``seek_data`` moves
    the position; exactly at the end reads 0; ``data_size`` stays the total."""
    run = lab.run(module(lab, f"""
      (func $read (param $len i32)
        (local $n i32)
        (local.set $n (call $lunatic::message.read_data (i32.const {BUF}) (local.get $len)))
        (call $rec32 (local.get $n))
        (call $rec_mem (i32.const {BUF}) (local.get $n)))
      (func (export "main")
        (call $setup)
        (if (call $lunatic::message.receive (i64.const 3) (i32.const 0)) (then unreachable))
        (call $rec (call $lunatic::message.data_size))
        (call $read (i32.const 4))
        (call $read (i32.const 100))
        (call $read (i32.const 10))
        (call $lunatic::message.seek_data (i64.const 2))
        (call $read (i32.const 3))
        (call $lunatic::message.seek_data (i64.const 10))
        (call $read (i32.const 5))
        (call $read (i32.const 0))
        (call $rec (call $lunatic::message.data_size))
        (call $flush))"""), before=[(3, b"0123456789")])
    assert_returned(run)
    assert run.records == [10, 4, b"0123", 6, b"456789", 0, b"", 3, b"234", 0, b"", 0, b"", 10]


@pytest.mark.parametrize("length", [1, 0])
def test_read_data_after_seek_past_the_end_traps(lab: Lab, length: int) -> None:
    """``seek_data`` itself never checks; the next ``read_data`` traps (even of 0 bytes)."""
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 4)))
        (call $lunatic::message.seek_data (i64.const 5))
        (call $rec (call $lunatic::message.data_size))
        (call $lunatic::message.seek_data (i64.const -1))
        (call $rec (call $lunatic::message.get_tag))
        (drop (call $lunatic::message.read_data (i32.const {BUF}) (i32.const {length}))))"""))
    assert_trap(run, "lunatic::message.read_data", "past the end")


def test_seek_past_the_end_and_back(lab: Lab) -> None:
    """A seek past the end is harmless until a read: seeking back makes reads work."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 4)))
        (call $lunatic::message.seek_data (i64.const 1000))
        (call $lunatic::message.seek_data (i64.const 1))
        (call $rec_slot)
        (call $flush))""", [(0, b"wxyz")]))
    assert_returned(run)
    assert run.records == [0, 4, b"xyz"]


@pytest.mark.parametrize("tag", [0, 1, -7, 2**63 - 1, -(2**63)])
def test_get_tag_returns_the_signed_tag(lab: Lab, tag: int) -> None:
    """Tags are signed i64; 0 means untagged; ``send`` keeps the tag."""
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const {tag}) (i64.const 0))
        (call $rec (call $lunatic::message.get_tag))
        (call $lunatic::message.send (call $handle (i32.const 0)))
        (call $flush))"""))
    assert_returned(run)
    assert run.records == [tag]
    assert [m.tag for m in run.messages] == [tag]


def test_create_data_replaces_the_slot(lab: Lab) -> None:
    """A received message is replaced by a fresh empty one; the capacity hint changes nothing."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $expect_data (i64.const 4))
        (call $lunatic::message.create_data (i64.const 2) (i64.const 100000))
        (call $rec_slot)
        (call $lunatic::message.create_data (i64.const 0) (i64.const -1))
        (call $rec_slot)
        (call $flush))"""), before=[(4, b"old")])
    assert_returned(run)
    assert run.records == [4, 3, b"old", 2, 0, b"", 0, 0, b""]


def test_replacing_the_slot_releases_its_resources(lab: Lab) -> None:
    """``create_data`` and a later ``receive`` drop the slot's untaken resources: a TCP
    stream whose last reference was in the slot closes (the peer sees EOF)."""
    first, peer1 = tcp_stream_pair()
    second, peer2 = tcp_stream_pair()
    with peer1, peer2:
        guest = lab.spawn(module(lab, """
          (func $pause (param $n i64)
            (call $send_bytes (call $handle (i32.const 0)) (local.get $n) (i32.const 0) (i32.const 0))
            (if (call $lunatic::message.receive (i64.const 77) (i32.const 0)) (then unreachable)))
          (func (export "main")
            (call $setup)
            (if (call $lunatic::message.receive (i64.const 1) (i32.const 0)) (then unreachable))
            (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
            (call $pause (i64.const 11))
            (if (call $lunatic::message.receive (i64.const 2) (i32.const 0)) (then unreachable))
            (if (call $lunatic::message.receive (i64.const 3) (i32.const 0)) (then unreachable))
            (call $pause (i64.const 12)))"""),
            before=[(1, b"", [first]), (2, b"", [second]), (3, b"x")])
        lab.wait_messages(1)
        assert first.stream.closed and not second.stream.closed
        assert peer1.recv(1) == b""
        lab.runtime.send(guest, tag=77)
        lab.wait_messages(2)
        assert second.stream.closed
        assert peer2.recv(1) == b""
        lab.runtime.send(guest, tag=77)
        assert_returned(lab.join(guest))


# ---------------------------------------------------------------------------
# traps: empty slot, signal message, bounds

EMPTY_SLOT_CALLS = {
    "write_data": "(drop (call $lunatic::message.write_data (i32.const 0) (i32.const 1)))",
    "read_data": "(drop (call $lunatic::message.read_data (i32.const 0) (i32.const 1)))",
    "seek_data": "(call $lunatic::message.seek_data (i64.const 0))",
    "get_tag": "(drop (call $lunatic::message.get_tag))",
    "data_size": "(drop (call $lunatic::message.data_size))",
    "push_process": "(drop (call $lunatic::message.push_process (call $lunatic::process.this)))",
    "take_process": "(drop (call $lunatic::message.take_process (i64.const 0)))",
    "push_tcp_stream": "(drop (call $lunatic::message.push_tcp_stream (i64.const 0)))",
    "take_tcp_stream": "(drop (call $lunatic::message.take_tcp_stream (i64.const 0)))",
    "send": "(call $lunatic::message.send (call $lunatic::process.this))",
    "send_receive_skip_search": "(drop (call $lunatic::message.send_receive_skip_search"
                                " (call $lunatic::process.this) (i32.const 1)))",
}


@pytest.mark.parametrize("function", sorted(EMPTY_SLOT_CALLS))
def test_empty_slot_traps(lab: Lab, function: str) -> None:
    """A fresh process has an empty scratch slot: everything but ``create_data`` and
    ``receive`` traps on it."""
    run = lab.run(lab.module(f'(func (export "main") {EMPTY_SLOT_CALLS[function]})'),
                  setup=False)
    reasons = () if function == "push_tcp_stream" else ("no message in the scratch slot",)
    assert_trap(run, f"lunatic::message.{function}", *reasons)


@pytest.mark.parametrize("after", ["send", "setup"])
def test_slot_is_empty_after_send(lab: Lab, after: str) -> None:
    """``send`` takes the message out of the slot (``$setup`` ends with one, too)."""
    send = ("(call $lunatic::message.create_data (i64.const 0) (i64.const 0))"
            "(call $lunatic::message.send (call $handle (i32.const 0)))" if after == "send" else "")
    run = lab.run(lab.module(f"""
      (func (export "main")
        (call $setup)
        {send}
        (drop (call $lunatic::message.data_size)))"""))
    assert_trap(run, "lunatic::message.data_size", "no message in the scratch slot")


SIGNAL_SLOT_CALLS = {
    "write_data": "(drop (call $lunatic::message.write_data (i32.const 0) (i32.const 1)))",
    "read_data": "(drop (call $lunatic::message.read_data (i32.const 0) (i32.const 1)))",
    "seek_data": "(call $lunatic::message.seek_data (i64.const 0))",
    "data_size": "(drop (call $lunatic::message.data_size))",
    "push_process": "(drop (call $lunatic::message.push_process (call $lunatic::process.this)))",
    "take_process": "(drop (call $lunatic::message.take_process (i64.const 0)))",
    "push_tcp_stream": "(drop (call $lunatic::message.push_tcp_stream (i64.const 0)))",
    "take_tcp_stream": "(drop (call $lunatic::message.take_tcp_stream (i64.const 0)))",
}

GET_SIGNAL = """
  (call $setup)
  (call $lunatic::process.die_when_link_dies (i32.const 0))
  (call $lunatic::process.link (i64.const 42) (call $handle (i32.const 1)))
  (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
  (call $lunatic::message.send (call $handle (i32.const 1)))
"""
"""Guest code: link to handle 1 (a ``failing_peer``) with tag 42 and make it fail."""


@pytest.mark.parametrize("function", sorted(SIGNAL_SLOT_CALLS))
def test_data_accessors_trap_on_a_signal_message(lab: Lab, function: str) -> None:
    """A ``LinkDied`` turned message (``receive`` returned 1) has no data: every data
    accessor traps on it."""
    peer = lab.spawn_native(failing_peer)
    run = lab.run(lab.module(f"""
      (func (export "main")
        {GET_SIGNAL}
        (if (i32.ne (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (i32.const 1))
          (then unreachable))
        {SIGNAL_SLOT_CALLS[function]})"""), handles=[peer])
    reason = () if function == "push_tcp_stream" else ("signal message",)
    assert_trap(run, f"lunatic::message.{function}", *reason)


def test_receive_a_signal_message_get_tag_and_forward_it(lab: Lab) -> None:
    """``receive`` returns 1 for a signal message, ``get_tag`` gives the link tag, and the
    message can be forwarded with ``send`` like any other."""
    peer = lab.spawn_native(failing_peer)
    run = lab.run(lab.module(f"""
      (func (export "main")
        {GET_SIGNAL}
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $lunatic::message.send (call $handle (i32.const 0)))
        (call $flush))"""), handles=[peer])
    assert_returned(run)
    assert run.records == [1, 42]
    (message,) = run.messages
    assert isinstance(message, SignalMessage) and message.tag == 42


def test_signal_message_is_selected_by_its_tag(lab: Lab) -> None:
    """A tagged signal message takes part in selective receive like a data message."""
    peer = lab.spawn_native(failing_peer)
    run = lab.run(lab.module(f"""
      (func (export "main")
        {GET_SIGNAL}
        (call $rec32 (call $lunatic::message.receive (i64.const 42) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))"""), handles=[peer], before=[(5, b"first")])
    assert_returned(run)
    assert run.records == [1, 42, 0, 5]


def test_untagged_signal_message_only_for_receive_0(lab: Lab) -> None:
    """A signal message of an untagged link is invisible to ``receive(t != 0)``."""
    peer = lab.spawn_native(failing_peer)
    guest = lab.spawn(lab.module("""
      (func (export "main")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $lunatic::process.link (i64.const 0) (call $handle (i32.const 1)))
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (call $lunatic::message.send (call $handle (i32.const 1)))
        ;; Python sends tag 9 once the peer has ended: the signal is queued by then
        (if (call $lunatic::message.receive (i64.const 9) (i32.const 0)) (then unreachable))
        (call $rec32 (call $lunatic::message.receive (i64.const 1) (i32.const 1)))
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))"""), handles=[peer])
    lab.join(peer)
    lab.runtime.send(guest, tag=9)
    assert_returned(lab.join(guest))
    assert lab.wait_reports(1)[0] == [TIMEOUT, 1, 0]


@pytest.mark.parametrize("call, ok", [
    ("write_data (i32.const 65535) (i32.const 1)", True),
    ("write_data (i32.const 65536) (i32.const 0)", True),
    ("read_data (i32.const 65536) (i32.const 0)", True),
    ("write_data (i32.const 65535) (i32.const 2)", False),
    ("write_data (i32.const 65537) (i32.const 0)", False),
    ("write_data (i32.const 0) (i32.const -1)", False),
    ("read_data (i32.const 65533) (i32.const 4)", False),
    ("read_data (i32.const -1) (i32.const 1)", False),
])
def test_bounds_of_write_data_and_read_data(lab: Lab, call: str, ok: bool) -> None:
    """Ranges must lie inside memory; an empty range at the very end is fine."""
    run = lab.run(lab.module(f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 8)))
        (call $rec32 (call $lunatic::message.{call}))
        (call $flush))"""))
    if ok:
        assert_returned(run)
        assert run.records == [1 if "(i32.const 1)" in call else 0]
    else:
        assert_trap(run, "lunatic::message." + call.split(" ")[0], "outside guest memory")


# ---------------------------------------------------------------------------
# resources


def test_push_process_indices_and_the_handle_moves(lab: Lab) -> None:
    """``push_process`` returns 0, 1, ... and the receiver gets the processes in order."""
    run = lab.run(lab.module("""
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 3) (i64.const 0))
        (call $rec (call $lunatic::message.push_process (call $lunatic::process.this)))
        (call $rec (call $lunatic::message.push_process
          (call $lunatic::process.clone_process (call $handle (i32.const 0)))))
        (call $rec (call $lunatic::message.push_process (call $lunatic::process.this)))
        (call $lunatic::message.send (call $handle (i32.const 0)))
        (call $flush))"""))
    assert_returned(run)
    assert run.records == [0, 1, 2]
    (message,) = run.messages
    assert isinstance(message, DataMessage)
    assert message.resources == [run.process, lab.collector, run.process]


def test_push_process_removes_the_handle_from_the_table(lab: Lab) -> None:
    """The pushed id is gone from the sender's table: using it traps."""
    run = lab.run(lab.module("""
      (func (export "main") (local $me i64)
        (call $setup)
        (local.set $me (call $lunatic::process.this))
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.push_process (local.get $me)))
        (drop (call $lunatic::process.clone_process (local.get $me))))"""))
    assert_trap(run, "lunatic::process.clone_process", "unknown process handle 1")


@pytest.mark.parametrize("function", ["push_process", "push_tcp_stream"])
def test_push_unknown_id_traps(lab: Lab, function: str) -> None:
    """Pushing an id that is not in the table traps."""
    run = lab.run(lab.module(f"""
      (func (export "main")
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.{function} (i64.const 12))))"""), setup=False)
    assert_trap(run, f"lunatic::message.{function}", "unknown", "12")


def test_processes_and_streams_share_one_index_space(lab: Lab) -> None:
    """``push_process`` and ``push_tcp_stream`` number one list; ``take_tcp_stream``
    gives a stream id that can be pushed again, and the receiver gets the same socket."""
    ref, peer = tcp_stream_pair()
    with peer:
        run = lab.run(lab.module("""
          (func (export "main") (local $s i64)
            (call $setup)
            (if (call $lunatic::message.receive (i64.const 1) (i32.const 0)) (then unreachable))
            (local.set $s (call $lunatic::message.take_tcp_stream (i64.const 0)))
            (call $rec (local.get $s))
            (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
            (call $rec (call $lunatic::message.push_process (call $lunatic::process.this)))
            (call $rec (call $lunatic::message.push_tcp_stream (local.get $s)))
            (call $rec (call $lunatic::message.push_process (call $lunatic::process.this)))
            (call $lunatic::message.send (call $handle (i32.const 0)))
            (call $flush))"""), before=[(1, b"", [ref])])
        assert_returned(run)
        assert run.records == [0, 0, 1, 2]
        (message,) = run.messages
        assert isinstance(message, DataMessage)
        first, stream, last = message.resources
        assert first is run.process and last is run.process
        assert isinstance(stream, StreamRef) and stream.stream is ref.stream
        assert not ref.stream.closed  # the reference travelled: still open


def test_take_process_gives_a_working_handle_and_keeps_indices(lab: Lab) -> None:
    """``take_process`` returns the next free id; taken entries stay empty, so the other
    indices do not move; the handle works (here: a send to it arrives)."""
    native = lab.spawn_native(lambda proc: proc.sleep(60), name="target")
    run = lab.run(lab.module("""
      (func (export "main") (local $a i64) (local $b i64) (local $c i64)
        (call $setup)
        (if (call $lunatic::message.receive (i64.const 1) (i32.const 0)) (then unreachable))
        (local.set $c (call $lunatic::message.take_process (i64.const 2)))
        (local.set $a (call $lunatic::message.take_process (i64.const 0)))
        (local.set $b (call $lunatic::message.take_process (i64.const 1)))
        (call $rec (local.get $c)) (call $rec (local.get $a)) (call $rec (local.get $b))
        (call $lunatic::message.create_data (i64.const 11) (i64.const 0))
        (call $lunatic::message.send (local.get $c))
        (call $lunatic::message.create_data (i64.const 12) (i64.const 0))
        (call $lunatic::message.send (local.get $a))
        (call $flush))"""), before=[(1, b"", [lab.collector, native, native])])
    assert_returned(run)
    # handle 0 is the collector (taken by $setup); the taken ones follow
    assert run.records == [1, 2, 3]
    assert [m.tag for m in run.messages] == [12]
    assert native.mailbox_size() == 1
    lab.runtime.kill(native)


@pytest.mark.parametrize("index, reason", [(1, "already taken"), (3, "no resource 3"),
                                           (-1, "no resource 18446744073709551615")])
def test_take_process_twice_or_out_of_range_traps(lab: Lab, index: int, reason: str) -> None:
    """An entry can be taken once; an index past the list traps."""
    run = lab.run(lab.module(f"""
      (func (export "main")
        (call $setup)
        (if (call $lunatic::message.receive (i64.const 1) (i32.const 0)) (then unreachable))
        (drop (call $lunatic::message.take_process (i64.const 1)))
        (drop (call $lunatic::message.take_process (i64.const {index}))))"""),
        before=[(1, b"", [lab.collector, lab.collector, lab.collector])])
    assert_trap(run, "lunatic::message.take_process", reason)


@pytest.mark.parametrize("function, index, reason", [
    ("take_process", 1, "is a TCP stream"),
    ("take_tcp_stream", 0, "is a process"),
    ("take_tcp_stream", 2, "no resource 2"),
])
def test_take_of_the_wrong_kind_traps(lab: Lab, function: str, index: int, reason: str) -> None:
    """A process entry is not a stream and the other way round."""
    ref, peer = tcp_stream_pair()
    with peer:
        run = lab.run(lab.module(f"""
          (func (export "main")
            (call $setup)
            (if (call $lunatic::message.receive (i64.const 1) (i32.const 0)) (then unreachable))
            (drop (call $lunatic::message.{function} (i64.const {index}))))"""),
            before=[(1, b"", [lab.collector, ref])])
        assert_trap(run, f"lunatic::message.{function}", reason)


def test_take_tcp_stream_twice_traps(lab: Lab) -> None:
    """A stream entry can be taken once."""
    ref, peer = tcp_stream_pair()
    with peer:
        run = lab.run(lab.module("""
          (func (export "main")
            (call $setup)
            (if (call $lunatic::message.receive (i64.const 1) (i32.const 0)) (then unreachable))
            (drop (call $lunatic::message.take_tcp_stream (i64.const 0)))
            (drop (call $lunatic::message.take_tcp_stream (i64.const 0))))"""),
            before=[(1, b"", [ref])])
        assert_trap(run, "lunatic::message.take_tcp_stream", "already taken")


# ---------------------------------------------------------------------------
# send


def test_send_unknown_id_traps(lab: Lab) -> None:
    """A process id that is not in the table traps."""
    run = lab.run(lab.module("""
      (func (export "main")
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (call $lunatic::message.send (i64.const 99)))"""), setup=False)
    assert_trap(run, "lunatic::message.send", "unknown process handle 99")


def test_send_checks_the_slot_before_the_id(lab: Lab) -> None:
    """An empty slot is reported even when the id is unknown too."""
    run = lab.run(lab.module("""
      (func (export "main") (call $lunatic::message.send (i64.const 99)))"""), setup=False)
    assert_trap(run, "lunatic::message.send", "no message in the scratch slot")


def test_send_to_a_dead_process_is_dropped_silently(lab: Lab) -> None:
    """Fire and forget: a target that has ended drops the message, the sender goes on."""
    dead = lab.spawn_native(lambda proc: None, name="dead")
    lab.join(dead)
    run = lab.run(lab.module("""
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 1) (i64.const 0))
        (drop (call $lunatic::message.push_process (call $lunatic::process.this)))
        (call $lunatic::message.send (call $handle (i32.const 1)))
        (call $rec (i64.const 1))
        (call $flush))"""), handles=[dead])
    assert_returned(run)
    assert run.records == [1]
    assert dead.mailbox_size() == 0


def test_messages_between_a_pair_arrive_in_order(lab: Lab) -> None:
    """Several sends to one process arrive whole and in order."""
    run = lab.run(lab.module("""
      (func $send (param $tag i64) (param $len i32)
        (call $lunatic::message.create_data (local.get $tag) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (local.get $len)))
        (call $lunatic::message.send (call $handle (i32.const 0))))
      (func (export "main")
        (call $setup)
        (call $send (i64.const 3) (i32.const 1))
        (call $send (i64.const 1) (i32.const 2))
        (call $send (i64.const 2) (i32.const 3)))""", data=[(0, b"abc")]))
    assert_returned(run)
    assert [(m.tag, bytes(m.buffer)) for m in run.messages if isinstance(m, DataMessage)] == [
        (3, b"a"), (1, b"ab"), (2, b"abc")]


@pytest.mark.parametrize("rewind", [False, True])
def test_forwarding_keeps_read_position_tag_and_resources(lab: Lab, rewind: bool) -> None:
    """A received message can be sent on; its read position travels with it unless the
    sender seeks back; taken resources stay empty entries."""
    seek = "(call $lunatic::message.seek_data (i64.const 0))" if rewind else ""
    run = lab.run(lab.module(f"""
      (func (export "main")
        (call $setup)
        (if (call $lunatic::message.receive (i64.const 6) (i32.const 0)) (then unreachable))
        (drop (call $lunatic::message.read_data (i32.const {BUF}) (i32.const 5)))
        (drop (call $lunatic::message.take_process (i64.const 0)))
        {seek}
        (call $lunatic::message.send (call $handle (i32.const 0))))"""),
        before=[(6, b"hello world", [lab.collector, lab.collector])])
    assert_returned(run)
    (message,) = run.messages
    assert isinstance(message, DataMessage)
    assert (message.tag, bytes(message.buffer)) == (6, b"hello world")
    assert message.read_pos == (0 if rewind else 5)
    assert message.resources == [None, lab.collector]


def test_send_to_self(lab: Lab) -> None:
    """A process can send to its own handle and receive the message."""
    run = lab.run(lab.module(HELPERS, """
      (func (export "main")
        (call $setup)
        (call $send_bytes (call $lunatic::process.this) (i64.const 4) (i32.const 0) (i32.const 2))
        (call $expect_data (i64.const 4))
        (call $flush))""", data=[(0, b"me")]))
    assert_returned(run)
    assert run.records == [4, 2, b"me"]


# ---------------------------------------------------------------------------
# receive


def test_selective_receive_order(lab: Lab) -> None:
    """``receive(0)`` takes the oldest of any tag, ``receive(t)`` the oldest with tag t;
    the rest keep their order."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $expect_data (i64.const 2))
        (call $expect_data (i64.const 0))
        (call $expect_data (i64.const -3))
        (call $expect_data (i64.const 0))
        (call $expect_data (i64.const 0))
        (call $rec32 (call $lunatic::message.receive (i64.const 2) (i32.const 1)))
        (call $flush))"""),
        before=[(0, b"a"), (2, b"b"), (1, b"c"), (2, b"d"), (-3, b"e")])
    assert_returned(run)
    assert run.records == [2, 1, b"b", 0, 1, b"a", -3, 1, b"e", 1, 1, b"c", 2, 1, b"d",
                           TIMEOUT]


def test_receive_with_a_tag_never_takes_untagged_messages(lab: Lab) -> None:
    """Only ``receive(0)`` sees an untagged message."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $rec32 (call $lunatic::message.receive (i64.const 1) (i32.const 1)))
        (call $expect_data (i64.const 0))
        (call $flush))"""), before=[(0, b"u")])
    assert_returned(run)
    assert run.records == [TIMEOUT, 0, 1, b"u"]


def test_receive_waits_for_a_matching_message(lab: Lab) -> None:
    """``receive(7)`` waits for a tag-7 message; others arriving meanwhile are queued."""
    guest = lab.spawn(module(lab, """
      (func (export "main")
        (call $setup)
        (call $expect_data (i64.const 7))
        (call $expect_data (i64.const 0))
        (call $flush))"""))
    lab.runtime.send(guest, b"three", tag=3)
    lab.runtime.send(guest, b"seven", tag=7)
    assert_returned(lab.join(guest))
    assert lab.wait_reports(1)[0] == [7, 5, b"seven", 3, 5, b"three"]


def test_receive_timeout_leaves_the_slot_as_it_was(lab: Lab) -> None:
    """9027 on timeout; the message received before is still in the slot, read position
    included."""
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        (if (call $lunatic::message.receive (i64.const 4) (i32.const 0)) (then unreachable))
        (drop (call $lunatic::message.read_data (i32.const {BUF}) (i32.const 1)))
        (call $rec32 (call $lunatic::message.receive (i64.const 99) (i32.const 5)))
        (call $rec_slot)
        (call $flush))"""), before=[(4, b"kept")])
    assert_returned(run)
    assert run.records == [TIMEOUT, 4, 4, b"ept"]


def test_receive_timeout_leaves_an_empty_slot_empty(lab: Lab) -> None:
    """After a timeout on an empty slot, the slot is still empty (``get_tag`` traps)."""
    run = lab.run(lab.module("""
      (func (export "main")
        (call $setup)
        (if (i32.ne (call $lunatic::message.receive (i64.const 0) (i32.const 2))
                    (i32.const 9027))
          (then unreachable))
        (drop (call $lunatic::message.get_tag)))"""))
    assert_trap(run, "lunatic::message.get_tag", "no message in the scratch slot")


def test_receive_timeout_is_unsigned(lab: Lab) -> None:
    """``timeout_ms`` is a u32: -1 is a long timeout, not "none"; a queued message is
    taken at once."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const -1)))
        (call $flush))"""), before=[(0, b"x")])
    assert_returned(run)
    assert run.records == [0]


def test_receive_replaces_the_slot(lab: Lab) -> None:
    """A successful receive throws away what was in the slot (a message being built)."""
    run = lab.run(module(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::message.create_data (i64.const 1) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 3)))
        (call $expect_data (i64.const 0))
        (call $flush))""", [(0, b"new")]), before=[(2, b"in")])
    assert_returned(run)
    assert run.records == [2, 2, b"in"]


# ---------------------------------------------------------------------------
# send_receive_skip_search

REQUEST = """
  (call $lunatic::message.create_data (i64.const {tag}) (i64.const 0))
  (drop (call $lunatic::message.push_process (call $lunatic::process.this)))
  (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 3)))
"""
"""Guest code: a request with ``tag`` carrying the guest's own handle as resource 0."""


def test_skip_search_skips_queued_messages(lab: Lab) -> None:
    """The reply is the next *new* message with the tag; the queued one with the same tag
    and a non-matching new one stay in the mailbox, in order."""
    responder = lab.spawn_native(echo(noise=True))
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        {REQUEST.format(tag=5)}
        (call $rec32 (call $lunatic::message.send_receive_skip_search
          (call $handle (i32.const 1)) (i32.const 0)))
        (call $rec_slot)
        (call $expect_data (i64.const 5))
        (call $expect_data (i64.const 0))
        (call $flush))""", [(0, b"req")]), handles=[responder], before=[(5, b"old")])
    assert_returned(run)
    assert run.records == [0, 5, 5, b"reply", 5, 3, b"old", 8, 5, b"noise"]


def test_skip_search_with_tag_0_takes_any_new_message(lab: Lab) -> None:
    """With tag 0 the next newly arriving message of any tag is the reply; a queued
    untagged one is not."""
    responder = lab.spawn_native(echo(reply_tag=9))
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        {REQUEST.format(tag=0)}
        (call $rec32 (call $lunatic::message.send_receive_skip_search
          (call $handle (i32.const 1)) (i32.const 0)))
        (call $rec_slot)
        (call $expect_data (i64.const 0))
        (call $flush))""", [(0, b"req")]), handles=[responder], before=[(0, b"old")])
    assert_returned(run)
    assert run.records == [0, 9, 5, b"reply", 0, 3, b"old"]


def late_responder(proc: NativeProcess) -> None:
    """Answers a request (tag 6) only once a tag-66 "go" message has arrived."""
    request = proc.receive(6)
    proc.receive(66)
    assert isinstance(request, DataMessage)
    proc.send(request.resources[0], b"late", tag=6)


def test_skip_search_timeout_then_the_reply_lands_in_the_mailbox(lab: Lab) -> None:
    """9027 when no reply came in time; a later reply is queued like any message."""
    responder = lab.spawn_native(late_responder)
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        {REQUEST.format(tag=6)}
        (call $rec32 (call $lunatic::message.send_receive_skip_search
          (call $handle (i32.const 1)) (i32.const 5)))
        (call $lunatic::message.create_data (i64.const 66) (i64.const 0))
        (call $lunatic::message.send (call $handle (i32.const 1)))
        (call $expect_data (i64.const 6))
        (call $flush))""", [(0, b"req")]), handles=[responder])
    assert_returned(run)
    assert run.records == [TIMEOUT, 6, 4, b"late"]


def test_skip_search_timeout_leaves_the_slot_empty(lab: Lab) -> None:
    """After 9027 the slot is empty: the request is gone and nothing replaced it."""
    responder = lab.spawn_native(late_responder)
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        {REQUEST.format(tag=6)}
        (if (i32.ne (call $lunatic::message.send_receive_skip_search
                      (call $handle (i32.const 1)) (i32.const 2))
                    (i32.const 9027))
          (then unreachable))
        (drop (call $lunatic::message.get_tag)))""", [(0, b"req")]), handles=[responder])
    assert_trap(run, "lunatic::message.get_tag", "no message in the scratch slot")


def test_skip_search_unknown_id_traps(lab: Lab) -> None:
    """The target id must be in the table."""
    run = lab.run(lab.module("""
      (func (export "main")
        (call $lunatic::message.create_data (i64.const 1) (i64.const 0))
        (drop (call $lunatic::message.send_receive_skip_search (i64.const 99) (i32.const 1))))"""),
        setup=False)
    assert_trap(run, "lunatic::message.send_receive_skip_search", "unknown process handle 99")


def test_skip_search_returns_0_for_a_signal_message(lab: Lab) -> None:
    """A matching ``LinkDied`` message ends the wait with 0, not 1; the slot then holds a
    signal message (its tag is readable, its data is not)."""
    peer = lab.spawn_native(failing_peer)
    run = lab.run(lab.module("""
      (func (export "main")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $lunatic::process.link (i64.const 21) (call $handle (i32.const 1)))
        (call $lunatic::message.create_data (i64.const 21) (i64.const 0))
        (call $rec32 (call $lunatic::message.send_receive_skip_search
          (call $handle (i32.const 1)) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $lunatic::message.send (call $handle (i32.const 0)))
        (call $flush))"""), handles=[peer])
    assert_returned(run)
    assert run.records == [0, 21]
    (message,) = run.messages
    assert isinstance(message, SignalMessage) and message.tag == 21


def test_skip_search_delivers_to_the_target(lab: Lab) -> None:
    """The request itself arrives like a ``send`` (tag, bytes, resources)."""
    seen: list[DataMessage] = []

    def responder(proc: NativeProcess) -> None:
        request = proc.receive()
        assert isinstance(request, DataMessage)
        seen.append(request)
        proc.send(request.resources[0], b"ok", tag=request.tag)

    target = lab.spawn_native(responder)
    run = lab.run(module(lab, f"""
      (func (export "main")
        (call $setup)
        {REQUEST.format(tag=-4)}
        (call $rec32 (call $lunatic::message.send_receive_skip_search
          (call $handle (i32.const 1)) (i32.const 0)))
        (call $rec_slot)
        (call $flush))""", [(0, b"req")]), handles=[target])
    assert_returned(run)
    assert run.records == [0, -4, 2, b"ok"]
    (request,) = seen
    assert (request.tag, bytes(request.buffer)) == (-4, b"req")
    assert isinstance(request.resources[0], Process)
    assert request.resources[0] is run.process


# ---------------------------------------------------------------------------
# guest memory (spec 1.3)

NEEDS_MEMORY = {
    "lunatic::message.write_data":
        "(call $lunatic::message.create_data (i64.const 0) (i64.const 0))"
        "(drop (call $lunatic::message.write_data (i32.const 0) (i32.const 1)))",
    "lunatic::message.read_data":
        "(call $lunatic::message.create_data (i64.const 0) (i64.const 0))"
        "(drop (call $lunatic::message.read_data (i32.const 0) (i32.const 1)))",
    "lunatic::process.id": "(call $lunatic::process.id (call $lunatic::process.this) (i32.const 0))",
}


@pytest.mark.parametrize("function", sorted(NEEDS_MEMORY))
@pytest.mark.parametrize("memory", ["none", "not exported"])
def test_memory_access_without_a_memory_export_traps(lab: Lab, function: str,
                                                     memory: str) -> None:
    """Host functions use the export named ``memory``; without it they trap (functions
    that touch no memory still work)."""
    wat = guest_wat(f"""(func (export "main")
        (drop (call $lunatic::process.this))
        {NEEDS_MEMORY[function]})""", pages=None if memory == "none" else 1,
                    exports_memory=False)
    run = lab.run(lab.env.add_module(wat), setup=False)
    assert_trap(run, function, "does not export a memory")


def test_zero_length_range_without_a_memory_export_traps(lab: Lab) -> None:
    """Spec 1.3: the memory export is looked up even for an empty range."""
    wat = guest_wat("""(func (export "main")
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 0))))""", pages=None)
    run = lab.run(lab.env.add_module(wat), setup=False)
    assert_trap(run, "lunatic::message.write_data", "memory")
