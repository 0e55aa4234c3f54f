"""Shared helpers for the per-function WASI tests (``tests/test_wasi_fn_*.py``).

The ``test_wasi_fn_*`` modules call every ``wasi_snapshot_preview1``
function through ``tests.wasi_harness.wasi_instance`` -- the real generated
wrapper on each engine -- on real files below pytest's ``tmp_path``.

``Guest`` wraps one instance: ``g.x`` are the raw exports (what a guest
would call) and the convenience methods decode out-pointers.  Convenience
methods use their own scratch region (``HELPER_BASE`` up), fresh for every
call, so a test's own ``Scratch`` (from address 1024) never overlaps them.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from lunatic_api.wasi import Errno, Wasi
from lunatic_api.wasi.abi import (
    ALL_RIGHTS,
    Lookupflags,
    Rights,
)
from tests.wasi_harness import Scratch, wasi_instance

HELPER_BASE = 96 * 1024
"""Helper calls allocate from here; tests' own ``Scratch`` starts at 1024."""

MEMORY_SIZE = 2 * 65536
"""The harness module's memory (2 pages)."""

FOLLOW = int(Lookupflags.symlink_follow)

WRITE_RIGHTS = int(Rights.fd_write | Rights.fd_datasync | Rights.fd_allocate
                   | Rights.fd_filestat_set_size)
"""Rights that make ``path_open`` open the host file for writing."""

DIR_OPEN = ALL_RIGHTS & ~WRITE_RIGHTS
"""What a guest asks for to open a directory (a write right on one is ``isdir``,
as wasi-libc's and Rust std's read-only opens never ask for them)."""


class FdstatT(NamedTuple):
    filetype: int
    flags: int
    rights_base: int
    rights_inheriting: int


class FilestatT(NamedTuple):
    dev: int
    ino: int
    filetype: int
    nlink: int
    size: int
    atim: int
    mtim: int
    ctim: int


class DirentT(NamedTuple):
    d_next: int
    d_ino: int
    d_namlen: int
    d_type: int
    name: bytes


FDSTAT_FMT = "<BxHxxxxQQ"
FILESTAT_FMT = "<QQB7xQQQQQ"
DIRENT_FMT = "<QQIB3x"
EVENT_FMT = "<QHBxxxxxQH6x"
assert struct.calcsize(FDSTAT_FMT) == 24
assert struct.calcsize(FILESTAT_FMT) == 64
assert struct.calcsize(DIRENT_FMT) == 24
assert struct.calcsize(EVENT_FMT) == 32


def parse_dirents(raw: bytes) -> tuple[list[DirentT], bytes]:
    """The complete entries in a ``fd_readdir`` buffer, and any truncated tail."""
    entries = []
    pos = 0
    while pos + 24 <= len(raw):
        d_next, ino, namlen, dtype = struct.unpack_from(DIRENT_FMT, raw, pos)
        if pos + 24 + namlen > len(raw):
            break
        entries.append(DirentT(d_next, ino, namlen, dtype, raw[pos + 24:pos + 24 + namlen]))
        pos += 24 + namlen
    return entries, raw[pos:]


class Guest:
    """One harness instance linked to ``wasi``, with decoding helpers."""

    def __init__(self, wasi: Wasi, backend: str) -> None:
        self.wasi = wasi
        self.backend = backend
        self.inst = wasi_instance(wasi, backend)
        self.x = self.inst.exports
        self.mem = self.inst.memory

    def scratch(self) -> Scratch:
        """A fresh allocator in the helper region."""
        return Scratch(self.inst, HELPER_BASE)

    # -- data ---------------------------------------------------------------

    def write(self, fd: int, *bufs: bytes) -> tuple[int, int]:
        s = self.scratch()
        iovs, n, _ = s.iovs(*bufs)
        out = s.out(4)
        return self.x.fd_write(fd, iovs, n, out), s.u32(out)

    def read(self, fd: int, *sizes: int) -> tuple[int, bytes]:
        """Read into buffers of ``sizes``; returns the bytes actually read."""
        s = self.scratch()
        iovs, n, slices = s.iovs(*sizes)
        out = s.out(4)
        err = self.x.fd_read(fd, iovs, n, out)
        got = s.u32(out)
        data = b"".join(s.read(p, ln) for p, ln in slices)
        return err, data[:got]

    def pread(self, fd: int, size: int, offset: int) -> tuple[int, bytes]:
        s = self.scratch()
        iovs, n, slices = s.iovs(size)
        out = s.out(4)
        err = self.x.fd_pread(fd, iovs, n, offset, out)
        return err, s.read(slices[0][0], s.u32(out))

    def pwrite(self, fd: int, data: bytes, offset: int) -> tuple[int, int]:
        s = self.scratch()
        iovs, n, _ = s.iovs(data)
        out = s.out(4)
        return self.x.fd_pwrite(fd, iovs, n, offset, out), s.u32(out)

    def seek(self, fd: int, offset: int, whence: int) -> tuple[int, int]:
        s = self.scratch()
        out = s.out(8)
        return self.x.fd_seek(fd, offset, whence, out), s.u64(out)

    def tell(self, fd: int) -> tuple[int, int]:
        s = self.scratch()
        out = s.out(8)
        return self.x.fd_tell(fd, out), s.u64(out)

    # -- descriptor state ---------------------------------------------------

    def fdstat(self, fd: int) -> tuple[int, FdstatT]:
        s = self.scratch()
        out = s.out(24)
        err = self.x.fd_fdstat_get(fd, out)
        return err, FdstatT(*s.unpack(FDSTAT_FMT, out))

    def filestat(self, fd: int) -> tuple[int, FilestatT]:
        s = self.scratch()
        out = s.out(64)
        err = self.x.fd_filestat_get(fd, out)
        return err, FilestatT(*s.unpack(FILESTAT_FMT, out))

    def prestat(self, fd: int) -> tuple[int, tuple[int, int]]:
        s = self.scratch()
        out = s.out(8)
        err = self.x.fd_prestat_get(fd, out)
        return err, s.unpack("<BxxxI", out)

    def prestat_name(self, fd: int, size: int) -> tuple[int, bytes]:
        s = self.scratch()
        buf = s.alloc(size + 4, 1)
        s.memory.write(buf, b"\xaa" * (size + 4))
        err = self.x.fd_prestat_dir_name(fd, buf, size)
        return err, s.read(buf, size + 4)

    def readdir(self, fd: int, size: int, cookie: int = 0) -> tuple[int, bytes]:
        s = self.scratch()
        buf = s.alloc(size, 1)
        s.memory.write(buf, b"\xee" * size)
        out = s.out(4)
        err = self.x.fd_readdir(fd, buf, size, cookie, out)
        used = s.u32(out)
        return err, s.read(buf, used)

    def readdir_all(self, fd: int, size: int = 4096) -> list[DirentT]:
        """Every entry, paging with buffers of ``size`` bytes."""
        entries: list[DirentT] = []
        cookie = 0
        for _ in range(10_000):
            err, raw = self.readdir(fd, size, cookie)
            assert err == Errno.success
            got, _ = parse_dirents(raw)
            entries += got
            if len(raw) < size:
                return entries
            assert got, f"buffer of {size} bytes too small for one entry"
            cookie = got[-1].d_next
        raise AssertionError("fd_readdir never finished")

    # -- paths --------------------------------------------------------------

    def open(self, path: str | bytes, oflags: int = 0, base: int = ALL_RIGHTS,
             inheriting: int = ALL_RIGHTS, fdflags: int = 0, dirfd: int = 3,
             follow: bool = True) -> tuple[int, int]:
        """``path_open``; returns ``(errno, fd)`` (fd is 0xFFFFFFFF if unset)."""
        s = self.scratch()
        p, n = s.put(path.encode() if isinstance(path, str) else path)
        out = s.alloc(4, 4)
        s.memory.pack("<I", out, 0xFFFFFFFF)
        err = self.x.path_open(dirfd, FOLLOW if follow else 0, p, n, oflags, base,
                               inheriting, fdflags, out)
        return err, s.u32(out)

    def open_ok(self, path: str, **kw: Any) -> int:
        err, fd = self.open(path, **kw)
        assert err == Errno.success, Errno(err)
        return fd

    def path_call(self, name: str, fd: int, path: str | bytes, *rest: Any) -> int:
        """``name(fd, path_ptr, path_len, *rest)``."""
        s = self.scratch()
        p, n = s.put(path.encode() if isinstance(path, str) else path)
        return getattr(self.x, name)(fd, p, n, *rest)

    def mkdir(self, path: str | bytes, dirfd: int = 3) -> int:
        return self.path_call("path_create_directory", dirfd, path)

    def rmdir(self, path: str | bytes, dirfd: int = 3) -> int:
        return self.path_call("path_remove_directory", dirfd, path)

    def unlink(self, path: str | bytes, dirfd: int = 3) -> int:
        return self.path_call("path_unlink_file", dirfd, path)

    def path_filestat(self, path: str | bytes, follow: bool = True,
                      dirfd: int = 3) -> tuple[int, FilestatT]:
        s = self.scratch()
        p, n = s.put(path.encode() if isinstance(path, str) else path)
        out = s.out(64)
        err = self.x.path_filestat_get(dirfd, FOLLOW if follow else 0, p, n, out)
        return err, FilestatT(*s.unpack(FILESTAT_FMT, out))

    def set_times(self, path: str, atim: int, mtim: int, fst: int, follow: bool = True,
                  dirfd: int = 3) -> int:
        s = self.scratch()
        p, n = s.put(path.encode())
        return self.x.path_filestat_set_times(dirfd, FOLLOW if follow else 0, p, n, atim,
                                              mtim, fst)

    def rename(self, old: str, new: str, fd: int = 3, new_fd: int = 3) -> int:
        s = self.scratch()
        op, on = s.put(old.encode())
        np_, nn = s.put(new.encode())
        return self.x.path_rename(fd, op, on, new_fd, np_, nn)

    def link(self, old: str, new: str, fd: int = 3, new_fd: int = 3,
             follow: bool = False) -> int:
        s = self.scratch()
        op, on = s.put(old.encode())
        np_, nn = s.put(new.encode())
        return self.x.path_link(fd, FOLLOW if follow else 0, op, on, new_fd, np_, nn)

    def symlink(self, target: str | bytes, new: str, fd: int = 3) -> int:
        s = self.scratch()
        tp, tn = s.put(target.encode() if isinstance(target, str) else target)
        np_, nn = s.put(new.encode())
        return self.x.path_symlink(tp, tn, fd, np_, nn)

    def readlink(self, path: str, size: int, fd: int = 3) -> tuple[int, bytes, bytes]:
        """``(errno, target, buffer incl. 4 guard bytes)``."""
        s = self.scratch()
        p, n = s.put(path.encode())
        buf = s.alloc(size + 4, 1)
        s.memory.write(buf, b"\xaa" * (size + 4))
        out = s.out(4)
        err = self.x.path_readlink(fd, p, n, buf, size, out)
        used = s.u32(out)
        return err, s.read(buf, used), s.read(buf, size + 4)


def snapshot(root: Path) -> dict[str, Any]:
    """Names, types, contents and link targets of everything below ``root``."""
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            rel = str(full.relative_to(root))
            if full.is_symlink():
                out[rel] = ("link", os.readlink(full))
            elif full.is_dir():
                out[rel] = ("dir",)
            else:
                st = full.stat()
                out[rel] = ("file", full.read_bytes(), st.st_mtime_ns)
    return out


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Path]:
    """``tmp_path/root`` (to preopen) next to ``tmp_path/outside``."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"OUTSIDE")
    root = tmp_path / "root"
    root.mkdir()
    yield root


def open_fds() -> set[str]:
    """This process's open host fds (Linux)."""
    return set(os.listdir("/proc/self/fd"))
