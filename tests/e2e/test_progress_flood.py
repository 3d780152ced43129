"""A flood of progress markers is budgeted: the runner keeps one report per tick, whatever the app printed."""

from __future__ import annotations

from datetime import datetime

import httpx

from tests.helpers.clients import UserFactory, read_stream, script_app, wait_for

TICK_SECONDS = 1.0  # the runner's tick (services.runner.follow.TICK_SECONDS)
# About 100,000 markers a second for three seconds, flushed every thousand so each tick sees some:
# some 8 MB of stdout, under the script app's 16 MB file size limit.
FLOOD = """
import sys, time
end, printed = time.monotonic() + 3, 0
while time.monotonic() < end:
    for _ in range(1000):
        printed += 1
        sys.stdout.write('##quern progress %d "marker %d"\\n' % (printed % 100, printed))
    sys.stdout.flush()
    time.sleep(0.01)
sys.stdout.write('##quern progress 100 "done"\\n')
open('printed.txt', 'w').write(str(printed))
"""


def test_a_progress_flood_makes_at_most_one_progress_event_per_tick(
    make_user: UserFactory, admin: httpx.Client
) -> None:
    name = script_app(admin, FLOOD, args=[], text_param=False, outputs=["printed.txt"])
    user = make_user()
    job = wait_for(user, user.post("/v1/jobs", json={"app": name}).json()["id"])
    assert job["state"] == "SUCCEEDED", job
    link = user.get(f"/v1/jobs/{job['id']}/outputs/printed.txt").json()["url"]
    printed = int(httpx.get(link).text)
    assert printed >= 50_000, f"only {printed} markers: no flood to budget"

    events = read_stream(user, f"/v1/jobs/{job['id']}/events")
    progress = [e["data"]["data"] for e in events if e["event"] == "progress"]
    ran = (datetime.fromisoformat(job["finished"]) - datetime.fromisoformat(job["started"])).total_seconds()
    # A tick at least every second while the app runs, and the final one once it ended.
    ticks = int(ran / TICK_SECONDS) + 2
    assert 1 <= len(progress) <= ticks, (len(progress), ran)
    assert progress[-1] == {"percent": 100, "step": "done"}
    assert (job["progress"]["percent"], job["progress"]["step"]) == (100, "done")
