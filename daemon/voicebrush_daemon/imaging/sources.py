"""Where an image model's weights come from: a Hugging Face repo, a diffusers
folder, a single .safetensors file, or the locally built tiny stand-in.

Also answers `voicebrush models`: what is cached, what is missing, and the exact
command that fetches it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..models import MODE_MODELS, PRESETS, ModelUnavailable, mode_model_for

# Pickle-based checkpoints can run arbitrary code when loaded: never opened.
PICKLE_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".pkl")

# The files a diffusers text-to-image repo needs, safetensors only. SD 2.1's repos also
# hold multi-GB root checkpoints (.ckpt and .safetensors) and .bin copies we never load.
FETCH_PATTERNS = (
    "model_index.json",
    "*/*.json",
    "*/*.txt",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)
_NEEDED_FILES = (
    "model_index.json",
    "unet/diffusion_pytorch_model.safetensors",
    "vae/diffusion_pytorch_model.safetensors",
    "text_encoder/model.safetensors",
)
# What a single-file checkpoint needs from its family's repo: configs and tokenizer only.
_CONFIG_FILES = (
    "model_index.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "tokenizer/vocab.json",
    "scheduler/scheduler_config.json",
)


# A mode model (sd2-inpaint, sd2-depth) is fetched as a UNet and its scheduler config
# only: its VAE and text encoder are the main SD 2.x model's, already loaded.
MODE_FETCH_PATTERNS = (
    "model_index.json",
    "unet/config.json",
    "unet/diffusion_pytorch_model.safetensors",
    "scheduler/scheduler_config.json",
)
_MODE_NEEDED_FILES = MODE_FETCH_PATTERNS


@dataclass(frozen=True)
class ModelSource:
    kind: str  # "repo", "folder", "single_file" or "tiny"
    location: str  # repo id or filesystem path
    model_id: str  # the name reported in /v1/models and PNG metadata
    preset: str | None = None  # the preset that named it, if any
    native_size: tuple[int, int] | None = None  # None: read from the model's config
    # single_file only: the diffusers folder (or Hub repo) whose configs describe it.
    config: str | None = None

    @property
    def fetch_command(self) -> str | None:
        if self.kind != "repo":
            return None
        return fetch_command(self.location, MODE_FETCH_PATTERNS if self.preset in MODE_MODELS else FETCH_PATTERNS)


def resolve_source(preset_or_path: str) -> ModelSource:
    """A preset name or a filesystem path -> what to load. Raises ModelUnavailable for a
    path that does not exist or a pickle checkpoint; nothing is loaded here."""
    preset = PRESETS.get(preset_or_path)
    if preset is not None:
        if preset.image_model == "tiny":
            return ModelSource("tiny", "", "tiny-sd2", preset.name, preset.native_size)
        return ModelSource("repo", preset.image_model, preset.image_model, preset.name, preset.native_size)

    path = Path(os.path.expanduser(preset_or_path))
    if path.suffix.lower() in PICKLE_SUFFIXES:
        raise ModelUnavailable(
            f"refusing to load {path.name}: {path.suffix} checkpoints are pickles that can run code when opened; "
            "use a .safetensors file or a diffusers folder"
        )
    if not path.exists():
        names = ", ".join(PRESETS)
        raise ModelUnavailable(f"image model {preset_or_path!r} is neither a preset ({names}) nor an existing path")
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise ModelUnavailable(f"{path} is not a diffusers model folder (no model_index.json)")
        return ModelSource("folder", str(path), path.name)
    if path.suffix.lower() != ".safetensors":
        raise ModelUnavailable(f"{path.name}: an image model file must be a .safetensors checkpoint")
    return ModelSource("single_file", str(path), path.stem)


def mode_source(main: ModelSource, mode: str, models_dir: Path) -> ModelSource | None:
    """Where the extra UNet for `mode` comes from with this main model: the tiny preset's
    own stand-in, else the real SD 2.x repo (kind "repo", preset "sd2-inpaint" or
    "sd2-depth"). None when the mode needs no extra UNet. Nothing is loaded or fetched."""
    model = mode_model_for(mode)
    if model is None:
        return None
    if main.kind == "tiny":
        from .tiny import TINY_MODE_DIRS

        return ModelSource("tiny", str(models_dir), TINY_MODE_DIRS[mode], model.name, model.native_size)
    return ModelSource("repo", model.repo, model.repo, model.name, model.native_size)


def mode_weights_folder(source: ModelSource) -> Path | None:
    """The local folder holding a mode source's `unet/` and `scheduler/`, or None when
    its weights are not downloaded. The tiny stand-in is built here on first use."""
    if source.kind == "tiny":
        from .tiny import ensure_tiny_mode_weights

        return ensure_tiny_mode_weights(Path(source.location), MODE_MODELS[source.preset].mode)
    if source.kind == "repo":
        return cached_snapshot(source.location, _MODE_NEEDED_FILES)
    return Path(source.location)


def fetch_command(repo_id: str, patterns_to_fetch: tuple[str, ...] = FETCH_PATTERNS) -> str:
    patterns = " ".join(f'"{p}"' for p in patterns_to_fetch)
    return f"hf download {repo_id} --include {patterns}"


def cached_snapshot(repo_id: str, needed: tuple[str, ...] = _NEEDED_FILES) -> Path | None:
    """The local snapshot folder of repo_id when every file we load is in the HF cache."""
    from huggingface_hub import try_to_load_from_cache

    folder = None
    for name in needed:
        found = try_to_load_from_cache(repo_id, name)
        if not isinstance(found, str):
            return None
        if folder is None:
            folder = Path(found).parent
    return folder


def download_snapshot(repo_id: str, patterns: tuple[str, ...] = FETCH_PATTERNS) -> Path:
    """Fetch repo_id's needed files into the HF cache, with huggingface_hub's progress bars."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, allow_patterns=list(patterns)))
    except Exception as exc:  # network, auth, disk: all one line for the CLI
        raise ModelUnavailable(f"could not download image model {repo_id}: {_first_line(exc)}") from exc


def missing_message(source: ModelSource) -> str:
    name = source.preset or source.location
    return (
        f"image model {source.location} is not downloaded; fetch it with `voicebrush models --fetch {name}` "
        f"(or `{source.fetch_command}`), see `voicebrush models`"
    )


def single_file_config_repo(path: str) -> str:
    """The repo whose configs diffusers' single-file loader wants for this checkpoint
    (its rule, read from the tensor names and one shape without loading the weights)."""
    from .sd2_configs import SD2_REPO

    try:
        from safetensors import safe_open

        with safe_open(path, framework="pt") as f:
            key = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
            if key in f.keys() and f.get_slice(key).get_shape()[-1] == 1024:
                return SD2_REPO
    except Exception:  # unreadable files get their own error from the loader
        pass
    return "stable-diffusion-v1-5/stable-diffusion-v1-5"


def single_file_configs(path: str, models_dir: Path, explicit: Path | None, *, allow_download: bool) -> str:
    """Where the configs for a single-file checkpoint come from, without touching the network
    unless allowed: the operator's --model-config folder; else the family's repo from the HF
    cache; else, for SD 2.x, the configs the daemon writes itself; else the Hub, when allowed."""
    from .sd2_configs import SD2_REPO, ensure_sd2_config_folder

    if explicit is not None:
        folder = Path(explicit).expanduser()
        if not (folder / "model_index.json").is_file():
            raise ModelUnavailable(f"--model-config {folder} is not a diffusers model folder (no model_index.json)")
        return str(folder)
    repo = single_file_config_repo(path)
    snapshot = cached_snapshot(repo, _CONFIG_FILES)
    if snapshot is not None:
        return str(snapshot)
    if repo == SD2_REPO:
        return str(ensure_sd2_config_folder(models_dir))
    if allow_download:
        return repo
    raise ModelUnavailable(f"could not load image model {path}: its config files are not cached; {single_file_hint(path)}")


def single_file_hint(path: str) -> str:
    repo = single_file_config_repo(path)
    return (
        f"a single .safetensors checkpoint also needs the small config files of {repo}: "
        f'`hf download {repo} --include "*.json" "*.txt"`, or --model-config FOLDER naming a diffusers folder that describes it'
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
