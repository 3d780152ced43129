"""The tests' stacks: their settings, their APPS_DIR, and how they are torn down.

The settings are named here for the tests that rely on them; tests/conftest.py applies them.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pika

from devstack.processes import Process, free_port
from devstack.stack import Stack
from shared.tasks import DELIVER_WEBHOOK, PACKAGE_RESULTS, RUN_JOB

PROJECT = Path(__file__).resolve().parents[2]
MAX_UPLOAD_BYTES = 200 * 2**20  # room for the CLI's 200 MB upload
SINGLE_PUT_MAX_BYTES = 8 * 2**20  # presigned uploads above this are multipart, in 5 MiB parts
# Small dataset limits, so the hostile-bundle tests stay quick.
DATASET_MAX_MEMBERS = 20
DATASET_MAX_BYTES = 8 * 2**20
DATASET_MAX_RATIO = 50
DATASET_RATIO_AFTER_BYTES = 2**20
RETENTION_SWEEP_SECONDS = 1  # the results workers' sweep, so retention tests see expiry within seconds
WEBHOOK_ALLOWED_NETWORKS = "127.0.0.0/8"
WEBHOOK_TIMEOUT_SECONDS = 1.0
# The test-only apps (tests/fixture_apps), served beside the shipped ones.
FIXTURE_APPS = Path(__file__).resolve().parents[1] / "fixture_apps"


def apps_dir(root: Path) -> Path:
    """A directory holding the shipped apps and the test-only ones, side by side as APPS_DIR wants them."""
    root.mkdir()
    for app in [*(PROJECT / "apps").iterdir(), *FIXTURE_APPS.iterdir()]:
        if (app / "app.json").is_file():
            (root / app.name).symlink_to(app)
    return root


def own_stack(servers: Stack, state_dir: Path, name: str, **extra_env: str) -> Stack:
    """A stack of a module's own on the session's servers: its gateway port and database, ``extra_env`` on top.

    Its queue namespace is the session's plus ``-own``, whose queues the session deletes at the end.
    """
    return replace(
        servers,
        state_dir=state_dir,
        ports=replace(servers.ports, gateway=free_port()),
        namespace=f"{servers.namespace}-own",
        database=f"{servers.database}_{name}_{uuid.uuid4().hex[:6]}",
        extra_env={**servers.extra_env, **extra_env},
    )


def stop_all(processes: list[Process]) -> None:
    """Stop the processes side by side, so their grace periods overlap rather than add up."""
    with ThreadPoolExecutor(max(1, len(processes))) as pool:
        list(pool.map(Process.stop, processes))


@contextmanager
def services_running(stack: Stack, *, leaving: Path | None = None) -> Iterator[Stack]:
    """``stack``'s gateway, runner and results, started; stopped on exit, and then ``leaving`` removed."""
    try:
        stack.start_services()
        yield stack
    finally:
        stop_all(stack.services())
        if leaving is not None:
            shutil.rmtree(leaving, ignore_errors=True)


def delete_queues(rabbitmq_url: str, namespace: str) -> None:
    """Remove every queue quern's services declare in ``namespace`` (with their delay and dead-letter queues)."""
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq_url))
    try:
        for task in (RUN_JOB, PACKAGE_RESULTS, DELIVER_WEBHOOK):
            base = task.queue_name(namespace)
            for name in (base, f"{base}.DQ", f"{base}.XQ"):
                channel = connection.channel()
                channel.queue_delete(name)
                channel.close()
    finally:
        connection.close()


def log_tails(stack: Stack, *, lines: int = 40, width: int = 400) -> str:
    """The last lines each quern process of ``stack`` logged, to read beside an end-to-end failure."""
    parts = []
    for process in stack.services():
        try:
            tail = process.logfile.read_text(errors="replace").splitlines()[-lines:]
        except FileNotFoundError:
            tail = ["(no log)"]
        parts.append(f"--- {process.logfile}\n" + "\n".join(line[:width] for line in tail))
    return "\n".join(parts)
