"""img2img, inpaint and depth through diffusers' own pipelines, on the tiny preset: the
main SD2-shaped model and its 9- and 5-channel UNet stand-ins, all loaded through
`from_pretrained` with the network cut."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors import safe_open

from voicebrush_daemon.errors import GenerationCancelled
from voicebrush_daemon.imaging import GenerationRequest, RuntimePlan, describe_image_models, fetch_image_model, load_image_generator
from voicebrush_daemon.imaging import sources, tiny
from voicebrush_daemon.imaging.diffusers_engine import DiffusersImageGenerator, denoising_steps, pipeline_strength
from voicebrush_daemon.imaging.inputs import DEPTH, IMG2IMG, INPAINT, TEXT, feathered
from voicebrush_daemon.imaging.sources import ModelSource
from voicebrush_daemon.models import MODE_MODELS, ModelUnavailable
from voicebrush_daemon.settings import Settings

SIZE = (96, 64)


@pytest.fixture(scope="module")
def settings(tmp_path_factory):
    return Settings(preset="tiny", device="cpu", data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def generator(settings):
    gen = load_image_generator(settings)
    yield gen
    gen.close()


def canvas(seed: int = 7) -> Image.Image:
    """A picture with structure: a gradient, a dark block and a little noise."""
    rng = np.random.default_rng(seed)
    x = np.linspace(0, 255, SIZE[0])[None, :, None]
    y = np.linspace(0, 255, SIZE[1])[:, None, None]
    values = np.concatenate([x.repeat(SIZE[1], 0), y.repeat(SIZE[0], 1), np.full((SIZE[1], SIZE[0], 1), 120.0)], axis=2)
    values[20:44, 30:60] = 20
    values += rng.normal(0, 6, values.shape)
    return Image.fromarray(values.clip(0, 255).astype(np.uint8), "RGB")


def centre_mask() -> Image.Image:
    mask = Image.new("L", SIZE, 0)
    mask.paste(255, (32, 16, 64, 48))
    return mask


def depth_map() -> Image.Image:
    return Image.linear_gradient("L").resize(SIZE)  # near at the bottom


def request(mode: str = TEXT, **changes) -> GenerationRequest:
    options = dict(
        prompt="a misty harbour at dawn",
        negative_prompt="",
        width=SIZE[0],
        height=SIZE[1],
        n=1,
        steps=4,
        seed=99,
        guidance_scale=7.5,
        scheduler="dpmpp_2m",
        mode=mode,
    )
    if mode in (IMG2IMG, INPAINT):
        options["image"] = canvas()
    if mode == INPAINT:
        options["mask"] = centre_mask()
    if mode == DEPTH:
        options["depth"] = depth_map()
    options.update(changes)
    return GenerationRequest(**options)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the stand-ins: real channel layouts, built offline and deterministically ------


def test_tiny_mode_stand_ins_have_the_real_channel_layouts_and_schedulers(generator, settings):
    for mode, channels in ((INPAINT, 9), (DEPTH, 5)):
        pipe, scheduler_config = generator.pipeline_for(mode)
        assert pipe.unet.config.in_channels == channels == MODE_MODELS[f"sd2-{mode}"].in_channels
        assert pipe.unet.config.out_channels == 4
        # inpaint and depth are epsilon models; the main (768-v) model is v-prediction.
        assert scheduler_config["prediction_type"] == "epsilon"
        folder = settings.models_dir / tiny.TINY_MODE_DIRS[mode]
        weights = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.suffix in (".safetensors", ".bin"))
        assert weights == ["unet/diffusion_pytorch_model.safetensors"]  # safetensors only, like the real fetch
    assert generator.pipeline_for(TEXT)[1]["prediction_type"] == "v_prediction"
    assert generator.pipeline_for(IMG2IMG)[1]["prediction_type"] == "v_prediction"


def test_every_mode_shares_the_main_vae_text_encoder_and_tokenizer(generator):
    main = generator.pipeline
    classes = {}
    for mode in (TEXT, IMG2IMG, INPAINT, DEPTH):
        pipe, _ = generator.pipeline_for(mode)
        assert pipe.vae is main.vae and pipe.text_encoder is main.text_encoder and pipe.tokenizer is main.tokenizer
        classes[mode] = type(pipe).__name__
    assert classes == {
        TEXT: "StableDiffusionPipeline",
        IMG2IMG: "StableDiffusionImg2ImgPipeline",
        INPAINT: "StableDiffusionInpaintPipeline",
        DEPTH: "StableDiffusionDepth2ImgPipeline",
    }
    assert generator.pipeline_for(IMG2IMG)[0].unet is main.unet
    assert generator.pipeline_for(DEPTH)[0].depth_estimator is None  # the caller sends depth


def test_mode_stand_ins_build_deterministically(tmp_path, settings, generator):
    generator.pipeline_for(INPAINT)
    for mode in (INPAINT, DEPTH):
        built = tiny.ensure_tiny_mode_weights(tmp_path / "elsewhere", mode)
        reference = tiny.ensure_tiny_mode_weights(settings.models_dir, mode)
        name = "unet/diffusion_pytorch_model.safetensors"
        assert _sha256(built / name) == _sha256(reference / name)
        with safe_open(str(built / name), framework="pt") as f:
            assert f.get_slice("conv_in.weight").get_shape()[1] == MODE_MODELS[f"sd2-{mode}"].in_channels


def test_the_unets_load_on_first_use_and_say_which_are_loaded(settings):
    fresh = load_image_generator(settings)
    try:
        assert fresh.loaded_unets == {"main": "tiny-sd2"}
        fresh.generate(request(IMG2IMG, steps=2))
        assert fresh.loaded_unets == {"main": "tiny-sd2"}  # img2img reuses the main UNet
        fresh.generate(request(INPAINT, steps=2))
        assert fresh.loaded_unets == {"main": "tiny-sd2", "inpaint": "tiny-sd2-inpaint"}
        fresh.generate(request(DEPTH, steps=2))
        assert fresh.loaded_unets == {"main": "tiny-sd2", "inpaint": "tiny-sd2-inpaint", "depth": "tiny-sd2-depth"}
        assert fresh.models_for_modes() == {TEXT: "tiny-sd2", IMG2IMG: "tiny-sd2", INPAINT: "tiny-sd2-inpaint", DEPTH: "tiny-sd2-depth"}
        sizes = fresh.unet_parameter_bytes()
        assert set(sizes) == {"main", "inpaint", "depth"} and all(size > 0 for size in sizes.values())
    finally:
        fresh.close()


# ---- every mode through the real pipelines -----------------------------------------


@pytest.mark.parametrize("mode", [TEXT, IMG2IMG, INPAINT, DEPTH])
def test_every_mode_gives_rgb_pictures_of_the_requested_size(generator, mode):
    images = generator.generate(request(mode, n=2))
    assert [(im.mode, im.size) for im in images] == [("RGB", SIZE)] * 2


@pytest.mark.parametrize("mode", [IMG2IMG, INPAINT, DEPTH])
def test_the_picture_is_what_the_pipeline_encodes(generator, monkeypatch, mode):
    # A random-weight VAE cannot show "keeps the layout" in pixels; what can be shown is
    # that the input itself is what the pipeline starts from.
    import torch

    vae = generator.pipeline.vae
    encoded = []
    real_encode = vae.encode
    monkeypatch.setattr(vae, "encode", lambda x, *a, **k: encoded.append(x.detach().clone()) or real_encode(x, *a, **k))
    picture = canvas(seed=3)
    generator.generate(request(mode, image=picture, strength=0.5))
    expected = generator.pipeline.image_processor.preprocess(picture)
    assert encoded and torch.allclose(encoded[0], expected, atol=1e-6)


def test_img2img_output_depends_on_the_picture(generator):
    first = pixels(generator.generate(request(IMG2IMG))[0])
    other = pixels(generator.generate(request(IMG2IMG, image=canvas(seed=8).transpose(Image.Transpose.ROTATE_180)))[0])
    assert not np.array_equal(first, other)


def test_depth_with_a_picture_starts_from_it_and_without_one_from_grey(generator):
    with_picture = generator.generate(request(DEPTH, image=canvas(), strength=0.5))[0]
    without = generator.generate(request(DEPTH, strength=0.5))[0]
    assert not np.array_equal(pixels(with_picture), pixels(without))


def test_depth_follows_the_depth_map(generator):
    flipped = depth_map().transpose(Image.Transpose.FLIP_TOP_BOTTOM)
    a = generator.generate(request(DEPTH))[0]
    b = generator.generate(request(DEPTH, depth=flipped))[0]
    assert not np.array_equal(pixels(a), pixels(b))


@pytest.mark.parametrize("blur", [0, 4])
def test_inpaint_leaves_pixels_outside_the_feathered_mask_exactly_as_they_were(generator, blur):
    original = pixels(canvas())
    (image,) = generator.generate(request(INPAINT, mask_blur=blur))
    result = pixels(image)
    seam = np.asarray(feathered(centre_mask(), blur))
    untouched = seam == 0
    assert untouched.sum() > 0.5 * untouched.size
    assert np.array_equal(result[untouched], original[untouched])
    inside = np.asarray(centre_mask()) == 255
    assert np.abs(result[inside] - original[inside]).mean() > 5  # the masked part was repainted
    if blur:
        band = (seam > 0) & (seam < 255)
        assert band.sum() > 0 and not np.array_equal(result[band], original[band])  # a soft seam


def test_inpaint_without_the_9_channel_weights_uses_the_main_model_with_masked_latents(generator, settings):
    plain = DiffusersImageGenerator(generator.source, generator.plan, mode_sources={})
    try:
        assert plain.models_for_modes()[INPAINT] == "tiny-sd2"
        pipe, config = plain.pipeline_for(INPAINT)
        assert pipe.unet is plain.pipeline.unet and pipe.unet.config.in_channels == 4
        assert config["prediction_type"] == "v_prediction"  # the main model's own scheduler
        (image,) = plain.generate(request(INPAINT))
        untouched = np.asarray(feathered(centre_mask(), 4)) == 0
        assert np.array_equal(pixels(image)[untouched], pixels(canvas())[untouched])
        assert plain.loaded_unets == {"main": "tiny-sd2"}
    finally:
        plain.close()


# ---- depth without the depth model --------------------------------------------------


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def real_depth_source() -> ModelSource:
    model = MODE_MODELS["sd2-depth"]
    return ModelSource("repo", model.repo, model.repo, model.name, model.native_size)


def test_depth_without_the_depth_model_names_the_fetch_command(empty_hf_cache, generator):
    missing = DiffusersImageGenerator(generator.source, generator.plan, mode_sources={DEPTH: real_depth_source()})
    try:
        with pytest.raises(ModelUnavailable) as caught:
            missing.require_mode(DEPTH)
        message = str(caught.value)
        assert "voicebrush models --fetch sd2-depth" in message and "\n" not in message
        with pytest.raises(ModelUnavailable, match="voicebrush models --fetch sd2-depth"):
            missing.generate(request(DEPTH))
        assert missing.models_for_modes()[DEPTH] is None
        missing.require_mode(INPAINT)  # inpaint always has the main model to fall back on
        assert missing.loaded_unets == {"main": "tiny-sd2"}
    finally:
        missing.close()


def fake_hf_snapshot(hub: Path, repo: str, folder: Path) -> Path:
    """Lay `folder`'s files out as huggingface_hub's cache holds a download of `repo`."""
    commit = "0" * 40
    base = hub / f"models--{repo.replace('/', '--')}"
    (base / "refs").mkdir(parents=True)
    (base / "refs" / "main").write_text(commit)
    snapshot = base / "snapshots" / commit
    shutil.copytree(folder, snapshot)
    return snapshot


def test_a_downloaded_depth_model_loads_from_the_hf_cache_on_first_use(empty_hf_cache, generator, settings):
    # The stand-in's files where a `voicebrush models --fetch sd2-depth` would put the real ones.
    source = real_depth_source()
    snapshot = fake_hf_snapshot(empty_hf_cache, source.location, tiny.ensure_tiny_mode_weights(settings.models_dir, DEPTH))
    assert sources.mode_weights_folder(source) == snapshot
    cached = DiffusersImageGenerator(generator.source, generator.plan, mode_sources={DEPTH: source})
    try:
        cached.require_mode(DEPTH)
        (image,) = cached.generate(request(DEPTH, steps=2))
        assert image.size == SIZE
        assert cached.loaded_unets["depth"] == "stabilityai/stable-diffusion-2-depth"
    finally:
        cached.close()


def test_a_depth_model_for_another_text_encoder_is_refused_clearly(empty_hf_cache, generator, settings):
    source = real_depth_source()
    snapshot = fake_hf_snapshot(empty_hf_cache, source.location, tiny.ensure_tiny_mode_weights(settings.models_dir, DEPTH))
    config_path = snapshot / "unet" / "config.json"
    config = json.loads(config_path.read_text())
    config["cross_attention_dim"] = 1024  # the real SD 2 width; the tiny text encoder gives 64
    config_path.write_text(json.dumps(config))
    mismatched = DiffusersImageGenerator(generator.source, generator.plan, mode_sources={DEPTH: source})
    try:
        with pytest.raises(ModelUnavailable, match="SD 2.x main model"):
            mismatched.require_mode(DEPTH)
        with pytest.raises(ModelUnavailable):
            mismatched.generate(request(DEPTH))
    finally:
        mismatched.close()


def test_models_lists_sd2_inpaint_and_sd2_depth_with_status_and_fetch_command(empty_hf_cache, settings):
    entries = {e["name"]: e for e in describe_image_models(settings)}
    for name, repo, mode in (("sd2-inpaint", "stabilityai/stable-diffusion-2-inpainting", INPAINT), ("sd2-depth", "stabilityai/stable-diffusion-2-depth", DEPTH)):
        entry = entries[name]
        assert (entry["model"], entry["mode"], entry["status"]) == (repo, mode, "missing")
        assert entry["fetch"] == f"voicebrush models --fetch {name}"
        # Only the UNet and its scheduler config: the VAE and text encoder are the main model's.
        assert entry["fetch_with_hf"] == (
            f'hf download {repo} --include "model_index.json" "unet/config.json" '
            '"unet/diffusion_pytorch_model.safetensors" "scheduler/scheduler_config.json"'
        )
        assert "stand-in" in entry["detail"]  # the tiny preset uses its own


def test_fetching_a_mode_model_downloads_only_its_unet_and_scheduler(empty_hf_cache, monkeypatch):
    asked = []
    # Stand-in for the Hub: this test must not download anything.
    monkeypatch.setattr("voicebrush_daemon.imaging.download_snapshot", lambda repo, patterns: asked.append((repo, patterns)))
    source = fetch_image_model("sd2-inpaint")
    assert source.model_id == "stabilityai/stable-diffusion-2-inpainting"
    assert asked == [("stabilityai/stable-diffusion-2-inpainting", sources.MODE_FETCH_PATTERNS)]


# ---- steps, progress, cancellation, seeds -------------------------------------------


@pytest.mark.parametrize("steps,strength,expected", [(10, 0.5, 5), (25, 0.75, 19), (10, 0.3, 3), (10, 0.04, 1), (7, 1.0, 7), (20, 0.99, 20)])
def test_img2img_at_strength_s_runs_and_reports_round_s_times_steps(generator, steps, strength, expected):
    assert denoising_steps(IMG2IMG, steps, strength) == expected
    seen = []
    generator.generate(request(IMG2IMG, steps=steps, strength=strength, width=64, height=64, image=canvas().resize((64, 64))),
                       lambda step, total, preview: seen.append((step, total)) or False)
    assert seen == [(i, expected) for i in range(1, expected + 1)]


@pytest.mark.parametrize("mode", [INPAINT, DEPTH])
def test_inpaint_and_depth_report_their_steps_and_previews(generator, mode):
    seen, previews = [], []

    def on_step(step, total, make_preview):
        seen.append((step, total))
        previews.append(make_preview())
        return False

    generator.generate(request(mode, steps=10, strength=0.5), on_step)
    assert seen == [(i, 5) for i in range(1, 6)]
    assert all(p.mode == "RGB" and max(p.size) <= 128 for p in previews)


def test_text_reports_every_step():
    assert denoising_steps(TEXT, 25, 0.1) == 25


def test_the_strength_handed_to_diffusers_floors_to_the_rounded_step_count():
    for steps in range(1, 80):
        for tenth in range(1, 101):
            strength = tenth / 100
            wanted = denoising_steps(IMG2IMG, steps, strength)
            # diffusers' own rule: min(int(steps * strength), steps) steps.
            assert min(int(steps * pipeline_strength(IMG2IMG, steps, strength)), steps) == wanted
    assert pipeline_strength(INPAINT, 10, 1.0) == 1.0


@pytest.mark.parametrize("mode", [IMG2IMG, INPAINT, DEPTH])
def test_cancel_mid_run_stops_within_a_step_and_the_next_call_works(generator, mode):
    seen = []

    def stop_at_two(step, total, preview):
        seen.append(step)
        return step == 2

    with pytest.raises(GenerationCancelled):
        generator.generate(request(mode, steps=8, strength=0.75), stop_at_two)
    assert seen == [1, 2]
    (image,) = generator.generate(request(mode, steps=2))
    assert image.size == SIZE


@pytest.mark.parametrize("mode", [TEXT, IMG2IMG, INPAINT, DEPTH])
def test_image_i_of_seed_s_is_what_s_plus_i_gives_alone_in_every_mode(generator, mode):
    batch = generator.generate(request(mode, n=3, seed=500, strength=0.8 if mode != TEXT else 1.0))
    alone = generator.generate(request(mode, n=1, seed=502, strength=0.8 if mode != TEXT else 1.0))[0]
    again = generator.generate(request(mode, n=1, seed=502, strength=0.8 if mode != TEXT else 1.0))[0]
    assert np.array_equal(pixels(alone), pixels(again))
    assert not np.array_equal(pixels(batch[0]), pixels(batch[1]))
    # Batched kernels may round differently, nothing more.
    assert np.abs(pixels(batch[2]) - pixels(alone)).max() <= 2


# ---- low-VRAM: only what the running mode needs -------------------------------------


def test_low_vram_keeps_only_the_unets_the_running_mode_needs(generator):
    plan = dataclasses.replace(generator.plan, unload_idle_unets=True)
    lean = DiffusersImageGenerator(generator.source, plan, mode_sources=generator.mode_sources)
    try:
        lean.generate(request(INPAINT, steps=1))
        assert lean.loaded_unets == {"main": "tiny-sd2", "inpaint": "tiny-sd2-inpaint"}
        lean.generate(request(DEPTH, steps=1))
        assert lean.loaded_unets == {"main": "tiny-sd2", "depth": "tiny-sd2-depth"}
        lean.generate(request(IMG2IMG, steps=1))
        assert lean.loaded_unets == {"main": "tiny-sd2"}
        (image,) = lean.generate(request(INPAINT, steps=1))  # reloaded from disk on its next use
        assert image.size == SIZE and lean.loaded_unets == {"main": "tiny-sd2", "inpaint": "tiny-sd2-inpaint"}
    finally:
        lean.close()


def test_without_low_vram_the_mode_unets_stay_loaded(settings):
    plan = RuntimePlan(device="cpu", dtype="float32")
    assert not plan.unload_idle_unets
    kept = load_image_generator(settings, plan=plan)
    try:
        kept.generate(request(INPAINT, steps=1))
        kept.generate(request(DEPTH, steps=1))
        kept.generate(request(TEXT, steps=1))
        assert set(kept.loaded_unets) == {"main", "inpaint", "depth"}
    finally:
        kept.close()


def test_a_request_checks_its_inputs_fit_the_mode():
    with pytest.raises(ValueError, match="needs mask"):
        request(INPAINT, mask=None)
    with pytest.raises(ValueError, match="not the request's"):
        request(IMG2IMG, image=canvas().resize((64, 64)))
    with pytest.raises(ValueError, match="strength"):
        request(IMG2IMG, strength=0.0)
    with pytest.raises(ValueError, match="unknown mode"):
        request("outpaint")


def test_model_offload_hooks_follow_the_pipeline_that_runs(generator):
    # Low-VRAM's CPU offload, exercised on the CPU: the pipelines share modules and each
    # hooks them in its own order, so switching modes must re-hook, not break.
    plan = dataclasses.replace(generator.plan, model_cpu_offload=True, unload_idle_unets=True, fuse_qkv=False)
    offloaded = DiffusersImageGenerator(generator.source, plan, mode_sources=generator.mode_sources)
    plain = DiffusersImageGenerator(generator.source, dataclasses.replace(plan, model_cpu_offload=False), mode_sources=generator.mode_sources)
    try:
        for mode in (TEXT, INPAINT, DEPTH, IMG2IMG, TEXT, INPAINT):
            (image,) = offloaded.generate(request(mode, steps=2))
            assert image.size == SIZE
            assert getattr(offloaded.pipeline_for(mode)[0].unet, "_hf_hook", None) is not None
        (reference,) = plain.generate(request(INPAINT, steps=2))
        (image,) = offloaded.generate(request(INPAINT, steps=2))
        assert np.abs(pixels(image) - pixels(reference)).max() <= 2
    finally:
        offloaded.close()
        plain.close()
