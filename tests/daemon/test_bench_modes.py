"""The picture-mode bench figures, run on the tiny preset: every key, sane values, and the
step counts behind img2img_time_ratio. (No speed is asserted: that is what bench is for.)"""

from __future__ import annotations

import math

import pytest

from voicebrush_daemon.bench.modes import measure_modes
from voicebrush_daemon.imaging import load_image_generator


@pytest.fixture(scope="module")
def report(tiny_settings):
    generator = load_image_generator(tiny_settings)
    try:
        yield measure_modes(generator, side=64, steps=4, rounds=1, encode_side=128)
    finally:
        generator.close()


def test_the_bench_keys_exist_with_sane_values(report):
    for key in ("img2img_time_ratio", "vae_encode_s", "inpaint_overhead_ratio", "resident_one_unet_mb", "resident_three_unets_mb",
                "img2img_time_ratio_cpu", "inpaint_overhead_ratio_cpu"):
        value = report[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, key
    assert report["size"] == "64x64" and report["steps"] == 4
    assert isinstance(report["inpaint_goal_met"], bool)
    assert report["inpaint_model"] == "tiny-sd2-inpaint"
    assert set(report["seconds"]) == {"text", "inpaint", "img2img_0.5", "img2img_1.0"}


def test_strength_half_runs_half_the_steps(report):
    assert report["steps_run"] == {"text": 4, "inpaint": 4, "img2img_0.5": 2, "img2img_1.0": 4}


def test_memory_is_measured_with_one_unet_and_with_all_three(report):
    assert set(report["unet_weights_mb"]) == {"main", "inpaint", "depth"}
    assert report["loaded_unets"] == {"main": "tiny-sd2", "inpaint": "tiny-sd2-inpaint", "depth": "tiny-sd2-depth"}
    assert report["memory_kind"] == "process resident set" and report["memory_note"] is None
