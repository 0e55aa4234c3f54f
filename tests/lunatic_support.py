"""Shared helpers for Lunatic ABI tests: WAT guests, a lab runtime, a collector.

A wasm process's memory is gone once it ends, and WASI stdout is the real
stdout, so guests report what they observed **by message**: every lab has a
native *collector* process, and the guest prelude sends it the guest's
records.  The pieces:

``guest_wat(*functions)``
    A module importing every ``lunatic::*`` and WASI host function with ids
    like ``$lunatic::message.receive`` / ``$wasi_snapshot_preview1.proc_exit``
    (generated from ``funk.functions_of`` on the real host classes, so the
    signatures are the runtime's), exporting one page of memory as
    ``memory``, plus the prelude below and the test's own functions.

``Lab(backend)``
    A fresh ``Runtime`` with one default environment (``lab.env``) and the
    collector.  ``lab.run(module, "main")`` spawns the function, sends it the
    setup message, waits until it ends and returns a ``Run``: its
    ``outcome`` and everything the collector got meanwhile (``records``,
    ``messages``, ``handles``).  Used as a context manager, or through the
    ``lab`` fixture (test modules import ``lab_fixture``), it shuts the
    runtime down afterwards.  ``lab.spawn`` + ``lab.wait_reports`` /
    ``wait_handles`` / ``wait_messages`` + ``lab.join`` are for tests that
    interact with a running guest.

``assert_trap(run, "lunatic::message.send", "reason", ...)``
    The process failed, in that host function, with those words in the text.

The guest prelude (memory from ``PRELUDE_BASE`` = 0xC000 up is the prelude's;
tests use 0 .. 0xBFFF freely):

* ``(call $setup)`` -- first thing an entry function does when it wants to
  report.  It waits for the setup message the lab sends (tag ``SETUP_TAG``),
  takes its process handles -- the collector is always handle **0**, the
  ``handles=[...]`` given to ``lab.spawn``/``lab.run`` follow as 1, 2, ... --
  and sends the message back, so the scratch slot is **empty** afterwards as
  in a fresh process.  ``(call $handle (i32.const n))`` gives handle ``n``.
* ``$rec (i64)``, ``$rec32 (i32, zero-extended)``, ``$rec_mem (ptr len)`` and
  ``$rec_error (error_id)`` (the error's text, via ``string_size`` and
  ``to_string``) append a record to a buffer in memory: no host call, so the
  scratch slot is untouched.
* ``(call $flush)`` sends the buffered records to the collector as one
  report (tag ``REPORT_TAG``) and empties the buffer.  It **replaces the
  scratch slot** (``create_data`` + ``send``): flush when the slot no longer
  matters, and before a call that is expected to trap.
* ``$give_collector (process_id)`` sends a process (a child) a setup message
  holding a clone of the collector handle, so its own ``$setup`` works.
* ``$inherit (link name_ptr name_len) -> process_id`` -- ``inherit_spawn`` of a
  function without params (``unreachable`` if spawning fails).
* ``$export_handle (process_id)`` sends a clone of a handle to the collector
  (``HANDLE_TAG``): Python gets the ``Process`` (``run.handles``) and can
  join it, inspect its links, etc.

Also: ``Strings`` lays out byte strings for data segments and spells
``(ptr, len)`` arguments, ``spawn_params`` encodes spawn parameter records,
``wasm_of`` compiles WAT to embed with ``add_module``, ``tcp_stream_pair``
gives a real 127.0.0.1 stream reference to put in messages.

Records come back as Python ints (i64, signed) and ``bytes``.  Messages the
collector gets with any other tag land in ``run.messages`` as they are
(``DataMessage`` / ``SignalMessage``), so "send this to handle 0" is how a
test looks at exactly what a guest sent.  The collector never dies of a
linked process's death (its ``die_when_link_dies`` is off): a guest linked
to it and dying shows up as a ``SignalMessage`` in ``run.messages``.
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import pytest

import funk
from codegen.wat import emit_wat
from lunatic_api import Config, DataMessage, Ending, Outcome, Process, Runtime, SignalMessage
from lunatic_api.context import host_classes
from lunatic_api.environment import Environment, LunaticModule
from lunatic_api.messages import Message
from lunatic_api.native import NativeProcess
from lunatic_api.net import SharedStream, StreamRef

__all__ = [
    "SETUP_TAG", "REPORT_TAG", "HANDLE_TAG", "PRELUDE_BASE", "MEMORY_SIZE", "RUN_TIMEOUT",
    "lunatic_imports", "guest_wat", "wasm_of", "wat_bytes", "spawn_params", "u64_bytes",
    "Record", "Run", "Lab", "lab_fixture", "run_guest", "assert_trap", "assert_returned",
    "decode_records", "tcp_stream_pair", "I32", "I64", "V128", "Strings", "PRELUDE",
]

SETUP_TAG = 0x5E7_0001
"""Tag of the setup message (the collector and the test's handles)."""
REPORT_TAG = 0x5E7_0002
"""Tag of a report (``$flush``) sent to the collector."""
HANDLE_TAG = 0x5E7_0003
"""Tag of an exported handle (``$export_handle``) sent to the collector."""

PRELUDE_BASE = 0xC000
"""Memory from here to the end of page 0 belongs to the prelude."""
_HANDLES = PRELUDE_BASE            # u64 handle ids taken by $setup
_MAX_HANDLES = 32
_SCRATCH = PRELUDE_BASE + 0x100    # 16 bytes of prelude scratch
_RECORDS = PRELUDE_BASE + 0x200    # the record buffer, up to the end of page 0
_RECORDS_END = 0x10000
MEMORY_SIZE = 0x10000
"""Memory size of a ``guest_wat`` module with the default one page."""

RUN_TIMEOUT = 60.0
"""How long ``Lab.run`` and the waits wait (generous: machines can be loaded; a hang
fails the test rather than blocking it forever)."""

I32, I64, V128 = 0x7F, 0x7E, 0x7B
"""Spawn parameter type codes."""

Record = int | bytes
"""One record of a report: an i64 (``$rec``/``$rec32``) or bytes (``$rec_mem``/``$rec_error``)."""


@cache
def lunatic_imports() -> str:
    """Import lines for every host function of a Lunatic process (``lunatic::*`` and WASI).

    Generated from the host classes, ids ``$<namespace>.<name>`` as in
    ``wat/all_imports.wat``.
    """
    parts = []
    for cls in host_classes():
        text = emit_wat(funk.functions_of(cls)).rstrip()
        assert text.startswith("(module") and text.endswith(")")
        parts.append(text[len("(module"):-1].rstrip())
    return "\n".join(parts) + "\n"


PRELUDE = f"""
  (global $collector (mut i64) (i64.const -1))
  (global $rec_end (mut i32) (i32.const {_RECORDS}))
  (func $setup (local $n i32) (local $i i32)
    (if (i32.ne (call $lunatic::message.receive (i64.const {SETUP_TAG}) (i32.const 30000))
                (i32.const 0))
      (then unreachable))
    (i32.store (i32.const {_SCRATCH}) (i32.const 0))
    (drop (call $lunatic::message.read_data (i32.const {_SCRATCH}) (i32.const 4)))
    (local.set $n (i32.load (i32.const {_SCRATCH})))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
      (i64.store (i32.add (i32.const {_HANDLES}) (i32.shl (local.get $i) (i32.const 3)))
                 (call $lunatic::message.take_process (i64.extend_i32_u (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next)))
    (global.set $collector (i64.load (i32.const {_HANDLES})))
    ;; hand the (now empty) setup message back: the scratch slot ends up empty
    (call $lunatic::message.send (global.get $collector)))
  (func $handle (param $n i32) (result i64)
    (i64.load (i32.add (i32.const {_HANDLES}) (i32.shl (local.get $n) (i32.const 3)))))
  (func $reserve (param $len i32) (param $kind i32) (result i32) (local $at i32)
    (if (i32.gt_u (local.get $len) (i32.const {_RECORDS_END - _RECORDS}))
      (then unreachable))
    (local.set $at (global.get $rec_end))
    (if (i32.gt_u (i32.add (i32.add (local.get $at) (i32.const 5)) (local.get $len))
                  (i32.const {_RECORDS_END}))
      (then unreachable))
    (i32.store8 (local.get $at) (local.get $kind))
    (i32.store (i32.add (local.get $at) (i32.const 1)) (local.get $len))
    (global.set $rec_end (i32.add (i32.add (local.get $at) (i32.const 5)) (local.get $len)))
    (i32.add (local.get $at) (i32.const 5)))
  (func $rec (param $v i64)
    (i64.store (call $reserve (i32.const 8) (i32.const 0)) (local.get $v)))
  (func $rec32 (param $v i32)
    (call $rec (i64.extend_i32_u (local.get $v))))
  (func $rec_mem (param $ptr i32) (param $len i32) (local $to i32) (local $i i32)
    (local.set $to (call $reserve (local.get $len) (i32.const 1)))
    (block $done (loop $next
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (i32.store8 (i32.add (local.get $to) (local.get $i))
                  (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))))
  (func $rec_error (param $err i64) (local $len i32)
    (local.set $len (call $lunatic::error.string_size (local.get $err)))
    (call $lunatic::error.to_string (local.get $err)
                                    (call $reserve (local.get $len) (i32.const 1))))
  (func $flush
    (call $lunatic::message.create_data (i64.const {REPORT_TAG}) (i64.const 0))
    (drop (call $lunatic::message.write_data
      (i32.const {_RECORDS}) (i32.sub (global.get $rec_end) (i32.const {_RECORDS}))))
    (call $lunatic::message.send (global.get $collector))
    (global.set $rec_end (i32.const {_RECORDS})))
  (func $give_collector (param $to i64)
    (call $lunatic::message.create_data (i64.const {SETUP_TAG}) (i64.const 0))
    (i32.store (i32.const {_SCRATCH}) (i32.const 1))
    (drop (call $lunatic::message.write_data (i32.const {_SCRATCH}) (i32.const 4)))
    (drop (call $lunatic::message.push_process
      (call $lunatic::process.clone_process (global.get $collector))))
    (call $lunatic::message.send (local.get $to)))
  (func $inherit (param $link i64) (param $name i32) (param $len i32) (result i64)
    (if (call $lunatic::process.inherit_spawn (local.get $link) (local.get $name)
          (local.get $len) (i32.const 0) (i32.const 0) (i32.const {_SCRATCH}))
      (then unreachable))
    (i64.load (i32.const {_SCRATCH})))
  (func $export_handle (param $h i64)
    (call $lunatic::message.create_data (i64.const {HANDLE_TAG}) (i64.const 0))
    (drop (call $lunatic::message.push_process
      (call $lunatic::process.clone_process (local.get $h))))
    (call $lunatic::message.send (global.get $collector)))
"""
"""WAT helpers every ``guest_wat`` module gets (see the module docstring)."""


def wat_bytes(blob: bytes) -> str:
    """``blob`` spelled as the body of a WAT string (every byte escaped)."""
    return "".join(f"\\{b:02x}" for b in blob)


def guest_wat(*functions: str, data: Iterable[tuple[int, bytes]] = (), pages: int | None = 1,
              prelude: bool = True, exports_memory: bool = True) -> str:
    """A guest module: every host import, memory, ``data``, the prelude and ``functions``.

    ``data`` is ``(offset, bytes)`` pairs placed by data segments.
    ``pages=None`` leaves the memory (and so the prelude) out;
    ``exports_memory=False`` keeps the memory but does not export it.
    """
    parts = ["(module", lunatic_imports().rstrip()]
    if pages is not None:
        export = ' (export "memory")' if exports_memory else ""
        parts.append(f"  (memory{export} {pages})")
        if prelude:
            parts.append(PRELUDE.rstrip())
    for offset, blob in data:
        parts.append(f'  (data (i32.const {offset}) "{wat_bytes(blob)}")')
    parts.extend("  " + fn.strip() for fn in functions)
    parts.append(")")
    return "\n".join(parts) + "\n"


@cache
def wasm_of(wat: str) -> bytes:
    """WAT text compiled to wasm bytes (e.g. to embed a module for ``add_module``)."""
    return funk.wasm_input.to_wasm_bytes(wat)


def u64_bytes(value: int) -> bytes:
    """``value`` as 8 little-endian bytes (two's complement when negative)."""
    return (value & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")


def spawn_params(*params: tuple[int, int], trailing: bytes = b"") -> bytes:
    """The 17-byte records of a spawn params array: ``(type code, value)`` each.

    Values are written as little-endian u128, negative ones sign-extended as
    the Rust guest does; ``trailing`` is appended as is.
    """
    out = bytearray()
    for code, value in params:
        out.append(code)
        out += (value & ((1 << 128) - 1)).to_bytes(16, "little")
    return bytes(out) + trailing


def decode_records(data: bytes | bytearray) -> list[Record]:
    """The records of one report (``[u8 kind][u32 len][payload]`` each)."""
    out: list[Record] = []
    pos = 0
    while pos < len(data):
        kind, length = struct.unpack_from("<BI", data, pos)
        payload = bytes(data[pos + 5:pos + 5 + length])
        pos += 5 + length
        if kind == 0:
            out.append(struct.unpack("<q", payload)[0])
        else:
            out.append(payload)
    return out


class Strings:
    """Byte strings for a guest's data segments, laid out from ``base``.

    ``strings.arg(b"child")`` gives ``"(i32.const ptr) (i32.const len)"`` for a
    ``(ptr, len)`` argument pair (the same bytes are placed once);
    ``strings.data`` is what ``guest_wat``/``Lab.module`` take as ``data``.
    """

    def __init__(self, base: int = 0) -> None:
        self._next = base
        self._where: dict[bytes, int] = {}
        self.data: list[tuple[int, bytes]] = []

    def place(self, blob: bytes | str) -> tuple[int, int]:
        """``(ptr, len)`` of ``blob`` (UTF-8 if text), placing it on first use."""
        raw = blob.encode() if isinstance(blob, str) else blob
        if raw not in self._where:
            self._where[raw] = self._next
            self.data.append((self._next, raw))
            self._next += max(len(raw), 1)
        return self._where[raw], len(raw)

    def ptr(self, blob: bytes | str) -> str:
        """``"(i32.const ptr)"`` of ``blob``."""
        return f"(i32.const {self.place(blob)[0]})"

    def arg(self, blob: bytes | str) -> str:
        """``"(i32.const ptr) (i32.const len)"`` of ``blob``."""
        ptr, length = self.place(blob)
        return f"(i32.const {ptr}) (i32.const {length})"


@dataclass
class Run:
    """One process run by ``Lab.run``: how it ended and what the collector got meanwhile."""

    process: Process
    outcome: Outcome
    #: one list of records per ``$flush``, in arrival order
    reports: list[list[Record]] = field(default_factory=list)
    #: messages sent to the collector with other tags
    messages: list[Message] = field(default_factory=list)
    #: processes exported with ``$export_handle``
    handles: list[Process] = field(default_factory=list)

    @property
    def records(self) -> list[Record]:
        """Every record of every report, in order."""
        return [r for report in self.reports for r in report]

    @property
    def returned(self) -> bool:
        """Whether the entry function returned normally."""
        return self.outcome.ending is Ending.RETURNED


class Lab:
    """A fresh runtime with a collector, for one test.

    ``config`` is the config of ``lab.env`` (default: everything allowed).
    Messages the collector receives are sorted into ``reports``,
    ``messages`` and ``handles`` as they are collected.
    """

    def __init__(self, backend: str, config: Config | None = None) -> None:
        self.backend = backend
        self.runtime = Runtime(backend=backend)
        self.env: Environment = self.runtime.environment(config)
        self.reports: list[list[Record]] = []
        self.messages: list[Message] = []
        self.handles: list[Process] = []
        self._stop = threading.Event()
        self.collector = self.runtime.spawn_native(self._idle, environment=self.env,
                                                   name="collector")
        self.collector.set_die_when_link_dies(False)
        self._closed = False

    # -- modules and processes -------------------------------------------------

    def module(self, *functions: str, data: Iterable[tuple[int, bytes]] = (),
               pages: int | None = 1, env: Environment | None = None) -> LunaticModule:
        """Compile ``guest_wat(*functions, data=..., pages=...)`` in ``env`` (default ``lab.env``)."""
        return (env or self.env).add_module(guest_wat(*functions, data=data, pages=pages))

    def spawn(self, module: LunaticModule | str, function: str = "main",
              params: Sequence[Any] = (), *, handles: Sequence[Process] = (),
              before: Sequence[Message | tuple[Any, ...]] = (), setup: bool = True,
              parent: Process | None = None, link_tag: int = 0) -> Process:
        """Spawn ``function``; deliver the ``before`` messages, then the setup message.

        ``module`` may be WAT functions text for a one-function guest.
        ``before`` items are messages or ``(tag, data[, resources])`` tuples;
        they are queued before the setup message, so they are in the mailbox
        by the time ``$setup`` returns.  ``handles`` become guest handles 1, 2, ...
        """
        if isinstance(module, str):
            module = self.module(module)
        process = self.runtime.spawn(module, function, params, parent=parent, link_tag=link_tag)
        for item in before:
            process.deliver(item if isinstance(item, (DataMessage, SignalMessage))
                            else _message(*item))
        if setup:
            resources = [self.collector, *handles]
            assert len(resources) <= _MAX_HANDLES, f"$setup takes at most {_MAX_HANDLES} handles"
            process.deliver(DataMessage(SETUP_TAG, struct.pack("<I", len(resources)),
                                        resources))
        return process

    def run(self, module: LunaticModule | str, function: str = "main",
            params: Sequence[Any] = (), *, handles: Sequence[Process] = (),
            before: Sequence[Message | tuple[Any, ...]] = (), setup: bool = True,
            timeout: float = RUN_TIMEOUT) -> Run:
        """``spawn``, wait for the end (failing the test after ``timeout`` s), collect."""
        seen = (len(self.reports), len(self.messages), len(self.handles))
        process = self.spawn(module, function, params, handles=handles, before=before,
                             setup=setup)
        outcome = self.join(process, timeout)
        self.collect()
        return Run(process, outcome, self.reports[seen[0]:], self.messages[seen[1]:],
                   self.handles[seen[2]:])

    def join(self, process: Process, timeout: float = RUN_TIMEOUT) -> Outcome:
        """Wait for ``process`` to end; a test failure (and a kill) if it does not."""
        outcome = process.join(timeout)
        if outcome is None:
            process.kill("the test gave up waiting")
            pytest.fail(f"{process} did not end within {timeout} s")
        return outcome

    def spawn_native(self, body: Callable[[NativeProcess], Any], name: str = "") -> Process:
        """A native process in ``lab.env``."""
        return self.runtime.spawn_native(body, environment=self.env, name=name)

    # -- the collector -----------------------------------------------------------

    def _idle(self, proc: NativeProcess) -> None:
        # The collector's body only waits; the lab takes the messages from its
        # mailbox itself.  It must not wait on the process's own condition
        # (``proc.sleep``): a delivery wakes one waiter, which could be this
        # body instead of the lab's ``receive``.
        while not self._stop.wait(0.2):
            proc.process.check_killed()

    def _take(self, timeout: float) -> bool:
        message = self.collector.receive(0, timeout)
        if message is None:
            return False
        if message.tag == SETUP_TAG:
            pass  # a setup message handed back by $setup
        elif message.tag == REPORT_TAG and isinstance(message, DataMessage):
            self.reports.append(decode_records(message.buffer))
        elif message.tag == HANDLE_TAG and isinstance(message, DataMessage):
            self.handles.append(message.resources[0])
        else:
            self.messages.append(message)
        return True

    def collect(self) -> None:
        """Sort whatever the collector has received so far (never waits)."""
        while self._take(0.0):
            pass

    def wait_for(self, condition: Callable[[], bool], timeout: float = RUN_TIMEOUT,
                 what: str = "the collector to receive it") -> None:
        """Collect until ``condition()`` holds; a test failure after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        self.collect()
        while not condition():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out waiting for {what}")
            self._take(remaining)

    def wait_handles(self, count: int, timeout: float = RUN_TIMEOUT) -> list[Process]:
        """Wait until ``count`` handles were exported; all exported handles."""
        self.wait_for(lambda: len(self.handles) >= count, timeout, f"{count} handles")
        return self.handles

    def wait_reports(self, count: int, timeout: float = RUN_TIMEOUT) -> list[list[Record]]:
        """Wait until ``count`` reports arrived; all reports."""
        self.wait_for(lambda: len(self.reports) >= count, timeout, f"{count} reports")
        return self.reports

    def wait_messages(self, count: int, timeout: float = RUN_TIMEOUT) -> list[Message]:
        """Wait until ``count`` other messages arrived; all of them."""
        self.wait_for(lambda: len(self.messages) >= count, timeout, f"{count} messages")
        return self.messages

    # -- the end -------------------------------------------------------------------

    def close(self) -> list[Process]:
        """Shut the runtime down; the processes that could not be stopped."""
        if self._closed:
            return []
        self._closed = True
        self._stop.set()
        stuck = self.runtime.shutdown(timeout=5.0)
        for message in self.messages:  # stream references in them close their sockets
            message.release()
        return stuck

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _message(tag: int, data: bytes = b"", resources: Sequence[Any] = ()) -> DataMessage:
    return DataMessage(tag, data, list(resources))


@pytest.fixture(name="lab")
def lab_fixture(backend: str) -> Iterator[Lab]:
    """The ``lab`` fixture: a ``Lab`` on the test's engine, shut down after the test.

    Test modules import ``lab_fixture`` (``# noqa: F401``) and take ``lab``.
    """
    with Lab(backend) as the_lab:
        yield the_lab
        stuck = the_lab.close()
    assert not stuck, f"processes still running after shutdown: {stuck}"


def run_guest(backend: str, *functions: str, function: str = "main",
              params: Sequence[Any] = (), data: Iterable[tuple[int, bytes]] = (),
              config: Config | None = None, handles: Sequence[Process] = ()) -> Run:
    """One-shot: a fresh lab, one guest module, one run."""
    with Lab(backend, config) as one:
        return one.run(one.module(*functions, data=data), function, params, handles=handles)


def assert_trap(result: Run | Outcome, function: str | None = None, *reasons: str) -> None:
    """The process failed; the trap came from ``function`` (``"lunatic::message.send"``)
    and its text contains every ``reasons`` (case-insensitive)."""
    outcome = result.outcome if isinstance(result, Run) else result
    assert outcome.ending is Ending.FAILED, f"expected a trap, got {outcome!r}"
    if function is not None:
        trapped_in = getattr(outcome.error, "function", None)
        assert trapped_in == function or function in outcome.message, (
            f"expected a trap in {function}, got one in {trapped_in}: {outcome.message!r}")
    for reason in reasons:
        assert reason.lower() in outcome.message.lower(), (
            f"{reason!r} not in the trap text {outcome.message!r}")


def assert_returned(result: Run | Outcome) -> None:
    """The process's entry function returned normally."""
    outcome = result.outcome if isinstance(result, Run) else result
    assert outcome.ending is Ending.RETURNED, f"expected a normal return, got {outcome!r}"


def tcp_stream_pair() -> tuple[StreamRef, socket.socket]:
    """A real TCP connection on 127.0.0.1: a stream reference (to put in a
    message) and the peer socket Python keeps (it sees EOF once every
    reference is released)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return SharedStream(server).new_ref(), client

