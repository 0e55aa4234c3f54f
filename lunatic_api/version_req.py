"""Cargo-style version requirements (``^1.2``, ``~1.2.3``, ``>=1, <2``, ``1.*``).

Lunatic's ``lookup`` takes a query in the syntax of Rust's ``semver`` crate
(``VersionReq``), whose meaning differs from npm's and from what the Python
``semver`` package offers (which compares against one full version only):
a bare ``1.2.3`` is a *caret* requirement, partial versions widen a
comparator (``>1.2`` means ``>=1.3.0``), and a pre-release version only
matches a requirement that names the same ``MAJOR.MINOR.PATCH`` with a
pre-release of its own.  Spec section 7.8 gives the table implemented here.
Versions and their ordering (including pre-release precedence) come from the
``semver`` package; this module only parses requirements and applies them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import semver

__all__ = ["VersionReq", "InvalidRequirement", "parse_version"]


class InvalidRequirement(ValueError):
    """The text is not a valid version requirement."""


def parse_version(text: str) -> semver.Version:
    """A strict semver version (``MAJOR.MINOR.PATCH[-pre][+build]``); ``ValueError`` if not."""
    if text != text.strip():
        raise ValueError(f"{text!r} has surrounding whitespace")
    return semver.Version.parse(text)


_NUMBER = r"0|[1-9][0-9]*"
_WILD = r"\*|x|X"
_IDENT = r"[0-9A-Za-z-]+"
_COMPARATOR = re.compile(
    rf"^(?P<op>=|>=|<=|>|<|~|\^)?\s*"
    rf"(?P<major>{_NUMBER}|{_WILD})"
    rf"(?:\.(?P<minor>{_NUMBER}|{_WILD})"
    rf"(?:\.(?P<patch>{_NUMBER}|{_WILD})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?)?)?$")


@dataclass(frozen=True)
class Comparator:
    """One comparator: an operator and a possibly partial version.

    ``minor``/``patch`` are ``None`` when left out or given as a wildcard.
    ``op`` is one of ``= > >= < <= ~ ^`` or ``*`` (a wildcard comparator).
    """

    op: str
    major: int | None
    minor: int | None
    patch: int | None
    pre: str | None

    def _full(self) -> semver.Version:
        assert self.major is not None and self.minor is not None and self.patch is not None
        return semver.Version(self.major, self.minor, self.patch, self.pre)

    def matches(self, v: semver.Version) -> bool:
        """Whether ``v`` (build metadata ignored) satisfies this comparator."""
        op, major, minor, patch = self.op, self.major, self.minor, self.patch
        if op == "*":
            return ((major is None or v.major == major)
                    and (minor is None or v.minor == minor))
        assert major is not None
        if op == "=":
            return self._prefix_equal(v)
        if op in (">", "<="):
            if minor is None:
                greater = v.major > major
            elif patch is None:
                greater = (v.major, v.minor) > (major, minor)
            else:
                greater = _bare(v).compare(self._full()) > 0
            return greater if op == ">" else not greater
        if op in (">=", "<"):
            if minor is None:
                less = v.major < major
            elif patch is None:
                less = (v.major, v.minor) < (major, minor)
            else:
                less = _bare(v).compare(self._full()) < 0
            return not less if op == ">=" else less
        if op == "~":
            if minor is None:
                return v.major == major
            if patch is None:
                return (v.major, v.minor) == (major, minor)
            return ((v.major, v.minor) == (major, minor)
                    and _bare(v).compare(self._full()) >= 0)
        # caret
        if v.major != major:
            return False
        if minor is None:
            return True
        if patch is None:
            return v.minor >= minor if major > 0 else v.minor == minor
        if major > 0:
            return v.minor >= minor and _bare(v).compare(self._full()) >= 0
        if minor > 0:
            return v.minor == minor and _bare(v).compare(self._full()) >= 0
        return v.minor == minor and v.patch == patch and _bare(v).compare(self._full()) == 0

    def _prefix_equal(self, v: semver.Version) -> bool:
        if v.major != self.major:
            return False
        if self.minor is None:
            return True
        if v.minor != self.minor:
            return False
        if self.patch is None:
            return True
        return _bare(v).compare(self._full()) == 0

    def allows_prerelease_of(self, v: semver.Version) -> bool:
        """Whether this comparator opts pre-releases of ``v``'s ``MAJOR.MINOR.PATCH`` in."""
        return (self.pre is not None and self.patch is not None
                and (v.major, v.minor, v.patch) == (self.major, self.minor, self.patch))


def _bare(v: semver.Version) -> semver.Version:
    """``v`` without build metadata (which never takes part in matching)."""
    return v if v.build is None else v.replace(build=None)


def _number(text: str | None) -> int | None:
    if text is None or text in ("*", "x", "X"):
        return None
    return int(text)


def _comparator(text: str) -> Comparator:
    m = _COMPARATOR.match(text)
    if m is None:
        raise InvalidRequirement(f"invalid comparator {text!r}")
    op = m.group("op") or "^"
    parts = [m.group("major"), m.group("minor"), m.group("patch")]
    wild = [p is not None and p in ("*", "x", "X") for p in parts]
    if any(wild):
        first = wild.index(True)
        if any(p is not None and not w for p, w in zip(parts[first:], wild[first:])):
            raise InvalidRequirement(f"{text!r}: a number after a wildcard")
        if m.group("pre") is not None:
            raise InvalidRequirement(f"{text!r}: a pre-release after a wildcard")
        if op not in ("^", "="):
            raise InvalidRequirement(f"{text!r}: a wildcard cannot follow {op!r}")
        op = "*"
    return Comparator(op, _number(parts[0]), _number(parts[1]), _number(parts[2]),
                      m.group("pre"))


class VersionReq:
    """A parsed requirement: every comparator must hold."""

    def __init__(self, text: str) -> None:
        stripped = text.strip()
        if not stripped:
            raise InvalidRequirement("empty version requirement")
        self.text = text
        self.comparators = tuple(_comparator(part.strip()) for part in stripped.split(","))

    def matches(self, version: semver.Version) -> bool:
        """Whether ``version`` satisfies the requirement (Cargo's rules)."""
        if not all(c.matches(version) for c in self.comparators):
            return False
        if version.prerelease is None:
            return True
        return any(c.allows_prerelease_of(version) for c in self.comparators)

    def __repr__(self) -> str:
        return f"VersionReq({self.text!r})"
