"""1. Generation overhead: the same generation through the HTTP API and called directly,
interleaved A, B, A, B so load changes on a shared machine hit both alike.

The real app serves on a free loopback port from a thread of this process, with the
very engine object the direct calls use. The timed call is `POST
/v1/images/generations` (`b64_json`, decoded to PNG bytes) against `engine.generate`
+ `encode_png` (what a user of the pipeline does to get a PNG). The first request
after start is the warm-up, reported on its own.
"""

from __future__ import annotations

import base64
import io
import json
import statistics
import time
import urllib.request
import uuid
from typing import Any

from .loopback import LoopbackDaemon
from .report import progress, rounded, say
from .workload import PROMPT, SEED, Workload


def measure_generation(server: LoopbackDaemon, image, work: Workload) -> dict[str, Any]:
    from ..imaging.base import GenerationRequest
    from ..options import DEFAULT_GUIDANCE

    size, steps = work.generation_size, work.generation_steps
    request = GenerationRequest(PROMPT, "", size, size, 1, steps, SEED, DEFAULT_GUIDANCE, image.default_scheduler)
    body = json.dumps(
        {"prompt": PROMPT, "size": f"{size}x{size}", "steps": steps, "n": 1, "seed": SEED, "response_format": "b64_json"}
    ).encode()
    say(f"generation: {size}x{size}, {steps} steps, HTTP and direct interleaved, {work.rounds} rounds after a warm-up")

    def over_http() -> tuple[float, float, bytes, dict]:
        started, cpu = time.perf_counter(), time.process_time()
        post = urllib.request.Request(server.url + "/v1/images/generations", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(post, timeout=600) as response:
            answer = json.loads(response.read())
        png = base64.b64decode(answer["data"][0]["b64_json"])
        return time.perf_counter() - started, time.process_time() - cpu, png, server.job_timings(answer["id"])

    def direct() -> tuple[float, float, bytes, dict]:
        from ..pngmeta import encode_png

        step_times: list[float] = []

        def on_step(step: int, total: int, make_preview) -> bool:
            step_times.append(time.perf_counter())  # only a timestamp: no previews, no work
            return False

        started, cpu = time.perf_counter(), time.process_time()
        picture = image.generate(request, on_step)[0]
        generated = time.perf_counter()
        png = encode_png(picture, _png_metadata(request, image.model_id))
        done = time.perf_counter()
        return done - started, time.process_time() - cpu, png, {"generate_s": generated - started, "encode_s": done - generated, "step_times": step_times}

    first_http_s, _, first_png, _ = over_http()
    first_direct_s, _, direct_png, _ = direct()
    http_s, direct_s, paired, step_intervals, added = [], [], [], [], []
    http_cpu, direct_cpu = [], []
    server_parts: dict[str, list[float]] = {}
    direct_parts: dict[str, list[float]] = {}
    for _ in progress(range(work.rounds), "generation rounds"):
        a, a_cpu, _, timings = over_http()
        b, b_cpu, _, parts = direct()
        http_s.append(a)
        direct_s.append(b)
        http_cpu.append(a_cpu)
        direct_cpu.append(b_cpu)
        paired.append(a / b)
        if "generate_s" in timings:
            added.append(a - timings["generate_s"])
        for key in ("queued_s", "generate_s", "save_s"):
            if key in timings:
                server_parts.setdefault(key, []).append(timings[key])
        for key in ("generate_s", "encode_s"):
            direct_parts.setdefault(key, []).append(parts[key])
        times = parts["step_times"]
        # The first hook fires after text encoding and the first step together: skip it.
        step_intervals.extend(later - earlier for earlier, later in zip(times, times[1:]))
    http_median, direct_median = statistics.median(http_s), statistics.median(direct_s)
    step_s = statistics.median(step_intervals) if step_intervals else None
    return {
        "size": f"{size}x{size}",
        "steps": steps,
        "n": 1,
        "seed": SEED,
        "response_format": "b64_json",
        "rounds": work.rounds,
        "overhead_ratio": round(http_median / direct_median, 4),
        # The median of each round's own ratio: the pairs are adjacent in time.
        "overhead_ratio_paired": round(statistics.median(paired), 4),
        # CPU seconds of this whole process (server, worker and client threads): what each
        # path costs, much less moved than wall time by other programs on a shared machine.
        "overhead_ratio_cpu": round(statistics.median(http_cpu) / statistics.median(direct_cpu), 4),
        # Everything around the model call in the HTTP path (queue, PNG encode and save,
        # HTTP, JSON, base64), from the worker's own clock: free of generation-time noise.
        "daemon_added_s": round(statistics.median(added), 4) if added else None,
        "http_median_s": round(http_median, 4),
        "direct_median_s": round(direct_median, 4),
        "http_s": rounded(http_s),
        "direct_s": rounded(direct_s),
        "http_cpu_s": rounded(http_cpu),
        "direct_cpu_s": rounded(direct_cpu),
        "first_request_s": round(first_http_s, 4),
        "first_direct_s": round(first_direct_s, 4),
        "server_median_s": {key: round(statistics.median(values), 4) for key, values in server_parts.items()},
        "direct_parts_median_s": {key: round(statistics.median(values), 4) for key, values in direct_parts.items()},
        "step_s": round(step_s, 5) if step_s else None,
        "steps_per_s": round(1.0 / step_s, 3) if step_s else None,
        "http_matches_direct": same_pixels(first_png, direct_png),
        "png_bytes": len(direct_png),
    }


def _png_metadata(request, model_id: str) -> dict[str, Any]:
    # The same facts the daemon writes, so both PNGs cost the same to encode.
    return {
        "prompt": request.prompt,
        "negative_prompt": request.negative_prompt,
        "seed": request.seed,
        "steps": request.steps,
        "width": request.width,
        "height": request.height,
        "scheduler": request.scheduler,
        "guidance_scale": request.guidance_scale,
        "model": model_id,
        "transcript": None,
        "job_id": uuid.uuid4().hex,
    }


def same_pixels(png_a: bytes, png_b: bytes) -> bool:
    from PIL import Image

    with Image.open(io.BytesIO(png_a)) as a, Image.open(io.BytesIO(png_b)) as b:
        return a.size == b.size and a.convert("RGB").tobytes() == b.convert("RGB").tobytes()
