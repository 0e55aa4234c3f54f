"""Per-instance resource tables: u64 ids standing for host objects.

A guest never sees host objects, only ids.  Each instance has one table per
resource *kind* (usually a class such as ``socket.socket``); ids count up
from 0 per table and are never reused, so a stale id can never alias a newer
object.  Looking up or removing an unknown id raises ``Trap``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from funk.errors import Trap

__all__ = ["ResourceTable", "Resources"]


class ResourceTable:
    """Ids -> objects for one resource kind of one instance."""

    __slots__ = ("name", "_items", "_next", "on_drop")

    def __init__(self, name: str, on_drop: Callable[[Any], None] | None = None) -> None:
        self.name = name
        self._items: dict[int, Any] = {}
        self._next = 0
        #: called with each object still in the table when the table is cleared
        self.on_drop = on_drop

    def add(self, obj: Any) -> int:
        """Store ``obj`` under a fresh id and return the id."""
        rid = self._next
        self._next = rid + 1
        self._items[rid] = obj
        return rid

    def get(self, rid: int) -> Any:
        """The object stored under ``rid``; traps if there is none."""
        try:
            return self._items[rid]
        except KeyError:
            raise Trap(f"unknown {self.name} handle {rid}") from None

    def take(self, rid: int) -> Any:
        """Remove ``rid`` and return its object; traps if there is none."""
        try:
            return self._items.pop(rid)
        except KeyError:
            raise Trap(f"unknown {self.name} handle {rid}") from None

    def replace(self, rid: int, obj: Any) -> None:
        """Store ``obj`` under an existing id (traps if unknown)."""
        self.get(rid)
        self._items[rid] = obj

    def __contains__(self, rid: object) -> bool:
        return rid in self._items

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[int]:
        return iter(list(self._items))

    def items(self) -> list[tuple[int, Any]]:
        """A snapshot of (id, object) pairs."""
        return list(self._items.items())

    def clear(self) -> None:
        """Drop every entry, calling ``on_drop`` on each object."""
        items, self._items = self._items, {}
        if self.on_drop is not None:
            for obj in items.values():
                self.on_drop(obj)


class Resources:
    """All resource tables of one instance, created on first use."""

    __slots__ = ("_tables",)

    def __init__(self) -> None:
        self._tables: dict[Any, ResourceTable] = {}

    def table(self, kind: Any) -> ResourceTable:
        """The table for ``kind`` (any hashable; a class names itself)."""
        try:
            return self._tables[kind]
        except KeyError:
            table = self._tables[kind] = ResourceTable(getattr(kind, "__name__", str(kind)))
            return table

    def __getitem__(self, kind: Any) -> ResourceTable:
        return self.table(kind)

    def clear(self) -> None:
        """Drop every table's contents (the instance is ending)."""
        for table in self._tables.values():
            table.clear()
