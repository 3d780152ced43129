"""The job store's TES queries against the test Mongo: each TES state as a condition agrees with task_state."""

from __future__ import annotations

from typing import Any

from services.gateway.domain.tasks import TaskState, task_state
from shared.models import TASK_APP, ExecutorLog, JobError, JobState, StateChange, TaskTag, utcnow
from shared.settings import Settings
from shared.store import Stores
from shared.store.jobs import TaskFilter
from tests.helpers.records import in_store, make_job


def change(reason: str) -> StateChange:
    return StateChange.model_validate(
        {"at": utcnow(), "from": JobState.RUNNING, "to": JobState.QUEUED, "by": "runner", "reason": reason}
    )


VARIANTS: list[dict[str, Any]] = [
    {},
    {"preemptions": 1, "history": [change("preempted by shutdown")]},
    {"preemptions": 2, "history": [change("preempted by shutdown"), change("requeued by an admin")]},
    {"state": JobState.RUNNING, "started": utcnow()},
    {"state": JobState.RUNNING, "started": utcnow(), "executor_logs": [ExecutorLog(start=utcnow())]},
    {"state": JobState.RUNNING, "started": utcnow(), "cancel_requested": utcnow()},
    {"state": JobState.SUCCEEDED, "exit_code": 0},
    {"state": JobState.FAILED, "exit_code": 2},
    {"state": JobState.TIMED_OUT},
    {"state": JobState.FAILED, "error": JobError(reason="an input could not be fetched")},
    {"state": JobState.CANCELED},
]


def test_each_tes_state_filter_finds_exactly_the_tasks_in_that_state(settings: Settings) -> None:
    tasks = [make_job(app=TASK_APP, app_version="1.1", params={}, inputs={}, **variant) for variant in VARIANTS]
    other = make_job(state=JobState.SUCCEEDED)

    async def scenario(stores: Stores) -> dict[TaskState, list[str]]:
        for one in [*tasks, other]:
            await stores.jobs.insert_job(one)
        found = {}
        for state in TaskState:
            page = await stores.jobs.list_tasks(
                TASK_APP, owner="u1", limit=50, after=None, where=TaskFilter(state=state)
            )
            found[state] = sorted(job.id for job in page.items)
        return found

    found = in_store(settings, scenario)
    for state in TaskState:
        assert found[state] == sorted(one.id for one in tasks if task_state(one) is state), state
    assert {state for state in TaskState if found[state]} == set(TaskState) - {TaskState.UNKNOWN, TaskState.PAUSED}


def test_tag_filters_match_pairs_and_an_empty_value_matches_any(settings: Settings) -> None:
    def tagged(**tags: str) -> Any:
        return make_job(
            app=TASK_APP, params={}, inputs={}, task_tags=[TaskTag(key=k, value=v) for k, v in tags.items()]
        )

    both, foo, empty, none = tagged(foo="bar", baz="bat"), tagged(foo="bar"), tagged(foo=""), tagged()

    async def scenario(stores: Stores) -> list[list[str]]:
        for one in (both, foo, empty, none):
            await stores.jobs.insert_job(one)
        asked = [(("foo", "bar"),), (("foo", "bar"), ("baz", "bat")), (("foo", ""),), (("foo", "bat"),), (("baz", ""),)]
        return [
            sorted(
                j.id
                for j in (
                    await stores.jobs.list_tasks(TASK_APP, owner="u1", limit=9, after=None, where=TaskFilter(tags=tags))
                ).items
            )
            for tags in asked
        ]

    assert in_store(settings, scenario) == [
        sorted([both.id, foo.id]),
        [both.id],
        sorted([both.id, foo.id, empty.id]),
        [],
        [both.id],
    ]
