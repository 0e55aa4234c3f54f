"""WASI functions on open descriptors: ``fd_*``.

Rules shared by all of them (see ``Descriptor``):

* an fd that is not open is ``badf``;
* reading or writing without the ``fd_read``/``fd_write`` right is ``badf``
  (POSIX's answer for a descriptor not open for that, and wasmtime's);
* file operations on a directory, or on an in-memory stdio stream where
  they make no sense, are ``badf``; seeking a stream (stdio, pipe, socket,
  terminal) is ``spipe``;
* any other missing right is ``notcapable``.
"""

from __future__ import annotations

import fcntl
import os
import struct

from funk.types import IoSlices, IoSlicesMut, MutBytes, i64, u8, u16, u32, u64
from lunatic_api.wasi.abi import (
    Advice,
    ErrnoOr,
    Fdflags,
    Fdstat,
    Filestat,
    Filetype,
    Preopentype,
    Prestat,
    Rights,
    Whence,
)
from lunatic_api.wasi.descriptors import (
    Descriptor,
    MemoryInput,
    MemoryOutput,
    WasiError,
    filetype_of_mode,
)
from lunatic_api.wasi.errno import Errno
from lunatic_api.wasi.state import WasiState, errno_result, filestat_of, new_times

__all__ = ["FdFunctions", "IOV_MAX"]

IOV_MAX = 1024
"""Slices passed to one host ``readv``/``writev`` (Linux's limit); the rest
of a longer list is left for the guest's next call, as a short transfer."""

_READ = int(Rights.fd_read)
_WRITE = int(Rights.fd_write)
_ADVICE = {
    Advice.normal: os.POSIX_FADV_NORMAL, Advice.sequential: os.POSIX_FADV_SEQUENTIAL,
    Advice.random: os.POSIX_FADV_RANDOM, Advice.willneed: os.POSIX_FADV_WILLNEED,
    Advice.dontneed: os.POSIX_FADV_DONTNEED, Advice.noreuse: os.POSIX_FADV_NOREUSE,
}
# fd flags fcntl(F_SETFL) can change on Linux; the sync flags cannot be
_SETTABLE_FLAGS = int(Fdflags.append | Fdflags.nonblock)
_HOST_FLAG = {Fdflags.append: os.O_APPEND, Fdflags.nonblock: os.O_NONBLOCK}
_DIRENT = struct.Struct("<QQIB3x")  # dirent: d_next, d_ino, d_namlen, d_type


_SEEKABLE = (Filetype.regular_file, Filetype.block_device)


def _positioned_fd(desc: Descriptor, right: int) -> int:
    """The host fd for seek/tell/pread/pwrite, which need ``right``.

    Streams -- stdio whatever backs it, pipes, sockets, terminals -- have no
    position (``spipe``, as POSIX and wasmtime answer); a directory is
    ``badf`` like for any file operation.
    """
    if desc.filetype == Filetype.directory:
        raise WasiError(Errno.badf, "a directory has no file position")
    if desc.host_fd is None or desc.filetype not in _SEEKABLE:
        raise WasiError(Errno.spipe, "a stream has no file position")
    return desc.file_fd(right)


class FdFunctions(WasiState):
    """``fd_*`` functions (mixed into ``Wasi``)."""

    # -- reading and writing: the hot paths, kept short ---------------------

    @errno_result
    def fd_read(self, fd: u32, iovs: IoSlicesMut) -> ErrnoOr[u32]:
        """Read into the guest's buffers in order (a short read is not an error)."""
        desc = self._table.get(fd)
        if not desc.rights_base & _READ:
            return Errno.badf
        host = desc.host_fd
        if host is not None:
            return Errno.success, os.readv(host, iovs[:IOV_MAX])
        stream = desc.stream
        if isinstance(stream, MemoryInput):
            return Errno.success, stream.readinto(iovs)
        return Errno.badf

    @errno_result
    def fd_write(self, fd: u32, iovs: IoSlices) -> ErrnoOr[u32]:
        """Write the guest's buffers in order; returns the bytes written."""
        desc = self._table.get(fd)
        if not desc.rights_base & _WRITE:
            return Errno.badf
        host = desc.host_fd
        if host is not None:
            return Errno.success, os.writev(host, iovs[:IOV_MAX])
        stream = desc.stream
        if isinstance(stream, MemoryOutput):
            return Errno.success, stream.write(iovs)
        return Errno.badf

    @errno_result
    def fd_pread(self, fd: u32, iovs: IoSlicesMut, offset: u64) -> ErrnoOr[u32]:
        """Read at ``offset`` without moving the file position."""
        desc = self._table.get(fd)
        desc.require(_READ, Errno.badf)
        host = _positioned_fd(desc, Rights.fd_seek)
        return Errno.success, os.preadv(host, iovs[:IOV_MAX], offset)

    @errno_result
    def fd_pwrite(self, fd: u32, iovs: IoSlices, offset: u64) -> ErrnoOr[u32]:
        """Write at ``offset`` without moving the file position."""
        desc = self._table.get(fd)
        desc.require(_WRITE, Errno.badf)
        host = _positioned_fd(desc, Rights.fd_seek)
        return Errno.success, os.pwritev(host, iovs[:IOV_MAX], offset)

    # -- position -----------------------------------------------------------

    @errno_result
    def fd_seek(self, fd: u32, offset: i64, whence: u8) -> ErrnoOr[u64]:
        """Move the file position; returns the new offset."""
        desc = self._table.get(fd)
        if whence > Whence.end:
            return Errno.inval
        # a pure "where am I" query only needs fd_tell (the spec's rule)
        needed = Rights.fd_tell if (offset == 0 and whence == Whence.cur) else Rights.fd_seek
        host = _positioned_fd(desc, needed)
        return Errno.success, os.lseek(host, offset, whence)

    @errno_result
    def fd_tell(self, fd: u32) -> ErrnoOr[u64]:
        """The current file position."""
        desc = self._table.get(fd)
        return Errno.success, os.lseek(_positioned_fd(desc, Rights.fd_tell), 0, os.SEEK_CUR)

    # -- descriptor state ---------------------------------------------------

    @errno_result
    def fd_close(self, fd: u32) -> Errno:
        """Close ``fd`` (preopens included)."""
        self._table.remove(fd).close()
        return Errno.success

    @errno_result
    def fd_renumber(self, fd: u32, to: u32) -> Errno:
        """Move ``fd`` to the open number ``to``, closing what was there."""
        self._table.renumber(fd, to)
        return Errno.success

    @errno_result
    def fd_fdstat_get(self, fd: u32) -> ErrnoOr[Fdstat]:
        """File type, fd flags and rights of ``fd``."""
        desc = self._table.get(fd)
        return Errno.success, Fdstat(desc.filetype, desc.flags, desc.rights_base,
                                     desc.rights_inheriting)

    @errno_result
    def fd_fdstat_set_flags(self, fd: u32, flags: u16) -> Errno:
        """Change ``append``/``nonblock``; the sync flags cannot change (``notsup``)."""
        desc = self._table.get(fd)
        desc.require(Rights.fd_fdstat_set_flags)
        if flags & ~int(Fdflags.append | Fdflags.dsync | Fdflags.nonblock | Fdflags.rsync
                        | Fdflags.sync):
            return Errno.inval
        if (flags ^ desc.flags) & ~_SETTABLE_FLAGS:
            return Errno.notsup
        if desc.host_fd is not None:
            host_flags = fcntl.fcntl(desc.host_fd, fcntl.F_GETFL)
            for wasi_flag, host_flag in _HOST_FLAG.items():
                host_flags = (host_flags | host_flag if flags & wasi_flag
                              else host_flags & ~host_flag)
            fcntl.fcntl(desc.host_fd, fcntl.F_SETFL, host_flags)
        desc.flags = flags
        return Errno.success

    @errno_result
    def fd_fdstat_set_rights(self, fd: u32, fs_rights_base: u64,
                             fs_rights_inheriting: u64) -> Errno:
        """Drop rights; asking for a right the fd does not hold is ``notcapable``."""
        desc = self._table.get(fd)
        if (fs_rights_base & ~desc.rights_base
                or fs_rights_inheriting & ~desc.rights_inheriting):
            return Errno.notcapable
        desc.rights_base = fs_rights_base
        desc.rights_inheriting = fs_rights_inheriting
        return Errno.success

    @errno_result
    def fd_prestat_get(self, fd: u32) -> ErrnoOr[Prestat]:
        """Describe a preopened directory (``badf`` for any other fd)."""
        desc = self._table.get(fd)
        if desc.preopen is None:
            return Errno.badf
        return Errno.success, Prestat(Preopentype.dir, len(desc.preopen.encode()))

    @errno_result
    def fd_prestat_dir_name(self, fd: u32, path: MutBytes) -> Errno:
        """Copy a preopen's guest name (no NUL) into ``path``."""
        desc = self._table.get(fd)
        if desc.preopen is None:
            return Errno.badf
        name = desc.preopen.encode()
        if len(path) < len(name):
            return Errno.nametoolong
        path[:len(name)] = name
        return Errno.success

    # -- file attributes ----------------------------------------------------

    @errno_result
    def fd_filestat_get(self, fd: u32) -> ErrnoOr[Filestat]:
        """Attributes of the open file (zeros but the type for memory streams)."""
        desc = self._table.get(fd)
        desc.require(Rights.fd_filestat_get)
        if desc.host_fd is None:
            return Errno.success, Filestat(0, 0, desc.filetype, 0, 0, 0, 0, 0)
        return Errno.success, filestat_of(os.fstat(desc.host_fd))

    @errno_result
    def fd_filestat_set_size(self, fd: u32, size: u64) -> Errno:
        """Truncate or extend the file."""
        desc = self._table.get(fd)
        os.ftruncate(desc.file_fd(Rights.fd_filestat_set_size), size)
        return Errno.success

    @errno_result
    def fd_filestat_set_times(self, fd: u32, atim: u64, mtim: u64, fst_flags: u16) -> Errno:
        """Set access and/or modification time (or "now")."""
        desc = self._table.get(fd)
        desc.require(Rights.fd_filestat_set_times)
        if desc.host_fd is None:
            return Errno.badf
        host = desc.host_fd
        os.utime(host, ns=new_times(os.fstat(host), atim, mtim, fst_flags))
        return Errno.success

    @errno_result
    def fd_advise(self, fd: u32, offset: u64, length: u64, advice: u8) -> Errno:
        """Pass an access-pattern hint to the host (``posix_fadvise``)."""
        desc = self._table.get(fd)
        host = desc.file_fd(Rights.fd_advise)
        if advice not in _ADVICE.keys():
            return Errno.inval
        os.posix_fadvise(host, offset, length, _ADVICE[Advice(advice)])
        return Errno.success

    @errno_result
    def fd_allocate(self, fd: u32, offset: u64, length: u64) -> Errno:
        """Reserve file space (``posix_fallocate``; the file may grow)."""
        desc = self._table.get(fd)
        os.posix_fallocate(desc.file_fd(Rights.fd_allocate), offset, length)
        return Errno.success

    @errno_result
    def fd_datasync(self, fd: u32) -> Errno:
        """Flush the file's data to storage."""
        desc = self._table.get(fd)
        desc.require(Rights.fd_datasync)
        if desc.host_fd is None:
            return Errno.inval  # like fdatasync() on a pipe
        os.fdatasync(desc.host_fd)
        return Errno.success

    @errno_result
    def fd_sync(self, fd: u32) -> Errno:
        """Flush the file's data and metadata to storage."""
        desc = self._table.get(fd)
        desc.require(Rights.fd_sync)
        if desc.host_fd is None:
            return Errno.inval
        os.fsync(desc.host_fd)
        return Errno.success

    # -- directories --------------------------------------------------------

    @errno_result
    def fd_readdir(self, fd: u32, buf: MutBytes, cookie: u64) -> ErrnoOr[u32]:
        """Fill ``buf`` with ``dirent`` headers and names from entry ``cookie`` on.

        Entries are ``.``, ``..`` and the directory's contents in host order;
        an entry's ``d_next`` is its index + 1.  The listing is read afresh
        when ``cookie`` is 0 and reused for later cookies, so a guest paging
        through a directory sees one consistent list.  As the spec says, a
        full buffer (``bufused == len(buf)``) may end in a truncated entry
        and means there is more to read.
        """
        desc = self._table.get(fd)
        host = desc.dir_fd(Rights.fd_readdir)
        if cookie == 0 or desc.dir_entries is None:
            desc.dir_entries = _list_directory(host)
        entries = desc.dir_entries
        size = len(buf)
        out = bytearray()
        index = cookie
        while index < len(entries) and len(out) < size:
            name, ino, ftype = entries[index]
            index += 1
            out += _DIRENT.pack(index, ino, len(name), ftype)
            out += name
        used = min(len(out), size)
        buf[:used] = out[:used]
        return Errno.success, used



def _list_directory(host_fd: int) -> list[tuple[bytes, int, int]]:
    """``(name, inode, filetype)`` of ``.``, ``..`` and every entry of the directory.

    ``..`` reports inode 0: the parent of a preopen lies outside the sandbox
    and is never stat'ed.
    """
    entries = [(b".", os.fstat(host_fd).st_ino, int(Filetype.directory)),
               (b"..", 0, int(Filetype.directory))]
    with os.scandir(host_fd) as it:
        for entry in it:
            if entry.is_symlink():
                ftype = Filetype.symbolic_link
            elif entry.is_dir(follow_symlinks=False):
                ftype = Filetype.directory
            elif entry.is_file(follow_symlinks=False):
                ftype = Filetype.regular_file
            else:
                try:
                    ftype = filetype_of_mode(entry.stat(follow_symlinks=False).st_mode)
                except OSError:  # removed meanwhile
                    ftype = Filetype.unknown
            entries.append((os.fsencode(entry.name), entry.inode(), int(ftype)))
    return entries

