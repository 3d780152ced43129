"""The web UI's security model through the in-process gateway: sessions, CSRF, headers and isolation."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx2
import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from devstack.stack import Stack
from services.gateway.app import create_app
from shared.settings import GatewaySettings, load
from tests.helpers.clients import ApiUserFactory, add_user, gateway_client, log_in, tiny_job
from tests.helpers.ui_forms import csrf_of, ui_log_in

FAKE_ID = "01aaaaaaaaaaaaaaaaaaaaaaaa"
SAFE = {"GET", "HEAD"}


def ui_routes(env: dict[str, str]) -> list[tuple[str, str]]:
    """(method, path) of every page and action of the UI, ids filled with a well-formed fake."""
    app = create_app(load(GatewaySettings))
    (ui,) = [route for route in app.routes if isinstance(route, Mount) and route.name == "ui"]
    found = []
    for route in ui.routes:
        if isinstance(route, Route):
            path = re.sub(r"{\w+}", FAKE_ID, "/ui" + route.path)
            found += [(method, path) for method in sorted(route.methods or []) if method != "HEAD"]
    return found


@pytest.fixture
def user(gateway: TestClient, admin: httpx2.Client) -> Iterator[tuple[httpx2.Client, str, str]]:
    """A new user's UI client (not signed in yet), username and password."""
    username, password = add_user(admin)
    with gateway_client(gateway) as client:
        yield client, username, password


def test_every_answer_carries_a_strict_content_security_policy(anonymous: httpx2.Client) -> None:
    answer = anonymous.get("/ui/login")
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["referrer-policy"] == "same-origin"
    assert "<script>" not in answer.text and "style=" not in answer.text


def test_the_policy_lets_pages_load_previews_from_the_object_store_only(anonymous: httpx2.Client, stack: Stack) -> None:
    policy = anonymous.get("/ui/login").headers["content-security-policy"]
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["img-src"] == f"'self' {stack.s3_url.rstrip('/')}"
    assert directives["connect-src"] == f"'self' {stack.s3_url.rstrip('/')}"


def test_pages_without_a_session_send_the_browser_to_the_login_page(
    env: dict[str, str], anonymous: httpx2.Client
) -> None:
    walked = 0
    for method, path in ui_routes(env):
        if path == "/ui/login":
            continue
        answer = anonymous.request(method, path)
        if method in SAFE:
            assert answer.status_code == 303, (method, path, answer.status_code)
            assert answer.headers["location"].startswith("/ui/login?next=")
        else:
            assert answer.status_code == 401, (method, path, answer.status_code)
        walked += 1
    assert walked >= 9


def test_a_bearer_token_does_not_open_the_ui(make_user: ApiUserFactory) -> None:
    client = make_user()
    assert client.get("/v1/me").status_code == 200
    assert client.get("/ui/jobs").status_code == 303


def test_signing_in_sets_an_http_only_same_site_cookie_and_opens_the_jobs_page(
    user: tuple[httpx2.Client, str, str],
) -> None:
    client, username, password = user
    form = client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": csrf_of(form.text), "username": username, "password": password})
    cookie = next(value for name, value in answer.headers.multi_items() if value.startswith("quern_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    page = client.get("/ui/jobs")
    assert page.status_code == 200 and username in page.text


def test_a_wrong_password_shows_the_form_again(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, _ = user
    form = client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": csrf_of(form.text), "username": username, "password": "nope"})
    assert answer.status_code == 401 and "wrong username or password" in answer.text
    assert client.get("/ui/jobs").status_code == 303


def test_a_login_post_without_its_form_token_is_refused(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, password = user
    client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": "forged", "username": username, "password": password})
    assert answer.status_code == 403


def test_every_change_without_the_csrf_token_is_refused(
    env: dict[str, str], user: tuple[httpx2.Client, str, str]
) -> None:
    client, username, password = user
    ui_log_in(client, username, password)
    changes = [(method, path) for method, path in ui_routes(env) if method not in SAFE and path != "/ui/login"]
    assert len(changes) >= 4
    for method, path in changes:
        assert client.request(method, path, data={"csrf": "forged"}).status_code == 403, path
        assert client.request(method, path).status_code == 403, path
        assert client.request(method, path, headers={"X-CSRF-Token": ""}).status_code == 403, path
    assert client.get("/ui/jobs").status_code == 200  # still signed in: nothing was done


def test_a_change_from_another_site_is_refused_even_with_the_token(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, password = user
    token = csrf_of(ui_log_in(client, username, password).get("/ui/jobs").text)
    answer = client.post("/ui/logout", data={"csrf": token}, headers={"Origin": "https://evil.example"})
    assert answer.status_code == 403
    assert client.get("/ui/jobs").status_code == 200


def test_another_users_job_page_is_404(
    make_user: ApiUserFactory, user: tuple[httpx2.Client, str, str], admin: httpx2.Client
) -> None:
    alice = make_user()
    job = tiny_job(alice)
    client, username, password = user
    ui_log_in(client, username, password)
    assert client.get(f"/ui/jobs/{job['id']}").status_code == 404
    assert client.get(f"/ui/jobs/{job['id']}/results").status_code == 404
    assert client.get(f"/ui/jobs/{job['id']}/events").status_code == 404
    token = csrf_of(client.get("/ui/jobs").text)
    assert client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf": token}).status_code == 404
    assert alice.get(f"/v1/jobs/{job['id']}").json()["state"] == "QUEUED"


def test_logging_out_ends_the_session_for_its_old_cookie_too(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, password = user
    ui_log_in(client, username, password)
    old = client.cookies["quern_session"]
    answer = client.post("/ui/logout", data={"csrf": csrf_of(client.get("/ui/jobs").text)})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    client.cookies.set("quern_session", old)
    assert client.get("/ui/jobs").status_code == 303


def test_the_jobs_page_filters_and_counts_per_state(user: tuple[httpx2.Client, str, str], gateway: TestClient) -> None:
    client, username, password = user
    ui_log_in(client, username, password)
    with gateway_client(gateway) as api:
        log_in(api, username, password)
        for name in ("alpha-1", "alpha-2", "beta-1"):
            tiny_job(api, name=name, tags=["t1"])
    everything = client.get("/ui/jobs").text
    assert everything.count('data-job="') == 3
    counts = client.get("/ui/jobs/counts").json()
    assert counts["total"] == 3 and counts["counts"]["QUEUED"] == 3 and counts["counts"]["RUNNING"] == 0
    alphas = client.get("/ui/jobs", params={"name": "alpha"}).text
    assert alphas.count('data-job="') == 2
    # The counts follow the page's other filters, never its state.
    assert client.get("/ui/jobs/counts", params={"name": "alpha", "state": "RUNNING"}).json()["total"] == 2
    assert client.get("/ui/jobs", params={"state": "RUNNING"}).text.count('data-job="') == 0
    assert client.get("/ui/jobs", params={"tag": "nope"}).text.count('data-job="') == 0


def test_the_job_page_shows_the_owners_job_and_cancels_it(
    user: tuple[httpx2.Client, str, str], gateway: TestClient
) -> None:
    client, username, password = user
    ui_log_in(client, username, password)
    with gateway_client(gateway) as api:
        log_in(api, username, password)
        job = tiny_job(api, seconds=7, name="<b>bold</b>")
        page = client.get(f"/ui/jobs/{job['id']}")
        assert page.status_code == 200
        assert "&lt;b&gt;bold&lt;/b&gt;" in page.text and "<b>bold</b>" not in page.text
        assert 'id="cancel"' in page.text and "seconds" in page.text
        answer = client.post(f"/ui/jobs/{job['id']}/cancel", data={"csrf": csrf_of(page.text)})
        assert answer.status_code == 303 and answer.headers["location"] == f"/ui/jobs/{job['id']}"
        assert api.get(f"/v1/jobs/{job['id']}").json()["state"] == "CANCELED"
        # Its end, recorded a moment ago, is in the history of the page that now shows the job ended.
        history = re.search(
            r'<ol class="history" id="history">(.*?)</ol>', client.get(f"/ui/jobs/{job['id']}").text, re.S
        )
        assert history is not None and "state-canceled" in history.group(1)


def test_the_submit_form_is_made_from_the_apps_schema(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, password = user
    form = ui_log_in(client, username, password).get("/ui/submit/flood").text
    steps = re.search(r'<input type="number" id="p-steps"[^>]*>', form, re.DOTALL)
    assert steps and 'value="400"' in steps.group(0) and 'step="1"' in steps.group(0)
    assert 'min="1"' in steps.group(0) and 'max="100000"' in steps.group(0)
    assert re.search(r'<select id="p-boundary"[^>]*>.*<option selected>open</option>', form, re.DOTALL)
    assert "Rainfall depth in millimetres" in form and 'name="input.elevation"' in form


def test_the_submit_form_shows_a_violation_beside_its_field(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, password = user
    form = ui_log_in(client, username, password).get("/ui/submit/flood").text
    answer = client.post(
        "/ui/submit/flood",
        data={"csrf": csrf_of(form), "param.rain_mm": "0", "param.steps": "10", "priority": "12"},
    )
    assert answer.status_code == 422
    rain = re.search(r'<p class="error field-error" id="p-rain_mm-error">([^<]*)</p>', answer.text)
    assert rain and "0" in rain.group(1), answer.text
    assert 'id="j-priority-error"' in answer.text
    assert re.search(r'id="p-steps" name="param.steps" value="10"', answer.text)  # what was typed stays


def test_a_job_submitted_with_a_file_uploaded_from_the_form_opens_its_page(
    user: tuple[httpx2.Client, str, str],
) -> None:
    client, username, password = user
    token = csrf_of(ui_log_in(client, username, password).get("/ui/submit/flood").text)
    stored = client.post(
        "/ui/files", params={"name": "grid.csv"}, content=b"1,2,3\n4,5,6\n7,8,9\n", headers={"X-CSRF-Token": token}
    )
    assert stored.status_code == 201, stored.text
    answer = client.post(
        "/ui/submit/flood",
        data={"csrf": token, "param.steps": "3", "input.elevation": stored.json()["id"], "tags": "a, b"},
    )
    assert answer.status_code == 303, answer.text
    page = client.get(answer.headers["location"]).text
    assert "QUEUED" in page and '<span class="tag">a</span>' in page


def test_a_queue_is_paused_and_resumed_from_the_queues_page(
    user: tuple[httpx2.Client, str, str], make_user: ApiUserFactory
) -> None:
    client, username, password = user
    page = ui_log_in(client, username, password).get("/ui/queues").text
    default = re.search(r'action="/ui/queues/(\w+)/pause"', page)
    assert default and 'data-queue="default"' in page
    answer = client.post(f"/ui/queues/{default.group(1)}/pause", data={"csrf": csrf_of(page)})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/queues"
    paused = client.get("/ui/queues").text
    assert f'action="/ui/queues/{default.group(1)}/resume"' in paused
    client.post(f"/ui/queues/{default.group(1)}/resume", data={"csrf": csrf_of(paused)})
    assert f'action="/ui/queues/{default.group(1)}/pause"' in client.get("/ui/queues").text
    other = make_user()
    theirs = other.post("/v1/queues", json={"name": "theirs"}).json()
    assert client.post(f"/ui/queues/{theirs['id']}/pause", data={"csrf": csrf_of(paused)}).status_code == 404
    assert other.get(f"/v1/queues/{theirs['id']}").json()["paused"] is False


def test_the_cluster_page_shows_the_active_jobs(user: tuple[httpx2.Client, str, str]) -> None:
    client, username, password = user
    page = ui_log_in(client, username, password).get("/ui/cluster")
    assert page.status_code == 200 and "Your active jobs" in page.text
