"""The Ray Serve replicas: plain classes around the same engines the daemon runs in process.

`ImageReplica` holds one ImageGenerator (imaging.load_image_generator), `SpeechReplica`
one Transcriber (speech.load_transcriber). Ray Serve makes them deployments
(backend.py); nothing here knows about the job queue, the history or HTTP.

A generation streams back as events (a streaming deployment handle reads them):
  {"event": "started", "worker": ...}
  {"event": "step", "step", "steps", "preview"?: JPEG bytes}   one per denoising step
  {"event": "done", "images": [PIL images]} | {"event": "cancelled"} | {"event": "failed", "error": {...}}
Cancelling the handle's generator cancels this method's task: the `finally` below sets
the flag the step hook returns, so the engine stops within the step it is in.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import threading
import time
from typing import Any, AsyncIterator

from ..errors import ApiError, GenerationCancelled
from ..imaging.base import GenerationRequest
from ..imaging.inputs import MODES
from ..models import ModelUnavailable
from ..settings import Settings, default_data_dir
from ..speech.base import TranscribeOptions

log = logging.getLogger(__name__)

PREVIEW_SIDE = 128  # as the in-process worker's previews
ROLL_NAME, ROLL_NAMESPACE = "voicebrush-roll", "voicebrush"


def local_settings(settings: Settings) -> Settings:
    """The front door's choices, with this machine's data dir when it named none."""
    from dataclasses import replace

    return settings if settings.data_dir is not None else replace(settings, data_dir=default_data_dir())


def _whoami(deployment: str) -> dict[str, Any]:
    """This replica as health names it: its id, its node, the GPUs Ray gave it."""
    import ray
    from ray import serve

    context = ray.get_runtime_context()
    replica_id = serve.get_replica_context().replica_id.unique_id
    node_id = context.get_node_id()
    node_ip = ray.util.get_node_ip_address()
    return {
        "replica": replica_id,
        "deployment": deployment,
        "worker": f"{node_ip}/{replica_id}",
        "node_id": node_id,
        "node_ip": node_ip,
        "gpus": [str(gpu) for gpu in ray.get_gpu_ids()],
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "pid": os.getpid(),
    }


class _Reporting:
    """What every replica tells the roll (roll.py): who it is and what it has loaded."""

    deployment = ""

    def _start_reporting(self) -> None:
        self.me = _whoami(self.deployment)
        self.jobs = 0
        self.last_cancel: dict[str, Any] | None = None
        self._report()

    def _state(self) -> dict[str, Any]:
        return {**self.me, "jobs": self.jobs, "last_cancel": self.last_cancel, "reported": time.time()}

    def _report(self) -> None:
        import ray

        try:  # fire and forget: a roll that is gone must not fail a job
            roll = ray.get_actor(ROLL_NAME, namespace=ROLL_NAMESPACE)
            roll.report.remote(self.me["replica"], self._state())
        except Exception as exc:
            log.debug("could not report to the roll: %s", exc)

    def reconfigure(self, config: dict) -> None:
        """Serve's user_config hook: the front door's fingerprint of these settings, so a
        second front door with the same settings reuses the running replicas."""
        self.fingerprint = config.get("fingerprint")


class ImageReplica(_Reporting):
    """One ImageGenerator on one GPU (or what the replica was given)."""

    deployment = "voicebrush-image"

    def __init__(self, settings: Settings, speech: Any = None) -> None:
        # `speech`: the speech deployment, bound here only so that Serve deploys both as
        # the one application (this is its ingress); the front door calls it directly.
        from ..imaging import load_image_generator

        self.generator = load_image_generator(local_settings(settings))
        self._lock = threading.Lock()  # a pipeline runs one generation at a time
        self._start_reporting()

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "device": self.generator.device, "loaded": dict(getattr(self.generator, "loaded_unets", {"main": self.generator.model_id}))}

    def describe(self) -> dict[str, Any]:
        """What the front door checks requests with: the model, its sizes and modes."""
        generator = self.generator
        modes: dict[str, str | None] = {}
        for mode in MODES:
            try:
                generator.require_mode(mode)
                modes[mode] = None
            except ModelUnavailable as exc:
                modes[mode] = str(exc)
        models_for_modes = getattr(generator, "models_for_modes", None)
        return {
            **self._state(),
            "model_id": generator.model_id,
            "native_size": tuple(generator.native_size),
            "schedulers": tuple(generator.schedulers),
            "default_scheduler": generator.default_scheduler,
            "mode_errors": modes,
            "models_for_modes": models_for_modes() if models_for_modes else {"text": generator.model_id},
        }

    async def generate(self, request: GenerationRequest, preview_every: int = 0) -> AsyncIterator[dict[str, Any]]:
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        stop = threading.Event()
        seen = {"step": 0}

        def on_step(step: int, steps: int, make_preview) -> bool:
            seen["step"] = step
            event: dict[str, Any] = {"event": "step", "step": step, "steps": steps}
            if preview_every and step % preview_every == 0 and step < steps:
                try:
                    event["preview"] = _jpeg(make_preview())
                except Exception:  # a preview is a nicety; never fail a job over it
                    log.debug("preview failed", exc_info=True)
            loop.call_soon_threadsafe(events.put_nowait, event)
            return stop.is_set()

        def run() -> None:
            with self._lock:
                try:
                    result = {"event": "done", "images": self.generator.generate(request, on_step)}
                except GenerationCancelled:
                    result = {"event": "cancelled"}
                except Exception as exc:  # the job's failure, told to the front door as data
                    result = {"event": "failed", "error": _failure(exc)}
                    del exc
                    _release(self.generator)
            loop.call_soon_threadsafe(events.put_nowait, result)

        thread = threading.Thread(target=run, name="voicebrush-replica-generation", daemon=True)
        thread.start()
        ended = False
        try:
            yield {"event": "started", "worker": self.me["worker"], "replica": self.me["replica"]}
            while True:
                event = await events.get()
                if event["event"] != "step":
                    ended = True
                    self.jobs += 1
                    self._report()  # before the last event: the front door may ask right after
                yield event
                if ended:
                    return
        finally:
            if not ended:  # the handle was cancelled (or the front door went away)
                cancelled_at = seen["step"]
                stop.set()
                await asyncio.to_thread(thread.join)
                self.jobs += 1
                # How far the engine got after the cancel reached it: health shows it.
                self.last_cancel = {"seed": request.seed, "steps": request.steps, "step": cancelled_at, "steps_after_cancel": seen["step"] - cancelled_at, "at": time.time()}
                self._report()


class SpeechReplica(_Reporting):
    """One Transcriber; Whisper runs well on a CPU node."""

    deployment = "voicebrush-speech"

    def __init__(self, settings: Settings) -> None:
        from ..speech import load_transcriber

        self.transcriber = load_transcriber(local_settings(settings))
        self._lock = threading.Lock()  # openai-whisper cannot decode twice at once
        self._start_reporting()

    def _state(self) -> dict[str, Any]:
        return {**super()._state(), "loaded": {"speech": self.transcriber.model_id}}

    def describe(self) -> dict[str, Any]:
        return {**self._state(), "model_id": self.transcriber.model_id, "engine": self.transcriber.engine}

    def transcribe(self, samples, options: TranscribeOptions) -> dict[str, Any]:
        """{"transcript": Transcript} or {"error": ...}: the engine's verdict on the input
        (an ApiError) comes back as data, so the front door answers the same 4xx."""
        try:
            with self._lock:
                transcript = self.transcriber.transcribe(samples, options)
        except ApiError as exc:
            return {"error": {"status": exc.status, "message": exc.message, "code": exc.code, "param": exc.param}}
        except Exception as exc:
            return {"failure": _failure(exc)}
        self.jobs += 1
        return {"transcript": transcript}


def _jpeg(image) -> bytes:
    image = image.convert("RGB")
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _failure(exc: BaseException) -> dict[str, Any]:
    """The job error for an engine's exception, as the in-process worker words it."""
    from ..jobs.worker import JobQueue

    if isinstance(exc, ModelUnavailable):
        from ..jobs.model import error_body

        return error_body(str(exc), "model_unavailable")
    return JobQueue._engine_failure("generation on this replica", exc)


def _release(generator) -> None:
    import gc

    gc.collect()
    release = getattr(generator, "release_memory", None)
    try:
        if release is not None:
            release()
    except Exception:
        log.debug("releasing memory failed", exc_info=True)
