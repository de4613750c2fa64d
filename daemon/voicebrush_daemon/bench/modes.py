"""`voicebrush bench` figures for the picture modes: what starting from a picture costs.

Measured directly on a loaded image engine (no HTTP), the modes interleaved round by
round so that a machine getting busier or cooler shifts them all alike:

- img2img_time_ratio: img2img at strength 0.5 over strength 1.0, same steps (should be
  about 0.5 plus the VAE encode, as only round(0.5 x steps) steps run);
- vae_encode_s: one VAE encode of a 768x768 picture;
- inpaint_overhead_ratio: inpaint over text to image at the same size and steps (goal <= 1.1);
- the same two ratios in process CPU time (`*_cpu`), for a CPU machine others share;
- resident_one_unet_mb / resident_three_unets_mb: memory with the main UNet only, and
  with the inpaint and depth UNets loaded too (CUDA: allocated device memory; else the
  process's resident set), beside the exact weight sizes.
"""

from __future__ import annotations

import gc
import statistics
import time
from typing import Any

import numpy as np
from PIL import Image

from ..imaging.base import GenerationRequest
from ..imaging.inputs import DEPTH, IMG2IMG, INPAINT, TEXT
from ..models import ModelUnavailable

INPAINT_GOAL = 1.1


def measure_modes(generator, *, side: int | None = None, steps: int = 20, rounds: int = 3, encode_side: int = 768) -> dict[str, Any]:
    """The picture-mode figures for `generator` (a DiffusersImageGenerator) at side x side
    (default: its native size), `steps` steps, `rounds` interleaved rounds after a warm-up."""
    width, height = (side, side) if side else generator.native_size
    picture = _test_picture(width, height)
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))  # a quarter of the area

    def request(mode: str, strength: float = 1.0) -> GenerationRequest:
        return GenerationRequest(
            prompt="a misty harbour at dawn, wide shot",
            negative_prompt="",
            width=width,
            height=height,
            n=1,
            steps=steps,
            seed=1234,
            guidance_scale=7.5,
            scheduler=generator.default_scheduler,
            mode=mode,
            strength=strength,
            image=picture if mode != TEXT else None,
            mask=mask if mode == INPAINT else None,
        )

    runs = {
        "text": request(TEXT),
        "inpaint": request(INPAINT),
        "img2img_0.5": request(IMG2IMG, 0.5),
        "img2img_1.0": request(IMG2IMG, 1.0),
    }
    steps_run: dict[str, int] = {}
    for name, run in runs.items():  # warm-up: loads the inpaint UNet, fills caches
        counted = []
        generator.generate(run, lambda step, total, preview: counted.append(total) or False)
        steps_run[name] = counted[-1] if counted else 0
    seconds: dict[str, list[float]] = {name: [] for name in runs}
    cpu_seconds: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for round_index in range(rounds):
        for name in order[round_index % len(order):] + order[: round_index % len(order)]:
            started, cpu = time.perf_counter(), time.process_time()
            generator.generate(runs[name])
            seconds[name].append(time.perf_counter() - started)
            cpu_seconds[name].append(time.process_time() - cpu)
    median = {name: statistics.median(values) for name, values in seconds.items()}
    cpu_median = {name: statistics.median(values) for name, values in cpu_seconds.items()}
    inpaint_ratio = median["inpaint"] / median["text"]
    return {
        "size": f"{width}x{height}",
        "steps": steps,
        "rounds": rounds,
        "device": generator.device,
        "seconds": {name: round(value, 4) for name, value in median.items()},
        "steps_run": steps_run,
        "img2img_time_ratio": round(median["img2img_0.5"] / median["img2img_1.0"], 3),
        # The same ratios in process CPU time: steadier than wall time on a shared CPU
        # machine (meaningless on a GPU, where the CPU mostly waits).
        "img2img_time_ratio_cpu": _ratio(cpu_median["img2img_0.5"], cpu_median["img2img_1.0"]),
        "inpaint_overhead_ratio_cpu": _ratio(cpu_median["inpaint"], cpu_median["text"]),
        "vae_encode_s": round(measure_vae_encode(generator, encode_side, rounds), 4),
        "vae_encode_side": encode_side,
        "inpaint_overhead_ratio": round(inpaint_ratio, 3),
        "inpaint_goal_met": inpaint_ratio <= INPAINT_GOAL,
        "inpaint_model": generator.models_for_modes()[INPAINT],
        **measure_unet_memory(generator),
    }


def measure_vae_encode(generator, side: int = 768, rounds: int = 3) -> float:
    """Median seconds of one VAE encode of a side x side picture, as img2img does it."""
    import torch

    pipe = generator.pipeline
    tensor = pipe.image_processor.preprocess(_test_picture(side, side))
    vae = pipe.vae
    device = vae.device if vae.device.type != "meta" else generator.device
    tensor = tensor.to(device=device, dtype=vae.dtype)
    times = []
    with torch.no_grad():
        for index in range(rounds + 1):
            _synchronise(generator.device)
            started = time.perf_counter()
            vae.encode(tensor).latent_dist.sample()
            _synchronise(generator.device)
            if index:  # the first is the warm-up
                times.append(time.perf_counter() - started)
    return statistics.median(times)


def measure_unet_memory(generator) -> dict[str, Any]:
    """Memory with the main UNet alone, then with the inpaint and depth UNets loaded too."""
    generator.unload_unets_except(None)
    gc.collect()
    one = _memory_bytes(generator.device)
    note = None
    for mode in (INPAINT, DEPTH):
        try:
            generator.pipeline_for(mode)
        except ModelUnavailable as exc:  # depth may not be downloaded: say so, measure the rest
            note = str(exc)
    gc.collect()
    three = _memory_bytes(generator.device) if note is None else None
    return {
        "resident_one_unet_mb": _mb(one),
        "resident_three_unets_mb": _mb(three),
        "unet_weights_mb": {role: _mb(size) for role, size in generator.unet_parameter_bytes().items()},
        "memory_kind": _memory_kind(generator.device),
        "loaded_unets": dict(generator.loaded_unets),
        "memory_note": note,
    }


def _test_picture(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def _synchronise(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()
    elif device == "mps":
        torch.mps.synchronize()


def _memory_kind(device: str) -> str:
    return "cuda allocated" if device == "cuda" else "process resident set"


def _memory_bytes(device: str) -> int | None:
    if device == "cuda":
        import torch

        return torch.cuda.memory_allocated()
    try:
        import os

        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        try:
            import psutil
        except ImportError:
            return None
        return psutil.Process().memory_info().rss


def _ratio(part: float, whole: float) -> float | None:
    return round(part / whole, 3) if whole > 0 else None


def _mb(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)
