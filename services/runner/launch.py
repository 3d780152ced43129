"""Apply an app's resource limits to this process, then become the app.

Run as ``python -m services.runner.launch LIMITS_JSON -- ARGV...``. The runner starts apps
through this small program instead of a ``preexec_fn``, which is unsafe in a threaded
process: the limits are set before the app's first instruction, and ``exec`` keeps them.
"""

from __future__ import annotations

import json
import os
import resource
import sys

_LIMITS = {
    "memory_mb": (resource.RLIMIT_AS, 2**20),
    "cpu_seconds": (resource.RLIMIT_CPU, 1),
    "file_size_mb": (resource.RLIMIT_FSIZE, 2**20),
    "open_files": (resource.RLIMIT_NOFILE, 1),
}


def main(args: list[str]) -> None:
    """Set limits, drop core dumps, exec the app; exit 127 if it cannot be started."""
    if len(args) < 3 or args[1] != "--":
        sys.exit("usage: python -m services.runner.launch LIMITS_JSON -- ARGV...")
    limits: dict[str, int | None] = json.loads(args[0])
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    for name, value in limits.items():
        if value is not None:
            which, unit = _LIMITS[name]
            resource.setrlimit(which, (value * unit, value * unit))
    argv = args[2:]
    try:
        os.execvp(argv[0], argv)
    except OSError as exc:
        print(f"quern: cannot start {argv[0]}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main(sys.argv[1:])
