"""Configuration: one frozen, typed settings object per process, read from the environment once.

Each field's environment variable is its name in upper case (``mongo_url`` <- ``MONGO_URL``).
``load(cls)`` is called once in each service's ``__main__`` and the result is passed down;
nothing else reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.models.tasks import TaskPolicy

# Credentials that ship in tutorials, images and our own docs and examples (deploy/README.md, deploy/k8s/*.example,
# the dev stack); outside development quern refuses to start with them, or with anything saying CHANGE-ME.
_SAMPLE_SECRETS = frozenset(
    {
        "minioadmin",
        "changeme",
        "password",
        "secret",
        "guest",
        "pass",
        "admin",
        "quern-local-secret",
        "a long admin password",
    }
)
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
USERNAME = r"^[a-z][a-z0-9._-]{1,63}$"
DRIVERS = frozenset({"local", "docker"})


def is_placeholder(secret: str | None) -> bool:
    """Whether a secret is a well-known sample or a CHANGE-ME placeholder (in any case or spelling)."""
    if secret is None:
        return False
    folded = secret.strip().lower()
    return folded in _SAMPLE_SECRETS or "changeme" in re.sub(r"[^a-z0-9]", "", folded)


def _url_password(url: str) -> str | None:
    """The password in a URL (the first of several, ';'-separated, that has one)."""
    for part in url.split(";"):
        password = urlsplit(part.strip()).password
        if password is not None:
            return password
    return None


def _require_scheme(url: str, schemes: tuple[str, ...], name: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"{name} must be a {' or '.join(schemes)} URL with a host")
    return url


class Settings(BaseSettings):
    """What every quern process needs: where the broker, the object store and the database are."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", case_sensitive=False)

    quern_env: Literal["development", "production"] = "development"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["auto", "json", "console"] = "auto"
    # Benchmarks only: count this process's Mongo commands and S3 requests into files here (shared/call_counts.py).
    quern_count_calls: Path | None = None

    rabbitmq_url: SecretStr
    queue_namespace: str = "quern"

    s3_endpoint_url: str | None = None
    s3_public_endpoint_url: str | None = None
    s3_bucket: str
    s3_region: str = "us-east-1"
    s3_access_key_id: str | None = None
    s3_secret_access_key: SecretStr | None = None
    s3_create_bucket: bool = False
    s3_part_size_mb: int = Field(default=8, ge=5, le=512)

    mongo_url: SecretStr
    mongo_database: str = Field(default="quern", pattern=r"^[A-Za-z0-9_-]{1,63}$")
    mongo_timeout_seconds: float = Field(default=5.0, gt=0, le=120)

    apps_dir: Path = Path("apps")
    worker_heartbeat_seconds: float = Field(default=10.0, gt=0, le=300)
    # A worker (runner, results) touches this file at every heartbeat; an exec livenessProbe checks its age.
    liveness_file: Path | None = None
    # Prometheus: a listener of its own serving /metrics on this port (0: none; the gateway serves /metrics on
    # its API port too unless GATEWAY_METRICS=false), bound to METRICS_HOST.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"
    # A runner renews the lease of each job it runs three times per lease; one not renewed for a whole lease is
    # recovered by the reaper. The runner stops an app whose lease it could not renew for two thirds of it.
    job_lease_seconds: float = Field(default=30.0, ge=3, le=3600)

    # Webhooks: the networks outbound requests may reach although they are not public (the SSRF guard).
    webhook_allowed_networks: str = ""

    # GA4GH TES tasks: the images they may run (comma-separated glob patterns; none: every task is refused),
    # those of them whose containers get a network, and the buckets s3:// inputs and outputs may name,
    # reached with the TES_S3_* credentials (the gateway checks at submission, the runner again at run).
    tes_images: str = ""
    tes_network_images: str = ""
    tes_s3_buckets: str = ""
    tes_s3_endpoint_url: str | None = None
    tes_s3_region: str = "us-east-1"
    tes_s3_access_key_id: str | None = None
    tes_s3_secret_access_key: SecretStr | None = None

    @field_validator("rabbitmq_url")
    @classmethod
    def _amqp(cls, value: SecretStr) -> SecretStr:
        _require_scheme(value.get_secret_value(), ("amqp", "amqps"), "RABBITMQ_URL")
        return value

    @field_validator("mongo_url")
    @classmethod
    def _mongo(cls, value: SecretStr) -> SecretStr:
        _require_scheme(value.get_secret_value(), ("mongodb", "mongodb+srv"), "MONGO_URL")
        return value

    @field_validator("s3_endpoint_url", "s3_public_endpoint_url", "tes_s3_endpoint_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        return None if value is None else _require_scheme(value, ("http", "https"), "S3 endpoint")

    @field_validator("s3_bucket")
    @classmethod
    def _bucket(cls, value: str) -> str:
        if not _BUCKET.match(value):
            raise ValueError("not a valid S3 bucket name (3-63 lowercase letters, digits, dots, hyphens)")
        return value

    @field_validator("queue_namespace")
    @classmethod
    def _namespace(cls, value: str) -> str:
        if not _NAMESPACE.match(value):
            raise ValueError("letters, digits, '_' and '-', starting with a letter or '_'")
        return value

    @field_validator("apps_dir")
    @classmethod
    def _apps_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value.resolve()

    @field_validator("webhook_allowed_networks")
    @classmethod
    def _networks(cls, value: str) -> str:
        for cidr in value.split(","):
            if cidr.strip():
                try:
                    ipaddress.ip_network(cidr.strip())
                except ValueError as exc:
                    raise ValueError(f"{cidr.strip()!r} is not a network (CIDR, e.g. 127.0.0.0/8)") from exc
        return value

    def allowed_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """The private networks webhooks may reach (WEBHOOK_ALLOWED_NETWORKS)."""
        return tuple(ipaddress.ip_network(c.strip()) for c in self.webhook_allowed_networks.split(",") if c.strip())

    def task_policy(self) -> TaskPolicy:
        """What TES tasks may use (TES_IMAGES, TES_NETWORK_IMAGES, TES_S3_BUCKETS)."""

        def patterns(value: str) -> tuple[str, ...]:
            return tuple(p.strip() for p in value.split(",") if p.strip())

        return TaskPolicy(
            images=patterns(self.tes_images),
            network_images=patterns(self.tes_network_images),
            s3_buckets=patterns(self.tes_s3_buckets),
        )

    def named_secrets(self) -> dict[str, str | None]:
        """The secrets this process is configured with, by variable (checked for placeholders)."""

        def value(secret: SecretStr | None) -> str | None:
            return None if secret is None else secret.get_secret_value()

        return {
            "RABBITMQ_URL": _url_password(self.rabbitmq_url.get_secret_value()),
            "MONGO_URL": _url_password(self.mongo_url.get_secret_value()),
            "S3_SECRET_ACCESS_KEY": value(self.s3_secret_access_key),
            "TES_S3_SECRET_ACCESS_KEY": value(self.tes_s3_secret_access_key),
        }

    @model_validator(mode="after")
    def _no_placeholder_secrets_outside_development(self) -> Settings:
        if self.quern_env != "development":
            named = [name for name, secret in self.named_secrets().items() if is_placeholder(secret)]
            if named:
                raise ValueError(
                    f"{', '.join(named)}: a placeholder or well-known sample secret; "
                    f"refusing to start with QUERN_ENV={self.quern_env} (set real secrets)"
                )
        return self

    @property
    def presign_endpoint_url(self) -> str | None:
        """The S3 endpoint that clients outside our network reach (it differs behind NAT or in Kubernetes)."""
        return self.s3_public_endpoint_url or self.s3_endpoint_url


class SchedulerSettings(Settings):
    """The scheduler: dispatch passes and sweeps, inside each gateway or as its own process."""

    dispatch_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    dispatch_ahead: int = Field(default=2, ge=0, le=10_000)
    user_max_running: int = Field(default=0, ge=0)
    max_attempts: int = Field(default=3, ge=1, le=100)


class GatewaySettings(SchedulerSettings):
    """The HTTP API process (running the scheduler too unless RUN_SCHEDULER=false)."""

    auth_secret: SecretStr = Field(min_length=32)
    token_ttl_seconds: int = Field(default=12 * 3600, ge=60, le=30 * 24 * 3600)
    ui_session_ttl_seconds: int = Field(default=8 * 3600, ge=60, le=30 * 24 * 3600)
    # How stale a gateway's view of a user may be (a change made through another replica: disabled, password,
    # "log out everywhere"); API keys are read on every request. And how often event streams check again.
    auth_cache_seconds: float = Field(default=2.0, ge=0, le=5)
    stream_recheck_seconds: float = Field(default=5.0, gt=0, le=10)
    # Failed logins: a bucket per client address, and one per account and address (see domain/login_limits.py).
    login_address_burst: int = Field(default=30, ge=1, le=100_000)
    login_address_refill_seconds: float = Field(default=2.0, gt=0, le=3600)
    login_account_burst: int = Field(default=5, ge=1, le=10_000)
    login_account_refill_seconds: float = Field(default=60.0, gt=0, le=24 * 3600)
    login_limit_keys: int = Field(default=100_000, ge=100, le=10_000_000)
    password_hash_threads: int = Field(default=2, ge=1, le=64)
    password_hash_queue: int = Field(default=16, ge=0, le=10_000)
    admin_username: str | None = Field(default=None, pattern=USERNAME)
    admin_password: SecretStr | None = None
    gateway_host: str = "127.0.0.1"
    gateway_port: int = Field(default=8000, ge=1, le=65535)
    # Addresses (or CIDR networks, comma-separated, or *) whose X-Forwarded-For/-Proto are believed: the TLS proxy's.
    forwarded_allow_ips: str = Field(default="127.0.0.1", min_length=1)
    max_upload_bytes: int = Field(default=64 * 2**30, ge=1)
    presign_expiry_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    upload_expiry_seconds: int = Field(default=24 * 3600, ge=60, le=7 * 24 * 3600)
    upload_single_put_max_bytes: int = Field(default=5 * 2**30, ge=1, le=5 * 2**30)
    scratch_dir: Path = Path(tempfile.gettempdir())
    dataset_max_members: int = Field(default=10_000, ge=1, le=1_000_000)
    dataset_max_bytes: int = Field(default=32 * 2**30, ge=1)
    dataset_max_ratio: float = Field(default=200.0, ge=1)
    dataset_ratio_after_bytes: int = Field(default=64 * 2**20, ge=0)
    event_retention_days: int = Field(default=7, ge=1, le=365)
    run_scheduler: bool = True
    results_retention_days: int = Field(default=0, ge=0, le=36500)
    max_retention_days: int = Field(default=0, ge=0, le=36500)
    tes_timeout_seconds: int = Field(default=24 * 3600, ge=1, le=7 * 24 * 3600)
    # /metrics on the API port, unauthenticated (false: only on METRICS_PORT, if set); the job and queue
    # gauges there are counted at most once per METRICS_REFRESH_SECONDS, however often Prometheus scrapes.
    gateway_metrics: bool = True
    metrics_refresh_seconds: float = Field(default=15.0, ge=0, le=3600)
    # Per-user quotas, the deployment's defaults (an admin may override them per user; 0: no quota).
    quota_queued_jobs: int = Field(default=100_000, ge=0)
    quota_stored_bytes: int = Field(default=2**40, ge=0)
    quota_pending_uploads: int = Field(default=100, ge=0)
    quota_event_streams: int = Field(default=20, ge=0)
    quota_batch_jobs: int = Field(default=10_000, ge=0, le=10_000)

    @field_validator("scratch_dir")
    @classmethod
    def _scratch_dir(cls, value: Path) -> Path:
        if not value.is_dir():
            raise ValueError(f"{value} is not a directory")
        return value.resolve()

    @model_validator(mode="after")
    def _admin_pair(self) -> GatewaySettings:
        if (self.admin_username is None) != (self.admin_password is None):
            raise ValueError("ADMIN_USERNAME and ADMIN_PASSWORD go together")
        if self.admin_password is not None and len(self.admin_password.get_secret_value()) < 12:
            raise ValueError("ADMIN_PASSWORD must be at least 12 characters")
        return self

    def named_secrets(self) -> dict[str, str | None]:
        """The shared secrets, and the gateway's own: AUTH_SECRET and ADMIN_PASSWORD."""
        admin = None if self.admin_password is None else self.admin_password.get_secret_value()
        return {**super().named_secrets(), "AUTH_SECRET": self.auth_secret.get_secret_value(), "ADMIN_PASSWORD": admin}


class RunnerSettings(Settings):
    """A worker that runs apps."""

    work_dir: Path = Path(tempfile.gettempdir()) / "quern-work"
    runner_concurrency: int = Field(default=2, ge=1, le=256)
    keep_failed_dirs: bool = False
    max_output_bytes: int = Field(default=16 * 2**30, ge=1)
    infra_retries: int = Field(default=6, ge=0, le=100)
    infra_backoff_seconds: float = Field(default=1.0, gt=0, le=300)
    runner_id: str = Field(default_factory=lambda: f"{os.uname().nodename}-{os.getpid()}")
    runner_drivers: str = "local"
    docker_command: str = "docker"
    docker_host: str | None = None
    run_as_user: str | None = None
    local_sandbox: Literal["bwrap", "none"] = "bwrap"
    max_job_disk_mb: int = Field(default=20 * 1024, ge=1)
    webhook_progress_seconds: float = Field(default=30.0, ge=0, le=24 * 3600)
    # How long a run's RUNNING event may wait to go in one insert with its end's (0: written at the claim).
    # Well under the event streams' settled lag of a second (services/gateway/domain/events.py).
    runner_start_event_seconds: float = Field(default=0.25, ge=0, le=0.5)
    # Shutdown: running jobs go on for the drain, then each app gets SIGTERM and the grace before SIGKILL;
    # what is still running is handed back to the queue (a preemption, not an attempt).
    drain_seconds: float = Field(default=60.0, ge=0, le=7 * 24 * 3600)
    app_grace_seconds: float = Field(default=10.0, ge=0, le=3600)
    max_output_files: int = Field(default=10_000, ge=1, le=50_000)
    # Runs whose outputs and logs total at most this are archived by the runner itself (0: always by results)
    runner_archive_max_mb: int = Field(default=4, ge=0, le=1024)
    tes_http_input_max_mb: int = Field(default=1024, ge=1)
    # The --network of TES containers whose image is in TES_NETWORK_IMAGES (empty: the engine's default network)
    tes_network: str = Field(default="", pattern=r"^([a-z][a-z0-9_.-]{0,62}(:[A-Za-z0-9_.,=:-]{1,200})?)?$")

    @field_validator("runner_drivers")
    @classmethod
    def _drivers(cls, value: str) -> str:
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = sorted(set(names) - DRIVERS)
        if not names or unknown:
            raise ValueError(f"must list drivers among {', '.join(sorted(DRIVERS))} (unknown: {', '.join(unknown)})")
        return ",".join(sorted(set(names)))

    @field_validator("work_dir")
    @classmethod
    def _work_dir(cls, value: Path) -> Path:
        # The docker driver names these paths in --mount options, where ',' separates fields.
        if "," in str(value):
            raise ValueError("must not contain ','")
        return value.absolute()

    def drivers(self) -> frozenset[str]:
        """The execution drivers this runner offers."""
        return frozenset(self.runner_drivers.split(","))


class ResultsSettings(Settings):
    """A worker that packages results."""

    results_concurrency: int = Field(default=2, ge=1, le=64)
    retention_sweep_seconds: float = Field(default=300, gt=0, le=24 * 3600)
    webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    webhook_max_attempts: int = Field(default=8, ge=1, le=50)
    webhook_backoff_seconds: float = Field(default=10.0, gt=0, le=3600)


S = TypeVar("S", bound=Settings)


class ConfigError(SystemExit):
    """The environment does not describe a usable configuration."""


def load(cls: type[S]) -> S:
    """Build the settings from the environment, or exit naming every variable that is wrong."""
    try:
        return cls()  # type: ignore[call-arg]  # fields come from the environment
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or "configuration"
            lines.append(f"  {name}: {error['msg']}")
        raise ConfigError("configuration error:\n" + "\n".join(lines)) from None
