"""Exceptions raised by funk.

``Trap`` is the one exception type a Python caller of a guest export sees when
the guest call aborts, whatever the engine.  ``DefinitionError`` is raised at
decoration time when a host API cannot be lowered to wasm.  ``LinkError`` is
raised at instantiation when imports and host functions do not fit together.
"""

from __future__ import annotations

from collections.abc import Sequence


class FunkError(Exception):
    """Base class of every error funk raises itself."""


class DefinitionError(FunkError, TypeError):
    """A host-API class cannot be turned into wasm imports (bad annotation, ...).

    Raised by ``@host_functions`` while the class is being decorated, so a
    mistake surfaces at import time of the user's module, not at the first call.
    """


class LinkError(FunkError):
    """A module's imports cannot be satisfied by the host objects given."""


class CompileError(FunkError):
    """The bytes or text given are not a valid wasm module for this engine."""


class Trap(FunkError):
    """A guest call was aborted.

    Raised by host code to abort the guest (``raise Trap("bad fd")``) and raised
    to the Python caller of an export whenever the guest traps, on both engines.

    Attributes:
        message: the trap's text.
        function: ``"namespace.name"`` of the host function that trapped, if the
            trap came from host code.
        frames: the guest backtrace as text lines, where the engine gives one.
    """

    def __init__(self, message: str, *, function: str | None = None,
                 frames: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.function = function
        self.frames: list[str] = list(frames)

    def __str__(self) -> str:
        if not self.frames:
            return self.message
        return self.message + "\nguest backtrace:\n" + "\n".join(
            "  " + f for f in self.frames)
