"""Pictures a request brings in: decoding untrusted bytes, the one internal mask form,
and fitting inputs to the output size (imaging/inputs.py). Pure Pillow/numpy: no model."""

from __future__ import annotations

import base64
import io
import math
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from voicebrush_daemon.imaging import inputs
from voicebrush_daemon.imaging.inputs import (
    DEPTH,
    IMG2IMG,
    INPAINT,
    InvalidImage,
    PictureInputError,
    decode_image,
    decode_image_base64,
    depth_values,
    fit_inputs,
    mask_from_transparency,
    mask_from_white,
    openai_edit_inputs,
    picture_inputs,
    resize_like_a1111,
    size_for_input,
)


def encoded(image: Image.Image, format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def noise(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (height, width, channels) if channels else (height, width)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8), mode)


def png_chunk(tag: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)


def hand_made_png(width: int, height: int, bit_depth: int, color_type: int, rows: bytes) -> bytes:
    """A PNG written byte by byte (for layouts Pillow will not write, and for lying headers)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", zlib.compress(rows)) + png_chunk(b"IEND", b"")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image)


# ---- decoding: what is accepted ---------------------------------------------------


@pytest.mark.parametrize("format", ["PNG", "JPEG", "WEBP"])
def test_png_jpeg_and_webp_decode_to_rgb(format):
    original = noise(40, 24)
    decoded = decode_image(encoded(original, format, **({"quality": 95} if format != "PNG" else {})))
    assert decoded.mode == "RGB" and decoded.size == (40, 24)
    if format == "PNG":
        assert np.array_equal(pixels(decoded), pixels(original))


def test_a_1x1_image_decodes_and_fits_any_size():
    decoded = decode_image(encoded(Image.new("RGB", (1, 1), (10, 200, 30))))
    assert decoded.size == (1, 1)
    assert size_for_input(decoded.size, (768, 768)) == (768, 768)
    fitted = fit_inputs(picture_inputs(decoded), (64, 64))
    assert fitted.image.size == (64, 64) and fitted.image.getpixel((5, 5)) == (10, 200, 30)


def test_16_bit_grey_png_is_scaled_not_clipped():
    values = np.linspace(0, 65535, 64 * 8).astype(np.uint16).reshape(8, 64)
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    decoded = decode_image(hand_made_png(64, 8, 16, 0, rows), "depth")
    assert decoded.mode == "I;16"
    assert np.array_equal(pixels(decoded), values)
    # As a picture: 8 bits by scaling (Pillow's own convert("L") would clip at 255).
    grey = inputs.as_rgb(decoded).convert("L")
    assert grey.getextrema() == (0, 255)
    assert abs(int(pixels(grey)[0, 32]) - round(int(values[0, 32]) / 257)) <= 1


def test_16_bit_rgb_png_becomes_8_bit_rgb():
    values = np.zeros((4, 4, 3), dtype=np.uint16)
    values[..., 0] = 65535  # full red
    values[..., 2] = 32896  # half blue
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    decoded = inputs.as_rgb(decode_image(hand_made_png(4, 4, 16, 2, rows)))
    assert decoded.mode == "RGB"
    red, green, blue = decoded.getpixel((1, 1))
    assert red == 255 and green == 0 and abs(blue - 128) <= 1


def test_cmyk_jpeg_becomes_rgb():
    decoded = decode_image(encoded(Image.new("CMYK", (8, 8), (0, 255, 255, 0)), "JPEG", quality=100))
    assert decoded.mode == "RGB"
    red, green, blue = decoded.getpixel((4, 4))
    assert red > 200 and green < 60 and blue < 60


def test_palette_png_with_transparency_keeps_its_alpha():
    palette = Image.new("P", (6, 6), 1)
    palette.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette.putpixel((0, 0), 0)
    decoded = decode_image(encoded(palette, transparency=0))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0))[3] == 0 and decoded.getpixel((3, 3)) == (255, 0, 0, 255)
    # As a picture, transparency is flattened over white (AUTOMATIC1111's default).
    assert inputs.as_rgb(decoded).getpixel((0, 0)) == (255, 255, 255)


def test_grey_with_alpha_png_becomes_rgba():
    la = Image.merge("LA", (Image.new("L", (4, 4), 90), Image.new("L", (4, 4), 255)))
    decoded = decode_image(encoded(la))
    assert decoded.mode == "RGBA" and decoded.getpixel((0, 0)) == (90, 90, 90, 255)


def test_animated_webp_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    data = encoded(frames[0], "WEBP", save_all=True, append_images=frames[1:], duration=100, lossless=True)
    assert Image.open(io.BytesIO(data)).n_frames == 2
    decoded = decode_image(data)
    assert decoded.getpixel((8, 8)) == (255, 0, 0)


def test_exif_orientation_is_applied():
    picture = Image.new("RGB", (40, 20), (0, 0, 0))
    picture.paste((255, 255, 255), (0, 0, 10, 20))  # white on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display", as phones write
    decoded = decode_image(encoded(picture, "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.size == (20, 40)
    assert sum(decoded.getpixel((10, 5))) > 600  # the white stripe is now on top


def test_base64_raw_and_data_uri_both_decode():
    original = noise(12, 10)
    raw = base64.b64encode(encoded(original)).decode()
    for text in (raw, f"data:image/png;base64,{raw}", raw.rstrip("="), "\n".join(raw[i : i + 76] for i in range(0, len(raw), 76))):
        assert np.array_equal(pixels(decode_image_base64(text, "init_images")), pixels(original))


# ---- decoding: what is refused, with the field named ------------------------------


@pytest.mark.parametrize(
    "data,words",
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a PNG, JPEG or WebP"),
        (encoded(Image.new("RGB", (8, 8)), "GIF"), "not a PNG, JPEG or WebP"),
        (encoded(Image.new("RGB", (8, 8)), "BMP"), "not a PNG, JPEG or WebP"),
    ],
)
def test_bytes_that_are_not_an_allowed_image_name_the_field(data, words):
    with pytest.raises(InvalidImage) as caught:
        decode_image(data, "mask")
    assert caught.value.param == "mask" and caught.value.code == "invalid_image"
    assert words in str(caught.value) and "'mask'" in str(caught.value)


def test_a_truncated_png_is_refused():
    whole = encoded(noise(64, 64))
    with pytest.raises(InvalidImage, match="damaged or cut off") as caught:
        decode_image(whole[: len(whole) // 2], "image")
    assert caught.value.param == "image"
    assert not ImageFile.LOAD_TRUNCATED_IMAGES


@pytest.mark.parametrize("side", [4097, 8000, 30000])
def test_a_decompression_bomb_is_refused_before_decoding(monkeypatch, side):
    # The header declares side x side grey pixels; the data is a few hundred bytes.
    bomb = hand_made_png(side, side, 8, 0, b"\x00" * (side + 1) * 4)
    assert len(bomb) < 1000
    decoded_any = []
    real_load = ImageFile.ImageFile.load
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: decoded_any.append(1) or real_load(self))
    with pytest.raises(InvalidImage, match="4096x4096") as caught:
        decode_image(bomb, "image")
    assert caught.value.param == "image"
    assert decoded_any == []  # refused on the header alone


def test_the_largest_allowed_side_passes_the_header_check():
    # 4096 x 1: exactly at the limit.
    assert decode_image(encoded(Image.new("L", (4096, 1), 7))).size == (4096, 1)


def test_more_than_25_mb_is_refused_unread():
    with pytest.raises(InvalidImage, match="25 MB"):
        decode_image(b"\x89PNG" + b"\x00" * (25 * 1024 * 1024))
    with pytest.raises(InvalidImage, match="25 MB"):
        decode_image_base64("A" * (34 * 1024 * 1024), "init_images")


@pytest.mark.parametrize("text", ["not base64 at all!", "data:image/png,rawbytes", "data:image/png;base64"])
def test_bad_base64_is_refused(text):
    with pytest.raises(InvalidImage) as caught:
        decode_image_base64(text, "init_images")
    assert caught.value.param == "init_images"


# ---- masks: one internal form (white = repaint) ------------------------------------


def test_white_means_repaint_and_invert_flips_it():
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 0, 4, 8))
    assert pixels(mask_from_white(mask))[0, 0] == 255
    assert pixels(mask_from_white(mask, invert=True))[0, 0] == 0
    assert pixels(mask_from_white(mask.convert("RGB")))[0, 7] == 0


def test_an_rgba_mask_with_varying_alpha_is_read_by_its_alpha_as_automatic1111_does():
    mask = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    mask.paste((0, 0, 0, 255), (0, 0, 4, 8))  # black but opaque: repaint
    read = pixels(mask_from_white(mask))
    assert read[0, 0] == 255 and read[0, 7] == 0


def test_openai_transparent_pixels_of_the_mask_are_repainted():
    mask = Image.new("RGBA", (8, 8), (255, 255, 255, 255))
    mask.paste((0, 0, 0, 0), (4, 0, 8, 8))  # fully transparent right half
    mask.putpixel((0, 0), (0, 0, 0, 128))  # half transparent is kept, as in OpenAI's API
    picture = openai_edit_inputs(noise(8, 8), mask)
    assert picture.mode == INPAINT
    read = pixels(picture.mask)
    assert read[:, 4:].min() == 255 and read[:, :4].max() == 0


def test_openai_without_a_mask_uses_the_images_own_alpha():
    image = noise(8, 8, mode="RGBA").copy()
    image.putalpha(255)
    assert openai_edit_inputs(image).mode == IMG2IMG  # no transparency: img2img
    image.paste((0, 0, 0, 0), (0, 0, 2, 2))
    picture = openai_edit_inputs(image)
    assert picture.mode == INPAINT and pixels(picture.mask)[0, 0] == 255 and pixels(picture.mask)[5, 5] == 0
    assert picture.image.mode == "RGB"


def test_an_openai_mask_without_alpha_is_read_as_white_repaint():
    mask = Image.new("L", (8, 8), 0)
    mask.paste(255, (0, 0, 8, 2))
    assert pixels(openai_edit_inputs(noise(8, 8), mask).mask)[0, 0] == 255


def test_mask_without_transparency_is_none():
    assert mask_from_transparency(Image.new("RGBA", (4, 4), (0, 0, 0, 255))) is None
    assert mask_from_transparency(Image.new("RGB", (4, 4))) is None


# ---- one request's pictures: modes, defaults, refusals -----------------------------


def test_the_mode_follows_the_inputs_and_strength_defaults_to_the_contracts():
    image, mask, depth = noise(16, 16), Image.new("L", (16, 16), 255), Image.linear_gradient("L").resize((16, 16))
    assert picture_inputs() is None
    assert (picture_inputs(image).mode, picture_inputs(image).resolved_strength) == (IMG2IMG, 0.75)
    assert (picture_inputs(image, mask).mode, picture_inputs(image, mask).resolved_strength) == (INPAINT, 1.0)
    assert (picture_inputs(depth=depth).mode, picture_inputs(depth=depth).resolved_strength) == (DEPTH, 1.0)
    assert picture_inputs(image, depth=depth).mode == DEPTH
    assert picture_inputs(image, strength=0.3).resolved_strength == 0.3
    assert set(picture_inputs(image, mask).given()) == {"image", "mask"}


def test_a_mask_without_an_image_is_an_invalid_value_naming_mask():
    with pytest.raises(PictureInputError) as caught:
        picture_inputs(mask=Image.new("L", (8, 8), 255))
    assert (caught.value.code, caught.value.param) == ("invalid_value", "mask")


@pytest.mark.parametrize("strength", [0, 0.0, -0.1, 1.01, 2, math.nan, math.inf, True, "0.5"])
def test_strength_must_be_above_0_and_at_most_1(strength):
    with pytest.raises(PictureInputError) as caught:
        picture_inputs(noise(8, 8), strength=strength)
    assert (caught.value.code, caught.value.param) == ("invalid_value", "strength")


def test_mask_blur_and_resize_mode_are_checked():
    with pytest.raises(PictureInputError) as caught:
        picture_inputs(noise(8, 8), Image.new("L", (8, 8)), mask_blur=65)
    assert caught.value.param == "mask_blur"
    with pytest.raises(PictureInputError) as caught:
        picture_inputs(noise(8, 8), resize_mode=7)
    assert caught.value.param == "resize_mode"
    assert picture_inputs(noise(8, 8), resize_mode=3).resize_mode == 0  # A1111's latent upscale: a stretch here


def test_a_flat_depth_map_is_refused_and_a_16_bit_one_keeps_its_precision():
    with pytest.raises(InvalidImage, match="flat") as caught:
        picture_inputs(depth=Image.new("L", (8, 8), 40))
    assert caught.value.param == "depth"
    values = np.array([[0, 1, 2, 65535]], dtype=np.uint16)
    depth = picture_inputs(depth=Image.fromarray(values)).depth
    assert depth.mode == "I;16"
    assert np.allclose(depth_values(depth), values / 65535.0)


def test_a_mask_and_a_depth_map_together_are_refused():
    with pytest.raises(PictureInputError) as caught:
        picture_inputs(noise(8, 8), Image.new("L", (8, 8), 255), Image.linear_gradient("L").resize((8, 8)))
    assert caught.value.param == "mask"


# ---- sizes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "input_size,native,expected",
    [((1920, 1080), (768, 768), (1024, 576)), ((1000, 1000), (768, 768), (768, 768)), ((600, 800), (512, 512), (440, 592)), ((4096, 1), (768, 768), (2048, 64))],
)
def test_without_a_size_the_inputs_aspect_at_the_native_area_in_multiples_of_8(input_size, native, expected):
    width, height = size_for_input(input_size, native)
    assert (width, height) == expected and width % 8 == 0 and height % 8 == 0


def test_a_mask_and_depth_of_other_sizes_are_resized_to_the_images_then_all_fit_alike():
    image = noise(200, 100)
    mask = Image.new("L", (50, 25), 0)
    mask.paste(255, (0, 0, 25, 25))  # the left half, at a quarter of the size
    fitted = fit_inputs(picture_inputs(image, mask), (128, 64))
    assert fitted.image.size == fitted.mask.size == (128, 64)
    read = pixels(fitted.mask)
    assert read[32, 10] == 255 and read[32, 118] == 0
    depth = Image.linear_gradient("L").resize((30, 30))
    fitted = fit_inputs(picture_inputs(image, depth=depth), (128, 64))
    assert fitted.depth.size == (128, 64)


def test_inputs_already_at_the_size_are_not_resampled():
    image, mask = noise(64, 48), Image.new("L", (64, 48), 255)
    picture = picture_inputs(image, mask)
    fitted = fit_inputs(picture, (64, 48))
    assert fitted.image is picture.image and fitted.mask is picture.mask


def test_resize_modes_stretch_crop_and_fill_as_automatic1111():
    wide = Image.new("RGB", (100, 50), (255, 0, 0))
    wide.paste((0, 0, 255), (0, 0, 10, 50))  # a blue stripe on the left edge
    stretched = resize_like_a1111(wide, (64, 64), 0)
    cropped = resize_like_a1111(wide, (64, 64), 1)
    filled = resize_like_a1111(wide, (64, 64), 2)
    assert stretched.size == cropped.size == filled.size == (64, 64)
    assert stretched.getpixel((1, 32)) == (0, 0, 255)  # squeezed, stripe kept
    assert cropped.getpixel((1, 32)) == (255, 0, 0)  # the centre kept, the stripe cut off
    # Fill: the picture fits inside (64x32 in the middle); the bars repeat its edge rows.
    assert filled.getpixel((1, 32)) == (0, 0, 255) and filled.getpixel((40, 2)) == filled.getpixel((40, 17))
