"""How long a job keeps its results, and the 410 once they are gone: pure logic, no servers."""

from __future__ import annotations

from datetime import timedelta

import pytest

from services.gateway.domain.retention import KEEP_FOREVER, RetentionPolicy, require_not_expired
from shared.errors import Gone, Invalid
from shared.models import JobState, utcnow
from tests.helpers.records import make_job, make_spec

DAY = 24 * 3600


def test_a_jobs_own_retention_wins_over_its_apps() -> None:
    policy = RetentionPolicy(default_seconds=DAY)
    assert policy.for_job(make_spec(retention_seconds=3 * DAY), 60) == 60


def test_an_apps_retention_applies_when_the_job_asks_for_none() -> None:
    policy = RetentionPolicy(default_seconds=DAY)
    assert policy.for_job(make_spec(retention_seconds=3 * DAY), None) == 3 * DAY


def test_the_server_default_applies_when_neither_says() -> None:
    assert RetentionPolicy(default_seconds=DAY).for_job(make_spec(), None) == DAY


def test_without_any_retention_results_are_kept_for_ever() -> None:
    assert KEEP_FOREVER.for_job(make_spec(), None) is None


def test_asking_past_the_maximum_is_invalid_and_points_at_the_field() -> None:
    with pytest.raises(Invalid) as caught:
        RetentionPolicy(max_seconds=DAY).for_job(make_spec(), DAY + 1)
    assert [v.pointer for v in caught.value.violations] == ["/retention_seconds"]


def test_an_apps_longer_retention_is_cut_to_the_maximum() -> None:
    policy = RetentionPolicy(max_seconds=DAY)
    assert policy.for_job(make_spec(retention_seconds=3 * DAY), None) == DAY


def test_keeping_for_ever_is_cut_to_the_maximum() -> None:
    assert RetentionPolicy(max_seconds=DAY).for_job(make_spec(), None) == DAY


def test_an_expired_job_is_gone() -> None:
    with pytest.raises(Gone):
        require_not_expired(make_job(state=JobState.SUCCEEDED, finished=utcnow(), expired=utcnow()))


def test_a_job_past_its_expiry_is_gone_before_the_sweeper_deletes_it() -> None:
    ended = utcnow() - timedelta(seconds=10)
    with pytest.raises(Gone):
        require_not_expired(make_job(state=JobState.SUCCEEDED, finished=ended, retention_seconds=5))


def test_a_job_within_its_retention_is_not_gone() -> None:
    require_not_expired(make_job(state=JobState.SUCCEEDED, finished=utcnow(), retention_seconds=60))
