"""Webhooks through the in-process gateway: signing secrets, registration, and the URLs refused."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest

from tests.helpers.clients import VALLEY, ApiUserFactory, problem, signing_secret, upload


@pytest.fixture
def user(make_user: ApiUserFactory) -> httpx2.Client:
    return make_user()


def test_a_deleted_webhook_gets_nothing(user: httpx2.Client) -> None:
    signing_secret(user)
    created = user.post("/v1/webhooks", json={"url": "https://hooks.example.com/quern"}).json()
    assert user.get(f"/v1/webhooks/{created['id']}").json()["target"] == "https://hooks.example.com/quern"
    assert user.delete(f"/v1/webhooks/{created['id']}").status_code == 204
    problem(user.get(f"/v1/webhooks/{created['id']}"), 404)
    assert user.get("/v1/webhooks").json()["items"] == []


def test_a_webhook_without_a_signing_secret_is_409_and_nothing_is_stored(user: httpx2.Client, project: Path) -> None:
    grid = upload(user, "valley.csv", (project / VALLEY).read_bytes())
    body = {"app": "flood", "inputs": {"elevation": grid["id"]}, "webhook": {"url": "https://hooks.example.com/"}}
    assert "POST /v1/webhook-secret" in problem(user.post("/v1/jobs", json=body), 409)["detail"]
    problem(user.post("/v1/webhooks", json={"url": "https://hooks.example.com/"}), 409)
    assert user.get("/v1/jobs").json()["items"] == [] and user.get("/v1/webhooks").json()["items"] == []


@pytest.mark.parametrize(
    "url", ["http://169.254.169.254/latest", "http://10.0.0.1/", "http://[::1]:8080/", "http://0.0.0.0:9/"]
)
def test_a_private_address_outside_the_allowed_networks_is_422(user: httpx2.Client, url: str) -> None:
    signing_secret(user)
    errors = problem(user.post("/v1/webhooks", json={"url": url}), 422)["errors"]
    assert errors[0]["pointer"] == "/url"


@pytest.mark.parametrize(
    "url", ["ftp://hooks.example.com/", "https://user:pw@hooks.example.com/", "/relative", "https://h/" + "x" * 2048]
)
def test_a_malformed_webhook_url_is_422_pointing_at_it(user: httpx2.Client, url: str) -> None:
    errors = problem(user.post("/v1/jobs", json={"app": "flood", "webhook": {"url": url}}), 422)["errors"]
    assert "/webhook/url" in {error["pointer"] for error in errors}


def test_the_secret_is_shown_once_and_a_new_one_replaces_it(user: httpx2.Client) -> None:
    first, second = signing_secret(user), signing_secret(user)
    assert first.startswith("whsec_") and first != second
