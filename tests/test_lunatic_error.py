"""ABI conformance of ``lunatic::error`` (spec section 3 and 1.5), on both engines.

Error resources come from calls using the error convention; here mostly
``add_plugin`` of empty bytes, which fails with a known text, and a
spawn of a missing (non-ASCII) function name.  Covered: ``string_size`` is a
byte count, ``to_string`` writes exactly that many bytes (no terminator),
ids count from 0 per process and are never reused, ``drop`` removes (double
drop traps), every unknown id traps, out-of-bounds ``to_string`` traps, and
error tables are per process.
"""

from __future__ import annotations

import pytest

from funk.plugins import Plugin, PluginError
from tests.lunatic_support import Lab, assert_returned, assert_trap, lab_fixture  # noqa: F401

OUT = 0x800  # out-pointer of the calls that create errors

#: ``$plugin_error () -> i64``: a new error resource via ``add_plugin`` of no bytes
MAKE_ERROR = f"""
(func $plugin_error (result i64)
  (if (i32.ne (call $lunatic::process.add_plugin
                 (call $lunatic::process.create_config (i64.const 0) (i64.const 0))
                 (i32.const 0) (i32.const 0) (i32.const {OUT}))
              (i32.const 1))
    (then unreachable))
  (i64.load (i32.const {OUT})))
"""



def _empty_plugin_error() -> bytes:
    try:
        Plugin(b"")
    except PluginError as exc:
        return str(exc).encode()
    raise AssertionError("empty bytes made a plugin")


TEXT = _empty_plugin_error()


def test_string_size_and_to_string_write_exactly_the_text(lab: Lab) -> None:
    """``to_string`` writes ``string_size`` bytes and nothing after them (no NUL, no length)."""
    run = lab.run(lab.module(MAKE_ERROR, """
      (func (export "main") (local $e i64) (local $n i32)
        (call $setup)
        (local.set $e (call $plugin_error))
        (local.set $n (call $lunatic::error.string_size (local.get $e)))
        (call $rec32 (local.get $n))
        (call $lunatic::error.to_string (local.get $e) (i32.const 1000))
        (call $rec_mem (i32.const 1000) (i32.add (local.get $n) (i32.const 2)))
        (call $flush))""", data=[(1000, b"\xaa" * 200)]))
    assert_returned(run)
    assert run.records == [len(TEXT), TEXT + b"\xaa\xaa"]


def test_ids_count_from_zero_and_are_never_reused(lab: Lab) -> None:
    """Each new error gets the next id, from 0; a dropped id is not given out again."""
    run = lab.run(lab.module(MAKE_ERROR, """
      (func (export "main") (local $a i64) (local $b i64) (local $c i64)
        (call $setup)
        (local.set $a (call $plugin_error))
        (local.set $b (call $plugin_error))
        (call $lunatic::error.drop (local.get $a))
        (local.set $c (call $plugin_error))
        (call $rec (local.get $a)) (call $rec (local.get $b)) (call $rec (local.get $c))
        ;; the others are untouched by the drop
        (call $rec32 (call $lunatic::error.string_size (local.get $b)))
        (call $rec32 (call $lunatic::error.string_size (local.get $c)))
        (call $flush))"""))
    assert_returned(run)
    assert run.records == [0, 1, 2, len(TEXT), len(TEXT)]


def test_string_size_counts_utf8_bytes(lab: Lab) -> None:
    """A text with non-ASCII characters: the size is in bytes and the bytes are UTF-8."""
    name = "grüße_λ"
    encoded = name.encode()
    run = lab.run(lab.module(f"""
      (func (export "main") (local $e i64)
        (call $setup)
        (call $rec32 (call $lunatic::process.inherit_spawn (i64.const 0)
          (i32.const 0) (i32.const {len(encoded)}) (i32.const 0) (i32.const 0) (i32.const {OUT})))
        (local.set $e (i64.load (i32.const {OUT})))
        (call $rec32 (call $lunatic::error.string_size (local.get $e)))
        (call $rec_error (local.get $e))
        (call $flush))""", data=[(0, encoded)]))
    assert_returned(run)
    code, size, text = run.records
    assert code == 1
    assert isinstance(text, bytes) and size == len(text)
    assert text.decode("utf-8") == f"Function '{name}' not found"
    assert size > len(text.decode())


@pytest.mark.parametrize("call", [
    "(drop (call $lunatic::error.string_size (i64.const {id})))",
    "(call $lunatic::error.to_string (i64.const {id}) (i32.const 0))",
    "(call $lunatic::error.drop (i64.const {id}))",
])
@pytest.mark.parametrize("error_id", [0, 7, -1])
def test_unknown_error_id_traps(lab: Lab, call: str, error_id: int) -> None:
    """Every function traps on an id not in the table (a fresh process has none)."""
    code = call.format(id=error_id)
    function = "lunatic::error." + code.split("$lunatic::error.")[1].split(" ")[0]
    run = lab.run(lab.module(f'(func (export "main") {code})'), setup=False)
    assert_trap(run, function, "unknown error handle", str(error_id & 0xFFFFFFFFFFFFFFFF))


def test_double_drop_traps(lab: Lab) -> None:
    """The first drop works, the second traps."""
    run = lab.run(lab.module(MAKE_ERROR, """
      (func (export "main") (local $e i64)
        (call $setup)
        (local.set $e (call $plugin_error))
        (call $lunatic::error.drop (local.get $e))
        (call $rec (i64.const 1))
        (call $flush)
        (call $lunatic::error.drop (local.get $e))
        (call $rec (i64.const 2))
        (call $flush))"""))
    assert_trap(run, "lunatic::error.drop", "unknown error handle 0")
    assert run.records == [1]


@pytest.mark.parametrize("use", ["string_size", "to_string"])
def test_use_after_drop_traps(lab: Lab, use: str) -> None:
    """A dropped error cannot be rendered any more."""
    call = ("(drop (call $lunatic::error.string_size (local.get $e)))" if use == "string_size"
            else "(call $lunatic::error.to_string (local.get $e) (i32.const 0))")
    run = lab.run(lab.module(MAKE_ERROR, f"""
      (func (export "main") (local $e i64)
        (local.set $e (call $plugin_error))
        (call $lunatic::error.drop (local.get $e))
        {call})"""), setup=False)
    assert_trap(run, f"lunatic::error.{use}", "unknown error handle")


def test_to_string_at_the_end_of_memory_and_past_it(lab: Lab) -> None:
    """A text ending exactly at the memory end is written; one byte further traps."""
    end = 0x10000 - len(TEXT)
    run = lab.run(lab.module(MAKE_ERROR, f"""
      (func (export "main") (local $e i64)
        (call $setup)
        (local.set $e (call $plugin_error))
        (call $lunatic::error.to_string (local.get $e) (i32.const {end}))
        (call $rec_mem (i32.const {end}) (i32.const {len(TEXT)}))
        (call $flush)
        (call $lunatic::error.to_string (local.get $e) (i32.const {end + 1})))"""))
    assert_trap(run, "lunatic::error.to_string", "outside guest memory")
    assert run.records == [TEXT]


def test_to_string_with_a_huge_pointer_traps(lab: Lab) -> None:
    """``out_ptr`` is unsigned: 0xFFFFFFFF is far out of bounds, not -1."""
    run = lab.run(lab.module(MAKE_ERROR, """
      (func (export "main")
        (call $lunatic::error.to_string (call $plugin_error) (i32.const -1)))"""), setup=False)
    assert_trap(run, "lunatic::error.to_string", "outside guest memory")


def test_error_tables_are_per_process(lab: Lab) -> None:
    """Error 0 of the parent means nothing in a child: the child traps on it."""
    module = lab.module(MAKE_ERROR, """
      (func (export "main") (local $e i64)
        (call $setup)
        (local.set $e (call $plugin_error))
        (call $rec (local.get $e))
        (call $rec32 (call $lunatic::error.string_size (local.get $e)))
        (call $flush)
        (call $export_handle (call $inherit (i64.const 0) (i32.const 0) (i32.const 5))))
      (func (export "child")
        (drop (call $lunatic::error.string_size (i64.const 0))))""",
        data=[(0, b"child")])
    run = lab.run(module)
    assert_returned(run)
    assert run.records == [0, len(TEXT)]
    (child,) = run.handles
    assert_trap(lab.join(child), "lunatic::error.string_size", "unknown error handle 0")


def test_error_text_survives_other_errors_and_drops(lab: Lab) -> None:
    """Errors are never removed automatically: an old one still renders after others came
    and went."""
    run = lab.run(lab.module(MAKE_ERROR, """
      (func (export "main") (local $old i64)
        (call $setup)
        (local.set $old (call $plugin_error))
        (call $lunatic::error.drop (call $plugin_error))
        (call $lunatic::error.drop (call $plugin_error))
        (call $rec_error (local.get $old))
        (call $lunatic::error.drop (local.get $old))
        (call $flush))"""))
    assert_returned(run)
    assert run.records == [TEXT]
