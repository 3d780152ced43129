"""Start a results worker: ``python -m services.results``."""

from __future__ import annotations

from services.results.actors import register
from shared.logging import configure_logging
from shared.settings import ResultsSettings, load
from shared.tasks import RESULTS_SERVICE
from shared.worker import serve


def main() -> None:
    """Read settings, set up logging, package results until told to stop."""
    settings = load(ResultsSettings)
    configure_logging(settings)
    serve(settings, appname=RESULTS_SERVICE, threads=settings.results_concurrency, register=register)


if __name__ == "__main__":
    main()
