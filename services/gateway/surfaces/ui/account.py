"""The account page: changing one's password, and signing out everywhere.

Both end every login token and UI session of the user's (their ``tokens_valid_after`` moves to
now). A password change signs this browser in again with the new password, so it stays signed
in; signing out everywhere sends it to the login page with the rest.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from services.gateway.deps import deps
from services.gateway.domain.accounts import change_password, log_out_everywhere
from services.gateway.domain.browser_sessions import open_session
from services.gateway.plumbing.auth import authenticator, client_address, principal
from services.gateway.surfaces.ui.sign_in import signed_in, signed_out
from services.gateway.surfaces.ui.templates import page
from shared.errors import Invalid

MIN_PASSWORD, MAX_PASSWORD = 12, 1024


def account_page(request: Request, *, error: str | None = None) -> Response:
    """The account page; with ``error``, the password form's refusal (422)."""
    changed = error is None and request.query_params.get("changed") == "1"
    message = "Your password was changed." if changed else None
    return page(request, "account.html", status=200 if error is None else 422, message=message, error=error)


async def show_account(request: Request) -> Response:
    """GET /ui/account."""
    return account_page(request)


async def change(request: Request) -> Response:
    """POST /ui/account/password: the form again with why not, or this browser signed in with the new password."""
    form = await request.form()
    current, new, again = (str(form.get(name, ""))[:MAX_PASSWORD] for name in ("current", "new", "again"))
    if new != again:
        return account_page(request, error="The new password and its repetition differ.")
    if len(new) < MIN_PASSWORD:
        return account_page(request, error=f"A password has at least {MIN_PASSWORD} characters.")
    d, who = deps(request), principal(request)
    try:
        user = await change_password(
            accounts=d.stores.accounts, hashing=d.logins.hashing, user_id=who.user_id, current=current, new=new
        )
    except Invalid as exc:
        why = "; ".join(f"{v.pointer.strip('/').replace('_', ' ')} {v.detail}" for v in exc.violations) or exc.detail
        return account_page(request, error=f"The password was not changed: {why}.")
    authenticator(request).forget(user.id)
    await signed_out(request)  # this browser's session ended with the rest: it gets a new one
    _, secret = await open_session(
        accounts=d.stores.accounts,
        sessions=d.stores.sessions,
        guard=d.logins,
        address=client_address(request),
        username=user.username,
        password=new,
        ttl_seconds=d.settings.ui_session_ttl_seconds,
    )
    return signed_in(request, f"{request.url_for('ui:account').path}?changed=1", secret)


async def sign_out_everywhere(request: Request) -> Response:
    """POST /ui/account/logout-all: every token and session of the user's ends, this one too."""
    user = await log_out_everywhere(accounts=deps(request).stores.accounts, user_id=principal(request).user_id)
    authenticator(request).forget(user.id)
    return await signed_out(request)
