"""How much native stack the current thread has left, cheaply.

Why: wasmer runs a guest's wasm frames and the Python frames of the host
functions it calls on the same native stack, with no limit of its own but
the thread's guard page.  When a deep wasm recursion leaves a host call too
little stack, the overflow happens *inside Python code*, and wasmer turns it
into a trap by unwinding straight through the Python frames: locks they hold
stay held, the interpreter's recursion counter leaks.  A host class that must
never run short (one that takes locks) declares how much it needs
(``STACK_RESERVE_ATTR``); the wasmer backend then checks ``remaining()``
before each of its calls and traps the guest cleanly instead.  (wasmtime
bounds wasm itself with ``max_wasm_stack``, leaving the rest to the host.)

Python has no way to read the stack pointer, so this module makes one: four
(x86-64) or eight (arm64) bytes of machine code, ``return the stack
pointer``, in an executable page, called through ctypes (~0.13 us).  The
thread's lowest usable address comes from ``pthread_getattr_np`` once per
thread.  Where either is unavailable (another CPU, a system refusing
executable memory), ``remaining()`` is ``None`` and nothing is checked.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import platform
import threading
from collections.abc import Callable

__all__ = ["STACK_RESERVE_ATTR", "remaining", "stack_pointer", "stack_reserve_of"]

STACK_RESERVE_ATTR = "__funk_stack_reserve__"
"""Class attribute of a host class: bytes of native stack its methods need (wasmer checks it)."""

_CODE = {
    "x86_64": bytes((0x48, 0x89, 0xE0, 0xC3)),                          # mov rax, rsp; ret
    "aarch64": bytes((0xE0, 0x03, 0x00, 0x91, 0xC0, 0x03, 0x5F, 0xD6)),  # mov x0, sp; ret
}
_CODE["amd64"] = _CODE["x86_64"]
_CODE["arm64"] = _CODE["aarch64"]

_PTHREAD_ATTR_SIZE = 128  # glibc's pthread_attr_t is 56 bytes (64-bit); room to spare


def _make_stack_pointer() -> tuple[Callable[[], int], mmap.mmap] | None:
    code = _CODE.get(platform.machine().lower())
    if code is None:
        return None
    try:
        page = mmap.mmap(-1, mmap.PAGESIZE,
                         prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except (OSError, AttributeError, ValueError):  # W^X policy, or not a POSIX mmap
        return None
    page.write(code)
    address = ctypes.addressof(ctypes.c_char.from_buffer(page))
    # PYFUNCTYPE: called with the GIL held.  A CFUNCTYPE call releases it, and
    # on wasmer (which runs wasm holding it) that made every guarded host call
    # a point where another thread could take the GIL from the guest.
    function = ctypes.PYFUNCTYPE(ctypes.c_size_t)(address)
    return function, page  # the page must live as long as the function


def _make_thread_low() -> Callable[[], int | None] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None)
        getattr_np = libc.pthread_getattr_np
        getstack = libc.pthread_attr_getstack
        destroy = libc.pthread_attr_destroy
        self_ = libc.pthread_self
    except (OSError, AttributeError):  # not glibc/musl
        return None
    self_.restype = ctypes.c_ulong
    getattr_np.argtypes = [ctypes.c_ulong, ctypes.c_void_p]
    getstack.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p),
                         ctypes.POINTER(ctypes.c_size_t)]

    def low() -> int | None:
        attr = ctypes.create_string_buffer(_PTHREAD_ATTR_SIZE)
        if getattr_np(self_(), attr) != 0:
            return None
        try:
            base = ctypes.c_void_p()
            size = ctypes.c_size_t()
            if getstack(attr, ctypes.byref(base), ctypes.byref(size)) != 0:
                return None
            return base.value
        finally:
            destroy(attr)

    return low


_made = _make_stack_pointer()
_thread_low = _make_thread_low() if _made is not None else None


class _PerThread(threading.local):
    low: int | None = None
    known = False


_per_thread = _PerThread()


def stack_pointer() -> int | None:
    """The current native stack pointer, or ``None`` where it cannot be read."""
    return _made[0]() if _made is not None else None


def remaining() -> int | None:
    """Bytes of native stack left below the caller in this thread (``None``: unknown)."""
    if _made is None or _thread_low is None:
        return None
    state = _per_thread
    if not state.known:
        state.low = _thread_low()
        state.known = True
    low = state.low
    if low is None:
        return None
    return _made[0]() - low


def stack_reserve_of(cls: type) -> int:
    """The stack reserve a host class declares (``STACK_RESERVE_ATTR``), 0 if none."""
    reserve = getattr(cls, STACK_RESERVE_ATTR, 0)
    if not isinstance(reserve, int) or reserve < 0:
        raise TypeError(f"{cls.__qualname__}.{STACK_RESERVE_ATTR} must be a number of bytes, "
                        f"not {reserve!r}")
    return reserve
