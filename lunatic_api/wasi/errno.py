"""WASI preview1 error codes and the mapping from host ``OSError``s.

``Errno`` lists the 77 codes of the ``errno`` enum of
``wasi_snapshot_preview1`` (``phases/snapshot/witx/typenames.witx`` in the
WebAssembly/WASI repository, ``(enum (@witx tag u16) ...)``): each code's
value is its position in that enum, from ``success`` = 0 to ``notcapable`` =
76.  Member names are the witx names without ``$``, except ``$2big``, which
is not a Python identifier and is spelled ``toobig`` here.
"""

from __future__ import annotations

import enum
import errno as _host_errno

__all__ = ["Errno", "errno_from_oserror", "errno_from_host"]


class Errno(enum.IntEnum):
    """A WASI preview1 ``errno`` value (a ``u16`` in guest memory)."""

    success = 0
    toobig = 1  # witx: $2big
    acces = 2
    addrinuse = 3
    addrnotavail = 4
    afnosupport = 5
    again = 6
    already = 7
    badf = 8
    badmsg = 9
    busy = 10
    canceled = 11
    child = 12
    connaborted = 13
    connrefused = 14
    connreset = 15
    deadlk = 16
    destaddrreq = 17
    dom = 18
    dquot = 19
    exist = 20
    fault = 21
    fbig = 22
    hostunreach = 23
    idrm = 24
    ilseq = 25
    inprogress = 26
    intr = 27
    inval = 28
    io = 29
    isconn = 30
    isdir = 31
    loop = 32
    mfile = 33
    mlink = 34
    msgsize = 35
    multihop = 36
    nametoolong = 37
    netdown = 38
    netreset = 39
    netunreach = 40
    nfile = 41
    nobufs = 42
    nodev = 43
    noent = 44
    noexec = 45
    nolck = 46
    nolink = 47
    nomem = 48
    nomsg = 49
    noprotoopt = 50
    nospc = 51
    nosys = 52
    notconn = 53
    notdir = 54
    notempty = 55
    notrecoverable = 56
    notsock = 57
    notsup = 58
    notty = 59
    nxio = 60
    overflow = 61
    ownerdead = 62
    perm = 63
    pipe = 64
    proto = 65
    protonosupport = 66
    prototype = 67
    range = 68
    rofs = 69
    spipe = 70
    srch = 71
    stale = 72
    timedout = 73
    txtbsy = 74
    xdev = 75
    notcapable = 76

    @property
    def witx_name(self) -> str:
        """The name in ``typenames.witx`` (without ``$``), e.g. ``"2big"``."""
        return "2big" if self is Errno.toobig else self.name


def _build_host_table() -> dict[int, Errno]:
    """Host errno number -> ``Errno``, for the host this process runs on.

    Every WASI code except ``success`` and ``notcapable`` is named after a
    POSIX ``E*`` constant (``acces`` <- ``EACCES``); codes this host does not
    define are skipped.  Aliases that share a number on Linux but may differ
    elsewhere (``EOPNOTSUPP``, ``EWOULDBLOCK``, ``EDEADLOCK``) are added
    explicitly, never overriding a primary name.
    """
    table: dict[int, Errno] = {}
    for code in Errno:
        if code in (Errno.success, Errno.notcapable):
            continue
        posix = "E2BIG" if code is Errno.toobig else "E" + code.name.upper()
        number = getattr(_host_errno, posix, None)
        if number is not None:
            table.setdefault(number, code)
    aliases = {"EOPNOTSUPP": Errno.notsup, "EWOULDBLOCK": Errno.again,
               "EDEADLOCK": Errno.deadlk, "ENOTCAPABLE": Errno.notcapable}
    for posix, code in aliases.items():
        number = getattr(_host_errno, posix, None)
        if number is not None:
            table.setdefault(number, code)
    return table


_HOST_TO_WASI: dict[int, Errno] = _build_host_table()


def errno_from_host(number: int) -> Errno:
    """The WASI code for a host ``errno`` number; unknown numbers give ``io``."""
    return _HOST_TO_WASI.get(number, Errno.io)


def errno_from_oserror(exc: OSError) -> Errno:
    """The WASI code for a host ``OSError`` (``io`` if it carries no known errno)."""
    if exc.errno is None:
        return Errno.io
    return errno_from_host(exc.errno)
