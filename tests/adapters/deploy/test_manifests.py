"""The deployment files: every manifest parses and is complete, and every setting they name is one the code reads.

A structural check (no engine or cluster here): a renamed setting, a probe on the wrong path, a
service without resources or a secret given a default fails these tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import GatewaySettings, ResultsSettings, RunnerSettings, SchedulerSettings, Settings

SERVICES: dict[str, type[Settings]] = {
    "gateway": GatewaySettings,
    "scheduler": SchedulerSettings,  # optional: the compose profile and the k8s-scheduler overlay
    "runner": RunnerSettings,
    "results": ResultsSettings,
}
MODULES = {service: f"services.{service}" for service in SERVICES} | {"scheduler": "services.gateway.scheduling"}
# The Kustomize base, and the overlay that runs the scheduler apart from the gateways.
BASE, APART = "k8s", "k8s-scheduler"
SECRETS = {"RABBITMQ_URL", "MONGO_URL", "S3_SECRET_ACCESS_KEY", "AUTH_SECRET", "ADMIN_PASSWORD"}
GATEWAY_ONLY = {"AUTH_SECRET", "ADMIN_USERNAME", "ADMIN_PASSWORD"}  # runners run other people's code
# Each Secret and the folder and file it is generated from: one shared, then each service's own credentials.
SECRET_FILES = {
    "quern-secrets": (BASE, "secrets.env"),
    "quern-gateway-secrets": (BASE, "gateway-secrets.env"),
    "quern-runner-secrets": (BASE, "runner-secrets.env"),
    "quern-results-secrets": (BASE, "results-secrets.env"),
    "quern-scheduler-secrets": (APART, "scheduler-secrets.env"),
}
# What a stopping runner needs beyond drain and grace: uploading logs and checkpoints, handing its jobs back.
UPLOAD_MARGIN_SECONDS = 30


def names(settings: type[Settings]) -> set[str]:
    return {name.upper() for name in settings.model_fields}


def required(settings: type[Settings]) -> set[str]:
    return {name.upper() for name, field in settings.model_fields.items() if field.is_required()}


def k8s_documents(project: Path, folder: str = BASE) -> dict[str, list[dict[str, Any]]]:
    files = (project / "deploy" / folder).glob("*.yaml")
    return {path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc] for path in files}


def k8s_objects(project: Path, kind: str, folders: tuple[str, ...] = (BASE,)) -> list[dict[str, Any]]:
    return [
        doc
        for folder in folders
        for docs in k8s_documents(project, folder).values()
        for doc in docs
        if doc.get("kind") == kind
    ]


def apart_patch(project: Path) -> dict[str, Any]:
    """The overlay's one patch: its target and the patch itself, parsed."""
    kustomization = yaml.safe_load((project / "deploy" / APART / "kustomization.yaml").read_text())
    (patch,) = kustomization["patches"]
    return {"target": patch["target"], "patch": yaml.safe_load(patch["patch"])}


def secret_keys(project: Path, secret: str) -> set[str]:
    folder, file = SECRET_FILES[secret]
    lines = (project / "deploy" / folder / f"{file}.example").read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def environment(project: Path, container: dict[str, Any]) -> set[str]:
    """Every variable a container gets: its ConfigMap's and Secrets' keys, and its own env."""
    (config,) = k8s_objects(project, "ConfigMap")
    keys = {variable["name"] for variable in container.get("env", [])}
    for source in container["envFrom"]:
        if "configMapRef" in source:
            keys |= set(config["data"])
        else:
            keys |= secret_keys(project, source["secretRef"]["name"])
    return keys


def test_every_manifest_parses_and_names_its_kind(project: Path) -> None:
    for folder in (BASE, APART):
        for file, docs in k8s_documents(project, folder).items():
            assert docs, file
            for doc in docs:
                assert doc.get("apiVersion") and doc.get("kind"), file
                assert doc["kind"] == "Kustomization" or doc["metadata"]["name"], file


def test_the_kustomization_lists_every_manifest_and_only_those(project: Path) -> None:
    folder = project / "deploy" / "k8s"
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert {gen["name"]: gen["envs"] for gen in kustomization["secretGenerator"]} == {
        name: [file] for name, (where, file) in SECRET_FILES.items() if where == BASE
    }
    assert [image["name"] for image in kustomization["images"]] == ["quern"]


def test_the_scheduler_overlay_is_the_base_plus_the_scheduler_with_the_gateways_not_scheduling(project: Path) -> None:
    folder = project / "deploy" / APART
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["resources"][0] == f"../{BASE}"
    assert set(kustomization["resources"][1:]) == {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    base = yaml.safe_load((project / "deploy" / BASE / "kustomization.yaml").read_text())
    assert kustomization["namespace"] == base["namespace"]
    assert {gen["name"]: gen["envs"] for gen in kustomization["secretGenerator"]} == {
        name: [file] for name, (where, file) in SECRET_FILES.items() if where == APART
    }
    found = apart_patch(project)
    assert found["target"] == {"kind": "Deployment", "name": "quern-gateway"}
    (container,) = found["patch"]["spec"]["template"]["spec"]["containers"]
    assert container["name"] == "gateway"
    assert container["env"] == [{"name": "RUN_SCHEDULER", "value": "false"}]
    assert "RUN_SCHEDULER" in names(GatewaySettings)


def test_each_service_runs_its_module_with_resources_and_the_shared_configuration(project: Path) -> None:
    deployments = {doc["metadata"]["name"]: doc for doc in k8s_objects(project, "Deployment", (BASE, APART))}
    assert set(deployments) == {f"quern-{service}" for service in SERVICES}
    for service in SERVICES:
        spec = deployments[f"quern-{service}"]["spec"]
        assert spec["selector"]["matchLabels"].items() <= spec["template"]["metadata"]["labels"].items()
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        (container,) = pod["containers"]
        assert container["image"] == "quern"
        assert container["command"] == ["python", "-m", MODULES[service]]
        assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
        assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
        refs = [next(iter(source.values()))["name"] for source in container["envFrom"]]
        assert refs == ["quern-config", "quern-secrets", f"quern-{service}-secrets"]


def test_the_gateway_is_probed_on_healthz_and_readyz_at_the_port_it_listens_on(project: Path) -> None:
    (gateway,) = [d for d in k8s_objects(project, "Deployment") if d["metadata"]["name"] == "quern-gateway"]
    (container,) = gateway["spec"]["template"]["spec"]["containers"]
    (port,) = [port for port in container["ports"] if port["name"] == "http"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    (config,) = k8s_objects(project, "ConfigMap")
    assert int(config["data"]["GATEWAY_PORT"]) == port["containerPort"]
    (service,) = k8s_objects(project, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    assert service["spec"]["selector"] == gateway["spec"]["selector"]["matchLabels"]


def test_kubernetes_settings_are_ones_each_service_reads_and_cover_what_it_requires(project: Path) -> None:
    for deployment in k8s_objects(project, "Deployment", (BASE, APART)):
        service = deployment["metadata"]["name"].removeprefix("quern-")
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        keys, settings = environment(project, container), SERVICES[service]
        assert required(settings) <= keys, (service, required(settings) - keys)
        # Shared keys may serve another service; what only the gateway reads goes to the gateway alone.
        everything = set().union(*(names(other) for other in SERVICES.values()))
        assert keys <= everything, keys - everything
        assert service == "gateway" or not keys & GATEWAY_ONLY, service
    (config,) = k8s_objects(project, "ConfigMap")
    assert not SECRETS & set(config["data"]), "secrets belong in a Secret, not the ConfigMap"
    for service in SERVICES:  # the shared Secret holds the broker's URL; each service has its own database and S3 users
        assert SECRETS - GATEWAY_ONLY <= secret_keys(project, "quern-secrets") | secret_keys(
            project, f"quern-{service}-secrets"
        )
    assert GATEWAY_ONLY & SECRETS <= secret_keys(project, "quern-gateway-secrets")


def runner_deployment(project: Path) -> dict[str, Any]:
    (runner,) = [d for d in k8s_objects(project, "Deployment") if d["metadata"]["name"] == "quern-runner"]
    return runner


def drain_and_grace(env: dict[str, str]) -> float:
    """How long a runner given ``env`` may take to stop before its jobs are handed back: drain plus the apps' grace."""
    names = ("DRAIN_SECONDS", "APP_GRACE_SECONDS")
    assert set(names) <= env.keys(), "set the drain and the apps' grace explicitly, beside the grace period"
    settings = RunnerSettings.model_fields
    assert {name.lower() for name in names} <= settings.keys()
    return sum(float(env[name]) for name in names)


def test_a_runner_pod_is_given_its_drain_and_grace_and_time_to_hand_its_jobs_back(project: Path) -> None:
    pod = runner_deployment(project)["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {variable["name"]: variable["value"] for variable in container["env"] if "value" in variable}
    assert pod["terminationGracePeriodSeconds"] >= drain_and_grace(env) + UPLOAD_MARGIN_SECONDS


def test_runners_roll_out_without_losing_slots(project: Path) -> None:
    strategy = runner_deployment(project)["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate" and strategy["rollingUpdate"]["maxUnavailable"] == 0


def test_a_disruption_budget_evicts_runner_pods_one_at_a_time(project: Path) -> None:
    (budget,) = k8s_objects(project, "PodDisruptionBudget")
    assert budget["apiVersion"] == "policy/v1" and budget["spec"]["maxUnavailable"] == 1
    selector = budget["spec"]["selector"]["matchLabels"]
    runner = runner_deployment(project)["spec"]
    assert selector == runner["selector"]["matchLabels"]
    assert selector.items() <= runner["template"]["metadata"]["labels"].items()
    others = [d for d in k8s_objects(project, "Deployment", (BASE, APART)) if d["metadata"]["name"] != "quern-runner"]
    assert others and not [d for d in others if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()]


@pytest.fixture
def compose(project: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((project / "deploy" / "compose.yml").read_text())
    return loaded


def test_compose_settings_are_ones_the_code_reads_and_cover_what_each_service_requires(
    compose: dict[str, Any],
) -> None:
    for service, settings in SERVICES.items():
        definition = compose["services"][service]
        assert definition["command"] == ["python", "-m", MODULES[service]]
        variables = set(definition["environment"])
        assert variables <= names(settings), (service, variables - names(settings))
        assert required(settings) <= variables


def test_compose_gives_a_stopping_runner_its_drain_and_grace_and_time_to_hand_its_jobs_back(
    compose: dict[str, Any],
) -> None:
    runner = compose["services"]["runner"]
    period = re.fullmatch(r"(\d+)(s|m)", runner["stop_grace_period"])
    assert period is not None, "stop_grace_period in seconds (120s) or minutes (2m)"
    seconds = int(period.group(1)) * (60 if period.group(2) == "m" else 1)
    assert seconds >= drain_and_grace(runner["environment"]) + UPLOAD_MARGIN_SECONDS


def test_compose_takes_secrets_from_the_environment_without_defaults(compose: dict[str, Any]) -> None:
    variables = compose["services"]["gateway"]["environment"]
    assert SECRETS <= set(variables)
    for name in SECRETS:
        assert re.search(r"\$\{[A-Z_]+:\?[^}]*\}", variables[name]), f"{name} must be ${{VAR:?}}"


def test_compose_starts_quern_only_once_its_servers_are_healthy(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for server in ("rabbitmq", "minio", "mongo"):
        assert services[server]["healthcheck"]["test"], server
    for service in SERVICES:
        conditions = {name: dep["condition"] for name, dep in services[service]["depends_on"].items()}
        assert conditions == {
            "rabbitmq": "service_healthy",
            "mongo": "service_healthy",
            "mongo-users": "service_completed_successfully",
            "minio-bucket": "service_completed_successfully",
        }
    assert services["minio-bucket"]["depends_on"] == {"minio": {"condition": "service_healthy"}}
    assert services["mongo-users"]["depends_on"] == {"mongo": {"condition": "service_healthy"}}


def test_compose_runs_the_scheduler_in_the_gateway_unless_its_profile_is_chosen(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["scheduler"]["profiles"] == ["scheduler"]
    assert [service for service in SERVICES if "profiles" in services[service]] == ["scheduler"]
    assert services["gateway"]["environment"]["RUN_SCHEDULER"] == "${RUN_SCHEDULER:-true}"


def test_the_image_sets_only_settings_the_code_reads(project: Path) -> None:
    dockerfile = (project / "deploy" / "Dockerfile").read_text()
    block = re.search(r"^ENV (.*?)(?=^\S)", dockerfile, flags=re.MULTILINE | re.DOTALL)
    assert block is not None
    variables = set(re.findall(r"([A-Z][A-Z0-9_]*)=", block.group(1))) - {"PYTHONUNBUFFERED"}
    everything = set().union(*(names(settings) for settings in SERVICES.values()))
    assert variables and variables <= everything, variables - everything


COMPOSE_SECRETS = {
    "RABBITMQ_PASSWORD": "r" * 16,
    "MINIO_ROOT_PASSWORD": "m" * 16,
    "MONGO_ROOT_PASSWORD": "g" * 16,
    **{f"MINIO_{service}_PASSWORD": f"m{service.lower()}" * 2 for service in ("GATEWAY", "RUNNER", "RESULTS")},
    **{f"MONGO_{service}_PASSWORD": f"g{service.lower()}" * 2 for service in ("GATEWAY", "RUNNER", "RESULTS")},
    "AUTH_SECRET": "a" * 40,
    "ADMIN_PASSWORD": "p" * 16,
}


@pytest.fixture(scope="session")
def docker_compose() -> str:
    """Debian's docker-compose (it parses and validates a compose file without an engine), installed if absent."""
    found = shutil.which("docker-compose")
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        subprocess.run(["apt-get", "update", "-q"], capture_output=True, check=False, timeout=300)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "docker-compose"], capture_output=True, check=True, timeout=600
        )
        found = shutil.which("docker-compose")
    if found is None:
        pytest.fail("docker-compose is needed to validate deploy/compose.yml: apt-get install docker-compose")
    return found


def compose_config(docker_compose: str, project: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key not in COMPOSE_SECRETS}
    command = [docker_compose, "-p", "quern", "-f", str(project / "deploy" / "compose.yml"), "config"]
    return subprocess.run(command, env=clean | env, capture_output=True, text=True, timeout=120, check=False)


def test_docker_compose_accepts_the_file_once_its_secrets_are_set(docker_compose: str, project: Path) -> None:
    done = compose_config(docker_compose, project, COMPOSE_SECRETS)
    assert done.returncode == 0, done.stderr
    resolved = yaml.safe_load(done.stdout)
    assert resolved["services"]["runner"]["environment"]["MONGO_URL"].startswith(
        "mongodb://quern-runner:grunnergrunner@"
    )
    assert resolved["services"]["scheduler"]["environment"]["S3_SECRET_ACCESS_KEY"] == "mgatewaymgateway"
    assert "AUTH_SECRET" not in resolved["services"]["runner"]["environment"]
    assert "AUTH_SECRET" not in resolved["services"]["scheduler"]["environment"]
    assert resolved["services"]["gateway"]["environment"]["RUN_SCHEDULER"] == "true"


@pytest.mark.parametrize("missing", sorted(COMPOSE_SECRETS))
def test_docker_compose_refuses_to_start_without_each_secret(docker_compose: str, project: Path, missing: str) -> None:
    done = compose_config(docker_compose, project, {k: v for k, v in COMPOSE_SECRETS.items() if k != missing})
    assert done.returncode != 0 and missing in done.stderr, done.stderr


def test_runner_pods_hold_no_api_token_and_allow_the_app_sandbox_without_privileges(project: Path) -> None:
    pod = runner_deployment(project)["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False
    assert pod["hostUsers"] is False
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert "privileged" not in context
    assert context["procMount"] == "Unmasked"
    assert context["seccompProfile"] == context["appArmorProfile"] == {"type": "Unconfined"}


def test_runners_may_reach_dns_and_their_servers_only(project: Path) -> None:
    (policy,) = k8s_objects(project, "NetworkPolicy")
    labels = runner_deployment(project)["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    (config,) = k8s_objects(project, "ConfigMap")
    # Nothing comes in but Prometheus's scrape of the runner's metrics.
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": int(config["data"]["METRICS_PORT"])}]}]
    ports = {(port["protocol"], port["port"]) for rule in policy["spec"]["egress"] for port in rule["ports"]}
    assert ports == {
        ("UDP", 53),
        ("TCP", 53),
        ("TCP", 27017),
        ("TCP", 5671),
        ("TCP", 5672),
        ("TCP", 443),
        ("TCP", 9000),
    }
    for rule in policy["spec"]["egress"]:
        for destination in rule.get("to", []):
            assert "169.254.0.0/16" in destination["ipBlock"]["except"]  # the cloud's metadata endpoint


def test_the_image_and_compose_give_runners_bubblewrap(project: Path, compose: dict[str, Any]) -> None:
    assert re.search(r"apt-get install [^\n]*\bbubblewrap\b", (project / "deploy/Dockerfile").read_text())
    options = set(compose["services"]["runner"]["security_opt"])
    assert options == {"seccomp=unconfined", "apparmor=unconfined", "systempaths=unconfined"}


def test_every_service_declares_the_metrics_port_it_serves_and_prometheus_is_told_of_it(project: Path) -> None:
    (config,) = k8s_objects(project, "ConfigMap")
    port = int(config["data"]["METRICS_PORT"])
    assert config["data"]["METRICS_HOST"] == "0.0.0.0"  # Prometheus scrapes from another pod
    for deployment in k8s_objects(project, "Deployment", (BASE, APART)):
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        assert {"name": "metrics", "containerPort": port} in container["ports"], deployment["metadata"]["name"]
        annotations = template["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true" and int(annotations["prometheus.io/port"]) == port


def test_workers_and_the_scheduler_are_probed_on_the_age_of_the_liveness_file_they_touch(project: Path) -> None:
    deployments = k8s_objects(project, "Deployment", (BASE, APART))
    for name in ("quern-runner", "quern-results", "quern-scheduler"):
        (deployment,) = [d for d in deployments if d["metadata"]["name"] == name]
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        env = {variable["name"]: variable.get("value") for variable in container["env"]}
        assert env["LIVENESS_FILE"].startswith("/tmp/")  # writable: an emptyDir or the container's own /tmp
        command = container["livenessProbe"]["exec"]["command"]
        assert command[:2] == ["sh", "-c"] and '"$LIVENESS_FILE"' in command[2], command
        # Older than this many seconds: stale (the default heartbeat is every 10 s).
        (limit,) = re.findall(r"-lt (\d+)", command[2])
        assert int(limit) >= 3 * 10 and container["livenessProbe"]["initialDelaySeconds"] >= int(limit) // 2


def test_the_liveness_command_tells_a_fresh_file_from_a_stale_one(project: Path, tmp_path: Path) -> None:
    (runner,) = runner_deployment(project)["spec"]["template"]["spec"]["containers"]
    command = runner["livenessProbe"]["exec"]["command"]
    alive = tmp_path / "alive"
    env = {"PATH": os.environ["PATH"], "LIVENESS_FILE": str(alive)}
    assert subprocess.run(command, env=env, check=False).returncode != 0  # no heartbeat yet
    alive.touch()
    assert subprocess.run(command, env=env, check=False).returncode == 0
    os.utime(alive, (alive.stat().st_atime, alive.stat().st_mtime - 3600))
    assert subprocess.run(command, env=env, check=False).returncode != 0


def test_compose_checks_each_worker_on_the_liveness_file_it_touches(compose: dict[str, Any]) -> None:
    for name in ("runner", "results"):
        service = compose["services"][name]
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD-SHELL" and service["environment"]["LIVENESS_FILE"] in test[1], name
