"""Str: (ptr, len) of UTF-8 text; the host gets a str; invalid UTF-8 or a bad range traps."""

from __future__ import annotations

import pytest

import funk
from tests.guest import guest
from tests.hosts import TestHost as Host

TEXT = "banana split à la carte: ☃ 𝄞"
TEXT_BYTES = TEXT.encode()

WAT = guest(
    '(func (export "count_a") (param i32 i32) (result i32)'
    '  (call $test.count_a (local.get 0) (local.get 1)))',
    '(func (export "upper") (param i32 i32 i32 i32) (result i32)'
    '  (call $test.upper (local.get 0) (local.get 1) (local.get 2) (local.get 3)))',
    # grows memory by one page, copies `len` bytes from `src` to the new page, counts there
    '(func (export "count_a_in_new_page") (param $src i32) (param $len i32) (result i32)'
    '  (local $dst i32)'
    '  (local.set $dst (i32.mul (memory.grow (i32.const 1)) (i32.const 65536)))'
    '  (memory.copy (local.get $dst) (local.get $src) (local.get $len))'
    '  (call $test.count_a (local.get $dst) (local.get $len)))',
    data=[(16, TEXT_BYTES), (256, b"ab\xffa"), (300, b"aa\xe2\x98")],
)


def make(backend: str) -> tuple[funk.Instance, Host]:
    host = Host()
    return funk.instantiate(WAT, [host], backend=backend), host


def test_ascii_and_unicode_text(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.count_a(16, len(TEXT_BYTES)) == TEXT.count("a")
    assert host.seen["str"] == TEXT
    assert type(host.seen["str"]) is str


def test_prefix_of_text(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.count_a(16, 6) == 3
    assert host.seen["str"] == "banana"


def test_text_written_by_python(backend: str) -> None:
    inst, host = make(backend)
    inst.memory.write(1000, "Ωmega alpha".encode())
    assert inst.exports.count_a(1000, len("Ωmega alpha".encode())) == 3
    assert host.seen["str"] == "Ωmega alpha"


def test_empty_string(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.count_a(0, 0) == 0
    assert host.seen["str"] == ""
    # an empty range exactly at the end of memory is still inside it
    assert inst.exports.count_a(65536, 0) == 0
    assert host.seen["str"] == ""


def test_string_up_to_end_of_memory(backend: str) -> None:
    inst, host = make(backend)
    inst.memory.write(65536 - 3, b"aaa")
    assert inst.exports.count_a(65536 - 3, 3) == 3
    assert host.seen["str"] == "aaa"


def test_invalid_utf8_traps(backend: str) -> None:
    inst, host = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.count_a(256, 4)
    assert info.value.message == ("test.count_a: parameter 'words' is not valid UTF-8 "
                                  "(invalid start byte at byte 2)")
    assert info.value.function == "test.count_a"
    assert "str" not in host.seen  # the host method never ran


def test_truncated_utf8_traps(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.count_a(300, 4)
    assert info.value.message == ("test.count_a: parameter 'words' is not valid UTF-8 "
                                  "(unexpected end of data at byte 2)")


def test_out_of_bounds_range_traps(backend: str) -> None:
    inst, host = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.count_a(65530, 7)
    assert info.value.message == ("test.count_a: parameter 'words': range [0xfffa, 0x10001) "
                                  "is outside guest memory of 65536 bytes")
    assert info.value.function == "test.count_a"
    assert "str" not in host.seen


def test_range_does_not_wrap_around_32_bits(backend: str) -> None:
    inst, host = make(backend)
    # ptr 0xFFFFFFFF (the guest's -1) + len 2 would wrap to 1 in 32-bit arithmetic
    with pytest.raises(funk.Trap) as info:
        inst.exports.count_a(-1, 2)
    assert info.value.message == ("test.count_a: parameter 'words': range "
                                  "[0xffffffff, 0x100000001) is outside guest memory "
                                  "of 65536 bytes")
    with pytest.raises(funk.Trap, match="parameter 'words': range"):
        inst.exports.count_a(16, -1)
    assert "str" not in host.seen


def test_text_in_grown_memory(backend: str) -> None:
    inst, host = make(backend)
    assert inst.exports.count_a_in_new_page(16, len(TEXT_BYTES)) == TEXT.count("a")
    assert host.seen["str"] == TEXT
    assert inst.memory.size == 2 * 65536
    assert inst.memory.read(65536, len(TEXT_BYTES)) == TEXT_BYTES


def test_str_and_mutbytes_together(backend: str) -> None:
    inst, _ = make(backend)
    inst.memory.write(2000, "héllo wörld".encode())
    n = len("héllo wörld".encode())
    assert inst.exports.upper(2000, n, 3000, 64) == n
    assert inst.memory.read(3000, n) == "HÉLLO WÖRLD".encode()
    assert inst.memory.read(3000 + n, 4) == b"\0\0\0\0"


def test_upper_truncates_to_out_length(backend: str) -> None:
    inst, _ = make(backend)
    inst.memory.write(2000, b"abcdef")
    inst.memory.write(3000, b"......")
    assert inst.exports.upper(2000, 6, 3000, 4) == 4
    assert inst.memory.read(3000, 6) == b"ABCD.."


def test_trap_message_identical_on_both_engines() -> None:
    messages = []
    for backend in ("wasmtime", "wasmer"):
        inst, _ = make(backend)
        with pytest.raises(funk.Trap) as info:
            inst.exports.count_a(256, 4)
        messages.append(str(info.value))
    assert messages[0] == messages[1]
