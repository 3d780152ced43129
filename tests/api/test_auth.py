"""Authentication, API keys, roles and isolation between users, through the in-process gateway."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import jwt
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from devstack.stack import Stack
from services.gateway.app import create_app
from shared.settings import GatewaySettings, load
from tests.helpers.clients import ApiUserFactory, gateway_client, log_in, problem
from tests.helpers.datasets import make_dataset

FAKE_ID = "01aaaaaaaaaaaaaaaaaaaaaaaa"
PUBLIC_PATHS = {
    "/healthz",
    "/readyz",
    "/metrics",  # Prometheus scrapes without credentials; GATEWAY_METRICS=false takes it off this port
    "/openapi.json",
    "/docs",
    "/v1/auth/login",
    "/ga4gh/tes/v1/service-info",
    "/ga4gh/tes/v1/openapi.json",
} | {f"/docs/assets/{name}" for name in ("swagger-ui.css", "swagger-ui-bundle.js", "docs.js")}


def every_endpoint(env: dict[str, str], *, fill: bool = True) -> list[tuple[str, str]]:
    """(method, path) of every route the bearer-token API serves, ids filled with a fake unless ``fill`` is off.

    The web UI's routes (``/ui``, opened by a session cookie) are walked by tests/api/test_ui.py.
    """
    app = create_app(load(GatewaySettings))
    found = []
    for route in app.routes:
        if isinstance(route, Mount) and route.name == "ui":
            continue
        routes = route.routes if isinstance(route, Mount) else [route]
        prefix = route.path if isinstance(route, Mount) else ""
        for inner in routes:
            assert isinstance(inner, Route)
            path = prefix + inner.path
            for name in inner.param_convertors if fill else ():
                path = path.replace("{" + name + "}", FAKE_ID)
            found += [(method, path) for method in sorted(inner.methods or []) if method != "HEAD"]
    return found


def test_every_endpoint_but_health_and_login_needs_credentials(env: dict[str, str], anonymous: httpx2.Client) -> None:
    endpoints = every_endpoint(env)
    assert len(endpoints) > 15
    assert ("POST", f"/ga4gh/tes/v1/tasks/{FAKE_ID}:cancel") in endpoints
    for method, path in endpoints:
        response = anonymous.request(method, path)
        if path in PUBLIC_PATHS:
            assert response.status_code != 401, path
            continue
        assert problem(response, 401, "unauthorized")["title"] == "Unauthorized", (method, path)
        assert response.headers["www-authenticate"].startswith("Bearer")


def create_admin(stack: Stack, username: str, password: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "services.gateway", "create-admin", username]
    return subprocess.run(command, input=password + "\n", env=stack.env(), capture_output=True, text=True, timeout=60)


def test_an_admin_can_be_created_from_the_command_line(stack: Stack, gateway: TestClient) -> None:
    done = create_admin(stack, "carol-admin", "a long enough secret")
    assert done.returncode == 0, done.stderr
    assert "created admin carol-admin" in done.stdout
    with gateway_client(gateway) as carol:
        log_in(carol, "carol-admin", "a long enough secret")
        assert carol.get("/v1/me").json()["role"] == "admin"
        assert carol.get("/v1/users").status_code == 200
    taken = create_admin(stack, "carol-admin", "another long secret")
    assert taken.returncode == 1 and "taken" in taken.stderr
    short = create_admin(stack, "dave-admin", "short")
    assert short.returncode == 2 and "password" in short.stderr


def test_wrong_password_and_unknown_user_are_the_same_401(
    stack: Stack, make_user: ApiUserFactory, anonymous: httpx2.Client
) -> None:
    wrong = anonymous.post("/v1/auth/login", json={"username": stack.admin_username, "password": "not-it-at-all"})
    unknown = anonymous.post("/v1/auth/login", json={"username": "nobody-here", "password": "not-it-at-all"})
    same = problem(wrong, 401, "bad-credentials")["detail"] == problem(unknown, 401, "bad-credentials")["detail"]
    assert same and wrong.json()["detail"] == "wrong username or password"


def test_login_answers_a_token_with_its_expiry(
    stack: Stack, make_user: ApiUserFactory, anonymous: httpx2.Client
) -> None:
    user = make_user()
    me = user.get("/v1/me").json()
    assert me["role"] == "user" and me["url"].endswith(f"/v1/users/{me['id']}")
    answer = anonymous.post("/v1/auth/login", json={"username": stack.admin_username, "password": stack.admin_password})
    body = answer.json()
    assert body["token_type"] == "bearer"
    assert datetime.fromisoformat(body["expires_at"]) > datetime.now(UTC) + timedelta(hours=1)


def test_expired_and_forged_tokens_are_refused(
    stack: Stack, make_user: ApiUserFactory, anonymous: httpx2.Client
) -> None:
    user_id = make_user().get("/v1/me").json()["id"]
    past = datetime.now(UTC) - timedelta(minutes=1)
    expired = jwt.encode({"sub": user_id, "exp": past, "typ": "access"}, stack.auth_secret, algorithm="HS256")
    forged = jwt.encode(
        {"sub": user_id, "exp": past + timedelta(hours=2), "typ": "access"}, "x" * 48, algorithm="HS256"
    )
    for token, detail in ((expired, "expired"), (forged, "not valid"), ("garbage", "not valid")):
        response = anonymous.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert detail in problem(response, 401, "bad-credentials")["detail"]


def test_api_key_works_until_revoked_and_its_secret_is_shown_once(
    make_user: ApiUserFactory, anonymous: httpx2.Client
) -> None:
    user = make_user()
    created = user.post("/v1/keys", json={"name": "pipeline"})
    assert created.status_code == 201
    secret = created.json()["secret"]
    assert secret.startswith("qk_")
    listed = user.get("/v1/keys").json()["items"]
    assert [key["name"] for key in listed] == ["pipeline"] and "secret" not in listed[0]
    assert anonymous.get("/v1/me", headers={"Authorization": f"Bearer {secret}"}).status_code == 200
    assert anonymous.get("/v1/me", headers={"X-API-Key": secret}).status_code == 200
    assert problem(anonymous.get("/v1/me", headers={"X-API-Key": secret[:-2] + "xx"}), 401)
    assert user.delete(f"/v1/keys/{created.json()['id']}").json()["revoked"] is not None
    assert problem(anonymous.get("/v1/me", headers={"X-API-Key": secret}), 401, "bad-credentials")


def test_users_cannot_manage_users(make_user: ApiUserFactory) -> None:
    user = make_user()
    problem(user.post("/v1/users", json={"username": "mallory", "password": "p" * 16}), 403)
    problem(user.get("/v1/users"), 403, "forbidden")


def test_username_taken_is_409_and_disabled_user_cannot_log_in(admin: httpx2.Client, anonymous: httpx2.Client) -> None:
    body = {"username": "carol-dup", "password": "a-long-password"}
    created = admin.post("/v1/users", json=body)
    assert created.status_code == 201
    problem(admin.post("/v1/users", json=body), 409, "duplicate")
    assert admin.delete(f"/v1/users/{created.json()['id']}").json()["disabled"] is True
    problem(anonymous.post("/v1/auth/login", json=body), 401, "bad-credentials")


def test_weak_passwords_and_bad_usernames_are_422(admin: httpx2.Client) -> None:
    errors = problem(admin.post("/v1/users", json={"username": "Bad Name", "password": "short"}), 422)["errors"]
    assert {error["pointer"] for error in errors} == {"/username", "/password"}


def test_another_users_resources_are_404_everywhere(
    stack: Stack, gateway: TestClient, make_user: ApiUserFactory, project: Any
) -> None:
    alice, bob = make_user(), make_user()
    file = alice.post("/v1/files", params={"name": "grid.csv"}, content=b"1,2,3\n4,5,6\n7,8,9\n").json()
    job = alice.post("/v1/jobs", json={"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file["id"]}})
    key = alice.post("/v1/keys", json={"name": "alice-key"}).json()
    job_id, alice_id = job.json()["id"], alice.get("/v1/me").json()["id"]
    for path in (
        f"/v1/files/{file['id']}",
        f"/v1/jobs/{job_id}",
        f"/v1/jobs/{job_id}/archive",
        f"/v1/keys/{key['id']}",
        f"/v1/users/{alice_id}",
    ):
        problem(bob.get(path), 404)
    problem(bob.delete(f"/v1/keys/{key['id']}"), 404)
    stolen = bob.post("/v1/jobs", json={"app": "flood", "inputs": {"elevation": file["id"]}})
    problem(stolen, 404)
    for listing in ("/v1/files", "/v1/jobs", "/v1/keys"):
        assert bob.get(listing).json()["items"] == []
    with gateway_client(gateway) as admin:
        log_in(admin, stack.admin_username, stack.admin_password)
        assert admin.get(f"/v1/jobs/{job_id}").json()["owner"] == alice_id


GLOBAL_PARAMS = {"name"}  # apps are shared by everyone; every other path id names someone's resource


def test_every_endpoint_on_another_users_resources_is_404_and_changes_nothing(
    env: dict[str, str], make_user: ApiUserFactory
) -> None:
    alice, bob = make_user(), make_user()
    file = alice.post("/v1/files", params={"name": "grid.csv"}, content=b"1,2,3\n4,5,6\n7,8,9\n").json()
    job = alice.post("/v1/jobs", json={"app": "flood", "params": {"steps": 2}, "inputs": {"elevation": file["id"]}})
    upload = alice.post("/v1/uploads", json={"name": "x.bin", "size": 3, "sha256": "0" * 64}).json()
    ids = {
        "file_id": file["id"],
        "job_id": job.json()["id"],
        "key_id": alice.post("/v1/keys", json={"name": "k"}).json()["id"],
        "upload_id": upload["id"],
        "dataset_id": make_dataset(alice, "alices-data"),
        "user_id": alice.get("/v1/me").json()["id"],
        "queue_id": alice.post("/v1/queues", json={"name": "alices-queue"}).json()["id"],
        "webhook_id": alice_webhook(alice),
        "id": alice_task(alice),  # a GA4GH TES task's id
    }
    walked = 0
    for method, template in every_endpoint(env, fill=False):
        names = set(re.findall(r"{(\w+)}", template))
        if not names or names & GLOBAL_PARAMS:
            continue
        path = template
        for name in names:
            path = path.replace("{" + name + "}", ids[name])
        response = bob.request(method, path, json={} if method in {"POST", "PATCH", "PUT"} else None)
        assert response.status_code == 404, (method, template, response.status_code, response.text)
        walked += 1
    assert walked >= 14
    owned = (
        ("file_id", "/v1/files/{}"),
        ("job_id", "/v1/jobs/{}"),
        ("upload_id", "/v1/uploads/{}"),
        ("dataset_id", "/v1/datasets/{}"),
        ("queue_id", "/v1/queues/{}"),
    )
    for name, path in owned:
        assert alice.get(path.format(ids[name])).status_code == 200, name
    assert alice.get(f"/v1/queues/{ids['queue_id']}").json()["paused"] is False
    assert alice.get(f"/v1/keys/{ids['key_id']}").json()["revoked"] is None
    assert alice.get(f"/v1/webhooks/{ids['webhook_id']}").status_code == 200
    assert alice.get(f"/ga4gh/tes/v1/tasks/{ids['id']}").json()["state"] == "QUEUED"


def alice_task(alice: httpx2.Client) -> str:
    executors = [{"image": "localhost/quern-tes:1", "command": ["true"]}]
    task_id: str = alice.post("/ga4gh/tes/v1/tasks", json={"executors": executors}).json()["id"]
    return task_id


def alice_webhook(alice: httpx2.Client) -> str:
    assert alice.post("/v1/webhook-secret").status_code == 201
    webhook_id: str = alice.post("/v1/webhooks", json={"url": "https://hooks.example.com/alice"}).json()["id"]
    return webhook_id


def test_lists_are_paginated_with_an_opaque_cursor(make_user: ApiUserFactory) -> None:
    user = make_user()
    ids = [user.post("/v1/files", params={"name": f"f{i}.txt"}, content=b"x").json()["id"] for i in range(5)]
    first = user.get("/v1/files", params={"limit": 2}).json()
    assert [item["id"] for item in first["items"]] == ids[::-1][:2]
    second = user.get(first["next"]).json()
    third = user.get("/v1/files", params={"limit": 2, "cursor": second["next_cursor"]}).json()
    assert [item["id"] for item in second["items"] + third["items"]] == ids[::-1][2:]
    assert third["next_cursor"] is None and third["next"] is None
    problem(user.get("/v1/files", params={"cursor": "not-a-cursor"}), 400)
    problem(user.get("/v1/files", params={"limit": 0}), 400)
    problem(user.get("/v1/files", params={"limit": 501}), 400)
