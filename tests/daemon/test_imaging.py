"""The diffusers image engine on the tiny SD2-shaped pipeline, loaded through the
real `from_pretrained` code with the network cut."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from voicebrush_daemon.errors import EngineOutOfMemory, GenerationCancelled
from voicebrush_daemon.imaging import (
    GenerationRequest,
    RuntimePlan,
    describe_image_models,
    load_image_generator,
    runtime_plan_for,
)
from voicebrush_daemon.imaging import tiny
from voicebrush_daemon.imaging.diffusers_engine import latent_preview
from voicebrush_daemon.imaging.schedulers import SCHEDULERS
from voicebrush_daemon.models import ModelUnavailable
from voicebrush_daemon.settings import Settings


@pytest.fixture(scope="module")
def no_network():
    """Any attempt to reach a host fails at once, as on an offline machine."""
    original = socket.socket.connect

    def refuse(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            raise OSError("network disabled in this test")
        return original(sock, address)

    socket.socket.connect = refuse
    yield
    socket.socket.connect = original


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(preset="tiny", device="cpu", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def generator(settings, no_network):
    gen = load_image_generator(settings)
    yield gen
    gen.close()


def request(**changes) -> GenerationRequest:
    options = dict(
        prompt="a red fox in the snow",
        negative_prompt="",
        width=64,
        height=64,
        n=1,
        steps=3,
        seed=1234,
        guidance_scale=7.5,
        scheduler="dpmpp_2m",
    )
    options.update(changes)
    return GenerationRequest(**options)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


# --- the tiny model: built once, deterministic, the real loading path ---


def test_tiny_model_has_sd2s_shape_and_the_real_clip_tokenizer(generator, settings):
    pipe = generator.pipeline
    assert generator.model_id == "tiny-sd2"
    assert generator.native_size == (256, 256)
    assert pipe.vae_scale_factor == 8
    assert pipe.unet.config.use_linear_projection
    assert pipe.scheduler.config.prediction_type == "v_prediction"
    tokens = pipe.tokenizer("a photo of a cat").input_ids
    assert tokens == [49406, 320, 1125, 539, 320, 2368, 49407]  # CLIP's own ids
    assert len(pipe.tokenizer) == 49408 and pipe.tokenizer.model_max_length == 77
    folder = settings.models_dir / "tiny-sd2"
    weights = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin"))
    assert weights == [
        "text_encoder/model.safetensors",
        "unet/diffusion_pytorch_model.safetensors",
        "vae/diffusion_pytorch_model.safetensors",
    ]


def test_tiny_build_is_deterministic_and_happens_once(tmp_path, generator, settings):
    folder = settings.models_dir / "tiny-sd2"
    unet_file = folder / "unet/diffusion_pytorch_model.safetensors"
    before = unet_file.stat().st_mtime_ns
    assert tiny.ensure_tiny_pipeline(settings.models_dir) == folder
    assert unet_file.stat().st_mtime_ns == before  # not rebuilt

    other = tiny.ensure_tiny_pipeline(tmp_path / "elsewhere")
    for name in ("unet/diffusion_pytorch_model.safetensors", "text_encoder/model.safetensors"):
        assert _sha256(other / name) == _sha256(folder / name)


def test_failed_tiny_build_leaves_nothing_that_would_load(tmp_path, monkeypatch):
    def broken():
        raise RuntimeError("disk full")

    monkeypatch.setattr(tiny, "build_tiny_pipeline", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        tiny.ensure_tiny_pipeline(tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- generation ---


def test_same_seed_same_pixels(generator):
    first = generator.generate(request())
    second = generator.generate(request())
    assert np.array_equal(pixels(first[0]), pixels(second[0]))
    other_seed = generator.generate(request(seed=1235))
    assert not np.array_equal(pixels(first[0]), pixels(other_seed[0]))


def test_n_images_differ_and_image_i_is_seed_plus_i_alone(generator):
    batch = generator.generate(request(n=3, seed=500))
    assert len(batch) == 3 and all(im.mode == "RGB" for im in batch)
    assert not np.array_equal(pixels(batch[0]), pixels(batch[1]))
    assert not np.array_equal(pixels(batch[1]), pixels(batch[2]))
    alone = generator.generate(request(n=1, seed=502))[0]
    # Batched kernels may round differently, nothing more.
    assert np.abs(pixels(batch[2]) - pixels(alone)).max() <= 2


@pytest.mark.parametrize("width,height", [(128, 64), (64, 192)])
def test_non_square_sizes(generator, width, height):
    (image,) = generator.generate(request(width=width, height=height, steps=2))
    assert image.size == (width, height)


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_listed_scheduler_runs_and_keeps_v_prediction(generator, name):
    assert name in generator.schedulers
    scheduler = generator.make_scheduler(name)
    assert type(scheduler).__name__ == SCHEDULERS[name].diffusers_class
    assert scheduler.config.prediction_type == "v_prediction"
    if name.endswith("_karras"):
        assert scheduler.config.use_karras_sigmas
    (image,) = generator.generate(request(scheduler=name, steps=3))
    assert image.size == (64, 64)
    # Reproducible with every scheduler, ancestral (noise-adding) ones included.
    (again,) = generator.generate(request(scheduler=name, steps=3))
    assert np.array_equal(pixels(image), pixels(again))


def test_default_scheduler_is_dpm_solver_plus_plus(generator):
    assert generator.default_scheduler == "dpmpp_2m"
    scheduler = generator.make_scheduler("dpmpp_2m")
    assert type(scheduler).__name__ == "DPMSolverMultistepScheduler"
    assert scheduler.config.algorithm_type == "dpmsolver++"
    with pytest.raises(ValueError, match="unknown scheduler"):
        generator.make_scheduler("warp_drive")


def test_progress_sees_every_step_with_small_rgb_previews(generator):
    seen = []

    def on_step(step, steps, make_preview):
        preview = make_preview()
        seen.append((step, steps, preview.mode, preview.size))
        return False

    generator.generate(request(steps=4, width=128, height=64), on_step)
    assert [(s, n) for s, n, _, _ in seen] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert all(mode == "RGB" and max(size) <= 128 and size[0] == 2 * size[1] for _, _, mode, size in seen)


def test_preview_of_large_latents_is_scaled_down():
    preview = latent_preview(torch.randn(1, 4, 256, 128))
    assert preview.size == (64, 128)


def test_cancel_stops_within_one_step_and_the_next_call_works(generator):
    steps_run = []

    def cancel_at_two(step, steps, make_preview):
        steps_run.append(step)
        return step == 2

    with pytest.raises(GenerationCancelled):
        generator.generate(request(steps=8), cancel_at_two)
    assert steps_run == [1, 2]
    expected = generator.generate(request())
    assert np.array_equal(pixels(generator.generate(request())[0]), pixels(expected[0]))


def test_out_of_memory_frees_and_the_next_call_works(generator, monkeypatch):
    unet = generator.pipeline.unet
    calls = []

    def exhausted(*args, **kwargs):
        calls.append(1)
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    reference = generator.generate(request())[0]
    monkeypatch.setattr(unet, "forward", exhausted)
    released = []
    real_release = generator.release_memory
    monkeypatch.setattr(generator, "release_memory", lambda: (released.append(1), real_release()))
    with pytest.raises(EngineOutOfMemory, match="out of memory"):
        generator.generate(request())
    assert calls and released
    monkeypatch.undo()
    assert np.array_equal(pixels(generator.generate(request())[0]), pixels(reference))


def test_other_errors_are_not_mistaken_for_out_of_memory(generator, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(generator.pipeline.unet, "forward", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        generator.generate(request())


def test_long_prompt_is_truncated_not_refused(generator):
    long = generator.generate(request(prompt="fox " * 200, negative_prompt="snow " * 200))[0]
    # CLIP reads 75 tokens between its start and end tokens; the rest is dropped.
    cut = generator.generate(request(prompt="fox " * 75, negative_prompt="snow " * 75))[0]
    assert np.array_equal(pixels(long), pixels(cut))


def test_no_guidance_runs_unconditioned_batch(generator):
    (image,) = generator.generate(request(guidance_scale=0.0))
    assert image.size == (64, 64)


# --- the GPU switches, exercised on CPU ---


def test_fused_qkv_gives_the_same_picture_as_separate_projections(generator, settings):
    assert generator.plan.fuse_qkv  # CPU default
    assert hasattr(generator.pipeline.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1, "to_qkv")
    plain = load_image_generator(settings, plan=RuntimePlan(device="cpu", dtype="float32", sdpa=True))
    try:
        assert not hasattr(plain.pipeline.unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1, "to_qkv")
        fused = generator.generate(request(n=2))
        separate = plain.generate(request(n=2))
        for a, b in zip(fused, separate):
            assert np.abs(pixels(a) - pixels(b)).max() <= 2
    finally:
        plain.close()


def test_gpu_layout_and_memory_savers_run_on_cpu(generator, settings):
    plan = RuntimePlan(
        device="cpu",
        dtype="float32",
        sdpa=False,  # the classic attention processor
        channels_last=True,
        attention_slicing=True,
        vae_tiling=True,
        vae_tile_size=64,
        vae_slicing=True,
    )
    saver = load_image_generator(settings, plan=plan)
    try:
        vae = saver.pipeline.vae
        assert vae.use_tiling and vae.use_slicing and vae.tile_sample_min_size == 64 and vae.tile_latent_min_size == 8
        assert saver.pipeline.unet.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
        tiles = []
        real_decode = vae.tiled_decode
        vae.tiled_decode = lambda *a, **k: (tiles.append(1), real_decode(*a, **k))[1]
        images = saver.generate(request(n=2, width=128, height=96, steps=2))
        assert [im.size for im in images] == [(128, 96)] * 2
        assert len(tiles) == 2  # one tiled decode per image: sliced and tiled
        vae.disable_tiling()  # tile seams aside, the picture must match the default plan's
        reference = generator.generate(request(width=64, height=64))[0]
        small = saver.generate(request(width=64, height=64))[0]
        assert np.abs(pixels(small) - pixels(reference)).mean() < 1.0
    finally:
        saver.close()


def test_torch_compile_warms_up_at_load(settings):
    # Dynamo's tracing without code generation: the same path as CUDA's, minus inductor.
    plan = dataclasses.replace(runtime_plan_for(settings), compile_unet=True, compile_backend="eager")
    compiled = load_image_generator(settings, plan=plan)
    try:
        assert compiled.warmup_seconds is not None and compiled.warmup_seconds > 0
        (image,) = compiled.generate(request(width=256, height=256, steps=2))
        assert image.size == (256, 256)
    finally:
        compiled.close()


def test_peak_memory_is_reported_only_where_torch_counts_it(generator):
    assert generator.device == "cpu"
    assert generator.peak_memory_bytes() is None


# --- where weights come from, and clear failures ---


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


@pytest.mark.parametrize("preset,repo", [("sd2", "stabilityai/stable-diffusion-2-1"), ("sd2-base", "stabilityai/stable-diffusion-2-1-base")])
def test_missing_weights_fail_fast_with_one_clear_line(empty_hf_cache, no_network, tmp_path, preset, repo):
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        load_image_generator(Settings(preset=preset, device="cpu", data_dir=tmp_path))
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "\n" not in message
    assert repo in message and "voicebrush models" in message


def test_describe_lists_presets_with_status_and_fetch_command(empty_hf_cache, generator, settings):
    entries = {e["name"]: e for e in describe_image_models(settings)}
    assert entries["sd2"]["status"] == "missing"
    assert entries["sd2"]["model"] == "stabilityai/stable-diffusion-2-1"
    assert entries["sd2"]["fetch"] == "voicebrush models --fetch sd2"
    assert entries["sd2"]["fetch_with_hf"].startswith("hf download stabilityai/stable-diffusion-2-1 --include ")
    assert entries["tiny"]["status"] == "built" and entries["tiny"]["active"]


def test_a_local_diffusers_folder_loads_by_path(generator, settings, tmp_path):
    folder = settings.models_dir / "tiny-sd2"
    by_path = load_image_generator(Settings(preset=str(folder), device="cpu", data_dir=tmp_path))
    try:
        assert by_path.model_id == "tiny-sd2" and by_path.native_size == (256, 256)
        ours = by_path.generate(request())[0]
        assert np.array_equal(pixels(ours), pixels(generator.generate(request())[0]))
    finally:
        by_path.close()


@pytest.mark.parametrize("suffix", [".ckpt", ".pt", ".bin"])
def test_pickle_checkpoints_are_refused_even_when_present(tmp_path, suffix):
    checkpoint = tmp_path / f"model{suffix}"
    checkpoint.write_bytes(b"not even a pickle")
    with pytest.raises(ModelUnavailable, match="safetensors"):
        load_image_generator(Settings(preset=str(checkpoint), device="cpu", data_dir=tmp_path))


def test_a_missing_path_names_itself(tmp_path):
    with pytest.raises(ModelUnavailable, match="nowhere.safetensors"):
        load_image_generator(Settings(preset=str(tmp_path / "nowhere.safetensors"), device="cpu", data_dir=tmp_path))


def test_a_single_file_checkpoint_loads_through_diffusers_converters(no_network, generator, settings, tmp_path):
    """One original-layout .safetensors (as UIs share them), described by --model-config:
    diffusers' single-file converters must rebuild exactly the model it came from."""
    from ldm_checkpoint import UNET, write_ldm_checkpoint

    checkpoint = write_ldm_checkpoint(generator.pipeline, tmp_path / "my-finetune.safetensors")
    with safe_open(str(checkpoint), framework="pt") as f:
        names = set(f.keys())
    assert UNET + "input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight" in names
    assert not any(name.startswith("unet.") for name in names)  # not the diffusers layout

    folder = settings.models_dir / "tiny-sd2"
    loaded = load_image_generator(Settings(preset=str(checkpoint), model_config=folder, device="cpu", data_dir=tmp_path))
    try:
        assert loaded.model_id == "my-finetune" and loaded.source.kind == "single_file"
        for part in ("unet", "vae", "text_encoder"):
            theirs, ours = getattr(loaded.pipeline, part).state_dict(), getattr(generator.pipeline, part).state_dict()
            assert theirs.keys() == ours.keys(), part
            assert all(torch.equal(theirs[k], ours[k]) for k in ours), part
        assert np.array_equal(pixels(loaded.generate(request())[0]), pixels(generator.generate(request())[0]))
    finally:
        loaded.close()


def test_sd2_checkpoints_get_sd2s_configs_written_locally(empty_hf_cache, no_network, tmp_path):
    """An SD 2.x checkpoint needs no Hub access: the daemon writes 2.1's configs itself,
    and they describe the real architecture (the published parameter counts)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from voicebrush_daemon.imaging.sources import single_file_configs

    checkpoint = tmp_path / "v2-1_768-ema-pruned.safetensors"
    save_file({"model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(4, 1024)}, str(checkpoint))
    started = time.monotonic()
    folder = Path(single_file_configs(str(checkpoint), tmp_path / "models", None, allow_download=False))
    assert time.monotonic() - started < 10
    assert folder == tmp_path / "models" / "sd2-768-v-configs"
    assert not any(p.suffix in (".safetensors", ".bin") for p in folder.rglob("*"))  # configs only

    unet_config = UNet2DConditionModel.load_config(folder / "unet")
    assert unet_config["cross_attention_dim"] == 1024 and unet_config["use_linear_projection"]
    assert json.loads((folder / "scheduler/scheduler_config.json").read_text())["prediction_type"] == "v_prediction"
    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(unet_config)
        text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(folder / "text_encoder"))
    assert sum(p.numel() for p in unet.parameters()) == 865_910_724
    assert sum(p.numel() for p in text_encoder.parameters()) == 340_387_840
    tokenizer = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    assert len(tokenizer) == 49408 and tokenizer.pad_token == "!" and tokenizer.pad_token_id == 0
    # Written once; a second checkpoint reuses the folder.
    stamp = (folder / "unet/config.json").stat().st_mtime_ns
    assert single_file_configs(str(checkpoint), tmp_path / "models", None, allow_download=False) == str(folder)
    assert (folder / "unet/config.json").stat().st_mtime_ns == stamp


def test_sd2_configs_already_in_the_hf_cache_are_used_as_they_are(empty_hf_cache, no_network, tmp_path):
    from voicebrush_daemon.imaging.sources import _CONFIG_FILES, single_file_configs

    snapshot = empty_hf_cache / "models--stabilityai--stable-diffusion-2-1" / "snapshots" / "0123abcd"
    for name in _CONFIG_FILES:
        (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
        (snapshot / name).write_text("{}")
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text("0123abcd")
    checkpoint = tmp_path / "sd21.safetensors"
    save_file({"model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(4, 1024)}, str(checkpoint))
    assert single_file_configs(str(checkpoint), tmp_path / "models", None, allow_download=False) == str(snapshot)
    assert not (tmp_path / "models").exists()  # nothing written when the cache has them


def test_model_config_reaches_the_settings_from_the_command_line(tmp_path):
    from voicebrush_daemon.cli import build_parser, settings_from_args

    args = build_parser().parse_args(["serve", "--preset", str(tmp_path / "m.safetensors"), "--model-config", str(tmp_path / "cfg")])
    assert settings_from_args(args).model_config == (tmp_path / "cfg").resolve()
    assert settings_from_args(build_parser().parse_args(["serve"])).model_config is None


def test_without_the_clip_vocabulary_sd2_configs_fail_in_one_line(empty_hf_cache, tmp_path, monkeypatch):
    import importlib.util

    from voicebrush_daemon.imaging.sources import single_file_configs

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "open_clip" else real_find_spec(name, *args))
    tiny.clip_vocab_and_merges.cache_clear()
    checkpoint = tmp_path / "sd21.safetensors"
    save_file({"model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight": torch.zeros(4, 1024)}, str(checkpoint))
    try:
        with pytest.raises(ModelUnavailable, match="pip install --no-deps open_clip_torch"):
            single_file_configs(str(checkpoint), tmp_path / "models", None, allow_download=False)
    finally:
        tiny.clip_vocab_and_merges.cache_clear()
    assert list((tmp_path / "models").iterdir()) == []  # no half-written folder


def test_a_model_config_that_is_not_a_diffusers_folder_is_named(tmp_path):
    checkpoint = tmp_path / "model.safetensors"
    save_file({"x": torch.zeros(1)}, str(checkpoint))
    with pytest.raises(ModelUnavailable, match="--model-config .*not-a-model.*model_index.json"):
        load_image_generator(Settings(preset=str(checkpoint), model_config=tmp_path / "not-a-model", device="cpu", data_dir=tmp_path))


def test_a_checkpoint_of_an_uncached_family_fails_offline_in_one_line(empty_hf_cache, no_network, generator, settings, tmp_path):
    # An SD 1.x-keyed checkpoint (a bare UNet here) with its family's configs not in the
    # cache, offline: one line saying what to fetch, quickly, and no Hub call attempted.
    unet_file = settings.models_dir / "tiny-sd2/unet/diffusion_pytorch_model.safetensors"
    checkpoint = tmp_path / "my-model.safetensors"
    checkpoint.write_bytes(unet_file.read_bytes())
    started = time.monotonic()
    with pytest.raises(ModelUnavailable) as caught:
        load_image_generator(Settings(preset=str(checkpoint), device="cpu", data_dir=tmp_path))
    assert time.monotonic() - started < 10
    message = str(caught.value)
    assert "my-model.safetensors" in message and "\n" not in message
    # What to fetch: the configs of the family its tensor names point to (SD 1.x here).
    assert 'hf download stable-diffusion-v1-5/stable-diffusion-v1-5 --include "*.json" "*.txt"' in message
    assert "--model-config" in message


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_single_file_family_is_read_from_tensor_names_without_loading(tmp_path):
    from voicebrush_daemon.imaging.sources import single_file_config_repo

    key = "model.diffusion_model.input_blocks.2.1.transformer_blocks.0.attn2.to_k.weight"
    sd2 = tmp_path / "sd2.safetensors"
    save_file({key: torch.zeros(4, 1024)}, str(sd2))
    sd1 = tmp_path / "sd1.safetensors"
    save_file({key: torch.zeros(4, 768)}, str(sd1))
    assert single_file_config_repo(str(sd2)) == "stabilityai/stable-diffusion-2-1"
    assert single_file_config_repo(str(sd1)) == "stable-diffusion-v1-5/stable-diffusion-v1-5"
