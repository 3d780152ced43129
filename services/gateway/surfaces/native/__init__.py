"""quern's native API: one module per resource, each holding its routes, OpenAPI operations and renderers."""

from services.gateway.surfaces.native.routes import routes

__all__ = ["routes"]
