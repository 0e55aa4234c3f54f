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
"""

from __future__ import annotations

import abc
import queue
import threading
from collections.abc import Callable

__all__ = ["Scheduler", "ThreadScheduler", "DEFAULT_STACK_SIZE"]

DEFAULT_STACK_SIZE = 2 << 20
"""Stack per process thread: wasm may use up to 512 KiB of it (wasmtime's default
``max_wasm_stack``) plus the Python frames of host calls; unused pages cost no memory."""

Body = Callable[[], None]


class Scheduler(abc.ABC):
    """Runs process bodies concurrently."""

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

    __slots__ = ("queue", "thread")

    def __init__(self) -> None:
        self.queue: queue.SimpleQueue[tuple[Body, str] | None] = queue.SimpleQueue()
        self.thread: threading.Thread | None = None


class ThreadScheduler(Scheduler):
    """One OS thread per running process, from a pool of reusable threads.

    ``stack_size`` is each thread's stack; ``idle_timeout`` how long (seconds)
    a thread without a process waits for one before it ends; ``max_idle`` how
    many idle threads are kept at most.  Threads are daemons: a program that
    ends does not wait for processes still running (Lunatic abandons them).
    """

    def __init__(self, stack_size: int = DEFAULT_STACK_SIZE, idle_timeout: float = 10.0,
                 max_idle: int = 256) -> None:
        self.stack_size = stack_size
        self.idle_timeout = idle_timeout
        self.max_idle = max_idle
        self._lock = threading.Lock()
        self._idle: list[_Worker] = []
        self._closed = False

    @property
    def idle_threads(self) -> int:
        """Threads waiting for a process right now."""
        return len(self._idle)

    def start(self, body: Body, name: str) -> None:
        with self._lock:
            worker = self._idle.pop() if self._idle else None
        if worker is not None:
            worker.queue.put((body, name))
            return
        worker = _Worker()
        worker.queue.put((body, name))
        thread = threading.Thread(target=self._work, args=(worker,), name=name, daemon=True)
        worker.thread = thread
        with _STACK_LOCK:
            # threading.stack_size applies to threads started after it, process-wide
            previous = threading.stack_size(self.stack_size)
            try:
                thread.start()
            finally:
                threading.stack_size(previous)

    def _work(self, worker: _Worker) -> None:
        thread = threading.current_thread()
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
            body, thread.name = item
            body()
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
