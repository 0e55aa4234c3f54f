"""Lunatic messages: what travels between processes.

A *data message* has a tag, a byte buffer with a read position, and an
ordered list of resources (process handles and TCP stream references) moved
into it with ``push_*`` and out of it with ``take_*``.  A *signal message*
has only a tag: it is how a linked process's death shows up in a mailbox
when ``die_when_link_dies`` is off.  See spec section 7.1.

Resources in a message are owned by it: a message that is dropped with
resources still inside releases them (a TCP socket closes when its last
reference goes), so nothing leaks when a receiver dies or ignores a message.
"""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Releasable", "DataMessage", "SignalMessage", "Message", "release_all"]


class Releasable(Protocol):
    """A resource that must be released when its holder goes away."""

    def release(self) -> None:
        """Give up this reference."""


class DataMessage:
    """A tagged byte buffer plus resources; ``tag`` 0 means untagged."""

    __slots__ = ("tag", "buffer", "read_pos", "resources")

    is_signal = False

    def __init__(self, tag: int = 0, buffer: bytes | bytearray = b"",
                 resources: list[Any] | None = None) -> None:
        self.tag = tag
        self.buffer = bytearray(buffer)
        #: where ``read_data`` continues; travels with the message
        self.read_pos = 0
        #: process handles / stream references; ``None`` where one was taken
        self.resources: list[Any] = [] if resources is None else resources

    def release(self) -> None:
        """Release every resource still inside (the message is being dropped)."""
        resources, self.resources = self.resources, []
        release_all(resources)

    def __repr__(self) -> str:
        return (f"DataMessage(tag={self.tag}, {len(self.buffer)} bytes, "
                f"{sum(r is not None for r in self.resources)} resources)")


class SignalMessage:
    """A linked process died (``die_when_link_dies`` off); ``tag`` is the link's tag."""

    __slots__ = ("tag",)

    is_signal = True

    def __init__(self, tag: int = 0) -> None:
        self.tag = tag

    def release(self) -> None:
        """Nothing to release."""

    def __repr__(self) -> str:
        return f"SignalMessage(tag={self.tag})"


Message = DataMessage | SignalMessage


def release_all(resources: list[Any]) -> None:
    """Release each resource that has a ``release`` method (``None`` entries skipped)."""
    for resource in resources:
        release = getattr(resource, "release", None)
        if release is not None:
            release()
