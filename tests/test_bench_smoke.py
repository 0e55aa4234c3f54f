"""``bench/wasi.py --quick``, ``bench/runtime.py --quick`` and ``bench/limits.py --quick``
run to the end and print their tables and target lines.

A smoke test only: no timing is asserted (``--quick`` sizes are too small for
the ratios to mean anything, and machines here are noisy).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import selected_backends

ROOT = Path(__file__).resolve().parent.parent


def run_quick(bench: str, engines: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``bench/BENCH.py --quick`` on ``engines``; it must exit 0."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{bench}.py"), "--quick",
         "--engines", ",".join(engines)],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


def test_wasi_bench_quick() -> None:
    engines = selected_backends()
    proc = run_quick("wasi", engines, timeout=300)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ratio ")]
    assert [line.split()[1] for line in lines] == ["fd_write", "copy", "graphviz"], proc.stdout
    for line in lines:
        for engine in engines:
            assert re.search(rf"\b{engine} \d+\.\d+x (ok|MISSED)\b", line), line


def test_runtime_bench_quick() -> None:
    """``bench/runtime.py --quick``: spawn, idle and ping-pong rows, one verdict per target."""
    engines = selected_backends()
    proc = run_quick("runtime", engines, timeout=120)
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric "))
    assert header.split()[1:1 + 1 + len(engines)] == ["threads", *engines], header
    for label in ("spawn: processes/s", "idle: processes held", "idle: RSS per process",
                  "ping-pong 64 B: round trips/s", "ping-pong: floor/engine"):
        row = next((line for line in lines if line.startswith(label)), None)
        assert row is not None, f"no row {label!r}\n{proc.stdout}"
        assert re.search(r"\d", row[len(label):]), row
    # the quick run's 100 idle processes are far from any ceiling: all are held
    held = next(line for line in lines if line.startswith("idle: processes held"))
    cells = r"\s+".join(["100"] * (1 + len(engines)))
    assert re.match(rf"idle: processes held \(of 100\)\s+{cells}\s+10,000 in", held), held
    targets = {line.split()[1]: line for line in lines if line.startswith("target ")}
    assert list(targets) == ["spawn", "idle", "ping-pong"], proc.stdout
    for engine in engines:
        assert re.search(rf"\b{engine} [\d,]+/s (PASS|MISS)\b", targets["spawn"])
        assert re.search(rf"\b{engine} \d+\.\d+x (PASS|MISS)\b", targets["ping-pong"])
    if "wasmtime" in engines:
        assert re.search(r"\bwasmtime 100 held in \d+ MiB (PASS|MISS)\b", targets["idle"])
    if "wasmer" in engines:
        assert re.search(r"\bwasmer 100 held in \d+ MiB \(", targets["idle"])


def test_limits_bench_quick() -> None:
    """``bench/limits.py --quick``: fuel, rewrite, kill and preemption rows, one verdict each.

    The run itself checks that the metered guest computes what the original does
    (it stops with an error otherwise) and that killed spinners end ``KILLED``.
    """
    engines = selected_backends()
    proc = run_quick("limits", engines, timeout=120)
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("metric "))
    assert header.split()[1:1 + len(engines)] == engines, header
    for label in ("fuel sha256: metered/original", "fuel interp: checks only/original",
                  "fuel all kernels: metered/original", "rewrite: compile metered/original",
                  "kill: worst ms", "preemption: spinning/alone"):
        row = next((line for line in lines if line.startswith(label)), None)
        assert row is not None, f"no row {label!r}\n{proc.stdout}"
        assert len(re.findall(r"\d+\.\d+", row[len(label):])) >= len(engines), row
    assert re.search(r"^compute\.wasm: \d+ checks injected", proc.stdout, re.M), proc.stdout
    for label in ("Module.parse", "parse + meter_fuel + encode", "instrument(), cache hit"):
        assert re.search(rf"^  {re.escape(label)}\s+[\d,.]+ ms\s+[\d,.]+ MB/s$", proc.stdout,
                         re.M), proc.stdout
    targets = {line.split()[1]: line for line in lines if line.startswith("target ")}
    assert list(targets) == ["fuel", "kill", "preemption"], proc.stdout
    for engine in engines:
        assert re.search(rf"\b{engine} \d+\.\d+x (PASS|MISS)\b", targets["fuel"])
        assert re.search(rf"\b{engine} \d+\.\d+ ms (PASS|MISS)\b", targets["kill"])
        assert re.search(rf"\b{engine} \d+\.\d+x (PASS|MISS)\b", targets["preemption"])
