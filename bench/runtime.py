"""Lunatic runtime cost: spawning, idle processes, message round trips (each engine).

Three cases, each next to its floor in plain Python (no wasm):

1. ``spawn``: a guest's ``spawner(n)`` calls ``inherit_spawn`` ``n`` times on
   its exported no-op ``noop`` and drops each handle.  Timed from Python
   around ``rt.spawn(module, "spawner", [n]).join()``: that adds one spawn and
   one join wake-up to the ``n`` spawns (well under 1% at the default size)
   and needs no clock import in the guest.  ``inherit_spawn`` returns once
   the child is instantiated and handed to its thread, so the clock stops
   when the last spawn returned; children still finishing are waited for
   after the clock stopped, before the next measurement.  Floor: ``n`` times
   ``threading.Thread(target=noop).start()`` (which also returns once the
   thread runs).  Target: >= 5,000 spawns/s.  What decides it on 2 CPUs is
   how often the interpreter lock passes between spawner and child on
   different CPUs (a cross-CPU wake-up each, ~30 us here): the scheduler's
   CPU hint (``lunatic_api.scheduler``) keeps a new child on its spawner's
   CPU until it blocks or runs long; ``--no-cpu-hint`` shows the difference.
2. ``idle``: ``n`` processes blocked in ``receive``, spawned from Python with
   ``rt.spawn``; resident memory (``VmRSS`` of ``/proc/self/status``) over the
   baseline (runtime made, module compiled, one process run), per process,
   and the number of memory maps (``/proc/self/maps``: the kernel's
   ``vm.max_map_count`` caps them; one map per line).  Each variant runs in a
   child Python process of its own, so running out of maps or memory cannot
   take the benchmark down; the child reports how many processes it reached
   and the error that stopped it (if it dies, the last progress line it
   printed), then kills them all and reports how long that took: one by one
   (kill, join) and then ``rt.shutdown``, or with ``--idle-teardown shutdown``
   ``rt.shutdown`` alone, which kills all first and then joins (much slower
   with thousands of processes: they all wake at once).  Floor: ``n`` bare
   threads blocked on a ``queue.SimpleQueue``.  Measured once per variant
   (memory is not noisy).
   Target on wasmtime: 10,000 processes in under 2 GiB; on wasmer the
   ceiling reached and what stopped it is reported.
   On wasmtime the idle case uses the dense configuration
   (``Runtime.dense()``: 512 KiB thread stacks, engine with
   ``memory_init_cow=False`` and a 224 KiB ``max_wasm_stack``), as a program
   holding that many processes should: memory maps, not memory, are what
   runs out (``vm.max_map_count``, 65,530 by default; 8 maps per process with
   the defaults, which stop near 8,300; about 6.4 dense).  The output says which
   configuration each engine's idle case used; ``--idle-config default``
   measures the default one (``--stack-size``, ``--idle-wasmtime-config``).
3. ``ping-pong``: the guest's ``ping(n)`` inherit-spawns ``pong(n)``, sends it
   its own handle, then ``n`` times sends 64 bytes and waits for the reply;
   ``pong`` reads each message (``read_data``) and sends the 64 bytes back.
   Timed from Python around ``rt.spawn(module, "ping", [n]).join()`` (two
   spawns included).  Floor: two threads passing a 64-byte ``bytes`` through
   two ``queue.SimpleQueue``.  Target: round trips/s within 2x of the floor.

Variants of cases 1 and 3 are measured interleaved (their order rotating
every round), after a warm-up round; the script prints medians and the
median of the per-round ratios floor/engine (machines here are noisy and
2-core: trust ratios, and expect cross-CPU wake-ups to make the message
numbers jump between regimes).

    python bench/runtime.py [--rounds 7] [--engines wasmtime,wasmer] [--quick]
    python bench/runtime.py --cpus 0               # all on one CPU
    python bench/runtime.py --profile-spawn 2000   # cProfile of spawns, all threads
    python bench/runtime.py --no-cpu-hint          # without the scheduler's CPU hint

Cross-CPU wake-ups in these VMs cost from a few to ~100 us depending on the
moment (the plain-Python ping-pong floor has been seen anywhere from 10k to
150k round trips/s on 2 CPUs): ``--cpus 0`` pins everything to one CPU,
which measures CPU cost and makes runs comparable over time.

``--stack-size`` sets the ``ThreadScheduler`` stack of every runtime here
except the dense one; ``--idle-wasmtime-config memory_init_cow=false,...``
sets ``wasmtime.Config`` attributes of the engine (``funk.backends.wasmtime.
configure``), in the ``idle`` child only, with ``--idle-config default``.  The
runtime refuses a stack too small for the engine's ``max_wasm_stack`` (a
deeply recursing guest would crash Python with SIGSEGV instead of trapping),
so a smaller stack needs a smaller ``max_wasm_stack`` too::

    python bench/runtime.py --idle-config default --stack-size 262144 \\
        --idle-wasmtime-config memory_init_cow=false,max_wasm_stack=98304
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import pstats
import queue
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lunatic_api import Ending, Runtime  # noqa: E402
from lunatic_api.environment import LunaticModule  # noqa: E402
from lunatic_api.runtime import DENSE_WASMTIME_SETTINGS  # noqa: E402
from lunatic_api.scheduler import DEFAULT_STACK_SIZE, DENSE_STACK_SIZE, ThreadScheduler  # noqa: E402

ENGINES = ("wasmtime", "wasmer")
FLOOR = "threads"

SPAWN_TARGET = 5_000.0          #: spawns per second, each engine
IDLE_TARGET_COUNT = 10_000      #: processes held at once, wasmtime
IDLE_TARGET_BYTES = 2 << 30     #: ... in less resident memory than this
PINGPONG_TARGET = 2.0           #: floor/engine round-trip rate at most this
PAYLOAD = 64

# Memory map: 16 "noop", 32 "pong", 64 the handle a spawn writes, 96 the
# 17-byte spawn params record (i32 n), 128 ping's 64-byte buffer, 192 pong's.
# A failing spawn or receive reaches ``unreachable``: the process fails and
# the benchmark reports it.
GUEST = r"""
(module
  (import "lunatic::process" "inherit_spawn"
    (func $inherit_spawn (param i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "drop_process" (func $drop_process (param i64)))
  (import "lunatic::process" "this" (func $this (result i64)))
  (import "lunatic::message" "create_data" (func $create_data (param i64 i64)))
  (import "lunatic::message" "write_data" (func $write_data (param i32 i32) (result i32)))
  (import "lunatic::message" "read_data" (func $read_data (param i32 i32) (result i32)))
  (import "lunatic::message" "push_process" (func $push_process (param i64) (result i64)))
  (import "lunatic::message" "take_process" (func $take_process (param i64) (result i64)))
  (import "lunatic::message" "send" (func $send (param i64)))
  (import "lunatic::message" "receive" (func $receive (param i64 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "noop")
  (data (i32.const 32) "pong")
  (data (i32.const 128) "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")

  (func (export "noop"))

  ;; idle(): wait for one message (any), then return
  (func (export "idle") (drop (call $receive (i64.const 0) (i32.const 0))))

  ;; spawner(n): n times inherit_spawn("noop") and drop the handle
  (func (export "spawner") (param $n i32)
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (if (call $inherit_spawn (i64.const 0) (i32.const 16) (i32.const 4)
                               (i32.const 0) (i32.const 0) (i32.const 64))
        (then unreachable))
      (call $drop_process (i64.load (i32.const 64)))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next))))

  ;; ping(n): spawn pong(n), send it our handle, then n round trips of 64 bytes
  (func (export "ping") (param $n i32) (local $pong i64)
    (i32.store8 (i32.const 96) (i32.const 0x7f))
    (i64.store (i32.const 97) (i64.extend_i32_u (local.get $n)))
    (i64.store (i32.const 105) (i64.const 0))
    (if (call $inherit_spawn (i64.const 0) (i32.const 32) (i32.const 4)
                             (i32.const 96) (i32.const 17) (i32.const 64))
      (then unreachable))
    (local.set $pong (i64.load (i32.const 64)))
    (call $create_data (i64.const 0) (i64.const 0))
    (drop (call $push_process (call $this)))
    (call $send (local.get $pong))
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (call $create_data (i64.const 0) (i64.const 64))
      (drop (call $write_data (i32.const 128) (i32.const 64)))
      (call $send (local.get $pong))
      (if (call $receive (i64.const 0) (i32.const 0)) (then unreachable))
      (if (i32.ne (call $read_data (i32.const 128) (i32.const 64)) (i32.const 64))
        (then unreachable))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (call $drop_process (local.get $pong)))

  ;; pong(n): take ping's handle from the first message, then echo n messages
  (func (export "pong") (param $n i32) (local $ping i64)
    (if (call $receive (i64.const 0) (i32.const 0)) (then unreachable))
    (local.set $ping (call $take_process (i64.const 0)))
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $n)))
      (if (call $receive (i64.const 0) (i32.const 0)) (then unreachable))
      (if (i32.ne (call $read_data (i32.const 192) (i32.const 64)) (i32.const 64))
        (then unreachable))
      (call $create_data (i64.const 0) (i64.const 64))
      (drop (call $write_data (i32.const 192) (i32.const 64)))
      (call $send (local.get $ping))
      (local.set $n (i32.sub (local.get $n) (i32.const 1)))
      (br $next)))
    (call $drop_process (local.get $ping)))
)
"""

#: runs one measurement; returns the seconds it took
Measure = Callable[[], float]


def _noop() -> None:
    pass


# -- /proc readings ---------------------------------------------------------------


def rss_bytes() -> int:
    """This process's resident memory (``VmRSS``), in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def map_count() -> int:
    """How many memory maps this process has (lines of ``/proc/self/maps``)."""
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def max_map_count() -> int | None:
    """The kernel's per-process limit on memory maps, if readable."""
    try:
        return int(Path("/proc/sys/vm/max_map_count").read_text())
    except (OSError, ValueError):
        return None


# -- runtimes ---------------------------------------------------------------------


class Engine:
    """One runtime on one engine, with the guest module compiled (``dense``:
    ``Runtime.dense``, which ignores ``stack_size``)."""

    def __init__(self, backend: str, stack_size: int, dense: bool = False,
                 cpu_hint: bool = True) -> None:
        self.runtime = (Runtime.dense(backend, cpu_hint=cpu_hint) if dense else
                        Runtime(backend=backend, scheduler=ThreadScheduler(
                            stack_size=stack_size, cpu_hint=cpu_hint)))
        self.module: LunaticModule = self.runtime.environment().add_module(GUEST, "bench")

    def run(self, function: str, n: int) -> float:
        """Seconds for ``function(n)`` in a new process, spawn to end; it must return."""
        start = time.perf_counter()
        outcome = self.runtime.spawn(self.module, function, [n]).join()
        seconds = time.perf_counter() - start
        if outcome is None or outcome.ending is not Ending.RETURNED:
            raise RuntimeError(f"{self.runtime.backend}: {function}({n}) ended {outcome}")
        self.settle()
        return seconds

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until every process has ended (children may outlive their spawner)."""
        deadline = time.monotonic() + timeout
        while self.runtime.processes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.runtime.backend}: processes still running after "
                                   f"{timeout:g} s: {len(self.runtime.processes())}")
            time.sleep(0.001)

    def close(self) -> None:
        """Kill whatever is left and stop the pooled threads."""
        self.runtime.shutdown(10.0)


def spawn_case(engine: Engine, n: int) -> Measure:
    """Case 1 on an engine: ``spawner(n)``."""
    return lambda: engine.run("spawner", n)


def pingpong_case(engine: Engine, n: int) -> Measure:
    """Case 3 on an engine: ``ping(n)``."""
    return lambda: engine.run("ping", n)


def spawn_floor(n: int) -> Measure:
    """Case 1 floor: start ``n`` threads running a function that returns at once."""

    def measure() -> float:
        threads = []
        gc.collect()
        start = time.perf_counter()
        for _ in range(n):
            t = threading.Thread(target=_noop)
            t.start()
            threads.append(t)
        seconds = time.perf_counter() - start
        for t in threads:
            t.join()
        return seconds

    return measure


def pingpong_floor(n: int) -> Measure:
    """Case 3 floor: two threads, two ``SimpleQueue``s, ``n`` round trips of 64 bytes."""

    def measure() -> float:
        to_pong: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        to_ping: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        payload = bytes(range(PAYLOAD))

        def pong() -> None:
            for _ in range(n):
                to_ping.put(to_pong.get())

        gc.collect()
        start = time.perf_counter()
        thread = threading.Thread(target=pong)
        thread.start()
        for _ in range(n):
            to_pong.put(payload)
            if len(to_ping.get()) != PAYLOAD:
                raise RuntimeError("ping-pong floor: wrong reply")
        thread.join()
        return time.perf_counter() - start

    return measure


def measure_all(variants: dict[str, dict[str, Measure]],
                rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per case, per variant: the seconds of each round (interleaved, order rotating)."""
    out: dict[str, dict[str, list[float]]] = {c: {v: [] for v in variants[c]} for c in variants}
    for per_variant in variants.values():  # warm-up: thread pools, code paths
        for measure in per_variant.values():
            measure()
    for r in range(rounds):
        for case, per_variant in variants.items():
            names = list(per_variant)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                out[case][name].append(per_variant[name]())
    return out


# -- case 2: idle processes, in a child Python process per variant ----------------------


def _apply_wasmtime_config(spec: str) -> None:
    """Configure funk's wasmtime engine with ``Config`` attributes (``k=v,...``)."""
    import funk.backends.wasmtime as funk_wasmtime

    settings: dict[str, Any] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        key, _, raw = item.partition("=")
        value: Any = {"true": True, "false": False}.get(raw.lower())
        settings[key] = value if value is not None else int(raw)
    funk_wasmtime.configure(**settings)


def dense_idle(variant: str, config: str) -> bool:
    """Whether the idle case of ``variant`` runs the dense configuration."""
    return variant == "wasmtime" and config == "dense"


def describe_idle_config(variant: str, config: str, stack_size: int,
                         wasmtime_config: str) -> str:
    """One line: the runtime configuration of ``variant``'s idle case."""
    if dense_idle(variant, config):
        settings = ", ".join(f"{k}={v}" for k, v in DENSE_WASMTIME_SETTINGS.items())
        return (f"dense (Runtime.dense: {DENSE_STACK_SIZE >> 10} KiB thread stacks, "
                f"wasmtime {settings})")
    extra = f", wasmtime {wasmtime_config}" if variant == "wasmtime" and wasmtime_config else ""
    return f"default ({stack_size >> 10} KiB thread stacks{extra})"


def _progress(held: int, rss0: int, maps0: int) -> None:
    """A JSON line the parent falls back on if this child dies before it reports.

    Counting maps means reading all of ``/proc/self/maps``: only every 1,000th line.
    """
    line: dict[str, int] = {"progress": held, "rss_delta": rss_bytes() - rss0}
    if held % 1000 == 0:
        maps = map_count()
        line.update(maps_delta=maps - maps0, maps=maps, maps_held=held)
    print(json.dumps(line), flush=True)


def idle_child(variant: str, n: int, stack_size: int, wasmtime_config: str,
               teardown: str, config: str) -> int:
    """Hold ``n`` idle processes (or threads); print JSON lines: progress, held, torn down.

    Runs in a child Python process; the parent parses the lines.  ``teardown``
    ``serial`` kills and joins the processes one by one, then calls
    ``rt.shutdown``; ``shutdown`` leaves it all to ``rt.shutdown``.  ``config``
    ``dense`` runs wasmtime with ``Runtime.dense()`` (``describe_idle_config``).
    """
    result: dict[str, Any] = {"variant": variant, "asked": n, "error": None}
    held: list[Any] = []
    every = max(1, min(50, n // 10))
    if variant == FLOOR:
        queues: list[queue.SimpleQueue[None]] = []
        gc.collect()
        rss0, maps0 = rss_bytes(), map_count()
        start = time.perf_counter()
        try:
            for i in range(n):
                q: queue.SimpleQueue[None] = queue.SimpleQueue()
                t = threading.Thread(target=q.get, daemon=True)
                t.start()
                queues.append(q)
                held.append(t)
                if i % every == every - 1:
                    _progress(len(held), rss0, maps0)
        except BaseException as exc:  # noqa: B902 - the ceiling is the result
            result["error"] = f"{type(exc).__name__}: {exc}"
        result["spawn_seconds"] = time.perf_counter() - start
        time.sleep(0.2)
        alive = sum(t.is_alive() for t in held)
    else:
        dense = dense_idle(variant, config)
        if variant == "wasmtime" and wasmtime_config and not dense:
            _apply_wasmtime_config(wasmtime_config)
        engine = Engine(variant, stack_size, dense)
        rt, module = engine.runtime, engine.module
        warm = rt.spawn(module, "idle")  # code paths, one pooled thread
        rt.send(warm, b"go")
        warm.join()
        engine.settle()
        gc.collect()
        time.sleep(0.1)
        rss0, maps0 = rss_bytes(), map_count()
        start = time.perf_counter()
        try:
            for i in range(n):
                held.append(rt.spawn(module, "idle"))
                if i % every == every - 1:
                    _progress(len(held), rss0, maps0)
        except BaseException as exc:  # noqa: B902 - the ceiling is the result
            result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        result["spawn_seconds"] = time.perf_counter() - start
        time.sleep(0.2)
        alive = sum(p.alive for p in held)
    maps = map_count()
    result.update(held=alive, rss_delta=rss_bytes() - rss0, maps_delta=maps - maps0,
                  maps=maps, maps_held=len(held), max_map_count=max_map_count())
    print(json.dumps(result), flush=True)

    start = time.perf_counter()
    stuck = 0
    if variant == FLOOR:
        for q in queues:
            q.put(None)
        for t in held:
            t.join()
    else:
        if teardown == "serial":
            for p in held:
                p.kill("the benchmark is done")
                if p.join(10.0) is None:
                    stuck += 1
        stuck += len(rt.shutdown(120.0))
    print(json.dumps({"shutdown_seconds": time.perf_counter() - start, "stuck": stuck}),
          flush=True)
    os._exit(0)  # whatever is stuck is abandoned, as Lunatic abandons it


def _crash_text(stderr: str) -> str:
    """The telling line of a crashed child's stderr (a Rust panic, a fatal error)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for i, line in enumerate(lines):
        if "panicked at" in line:
            return " ".join(lines[i:i + 2])
        if line.startswith(("Fatal Python error", "fatal runtime error")):
            return line
    return lines[-1] if lines else "?"


def run_idle(variant: str, n: int, stack_size: int, wasmtime_config: str,
             teardown: str, config: str) -> dict[str, Any]:
    """Run ``idle_child`` in a child Python process; its results (or how it died)."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--idle-child", variant,
           "--idle", str(n), "--stack-size", str(stack_size), "--idle-teardown", teardown,
           "--idle-config", config]
    if wasmtime_config:
        cmd += ["--idle-wasmtime-config", wasmtime_config]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        stdout, stderr, rc = proc.stdout, proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        stdout = exc.stdout.decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        stderr, rc = "timed out after 900 s", -1
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    progress = [line for line in lines if "progress" in line]
    results = [line for line in lines if "progress" not in line]
    result: dict[str, Any] = {"variant": variant, "asked": n, "held": 0, "error": None}
    if variant != FLOOR:
        result["config"] = describe_idle_config(variant, config, stack_size, wasmtime_config)
    if results:
        result.update(results[0])
        if len(results) > 1:
            result.update(results[1])
    elif progress:  # died while spawning: what it had reached by then (maps: last read)
        for line in progress:
            result.update(line)
        result["held"] = result.pop("progress")
        result["max_map_count"] = max_map_count()
        result["died_while_spawning"] = True
    if rc != 0:
        died = f"child exited {rc}: {_crash_text(stderr)}"
        result["error"] = f"{result['error']}; then {died}" if result.get("error") else died
    return result


# -- profiling ---------------------------------------------------------------------------


def profile_spawn(backend: str, n: int, stack_size: int, top: int, cpu_hint: bool) -> None:
    """cProfile ``spawner(n)`` on every thread (one profiler per process body), merged.

    The profilers count each thread's CPU time (``time.thread_time``), not wall
    time: with one thread per process, wall time would mostly be time spent
    waiting for the GIL or for another thread, charged to whatever was running.
    """
    engine = Engine(backend, stack_size, cpu_hint=cpu_hint)
    engine.run("spawner", 200)  # warm-up
    profiles: list[cProfile.Profile] = []
    lock = threading.Lock()
    scheduler = engine.runtime.scheduler
    plain_start = scheduler.start

    def start(body: Callable[[], None], name: str) -> None:
        def profiled() -> None:
            prof = cProfile.Profile(time.thread_time)
            prof.enable()
            try:
                body()
            finally:
                prof.disable()
                with lock:
                    profiles.append(prof)

        plain_start(profiled, name)

    scheduler.start = start  # type: ignore[method-assign]
    seconds = engine.run("spawner", n)
    scheduler.start = plain_start  # type: ignore[method-assign]
    engine.close()
    stats = pstats.Stats(profiles[0])
    for prof in profiles[1:]:
        stats.add(prof)
    print(f"\n== cProfile (thread CPU time) of {n} inherit_spawn calls on {backend}: "
          f"{n / seconds:,.0f} spawns/s under the profiler, {len(profiles)} process bodies "
          f"merged ==")
    stats.sort_stats("tottime").print_stats(top)
    stats.sort_stats("cumulative").print_stats(top)


# -- report ----------------------------------------------------------------------------


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


def _fmt_n(value: float) -> str:
    return f"{value:,.0f}"


def report(engines: list[str], times: dict[str, dict[str, list[float]]],
           idle: dict[str, dict[str, Any]], spawns: int, trips: int, idle_n: int,
           rounds: int, stack_size: int, teardown: str, load: float,
           cpu_hint: bool = True) -> None:
    """Print the table and one ``target`` line per target."""
    cols = [FLOOR] + engines
    width = 46

    def row(label: str, cells: dict[str, str], note: str = "") -> None:
        line = f"{label:{width}}" + "".join(f" {cells.get(c, '-'):>12}" for c in cols)
        print(line + (f"  {note}" if note else ""))

    rate = {case: {v: statistics.median(n / s for s in times[case][v]) for v in cols}
            for case, n in (("spawn", spawns), ("pingpong", trips))}
    ratio = {case: {e: _ratio(times[case][e], times[case][FLOOR]) for e in engines}
             for case in ("spawn", "pingpong")}

    print(f"\n== Lunatic runtime on funk vs plain-Python threads ({rounds} rounds, medians; "
          f"scheduler stack {stack_size >> 10} KiB, CPU hint {'on' if cpu_hint else 'off'}, "
          f"idle configurations below; on CPUs "
          f"{','.join(map(str, sorted(os.sched_getaffinity(0))))} of {os.cpu_count()}, load "
          f"average {load:.1f} before the run) ==")
    row("metric", {c: c for c in cols}, "target")
    row(f"spawn: processes/s (n={spawns:,})", {c: _fmt_n(rate["spawn"][c]) for c in cols},
        f">= {SPAWN_TARGET:,.0f}/s")
    row("spawn: floor/engine (time ratio)", {e: f"{ratio['spawn'][e]:.1f}x" for e in engines})
    held = {c: f"{idle[c].get('held', 0):,}" for c in cols}
    row(f"idle: processes held (of {idle_n:,})", held,
        f"{IDLE_TARGET_COUNT:,} in < {IDLE_TARGET_BYTES >> 30} GiB (wasmtime)")
    per: dict[str, float] = {}
    for c in cols:
        r = idle[c]
        if r.get("held") and "rss_delta" in r:
            per[c] = r["rss_delta"] / r["held"]
    row("idle: RSS over baseline, MiB",
        {c: f"{idle[c]['rss_delta'] / 2**20:,.0f}" for c in cols if "rss_delta" in idle[c]})
    row("idle: RSS per process, KiB", {c: f"{per[c] / 1024:,.1f}" for c in per})
    row("idle: RSS per process engine/floor",
        {e: f"{per[e] / per[FLOOR]:.1f}x" for e in engines if e in per and per.get(FLOOR)})
    row("idle: memory maps per process",
        {c: f"{idle[c]['maps_delta'] / idle[c]['maps_held']:.2f}" for c in cols
         if idle[c].get("maps_held") and "maps_delta" in idle[c]})
    row("idle: seconds to spawn them",
        {c: f"{idle[c]['spawn_seconds']:.2f}" for c in cols if "spawn_seconds" in idle[c]})
    row(f"idle: seconds to kill them all ({teardown})",
        {c: f"{idle[c]['shutdown_seconds']:.2f}" for c in cols if "shutdown_seconds" in idle[c]})
    row(f"ping-pong {PAYLOAD} B: round trips/s (n={trips:,})",
        {c: _fmt_n(rate["pingpong"][c]) for c in cols}, f"floor/engine <= {PINGPONG_TARGET:g}x")
    row("ping-pong: floor/engine (time ratio)",
        {e: f"{ratio['pingpong'][e]:.2f}x" for e in engines})

    print()
    for e in engines:
        if idle[e].get("config"):
            print(f"idle {e}: {idle[e]['config']}")
    stopped = False
    for c in cols:
        r = idle[c]
        if r.get("error"):
            maps = r.get("maps")
            limit = r.get("max_map_count")
            where = f" (memory maps {maps:,} of vm.max_map_count {limit:,}, last read)" \
                if maps is not None and limit else ""
            count = f"{r.get('held', 0):,}"
            how = (f"died after spawning {count} (its last progress line)"
                   if r.get("died_while_spawning") else f"stopped at {count} processes")
            print(f"idle {c}: {how}{where}: {r['error']}")
            stopped = True
    if stopped:
        print()
    parts = [f"{e} {_fmt_n(rate['spawn'][e])}/s {_verdict(rate['spawn'][e] >= SPAWN_TARGET)}"
             for e in engines]
    print(f"target spawn     >= {SPAWN_TARGET:,.0f} spawns/s: {', '.join(parts)}")
    parts = []
    for e in engines:
        r = idle[e]
        # with a --idle size other than 10,000 the memory bound scales with it
        bound = IDLE_TARGET_BYTES * idle_n / IDLE_TARGET_COUNT
        reached = r.get("held", 0) >= idle_n and not r.get("error")
        mib = r.get("rss_delta", 0) / 2**20
        if e == "wasmtime":
            ok = reached and r.get("rss_delta", bound) < bound
            parts.append(f"{e} {r.get('held', 0):,} held in {mib:,.0f} MiB {_verdict(ok)}")
        else:
            parts.append(f"{e} {r.get('held', 0):,} held in {mib:,.0f} MiB "
                         f"({'no ceiling hit' if reached else 'its ceiling'}; no target)")
    print(f"target idle      {idle_n:,} processes in < "
          f"{IDLE_TARGET_BYTES * idle_n / IDLE_TARGET_COUNT / 2**30:.2g} GiB: {', '.join(parts)}")
    parts = [f"{e} {ratio['pingpong'][e]:.2f}x "
             f"{_verdict(ratio['pingpong'][e] <= PINGPONG_TARGET)}" for e in engines]
    print(f"target ping-pong within {PINGPONG_TARGET:g}x of the floor: {', '.join(parts)}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark (or one of its child modes); print the table and the verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated funk engines (default: both)")
    parser.add_argument("--spawns", type=int, default=5_000, help="spawns per measurement")
    parser.add_argument("--round-trips", type=int, default=20_000,
                        help="ping-pong round trips per measurement")
    parser.add_argument("--idle", type=int, default=IDLE_TARGET_COUNT,
                        help="idle processes to hold")
    parser.add_argument("--stack-size", type=int, default=DEFAULT_STACK_SIZE,
                        help="ThreadScheduler stack size in bytes (default: the scheduler's)")
    parser.add_argument("--idle-config", choices=("dense", "default"), default="dense",
                        help="idle case on wasmtime: Runtime.dense() (default), or the "
                             "default configuration with --stack-size and "
                             "--idle-wasmtime-config")
    parser.add_argument("--idle-wasmtime-config", default="",
                        help="experiment: wasmtime.Config attributes for the idle case with "
                             "--idle-config default, e.g. memory_init_cow=false")
    parser.add_argument("--idle-teardown", choices=("serial", "shutdown"), default="serial",
                        help="idle case clean-up: kill+join one by one then rt.shutdown "
                             "(default), or rt.shutdown alone (kills all, then joins)")
    parser.add_argument("--cpus", default="",
                        help="run on these CPUs only, e.g. 0 (comma-separated; children "
                             "inherit it): one CPU takes cross-CPU wake-ups out of the numbers")
    parser.add_argument("--no-cpu-hint", dest="cpu_hint", action="store_false",
                        help="spawn and ping-pong runtimes without the scheduler's CPU hint "
                             "(ThreadScheduler(cpu_hint=False)), to see what it is worth")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny sizes, 2 rounds (numbers are not meaningful)")
    parser.add_argument("--profile-spawn", type=int, default=0, metavar="N",
                        help="instead of the benchmark: cProfile N spawns on each engine")
    parser.add_argument("--idle-child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.idle_child:
        return idle_child(args.idle_child, args.idle, args.stack_size,
                          args.idle_wasmtime_config, args.idle_teardown, args.idle_config)
    if args.idle_wasmtime_config and args.idle_config == "dense":
        parser.error("--idle-wasmtime-config needs --idle-config default (dense sets the engine)")
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or any(e not in ENGINES for e in engines):
        parser.error(f"--engines must name some of {', '.join(ENGINES)}")
    if args.profile_spawn:
        for engine in engines:
            profile_spawn(engine, args.profile_spawn, args.stack_size, 30, args.cpu_hint)
        return 0
    if args.quick:
        spawns, trips, idle_n, rounds = 100, 300, 100, 2
    else:
        spawns, trips, idle_n, rounds = args.spawns, args.round_trips, args.idle, args.rounds

    load = os.getloadavg()[0]  # other work on the machine skews everything: say so
    idle = {v: run_idle(v, idle_n, args.stack_size, args.idle_wasmtime_config,
                        args.idle_teardown, args.idle_config) for v in [FLOOR] + engines}

    runtimes = {e: Engine(e, args.stack_size, cpu_hint=args.cpu_hint) for e in engines}
    variants: dict[str, dict[str, Measure]] = {
        "spawn": {FLOOR: spawn_floor(spawns)},
        "pingpong": {FLOOR: pingpong_floor(trips)},
    }
    for e, engine in runtimes.items():
        variants["spawn"][e] = spawn_case(engine, spawns)
        variants["pingpong"][e] = pingpong_case(engine, trips)
    try:
        times = measure_all(variants, rounds)
    finally:
        for engine in runtimes.values():
            engine.close()

    report(engines, times, idle, spawns, trips, idle_n, rounds, args.stack_size,
           args.idle_teardown, load, args.cpu_hint)
    if args.quick:
        print("(--quick: sizes too small for the numbers to mean anything)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
