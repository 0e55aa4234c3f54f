"""Emit a WAT module that imports every host function with its exact signature.

The same definitions that drive the wrappers drive this text, so a module
produced here always links against those host classes.  ``wat/all_imports.wat``
has this form; ``python -m codegen --wat`` regenerates it for comparison.
"""

from __future__ import annotations

from collections.abc import Iterable

from funk.signature import HostFunction

__all__ = ["emit_wat", "wat_id", "func_type"]


def func_type(fn: HostFunction) -> str:
    """``(param ...) (result ...)`` of a host function, as WAT."""
    parts = []
    if fn.wasm_params:
        parts.append("(param " + " ".join(fn.wasm_params) + ")")
    if fn.wasm_results:
        parts.append("(result " + " ".join(fn.wasm_results) + ")")
    return " ".join(parts)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ID_OK = set("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
             "!#$%&'*+-./:<=>?@\\^_`|~")


def wat_id(fn: HostFunction) -> str:
    """The ``$namespace.name`` identifier the emitted module gives an import."""
    return "$" + "".join(c if c in _ID_OK else "_" for c in f"{fn.namespace}.{fn.name}")


def emit_wat(functions: Iterable[HostFunction], header: str = "") -> str:
    """A ``(module ...)`` importing each function, grouped by namespace."""
    lines: list[str] = []
    if header:
        lines.extend(";; " + ln if ln else ";;" for ln in header.splitlines())
    lines.append("(module")
    last_ns = None
    for fn in sorted(functions, key=lambda f: (f.namespace, f.name)):
        if fn.namespace != last_ns:
            if last_ns is not None:
                lines.append("")
            lines.append(f"  ;; {fn.namespace}")
            last_ns = fn.namespace
        names = " ".join(fn.wasm_param_names())
        comment = f"  ;; {names}" if names else ""
        ftype = func_type(fn)
        lines.append(f"  (import {_quote(fn.namespace)} {_quote(fn.name)} "
                     f"(func {wat_id(fn)}{' ' + ftype if ftype else ''})){comment}")
    lines.append(")")
    return "\n".join(lines) + "\n"
