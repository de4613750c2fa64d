"""Stable Diffusion through diffusers' own pipelines, one per mode.

One generation reads top to bottom in `generate`: pick the mode's pipeline (in
`pipeline_for`, the one place a mode becomes a pipeline), a fresh scheduler, one
seeded generator per image, run it with a per-step hook (progress, previews,
cancellation), put the untouched pixels back for inpainting, and turn device failures
into the daemon's errors.

The modes share the main model's VAE, text encoder and tokenizer. img2img also shares
its UNet; inpaint and depth load their own UNet (sd2-inpaint: 9 input channels,
sd2-depth: 5) on first use, each with its own scheduler config (both are epsilon
models at 512, while SD 2.1 768 is v-prediction). Without sd2-inpaint, inpainting
runs on the main UNet with masked latents (diffusers' inpaint pipeline does that for a
4-channel UNet), so a fine-tuned checkpoint inpaints too.
"""

from __future__ import annotations

import gc
import inspect
import logging
import time
from typing import Callable

import torch
from PIL import Image

from ..errors import EngineOutOfMemory, GenerationCancelled
from ..models import MODE_MODELS, ModelUnavailable
from .base import GenerationRequest, StepCallback
from .device import RuntimePlan
from .inputs import DEPTH, IMG2IMG, INPAINT, NEUTRAL_GREY, TEXT, depth_values, feathered
from .schedulers import DEFAULT_SCHEDULER, SCHEDULERS
from .sources import (
    ModelSource,
    cached_snapshot,
    download_snapshot,
    missing_message,
    mode_weights_folder,
    single_file_hint,
)

log = logging.getLogger(__name__)

# Linear map from SD's 4 latent channels to RGB in [-1, 1]: a preview for free, no VAE.
# (The "cheap approximation" used by AUTOMATIC1111's live previews; fits SD 1.x and 2.x.)
_LATENT_TO_RGB = torch.tensor(
    [
        [0.298, 0.207, 0.208],
        [0.187, 0.286, 0.173],
        [-0.158, 0.189, 0.264],
        [-0.184, -0.271, -0.473],
    ]
)
PREVIEW_MAX_SIDE = 128

# The diffusers pipeline each mode runs.
PIPELINE_CLASSES = {
    TEXT: "StableDiffusionPipeline",
    IMG2IMG: "StableDiffusionImg2ImgPipeline",
    INPAINT: "StableDiffusionInpaintPipeline",
    DEPTH: "StableDiffusionDepth2ImgPipeline",
}


def denoising_steps(mode: str, steps: int, strength: float) -> int:
    """The steps a request actually runs: all of them for text, round(strength x steps)
    (at least one) when starting from a picture."""
    if mode == TEXT:
        return steps
    return min(steps, max(1, round(strength * steps)))


def pipeline_strength(mode: str, steps: int, strength: float) -> float:
    """The strength to hand diffusers so that it runs denoising_steps(...) steps: it
    floors steps x strength where the contract rounds. Halfway between two step counts,
    the value floors to the one wanted whatever the float error; 1.0 stays 1.0, which the
    inpaint pipeline reads as "start from pure noise"."""
    wanted = denoising_steps(mode, steps, strength)
    return 1.0 if wanted >= steps else (wanted + 0.5) / steps


class _StopRequested(Exception):
    """Raised from inside the pipeline's step hook to leave the denoising loop at once
    (no remaining steps, no VAE decode)."""


class _ModeWeights:
    """An extra UNet loaded for one mode, with its own scheduler config."""

    def __init__(self, source: ModelSource, unet, scheduler_config: dict) -> None:
        self.source, self.unet, self.scheduler_config = source, unet, scheduler_config


class DiffusersImageGenerator:
    """ImageGenerator over diffusers' Stable Diffusion pipelines. Not thread-safe: one
    worker owns it."""

    schedulers = tuple(SCHEDULERS)
    default_scheduler = DEFAULT_SCHEDULER

    def __init__(
        self,
        source: ModelSource,
        plan: RuntimePlan,
        *,
        allow_download: bool = False,
        mode_sources: dict[str, ModelSource] | None = None,
    ) -> None:
        self.plan = plan
        self.device = plan.device
        self.model_id = source.model_id
        self.source = source
        started = time.perf_counter()
        self._pipe = _load_pipeline(source, plan, allow_download=allow_download)
        self.load_seconds = time.perf_counter() - started
        self._scheduler_config = dict(self._pipe.scheduler.config)
        # Where inpaint's and depth's own UNets come from (imaging.sources.mode_source);
        # loaded on first use into _mode_weights.
        self._mode_sources = dict(mode_sources or {})
        self._mode_weights: dict[str, _ModeWeights] = {}
        self._pipelines: dict[str, object] = {TEXT: self._pipe}
        self._last_pipeline = self._pipe
        unet_size = self._pipe.unet.config.sample_size * self._pipe.vae_scale_factor
        self.native_size: tuple[int, int] = source.native_size or (unet_size, unet_size)
        # Memory left over from loading is not the generation's.
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        self.warmup_seconds: float | None = None
        if plan.compile_unet:
            self.warmup_seconds = self._warm_up()
        log.info("image model %s ready on %s in %.1f s", self.model_id, plan.describe(), self.load_seconds)

    @property
    def pipeline(self):
        """The underlying diffusers pipeline (for the benchmark's direct calls)."""
        return self._pipe

    def generate(self, request: GenerationRequest, on_step: StepCallback | None = None) -> list[Image.Image]:
        """request.n RGB images; image i is the picture seed + i gives alone, in every mode."""
        pipe, scheduler_config = self.pipeline_for(request.mode)
        seeds = [request.seed + i for i in range(request.n)]
        pipe.scheduler = self.make_scheduler(request.scheduler, scheduler_config, seeds=seeds)  # schedulers keep per-run state
        # CPU generators: the same seed gives the same starting noise on every device.
        generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
        arguments, keep = self._mode_arguments(request)

        def step_end(pipeline, index: int, timestep, tensors: dict) -> dict:
            if on_step is not None:
                latents = tensors["latents"]
                total = getattr(pipeline, "num_timesteps", None) or request.steps
                if on_step(index + 1, total, lambda: latent_preview(latents)):
                    raise _StopRequested
            return {}

        out_of_memory = False
        try:
            result = pipe(
                prompt=request.prompt,
                negative_prompt=request.negative_prompt or None,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance_scale,
                num_images_per_prompt=request.n,
                generator=generators,
                callback_on_step_end=step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                output_type="pil",
                **arguments,
            )
        except _StopRequested:
            pipe.maybe_free_model_hooks()  # offloaded models go back to the CPU
            raise GenerationCancelled("generation cancelled") from None
        except torch.OutOfMemoryError:
            out_of_memory = True
        except RuntimeError as exc:  # MPS and older CUDA paths report OOM as RuntimeError
            if "out of memory" not in str(exc).lower():
                raise
            out_of_memory = True
        if out_of_memory:
            # Outside the except block: the traceback (and the tensors its frames hold) is gone.
            self.release_memory()
            raise EngineOutOfMemory(
                f"the {self.device} device ran out of memory at {request.width}x{request.height}, n={request.n}; "
                "try a smaller size or fewer images, or start the daemon with --low-vram"
            )
        images = [image if image.mode == "RGB" else image.convert("RGB") for image in result.images]
        if keep is not None:
            # The original back wherever the feathered mask is below white: pixels it
            # leaves at black are the input's, bit for bit.
            original, seam = keep
            images = [Image.composite(image, original, seam) for image in images]
        return images

    def _mode_arguments(self, request: GenerationRequest) -> tuple[dict, tuple[Image.Image, Image.Image] | None]:
        """The pipeline arguments the mode adds, and for inpaint (original, feathered mask)
        to composite with afterwards."""
        strength = pipeline_strength(request.mode, request.steps, request.strength)
        if request.mode == TEXT:
            return {"width": request.width, "height": request.height}, None
        if request.mode == IMG2IMG:
            return {"image": request.image, "strength": strength}, None
        if request.mode == INPAINT:
            seam = feathered(request.mask, request.mask_blur)
            # Repaint everywhere the feathered mask reaches, so the blend never mixes in
            # anything but generated pixels; the composite then restores the rest.
            repaint = seam.point(lambda value: 255 if value > 0 else 0)
            # One copy per image, so each image's VAE sampling uses its own generator.
            arguments = {
                "image": [request.image] * request.n,
                "mask_image": [repaint] * request.n,
                "strength": strength,
                "width": request.width,
                "height": request.height,
            }
            return arguments, (request.image, seam)
        start = request.image if request.image is not None else Image.new("RGB", (request.width, request.height), NEUTRAL_GREY)
        # White = near, as the depth estimator SD 2 depth was trained on predicts (inverse
        # depth); the pipeline rescales it to [-1, 1] itself.
        depth = torch.from_numpy(depth_values(request.depth))[None]
        return {"image": [start] * request.n, "depth_map": depth, "strength": strength}, None

    # ---- modes: the one place a mode becomes a pipeline --------------------------

    def pipeline_for(self, mode: str):
        """(pipeline, scheduler config) for `mode`, building the pipeline on first use
        from the shared components and loading the mode's own UNet if it has one."""
        if mode not in PIPELINE_CLASSES:
            raise ValueError(f"unknown mode {mode!r}")
        if self.plan.unload_idle_unets:
            self.unload_unets_except(mode)
        weights = self._load_mode_weights(mode) if mode in (INPAINT, DEPTH) else None
        if mode == DEPTH and weights is None:
            raise ModelUnavailable(self._own_weights(DEPTH)[1] or "depth mode needs sd2-depth: `voicebrush models --fetch sd2-depth`")
        unet = weights.unet if weights is not None else self._pipe.unet
        scheduler_config = weights.scheduler_config if weights is not None else self._scheduler_config
        pipe = self._pipelines.get(mode)
        if pipe is None or pipe.unet is not unet:
            pipe = self._build_pipeline(mode, unet)
            self._pipelines[mode] = pipe
        if self.plan.model_cpu_offload and pipe is not self._last_pipeline:
            # The pipelines share modules, and each hooks them for offload in its own
            # order; re-hook for the one about to run.
            pipe.enable_model_cpu_offload(device=self.plan.device)
        self._last_pipeline = pipe
        return pipe, scheduler_config

    def _build_pipeline(self, mode: str, unet):
        import diffusers

        if mode == TEXT:
            return self._pipe
        main = self._pipe
        components = {
            "vae": main.vae,
            "text_encoder": main.text_encoder,
            "tokenizer": main.tokenizer,
            "unet": unet,
            "scheduler": self.make_scheduler(self.default_scheduler),  # replaced per run
        }
        if mode == DEPTH:
            components.update(depth_estimator=None, feature_extractor=None)  # the caller sends depth
        else:
            components.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        pipe = getattr(diffusers, PIPELINE_CLASSES[mode])(**components)
        pipe.set_progress_bar_config(disable=True)
        if self.plan.attention_slicing:
            pipe.enable_attention_slicing()
        if self.plan.model_cpu_offload:
            pipe.enable_model_cpu_offload(device=self.plan.device)
        return pipe

    def require_mode(self, mode: str) -> None:
        """Raise ModelUnavailable when `mode` cannot run: only depth can fail, as inpaint
        falls back to the main model. Looks at the disk, loads nothing."""
        if mode == DEPTH:
            model_id, reason = self._own_weights(DEPTH)
            if model_id is None:
                raise ModelUnavailable(reason)

    def models_for_modes(self) -> dict[str, str | None]:
        """Which weights each mode runs on now (None: it cannot run), for /v1/health."""
        return {
            TEXT: self.model_id,
            IMG2IMG: self.model_id,
            INPAINT: self._own_weights(INPAINT)[0] or self.model_id,  # else masked latents on the main UNet
            DEPTH: self._own_weights(DEPTH)[0],
        }

    def _own_weights(self, mode: str) -> tuple[str | None, str | None]:
        """(model id of the mode's own UNet if it is usable now, else None; why not)."""
        weights = self._mode_weights.get(mode)
        if weights is not None:
            return weights.source.model_id, None
        name = next((m.name for m in MODE_MODELS.values() if m.mode == mode), mode)
        fetch = f"fetch it with `voicebrush models --fetch {name}`"
        source = self._mode_sources.get(mode)
        if source is None:
            return None, f"{mode} mode needs {name}, which this main model cannot use; {fetch} and use an SD 2.x main model"
        if source.kind == "tiny":
            return source.model_id, None  # the stand-in is built on first use
        folder = mode_weights_folder(source)
        if folder is None:
            return None, f"{mode} mode needs {name} ({source.location}), which is not downloaded; {fetch}"
        reason = self._incompatibility(folder)
        if reason:
            return None, f"{mode} mode needs an SD 2.x main model to use {name}: {reason}"
        return source.model_id, None

    @property
    def mode_sources(self) -> dict[str, ModelSource]:
        """Where each mode's own UNet comes from (to build another engine like this one)."""
        return dict(self._mode_sources)

    @property
    def loaded_unets(self) -> dict[str, str]:
        """The UNets in memory, by role ("main", "inpaint", "depth") -> model id."""
        loaded = {"main": self.model_id}
        loaded.update({mode: weights.source.model_id for mode, weights in self._mode_weights.items()})
        return loaded

    def unet_parameter_bytes(self) -> dict[str, int]:
        """Bytes of weights per loaded UNet (the benchmark's memory figures)."""
        unets = {"main": self._pipe.unet, **{mode: w.unet for mode, w in self._mode_weights.items()}}
        return {role: sum(p.numel() * p.element_size() for p in unet.parameters()) for role, unet in unets.items()}

    def _load_mode_weights(self, mode: str) -> _ModeWeights | None:
        """The mode's own UNet, loaded on first use; None when it is not on disk or does
        not fit the main model (different text encoder width)."""
        weights = self._mode_weights.get(mode)
        if weights is not None:
            return weights
        source = self._mode_sources.get(mode)
        if source is None:
            return None
        folder = mode_weights_folder(source)
        if folder is None:
            return None
        reason = self._incompatibility(folder)
        if reason:
            log.warning("not using %s for %s: %s", source.model_id, mode, reason)
            return None
        started = time.perf_counter()
        try:
            from diffusers import DDIMScheduler, UNet2DConditionModel

            unet = UNet2DConditionModel.from_pretrained(
                str(folder), subfolder="unet", local_files_only=True, use_safetensors=True, **{_dtype_keyword(): self.plan.torch_dtype}
            )
            # Any scheduler class reads any scheduler's config file; only the dict is kept.
            scheduler_config = dict(DDIMScheduler.load_config(str(folder), subfolder="scheduler", local_files_only=True))
        except (OSError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
            raise ModelUnavailable(
                f"could not load {source.preset} from {folder}: {first}; fetch it again with `voicebrush models --fetch {source.preset}`"
            ) from exc
        prepare_unet(unet, self.plan)
        weights = _ModeWeights(source, unet, scheduler_config)
        self._mode_weights[mode] = weights
        log.info(
            "loaded the %s UNet %s (%d input channels, %s prediction) in %.1f s; UNets loaded: %s",
            mode, source.model_id, unet.config.in_channels, scheduler_config.get("prediction_type", "epsilon"),
            time.perf_counter() - started, ", ".join(self.loaded_unets.values()),
        )
        return weights

    def _incompatibility(self, folder) -> str | None:
        """Why a mode UNet in `folder` cannot share this main model's text encoder, or None."""
        import json
        from pathlib import Path

        try:
            config = json.loads((Path(folder) / "unet" / "config.json").read_text())
        except (OSError, ValueError) as exc:
            return f"unreadable unet/config.json ({exc})"
        width = self._pipe.text_encoder.config.hidden_size
        if config.get("cross_attention_dim") != width:
            return f"its UNet reads {config.get('cross_attention_dim')}-wide text embeddings, the main model's text encoder gives {width}"
        return None

    def unload_unets_except(self, mode: str | None = None) -> None:
        """Free the mode UNets that `mode` does not use (all of them for None); low-VRAM
        does this before every run. Each is reloaded from disk on its next use."""
        idle = [other for other in self._mode_weights if other != mode]
        for other in idle:
            del self._mode_weights[other]
            self._pipelines.pop(other, None)
        if idle:
            gc.collect()
            if self.device == "cuda":
                torch.cuda.empty_cache()
            log.info("unloaded the %s UNet (not needed for %s); UNets loaded: %s", ", ".join(idle), mode or "now", ", ".join(self.loaded_unets.values()))

    def make_scheduler(self, name: str, config: dict | None = None, seeds: list[int] | None = None):
        """A fresh scheduler called `name`, configured like the model's own (or like
        `config`, a mode UNet's own scheduler config). `seeds`, one per image, seed the
        schedulers that draw noise of their own (DPM++ SDE's Brownian tree ignores the
        pipeline's generators), so image i stays the picture seed + i gives alone."""
        try:
            scheduler = SCHEDULERS[name]
        except KeyError:
            raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}") from None
        import diffusers

        # Built from the model's own config, so prediction_type (v for SD2-768), betas and
        # timestep spacing carry over.
        cls = getattr(diffusers, scheduler.diffusers_class)
        options = dict(scheduler.options)
        if seeds is not None and "noise_sampler_seed" in inspect.signature(cls.__init__).parameters:
            options["noise_sampler_seed"] = list(seeds)
        return cls.from_config(config or self._scheduler_config, **options)

    def release_memory(self) -> None:
        """Give cached device memory back after a failure, so the next call can run."""
        self._last_pipeline.maybe_free_model_hooks()
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()
        elif self.device == "mps":
            torch.mps.empty_cache()

    def peak_memory_bytes(self) -> int | None:
        """Peak device memory allocated by torch since load or the last reset (CUDA only)."""
        return torch.cuda.max_memory_allocated() if self.device == "cuda" else None

    def reset_peak_memory(self) -> None:
        if self.device == "cuda":
            torch.cuda.reset_peak_memory_stats()

    def close(self) -> None:
        self._pipe = self._last_pipeline = None
        self._pipelines.clear()
        self._mode_weights.clear()
        gc.collect()
        if self.device == "cuda":
            torch.cuda.empty_cache()

    def _warm_up(self) -> float:
        """Run once so torch.compile does its work at load, not in the first request."""
        width, height = self.native_size
        started = time.perf_counter()
        self.generate(GenerationRequest("warm-up", "", width, height, 1, 2, 0, 7.5, self.default_scheduler))
        seconds = time.perf_counter() - started
        log.info("torch.compile warm-up took %.1f s", seconds)
        return seconds


def latent_preview(latents: torch.Tensor, max_side: int = PREVIEW_MAX_SIDE) -> Image.Image:
    """A small RGB picture of the first image's current latents (linear map, no VAE)."""
    latent = latents[0].detach().to("cpu", torch.float32)  # (4, h, w): kilobytes to copy
    rgb = torch.einsum("chw,cr->hwr", latent, _LATENT_TO_RGB)
    pixels = ((rgb + 1.0) * 127.5).clamp(0, 255).to(torch.uint8).numpy()
    image = Image.fromarray(pixels, "RGB")
    scale = max_side / max(image.size)
    if scale < 1 or scale >= 2:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image


def _load_pipeline(source: ModelSource, plan: RuntimePlan, *, allow_download: bool):
    from diffusers import StableDiffusionPipeline

    common = {_dtype_keyword(): plan.torch_dtype, "safety_checker": None, "requires_safety_checker": False}
    try:
        if source.kind == "single_file":
            # source.config: a local folder of component configs (or, when downloads are
            # allowed, a Hub repo), so diffusers never guesses or fetches on its own.
            pipe = StableDiffusionPipeline.from_single_file(
                source.location, config=source.config, local_files_only=not allow_download, **common
            )
        else:
            location = source.location
            if source.kind == "repo":
                snapshot = cached_snapshot(location)
                if snapshot is None:
                    if not allow_download:
                        raise ModelUnavailable(missing_message(source))
                    snapshot = download_snapshot(location)
                location = str(snapshot)
            # use_safetensors: a folder holding only pickled .bin weights is refused, not
            # unpickled (no pickle from files we did not make).
            pipe = StableDiffusionPipeline.from_pretrained(location, local_files_only=True, use_safetensors=True, **common)
    except ModelUnavailable:
        raise
    except (OSError, ValueError) as exc:
        # Missing or partial files, a config that is not in the cache, a file that is
        # not a Stable Diffusion checkpoint: one line for the CLI, never a traceback.
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0].rstrip(".")
        hint = single_file_hint(source.location) if source.kind == "single_file" else "see `voicebrush models`"
        raise ModelUnavailable(f"could not load image model {source.location}: {first}; {hint}") from exc
    pipe.set_progress_bar_config(disable=True)
    apply_plan(pipe, plan)
    return pipe


def apply_plan(pipe, plan: RuntimePlan) -> None:
    """Move the pipeline to its device and switch on the plan's optimisations."""
    if not plan.sdpa:
        from diffusers.models.attention_processor import AttnProcessor

        pipe.unet.set_attn_processor(AttnProcessor())
        pipe.vae.set_attn_processor(AttnProcessor())
    if plan.fuse_qkv:
        _try(pipe.fuse_qkv_projections, "fused QKV projections")
    if plan.channels_last:
        pipe.unet.to(memory_format=torch.channels_last)
        pipe.vae.to(memory_format=torch.channels_last)
    if plan.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if plan.attention_slicing:
        pipe.enable_attention_slicing()
    if plan.vae_tiling:
        vae = pipe.vae
        vae.enable_tiling()
        # Tiles default to the model's native size, so a 768 model would never tile at 768.
        vae.tile_sample_min_size = min(vae.tile_sample_min_size, plan.vae_tile_size)
        vae.tile_latent_min_size = vae.tile_sample_min_size // pipe.vae_scale_factor
    if plan.vae_slicing:
        pipe.vae.enable_slicing()
    if plan.model_cpu_offload:
        pipe.enable_model_cpu_offload(device=plan.device)
    else:
        pipe.to(plan.device)
    if plan.compile_unet:
        if plan.compile_backend == "inductor":
            pipe.unet.compile(mode=plan.compile_mode)
        else:
            pipe.unet.compile(backend=plan.compile_backend)


def prepare_unet(unet, plan: RuntimePlan) -> None:
    """A mode UNet gets the plan's UNet settings (apply_plan's, minus torch.compile: a
    compile on first use would stall that job for minutes)."""
    if not plan.sdpa:
        from diffusers.models.attention_processor import AttnProcessor

        unet.set_attn_processor(AttnProcessor())
    if plan.fuse_qkv:
        _try(unet.fuse_qkv_projections, "fused QKV projections")
    if plan.channels_last:
        unet.to(memory_format=torch.channels_last)
    if not plan.model_cpu_offload:
        unet.to(plan.device)


def _dtype_keyword() -> str:
    # diffusers renamed torch_dtype to dtype (0.36); older releases only know torch_dtype.
    try:
        from diffusers.utils.deprecation_utils import _resolve_dtype  # noqa: F401
    except ImportError:
        return "torch_dtype"
    return "dtype"


def _try(action: Callable[[], object], what: str) -> None:
    try:
        action()
    except (ValueError, AttributeError, NotImplementedError) as exc:
        log.warning("%s not available for this model: %s", what, exc)
