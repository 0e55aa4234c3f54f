"""``lunatic::networking`` (spec sections 6 and 7.11) on both engines, with real sockets.

WAT guests (built with ``tests/lunatic_net_support.py``) call every networking
function against Python peers on 127.0.0.1 and ::1 and report what they got
to a native collector process: return codes, values written to out-pointers,
error texts, bytes read.  Covered: ``resolve`` / ``resolve_next`` /
``drop_dns_iterator``, ``tcp_bind`` / ``drop_tcp_listener`` / ``tcp_accept``,
``tcp_connect`` (success, refused, timed out), ``tcp_write_vectored``,
``tcp_read`` (data, end of stream, timeout, reset), ``tcp_flush``,
``clone_tcp_stream`` / ``drop_tcp_stream`` (the socket closes with its last
reference), streams moving between processes in messages, every trap of
section 6, and the lifecycle rules: a killed process blocked in a networking
call ends promptly and a process that ends any way closes its sockets.  Last,
a TCP echo server written in WAT (one process per connection, the stream
passed in a message) serves 100 concurrent Python clients.

Not reachable with real sockets and no mocks, hence not tested: ``resolve``'s
"Resolve call timed out" (the name lookup must be slow; it is accepted as one
of the outcomes of the failing-lookup test), an *empty* iterator from
``resolve`` (every successful real lookup yields an address; ``resolve_next``
returning 1 without writing, as on an exhausted iterator, is tested) and
``tcp_accept`` returning 1 (accept failures need e.g. a file-descriptor
shortage of the whole test run).
"""

from __future__ import annotations

import random
import select
import socket
import struct
import threading
import time
from collections.abc import Iterator

import pytest

from lunatic_api import Ending, Outcome, Process, Runtime
from tests.lunatic_net_support import (
    DATA,
    LOOPBACK,
    OK,
    Guest,
    Record,
    accept_one,
    family_of,
    free_port,
    listening,
    net_guest,
    recv_until_eof,
    wait_eof,
)

# ---------------------------------------------------------------------------
# fixtures and small helpers


@pytest.fixture
def rt(backend: str) -> Iterator[Runtime]:
    """A runtime on ``backend``; every process is gone when the test ends."""
    runtime = Runtime(backend=backend)
    yield runtime
    assert runtime.shutdown(10) == [], "processes could not be stopped"


def start(rt: Runtime, wat: str, function: str, params: tuple[int, ...] = (),
          arg: bytes = b"") -> Guest:
    """Compile ``wat`` in a default environment and run ``function`` as a ``Guest``."""
    module = rt.environment().add_module(wat)
    return Guest(rt, module, function, params, arg)


def assert_failed(outcome: Outcome, *fragments: str) -> None:
    """The process failed (a trap) and its message names every fragment."""
    assert outcome.ending is Ending.FAILED, outcome
    for fragment in fragments:
        assert fragment in outcome.message, outcome


def assert_no_eof(sock: socket.socket, window: float = 0.3) -> None:
    """Within ``window`` s the peer has neither closed nor sent anything."""
    sock.settimeout(window)
    with pytest.raises(TimeoutError):
        data = sock.recv(1)
        raise AssertionError(f"expected silence, got {data!r} (b'' is end of stream)")


def recv_exactly(sock: socket.socket, n: int, timeout: float = 10.0) -> bytes:
    """Exactly ``n`` bytes (fails on end of stream first)."""
    sock.settimeout(timeout)
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, f"end of stream after {data!r}, wanted {n} bytes"
        data += chunk
    return data


def port_rebindable(kind: int, port: int) -> bool:
    """Whether a listener can bind ``port`` now (with SO_REUSEADDR, as ``tcp_bind``
    does: connections of the old listener lingering in TIME_WAIT do not count,
    only a socket still listening there)."""
    with socket.socket(family_of(kind), socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK[kind], port))
            sock.listen(1)
        except OSError:
            return False
    return True


def full_backlog_listener() -> tuple[socket.socket, list[socket.socket]] | None:
    """A listener (backlog 0, never accepting) whose queue is full: connects to it hang.

    Returns ``None`` if the OS kept completing connections (then a connect
    timeout cannot be provoked locally).
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers: list[socket.socket] = []
    for _ in range(16):
        client = socket.socket()
        client.setblocking(False)
        client.connect_ex(listener.getsockname())
        fillers.append(client)
        poller = select.poll()
        poller.register(client, select.POLLOUT)
        if not poller.poll(600):
            return listener, fillers  # this one hangs: the queue is full
    for sock in (listener, *fillers):
        sock.close()
    return None


@pytest.fixture
def hanging_port() -> Iterator[int]:
    """A 127.0.0.1 port where connects hang (full accept queue)."""
    made = full_backlog_listener()
    if made is None:
        pytest.skip("this OS completes every connect to a full-backlog listener, so a "
                    "connect cannot be made to hang locally")
    listener, fillers = made
    yield int(listener.getsockname()[1])
    for sock in (listener, *fillers):
        sock.close()


KINDS = pytest.mark.parametrize("kind", [4, 6], ids=["v4", "v6"])


# ---------------------------------------------------------------------------
# resolve, resolve_next, drop_dns_iterator

NEXT_RECORD = """
(func $next_record (param $it i64) (result i32)
  (local $rc i32)
  (memory.fill (i32.const 0x200) (i32.const 0xAA) (i32.const 36))
  (local.set $rc (call $net.resolve_next (local.get $it) (i32.const 0x200) (i32.const 0x204)
                                         (i32.const 0x214) (i32.const 0x218) (i32.const 0x21c)))
  (i32.store (i32.const 0x220) (local.get $rc))
  (call $report_data (i32.const 0x200) (i32.const 36))
  (local.get $rc))
"""

RESOLVE = net_guest(NEXT_RECORD, """
(func (export "resolve") (param $timeout i32)
  (local $rc i32) (local $it i64)
  (call $setup)
  (local.set $rc (call $net.resolve (i32.const 0x1000) (global.get $arg_len) (local.get $timeout)
                                    (i32.const 0x100)))
  (call $result (local.get $rc) (i32.const 0x100))
  (if (local.get $rc) (then (return)))
  (local.set $it (i64.load (i32.const 0x100)))
  (block $end (loop $more
    (br_if $end (call $next_record (local.get $it)))
    (br $more)))
  ;; an exhausted iterator stays exhausted
  (drop (call $next_record (local.get $it)))
  (call $net.drop_dns_iterator (local.get $it)))
""")


def resolve(rt: Runtime, name: bytes, timeout_ms: int = 0) -> tuple[int, list[Record]] | str:
    """Run ``resolve`` in a guest: ``(iterator id, address records)`` or the error text.

    Also checks the tail every successful run must have: ``resolve_next``
    returned 1 twice at the end without writing anything, and the process
    returned normally (so ``drop_dns_iterator`` accepted the id).
    """
    guest = start(rt, RESOLVE, "resolve", (timeout_ms,), name)
    tag, value = guest.next()
    if tag == 2:
        assert guest.join().ending is Ending.RETURNED
        return value.decode()
    assert tag == 1, (tag, value)
    (iterator,) = struct.unpack("<Q", value)
    records = []
    while True:
        record = guest.record()
        if record.rc == 1:
            break
        assert record.rc == 0, record
        records.append(record)
    assert record.untouched, "resolve_next returned 1 but wrote something"
    again = guest.record()
    assert again.rc == 1 and again.untouched
    assert guest.join().ending is Ending.RETURNED
    return iterator, records


def test_resolve_ipv4_literal(rt: Runtime) -> None:
    """``a.b.c.d:port``: one v4 address; flow info and scope id are not written."""
    result = resolve(rt, b"127.0.0.1:80")
    assert not isinstance(result, str), result
    iterator, records = result
    assert iterator == 0  # the first DNS iterator of the process
    (record,) = records
    assert (record.kind, record.host, record.port) == (4, "127.0.0.1", 80)
    assert record.addr_raw[4:] == b"\xaa" * 12, "only 4 octets are written for v4"
    assert record.flow_raw == b"\xaa" * 4 and record.scope_raw == b"\xaa" * 4


def test_resolve_ipv6_literal(rt: Runtime) -> None:
    """``[v6]:port``: one v6 address with flow info and scope id written (0)."""
    result = resolve(rt, b"[::1]:8080")
    assert not isinstance(result, str), result
    (record,) = result[1]
    assert (record.kind, record.host, record.port) == (6, "::1", 8080)
    assert record.addr_raw == socket.inet_pton(socket.AF_INET6, "::1")
    assert record.flow_raw == bytes(4) and record.scope_raw == bytes(4)


def test_resolve_host_name(rt: Runtime) -> None:
    """``localhost:80`` goes through the OS resolver; every address is loopback, port 80."""
    result = resolve(rt, b"localhost:80", timeout_ms=5000)
    assert not isinstance(result, str), result
    records = result[1]
    assert records, "localhost resolved to nothing"
    for record in records:
        assert record.port == 80
        assert record.host in ("127.0.0.1", "::1"), record
        if record.kind == 4:
            assert record.flow_raw == b"\xaa" * 4 and record.scope_raw == b"\xaa" * 4
        else:
            assert record.flow_raw == bytes(4)


@pytest.mark.parametrize("name, text", [
    (b"localhost", "invalid socket address"),
    (b"127.0.0.1", "invalid socket address"),
    (b"[::1]", "invalid socket address"),
    (b"", "invalid socket address"),
    (b"127.0.0.1:99999", "invalid port value"),
    (b"127.0.0.1:http", "invalid port value"),
    (b"localhost:-1", "invalid port value"),
], ids=["bare-host", "bare-v4", "bare-v6", "empty", "port-too-big", "port-not-number",
        "port-negative"])
def test_resolve_bad_name_is_an_error(rt: Runtime, name: bytes, text: str) -> None:
    """Malformed names follow the error convention (1 + error text), they do not trap."""
    assert resolve(rt, name) == text


def test_resolve_unknown_host_is_an_error(rt: Runtime) -> None:
    """A name that does not resolve (reserved ``.invalid`` TLD): 1 and an error text.

    Depending on the machine's resolver this is a lookup failure or, if the
    lookup hangs, the 3 s timeout; both are the error convention.
    """
    result = resolve(rt, b"no-such-host.invalid:80", timeout_ms=3000)
    assert isinstance(result, str), result
    assert ("failed to lookup address information" in result
            or result == "Resolve call timed out"), result


# ---------------------------------------------------------------------------
# traps: one exported function per bad call; each reports 1 before it and 2 after it

TRAPS = net_guest(NEXT_RECORD, """
(func $stream (param $port i32) (result i64)
  (if (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (then unreachable))
  (i64.load (i32.const 0x100)))
(global $ready (mut i32) (i32.const 0))
(func $ensure_setup
  (if (i32.eqz (global.get $ready)) (then (call $setup) (global.set $ready (i32.const 1)))))
(func $iter (result i64)
  (call $ensure_setup)
  (if (call $net.resolve (i32.const 0x1000) (global.get $arg_len) (i32.const 0) (i32.const 0x100))
    (then unreachable))
  (i64.load (i32.const 0x100)))
(func $listener (result i64)
  (if (call $bind (i32.const 4) (i32.const 0)) (then unreachable))
  (i64.load (i32.const 0x100)))
(func $before (call $ensure_setup) (call $report_code (i32.const 1)))
(func $after (call $report_code (i32.const 2)))

(func (export "resolve_name_oob") (param i32)
  (call $before)
  (drop (call $net.resolve (i32.const 0x3fffe) (i32.const 12) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "resolve_out_oob") (param i32)
  (call $before)
  (drop (call $net.resolve (i32.const 0x1000) (global.get $arg_len) (i32.const 0) (i32.const 0x3fffc)))
  (call $after))
(func (export "resolve_bad_utf8") (param i32)
  (call $before)
  (drop (call $net.resolve (i32.const 0x1000) (global.get $arg_len) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "resolve_next_unknown") (param i32)
  (call $before)
  (drop (call $net.resolve_next (i64.const 7) (i32.const 0x200) (i32.const 0x204) (i32.const 0x214)
                                (i32.const 0x218) (i32.const 0x21c)))
  (call $after))
(func (export "resolve_next_type_oob") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $before)
  (drop (call $net.resolve_next (local.get $it) (i32.const 0x3fffe) (i32.const 0x204) (i32.const 0x214)
                                (i32.const 0x218) (i32.const 0x21c)))
  (call $after))
(func (export "resolve_next_addr_oob") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $before)
  (drop (call $net.resolve_next (local.get $it) (i32.const 0x200) (i32.const 0x3fffe) (i32.const 0x214)
                                (i32.const 0x218) (i32.const 0x21c)))
  (call $after))
(func (export "resolve_next_port_oob") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $before)
  (drop (call $net.resolve_next (local.get $it) (i32.const 0x200) (i32.const 0x204) (i32.const 0x3ffff)
                                (i32.const 0x218) (i32.const 0x21c)))
  (call $after))
(func (export "resolve_next_v6_scope_oob") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $before)
  (drop (call $net.resolve_next (local.get $it) (i32.const 0x200) (i32.const 0x204) (i32.const 0x214)
                                (i32.const 0x218) (i32.const 0x3fffe)))
  (call $after))
(func (export "resolve_next_v6_flow_oob") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $before)
  (drop (call $net.resolve_next (local.get $it) (i32.const 0x200) (i32.const 0x204) (i32.const 0x214)
                                (i32.const 0x40000) (i32.const 0x21c)))
  (call $after))
(func (export "drop_dns_unknown") (param i32)
  (call $before)
  (call $net.drop_dns_iterator (i64.const 3))
  (call $after))
(func (export "drop_dns_twice") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $net.drop_dns_iterator (local.get $it))
  (call $before)
  (call $net.drop_dns_iterator (local.get $it))
  (call $after))
(func (export "resolve_next_after_drop") (param i32)
  (local $it i64)
  (local.set $it (call $iter))
  (call $net.drop_dns_iterator (local.get $it))
  (call $before)
  (drop (call $next_record (local.get $it)))
  (call $after))

(func (export "bind_type_0") (param i32)
  (call $before)
  (drop (call $net.tcp_bind (i32.const 0) (i32.const 0x10) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "bind_type_5") (param i32)
  (call $before)
  (drop (call $net.tcp_bind (i32.const 5) (i32.const 0x10) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "bind_v4_addr_oob") (param i32)
  (call $before)
  (drop (call $net.tcp_bind (i32.const 4) (i32.const 0x3fffd) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "bind_v6_addr_oob") (param i32)
  (call $before)
  (drop (call $net.tcp_bind (i32.const 6) (i32.const 0x3fff8) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "bind_out_oob") (param i32)
  (call $before)
  (drop (call $net.tcp_bind (i32.const 4) (i32.const 0x10) (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0x3fff9)))
  (call $after))
(func (export "drop_listener_unknown") (param i32)
  (call $before)
  (call $net.drop_tcp_listener (i64.const 0))
  (call $after))
(func (export "drop_listener_twice") (param i32)
  (local $l i64)
  (local.set $l (call $listener))
  (call $net.drop_tcp_listener (local.get $l))
  (call $before)
  (call $net.drop_tcp_listener (local.get $l))
  (call $after))
(func (export "accept_unknown") (param i32)
  (call $before)
  (drop (call $net.tcp_accept (i64.const 0) (i32.const 0x108) (i32.const 0x110)))
  (call $after))
(func (export "accept_after_drop") (param i32)
  (local $l i64)
  (local.set $l (call $listener))
  (call $net.drop_tcp_listener (local.get $l))
  (call $before)
  (drop (call $net.tcp_accept (local.get $l) (i32.const 0x108) (i32.const 0x110)))
  (call $after))

(func (export "connect_type_0") (param $port i32)
  (call $before)
  (drop (call $net.tcp_connect (i32.const 0) (i32.const 0x10) (local.get $port) (i32.const 0) (i32.const 0)
                               (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "connect_type_46") (param $port i32)
  (call $before)
  (drop (call $net.tcp_connect (i32.const 46) (i32.const 0x10) (local.get $port) (i32.const 0) (i32.const 0)
                               (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "connect_addr_oob") (param $port i32)
  (call $before)
  (drop (call $net.tcp_connect (i32.const 6) (i32.const 0x3fff1) (local.get $port) (i32.const 0) (i32.const 0)
                               (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "connect_out_oob") (param $port i32)
  (call $before)
  (drop (call $net.tcp_connect (i32.const 4) (i32.const 0x10) (local.get $port) (i32.const 0) (i32.const 0)
                               (i32.const 0) (i32.const 0x40000)))
  (call $after))

(func (export "drop_stream_unknown") (param i32)
  (call $before)
  (call $net.drop_tcp_stream (i64.const 0))
  (call $after))
(func (export "drop_stream_twice") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $net.drop_tcp_stream (local.get $s))
  (call $before)
  (call $net.drop_tcp_stream (local.get $s))
  (call $after))
(func (export "clone_unknown") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $before)
  (drop (call $net.clone_tcp_stream (i64.add (local.get $s) (i64.const 1))))
  (call $after))
(func (export "use_after_push") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $msg.create_data (i64.const 0) (i64.const 0))
  (drop (call $msg.push_tcp_stream (local.get $s)))
  (call $before)
  (drop (call $net.tcp_flush (local.get $s) (i32.const 0x100)))
  (call $after))

(func (export "write_unknown") (param i32)
  (i64.store (i32.const 0x300) (i64.const 0x0000000300000010))
  (call $before)
  (drop (call $net.tcp_write_vectored (i64.const 0) (i32.const 0x300) (i32.const 1) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "write_iov_array_oob") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $before)
  (drop (call $net.tcp_write_vectored (local.get $s) (i32.const 0x3fffc) (i32.const 1) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "write_iov_array_oob_count") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $before)
  (drop (call $net.tcp_write_vectored (local.get $s) (i32.const 0x3fff0) (i32.const 3) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "write_buffer_oob") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (i32.store (i32.const 0x300) (i32.const 0x10))
  (i32.store (i32.const 0x304) (i32.const 4))
  (i32.store (i32.const 0x308) (i32.const 0x3fff0))
  (i32.store (i32.const 0x30c) (i32.const 0x11))
  (call $before)
  (drop (call $net.tcp_write_vectored (local.get $s) (i32.const 0x300) (i32.const 2) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "write_oob_before_unknown_stream") (param i32)
  (call $before)
  (drop (call $net.tcp_write_vectored (i64.const 99) (i32.const 0x3fffc) (i32.const 1) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "write_count_wraps") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (i64.store (i32.const 0x300) (i64.const 0x0000000300000010))
  (call $before)
  ;; 0x20000000 records of 8 bytes: 2^32 bytes, which wraps to 0 in 32-bit arithmetic
  (drop (call $net.tcp_write_vectored (local.get $s) (i32.const 0x300) (i32.const 0x20000000) (i32.const 0)
                                      (i32.const 0x100)))
  (call $after))
(func (export "write_out_oob") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (i64.store (i32.const 0x300) (i64.const 0x0000000300000010))
  (call $before)
  (drop (call $net.tcp_write_vectored (local.get $s) (i32.const 0x300) (i32.const 1) (i32.const 0) (i32.const 0x3fffa)))
  (call $after))

(func (export "read_unknown_first") (param i32)
  (call $before)
  (drop (call $net.tcp_read (i64.const 5) (i32.const 0x3fff0) (i32.const 0x100) (i32.const 0) (i32.const 0x100)))
  (call $after))
(func (export "read_buffer_oob") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $before)
  (drop (call $net.tcp_read (local.get $s) (i32.const 0x3ff00) (i32.const 0x101) (i32.const 100) (i32.const 0x100)))
  (call $after))
(func (export "read_out_oob") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $before)
  (drop (call $net.tcp_read (local.get $s) (i32.const 0x10000) (i32.const 0x100) (i32.const 100) (i32.const 0x3fffc)))
  (call $after))
(func (export "read_after_drop") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $net.drop_tcp_stream (local.get $s))
  (call $before)
  (drop (call $net.tcp_read (local.get $s) (i32.const 0x10000) (i32.const 0x100) (i32.const 100) (i32.const 0x100)))
  (call $after))
(func (export "flush_unknown") (param i32)
  (call $before)
  (drop (call $net.tcp_flush (i64.const 0) (i32.const 0x100)))
  (call $after))
(func (export "flush_out_oob") (param $port i32)
  (local $s i64)
  (local.set $s (call $stream (local.get $port)))
  (call $before)
  (drop (call $net.tcp_flush (local.get $s) (i32.const 0x3fff9)))
  (call $after))
""", data=[(0x30, b"PING")])

TRAP_CASES = [
    # (exported function, setup payload, fragments expected in the failure message)
    ("resolve_name_oob", b"", ("lunatic::networking.resolve", "outside guest memory")),
    ("resolve_out_oob", b"127.0.0.1:80", ("lunatic::networking.resolve", "outside guest memory")),
    ("resolve_bad_utf8", b"\xc3\x28:80", ("lunatic::networking.resolve", "not valid UTF-8")),
    ("resolve_next_unknown", b"", ("unknown DNS iterator handle 7",)),
    ("resolve_next_type_oob", b"127.0.0.1:80", ("resolve_next", "outside guest memory")),
    ("resolve_next_addr_oob", b"127.0.0.1:80", ("resolve_next", "outside guest memory")),
    ("resolve_next_port_oob", b"127.0.0.1:80", ("resolve_next", "outside guest memory")),
    ("resolve_next_v6_scope_oob", b"[::1]:80", ("resolve_next", "outside guest memory")),
    ("resolve_next_v6_flow_oob", b"[::1]:80", ("resolve_next", "outside guest memory")),
    ("drop_dns_unknown", b"", ("unknown DNS iterator handle 3",)),
    ("drop_dns_twice", b"127.0.0.1:80", ("unknown DNS iterator handle 0",)),
    ("resolve_next_after_drop", b"127.0.0.1:80", ("unknown DNS iterator handle 0",)),
    ("bind_type_0", b"", ("tcp_bind", "address type 0")),
    ("bind_type_5", b"", ("tcp_bind", "address type 5")),
    ("bind_v4_addr_oob", b"", ("outside guest memory",)),
    ("bind_v6_addr_oob", b"", ("outside guest memory",)),
    ("bind_out_oob", b"", ("tcp_bind", "outside guest memory")),
    ("drop_listener_unknown", b"", ("unknown TCP listener handle 0",)),
    ("drop_listener_twice", b"", ("unknown TCP listener handle 0",)),
    ("accept_unknown", b"", ("unknown TCP listener handle 0",)),
    ("accept_after_drop", b"", ("unknown TCP listener handle 0",)),
    ("connect_type_0", b"", ("tcp_connect", "address type 0")),
    ("connect_type_46", b"", ("tcp_connect", "address type 46")),
    ("connect_addr_oob", b"", ("outside guest memory",)),
    ("connect_out_oob", b"", ("tcp_connect", "outside guest memory")),
    ("drop_stream_unknown", b"", ("unknown TCP stream handle 0",)),
    ("drop_stream_twice", b"", ("unknown TCP stream handle 0",)),
    ("clone_unknown", b"", ("unknown TCP stream handle 1",)),
    ("use_after_push", b"", ("unknown TCP stream handle 0",)),
    ("write_unknown", b"", ("unknown TCP stream handle 0",)),
    ("write_iov_array_oob", b"", ("tcp_write_vectored", "outside guest memory")),
    ("write_iov_array_oob_count", b"", ("tcp_write_vectored", "outside guest memory")),
    ("write_buffer_oob", b"", ("tcp_write_vectored", "outside guest memory")),
    ("write_oob_before_unknown_stream", b"", ("tcp_write_vectored", "outside guest memory")),
    ("write_count_wraps", b"", ("tcp_write_vectored", "outside guest memory")),
    ("write_out_oob", b"", ("tcp_write_vectored", "outside guest memory")),
    ("read_unknown_first", b"", ("unknown TCP stream handle 5",)),
    ("read_buffer_oob", b"", ("outside guest memory",)),
    ("read_out_oob", b"", ("tcp_read", "outside guest memory")),
    ("read_after_drop", b"", ("unknown TCP stream handle 0",)),
    ("flush_unknown", b"", ("unknown TCP stream handle 0",)),
    ("flush_out_oob", b"", ("tcp_flush", "outside guest memory")),
]


@pytest.mark.parametrize("function, arg, fragments", TRAP_CASES,
                         ids=[case[0] for case in TRAP_CASES])
def test_bad_call_traps(rt: Runtime, function: str, arg: bytes,
                        fragments: tuple[str, ...]) -> None:
    """Each bad call of section 6 traps: the process fails right at that call.

    Out-of-bounds ranges, unknown or dropped ids, bad address types, invalid
    UTF-8.  Guests that need a stream connect to a Python listener first.
    ``read_unknown_first`` has an out-of-bounds buffer too, but the unknown id
    is what is reported (checked first, spec 6.11);
    ``write_oob_before_unknown_stream`` is the reverse (iovecs checked before
    the stream lookup, spec 6.10).
    """
    with listening(4) as listener:
        guest = start(rt, TRAPS, function, (listener.getsockname()[1],), arg)
        assert guest.code() == 1, "the guest did not reach the bad call"
        assert_failed(guest.join(), *fragments)
        assert not guest.pending(), "the guest went on after the bad call"


def test_resolve_next_v4_ignores_flow_and_scope_pointers(rt: Runtime) -> None:
    """For a v4 address the flow-info/scope locations are not written, so even
    out-of-bounds pointers there are fine (only writes that happen can trap)."""
    wat = net_guest("""
    (func (export "run")
      (call $setup)
      (drop (call $net.resolve (i32.const 0x1000) (global.get $arg_len) (i32.const 0) (i32.const 0x100)))
      (call $report_code (call $net.resolve_next (i64.load (i32.const 0x100)) (i32.const 0x200)
                          (i32.const 0x204) (i32.const 0x214) (i32.const 0x40000) (i32.const -4)))
      (call $report_data (i32.const 0x200) (i32.const 24)))
    """)
    guest = start(rt, wat, "run", arg=b"10.1.2.3:7")
    assert guest.code() == 0
    raw = guest.data()
    assert raw[0:4] == struct.pack("<I", 4)
    assert raw[4:8] == bytes([10, 1, 2, 3])
    assert raw[20:22] == struct.pack("<H", 7)
    assert guest.join().ending is Ending.RETURNED


# ---------------------------------------------------------------------------
# tcp_bind, drop_tcp_listener

BIND = net_guest("""
(func (export "bind") (param $type i32) (param $port i32)
  (local $rc i32)
  (call $setup)
  ;; the address octets come from the setup payload
  (local.set $rc (call $net.tcp_bind (local.get $type) (i32.const 0x1000) (local.get $port)
                                     (i32.const 0) (i32.const 0) (i32.const 0x100)))
  (call $result (local.get $rc) (i32.const 0x100))
  (if (local.get $rc) (then (return)))
  (call $wait_go)
  (call $net.drop_tcp_listener (i64.load (i32.const 0x100)))
  (call $report_code (i32.const 0))
  (call $wait_go))
""")


@KINDS
@pytest.mark.parametrize("high_bits", [0, 0x30000], ids=["port", "port+0x30000"])
def test_bind_listens_until_dropped(rt: Runtime, kind: int, high_bits: int) -> None:
    """``tcp_bind`` returns 0 and listener id 0; Python can connect (the port is
    the low 16 bits of the argument); after ``drop_tcp_listener`` connects are refused."""
    port = free_port(kind)
    octets = socket.inet_pton(family_of(kind), LOOPBACK[kind])
    guest = start(rt, BIND, "bind", (kind, port | high_bits), octets)
    assert guest.ok() == 0
    with socket.create_connection((LOOPBACK[kind], port), timeout=10) as client:
        assert client.getpeername()[1] == port
    guest.go()
    assert guest.code() == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK[kind], port), timeout=10).close()
    guest.go()
    assert guest.join().ending is Ending.RETURNED


@KINDS
def test_bind_address_in_use(rt: Runtime, kind: int) -> None:
    """Binding a port another socket listens on: 1 and the OS error's text."""
    with listening(kind) as taken:
        port = taken.getsockname()[1]
        octets = socket.inet_pton(family_of(kind), LOOPBACK[kind])
        guest = start(rt, BIND, "bind", (kind, port), octets)
        assert guest.err() == "Address already in use (os error 98)"
        assert guest.join().ending is Ending.RETURNED


def test_bind_foreign_address_is_an_error(rt: Runtime) -> None:
    """An address that is not this machine's (TEST-NET-1): 1 and the OS error text."""
    guest = start(rt, BIND, "bind", (4, 0), bytes([192, 0, 2, 1]))
    assert guest.err() == "Cannot assign requested address (os error 99)"
    assert guest.join().ending is Ending.RETURNED


# ---------------------------------------------------------------------------
# tcp_accept

ACCEPT = net_guest(NEXT_RECORD, """
(func (export "accept") (param $type i32) (param $port i32)
  (local $l i64) (local $s i64) (local $peer i64)
  (call $setup)
  (local.set $l (call $ok (call $bind (local.get $type) (local.get $port)) (i32.const 0x100)))
  (i64.store (i32.const 0x108) (i64.const -1))
  (i64.store (i32.const 0x110) (i64.const -1))
  (local.set $s (call $ok (call $net.tcp_accept (local.get $l) (i32.const 0x108) (i32.const 0x110))
                          (i32.const 0x108)))
  (local.set $peer (i64.load (i32.const 0x110)))
  (call $report_i64 (local.get $peer))
  (drop (call $next_record (local.get $peer)))
  (drop (call $next_record (local.get $peer)))
  (call $net.drop_dns_iterator (local.get $peer))
  (call $write_all (local.get $s) (i32.const 0x30) (i32.const 16))
  (call $read_report (local.get $s) (i32.const 0))
  (call $net.drop_tcp_stream (local.get $s))
  (call $wait_go))
""", data=[(0x30, b"hello from guest")])


@KINDS
def test_accept_waits_for_a_client(rt: Runtime, kind: int) -> None:
    """``tcp_accept`` blocks until a (Python thread) client connects, then returns
    stream id 0 and a DNS iterator holding exactly the client's address; the
    stream works both ways and closes when dropped."""
    port = free_port(kind)
    guest = start(rt, ACCEPT, "accept", (kind, port))
    assert guest.ok() == 0  # listener 0
    time.sleep(0.3)
    assert guest.process.alive and not guest.pending(), "tcp_accept returned without a client"

    seen: dict[str, object] = {}

    def client() -> None:
        with socket.create_connection((LOOPBACK[kind], port), timeout=10) as sock:
            seen["local"] = sock.getsockname()
            seen["greeting"] = recv_exactly(sock, 16)
            sock.sendall(b"hi guest")
            seen["rest"] = recv_until_eof(sock)

    thread = threading.Thread(target=client, daemon=True)
    thread.start()
    assert guest.ok() == 0  # stream 0
    assert guest.ok() == 0  # peer iterator 0 (the process's first DNS iterator)
    peer = guest.record()
    assert peer.rc == 0
    exhausted = guest.record()
    assert exhausted.rc == 1 and exhausted.untouched, "the peer iterator has one address"
    assert guest.ok() == 8 and guest.data() == b"hi guest"
    thread.join(10)
    assert not thread.is_alive()
    local = seen["local"]
    assert isinstance(local, tuple)
    assert (peer.kind, peer.host, peer.port) == (kind, LOOPBACK[kind], local[1])
    if kind == 4:
        assert peer.flow_raw == b"\xaa" * 4 and peer.scope_raw == b"\xaa" * 4
    else:
        assert peer.flow_raw == bytes(4) and peer.scope_raw == bytes(4)
    assert seen["greeting"] == b"hello from guest"
    assert seen["rest"] == b"", "dropping the only stream reference closes the socket"
    guest.go()
    assert guest.join().ending is Ending.RETURNED


def test_accept_out_pointer_out_of_bounds_traps(rt: Runtime) -> None:
    """``tcp_accept`` with an out-of-bounds peer out-pointer traps (a client is
    offered, so the trap happens whether pointers are checked before or after
    waiting)."""
    wat = net_guest("""
    (func (export "run") (param $port i32)
      (local $l i64)
      (call $setup)
      (local.set $l (call $ok (call $bind (i32.const 4) (local.get $port)) (i32.const 0x100)))
      (drop (call $net.tcp_accept (local.get $l) (i32.const 0x108) (i32.const 0x3fffc)))
      (call $report_code (i32.const 2)))
    """)
    port = free_port()
    guest = start(rt, wat, "run", (port,))
    assert guest.ok() == 0
    try:
        client = socket.create_connection(("127.0.0.1", port), timeout=10)
    except (ConnectionRefusedError, ConnectionResetError):
        client = None  # the guest may have trapped (closing the listener) already
    assert_failed(guest.join(), "tcp_accept", "outside guest memory")
    assert not guest.pending()
    if client is not None:
        client.close()


# ---------------------------------------------------------------------------
# tcp_connect, tcp_write_vectored, tcp_read, tcp_flush

CLIENT = net_guest("""
(func (export "client") (param $type i32) (param $port i32)
  (local $s i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (local.get $type) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  ;; four iovecs: "abc", "" (at the very end of memory), "defgh", "" -> one write of 8 bytes
  (i32.store (i32.const 0x300) (i32.const 0x30)) (i32.store (i32.const 0x304) (i32.const 3))
  (i32.store (i32.const 0x308) (i32.const 0x40000)) (i32.store (i32.const 0x30c) (i32.const 0))
  (i32.store (i32.const 0x310) (i32.const 0x33)) (i32.store (i32.const 0x314) (i32.const 5))
  (i32.store (i32.const 0x318) (i32.const 0x38)) (i32.store (i32.const 0x31c) (i32.const 0))
  (call $result (call $net.tcp_write_vectored (local.get $s) (i32.const 0x300) (i32.const 4)
                                              (i32.const 0) (i32.const 0x100)) (i32.const 0x100))
  ;; flush writes a u64 0
  (i64.store (i32.const 0x100) (i64.const -1))
  (call $result (call $net.tcp_flush (local.get $s) (i32.const 0x100)) (i32.const 0x100))
  (call $read_report (local.get $s) (i32.const 0))
  ;; no iovecs at all: 0 bytes written
  (i64.store (i32.const 0x100) (i64.const -1))
  (call $result (call $net.tcp_write_vectored (local.get $s) (i32.const 0x300) (i32.const 0)
                                              (i32.const 0) (i32.const 0x100)) (i32.const 0x100))
  (call $wait_go)
  ;; the peer has closed: end of stream, as often as asked
  (call $read_report (local.get $s) (i32.const 0))
  (call $read_report (local.get $s) (i32.const 0))
  (call $net.drop_tcp_stream (local.get $s)))
(func (export "connect") (param $type i32) (param $port i32) (param $timeout i32)
  (call $setup)
  (call $result (call $connect (local.get $type) (local.get $port) (local.get $timeout)) (i32.const 0x100)))
""", data=[(0x30, b"abcdefgh")])


@KINDS
def test_connect_write_flush_read(rt: Runtime, kind: int) -> None:
    """``tcp_connect`` to a Python listener; a gathered ``tcp_write_vectored``
    (empty iovecs included, one at the end of memory) arrives as one byte
    string and reports the count; ``tcp_flush`` writes 0; ``tcp_read`` gets
    the peer's bytes, then 0 (end of stream) once the peer closed."""
    with listening(kind) as listener:
        guest = start(rt, CLIENT, "client", (kind, listener.getsockname()[1]))
        conn = accept_one(listener)
        with conn:
            assert guest.ok() == 0  # the process's first stream
            assert guest.ok() == 8
            assert recv_exactly(conn, 8) == b"abcdefgh"
            assert guest.ok() == 0  # flush
            conn.sendall(b"pong")
            assert guest.ok() == 4 and guest.data() == b"pong"
            assert guest.ok() == 0  # the empty write
        guest.go()
        assert guest.ok() == 0 and guest.data() == b""
        assert guest.ok() == 0 and guest.data() == b""
        assert guest.join().ending is Ending.RETURNED


@KINDS
def test_connect_refused(rt: Runtime, kind: int) -> None:
    """Nothing listens: 1 and ``Connection refused (os error 111)``."""
    guest = start(rt, CLIENT, "connect", (kind, free_port(kind), 0))
    assert guest.err() == "Connection refused (os error 111)"
    assert guest.join().ending is Ending.RETURNED


def test_connect_timeout(rt: Runtime, hanging_port: int) -> None:
    """A connect that never completes (the listener's queue is full) ends after
    ``timeout_ms`` with 1 and ``Connect timed out``.

    (10.255.255.1 is not used: on this test machine connects to it complete.)
    """
    guest = start(rt, CLIENT, "connect", (4, hanging_port, 300))
    assert guest.err() == "Connect timed out"
    assert guest.join().ending is Ending.RETURNED


def test_connect_port_low_16_bits(rt: Runtime) -> None:
    """Only the low 16 bits of ``port`` count."""
    with listening(4) as listener:
        port = listener.getsockname()[1]
        guest = start(rt, CLIENT, "connect", (4, 0x70000 | port, 0))
        conn = accept_one(listener)
        conn.close()
        assert guest.ok() == 0
        assert guest.join().ending is Ending.RETURNED


READER = net_guest("""
(func (export "read_timeout") (param $port i32)
  (local $s i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (call $read_report (local.get $s) (i32.const 150))
  (call $wait_go)
  (call $read_report (local.get $s) (i32.const 150)))
(func (export "read_after_reset") (param $port i32)
  (local $s i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (call $wait_go)
  (call $read_report (local.get $s) (i32.const 0)))
(func (export "write_until_error") (param $port i32) (param $timeout i32)
  (local $s i64) (local $rc i32) (local $total i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (call $wait_go)
  (i32.store (i32.const 0x300) (i32.const 0x10000))
  (i32.store (i32.const 0x304) (i32.const 0x30000))
  (block $failed (loop $more
    (local.set $rc (call $net.tcp_write_vectored (local.get $s) (i32.const 0x300) (i32.const 1)
                                                 (local.get $timeout) (i32.const 0x100)))
    (br_if $failed (local.get $rc))
    (local.set $total (i64.add (local.get $total) (i64.load (i32.const 0x100))))
    (br $more)))
  (call $result (local.get $rc) (i32.const 0x100))
  (call $report_i64 (local.get $total))
  (call $net.drop_tcp_stream (local.get $s)))
""")


def test_read_timeout_then_data(rt: Runtime) -> None:
    """No data within ``timeout_ms``: 1 and ``Read call timed out``; the stream
    stays usable and the next read gets what arrives later."""
    with listening(4) as listener:
        guest = start(rt, READER, "read_timeout", (listener.getsockname()[1],))
        with accept_one(listener) as conn:
            assert guest.ok() == 0
            assert guest.err() == "Read call timed out"
            conn.sendall(b"late")
            guest.go()
            assert guest.ok() == 4 and guest.data() == b"late"
        assert guest.join().ending is Ending.RETURNED


def reset(conn: socket.socket) -> None:
    """Close ``conn`` with a RST (SO_LINGER 0)."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def test_read_after_reset_is_an_error(rt: Runtime) -> None:
    """The peer resets the connection: ``tcp_read`` returns 1 with the OS error."""
    with listening(4) as listener:
        guest = start(rt, READER, "read_after_reset", (listener.getsockname()[1],))
        conn = accept_one(listener)
        assert guest.ok() == 0
        reset(conn)
        guest.go()
        assert guest.err() == "Connection reset by peer (os error 104)"
        assert guest.join().ending is Ending.RETURNED


def test_write_after_reset_is_an_error(rt: Runtime) -> None:
    """Writing to a reset connection: ``tcp_write_vectored`` returns 1 with the OS error."""
    with listening(4) as listener:
        guest = start(rt, READER, "write_until_error", (listener.getsockname()[1], 0))
        conn = accept_one(listener)
        assert guest.ok() == 0
        reset(conn)
        guest.go()
        assert guest.err() in ("Connection reset by peer (os error 104)",
                               "Broken pipe (os error 32)")
        guest.ok()  # bytes written before the error (any amount)
        assert guest.join().ending is Ending.RETURNED


def test_write_timeout_transfers_nothing(rt: Runtime) -> None:
    """A peer that never reads: writes fill the socket buffers until one times out
    with 1 and ``Write call timed out``; the peer then receives exactly the bytes
    reported as written (the timed-out write sent nothing)."""
    with listening(4) as listener:
        guest = start(rt, READER, "write_until_error", (listener.getsockname()[1], 200))
        with accept_one(listener) as conn:
            assert guest.ok() == 0
            guest.go()
            assert guest.err() == "Write call timed out"
            total = guest.ok()
            assert total > 0
            assert len(recv_until_eof(conn)) == total
        assert guest.join().ending is Ending.RETURNED


# ---------------------------------------------------------------------------
# clone_tcp_stream / drop_tcp_stream

CLONE = net_guest("""
(func (export "clone") (param $port i32)
  (local $s i64) (local $c i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (local.set $c (call $net.clone_tcp_stream (local.get $s)))
  (call $report_i64 (local.get $c))
  (call $write_all (local.get $s) (i32.const 0x30) (i32.const 1))
  (call $write_all (local.get $c) (i32.const 0x31) (i32.const 1))
  (call $read_report (local.get $s) (i32.const 0))
  (call $net.drop_tcp_stream (local.get $s))
  (call $report_code (i32.const 1))
  (call $wait_go)
  ;; the clone still works after the original was dropped
  (call $write_all (local.get $c) (i32.const 0x32) (i32.const 1))
  (call $read_report (local.get $c) (i32.const 0))
  (i64.store (i32.const 0x100) (i64.const -1))
  (call $result (call $net.tcp_flush (local.get $c) (i32.const 0x100)) (i32.const 0x100))
  (call $wait_go)
  (call $net.drop_tcp_stream (local.get $c))
  (call $report_code (i32.const 2))
  (call $wait_go))
""", data=[(0x30, b"ABC")])


def test_clone_shares_the_socket_until_the_last_drop(rt: Runtime) -> None:
    """``clone_tcp_stream`` gives a new id (1) for the same socket: both write and
    read it; dropping the original leaves it open (the peer sees no end of
    stream and still gets data), dropping the clone closes it."""
    with listening(4) as listener:
        guest = start(rt, CLONE, "clone", (listener.getsockname()[1],))
        with accept_one(listener) as conn:
            assert guest.ok() == 0
            assert guest.ok() == 1  # ids count up per table
            assert recv_exactly(conn, 2) == b"AB"
            conn.sendall(b"x")
            assert guest.ok() == 1 and guest.data() == b"x"
            assert guest.code() == 1  # the original is dropped
            assert_no_eof(conn)
            guest.go()
            assert recv_exactly(conn, 1) == b"C"
            conn.sendall(b"y")
            assert guest.ok() == 1 and guest.data() == b"y"
            assert guest.ok() == 0  # flush through the clone
            assert_no_eof(conn)
            guest.go()
            assert guest.code() == 2  # the clone is dropped: the last reference
            assert guest.process.alive
            assert recv_until_eof(conn) == b""
        guest.go()
        assert guest.join().ending is Ending.RETURNED


# ---------------------------------------------------------------------------
# streams in messages

HANDOFF = net_guest("""
(func (export "handoff") (param $port i32)
  (local $s i64) (local $child i64) (local $i i64) (local $j i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (call $write_all (local.get $s) (i32.const 0x30) (i32.const 6))
  (if (call $proc.inherit_spawn (i64.const 0) (i32.const 0x40) (i32.const 5) (i32.const 0) (i32.const 0)
                                (i32.const 0x108))
    (then unreachable))
  (local.set $child (i64.load (i32.const 0x108)))
  (call $msg.create_data (i64.const 0) (i64.const 0))
  (drop (call $msg.write_data (i32.const 0x50) (i32.const 7)))
  (local.set $i (call $msg.push_process (call $proc.clone_process (global.get $reporter))))
  (local.set $j (call $msg.push_tcp_stream (local.get $s)))
  (call $msg.send (local.get $child))
  (call $report_i64 (local.get $i))
  (call $report_i64 (local.get $j))
  (call $wait_go))
(func (export "child")
  (local $s i64) (local $n i32)
  (if (call $msg.receive (i64.const 0) (i32.const 0)) (then unreachable))
  (global.set $reporter (call $msg.take_process (i64.const 0)))
  (local.set $s (call $msg.take_tcp_stream (i64.const 1)))
  ;; read the payload before reporting: a report replaces the scratch message
  (local.set $n (call $msg.read_data (i32.const 0x1000) (i32.const 0x100)))
  (call $report_i64 (local.get $s))
  (call $report_data (i32.const 0x1000) (local.get $n))
  (call $write_all (local.get $s) (i32.const 0x36) (i32.const 6))
  (call $read_report (local.get $s) (i32.const 0)))
(func (export "park")
  (local $s i64) (local $child i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (i32.const 4) (i32.load (i32.const 0x1000)) (i32.const 0))
                          (i32.const 0x100)))
  ;; a child that never takes the message: it waits for a tag nobody sends
  (if (call $proc.inherit_spawn (i64.const 0) (i32.const 0x60) (i32.const 7) (i32.const 0) (i32.const 0)
                                (i32.const 0x108))
    (then unreachable))
  (local.set $child (i64.load (i32.const 0x108)))
  (call $msg.create_data (i64.const 5) (i64.const 0))
  (drop (call $msg.push_tcp_stream (local.get $s)))
  (call $msg.send (local.get $child))
  (call $report_code (i32.const 1))
  (call $wait_go))
(func (export "sleeper")
  (drop (call $msg.receive (i64.const 999) (i32.const 0))))
""", data=[(0x30, b"from Afrom B"), (0x40, b"child"), (0x50, b"hello B"), (0x60, b"sleeper")])


def test_stream_moves_to_another_process(rt: Runtime) -> None:
    """A stream pushed into a message (``push_tcp_stream``) and taken out by the
    receiver (``take_tcp_stream``, a new id in *its* table) keeps working there;
    the sender no longer holds it, so the socket closes when the receiver ends."""
    with listening(4) as listener:
        guest = start(rt, HANDOFF, "handoff", (listener.getsockname()[1],))
        with accept_one(listener) as conn:
            assert guest.ok() == 0  # A's stream
            assert recv_exactly(conn, 6) == b"from A"
            # reports of A (resource indices) and of the child (its stream id,
            # the payload) interleave in any order
            reports = sorted(guest.next() for _ in range(4))
            assert reports == sorted([(OK, bytes(8)), (OK, struct.pack("<Q", 1)),
                                      (OK, bytes(8)), (DATA, b"hello B")])
            assert recv_exactly(conn, 6) == b"from B"
            conn.sendall(b"to B")
            assert guest.ok() == 4 and guest.data() == b"to B"
            # the child returned without dropping the stream: the socket closes
            assert recv_until_eof(conn) == b""
            assert guest.process.alive
        guest.go()
        assert guest.join().ending is Ending.RETURNED


def test_stream_in_a_dropped_message_is_closed(rt: Runtime) -> None:
    """A stream inside a message still queued when its receiver dies is released
    with the message: the peer sees the end of stream while the sender lives."""
    with listening(4) as listener:
        port = listener.getsockname()[1]
        guest = start(rt, HANDOFF, "park", arg=struct.pack("<I", port))
        with accept_one(listener) as conn:
            assert guest.ok() == 0
            assert guest.code() == 1
            assert_no_eof(conn)  # the message holds the only reference
            (sleeper,) = [p for p in rt.processes() if p.name == "sleeper"]
            rt.kill(sleeper)
            outcome = sleeper.join(5)
            assert outcome is not None and outcome.ending is Ending.KILLED
            assert recv_until_eof(conn) == b""
            assert guest.process.alive
        guest.go()
        assert guest.join().ending is Ending.RETURNED


# ---------------------------------------------------------------------------
# kills and traps release sockets

BLOCKED = net_guest("""
(func (export "in_read") (param $type i32) (param $port i32)
  (local $s i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (local.get $type) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (drop (call $net.tcp_read (local.get $s) (i32.const 0x10000) (i32.const 0x100) (i32.const 0) (i32.const 0x100)))
  (call $report_code (i32.const 2)))
(func (export "in_accept") (param $type i32) (param $port i32)
  (local $l i64)
  (call $setup)
  (local.set $l (call $ok (call $bind (local.get $type) (local.get $port)) (i32.const 0x100)))
  (drop (call $net.tcp_accept (local.get $l) (i32.const 0x108) (i32.const 0x110)))
  (call $report_code (i32.const 2)))
(func (export "in_connect") (param $type i32) (param $port i32)
  (call $setup)
  (call $report_code (i32.const 1))
  (drop (call $connect (local.get $type) (local.get $port) (i32.const 0)))
  (call $report_code (i32.const 2)))
(func (export "in_write") (param $type i32) (param $port i32)
  (local $s i64)
  (call $setup)
  (local.set $s (call $ok (call $connect (local.get $type) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (call $write_all (local.get $s) (i32.const 0x10000) (i32.const 0x30000))
  (call $write_all (local.get $s) (i32.const 0x10000) (i32.const 0x30000))
  (call $write_all (local.get $s) (i32.const 0x10000) (i32.const 0x30000))
  (call $write_all (local.get $s) (i32.const 0x10000) (i32.const 0x30000))
  (loop $forever
    (call $write_all (local.get $s) (i32.const 0x10000) (i32.const 0x30000))
    (br $forever)))
(func (export "then_trap") (param $kind i32) (param $port i32) (param $listen_port i32)
  (local $out i64) (local $l i64) (local $in i64)
  (call $setup)
  (local.set $out (call $ok (call $connect (i32.const 4) (local.get $port) (i32.const 0)) (i32.const 0x100)))
  (local.set $l (call $ok (call $bind (i32.const 4) (local.get $listen_port)) (i32.const 0x100)))
  (local.set $in (call $ok (call $net.tcp_accept (local.get $l) (i32.const 0x100) (i32.const 0x108))
                           (i32.const 0x100)))
  (drop (call $net.clone_tcp_stream (local.get $in)))
  (call $wait_go)
  (if (i32.eqz (local.get $kind)) (then unreachable))
  (call $net.drop_tcp_stream (i64.const 77)))
""")


def assert_killed_promptly(rt: Runtime, process: Process) -> None:
    """``rt.kill`` ends ``process`` (blocked in a host call) within 5 s, as KILLED."""
    assert process.alive
    assert rt.kill(process)
    outcome = process.join(5)
    assert outcome is not None, "the killed process is still blocked"
    assert outcome.ending is Ending.KILLED, outcome


@KINDS
def test_kill_while_blocked_in_read(rt: Runtime, kind: int) -> None:
    """A process blocked in ``tcp_read`` (no timeout) is killed promptly and its
    socket closes (the peer sees the end of stream)."""
    with listening(kind) as listener:
        guest = start(rt, BLOCKED, "in_read", (kind, listener.getsockname()[1]))
        with accept_one(listener) as conn:
            assert guest.ok() == 0
            time.sleep(0.2)  # let it enter tcp_read (being anywhere else works too)
            assert_killed_promptly(rt, guest.process)
            assert wait_eof(conn)
        assert not guest.pending()


@KINDS
def test_kill_while_blocked_in_accept(rt: Runtime, kind: int) -> None:
    """A process blocked in ``tcp_accept`` is killed promptly; its listener is
    closed: connects are refused and the port can be bound again."""
    port = free_port(kind)
    guest = start(rt, BLOCKED, "in_accept", (kind, port))
    assert guest.ok() == 0
    time.sleep(0.2)
    assert_killed_promptly(rt, guest.process)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((LOOPBACK[kind], port), timeout=10).close()
    assert port_rebindable(kind, port)
    assert not guest.pending()


def test_kill_while_blocked_in_connect(rt: Runtime, hanging_port: int) -> None:
    """A process blocked in a ``tcp_connect`` without timeout is killed promptly."""
    guest = start(rt, BLOCKED, "in_connect", (4, hanging_port))
    assert guest.code() == 1
    time.sleep(0.2)
    assert_killed_promptly(rt, guest.process)
    assert not guest.pending()


def test_kill_while_blocked_in_write(rt: Runtime) -> None:
    """A process blocked writing to a peer that does not read is killed promptly;
    the peer then reads what was sent and the end of stream."""
    with listening(4) as listener:
        guest = start(rt, BLOCKED, "in_write", (4, listener.getsockname()[1]))
        with accept_one(listener) as conn:
            assert guest.ok() == 0
            time.sleep(0.3)
            assert_killed_promptly(rt, guest.process)
            assert len(recv_until_eof(conn)) > 0


@pytest.mark.parametrize("kind", [0, 1], ids=["unreachable", "host-trap"])
def test_trap_releases_sockets(rt: Runtime, kind: int) -> None:
    """A process that traps (wasm ``unreachable``, or a host function's trap) with
    a connected stream, a listener and an accepted stream with two references
    closes them all: both peers see the end of stream, the port can be re-bound."""
    listen_port = free_port()
    with listening(4) as listener:
        guest = start(rt, BLOCKED, "then_trap", (kind, listener.getsockname()[1], listen_port))
        with accept_one(listener) as outgoing:
            assert guest.ok() == 0
            assert guest.ok() == 0
            with socket.create_connection(("127.0.0.1", listen_port), timeout=10) as incoming:
                assert guest.ok() == 1  # the accepted stream
                guest.go()
                outcome = guest.join()
                assert outcome.ending is Ending.FAILED
                if kind == 1:
                    assert "unknown TCP stream handle 77" in outcome.message
                assert wait_eof(outgoing)
                assert wait_eof(incoming)
    assert port_rebindable(4, listen_port)


# ---------------------------------------------------------------------------
# an echo server in WAT: one process per connection

ECHO = net_guest("""
(func (export "serve") (param $port i32)
  (local $l i64) (local $child i64) (local $rc i32)
  (call $setup)
  (local.set $l (call $ok (call $bind (i32.const 4) (local.get $port)) (i32.const 0x100)))
  (loop $accept
    (local.set $rc (call $net.tcp_accept (local.get $l) (i32.const 0x108) (i32.const 0x110)))
    (if (local.get $rc) (then (call $result (local.get $rc) (i32.const 0x108)) (unreachable)))
    (call $net.drop_dns_iterator (i64.load (i32.const 0x110)))
    (if (call $proc.inherit_spawn (i64.const 0) (i32.const 0x30) (i32.const 7) (i32.const 0) (i32.const 0)
                                  (i32.const 0x118))
      (then unreachable))
    (local.set $child (i64.load (i32.const 0x118)))
    (call $msg.create_data (i64.const 0) (i64.const 0))
    (drop (call $msg.push_tcp_stream (i64.load (i32.const 0x108))))
    (call $msg.send (local.get $child))
    (call $proc.drop_process (local.get $child))
    (br $accept)))
(func (export "handler")
  (local $s i64) (local $n i32)
  (if (call $msg.receive (i64.const 0) (i32.const 0)) (then unreachable))
  (local.set $s (call $msg.take_tcp_stream (i64.const 0)))
  (block $eof (loop $more
    (if (call $net.tcp_read (local.get $s) (i32.const 0x10000) (i32.const 0x10000) (i32.const 0)
                            (i32.const 0x100))
      (then unreachable))
    (local.set $n (i32.load (i32.const 0x100)))
    (br_if $eof (i32.eqz (local.get $n)))
    (call $write_all (local.get $s) (i32.const 0x10000) (local.get $n))
    (br $more)))
  (call $net.drop_tcp_stream (local.get $s)))
""", data=[(0x30, b"handler")])


def run_echo_clients(port: int, count: int, seed: int, large_every: int = 3,
                     ) -> list[str]:
    """``count`` concurrent clients, each sending a distinct random payload (every
    ``large_every``-th one bigger than 64 KiB) and reading the echo until the
    server closes; the list of problems found (empty: every byte came back)."""
    rng = random.Random(seed)
    payloads = []
    for index in range(count):
        size = rng.randint(65537, 300_000) if index % large_every == 0 else rng.randint(1, 65536)
        payloads.append(index.to_bytes(4, "big") + rng.randbytes(size))
    problems: list[str] = []
    connected = threading.Barrier(count, timeout=30)

    def client(index: int) -> None:
        payload = payloads[index]
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
                connected.wait()  # every client is connected before anyone sends

                def send() -> None:
                    sock.sendall(payload)
                    sock.shutdown(socket.SHUT_WR)

                sender = threading.Thread(target=send, daemon=True)
                sender.start()
                echoed = recv_until_eof(sock, timeout=30)
                sender.join(30)
            if echoed != payload:
                problems.append(f"client {index}: sent {len(payload)} bytes, got "
                                f"{len(echoed)} back (equal prefix: "
                                f"{echoed == payload[:len(echoed)]})")
        except Exception as exc:  # noqa: BLE001 - reported as a test failure
            problems.append(f"client {index}: {exc!r}")

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    problems.extend(f"client {i} still running" for i, t in enumerate(threads) if t.is_alive())
    return problems


def echo_server_test(rt: Runtime, clients: int, seed: int) -> None:
    """Start the WAT echo server, run the clients, check every byte and process."""
    failures: list[tuple[Process, Outcome]] = []
    rt.on_failure = lambda process, outcome: failures.append((process, outcome))
    port = free_port()
    server = start(rt, ECHO, "serve", (port,))
    assert server.ok() == 0
    problems = run_echo_clients(port, clients, seed)
    assert problems == [], problems[:10]
    assert server.process.alive
    assert_killed_promptly(rt, server.process)  # it was blocked in tcp_accept
    assert [f for f in failures if f[0] is not server.process] == []


def test_echo_server_serves_100_concurrent_clients(rt: Runtime) -> None:
    """A WAT echo server (accept loop, ``inherit_spawn`` + the stream in a message
    per connection) echoes 100 concurrent clients' random payloads (a third of
    them over 64 KiB) intact; no handler process fails."""
    echo_server_test(rt, 100, seed=4)


@pytest.mark.slow
def test_echo_server_stress(rt: Runtime) -> None:
    """The echo server with 400 concurrent clients (slow)."""
    echo_server_test(rt, 400, seed=5)

