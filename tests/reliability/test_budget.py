"""Giant jobs: a budget of work per request by device, and shutdown inside a long step.

On the CPU, 2048x2048 x 8 x 500 was within the contract's bounds; its first step took
minutes, cancel is checked between steps, so DELETE did nothing for minutes, and
SIGTERM took 23 s and ended in "terminate called without an active exception".
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
import requests

from reliability_support import SPEECH, assert_error_shape, wait_ready
from voicebrush_testing import ROOT, daemon_env

GIANT = {"size": "2048x2048", "n": 8, "steps": 500}


@pytest.fixture
async def client(make_app, aiohttp_client):
    test_client = await aiohttp_client(make_app())
    await wait_ready(test_client)
    return test_client


async def test_a_job_beyond_the_devices_budget_is_400_too_large_stating_it(client):
    from voicebrush_daemon.budget import BUDGETS, megapixels

    cpu = BUDGETS["cpu"]
    for path in ("/v1/jobs", "/v1/images/generations"):
        for fields, param in ((GIANT, "size"), ({"size": "1024x1024", "n": 2}, "n"), ({"size": "1024x1024", "steps": 51}, "steps"), ({"size": "2048x2048"}, "size")):
            response = await client.post(path, json={"prompt": "a whole city", **fields})
            body = await response.json()
            assert response.status == 400, (path, fields, body)
            assert_error_shape(body, "too_large")
            assert body["error"]["param"] == param, (fields, body)
            assert "cpu" in body["error"]["message"], body
            stated = cpu.max_pixels_per_step if param != "steps" else cpu.max_pixel_steps
            assert f"at most {megapixels(stated)} " in body["error"]["message"], body
    # A spoken prompt too, before any transcription is spent on it.
    import aiohttp

    form = aiohttp.FormData()
    form.add_field("file", (SPEECH / "castle.ogg").read_bytes(), filename="castle.ogg")
    for name, value in GIANT.items():
        form.add_field(name, str(value))
    response = await client.post("/v1/jobs", data=form)
    assert_error_shape(await response.json(), "too_large")
    assert (await (await client.get("/v1/jobs")).json())["data"] == []  # nothing was queued
    # Within the budget is accepted, the largest picture per step and the most steps alike.
    for fields in ({"size": "1024x1024", "steps": 1}, {"size": "512x512", "n": 4, "steps": 1}, {"size": "64x64", "n": 8, "steps": 500}):
        response = await client.post("/v1/jobs", json={"prompt": "a fox", **fields})
        assert response.status == 202, (fields, await response.text())
        await client.delete(f"/v1/jobs/{(await response.json())['id']}")


async def test_the_budget_is_stated_in_openapi(client):
    from voicebrush_daemon.budget import BUDGETS

    document = await (await client.get("/openapi.json")).json()
    for path in ("/v1/images/generations", "/v1/jobs"):
        operation = document["paths"][path]["post"]
        assert operation["x-voicebrush-work-budget"] == {
            "device": "cpu", "max_pixels_per_step": BUDGETS["cpu"].max_pixels_per_step, "max_pixel_steps": BUDGETS["cpu"].max_pixel_steps, "error": "too_large"}
        assert "too_large" in operation["description"] and "megapixel" in operation["description"]


def test_budgets_by_device():
    from voicebrush_daemon.budget import budget_for

    assert budget_for("cpu").device == "cpu" and budget_for("cuda:1").device == "cuda" and budget_for("mps").device == "mps"
    assert budget_for("cuda").max_pixels_per_step == 2048 * 2048  # the contract's largest picture, once per step
    assert budget_for("cpu").max_pixels_per_step < budget_for("mps").max_pixels_per_step < budget_for("cuda").max_pixels_per_step
    assert budget_for("cpu", (10, 20)).max_pixel_steps == 20


# ---- shutdown inside a step that outlasts it ----------------------------------------

# `voicebrush serve`, with the CPU budget lifted so a first step takes minutes, as it did
# before there was one (and as a slow machine's largest allowed step may take longer
# than shutdown waits).
UNBOUNDED_SERVE = """
import sys
from voicebrush_daemon import budget, cli
budget.BUDGETS["cpu"] = budget.WorkBudget("cpu", 1 << 40, 1 << 50)
sys.exit(cli.main(sys.argv[1:]))
"""


def test_sigterm_inside_a_step_of_minutes_exits_cleanly_and_marks_the_job(tmp_path):
    data_dir = tmp_path / "data"
    log_path = tmp_path / "daemon.log"
    args = ["serve", "--preset", "tiny", "--port", "0", "--device", "cpu", "--data-dir", str(data_dir)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-c", UNBOUNDED_SERVE, *args], stdout=subprocess.PIPE, stderr=log, env=daemon_env(), cwd=ROOT)
    try:
        url = None
        for line in process.stdout:
            match = re.search(rb"voicebrush listening on (http://\S+)", line)
            if match:
                url = match.group(1).decode()
                break
        assert url, log_path.read_text()
        deadline = time.monotonic() + 120
        while requests.get(url + "/v1/health", timeout=10).status_code != 200:
            assert time.monotonic() < deadline and process.poll() is None, log_path.read_text()
            time.sleep(0.2)
        giant = requests.post(url + "/v1/jobs", json={"prompt": "a whole city", **GIANT}, timeout=30).json()
        queued = requests.post(url + "/v1/jobs", json={"prompt": "next", "size": "64x64", "steps": 1}, timeout=30).json()
        while requests.get(f"{url}/v1/jobs/{giant['id']}", timeout=10).json()["status"] != "generating":
            time.sleep(0.1)
        time.sleep(1.0)  # inside the first step, which takes minutes
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        rc = process.wait(120)
        took = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text(errors="replace")
    print(f"\nSIGTERM inside a first step of minutes: exit {rc} after {took:.1f} s")
    assert rc == 0, log[-3000:]
    assert "terminate called" not in log and "Traceback" not in log, log[-3000:]
    for job in (giant, queued):
        record = json.loads((data_dir / "jobs" / f"{job['id']}.json").read_bytes())
        assert record["status"] == "cancelled" and record["error"]["code"] == "shutdown", record
