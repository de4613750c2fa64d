"""The storyboard record: what was asked, its shots, and the job drawing each one.

A board stores no status of its own: it is read from its shots' current jobs, so it can
never disagree with them, and a crash (which leaves cut-off jobs failed) leaves nothing
to repair here.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

from ..jobs.model import ACTIVE, CANCELLED, DONE, FAILED

RUNNING = "running"
SEED_MODES = ("same", "sequence")


def new_board_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class BoardOptions:
    """A storyboard request as it crosses from the server (schemas_storyboards.py)."""

    script: str | None = None  # typed or pasted; None with an explicit shot list or audio
    shots: tuple[str, ...] | None = None  # an explicit shot list, one text per shot
    style: str = ""  # appended to every shot's prompt
    negative_prompt: str = ""
    size: tuple[int, int] | None = None  # None: 16:9 at the model's native area
    steps: int = 25
    seed: int | None = None  # None: picked once for the whole board
    seed_mode: str = "same"  # same: every shot uses the seed; sequence: shot i uses seed + i - 1
    guidance_scale: float = 7.5
    scheduler: str | None = None


@dataclass
class Shot:
    index: int  # from 1, as the panels are numbered
    text: str  # the script's words for it, markers removed: the caption
    prompt: str  # what the image model is asked: the picture words plus the style
    negative_prompt: str
    seed: int
    job: str  # the job drawing it now
    history: list[str] = field(default_factory=list)  # earlier jobs of this shot, oldest first

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Shot":
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Storyboard:
    id: str
    size: str  # "WxH", one frame format for every panel
    steps: int
    seed: int
    seed_mode: str
    shots: list[Shot]
    style: str = ""
    negative_prompt: str = ""
    guidance_scale: float = 7.5
    scheduler: str | None = None
    script: str | None = None  # as typed, or as heard
    transcript: str | None = None  # a dictated script's words, when it was dictated
    created: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Storyboard":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        known["shots"] = [Shot.from_dict(shot) for shot in known.get("shots", [])]
        return cls(**known)

    def shot(self, index: int) -> Shot | None:
        return self.shots[index - 1] if 1 <= index <= len(self.shots) else None

    @property
    def job_ids(self) -> list[str]:
        return [shot.job for shot in self.shots]


def board_status(shot_statuses: list[str]) -> str:
    """running until every shot's job has ended; then cancelled if one was cancelled,
    failed if one failed, else done. A shot whose job is gone counts as failed."""
    if any(status in ACTIVE for status in shot_statuses):
        return RUNNING
    if CANCELLED in shot_statuses:
        return CANCELLED
    if any(status != DONE for status in shot_statuses):
        return FAILED
    return DONE
