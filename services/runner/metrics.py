"""The runner's Prometheus metrics: runs by app and outcome, their durations, the bytes staged and uploaded.

Served with the worker's own (``shared/metrics.py``) on ``METRICS_PORT``. Labels stay few: an app
is one an admin registered, an outcome one of the job states or a hand-back's reason.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

from shared.metrics import SECONDS_BUCKETS

RUNS = Counter(
    "quern_runner_runs", "Runs that ended, by app and outcome (a job state, shutdown or lease)", ["app", "outcome"]
)
RUN_SECONDS = Histogram(
    "quern_runner_run_seconds", "A run's time from claim to outcome, by app", ["app"], buckets=SECONDS_BUCKETS
)
TRANSFER_BYTES = Counter(
    "quern_runner_transfer_bytes", "Bytes moved between S3 and runs: staged inputs, uploaded outputs and logs", ["kind"]
)
TRANSFER_ERRORS = Counter(
    "quern_runner_transfer_errors", "Staging or uploading attempts that failed (each retry counts)", ["kind"]
)
