"""Engine faults and a broken data dir: one job fails clearly, the daemon goes on.

Engine faults go through the engine interface with stand-ins (named so) that wrap the
real tiny engines and raise on a trigger prompt; everything else is real.
"""

from __future__ import annotations

import asyncio
import errno
import gc
import weakref

import aiohttp
import pytest

from reliability_support import SPEECH, wait_ready
from reliability_support import assert_error_shape

FAST = {"size": "64x64", "steps": 2}
CLIP = SPEECH / "demo_prompt.wav"


class Ballast:
    """Stands for the activations a model holds when it fails; weakref-able."""

    def __init__(self, megabytes: int) -> None:
        self.data = bytearray(megabytes * 1024 * 1024)


class FaultyImageStandIn:
    """Stand-in image engine: the real tiny one, except that the prompt "oom" raises
    torch.OutOfMemoryError and "boom" raises a RuntimeError, each while holding 64 MB."""

    def __init__(self, real) -> None:
        self.real = real
        self.model_id, self.device, self.native_size = real.model_id, real.device, real.native_size
        self.schedulers, self.default_scheduler = real.schedulers, real.default_scheduler
        self.held: list[weakref.ref] = []

    def generate(self, request, on_step=None):
        if request.prompt in ("oom", "boom"):
            import torch

            ballast = Ballast(64)
            self.held.append(weakref.ref(ballast))
            if request.prompt == "oom":
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            raise RuntimeError("stand-in failure inside the model")
        return self.real.generate(request, on_step)

    def close(self) -> None:
        pass


class FaultySpeechStandIn:
    """Stand-in speech engine: the real tiny.en, except that `prompt` "oom" or "boom" raises."""

    def __init__(self, real) -> None:
        self.real, self.model_id, self.engine = real, real.model_id, real.engine

    def transcribe(self, samples, options):
        if options.prompt == "oom":
            raise MemoryError("stand-in: cannot allocate")
        if options.prompt == "boom":
            raise ValueError("stand-in failure inside the recogniser")
        return self.real.transcribe(samples, options)

    def close(self) -> None:
        pass


@pytest.fixture
async def faulty(make_app, aiohttp_client, tiny_engines):
    from voicebrush_daemon.jobs.worker import Engines

    engines = Engines(image=FaultyImageStandIn(tiny_engines.image), speech=FaultySpeechStandIn(tiny_engines.speech))
    client = await aiohttp_client(make_app(load_engines=lambda: engines))
    await wait_ready(client)
    client.engines = engines
    return client


async def finish(client, job_id):
    for _ in range(1200):
        job = await (await client.get(f"/v1/jobs/{job_id}")).json()
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(job)


@pytest.mark.parametrize("trigger,code", [("oom", "out_of_memory"), ("boom", "engine_error")])
async def test_a_model_failure_fails_only_that_job_and_frees_its_memory(faulty, trigger, code):
    ok_before = await (await faulty.post("/v1/jobs", json={"prompt": "a fox", **FAST})).json()
    bad = await (await faulty.post("/v1/jobs", json={"prompt": trigger, **FAST})).json()
    ok_after = await (await faulty.post("/v1/jobs", json={"prompt": "a hare", **FAST})).json()
    assert (await finish(faulty, ok_before["id"]))["status"] == "done"
    failed = await finish(faulty, bad["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == code, failed
    assert failed["error"]["message"] and failed["images"] == []
    assert (await finish(faulty, ok_after["id"]))["status"] == "done"
    gc.collect()
    # Nothing (no traceback, log record or job) keeps what the failed call held.
    assert [ref() for ref in faulty.engines.image.held] == [None]
    # The synchronous route says the same with a status: 503 for memory, 500 otherwise.
    response = await faulty.post("/v1/images/generations", json={"prompt": trigger, **FAST})
    assert response.status == (503 if code == "out_of_memory" else 500)
    assert_error_shape(await response.json(), code)
    assert (await faulty.post("/v1/images/generations", json={"prompt": "a hare", **FAST})).status == 200
    for _ in range(100):  # the worker marks itself idle just after the last event
        health = await (await faulty.get("/v1/health")).json()
        if health["queue"] == {"running": 0, "waiting": 0}:
            break
        await asyncio.sleep(0.02)
    assert health["status"] == "ok" and health["queue"] == {"running": 0, "waiting": 0}


@pytest.mark.parametrize("trigger,status,code", [("oom", 503, "out_of_memory"), ("boom", 500, "engine_error")])
async def test_a_speech_model_failure_fails_only_that_request(faulty, trigger, status, code):
    def form(prompt):
        data = aiohttp.FormData()
        data.add_field("file", CLIP.read_bytes(), filename=CLIP.name)
        data.add_field("prompt", prompt)
        return data

    response = await faulty.post("/v1/audio/transcriptions", data=form(trigger))
    assert response.status == status
    assert_error_shape(await response.json(), code)
    response = await faulty.post("/v1/audio/transcriptions", data=form("a harbour"))
    assert response.status == 200 and "harbo" in (await response.json())["text"].lower()


async def test_a_model_that_fails_to_load_is_reported_by_health_and_503(make_app, aiohttp_client):
    def broken_load():
        raise RuntimeError("CUDA driver version is insufficient for CUDA runtime version")

    client = await aiohttp_client(make_app(load_engines=broken_load))
    for _ in range(200):
        response = await client.get("/v1/health")
        body = await response.json()
        if body["status"] != "loading":
            break
        await asyncio.sleep(0.02)
    assert response.status == 503 and body["status"] == "error"
    assert "CUDA driver version is insufficient" in body["error"]["message"]
    form = aiohttp.FormData()
    form.add_field("file", CLIP.read_bytes(), filename=CLIP.name)
    for method, path, kwargs in [
        ("POST", "/v1/jobs", {"json": {"prompt": "a fox"}}),
        ("POST", "/v1/images/generations", {"json": {"prompt": "a fox", "scheduler": "euler"}}),
        ("POST", "/v1/audio/transcriptions", {"data": form}),
        ("GET", "/v1/models", {}),
    ]:
        response = await client.request(method, path, **kwargs)
        assert response.status == 503, path
        body = await response.json()
        assert_error_shape(body, "model_unavailable")
        assert "CUDA driver version is insufficient" in body["error"]["message"]
    # What needs no model still works.
    assert (await client.get("/v1/jobs")).status == 200
    assert (await client.get("/openapi.json")).status == 200


# ---- the data dir -----------------------------------------------------------------


async def test_an_unwritable_images_folder_fails_jobs_clearly_and_the_rest_serves(make_app, aiohttp_client, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "images").write_text("a file where the images folder should be")  # root ignores chmod; this stops root too
    client = await aiohttp_client(make_app(data_dir=data))
    await wait_ready(client)
    health = await (await client.get("/v1/health")).json()
    assert health["status"] == "ok" and health["storage"]["ok"] is False
    assert "images" in health["storage"]["error"]

    response = await client.post("/v1/images/generations", json={"prompt": "a fox", **FAST})
    assert response.status == 507
    assert_error_shape(await response.json(), "storage_error")
    job = await (await client.post("/v1/jobs", json={"prompt": "a fox", **FAST})).json()
    failed = await finish(client, job["id"])
    assert failed["status"] == "failed" and failed["error"]["code"] == "storage_error"
    assert "images" in failed["error"]["message"]
    # A good write to jobs/ must not hide the broken images/ folder.
    health = await (await client.get("/v1/health")).json()
    assert health["storage"]["ok"] is False

    # What needs no disk goes on: speech, history, the failed job's record.
    form = aiohttp.FormData()
    form.add_field("file", CLIP.read_bytes(), filename=CLIP.name)
    assert (await client.post("/v1/audio/transcriptions", data=form)).status == 200
    history = await (await client.get("/v1/jobs")).json()
    assert job["id"] in [j["id"] for j in history["data"]]

    # Fixed while it runs: the next generation works without a restart.
    (data / "images").unlink()
    assert (await client.post("/v1/images/generations", json={"prompt": "a fox", **FAST})).status == 200
    assert (await (await client.get("/v1/health")).json())["storage"] == {"ok": True, "error": None}


async def test_a_full_disk_leaves_no_partial_file(make_app, aiohttp_client, tmp_path, monkeypatch):
    import os

    from voicebrush_daemon.jobs import store as store_module

    client = await aiohttp_client(make_app())
    await wait_ready(client)
    real_fsync = os.fsync

    def fsync_on_a_full_disk(fd):
        # As a full disk answers: the data could not be made durable.
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(store_module.os, "fsync", fsync_on_a_full_disk)
    try:
        response = await client.post("/v1/images/generations", json={"prompt": "a fox", **FAST})
        assert response.status == 507
        body = await response.json()
        assert_error_shape(body, "storage_error")
        assert "No space left on device" in body["error"]["message"]
        health = await (await client.get("/v1/health")).json()
        assert "No space left on device" in health["storage"]["error"]
    finally:
        monkeypatch.setattr(store_module.os, "fsync", real_fsync)
    data = tmp_path / "data"
    leftovers = [p.name for p in data.rglob(".partial-*")]
    assert leftovers == []
    assert (await client.post("/v1/images/generations", json={"prompt": "a fox", **FAST})).status == 200
