"""Absolute links to the API's own resources, as ``str(request.url_for(name, **params))`` gives them."""

from __future__ import annotations

from starlette.requests import Request


def link(request: Request, name: str, /, **params: str) -> str:
    """The absolute URL of the route called ``name`` with these path parameters."""
    state = request.app.state
    templates: dict[tuple[str, ...], str] | None = getattr(state, "link_templates", None)
    if templates is None:
        templates = state.link_templates = {}
    key = (name, *sorted(params))
    if (template := templates.get(key)) is None:
        router = request.scope.get("router") or request.app
        template = templates[key] = str(router.url_path_for(name, **{param: "{" + param + "}" for param in params}))
    return str(request.base_url).rstrip("/") + template.format_map(params)
