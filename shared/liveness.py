"""The liveness file: a process whose loop goes round touches it, and an exec livenessProbe checks its age.

The workers touch it at every heartbeat, a scheduler process at every dispatch pass, whether or
not their backends answered: a stale file says the event loop is stuck, which a restart cures,
not that Mongo is down, which it does not.
"""

from __future__ import annotations

from pathlib import Path

import structlog

log = structlog.get_logger()


def touch(path: Path | None) -> None:
    """Set the file's modification time to now (``LIVENESS_FILE``; None: there is none).

    Called on the event loop: one utime on a local file, cheaper than a hop to a thread, and a
    thread pool busy with uploads must not make a live process look dead.
    """
    if path is None:
        return
    try:
        path.touch()
    except OSError as exc:
        log.warning("liveness_file_not_written", path=str(path), error=repr(exc))
