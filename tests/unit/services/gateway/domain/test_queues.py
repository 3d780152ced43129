"""The rules a queue's name and a retry's states follow (pure logic, no servers)."""

from __future__ import annotations

import pytest

from services.gateway.domain.queues import check_queue_name, check_retryable
from shared.errors import Invalid
from shared.models import JobState, new_id


def test_a_queue_name_shaped_like_an_id_is_invalid_pointing_at_the_name() -> None:
    with pytest.raises(Invalid) as refused:
        check_queue_name(new_id())
    assert [violation.pointer for violation in refused.value.violations] == ["/name"]


@pytest.mark.parametrize("name", ["science", "a" * 25, "a" * 27, "0123456789ABCDEFGHJKMNPQRS"])
def test_a_queue_name_not_shaped_like_an_id_is_accepted(name: str) -> None:
    check_queue_name(name)


def test_jobs_that_ended_without_success_can_be_retried() -> None:
    check_retryable([JobState.FAILED, JobState.TIMED_OUT, JobState.CANCELED])


def test_retrying_any_other_state_is_invalid_pointing_at_the_first_such_state() -> None:
    with pytest.raises(Invalid) as refused:
        check_retryable([JobState.FAILED, JobState.SUCCEEDED, JobState.RUNNING])
    assert [violation.pointer for violation in refused.value.violations] == ["/states/1"]
