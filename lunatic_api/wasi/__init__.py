"""WASI preview1 (``wasi_snapshot_preview1``) as a funk host API.

``Wasi`` is the host object (all 46 functions); ``WasiExit`` is what
``proc_exit`` raises.  The pieces:

* ``abi`` -- enums, flags, rights and the C-layout records of preview1;
* ``errno`` -- the ``Errno`` enum and the host ``OSError`` -> errno mapping;
* ``sandbox`` -- race-free path resolution below a preopened directory;
* ``descriptors`` -- the guest's file-descriptor table;
* ``fd_api``, ``path_api``, ``poll_api``, ``socket_api``, ``process_api`` --
  the functions, one mixin per group; ``host`` combines them.
"""

from lunatic_api.wasi.errno import Errno
from lunatic_api.wasi.host import INHERIT, Wasi
from lunatic_api.wasi.process_api import WasiExit

__all__ = ["Wasi", "WasiExit", "Errno", "INHERIT"]
