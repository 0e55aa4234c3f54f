"""``wat/all_imports.wat``: the hand-written Lunatic 0.6 import fixture.

The file imports every host function a Lunatic 0.6 guest may use: the 51
functions of ``lunatic::error``, ``lunatic::message``, ``lunatic::networking``
and ``lunatic::process`` (names and signatures from the specification's
import table) and the 46 ``wasi_snapshot_preview1`` functions.  It is edited by
hand when the ABI changes on purpose, so these tests pin what can be checked
today:

* it compiles on both engines and exports only its memory;
* it imports exactly the expected names, each once;
* its WASI signatures are those funk derives from ``lunatic_api.wasi.Wasi``;
* its WASI part links against wasmtime's own WASI.

Left for the next issue: checking the ``lunatic::*`` signatures against the
Lunatic host classes (they do not exist yet), i.e. that the whole file links
against our Lunatic host.  Until then those signatures are checked only by
review against the specification.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import wasmtime

import funk
from funk.linking import ImportSpec
from lunatic_api.wasi import Wasi
from tests.wasi_support import link_with_native_wasi

WAT_PATH = Path(__file__).resolve().parent.parent / "wat" / "all_imports.wat"

WASI = "wasi_snapshot_preview1"

#: The spec's import table (§2), in its order, per namespace.
LUNATIC: dict[str, tuple[str, ...]] = {
    "lunatic::error": ("string_size", "to_string", "drop"),
    "lunatic::message": (
        "create_data", "write_data", "read_data", "seek_data", "get_tag", "data_size",
        "push_process", "take_process", "push_tcp_stream", "take_tcp_stream", "send",
        "send_receive_skip_search", "receive",
    ),
    "lunatic::networking": (
        "resolve", "drop_dns_iterator", "resolve_next", "tcp_bind", "drop_tcp_listener",
        "tcp_accept", "tcp_connect", "drop_tcp_stream", "clone_tcp_stream",
        "tcp_write_vectored", "tcp_read", "tcp_flush",
    ),
    "lunatic::process": (
        "create_config", "drop_config", "allow_namespace", "add_plugin",
        "create_environment", "drop_environment", "add_module", "add_this_module",
        "drop_module", "spawn", "inherit_spawn", "drop_process", "clone_process", "sleep_ms",
        "die_when_link_dies", "this", "id", "this_env", "link", "unlink", "register",
        "unregister", "lookup",
    ),
}

#: One import per line: ``(import "ns" "name" (func $ns.name ...))``.
_IMPORT_LINE = re.compile(r'^\s*\(import "([^"]+)" "([^"]+)" \(func (\S+)')


def _imports(backend: str) -> tuple[ImportSpec, ...]:
    return funk.compile(WAT_PATH, backend).imports


def _wasi_import_lines() -> list[str]:
    """The file's WASI import lines, verbatim."""
    return [line.strip() for line in WAT_PATH.read_text().splitlines()
            if line.lstrip().startswith(f'(import "{WASI}" ')]


def test_lunatic_literal_has_the_specs_51_names() -> None:
    assert sum(len(names) for names in LUNATIC.values()) == 51
    for namespace, names in LUNATIC.items():
        assert len(set(names)) == len(names), namespace


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
