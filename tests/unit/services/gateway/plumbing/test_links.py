"""Links built from cached route templates are exactly what ``url_for`` builds."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from services.gateway.plumbing.links import link


def echo(request: Request) -> JSONResponse:
    wanted = [("job", {"job_id": "01J"}), ("job_log", {"job_id": "01J", "name": "stderr"}), ("app", {"name": "a.b-c"})]
    twice = [link(request, name, **params) for name, params in wanted] * 2  # the second time from the cache
    return JSONResponse({"links": twice, "url_for": [str(request.url_for(name, **params)) for name, params in wanted]})


def app() -> Starlette:
    nothing = Route("/", echo)
    return Starlette(
        routes=[
            Route("/echo", echo),
            Mount(
                "/v1",
                routes=[
                    Route("/jobs/{job_id}", nothing.endpoint, name="job"),
                    Route("/jobs/{job_id}/logs/{name}", nothing.endpoint, name="job_log"),
                    Route("/apps/{name}", nothing.endpoint, name="app"),
                ],
            ),
        ]
    )


def test_links_match_url_for_behind_a_root_path_and_from_the_cache() -> None:
    for root in ("", "/quern"):
        with TestClient(app(), root_path=root, base_url="https://api.example") as client:
            body = client.get("/echo").json()
        assert body["links"] == body["url_for"] * 2
        assert body["url_for"][1] == f"https://api.example{root}/v1/jobs/01J/logs/stderr"
