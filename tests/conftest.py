"""Fixtures shared by every test folder.

- `tiny_engines`: the real tiny-preset engines (random-weight SD2-shaped pipeline
  loaded through diffusers' from_pretrained, real Whisper tiny.en), loaded once.
- `make_app`: the real aiohttp app around them, in-process, with its own data dir.
- `tiny_daemon` / `start_daemon`: the real `voicebrush serve` as a subprocess on
  loopback, for the CLI, the plugins' client, Krita and Blender.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
sys.path.insert(0, str(ROOT / "daemon"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may download a model
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    """One models dir for the session, so the tiny pipeline is built once."""
    return tmp_path_factory.mktemp("models-root")


@pytest.fixture(scope="session")
def tiny_settings(models_dir):
    from voicebrush_daemon.settings import Settings

    return Settings(preset="tiny", data_dir=models_dir, device="cpu", preview_every=1)


@pytest.fixture(scope="session")
def tiny_engines(tiny_settings):
    from voicebrush_daemon.server.app import load_real_engines

    return load_real_engines(tiny_settings)


@pytest.fixture
def make_app(tiny_engines, tiny_settings, tmp_path):
    """make_app(**settings_overrides) -> the real app, with real tiny engines and a fresh data dir."""
    from voicebrush_daemon.server.app import create_app

    def build(load_engines=None, **overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        settings = replace(tiny_settings, **overrides)
        # The tiny pipeline lives in the session's models dir, already built.
        return create_app(settings, load_engines=load_engines or (lambda: tiny_engines))

    return build


@pytest.fixture
async def client(make_app, aiohttp_client):
    """An in-process client of a ready app."""
    app = make_app()
    test_client = await aiohttp_client(app)
    await wait_ready(test_client)
    return test_client


async def wait_ready(test_client, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = await test_client.get("/v1/health")
        if response.status == 200:
            return await response.json()
        body = await response.json()
        if body.get("status") == "error":
            raise AssertionError(f"models failed to load: {body}")
        await __import__("asyncio").sleep(0.05)
    raise AssertionError("models did not load in time")


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


@pytest.fixture(scope="session")
def tiny_daemon(tmp_path_factory, models_dir):
    """A real `voicebrush serve --preset tiny` on loopback for the whole session."""
    data_dir = tmp_path_factory.mktemp("tiny-daemon") / "data"
    daemon = launch_daemon(data_dir)
    yield daemon
    daemon.stop()


@pytest.fixture
def start_daemon(tmp_path):
    """start_daemon(*extra_args, token=None, data_dir=None) -> Daemon, stopped after the test."""
    started: list[Daemon] = []

    def start(*extra: str, token: str | None = None, data_dir: Path | None = None, **kwargs) -> Daemon:
        daemon = launch_daemon(data_dir or tmp_path / f"data{len(started)}", *extra, token=token, **kwargs)
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop(signal.SIGKILL if daemon.process.poll() is None else signal.SIGTERM)
