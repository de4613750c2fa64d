"""What the job worker needs from an image engine, and nothing more.

A new image model is one new module with a class that satisfies ImageGenerator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Protocol

from PIL import Image


@dataclass(frozen=True)
class GenerationRequest:
    """Validated options for one text-to-image call (server/schemas.py holds the rules)."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    n: int
    steps: int
    seed: int  # image i uses seed + i, so any image can be reproduced alone
    guidance_scale: float
    scheduler: str


# Called after every denoising step with (step, steps, make_preview). make_preview
# builds a small RGB preview of the current latents on demand (cheap, no VAE), so
# the caller decides how often to pay for one. Returning True asks the engine to
# stop; it then raises errors.GenerationCancelled within that step.
StepCallback = Callable[[int, int, Callable[[], Image.Image]], bool]


class ImageGenerator(Protocol):
    model_id: str  # what /v1/models and PNG metadata call the loaded model
    device: str  # "cuda", "cpu", "mps"
    native_size: tuple[int, int]  # (width, height) used when a request gives no size
    schedulers: tuple[str, ...]  # names accepted in GenerationRequest.scheduler
    default_scheduler: str

    def generate(self, request: GenerationRequest, on_step: StepCallback | None = None) -> list[Image.Image]:
        """Return request.n RGB images. Raises GenerationCancelled or EngineOutOfMemory."""
        ...

    def close(self) -> None: ...
