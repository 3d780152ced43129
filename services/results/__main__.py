"""Start a results worker: ``python -m services.results``."""

from __future__ import annotations

from services.results.actors import register
from services.results.sweeps import Sweeper
from shared.logging import configure_logging
from shared.settings import ResultsSettings, load
from shared.tasks import RESULTS_SERVICE
from shared.worker import Resources, serve


def main() -> None:
    """Read settings, set up logging, package results (and sweep expired jobs) until told to stop."""
    settings = load(ResultsSettings)
    configure_logging(settings)

    async def sweep(resources: Resources) -> None:
        sweeper = Sweeper(
            archives=resources.stores.archives,
            storage=resources.storage,
            broker=resources.broker,
            interval=settings.retention_sweep_seconds,
        )
        await sweeper.run_forever()

    serve(
        settings,
        appname=RESULTS_SERVICE,
        threads=settings.results_concurrency,
        register=register,
        background=sweep,
    )


if __name__ == "__main__":
    main()
