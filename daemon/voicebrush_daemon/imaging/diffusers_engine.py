"""Stable Diffusion text-to-image through diffusers' own StableDiffusionPipeline.

One generation reads top to bottom in `generate`: pick a fresh scheduler, seed one
generator per image, run the pipeline with a per-step hook (progress, previews,
cancellation), and turn device failures into the daemon's errors.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Callable

import torch
from PIL import Image

from ..errors import EngineOutOfMemory, GenerationCancelled
from ..models import ModelUnavailable
from .base import GenerationRequest, StepCallback
from .device import RuntimePlan
from .sources import ModelSource, cached_snapshot, download_snapshot, missing_message, single_file_hint

log = logging.getLogger(__name__)

# name -> (diffusers class name, options on top of the model's own scheduler config).
# Built from the loaded pipeline's config so prediction_type (v for SD2-768), betas and
# timestep spacing carry over.
SCHEDULERS: dict[str, tuple[str, dict]] = {
    "dpmpp_2m": ("DPMSolverMultistepScheduler", {"algorithm_type": "dpmsolver++", "solver_order": 2}),
    "ddim": ("DDIMScheduler", {}),
    "euler": ("EulerDiscreteScheduler", {}),
    "euler_a": ("EulerAncestralDiscreteScheduler", {}),
    "unipc": ("UniPCMultistepScheduler", {}),
}
DEFAULT_SCHEDULER = "dpmpp_2m"

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


class _StopRequested(Exception):
    """Raised from inside the pipeline's step hook to leave the denoising loop at once
    (no remaining steps, no VAE decode)."""


class DiffusersImageGenerator:
    """ImageGenerator over a StableDiffusionPipeline. Not thread-safe: one worker owns it."""

    schedulers = tuple(SCHEDULERS)
    default_scheduler = DEFAULT_SCHEDULER

    def __init__(self, source: ModelSource, plan: RuntimePlan, *, allow_download: bool = False) -> None:
        self.plan = plan
        self.device = plan.device
        self.model_id = source.model_id
        self.source = source
        started = time.perf_counter()
        self._pipe = _load_pipeline(source, plan, allow_download=allow_download)
        self.load_seconds = time.perf_counter() - started
        self._scheduler_config = dict(self._pipe.scheduler.config)
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
        """request.n RGB images; image i is the picture seed + i gives alone."""
        pipe = self._pipe
        pipe.scheduler = self.make_scheduler(request.scheduler)  # schedulers keep per-run state
        # CPU generators: the same seed gives the same starting noise on every device.
        generators = [torch.Generator("cpu").manual_seed(request.seed + i) for i in range(request.n)]

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
                width=request.width,
                height=request.height,
                num_inference_steps=request.steps,
                guidance_scale=request.guidance_scale,
                num_images_per_prompt=request.n,
                generator=generators,
                callback_on_step_end=step_end,
                callback_on_step_end_tensor_inputs=["latents"],
                output_type="pil",
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
        return [image if image.mode == "RGB" else image.convert("RGB") for image in result.images]

    def make_scheduler(self, name: str):
        """A fresh scheduler called `name`, configured like the model's own."""
        try:
            class_name, options = SCHEDULERS[name]
        except KeyError:
            raise ValueError(f"unknown scheduler {name!r}; choose one of {', '.join(SCHEDULERS)}") from None
        import diffusers

        return getattr(diffusers, class_name).from_config(self._scheduler_config, **options)

    def release_memory(self) -> None:
        """Give cached device memory back after a failure, so the next call can run."""
        self._pipe.maybe_free_model_hooks()
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
        self._pipe = None
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
