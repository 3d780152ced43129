"""Job events through the in-process gateway: what is refused before any stream opens."""

from __future__ import annotations

import httpx2
import pytest

from tests.helpers.clients import ApiUserFactory, tiny_job


@pytest.fixture(scope="module")
def queued(make_user: ApiUserFactory) -> tuple[httpx2.Client, str]:
    """A user and their job (no runner here: it stays QUEUED)."""
    user = make_user()
    return user, tiny_job(user)["id"]


def test_another_users_job_stream_is_404(queued: tuple[httpx2.Client, str], make_user: ApiUserFactory) -> None:
    _, job_id = queued
    assert make_user().get(f"/v1/jobs/{job_id}/events").status_code == 404


def test_a_malformed_resume_point_is_400(queued: tuple[httpx2.Client, str]) -> None:
    user, job_id = queued
    assert user.get(f"/v1/jobs/{job_id}/events", params={"after": "nope"}).status_code == 400
    assert user.get("/v1/events", params={"wait": 301}).status_code == 400
