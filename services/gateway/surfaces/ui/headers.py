"""The headers every answer of the web UI carries: a strict Content-Security-Policy, no framing, no sniffing.

Pages load scripts and styles only from the UI's own static files (no inline script or style,
no CDN). Images and previews come from presigned URLs, so the object store's origin, as
browsers reach it, is allowed for ``img-src`` and ``connect-src`` and for nothing else.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.settings import GatewaySettings

# Presigned URLs of AWS S3 itself (no endpoint configured) name the bucket's regional host.
AWS_S3 = "https://*.amazonaws.com"


def storage_origin(settings: GatewaySettings) -> str:
    """The origin of the presigned URLs browsers are given."""
    endpoint = settings.presign_endpoint_url
    if endpoint is None:
        return AWS_S3
    parts = urlsplit(endpoint)
    return f"{parts.scheme}://{parts.netloc}"


def content_security_policy(settings: GatewaySettings) -> str:
    """The UI's Content-Security-Policy."""
    storage = storage_origin(settings)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            f"img-src 'self' {storage}",
            f"connect-src 'self' {storage}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


class SecurityHeaders:
    """ASGI middleware adding the UI's security headers to every answer (error pages included)."""

    def __init__(self, app: ASGIApp, *, settings: GatewaySettings) -> None:
        self.app = app
        self.headers = {
            "Content-Security-Policy": content_security_policy(settings),
            "X-Frame-Options": "DENY",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
            "Cross-Origin-Opener-Policy": "same-origin",
            "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    headers[name] = value
                if "cache-control" not in headers and "/static/" not in scope["path"]:
                    headers["Cache-Control"] = "no-store"  # pages show a user's own data
            await send(message)

        await self.app(scope, receive, with_headers)
