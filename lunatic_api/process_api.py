"""``lunatic::process``: configs, environments, modules, spawning, links,
the registry (spec section 5).

Calls that can fail for outside reasons use the error convention: return 1
and write the id of a new error resource to the out-pointer (spec 1.5).

Decisions, beside those in ``process``, ``environment`` and ``registry``:

* ``spawn``/``inherit_spawn`` check ``out_ptr`` before anything else, so a bad
  pointer traps *before* a child exists (v0.6.0 started the child, then
  trapped the parent).
* Spawn params must match the entry function's parameter types; a mismatch
  makes the child fail at once, after ``spawn`` returned 0 (as v0.6.0).
  ``v128`` params are decoded but cannot be passed by the engines' Python
  APIs, so such a child fails the same way, with a message saying why.
* ``add_plugin`` compiles the plugin at once (``funk.plugins.Plugin``), so
  invalid bytes and plugins importing anything but ``lunatic::plugin`` are
  errors then; on success it writes 0 to ``out_ptr``, as v0.6.0.  Plugins
  run while ``add_module``/``add_this_module`` work, and the caller's kill
  stops them.
* ``lookup`` writes ``out_ptr`` only on success, so only then is it checked.
"""

from __future__ import annotations

import funk
from funk import Caller
from funk.errors import CompileError, Trap
from funk.plugins import Plugin
from funk.types import Bytes, Ptr, Str, i64, u32, u64
from lunatic_api.context import ProcessContext
from lunatic_api.environment import Config, Environment, LunaticModule
from lunatic_api.process import Process
from lunatic_api.scheduler import HOST_STACK_MARGIN
from lunatic_api.spawn_params import SpawnError, decode_params

__all__ = ["ProcessApi", "NAMESPACE"]

NAMESPACE = "lunatic::process"

OK = 0
ERROR = 1


@funk.host_functions(namespace=NAMESPACE)
class ProcessApi:
    """Process management for one process (its tables live in the context)."""

    #: wasmer runs these methods on the wasm stack: trap the guest rather than run
    #: them with less native stack than this left (``funk.stack``)
    __funk_stack_reserve__ = HOST_STACK_MARGIN

    def __init__(self, context: ProcessContext) -> None:
        self.context = context

    def _fail(self, out: Ptr[u64], text: str) -> int:
        out.set(self.context.error(text))
        return ERROR

    # -- configs and environments ---------------------------------------

    def create_config(self, max_memory: u64, max_fuel: u64) -> u64:
        """A config with the given limits, no namespaces, no plugins; its id."""
        return self.context.configs.add(Config.empty(max_memory, max_fuel))

    def drop_config(self, config_id: u64) -> None:
        """Release a config."""
        self.context.configs.take(config_id)

    def allow_namespace(self, config_id: u64, namespace: Str) -> None:
        """Allow host functions whose ``module::name`` starts with ``namespace``."""
        config: Config = self.context.configs.get(config_id)
        config.allow(namespace)

    def add_plugin(self, config_id: u64, data: Bytes, out: Ptr[u64]) -> u32:
        """Compile a plugin and append it to the config's plugins; 0 at ``out``."""
        config: Config = self.context.configs.get(config_id)
        try:
            plugin = Plugin(bytes(data), self.context.runtime.backend)
        except CompileError as exc:
            return self._fail(out, str(exc))
        finally:
            self.context.process.check_killed()  # compiling is a suspension point
        if not plugin.name:  # unnamed (no name section): its place in the config
            plugin.name = f"#{len(config.plugins) + 1}"
        config.add_plugin(plugin)
        out.set(0)
        return OK

    def create_environment(self, config_id: u64, out: Ptr[u64]) -> u32:
        """A new environment from a snapshot of the config (which stays in the table)."""
        config: Config = self.context.configs.get(config_id)
        env = Environment(self.context.runtime, config)
        out.set(self.context.environments.add(env))
        return OK

    def drop_environment(self, env_id: u64) -> None:
        """Release an environment handle (its modules and processes keep it alive)."""
        self.context.environments.take(env_id)

    # -- modules ----------------------------------------------------------

    def add_module(self, env_id: u64, data: Bytes, out: Ptr[u64]) -> u32:
        """Compile wasm bytes into a module of the environment; its id."""
        env: Environment = self.context.environments.get(env_id)
        wasm = bytes(data)
        try:
            module = env.add_module(wasm, on_slice=self.context.process.check_killed)
        except CompileError as exc:
            return self._fail(out, str(exc))
        finally:
            self.context.process.check_killed()  # compiling is a suspension point
        out.set(self.context.modules.add(module))
        return OK

    def add_this_module(self, env_id: u64, out: Ptr[u64]) -> u32:
        """The caller's own module (original bytes) in another environment; its id."""
        env: Environment = self.context.environments.get(env_id)
        own = self.context.module
        if own is None:
            return self._fail(out, "this process was not spawned from a module")
        try:
            module = own.with_environment(env, self.context.process.check_killed)
        except CompileError as exc:
            return self._fail(out, str(exc))
        finally:
            self.context.process.check_killed()
        out.set(self.context.modules.add(module))
        return OK

    def drop_module(self, module_id: u64) -> None:
        """Release a module handle."""
        self.context.modules.take(module_id)

    # -- spawning -----------------------------------------------------------

    def spawn(self, link: i64, module_id: u64, function: Str, params: Bytes,
              out: Ptr[u64]) -> u32:
        """Spawn ``function`` of a module in a new process (linked if ``link`` != 0)."""
        module: LunaticModule = self.context.modules.get(module_id)
        return self._spawn(module, link, function, params, out)

    def inherit_spawn(self, link: i64, function: Str, params: Bytes, out: Ptr[u64]) -> u32:
        """Spawn ``function`` of the caller's own module, in the caller's environment."""
        module = self.context.module
        if module is None:
            raise Trap("inherit_spawn: this process was not spawned from a module")
        return self._spawn(module, link, function, params, out)

    def _spawn(self, module: LunaticModule, link: int, function: str, params: memoryview,
               out: Ptr[u64]) -> int:
        values = decode_params(params)
        me = self.context.process
        try:
            child = self.context.runtime.spawn(module, function, values,
                                               parent=me if link != 0 else None, link_tag=link,
                                               spawner=me)
        except SpawnError as exc:
            return self._fail(out, str(exc))
        finally:
            me.check_killed()
        out.set(self.context.processes.add(child))
        return OK

    # -- process handles ------------------------------------------------------

    def drop_process(self, process_id: u64) -> None:
        """Release a process handle (the process keeps running)."""
        self.context.processes.take(process_id)

    def clone_process(self, process_id: u64) -> u64:
        """Another handle to the same process."""
        return self.context.processes.add(self.context.processes.get(process_id))

    def sleep_ms(self, millis: u64) -> None:
        """Sleep at least ``millis`` ms (a suspension point: a kill ends it)."""
        self.context.process.sleep(millis / 1000)

    def die_when_link_dies(self, flag: u32) -> None:
        """Non-zero (the default): die when a linked process dies; 0: get a signal message."""
        self.context.process.set_die_when_link_dies(flag != 0)

    def this(self) -> u64:
        """A new handle to the calling process."""
        return self.context.processes.add(self.context.process)

    def id(self, process_id: u64, out_ptr: u32, caller: Caller) -> None:
        """Write the process's UUID at ``out_ptr`` as a little-endian u128."""
        process: Process = self.context.processes.get(process_id)
        caller.memory.write(out_ptr, process.id.int.to_bytes(16, "little"))

    def this_env(self) -> u64:
        """A new handle to the caller's environment."""
        return self.context.environments.add(self.context.environment)

    def link(self, tag: i64, process_id: u64) -> None:
        """Link the caller and the process both ways with ``tag`` (0: untagged)."""
        other: Process = self.context.processes.get(process_id)
        self.context.process.link(other, tag)

    def unlink(self, process_id: u64) -> None:
        """Remove the link with the process, both ways."""
        other: Process = self.context.processes.get(process_id)
        self.context.process.unlink(other)

    # -- registry ---------------------------------------------------------------

    def register(self, name: Str, version: Str, env_id: u64, process_id: u64) -> u32:
        """Register the process under (name, version) in the environment: 0, or 1 (bad version)."""
        process: Process = self.context.processes.get(process_id)
        env: Environment = self.context.environments.get(env_id)
        return env.registry.register(name, version, process)

    def unregister(self, name: Str, version: Str, env_id: u64) -> u32:
        """Remove the entry with exactly that version: 0, 1 (bad version) or 2 (not found)."""
        env: Environment = self.context.environments.get(env_id)
        return env.registry.unregister(name, version)

    def lookup(self, name: Str, query: Str, out_ptr: u32, caller: Caller) -> u32:
        """Find the highest version matching ``query`` in the caller's environment.

        0 with a new process handle at ``out_ptr``, 1 (bad query), 2 (not found).
        """
        code, process = self.context.environment.registry.lookup(name, query)
        if process is None:
            return code
        caller.memory.require(out_ptr, 8, "lunatic::process.lookup", "out_ptr")
        caller.memory.pack("<Q", out_ptr, self.context.processes.add(process))
        return code
