"""The Lunatic 0.6 runtime on funk, and WASI preview1.

* ``Runtime`` -- environments, spawning, killing, native Python processes;
* ``Process``, ``Outcome``, ``Ending`` -- a process and how it ended;
* ``Config``, ``Environment``, ``LunaticModule`` -- settings, registries, code;
* one host class per ABI namespace: ``error_api.ErrorApi``,
  ``message_api.MessageApi``, ``process_api.ProcessApi``,
  ``networking_api.NetworkingApi``, and ``wasi.Wasi``;
* ``codec`` -- MessagePack payloads as the Rust guest library writes them;
* ``cli`` -- the ``lunatic`` command.

The ABI is ``../shared/spec/lunatic-0.6-abi.md``'s; where it left a choice,
the module implementing it says what was decided.
"""

from lunatic_api.environment import Config, Environment, LunaticModule
from lunatic_api.messages import DataMessage, SignalMessage
from lunatic_api.native import NativeProcess
from lunatic_api.process import TIMEOUT, Ending, Outcome, Process, ProcessKilled
from lunatic_api.runtime import Runtime, SpawnError

__all__ = [
    "Runtime", "Process", "Outcome", "Ending", "ProcessKilled", "Config", "Environment",
    "LunaticModule", "NativeProcess", "DataMessage", "SignalMessage", "SpawnError", "TIMEOUT",
]
