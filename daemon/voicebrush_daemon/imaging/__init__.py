"""Image generation: pick the weights the settings name, load them, report on them.

The job worker calls `load_image_generator(settings)` once and then
`generator.generate(GenerationRequest(...), on_step)` per job.
"""

from __future__ import annotations

from dataclasses import replace

from ..models import MODE_MODELS, PRESETS, ModelUnavailable
from ..settings import Settings
from .base import GenerationRequest, ImageGenerator, StepCallback
from .device import RuntimePlan, available_devices, plan_runtime, resolve_device
from .inputs import DEPTH, INPAINT
from .sources import (
    MODE_FETCH_PATTERNS,
    ModelSource,
    cached_snapshot,
    download_snapshot,
    mode_source,
    mode_weights_folder,
    resolve_source,
    single_file_configs,
)

__all__ = [
    "GenerationRequest",
    "ImageGenerator",
    "StepCallback",
    "RuntimePlan",
    "load_image_generator",
    "describe_image_models",
    "fetch_image_model",
    "runtime_plan_for",
]


def load_image_generator(
    settings: Settings,
    allow_download: bool = False,
    *,
    dtype: str = "auto",
    plan: RuntimePlan | None = None,
) -> ImageGenerator:
    """Load settings.preset ("sd2", "sd2-base", "tiny" or a path) onto settings.device.

    Missing weights raise ModelUnavailable at once unless allow_download is set, in
    which case they are fetched with progress bars. `plan` overrides the device and
    optimisation choices (the benchmark's stock-diffusers baseline uses it).
    """
    from .diffusers_engine import DiffusersImageGenerator

    source = resolve_source(settings.preset)
    modes = {mode: mode_source(source, mode, settings.models_dir) for mode in (INPAINT, DEPTH)}
    if source.kind == "tiny":
        from .tiny import ensure_tiny_pipeline

        source = replace(source, location=str(ensure_tiny_pipeline(settings.models_dir)))
    elif source.kind == "single_file":
        config = single_file_configs(source.location, settings.models_dir, settings.model_config, allow_download=allow_download)
        source = replace(source, config=config)
    if plan is None:
        plan = runtime_plan_for(settings, dtype=dtype)
    return DiffusersImageGenerator(source, plan, allow_download=allow_download, mode_sources=modes)


def runtime_plan_for(settings: Settings, dtype: str = "auto") -> RuntimePlan:
    """The plan the daemon would use on this machine for these settings."""
    import torch

    cuda, mps = available_devices()
    device = resolve_device(settings.device, cuda_available=cuda, mps_available=mps)
    bf16 = device != "cuda" or torch.cuda.is_bf16_supported()
    return plan_runtime(device, dtype=dtype, low_vram=settings.low_vram, compile=settings.compile, bf16_supported=bf16)


def describe_image_models(settings: Settings) -> list[dict]:
    """One entry per image preset (plus settings.preset when it is a path), for `voicebrush models`.

    Keys: name, model, kind ("image"), status ("cached", "missing", "built on first use",
    "built", "invalid"), path (where it is on disk, or None), fetch (a command, or None),
    active (whether settings.preset names it).
    """
    from .tiny import TINY_DIR_NAME, is_built

    entries = []
    names = list(PRESETS)
    if settings.preset not in PRESETS:
        names.append(settings.preset)
    for name in names:
        entry = {"name": name, "kind": "image", "active": name == settings.preset, "path": None, "fetch": None}
        try:
            source = resolve_source(name)
        except ModelUnavailable as exc:
            entries.append({**entry, "model": name, "status": "invalid", "detail": str(exc)})
            continue
        entry["model"] = source.model_id
        if source.kind == "tiny":
            folder = settings.models_dir / TINY_DIR_NAME
            built = is_built(folder)
            entry.update(status="built" if built else "built on first use", path=str(folder) if built else None)
        elif source.kind == "repo":
            snapshot = cached_snapshot(source.location)
            entry.update(
                status="cached" if snapshot else "missing",
                path=str(snapshot) if snapshot else None,
                fetch=f"voicebrush models --fetch {name}",
                fetch_with_hf=source.fetch_command,
            )
        else:
            entry.update(status="cached", path=source.location)
        entries.append(entry)
    entries.extend(_describe_mode_models(settings))
    return entries


def _describe_mode_models(settings: Settings) -> list[dict]:
    """sd2-inpaint and sd2-depth: the extra UNets the inpaint and depth modes use with an
    SD 2.x main model. Keys as describe_image_models', plus mode; active says whether
    `serve` with these settings would use them (the tiny preset has its own stand-ins)."""
    try:
        main = resolve_source(settings.preset)
    except ModelUnavailable:
        main = None
    entries = []
    for model in MODE_MODELS.values():
        source = ModelSource("repo", model.repo, model.repo, model.name, model.native_size)
        snapshot = mode_weights_folder(source)
        entry = {
            "name": model.name,
            "model": model.repo,
            "kind": "image",
            "mode": model.mode,
            "status": "cached" if snapshot else "missing",
            "path": str(snapshot) if snapshot else None,
            "fetch": f"voicebrush models --fetch {model.name}",
            "fetch_with_hf": source.fetch_command,
            "active": bool(snapshot) and main is not None and main.kind != "tiny",
        }
        if main is not None and main.kind == "tiny":
            entry["detail"] = f"the tiny preset uses its own {model.in_channels}-channel stand-in for {model.mode}"
        entries.append(entry)
    return entries


def fetch_image_model(name: str) -> ModelSource:
    """Download a preset's (or sd2-inpaint's, sd2-depth's) weights into the Hugging Face
    cache (progress bars on stderr). A path or the tiny preset needs no download and is
    returned as is."""
    model = MODE_MODELS.get(name)
    if model is not None:
        source = ModelSource("repo", model.repo, model.repo, model.name, model.native_size)
        if mode_weights_folder(source) is None:
            download_snapshot(model.repo, MODE_FETCH_PATTERNS)
        return source
    source = resolve_source(name)
    if source.kind == "repo" and cached_snapshot(source.location) is None:
        download_snapshot(source.location)
    return source
