"""The UI's pages: Jinja2 templates rendered with the signed-in user, the session's CSRF token and URL helpers.

Autoescaping is on for every template, so text from users and apps (names, parameters, log
lines, errors) is shown, never interpreted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from services.gateway.plumbing.problems import status_of
from shared.errors import AppError

TEMPLATES = Path(__file__).parent / "templates"
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def file_size(size: int) -> str:
    """A byte count as people read it: 1.5 MiB."""
    value = float(size)
    for unit in _UNITS:
        if value < 1024 or unit == _UNITS[-1]:
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


_env.filters["file_size"] = file_size


def page(request: Request, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
    """``template`` rendered for this request, with the user, CSRF token and ``url(name, **params)``."""
    session = getattr(request.state, "ui_session", None)
    shapes: dict[tuple[str, tuple[str, ...]], str] = {}

    def url(name: str, **params: Any) -> str:
        # Starlette's url_for walks every route of the app; a page of 50 jobs asks for 50 job links.
        # Each route's path is looked up once per page, with markers where its parameters go.
        key = (name, tuple(sorted(params)))
        if key not in shapes:
            try:
                shapes[key] = str(request.url_for(name, **{param: f"\x00{param}\x00" for param in params}).path)
            except (AssertionError, ValueError):  # a typed parameter (an int) takes no marker: look it up each time
                return str(request.url_for(name, **params).path)
        path = shapes[key]
        for param, value in params.items():
            path = path.replace(f"\x00{param}\x00", quote(str(value), safe=""))
        return path

    html = _env.get_template(template).render(
        user=getattr(request.state, "principal", None),
        csrf="" if session is None else session.csrf,
        url=url,
        **context,
    )
    return HTMLResponse(html, status_code=status)


def error_page(request: Request, exc: AppError) -> HTMLResponse:
    """An error as a page, with the status the API would answer (another user's job is a 404, as there)."""
    return page(request, "error.html", status=status_of(exc), title=exc.title, detail=exc.detail)


async def app_error(request: Request, exc: Exception) -> HTMLResponse:
    """Render any AppError raised by a page."""
    assert isinstance(exc, AppError)
    return error_page(request, exc)


async def http_error(request: Request, exc: Exception) -> HTMLResponse:
    """Render Starlette's own errors (unknown path, wrong method) as pages too."""
    assert isinstance(exc, HTTPException)
    title = "Not found" if exc.status_code == 404 else "Not allowed"
    return page(request, "error.html", status=exc.status_code, title=title, detail=exc.detail)
