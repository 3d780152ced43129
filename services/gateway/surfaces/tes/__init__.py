"""The GA4GH TES 1.1 facade: ``/ga4gh/tes/v1`` as a surface of its own, over the gateway's job domain."""

from services.gateway.surfaces.tes.routes import routes

__all__ = ["routes"]
