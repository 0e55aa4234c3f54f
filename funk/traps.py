"""One spelling for traps and guest backtraces, whatever the engine.

wasmtime reports ``error while executing at wasm backtrace: ... Caused by:
wasm trap: integer divide by zero``; wasmer reports ``integer divide by
zero`` followed by ``at f (<module>[1]:0x82)`` lines.  Both name the same
trap kinds with the same words, so funk keeps just those words as the
``Trap`` message and renders every frame as ``name @ 0xOFFSET`` (``name`` is
the function's name from the name section, or ``<func N>``).
"""

from __future__ import annotations

import re

__all__ = ["frame_text", "wasmtime_message", "wasmer_message", "safe_text"]


def safe_text(value: object, as_repr: bool = False) -> str:
    """``str(value)`` (``repr`` with ``as_repr``), or a placeholder naming its type if
    that raises: host code's own ``__str__``/``__repr__`` must not turn a trap
    report into a second failure."""
    try:
        return repr(value) if as_repr else str(value)
    except Exception as exc:  # noqa: BLE001 - whatever a broken method raises
        how = "repr()" if as_repr else "str()"
        return f"<{type(value).__name__} object: {how} raised {type(exc).__name__}>"


def frame_text(name: str | None, index: int, offset: int | None) -> str:
    """A guest frame as funk shows it."""
    label = name if name and name != "<unnamed>" else f"<func {index}>"
    if offset is None or offset >= 1 << 32:  # wasmtime's marker for "no offset"
        return label
    return f"{label} @ 0x{offset:x}"


# wasmtime words that differ from wasmer's for the same trap kind
_CANONICAL = {"wasm `unreachable` instruction executed": "unreachable"}


def wasmtime_message(text: str) -> tuple[str, list[str]]:
    """(message, frames) of a wasmtime error/trap text."""
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "wasm trap: " in ln:
            words = ln.split("wasm trap: ", 1)[1]
            return _CANONICAL.get(words, words), []
    if "Caused by:" in text:
        cause = text.split("Caused by:", 1)[1].strip().splitlines()
        return (cause[0].strip() if cause else text.strip()), []
    return (lines[0] if lines else text.strip()), []


#: at most this many frames are kept (a runaway recursion yields ~500k on wasmer)
MAX_FRAMES = 64


def _cap(frames: list[str]) -> list[str]:
    if len(frames) <= MAX_FRAMES:
        return frames
    half = MAX_FRAMES // 2
    return frames[:half] + [f"... {len(frames) - MAX_FRAMES} more frames ..."] + frames[-half:]


_WASMER_FRAME = re.compile(r"^\s+at (.*?) \((.*)\[(\d+)\]:0x([0-9a-f]+)\)\s*$")


def wasmer_message(text: str) -> tuple[str, list[str]]:
    """(message, frames) of wasmer's ``RuntimeError`` text."""
    lines = text.splitlines() or [""]
    first = lines[0]
    if first.startswith("RuntimeError: "):
        first = first[len("RuntimeError: "):]
    frames = []
    for ln in lines[1:]:
        m = _WASMER_FRAME.match(ln)
        if m:
            frames.append(frame_text(m.group(1), int(m.group(3)), int(m.group(4), 16)))
    return first.strip(), _cap(frames)
