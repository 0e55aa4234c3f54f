"""The C examples in ``examples/lunatic`` run end to end with the ``lunatic`` command.

Each committed ``examples/lunatic/wasm/NAME.wasm`` (built from ``NAME.c`` by
``scripts/build-guests``) runs as ``python -m lunatic_api --backend B FILE ...``
in a subprocess on both engines; the tests check its whole output and exit
status.  The TCP echo server is driven by real client sockets on 127.0.0.1;
``plugin_demo`` runs with and without ``-P examples/plugins/wasm/add_check.wasm``.
Without a compiler the binaries cannot be rebuilt here, so the tests check
instead that sources and binaries pair up, that each binary imports only
``lunatic::*`` and WASI functions with the host's own signatures (the plugin
``add_check``: only ``lunatic::plugin`` ones), and that the generated
``examples/include/lunatic.h`` declares every host function.
"""

from __future__ import annotations

import queue
import random
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import funk
from funk.plugins import HOOK, PLUGIN_NAMESPACE, ModuleEditor, Plugin
from lunatic_api.error_api import ErrorApi
from lunatic_api.message_api import MessageApi
from lunatic_api.networking_api import NetworkingApi
from lunatic_api.process_api import ProcessApi
from lunatic_api.wasi import Wasi

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "lunatic"
WASM = EXAMPLES / "wasm"
HEADER = ROOT / "examples" / "include" / "lunatic.h"
TIMEOUT = 60
WASI = "wasi_snapshot_preview1"
LUNATIC_CLASSES = (ErrorApi, MessageApi, ProcessApi, NetworkingApi)

#: the functions each example spawns (its extra exports besides _start)
SPAWNED = {
    "ping_pong": {"ponger", "pinger"},
    "supervisor": {"worker"},
    "registry": {"calculator"},
    "request_reply": {"server"},
    "tcp_echo": {"echo"},
    "plugin_demo": set(),  # it spawns plugin_check, which the add_check plugin adds
}


def _run(backend: str, name: str, *args: str,
         options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """Run example NAME (with the command's ``options``); its output and exit status."""
    return subprocess.run(
        [sys.executable, "-m", "lunatic_api", "--backend", backend, *options,
         str(WASM / f"{name}.wasm"), *args],
        cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT, check=False)


# --------------------------------------------------------------------------- the files


def test_every_source_has_a_binary_and_every_binary_a_source() -> None:
    sources = {p.stem for p in EXAMPLES.glob("*.c")}
    binaries = {p.stem for p in WASM.glob("*.wasm")}
    assert sources == binaries, (f"without a binary: {sorted(sources - binaries)}; "
                                 f"without a source: {sorted(binaries - sources)} "
                                 "(run scripts/build-guests)")
    assert sources == set(SPAWNED)
    assert not list(WASM.glob("*.tmp")), "a build left a temporary file"


def test_header_declares_every_lunatic_host_function() -> None:
    text = HEADER.read_text()
    declared = set(re.findall(r'import_module\("([^"]+)"\), import_name\("([^"]+)"\)', text))
    expected = {(fn.namespace, fn.name) for cls in LUNATIC_CLASSES
                for fn in funk.functions_of(cls)}
    assert len(expected) == 51
    assert declared == expected
    assert "#ifndef LUNATIC_H" in text and text.rstrip().endswith("#endif /* LUNATIC_H */")


def test_binaries_import_only_lunatic_and_wasi_with_the_host_signatures(backend: str) -> None:
    hosts = {(fn.namespace, fn.name): fn for cls in (*LUNATIC_CLASSES, Wasi)
             for fn in funk.functions_of(cls)}
    for name, spawned in SPAWNED.items():
        module = funk.compile(WASM / f"{name}.wasm", backend)
        assert {"_start", "memory", *spawned} <= set(module.exports), name
        assert any(imp.namespace.startswith("lunatic::") for imp in module.imports), name
        for imp in module.imports:
            fn = hosts.get((imp.namespace, imp.name))
            assert fn is not None, f"{name} imports {imp.namespace}.{imp.name}"
            assert (imp.params, imp.results) == (tuple(fn.wasm_params),
                                                 tuple(fn.wasm_results)), \
                f"{name}: {imp.namespace}.{imp.name} is {imp.signature}, host has {fn.signature}"


# --------------------------------------------------------------------------- ping_pong


def _ping_pong_output(rounds: int) -> str:
    lines = [f"main: {rounds} ping(s) to exchange between two processes"]
    for k in range(1, rounds + 1):
        lines += [f"pinger: sending ping {k}", f"ponger: got ping {k}, sending pong {k}",
                  f"pinger: got pong {k}"]
    lines += ["ponger: stopped", f'main: pinger reports "done {rounds}"; the end']
    return "\n".join(lines) + "\n"


def test_ping_pong(backend: str) -> None:
    proc = _run(backend, "ping_pong", "3")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == _ping_pong_output(3)


def test_ping_pong_defaults_to_ten_pings(backend: str) -> None:
    proc = _run(backend, "ping_pong")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == _ping_pong_output(10)


def test_ping_pong_rejects_a_bad_count(backend: str) -> None:
    proc = _run(backend, "ping_pong", "many")
    assert proc.returncode == 2
    assert proc.stdout == "usage: ping_pong [N]   (N: number of pings, default 10)\n"


# --------------------------------------------------------------------------- supervisor


def test_supervisor_restarts_a_crashing_worker_three_times(backend: str) -> None:
    proc = _run(backend, "supervisor")
    assert proc.returncode == 0, proc.stderr
    expected: list[str] = []
    for run in range(1, 5):
        if run > 1:
            expected.append(f"supervisor: restart {run - 1} of 3")
        expected.append(f"supervisor: started worker run {run} (link tag {100 + run})")
        total = 0
        for step in range(1, 4):
            total += step * run
            expected.append(f"supervisor: progress from worker: run {run}: step {step}, "
                            f"total {total}")
        expected.append(f"supervisor: worker run {run} died (LinkDied signal, tag {100 + run})")
    expected.append("supervisor: 3 restarts used up; giving up")
    assert proc.stdout.splitlines() == expected
    # the command reports the other processes' traps; the main process may end
    # before the report of the last one is printed
    reports = re.findall(r"^lunatic: process \S+ \(worker\) failed: (.*)$", proc.stderr,
                         re.MULTILINE)
    assert 3 <= len(reports) <= 4, proc.stderr
    assert all("unreachable" in r for r in reports), reports


# --------------------------------------------------------------------------- registry


def test_registry_answers_with_the_highest_matching_version(backend: str) -> None:
    proc = _run(backend, "registry")
    assert (proc.returncode, proc.stderr) == (0, "")
    expected = [f"registered calculator {v}: ok"
                for v in ("1.0.0", "1.2.3", "1.4.0-beta", "2.0.0")]
    request = 0
    for query, answer in (("^1.2", "1.2.3"), ("~1.2", "1.2.3"), (">=2", "2.0.0"), ("^3", None),
                          ("bad query!", "bad"), ("~1.4.0-beta", "1.4.0-beta")):
        if answer is None:
            expected.append(f'lookup calculator "{query}": no matching version')
        elif answer == "bad":
            expected.append(f'lookup calculator "{query}": invalid version requirement')
        else:
            request += 1
            expected += [f'lookup calculator "{query}": found; asking it (request {request})',
                         f"  calculator {answer}: answering request {request}",
                         f'lookup calculator "{query}": answered by version {answer}']
    expected.append("done")
    assert proc.stdout.splitlines() == expected


# --------------------------------------------------------------------------- request_reply


def test_request_reply_skips_the_queued_message(backend: str) -> None:
    proc = _run(backend, "request_reply")
    assert (proc.returncode, proc.stderr) == (0, "")
    expected = ["client: queued an unrelated message with tag 1 in my own mailbox"]
    for tag, (request, reply) in enumerate((("2 + 3", "5"), ("6 * 7", "42"), ("10 - 4", "6"),
                                            ("7 / 0", "error: cannot compute 7 / 0")), 1):
        expected += [f'server: request {tag} "{request}" -> "{reply}"',
                     f'client: request {tag} "{request}" -> reply (tag {tag}) "{reply}"']
    expected += ['client: still in my mailbox: "an unrelated note" (tag 1)',
                 "client: mailbox empty now (receive timed out: yes)",
                 'server: request 5 "stop" -> "bye"; stopping',
                 'client: stop request 5 -> "bye"',
                 "client: done"]
    assert proc.stdout.splitlines() == expected


# --------------------------------------------------------------------------- tcp_echo


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    """``tcp_echo`` running in a subprocess; its stdout lines arrive on a queue."""

    def __init__(self, backend: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lunatic_api", "--backend", backend,
             str(WASM / "tcp_echo.wasm"), *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout.append(line)
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        self.stderr.extend(self.proc.stderr)

    def first_line(self) -> str | None:
        """The first line of output (``None`` if the server ended without one)."""
        return self.lines.get(timeout=TIMEOUT)

    def finish(self) -> tuple[int, str, str]:
        """Wait for the end: exit status, whole stdout, stderr."""
        try:
            self.proc.wait(timeout=TIMEOUT)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            for reader in self._readers:
                reader.join(TIMEOUT)
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        return self.proc.returncode, "".join(self.stdout), "".join(self.stderr)


def _start_server(backend: str, connections: int) -> tuple[_Server, int]:
    """A server on a free port (tries again if another program took the port)."""
    for _ in range(5):
        port = _free_port()
        server = _Server(backend, str(port), "--max-connections", str(connections))
        try:
            first = server.first_line()
        except queue.Empty:
            server.proc.kill()
            status, out, err = server.finish()
            pytest.fail(f"the echo server printed nothing (status {status}): {out!r} {err!r}")
        if first == (f"tcp_echo: listening on 127.0.0.1:{port} "
                     f"(stopping after {connections} connections)\n"):
            return server, port
        status, out, err = server.finish()
        assert "Address already in use" in (first or "") + out, (first, status, out, err)
    pytest.fail("no free port found for the echo server")


def _echo(sock: socket.socket, payload: bytes) -> bytes:
    """Send ``payload`` (from a thread), close our side, read everything back."""
    def send() -> None:
        sock.sendall(payload)
        sock.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send)
    sender.start()
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    sender.join(TIMEOUT)
    assert not sender.is_alive()
    return b"".join(chunks)


def test_tcp_echo_serves_concurrent_clients(backend: str) -> None:
    rng = random.Random(4)
    sizes = [1, 4096, 70_000, 300_001, 0]
    payloads = [rng.randbytes(n) for n in sizes]
    server, port = _start_server(backend, len(payloads))
    clients: list[socket.socket] = []
    try:
        for _ in payloads:  # all connected at once, one process each
            clients.append(socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT))
        # the last connection is served first, while the others are open and idle
        assert _echo(clients[-1], payloads[-1]) == payloads[-1]
        results: dict[int, bytes] = {}

        def client(i: int) -> None:
            results[i] = _echo(clients[i], payloads[i])

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(payloads) - 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(TIMEOUT)
        for i, payload in enumerate(payloads[:-1]):
            assert results[i] == payload, f"client {i}: {len(results[i])} of {len(payload)} bytes"
    finally:
        for c in clients:
            c.close()
        status, out, err = server.finish()
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 1 + 2 * len(payloads) + 1, out
    accepted = [m.group(1) for m in (re.fullmatch(
        r"tcp_echo: connection (\d+) from 127\.0\.0\.1:(\d+): starting a process for it", line)
        for line in lines) if m]
    assert sorted(accepted, key=int) == [str(k) for k in range(1, len(payloads) + 1)]
    echoed = sorted(int(m.group(2)) for m in (re.fullmatch(
        r"connection (\d+): echoed (\d+) bytes, closed", line) for line in lines) if m)
    assert echoed == sorted(sizes)
    assert lines[-1] == f"tcp_echo: {len(payloads)} connections done, {sum(sizes)} bytes " \
                        "echoed; bye"


def test_tcp_echo_reports_a_port_in_use(backend: str) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = _run(backend, "tcp_echo", str(port), "--max-connections", "1")
    assert proc.returncode == 1
    assert proc.stdout == "tcp_bind failed: Address already in use (os error 98)\n"


def test_tcp_echo_rejects_bad_arguments(backend: str) -> None:
    proc = _run(backend, "tcp_echo", "--max-connections")
    assert proc.returncode == 2
    assert proc.stdout == "usage: tcp_echo [PORT] [--max-connections N]\n"


# --------------------------------------------------------------------------- plugin_demo

PLUGINS = ROOT / "examples" / "plugins"
ADD_CHECK = PLUGINS / "wasm" / "add_check.wasm"


@pytest.mark.parametrize("with_plugin", [False, True], ids=["without_P", "with_P"])
def test_plugin_demo(backend: str, with_plugin: bool) -> None:
    """The demo's own add_plugin/add_this_module steps work either way; its main module has
    ``plugin_check`` only when the command's ``-P`` added the plugin to it.  (With ``-P``,
    ``add_this_module`` works only because it starts from the original bytes: the plugin
    would trap exporting ``plugin_check`` a second time.)"""
    options = ("-P", str(ADD_CHECK.relative_to(ROOT))) if with_plugin else ()
    proc = _run(backend, "plugin_demo", options=options)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    lines = proc.stdout.splitlines()
    if with_plugin:
        assert lines[0] == ("main module: plugin_check is there (the lunatic command's -P "
                            "added it)")
    else:
        assert lines[0] == "main module: no plugin_check (Function 'plugin_check' not found)"
    assert lines[1] == f"add_plugin: the plugin ({ADD_CHECK.stat().st_size} bytes) is in the config"
    assert lines[2].startswith("add_plugin of bytes that are not wasm: plugin: not a wasm module")
    assert lines[3:] == [
        "add_this_module: this module, rewritten by the plugin",
        "spawned plugin_check(42), linked with tag 42",
        "spawned plugin_check(41), linked with tag 41",
        "plugin_check(41) trapped: its link signal arrived (tag 41)",
        "plugin_check(42) returned: no signal within 300 ms",
    ]
    # the command reports the trap of plugin_check(41) (main goes on 300 ms after it)
    reports = re.findall(r"^lunatic: process \S+ \(plugin_check\) failed: (.*)$", proc.stderr,
                         re.MULTILINE)
    assert reports == ["unreachable"], proc.stderr


def test_plugin_sources_and_binaries_pair_up() -> None:
    sources = {p.stem for p in PLUGINS.glob("*.c")}
    assert sources == {p.stem for p in (PLUGINS / "wasm").glob("*.wasm")} == {"add_check"}


def test_add_check_imports_only_lunatic_plugin(backend: str) -> None:
    """The committed plugin imports only ``lunatic::plugin`` functions, with the host's
    signatures, exports its hook and memory, and is accepted as a plugin."""
    hosts = {fn.name: fn for fn in funk.functions_of(ModuleEditor)}
    module = funk.compile(ADD_CHECK, backend)
    assert {HOOK, "memory"} <= set(module.exports)
    assert module.imports
    for imp in module.imports:
        assert imp.namespace == PLUGIN_NAMESPACE, imp
        fn = hosts[imp.name]
        assert (imp.params, imp.results) == (tuple(fn.wasm_params), tuple(fn.wasm_results)), imp
    assert Plugin(ADD_CHECK, backend).exports >= {HOOK}
