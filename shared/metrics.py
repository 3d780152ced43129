"""Prometheus metrics every worker shares, and the listener any quern process may serve them on.

Each process keeps its metrics in prometheus-client's default registry and serves them itself: the
gateway at ``/metrics`` on its API port (and on ``METRICS_PORT`` if set), the scheduler and the
workers on ``METRICS_PORT``. A worker is one process whose Dramatiq threads share that registry
(``shared/worker.py`` runs them here rather than forking under the ``dramatiq`` CLI), so neither
prometheus-client's multiprocess mode nor Dramatiq's own Prometheus middleware, which is built for
it, is needed.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import structlog
from dramatiq.middleware import Middleware
from prometheus_client import Counter, Gauge, Histogram, start_http_server

from shared.settings import Settings

log = structlog.get_logger()
# From a heartbeat's round trip to a dataset's packaging.
SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600)

MESSAGES = Counter(
    "quern_worker_messages", "Messages a worker processed, by actor and outcome", ["service", "actor", "outcome"]
)
MESSAGE_SECONDS = Histogram(
    "quern_worker_message_seconds",
    "How long a worker took over a message",
    ["service", "actor"],
    buckets=SECONDS_BUCKETS,
)
BUSY = Gauge("quern_worker_busy_slots", "Slots in use: runs held (runner) or messages in hand (results)", ["service"])
SLOTS = Gauge("quern_worker_slots", "Slots a worker has (RUNNER_CONCURRENCY, RESULTS_CONCURRENCY)", ["service"])
HEARTBEAT = Gauge(
    "quern_worker_heartbeat_timestamp_seconds", "When the worker's heartbeat loop last went round", ["service"]
)


class MessageMetrics(Middleware):
    """Counts the messages a worker processes by actor and outcome (ok, error, skipped), and times them."""

    def __init__(self, service: str) -> None:
        self.service = service
        self._started: dict[str, float] = {}
        self._lock = threading.Lock()

    def before_process_message(self, broker: Any, message: Any) -> None:
        with self._lock:
            self._started[message.message_id] = time.perf_counter()

    def after_process_message(
        self, broker: Any, message: Any, *, result: Any = None, exception: BaseException | None = None
    ) -> None:
        self._count(message, "ok" if exception is None else "error")

    def after_skip_message(self, broker: Any, message: Any) -> None:
        self._count(message, "skipped")

    def _count(self, message: Any, outcome: str) -> None:
        with self._lock:
            started = self._started.pop(message.message_id, None)
        MESSAGES.labels(self.service, message.actor_name, outcome).inc()
        if started is not None:
            MESSAGE_SECONDS.labels(self.service, message.actor_name).observe(time.perf_counter() - started)


class MetricsListener:
    """``/metrics`` served on ``METRICS_PORT`` by a thread of its own (none when the port is 0)."""

    def __init__(self, settings: Settings) -> None:
        self._server: Any = None
        if settings.metrics_port:
            # A port taken is a configuration error: the process stops here, before it takes any work.
            self._server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host)
            log.info("metrics_listening", host=settings.metrics_host, port=settings.metrics_port)

    def close(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
