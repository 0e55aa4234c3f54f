"""WASI socket functions: ``sock_accept``, ``sock_recv``, ``sock_send``, ``sock_shutdown``.

Preview1 cannot create sockets: a guest only gets the ones the embedder
preopens (``Wasi(sockets=[...])``, typically a listening TCP socket) and the
connections it accepts on them.  Any other descriptor is ``notsock``.
"""

from __future__ import annotations

import socket

from funk.types import IoSlices, IoSlicesMut, u8, u16, u32
from lunatic_api.wasi.abi import (
    SOCKET_RIGHTS,
    ErrnoOr,
    ErrnoOr2,
    Fdflags,
    Filetype,
    Riflags,
    Rights,
    Sdflags,
)
from lunatic_api.wasi.descriptors import Descriptor, WasiError
from lunatic_api.wasi.errno import Errno
from lunatic_api.wasi.fd_api import IOV_MAX
from lunatic_api.wasi.state import WasiState, errno_result

__all__ = ["SocketFunctions", "socket_descriptor"]

_SHUTDOWN = {int(Sdflags.rd): socket.SHUT_RD, int(Sdflags.wr): socket.SHUT_WR,
             int(Sdflags.rd | Sdflags.wr): socket.SHUT_RDWR}
_RIFLAGS = int(Riflags.recv_peek | Riflags.recv_waitall)
_ROFLAGS_TRUNCATED = 1  # roflags::recv_data_truncated


def socket_descriptor(sock: socket.socket, rights: int = SOCKET_RIGHTS) -> Descriptor:
    """A descriptor owning ``sock`` (closing the guest fd closes it).

    A Python timeout is dropped (the socket becomes plainly blocking): CPython
    implements timeouts with a non-blocking fd, which the guest's
    ``fd_read``/``fd_write`` use directly.
    """
    if not isinstance(sock, socket.socket):
        raise TypeError(f"sockets must be socket.socket objects, not {type(sock).__name__}")
    if sock.fileno() < 0:
        raise ValueError(f"socket {sock!r} is closed")
    sock.setblocking(sock.getblocking())
    filetype = Filetype.socket_dgram if sock.type == socket.SOCK_DGRAM else Filetype.socket_stream
    flags = 0 if sock.getblocking() else int(Fdflags.nonblock)
    return Descriptor(filetype, rights, rights, host_fd=sock.fileno(), sock=sock, flags=flags)


def _socket(desc: Descriptor) -> socket.socket:
    if desc.sock is None:
        raise WasiError(Errno.notsock, "not a socket")
    return desc.sock


class SocketFunctions(WasiState):
    """``sock_*`` functions (mixed into ``Wasi``)."""

    @errno_result
    def sock_accept(self, fd: u32, flags: u16) -> ErrnoOr[u32]:
        """Accept a connection on a listening socket; returns its fd.

        ``flags`` may only hold ``nonblock`` (made the new socket's mode).
        A non-blocking listener without a pending connection gives ``again``.
        """
        desc = self._table.get(fd)
        listener = _socket(desc)
        desc.require(Rights.sock_accept)
        if flags & ~int(Fdflags.nonblock):
            return Errno.inval
        conn, _ = listener.accept()
        conn.setblocking(not flags & Fdflags.nonblock)
        rights = SOCKET_RIGHTS & ~int(Rights.sock_accept)
        return Errno.success, self._table.add(socket_descriptor(conn, rights))

    @errno_result
    def sock_recv(self, fd: u32, ri_data: IoSlicesMut,
                  ri_flags: u16) -> ErrnoOr2[u32, u16]:
        """Receive into the guest's buffers; ``recv_peek``/``recv_waitall`` honoured."""
        desc = self._table.get(fd)
        sock = _socket(desc)
        desc.require(Rights.fd_read, Errno.badf)
        if ri_flags & ~_RIFLAGS:
            return Errno.inval
        host_flags = ((socket.MSG_PEEK if ri_flags & Riflags.recv_peek else 0)
                      | (socket.MSG_WAITALL if ri_flags & Riflags.recv_waitall else 0))
        nbytes, _, msg_flags, _ = sock.recvmsg_into(ri_data[:IOV_MAX], 0, host_flags)
        truncated = _ROFLAGS_TRUNCATED if msg_flags & socket.MSG_TRUNC else 0
        return Errno.success, nbytes, truncated

    @errno_result
    def sock_send(self, fd: u32, si_data: IoSlices, si_flags: u16) -> ErrnoOr[u32]:
        """Send the guest's buffers (``si_flags`` has no defined bits and is ignored)."""
        desc = self._table.get(fd)
        sock = _socket(desc)
        desc.require(Rights.fd_write, Errno.badf)
        return Errno.success, sock.sendmsg(si_data[:IOV_MAX])

    @errno_result
    def sock_shutdown(self, fd: u32, how: u8) -> Errno:
        """Shut down the read and/or write side of a connection."""
        desc = self._table.get(fd)
        sock = _socket(desc)
        desc.require(Rights.sock_shutdown)
        mode = _SHUTDOWN.get(how)
        if mode is None:
            return Errno.inval
        sock.shutdown(mode)
        return Errno.success
