"""Reference driver: graphviz.wasm under wasmtime-py's own WASI (no funk).

``tests/test_graphviz.py`` compares funk + ``lunatic_api.wasi`` renders with
this driver's byte for byte, and ``bench/wasi.py`` times it as the baseline.
It drives the guest with the same protocol as ``examples/graphviz_svg.py``
(see that module's docstring) through plain wasmtime-py calls: a default
``wasmtime.Engine``, ``Linker.define_wasi()`` and a ``WasiConfig`` with no
files or environment (standard streams discarded).  Like the funk driver, it reuses one
instance and replaces it after any failure.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import cast

import wasmtime

__all__ = ["NativeGraphviz", "NativeGraphvizError", "big_graph"]


class NativeGraphvizError(Exception):
    """``graphviz_render`` returned 0; the message is ``graphviz_last_error``'s."""


def big_graph(nodes: int = 300, cross_every: int = 5) -> str:
    """A labelled binary tree of ``nodes`` nodes plus dashed cross edges.

    With the defaults Graphviz's ``dot`` lays it out in about 0.1 s natively:
    big enough to time, small enough for a test.
    """
    lines = ["digraph big {", "  node [shape=box];"]
    lines += [f'  n{(i - 1) // 2} -> n{i} [label="e{i}"];' for i in range(1, nodes)]
    lines += [f"  n{i} -> n{(i * 17 + 11) % nodes} [style=dashed];"
              for i in range(0, nodes, cross_every)]
    lines.append("}")
    return "\n".join(lines) + "\n"


class NativeGraphviz:
    """graphviz.wasm on wasmtime-py with ``Linker.define_wasi()``."""

    def __init__(self, wasm: str | Path) -> None:
        self._engine = wasmtime.Engine()
        self._module = wasmtime.Module.from_file(self._engine, str(wasm))
        self._linker = wasmtime.Linker(self._engine)
        self._linker.define_wasi()
        self._store: wasmtime.Store | None = None
        self._exports: dict[str, wasmtime.Func] = {}
        self._memory: wasmtime.Memory | None = None

    def _fresh(self) -> None:
        config = wasmtime.WasiConfig()
        config.argv = ["graphviz"]
        store = wasmtime.Store(self._engine)
        store.set_wasi(config)
        exports = self._linker.instantiate(store, self._module).exports(store)
        self._store = store
        self._memory = cast(wasmtime.Memory, exports["memory"])
        self._exports = {name: cast(wasmtime.Func, exports[name]) for name in (
            "malloc", "free", "graphviz_render", "graphviz_free", "graphviz_last_error")}

    def render(self, dot: str, fmt: str = "svg", engine: str = "dot") -> bytes:
        """Render ``dot``; raise ``NativeGraphvizError`` when Graphviz fails."""
        if self._store is None:
            self._fresh()
        store, memory, fn = self._store, self._memory, self._exports
        assert store is not None and memory is not None
        parts = [s.encode("utf-8") + b"\0" for s in (dot, fmt, engine)]
        strings = b"".join(parts)
        len_at = (len(strings) + 3) & ~3
        ok = False
        try:
            block = fn["malloc"](store, len_at + 4)
            try:
                memory.write(store, strings, block)
                fmt_at = block + len(parts[0])
                result = fn["graphviz_render"](store, block, fmt_at, fmt_at + len(parts[1]),
                                               block + len_at)
                if result == 0:
                    at = fn["graphviz_last_error"](store)
                    raw = memory.read(store, at, min(at + 65536, memory.data_len(store)))
                    raise NativeGraphvizError(bytes(raw).split(b"\0", 1)[0].decode())
                (length,) = struct.unpack("<I", memory.read(store, block + len_at,
                                                            block + len_at + 4))
                out = bytes(memory.read(store, result, result + length))
                fn["graphviz_free"](store, result)
                ok = True
                return out
            finally:
                fn["free"](store, block)
        finally:
            if not ok:
                self._store = None

    def close(self) -> None:
        """Drop the instance (a later render makes a new one)."""
        self._store = None
