"""``lunatic::error``: rendering and dropping error resources (spec section 3)."""

from __future__ import annotations

import funk
from funk import Caller, export
from funk.types import u32, u64
from lunatic_api.context import LunaticError, ProcessContext
from lunatic_api.scheduler import HOST_STACK_MARGIN

__all__ = ["ErrorApi", "NAMESPACE"]

NAMESPACE = "lunatic::error"


@funk.host_functions(namespace=NAMESPACE)
class ErrorApi:
    """Error resources of one process: text size, text, drop.  Unknown ids trap."""

    #: wasmer runs these methods on the wasm stack: trap the guest rather than run
    #: them with less native stack than this left (``funk.stack``)
    __funk_stack_reserve__ = HOST_STACK_MARGIN

    def __init__(self, context: ProcessContext) -> None:
        self.context = context

    def _get(self, error_id: int) -> LunaticError:
        error: LunaticError = self.context.errors.get(error_id)
        return error

    def string_size(self, error_id: u64) -> u32:
        """Length in bytes of the error's UTF-8 text."""
        return len(self._get(error_id).data)

    def to_string(self, error_id: u64, out_ptr: u32, caller: Caller) -> None:
        """Write the text (exactly ``string_size`` bytes, no terminator) at ``out_ptr``."""
        caller.memory.write(out_ptr, self._get(error_id).data)

    @export("drop")
    def drop_error(self, error_id: u64) -> None:
        """Release the error (a second drop traps)."""
        self.context.errors.take(error_id)
