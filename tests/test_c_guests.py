"""C guests calling ``TestHost`` through the generated header, on every engine.

The guests are ``tests/guests/c/*.c``, compiled by ``scripts/build-guests``
(clang, wasm32-wasi reactors) into the committed ``tests/guests/wasm/*.wasm``
that these tests load; no compiler is needed to run them.  ``check_*``
exports return 0 or the source line of their first failing check; ``call_*``
exports return one host result for the test to compare exactly.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Any

import pytest

import funk
from funk import Trap
from tests import hosts
from tests.hosts import Blob, Point, Stat, Status

GUESTS = Path(__file__).resolve().parent / "guests"
C_DIR = GUESTS / "c"
WASM_DIR = GUESTS / "wasm"
REBUILD = "run scripts/build-guests and commit tests/guests/wasm/"


def wasm_path(name: str) -> Path:
    path = WASM_DIR / f"{name}.wasm"
    assert path.is_file(), f"{path.relative_to(GUESTS.parent.parent)} is missing: {REBUILD}"
    return path


def load(name: str, backend: str, host: Any = None) -> tuple[funk.Instance, hosts.TestHost]:
    """Instantiate guest ``name`` with a (fresh) TestHost and run its reactor init."""
    host = host if host is not None else hosts.TestHost()
    inst = funk.instantiate(wasm_path(name), [host], backend=backend)
    inst.exports["_initialize"]()
    return inst, host


def c_sources() -> list[str]:
    return sorted(p.stem for p in C_DIR.glob("*.c"))


# the committed binaries -----------------------------------------------------------

def test_every_c_guest_has_a_committed_wasm() -> None:
    sources = c_sources()
    assert sources, "no C guests found"
    missing = [f"{n}.wasm" for n in sources if not (WASM_DIR / f"{n}.wasm").is_file()]
    assert not missing, f"no committed binary for {missing}: {REBUILD}"
    orphans = sorted(p.name for p in WASM_DIR.glob("*.wasm") if p.stem not in sources)
    assert not orphans, f"binaries without a C source in tests/guests/c: {orphans}"
    for name in sources:
        assert wasm_path(name).read_bytes()[:8] == b"\0asm\x01\0\0\0", name


@pytest.mark.parametrize("name", c_sources())
def test_guest_imports_match_testhost_signatures(name: str, backend: str) -> None:
    """Only funk namespaces are imported (no WASI), each with TestHost's exact signature."""
    module = funk.compile(wasm_path(name), backend=backend)
    expected = {(f.namespace, f.name): (tuple(f.wasm_params), tuple(f.wasm_results))
                for f in funk.functions_of(hosts.TestHost)}
    assert module.imports, name
    for imp in module.imports:
        assert imp.kind == "func", imp
        assert (imp.namespace, imp.name) in expected, f"{name} imports {imp}"
        assert (imp.params, imp.results) == expected[imp.namespace, imp.name], imp
    assert "memory" in module.exports and "_initialize" in module.exports


# host_calls.c --------------------------------------------------------------------

CHECKS = ["check_scalars", "check_fill", "check_upper", "check_scatter", "check_ptr_u64",
          "check_swap_point", "check_status", "check_divmod", "check_make_stat", "check_wide",
          "check_memory_size", "check_handles"]


def test_every_check_is_listed(backend: str) -> None:
    inst, _ = load("host_calls", backend)
    assert sorted(n for n in inst.exports.names() if n.startswith("check_")) == sorted(CHECKS)


@pytest.mark.parametrize("check", CHECKS)
def test_c_check(check: str, backend: str) -> None:
    inst, _ = load("host_calls", backend)
    line = inst.exports[check]()
    assert line == 0, f"{check} failed at tests/guests/c/host_calls.c:{line}"


def test_scalars_from_python(backend: str) -> None:
    e = load("host_calls", backend)[0].exports
    assert e.call_add(40, 2) == 42
    assert e.call_add(2**31 - 1, 1) == -2**31
    assert e.call_add64(2**62, 2**62) == -2**63
    assert e.call_add64(-1, -2) == -3
    assert e.call_mul_f(1.5, 2.25) == 3.375
    assert e.call_renamed(5) == 15


def test_str_from_c_string(backend: str) -> None:
    inst, host = load("host_calls", backend)
    assert inst.exports.call_count_a() == 6
    assert host.seen["str"] == "a banana for a cat"


def test_bytes_checksum(backend: str) -> None:
    inst, host = load("host_calls", backend)
    assert inst.exports.call_checksum() == zlib.crc32(b"hello, funk")
    assert host.seen["readonly"] is True


def test_gather_ciovec_array(backend: str) -> None:
    inst, host = load("host_calls", backend)
    assert inst.exports.call_gather() == 9
    assert host.seen["gather"] == b"gathered!"
    assert host.seen["readonly"] is True


def test_record_read_through_ptr(backend: str) -> None:
    inst, host = load("host_calls", backend)
    assert inst.exports.call_stat_at() == 2**40 + 5
    assert host.seen["stat"] == Stat(kind=3, size=2**40 + 5, mode=0o755, origin=Point(-2, 9))


def test_status_enum(backend: str) -> None:
    e = load("host_calls", backend)[0].exports
    assert [e.call_status(int(s)) for s in Status] == [0, 1, 2]


def test_color_custom_type(backend: str) -> None:
    inst, host = load("host_calls", backend)
    assert inst.exports.call_mix(0x102030, 0x304050) == 0x203040
    assert inst.exports.call_mix(0xFFFFFF, 0x000001) == 0x7F7F80
    host.palette_size = 0x100
    with pytest.raises(Trap, match="outside the palette"):
        inst.exports.call_mix(0x100, 0)


def test_handle_left_open_is_in_resources(backend: str) -> None:
    inst, _ = load("host_calls", backend)
    h = inst.exports.call_open_blob()
    blob = inst.resources[Blob].get(h)
    assert blob.data == b"kept" and not blob.closed
    assert inst.exports.call_blob_len(h) == 4
    assert len(inst.resources[Blob]) == 1


def test_handles_closed_by_guest(backend: str) -> None:
    inst, _ = load("host_calls", backend)
    assert inst.exports.check_handles() == 0
    assert len(inst.resources[Blob]) == 0


# traps.c ------------------------------------------------------------------------

def test_trap_with_c_string_message(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap) as info:
        e.raise_trap()
    assert info.value.message == "stopped by the C guest"
    assert info.value.function == "test.trap"


def test_host_exception(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap, match="failure 3") as info:
        e.raise_error(3)
    assert isinstance(info.value.__cause__, ValueError)


def test_interrupt_passes_through(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(KeyboardInterrupt):
        e.raise_interrupt()


@pytest.mark.parametrize("kind", range(5))
def test_bad_result(kind: int, backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap, match="does not fit its wasm result type") as info:
        e.bad_result(kind)
    assert info.value.function == "test.bad_result"


def test_range_outside_memory(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap, match="parameter 'data'.*outside guest memory") as info:
        e.out_of_bounds()
    assert info.value.function == "test.checksum"


def test_misaligned_ptr_is_read(backend: str) -> None:
    """wasm allows unaligned access, and so does funk's Ptr[u64]."""
    e = load("traps", backend)[0].exports
    assert e.misaligned_u64() == 0x0807060504030201


def test_use_after_close(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap, match="unknown Blob handle"):
        e.use_after_close()


def test_invalid_status(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap, match="not a valid Status"):
        e.bad_status(9)


def test_color_outside_palette(backend: str) -> None:
    e = load("traps", backend)[0].exports
    with pytest.raises(Trap, match="color 0x1000000 outside the palette"):
        e.bad_color(1 << 24)
