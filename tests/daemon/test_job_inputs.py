"""Jobs that start from pictures: the worker passes mode, strength and inputs to the real
tiny engine, records them, keeps every input as a PNG next to the images, and a crash
leaves no input behind that no record names."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import pytest
from PIL import Image

from voicebrush_daemon.errors import ApiError
from voicebrush_daemon.imaging.diffusers_engine import DiffusersImageGenerator
from voicebrush_daemon.imaging.inputs import feathered, openai_edit_inputs, picture_inputs
from voicebrush_daemon.jobs.events import EventHub
from voicebrush_daemon.jobs.model import DONE, GENERATION, TERMINAL, Job, new_job_id
from voicebrush_daemon.jobs.store import TEMP_PREFIX, JobStore
from voicebrush_daemon.jobs.worker import Engines, JobQueue
from voicebrush_daemon.options import GenerationOptions
from voicebrush_daemon.pngmeta import read_png_metadata

SIZE = (64, 64)


def canvas(width: int = 64, height: int = 64, seed: int = 5) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def square_mask(width: int = 64, height: int = 64) -> Image.Image:
    mask = Image.new("L", (width, height), 0)
    mask.paste(255, (width // 4, height // 4, 3 * width // 4, 3 * height // 4))
    return mask


async def start_queue(store: JobStore, engines: Engines) -> JobQueue:
    store.open()
    queue = JobQueue(store, EventHub(), lambda: engines)
    queue.start(asyncio.get_running_loop())
    await asyncio.get_running_loop().run_in_executor(None, queue.ready.wait)
    assert queue.state == "ready", queue.load_error
    return queue


@pytest.fixture
async def queue(tmp_path, tiny_engines):
    started = await start_queue(JobStore(tmp_path / "data"), tiny_engines)
    yield started
    started.close()


def new_job(**fields) -> tuple[Job, GenerationOptions]:
    size = fields.pop("size", SIZE)
    job = Job(id=new_job_id(), kind=GENERATION, prompt="a forest at dusk", seed=11, steps=2, size=f"{size[0]}x{size[1]}" if size else None, **fields)
    return job, GenerationOptions(prompt=job.prompt, size=size, steps=2, seed=11)


async def finished(queue: JobQueue, job_id: str) -> Job:
    for _ in range(2400):  # a guard against a hang, not a speed check
        job = queue.store.get(job_id)
        if job.status in TERMINAL:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish")


def stored(queue: JobQueue, name: str) -> Image.Image:
    path = queue.store.image_path(name)
    assert path is not None and path.parent == queue.store.images_dir
    with Image.open(path) as image:
        image.load()
        return image.copy()


def output(queue: JobQueue, job: Job, index: int = 0) -> tuple[Image.Image, dict]:
    data = queue.store.image_path(job.images[index]).read_bytes()
    return Image.open(io.BytesIO(data)).convert("RGB"), read_png_metadata(data)


async def test_an_img2img_job_records_its_mode_strength_and_input(queue):
    given = canvas(96, 64)
    job, options = new_job(size=None)
    accepted = queue.submit_job(job, options, pictures=picture_inputs(given))
    assert (accepted.mode, accepted.strength) == ("img2img", 0.75)
    done = await finished(queue, job.id)
    assert done.status == DONE, done.error
    assert done.inputs == {"image": f"{job.id}-image"}
    assert np.array_equal(np.asarray(stored(queue, done.inputs["image"])), np.asarray(given))
    # No size asked: the input's aspect (3:2) at the tiny model's native area (256x256).
    assert done.size == "312x208"
    image, meta = output(queue, done)
    assert image.size == (312, 208)
    assert meta["parameters"].splitlines()[-1].endswith("Denoising strength: 0.75")
    assert "Mask blur" not in meta["parameters"]
    assert meta["voicebrush"]["mode"] == "img2img" and meta["voicebrush"]["strength"] == 0.75
    public = done.public(lambda name: f"http://daemon/v1/images/{name}.png")
    assert (public["mode"], public["strength"]) == ("img2img", 0.75)
    assert public["inputs"] == {"image": f"http://daemon/v1/images/{job.id}-image.png"}
    # The record on disk says the same after a restart.
    on_disk = json.loads((queue.store.jobs_dir / f"{job.id}.json").read_text())
    assert on_disk["inputs"] == done.inputs and on_disk["mode"] == "img2img"


async def test_an_inpaint_job_keeps_untouched_pixels_and_a_mask_of_another_size(queue):
    given = canvas()
    small_mask = square_mask(32, 32)  # half the image's size: stretched onto it
    job, options = new_job()
    queue.submit_job(job, options, pictures=picture_inputs(given, small_mask, strength=0.9, mask_blur=2))
    done = await finished(queue, job.id)
    assert done.status == DONE, done.error
    assert (done.mode, done.strength) == ("inpaint", 0.9)
    assert set(done.inputs) == {"image", "mask"}
    assert np.array_equal(np.asarray(stored(queue, done.inputs["image"])), np.asarray(given))
    assert np.array_equal(np.asarray(stored(queue, done.inputs["mask"])), np.asarray(small_mask))
    image, meta = output(queue, done)
    untouched = np.asarray(feathered(small_mask.resize(SIZE, Image.Resampling.BILINEAR), 2)) == 0
    assert untouched.sum() > 0.4 * untouched.size
    assert np.array_equal(np.asarray(image)[untouched], np.asarray(given)[untouched])
    assert meta["parameters"].splitlines()[-1].endswith("Denoising strength: 0.9, Mask blur: 2")


async def test_an_openai_style_edit_repaints_the_transparent_part(queue):
    given = canvas().convert("RGBA")
    given.paste((0, 0, 0, 0), (0, 0, 64, 16))  # the top quarter cleared: repaint it
    job, options = new_job()
    queue.submit_job(job, options, pictures=openai_edit_inputs(given))
    done = await finished(queue, job.id)
    assert done.status == DONE and done.mode == "inpaint"
    assert np.asarray(stored(queue, done.inputs["mask"]))[:16].min() == 255


async def test_a_depth_job_keeps_a_16_bit_depth_map_as_given(queue):
    values = np.tile(np.linspace(0, 65535, 64).astype("<u2"), (64, 1))
    depth = Image.fromarray(values)
    job, options = new_job()
    queue.submit_job(job, options, pictures=picture_inputs(depth=depth, strength=0.5))
    done = await finished(queue, job.id)
    assert done.status == DONE, done.error
    assert (done.mode, done.strength, list(done.inputs)) == ("depth", 0.5, ["depth"])
    kept = stored(queue, done.inputs["depth"])
    assert kept.mode == "I;16" and np.array_equal(np.asarray(kept), values)
    assert "Denoising strength: 0.5" in output(queue, done)[1]["parameters"]


async def test_a_text_job_has_no_inputs_and_no_strength(queue):
    job, options = new_job()
    accepted = queue.submit_job(job, options)
    done = await finished(queue, job.id)
    assert (accepted.mode, done.mode, done.strength, done.inputs) == ("text", "text", None, {})
    assert "Denoising strength" not in output(queue, done)[1]["parameters"]


async def test_depth_without_the_depth_model_is_refused_at_submit(tmp_path, tiny_engines):
    image = tiny_engines.image
    no_depth = DiffusersImageGenerator(image.source, image.plan, mode_sources={})
    queue = await start_queue(JobStore(tmp_path / "data"), Engines(image=no_depth, speech=tiny_engines.speech))
    try:
        job, options = new_job()
        with pytest.raises(ApiError) as caught:
            queue.submit_job(job, options, pictures=picture_inputs(depth=Image.linear_gradient("L").resize(SIZE)))
        assert (caught.value.status, caught.value.code) == (400, "model_unavailable")
        assert "voicebrush models --fetch sd2-depth" in caught.value.message
        assert queue.store.get(job.id) is None  # nothing was queued
    finally:
        queue.close()
        no_depth.close()


# ---- the store: names it makes, inputs served like images, no orphans ---------------


def test_input_names_are_made_by_the_store_and_checked_when_served(tmp_path):
    store = JobStore(tmp_path)
    store.open()
    job_id = new_job_id()
    name = store.save_input(job_id, "mask", b"\x89PNG fake")
    assert name == f"{job_id}-mask"
    assert store.input_path(name) == store.image_path(name) == store.images_dir / f"{name}.png"
    for bad in ("../jobs/x", f"{job_id}-secret", f"{job_id}-mask.png", "Z" * 32 + "-image", f"{job_id}-image"):
        assert store.input_path(bad) is None
    with pytest.raises(ValueError):
        store.save_input(job_id, "../../etc", b"")
    with pytest.raises(ValueError):
        store.save_input("not-a-job-id", "image", b"")


def test_a_crash_leaves_no_input_that_no_record_names(tmp_path):
    store = JobStore(tmp_path)
    store.open()
    kept, cut_off, finished_job = new_job_id(), new_job_id(), new_job_id()
    # Its inputs were written and the record says so; then the daemon died mid-generation.
    store.add(Job(id=kept, kind=GENERATION, status="generating", mode="img2img", inputs={"image": store.save_input(kept, "image", b"a")}))
    # Its input was written, but the record saying so never reached the disk.
    store.add(Job(id=cut_off, kind=GENERATION, status="generating", mode="inpaint"))
    store.save_input(cut_off, "image", b"b")
    store.save_input(cut_off, "mask", b"c")
    # An input whose record is gone, a half-written file, and a finished job's image.
    store.save_input(new_job_id(), "depth", b"d")
    (store.images_dir / f"{TEMP_PREFIX}abc").write_bytes(b"half")
    store.add(Job(id=finished_job, kind=GENERATION, status=DONE, images=[store.save_image(finished_job, 0, b"png")]))

    reopened = JobStore(tmp_path)
    interrupted = {job.id for job in reopened.open()}
    assert interrupted == {kept, cut_off}
    left = sorted(p.name for p in reopened.images_dir.iterdir())
    assert left == sorted([f"{kept}-image.png", f"{finished_job}-0.png"])
    assert reopened.get(kept).inputs == {"image": f"{kept}-image"}
