"""Device, dtype and optimisation choices: pure decisions, checked without a GPU."""

from __future__ import annotations

import pytest

from voicebrush_daemon.imaging.device import RuntimePlan, plan_runtime, resolve_device, stock_plan


def test_auto_prefers_cuda_then_mps_then_cpu():
    assert resolve_device("auto", cuda_available=True, mps_available=True) == "cuda"
    assert resolve_device("auto", cuda_available=False, mps_available=True) == "mps"
    assert resolve_device("auto", cuda_available=False, mps_available=False) == "cpu"


def test_asking_for_an_absent_gpu_is_an_error_not_a_silent_cpu_run():
    with pytest.raises(ValueError, match="cuda"):
        resolve_device("cuda", cuda_available=False, mps_available=False)
    with pytest.raises(ValueError, match="mps"):
        resolve_device("mps", cuda_available=True, mps_available=False)
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("tpu", cuda_available=True, mps_available=True)
    assert resolve_device("cpu", cuda_available=True, mps_available=True) == "cpu"


def test_cuda_runs_half_precision_with_every_safe_speedup():
    plan = plan_runtime("cuda")
    assert plan.dtype == "float16"
    assert plan.sdpa and plan.channels_last and plan.fuse_qkv and plan.cudnn_benchmark
    assert not plan.compile_unet  # minutes of warm-up: only when asked
    assert not (plan.model_cpu_offload or plan.vae_tiling or plan.attention_slicing)


def test_cuda_bf16_on_request_and_refused_where_unsupported():
    assert plan_runtime("cuda", dtype="bfloat16").dtype == "bfloat16"
    with pytest.raises(ValueError, match="bf16"):
        plan_runtime("cuda", dtype="bfloat16", bf16_supported=False)
    with pytest.raises(ValueError, match="unknown dtype"):
        plan_runtime("cuda", dtype="float8")


def test_compile_only_on_cuda_and_only_when_asked():
    assert plan_runtime("cuda", compile=True).compile_unet
    assert not plan_runtime("cpu", compile=True).compile_unet
    assert not plan_runtime("mps", compile=True).compile_unet


def test_cpu_stays_in_float32_without_gpu_layouts():
    plan = plan_runtime("cpu")
    assert plan.dtype == "float32"
    assert plan.sdpa and plan.fuse_qkv
    assert not (plan.channels_last or plan.cudnn_benchmark or plan.model_cpu_offload)
    # Low-VRAM means nothing without VRAM.
    assert plan_runtime("cpu", low_vram=True) == plan


def test_mps_uses_half_precision_and_attention_slicing():
    plan = plan_runtime("mps")
    assert plan.dtype == "float16"
    assert plan.attention_slicing
    assert not plan.channels_last


def test_low_vram_offloads_models_and_tiles_the_vae():
    plan = plan_runtime("cuda", low_vram=True, compile=True)
    assert plan.model_cpu_offload and plan.vae_tiling and plan.vae_slicing
    assert plan.dtype == "float16" and plan.sdpa
    # SDPA already avoids the full attention matrix; slicing would only slow it down.
    assert not plan.attention_slicing
    # A second copy of the projection weights, and compiled graphs vs offload hooks.
    assert not plan.fuse_qkv and not plan.compile_unet


def test_stock_plan_is_plain_diffusers():
    plan = stock_plan("cuda")
    assert plan == RuntimePlan(device="cuda", dtype="float16", sdpa=True)
    assert plan.describe() == "cuda float16 sdpa"
    assert "channels_last" in plan_runtime("cuda").describe()


def test_unresolved_device_is_refused():
    with pytest.raises(ValueError):
        plan_runtime("auto")
