"""``python -m lunatic_api`` and the ``lunatic`` console script: see ``lunatic_api.cli``."""

from __future__ import annotations

import sys

__all__ = ["main"]


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


if __name__ == "__main__":
    sys.exit(main())
