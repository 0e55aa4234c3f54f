"""The code generator: what ``python -m codegen`` prints is what runs.

* wrapper modules: the CLI prints exactly ``funk.generate.source``; the text
  parses; funk executes that very text (code objects carry its pseudo file
  name and tracebacks show its lines);
* ``--wat``: assembles, and imports exactly the host functions' signatures;
* ``--header``: declares every function with import attributes, and a C
  guest compiled against it imports exactly those signatures;
* introspection of ``HostFunction`` signatures;
* ``--check`` / ``--write`` on the committed artifacts.
"""

from __future__ import annotations

import ast
import linecache
import os
import re
import shutil
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any

import pytest
import wasmtime

import codegen.__main__ as cli
import codegen.artifacts
import funk
from funk.generate import factories, source
from funk.signature import HostFunction
from tests.hosts import TestHost

ROOT = Path(__file__).resolve().parent.parent
HEADER = ROOT / "tests" / "guests" / "include" / "funk_test_host.h"
SPEC = "tests.hosts:TestHost"


def _codegen(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"]
                                     if env.get("PYTHONPATH") else "")
    proc = subprocess.run([sys.executable, "-m", "codegen", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def _functions() -> tuple[HostFunction, ...]:
    return funk.functions_of(TestHost)


# --------------------------------------------------------------------------
# Wrapper modules


def test_cli_prints_exactly_the_generated_source() -> None:
    both = _codegen(SPEC).stdout
    assert both == source(TestHost, "wasmtime") + "\n" + source(TestHost, "wasmer") + "\n"
    for backend in ("wasmtime", "wasmer"):
        out = _codegen(SPEC, "--backend", backend).stdout
        assert out == source(TestHost, backend) + "\n"


def test_generated_source_parses_and_defines_every_factory(backend: str) -> None:
    text = source(TestHost, backend)
    tree = ast.parse(text)
    defs = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    made = factories(TestHost, backend)
    assert set(made) == {f.qualname for f in _functions()}
    for qualname, factory in made.items():
        assert factory.__name__ in defs
        # the factory's docstring names the function and its wasm signature
        fn = next(f for f in _functions() if f.qualname == qualname)
        doc = ast.get_docstring(defs[factory.__name__])
        assert doc == f"{fn.qualname} {fn.signature}  <- TestHost.{fn.attr}"
    # the header comment says how to print it again
    assert f"python -m codegen {SPEC} --backend {backend}" in text


def test_the_generated_text_is_what_runs(backend: str) -> None:
    text = source(TestHost, backend)
    lines = text.splitlines()
    filename = f"<funk {backend} wrappers of tests.hosts.TestHost>"
    made = factories(TestHost, backend)
    for factory in made.values():
        code = factory.__code__
        assert code.co_filename == filename
        # the code object starts at the `def` of that factory in the text
        assert lines[code.co_firstlineno - 1].startswith(f"def {factory.__name__}(")
    # the text registered for tracebacks is the generated text
    assert "".join(linecache.getlines(filename)) == text


def test_generated_source_is_deterministic() -> None:
    for backend in ("wasmtime", "wasmer"):
        assert source(TestHost, backend) == source(TestHost, backend)


FAIL_WAT = """(module
  (import "test" "fail" (func $fail (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "run") (param i32) (result i32) (call $fail (local.get 0))))
"""


def test_traceback_through_host_exception_shows_generated_line(backend: str) -> None:
    inst = funk.instantiate(FAIL_WAT, [TestHost()], backend=backend)
    with pytest.raises(funk.Trap) as info:
        inst.exports.run(42)
    cause = info.value.__cause__
    assert isinstance(cause, ValueError) and str(cause) == "failure 42"
    filename = f"<funk {backend} wrappers of tests.hosts.TestHost>"
    text_lines = source(TestHost, backend).splitlines()
    frames = [f for f in traceback.extract_tb(cause.__traceback__) if f.filename == filename]
    assert frames, "no frame of the generated wrapper in the traceback"
    frame = frames[-1]
    assert frame.name == "fail"
    assert frame.line == text_lines[frame.lineno - 1].strip()
    assert frame.line.startswith("result = ")
    assert "(" in frame.line and ")" in frame.line
    rendered = "".join(traceback.format_exception(type(cause), cause, cause.__traceback__))
    assert f'File "{filename}", line {frame.lineno}, in fail' in rendered
    assert frame.line in rendered
    # the host method's own frame follows the wrapper's
    assert rendered.index(filename) < rendered.index('raise ValueError(f"failure {code}")')


# --------------------------------------------------------------------------
# --wat


def _module_imports(wasm: bytes) -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    module = wasmtime.Module(wasmtime.Engine(), wasm)
    out = []
    for imp in module.imports:
        ty = imp.type
        assert isinstance(ty, wasmtime.FuncType), imp
        out.append((imp.module, imp.name or "", tuple(str(t) for t in ty.params),
                    tuple(str(t) for t in ty.results)))
    return sorted(out)


def _expected_imports(multi: bool = True) -> list[tuple[str, str, tuple[str, ...],
                                                         tuple[str, ...]]]:
    return sorted((f.namespace, f.name, f.wasm_params, f.wasm_results) for f in _functions()
                  if multi or f.result.kind != "multi")


def test_wat_imports_exactly_the_host_functions() -> None:
    wat = _codegen(SPEC, "--wat").stdout
    from codegen.wat import emit_wat

    assert wat == emit_wat(_functions(), header=f"Generated by funk's codegen from {SPEC}.")
    wasm = wasmtime.wat2wasm(wat)
    assert _module_imports(wasm) == _expected_imports()
    assert len(_expected_imports()) == len(_functions()) == 38
    # every import has the $namespace.name identifier
    for f in _functions():
        assert f'(func ${f.namespace}.{f.name}' in wat


def test_wat_module_links_on_each_engine(backend: str) -> None:
    wat = _codegen(SPEC, "--wat").stdout
    inst = funk.instantiate(wat, [TestHost()], backend=backend)
    assert isinstance(inst, funk.Instance)
    assert inst.exports.names() == ()


# --------------------------------------------------------------------------
# --header


def test_header_declares_every_function() -> None:
    header = _codegen(SPEC, "--header", "--guard", "MY_GUARD").stdout
    assert header.count("#ifndef MY_GUARD") == 1 and "#define MY_GUARD" in header
    assert header.rstrip().endswith("#endif /* MY_GUARD */")
    from codegen.c_header import c_name

    lines = header.splitlines()
    for f in _functions():
        attr = (f'__attribute__((import_module("{f.namespace}"), '
                f'import_name("{f.name}")))')
        if f.result.kind == "multi":
            assert attr not in header
            assert f"/* {f.qualname} {f.signature}: multi-value results cannot be declared" \
                in header
            continue
        assert header.count(attr) == 1, f.qualname
        decl = lines[lines.index(attr) + 1]
        assert re.match(rf"^[\w ]+\b{re.escape(c_name(f))}\(.*\);$", decl), decl
        # a comment with the wasm signature precedes the attribute
        assert lines[lines.index(attr) - 1].startswith(f"/* {f.qualname} {f.signature}")
    # records and enums of the API are defined with their sizes checked
    assert '_Static_assert(sizeof(Stat) == 32, "Stat layout");' in header
    assert '_Static_assert(sizeof(Point) == 8, "Point layout");' in header
    assert "Status_not_found = 2," in header
    assert "int32_t test_divmod(uint32_t a, uint32_t b, uint32_t *result1, " \
           "uint32_t *result2);" in header


def test_committed_header_matches_cli_output() -> None:
    if not HEADER.exists():  # being created by another change: create it the official way
        _codegen("--write")
    header = _codegen(SPEC, "--header", "--guard", "FUNK_TEST_HOST_H").stdout
    assert HEADER.read_text() == header


def _clang() -> str:
    clang = shutil.which("clang")
    if clang is None:
        pytest.skip("clang is not installed")
    return clang


def test_c_guest_compiled_against_header_imports_exact_signatures(tmp_path: Path,
                                                                  backend: str) -> None:
    """Compile a C guest that references every declared import with clang
    (wasm32, freestanding): its imports must be exactly the host signatures."""
    clang = _clang()
    from codegen.c_header import c_name

    header = _codegen(SPEC, "--header", "--guard", "T_H").stdout
    (tmp_path / "host.h").write_text(header)
    fns = [f for f in _functions() if f.result.kind != "multi"]
    refs = ", ".join(f"(void *)&{c_name(f)}" for f in fns)
    (tmp_path / "guest.c").write_text(
        '#include "host.h"\n'
        '__attribute__((export_name("refs"))) void *refs(int i) {\n'
        f"    static void *const table[] = {{{refs}}};\n"
        "    return table[i];\n}\n")
    out = tmp_path / "guest.wasm"
    proc = subprocess.run([clang, "--target=wasm32", "-ffreestanding", "-nostdlib", "-O1",
                           "-Wall", "-Werror", "-Wl,--no-entry", "-o", str(out),
                           str(tmp_path / "guest.c")], capture_output=True, text=True)
    if proc.returncode != 0 and ("unable to create target" in proc.stderr
                                 or "wasm-ld" in proc.stderr and "not found" in proc.stderr):
        pytest.skip(f"clang cannot target wasm32 here: {proc.stderr.strip()[:200]}")
    assert proc.returncode == 0, proc.stderr
    assert _module_imports(out.read_bytes()) == _expected_imports(multi=False)
    # and it links against TestHost
    inst = funk.instantiate(out, [TestHost()], backend=backend)
    assert "refs" in inst.exports


# --------------------------------------------------------------------------
# Introspection

_VT = r"(?:i32|i64|f32|f64)"
_SIG = re.compile(rf"^\((?:{_VT}(?:, {_VT})*)?\) -> (?:\(\)|{_VT}|\({_VT}(?:, {_VT})+\))$")


def test_every_host_function_has_a_signature() -> None:
    for f in _functions():
        assert _SIG.match(f.signature), f.signature
        params = ", ".join(f.wasm_params)
        res = f.wasm_results
        rtext = "()" if not res else res[0] if len(res) == 1 else f"({', '.join(res)})"
        assert f.signature == f"({params}) -> {rtext}"
        assert repr(f) == f"<HostFunction {f.qualname} {f.signature}>"
        assert len(f.wasm_param_names()) == len(f.wasm_params)
        assert f.owner is TestHost


@pytest.mark.parametrize("qualname, signature, names", [
    ("test.add", "(i32, i32) -> i32", ["a", "b"]),
    ("test.add64", "(i64, i64) -> i64", ["a", "b"]),
    ("test.mul_f", "(f32, f64) -> f64", ["a", "b"]),
    ("test.small", "(i32, i32, i32, i32) -> i32", ["a", "b", "c", "d"]),
    ("test.count_a", "(i32, i32) -> i32", ["words_ptr", "words_len"]),
    ("test.fill", "(i32, i32, i32) -> ()", ["buf_ptr", "buf_len", "byte"]),
    ("test.gather", "(i32, i32) -> i32", ["parts_ptr", "parts_count"]),
    ("test.store_u64", "(i32, i64) -> ()", ["p", "value"]),
    ("test.divmod", "(i32, i32, i32, i32) -> i32", ["a", "b", "result1", "result2"]),
    ("test.make_stat", "(i64, i32) -> i32", ["size", "result1"]),
    ("test.wide", "(i32, i32, i32) -> i64", ["x", "result1", "result2"]),
    ("test.open_two", "(i32, i32, i32) -> i32", ["data_ptr", "data_len", "result1"]),
    ("test.pair", "(i32) -> (i32, i64)", ["x"]),
    ("test.triple", "() -> (f64, i32, i32)", []),
    ("test.mix", "(i32, i32) -> i32", ["a", "b"]),
    ("test.open_blob", "(i32, i32) -> i64", ["data_ptr", "data_len"]),
    ("test.blob_len", "(i64) -> i32", ["blob"]),
    ("test.close_blob", "(i64) -> i32", ["blob_id"]),
    ("test.memory_size", "() -> i32", []),
    ("test.interrupt", "() -> ()", []),
    ("other.renamed-function", "(i32) -> i32", ["x"]),
])
def test_signatures_of_test_host(qualname: str, signature: str, names: list[str]) -> None:
    fn = {f.qualname: f for f in _functions()}[qualname]
    assert fn.signature == signature
    assert fn.wasm_param_names() == names


def test_out_pointer_params_are_part_of_wasm_params() -> None:
    fns = {f.qualname: f for f in _functions()}
    divmod_ = fns["test.divmod"]
    assert [p.name for p in divmod_.params] == ["a", "b"]
    assert divmod_.wasm_params == ("i32", "i32", "i32", "i32")
    assert [o.name for o in divmod_.result.outs] == ["result1", "result2"]
    assert divmod_.result.kind == "spill"
    make_stat = fns["test.make_stat"]
    assert make_stat.wasm_params == ("i64", "i32")
    assert make_stat.result.outs[0].size == 32
    assert fns["test.wide"].result.outs[1].size == 1
    assert fns["test.pair"].result.kind == "multi"
    assert "helper" not in {f.attr for f in _functions()}  # @internal
    assert fns["other.renamed-function"].attr == "renamed"


# --------------------------------------------------------------------------
# --check / --write


def test_check_passes_on_the_repository() -> None:
    if not HEADER.exists():
        _codegen("--write")
    proc = _codegen("--check", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "generated files are up to date" in proc.stdout


def _render_artifacts() -> list[tuple[str, str]]:
    return [(a.path, a.render()) for a in codegen.artifacts.ARTIFACTS()]


def test_check_fails_with_a_diff_on_a_stale_copy(tmp_path: Path, monkeypatch: Any,
                                                 capsys: Any) -> None:
    artifacts = _render_artifacts()
    assert [p for p, _ in artifacts] == ["tests/guests/include/funk_test_host.h",
                                         "examples/include/lunatic.h",
                                         "examples/include/lunatic_plugin.h"]
    for other, text in artifacts[1:]:  # up to date: only the first one is stale
        (tmp_path / other).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / other).write_text(text)
    path, expected = artifacts[0]
    target = tmp_path / path
    target.parent.mkdir(parents=True)
    stale = expected.replace("int32_t test_add(int32_t a, int32_t b);",
                             "int32_t test_add(int32_t a);")
    assert stale != expected
    target.write_text(stale)
    monkeypatch.setattr(codegen.artifacts, "ROOT", tmp_path)

    assert cli.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert f"{path} is out of date with its definitions:" in out
    assert f"--- {path} (committed)" in out and f"+++ {path} (generated)" in out
    assert "-int32_t test_add(int32_t a);" in out
    assert "+int32_t test_add(int32_t a, int32_t b);" in out
    assert "1 generated file(s) stale: run `python -m codegen --write`" in out
    assert target.read_text() == stale  # --check never writes

    assert cli.main(["--write"]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    assert target.read_text() == expected
    assert cli.main(["--check"]) == 0
    assert "generated files are up to date" in capsys.readouterr().out


def test_check_fails_when_the_file_is_missing(tmp_path: Path, monkeypatch: Any,
                                              capsys: Any) -> None:
    monkeypatch.setattr(codegen.artifacts, "ROOT", tmp_path)
    assert cli.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "funk_test_host.h is out of date" in out
    assert "lunatic.h is out of date" in out
    assert "lunatic_plugin.h is out of date" in out
    assert "3 generated file(s) stale" in out
    assert not (tmp_path / "tests").exists()
    assert cli.main(["--write"]) == 0
    for path, text in _render_artifacts():
        assert (tmp_path / path).read_text() == text


def test_cli_usage_errors() -> None:
    proc = _codegen(check=False)
    assert proc.returncode == 2
    assert "name at least one module:Class" in proc.stderr
    proc = _codegen("tests.hosts.TestHost", check=False)
    assert proc.returncode != 0
    assert "expected module:Class" in proc.stderr


@funk.host_functions(namespace="shadow")
class _Shadowing:
    """Parameters named like the generated wrapper's own variables and builtins."""

    def take(self, locals: funk.types.Bytes, mem: funk.types.u32, args: funk.types.Str,
             result: funk.types.Ptr[funk.types.u64]) -> funk.types.u32:
        result.set(len(locals) + mem + len(args))
        return 0


SHADOW_WAT = """
(module
  (import "shadow" "take" (func $take (param i32 i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "ok") (result i64)
    (drop (call $take (i32.const 0) (i32.const 3) (i32.const 4) (i32.const 0) (i32.const 2)
                      (i32.const 64)))
    (i64.load (i32.const 64)))
  (func (export "bad")
    (drop (call $take (i32.const 70000) (i32.const 3) (i32.const 4) (i32.const 0) (i32.const 2)
                      (i32.const 64)))))
"""


def test_parameters_may_be_named_like_the_wrappers_own_variables(backend: str) -> None:
    """A parameter called ``locals`` (or ``mem``, ``args``, ``result``) works, and so does the
    failure path, which reads the wrapper's ``locals()``: it used to call the memoryview."""
    instance = funk.instantiate(SHADOW_WAT, [_Shadowing()], backend=backend)
    assert instance.exports.ok() == 3 + 4 + 2
    with pytest.raises(funk.Trap, match="parameter 'locals'"):
        instance.exports.bad()
