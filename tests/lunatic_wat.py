"""WAT guests for the Lunatic concurrency and lifecycle tests.

``lunatic_module(*funcs)`` wraps test functions in a module that imports every
``lunatic::*`` host function (ids like ``$lunatic::message.receive``, as in
``wat/all_imports.wat``) plus WASI ``proc_exit`` (``$proc_exit``), exports a
memory named ``memory`` and adds a small prelude of helpers:

* ``$send2 (handle tag a b)`` -- send a 16-byte message (two i64) with ``tag``;
* ``$send2_self (handle tag a b)`` -- the same with this process as resource 0;
* ``$read2`` -- read the received message's first 16 bytes; ``$arg_a``/``$arg_b``
  give them as i64 (little endian);
* ``$lookup (name_ptr name_len) -> i64`` -- a registry lookup with query ``*``
  (traps when nothing is found);
* ``$collector -> i64`` -- the handle of the process registered as ``collector``
  (looked up once and cached);
* ``$report (tag a b)`` / ``$report_self (tag a b)`` -- ``$send2`` / ``$send2_self``
  to the collector;
* ``$spawn1 (link func_ptr func_len arg) -> i64`` -- ``inherit_spawn`` of a
  function taking one i32 (traps if spawning fails).

Memory layout used by the prelude: 0-15 outgoing payload, 16-31 incoming
payload, 32-63 out-pointers, 64-127 spawn params, 128-255 prelude strings.
Test code may use 256-1023 for its own strings and 1024 upward for data.
"""

from __future__ import annotations

import queue
from collections.abc import Iterable
from functools import cache
from typing import Any

import funk
from codegen.wat import emit_wat
from lunatic_api import DataMessage, Environment, NativeProcess, Runtime
from lunatic_api.context import host_classes

__all__ = ["lunatic_module", "lunatic_imports", "STR_BASE", "DATA_BASE", "COLLECTOR", "Collector",
           "JOIN"]

STR_BASE = 256
"""Where a test's own strings may start."""
DATA_BASE = 1024
"""Where a test's own data may start."""
COLLECTOR = "collector"

JOIN = 60.0
"""Seconds any wait may take before a test fails (a hang fails; nothing asserts timing)."""
"""The registry name ``$collector`` looks up (any version)."""


@cache
def lunatic_imports() -> str:
    """Import lines for every ``lunatic::*`` host function (no WASI)."""
    lines: list[str] = []
    for cls in host_classes():
        if cls.__name__ == "Wasi":
            continue
        text = emit_wat(funk.functions_of(cls)).rstrip()
        assert text.startswith("(module") and text.endswith(")")
        lines.append(text[len("(module"):-1].rstrip())
    lines.append('  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))')
    return "\n".join(lines) + "\n"


PRELUDE = r"""
  (global $collector (mut i64) (i64.const -1))
  (data (i32.const 128) "collector")
  (data (i32.const 144) "*")
  (func $send2 (param $h i64) (param $tag i64) (param $a i64) (param $b i64)
    (call $lunatic::message.create_data (local.get $tag) (i64.const 16))
    (i64.store (i32.const 0) (local.get $a))
    (i64.store (i32.const 8) (local.get $b))
    (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 16)))
    (call $lunatic::message.send (local.get $h)))
  (func $send2_self (param $h i64) (param $tag i64) (param $a i64) (param $b i64)
    (call $lunatic::message.create_data (local.get $tag) (i64.const 16))
    (i64.store (i32.const 0) (local.get $a))
    (i64.store (i32.const 8) (local.get $b))
    (drop (call $lunatic::message.write_data (i32.const 0) (i32.const 16)))
    (drop (call $lunatic::message.push_process (call $lunatic::process.this)))
    (call $lunatic::message.send (local.get $h)))
  (func $read2
    (i64.store (i32.const 16) (i64.const 0))
    (i64.store (i32.const 24) (i64.const 0))
    (drop (call $lunatic::message.read_data (i32.const 16) (i32.const 16))))
  (func $arg_a (result i64) (i64.load (i32.const 16)))
  (func $arg_b (result i64) (i64.load (i32.const 24)))
  (func $lookup (param $ptr i32) (param $len i32) (result i64)
    (if (call $lunatic::process.lookup (local.get $ptr) (local.get $len)
                                        (i32.const 144) (i32.const 1) (i32.const 32))
      (then unreachable))
    (i64.load (i32.const 32)))
  (func $collector (result i64)
    (if (i64.lt_s (global.get $collector) (i64.const 0))
      (then (global.set $collector (call $lookup (i32.const 128) (i32.const 9)))))
    (global.get $collector))
  (func $report (param $tag i64) (param $a i64) (param $b i64)
    (call $send2 (call $collector) (local.get $tag) (local.get $a) (local.get $b)))
  (func $report_self (param $tag i64) (param $a i64) (param $b i64)
    (call $send2_self (call $collector) (local.get $tag) (local.get $a) (local.get $b)))
  (func $spawn1 (param $link i64) (param $fptr i32) (param $flen i32) (param $arg i32) (result i64)
    (i32.store8 (i32.const 64) (i32.const 0x7f))
    (i64.store (i32.const 65) (i64.extend_i32_u (local.get $arg)))
    (i64.store (i32.const 73) (i64.const 0))
    (if (call $lunatic::process.inherit_spawn (local.get $link) (local.get $fptr) (local.get $flen)
                                               (i32.const 64) (i32.const 17) (i32.const 40))
      (then unreachable))
    (i64.load (i32.const 40)))
"""


def wat_string(blob: bytes) -> str:
    """``blob`` as the body of a WAT string literal (every byte escaped)."""
    return "".join(f"\\{b:02x}" for b in blob)


def lunatic_module(*funcs: str, data: Iterable[tuple[int, bytes]] = (), pages: int = 1) -> str:
    """A WAT module: all lunatic imports, ``memory``, the prelude, ``data`` and ``funcs``."""
    parts = ["(module", lunatic_imports(), f'  (memory (export "memory") {pages})', PRELUDE]
    for offset, blob in data:
        parts.append(f'  (data (i32.const {offset}) "{wat_string(blob)}")')
    parts.extend("  " + fn.strip() for fn in funcs)
    parts.append(")")
    return "\n".join(parts) + "\n"


class Collector:
    """A native process registered as ``collector`` in ``env``: queues what it receives."""

    def __init__(self, runtime: Runtime, env: Environment) -> None:
        self.inbox: queue.Queue[Any] = queue.Queue()

        def collect(proc: NativeProcess) -> None:
            while True:
                self.inbox.put(proc.receive())

        self.process = runtime.spawn_native(collect, environment=env, name="collector")
        assert env.registry.register(COLLECTOR, "1.0.0", self.process) == 0

    def get(self, timeout: float = JOIN) -> DataMessage:
        """The next data message (fails on a signal message or after ``timeout`` s)."""
        message = self.inbox.get(timeout=timeout)
        assert isinstance(message, DataMessage), message
        return message
