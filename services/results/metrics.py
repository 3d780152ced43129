"""The results service's Prometheus metrics: archives built (whole runs and selections), their bytes and time.

Served with the worker's own (``shared/metrics.py``) on ``METRICS_PORT``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable

from prometheus_client import Counter, Histogram

from shared.metrics import SECONDS_BUCKETS

ARCHIVES = Counter("quern_results_archives", "Archives built, by kind (run, selection)", ["kind"])
ARCHIVE_BYTES = Counter("quern_results_archive_bytes", "Bytes of the archives built and uploaded, by kind", ["kind"])
PACKAGING_SECONDS = Histogram(
    "quern_results_packaging_seconds",
    "How long building and uploading an archive took",
    ["kind"],
    buckets=SECONDS_BUCKETS,
)
PACKAGING_ERRORS = Counter("quern_results_packaging_errors", "Archives whose building or upload failed", ["kind"])


async def measured(kind: str, build: Awaitable[tuple[str, int, str]]) -> tuple[str, int, str]:
    """The archive ``build`` makes (key, size, sha256), counted, timed and its failure counted."""
    started = time.perf_counter()
    try:
        key, size, sha256 = await build
    except Exception:
        PACKAGING_ERRORS.labels(kind).inc()
        raise
    ARCHIVES.labels(kind).inc()
    ARCHIVE_BYTES.labels(kind).inc(size)
    PACKAGING_SECONDS.labels(kind).observe(time.perf_counter() - started)
    return key, size, sha256
