"""Start the gateway: ``python -m services.gateway``."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from shared.logging import configure_logging
from shared.settings import GatewaySettings, load


def main() -> None:
    """Read settings, set up logging, serve."""
    settings = load(GatewaySettings)
    configure_logging(settings)
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
