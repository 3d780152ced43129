from __future__ import annotations

import re

import pytest
from starlette.requests import Request

from services.gateway.domain.archives import check_selection, full_archive, selection_digest
from services.gateway.surfaces.native.job_results import include_globs
from shared.errors import Invalid, NotYet
from shared.models import Archive, JobState, OutputFile, utcnow
from tests.helpers.records import ended, make_job


def request_with(query: str) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "query_string": query.encode(), "headers": []})


def test_globs_are_sorted_and_deduplicated() -> None:
    assert include_globs(request_with("include=b*&include=a*&include=b*")) == ["a*", "b*"]


def test_no_include_is_the_full_archive() -> None:
    assert include_globs(request_with("redirect=1")) == []


def test_the_digest_ignores_order_and_repeats() -> None:
    assert selection_digest(["b*", "a*", "b*"]) == selection_digest(["a*", "b*"]) != selection_digest(["a*"])


@pytest.mark.parametrize(
    ("query", "pointer"),
    [
        ("&".join(f"include={n}" for n in range(21)), "/include"),
        ("include=", "/include/0"),
        ("include=" + "x" * 201, "/include/0"),
        ("include=a&include=" + "**/" * 40 + "Z", "/include/1"),
    ],
)
def test_too_many_empty_long_or_wild_globs_are_invalid(query: str, pointer: str) -> None:
    with pytest.raises(Invalid) as caught:
        include_globs(request_with(query))
    assert caught.value.violations[0].pointer == pointer


def output(path: str) -> OutputFile:
    return OutputFile(path=path, size=1, sha256="0" * 64, content_type="text/plain", key=f"jobs/j/outputs/{path}")


def test_the_full_archive_of_a_packaged_job_is_its_archive() -> None:
    archive = Archive(key="jobs/j/archive.tar.gz", size=10, sha256="0" * 64, created=utcnow())
    assert full_archive(ended(1, archive=archive)) == archive


@pytest.mark.parametrize(
    ("state", "waiting"), [(JobState.RUNNING, "finishes (it is RUNNING)"), (JobState.SUCCEEDED, "is packaged")]
)
def test_the_full_archive_is_not_yet_there_until_packaged(state: JobState, waiting: str) -> None:
    with pytest.raises(NotYet, match=f"ask again once it {re.escape(waiting)}$") as caught:
        full_archive(make_job(state=state))
    assert caught.value.retry_after == 2


def test_the_outputs_of_a_running_job_cannot_be_selected_yet() -> None:
    with pytest.raises(NotYet, match="can be selected once it finishes") as caught:
        check_selection(make_job(state=JobState.RUNNING, outputs=[output("a.csv")]), ["*.csv"])
    assert caught.value.retry_after == 5


def test_a_selection_matching_no_output_is_invalid() -> None:
    with pytest.raises(Invalid) as caught:
        check_selection(ended(1, outputs=[output("a.csv")]), ["*.png"])
    assert caught.value.violations[0].pointer == "/include"


def test_a_selection_matching_an_output_of_a_finished_job_may_be_packaged() -> None:
    check_selection(ended(1, outputs=[output("a.csv"), output("b.png")]), ["*.png"])
