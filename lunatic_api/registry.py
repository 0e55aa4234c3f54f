"""An environment's registry: processes under (name, semver version).

Return codes are those of the ABI (spec sections 5.21-5.23 and 7.8), including
v0.6.0's rule that a malformed version or query is only reported (1) for a
name that has an entry list; an unknown name is "not found" (2) whatever the
input.  A name gets its list on its first ``register``, even one that fails.

One deliberate change: ``lookup`` returns the **highest** version that
satisfies the query; v0.6.0 returned the most recently registered match, so
the answer depended on start-up order.  Entries that differ only in build
metadata have equal precedence; among those the most recent wins.

Entries are not removed when their process ends (as in v0.6.0): a lookup
may hand out a process that is gone, and messages sent to it are dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import semver

from lunatic_api.process import Process
from lunatic_api.version_req import InvalidRequirement, VersionReq, parse_version

__all__ = ["Registry", "Entry", "REGISTERED", "BAD_VERSION", "NOT_FOUND"]

REGISTERED = 0
"""``register``/``unregister``/``lookup`` succeeded."""
BAD_VERSION = 1
"""The version (or query) is not valid semver."""
NOT_FOUND = 2
"""No entry of that name and version (or none matching the query)."""


@dataclass
class Entry:
    """One registration."""

    version: semver.Version
    process: Process

    @property
    def key(self) -> tuple[object, ...]:
        """Exact identity of the version, pre-release and build included."""
        return _key(self.version)


def _key(v: semver.Version) -> tuple[object, ...]:
    return (v.major, v.minor, v.patch, v.prerelease, v.build)


class Registry:
    """Name -> entries in registration order; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: dict[str, list[Entry]] = {}

    def register(self, name: str, version: str, process: Process) -> int:
        """Register ``process``; the same exact version is replaced in place.  0 or 1."""
        with self._lock:
            entries = self._names.setdefault(name, [])
            try:
                parsed = parse_version(version)
            except ValueError:
                return BAD_VERSION
            key = _key(parsed)
            for entry in entries:
                if entry.key == key:
                    entry.process = process
                    return REGISTERED
            entries.append(Entry(parsed, process))
            return REGISTERED

    def unregister(self, name: str, version: str) -> int:
        """Remove the entry with exactly ``version``.  0, 1 or 2."""
        with self._lock:
            entries = self._names.get(name)
            if entries is None:
                return NOT_FOUND
            try:
                key = _key(parse_version(version))
            except ValueError:
                return BAD_VERSION
            for index, entry in enumerate(entries):
                if entry.key == key:
                    del entries[index]
                    return REGISTERED
            return NOT_FOUND

    def lookup(self, name: str, query: str) -> tuple[int, Process | None]:
        """``(code, process)``: the highest version matching ``query``, if any."""
        with self._lock:
            entries = self._names.get(name)
            if entries is None:
                return NOT_FOUND, None
            try:
                req = VersionReq(query)
            except InvalidRequirement:
                return BAD_VERSION, None
            best: Entry | None = None
            for entry in reversed(entries):  # newest first: it wins ties
                if req.matches(entry.version) and (
                        best is None or entry.version.compare(best.version) > 0):
                    best = entry
            if best is None:
                return NOT_FOUND, None
            return REGISTERED, best.process

    def entries(self, name: str) -> list[tuple[str, Process]]:
        """``(version text, process)`` of every registration of ``name``, oldest first."""
        with self._lock:
            return [(str(e.version), e.process) for e in self._names.get(name, [])]
