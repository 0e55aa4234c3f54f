"""Sandboxed path resolution for the WASI ``path_*`` functions (Linux).

A WASI guest names files by a directory descriptor (a preopen, or a
directory opened from one) plus a relative path.  Whatever the path, its
symlinks, or concurrent changes to the host file system, the guest must
never reach anything outside that directory.  This module resolves such
paths **one component at a time relative to open directory fds**:

* each directory step is ``openat(cur, name, O_DIRECTORY | O_NOFOLLOW |
  O_PATH)``, so a component swapped for a symlink between two steps makes the
  open fail instead of being followed by the kernel;
* ``..`` never reaches the host: it pops the stack of directory fds opened so
  far, and popping the root itself is an escape;
* symlinks are read with ``readlinkat`` and their target is spliced into the
  remaining components (so ``..`` inside a target is handled by the same
  stack); at most ``MAX_SYMLINK_EXPANSIONS`` expansions are made per call;
* no absolute host path is ever built or opened.

Errors (``SandboxError.errno``):

* absolute path, ``..`` above the root, symlink with an absolute target, or
  one whose target climbs above the root: ``ESCAPE_ERRNO`` (``Errno.perm``).
  Not ``notcapable``: ``perm`` is what mainstream runtimes and the
  conformance suite use today: WebAssembly/wasi-testsuite
  ``tests/rust/src/bin/interesting_paths.rs`` and wasmtime's
  ``preview1_interesting_paths.rs`` assert ``ERRNO_PERM`` for both
  ``"/dir/nested/file"`` and ``"dir/nested/../../../<x>/..."``, because
  cap-std reports every escape as ``io::ErrorKind::PermissionDenied``
  (``cap-primitives/src/fs/errors.rs``, "a path led outside of the
  filesystem"), and wasi-filesystem (preview2) specifies ``not-permitted``
  for absolute paths, escaping ``..`` and absolute symlink targets.
  ``notcapable`` (76, a CloudABI extension) is what some older suites
  expect (e.g. khronosproject/wasi-test ``wasi_path_open.rs``); changing
  ``ESCAPE_ERRNO`` switches every escape at once.
* empty path: ``noent`` (as POSIX ``ENOENT`` for ``""``); empty symlink
  target: ``noent``.
* NUL byte anywhere in the path: ``inval`` (wasi-testsuite accepts
  ``inval`` or ``ilseq``).
* more than ``MAX_SYMLINK_EXPANSIONS`` symlink expansions: ``loop``.
* a non-directory used as a directory: ``notdir``; other host errors are
  mapped by ``errno_from_oserror``.

Trailing slash: ``"x/"`` requires ``x`` to be a directory if it exists (a
file gives ``notdir``).  It does *not* force a final symlink to be followed:
with ``follow_final_symlink=False`` a symlink ``x`` with ``"x/"`` is
``notdir`` (conservative; matches Linux ``rmdir``/``unlink`` of ``link/``).
A nonexistent ``x`` is allowed (``path_create_directory("new/")``).

Limitation shared with cap-std: a directory already opened during resolution
that another host process moves out of the tree is still used for the
remaining components; the sandbox protects against what the *guest* can
name, not against the host rearranging the tree under it.
"""

from __future__ import annotations

import errno as _host_errno
import os
import stat as _stat
from collections import deque

from lunatic_api.wasi.errno import Errno, errno_from_oserror

__all__ = [
    "SandboxError", "ESCAPE_ERRNO", "MAX_SYMLINK_EXPANSIONS",
    "resolve", "open_at", "stat_at",
]

ESCAPE_ERRNO = Errno.perm
"""Errno for any attempt to leave the root (see the module docstring)."""

MAX_SYMLINK_EXPANSIONS = 40
"""Symlink expansions allowed per resolution (Linux's ``MAXSYMLINKS``)."""

# O_PATH: traverse directories that are search-only (mode --x) like the
# kernel does, without needing read permission; the fds are only ever used
# as dir_fd arguments.
_DIR_FLAGS = (os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", 0))


class SandboxError(Exception):
    """Path resolution failed; ``errno`` is the WASI code to return."""

    def __init__(self, errno: Errno, message: str = "") -> None:
        super().__init__(errno, message or errno.name)
        self.errno = errno

    def __str__(self) -> str:
        msg = self.args[1]
        return f"[{self.errno.name}] {msg}" if msg != self.errno.name else self.errno.name


def _escape(what: str) -> SandboxError:
    return SandboxError(ESCAPE_ERRNO, f"path escapes the sandbox: {what}")


def _read_symlink(name: str, dir_fd: int) -> str | None:
    """The target of symlink ``name`` in ``dir_fd``; ``None`` if not a symlink or absent."""
    try:
        return os.readlink(name, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno in (_host_errno.EINVAL, _host_errno.ENOENT):
            return None
        raise SandboxError(errno_from_oserror(exc), f"readlink {name!r}") from exc


def resolve(dir_fd: int, path: str, follow_final_symlink: bool) -> tuple[int, str]:
    """Resolve ``path`` below the directory ``dir_fd`` without leaving it.

    Returns ``(parent_fd, name)``: ``parent_fd`` is a new descriptor (owned
    by the caller, who must close it) of the directory that contains the
    final component, and ``name`` is that component -- a single name with no
    ``/``, never ``..``, or ``"."`` when the path names a directory itself
    (``"."``, ``"a/.."``, ``"a/b/."``).  Use ``name`` only with
    ``dir_fd=parent_fd`` and without letting the host follow symlinks.

    The final component need not exist (so ``path_open`` with ``creat`` and
    ``path_create_directory`` can use the result).  If it is a symlink it is
    expanded only when ``follow_final_symlink``; otherwise ``name`` is the
    link itself.  Intermediate symlinks are always expanded.  ``dir_fd`` is
    never closed.  Raises ``SandboxError`` (see the module docstring).
    """
    if "\0" in path:
        raise SandboxError(Errno.inval, "path contains a NUL byte")
    if path == "":
        raise SandboxError(Errno.noent, "empty path")
    if path.startswith("/"):
        raise _escape(f"absolute path {path!r}")

    queue: deque[str] = deque(c for c in path.split("/") if c)
    must_be_dir = path.endswith("/")
    stack: list[int] = []  # fds opened below dir_fd; stack[-1] is the current dir
    expansions = 0

    def current() -> int:
        return stack[-1] if stack else dir_fd

    def expand(target: str, what: str) -> None:
        nonlocal expansions, must_be_dir
        expansions += 1
        if expansions > MAX_SYMLINK_EXPANSIONS:
            raise SandboxError(Errno.loop, f"too many symlinks at {what!r}")
        if target == "":
            raise SandboxError(Errno.noent, f"empty symlink target at {what!r}")
        if target.startswith("/"):
            raise _escape(f"symlink {what!r} has absolute target")
        if not queue and target.endswith("/"):
            must_be_dir = True
        queue.extendleft(reversed([c for c in target.split("/") if c]))

    def take_current() -> int:
        """Hand the current directory fd to the caller."""
        return stack.pop() if stack else os.dup(dir_fd)

    try:
        while queue:
            comp = queue.popleft()
            last = not queue
            if comp == ".":
                if last:
                    return take_current(), "."
                continue
            if comp == "..":
                if not stack:
                    raise _escape(f"'..' above the root in {path!r}")
                os.close(stack.pop())
                if last:
                    return take_current(), "."
                continue
            if last:
                if follow_final_symlink:
                    target = _read_symlink(comp, current())
                    if target is not None:
                        expand(target, comp)
                        continue
                if must_be_dir:
                    try:
                        st = os.stat(comp, dir_fd=current(), follow_symlinks=False)
                    except FileNotFoundError:
                        pass
                    except OSError as exc:
                        raise SandboxError(errno_from_oserror(exc), comp) from exc
                    else:
                        if not _stat.S_ISDIR(st.st_mode):
                            raise SandboxError(Errno.notdir, f"{comp!r} is not a directory")
                return take_current(), comp
            # An intermediate component: it must be a directory or a symlink.
            try:
                fd = os.open(comp, _DIR_FLAGS, dir_fd=current())
            except OSError as exc:
                if exc.errno not in (_host_errno.ELOOP, _host_errno.ENOTDIR):
                    raise SandboxError(errno_from_oserror(exc), comp) from exc
                target = _read_symlink(comp, current())
                if target is None:
                    # Not a symlink (any more): a real non-directory, gone,
                    # or swapped back to a directory by a concurrent rename;
                    # retry the latter (bounded like a symlink expansion).
                    try:
                        st = os.stat(comp, dir_fd=current(), follow_symlinks=False)
                    except OSError as exc2:
                        raise SandboxError(errno_from_oserror(exc2), comp) from exc2
                    if not _stat.S_ISDIR(st.st_mode) and not _stat.S_ISLNK(st.st_mode):
                        raise SandboxError(Errno.notdir, f"{comp!r} is not a directory") from exc
                    expansions += 1
                    if expansions > MAX_SYMLINK_EXPANSIONS:
                        raise SandboxError(Errno.loop, comp) from exc
                    queue.appendleft(comp)
                    continue
                expand(target, comp)
                continue
            stack.append(fd)
        # Unreachable: a non-empty relative path has a component, and every
        # final component returns above or refills the queue.
        raise AssertionError(f"resolve fell through for {path!r}")
    finally:
        for fd in stack:
            os.close(fd)


def open_at(dir_fd: int, path: str, flags: int, mode: int = 0o666,
            follow: bool = False) -> int:
    """``openat`` confined below ``dir_fd``; returns a new host fd (caller closes it).

    Resolves with ``resolve(dir_fd, path, follow)`` and opens the final name
    relative to its parent with ``O_NOFOLLOW | O_CLOEXEC`` always added: a
    followed final symlink was already expanded by ``resolve``, so a symlink
    found now (a racing swap, or ``follow=False``) fails with ``loop``
    instead of being followed.  A trailing ``/`` adds ``O_DIRECTORY``.
    Host errors are raised as ``SandboxError`` with the mapped WASI errno.
    """
    parent, name = resolve(dir_fd, path, follow)
    try:
        flags |= os.O_NOFOLLOW | os.O_CLOEXEC
        if path.endswith("/"):
            flags |= os.O_DIRECTORY
        try:
            return os.open(name, flags, mode, dir_fd=parent)
        except OSError as exc:
            raise SandboxError(errno_from_oserror(exc), f"open {path!r}") from exc
    finally:
        os.close(parent)


def stat_at(dir_fd: int, path: str, follow: bool = False) -> os.stat_result:
    """``fstatat`` confined below ``dir_fd`` (for ``path_filestat_get``).

    With ``follow`` the final symlink is expanded by ``resolve``; the host
    call itself never follows symlinks.
    """
    parent, name = resolve(dir_fd, path, follow)
    try:
        try:
            return os.stat(name, dir_fd=parent, follow_symlinks=False)
        except OSError as exc:
            raise SandboxError(errno_from_oserror(exc), f"stat {path!r}") from exc
    finally:
        os.close(parent)
