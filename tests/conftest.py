"""Fixtures shared by every test folder.

- `tiny_engines`: the real tiny-preset engines (random-weight SD2-shaped pipeline
  loaded through diffusers' from_pretrained, real Whisper tiny.en), loaded once.
- `make_app`: the real aiohttp app around them, in-process, with its own data dir.
- `tiny_daemon` / `start_daemon`: the real `voicebrush serve` as a subprocess on
  loopback, for the CLI, the plugins' client, Krita and Blender.
"""

from __future__ import annotations

import os
import signal
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from voicebrush_testing import ROOT, FIXTURES, Daemon, launch_daemon, wait_ready  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may download a model
# Tests import faster_whisper directly too; onnxruntime must not write telemetry (see
# voicebrush_daemon/__init__.py).
os.environ["ORT_DISABLE_TELEMETRY"] = "1"
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
