"""WASI preview1 (``wasi_snapshot_preview1``) support for lunatic_api.

Building blocks for the WASI host object:

* ``errno`` -- the preview1 ``errno`` enum and the host ``OSError`` -> WASI
  errno mapping.
* ``sandbox`` -- race-free, capability-style path resolution below a
  directory file descriptor (a preopen), used by every ``path_*`` function.
"""
