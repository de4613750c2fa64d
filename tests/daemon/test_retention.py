"""History retention in the daemon: which jobs go, never a queued or running one, the
daily pass, and POST /v1/history/prune. (Across a restart, through the real process:
test_cli_history.py.)"""

from __future__ import annotations

import asyncio
import time

import pytest

from voicebrush_daemon.jobs.model import DONE, FAILED, GENERATING, QUEUED, Job
from voicebrush_daemon.jobs.retention import DAY_S, Retention, expired
from voicebrush_daemon.server.state import STORE

from test_api import FAST, assert_error
from voicebrush_testing import wait_job, wait_ready

# The history is the front door's: the same with the models in process or on the studio cluster.
pytestmark = pytest.mark.both_backends

NOW = 1_800_000_000.0


def job(name: str, days_old: float, status: str = DONE) -> Job:
    return Job(id=name, kind="dictation", status=status, created=NOW - days_old * DAY_S)


@pytest.mark.parametrize(
    "retention, gone",
    [
        (Retention(keep_days=30), {"old", "older"}),
        (Retention(max_jobs=2), {"middle", "old", "older"}),
        (Retention(keep_days=30, max_jobs=3), {"old", "older"}),
        (Retention(keep_days=0.5, max_jobs=10), {"middle", "old", "older"}),
        (Retention(max_jobs=0), {"new", "newer", "middle", "old", "older"}),
        (Retention(), set()),
    ],
)
def test_which_jobs_a_policy_deletes(retention, gone):
    jobs = [job("new", 0), job("newer", 0.1), job("middle", 2), job("old", 40), job("older", 400, FAILED),
            # Queued or running: never deleted, however old, and not counted.
            job("stuck-queued", 500, QUEUED), job("running", 90, GENERATING)]
    doomed = expired(jobs, retention, NOW)
    assert {j.id for j in doomed} == gone
    assert [j.created for j in doomed] == sorted(j.created for j in doomed)  # oldest first


async def finished_jobs(client, count: int) -> list[dict]:
    jobs = []
    for index in range(count):
        created = await (await client.post("/v1/jobs", json={"prompt": f"a lighthouse number {index}", **FAST})).json()
        jobs.append(await wait_job(client, created["id"]))
    return jobs


def path_of(url: str) -> str:
    return "/v1/" + url.split("/v1/", 1)[1]


async def test_prune_route_deletes_records_and_images_and_answers_404_after(client):
    first, second, third = await finished_jobs(client, 3)
    store = client.app[STORE]
    store.get(first["id"]).created -= 40 * DAY_S
    dry = await (await client.post("/v1/history/prune", json={"keep_days": 30, "dry_run": True})).json()
    assert dry["deleted"] == [first["id"]] and dry["dry_run"] is True and dry["kept"] == 2
    assert (await client.get(path_of(first["images"][0]))).status == 200  # nothing deleted yet
    answer = await (await client.post("/v1/history/prune", json={"keep_days": 30, "max_jobs": 1})).json()
    assert set(answer["deleted"]) == {first["id"], second["id"]} and answer["kept"] == 1
    for gone in (first, second):
        response = await client.get(path_of(gone["images"][0]))
        assert response.status == 404
        assert_error(await response.json(), "image_not_found")
        response = await client.get(f"/v1/jobs/{gone['id']}")
        assert response.status == 404
        assert_error(await response.json(), "job_not_found")
    assert (await client.get(path_of(third["images"][0]))).status == 200
    listed = (await (await client.get("/v1/jobs")).json())["data"]
    assert [j["id"] for j in listed] == [third["id"]]
    assert {p.name.split("-")[0] for p in store.images_dir.iterdir()} == {third["id"]}
    assert {p.stem for p in store.jobs_dir.glob("*.json")} == {third["id"]}


@pytest.mark.parametrize(
    "body, param",
    [({}, "keep_days"), ({"keep_days": -1}, "keep_days"), ({"keep_days": "30"}, "keep_days"), ({"max_jobs": 1.5}, "max_jobs"),
     ({"max_jobs": True}, "max_jobs"), ({"max_jobs": 3, "dry_run": "yes"}, "dry_run")],
)
async def test_prune_route_refuses_bad_policies_in_the_error_shape(client, body, param):
    response = await client.post("/v1/history/prune", json=body)
    assert response.status == 400
    assert_error(await response.json(), param=param)


async def test_the_daily_pass_prunes_but_never_a_running_job(make_app, aiohttp_client, monkeypatch):
    from voicebrush_daemon.server import retention

    monkeypatch.setattr(retention, "DAY_S", 0.2)  # "once a day", five times a second
    client = await aiohttp_client(make_app(keep_days=1))
    await wait_ready(client)
    store = client.app[STORE]
    (done,) = await finished_jobs(client, 1)
    # Long enough (a minute and more here) to be running through every pass below.
    running = await (await client.post("/v1/jobs", json={"prompt": "a storm", "size": "256x256", "steps": 500})).json()
    deadline = time.monotonic() + 120  # a busy machine may take a while to start it
    while store.get(running["id"]).status != GENERATING and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert store.get(running["id"]).status == GENERATING
    # Both look years old now; only the finished one may go.
    store.get(done["id"]).created -= 1000 * DAY_S
    store.get(running["id"]).created -= 1000 * DAY_S
    deadline = time.monotonic() + 30
    while store.get(done["id"]) is not None and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert store.get(done["id"]) is None
    assert (await client.get(path_of(done["images"][0]))).status == 404
    assert store.get(running["id"]).status == GENERATING
    await client.delete(f"/v1/jobs/{running['id']}")
    await wait_job(client, running["id"])
