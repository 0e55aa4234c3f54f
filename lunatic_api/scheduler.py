"""Where process bodies run: the scheduler interface and its thread implementation.

The runtime hands a scheduler one callable per process (``start``) and never
assumes more: how bodies are multiplexed onto OS threads is the scheduler's
business.  ``ThreadScheduler`` runs each body on its own OS thread, the only
choice on wasmer (its objects are bound to one thread, and it holds the GIL
while wasm runs).  A later scheduler can run many wasmtime processes per
thread through the C API's async calls behind the same interface; the
blocking waits it would have to turn into suspensions are all in
``lunatic_api.process.Process`` and ``lunatic_api.net``.

Threads are kept in a pool: a thread whose process ended waits a while for
the next one.  That makes a spawn a hand-over instead of a thread start, and
on wasmer keeps each thread's deserialized modules and store warm.

A hand-over also carries a *CPU hint* (Linux): the pooled thread is woken on
the CPU its spawner runs on, and stays there until its process first blocks
(``release_cpu_hint``, called by the runtime's suspension points), has used
a whole fuel slice, or ends.  Spawner and child pass the interpreter lock
back and forth several times per spawn (the child's set-up, its first wasm
call, its clean-up), and each pass between threads on different CPUs costs
a cross-CPU wake-up: about 30 us in these VMs, against a few for two threads
sharing a CPU.  Measured with ``bench/runtime.py`` (a function that returns
at once, 2 vCPUs), hint off -> on: ~4,300 -> ~7,400 spawns/s on wasmtime,
~3,000 -> ~5,100 on wasmer.  A process that lives on is free to move once
the hint is released.  A thread that host code starts while its process
still carries the hint inherits the one CPU (as threads inherit affinity).
"""

from __future__ import annotations

import abc
import ctypes
import os
import queue
import threading
from collections.abc import Callable

__all__ = [
    "Scheduler", "ThreadScheduler", "DEFAULT_STACK_SIZE", "DENSE_STACK_SIZE",
    "HOST_STACK_MARGIN", "min_stack_size", "max_wasm_stack_for", "release_cpu_hint",
]

DEFAULT_STACK_SIZE = 2 << 20
"""Stack per process thread: room for two wasm stacks of wasmtime's default
``max_wasm_stack`` (512 KiB) plus host calls (``min_stack_size``); unused pages cost no
memory."""

DENSE_STACK_SIZE = 512 << 10
"""Stack per process thread in the dense configuration (``Runtime.dense``).

Memory is not what limits how many processes fit: untouched stack pages cost
nothing.  Memory *maps* are (the kernel's ``vm.max_map_count``, 65,530 by
default): with smaller stacks, consecutive linear memories mostly land next to
each other, so the kernel merges the guard region before one with the
reservation after the next (with ``memory_init_cow=False``: about 6.4 maps per
idle wasmtime process instead of 7 with 2 MiB stacks).  It needs a smaller
``max_wasm_stack`` (``max_wasm_stack_for``)."""

HOST_STACK_MARGIN = 64 << 10
"""Native stack a process thread needs besides its wasm stacks (``min_stack_size``).

Measured on wasmtime (x86-64, CPython 3.10), as the deepest page touched on the
thread's stack: 12 KiB above the wasm stack for the thread's own frames (the
thread's TLS, the pooled worker, ``_execute``, the export call), and 24 KiB in
all above the two wasm stacks for the deepest path found: a guest at its
``max_wasm_stack`` calling ``inherit_spawn`` of a child whose start function
recurses to its own limit (calling a host function at every level, or
trapping there).  Other host calls at the limit (DNS resolution, WASI writes,
a host trap) need at most 8 KiB above the wasm stack.  64 KiB leaves 2.5x the
worst measured.  It is also the Lunatic host classes' ``__funk_stack_reserve__``:
on wasmer, where wasm may use the whole stack, a host call with less left traps."""


def min_stack_size(max_wasm_stack: int) -> int:
    """The smallest safe process-thread stack when wasm may use ``max_wasm_stack``
    bytes of it (wasmtime's limit; past it, wasm traps cleanly).

    A thread holds at most two wasm stacks at once: its process's, and, while
    that process spawns on wasmtime, the child's start function, which runs
    in the spawner's thread with a fresh ``max_wasm_stack`` budget
    (``lunatic_api.spawning`` never nests deeper); plus ``HOST_STACK_MARGIN``
    for the host frames between and above them.  A thread short of this can
    overflow its stack in native code: the interpreter dies of SIGSEGV.
    """
    return 2 * max_wasm_stack + HOST_STACK_MARGIN


def max_wasm_stack_for(stack_size: int) -> int:
    """The largest ``max_wasm_stack`` (a multiple of 4 KiB) safe on threads with
    ``stack_size`` bytes of stack; 0 if none is."""
    return max(0, (stack_size - HOST_STACK_MARGIN) // 2) & ~0xFFF

Body = Callable[[], None]


def _load_getcpu() -> Callable[[], int] | None:
    """``sched_getcpu`` of the C library (called keeping the GIL: a vDSO read), if any."""
    if not hasattr(os, "sched_setaffinity"):
        return None
    try:
        fn = ctypes.PyDLL(None).sched_getcpu
    except (AttributeError, OSError):
        return None
    fn.restype, fn.argtypes = ctypes.c_int, ()
    return fn


_getcpu = _load_getcpu()


class _HintState(threading.local):
    #: the CPUs to give this thread back when its hint is released; ``None``
    #: while it carries no hint (a class attribute: every thread starts so)
    restore: frozenset[int] | None = None


_hint = _HintState()


def release_cpu_hint() -> None:
    """Let the calling thread run on any of its scheduler's CPUs again.

    A process thread started with a CPU hint (see the module's docstring)
    calls this when its process blocks or keeps running; elsewhere it does
    nothing, cheaply.
    """
    restore = _hint.restore
    if restore is not None:
        _hint.restore = None
        try:
            os.sched_setaffinity(0, restore)
        except OSError:  # a hint, not a promise: the CPU set may have changed under us
            pass


class Scheduler(abc.ABC):
    """Runs process bodies concurrently."""

    #: bytes of native stack of the threads that run bodies, when the scheduler
    #: decides it (``None`` or 0: the platform's default); ``Runtime`` checks it
    #: against the engine's wasm stack limit
    stack_size: int | None = None

    @abc.abstractmethod
    def start(self, body: Body, name: str) -> None:
        """Run ``body`` concurrently with everything else; return at once.

        ``body`` must not raise (the runtime wraps each process so it cannot);
        ``name`` is for debuggers and thread listings.
        """

    @abc.abstractmethod
    def shutdown(self) -> None:
        """Stop keeping idle resources; bodies already started keep running."""


class _Worker:
    """One pooled thread: runs bodies handed to it through its queue."""

    __slots__ = ("queue", "thread", "tid")

    def __init__(self) -> None:
        #: (body, thread name, whether the hand-over pinned the thread), or None: stop
        self.queue: queue.SimpleQueue[tuple[Body, str, bool] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None
        #: the thread's kernel id, once it runs (what ``sched_setaffinity`` takes)
        self.tid = 0


class ThreadScheduler(Scheduler):
    """One OS thread per running process, from a pool of reusable threads.

    ``stack_size`` is each thread's stack (0: the platform's default; on
    wasmtime at least ``min_stack_size`` of the engine's ``max_wasm_stack``,
    which ``Runtime`` checks); ``idle_timeout`` how long (seconds)
    a thread without a process waits for one before it ends; ``max_idle`` how
    many idle threads are kept at most.  Threads are daemons: a program that
    ends does not wait for processes still running (Lunatic abandons them).
    ``cpu_hint`` (default: on where the platform allows it and there are two
    CPUs or more) wakes a pooled thread on its spawner's CPU (see the module's
    docstring); a released hint gives a thread back ``cpus``, the CPUs the
    thread making the scheduler was allowed when it made it.
    """

    stack_size: int

    def __init__(self, stack_size: int = DEFAULT_STACK_SIZE, idle_timeout: float = 10.0,
                 max_idle: int = 256, cpu_hint: bool = True) -> None:
        self.stack_size = stack_size
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False
        #: the CPUs process threads may use (what a released hint gives back)
        self.cpus: frozenset[int] | None = None
        if cpu_hint and _getcpu is not None:
            cpus = frozenset(os.sched_getaffinity(0))
            self.cpus = cpus if len(cpus) > 1 else None  # one CPU: nothing to hint

    @property
    def idle_threads(self) -> int:
        """Threads waiting for a process right now."""
        return len(self._idle)

    def start(self, body: Body, name: str) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            worker.queue.put((body, name, self._pin(worker)))
            return
        worker = _Worker()
        # a new thread inherits this thread's CPUs, maybe a hint's one CPU:
        # it gives them back like a hinted thread
        worker.queue.put((body, name, self.cpus is not None))
        thread = threading.Thread(target=self._work, args=(worker,), name=name, daemon=True)
        worker.thread = thread
        with _STACK_LOCK:
            # threading.stack_size applies to threads started after it, process-wide
            previous = threading.stack_size(self.stack_size)
            try:
                thread.start()
            finally:
                threading.stack_size(previous)

    def _pin(self, worker: _Worker) -> bool:
        """Ask the kernel to wake ``worker`` on this thread's CPU; whether it took."""
        cpus = self.cpus
        if cpus is None or _getcpu is None or not worker.tid:
            return False
        cpu = _getcpu()
        if cpu not in cpus:  # the spawner runs outside the scheduler's CPUs
            return False
        try:
            os.sched_setaffinity(worker.tid, (cpu,))
        except OSError:
            return False
        return True

    def _work(self, worker: _Worker) -> None:
        thread = threading.current_thread()
        worker.tid = threading.get_native_id()
        while True:
            try:
                item = worker.queue.get(timeout=self.idle_timeout)
            except queue.Empty:
                with self._lock:
                    if worker in self._idle:  # nobody is handing us a body: retire
                        self._idle.remove(worker)
                        return
                item = worker.queue.get()  # a body is on its way
            if item is None:
                return
            body, thread.name, pinned = item
            if pinned:
                _hint.restore = self.cpus
            body()
            release_cpu_hint()
            del body, item
            with self._lock:
                if self._closed or len(self._idle) >= self.max_idle:
                    return
                self._idle.append(worker)

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for worker in idle:
            worker.queue.put(None)


_STACK_LOCK = threading.Lock()
