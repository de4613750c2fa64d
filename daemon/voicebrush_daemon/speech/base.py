"""What the job worker needs from a speech recogniser.

Audio always arrives decoded: float32 mono samples at SAMPLE_RATE (see audio.py),
so engines never touch files or user-supplied paths.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    no_speech_prob: float = 0.0
    avg_logprob: float = 0.0


@dataclass(frozen=True)
class Transcript:
    text: str  # "" when no speech was heard, never hallucinated filler
    language: str
    duration: float  # seconds of audio
    segments: tuple[Segment, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class TranscribeOptions:
    language: str | None = None
    prompt: str | None = None  # initial prompt, as OpenAI's `prompt`
    temperature: float = 0.0


class Transcriber(Protocol):
    model_id: str  # e.g. "tiny.en", reported by /v1/models and echoed as `model`
    engine: str  # "faster-whisper" or "openai-whisper"

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions = TranscribeOptions()) -> Transcript: ...

    def close(self) -> None: ...
