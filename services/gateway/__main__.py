"""Start the gateway: ``python -m services.gateway``."""

from __future__ import annotations

import ctypes

import uvicorn

from services.gateway.app import create_app
from shared.logging import configure_logging
from shared.settings import GatewaySettings, load

M_MMAP_THRESHOLD = -3


def return_large_buffers_to_the_os() -> bool:
    """Serve allocations of 1 MiB and more (upload parts) by mmap, so freeing them gives the memory back.

    glibc otherwise raises its mmap threshold after the first large free and keeps later parts in
    per-thread arenas: the gateway's RSS then grows with the number of pool threads that handled
    a part, not with what it holds. Setting the threshold explicitly turns that adjustment off.
    """
    try:
        return bool(ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1)
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return False


def main() -> None:
    """Read settings, set up logging, serve."""
    settings = load(GatewaySettings)
    configure_logging(settings)
    return_large_buffers_to_the_os()
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
