"""Helpers for the ``lunatic::networking`` tests: WAT guests that report to Python.

A guest is a WAT module made by ``net_guest(functions)``: it imports the
error, message, networking and a few process functions under short ids
(``$net.tcp_read``, ``$msg.send``, ``$err.drop``, ``$proc.inherit_spawn``...),
exports 4 pages of memory and gets a prelude of helper functions:

* ``$setup`` -- receive the setup message Python sends (tag ``SETUP_TAG``):
  resource 0 is the *reporter* (a native process collecting reports), the
  payload is copied to ``ARG`` (0x1000) and its length kept in ``$arg_len``;
* ``$wait_go`` -- wait for a ``GO_TAG`` message from Python (payload to ``ARG``);
* ``$report(tag, ptr, len)`` -- send ``[ptr, ptr+len)`` to the reporter;
  ``$report_i64(v)`` (tag ``OK``), ``$report_code(v)`` (tag ``CODE``),
  ``$report_data(ptr, len)`` (tag ``DATA``);
* ``$result(rc, out)`` -- report a call following the error convention: tag
  ``OK`` with the u64 at ``out`` when ``rc`` is 0, tag ``ERR`` with the error
  text (then dropped) when it is 1, tag ``CODE`` with ``rc`` otherwise;
* ``$ok(rc, out) -> i64`` -- ``$result`` and return the u64 at ``out``;
* ``$connect(type, port, timeout) -> rc`` -- ``tcp_connect`` to 127.0.0.1
  (type 4, octets at ``LOCAL4``) or ::1 (type 6, at ``LOCAL6``), id at ``OUT``;
* ``$bind(type, port) -> rc`` -- ``tcp_bind`` likewise;
* ``$write_all(stream, ptr, len)`` / ``$write_all_t(stream, ptr, len, timeout)``
  -- loop over partial ``tcp_write_vectored`` (one iovec; traps on an error);
* ``$read_report(stream, timeout)`` -- one ``tcp_read`` of up to 64 KiB into
  ``BUF``: reports ``$result`` and then, on success, the bytes (tag ``DATA``).

Python drives a guest with ``Guest`` (spawn + setup + typed report access).
"""

from __future__ import annotations

import contextlib
import queue
import socket
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from lunatic_api import DataMessage, Outcome, Process, Runtime
from lunatic_api.environment import LunaticModule
from lunatic_api.native import NativeProcess
from tests.guest import wat_bytes

__all__ = [
    "SETUP_TAG", "GO_TAG", "OK", "ERR", "DATA", "CODE", "OUT", "OUT2", "OUT3", "REC", "IOV",
    "ARG", "ERRBUF", "BUF", "BUF_SIZE", "LOCAL4", "LOCAL6", "PAGES", "MEMORY_SIZE",
    "net_guest", "Guest", "Record", "free_port", "listening", "accept_one", "recv_until_eof",
    "wait_eof", "family_of", "LOOPBACK",
]

SETUP_TAG = 77
"""Tag of the message Python sends first: reporter handle + argument bytes."""
GO_TAG = 78
"""Tag of the "go on" messages Python sends while a guest waits (``$wait_go``)."""

OK, ERR, DATA, CODE = 1, 2, 3, 4
"""Report tags: success value (u64), error text, raw bytes, other return code (u32)."""

PAGES = 4
MEMORY_SIZE = PAGES * 0x10000

LOCAL4 = 0x10
"""127.0.0.1 (4 octets)."""
LOCAL6 = 0x20
"""::1 (16 octets)."""
OUT, OUT2, OUT3 = 0x100, 0x108, 0x110
"""Out-pointers (8 bytes each)."""
REPORT_SLOT = 0x180
REC = 0x200
"""A resolve_next record: type u32 @+0, addr 16 @+4, port u16 @+20, flow u32 @+24,
scope u32 @+28, rc u32 @+32 (36 bytes)."""
IOV = 0x300
"""Room for ciovec records."""
ARG = 0x1000
"""Payload of the setup / go message (up to 4 KiB)."""
ERRBUF = 0x2000
"""Error texts are copied here."""
BUF = 0x10000
"""A big buffer, up to the end of memory."""
BUF_SIZE = MEMORY_SIZE - BUF

LOOPBACK = {4: "127.0.0.1", 6: "::1"}
"""The loopback address of each address type."""

_IMPORTS = """
  (import "lunatic::error" "string_size" (func $err.string_size (param i64) (result i32)))
  (import "lunatic::error" "to_string" (func $err.to_string (param i64 i32)))
  (import "lunatic::error" "drop" (func $err.drop (param i64)))
  (import "lunatic::message" "create_data" (func $msg.create_data (param i64 i64)))
  (import "lunatic::message" "write_data" (func $msg.write_data (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $msg.read_data (param i32 i32) (result i32)))
  (import "lunatic::message" "push_process" (func $msg.push_process (param i64) (result i64)))
  (import "lunatic::message" "take_process" (func $msg.take_process (param i64) (result i64)))
  (import "lunatic::message" "push_tcp_stream" (func $msg.push_tcp_stream (param i64) (result i64)))
  (import "lunatic::message" "take_tcp_stream" (func $msg.take_tcp_stream (param i64) (result i64)))
  (import "lunatic::message" "send" (func $msg.send (param i64)))
  (import "lunatic::message" "receive" (func $msg.receive (param i64 i32) (result i32)))
  (import "lunatic::networking" "resolve" (func $net.resolve (param i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "drop_dns_iterator" (func $net.drop_dns_iterator (param i64)))
  (import "lunatic::networking" "resolve_next" (func $net.resolve_next (param i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_bind" (func $net.tcp_bind (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "drop_tcp_listener" (func $net.drop_tcp_listener (param i64)))
  (import "lunatic::networking" "tcp_accept" (func $net.tcp_accept (param i64 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_connect" (func $net.tcp_connect (param i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "drop_tcp_stream" (func $net.drop_tcp_stream (param i64)))
  (import "lunatic::networking" "clone_tcp_stream" (func $net.clone_tcp_stream (param i64) (result i64)))
  (import "lunatic::networking" "tcp_write_vectored" (func $net.tcp_write_vectored (param i64 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_read" (func $net.tcp_read (param i64 i32 i32 i32 i32) (result i32)))
  (import "lunatic::networking" "tcp_flush" (func $net.tcp_flush (param i64 i32) (result i32)))
  (import "lunatic::process" "inherit_spawn" (func $proc.inherit_spawn (param i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "drop_process" (func $proc.drop_process (param i64)))
  (import "lunatic::process" "clone_process" (func $proc.clone_process (param i64) (result i64)))
  (import "lunatic::process" "sleep_ms" (func $proc.sleep_ms (param i64)))
"""

_PRELUDE = """
  (global $reporter (mut i64) (i64.const -1))
  (global $arg_len (mut i32) (i32.const 0))
  (func $setup
    (if (i32.ne (call $msg.receive (i64.const 77) (i32.const 0)) (i32.const 0)) (then unreachable))
    (global.set $reporter (call $msg.take_process (i64.const 0)))
    (global.set $arg_len (call $msg.read_data (i32.const 0x1000) (i32.const 0x1000))))
  (func $wait_go
    (if (i32.ne (call $msg.receive (i64.const 78) (i32.const 0)) (i32.const 0)) (then unreachable))
    (global.set $arg_len (call $msg.read_data (i32.const 0x1000) (i32.const 0x1000))))
  (func $report (param $tag i64) (param $ptr i32) (param $len i32)
    (call $msg.create_data (local.get $tag) (i64.const 0))
    (drop (call $msg.write_data (local.get $ptr) (local.get $len)))
    (call $msg.send (global.get $reporter)))
  (func $report_i64 (param $v i64)
    (i64.store (i32.const 0x180) (local.get $v))
    (call $report (i64.const 1) (i32.const 0x180) (i32.const 8)))
  (func $report_code (param $v i32)
    (i32.store (i32.const 0x180) (local.get $v))
    (call $report (i64.const 4) (i32.const 0x180) (i32.const 4)))
  (func $report_data (param $ptr i32) (param $len i32)
    (call $report (i64.const 3) (local.get $ptr) (local.get $len)))
  (func $result (param $rc i32) (param $out i32)
    (local $id i64) (local $n i32)
    (if (i32.eqz (local.get $rc))
      (then (call $report (i64.const 1) (local.get $out) (i32.const 8)) (return)))
    (if (i32.eq (local.get $rc) (i32.const 1))
      (then
        (local.set $id (i64.load (local.get $out)))
        (local.set $n (call $err.string_size (local.get $id)))
        (call $err.to_string (local.get $id) (i32.const 0x2000))
        (call $err.drop (local.get $id))
        (call $report (i64.const 2) (i32.const 0x2000) (local.get $n))
        (return)))
    (call $report_code (local.get $rc)))
  (func $ok (param $rc i32) (param $out i32) (result i64)
    (call $result (local.get $rc) (local.get $out))
    (i64.load (local.get $out)))
  (func $addr_of (param $type i32) (result i32)
    (if (result i32) (i32.eq (local.get $type) (i32.const 6))
      (then (i32.const 0x20)) (else (i32.const 0x10))))
  (func $connect (param $type i32) (param $port i32) (param $timeout i32) (result i32)
    (call $net.tcp_connect (local.get $type) (call $addr_of (local.get $type)) (local.get $port)
      (i32.const 0) (i32.const 0) (local.get $timeout) (i32.const 0x100)))
  (func $bind (param $type i32) (param $port i32) (result i32)
    (call $net.tcp_bind (local.get $type) (call $addr_of (local.get $type)) (local.get $port)
      (i32.const 0) (i32.const 0) (i32.const 0x100)))
  (func $write_all_t (param $s i64) (param $ptr i32) (param $len i32) (param $timeout i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 0x3f0) (local.get $ptr))
        (i32.store (i32.const 0x3f4) (local.get $len))
        (if (call $net.tcp_write_vectored (local.get $s) (i32.const 0x3f0) (i32.const 1)
                                          (local.get $timeout) (i32.const 0x118))
          (then unreachable))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 0x118))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 0x118))))
        (br $more))))
  (func $write_all (param $s i64) (param $ptr i32) (param $len i32)
    (call $write_all_t (local.get $s) (local.get $ptr) (local.get $len) (i32.const 0)))
  (func $read_report (param $s i64) (param $timeout i32)
    (local $rc i32)
    (local.set $rc (call $net.tcp_read (local.get $s) (i32.const 0x10000) (i32.const 0x10000)
                                       (local.get $timeout) (i32.const 0x100)))
    (call $result (local.get $rc) (i32.const 0x100))
    (if (i32.eqz (local.get $rc))
      (then (call $report_data (i32.const 0x10000) (i32.load (i32.const 0x100))))))
"""

_LOOPBACK_DATA = ((LOCAL4, bytes([127, 0, 0, 1])), (LOCAL6, bytes(15) + b"\x01"))


def net_guest(*functions: str, data: Sequence[tuple[int, bytes]] = ()) -> str:
    """A WAT module: the imports, 4 pages of memory, the prelude and ``functions``.

    ``data`` adds ``(offset, bytes)`` data segments (0x30-0xFF is free for
    constants; the loopback addresses are always at ``LOCAL4``/``LOCAL6``).
    """
    parts = ["(module", _IMPORTS, f'  (memory (export "memory") {PAGES})']
    for offset, blob in (*_LOOPBACK_DATA, *data):
        parts.append(f'  (data (i32.const {offset}) "{wat_bytes(blob)}")')
    parts.append(_PRELUDE)
    parts.extend("  " + fn.strip() for fn in functions)
    parts.append(")")
    return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class Record:
    """One ``resolve_next`` result as the guest saw it (locations pre-filled with 0xAA)."""

    rc: int
    type_raw: bytes
    addr_raw: bytes
    port_raw: bytes
    flow_raw: bytes
    scope_raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> Record:
        """Decode the 36-byte record region ``REC`` reported by a guest."""
        assert len(raw) == 36, raw
        return cls(rc=struct.unpack_from("<I", raw, 32)[0], type_raw=raw[0:4],
                   addr_raw=raw[4:20], port_raw=raw[20:22], flow_raw=raw[24:28],
                   scope_raw=raw[28:32])

    @property
    def kind(self) -> int:
        """The address type written (4 or 6)."""
        return int(struct.unpack("<I", self.type_raw)[0])

    @property
    def port(self) -> int:
        """The port written."""
        return int(struct.unpack("<H", self.port_raw)[0])

    @property
    def host(self) -> str:
        """The address written, as text."""
        family = socket.AF_INET if self.kind == 4 else socket.AF_INET6
        return socket.inet_ntop(family, self.addr_raw[:4] if self.kind == 4 else self.addr_raw)

    @property
    def untouched(self) -> bool:
        """Nothing at all was written (every location still 0xAA)."""
        return all(set(part) == {0xAA} for part in (self.type_raw, self.addr_raw,
                                                   self.port_raw, self.flow_raw,
                                                   self.scope_raw))


class Guest:
    """A wasm process under test plus the native process collecting its reports.

    ``arg`` is the payload of the setup message (``$setup`` copies it to ``ARG``).
    """

    def __init__(self, runtime: Runtime, module: LunaticModule, function: str,
                 params: Sequence[int] = (), arg: bytes = b"") -> None:
        self.runtime = runtime
        self.reports: queue.Queue[tuple[int, bytes]] = queue.Queue()
        self.collector = runtime.spawn_native(self._collect, name="reporter")
        self.process: Process = runtime.spawn(module, function, list(params))
        runtime.send(self.process, arg, tag=SETUP_TAG, resources=[self.collector])

    def _collect(self, proc: NativeProcess) -> None:
        while True:
            message = proc.receive()
            if isinstance(message, DataMessage):
                self.reports.put((message.tag, bytes(message.buffer)))

    def next(self, timeout: float = 20.0) -> tuple[int, bytes]:
        """The next report ``(tag, bytes)``; fails the test if none comes in time."""
        try:
            return self.reports.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no report from the guest within {timeout} s; "
                                 f"process: {self.process!r}") from None

    def pending(self) -> bool:
        """Whether a report is waiting (no waiting)."""
        return not self.reports.empty()

    def _expect(self, tag: int) -> bytes:
        got, data = self.next()
        names = {OK: "OK", ERR: "ERR", DATA: "DATA", CODE: "CODE"}
        assert got == tag, (f"expected a {names[tag]} report, got {names.get(got, got)}: "
                            f"{data!r}")
        return data

    def ok(self) -> int:
        """The next report must be a success; its u64 value."""
        return int(struct.unpack("<Q", self._expect(OK))[0])

    def err(self) -> str:
        """The next report must be an error (return code 1); its text."""
        return self._expect(ERR).decode("utf-8")

    def data(self) -> bytes:
        """The next report must be raw bytes."""
        return self._expect(DATA)

    def code(self) -> int:
        """The next report must be a bare return code; its value."""
        return int(struct.unpack("<I", self._expect(CODE))[0])

    def record(self) -> Record:
        """The next report must be a ``resolve_next`` record."""
        return Record.parse(self.data())

    def go(self, data: bytes = b"") -> None:
        """Send a ``GO_TAG`` message (payload copied to ``ARG`` by ``$wait_go``)."""
        assert self.runtime.send(self.process, data, tag=GO_TAG), "the guest has ended"

    def join(self, timeout: float = 10.0) -> Outcome:
        """Wait for the process to end; its outcome (fails the test on a timeout)."""
        outcome = self.process.join(timeout)
        assert outcome is not None, f"{self.process!r} still running after {timeout} s"
        return outcome


def family_of(kind: int) -> socket.AddressFamily:
    """The socket family of address type 4 or 6."""
    return socket.AF_INET if kind == 4 else socket.AF_INET6


def free_port(kind: int = 4) -> int:
    """A port nothing listens on right now (the OS picked it, then it was released)."""
    with socket.socket(family_of(kind), socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK[kind], 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def listening(kind: int = 4, backlog: int = 16) -> Iterator[socket.socket]:
    """A Python listening socket on the loopback address of ``kind``."""
    sock = socket.socket(family_of(kind), socket.SOCK_STREAM)
    try:
        sock.bind((LOOPBACK[kind], 0))
        sock.listen(backlog)
        sock.settimeout(10)
        yield sock
    finally:
        sock.close()


def accept_one(listener: socket.socket, timeout: float = 10.0) -> socket.socket:
    """Accept one connection (blocking socket with ``timeout``)."""
    listener.settimeout(timeout)
    conn, _ = listener.accept()
    conn.settimeout(timeout)
    return conn


def recv_until_eof(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything until the peer closes (``socket.timeout`` if it never does)."""
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def wait_eof(sock: socket.socket, timeout: float = 10.0) -> bool:
    """Whether the peer closes within ``timeout`` (data read meanwhile is discarded).

    A reset counts as closed.
    """
    try:
        recv_until_eof(sock, timeout)
    except TimeoutError:
        return False
    except ConnectionResetError:
        return True
    return True

