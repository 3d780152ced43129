"""The published OpenAPI document tells the truth: schemathesis drives every operation and checks the answers."""

from __future__ import annotations

import hashlib
import re
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.testclient import TestClient

from devstack.stack import Stack
from services.gateway.app import create_app
from shared.settings import GatewaySettings, load
from tests.helpers.clients import TINY, UserFactory, flood_copy, wait_for, wait_for_archive
from tests.helpers.datasets import make_dataset

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def published() -> dict[str, Any]:
    """The document the gateway publishes, read from an app that is not started (so tests can be made per operation)."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in Stack(state_dir=Path(tempfile.gettempdir())).env().items():
            patch.setenv(name, value)
        app = create_app(load(GatewaySettings))
    client = TestClient(app)
    try:
        document: dict[str, Any] = client.get("/openapi.json").json()
    finally:
        client.close()
    return document


# (method, path) -> the operation, from which each test takes its tag and media types.
OPERATIONS = {
    (method.upper(), path): operation
    for path, item in published()["paths"].items()
    for method, operation in item.items()
}


def streams_events(operation: dict[str, Any]) -> bool:
    return "text/event-stream" in operation["responses"].get("200", {}).get("content", {})


@pytest.fixture(scope="session")
def api_schema(stack: Stack) -> Any:
    return schemathesis.openapi.from_url(f"{stack.gateway_url}/openapi.json")


@pytest.fixture(scope="session")
def seeded(make_user: UserFactory, admin: httpx.Client, project: Path) -> tuple[dict[str, str], dict[str, str]]:
    """Tokens by operation tag and the ids of things their holders own, so answers are checked with real content too.

    The app operations run as an admin (most of them are admin-only), on an app of their own,
    so the apps other tests use are never disabled or given new versions.
    """
    user = make_user()
    definition = flood_copy(project, name="schemathesis-app")
    admin.post("/v1/apps", json=definition).raise_for_status()
    file = user.post("/v1/files", params={"name": "data.txt"}, content=b"tiny\n").json()
    body = {"app": TINY, "inputs": {"data": file["id"]}}
    # The jobs' events go to a registered webhook where nothing listens, so their deliveries hold failed attempts.
    user.post("/v1/webhook-secret").raise_for_status()
    webhook_id, doomed_webhook_id = (
        user.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/{n}"}).json()["id"] for n in range(2)
    )
    job_id, doomed_job_id = (user.post("/v1/jobs", json=body).json()["id"] for _ in range(2))
    for each in (job_id, doomed_job_id):
        wait_for(user, each)
        wait_for_archive(user, each)
    key = user.post("/v1/keys", json={"name": "schemathesis"}).json()
    upload = user.post(
        "/v1/uploads", json={"name": "later.bin", "size": 3, "sha256": hashlib.sha256(b"abc").hexdigest()}
    )
    ids = {
        "file_id": file["id"],
        "job_id": job_id,
        "key_id": key["id"],
        "upload_id": upload.json()["id"],
        "dataset_id": make_dataset(user, "schemathesis"),
        "user_id": user.get("/v1/me").json()["id"],
        "queue_id": user.post("/v1/queues", json={"name": "schemathesis"}).json()["id"],
        "path": "copy.txt",  # the tiny job's output
        "webhook_id": webhook_id,
    }
    doomed_queue_id = user.post("/v1/queues", json={"name": "doomed"}).json()["id"]
    # DELETE gets a job (and a queue) of its own, so the operations after it still see a real one.
    tokens = {
        "user": str(user.headers["Authorization"]),
        "apps": str(admin.headers["Authorization"]),
        # Logging out everywhere ends every token of its caller's: a user of its own, so the others' still work.
        "POST /v1/me/logout-all": str(make_user().headers["Authorization"]),
    }
    return tokens, ids | {
        "name": definition["name"],
        "DELETE job_id": doomed_job_id,
        "DELETE queue_id": doomed_queue_id,
        "DELETE webhook_id": doomed_webhook_id,
    }


@pytest.mark.parametrize(("method", "path"), sorted(OPERATIONS))
def test_every_answer_matches_the_published_schema(
    method: str, path: str, api_schema: Any, seeded: tuple[dict[str, str], dict[str, str]], stack: Stack
) -> None:
    tokens, ids = seeded
    token = tokens.get(f"{method} {path}") or tokens.get(OPERATIONS[(method, path)]["tags"][0], tokens["user"])
    operation = api_schema[path][method]
    real = {name: ids.get(f"{method} {name}", ids[name]) for name in re.findall(r"{(\w+)}", path)}
    # The caller's event stream stays open for ``wait`` seconds once quiet: keep that short.
    quick = {"query": {"wait": 1}} if path == "/v1/events" else {}
    cases = strategies.one_of(
        operation.as_strategy(GenerationMode.POSITIVE, **quick),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real, **quick),
    )
    examples = 10 if streams_events(OPERATIONS[(method, path)]) else 25

    with requests.Session() as session:  # one connection pool, closed: no sockets left for the GC to warn about

        @given(case=cases)
        @settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def conforms(case: Any) -> None:
            case.call_and_validate(
                base_url=stack.gateway_url, session=session, headers={"Authorization": token}, checks=CHECKS
            )

        conforms()


def test_the_published_document_is_the_one_the_tests_were_made_from(stack: Stack) -> None:
    document = httpx.get(f"{stack.gateway_url}/openapi.json").json()
    assert {(m.upper(), p) for p, item in document["paths"].items() for m in item} == set(OPERATIONS)
