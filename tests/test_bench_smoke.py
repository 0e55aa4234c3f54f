"""``bench/wasi.py --quick`` runs to the end and prints its three ratio lines.

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


def test_wasi_bench_quick() -> None:
    engines = selected_backends()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "wasi.py"), "--quick",
         "--engines", ",".join(engines)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    lines = [line for line in proc.stdout.splitlines() if line.startswith("ratio ")]
    assert [line.split()[1] for line in lines] == ["fd_write", "copy", "graphviz"], proc.stdout
    for line in lines:
        for engine in engines:
            assert re.search(rf"\b{engine} \d+\.\d+x (ok|MISSED)\b", line), line
