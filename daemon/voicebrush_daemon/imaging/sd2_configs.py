"""Stable Diffusion 2.x's component configs, written down once.

Two users: a single-file SD 2.x checkpoint (one .safetensors, as most UIs share them)
carries weights but no configs, so the daemon writes these into the data dir and
hands them to diffusers' single-file loader instead of fetching them from the Hub;
and the GPU benchmark builds the full-size architecture from them with random
weights. The values are those of stabilityai/stable-diffusion-2-1 (768-v).
"""

from __future__ import annotations

import json
from pathlib import Path

# stabilityai/stable-diffusion-2-1 (768-v), unet/config.json.
SD2_UNET = {
    "sample_size": 96,
    "in_channels": 4,
    "out_channels": 4,
    "layers_per_block": 2,
    "block_out_channels": (320, 640, 1280, 1280),
    "down_block_types": ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    "cross_attention_dim": 1024,
    "attention_head_dim": (5, 10, 20, 20),  # diffusers' legacy name: heads per block
    "use_linear_projection": True,
    "upcast_attention": True,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
}
# vae/config.json (the same VAE as SD 1.x).
SD2_VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ("DownEncoderBlock2D",) * 4,
    "up_block_types": ("UpDecoderBlock2D",) * 4,
    "block_out_channels": (128, 256, 512, 512),
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}
# text_encoder/config.json: OpenCLIP ViT-H/14's text tower, penultimate layer (23 of 24).
SD2_TEXT_ENCODER = {
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "projection_dim": 512,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
}
# scheduler/scheduler_config.json, as the daemon's default sampler reads it.
SD2_SCHEDULER = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "v_prediction",
    "steps_offset": 1,
    "timestep_spacing": "leading",
}

# SD2's tokenizer: CLIP's ids for start and end, "!" (0) for padding.
SD2_TOKEN_IDS = {"bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 0}

# The Hub repo whose configs diffusers would fetch for an SD 2.x checkpoint; ours replace them.
SD2_REPO = "stabilityai/stable-diffusion-2-1"
CONFIG_DIR_NAME = "sd2-768-v-configs"
# Bump when anything written below changes, so old folders are rewritten.
CONFIG_VERSION = 1


def ensure_sd2_config_folder(models_dir: Path) -> Path:
    """models_dir/sd2-768-v-configs: a diffusers folder of SD 2.x's configs and tokenizer,
    without weights (written on first use, ~1 MB, offline)."""
    from .local_build import ensure_built

    return ensure_built(models_dir, CONFIG_DIR_NAME, CONFIG_VERSION, write_sd2_configs)


def write_sd2_configs(folder: Path) -> None:
    import diffusers
    from diffusers import DPMSolverMultistepScheduler
    from transformers import CLIPTextConfig

    from .tiny import write_clip_tokenizer

    folder = Path(folder)
    version = diffusers.__version__
    components = {
        "unet": ("diffusers", "UNet2DConditionModel"),
        "vae": ("diffusers", "AutoencoderKL"),
        "text_encoder": ("transformers", "CLIPTextModel"),
        "tokenizer": ("transformers", "CLIPTokenizer"),
        "scheduler": ("diffusers", "DPMSolverMultistepScheduler"),
    }
    model_index = {
        "_class_name": "StableDiffusionPipeline",
        "_diffusers_version": version,
        **{name: list(value) for name, value in components.items()},
        "safety_checker": [None, None],
        "feature_extractor": [None, None],
        "requires_safety_checker": False,
    }
    _write_json(folder / "model_index.json", model_index)
    _write_json(folder / "unet" / "config.json", {"_class_name": "UNet2DConditionModel", "_diffusers_version": version, **SD2_UNET})
    _write_json(folder / "vae" / "config.json", {"_class_name": "AutoencoderKL", "_diffusers_version": version, **SD2_VAE})
    CLIPTextConfig(**SD2_TEXT_ENCODER, **SD2_TOKEN_IDS, architectures=["CLIPTextModel"]).save_pretrained(folder / "text_encoder")
    (folder / "tokenizer").mkdir()
    write_clip_tokenizer(folder / "tokenizer")
    DPMSolverMultistepScheduler(**SD2_SCHEDULER).save_config(folder / "scheduler")


def _write_json(path: Path, value: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
