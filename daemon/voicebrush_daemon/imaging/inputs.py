"""Pictures a request brings in: decoded safely, put in one internal form, fitted to a size.

Every route that takes pictures (/v1/jobs, OpenAI edits, the AUTOMATIC1111 routes)
decodes them here and builds one `PictureInputs`; the worker fits it to the output size
(`fit_inputs`) and the engine reads its mode. Internal forms:

- image: RGB (transparency flattened over white, as AUTOMATIC1111 does);
- mask: L, white (255) = repaint, black = keep, greys = partly (not yet feathered);
- depth: L or I;16, white = near.

Bad bytes raise `InvalidImage` (the routes answer 400 `invalid_image` naming `param`);
inconsistent fields raise `PictureInputError` with code `invalid_value`.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image, ImageFile, ImageFilter, ImageOps, UnidentifiedImageError

from ..spoken import size_for_aspect

TEXT, IMG2IMG, INPAINT, DEPTH = "text", "img2img", "inpaint", "depth"
MODES = (TEXT, IMG2IMG, INPAINT, DEPTH)
# The contract's defaults: img2img keeps a quarter of the picture, the others redraw fully.
DEFAULT_STRENGTH = {IMG2IMG: 0.75, INPAINT: 1.0, DEPTH: 1.0}

MAX_INPUT_BYTES = 25 * 1024 * 1024
MAX_INPUT_SIDE = 4096
FORMATS = ("PNG", "JPEG", "WEBP")  # Pillow tries no other decoder on untrusted bytes
# AUTOMATIC1111's default and slider maximum for `mask_blur` (pixels of Gaussian radius).
DEFAULT_MASK_BLUR = 4
MAX_MASK_BLUR = 64
# AUTOMATIC1111's resize_mode values: 0 stretch ("Just resize"), 1 crop ("Crop and
# resize"), 2 fill ("Resize and fill"); its 3 (latent upscale) is treated as 0.
RESIZE_STRETCH, RESIZE_CROP, RESIZE_FILL = 0, 1, 2
RESIZE_MODES = (0, 1, 2, 3)
# The depth pipeline starts from a picture; without one it starts from mid grey.
NEUTRAL_GREY = (128, 128, 128)


class PictureInputError(ValueError):
    """A picture field that cannot be used. `code` and `param` are the contract's."""

    code = "invalid_value"

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


class InvalidImage(PictureInputError):
    """Bytes that are not a usable PNG, JPEG or WebP picture (400 `invalid_image`)."""

    code = "invalid_image"


# ---- decoding ---------------------------------------------------------------------


def decode_image(data: bytes, param: str = "image") -> Image.Image:
    """Decode PNG, JPEG or WebP bytes into one of "RGB", "RGBA", "L" or "I;16".

    Checked in this order, so nothing large is ever decoded: the byte count (25 MB),
    the format, the size the header declares (4096x4096: a decompression bomb is
    refused here, before its pixels are inflated), then the pixels themselves (a cut-off
    file fails here). The first frame of an animation is used; EXIF orientation is applied.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidImage(f"'{param}' must be an image file.", param)
    if len(data) == 0:
        raise InvalidImage(f"'{param}' is empty.", param)
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidImage(f"'{param}' is {len(data) / 2**20:.1f} MB; an input image may be at most 25 MB.", param)
    try:
        image = Image.open(io.BytesIO(bytes(data)), formats=FORMATS)  # reads the header only
    except UnidentifiedImageError:
        raise InvalidImage(f"'{param}' is not a PNG, JPEG or WebP image.", param) from None
    except Image.DecompressionBombError:
        raise InvalidImage(f"'{param}' declares more pixels than any input may have (at most {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}).", param) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"'{param}' could not be read as an image: {_first_line(exc)}.", param) from None
    width, height = image.size
    if width > MAX_INPUT_SIDE or height > MAX_INPUT_SIDE:
        raise InvalidImage(
            f"'{param}' is {width}x{height} pixels; an input image may be at most {MAX_INPUT_SIDE}x{MAX_INPUT_SIDE}.", param
        )
    try:
        image.seek(0)  # an animated WebP or APNG: the first frame
        image.load()
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as exc:
        raise InvalidImage(f"'{param}' is damaged or cut off: {_first_line(exc)}.", param) from None
    if ImageFile.LOAD_TRUNCATED_IMAGES:  # never set by the daemon; a truncated file must not pass as grey
        raise RuntimeError("PIL.ImageFile.LOAD_TRUNCATED_IMAGES is set; refusing to decode untrusted images")
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # a broken EXIF block: the pixels are still good
        oriented = image
    return _normalised(oriented)


def decode_image_base64(text: str, param: str = "image") -> Image.Image:
    """decode_image for a base64 string: raw, or a `data:image/...;base64,` URI (as
    AUTOMATIC1111 clients send either). Line breaks and missing padding are accepted."""
    if not isinstance(text, str):
        raise InvalidImage(f"'{param}' must be a base64 string or a data: URI.", param)
    text = text.strip()
    if text[:5].lower() == "data:":
        header, comma, text = text.partition(",")
        if not comma or ";base64" not in header.lower():
            raise InvalidImage(f"'{param}' must be a base64 data: URI (data:image/png;base64,...).", param)
    compact = "".join(text.split())
    if len(compact) > (MAX_INPUT_BYTES + 2) // 3 * 4:
        raise InvalidImage(f"'{param}' is larger than 25 MB; an input image may be at most 25 MB.", param)
    compact += "=" * (-len(compact) % 4)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidImage(f"'{param}' is not valid base64.", param) from None
    return decode_image(data, param)


def _normalised(image: Image.Image) -> Image.Image:
    """Palette, 1-bit, LA, CMYK, YCbCr... -> RGB, RGBA or L; 16-bit grey stays I;16 (a
    depth map's precision). Always a new image, detached from the file."""
    mode = image.mode
    if mode in ("RGB", "RGBA", "L"):
        return image.copy()
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        values = np.asarray(image).astype(np.int64).clip(0, 65535).astype("<u2")
        return Image.fromarray(values)  # little-endian uint16: "I;16"
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("LA", "La", "PA", "RGBa", "RGBX"):
        return image.convert("RGBA") if mode != "RGBX" else image.convert("RGB")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")  # CMYK, YCbCr, LAB, HSV


def _eight_bit(image: Image.Image) -> Image.Image:
    """I;16 -> L by scaling (Pillow's own convert clips at 255 instead)."""
    if image.mode != "I;16":
        return image
    values = np.asarray(image).astype(np.uint32)
    return Image.fromarray(((values * 255 + 32767) // 65535).astype(np.uint8), "L")


# ---- the internal forms -----------------------------------------------------------


def as_rgb(image: Image.Image) -> Image.Image:
    """The picture to start from: RGB, transparent parts over white."""
    image = _eight_bit(image)
    if image.mode == "RGBA":
        white = Image.new("RGB", image.size, (255, 255, 255))
        white.paste(image, mask=image.getchannel("A"))
        return white
    return image.convert("RGB") if image.mode != "RGB" else image


def mask_from_white(image: Image.Image, *, invert: bool = False) -> Image.Image:
    """A mask where white means repaint (/v1/jobs, AUTOMATIC1111). As AUTOMATIC1111 reads
    one: an RGBA mask whose alpha varies is its alpha (opaque = repaint), otherwise its
    brightness. `invert` is AUTOMATIC1111's `inpainting_mask_invert`."""
    image = _eight_bit(image)
    if image.mode == "RGBA" and image.getchannel("A").getextrema() != (255, 255):
        mask = image.getchannel("A")
    else:
        mask = image.convert("L")
    return ImageOps.invert(mask) if invert else mask


def mask_from_transparency(image: Image.Image) -> Image.Image | None:
    """OpenAI's rule: fully transparent pixels are the ones to repaint. None when the
    picture has no fully transparent pixel (then nothing is masked)."""
    if image.mode != "RGBA":
        return None
    alpha = np.asarray(image.getchannel("A"))
    repaint = alpha == 0
    if not repaint.any():
        return None
    return Image.fromarray(np.where(repaint, 255, 0).astype(np.uint8), "L")


def depth_from_image(image: Image.Image, param: str = "depth") -> Image.Image:
    """A depth map, white = near: grey (L, or I;16 kept at 16 bits); colour is read as
    brightness. A flat map (every pixel the same) has no layout to follow and is refused."""
    if image.mode not in ("L", "I;16"):
        image = image.convert("RGB").convert("L")
    low, high = image.getextrema()
    if low == high:
        raise InvalidImage(f"'{param}' is flat (every pixel is {low}): a depth map needs near and far parts.", param)
    return image


def depth_values(depth: Image.Image) -> np.ndarray:
    """The depth map as float32 in [0, 1], white (near) = 1."""
    values = np.asarray(depth).astype(np.float32)
    return values / (65535.0 if depth.mode == "I;16" else 255.0)


def feathered(mask: Image.Image, blur: int) -> Image.Image:
    """The mask with a soft seam: a Gaussian blur of `blur` pixels (AUTOMATIC1111's mask_blur)."""
    if blur <= 0:
        return mask
    return mask.filter(ImageFilter.GaussianBlur(blur))


# ---- one request's pictures -------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PictureInputs:
    """The pictures one job starts from, in the internal forms above. Build it with
    `picture_inputs` or `openai_edit_inputs`, not directly."""

    image: Image.Image | None = None
    mask: Image.Image | None = None
    depth: Image.Image | None = None
    strength: float | None = None  # None: the mode's default
    mask_blur: int = DEFAULT_MASK_BLUR
    resize_mode: int = RESIZE_STRETCH

    @property
    def mode(self) -> str:
        if self.depth is not None:
            return DEPTH
        if self.mask is not None:
            return INPAINT
        return IMG2IMG if self.image is not None else TEXT

    @property
    def resolved_strength(self) -> float | None:
        """The strength the job runs with (None for text)."""
        if self.mode == TEXT:
            return None
        return self.strength if self.strength is not None else DEFAULT_STRENGTH[self.mode]

    @property
    def frame(self) -> tuple[int, int] | None:
        """The size the inputs share before fitting: the image's, else the depth map's."""
        reference = self.image if self.image is not None else self.depth
        return reference.size if reference is not None else None

    def given(self) -> dict[str, Image.Image]:
        """{"image": ..., "mask": ..., "depth": ...}, only those given (what the store keeps)."""
        return {name: value for name, value in (("image", self.image), ("mask", self.mask), ("depth", self.depth)) if value is not None}


def picture_inputs(
    image: Image.Image | None = None,
    mask: Image.Image | None = None,
    depth: Image.Image | None = None,
    *,
    invert_mask: bool = False,
    strength: float | None = None,
    mask_blur: int | None = None,
    resize_mode: int = RESIZE_STRETCH,
) -> PictureInputs | None:
    """Decoded pictures from /v1/jobs or the AUTOMATIC1111 routes (mask: white = repaint)
    -> PictureInputs, or None when no picture was given (text to image).

    Raises PictureInputError: a mask without an image (param "mask"), a mask with a depth
    map, a strength outside (0, 1], a mask_blur outside 0..64, an unknown resize_mode;
    InvalidImage for a flat depth map."""
    if mask is not None and image is None:
        raise PictureInputError("'mask' needs an 'image' to repaint.", "mask")
    if mask is not None and depth is not None:
        raise PictureInputError("A job takes a 'mask' (inpaint) or a 'depth' map, not both.", "mask")
    if image is None and depth is None:
        return None
    return PictureInputs(
        image=as_rgb(image) if image is not None else None,
        mask=mask_from_white(mask, invert=invert_mask) if mask is not None else None,
        depth=depth_from_image(depth) if depth is not None else None,
        strength=check_strength(strength),
        mask_blur=check_mask_blur(mask_blur),
        resize_mode=check_resize_mode(resize_mode),
    )


def openai_edit_inputs(
    image: Image.Image,
    mask: Image.Image | None = None,
    *,
    strength: float | None = None,
    mask_blur: int | None = None,
) -> PictureInputs:
    """OpenAI `images.edit`: fully transparent pixels of the mask (or, without a mask, of
    the image itself) are repainted; with no transparency anywhere it is img2img. A mask
    without an alpha channel is read as white = repaint."""
    if mask is not None:
        repaint = mask_from_transparency(mask) if mask.mode == "RGBA" else mask_from_white(mask)
    else:
        repaint = mask_from_transparency(image)
    if repaint is not None and not np.asarray(repaint).any():
        repaint = None
    return PictureInputs(
        image=as_rgb(image),
        mask=repaint,
        strength=check_strength(strength),
        mask_blur=check_mask_blur(mask_blur),
    )


def check_strength(value: float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1:
        raise PictureInputError("'strength' must be a number above 0 and at most 1.", "strength")
    return float(value)


def check_mask_blur(value: int | None) -> int:
    if value is None:
        return DEFAULT_MASK_BLUR
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 <= value <= MAX_MASK_BLUR:
        raise PictureInputError(f"'mask_blur' must be from 0 to {MAX_MASK_BLUR} pixels.", "mask_blur")
    return int(round(value))


def check_resize_mode(value: int) -> int:
    if isinstance(value, bool) or value not in RESIZE_MODES:
        raise PictureInputError("'resize_mode' must be 0 (stretch), 1 (crop) or 2 (fill).", "resize_mode")
    return RESIZE_STRETCH if value == 3 else int(value)


# ---- sizes ------------------------------------------------------------------------


def size_for_input(input_size: tuple[int, int], native_size: tuple[int, int]) -> tuple[int, int]:
    """Without a requested size: the input's aspect at the model's native pixel count,
    each side a multiple of 8 (64 to 2048)."""
    width, height = input_size
    return size_for_aspect(width / height, native_size)


def fit_inputs(inputs: PictureInputs, size: tuple[int, int]) -> PictureInputs:
    """Every input at `size`. A mask or depth map of another size is first stretched
    onto the image's frame; then all are resized alike by `resize_mode` (0 stretch,
    1 crop, 2 fill), so they stay aligned. An input already at `size` is left untouched."""
    frame = inputs.frame
    if frame is None:
        return inputs
    mask, depth = inputs.mask, inputs.depth
    if mask is not None and mask.size != frame:
        mask = mask.resize(frame, Image.Resampling.BILINEAR)
    if depth is not None and depth.size != frame:
        depth = _resize_any(depth, frame, Image.Resampling.BILINEAR)

    def fit(picture: Image.Image | None, resample) -> Image.Image | None:
        if picture is None or picture.size == tuple(size):
            return picture
        return resize_like_a1111(picture, size, inputs.resize_mode, resample)

    return replace(
        inputs,
        image=fit(inputs.image, Image.Resampling.LANCZOS),
        mask=fit(mask, Image.Resampling.BILINEAR),
        depth=fit(depth, Image.Resampling.BILINEAR),
    )


def resize_like_a1111(image: Image.Image, size: tuple[int, int], resize_mode: int, resample=Image.Resampling.LANCZOS) -> Image.Image:
    """AUTOMATIC1111's resize modes: 0 stretch to size; 1 cover then crop the centre;
    2 fit inside, then fill the bars by stretching the picture's edge rows or columns."""
    width, height = size
    if resize_mode == RESIZE_STRETCH:
        return _resize_any(image, size, resample)
    ratio, source_ratio = width / height, image.width / image.height
    # Crop scales so the picture covers the target, fill so it fits inside it.
    by_width = (resize_mode == RESIZE_CROP) == (ratio > source_ratio)
    if by_width:
        scaled = (width, max(1, round(image.height * width / image.width)))
    else:
        scaled = (max(1, round(image.width * height / image.height)), height)
    resized = _resize_any(image, scaled, resample)
    left, top = (scaled[0] - width) // 2, (scaled[1] - height) // 2
    if resize_mode == RESIZE_CROP:
        return resized.crop((left, top, left + width, top + height))
    canvas = Image.new(resized.mode, size)
    x, y = -left, -top
    canvas.paste(resized, (x, y))
    if scaled[1] < height:  # bars above and below: stretch the first and last rows
        if y > 0:
            canvas.paste(resized.crop((0, 0, scaled[0], 1)).resize((width, y)), (0, 0))
        below = height - y - scaled[1]
        if below > 0:
            canvas.paste(resized.crop((0, scaled[1] - 1, scaled[0], scaled[1])).resize((width, below)), (0, y + scaled[1]))
    elif scaled[0] < width:  # bars left and right: stretch the first and last columns
        if x > 0:
            canvas.paste(resized.crop((0, 0, 1, scaled[1])).resize((x, height)), (0, 0))
        right = width - x - scaled[0]
        if right > 0:
            canvas.paste(resized.crop((scaled[0] - 1, 0, scaled[0], scaled[1])).resize((right, height)), (x + scaled[0], 0))
    return canvas


def _resize_any(image: Image.Image, size: tuple[int, int], resample) -> Image.Image:
    if image.mode == "I;16":  # Pillow resamples 16-bit grey only with nearest neighbour
        values = np.asarray(image).astype(np.float32)
        resized = Image.fromarray(values, "F").resize(size, resample)
        return Image.fromarray(np.asarray(resized).round().clip(0, 65535).astype("<u2"))
    return image.resize(size, resample)


def png_bytes(image: Image.Image) -> bytes:
    """An input as the PNG the job's history keeps (lossless; zlib level 1 for speed)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__).rstrip(".")
