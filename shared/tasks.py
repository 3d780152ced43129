"""The names of the queues and actors that carry work between services.

Producers enqueue by these names and never import the consumer's code. Messages carry ids,
never documents; every actor is idempotent, so a message delivered twice does no harm.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Task:
    """An actor and the queue it listens on, before the deployment's namespace is applied."""

    actor: str
    queue: str

    def queue_name(self, namespace: str) -> str:
        """The RabbitMQ queue for this task in one deployment (``quern.jobs``)."""
        return f"{namespace}.{self.queue}"


RUN_JOB = Task(actor="run_job", queue="jobs")
"""Runner: claim a QUEUED job, run its app, upload outputs and logs. Args: ``(job_id,)``."""

PACKAGE_RESULTS = Task(actor="package_results", queue="results")
"""Results: package a finished run its runner did not archive into a tar.gz in S3. Args: ``(job_id,)``."""

PACKAGE_SELECTION = Task(actor="package_selection", queue="results")
"""Results: package only the outputs a job's selection matches (``?include=``). Args: ``(job_id, digest)``."""
DELIVER_WEBHOOK = Task(actor="deliver_webhook", queue="webhooks")
"""Results: POST one signed webhook event, again with backoff until a 2xx or the last try. Args: ``(delivery_id,)``."""

ANNOUNCE_END = Task(actor="announce_job_end", queue="webhooks")
"""Results: record and send the webhook deliveries of a job ended with nothing to package (it never ran, or its
runner archived it). Args: ``(job_id,)``."""

ANNOUNCE_PROGRESS = Task(actor="announce_job_progress", queue="webhooks")
"""Results: record and send the ``job.progress`` deliveries of a running job. Args: ``(job_id, event_id)``."""

RUNNER_SERVICE = "quern-runner"
"""How runners name themselves in their heartbeats; the dispatcher counts their free slots."""

RESULTS_SERVICE = "quern-results"
"""How results workers name themselves in their heartbeats."""
