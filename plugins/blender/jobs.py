"""One generation, followed from start to images: the flow both the UI and scripts use.

No bpy here. `GenerationJob.run()` blocks (background mode and scripts);
`GenerationJob.start()` runs the same thing in a worker thread while the main
thread polls the job's fields from a timer and applies the result.
"""

import base64
import os
import random
import threading
import time
from dataclasses import dataclass, field
from typing import Optional

from .naming import name_from_prompt
from .voicebrush_client import Client, VoicebrushError, png_size

# Blender's integer properties are 32-bit signed: seeds the add-on picks stay below this,
# so any seed shown on an image can be typed back into the operator.
MAX_PROPERTY_INT = 2 ** 31 - 1

# Connecting and each wait for an answer; a daemon that is down fails at once (refused).
NETWORK_TIMEOUT_S = 10.0

# What a picture starts from (the operator's `source`).
SOURCES = (
    ("PROMPT", "Prompt Only", "Only the words: text to image"),
    ("DEPTH", "Depth from Camera", "The scene's depth seen from the active camera lays out the picture"),
    ("RENDER", "Render", "The active camera's render is redrawn (img2img); Strength says how much may change"),
)
# The daemon's own default for img2img.
DEFAULT_STRENGTH = 0.75


@dataclass(frozen=True)
class GenerationRequest:
    """What to generate: a typed prompt, or a recording to transcribe (a prompt then overrides it)."""

    prompt: str = ""
    audio_path: str = ""
    negative_prompt: str = ""
    seed: int = -1
    steps: int = 0
    size: str = ""
    server: str = ""
    token: str = ""
    source: str = "PROMPT"
    strength: float = DEFAULT_STRENGTH
    image: Optional[bytes] = None  # PNG: the render to redraw (source RENDER)
    depth: Optional[bytes] = None  # PNG: the camera's depth, white near (source DEPTH)
    dictation: str = ""  # a streamed take already on the daemon (keep_dictation), instead of audio_path

    def check(self):
        """Raise VoicebrushError for a request the daemon would refuse anyway."""
        if self.dictation:
            return  # its options and pictures went to the daemon when the take started
        if not self.prompt.strip() and not self.audio_path:
            raise VoicebrushError("Type or say a prompt first.", code="empty_prompt")
        if self.audio_path and not os.path.isfile(self.audio_path):
            raise VoicebrushError("The recording %s does not exist." % self.audio_path, code="missing_audio")
        if self.source not in [key for key, _, _ in SOURCES]:
            raise VoicebrushError("Unknown source %r." % self.source, code="invalid_value")
        if self.source == "RENDER" and not 0.0 < self.strength <= 1.0:
            raise VoicebrushError("Strength must be above 0 and at most 1.", code="invalid_value")

    def pictures(self):
        """Keyword pictures for Client.run_job: only those this source sends."""
        pictures = {}
        if self.image is not None:
            pictures["image"] = self.image
        if self.depth is not None:
            pictures["depth"] = self.depth
        return pictures

    def options(self):
        """Keyword options for Client.run_job: only what differs from the daemon's defaults."""
        options = {}
        if self.negative_prompt:
            options["negative_prompt"] = self.negative_prompt
        if self.seed >= 0:
            options["seed"] = self.seed
        if self.steps > 0:
            options["steps"] = self.steps
        if self.size:
            options["size"] = self.size
        if self.source == "RENDER":
            options["strength"] = self.strength
        return options


def native_size(server, token=""):
    """(width, height) the daemon's model draws by default, from its health record."""
    client = Client(server or None, token, timeout=NETWORK_TIMEOUT_S)
    health = client.health()
    if health.get("status") != "ok":
        raise VoicebrushError("The daemon at %s is still loading its models." % client.server, code="loading")
    size = str((health.get("models") or {}).get("native_size") or "")
    try:
        width, height = (int(side) for side in size.lower().split("x"))
    except ValueError:
        width, height = 512, 512  # a daemon that does not say: SD2-base's
    return width, height


def pick_seed(seed, rng=random):
    """The seed to send: the artist's, or a random one that fits a Blender integer property."""
    return seed if seed >= 0 else rng.randint(0, MAX_PROPERTY_INT)


@dataclass
class GeneratedImage:
    """One PNG from the daemon with what it is called and what made it."""

    png: bytes
    width: int
    height: int
    name: str
    properties: dict = field(default_factory=dict)


def images_from_job(job_record, pngs, source="PROMPT"):
    """GeneratedImage for each PNG, with the custom properties the add-on stores on images and objects."""
    prompt = job_record.get("prompt") or ""
    seed = job_record.get("seed")
    strength = job_record.get("strength")
    images = []
    for index, png in enumerate(pngs):
        width, height = png_size(png)
        properties = {
            "prompt": prompt,
            "negative_prompt": job_record.get("negative_prompt") or "",
            # Image i of a request with seed S is what seed S+i gives alone (the contract).
            "seed": property_value(seed + index) if isinstance(seed, int) else -1,
            "steps": property_value(job_record.get("steps") or 0),
            "model": job_record.get("model") or "",
            "transcript": job_record.get("transcript") or "",
            "job": job_record.get("id") or "",
            "source": source,
            # How much of the picture could change: 1.0 for a picture drawn from nothing.
            "strength": float(strength) if isinstance(strength, (int, float)) else 1.0,
            "mode": job_record.get("mode") or ("text" if source == "PROMPT" else ""),
        }
        images.append(GeneratedImage(png, width, height, name_from_prompt(prompt), properties))
    return images


def property_value(number):
    """An int Blender can hold as a custom property; larger ones become text so no digit is lost."""
    return number if -MAX_PROPERTY_INT - 1 <= number <= MAX_PROPERTY_INT else str(number)


def read_audio(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise VoicebrushError("Cannot read the recording %s: %s" % (path, exc.strerror or exc), code="invalid_audio")


# Streamed takes (voicebrush_client.Dictation) between the recorder that started them and
# the generation that follows them; keyed by a string an operator property can carry.
_dictations = {}
_dictation_serial = [0]


def keep_dictation(dictation):
    """Hand a streamed take over to a later GenerationRequest(dictation=key); returns the key."""
    _dictation_serial[0] += 1
    key = "take-%d" % _dictation_serial[0]
    _dictations[key] = dictation
    return key


def take_dictation(key):
    """The streamed take kept under `key`, once (None if already taken or unknown)."""
    return _dictations.pop(key, None)


def drop_dictation(key):
    """Cancel a kept take nobody will follow (the generation could not start)."""
    dictation = take_dictation(key)
    if dictation is not None:
        dictation.cancel()


class BackgroundJob(object):
    """Work on the daemon followed from a worker thread while the main thread polls.

    `run()` blocks (background mode and scripts) and never raises: a failure ends as
    `error`, with the stage "failed" or "cancelled". `start()` runs it in a daemon
    thread. The worker writes and the main thread reads, so every field is replaced
    whole under the lock and a reader never sees half an update.
    """

    THREAD_NAME = "voicebrush-job"

    def __init__(self, client=None):
        self._client = client
        self._lock = threading.Lock()
        self._cancel_requested = threading.Event()
        self._thread = None
        self.stage = "starting"
        self.error = None
        self.finished_at = None

    def connect(self, server, token):
        """The client given at construction (tests), or one for this server and token."""
        return self._client or Client(server or None, token, timeout=NETWORK_TIMEOUT_S)

    def start(self):
        """Run in a daemon thread; poll `finished` from the main thread."""
        self._thread = threading.Thread(target=self.run, name=self.THREAD_NAME, daemon=True)
        self._thread.start()
        return self

    def run(self):
        """Block until the work is done or has failed; never raises. "done" is set after
        `_run` has put its results in, so a reader that sees it sees them."""
        try:
            self._run()
            with self._lock:
                self.stage = "done"
        except VoicebrushError as exc:
            self._fail(exc)
        except Exception as exc:  # a bug or an odd answer: still end the job readably
            self._fail(VoicebrushError("%s: %s" % (type(exc).__name__, exc), code="internal"))
        finally:
            self.finished_at = time.monotonic()
        return self

    def _run(self):
        """The work itself; raise VoicebrushError to end it with that message."""
        raise NotImplementedError

    def cancel(self):
        """Ask the daemon to stop; a generation ends as `cancelled` within a denoising step."""
        self._cancel_requested.set()

    @property
    def cancel_requested(self):
        return self._cancel_requested.is_set()

    @property
    def finished(self):
        return self.finished_at is not None

    def wait(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)
        return self.finished

    def _fail(self, error):
        with self._lock:
            self.error = error
            self.stage = "cancelled" if error.code == "cancelled" else "failed"


class GenerationJob(BackgroundJob):
    """A generation followed on the daemon; its fields are what a panel shows."""

    THREAD_NAME = "voicebrush-generate"

    def __init__(self, request, client=None):
        super(GenerationJob, self).__init__(client)
        self.request = request
        spoken = (request.audio_path or request.dictation) and not request.prompt.strip()
        self.stage = "transcribing" if spoken else "generating"
        self.step = 0
        self.steps = 0
        self.transcript = None
        self.prompt = request.prompt
        self.preview = None  # JPEG bytes of the latest preview
        self.preview_serial = 0
        self.images = []
        self.job_record = None
        self.events_seen = []  # event names in the order they came (partial, transcript, progress...)
        self.partial = ("", "")  # a streamed take's latest words: (text, stable prefix)
        self.started_at = time.monotonic()

    # -- running ------------------------------------------------------------

    def _run(self):
        """Until the images are fetched."""
        self.request.check()
        if self.request.dictation:
            result = self._follow_dictation()
        else:
            result = self._submit_and_follow()
        if not result.images:
            raise VoicebrushError("The daemon finished without an image.", code="no_image")
        images = images_from_job(result.job, result.images, self.request.source)
        with self._lock:
            self.job_record = result.job
            self.transcript = result.transcript or self.transcript
            self.prompt = result.prompt or self.prompt
            self.images = images

    def _follow_dictation(self):
        """A take streamed while it was recorded: its end, then the job to its pictures."""
        dictation = take_dictation(self.request.dictation)
        if dictation is None:
            raise VoicebrushError("That recording was already used.", code="invalid_audio")
        try:
            dictation.finish()
            return dictation.wait(on_event=self._on_event, cancelled=self._cancel_requested.is_set)
        except BaseException:
            dictation.cancel()
            raise

    def _submit_and_follow(self):
        audio = read_audio(self.request.audio_path) if self.request.audio_path else None
        client = self.connect(self.request.server, self.request.token)
        return client.run_job(
            prompt=self.request.prompt or None,
            audio=audio,
            audio_filename=os.path.basename(self.request.audio_path) if audio is not None else "speech.wav",
            on_event=self._on_event,
            cancelled=self._cancel_requested.is_set,
            **dict(self.request.options(), **self.request.pictures())
        )

    # -- what the panel shows ----------------------------------------------

    @property
    def fraction(self):
        return self.step / float(self.steps) if self.steps else 0.0

    def status_line(self):
        """One line for the panel and the status bar."""
        if self.stage == "done":
            return "Done: %s" % name_from_prompt(self.prompt)
        if self.stage in ("failed", "cancelled"):
            return str(self.error)
        if self.cancel_requested:
            return "Cancelling..."
        if self.stage == "transcribing":
            return "Transcribing..."
        if self.steps:
            return "Generating step %d of %d" % (self.step, self.steps)
        return "Waiting for the daemon..."

    def _on_event(self, name, data):
        if not isinstance(data, dict):
            return
        with self._lock:
            self.events_seen = self.events_seen + [name]
            if name == "partial":
                self.partial = (data.get("text") or "", data.get("stable") or "")
            elif name == "transcript":
                self.transcript = data.get("transcript") or ""
                self.prompt = data.get("prompt") or self.transcript
                self.stage = "generating"
            elif name == "progress":
                self.stage = "generating"
                self.step = int(data.get("step") or 0)
                self.steps = int(data.get("steps") or 0)
                preview = data.get("preview")
                if preview:
                    try:
                        self.preview = base64.b64decode(preview)
                        self.preview_serial += 1
                    except (ValueError, TypeError):
                        pass  # a broken preview is not worth failing the job



class LastResult(object):
    """The images of the last request, so redoing the operator with another placement
    or distance (the Adjust Last Operation panel) does not generate again."""

    def __init__(self):
        self._request = None
        self._images = None

    def remember(self, request, images):
        self._request, self._images = request, list(images)

    def recall(self, request):
        if self._request is not None and self._request == request:
            return list(self._images)
        return None

    def forget(self):
        self._request = self._images = None


class Transcription(BackgroundJob):
    """A recording's words, for the artist to edit before generating, in a worker thread.

    With `dictation`, the take that streamed while it was recorded (for its words only), the
    daemon has heard all of it but the end, so finishing it gives the words at once. Without
    one, or when the daemon had no streaming, the WAV goes to the transcription route."""

    THREAD_NAME = "voicebrush-transcribe"

    def __init__(self, wav, server="", token="", client=None, dictation=None):
        super(Transcription, self).__init__(client)
        self.wav = wav
        self.dictation = dictation
        self._server, self._token = server, token
        self.text = None

    def _run(self):
        dictation = self.dictation
        if dictation is not None and dictation.streaming:
            try:
                text = dictation.finish()
            finally:
                dictation.cancel()  # a daemon that predates words-only takes would draw next
        else:
            if dictation is not None:
                dictation.cancel()  # the take was only kept here; the route is the cheaper way
            text = self.connect(self._server, self._token).transcribe(self.wav)
        self.text = (text or "").strip()
        if not self.text:
            raise VoicebrushError("nothing heard", code="no_speech")
