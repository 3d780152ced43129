"""The deployment's defaults keep what they expose small: consoles on loopback, a user per service, limits everywhere.

Parsed from the files alone (no engine or cluster): compose.yml, the MinIO policies and init
script, the Mongo users script, the Caddyfile and the Kubernetes manifests.
"""

from __future__ import annotations

import ipaddress
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

QUERN = ("gateway", "scheduler", "runner", "results")
OWN_USERS = ("gateway", "runner", "results")  # the scheduler, the gateway's own when apart, has the gateway's
CONSOLES = {15672, 9001}  # RabbitMQ's management UI, MinIO's console
NEVER_PUBLISHED = {5672, 27017}  # the broker and the database answer the services alone
ROOT_SECRETS = {"MINIO_ROOT_PASSWORD", "MONGO_ROOT_PASSWORD"}
ROOT_USERS = {"minio", "minio-bucket", "mongo", "mongo-users"}  # the only services that may hold a root secret
BUCKET_ARN = "arn:aws:s3:::quern"
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


@pytest.fixture(scope="module")
def deploy(project: Path) -> Path:
    return project / "deploy"


@pytest.fixture(scope="module")
def services(deploy: Path) -> dict[str, Any]:
    found: dict[str, Any] = yaml.safe_load((deploy / "compose.yml").read_text())["services"]
    return found


def variables(text: str) -> set[str]:
    """The environment variables a compose value interpolates."""
    return set(re.findall(r"\$\{([A-Z0-9_]+)", text))


def published(port: str) -> tuple[str, int, int]:
    """(host address, host port, container port) of a short-syntax port; the address is 0.0.0.0 when left out."""
    *host, target = port.split(":")
    address = host[0] if len(host) == 2 else "0.0.0.0"
    return address, int(host[-1]) if host else int(target), int(target)


def credentials(service: dict[str, Any]) -> tuple[str, str, str, str]:
    """(S3 access key, the variable holding its secret, Mongo user, the variable holding its password)."""
    env = service["environment"]
    (s3_secret,) = variables(env["S3_SECRET_ACCESS_KEY"])
    url = urlsplit(re.sub(r"\$\{[^}]*\}", "PASSWORD", env["MONGO_URL"]))
    (mongo_secret,) = variables(env["MONGO_URL"])
    assert url.username is not None and url.query == "authSource=quern", env["MONGO_URL"]
    return env["S3_ACCESS_KEY_ID"], s3_secret, url.username, mongo_secret


def test_no_console_is_published_beyond_the_loopback_and_no_server_port_at_all(services: dict[str, Any]) -> None:
    consoles = set()
    for name, service in services.items():
        for address, host_port, target in map(published, service.get("ports", [])):
            assert target not in NEVER_PUBLISHED, (name, target)
            if target in CONSOLES or host_port in CONSOLES:
                assert address == "127.0.0.1", (name, host_port)
                consoles.add(target)
    assert consoles == CONSOLES


def test_every_service_has_a_memory_and_a_process_limit(services: dict[str, Any]) -> None:
    for name, service in services.items():
        assert re.fullmatch(r"\d+[kmg]", str(service.get("mem_limit", ""))), name
        assert isinstance(service.get("pids_limit"), int) and 0 < service["pids_limit"] <= 4096, name


def test_each_service_reaches_mongo_and_minio_as_its_own_user_never_root(services: dict[str, Any]) -> None:
    used = {name: credentials(services[name]) for name in QUERN}
    assert used["scheduler"] == used["gateway"]
    own = [used[name] for name in OWN_USERS]
    for position in range(4):  # keys, secrets, users and passwords differ from service to service
        assert len({found[position] for found in own}) == len(OWN_USERS)
    for name, (s3_user, s3_secret, mongo_user, mongo_secret) in used.items():
        assert "root" not in s3_user and "root" not in mongo_user, name
        assert not {s3_secret, mongo_secret} & ROOT_SECRETS, name
    for name, service in services.items():
        text = json.dumps(service.get("environment", {}))
        assert name in ROOT_USERS or not variables(text) & ROOT_SECRETS, name


def test_the_init_services_create_exactly_the_users_the_services_use(deploy: Path, services: dict[str, Any]) -> None:
    used = {credentials(services[name]) for name in OWN_USERS}
    minio_init = (deploy / "minio" / "init.sh").read_text()
    (loop,) = re.findall(r"^for service in ([a-z ]+); do$", minio_init, flags=re.MULTILINE)
    mongo_init = (deploy / "mongo-users.js").read_text()
    (listed,) = re.findall(r"for \(const service of \[([^\]]*)\]\)", mongo_init)
    assert loop.split() == [name.strip(' "') for name in listed.split(",")] == list(OWN_USERS)
    assert {(f"quern-{name}", f"quern-{name}") for name in OWN_USERS} == {(key, user) for key, _, user, _ in used}
    assert {f"MINIO_{name.upper()}_PASSWORD" for name in OWN_USERS} | {"MINIO_ROOT_PASSWORD"} <= set(
        services["minio-bucket"]["environment"]
    )
    assert {f"MONGO_{name.upper()}_PASSWORD" for name in OWN_USERS} | {"MONGO_ROOT_PASSWORD"} <= set(
        services["mongo-users"]["environment"]
    )
    assert 'role: "readWrite", db: database' in mongo_init and "MONGO_DATABASE" in mongo_init
    assert services["mongo-users"]["environment"]["MONGO_DATABASE"] == "quern"
    for name in QUERN:
        assert services[name]["depends_on"]["mongo-users"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["minio-bucket"] == {"condition": "service_completed_successfully"}


def statements(deploy: Path, service: str) -> list[dict[str, Any]]:
    policy: dict[str, Any] = json.loads((deploy / "minio" / f"{service}.json").read_text())
    assert policy["Version"] == "2012-10-17"
    return list(policy["Statement"])


def allowed(deploy: Path, service: str, action: str) -> set[str]:
    """The resources ``service`` may apply ``action`` to."""
    return {
        resource
        for statement in statements(deploy, service)
        if statement["Effect"] == "Allow" and action in statement["Action"]
        for resource in statement["Resource"]
    }


def test_bucket_policies_grant_querns_bucket_alone_and_no_administration(deploy: Path) -> None:
    for service in OWN_USERS:
        for statement in statements(deploy, service):
            assert statement["Effect"] == "Allow"
            assert all(action.startswith("s3:") and "*" not in action for action in statement["Action"]), service
            assert not [a for a in statement["Action"] if re.search(r"Create|Policy|Bucket(Acl|Versioning)", a)]
            assert all(r == BUCKET_ARN or r.startswith(BUCKET_ARN + "/") for r in statement["Resource"]), service


def test_runners_and_results_write_only_under_jobs(deploy: Path) -> None:
    for service in ("runner", "results"):
        for action in ("s3:PutObject", "s3:DeleteObject"):
            assert allowed(deploy, service, action) == {f"{BUCKET_ARN}/jobs/*"}, (service, action)
    assert allowed(deploy, "runner", "s3:GetObject") == {f"{BUCKET_ARN}/{p}/*" for p in ("files", "datasets", "jobs")}
    assert allowed(deploy, "results", "s3:GetObject") == {f"{BUCKET_ARN}/jobs/*"}
    assert allowed(deploy, "gateway", "s3:PutObject") == {f"{BUCKET_ARN}/*"}


def test_the_tls_proxy_is_the_one_address_the_gateway_believes_forwarded_headers_from(
    deploy: Path, services: dict[str, Any]
) -> None:
    compose = yaml.safe_load((deploy / "compose.yml").read_text())
    proxy, gateway = services["tls"], services["gateway"]
    assert proxy["profiles"] == ["tls"] and {published(p)[2] for p in proxy["ports"]} == {80, 443}
    default = re.compile(r"\$\{[A-Z_]+:-([^}]+)\}")
    (address,) = default.findall(proxy["networks"]["edge"]["ipv4_address"])
    assert gateway["environment"]["FORWARDED_ALLOW_IPS"] == proxy["networks"]["edge"]["ipv4_address"]
    (subnet,) = default.findall(compose["networks"]["edge"]["ipam"]["config"][0]["subnet"])
    assert ipaddress.ip_address(address) in ipaddress.ip_network(subnet)
    assert set(gateway["networks"]) == {"default", "edge"}
    assert [name for name, service in services.items() if "edge" in service.get("networks", [])] == ["gateway", "tls"]
    caddyfile = (deploy / "Caddyfile").read_text()
    (port,) = re.findall(r"reverse_proxy gateway:(\d+)", caddyfile)
    assert {published(p)[2] for p in gateway["ports"]} == {int(port)}
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in proxy["volumes"]


def quantity(value: str) -> int:
    """Bytes in a Kubernetes quantity such as 20Gi."""
    number, unit = re.fullmatch(r"(\d+)([KMGT]i)", value).groups()  # type: ignore[union-attr]
    return int(number) * UNITS[unit]


def manifests(deploy: Path) -> list[dict[str, Any]]:
    files = [*deploy.glob("k8s/*.yaml"), *deploy.glob("k8s-scheduler/*.yaml")]
    return [doc for path in files for doc in yaml.safe_load_all(path.read_text()) if doc]


def pods(deploy: Path) -> dict[str, dict[str, Any]]:
    return {
        doc["metadata"]["name"]: doc["spec"]["template"]["spec"]
        for doc in manifests(deploy)
        if doc["kind"] == "Deployment"
    }


def test_every_kubernetes_empty_dir_has_a_size_limit(deploy: Path) -> None:
    found = [(name, volume) for name, pod in pods(deploy).items() for volume in pod.get("volumes", [])]
    assert found
    for name, volume in found:
        if "emptyDir" in volume:
            assert quantity(volume["emptyDir"]["sizeLimit"]) > 0, (name, volume["name"])


def test_the_gateways_scratch_holds_two_bundles_of_the_largest_size_a_dataset_may_have(deploy: Path) -> None:
    gateway = pods(deploy)["quern-gateway"]
    (container,) = gateway["containers"]
    scratch = {variable["name"]: variable["value"] for variable in container["env"]}["SCRATCH_DIR"]
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == scratch]
    (volume,) = [v for v in gateway["volumes"] if v["name"] == mount["name"]]
    (config,) = [doc for doc in manifests(deploy) if doc["kind"] == "ConfigMap"]
    assert quantity(volume["emptyDir"]["sizeLimit"]) >= 2 * int(config["data"]["DATASET_MAX_BYTES"])


def test_each_kubernetes_service_has_its_own_database_and_bucket_credentials(deploy: Path) -> None:
    def keys(folder: str, file: str) -> set[str]:
        lines = (deploy / folder / f"{file}.example").read_text().splitlines()
        return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}

    own = {"MONGO_URL", "S3_ACCESS_KEY_ID", "S3_SECRET_ACCESS_KEY"}
    assert not keys("k8s", "secrets.env") & own
    users = set()
    for name, pod in pods(deploy).items():
        service = name.removeprefix("quern-")
        (container,) = pod["containers"]
        refs = [source["secretRef"]["name"] for source in container["envFrom"] if "secretRef" in source]
        assert f"{name}-secrets" in refs, name
        folder = "k8s-scheduler" if service == "scheduler" else "k8s"
        assert own <= keys(folder, f"{service}-secrets.env"), name
        url = next(
            line
            for line in (deploy / folder / f"{service}-secrets.env.example").read_text().splitlines()
            if line.startswith("MONGO_URL=")
        )
        users.add(urlsplit(url.split("=", 1)[1]).username)
    assert users == {f"quern-{service}" for service in QUERN}
