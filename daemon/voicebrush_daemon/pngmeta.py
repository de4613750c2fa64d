"""PNG files that remember how they were made.

Two text chunks: `parameters`, in the AUTOMATIC1111 layout that image viewers and
other Stable Diffusion tools already read, and `voicebrush`, the same facts (plus
the transcript and job id) as JSON for programs.
"""

from __future__ import annotations

import io
import json

from PIL import Image, PngImagePlugin

from .imaging.schedulers import AUTOMATIC, a1111_label

# Fast over small: zlib level 1 is several times quicker than Pillow's default 6 and
# the files are only slightly larger; generation speed is what users feel.
COMPRESS_LEVEL = 1


def a1111_parameters(meta: dict) -> str:
    """The `parameters` text: prompt, `Negative prompt:` line, then the settings line."""
    sampler, schedule = a1111_label(str(meta.get("scheduler", "")))
    fields = [
        ("Steps", meta.get("steps")),
        ("Sampler", sampler),
        # AUTOMATIC1111 1.9+ writes the type beside the sampler, and leaves out Automatic.
        ("Schedule type", schedule if schedule != AUTOMATIC else None),
        ("CFG scale", _number(meta.get("guidance_scale"))),
        ("Seed", meta.get("seed")),
        ("Size", f"{meta.get('width')}x{meta.get('height')}"),
        ("Model", meta.get("model")),
        # Only where they apply (pictures in), as AUTOMATIC1111 writes them.
        ("Denoising strength", _number(meta.get("strength"))),
        ("Mask blur", meta.get("mask_blur")),
    ]
    # One line per field in A1111's reader: a newline inside the prompt stays, but the
    # settings line must not contain one.
    settings = ", ".join(f"{key}: {_one_line(value)}" for key, value in fields if value not in (None, ""))
    lines = [str(meta.get("prompt", ""))]
    negative = meta.get("negative_prompt") or ""
    if negative:
        lines.append(f"Negative prompt: {negative}")
    lines.append(settings)
    return "\n".join(lines)


def encode_png(image: Image.Image, meta: dict) -> bytes:
    """PNG bytes of image with the `parameters` and `voicebrush` text chunks."""
    info = PngImagePlugin.PngInfo()
    # As AUTOMATIC1111 does: tEXt, which Pillow turns into UTF-8 iTXt when the text
    # is not Latin-1, so any prompt survives. The JSON is ASCII, so always tEXt.
    info.add_text("parameters", a1111_parameters(meta))
    info.add_text("voicebrush", json.dumps(meta, sort_keys=True))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", pnginfo=info, compress_level=COMPRESS_LEVEL)
    return buffer.getvalue()


def read_png_metadata(data: bytes) -> dict:
    """{"parameters": str | None, "voicebrush": dict | None, "size": (w, h)} of PNG bytes."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # text chunks after the image data are read only by load()
        text = dict(getattr(image, "text", {}) or {})
        size = image.size
    raw = text.get("voicebrush")
    return {
        "parameters": text.get("parameters"),
        "voicebrush": json.loads(raw) if raw else None,
        "size": size,
    }


def _number(value):
    if isinstance(value, float) and value.is_integer():
        return int(value) if abs(value) < 1e15 else value
    return value


def _one_line(value) -> str:
    return " ".join(str(value).split())
