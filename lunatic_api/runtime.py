"""The Lunatic runtime: environments, spawning, killing, native processes.

::

    from lunatic_api import Runtime

    rt = Runtime(backend="wasmer")
    env = rt.environment()                 # the default config: everything allowed
    module = env.add_module("prog.wasm")
    main = rt.spawn(module, "_start")      # a Process
    outcome = main.join()                  # Outcome(ending, message, exit_code)

    def echo(proc):                        # a native process
        msg = proc.receive()
        proc.send(msg.resources[0], msg.buffer)
    rt.spawn_native(echo)

Processes run concurrently on the runtime's ``Scheduler`` (by default one
thread each, ``ThreadScheduler``).  Python drives them through ``Process``
objects: ``send``, ``kill``, ``join``, and the registry of any environment.
``Runtime.dense()`` is the configuration for holding many processes at once
(10,000 idle ones on wasmtime): smaller thread stacks and a wasmtime engine
that maps less per process.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import funk
from lunatic_api.environment import Config, Environment, LunaticModule
from lunatic_api.messages import DataMessage
from lunatic_api.native import NativeProcess
from lunatic_api.process import Outcome, Process
from lunatic_api.scheduler import (
    DENSE_STACK_SIZE,
    HOST_STACK_MARGIN,
    Scheduler,
    ThreadScheduler,
    max_wasm_stack_for,
    min_stack_size,
    release_cpu_hint,
)
from lunatic_api.spawn_params import Param, SpawnError
from lunatic_api.spawning import WasmLauncher, outcome_of

__all__ = ["Runtime", "SpawnError", "FailureHook", "DENSE_WASMTIME_SETTINGS"]

_SHUTDOWN_BATCH = 64

FailureHook = Callable[[Process, Outcome], None]
"""Called (in the dying process's thread) when a process ends abnormally."""

DENSE_WASMTIME_SETTINGS: dict[str, Any] = {
    "memory_init_cow": False,
    "max_wasm_stack": max_wasm_stack_for(DENSE_STACK_SIZE),
}
"""The wasmtime engine settings of the dense configuration (``Runtime.dense``).

``memory_init_cow=False``: linear memory is plain anonymous memory, not a
copy-on-write mapping of the module's data image (one memory map less per
process; data segments are copied at instantiation instead, which only
costs time for modules with large ones).  ``max_wasm_stack``: 224 KiB
(wasmtime's default is 512 KiB), the most a ``DENSE_STACK_SIZE`` thread
allows (``lunatic_api.scheduler.min_stack_size``)."""


class Runtime:
    """A set of processes sharing a scheduler and an engine.

    ``backend`` is the engine every module is compiled for.  ``on_failure``,
    if given, is called for every process that ends abnormally (trap, kill,
    ``proc_exit``) -- the ``lunatic`` command prints those.
    """

    def __init__(self, backend: str = funk.DEFAULT_BACKEND, scheduler: Scheduler | None = None,
                 on_failure: FailureHook | None = None) -> None:
        funk.backends.get(backend)  # fail now, clearly, if the engine is missing
        self.backend = backend
        self.scheduler = scheduler if scheduler is not None else ThreadScheduler()
        if backend == "wasmtime":
            _check_stack(self.scheduler)
        self.on_failure = on_failure
        self._launcher = WasmLauncher(self)
        self._lock = threading.Lock()
        self._live: dict[uuid.UUID, Process] = {}
        self._default: Environment | None = None
        #: the first process started (the ``lunatic`` command's main process)
        self.first: Process | None = None

    @classmethod
    def dense(cls, backend: str = funk.DEFAULT_BACKEND, on_failure: FailureHook | None = None,
              **scheduler_options: Any) -> Runtime:
        """A runtime set up to hold many processes at once: the dense configuration.

        What runs out first with thousands of idle processes is the kernel's
        limit on memory maps per process (``vm.max_map_count``, 65,530 by
        default), not memory: a wasmtime process costs 8 maps by default (its
        thread's stack and guard, wasmtime's signal stack and guard, four for
        its linear memory).  Here process threads get ``DENSE_STACK_SIZE``
        (512 KiB) stacks and, on wasmtime, the engine gets
        ``DENSE_WASMTIME_SETTINGS`` (no copy-on-write memory image, a 224 KiB
        ``max_wasm_stack`` that such a stack holds safely): about 6.4 maps per
        idle process, so 10,000 fit.  ``scheduler_options`` go to the
        ``ThreadScheduler`` (``idle_timeout``, ``max_idle``, ``cpu_hint``).

        The wasmtime engine is one per Python process, made when first
        needed: call this before anything is compiled for wasmtime (else
        ``RuntimeError``, unless the engine already has these settings);
        runtimes made later share the settings.  Costs: wasm recursing past
        224 KiB of native stack traps (it would at 512 KiB by default);
        native processes (``spawn_native``) get 512 KiB stacks too, where
        Python code recursing some hundreds of levels through C functions
        (``sorted`` with a key that recurses, say) can crash the interpreter
        before ``RecursionError``.
        """
        funk.backends.get(backend)
        if backend == "wasmtime":
            from funk.backends import wasmtime as engine

            try:
                engine.configure(**DENSE_WASMTIME_SETTINGS)
            except RuntimeError as exc:
                raise RuntimeError(f"Runtime.dense: {exc}") from None
        return cls(backend, ThreadScheduler(stack_size=DENSE_STACK_SIZE, **scheduler_options),
                   on_failure)

    # -- environments -----------------------------------------------------------

    def environment(self, config: Config | None = None) -> Environment:
        """A new environment from ``config`` (default: everything allowed, no limits)."""
        return Environment(self, config if config is not None else Config())

    @property
    def default_environment(self) -> Environment:
        """An environment with the default config, made on first use (native processes)."""
        if self._default is None:
            with self._lock:
                if self._default is None:
                    self._default = self.environment()
        return self._default

    # -- processes --------------------------------------------------------------

    def spawn(self, module: LunaticModule, function: str = "_start",
              params: Sequence[Param | int] = (), parent: Process | None = None,
              link_tag: int = 0, spawner: Process | None = None) -> Process:
        """Start ``function`` of ``module`` in a new process; returns once it runs.

        ``params`` are ``(type, value)`` pairs or plain ints (typed like the
        entry's parameters).  With ``parent``, the child is linked to it
        before it runs: the child reports ``link_tag`` to the parent when it
        dies abnormally, the parent reports 0 to the child.  Raises
        ``SpawnError`` when the module cannot be instantiated (unknown
        import, start function failed, no such export, initial memory over
        the environment's ``max_memory``).  ``spawner`` is the process asking
        (if any): killing it also stops the child's start function.
        """
        typed: list[Param] = [p if isinstance(p, tuple) else (None, p) for p in params]
        module.check_spawnable()
        return self._launcher.spawn(module, function, typed, parent, link_tag, self._started,
                                    spawner)

    def spawn_native(self, body: Callable[[NativeProcess], Any],
                     environment: Environment | None = None, parent: Process | None = None,
                     link_tag: int = 0, name: str = "") -> Process:
        """Run ``body(proc)`` as a process: it has a mailbox, links, a registry.

        ``proc`` is a ``NativeProcess`` (send, receive, link, register,
        lookup, sleep...).  Returning ends the process normally; an exception
        is a failure (linked processes are told); a kill raises
        ``ProcessKilled`` inside ``body`` at its next blocking call.
        """
        env = environment if environment is not None else self.default_environment
        process = Process(env, name=name or getattr(body, "__name__", "native"))
        native = NativeProcess(self, process)
        self._started(process)
        if parent is not None:
            process.link(parent, link_tag, 0)

        def run() -> None:
            # Python code may release the GIL for long (a C extension computing):
            # nothing would tell when, so the thread is free to move from the start
            release_cpu_hint()
            error: BaseException | None = None
            try:
                body(native)
            except BaseException as exc:  # noqa: B902 - every ending is an outcome
                error = exc
            native.release()
            process.finish(outcome_of(error))

        self.scheduler.start(run, f"lunatic native {process.name}")
        return process

    def _started(self, process: Process) -> None:
        process.on_end = self._ended
        with self._lock:
            self._live[process.id] = process
            if self.first is None:
                self.first = process

    def _ended(self, process: Process, outcome: Outcome) -> None:
        with self._lock:
            self._live.pop(process.id, None)
        if outcome.abnormal and self.on_failure is not None:
            self.on_failure(process, outcome)

    def processes(self) -> list[Process]:
        """The processes running now."""
        with self._lock:
            return list(self._live.values())

    def find(self, process_id: uuid.UUID) -> Process | None:
        """The running process with that UUID, if any."""
        with self._lock:
            return self._live.get(process_id)

    @staticmethod
    def send(process: Process, data: bytes | bytearray = b"", tag: int = 0,
             resources: Sequence[Any] = ()) -> bool:
        """Deliver a data message from Python; ``False`` if the process has ended."""
        return process.deliver(DataMessage(tag, data, list(resources)))

    @staticmethod
    def kill(process: Process, reason: str = "killed from Python") -> bool:
        """Kill a process: it ends at its next suspension point (a blocked call wakes).

        A process busy in pure wasm reaches one within a fuel slice (the
        injected fuel checks, ``lunatic_api.limits``): well under a millisecond.
        """
        return process.kill(reason)

    def shutdown(self, timeout: float = 5.0) -> list[Process]:
        """Kill every process, wait up to ``timeout`` s; the ones still running.

        A process stuck in a synchronous host call (a WASI read of stdin, say)
        cannot end until that call returns; it is returned here rather than
        waited for forever.
        """
        deadline = time.monotonic() + timeout
        stuck: list[Process] = []
        live = self.processes()
        # in batches: thousands of threads woken at once mostly fight over the GIL
        for start in range(0, len(live), _SHUTDOWN_BATCH):
            batch = live[start:start + _SHUTDOWN_BATCH]
            for process in batch:
                process.kill("the runtime is shutting down")
            stuck.extend(p for p in batch
                         if p.join(max(0.0, deadline - time.monotonic())) is None)
        self.scheduler.shutdown()
        return stuck


def _check_stack(scheduler: Scheduler) -> None:
    """Refuse process threads with less stack than wasmtime's wasm stack limit needs.

    Below ``min_stack_size(max_wasm_stack)``, a guest recursing deeply (or
    spawning from deep down) overflows the thread's stack in native code
    instead of trapping: the interpreter dies of SIGSEGV.  The engine is
    made here if it was not yet, so its settings (the limit checked) can no
    longer change.
    """
    stack = getattr(scheduler, "stack_size", None)
    if not stack:
        return  # the platform's default (RLIMIT_STACK, usually 8 MiB, on Linux)
    from funk.backends import wasmtime as engine

    engine.engine()
    limit = engine.max_wasm_stack()
    need = min_stack_size(limit)
    if stack < need:
        raise ValueError(
            f"the scheduler's thread stack of {stack} bytes is too small for wasmtime's "
            f"max_wasm_stack of {limit} bytes: a guest recursing deeply would crash the "
            f"interpreter (SIGSEGV) instead of trapping. A process thread needs at least "
            f"{need} bytes (2 x max_wasm_stack + {HOST_STACK_MARGIN} for host calls): give "
            f"the scheduler stack_size >= {need}, or configure max_wasm_stack <= "
            f"{max_wasm_stack_for(stack)} with funk.backends.wasmtime.configure("
            f"max_wasm_stack=...) before anything is compiled for wasmtime "
            f"(Runtime.dense() sets up a safe pair)")
