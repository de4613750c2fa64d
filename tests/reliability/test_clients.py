"""Clients that go away or stop reading, over a real loopback socket.

- A dropped event stream (SSE) leaves its job running: jobs belong to nobody's
  connection, and `POST /v1/jobs` clients may come back and follow them later.
- A dropped synchronous `POST /v1/images/generations` cancels the job it started:
  nobody is left to receive the pictures, so the worker is freed within a step.
- A client that never reads its event stream holds neither the worker nor, after
  sse.WRITE_TIMEOUT_S, its connection.
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from reliability_support import served_app  # noqa: F401 (fixture)


def raw_request(url: str, method: str, path: str, body: dict | None = None, rcvbuf: int | None = None) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect, so the window stays small
    sock.connect((host, int(port)))
    data = json.dumps(body).encode() if body is not None else b""
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    sock.sendall(head.encode() + data)
    return sock


def post_job(served, **fields) -> dict:
    import urllib.request

    request = urllib.request.Request(served.url + "/v1/jobs", data=json.dumps(fields).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def test_a_dropped_event_stream_leaves_the_job_running(served_app):
    served = served_app()
    job = post_job(served, prompt="a lighthouse", size="64x64", steps=40)
    sock = raw_request(served.url, "GET", f"/v1/jobs/{job['id']}/events")
    received = b""
    while b"event: progress" not in received:
        received += sock.recv(4096)
    sock.close()  # the client is gone mid-job
    final = served.wait_job(job["id"])
    assert final["status"] == "done" and final["progress"] == {"step": 40, "steps": 40}
    assert len(final["images"]) == 1


def test_a_dropped_synchronous_generation_cancels_its_job_and_frees_the_worker(served_app):
    served = served_app()
    sock = raw_request(served.url, "POST", "/v1/images/generations", {"prompt": "a long storm", "size": "128x128", "steps": 500})
    deadline = time.monotonic() + 60
    while True:
        jobs = served.get_json("/v1/jobs?limit=1")["data"]
        if jobs and jobs[0]["status"] == "generating" and jobs[0]["progress"]["step"] >= 1:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.05)
    job_id = jobs[0]["id"]
    dropped = time.monotonic()
    sock.close()
    final = served.wait_job(job_id, timeout=30)
    freed = served.wait_idle(timeout=30) + (time.monotonic() - dropped)
    print(f"\ndropped synchronous request: job cancelled at step {final['progress']['step']}/500, worker free {freed:.2f} s after the drop")
    assert final["status"] == "cancelled"
    assert final["progress"]["step"] < 500
    assert freed < 10
    assert not served.queue.fresh_pngs  # nothing kept for a client that left
    nxt = post_job(served, prompt="next", size="64x64", steps=2)
    assert served.wait_job(nxt["id"])["status"] == "done"


def test_a_client_that_never_reads_cannot_hold_the_worker(served_app, monkeypatch):
    from voicebrush_daemon.server import sse
    from voicebrush_daemon.server.state import HUB

    monkeypatch.setattr(sse, "WRITE_TIMEOUT_S", 1.0)
    served = served_app()
    # Previews every step (the tests' settings) make a stream worth blocking on.
    job = post_job(served, prompt="a slow reader", size="256x256", steps=60)
    sock = raw_request(served.url, "GET", f"/v1/jobs/{job['id']}/events", rcvbuf=1024)
    started = time.monotonic()
    assert served.wait_job(job["id"], timeout=120)["status"] == "done"
    nxt = post_job(served, prompt="the next artist", size="64x64", steps=2)
    assert served.wait_job(nxt["id"], timeout=60)["status"] == "done"
    took = time.monotonic() - started
    # The never-reading client's stream is let go: written out or cut off after the timeout.
    deadline = time.monotonic() + 15
    while served.call(_subscribers, served.app[HUB], job["id"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not served.call(_subscribers, served.app[HUB], job["id"])
    print(f"\nnever-reading SSE client: both jobs done in {took:.1f} s, its stream released")
    sock.close()


async def _subscribers(hub, job_id):
    return len(hub._subscribers.get(job_id, ()))
