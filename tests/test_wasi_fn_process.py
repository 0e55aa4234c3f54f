"""WASI process functions through the harness: args, environ, clocks, random,
sched_yield, proc_exit/proc_raise, ``Wasi.run``; plus the constructor's
validation and every stdio mode.
"""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

import pytest

import funk
from lunatic_api.wasi import INHERIT, Errno, Wasi, WasiExit
from lunatic_api.wasi.abi import Filetype, Rights
from tests.wasi_fn_support import MEMORY_SIZE, Guest, open_fds
from tests.wasi_harness import Scratch

STDIN_RIGHTS = int(Rights.fd_read | Rights.poll_fd_readwrite | Rights.fd_filestat_get)
STDOUT_RIGHTS = int(Rights.fd_write | Rights.poll_fd_readwrite | Rights.fd_filestat_get)


# --------------------------------------------------------------------------- args / environ


def _strings(g: Guest, sizes: str, get: str, expected: list[bytes]) -> None:
    """Check ``*_sizes_get`` and the pointer + NUL-terminated layout of ``*_get``."""
    s = Scratch(g.inst)
    count_p, size_p = s.out(4), s.out(4)
    assert getattr(g.x, sizes)(count_p, size_p) == Errno.success
    count, size = s.u32(count_p), s.u32(size_p)
    assert count == len(expected)
    assert size == sum(len(e) + 1 for e in expected)
    ptrs = s.out(4 * count + 4)
    s.memory.write(ptrs, b"\xcc" * (4 * count + 4))
    buf = s.out(size + 4)
    s.memory.write(buf, b"\xdd" * (size + 4))
    assert getattr(g.x, get)(ptrs, buf) == Errno.success
    addrs = [s.u32(ptrs + 4 * i) for i in range(count)]
    pos = buf
    for addr, text in zip(addrs, expected):
        assert addr == pos  # strings packed back to back in order
        assert s.read(addr, len(text) + 1) == text + b"\0"
        assert s.memory.read_cstr(addr) == text
        pos += len(text) + 1
    # nothing written past either region
    assert s.read(ptrs + 4 * count, 4) == b"\xcc" * 4
    assert s.read(buf + size, 4) == b"\xdd" * 4


def test_args_layout(backend: str) -> None:
    args: list[str | bytes] = ["prog.wasm", "", "héllo wörld", "a=b", b"raw\xffbytes"]
    g = Guest(Wasi(args=args), backend)
    _strings(g, "args_sizes_get", "args_get",
             [a if isinstance(a, bytes) else a.encode() for a in args])


def test_args_empty(backend: str) -> None:
    g = Guest(Wasi(), backend)
    _strings(g, "args_sizes_get", "args_get", [])
    # with no arguments even out-of-range pointers have nothing to write
    assert g.x.args_get(MEMORY_SIZE, MEMORY_SIZE) == Errno.success


def test_environ_layout_mapping_and_pairs(backend: str) -> None:
    g = Guest(Wasi(env={"LANG": "C", "EMPTY": "", "EQ": "x=y"}), backend)
    _strings(g, "environ_sizes_get", "environ_get", [b"LANG=C", b"EMPTY=", b"EQ=x=y"])
    g = Guest(Wasi(env=[("B", "2"), ("A", "1"), ("B", "3")]), backend)
    _strings(g, "environ_sizes_get", "environ_get", [b"B=2", b"A=1", b"B=3"])


def test_environ_empty(backend: str) -> None:
    g = Guest(Wasi(), backend)
    _strings(g, "environ_sizes_get", "environ_get", [])


@pytest.mark.parametrize("names", [("args_get", "args"), ("environ_get", "env")])
def test_strings_bad_pointers_trap_and_write_nothing(backend: str,
                                                     names: tuple[str, str]) -> None:
    fn, kw = names
    value = ["first", "second"] if kw == "args" else {"K": "V", "L": "W"}
    g = Guest(Wasi(**{kw: value}), backend)  # type: ignore[arg-type]
    s = Scratch(g.inst)
    ptrs = s.out(8)
    buf = s.out(32)
    s.memory.write(ptrs, b"\x77" * 8)
    s.memory.write(buf, b"\x77" * 32)
    # buffer runs off the end of memory: trap, and no pointer was written
    with pytest.raises(funk.Trap):
        getattr(g.x, fn)(ptrs, MEMORY_SIZE - 3)
    assert s.read(ptrs, 8) == b"\x77" * 8
    # pointer array runs off the end: trap, and no string was written
    with pytest.raises(funk.Trap):
        getattr(g.x, fn)(MEMORY_SIZE - 4, buf)
    assert s.read(buf, 32) == b"\x77" * 32
    # the instance is still usable afterwards
    assert getattr(g.x, fn)(ptrs, buf) == Errno.success


@pytest.mark.parametrize("fn", ["args_sizes_get", "environ_sizes_get"])
def test_sizes_bad_out_pointer_traps(backend: str, fn: str) -> None:
    g = Guest(Wasi(args=["a"], env={"A": "1"}), backend)
    s = Scratch(g.inst)
    ok = s.out(4)
    with pytest.raises(funk.Trap):
        getattr(g.x, fn)(ok, MEMORY_SIZE - 2)
    with pytest.raises(funk.Trap):
        getattr(g.x, fn)(MEMORY_SIZE, ok)


# --------------------------------------------------------------------------- clocks


@pytest.mark.parametrize("clock", [0, 1, 2, 3])
def test_clock_res_get_each_clock(backend: str, clock: int) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    out = s.out(8)
    assert g.x.clock_res_get(clock, out) == Errno.success
    res = s.u64(out)
    assert 0 < res <= 1_000_000_000


@pytest.mark.parametrize("clock", [0, 1, 2, 3])
def test_clock_time_get_each_clock(backend: str, clock: int) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    out = s.out(8)
    assert g.x.clock_time_get(clock, 1, out) == Errno.success
    value = s.u64(out)
    assert value > 0
    if clock == 0:
        assert abs(value - time.time_ns()) < 5_000_000_000
    if clock == 1:
        assert abs(value - time.monotonic_ns()) < 5_000_000_000


@pytest.mark.parametrize("clock", [4, 5, 0xFFFFFFFF])
def test_clock_unknown_id_is_inval(backend: str, clock: int) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    out = s.out(8)
    s.memory.write(out, b"\x5a" * 8)
    assert g.x.clock_time_get(clock, 0, out) == Errno.inval
    assert g.x.clock_res_get(clock, out) == Errno.inval
    assert s.read(out, 8) == b"\x5a" * 8


def test_clock_monotonic_non_decreasing(backend: str) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    out = s.out(8)
    values = []
    for _ in range(200):
        assert g.x.clock_time_get(1, 0, out) == Errno.success
        values.append(s.u64(out))
    assert values == sorted(values)
    time.sleep(0.002)
    assert g.x.clock_time_get(1, 0, out) == Errno.success
    assert s.u64(out) > values[-1]


def test_clock_process_cputime_advances(backend: str) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    out = s.out(8)
    assert g.x.clock_time_get(2, 0, out) == Errno.success
    before = s.u64(out)
    end = time.process_time() + 0.01
    while time.process_time() < end:
        pass
    assert g.x.clock_time_get(2, 0, out) == Errno.success
    assert s.u64(out) > before


def test_clock_bad_out_pointer_traps(backend: str) -> None:
    g = Guest(Wasi(), backend)
    with pytest.raises(funk.Trap):
        g.x.clock_time_get(0, 0, MEMORY_SIZE - 4)
    with pytest.raises(funk.Trap):
        g.x.clock_res_get(0, MEMORY_SIZE)


# --------------------------------------------------------------------------- random / sched / proc


def test_random_get_fills_and_differs(backend: str) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    a, b = s.out(64 + 4), s.out(64)
    s.memory.write(a, bytes(68))
    assert g.x.random_get(a, 64) == Errno.success
    assert g.x.random_get(b, 64) == Errno.success
    ra, rb = bytes(s.read(a, 64)), bytes(s.read(b, 64))
    assert ra != bytes(64) and rb != bytes(64)
    assert ra != rb
    assert s.read(a + 64, 4) == bytes(4)  # nothing past the buffer
    assert len(set(ra)) > 16


def test_random_get_zero_length_and_large(backend: str) -> None:
    g = Guest(Wasi(), backend)
    s = Scratch(g.inst)
    buf = s.out(8)
    s.memory.write(buf, b"\x11" * 8)
    assert g.x.random_get(buf, 0) == Errno.success
    assert s.read(buf, 8) == b"\x11" * 8
    # zero-length at the very end of memory is still in bounds
    assert g.x.random_get(MEMORY_SIZE, 0) == Errno.success
    big = s.alloc(40000, 1)
    assert g.x.random_get(big, 40000) == Errno.success
    assert bytes(s.read(big, 40000)).count(0) < 1000


def test_random_get_out_of_bounds_traps(backend: str) -> None:
    g = Guest(Wasi(), backend)
    with pytest.raises(funk.Trap):
        g.x.random_get(MEMORY_SIZE - 8, 16)


def test_sched_yield(backend: str) -> None:
    g = Guest(Wasi(), backend)
    for _ in range(3):
        assert g.x.sched_yield() == Errno.success


@pytest.mark.parametrize("sig", [0, 2, 9, 15, 255])
def test_proc_raise_is_notsup(backend: str, sig: int) -> None:
    g = Guest(Wasi(), backend)
    assert g.x.proc_raise(sig) == Errno.notsup


@pytest.mark.parametrize("code", [0, 1, 42, 255, 0xFFFFFFFF])
def test_proc_exit_raises_wasiexit(backend: str, code: int) -> None:
    g = Guest(Wasi(), backend)
    with pytest.raises(WasiExit) as info:
        g.x.proc_exit(code)
    assert info.value.code == code
    assert not isinstance(info.value, Exception)  # a BaseException, like SystemExit
    assert str(code) in str(info.value)


_START_EXIT = """
(module
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "bye\\n")
  (data (i32.const 0) "\\10\\00\\00\\00\\04\\00\\00\\00")
  (func (export "_start")
    (drop (call $write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $exit (i32.const 7))
    unreachable))
"""

_START_RETURNS = """
(module
  (import "wasi_snapshot_preview1" "sched_yield" (func $y (result i32)))
  (memory (export "memory") 1)
  (func (export "_start") (drop (call $y))))
"""

_START_TRAPS = """
(module
  (memory (export "memory") 1)
  (func (export "_start") unreachable))
"""

_NO_START = """
(module
  (memory (export "memory") 1)
  (func (export "main")))
"""


def test_run_returns_proc_exit_code(backend: str) -> None:
    out = bytearray()
    wasi = Wasi(stdout=out)
    inst = funk.instantiate(_START_EXIT, [wasi], backend=backend)
    assert wasi.run(inst) == 7
    assert out == b"bye\n"  # what ran before proc_exit took effect
    # proc_exit also propagates from a direct call of _start
    with pytest.raises(WasiExit) as info:
        inst.exports["_start"]()
    assert info.value.code == 7


def test_run_returns_zero_when_start_returns(backend: str) -> None:
    wasi = Wasi()
    inst = funk.instantiate(_START_RETURNS, [wasi], backend=backend)
    assert wasi.run(inst) == 0


def test_run_trap_and_missing_start(backend: str) -> None:
    wasi = Wasi()
    with pytest.raises(funk.Trap):
        wasi.run(funk.instantiate(_START_TRAPS, [wasi], backend=backend))
    with pytest.raises(LookupError):
        wasi.run(funk.instantiate(_NO_START, [wasi], backend=backend))


# --------------------------------------------------------------------------- stdio modes


def test_stdin_bytes_read_in_pieces(backend: str) -> None:
    g = Guest(Wasi(stdin=b"hello world"), backend)
    assert g.read(0, 3, 0, 2) == (Errno.success, b"hello")
    assert g.read(0, 100) == (Errno.success, b" world")
    assert g.read(0, 10) == (Errno.success, b"")  # EOF is a 0-byte read


def test_stdin_bytearray_and_memoryview_are_copied(backend: str) -> None:
    data = bytearray(b"abc")
    g = Guest(Wasi(stdin=data), backend)
    data[:] = b"XYZ"
    assert g.read(0, 10) == (Errno.success, b"abc")
    g = Guest(Wasi(stdin=memoryview(b"mv")), backend)
    assert g.read(0, 10) == (Errno.success, b"mv")


def test_stdin_none_is_empty(backend: str) -> None:
    g = Guest(Wasi(stdin=None), backend)
    assert g.read(0, 16) == (Errno.success, b"")


def test_stdin_path_and_file_object(backend: str, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_bytes(b"from a file")
    g = Guest(Wasi(stdin=src), backend)
    assert g.read(0, 64) == (Errno.success, b"from a file")
    g = Guest(Wasi(stdin=str(src)), backend)
    assert g.read(0, 4) == (Errno.success, b"from")
    with open(src, "rb") as f:
        g = Guest(Wasi(stdin=f), backend)
        assert g.read(0, 64) == (Errno.success, b"from a file")


def test_stdout_stderr_bytearrays_are_separate(backend: str) -> None:
    out, err = bytearray(b"pre:"), bytearray()
    g = Guest(Wasi(stdout=out, stderr=err), backend)
    assert g.write(1, b"to ", b"out") == (Errno.success, 6)
    assert g.write(2, b"to err") == (Errno.success, 6)
    assert g.write(1, b"!") == (Errno.success, 1)
    assert out == b"pre:to out!"  # appended to what was there
    assert err == b"to err"


def test_stdout_none_discards(backend: str) -> None:
    g = Guest(Wasi(stdout=None, stderr=None), backend)
    assert g.write(1, b"abc", b"de") == (Errno.success, 5)
    assert g.write(2, b"x") == (Errno.success, 1)


def test_stdout_path_bound(backend: str, tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_bytes(b"old content that is longer")
    wasi = Wasi(stdout=target, stderr=str(tmp_path / "err.txt"))
    g = Guest(wasi, backend)
    assert g.write(1, b"new") == (Errno.success, 3)
    assert g.write(2, b"E") == (Errno.success, 1)
    wasi.close()
    assert target.read_bytes() == b"new"  # truncated on open
    assert (tmp_path / "err.txt").read_bytes() == b"E"


def test_stdout_file_object(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "fo.txt"
    with open(path, "wb") as f:
        f.write(b"host:")  # flushed by the constructor before the dup
        wasi = Wasi(stdout=f)
        g = Guest(wasi, backend)
        assert g.write(1, b"guest") == (Errno.success, 5)
        wasi.close()
        f.write(b":after")
    assert path.read_bytes() == b"host:guest:after"


def test_stdout_inherit_writes_to_host_fd(backend: str, capfd: pytest.CaptureFixture[str]) -> None:
    g = Guest(Wasi(stdout=INHERIT, stderr=INHERIT), backend)
    assert g.write(1, b"inherited-out") == (Errno.success, 13)
    assert g.write(2, b"inherited-err") == (Errno.success, 13)
    captured = capfd.readouterr()
    assert captured.out == "inherited-out"
    assert captured.err == "inherited-err"
    err, st = g.fdstat(1)
    assert err == Errno.success
    expected = Filetype.character_device if os.isatty(1) else Filetype.unknown
    assert st.filetype == expected


def test_stdio_direction_is_enforced(backend: str) -> None:
    out = bytearray()
    g = Guest(Wasi(stdin=b"in", stdout=out, stderr=out), backend)
    assert g.write(0, b"x")[0] == Errno.badf
    assert g.read(1, 4)[0] == Errno.badf
    assert g.read(2, 4)[0] == Errno.badf
    assert out == b""


def test_stdio_fdstat(backend: str) -> None:
    g = Guest(Wasi(stdin=b"", stdout=bytearray(), stderr=None), backend)
    assert g.fdstat(0) == (Errno.success, (Filetype.unknown, 0, STDIN_RIGHTS, STDIN_RIGHTS))
    for fd in (1, 2):
        assert g.fdstat(fd) == (Errno.success,
                                (Filetype.unknown, 0, STDOUT_RIGHTS, STDOUT_RIGHTS))


# --------------------------------------------------------------------------- constructor errors


def test_preopen_missing_dir_is_valueerror(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="missing"):
        Wasi(preopens={"/x": tmp_path / "missing"})


def test_preopen_of_a_file_is_valueerror(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError):
        Wasi(preopens=[("/f", tmp_path / "f")])


def test_failed_constructor_leaks_no_fds(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    before = open_fds()
    for _ in range(3):
        with pytest.raises(ValueError):
            Wasi(stdout=tmp_path / "o.txt",
                 preopens=[("/ok", tmp_path / "ok"), ("/bad", tmp_path / "nope")])
    assert open_fds() == before


@pytest.mark.parametrize("env", [{"A=B": "1"}, {"": "v"}, [("=", "x")]])
def test_bad_env_name_is_valueerror(env: object) -> None:
    with pytest.raises(ValueError):
        Wasi(env=env)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [
    {"args": ["ok", "bad\0arg"]},
    {"args": [b"b\0"]},
    {"env": {"K\0": "v"}},
    {"env": {"K": "v\0"}},
])
def test_nul_is_valueerror(kw: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Wasi(**kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("kw", [
    {"stdin": 123},
    {"stdin": 1.5},
    {"stdin": ["a"]},
    {"stdout": b"bytes are not a sink"},
    {"stdout": 7},
    {"stderr": object()},
])
def test_bad_stdio_type_is_typeerror(kw: dict[str, object]) -> None:
    with pytest.raises(TypeError):
        Wasi(**kw)  # type: ignore[arg-type]


def test_stdio_object_without_real_fileno_is_rejected() -> None:
    # io.BytesIO has fileno() but no descriptor: a configuration error
    # (io.UnsupportedOperation is a ValueError), raised by the constructor
    with pytest.raises((TypeError, ValueError)):
        Wasi(stdout=io.BytesIO())


def test_bad_socket_option_is_typeerror() -> None:
    # "Bad configuration raises ValueError/TypeError here, not later"
    with pytest.raises(TypeError):
        Wasi(sockets=["not a socket"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        Wasi(sockets=[3])  # type: ignore[list-item]


def test_closed_socket_is_rejected_by_the_constructor() -> None:
    sock = socket.socket()
    sock.close()
    before = open_fds()
    with pytest.raises((ValueError, TypeError)):
        Wasi(sockets=[sock])
    assert open_fds() == before


def test_preopens_numbered_from_3_in_order(backend: str, tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / name).mkdir()
    g = Guest(Wasi(preopens=[("/a", tmp_path / "a"), ("b", tmp_path / "b"),
                             ("/long/name/c", tmp_path / "c")]), backend)
    names = {}
    for fd in (3, 4, 5):
        err, (tag, length) = g.prestat(fd)
        assert err == Errno.success and tag == 0
        err, raw = g.prestat_name(fd, length)
        assert err == Errno.success
        names[fd] = raw[:length]
    assert names == {3: b"/a", 4: b"b", 5: b"/long/name/c"}
    assert g.prestat(6)[0] == Errno.badf


def test_close_closes_host_fds(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    before = open_fds()
    wasi = Wasi(preopens={"/d": tmp_path / "d"}, stdout=tmp_path / "o")
    assert len(open_fds() - before) == 2
    wasi.close()
    assert open_fds() == before
    with Wasi(preopens={"/d": tmp_path / "d"}) as w2:
        assert len(open_fds() - before) == 1
        assert isinstance(w2, Wasi)
    assert open_fds() == before


@pytest.mark.parametrize("mode", ["memory", "path", "file-object", "inherit"])
def test_stdio_is_never_seekable_whatever_its_source(backend: str, tmp_path: Path,
                                                     mode: str) -> None:
    """fd_api: "seeking a stream is spipe" -- stdio is a stream however it is
    configured (wasmtime answers spipe for stdin/stdout/stderr bound to files)."""
    src = tmp_path / "in.txt"
    src.write_bytes(b"abc")
    files = []
    if mode == "memory":
        kw: dict[str, object] = {"stdin": b"abc", "stdout": bytearray(), "stderr": None}
    elif mode == "path":
        kw = {"stdin": src, "stdout": tmp_path / "o", "stderr": tmp_path / "e"}
    elif mode == "file-object":
        files = [open(src, "rb"), open(tmp_path / "o", "wb"), open(tmp_path / "e", "wb")]
        kw = {"stdin": files[0], "stdout": files[1], "stderr": files[2]}
    else:
        kw = {"stdin": INHERIT, "stdout": INHERIT, "stderr": INHERIT}
    wasi = Wasi(**kw)  # type: ignore[arg-type]
    try:
        g = Guest(wasi, backend)
        for fd in (0, 1, 2):
            assert g.seek(fd, 0, 0)[0] == Errno.spipe, fd
            assert g.seek(fd, 0, 1)[0] == Errno.spipe, fd
            assert g.tell(fd)[0] == Errno.spipe, fd
        assert g.pread(0, 2, 0)[0] == Errno.spipe
        assert g.pwrite(1, b"x", 0)[0] == Errno.spipe
        assert g.pwrite(2, b"x", 0)[0] == Errno.spipe
    finally:
        wasi.close()
        for f in files:
            f.close()


def test_closing_inherited_stdio_never_closes_the_host_fds(backend: str) -> None:
    before = {fd: os.fstat(fd).st_ino for fd in (0, 1, 2)}
    wasi = Wasi(stdin=INHERIT, stdout=INHERIT, stderr=INHERIT)
    g = Guest(wasi, backend)
    for fd in (0, 1, 2):
        assert g.x.fd_close(fd) == Errno.success
        assert g.x.fd_close(fd) == Errno.badf
    wasi.close()
    assert {fd: os.fstat(fd).st_ino for fd in (0, 1, 2)} == before
    wasi2 = Wasi(stdout=INHERIT)
    Guest(wasi2, backend)
    wasi2.close()
    assert os.fstat(1).st_ino == before[1]
