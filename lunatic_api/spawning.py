"""Starting and running wasm processes (spec sections 5.10, 5.11, 7.5).

``WasmLauncher`` is what ``Runtime.spawn`` uses: it hands the scheduler a
body that instantiates the module *in the thread that will run it* (wasmer
objects are bound to their thread), reports success or the error text back
to the spawner, links the child if asked, then runs the entry function and
turns however it ended into an ``Outcome``.  The child's link is recorded
before it runs any code, so its failure always reaches a linked parent.
"""

from __future__ import annotations

import threading
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from funk.errors import FunkError, LinkError, Trap
from funk.instance import ExportFunction, Instance
from lunatic_api.context import ProcessContext
from lunatic_api.error_api import ErrorApi
from lunatic_api.limits import Meter
from lunatic_api.message_api import MessageApi
from lunatic_api.networking_api import NetworkingApi
from lunatic_api.process import WOKEN, Ending, Outcome, Process, ProcessKilled
from lunatic_api.process_api import ProcessApi
from lunatic_api.spawn_params import Param, SpawnError, decode_params
from lunatic_api.wasi import Wasi, WasiExit

if TYPE_CHECKING:
    from lunatic_api.environment import Environment, LunaticModule
    from lunatic_api.runtime import Runtime

__all__ = ["SpawnError", "decode_params", "outcome_of", "detach", "WasmLauncher", "Param"]

def detach(exc: BaseException) -> BaseException:
    """``exc`` without tracebacks (also along its cause/context chain).

    An exception outlives its process when it is kept in an ``Outcome`` or
    handed to the spawner; its traceback would keep the process's frames
    alive, engine objects included, and release them later in another thread
    (which wasmer forbids).
    """
    seen: set[int] = set()
    item: BaseException | None = exc
    while item is not None and id(item) not in seen:
        seen.add(id(item))
        item.__traceback__ = None
        item = item.__cause__ or item.__context__
    return exc


def outcome_of(exc: BaseException | None) -> Outcome:
    """How a process ended, from the exception its body raised (``None``: returned)."""
    if exc is None:
        return Outcome(Ending.RETURNED)
    detach(exc)
    if isinstance(exc, ProcessKilled):
        return Outcome(Ending.KILLED, exc.reason)
    if isinstance(exc, WasiExit):
        return Outcome(Ending.FAILED, f"proc_exit({exc.code})", exit_code=exc.code, error=exc)
    if isinstance(exc, Trap):
        text = str(exc)
        if exc.function and not text.startswith(exc.function):
            text = f"{exc.function}: {text}"  # name the host function that trapped
        return Outcome(Ending.FAILED, text, error=exc)
    text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return Outcome(Ending.FAILED, text, error=exc)


class _Handshake:
    """The child tells its spawner once: started (``None``) or the exception.

    Between the two, the spawner counts in ``WOKEN`` like a process woken by a
    message: on wasmer a busy process then steps aside until it has resumed.
    """

    __slots__ = ("_lock", "failure")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self.failure: BaseException | None = None

    def done(self, failure: BaseException | None = None) -> None:
        self.failure = failure
        WOKEN.append(None)
        self._lock.release()

    def wait(self) -> BaseException | None:
        self._lock.acquire()
        WOKEN.pop()
        return self.failure


def _wasi(environment: Environment) -> Wasi:
    config = environment.config
    return Wasi(args=config.wasi_args, env=config.wasi_env, preopens=config.preopens,
                stdin="inherit", stdout="inherit", stderr="inherit")


def _check_params(entry: ExportFunction, params: Sequence[Param]) -> list[int]:
    """The argument values, if the param types fit the entry's; ``SpawnError`` if not."""
    given = tuple(kind if kind is not None else want for (kind, _), want
                  in zip(params, entry.params)) + tuple(k or "?" for k, _ in
                                                        params[len(entry.params):])
    if given != entry.params:
        raise SpawnError(f"the spawn params ({', '.join(given)}) do not match the parameters "
                         f"({', '.join(entry.params)}) of {entry.name}")
    if "v128" in given:
        raise SpawnError(f"{entry.name}: v128 parameters cannot be passed by this runtime")
    return [value for _, value in params]


class _Setup:
    """A process's instance and host objects, ready to run its entry function."""

    __slots__ = ("context", "wasi", "instance", "entry")

    def __init__(self, context: ProcessContext) -> None:
        self.context = context
        self.wasi: Wasi | None = None
        self.instance: Instance | None = None
        self.entry: ExportFunction | None = None

    def release(self) -> None:
        """Drop handles, close WASI descriptors and the instance."""
        self.context.release()
        if self.wasi is not None:
            self.wasi.close()
        if self.instance is not None:
            self.instance.close()
        self.instance = self.entry = None


class _Instantiating(threading.local):
    #: instantiations (start functions) running on this thread; a class
    #: attribute, so every thread starts at 0
    depth = 0


_instantiating = _Instantiating()


class WasmLauncher:
    """Spawns wasm processes for one runtime.

    On engines whose instances may move between threads (wasmtime), the
    spawner instantiates and hands the ready instance to the scheduler: no
    round trip between threads.  On wasmer the child's thread instantiates
    and reports back through a handshake.

    The child's start function then runs on the spawner's native stack, on
    top of the spawner's own wasm frames, with a wasm stack budget of its
    own.  So that a thread never holds more than two such budgets (what
    ``scheduler.min_stack_size`` provides for), a spawn made while this
    thread is already instantiating (from a start function) instantiates in
    the child's thread, through the handshake, as on wasmer.
    """

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def spawn(self, module: LunaticModule, function: str, params: Sequence[Param],
              parent: Process | None, link_tag: int,
              on_started: Callable[[Process], None],
              spawner: Process | None = None) -> Process:
        """Create and start the process; ``SpawnError`` if instantiation fails.

        ``on_started`` runs once the process is set up, before its entry
        function (the runtime registers it as live there).  Until then the
        child is nobody's to kill, so its start function is stopped by a kill
        of ``spawner`` (the process waiting for it), if given.
        """
        process = Process(module.environment, name=function)
        name = f"lunatic {function}"
        if not module.compiled.thread_bound and not _instantiating.depth:
            try:
                setup = self._setup(process, module, function, spawner)
            except BaseException as exc:  # noqa: B902 - reported as a SpawnError
                process.discard()
                error = _spawn_error(exc)
                raise error from error.__cause__  # "from None" would clear it
            self._begin(process, parent, link_tag, on_started)

            def run_ready() -> None:
                self._execute(process, setup, params)

            self.runtime.scheduler.start(run_ready, name)
            return process

        handshake = _Handshake()

        def body() -> None:
            try:
                setup = self._setup(process, module, function, spawner)
            except BaseException as exc:  # noqa: B902 - reported to the spawner
                process.discard()
                handshake.done(exc)
                return
            self._begin(process, parent, link_tag, on_started)
            handshake.done()
            self._execute(process, setup, params)

        self.runtime.scheduler.start(body, name)
        failure = handshake.wait()
        if failure is not None:
            raise _spawn_error(failure)
        return process

    def _setup(self, process: Process, module: LunaticModule, function: str,
               spawner: Process | None) -> _Setup:
        """Instantiate (running the start function) and find the entry export."""
        setup = _Setup(ProcessContext(self.runtime, process, module))
        try:
            context = setup.context
            meter = Meter(process, module.environment.config.max_fuel,
                          yield_gil=module.compiled.backend.holds_gil, spawner=spawner)
            hosts: list[Any] = [ErrorApi(context), MessageApi(context), ProcessApi(context),
                                NetworkingApi(context), meter]
            if module.uses_wasi:
                # WASI state (descriptors, preopened directories) only for a
                # module that can reach it
                setup.wasi = _wasi(module.environment)
                hosts.append(setup.wasi)
            _instantiating.depth += 1
            try:
                setup.instance = module.compiled.instantiate(hosts, module.environment.allow)
            finally:
                _instantiating.depth -= 1
                meter.spawner = None  # from now on the child is killed as itself
            entry = setup.instance.exports.get(function)
            if not isinstance(entry, ExportFunction):
                detail = "" if entry is None else f" (the export {function} is not a function)"
                raise SpawnError(f"Function '{function}' not found{detail}")
            setup.entry = entry
            return setup
        except BaseException:
            setup.release()
            raise

    @staticmethod
    def _begin(process: Process, parent: Process | None, link_tag: int,
               on_started: Callable[[Process], None]) -> None:
        on_started(process)
        if parent is not None:
            # the child reports link_tag to its parent; the parent reports no tag
            process.link(parent, link_tag, 0)

    @staticmethod
    def _execute(process: Process, setup: _Setup, params: Sequence[Param]) -> None:
        """Run the entry function to its end, release everything, record the outcome."""
        outcome = Outcome(Ending.RETURNED)
        try:
            assert setup.entry is not None
            setup.entry(*_check_params(setup.entry, params))
        except SpawnError as exc:
            outcome = Outcome(Ending.FAILED, str(exc), error=detach(exc))
        except BaseException as exc:  # noqa: B902 - every ending is an outcome
            outcome = outcome_of(exc)
        finally:
            setup.release()
            process.finish(outcome)


def _spawn_error(exc: BaseException) -> SpawnError:
    """The ``SpawnError`` for a failed instantiation; ``__cause__`` keeps the exception
    so Python callers can tell a trapping start function (or ``proc_exit`` in it)
    from a link error."""
    detach(exc)
    error = SpawnError(_spawn_error_text(exc))
    if not isinstance(exc, SpawnError):
        error.__cause__ = exc
    return error


def _spawn_error_text(exc: BaseException) -> str:
    if isinstance(exc, SpawnError):
        return str(exc)
    if isinstance(exc, WasiExit):
        return f"the start function called proc_exit({exc.code})"
    if isinstance(exc, Trap):
        # a trap of the start function, or the engine failing to set up the
        # instance (e.g. no memory left to map): instantiation covers both
        return ("instantiation failed (the start function trapped or the engine could not "
                f"set up the instance): {exc.message}")
    if isinstance(exc, LinkError):
        return " ".join(str(exc).split())
    if isinstance(exc, (FunkError, OSError, ValueError)):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"

