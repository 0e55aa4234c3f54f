"""``lunatic::message``: the scratch message, sending and receiving (spec section 4).

All functions act on the caller's scratch slot (``ProcessContext.scratch``).
``receive`` and ``send_receive_skip_search`` are suspension points: they wait
without holding the engine, other processes run, and a kill ends them.
Timeouts are in milliseconds, 0 meaning none; running out returns ``TIMEOUT``
(9027).  The mailbox itself is ``lunatic_api.process.Process``.
"""

from __future__ import annotations

import funk
from funk.errors import Trap
from funk.types import Bytes, MutBytes, i64, u32, u64
from lunatic_api.context import ProcessContext
from lunatic_api.messages import DataMessage, Message
from lunatic_api.net import StreamRef
from lunatic_api.process import TIMEOUT, Process
from lunatic_api.scheduler import HOST_STACK_MARGIN

__all__ = ["MessageApi", "NAMESPACE", "DATA", "SIGNAL"]

NAMESPACE = "lunatic::message"

DATA = 0
"""``receive``: a data message is now in the scratch slot."""
SIGNAL = 1
"""``receive``: a signal message (a linked process died) is now in the scratch slot."""


def _seconds(timeout_ms: int) -> float | None:
    return None if timeout_ms == 0 else timeout_ms / 1000


@funk.host_functions(namespace=NAMESPACE)
class MessageApi:
    """Build, inspect, send and receive messages through the scratch slot."""

    #: wasmer runs these methods on the wasm stack: trap the guest rather than run
    #: them with less native stack than this left (``funk.stack``)
    __funk_stack_reserve__ = HOST_STACK_MARGIN

    def __init__(self, context: ProcessContext) -> None:
        self.context = context

    def create_data(self, tag: i64, capacity: u64) -> None:
        """Replace the scratch slot with an empty data message (``capacity`` is a hint)."""
        self.context.set_scratch(DataMessage(tag))

    def write_data(self, data: Bytes) -> u32:
        """Append guest bytes to the scratch message; returns their length."""
        self.context.data_message("write_data").buffer += data
        return len(data)

    def read_data(self, buf: MutBytes) -> u32:
        """Copy bytes from the read position; returns how many (0 at the end)."""
        message = self.context.data_message("read_data")
        pos, size = message.read_pos, len(message.buffer)
        if pos > size:
            raise Trap(f"read_data: the read position {pos} is past the end of the "
                       f"{size}-byte message")
        n = min(len(buf), size - pos)
        buf[:n] = message.buffer[pos:pos + n]
        message.read_pos = pos + n
        return n

    def seek_data(self, pos: u64) -> None:
        """Move the read position (not checked here; ``read_data`` traps past the end)."""
        self.context.data_message("seek_data").read_pos = pos

    def get_tag(self) -> i64:
        """The scratch message's tag (0: none); data or signal message."""
        message = self.context.scratch
        if message is None:
            raise Trap("get_tag: there is no message in the scratch slot")
        return message.tag

    def data_size(self) -> u64:
        """Total length of the scratch message's buffer."""
        return len(self.context.data_message("data_size").buffer)

    def push_process(self, process_id: u64) -> u64:
        """Move a process handle into the scratch message; returns its resource index."""
        message = self.context.data_message("push_process")
        message.resources.append(self.context.processes.take(process_id))
        return len(message.resources) - 1

    def take_process(self, index: u64) -> u64:
        """Move the process handle at ``index`` out of the scratch message; its new id."""
        process = self._take(index, Process, "take_process")
        return self.context.processes.add(process)

    def push_tcp_stream(self, stream_id: u64) -> u64:
        """Move a TCP stream reference into the scratch message; returns its index."""
        message = self.context.data_message("push_tcp_stream")
        message.resources.append(self.context.streams.take(stream_id))
        return len(message.resources) - 1

    def take_tcp_stream(self, index: u64) -> u64:
        """Move the TCP stream at ``index`` out of the scratch message; its new id."""
        stream = self._take(index, StreamRef, "take_tcp_stream")
        return self.context.streams.add(stream)

    def _take(self, index: int, kind: type, function: str) -> object:
        message = self.context.data_message(function)
        if index >= len(message.resources):
            raise Trap(f"{function}: the message has no resource {index} "
                       f"(it has {len(message.resources)})")
        resource = message.resources[index]
        if resource is None:
            raise Trap(f"{function}: resource {index} was already taken")
        if not isinstance(resource, kind):
            what = "a process" if isinstance(resource, Process) else "a TCP stream"
            raise Trap(f"{function}: resource {index} is {what}")
        message.resources[index] = None
        return resource

    def _take_scratch(self, function: str) -> Message:
        message = self.context.scratch
        if message is None:
            raise Trap(f"{function}: there is no message in the scratch slot")
        return message

    def send(self, process_id: u64) -> None:
        """Send the scratch message (the slot is emptied); a finished target drops it."""
        message = self._take_scratch("send")
        target: Process = self.context.processes.get(process_id)
        self.context.scratch = None
        target.deliver(message)

    def send_receive_skip_search(self, process_id: u64, timeout_ms: u32) -> u32:
        """Send, then wait for the next *new* message with the same tag (0: any).

        0 with the reply in the slot, or ``TIMEOUT`` with the slot empty.
        Messages already queued are not looked at.
        """
        message = self._take_scratch("send_receive_skip_search")
        target: Process = self.context.processes.get(process_id)
        self.context.scratch = None
        me = self.context.process
        # mark before sending: a reply cannot arrive before the mark
        mark = me.skip_search_mark()
        target.deliver(message)
        reply = me.receive_new(message.tag, mark, _seconds(timeout_ms))
        if reply is None:
            return TIMEOUT
        self.context.set_scratch(reply)
        return 0

    def receive(self, tag: i64, timeout_ms: u32) -> u32:
        """Take the oldest message with ``tag`` (0: any) into the slot, waiting if needed.

        0 for a data message, 1 for a signal message, ``TIMEOUT`` (slot unchanged).
        """
        message = self.context.process.receive(tag, _seconds(timeout_ms))
        if message is None:
            return TIMEOUT
        self.context.set_scratch(message)
        return SIGNAL if message.is_signal else DATA
