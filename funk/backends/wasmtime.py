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
  of linear memory stays valid while it grows (see ``funk.memory``).  It is
  made once per Python process, when first needed; ``configure`` sets other
  ``wasmtime.Config`` attributes before that (e.g. ``memory_init_cow`` and
  ``max_wasm_stack`` for many small processes, see ``lunatic_api.runtime``),
  ``max_wasm_stack()`` tells the wasm stack limit in force.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Sequence
from ctypes import POINTER, byref
from typing import Any

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi
from wasmtime._extern import wrap_extern

from funk.backends.base import Backend, CompiledModule
from funk.errors import CompileError, LinkError, Trap
from funk.generate import factories
from funk.instance import Caller, ExportFunction, Instance, raise_trap
from funk.linking import ImportSpec, LinkPlan
from funk.memory import GuestMemory, MissingMemory
from funk.traps import _cap, frame_text, wasmtime_message
from wasm_rewriter.errors import MalformedModule
from wasm_rewriter.interface import VALUE_TYPE_NAMES, Interface, read_interface

__all__ = [
    "BACKEND", "WasmtimeBackend", "engine", "configure", "settings", "max_wasm_stack",
    "engine_created", "DEFAULT_MAX_WASM_STACK", "MAX_WASM_STACK_LIMIT", "_tls", "_trap",
]


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


#: the wasmtime library again (the same handle), as a ``PyDLL``: calls keep the GIL
_WITH_GIL = ctypes.PyDLL(ffi.dll._name, handle=ffi.dll._handle)


def _keeping_gil(name: str) -> Any:
    """The C function ``name``, called without releasing the GIL.

    ctypes releases the GIL around every call into a ``CDLL``.  While another
    thread waits for the GIL (a process just handed to its thread, say), it
    takes the GIL then, usually on the other CPU, and the caller waits to get
    it back: on a busy 2-CPU machine such a hand-over costs more than the
    instantiation it interrupts.  So the short calls on the path of every
    instantiation and release keep it.  Only for functions that run no wasm
    (nor host code) and never block; same signature as wasmtime-py's binding.
    """
    fn = getattr(_WITH_GIL, name)
    like = getattr(_bindings, "_" + name)
    fn.restype, fn.argtypes = like.restype, like.argtypes
    return fn


_export_get = _keeping_gil("wasmtime_instance_export_get")
_memory_data = _keeping_gil("wasmtime_memory_data")
# the address as an int: a ``POINTER(c_uint8)`` result had to go through
# ``ctypes.cast``, which leaves a reference cycle behind for the collector
_memory_data.restype = ctypes.c_void_p
_memory_data_size = _keeping_gil("wasmtime_memory_data_size")
_store_new = _keeping_gil("wasmtime_store_new")
_store_context = _keeping_gil("wasmtime_store_context")
_store_delete = _keeping_gil("wasmtime_store_delete")
#: instantiating a module that has no start function runs no wasm: allocation
#: and segment copies bounded by the module's size
_pre_instantiate_keeping_gil = _keeping_gil("wasmtime_instance_pre_instantiate")


class _Store:
    """One ``wasmtime_store_t``: the engine objects of one instance.

    Lighter than ``wasmtime.Store`` (which funk used before): only what funk
    calls, and made and deleted without releasing the GIL (see
    ``_keeping_gil``).  Deleted when the last reference goes.
    """

    __slots__ = ("_ptr", "_ctx")

    #: held by the class: at interpreter exit, module globals are cleared before
    #: the last stores may be collected
    _delete = staticmethod(_store_delete)

    def __init__(self) -> None:
        self._ptr = _store_new(engine().ptr(), None, _NULL_FINALIZER)
        self._ctx = _store_context(self._ptr)

    def _context(self) -> Any:
        """The store's ``wasmtime_context_t *`` (what the C API calls take)."""
        return self._ctx

    def __del__(self) -> None:
        ptr = getattr(self, "_ptr", None)  # None if ``__init__`` failed
        if ptr:
            self._ptr = None
            self._delete(ptr)


def _trap(message: str) -> int:
    """A new wasmtime trap with ``message``, as the callback's return value."""
    data = message.encode("utf-8", "replace")
    ptr = ffi.wasmtime_trap_new(ctypes.create_string_buffer(data), len(data))
    return ctypes.cast(ptr, ctypes.c_void_p).value or 0


DEFAULT_MAX_WASM_STACK = 512 << 10
"""wasmtime's ``max_wasm_stack`` when not configured: native stack wasm code may use."""

MAX_WASM_STACK_LIMIT = 2 << 20
"""The largest ``max_wasm_stack`` wasmtime accepts (its ``async_stack_size``, which
wasmtime-py cannot change); a bigger one aborts the interpreter when the engine is made."""

#: funk's own settings: linear memory never moves while growing, so views of it stay valid
_FUNK_SETTINGS: dict[str, Any] = {"memory_may_move": False}

_settings: dict[str, Any] = dict(_FUNK_SETTINGS)
_engine: wasmtime.Engine | None = None
_engine_lock = threading.Lock()
_UNSET = object()


def _settable(name: str) -> bool:
    attr = getattr(wasmtime.Config, name, None)
    return not name.startswith("_") and isinstance(attr, property) and attr.fset is not None


def configure(**settings: Any) -> None:
    """Set attributes of the ``wasmtime.Config`` the process-wide engine is made with.

    Keywords are ``wasmtime.Config`` attribute names, e.g.
    ``configure(memory_init_cow=False, max_wasm_stack=192 << 10)``.  Calls add
    up (a later value for the same name wins).  The engine is made on first
    use (the first module compiled for wasmtime): configure before that.
    Once it exists, configuring again is accepted only when it changes
    nothing; anything else raises ``RuntimeError`` (the engine cannot change,
    and modules compiled by it are bound to it).

    Raises ``ValueError`` for an unknown name, a bad value, or
    ``memory_may_move=True`` (funk keeps views of linear memory, which must
    not move).  ``max_wasm_stack`` must be in 1 .. ``MAX_WASM_STACK_LIMIT``:
    wasmtime aborts the whole process on an engine config it rejects, so that
    one is checked here; other combinations wasmtime rejects are not known
    to funk.
    """
    global _settings
    for name, value in settings.items():
        if not _settable(name):
            raise ValueError(f"wasmtime.Config has no setting {name!r}")
        if name in _FUNK_SETTINGS and value != _FUNK_SETTINGS[name]:
            raise ValueError(f"{name}={value!r} is not supported: funk needs "
                             f"{name}={_FUNK_SETTINGS[name]!r}")
        if name == "max_wasm_stack" and (isinstance(value, bool) or not isinstance(value, int)
                                         or not 0 < value <= MAX_WASM_STACK_LIMIT):
            raise ValueError(f"max_wasm_stack must be an int in 1 .. {MAX_WASM_STACK_LIMIT} "
                             f"bytes, not {value!r}")
    trial = wasmtime.Config()
    for name, value in settings.items():
        try:
            setattr(trial, name, value)
        except (TypeError, ValueError, wasmtime.WasmtimeError) as exc:
            raise ValueError(f"wasmtime.Config.{name} = {value!r}: {exc}") from None
    with _engine_lock:
        merged = {**_settings, **settings}
        if _engine is not None and merged != _settings:
            changed = ", ".join(f"{k}={v!r}" for k, v in settings.items()
                                if _settings.get(k, _UNSET) != v)
            raise RuntimeError(
                f"the wasmtime engine already exists (settings {_describe(_settings)}); "
                f"it cannot take {changed}: call funk.backends.wasmtime.configure before "
                "anything is compiled for wasmtime")
        _settings = merged


def _describe(settings: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in settings.items())


def settings() -> dict[str, Any]:
    """The ``wasmtime.Config`` attributes the engine is (or will be) made with, besides
    wasmtime's defaults."""
    with _engine_lock:
        return dict(_settings)


def max_wasm_stack() -> int:
    """Bytes of native stack wasm may use before it traps (``DEFAULT_MAX_WASM_STACK``
    unless configured)."""
    return int(settings().get("max_wasm_stack", DEFAULT_MAX_WASM_STACK))


def engine_created() -> bool:
    """Whether the engine exists (so ``configure`` can no longer change it)."""
    return _engine is not None


def _make_engine() -> wasmtime.Engine:
    config = wasmtime.Config()
    for name, value in _settings.items():
        setattr(config, name, value)
    return wasmtime.Engine(config)


def engine() -> wasmtime.Engine:
    """The process-wide wasmtime engine funk compiles with (made on first use)."""
    global _engine
    if _engine is None:
        with _engine_lock:
            if _engine is None:
                _engine = _make_engine()
    return _engine


def _valtypes(types: Sequence[Any]) -> tuple[str, ...]:
    return tuple(str(t) for t in types)


def _signature(interface: Interface | None, ty: wasmtime.FuncType,
               type_index: object) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(params, results) of a function: from the binary's type section when read."""
    if interface is not None and isinstance(type_index, int):
        ft = interface.types[type_index]
        return (tuple(VALUE_TYPE_NAMES.get(t, hex(t)) for t in ft.params),
                tuple(VALUE_TYPE_NAMES.get(t, hex(t)) for t in ft.results))
    return _valtypes(ty.params), _valtypes(ty.results)


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
        # Function signatures come from the binary, not from wasmtime: asking
        # wasmtime-py for a signature with a v128 in it aborts the process
        # ("support for v128 is not implemented"), and the module is the guest's.
        try:
            interface = read_interface(wasm)
        except MalformedModule:  # a proposal's section layout the reader does not know
            interface = None
        if interface is not None and (len(interface.imports) != len(self.module.imports)
                                      or len(interface.exports) != len(self.module.exports)):
            interface = None
        imports = []
        for n, imp in enumerate(self.module.imports):
            ty = imp.type
            if isinstance(ty, wasmtime.FuncType):
                params, results = _signature(interface, ty, interface.imports[n].desc
                                             if interface is not None else None)
                imports.append(ImportSpec(imp.module, imp.name or "", "func", params, results))
            else:
                kind = {wasmtime.MemoryType: "memory", wasmtime.TableType: "table",
                        wasmtime.GlobalType: "global"}.get(type(ty), "other")
                imports.append(ImportSpec(imp.module, imp.name or "", kind))
        self.imports = tuple(imports)
        self.exports = tuple(e.name for e in self.module.exports)
        # Without a start function, instantiating runs no wasm and keeps the
        # GIL (``_keeping_gil``); a start function may run for as long as it
        # likes, so other threads get the GIL meanwhile.  Unknown: assume one.
        no_start = interface is not None and interface.start is None
        self._pre_instantiate: Callable[..., Any] = (
            _pre_instantiate_keeping_gil if no_start else ffi.wasmtime_instance_pre_instantiate)
        #: (params, results) of each function export, known once per module
        self.export_signatures = {}
        for n, exp in enumerate(self.module.exports):
            ty = exp.type
            if isinstance(ty, wasmtime.FuncType):
                type_index = None
                if interface is not None:
                    func = interface.exports[n].index
                    type_index = interface.type_index_of(func)
                self.export_signatures[exp.name] = _signature(interface, ty, type_index)

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
        store = _Store()
        context = store._context()
        raw = ffi.wasmtime_instance_t()
        trap = POINTER(ffi.wasm_trap_t)()
        prev = _tls.caller
        _tls.caller = caller
        try:
            err = self._pre_instantiate(prepared.pre.ptr(), context, byref(raw), byref(trap))
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


class WasmtimeExport(ExportFunction):
    """A guest function export, called through ``wasmtime_func_call_unchecked``."""

    def __init__(self, instance: WasmtimeInstance, name: str, func: Any,
                 params: tuple[str, ...], results: tuple[str, ...]) -> None:
        super().__init__(instance, name, func, params, results)
        self._n = max(len(params), len(results), 1)
        self._array = ffi.wasmtime_val_raw_t * self._n

    def __call__(self, *args: Any) -> Any:
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
    """An instance living in its own wasmtime store.

    Exports are looked up one by one through ``wasmtime_instance_export_get``
    when first used: wasmtime-py's ``Instance.exports()`` wraps every export
    of the module in Python objects, which was a quarter of the cost of
    spawning a Lunatic process (which needs the memory and one function).
    """

    backend = "wasmtime"

    def __init__(self, module: WasmtimeModule, caller: Caller, hosts: Sequence[Any],
                 store: _Store, instance: wasmtime.Instance) -> None:
        super().__init__(caller, hosts)
        self.module = module
        self._store: _Store | None = store
        self._instance = instance
        memory = self._extern("memory")
        if memory is not None and memory.kind == ffi.WASMTIME_EXTERN_MEMORY.value:
            caller.memory = self._guest_memory(memory.of.memory)
        else:
            caller.memory = MissingMemory()
        self._export_names = module.exports

    def _extern(self, name: str) -> Any:
        """The raw ``wasmtime_extern_t`` exported as ``name``, or None."""
        assert self._store is not None
        item = ffi.wasmtime_extern_t()
        data = name.encode("utf-8")
        found = _export_get(self._store._context(), byref(self._instance._instance),
                            data, len(data), byref(item))
        return item if found else None

    def _guest_memory(self, raw: Any) -> GuestMemory:
        context = self._store._context() if self._store else None

        def fetch() -> tuple[memoryview, int]:
            addr = _memory_data(context, byref(raw))
            size = _memory_data_size(context, byref(raw))
            return _memoryview_at(addr, size, _PyBUF_WRITE), size

        return GuestMemory(fetch)

    def _export(self, name: str) -> Any:
        if self._store is None:
            raise Trap("the instance is closed")
        item = self._extern(name)
        if item is None:
            raise KeyError(name)
        if item.kind == ffi.WASMTIME_EXTERN_FUNC.value:
            params, results = self.module.export_signatures[name]
            return WasmtimeExport(self, name, item.of.func, params, results)
        if item.kind == ffi.WASMTIME_EXTERN_MEMORY.value:
            if name == "memory":
                return self.caller.memory
            return self._guest_memory(item.of.memory)
        return wrap_extern(item)

    def close(self) -> None:
        super().close()
        self._store = None


class WasmtimeBackend(Backend):
    """Compiles with the shared wasmtime engine."""

    name = "wasmtime"

    def compile(self, wasm: bytes) -> WasmtimeModule:
        return WasmtimeModule(self, wasm)

    def validate(self, wasm: bytes) -> None:
        try:
            wasmtime.Module.validate(engine(), wasm)
        except wasmtime.WasmtimeError as exc:
            raise CompileError(f"wasmtime: the module is invalid: {exc}") from None


BACKEND = WasmtimeBackend()
