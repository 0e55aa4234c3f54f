"""``poll_oneoff``: wait for clocks and descriptor readiness.

Regular files and in-memory stdio streams are always ready (as on POSIX);
``fd_read`` events on them report the bytes left to read.  Sockets, pipes
and terminals are waited for with the host's ``poll``.  Clock subscriptions
are relative or absolute (``subscription_clock_abstime``) on the realtime or
monotonic clock; the CPU-time clocks cannot be waited for (their events carry
``notsup``).  The call returns as soon as anything is ready, with one event
per ready subscription; a subscription on a bad fd is reported at once as an
event carrying ``badf``.
"""

from __future__ import annotations

import fcntl
import math
import os
import select
import struct
import termios
import time

from funk import Caller
from funk.records import record_layout
from funk.types import u32
from lunatic_api.wasi.abi import (
    NAMESPACE,
    Clockid,
    ErrnoOr,
    Event,
    EventFdReadwrite,
    Eventrwflags,
    Eventtype,
    Filetype,
    Rights,
    Subclockflags,
    Subscription,
)
from lunatic_api.wasi.descriptors import Descriptor, MemoryInput, WasiError
from lunatic_api.wasi.errno import Errno
from lunatic_api.wasi.state import WasiState, errno_result

__all__ = ["PollFunctions"]

_SUBSCRIPTION = record_layout(Subscription)
_EVENT = record_layout(Event)
_FUNCTION = f"{NAMESPACE}.poll_oneoff"
_FIONREAD = struct.Struct("i")
_MAX_POLL_MS = (1 << 31) - 1
_MAX_SLEEP_S = 86400.0  # longer waits are done in steps by poll_oneoff's loop


def _event(userdata: int, kind: int, error: int = 0, nbytes: int = 0,
           flags: int = 0) -> Event:
    return Event(userdata, error, kind, EventFdReadwrite(nbytes, flags))


def _readable_bytes(desc: Descriptor) -> int:
    """Bytes an ``fd_read`` event reports for an always-ready descriptor."""
    stream = desc.stream
    if isinstance(stream, MemoryInput):
        return stream.remaining()
    if desc.host_fd is not None and desc.filetype == Filetype.regular_file:
        position = os.lseek(desc.host_fd, 0, os.SEEK_CUR)
        return max(0, os.fstat(desc.host_fd).st_size - position)
    return 0


def _pending_bytes(host_fd: int) -> int:
    """Bytes waiting on a socket or pipe (0 if the host cannot say)."""
    try:
        raw = fcntl.ioctl(host_fd, termios.FIONREAD, b"\0" * _FIONREAD.size)
    except OSError:
        return 0
    return int(_FIONREAD.unpack(raw)[0])


class PollFunctions(WasiState):
    """``poll_oneoff`` (mixed into ``Wasi``)."""

    @errno_result
    def poll_oneoff(self, subscriptions: u32, events: u32, nsubscriptions: u32,
                    caller: Caller) -> ErrnoOr[u32]:
        """Wait until at least one subscription is ready; returns the event count."""
        if nsubscriptions == 0:
            return Errno.inval
        memory = caller.memory
        memory.require(subscriptions, _SUBSCRIPTION.size * nsubscriptions, _FUNCTION, "in")
        memory.require(events, _EVENT.size * nsubscriptions, _FUNCTION, "out")
        subs = [_SUBSCRIPTION.read(memory.view, subscriptions + _SUBSCRIPTION.size * i)
                for i in range(nsubscriptions)]

        ready: list[Event] = []
        clocks: list[tuple[int, int]] = []           # (monotonic deadline, userdata)
        watches: list[tuple[int, int, int, int]] = []  # (host fd, poll mask, userdata, kind)
        start = time.monotonic_ns()
        for sub in subs:
            kind, body = sub.u.tag, sub.u.clock
            if kind == Eventtype.clock:
                deadline = self._deadline(body.id, body.timeout, body.flags, start)
                if deadline is None:
                    ready.append(_event(sub.userdata, kind, Errno.notsup if body.id in (
                        Clockid.process_cputime_id, Clockid.thread_cputime_id)
                        else Errno.inval))
                else:
                    clocks.append((deadline, sub.userdata))
            elif kind in (Eventtype.fd_read, Eventtype.fd_write):
                self._subscribe_fd(sub.userdata, kind, body.id, ready, watches)
            else:
                return Errno.inval

        while True:
            timeout_ns: int | None = 0 if ready else None
            if not ready and clocks:
                timeout_ns = max(0, min(d for d, _ in clocks) - time.monotonic_ns())
            if watches:
                ready.extend(_poll(watches, timeout_ns))
            elif timeout_ns:
                time.sleep(min(timeout_ns / 1e9, _MAX_SLEEP_S))
            now = time.monotonic_ns()
            ready.extend(_event(ud, Eventtype.clock) for d, ud in clocks if d <= now)
            if ready:
                break
        for index, event in enumerate(ready):
            _EVENT.write(memory.view, events + _EVENT.size * index, event)
        return Errno.success, len(ready)

    def _deadline(self, clock: int, timeout: int, flags: int, start: int) -> int | None:
        """A subscription's deadline on the monotonic clock (``None``: unsupported clock)."""
        if flags & Subclockflags.subscription_clock_abstime:
            if clock == Clockid.realtime:
                return start + (timeout - time.time_ns())
            if clock == Clockid.monotonic:
                return timeout
            return None
        if clock in (Clockid.realtime, Clockid.monotonic):
            return start + timeout
        return None

    def _subscribe_fd(self, userdata: int, kind: int, fd: int, ready: list[Event],
                      watches: list[tuple[int, int, int, int]]) -> None:
        try:
            desc = self._table.get(fd)
        except WasiError as exc:
            ready.append(_event(userdata, kind, exc.errno))
            return
        wanted = Rights.fd_read if kind == Eventtype.fd_read else Rights.fd_write
        if not desc.rights_base & (wanted | Rights.poll_fd_readwrite) or (
                desc.filetype == Filetype.directory):
            ready.append(_event(userdata, kind, Errno.badf))
            return
        if desc.host_fd is None or desc.filetype == Filetype.regular_file:
            nbytes = _readable_bytes(desc) if kind == Eventtype.fd_read else 0
            ready.append(_event(userdata, kind, nbytes=nbytes))
            return
        mask = select.POLLIN if kind == Eventtype.fd_read else select.POLLOUT
        watches.append((desc.host_fd, mask, userdata, kind))


def _poll(watches: list[tuple[int, int, int, int]], timeout_ns: int | None) -> list[Event]:
    """Wait on host fds; one event per watch that became ready."""
    poller = select.poll()
    masks: dict[int, int] = {}  # one registration per fd: read and write may share one
    for host_fd, mask, _, _ in watches:
        masks[host_fd] = masks.get(host_fd, 0) | mask
    for host_fd, mask in masks.items():
        poller.register(host_fd, mask)
    # poll() takes a C int of milliseconds: wait at most ~24 days at a time
    # (poll_oneoff's loop waits again if nothing became ready)
    timeout_ms = None if timeout_ns is None else min(math.ceil(timeout_ns / 1e6), _MAX_POLL_MS)
    try:
        results = dict(poller.poll(timeout_ms))
    except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for clarity
        results = {}
    events = []
    for host_fd, mask, userdata, kind in watches:
        revents = results.get(host_fd, 0)
        if revents & select.POLLNVAL:
            events.append(_event(userdata, kind, Errno.badf))
        elif revents & (mask | select.POLLHUP | select.POLLERR):
            hangup = int(Eventrwflags.fd_readwrite_hangup) if revents & select.POLLHUP else 0
            nbytes = _pending_bytes(host_fd) if kind == Eventtype.fd_read else 0
            events.append(_event(userdata, kind, nbytes=nbytes, flags=hangup))
    return events
