"""Progress reported through the progress file ($QUERN_PROGRESS_FILE) instead of marker lines."""

from __future__ import annotations

import httpx

from tests.helpers.clients import UserFactory, script_app, wait_for


def test_an_app_may_report_progress_through_its_progress_file(make_user: UserFactory, admin: httpx.Client) -> None:
    # Running past a tick of the runner (1 s), so the file is read while the app runs, not only at its end.
    script = (
        "import json, os, time; path = os.environ['QUERN_PROGRESS_FILE']; "
        "open(path, 'w').write(json.dumps(dict(percent=50, step='halfway'))); time.sleep(1.5); "
        "open('done.txt', 'w').write('ok')"
    )
    name = script_app(admin, script, args=[], text_param=False, outputs=["done.txt"])
    user = make_user()
    job = wait_for(user, user.post("/v1/jobs", json={"app": name}).json()["id"])
    assert job["state"] == "SUCCEEDED", job
    assert (job["progress"]["percent"], job["progress"]["step"]) == (50, "halfway")
