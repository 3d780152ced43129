"""The UI's admin pages, API keys, queue repairs and rerun form, through the in-process gateway."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient

from devstack.stack import Stack
from tests.helpers.clients import add_user, gateway_client, log_in, tiny_job
from tests.helpers.ui_forms import csrf_of, ui_log_in

FAKE_ID = "01aaaaaaaaaaaaaaaaaaaaaaaa"
# Every route these pages added that changes something (the walk in test_ui.py covers the whole UI too).
CHANGES = (
    f"/ui/jobs/{FAKE_ID}/rerun",
    f"/ui/jobs/{FAKE_ID}/state",
    f"/ui/queues/{FAKE_ID}/retry",
    f"/ui/queues/{FAKE_ID}/recover",
    "/ui/keys",
    f"/ui/keys/{FAKE_ID}/revoke",
    "/ui/admin/users",
    f"/ui/admin/users/{FAKE_ID}/limit",
    f"/ui/admin/users/{FAKE_ID}/disable",
    f"/ui/admin/users/{FAKE_ID}/enable",
    "/ui/admin/apps",
    "/ui/admin/apps/tiny/disable",
    "/ui/admin/apps/tiny/enable",
)


@pytest.fixture
def admin_ui(gateway: TestClient, stack: Stack) -> Iterator[httpx2.Client]:
    """The first admin signed in to the UI."""
    with gateway_client(gateway) as client:
        yield ui_log_in(client, stack.admin_username, stack.admin_password)


@pytest.fixture
def user_ui(gateway: TestClient, admin: httpx2.Client) -> Iterator[tuple[httpx2.Client, httpx2.Client]]:
    """A new user signed in to the UI, and the same user's API client."""
    username, password = add_user(admin)
    with gateway_client(gateway) as client, gateway_client(gateway) as api:
        yield ui_log_in(client, username, password), log_in(api, username, password)


def test_every_new_change_without_the_csrf_token_is_refused(admin_ui: httpx2.Client) -> None:
    for path in CHANGES:
        assert admin_ui.post(path, data={"csrf": "forged", "username": "x", "name": "x"}).status_code == 403, path
        assert admin_ui.post(path).status_code == 403, path
    assert admin_ui.get("/ui/admin/users").status_code == 200  # still signed in: nothing was done


def test_a_non_admin_cannot_reach_the_admin_pages(
    user_ui: tuple[httpx2.Client, httpx2.Client], admin: httpx2.Client
) -> None:
    client, api = user_ui
    jobs = client.get("/ui/jobs").text
    assert "/ui/admin/users" not in jobs and "/ui/admin/apps" not in jobs and "/ui/keys" in jobs
    assert client.get("/ui/admin/users").status_code == 403  # as the native API's admin routes answer
    assert client.get("/ui/admin/apps").status_code == 403
    token = csrf_of(jobs)
    name = f"u{uuid.uuid4().hex[:10]}"
    created = client.post("/ui/admin/users", data={"csrf": token, "username": name, "password": "p" * 16})
    assert created.status_code == 403
    assert name not in admin.get("/v1/users", params={"limit": 500}).text
    assert client.post("/ui/admin/apps/tiny/disable", data={"csrf": token}).status_code == 403
    me = api.get("/v1/me").json()["id"]
    assert client.post(f"/ui/admin/users/{me}/limit", data={"csrf": token, "max_running": "99"}).status_code == 403
    assert api.get("/v1/me").json()["max_running"] is None
    job = tiny_job(api)
    forced = client.post(f"/ui/jobs/{job['id']}/state", data={"csrf": token, "state": "FAILED", "reason": "x"})
    assert forced.status_code == 403
    assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"
    assert 'id="force-form"' not in client.get(f"/ui/jobs/{job['id']}").text


def test_an_admin_creates_a_user_limits_and_disables_them(admin_ui: httpx2.Client, gateway: TestClient) -> None:
    token = csrf_of(admin_ui.get("/ui/admin/users").text)
    name, password = f"u{uuid.uuid4().hex[:10]}", "a-long-password-1"
    short = admin_ui.post("/ui/admin/users", data={"csrf": token, "username": name, "password": "short"})
    assert short.status_code == 422 and "at least 12 characters" in short.text and f'value="{name}"' in short.text
    answer = admin_ui.post("/ui/admin/users", data={"csrf": token, "username": name, "password": password})
    assert answer.status_code == 303
    page = admin_ui.get("/ui/admin/users").text
    user_id = re.search(rf'data-user="{name}">\s*<th scope="row">{name} <code class="muted">(\w+)</code>', page)
    assert user_id
    limit = admin_ui.post(f"/ui/admin/users/{user_id.group(1)}/limit", data={"csrf": token, "max_running": "3"})
    assert limit.status_code == 303
    with gateway_client(gateway) as api:
        assert log_in(api, name, password).get("/v1/me").json()["max_running"] == 3
    admin_ui.post(f"/ui/admin/users/{user_id.group(1)}/disable", data={"csrf": token})
    with gateway_client(gateway) as api:
        assert api.post("/v1/auth/login", json={"username": name, "password": password}).status_code == 401
    admin_ui.post(f"/ui/admin/users/{user_id.group(1)}/enable", data={"csrf": token})
    with gateway_client(gateway) as api:
        assert api.post("/v1/auth/login", json={"username": name, "password": password}).status_code == 200


def test_a_new_keys_secret_is_shown_once_on_the_answer_page(
    user_ui: tuple[httpx2.Client, httpx2.Client], gateway: TestClient
) -> None:
    client, _ = user_ui
    answer = client.post("/ui/keys", data={"csrf": csrf_of(client.get("/ui/keys").text), "name": "laptop"})
    assert answer.status_code == 201 and "location" not in answer.headers
    secret = re.search(r'<code class="secret" id="secret">(qk_[^<]+)</code>', answer.text)
    assert secret
    listed = client.get("/ui/keys").text
    assert secret.group(1) not in listed and "laptop" in listed
    with gateway_client(gateway) as api:
        api.headers["Authorization"] = f"Bearer {secret.group(1)}"
        assert api.get("/v1/me").status_code == 200
        key_id = re.search(r'data-key="(\w+)"', listed)
        assert key_id
        client.post(f"/ui/keys/{key_id.group(1)}/revoke", data={"csrf": csrf_of(listed)})
        assert api.get("/v1/me").status_code == 401


def test_an_app_registered_from_pasted_json_shows_its_errors_then_is_disabled(admin_ui: httpx2.Client) -> None:
    token = csrf_of(admin_ui.get("/ui/admin/apps").text)
    bad = admin_ui.post("/ui/admin/apps", data={"csrf": token, "definition": '{"name": "x"}'})
    assert bad.status_code == 422 and "/version" in bad.text and "&#34;name&#34;: &#34;x&#34;" in bad.text
    name = f"echo{uuid.uuid4().hex[:6]}"
    spec = {
        "name": name,
        "version": "1.0",
        "description": "echoes",
        "command": ["echo", "hi"],
        "outputs": ["out.txt"],
        "parameters": {"type": "object", "additionalProperties": False},
        "timeout": {"default": 60, "max": 600},
    }
    assert admin_ui.post("/ui/admin/apps", data={"csrf": token, "definition": json.dumps(spec)}).status_code == 303
    row = rf'data-app="{name}" data-version="1.0">.*?data-role="status">(\w+)<'
    assert re.search(row, admin_ui.get("/ui/admin/apps").text, re.DOTALL).group(1) == "enabled"  # type: ignore[union-attr]
    admin_ui.post(f"/ui/admin/apps/{name}/disable", data={"csrf": token, "version": "1.0"})
    assert re.search(row, admin_ui.get("/ui/admin/apps").text, re.DOTALL).group(1) == "disabled"  # type: ignore[union-attr]


def test_a_rerun_with_an_edited_parameter_makes_a_job_with_it(user_ui: tuple[httpx2.Client, httpx2.Client]) -> None:
    client, api = user_ui
    job = tiny_job(api, seconds=1, name="first")
    form = client.get(f"/ui/jobs/{job['id']}/rerun")
    assert form.status_code == 200
    assert re.search(r'id="p-seconds"[^>]*value="1"', form.text) and 'value="first"' in form.text
    fields = {"csrf": csrf_of(form.text), "edited": "yes", "param.seconds": "-5", "param.exit_code": "0"}
    wrong = client.post(f"/ui/jobs/{job['id']}/rerun", data=fields)
    assert wrong.status_code == 422 and 'id="p-seconds-error"' in wrong.text
    answer = client.post(f"/ui/jobs/{job['id']}/rerun", data=fields | {"param.seconds": "2"})
    assert answer.status_code == 303
    new = api.get("/v1" + answer.headers["location"].removeprefix("/ui")).json()
    assert new["params"]["seconds"] == 2 and new["rerun_of"] == job["id"] and new["name"] == "first"


def test_retry_failed_from_the_queues_page_says_what_it_did(user_ui: tuple[httpx2.Client, httpx2.Client]) -> None:
    client, _ = user_ui
    page = client.get("/ui/queues").text
    default = re.search(r'action="/ui/queues/(\w+)/retry"', page)
    assert default
    answer = client.post(f"/ui/queues/{default.group(1)}/retry", data={"csrf": csrf_of(page)}, follow_redirects=True)
    assert "Queue default: 0 failed jobs put back to QUEUED." in answer.text
    answer = client.post(f"/ui/queues/{default.group(1)}/recover", data={"csrf": csrf_of(page)}, follow_redirects=True)
    assert "Queue default: 0 running jobs of gone workers put back to QUEUED." in answer.text


def test_an_admin_forces_a_job_failed_from_its_page_and_a_missing_reason_is_refused(
    admin_ui: httpx2.Client, user_ui: tuple[httpx2.Client, httpx2.Client]
) -> None:
    _, api = user_ui
    job = tiny_job(api)
    page = admin_ui.get(f"/ui/jobs/{job['id']}").text
    assert 'id="force-form"' in page
    token = csrf_of(page)
    empty = admin_ui.post(f"/ui/jobs/{job['id']}/state", data={"csrf": token, "state": "FAILED", "reason": " "})
    assert empty.status_code == 422 and "reason" in empty.text
    assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"
    data = {"csrf": token, "state": "FAILED", "reason": "stuck"}
    assert admin_ui.post(f"/ui/jobs/{job['id']}/state", data=data).status_code == 303
    forced = api.get(f"/v1/jobs/{job['id']}").json()
    assert forced["state"] == "FAILED" and forced["history"][-1]["reason"] == "stuck"
    assert "QUEUED → FAILED by" in admin_ui.get(f"/ui/jobs/{job['id']}").text


def test_the_queues_page_says_nothing_of_a_queue_it_does_not_list(
    user_ui: tuple[httpx2.Client, httpx2.Client],
) -> None:
    client, _ = user_ui
    page = client.get("/ui/queues", params={"queue": "<b>anything</b>", "retried": "9"}).text
    assert 'id="message"' not in page and "anything" not in page
