"""The WASI host's ABI: exactly preview1's 46 functions, with wasmtime's signatures.

wasmtime's own WASI implements the witx signatures; a module importing every
``Wasi`` function with the types funk derived from our annotations must link
against it.  A wrong parameter (say ``u32`` where preview1 has ``u64``) fails
here, not in a guest.
"""

from __future__ import annotations

import pytest
import wasmtime

import funk
from codegen.wat import emit_wat
from lunatic_api.wasi import Wasi
from tests.wasi_support import link_with_native_wasi

PREVIEW1 = {
    "args_get", "args_sizes_get", "environ_get", "environ_sizes_get", "clock_res_get",
    "clock_time_get", "fd_advise", "fd_allocate", "fd_close", "fd_datasync", "fd_fdstat_get",
    "fd_fdstat_set_flags", "fd_fdstat_set_rights", "fd_filestat_get", "fd_filestat_set_size",
    "fd_filestat_set_times", "fd_pread", "fd_prestat_get", "fd_prestat_dir_name", "fd_pwrite",
    "fd_read", "fd_readdir", "fd_renumber", "fd_seek", "fd_sync", "fd_tell", "fd_write",
    "path_create_directory", "path_filestat_get", "path_filestat_set_times", "path_link",
    "path_open", "path_readlink", "path_remove_directory", "path_rename", "path_symlink",
    "path_unlink_file", "poll_oneoff", "proc_exit", "proc_raise", "sched_yield", "random_get",
    "sock_accept", "sock_recv", "sock_send", "sock_shutdown",
}


def test_exactly_the_preview1_functions() -> None:
    functions = funk.functions_of(Wasi)
    assert {f.namespace for f in functions} == {"wasi_snapshot_preview1"}
    assert {f.name for f in functions} == PREVIEW1
    assert len(functions) == 46


def test_every_signature_links_against_wasmtimes_own_wasi() -> None:
    wat = emit_wat(funk.functions_of(Wasi)).rstrip()[:-1] + '(memory (export "memory") 1))'
    assert link_with_native_wasi(wat) == 46  # raises on any signature mismatch


def test_a_wrong_signature_would_be_caught() -> None:
    """The check above has teeth: one i32 too few fails to link."""
    wat = ('(module (import "wasi_snapshot_preview1" "fd_write" '
           '(func (param i32 i32 i32) (result i32))))')
    with pytest.raises(wasmtime.WasmtimeError):
        link_with_native_wasi(wat)
