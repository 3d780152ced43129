"""Call counts: how many Mongo commands (by name) and S3 requests (by operation) this process made.

Off unless ``QUERN_COUNT_CALLS`` (``settings.quern_count_calls``) names a directory: then every
Mongo client gets a PyMongo ``CommandListener`` (counting ``command:collection``), the object
storage's S3 client a botocore ``request-created`` hook (counting operations, retries included),
and a daemon thread writes the counts as ``<process>-<pid>.json`` in that directory twice a
second (and at exit). ``bench.call_counts`` reads them. Counting only adds to a dict: no call is
changed, delayed or retried because of it. With the setting unset nothing is registered at all.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from pymongo import monitoring

FLUSH_SECONDS = 0.5
_lock = threading.Lock()
_tallies: dict[Path, Tally] = {}  # one per directory, in this process


def process_name() -> str:
    """This process as ``python -m`` named it (``services.runner``), else its script's name."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name:
        return str(spec.name).removesuffix(".__main__")
    return Path(sys.argv[0]).stem or "python"


class Tally:
    """The counts of one process, written to ``<directory>/<process>-<pid>.json`` as they change."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / f"{process_name()}-{os.getpid()}.json"
        self._counts: dict[str, Counter[str]] = {"mongo": Counter(), "s3": Counter()}
        self._lock = threading.Lock()
        self._changed = threading.Event()
        directory.mkdir(parents=True, exist_ok=True)
        threading.Thread(target=self._flush_forever, name="call-counts", daemon=True).start()
        atexit.register(self.flush)

    def count(self, kind: str, name: str) -> None:
        """One more call of ``name`` (a Mongo command, an S3 operation)."""
        with self._lock:
            self._counts[kind][name] += 1
        self._changed.set()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """The counts so far, by kind and name."""
        with self._lock:
            return {kind: dict(counter) for kind, counter in self._counts.items()}

    def flush(self) -> None:
        """Write the counts now (atomically: a reader never sees half a file)."""
        body = {"process": process_name(), "pid": os.getpid(), **self.snapshot()}
        partial = self.path.with_suffix(".tmp")
        partial.write_text(json.dumps(body))
        os.replace(partial, self.path)

    def _flush_forever(self) -> None:
        while True:
            self._changed.wait()
            self._changed.clear()
            self.flush()
            time.sleep(FLUSH_SECONDS)


def tally(directory: Path) -> Tally:
    """This process's tally for ``directory``, started on first use."""
    with _lock:
        if directory not in _tallies:
            _tallies[directory] = Tally(directory)
        return _tallies[directory]


class MongoCommands(monitoring.CommandListener):
    """Counts each command a client sends, by name and collection (``find:jobs``, ``insert:events``, ``hello``)."""

    def __init__(self, counts: Tally) -> None:
        self.counts = counts

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        target = event.command.get(name)  # the collection, for the commands that have one
        self.counts.count("mongo", f"{name}:{target}" if isinstance(target, str) else name)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def mongo_listeners(directory: Path | None) -> list[monitoring.CommandListener]:
    """The listeners a Mongo client gets: none unless counting into ``directory``."""
    return [] if directory is None else [MongoCommands(tally(directory))]


def count_s3_requests(client: Any, directory: Path | None) -> None:
    """Count every HTTP request ``client`` sends (retries too), by operation; nothing unless counting."""
    if directory is None:
        return
    counts = tally(directory)

    def created(operation_name: str = "unknown", **_: Any) -> None:
        counts.count("s3", operation_name)

    client.meta.events.register("request-created.s3", created)
