"""A finished job's full logs, read a byte range at a time."""

from __future__ import annotations

from tests.helpers.clients import UserFactory, archive_members, long_job, problem, tiny_job, wait_for, wait_for_app


def test_a_finished_jobs_log_reads_in_slices_equal_to_the_archived_log(make_user: UserFactory) -> None:
    user = make_user()
    job = wait_for(user, tiny_job(user, exit_code=2)["id"])  # fails, so stderr has something to say
    whole = archive_members(user, job["id"])["logs/stderr.txt"].decode()
    assert whole and set(job["links"]["logs"]) == {"stdout", "stderr"}
    url = job["links"]["logs"]["stderr"]
    everything = user.get(url).json()
    assert everything == {"name": "stderr", "offset": 0, "size": len(whole), "next_offset": len(whole), "text": whole}
    assert user.get(url, params={"offset": 3, "length": 10}).json()["text"] == whole[3:13]
    tail = user.get(url, params={"offset": -8}).json()
    assert tail["text"] == whole[-8:] and tail["offset"] == len(whole) - 8
    past = user.get(url, params={"offset": len(whole) + 5}).json()
    assert past["text"] == "" and past["next_offset"] == len(whole)
    problem(user.get(url, params={"length": 0}), 400)
    problem(user.get(f"{job['url']}/logs/nope"), 404)


def test_a_running_jobs_log_is_409_and_another_users_is_404(make_user: UserFactory) -> None:
    alice, bob = make_user(), make_user()
    job = long_job(alice)
    wait_for_app(job["id"])
    assert "events" in problem(alice.get(f"{job['url']}/logs/stdout"), 409)["detail"]
    alice.post(f"{job['url']}/cancel")
    wait_for(alice, job["id"])
    problem(bob.get(f"{job['url']}/logs/stdout"), 404)
    assert alice.get(f"{job['url']}/logs/stdout").status_code == 200
