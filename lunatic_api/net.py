"""Sockets for Lunatic processes: shared streams, killable waits, error texts.

Every socket is non-blocking; a process that must wait polls its socket
together with its own kill eventfd (``Process.wake_fd``), so killing a
process blocked in ``tcp_read``/``tcp_accept``/``tcp_connect`` wakes it at once.

A TCP stream may be referenced from several processes (``clone_tcp_stream``,
messages).  ``SharedStream`` counts references and closes the socket when
the last one is released.  Deliberate difference from v0.6.0 (spec section
9 item 16): reads and writes have *separate* locks, so a process blocked
reading a stream does not block another process writing to it (the usual
"one reader, one writer" split would deadlock otherwise).  Reads are still
serialised with reads and writes with writes, so each call is atomic.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import threading
import time
from typing import Any

from lunatic_api.process import Process
from lunatic_api.scheduler import release_cpu_hint

__all__ = [
    "SharedStream", "StreamRef", "wait_ready", "os_error_text", "NetError", "READ", "WRITE",
    "deadline_of", "connect", "listen", "accept", "socket_address", "sockaddr_of",
    "SocketAddress",
]

READ = select.POLLIN | select.POLLPRI
WRITE = select.POLLOUT
_DONE = select.POLLERR | select.POLLHUP | select.POLLNVAL


class NetError(Exception):
    """A networking failure reported to the guest as an error resource (its text)."""


def os_error_text(exc: OSError) -> str:
    """An OS error as Rust's ``io::Error`` shows it: ``Connection refused (os error 111)``."""
    if exc.errno is not None:
        return f"{os.strerror(exc.errno)} (os error {exc.errno})"
    return str(exc) or type(exc).__name__


def deadline_of(timeout_ms: int) -> float | None:
    """The monotonic deadline of a ``timeout_ms`` argument (0 = none)."""
    return None if timeout_ms == 0 else time.monotonic() + timeout_ms / 1000


def wait_ready(process: Process, fd: int, events: int, deadline: float | None) -> bool:
    """Wait until ``fd`` is ready for ``events``; ``False`` when ``deadline`` passed.

    Raises ``ProcessKilled`` if the process is killed meanwhile (a suspension
    point).  Errors and hang-ups count as ready: the next I/O call reports them.
    """
    release_cpu_hint()  # a blocked process has no reason to stay by its spawner
    wake = process.wake_fd()
    poller = select.poll()
    poller.register(fd, events)
    poller.register(wake, select.POLLIN)
    while True:
        process.check_killed()
        if deadline is None:
            timeout = None
        else:
            timeout = max(0, int((deadline - time.monotonic()) * 1000 + 0.999))
        try:
            ready = poller.poll(timeout)
        except InterruptedError:  # pragma: no cover - retried by Python already
            continue
        process.check_killed()
        for ready_fd, got in ready:
            if ready_fd == fd and got & (events | _DONE):
                return True
        if deadline is not None and time.monotonic() >= deadline:
            return False


class SharedStream:
    """One connected TCP socket, shared by every reference to it."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.socket = sock
        self.read_lock = threading.Lock()
        self.write_lock = threading.Lock()
        self._refs = 0
        self._refs_lock = threading.Lock()

    def new_ref(self) -> StreamRef:
        """A new reference (closing happens when every reference is released)."""
        with self._refs_lock:
            self._refs += 1
        return StreamRef(self)

    def _release(self) -> None:
        with self._refs_lock:
            self._refs -= 1
            last = self._refs == 0
        if last:
            self.socket.close()

    @property
    def closed(self) -> bool:
        """Whether the socket has been closed (every reference released)."""
        return self.socket.fileno() == -1

    def read(self, process: Process, buf: memoryview, deadline: float | None) -> int:
        """One read into ``buf``; 0 means end of stream.  ``NetError`` on failure/timeout."""
        with self.read_lock:
            while True:
                try:
                    return self.socket.recv_into(buf)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    raise NetError(os_error_text(exc)) from None
                if not wait_ready(process, self.socket.fileno(), READ, deadline):
                    raise NetError("Read call timed out")

    def write(self, process: Process, buffers: list[memoryview], deadline: float | None) -> int:
        """One gathering write (may be partial).  ``NetError`` on failure/timeout."""
        with self.write_lock:
            while True:
                try:
                    return self.socket.sendmsg(buffers, [], _NOSIGNAL)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError as exc:
                    raise NetError(os_error_text(exc)) from None
                if not wait_ready(process, self.socket.fileno(), WRITE, deadline):
                    raise NetError("Write call timed out")


_NOSIGNAL = getattr(socket, "MSG_NOSIGNAL", 0)  # EPIPE instead of SIGPIPE


class StreamRef:
    """One reference to a ``SharedStream``, as held by a handle table or a message."""

    __slots__ = ("stream", "_released")

    def __init__(self, stream: SharedStream) -> None:
        self.stream = stream
        self._released = False

    def clone(self) -> StreamRef:
        """Another reference to the same socket."""
        return self.stream.new_ref()

    def release(self) -> None:
        """Give up this reference (idempotent)."""
        if not self._released:
            self._released = True
            self.stream._release()


def connect(process: Process, address: tuple[object, ...], family: int,
            deadline: float | None) -> socket.socket:
    """A connected non-blocking TCP socket; ``NetError`` on failure or timeout."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EAGAIN):
            raise NetError(os_error_text(OSError(code, os.strerror(code))))
        if code != 0:
            if not wait_ready(process, sock.fileno(), WRITE, deadline):
                raise NetError("Connect timed out")
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code:
                raise NetError(os_error_text(OSError(code, os.strerror(code))))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock
    except BaseException:
        sock.close()
        raise


def listen(address: tuple[object, ...], family: int) -> socket.socket:
    """A listening socket as tokio's ``TcpListener::bind`` makes it (SO_REUSEADDR, backlog 1024)."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        sock.listen(1024)
        sock.setblocking(False)
        return sock
    except OSError as exc:
        sock.close()
        raise NetError(os_error_text(exc)) from None


def accept(process: Process, listener: socket.socket) -> tuple[socket.socket, tuple[object, ...]]:
    """Wait for and accept a connection (no timeout; a kill ends the wait)."""
    while True:
        try:
            conn, peer = listener.accept()
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return conn, peer
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as exc:
            raise NetError(os_error_text(exc)) from None
        wait_ready(process, listener.fileno(), READ, None)


SocketAddress = tuple[int, bytes, int, int, int]
"""(4 or 6, address octets in network order, port, flow info, scope id)."""


def socket_address(family: int, sockaddr: tuple[object, ...]) -> SocketAddress:
    """A Python ``sockaddr`` as the ABI's address fields."""
    fields: tuple[Any, ...] = sockaddr
    if family == socket.AF_INET6:
        host, port, flow, scope = fields[:4]
        packed = ipaddress.IPv6Address(str(host).split("%", 1)[0]).packed
        return 6, packed, int(port), int(flow), int(scope)
    host, port = fields[:2]
    return 4, ipaddress.IPv4Address(str(host)).packed, int(port), 0, 0


def sockaddr_of(kind: int, octets: bytes, port: int, flow: int, scope: int
                ) -> tuple[int, tuple[object, ...]]:
    """``(family, sockaddr)`` for the ABI's address fields (kind 4 or 6)."""
    if kind == 4:
        return socket.AF_INET, (str(ipaddress.IPv4Address(octets)), port & 0xFFFF)
    return socket.AF_INET6, (str(ipaddress.IPv6Address(octets)), port & 0xFFFF, flow, scope)
