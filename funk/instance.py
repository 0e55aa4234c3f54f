"""Instances as Python sees them: the per-instance ``Caller`` and ``Instance``.

``Caller`` is the state generated wrappers reach on every host call (memory,
bound host methods, resource tables, the exception a host function raised).
A host method may ask for it with a parameter annotated ``Caller``.

``Instance`` is what ``funk.instantiate`` returns: callable exports, the guest
memory and a way to close it.  The engine-specific parts live in
``funk.backends``; this module only fixes the behaviour both must share, in
particular how an aborted guest call becomes one ``Trap``.
"""

from __future__ import annotations

import struct
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from funk.errors import Trap
from funk.memory import DURING_START, GuestMemory, MissingMemory
from funk.resources import Resources
from funk.traps import safe_text

__all__ = ["Caller", "Instance", "Exports", "ExportFunction"]

# errors that mean "the returned value cannot become the declared wasm values"
_CONVERSION_ERRORS = (TypeError, ValueError, OverflowError, struct.error)


class Caller:
    """Per-instance context handed to host code.

    Attributes a host method (parameter annotated ``Caller``) may use:

    * ``memory``: the guest's ``GuestMemory``;
    * ``resources``: the instance's resource tables (``Handle[T]`` lives here);
    * ``instance``: the ``Instance`` (to call back into the guest);
    * ``data``: a free slot for the embedder (Lunatic keeps its process here).
    """

    __slots__ = ("memory", "methods", "hosts", "resources", "_instance", "pending",
                 "pending_message", "data")

    def __init__(self, methods: list[Callable[..., Any]], hosts: list[Any]) -> None:
        self.memory: GuestMemory = MissingMemory(DURING_START)
        #: bound host methods, indexed by the slot the wrappers were generated with
        self.methods = methods
        #: the host object behind each slot (custom lowerings receive it)
        self.hosts = hosts
        self.resources = Resources()
        # weak: the engine holds the wrappers that hold this Caller, so a strong
        # reference back to the Instance would make a cycle through native code
        # that Python's collector cannot free
        self._instance: Callable[[], Instance | None] = _no_instance
        #: exception raised by host code during the current guest call
        self.pending: BaseException | None = None
        self.pending_message = ""
        self.data: Any = None

    @property
    def instance(self) -> Instance | None:
        """The ``Instance`` (``None`` once it has been dropped)."""
        return self._instance()

    @instance.setter
    def instance(self, value: Instance | None) -> None:
        self._instance = _no_instance if value is None else weakref.ref(value)

    def fail(self, exc: BaseException, function: str,
             frame: dict[str, Any] | None = None) -> str:
        """Record an exception raised by host code; return the trap message.

        Called by generated wrappers, with their ``locals()``: if the host
        method had already returned (``result`` is bound), the failure is in
        converting what it returned, and the message says so.  The exception
        is re-raised (or wrapped in ``Trap``) to the Python caller of the
        export once the guest has unwound, so the engine only carries text.

        It must not raise: on wasmtime it runs in a C callback, where an
        exception leaves the callback's result undefined (wasmtime then frees
        a trap that does not exist and the interpreter aborts).  So host
        code's own ``__str__``/``__repr__`` are called through ``safe_text``.
        """
        if isinstance(exc, Trap):
            if exc.function is None:
                exc.function = function
            message = safe_text(exc.message)
        elif frame is not None and "result" in frame and isinstance(exc, _CONVERSION_ERRORS):
            message = (f"{function}: host function returned "
                       f"{safe_text(frame['result'], as_repr=True)}, which does not fit its "
                       f"wasm result type ({safe_text(exc)})")
        else:
            message = f"{function}: host function raised {type(exc).__name__}: {safe_text(exc)}"
        if self.pending is None:
            self.pending = exc
            self.pending_message = message
        return message


def _no_instance() -> None:
    return None


def raise_trap(caller: Caller, message: str, frames: Sequence[str]) -> None:
    """Raise what the Python caller of an export sees after a guest trap.

    If host code caused the trap, its exception wins: a ``Trap`` is re-raised
    itself (with the guest backtrace added where the engine reports one; for
    traps raised by host code neither engine does today); ``BaseException``s that are not
    ``Exception``s (``KeyboardInterrupt``, ``SystemExit``, WASI's exit) pass
    through untouched; any other exception becomes the ``__cause__`` of a new
    ``Trap``.  Otherwise the guest itself trapped and gets a plain ``Trap``.
    """
    exc = caller.pending
    if exc is None:
        raise Trap(message, frames=frames)
    message = caller.pending_message
    caller.pending = None
    if isinstance(exc, Trap):
        if not exc.frames:
            exc.frames = list(frames)
        raise exc
    if not isinstance(exc, Exception):
        raise exc
    function = message.split(":", 1)[0]
    raise Trap(message, function=function, frames=frames) from exc


_INT_RANGE = {"i32": (-(1 << 31), (1 << 32) - 1), "i64": (-(1 << 63), (1 << 64) - 1)}
_NUMBER_TYPES = frozenset(("i32", "i64", "f32", "f64"))


class ExportFunction:
    """A guest export, callable from Python with numbers.

    ``params``/``results`` give its wasm type.  Calling it returns ``None``,
    one value, or a tuple for multi-value results; a trap raises ``Trap``.
    Integer arguments may be given in signed or unsigned spelling.
    """

    def __init__(self, instance: Any, name: str, func: Any, params: tuple[str, ...],
                 results: tuple[str, ...]) -> None:
        self.name = name
        self.params = params
        self.results = results
        self._instance = instance  # strong: a kept export keeps its instance alive
        self._func = func
        #: value types Python cannot pass (v128, references): calling it is refused
        self._unsupported = [t for t in params + results if t not in _NUMBER_TYPES]

    def _check_args(self, args: Sequence[Any]) -> None:
        """Reject value types Python cannot pass (v128, references), a wrong arity,
        non-ints for integer types and out-of-range ints."""
        if self._unsupported:
            raise TypeError(f"export {self.name} uses value types {self._unsupported} that "
                            "funk cannot pass from Python")
        if len(args) != len(self.params):
            raise TypeError(f"export {self.name} takes {len(self.params)} arguments "
                            f"({', '.join(self.params)}), got {len(args)}")
        for index, (valtype, value) in enumerate(zip(self.params, args)):
            bounds = _INT_RANGE.get(valtype)
            if bounds is None:
                continue
            if not isinstance(value, int):
                raise TypeError(f"export {self.name}: argument {index} must be an int for "
                                f"{valtype}, not {type(value).__name__}")
            if not bounds[0] <= value <= bounds[1]:
                raise OverflowError(f"export {self.name}: argument {index} ({value}) does "
                                    f"not fit {valtype}")

    def __call__(self, *args: Any) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        res = ", ".join(self.results)
        return f"<export {self.name}({', '.join(self.params)}) -> ({res})>"


class Exports:
    """Attribute and item access to an instance's exports.

    Functions come back as ``ExportFunction``; a memory export as
    ``GuestMemory``.  ``names()`` lists everything the module exports.
    """

    def __init__(self, instance: Instance, names: Sequence[str]) -> None:
        # strong: ``funk.instantiate(...).exports`` alone keeps the instance alive
        self._instance = instance
        self._names = tuple(names)

    def __getitem__(self, name: str) -> Any:
        if name not in self._names:
            raise KeyError(f"the module has no export named {name!r}")
        return self._instance._export(name)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self[name]
        except KeyError as exc:
            raise AttributeError(str(exc)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def names(self) -> tuple[str, ...]:
        """Names of every export of the module."""
        return self._names

    def get(self, name: str, default: Any = None) -> Any:
        """The export, or ``default`` if there is none of that name."""
        return self[name] if name in self._names else default


class Instance:
    """An instantiated module with its host objects linked in.

    ``exports`` calls into the guest; ``memory`` is the guest's exported
    ``memory`` (a ``MissingMemory`` if it exports none); ``caller`` is the
    per-instance context host functions share; ``hosts`` the host objects.
    A wasmer instance belongs to the thread that created it (``CompiledModule.thread_bound``);
    a wasmtime instance may be handed to another thread, used by one at a time.
    """

    backend: str

    def __init__(self, caller: Caller, hosts: Sequence[Any]) -> None:
        self.caller = caller
        self.hosts = tuple(hosts)
        caller.instance = self
        self._export_names: tuple[str, ...] = ()

    @property
    def exports(self) -> Exports:
        """The module's exports (functions are callable, ``memory`` is a ``GuestMemory``).

        Export objects keep the instance alive; the instance keeps no
        reference to them, so dropping everything frees it at once.
        """
        return Exports(self, self._export_names)

    @property
    def memory(self) -> GuestMemory:
        """The guest's linear memory (bounds-checked accessors)."""
        return self.caller.memory

    @property
    def resources(self) -> Resources:
        """The instance's resource tables."""
        return self.caller.resources

    def _export(self, name: str) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        """Release the instance: memory access traps from now on, resources drop.

        Also done when the instance is garbage-collected, so that views handed
        out earlier can never reach freed memory.
        """
        self.caller.memory.close()
        self.caller.resources.clear()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __enter__(self) -> Instance:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
