"""A Lunatic process as the runtime sees it: identity, mailbox, links, life.

``Process`` is the part of a process that other processes touch: they
deliver messages to its mailbox, link to it, kill it.  Everything here is
thread-safe (one lock per process).  What only the process itself uses (its
handle tables, scratch message, wasm instance) lives in
``lunatic_api.context``.

Signals (spec section 7.3) are handled as they arrive rather than at the
receiver's next suspension point, which the spec allows ("as long as it keeps
their order"): a delivered message is in the mailbox at once, a ``LinkDied``
either adds a signal message or marks the process killed at once.  A killed
process notices at its next *suspension point* (``receive``,
``send_receive_skip_search``, ``sleep_ms``, the blocking networking and
spawning calls, and the fuel checks injected into every module, which call
the host at least every 100,000 fuel), which raise ``ProcessKilled``; a
blocked call is woken to do so.  A process busy in pure wasm therefore ends
within one fuel slice.

Decisions on the spec's open points, kept here because this is where they
are implemented:

* ``die_when_link_dies`` and the caller's own side of ``link``/``unlink`` take
  effect immediately (spec section 9 item 9).  Handling order is unchanged.
* Linking to a process that has already ended *abnormally* reports
  ``LinkDied`` at once (as Erlang would); linking to one that returned
  normally does nothing, since normal exits never notify (item 10).
* Mailboxes keep strict FIFO order, also after timeouts (item 14).
"""

from __future__ import annotations

import enum
import os
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from lunatic_api.messages import Message, SignalMessage
from lunatic_api.scheduler import release_cpu_hint

if TYPE_CHECKING:
    from lunatic_api.environment import Environment

__all__ = ["Process", "ProcessKilled", "Ending", "Outcome", "TIMEOUT"]

TIMEOUT = 9027
"""What ``receive`` and ``send_receive_skip_search`` return when their timeout runs out."""


WOKEN: deque[None] = deque()
"""One entry per process woken by a message (or by the end of a spawn it waits for,
``spawning._Handshake``) that has not resumed yet.

A hint for fair scheduling on engines that hold the interpreter lock while
wasm runs: a busy process that sees entries here steps aside long enough for
those threads to take the lock (``lunatic_api.limits.Meter``).  A deque,
because ``append``/``pop``/``len`` are atomic without a lock of their own.
"""


class ProcessKilled(BaseException):
    """Raised inside a killed process at its next suspension point.

    A ``BaseException`` so that guest code cannot swallow it by accident:
    funk lets it unwind the wasm stack and reach the process's body.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Ending(enum.Enum):
    """How a process ended."""

    RETURNED = "returned"   #: its entry function returned: links are not notified
    FAILED = "failed"       #: trap, host trap, proc_exit (any code), Python exception
    KILLED = "killed"       #: killed from Python or by a linked process's death

    @property
    def abnormal(self) -> bool:
        """Whether linked processes are notified (everything but a normal return)."""
        return self is not Ending.RETURNED


@dataclass(frozen=True)
class Outcome:
    """The end of a process: how, why (text), and the WASI exit code if it called proc_exit."""

    ending: Ending
    message: str = ""
    exit_code: int | None = None
    #: the exception that ended it (a ``funk.Trap``, ``WasiExit``...), if any
    error: BaseException | None = field(default=None, compare=False, repr=False)

    @property
    def abnormal(self) -> bool:
        """Linked processes are told (see ``Ending.abnormal``)."""
        return self.ending.abnormal

    def __str__(self) -> str:
        return self.ending.value + (f": {self.message}" if self.message else "")


_ID_BATCH = 256
"""Process ids made from one ``os.urandom`` call."""

#: random bytes for the next process ids, 16 per entry; ``popleft`` and ``extend``
#: are atomic, so threads share it without a lock
_id_pool: deque[bytes] = deque()
# a forked child must not hand out the ids its parent will
os.register_at_fork(after_in_child=_id_pool.clear)


def _new_id() -> uuid.UUID:
    """A random (version 4) UUID, as ``uuid.uuid4`` makes it.

    The random bytes are read ``_ID_BATCH`` ids at a time: ``os.urandom``
    releases the GIL, and a thread waiting for it then takes it, which on a
    busy machine costs a spawn more than the system call.  Each id still gets
    16 bytes of the operating system's randomness that no other id gets.
    """
    try:
        data = _id_pool.popleft()
    except IndexError:
        block = os.urandom(16 * _ID_BATCH)
        _id_pool.extend(block[i:i + 16] for i in range(16, len(block), 16))
        data = block[:16]
    return uuid.UUID(bytes=data, version=4)


class Process:
    """One process: a UUID, a mailbox, a link table and an outcome once it ends.

    ``environment`` is the environment it runs in (``None`` only for
    processes outside any environment).  ``name`` is for humans (logs).
    """

    def __init__(self, environment: Environment | None, name: str = "") -> None:
        self.id = _new_id()
        self.environment = environment
        self.name = name
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        # (arrival number, message), oldest first
        self._mailbox: deque[tuple[int, Message]] = deque()
        self._arrivals = 0
        # peer UUID -> (peer, tag this side reports to the peer when it dies)
        self._links: dict[uuid.UUID, tuple[Process, int]] = {}
        self._die_when_link_dies = True
        self._kill_reason: str | None = None
        #: a delivery woke the process and it has not resumed yet (counted in ``WOKEN``)
        self._woken = False
        self._waiting = False
        self._wake_fd: int | None = None
        self.outcome: Outcome | None = None
        #: ``finish`` is over (links told): what ``join`` waits for
        self._done = False
        #: set when ``_done`` becomes true; made by the first ``join`` that has to
        #: wait (an ``Event`` per process was a third of the cost of making one,
        #: and waiting on ``_cond`` would wake joiners at every message)
        self._joined: threading.Event | None = None
        #: called with (process, outcome) after it ended (set by the runtime)
        self.on_end: Callable[[Process, Outcome], None] | None = None

    def __repr__(self) -> str:
        state = "running" if self.outcome is None else str(self.outcome)
        label = f" {self.name}" if self.name else ""
        return f"<Process {self.id}{label} {state}>"

    # ------------------------------------------------------------------
    # state

    @property
    def alive(self) -> bool:
        """True until the process has ended."""
        return self.outcome is None

    @property
    def killed(self) -> bool:
        """True once the process has been told to die (it may still be unwinding)."""
        return self._kill_reason is not None

    def join(self, timeout: float | None = None) -> Outcome | None:
        """Wait until the process has ended; its ``Outcome`` (``None`` on timeout).

        Once this returns an outcome, linked processes have been told and the
        runtime's ``on_end`` has run.
        """
        with self._lock:
            if self._done:
                return self.outcome
            if self._joined is None:
                self._joined = threading.Event()
            joined = self._joined
        joined.wait(timeout)
        return self.outcome if self._done else None

    def mailbox_size(self) -> int:
        """Messages delivered but not yet received."""
        with self._lock:
            return len(self._mailbox)

    def links(self) -> dict[uuid.UUID, int]:
        """A snapshot of the link table: peer UUID -> tag reported to that peer."""
        with self._lock:
            return {peer: tag for peer, (_, tag) in self._links.items()}

    # ------------------------------------------------------------------
    # what other processes (or Python) do to this one

    def deliver(self, message: Message) -> bool:
        """Put ``message`` in the mailbox; ``False`` (and it is dropped) if the process ended."""
        with self._lock:
            if self.outcome is None:
                self._arrivals += 1
                self._mailbox.append((self._arrivals, message))
                if self._waiting:
                    self._cond.notify_all()
                    if not self._woken:
                        self._woken = True
                        WOKEN.append(None)
                return True
        message.release()
        return False

    def kill(self, reason: str = "killed") -> bool:
        """Tell the process to die; it ends at its next suspension point.

        A process blocked in ``receive``, ``sleep_ms`` or a networking call is
        woken at once.  Returns ``False`` if it had already ended or been killed.
        """
        with self._lock:
            if self.outcome is not None or self._kill_reason is not None:
                return False
            self._kill_reason = reason
            self._cond.notify_all()
            wake_fd = self._wake_fd
        if wake_fd is not None:
            try:
                os.eventfd_write(wake_fd, 1)
            except OSError:  # closed as the process ended: nothing to wake
                pass
        return True

    def link_died(self, tag: int) -> None:
        """A linked process ended abnormally: die, or queue a signal message."""
        with self._lock:
            if self.outcome is not None:
                return
            if not self._die_when_link_dies:
                self._arrivals += 1
                self._mailbox.append((self._arrivals, SignalMessage(tag)))
                if self._waiting:
                    self._cond.notify_all()
                return
        self.kill("a linked process died")

    # ------------------------------------------------------------------
    # what the process does (called from its own thread)

    def set_die_when_link_dies(self, flag: bool) -> None:
        """``die_when_link_dies``: die with linked processes (default) or get signal messages."""
        with self._lock:
            self._die_when_link_dies = flag

    def link(self, other: Process, tag: int, other_tag: int | None = None) -> None:
        """Link both ways.  ``tag`` is what this side reports to ``other`` when it dies,
        ``other_tag`` (default ``tag``) what ``other`` reports to this side."""
        back = tag if other_tag is None else other_tag
        if other is self:
            return  # a process cannot outlive itself: nothing would ever be reported
        with other._lock:
            other_outcome = other.outcome
            if other_outcome is None:
                other._links[self.id] = (self, back)
        if other_outcome is not None:
            if other_outcome.abnormal:
                self.link_died(back)
            return
        with self._lock:
            self._links[other.id] = (other, tag)

    def unlink(self, other: Process) -> None:
        """Remove the link in both directions (nothing happens if there is none)."""
        with self._lock:
            self._links.pop(other.id, None)
        with other._lock:
            other._links.pop(self.id, None)

    def check_killed(self) -> None:
        """Raise ``ProcessKilled`` if the process has been killed (a suspension point)."""
        reason = self._kill_reason
        if reason is not None:
            raise ProcessKilled(reason)

    def receive(self, tag: int, timeout: float | None) -> Message | None:
        """Take the oldest message matching ``tag`` (0: any), waiting up to ``timeout`` s.

        ``None`` when the timeout ran out; the mailbox is unchanged then.
        Taking a message and deciding that time is up both happen under the
        mailbox lock, so a message arriving at that moment is either taken or
        stays queued: never lost, never taken twice.
        """
        return self._wait_for(tag, 0, timeout)

    def skip_search_mark(self) -> int:
        """The arrival number after which ``receive_new`` looks (take it *before* sending)."""
        with self._lock:
            return self._arrivals

    def receive_new(self, tag: int, after: int, timeout: float | None) -> Message | None:
        """Like ``receive``, but only messages that arrived after ``after`` count."""
        return self._wait_for(tag, after, timeout)

    def _wait_for(self, tag: int, after: int, timeout: float | None) -> Message | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            checked = 0  # entries before this index were looked at already
            while True:
                if self._kill_reason is not None:
                    raise ProcessKilled(self._kill_reason)
                box = self._mailbox
                for index in range(checked, len(box)):
                    number, message = box[index]
                    if number > after and (tag == 0 or message.tag == tag):
                        del box[index]
                        return message
                checked = len(box)
                if deadline is None:
                    remaining = None
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                release_cpu_hint()  # blocked: no reason to stay by the spawner
                self._waiting = True
                try:
                    self._cond.wait(remaining)
                finally:
                    self._waiting = False
                    if self._woken:
                        self._woken = False
                        WOKEN.pop()

    def sleep(self, seconds: float) -> None:
        """Sleep at least ``seconds``; a kill ends the sleep with ``ProcessKilled``."""
        deadline = time.monotonic() + seconds
        release_cpu_hint()
        with self._lock:
            while self._kill_reason is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                # sleep_ms takes a u64: cap each wait at what threading accepts
                self._cond.wait(min(remaining, threading.TIMEOUT_MAX))
            raise ProcessKilled(self._kill_reason)

    def wake_fd(self) -> int:
        """An eventfd that becomes readable when the process is killed.

        Blocking socket waits poll it beside their socket, so a kill wakes
        them.  Created on first use (most processes never do networking) and
        closed when the process ends.
        """
        with self._lock:
            if self._wake_fd is None:
                self._wake_fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
                if self._kill_reason is not None:
                    os.eventfd_write(self._wake_fd, 1)
            return self._wake_fd

    # ------------------------------------------------------------------
    # the end

    def discard(self) -> None:
        """The process never started (its spawn failed): end it without telling anyone."""
        with self._lock:
            if self.outcome is None:
                self.outcome = Outcome(Ending.FAILED, "never started")
            mailbox = [m for _, m in self._mailbox]
            self._mailbox.clear()
            self._links.clear()
        for message in mailbox:
            message.release()
        self._set_done()

    def finish(self, outcome: Outcome) -> None:
        """Record the end: drop the mailbox, notify links if abnormal, wake joiners.

        Called once, by whoever ran the process, after its body returned.
        """
        with self._lock:
            if self.outcome is not None:
                return
            self.outcome = outcome
            links = list(self._links.values())
            self._links.clear()
            mailbox = [m for _, m in self._mailbox]
            self._mailbox.clear()
            wake_fd, self._wake_fd = self._wake_fd, None
            self._cond.notify_all()
        if wake_fd is not None:
            os.close(wake_fd)
        for message in mailbox:
            message.release()
        for peer, _ in links:
            # the peer's entry for this process is stale now (a normal return
            # tells nobody, but must not leave the peer holding this process)
            with peer._lock:
                peer._links.pop(self.id, None)
        if self.on_end is not None:
            # before links are told: the runtime's failure report (the lunatic
            # command prints it) must precede what the death causes elsewhere
            self.on_end(self, outcome)
        if outcome.abnormal:
            for peer, tag in links:
                peer.link_died(tag)
        self._set_done()

    def _set_done(self) -> None:
        with self._lock:
            self._done = True
            joined = self._joined
        if joined is not None:
            joined.set()
