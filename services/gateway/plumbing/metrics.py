"""The gateway's HTTP metrics, labelled by route template, and ``/metrics``, the Prometheus exposition.

A request is counted under its route's path template (``/v1/jobs/{job_id}``), never its raw path,
so the number of series stays bounded whatever clients ask for; a path no route matched is
``<unmatched>``. ``/metrics`` serves the whole process's registry (these, the scheduler's, the job
gauges, and prometheus-client's process metrics), unauthenticated on the API port unless
``GATEWAY_METRICS=false``; ``METRICS_PORT`` serves the same on a port of its own.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.types import Scope

UNMATCHED = "<unmatched>"
REQUESTS = Counter(
    "quern_http_requests", "HTTP requests answered, by method, route and status", ["method", "route", "status"]
)
LATENCY = Histogram(
    "quern_http_request_duration_seconds",
    "Time to answer an HTTP request (a stream: until it ended), by method and route",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def route_template(scope: Scope) -> str:
    """The path template of the route that answered, with its mounts' prefixes; ``<unmatched>`` if none did."""
    route = scope.get("route")
    if not isinstance(route, Route | Mount):
        return UNMATCHED
    # A mount's prefix has been appended to root_path by the time the innermost route answered.
    prefix: str = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    return prefix + ("/{path}" if isinstance(route, Mount) else route.path)


def observe_request(scope: Scope, status: int, seconds: float) -> None:
    """Count one answered request and its duration."""
    route, method = route_template(scope), scope["method"]
    REQUESTS.labels(method, route, str(status)).inc()
    LATENCY.labels(method, route).observe(seconds)


async def metrics(request: Request) -> Response:
    """GET /metrics: every metric of this process in Prometheus's text format."""
    body = await run_in_threadpool(generate_latest, REGISTRY)
    return Response(body, media_type=CONTENT_TYPE_LATEST)


def metrics_route() -> Route:
    """The ``/metrics`` route."""
    return Route("/metrics", metrics, methods=["GET"], name="metrics")
