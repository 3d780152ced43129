"""The API keys page: the caller's own keys, listed, created (the secret shown once, on the answer page), revoked."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from services.gateway.deps import deps
from services.gateway.domain.accounts import create_key
from services.gateway.plumbing.auth import principal
from services.gateway.surfaces.ui.templates import page
from shared.errors import Invalid

log = structlog.get_logger()
KEYS_SHOWN = 200
MAX_NAME = 100


async def keys_page(request: Request, *, secret: str | None = None, status: int = 200) -> Response:
    """The caller's own keys (an admin's too: not everyone's), and a new key's secret when one was just made."""
    found = await deps(request).stores.accounts.list_keys(
        owner=principal(request).user_id, limit=KEYS_SHOWN, after=None
    )
    return page(request, "keys.html", status=status, keys=found.items, secret=secret)


async def list_keys(request: Request) -> Response:
    """GET /ui/keys."""
    return await keys_page(request)


async def add_key(request: Request) -> Response:
    """POST /ui/keys: the page itself answers with the secret, so it is in no URL and is not shown again."""
    name = str((await request.form()).get("name", "")).strip()
    if not 1 <= len(name) <= MAX_NAME:
        raise Invalid(f"a key's name is 1 to {MAX_NAME} characters")
    _, secret = await create_key(accounts=deps(request).stores.accounts, owner=principal(request).user_id, name=name)
    return await keys_page(request, secret=secret, status=201)


async def revoke(request: Request) -> Response:
    """POST /ui/keys/{key_id}/revoke: the key stops working at once."""
    key = await deps(request).stores.accounts.revoke_key(
        request.path_params["key_id"], owner=principal(request).user_id
    )
    log.info("api_key_revoked", key_id=key.id)
    return RedirectResponse(request.url_for("ui:keys").path, status_code=303)
