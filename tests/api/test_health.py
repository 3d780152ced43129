"""Liveness, readiness and request ids of the in-process gateway."""

from __future__ import annotations

import httpx2
import pytest

from tests.helpers.clients import ApiUserFactory


@pytest.fixture(scope="module")
def api(make_user: ApiUserFactory) -> httpx2.Client:
    """A plain user of the test stack."""
    return make_user()


def test_health_and_readiness(api: httpx2.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz").json()
    assert ready["status"] == "ready" and set(ready["checks"].values()) == {"ok"}


def test_request_id_is_echoed(api: httpx2.Client) -> None:
    assert api.get("/healthz", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
