"""ABI conformance of ``lunatic::process`` (spec sections 5.1-5.20, 7.3-7.7, 7.9), both engines.

Configs (ids, drop, ``allow_namespace`` with its plain-prefix semantics and
traps), environments (snapshot of the config, the config stays, drop, modules
keep them alive), modules (``add_module`` of valid/invalid/unlinkable wasm,
``add_this_module``, ``drop_module``), spawning (``spawn`` and
``inherit_spawn``: the 17-byte params records, i32/i64 values, bad type codes
trap, trailing bytes ignored, v128 and mismatched params fail the child after
``spawn`` returned 0, missing export / unknown import / trapping start
function use the error convention, traps on bad ids, names and pointers, and
the link semantics with tags in both directions), process handles
(``drop_process``, ``clone_process``, ``this``, ``id`` as a little-endian
UUID), ``sleep_ms``, ``die_when_link_dies``, ``this_env``, ``link``/``unlink``
and ``add_plugin`` (0 and a u64 0, the error convention for bytes that are
not wasm, its traps; what plugins do is in ``test_lunatic_plugins.py``).
The registry functions are in ``test_lunatic_registry.py``.

Children spawned by a guest are given to Python with ``$export_handle`` so
their outcomes can be checked; ``$give_collector`` lets a child report too.
"""

from __future__ import annotations

import uuid

import pytest

from lunatic_api import Ending, Process, SignalMessage
from lunatic_api.environment import LunaticModule
from lunatic_api.native import NativeProcess
from lunatic_api.process import TIMEOUT
from tests.lunatic_support import (
    I32,
    I64,
    V128,
    Lab,
    Record,
    Strings,
    assert_returned,
    assert_trap,
    guest_wat,
    lab_fixture,  # noqa: F401
    spawn_params,
    wasm_of,
)

OUT = 0x800
"""Out-pointer of the calls under test."""
PARAMS = 0x900
"""Where spawn params records are placed."""
EMBED = 0x1000
"""Where embedded wasm modules are placed."""

HELPERS = f"""
(func $out (result i64) (i64.load (i32.const {OUT})))
(func $config (result i64)  ;; 16 MiB of memory (0 would allow none), no fuel limit
  (call $lunatic::process.create_config (i64.const 0x1000000) (i64.const 0)))
(func $new_env (param $cfg i64) (result i64)
  (if (call $lunatic::process.create_environment (local.get $cfg) (i32.const {OUT}))
    (then unreachable))
  (call $out))
(func $this_module_in (param $env i64) (result i64)
  (if (call $lunatic::process.add_this_module (local.get $env) (i32.const {OUT}))
    (then unreachable))
  (call $out))
(func $spawn_in (param $link i64) (param $module i64) (param $name i32) (param $len i32)
                (result i64)
  (if (call $lunatic::process.spawn (local.get $link) (local.get $module) (local.get $name)
        (local.get $len) (i32.const 0) (i32.const 0) (i32.const {OUT}))
    (then unreachable))
  (call $out))
(func $wait_go
  ;; wait for Python's "go" (tag 99)
  (if (call $lunatic::message.receive (i64.const 99) (i32.const 0)) (then unreachable)))
(func (export "idle")
  ;; a child that waits forever (until killed)
  (drop (call $lunatic::message.receive (i64.const 12345) (i32.const 0))))
(func (export "crash") unreachable)
(func (export "done"))
"""
"""WAT helpers of these tests, and three child entry points: ``idle``, ``crash``, ``done``."""


def guest(lab: Lab, body: str, strings: Strings | None = None,
          extra: list[tuple[int, bytes]] | None = None) -> LunaticModule:
    """A module with the helpers, ``body`` and the data of ``strings`` (plus ``extra``)."""
    data = (strings.data if strings else []) + (extra or [])
    return lab.module(HELPERS, body, data=data)


def failing_peer(proc: NativeProcess) -> None:
    """A native process that fails on its first message."""
    proc.receive()
    raise RuntimeError("the peer fails on purpose")


# ---------------------------------------------------------------------------
# configs


def test_create_config_ids_and_drop_config(lab: Lab) -> None:
    """Config ids count from 0 and are not reused; a second drop traps."""
    run = lab.run(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $rec (call $config)) (call $rec (call $config)) (call $rec (call $config))
        (call $lunatic::process.drop_config (i64.const 1))
        (call $rec (call $config))
        (call $flush)
        (call $lunatic::process.drop_config (i64.const 1)))"""))
    assert_trap(run, "lunatic::process.drop_config", "unknown config handle 1")
    assert run.records == [0, 1, 2, 3]


@pytest.mark.parametrize("case, reason", [
    ("unknown", "unknown config handle 5"),
    ("utf8", "utf-8"),
    ("bounds", "outside guest memory"),
])
def test_allow_namespace_traps(lab: Lab, case: str, reason: str) -> None:
    """An unknown config, a string that is not UTF-8 or out of bounds traps."""
    args = {"unknown": "(i64.const 5) (i32.const 0) (i32.const 1)",
            "utf8": "(call $config) (i32.const 0) (i32.const 3)",
            "bounds": "(call $config) (i32.const 65534) (i32.const 3)"}[case]
    run = lab.run(guest(lab, f"""
      (func (export "main") (call $lunatic::process.allow_namespace {args}))""",
                        extra=[(0, b"a\xff\xfe")]), setup=False)
    assert_trap(run, "lunatic::process.allow_namespace", reason)


PROBES = {
    "this": "(drop (call $lunatic::process.this))",
    "this_env": "(drop (call $lunatic::process.this_env))",
    "create_data": "(call $lunatic::message.create_data (i64.const 0) (i64.const 0))",
    "sched_yield": "(drop (call $wasi_snapshot_preview1.sched_yield))",
    "environ_sizes_get": "(drop (call $wasi_snapshot_preview1.environ_sizes_get"
                         " (i32.const 0) (i32.const 4)))",
}
"""Child entry points calling one host function each (``probe_<name>``)."""

PROBE_FUNCTIONS = {
    "this": "lunatic::process.this",
    "this_env": "lunatic::process.this_env",
    "create_data": "lunatic::message.create_data",
    "sched_yield": "wasi_snapshot_preview1.sched_yield",
    "environ_sizes_get": "wasi_snapshot_preview1.environ_sizes_get",
}


def probe_wat() -> str:
    """The ``probe_*`` entry points."""
    return "\n".join(f'(func (export "probe_{name}") {code})' for name, code in PROBES.items())


def spawn_probes(strings: Strings, env: str) -> str:
    """Guest code: spawn every probe from ``$this_module_in(env)`` and export the handles."""
    lines = [f"(local.set $m (call $this_module_in {env}))"]
    for name in PROBES:
        lines.append(f"(call $export_handle (call $spawn_in (i64.const 0) (local.get $m)"
                     f" {strings.arg('probe_' + name)}))")
    return "\n".join(lines)


def check_probes(lab: Lab, handles: list[Process], allowed: set[str]) -> None:
    """Each probe returned if its function is allowed, else trapped in its stub."""
    assert len(handles) == len(PROBES)
    for name, child in zip(PROBES, handles):
        outcome = lab.join(child)
        if name in allowed:
            assert outcome.ending is Ending.RETURNED, (name, outcome)
        else:
            assert_trap(outcome, PROBE_FUNCTIONS[name], "not allowed in this environment")


@pytest.mark.parametrize("prefixes, allowed", [
    ([], set()),
    (["lunatic::"], {"this", "this_env", "create_data"}),
    (["lunatic::proc"], {"this", "this_env"}),
    (["lunatic::process::this"], {"this", "this_env"}),
    (["lunatic::process::this_"], {"this_env"}),
    (["lunatic::message::", "lunatic::message::"], {"create_data"}),
    (["wasi_snapshot_preview1::"], {"sched_yield", "environ_sizes_get"}),
    (["wasi"], {"sched_yield", "environ_sizes_get"}),
    ([""], set(PROBES)),
    (["lunatic::process::this", "wasi_snapshot_preview1::sched"], {"this", "this_env",
                                                                   "sched_yield"}),
    (["lunatic", "process::"], {"this", "this_env", "create_data"}),
])
def test_allow_namespace_is_a_plain_string_prefix(lab: Lab, prefixes: list[str],
                                                  allowed: set[str]) -> None:
    """A function is real if some allowed prefix is a string prefix of ``ns::name``
    (not aware of ``::`` segments); the others are stubs that trap only when called."""
    strings = Strings()
    allows = "\n".join(f"(call $lunatic::process.allow_namespace (local.get $c) {strings.arg(p)})"
                       for p in prefixes)
    run = lab.run(guest(lab, probe_wat() + f"""
      (func (export "main") (local $c i64) (local $m i64)
        (call $setup)
        (local.set $c (call $config))
        {allows}
        {spawn_probes(strings, "(call $new_env (local.get $c))")})""", strings))
    assert_returned(run)
    check_probes(lab, lab.wait_handles(len(PROBES)), allowed)


# ---------------------------------------------------------------------------
# environments


def test_create_environment_snapshots_the_config_which_stays(lab: Lab) -> None:
    """The environment copies the config: later ``allow_namespace`` calls do not reach it;
    the config stays in the table (a later environment sees the change, ``drop_config``
    works)."""
    strings = Strings()
    run = lab.run(guest(lab, probe_wat() + f"""
      (func (export "main") (local $c i64) (local $m i64) (local $e1 i64) (local $e2 i64)
        (call $setup)
        (local.set $c (call $config))
        (call $lunatic::process.allow_namespace (local.get $c) {strings.arg("lunatic::process::")})
        (call $rec32 (call $lunatic::process.create_environment (local.get $c) (i32.const {OUT})))
        (local.set $e1 (call $out))
        (call $lunatic::process.allow_namespace (local.get $c) {strings.arg("lunatic::message::")})
        (local.set $e2 (call $new_env (local.get $c)))
        (call $lunatic::process.drop_config (local.get $c))
        (call $rec (local.get $e1)) (call $rec (local.get $e2))
        (call $flush)
        {spawn_probes(strings, "(local.get $e1)")}
        {spawn_probes(strings, "(local.get $e2)")})""", strings))
    assert_returned(run)
    assert run.records == [0, 0, 1]
    handles = lab.wait_handles(2 * len(PROBES))
    check_probes(lab, handles[:len(PROBES)], {"this", "this_env"})
    check_probes(lab, handles[len(PROBES):], {"this", "this_env", "create_data"})


def test_config_limits_and_namespaces_reach_the_environment(lab: Lab) -> None:
    """``create_config``'s limits (u64: bytes, fuel units) and allowed prefixes are what
    the new environment records (test_lunatic_limits.py checks they are enforced)."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64)
        (call $setup)
        (local.set $c (call $lunatic::process.create_config (i64.const -1) (i64.const 7)))
        (call $lunatic::process.allow_namespace (local.get $c) {strings.arg("lunatic::")})
        (call $lunatic::process.allow_namespace (local.get $c) {strings.arg("lunatic::")})
        (call $export_handle (call $spawn_in (i64.const 0)
          (call $this_module_in (call $new_env (local.get $c))) {strings.arg("done")})))""",
                        strings))
    assert_returned(run)
    (child,) = run.handles
    assert_returned(lab.join(child))
    env = child.environment
    assert env is not None and env is not lab.env
    assert dict(env.limits) == {"max_memory": 2**64 - 1, "max_fuel": 7}
    assert env.config.namespaces == ["lunatic::"]
    assert env.config.wasi_args == [] and env.config.wasi_env == {}


@pytest.mark.parametrize("args, reason", [
    ("(i64.const 3) (i32.const 0)", "unknown config handle 3"),
    ("(call $config) (i32.const 65530)", "outside guest memory"),
])
def test_create_environment_traps(lab: Lab, args: str, reason: str) -> None:
    """An unknown config id or an out-of-bounds ``out_ptr`` traps."""
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (drop (call $lunatic::process.create_environment {args})))"""), setup=False)
    assert_trap(run, "lunatic::process.create_environment", reason)


def test_drop_environment_keeps_its_modules_working(lab: Lab) -> None:
    """Dropping the handle does not end the environment: its modules still spawn;
    a second drop traps."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $e i64) (local $m i64)
        (call $setup)
        (local.set $e (call $lunatic::process.this_env))
        (local.set $m (call $this_module_in (local.get $e)))
        (call $lunatic::process.drop_environment (local.get $e))
        (call $export_handle (call $spawn_in (i64.const 0) (local.get $m) {strings.arg("done")}))
        (call $flush)
        (call $lunatic::process.drop_environment (local.get $e)))""", strings))
    assert_trap(run, "lunatic::process.drop_environment", "unknown environment handle 0")
    (child,) = lab.wait_handles(1)
    assert_returned(lab.join(child))


# ---------------------------------------------------------------------------
# modules

CHILD_WAT = guest_wat("""
  (func (export "child") (param i32)
    (call $setup)
    (call $rec (i64.const 77))
    (call $rec32 (local.get 0))
    (call $flush))""")
"""A separate module (for ``add_module``) whose ``child`` reports 77 and its param."""


def test_add_module_compiles_and_spawns_new_code(lab: Lab) -> None:
    """``add_module`` of valid wasm returns 0 and a module id; its code runs on spawn."""
    wasm = wasm_of(CHILD_WAT)
    strings = Strings()
    lab.run(guest(lab, f"""
      (func (export "main") (local $m i64) (local $child i64)
        (call $setup)
        (call $rec32 (call $lunatic::process.add_module (call $lunatic::process.this_env)
          (i32.const {EMBED}) (i32.const {len(wasm)}) (i32.const {OUT})))
        (local.set $m (call $out))
        (call $rec (local.get $m))
        (call $rec32 (call $lunatic::process.spawn (i64.const 0) (local.get $m)
          {strings.arg("child")} (i32.const {PARAMS}) (i32.const 17) (i32.const {OUT})))
        (local.set $child (call $out))
        (call $give_collector (local.get $child))
        (call $export_handle (local.get $child))
        (call $flush))""", strings,
                          extra=[(EMBED, wasm), (PARAMS, spawn_params((I32, 31)))]))
    reports = lab.wait_reports(2)
    assert sorted(reports) == sorted([[0, 0, 0], [77, 31]])
    assert_returned(lab.join(lab.handles[0]))


def add_module_error(lab: Lab, wasm: bytes, then: str = "",
                     strings: Strings | None = None) -> list[Record]:
    """Run ``add_module`` of ``wasm``; the records: code, then the error text or the
    module id, then whatever ``then`` records (it may use local ``$m`` and ``strings``)."""
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $code i32) (local $m i64)
        (call $setup)
        (local.set $code (call $lunatic::process.add_module (call $lunatic::process.this_env)
          (i32.const {EMBED}) (i32.const {len(wasm)}) (i32.const {OUT})))
        (call $rec32 (local.get $code))
        (local.set $m (call $out))
        (if (local.get $code)
          (then (call $rec_error (call $out)))
          (else (call $rec (local.get $m))))
        {then}
        (call $flush))""", strings, extra=[(EMBED, wasm)]))
    assert_returned(run)
    return run.records


@pytest.mark.parametrize("wasm", [b"", b"\x00asm", b"not wasm at all",
                                  b"\x00asm\x01\x00\x00\x00\xff"],
                         ids=["empty", "magic_only", "text", "bad_section"])
def test_add_module_of_invalid_wasm_returns_1_and_a_readable_error(lab: Lab, wasm: bytes) -> None:
    """Invalid bytes use the error convention; the error text is non-empty UTF-8."""
    code, text = add_module_error(lab, wasm)
    assert code == 1
    assert isinstance(text, bytes) and text.decode("utf-8").strip()


def test_add_module_with_unknown_import_fails_at_spawn(lab: Lab) -> None:
    """Compiling does not instantiate: an import from ``env`` is reported by ``spawn``."""
    wasm = wasm_of('(module (import "env" "nope" (func)) (memory (export "memory") 1)'
                   ' (func (export "f")))')
    strings = Strings(0x400)
    records = add_module_error(lab, wasm, f"""
        (call $rec32 (call $lunatic::process.spawn (i64.const 0) (local.get $m)
          {strings.arg("f")} (i32.const 0) (i32.const 0) (i32.const {OUT})))
        (call $rec_error (call $out))""", strings)
    assert records[:3] == [0, 0, 1]
    assert isinstance(records[3], bytes) and b"nope" in records[3]


def test_spawn_with_a_trapping_start_function_returns_1(lab: Lab) -> None:
    """The wasm start function runs inside ``spawn``; its trap is an error, not a trap."""
    wasm = wasm_of('(module (memory (export "memory") 1) (func $s unreachable) (start $s)'
                   ' (func (export "f")))')
    strings = Strings(0x400)
    records = add_module_error(lab, wasm, f"""
        (call $rec32 (call $lunatic::process.spawn (i64.const 0) (local.get $m)
          {strings.arg("f")} (i32.const 0) (i32.const 0) (i32.const {OUT})))
        (call $rec_error (call $out))""", strings)
    assert records[:3] == [0, 0, 1]
    assert isinstance(records[3], bytes) and b"start function" in records[3]


@pytest.mark.parametrize("call, reason", [
    ("add_module (i64.const 9) (i32.const 0) (i32.const 8) (i32.const 2048)",
     "unknown environment handle 9"),
    ("add_module (call $lunatic::process.this_env) (i32.const 65530) (i32.const 8)"
     " (i32.const 2048)", "outside guest memory"),
    (f"add_module (call $lunatic::process.this_env) (i32.const {EMBED}) (i32.const SIZE)"
     " (i32.const 65532)", "outside guest memory"),
    ("add_this_module (i64.const 9) (i32.const 2048)", "unknown environment handle 9"),
    ("add_this_module (call $lunatic::process.this_env) (i32.const -8)",
     "outside guest memory"),
])
def test_add_module_traps(lab: Lab, call: str, reason: str) -> None:
    """Unknown environment ids and out-of-bounds data or ``out_ptr`` trap."""
    wasm = wasm_of(CHILD_WAT)
    call = call.replace("SIZE", str(len(wasm)))
    run = lab.run(guest(lab, f"""
      (func (export "main") (drop (call $lunatic::process.{call})))""",
                        extra=[(EMBED, wasm)]), setup=False)
    assert_trap(run, "lunatic::process." + call.split(" ")[0], reason)


def test_add_this_module_and_drop_module(lab: Lab) -> None:
    """``add_this_module`` returns 0 and a module id (counting from 0); a dropped module
    cannot be spawned from (unknown module id traps) nor dropped again."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $m i64)
        (call $setup)
        (call $rec32 (call $lunatic::process.add_this_module (call $lunatic::process.this_env)
          (i32.const {OUT})))
        (local.set $m (call $out))
        (call $rec (local.get $m))
        (call $rec (call $this_module_in (call $lunatic::process.this_env)))
        (call $lunatic::process.drop_module (local.get $m))
        (call $flush)
        (drop (call $spawn_in (i64.const 0) (local.get $m) {strings.arg("done")})))""", strings))
    assert_trap(run, "lunatic::process.spawn", "unknown module handle 0")
    assert run.records == [0, 0, 1]


def test_drop_module_twice_traps(lab: Lab) -> None:
    """A second ``drop_module`` of the same id traps."""
    run = lab.run(guest(lab, """
      (func (export "main") (local $m i64)
        (local.set $m (call $this_module_in (call $lunatic::process.this_env)))
        (call $lunatic::process.drop_module (local.get $m))
        (call $lunatic::process.drop_module (local.get $m)))"""), setup=False)
    assert_trap(run, "lunatic::process.drop_module", "unknown module handle 0")


# ---------------------------------------------------------------------------
# spawn parameters

PARAM_CHILD = """
  (func (export "params") (param $a i32) (param $b i64) (param $c i32)
    (call $setup)
    (call $rec (i64.const 1000))
    (call $rec (i64.extend_i32_s (local.get $a)))
    (call $rec (local.get $b))
    (call $rec32 (local.get $c))
    (call $flush))
"""


def spawn_call(how: str, link: int, name: str, params: str, strings: Strings) -> str:
    """``spawn`` (from ``add_this_module(this_env)``) or ``inherit_spawn`` of ``name``."""
    if how == "spawn":
        return (f"(call $lunatic::process.spawn (i64.const {link})"
                f" (call $this_module_in (call $lunatic::process.this_env))"
                f" {strings.arg(name)} {params} (i32.const {OUT}))")
    return (f"(call $lunatic::process.inherit_spawn (i64.const {link})"
            f" {strings.arg(name)} {params} (i32.const {OUT}))")


@pytest.mark.parametrize("how", ["spawn", "inherit_spawn"])
def test_spawn_params_i32_and_i64(lab: Lab, how: str) -> None:
    """Records are decoded by type: i32 takes the low 32 bits, i64 the low 64 (so a
    sign-extended -1 stays -1); bytes after the last whole record are ignored."""
    params = spawn_params((I32, -1), (I64, -(2**40) - 3), (I32, 0x1_0000_0005),
                          trailing=b"\x7f\x01\x02\x03\x04")
    strings = Strings()
    run = lab.run(guest(lab, PARAM_CHILD + f"""
      (func (export "main") (local $child i64)
        (call $setup)
        (call $rec32 {spawn_call(how, 0, "params", f"(i32.const {PARAMS}) (i32.const {len(params)})",
                                 strings)})
        (local.set $child (call $out))
        (call $give_collector (local.get $child))
        (call $flush))""", strings, extra=[(PARAMS, params)]))
    assert_returned(run)
    reports = lab.wait_reports(2)
    assert sorted(reports) == sorted([[0], [1000, -1, -(2**40) - 3, 5]])


@pytest.mark.parametrize("how", ["spawn", "inherit_spawn"])
@pytest.mark.parametrize("code", [0x7D, 0x7C, 0x70, 0x00, 0xFF])
def test_spawn_params_bad_type_code_traps(lab: Lab, how: str, code: int) -> None:
    """f32 (0x7D), f64 (0x7C) and anything but i32/i64/v128 traps, also in a later record;
    no child is started."""
    params = spawn_params((I32, 1), (code, 2))
    strings = Strings()
    run = lab.run(guest(lab, PARAM_CHILD + f"""
      (func (export "main")
        (drop {spawn_call(how, 0, "params", f"(i32.const {PARAMS}) (i32.const {len(params)})",
                          strings)}))""", strings, extra=[(PARAMS, params)]), setup=False)
    assert_trap(run, f"lunatic::process.{how}", "type code", f"0x{code:02x}")
    assert lab.runtime.processes() == [lab.collector]


@pytest.mark.parametrize("params, reason", [
    (spawn_params((V128, 5)), "v128"),
    (spawn_params((I32, 1)), "do not match"),
    (spawn_params((I64, 1), (I64, 2), (I32, 3)), "do not match"),
    (spawn_params((I32, 1), (I64, 2), (I32, 3), (I32, 4)), "do not match"),
    (b"", "do not match"),
], ids=["v128", "too_few", "wrong_types", "too_many", "none"])
def test_spawn_param_mismatch_fails_the_child_after_spawn_returned_0(
        lab: Lab, params: bytes, reason: str) -> None:
    """Params are not checked against the entry at spawn time: ``spawn`` returns 0 and the
    child fails at once -- abnormally, so a linked parent gets ``LinkDied`` with the tag."""
    strings = Strings()
    run = lab.run(guest(lab, PARAM_CHILD + f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $rec32 {spawn_call("inherit_spawn", 6, "params",
                                 f"(i32.const {PARAMS}) (i32.const {len(params)})", strings)})
        (call $export_handle (call $out))
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))""", strings, extra=[(PARAMS, params)]))
    assert_returned(run)
    assert run.records == [0, 1, 6]
    (child,) = run.handles
    assert_trap(lab.join(child), None, reason)


@pytest.mark.parametrize("how", ["spawn", "inherit_spawn"])
@pytest.mark.parametrize("name, text", [
    ("nope", "Function 'nope' not found"),
    ("memory", "Function 'memory' not found"),
    ("", "Function '' not found"),
])
def test_spawn_of_a_missing_export_returns_1(lab: Lab, how: str, name: str, text: str) -> None:
    """A missing export (or one that is not a function) uses the error convention."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $rec32 {spawn_call(how, 0, name, "(i32.const 0) (i32.const 0)", strings)})
        (call $rec_error (call $out))
        (call $flush))""", strings))
    assert_returned(run)
    code, error = run.records
    assert code == 1
    assert isinstance(error, bytes) and error.decode().startswith(text)
    assert lab.runtime.processes() == [lab.collector]


@pytest.mark.parametrize("how", ["spawn", "inherit_spawn"])
@pytest.mark.parametrize("case, reason", [
    ("utf8", "utf-8"),
    ("name_bounds", "outside guest memory"),
    ("params_bounds", "outside guest memory"),
    ("out_bounds", "outside guest memory"),
])
def test_spawn_traps(lab: Lab, how: str, case: str, reason: str) -> None:
    """A function name that is not UTF-8 or out of bounds, params out of bounds and an
    out-of-bounds ``out_ptr`` trap; no child exists afterwards (``out_ptr`` is checked
    before the child is created)."""
    name = {"utf8": "(i32.const 0) (i32.const 2)",
            "name_bounds": "(i32.const 65535) (i32.const 2)"}.get(case, "(i32.const 8) (i32.const 4)")
    params = "(i32.const 65530) (i32.const 17)" if case == "params_bounds" else \
        "(i32.const 0) (i32.const 0)"
    out = 65533 if case == "out_bounds" else OUT
    module = "(call $this_module_in (call $lunatic::process.this_env)) " if how == "spawn" else ""
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (drop (call $lunatic::process.{how} (i64.const 0) {module}{name} {params}
          (i32.const {out}))))""", extra=[(0, b"\xc3\x28"), (8, b"idle")]), setup=False)
    assert_trap(run, f"lunatic::process.{how}", reason)
    assert lab.runtime.processes() == [lab.collector]


def test_spawn_unknown_module_traps(lab: Lab) -> None:
    """``spawn`` looks the module up first: an unknown id traps."""
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (drop (call $lunatic::process.spawn (i64.const 0) (i64.const 4) (i32.const 0)
          (i32.const 4) (i32.const 0) (i32.const 0) (i32.const {OUT}))))""",
                        extra=[(0, b"idle")]), setup=False)
    assert_trap(run, "lunatic::process.spawn", "unknown module handle 4")


def test_spawned_handles_count_up_and_name_the_child(lab: Lab) -> None:
    """``spawn`` writes the next process id; it names the child (``id`` gives its UUID)."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $a i64) (local $b i64)
        (call $setup)
        (local.set $a (call $inherit (i64.const 0) {strings.arg("idle")}))
        (local.set $b (call $inherit (i64.const 0) {strings.arg("idle")}))
        (call $rec (local.get $a)) (call $rec (local.get $b))
        (call $lunatic::process.id (local.get $a) (i32.const {OUT}))
        (call $rec_mem (i32.const {OUT}) (i32.const 16))
        (call $export_handle (local.get $a))
        (call $export_handle (local.get $b))
        (call $flush))""", strings))
    assert_returned(run)
    first, second = run.handles
    assert run.records == [1, 2, first.id.int.to_bytes(16, "little")]
    assert first is not second and first.alive and second.alive


# ---------------------------------------------------------------------------
# links made by spawn


@pytest.mark.parametrize("how", ["spawn", "inherit_spawn"])
@pytest.mark.parametrize("link", [7, -2, 2**63 - 1])
def test_linked_child_failure_reaches_the_parent_with_the_tag(lab: Lab, how: str,
                                                              link: int) -> None:
    """With ``link = L``, a failing child shows up in the parent (flag off) as a signal
    message with tag L."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $rec32 {spawn_call(how, link, "crash", "(i32.const 0) (i32.const 0)", strings)})
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))""", strings))
    assert_returned(run)
    assert run.records == [0, 1, link]


def test_spawn_link_tables_both_ways(lab: Lab) -> None:
    """The child reports L to the parent, the parent reports nothing (0) to the child;
    the parent's normal return does not notify the child."""
    strings = Strings()
    parent = lab.spawn(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $export_handle (call $inherit (i64.const 5) {strings.arg("idle")}))
        (call $wait_go))""", strings))
    (child,) = lab.wait_handles(1)
    assert child.links() == {parent.id: 5}
    assert parent.links() == {child.id: 0}
    lab.runtime.send(parent, tag=99)
    assert_returned(lab.join(parent))
    assert child.alive  # a normal return notifies nobody
    lab.runtime.kill(child)


def test_parent_failure_kills_a_linked_child(lab: Lab) -> None:
    """The child gets an untagged ``LinkDied`` and, with the default flag, dies."""
    strings = Strings()
    parent = lab.spawn(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $export_handle (call $inherit (i64.const 1) {strings.arg("idle")}))
        (call $wait_go)
        unreachable)""", strings))
    (child,) = lab.wait_handles(1)
    lab.runtime.send(parent, tag=99)
    assert lab.join(parent).ending is Ending.FAILED
    assert lab.join(child).ending is Ending.KILLED


def test_parent_failure_is_an_untagged_signal_for_a_child_with_the_flag_off(lab: Lab) -> None:
    """A child that turned ``die_when_link_dies`` off gets a signal message with tag 0."""
    strings = Strings()
    parent = lab.spawn(guest(lab, f"""
      (func (export "watcher")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $rec (i64.const 1))
        (call $flush)
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))
      (func (export "main") (local $child i64)
        (call $setup)
        (local.set $child (call $inherit (i64.const 3) {strings.arg("watcher")}))
        (call $give_collector (local.get $child))
        (call $export_handle (local.get $child))
        (call $wait_go)
        unreachable)""", strings))
    lab.wait_reports(1)
    lab.runtime.send(parent, tag=99)
    assert lab.join(parent).ending is Ending.FAILED
    (child,) = lab.wait_handles(1)
    assert_returned(lab.join(child))
    assert lab.wait_reports(2) == [[1], [1, 0]]


@pytest.mark.parametrize("link, child", [(0, "crash"), (3, "done"), (0, "done")])
def test_no_signal_without_link_or_on_normal_return(lab: Lab, link: int, child: str) -> None:
    """An unlinked child's failure, and a linked child's normal return, send nothing:
    Python's "go", sent after the child ended, is the parent's first message."""
    strings = Strings()
    parent = lab.spawn(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $export_handle (call $inherit (i64.const {link}) {strings.arg(child)}))
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))""", strings))
    (spawned,) = lab.wait_handles(1)
    lab.join(spawned)
    lab.runtime.send(parent, tag=99)
    assert_returned(lab.join(parent))
    assert lab.wait_reports(1) == [[0, 99]]


# ---------------------------------------------------------------------------
# process handles


def test_this_clone_and_id(lab: Lab) -> None:
    """``this`` and ``clone_process`` give fresh ids for the same process; ``id`` writes
    the UUID as a little-endian u128 (the canonical bytes reversed)."""
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $a i64) (local $b i64) (local $c i64)
        (call $setup)
        (local.set $a (call $lunatic::process.this))
        (local.set $b (call $lunatic::process.this))
        (local.set $c (call $lunatic::process.clone_process (local.get $a)))
        (call $rec (local.get $a)) (call $rec (local.get $b)) (call $rec (local.get $c))
        (call $lunatic::process.id (local.get $a) (i32.const {OUT}))
        (call $rec_mem (i32.const {OUT}) (i32.const 16))
        (call $lunatic::process.id (local.get $c) (i32.const {OUT}))
        (call $rec_mem (i32.const {OUT}) (i32.const 16))
        (call $lunatic::process.id (i64.const 0) (i32.const {OUT}))
        (call $rec_mem (i32.const {OUT}) (i32.const 16))
        (call $flush))"""))
    assert_returned(run)
    a, b, c, own, cloned, collector = run.records
    assert (a, b, c) == (1, 2, 3)  # handle 0 is the collector
    expected = run.process.id.int.to_bytes(16, "little")
    assert own == cloned == expected == run.process.id.bytes[::-1]
    assert isinstance(collector, bytes)
    assert uuid.UUID(bytes=collector[::-1]) == lab.collector.id


@pytest.mark.parametrize("call, function, reason", [
    ("(drop (call $lunatic::process.clone_process (i64.const 8)))", "clone_process",
     "unknown process handle 8"),
    ("(call $lunatic::process.drop_process (i64.const 8))", "drop_process",
     "unknown process handle 8"),
    ("(call $lunatic::process.id (i64.const 8) (i32.const 0))", "id",
     "unknown process handle 8"),
    ("(call $lunatic::process.id (call $lunatic::process.this) (i32.const 65521))", "id",
     "outside guest memory"),
    ("(call $lunatic::process.link (i64.const 1) (i64.const 8))", "link",
     "unknown process handle 8"),
    ("(call $lunatic::process.unlink (i64.const 8))", "unlink", "unknown process handle 8"),
])
def test_process_handle_traps(lab: Lab, call: str, function: str, reason: str) -> None:
    """Unknown process ids trap everywhere; ``id`` also traps out of bounds."""
    run = lab.run(guest(lab, f'(func (export "main") {call})'), setup=False)
    assert_trap(run, f"lunatic::process.{function}", reason)


def test_drop_process_leaves_the_process_running(lab: Lab) -> None:
    """Dropping a handle does not kill; a second drop of the id traps."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $child i64)
        (call $setup)
        (local.set $child (call $inherit (i64.const 0) {strings.arg("idle")}))
        (call $export_handle (local.get $child))
        (call $lunatic::process.drop_process (local.get $child))
        (call $rec (i64.const 1))
        (call $flush)
        (call $lunatic::process.drop_process (local.get $child)))""", strings))
    assert_trap(run, "lunatic::process.drop_process", "unknown process handle 1")
    assert run.records == [1]
    (child,) = run.handles
    assert child.alive
    lab.runtime.kill(child)
    assert lab.join(child).ending is Ending.KILLED


# ---------------------------------------------------------------------------
# sleep_ms, die_when_link_dies


def test_sleep_ms_returns(lab: Lab) -> None:
    """Short sleeps return (0 included)."""
    run = lab.run(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::process.sleep_ms (i64.const 0))
        (call $lunatic::process.sleep_ms (i64.const 3))
        (call $rec (i64.const 1))
        (call $flush))"""))
    assert_returned(run)
    assert run.records == [1]


def test_a_sleeping_process_can_be_killed(lab: Lab) -> None:
    """``sleep_ms`` is a suspension point: a kill ends a very long sleep."""
    guest_process = lab.spawn(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $rec (i64.const 1))
        (call $flush)
        (call $lunatic::process.sleep_ms (i64.const -1)))"""))
    lab.wait_reports(1)
    lab.runtime.kill(guest_process, "stop sleeping")
    outcome = lab.join(guest_process)
    assert outcome.ending is Ending.KILLED and "stop sleeping" in outcome.message


@pytest.mark.parametrize("flags, dies", [((), True), ((0,), False), ((0, 2), True),
                                         ((1, 0), False), ((0, -1), True)])
def test_die_when_link_dies(lab: Lab, flags: tuple[int, ...], dies: bool) -> None:
    """Default (and any non-zero flag): a linked process's failure kills; 0: a signal
    message instead."""
    peer = lab.spawn_native(failing_peer)
    sets = "".join(f"(call $lunatic::process.die_when_link_dies (i32.const {f}))" for f in flags)
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        {sets}
        (call $lunatic::process.link (i64.const 3) (call $handle (i32.const 1)))
        (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
        (call $lunatic::message.send (call $handle (i32.const 1)))
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))"""), handles=[peer])
    if dies:
        assert run.outcome.ending is Ending.KILLED
        assert run.records == []
    else:
        assert_returned(run)
        assert run.records == [1, 3]


# ---------------------------------------------------------------------------
# this_env


def test_this_env_is_the_callers_environment(lab: Lab) -> None:
    """``this_env`` gives new handles (0, 1) to the caller's environment: a registration
    there is in ``lab.env``'s registry; ``add_this_module`` into it spawns."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $e i64)
        (call $setup)
        (local.set $e (call $lunatic::process.this_env))
        (call $rec (local.get $e))
        (call $rec (call $lunatic::process.this_env))
        (call $rec32 (call $lunatic::process.register {strings.arg("svc")} {strings.arg("1.0.0")}
          (local.get $e) (call $lunatic::process.this)))
        (call $export_handle (call $spawn_in (i64.const 0)
          (call $this_module_in (local.get $e)) {strings.arg("done")}))
        (call $flush))""", strings))
    assert_returned(run)
    assert run.records == [0, 1, 0]
    assert lab.env.registry.lookup("svc", "=1.0.0") == (0, run.process)
    (child,) = run.handles
    assert child.environment is lab.env
    assert_returned(lab.join(child))


def test_this_env_of_a_child_in_a_new_environment(lab: Lab) -> None:
    """A child spawned into a guest-made environment runs in that one, not the parent's."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "child_registers")
        (drop (call $lunatic::process.register {strings.arg("svc")} {strings.arg("2.0.0")}
          (call $lunatic::process.this_env) (call $lunatic::process.this))))
      (func (export "main") (local $c i64)
        (call $setup)
        (local.set $c (call $config))
        (call $lunatic::process.allow_namespace (local.get $c) {strings.arg("lunatic::")})
        (call $export_handle (call $spawn_in (i64.const 0)
          (call $this_module_in (call $new_env (local.get $c)))
          {strings.arg("child_registers")})))""", strings))
    assert_returned(run)
    (child,) = run.handles
    assert_returned(lab.join(child))
    assert child.environment is not lab.env
    assert child.environment is not None
    assert child.environment.registry.lookup("svc", "*") == (0, child)
    assert lab.env.registry.lookup("svc", "*") == (2, None)


# ---------------------------------------------------------------------------
# link and unlink


def test_link_is_both_ways_with_one_tag(lab: Lab) -> None:
    """``link(tag, p)`` records the tag on both sides; the peer's failure reaches the
    caller (flag off) with that tag."""
    peer = lab.spawn_native(failing_peer)
    guest_process = lab.spawn(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $lunatic::process.link (i64.const 13) (call $handle (i32.const 1)))
        (call $rec (i64.const 1))
        (call $flush)
        (call $rec32 (call $lunatic::message.receive (i64.const 0) (i32.const 0)))
        (call $rec (call $lunatic::message.get_tag))
        (call $flush))"""), handles=[peer])
    lab.wait_reports(1)
    assert guest_process.links() == {peer.id: 13}
    assert peer.links() == {guest_process.id: 13}
    lab.runtime.send(peer)
    assert_returned(lab.join(guest_process))
    assert lab.wait_reports(2)[1] == [1, 13]


@pytest.mark.parametrize("tags, expected", [((13,), [13]), ((1, 2), [2]), ((0,), [0]),
                                            ((-9,), [-9])])
def test_caller_failure_reaches_the_linked_peer_and_relinking_replaces_the_tag(
        lab: Lab, tags: tuple[int, ...], expected: list[int]) -> None:
    """The other direction: the caller traps, the peer (the collector, flag off) gets a
    signal message with the tag; linking the same pair again only replaces the tag."""
    links = "".join(f"(call $lunatic::process.link (i64.const {t}) (call $handle (i32.const 0)))"
                    for t in tags)
    run = lab.run(guest(lab, f'(func (export "main") (call $setup) {links} unreachable)'))
    assert run.outcome.ending is Ending.FAILED
    assert [m.tag for m in run.messages] == expected
    assert all(isinstance(m, SignalMessage) for m in run.messages)


def test_unlink_removes_both_directions(lab: Lab) -> None:
    """After ``unlink`` neither side hears of the other's death: the caller's trap sends
    the peer nothing, and the tables are empty."""
    run = lab.run(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::process.link (i64.const 4) (call $handle (i32.const 0)))
        (call $lunatic::process.unlink (call $handle (i32.const 0)))
        (call $lunatic::process.unlink (call $handle (i32.const 0)))
        unreachable)"""))
    assert run.outcome.ending is Ending.FAILED
    assert run.messages == []
    assert lab.collector.links() == {}


def test_unlinked_peer_death_does_not_kill(lab: Lab) -> None:
    """With the default flag, a peer that was linked and then unlinked can die without
    taking the caller along."""
    peer = lab.spawn_native(failing_peer)
    guest_process = lab.spawn(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::process.link (i64.const 4) (call $handle (i32.const 1)))
        (call $lunatic::process.unlink (call $handle (i32.const 1)))
        (call $rec (i64.const 1))
        (call $flush)
        (call $wait_go)
        (call $rec (i64.const 2))
        (call $flush))"""), handles=[peer])
    lab.wait_reports(1)
    assert guest_process.links() == {} and peer.links() == {}
    lab.runtime.send(peer)
    assert lab.join(peer).ending is Ending.FAILED
    lab.runtime.send(guest_process, tag=99)
    assert_returned(lab.join(guest_process))
    assert lab.wait_reports(2) == [[1], [2]]


@pytest.mark.parametrize("peer_fails, expected", [(True, [1, 8]), (False, [TIMEOUT])])
def test_link_to_an_ended_process(lab: Lab, peer_fails: bool, expected: list[int]) -> None:
    """Decision: linking to a process that ended abnormally reports ``LinkDied`` at once;
    one that returned normally reports nothing."""
    def body(proc: NativeProcess) -> None:
        if peer_fails:
            raise RuntimeError("ended abnormally")

    ended = lab.spawn_native(body)
    lab.join(ended)
    run = lab.run(guest(lab, """
      (func (export "main") (local $r i32)
        (call $setup)
        (call $lunatic::process.die_when_link_dies (i32.const 0))
        (call $lunatic::process.link (i64.const 8) (call $handle (i32.const 1)))
        (local.set $r (call $lunatic::message.receive (i64.const 0) (i32.const 20)))
        (call $rec32 (local.get $r))
        (if (i32.eq (local.get $r) (i32.const 1))
          (then (call $rec (call $lunatic::message.get_tag))))
        (call $flush))"""), handles=[ended])
    assert_returned(run)
    assert run.records == expected


def test_link_to_self_does_nothing(lab: Lab) -> None:
    """A process linked to itself has no link entry and nothing is reported."""
    run = lab.run(guest(lab, """
      (func (export "main")
        (call $setup)
        (call $lunatic::process.link (i64.const 2) (call $lunatic::process.this))
        (call $export_handle (call $lunatic::process.this)))"""))
    assert_returned(run)
    assert run.process.links() == {}


# ---------------------------------------------------------------------------
# add_plugin


def test_add_plugin_writes_zero_or_uses_the_error_convention(lab: Lab) -> None:
    """A valid plugin: 0, and a u64 0 at ``out_ptr`` (as v0.6.0); bytes that are not wasm:
    1 and an error.  (Plugins themselves: tests/test_lunatic_plugins.py.)"""
    wasm = wasm_of('(module (memory (export "memory") 1))')
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64)
        (call $setup)
        (local.set $c (call $config))
        (i64.store (i32.const {OUT}) (i64.const -1))
        (call $rec32 (call $lunatic::process.add_plugin (local.get $c)
          (i32.const {EMBED}) (i32.const {len(wasm)}) (i32.const {OUT})))
        (call $rec (call $out))
        (call $rec32 (call $lunatic::process.add_plugin (local.get $c)
          (i32.const {EMBED}) (i32.const 3) (i32.const {OUT})))
        (call $rec_error (call $out))
        (call $flush))""", extra=[(EMBED, wasm)]))
    assert_returned(run)
    assert run.records[:3] == [0, 0, 1]
    assert b"not a wasm module" in run.records[3]


@pytest.mark.parametrize("args, reason", [
    ("(i64.const 3) (i32.const 0) (i32.const 0) (i32.const 2048)", "unknown config handle 3"),
    ("(call $config) (i32.const 65535) (i32.const 2) (i32.const 2048)", "outside guest memory"),
    ("(call $config) (i32.const 0) (i32.const 0) (i32.const 65530)", "outside guest memory"),
])
def test_add_plugin_traps(lab: Lab, args: str, reason: str) -> None:
    """An unknown config, data or ``out_ptr`` out of bounds trap."""
    run = lab.run(guest(lab, f"""
      (func (export "main") (drop (call $lunatic::process.add_plugin {args})))"""),
        setup=False)
    assert_trap(run, "lunatic::process.add_plugin", reason)
