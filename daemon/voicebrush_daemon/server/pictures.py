"""Pictures a request brings in, through any door: decoded off the event loop and made
into the one PictureInputs a job takes (imaging.inputs holds every rule).

A picture arrives as file bytes (a multipart part) or as base64 text (JSON: raw or a
data: URI). Each door names its own fields (`init_images` in AUTOMATIC1111's dialect),
and errors name the field as the client sent it.
"""

from __future__ import annotations

import asyncio
from typing import Callable

from PIL import Image

from ..errors import ApiError
from ..imaging.inputs import PictureInputError, PictureInputs, decode_image, decode_image_base64, openai_edit_inputs, picture_inputs

Picture = bytes | str | None  # file bytes, base64 text, or not given


def decode(value: Picture, param: str) -> Image.Image | None:
    """One picture from file bytes or base64 text; raises PictureInputError naming `param`."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray)):
        return decode_image(bytes(value), param)
    return decode_image_base64(value, param)


async def job_pictures(
    image: Picture = None,
    mask: Picture = None,
    depth: Picture = None,
    *,
    names: dict[str, str] | None = None,
    **rules,
) -> PictureInputs | None:
    """picture_inputs (white = repaint) from what a request sent; None for text to image.

    `names` maps our field names ("image", "mask", "depth", "strength", "mask_blur",
    "resize_mode") to the ones the client used; `rules` are picture_inputs' keywords."""
    names = names or {}

    def build() -> PictureInputs | None:
        decoded = {role: decode(value, names.get(role, role)) for role, value in (("image", image), ("mask", mask), ("depth", depth))}
        return picture_inputs(decoded["image"], decoded["mask"], decoded["depth"], **rules)

    return await _off_the_loop(build, names)


async def edit_pictures(image: Picture, mask: Picture = None, **rules) -> PictureInputs:
    """openai_edit_inputs (transparent = repaint) from an OpenAI images.edit request."""

    def build() -> PictureInputs:
        return openai_edit_inputs(decode(image, "image"), decode(mask, "mask"), **rules)

    return await _off_the_loop(build, {})


async def _off_the_loop(build: Callable, names: dict[str, str]):
    # Decoding and converting a 4096x4096 picture is CPU work for the executor.
    try:
        return await asyncio.get_running_loop().run_in_executor(None, build)
    except PictureInputError as exc:
        param = names.get(exc.param, exc.param)
        message = exc.message.replace(f"'{exc.param}'", f"'{param}'") if param != exc.param else exc.message
        raise ApiError(400, message, exc.code, param=param) from None
