"""The UI's admin pages, rerun form and queue repairs in headless Chromium against the running stack.

One browser serves the module; each test opens fresh contexts (no cookies). Every request that
would leave the machine is blocked and noted, and the tests check none was made.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from devstack.stack import Stack
from tests.helpers.browser import axe_page, axe_violations, log_in_page, new_page
from tests.helpers.clients import VALLEY, add_user, client_for, upload
from tests.helpers.stacks import PROJECT

Person = tuple[str, str, httpx.Client]  # username, password, an API client as them


@pytest.fixture(scope="module")
def make_person(stack: Stack, admin: httpx.Client) -> Iterator[Callable[[], Person]]:
    people: list[Person] = []

    def make() -> Person:
        username, password = add_user(admin)
        people.append((username, password, client_for(stack.gateway_url, username, password)))
        return people[-1]

    yield make
    for _, _, api in people:
        api.close()


@pytest.fixture
def signed_in(browser: Browser, stack: Stack) -> Iterator[Callable[[str, str], Page]]:
    """Opens a page in a fresh context signed in through the login form; no page may reach off the machine."""
    blocked: list[str] = []
    with ExitStack() as opened:

        def sign_in(username: str, password: str) -> Page:
            page = opened.enter_context(new_page(browser, stack.gateway_url, blocked=blocked))
            log_in_page(page, username, password)
            return page

        yield sign_in
    assert blocked == [], f"pages reached off the machine: {blocked}"


@pytest.fixture
def as_admin(signed_in: Callable[[str, str], Page], stack: Stack) -> Page:
    return signed_in(stack.admin_username, stack.admin_password)


def held_flood(owner: httpx.Client, queue: str) -> dict[str, Any]:
    """A flood job of ``owner``'s waiting in a new paused queue of theirs."""
    made = owner.post("/v1/queues", json={"name": queue}).json()
    assert owner.post(f"/v1/queues/{made['id']}/pause").status_code == 200
    grid = upload(owner, "valley.csv", (PROJECT / VALLEY).read_bytes())
    answer = owner.post(
        "/v1/jobs",
        json={"app": "flood", "params": {"rain_mm": 80}, "inputs": {"elevation": grid["id"]}, "queue": queue},
    )
    assert answer.status_code == 201, answer.text
    return answer.json()  # type: ignore[no-any-return]


def test_an_admin_creates_a_user_who_can_then_log_in(
    as_admin: Page, signed_in: Callable[[str, str], Page], admin: httpx.Client
) -> None:
    as_admin.get_by_role("link", name="Users").click()
    username, password = f"u{uuid.uuid4().hex[:10]}", "a-long-password-7"
    as_admin.locator("#nu-username").fill(username)
    as_admin.locator("#nu-password").fill(password)
    as_admin.get_by_role("button", name="Create").click()
    expect(as_admin.locator(f'tr[data-user="{username}"] [data-role="status"]')).to_have_text("enabled")
    newcomer = signed_in(username, password)
    expect(newcomer.locator(".who")).to_have_text(username)
    expect(newcomer.get_by_role("link", name="Users")).to_have_count(0)  # not an admin: no admin links


def test_an_admin_registers_an_app_from_json_and_disables_it(as_admin: Page, admin: httpx.Client) -> None:
    as_admin.get_by_role("link", name="Apps").click()
    as_admin.locator("#definition").fill('{"name": "broken"}')
    as_admin.get_by_role("button", name="Register").click()
    expect(as_admin.locator("#errors")).to_contain_text("/version")
    name = f"echo-{uuid.uuid4().hex[:6]}"
    definition = {
        "name": name,
        "version": "1.0.0",
        "description": "Says hello.",
        "command": ["{python}", "-c", "open('hello.txt', 'w').write('hi')"],
        "parameters": {"type": "object", "additionalProperties": False, "properties": {}},
        "outputs": ["hello.txt"],
        "timeout": {"default": 60, "max": 60},
    }
    as_admin.locator("#definition").fill(json.dumps(definition))
    as_admin.get_by_role("button", name="Register").click()
    status = as_admin.locator(f'tr[data-app="{name}"][data-version="1.0.0"] [data-role="status"]')
    expect(status).to_have_text("enabled")
    as_admin.get_by_role("button", name=f"Disable {name} 1.0.0").click()
    expect(status).to_have_text("disabled")
    assert admin.get(f"/v1/apps/{name}").json()["disabled"] is True


def test_an_admin_forces_a_stuck_job_failed_with_a_reason_shown_in_its_history(
    as_admin: Page, make_person: Callable[[], Person]
) -> None:
    _, _, owner = make_person()
    job = held_flood(owner, "stuck")
    as_admin.goto(f"/ui/jobs/{job['id']}")
    expect(as_admin.locator("#state")).to_have_text("QUEUED")
    as_admin.get_by_text("Force the state (admin)").click()
    as_admin.locator("#force-state").select_option("FAILED")
    as_admin.locator("#force-reason").fill("stuck behind a paused queue for a week")
    as_admin.get_by_role("button", name="Force").click()
    expect(as_admin.locator("#state")).to_have_text("FAILED")
    history = as_admin.locator('section[aria-labelledby="history-h"]')
    expect(history).to_contain_text("QUEUED → FAILED by admin: stuck behind a paused queue for a week")
    assert owner.get(f"/v1/jobs/{job['id']}").json()["state"] == "FAILED"


def test_a_job_run_again_with_an_edited_parameter_makes_a_job_with_it(
    signed_in: Callable[[str, str], Page], make_person: Callable[[], Person]
) -> None:
    username, password, api = make_person()
    job = held_flood(api, "held")
    page = signed_in(username, password)
    page.goto(f"/ui/jobs/{job['id']}")
    page.get_by_role("link", name="Run again…").click()
    expect(page.locator("#p-rain_mm")).to_have_value("80")
    page.locator("#p-rain_mm").fill("0")
    page.get_by_role("button", name="Run again").click()
    expect(page.locator("#p-rain_mm-error")).to_be_visible()  # beside its field
    page.locator("#p-rain_mm").fill("120")
    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(re.compile(r".*/ui/jobs/(?!" + job["id"] + r")\w+$"))
    new_id = page.url.rsplit("/", 1)[1]
    new = api.get(f"/v1/jobs/{new_id}").json()
    assert new["params"]["rain_mm"] == 120 and new["rerun_of"] == job["id"] and new["queue"] == "held"


def test_failed_jobs_are_retried_from_the_queues_page(
    signed_in: Callable[[str, str], Page], make_person: Callable[[], Person], admin: httpx.Client
) -> None:
    username, password, api = make_person()
    job = held_flood(api, "flaky")
    forced = admin.post(f"/v1/jobs/{job['id']}/state", json={"state": "FAILED", "reason": "a flaky node"})
    assert forced.status_code == 200, forced.text
    page = signed_in(username, password)
    page.get_by_role("link", name="Queues").click()
    page.get_by_role("button", name="Retry failed jobs of flaky").click()
    expect(page.locator("#message")).to_have_text("Queue flaky: 1 failed jobs put back to QUEUED.")
    assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"


def test_these_pages_meet_wcag_2_aa_as_axe_checks_them(
    browser: Browser, stack: Stack, make_person: Callable[[], Person]
) -> None:
    _, _, owner = make_person()
    job = held_flood(owner, "checked")
    found = {}
    with axe_page(browser, stack.gateway_url) as page:
        log_in_page(page, stack.admin_username, stack.admin_password)
        for path in (
            "/ui/admin/users",
            "/ui/admin/apps",
            "/ui/keys",
            "/ui/queues",
            f"/ui/jobs/{job['id']}",
            f"/ui/jobs/{job['id']}/rerun",
        ):
            page.goto(path)
            found[path] = axe_violations(page)
    assert found == {path: [] for path in found}, found  # every impact, minor included
