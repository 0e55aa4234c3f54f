"""The wasi_snapshot_preview1 types: enums, flag bits, rights and C-layout records.

Values and layouts are those of the preview1 witx definitions
(``typenames.witx`` of WebAssembly/WASI).  Records are funk ``@record``
classes, so host functions can return them through out-pointers and the
layout is checked against the witx sizes in the tests.

Unions are modelled by their largest variant: ``subscription_u`` is read as
a ``SubscriptionClock`` whose ``id`` field doubles as the file descriptor of
the ``fd_read``/``fd_write`` variants (both live at offset 8 of the union).
"""

from __future__ import annotations

import enum
from typing import TypeVar, Union

from funk import record
from funk.types import u8, u16, u32, u64
from lunatic_api.wasi.errno import Errno

__all__ = [
    "NAMESPACE", "ErrnoOr", "ErrnoOr2", "Filetype", "Whence", "Clockid", "Advice",
    "Eventtype", "Preopentype",
    "Fdflags", "Oflags", "Lookupflags", "Fstflags", "Riflags", "Sdflags", "Subclockflags",
    "Eventrwflags", "Rights", "FILE_RIGHTS", "DIRECTORY_RIGHTS", "DIRECTORY_INHERITING",
    "SOCKET_RIGHTS", "ALL_RIGHTS", "Fdstat", "Filestat", "Prestat", "Dirent",
    "SubscriptionClock", "SubscriptionU", "Subscription", "EventFdReadwrite", "Event",
]

NAMESPACE = "wasi_snapshot_preview1"
"""The import module name of every function here."""


T = TypeVar("T")
U = TypeVar("U")

# Union, not "|": a 3.10 types.UnionType cannot be subscripted with the TypeVar
ErrnoOr = Union[tuple[Errno, T], Errno]  # noqa: UP007
"""Result of a function with one out-pointer: ``(Errno.success, value)``, or an
errno alone (the out-pointer is then left untouched)."""

ErrnoOr2 = Union[tuple[Errno, T, U], Errno]  # noqa: UP007
"""The same with two out-pointers."""


class Filetype(enum.IntEnum):
    """``filetype``: the type of a file descriptor or file."""

    unknown = 0
    block_device = 1
    character_device = 2
    directory = 3
    regular_file = 4
    socket_dgram = 5
    socket_stream = 6
    symbolic_link = 7


class Whence(enum.IntEnum):
    """``whence``: the reference point of ``fd_seek``."""

    set = 0
    cur = 1
    end = 2


class Clockid(enum.IntEnum):
    """``clockid``."""

    realtime = 0
    monotonic = 1
    process_cputime_id = 2
    thread_cputime_id = 3


class Advice(enum.IntEnum):
    """``advice`` of ``fd_advise``."""

    normal = 0
    sequential = 1
    random = 2
    willneed = 3
    dontneed = 4
    noreuse = 5


class Eventtype(enum.IntEnum):
    """``eventtype``: the tag of a subscription and of an event."""

    clock = 0
    fd_read = 1
    fd_write = 2


class Preopentype(enum.IntEnum):
    """``preopentype``: the tag of ``prestat``."""

    dir = 0


class Fdflags(enum.IntFlag):
    """``fdflags`` (u16)."""

    append = 1 << 0
    dsync = 1 << 1
    nonblock = 1 << 2
    rsync = 1 << 3
    sync = 1 << 4


class Oflags(enum.IntFlag):
    """``oflags`` of ``path_open`` (u16)."""

    creat = 1 << 0
    directory = 1 << 1
    excl = 1 << 2
    trunc = 1 << 3


class Lookupflags(enum.IntFlag):
    """``lookupflags`` (u32)."""

    symlink_follow = 1 << 0


class Fstflags(enum.IntFlag):
    """``fstflags``: which timestamps ``*_set_times`` changes (u16)."""

    atim = 1 << 0
    atim_now = 1 << 1
    mtim = 1 << 2
    mtim_now = 1 << 3


class Riflags(enum.IntFlag):
    """``riflags`` of ``sock_recv`` (u16)."""

    recv_peek = 1 << 0
    recv_waitall = 1 << 1


class Sdflags(enum.IntFlag):
    """``sdflags`` of ``sock_shutdown`` (u8)."""

    rd = 1 << 0
    wr = 1 << 1


class Subclockflags(enum.IntFlag):
    """``subclockflags`` (u16)."""

    subscription_clock_abstime = 1 << 0


class Eventrwflags(enum.IntFlag):
    """``eventrwflags`` (u16)."""

    fd_readwrite_hangup = 1 << 0


class Rights(enum.IntFlag):
    """``rights`` (u64): what a descriptor may be used for."""

    fd_datasync = 1 << 0
    fd_read = 1 << 1
    fd_seek = 1 << 2
    fd_fdstat_set_flags = 1 << 3
    fd_sync = 1 << 4
    fd_tell = 1 << 5
    fd_write = 1 << 6
    fd_advise = 1 << 7
    fd_allocate = 1 << 8
    path_create_directory = 1 << 9
    path_create_file = 1 << 10
    path_link_source = 1 << 11
    path_link_target = 1 << 12
    path_open = 1 << 13
    fd_readdir = 1 << 14
    path_readlink = 1 << 15
    path_rename_source = 1 << 16
    path_rename_target = 1 << 17
    path_filestat_get = 1 << 18
    path_filestat_set_size = 1 << 19
    path_filestat_set_times = 1 << 20
    fd_filestat_get = 1 << 21
    fd_filestat_set_size = 1 << 22
    fd_filestat_set_times = 1 << 23
    path_symlink = 1 << 24
    path_remove_directory = 1 << 25
    path_unlink_file = 1 << 26
    poll_fd_readwrite = 1 << 27
    sock_shutdown = 1 << 28
    sock_accept = 1 << 29


R = Rights
ALL_RIGHTS = int((1 << 30) - 1)
"""Every defined right."""

FILE_RIGHTS = int(
    R.fd_datasync | R.fd_read | R.fd_seek | R.fd_fdstat_set_flags | R.fd_sync | R.fd_tell
    | R.fd_write | R.fd_advise | R.fd_allocate | R.fd_filestat_get | R.fd_filestat_set_size
    | R.fd_filestat_set_times | R.poll_fd_readwrite)
"""Rights meaningful for a regular file (the most a file descriptor can hold)."""

DIRECTORY_RIGHTS = int(
    R.fd_fdstat_set_flags | R.fd_sync | R.fd_datasync | R.path_create_directory
    | R.path_create_file | R.path_link_source | R.path_link_target | R.path_open
    | R.fd_readdir | R.path_readlink | R.path_rename_source | R.path_rename_target
    | R.path_filestat_get | R.path_filestat_set_size | R.path_filestat_set_times
    | R.fd_filestat_get | R.fd_filestat_set_times | R.path_symlink
    | R.path_remove_directory | R.path_unlink_file)
"""Rights meaningful for a directory (the most a directory descriptor can hold)."""

DIRECTORY_INHERITING = DIRECTORY_RIGHTS | FILE_RIGHTS
"""What descriptors opened below a preopen may hold at most."""

SOCKET_RIGHTS = int(
    R.fd_read | R.fd_write | R.fd_fdstat_set_flags | R.fd_filestat_get | R.poll_fd_readwrite
    | R.sock_shutdown | R.sock_accept)
"""Rights meaningful for a socket."""


@record
class Fdstat:
    """``fdstat`` (24 bytes)."""

    fs_filetype: u8
    fs_flags: u16
    fs_rights_base: u64
    fs_rights_inheriting: u64


@record
class Filestat:
    """``filestat`` (64 bytes); timestamps in nanoseconds since the epoch."""

    dev: u64
    ino: u64
    filetype: u8
    nlink: u64
    size: u64
    atim: u64
    mtim: u64
    ctim: u64


@record
class Prestat:
    """``prestat`` (8 bytes): tag ``Preopentype.dir`` and the name length."""

    tag: u8
    pr_name_len: u32


@record
class Dirent:
    """``dirent`` (24 bytes), followed in ``fd_readdir``'s buffer by the name."""

    d_next: u64
    d_ino: u64
    d_namlen: u32
    d_type: u8


@record
class SubscriptionClock:
    """``subscription_clock`` (32 bytes); ``id`` is the fd for fd_read/fd_write."""

    id: u32
    timeout: u64
    precision: u64
    flags: u16


@record
class SubscriptionU:
    """``subscription_u`` (40 bytes): an ``Eventtype`` tag and its variant."""

    tag: u8
    clock: SubscriptionClock


@record
class Subscription:
    """``subscription`` (48 bytes), an input of ``poll_oneoff``."""

    userdata: u64
    u: SubscriptionU


@record
class EventFdReadwrite:
    """``event_fd_readwrite`` (16 bytes)."""

    nbytes: u64
    flags: u16


@record
class Event:
    """``event`` (32 bytes), an output of ``poll_oneoff``."""

    userdata: u64
    error: u16
    type: u8
    fd_readwrite: EventFdReadwrite
