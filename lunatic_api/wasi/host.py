"""``Wasi``: all of ``wasi_snapshot_preview1`` as one funk host object.

Link it into any funk instance like any other host API::

    from lunatic_api.wasi import Wasi

    out = bytearray()
    wasi = Wasi(args=["prog.wasm", "x"], env={"LANG": "C"},
                preopens={"/data": "/srv/data"}, stdin=b"input", stdout=out)
    inst = funk.instantiate("prog.wasm", [wasi], backend="wasmer")
    code = wasi.run(inst)          # _start; 0, or the proc_exit code

The functions themselves live in one mixin per group (``fd_api``,
``path_api``, ``poll_api``, ``socket_api``, ``process_api``); this module
turns the constructor's configuration into the initial descriptor table.

One ``Wasi`` object is one WASI "process": its descriptor table is shared by
every instance it is linked into, so give each program its own.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Union

import funk
from funk import internal
from lunatic_api.scheduler import HOST_STACK_MARGIN
from lunatic_api.wasi.abi import (
    DIRECTORY_INHERITING,
    DIRECTORY_RIGHTS,
    NAMESPACE,
    Filetype,
    Rights,
)
from lunatic_api.wasi.descriptors import (
    Descriptor,
    DescriptorTable,
    MemoryInput,
    MemoryOutput,
)
from lunatic_api.wasi.fd_api import FdFunctions
from lunatic_api.wasi.path_api import PathFunctions
from lunatic_api.wasi.poll_api import PollFunctions
from lunatic_api.wasi.process_api import ProcessFunctions, WasiExit
from lunatic_api.wasi.socket_api import SocketFunctions, socket_descriptor

__all__ = ["Wasi", "INHERIT", "StdinSource", "OutputSink"]

INHERIT = "inherit"
"""Stdio option: use the host process's own stdin/stdout/stderr."""

StdinSource = Union[bytes, str, "os.PathLike[str]", Any, None]
"""``bytes`` (the whole input), ``INHERIT``, a path to read, a binary file
object with ``fileno()``, or ``None`` (empty input)."""

OutputSink = Union[bytearray, str, "os.PathLike[str]", Any, None]
"""A ``bytearray`` (output is appended to it), ``INHERIT``, a path (created or
truncated), a binary file object with ``fileno()``, or ``None`` (discard)."""

_STDIN_RIGHTS = int(Rights.fd_read | Rights.poll_fd_readwrite | Rights.fd_filestat_get)
_STDOUT_RIGHTS = int(Rights.fd_write | Rights.poll_fd_readwrite | Rights.fd_filestat_get)


def _encode(text: str | bytes, what: str) -> bytes:
    data = text if isinstance(text, bytes) else os.fsencode(text)
    if b"\0" in data:
        raise ValueError(f"{what} {text!r} contains a NUL byte")
    return data


def _env_pairs(env: Mapping[str, str] | Iterable[tuple[str, str]]) -> list[bytes]:
    pairs = env.items() if isinstance(env, Mapping) else env
    out = []
    for key, value in pairs:
        k = _encode(key, "environment variable name")
        if not k or b"=" in k:
            raise ValueError(f"invalid environment variable name {key!r}")
        out.append(k + b"=" + _encode(value, f"value of {key}"))
    return out


class _InheritedStdio(Descriptor):
    """One of fds 0-2 shared with the host process (``INHERIT``).

    A terminal is a character device; anything else is reported as
    "unknown", as wasmtime does for stdio.  Which one is asked of the host
    (``os.isatty``) when the file type is first read, not when the ``Wasi``
    is made: only ``fd_fdstat_get`` tells it to the guest, few guests ask,
    and the three system calls were a tenth of the cost of spawning a
    Lunatic process.  Like wasmtime, which asks the host whenever the guest
    asks, the answer describes the descriptor as it is then.
    """

    __slots__ = ("_kind",)

    def __init__(self, host_fd: int, rights: int) -> None:
        super().__init__(Filetype.unknown, rights, rights, host_fd=host_fd, owned=False)
        # the file type given above is a placeholder (it went through the setter)
        self._kind: Filetype | None = None

    @property
    def filetype(self) -> Filetype:
        kind = self._kind
        if kind is None:
            fd = self.host_fd
            tty = fd is not None and os.isatty(fd)
            kind = self._kind = Filetype.character_device if tty else Filetype.unknown
        return kind

    @filetype.setter
    def filetype(self, value: Filetype) -> None:
        self._kind = value


def _stdio(spec: Any, host_fd: int, rights: int, reading: bool) -> Descriptor:
    """The descriptor for one of fds 0-2 from its constructor option."""
    if spec is None:
        stream: MemoryInput | MemoryOutput = MemoryInput(b"") if reading else MemoryOutput(None)
        return Descriptor(Filetype.unknown, rights, rights, stream=stream)
    if isinstance(spec, str) and spec == INHERIT:
        return _InheritedStdio(host_fd, rights)
    if reading and isinstance(spec, (bytes, bytearray, memoryview)):
        return Descriptor(Filetype.unknown, rights, rights, stream=MemoryInput(bytes(spec)))
    if not reading and isinstance(spec, bytearray):
        return Descriptor(Filetype.unknown, rights, rights, stream=MemoryOutput(spec))
    if isinstance(spec, (str, os.PathLike)):
        flags = os.O_RDONLY if reading else os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        fd = os.open(spec, flags | os.O_CLOEXEC, 0o666)
        return Descriptor(Filetype.unknown, rights, rights, host_fd=fd)
    if hasattr(spec, "fileno"):
        if hasattr(spec, "flush"):
            spec.flush()
        return Descriptor(Filetype.unknown, rights, rights, host_fd=os.dup(spec.fileno()))
    which = "stdin" if reading else f"fd {host_fd}"
    raise TypeError(f"unsupported {which} option {spec!r}: use bytes (stdin), a bytearray "
                    "(stdout/stderr), 'inherit', a path, a file object or None")


def _preopen(guest: str, host: str | os.PathLike[str]) -> Descriptor:
    """Open a host directory as a preopen named ``guest``."""
    try:
        fd = os.open(host, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise ValueError(f"cannot preopen {os.fspath(host)!r} as {guest!r}: "
                         f"{exc.strerror}") from None
    return Descriptor(Filetype.directory, DIRECTORY_RIGHTS, DIRECTORY_INHERITING, host_fd=fd,
                      preopen=guest)


@funk.host_functions(namespace=NAMESPACE)
class Wasi(FdFunctions, PathFunctions, PollFunctions, SocketFunctions, ProcessFunctions):
    """The WASI preview1 host API for one program.

    * ``args``: the program's argv (``argv[0]`` is by convention its name);
    * ``env``: a mapping or ``(key, value)`` pairs;
    * ``preopens``: guest name -> host directory (a mapping or pairs), given
      fds 3, 4, ... in order; the guest can reach nothing outside them;
    * ``stdin``: ``bytes``, ``INHERIT``, a path, a file object, or ``None``
      (empty, the default);
    * ``stdout``/``stderr``: a ``bytearray`` that collects the output,
      ``INHERIT`` (the default), a path, a file object, or ``None`` (discard);
    * ``sockets``: sockets (e.g. listening TCP sockets) handed to the guest
      as the fds after the preopens; the guest owns them from then on.

    Bad configuration raises ``ValueError``/``TypeError`` here, not later.
    Host fds opened for the guest are closed by ``close()`` (or when the
    object is collected).
    """

    #: wasmer runs these methods on the wasm stack: trap the guest rather than run
    #: them with less native stack than this left (``funk.stack``)
    __funk_stack_reserve__ = HOST_STACK_MARGIN

    def __init__(self, args: Sequence[str | bytes] = (),
                 env: Mapping[str, str] | Iterable[tuple[str, str]] = (),
                 preopens: Mapping[str, str | os.PathLike[str]]
                 | Iterable[tuple[str, str | os.PathLike[str]]] = (),
                 stdin: StdinSource = None, stdout: OutputSink = INHERIT,
                 stderr: OutputSink = INHERIT, sockets: Iterable[socket.socket] = ()) -> None:
        if isinstance(args, (str, bytes)):
            raise TypeError("args must be a sequence of strings, not one string")
        self._table = DescriptorTable()
        self._args = [_encode(a, "argument") for a in args]
        self._env = _env_pairs(env)
        pairs = preopens.items() if isinstance(preopens, Mapping) else preopens
        try:
            self._table.add(_stdio(stdin, 0, _STDIN_RIGHTS, True))
            self._table.add(_stdio(stdout, 1, _STDOUT_RIGHTS, False))
            self._table.add(_stdio(stderr, 2, _STDOUT_RIGHTS, False))
            for guest, host in pairs:
                self._table.add(_preopen(guest, host))
            for sock in sockets:
                self._table.add(socket_descriptor(sock))
        except BaseException:
            self._table.close_all()
            raise

    @internal
    def run(self, instance: funk.Instance) -> int:
        """Run a WASI command: call its ``_start`` and return the exit code.

        0 if ``_start`` returns, ``n`` if the guest called ``proc_exit(n)``.
        A guest trap raises ``funk.Trap``; a module without ``_start`` raises
        ``LookupError``.
        """
        start = instance.exports.get("_start")
        if start is None:
            raise LookupError("the module does not export _start (it is not a WASI command)")
        try:
            start()
        except WasiExit as exc:
            return exc.code
        return 0

    @internal
    def close(self) -> None:
        """Close every descriptor the guest still holds."""
        self._table.close_all()

    def __enter__(self) -> Wasi:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self._table.close_all()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass
