"""Module plugins: wasm modules that rewrite other wasm modules before they are compiled.

The plugin interface is Lunatic 0.6's (spec section 7.10), so one plugin
binary works with the ``lunatic`` runtime and with plain funk:

* a plugin is a wasm module that may import only the three functions of the
  ``lunatic::plugin`` namespace (``ModuleEditor``) and exports ``memory``;
* for each module passed through it, a **fresh instance** of the plugin is
  made, its ``_initialize`` export runs (if it has one), then its
  ``lunatic_create_module_hook`` export (if it has one; no params, no
  results), which edits the module through the imports;
* plugins run in order, each seeing what the earlier ones added;
  ``_initialize`` may already edit the module (it runs with the same imports).

With funk alone::

    from funk.plugins import Plugin, apply_plugins

    plugins = [Plugin("add_check.wasm", backend="wasmer")]
    wasm = apply_plugins(open("guest.wasm", "rb").read(), plugins)
    instance = funk.instantiate(wasm, hosts, backend="wasmer")

Decisions where the spec is silent or v0.6.0 was wrong:

* **Function indices are the module's own**: ``add_function`` returns the
  index in the whole function index space (imported functions first), the
  index that ``call``, ``ref.func`` and exports use, and
  ``add_function_export`` takes that same index.  (v0.6.0 returned the index
  among defined functions only, so on a module with imports the export named
  the wrong function; spec section 9 item 20.)  A plugin that adds a
  function, then exports it with the index it got, is always right.
* ``add_function_type`` always appends (the spec's wording), so the indices a
  chain of plugins gets grow one by one.
* An added function can be called by others the plugin adds and exported; a
  ``ref.func`` to it in an added body is valid only once it is exported
  (plugins cannot add element segments, wasm's other way of declaring it).
* ``add_function`` decodes the body at once with the project's one decoder
  (``wasm_rewriter``): a body that does not decode, does not end with
  ``end``, or names a missing type index returns 1 with an error, like an
  unknown value type byte.  Type errors inside a body that decodes are found
  when the module is validated after the plugin ran, and fail the run.
* ``add_function_export`` traps on a name that is not UTF-8, an index out of
  range and a name already exported (it has no way to return an error).
* A body using ``memory.init`` / ``data.drop`` gets the module a data count
  section if it had none (wasm requires it); sections keep their standard
  order and custom sections their place (``wasm_rewriter``).
* After each plugin that changed something, the module is encoded and
  validated, so an invalid result names the plugin that made it.
* Plugins are checked when they are made: malformed bytes, an import from
  anywhere but ``lunatic::plugin`` (WASI included) or with the wrong type
  are refused then, not at the first module.
* Plugins cannot hang their caller: each run has a fuel budget (``fuel``,
  wasm instructions, counted by the same injected checks as Lunatic
  processes), and the checks call ``on_slice`` every ``SLICE`` fuel, where a
  caller may raise to stop the run (Lunatic: the process was killed).  The
  ``lunatic::plugin`` calls cost fuel too (``HOST_CALL_FUEL``).  On an
  engine that holds the interpreter lock (wasmer) other threads also get a
  turn there.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from funk import backends, host_functions
from funk.errors import CompileError, FunkError, LinkError, Trap
from funk.linking import LinkPlan
from funk.signature import host_functions_of, internal
from funk.types import Bytes, Ptr, Str, i64, u32, u64
from funk.wasm_input import WasmSource, to_wasm_bytes
from wasm_rewriter import Export, FuncType, Instr, MalformedModule, Module, decode_body
from wasm_rewriter.limits import meter_fuel
from wasm_rewriter.opcodes import DATA_DROP, MEMORY_INIT
from wasm_rewriter.sections import EXNREF, KIND_FUNC, SECTION_TYPE, VALUE_TYPE_NAMES

__all__ = [
    "PLUGIN_NAMESPACE", "METER_NAMESPACE", "HOOK", "INITIALIZE", "DEFAULT_FUEL", "SLICE",
    "HOST_CALL_FUEL", "FUEL_PER_BYTE", "VALUE_TYPES", "PluginError", "ModuleEditor", "Plugin",
    "apply_plugins",
]

PLUGIN_NAMESPACE = "lunatic::plugin"
"""The import module of the functions plugins edit modules with."""

METER_NAMESPACE = "funk::plugin_meter"
"""The import module of a plugin's injected fuel checks (plugins may not import it)."""

HOOK = "lunatic_create_module_hook"
"""The export a plugin's work is done in: ``() -> ()``."""

INITIALIZE = "_initialize"
"""The export run before the hook (a WASI reactor's constructor call)."""

DEFAULT_FUEL = 1_000_000_000
"""Fuel one plugin may use on one module: about a second of wasm (one fuel per instruction,
``HOST_CALL_FUEL`` per ``lunatic::plugin`` call)."""

HOST_CALL_FUEL = 5_000
"""Fuel a ``lunatic::plugin`` call costs, plus ``FUEL_PER_BYTE`` per byte it reads: about
its time in wasm instructions, so a plugin looping on host calls also runs out."""

FUEL_PER_BYTE = 10

SLICE = 100_000
"""Fuel between two calls of the ``on_slice`` callback."""

VALUE_TYPES = {byte: name for byte, name in VALUE_TYPE_NAMES.items() if byte != EXNREF}
"""The value type bytes ``add_function_type`` and ``add_function`` accept (spec 7.10)."""

OK = 0
ERROR = 1

_LOCAL_RECORD = 5  # u32 LE count, then one type byte


class PluginError(CompileError):
    """A plugin cannot be made, or failed on a module; the text names the plugin and the cause.

    A ``CompileError``: for whoever asked for the module, a failing plugin is
    one more way the module did not compile.
    """


def _value_types(data: bytes, what: str) -> tuple[int, ...] | str:
    """The bytes as value types, or the text of the error for the first unknown one."""
    for offset, byte in enumerate(data):
        if byte not in VALUE_TYPES:
            return f"{what}[{offset}]: unknown value type byte 0x{byte:02x}"
    return tuple(data)



@host_functions(namespace=PLUGIN_NAMESPACE)
class ModuleEditor:
    """``lunatic::plugin``: what one plugin run may do to ``module``.

    Errors go to a private table (``errors``; ids from 1): a plugin has no
    ``lunatic::error`` to read them with, but they are quoted when the run
    fails.  ``changed`` tells whether anything was added.
    """

    def __init__(self, module: Module, meter: PluginMeter | None = None) -> None:
        self.module = module
        self.meter = meter
        self.errors: list[str] = []
        self.changed = False

    def _charge(self, *inputs: memoryview) -> None:
        if self.meter is not None:
            self.meter.charge(HOST_CALL_FUEL + FUEL_PER_BYTE * sum(len(m) for m in inputs))

    def _fail(self, out: Ptr[u64], text: str) -> int:
        self.errors.append(text)
        out.set(len(self.errors))
        return ERROR

    def add_function_type(self, params: Bytes, results: Bytes, out: Ptr[u64]) -> u32:
        """Append a function type (one value type byte per param and result); its index."""
        self._charge(params, results)
        param_types = _value_types(bytes(params), "params")
        if isinstance(param_types, str):
            return self._fail(out, f"add_function_type: {param_types}")
        result_types = _value_types(bytes(results), "results")
        if isinstance(result_types, str):
            return self._fail(out, f"add_function_type: {result_types}")
        module = self.module
        module.types.append(FuncType(param_types, result_types))
        module.touch(SECTION_TYPE)
        self.changed = True
        out.set(len(module.types) - 1)
        return OK

    def add_function(self, type_index: u32, locals: Bytes, body: Bytes, out: Ptr[u64]) -> u32:
        """Append a function: its type, 5-byte local records, its code ending in ``end``.

        Writes the new function's index in the module's function index space
        (imports included; see the module docstring).
        """
        self._charge(locals, body)
        module = self.module
        if type_index >= len(module.types):
            return self._fail(out, f"add_function: type index {type_index} out of range "
                                   f"(the module has {len(module.types)} types)")
        raw_locals = bytes(locals)
        if len(raw_locals) % _LOCAL_RECORD:
            return self._fail(out, f"add_function: locals are {_LOCAL_RECORD}-byte records, "
                                   f"{len(raw_locals)} bytes is not a whole number of them")
        runs: list[tuple[int, int]] = []
        for n in range(0, len(raw_locals), _LOCAL_RECORD):
            count = int.from_bytes(raw_locals[n:n + 4], "little")
            kind = raw_locals[n + 4]
            if kind not in VALUE_TYPES:
                return self._fail(out, f"add_function: locals[{n // _LOCAL_RECORD}]: unknown "
                                       f"value type byte 0x{kind:02x}")
            runs.append((count, kind))
        code_bytes = bytes(body)
        try:
            code = decode_body(code_bytes, 0, len(code_bytes))
        except MalformedModule as exc:
            return self._fail(out, f"add_function: the body does not decode: {exc}")
        if _uses_data_indices(code) and module.data_count is None:
            module.data_count = len(module.data)  # wasm requires it for these instructions
        index = module.add_function(type_index, runs, code)
        self.changed = True
        out.set(index)
        return OK

    def add_function_export(self, name: Str, function_index: u32) -> None:
        """Export the function with that index (imports included) under ``name``.

        Traps on an index out of range or a name already exported.
        """
        self._charge()
        module = self.module
        total = module.total_functions
        if function_index >= total:
            imported = module.num_imported(KIND_FUNC)
            raise Trap(f"function index {function_index} out of range (the module has {total} "
                       f"functions: {imported} imported, {total - imported} defined)")
        try:
            module.add_export(name, KIND_FUNC, function_index)
        except ValueError as exc:
            raise Trap(str(exc)) from None
        self.changed = True


def _uses_data_indices(code: Sequence[Instr]) -> bool:
    return any(ins.op == MEMORY_INIT or ins.op == DATA_DROP for ins in code)


@host_functions(namespace=METER_NAMESPACE)
class PluginMeter:
    """The host side of a plugin's injected fuel checks: a budget for one run."""

    def __init__(self, fuel: int, on_slice: Callable[[], None] | None, yield_gil: bool) -> None:
        self.budget = fuel
        self.left = fuel
        self.granted = 0  # the last slice handed to the wasm side (it may hold all of it yet)
        self.on_slice = on_slice
        self.yield_gil = yield_gil
        #: what ``on_slice`` raised, re-raised as it is by ``Plugin.run``
        self.stopped: BaseException | None = None

    def _exhausted(self) -> Trap:
        return Trap(f"used all its fuel ({self.budget:,}); a plugin that loops forever?",
                    function="")

    @internal
    def charge(self, fuel: int) -> None:
        """Take ``fuel`` from what is left (a host call's cost); trap if none can be left.

        ``left`` leaves out the slice the wasm side holds, of which up to ``granted`` may be
        unspent: only a debt beyond that is certainly over budget (a smaller one is settled
        at the next ``refuel``).  Without this, a budget of one slice or less allowed no call.
        """
        self.left -= fuel
        if self.left + self.granted < 0:
            raise self._exhausted()

    def refuel(self, left: i64) -> i64:
        """The next slice of fuel (``left``, < 0, is what the last one overshot by)."""
        self.left += left  # the slice handed out was already taken from ``left``
        if self.on_slice is not None:
            try:
                self.on_slice()
            except BaseException as exc:  # noqa: B902 - the caller's reason to stop
                self.stopped = exc
                raise
        if self.left < 0:
            raise self._exhausted()
        if self.yield_gil:
            time.sleep(0)  # let other Python threads run (wasmer holds the lock in wasm)
        grant = min(SLICE, self.left)
        self.left -= grant
        self.granted = grant
        return grant


_ALLOWED = {fn.name for fn in host_functions_of(ModuleEditor)}


class Plugin:
    """A plugin module, checked and compiled (once per engine it is used on).

    ``wasm`` is bytes, WAT text or a path.  ``name`` is how messages call it
    (default: the module's own name from its ``name`` section, if any).
    Raises ``PluginError`` if the bytes are not a valid module or it
    imports anything but ``lunatic::plugin`` functions with their right types.
    """

    def __init__(self, wasm: WasmSource, backend: str = "wasmtime", name: str = "") -> None:
        self.name = name
        #: the engine it was first compiled for (``apply_plugins``' default)
        self.backend = backend
        try:
            data = to_wasm_bytes(wasm)
        except CompileError as exc:
            raise PluginError(f"{self}: {exc}") from None
        try:
            module = Module.parse(data)
        except MalformedModule as exc:
            raise PluginError(f"{self}: not a valid wasm module: {exc}") from None
        if not name and module.names is not None:
            self.name = module.names.module_name or ""
        self.wasm = data
        for imp in module.imports:
            if imp.module != PLUGIN_NAMESPACE or imp.kind != KIND_FUNC or imp.name not in _ALLOWED:
                raise PluginError(
                    f"{self}: it imports {imp.module}::{imp.name}, but a plugin "
                    f"may import only the functions of {PLUGIN_NAMESPACE} "
                    f"({', '.join(sorted(_ALLOWED))})")
        self.exports = frozenset(exp.name for exp in module.exports)
        for exp in module.exports:
            if exp.name in (INITIALIZE, HOOK):
                _check_entry(self, module, exp)
        meter_fuel(module, METER_NAMESPACE, "refuel")
        self._metered = module.encode()
        self._compiled: dict[str, backends.CompiledModule] = {}
        self.compiled(backend)

    def compiled(self, backend: str) -> backends.CompiledModule:
        """The plugin compiled for ``backend`` (compiled on first use)."""
        try:
            return self._compiled_for(backend)
        except PluginError as exc:
            raise PluginError(f"{self}: {exc}") from None

    def _compiled_for(self, backend: str) -> backends.CompiledModule:
        found = self._compiled.get(backend)
        if found is None:
            try:
                found = backends.get(backend).compile(self._metered)
                LinkPlan.build(found.imports, (ModuleEditor, PluginMeter))
            except (CompileError, LinkError) as exc:
                raise PluginError(str(exc)) from None
            found = self._compiled.setdefault(backend, found)
        return found

    def run(self, module: Module, backend: str, fuel: int = DEFAULT_FUEL,
            on_slice: Callable[[], None] | None = None) -> bool:
        """Run the plugin on ``module`` (edited in place); whether it changed anything.

        Raises ``PluginError`` (without the plugin's name: ``apply_plugins``
        adds its place in the chain) if it cannot be instantiated or traps,
        and whatever ``on_slice`` raised, as it is.
        """
        meter = PluginMeter(fuel, on_slice, backends.get(backend).holds_gil)
        editor = ModuleEditor(module, meter)
        step = "instantiation"
        instance = None
        try:
            instance = self._compiled_for(backend).instantiate([editor, meter])
            for step in (INITIALIZE, HOOK):
                if step in self.exports:
                    instance.exports[step]()
        except Trap as exc:
            if meter.stopped is not None:  # the caller stopped the run: its exception
                raise meter.stopped from None
            # the plugin's last error before the backtrace: it often says why it trapped
            text = f"{exc.message}{_last_error(editor)}"
            if exc.frames:
                text += "\nguest backtrace:\n" + "\n".join("  " + f for f in exc.frames)
            raise PluginError(f"{step} trapped: {text}") from None
        except FunkError as exc:
            if meter.stopped is not None:
                raise meter.stopped from None
            raise PluginError(f"{step} failed: {exc}") from None
        finally:
            if instance is not None:
                instance.close()
        return editor.changed

    def __str__(self) -> str:
        return f"plugin {self.name}" if self.name else "plugin"

    def __repr__(self) -> str:
        return f"<Plugin {self.name!r} compiled for {', '.join(self._compiled) or 'nothing'}>"


def _check_entry(plugin: Plugin, module: Module, exp: Export) -> None:
    """``PluginError`` unless the export is a function taking and returning nothing."""
    if exp.kind != KIND_FUNC:
        raise PluginError(f"{plugin}: its {exp.name} export is not a function")
    ft = module.function_type(exp.index)
    if ft.params or ft.results:
        raise PluginError(f"{plugin}: its {exp.name} export must take and return nothing, "
                          f"not {_signature(ft)}")


def _signature(ft: FuncType) -> str:
    params = ", ".join(VALUE_TYPES.get(t, hex(t)) for t in ft.params)
    results = ", ".join(VALUE_TYPES.get(t, hex(t)) for t in ft.results)
    return f"({params}) -> ({results})"


def _last_error(editor: ModuleEditor) -> str:
    if not editor.errors:
        return ""
    return f" (its last {PLUGIN_NAMESPACE} error: {editor.errors[-1]})"


def apply_plugins(wasm: WasmSource, plugins: Sequence[Plugin], backend: str | None = None, *,
                  fuel: int = DEFAULT_FUEL, on_slice: Callable[[], None] | None = None) -> bytes:
    """``wasm`` as changed by ``plugins`` in order (the bytes unchanged if none changed it).

    ``backend`` (default: the engine the first plugin was compiled for) runs
    the plugins and validates the results.  Each plugin may use ``fuel``;
    ``on_slice`` is called every ``SLICE`` fuel and may raise to stop: that
    exception comes out of ``apply_plugins`` as it is.
    Raises ``CompileError`` if ``wasm`` itself is malformed or invalid, and
    ``PluginError`` naming the plugin (and its place in the chain) if one
    fails or leaves an invalid module.
    """
    data = to_wasm_bytes(wasm)
    if not plugins:
        return data
    engine = backend or plugins[0].backend
    try:
        module = Module.parse(data)
    except MalformedModule as exc:
        raise CompileError(f"the module is malformed: {exc}") from None
    validate(data, engine)
    for place, plugin in enumerate(plugins, 1):
        label = f"{plugin} ({place} of {len(plugins)})"
        try:
            if not plugin.run(module, engine, fuel, on_slice):
                continue
            try:
                data = module.encode()
            except ValueError as exc:
                raise PluginError(f"the module it changed cannot be encoded: {exc}") from None
            try:
                validate(data, engine)
            except CompileError as exc:
                raise PluginError(f"the module it produced is invalid: {exc}") from None
        except PluginError as exc:
            raise PluginError(f"{label}: {exc}") from None
    return data


def validate(wasm: bytes, backend: str) -> None:
    """Raise ``CompileError`` with the engine's message if ``wasm`` is not a valid module."""
    backends.get(backend).validate(wasm)
