"""Start a runner worker: ``python -m services.runner``."""

from __future__ import annotations

from services.runner.actors import register
from shared.logging import configure_logging
from shared.settings import RunnerSettings, load
from shared.worker import serve


def main() -> None:
    """Read settings, set up logging, run jobs until told to stop."""
    settings = load(RunnerSettings)
    configure_logging(settings)
    settings.work_dir.mkdir(parents=True, exist_ok=True)
    serve(settings, appname="quern-runner", threads=settings.runner_concurrency, register=register)


if __name__ == "__main__":
    main()
