"""WASI functions about the program itself: arguments, environment, clocks,
randomness, scheduling and exit.

``proc_exit`` raises ``WasiExit``, a ``BaseException`` (like ``SystemExit``):
funk lets it unwind the guest and reach the Python caller of the export
unchanged, so ``Wasi.run`` (or any embedder) sees the exit code rather than
a trap.
"""

from __future__ import annotations

import os
import struct
import time
from collections.abc import Callable

from funk import Caller
from funk.types import MutBytes, u8, u32, u64
from lunatic_api.wasi.abi import NAMESPACE, Clockid, ErrnoOr, ErrnoOr2
from lunatic_api.wasi.errno import Errno
from lunatic_api.wasi.state import WasiState, errno_result

__all__ = ["ProcessFunctions", "WasiExit"]


class WasiExit(BaseException):
    """Raised by ``proc_exit``: the guest asked to end with exit ``code``."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code

    def __str__(self) -> str:
        return f"guest exited with code {self.code}"


_CLOCKS: dict[int, Callable[[], int]] = {
    Clockid.realtime: time.time_ns,
    Clockid.monotonic: time.monotonic_ns,
    Clockid.process_cputime_id: time.process_time_ns,
    Clockid.thread_cputime_id: time.thread_time_ns,
}
_HOST_CLOCK: dict[int, int] = {
    Clockid.realtime: time.CLOCK_REALTIME,
    Clockid.monotonic: time.CLOCK_MONOTONIC,
    Clockid.process_cputime_id: time.CLOCK_PROCESS_CPUTIME_ID,
    Clockid.thread_cputime_id: time.CLOCK_THREAD_CPUTIME_ID,
}
_U32 = struct.Struct("<I")


def _sizes(strings: list[bytes]) -> ErrnoOr2[int, int]:
    return Errno.success, len(strings), sum(len(s) + 1 for s in strings)


def _write_strings(caller: Caller, function: str, strings: list[bytes], pointers: int,
                   buffer: int) -> Errno:
    """Lay out NUL-terminated ``strings`` at ``buffer`` and their addresses at ``pointers``.

    Both ranges are checked first: a bad pointer traps (funk's rule) before
    anything is written.
    """
    memory = caller.memory
    memory.require(pointers, 4 * len(strings), function, "pointers")
    memory.require(buffer, sum(len(s) + 1 for s in strings), function, "buffer")
    view = memory.view
    pos = buffer
    for index, text in enumerate(strings):
        _U32.pack_into(view, pointers + 4 * index, pos)
        view[pos:pos + len(text)] = text
        view[pos + len(text)] = 0
        pos += len(text) + 1
    return Errno.success


class ProcessFunctions(WasiState):
    """args, environ, clocks, random, sched_yield and proc_* (mixed into ``Wasi``)."""

    def args_sizes_get(self) -> ErrnoOr2[u32, u32]:
        """Number of arguments and the bytes they need (NULs included)."""
        return _sizes(self._args)

    def args_get(self, argv: u32, argv_buf: u32, caller: Caller) -> Errno:
        """Write the argument pointers to ``argv`` and the strings to ``argv_buf``."""
        return _write_strings(caller, f"{NAMESPACE}.args_get", self._args, argv, argv_buf)

    def environ_sizes_get(self) -> ErrnoOr2[u32, u32]:
        """Number of ``KEY=VALUE`` strings and the bytes they need."""
        return _sizes(self._env)

    def environ_get(self, environ: u32, environ_buf: u32, caller: Caller) -> Errno:
        """Write the environment pointers and ``KEY=VALUE`` strings."""
        return _write_strings(caller, f"{NAMESPACE}.environ_get", self._env, environ,
                              environ_buf)

    def clock_res_get(self, id: u32) -> ErrnoOr[u64]:
        """Resolution of a clock in nanoseconds (unknown clock: ``inval``)."""
        clock = _HOST_CLOCK.get(id)
        if clock is None:
            return Errno.inval
        return Errno.success, max(1, round(time.clock_getres(clock) * 1e9))

    def clock_time_get(self, id: u32, precision: u64) -> ErrnoOr[u64]:
        """Current time of a clock in nanoseconds (unknown clock: ``inval``)."""
        clock = _CLOCKS.get(id)
        if clock is None:
            return Errno.inval
        return Errno.success, clock()

    def random_get(self, buf: MutBytes) -> Errno:
        """Fill ``buf`` with bytes from the host's CSPRNG."""
        buf[:] = os.urandom(len(buf))
        return Errno.success

    @errno_result
    def sched_yield(self) -> Errno:
        """Let other threads run."""
        os.sched_yield()
        return Errno.success

    def proc_exit(self, rval: u32) -> None:
        """End the program with exit code ``rval`` (raises ``WasiExit``)."""
        raise WasiExit(rval)

    def proc_raise(self, sig: u8) -> Errno:
        """Signals are not supported (``notsup``, as in wasmtime); nothing is raised."""
        return Errno.notsup
