"""Generation options as they cross from the server into the job layer, and their bounds.

The server validates requests with the pydantic models in server/schemas.py, which take
their bounds from here and hand the job layer this plain frozen dataclass.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, replace

DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 7.5  # SD2's
MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_N = 8
MAX_STEPS = 500
MAX_GUIDANCE = 30.0
MAX_PROMPT_CHARS = 4000  # far beyond CLIP's 77 tokens; the encoder truncates, we only cap memory


@dataclass(frozen=True)
class GenerationOptions:
    prompt: str | None  # None only for a dictation job whose prompt comes from speech
    negative_prompt: str = ""
    size: tuple[int, int] | None = None  # None: the model's native size (or a spoken aspect)
    n: int = 1
    steps: int = DEFAULT_STEPS
    seed: int | None = None  # None: picked at random when the job starts, then reported
    guidance_scale: float = DEFAULT_GUIDANCE
    scheduler: str | None = None  # None: the engine's default
    response_format: str = "url"
    model: str | None = None  # accepted and echoed, never an error

    def with_seed(self) -> "GenerationOptions":
        return self if self.seed is not None else replace(self, seed=secrets.randbelow(MAX_SEED + 1))
