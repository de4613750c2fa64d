"""The offline stand-in for Stable Diffusion 2: same shape, random weights, tiny.

Built once into the data dir and then loaded through the same `from_pretrained`
path as a real model, so the loading code that the demo and the tests exercise is
the real one. Its pictures are noise-like; what matters is that every part of the
pipeline (tokenizer, text encoder, v-prediction UNet, VAE with factor 8,
scheduler) is there and behaves like SD2's.
"""

from __future__ import annotations

import gzip
import importlib.util
import json
import tempfile
from functools import lru_cache
from pathlib import Path

from ..models import ModelUnavailable
from . import local_build

TINY_DIR_NAME = "tiny-sd2"
# Bump when the architecture below changes, so old builds are rebuilt.
TINY_VERSION = 1
_SEED = 20240601
_MAX_TOKENS = 77


# The stand-ins for sd2-inpaint and sd2-depth: only a UNet and a scheduler config each,
# as the real repos are fetched (the VAE and text encoder are the main model's).
TINY_MODE_DIRS = {"inpaint": "tiny-sd2-inpaint", "depth": "tiny-sd2-depth"}
TINY_MODE_VERSION = 1
_MODE_CLASSES = {"inpaint": "StableDiffusionInpaintPipeline", "depth": "StableDiffusionDepth2ImgPipeline"}


def ensure_tiny_pipeline(models_dir: Path) -> Path:
    """Return models_dir/tiny-sd2, building it first if it is missing or outdated."""

    def write(folder: Path) -> None:
        build_tiny_pipeline().save_pretrained(folder, safe_serialization=True)

    return local_build.ensure_built(models_dir, TINY_DIR_NAME, TINY_VERSION, write)


def is_built(path: Path) -> bool:
    return local_build.is_built(path, TINY_VERSION)


def ensure_tiny_mode_weights(models_dir: Path, mode: str) -> Path:
    """models_dir/tiny-sd2-inpaint or tiny-sd2-depth, built on first use (offline, ~0.1 s):
    a diffusers folder with `unet/` and `scheduler/`, laid out as the real repos' files."""
    from ..models import mode_model_for

    in_channels = mode_model_for(mode).in_channels

    def write(folder: Path) -> None:
        import diffusers

        unet, scheduler = build_tiny_mode_unet(mode, in_channels)
        unet.save_pretrained(folder / "unet", safe_serialization=True)
        scheduler.save_config(folder / "scheduler")
        index = {"_class_name": _MODE_CLASSES[mode], "_diffusers_version": diffusers.__version__,
                 "unet": ["diffusers", "UNet2DConditionModel"], "scheduler": ["diffusers", type(scheduler).__name__]}
        (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")

    return local_build.ensure_built(models_dir, TINY_MODE_DIRS[mode], TINY_MODE_VERSION, write)


def is_mode_weights_built(models_dir: Path, mode: str) -> bool:
    return local_build.is_built(Path(models_dir) / TINY_MODE_DIRS[mode], TINY_MODE_VERSION)


def build_tiny_mode_unet(mode: str, in_channels: int):
    """The tiny UNet with the real mode model's input channels (inpaint 9: latents, mask,
    masked-picture latents; depth 5: latents, depth) and its scheduler: the real repos'
    PNDM config, epsilon prediction (not the 768-v model's v-prediction)."""
    import torch
    from diffusers import PNDMScheduler

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED + in_channels)
        unet = _tiny_unet(in_channels)
    scheduler = PNDMScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="epsilon",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return unet, scheduler


def _tiny_unet(in_channels: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        sample_size=32,  # 256 px native at VAE factor 8
        in_channels=in_channels,
        out_channels=4,
        layers_per_block=1,
        block_out_channels=(32, 64, 64),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=(2, 4, 4),  # SD2 counts heads per block here: (5, 10, 20, 20)
        use_linear_projection=True,
        norm_num_groups=32,
    )


def build_tiny_pipeline():
    """A StableDiffusionPipeline with SD2's shape and seeded random weights (~0.2 s)."""
    import torch
    from diffusers import AutoencoderKL, DPMSolverMultistepScheduler, StableDiffusionPipeline
    from transformers import CLIPTextConfig, CLIPTextModel

    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = write_clip_tokenizer(Path(tokenizer_dir))

    # Weights come from the global RNG; fork it so building leaves callers' state alone.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        text_encoder = CLIPTextModel(
            CLIPTextConfig(
                vocab_size=len(tokenizer),
                hidden_size=64,
                intermediate_size=128,
                num_hidden_layers=2,
                num_attention_heads=4,
                projection_dim=64,
                max_position_embeddings=_MAX_TOKENS,
                hidden_act="gelu",  # SD2's OpenCLIP text encoder uses gelu, not quick_gelu
                bos_token_id=tokenizer.bos_token_id,
                eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        unet = _tiny_unet(4)
        vae = AutoencoderKL(
            in_channels=3,
            out_channels=3,
            down_block_types=("DownEncoderBlock2D",) * 4,
            up_block_types=("UpDecoderBlock2D",) * 4,
            block_out_channels=(16, 16, 32, 32),
            layers_per_block=1,
            latent_channels=4,
            norm_num_groups=16,
            sample_size=256,
            scaling_factor=0.18215,
        )
    # SD 2.1 (768-v)'s scheduler settings, v-prediction included.
    scheduler = DPMSolverMultistepScheduler(
        num_train_timesteps=1000,
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        prediction_type="v_prediction",
        algorithm_type="dpmsolver++",
        solver_order=2,
        steps_offset=1,
        timestep_spacing="leading",
    )
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    return pipe


def write_clip_tokenizer(directory: Path):
    """The real CLIP BPE tokenizer (49,408 tokens) as SD2 configures it, written to
    directory and loaded from it.

    transformers 5 builds a 3-token vocabulary when given vocab/merges files
    directly, so the files are saved and loaded with from_pretrained instead.
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab_and_merges()
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n", encoding="utf-8"
    )
    # SD2's tokenizer pads with "!" (id 0), not with the end token as CLIP's does.
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": _MAX_TOKENS,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
                "pad_token": "!",
                "do_lower_case": True,
            }
        ),
        encoding="utf-8",
    )
    return CLIPTokenizer.from_pretrained(str(directory), model_max_length=_MAX_TOKENS)


@lru_cache(maxsize=1)
def clip_vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """CLIP's recipe (openai/CLIP simple_tokenizer.py) applied to its shipped BPE file."""
    with gzip.open(_bpe_file(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 49152 - 256 - 2 + 1]]
    byte_chars = list(_bytes_to_unicode().values())
    tokens = byte_chars + [c + "</w>" for c in byte_chars]
    tokens += ["".join(m) for m in merges]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {t: i for i, t in enumerate(tokens)}, merges


def _bpe_file() -> Path:
    # Located without importing open_clip, which needs torchvision at import time.
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        # ModelUnavailable: the CLI prints it as one line, the daemon's health reports it.
        raise ModelUnavailable(
            "the CLIP tokenizer voicebrush writes (tiny preset, SD 2 single-file configs) needs the vocabulary "
            "file of the open_clip_torch package: pip install --no-deps open_clip_torch"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "bpe_simple_vocab_16e6.txt.gz"
    if not path.is_file():
        raise ModelUnavailable(f"CLIP vocabulary missing: {path}; reinstall open_clip_torch")
    return path


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from bytes to printable unicode characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))
