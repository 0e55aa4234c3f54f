"""The wasmtime backend, on the C API's fast paths.

* Host functions are defined with ``wasmtime_linker_define_func_unchecked``:
  the callback reads and writes a raw ``wasmtime_val_raw_t`` array, about 15x
  cheaper than wasmtime-py's ``Linker.define_func``.
* Linking is done once per (module, host classes, filter): the linker and an
  ``InstancePre`` are cached, so an instance costs a store plus
  ``wasmtime_instance_pre_instantiate``.  Because one callback serves every
  instance, the calling instance's ``Caller`` is found through a thread-local
  that each export call sets (and restores, so nested calls work).
* Exports are called with ``wasmtime_func_call_unchecked``.
* Traps raised by host code are *not* carried through wasmtime-py's global
  "last exception" (unsafe with threads): the wrapper records the exception
  on its ``Caller`` and returns a trap carrying only the message.
* The engine is configured with ``memory_may_move = False`` so a cached view
  of linear memory stays valid while it grows (see ``funk.memory``).
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from ctypes import POINTER, byref
from typing import Any

import wasmtime
from wasmtime import _ffi as ffi

from funk.backends.base import Backend, CompiledModule
from funk.errors import CompileError, LinkError, Trap
from funk.generate import factories
from funk.instance import Caller, ExportFunction, Instance, raise_trap
from funk.linking import ImportSpec, LinkPlan
from funk.memory import GuestMemory, MissingMemory
from funk.traps import _cap, frame_text, wasmtime_message

__all__ = ["BACKEND", "WasmtimeBackend", "engine", "_tls", "_trap"]


class _CallerSlot(threading.local):
    #: a class attribute, so every thread starts with ``None`` (an attribute
    #: set on the instance at import time would exist in the main thread only)
    caller: Caller | None = None


#: ``_tls.caller`` is the ``Caller`` of the instance whose export runs on this thread
_tls = _CallerSlot()

_NULL_FINALIZER = ctypes.cast(0, ctypes.CFUNCTYPE(None, ctypes.c_void_p))

_memoryview_at = ctypes.pythonapi.PyMemoryView_FromMemory
_memoryview_at.restype = ctypes.py_object
_memoryview_at.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t, ctypes.c_int)
_PyBUF_WRITE = 0x200


def _trap(message: str) -> int:
    """A new wasmtime trap with ``message``, as the callback's return value."""
    data = message.encode("utf-8", "replace")
    ptr = ffi.wasmtime_trap_new(ctypes.create_string_buffer(data), len(data))
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


def _make_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    # Linear memory never moves while growing, so views of it stay valid.
    config.memory_may_move = False
    return wasmtime.Engine(config)


_engine: wasmtime.Engine | None = None
_engine_lock = threading.Lock()


def engine() -> wasmtime.Engine:
    """The process-wide wasmtime engine funk compiles with."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = _make_engine()
    return _engine


def _valtypes(types: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(t) for t in types)


def _frames(trap: wasmtime.Trap) -> list[str]:
    return _cap([frame_text(f.func_name, f.func_index, f.module_offset)
                 for f in trap.frames or ()])


def _stub(qualname: str) -> Callable[..., int]:
    message = f"host function {qualname} is not allowed in this environment"

    def stub(env: Any, raw_caller: Any, args: Any, nargs: int) -> int:
        # Recorded on the Caller like any host trap, so the Python caller gets
        # a Trap whose ``function`` names the stub, as on wasmer.
        caller = _tls.caller
        assert caller is not None  # set by every export call and instantiation
        return _trap(caller.fail(Trap(message, function=qualname), qualname))

    return stub


class _Prepared:
    """Linker products shared by every instance of one module + plan."""

    def __init__(self, plan: LinkPlan, pre: Any, callbacks: list[Any], linker: Any) -> None:
        self.plan = plan
        self.pre = pre
        self.callbacks = callbacks  # ctypes callbacks must outlive the linker
        self.linker = linker


class WasmtimeModule(CompiledModule):
    """A module compiled by wasmtime."""

    def __init__(self, backend: WasmtimeBackend, wasm: bytes) -> None:
        super().__init__()
        self.backend = backend
        self.wasm = wasm
        try:
            self.module = wasmtime.Module(engine(), wasm)
        except wasmtime.WasmtimeError as exc:
            raise CompileError(f"wasmtime cannot compile the module: {exc}") from None
        imports = []
        for imp in self.module.imports:
            ty = imp.type
            if isinstance(ty, wasmtime.FuncType):
                imports.append(ImportSpec(imp.module, imp.name or "", "func",
                                          _valtypes(ty.params), _valtypes(ty.results)))
            else:
                kind = {wasmtime.MemoryType: "memory", wasmtime.TableType: "table",
                        wasmtime.GlobalType: "global"}.get(type(ty), "other")
                imports.append(ImportSpec(imp.module, imp.name or "", kind))
        self.imports = tuple(imports)
        self.exports = tuple(e.name for e in self.module.exports)

    def _prepare(self, plan: LinkPlan) -> _Prepared:
        linker = wasmtime.Linker(engine())
        callbacks = []
        for slot, entry in enumerate(plan.entries):
            fn = entry.function
            if entry.allowed:
                py_cb = factories(fn.owner, "wasmtime")[fn.qualname](slot)
            else:
                py_cb = _stub(fn.qualname)
            cb = ffi.wasmtime_func_unchecked_callback_t(py_cb)
            callbacks.append(cb)
            ty = wasmtime.FuncType([_VALTYPE[t]() for t in fn.wasm_params],
                                   [_VALTYPE[t]() for t in fn.wasm_results])
            ns = entry.imp.namespace.encode()
            name = entry.imp.name.encode()
            err = ffi.wasmtime_linker_define_func_unchecked(
                linker.ptr(), ns, len(ns), name, len(name), ty.ptr(), cb, None, _NULL_FINALIZER)
            if err:
                raise LinkError(f"wasmtime refused {fn.qualname}: "
                                f"{wasmtime.WasmtimeError._from_ptr(err)}")
        try:
            pre = linker.instantiate_pre(self.module)
        except wasmtime.WasmtimeError as exc:
            raise LinkError(f"cannot link module: {exc}") from None
        return _Prepared(plan, pre, callbacks, linker)

    def _instantiate(self, prepared: _Prepared, hosts: Sequence[Any]) -> Instance:
        caller = prepared.plan.bind(hosts)
        store = wasmtime.Store(engine())
        context = store._context()
        raw = ffi.wasmtime_instance_t()
        trap = POINTER(ffi.wasm_trap_t)()
        prev = _tls.caller
        _tls.caller = caller
        try:
            err = ffi.wasmtime_instance_pre_instantiate(prepared.pre.ptr(), context, byref(raw),
                                                        byref(trap))
        finally:
            _tls.caller = prev
        _raise_failure(caller, err, trap)
        return WasmtimeInstance(self, caller, hosts, store, wasmtime.Instance._from_raw(raw))


def _raise_failure(caller: Caller, err: Any, trap: Any) -> None:
    """Turn an error or trap pointer returned by wasmtime into ``Trap``."""
    if trap:
        t = wasmtime.Trap._from_ptr(trap)
        raise_trap(caller, wasmtime_message(t.message)[0], _frames(t))
    if err:
        e = wasmtime.WasmtimeError._from_ptr(err)
        raise_trap(caller, wasmtime_message(str(e))[0], [])


_VALTYPE = {"i32": wasmtime.ValType.i32, "i64": wasmtime.ValType.i64,
            "f32": wasmtime.ValType.f32, "f64": wasmtime.ValType.f64}
_RAW_FIELD = {"i32": "i32", "i64": "i64", "f32": "f32", "f64": "f64"}


class WasmtimeExport(ExportFunction):
    """A guest function export, called through ``wasmtime_func_call_unchecked``."""

    def __init__(self, instance: WasmtimeInstance, name: str, func: Any,
                 params: tuple[str, ...], results: tuple[str, ...]) -> None:
        super().__init__(instance, name, func, params, results)
        self._n = max(len(params), len(results), 1)
        self._array = ffi.wasmtime_val_raw_t * self._n
        self._unsupported = [t for t in params + results if t not in _RAW_FIELD]

    def __call__(self, *args: Any) -> Any:
        if self._unsupported:
            raise TypeError(f"export {self.name} uses value types {self._unsupported} that "
                            "funk cannot pass from Python")
        self._check_args(args)
        inst = self._instance
        store = inst._store
        if store is None:
            raise Trap(f"cannot call {self.name}: the instance is closed")
        buf = self._array()
        for i, (t, a) in enumerate(zip(self.params, args)):
            setattr(buf[i], t, a)  # ctypes keeps the low bits: unsigned spellings work
        trap = POINTER(ffi.wasm_trap_t)()
        caller = inst.caller
        prev = _tls.caller
        _tls.caller = caller
        try:
            err = ffi.wasmtime_func_call_unchecked(store._context(), byref(self._func), buf,
                                                   self._n, byref(trap))
        finally:
            _tls.caller = prev
        if err or trap:
            _raise_failure(caller, err, trap)
        if not self.results:
            return None
        if len(self.results) == 1:
            return getattr(buf[0], self.results[0])
        return tuple(getattr(buf[i], t) for i, t in enumerate(self.results))


class WasmtimeInstance(Instance):
    """An instance living in its own wasmtime store."""

    backend = "wasmtime"

    def __init__(self, module: WasmtimeModule, caller: Caller, hosts: Sequence[Any],
                 store: wasmtime.Store, instance: wasmtime.Instance) -> None:
        super().__init__(caller, hosts)
        self.module = module
        self._store: wasmtime.Store | None = store
        self._instance = instance
        self._externs = instance.exports(store)
        memory = self._externs.get("memory")
        if isinstance(memory, wasmtime.Memory):
            caller.memory = self._guest_memory(memory)
        else:
            caller.memory = MissingMemory()
        self._export_names = module.exports
        self._parts: dict[str, Any] = {}

    def _guest_memory(self, memory: wasmtime.Memory) -> GuestMemory:
        context = self._store._context() if self._store else None
        raw = memory._memory

        def fetch() -> tuple[memoryview, int]:
            base = ffi.wasmtime_memory_data(context, byref(raw))
            size = ffi.wasmtime_memory_data_size(context, byref(raw))
            addr = ctypes.cast(base, ctypes.c_void_p).value
            return _memoryview_at(addr, size, _PyBUF_WRITE), size

        return GuestMemory(fetch)

    def _export(self, name: str) -> Any:
        if self._store is None:
            raise Trap("the instance is closed")
        parts = self._parts.get(name)
        if parts is not None:  # type already known: an export object is cheap
            return WasmtimeExport(self, name, *parts)
        item = self._externs[name]
        if isinstance(item, wasmtime.Func):
            ty = item.type(self._store)
            parts = self._parts[name] = (item._func, _valtypes(ty.params), _valtypes(ty.results))
            return WasmtimeExport(self, name, *parts)
        if isinstance(item, wasmtime.Memory):
            if name == "memory":
                return self.caller.memory
            return self._guest_memory(item)
        return item

    def close(self) -> None:
        super().close()
        self._store = None
        self._externs = None  # type: ignore[assignment]


class WasmtimeBackend(Backend):
    """Compiles with the shared wasmtime engine."""

    name = "wasmtime"

    def compile(self, wasm: bytes) -> WasmtimeModule:
        return WasmtimeModule(self, wasm)


BACKEND = WasmtimeBackend()
