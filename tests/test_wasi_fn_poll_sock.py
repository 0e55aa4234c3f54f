"""``poll_oneoff`` and the ``sock_*`` functions through the harness.

Sockets are real TCP sockets on 127.0.0.1: a listening socket is handed to
the guest with ``Wasi(sockets=[listener])`` (fd 4, after the preopen at 3)
and a Python client connects to it.  Nothing may hang: client sockets have
timeouts, every blocking guest call is made only once its data is already
queued, and each potentially blocking call runs under a ``watchdog`` that
unblocks it (by connecting or sending) after a few seconds, so a wrong
"blocking" answer fails the test instead of stalling the run.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

import funk
from lunatic_api.wasi import Errno, Wasi
from lunatic_api.wasi.abi import (
    SOCKET_RIGHTS,
    Clockid,
    Eventrwflags,
    Eventtype,
    Fdflags,
    Filetype,
    Oflags,
    Riflags,
    Rights,
    Sdflags,
    Subclockflags,
)
from tests.wasi_fn_support import DIR_OPEN, EVENT_FMT, MEMORY_SIZE, Guest
from tests.wasi_harness import Scratch, pack_subscription

R = Rights
CLOCK, FD_READ, FD_WRITE = int(Eventtype.clock), int(Eventtype.fd_read), int(Eventtype.fd_write)
ABSTIME = int(Subclockflags.subscription_clock_abstime)
MS = 1_000_000
LISTENER = 4


def poll(g: Guest, *subs: bytes) -> tuple[int, list[tuple[int, int, int, int, int]]]:
    """``poll_oneoff``; returns (errno, [(userdata, error, type, nbytes, flags)])."""
    s = g.scratch()
    sp = s.alloc(48 * max(1, len(subs)))
    s.memory.write(sp, b"".join(subs))
    ev = s.alloc(32 * max(1, len(subs)))
    s.memory.write(ev, b"\xee" * 32 * max(1, len(subs)))
    nev = s.alloc(4, 4)
    s.memory.pack("<I", nev, 0xABCD)
    err = g.x.poll_oneoff(sp, ev, len(subs), nev)
    if err != Errno.success:
        assert s.u32(nev) == 0xABCD  # nothing written on failure
        return err, []
    n = s.u32(nev)
    assert 1 <= n <= len(subs)
    return err, [s.unpack(EVENT_FMT, ev + 32 * i) for i in range(n)]


def clock_sub(userdata: int, timeout_ns: int, clock: int = Clockid.monotonic,
              flags: int = 0) -> bytes:
    return pack_subscription(userdata, CLOCK, int(clock), timeout_ns, 0, flags)


def fd_sub(userdata: int, fd: int, kind: int = FD_READ) -> bytes:
    return pack_subscription(userdata, kind, fd)


@contextmanager
def watchdog(seconds: float, rescue: Callable[[], object]) -> Iterator[None]:
    """Run ``rescue`` after ``seconds`` unless the block finished first."""
    timer = threading.Timer(seconds, rescue)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@dataclass
class Net:
    g: Guest
    wasi: Wasi
    listener: socket.socket
    port: int
    root: Path
    clients: list[socket.socket]

    def connect(self) -> socket.socket:
        c = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        self.clients.append(c)
        return c

    def accept(self, flags: int = 0) -> int:
        s = self.g.scratch()
        out = s.out(4)
        err = self.g.x.sock_accept(LISTENER, flags, out)
        assert err == Errno.success, Errno(err)
        return s.u32(out)

    def connected_pair(self, flags: int = 0) -> tuple[int, socket.socket]:
        client = self.connect()
        with watchdog(3, self.connect):
            fd = self.accept(flags)
        return fd, client

    def recv(self, fd: int, *sizes: int, flags: int = 0) -> tuple[int, bytes, int]:
        s = self.g.scratch()
        iovs, n, slices = s.iovs(*sizes)
        nread, roflags = s.out(4), s.out(4)
        s.memory.pack("<I", roflags, 0xFFFF)
        err = self.g.x.sock_recv(fd, iovs, n, flags, nread, roflags)
        got = s.u32(nread)
        data = b"".join(s.read(p, ln) for p, ln in slices)[:got]
        return err, data, int(s.unpack("<H", roflags)[0])

    def send(self, fd: int, *bufs: bytes, flags: int = 0) -> tuple[int, int]:
        s = self.g.scratch()
        iovs, n, _ = s.iovs(*bufs)
        out = s.out(4)
        return self.g.x.sock_send(fd, iovs, n, flags, out), s.u32(out)


@pytest.fixture
def net(tmp_path: Path, backend: str) -> Iterator[Net]:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    (tmp_path / "file.txt").write_bytes(b"0123456789")
    wasi = Wasi(preopens={"/d": tmp_path}, sockets=[listener], stdin=b"stdin-data",
                stdout=bytearray())
    n = Net(Guest(wasi, backend), wasi, listener, port, tmp_path, [])
    yield n
    for c in n.clients:
        c.close()
    wasi.close()


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


# --------------------------------------------------------------------------- poll_oneoff: clocks


def test_poll_zero_subscriptions_is_inval(net: Net) -> None:
    assert poll(net.g) == (Errno.inval, [])


@pytest.mark.parametrize("clock", [Clockid.monotonic, Clockid.realtime])
def test_poll_relative_clock_sleeps(net: Net, clock: int) -> None:
    start = time.monotonic()
    err, events = poll(net.g, clock_sub(0x1234, 30 * MS, clock))
    elapsed = time.monotonic() - start
    assert err == Errno.success
    assert events == [(0x1234, 0, CLOCK, 0, 0)]
    assert elapsed >= 0.025


def test_poll_zero_timeout_is_immediate(net: Net) -> None:
    start = time.monotonic()
    assert poll(net.g, clock_sub(9, 0)) == (Errno.success, [(9, 0, CLOCK, 0, 0)])
    assert time.monotonic() - start < 1


def test_poll_absolute_monotonic(net: Net) -> None:
    s = Scratch(net.g.inst)
    now = s.out(8)
    assert net.g.x.clock_time_get(Clockid.monotonic, 0, now) == Errno.success
    deadline = s.u64(now) + 30 * MS
    start = time.monotonic()
    err, events = poll(net.g, clock_sub(5, deadline, Clockid.monotonic, ABSTIME))
    assert (err, events) == (Errno.success, [(5, 0, CLOCK, 0, 0)])
    assert time.monotonic() - start >= 0.02
    assert net.g.x.clock_time_get(Clockid.monotonic, 0, now) == Errno.success
    assert s.u64(now) >= deadline
    # a deadline in the past fires at once
    start = time.monotonic()
    assert poll(net.g, clock_sub(6, 1, Clockid.monotonic, ABSTIME)) == \
        (Errno.success, [(6, 0, CLOCK, 0, 0)])
    assert time.monotonic() - start < 1


def test_poll_absolute_realtime(net: Net) -> None:
    deadline = time.time_ns() + 30 * MS
    err, events = poll(net.g, clock_sub(7, deadline, Clockid.realtime, ABSTIME))
    assert (err, events) == (Errno.success, [(7, 0, CLOCK, 0, 0)])
    assert time.time_ns() >= deadline - 2 * MS
    start = time.monotonic()
    assert poll(net.g, clock_sub(8, time.time_ns() - 10**9, Clockid.realtime, ABSTIME)) == \
        (Errno.success, [(8, 0, CLOCK, 0, 0)])
    assert time.monotonic() - start < 1


def test_poll_shorter_clock_fires_alone(net: Net) -> None:
    start = time.monotonic()
    err, events = poll(net.g, clock_sub(1, 5_000 * MS), clock_sub(2, 20 * MS))
    assert (err, events) == (Errno.success, [(2, 0, CLOCK, 0, 0)])
    assert time.monotonic() - start < 4


def test_poll_two_expired_clocks_both_reported(net: Net) -> None:
    err, events = poll(net.g, clock_sub(1, 0), clock_sub(2, 0))
    assert err == Errno.success
    assert sorted(e[0] for e in events) == [1, 2]


@pytest.mark.parametrize("clock", [Clockid.process_cputime_id, Clockid.thread_cputime_id])
def test_poll_cputime_clock_event_is_notsup(net: Net, clock: int) -> None:
    start = time.monotonic()
    err, events = poll(net.g, clock_sub(3, 10_000 * MS, clock))
    assert (err, events) == (Errno.success, [(3, Errno.notsup, CLOCK, 0, 0)])
    assert time.monotonic() - start < 1


def test_poll_unknown_clock_is_inval(net: Net) -> None:
    start = time.monotonic()
    err, events = poll(net.g, clock_sub(4, 10_000 * MS, 17))
    # either the call or the subscription's event reports inval, at once
    assert (err, events) in ((Errno.inval, []),
                             (Errno.success, [(4, Errno.inval, CLOCK, 0, 0)]))
    assert time.monotonic() - start < 1


def test_poll_userdata_round_trips(net: Net) -> None:
    for ud in (0, 1, 0xFFFFFFFFFFFFFFFF, 0x8000000000000001):
        assert poll(net.g, clock_sub(ud, 0))[1][0][0] == ud


@pytest.mark.parametrize("tag", [3, 4, 255])
def test_poll_unknown_tag_is_inval(net: Net, tag: int) -> None:
    bad = pack_subscription(1, tag, 0)
    assert poll(net.g, bad) == (Errno.inval, [])
    assert poll(net.g, clock_sub(2, 0), bad) == (Errno.inval, [])


def test_poll_bad_pointers_trap(net: Net) -> None:
    s = Scratch(net.g.inst)
    sp = s.alloc(48)
    s.memory.write(sp, clock_sub(1, 0))
    start = time.monotonic()
    with pytest.raises(funk.Trap):
        net.g.x.poll_oneoff(sp, MEMORY_SIZE - 16, 1, s.out(4))
    with pytest.raises(funk.Trap):
        net.g.x.poll_oneoff(MEMORY_SIZE - 40, s.alloc(32), 1, s.out(4))
    with pytest.raises(funk.Trap):
        net.g.x.poll_oneoff(sp, s.alloc(32), 1, MEMORY_SIZE)
    with pytest.raises(funk.Trap):  # the array size overflows memory
        net.g.x.poll_oneoff(sp, s.alloc(32), 0x10000000, s.out(4))
    assert time.monotonic() - start < 1


# --------------------------------------------------------------------------- poll_oneoff: fds


def test_poll_file_read_reports_remaining_bytes(net: Net) -> None:
    fd = net.g.open_ok("file.txt")
    assert net.g.read(fd, 3) == (Errno.success, b"012")
    err, events = poll(net.g, fd_sub(11, fd), clock_sub(12, 5_000 * MS))
    assert (err, events) == (Errno.success, [(11, 0, FD_READ, 7, 0)])
    assert net.g.read(fd, 100)[0] == Errno.success
    assert poll(net.g, fd_sub(13, fd))[1] == [(13, 0, FD_READ, 0, 0)]  # at EOF: ready, 0


def test_poll_file_write_ready(net: Net) -> None:
    fd = net.g.open_ok("file.txt")
    assert poll(net.g, fd_sub(1, fd, FD_WRITE)) == (Errno.success, [(1, 0, FD_WRITE, 0, 0)])


def test_poll_stdio_streams(net: Net) -> None:
    assert poll(net.g, fd_sub(1, 0)) == (Errno.success, [(1, 0, FD_READ, 10, 0)])
    assert net.g.read(0, 6) == (Errno.success, b"stdin-")
    assert poll(net.g, fd_sub(1, 0))[1] == [(1, 0, FD_READ, 4, 0)]
    assert poll(net.g, fd_sub(2, 1, FD_WRITE)) == (Errno.success, [(2, 0, FD_WRITE, 0, 0)])


@pytest.mark.parametrize("kind", [FD_READ, FD_WRITE])
def test_poll_bad_fd_event_is_badf(net: Net, kind: int) -> None:
    start = time.monotonic()
    err, events = poll(net.g, fd_sub(21, 99, kind), clock_sub(22, 10_000 * MS))
    assert (err, events) == (Errno.success, [(21, Errno.badf, kind, 0, 0)])
    assert time.monotonic() - start < 1


def test_poll_directory_is_badf(net: Net) -> None:
    d = net.g.open_ok(".", base=DIR_OPEN)
    for fd in (3, d):
        assert poll(net.g, fd_sub(1, fd), clock_sub(2, 10_000 * MS))[1] == \
            [(1, Errno.badf, FD_READ, 0, 0)]


def test_poll_mixed_subscriptions(net: Net) -> None:
    fd = net.g.open_ok("file.txt")
    start = time.monotonic()
    err, events = poll(net.g, clock_sub(1, 10_000 * MS), fd_sub(2, fd),
                       fd_sub(3, 77), fd_sub(4, 1, FD_WRITE), clock_sub(5, 0))
    assert err == Errno.success
    by_ud = {e[0]: e for e in events}
    assert set(by_ud) == {2, 3, 4, 5}  # the 10 s clock is not ready
    assert by_ud[2] == (2, 0, FD_READ, 10, 0)
    assert by_ud[3] == (3, Errno.badf, FD_READ, 0, 0)
    assert by_ud[4] == (4, 0, FD_WRITE, 0, 0)
    assert by_ud[5] == (5, 0, CLOCK, 0, 0)
    assert time.monotonic() - start < 5


def test_poll_socket_not_ready_then_clock(net: Net) -> None:
    fd, client = net.connected_pair()
    start = time.monotonic()
    err, events = poll(net.g, fd_sub(1, fd), clock_sub(2, 30 * MS))
    assert (err, events) == (Errno.success, [(2, 0, CLOCK, 0, 0)])
    assert time.monotonic() - start >= 0.025


def test_poll_socket_becomes_readable(net: Net) -> None:
    fd, client = net.connected_pair()
    sender = threading.Timer(0.05, lambda: client.sendall(b"ping"))
    sender.start()
    start = time.monotonic()
    try:
        err, events = poll(net.g, fd_sub(31, fd), clock_sub(32, 5_000 * MS))
    finally:
        sender.join()
    assert err == Errno.success
    assert time.monotonic() - start < 4
    assert events == [(31, 0, FD_READ, 4, 0)]
    assert net.recv(fd, 16) == (Errno.success, b"ping", 0)


@pytest.mark.parametrize("timeout", [30 * 86_400 * 10**9, 1 << 62, 0xFFFFFFFFFFFFFFFF])
def test_poll_socket_with_huge_clock_timeout_waits_for_data(net: Net, timeout: int) -> None:
    # a clock that never fires in practice must not break waiting on the fd
    fd, client = net.connected_pair()
    sender = threading.Timer(0.05, lambda: client.sendall(b"late"))
    sender.start()
    try:
        err, events = poll(net.g, fd_sub(1, fd), clock_sub(2, timeout))
    finally:
        sender.join()
    assert (err, events) == (Errno.success, [(1, 0, FD_READ, 4, 0)])


def test_poll_socket_eof_and_hangup(net: Net) -> None:
    fd, client = net.connected_pair()
    client.shutdown(socket.SHUT_WR)
    err, events = poll(net.g, fd_sub(1, fd), clock_sub(2, 5_000 * MS))
    assert err == Errno.success
    assert events == [(1, 0, FD_READ, 0, 0)]  # EOF pending: readable, 0 bytes
    client.close()
    # both directions closed: the host reports POLLHUP -> fd_readwrite_hangup
    assert net.g.x.sock_shutdown(fd, Sdflags.wr) == Errno.success
    err, events = poll(net.g, fd_sub(1, fd), clock_sub(2, 5_000 * MS))
    assert events == [(1, 0, FD_READ, 0, int(Eventrwflags.fd_readwrite_hangup))]
    assert net.recv(fd, 8) == (Errno.success, b"", 0)


def test_poll_socket_writable_and_listener_readable(net: Net) -> None:
    fd, client = net.connected_pair()
    assert poll(net.g, fd_sub(1, fd, FD_WRITE), clock_sub(2, 5_000 * MS)) == \
        (Errno.success, [(1, 0, FD_WRITE, 0, 0)])
    # a listener is readable when a connection is pending
    assert poll(net.g, fd_sub(3, LISTENER), clock_sub(4, 20 * MS))[1] == [(4, 0, CLOCK, 0, 0)]
    net.connect()
    err, events = poll(net.g, fd_sub(3, LISTENER), clock_sub(4, 5_000 * MS))
    assert [e[:3] for e in events] == [(3, 0, FD_READ)]


def test_poll_socket_read_and_write_same_fd(net: Net) -> None:
    fd, client = net.connected_pair()
    client.sendall(b"abc")
    err, events = poll(net.g, fd_sub(1, fd), fd_sub(2, fd, FD_WRITE),
                       clock_sub(3, 5_000 * MS))
    assert err == Errno.success
    assert sorted(events) == [(1, 0, FD_READ, 3, 0), (2, 0, FD_WRITE, 0, 0)]


# --------------------------------------------------------------------------- sock_accept


def test_accept_blocking_with_client(net: Net) -> None:
    fd, client = net.connected_pair()
    err, st = net.g.fdstat(fd)
    assert err == Errno.success
    assert st.filetype == Filetype.socket_stream
    assert st.flags == 0
    assert st.rights_base == SOCKET_RIGHTS & ~int(R.sock_accept)
    assert net.g.fdstat(LISTENER)[1][:3] == (Filetype.socket_stream, 0, SOCKET_RIGHTS)
    # the connection works both ways, through sock_* and fd_* alike
    client.sendall(b"hi")
    assert net.g.read(fd, 16) == (Errno.success, b"hi")
    assert net.g.write(fd, b"there") == (Errno.success, 5)
    assert _recv_exactly(client, 5) == b"there"


def test_accept_several_clients_get_distinct_fds(net: Net) -> None:
    c1 = net.connect()
    c2 = net.connect()
    with watchdog(3, net.connect):
        f1 = net.accept()
        f2 = net.accept()
    assert len({f1, f2, LISTENER}) == 3
    c1.sendall(b"one")
    c2.sendall(b"two")
    got = {net.recv(f1, 8)[1], net.recv(f2, 8)[1]}
    assert got == {b"one", b"two"}


def test_accept_nonblocking_listener_without_client_is_again(tmp_path: Path,
                                                            backend: str) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    wasi = Wasi(sockets=[listener])
    g = Guest(wasi, backend)
    assert g.fdstat(3)[1].flags == Fdflags.nonblock
    s = Scratch(g.inst)
    out = s.out(4)
    s.memory.pack("<I", out, 0xFFFFFFFF)
    assert g.x.sock_accept(3, 0, out) == Errno.again
    assert s.u32(out) == 0xFFFFFFFF
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        deadline = time.monotonic() + 5
        while (err := g.x.sock_accept(3, 0, out)) == Errno.again:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert err == Errno.success
        assert s.u32(out) == 4
    wasi.close()


def test_accept_after_setting_nonblock_flag_is_again(net: Net) -> None:
    assert net.g.x.fd_fdstat_set_flags(LISTENER, Fdflags.nonblock) == Errno.success
    assert net.g.fdstat(LISTENER)[1].flags == Fdflags.nonblock
    s = Scratch(net.g.inst)
    with watchdog(3, net.connect):
        assert net.g.x.sock_accept(LISTENER, 0, s.out(4)) == Errno.again


def test_accept_nonblock_flag_makes_connection_nonblocking(net: Net) -> None:
    fd, client = net.connected_pair(flags=int(Fdflags.nonblock))
    assert net.g.fdstat(fd)[1].flags == Fdflags.nonblock
    with watchdog(3, lambda: client.sendall(b"rescue")):
        assert net.recv(fd, 8)[0] == Errno.again
        assert net.g.read(fd, 8)[0] == Errno.again
    client.sendall(b"now")
    deadline = time.monotonic() + 5
    while (r := net.recv(fd, 8))[0] == Errno.again:
        assert time.monotonic() < deadline
        time.sleep(0.005)
    assert r == (Errno.success, b"now", 0)


def test_set_nonblock_on_connection_then_back(net: Net) -> None:
    fd, client = net.connected_pair()
    assert net.g.x.fd_fdstat_set_flags(fd, Fdflags.nonblock) == Errno.success
    with watchdog(3, lambda: client.sendall(b"rescue")):
        assert net.recv(fd, 8)[0] == Errno.again
        assert net.g.read(fd, 8)[0] == Errno.again
    assert net.g.x.fd_fdstat_set_flags(fd, 0) == Errno.success
    assert net.g.fdstat(fd)[1].flags == 0
    with watchdog(0.05, lambda: client.sendall(b"blocking")):
        assert net.recv(fd, 8) == (Errno.success, b"blocking", 0)


@pytest.mark.parametrize("flags", [int(Fdflags.append), int(Fdflags.sync), 1 << 8])
def test_accept_invalid_flags_is_inval(net: Net, flags: int) -> None:
    net.connect()
    s = Scratch(net.g.inst)
    assert net.g.x.sock_accept(LISTENER, flags, s.out(4)) == Errno.inval
    with watchdog(3, net.connect):
        assert net.accept() > LISTENER  # the pending connection was not consumed


def test_accept_on_a_connection_is_inval(net: Net) -> None:
    fd, client = net.connected_pair()
    s = Scratch(net.g.inst)
    # the accepted socket lacks sock_accept; the kernel would say inval
    assert net.g.x.sock_accept(fd, 0, s.out(4)) in (Errno.notcapable, Errno.inval)


def test_accept_needs_right(net: Net) -> None:
    keep = SOCKET_RIGHTS & ~int(R.sock_accept)
    assert net.g.x.fd_fdstat_set_rights(LISTENER, keep, keep) == Errno.success
    net.connect()
    s = Scratch(net.g.inst)
    assert net.g.x.sock_accept(LISTENER, 0, s.out(4)) == Errno.notcapable


# --------------------------------------------------------------------------- recv / send


def test_recv_peek_leaves_data(net: Net) -> None:
    fd, client = net.connected_pair()
    client.sendall(b"hello")
    time.sleep(0.01)
    assert net.recv(fd, 3, flags=int(Riflags.recv_peek)) == (Errno.success, b"hel", 0)
    assert net.recv(fd, 16, flags=int(Riflags.recv_peek)) == (Errno.success, b"hello", 0)
    assert net.recv(fd, 2, 0, 16) == (Errno.success, b"hello", 0)
    client.sendall(b"again")
    assert net.recv(fd, 16) == (Errno.success, b"again", 0)


def test_recv_waitall(net: Net) -> None:
    fd, client = net.connected_pair()
    client.sendall(b"ab")
    later = threading.Timer(0.03, lambda: client.sendall(b"cd"))
    later.start()
    try:
        with watchdog(3, client.close):
            got = net.recv(fd, 4, flags=int(Riflags.recv_waitall))
    finally:
        later.join()
    assert got == (Errno.success, b"abcd", 0)


def test_recv_eof_after_client_close(net: Net) -> None:
    fd, client = net.connected_pair()
    client.sendall(b"last")
    client.close()
    assert net.recv(fd, 16) == (Errno.success, b"last", 0)
    assert net.recv(fd, 16) == (Errno.success, b"", 0)


@pytest.mark.parametrize("flags", [1 << 2, 0xFFFF])
def test_recv_invalid_flags_is_inval(net: Net, flags: int) -> None:
    fd, client = net.connected_pair()
    client.sendall(b"x")
    assert net.recv(fd, 4, flags=flags)[0] == Errno.inval
    assert net.recv(fd, 4) == (Errno.success, b"x", 0)


def test_recv_on_listener_is_notconn(net: Net) -> None:
    assert net.recv(LISTENER, 4)[0] == Errno.notconn


def test_send_several_buffers(net: Net) -> None:
    fd, client = net.connected_pair()
    assert net.send(fd, b"ab", b"", b"cde") == (Errno.success, 5)
    assert _recv_exactly(client, 5) == b"abcde"
    assert net.send(fd) == (Errno.success, 0)
    big = bytes(range(256)) * 64
    err, n = net.send(fd, big)
    assert err == Errno.success and 0 < n <= len(big)
    assert _recv_exactly(client, n) == big[:n]


def test_recv_send_need_rights(net: Net) -> None:
    fd, client = net.connected_pair()
    keep = SOCKET_RIGHTS & ~int(R.fd_read | R.fd_write | R.sock_accept)
    assert net.g.x.fd_fdstat_set_rights(fd, keep, 0) == Errno.success
    client.sendall(b"x")
    assert net.recv(fd, 4)[0] == Errno.badf
    assert net.send(fd, b"y")[0] == Errno.badf
    client.settimeout(0.05)
    with pytest.raises(socket.timeout):
        client.recv(1)


def test_recv_bad_pointers_trap(net: Net) -> None:
    fd, client = net.connected_pair()
    client.sendall(b"data")
    s = Scratch(net.g.inst)
    iovs, n, _ = s.iovs(4)
    with pytest.raises(funk.Trap):
        net.g.x.sock_recv(fd, iovs, n, 0, s.out(4), MEMORY_SIZE - 1)
    s.memory.pack("<II", iovs, MEMORY_SIZE - 2, 4)
    with pytest.raises(funk.Trap):
        net.g.x.sock_recv(fd, iovs, n, 0, s.out(4), s.out(4))


# --------------------------------------------------------------------------- shutdown


def test_shutdown_write_gives_client_eof(net: Net) -> None:
    fd, client = net.connected_pair()
    assert net.send(fd, b"bye") == (Errno.success, 3)
    assert net.g.x.sock_shutdown(fd, Sdflags.wr) == Errno.success
    assert _recv_exactly(client, 3) == b"bye"
    assert client.recv(1) == b""  # EOF
    assert net.send(fd, b"more")[0] == Errno.pipe
    # reading still works
    client.sendall(b"reply")
    assert net.recv(fd, 16) == (Errno.success, b"reply", 0)


def test_shutdown_read_and_both(net: Net) -> None:
    fd, client = net.connected_pair()
    assert net.g.x.sock_shutdown(fd, Sdflags.rd) == Errno.success
    assert net.recv(fd, 16) == (Errno.success, b"", 0)  # reads see EOF
    assert net.send(fd, b"ok") == (Errno.success, 2)
    assert _recv_exactly(client, 2) == b"ok"
    fd2, client2 = net.connected_pair()
    assert net.g.x.sock_shutdown(fd2, int(Sdflags.rd | Sdflags.wr)) == Errno.success
    assert client2.recv(1) == b""


@pytest.mark.parametrize("how", [0, 4, 7, 255])
def test_shutdown_invalid_how_is_inval(net: Net, how: int) -> None:
    fd, client = net.connected_pair()
    assert net.g.x.sock_shutdown(fd, how) == Errno.inval
    assert net.send(fd, b"still") == (Errno.success, 5)
    assert _recv_exactly(client, 5) == b"still"


def test_shutdown_unconnected_is_notconn(backend: str) -> None:
    fresh = socket.socket()
    wasi = Wasi(sockets=[fresh])
    g = Guest(wasi, backend)
    for how in (Sdflags.rd, Sdflags.wr, Sdflags.rd | Sdflags.wr):
        assert g.x.sock_shutdown(3, int(how)) == Errno.notconn
    s = Scratch(g.inst)
    assert g.x.sock_accept(3, 0, s.out(4)) == Errno.inval  # not listening
    wasi.close()


def test_shutdown_needs_right(net: Net) -> None:
    fd, client = net.connected_pair()
    keep = SOCKET_RIGHTS & ~int(R.sock_shutdown | R.sock_accept)
    assert net.g.x.fd_fdstat_set_rights(fd, keep, 0) == Errno.success
    assert net.g.x.sock_shutdown(fd, Sdflags.wr) == Errno.notcapable


# --------------------------------------------------------------------------- non-sockets, close


def test_sock_functions_on_non_sockets_are_notsock(net: Net) -> None:
    f = net.g.open_ok("file.txt")
    d = net.g.open_ok(".", base=DIR_OPEN)
    s = Scratch(net.g.inst)
    for fd in (0, 1, 3, f, d):
        assert net.g.x.sock_accept(fd, 0, s.out(4)) == Errno.notsock
        assert net.recv(fd, 4)[0] == Errno.notsock
        assert net.send(fd, b"x")[0] == Errno.notsock
        assert net.g.x.sock_shutdown(fd, Sdflags.wr) == Errno.notsock
    assert (net.root / "file.txt").read_bytes() == b"0123456789"
    assert net.g.read(0, 32) == (Errno.success, b"stdin-data")  # nothing consumed


def test_sock_functions_on_bad_fd_are_badf(net: Net) -> None:
    s = Scratch(net.g.inst)
    for fd in (5, 99, 0xFFFFFFFF):
        assert net.g.x.sock_accept(fd, 0, s.out(4)) == Errno.badf
        assert net.recv(fd, 4)[0] == Errno.badf
        assert net.send(fd, b"x")[0] == Errno.badf
        assert net.g.x.sock_shutdown(fd, Sdflags.wr) == Errno.badf


def test_close_connection_gives_client_eof(net: Net) -> None:
    fd, client = net.connected_pair()
    assert net.g.x.fd_close(fd) == Errno.success
    assert client.recv(1) == b""
    assert net.recv(fd, 4)[0] == Errno.badf


def test_wasi_close_closes_handed_over_sockets(net: Net) -> None:
    fd, client = net.connected_pair()
    net.wasi.close()
    assert net.listener.fileno() == -1
    assert client.recv(1) == b""
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", net.port), timeout=1).close()


def test_socket_pread_seek_are_spipe_or_badf(net: Net) -> None:
    fd, client = net.connected_pair()
    # a socket is not seekable: no fd_seek right, or ESPIPE from the host
    assert net.g.seek(fd, 0, 0)[0] in (Errno.notcapable, Errno.spipe)
    assert net.g.pread(fd, 4, 0)[0] in (Errno.notcapable, Errno.spipe)
    assert net.g.filestat(fd)[1].filetype == Filetype.socket_stream


def test_dgram_socket_filetype(backend: str) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    wasi = Wasi(sockets=[udp])
    g = Guest(wasi, backend)
    assert g.fdstat(3)[1].filetype == Filetype.socket_dgram
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        peer.sendto(b"datagram", udp.getsockname())
        s = Scratch(g.inst)
        iovs, n, slices = s.iovs(4)
        nread, roflags = s.out(4), s.out(4)
        with watchdog(3, lambda: peer.sendto(b"rescue", udp.getsockname())):
            assert g.x.sock_recv(3, iovs, n, 0, nread, roflags) == Errno.success
        assert s.u32(nread) == 4
        assert s.read(slices[0][0], 4) == b"data"
        assert s.unpack("<H", roflags)[0] == 1  # recv_data_truncated
    finally:
        peer.close()
        wasi.close()


def test_open_file_oflags_unused_here(net: Net) -> None:
    """The fixture's preopen is usable next to the sockets (fd numbering)."""
    fd = net.g.open_ok("new.txt", oflags=Oflags.creat)
    assert fd == LISTENER + 1
    assert net.g.write(fd, b"x") == (Errno.success, 1)
    assert (net.root / "new.txt").read_bytes() == b"x"


def test_handed_over_socket_with_python_timeout_blocks_as_reported(backend: str) -> None:
    """A socket given with ``settimeout(t)`` is reported blocking (flags 0), so
    fd_read must wait for data like sock_recv does -- not fail with ``again``
    because CPython implements timeouts with O_NONBLOCK on the host fd."""
    ours, peer = socket.socketpair()
    ours.settimeout(2)
    peer.settimeout(5)
    wasi = Wasi(sockets=[ours])
    try:
        g = Guest(wasi, backend)
        assert g.fdstat(3)[1].flags == 0  # reported as a blocking descriptor
        with watchdog(0.05, lambda: peer.sendall(b"late")):
            assert g.read(3, 16) == (Errno.success, b"late")
    finally:
        wasi.close()
        peer.close()


def test_poll_and_read_stdin_pipe(backend: str) -> None:
    r, w = os.pipe()
    reader = os.fdopen(r, "rb")
    wasi = Wasi(stdin=reader, stdout=bytearray())
    reader.close()  # the Wasi holds its own duplicate
    try:
        g = Guest(wasi, backend)
        # nothing written yet: only the clock fires
        assert poll(g, fd_sub(1, 0), clock_sub(2, 20 * MS))[1] == [(2, 0, CLOCK, 0, 0)]
        writer = threading.Timer(0.03, lambda: os.write(w, b"piped"))
        writer.start()
        try:
            err, events = poll(g, fd_sub(1, 0), clock_sub(2, 5_000 * MS))
        finally:
            writer.join()
        assert (err, events) == (Errno.success, [(1, 0, FD_READ, 5, 0)])
        assert g.read(0, 3, 16) == (Errno.success, b"piped")
        os.close(w)
        w = -1
        err, events = poll(g, fd_sub(1, 0), clock_sub(2, 5_000 * MS))
        assert events == [(1, 0, FD_READ, 0, int(Eventrwflags.fd_readwrite_hangup))]
        assert g.read(0, 16) == (Errno.success, b"")  # EOF
    finally:
        if w >= 0:
            os.close(w)
        wasi.close()
