"""What the benchmark prints: its progress lines and bars, and the table of figures."""

from __future__ import annotations

import sys
from typing import Any


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rounded(values) -> list[float]:
    return [round(v, 4) for v in values]


def progress(iterable, description: str):
    from tqdm import tqdm

    # disable=None: a bar on a terminal, nothing in logs and pipes.
    return tqdm(iterable, desc=description, leave=False, disable=None, file=sys.stderr)


def format_table(report: dict[str, Any]) -> str:
    """The figures as a plain table, with the issue's goals beside them."""
    gen, e2e, asr = report["generation"], report["e2e"], report["asr"]
    machine = report["machine"]
    rows: list[tuple[str, str, str]] = [
        ("overhead ratio (HTTP / direct)", f"{report['overhead_ratio']:.3f}x", "goal <= 1.05, bar 1.10"),
        ("  paired per-round ratio", f"{gen['overhead_ratio_paired']:.3f}x", f"{gen['rounds']} interleaved rounds"),
        ("  in CPU seconds", f"{gen['overhead_ratio_cpu']:.3f}x", "process CPU time, robust to other load"),
        ("  added around the model call", _fmt(gen["daemon_added_s"], ".3f", " s"), "HTTP time minus the worker's generate time"),
        ("  through HTTP (median)", f"{gen['http_median_s']:.3f} s", f"{gen['size']}, {gen['steps']} steps, n=1, b64_json"),
        ("  direct call (median)", f"{gen['direct_median_s']:.3f} s", "engine.generate + encode_png"),
        ("  first request after start", f"{report['first_request_s']:.3f} s", "warm-up, not in the medians"),
        ("  HTTP image == direct image", "yes" if gen["http_matches_direct"] else "NO", "same seed"),
        ("denoising steps per second", _fmt(report["gen_steps_per_s"], ".2f"), f"{gen['size']}, guided"),
        ("speech real-time factor", _fmt(report["asr_rtf"], ".3f"), f"{asr['engine']} {asr['model']}; goal <= 0.10, bar 0.15"),
    ]
    for engine, result in asr["by_engine"].items():
        if "error" in result:
            rows.append((f"  {engine}", "-", result["error"][:60]))
        else:
            wer = "" if result["wer"] is None else f"WER {result['wer']:.1%}, "
            rows.append((f"  {engine}", f"{result['rtf']:.3f}", f"{wer}{result['cpu_rtf']:.3f} CPU-s per s, {len(result['clips'])} clips, {result['audio_s']:.1f} s of speech"))
    rows.append(("  verdict", "", asr["verdict"]))
    window = asr.get("window")
    if window:
        rows.append((
            "  shorter encoder window",
            f"{window['speedup']:.2f}x",
            f"RTF {window['rtf_short_window']:.3f} vs {window['rtf_full_window']:.3f} with the 30 s window; "
            f"same words on {window['same_words_clips']}/{window['clips']} clips, {window['full_window_retries']} retried",
        ))
    parts = e2e["median_parts_s"]
    rows += [
        ("dictation end to end (median)", f"{report['e2e_dictation_s']:.3f} s", f"upload done -> PNG fetched, {e2e['size']}, {e2e['steps']} steps"),
        ("  upload done -> transcript", f"{parts['transcript_s']:.3f} s", ""),
        ("  upload done -> done event", f"{parts['done_s']:.3f} s", ""),
        ("  done event -> PNG fetched", f"{parts['png_s']:.3f} s", ""),
    ]
    streaming = report.get("streaming")
    if streaming:
        from .streaming import format_rows

        rows += format_rows(streaming)
    modes = report.get("modes")
    if modes:
        rows += [
            ("img2img time, strength 0.5 / 1.0", f"{modes['img2img_time_ratio']:.3f}", f"CPU time {modes['img2img_time_ratio_cpu']:.3f}; about 0.5 + the VAE encode"),
            ("VAE encode", f"{modes['vae_encode_s']:.3f} s", f"a {modes['vae_encode_side']}x{modes['vae_encode_side']} picture"),
            ("inpaint / text to image", f"{modes['inpaint_overhead_ratio']:.3f}", f"CPU time {modes['inpaint_overhead_ratio_cpu']:.3f}; goal <= 1.1, {modes['size']}, {modes['steps']} steps"),
            ("memory, one UNet / three", f"{_fmt(modes['resident_one_unet_mb'], '.0f')} / {_fmt(modes['resident_three_unets_mb'], '.0f')} MB", modes.get("memory_note") or modes.get("memory_kind", "")),
        ]
    gpu = report.get("gpu")
    if gpu:
        rows += [
            ("GPU guided step, stock", f"{gpu['step_ms_stock']:.1f} ms", f"{gpu['size']}, {gpu['stock_plan']}"),
            ("GPU guided step, optimised", f"{gpu['step_ms_optimised']:.1f} ms", gpu["optimised_plan"]),
            ("  speed-up", f"{gpu['speedup']:.2f}x", "goal >= 1.5x"),
            ("  UNet throughput", f"{gpu['tflops']:.0f} TFLOP/s", _peak_note(gpu)),
            ("GPU dictation end to end", _fmt(gpu.get("e2e_s"), ".3f", " s"), f"{gpu.get('e2e_steps')} steps + VAE + {gpu.get('asr_model')}; goal <= 1.0 s"),
            ("GPU low-VRAM peak", _fmt(gpu.get("low_vram_peak_gb"), ".2f", " GB"), "goal <= 3.5 GB"),
        ]
        if gpu.get("compile_warmup_s") is not None:
            rows.append(("  torch.compile warm-up", f"{gpu['compile_warmup_s']:.1f} s", "excluded from the step times"))
    else:
        rows.append(("GPU section", "unmeasured", report.get("gpu_reason") or ""))
    width = max(len(name) for name, _, _ in rows)
    value_width = max(len(value) for _, value, _ in rows)
    header = (
        f"voicebrush bench {report['date']}: preset {report['preset']} on {report['device']} ({report['runtime_plan']}), "
        f"{machine['cpu']}, {machine['cpus_usable']} CPUs, load {machine['load_average_start']}"
    )
    lines = [header, ""] + [f"{name:<{width}}  {value:>{value_width}}  {note}".rstrip() for name, value, note in rows]
    return "\n".join(lines)


def _peak_note(gpu: dict[str, Any]) -> str:
    if gpu.get("peak_fraction") is None:
        return "card's peak unknown"
    return f"{gpu['peak_fraction']:.0%} of {gpu['peak_tflops']:.0f} TFLOP/s peak; goal >= 20%"


def _fmt(value, spec: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"
