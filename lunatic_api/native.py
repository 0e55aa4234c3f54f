"""Native processes: Python callables that take part as Lunatic processes.

``Runtime.spawn_native(body)`` runs ``body(proc)`` on its own thread with a
``NativeProcess`` ``proc``: a real process with a UUID, a mailbox and links,
registered and looked up like any other, so wasm processes and Python code
exchange messages both ways.  Payloads are bytes; ``lunatic_api.codec``
encodes MessagePack the way the Rust guest library does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from lunatic_api import codec
from lunatic_api.messages import DataMessage, Message
from lunatic_api.net import StreamRef
from lunatic_api.process import Process
from lunatic_api.registry import BAD_VERSION, REGISTERED

if TYPE_CHECKING:
    from lunatic_api.environment import Environment, LunaticModule
    from lunatic_api.runtime import Runtime
    from lunatic_api.spawn_params import Param

__all__ = ["NativeProcess"]


class NativeProcess:
    """What a native process's body uses to act as a process.

    Blocking calls (``receive``, ``request``, ``sleep``) are suspension
    points: if the process is killed they raise ``ProcessKilled``, which the
    body should let through.
    """

    def __init__(self, runtime: Runtime, process: Process) -> None:
        self.runtime = runtime
        #: this process (give it to others: it is also its handle)
        self.process = process
        self._holding: list[DataMessage] = []

    @property
    def environment(self) -> Environment:
        """The environment the process belongs to (its registry)."""
        env = self.process.environment
        assert env is not None
        return env

    # -- messages ------------------------------------------------------------------

    def send(self, to: Process, data: bytes | bytearray = b"", tag: int = 0,
             resources: Sequence[Any] = ()) -> None:
        """Send a data message (``resources``: ``Process`` objects / stream refs)."""
        to.deliver(DataMessage(tag, data, list(resources)))

    def send_value(self, to: Process, value: Any, tag: int = 0) -> None:
        """Send ``value`` as MessagePack; ``Process`` objects in it travel as resources."""
        data, resources = codec.pack(value)
        self.send(to, data, tag, resources)

    def receive(self, tag: int = 0, timeout: float | None = None) -> Message | None:
        """The oldest message with ``tag`` (0: any); ``None`` if ``timeout`` s ran out."""
        message = self.process.receive(tag, timeout)
        self._hold(message)
        return message

    def receive_value(self, tag: int = 0, timeout: float | None = None) -> Any:
        """``receive`` and decode MessagePack (``TimeoutError`` on timeout,
        ``LookupError`` for a signal message)."""
        return _value_of(self.receive(tag, timeout))

    def request(self, to: Process, data: bytes | bytearray = b"", tag: int = 0,
                resources: Sequence[Any] = (), timeout: float | None = None
                ) -> Message | None:
        """Send, then wait for the next *new* message with ``tag`` (as
        ``send_receive_skip_search``); ``None`` on timeout."""
        mark = self.process.skip_search_mark()
        to.deliver(DataMessage(tag, data, list(resources)))
        message = self.process.receive_new(tag, mark, timeout)
        self._hold(message)
        return message

    def _hold(self, message: Message | None) -> None:
        # stream references must be closed when the process ends, even if the
        # body forgot them; process handles need no release
        if isinstance(message, DataMessage) and any(
                isinstance(r, StreamRef) for r in message.resources):
            self._holding.append(message)

    # -- links -----------------------------------------------------------------------

    def link(self, other: Process, tag: int = 0) -> None:
        """Link both ways with ``tag``."""
        self.process.link(other, tag)

    def unlink(self, other: Process) -> None:
        """Remove a link both ways."""
        self.process.unlink(other)

    def die_when_link_dies(self, flag: bool) -> None:
        """``True`` (default): die with linked processes; ``False``: get signal messages."""
        self.process.set_die_when_link_dies(flag)

    def sleep(self, seconds: float) -> None:
        """Sleep (a kill ends it with ``ProcessKilled``)."""
        self.process.sleep(seconds)

    # -- registry and spawning -----------------------------------------------------------

    def register(self, name: str, version: str, process: Process | None = None,
                 environment: Environment | None = None) -> None:
        """Register ``process`` (default: this one); ``ValueError`` for a bad version."""
        env = environment if environment is not None else self.environment
        code = env.registry.register(name, version, process or self.process)
        if code == BAD_VERSION:
            raise ValueError(f"{version!r} is not a semver version")

    def lookup(self, name: str, query: str) -> Process | None:
        """The highest registered version of ``name`` matching ``query`` (``None``: none).

        ``ValueError`` for a malformed query of a known name.
        """
        code, process = self.environment.registry.lookup(name, query)
        if code == BAD_VERSION:
            raise ValueError(f"{query!r} is not a version requirement")
        return process if code == REGISTERED else None

    def spawn(self, module: LunaticModule, function: str = "_start",
              params: Sequence[Param | int] = (), link_tag: int | None = None) -> Process:
        """Spawn a wasm process; linked to this one (child reports ``link_tag``) if given."""
        parent = self.process if link_tag is not None else None
        return self.runtime.spawn(module, function, params, parent, link_tag or 0)

    def release(self) -> None:
        """Release resources still held by received messages (the process ended)."""
        holding, self._holding = self._holding, []
        for message in holding:
            message.release()


def _value_of(message: Message | None) -> Any:
    if message is None:
        raise TimeoutError("no message arrived in time")
    if not isinstance(message, DataMessage):
        raise LookupError(f"received a signal message (a linked process died, tag "
                          f"{message.tag})")
    return codec.unpack(message.buffer)
