"""Emit the Python source of per-backend host-function wrappers with libcst.

For every ``HostFunction`` of a class and every backend, ``emit_module``
builds one specialised wrapper: it reads the raw wasm arguments, lowers them
(masking unsigned values, bounds-checking and slicing memory ranges, decoding
UTF-8, building ``Ptr``s and I/O slice lists, calling custom lowerings), calls
the host method, lifts the result (range checks, out-pointer writes,
multi-value) and turns any exception into a trap.  Nothing is interpreted at
call time: the wrapper is straight-line code for that one signature.

Backends differ only at the edges, described by ``BackendDialect``:

* wasmtime wrappers are C-API "unchecked" callbacks ``(env, caller, args,
  nargs)`` reading and writing a ``wasmtime_val_raw_t`` array; the calling
  instance's ``Caller`` comes from a thread-local set around every export call;
* wasmer wrappers are closures over the instance's ``Caller``, taking the wasm
  values as positional arguments and returning the results.

The module is built as a libcst tree (templates parsed into nodes and
assembled into function, ``try`` and ``if`` nodes) and rendered with
``Module.code``; ``funk.generate`` executes exactly that text.
"""

from __future__ import annotations

import keyword
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import libcst as cst

from funk.signature import (
    CallerLowering,
    CustomLifting,
    CustomLowering,
    HostFunction,
    IoSlicesLowering,
    Lifting,
    OutSlot,
    PtrLowering,
    RangeLowering,
    ScalarLowering,
)
from funk.types import Scalar

__all__ = ["emit_module", "GeneratedModule", "DIALECTS", "BackendDialect"]

Node = cst.BaseStatement | cst.BaseSmallStatement


@dataclass(frozen=True)
class BackendDialect:
    """How wrappers for one engine receive arguments and deliver results."""

    name: str
    #: wasm value type -> field of ``wasmtime_val_raw_t`` (wasmtime only)
    raw_field: dict[str, str] = field(default_factory=dict)

    @property
    def positional(self) -> bool:
        """True if wasm values arrive as positional arguments (wasmer)."""
        return not self.raw_field


WASMTIME = BackendDialect("wasmtime", {"i32": "i32", "i64": "i64", "f32": "f32", "f64": "f64"})
WASMER = BackendDialect("wasmer")
DIALECTS = {"wasmtime": WASMTIME, "wasmer": WASMER}

_MASK = {8: "0xFF", 16: "0xFFFF", 32: "0xFFFFFFFF", 64: "0xFFFFFFFFFFFFFFFF"}
_RANGE = {  # accepted result values per wasm integer type: signed or unsigned spelling
    "i32": ("-0x80000000", "0xFFFFFFFF"),
    "i64": ("-0x8000000000000000", "0xFFFFFFFFFFFFFFFF"),
}


@dataclass
class GeneratedModule:
    """Source text of a wrapper module plus the objects it refers to by name."""

    source: str
    refs: dict[str, Any]
    factories: dict[str, str]  # HostFunction qualname -> factory function name


class _Refs:
    """Gives each referenced object (record layout, Ptr class...) a stable name."""

    def __init__(self) -> None:
        self.names: dict[str, Any] = {}
        self.setup: list[str] = []
        self.scalars: set[str] = set()
        self._by_id: dict[int, str] = {}

    def user(self, obj: Any) -> str:
        """Name of a user object (class) supplied to the module when loaded."""
        key = id(obj)
        if key in self._by_id:
            return self._by_id[key]
        base = _identifier(getattr(obj, "__name__", "obj"))
        name = base
        n = 2
        while name in self.names:
            name = f"{base}_{n}"
            n += 1
        self.names[name] = obj
        self._by_id[key] = name
        return name

    def derived(self, name: str, expr: str) -> str:
        """A module-level constant computed from supplied names."""
        if name not in self._derived_names():
            self.setup.append(f"{name} = {expr}")
        return name

    def _derived_names(self) -> set[str]:
        return {line.split(" = ", 1)[0] for line in self.setup}

    def scalar(self, s: Scalar) -> str:
        """A ``struct.Struct(...).pack_into`` for scalar ``s``."""
        return self.derived(f"_pack_{s.name}", f"_struct.Struct('<{s.fmt}').pack_into")

    def ptr_class(self, target: Any) -> str:
        if isinstance(target, Scalar):
            self.scalars.add(target.name.upper())
            return self.derived(f"Ptr_{target.name}", f"Ptr.of({target.name.upper()})")
        cls = self.user(target)
        return self.derived(f"Ptr_{cls}", f"Ptr.of({cls})")

    def layout(self, target: Any) -> str:
        cls = self.user(target)
        return self.derived(f"{cls}_layout", f"record_layout({cls})")


def _identifier(text: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in text)
    if not out or out[0].isdigit() or keyword.iskeyword(out):
        out = "_" + out
    return out


# --------------------------------------------------------------------------
# libcst building blocks


def _stmt(code: str) -> cst.BaseStatement:
    return cst.parse_statement(code + "\n")


def _block(body: Sequence[Node]) -> cst.IndentedBlock:
    return cst.IndentedBlock(body=list(body))  # type: ignore[arg-type]


def _if(test: str, body: Sequence[Node]) -> cst.If:
    return cst.If(test=cst.parse_expression(test), body=_block(body))


def _try(body: Sequence[Node], handlers: Sequence[tuple[str | None, str | None,
                                                         Sequence[Node]]] = (),
         final: Sequence[Node] | None = None) -> cst.Try:
    hs = []
    for typ, name, hbody in handlers:
        hs.append(cst.ExceptHandler(
            body=_block(hbody),
            type=cst.parse_expression(typ) if typ else None,
            name=cst.AsName(name=cst.Name(name)) if name else None))
    return cst.Try(body=_block(body), handlers=hs,
                   finalbody=cst.Finally(body=_block(final)) if final else None)


def _def(name: str, params: Sequence[str], body: Sequence[Node],
         doc: str | None = None) -> cst.FunctionDef:
    stmts: list[Node] = []
    if doc:
        stmts.append(_stmt(repr(doc)))
    stmts.extend(body)
    return cst.FunctionDef(
        name=cst.Name(name),
        params=cst.Parameters(params=[cst.Param(cst.Name(p)) for p in params]),
        body=_block(stmts))


# --------------------------------------------------------------------------
# One wrapper


class _WrapperBuilder:
    """Builds the wrapper factory of one host function for one backend."""

    def __init__(self, fn: HostFunction, dialect: BackendDialect, refs: _Refs) -> None:
        self.fn = fn
        self.d = dialect
        self.refs = refs
        self.qn = repr(fn.qualname)
        self.raw_index = 0
        self.pre: list[Node] = []       # lowering statements, before the call
        self.release: list[str] = []    # views to release after the call
        self.args: list[str] = []       # Python arguments of the method call
        self.uses_memory = False
        self.uses_host = False

    # raw wasm values --------------------------------------------------------

    def raw(self, valtype: str) -> str:
        i = self.raw_index
        self.raw_index += 1
        if self.d.positional:
            return f"p{i}"
        return f"args[{i}].{self.d.raw_field[valtype]}"

    def u32(self, valtype: str = "i32") -> str:
        return f"{self.raw(valtype)} & 0xFFFFFFFF"

    def _check(self, ptr: str, length: str, param: str) -> None:
        self.uses_memory = True
        self.pre.append(_if(f"{ptr} + {length} > mem.size",
                            [_stmt(f"mem.require({ptr}, {length}, {self.qn}, {param!r})")]))

    # parameters -------------------------------------------------------------

    def lower(self, name: str, lowering: Any) -> None:
        # A prefix keeps parameters from shadowing the wrapper's own names (``locals``,
        # ``mem``, ``ctx``, ``args``, ``result``, ``p0``...): ``add_function(..., locals, ...)``
        # made the failure path's ``locals()`` call a memoryview.
        var = "a_" + _identifier(name)
        if isinstance(lowering, ScalarLowering):
            self.args.append(self.scalar_param(lowering.scalar))
        elif isinstance(lowering, RangeLowering):
            ptr, ln = f"{var}_ptr", f"{var}_len"
            self.pre.append(_stmt(f"{ptr} = {self.u32()}"))
            self.pre.append(_stmt(f"{ln} = {self.u32()}"))
            self._check(ptr, ln, name)
            window = f"mem.view[{ptr}:{ptr} + {ln}]"
            if lowering.is_str:
                self.pre.append(_try(
                    [_stmt(f"{var} = str({window}, 'utf-8')")],
                    [("UnicodeDecodeError", "err",
                      [_stmt(f"raise _utf8_trap({self.qn}, {name!r}, err) from None")])]))
            else:
                if not lowering.writable:
                    window = f"mem.rview[{ptr}:{ptr} + {ln}]"
                self.pre.append(_stmt(f"{var} = {window}"))
                self.release.append(var)
            self.args.append(var)
        elif isinstance(lowering, IoSlicesLowering):
            self.uses_memory = True
            ptr, count = self.u32(), self.u32()
            self.pre.append(_stmt(
                f"{var} = _io_slices(mem, {ptr}, {count}, {lowering.writable}, "
                f"{self.qn}, {name!r})"))
            self.release.append(f"*{var}")
            self.args.append(var)
        elif isinstance(lowering, PtrLowering):
            addr = f"{var}_addr"
            self.pre.append(_stmt(f"{addr} = {self.u32()}"))
            self._check(addr, str(lowering.size), name)
            cls = self.refs.ptr_class(lowering.target)
            # object.__new__ + two slot stores: half the cost of calling __init__
            self.pre.append(_stmt(f"{var} = _new({cls})"))
            self.pre.append(_stmt(f"{var}.memory = mem"))
            self.pre.append(_stmt(f"{var}.address = {addr}"))
            self.args.append(var)
        elif isinstance(lowering, CustomLowering):
            cls = self.refs.user(lowering.cls)
            raws = ", ".join(self.raw(t) for t in lowering.wasm_types)
            self.uses_host = True
            self.pre.append(_stmt(f"{var} = {cls}.from_wasm(host, ctx, {raws})"))
            self.args.append(var)
        elif isinstance(lowering, CallerLowering):
            self.args.append("ctx")
        else:  # pragma: no cover - signature.py only produces the kinds above
            raise TypeError(f"no emitter for {lowering!r}")

    def scalar_param(self, s: Scalar) -> str:
        raw = self.raw(s.valtype)
        if s.is_float:
            return raw
        if s.signed:
            if s.bits in (32, 64):
                return raw
            half = 1 << (s.bits - 1)
            return f"((({raw}) & {_MASK[s.bits]}) ^ {hex(half)}) - {hex(half)}"
        return f"{raw} & {_MASK[s.bits]}"

    # results ----------------------------------------------------------------

    def lift(self, value: str, lifting: Lifting, targets: list[str]) -> list[Node]:
        """Statements storing the lifted ``value`` into result slots ``targets``."""
        out: list[Node] = []
        if isinstance(lifting, CustomLifting):
            self.uses_host = True
            cls = self.refs.user(lifting.cls)
            n = len(lifting.wasm_types)
            lifted = f"{value}_wasm"
            out.append(_stmt(f"{lifted} = {cls}.to_wasm(host, ctx, {value})"))
            if n == 1:
                parts = [(lifted, lifting.wasm_types[0])]
            else:
                out.append(_stmt(f"{', '.join(f'{lifted}{i}' for i in range(n))}, = {lifted}"))
                parts = [(f"{lifted}{i}", t) for i, t in enumerate(lifting.wasm_types)]
        else:
            parts = [(value, lifting.wasm_types[0])]
        for (expr, valtype), target in zip(parts, targets):
            out.extend(self.check_value(expr, valtype, target))
        return out

    def check_value(self, expr: str, valtype: str, target: str) -> list[Node]:
        """Range/type check of one wasm result value, then store it.

        Both engines must reject the same values (wasmtime's raw slots would
        silently wrap), so the check is explicit; on failure ``Caller.fail``
        finds ``result`` in the wrapper's locals and names the bad value.
        """
        if valtype in _RANGE:
            lo, hi = _RANGE[valtype]
            # ``| 0`` rejects floats (which compare fine) and turns IntEnums into ints
            return [_if(f"not {lo} <= {expr} <= {hi}",
                        [_stmt(f"raise OverflowError('out of range for {valtype}')")]),
                    _stmt(f"{target} = {expr} | 0")]
        # ``* 1.0`` rejects non-numbers and ints too large for a float, keeps -0.0
        return [_stmt(f"{target} = {expr} * 1.0")]

    def out_slots(self, outs: Sequence[OutSlot]) -> list[str]:
        addrs = []
        for o in outs:
            addr = f"{o.name}_addr"
            self.pre.append(_stmt(f"{addr} = {self.u32()}"))
            self._check(addr, str(o.size), o.name)
            addrs.append(addr)
        return addrs

    def write_out(self, slot: OutSlot, addr: str, value: str) -> list[Node]:
        if slot.lifting is not None:
            cls = self.refs.user(slot.lifting.cls)
            self.uses_host = True
            pack = self.refs.scalar(slot.target)
            return [_stmt(f"{pack}(mem.view, {addr}, {cls}.to_wasm(host, ctx, {value}))")]
        if isinstance(slot.target, Scalar):
            return [_stmt(f"{self.refs.scalar(slot.target)}(mem.view, {addr}, {value})")]
        layout = self.refs.layout(slot.target)
        return [_stmt(f"{layout}.write(mem.view, {addr}, {value})")]

    # assembly ---------------------------------------------------------------

    def build(self) -> cst.FunctionDef:
        fn = self.fn
        for p in fn.params:
            self.lower(p.name, p.lowering)
        res = fn.result
        addrs = self.out_slots(res.outs) if res.kind == "spill" else []
        method = "ctx.methods[slot]" if not self.d.positional else "method"
        call = f"{method}({', '.join(self.args)})"
        body: list[Node] = list(self.pre)
        if res.kind == "none":
            call_stmt = _stmt(call)
        else:
            call_stmt = _stmt(f"result = {call}")
        if self.release:
            release = [_stmt(f"_release({v[1:]})") if v.startswith("*") else _stmt(f"{v}.release()")
                       for v in self.release]
            body.append(_try([call_stmt], final=release))
        else:
            body.append(call_stmt)
        body.extend(self.results())
        if self.d.positional:
            handler = [_stmt(f"ctx.fail(exc, {self.qn}, locals())"), _stmt("raise")]
        else:
            handler = [_stmt(f"return _trap(ctx.fail(exc, {self.qn}, locals()))")]
        prologue: list[Node] = []
        if not self.d.positional:
            prologue.append(_stmt("ctx = _tls.caller"))
            if self.uses_host:
                body.insert(0, _stmt("host = ctx.hosts[slot]"))
        if self.uses_memory:
            body.insert(0, _stmt("mem = ctx.memory"))
        inner = _def(fn.name if fn.name.isidentifier() and not keyword.iskeyword(fn.name)
                     else _identifier(fn.name),
                     self.wrapper_params(),
                     prologue + [_try(body, [("BaseException", "exc", handler)])])
        return self.factory(inner, addrs)

    def results(self) -> list[Node]:
        res = self.fn.result
        out: list[Node] = []
        if res.kind == "none":
            return [_stmt("return 0")] if not self.d.positional else []
        slots = self.result_targets(res.wasm_types)
        if res.kind == "single":
            out.extend(self.lift("result", res.values[0], slots))
        elif res.kind == "spill":
            addrs = [f"{o.name}_addr" for o in res.outs]
            names = ["first"] + [o.name for o in res.outs]
            writes: list[Node] = [_stmt(f"{', '.join(names)} = result")]
            for o, a in zip(res.outs, addrs):
                writes.extend(self.write_out(o, a, o.name))
            # A bare first value (not a tuple) means "status only": the
            # out-pointers are left untouched, as WASI does on errors.
            out.append(cst.If(test=cst.parse_expression("result.__class__ is tuple"),
                              body=_block(writes),
                              orelse=cst.Else(body=_block([_stmt("first = result")]))))
            out.extend(self.lift("first", res.values[0], slots))
        else:  # multi
            n = len(res.values)
            names = [f"value{i}" for i in range(n)]
            out.append(_stmt(f"{', '.join(names)}, = result"))
            pos = 0
            for name, lifting in zip(names, res.values):
                k = len(lifting.wasm_types)
                out.extend(self.lift(name, lifting, slots[pos:pos + k]))
                pos += k
        if self.d.positional:
            out.append(_stmt("return " + ", ".join(slots)
                             + ("," if len(slots) > 1 else "")))
        else:
            out.append(_stmt("return 0"))
        return out

    def result_targets(self, types: Sequence[str]) -> list[str]:
        if self.d.positional:
            return [f"r{i}" for i in range(len(types))]
        return [f"args[{i}].{self.d.raw_field[t]}" for i, t in enumerate(types)]

    def wrapper_params(self) -> list[str]:
        if self.d.positional:
            return [f"p{i}" for i in range(len(self.fn.wasm_params))]
        return ["env", "caller", "args", "nargs"]

    def factory(self, inner: cst.FunctionDef, addrs: list[str]) -> cst.FunctionDef:
        fn = self.fn
        doc = f"{fn.qualname} {fn.signature}  <- {fn.owner.__qualname__}.{fn.attr}"
        name = f"{self.d.name}_{_identifier(fn.namespace)}__{_identifier(fn.name)}"
        if self.d.positional:
            setup = [_stmt("method = ctx.methods[slot]")]
            if self.uses_host:
                setup.append(_stmt("host = ctx.hosts[slot]"))
            return _def(name, ["ctx", "slot"], setup + [inner, _stmt(f"return {inner.name.value}")],
                        doc)
        return _def(name, ["slot"], [inner, _stmt(f"return {inner.name.value}")], doc)


# --------------------------------------------------------------------------


_HEADER = '''\
# Generated by funk's codegen from {origin} for the {backend} backend.
# This is the code that runs: funk executes this text.  Do not edit it;
# print it again with `python -m codegen {origin} --backend {backend}`.
#
{how}
'''

_HOW = {
    "wasmtime": ("The wrapper is a wasmtime C-API unchecked callback; `slot` selects the "
                 "bound method in the calling instance's Caller (`_tls.caller`)."),
    "wasmer": ("The wrapper is a closure over one instance's Caller `ctx`, called by "
               "wasmer with the wasm values as arguments."),
}


def emit_module(cls: type, functions: Sequence[HostFunction], backend: str) -> GeneratedModule:
    """The wrapper module of ``cls``'s host functions for ``backend``."""
    dialect = DIALECTS[backend]
    refs = _Refs()
    defs: list[cst.FunctionDef] = []
    factories: dict[str, str] = {}
    for fn in functions:
        node = _WrapperBuilder(fn, dialect, refs).build()
        defs.append(node)
        factories[fn.qualname] = node.name.value
    origin = f"{cls.__module__}:{cls.__qualname__}"
    supplied = ", ".join(sorted(refs.names)) or "none here"
    how = textwrap.fill(
        "Each factory below returns the wrapper of one host function. " + _HOW[backend]
        + f" Names not defined in this file ({supplied}) are the definitions' own objects, "
        "supplied by funk when it loads the module.", width=78,
        initial_indent="# ", subsequent_indent="# ")
    header = _HEADER.format(origin=origin, backend=backend, how=how)
    imports = [
        "import struct as _struct",
        "from funk.records import record_layout",
        "from funk.runtime import _io_slices, _new, _release, _utf8_trap",
        "from funk.types import " + ", ".join(["Ptr"] + sorted(refs.scalars)),
    ]
    if backend == "wasmtime":
        imports.append("from funk.backends.wasmtime import _tls, _trap")
    body: list[cst.BaseStatement] = [_stmt(line) for line in imports]
    body.extend(_stmt(line) for line in refs.setup)
    module = cst.Module(body=body)  # type: ignore[arg-type]
    code = header + "\n" + module.code
    for node in defs:
        code += "\n\n" + cst.Module(body=[node]).code
    return GeneratedModule(code, dict(refs.names), factories)

