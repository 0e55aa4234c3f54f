"""Turning what a user passes as "wasm" into module bytes.

``instantiate`` and ``compile`` accept binary bytes, WAT text (``str`` or
bytes), or a path (``str`` or ``os.PathLike``) to a ``.wasm`` or ``.wat``
file.  WAT is translated with wasmtime's ``wat2wasm`` for both engines, so
both see the very same binary.
"""

from __future__ import annotations

import os
from typing import Union

from funk.errors import CompileError

__all__ = ["WasmSource", "to_wasm_bytes"]

WasmSource = Union[bytes, bytearray, memoryview, str, "os.PathLike[str]"]

_MAGIC = b"\0asm"


def _wat2wasm(text: str | bytes) -> bytes:
    import wasmtime

    try:
        return bytes(wasmtime.wat2wasm(text))
    except wasmtime.WasmtimeError as exc:
        raise CompileError(f"invalid WAT: {exc}") from None


def to_wasm_bytes(source: WasmSource) -> bytes:
    """The module binary for ``source`` (see module docstring)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data.startswith(_MAGIC):
            return data
        if data.lstrip()[:1] in (b"(", b";"):
            return _wat2wasm(data)
        raise CompileError("not a wasm module: bytes do not start with \\0asm and are not WAT")
    if isinstance(source, str) and source.lstrip()[:1] in ("(", ";"):
        return _wat2wasm(source)
    path = os.fspath(source)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise CompileError(f"cannot read {path}: {exc.strerror or exc}") from None
    if data.startswith(_MAGIC):
        return data
    if data.lstrip()[:1] in (b"(", b";"):
        return _wat2wasm(data)
    raise CompileError(f"{path} is not a wasm module (no \\0asm header) and not WAT text")
