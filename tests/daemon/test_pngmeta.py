"""PNG metadata: the AUTOMATIC1111 `parameters` chunk and the `voicebrush` JSON chunk."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from voicebrush_daemon.pngmeta import a1111_parameters, encode_png, read_png_metadata

META = {
    "prompt": "a lighthouse at dusk, oil painting",
    "negative_prompt": "blurry, text",
    "seed": 4294967295,
    "steps": 25,
    "width": 768,
    "height": 512,
    "scheduler": "dpmpp_2m",
    "guidance_scale": 7.5,
    "model": "stabilityai/stable-diffusion-2-1",
    "transcript": "um a lighthouse at dusk oil painting without blurry or text please",
    "job_id": "job_0123",
}


def _image(width=96, height=64):
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), "RGB")


def test_round_trip_keeps_pixels_and_both_chunks():
    image = _image()
    data = encode_png(image, META)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    meta = read_png_metadata(data)
    assert meta["voicebrush"] == META
    assert meta["size"] == (96, 64)
    assert meta["parameters"] == (
        "a lighthouse at dusk, oil painting\n"
        "Negative prompt: blurry, text\n"
        "Steps: 25, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 4294967295, Size: 768x512, "
        "Model: stabilityai/stable-diffusion-2-1"
    )
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), np.asarray(image))


def test_chunks_are_png_text_chunks_other_tools_read():
    data = encode_png(_image(), META)
    chunks = _chunk_types_and_keywords(data)
    assert (b"tEXt", b"parameters") in chunks
    assert (b"tEXt", b"voicebrush") in chunks


def test_non_latin_prompt_survives():
    meta = {**META, "prompt": "café sous la pluie 🌧, 雨の中のカフェ", "negative_prompt": ""}
    data = encode_png(_image(), meta)
    read = read_png_metadata(data)
    assert read["voicebrush"]["prompt"] == meta["prompt"]
    # No negative prompt: no "Negative prompt:" line, as AUTOMATIC1111 writes it.
    assert read["parameters"].splitlines() == [
        meta["prompt"],
        "Steps: 25, Sampler: DPM++ 2M, CFG scale: 7.5, Seed: 4294967295, Size: 768x512, "
        "Model: stabilityai/stable-diffusion-2-1",
    ]
    assert (b"iTXt", b"parameters") in _chunk_types_and_keywords(data)


def test_sampler_names_and_whole_cfg_scale_as_a1111_writes_them():
    text = a1111_parameters({**META, "scheduler": "euler_a", "guidance_scale": 7.0})
    assert "Sampler: Euler a, CFG scale: 7, " in text
    assert "Sampler: DDIM," in a1111_parameters({**META, "scheduler": "ddim"})


def test_settings_line_stays_one_line_whatever_the_model_name():
    text = a1111_parameters({**META, "model": "my\nmodel"})
    assert text.splitlines()[-1].endswith("Model: my model")


def _chunk_types_and_keywords(data: bytes) -> list[tuple[bytes, bytes]]:
    found, pos = [], 8
    while pos < len(data):
        length = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind in (b"tEXt", b"iTXt", b"zTXt"):
            found.append((kind, body.split(b"\0", 1)[0]))
        pos += 12 + length
    return found


def test_denoising_strength_and_mask_blur_appear_where_they_apply_as_a1111_writes_them():
    assert "Denoising strength" not in a1111_parameters(META) and "Mask blur" not in a1111_parameters(META)
    img2img = a1111_parameters({**META, "mode": "img2img", "strength": 0.75}).splitlines()[-1]
    assert img2img.endswith("Model: stabilityai/stable-diffusion-2-1, Denoising strength: 0.75")
    inpaint = a1111_parameters({**META, "mode": "inpaint", "strength": 1.0, "mask_blur": 4}).splitlines()[-1]
    assert inpaint.endswith("Denoising strength: 1, Mask blur: 4")
