"""The ``lunatic`` command as a Lunatic runtime: the main process and its children.

``tests/test_cli.py`` covers the command as a WASI runner (options, exit
statuses, user errors).  Here the guests are WAT programs importing the
Lunatic and WASI functions they call (import lines generated from
``lunatic_api.context.host_classes()``), whose ``_start`` spawns children
from its own module with ``inherit_spawn``:

* the command exits when the main process ends, abandoning children still
  running (asleep, blocked in ``receive`` or spinning in pure wasm);
* the exit status is the main process's: its ``proc_exit`` code (also from
  the start function), 134 after a trap (with a ``lunatic: trap:`` line), 137
  when it was killed because a linked child died; a child's ``proc_exit``
  does not set it;
* a child that ends abnormally while main runs is reported on stderr as
  ``lunatic: process UUID (FUNCTION) failed: ...`` unless ``--quiet``/``-q``,
  before main hears of it; children killed by main's own end are not;
* children share the main environment's WASI settings: ``argv`` (whose
  ``argv[0]`` is the program name), ``--env`` and ``--dir``;
* a module importing a namespace the runtime does not provide is a usage
  error (status 2, one line).

Every test runs ``python -m lunatic_api`` in a subprocess, the way a user
does, so abandoning processes really ends the command.  Children report back
to the main process with messages or links, never with timing.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from lunatic_api.context import host_classes
from tests.guest import bare_module, imports_of, wat_bytes

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120

# --------------------------------------------------------------------------- guests

# Helpers every program has.  Scratch memory: the iovec at 0, fd_write's count
# at 8, inherit_spawn's out-pointer at 16, WASI size results at 24 and 28.
HELPERS = (
    # $write(fd, ptr, len): one fd_write of one buffer
    """(func $write (param $fd i32) (param $ptr i32) (param $len i32)
      (i32.store (i32.const 0) (local.get $ptr))
      (i32.store (i32.const 4) (local.get $len))
      (drop (call $wasi_snapshot_preview1.fd_write
        (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))""",
    # $spawn(link, name_ptr, name_len) -> child handle: inherit_spawn without
    # params; traps if it returns an error
    """(func $spawn (param $link i64) (param $name i32) (param $len i32) (result i64)
      (if (call $lunatic::process.inherit_spawn (local.get $link) (local.get $name)
                                                (local.get $len) (i32.const 0) (i32.const 0)
                                                (i32.const 16))
        (then unreachable))
      (i64.load (i32.const 16)))""",
    # $send_self(to): send `to` a message carrying a handle to the caller
    """(func $send_self (param $to i64)
      (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
      (drop (call $lunatic::message.push_process (call $lunatic::process.this)))
      (call $lunatic::message.send (local.get $to)))""",
    # $notify(to): send `to` an empty message
    """(func $notify (param $to i64)
      (call $lunatic::message.create_data (i64.const 0) (i64.const 0))
      (call $lunatic::message.send (local.get $to)))""",
    # $wait_data: wait for a data message (trap if a signal comes instead)
    """(func $wait_data
      (if (call $lunatic::message.receive (i64.const 0) (i32.const 0)) (then unreachable)))""",
    # $parent -> handle: wait for the message $send_self sent, take the handle
    """(func $parent (result i64)
      (call $wait_data)
      (call $lunatic::message.take_process (i64.const 0)))""",
    # $dump_args / $dump_environ: write the NUL-separated strings to stdout
    """(func $dump_args
      (drop (call $wasi_snapshot_preview1.args_sizes_get (i32.const 24) (i32.const 28)))
      (drop (call $wasi_snapshot_preview1.args_get (i32.const 4096) (i32.const 8192)))
      (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 28))))""",
    """(func $dump_environ
      (drop (call $wasi_snapshot_preview1.environ_sizes_get (i32.const 24) (i32.const 28)))
      (drop (call $wasi_snapshot_preview1.environ_get (i32.const 4096) (i32.const 8192)))
      (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 28))))""",
)


class Program:
    """A guest under construction: ``s(text)`` places a string in memory."""

    def __init__(self) -> None:
        self._data: list[tuple[int, bytes]] = []
        self._next = 1024

    def s(self, text: str) -> str:
        """``(i32.const PTR) (i32.const LEN)`` of ``text`` (UTF-8) in the guest's memory."""
        blob = text.encode()
        offset, self._next = self._next, self._next + len(blob)
        assert self._next <= 4096, "strings overflow into the WASI buffers"
        self._data.append((offset, blob))
        return f"(i32.const {offset}) (i32.const {len(blob)})"

    def ln(self, text: str) -> str:
        """``s(text)`` with a newline added."""
        return self.s(text + "\n")

    def wat(self, *functions: str) -> str:
        """The module: the Lunatic and WASI imports it calls, one memory page, the
        helpers and ``functions``."""
        body = [*HELPERS, *functions]
        text = "\n".join(body)
        imports = [line for line in IMPORTS
                   if re.search(re.escape(_import_id(line)) + r"(?![\w.:-])", text)]
        return bare_module(*imports, '(memory (export "memory") 1)',
                           *(f'(data (i32.const {offset}) "{wat_bytes(blob)}")'
                             for offset, blob in self._data), *body)


#: Import lines of every Lunatic and WASI host function (ids ``$namespace.name``);
#: a program imports those it calls (fewer wrappers to generate: faster start).
IMPORTS = [line.strip() for cls in host_classes() for line in imports_of(cls).splitlines()
           if line.strip().startswith("(import ")]


def _import_id(line: str) -> str:
    """``$namespace.name`` of an import line."""
    return line.split("(func ", 1)[1].split(" ", 1)[0].rstrip(")")


def abandoning_guest(backend: str) -> str:
    """Children report in, then main ends while they sleep, wait and keep busy.

    ``busy`` loops calling a host function; ``spinner`` loops in pure wasm,
    on wasmtime only: wasmer holds the GIL while wasm runs, so a pure-wasm
    loop stops every other thread (main included) until preemption exists.
    """
    p = Program()
    children = {"sleeper": "(call $lunatic::process.sleep_ms (i64.const 1000000000))",
                "waiter": "(call $wait_data)",
                "busy": "(loop $forever (drop (call $wasi_snapshot_preview1.sched_yield)) "
                        "(br $forever))"}
    if backend == "wasmtime":
        children["spinner"] = "(loop $forever (br $forever))"
    waits = "(call $wait_data)" * len(children)
    spawns = "".join(f"(call $send_self (call $spawn (i64.const 0) {p.s(name)}))"
                     for name in children)
    funcs = [f"""(func (export "{name}") (local $parent i64)
      (local.set $parent (call $parent))
      (call $write (i32.const 1) {p.ln(f"{name} running")})
      (call $notify (local.get $parent))
      {idle})""" for name, idle in children.items()]
    return p.wat(*funcs, f"""(func (export "_start")
      {spawns}
      {waits}
      (call $write (i32.const 1) {p.ln("main done")}))""")


SLEEPER = '(func (export "sleeper") (call $lunatic::process.sleep_ms (i64.const 1000000000)))'


def exiting_guest(code: int) -> str:
    """Main spawns two sleeping children, one linked, then calls ``proc_exit(code)``.

    The linked one is killed by main's death, after main ended: not reported.
    """
    p = Program()
    return p.wat(SLEEPER, f"""(func (export "_start")
          (drop (call $spawn (i64.const 0) {p.s("sleeper")}))
          (drop (call $spawn (i64.const 1) {p.s("sleeper")}))
          (call $wasi_snapshot_preview1.proc_exit (i32.const {code})))""")


def start_exit_guest(code: int) -> str:
    """``proc_exit(code)`` in the module's start function, before ``_start``."""
    return Program().wat("(func $init (call $wasi_snapshot_preview1.proc_exit "
                         f"(i32.const {code})))", "(start $init)", '(func (export "_start"))')


def trapping_main_guest() -> str:
    """Main spawns a linked sleeping child, writes a line, then traps."""
    p = Program()
    return p.wat(
        SLEEPER, "(func $main_fails unreachable)",
        f"""(func (export "_start")
          (drop (call $spawn (i64.const 1) {p.s("sleeper")}))
          (call $write (i32.const 1) {p.ln("main before trap")})
          (call $main_fails))""")


#: children that end abnormally, each in its own way
FAILING_CHILDREN = {
    "crash": "(call $child_fails)",
    "exit5": "(call $wasi_snapshot_preview1.proc_exit (i32.const 5))",
    "host_trap": "(call $lunatic::error.drop (i64.const 77))",
}


def watching_guest(child: str) -> str:
    """Main links to a failing child with tag 7 and gets its death as a signal message.

    Main writes ``main saw tag 7`` and returns normally (exit status 0).
    """
    p = Program()
    return p.wat(
        "(func $child_fails unreachable)",
        f'(func (export "{child}") {FAILING_CHILDREN[child]})',
        f"""(func (export "_start")
          (call $lunatic::process.die_when_link_dies (i32.const 0))
          (drop (call $spawn (i64.const 7) {p.s(child)}))
          (if (i32.ne (call $lunatic::message.receive (i64.const 0) (i32.const 0))
                      (i32.const 1))
            (then unreachable))
          (if (i64.ne (call $lunatic::message.get_tag) (i64.const 7)) (then unreachable))
          (call $write (i32.const 1) {p.ln("main saw tag 7")}))""")


def killed_main_guest() -> str:
    """Main links to a child that traps, then waits: the child's death kills it."""
    p = Program()
    return p.wat(
        "(func $child_fails unreachable)",
        '(func (export "crash") (call $child_fails))',
        f"""(func (export "_start")
          (drop (call $spawn (i64.const 1) {p.s("crash")}))
          (call $wait_data)
          (call $write (i32.const 1) {p.ln("main survived")}))""")


def args_guest() -> str:
    """Main writes its argv, then a child writes its own; main waits for it."""
    p = Program()
    return p.wat(
        """(func (export "child")
          (local $parent i64)
          (local.set $parent (call $parent))
          (call $dump_args)
          (call $notify (local.get $parent)))""",
        f"""(func (export "_start")
          (call $dump_args)
          (call $send_self (call $spawn (i64.const 0) {p.s("child")}))
          (call $wait_data))""")


def environment_guest() -> str:
    """A child writes its environment, the guest name of fd 3 (the first preopen) and
    creates ``child.txt`` in that directory; main waits for it."""
    p = Program()
    return p.wat(
        f"""(func (export "child")
          (local $parent i64) (local $fd i32)
          (local.set $parent (call $parent))
          (call $dump_environ)
          (call $write (i32.const 1) {p.s("|")})
          (if (call $wasi_snapshot_preview1.fd_prestat_get (i32.const 3) (i32.const 24))
            (then unreachable))
          (drop (call $wasi_snapshot_preview1.fd_prestat_dir_name
            (i32.const 3) (i32.const 8192) (i32.load (i32.const 28))))
          (call $write (i32.const 1) (i32.const 8192) (i32.load (i32.const 28)))
          ;; path_open(3, follow symlinks, "child.txt", O_CREAT|O_TRUNC, all rights)
          (if (call $wasi_snapshot_preview1.path_open
                (i32.const 3) (i32.const 1) {p.s("child.txt")} (i32.const 9)
                (i64.const 0x1fffffff) (i64.const 0x1fffffff) (i32.const 0) (i32.const 32))
            (then unreachable))
          (local.set $fd (i32.load (i32.const 32)))
          (call $write (local.get $fd) {p.ln("written by a child")})
          (drop (call $wasi_snapshot_preview1.fd_close (local.get $fd)))
          (call $notify (local.get $parent)))""",
        f"""(func (export "_start")
          (call $send_self (call $spawn (i64.const 0) {p.s("child")}))
          (call $wait_data))""")


# --------------------------------------------------------------------------- helpers


def write(path: Path, text: str) -> str:
    """Write a guest file; return its path as a string."""
    path.write_text(text)
    return str(path)


def lunatic(backend: str | None, *argv: str) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m lunatic_api [--backend B] argv...`` and capture its output."""
    options = [] if backend is None else ["--backend", backend]
    env = {k: v for k, v in os.environ.items() if k != "LUNATIC_BACKEND"}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "lunatic_api", *options, *argv],
                          capture_output=True, env=env, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


UUID = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def failure_lines(stderr: bytes) -> list[str]:
    """The ``lunatic: process ... failed/killed: ...`` report lines on stderr."""
    return [line for line in stderr.decode().splitlines()
            if re.match(rf"lunatic: process {UUID} \(", line)]


# --------------------------------------------------------------------------- main and children


def test_main_ending_abandons_running_children(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "abandon.wat", abandoning_guest(backend)))
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert lines[-1] == "main done"
    children = ["busy", "sleeper", "waiter"] + (["spinner"] if backend == "wasmtime" else [])
    assert sorted(lines[:-1]) == sorted(f"{name} running" for name in children)


@pytest.mark.parametrize("code", [0, 42])
def test_exit_status_is_mains_proc_exit_code(backend: str, tmp_path: Path, code: int) -> None:
    proc = lunatic(backend, write(tmp_path / "exit.wat", exiting_guest(code)))
    # the linked child killed by main's end is abandoned, not reported
    assert (proc.returncode, proc.stdout, proc.stderr) == (code, b"", b"")


def test_proc_exit_in_start_function(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "start.wat", start_exit_guest(9)))
    assert (proc.returncode, proc.stdout, proc.stderr) == (9, b"", b"")


def test_main_trap_exits_134(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "trap.wat", trapping_main_guest()))
    assert proc.returncode == 134
    assert proc.stdout == b"main before trap\n"
    err = proc.stderr.decode()
    assert err.startswith("lunatic: trap: "), err
    assert "unreachable" in err.splitlines()[0] and "main_fails" in err
    assert failure_lines(proc.stderr) == [] and "Traceback" not in err


@pytest.mark.parametrize("child, reason", [("crash", "unreachable"), ("exit5", "proc_exit(5)"),
                                           ("host_trap", "unknown error handle 77")])
def test_failing_child_is_reported(backend: str, tmp_path: Path, child: str,
                                   reason: str) -> None:
    proc = lunatic(backend, write(tmp_path / "watch.wat", watching_guest(child)))
    assert (proc.returncode, proc.stdout) == (0, b"main saw tag 7\n"), proc.stderr.decode()
    [line] = failure_lines(proc.stderr)
    assert re.match(rf"lunatic: process {UUID} \({child}\) failed: ", line), line
    assert reason in line
    # a report's continuation lines (a backtrace) are indented under it
    others = [ln for ln in proc.stderr.decode().splitlines() if ln != line]
    assert all(ln.startswith("    ") for ln in others), others


@pytest.mark.parametrize("flag", ["-q", "--quiet"])
def test_quiet_hides_child_failures(backend: str, tmp_path: Path, flag: str) -> None:
    proc = lunatic(backend, flag, write(tmp_path / "watch.wat", watching_guest("crash")))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"main saw tag 7\n", b"")


def test_main_killed_by_linked_child_exits_137(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "killed.wat", killed_main_guest()))
    assert (proc.returncode, proc.stdout) == (137, b"")
    lines = proc.stderr.decode().splitlines()
    assert "lunatic: the main process was killed: a linked process died" in lines
    [child] = failure_lines(proc.stderr)
    assert re.match(rf"lunatic: process {UUID} \(crash\) failed: .*unreachable", child)
    # the child's report comes first: it says why main was killed
    assert lines.index(child) < lines.index(
        "lunatic: the main process was killed: a linked process died")


def test_main_killed_quiet(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, "-q", write(tmp_path / "killed.wat", killed_main_guest()))
    assert (proc.returncode, proc.stdout) == (137, b"")
    assert proc.stderr == b"lunatic: the main process was killed: a linked process died\n"


# --------------------------------------------------------------------------- shared WASI settings


def test_argv0_is_the_program_name_for_children_too(backend: str, tmp_path: Path) -> None:
    file = write(tmp_path / "args.wat", args_guest())
    proc = lunatic(backend, file, "one", "two words", "-q")
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr.decode()
    argv = f"{file}\0one\0two words\0-q\0".encode()
    assert proc.stdout == argv + argv  # main's, then the child's


def test_env_and_dir_reach_children(backend: str, tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    proc = lunatic(backend, "--env", "A=1", "--env", "B=two", "--dir", f"{shared}::/data",
                   write(tmp_path / "env.wat", environment_guest()))
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr.decode()
    assert proc.stdout == b"A=1\0B=two\0|/data"
    assert (shared / "child.txt").read_bytes() == b"written by a child\n"


# --------------------------------------------------------------------------- usage


def test_unknown_imports_are_a_usage_error(backend: str, tmp_path: Path) -> None:
    # lunatic::plugin exists for plugin modules only (spec section 7.10)
    wat = bare_module('(import "lunatic::nope" "f" (func))',
                      '(import "lunatic::plugin" "add_function_type" '
                      "(func (param i32 i32 i32 i32 i32) (result i32)))",
                      '(import "lunatic::process" "this" (func))',
                      '(func (export "_start"))')
    proc = lunatic(backend, write(tmp_path / "unknown.wat", wat))
    lines = proc.stderr.decode().splitlines()
    assert (proc.returncode, proc.stdout, len(lines)) == (2, b"", 1), lines
    assert lines[0].startswith("lunatic: error: ")
    assert "lunatic::nope.f" in lines[0] and "lunatic::plugin.add_function_type" in lines[0]
    assert "lunatic::process.this" in lines[0]  # imported with the wrong signature


def test_help_mentions_quiet() -> None:
    proc = lunatic(None, "--help")
    assert (proc.returncode, proc.stderr) == (0, b"")
    assert b"--quiet" in proc.stdout and b"-q" in proc.stdout
