"""``python -m lunatic_api`` and the ``lunatic`` console script: see ``lunatic_api.cli``."""

from __future__ import annotations

import os
import sys

__all__ = ["main", "console"]


def main(argv: list[str] | None = None) -> int:
    """Run ``lunatic`` with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    The runtime (and the engines) are imported here, so that Ctrl-C while they
    load also ends quietly with status 130 rather than a traceback.
    """
    try:
        from lunatic_api import cli
    except KeyboardInterrupt:
        return 130
    return cli.main(argv)


def console() -> None:
    """The console script: run ``main`` and exit at once with its status.

    Lunatic abandons the processes still running when the main process
    ends; exiting with ``os._exit`` (after flushing) ends their threads
    without interpreter teardown running under them.
    """
    status = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


if __name__ == "__main__":
    console()
