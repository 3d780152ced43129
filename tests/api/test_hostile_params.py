"""Parameters no command line can carry are refused before any job is stored."""

from __future__ import annotations

import httpx2

from tests.helpers.clients import ApiUserFactory, echo_app, problem


def test_what_no_command_line_can_carry_is_refused_before_anything_runs(
    make_user: ApiUserFactory, admin: httpx2.Client
) -> None:
    user = make_user()
    app = echo_app(admin)
    cases = {"nul": "before\x00after", "huge": "x" * 1_000_000}
    for why, text in cases.items():
        body = problem(user.post("/v1/jobs", json={"app": app, "params": {"text": text}}), 422)
        assert [error["pointer"] for error in body["errors"]] == ["/params/text"], why
    assert user.get("/v1/jobs").json()["items"] == []
