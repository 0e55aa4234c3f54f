"""Plugins seen from Lunatic guests and the ``lunatic`` command (spec sections 5.4, 5.7, 5.8,
7.10, 7.13), on both engines.

Guests (WAT, ``tests/lunatic_support``) make configs with ``add_plugin``,
environments from them, and add modules with ``add_module`` /
``add_this_module``; the plugins (WAT too, ``plugin_wat``) each add one
function and export it, so a ``spawn`` of that export tells whether a
plugin ran on the module, and the child's outcome that the code is the
plugin's.  Covered:

* success: ``add_plugin`` returns 0 and writes a u64 0; the plugin's export
  is in modules added to environments of that config (``add_module`` and
  ``add_this_module``, which starts from the caller's *original* bytes); a
  config's later plugins do not reach environments made before (snapshot);
  environments without plugins are unaffected; plugins run in order, each
  seeing what the earlier ones added;
* failures: a plugin that traps (in wasm, or in a ``lunatic::plugin``
  function, with the text of its last ``lunatic::plugin`` error), that
  leaves an invalid module, that cannot be instantiated, that has no
  memory -- each is the error convention from ``add_module`` naming the
  plugin ("#k", its place in the config) and the cause, and the guest and
  the environment carry on: the failing plugins fail only on a *trigger*
  module (``TRIGGER``), so a ``GOOD`` module added next to the same
  environment works and spawns;
* a plugin spinning forever: in pure wasm, the default fuel budget stops it
  (a failure as above); calling ``lunatic::plugin`` in a loop (its budget
  would last minutes), a kill of the process that called ``add_module`` ends
  it;
* ``add_plugin`` refusals (WASI or other foreign imports, wrong signatures)
  use the error convention and leave the config unchanged.  (Bytes that are
  not wasm and the traps of ``add_plugin`` are in ``test_lunatic_process``.)
* limits hold for plugin-added code: fuel metering covers it;
* the ``lunatic`` command: ``-P/--plugin`` repeated, in order; unreadable,
  non-plugin and failing plugins are usage errors (status 2, one line naming
  the file).  (The example ``plugin_demo`` and the ``add_check`` plugin are
  in ``test_examples``.)
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

import funk
from codegen.artifacts import ARTIFACTS
from codegen.wat import emit_wat
from funk.plugins import DEFAULT_FUEL, HOOK, ModuleEditor
from lunatic_api import Ending, cli
from lunatic_api.environment import LunaticModule
from lunatic_api.limits import OUT_OF_FUEL
from tests.lunatic_support import (
    I32,
    Lab,
    Strings,
    assert_returned,
    assert_trap,
    lab_fixture,  # noqa: F401
    spawn_params,
    wasm_of,
)

OUT = 0x800
"""Out-pointer of the calls under test."""
PARAMS = 0x900
"""Spawn parameter records ``(i32 42)`` and, 17 bytes on, ``(i32 41)``."""
DATA = 0x1000
"""Where the guests' strings and embedded modules and plugins start."""

# --------------------------------------------------------------------------- plugins

PLUGIN_IMPORTS = emit_wat(funk.functions_of(ModuleEditor)).strip()[len("(module"):-1].strip()
"""Import lines of the three ``lunatic::plugin`` functions (ids ``$lunatic::plugin.NAME``),
generated from the host class, so their types are the runtime's."""

TYPE_AT, FUNC_AT = 0, 8  # the plugin's out-pointers
PARAMS_AT, BODY_AT, NAME_AT, BAD_AT = 16, 64, 256, 512  # the plugin's data


def plugin_wat(export: str, body: bytes = b"\x0b", params: bytes = b"", *, on_trigger: str = "",
               head: str = "", memory: bool = True, extra: str = "") -> str:
    """A plugin adding ``(func (export EXPORT) (param PARAMS...) BODY)`` to every module.

    Its hook appends the type first; the type's index is the number of types
    the module had (``add_function_type`` appends), in local ``$t``.
    ``on_trigger`` runs when ``$t >= 4``: on ``TRIGGER`` (5 types) but not on
    ``GOOD`` (1 type) even with a plugin in front, so a plugin with a failing
    ``on_trigger`` fails on ``TRIGGER`` only.  It may use ``BAD_AT`` for its
    own data (``extra``, WAT fields).  ``head`` names the module
    (``$name``: a name section, which becomes the plugin's name).
    """
    data = [(PARAMS_AT, params), (BODY_AT, body), (NAME_AT, export.encode())]
    memory_field = '(memory (export "memory") 1)' if memory else "(memory 1)"
    return f"""(module {head}
  {PLUGIN_IMPORTS}
  {memory_field}
  {" ".join(f'(data (i32.const {at}) "{_escape(blob)}")' for at, blob in data)}
  {extra}
  (func (export "{HOOK}") (local $t i32)
    (if (call $lunatic::plugin.add_function_type (i32.const {PARAMS_AT}) (i32.const {len(params)})
          (i32.const 0) (i32.const 0) (i32.const {TYPE_AT}))
      (then unreachable))
    (local.set $t (i32.load (i32.const {TYPE_AT})))
    (if (i32.ge_u (local.get $t) (i32.const 4)) (then {on_trigger}))
    (if (call $lunatic::plugin.add_function (local.get $t) (i32.const 0) (i32.const 0)
          (i32.const {BODY_AT}) (i32.const {len(body)}) (i32.const {FUNC_AT}))
      (then unreachable))
    (call $lunatic::plugin.add_function_export (i32.const {NAME_AT}) (i32.const {len(export)})
      (i32.load (i32.const {FUNC_AT})))))
"""


def _escape(blob: bytes) -> str:
    return "".join(f"\\{b:02x}" for b in blob)


def plugin(export: str, body: bytes = b"\x0b", params: bytes = b"", *, on_trigger: str = "",
           head: str = "", memory: bool = True, extra: str = "") -> bytes:
    """``plugin_wat(...)`` compiled."""
    return wasm_of(plugin_wat(export, body, params, on_trigger=on_trigger, head=head,
                              memory=memory, extra=extra))


CHECK_BODY = bytes([0x20, 0x00, 0x41, 42, 0x47, 0x04, 0x40, 0x00, 0x0B, 0x0B])
"""``local.get 0; i32.const 42; i32.ne; if unreachable end; end``: traps unless the i32 param
is 42 (what ``examples/plugins/add_check.c`` adds)."""
SLOW_LOOP = ("(loop $forever (drop (call $lunatic::plugin.add_function_type (i32.const 0)"
             " (i32.const 0) (i32.const 0) (i32.const 0) (i32.const 0))) (br $forever))")
"""A plugin's endless loop of host calls: about 1 ms of wall time per 1,000 fuel, so the
default budget would last about 1,000 s."""
LOOP_BODY = bytes([0x03, 0x40, 0x0C, 0x00, 0x0B, 0x0B])
"""``loop br 0 end end``: spins forever."""

PLUGIN_A = plugin("from_a", CHECK_BODY, b"\x7f")
"""Adds ``from_a(i32)``, trapping unless its param is 42."""
PLUGIN_B = plugin("from_b")
"""Adds ``from_b()``, returning at once."""

GOOD = wasm_of('(module (memory (export "memory") 1) (func (export "f")))')
"""A module with one type: failing plugins below work on it."""
TRIGGER = wasm_of('(module (memory (export "memory") 1) (type (func (param i32)))'
                  ' (type (func (param i64))) (type (func (param f32)))'
                  ' (type (func (param f64))) (func (export "f")))')
"""A module with five types: the ``on_trigger`` code of a plugin runs on it."""

# ``on_trigger`` failures: the plugin's text (with `extra`), the words of the error
FAILURES: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "unreachable": ("unreachable", "", (f"{HOOK} trapped", "unreachable")),
    # index 1000 is out of range in any of these modules: add_function_export traps
    "host_trap": ("(call $lunatic::plugin.add_function_export (i32.const 0) (i32.const 1)"
                  " (i32.const 1000))", "", (f"{HOOK} trapped", "out of range")),
    # a local record of type byte 0x40: add_function returns 1; the plugin traps, and the
    # message quotes its last lunatic::plugin error
    "unknown_type_byte": (f"""(if (call $lunatic::plugin.add_function (local.get $t)
                               (i32.const {BAD_AT}) (i32.const 5) (i32.const {BODY_AT})
                               (i32.const 1) (i32.const {FUNC_AT}))
                             (then unreachable))""",
                          f'(data (i32.const {BAD_AT}) "\\01\\00\\00\\00\\40")',
                          (f"{HOOK} trapped", "unknown value type byte 0x40")),
    # a range outside the plugin's memory: add_function_type traps
    "bounds": ("(drop (call $lunatic::plugin.add_function_type (i32.const 65535) (i32.const 2)"
               " (i32.const 0) (i32.const 0) (i32.const 0)))", "",
               (f"{HOOK} trapped", "outside guest memory")),
    # a pure-wasm loop: stopped by the default fuel budget (about 0.5 s of wasm)
    "loop": ("(loop $forever (br $forever))", "",
             (f"{HOOK} trapped", f"used all its fuel ({DEFAULT_FUEL:,})")),
    # an extra function `() -> ()` whose body leaves an i32 on the stack: ill-typed
    "invalid_body": (f"""(drop (call $lunatic::plugin.add_function (local.get $t)
                          (i32.const 0) (i32.const 0) (i32.const {BAD_AT}) (i32.const 3)
                          (i32.const {FUNC_AT})))""",
                     f'(data (i32.const {BAD_AT}) "\\41\\01\\0b")',
                     ("the module it produced is invalid",)),
}


# --------------------------------------------------------------------------- guests

HELPERS = f"""
(func $out (result i64) (i64.load (i32.const {OUT})))
(func $config (param $fuel i64) (result i64) (local $c i64)
  ;; 16 MiB of memory, every namespace (children of the tests report with $flush)
  (local.set $c (call $lunatic::process.create_config (i64.const 0x1000000) (local.get $fuel)))
  (call $lunatic::process.allow_namespace (local.get $c) (i32.const 0) (i32.const 0))
  (local.get $c))
(func $plugin (param $c i64) (param $ptr i32) (param $len i32)
  ;; add_plugin that must work
  (if (call $lunatic::process.add_plugin (local.get $c) (local.get $ptr) (local.get $len)
        (i32.const {OUT}))
    (then unreachable)))
(func $new_env (param $c i64) (result i64)
  (if (call $lunatic::process.create_environment (local.get $c) (i32.const {OUT}))
    (then unreachable))
  (call $out))
(func $add (param $e i64) (param $ptr i32) (param $len i32) (result i64)
  ;; add_module that must work
  (if (call $lunatic::process.add_module (local.get $e) (local.get $ptr) (local.get $len)
        (i32.const {OUT}))
    (then unreachable))
  (call $out))
(func $try (param $m i64) (param $name i32) (param $len i32) (result i32)
  ;; spawn NAME() from module $m, unlinked: its return code (the child handle at OUT)
  (call $lunatic::process.spawn (i64.const 0) (local.get $m) (local.get $name) (local.get $len)
    (i32.const 0) (i32.const 0) (i32.const {OUT})))
(func $try_with (param $m i64) (param $name i32) (param $len i32) (param $p i32) (result i32)
  ;; spawn NAME(i32) with the params record at $p
  (call $lunatic::process.spawn (i64.const 0) (local.get $m) (local.get $name) (local.get $len)
    (local.get $p) (i32.const 17) (i32.const {OUT})))
"""


def guest(lab: Lab, body: str, strings: Strings) -> LunaticModule:
    """A guest with the helpers, ``body``, the data of ``strings`` and the spawn params."""
    params = spawn_params((I32, 42), (I32, 41))
    return lab.module(HELPERS, body, data=[*strings.data, (PARAMS, params)])


# --------------------------------------------------------------------------- success


def test_add_module_gets_the_plugins_changes(lab: Lab) -> None:
    """``add_plugin`` returns 0 and writes a u64 0; a module added to an environment of that
    config has the plugin's function, whose code is the plugin's (42 returns, 41 traps);
    the module keeps its own exports; ``this_env`` (no plugins) adds modules unchanged."""
    s = Strings(DATA)
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $m i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (i64.store (i32.const {OUT}) (i64.const -1))
        (call $rec32 (call $lunatic::process.add_plugin (local.get $c) {s.arg(PLUGIN_A)}
          (i32.const {OUT})))
        (call $rec (call $out))
        (local.set $m (call $add (call $new_env (local.get $c)) {s.arg(GOOD)}))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")} (i32.const {PARAMS})))
        (call $export_handle (call $out))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")}
          (i32.const {PARAMS + 17})))
        (call $export_handle (call $out))
        (call $rec32 (call $try (local.get $m) {s.arg("f")}))
        ;; no plugins in this environment
        (local.set $m (call $add (call $lunatic::process.this_env) {s.arg(GOOD)}))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")} (i32.const {PARAMS})))
        (call $rec_error (call $out))
        (call $flush))""", s))
    assert_returned(run)
    *codes, text = run.records
    assert codes == [0, 0, 0, 0, 0, 1]
    assert isinstance(text, bytes) and b"from_a" in text, text
    passed, failed = lab.wait_handles(2)
    assert_returned(lab.join(passed))
    assert_trap(lab.join(failed), None, "unreachable")


THIS_STEP2 = """
  (func (export "step2") (local $c i64) (local $m i64)
    (call $setup)
    ;; this process runs the module env A's plugin rewrote: from_b is not there yet
    (call $rec32 (call $lunatic::process.inherit_spawn (i64.const 0) NAME_A
      (i32.const PARAMS) (i32.const 17) (i32.const OUT)))
    (call $rec32 (call $lunatic::process.inherit_spawn (i64.const 0) NAME_B
      (i32.const 0) (i32.const 0) (i32.const OUT)))
    ;; env B has plugin B only: its copy of this module has from_b, not from_a
    (local.set $c (call $config (i64.const 0)))
    (call $plugin (local.get $c) PLUGIN_B)
    (call $rec32 (call $lunatic::process.add_this_module (call $new_env (local.get $c))
      (i32.const OUT)))
    (local.set $m (call $out))
    (call $rec32 (call $try_with (local.get $m) NAME_A (i32.const PARAMS)))
    (call $rec32 (call $try (local.get $m) NAME_B))
    (call $flush))
"""


def test_add_this_module_starts_from_the_original_bytes(lab: Lab) -> None:
    """``add_this_module`` applies the target environment's plugins to the caller's original
    bytes: a process of a module rewritten by env A's plugin adds itself to env B (another
    plugin) and gets B's changes only."""
    s = Strings(DATA)
    step2 = THIS_STEP2
    for key, value in {"NAME_A": s.arg("from_a"), "NAME_B": s.arg("from_b"),
                       "PLUGIN_B": s.arg(PLUGIN_B), "PARAMS": str(PARAMS),
                       "OUT": str(OUT)}.items():
        step2 = step2.replace(key, value)
    run = lab.run(guest(lab, step2 + f"""
      (func (export "main") (local $c i64) (local $m i64) (local $child i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (call $plugin (local.get $c) {s.arg(PLUGIN_A)})
        (call $rec32 (call $lunatic::process.add_this_module (call $new_env (local.get $c))
          (i32.const {OUT})))
        (local.set $m (call $out))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")} (i32.const {PARAMS})))
        (call $export_handle (call $out))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")}
          (i32.const {PARAMS + 17})))
        (call $export_handle (call $out))
        (call $rec32 (call $try (local.get $m) {s.arg("from_b")}))
        (call $rec32 (call $try (local.get $m) {s.arg("step2")}))
        (local.set $child (call $out))
        (call $give_collector (local.get $child))
        (call $export_handle (local.get $child))
        (call $flush))""", s))
    assert_returned(run)
    # this module imports many functions: the plugin's export names its own function
    # (the index add_function wrote counts imports), so 42 returns and 41 traps
    passed, failed, step2_process = lab.wait_handles(3)
    assert_returned(lab.join(passed))
    assert_trap(lab.join(failed), None, "unreachable")
    assert_returned(lab.join(step2_process))
    first, second = lab.wait_reports(2)
    if first[1] != 0:  # the two reports may arrive in either order
        first, second = second, first
    assert first == [0, 0, 0, 1, 0]
    assert second == [0, 1, 0, 1, 0]


def test_config_snapshot_and_plugin_order(lab: Lab) -> None:
    """Plugins added to a config after ``create_environment`` do not reach that environment;
    a later environment gets both, in order: the second plugin sees the first one's export
    (both export ``dup``: the second traps, and the error calls it by the module name of its
    name section rather than by its place)."""
    s = Strings(DATA)
    dup, dup_named = plugin("dup"), plugin("dup", head="$second")
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $e1 i64) (local $e2 i64) (local $m i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (call $plugin (local.get $c) {s.arg(PLUGIN_A)})
        (local.set $e1 (call $new_env (local.get $c)))
        (call $plugin (local.get $c) {s.arg(PLUGIN_B)})
        (local.set $e2 (call $new_env (local.get $c)))
        (local.set $m (call $add (local.get $e1) {s.arg(GOOD)}))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")} (i32.const {PARAMS})))
        (call $rec32 (call $try (local.get $m) {s.arg("from_b")}))
        (local.set $m (call $add (local.get $e2) {s.arg(GOOD)}))
        (call $rec32 (call $try_with (local.get $m) {s.arg("from_a")} (i32.const {PARAMS})))
        (call $rec32 (call $try (local.get $m) {s.arg("from_b")}))
        ;; a chain of two plugins exporting the same name
        (local.set $c (call $config (i64.const 0)))
        (call $plugin (local.get $c) {s.arg(dup)})
        (call $plugin (local.get $c) {s.arg(dup_named)})
        (call $rec32 (call $lunatic::process.add_module (call $new_env (local.get $c))
          {s.arg(GOOD)} (i32.const {OUT})))
        (call $rec_error (call $out))
        (call $flush))""", s))
    assert_returned(run)
    assert run.records[:5] == [0, 1, 0, 0, 1]
    text = run.records[5]
    assert isinstance(text, bytes)
    assert text.startswith(b"plugin second (2 of 2): "), text
    assert b"'dup' already used" in text, text


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failing_plugin_is_an_add_module_error_and_the_environment_stays_usable(
        lab: Lab, failure: str) -> None:
    """A plugin (the second of two) failing on ``TRIGGER``: ``add_module`` returns 1 with an
    error naming the plugin ``#2`` and the cause; the guest goes on, and a ``GOOD`` module
    added next to the same environment has both plugins' exports and spawns."""
    on_trigger, extra, words = FAILURES[failure]
    failing = plugin("from_f", on_trigger=on_trigger, extra=extra)
    s = Strings(DATA)
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $e i64) (local $m i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (call $plugin (local.get $c) {s.arg(PLUGIN_B)})
        (call $plugin (local.get $c) {s.arg(failing)})
        (local.set $e (call $new_env (local.get $c)))
        (call $rec32 (call $lunatic::process.add_module (local.get $e) {s.arg(TRIGGER)}
          (i32.const {OUT})))
        (call $rec_error (call $out))
        (local.set $m (call $add (local.get $e) {s.arg(GOOD)}))
        (call $rec32 (call $try (local.get $m) {s.arg("from_b")}))
        (call $rec32 (call $try (local.get $m) {s.arg("from_f")}))
        (call $export_handle (call $out))
        (call $flush))""", s))
    assert_returned(run)
    code, text, *spawns = run.records
    assert (code, spawns) == (1, [0, 0])
    assert isinstance(text, bytes)
    message = text.decode()
    assert message.startswith("plugin #2 (2 of 2): "), message
    for word in words:
        assert word in message, message
    (child,) = lab.wait_handles(1)
    assert_returned(lab.join(child))


@pytest.mark.parametrize("case, words", [
    ("start_trap", ("instantiation trapped", "unreachable")),
    ("no_memory", (f"{HOOK} trapped", "does not export a memory")),
])
def test_a_plugin_failing_on_every_module(lab: Lab, case: str, words: tuple[str, ...]) -> None:
    """A plugin that cannot be instantiated (its start function traps) or exports no memory
    fails every ``add_module`` and ``add_this_module`` with the error convention; the guest
    goes on, and other environments are unaffected."""
    if case == "start_trap":
        bad = plugin("x", extra="(func $boom unreachable) (start $boom)")
    else:
        bad = plugin("x", memory=False)
    s = Strings(DATA)
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $e i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (call $plugin (local.get $c) {s.arg(bad)})
        (local.set $e (call $new_env (local.get $c)))
        (call $rec32 (call $lunatic::process.add_module (local.get $e) {s.arg(GOOD)}
          (i32.const {OUT})))
        (call $rec_error (call $out))
        (call $rec32 (call $lunatic::process.add_this_module (local.get $e) (i32.const {OUT})))
        (call $rec_error (call $out))
        (call $rec32 (call $try (call $add (call $lunatic::process.this_env) {s.arg(GOOD)})
          {s.arg("f")}))
        (call $flush))""", s))
    assert_returned(run)
    first, text1, second, text2, spawned = run.records
    assert (first, second, spawned) == (1, 1, 0)
    for text in (text1, text2):
        assert isinstance(text, bytes)
        message = text.decode()
        assert message.startswith("plugin #1 (1 of 1): "), message
        for word in words:
            assert word in message, message


def test_killing_the_process_stops_a_spinning_plugin(lab: Lab) -> None:
    """A plugin looping forever on calls to ``lunatic::plugin`` (about 1,000 s before its fuel
    budget is used up) is stopped by a kill of the process calling ``add_module``: the
    process ends killed, never seeing a result."""
    s = Strings(DATA)
    spinner = plugin("x", on_trigger=SLOW_LOOP)
    process = lab.spawn(guest(lab, f"""
      (func (export "main") (local $c i64) (local $e i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (call $plugin (local.get $c) {s.arg(spinner)})
        (local.set $e (call $new_env (local.get $c)))
        (call $rec (i64.const 1))
        (call $flush)
        (call $rec32 (call $lunatic::process.add_module (local.get $e) {s.arg(TRIGGER)}
          (i32.const {OUT})))
        (call $flush))""", s))
    lab.wait_reports(1)
    # Not needed for the result: makes it likely that the kill lands while the plugin
    # spins rather than before it starts.  Without the kill reaching the plugin, the join
    # below would give up (and fail the test) long before the plugin ran out of fuel.
    time.sleep(0.1)
    lab.runtime.kill(process)
    outcome = lab.join(process)
    assert outcome.ending is Ending.KILLED, outcome
    lab.collect()
    assert lab.reports == [[1]]


@pytest.mark.parametrize("imports, words", [
    ('(import "wasi_snapshot_preview1" "proc_exit" (func (param i32)))',
     ("wasi_snapshot_preview1::proc_exit", "lunatic::plugin")),
    ('(import "lunatic::plugin" "take_module" (func))', ("lunatic::plugin::take_module",)),
    ('(import "lunatic::plugin" "add_function_export" (func (param i32 i32)))',
     ("add_function_export",)),
    ('(import "lunatic::process" "this" (func (result i64)))', ("lunatic::process::this",)),
])
def test_add_plugin_refuses_foreign_imports(lab: Lab, imports: str,
                                             words: tuple[str, ...]) -> None:
    """A plugin importing anything but the ``lunatic::plugin`` functions with their types
    (WASI, the old ``take_module`` API, a wrong signature, the guest ABI) is refused by
    ``add_plugin`` with the error convention; the config is unchanged (an environment
    made from it adds modules as they are)."""
    bad = wasm_of(f'(module {imports} (memory (export "memory") 1)'
                  f' (func (export "{HOOK}")))')
    s = Strings(DATA)
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $m i64)
        (call $setup)
        (local.set $c (call $config (i64.const 0)))
        (call $rec32 (call $lunatic::process.add_plugin (local.get $c) {s.arg(bad)}
          (i32.const {OUT})))
        (call $rec_error (call $out))
        (call $plugin (local.get $c) {s.arg(PLUGIN_B)})
        (local.set $m (call $add (call $new_env (local.get $c)) {s.arg(GOOD)}))
        (call $rec32 (call $try (local.get $m) {s.arg("from_b")}))
        (call $flush))""", s))
    assert_returned(run)
    code, text, spawned = run.records
    assert (code, spawned) == (1, 0)
    assert isinstance(text, bytes)
    for word in words:
        assert word in text.decode(), text


# --------------------------------------------------------------------------- limits


def test_fuel_metering_covers_plugin_added_functions(lab: Lab) -> None:
    """A function a plugin added is metered like the module's own: spawned in an
    environment with ``max_fuel`` 1, an infinite loop fails with "all fuel consumed"."""
    s = Strings(DATA)
    spin = plugin("spin", LOOP_BODY)
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $m i64)
        (call $setup)
        (local.set $c (call $config (i64.const 1)))
        (call $plugin (local.get $c) {s.arg(spin)})
        (local.set $m (call $add (call $new_env (local.get $c)) {s.arg(GOOD)}))
        (call $rec32 (call $try (local.get $m) {s.arg("spin")}))
        (call $export_handle (call $out))
        (call $flush))""", s))
    assert_returned(run)
    assert run.records == [0]
    (child,) = lab.wait_handles(1)
    assert_trap(lab.join(child), None, OUT_OF_FUEL)


# --------------------------------------------------------------------------- the command

MAIN_WAT = """(module
  (import "lunatic::process" "inherit_spawn"
    (func $spawn (param i64 i32 i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "from_a") (data (i32.const 32) "from_b")
  (func $try (param $name i32) (result i32)
    (call $spawn (i64.const 0) (local.get $name) (i32.const 6) (i32.const 0) (i32.const 0)
      (i32.const 64)))
  ;; exit status: 10 if from_a cannot be spawned, + 1 if from_b cannot
  (func (export "_start")
    (call $exit (i32.add (i32.mul (call $try (i32.const 16)) (i32.const 10))
                         (call $try (i32.const 32))))))
"""
"""A ``lunatic`` program telling with its exit status which plugin exports it has (four
types: ``on_trigger`` code runs on it)."""


@pytest.fixture(name="files")
def files_fixture(tmp_path: Path) -> dict[str, str]:
    """The program and plugins as files: ``main``, ``a`` (exports ``from_a``), ``b``
    (``from_b``), ``dup1``/``dup2`` (both export ``dup``), ``text`` (not wasm)."""
    blobs = {"main.wasm": wasm_of(MAIN_WAT), "a.wasm": plugin("from_a"),
             "b.wasm": PLUGIN_B, "dup1.wasm": plugin("dup"), "dup2.wasm": plugin("dup"),
             "text.wasm": b"just some text\n"}
    paths = {}
    for name, blob in blobs.items():
        path = tmp_path / name
        path.write_bytes(blob)
        paths[name.removesuffix(".wasm")] = str(path)
    return paths


@pytest.mark.parametrize("plugins, status", [
    ([], 11), (["a"], 1), (["b"], 10), (["a", "b"], 0), (["b", "a"], 0),
])
def test_command_plugins_rewrite_the_main_module(backend: str, files: dict[str, str],
                                                 capfd: pytest.CaptureFixture[str],
                                                 plugins: list[str], status: int) -> None:
    """``-P``/``--plugin`` (repeatable) apply to the main module before it runs."""
    options = [word for k, name in enumerate(plugins)
               for word in ("-P" if k % 2 == 0 else "--plugin", files[name])]
    assert cli.main(["--backend", backend, *options, files["main"]]) == status
    assert capfd.readouterr() == ("", "")


@pytest.mark.parametrize("spelling", [["-P", "A"], ["--plugin", "A"], ["-PA"], ["--plugin=A"],
                                      ["-qP", "A"], ["-qPA"]])
def test_command_plugin_option_spellings(files: dict[str, str], spelling: list[str]) -> None:
    """argparse's spellings of ``-P``, also in a cluster of short options: the plugin is
    never taken for FILE, and words after FILE stay the guest's."""
    argv = [word.replace("A", files["a"]) for word in spelling]
    config = cli.parse_config([*argv, files["main"], "-P", files["b"]])
    assert (config.plugins, config.file, config.args) == ((files["a"],), files["main"],
                                                          ("-P", files["b"]))


def usage_error(capfd: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the command in-process; assert a usage error; its one line."""
    assert cli.main(argv) == cli.EXIT_USAGE
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("lunatic: error: "), err
    return err


def test_command_plugins_run_in_order(backend: str, files: dict[str, str],
                                      capfd: pytest.CaptureFixture[str]) -> None:
    """Two plugins exporting the same name: the second on the command line fails (it sees
    the first one's export), and the error names it."""
    for first, second in (("dup1", "dup2"), ("dup2", "dup1")):
        err = usage_error(capfd, ["--backend", backend, "-P", files[first], "-P", files[second],
                                  files["main"]])
        assert f"plugin {second}.wasm (2 of 2)" in err and "already used" in err, err


@pytest.mark.parametrize("which, words", [
    ("missing", ("cannot read plugin", "missing.wasm", "No such file")),
    ("text", ("text.wasm", "not a wasm module")),
    ("main", ("main.wasm", "lunatic::process::inherit_spawn")),  # a program, not a plugin
])
def test_command_refuses_a_bad_plugin_file(backend: str, files: dict[str, str], tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str], which: str,
                                           words: tuple[str, ...]) -> None:
    """A plugin file that cannot be read or is not a plugin: status 2, one line naming it."""
    path = str(tmp_path / "missing.wasm") if which == "missing" else files[which]
    err = usage_error(capfd, ["--backend", backend, "-P", files["a"], "--plugin", path,
                              files["main"]])
    for word in words:
        assert word in err, err


def test_command_reports_a_plugin_failing_on_the_main_module(
        backend: str, files: dict[str, str], tmp_path: Path,
        capfd: pytest.CaptureFixture[str]) -> None:
    """A plugin that traps on the main module: status 2, one line naming the program and
    the plugin's file."""
    trapping = tmp_path / "trapping.wasm"
    trapping.write_bytes(plugin("x", on_trigger="unreachable"))
    err = usage_error(capfd, ["--backend", backend, "-P", str(trapping), files["main"]])
    assert err.startswith(f"lunatic: error: {files['main']}: plugin trapping.wasm (1 of 1): "
                          f"{HOOK} trapped"), err
    assert "unreachable" in err, err


def test_plugin_header_is_a_checked_artifact() -> None:
    """``examples/include/lunatic_plugin.h`` is generated from ``ModuleEditor`` and so kept
    up to date by ``python -m codegen --check`` (run by ``test_codegen``)."""
    found = [a for a in ARTIFACTS() if a.path == "examples/include/lunatic_plugin.h"]
    assert [a.classes for a in found] == [("funk.plugins:ModuleEditor",)]
