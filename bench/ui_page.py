"""The web UI's jobs page against the native list: the same page of 50 jobs, HTML against JSON.

One client signs in through the login form (a session cookie), another holds a bearer token; they
fetch ``/ui/jobs`` and ``GET /v1/jobs?limit=50`` in alternating rounds of sequential requests,
and the best round's median of each counts. The UI renders its page with Jinja2 and also counts
the owner's jobs per state; the goal is that it costs at most 1.3 times the native list.
"""

from __future__ import annotations

import re
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.harness import admin_client, row
from bench.latency import TRUE_APP
from devstack.stack import Stack

PAGE = 50
GOAL = 1.3
TOKEN = re.compile(r'name="csrf" value="([^"]+)"')


def ui_client(stack: Stack) -> httpx.Client:
    """A client signed in to the web UI as the stack's admin, through the login form."""
    client = httpx.Client(base_url=stack.gateway_url, timeout=60, headers={"Origin": stack.gateway_url})
    form = client.get("/ui/login")
    found = TOKEN.search(form.text)
    assert form.status_code == 200 and found is not None, form.text[:500]
    body = {"username": stack.admin_username, "password": stack.admin_password, "csrf": found.group(1)}
    signed_in = client.post("/ui/login", data=body)
    assert signed_in.status_code == 303, signed_in.text[:500]
    return client


def median_ms(client: httpx.Client, path: str, requests: int) -> float:
    """The median time of ``requests`` sequential GETs of ``path``, in milliseconds."""
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        answer = client.get(path)
        times.append((time.perf_counter() - started) * 1000)
        assert answer.status_code == 200, answer.text[:500]
    return statistics.median(times)


def measure(stack: Stack, work: Path, *, rounds: int = 3, requests: int = 30) -> list[dict[str, Any]]:
    """The UI row: the jobs page's median time against the native list's, for a page of 50."""
    with admin_client(stack) as native:
        answer = native.post("/v1/apps", json=TRUE_APP)
        assert answer.status_code in (201, 409), answer.text
        listed = native.get("/v1/jobs", params={"limit": PAGE}).json()["items"]
        for _ in range(PAGE - len(listed)):
            native.post("/v1/jobs", json={"app": TRUE_APP["name"]}).raise_for_status()
        assert len(native.get("/v1/jobs", params={"limit": PAGE}).json()["items"]) == PAGE
        ui = ui_client(stack)
        try:
            ours, theirs = [], []
            for _ in range(rounds):
                theirs.append(median_ms(native, f"/v1/jobs?limit={PAGE}", requests))
                ours.append(median_ms(ui, "/ui/jobs", requests))
        finally:
            ui.close()
    best, base = min(ours), min(theirs)
    return [
        row(
            f"UI jobs page, {PAGE} jobs, p50 (ms)",
            best,
            base,
            base / best,
            f"<= {GOAL:g}x native",
            best <= GOAL * base,
            rounds={"ui": [round(x, 1) for x in ours], "native": [round(x, 1) for x in theirs]},
        )
    ]
