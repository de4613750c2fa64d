"""The front door's side of a Ray Serve cluster: a job-queue backend (jobs/backend.py).

    backend = RayBackend(settings)      # settings.ray_address: "auto" or the head's HOST:PORT
    engines = backend.load()            # connects, deploys (or reuses) the app, waits for it

The application `voicebrush` has two deployments: `voicebrush-image` (ImageReplica, one
GPU per replica by default, autoscaled over --replicas MIN-MAX) and `voicebrush-speech`
(SpeechReplica, CPU). A generation goes to an image replica through a streaming
deployment handle: its per-step events (previews too) come back as the engine runs, and
the job's cancel flag cancels the handle's generator, which cancels the replica's task,
whose step hook then stops the engine within the step it is in.

A replica (or its node) that dies mid-job shows here as an error of the stream. The
job then runs once more from the start on another replica (attempts: 2); its PNGs are
only written by the front door once a replica returns the images, so nothing partial is
kept. A second loss fails the job with `replica_lost`.

The front door must be a Ray driver on a cluster node: Ray Client (ray://) does not
carry streaming handles (ray/serve/handle.py refuses stream=True inside a client
context), so `ray start --address=HEAD:PORT` on the front door's machine first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import socket
import threading
import time
from dataclasses import replace
from typing import Any

from PIL import Image

from ..errors import ApiError, GenerationCancelled
from ..imaging.base import GenerationRequest, StepCallback
from ..jobs.backend import Cancel, Engines, JobFailed, OnStart
from ..jobs.model import error_body
from ..models import ModelUnavailable
from ..settings import Settings
from ..speech.base import TranscribeOptions, Transcript
from .health import APP, read_cluster
from .replicas import ImageReplica, SpeechReplica
from .roll import open_roll

log = logging.getLogger(__name__)

IMAGE, SPEECH = "voicebrush-image", "voicebrush-speech"
ATTEMPTS = 2  # a job runs at most twice: once more after a lost replica
CONNECT_TIMEOUT_S = 3.0
DEPLOY_TIMEOUT_S = 600.0  # replicas wait for free GPUs, then load their weights
REFRESH_S = 2.0  # how stale health's picture of the cluster may be


class ClusterUnreachable(Exception):
    """No Ray cluster to join. The message is one line for the operator."""


def parse_replicas(text: str) -> tuple[int, int]:
    """"2" -> (2, 2); "1-4" -> (1, 4). Raises ValueError with a sentence."""
    low, _, high = text.partition("-")
    try:
        low_n, high_n = int(low), int(high or low)
    except ValueError:
        raise ValueError(f"--replicas takes N or MIN-MAX (e.g. 1-4), not {text!r}") from None
    if low_n < 1 or high_n < low_n:
        raise ValueError(f"--replicas needs 1 <= MIN <= MAX, got {text!r}")
    return low_n, high_n


def _lost_errors() -> tuple[type[BaseException], ...]:
    """What a stream raises when the replica, its worker or its node went away."""
    import ray.exceptions as rex
    from ray.serve.exceptions import DeploymentUnavailableError, ReplicaUnavailableError

    return (rex.RayActorError, rex.WorkerCrashedError, rex.NodeDiedError, rex.ObjectLostError, rex.LocalRayletDiedError, ReplicaUnavailableError, DeploymentUnavailableError)


def connect(address: str) -> None:
    """Join the cluster at `address` as a driver; ClusterUnreachable within seconds if
    none answers (ray.init itself retries an unreachable address for minutes)."""
    if address.startswith("ray://"):
        raise ClusterUnreachable(
            f"--ray {address}: Ray Client (ray://) cannot carry the streaming handles progress and cancel need; "
            "run the front door on a cluster node (`ray start --address=HEAD:6379`) and use --ray auto"
        )
    import ray

    if ray.is_initialized():
        return  # already this cluster's driver (the tests, the benchmark)
    from ray._private.services import canonicalize_bootstrap_address

    try:
        resolved = canonicalize_bootstrap_address(address)
    except (ConnectionError, ValueError) as exc:
        if address == "auto":
            raise ClusterUnreachable(
                "--ray auto: no Ray cluster runs on this machine; start one (`ray start --head`) or join one (`ray start --address=HEAD:6379`) first"
            ) from None
        raise ClusterUnreachable(f"--ray {address}: {exc}") from None
    if resolved is None:
        raise ClusterUnreachable(f"--ray {address}: give `auto` or the head's HOST:PORT")
    host, _, port = resolved.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=CONNECT_TIMEOUT_S):
            pass
    except (OSError, ValueError) as exc:
        named = address if address == resolved else f"{address} ({resolved})"
        raise ClusterUnreachable(f"--ray {named}: no Ray cluster answers there ({getattr(exc, 'strerror', None) or exc})") from None
    try:
        ray.init(address=resolved, namespace=APP, logging_level=logging.WARNING, log_to_driver=False)
    except Exception as exc:
        raise ClusterUnreachable(f"--ray {address}: could not join the cluster at {resolved}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def replica_settings(settings: Settings) -> Settings:
    """What a replica loads with: the front door's model choices, none of its secrets or
    addresses."""
    # data_dir None: the replica's own machine's default (replicas.local_settings).
    return replace(settings, token=None, ray_address=None, public_url=None, allowed_origins=(), data_dir=settings.replica_data_dir, replica_data_dir=None)


def fingerprint(settings: Settings, image_replica: type = ImageReplica) -> str:
    """Same settings, same fingerprint: a second front door reuses running replicas."""
    chosen = replica_settings(settings)
    text = repr((chosen, chosen.data_dir, settings.replicas, settings.replica_gpus, image_replica.__qualname__))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _scaling(low: int, high: int) -> dict[str, Any]:
    if low == high:
        return {"num_replicas": low}
    # One waiting request per replica is the signal to add one (see RayBackend.admits).
    return {"autoscaling_config": {"min_replicas": low, "max_replicas": high, "initial_replicas": low,
                                   "target_ongoing_requests": 1, "upscale_delay_s": 5, "downscale_delay_s": 300}}


MANAGED = "managed"  # the fingerprint of an app deployed by its own Serve config (KubeRay)


def app_builder(args: dict[str, Any]):
    """The application for a Serve config file, as KubeRay's RayService deploys it:
    `import_path: voicebrush_daemon.cluster.backend:app_builder`, with `args` preset,
    asr_engine, asr_model, device, replicas ("MIN-MAX") and replica_gpus. A front door
    (`serve --ray auto`) then uses that app as it is and never redeploys it."""
    settings = Settings(
        preset=str(args.get("preset", "sd2")),
        asr_engine=str(args.get("asr_engine", "faster-whisper")),
        asr_model=args.get("asr_model"),
        device=str(args.get("device", "auto")),
        replicas=parse_replicas(str(args.get("replicas", "1"))),
        replica_gpus=float(args.get("replica_gpus", 1.0)),
    )
    return build_app(settings, managed=True)


def build_app(settings: Settings, image_replica: type = ImageReplica, *, managed: bool = False):
    """The Serve application: the two deployments around the engines. `image_replica`:
    ImageReplica, or the benchmark's stand-in that only sleeps through its steps."""
    from ray import serve

    low, high = settings.replicas
    chosen = replica_settings(settings)
    config = {"fingerprint": MANAGED if managed else fingerprint(settings, image_replica)}
    speech = serve.deployment(SpeechReplica).options(
        name=SPEECH, ray_actor_options={"num_cpus": 1}, max_ongoing_requests=1, user_config=config, **_scaling(1, max(1, high))
    )
    image = serve.deployment(image_replica).options(
        name=IMAGE,
        ray_actor_options={"num_cpus": 1, "num_gpus": settings.replica_gpus},
        max_ongoing_requests=1,  # a replica draws one picture at a time; more wait in Serve's queue
        user_config=config,
        **_scaling(low, high),
    )
    return image.bind(chosen, speech=speech.bind(chosen))


class ClusterImageModel:
    """The image replicas as the front door sees them: what the queue checks requests
    against (an ImageGenerator's attributes). Generating goes through RayBackend."""

    def __init__(self, described: dict[str, Any], backend: "RayBackend") -> None:
        self._backend = backend
        self.model_id = described["model_id"]
        self.device = described["device"]
        self.native_size = tuple(described["native_size"])
        self.schedulers = tuple(described["schedulers"])
        self.default_scheduler = described["default_scheduler"]
        self._mode_errors = described["mode_errors"]
        self._models_for_modes = described["models_for_modes"]
        self._loaded = described["loaded"]

    def require_mode(self, mode: str) -> None:
        message = self._mode_errors.get(mode)
        if message:
            raise ModelUnavailable(message)

    def models_for_modes(self) -> dict[str, str | None]:
        return dict(self._models_for_modes)

    @property
    def loaded_unets(self) -> dict[str, str]:
        """What any image replica has loaded now (per replica: health's cluster section)."""
        loaded: dict[str, str] = {}
        for replica in self._backend.replicas(IMAGE):
            loaded.update(replica.get("loaded") or {})
        return loaded or dict(self._loaded)

    def generate(self, request: GenerationRequest, on_step: StepCallback | None = None):
        raise RuntimeError("cluster generations go through RayBackend.generate")

    def close(self) -> None:
        pass


class ClusterTranscriber:
    """The speech replicas as a Transcriber: the worker and the speech lane call it as
    they call the in-process engine."""

    def __init__(self, described: dict[str, Any], handle) -> None:
        self.model_id = described["model_id"]
        self.engine = described["engine"]
        self._handle = handle

    def transcribe(self, samples, options: TranscribeOptions = TranscribeOptions()) -> Transcript:
        lost = _lost_errors()
        reasons = []
        for _ in range(ATTEMPTS):
            try:
                answer = self._handle.transcribe.remote(samples, options).result()
                break
            except lost as exc:
                reasons.append(_reason(exc))
        else:
            raise JobFailed(error_body(f"The speech replicas were lost twice ({'; then '.join(reasons)}).", "replica_lost"))
        if "error" in answer:
            error = answer["error"]
            raise ApiError(error["status"], error["message"], error["code"], param=error["param"])
        if "failure" in answer:
            raise JobFailed(answer["failure"])
        return answer["transcript"]

    def close(self) -> None:
        pass


class RayBackend:
    """Jobs on the cluster's replicas; slots: the most image replicas there may be."""

    def __init__(self, settings: Settings, image_replica: type = ImageReplica) -> None:
        self.settings = settings
        self.image_replica = image_replica
        self.slots = settings.replicas[1]
        self.speech_lock = contextlib.nullcontext()  # each speech replica serialises itself
        self._image = self._image_stream = self._speech = None
        self._roll = None
        self._snapshot: dict[str, Any] | None = None
        self._live_images = 0
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None

    # ---- loading --------------------------------------------------------------------

    def load(self) -> Engines:
        from ray import serve

        connect(self.settings.ray_address or "auto")
        self._roll = open_roll()
        running = self._running_fingerprint()
        if running == MANAGED:
            log.info("using the Serve application %r as its own config deployed it (KubeRay)", APP)
        elif running == fingerprint(self.settings, self.image_replica):
            log.info("reusing the running Serve application %r", APP)
        else:
            log.info("deploying the Serve application %r (%s replicas of %s)", APP, "-".join(map(str, self.settings.replicas)), IMAGE)
            serve._run(build_app(self.settings, self.image_replica), name=APP, route_prefix=None, _blocking=False)
        self._wait_running()
        self._image = serve.get_deployment_handle(IMAGE, app_name=APP)
        self._image_stream = self._image.options(stream=True)
        self._speech = serve.get_deployment_handle(SPEECH, app_name=APP)
        image = ClusterImageModel(self._image.describe.remote().result(), self)
        speech = ClusterTranscriber(self._speech.describe.remote().result(), self._speech)
        self._refresh()
        self._refresher = threading.Thread(target=self._keep_refreshing, name="voicebrush-cluster-health", daemon=True)
        self._refresher.start()
        return Engines(image=image, speech=speech)

    def _running_fingerprint(self) -> str | None:
        try:
            app = self._serve_details().get("applications", {}).get(APP)
            config = app["deployments"][IMAGE]["deployment_config"].get("user_config") or {}
            return config.get("fingerprint") if app["status"] in ("RUNNING", "DEPLOYING") else None
        except Exception:
            return None

    def _wait_running(self) -> None:
        from ray import serve

        deadline = time.monotonic() + DEPLOY_TIMEOUT_S
        said = None
        while time.monotonic() < deadline:
            app = serve.status().applications.get(APP)
            if app is not None:
                if app.status == "RUNNING":
                    return
                if app.status in ("DEPLOY_FAILED", "UNHEALTHY"):
                    raise ModelUnavailable(f"the Serve application {APP!r} failed to deploy: {app.message or app.status}".splitlines()[0])
                message = "; ".join(f"{name}: {d.status} {d.message}".strip() for name, d in app.deployments.items())
                if message != said:
                    log.info("waiting for the replicas: %s", message)
                    said = message
            time.sleep(0.5)
        raise ModelUnavailable(f"the replicas of {APP!r} did not start within {DEPLOY_TIMEOUT_S:g} s (are there free GPUs?)")

    # ---- running a generation ---------------------------------------------------------

    def admits(self, slot: int) -> bool:
        """Whether worker `slot` may hand a job to Serve now: one per running replica, plus
        one more to wait there, which is what makes the autoscaler add a replica. The
        rest wait in the fair queue, so the fair order is the order replicas start in."""
        return slot <= self._live_images

    def generate(self, request: GenerationRequest, on_step: StepCallback, cancel: Cancel, on_start: OnStart, preview_every: int = 0) -> list[Image.Image]:
        reasons: list[str] = []
        for attempt in range(1, ATTEMPTS + 1):
            if cancel.is_set():
                raise GenerationCancelled()
            outcome = self._attempt(request, on_step, cancel, on_start, attempt, preview_every)
            if not isinstance(outcome, str):
                return outcome
            reasons.append(outcome)
            log.warning("attempt %d of a job was lost with its replica (%s)%s", attempt, outcome, "; running it again" if attempt < ATTEMPTS else "")
        raise JobFailed(error_body(f"The job was lost with its replica twice ({'; then '.join(reasons)}).", "replica_lost", type="server_error"))

    def _attempt(self, request, on_step, cancel: Cancel, on_start: OnStart, attempt: int, preview_every: int):
        """The images, or why the attempt was lost (a str). Raises the job's own ending."""
        from ray.exceptions import TaskCancelledError

        stream = self._image_stream.generate.remote(request, preview_every)
        # Called on the event loop by a DELETE: cancel() may wait for the request to be
        # assigned, so it runs on a thread of its own.
        forget = cancel.when_set(lambda: threading.Thread(target=stream.cancel, name="voicebrush-cancel", daemon=True).start())
        try:
            for event in stream:
                kind = event["event"]
                if kind == "started":
                    on_start(event["worker"], attempt)
                elif kind == "step":
                    preview = event.get("preview")
                    make_preview = (lambda data=preview: Image.open(io.BytesIO(data))) if preview else _no_preview
                    if on_step(event["step"], event["steps"], make_preview):
                        cancel.set()
                elif kind == "done":
                    return event["images"]
                elif kind == "cancelled":
                    raise GenerationCancelled()
                elif kind == "failed":
                    raise JobFailed(event["error"])
            return "the replica ended the stream without an answer"
        except TaskCancelledError:  # RequestCancelledError too: our own cancel
            if cancel.is_set():
                raise GenerationCancelled() from None
            return "its request was cancelled by the cluster"
        except _lost_errors() as exc:
            if cancel.is_set():
                raise GenerationCancelled() from None
            return _reason(exc)
        finally:
            forget()

    # ---- health ---------------------------------------------------------------------------

    def describe(self) -> dict[str, Any] | None:
        return self._snapshot

    def replicas(self, deployment: str) -> list[dict[str, Any]]:
        snapshot = self._snapshot or {}
        return snapshot.get("deployments", {}).get(deployment, {}).get("replicas", [])

    def _keep_refreshing(self) -> None:
        while not self._stop.wait(REFRESH_S):
            try:
                self._refresh()
            except Exception as exc:  # a slow or gone controller must not end the refresher
                log.debug("refreshing the cluster's health failed: %s", exc)

    @staticmethod
    def _serve_details() -> dict[str, Any]:
        from ray.serve.context import _get_global_client

        return _get_global_client().get_serve_details()

    def _refresh(self) -> None:
        import ray

        try:
            roll = ray.get(self._roll.read.remote(), timeout=10)
        except Exception as exc:  # health goes on without what the replicas said
            log.warning("the replicas' roll did not answer (%s); starting it again", _reason(exc))
            roll, self._roll = {}, open_roll()
        self._snapshot = read_cluster(roll)
        deployments = self._snapshot["deployments"]
        self._live_images = deployments.get(IMAGE, {}).get("running", 0)
        live = [r["replica"] for d in deployments.values() for r in d["replicas"]]
        self._roll.forget.remote(live)

    def close(self) -> None:
        """The front door leaves; the replicas keep running for the next one (and for the
        other front doors of this cluster): `serve shutdown` stops them."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(5)


def _no_preview():
    raise LookupError("the replica sent no preview for this step")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:160]}" if text else type(exc).__name__
