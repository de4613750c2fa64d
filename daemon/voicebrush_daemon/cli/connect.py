"""Which daemon a client command talks to, and the one it runs in this process when none answers.

The rule, the same for the flag and the environment:
- `--server URL` or `$VOICEBRUSH_SERVER` name a daemon, and it must answer: if nothing
  does, the command fails in one line (a studio's GPU box that is down is not replaced
  by loading the models here).
- With neither, the daemon at http://127.0.0.1:7860 if one answers; else the command
  runs in this process, loading only the models it needs.
- `--in-process` skips the search.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import time
from dataclasses import dataclass

from voicebrush_client import Client, VoicebrushError

from ..models import PRESETS, ModelUnavailable
from ..settings import Settings
from .arguments import DEFAULT_SERVER, SERVER_ENV, settings_from_args, token_of
from .console import CommandFailed, describe_client_error, say

# How long a command waits for a daemon that is still loading its models.
LOADING_WAIT_S = 600.0


@dataclass(frozen=True)
class Target:
    url: str
    named_by: str | None  # "--server", "$VOICEBRUSH_SERVER", or None for the default


def target_of(args: argparse.Namespace) -> Target:
    if args.server:
        return Target(args.server, "--server")
    if os.environ.get(SERVER_ENV, "").strip():
        return Target(os.environ[SERVER_ENV].strip(), f"${SERVER_ENV}")
    return Target(DEFAULT_SERVER, None)


def find_daemon(args: argparse.Namespace) -> Client | None:
    """A Client for the daemon the options name, once it is ready; None when the command
    should run in this process. Raises CommandFailed."""
    if args.in_process:
        return None
    target = target_of(args)
    try:
        client = Client(target.url, token=token_of(args), timeout=30.0)
        health = client.health()
        if health.get("status") == "loading":
            say(f"voicebrush: the daemon at {client.server} is loading its models; waiting ...")
            deadline = time.monotonic() + LOADING_WAIT_S
            while health.get("status") == "loading" and time.monotonic() < deadline:
                time.sleep(0.5)
                health = client.health()
    except VoicebrushError as exc:
        if exc.code == "unreachable" and target.named_by is None:
            return None
        raise CommandFailed(describe_client_error(exc, target.named_by)) from None
    if health.get("status") != "ok":
        error = health.get("error") or {}
        raise CommandFailed(f"the daemon at {client.server} is not ready: {error.get('message') or health.get('status')}")
    return client


@contextlib.contextmanager
def daemon_for(args: argparse.Namespace, *, speech: bool):
    """A Client for the daemon to use; when there is none, for one run in this process
    for the duration, with the image model and (if `speech`) the speech model."""
    client = find_daemon(args)
    if client is not None:
        yield client
        return
    from ..server.runner import InProcessDaemon, StartupError

    settings = settings_from_args(args)
    where = "" if args.in_process else f"no daemon at {DEFAULT_SERVER}; "
    say(f"voicebrush: {where}running this command in this process (--preset {settings.preset}; loading the models takes a moment) ...")
    try:
        with InProcessDaemon(settings, load_engines=engines_loader(settings, speech=speech)) as daemon:
            yield Client(daemon.url, timeout=30.0)
    except StartupError as exc:
        raise CommandFailed(with_preset_hint(str(exc), exc.__cause__, settings), exc.exit_code) from None


def with_preset_hint(message: str, cause: BaseException | None, settings: Settings) -> str:
    """Missing weights of a real preset: say how to try voicebrush without them."""
    if isinstance(cause, ModelUnavailable) and settings.preset in PRESETS and settings.preset != "tiny":
        return f"{message} (to try voicebrush without downloading anything: --preset tiny)"
    return message


def engines_loader(settings: Settings, *, speech: bool):
    def load():
        from ..imaging import load_image_generator
        from ..jobs.worker import Engines
        from ..speech import load_transcriber

        image = load_image_generator(settings)
        return Engines(image=image, speech=load_transcriber(settings) if speech else SpeechOnFirstUse(settings))

    return load


class SpeechOnFirstUse:
    """The speech model of a one-shot daemon whose command does not need it: loaded only
    if audio does arrive (on the worker thread, like any model call)."""

    def __init__(self, settings: Settings) -> None:
        from ..speech import asr_model_name

        self._settings = settings
        self._loaded = None
        self.model_id = asr_model_name(settings)
        self.engine = settings.asr_engine

    def transcribe(self, samples, options=None):
        from ..errors import ApiError
        from ..speech import load_transcriber
        from ..speech.base import TranscribeOptions

        if self._loaded is None:
            try:
                self._loaded = load_transcriber(self._settings)
            except ModelUnavailable as exc:
                raise ApiError(503, str(exc), "model_unavailable", type="server_error") from None
            self.model_id = self._loaded.model_id
        return self._loaded.transcribe(samples, options or TranscribeOptions())

    def close(self) -> None:
        if self._loaded is not None:
            self._loaded.close()
