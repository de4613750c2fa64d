"""Fixtures shared by every test folder.

- `tiny_engines`: the real tiny-preset engines (random-weight SD2-shaped pipeline
  loaded through diffusers' from_pretrained, real Whisper tiny.en), loaded once.
- `make_app`: the real aiohttp app around them, in-process, with its own data dir.
- `tiny_daemon` / `start_daemon`: the real `voicebrush serve` as a subprocess on
  loopback, for the CLI, the plugins' client, Krita and Blender.
- `studio`: one local Ray cluster (a head and two nodes with a logical GPU each) for
  the whole session, started by the first test that needs it (voicebrush_daemon/cluster/local.py).

Backends: a test module or test marked `both_backends` runs once with the models in
process and once as the front door of the studio cluster (`make_app` and `client` build
either); `in_process_only` keeps one test of such a module to the first. A module that
drives a real `voicebrush serve` with a client we did not write (the OpenAI SDK, webuiapi)
launches it with `serve_args`, which does the same.
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

BACKENDS = ("in-process", "ray")

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


def pytest_generate_tests(metafunc):
    if "app_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends") and not metafunc.definition.get_closest_marker("in_process_only"):
        metafunc.parametrize("app_backend", BACKENDS, indirect=True)


@pytest.fixture
def app_backend(request) -> str:
    """Where make_app's models run: "in-process" (the default) or "ray" (the studio cluster)."""
    return getattr(request, "param", "in-process")


def front_door_args(studio) -> tuple[str, ...]:
    """`voicebrush serve` arguments of a front door of the studio cluster."""
    return ("--ray", studio.address, "--replicas", "2", "--replica-data-dir", str(studio.models_root))


@pytest.fixture(scope="module", params=BACKENDS)
def serve_args(request) -> tuple[str, ...]:
    """For a module's one real `voicebrush serve` (launch_daemon), run once per backend: no
    extra arguments, then those of a front door of the studio cluster."""
    if request.param == "in-process":
        return ()
    return front_door_args(request.getfixturevalue("studio"))


@pytest.fixture(scope="module", params=BACKENDS)
def plugin_daemon(request, tmp_path_factory):
    """What the plugins' shared client talks to, once per backend: the session's tiny daemon,
    then a real `voicebrush serve --ray` in front of the studio cluster."""
    if request.param == "in-process":
        return request.getfixturevalue("tiny_daemon")
    daemon = launch_daemon(tmp_path_factory.mktemp("front-door") / "data", *front_door_args(request.getfixturevalue("studio")), timeout=300)
    request.addfinalizer(daemon.stop)
    return daemon


@pytest.fixture(scope="session")
def studio(tiny_engines, tiny_settings):
    """The session's one local Ray cluster; its replicas load the tiny pipeline that
    tiny_engines built in the session's models dir."""
    from voicebrush_daemon.cluster.local import start_cluster, stop_cluster

    cluster = start_cluster(tiny_settings.data_dir)
    yield cluster
    stop_cluster(cluster)


@pytest.fixture
def make_app(tiny_engines, tiny_settings, tmp_path, app_backend, request):
    """make_app(**settings_overrides) -> the real app, with real tiny engines and a fresh data dir.
    With app_backend "ray", the front door of the studio cluster instead (same settings)."""
    from voicebrush_daemon.server.app import create_app

    def build(load_engines=None, **overrides):
        overrides.setdefault("data_dir", tmp_path / "data")
        settings = replace(tiny_settings, **overrides)
        if app_backend == "ray":
            assert load_engines is None, "a test that brings its own engines is in_process_only"
            return create_app(request.getfixturevalue("studio").settings(settings))
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
