"""``wat/all_imports.wat``: the hand-written Lunatic 0.6 import fixture.

The file imports every host function a Lunatic 0.6 guest may use: the 51
functions of ``lunatic::error``, ``lunatic::message``, ``lunatic::networking``
and ``lunatic::process`` (names and signatures from the specification's
import table) and the 46 ``wasi_snapshot_preview1`` functions.  It is edited by
hand when the ABI changes on purpose; these tests are its signature regression:

* it compiles on both engines and exports only its memory;
* it imports exactly the expected names, each once, with ``$namespace.name`` ids;
* the set of host functions defined in code (the classes of
  ``lunatic_api.context.host_classes()``) and the set of imports in the file
  are the same, with the same wasm signatures; a difference fails naming it;
* codegen (``codegen.wat.emit_wat`` on those classes) regenerates the same
  ``(module, name, signature)`` set;
* its WASI part links against wasmtime's own WASI;
* it instantiates against the Lunatic host on both engines with everything
  allowed, with nothing allowed (every import a stub), and with partial
  namespace filters (spec section 1.7); every stub traps naming its function,
  also ``environ_sizes_get`` and ``path_create_directory``, which v0.6.0 forgot
  to filter (spec section 9 item 5; this runtime filters them).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest
import wasmtime

import funk
from codegen.wat import emit_wat
from funk.instance import Instance
from funk.linking import ImportSpec, LinkPlan
from funk.signature import HostFunction
from lunatic_api import Config, Ending, Runtime
from lunatic_api.context import ProcessContext, host_classes
from lunatic_api.environment import Environment, LunaticModule
from lunatic_api.limits import METER_NAMESPACE, Meter
from lunatic_api.process import Process
from lunatic_api.wasi import Wasi
from tests.wasi_support import link_with_native_wasi

WAT_PATH = Path(__file__).resolve().parent.parent / "wat" / "all_imports.wat"

WASI = "wasi_snapshot_preview1"

#: The spec's import table (section 2), in its order: namespace, name, params
#: (comma-separated) and result, ``-`` for none.
SPEC_TABLE = """
lunatic::error       string_size               i64                          i32
lunatic::error       to_string                 i64,i32                      -
lunatic::error       drop                      i64                          -
lunatic::message     create_data               i64,i64                      -
lunatic::message     write_data                i32,i32                      i32
lunatic::message     read_data                 i32,i32                      i32
lunatic::message     seek_data                 i64                          -
lunatic::message     get_tag                   -                            i64
lunatic::message     data_size                 -                            i64
lunatic::message     push_process              i64                          i64
lunatic::message     take_process              i64                          i64
lunatic::message     push_tcp_stream           i64                          i64
lunatic::message     take_tcp_stream           i64                          i64
lunatic::message     send                      i64                          -
lunatic::message     send_receive_skip_search  i64,i32                      i32
lunatic::message     receive                   i64,i32                      i32
lunatic::networking  resolve                   i32,i32,i32,i32              i32
lunatic::networking  drop_dns_iterator         i64                          -
lunatic::networking  resolve_next              i64,i32,i32,i32,i32,i32      i32
lunatic::networking  tcp_bind                  i32,i32,i32,i32,i32,i32      i32
lunatic::networking  drop_tcp_listener         i64                          -
lunatic::networking  tcp_accept                i64,i32,i32                  i32
lunatic::networking  tcp_connect               i32,i32,i32,i32,i32,i32,i32  i32
lunatic::networking  drop_tcp_stream           i64                          -
lunatic::networking  clone_tcp_stream          i64                          i64
lunatic::networking  tcp_write_vectored        i64,i32,i32,i32,i32          i32
lunatic::networking  tcp_read                  i64,i32,i32,i32,i32          i32
lunatic::networking  tcp_flush                 i64,i32                      i32
lunatic::process     create_config             i64,i64                      i64
lunatic::process     drop_config               i64                          -
lunatic::process     allow_namespace           i64,i32,i32                  -
lunatic::process     add_plugin                i64,i32,i32,i32              i32
lunatic::process     create_environment        i64,i32                      i32
lunatic::process     drop_environment          i64                          -
lunatic::process     add_module                i64,i32,i32,i32              i32
lunatic::process     add_this_module           i64,i32                      i32
lunatic::process     drop_module               i64                          -
lunatic::process     spawn                     i64,i64,i32,i32,i32,i32,i32  i32
lunatic::process     inherit_spawn             i64,i32,i32,i32,i32,i32      i32
lunatic::process     drop_process              i64                          -
lunatic::process     clone_process             i64                          i64
lunatic::process     sleep_ms                  i64                          -
lunatic::process     die_when_link_dies        i32                          -
lunatic::process     this                      -                            i64
lunatic::process     id                        i64,i32                      -
lunatic::process     this_env                  -                            i64
lunatic::process     link                      i64,i64                      -
lunatic::process     unlink                    i64                          -
lunatic::process     register                  i32,i32,i32,i32,i64,i64      i32
lunatic::process     unregister                i32,i32,i32,i32,i64          i32
lunatic::process     lookup                    i32,i32,i32,i32,i32          i32
"""

Key = tuple[str, str]
"""``(namespace, name)`` of a host function / import."""

Signature = tuple[tuple[str, ...], tuple[str, ...]]
"""``(params, results)`` as wasm type names."""


def _spec_signatures() -> dict[Key, Signature]:
    out: dict[Key, Signature] = {}
    for line in SPEC_TABLE.strip().splitlines():
        namespace, name, params, result = line.split()
        out[namespace, name] = (() if params == "-" else tuple(params.split(",")),
                                () if result == "-" else (result,))
    return out


SPEC: dict[Key, Signature] = _spec_signatures()

#: The spec's import table, names only, per namespace (in the table's order).
LUNATIC: dict[str, tuple[str, ...]] = {
    namespace: tuple(name for ns, name in SPEC if ns == namespace)
    for namespace in dict.fromkeys(ns for ns, _ in SPEC)
}

#: One import per line: ``(import "ns" "name" (func $ns.name ...))``.
_IMPORT_LINE = re.compile(r'^\s*\(import "([^"]+)" "([^"]+)" \(func (\S+)')


def _imports(backend: str) -> tuple[ImportSpec, ...]:
    return funk.compile(WAT_PATH, backend).imports


def _wasi_import_lines() -> list[str]:
    """The file's WASI import lines, verbatim."""
    return [line.strip() for line in WAT_PATH.read_text().splitlines()
            if line.lstrip().startswith(f'(import "{WASI}" ')]


def test_spec_table_has_the_specs_51_names() -> None:
    assert len(SPEC) == len(SPEC_TABLE.strip().splitlines()) == 51
    assert list(LUNATIC) == ["lunatic::error", "lunatic::message", "lunatic::networking",
                             "lunatic::process"]
    assert [len(names) for names in LUNATIC.values()] == [3, 13, 12, 23]


def test_compiles_and_exports_only_its_memory(backend: str) -> None:
    module = funk.compile(WAT_PATH, backend)
    assert module.exports == ("memory",)
    assert {imp.kind for imp in module.imports} == {"func"}


def test_memory_is_one_page() -> None:
    engine = wasmtime.Engine()
    module = wasmtime.Module(engine, WAT_PATH.read_text())
    [export] = module.exports
    assert export.name == "memory"
    assert isinstance(export.type, wasmtime.MemoryType)
    assert export.type.limits.min == 1


def test_no_import_is_duplicated(backend: str) -> None:
    counts = Counter((imp.namespace, imp.name) for imp in _imports(backend))
    assert [key for key, n in counts.items() if n > 1] == []


def test_imports_exactly_the_lunatic_functions(backend: str) -> None:
    imports = _imports(backend)
    lunatic = [imp for imp in imports if imp.namespace.startswith("lunatic::")]
    assert len(lunatic) == 51
    for namespace, names in LUNATIC.items():
        found = {imp.name for imp in lunatic if imp.namespace == namespace}
        assert found == set(names), f"{namespace}: missing {set(names) - found}, " \
                                    f"unexpected {found - set(names)}"
    assert {imp.namespace for imp in imports} == {*LUNATIC, WASI}


def test_imports_exactly_the_wasi_functions(backend: str) -> None:
    wasi = {imp.name for imp in _imports(backend) if imp.namespace == WASI}
    expected = {fn.name for fn in funk.functions_of(Wasi)}
    assert len(expected) == 46
    assert wasi == expected, f"missing {expected - wasi}, unexpected {wasi - expected}"


def test_wasi_signatures_equal_our_wasi_hosts(backend: str) -> None:
    ours = {fn.name: fn for fn in funk.functions_of(Wasi)}
    differing = [
        f"{imp.name}: file has {imp.signature}, Wasi has {ours[imp.name].signature}"
        for imp in _imports(backend)
        if imp.namespace == WASI
        and (imp.params, imp.results) != (tuple(ours[imp.name].wasm_params),
                                          tuple(ours[imp.name].wasm_results))
    ]
    assert not differing, "WASI signatures differ:\n" + "\n".join(differing)


def test_ids_are_namespace_dot_name() -> None:
    """Each import line names its function ``$namespace.name``."""
    lines = [m for m in map(_IMPORT_LINE.match, WAT_PATH.read_text().splitlines()) if m]
    assert len(lines) == 51 + 46
    wrong = [m.group(3) for m in lines if m.group(3) != f"${m.group(1)}.{m.group(2)}"]
    assert wrong == []


def test_wasi_part_links_against_wasmtimes_own_wasi() -> None:
    lines = _wasi_import_lines()
    assert len(lines) == 46
    wat = "(module\n  " + "\n  ".join(lines) + "\n)\n"
    assert link_with_native_wasi(wat) == 46  # raises on any signature mismatch


# --------------------------------------------------------------------------- file vs host code


def _text(signature: Signature) -> str:
    params, results = signature
    return ImportSpec("", "", "func", params, results).signature


def _file_signatures(backend: str) -> dict[Key, Signature]:
    """The file's imports as the engine reads them."""
    return {(imp.namespace, imp.name): (imp.params, imp.results) for imp in _imports(backend)}


def _code_functions() -> list[HostFunction]:
    """Every host function the Lunatic host classes define."""
    return [fn for cls in host_classes() for fn in funk.functions_of(cls)]


def _code_signatures() -> dict[Key, Signature]:
    return {(fn.namespace, fn.name): (tuple(fn.wasm_params), tuple(fn.wasm_results))
            for fn in _code_functions()}


def name_differences(code: Mapping[Key, Signature], file: Mapping[Key, Signature],
                     source: str = "code") -> list[str]:
    """One line per function that only one side has, naming it."""
    only_code = [f"defined in {source} but not imported by {WAT_PATH.name}: {ns}.{name} "
                 f"{_text(code[ns, name])}" for ns, name in sorted(code.keys() - file.keys())]
    only_file = [f"imported by {WAT_PATH.name} but not defined in {source}: {ns}.{name} "
                 f"{_text(file[ns, name])}" for ns, name in sorted(file.keys() - code.keys())]
    return only_code + only_file


def signature_differences(code: Mapping[Key, Signature], file: Mapping[Key, Signature],
                          source: str = "code") -> list[str]:
    """One line per function both sides have with different wasm signatures."""
    return [f"{ns}.{name}: {WAT_PATH.name} imports {_text(file[ns, name])}, {source} defines "
            f"{_text(code[ns, name])}"
            for ns, name in sorted(code.keys() & file.keys()) if code[ns, name] != file[ns, name]]


def test_lunatic_signatures_equal_the_spec_table(backend: str) -> None:
    file = _file_signatures(backend)
    lunatic = {key: sig for key, sig in file.items() if key[0] != WASI}
    assert name_differences(SPEC, lunatic, "the spec table") == []
    assert signature_differences(SPEC, lunatic, "the spec table") == []


def test_file_imports_exactly_the_host_functions_in_code(backend: str) -> None:
    differences = name_differences(_code_signatures(), _file_signatures(backend))
    assert not differences, "\n".join(differences)


def test_file_signatures_equal_the_host_code(backend: str) -> None:
    differences = signature_differences(_code_signatures(), _file_signatures(backend))
    assert not differences, "\n".join(differences)


def test_host_classes_are_the_four_namespaces_and_wasi() -> None:
    namespaces = [{fn.namespace for fn in funk.functions_of(cls)} for cls in host_classes()]
    assert namespaces == [{"lunatic::error"}, {"lunatic::message"}, {"lunatic::process"},
                          {"lunatic::networking"}, {WASI}]
    assert len(_code_functions()) == len(_code_signatures()) == 51 + 46


def test_differences_name_the_function() -> None:
    """The comparison names each kind of difference (so a failure says what to fix)."""
    code = _code_signatures()
    file = dict(code)
    del file["lunatic::process", "sleep_ms"]
    file["lunatic::process", "spawn"] = (("i64", "i32"), ("i32",))
    file["lunatic::process", "kill"] = (("i64",), ())
    assert name_differences(code, file) == [
        "defined in code but not imported by all_imports.wat: lunatic::process.sleep_ms "
        "(i64) -> ()",
        "imported by all_imports.wat but not defined in code: lunatic::process.kill "
        "(i64) -> ()",
    ]
    assert signature_differences(code, file) == [
        "lunatic::process.spawn: all_imports.wat imports (i64, i32) -> i32, code defines "
        "(i64, i64, i32, i32, i32, i32, i32) -> i32",
    ]
    assert name_differences(code, code) == signature_differences(code, code) == []


def _import_statements(text: str) -> set[str]:
    """Each ``(import ...)`` of a WAT text, without indentation or trailing comment."""
    return {line.split(";;")[0].strip() for line in text.splitlines()
            if line.lstrip().startswith("(import ")}


def test_codegen_regenerates_the_files_imports(backend: str) -> None:
    emitted = emit_wat(_code_functions())
    regenerated = {(imp.namespace, imp.name, imp.signature)
                   for imp in funk.compile(emitted, backend).imports}
    in_file = {(imp.namespace, imp.name, imp.signature) for imp in _imports(backend)}
    assert len(regenerated) == 97
    only_codegen, only_file = sorted(regenerated - in_file), sorted(in_file - regenerated)
    assert (only_codegen, only_file) == ([], []), (
        f"codegen emits, the file lacks: {only_codegen}; the file has, codegen does not "
        f"emit: {only_file}")
    # the import statements are the same text too (ids included)
    assert _import_statements(emitted) == _import_statements(WAT_PATH.read_text())


# --------------------------------------------------------------------------- instantiating


@contextmanager
def _instance(environment: Environment, module: LunaticModule) -> Iterator[Instance]:
    """``module`` instantiated against the host objects of a process (never started).

    One object per class of ``host_classes()``, as spawning builds them: the
    Lunatic APIs share a ``ProcessContext``; WASI discards its output; the
    ``Meter`` serves the fuel checks every added module gets.
    """
    process = Process(environment, name="all_imports")
    context = ProcessContext(environment.runtime, process, module)
    wasi = Wasi(stdout=None, stderr=None)
    hosts = [wasi if cls is Wasi else cls(context) for cls in host_classes()]
    hosts.append(Meter(process, 0, yield_gil=False))
    instance = module.compiled.instantiate(hosts, environment.allow)
    try:
        yield instance
    finally:
        instance.close()
        context.release()
        wasi.close()


def _linked_for_real(module: LunaticModule) -> dict[Key, bool]:
    """Per import of ``module``: linked for real (True) or a trapping stub (False)."""
    plan = LinkPlan.build(module.compiled.imports, host_classes() + (Meter,),
                          module.environment.allow)
    return {(e.imp.namespace, e.imp.name): e.allowed for e in plan.entries
            if e.imp.namespace != METER_NAMESPACE}


def test_instantiates_with_everything_allowed(backend: str) -> None:
    environment = Runtime(backend).environment()
    assert environment.config.namespaces == ["lunatic::", "wasi_snapshot_preview1::"]
    assert environment.allow is None
    module = environment.add_module(WAT_PATH)
    with _instance(environment, module) as instance:
        assert tuple(instance.exports) == ("memory",)
    linked = _linked_for_real(module)
    assert len(linked) == 97 and all(linked.values())


def test_instantiates_with_nothing_allowed(backend: str) -> None:
    environment = Runtime(backend).environment(Config(namespaces=[]))
    module = environment.add_module(WAT_PATH)
    with _instance(environment, module) as instance:
        assert tuple(instance.exports) == ("memory",)
    linked = _linked_for_real(module)
    assert len(linked) == 97 and not any(linked.values())


def _caller_module(backend: str) -> str:
    """The file's import lines and memory, plus per import an export ``ns.name`` calling it
    with zero arguments and returning its results."""
    imports = sorted(_import_statements(WAT_PATH.read_text()))
    callers = []
    for imp in _imports(backend):
        args = " ".join(f"({kind}.const 0)" for kind in imp.params)
        result = f" (result {' '.join(imp.results)})" if imp.results else ""
        callers.append(f'(func (export "{imp.namespace}.{imp.name}"){result} '
                       f"(call ${imp.namespace}.{imp.name} {args}))")
    return "(module\n  " + "\n  ".join([*imports, '(memory (export "memory") 1)', *callers]) \
        + "\n)\n"


def _stub_text(namespace: str, name: str) -> str:
    return f"host function {namespace}.{name} is not allowed in this environment"


def _stubbed(key: Key, ending: str) -> bool:
    """Whether a process's ending (see ``_call_each``) is the trap of ``key``'s stub."""
    return _stub_text(*key) in ending


def _call_each(backend: str, namespaces: list[str], keys: Iterable[Key]) -> dict[Key, str]:
    """Spawn one process per function in ``keys``, calling it with zero arguments in an
    environment allowing ``namespaces``; how each ended (``"returned"`` or the
    failure message)."""
    runtime = Runtime(backend)
    module = runtime.environment(Config(namespaces=namespaces)).add_module(
        _caller_module(backend))
    processes = {key: runtime.spawn(module, f"{key[0]}.{key[1]}") for key in keys}
    endings: dict[Key, str] = {}
    for key, process in processes.items():
        outcome = process.join(30)
        assert outcome is not None, f"{key} is still running"
        endings[key] = "returned" if outcome.ending is Ending.RETURNED else outcome.message
    assert runtime.shutdown() == []
    return endings


def test_every_stub_traps_with_its_name(backend: str) -> None:
    keys = list(_file_signatures(backend))
    endings = _call_each(backend, [], keys)
    wrong = {f"{ns}.{name}": text for (ns, name), text in endings.items()
             if not _stubbed((ns, name), text)}
    assert len(endings) == 97 and wrong == {}


def test_stub_trap_names_the_function_on_the_outcome(backend: str) -> None:
    runtime = Runtime(backend)
    module = runtime.environment(Config(namespaces=[])).add_module(_caller_module(backend))
    outcome = runtime.spawn(module, "lunatic::process.spawn").join(30)
    assert outcome is not None and outcome.ending is Ending.FAILED
    assert isinstance(outcome.error, funk.Trap)
    assert outcome.error.function == "lunatic::process.spawn"
    assert "lunatic::process.spawn" in outcome.message


#: Functions safe to call with zero arguments where they are allowed: they
#: return, or trap for a reason of their own (an unknown id), without blocking
#: or touching anything outside the process.
PROBES: tuple[Key, ...] = (
    ("lunatic::error", "drop"), ("lunatic::message", "create_data"),
    ("lunatic::networking", "drop_dns_iterator"), ("lunatic::process", "this"),
    ("lunatic::process", "sleep_ms"), ("lunatic::process", "create_config"),
    ("lunatic::process", "spawn"), ("lunatic::process", "this_env"),
    (WASI, "args_sizes_get"), (WASI, "environ_sizes_get"), (WASI, "clock_time_get"),
    (WASI, "path_create_directory"), (WASI, "fd_fdstat_get"), (WASI, "random_get"),
    (WASI, "sched_yield"), (WASI, "proc_exit"),
)

Allowed = Callable[[str, str], bool]

#: (allowed prefixes, which functions that allows: written out independently)
FILTERS: dict[str, tuple[list[str], Allowed]] = {
    "nothing": ([], lambda ns, name: False),
    "empty-prefix": ([""], lambda ns, name: True),
    "default": (["lunatic::", "wasi_snapshot_preview1::"], lambda ns, name: True),
    "lunatic-proc": (["lunatic::proc"], lambda ns, name: ns == "lunatic::process"),
    "wasi-fd": (["wasi_snapshot_preview1::fd_"],
                lambda ns, name: ns == WASI and name.startswith("fd_")),
    "lunatic-only": (["lunatic::"], lambda ns, name: ns != WASI),
    "wasi-only": (["wasi_snapshot_preview1::"], lambda ns, name: ns == WASI),
    "not-segment-aware": (["lunatic::process::s", "lunatic::error::"],
                          lambda ns, name: ns == "lunatic::error"
                          or (ns, name) in {("lunatic::process", "sleep_ms"),
                                            ("lunatic::process", "spawn")}),
    "dot-is-not-the-separator": (["lunatic::message.receive", "wasi_snapshot_preview1.fd_"],
                                 lambda ns, name: False),
}


@pytest.mark.parametrize("case", FILTERS)
def test_namespace_filter(backend: str, case: str) -> None:
    namespaces, allowed = FILTERS[case]
    environment = Runtime(backend).environment(Config(namespaces=namespaces))
    module = environment.add_module(WAT_PATH)
    expected = {key: allowed(*key) for key in _file_signatures(backend)}
    assert len(expected) == 97
    assert {key: environment.allows(*key) for key in expected} == expected
    assert (environment.allow is None) == all(expected.values())
    assert _linked_for_real(module) == expected
    with _instance(environment, module) as instance:  # stubs or not, it instantiates
        assert tuple(instance.exports) == ("memory",)
    # call every stub, and the probes that are allowed
    called = [key for key, real in expected.items() if not real or key in PROBES]
    endings = _call_each(backend, namespaces, called)
    wrong = {f"{ns}.{name}": text for (ns, name), text in endings.items()
             if _stubbed((ns, name), text) == expected[ns, name]}
    assert wrong == {}
    assert sum(expected[key] for key in endings) == sum(allowed(*key) for key in PROBES)


@pytest.mark.parametrize("namespaces", [["lunatic::"], ["wasi_snapshot_preview1::fd_"], []])
def test_v060_filter_holes_are_closed(backend: str, namespaces: list[str]) -> None:
    """``environ_sizes_get`` and ``path_create_directory`` are stubs where WASI is not
    allowed (v0.6.0 left them working, spec section 9 item 5); allowed, they run."""
    holes = [(WASI, "environ_sizes_get"), (WASI, "path_create_directory")]
    endings = _call_each(backend, namespaces, holes)
    assert [key for key in holes if _stubbed(key, endings[key])] == holes, endings
    assert _call_each(backend, ["wasi_snapshot_preview1::"], holes) == {
        key: "returned" for key in holes}
