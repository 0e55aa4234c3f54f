"""WASI ``fd_*`` functions through the harness, on real files in ``tmp_path``.

Fd 3 is always the preopen ``/sandbox`` of ``tmp_path/root``; files are
opened through ``path_open`` exactly as a guest would.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import funk
from lunatic_api.wasi import Errno, Wasi
from lunatic_api.wasi.abi import (
    ALL_RIGHTS,
    DIRECTORY_INHERITING,
    DIRECTORY_RIGHTS,
    FILE_RIGHTS,
    Advice,
    Fdflags,
    Filetype,
    Fstflags,
    Oflags,
    Rights,
    Whence,
)
from tests.wasi_fn_support import (
    DIR_OPEN,
    DIRENT_FMT,
    MEMORY_SIZE,
    DirentT,
    Guest,
    open_fds,
    parse_dirents,
)
from tests.wasi_harness import Scratch

R = Rights
READ_ONLY = int(R.fd_read | R.fd_seek | R.fd_tell | R.fd_filestat_get)
WRITE_ONLY = int(R.fd_write | R.fd_seek | R.fd_tell | R.fd_filestat_get)


@dataclass
class Env:
    g: Guest
    root: Path
    out: bytearray
    err: bytearray

    def open(self, path: str, **kw: object) -> int:
        return self.g.open_ok(path, **kw)


@pytest.fixture
def env(tmp_path: Path, backend: str) -> Iterator[Env]:
    root = tmp_path / "root"
    root.mkdir()
    (root / "hello.txt").write_bytes(b"hello world")
    (root / "sub").mkdir()
    (root / "sub" / "inner.txt").write_bytes(b"inner")
    out, err = bytearray(), bytearray()
    wasi = Wasi(stdin=b"input", stdout=out, stderr=err, preopens={"/sandbox": root})
    yield Env(Guest(wasi, backend), root, out, err)
    wasi.close()


# --------------------------------------------------------------------------- fd_read / fd_write


def test_read_file_several_buffers(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    s = Scratch(env.g.inst)
    iovs, n, slices = s.iovs(3, 0, 4, 0, 100)
    nread = s.out(4)
    assert env.g.x.fd_read(fd, iovs, n, nread) == Errno.success
    assert s.u32(nread) == 11
    assert s.read(slices[0][0], 3) == b"hel"
    assert s.read(slices[2][0], 4) == b"lo w"
    assert s.read(slices[4][0], 4) == b"orld"
    assert env.g.read(fd, 10) == (Errno.success, b"")  # EOF


def test_read_zero_iovecs_and_zero_length(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    s = Scratch(env.g.inst)
    nread = s.out(4)
    s.memory.pack("<I", nread, 99)
    assert env.g.x.fd_read(fd, s.alloc(0), 0, nread) == Errno.success
    assert s.u32(nread) == 0
    assert env.g.read(fd, 0, 0) == (Errno.success, b"")
    assert env.g.read(fd, 5) == (Errno.success, b"hello")  # position unchanged


def test_write_file_several_buffers_with_empty_ones(env: Env) -> None:
    fd = env.open("new.txt", oflags=Oflags.creat)
    assert env.g.write(fd, b"", b"ab", b"", b"cde", b"") == (Errno.success, 5)
    assert env.g.write(fd) == (Errno.success, 0)
    assert env.g.write(fd, b"") == (Errno.success, 0)
    assert (env.root / "new.txt").read_bytes() == b"abcde"


def test_write_read_only_fd_is_badf(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    assert env.g.write(fd, b"XX") == (Errno.badf, 0)
    assert (env.root / "hello.txt").read_bytes() == b"hello world"


def test_read_write_only_fd_is_badf(env: Env) -> None:
    fd = env.open("hello.txt", base=WRITE_ONLY)
    assert env.g.read(fd, 4) == (Errno.badf, b"")
    assert env.g.write(fd, b"J") == (Errno.success, 1)
    assert (env.root / "hello.txt").read_bytes() == b"Jello world"


def test_read_write_directory_is_badf(env: Env) -> None:
    sub = env.open("sub", oflags=Oflags.directory, base=READ_ONLY | R.fd_readdir)
    for fd in (3, sub):
        assert env.g.read(fd, 4)[0] == Errno.badf
        assert env.g.write(fd, b"x")[0] == Errno.badf


@pytest.mark.parametrize("fd", [7, 100, 0x7FFFFFFF, 0xFFFFFFFF])
def test_read_write_unknown_fd_is_badf(env: Env, fd: int) -> None:
    assert env.g.read(fd, 4)[0] == Errno.badf
    assert env.g.write(fd, b"x")[0] == Errno.badf


def test_read_write_closed_fd_is_badf(env: Env) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_close(fd) == Errno.success
    assert env.g.read(fd, 4)[0] == Errno.badf
    assert env.g.write(fd, b"x")[0] == Errno.badf
    assert env.g.x.fd_close(1) == Errno.success
    assert env.g.write(1, b"x")[0] == Errno.badf
    assert env.out == b""


def test_write_bad_iovec_traps_and_writes_nothing(env: Env) -> None:
    s = Scratch(env.g.inst)
    iovs, n, _ = s.iovs(b"good", b"bad!")
    s.memory.pack("<II", iovs + 8, MEMORY_SIZE - 2, 4)  # second buffer out of bounds
    nw = s.out(4)
    with pytest.raises(funk.Trap):
        env.g.x.fd_write(1, iovs, n, nw)
    assert env.out == b""
    with pytest.raises(funk.Trap):
        env.g.x.fd_write(1, MEMORY_SIZE - 4, 1, nw)  # iovec array itself out of bounds
    assert env.out == b""
    assert s.u32(nw) == 0


def test_read_bad_iovec_traps(env: Env) -> None:
    s = Scratch(env.g.inst)
    iovs, n, _ = s.iovs(4)
    s.memory.pack("<II", iovs, MEMORY_SIZE - 1, 4)
    with pytest.raises(funk.Trap):
        env.g.x.fd_read(0, iovs, n, s.out(4))
    with pytest.raises(funk.Trap):
        env.g.x.fd_read(0, s.iovs(4)[0], 1, MEMORY_SIZE)  # nread out of bounds
    # a trap must not have consumed stdin... or at least the instance still works
    assert env.g.read(0, 64)[0] == Errno.success


def test_write_many_iovecs_to_file_is_a_consistent_short_write(env: Env) -> None:
    fd = env.open("many.txt", oflags=Oflags.creat)
    bufs = [bytes([65 + i % 26]) for i in range(1500)]
    err, n = env.g.write(fd, *bufs)
    assert err == Errno.success
    assert 1 <= n <= 1500
    assert (env.root / "many.txt").read_bytes() == b"".join(bufs)[:n]


def test_stdin_read_after_exhaustion(env: Env) -> None:
    assert env.g.read(0, 2, 10) == (Errno.success, b"input")
    assert env.g.read(0, 10) == (Errno.success, b"")


# --------------------------------------------------------------------------- fd_pread / fd_pwrite


def test_pread_offsets_keep_position(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    assert env.g.read(fd, 2) == (Errno.success, b"he")
    assert env.g.pread(fd, 5, 6) == (Errno.success, b"world")
    assert env.g.pread(fd, 100, 0) == (Errno.success, b"hello world")
    assert env.g.pread(fd, 5, 11) == (Errno.success, b"")  # at EOF
    assert env.g.pread(fd, 5, 1 << 40) == (Errno.success, b"")  # past EOF
    assert env.g.tell(fd) == (Errno.success, 2)
    assert env.g.read(fd, 3) == (Errno.success, b"llo")


def test_pread_pwrite_offset_beyond_host_range_is_an_error_not_a_trap(env: Env) -> None:
    fd = env.open("hello.txt")
    for offset in (1 << 63, 0xFFFFFFFFFFFFFFFF):
        assert env.g.pread(fd, 4, offset)[0] == Errno.inval
        assert env.g.pwrite(fd, b"x", offset)[0] in (Errno.inval, Errno.fbig)
    assert (env.root / "hello.txt").read_bytes() == b"hello world"


def test_pread_several_buffers(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    s = Scratch(env.g.inst)
    iovs, n, slices = s.iovs(2, 0, 3)
    out = s.out(4)
    assert env.g.x.fd_pread(fd, iovs, n, 4, out) == Errno.success
    assert s.u32(out) == 5
    assert bytes(s.read(slices[0][0], 2)) + bytes(s.read(slices[2][0], 3)) == b"o wor"


def test_pwrite_offsets_keep_position(env: Env) -> None:
    fd = env.open("hello.txt")
    assert env.g.pwrite(fd, b"W", 6) == (Errno.success, 1)
    assert env.g.tell(fd) == (Errno.success, 0)
    assert env.g.pwrite(fd, b"!", 15) == (Errno.success, 1)  # past EOF: zero-filled
    assert (env.root / "hello.txt").read_bytes() == b"hello World\0\0\0\0!"
    assert env.g.write(fd, b"J") == (Errno.success, 1)
    assert (env.root / "hello.txt").read_bytes()[:2] == b"Je"


@pytest.mark.parametrize("fd", [0, 1, 2])
def test_pread_pwrite_on_stdio_is_spipe(env: Env, fd: int) -> None:
    if fd == 0:
        assert env.g.pread(0, 4, 0)[0] == Errno.spipe
        assert env.g.read(0, 10) == (Errno.success, b"input")  # nothing consumed
    else:
        assert env.g.pwrite(fd, b"x", 0)[0] == Errno.spipe
        assert env.out == b"" and env.err == b""


def test_pread_pwrite_wrong_direction_dir_and_bad_fd(env: Env) -> None:
    ro = env.open("hello.txt", base=READ_ONLY)
    wo = env.open("hello.txt", base=WRITE_ONLY)
    assert env.g.pwrite(ro, b"x", 0)[0] == Errno.badf
    assert env.g.pread(wo, 4, 0)[0] == Errno.badf
    assert env.g.pread(3, 4, 0)[0] == Errno.badf
    assert env.g.pwrite(3, b"x", 0)[0] == Errno.badf
    assert env.g.pread(99, 4, 0)[0] == Errno.badf
    assert env.g.pwrite(99, b"x", 0)[0] == Errno.badf
    assert (env.root / "hello.txt").read_bytes() == b"hello world"


def test_pread_pwrite_need_seek_right(env: Env) -> None:
    fd = env.open("hello.txt", base=int(R.fd_read | R.fd_write))
    assert env.g.pread(fd, 4, 0)[0] == Errno.notcapable
    assert env.g.pwrite(fd, b"x", 0)[0] == Errno.notcapable
    assert env.g.read(fd, 5) == (Errno.success, b"hello")


# --------------------------------------------------------------------------- fd_seek / fd_tell


def test_seek_all_whence(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    assert env.g.seek(fd, 6, Whence.set) == (Errno.success, 6)
    assert env.g.read(fd, 2) == (Errno.success, b"wo")
    assert env.g.seek(fd, -3, Whence.cur) == (Errno.success, 5)
    assert env.g.seek(fd, 1, Whence.cur) == (Errno.success, 6)
    assert env.g.seek(fd, -5, Whence.end) == (Errno.success, 6)
    assert env.g.read(fd, 5) == (Errno.success, b"world")
    assert env.g.seek(fd, 0, Whence.end) == (Errno.success, 11)
    assert env.g.seek(fd, 0, Whence.cur) == (Errno.success, 11)
    assert env.g.tell(fd) == (Errno.success, 11)


def test_seek_past_end_then_write_makes_hole(env: Env) -> None:
    fd = env.open("hello.txt")
    assert env.g.seek(fd, 3, Whence.end) == (Errno.success, 14)
    assert env.g.write(fd, b"Z") == (Errno.success, 1)
    assert (env.root / "hello.txt").read_bytes() == b"hello world\0\0\0Z"


@pytest.mark.parametrize("whence", [3, 4, 255])
def test_seek_invalid_whence_is_inval(env: Env, whence: int) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    assert env.g.seek(fd, 4, Whence.set) == (Errno.success, 4)
    assert env.g.seek(fd, 0, whence)[0] == Errno.inval
    assert env.g.tell(fd) == (Errno.success, 4)


@pytest.mark.parametrize("offset, whence", [(-1, Whence.set), (-5, Whence.cur),
                                            (-12, Whence.end), (-(1 << 63), Whence.set)])
def test_seek_negative_result_is_inval(env: Env, offset: int, whence: int) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    assert env.g.seek(fd, 2, Whence.set) == (Errno.success, 2)
    assert env.g.seek(fd, offset, whence)[0] == Errno.inval
    assert env.g.tell(fd) == (Errno.success, 2)


def test_seek_tell_on_dir_stdio_and_bad_fd(env: Env) -> None:
    sub = env.open("sub", oflags=Oflags.directory, base=DIR_OPEN)
    for fd in (3, sub):
        assert env.g.seek(fd, 0, Whence.set)[0] == Errno.badf
        assert env.g.tell(fd)[0] == Errno.badf
    for fd in (0, 1, 2):
        assert env.g.seek(fd, 0, Whence.set)[0] == Errno.spipe
        assert env.g.seek(fd, 0, Whence.cur)[0] == Errno.spipe
        assert env.g.tell(fd)[0] == Errno.spipe
    assert env.g.seek(42, 0, Whence.set)[0] == Errno.badf
    assert env.g.tell(42)[0] == Errno.badf


def test_seek_and_tell_rights(env: Env) -> None:
    tell_only = env.open("hello.txt", base=int(R.fd_read | R.fd_tell))
    assert env.g.read(tell_only, 3) == (Errno.success, b"hel")
    assert env.g.seek(tell_only, 0, Whence.cur) == (Errno.success, 3)  # a pure query
    assert env.g.tell(tell_only) == (Errno.success, 3)
    assert env.g.seek(tell_only, 1, Whence.set)[0] == Errno.notcapable
    assert env.g.seek(tell_only, 0, Whence.end)[0] == Errno.notcapable
    seek_only = env.open("hello.txt", base=int(R.fd_read | R.fd_seek))
    assert env.g.seek(seek_only, 4, Whence.set) == (Errno.success, 4)
    assert env.g.tell(seek_only)[0] == Errno.notcapable


def test_tell_tracks_reads_and_writes(env: Env) -> None:
    fd = env.open("t.txt", oflags=Oflags.creat)
    assert env.g.tell(fd) == (Errno.success, 0)
    assert env.g.write(fd, b"abcdef") == (Errno.success, 6)
    assert env.g.tell(fd) == (Errno.success, 6)
    assert env.g.seek(fd, 1, Whence.set) == (Errno.success, 1)
    assert env.g.read(fd, 2) == (Errno.success, b"bc")
    assert env.g.tell(fd) == (Errno.success, 3)


def test_seek_bad_out_pointer_traps(env: Env) -> None:
    fd = env.open("hello.txt")
    with pytest.raises(funk.Trap):
        env.g.x.fd_seek(fd, 0, 0, MEMORY_SIZE - 4)
    with pytest.raises(funk.Trap):
        env.g.x.fd_tell(fd, MEMORY_SIZE)


# --------------------------------------------------------------------------- fd_fdstat_get


def test_fdstat_of_preopen_file_and_dir(env: Env) -> None:
    assert env.g.fdstat(3) == (Errno.success, (Filetype.directory, 0, DIRECTORY_RIGHTS,
                                               DIRECTORY_INHERITING))
    f = env.open("hello.txt")
    err, st = env.g.fdstat(f)
    assert err == Errno.success
    assert st.filetype == Filetype.regular_file and st.flags == 0
    assert st.rights_base == FILE_RIGHTS  # ALL requested, limited to a file's rights
    assert st.rights_inheriting & ~DIRECTORY_INHERITING == 0
    d = env.open("sub", oflags=Oflags.directory, base=DIR_OPEN)
    err, st = env.g.fdstat(d)
    assert err == Errno.success
    assert st.filetype == Filetype.directory
    assert st.rights_base == DIRECTORY_RIGHTS & DIR_OPEN
    assert st.rights_inheriting == DIRECTORY_INHERITING


def test_fdstat_reports_requested_rights_and_flags(env: Env) -> None:
    f = env.open("hello.txt", base=READ_ONLY, inheriting=0,
                 fdflags=int(Fdflags.append | Fdflags.nonblock))
    assert env.g.fdstat(f) == (Errno.success, (Filetype.regular_file,
                                               int(Fdflags.append | Fdflags.nonblock),
                                               READ_ONLY, 0))


def test_fdstat_bad_fd_and_bad_pointer(env: Env) -> None:
    assert env.g.fdstat(77)[0] == Errno.badf
    with pytest.raises(funk.Trap):
        env.g.x.fd_fdstat_get(3, MEMORY_SIZE - 8)


# --------------------------------------------------------------------------- fd_fdstat_set_flags


def test_set_flags_append_writes_go_to_end(env: Env) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_fdstat_set_flags(fd, Fdflags.append) == Errno.success
    assert env.g.fdstat(fd)[1].flags == Fdflags.append
    assert env.g.seek(fd, 0, Whence.set) == (Errno.success, 0)
    assert env.g.write(fd, b"!") == (Errno.success, 1)
    assert (env.root / "hello.txt").read_bytes() == b"hello world!"
    # clearing append: writes go to the position again
    assert env.g.x.fd_fdstat_set_flags(fd, 0) == Errno.success
    assert env.g.fdstat(fd)[1].flags == 0
    assert env.g.seek(fd, 0, Whence.set) == (Errno.success, 0)
    assert env.g.write(fd, b"J") == (Errno.success, 1)
    assert (env.root / "hello.txt").read_bytes() == b"Jello world!"


def test_path_open_append_flag(env: Env) -> None:
    fd = env.open("hello.txt", fdflags=int(Fdflags.append))
    assert env.g.write(fd, b"+") == (Errno.success, 1)
    assert env.g.seek(fd, 0, Whence.set)[0] == Errno.success
    assert env.g.write(fd, b"+") == (Errno.success, 1)
    assert (env.root / "hello.txt").read_bytes() == b"hello world++"


def test_set_flags_nonblock(env: Env) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_fdstat_set_flags(fd, Fdflags.nonblock) == Errno.success
    assert env.g.fdstat(fd)[1].flags == Fdflags.nonblock
    assert env.g.read(fd, 5) == (Errno.success, b"hello")  # files are never "not ready"


@pytest.mark.parametrize("flag", [Fdflags.sync, Fdflags.dsync, Fdflags.rsync,
                                  Fdflags.append | Fdflags.sync])
def test_set_flags_sync_is_notsup(env: Env, flag: int) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_fdstat_set_flags(fd, int(flag)) == Errno.notsup
    assert env.g.fdstat(fd)[1].flags == 0


@pytest.mark.parametrize("flags", [1 << 5, 1 << 15, 0xFFFF])
def test_set_flags_unknown_bits_is_inval(env: Env, flags: int) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_fdstat_set_flags(fd, flags) == Errno.inval
    assert env.g.fdstat(fd)[1].flags == 0


def test_set_flags_needs_right(env: Env) -> None:
    fd = env.open("hello.txt")
    err, st = env.g.fdstat(fd)
    base = st.rights_base & ~int(R.fd_fdstat_set_flags)
    assert env.g.x.fd_fdstat_set_rights(fd, base, st.rights_inheriting) == Errno.success
    assert env.g.x.fd_fdstat_set_flags(fd, Fdflags.append) == Errno.notcapable
    assert env.g.fdstat(fd)[1].flags == 0
    # stdio streams never had it
    assert env.g.x.fd_fdstat_set_flags(1, Fdflags.append) == Errno.notcapable
    assert env.g.x.fd_fdstat_set_flags(99, 0) == Errno.badf


# --------------------------------------------------------------------------- fd_fdstat_set_rights


def test_set_rights_drop_write_is_enforced(env: Env) -> None:
    fd = env.open("hello.txt")
    keep = FILE_RIGHTS & ~int(R.fd_write)
    assert env.g.x.fd_fdstat_set_rights(fd, keep, 0) == Errno.success
    assert env.g.fdstat(fd) == (Errno.success, (Filetype.regular_file, 0, keep, 0))
    assert env.g.write(fd, b"x")[0] == Errno.badf
    assert env.g.pwrite(fd, b"x", 0)[0] == Errno.badf
    assert env.g.read(fd, 5) == (Errno.success, b"hello")
    assert (env.root / "hello.txt").read_bytes() == b"hello world"


def test_set_rights_drop_seek_and_filestat(env: Env) -> None:
    fd = env.open("hello.txt")
    keep = FILE_RIGHTS & ~int(R.fd_seek | R.fd_filestat_get)
    assert env.g.x.fd_fdstat_set_rights(fd, keep, 0) == Errno.success
    assert env.g.seek(fd, 3, Whence.set)[0] == Errno.notcapable
    assert env.g.filestat(fd)[0] == Errno.notcapable
    assert env.g.tell(fd) == (Errno.success, 0)


def test_set_rights_cannot_raise(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY, inheriting=0)
    assert env.g.x.fd_fdstat_set_rights(fd, READ_ONLY | R.fd_write, 0) == Errno.notcapable
    assert env.g.x.fd_fdstat_set_rights(fd, READ_ONLY, int(R.fd_read)) == Errno.notcapable
    assert env.g.fdstat(fd)[1].rights_base == READ_ONLY
    # dropped rights cannot be regained either
    assert env.g.x.fd_fdstat_set_rights(fd, int(R.fd_read), 0) == Errno.success
    assert env.g.x.fd_fdstat_set_rights(fd, READ_ONLY, 0) == Errno.notcapable
    assert env.g.fdstat(fd)[1].rights_base == R.fd_read
    # same rights again is fine
    assert env.g.x.fd_fdstat_set_rights(fd, int(R.fd_read), 0) == Errno.success
    assert env.g.x.fd_fdstat_set_rights(fd, ALL_RIGHTS, ALL_RIGHTS) == Errno.notcapable
    assert env.g.x.fd_fdstat_set_rights(123, 0, 0) == Errno.badf


def test_set_rights_on_preopen_limits_path_ops(env: Env) -> None:
    keep = DIRECTORY_RIGHTS & ~int(R.path_open)
    assert env.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert env.g.open("hello.txt")[0] == Errno.notcapable


# --------------------------------------------------------------------------- fd_filestat_*


def test_filestat_of_file(env: Env) -> None:
    fd = env.open("hello.txt")
    err, st = env.g.filestat(fd)
    host = os.stat(env.root / "hello.txt")
    assert err == Errno.success
    assert st.filetype == Filetype.regular_file
    assert (st.dev, st.ino, st.nlink, st.size) == (host.st_dev, host.st_ino, 1, 11)
    assert (st.atim, st.mtim, st.ctim) == (host.st_atime_ns, host.st_mtime_ns,
                                           host.st_ctime_ns)
    assert env.g.write(fd, b"0123456789ABCDEF") == (Errno.success, 16)
    assert env.g.filestat(fd)[1].size == 16


def test_filestat_of_dirs_and_stdio(env: Env) -> None:
    err, st = env.g.filestat(3)
    assert err == Errno.success and st.filetype == Filetype.directory
    assert st.ino == os.stat(env.root).st_ino
    sub = env.open("sub", oflags=Oflags.directory, base=DIR_OPEN)
    assert env.g.filestat(sub)[1].ino == os.stat(env.root / "sub").st_ino
    for fd in (0, 1, 2):
        assert env.g.filestat(fd) == (Errno.success, (0, 0, Filetype.unknown, 0, 0, 0, 0, 0))
    assert env.g.filestat(55)[0] == Errno.badf


def test_filestat_set_size(env: Env) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_filestat_set_size(fd, 5) == Errno.success
    assert (env.root / "hello.txt").read_bytes() == b"hello"
    assert env.g.x.fd_filestat_set_size(fd, 8) == Errno.success
    assert (env.root / "hello.txt").read_bytes() == b"hello\0\0\0"
    assert env.g.filestat(fd)[1].size == 8
    assert env.g.x.fd_filestat_set_size(fd, 0) == Errno.success
    assert (env.root / "hello.txt").read_bytes() == b""


def test_filestat_set_size_errors(env: Env) -> None:
    ro = env.open("hello.txt", base=READ_ONLY)
    assert env.g.x.fd_filestat_set_size(ro, 1) == Errno.notcapable
    assert env.g.x.fd_filestat_set_size(3, 1) == Errno.badf
    assert env.g.x.fd_filestat_set_size(1, 1) == Errno.badf
    assert env.g.x.fd_filestat_set_size(99, 1) == Errno.badf
    rw = env.open("hello.txt")
    assert env.g.x.fd_filestat_set_size(rw, 1 << 63) in (Errno.inval, Errno.fbig)
    assert (env.root / "hello.txt").read_bytes() == b"hello world"


T1 = 1_500_000_000_123_456_789
T2 = 1_600_000_000_987_654_321


def test_filestat_set_times_explicit(env: Env) -> None:
    fd = env.open("hello.txt")
    flags = int(Fstflags.atim | Fstflags.mtim)
    assert env.g.x.fd_filestat_set_times(fd, T1, T2, flags) == Errno.success
    st = os.stat(env.root / "hello.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (T1, T2)
    err, fst = env.g.filestat(fd)
    assert (fst.atim, fst.mtim) == (T1, T2)
    # only mtim: atim unchanged
    assert env.g.x.fd_filestat_set_times(fd, 0, T1, int(Fstflags.mtim)) == Errno.success
    st = os.stat(env.root / "hello.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (T1, T1)
    # no flags: nothing changes
    assert env.g.x.fd_filestat_set_times(fd, 5, 5, 0) == Errno.success
    st = os.stat(env.root / "hello.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (T1, T1)


def test_filestat_set_times_now(env: Env) -> None:
    fd = env.open("hello.txt")
    flags = int(Fstflags.atim | Fstflags.mtim)
    assert env.g.x.fd_filestat_set_times(fd, T1, T1, flags) == Errno.success
    before = time.time_ns()
    assert env.g.x.fd_filestat_set_times(fd, 0, 0, int(Fstflags.mtim_now)) == Errno.success
    st = os.stat(env.root / "hello.txt")
    assert st.st_atime_ns == T1
    assert abs(st.st_mtime_ns - before) < 5_000_000_000
    assert env.g.x.fd_filestat_set_times(fd, 0, 0, int(Fstflags.atim_now)) == Errno.success
    assert abs(os.stat(env.root / "hello.txt").st_atime_ns - before) < 5_000_000_000


@pytest.mark.parametrize("flags", [Fstflags.atim | Fstflags.atim_now,
                                   Fstflags.mtim | Fstflags.mtim_now,
                                   Fstflags.atim | Fstflags.atim_now | Fstflags.mtim,
                                   1 << 4, 0x8000])
def test_filestat_set_times_conflicts_are_inval(env: Env, flags: int) -> None:
    fd = env.open("hello.txt")
    before = os.stat(env.root / "hello.txt")
    assert env.g.x.fd_filestat_set_times(fd, T1, T2, int(flags)) == Errno.inval
    after = os.stat(env.root / "hello.txt")
    assert (after.st_atime_ns, after.st_mtime_ns) == (before.st_atime_ns, before.st_mtime_ns)


def test_filestat_set_times_on_dir_and_errors(env: Env) -> None:
    flags = int(Fstflags.atim | Fstflags.mtim)
    assert env.g.x.fd_filestat_set_times(3, T1, T2, flags) == Errno.success
    assert os.stat(env.root).st_mtime_ns == T2
    ro = env.open("hello.txt", base=READ_ONLY)
    assert env.g.x.fd_filestat_set_times(ro, T1, T2, flags) == Errno.notcapable
    assert env.g.x.fd_filestat_set_times(1, T1, T2, flags) == Errno.notcapable
    assert env.g.x.fd_filestat_set_times(88, T1, T2, flags) == Errno.badf


# --------------------------------------------------------------------------- advise / allocate / sync


@pytest.mark.parametrize("advice", list(Advice))
def test_advise_each_value(env: Env, advice: int) -> None:
    fd = env.open("hello.txt", base=READ_ONLY | R.fd_advise)
    assert env.g.x.fd_advise(fd, 0, 11, int(advice)) == Errno.success
    assert env.g.read(fd, 5) == (Errno.success, b"hello")


@pytest.mark.parametrize("advice", [6, 7, 255])
def test_advise_invalid_is_inval(env: Env, advice: int) -> None:
    fd = env.open("hello.txt")
    assert env.g.x.fd_advise(fd, 0, 0, advice) == Errno.inval


def test_advise_errors(env: Env) -> None:
    fd = env.open("hello.txt", base=READ_ONLY)
    assert env.g.x.fd_advise(fd, 0, 0, Advice.normal) == Errno.notcapable
    assert env.g.x.fd_advise(3, 0, 0, Advice.normal) == Errno.badf
    assert env.g.x.fd_advise(0, 0, 0, Advice.normal) == Errno.badf
    assert env.g.x.fd_advise(99, 0, 0, Advice.normal) == Errno.badf


def test_allocate_grows_never_shrinks(env: Env) -> None:
    fd = env.open("alloc.bin", oflags=Oflags.creat)
    assert env.g.x.fd_allocate(fd, 0, 100) == Errno.success
    assert os.path.getsize(env.root / "alloc.bin") == 100
    assert env.g.x.fd_allocate(fd, 10, 10) == Errno.success
    assert os.path.getsize(env.root / "alloc.bin") == 100
    assert env.g.x.fd_allocate(fd, 100, 28) == Errno.success
    assert (env.root / "alloc.bin").read_bytes() == bytes(128)


def test_allocate_errors(env: Env) -> None:
    ro = env.open("hello.txt", base=READ_ONLY)
    assert env.g.x.fd_allocate(ro, 0, 100) == Errno.notcapable
    assert env.g.x.fd_allocate(3, 0, 100) == Errno.badf
    assert env.g.x.fd_allocate(1, 0, 100) == Errno.badf
    assert env.g.x.fd_allocate(99, 0, 100) == Errno.badf
    rw = env.open("hello.txt")
    assert env.g.x.fd_allocate(rw, 0, 0) == Errno.inval  # posix_fallocate: len 0
    assert os.path.getsize(env.root / "hello.txt") == 11


@pytest.mark.parametrize("fn", ["fd_sync", "fd_datasync"])
def test_sync_and_datasync(env: Env, fn: str) -> None:
    f = env.open("hello.txt")
    assert env.g.write(f, b"data") == (Errno.success, 4)
    assert getattr(env.g.x, fn)(f) == Errno.success
    assert getattr(env.g.x, fn)(3) == Errno.success  # the preopen holds both rights
    ro = env.open("hello.txt", base=READ_ONLY)
    assert getattr(env.g.x, fn)(ro) == Errno.notcapable
    assert getattr(env.g.x, fn)(1) == Errno.notcapable  # stdio rights lack it
    assert getattr(env.g.x, fn)(99) == Errno.badf


# --------------------------------------------------------------------------- close / renumber


def test_close_double_close_is_badf(env: Env) -> None:
    before = open_fds()
    fd = env.open("hello.txt")
    assert len(open_fds() - before) == 1
    assert env.g.x.fd_close(fd) == Errno.success
    assert open_fds() == before  # the host fd is closed
    assert env.g.x.fd_close(fd) == Errno.badf
    assert env.g.x.fd_close(12345) == Errno.badf


def test_close_preopen_and_stdio(env: Env) -> None:
    assert env.g.x.fd_close(3) == Errno.success
    assert env.g.prestat(3)[0] == Errno.badf
    assert env.g.open("hello.txt")[0] == Errno.badf
    assert env.g.x.fd_close(0) == Errno.success
    assert env.g.read(0, 4)[0] == Errno.badf
    assert env.g.fdstat(0)[0] == Errno.badf


def test_numbering_after_close(env: Env) -> None:
    a = env.open("hello.txt")
    b = env.open("hello.txt")
    assert (a, b) == (4, 5)
    assert env.g.x.fd_close(a) == Errno.success
    c = env.open("hello.txt")
    assert c == a  # the lowest free number, as POSIX and wasmtime hand out
    assert env.g.read(c, 5) == (Errno.success, b"hello")


def test_renumber_moves_and_closes_target(env: Env) -> None:
    f = env.open("hello.txt")
    g2 = env.open("sub/inner.txt")
    before = open_fds()
    assert env.g.x.fd_renumber(f, g2) == Errno.success
    assert len(before - open_fds()) == 1  # the old target's host fd was closed
    assert env.g.read(g2, 5) == (Errno.success, b"hello")
    assert env.g.read(f, 5)[0] == Errno.badf
    assert env.g.x.fd_close(f) == Errno.badf


def test_renumber_onto_stdout(env: Env) -> None:
    f = env.open("o.txt", oflags=Oflags.creat)
    assert env.g.x.fd_renumber(f, 1) == Errno.success
    assert env.g.write(1, b"redirected") == (Errno.success, 10)
    assert env.out == b""
    assert (env.root / "o.txt").read_bytes() == b"redirected"
    assert env.g.fdstat(1)[1].filetype == Filetype.regular_file


def test_renumber_target_must_be_open(env: Env) -> None:
    f = env.open("hello.txt")
    assert env.g.x.fd_renumber(f, 50) == Errno.badf
    assert env.g.read(f, 5) == (Errno.success, b"hello")  # still at the old number
    assert env.g.fdstat(50)[0] == Errno.badf
    assert env.g.x.fd_renumber(50, f) == Errno.badf
    assert env.g.read(f, 6) == (Errno.success, b" world")


def test_renumber_to_itself_is_a_noop(env: Env) -> None:
    f = env.open("hello.txt")
    assert env.g.x.fd_renumber(f, f) == Errno.success
    assert env.g.read(f, 5) == (Errno.success, b"hello")


def test_renumber_preopen_keeps_prestat(env: Env) -> None:
    f = env.open("hello.txt")
    assert env.g.x.fd_renumber(3, f) == Errno.success
    assert env.g.prestat(f) == (Errno.success, (0, len("/sandbox")))
    assert env.g.prestat(3)[0] == Errno.badf
    assert env.g.open("hello.txt", dirfd=f)[0] == Errno.success


# --------------------------------------------------------------------------- prestat


def test_prestat_get_and_dir_name(env: Env) -> None:
    assert env.g.prestat(3) == (Errno.success, (0, 8))
    err, raw = env.g.prestat_name(3, 8)
    assert err == Errno.success
    assert raw == b"/sandbox" + b"\xaa" * 4  # no NUL, nothing past the name
    err, raw = env.g.prestat_name(3, 20)
    assert err == Errno.success
    assert raw[:8] == b"/sandbox"
    assert raw[8:] == b"\xaa" * 16  # only the name's bytes are written


@pytest.mark.parametrize("size", [0, 1, 7])
def test_prestat_dir_name_too_small(env: Env, size: int) -> None:
    err, raw = env.g.prestat_name(3, size)
    assert err == Errno.nametoolong
    assert raw == b"\xaa" * (size + 4)


def test_prestat_non_preopen_is_badf(env: Env) -> None:
    f = env.open("hello.txt")
    d = env.open("sub", oflags=Oflags.directory, base=DIR_OPEN)
    for fd in (0, 1, 2, f, d, 99):
        assert env.g.prestat(fd)[0] == Errno.badf
        assert env.g.prestat_name(fd, 64)[0] == Errno.badf


def test_prestat_utf8_name_length_in_bytes(tmp_path: Path, backend: str) -> None:
    wasi = Wasi(preopens={"/dätä": tmp_path})
    g = Guest(wasi, backend)
    name = "/dätä".encode()
    assert g.prestat(3) == (Errno.success, (0, len(name)))
    assert g.prestat_name(3, len(name))[1][:len(name)] == name
    wasi.close()


def test_prestat_bad_pointer_traps(env: Env) -> None:
    with pytest.raises(funk.Trap):
        env.g.x.fd_prestat_get(3, MEMORY_SIZE - 4)
    with pytest.raises(funk.Trap):
        env.g.x.fd_prestat_dir_name(3, MEMORY_SIZE - 4, 8)


# --------------------------------------------------------------------------- fd_readdir


@pytest.fixture
def listing(env: Env) -> Env:
    d = env.root / "list"
    d.mkdir()
    (d / "file.txt").write_bytes(b"x")
    (d / "dir").mkdir()
    os.symlink("file.txt", d / "link")
    os.symlink("missing", d / "dangling")
    (d / ("long" * 10)).write_bytes(b"")
    return env


def test_readdir_entries_types_and_cookies(listing: Env) -> None:
    env = listing
    fd = env.open("list", oflags=Oflags.directory, base=DIR_OPEN)
    entries = env.g.readdir_all(fd)
    names = [e.name for e in entries]
    assert names[:2] == [b".", b".."]
    assert sorted(names[2:]) == sorted([b"file.txt", b"dir", b"link", b"dangling",
                                        b"long" * 10])
    assert [e.d_next for e in entries] == list(range(1, len(entries) + 1))
    types = {e.name: e.d_type for e in entries}
    assert types == {b".": Filetype.directory, b"..": Filetype.directory,
                     b"file.txt": Filetype.regular_file, b"dir": Filetype.directory,
                     b"link": Filetype.symbolic_link, b"dangling": Filetype.symbolic_link,
                     b"long" * 10: Filetype.regular_file}
    for e in entries:
        assert e.d_namlen == len(e.name)
        if e.name not in (b".", b".."):
            assert e.d_ino == os.lstat(env.root / "list" / os.fsdecode(e.name)).st_ino
    assert entries[0].d_ino == os.stat(env.root / "list").st_ino


def test_readdir_non_utf8_host_names_are_raw_bytes(env: Env) -> None:
    raw = b"caf\xe9-\xff"
    with open(os.path.join(os.fsencode(env.root), b"sub", raw), "wb"):
        pass
    fd = env.open("sub", oflags=Oflags.directory, base=DIR_OPEN)
    entries = {e.name: e for e in env.g.readdir_all(fd)}
    assert raw in entries
    assert entries[raw].d_namlen == len(raw)
    assert entries[raw].d_type == Filetype.regular_file


def test_readdir_preopen_and_empty_dir(env: Env) -> None:
    names = {e.name for e in env.g.readdir_all(3)}
    assert names == {b".", b"..", b"hello.txt", b"sub"}
    (env.root / "empty").mkdir()
    fd = env.open("empty", oflags=Oflags.directory, base=DIR_OPEN)
    assert [e.name for e in env.g.readdir_all(fd)] == [b".", b".."]


def test_readdir_paging_small_buffer(listing: Env) -> None:
    env = listing
    fd = env.open("list", oflags=Oflags.directory, base=DIR_OPEN)
    full = env.g.readdir_all(fd)
    # a buffer that holds "." and ".." (25 + 26 bytes) and part of the third
    size = 24 + 1 + 24 + 2 + 10
    err, raw = env.g.readdir(fd, size, 0)
    assert err == Errno.success
    assert len(raw) == size  # full buffer: more to come
    got, tail = parse_dirents(raw)
    assert [e.name for e in got] == [b".", b".."]
    assert len(tail) == 10  # the truncated start of the third entry
    assert tail == _encoded(full[2])[:10]
    # resume from the last complete entry's d_next, in buffers of every size
    for size in (64, 65, 100, 4096):
        paged = env.g.readdir_all(fd, size)
        assert paged == full, size


def _encoded(e: DirentT) -> bytes:
    return struct.pack(DIRENT_FMT, e.d_next, e.d_ino, e.d_namlen, e.d_type) + e.name


def test_readdir_cookie_resume_and_end(listing: Env) -> None:
    env = listing
    fd = env.open("list", oflags=Oflags.directory, base=DIR_OPEN)
    full = env.g.readdir_all(fd)
    err, raw = env.g.readdir(fd, 4096, 3)
    assert err == Errno.success
    got, tail = parse_dirents(raw)
    assert got == full[3:] and tail == b""
    assert env.g.readdir(fd, 4096, len(full)) == (Errno.success, b"")
    assert env.g.readdir(fd, 4096, 1 << 40) == (Errno.success, b"")


def test_readdir_tiny_and_empty_buffers(env: Env) -> None:
    err, raw = env.g.readdir(3, 10, 0)
    assert err == Errno.success and len(raw) == 10  # truncated header: grow and retry
    assert env.g.readdir(3, 0, 0) == (Errno.success, b"")


def test_readdir_errors(env: Env) -> None:
    f = env.open("hello.txt")
    assert env.g.readdir(f, 256)[0] == Errno.notdir
    assert env.g.readdir(0, 256)[0] == Errno.notdir
    assert env.g.readdir(99, 256)[0] == Errno.badf
    d = env.open("sub", oflags=Oflags.directory, base=int(R.path_open))
    assert env.g.readdir(d, 256)[0] == Errno.notcapable
    with pytest.raises(funk.Trap):
        env.g.x.fd_readdir(3, MEMORY_SIZE - 8, 64, 0, 0)


def test_readdir_restart_sees_new_entries(env: Env) -> None:
    fd = env.open("sub", oflags=Oflags.directory, base=DIR_OPEN)
    assert {e.name for e in env.g.readdir_all(fd)} == {b".", b"..", b"inner.txt"}
    (env.root / "sub" / "later").write_bytes(b"")
    assert {e.name for e in env.g.readdir_all(fd)} == {b".", b"..", b"inner.txt", b"later"}


# --------------------------------------------------------------------------- bad fd everywhere


@pytest.mark.parametrize("fn, args", [
    ("fd_advise", (0, 0, 0)), ("fd_allocate", (0, 1)), ("fd_close", ()),
    ("fd_datasync", ()), ("fd_fdstat_get", (2048,)), ("fd_fdstat_set_flags", (0,)),
    ("fd_fdstat_set_rights", (0, 0)), ("fd_filestat_get", (2048,)),
    ("fd_filestat_set_size", (0,)), ("fd_filestat_set_times", (0, 0, 0)),
    ("fd_pread", (2048, 1, 0, 2100)), ("fd_prestat_dir_name", (2048, 8)),
    ("fd_prestat_get", (2048,)), ("fd_pwrite", (2048, 1, 0, 2100)),
    ("fd_read", (2048, 1, 2100)), ("fd_readdir", (2048, 64, 0, 2100)),
    ("fd_seek", (0, 0, 2100)), ("fd_sync", ()), ("fd_tell", (2100,)),
    ("fd_write", (2048, 1, 2100)), ("sock_accept", (0, 2100)),
    ("sock_recv", (2048, 1, 0, 2100, 2104)), ("sock_send", (2048, 1, 0, 2100)),
    ("sock_shutdown", (3,)),
])
@pytest.mark.parametrize("fd", [10, 0xFFFFFFFF])
def test_unknown_fd_is_badf_for_every_fd_function(env: Env, fn: str, args: tuple[int, ...],
                                                  fd: int) -> None:
    env.g.mem.pack("<II", 2048, 2200, 8)  # a valid iovec where one is needed
    assert getattr(env.g.x, fn)(fd, *args) == Errno.badf
