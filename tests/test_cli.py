"""The ``lunatic`` command (lunatic_api.cli): WASI guests run end to end.

Most tests run the real command in a subprocess (``python -m lunatic_api``) on
the engine under test; a few call ``main()`` or the parsing helpers directly.
Guests are small WAT modules written here with hand-written
``wasi_snapshot_preview1`` imports (the standard preview1 signatures).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

import lunatic_api.cli as cli
from funk.backends.base import CompiledModule
from lunatic_api.__main__ import main as entry_main
from tests.guest import bare_module, wat_bytes

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 120

# --------------------------------------------------------------------------- guests

WASI_SIGNATURES = {
    "fd_write": "(param i32 i32 i32 i32) (result i32)",
    "fd_read": "(param i32 i32 i32 i32) (result i32)",
    "fd_close": "(param i32) (result i32)",
    "fd_prestat_get": "(param i32 i32) (result i32)",
    "fd_prestat_dir_name": "(param i32 i32 i32) (result i32)",
    "path_open": "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
    "args_sizes_get": "(param i32 i32) (result i32)",
    "args_get": "(param i32 i32) (result i32)",
    "environ_sizes_get": "(param i32 i32) (result i32)",
    "environ_get": "(param i32 i32) (result i32)",
    "proc_exit": "(param i32)",
}

# $write(fd, ptr, len): one fd_write of one iovec (kept at address 0); a failing
# fd_write exits with 100 + errno so a test can tell what went wrong
WRITE_HELPER = """
(func $write (param $fd i32) (param $ptr i32) (param $len i32)
  (local $err i32)
  (i32.store (i32.const 0) (local.get $ptr))
  (i32.store (i32.const 4) (local.get $len))
  (local.set $err (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8)))
  (if (local.get $err) (then (call $proc_exit (i32.add (i32.const 100) (local.get $err))))))
"""

# $check(errno, step): exit with status `step` if a WASI call failed
CHECK_HELPER = """
(func $check (param $err i32) (param $step i32)
  (if (local.get $err) (then (call $proc_exit (local.get $step)))))
"""


def wasi_guest(*items: str, imports: Sequence[str] = (), data: Sequence[tuple[int, bytes]] = (),
               pages: int = 1) -> str:
    """A WASI command: the imports named (plus fd_write/proc_exit), memory, helpers, ``items``."""
    names = ["fd_write", "proc_exit", *(n for n in imports if n not in ("fd_write", "proc_exit"))]
    parts = [f'(import "wasi_snapshot_preview1" "{n}" (func ${n} {WASI_SIGNATURES[n]}))'
             for n in names]
    parts.append(f'(memory (export "memory") {pages})')
    parts += [f'(data (i32.const {offset}) "{wat_bytes(blob)}")' for offset, blob in data]
    parts += [WRITE_HELPER, CHECK_HELPER, *items]
    return bare_module(*parts)


HELLO = wasi_guest(
    '(func (export "_start") (call $write (i32.const 1) (i32.const 64) (i32.const 13)))',
    data=[(64, b"hello, world\n")])


def dump_guest(sizes_get: str, get: str, exit_with_count: bool) -> str:
    """Writes the string buffer of ``args_get``/``environ_get`` to stdout (NUL-separated).

    Pointers go at 1024, strings at 64 KiB (16 pages of memory in all).  With
    ``exit_with_count`` the guest exits with the count (argc) it was given.
    """
    finish = "(call $proc_exit (i32.load (i32.const 16)))" if exit_with_count else ""
    return wasi_guest(
        f"""(func (export "_start")
          (call $check (call ${sizes_get} (i32.const 16) (i32.const 20)) (i32.const 10))
          (call $check (call ${get} (i32.const 1024) (i32.const 65536)) (i32.const 11))
          (call $write (i32.const 1) (i32.const 65536) (i32.load (i32.const 20)))
          {finish})""",
        imports=[sizes_get, get], pages=16)


ARGS = dump_guest("args_sizes_get", "args_get", exit_with_count=True)
ENVIRON = dump_guest("environ_sizes_get", "environ_get", exit_with_count=False)


def exit_guest(code: int | None) -> str:
    """``proc_exit(code)``, or a ``_start`` that just returns when ``code`` is None."""
    body = "" if code is None else f"(call $proc_exit (i32.const {code}))"
    return wasi_guest(f'(func (export "_start") {body})')


# writes "before\n", then traps two calls deep
TRAP = wasi_guest(
    "(func $innermost unreachable)",
    "(func $middle (call $innermost))",
    '(func (export "_start") (call $write (i32.const 1) (i32.const 64) (i32.const 7))'
    "  (call $middle))",
    data=[(64, b"before\n")])

# fd 3 (the first preopen): print its guest name and "\n" to stdout, then copy
# in.txt (at most 1000 bytes) to a new out.txt and to stdout.  A failing step
# exits with its number (20..28).
COPY = wasi_guest(
    """(func (export "_start")
      (local $len i32) (local $in i32) (local $out i32)
      (call $check (call $fd_prestat_get (i32.const 3) (i32.const 16)) (i32.const 20))
      (if (i32.load8_u (i32.const 16)) (then (call $proc_exit (i32.const 21))))
      (local.set $len (i32.load (i32.const 20)))
      (call $check (call $fd_prestat_dir_name (i32.const 3) (i32.const 1024) (local.get $len))
                   (i32.const 22))
      (call $write (i32.const 1) (i32.const 1024) (local.get $len))
      (call $write (i32.const 1) (i32.const 200) (i32.const 1))
      (call $check (call $path_open (i32.const 3) (i32.const 1) (i32.const 128) (i32.const 6)
                         (i32.const 0) (i64.const 0x1fffffff) (i64.const 0x1fffffff)
                         (i32.const 0) (i32.const 24))
                   (i32.const 23))
      (local.set $in (i32.load (i32.const 24)))
      (i32.store (i32.const 32) (i32.const 2048))
      (i32.store (i32.const 36) (i32.const 1000))
      (call $check (call $fd_read (local.get $in) (i32.const 32) (i32.const 1) (i32.const 40))
                   (i32.const 24))
      (call $check (call $fd_close (local.get $in)) (i32.const 25))
      (call $check (call $path_open (i32.const 3) (i32.const 1) (i32.const 144) (i32.const 7)
                         (i32.const 9) (i64.const 0x1fffffff) (i64.const 0x1fffffff)
                         (i32.const 0) (i32.const 28))
                   (i32.const 26))
      (local.set $out (i32.load (i32.const 28)))
      (call $write (local.get $out) (i32.const 2048) (i32.load (i32.const 40)))
      (call $check (call $fd_close (local.get $out)) (i32.const 27))
      (call $write (i32.const 1) (i32.const 2048) (i32.load (i32.const 40))))""",
    imports=["fd_prestat_get", "fd_prestat_dir_name", "path_open", "fd_read", "fd_close"],
    data=[(128, b"in.txt"), (144, b"out.txt"), (200, b"\n")])

# "ready\n" on stderr, then writes "x" to stdout forever
SPIN = wasi_guest(
    """(func (export "_start")
      (call $write (i32.const 2) (i32.const 64) (i32.const 6))
      (loop $forever (call $write (i32.const 1) (i32.const 72) (i32.const 1)) (br $forever)))""",
    data=[(64, b"ready\n"), (72, b"x")])


# --------------------------------------------------------------------------- helpers


def write(path: Path, text: str) -> str:
    """Write a guest file; return its path as a string."""
    path.write_text(text)
    return str(path)


def lunatic(backend: str | None, *argv: str, cwd: Path | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m lunatic_api [--backend B] argv...`` and capture its output."""
    options = [] if backend is None else ["--backend", backend]
    if env is None:  # the engine is the one asked for, whatever the caller's environment
        full_env = {k: v for k, v in os.environ.items() if k != cli.BACKEND_ENV}
    else:
        full_env = dict(env)
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", "lunatic_api", *options, *argv],
                          capture_output=True, cwd=cwd, env=full_env, timeout=TIMEOUT,
                          stdin=subprocess.DEVNULL)


def error_line(proc: subprocess.CompletedProcess[bytes]) -> str:
    """The single ``lunatic: error:`` line of a failed run (asserting status 2, no stdout)."""
    lines = proc.stderr.decode().splitlines()
    assert proc.returncode == 2, proc.stderr.decode()
    assert len(lines) == 1, lines
    assert lines[0].startswith("lunatic: error: "), lines
    assert proc.stdout == b""
    return lines[0]


# --------------------------------------------------------------------------- running guests


def test_hello_world(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "hello.wat", HELLO))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello, world\n", b"")


def test_binary_wasm_file(backend: str, tmp_path: Path) -> None:
    import wasmtime

    path = tmp_path / "hello.wasm"
    path.write_bytes(bytes(wasmtime.wat2wasm(HELLO)))
    proc = lunatic(backend, str(path))
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello, world\n", b"")


def test_args_reach_the_guest(backend: str, tmp_path: Path) -> None:
    file = write(tmp_path / "args.wat", ARGS)
    guest_args = ["a1", "", "two words", "--env", "X=1", "--help", "--", "-v", "ünï"]
    proc = lunatic(backend, file, *guest_args)
    assert proc.stderr == b""
    assert proc.stdout.split(b"\0")[:-1] == [file.encode()] + [a.encode() for a in guest_args]
    assert proc.returncode == 1 + len(guest_args)  # the guest exits with argc


def test_argv0_is_the_file_as_given(backend: str, tmp_path: Path) -> None:
    write(tmp_path / "args.wat", ARGS)
    proc = lunatic(backend, "./args.wat", "x", cwd=tmp_path)
    assert proc.stdout == b"./args.wat\0x\0"
    assert proc.returncode == 2


def test_double_dash_before_file(backend: str, tmp_path: Path) -> None:
    write(tmp_path / "-args.wat", ARGS)
    proc = lunatic(backend, "--", "-args.wat", "--", "y", cwd=tmp_path)
    assert proc.stdout == b"-args.wat\0--\0y\0"
    assert (proc.returncode, proc.stderr) == (3, b"")


def environ_of(proc: subprocess.CompletedProcess[bytes]) -> list[str]:
    """The guest's environment as printed by ``ENVIRON``: ``KEY=VALUE`` strings."""
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr.decode()
    return [s.decode() for s in proc.stdout.split(b"\0")[:-1]]


def test_env_empty_by_default(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "env.wat", ENVIRON),
                   env={**os.environ, "LUNATIC_TEST_HOST": "1"})
    assert environ_of(proc) == []


def test_env_settings(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, "--env", "A=1", "--env=B=x=y", "--env", "EMPTY=", "--env", "A=2",
                   write(tmp_path / "env.wat", ENVIRON))
    assert environ_of(proc) == ["A=2", "B=x=y", "EMPTY="]


def test_inherit_env_with_override(backend: str, tmp_path: Path) -> None:
    host = {"PATH": os.environ.get("PATH", "/usr/bin"), "LUNATIC_T1": "host",
            "LUNATIC_T2": "kept"}
    proc = lunatic(backend, "--inherit-env", "--env", "LUNATIC_T1=guest", "--env", "NEW=n",
                   write(tmp_path / "env.wat", ENVIRON), env=host)
    env = environ_of(proc)
    assert "LUNATIC_T1=guest" in env and "LUNATIC_T1=host" not in env
    assert "LUNATIC_T2=kept" in env and "NEW=n" in env
    assert f"PATH={host['PATH']}" in env
    assert len({e.split("=", 1)[0] for e in env}) == len(env)


def test_dir_with_guest_name(backend: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "in.txt").write_bytes(b"file contents\n")
    proc = lunatic(backend, "--dir", f"{data}::/guest", write(tmp_path / "copy.wat", COPY))
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr.decode()
    assert proc.stdout == b"/guest\nfile contents\n"
    assert (data / "out.txt").read_bytes() == b"file contents\n"


def test_dir_default_guest_name_is_host_as_written(backend: str, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "in.txt").write_bytes(b"relative\n")
    write(tmp_path / "copy.wat", COPY)
    proc = lunatic(backend, "--dir", "d", "copy.wat", cwd=tmp_path)
    assert (proc.returncode, proc.stderr) == (0, b""), proc.stderr.decode()
    assert proc.stdout == b"d\nrelative\n"
    assert (tmp_path / "d" / "out.txt").read_bytes() == b"relative\n"


def test_no_dir_no_preopen(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "copy.wat", COPY))
    assert (proc.returncode, proc.stdout, proc.stderr) == (20, b"", b"")  # fd_prestat_get fails


@pytest.mark.parametrize("code, status", [(None, 0), (0, 0), (3, 3), (255, 255), (256, 0)])
def test_exit_status(backend: str, tmp_path: Path, code: int | None, status: int) -> None:
    proc = lunatic(backend, write(tmp_path / "exit.wat", exit_guest(code)))
    assert (proc.returncode, proc.stdout, proc.stderr) == (status, b"", b"")


def test_trap(backend: str, tmp_path: Path) -> None:
    proc = lunatic(backend, write(tmp_path / "trap.wat", TRAP))
    assert proc.returncode == cli.EXIT_TRAP == 134
    assert proc.stdout == b"before\n"
    lines = proc.stderr.decode().splitlines()
    assert lines[0].startswith("lunatic: trap: ")
    assert "unreachable" in lines[0]
    assert "Traceback" not in proc.stderr.decode()
    assert lines[1] == "guest backtrace:"
    frames = "\n".join(lines[2:])
    assert "innermost" in frames and "middle" in frames


def test_trap_in_start_function(backend: str, tmp_path: Path) -> None:
    wat = wasi_guest("(func $boom unreachable)", "(start $boom)", '(func (export "_start"))')
    proc = lunatic(backend, write(tmp_path / "start.wat", wat))
    assert proc.returncode == 134
    assert proc.stderr.decode().startswith("lunatic: trap: ")


# --------------------------------------------------------------------------- user errors


def test_missing_file(tmp_path: Path) -> None:
    line = error_line(lunatic(None, str(tmp_path / "nope.wasm")))
    assert "nope.wasm" in line and "No such file" in line


def test_directory_as_file(tmp_path: Path) -> None:
    line = error_line(lunatic(None, str(tmp_path)))
    assert "cannot read" in line


def test_unreadable_file() -> None:
    # a file whose read fails even for root (CI runs as root, so chmod 0 would not do):
    # reading a process's own memory file from offset 0 is an I/O error
    assert "cannot read" in error_line(lunatic(None, "/proc/self/mem"))


@pytest.mark.parametrize("content", [b"hello there", b"\0asm\x01\0\0\0\x99garbage",
                                     b"(module (func", b""])
def test_not_wasm(backend: str, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.wasm"
    path.write_bytes(content)
    line = error_line(lunatic(backend, str(path)))
    assert line.startswith(f"lunatic: error: {path}: ")


def test_no_start_export(backend: str, tmp_path: Path) -> None:
    wat = wasi_guest('(func (export "main"))')
    assert "_start" in error_line(lunatic(backend, write(tmp_path / "lib.wat", wat)))


def test_start_is_not_a_function(backend: str, tmp_path: Path) -> None:
    wat = wasi_guest('(global (export "_start") i32 (i32.const 0))')
    line = error_line(lunatic(backend, write(tmp_path / "global.wat", wat)))
    assert "_start is not a function" in line


def test_wat_error_names_the_position(tmp_path: Path) -> None:
    line = error_line(lunatic(None, write(tmp_path / "broken.wat", "(module\n  (func")))
    assert line.startswith(f"lunatic: error: {tmp_path}/broken.wat: invalid WAT: ")
    assert "(line 2, column" in line


def test_unknown_imports(backend: str, tmp_path: Path) -> None:
    wat = bare_module('(import "env" "mystery" (func (param i32)))',
                      '(import "wasi_snapshot_preview1" "not_a_wasi_call" (func))',
                      '(func (export "_start"))')
    line = error_line(lunatic(backend, write(tmp_path / "imports.wat", wat)))
    assert "env.mystery" in line and "not_a_wasi_call" in line


@pytest.mark.parametrize("spec", ["{tmp}/missing", "{tmp}/file", "{tmp}/missing::/g",
                                  "::/guest", "{tmp}::", ""])
def test_bad_dir(tmp_path: Path, spec: str) -> None:
    (tmp_path / "file").write_text("not a directory")
    hello = write(tmp_path / "hello.wat", HELLO)
    line = error_line(lunatic(None, "--dir", spec.format(tmp=tmp_path), hello))
    assert "--dir" in line


@pytest.mark.parametrize("spec", ["NOEQUALS", "=value", ""])
def test_bad_env(tmp_path: Path, spec: str) -> None:
    hello = write(tmp_path / "hello.wat", HELLO)
    assert "--env" in error_line(lunatic(None, "--env", spec, hello))


def test_bad_backend_variable(tmp_path: Path) -> None:
    hello = write(tmp_path / "hello.wat", HELLO)
    proc = lunatic(None, hello, env={**os.environ, "LUNATIC_BACKEND": "v8"})
    assert "LUNATIC_BACKEND" in error_line(proc)


@pytest.mark.parametrize("argv", [[], ["--backend", "v8", "x.wasm"], ["--bogus", "x.wasm"],
                                  ["--env"], ["--back", "wasmer", "x.wasm"]])
def test_usage_errors(argv: list[str]) -> None:
    proc = lunatic(None, *argv)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "lunatic: error: " in err and "Traceback" not in err


def test_help() -> None:
    proc = lunatic(None, "--help")
    assert proc.returncode == 0
    assert b"--inherit-env" in proc.stdout and b"LUNATIC_BACKEND" in proc.stdout


# --------------------------------------------------------------------------- process behaviour


def test_ctrl_c_exits_130_quietly(backend: str, tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with subprocess.Popen([sys.executable, "-m", "lunatic_api", "--backend", backend,
                           write(tmp_path / "spin.wat", SPIN)],
                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, env=env) as proc:
        assert proc.stderr is not None
        try:
            assert proc.stderr.readline() == b"ready\n"
            proc.send_signal(signal.SIGINT)
            rest = proc.stderr.read()
            assert proc.wait(timeout=TIMEOUT) == 130
        finally:
            proc.kill()
    assert rest == b""


def test_console_script(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "lunatic"
    assert script.exists(), f"{script} is not installed: scripts/setup runs pip install -e ."
    proc = subprocess.run([str(script), write(tmp_path / "hello.wat", HELLO)],
                          capture_output=True, timeout=TIMEOUT)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, b"hello, world\n", b"")


def test_backend_variable_selects_the_engine(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    file = write(tmp_path / "hello.wat", HELLO)
    assert cli.parse_config([file], environ={}).backend == "wasmtime"
    assert cli.parse_config([file], environ={"LUNATIC_BACKEND": "wasmer"}).backend == "wasmer"
    assert cli.parse_config(["--backend", "wasmtime", file],
                            environ={"LUNATIC_BACKEND": "wasmer"}).backend == "wasmtime"
    seen: list[str] = []
    real_compile = cli.funk.compile

    def spy(wasm: bytes, backend: str = "wasmtime") -> CompiledModule:
        seen.append(backend)
        return real_compile(wasm, backend)

    monkeypatch.setattr(cli.funk, "compile", spy)
    monkeypatch.setenv("LUNATIC_BACKEND", "wasmer")
    assert cli.main([file]) == 0
    assert seen == ["wasmer"]


# --------------------------------------------------------------------------- in-process


def test_main_in_process(backend: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--backend", backend, write(tmp_path / "hello.wat", HELLO)]) == 0
    assert capfd.readouterr() == ("hello, world\n", "")
    assert entry_main(["--backend", backend, write(tmp_path / "exit.wat", exit_guest(7))]) == 7


def test_main_errors_in_process(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert cli.main([str(tmp_path / "missing.wasm")]) == 2
    out, err = capfd.readouterr()
    assert out == "" and err.count("\n") == 1 and err.startswith("lunatic: error: cannot read")
    assert cli.main([]) == 2
    assert cli.main(["--help"]) == 0


def test_main_keyboard_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                 capfd: pytest.CaptureFixture[str]) -> None:
    def interrupted(config: cli.Config) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert cli.main([write(tmp_path / "hello.wat", HELLO)]) == 130
    assert capfd.readouterr() == ("", "")


def test_split_argv() -> None:
    assert cli.split_argv(["--env", "A=1", "f.wasm", "--env", "x"]) == (
        ["--env", "A=1"], "f.wasm", ["--env", "x"])
    assert cli.split_argv(["--inherit-env", "--dir=d", "f", "-"]) == (
        ["--inherit-env", "--dir=d"], "f", ["-"])
    assert cli.split_argv(["--backend", "wasmer"]) == (["--backend", "wasmer"], None, [])
    assert cli.split_argv(["--", "-f", "a"]) == ([], "-f", ["a"])
    assert cli.split_argv(["--"]) == ([], None, [])


def test_parse_helpers(tmp_path: Path) -> None:
    assert cli.parse_dir(f"{tmp_path}::/g") == ("/g", str(tmp_path))
    assert cli.parse_dir(str(tmp_path)) == (str(tmp_path), str(tmp_path))
    assert cli.parse_env("K=a=b") == ("K", "a=b")
    env = cli.guest_environment(["B=2", "A=x"], inherit=True, host_env={"A": "1", "C": "3"})
    assert env == {"A": "x", "C": "3", "B": "2"}
    assert cli.guest_environment([], inherit=False, host_env={"A": "1"}) == {}
    config = cli.parse_config(["--dir", f"{tmp_path}::/g", "--env", "K=V", "f.wasm", "a"],
                              environ={})
    assert config == cli.Config(file="f.wasm", args=("a",), backend="wasmtime",
                                preopens=(("/g", str(tmp_path)),), env={"K": "V"})
    assert config.argv == ["f.wasm", "a"]
