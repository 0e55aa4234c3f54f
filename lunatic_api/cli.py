"""The ``lunatic`` command: run a Lunatic program (its ``_start`` as the main process).

::

    lunatic [--backend wasmtime|wasmer] [-P|--plugin PLUGIN]... [--dir HOST[::GUEST]]...
            [--env KEY=VALUE]... [--inherit-env] [--quiet] FILE [ARGS...]

``FILE`` (a ``.wasm`` binary or ``.wat`` text) is compiled into the main
environment (everything allowed, no limits) and its ``_start`` export runs as
the first process; it may spawn others.  The command exits when that main
process ends; other processes still running are abandoned (as in Lunatic
0.6).  Every process gets WASI with the guest arguments ``FILE`` (as
``argv[0]``, the WASI convention; v0.6.0 left it out) then ``ARGS``, the
``--env`` environment, the ``--dir`` directories and the runtime's own
standard streams.  Each ``-P``/``--plugin`` file (a plugin module, spec
section 7.10; see ``funk.plugins``) is added to the main environment in
order, so it rewrites ``FILE`` before ``FILE`` is compiled, and every module
later added to that environment.  Everything after ``FILE`` belongs to the guest, even
words that look like options.

Exit statuses:

* the main process's exit code: 0 when ``_start`` returns, otherwise the
  ``proc_exit`` code.  As with a native ``exit()``, only its low 8 bits reach
  the parent process (``proc_exit(256)`` exits with 0);
* ``EXIT_TRAP`` (134, 128 + SIGABRT, what wasmtime's CLI uses on Unix) when the
  main process traps; ``lunatic: trap: MESSAGE`` and the guest backtrace go to
  stderr (v0.6.0 exited 0 silently);
* ``EXIT_KILLED`` (137) when the main process is killed (a linked process died);
* ``EXIT_USAGE`` (2) for every mistake of the user: bad options, a file that
  cannot be read or is not wasm, a plugin that cannot be read, is not a valid
  plugin or fails on ``FILE``, a module without ``_start`` or with imports
  no host object provides, a ``--dir`` that is not a directory, a malformed
  ``--env``.  Each prints one line, ``lunatic: error: ...``, never a traceback;
* ``EXIT_INTERRUPTED`` (130) on Ctrl-C, silently.

Any other process that ends abnormally (trap, ``proc_exit``, killed) while
the main process runs is reported on stderr as ``lunatic: process UUID
(FUNCTION) failed: ...``, unless ``--quiet``; the report comes before the
linked processes hear of the death.

The engine is ``--backend``, else the ``LUNATIC_BACKEND`` environment variable,
else wasmtime.

The functions are split so that each step can be reused and tested:
``parse_config`` (command line -> ``Config``), ``build_environment``,
``load_module`` and ``run``; ``main`` only maps outcomes to exit statuses and
messages.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NoReturn

import funk
from funk.backends import NAMES as BACKENDS
from funk.plugins import Plugin
from lunatic_api.environment import Config as LunaticConfig
from lunatic_api.environment import Environment, LunaticModule
from lunatic_api.process import Ending, Outcome, Process
from lunatic_api.runtime import Runtime, SpawnError
from lunatic_api.wasi import WasiExit

__all__ = [
    "Config", "UsageError", "main", "parse_config", "build_environment", "load_plugin",
    "load_module", "run",
    "guest_environment", "parse_dir", "parse_env", "split_argv", "build_parser",
    "exit_status", "report_trap", "EXIT_USAGE", "EXIT_TRAP", "EXIT_INTERRUPTED", "EXIT_KILLED",
    "BACKEND_ENV", "ENTRY_POINT",
]

PROG = "lunatic"

EXIT_USAGE = 2
"""Exit status for user errors (also argparse's status for bad options)."""

EXIT_TRAP = 134
"""Exit status after a guest trap: 128 + SIGABRT, as wasmtime's CLI on Unix."""

EXIT_INTERRUPTED = 130
"""Exit status after Ctrl-C (128 + SIGINT)."""

EXIT_KILLED = 137
"""Exit status when the main process was killed (128 + SIGKILL)."""

BACKEND_ENV = "LUNATIC_BACKEND"
"""Environment variable naming the engine when ``--backend`` is not given."""

DEFAULT_BACKEND = funk.DEFAULT_BACKEND

ENTRY_POINT = "_start"
"""The export a WASI command runs."""

# options that take a value: the word after them is never FILE
_VALUE_OPTIONS = frozenset({"--backend", "--dir", "--env", "-P", "--plugin"})


class UsageError(Exception):
    """A mistake of the user; ``main`` prints it as one ``lunatic: error:`` line."""


@dataclass(frozen=True)
class Config:
    """Everything the command line asks for.

    Attributes:
        file: the module's path, as given (also the guest's ``argv[0]``).
        args: the guest's arguments after ``argv[0]``.
        backend: the engine, ``"wasmtime"`` or ``"wasmer"``.
        preopens: ``(guest_name, host_dir)`` pairs in command-line order.
        plugins: paths of the plugin modules, in command-line order.
        env: the guest's environment.
        quiet: do not report other processes that end abnormally.
    """

    file: str
    args: tuple[str, ...] = ()
    backend: str = DEFAULT_BACKEND
    preopens: tuple[tuple[str, str], ...] = ()
    plugins: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    quiet: bool = False

    @property
    def argv(self) -> list[str]:
        """The guest's full argument vector: ``file`` then ``args``."""
        return [self.file, *self.args]


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors become ``SystemExit(EXIT_USAGE)``."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for the runtime's own options (and ``--help``)."""
    parser = _Parser(
        prog=PROG, allow_abbrev=False,
        description="Run a Lunatic program: FILE's _start is the main process.",
        epilog=(f"Everything after FILE is passed to the guest. The engine defaults to "
                f"${BACKEND_ENV}, else {DEFAULT_BACKEND}. Exit status: the guest's exit code; "
                f"{EXIT_TRAP} after a trap; {EXIT_USAGE} for usage errors; "
                f"{EXIT_INTERRUPTED} on Ctrl-C."))
    parser.add_argument("--backend", choices=BACKENDS,
                        help=f"the engine to run on (default: ${BACKEND_ENV}, else "
                             f"{DEFAULT_BACKEND})")
    parser.add_argument("-P", "--plugin", action="append", default=[], metavar="PLUGIN",
                        help="add the plugin module PLUGIN to the main environment: it "
                             "rewrites FILE and every module added there later; may be "
                             "repeated (plugins run in order)")
    parser.add_argument("--dir", action="append", default=[], metavar="HOST[::GUEST]",
                        help="give the guest the host directory HOST under the name GUEST "
                             "(default: HOST as written); may be repeated")
    parser.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                        help="set an environment variable for the guest; may be repeated")
    parser.add_argument("--inherit-env", action="store_true",
                        help="pass the host's environment to the guest (--env overrides it)")
    parser.add_argument("--quiet", "-q", action="store_true",
                        help="do not report processes (other than the main one) that end "
                             "abnormally")
    parser.add_argument("file", metavar="FILE", help="the module, .wasm binary or .wat text")
    parser.add_argument("args", metavar="ARGS", nargs="*", help="the guest's arguments")
    return parser


def split_argv(argv: Sequence[str]) -> tuple[list[str], str | None, list[str]]:
    """Split a command line into ``(runtime_options, FILE, guest_args)``.

    ``FILE`` is the first word that is neither an option, nor the value of
    one of ``--backend``/``--dir``/``--env``/``-P``/``--plugin`` (also at
    the end of a cluster of short options, ``-qP PLUGIN``), nor a ``--``
    (which makes the next word ``FILE`` whatever it looks like).  ``FILE`` is
    ``None`` when the command line has none.
    """
    index = 0
    while index < len(argv):
        word = argv[index]
        if word == "--":
            if index + 1 < len(argv):
                return list(argv[:index]), argv[index + 1], list(argv[index + 2:])
            return list(argv[:index]), None, []
        if word.startswith("-") and word != "-":
            index += 2 if _takes_next_word(word) else 1
            continue
        return list(argv[:index]), word, list(argv[index + 1:])
    return list(argv), None, []


def _takes_next_word(option: str) -> bool:
    """Whether the option word ``option`` takes the next word as its value."""
    if option in _VALUE_OPTIONS:
        return True
    if option.startswith("--"):
        return False
    # a cluster of short options: argparse reads the value of a short option that takes
    # one from the rest of the word ("-qPx.wasm"), or from the next word if it ends it
    for position, letter in enumerate(option[1:], 1):
        if "-" + letter in _VALUE_OPTIONS:
            return position == len(option) - 1
    return False


def parse_dir(spec: str) -> tuple[str, str]:
    """``HOST[::GUEST]`` -> ``(guest_name, host_dir)``; GUEST defaults to HOST as written.

    Raises ``UsageError`` unless HOST is an existing directory and both
    names are non-empty.
    """
    host, sep, guest = spec.partition("::")
    if not sep:
        guest = host
    if not host:
        raise UsageError(f"--dir {spec!r}: the host directory is empty")
    if not guest:
        raise UsageError(f"--dir {spec!r}: the guest name after '::' is empty")
    if not os.path.isdir(host):
        reason = "is not a directory" if os.path.exists(host) else "does not exist"
        raise UsageError(f"--dir {spec!r}: {host} {reason}")
    return guest, host


def parse_env(spec: str) -> tuple[str, str]:
    """``KEY=VALUE`` -> ``(KEY, VALUE)``; VALUE may contain ``=`` and be empty.

    Raises ``UsageError`` when there is no ``=`` or KEY is empty.
    """
    key, sep, value = spec.partition("=")
    if not sep or not key:
        raise UsageError(f"--env {spec!r}: expected KEY=VALUE with a non-empty KEY")
    return key, value


def guest_environment(settings: Sequence[str], inherit: bool,
                      host_env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The guest's environment: ``host_env`` if ``inherit``, then the ``--env`` settings.

    ``host_env`` defaults to ``os.environ``.  A later ``--env`` of the same
    key wins over an earlier one and over the host's value.
    """
    env: dict[str, str] = {}
    if inherit:
        env.update(os.environ if host_env is None else host_env)
    for spec in settings:
        key, value = parse_env(spec)
        env[key] = value
    return env


def _backend_from(option: str | None, environ: Mapping[str, str]) -> str:
    """The engine: the option, else ``$LUNATIC_BACKEND`` if set and non-empty, else wasmtime."""
    if option is not None:
        return option
    name = environ.get(BACKEND_ENV, "")
    if not name:
        return DEFAULT_BACKEND
    if name not in BACKENDS:
        raise UsageError(f"{BACKEND_ENV}={name!r} is not an engine; choose one of "
                         f"{', '.join(BACKENDS)}")
    return name


def parse_config(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Config:
    """Turn a command line (without the program name) into a ``Config``.

    ``environ`` (default ``os.environ``) supplies ``LUNATIC_BACKEND`` and, with
    ``--inherit-env``, the guest's environment.  Bad options make argparse
    raise ``SystemExit(2)`` after printing usage; other mistakes raise
    ``UsageError``.
    """
    host_env = os.environ if environ is None else environ
    options, file, guest_args = split_argv(argv)
    parser = build_parser()
    # "--" keeps argparse from reading a FILE that starts with "-" as an option
    ns = parser.parse_args(options if file is None else [*options, "--", file])
    return Config(
        file=ns.file,
        args=tuple(guest_args),
        backend=_backend_from(ns.backend, host_env),
        preopens=tuple(parse_dir(spec) for spec in ns.dir),
        plugins=tuple(ns.plugin),
        env=guest_environment(ns.env, ns.inherit_env, host_env),
        quiet=ns.quiet,
    )


_SOURCE_LINE = re.compile(r"^(\d+ )?\|")  # "  |" and " 1 | (module ..." snippet lines
_LOCATION = re.compile(r"^--> .*?:(\d+):(\d+)$")  # "--> <anon>:1:14"
_CAUSE_NUMBER = re.compile(r"^\d+: ")  # "0: " before each cause in a chain


def _one_line(text: str) -> str:
    """An engine's (possibly multi-line) message as one line.

    Source excerpts are dropped, a ``--> FILE:LINE:COL`` pointer becomes
    ``(line LINE, column COL)``, ``Caused by:`` chains are joined with
    ``": "`` and other lines with ``"; "``.
    """
    out = ""
    for line in (raw.strip() for raw in text.splitlines()):
        if not line or _SOURCE_LINE.match(line):
            continue
        location = _LOCATION.match(line)
        if location:
            out += f" (line {location.group(1)}, column {location.group(2)})"
            continue
        if line == "Caused by:":
            out += ":"
            continue
        line = _CAUSE_NUMBER.sub("", line)
        out = line if not out else out + (" " if out.endswith(":") else "; ") + line
    return out


def build_environment(runtime: Runtime, config: Config) -> Environment:
    """The main environment: the default config plus the command line's WASI settings
    and plugins (``UsageError`` if a plugin cannot be read or is not a valid plugin)."""
    plugins = [load_plugin(path, runtime.backend) for path in config.plugins]
    return runtime.environment(LunaticConfig(wasi_args=config.argv, wasi_env=dict(config.env),
                                             preopens=list(config.preopens), plugins=plugins))


def load_plugin(path: str, backend: str) -> Plugin:
    """Read and compile the plugin at ``path`` (``UsageError`` if that fails)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read plugin {path}: {exc.strerror or exc}") from None
    try:
        return Plugin(data, backend, name=os.path.basename(path))
    except funk.CompileError as exc:
        raise UsageError(f"{path}: {_one_line(str(exc))}") from None


def load_module(config: Config, environment: Environment) -> LunaticModule:
    """Read and compile ``config.file`` into ``environment``; check that it exports ``_start``.

    Raises ``UsageError`` if the file cannot be read, is neither wasm nor
    WAT, does not compile, or has no ``_start`` export.
    """
    try:
        with open(config.file, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise UsageError(f"cannot read {config.file}: {exc.strerror or exc}") from None
    try:
        module = environment.add_module(data, name=os.path.basename(config.file))
    except funk.CompileError as exc:
        raise UsageError(f"{config.file}: {_one_line(str(exc))}") from None
    if ENTRY_POINT not in module.compiled.exports:
        raise UsageError(f"{config.file}: the module has no {ENTRY_POINT} export "
                         "(not a WASI command)")
    return module


def _describe(exc: BaseException) -> str:
    """One line for an exception, using ``strerror``/``filename`` when it has them."""
    if isinstance(exc, OSError) and exc.strerror:
        where = f"{exc.filename}: " if exc.filename is not None else ""
        return f"{where}{exc.strerror}"
    return _one_line(str(exc)) or type(exc).__name__


def failure_reporter(runtime: Runtime) -> Callable[[Process, Outcome], None]:
    """``on_failure`` hook printing abnormal ends of processes but the first (main) one.

    Once the main process has ended, nothing more is reported: the others are
    abandoned, and whether one killed by the main process's death (a link)
    reports before the command exits would be a race.
    """

    def report(process: Process, outcome: Outcome) -> None:
        main_process = runtime.first
        if main_process is None or process is main_process:
            return  # the main process's end is reported by main()
        if main_process.outcome is not None:
            return  # the main process has ended: the command is exiting
        text = outcome.message.replace("\n", "\n    ")
        _report(f"{PROG}: process {process.id} ({process.name}) {outcome.ending.value}: {text}")

    return report


def run(config: Config) -> int:
    """Run the program's main process to its end; return its exit code (not truncated).

    Raises ``UsageError`` for the mistakes listed in the module docstring,
    ``funk.Trap`` when the main process traps (also in a start function) and
    ``MainKilled`` when it is killed.
    """
    runtime = Runtime(config.backend)
    if not config.quiet:
        runtime.on_failure = failure_reporter(runtime)
    environment = build_environment(runtime, config)
    module = load_module(config, environment)
    try:
        process = runtime.spawn(module, ENTRY_POINT)
    except SpawnError as exc:
        cause = exc.__cause__
        if isinstance(cause, WasiExit):  # proc_exit in the module's start function
            return cause.code
        if isinstance(cause, funk.Trap):
            raise cause from None
        if isinstance(cause, (OSError, ValueError)):
            raise UsageError(f"cannot set up WASI: {_describe(cause)}") from None
        raise UsageError(f"{config.file}: {_one_line(str(exc))}") from None
    outcome = process.join()
    assert outcome is not None
    if outcome.ending is Ending.RETURNED:
        return 0
    if outcome.exit_code is not None:
        return outcome.exit_code
    if isinstance(outcome.error, funk.Trap):
        raise outcome.error
    if outcome.ending is Ending.KILLED:
        raise MainKilled(outcome.message)
    raise funk.Trap(outcome.message)


class MainKilled(Exception):
    """The main process was killed (a process it was linked to died)."""


def exit_status(code: int) -> int:
    """The process exit status for a guest exit code: its low 8 bits, as on POSIX."""
    return code & 0xFF


def report_trap(trap: funk.Trap) -> None:
    """Print ``lunatic: trap: MESSAGE`` and the guest backtrace to stderr."""
    lines = [f"{PROG}: trap: {trap.message}"]
    if trap.frames:
        lines.append("guest backtrace:")
        lines.extend(f"  {frame}" for frame in trap.frames)
    _report("\n".join(lines))


_report_lock = threading.Lock()


def _report(text: str) -> None:
    """Write ``text`` and a newline to stderr in one piece (reports come from the
    processes' threads too: they must not interleave), after flushing stdout."""
    _flush_stdout()
    with _report_lock:
        sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _flush_stdout() -> None:
    """Flush Python's stdout so guest output precedes our messages; ignore a closed pipe."""
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the command line ``argv`` (default ``sys.argv[1:]``); return the exit status."""
    try:
        try:
            config = parse_config(sys.argv[1:] if argv is None else argv)
        except SystemExit as exc:  # argparse: --help, or a usage error it has printed
            return _status_of(exc)
        code = run(config)
    except UsageError as exc:
        _report(f"{PROG}: error: {exc}")
        return EXIT_USAGE
    except funk.Trap as trap:
        report_trap(trap)
        return EXIT_TRAP
    except MainKilled as exc:
        _report(f"{PROG}: the main process was killed: {exc}")
        return EXIT_KILLED
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return exit_status(code)


def _status_of(exc: SystemExit) -> int:
    """The exit status argparse asked for."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else EXIT_USAGE
