"""The WASI file-descriptor table: what each guest fd number stands for.

A guest fd is a ``Descriptor``: a host file descriptor (file, directory,
socket, inherited stdio) or an in-memory stream (stdin given as bytes,
stdout/stderr captured into a ``bytearray`` or discarded), plus its WASI
file type, rights and fd flags.  ``DescriptorTable`` maps numbers to
descriptors and owns the host fds it opened.

Numbering is POSIX's (and wasmtime's): a new descriptor gets the lowest
number not in use.
"""

from __future__ import annotations

import heapq
import os
import socket
from collections.abc import Sequence

from lunatic_api.wasi.abi import Filetype, Rights
from lunatic_api.wasi.errno import Errno

__all__ = ["WasiError", "MemoryInput", "MemoryOutput", "Descriptor", "DescriptorTable",
           "filetype_of_mode"]

_FD_LIMIT = 1 << 31  # guest fds are u32, but keep them positive i32 for C guests


class WasiError(Exception):
    """A WASI function fails with ``errno`` (returned to the guest, never a trap)."""

    def __init__(self, errno: Errno, message: str = "") -> None:
        super().__init__(message or errno.name)
        self.errno = errno


class MemoryInput:
    """A read-only in-memory stream (stdin given as bytes)."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = bytes(data)
        self.pos = 0

    def readinto(self, views: Sequence[memoryview]) -> int:
        """Fill ``views`` in order from the current position; return the count."""
        total = 0
        for view in views:
            chunk = self.data[self.pos:self.pos + len(view)]
            view[:len(chunk)] = chunk
            self.pos += len(chunk)
            total += len(chunk)
            if len(chunk) < len(view):
                break
        return total

    def remaining(self) -> int:
        """Bytes left to read."""
        return len(self.data) - self.pos


class MemoryOutput:
    """A write-only in-memory stream: appends to ``buffer`` (``None`` discards)."""

    __slots__ = ("buffer",)

    def __init__(self, buffer: bytearray | None) -> None:
        self.buffer = buffer

    def write(self, views: Sequence[memoryview]) -> int:
        """Append every view; return the byte count."""
        total = 0
        buffer = self.buffer
        for view in views:
            if buffer is not None:
                buffer += view
            total += len(view)
        return total


class Descriptor:
    """One open guest file descriptor.

    ``host_fd`` is the host descriptor doing the I/O (``None`` for memory
    streams, which use ``stream``); ``owned`` says whether closing the guest
    fd closes it.  ``preopen`` is the guest-visible name of a preopened
    directory.  ``sock`` keeps the Python socket of socket descriptors alive.
    ``dir_entries`` caches a directory listing between ``fd_readdir`` calls.
    """

    __slots__ = ("filetype", "rights_base", "rights_inheriting", "flags", "host_fd", "owned",
                 "stream", "preopen", "sock", "dir_entries")

    def __init__(self, filetype: Filetype, rights_base: int, rights_inheriting: int, *,
                 host_fd: int | None = None, owned: bool = True,
                 stream: MemoryInput | MemoryOutput | None = None, flags: int = 0,
                 preopen: str | None = None, sock: socket.socket | None = None) -> None:
        self.filetype = filetype
        self.rights_base = rights_base
        self.rights_inheriting = rights_inheriting
        self.flags = flags
        self.host_fd = host_fd
        self.owned = owned
        self.stream = stream
        self.preopen = preopen
        self.sock = sock
        self.dir_entries: list[tuple[bytes, int, int]] | None = None

    def require(self, rights: int, errno: Errno = Errno.notcapable) -> None:
        """Fail with ``errno`` unless the descriptor holds all of ``rights``."""
        if self.rights_base & rights != rights:
            raise WasiError(errno, f"missing rights {Rights(rights & ~self.rights_base)!r}")

    def file_fd(self, rights: int = 0) -> int:
        """The host fd of a non-directory host descriptor holding ``rights``.

        Directories and memory streams give ``badf`` (as wasmtime does for
        file operations on them), missing rights ``notcapable``.
        """
        fd = self.host_fd
        if fd is None or self.filetype == Filetype.directory:
            raise WasiError(Errno.badf, "not a file")
        self.require(rights)
        return fd

    def dir_fd(self, rights: int = 0) -> int:
        """The host fd of a directory descriptor holding ``rights`` (else ``notdir``)."""
        if self.filetype != Filetype.directory or self.host_fd is None:
            raise WasiError(Errno.notdir, "not a directory")
        self.require(rights)
        return self.host_fd

    def close(self) -> None:
        """Release the host side (if owned)."""
        if self.sock is not None:
            self.sock.close()
        elif self.owned and self.host_fd is not None:
            os.close(self.host_fd)
        self.host_fd = None
        self.sock = None


class DescriptorTable:
    """Guest fd numbers -> ``Descriptor``s."""

    def __init__(self) -> None:
        self._fds: dict[int, Descriptor] = {}
        self._free: list[int] = []  # heap of numbers below _next that are not in use
        self._next = 0

    def get(self, fd: int) -> Descriptor:
        """The descriptor of ``fd``, or ``WasiError(badf)``."""
        try:
            return self._fds[fd]
        except KeyError:
            raise WasiError(Errno.badf, f"fd {fd} is not open") from None

    def add(self, desc: Descriptor) -> int:
        """Store ``desc`` under the lowest free number; returns it."""
        if self._free:
            fd = heapq.heappop(self._free)
        else:
            if self._next >= _FD_LIMIT:
                raise WasiError(Errno.mfile, "no free descriptor numbers")
            fd = self._next
            self._next += 1
        self._fds[fd] = desc
        return fd

    def remove(self, fd: int) -> Descriptor:
        """Take ``fd`` out of the table (``badf`` if it is not open)."""
        desc = self.get(fd)
        del self._fds[fd]
        heapq.heappush(self._free, fd)
        return desc

    def renumber(self, fd: int, to: int) -> None:
        """``fd_renumber``: move ``fd`` to ``to``, closing what ``to`` was."""
        src = self.get(fd)
        dst = self.get(to)
        if fd == to:
            return
        dst.close()
        self._fds[to] = src
        del self._fds[fd]
        heapq.heappush(self._free, fd)

    def close_all(self) -> None:
        """Close every descriptor (the table is empty afterwards)."""
        fds, self._fds = self._fds, {}
        self._free, self._next = [], 0
        for desc in fds.values():
            try:
                desc.close()
            except OSError:
                pass


def filetype_of_mode(mode: int) -> Filetype:
    """The WASI file type of a host ``st_mode``."""
    import stat

    if stat.S_ISREG(mode):
        return Filetype.regular_file
    if stat.S_ISDIR(mode):
        return Filetype.directory
    if stat.S_ISCHR(mode):
        return Filetype.character_device
    if stat.S_ISBLK(mode):
        return Filetype.block_device
    if stat.S_ISLNK(mode):
        return Filetype.symbolic_link
    if stat.S_ISSOCK(mode):
        return Filetype.socket_stream
    return Filetype.unknown
