"""Storyboard request bodies and answers, declared as in schemas.py (its conventions hold).

A board is asked for with a script (text, split into shots by storyboards/script.py), an
explicit shot list, or a dictated script (a multipart `file`), plus the options that hold
for every shot. The models turn into storyboards.model.BoardOptions for the layer below.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BeforeValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from ..options import DEFAULT_GUIDANCE, DEFAULT_STEPS
from ..storyboards.model import SEED_MODES, BoardOptions
from ..storyboards.script import MAX_SHOTS
from .schemas import (
    JOB_ID_PATTERN,
    AnswerModel,
    ErrorBody,
    Guidance,
    Language,
    Prompt,
    RequestModel,
    SchedulerName,
    Seed,
    Size,
    Steps,
    Text,
    Upload,
    _integral,
)

MAX_SCRIPT_CHARS = 100_000  # 64 shots of 1500 characters; far beyond any real script


def _check_script(value: str) -> str:
    if len(value) > MAX_SCRIPT_CHARS:
        raise ValueError(f"The script is {len(value)} characters long; at most {MAX_SCRIPT_CHARS} are taken.")
    # Text is letters, marks, punctuation and spaces; control characters (NUL, escapes,
    # what a binary file pasted as text brings) are not a script.
    if any(unicodedata.category(char) == "Cc" and char not in "\n\r\t" for char in value):
        raise ValueError("The script is not text: it holds control characters.")
    return value


Script = Annotated[
    str,
    Field(
        min_length=1,
        pattern=r"\S",
        json_schema_extra={"maxLength": MAX_SCRIPT_CHARS},
        description="The script: one shot per line, also split at shot markers (\"shot two\", \"panel 3:\", \"next shot\", "
        f"\"cut to\", \"then\", \"1.\" at a line start), which are not drawn. At most {MAX_SHOTS} shots and {MAX_SCRIPT_CHARS} characters.",
    ),
    AfterValidator(_check_script),
]
SeedMode = Annotated[Literal["same", "sequence"], Field(description="same (default): every shot uses the seed; sequence: shot 1 the seed, shot 2 the seed + 1, ...")]
assert set(SEED_MODES) == {"same", "sequence"}


class BoardFields(RequestModel):
    """What holds for every shot of a board."""

    style: Text | None = Field(None, description="Appended to every shot's prompt, e.g. \"ink wash, muted colours\".")
    negative_prompt: Text | None = Field(None, description="For every shot, before what a shot itself excludes (\"without people\").")
    size: Size | None = Field(None, description="One frame format for every panel, WxH (multiples of 8, 64-2048); default 16:9 at the model's native area.")
    steps: Steps | None = None
    seed: Seed | None = Field(None, description="The board's seed; -1 or absent picks one at random (and reports it).")
    seed_mode: SeedMode | None = None
    guidance_scale: Guidance | None = None
    scheduler: SchedulerName | None = None

    def board_options(self, script: str | None = None, shots: tuple[str, ...] | None = None) -> BoardOptions:
        size = None
        if self.size and self.size != "auto":
            width, height = self.size.split("x")
            size = (int(width), int(height))
        return BoardOptions(
            script=script,
            shots=shots,
            style=self.style or "",
            negative_prompt=self.negative_prompt or "",
            size=size,
            steps=self.steps or DEFAULT_STEPS,
            seed=None if self.seed in (None, -1) else self.seed,
            seed_mode=self.seed_mode or "same",
            guidance_scale=DEFAULT_GUIDANCE if self.guidance_scale is None else self.guidance_scale,
            scheduler=self.scheduler,
        )


def _shots_count(value: Any) -> Any:
    if isinstance(value, list) and not value:
        raise PydanticCustomError("no_shots", "'shots' is empty: give at least one shot.", {"param": "shots"})
    if isinstance(value, list) and len(value) > MAX_SHOTS:
        raise PydanticCustomError("too_many_shots", f"'shots' has {len(value)} shots; a storyboard holds at most {MAX_SHOTS}.", {"param": "shots"})
    return value


# Exactly one of script and shots (null counts as absent), in JSON Schema's words.
ONE_OF_SCRIPT_OR_SHOTS = {
    "oneOf": [
        {"required": ["script"], "properties": {"script": {"type": "string"}, "shots": {"type": "null"}}},
        {"required": ["shots"], "properties": {"shots": {"type": "array"}, "script": {"type": "null"}}},
    ]
}


class StoryboardRequest(BoardFields):
    """POST /v1/storyboards as JSON: a script, or an explicit list of shots (exactly one)."""

    model_config = {**RequestModel.model_config, "json_schema_extra": ONE_OF_SCRIPT_OR_SHOTS}

    script: Script | None = None
    shots: Annotated[
        list[Prompt],
        Field(min_length=1, max_length=MAX_SHOTS, description=f"One text per shot, in order (1 to {MAX_SHOTS}); a leading \"Shot 3:\" or \"3.\" is dropped."),
        BeforeValidator(_shots_count),
    ] | None = None

    @model_validator(mode="after")
    def _script_or_shots(self) -> "StoryboardRequest":
        if self.script is None and self.shots is None:
            raise PydanticCustomError("missing_field", "Send 'script' (text) or 'shots' (a list of shot texts).", {"param": "script"})
        if self.script is not None and self.shots is not None:
            raise PydanticCustomError("invalid_value", "Send 'script' or 'shots', not both.", {"param": "shots"})
        return self

    def to_options(self) -> BoardOptions:
        return self.board_options(self.script, tuple(self.shots) if self.shots is not None else None)


class StoryboardForm(BoardFields):
    """POST /v1/storyboards as multipart: a dictated script (file) or a typed one."""

    file: Upload | None = Field(None, description="The dictated script: wav, flac, ogg, mp3, webm or m4a, at most 25 MB. It is transcribed, then split.")
    script: Script | None = Field(None, description="A typed script instead of a file (at most 64 KB in a form).")
    language: Language | None = None

    @model_validator(mode="after")
    def _file_or_script(self) -> "StoryboardForm":
        if self.file is None and self.script is None:
            raise PydanticCustomError("missing_field", "Send the dictated script in 'file' (audio), or a typed 'script'.", {"param": "file"})
        if self.file is not None and self.script is not None:
            raise PydanticCustomError("invalid_value", "Send 'file' or 'script', not both.", {"param": "script"})
        return self

    def to_options(self) -> BoardOptions:
        return self.board_options(self.script)


class RedoRequest(RequestModel):
    """POST /v1/storyboards/{id}/shots/{index}: draw the shot again ({} for a new take)."""

    text: Prompt | None = Field(None, description="The shot's new text (spoken controls apply); default: its text as it is.")
    seed: Seed | None = Field(None, description="Default: the shot's seed with a new text (same look), a new random one without.")

    def to_options(self) -> tuple[str | None, int | None]:
        return self.text, self.seed


class StoryboardListQuery(RequestModel):
    """GET /v1/storyboards?limit=N."""

    limit: Annotated[int, Field(ge=1, le=1000, description="How many boards, newest first; default 20."), BeforeValidator(_integral)] = 20


# ---- answers --------------------------------------------------------------------

JobStatus = Literal["queued", "transcribing", "generating", "done", "failed", "cancelled"]


class ShotProgress(AnswerModel):
    step: int
    steps: int


class ShotView(AnswerModel):
    index: int = Field(ge=1, description="From 1, as the panels are numbered.")
    text: str = Field(description="The script's words for this shot, markers removed: the caption.")
    prompt: str = Field(description="What the model is asked: the text's picture words plus the style.")
    negative_prompt: str | None = None
    seed: int | None = None
    job: str = Field(pattern=JOB_ID_PATTERN, description="The job drawing this shot now (GET /v1/jobs/{job}).")
    status: JobStatus | None = None
    progress: ShotProgress | None = None
    image: str | None = Field(None, description="The panel's PNG once drawn (absolute URL).")
    error: ErrorBody | None = None
    history: list[str] | None = Field(None, description="Earlier jobs of this shot (redone), oldest first.")


class StoryboardView(AnswerModel):
    """A storyboard: status running until every shot has ended, then done, cancelled or failed."""

    id: str = Field(pattern=JOB_ID_PATTERN)
    object: Literal["voicebrush.storyboard"] | None = None
    status: Literal["running", "done", "cancelled", "failed"]
    created: int | None = None
    finished: int | None = None
    size: str | None = None
    steps: int | None = None
    seed: int | None = None
    seed_mode: SeedMode | None = None
    style: str | None = None
    negative_prompt: str | None = None
    guidance_scale: float | None = None
    scheduler: str | None = None
    script: str | None = None
    transcript: str | None = Field(None, description="What was heard, for a dictated script.")
    shots: list[ShotView] = Field(min_length=1)
    sheet: dict[str, str] | None = Field(None, description="URLs of sheet.png and sheet.pdf.")


class StoryboardList(AnswerModel):
    object: Literal["list"]
    data: list[StoryboardView]


class StoryboardEvent(AnswerModel):
    """One Server-Sent Event of a board. Each shot's job events (progress {id, step, steps,
    preview?}, then done/failed/cancelled with the job) carry that shot's `index`; `redo`
    {index, job, replaces, text, prompt, seed} says a shot has a new job; the last event is
    `done` with the storyboard (no `index`), once every shot has ended."""

    event: Literal["transcript", "progress", "done", "failed", "cancelled", "redo"]
    data: str = Field(json_schema_extra={"contentMediaType": "application/json"})

