"""Login limits and the password-hashing pool, through a gateway of their own with tight limits.

Each client address is sent as ``X-Forwarded-For`` through uvicorn's own proxy-headers
middleware, as a gateway behind a trusted proxy sees it; each test uses addresses of its own.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from devstack.stack import Stack
from services.gateway.app import create_app
from shared.settings import GatewaySettings, load
from tests.helpers.clients import add_user, gateway_client, problem
from tests.helpers.ui_forms import csrf_of, ui_log_in

LIMITS = {
    "RUN_SCHEDULER": "false",
    "LOGIN_ADDRESS_BURST": "6",
    "LOGIN_ADDRESS_REFILL_SECONDS": "600",
    "LOGIN_ACCOUNT_BURST": "3",
    "LOGIN_ACCOUNT_REFILL_SECONDS": "1",
    "PASSWORD_HASH_THREADS": "1",
    "PASSWORD_HASH_QUEUE": "1",
}


@pytest.fixture(scope="module")
def guarded(stack: Stack) -> Iterator[TestClient]:
    """A gateway with tight login limits and a one-thread hashing pool, behind a trusted proxy."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (stack.env() | LIMITS).items():
            patch.setenv(name, value)
        settings = load(GatewaySettings)
    with TestClient(ProxyHeadersMiddleware(create_app(settings), trusted_hosts="*")) as client:  # type: ignore[arg-type]
        yield client


def address() -> str:
    """A client address no other test uses."""
    return f"2001:db8::{uuid.uuid4().hex[:4]}"


def login(client: httpx2.Client, username: str, password: str, source: str) -> httpx2.Response:
    body = {"username": username, "password": password}
    return client.post("/v1/auth/login", json=body, headers={"X-Forwarded-For": source})


@pytest.fixture
def user(admin: httpx2.Client) -> tuple[str, str]:
    return add_user(admin)


def test_failed_logins_to_an_account_are_refused_with_429_and_retry_after(
    guarded: TestClient, user: tuple[str, str]
) -> None:
    username, source = user[0], address()
    with gateway_client(guarded) as client:
        for _ in range(3):
            problem(login(client, username, "wrong password", source), 401, "bad-credentials")
        refused = login(client, username, "wrong password", source)
    problem(refused, 429, "too-many-logins")
    assert refused.headers["Retry-After"] == "1"


def test_failed_logins_from_an_address_are_refused_whatever_the_account(guarded: TestClient) -> None:
    source = address()
    with gateway_client(guarded) as client:
        for n in range(6):
            problem(login(client, f"nobody-{n}", "wrong password", source), 401, "bad-credentials")
        refused = login(client, "nobody-else", "wrong password", source)
    problem(refused, 429, "too-many-logins")
    assert 590 <= int(refused.headers["Retry-After"]) <= 600


def test_a_right_password_from_another_address_gets_in_while_one_address_floods(
    guarded: TestClient, user: tuple[str, str]
) -> None:
    username, password = user
    flooder, owner = address(), address()
    with gateway_client(guarded) as client:
        flood = [login(client, username, f"guess {n}", flooder).status_code for n in range(40)]
        assert flood[:3] == [401] * 3 and set(flood[3:]) == {429}
        assert login(client, username, password, owner).status_code == 200
        problem(login(client, username, password, flooder), 429, "too-many-logins")  # the flooder stays held


def test_an_accounts_refusal_ends_after_retry_after(guarded: TestClient, user: tuple[str, str]) -> None:
    username, password = user
    source = address()
    with gateway_client(guarded) as client:
        for _ in range(3):
            login(client, username, "wrong password", source)
        refused = login(client, username, password, source)
        problem(refused, 429, "too-many-logins")
        time.sleep(int(refused.headers["Retry-After"]))
        assert login(client, username, password, source).status_code == 200


def test_right_passwords_are_never_limited(guarded: TestClient, user: tuple[str, str]) -> None:
    source = address()
    with gateway_client(guarded) as client:
        assert [login(client, *user, source).status_code for _ in range(10)] == [200] * 10


def test_logins_past_the_hashing_pool_are_refused_at_once_while_the_gateway_answers(
    guarded: TestClient, user: tuple[str, str]
) -> None:
    """One thread hashes and one login waits: of 16 at once, most are 503 busy, and /healthz answers meanwhile."""
    start = threading.Barrier(17)
    answers: list[httpx2.Response] = []

    def log_in_once() -> None:
        with gateway_client(guarded) as client:
            start.wait()
            answers.append(login(client, *user, address()))

    threads = [threading.Thread(target=log_in_once) for _ in range(16)]
    for thread in threads:
        thread.start()
    start.wait()
    with gateway_client(guarded) as client:
        health = [client.get("/healthz").status_code for _ in range(5)]
    for thread in threads:
        thread.join(60)
    assert health == [200] * 5
    statuses = sorted(answer.status_code for answer in answers)
    assert 200 in statuses and 503 in statuses, statuses
    busy = next(answer for answer in answers if answer.status_code == 503)
    problem(busy, 503, "busy")
    assert busy.headers["Retry-After"] == "1"
    assert set(statuses) == {200, 503}


def test_the_ui_sign_in_shows_the_form_with_429_and_retry_after(guarded: TestClient, user: tuple[str, str]) -> None:
    username, password = user
    with gateway_client(guarded) as client:
        client.headers["X-Forwarded-For"] = address()
        for expected in (401, 401, 401, 429):
            form = client.get("/ui/login")
            data = {"csrf": csrf_of(form.text), "username": username, "password": "wrong password"}
            answer = client.post("/ui/login", data=data)
            assert answer.status_code == expected, answer.text
    assert "too many failed logins" in answer.text and 'name="csrf"' in answer.text
    assert answer.headers["Retry-After"] == "1"
    with gateway_client(guarded) as elsewhere:
        elsewhere.headers["X-Forwarded-For"] = address()
        ui_log_in(elsewhere, username, password)
