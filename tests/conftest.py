"""Shared pytest fixtures: every backend-dependent test runs on each engine.

``FUNK_TEST_BACKENDS`` (comma-separated) narrows the engines, e.g. the
oldest-wasmtime environment runs with ``FUNK_TEST_BACKENDS=wasmtime``.  An
engine that is asked for but cannot be imported is an error, never a skip:
CI must not pass because wasmer silently went missing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

ALL_BACKENDS = ("wasmtime", "wasmer")


def selected_backends() -> list[str]:
    raw = os.environ.get("FUNK_TEST_BACKENDS", "")
    names = [n.strip() for n in raw.split(",") if n.strip()] or list(ALL_BACKENDS)
    unknown = [n for n in names if n not in ALL_BACKENDS]
    if unknown:
        raise pytest.UsageError(f"FUNK_TEST_BACKENDS names unknown engines: {unknown}")
    return names


def pytest_configure(config: Any) -> None:
    config.addinivalue_line("markers", "slow: long stress/soak runs (run with -m slow)")
    missing = []
    for name in selected_backends():
        try:
            __import__(name)
            if name == "wasmer":
                __import__("wasmer_compiler_cranelift")
        except ImportError as exc:
            missing.append(f"{name}: {exc}")
    if missing:
        raise pytest.UsageError("engines required by this test run are not importable "
                                "(fix the environment; they are never skipped):\n  "
                                + "\n  ".join(missing))


def pytest_generate_tests(metafunc: Any) -> None:
    if "backend" in metafunc.fixturenames:
        metafunc.parametrize("backend", selected_backends())
