"""A small funk host API, run end to end on both engines.

The guest (WAT below) counts the letter "a" in a string through the host's
``count_a`` and accumulates sums through ``add``; the same ``Counter``
definition is linked on wasmtime and on wasmer and must behave identically.

    python examples/counter.py
"""

from __future__ import annotations

import sys

from funk import Trap, host_functions, instantiate
from funk.types import Str, i32

GUEST = r"""
(module
  (import "env" "add" (func $add (param i32 i32) (result i32)))
  (import "env" "count_a" (func $count_a (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 64) "a banana and an avocado")
  ;; run(x, y) = add(x, y) + count_a("a banana and an avocado")
  (func (export "run") (param $x i32) (param $y i32) (result i32)
    (i32.add (call $add (local.get $x) (local.get $y))
             (call $count_a (i32.const 64) (i32.const 23))))
  ;; passes a string that runs past the end of memory: the host call traps
  (func (export "bad") (result i32)
    (call $count_a (i32.const 65530) (i32.const 100))))
"""


@host_functions(namespace="env")
class Counter:
    """Adds numbers (keeping a running total) and counts letters."""

    def __init__(self) -> None:
        self.total = 0

    def add(self, a: i32, b: i32) -> i32:
        self.total += a + b
        return a + b

    def count_a(self, words: Str) -> i32:
        return words.count("a")


def main() -> int:
    """Run the guest on each engine and compare what the host saw."""
    results = {}
    for backend in ("wasmtime", "wasmer"):
        counter = Counter()
        inst = instantiate(GUEST, [counter], backend=backend)
        value = inst.exports.run(1, 2)
        inst.exports.run(10, 20)
        try:
            inst.exports.bad()
            trap = "no trap?!"
        except Trap as exc:
            trap = exc.message
        results[backend] = (value, counter.total, trap)
        print(f"{backend:9} run(1, 2) = {value}; host total = {counter.total}; "
              f"bad() trapped: {trap}")
    same = results["wasmtime"] == results["wasmer"]
    print("identical on both engines" if same else "ENGINES DIFFER")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
