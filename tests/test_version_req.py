"""``lunatic_api.version_req``: Cargo-style version requirements (spec section 7.8).

Pure Python, no engine.  The table below is spec 7.8's (Rust ``semver`` 1.0
``VersionReq``): a bare version is a caret requirement, partial versions
widen comparators, wildcards, comma-separated conjunctions, the pre-release
rule (a pre-release only matches a comparator naming the same
``MAJOR.MINOR.PATCH`` with a pre-release of its own), build metadata ignored;
then what is rejected, ``parse_version``'s strictness, and a Hypothesis
property test against an independent range oracle for release versions.
"""

from __future__ import annotations

import pytest
import semver
from hypothesis import given, settings
from hypothesis import strategies as st

from lunatic_api.version_req import InvalidRequirement, VersionReq, parse_version

#: (requirement, version, matches)
TABLE = [
    # caret, explicit and default
    ("^1.2.3", "1.2.3", True), ("^1.2.3", "1.9.9", True), ("^1.2.3", "2.0.0", False),
    ("^1.2.3", "1.2.2", False), ("1.2.3", "1.5.0", True), ("1.2.3", "1.2.2", False),
    ("1.2.3", "2.0.0", False),
    ("^0.2.3", "0.2.3", True), ("^0.2.3", "0.2.9", True), ("^0.2.3", "0.3.0", False),
    ("^0.2.3", "0.2.2", False),
    ("^0.0.3", "0.0.3", True), ("^0.0.3", "0.0.4", False), ("^0.0.3", "0.0.2", False),
    ("^1.2", "1.2.0", True), ("^1.2", "1.9.0", True), ("^1.2", "1.1.9", False),
    ("^1.2", "2.0.0", False),
    ("^1", "1.0.0", True), ("^1", "1.99.99", True), ("^1", "2.0.0", False),
    ("^1", "0.9.9", False),
    ("^0", "0.0.0", True), ("^0", "0.9.9", True), ("^0", "1.0.0", False),
    ("^0.0", "0.0.7", True), ("^0.0", "0.1.0", False),
    ("^0.1", "0.1.5", True), ("^0.1", "0.2.0", False), ("0.1", "0.1.0", True),
    # tilde
    ("~1.2.3", "1.2.3", True), ("~1.2.3", "1.2.9", True), ("~1.2.3", "1.3.0", False),
    ("~1.2.3", "1.2.2", False),
    ("~1.2", "1.2.0", True), ("~1.2", "1.2.9", True), ("~1.2", "1.3.0", False),
    ("~1", "1.0.0", True), ("~1", "1.9.0", True), ("~1", "2.0.0", False),
    ("~0.2.3", "0.2.4", True), ("~0.2.3", "0.3.0", False),
    # exact and partial exact
    ("=1.2.3", "1.2.3", True), ("=1.2.3", "1.2.4", False), ("=1.2.3", "1.2.2", False),
    ("=1.2", "1.2.0", True), ("=1.2", "1.2.7", True), ("=1.2", "1.3.0", False),
    ("=1", "1.0.0", True), ("=1", "1.9.9", True), ("=1", "2.0.0", False),
    # comparisons with full and partial versions
    (">1.2.3", "1.2.4", True), (">1.2.3", "1.2.3", False),
    (">1.2", "1.3.0", True), (">1.2", "1.2.9", False),
    (">1", "2.0.0", True), (">1", "1.9.9", False),
    (">=1.2.3", "1.2.3", True), (">=1.2.3", "1.2.2", False),
    (">=1.2", "1.2.0", True), (">=1.2", "1.1.9", False),
    (">=1", "1.0.0", True), (">=1", "0.9.9", False),
    ("<1.2.3", "1.2.2", True), ("<1.2.3", "1.2.3", False),
    ("<1.2", "1.1.9", True), ("<1.2", "1.2.0", False),
    ("<1", "0.9.9", True), ("<1", "1.0.0", False),
    ("<=1.2.3", "1.2.3", True), ("<=1.2.3", "1.2.4", False),
    ("<=1.2", "1.2.9", True), ("<=1.2", "1.3.0", False),
    ("<=1", "1.9.9", True), ("<=1", "2.0.0", False),
    # wildcards
    ("*", "0.0.0", True), ("*", "123.4.5", True),
    ("x", "1.0.0", True), ("X", "1.0.0", True),
    ("1.*", "1.0.0", True), ("1.*", "1.9.9", True), ("1.*", "2.0.0", False),
    ("1.*", "0.9.0", False), ("1.x", "1.4.0", True),
    ("1.2.*", "1.2.0", True), ("1.2.*", "1.2.9", True), ("1.2.*", "1.3.0", False),
    ("1.2.X", "1.2.3", True), ("1.2.x", "1.1.0", False),
    # conjunctions (and whitespace around operators and commas)
    (">=1.2, <1.5", "1.4.9", True), (">=1.2, <1.5", "1.5.0", False),
    (">=1.2, <1.5", "1.1.0", False), (">= 1.2.0, < 2", "1.9.0", True),
    (">=1.0.0,<1.0.1", "1.0.0", True), ("^1.2, ~1.3", "1.3.5", True),
    ("^1.2, ~1.3", "1.2.5", False), (" ^1.2.3 ", "1.2.3", True),
    # pre-releases only match a comparator with the same MAJOR.MINOR.PATCH and a pre-release
    ("*", "1.0.0-alpha", False), ("^1", "1.1.0-alpha", False), ("1.*", "1.0.0-rc.1", False),
    (">=1.2.3-alpha", "1.2.3-beta", True), (">=1.2.3-alpha", "1.2.3", True),
    (">=1.2.3-alpha", "1.2.4-alpha", False), (">=1.2.3-alpha", "1.2.4", True),
    (">=1.2.3-beta", "1.2.3-alpha", False),
    ("^1.2.3-alpha.1", "1.2.3-alpha.2", True), ("^1.2.3-alpha.1", "1.2.3-alpha.0", False),
    ("^1.2.3-alpha.1", "1.2.3", True), ("^1.2.3-alpha.1", "1.3.0-alpha", False),
    ("^1.2.3-alpha.1", "1.3.0", True),
    ("=1.2.3-rc.1", "1.2.3-rc.1", True), ("=1.2.3-rc.1", "1.2.3-rc.2", False),
    ("=1.2.3-rc.1", "1.2.3", False),
    ("<1.2.3", "1.2.3-alpha", False), ("<1.2.3", "1.2.2", True),
    (">1.0.0-alpha, <1.0.0", "1.0.0-beta", True),
    ("~1.2.3-beta", "1.2.3-beta", True), ("~1.2.3-beta", "1.2.3-alpha", False),
    ("~1.2.3-beta", "1.2.9", True), ("~1.2.3-beta", "1.3.0", False),
    ("^2.0.0-rc.0", "2.0.0", True), ("^2.0.0-rc.0", "2.0.0-rc.5", True),
    ("^2.0.0-rc.0", "2.0.1-rc.5", False),
    ("=1.0.0-alpha.beta", "1.0.0-alpha.beta", True),
    ("=1.0.0-alpha.1", "1.0.0-alpha.beta", False),
    # build metadata takes no part
    ("=1.2.3", "1.2.3+build.7", True), (">1.2.3", "1.2.3+build", False),
    ("=1.2.3-alpha", "1.2.3-alpha+build", True), ("^1.2.3", "1.2.3+x", True),
    ("<=1.2.3", "1.2.3+zzz", True),
]


@pytest.mark.parametrize("requirement, version, expected", TABLE)
def test_requirement_table(requirement: str, version: str, expected: bool) -> None:
    """Spec 7.8's Cargo semantics, one row each."""
    assert VersionReq(requirement).matches(semver.Version.parse(version)) is expected


INVALID = [
    "", "   ", ",", "1.2.3,", ",1.2.3", "1.2.3.4", ">>1", "^", "~", "=", "<", ">=",
    "1.*.3", "*.1", "1.2.*-alpha", "01.2", "1.02", "1.2.03", "v1.2.3", "a.b.c", "~>1.2",
    "1 || 2", "1.2 - 2.0", "1.2.3-", "1.2.3-alpha..1", "^-1", "1.2.3 4", "!1", "==1.2.3",
]


@pytest.mark.parametrize("requirement", INVALID)
def test_invalid_requirements_are_rejected(requirement: str) -> None:
    """Malformed requirements raise ``InvalidRequirement`` (a ``ValueError``); the empty
    string is invalid, not "anything"."""
    with pytest.raises(InvalidRequirement):
        VersionReq(requirement)
    assert issubclass(InvalidRequirement, ValueError)


@pytest.mark.parametrize("text", ["1.0.0", "0.0.0", "10.20.30", "1.2.3-alpha.1",
                                  "1.2.3+build.5", "1.2.3-rc.1+b.2", "1.0.0-0A.is.legal"])
def test_parse_version_accepts_strict_semver(text: str) -> None:
    """``MAJOR.MINOR.PATCH`` with optional pre-release and build."""
    assert str(parse_version(text)) == text


@pytest.mark.parametrize("text", ["1.0", "1", "v1.0.0", "01.0.0", "1.01.0", "1.0.00",
                                  "1.0.0 ", " 1.0.0", "", "1.0.0-", "1.0.0+", "1.0.0-01",
                                  "1.0.0.0", "^1.0.0", "*", "1.0.0-al pha"])
def test_parse_version_rejects_the_rest(text: str) -> None:
    """No missing parts, leading ``v``, leading zeros, whitespace or operators."""
    with pytest.raises(ValueError):
        parse_version(text)


# ---------------------------------------------------------------------------
# property: release versions against an independent range oracle

Triple = tuple[int, int, int]
Bounds = tuple[Triple | None, Triple | None]


def oracle_bounds(op: str, parts: list[int]) -> Bounds:
    """``[lo, hi)`` of release triples that one comparator allows (Cargo's rules)."""
    n = len(parts)
    major = parts[0]
    minor = parts[1] if n > 1 else 0
    patch = parts[2] if n > 2 else 0
    exact = (major, minor, patch)
    # the first triple above everything the (partial) version names
    above = {1: (major + 1, 0, 0), 2: (major, minor + 1, 0), 3: (major, minor, patch + 1)}[n]
    if op == "=":
        return exact, above
    if op == ">":
        return above, None
    if op == ">=":
        return exact, None
    if op == "<":
        return None, exact
    if op == "<=":
        return None, above
    if op == "~":
        return exact, (major + 1, 0, 0) if n == 1 else (major, minor + 1, 0)
    # caret (also no operator)
    if n == 1 or major > 0:
        return exact, (major + 1, 0, 0)
    if n == 2 or minor > 0:
        return exact, (0, minor + 1, 0)
    return exact, (0, 0, patch + 1)


def oracle(comparators: list[tuple[str, list[int]]], version: Triple) -> bool:
    """Whether every comparator's range holds ``version``."""
    for op, parts in comparators:
        lo, hi = oracle_bounds(op, parts)
        if lo is not None and version < lo:
            return False
        if hi is not None and version >= hi:
            return False
    return True


small = st.integers(min_value=0, max_value=3)
comparator = st.tuples(st.sampled_from(["", "^", "~", "=", ">", ">=", "<", "<="]),
                       st.lists(small, min_size=1, max_size=3))


@settings(max_examples=400, deadline=None)
@given(st.lists(comparator, min_size=1, max_size=3), st.tuples(small, small, small))
def test_release_versions_match_like_the_range_oracle(
        comparators: list[tuple[str, list[int]]], version: Triple) -> None:
    """For release versions, a requirement is the intersection of each comparator's
    ``[lo, hi)`` range (spec 7.8's table, computed independently)."""
    text = ", ".join(op + ".".join(map(str, parts)) for op, parts in comparators)
    got = VersionReq(text).matches(semver.Version(*version))
    expected = oracle([(op or "^", parts) for op, parts in comparators], version)
    assert got is expected, text


@settings(max_examples=200, deadline=None)
@given(st.lists(comparator, min_size=1, max_size=3), st.tuples(small, small, small),
       st.sampled_from(["alpha", "rc.1", "0"]))
def test_pre_releases_never_match_requirements_without_one(
        comparators: list[tuple[str, list[int]]], version: Triple, pre: str) -> None:
    """No comparator has a pre-release, so no pre-release version matches."""
    text = ", ".join(op + ".".join(map(str, parts)) for op, parts in comparators)
    assert not VersionReq(text).matches(semver.Version(*version, prerelease=pre))


@settings(max_examples=200, deadline=None)
@given(st.tuples(small, small, small), st.sampled_from(["", "alpha.1", "rc"]),
       st.sampled_from(["", "build.1"]))
def test_every_version_matches_itself(version: Triple, pre: str, build: str) -> None:
    """``=v``, ``^v`` (also bare ``v``), ``~v``, ``>=v`` and ``<=v`` match ``v`` (build
    metadata is not part of a requirement, and ignored on the version)."""
    core = ".".join(map(str, version)) + (f"-{pre}" if pre else "")
    v = semver.Version.parse(core + (f"+{build}" if build else ""))
    for op in ("=", "^", "", "~", ">=", "<="):
        assert VersionReq(op + core).matches(v), op + core
    assert VersionReq("*").matches(v) is (not pre)


# ---------------------------------------------------------------------------
# edge cases where Rust ``semver`` 1.0.4 (the crate v0.6.0 uses) is the reference

CARGO_ACCEPTS = [
    # build metadata is allowed in a comparator and ignored
    ("=0.1.0+meta", "0.1.0+any", True), ("^1.2.3+build", "1.5.0", True),
    # a wildcard after an explicit operator just makes the version partial
    (">=1.*", "1.0.0", True), (">=1.*", "0.9.9", False), ("<1.x", "0.9.0", True),
    ("<1.x", "1.0.0", False), ("~1.2.*", "1.2.9", True), ("~1.2.*", "1.3.0", False),
    (">= 1.*", "2.0.0", True),
]


@pytest.mark.parametrize("requirement, version, expected", CARGO_ACCEPTS)
def test_requirements_cargo_accepts(requirement: str, version: str, expected: bool) -> None:
    """semver 1.0.4 parses these (``parse.rs``: ``+build`` skipped; ``op`` kept with
    ``minor``/``patch`` left out when a wildcard follows an explicit operator)."""
    assert VersionReq(requirement).matches(semver.Version.parse(version)) is expected


CARGO_REJECTS = [
    "1.2.3, *", "*, 1.2.3", "^*", "=*", "*.*", "x.x",  # "*" only as the whole requirement
    "=1.0.0-01",                                         # numeric pre-release, leading zero
    "18446744073709551616",                              # more than u64
    "\t1.2.3",                                           # only spaces are skipped
    ", ".join([">=1"] * 33),                             # at most 32 comparators
]


@pytest.mark.parametrize("requirement", CARGO_REJECTS)
def test_requirements_cargo_rejects(requirement: str) -> None:
    """semver 1.0.4 raises for each of these, so ``lookup`` would answer 1."""
    with pytest.raises(InvalidRequirement):
        VersionReq(requirement)


def test_parse_version_rejects_numbers_above_u64() -> None:
    """``MAJOR``/``MINOR``/``PATCH`` are u64 in Rust semver."""
    with pytest.raises(ValueError):
        parse_version("18446744073709551616.0.0")
