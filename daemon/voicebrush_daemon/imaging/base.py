"""What the job worker needs from an image engine, and nothing more.

A new image model is one new module with a class that satisfies ImageGenerator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Protocol

from PIL import Image

from .inputs import DEFAULT_MASK_BLUR, DEPTH, IMG2IMG, INPAINT, MODES, TEXT


@dataclass(frozen=True)
class GenerationRequest:
    """Validated options for one generation (server/schemas.py and imaging/inputs.py hold
    the rules). The mode is data: one field, read by the engine in one place."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    n: int
    steps: int
    seed: int  # image i uses seed + i, so any image can be reproduced alone
    guidance_scale: float
    scheduler: str
    mode: str = TEXT  # "text", "img2img", "inpaint" or "depth"
    # How much of the picture may change, in (0, 1]: the steps actually run are
    # round(strength * steps). Ignored for text.
    strength: float = 1.0
    # The inputs, already at width x height (imaging.inputs.fit_inputs), in the internal
    # forms: image RGB; mask L, white = repaint; depth L or I;16, white = near.
    image: Image.Image | None = field(default=None, compare=False, repr=False)
    mask: Image.Image | None = field(default=None, compare=False, repr=False)
    depth: Image.Image | None = field(default=None, compare=False, repr=False)
    mask_blur: int = DEFAULT_MASK_BLUR  # feathering of the inpaint seam, in pixels

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown mode {self.mode!r}; one of {', '.join(MODES)}")
        needs = {IMG2IMG: ("image",), INPAINT: ("image", "mask"), DEPTH: ("depth",)}.get(self.mode, ())
        for name in needs:
            picture = getattr(self, name)
            if picture is None:
                raise ValueError(f"mode {self.mode} needs {name}")
        for name in ("image", "mask", "depth"):
            picture = getattr(self, name)
            if picture is not None and picture.size != (self.width, self.height):
                raise ValueError(f"{name} is {picture.size[0]}x{picture.size[1]}, not the request's {self.width}x{self.height}")
        if self.mode != TEXT and not 0 < self.strength <= 1:
            raise ValueError(f"strength must be in (0, 1], got {self.strength}")


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
        """Return request.n RGB images. Raises GenerationCancelled, EngineOutOfMemory, or
        ModelUnavailable when the mode's weights are missing."""
        ...

    def require_mode(self, mode: str) -> None:
        """Raise ModelUnavailable (message: the command that fetches the weights) when
        `mode` cannot run here. Cheap: looks at the disk, loads nothing."""
        ...

    def close(self) -> None: ...
