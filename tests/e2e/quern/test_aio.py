"""The asyncio SDK against the real stack, and its retry policy against a fake server."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.stack import Stack
from quern.aio import AsyncClient
from quern.errors import ApiError, Unreachable
from quern.models import Event
from quern.transport import Retries
from tests.helpers.clients import UserFactory
from tests.helpers.stacks import SINGLE_PUT_MAX_BYTES

Scenario = Callable[[AsyncClient], Awaitable[Any]]
Session = Callable[[Scenario], Any]
FAST = Retries(wait_initial=0.01, wait_max=0.05)
VALLEY = Path(__file__).resolve().parents[3] / "apps/flood/example/valley.csv"
USER = {"id": "u1", "username": "ada", "role": "user", "created": "2025-01-01T00:00:00Z"}


@pytest.fixture
def session(stack: Stack, make_user: UserFactory) -> Session:
    """Run a scenario with an AsyncClient of a new user, on a fresh event loop."""
    token = make_user().headers["Authorization"].removeprefix("Bearer ")

    def run(scenario: Scenario) -> Any:
        async def main() -> Any:
            async with AsyncClient(stack.gateway_url, token=token) as quern:
                return await scenario(quern)

        return asyncio.run(main())

    return run


def fake(handler: Callable[[httpx.Request], httpx.Response]) -> AsyncClient:
    """An AsyncClient whose server is ``handler``, retrying quickly."""
    return AsyncClient("http://quern.test", retries=FAST, transport=httpx.MockTransport(handler))


def test_small_file_is_streamed_through_the_gateway_with_progress(session: Session, tmp_path: Path) -> None:
    data = os.urandom(3 * 2**20 + 17)  # several chunks
    (tmp_path / "noise.bin").write_bytes(data)
    seen: list[tuple[int, int | None]] = []

    async def scenario(quern: AsyncClient) -> None:
        file = await quern.files.upload(tmp_path / "noise.bin", progress=lambda done, total: seen.append((done, total)))
        assert (file.name, file.size) == ("noise.bin", len(data))
        assert file.sha256 == hashlib.sha256(data).hexdigest()
        assert (await quern.files.get(file.id)).sha256 == file.sha256

    session(scenario)
    assert seen[-1] == (len(data), len(data))


def test_file_above_direct_above_goes_to_s3_in_parts_and_reports_progress_on_the_loop(
    session: Session, tmp_path: Path
) -> None:
    data = os.urandom(10 * 2**20 + 4321)
    assert len(data) > SINGLE_PUT_MAX_BYTES  # so the presigned upload is multipart
    (tmp_path / "big.bin").write_bytes(data)
    seen: list[tuple[int, int | None]] = []
    threads: set[int] = set()

    def progress(done: int, total: int | None) -> None:
        seen.append((done, total))
        threads.add(threading.get_ident())

    async def scenario(quern: AsyncClient) -> None:
        file = await quern.files.upload(tmp_path / "big.bin", progress=progress, direct_above=6 * 2**20)
        assert file.size == len(data) and file.sha256 == hashlib.sha256(data).hexdigest()
        assert seen[-1] == (len(data), len(data))  # every report has run once the upload returns
        back = await quern.files.download(file.id, tmp_path / "back.bin")
        assert hashlib.sha256(back.read_bytes()).hexdigest() == file.sha256

    session(scenario)
    assert threads == {threading.get_ident()}  # asyncio.run runs the loop in this thread


def test_flood_job_is_followed_to_its_end_and_its_archive_extracted(session: Session, tmp_path: Path) -> None:
    events: list[Event] = []

    async def scenario(quern: AsyncClient) -> str:
        grid = await quern.files.upload(VALLEY)
        job = await quern.jobs.submit("flood", params={"steps": 2}, inputs={"elevation": grid.id})
        job = await quern.jobs.wait(job.id, timeout=120, on_event=events.append)
        assert job.succeeded, job.error
        await quern.jobs.download_archive(job.id, tmp_path, extract=True)
        return job.id

    job_id = session(scenario)
    assert {event.type for event in events} & {"state", "progress"}
    assert json.loads((tmp_path / job_id / "outputs/summary.json").read_text())["steps"] == 2
    assert not list(tmp_path.glob("*.tar.gz"))


def test_pages_follow_the_cursor_past_the_first_page(session: Session) -> None:
    async def scenario(quern: AsyncClient) -> None:
        uploads = [await quern.files.upload(VALLEY, name=f"grid{n}.csv") for n in range(3)]
        listed = [file.id async for file in quern.files.list(limit=1)]
        assert sorted(listed) == sorted(file.id for file in uploads)

    session(scenario)


def test_unknown_job_is_an_api_error_with_status_and_problem_type(session: Session) -> None:
    async def scenario(quern: AsyncClient) -> None:
        with pytest.raises(ApiError) as caught:
            await quern.jobs.get("01nosuchjob")
        assert (caught.value.status, caught.value.type) == (404, "urn:quern:problem:not-found")

    session(scenario)


def test_events_of_an_unknown_job_are_a_404_api_error(session: Session) -> None:
    async def scenario(quern: AsyncClient) -> None:
        with pytest.raises(ApiError) as caught:
            async for _ in quern.jobs.events("01nosuchjob"):
                pass
        assert (caught.value.status, caught.value.type) == (404, "urn:quern:problem:not-found")

    session(scenario)


def test_login_makes_later_calls_as_that_user(stack: Stack) -> None:
    async def scenario() -> None:
        async with AsyncClient(stack.gateway_url) as quern:
            await quern.login(stack.admin_username, stack.admin_password)
            assert (await quern.me()).username == stack.admin_username

    asyncio.run(scenario())


@pytest.mark.parametrize("status", [503, 429])
def test_busy_answers_are_retried_honouring_retry_after(status: int) -> None:
    answers = iter([status, status, 200])

    def server(request: httpx.Request) -> httpx.Response:
        code = next(answers)
        if code == 200:
            return httpx.Response(200, json=USER)
        return httpx.Response(code, headers={"Retry-After": "0"}, json={"type": "urn:quern:problem:busy"})

    async def scenario() -> None:
        async with fake(server) as quern:
            assert (await quern.me()).username == "ada"

    asyncio.run(scenario())
    assert next(answers, None) is None  # all three answers were asked for


def test_retries_give_up_with_the_last_error() -> None:
    calls: list[httpx.Request] = []

    def server(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, headers={"Retry-After": "0"})

    async def scenario() -> None:
        async with fake(server) as quern:
            with pytest.raises(ApiError) as caught:
                await quern.me()
            assert caught.value.status == 503

    asyncio.run(scenario())
    assert len(calls) == FAST.attempts


def test_a_service_that_cannot_be_reached_is_unreachable() -> None:
    def server(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    async def scenario() -> None:
        async with fake(server) as quern:
            with pytest.raises(Unreachable, match=re.escape("GET http://quern.test/v1/me")):
                await quern.me()

    asyncio.run(scenario())


def test_submission_is_resent_with_the_same_idempotency_key_after_a_lost_answer() -> None:
    keys: list[str] = []

    def server(request: httpx.Request) -> httpx.Response:
        keys.append(request.headers["Idempotency-Key"])
        if len(keys) == 1:
            raise httpx.ReadError("connection reset", request=request)
        job = {"id": "j1", "app": "flood", "app_version": "1.0.0", "state": "QUEUED", "created": USER["created"]}
        return httpx.Response(201, json=job)

    async def scenario() -> None:
        async with fake(server) as quern:
            assert (await quern.jobs.submit("flood")).id == "j1"

    asyncio.run(scenario())
    assert len(keys) == 2 and keys[0] == keys[1] and keys[0]


def test_a_retried_upload_sends_the_whole_file_again(tmp_path: Path) -> None:
    data = os.urandom(2 * 2**20 + 5)
    (tmp_path / "a.bin").write_bytes(data)
    bodies: list[bytes] = []
    seen: list[int] = []

    def server(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        if len(bodies) == 1:
            return httpx.Response(503, headers={"Retry-After": "0"})
        digest = hashlib.sha256(request.content).hexdigest()
        file = {"id": "f1", "name": "a.bin", "size": len(request.content), "sha256": digest, "created": USER["created"]}
        return httpx.Response(201, json=file)

    async def scenario() -> None:
        async with fake(server) as quern:
            file = await quern.files.upload(tmp_path / "a.bin", progress=lambda done, total: seen.append(done))
            assert file.sha256 == hashlib.sha256(data).hexdigest()

    asyncio.run(scenario())
    assert bodies == [data, data]
    assert 0 in seen[1:] and seen[-1] == len(data)  # the meter rewound for the second attempt
