from __future__ import annotations

import structlog
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.testclient import TestClient

from services.gateway.plumbing.middleware import RequestLog


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug")


def test_an_unhandled_error_is_a_500_problem_with_the_request_id_logged_and_returned() -> None:
    app = Starlette(routes=[Route("/broken", broken)], middleware=[Middleware(RequestLog)])
    with structlog.testing.capture_logs() as logs, TestClient(app) as client:
        response = client.get("/broken", headers={"X-Request-ID": "req-7"})
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "req-7"
    assert "a bug" not in response.text  # nothing internal leaks to the caller
    error = next(entry for entry in logs if entry["event"] == "unhandled_error")
    assert error["log_level"] == "error"
    assert [entry["status"] for entry in logs if entry["event"] == "request"] == [500]
