"""Query parameter parsing: pure logic, no servers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from starlette.responses import Response

from services.gateway.plumbing.answers import Out
from services.gateway.plumbing.params import link_response, parse_timestamp
from shared.errors import BadRequest


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31", datetime(2026, 1, 31, tzinfo=UTC)),
        ("2026-01-31T12:00:00Z", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00", datetime(2026, 1, 31, 12, tzinfo=UTC)),
        ("2026-01-31T12:00:00+02:00", datetime(2026, 1, 31, 12, tzinfo=timezone(timedelta(hours=2)))),
        ("2026-01-31T12:00:00 02:00", datetime(2026, 1, 31, 12, tzinfo=timezone(timedelta(hours=2)))),
        ("2026-01-31T12:00:00.250-05:00", datetime(2026, 1, 31, 12, 0, 0, 250000, timezone(timedelta(hours=-5)))),
    ],
)
def test_iso_timestamps_are_read_with_utc_as_the_default_zone(text: str, expected: datetime) -> None:
    assert parse_timestamp("created_after", text) == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01", "", "1700000000", "2026-01-31T25:00"])
def test_anything_else_is_bad_request_naming_the_parameter(text: str) -> None:
    with pytest.raises(BadRequest, match="created_before"):
        parse_timestamp("created_before", text)


class Linked(Out):
    url: str
    size: int


def test_a_link_answers_its_model_unless_a_redirect_is_asked_for() -> None:
    answer = Linked(url="https://s3.example/bucket/key?signature=x", size=3)
    assert link_response(answer, redirect=False) is answer
    redirect = link_response(answer, redirect=True)
    assert isinstance(redirect, Response)
    assert redirect.status_code == 302 and redirect.headers["location"] == answer.url
