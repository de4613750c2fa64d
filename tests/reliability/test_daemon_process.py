"""The real `voicebrush serve` process: kill -9 and restart, load, the token in the
log, and SIGTERM. One daemon is killed and a second one restarted on its data dir;
the second then takes the load, the token checks and finally the SIGTERM (the last
test here), because each start costs half a minute on a small machine.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import signal
import statistics
import threading
import time
from pathlib import Path

import aiohttp
import psutil
import pytest
import requests
from PIL import Image

from voicebrush_testing import launch_daemon
from reliability_support import SPEECH, assert_error_shape

TOKEN = "vb-token-7f3a9c1e5d2b8046"  # what must never show up in a log
WRONG_TOKENS = ("vb-token-7f3a9c1e5d2b80", "not-the-token-0a1b2c3d", "vb-token-7f3a9c1e5d2b8046x")
FAST = {"size": "64x64", "steps": 2}
LONG = {"size": "128x128", "steps": 500}  # far longer than any test waits


class Session(requests.Session):
    def __init__(self, daemon) -> None:
        super().__init__()
        self.base = daemon.url
        self.headers["Authorization"] = f"Bearer {TOKEN}"

    def request(self, method, url, *args, **kwargs):
        kwargs.setdefault("timeout", 60)
        return super().request(method, self.base + url, *args, **kwargs)

    def wait_job(self, job_id: str, statuses=("done", "failed", "cancelled"), timeout: float = 90.0, min_step: int = 0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get(f"/v1/jobs/{job_id}").json()
            if job["status"] in statuses and job["progress"]["step"] >= min_step:
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def start(data_dir: Path):
    return launch_daemon(data_dir, "--log-level", "debug", token=TOKEN)


@pytest.fixture(scope="module")
def crash(tmp_path_factory):
    """Daemon A finishes two jobs, is killed with SIGKILL in the middle of a third,
    and daemon B starts on the same data dir. Yields what the tests check."""
    data_dir = tmp_path_factory.mktemp("crash") / "data"
    first = start(data_dir)
    second = None
    try:
        api = Session(first)
        finished = []
        for fields in ({"prompt": "a lighthouse", "n": 2}, {"prompt": "a harbour"}):
            job = api.post("/v1/jobs", json={**fields, **FAST}).json()
            finished.append(api.wait_job(job["id"]))
        images = {p.name: p.read_bytes() for p in (data_dir / "images").glob("*.png")}
        cut_off = api.post("/v1/jobs", json={"prompt": "a storm", **LONG}).json()
        api.wait_job(cut_off["id"], statuses=("generating",), min_step=2)
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(30)
        second = start(data_dir)
        yield {"first": first, "second": second, "data_dir": data_dir, "finished": finished, "images": images, "cut_off": cut_off}
    finally:
        for daemon in (first, second):
            if daemon is not None and daemon.process.poll() is None:
                daemon.process.kill()
                daemon.process.wait()


def test_kill_9_mid_job_then_restart_keeps_finished_work(crash):
    api = Session(crash["second"])
    assert crash["first"].process.returncode == -signal.SIGKILL
    for before in crash["finished"]:
        after = api.get(f"/v1/jobs/{before['id']}").json()
        assert after["status"] == "done" and len(after["images"]) == before["n"]
        for url in after["images"]:
            name = url.rsplit("/", 1)[1]
            served = api.get(f"/v1/images/{name}").content
            assert served == crash["images"][name]  # byte for byte what was there before the crash
    cut_off = api.get(f"/v1/jobs/{crash['cut_off']['id']}").json()
    assert cut_off["status"] == "failed" and cut_off["error"]["code"] == "interrupted", cut_off
    assert cut_off["images"] == []
    data_dir = crash["data_dir"]
    assert list(data_dir.rglob(".partial-*")) == []
    done_images = {name.rsplit("/", 1)[1] for job in api.get("/v1/jobs").json()["data"] for name in job["images"]}
    on_disk = {p.name for p in (data_dir / "images").glob("*")}
    assert on_disk == done_images  # nothing half written, nothing orphaned
    for path in (data_dir / "images").glob("*.png"):
        with Image.open(path) as image:
            image.verify()
    for path in (data_dir / "jobs").glob("*"):
        json.loads(path.read_bytes())
    assert not [j for j in api.get("/v1/jobs").json()["data"] if j["status"] in ("queued", "transcribing", "generating")]


def test_the_token_never_reaches_the_log(crash):
    daemon = crash["second"]
    good = {"Authorization": f"Bearer {TOKEN}"}
    assert requests.get(daemon.url + "/v1/jobs", headers=good, timeout=30).status_code == 200
    assert requests.post(daemon.url + "/v1/images/generations", json={"prompt": "a fox", **FAST}, headers=good, timeout=60).status_code == 200
    for wrong in WRONG_TOKENS:
        for header in (f"Bearer {wrong}", f"Token {TOKEN}", wrong):
            response = requests.get(daemon.url + "/v1/jobs", headers={"Authorization": header}, timeout=30)
            assert response.status_code == 401
            assert TOKEN not in response.text and wrong not in response.text
    assert requests.get(daemon.url + "/v1/jobs", timeout=30).status_code == 401
    # A client that puts the token in the URL is refused, and the URL's query is not logged.
    assert requests.get(daemon.url + f"/v1/jobs?token={TOKEN}&access_token={TOKEN}", timeout=30).status_code == 401
    logs = crash["first"].log() + daemon.log()
    assert "DEBUG" in logs and "/v1/jobs" in logs  # the debug log and the access log were on
    assert TOKEN[:12] not in logs  # not even part of it
    for wrong in WRONG_TOKENS:
        assert wrong not in logs


# ---- load ---------------------------------------------------------------------------

CLIENTS = 24
ROUNDS = 3


async def one_client(session: aiohttp.ClientSession, url: str, index: int, stats: dict) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    clip = (SPEECH / "castle.ogg").read_bytes()

    async def attempt(kind: str, send):
        while True:
            started = time.perf_counter()
            response = await send()
            body = await response.read()
            elapsed = time.perf_counter() - started
            stats["requests"] += 1
            if response.status == 429:
                stats["refused"] += 1
                retry_after = int(response.headers["Retry-After"])
                assert retry_after >= 1
                assert_error_shape(json.loads(body), "queue_full")
                # As a polite client does, bounded by the test's budget, with jitter so
                # refused clients do not come back all at once.
                await asyncio.sleep(min(retry_after, 2.0) * (0.5 + random.random()))
                continue
            assert response.status < 500, (kind, response.status, body[:300])
            stats["latency"].setdefault(kind, []).append(elapsed)
            return response.status, body

    status, body = await attempt("job", lambda: session.post(url + "/v1/jobs", json={"prompt": f"a fox {index}", **FAST}, headers=headers))
    assert status == 202, body
    job_id = json.loads(body)["id"]
    status, body = await attempt("generation", lambda: session.post(url + "/v1/images/generations", json={"prompt": f"a hare {index}", "response_format": "b64_json", **FAST}, headers=headers))
    assert status == 200, body
    Image.open(__import__("io").BytesIO(base64.b64decode(json.loads(body)["data"][0]["b64_json"]))).verify()
    if index % 6 == 0:

        def transcription():
            form = aiohttp.FormData()
            form.add_field("file", clip, filename="castle.ogg")
            return session.post(url + "/v1/audio/transcriptions", data=form, headers=headers)

        status, body = await attempt("transcription", transcription)
        assert status == 200 and json.loads(body)["text"], body
    # Every accepted job finishes: follow it to its terminal event.
    async with session.get(f"{url}/v1/jobs/{job_id}/events", headers=headers) as response:
        events = [line async for line in response.content if line.startswith(b"event: ")]
    assert events[-1] == b"event: done\n", events[-3:]
    stats["jobs_done"] += 1


async def load_round(url: str, stats: dict) -> None:
    connector = aiohttp.TCPConnector(limit=CLIENTS)
    timeout = aiohttp.ClientTimeout(total=240)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await asyncio.gather(*(one_client(session, url, i, stats) for i in range(CLIENTS)))


def test_dozens_of_clients_at_once(crash):
    daemon = crash["second"]
    process = psutil.Process(daemon.process.pid)
    stats = {"requests": 0, "refused": 0, "jobs_done": 0, "latency": {}}
    rss, seconds = [], []
    for _ in range(ROUNDS):
        started = time.monotonic()
        asyncio.run(load_round(daemon.url, stats))
        seconds.append(time.monotonic() - started)
        rss.append(process.memory_info().rss / 2**20)
    assert stats["jobs_done"] == CLIENTS * ROUNDS
    latencies = {kind: sorted(values) for kind, values in stats["latency"].items()}
    summary = {kind: (len(v), statistics.median(v), v[int(0.95 * (len(v) - 1))]) for kind, v in latencies.items()}
    print(f"\nload: {CLIENTS} concurrent clients x {ROUNDS} rounds, {stats['requests']} requests "
          f"({stats['refused']} refused with 429), rounds took {[round(s, 1) for s in seconds]} s")
    for kind, (count, p50, p95) in summary.items():
        print(f"  {kind}: {count} answered, p50 {p50:.2f} s, p95 {p95:.2f} s")
    print(f"  daemon RSS after each round (MiB): {[round(r) for r in rss]}")
    # Stable: after the first round warmed every path, later rounds do not keep growing.
    assert rss[-1] - rss[0] < 100, rss
    health = requests.get(daemon.url + "/v1/health", timeout=30).json()
    assert health["queue"] == {"running": 0, "waiting": 0}


# ---- SIGTERM (last: it stops the daemon) ---------------------------------------------


def follow(url: str, job_id: str, seen: list) -> None:
    with requests.get(f"{url}/v1/jobs/{job_id}/events", headers={"Authorization": f"Bearer {TOKEN}"}, stream=True, timeout=60) as response:
        for line in response.iter_lines():
            if line.startswith(b"event: "):
                seen.append(line[7:].decode())
    seen.append("<end of stream>")


def test_sigterm_cancels_the_running_job_marks_the_queue_and_ends_streams(crash):
    daemon = crash["second"]
    api = Session(daemon)
    running = api.post("/v1/jobs", json={"prompt": "a long storm", **LONG}).json()
    queued = [api.post("/v1/jobs", json={"prompt": f"waiting {i}", **FAST}).json() for i in range(2)]
    api.wait_job(running["id"], statuses=("generating",), min_step=1)
    streams = {job["id"]: [] for job in (running, queued[0])}
    threads = [threading.Thread(target=follow, args=(daemon.url, job_id, seen)) for job_id, seen in streams.items()]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both streams connected

    started = time.monotonic()
    daemon.process.send_signal(signal.SIGTERM)
    rc = daemon.process.wait(30)
    took = time.monotonic() - started
    for thread in threads:
        thread.join(10)
    print(f"\nSIGTERM with a job running and 2 queued: exit {rc} after {took:.1f} s")
    assert rc == 0
    assert took < 15
    for job_id, seen in streams.items():
        assert seen[-2:] == ["cancelled", "<end of stream>"], (job_id, seen)
    jobs_dir = crash["data_dir"] / "jobs"
    for job in (running, *queued):
        record = json.loads((jobs_dir / f"{job['id']}.json").read_bytes())
        assert record["status"] == "cancelled", record
        assert record["error"]["code"] == "shutdown", record
    assert list(crash["data_dir"].rglob(".partial-*")) == []
