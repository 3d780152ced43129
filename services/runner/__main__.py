"""Start a runner worker: ``python -m services.runner``."""

from __future__ import annotations

import ctypes

import structlog

from services.runner.actors import register
from services.runner.drivers import offered
from shared.logging import configure_logging
from shared.models import new_id
from shared.settings import RunnerSettings, load
from shared.tasks import RUNNER_SERVICE
from shared.worker import serve

PR_SET_DUMPABLE = 4
HAND_BACK_SECONDS = 60
log = structlog.get_logger()


def protect_credentials() -> bool:
    """Make this process non-dumpable, so apps running as the same user cannot read its memory or environ.

    /proc/<pid>/environ holds RABBITMQ_URL, MONGO_URL and the S3 keys. Root can still read it;
    running apps as another user is the stronger guard.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    return bool(libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == 0)


def main() -> None:
    """Read settings, set up logging, run jobs until told to stop."""
    settings = load(RunnerSettings)
    configure_logging(settings)
    if not protect_credentials():
        log.warning("runner_dumpable", detail="prctl(PR_SET_DUMPABLE, 0) failed; apps may read the runner's environ")
    drivers = offered(settings)  # exits here, before any job, if WORK_DIR or RUN_AS_USER cannot work
    # Each start is an incarnation of its own: a runner restarted under the same RUNNER_ID (a pod's
    # name, a container's constant PID 1) renews none of the leases its earlier incarnation held.
    incarnation = f"{settings.runner_id}-{new_id()}"
    log.info("runner_drivers", drivers=sorted(drivers), run_as=settings.run_as_user, worker=incarnation)
    serve(
        settings,
        appname=RUNNER_SERVICE,
        threads=settings.runner_concurrency,
        worker_id=incarnation,
        register=register,
        # Drain, then every app's grace, then uploading checkpoints and handing the jobs back.
        grace_seconds=settings.drain_seconds + settings.app_grace_seconds + HAND_BACK_SECONDS,
        prefetch=1,
    )


if __name__ == "__main__":
    main()
