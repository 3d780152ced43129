"""The SDK's retry policy, errors and waiting, blocking and asyncio, against scripted stand-in servers."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from quern.aio import AsyncClient
from quern.client import Client
from quern.errors import ApiError, Unreachable
from quern.transport import Retries

FAST = Retries(attempts=4, timeout=10, wait_initial=0.01, wait_max=0.05)


def scripted(*answers: httpx.Response | type[Exception]) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A stand-in server answering each request with the next of ``answers`` (an exception type is raised)."""
    script, seen = list(answers), []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = script.pop(0)
        if isinstance(answer, type):
            raise answer("scripted failure", request=request)  # type: ignore[call-arg]
        return answer

    return httpx.MockTransport(handle), seen


JOB = {"id": "j1", "app": "flood", "app_version": "1", "state": "QUEUED", "created": "2026-01-01T00:00:00Z"}


def test_503_and_429_are_retried_honouring_retry_after() -> None:
    busy = httpx.Response(503, headers={"Retry-After": "0"}, json={"title": "Unavailable", "detail": "busy"})
    slow = httpx.Response(429, headers={"Retry-After": "0"}, json={"title": "Too Many Requests", "detail": "x"})
    transport, seen = scripted(busy, slow, httpx.Response(200, json=JOB))
    with Client("http://quern.test", transport=transport, retries=FAST) as client:
        assert client.jobs.get("j1").state == "QUEUED"
    assert len(seen) == 3


def test_a_submission_is_retried_after_a_lost_answer_under_one_idempotency_key() -> None:
    transport, seen = scripted(httpx.ReadTimeout, httpx.Response(201, json=JOB))
    with Client("http://quern.test", transport=transport, retries=FAST) as client:
        client.jobs.submit("flood")
    keys = {request.headers["Idempotency-Key"] for request in seen}
    assert len(seen) == 2 and len(keys) == 1


def test_a_post_without_an_idempotency_key_is_not_repeated_after_a_read_timeout() -> None:
    transport, seen = scripted(httpx.ReadTimeout, httpx.Response(200, json=JOB))
    with Client("http://quern.test", transport=transport, retries=FAST) as client, pytest.raises(Unreachable):
        client.jobs.cancel("j1")
    assert len(seen) == 1


def test_a_4xx_is_raised_at_once_with_the_problem_fields() -> None:
    problem = {
        "type": "urn:quern:problem:invalid",
        "title": "Invalid request",
        "status": 422,
        "detail": "bad",
        "instance": "/v1/jobs",
        "errors": [{"pointer": "/params/steps", "detail": "must be at least 1"}],
    }
    transport, seen = scripted(httpx.Response(422, json=problem))
    with Client("http://quern.test", transport=transport, retries=FAST) as client, pytest.raises(ApiError) as caught:
        client.jobs.submit("flood", params={"steps": 0})
    error = caught.value
    assert (error.status, error.type, error.instance) == (422, "urn:quern:problem:invalid", "/v1/jobs")
    assert error.errors[0]["pointer"] == "/params/steps" and "/params/steps" in str(error)
    assert len(seen) == 1


def stream_failing_gateway(stream: httpx.Response) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    """A gateway whose job is RUNNING, whose event stream is ``stream``, and whose job has SUCCEEDED when polled."""
    running = httpx.Response(200, json=JOB | {"state": "RUNNING"})
    ended = httpx.Response(200, json=JOB | {"state": "SUCCEEDED", "exit_code": 0})
    return scripted(running, stream, ended)


BAD_GATEWAY = {"title": "Bad Gateway", "detail": "proxy"}


def test_wait_falls_back_to_polling_when_the_event_stream_fails() -> None:
    transport, seen = stream_failing_gateway(httpx.Response(502, json=BAD_GATEWAY))
    with Client("http://quern.test", transport=transport, retries=Retries(attempts=1)) as client:
        job = client.jobs.wait("j1", poll_interval=0.01)
    assert job.succeeded and [request.url.path for request in seen] == [
        "/v1/jobs/j1",
        "/v1/jobs/j1/events",
        "/v1/jobs/j1",
    ]


class QuietEvents(BaseHTTPRequestHandler):
    """A stand-in gateway whose job keeps RUNNING and whose event stream sends only keep-alives."""

    def do_GET(self) -> None:
        if self.path.endswith("/events"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass  # the client hung up, as it should
            return
        body = json.dumps(JOB | {"state": "RUNNING"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def quiet_gateway() -> Iterator[str]:
    """The URL of a QuietEvents server."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), QuietEvents)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_wait_gives_up_at_its_timeout_while_the_stream_stays_quiet(quiet_gateway: str) -> None:
    with Client(quiet_gateway, retries=FAST) as client, pytest.raises(TimeoutError):
        started = time.monotonic()
        client.jobs.wait("j1", timeout=0.5, poll_interval=0.05)
    assert time.monotonic() - started < 3  # the stream alone would have kept it for 10 s


def test_async_wait_gives_up_at_its_timeout_while_the_stream_stays_quiet(quiet_gateway: str) -> None:
    async def scenario() -> None:
        async with AsyncClient(quiet_gateway, retries=FAST) as client:
            await client.jobs.wait("j1", timeout=0.5, poll_interval=0.05)

    started = time.monotonic()
    with pytest.raises(TimeoutError, match=r"^job j1 has not ended after 0\.5 s$"):
        asyncio.run(scenario())
    assert time.monotonic() - started < 3


def test_events_until_end_a_quiet_stream_then_in_both_flavours(quiet_gateway: str) -> None:
    async def follow() -> list[object]:
        async with AsyncClient(quiet_gateway, retries=FAST) as client:
            return [event async for event in client.jobs.events("j1", until=time.monotonic() + 0.3)]

    started = time.monotonic()
    assert asyncio.run(follow()) == []
    with Client(quiet_gateway, retries=FAST) as client:
        assert list(client.jobs.events("j1", until=time.monotonic() + 0.3)) == []
    assert time.monotonic() - started < 3


class BrokenStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """An event stream that httpx reports closed part-way (httpx.StreamError, not a TransportError)."""

    def __iter__(self) -> Iterator[bytes]:
        yield b": keep-alive\n\n"
        raise httpx.StreamClosed()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b": keep-alive\n\n"
        raise httpx.StreamClosed()


def stream_breaking_gateway() -> tuple[httpx.MockTransport, list[httpx.Request]]:
    broken = httpx.Response(200, headers={"Content-Type": "text/event-stream"}, stream=BrokenStream())
    return stream_failing_gateway(broken)


def test_wait_polls_when_the_stream_breaks_with_a_stream_error() -> None:
    transport, seen = stream_breaking_gateway()
    with Client("http://quern.test", transport=transport, retries=Retries(attempts=1)) as client:
        assert client.jobs.wait("j1", poll_interval=0.01).succeeded
    assert len(seen) == 3


def test_async_wait_polls_when_the_stream_breaks_with_a_stream_error() -> None:
    transport, seen = stream_breaking_gateway()

    async def scenario() -> bool:
        async with AsyncClient("http://quern.test", transport=transport, retries=Retries(attempts=1)) as client:
            return (await client.jobs.wait("j1", poll_interval=0.01)).succeeded

    assert asyncio.run(scenario())
    assert len(seen) == 3


def test_async_wait_falls_back_to_polling_when_the_event_stream_fails() -> None:
    transport, seen = stream_failing_gateway(httpx.Response(502, json=BAD_GATEWAY))

    async def scenario() -> bool:
        async with AsyncClient("http://quern.test", transport=transport, retries=Retries(attempts=1)) as client:
            return (await client.jobs.wait("j1", poll_interval=0.01)).succeeded

    assert asyncio.run(scenario())
    assert [request.url.path for request in seen] == ["/v1/jobs/j1", "/v1/jobs/j1/events", "/v1/jobs/j1"]


FILE = {"id": "u1", "name": "big.bin", "size": 3, "sha256": "0" * 64, "created": "2026-01-01T00:00:00Z"}


def test_a_lost_completion_answer_finds_the_file_once_the_gateway_has_checked_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(time, "sleep", lambda _: None)
    missing = httpx.Response(404, json={"type": "urn:quern:problem:not-found", "title": "Not Found", "detail": "no"})
    transport, seen = scripted(missing, missing, httpx.Response(200, json=FILE))
    with Client("http://quern.test", transport=transport, retries=FAST) as client:
        found = client.files._wait_for_file("u1", Unreachable("the answer was lost"))
    assert found.id == "u1" and len(seen) == 3


def test_a_completion_refused_as_expired_is_raised_after_one_look() -> None:
    expired = ApiError(409, {"type": "urn:quern:problem:conflict", "title": "Conflict", "detail": "expired"})
    missing = httpx.Response(404, json={"type": "urn:quern:problem:not-found", "title": "Not Found", "detail": "no"})
    transport, seen = scripted(missing)
    with Client("http://quern.test", transport=transport, retries=FAST) as client, pytest.raises(ApiError) as caught:
        client.files._wait_for_file("u1", expired)
    assert caught.value is expired and len(seen) == 1
