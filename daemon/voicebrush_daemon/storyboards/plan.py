"""What each shot asks of the image model: its prompt, negative prompt, seed and size.

Pure rules, one place:
- Spoken controls apply per shot (spoken.interpret): "without people" goes to that
  shot's negative prompt, after the board's own; fillers and "draw me" go.
- Format words ("landscape", "wide shot") describe the picture and stay in the prompt:
  the board has one frame size, given or 16:9 at the model's native area.
- The style goes after every shot's words.
- Seeds: `same` gives every shot the board's seed (one look), `sequence` gives shot 1
  the seed, shot 2 the seed + 1, and so on (wrapping at 2**32).
"""

from __future__ import annotations

from dataclasses import dataclass

from .. import spoken
from ..options import MAX_SEED
from .script import ScriptError

BOARD_ASPECT = 16 / 9


@dataclass(frozen=True)
class ShotPlan:
    text: str
    prompt: str
    negative_prompt: str


def plan_shot(index: int, text: str, style: str = "", negative_prompt: str = "") -> ShotPlan:
    said = spoken.interpret(text, keep_format_words=True)
    if not said.prompt:
        raise ScriptError(f"Shot {index} ({text[:60]!r}) says nothing to draw.", "empty_shot")
    prompt = ", ".join(part for part in (said.prompt, style.strip()) if part)
    negative = ", ".join(part for part in (negative_prompt.strip(), said.negative_prompt) if part)
    return ShotPlan(text=text, prompt=prompt, negative_prompt=negative)


def shot_seed(index: int, seed: int, seed_mode: str) -> int:
    return seed if seed_mode == "same" else (seed + index - 1) % (MAX_SEED + 1)


def board_size(size: tuple[int, int] | None, native: tuple[int, int]) -> tuple[int, int]:
    return size or spoken.size_for_aspect(BOARD_ASPECT, native)
