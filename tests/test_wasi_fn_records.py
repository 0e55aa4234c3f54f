"""WASI record layouts (sizes and offsets from the witx) and the ``Guest`` helper itself."""

from __future__ import annotations

import struct

import pytest

from funk.records import record_layout
from lunatic_api.wasi import Errno, Wasi
from lunatic_api.wasi.abi import (
    Dirent,
    Event,
    EventFdReadwrite,
    Fdstat,
    Filestat,
    Prestat,
    Subscription,
    SubscriptionClock,
    SubscriptionU,
)
from tests.wasi_fn_support import EVENT_FMT, FDSTAT_FMT, FILESTAT_FMT, Guest

# --------------------------------------------------------------------------- record layouts


def offsets(cls: type) -> dict[str, int]:
    return {f.name: f.offset for f in record_layout(cls).fields}


@pytest.mark.parametrize("cls, size, align", [
    (Fdstat, 24, 8), (Filestat, 64, 8), (Prestat, 8, 4), (Dirent, 24, 8),
    (SubscriptionClock, 32, 8), (SubscriptionU, 40, 8), (Subscription, 48, 8),
    (EventFdReadwrite, 16, 8), (Event, 32, 8),
])
def test_record_sizes(cls: type, size: int, align: int) -> None:
    layout = record_layout(cls)
    assert (layout.size, layout.align) == (size, align)


def test_record_field_offsets_match_witx() -> None:
    assert offsets(Fdstat) == {"fs_filetype": 0, "fs_flags": 2, "fs_rights_base": 8,
                               "fs_rights_inheriting": 16}
    assert offsets(Filestat) == {"dev": 0, "ino": 8, "filetype": 16, "nlink": 24, "size": 32,
                                 "atim": 40, "mtim": 48, "ctim": 56}
    assert offsets(Prestat) == {"tag": 0, "pr_name_len": 4}
    assert offsets(Dirent) == {"d_next": 0, "d_ino": 8, "d_namlen": 16, "d_type": 20}
    assert offsets(SubscriptionClock) == {"id": 0, "timeout": 8, "precision": 16, "flags": 24}
    assert offsets(SubscriptionU) == {"tag": 0, "clock": 8}
    assert offsets(Subscription) == {"userdata": 0, "u": 8}
    assert offsets(EventFdReadwrite) == {"nbytes": 0, "flags": 8}
    assert offsets(Event) == {"userdata": 0, "error": 8, "type": 10, "fd_readwrite": 16}


def test_record_write_matches_c_layout() -> None:
    """Writing a record puts each field where a C guest reads it."""
    buf = bytearray(64)
    record_layout(Filestat).write(buf, 0, Filestat(1, 2, 4, 3, 5, 6, 7, 8))
    assert struct.unpack(FILESTAT_FMT, buf) == (1, 2, 4, 3, 5, 6, 7, 8)
    buf = bytearray(32)
    record_layout(Event).write(buf, 0, Event(0x1122334455667788, 28, 1,
                                             EventFdReadwrite(99, 1)))
    assert struct.unpack(EVENT_FMT, buf) == (0x1122334455667788, 28, 1, 99, 1)
    buf = bytearray(24)
    record_layout(Fdstat).write(buf, 0, Fdstat(4, 0x11, 1 << 40, 3))
    assert struct.unpack(FDSTAT_FMT, buf) == (4, 0x11, 1 << 40, 3)


def test_guest_helper_roundtrip(backend: str) -> None:
    """The helpers themselves decode what the wrappers write."""
    out = bytearray()
    g = Guest(Wasi(stdout=out), backend)
    assert g.write(1, b"ab", b"", b"c") == (Errno.success, 3)
    assert out == b"abc"
