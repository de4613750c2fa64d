"""`voicebrush bench`: the report's keys and values, and the GPU path's parts on the CPU.

No timing thresholds: the machine is shared and noisy. The benchmark runs for real
(real daemon on loopback, real tiny engines, both Whisper engines), shrunk by
VOICEBRUSH_BENCH_QUICK to tiny sizes; the keys are the ones a full run writes.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from PIL import Image

from voicebrush_daemon import bench, cli
from voicebrush_daemon.bench import gpu as bench_gpu

CONTRACT_KEYS = ("overhead_ratio", "asr_rtf", "e2e_dictation_s")
ISSUE_KEYS = ("asr_rtf_by_engine", "gen_steps_per_s", "first_request_s", "machine", "device", "versions", "date", "gpu")
# Pictures in (issue 11) and streamed dictation (issue 15), measured in the same run.
MODE_KEYS = ("img2img_time_ratio", "vae_encode_s", "inpaint_overhead_ratio", "resident_one_unet_mb", "resident_three_unets_mb")
STREAMING_KEYS = ("release_to_transcript_s", "release_to_transcript_upload_s", "e2e_dictation_streaming_s", "e2e_dictation_upload_s", "partial_cpu_per_audio_s")


def positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.fixture(scope="module")
def quick_report(tmp_path_factory):
    """One real `voicebrush bench --rounds 1 --json FILE` run, in quick mode."""
    folder = tmp_path_factory.mktemp("bench")
    out = folder / "out.json"
    patch = pytest.MonkeyPatch()
    patch.setenv(bench.QUICK_ENV, "1")
    try:
        rc = cli.main(["bench", "--rounds", "1", "--device", "cpu", "--data-dir", str(folder / "data"), "--json", str(out)])
    finally:
        patch.undo()
    assert rc == 0
    return json.loads(out.read_text())


def test_bench_json_has_every_contract_key_with_sane_values(quick_report):
    report = quick_report
    for key in CONTRACT_KEYS + ISSUE_KEYS:
        assert key in report, key
    assert positive(report["overhead_ratio"])
    assert positive(report["asr_rtf"])
    assert positive(report["e2e_dictation_s"])
    assert positive(report["gen_steps_per_s"])
    assert positive(report["first_request_s"])
    for key in MODE_KEYS + STREAMING_KEYS:
        assert positive(report[key]), (key, report.get(key))
    assert report["streaming_final_match_rate"] == 1.0
    assert report["modes"]["steps_run"]["img2img_0.5"] * 2 == report["modes"]["steps_run"]["img2img_1.0"]
    assert set(report["asr_rtf_by_engine"]) == {"faster-whisper", "openai-whisper"}
    assert all(positive(v) for v in report["asr_rtf_by_engine"].values())
    assert report["asr_rtf"] == report["asr_rtf_by_engine"]["faster-whisper"]  # the default engine
    # Known words for the clips, so accuracy is compared, not just speed.
    assert all(0 <= v <= 1 for v in report["asr_wer_by_engine"].values())
    assert report["asr_faster_engine"] in report["asr_rtf_by_engine"]
    assert report["asr_faster_engine"] in report["asr_verdict"]


def test_bench_compares_the_shorter_encoder_window_with_the_full_one(quick_report):
    window = quick_report["asr"]["window"]
    assert positive(window["rtf_short_window"]) and positive(window["rtf_full_window"])
    assert window["speedup"] == quick_report["asr_window_speedup"]
    assert window["speedup"] == pytest.approx(window["rtf_full_window"] / window["rtf_short_window"], rel=0.01)
    assert 0 <= window["wer_short_window"] <= 1 and 0 <= window["wer_full_window"] <= 1
    assert window["clips"] == 1 and window["same_words_clips"] in (0, 1) and window["full_window_retries"] >= 0


def test_bench_measures_what_the_contract_names(quick_report):
    generation = quick_report["generation"]
    assert generation["response_format"] == "b64_json" and generation["n"] == 1
    assert len(generation["http_s"]) == len(generation["direct_s"]) == generation["rounds"] == 1
    # Same seed, same engine object: the daemon's PNG is the direct call's picture.
    assert generation["http_matches_direct"] is True
    assert generation["overhead_ratio"] == pytest.approx(generation["http_median_s"] / generation["direct_median_s"], rel=1e-3)
    # The worker's own timings were collected, so the overhead can be taken apart.
    assert {"generate_s", "save_s"} <= set(generation["server_median_s"])
    e2e = quick_report["e2e"]
    run = e2e["runs"][0]
    assert run["accepted_s"] <= run["transcript_s"] <= run["done_s"] <= run["total_s"]
    assert "harbo" in e2e["transcript"].lower()  # demo_prompt.wav: "a misty harbour at dawn, wide shot"
    assert positive(run["server"]["transcribe_s"]) and positive(run["server"]["generate_s"])


def test_bench_records_machine_versions_and_why_there_are_no_gpu_figures(quick_report):
    report = quick_report
    assert report["device"] == "cpu"
    assert report["machine"]["cpu_count"] >= 1 and report["machine"]["platform"]
    for name in ("torch", "diffusers", "faster-whisper", "openai-whisper"):
        assert report["versions"][name]
    assert report["date"][:4].isdigit() and "T" in report["date"]
    assert report["gpu"] is None and "--device cpu" in report["gpu_reason"]
    assert report["config"]["quick"] is True


def test_bench_prints_a_readable_table(capsys, quick_report):
    table = bench.format_table(quick_report)
    for label in ("overhead ratio", "speech real-time factor", "faster-whisper", "openai-whisper", "shorter encoder window", "dictation end to end", "GPU section"):
        assert label in table
    rows = table.splitlines()
    assert all(len(row) < 200 for row in rows)


def test_gpu_skip_reason_names_the_cause():
    import torch

    assert "--device cpu" in bench.gpu_skip_reason("cpu")
    if torch.cuda.is_available():
        assert bench.gpu_skip_reason("auto") is None
    else:
        assert "no CUDA" in bench.gpu_skip_reason("auto")


def test_clip_texts_come_from_the_fixtures_readme():
    texts = bench.clip_texts()
    assert texts["demo_prompt.wav"] == texts["harbour.webm"] == "a misty harbour at dawn, wide shot"
    assert texts["alley.m4a"] == "rainy neon alley at night without people"
    assert len(texts) == 7
    clips = bench.speech_clips()
    assert len(clips) == 4 and len({words for _, words in clips}) == 4  # one per utterance


def test_word_errors_use_whispers_normaliser():
    assert bench.word_errors("a misty harbour at dawn", "A misty harbor at dawn.") == (0, 5)
    assert bench.word_errors("a red fox in the snow", "a red box in snow") == (2, 6)
    assert bench.word_errors("rainy neon alley", "") == (3, 3)


def test_engine_verdict_says_which_is_faster_and_at_what_accuracy():
    fast, verdict = bench.compare_engines({"faster-whisper": 0.1, "openai-whisper": 0.4}, {"faster-whisper": 0.1, "openai-whisper": 0.1})
    assert fast == "faster-whisper" and "4.0x faster" in verdict and "equal accuracy" in verdict
    fast, verdict = bench.compare_engines({"faster-whisper": 0.3, "openai-whisper": 0.2}, {"faster-whisper": 0.1, "openai-whisper": 0.3})
    assert fast == "openai-whisper" and "less accurate" in verdict
    assert bench.compare_engines({"faster-whisper": 0.1, "openai-whisper": None}, {})[0] == "faster-whisper"


# ---- the full-size GPU section's parts, checked on the CPU ------------------------------------------


def test_full_size_sd2_configs_build_the_published_architecture():
    # Parameter counts of stabilityai/stable-diffusion-2-1's components, built on meta.
    assert bench_gpu.parameter_counts(bench_gpu.SD2_768) == {"text_encoder": 340_387_840, "unet": 865_910_724, "vae": 83_653_863}
    assert bench_gpu.SD2_768.native_side == 768


def test_guided_step_flops_match_the_published_figure():
    flops = bench_gpu.guided_step_flops(bench_gpu.SD2_768, 768)
    assert 4.2e12 < flops < 4.4e12  # ~2.15 TFLOP per UNet forward, two per guided step
    assert bench_gpu.guided_step_flops(bench_gpu.SD2_768, 512) < flops / 2


def test_peak_tflops_knows_the_cards_the_goal_names():
    assert bench_gpu.peak_tflops("NVIDIA H100 80GB HBM3") == pytest.approx(989.4)
    assert bench_gpu.peak_tflops("NVIDIA H100 PCIe") == pytest.approx(756.0)
    assert bench_gpu.peak_tflops("NVIDIA L40S") == pytest.approx(362.1)
    assert bench_gpu.peak_tflops("Some Future GPU") is None


MINIATURE = bench_gpu.Architecture(
    "miniature-sd2",
    unet=dict(
        bench_gpu.SD2_UNET,
        sample_size=8,
        layers_per_block=1,
        block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=64,
        attention_head_dim=(2, 4),
    ),
    vae=dict(bench_gpu.SD2_VAE, block_out_channels=(16, 16, 32, 32), layers_per_block=1, norm_num_groups=16, sample_size=64),
    text_encoder=dict(bench_gpu.SD2_TEXT_ENCODER, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, projection_dim=64),
)


def test_gpu_section_runs_end_to_end_on_the_cpu_with_a_miniature(tiny_settings, tmp_path, quick_report):
    """The code that runs the moment CUDA exists, on the CPU: build, save, load through the
    daemon's plans, time stock against optimised, count FLOPs, dictate through HTTP, plot."""
    settings = replace(tiny_settings, data_dir=tmp_path / "data", device="cpu")
    plot = tmp_path / "steps.png"
    gpu = bench_gpu.run_gpu_section(settings, rounds=1, arch=MINIATURE, side=64, steps=2, low_vram_steps=1, device="cpu", plot_path=plot)
    for key in ("step_ms_stock", "step_ms_optimised", "speedup", "tflops", "e2e_s", "low_vram_generate_s", "generate_s_stock", "generate_s_optimised"):
        assert positive(gpu[key]), key
    assert gpu["low_vram_peak_gb"] is None  # only CUDA counts allocated memory
    assert gpu["stock_plan"] == "cpu float32 sdpa" and "fuse_qkv" in gpu["optimised_plan"]
    assert gpu["parameters"]["unet"] < 10_000_000
    if not gpu["asr_model"].startswith("small.en"):  # not cached: the bundled tiny.en stands in, and says why
        assert gpu["asr_model"].startswith("tiny.en") and "small.en" in gpu["asr_note"]
    with Image.open(plot) as image:
        assert image.format == "PNG" and image.width > 400
    table = bench.format_table({**quick_report, "gpu": gpu})
    for label in ("GPU guided step, stock", "speed-up", "GPU dictation end to end", "GPU low-VRAM peak"):
        assert label in table
