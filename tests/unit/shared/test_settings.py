from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.settings import ConfigError, GatewaySettings, RunnerSettings, load

GOOD = {
    "RABBITMQ_URL": "amqp://user:pw@rabbit:5672/%2F",
    "S3_BUCKET": "quern-data",
    "MONGO_URL": "mongodb://mongo:27017",
    "AUTH_SECRET": "a-test-secret-that-is-long-enough-to-sign",
}


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, project: Path) -> pytest.MonkeyPatch:
    for name, value in GOOD.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("APPS_DIR", str(project / "apps"))
    return monkeypatch


def test_settings_come_from_the_environment(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("GATEWAY_PORT", "8123")
    settings = load(GatewaySettings)
    assert settings.gateway_port == 8123
    assert settings.s3_bucket == "quern-data"
    assert settings.mongo_url.get_secret_value() == "mongodb://mongo:27017"


def test_missing_variable_is_named(environment: pytest.MonkeyPatch) -> None:
    environment.delenv("MONGO_URL")
    with pytest.raises(ConfigError, match="MONGO_URL: Field required"):
        load(GatewaySettings)


def test_every_bad_variable_is_named_at_once(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("RABBITMQ_URL", "http://rabbit")
    environment.setenv("S3_BUCKET", "Not_A_Bucket")
    environment.setenv("RUNNER_CONCURRENCY", "0")
    with pytest.raises(ConfigError) as caught:
        load(RunnerSettings)
    message = str(caught.value)
    assert "RABBITMQ_URL" in message and "S3_BUCKET" in message and "RUNNER_CONCURRENCY" in message


def test_production_refuses_default_secrets(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("QUERN_ENV", "production")
    environment.setenv("S3_SECRET_ACCESS_KEY", "minioadmin")
    with pytest.raises(ConfigError, match="well-known sample"):
        load(GatewaySettings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AUTH_SECRET", "CHANGE-ME-to-32-or-more-random-characters"),  # deploy/k8s/gateway-secrets.env.example
        ("ADMIN_PASSWORD", "CHANGE-ME-to-12-or-more-characters"),
        ("ADMIN_PASSWORD", "a long admin password"),  # deploy/README.md
        ("S3_SECRET_ACCESS_KEY", "CHANGE-ME"),  # deploy/k8s/secrets.env.example
        ("S3_SECRET_ACCESS_KEY", "quern-local-secret"),  # the dev stack's
        ("TES_S3_SECRET_ACCESS_KEY", "minioadmin"),
        ("MONGO_URL", "mongodb+srv://quern:CHANGE-ME@cluster0.example.mongodb.net/?retryWrites=true&w=majority"),
        ("MONGO_URL", "mongodb://user:pass@a,b,c/?replicaSet=rs0"),  # deploy/README.md
        ("RABBITMQ_URL", "amqps://quern:CHANGE-ME@b-xxxx.mq.us-east-1.amazonaws.com:5671/%2F"),
        ("RABBITMQ_URL", "amqp://rabbit-a:5672/%2F;amqp://guest:guest@rabbit-b:5672/%2F"),
        ("AUTH_SECRET", "please-changeme-before-going-live-okay"),
    ],
)
def test_placeholder_secrets_refuse_to_start_outside_development(
    environment: pytest.MonkeyPatch, name: str, value: str
) -> None:
    environment.setenv("ADMIN_USERNAME", "root")
    environment.setenv("ADMIN_PASSWORD", "a-real-and-long-admin-password")
    environment.setenv(name, value)
    load(GatewaySettings)  # development: samples are fine on a laptop
    environment.setenv("QUERN_ENV", "production")
    with pytest.raises(ConfigError, match=f"{name}: a placeholder or well-known sample secret"):
        load(GatewaySettings)


def test_real_secrets_start_outside_development(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("QUERN_ENV", "production")
    environment.setenv("ADMIN_USERNAME", "root")
    environment.setenv("ADMIN_PASSWORD", "a-real-and-long-admin-password")
    environment.setenv("S3_SECRET_ACCESS_KEY", "9f8e7d6c5b4a39281706f5e4d3c2b1a0")
    assert load(GatewaySettings).quern_env == "production"


def test_stream_rechecks_are_at_most_ten_seconds_apart(environment: pytest.MonkeyPatch) -> None:
    assert load(GatewaySettings).stream_recheck_seconds <= 10
    environment.setenv("STREAM_RECHECK_SECONDS", "11")
    with pytest.raises(ConfigError, match="STREAM_RECHECK_SECONDS"):
        load(GatewaySettings)


def test_a_short_auth_secret_is_refused(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("AUTH_SECRET", "short")
    with pytest.raises(ConfigError, match="AUTH_SECRET"):
        load(GatewaySettings)


def test_admin_username_needs_a_password(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("ADMIN_USERNAME", "root")
    with pytest.raises(ConfigError, match="ADMIN_USERNAME and ADMIN_PASSWORD go together"):
        load(GatewaySettings)


def test_settings_are_frozen(environment: pytest.MonkeyPatch) -> None:
    settings = load(GatewaySettings)
    with pytest.raises(ValueError, match="frozen"):
        settings.gateway_port = 1


def test_presigned_links_use_the_public_endpoint(environment: pytest.MonkeyPatch) -> None:
    environment.setenv("S3_ENDPOINT_URL", "http://minio.internal:9000")
    environment.setenv("S3_PUBLIC_ENDPOINT_URL", "https://files.example.org")
    assert load(GatewaySettings).presign_endpoint_url == "https://files.example.org"


@pytest.mark.parametrize("service", ["gateway", "runner", "results"])
def test_service_without_configuration_exits_naming_the_variables(service: str, project: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"services.{service}"],
        cwd=project,
        env={"PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "RABBITMQ_URL: Field required" in result.stderr
    assert "MONGO_URL: Field required" in result.stderr
