"""The whole benchmark in one process that shares one set of loaded engines, measured
in order: generation overhead, dictation end to end, streamed dictation, the picture
modes, speech to text, and with CUDA the full-size GPU section. Writes the table, and
the JSON report when asked."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..models import ModelUnavailable
from ..settings import Settings
from .asr import measure_asr
from .clips import DICTATION_CLIP, read_clip
from .dictation import measure_dictation
from .loopback import LoopbackDaemon
from .machine import load_average, machine_info, versions
from .modes import measure_modes
from .overhead import measure_generation
from .streaming import measure_on as measure_streaming
from .report import format_table, say
from .workload import quick_from_env, workload_for


def run_bench(settings: Settings, *, rounds: int, json_path: Path | None = None) -> int:
    work = workload_for(rounds, quick_from_env())
    report: dict[str, Any] = {
        "schema": 1,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "preset": settings.preset,
        "config": {
            "rounds": work.rounds,
            "quick": work.quick,
            "asr_repeats": work.asr_repeats,
            "low_vram": settings.low_vram,
            "compile": settings.compile,
        },
        "machine": machine_info(),
        "versions": versions(),
    }
    say(f"voicebrush bench: preset {settings.preset}, {work.rounds} rounds{' (quick)' if work.quick else ''}")
    try:
        engines, load_s = load_engines(settings)
    except ModelUnavailable as exc:
        print(f"voicebrush: {exc}", file=sys.stderr)
        return 2
    plan = getattr(engines.image, "plan", None)
    report.update(
        device=engines.image.device,
        runtime_plan=plan.describe() if plan is not None else None,
        models={"image": engines.image.model_id, "speech": f"{engines.speech.model_id} ({engines.speech.engine})"},
        load_s=round(load_s, 3),
    )
    rc = 0
    try:
        with tempfile.TemporaryDirectory(prefix="voicebrush-bench-") as scratch:
            # The bench's jobs go to a throwaway history, not the user's.
            with LoopbackDaemon(replace(settings, data_dir=Path(scratch) / "data"), engines) as server:
                generation = measure_generation(server, engines.image, work)
                dictation = measure_dictation(server, read_clip(DICTATION_CLIP), engines.image.native_size, work)
                say("streamed dictation: the shipped clips at real-time pace, streaming and upload interleaved")
                streaming = measure_streaming(server.url, quick=work.quick, rounds=max(1, work.rounds // 2))
        say("picture modes: img2img, inpaint and text interleaved on the loaded model")
        modes = _measure_modes(engines.image, work)
        asr = measure_asr(settings, engines.speech, work)
    finally:
        engines.image.close()
        engines.speech.close()
    report.update(
        overhead_ratio=generation["overhead_ratio"],
        first_request_s=generation["first_request_s"],
        gen_steps_per_s=generation["steps_per_s"],
        generation=generation,
        asr_rtf=asr["rtf"],
        asr_rtf_by_engine=asr["rtf_by_engine"],
        asr_wer_by_engine=asr["wer_by_engine"],
        asr_faster_engine=asr["faster_engine"],
        asr_verdict=asr["verdict"],
        asr_window_speedup=(asr["window"] or {}).get("speedup"),
        asr=asr,
        e2e_dictation_s=dictation["median_s"],
        e2e=dictation,
        **{key: streaming[key] for key in STREAMING_KEYS},
        streaming=streaming,
        **{key: (modes or {}).get(key) for key in MODE_KEYS},
        modes=modes,
    )
    gpu_reason = gpu_skip_reason(settings.device)
    report["gpu"], report["gpu_reason"] = None, gpu_reason
    if gpu_reason is None:
        from .gpu import run_gpu_section

        try:
            report["gpu"] = run_gpu_section(settings, rounds=work.rounds, quick=work.quick, plot_path=_plot_path(json_path))
        except Exception as exc:  # the CPU figures still get written
            report["gpu_reason"] = f"failed: {type(exc).__name__}: {exc}"
            print(f"voicebrush: the GPU section failed: {exc}", file=sys.stderr)
            rc = 1
    report["machine"]["load_average_end"] = load_average()
    print(format_table(report))
    if json_path is not None:
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(report, indent=2) + "\n")
        say(f"wrote {json_path}")
    return rc


# The figures each section puts at the report's top level (the rest stays in its detail).
STREAMING_KEYS = (
    "release_to_transcript_s", "release_to_transcript_upload_s", "e2e_dictation_streaming_s", "e2e_dictation_upload_s",
    "partial_cpu_per_audio_s", "partial_cadence_s", "partial_lag_s", "streaming_final_match_rate",
)
MODE_KEYS = ("img2img_time_ratio", "vae_encode_s", "inpaint_overhead_ratio", "resident_one_unet_mb", "resident_three_unets_mb")


def _measure_modes(image, work) -> dict[str, Any] | None:
    """The picture-mode figures at the bench's generation size (tiny in quick mode), or
    None for an engine that has no picture modes (a stand-in)."""
    if not hasattr(image, "pipeline_for"):
        return None
    if work.quick:
        return measure_modes(image, side=64, steps=4, rounds=1, encode_side=128)
    return measure_modes(image, side=work.generation_size, steps=20, rounds=max(1, work.rounds // 2))


def load_engines(settings: Settings):
    from ..server.app import load_real_engines

    say("loading models ...")
    started = time.perf_counter()
    engines = load_real_engines(settings)
    return engines, time.perf_counter() - started


def gpu_skip_reason(device: str) -> str | None:
    """None when the full-size GPU section should run, else why not."""
    if device not in ("auto", "cuda"):
        return f"--device {device} was chosen"
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        return f"no CUDA device (torch {torch.__version__}, {build}); GPU figures unmeasured"
    return None


def _plot_path(json_path: Path | None) -> Path | None:
    return json_path.with_name(json_path.stem + "-gpu-steps.png") if json_path is not None else None
