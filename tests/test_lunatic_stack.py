"""Native stack safety: deep wasm recursion traps cleanly, it never crashes the interpreter.

A process thread's stack holds its guest's wasm frames (up to wasmtime's
``max_wasm_stack``, or the whole thread stack on wasmer), the Python frames of
host calls and, on wasmtime, the start function of a child the guest spawns
(``lunatic_api.spawning``).  Too small a thread stack for that overflows in
native code: SIGSEGV.  So each guest scenario runs in a child Python process
(this file run as a script: ``python -m tests.test_lunatic_stack SCENARIO
BACKEND``) that prints one JSON line of what it saw; pytest checks the exit
status and the line.

* ``recursion``: the default runtime; a guest recursing without end traps
  with "call stack exhausted", also when it calls the host at every level
  (on wasmer, where wasm may use the whole thread stack, it is the host call
  that refuses to run with less than its class's reserve of native stack
  left, ``funk.stack``: overflowing inside Python frames made wasmer unwind
  through them, leaving their locks held), then the runtime still runs
  processes.
* ``many``: the dense configuration (``Runtime.dense``: 512 KiB stacks), 50
  processes recursing without end at once.
* ``nested``: dense; the guest's maximum recursion depth (calling the host at
  every level) is found by bisection, then a guest a few frames short of it
  calls ``inherit_spawn``
  of a child whose start function recurses almost as deep, calling the host
  at every level (the deepest native stack use measured: two wasm stacks and
  host frames on one thread, on wasmtime), and again ``spawn``\\ s a module
  whose start function recurses until it traps.  Also, on wasmtime: the
  runtime refuses a stack one page short of ``min_stack_size``.

In this process: ``Runtime`` refuses a stack too small for the engine's
``max_wasm_stack``; ``funk.backends.wasmtime.configure`` refuses to change
an engine that exists; a spawn made while the thread instantiates goes to
the child's thread.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import selected_backends

ROOT = Path(__file__).resolve().parent.parent

STACK_MESSAGE = "call stack exhausted"
MANY = 50

needs_wasmtime = pytest.mark.skipif("wasmtime" not in selected_backends(),
                                    reason="wasmtime is not among the engines tested")

IMPORTS = """
  (import "lunatic::process" "inherit_spawn"
    (func $inherit_spawn (param i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "spawn" (func $spawn (param i64 i64 i32 i32 i32 i32 i32) (result i32)))
  (import "lunatic::process" "add_module" (func $add_module (param i64 i32 i32 i32) (result i32)))
  (import "lunatic::process" "this_env" (func $this_env (result i64)))
  (import "lunatic::process" "this" (func $this (result i64)))
  (import "lunatic::process" "drop_process" (func $drop_process (param i64)))
  (import "lunatic::error" "drop" (func $drop_error (param i64)))
"""

BOMB = f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (start $start)
  (func $start (call $down))
  ;; without end, a host call at every level: traps at the wasm stack limit
  (func $down (call $drop_process (call $this)) (call $down))
  (func (export "child")))
"""


def guest(start_depth: int, bomb: bytes = b"") -> str:
    """The test guest; its start function recurses ``start_depth`` levels, calling the
    host at every level; ``bomb`` (a module's bytes) is placed at 1024 for ``spawn_bomb``."""
    data = "".join(f"\\{b:02x}" for b in bomb)
    return f"""(module {IMPORTS}
  (memory (export "memory") 1)
  (data (i32.const 16) "child")
  (data (i32.const 1024) "{data}")
  (start $start)
  (func $start (call $rec (i32.const {start_depth}) (i32.const 3)))

  ;; rec(n, bottom): n levels, then at the bottom 1: inherit_spawn "child" (0 on success
  ;; else unreachable); 2: spawn "child" of the module at 136 (0 if it failed else
  ;; unreachable); 3: a host call at every level
  (func $rec (param $n i32) (param $bottom i32)
    (if (i32.eqz (local.get $n))
      (then
        (if (i32.eq (local.get $bottom) (i32.const 1))
          (then
            (if (call $inherit_spawn (i64.const 0) (i32.const 16) (i32.const 5)
                                     (i32.const 0) (i32.const 0) (i32.const 128))
              (then unreachable))
            (call $drop_process (i64.load (i32.const 128)))))
        (if (i32.eq (local.get $bottom) (i32.const 2))
          (then
            (if (i32.eqz (call $spawn (i64.const 0) (i64.load (i32.const 136))
                                      (i32.const 16) (i32.const 5)
                                      (i32.const 0) (i32.const 0) (i32.const 128)))
              (then unreachable))
            (call $drop_error (i64.load (i32.const 128)))))
        (return)))
    (if (i32.eq (local.get $bottom) (i32.const 3))
      (then (call $drop_process (call $this))))
    (call $rec (i32.sub (local.get $n) (i32.const 1)) (local.get $bottom)))

  (func (export "probe") (param $n i32) (call $rec (local.get $n) (i32.const 0)))
  (func (export "probe_calls") (param $n i32) (call $rec (local.get $n) (i32.const 3)))
  (func (export "forever") (call $rec (i32.const -1) (i32.const 0)))
  (func (export "forever_calls") (call $rec (i32.const -1) (i32.const 3)))
  (func (export "deep_inherit") (param $n i32) (call $rec (local.get $n) (i32.const 1)))
  (func (export "deep_spawn_bomb") (param $n i32)
    (if (call $add_module (call $this_env) (i32.const 1024) (i32.const {len(bomb)})
                          (i32.const 136))
      (then unreachable))
    (call $rec (local.get $n) (i32.const 2)))
  (func (export "child"))
)
"""


# -- the child process's side ----------------------------------------------------------------


def _ending(outcome: Any) -> list[str]:
    return [outcome.ending.name, outcome.message.split("\n")[0]] if outcome else ["stuck", ""]


def _scenario(name: str, backend: str) -> dict[str, Any]:
    from lunatic_api import Ending, Runtime
    from lunatic_api.scheduler import DENSE_STACK_SIZE, ThreadScheduler, min_stack_size

    rt = Runtime(backend) if name == "recursion" else Runtime.dense(backend)
    env = rt.environment()
    plain = env.add_module(guest(1), "plain")
    report: dict[str, Any] = {}

    def run(module: Any, function: str, *params: int) -> Any:
        return rt.spawn(module, function, list(params)).join(60)

    if name == "recursion":
        report["forever"] = _ending(run(plain, "forever"))
        report["forever_calls"] = _ending(run(plain, "forever_calls"))
        report["again"] = _ending(run(plain, "forever_calls"))
    elif name == "many":
        processes = [rt.spawn(plain, "forever") for _ in range(MANY)]
        report["forever"] = sorted({tuple(_ending(p.join(60))) for p in processes})
    elif name == "nested":
        # how deep the guest can recurse calling the host at every level (on wasmer,
        # where wasm may use the whole thread stack, a host call needs a reserve of
        # native stack left, so this is less deep than pure wasm recursion)
        low, high = 1, 1 << 20  # probe_calls(low) returns, probe_calls(high) traps
        assert run(plain, "probe_calls", high).ending is Ending.FAILED
        while high - low > 1:
            middle = (low + high) // 2
            if run(plain, "probe_calls", middle).ending is Ending.RETURNED:
                low = middle
            else:
                high = middle
        report["depth"] = low
        # the child's start: as deep as the parent can go, less a few frames for
        # the start function's own entry (it runs in a store of its own; on wasmer,
        # in the child's thread below a few more Python frames than an entry call)
        deep = env.add_module(guest(low - 32), "deep")
        # at the bottom: 16 levels (of a few dozen bytes) above the deepest host call
        # probe_calls made (one with more parameters takes a little more stack on wasmer)
        report["inherit"] = _ending(run(deep, "deep_inherit", low - 16))
        import funk

        bomb = env.add_module(guest(1, funk.wasm_input.to_wasm_bytes(BOMB)), "bomb")
        report["spawn_bomb"] = _ending(run(bomb, "deep_spawn_bomb", low - 16))
        try:
            Runtime(backend, ThreadScheduler(stack_size=DENSE_STACK_SIZE - 4096))
            report["refused"] = None
        except ValueError as exc:
            report["refused"] = str(exc)
        from funk.backends import wasmtime as engine

        report["max_wasm_stack"] = engine.max_wasm_stack()
        report["min_stack_size"] = min_stack_size(engine.max_wasm_stack())
    report["after"] = _ending(run(plain, "probe", 10))
    rt.shutdown(10)
    return report


def _run_scenario(name: str, backend: str) -> dict[str, Any]:
    proc = subprocess.run([sys.executable, "-m", "tests.test_lunatic_stack", name, backend],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (f"the child exited {proc.returncode} (-11: SIGSEGV)"
                                  f"\n{proc.stdout}\n{proc.stderr[-3000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout
    report: dict[str, Any] = json.loads(lines[-1])
    assert report["after"] == ["RETURNED", ""], report  # the runtime still works
    return report


# -- the tests ---------------------------------------------------------------------------------


def test_deep_recursion_traps(backend: str) -> None:
    report = _run_scenario("recursion", backend)
    assert report["forever"] == ["FAILED", STACK_MESSAGE], report
    for key in ("forever_calls", "again"):  # twice: nothing was left behind the first time
        ending, message = report[key]
        assert ending == "FAILED" and STACK_MESSAGE in message, report


def test_many_processes_recursing_with_dense_stacks(backend: str) -> None:
    report = _run_scenario("many", backend)
    assert report["forever"] == [["FAILED", STACK_MESSAGE]], report


def test_spawn_at_max_depth_with_a_deep_start_function(backend: str) -> None:
    report = _run_scenario("nested", backend)
    assert report["depth"] > 1000, report
    # the child's start function ran on top of the parent's full wasm stack and returned
    assert report["inherit"] == ["RETURNED", ""], report
    # the bomb's start function trapped: spawn returned an error to the parent at max depth
    assert report["spawn_bomb"] == ["RETURNED", ""], report
    if backend == "wasmtime":  # wasmer bounds wasm by the thread stack alone: no check
        refused = report["refused"]
        assert refused is not None, report
        assert (str(report["max_wasm_stack"]) in refused
                and str(report["min_stack_size"]) in refused)


@needs_wasmtime
def test_runtime_refuses_a_stack_too_small_for_max_wasm_stack() -> None:
    from funk.backends import wasmtime as engine
    from lunatic_api import Runtime
    from lunatic_api.scheduler import ThreadScheduler, max_wasm_stack_for, min_stack_size

    engine.engine()  # settled: its settings are the ones checked
    limit = engine.max_wasm_stack()
    need = min_stack_size(limit)
    small = need - 4096
    with pytest.raises(ValueError) as info:
        Runtime("wasmtime", ThreadScheduler(stack_size=small))
    text = str(info.value)
    for words in (f"stack of {small} bytes", f"max_wasm_stack of {limit} bytes",
                  f"stack_size >= {need}", f"max_wasm_stack <= {max_wasm_stack_for(small)}",
                  "funk.backends.wasmtime.configure", "SIGSEGV"):
        assert words in text, text
    Runtime("wasmtime", ThreadScheduler(stack_size=need)).shutdown()
    if "wasmer" in selected_backends():  # wasm is bounded by the thread stack itself
        Runtime("wasmer", ThreadScheduler(stack_size=small)).shutdown()


@needs_wasmtime
def test_engine_settings_cannot_change_once_it_exists() -> None:
    from funk.backends import wasmtime as engine
    from lunatic_api import Runtime

    engine.engine()
    before = engine.settings()
    engine.configure(**before)  # no change: accepted
    with pytest.raises(RuntimeError, match="engine already exists"):
        engine.configure(max_wasm_stack=engine.max_wasm_stack() - 4096)
    if before.get("memory_init_cow", True):
        with pytest.raises(RuntimeError, match="Runtime.dense: the wasmtime engine already"):
            Runtime.dense("wasmtime")
    for bad, words in (({"no_such_setting": 1}, "no setting"),
                       ({"memory_may_move": True}, "funk needs memory_may_move=False"),
                       ({"max_wasm_stack": 0}, "max_wasm_stack must be"),
                       ({"max_wasm_stack": engine.MAX_WASM_STACK_LIMIT + 1}, "must be"),
                       ({"memory_init_cow": 3}, "expected a bool")):
        with pytest.raises(ValueError, match=words):
            engine.configure(**bad)
    assert engine.settings() == before


@needs_wasmtime
def test_spawn_while_instantiating_goes_to_the_childs_thread(monkeypatch: Any) -> None:
    """On wasmtime a spawner instantiates its child itself, except inside an
    instantiation: then the child's own thread does, so that start functions never
    stack up on one thread (a start function cannot spawn yet: guest memory is not
    linked while it runs; this stands in for it)."""
    from lunatic_api import Ending, Runtime

    rt = Runtime("wasmtime")
    env = rt.environment()
    outer = env.add_module(guest(1), "outer")
    inner = env.add_module(guest(2), "inner")
    assert outer.compiled is not inner.compiled
    seen: dict[str, Any] = {}
    outer_instantiate, inner_instantiate = outer.compiled.instantiate, inner.compiled.instantiate

    def nesting(*args: Any, **kwargs: Any) -> Any:
        seen["outer"] = threading.get_ident()
        seen["child"] = rt.spawn(inner, "child")
        return outer_instantiate(*args, **kwargs)

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.setdefault("inner", []).append(threading.get_ident())
        return inner_instantiate(*args, **kwargs)

    monkeypatch.setattr(outer.compiled, "instantiate", nesting)
    monkeypatch.setattr(inner.compiled, "instantiate", recording)
    try:
        assert rt.spawn(outer, "child").join(10).ending is Ending.RETURNED
        assert seen["child"].join(10).ending is Ending.RETURNED
        assert rt.spawn(inner, "child").join(10).ending is Ending.RETURNED
        here = threading.get_ident()
        assert seen["outer"] == here
        # nested: instantiated in the child's thread; not nested: by the spawner
        assert seen["inner"][0] != here and seen["inner"][1] == here, seen
    finally:
        rt.shutdown()


if __name__ == "__main__":
    print(json.dumps(_scenario(sys.argv[1], sys.argv[2])), flush=True)
