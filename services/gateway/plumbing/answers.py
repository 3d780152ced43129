"""Answers: the typed models endpoints answer with, and how a model becomes an HTTP response."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

M = TypeVar("M", bound=BaseModel)


class Out(BaseModel):
    """An answer: no field may be missing, none may be added without saying so here."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Reply(Generic[M]):
    """An answer's model sent with a status other than its operation's, or with headers."""

    body: M
    status: int | None = None
    headers: Mapping[str, str] | None = None


def json_response(body: BaseModel, *, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """The model as JSON (by its field aliases, so ``from_`` is sent as ``from``)."""
    return Response(
        body.model_dump_json(by_alias=True), status_code=status, headers=headers, media_type="application/json"
    )
