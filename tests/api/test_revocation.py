"""Taking credentials back: disabled users, revoked keys, password changes and "log out everywhere" take
effect at once, for new requests and for event streams already open."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx2
import jwt
import pytest
from starlette.testclient import TestClient

from devstack.stack import Stack
from tests.helpers.clients import ApiUserFactory, add_user, gateway_client, log_in, problem, tiny_job
from tests.helpers.ui_forms import csrf_of, ui_log_in

# The api tier's STREAM_RECHECK_SECONDS is 1; a deployment's is at most 10, the bound these tests hold.
STREAM_END_SECONDS = 10


def user_id(client: httpx2.Client) -> str:
    answer = client.get("/v1/me")
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


def key_client(gateway: TestClient, owner: httpx2.Client) -> tuple[httpx2.Client, str]:
    """A client using a new API key of ``owner``'s, and the key's id."""
    created = owner.post("/v1/keys", json={"name": "ci"}).json()
    client = gateway_client(gateway)
    client.headers["Authorization"] = f"Bearer {created['secret']}"
    return client, created["id"]


def seconds_until_stream_ends(client: httpx2.Client, path: str, lapse: Callable[[], object]) -> float:
    """Open ``path``'s event stream, call ``lapse`` once it is open, and time how long the stream goes on after."""
    with client.stream("GET", path, timeout=60) as answer:
        assert answer.status_code == 200, answer.read()
        lapse()
        lapsed = time.monotonic()
        for _ in answer.iter_lines():
            assert time.monotonic() - lapsed < 2 * STREAM_END_SECONDS, "the stream went on"
    return time.monotonic() - lapsed


def test_a_disabled_users_token_is_refused_at_once(admin: httpx2.Client, make_user: ApiUserFactory) -> None:
    user = make_user()
    assert admin.delete(f"/v1/users/{user_id(user)}").status_code == 200
    problem(user.get("/v1/jobs"), 401, "bad-credentials")


def test_a_revoked_key_is_refused_at_once(gateway: TestClient, make_user: ApiUserFactory) -> None:
    with key_client(gateway, make_user())[0] as keyed:
        key_id = key_client(gateway, make_user())[1]  # another user's key: not keyed's to revoke
        assert keyed.get("/v1/jobs").status_code == 200
        assert keyed.delete(f"/v1/keys/{key_id}").status_code == 404
        own = keyed.get("/v1/keys").json()["items"][0]["id"]
        assert keyed.delete(f"/v1/keys/{own}").status_code == 200
        problem(keyed.get("/v1/jobs"), 401, "bad-credentials")


def test_a_token_from_before_a_disable_stays_refused_once_re_enabled(
    gateway: TestClient, stack: Stack, admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    user = make_user()
    uid = user_id(user)
    assert admin.delete(f"/v1/users/{uid}").status_code == 200
    with gateway_client(gateway) as browser:
        ui_log_in(browser, stack.admin_username, stack.admin_password)
        csrf = csrf_of(browser.get("/ui/admin/users").text)
        assert browser.post(f"/ui/admin/users/{uid}/enable", data={"csrf": csrf}).status_code == 303
    assert admin.get(f"/v1/users/{uid}").json()["disabled"] is False
    problem(user.get("/v1/jobs"), 401, "bad-credentials")


def test_a_disabled_users_open_event_stream_ends(admin: httpx2.Client, make_user: ApiUserFactory) -> None:
    user = make_user()
    uid = user_id(user)
    took = seconds_until_stream_ends(user, "/v1/events?wait=300", lambda: admin.delete(f"/v1/users/{uid}"))
    assert took < STREAM_END_SECONDS


def test_a_revoked_keys_open_job_stream_ends(gateway: TestClient, make_user: ApiUserFactory) -> None:
    owner = make_user()
    job = tiny_job(owner)  # no runner here: it stays QUEUED, and its stream would go on
    keyed, key_id = key_client(gateway, owner)
    with keyed:
        took = seconds_until_stream_ends(
            keyed, f"/v1/jobs/{job['id']}/events", lambda: owner.delete(f"/v1/keys/{key_id}")
        )
    assert took < STREAM_END_SECONDS


def test_logging_out_everywhere_refuses_earlier_tokens_and_ends_their_streams(
    gateway: TestClient, make_user: ApiUserFactory
) -> None:
    user = make_user()
    with gateway_client(gateway) as other_device:
        other_device.headers["Authorization"] = user.headers["Authorization"]
        took = seconds_until_stream_ends(
            other_device, "/v1/events?wait=300", lambda: user.post("/v1/me/logout-all").raise_for_status()
        )
        assert took < STREAM_END_SECONDS
        problem(other_device.get("/v1/jobs"), 401, "bad-credentials")
    problem(user.get("/v1/me"), 401, "bad-credentials")


def test_logging_in_again_after_logging_out_everywhere_works(gateway: TestClient, admin: httpx2.Client) -> None:
    username, password = add_user(admin)
    with gateway_client(gateway) as user:
        assert log_in(user, username, password).post("/v1/me/logout-all").status_code == 204
        problem(user.get("/v1/me"), 401, "bad-credentials")
        log_in(user, username, password)  # in the same second: the new token is not taken for an old one
        assert user.get("/v1/me").status_code == 200


def test_logging_out_everywhere_ends_ui_sessions(gateway: TestClient, admin: httpx2.Client) -> None:
    username, password = add_user(admin)
    with gateway_client(gateway) as browser, gateway_client(gateway) as api:
        assert ui_log_in(browser, username, password).get("/ui/jobs").status_code == 200
        log_in(api, username, password).post("/v1/me/logout-all").raise_for_status()
        assert browser.get("/ui/jobs").status_code == 303


def test_changing_the_password_ends_old_tokens_and_only_the_new_password_works(
    gateway: TestClient, admin: httpx2.Client
) -> None:
    username, password = add_user(admin)
    new_password = password + "-renewed"
    with gateway_client(gateway) as user, gateway_client(gateway) as anonymous:
        old = log_in(user, username, password).headers["Authorization"]
        answer = user.post("/v1/me/password", json={"current_password": password, "new_password": new_password})
        assert answer.status_code == 200, answer.text
        assert answer.json()["token_type"] == "bearer"
        problem(user.get("/v1/me"), 401, "bad-credentials")
        user.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"
        assert user.get("/v1/me").json()["username"] == username
        anonymous.headers["Authorization"] = old
        problem(anonymous.get("/v1/me"), 401, "bad-credentials")
        del anonymous.headers["Authorization"]
        refused = anonymous.post("/v1/auth/login", json={"username": username, "password": password})
        problem(refused, 401, "bad-credentials")
        assert log_in(anonymous, username, new_password).get("/v1/me").status_code == 200


@pytest.mark.parametrize(
    ("current", "new", "pointer"),
    [
        ("wrong-password-123", "a-new-password-456", "/current_password"),
        (None, "short", "/new_password"),
        (None, None, "/new_password"),
    ],
)
def test_a_bad_password_change_is_422_and_changes_nothing(
    gateway: TestClient, admin: httpx2.Client, current: str | None, new: str | None, pointer: str
) -> None:
    username, password = add_user(admin)
    with gateway_client(gateway) as user:
        log_in(user, username, password)
        body = {"current_password": current or password, "new_password": new or password}
        refused = problem(user.post("/v1/me/password", json=body), 422, "invalid")
        assert pointer in str(refused)
        assert user.get("/v1/me").status_code == 200  # the token still works: nothing changed
        assert log_in(user, username, password).get("/v1/me").status_code == 200


def test_an_admin_sets_a_users_password_and_their_tokens_end(
    gateway: TestClient, admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    username, password = add_user(admin)
    with gateway_client(gateway) as user, gateway_client(gateway) as anonymous:
        uid = user_id(log_in(user, username, password))
        problem(user.post(f"/v1/users/{uid}/password", json={"password": "a-new-password-789"}), 403, "forbidden")
        problem(make_user().post(f"/v1/users/{uid}/password", json={"password": "x" * 12}), 404, "not-found")
        answer = admin.post(f"/v1/users/{uid}/password", json={"password": "a-new-password-789"})
        assert answer.status_code == 200, answer.text
        problem(user.get("/v1/me"), 401, "bad-credentials")
        assert log_in(anonymous, username, "a-new-password-789").get("/v1/me").status_code == 200
    problem(admin.post(f"/v1/users/{user_id(admin)}/password", json={"password": "y" * 12}), 409, "conflict")


def test_an_admins_event_stream_is_their_own_unless_they_ask_for_all(
    admin: httpx2.Client, make_user: ApiUserFactory
) -> None:
    job = tiny_job(make_user())
    time.sleep(1.5)  # streams send events once they are a second old

    def job_ids(path: str) -> set[str]:
        with admin.stream("GET", path, timeout=60) as answer:
            assert answer.status_code == 200, answer.read()
            return {line.partition('"job_id": "')[2][:26] for line in answer.iter_lines() if line.startswith("data:")}

    assert job["id"] not in job_ids("/v1/events?wait=1")
    assert job["id"] in job_ids("/v1/events?wait=1&all=true")


def test_only_admins_may_stream_everyones_events(make_user: ApiUserFactory) -> None:
    problem(make_user().get("/v1/events?all=true"), 403, "forbidden")
    problem(make_user().get("/v1/events?all=maybe"), 400, "bad-request")


def test_a_token_without_its_issue_time_is_refused(stack: Stack, make_user: ApiUserFactory) -> None:
    user = make_user()
    claims = {"sub": user_id(user), "exp": int(time.time()) + 600, "typ": "access"}
    user.headers["Authorization"] = f"Bearer {jwt.encode(claims, stack.auth_secret, algorithm='HS256')}"
    assert "not valid" in problem(user.get("/v1/me"), 401, "bad-credentials")["detail"]


def test_the_account_page_changes_the_password_and_keeps_only_this_browser_signed_in(
    gateway: TestClient, admin: httpx2.Client
) -> None:
    username, password = add_user(admin)
    new = password + "-from-the-ui"
    with gateway_client(gateway) as browser, gateway_client(gateway) as other, gateway_client(gateway) as api:
        ui_log_in(browser, username, password)
        ui_log_in(other, username, password)
        log_in(api, username, password)
        csrf = csrf_of(browser.get("/ui/account").text)
        fields = {"csrf": csrf, "current": password, "new": new, "again": new + "x"}
        assert browser.post("/ui/account/password", data=fields).status_code == 422
        wrong = browser.post("/ui/account/password", data=fields | {"current": "not-it-at-all", "again": new})
        assert wrong.status_code == 422 and "current password" in wrong.text
        assert api.get("/v1/me").status_code == 200  # nothing changed yet
        changed = browser.post("/ui/account/password", data=fields | {"again": new})
        assert changed.status_code == 303 and changed.headers["location"] == "/ui/account?changed=1", changed.text
        assert "Your password was changed" in browser.get(changed.headers["location"]).text  # the new session
        assert other.get("/ui/jobs").status_code == 303  # to the login page
        problem(api.get("/v1/me"), 401, "bad-credentials")
        assert log_in(api, username, new).get("/v1/me").status_code == 200


def test_signing_out_everywhere_from_the_account_page_ends_every_session_and_token(
    gateway: TestClient, admin: httpx2.Client
) -> None:
    username, password = add_user(admin)
    with gateway_client(gateway) as browser, gateway_client(gateway) as api:
        ui_log_in(browser, username, password)
        log_in(api, username, password)
        csrf = csrf_of(browser.get("/ui/account").text)
        ended = browser.post("/ui/account/logout-all", data={"csrf": csrf})
        assert ended.status_code == 303 and ended.headers["location"] == "/ui/login"
        assert browser.get("/ui/jobs").status_code == 303
        problem(api.get("/v1/me"), 401, "bad-credentials")


def test_only_an_admins_jobs_page_follows_everyones_events(
    gateway: TestClient, stack: Stack, admin: httpx2.Client
) -> None:
    username, password = add_user(admin)
    with gateway_client(gateway) as browser, gateway_client(gateway) as person, gateway_client(gateway) as api:
        tiny_job(log_in(api, username, password))  # the jobs table (and its stream) shows once there are jobs
        ui_log_in(browser, stack.admin_username, stack.admin_password)
        assert 'data-events="/ui/events?all=true"' in browser.get("/ui/jobs").text
        ui_log_in(person, username, password)
        assert 'data-events="/ui/events"' in person.get("/ui/jobs").text
        assert person.get("/ui/events?all=true").status_code == 403
