"""Call WASI functions one at a time from Python, through the real wasm path.

``wasi_instance(wasi, backend)`` instantiates a module that imports every
``Wasi`` function (the WAT import list is generated from the class) and
re-exports each import under its own name, with one exported memory.  A
test writes arguments into ``inst.memory`` and calls e.g.
``inst.exports.fd_write(1, iovs, 1, nwritten)``: the call goes through
funk's generated wrapper on the chosen engine exactly as a guest's would.

``Scratch`` hands out guest memory for arguments (``put``, ``iovs``) and
out-pointers (``out``).
"""

from __future__ import annotations

import struct
from functools import cache
from typing import Any

import funk
from codegen.wat import emit_wat
from lunatic_api.wasi import Wasi

__all__ = ["wasi_module_wat", "wasi_instance", "Scratch"]

PAGES = 2


@cache
def wasi_module_wat() -> str:
    """A module importing and re-exporting every WASI function, with memory."""
    functions = funk.functions_of(Wasi)
    imports = emit_wat(functions).rstrip()
    assert imports.endswith(")")
    exports = "".join(f'  (export "{f.name}" (func ${f.namespace}.{f.name}))\n'
                      for f in functions)
    return imports[:-1] + f'  (memory (export "memory") {PAGES})\n' + exports + ")\n"


@cache
def _compiled(backend: str) -> funk.CompiledModule:
    return funk.compile(wasi_module_wat(), backend)


def wasi_instance(wasi: Wasi, backend: str) -> funk.Instance:
    """An instance with ``wasi`` linked in (module compiled once per engine)."""
    return _compiled(backend).instantiate([wasi])


class Scratch:
    """A bump allocator over guest memory, for arguments and out-pointers."""

    def __init__(self, inst: funk.Instance, start: int = 1024) -> None:
        self.inst = inst
        self.memory = inst.memory
        self.next = start

    def alloc(self, size: int, align: int = 8) -> int:
        """Reserve ``size`` bytes; returns their address."""
        addr = (self.next + align - 1) // align * align
        self.next = addr + max(size, 1)
        return addr

    def put(self, data: bytes) -> tuple[int, int]:
        """Copy ``data`` in; returns ``(ptr, len)``."""
        addr = self.alloc(len(data), 1)
        self.memory.write(addr, data)
        return addr, len(data)

    def iovs(self, *buffers: bytes | int) -> tuple[int, int, list[tuple[int, int]]]:
        """An iovec array: ``bytes`` are copied in, an ``int`` reserves that many bytes.

        Returns ``(iovs_ptr, count, [(buf_ptr, buf_len), ...])``.
        """
        slices = []
        for buf in buffers:
            if isinstance(buf, int):
                slices.append((self.alloc(buf, 1), buf))
            else:
                slices.append(self.put(buf))
        table = self.alloc(8 * len(slices), 4)
        for i, (ptr, length) in enumerate(slices):
            self.memory.pack("<II", table + 8 * i, ptr, length)
        return table, len(slices), slices

    def out(self, size: int = 8) -> int:
        """A zeroed out-pointer target of ``size`` bytes."""
        addr = self.alloc(size)
        self.memory.write(addr, bytes(size))
        return addr

    def u32(self, addr: int) -> int:
        """The u32 at ``addr``."""
        return int(self.memory.unpack("<I", addr)[0])

    def u64(self, addr: int) -> int:
        """The u64 at ``addr``."""
        return int(self.memory.unpack("<Q", addr)[0])

    def read(self, addr: int, size: int) -> bytes:
        """``size`` bytes at ``addr``."""
        return self.memory.read(addr, size)

    def unpack(self, fmt: str, addr: int) -> tuple[Any, ...]:
        """``struct.unpack`` at ``addr``."""
        return self.memory.unpack(fmt, addr)


def pack_subscription(userdata: int, tag: int, fd_or_clock: int, timeout: int = 0,
                      precision: int = 0, flags: int = 0) -> bytes:
    """A 48-byte ``subscription`` (``fd_or_clock`` is the clock id or the fd)."""
    return struct.pack("<QB7xIxxxxQQH6x", userdata, tag, fd_or_clock, timeout, precision, flags)
