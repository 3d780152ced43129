"""The web UI driven by plain HTTP, as a browser without scripts would: its login form, tokens and cookies."""

from __future__ import annotations

import html
import re
from typing import TypeVar

import httpx
import httpx2

AnyClient = TypeVar("AnyClient", httpx.Client, httpx2.Client)
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(page: str) -> str:
    """The CSRF token in the first form of a page."""
    found = _CSRF.search(page)
    assert found, "no CSRF token in the page"
    return html.unescape(found.group(1))


def ui_log_in(client: AnyClient, username: str, password: str) -> AnyClient:
    """``client`` signed in to the UI through its login form (its cookie jar holds the session)."""
    form = client.get("/ui/login")
    assert form.status_code == 200, form.text
    answer = client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "username": username, "password": password, "next": ""}
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/jobs"
    return client
