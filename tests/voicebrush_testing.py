"""Helpers shared by test folders: paths, and the real daemon as a subprocess.

A module of its own (not conftest.py): with several conftest modules in the tree,
`from conftest import ...` would pick whichever pytest loaded first.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"


async def wait_ready(test_client, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await test_client.get("/v1/health")
        if response.status == 200:
            return await response.json()
        body = await response.json()
        if body.get("status") == "error":
            raise AssertionError(f"models failed to load: {body}")
        await asyncio.sleep(0.05)
    raise AssertionError("models did not load in time")




def parse_python(source: str, filename: str = "<unknown>", feature_version: tuple[int, int] | None = None):
    """ast.parse for the tests that read the plugins' and the daemon's sources.

    CPython 3.11 counts the AST constructor's recursion per interpreter, not per thread
    (gh-106905): while another thread of the test process (Ray's driver, a daemon's) parses
    too, a valid file can fail with SystemError "AST constructor recursion depth mismatch".
    That error says nothing about the source, so the parse is tried again; a real syntax
    error is a SyntaxError and is raised at once."""
    for attempt in range(5):
        try:
            return ast.parse(source, filename=filename, feature_version=feature_version)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == 4:
                raise
            time.sleep(0.05)

ENDED = ("done", "failed", "cancelled")


async def wait_job(client, job_id: str, timeout: float = 180.0) -> dict:
    """The job's record once it has ended. The timeout guards against a hang; it is not a
    speed check (a job on the studio cluster under a loaded CI machine is slow)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await (await client.get(f"/v1/jobs/{job_id}")).json()
        if body["status"] in ENDED:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not end: {body}")



async def read_events(response, on_event=None) -> list[tuple[str, dict]]:
    """An SSE response, read to its end, as (event name, data) pairs. `on_event(name, data)`,
    a coroutine function, is awaited on each as it comes, for a test that acts mid-stream."""
    events, name = [], None
    async for raw in response.content:
        line = raw.decode().rstrip("\n")
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            events.append((name, json.loads(line[6:])))
            if on_event is not None:
                await on_event(*events[-1])
    return events

async def wait_generating(client, job_id: str, timeout: float = 120.0) -> dict:
    """The job's record once a worker or replica has taken it and run a step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        body = await (await client.get(f"/v1/jobs/{job_id}")).json()
        if body["worker"] and body["progress"]["step"] >= 1:
            return body
        assert body["status"] in ("queued", "generating"), body
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not start: {body}")

@dataclass
class Daemon:
    url: str
    token: str | None
    data_dir: Path
    process: subprocess.Popen
    log_path: Path

    def stop(self, sig=signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def free_port() -> int:
    """A loopback port nobody listens on (right now)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def daemon_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "voicebrush_daemon", *args]


def daemon_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "daemon"), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def launch_daemon(data_dir: Path, *extra: str, token: str | None = None, wait_healthy: bool = True, timeout: float = 120.0, env: dict | None = None) -> Daemon:
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"{data_dir.name}-daemon.log"
    args = ["serve", "--preset", "tiny", "--port", "0", "--device", "cpu", "--data-dir", str(data_dir), *extra]
    if token:
        args += ["--token", token]
    log_file = open(log_path, "wb")
    process = subprocess.Popen(daemon_command(*args), stdout=subprocess.PIPE, stderr=log_file, env=env or daemon_env(), cwd=ROOT)
    deadline = time.monotonic() + timeout
    url = None
    while time.monotonic() < deadline:
        line = process.stdout.readline().decode(errors="replace")
        if not line:
            break
        match = re.search(r"voicebrush listening on (http://\S+)", line)
        if match:
            url = match.group(1)
            break
    if url is None:
        process.kill()
        raise AssertionError(f"daemon did not start: {log_path.read_text(errors='replace')[-3000:]}")
    daemon = Daemon(url, token, data_dir, process, log_path)
    if wait_healthy:
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "/v1/health", timeout=5) as response:
                    if response.status == 200:
                        return daemon
            except urllib.error.HTTPError as exc:
                if exc.code != 503:
                    raise
            except OSError:
                pass
            if process.poll() is not None:
                raise AssertionError(f"daemon exited: {daemon.log()[-3000:]}")
            time.sleep(0.1)
        daemon.stop()
        raise AssertionError(f"daemon not healthy in time: {daemon.log()[-3000:]}")
    return daemon


