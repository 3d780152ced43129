"""The TES OpenAPI document tells the truth: schemathesis drives each operation through the in-process gateway.

A few examples per operation (positive, negative, and positive on a real task), each answer
checked against the document: no 5xx, only documented statuses and media types, bodies that
conform.
"""

from __future__ import annotations

import re
from typing import Any

import httpx2
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings, strategies
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from services.gateway.surfaces.tes.document import build_document
from tests.helpers.clients import ApiUserFactory

TES = "/ga4gh/tes/v1"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DOCUMENT = build_document()
OPERATIONS = sorted((method.upper(), path) for path, item in DOCUMENT["paths"].items() for method in item)


@pytest.fixture(scope="module")
def tes_user(make_user: ApiUserFactory) -> tuple[httpx2.Client, str]:
    """A user with one task of their own, so GetTask and CancelTask meet a real one too."""
    user = make_user()
    executors = [{"image": "localhost/quern-tes:1", "command": ["true"]}]
    answer = user.post(f"{TES}/tasks", json={"name": "seen by schemathesis", "executors": executors})
    assert answer.status_code == 200, answer.text
    return user, str(answer.json()["id"])


def send(user: httpx2.Client, case: Any) -> httpx2.Response:
    """The case sent through the user's client of the in-process gateway (its credentials, its event loop)."""
    kwargs = case.as_transport_kwargs(base_url=f"{user.base_url}{TES}".replace("//ga4gh", "/ga4gh"))
    body: dict[str, Any] = {}
    if "json" in kwargs:
        body["json"] = kwargs["json"]
    elif kwargs.get("data") is not None:
        body["content"] = kwargs["data"]
    headers = {name: value for name, value in kwargs["headers"].items() if name.lower() != "authorization"}
    return user.request(kwargs["method"], kwargs["url"], params=kwargs["params"], headers=headers, **body)


@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_every_tes_answer_matches_the_published_schema(
    method: str, path: str, tes_user: tuple[httpx2.Client, str]
) -> None:
    user, task_id = tes_user
    operation = schemathesis.openapi.from_dict(DOCUMENT)[path][method]
    real = {name: task_id for name in re.findall(r"{(\w+)}", path)}
    cases = strategies.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
        operation.as_strategy(GenerationMode.POSITIVE, path_parameters=real) if real else strategies.nothing(),
    )

    @given(case=cases)
    @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def conforms(case: Any) -> None:
        if method == "GET" and path != "/service-info" and isinstance(case.query, dict):
            # The spec's tesTask requires executors, which its own MINIMAL view (the default) leaves out:
            # check the views that can conform (tests/api/test_tes.py checks MINIMAL answers exactly).
            if case.query.get("view", "MINIMAL") == "MINIMAL":
                case.query["view"] = "BASIC"
        case.validate_response(send(user, case), checks=CHECKS)

    conforms()
