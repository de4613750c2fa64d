"""4. The full-size part of `voicebrush bench`: SD2 768-v on a GPU, with random weights.

Timing does not depend on the weight values, so the real architectures are built
from their configs (UNet 865.9M, VAE 83.7M, OpenCLIP-H text encoder 340.4M
parameters) and nothing is downloaded. The pipeline is saved once to a scratch
folder and every variant is then loaded through the daemon's own loading code
(`load_image_generator` with a runtime plan), so what is measured is what
`voicebrush serve` runs.

- Per guided step at 768x768 (CFG batch of 2, UNet + scheduler), stock diffusers
  (fp16, default attention) against the daemon's plan, interleaved round by round.
  torch.compile's warm-up happens at load and in an unreported first block.
- TFLOP/s from the UNet's FLOPs as torch's FlopCounter counts them (on the meta
  device: no memory, no time) over the measured step time.
- Low-VRAM mode's peak: torch.cuda.max_memory_allocated over a 768x768 generation.
- Dictation end to end through the daemon on loopback: Whisper small.en when its
  weights are cached, else the bundled tiny.en (the report names which).

Everything takes a device, so the test suite runs the same code on the CPU with a
miniature architecture; only the memory figures need CUDA.
"""

from __future__ import annotations

import gc
import statistics
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..imaging.sd2_configs import SD2_SCHEDULER, SD2_TEXT_ENCODER, SD2_UNET, SD2_VAE, SD2_TOKEN_IDS
from ..settings import Settings
from .clips import DICTATION_CLIP, read_clip
from .dictation import measure_dictation
from .loopback import LoopbackDaemon
from .report import say
from .workload import SEED, Workload

# Dense bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s; first match wins.
BF16_PEAK_TFLOPS = (
    ("h100 pcie", 756.0),
    ("h100 nvl", 835.0),
    ("h100", 989.4),  # SXM
    ("h200", 989.4),
    ("a100", 312.0),
    ("l40s", 362.1),
    ("l4", 121.0),
    ("rtx 4090", 165.2),
)


@dataclass(frozen=True)
class Architecture:
    name: str
    unet: dict = field(default_factory=lambda: dict(SD2_UNET))
    vae: dict = field(default_factory=lambda: dict(SD2_VAE))
    text_encoder: dict = field(default_factory=lambda: dict(SD2_TEXT_ENCODER))

    @property
    def native_side(self) -> int:
        return self.unet["sample_size"] * 2 ** (len(self.vae["block_out_channels"]) - 1)


SD2_768 = Architecture("sd2-768-v")


def build_components(arch: Architecture, device: str = "cpu", dtype=None):
    """(text_encoder, unet, vae) with random weights, created directly on `device`
    ("meta" gives shapes and parameter counts without memory)."""
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    text_config = dict(arch.text_encoder, **SD2_TOKEN_IDS)
    with torch.device(device):
        text_encoder = CLIPTextModel(CLIPTextConfig(**text_config))
        unet = UNet2DConditionModel(**arch.unet)
        vae = AutoencoderKL(**arch.vae)
    if dtype is not None and device != "meta":
        for module in (text_encoder, unet, vae):
            module.to(dtype)
    return text_encoder, unet, vae


def parameter_counts(arch: Architecture) -> dict[str, int]:
    text_encoder, unet, vae = build_components(arch, "meta")
    return {name: sum(p.numel() for p in module.parameters()) for name, module in (("text_encoder", text_encoder), ("unet", unet), ("vae", vae))}


def guided_step_flops(arch: Architecture, side: int) -> float:
    """FLOPs of one guided UNet step (the CFG batch of 2) at side x side, counted on meta."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    _, unet, _ = build_components(arch, "meta")
    latent = side // 2 ** (len(arch.vae["block_out_channels"]) - 1)
    sample = torch.empty(2, arch.unet["in_channels"], latent, latent, device="meta")
    context = torch.empty(2, 77, arch.unet["cross_attention_dim"], device="meta")
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        unet(sample, torch.tensor(999, device="meta"), encoder_hidden_states=context)
    return float(counter.get_total_flops())


def save_random_pipeline(arch: Architecture, folder: Path, device: str = "cpu") -> Path:
    """Build the architecture on `device`, save it as a diffusers folder (fp16 on CUDA)."""
    import torch
    from diffusers import DPMSolverMultistepScheduler, StableDiffusionPipeline

    from ..imaging.tiny import write_clip_tokenizer

    dtype = torch.float16 if device == "cuda" else torch.float32
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        text_encoder, unet, vae = build_components(arch, device, dtype)
    with tempfile.TemporaryDirectory() as tokenizer_dir:
        tokenizer = write_clip_tokenizer(Path(tokenizer_dir))
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=DPMSolverMultistepScheduler(**SD2_SCHEDULER),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    del pipe, text_encoder, unet, vae
    _free(device)
    return Path(folder)


def time_guided_steps(pipe, side: int, steps: int, *, guidance: float = 7.5, seed: int = 0) -> float:
    """Seconds per guided step: the denoising loop of the pipeline (CFG batch through the
    UNet, guidance, scheduler step) without text encoding or VAE, synchronised at both ends."""
    import torch

    unet = pipe.unet
    device, dtype = unet.device, unet.dtype
    scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
    scheduler.set_timesteps(steps, device=device)
    generator = torch.Generator("cpu").manual_seed(seed)
    channels, latent = unet.config.in_channels, side // pipe.vae_scale_factor
    latents = torch.randn((1, channels, latent, latent), generator=generator).to(device, dtype) * scheduler.init_noise_sigma
    context = torch.randn((2, 77, unet.config.cross_attention_dim), generator=generator).to(device, dtype)
    with torch.inference_mode():
        _synchronize(device.type)
        started = time.perf_counter()
        for t in scheduler.timesteps:
            model_input = scheduler.scale_model_input(torch.cat([latents] * 2), t)
            prediction = unet(model_input, t, encoder_hidden_states=context, return_dict=False)[0]
            unconditional, conditional = prediction.chunk(2)
            prediction = unconditional + guidance * (conditional - unconditional)
            latents = scheduler.step(prediction, t, latents, return_dict=False)[0]
        _synchronize(device.type)
    return (time.perf_counter() - started) / steps


def peak_tflops(device_name: str | None) -> float | None:
    name = (device_name or "").lower()
    for key, value in BF16_PEAK_TFLOPS:
        if key in name:
            return value
    return None


def run_gpu_section(
    settings: Settings,
    *,
    rounds: int,
    quick: bool = False,
    plot_path: Path | None = None,
    arch: Architecture = SD2_768,
    side: int | None = None,
    steps: int | None = None,
    low_vram_steps: int = 4,
    device: str = "cuda",
) -> dict[str, Any]:
    """The GPU figures (`gpu.*` in the report). `device` other than cuda is for tests."""
    import torch

    from ..imaging import load_image_generator, runtime_plan_for
    from ..imaging.base import GenerationRequest
    from ..imaging.device import plan_runtime, stock_plan
    from ..jobs.worker import Engines

    side = side or arch.native_side
    steps = steps or (5 if quick else 25)
    rounds = max(1, rounds)
    cuda = device == "cuda"
    result: dict[str, Any] = {
        "architecture": arch.name,
        "weights": "random (timing does not depend on them)",
        "device_name": torch.cuda.get_device_name(0) if cuda else device,
        "size": f"{side}x{side}",
        "steps": steps,
        "rounds": rounds,
        "parameters": parameter_counts(arch),
    }
    with tempfile.TemporaryDirectory(prefix="voicebrush-bench-gpu-") as scratch:
        folder = Path(scratch) / f"{arch.name}-random"
        say(f"gpu: building {arch.name} with random weights on {device} ...")
        started = time.perf_counter()
        save_random_pipeline(arch, folder, device)
        result["build_s"] = round(time.perf_counter() - started, 2)
        model_settings = replace(settings, preset=str(folder), device=device, low_vram=False, data_dir=Path(scratch) / "data")

        # Low-VRAM first, on an otherwise empty GPU: max_memory_allocated counts every tensor.
        say("gpu: low-VRAM peak memory ...")
        low = load_image_generator(replace(model_settings, low_vram=True, compile=False))
        result["low_vram_plan"] = low.plan.describe()
        _reset_peak(device)
        started = time.perf_counter()
        low.generate(GenerationRequest("a misty harbour", "", side, side, 1, low_vram_steps, SEED, 7.5, low.default_scheduler))
        result["low_vram_generate_s"] = round(time.perf_counter() - started, 3)
        result["low_vram_steps"] = low_vram_steps
        peak = torch.cuda.max_memory_allocated() if cuda else None
        result["low_vram_peak_bytes"] = peak
        result["low_vram_peak_gb"] = round(peak / 1e9, 3) if peak is not None else None
        low.close()
        del low
        _free(device)

        # Stock diffusers against the daemon's plan (and bf16 where the card has it).
        plans = {"stock": stock_plan(device, "float16" if cuda else "auto"), "optimised": runtime_plan_for(model_settings)}
        if cuda and torch.cuda.is_bf16_supported():
            plans["optimised_bf16"] = plan_runtime(device, dtype="bfloat16")  # uncompiled: one compile is enough
        generators, warmups = {}, {}
        for name, plan in plans.items():
            say(f"gpu: loading {name} ({plan.describe()}) ...")
            generators[name] = load_image_generator(model_settings, plan=plan)
            # The first block pays for autotuning and compilation: timed, reported, excluded.
            torch.backends.cudnn.benchmark = plan.cudnn_benchmark
            warmups[name] = round((generators[name].warmup_seconds or 0.0) + steps * time_guided_steps(generators[name].pipeline, side, steps), 3)
        step_s: dict[str, list[float]] = {name: [] for name in plans}
        say(f"gpu: {side}x{side} guided steps, {len(plans)} plans interleaved, {rounds} rounds of {steps} steps")
        for _ in range(rounds):
            for name, generator in generators.items():
                torch.backends.cudnn.benchmark = plans[name].cudnn_benchmark  # stock diffusers leaves it off
                step_s[name].append(time_guided_steps(generator.pipeline, side, steps))
        step_ms = {name: round(statistics.median(values) * 1000, 3) for name, values in step_s.items()}

        # Whole generations (text encoder + steps + VAE decode), the same two plans side by side.
        request = GenerationRequest("a misty harbour at dawn", "", side, side, 1, steps, SEED, 7.5, "dpmpp_2m")
        generate_s: dict[str, list[float]] = {"stock": [], "optimised": []}
        for _ in range(rounds):
            for name in generate_s:
                torch.backends.cudnn.benchmark = plans[name].cudnn_benchmark
                _synchronize(device)
                started = time.perf_counter()
                generators[name].generate(request)
                _synchronize(device)
                generate_s[name].append(time.perf_counter() - started)
        torch.backends.cudnn.benchmark = plans["optimised"].cudnn_benchmark
        for name in list(generators):
            if name != "optimised":
                generators.pop(name).close()
        _free(device)

        flops = guided_step_flops(arch, side)
        optimised_s = step_ms["optimised"] / 1000
        peak_tf = peak_tflops(result["device_name"]) if cuda else None
        tflops = flops / optimised_s / 1e12
        result.update(
            stock_plan=plans["stock"].describe(),
            optimised_plan=plans["optimised"].describe(),
            step_ms_stock=step_ms["stock"],
            step_ms_optimised=step_ms["optimised"],
            step_ms_by_plan=step_ms,
            step_ms_rounds={name: [round(v * 1000, 3) for v in values] for name, values in step_s.items()},
            speedup=round(step_ms["stock"] / step_ms["optimised"], 3),
            warmup_s_by_plan=warmups,
            compile_warmup_s=warmups["optimised"] if plans["optimised"].compile_unet else None,
            flops_per_step=flops,
            tflops=float(f"{tflops:.4g}"),  # significant digits: a CPU test sees ~0.01
            peak_tflops=peak_tf,
            peak_fraction=round(tflops / peak_tf, 4) if peak_tf else None,
            generate_s_stock=round(statistics.median(generate_s["stock"]), 4),
            generate_s_optimised=round(statistics.median(generate_s["optimised"]), 4),
        )

        # Speech to picture through the daemon, as the artist meets it.
        transcriber, asr_note = load_transcriber_for(settings, device)
        result["asr_model"] = f"{transcriber.model_id} ({transcriber.engine})"
        result["asr_note"] = asr_note
        try:
            engines = Engines(image=generators["optimised"], speech=transcriber)
            with LoopbackDaemon(model_settings, engines) as server:
                e2e = measure_dictation(server, read_clip(DICTATION_CLIP), (side, side), Workload(rounds=rounds), steps=steps)
        finally:
            transcriber.close()
            generators.pop("optimised").close()
            _free(device)
        result.update(e2e_s=e2e["median_s"], e2e_steps=steps, e2e=e2e)
    if plot_path is not None:
        result["plot"] = str(write_step_plot(step_ms, plot_path, f"{arch.name} guided step at {side}x{side}, {result['device_name']}"))
    return result


def load_transcriber_for(settings: Settings, device: str):
    """Whisper small.en (the real presets' model) when its weights are cached, else the
    bundled tiny.en; either engine. Returns (transcriber, what was tried and failed)."""
    from ..speech import ENGINES, load_transcriber

    engines = [settings.asr_engine] + [e for e in ENGINES if e != settings.asr_engine]
    wanted = settings.asr_model or "small.en"
    tries = [replace(settings, preset="sd2", asr_engine=e, asr_model=wanted, device=device) for e in engines]
    tries += [replace(settings, preset="tiny", asr_engine=e, asr_model=None, device=device) for e in engines]
    failures = []
    for attempt in tries:
        try:
            return load_transcriber(attempt), "; ".join(failures) or None
        except Exception as exc:  # missing weights, or a CUDA runtime CTranslate2 cannot find
            failures.append(f"{attempt.asr_model or 'tiny.en'} ({attempt.asr_engine}): {str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}")
    raise RuntimeError("no Whisper model could be loaded: " + "; ".join(failures))


def write_step_plot(step_ms: dict[str, float], path: Path, title: str) -> Path:
    """A horizontal bar chart (PNG) of milliseconds per guided step by plan, drawn with
    Pillow so the benchmark needs no plotting library."""
    from PIL import Image, ImageDraw, ImageFont

    font = ImageFont.load_default(size=16)
    row, left, right, top = 44, 180, 140, 56
    width = 900
    height = top + row * len(step_ms) + 20
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    draw.text((12, 14), title, fill="black", font=font)
    longest = max(step_ms.values()) or 1.0
    for index, (name, ms) in enumerate(step_ms.items()):
        y = top + index * row
        bar = int((width - left - right) * ms / longest)
        draw.text((12, y + 8), name, fill="black", font=font)
        draw.rectangle([left, y + 4, left + max(bar, 1), y + row - 8], fill=(70, 110, 180) if name != "stock" else (170, 170, 170))
        draw.text((left + bar + 8, y + 8), f"{ms:.1f} ms", fill="black", font=font)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format="PNG")
    return path


def _synchronize(device_type: str) -> None:
    if device_type == "cuda":
        import torch

        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _free(device: str) -> None:
    gc.collect()
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()
