"""The web UI in headless Chromium against the running stack: sign in, watch a flood job live, its results, safety.

One browser serves the module; each test opens fresh contexts (no cookies). Every request that
would leave the machine is blocked and noted, and the tests check none was made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from devstack.stack import Stack
from tests.helpers.browser import axe_page, axe_violations, log_in_page, new_page, screenshot, sha256_of
from tests.helpers.clients import VALLEY, add_user, client_for, script_app, upload, wait_for
from tests.helpers.stacks import PROJECT

SECONDS = 30_000  # ms: how long an expectation may take to come true
FLOOD_STEPS = 25_000  # a few seconds of routing over the valley: several progress ticks
# Prints a numbered line every 0.3 s, with progress, for a minute: a running job with a live log ({} would be a
# command placeholder).
CHATTY = """
import time
for i in range(200):
    print("line %d: routing the water a little further" % i, flush=True)
    print('##quern progress %d "step %d"' % (i // 2, i), flush=True)
    time.sleep(0.3)
"""


@dataclass
class Person:
    """A user of the stack: their name and password for the login form, and an API client as them."""

    username: str
    password: str
    api: httpx.Client


@pytest.fixture(scope="module")
def make_person(stack: Stack, admin: httpx.Client) -> Iterator[Callable[[], Person]]:
    people: list[Person] = []

    def make() -> Person:
        username, password = add_user(admin)
        people.append(Person(username, password, client_for(stack.gateway_url, username, password)))
        return people[-1]

    yield make
    for person in people:
        person.api.close()


@pytest.fixture
def signed_in(browser: Browser, stack: Stack) -> Iterator[Callable[[Person], Page]]:
    """Opens a page of the stack in a fresh context, signed in as someone through the login form.

    At the end every context is closed, and no page may have tried to reach off the machine.
    """
    blocked: list[str] = []
    with ExitStack() as opened:

        def sign_in(who: Person) -> Page:
            page = opened.enter_context(new_page(browser, stack.gateway_url, blocked=blocked))
            log_in_page(page, who.username, who.password)
            return page

        yield sign_in
    assert blocked == [], f"pages reached off the machine: {blocked}"


def held_flood(owner: Person) -> tuple[dict[str, object], str]:
    """A flood job of ``owner``'s waiting in a paused queue of theirs: (the job, the queue's id)."""
    queue = owner.api.post("/v1/queues", json={"name": "held"}).json()
    assert owner.api.post(f"/v1/queues/{queue['id']}/pause").status_code == 200
    grid = upload(owner.api, "valley.csv", (PROJECT / VALLEY).read_bytes())
    answer = owner.api.post(
        "/v1/jobs",
        json={
            "app": "flood",
            "name": "valley flood",
            "params": {"rain_mm": 80, "steps": FLOOD_STEPS},
            "inputs": {"elevation": grid["id"]},
            "queue": "held",
            "tags": ["demo"],
        },
    )
    assert answer.status_code == 201, answer.text
    return answer.json(), queue["id"]


def job_state(page: Page) -> tuple[str, float]:
    """The job page's state badge and progress bar, as the browser shows them."""
    shown = page.evaluate("[document.getElementById('state').textContent, document.getElementById('progress').value]")
    return shown[0], float(shown[1])


def test_a_flood_job_goes_from_queued_to_succeeded_live_with_its_map_and_archive(
    signed_in: Callable[[Person], Page], make_person: Callable[[], Person]
) -> None:
    alice = make_person()
    job, queue_id = held_flood(alice)
    jobs_page = signed_in(alice)
    row = jobs_page.locator(f'tr[data-job="{job["id"]}"] [data-role="state"]')
    expect(row).to_have_text("QUEUED")
    page = jobs_page.context.new_page()
    page.goto(f"/ui/jobs/{job['id']}")
    page.evaluate("window.sameDocument = true")  # gone if the page reloads
    expect(page.locator("#state")).to_have_text("QUEUED")
    assert alice.api.post(f"/v1/queues/{queue_id}/resume").status_code == 200

    seen: list[tuple[str, float]] = []
    while not seen or seen[-1][0] != "SUCCEEDED":
        state, percent = job_state(page)
        if not seen or seen[-1] != (state, percent):
            seen.append((state, percent))
        assert len(seen) < 2000, seen
        page.wait_for_timeout(50)
    states = list(dict.fromkeys(state for state, _ in seen))
    assert states == ["QUEUED", "RUNNING", "SUCCEEDED"], seen
    moving = {percent for state, percent in seen if state == "RUNNING" and 0 < percent < 100}
    assert len(moving) >= 2, f"the progress bar did not move while running: {seen}"
    assert page.evaluate("window.sameDocument") is True

    expect(row).to_have_text("SUCCEEDED", timeout=SECONDS)
    assert jobs_page.evaluate("document.querySelector('[data-count=\"SUCCEEDED\"] .n').textContent") == "1"
    screenshot(jobs_page, "jobs")

    image = page.locator("img.preview-image")
    expect(image).to_be_visible(timeout=SECONDS)
    page.wait_for_function("document.querySelector('img.preview-image').naturalWidth > 0", timeout=SECONDS)
    csv_rows = page.locator('[data-preview="csv"] table.csv tr')
    expect(csv_rows.first).to_be_visible(timeout=SECONDS)
    assert csv_rows.count() >= 3
    expect(page.locator('[data-preview="json"] pre')).to_contain_text('"flooded_cells"', timeout=SECONDS)
    expect(page.locator("#archive")).to_be_visible(timeout=SECONDS)
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "job-finished")

    with page.expect_download() as download:
        page.locator("#archive").click()
    stored = wait_for(alice.api, str(job["id"]))["archive"]
    assert sha256_of(download.value.path()) == stored["sha256"]


def test_a_running_job_shows_its_live_log_and_is_canceled_from_its_page(
    signed_in: Callable[[Person], Page], admin: httpx.Client, make_person: Callable[[], Person]
) -> None:
    chatty = script_app(admin, CHATTY, args=[], text_param=False, outputs=["done.txt"])
    bob = make_person()
    job = bob.api.post("/v1/jobs", json={"app": chatty, "name": "chatty"}).json()
    page = signed_in(bob)
    page.goto(f"/ui/jobs/{job['id']}")
    expect(page.locator("#state")).to_have_text("RUNNING", timeout=SECONDS)
    expect(page.locator("#log")).to_contain_text("line 3", timeout=SECONDS)
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#log")).to_contain_text("line 6", timeout=SECONDS)  # followed, not reloaded
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "job-running")
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_url(f"**/ui/jobs/{job['id']}")
    expect(page.locator("#state")).to_have_text("CANCELED", timeout=SECONDS)
    assert wait_for(bob.api, job["id"])["state"] == "CANCELED"


def test_another_users_job_url_is_404(signed_in: Callable[[Person], Page], make_person: Callable[[], Person]) -> None:
    alice, bob = make_person(), make_person()
    job, _ = held_flood(alice)
    page = signed_in(bob)
    answer = page.goto(f"/ui/jobs/{job['id']}")
    assert answer is not None and answer.status == 404
    expect(page.locator("h1")).to_have_text("Not found")


def test_a_form_posted_without_its_csrf_token_is_refused(
    signed_in: Callable[[Person], Page], make_person: Callable[[], Person]
) -> None:
    alice = make_person()
    job, _ = held_flood(alice)
    page = signed_in(alice)
    page.goto(f"/ui/jobs/{job['id']}")
    page.evaluate("document.querySelector('#cancel-form input[name=csrf]').remove()")
    with page.expect_navigation() as refused:
        page.get_by_role("button", name="Cancel").click()
    assert refused.value is not None and refused.value.status == 403
    assert alice.api.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"


def test_logging_out_ends_the_session(
    browser: Browser, stack: Stack, signed_in: Callable[[Person], Page], make_person: Callable[[], Person]
) -> None:
    page = signed_in(make_person())
    cookies = page.context.cookies()
    assert any(c["name"] == "quern_session" and c["httpOnly"] and c["sameSite"] == "Lax" for c in cookies)
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url("**/ui/login")
    with new_page(browser, stack.gateway_url) as again:
        again.context.add_cookies(cookies)  # type: ignore[arg-type]
        again.goto("/ui/jobs")
        assert again.url.endswith("/ui/login?next=/jobs")


def test_a_flood_job_is_submitted_through_the_generated_form_with_an_uploaded_grid(
    signed_in: Callable[[Person], Page], make_person: Callable[[], Person]
) -> None:
    alice = make_person()
    page = signed_in(alice)
    page.get_by_role("link", name="Submit").click()
    page.get_by_role("link", name="flood").click()
    expect(page.get_by_label("steps")).to_have_value("400")
    page.get_by_label("or upload one").set_input_files(str(PROJECT / VALLEY))
    expect(page.locator(".upload [role=status]")).to_have_text("Uploaded valley.csv.", timeout=SECONDS)
    assert page.eval_on_selector(".upload progress", "bar => bar.value") == 100
    page.get_by_label("rain_mm").fill("0")  # the browser allows it (min 0); the schema wants more than 0
    page.get_by_label("Name", exact=True).fill("from the form")
    screenshot(page, "submit")
    with page.expect_navigation() as refused:
        page.get_by_role("button", name="Submit", exact=True).click()
    assert refused.value is not None and refused.value.status == 422
    expect(page.locator("#p-rain_mm-error")).to_contain_text("0", timeout=SECONDS)
    assert page.get_by_label("rain_mm").get_attribute("aria-invalid") == "true"
    assert page.locator("#i-elevation").evaluate("select => select.selectedOptions[0].text").startswith("valley")
    page.get_by_label("rain_mm").fill("60")
    page.get_by_role("button", name="Submit", exact=True).click()
    page.wait_for_url("**/ui/jobs/*")
    expect(page.locator("h1")).to_have_text("from the form")
    expect(page.locator("#state")).to_have_text("SUCCEEDED", timeout=SECONDS)
    expect(page.locator("img.preview-image")).to_be_visible(timeout=SECONDS)
    jobs = alice.api.get("/v1/jobs").json()["items"]
    assert [(job["name"], job["params"]["rain_mm"]) for job in jobs] == [("from the form", 60)]


def test_a_queue_is_paused_and_resumed_from_the_queues_page(
    signed_in: Callable[[Person], Page], make_person: Callable[[], Person]
) -> None:
    alice = make_person()
    assert alice.api.post("/v1/queues", json={"name": "nightly"}).status_code == 201
    page = signed_in(alice)
    page.get_by_role("link", name="Queues").click()
    status = page.locator('tr[data-queue="nightly"] [data-role="status"]')
    expect(status).to_have_text("running")
    page.get_by_role("button", name="Pause nightly").click()
    expect(status).to_have_text("paused")
    queue = next(q for q in alice.api.get("/v1/queues").json()["items"] if q["name"] == "nightly")
    assert queue["paused"] is True
    page.get_by_role("button", name="Resume nightly").click()
    expect(status).to_have_text("running")
    assert alice.api.get(f"/v1/queues/{queue['id']}").json()["paused"] is False
    page.get_by_role("link", name="Cluster").click()
    expect(page.locator("h1")).to_have_text("Cluster")
    expect(page.locator("table").first).to_contain_text("alive", timeout=SECONDS)


def test_the_api_reference_renders_with_every_request_off_the_machine_blocked(browser: Browser, stack: Stack) -> None:
    blocked: list[str] = []
    violations: list[str] = []
    with new_page(browser, stack.gateway_url, blocked=blocked) as page:
        page.on(
            "console", lambda message: violations.append(message.text) if "Content Security" in message.text else None
        )
        page.goto("/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("quern")
        operations = page.locator(".opblock")
        expect(operations.first).to_be_visible()
        assert operations.count() > 50  # every operation of the native API is listed
    assert blocked == [] and violations == []


def test_the_pages_meet_wcag_2_aa_as_axe_checks_them(
    browser: Browser, stack: Stack, admin: httpx.Client, make_person: Callable[[], Person]
) -> None:
    person = make_person()
    app = script_app(admin, "open('out.txt', 'w').write('ok')", args=[], text_param=False, outputs=["out.txt"])
    job = wait_for(person.api, person.api.post("/v1/jobs", json={"app": app}).json()["id"])
    found = {}
    with axe_page(browser, stack.gateway_url) as page:
        page.goto("/ui/login")
        found["/ui/login"] = axe_violations(page)
        log_in_page(page, person.username, person.password)
        for path in (
            "/ui/jobs",
            f"/ui/jobs/{job['id']}",
            "/ui/submit",
            "/ui/submit/flood",
            "/ui/queues",
            "/ui/cluster",
            "/ui/account",
        ):
            page.goto(path)
            found[path] = axe_violations(page)
    assert found == {path: [] for path in found}, found  # every impact, minor included


def test_the_pages_fit_a_phone_width_screen(
    browser: Browser, stack: Stack, admin: httpx.Client, make_person: Callable[[], Person]
) -> None:
    person = make_person()
    app = script_app(admin, "open('out.txt', 'w').write('ok')", args=[], text_param=False, outputs=["out.txt"])
    job = wait_for(person.api, person.api.post("/v1/jobs", json={"app": app}).json()["id"])
    with new_page(browser, stack.gateway_url) as page:
        page.set_viewport_size({"width": 390, "height": 844})
        log_in_page(page, person.username, person.password)
        wide = {}
        pages = ("/ui/jobs", f"/ui/jobs/{job['id']}", "/ui/submit/flood", "/ui/files", "/ui/datasets", "/ui/keys")
        for path in (*pages, "/ui/queues", "/ui/cluster", "/ui/account"):
            page.goto(path)
            # Wide tables scroll inside their own box; the page itself never scrolls sideways.
            wide[path] = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide == {path: 0 for path in wide}, wide
