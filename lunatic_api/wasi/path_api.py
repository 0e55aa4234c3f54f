"""WASI functions on paths below a directory descriptor: ``path_*``.

Every path goes through ``lunatic_api.wasi.sandbox.resolve``, which walks it
one component at a time below the directory fd and hands back the parent
directory's fd and a single final name.  The host call then uses that name
relative to that parent and never follows a symlink itself, so nothing
outside the preopen is read, written, created or stat'ed, whatever the path
or a concurrent change to the tree (see the sandbox module for the errno of
each escape: ``perm``, as wasmtime and the WASI test suite expect).

The descriptor must be a directory (``notdir`` otherwise) holding the right
the spec names for the operation (``notcapable`` otherwise).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from typing import TypeVar

from funk.types import Bytes, MutBytes, u16, u32, u64
from lunatic_api.wasi.abi import (
    DIRECTORY_RIGHTS,
    FILE_RIGHTS,
    ErrnoOr,
    Fdflags,
    Filestat,
    Filetype,
    Lookupflags,
    Oflags,
    Rights,
)
from lunatic_api.wasi.descriptors import Descriptor, WasiError, filetype_of_mode
from lunatic_api.wasi.errno import Errno
from lunatic_api.wasi.sandbox import ESCAPE_ERRNO, SandboxError, open_at, resolve, stat_at
from lunatic_api.wasi.state import WasiState, decode_path, errno_result, filestat_of, new_times

__all__ = ["PathFunctions"]

T = TypeVar("T")

# rights that make path_open open the host file for reading / for writing
# (what wasi-libc asks for with O_RDONLY / O_WRONLY)
_READ_RIGHTS = int(Rights.fd_read | Rights.fd_readdir)
_WRITE_RIGHTS = int(Rights.fd_write | Rights.fd_datasync | Rights.fd_allocate
                    | Rights.fd_filestat_set_size)
_OFLAGS = {Oflags.creat: os.O_CREAT, Oflags.directory: os.O_DIRECTORY,
           Oflags.excl: os.O_EXCL, Oflags.trunc: os.O_TRUNC}
_FDFLAGS = {Fdflags.append: os.O_APPEND, Fdflags.dsync: os.O_DSYNC,
            Fdflags.nonblock: os.O_NONBLOCK, Fdflags.rsync: os.O_RSYNC,
            Fdflags.sync: os.O_SYNC}
_ALL_OFLAGS = int(Oflags.creat | Oflags.directory | Oflags.excl | Oflags.trunc)
_ALL_FDFLAGS = int(Fdflags.append | Fdflags.dsync | Fdflags.nonblock | Fdflags.rsync
                   | Fdflags.sync)


def _follow(lookup_flags: int) -> bool:
    """Whether to follow a final symlink; undefined flag bits are ``inval``."""
    if lookup_flags & ~int(Lookupflags.symlink_follow):
        raise WasiError(Errno.inval, "undefined lookupflags bits")
    return bool(lookup_flags & Lookupflags.symlink_follow)


def _exists(parent: int, name: str) -> bool:
    """Whether ``name`` (not followed) exists in the directory ``parent``."""
    try:
        os.stat(name, dir_fd=parent, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _refuse_slash_for_new_file(path: str, parent: int, name: str) -> None:
    """A trailing ``/`` on a new non-directory name fails as on POSIX.

    ``resolve`` accepts ``"new/"`` for a name that does not exist yet (so
    ``path_create_directory("new/")`` works); a symlink or hard link can
    never be created under such a name: ``exist`` if it is taken, else
    ``noent``.
    """
    if path.endswith("/"):
        raise WasiError(Errno.exist if _exists(parent, name) else Errno.noent,
                        "trailing slash on a new non-directory")


class PathFunctions(WasiState):
    """``path_*`` functions (mixed into ``Wasi``)."""

    def _dir(self, fd: int, right: int) -> int:
        """The host fd of the directory descriptor ``fd`` holding ``right``."""
        return self._table.get(fd).dir_fd(right)

    def _at(self, fd: int, right: int, path: memoryview, follow: bool,
            action: Callable[[int, str, str], T]) -> T:
        """Resolve ``path`` below ``fd`` and run ``action(parent_fd, name, path_text)``.

        The parent directory's fd is closed afterwards, whatever happens.
        """
        text = decode_path(path)
        parent, name = resolve(self._dir(fd, right), text, follow)
        try:
            return action(parent, name, text)
        finally:
            os.close(parent)

    @errno_result
    def path_open(self, fd: u32, dirflags: u32, path: Bytes, oflags: u16,
                  fs_rights_base: u64, fs_rights_inheriting: u64,
                  fdflags: u16) -> ErrnoOr[u32]:
        """Open a file or directory below ``fd``; returns the new fd.

        The new fd's rights are the requested ones limited to what ``fd``
        passes on (``rights_inheriting``) and to what its file type can use.
        The host file is opened for reading if a read right was asked for and
        for writing if a write right was (as wasi-libc's ``open`` asks).
        """
        parent = self._table.get(fd)
        dir_host = parent.dir_fd(Rights.path_open)
        name = decode_path(path)
        if oflags & ~_ALL_OFLAGS or fdflags & ~_ALL_FDFLAGS:
            return Errno.inval
        # creat+excl must not follow a final (dangling) symlink: it exists
        exclusive = oflags & Oflags.creat and oflags & Oflags.excl
        follow = _follow(dirflags) and not exclusive
        if oflags & Oflags.creat:
            parent.require(Rights.path_create_file)
        if oflags & Oflags.trunc:
            parent.require(Rights.path_filestat_set_size)
        base = fs_rights_base & parent.rights_inheriting
        inheriting = fs_rights_inheriting & parent.rights_inheriting
        # a directory is never opened for writing: rights it cannot use are dropped
        write = not oflags & Oflags.directory and (bool(base & _WRITE_RIGHTS)
                                                   or bool(oflags & Oflags.trunc))
        read = bool(base & _READ_RIGHTS) or not write
        flags = os.O_RDWR if read and write else os.O_WRONLY if write else os.O_RDONLY
        for wasi_flag, host_flag in _OFLAGS.items():
            if oflags & wasi_flag:
                flags |= host_flag
        for wasi_fd_flag, host_flag in _FDFLAGS.items():
            if fdflags & wasi_fd_flag:
                flags |= host_flag
        try:
            host = open_at(dir_host, name, flags, 0o666, follow=follow)
        except SandboxError as exc:
            if exc.errno != Errno.isdir or base & Rights.fd_write or oflags & Oflags.trunc:
                raise
            # only rights a directory ignores (fd_datasync, ...) asked for
            # write access: open the directory read-only, dropping them
            host = open_at(dir_host, name, flags & ~(os.O_RDWR | os.O_WRONLY), 0o666,
                           follow=follow)
        try:
            filetype = filetype_of_mode(os.fstat(host).st_mode)
        except OSError:
            os.close(host)
            raise
        if filetype == Filetype.directory:
            base &= DIRECTORY_RIGHTS
        else:
            base &= FILE_RIGHTS
        desc = Descriptor(filetype, base, inheriting, host_fd=host, flags=fdflags)
        return Errno.success, self._table.add(desc)

    @errno_result
    def path_create_directory(self, fd: u32, path: Bytes) -> Errno:
        """Create a directory (``exist`` if anything is there, even a dangling link)."""
        self._at(fd, Rights.path_create_directory, path, False,
                 lambda parent, name, _: os.mkdir(name, dir_fd=parent))
        return Errno.success

    @errno_result
    def path_remove_directory(self, fd: u32, path: Bytes) -> Errno:
        """Remove an empty directory (``notempty`` otherwise)."""
        self._at(fd, Rights.path_remove_directory, path, False,
                 lambda parent, name, _: os.rmdir(name, dir_fd=parent))
        return Errno.success

    @errno_result
    def path_unlink_file(self, fd: u32, path: Bytes) -> Errno:
        """Remove a file or symlink (a directory is ``isdir``)."""
        self._at(fd, Rights.path_unlink_file, path, False,
                 lambda parent, name, _: os.unlink(name, dir_fd=parent))
        return Errno.success

    @errno_result
    def path_filestat_get(self, fd: u32, flags: u32, path: Bytes) -> ErrnoOr[Filestat]:
        """Attributes of a file; follows a final symlink with ``symlink_follow``."""
        st = stat_at(self._dir(fd, Rights.path_filestat_get), decode_path(path),
                     _follow(flags))
        return Errno.success, filestat_of(st)

    @errno_result
    def path_filestat_set_times(self, fd: u32, flags: u32, path: Bytes, atim: u64, mtim: u64,
                                fst_flags: u16) -> Errno:
        """Set a file's access and/or modification time (or "now")."""
        def set_times(parent: int, name: str, _: str) -> None:
            current = os.stat(name, dir_fd=parent, follow_symlinks=False)
            os.utime(name, ns=new_times(current, atim, mtim, fst_flags), dir_fd=parent,
                     follow_symlinks=False)

        self._at(fd, Rights.path_filestat_set_times, path, _follow(flags), set_times)
        return Errno.success

    @errno_result
    def path_link(self, old_fd: u32, old_flags: u32, old_path: Bytes, new_fd: u32,
                  new_path: Bytes) -> Errno:
        """Create a hard link ``new_path`` to ``old_path``."""
        old_dir = self._dir(old_fd, Rights.path_link_source)
        new_dir = self._dir(new_fd, Rights.path_link_target)
        old_parent, old_name = resolve(old_dir, decode_path(old_path), _follow(old_flags))
        try:
            new_text = decode_path(new_path)
            new_parent, new_name = resolve(new_dir, new_text, False)
            try:
                _refuse_slash_for_new_file(new_text, new_parent, new_name)
                os.link(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent,
                        follow_symlinks=False)
            finally:
                os.close(new_parent)
        finally:
            os.close(old_parent)
        return Errno.success

    @errno_result
    def path_rename(self, fd: u32, old_path: Bytes, new_fd: u32, new_path: Bytes) -> Errno:
        """Rename a file or directory (possibly across the two directories)."""
        old_dir = self._dir(fd, Rights.path_rename_source)
        new_dir = self._dir(new_fd, Rights.path_rename_target)
        old_text, new_text = decode_path(old_path), decode_path(new_path)
        old_parent, old_name = resolve(old_dir, old_text, False)
        try:
            new_parent, new_name = resolve(new_dir, new_text, False)
            try:
                if (old_text.endswith("/") or new_text.endswith("/")) and not stat.S_ISDIR(
                        os.stat(old_name, dir_fd=old_parent, follow_symlinks=False).st_mode):
                    # "x/" names a directory: renaming a file to or from it is notdir
                    raise WasiError(Errno.notdir, "trailing slash on a non-directory")
                os.rename(old_name, new_name, src_dir_fd=old_parent, dst_dir_fd=new_parent)
            finally:
                os.close(new_parent)
        finally:
            os.close(old_parent)
        return Errno.success

    @errno_result
    def path_symlink(self, old_path: Bytes, fd: u32, new_path: Bytes) -> Errno:
        """Create a symlink ``new_path`` whose target text is ``old_path``.

        An absolute target is refused with the escape errno: inside the
        sandbox it could never resolve, and outside it would point a host
        user at host paths the guest chose.
        """
        target = decode_path(old_path)
        if target.startswith("/"):
            raise WasiError(ESCAPE_ERRNO, "absolute symlink target")
        if "\0" in target:
            return Errno.inval
        def create(parent: int, name: str, link: str) -> None:
            _refuse_slash_for_new_file(link, parent, name)
            os.symlink(target, name, dir_fd=parent)

        self._at(fd, Rights.path_symlink, new_path, False, create)
        return Errno.success

    @errno_result
    def path_readlink(self, fd: u32, path: Bytes, buf: MutBytes) -> ErrnoOr[u32]:
        """Copy a symlink's target into ``buf`` (truncated if it does not fit)."""
        target = self._at(fd, Rights.path_readlink, path, False,
                          lambda parent, name, _: os.readlink(os.fsencode(name), dir_fd=parent))
        used = min(len(target), len(buf))
        buf[:used] = target[:used]
        return Errno.success, used
