"""Request fields -> validated generation options, with the contract's bounds.

One function per source shape (JSON body, multipart form) feeding one validator, so
the rules live in exactly one place and every violation is a 400 naming its field.
"""

from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, replace
from typing import Any, Mapping

from .errors import ApiError

DEFAULT_STEPS = 25
DEFAULT_GUIDANCE = 7.5  # SD2's
MAX_SEED = 2**32 - 1
MIN_SIDE, MAX_SIDE = 64, 2048
MAX_N = 8
MAX_STEPS = 500
MAX_GUIDANCE = 30.0
RESPONSE_FORMATS = ("url", "b64_json")
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


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, message, "invalid_value", param=param)


def _integer(value: Any, param: str, *, from_form: bool) -> int | None:
    if value is None or (from_form and isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise _bad(param, f"'{param}' must be an integer.")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and from_form:
        try:
            return int(value.strip())
        except ValueError:
            pass
    raise _bad(param, f"'{param}' must be an integer.")


def _number(value: Any, param: str, *, from_form: bool) -> float | None:
    if value is None or (from_form and isinstance(value, str) and value.strip() == ""):
        return None
    if isinstance(value, bool):
        raise _bad(param, f"'{param}' must be a number.")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and from_form:
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise _bad(param, f"'{param}' must be a number.")


def _text(value: Any, param: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise _bad(param, f"'{param}' must be a string.")
    if len(value) > MAX_PROMPT_CHARS:
        # Longer than any encoder takes: cut here rather than hold megabytes per job.
        value = value[:MAX_PROMPT_CHARS]
    return value


def parse_size(value: Any) -> tuple[int, int] | None:
    if value is None or value == "" or value == "auto":
        return None
    if not isinstance(value, str):
        raise _bad("size", "'size' must be a string like \"768x768\".")
    parts = value.lower().split("x")
    # isascii: str.isdigit() also admits digits int() refuses, such as "²".
    if len(parts) != 2 or not all(p.strip().isascii() and p.strip().isdigit() for p in parts):
        raise _bad("size", f"'size' must look like \"768x768\", got {value[:40]!r}.")
    width, height = (int(p) for p in parts)
    for side in (width, height):
        if not MIN_SIDE <= side <= MAX_SIDE or side % 8:
            raise _bad("size", f"Each side of 'size' must be a multiple of 8 from {MIN_SIDE} to {MAX_SIDE}; got {width}x{height}.")
    return width, height


def parse_options(
    fields: Mapping[str, Any],
    *,
    schedulers: tuple[str, ...],
    require_prompt: bool = True,
    from_form: bool = False,
) -> GenerationOptions:
    """Validate request fields. Unknown fields are ignored, as OpenAI clients send extras."""
    prompt = _text(fields.get("prompt"), "prompt")
    if prompt is not None and not prompt.strip():
        if require_prompt or not from_form:
            raise _bad("prompt", "'prompt' must not be blank.")
        prompt = None
    if prompt is None and require_prompt:
        raise ApiError(400, "'prompt' is required.", "missing_field", param="prompt")
    prompt = prompt.strip() if prompt else None

    negative = _text(fields.get("negative_prompt"), "negative_prompt") or ""

    n = _integer(fields.get("n"), "n", from_form=from_form)
    if n is None:
        n = 1
    if not 1 <= n <= MAX_N:
        raise _bad("n", f"'n' must be from 1 to {MAX_N}.")

    steps = _integer(fields.get("steps"), "steps", from_form=from_form)
    if not steps:
        steps = DEFAULT_STEPS
    if not 1 <= steps <= MAX_STEPS:
        raise _bad("steps", f"'steps' must be from 1 to {MAX_STEPS} (0 means the default, {DEFAULT_STEPS}).")

    seed = _integer(fields.get("seed"), "seed", from_form=from_form)
    if seed == -1:
        seed = None
    if seed is not None and not 0 <= seed <= MAX_SEED:
        raise _bad("seed", f"'seed' must be from 0 to {MAX_SEED}, or -1 for a random one.")

    guidance = _number(fields.get("guidance_scale"), "guidance_scale", from_form=from_form)
    if guidance is None:
        guidance = DEFAULT_GUIDANCE
    if not math.isfinite(guidance) or not 0 <= guidance <= MAX_GUIDANCE:
        raise _bad("guidance_scale", f"'guidance_scale' must be a number from 0 to {MAX_GUIDANCE:g}.")

    scheduler = _text(fields.get("scheduler"), "scheduler") or None
    if scheduler is not None and scheduler not in schedulers:
        raise _bad("scheduler", f"Unknown scheduler {scheduler[:40]!r}; choose one of: {', '.join(schedulers)}.")

    response_format = _text(fields.get("response_format"), "response_format") or "url"
    if response_format not in RESPONSE_FORMATS:
        raise _bad("response_format", "'response_format' must be 'url' or 'b64_json'.")

    model = fields.get("model")
    return GenerationOptions(
        prompt=prompt,
        negative_prompt=negative.strip(),
        size=parse_size(fields.get("size")),
        n=n,
        steps=steps,
        seed=seed,
        guidance_scale=guidance,
        scheduler=scheduler,
        response_format=response_format,
        model=model if isinstance(model, str) else None,
    )
