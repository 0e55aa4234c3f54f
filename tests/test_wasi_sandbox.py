"""The WASI sandbox seen through the guest API: no path function reaches outside.

Layout per test::

    tmp/
      outside/            secret file, a directory; must never change
      root/               the preopen "/sb" (fd 3)
        inner/secret      "inside"
        up -> ../outside  (a symlink leading out, relative)
        abs -> <tmp>/outside (a symlink leading out, absolute)

Every path function is tried with every escape route; each must fail with
``perm`` (or, for a few, an errno that says the escape was refused before any
host call) and ``outside`` must be byte-for-byte unchanged afterwards.  The
race tests swap a directory for an outward symlink in a tight loop while the
guest opens and creates through it.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lunatic_api.wasi import Errno, Wasi
from lunatic_api.wasi.abi import ALL_RIGHTS, Lookupflags, Oflags
from tests.wasi_harness import Scratch, wasi_instance

ESCAPES = ["../outside/secret", "/etc/passwd", "inner/../../outside/secret", "up/secret",
           "abs/secret", "up", "abs", "inner/../up/secret", "./../outside"]
PREOPEN = 3


def snapshot(path: Path) -> dict[str, Any]:
    """Every entry below ``path``: type, content/target, mode, mtime and ctime.

    ctime changes with any metadata change (times, links, renames); atime is
    left out because reading the file here updates it.
    """
    out: dict[str, Any] = {}
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath, name)
            st = p.lstat()
            if p.is_symlink():
                out[str(p.relative_to(path))] = ("link", os.readlink(p))
            elif p.is_dir():
                out[str(p.relative_to(path))] = ("dir", st.st_mode, st.st_mtime_ns,
                                                 st.st_ctime_ns)
            else:
                out[str(p.relative_to(path))] = ("file", p.read_bytes(), st.st_mode,
                                                 st.st_mtime_ns, st.st_ctime_ns)
    return out


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"OUTSIDE")
    (outside / "dir").mkdir()
    root = tmp_path / "root"
    (root / "inner").mkdir(parents=True)
    (root / "inner" / "secret").write_bytes(b"inside")
    (root / "up").symlink_to("../outside")
    (root / "abs").symlink_to(outside)
    return root, outside


class Guest:
    """A WASI instance with ``root`` preopened as fd 3 and helpers to call paths."""

    def __init__(self, root: Path, backend: str) -> None:
        self.wasi = Wasi(preopens={"/sb": root}, stdout=bytearray())
        self.inst = wasi_instance(self.wasi, backend)
        self.s = Scratch(self.inst)
        self.x = self.inst.exports

    def path(self, text: str) -> tuple[int, int]:
        return self.s.put(text.encode())

    def open(self, path: str, oflags: int = 0, lookup: int = 0) -> tuple[int, int]:
        out = self.s.out(4)
        err = self.x.path_open(PREOPEN, lookup, *self.path(path), oflags, ALL_RIGHTS,
                               ALL_RIGHTS, 0, out)
        return err, self.s.u32(out)

    def read_all(self, fd: int) -> bytes:
        iovs, n, ((buf, _),) = self.s.iovs(64)
        nread = self.s.out(4)
        assert self.x.fd_read(fd, iovs, n, nread) == Errno.success
        return self.s.read(buf, self.s.u32(nread))


def _calls(g: Guest, path: str) -> dict[str, Callable[[], int]]:
    """Every path function applied to ``path`` (as source and as destination), in order."""
    ok = "inner/secret"
    return {
        "path_open": lambda: g.open(path)[0],
        "path_open_follow": lambda: g.open(path, lookup=Lookupflags.symlink_follow)[0],
        "path_open_creat": lambda: g.open(path + "_new", Oflags.creat)[0],
        "path_open_trunc": lambda: g.open(path, Oflags.trunc)[0],
        "path_open_dir": lambda: g.open(path, Oflags.directory)[0],
        "path_create_directory": lambda: g.x.path_create_directory(PREOPEN, *g.path(path + "_d")),
        "path_filestat_get": lambda: g.x.path_filestat_get(
            PREOPEN, Lookupflags.symlink_follow, *g.path(path), g.s.out(64)),
        "path_filestat_set_times": lambda: g.x.path_filestat_set_times(
            PREOPEN, Lookupflags.symlink_follow, *g.path(path), 0, 0, 0b1010),
        "path_readlink": lambda: g.x.path_readlink(PREOPEN, *g.path(path), g.s.out(64), 64,
                                                   g.s.out(4)),
        "path_rename_to": lambda: g.x.path_rename(PREOPEN, *g.path(ok), PREOPEN,
                                                  *g.path(path + "_r")),
        "path_link_from": lambda: g.x.path_link(PREOPEN, Lookupflags.symlink_follow,
                                                *g.path(path), PREOPEN, *g.path("hard")),
        "path_link_to": lambda: g.x.path_link(PREOPEN, 0, *g.path(ok), PREOPEN,
                                              *g.path(path + "_l")),
        "path_symlink_at": lambda: g.x.path_symlink(*g.path("inner"), PREOPEN,
                                                    *g.path(path + "_s")),
        # last: on "up"/"abs" these legitimately remove or move the link itself
        "path_remove_directory": lambda: g.x.path_remove_directory(PREOPEN, *g.path(path)),
        "path_unlink_file": lambda: g.x.path_unlink_file(PREOPEN, *g.path(path)),
        "path_rename_from": lambda: g.x.path_rename(PREOPEN, *g.path(path), PREOPEN,
                                                    *g.path("stolen")),
    }


# errnos that mean "refused before touching anything outside": perm is the
# escape errno; a few operations hit a local obstacle first (the final
# component of "up"/"abs" is the symlink itself when not following)
REFUSED = {Errno.perm}
LOCAL = {
    # operating on the link itself, inside the sandbox, is legitimate:
    ("up", "path_readlink"), ("abs", "path_readlink"),
    ("up", "path_rename_from"), ("abs", "path_rename_from"),
    ("up", "path_unlink_file"), ("abs", "path_unlink_file"),
    ("up", "path_remove_directory"), ("abs", "path_remove_directory"),
    ("up", "path_open"), ("abs", "path_open"), ("up", "path_open_trunc"),
    ("up", "path_open_dir"), ("abs", "path_open_dir"),
    ("abs", "path_open_trunc"),
    ("up", "path_open_creat"), ("abs", "path_open_creat"),
    ("up", "path_create_directory"), ("abs", "path_create_directory"),
    ("up", "path_rename_to"), ("abs", "path_rename_to"), ("up", "path_link_to"),
    ("abs", "path_link_to"), ("up", "path_symlink_at"), ("abs", "path_symlink_at"),
}


@pytest.mark.parametrize("escape", ESCAPES)
def test_no_path_function_escapes(tree: tuple[Path, Path], backend: str, escape: str) -> None:
    root, outside = tree
    before = snapshot(outside)
    g = Guest(root, backend)
    for name, call in _calls(g, escape).items():
        err = call()
        if (escape, name) in LOCAL:
            continue  # checked below: whatever happened stayed inside
        assert err in REFUSED, f"{name}({escape!r}) returned {Errno(err).name}"
    assert snapshot(outside) == before
    # nothing was created next to the preopen either
    assert sorted(p.name for p in root.parent.iterdir()) == ["outside", "root"]


def test_operations_on_the_outward_links_themselves_stay_inside(
        tree: tuple[Path, Path], backend: str) -> None:
    """Reading, renaming or unlinking the symlink ``up`` works on the link, not its target."""
    root, outside = tree
    before = snapshot(outside)
    g = Guest(root, backend)
    buf, used = g.s.out(64), g.s.out(4)
    assert g.x.path_readlink(PREOPEN, *g.path("up"), buf, 64, used) == Errno.success
    assert g.s.read(buf, g.s.u32(used)) == b"../outside"
    assert g.open("up")[0] == Errno.loop           # O_NOFOLLOW on the final link
    assert g.open("up", Oflags.creat)[0] == Errno.loop
    assert g.x.path_rename(PREOPEN, *g.path("up"), PREOPEN, *g.path("up2")) == Errno.success
    assert g.x.path_unlink_file(PREOPEN, *g.path("up2")) == Errno.success
    assert g.x.path_unlink_file(PREOPEN, *g.path("abs")) == Errno.success
    assert snapshot(outside) == before
    assert sorted(os.listdir(root)) == ["inner"]


def _swapper(root: Path, outside: Path, stop: threading.Event) -> threading.Thread:
    """Flip ``root/link`` between a real directory and a symlink to ``outside``."""
    real = root / "real"
    real.mkdir()
    (real / "secret").write_bytes(b"inside")

    def run() -> None:
        # each state lasts a random moment, so the guest sees both stable
        # states and swaps in the middle of resolving a path
        link = root / "link"
        rng = random.Random(1)
        while not stop.is_set():
            os.replace(real, link)                          # link is the real directory
            time.sleep(rng.choice((0, 0, 1e-4, 5e-4)))
            os.replace(link, real)
            os.symlink(outside, root / "tmp_evil")
            os.replace(root / "tmp_evil", link)             # link leads outside
            time.sleep(rng.choice((0, 0, 1e-4, 5e-4)))
            os.unlink(link)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_open_while_a_component_is_swapped_for_an_outward_symlink(
        tree: tuple[Path, Path], backend: str) -> None:
    root, outside = tree
    before = snapshot(outside)
    g = Guest(root, backend)
    stop = threading.Event()
    thread = _swapper(root, outside, stop)
    opened = refused = 0
    try:
        for i in range(1500):
            err, fd = g.open("link/secret", lookup=Lookupflags.symlink_follow)
            if err == Errno.success:
                assert g.read_all(fd) == b"inside"
                g.x.fd_close(fd)
                opened += 1
            else:
                refused += 1
            err, fd = g.open(f"link/new{i}", Oflags.creat)
            if err == Errno.success:
                g.x.fd_close(fd)
    finally:
        stop.set()
        thread.join()
    assert opened and refused, f"the race was not exercised ({opened} opened, {refused} refused)"
    assert snapshot(outside) == before, "a file was created or changed outside the preopen"
