"""``lunatic::networking``: DNS, TCP listeners and streams (spec section 6).

Addresses are ``(addr_type 4|6, octets in network order, port, flow info,
scope id)``.  Failures use the error convention with the OS error's text
(``Connection refused (os error 111)``) or one of the timeout texts
(``Resolve call timed out``, ``Connect timed out``, ``Read call timed out``,
``Write call timed out``).  Every blocking call is a suspension point: other
processes run, and a kill wakes and ends the caller.  Socket details (locks,
killable waits) are in ``lunatic_api.net``.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import socket
import time
from collections.abc import Sequence

import funk
from funk import Caller
from funk.errors import Trap
from funk.types import IoSlices, Ptr, Str, u32, u64
from lunatic_api.context import ProcessContext
from lunatic_api.net import (
    NetError,
    SharedStream,
    SocketAddress,
    StreamRef,
    accept,
    connect,
    deadline_of,
    listen,
    os_error_text,
    sockaddr_of,
    socket_address,
)
from lunatic_api.process import Process
from lunatic_api.scheduler import HOST_STACK_MARGIN

__all__ = ["NetworkingApi", "NAMESPACE", "DnsIterator", "parse_host_port", "resolve"]

NAMESPACE = "lunatic::networking"

OK = 0
ERROR = 1
_IOV_MAX = 1024


class DnsIterator:
    """Resolved addresses, handed out one by one by ``resolve_next``."""

    __slots__ = ("addresses", "position")

    def __init__(self, addresses: Sequence[SocketAddress]) -> None:
        self.addresses = list(addresses)
        self.position = 0

    def next(self) -> SocketAddress | None:
        """The next address, or ``None`` when exhausted."""
        if self.position >= len(self.addresses):
            return None
        self.position += 1
        return self.addresses[self.position - 1]


def parse_host_port(text: str) -> tuple[str, int, bool]:
    """``(host, port, is_ip_literal)`` of ``host:port``, ``a.b.c.d:port`` or ``[v6]:port``.

    Raises ``NetError`` with Rust's texts: a missing port is
    ``invalid socket address``, a bad one ``invalid port value``.
    """
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise NetError("invalid socket address")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise NetError("invalid socket address") from None
        literal = True
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep:
            raise NetError("invalid socket address")
        try:
            ipaddress.IPv4Address(host)
            literal = True
        except ValueError:
            literal = False
    if not port_text.isdigit() or int(port_text) > 0xFFFF:
        raise NetError("invalid port value")
    return host, int(port_text), literal


_resolver = concurrent.futures.ThreadPoolExecutor(max_workers=4,
                                                  thread_name_prefix="lunatic-dns")


def resolve(process: Process, text: str, timeout_ms: int) -> list[SocketAddress]:
    """Every address of ``host:port`` (literals without DNS); ``NetError`` on failure."""
    host, port, literal = parse_host_port(text)
    if literal:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        if family == socket.AF_INET6:
            return [socket_address(family, (host, port, 0, 0))]
        return [socket_address(family, (host, port))]
    future = _resolver.submit(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    deadline = deadline_of(timeout_ms)
    while True:
        process.check_killed()
        wait = 0.05 if deadline is None else min(0.05, deadline - time.monotonic())
        try:
            infos = future.result(timeout=max(wait, 0))
            break
        except concurrent.futures.TimeoutError:
            if deadline is not None and time.monotonic() >= deadline:
                future.cancel()
                raise NetError("Resolve call timed out") from None
        except socket.gaierror as exc:
            raise NetError(f"failed to lookup address information: {exc.strerror}") from None
        except OSError as exc:
            raise NetError(os_error_text(exc)) from None
    return [socket_address(family, sockaddr) for family, _, _, _, sockaddr in infos
            if family in (socket.AF_INET, socket.AF_INET6)]


@funk.host_functions(namespace=NAMESPACE)
class NetworkingApi:
    """DNS and TCP for one process; its sockets close when the process ends."""

    #: wasmer runs these methods on the wasm stack: trap the guest rather than run
    #: them with less native stack than this left (``funk.stack``)
    __funk_stack_reserve__ = HOST_STACK_MARGIN

    def __init__(self, context: ProcessContext) -> None:
        self.context = context

    @property
    def _process(self) -> Process:
        return self.context.process

    def _fail(self, out: Ptr[u64], text: str) -> int:
        out.set(self.context.error(text))
        return ERROR

    def _address(self, caller: Caller, function: str, addr_type: int, addr_ptr: int,
                 port: int, flow_info: int, scope_id: int) -> tuple[int, tuple[object, ...]]:
        if addr_type not in (4, 6):
            raise Trap(f"{function}: address type {addr_type} is neither 4 nor 6")
        octets = caller.memory.read(addr_ptr, 4 if addr_type == 4 else 16)
        return sockaddr_of(addr_type, octets, port, flow_info, scope_id)

    # -- DNS ------------------------------------------------------------------

    def resolve(self, name: Str, timeout_ms: u32, out: Ptr[u64]) -> u32:
        """Resolve ``host:port`` into a DNS iterator (its id at ``out``)."""
        try:
            addresses = resolve(self._process, name, timeout_ms)
        except NetError as exc:
            return self._fail(out, str(exc))
        out.set(self.context.dns_iterators.add(DnsIterator(addresses)))
        return OK

    def drop_dns_iterator(self, iter_id: u64) -> None:
        """Release a DNS iterator."""
        self.context.dns_iterators.take(iter_id)

    def resolve_next(self, iter_id: u64, type_ptr: u32, addr_ptr: u32, port_ptr: u32,
                     flowinfo_ptr: u32, scope_ptr: u32, caller: Caller) -> u32:
        """Write the next address: 0, or 1 when the iterator is exhausted.

        For IPv4 the flow-info and scope locations are not written.
        """
        iterator: DnsIterator = self.context.dns_iterators.get(iter_id)
        memory = caller.memory
        octets_len = 4
        if iterator.position < len(iterator.addresses):
            octets_len = len(iterator.addresses[iterator.position][1])
        # check every location first, so a bad pointer consumes nothing
        memory.require(type_ptr, 4, "resolve_next", "type_ptr")
        memory.require(addr_ptr, octets_len, "resolve_next", "addr_ptr")
        memory.require(port_ptr, 2, "resolve_next", "port_ptr")
        if octets_len == 16:
            memory.require(flowinfo_ptr, 4, "resolve_next", "flowinfo_ptr")
            memory.require(scope_ptr, 4, "resolve_next", "scope_ptr")
        address = iterator.next()
        if address is None:
            return 1
        kind, octets, port, flow, scope = address
        memory.pack("<I", type_ptr, kind)
        memory.write(addr_ptr, octets)
        memory.pack("<H", port_ptr, port)
        if kind == 6:
            memory.pack("<I", flowinfo_ptr, flow)
            memory.pack("<I", scope_ptr, scope)
        return 0

    # -- listeners ------------------------------------------------------------------

    def tcp_bind(self, addr_type: u32, addr_ptr: u32, port: u32, flow_info: u32,
                 scope_id: u32, out: Ptr[u64], caller: Caller) -> u32:
        """Bind a listening socket (SO_REUSEADDR, backlog 1024); its id at ``out``."""
        family, sockaddr = self._address(caller, "tcp_bind", addr_type, addr_ptr, port,
                                         flow_info, scope_id)
        try:
            listener = listen(sockaddr, family)
        except NetError as exc:
            return self._fail(out, str(exc))
        out.set(self.context.listeners.add(listener))
        return OK

    def drop_tcp_listener(self, listener_id: u64) -> None:
        """Close a listener."""
        self.context.listeners.take(listener_id).close()

    def tcp_accept(self, listener_id: u64, out_stream_ptr: u32, out_peer_ptr: u32,
                   caller: Caller) -> u32:
        """Wait for a connection: stream id and a one-address peer iterator id."""
        listener: socket.socket = self.context.listeners.get(listener_id)
        memory = caller.memory
        memory.require(out_stream_ptr, 8, "tcp_accept", "out_stream_ptr")
        memory.require(out_peer_ptr, 8, "tcp_accept", "out_peer_ptr")
        try:
            conn, peer = accept(self._process, listener)
        except NetError as exc:
            memory.pack("<Q", out_stream_ptr, self.context.error(str(exc)))
            memory.pack("<Q", out_peer_ptr, 0)
            return ERROR
        stream_id = self.context.streams.add(SharedStream(conn).new_ref())
        peer_id = self.context.dns_iterators.add(DnsIterator([socket_address(conn.family,
                                                                             peer)]))
        memory.pack("<Q", out_stream_ptr, stream_id)
        memory.pack("<Q", out_peer_ptr, peer_id)
        return OK

    # -- streams ----------------------------------------------------------------------

    def tcp_connect(self, addr_type: u32, addr_ptr: u32, port: u32, flow_info: u32,
                    scope_id: u32, timeout_ms: u32, out: Ptr[u64], caller: Caller) -> u32:
        """Connect (``timeout_ms`` 0: no timeout); the stream id at ``out``."""
        family, sockaddr = self._address(caller, "tcp_connect", addr_type, addr_ptr, port,
                                         flow_info, scope_id)
        try:
            sock = connect(self._process, sockaddr, family, deadline_of(timeout_ms))
        except NetError as exc:
            return self._fail(out, str(exc))
        out.set(self.context.streams.add(SharedStream(sock).new_ref()))
        return OK

    def drop_tcp_stream(self, stream_id: u64) -> None:
        """Release one reference (the socket closes with the last one)."""
        self.context.streams.take(stream_id).release()

    def clone_tcp_stream(self, stream_id: u64) -> u64:
        """Another reference to the same socket."""
        ref: StreamRef = self.context.streams.get(stream_id)
        return self.context.streams.add(ref.clone())

    def tcp_write_vectored(self, stream_id: u64, bufs: IoSlices, timeout_ms: u32,
                           out: Ptr[u64]) -> u32:
        """One gathering write (may be partial); bytes written at ``out``."""
        ref: StreamRef = self.context.streams.get(stream_id)
        buffers = list(bufs)
        if len(buffers) > _IOV_MAX:  # one write call all the same
            buffers = [memoryview(b"".join(buffers))]
        try:
            n = ref.stream.write(self._process, buffers, deadline_of(timeout_ms))
        except NetError as exc:
            return self._fail(out, str(exc))
        out.set(n)
        return OK

    def tcp_read(self, stream_id: u64, buf_ptr: u32, buf_len: u32, timeout_ms: u32,
                 out: Ptr[u64], caller: Caller) -> u32:
        """One read of up to ``buf_len`` bytes; the count at ``out`` (0: end of stream)."""
        ref: StreamRef = self.context.streams.get(stream_id)
        buf = caller.memory.slice(buf_ptr, buf_len)
        try:
            n = ref.stream.read(self._process, buf, deadline_of(timeout_ms))
        except NetError as exc:
            return self._fail(out, str(exc))
        finally:
            buf.release()
        out.set(n)
        return OK

    def tcp_flush(self, stream_id: u64, out: Ptr[u64]) -> u32:
        """Nothing to flush on a TCP socket: always 0, with 0 at ``out``."""
        self.context.streams.get(stream_id)
        self._process.check_killed()
        out.set(0)
        return OK
