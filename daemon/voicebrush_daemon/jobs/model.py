"""The job record: what was asked, what was heard, what came out."""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

QUEUED, TRANSCRIBING, GENERATING = "queued", "transcribing", "generating"
LISTENING = "listening"  # a streamed dictation whose audio is still arriving (jobs/listening.py)
DONE, FAILED, CANCELLED = "done", "failed", "cancelled"
ACTIVE = frozenset({LISTENING, QUEUED, TRANSCRIBING, GENERATING})
TERMINAL = frozenset({DONE, FAILED, CANCELLED})

DICTATION, GENERATION = "dictation", "generation"


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Job:
    id: str
    kind: str  # DICTATION (POST /v1/jobs) or GENERATION (POST /v1/images/generations)
    status: str = QUEUED
    created: float = field(default_factory=time.time)
    finished: float | None = None
    transcript: str | None = None
    prompt: str | None = None
    negative_prompt: str = ""
    seed: int | None = None
    steps: int = 25
    size: str | None = None  # "WxH", known once the prompt is
    n: int = 1
    guidance_scale: float = 7.5
    scheduler: str | None = None
    model: str | None = None
    step: int = 0
    # The denoising steps the engine reports it runs: round(strength x steps) from a
    # picture, more for a second-order scheduler (Heun, DPM2). None until it starts.
    progress_steps: int | None = None
    images: list[str] = field(default_factory=list)  # image names, served at /v1/images/{name}.png
    mode: str = "text"  # "text", "img2img", "inpaint" or "depth": which inputs it started from
    strength: float | None = None  # how much of the input may change; None for text
    # The pictures it started from, by role ("image", "mask", "depth"), only those given:
    # stored names (JobStore.save_input), served like images.
    inputs: dict[str, str] = field(default_factory=dict)
    error: dict[str, Any] | None = None
    timings: dict[str, float] = field(default_factory=dict)
    storyboard: str | None = None  # the storyboard this job draws a shot of (storyboards/)
    shot: int | None = None  # that shot's index, from 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Job":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def public(self, image_url) -> dict[str, Any]:
        """The record as the API shows it; image_url(name) makes each image's (and each
        input's) URL."""
        return {
            "id": self.id,
            "object": "voicebrush.job",
            "kind": self.kind,
            "status": self.status,
            "created": int(self.created),
            "finished": int(self.finished) if self.finished else None,
            "transcript": self.transcript,
            "prompt": self.prompt,
            "negative_prompt": self.negative_prompt,
            "seed": self.seed,
            "steps": self.steps,
            "size": self.size,
            "n": self.n,
            "guidance_scale": self.guidance_scale,
            "scheduler": self.scheduler,
            "model": self.model,
            "progress": {"step": self.step, "steps": self.progress_steps or self.steps},
            "images": [image_url(name) for name in self.images],
            "mode": self.mode,
            "strength": self.strength,
            "inputs": {role: image_url(name) for role, name in self.inputs.items()},
            "error": self.error,
            "timings": self.timings,
            "storyboard": self.storyboard,
            "shot": self.shot,
        }


def error_body(message: str, code: str, type: str = "job_error") -> dict[str, Any]:
    return {"message": message, "type": type, "code": code, "param": None}
