"""What every group of WASI functions shares: the state and the errno convention.

Each group (``fd_api``, ``path_api``, ...) is a mixin of ``WasiState``;
``lunatic_api.wasi.host.Wasi`` combines them into one funk host class.

WASI functions report failure by returning an ``errno``, never by trapping.
``errno_result`` wraps a function so that a ``WasiError``, a sandbox
``SandboxError`` or a host ``OSError`` raised anywhere inside it becomes the
matching errno return value; anything else still traps (a bug must not look
like an I/O error).  Bad guest pointers trap before the function runs, as
funk's lowerings check them.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from lunatic_api.wasi.abi import Filestat, Fstflags
from lunatic_api.wasi.descriptors import DescriptorTable, WasiError, filetype_of_mode
from lunatic_api.wasi.errno import Errno, errno_from_oserror
from lunatic_api.wasi.sandbox import SandboxError

__all__ = ["WasiState", "errno_result", "decode_path", "filestat_of", "new_times"]

F = TypeVar("F", bound=Callable[..., Any])


class WasiState:
    """The state behind one WASI host object (see ``Wasi``)."""

    _table: DescriptorTable
    _args: list[bytes]
    _env: list[bytes]


def errno_result(fn: F) -> F:
    """Turn WASI/sandbox/host errors raised by ``fn`` into an errno result."""

    @functools.wraps(fn)
    def call(self: Any, *args: Any) -> Any:
        try:
            return fn(self, *args)
        except WasiError as exc:
            return exc.errno
        except SandboxError as exc:
            return exc.errno
        except OSError as exc:
            return errno_from_oserror(exc)
        except OverflowError:
            # a guest offset or length beyond what the host call accepts
            return Errno.inval

    return call  # type: ignore[return-value]


def decode_path(raw: memoryview) -> str:
    """A guest path as text; invalid UTF-8 is ``ilseq`` (as wasmtime answers)."""
    try:
        return str(raw, "utf-8")
    except UnicodeDecodeError:
        raise WasiError(Errno.ilseq, "path is not valid UTF-8") from None


def _ns(value: int) -> int:
    # timestamps are u64: a host time before 1970 is reported as 0
    return value if value > 0 else 0


def filestat_of(st: os.stat_result) -> Filestat:
    """The WASI ``filestat`` of a host ``stat`` result."""
    return Filestat(st.st_dev, st.st_ino, filetype_of_mode(st.st_mode), st.st_nlink,
                    st.st_size, _ns(st.st_atime_ns), _ns(st.st_mtime_ns), _ns(st.st_ctime_ns))


_FST_ALL = int(Fstflags.atim | Fstflags.atim_now | Fstflags.mtim | Fstflags.mtim_now)


def new_times(current: os.stat_result, atim: int, mtim: int, fst_flags: int) -> tuple[int, int]:
    """(atime_ns, mtime_ns) for ``*_filestat_set_times``; unchanged ones kept.

    Asking for both a time and "now" for the same timestamp, or unknown
    flag bits, is ``inval``.
    """
    if fst_flags & ~_FST_ALL:
        raise WasiError(Errno.inval, "unknown fstflags bits")
    if fst_flags & Fstflags.atim and fst_flags & Fstflags.atim_now:
        raise WasiError(Errno.inval, "atim and atim_now both set")
    if fst_flags & Fstflags.mtim and fst_flags & Fstflags.mtim_now:
        raise WasiError(Errno.inval, "mtim and mtim_now both set")
    now = time.time_ns()
    a = (atim if fst_flags & Fstflags.atim else now if fst_flags & Fstflags.atim_now
         else current.st_atime_ns)
    m = (mtim if fst_flags & Fstflags.mtim else now if fst_flags & Fstflags.mtim_now
         else current.st_mtime_ns)
    return a, m
