"""Sandboxed WASI path resolution (lunatic_api.wasi.sandbox) and WASI errno.

Every test works on real directories under pytest's temporary directories;
"outside" is always a sibling of the sandbox root inside that temporary
directory, with content that differs from anything inside the root.
"""

from __future__ import annotations

import errno as host_errno
import os
import stat
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lunatic_api.wasi.errno import Errno, errno_from_host, errno_from_oserror
from lunatic_api.wasi.sandbox import (
    ESCAPE_ERRNO,
    MAX_SYMLINK_EXPANSIONS,
    SandboxError,
    open_at,
    resolve,
    stat_at,
)

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux only")


# --------------------------------------------------------------------------- fixtures


def build_tree(base: Path) -> Path:
    """Create ``base/root`` (the sandbox) and ``base/outside``; return the root."""
    outside = base / "outside"
    outside.mkdir()
    (outside / "f").write_text("OUTSIDE")
    (outside / "file").write_text("OUTSIDE")
    root = base / "root"
    (root / "a" / "b").mkdir(parents=True)
    (root / "a" / "f").write_text("inside-a")
    (root / "a" / "b" / "file").write_text("inside-b")
    (root / "top").write_text("top")
    os.symlink("a/b", root / "link_in")
    os.symlink("../outside", root / "link_out")
    os.symlink(str(outside), root / "link_abs")
    os.symlink("../outside/f", root / "link_file_out")
    os.symlink("..", root / "link_up")
    os.symlink("../..", root / "a" / "link_up2")
    os.symlink("../top", root / "a" / "link_sib")
    os.symlink("..", root / "a" / "b" / "link_dotdot")
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    os.symlink("self", root / "self")
    os.symlink("nonexistent", root / "dangling")
    for i in range(5):
        os.symlink(f"chain{i + 1}", root / f"chain{i}")
    os.symlink("a", root / "chain5")
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return build_tree(tmp_path)


@pytest.fixture
def root_fd(root: Path) -> Iterator[int]:
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


def real(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


def resolved(fd: int, path: str, follow: bool = False) -> tuple[str, str]:
    """(real path of the parent, name); closes the returned fd."""
    parent, name = resolve(fd, path, follow)
    try:
        return real(parent), name
    finally:
        os.close(parent)


def errno_of(fd: int, path: str, follow: bool = False) -> Errno:
    with pytest.raises(SandboxError) as info:
        parent, _ = resolve(fd, path, follow)
        os.close(parent)
    return info.value.errno


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


# --------------------------------------------------------------------------- errno


def test_errno_has_the_77_witx_values_in_order() -> None:
    assert len(Errno) == 77
    assert [e.value for e in Errno] == list(range(77))
    spot = {"success": 0, "toobig": 1, "acces": 2, "again": 6, "badf": 8, "exist": 20,
            "inval": 28, "io": 29, "isdir": 31, "loop": 32, "noent": 44, "notdir": 54,
            "notempty": 55, "notsup": 58, "perm": 63, "xdev": 75, "notcapable": 76}
    assert {name: Errno[name].value for name in spot} == spot
    assert Errno.toobig.witx_name == "2big" and Errno.acces.witx_name == "acces"


@pytest.mark.parametrize("host, wasi", [
    ("ENOENT", "noent"), ("EACCES", "acces"), ("EEXIST", "exist"), ("ENOTDIR", "notdir"),
    ("EISDIR", "isdir"), ("ELOOP", "loop"), ("ENOTEMPTY", "notempty"), ("EXDEV", "xdev"),
    ("EINVAL", "inval"), ("EBADF", "badf"), ("ENAMETOOLONG", "nametoolong"),
    ("EPERM", "perm"), ("ENOSPC", "nospc"), ("EMLINK", "mlink"), ("EROFS", "rofs"),
    ("ETXTBSY", "txtbsy"), ("EAGAIN", "again"), ("EWOULDBLOCK", "again"), ("EINTR", "intr"),
    ("EIO", "io"), ("ENOTSUP", "notsup"), ("EOPNOTSUPP", "notsup"), ("ESPIPE", "spipe"),
    ("EMFILE", "mfile"), ("ENXIO", "nxio"), ("EFBIG", "fbig"), ("E2BIG", "toobig"),
    ("EPIPE", "pipe"), ("ENOSYS", "nosys"), ("ENOMEM", "nomem"), ("EBUSY", "busy"),
    ("EDQUOT", "dquot"), ("ECONNREFUSED", "connrefused"), ("ETIMEDOUT", "timedout"),
])
def test_errno_from_oserror(host: str, wasi: str) -> None:
    number = getattr(host_errno, host)
    assert errno_from_oserror(OSError(number, "x")) is Errno[wasi]
    assert errno_from_host(number) is Errno[wasi]


def test_errno_from_oserror_unknown_and_subclasses() -> None:
    assert errno_from_oserror(OSError("no errno")) is Errno.io
    assert errno_from_oserror(OSError(4000, "made up")) is Errno.io
    assert errno_from_oserror(FileNotFoundError(host_errno.ENOENT, "x")) is Errno.noent
    # Every WASI code except success/notcapable has a Linux errno mapping to it.
    mapped = {errno_from_host(n) for n in host_errno.errorcode}
    assert set(Errno) - mapped == {Errno.success, Errno.notcapable}


# --------------------------------------------------------------------------- plain paths


def test_nested_paths(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "a/b/file") == (str(root / "a" / "b"), "file")
    assert resolved(root_fd, "a") == (str(root), "a")
    assert resolved(root_fd, "a/./b//file") == (str(root / "a" / "b"), "file")
    assert resolved(root_fd, "a/b/missing") == (str(root / "a" / "b"), "missing")


def test_dot_and_dotdot_inside(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, ".") == (str(root), ".")
    assert resolved(root_fd, "./") == (str(root), ".")
    assert resolved(root_fd, "a/..") == (str(root), ".")
    assert resolved(root_fd, "a/b/.") == (str(root / "a" / "b"), ".")
    assert resolved(root_fd, "a/b/../f") == (str(root / "a"), "f")
    assert resolved(root_fd, "a/./b/../../a/b/../b///./file") == (str(root / "a" / "b"), "file")


@pytest.mark.parametrize("path", [
    "..", "../", "../x", "./..", "a/../../x", "a/b/../../../x", "a/b/../../..",
    "a/../..", "../root/a", "a/b/../../../root/a/b/file",
])
@pytest.mark.parametrize("follow", [False, True])
def test_dotdot_escape(root_fd: int, path: str, follow: bool) -> None:
    assert errno_of(root_fd, path, follow) is ESCAPE_ERRNO


@pytest.mark.parametrize("path", ["/", "/a", "//a", "/etc/passwd", "ABS/a/b/file"])
def test_absolute_paths(root: Path, root_fd: int, path: str) -> None:
    path = path.replace("ABS", str(root))
    assert errno_of(root_fd, path) is ESCAPE_ERRNO
    assert errno_of(root_fd, path, follow=True) is ESCAPE_ERRNO


def test_escape_errno_is_perm_like_wasmtime_and_wasi_testsuite() -> None:
    # wasi-testsuite interesting_paths.rs expects ERRNO_PERM (63) for
    # absolute paths and for too many "..": see the sandbox docstring.
    assert ESCAPE_ERRNO is Errno.perm and int(ESCAPE_ERRNO) == 63


def test_root_is_the_given_dir_fd_not_the_preopen(root: Path, root_fd: int) -> None:
    sub = os.open("a", os.O_RDONLY | os.O_DIRECTORY, dir_fd=root_fd)
    try:
        assert resolved(sub, "b/file") == (str(root / "a" / "b"), "file")
        assert errno_of(sub, "..") is ESCAPE_ERRNO
        assert errno_of(sub, "b/../../a/f") is ESCAPE_ERRNO
        assert errno_of(sub, "link_up2/root/top", follow=True) is ESCAPE_ERRNO
    finally:
        os.close(sub)


def test_bad_strings(root_fd: int) -> None:
    assert errno_of(root_fd, "") is Errno.noent
    assert errno_of(root_fd, "a/b/file\0") is Errno.inval
    assert errno_of(root_fd, "a\0/b") is Errno.inval


def test_intermediate_errors(root_fd: int) -> None:
    assert errno_of(root_fd, "top/x") is Errno.notdir
    assert errno_of(root_fd, "a/b/file/x") is Errno.notdir
    assert errno_of(root_fd, "nope/x") is Errno.noent
    assert errno_of(root_fd, "x" * 300 + "/y") is Errno.nametoolong


def test_trailing_slash(root: Path, root_fd: int) -> None:
    assert resolved(root_fd, "a/b/") == (str(root / "a"), "b")
    assert resolved(root_fd, "a/b///") == (str(root / "a"), "b")
    assert resolved(root_fd, "new/") == (str(root), "new")
    assert errno_of(root_fd, "a/b/file/") is Errno.notdir
    assert errno_of(root_fd, "top/") is Errno.notdir
    # A trailing slash does not force a final symlink to be followed.
    assert errno_of(root_fd, "link_in/") is Errno.notdir
    assert resolved(root_fd, "link_in/", follow=True) == (str(root / "a"), "b")


# --------------------------------------------------------------------------- symlinks


@pytest.mark.parametrize("path", [
    "link_out/f", "link_abs/f", "link_up/root/a", "link_up/outside/f", "a/link_up2/outside/f",
    "a/link_up2/root/top", "link_out/../root/top", "link_abs/../root/top",
])
@pytest.mark.parametrize("follow", [False, True])
def test_intermediate_symlink_to_outside(root_fd: int, path: str, follow: bool) -> None:
    assert errno_of(root_fd, path, follow) is ESCAPE_ERRNO


@pytest.mark.parametrize("link", ["link_out", "link_abs", "link_file_out", "link_up",
                                  "a/link_up2"])
def test_final_symlink_to_outside(root: Path, root_fd: int, link: str) -> None:
    assert errno_of(root_fd, link, follow=True) is ESCAPE_ERRNO
    parent, name = link.rpartition("/")[0], link.rpartition("/")[2]
    # Not followed: the link itself, which is inside.
    assert resolved(root_fd, link) == (str(root / parent) if parent else str(root), name)


def test_symlinks_inside_the_tree(root: Path, root_fd: int) -> None:
    a, b = str(root / "a"), str(root / "a" / "b")
    assert resolved(root_fd, "link_in/file") == (b, "file")
    assert resolved(root_fd, "link_in") == (str(root), "link_in")
    assert resolved(root_fd, "link_in", follow=True) == (a, "b")
    assert resolved(root_fd, "a/link_sib", follow=True) == (str(root), "top")
    assert resolved(root_fd, "link_in/link_dotdot/f") == (a, "f")
    # ".." after a symlink is physical: the parent of the link's target.
    assert resolved(root_fd, "link_in/../f") == (a, "f")
    # A final ".." (here from a link target) names the directory itself.
    assert resolved(root_fd, "link_in/link_dotdot", follow=True) == (a, ".")
    assert resolved(root_fd, "chain0/b/file") == (b, "file")
    assert resolved(root_fd, "chain0", follow=True) == (str(root), "a")
    assert resolved(root_fd, "dangling", follow=True) == (str(root), "nonexistent")


def test_symlink_loops(root: Path, root_fd: int) -> None:
    assert errno_of(root_fd, "loop1", follow=True) is Errno.loop
    assert errno_of(root_fd, "loop1/x") is Errno.loop
    assert errno_of(root_fd, "self/x") is Errno.loop
    assert errno_of(root_fd, "a/../self", follow=True) is Errno.loop
    assert resolved(root_fd, "loop1") == (str(root), "loop1")


def test_symlink_expansion_limit(tmp_path: Path) -> None:
    base = tmp_path / "chains"
    base.mkdir()
    (base / "end").mkdir()
    (base / "end" / "f").write_text("x")
    n = MAX_SYMLINK_EXPANSIONS + 1
    for i in range(n):
        os.symlink(f"c{i + 1}" if i + 1 < n else "end", base / f"c{i}")
    fd = os.open(base, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert errno_of(fd, "c0/f") is Errno.loop  # 41 expansions
        assert resolved(fd, "c1/f") == (str(base / "end"), "f")  # exactly 40
        assert resolved(fd, "c1", follow=True) == (str(base), "end")
    finally:
        os.close(fd)


def test_no_fd_leaks_and_root_stays_open(root_fd: int) -> None:
    paths = ["a/b/file", "a/b/../../..", "link_out/f", "loop1/x", "link_in/file", "top/x",
             "/abs", "", "chain0/b/", ".", "a/.."]
    before = open_fds()
    for _ in range(3):
        for path in paths:
            for follow in (False, True):
                try:
                    parent, _ = resolve(root_fd, path, follow)
                except SandboxError:
                    continue
                os.close(parent)
    assert open_fds() == before
    os.fstat(root_fd)  # still open


# --------------------------------------------------------------------------- open_at / stat_at


def read_at(fd: int, path: str, follow: bool = False) -> str:
    f = open_at(fd, path, os.O_RDONLY, follow=follow)
    with os.fdopen(f, "r") as fh:
        return fh.read()


def test_open_at(root: Path, root_fd: int) -> None:
    assert read_at(root_fd, "a/b/file") == "inside-b"
    assert read_at(root_fd, "link_in/file") == "inside-b"
    assert read_at(root_fd, "link_in/../f") == "inside-a"
    assert read_at(root_fd, "a/link_sib", follow=True) == "top"
    with pytest.raises(SandboxError) as info:
        open_at(root_fd, "a/link_sib", os.O_RDONLY)  # final symlink, not followed
    assert info.value.errno is Errno.loop
    for path in ("link_out/f", "link_file_out", "link_abs/file", "../outside/f"):
        with pytest.raises(SandboxError) as info:
            open_at(root_fd, path, os.O_RDONLY, follow=True)
        assert info.value.errno is ESCAPE_ERRNO
    with pytest.raises(SandboxError) as info:
        open_at(root_fd, "a/b/file/", os.O_RDONLY)
    assert info.value.errno is Errno.notdir
    with pytest.raises(SandboxError) as info:
        open_at(root_fd, "a/missing", os.O_RDONLY)
    assert info.value.errno is Errno.noent
    d = open_at(root_fd, "a/b/", os.O_RDONLY)
    assert real(d) == str(root / "a" / "b")
    os.close(d)


def test_open_at_create(root: Path, root_fd: int) -> None:
    f = open_at(root_fd, "a/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(f, b"hello")
    os.close(f)
    assert (root / "a" / "new").read_text() == "hello"
    with pytest.raises(SandboxError) as info:
        open_at(root_fd, "a/new", os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert info.value.errno is Errno.exist
    # Creating through a dangling symlink: refused unless followed, then inside.
    with pytest.raises(SandboxError) as info:
        open_at(root_fd, "dangling", os.O_WRONLY | os.O_CREAT)
    assert info.value.errno is Errno.loop
    os.close(open_at(root_fd, "dangling", os.O_WRONLY | os.O_CREAT, follow=True))
    assert (root / "nonexistent").is_file()
    with pytest.raises(SandboxError) as info:
        open_at(root_fd, "link_out/created", os.O_WRONLY | os.O_CREAT, follow=True)
    assert info.value.errno is ESCAPE_ERRNO
    assert not (root.parent / "outside" / "created").exists()


def test_stat_at(root_fd: int) -> None:
    assert stat.S_ISLNK(stat_at(root_fd, "link_in").st_mode)
    assert stat.S_ISDIR(stat_at(root_fd, "link_in", follow=True).st_mode)
    assert stat.S_ISREG(stat_at(root_fd, "link_in/file").st_mode)
    assert stat.S_ISDIR(stat_at(root_fd, ".").st_mode)
    assert stat.S_ISLNK(stat_at(root_fd, "link_out").st_mode)
    for path, follow, expected in [("link_out", True, ESCAPE_ERRNO), ("a/zz", False, Errno.noent),
                                   ("loop1", True, Errno.loop), ("", False, Errno.noent)]:
        with pytest.raises(SandboxError) as info:
            stat_at(root_fd, path, follow)
        assert info.value.errno is expected


# --------------------------------------------------------------------------- races


def test_parent_fd_survives_a_swap_after_resolution(root: Path, root_fd: int) -> None:
    # Once resolved, the parent fd keeps naming the inside directory even if
    # its path is replaced by a symlink to outside.
    parent, name = resolve(root_fd, "a/f", False)
    try:
        os.rename(root / "a", root / "a_moved")
        os.symlink("../outside", root / "a")
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=parent)
        with os.fdopen(fd) as fh:
            assert fh.read() == "inside-a"
    finally:
        os.close(parent)


@pytest.mark.parametrize("absolute", [False, True])
def test_symlink_swap_race(tmp_path: Path, absolute: bool) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("OUTSIDE")
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "f").write_text("inside")
    target = str(outside) if absolute else "../outside"
    stop = threading.Event()
    swaps = [0]

    def swapper() -> None:
        while not stop.is_set():
            os.rename(root / "a", root / "parked")
            os.symlink(target, root / "a")
            os.unlink(root / "a")
            os.rename(root / "parked", root / "a")
            swaps[0] += 1

    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    thread = threading.Thread(target=swapper, daemon=True)
    outcomes = {"inside": 0, "error": 0}
    seen_errnos = set()
    thread.start()
    try:
        # run for 2 s, longer (up to 8 s) on a loaded machine until both
        # outcomes were seen, so the race is really exercised
        start = time.monotonic()
        while (time.monotonic() - start < 2.0
               or (min(outcomes.values()) == 0 and time.monotonic() - start < 8.0)):
            try:
                f = open_at(fd, "a/f", os.O_RDONLY, follow=True)
            except SandboxError as exc:
                outcomes["error"] += 1
                seen_errnos.add(exc.errno)
                continue
            with os.fdopen(f) as fh:
                content = fh.read()
            assert content != "OUTSIDE", "opened the outside file through the sandbox"
            assert content == "inside"
            outcomes["inside"] += 1
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(old_interval)
        os.close(fd)
    assert swaps[0] > 10
    assert outcomes["inside"] + outcomes["error"] > 10, outcomes
    assert seen_errnos <= {ESCAPE_ERRNO, Errno.noent}, seen_errnos


# --------------------------------------------------------------------------- property


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    root = build_tree(tmp_path_factory.mktemp("wasi_prop"))
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    yield fd, os.path.realpath(root)
    os.close(fd)


COMPONENTS = st.sampled_from(["a", "b", "..", ".", "link_out", "link_in", "", "link_abs",
                              "link_up", "file", "f", "loop1", "chain0", "link_dotdot"])


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parts=st.lists(COMPONENTS, min_size=1, max_size=8), follow=st.booleans())
def test_resolution_never_leaves_the_root(shared_root: tuple[int, str], parts: list,
                                          follow: bool) -> None:
    root_fd, root_real = shared_root
    path = "/".join(parts)
    before = open_fds()
    try:
        parent, name = resolve(root_fd, path, follow)
    except SandboxError as exc:
        assert exc.errno in {ESCAPE_ERRNO, Errno.noent, Errno.notdir, Errno.loop}, (path, exc)
        assert open_fds() == before
        return
    try:
        parent_real = real(parent)
        assert parent_real == root_real or parent_real.startswith(root_real + "/"), path
        assert "/" not in name and name not in ("", "..")
        if name != ".":
            try:
                st_ = os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                pass
            else:
                if follow:
                    assert not stat.S_ISLNK(st_.st_mode), path
    finally:
        os.close(parent)
    assert open_fds() == before
    os.fstat(root_fd)
