"""Handle[T]: u64 ids in a per-instance, per-kind table; never reused; unknown ids trap."""

from __future__ import annotations

import pytest

import funk
from tests.guest import guest
from tests.hosts import Blob, Status
from tests.hosts import TestHost as Host

WAT = guest(
    '(func (export "open_blob") (param i32 i32) (result i64)'
    '  (call $test.open_blob (local.get 0) (local.get 1)))',
    '(func (export "blob_len") (param i64) (result i32) (call $test.blob_len (local.get 0)))',
    '(func (export "blob_read") (param i64 i32 i32) (result i32)'
    '  (call $test.blob_read (local.get 0) (local.get 1) (local.get 2)))',
    '(func (export "close_blob") (param i64) (result i32) (call $test.close_blob (local.get 0)))',
    '(func (export "open_two") (param i32 i32 i32) (result i32)'
    '  (call $test.open_two (local.get 0) (local.get 1) (local.get 2)))',
    # open a blob and immediately ask its length: the id flows guest-internally
    '(func (export "open_and_len") (param i32 i32) (result i32)'
    '  (call $test.blob_len (call $test.open_blob (local.get 0) (local.get 1))))',
    # open_two, then use the id the host wrote at the out-pointer
    '(func (export "open_two_and_len") (param i32 i32 i32) (result i32)'
    '  (drop (call $test.open_two (local.get 0) (local.get 1) (local.get 2)))'
    '  (call $test.blob_len (i64.load (local.get 2))))',
    data=[(100, b"first blob"), (200, b"second"), (300, b"3")],
)


def make(backend: str) -> tuple[funk.Instance, Host]:
    host = Host()
    return funk.instantiate(WAT, [host], backend=backend), host


def test_ids_count_from_zero(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.open_blob(100, 10) == 0
    assert inst.exports.open_blob(200, 6) == 1
    assert inst.exports.open_blob(300, 1) == 2
    assert inst.exports.blob_len(0) == 10
    assert inst.exports.blob_len(1) == 6
    assert inst.exports.blob_len(2) == 1


def test_table_holds_the_host_objects(backend: str) -> None:
    inst, _ = make(backend)
    inst.exports.open_blob(100, 10)
    inst.exports.open_blob(200, 6)
    table = inst.resources[Blob]
    assert len(table) == 2
    assert [rid for rid, _ in table.items()] == [0, 1]
    assert isinstance(table.get(0), Blob)
    assert table.get(0).data == b"first blob"
    assert table.get(1).data == b"second"


def test_blob_read_into_guest_memory(backend: str) -> None:
    inst, _ = make(backend)
    rid = inst.exports.open_blob(100, 10)
    assert inst.exports.blob_read(rid, 1000, 5) == 5
    assert inst.memory.read(1000, 6) == b"first\0"
    assert inst.exports.blob_read(rid, 2000, 64) == 10
    assert inst.memory.read(2000, 10) == b"first blob"


def test_unknown_id_traps_naming_the_kind(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.blob_len(0)
    assert info.value.message == "unknown Blob handle 0"
    assert info.value.function == "test.blob_len"
    inst.exports.open_blob(100, 10)
    with pytest.raises(funk.Trap) as info:
        inst.exports.blob_len(99)
    assert info.value.message == "unknown Blob handle 99"


def test_negative_id_is_read_as_u64(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.blob_len(-1)
    assert info.value.message == "unknown Blob handle 18446744073709551615"


def test_close_via_caller_and_ids_never_reused(backend: str) -> None:
    inst, _ = make(backend)
    a = inst.exports.open_blob(100, 10)
    b = inst.exports.open_blob(200, 6)
    blob_b = inst.resources[Blob].get(b)
    assert inst.exports.close_blob(b) == Status.ok
    assert blob_b.closed is True
    assert b not in inst.resources[Blob]
    with pytest.raises(funk.Trap, match=r"^unknown Blob handle 1$"):
        inst.exports.blob_len(b)
    # closing twice traps too
    with pytest.raises(funk.Trap) as info:
        inst.exports.close_blob(b)
    assert info.value.message == "unknown Blob handle 1"
    assert info.value.function == "test.close_blob"
    # a new blob gets a fresh id, not the freed one
    c = inst.exports.open_blob(300, 1)
    assert (a, b, c) == (0, 1, 2)
    assert inst.exports.blob_len(a) == 10
    assert inst.exports.blob_len(c) == 1
    # closing every handle still never reuses ids
    inst.exports.close_blob(a)
    inst.exports.close_blob(c)
    assert len(inst.resources[Blob]) == 0
    assert inst.exports.open_blob(100, 1) == 3


def test_open_and_use_inside_guest(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.open_and_len(200, 6) == 6
    assert inst.exports.open_and_len(100, 10) == 10
    assert len(inst.resources[Blob]) == 2


def test_handle_through_out_pointer(backend: str) -> None:
    inst, _ = make(backend)
    inst.memory.write(4096, b"\xaa" * 16)
    assert inst.exports.open_two(200, 6, 4096) == Status.ok
    assert inst.memory.read(4096, 8) == (0).to_bytes(8, "little")
    assert inst.memory.read(4104, 8) == b"\xaa" * 8  # nothing beyond the u64
    assert inst.exports.open_blob(100, 10) == 1  # same table as open_blob
    assert inst.exports.open_two(300, 1, 4104) == Status.ok
    assert inst.memory.unpack("<QQ", 4096) == (0, 2)
    assert inst.resources[Blob].get(2).data == b"3"


def test_out_pointer_handle_used_by_guest(backend: str) -> None:
    inst, _ = make(backend)
    assert inst.exports.open_two_and_len(100, 10, 512) == 10
    assert inst.memory.unpack("<Q", 512) == (0,)


def test_out_pointer_out_of_bounds_traps_before_opening(backend: str) -> None:
    inst, _ = make(backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.open_two(200, 6, 65536 - 4)
    assert info.value.message == ("test.open_two: parameter 'result1': range [0xfffc, 0x10004) "
                                  "is outside guest memory of 65536 bytes")
    assert len(inst.resources[Blob]) == 0


def test_tables_are_per_instance(backend: str) -> None:
    one, _ = make(backend)
    two, _ = make(backend)
    assert one.exports.open_blob(100, 10) == 0
    assert one.exports.open_blob(100, 10) == 1
    assert two.exports.open_blob(200, 6) == 0
    assert two.exports.blob_len(0) == 6
    assert one.exports.blob_len(0) == 10
    with pytest.raises(funk.Trap, match="unknown Blob handle 1"):
        two.exports.blob_len(1)


def test_close_instance_clears_tables(backend: str) -> None:
    inst, _ = make(backend)
    inst.exports.open_blob(100, 10)
    table = inst.resources[Blob]
    assert len(table) == 1
    inst.close()
    assert len(table) == 0
