"""Every request body and query the API takes, declared once as pydantic models.

The same class validates a request and describes it in /openapi.json (server/openapi.py
builds the document from these models' JSON schemas), so no field can be documented one
way and checked another. Each model turns itself into the dataclass that crosses into the
job layer (options.GenerationOptions); nothing below the server sees pydantic.

Conventions, for every model here:
- Unknown fields are ignored: OpenAI and AUTOMATIC1111 clients send extras.
- Every optional field also accepts null, meaning its default (as OpenAI's API does).
- JSON bodies are validated strictly (a JSON "2" is not the integer 2, true is not 1);
  multipart form fields are text by nature and are parsed from their strings.
- A rule a JSON schema cannot state (a size's sides a multiple of 8, a scheduler this
  engine has) is an after-validator that raises ValueError with the sentence the client
  sees; the schema's description says it in words.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, WithJsonSchema, model_validator
from pydantic_core import PydanticCustomError

from ..options import (
    DEFAULT_GUIDANCE,
    DEFAULT_STEPS,
    MAX_GUIDANCE,
    MAX_N,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MAX_STEPS,
    MIN_SIDE,
    GenerationOptions,
)
from ..imaging.inputs import MAX_INPUT_BYTES, MAX_INPUT_SIDE
from ..jobs.retention import Retention
from ..speech.base import TranscribeOptions

# "WxH" or "auto"; the pattern bounds the digits, the validator checks the sides.
SIZE_PATTERN = r"^(auto|[0-9]{1,4}x[0-9]{1,4})$"
JOB_ID_PATTERN = r"^[0-9a-f]{32}$"  # jobs.model.new_job_id
IMAGE_NAME_PATTERN = r"^[0-9a-f]{32}-[0-9]{1,2}$"  # jobs.store.IMAGE_NAME


class RequestModel(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


# ---- field types --------------------------------------------------------------


def _clip_text(value: str) -> str:
    # Longer than any text encoder takes: cut here rather than hold megabytes per job.
    return value.strip()[:MAX_PROMPT_CHARS]


def _check_size(value: str) -> str:
    if value == "auto":
        return value
    width, height = (int(side) for side in value.split("x"))
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE or side % 8:
            raise ValueError(f"Each side of 'size' must be a multiple of 8 from {MIN_SIDE} to {MAX_SIDE}; got {width}x{height}.")
    return value


def _check_scheduler(value: str, info: ValidationInfo) -> str:
    schedulers = (info.context or {}).get("schedulers", ())
    if value not in schedulers:
        raise ValueError(f"Unknown scheduler {value[:40]!r}; choose one of: {', '.join(schedulers)}.")
    return value


def _integral(value: Any) -> Any:
    # JSON Schema counts 2.0 as an integer, so the validator does too (never True, never 2.5).
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# For integer fields: 2.0 is 2 (as JSON Schema counts it), 2.5 and true stay invalid.
Whole = BeforeValidator(_integral)


def _is_upload(value: Any) -> Any:
    if not isinstance(value, (bytes, bytearray)):
        raise ValueError("must be a file part of the multipart form.")
    return bytes(value)


Prompt = Annotated[
    str,
    Field(min_length=1, pattern=r"\S", description="What to draw (not blank). Longer than the text encoder takes is truncated, never an error."),
    AfterValidator(_clip_text),
]
Text = Annotated[str, AfterValidator(_clip_text)]
Size = Annotated[
    str,
    Field(pattern=SIZE_PATTERN, examples=["768x768"], description=f"WxH, each side a multiple of 8 from {MIN_SIDE} to {MAX_SIDE}; default (or auto): the model's native size."),
    AfterValidator(_check_size),
]
Count = Annotated[int, Field(ge=1, le=MAX_N, description="How many images; default 1."), BeforeValidator(_integral)]
Steps = Annotated[int, Field(ge=0, le=MAX_STEPS, description=f"Denoising steps; 0 means the default ({DEFAULT_STEPS})."), BeforeValidator(_integral)]
Seed = Annotated[int, Field(ge=-1, le=MAX_SEED, description="-1 picks one at random (and reports it); image i of a request uses seed + i."), BeforeValidator(_integral)]
Guidance = Annotated[float, Field(ge=0, le=MAX_GUIDANCE, allow_inf_nan=False, description=f"How closely to follow the prompt; default {DEFAULT_GUIDANCE} (SD2's).")]
# The names the loaded engine has; the OpenAPI builder fills in the enum.
SchedulerName = Annotated[str, Field(json_schema_extra={"x-voicebrush-choices": "schedulers"}), AfterValidator(_check_scheduler)]
ResponseFormat = Literal["url", "b64_json"]
# Accepted and echoed, never an error: OpenAI clients send "dall-e-3", "whisper-1", ...
ModelName = Annotated[Any, Field(description="Accepted and echoed; the loaded model answers.")]
Language = Annotated[str, Field(max_length=8, pattern=r"^[A-Za-z]+$", examples=["en"], description="ISO-639-1 code of the speech, e.g. en; default: detect.")]
Upload = Annotated[Any, WithJsonSchema({"type": "string", "format": "binary"}), AfterValidator(_is_upload)]

# ---- pictures in (imaging.inputs decodes and checks them; the routes call it) ---

PICTURE_RULE = f"PNG, JPEG or WebP, at most {MAX_INPUT_BYTES // 2**20} MB and {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}"
# A JSON body may carry two pictures as base64 (image + mask, or depth + image).
PICTURE_JSON_BYTES = 2 * (MAX_INPUT_BYTES * 4 // 3 + 4) + 1024 * 1024
PictureBase64 = Annotated[
    str,
    Field(description=f"A picture as base64, raw or a data: URI ({PICTURE_RULE}).", json_schema_extra={"contentEncoding": "base64"}),
]
Strength = Annotated[
    float,
    Field(gt=0, le=1, allow_inf_nan=False, description="How much of the picture may change: above 0 and at most 1; default 0.75 for img2img, 1.0 for inpaint and depth."),
]
IMAGE_HELP = f"The picture to start from ({PICTURE_RULE}): img2img, or inpaint with a mask."
MASK_HELP = "Where to repaint: white = repaint, black = keep (greys partly); needs an image; resized to the image's size."
DEPTH_HELP = "A depth map, white = near (8- or 16-bit grey): the picture's layout follows it; resized to the image's size."


# ---- generation ---------------------------------------------------------------


class GenerationFields(RequestModel):
    """The options every generating route shares."""

    prompt: Prompt
    negative_prompt: Text | None = Field(None, description="What the picture should not have; default empty.")
    size: Size | None = None
    n: Count | None = None
    steps: Steps | None = None
    seed: Seed | None = None
    guidance_scale: Guidance | None = None
    scheduler: SchedulerName | None = None
    response_format: ResponseFormat | None = Field(None, description="url (default, as OpenAI) or b64_json.")
    model: ModelName = None

    def to_options(self) -> GenerationOptions:
        size = None
        if self.size and self.size != "auto":
            width, height = self.size.split("x")
            size = (int(width), int(height))
        return GenerationOptions(
            prompt=self.prompt or None,
            negative_prompt=self.negative_prompt or "",
            size=size,
            n=self.n or 1,
            steps=self.steps or DEFAULT_STEPS,
            seed=None if self.seed in (None, -1) else self.seed,
            guidance_scale=DEFAULT_GUIDANCE if self.guidance_scale is None else self.guidance_scale,
            scheduler=self.scheduler,
            response_format=self.response_format or "url",
            model=self.model if isinstance(self.model, str) else None,
        )


class ImageGenerationRequest(GenerationFields):
    """POST /v1/images/generations (OpenAI-compatible, plus the extensions)."""


class JobRequest(GenerationFields):
    """POST /v1/jobs as JSON: a typed prompt, or a spoken one streamed as it is recorded,
    optionally over pictures sent as base64."""

    # Either a prompt or stream_audio, and transcribe_only only with stream_audio: the schema
    # says so too (json_schema_extra), as the validator below checks.
    model_config = ConfigDict(json_schema_extra={
        "anyOf": [{"required": ["prompt"], "properties": {"prompt": {"type": "string"}}}, {"required": ["stream_audio"], "properties": {"stream_audio": {"const": True}}}],
        "if": {"required": ["transcribe_only"], "properties": {"transcribe_only": {"const": True}}},
        "then": {"required": ["stream_audio"], "properties": {"stream_audio": {"const": True}}},
    })

    prompt: Prompt | None = Field(None, description="What to draw; required unless stream_audio, where it overrides the transcript.")
    stream_audio: bool | None = Field(
        None,
        description="true: the job starts listening (status listening) for its spoken prompt, sent to "
        "POST /v1/jobs/{id}/audio as raw PCM while it is recorded; partial events show the words as they come.",
    )
    transcribe_only: bool | None = Field(
        None,
        description="With stream_audio, true: the take is for its words only. The job ends done with its "
        "transcript and draws nothing; it never waits in the queue, so a full one cannot refuse the words.",
    )
    language: Language | None = Field(None, description="With stream_audio: the language of the speech (ISO-639-1); default: detect.")
    image: PictureBase64 | None = Field(None, description=IMAGE_HELP + " Base64, raw or a data: URI.")
    mask: PictureBase64 | None = Field(None, description=MASK_HELP + " Base64, raw or a data: URI.")
    depth: PictureBase64 | None = Field(None, description=DEPTH_HELP + " Base64, raw or a data: URI.")
    strength: Strength | None = None

    @model_validator(mode="after")
    def _prompt_or_stream(self) -> "JobRequest":
        if not self.stream_audio and not self.prompt:
            raise PydanticCustomError("missing_field", "'prompt' is required unless 'stream_audio' is true.", {"param": "prompt"})
        if self.transcribe_only and not self.stream_audio:
            raise PydanticCustomError("invalid_value", "'transcribe_only' is for a take streamed with 'stream_audio': true.", {"param": "transcribe_only"})
        return self


class JobForm(GenerationFields):
    """POST /v1/jobs as multipart: a spoken prompt (file), a typed one, or both; optionally
    over pictures sent as file parts."""

    prompt: Prompt | None = Field(None, description="Overrides the transcript when given with a file; required without one.")
    file: Upload | None = Field(None, description="The spoken prompt: wav, flac, ogg, mp3, webm or m4a, at most 25 MB.")
    language: Language | None = None
    image: Upload | None = Field(None, description=IMAGE_HELP)
    mask: Upload | None = Field(None, description=MASK_HELP)
    depth: Upload | None = Field(None, description=DEPTH_HELP)
    strength: Strength | None = None

    @model_validator(mode="after")
    def _prompt_or_file(self) -> "JobForm":
        if self.file is None and not self.prompt:
            raise PydanticCustomError("missing_field", "'prompt' is required without a spoken prompt in 'file'.", {"param": "prompt"})
        return self


class ImageEditForm(GenerationFields):
    """POST /v1/images/edits (OpenAI-compatible), multipart as the SDK's images.edit sends
    it; extra_body fields (the generation extensions, strength) come as form fields."""

    image: Upload | None = Field(
        None,
        description=f"The picture to edit ({PICTURE_RULE}). Its fully transparent pixels are repainted when no mask is sent; "
        "without any transparency it is img2img.",
    )
    image_list: Upload | None = Field(None, alias="image[]", description="The picture, as the SDK names it when given a list (one picture).")
    mask: Upload | None = Field(None, description="Where to repaint: its fully transparent pixels (a mask without alpha: white = repaint); resized to the image's size.")
    strength: Strength | None = None
    stream: bool | None = Field(None, description="Streaming edits are not offered: false or absent.")

    @model_validator(mode="after")
    def _one_picture(self) -> "ImageEditForm":
        if self.image is None and self.image_list is None:
            raise PydanticCustomError("missing_field", "'image' is required: the picture to edit, as a file part.", {"param": "image"})
        if self.image is not None and self.image_list is not None:
            raise PydanticCustomError("invalid_value", "Send one picture to edit, as 'image'.", {"param": "image[]"})
        if self.stream:
            raise PydanticCustomError("invalid_value", "Streaming edits are not offered; leave 'stream' out or false.", {"param": "stream"})
        return self

    @property
    def picture(self) -> bytes:
        return self.image if self.image is not None else self.image_list


# ---- speech -------------------------------------------------------------------


class TranscriptionForm(RequestModel):
    """POST /v1/audio/transcriptions (OpenAI-compatible)."""

    file: Upload = Field(description="wav, flac, ogg, mp3, webm or m4a, at most 25 MB; anything else is 400 invalid_audio.")
    model: ModelName = None
    language: Language | None = None
    prompt: Annotated[str, Field(description="Text to steer spelling and style (the first 1000 characters count)."), AfterValidator(lambda v: v[:1000])] | None = None
    temperature: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False, description="Sampling temperature; default 0.")] | None = None
    response_format: Literal["json", "text", "verbose_json", "srt", "vtt"] | None = Field(None, description="json (default), text, verbose_json, srt or vtt.")
    stream: bool | None = Field(None, description="true: answer Server-Sent Events, transcript.text.delta then transcript.text.done (OpenAI's), instead of one body.")

    def to_options(self) -> TranscribeOptions:
        return TranscribeOptions(
            language=self.language.lower() if self.language else None,
            prompt=self.prompt or None,
            temperature=self.temperature or 0.0,
        )


# ---- history ------------------------------------------------------------------


class JobListQuery(RequestModel):
    """GET /v1/jobs?limit=N."""

    limit: Annotated[int, Field(ge=1, le=1000, description="How many jobs, newest first; default 20."), BeforeValidator(_integral)] = 20


class PruneRequest(RequestModel):
    """POST /v1/history/prune: delete old finished jobs now (queued and running ones never)."""

    # The rule the model validator applies, stated in the schema too: a policy, at least.
    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [
                {"required": ["keep_days"], "properties": {"keep_days": {"type": "number"}}},
                {"required": ["max_jobs"], "properties": {"max_jobs": {"type": "integer"}}},
            ]
        }
    )

    keep_days: Annotated[float, Field(ge=0, allow_inf_nan=False, description="Delete finished jobs older than this many days.")] | None = None
    max_jobs: Annotated[int, Field(ge=0, description="Keep at most this many of the newest finished jobs."), BeforeValidator(_integral)] | None = None
    dry_run: bool | None = Field(None, description="Only say what would be deleted; default false.")

    @model_validator(mode="after")
    def _some_policy(self) -> "PruneRequest":
        if self.keep_days is None and self.max_jobs is None:
            raise PydanticCustomError("missing_field", "Give 'keep_days', 'max_jobs' or both.", {"param": "keep_days"})
        return self

    def to_options(self) -> tuple[Retention, bool]:
        """The policy, and whether only to say what it would delete."""
        return Retention(keep_days=self.keep_days, max_jobs=self.max_jobs), bool(self.dry_run)


# ---- responses (described for clients; the handlers build them) ----------------


class AnswerModel(BaseModel):
    # Answers may carry more than is described here (engines add timings, details).
    model_config = ConfigDict(extra="allow")


class ErrorBody(AnswerModel):
    message: str
    type: str
    code: str
    param: str | None


class ErrorResponse(AnswerModel):
    """Every 4xx and 5xx, everywhere."""

    error: ErrorBody


class QueueState(AnswerModel):
    running: int
    waiting: int


class StorageState(AnswerModel):
    ok: bool
    error: str | None = Field(None, description="Why the data dir takes no writes, when ok is false.")


class Health(AnswerModel):
    status: Literal["ok"]
    version: str
    device: str
    models: dict[str, Any]
    queue: QueueState
    storage: StorageState | None = None
    cluster: dict[str, Any] | None = Field(None, description="With serve --ray: the Ray Serve replicas, their nodes and GPUs, and what each has loaded.")


class HealthUnavailable(AnswerModel):
    status: Literal["loading", "error"]
    version: str | None = None
    error: ErrorBody


class ModelEntry(AnswerModel):
    id: str
    object: Literal["model"]
    kind: Literal["image", "speech"] | None = None
    modes: list[Literal["text", "img2img", "inpaint", "depth"]] | None = Field(None, description="Image models: the modes these weights run.")
    loaded: bool | None = Field(None, description="Image models: whether its UNet is in memory now (a mode's own loads on first use).")


class ModelList(AnswerModel):
    object: Literal["list"]
    data: list[ModelEntry]


class ImageItem(AnswerModel):
    url: str | None = None
    b64_json: str | None = None
    revised_prompt: str | None = None
    seed: int | None = None


class ImagesResponse(AnswerModel):
    created: int
    model: str | None = None
    id: str | None = None
    seed: int | None = None
    data: list[ImageItem] = Field(min_length=1)


class Progress(AnswerModel):
    step: int
    steps: int


class JobView(AnswerModel):
    """A job as GET /v1/jobs/{id} shows it."""

    id: str = Field(pattern=JOB_ID_PATTERN)
    object: str | None = None
    kind: Literal["dictation", "generation"] | None = None
    status: Literal["listening", "queued", "transcribing", "generating", "done", "failed", "cancelled"]
    created: int
    finished: int | None = None
    transcript: str | None
    prompt: str | None
    negative_prompt: str
    seed: int | None
    steps: int | None = None
    size: str | None = None
    n: int | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None
    model: str | None = None
    progress: Progress
    images: list[str] = Field(description="Absolute URLs of the PNGs.")
    mode: Literal["text", "img2img", "inpaint", "depth"] | None = Field(None, description="Which inputs it started from.")
    strength: float | None = Field(None, description="How much of the input could change; null for text.")
    inputs: dict[str, str] | None = Field(
        None, description="The pictures it started from, by role (image, mask, depth; only those given): absolute URLs of the PNGs kept."
    )
    error: ErrorBody | None = Field(
        description="Set when failed (codes include no_speech, out_of_memory, engine_error, storage_error, interrupted, "
        "invalid_language, and for a streamed take audio_timeout, payload_too_large, invalid_audio) or cancelled by a shutdown (shutdown)."
    )
    timings: dict[str, float] | None = None
    storyboard: str | None = Field(None, description="The storyboard whose shot this job draws.")
    shot: int | None = Field(None, description="That shot's index, from 1.")
    worker: str | None = Field(None, description="Where it ran: local in process, else the cluster replica (node and replica id).")
    attempts: int | None = Field(None, description="How many times it was started: 2 when a replica died under it and it ran again on another.")


class JobList(AnswerModel):
    object: Literal["list"]
    data: list[JobView]


class JobEvent(AnswerModel):
    """One Server-Sent Event: an `event:` line naming it and a JSON `data:` line. While a streamed
    take is recorded, partial {id, text, stable, audio_s}: the words so far, the prefix of them that
    will not change any more, and how many seconds of audio they cover. Then transcript
    {id, transcript, prompt, negative_prompt}, progress {id, step, steps, preview?: base64
    JPEG}, then one of done, failed, cancelled, whose data is the job; the stream then ends."""

    event: Literal["partial", "transcript", "progress", "done", "failed", "cancelled"]
    data: str = Field(json_schema_extra={"contentMediaType": "application/json"})


class Transcription(AnswerModel):
    text: str
    model: str | None = None
    language: str | None = None
    duration: float | None = None
    segments: list[dict[str, Any]] | None = None


class PruneResult(AnswerModel):
    object: Literal["voicebrush.prune"]
    dry_run: bool
    policy: str
    deleted: list[str] = Field(description="The ids of the jobs deleted (or, with dry_run, that would be).")
    kept: int


class StreamedTranscript(AnswerModel):
    """The answer to a streamed take: its final transcript, exactly what POST
    /v1/audio/transcriptions gives for the same samples. The job goes on to generate."""

    text: str
    id: str = Field(pattern=JOB_ID_PATTERN)
    model: str | None = None
    language: str | None = None
    duration: float | None = None


class TranscriptStreamEvent(AnswerModel):
    """stream=true: `data:` lines of transcript.text.delta {type, delta}, then transcript.text.done {type, text}."""

    type: Literal["transcript.text.delta", "transcript.text.done"]
    delta: str | None = None
    text: str | None = None
