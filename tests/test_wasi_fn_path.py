"""WASI ``path_*`` functions through the harness, on real trees in ``tmp_path``.

Layout: ``tmp_path/root`` is preopen fd 3 (``/sandbox``), ``tmp_path/root2``
is preopen fd 4 (``/other``), and ``tmp_path/outside`` is a sibling that the
guest must never reach: every escape test checks that nothing in
``tmp_path`` outside the preopens was created, changed or removed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lunatic_api.wasi import Errno, Wasi
from lunatic_api.wasi.abi import (
    ALL_RIGHTS,
    DIRECTORY_INHERITING,
    DIRECTORY_RIGHTS,
    FILE_RIGHTS,
    Fdflags,
    Filetype,
    Fstflags,
    Oflags,
    Rights,
)
from tests.wasi_fn_support import DIR_OPEN, Guest, snapshot

R = Rights
READ = int(R.fd_read | R.fd_seek | R.fd_tell | R.fd_filestat_get)
T1 = 1_500_000_000_123_456_789
T2 = 1_600_000_000_987_654_321
BOTH = int(Fstflags.atim | Fstflags.mtim)


@dataclass
class Tree:
    g: Guest
    tmp: Path
    root: Path
    root2: Path
    outside: Path

    def outside_state(self) -> dict[str, Any]:
        """Everything in ``tmp`` except the two preopens' contents."""
        state = snapshot(self.outside)
        state["<tmp>"] = sorted(os.listdir(self.tmp))
        state["<tmp-mtime>"] = os.stat(self.tmp).st_mtime_ns
        state["<outside-mtime>"] = os.stat(self.outside).st_mtime_ns
        return state

    def open(self, path: str, **kw: Any) -> int:
        return self.g.open_ok(path, **kw)

    def read_all(self, fd: int) -> bytes:
        err, data = self.g.read(fd, 4096)
        assert err == Errno.success
        return data


@pytest.fixture
def tree(tmp_path: Path, backend: str) -> Iterator[Tree]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_bytes(b"OUTSIDE")
    (outside / "d").mkdir()
    root = tmp_path / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "file.txt").write_bytes(b"content")
    (root / "a" / "f").write_bytes(b"in a")
    (root / "a" / "b" / "deep").write_bytes(b"deep")
    (root / "empty").mkdir()
    os.symlink("file.txt", root / "link")
    os.symlink("a", root / "dirlink")
    os.symlink("missing", root / "dangling")
    os.symlink(str(outside / "f"), root / "abs_out")
    os.symlink("../outside/f", root / "rel_out")
    os.symlink("../outside", root / "rel_out_dir")
    os.symlink("../outside/new", root / "dangling_out")
    for i in range(3):
        os.symlink(f"chain{i + 1}", root / f"chain{i}")
    os.symlink("file.txt", root / "chain3")
    for i in range(3):
        os.symlink(f"ochain{i + 1}", root / f"ochain{i}")
    os.symlink("a/../../outside/f", root / "ochain3")
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    root2 = tmp_path / "root2"
    root2.mkdir()
    (root2 / "there.txt").write_bytes(b"there")
    wasi = Wasi(preopens=[("/sandbox", root), ("/other", root2)], stdout=bytearray())
    t = Tree(Guest(wasi, backend), tmp_path, root, root2, outside)
    before = t.outside_state()
    yield t
    wasi.close()
    # no test may ever touch anything outside the preopens
    assert t.outside_state() == before


# --------------------------------------------------------------------------- path_open


def test_open_existing_file_and_rights(tree: Tree) -> None:
    fd = tree.open("file.txt")
    assert tree.read_all(fd) == b"content"
    err, st = tree.g.fdstat(fd)
    assert st.filetype == Filetype.regular_file
    assert st.rights_base == FILE_RIGHTS
    assert st.rights_inheriting == DIRECTORY_INHERITING
    fd = tree.open("a/b/deep", base=int(R.fd_read), inheriting=0)
    assert tree.g.fdstat(fd)[1] == (Filetype.regular_file, 0, int(R.fd_read), 0)
    assert tree.read_all(fd) == b"deep"


def test_open_missing_without_creat_is_noent(tree: Tree) -> None:
    assert tree.g.open("nope.txt") == (Errno.noent, 0xFFFFFFFF)  # fd not written
    assert tree.g.open("nope/x.txt", oflags=Oflags.creat)[0] == Errno.noent
    assert not (tree.root / "nope.txt").exists()


def test_open_creat(tree: Tree) -> None:
    fd = tree.open("new.txt", oflags=Oflags.creat)
    assert tree.g.write(fd, b"made") == (Errno.success, 4)
    assert (tree.root / "new.txt").read_bytes() == b"made"
    assert (tree.root / "new.txt").stat().st_mode & 0o777 == 0o666 & ~_umask()
    # creat on an existing file opens it unchanged
    fd = tree.open("file.txt", oflags=Oflags.creat)
    assert tree.read_all(fd) == b"content"


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_open_excl(tree: Tree) -> None:
    creat_excl = int(Oflags.creat | Oflags.excl)
    assert tree.g.open("file.txt", oflags=creat_excl)[0] == Errno.exist
    assert tree.g.open("link", oflags=creat_excl)[0] == Errno.exist
    fd = tree.open("fresh", oflags=creat_excl)
    assert tree.g.write(fd, b"1") == (Errno.success, 1)
    assert (tree.root / "fresh").read_bytes() == b"1"


@pytest.mark.parametrize("follow", [False, True])
def test_open_excl_on_dangling_symlink_is_exist(tree: Tree, follow: bool) -> None:
    # POSIX open(): "If O_CREAT and O_EXCL are set, and path names a symbolic
    # link, open() shall fail with [EEXIST], regardless of the contents of the
    # symbolic link" -- symlink_follow must not make it create the target.
    creat_excl = int(Oflags.creat | Oflags.excl)
    assert tree.g.open("dangling", oflags=creat_excl, follow=follow)[0] == Errno.exist
    assert not (tree.root / "missing").exists()


def test_open_trunc(tree: Tree) -> None:
    fd = tree.open("file.txt", oflags=Oflags.trunc)
    assert (tree.root / "file.txt").read_bytes() == b""
    assert tree.g.write(fd, b"xy") == (Errno.success, 2)
    assert (tree.root / "file.txt").read_bytes() == b"xy"


def test_open_directory_oflag(tree: Tree) -> None:
    fd = tree.open("a", oflags=Oflags.directory, base=DIR_OPEN)
    err, st = tree.g.fdstat(fd)
    assert st.filetype == Filetype.directory
    assert st.rights_base == DIRECTORY_RIGHTS & DIR_OPEN
    sub = tree.open("b/deep", dirfd=fd)  # relative to the new directory fd
    assert tree.read_all(sub) == b"deep"
    # a directory opens without the oflag too (as long as no write right is asked)
    fd2 = tree.open("a/b", base=DIR_OPEN)
    assert tree.g.fdstat(fd2)[1].filetype == Filetype.directory
    # "." is the directory itself
    dot = tree.open(".", base=DIR_OPEN)
    assert tree.g.filestat(dot)[1].ino == os.stat(tree.root).st_ino


def test_open_file_with_directory_oflag_is_notdir(tree: Tree) -> None:
    assert tree.g.open("file.txt", oflags=Oflags.directory, base=DIR_OPEN)[0] == Errno.notdir
    assert tree.g.open("file.txt/", base=READ)[0] == Errno.notdir
    assert tree.g.open("link/", base=READ)[0] == Errno.notdir


def test_open_dir_for_writing_is_isdir(tree: Tree) -> None:
    for base in (ALL_RIGHTS, int(R.fd_write), int(R.fd_read | R.fd_write)):
        assert tree.g.open("a", base=base)[0] == Errno.isdir
    assert tree.g.open("a", oflags=Oflags.trunc, base=READ)[0] == Errno.isdir
    assert tree.g.open(".", base=int(R.fd_write))[0] == Errno.isdir


def test_open_creat_with_directory_is_inval(tree: Tree) -> None:
    # WASI/wasmtime: creat|excl|trunc with directory is inval; never a new regular file
    err, _ = tree.g.open("newdir", oflags=int(Oflags.creat | Oflags.directory), base=DIR_OPEN)
    assert err == Errno.inval
    assert not (tree.root / "newdir").exists()


@pytest.mark.parametrize("oflags", [int(Oflags.directory | Oflags.trunc),
                                    int(Oflags.directory | Oflags.creat | Oflags.excl),
                                    int(Oflags.directory | Oflags.creat | Oflags.trunc)])
def test_open_directory_with_creat_excl_or_trunc_fails(tree: Tree, oflags: int) -> None:
    # wasmtime answers inval for creat/excl/trunc combined with directory;
    # exist (excl) and isdir (truncating a directory) are as good
    err, fd = tree.g.open("a", oflags=oflags, base=DIR_OPEN)
    assert err in (Errno.inval, Errno.exist, Errno.isdir)
    assert fd == 0xFFFFFFFF
    assert (tree.root / "a" / "f").read_bytes() == b"in a"


@pytest.mark.parametrize("oflags", [int(Oflags.directory), 0])
def test_open_directory_with_the_directory_rights(tree: Tree, oflags: int) -> None:
    # A guest may ask for exactly the rights its preopen reports
    # (DIRECTORY_RIGHTS, which include fd_datasync); only fd_write makes
    # opening a directory fail (wasmtime opens it; write mode there is
    # decided by fd_write alone).
    err, st = tree.g.fdstat(3)
    fd = tree.open("a", oflags=oflags, base=st.rights_base, inheriting=st.rights_inheriting)
    assert tree.g.fdstat(fd)[1].rights_base == DIRECTORY_RIGHTS
    assert tree.g.x.fd_datasync(fd) == Errno.success
    names = {e.name for e in tree.g.readdir_all(fd)}
    assert names == {b".", b"..", b"b", b"f"}


def test_open_rights_are_attenuated_by_inheriting(tree: Tree) -> None:
    inh = DIRECTORY_INHERITING & ~int(R.fd_write | R.fd_seek)
    assert tree.g.x.fd_fdstat_set_rights(3, DIRECTORY_RIGHTS, inh) == Errno.success
    fd = tree.open("file.txt")
    err, st = tree.g.fdstat(fd)
    assert st.rights_base == FILE_RIGHTS & inh
    assert st.rights_inheriting == inh
    assert tree.g.write(fd, b"x")[0] == Errno.badf
    assert tree.g.seek(fd, 1, 0)[0] == Errno.notcapable
    assert (tree.root / "file.txt").read_bytes() == b"content"


def test_open_rights_inherit_through_directories(tree: Tree) -> None:
    sub = tree.open("a", base=DIR_OPEN, inheriting=int(READ | R.path_open))
    err, st = tree.g.fdstat(sub)
    assert st.rights_inheriting == READ | R.path_open
    f = tree.open("f", dirfd=sub)  # ALL requested, only READ inherited
    assert tree.g.fdstat(f)[1].rights_base == READ
    assert tree.g.write(f, b"x")[0] == Errno.badf
    assert tree.read_all(f) == b"in a"
    # the subdirectory itself lacks path_create_file: creat is notcapable
    sub2 = tree.open("a", base=int(R.path_open), inheriting=ALL_RIGHTS)
    assert tree.g.open("made", oflags=Oflags.creat, dirfd=sub2)[0] == Errno.notcapable
    assert not (tree.root / "a" / "made").exists()


def test_open_needs_rights_on_the_directory(tree: Tree) -> None:
    keep = DIRECTORY_RIGHTS & ~int(R.path_create_file | R.path_filestat_set_size)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.open("new", oflags=Oflags.creat)[0] == Errno.notcapable
    assert tree.g.open("file.txt", oflags=Oflags.trunc)[0] == Errno.notcapable
    assert (tree.root / "file.txt").read_bytes() == b"content"
    assert not (tree.root / "new").exists()
    assert tree.g.open("file.txt")[0] == Errno.success
    assert tree.g.x.fd_fdstat_set_rights(3, 0, 0) == Errno.success
    assert tree.g.open("file.txt")[0] == Errno.notcapable


def test_open_on_non_directory_fd(tree: Tree) -> None:
    f = tree.open("file.txt")
    assert tree.g.open("x", dirfd=f)[0] == Errno.notdir
    assert tree.g.open("x", dirfd=1)[0] == Errno.notdir
    assert tree.g.open("x", dirfd=99)[0] == Errno.badf


def test_open_nofollow_symlink_is_loop(tree: Tree) -> None:
    assert tree.g.open("link", follow=False, base=READ)[0] == Errno.loop
    assert tree.g.open("dangling", follow=False, base=READ)[0] == Errno.loop
    assert tree.g.open("link", follow=False, oflags=Oflags.creat)[0] == Errno.loop
    # intermediate symlinks are always followed
    fd = tree.open("dirlink/f", follow=False, base=READ)
    assert tree.read_all(fd) == b"in a"


def test_open_follow_symlinks(tree: Tree) -> None:
    assert tree.read_all(tree.open("link", base=READ)) == b"content"
    assert tree.read_all(tree.open("chain0", base=READ)) == b"content"
    assert tree.read_all(tree.open("dirlink/b/deep", base=READ)) == b"deep"
    d = tree.open("dirlink", base=DIR_OPEN)
    assert tree.g.fdstat(d)[1].filetype == Filetype.directory
    # creat through a dangling symlink creates its target inside the sandbox
    fd = tree.open("dangling", oflags=Oflags.creat)
    assert tree.g.write(fd, b"via link") == (Errno.success, 8)
    assert (tree.root / "missing").read_bytes() == b"via link"


def test_open_symlink_loop_is_loop(tree: Tree) -> None:
    assert tree.g.open("loop_a", base=READ)[0] == Errno.loop
    assert tree.g.open("loop_a/x", base=READ)[0] == Errno.loop


def test_open_invalid_utf8_is_ilseq(tree: Tree) -> None:
    assert tree.g.open(b"bad\xff.txt", oflags=Oflags.creat) == (Errno.ilseq, 0xFFFFFFFF)
    assert tree.g.open(b"\xc3", oflags=Oflags.creat)[0] == Errno.ilseq
    assert sorted(os.listdir(tree.root)) == sorted(_INITIAL)


def test_open_nul_is_inval(tree: Tree) -> None:
    assert tree.g.open(b"file.txt\0", base=READ)[0] == Errno.inval
    assert tree.g.open(b"new\0x", oflags=Oflags.creat)[0] == Errno.inval
    assert sorted(os.listdir(tree.root)) == sorted(_INITIAL)


def test_open_empty_path_is_noent(tree: Tree) -> None:
    assert tree.g.open(b"", base=READ)[0] == Errno.noent


@pytest.mark.parametrize("oflags, fdflags", [(1 << 4, 0), (0xFFFF, 0), (0, 1 << 5)])
def test_open_unknown_flag_bits_are_inval(tree: Tree, oflags: int, fdflags: int) -> None:
    assert tree.g.open("file.txt", oflags=oflags, fdflags=fdflags, base=READ)[0] == Errno.inval


def test_open_fdflags_are_kept(tree: Tree) -> None:
    flags = int(Fdflags.append | Fdflags.sync | Fdflags.dsync)
    fd = tree.open("file.txt", fdflags=flags)
    assert tree.g.fdstat(fd)[1].flags == flags
    assert tree.g.write(fd, b"!") == (Errno.success, 1)
    assert (tree.root / "file.txt").read_bytes() == b"content!"


_INITIAL = ["a", "file.txt", "empty", "link", "dirlink", "dangling", "abs_out", "rel_out",
            "rel_out_dir", "dangling_out", "chain0", "chain1", "chain2", "chain3", "ochain0",
            "ochain1", "ochain2", "ochain3", "loop_a", "loop_b"]


ESCAPES = ["../outside/f", "..", "../", "/abs", "/", "a/../../outside/f",
           "a/b/../../../outside/f", "./../outside/f", "abs_out", "rel_out", "rel_out_dir/f",
           "ochain0", "dangling_out", "../root/file.txt"]


@pytest.mark.parametrize("path", ESCAPES)
@pytest.mark.parametrize("oflags", [0, int(Oflags.creat), int(Oflags.creat | Oflags.trunc)])
def test_open_escape_is_perm(tree: Tree, path: str, oflags: int) -> None:
    if path == "/abs":
        path = str(tree.outside / "f")
    err, fd = tree.g.open(path, oflags=oflags)
    assert (err, fd) == (Errno.perm, 0xFFFFFFFF)
    assert (tree.outside / "f").read_bytes() == b"OUTSIDE"
    assert not (tree.outside / "new").exists()


@pytest.mark.parametrize("path", ["abs_out", "rel_out", "ochain0", "dangling_out"])
def test_open_escaping_symlink_nofollow_is_loop(tree: Tree, path: str) -> None:
    # not followed: the link itself is opened (and refused as a symlink)
    assert tree.g.open(path, follow=False, oflags=Oflags.creat)[0] == Errno.loop


def test_open_dotdot_from_opened_subdir_is_escape(tree: Tree) -> None:
    sub = tree.open("a", base=DIR_OPEN)
    assert tree.g.open("../file.txt", dirfd=sub, base=READ)[0] == Errno.perm
    assert tree.g.open("b/../f", dirfd=sub, base=READ)[0] == Errno.success


# --------------------------------------------------------------------------- create / remove dirs


def test_create_directory(tree: Tree) -> None:
    assert tree.g.mkdir("newdir") == Errno.success
    assert (tree.root / "newdir").is_dir()
    assert tree.g.mkdir("newdir/nested/") == Errno.success
    assert (tree.root / "newdir" / "nested").is_dir()
    assert tree.g.mkdir("dirlink/viadirlink") == Errno.success
    assert (tree.root / "a" / "viadirlink").is_dir()


def test_create_directory_errors(tree: Tree) -> None:
    assert tree.g.mkdir("a") == Errno.exist
    assert tree.g.mkdir("file.txt") == Errno.exist
    assert tree.g.mkdir("dangling") == Errno.exist  # even a dangling link
    assert tree.g.mkdir("no/such/parent") == Errno.noent
    assert tree.g.mkdir("file.txt/sub") == Errno.notdir
    assert tree.g.mkdir(b"\xffdir") == Errno.ilseq
    assert tree.g.mkdir(b"d\0ir") == Errno.inval
    assert tree.g.mkdir("") == Errno.noent
    f = tree.open("file.txt")
    assert tree.g.mkdir("x", dirfd=f) == Errno.notdir
    assert tree.g.mkdir("x", dirfd=77) == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_create_directory)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.mkdir("x") == Errno.notcapable
    assert sorted(os.listdir(tree.root)) == sorted(_INITIAL)
    assert not (tree.root / "missing").exists()


def test_remove_directory(tree: Tree) -> None:
    assert tree.g.rmdir("empty") == Errno.success
    assert not (tree.root / "empty").exists()
    (tree.root / "a" / "gone").mkdir()
    assert tree.g.rmdir("dirlink/gone/") == Errno.success
    assert not (tree.root / "a" / "gone").exists()


def test_remove_directory_errors(tree: Tree) -> None:
    assert tree.g.rmdir("a") == Errno.notempty
    assert tree.g.rmdir("file.txt") == Errno.notdir
    assert tree.g.rmdir("dirlink") == Errno.notdir  # a symlink is not removed as a dir
    assert tree.g.rmdir("nope") == Errno.noent
    assert tree.g.rmdir(".") == Errno.inval
    assert tree.g.rmdir("a/b/..") == Errno.inval
    assert tree.g.rmdir("x", dirfd=1) == Errno.notdir
    assert tree.g.rmdir("x", dirfd=99) == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_remove_directory)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.rmdir("empty") == Errno.notcapable
    assert (tree.root / "a").is_dir() and (tree.root / "empty").is_dir()
    assert (tree.root / "dirlink").is_symlink()


# --------------------------------------------------------------------------- unlink


def test_unlink_file_and_symlink(tree: Tree) -> None:
    assert tree.g.unlink("a/f") == Errno.success
    assert not (tree.root / "a" / "f").exists()
    assert tree.g.unlink("link") == Errno.success  # the link, not its target
    assert not (tree.root / "link").is_symlink()
    assert (tree.root / "file.txt").read_bytes() == b"content"
    assert tree.g.unlink("dangling") == Errno.success
    assert tree.g.unlink("abs_out") == Errno.success  # removing a link is not escaping
    assert tree.g.unlink("dirlink") == Errno.success
    assert (tree.root / "a").is_dir()


def test_unlink_errors(tree: Tree) -> None:
    assert tree.g.unlink("a") == Errno.isdir
    assert tree.g.unlink("empty") == Errno.isdir
    assert tree.g.unlink("nope") == Errno.noent
    assert tree.g.unlink("file.txt/") == Errno.notdir
    assert tree.g.unlink("x", dirfd=0) == Errno.notdir
    assert tree.g.unlink("x", dirfd=99) == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_unlink_file)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.unlink("file.txt") == Errno.notcapable
    assert (tree.root / "file.txt").exists() and (tree.root / "empty").is_dir()


# --------------------------------------------------------------------------- rename


def test_rename_within_and_onto_existing(tree: Tree) -> None:
    assert tree.g.rename("file.txt", "moved.txt") == Errno.success
    assert (tree.root / "moved.txt").read_bytes() == b"content"
    assert not (tree.root / "file.txt").exists()
    assert tree.g.rename("moved.txt", "a/f") == Errno.success  # replaces
    assert (tree.root / "a" / "f").read_bytes() == b"content"
    assert tree.g.rename("a/b", "newb") == Errno.success  # a directory
    assert (tree.root / "newb" / "deep").read_bytes() == b"deep"
    assert tree.g.rename("newb", "empty") == Errno.success  # onto an empty dir
    assert (tree.root / "empty" / "deep").exists()
    assert tree.g.rename("link", "link2") == Errno.success  # the link itself moves
    assert os.readlink(tree.root / "link2") == "file.txt"


def test_rename_across_preopens(tree: Tree) -> None:
    assert tree.g.rename("file.txt", "arrived.txt", fd=3, new_fd=4) == Errno.success
    assert (tree.root2 / "arrived.txt").read_bytes() == b"content"
    assert not (tree.root / "file.txt").exists()
    assert tree.g.rename("there.txt", "a/back.txt", fd=4, new_fd=3) == Errno.success
    assert (tree.root / "a" / "back.txt").read_bytes() == b"there"


def test_rename_errors(tree: Tree) -> None:
    assert tree.g.rename("nope", "x") == Errno.noent
    assert tree.g.rename("a/f", "empty") == Errno.isdir
    assert tree.g.rename("empty", "file.txt") == Errno.notdir
    (tree.root / "empty" / "x").write_bytes(b"")
    assert tree.g.rename("a", "empty") == Errno.notempty
    assert tree.g.rename("a", "a/b/inside") == Errno.inval  # into itself
    f = tree.open("file.txt")
    assert tree.g.rename("file.txt", "x", fd=f) == Errno.notdir
    assert tree.g.rename("file.txt", "x", new_fd=99) == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_rename_target)
    assert tree.g.x.fd_fdstat_set_rights(4, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.rename("file.txt", "x", new_fd=4) == Errno.notcapable
    assert tree.g.rename("there.txt", "x", fd=4, new_fd=3) == Errno.success
    keep = DIRECTORY_RIGHTS & ~int(R.path_rename_source)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.rename("file.txt", "y") == Errno.notcapable
    assert (tree.root / "file.txt").read_bytes() == b"content"


@pytest.mark.parametrize("old, new", [
    ("file.txt", "../outside/stolen"), ("file.txt", "/tmp/stolen"),
    ("../outside/f", "got"), ("rel_out", "a/../../outside/f"),
    ("file.txt", "rel_out_dir/stolen"), ("abs_out/x", "got"), ("ochain0/x", "got"), ("rel_out_dir/f", "got"),
])
def test_rename_escape_is_perm(tree: Tree, old: str, new: str) -> None:
    assert tree.g.rename(old, new) == Errno.perm
    assert (tree.root / "file.txt").read_bytes() == b"content"
    assert not (tree.root / "got").exists()


# --------------------------------------------------------------------------- link


def test_link(tree: Tree) -> None:
    assert tree.g.link("file.txt", "hard") == Errno.success
    assert os.stat(tree.root / "hard").st_ino == os.stat(tree.root / "file.txt").st_ino
    assert tree.g.path_filestat("file.txt")[1].nlink == 2
    assert tree.g.link("a/f", "there2", new_fd=4) == Errno.success
    assert (tree.root2 / "there2").read_bytes() == b"in a"


def test_link_symlink_follow_flag(tree: Tree) -> None:
    assert tree.g.link("link", "hl_nofollow", follow=False) == Errno.success
    assert (tree.root / "hl_nofollow").is_symlink()
    assert tree.g.link("link", "hl_follow", follow=True) == Errno.success
    assert not (tree.root / "hl_follow").is_symlink()
    assert os.stat(tree.root / "hl_follow").st_ino == os.stat(tree.root / "file.txt").st_ino


def test_link_errors(tree: Tree) -> None:
    assert tree.g.link("file.txt", "a/f") == Errno.exist
    assert tree.g.link("nope", "x") == Errno.noent
    assert tree.g.link("a", "adir") == Errno.perm  # no hard links to directories
    assert tree.g.link("file.txt", "x", new_fd=1) == Errno.notdir
    assert tree.g.link("file.txt", "x", fd=99) == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_link_source)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.link("file.txt", "x") == Errno.notcapable
    assert not (tree.root / "x").exists()


@pytest.mark.parametrize("old, new, follow", [
    ("../outside/f", "stolen", False), ("abs_out", "stolen", True),
    ("rel_out", "stolen", True), ("ochain0", "stolen", True),
    ("file.txt", "../outside/planted", False), ("file.txt", "rel_out_dir/planted", False),
    ("file.txt", "/planted", False),
])
def test_link_escape_is_perm(tree: Tree, old: str, new: str, follow: bool) -> None:
    assert tree.g.link(old, new, follow=follow) == Errno.perm
    assert not (tree.root / "stolen").exists()


# --------------------------------------------------------------------------- symlink / readlink


def test_symlink_relative(tree: Tree) -> None:
    assert tree.g.symlink("file.txt", "newlink") == Errno.success
    assert os.readlink(tree.root / "newlink") == "file.txt"
    assert tree.read_all(tree.open("newlink", base=READ)) == b"content"
    assert tree.g.symlink("../file.txt", "a/up") == Errno.success
    assert tree.read_all(tree.open("a/up", base=READ)) == b"content"
    assert tree.g.symlink("does/not/exist", "dang2") == Errno.success  # dangling is fine
    assert os.readlink(tree.root / "dang2") == "does/not/exist"


def test_symlink_absolute_target_is_perm(tree: Tree) -> None:
    assert tree.g.symlink(str(tree.outside / "f"), "abs") == Errno.perm
    assert tree.g.symlink("/", "abs") == Errno.perm
    assert not os.path.lexists(tree.root / "abs")


def test_symlink_escaping_relative_target_cannot_be_used(tree: Tree) -> None:
    # creating it is harmless; resolving it is refused
    assert tree.g.symlink("../outside/f", "sneaky") == Errno.success
    assert tree.g.open("sneaky", base=READ)[0] == Errno.perm
    assert tree.g.path_filestat("sneaky", follow=True)[0] == Errno.perm


def test_symlink_errors(tree: Tree) -> None:
    assert tree.g.symlink("x", "file.txt") == Errno.exist
    assert tree.g.symlink("x", "link") == Errno.exist
    assert tree.g.symlink("x", "no/dir/l") == Errno.noent
    assert tree.g.symlink(b"t\0x", "l") == Errno.inval
    assert tree.g.symlink(b"\xff", "l") == Errno.ilseq
    assert tree.g.symlink("x", "../outside/l") == Errno.perm
    assert tree.g.symlink("x", "rel_out_dir/l") == Errno.perm
    assert tree.g.symlink("x", "l", fd=2) == Errno.notdir
    assert tree.g.symlink("x", "l", fd=99) == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_symlink)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.symlink("x", "l") == Errno.notcapable
    assert not os.path.lexists(tree.root / "l")


def test_readlink(tree: Tree) -> None:
    err, target, raw = tree.g.readlink("link", 64)
    assert (err, target) == (Errno.success, b"file.txt")
    assert raw[8:] == b"\xaa" * 60  # no NUL, nothing past the target
    assert tree.g.readlink("rel_out", 64)[:2] == (Errno.success, b"../outside/f")
    assert tree.g.readlink("abs_out", 256)[1] == os.fsencode(tree.outside / "f")
    assert tree.g.readlink("dirlink/../link", 64)[:2] == (Errno.success, b"file.txt")


def test_readlink_truncates_into_small_buffer(tree: Tree) -> None:
    err, target, raw = tree.g.readlink("rel_out", 5)
    assert (err, target) == (Errno.success, b"../ou")
    assert raw == b"../ou" + b"\xaa" * 4
    err, target, raw = tree.g.readlink("rel_out", 0)
    assert (err, target, raw) == (Errno.success, b"", b"\xaa" * 4)


def test_readlink_errors(tree: Tree) -> None:
    assert tree.g.readlink("file.txt", 64)[0] == Errno.inval
    assert tree.g.readlink("a", 64)[0] == Errno.inval
    assert tree.g.readlink("nope", 64)[0] == Errno.noent
    assert tree.g.readlink("../outside/f", 64)[0] == Errno.perm
    assert tree.g.readlink("link", 64, fd=1)[0] == Errno.notdir
    assert tree.g.readlink("link", 64, fd=99)[0] == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_readlink)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.readlink("link", 64)[0] == Errno.notcapable


# --------------------------------------------------------------------------- filestat


def test_path_filestat_follow_vs_nofollow(tree: Tree) -> None:
    err, st = tree.g.path_filestat("link", follow=True)
    host = os.stat(tree.root / "file.txt")
    assert err == Errno.success
    assert (st.filetype, st.ino, st.size) == (Filetype.regular_file, host.st_ino, 7)
    assert (st.dev, st.nlink, st.mtim) == (host.st_dev, 1, host.st_mtime_ns)
    err, st = tree.g.path_filestat("link", follow=False)
    lhost = os.lstat(tree.root / "link")
    assert (st.filetype, st.ino, st.size) == (Filetype.symbolic_link, lhost.st_ino, 8)
    err, st = tree.g.path_filestat("dirlink", follow=True)
    assert st.filetype == Filetype.directory
    assert tree.g.path_filestat("dangling", follow=False)[1].filetype == Filetype.symbolic_link
    assert tree.g.path_filestat("dangling", follow=True)[0] == Errno.noent
    assert tree.g.path_filestat("chain0", follow=True)[1].ino == host.st_ino


def test_path_filestat_dirs_and_errors(tree: Tree) -> None:
    assert tree.g.path_filestat(".")[1].ino == os.stat(tree.root).st_ino
    assert tree.g.path_filestat("a/b")[1].filetype == Filetype.directory
    assert tree.g.path_filestat("nope")[0] == Errno.noent
    assert tree.g.path_filestat("file.txt/x")[0] == Errno.notdir
    assert tree.g.path_filestat("loop_a")[0] == Errno.loop
    assert tree.g.path_filestat("x", dirfd=1)[0] == Errno.notdir
    assert tree.g.path_filestat("x", dirfd=99)[0] == Errno.badf
    keep = DIRECTORY_RIGHTS & ~int(R.path_filestat_get)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.path_filestat("file.txt")[0] == Errno.notcapable


@pytest.mark.parametrize("path", ["..", "../outside/f", "/etc", "a/../../outside",
                                  "rel_out", "abs_out", "ochain0", "rel_out_dir/f"])
def test_path_filestat_escape_is_perm(tree: Tree, path: str) -> None:
    err, st = tree.g.path_filestat(path, follow=True)
    assert err == Errno.perm
    assert st.ino == 0  # nothing about the outside was written


def test_path_filestat_escaping_link_itself_is_visible(tree: Tree) -> None:
    err, st = tree.g.path_filestat("abs_out", follow=False)
    assert (err, st.filetype) == (Errno.success, Filetype.symbolic_link)


def test_path_filestat_set_times(tree: Tree) -> None:
    assert tree.g.set_times("file.txt", T1, T2, BOTH) == Errno.success
    st = os.stat(tree.root / "file.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (T1, T2)
    assert tree.g.path_filestat("file.txt")[1][5:7] == (T1, T2)
    assert tree.g.set_times("file.txt", 0, T1, int(Fstflags.mtim)) == Errno.success
    st = os.stat(tree.root / "file.txt")
    assert (st.st_atime_ns, st.st_mtime_ns) == (T1, T1)
    before = time.time_ns()
    assert tree.g.set_times("file.txt", 0, 0, int(Fstflags.atim_now | Fstflags.mtim_now)) \
        == Errno.success
    st = os.stat(tree.root / "file.txt")
    assert abs(st.st_atime_ns - before) < 5_000_000_000
    assert abs(st.st_mtime_ns - before) < 5_000_000_000
    assert tree.g.set_times("a", T1, T2, BOTH) == Errno.success
    assert os.stat(tree.root / "a").st_mtime_ns == T2


def test_path_filestat_set_times_follow_vs_nofollow(tree: Tree) -> None:
    target_before = os.stat(tree.root / "file.txt").st_mtime_ns
    assert tree.g.set_times("link", T1, T1, BOTH, follow=False) == Errno.success
    assert os.lstat(tree.root / "link").st_mtime_ns == T1
    assert os.stat(tree.root / "file.txt").st_mtime_ns == target_before
    assert tree.g.set_times("link", T2, T2, BOTH, follow=True) == Errno.success
    assert os.stat(tree.root / "file.txt").st_mtime_ns == T2
    assert os.lstat(tree.root / "link").st_mtime_ns == T1


def test_path_filestat_set_times_errors(tree: Tree) -> None:
    before = os.stat(tree.root / "file.txt").st_mtime_ns
    for flags in (Fstflags.atim | Fstflags.atim_now, Fstflags.mtim | Fstflags.mtim_now,
                  1 << 7):
        assert tree.g.set_times("file.txt", T1, T2, int(flags)) == Errno.inval
    assert os.stat(tree.root / "file.txt").st_mtime_ns == before
    assert tree.g.set_times("nope", T1, T2, BOTH) == Errno.noent
    assert tree.g.set_times("x", T1, T2, BOTH, dirfd=1) == Errno.notdir
    assert tree.g.set_times("x", T1, T2, BOTH, dirfd=99) == Errno.badf
    for path in ("../outside/f", "rel_out", "abs_out", "ochain0", "rel_out_dir"):
        assert tree.g.set_times(path, T1, T2, BOTH, follow=True) == Errno.perm
    keep = DIRECTORY_RIGHTS & ~int(R.path_filestat_set_times)
    assert tree.g.x.fd_fdstat_set_rights(3, keep, DIRECTORY_INHERITING) == Errno.success
    assert tree.g.set_times("file.txt", T1, T2, BOTH) == Errno.notcapable
    assert os.stat(tree.root / "file.txt").st_mtime_ns == before


# --------------------------------------------------------------------------- flags and trailing slashes


@pytest.mark.parametrize("lookup", [2, 1 << 31, 0xFFFFFFFF])
def test_undefined_lookupflags_bits_are_inval(tree: Tree, lookup: int) -> None:
    s = tree.g.scratch()
    p, n = s.put(b"file.txt")
    q, m = s.put(b"hardlink")
    out = s.out(64)
    assert tree.g.x.path_open(3, lookup, p, n, 0, READ, 0, 0, out) == Errno.inval
    assert tree.g.x.path_filestat_get(3, lookup, p, n, out) == Errno.inval
    assert tree.g.x.path_filestat_set_times(3, lookup, p, n, T1, T2, BOTH) == Errno.inval
    assert tree.g.x.path_link(3, lookup, p, n, 3, q, m) == Errno.inval
    assert not (tree.root / "hardlink").exists()
    assert os.stat(tree.root / "file.txt").st_mtime_ns != T2


def test_trailing_slash_on_new_non_directory_names(tree: Tree) -> None:
    assert tree.g.symlink("file.txt", "slink/") == Errno.noent
    assert tree.g.symlink("file.txt", "a/") == Errno.exist
    assert tree.g.link("file.txt", "hlink/") == Errno.noent
    assert tree.g.link("file.txt", "empty/") == Errno.exist
    assert not os.path.lexists(tree.root / "slink")
    assert not os.path.lexists(tree.root / "hlink")
    assert tree.g.rename("file.txt", "renamed/") == Errno.notdir
    assert tree.g.rename("file.txt/", "renamed") == Errno.notdir
    assert (tree.root / "file.txt").read_bytes() == b"content"
    assert tree.g.rename("empty/", "empty2/") == Errno.success  # directories may
    assert (tree.root / "empty2").is_dir()
    assert tree.g.mkdir("newdir/") == Errno.success
    assert (tree.root / "newdir").is_dir()


# --------------------------------------------------------------------------- escapes, all functions


ESCAPE_CALLS: dict[str, Callable[[Guest], int]] = {
    "create_directory ..": lambda g: g.mkdir("../outside/newdir"),
    "create_directory via link": lambda g: g.mkdir("rel_out_dir/newdir"),
    "create_directory abs": lambda g: g.mkdir("/newdir"),
    "remove_directory": lambda g: g.rmdir("../outside/d"),
    "remove_directory via link": lambda g: g.rmdir("rel_out_dir/d"),
    "unlink": lambda g: g.unlink("../outside/f"),
    "unlink via link": lambda g: g.unlink("rel_out_dir/f"),
    "unlink a/../..": lambda g: g.unlink("a/../../outside/f"),
    "symlink new path": lambda g: g.symlink("x", "a/../../outside/l"),
    "readlink": lambda g: g.readlink("../root/link", 32)[0],
    "open chain": lambda g: g.open("ochain0", oflags=int(Oflags.trunc))[0],
    "open dir via link": lambda g: g.open("rel_out_dir", base=DIR_OPEN)[0],
}


@pytest.mark.parametrize("name", list(ESCAPE_CALLS))
def test_every_path_function_refuses_escapes(tree: Tree, name: str) -> None:
    assert ESCAPE_CALLS[name](tree.g) == Errno.perm
    # (the fixture checks that nothing outside changed)
    assert (tree.outside / "f").read_bytes() == b"OUTSIDE"
    assert (tree.outside / "d").is_dir()


def test_tree_fixture_sees_outside_changes(tmp_path: Path) -> None:
    """The fixture's outside check would notice a write (self-test of snapshot)."""
    (tmp_path / "outside").mkdir()
    f = tmp_path / "outside" / "f"
    f.write_bytes(b"a")
    before = snapshot(tmp_path / "outside")
    f.write_bytes(b"b")
    assert snapshot(tmp_path / "outside") != before
