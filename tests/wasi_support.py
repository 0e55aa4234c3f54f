"""Helpers for running WASI command guests and comparing what they did.

* ``run_native`` runs a guest under wasmtime-py's built-in WASI (the
  reference implementation for the differential tests);
* ``run_ours`` runs it under ``lunatic_api.wasi.Wasi`` on a funk backend;
* ``snapshot_tree`` records a directory tree (names, types, file contents,
  symlink targets) so that two runs' side effects can be compared exactly;
* ``copy_tree`` makes the fresh per-run copy of an initial tree.

Both runners take the same ``GuestRun`` description and return a
``RunResult`` (stdout, stderr, exit code, and whether the guest trapped).
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import wasmtime

import funk

WASI_GUESTS = Path(__file__).resolve().parent / "guests" / "wasi"
WASI_C_DIR = WASI_GUESTS / "c"
WASI_WASM_DIR = WASI_GUESTS / "wasm"


def wasi_guest_path(name: str) -> Path:
    """Path of the committed binary ``tests/guests/wasi/wasm/NAME.wasm``."""
    path = WASI_WASM_DIR / f"{name}.wasm"
    assert path.is_file(), (f"{path} is missing: run scripts/build-guests and commit "
                            "tests/guests/wasi/wasm/")
    return path


@dataclass(frozen=True)
class GuestRun:
    """Everything a WASI command sees: argv, environment, preopens, stdin.

    ``preopens`` maps guest directory names to host directories, in fd order
    (the first is fd 3).
    """

    wasm: Path
    args: Sequence[str]
    env: Sequence[tuple[str, str]] = ()
    preopens: Sequence[tuple[str, Path]] = ()
    stdin: bytes = b""


@dataclass(frozen=True)
class RunResult:
    """The observable outcome of one run of a WASI command.

    ``exit_code`` is 0 when ``_start`` returned, ``n`` after ``proc_exit(n)``
    and ``None`` when the guest trapped (then ``trapped`` is true and
    ``trap_message`` says why; the message is engine-specific and not meant
    to be compared).
    """

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    trapped: bool = False
    trap_message: str = field(default="", compare=False)


_native_lock = threading.Lock()
_native_engine: wasmtime.Engine | None = None
_native_modules: dict[Path, wasmtime.Module] = {}


def _native_module(path: Path) -> tuple[wasmtime.Engine, wasmtime.Module]:
    global _native_engine
    with _native_lock:
        if _native_engine is None:
            _native_engine = wasmtime.Engine()
        module = _native_modules.get(path)
        if module is None:
            module = wasmtime.Module.from_file(_native_engine, str(path))
            _native_modules[path] = module
        return _native_engine, module


def run_native(run: GuestRun, scratch: Path) -> RunResult:
    """Run ``run`` under wasmtime's own WASI implementation.

    ``scratch`` is an existing directory outside every preopen that holds the
    stdin/stdout/stderr files wasmtime reads and writes.
    """
    engine, module = _native_module(Path(run.wasm))
    stdin_path = scratch / "native-stdin"
    stdout_path = scratch / "native-stdout"
    stderr_path = scratch / "native-stderr"
    stdin_path.write_bytes(run.stdin)
    config = wasmtime.WasiConfig()
    config.argv = list(run.args)
    config.env = [[k, v] for k, v in run.env]
    for guest_name, host_dir in run.preopens:
        config.preopen_dir(str(host_dir), guest_name)
    config.stdin_file = str(stdin_path)
    config.stdout_file = str(stdout_path)
    config.stderr_file = str(stderr_path)
    store = wasmtime.Store(engine)
    store.set_wasi(config)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    exit_code: int | None = 0
    trapped = False
    message = ""
    try:
        instance = linker.instantiate(store, module)
        start = instance.exports(store)["_start"]
        assert isinstance(start, wasmtime.Func)
        start(store)
    except wasmtime.ExitTrap as exc:
        exit_code = exc.code
    except (wasmtime.Trap, wasmtime.WasmtimeError) as exc:
        exit_code, trapped, message = None, True, str(exc)
    finally:
        del store
    return RunResult(stdout_path.read_bytes(), stderr_path.read_bytes(), exit_code,
                     trapped, message)


def run_ours(run: GuestRun, backend: str) -> RunResult:
    """Run ``run`` under ``lunatic_api.wasi.Wasi`` on funk backend ``backend``."""
    from lunatic_api.wasi import Wasi

    out, err = bytearray(), bytearray()
    wasi = Wasi(args=list(run.args), env=list(run.env),
                preopens=[(name, str(path)) for name, path in run.preopens],
                stdin=bytes(run.stdin), stdout=out, stderr=err)
    exit_code: int | None
    trapped = False
    message = ""
    try:
        inst = funk.instantiate(Path(run.wasm), [wasi], backend=backend)
        exit_code = wasi.run(inst)
    except funk.Trap as exc:
        exit_code, trapped, message = None, True, str(exc)
    return RunResult(bytes(out), bytes(err), exit_code, trapped, message)


TreeSpec = Mapping[str, "str | bytes | tuple[str, str] | None"]
"""Initial content for ``make_tree``: relative path -> contents, ``None``
(a directory) or ``("symlink", target)``."""

TreeEntry = tuple[str, bytes]
"""``("dir", b"")``, ``("file", contents)`` or ``("symlink", target)``."""


def snapshot_tree(root: Path) -> dict[str, TreeEntry]:
    """Every entry below ``root`` by relative POSIX path, symlinks not followed.

    Files map to their contents, symlinks to their raw target, directories
    to an empty marker; anything else (fifo, socket, device) is recorded by
    its type only.  Timestamps, modes and inode numbers are not recorded.
    """
    tree: dict[str, TreeEntry] = {}

    def walk(directory: Path, prefix: str) -> None:
        for name in sorted(os.listdir(directory)):
            path = directory / name
            rel = prefix + name
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                tree[rel] = ("symlink", os.fsencode(os.readlink(path)))
            elif stat.S_ISDIR(st.st_mode):
                tree[rel] = ("dir", b"")
                walk(path, rel + "/")
            elif stat.S_ISREG(st.st_mode):
                tree[rel] = ("file", path.read_bytes())
            else:
                tree[rel] = (f"other:{stat.S_IFMT(st.st_mode):o}", b"")

    walk(root, "")
    return tree


def copy_tree(src: Path, dst: Path) -> Path:
    """Copy ``src`` to the new directory ``dst``, symlinks copied as symlinks."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


def make_tree(root: Path, spec: TreeSpec) -> None:
    """Create files, directories and symlinks below ``root`` from ``spec``.

    Keys are relative paths; a value is file contents (``str``/``bytes``),
    ``None`` for a directory, or ``("symlink", target)``.  Parents are made
    as needed.
    """
    for rel, value in spec.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if value is None:
            path.mkdir(exist_ok=True)
        elif isinstance(value, tuple):
            os.symlink(value[1], path)
        elif isinstance(value, str):
            path.write_text(value)
        else:
            path.write_bytes(value)


def link_with_native_wasi(wat: str) -> int:
    """Instantiate ``wat`` with wasmtime's own WASI linked in; return its import count.

    Raises ``wasmtime.WasmtimeError`` when an import's signature differs from
    wasmtime's preview1 definition (the check our signature tests rely on).
    """
    engine = wasmtime.Engine()
    store = wasmtime.Store(engine)
    store.set_wasi(wasmtime.WasiConfig())
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    module = wasmtime.Module(engine, wat)
    linker.instantiate(store, module)
    return len(module.imports)
