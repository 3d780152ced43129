"""The gateway behind a TLS proxy: X-Forwarded-Proto and -For are believed from FORWARDED_ALLOW_IPS alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import http_ok, wait_until
from devstack.stack import Stack
from tests.helpers.clients import client_for
from tests.helpers.stacks import own_stack, stop_all

FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}


def gateway_trusting(servers: Stack, state_dir: Path, allowed: str) -> Iterator[Stack]:
    """A gateway of its own (no workers: nothing here runs a job) believing forwarded headers from ``allowed``."""
    stack = own_stack(servers, state_dir, "forwarded", FORWARDED_ALLOW_IPS=allowed)
    gateway = stack.services()[0]
    try:
        gateway.start()
        wait_until(lambda: http_ok(f"{stack.gateway_url}/readyz"), "the gateway's /readyz", timeout=60, process=gateway)
        yield stack
    finally:
        stop_all([gateway])


@pytest.fixture
def behind_proxy(servers: Stack, tmp_path: Path) -> Iterator[Stack]:
    yield from gateway_trusting(servers, tmp_path, "127.0.0.1")  # the tests' requests come from the proxy's address


@pytest.fixture
def reached_directly(servers: Stack, tmp_path: Path) -> Iterator[Stack]:
    yield from gateway_trusting(servers, tmp_path, "10.254.254.2")  # a proxy elsewhere: these requests bypass it


def me(stack: Stack) -> dict[str, Any]:
    """``GET /v1/me`` as the admin, sent with the headers a proxy adds."""
    api = client_for(stack.gateway_url, stack.admin_username, stack.admin_password)
    try:
        found: dict[str, Any] = api.get("/v1/me", headers=FORWARDED).json()
        return found
    finally:
        api.close()


def test_links_take_the_proxys_scheme_when_it_is_the_one_asking(behind_proxy: Stack) -> None:
    assert me(behind_proxy)["url"].startswith("https://")


def test_forwarded_headers_from_anyone_else_are_ignored(reached_directly: Stack) -> None:
    assert me(reached_directly)["url"].startswith("http://127.0.0.1:")
