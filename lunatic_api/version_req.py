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


_U64_MAX = (1 << 64) - 1
MAX_COMPARATORS = 32
"""Rust ``semver`` refuses requirements with more comparators."""


def parse_version(text: str) -> semver.Version:
    """A strict semver version (``MAJOR.MINOR.PATCH[-pre][+build]``); ``ValueError`` if not.

    As in Rust's ``semver``, the three numbers must fit in 64 bits.
    """
    if text != text.strip():
        raise ValueError(f"{text!r} has surrounding whitespace")
    version = semver.Version.parse(text)
    if max(version.major, version.minor, version.patch) > _U64_MAX:
        raise ValueError(f"{text!r}: a number does not fit in 64 bits")
    return version


_NUMBER = r"0|[1-9][0-9]*"
_WILD = r"\*|x|X"
_IDENT = r"[0-9A-Za-z-]+"
_COMPARATOR = re.compile(
    rf"^(?P<op>=|>=|<=|>|<|~|\^)? *"
    rf"(?P<major>{_NUMBER}|{_WILD})"
    rf"(?:\.(?P<minor>{_NUMBER}|{_WILD})"
    rf"(?:\.(?P<patch>{_NUMBER}|{_WILD})"
    rf"(?:-(?P<pre>{_IDENT}(?:\.{_IDENT})*))?"
    rf"(?:\+(?P<build>{_IDENT}(?:\.{_IDENT})*))?)?)?$")


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
    """One comparator, with Rust ``semver`` 1.0.4's rules.

    A wildcard ends the version (nothing but wildcards may follow it).
    Without an operator it is a wildcard comparator (``1.2.*``); after an
    explicit operator it only makes the version partial (``>=1.*`` is
    ``>=1``).  A leading wildcard is only valid as the whole requirement.
    Build metadata is accepted and ignored.
    """
    m = _COMPARATOR.match(text)
    if m is None:
        raise InvalidRequirement(f"invalid comparator {text!r}")
    explicit = m.group("op")
    parts = [m.group("major"), m.group("minor"), m.group("patch")]
    wild = [p is not None and p in ("*", "x", "X") for p in parts]
    if wild[0]:
        raise InvalidRequirement(f"{text!r}: a wildcard major version is only valid as the "
                                 "whole requirement")
    if any(wild):
        first = wild.index(True)
        if any(p is not None and not w for p, w in zip(parts[first:], wild[first:])):
            raise InvalidRequirement(f"{text!r}: a number after a wildcard")
        if m.group("pre") is not None or m.group("build") is not None:
            raise InvalidRequirement(f"{text!r}: a pre-release or build after a wildcard")
    pre = m.group("pre")
    if pre is not None:
        for ident in pre.split("."):
            if ident.isdigit() and len(ident) > 1 and ident[0] == "0":
                raise InvalidRequirement(f"{text!r}: numeric pre-release identifier {ident!r} "
                                         "has a leading zero")
    numbers = [_number(p) for p in parts]
    if any(n is not None and n > _U64_MAX for n in numbers):
        raise InvalidRequirement(f"{text!r}: a number does not fit in 64 bits")
    op = explicit or ("*" if any(wild) else "^")
    return Comparator(op, numbers[0], numbers[1], numbers[2], pre)


class VersionReq:
    """A parsed requirement: every comparator must hold."""

    def __init__(self, text: str) -> None:
        stripped = text.strip(" ")  # only spaces separate tokens, as in Rust's semver
        if not stripped:
            raise InvalidRequirement("empty version requirement")
        self.text = text
        if stripped in ("*", "x", "X"):
            self.comparators: tuple[Comparator, ...] = (Comparator("*", None, None, None, None),)
            return
        parts = stripped.split(",")
        if len(parts) > MAX_COMPARATORS:
            raise InvalidRequirement(f"more than {MAX_COMPARATORS} comparators")
        self.comparators = tuple(_comparator(part.strip(" ")) for part in parts)

    def matches(self, version: semver.Version) -> bool:
        """Whether ``version`` satisfies the requirement (Cargo's rules)."""
        if not all(c.matches(version) for c in self.comparators):
            return False
        if version.prerelease is None:
            return True
        return any(c.allows_prerelease_of(version) for c in self.comparators)

    def __repr__(self) -> str:
        return f"VersionReq({self.text!r})"
