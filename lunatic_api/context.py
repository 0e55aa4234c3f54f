"""What a wasm process keeps for itself: handle tables and the scratch message.

Each process's host objects (one per namespace: ``ErrorApi``, ``MessageApi``,
``ProcessApi``, ``NetworkingApi``, plus its own ``Wasi`` if its module imports
WASI) share one ``ProcessContext``.  Only the process's own thread touches
it, so it needs no lock.  Every table counts ids from 0 and never reuses one
(spec section 1.2); an unknown id traps.  ``release`` drops everything when
the process ends: sockets close (once their last reference is gone), queued
resources go.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from funk.errors import Trap
from funk.resources import ResourceTable
from lunatic_api.messages import DataMessage, Message

if TYPE_CHECKING:
    from lunatic_api.environment import Environment, LunaticModule
    from lunatic_api.process import Process
    from lunatic_api.runtime import Runtime

__all__ = ["ProcessContext", "LunaticError", "host_classes", "host_function_names"]


class LunaticError:
    """An error resource: one line of UTF-8 text (spec section 1.5)."""

    __slots__ = ("text", "data")

    def __init__(self, text: str) -> None:
        self.text = text
        #: always valid UTF-8, since the Rust guest panics on anything else
        self.data = text.encode("utf-8", "replace")


def _release(resource: Any) -> None:
    resource.release()


def _close(resource: Any) -> None:
    resource.close()


#: attribute -> (resource name in trap messages, what clearing does to each entry),
#: in the order ``tables`` lists them
_TABLES: dict[str, tuple[str, Callable[[Any], None] | None]] = {
    "processes": ("process", None),
    "streams": ("TCP stream", _release),
    "listeners": ("TCP listener", _close),
    "dns_iterators": ("DNS iterator", None),
    "errors": ("error", None),
    "configs": ("config", None),
    "environments": ("environment", None),
    "modules": ("module", None),
}


class ProcessContext:
    """Per-process host state shared by the process's host objects.

    The handle tables are made on first use: most processes touch one or two
    of the eight, and every spawn would otherwise build (and ``release``
    clear) all of them.  A table that does not exist yet is as good as an
    empty one, since ids count from 0 per table.
    """

    processes: ResourceTable
    streams: ResourceTable
    listeners: ResourceTable
    dns_iterators: ResourceTable
    errors: ResourceTable
    configs: ResourceTable
    environments: ResourceTable
    modules: ResourceTable

    def __init__(self, runtime: Runtime, process: Process, module: LunaticModule | None) -> None:
        self.runtime = runtime
        self.process = process
        #: the module the process was spawned from (``inherit_spawn``, ``add_this_module``)
        self.module = module
        #: the scratch slot (spec section 7.1): the message being built or read
        self.scratch: Message | None = None

    if not TYPE_CHECKING:  # hidden from mypy, so a misspelt attribute stays an error
        def __getattr__(self, attr: str) -> ResourceTable:
            # only reached while the attribute does not exist: make the table,
            # after which the attribute is found directly
            try:
                name, on_drop = _TABLES[attr]
            except KeyError:
                raise AttributeError(f"{type(self).__name__!r} object has no attribute "
                                     f"{attr!r}") from None
            table = ResourceTable(name, on_drop)
            setattr(self, attr, table)
            return table

    @property
    def environment(self) -> Environment:
        """The environment the process runs in."""
        env = self.process.environment
        assert env is not None
        return env

    def error(self, text: str) -> int:
        """Store a new error resource and return its id (the error convention)."""
        return self.errors.add(LunaticError(text))

    def set_scratch(self, message: Message | None) -> None:
        """Replace the scratch message, dropping the old one and its resources."""
        old, self.scratch = self.scratch, message
        if old is not None:
            old.release()

    def data_message(self, function: str) -> DataMessage:
        """The scratch message, which must be a data message (else a trap)."""
        message = self.scratch
        if message is None:
            raise Trap(f"{function}: there is no message in the scratch slot")
        if not isinstance(message, DataMessage):
            raise Trap(f"{function}: the scratch message is a signal message, it has no data")
        return message

    def tables(self) -> Iterator[ResourceTable]:
        """Every handle table."""
        for attr in _TABLES:
            yield getattr(self, attr)

    def release(self) -> None:
        """Drop every handle and the scratch message (the process has ended)."""
        self.set_scratch(None)
        made = self.__dict__
        for attr in _TABLES:
            table = made.get(attr)
            if table is not None:  # a table never made holds nothing
                table.clear()


def host_classes() -> tuple[type, ...]:
    """The host classes linked into every Lunatic process, in link order."""
    from lunatic_api.error_api import ErrorApi
    from lunatic_api.message_api import MessageApi
    from lunatic_api.networking_api import NetworkingApi
    from lunatic_api.process_api import ProcessApi
    from lunatic_api.wasi import Wasi

    return (ErrorApi, MessageApi, ProcessApi, NetworkingApi, Wasi)


def host_function_names() -> list[tuple[str, str]]:
    """``(namespace, name)`` of every host function a Lunatic process can import."""
    import funk

    return [(f.namespace, f.name) for cls in host_classes() for f in funk.functions_of(cls)]
