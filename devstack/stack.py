"""The whole local stack on 127.0.0.1: stand-in servers plus quern's three services.

``just up`` and the end-to-end tests both build a ``Stack``; the tests give theirs free
ports, a temporary state directory and their own queue namespace, database and bucket, so a
running development stack and a test run never see each other's messages or data.
"""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

from devstack.processes import (
    PROJECT,
    SANDBOX_PACKAGES,
    Process,
    ensure_commands,
    http_ok,
    port_open,
    venv_bin,
    wait_until,
)

LOCAL_S3_KEY = "quern-local"
LOCAL_S3_SECRET = "quern-local-secret"
GATEWAY_SECRETS = frozenset({"AUTH_SECRET", "ADMIN_USERNAME", "ADMIN_PASSWORD"})


@dataclass(frozen=True)
class Ports:
    """Where each server listens."""

    s3: int = 9000
    mongo: int = 27017
    gateway: int = 8000
    rabbitmq: int = 5672


@dataclass
class Stack:
    """One local deployment: its state directory, ports and names."""

    state_dir: Path
    ports: Ports = field(default_factory=Ports)
    namespace: str = "quern"
    database: str = "quern"
    bucket: str = "quern"
    runner_threads: int = 2
    admin_username: str = "admin"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(18))
    auth_secret: str = field(default_factory=lambda: secrets.token_urlsafe(48))
    extra_env: dict[str, str] = field(default_factory=dict)
    service_env: dict[str, dict[str, str]] = field(default_factory=dict)  # service -> what it alone gets on top

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.gateway}"

    @property
    def s3_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.s3}"

    @property
    def rabbitmq_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.ports.rabbitmq}/%2F"

    def env(self) -> dict[str, str]:
        """The environment every quern service of this stack gets."""
        return {
            "QUERN_ENV": "development",
            "LOG_FORMAT": "json",
            "RABBITMQ_URL": self.rabbitmq_url,
            "QUEUE_NAMESPACE": self.namespace,
            "S3_ENDPOINT_URL": self.s3_url,
            "S3_PUBLIC_ENDPOINT_URL": self.s3_url,
            "S3_BUCKET": self.bucket,
            "S3_ACCESS_KEY_ID": LOCAL_S3_KEY,
            "S3_SECRET_ACCESS_KEY": LOCAL_S3_SECRET,
            "S3_CREATE_BUCKET": "true",
            "MONGO_URL": f"mongodb://127.0.0.1:{self.ports.mongo}",
            "MONGO_DATABASE": self.database,
            "APPS_DIR": str(PROJECT / "apps"),
            "WORK_DIR": str(self.state_dir / "work"),
            "AUTH_SECRET": self.auth_secret,
            "ADMIN_USERNAME": self.admin_username,
            "ADMIN_PASSWORD": self.admin_password,
            "GATEWAY_HOST": "127.0.0.1",
            "GATEWAY_PORT": str(self.ports.gateway),
            "RUNNER_CONCURRENCY": str(self.runner_threads),
            # Drain and grace fit in the 20 s `just down` gives each process before SIGKILL.
            "DRAIN_SECONDS": "8",
            "APP_GRACE_SECONDS": "5",
            # GA4GH TES: images built here (localhost/quern-*) and quern-tes-* buckets on this stack's S3
            "TES_IMAGES": "localhost/quern-*",
            "TES_S3_BUCKETS": "quern-tes-*",
            "TES_S3_ENDPOINT_URL": self.s3_url,
            "TES_S3_ACCESS_KEY_ID": LOCAL_S3_KEY,
            "TES_S3_SECRET_ACCESS_KEY": LOCAL_S3_SECRET,
            **self.extra_env,
        }

    def servers(self) -> list[Process]:
        """The stand-ins for S3 and MongoDB (RabbitMQ is the machine's own)."""
        return [
            Process("s3", [venv_bin("moto_server"), "-H", "127.0.0.1", "-p", str(self.ports.s3)], self.state_dir),
            Process(
                "mongo",
                [
                    venv_bin("secantusd-py"),
                    "--standalone",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.ports.mongo),
                    "--storage-path",
                    str(self.state_dir / "mongo"),
                    "--log-level",
                    "WARNING",
                ],
                self.state_dir,
            ),
        ]

    def services(self) -> list[Process]:
        """quern's own processes."""
        env = self.env()
        return [
            Process(
                name, [sys.executable, "-m", f"services.{name}"], self.state_dir, env | self.service_env.get(name, {})
            )
            for name in ("gateway", "runner", "results")
        ]

    def scheduler(self) -> Process:
        """The scheduler as its own process, for a stack whose gateway has RUN_SCHEDULER=false (not started here).

        It gets no gateway secret: the scheduler serves no HTTP and must start without them.
        """
        env = {name: value for name, value in self.env().items() if name not in GATEWAY_SECRETS}
        return Process("scheduler", [sys.executable, "-m", "services.gateway.scheduling"], self.state_dir, env)

    def processes(self) -> list[Process]:
        """Everything this stack starts, in start order."""
        return [*self.servers(), *self.services()]

    def start(self) -> list[str]:
        """Start whatever is not running yet and wait until each answers; returns what was started."""
        return self.start_servers() + self.start_services()

    def start_servers(self) -> list[str]:
        """Start the S3 and Mongo stand-ins unless running; wait until they answer."""
        started = []
        s3, mongo = self.servers()
        for process, port in ((s3, self.ports.s3), (mongo, self.ports.mongo)):
            if not process.running() and port_open("127.0.0.1", port):
                raise RuntimeError(f"port {port} is taken by a process this stack did not start ({process.name})")
            if process.start():
                started.append(process.name)
        wait_until(lambda: http_ok(self.s3_url), "moto_server (S3)", timeout=60, process=s3)
        wait_until(lambda: port_open("127.0.0.1", self.ports.mongo), "secantusd-py (Mongo)", timeout=60, process=mongo)
        return started

    def start_services(self) -> list[str]:
        """Start gateway, runner and results unless running; wait until each is ready."""
        started = []
        gateway, runner, results = self.services()
        if self.env().get("LOCAL_SANDBOX", "bwrap") == "bwrap":
            ensure_commands(SANDBOX_PACKAGES)  # else the runner refuses to start
        if not gateway.running() and port_open("127.0.0.1", self.ports.gateway):
            raise RuntimeError(f"port {self.ports.gateway} is taken by a process this stack did not start (gateway)")
        for process in (gateway, runner, results):
            if process.start():
                started.append(process.name)
        wait_until(lambda: http_ok(f"{self.gateway_url}/readyz"), "the gateway's /readyz", timeout=60, process=gateway)
        wait_until(lambda: runner.logged("worker_started"), "the runner worker", timeout=60, process=runner)
        wait_until(lambda: results.logged("worker_started"), "the results worker", timeout=60, process=results)
        return started

    def stop(self) -> list[str]:
        """Stop what this stack started, services first; returns what was stopped."""
        return [p.name for p in reversed(self.processes()) if p.stop()]
