"""ABI conformance of the registry: ``register``, ``unregister``, ``lookup`` (spec 5.21-5.23, 7.8).

Both engines, WAT guests.  Covered: the return codes 0/1/2 including
v0.6.0's rule that an unknown name is "not found" (2) whatever garbage the
version or query is, while a name that ever had a ``register`` call (even a
failed one, even after its list became empty) reports a malformed input (1);
strict semver for ``register``/``unregister``; exact-version replacement in
place (build metadata included); this runtime's decision that ``lookup``
returns the **highest** matching version; ``lookup`` searching the caller's
own environment and writing ``out_ptr`` only on success; dead processes
staying registered; a registry shared with Python and native processes; and
every trap (ranges out of bounds, invalid UTF-8, unknown process or
environment ids, in the documented order).
"""

from __future__ import annotations

import uuid

import pytest

from lunatic_api import Process
from lunatic_api.environment import LunaticModule
from lunatic_api.registry import Registry
from tests.lunatic_support import (
    Lab,
    Strings,
    assert_returned,
    assert_trap,
    lab_fixture,  # noqa: F401
)

OUT = 0x800
IDS = 0x900

HELPERS = f"""
(func $env (result i64) (call $lunatic::process.this_env))
(func $me (result i64) (call $lunatic::process.this))
(func $rec_lookup (param $name i32) (param $name_len i32) (param $q i32) (param $q_len i32)
  ;; record lookup's code and, on success, the UUID bytes of the process found
  (local $code i32)
  (local.set $code (call $lunatic::process.lookup (local.get $name) (local.get $name_len)
                     (local.get $q) (local.get $q_len) (i32.const {OUT})))
  (call $rec32 (local.get $code))
  (if (i32.eqz (local.get $code))
    (then
      (call $lunatic::process.id (i64.load (i32.const {OUT})) (i32.const {IDS}))
      (call $rec_mem (i32.const {IDS}) (i32.const 16)))))
"""


def guest(lab: Lab, body: str, strings: Strings,
          extra: list[tuple[int, bytes]] | None = None) -> LunaticModule:
    """A module with the helpers, ``body`` and the strings' data."""
    return lab.module(HELPERS, body, data=strings.data + (extra or []))


def uuid_of(record: object) -> uuid.UUID:
    """The UUID of ``id``'s 16 little-endian bytes."""
    assert isinstance(record, bytes) and len(record) == 16
    return uuid.UUID(bytes=record[::-1])


def sleeper(lab: Lab) -> Process:
    """A native process that just waits (until the lab shuts down)."""
    return lab.spawn_native(lambda proc: proc.receive(12345), name="sleeper")


VALID = ["1.0.0", "0.0.0", "10.20.30", "1.2.3-alpha.1", "1.2.3+build.5", "1.2.3-rc.1+b.2",
         "18446744073709551615.0.0"]
INVALID = ["1.0", "1", "v1.0.0", "01.0.0", "1.01.0", "1.0.0 ", " 1.0.0", "", "a.b.c", "1.0.0-",
           "1.0.0+", "1.0.0-01", "1.0.0.0", "^1.0.0", "*"]


def test_register_accepts_only_strict_semver(lab: Lab) -> None:
    """``register`` returns 0 for a strict semver version and 1 for anything else."""
    strings = Strings()
    calls = "\n".join(
        f"(call $rec32 (call $lunatic::process.register {strings.arg('svc')} {strings.arg(v)}"
        f" (call $env) (call $me)))" for v in VALID + INVALID)
    run = lab.run(guest(lab, f'(func (export "main") (call $setup) {calls} (call $flush))',
                        strings))
    assert_returned(run)
    assert run.records == [0] * len(VALID) + [1] * len(INVALID)
    assert [v for v, _ in lab.env.registry.entries("svc")] == VALID


def test_unknown_name_is_not_found_even_for_garbage(lab: Lab) -> None:
    """v0.6.0 only parses the version/query when the name has a list: 2 for unknown names."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $rec32 (call $lunatic::process.unregister {strings.arg("nobody")}
          {strings.arg("garbage")} (call $env)))
        (call $rec32 (call $lunatic::process.unregister {strings.arg("nobody")}
          {strings.arg("1.0.0")} (call $env)))
        (call $rec_lookup {strings.arg("nobody")} {strings.arg("garbage")})
        (call $rec_lookup {strings.arg("nobody")} {strings.arg("")})
        (call $rec_lookup {strings.arg("nobody")} {strings.arg("*")})
        (call $flush))""", strings))
    assert_returned(run)
    assert run.records == [2, 2, 2, 2, 2]


def test_a_failed_register_still_creates_the_name_list(lab: Lab) -> None:
    """After ``register`` failed with 1, the name is known: malformed input gives 1,
    well-formed input that matches nothing gives 2."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $rec32 (call $lunatic::process.register {strings.arg("n")} {strings.arg("bad")}
          (call $env) (call $me)))
        (call $rec32 (call $lunatic::process.unregister {strings.arg("n")}
          {strings.arg("bad")} (call $env)))
        (call $rec_lookup {strings.arg("n")} {strings.arg("bad")})
        (call $rec_lookup {strings.arg("n")} {strings.arg("")})
        (call $rec_lookup {strings.arg("n")} {strings.arg("*")})
        (call $rec32 (call $lunatic::process.unregister {strings.arg("n")}
          {strings.arg("1.0.0")} (call $env)))
        (call $flush))""", strings))
    assert_returned(run)
    assert run.records == [1, 1, 1, 1, 2, 2]


def test_the_list_stays_after_it_became_empty(lab: Lab) -> None:
    """``unregister`` removes the exact entry (0), then there is none (2), and the name
    still reports malformed input (1)."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $rec32 (call $lunatic::process.register {strings.arg("n")} {strings.arg("1.0.0")}
          (call $env) (call $me)))
        (call $rec32 (call $lunatic::process.unregister {strings.arg("n")}
          {strings.arg("1.0.0")} (call $env)))
        (call $rec32 (call $lunatic::process.unregister {strings.arg("n")}
          {strings.arg("1.0.0")} (call $env)))
        (call $rec_lookup {strings.arg("n")} {strings.arg("*")})
        (call $rec_lookup {strings.arg("n")} {strings.arg(">>1")})
        (call $rec32 (call $lunatic::process.unregister {strings.arg("n")}
          {strings.arg("1.0")} (call $env)))
        (call $flush))""", strings))
    assert_returned(run)
    assert run.records == [0, 0, 2, 2, 1, 1]
    assert lab.env.registry.entries("n") == []


def test_same_version_replaces_in_place(lab: Lab) -> None:
    """Registering the exact same version again replaces the process and keeps the
    entry's position; versions differing in build metadata are separate entries."""
    a, b, c = sleeper(lab), sleeper(lab), sleeper(lab)
    strings = Strings()

    def register(version: str, handle: int) -> str:
        return (f"(call $rec32 (call $lunatic::process.register {strings.arg('svc')}"
                f" {strings.arg(version)} (call $env) (call $handle (i32.const {handle}))))")

    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        {register("1.0.0", 1)}
        {register("2.0.0", 2)}
        {register("1.0.0", 3)}
        {register("1.0.0+b1", 1)}
        {register("1.0.0+b1", 2)}
        {register("1.0.0-rc.1", 3)}
        (call $flush))""", strings), handles=[a, b, c])
    assert_returned(run)
    assert run.records == [0] * 6
    assert lab.env.registry.entries("svc") == [
        ("1.0.0", c), ("2.0.0", b), ("1.0.0+b1", b), ("1.0.0-rc.1", c)]


def test_unregister_matches_exactly(lab: Lab) -> None:
    """Only the entry with exactly that version (build metadata included) goes."""
    strings = Strings()

    def call(fn: str, version: str) -> str:
        env_and_me = "(call $env) (call $me)" if fn == "register" else "(call $env)"
        return (f"(call $rec32 (call $lunatic::process.{fn} {strings.arg('svc')}"
                f" {strings.arg(version)} {env_and_me}))")

    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        {call("register", "1.0.0+a")}
        {call("register", "1.0.0")}
        {call("unregister", "1.0.0+b")}
        {call("unregister", "1.0.0+a")}
        {call("unregister", "1.0.0+a")}
        {call("unregister", "1.0.1")}
        (call $flush))""", strings))
    assert_returned(run)
    assert run.records == [0, 0, 2, 0, 2, 2]
    assert [v for v, _ in lab.env.registry.entries("svc")] == ["1.0.0"]


LOOKUPS = [
    ("^1", "1.5.0"), ("1", "1.5.0"), ("~1.2", "1.2.0"), ("<1.4", "1.3.0"), ("*", "2.0.0"),
    ("=1.3.0", "1.3.0"), (">=1.2.0, <1.5.0", "1.3.0"), ("1.2.*", "1.2.0"), (">=3", None),
    ("^2.0.0-rc.0", "2.0.0"), ("=3.0.0-beta", "3.0.0-beta"), ("^3", None), ("0.x", None),
]
VERSIONS = ["1.2.0", "1.5.0", "1.3.0", "2.0.0", "3.0.0-beta"]


def test_lookup_returns_the_highest_matching_version(lab: Lab) -> None:
    """Decision: the highest version satisfying the query wins, whatever the
    registration order (v0.6.0: the most recently registered); pre-releases only
    match queries that opt in."""
    processes = [sleeper(lab) for _ in VERSIONS]
    strings = Strings()
    registers = "\n".join(
        f"(drop (call $lunatic::process.register {strings.arg('svc')} {strings.arg(v)}"
        f" (call $env) (call $handle (i32.const {i + 1}))))" for i, v in enumerate(VERSIONS))
    lookups = "\n".join(f"(call $rec_lookup {strings.arg('svc')} {strings.arg(q)})"
                        for q, _ in LOOKUPS)
    run = lab.run(guest(lab, f'(func (export "main") (call $setup) {registers} {lookups}'
                             f' (call $flush))', strings), handles=processes)
    assert_returned(run)
    by_uuid = {p.id: v for p, v in zip(processes, VERSIONS)}
    records = iter(run.records)
    found = []
    for _query, _ in LOOKUPS:
        code = next(records)
        found.append(by_uuid[uuid_of(next(records))] if code == 0 else None)
        assert code in (0, 2)
    assert found == [expected for _, expected in LOOKUPS]


def test_lookup_prefers_the_most_recent_of_equal_precedence(lab: Lab) -> None:
    """Versions differing only in build metadata are equal: the newest registration wins."""
    first, second = sleeper(lab), sleeper(lab)
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (drop (call $lunatic::process.register {strings.arg("svc")} {strings.arg("1.0.0+old")}
          (call $env) (call $handle (i32.const 1))))
        (drop (call $lunatic::process.register {strings.arg("svc")} {strings.arg("1.0.0+new")}
          (call $env) (call $handle (i32.const 2))))
        (call $rec_lookup {strings.arg("svc")} {strings.arg("=1.0.0")})
        (call $flush))""", strings), handles=[first, second])
    assert_returned(run)
    code, found = run.records
    assert code == 0 and uuid_of(found) == second.id


def test_lookup_gives_a_new_handle_and_writes_out_only_on_success(lab: Lab) -> None:
    """Success writes a fresh process id; "not found" leaves ``out_ptr`` alone, so an
    out-of-bounds ``out_ptr`` is harmless then."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (drop (call $lunatic::process.register {strings.arg("svc")} {strings.arg("1.0.0")}
          (call $env) (call $me)))
        (call $rec32 (call $lunatic::process.lookup {strings.arg("svc")} {strings.arg("^2")}
          (i32.const {OUT})))
        (call $rec_mem (i32.const {OUT}) (i32.const 8))
        (call $rec32 (call $lunatic::process.lookup {strings.arg("svc")} {strings.arg("^2")}
          (i32.const 65535)))
        (call $rec32 (call $lunatic::process.lookup {strings.arg("other")} {strings.arg("*")}
          (i32.const -1)))
        (call $rec32 (call $lunatic::process.lookup {strings.arg("svc")} {strings.arg("^1")}
          (i32.const {OUT})))
        (call $rec (i64.load (i32.const {OUT})))
        (call $rec32 (call $lunatic::process.lookup {strings.arg("svc")} {strings.arg("^1")}
          (i32.const {OUT})))
        (call $rec (i64.load (i32.const {OUT})))
        (call $flush))""", strings, extra=[(OUT, b"\xee" * 8)]))
    assert_returned(run)
    # handles: 0 the collector, 1 and 2 the $me's, then the lookups' new handles
    assert run.records == [2, b"\xee" * 8, 2, 2, 0, 2, 0, 3]


def test_lookup_searches_the_callers_own_environment(lab: Lab) -> None:
    """A process registered in another environment is not found by ``lookup``; one
    registered in ``this_env`` is."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main") (local $c i64) (local $other i64)
        (call $setup)
        (local.set $c (call $lunatic::process.create_config (i64.const 0) (i64.const 0)))
        (drop (call $lunatic::process.create_environment (local.get $c) (i32.const {OUT})))
        (local.set $other (i64.load (i32.const {OUT})))
        (call $rec32 (call $lunatic::process.register {strings.arg("far")} {strings.arg("1.0.0")}
          (local.get $other) (call $me)))
        (call $rec_lookup {strings.arg("far")} {strings.arg("*")})
        (call $rec32 (call $lunatic::process.register {strings.arg("near")}
          {strings.arg("1.0.0")} (call $env) (call $me)))
        (call $rec_lookup {strings.arg("near")} {strings.arg("*")})
        (call $flush))""", strings))
    assert_returned(run)
    code_far, lookup_far, code_near, lookup_near, found = run.records
    assert (code_far, lookup_far, code_near, lookup_near) == (0, 2, 0, 0)
    assert uuid_of(found) == run.process.id
    assert lab.env.registry.lookup("far", "*") == (2, None)


def test_registry_is_shared_with_python_and_keeps_dead_processes(lab: Lab) -> None:
    """Python registrations are visible to guests; a process that ended stays registered:
    ``lookup`` hands it out and sending to it is silently dropped."""
    dead = lab.spawn_native(lambda proc: None, name="dead")
    lab.join(dead)
    assert lab.env.registry.register("dead", "1.0.0", dead) == 0
    assert lab.env.registry.register("py", "0.1.0", lab.collector) == 0
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (call $rec_lookup {strings.arg("dead")} {strings.arg("1")})
        (call $lunatic::message.create_data (i64.const 1) (i64.const 0))
        (call $lunatic::message.send (i64.load (i32.const {OUT})))
        (call $rec_lookup {strings.arg("py")} {strings.arg("^0.1")})
        (call $lunatic::message.create_data (i64.const 55) (i64.const 0))
        (call $lunatic::message.send (i64.load (i32.const {OUT})))
        (call $flush))""", strings))
    assert_returned(run)
    code_dead, dead_id, code_py, py_id = run.records
    assert (code_dead, code_py) == (0, 0)
    assert uuid_of(dead_id) == dead.id and uuid_of(py_id) == lab.collector.id
    assert [m.tag for m in run.messages] == [55]
    assert dead.mailbox_size() == 0


def test_guest_registration_is_visible_to_python(lab: Lab) -> None:
    """What a guest registers through ``this_env`` is ``lab.env``'s registry."""
    strings = Strings()
    run = lab.run(guest(lab, f"""
      (func (export "main")
        (call $setup)
        (drop (call $lunatic::process.register {strings.arg("svc")} {strings.arg("1.2.3")}
          (call $env) (call $me))))""", strings))
    assert_returned(run)
    assert lab.env.registry.lookup("svc", "~1.2") == (0, run.process)


# ---------------------------------------------------------------------------
# traps

#: name "ok" at 0, bad UTF-8 at 8, version "1.0.0" at 16
TRAP_DATA = [(0, b"ok"), (8, b"\xc3\x28"), (16, b"1.0.0")]
NAME = "(i32.const 0) (i32.const 2)"
BAD_UTF8 = "(i32.const 8) (i32.const 2)"
VERSION = "(i32.const 16) (i32.const 5)"
OOB = "(i32.const 65535) (i32.const 2)"
ENV = "(call $env)"
ME = "(call $me)"


@pytest.mark.parametrize("args, reason", [
    (f"{OOB} {VERSION} {ENV} {ME}", "outside guest memory"),
    (f"{NAME} {OOB} {ENV} {ME}", "outside guest memory"),
    (f"{BAD_UTF8} {VERSION} {ENV} {ME}", "utf-8"),
    (f"{NAME} {BAD_UTF8} {ENV} {ME}", "utf-8"),
    (f"{NAME} {VERSION} {ENV} (i64.const 7)", "unknown process handle 7"),
    (f"{NAME} {VERSION} (i64.const 7) {ME}", "unknown environment handle 7"),
    # order: strings, then the process, then the environment
    (f"{NAME} {BAD_UTF8} (i64.const 7) (i64.const 7)", "utf-8"),
    (f"{NAME} {VERSION} (i64.const 7) (i64.const 7)", "unknown process handle 7"),
    # the ids are checked before the version is parsed
    (f"{NAME} (i32.const 0) (i32.const 2) (i64.const 7) {ME}", "unknown environment handle"),
])
def test_register_traps(lab: Lab, args: str, reason: str) -> None:
    """Out-of-bounds or non-UTF-8 strings, unknown process or environment ids trap."""
    run = lab.run(lab.module(HELPERS, f"""
      (func (export "main") (drop (call $lunatic::process.register {args})))""",
                             data=TRAP_DATA), setup=False)
    assert_trap(run, "lunatic::process.register", reason)


@pytest.mark.parametrize("args, reason", [
    (f"{OOB} {VERSION} {ENV}", "outside guest memory"),
    (f"{NAME} {OOB} {ENV}", "outside guest memory"),
    (f"{BAD_UTF8} {VERSION} {ENV}", "utf-8"),
    (f"{NAME} {BAD_UTF8} {ENV}", "utf-8"),
    (f"{NAME} {VERSION} (i64.const 7)", "unknown environment handle 7"),
    (f"(i32.const 0) (i32.const 1) {VERSION} (i64.const 7)", "unknown environment handle 7"),
])
def test_unregister_traps(lab: Lab, args: str, reason: str) -> None:
    """Out-of-bounds or non-UTF-8 strings and an unknown environment trap (even for an
    unknown name)."""
    run = lab.run(lab.module(HELPERS, f"""
      (func (export "main") (drop (call $lunatic::process.unregister {args})))""",
                             data=TRAP_DATA), setup=False)
    assert_trap(run, "lunatic::process.unregister", reason)


@pytest.mark.parametrize("args, reason", [
    (f"{OOB} {VERSION} (i32.const {OUT})", "outside guest memory"),
    (f"{NAME} {OOB} (i32.const {OUT})", "outside guest memory"),
    (f"{BAD_UTF8} {VERSION} (i32.const {OUT})", "utf-8"),
    (f"{NAME} {BAD_UTF8} (i32.const {OUT})", "utf-8"),
    (f"{NAME} {VERSION} (i32.const 65530)", "outside guest memory"),
])
def test_lookup_traps(lab: Lab, args: str, reason: str) -> None:
    """Out-of-bounds or non-UTF-8 strings trap; so does an out-of-bounds ``out_ptr``
    when there is something to write (name "ok" is registered at 1.0.0)."""
    run = lab.run(lab.module(HELPERS, f"""
      (func (export "main")
        (drop (call $lunatic::process.register {NAME} {VERSION} {ENV} {ME}))
        (drop (call $lunatic::process.lookup {args})))""", data=TRAP_DATA), setup=False)
    assert_trap(run, "lunatic::process.lookup", reason)


def test_registry_object_codes() -> None:
    """The Python registry gives the same codes as the ABI (no engine needed)."""
    registry = Registry()
    process = Process(None)
    assert registry.lookup("x", "garbage") == (2, None)
    assert registry.unregister("x", "garbage") == 2
    assert registry.register("x", "bad", process) == 1
    assert registry.lookup("x", "garbage") == (1, None)
    assert registry.unregister("x", "garbage") == 1
    assert registry.register("x", "1.0.0", process) == 0
    assert registry.lookup("x", "1") == (0, process)
    assert registry.unregister("x", "1.0.0") == 0
    assert registry.lookup("x", "1") == (2, None)
