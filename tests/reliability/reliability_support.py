"""Shared pieces of the reliability tests (imported by name, as the folder is on sys.path).

No conftest.py here: the top-level one is imported as `conftest` by other folders' tests,
and a second module of that name would shadow it. Test modules import the fixture below
by name.

`served_app` runs the real app (real tiny engines, fresh data dir) on a real loopback
port in a background thread, as `voicebrush serve` runs it (handler cancellation on),
so blocking clients (requests, schemathesis, raw sockets) can talk to it without the
half-minute start of a daemon process. Tests that need a process to kill or signal use
`start_daemon` from the top-level conftest.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEECH = ROOT / "tests" / "fixtures" / "speech"


def assert_error_shape(body: Any, code: str | None = None) -> None:
    """The contract's error shape, exactly: {"error": {message, type, code, param}}."""
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["type"], str) and isinstance(error["code"], str), error
    assert error["param"] is None or isinstance(error["param"], str), error
    if code is not None:
        assert error["code"] == code, error


@dataclass
class ServedApp:
    url: str
    app: Any
    loop: asyncio.AbstractEventLoop

    def call(self, coro_fn, *args, timeout: float = 30.0):
        """Run a coroutine on the server's loop (to look at its state safely)."""
        return asyncio.run_coroutine_threadsafe(coro_fn(*args), self.loop).result(timeout)

    @property
    def queue(self):
        from voicebrush_daemon.server.state import JOBS

        return self.app[JOBS]

    def get_json(self, path: str, timeout: float = 10.0) -> dict:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as response:
            return json.loads(response.read())

    def wait_job(self, job_id: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.get_json(f"/v1/jobs/{job_id}")
            if job["status"] in ("done", "failed", "cancelled"):
                return job
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} did not finish: {job}")

    def wait_idle(self, timeout: float = 60.0) -> float:
        """Seconds until the worker runs nothing and nothing waits."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            queue = self.get_json("/v1/health")["queue"]
            if queue == {"running": 0, "waiting": 0}:
                return time.monotonic() - started
            time.sleep(0.05)
        raise AssertionError(f"the worker is still busy: {queue}")


@pytest.fixture
def served_app(make_app):
    """served_app(**settings_overrides) -> ServedApp on http://127.0.0.1:PORT, ready."""
    from aiohttp import web

    from voicebrush_daemon.server.request_handler import DaemonRunner

    started: list[tuple[asyncio.AbstractEventLoop, web.AppRunner, threading.Thread]] = []

    def serve(load_engines=None, **overrides) -> ServedApp:
        app = make_app(load_engines=load_engines, **overrides)
        loop = asyncio.new_event_loop()
        ready = threading.Event()
        box: dict[str, Any] = {}

        async def setup():
            runner = DaemonRunner(app, handler_cancellation=True, shutdown_timeout=5.0)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            box["runner"], box["port"] = runner, site._server.sockets[0].getsockname()[1]

        def run():
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as exc:  # reported to the test below
                box["error"] = exc
            ready.set()
            if "error" not in box:
                loop.run_forever()

        thread = threading.Thread(target=run, name="served-app", daemon=True)
        thread.start()
        ready.wait(60)
        if "error" in box:
            raise box["error"]
        started.append((loop, box["runner"], thread))
        served = ServedApp(f"http://127.0.0.1:{box['port']}", app, loop)
        if load_engines is None:
            deadline = time.monotonic() + 60
            while served.queue.state == "loading" and time.monotonic() < deadline:
                time.sleep(0.02)
        return served

    yield serve
    for loop, runner, thread in started:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(60)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        loop.close()


async def wait_ready(client, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await client.get("/v1/health")
        body = await response.json()
        if response.status == 200:
            return body
        assert body.get("status") != "error", body
        await asyncio.sleep(0.05)
    raise AssertionError("models did not load in time")


@dataclass
class RawAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def raw_http(url: str, request: bytes, timeout: float = 10.0) -> RawAnswer:
    """Send bytes exactly as given (no client fixes them up) and read one answer."""
    import socket

    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        head, _, body = received.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "-1"))
        while len(body) < length or (length < 0 and "chunked" not in headers.get("transfer-encoding", "")):
            try:
                chunk = sock.recv(65536)
            except OSError:
                break
            if not chunk:
                break
            body += chunk
    return RawAnswer(status, headers, body[:length] if length >= 0 else body)


def http_request(method: str, path: str, host: str | None, *, headers: dict[str, str] | None = None, body: bytes = b"", version: str = "1.1") -> bytes:
    """A request with exactly this Host line (None: no Host line at all)."""
    lines = [f"{method} {path} HTTP/{version}"]
    if host is not None:
        lines.append(f"Host: {host}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
