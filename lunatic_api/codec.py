"""MessagePack payloads, as the Rust guest library ``lunatic`` 0.6 writes them.

The Rust guest serialises messages with ``rmp-serde``: structs as arrays of
their fields, enums as maps ``{variant: fields}`` (unit variants as the
name), and a ``Process`` or ``TcpStream`` field as a plain unsigned integer,
the index ``push_process``/``push_tcp_stream`` returned.  So:

* ``pack(value)`` returns ``(bytes, resources)``: every ``Process`` (or
  stream reference) in ``value`` is appended to ``resources`` and written
  as its index; send both as one message.
* ``unpack(data)`` decodes the bytes; a field known to hold a process is an
  index into the message's resources (``message.resources[i]``).
"""

from __future__ import annotations

from typing import Any

import msgpack

from lunatic_api.net import StreamRef
from lunatic_api.process import Process

__all__ = ["pack", "unpack"]


def pack(value: Any) -> tuple[bytes, list[Any]]:
    """``value`` as MessagePack bytes plus the resources it mentions (in index order)."""
    resources: list[Any] = []

    def replace(obj: Any) -> Any:
        if isinstance(obj, (Process, StreamRef)):
            resources.append(obj)
            return len(resources) - 1
        raise TypeError(f"cannot encode {type(obj).__name__} as MessagePack")

    data = msgpack.packb(value, default=replace, use_bin_type=True)
    return data, resources


def unpack(data: bytes | bytearray | memoryview) -> Any:
    """Decode MessagePack bytes (arrays become lists, binary stays ``bytes``)."""
    return msgpack.unpackb(bytes(data), raw=False, strict_map_key=False)
