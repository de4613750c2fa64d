"""The depth picture's arithmetic (camera rays, normalisation, resizing, PNG), without Blender."""

import math
import struct
import zlib

import numpy as np
import pytest

from test_blender_logic import load

depthmap, framing, jobs = load("depthmap"), load("framing"), load("jobs")

# The factory camera's view frame (50 mm lens, 36 mm sensor, 16:9), camera space: tr, br, bl, tl.
FRAME = [(0.36, 0.2025, -1.0), (0.36, -0.2025, -1.0), (-0.36, -0.2025, -1.0), (-0.36, 0.2025, -1.0)]


def decode_grey_png(png):
    """(width, height, rows) of an 8-bit greyscale PNG without filters, as encode_png writes it."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, {}
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        data = png[position + 8:position + 8 + length]
        crc = struct.unpack(">I", png[position + 8 + length:position + 12 + length])[0]
        assert crc == zlib.crc32(kind + data) & 0xFFFFFFFF
        chunks.setdefault(kind, b"")
        chunks[kind] += data
        position += 12 + length
    width, height, depth, colour, _, _, _ = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert (depth, colour) == (8, 0)
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), dtype=np.uint8).reshape(height, width + 1)
    assert not raw[:, 0].any()
    return width, height, raw[:, 1:]


def test_sample_grid_caps_the_longer_side_and_keeps_the_aspect():
    assert depthmap.sample_grid(256, 144) == (256, 144)
    assert depthmap.sample_grid(1024, 576) == (512, 288)
    assert depthmap.sample_grid(432, 768, max_samples=384) == (216, 384)
    with pytest.raises(ValueError):
        depthmap.sample_grid(0, 10)


def test_perspective_rays_go_through_the_pixel_centres_top_row_first():
    origins, directions = depthmap.camera_rays(FRAME, 4, 2)
    assert origins.shape == directions.shape == (2, 4, 3)
    assert not origins.any()
    assert np.linalg.norm(directions, axis=-1) == pytest.approx(np.ones((2, 4)))
    # Top-left pixel centre: an eighth in from the left, a quarter down from the top.
    expected = np.array((-0.36 + 0.72 / 8, 0.2025 - 0.405 / 4, -1.0))
    assert directions[0, 0] == pytest.approx(expected / np.linalg.norm(expected))
    assert directions[0, 0, 1] > 0 > directions[1, 0, 1]  # row 0 looks up
    assert directions[0, 0, 0] < 0 < directions[0, 3, 0]


def test_orthographic_rays_are_parallel_and_start_on_the_camera_plane():
    origins, directions = depthmap.camera_rays(FRAME, 2, 2, orthographic=True)
    assert (directions == np.array((0.0, 0.0, -1.0))).all()
    assert (origins[..., 2] == 0).all()
    assert origins[0, 0, :2] == pytest.approx((-0.18, 0.10125))


def test_nearest_surface_is_white_background_black_disparity_between():
    depths = np.array([[2.0, 4.0, math.inf], [8.0, np.nan, 2.0]])
    grey = depthmap.normalise(depths)
    assert grey.dtype == np.uint8
    # Disparity stretched from the background (0) to the nearest surface (1/2).
    assert grey.tolist() == [[255, 128, 0], [64, 0, 255]]


def test_without_background_the_farthest_surface_is_black():
    grey = depthmap.normalise(np.array([[1.0, 2.0], [4.0, 4.0]]))
    assert grey[0, 0] == 255 and grey[1, 0] == grey[1, 1] == 0
    assert 0 < grey[0, 1] < 255


def test_degenerate_depths():
    assert (depthmap.normalise(np.full((2, 3), 5.0)) == 255).all()  # one flat wall: all near
    assert (depthmap.normalise(np.array([[40.0, 40.000006], [40.00001, 40.0]])) == 255).all()  # float noise is no relief
    assert not depthmap.normalise(np.full((2, 3), np.inf)).any()  # nothing in view: all far
    assert not depthmap.normalise(np.array([[0.0, -1.0]])).any()  # behind or at the camera: nothing hit


def test_resize_is_bilinear_and_exact_at_the_same_size():
    grey = np.array([[0, 255], [255, 0]], dtype=np.uint8)
    assert (depthmap.resize(grey, 2, 2) == grey).all()
    big = depthmap.resize(grey, 4, 4)
    assert big.shape == (4, 4)
    assert big[0, 0] == 0 and big[0, 3] == 255 and big[3, 0] == 255
    # Sample centres aligned: pixel (1, 1) lies a quarter of the way from source pixel (0, 0) to (1, 1).
    assert (big[1, 1], big[1, 2]) == (96, 159)
    assert depthmap.resize(np.array([[7]], dtype=np.uint8), 3, 2).tolist() == [[7, 7, 7], [7, 7, 7]]


def test_png_round_trips():
    grey = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    width, height, rows = decode_grey_png(depthmap.encode_png(grey))
    assert (width, height) == (4, 3)
    assert (rows == grey).all()


def test_depth_png_is_at_the_generation_size():
    depths = np.full((9, 16), 10.0)
    depths[:, :4] = 2.0
    width, height, rows = decode_grey_png(depthmap.depth_png(depths, 64, 36))
    assert (width, height) == (64, 36)
    assert rows[:, :12].min() == 255 and rows[:, 20:].max() == 0


def test_size_at_native_area_matches_the_daemon_rule():
    assert framing.size_at_native_area(16 / 9, 256, 256) == "344x192"
    assert framing.size_at_native_area(1.0, 768, 768) == "768x768"
    assert framing.size_at_native_area(9 / 16, 512, 512) == "384x680"


def test_sources_send_their_pictures_and_strength():
    depth = jobs.GenerationRequest(prompt="street", source="DEPTH", depth=b"png", strength=0.3)
    assert depth.pictures() == {"depth": b"png"} and "strength" not in depth.options()
    render = jobs.GenerationRequest(prompt="street", source="RENDER", image=b"png", strength=0.4)
    assert render.pictures() == {"image": b"png"} and render.options()["strength"] == 0.4
    assert jobs.GenerationRequest(prompt="street").pictures() == {}
    with pytest.raises(jobs.VoicebrushError, match="Strength"):
        jobs.GenerationRequest(prompt="street", source="RENDER", strength=0.0).check()


def test_images_carry_source_strength_and_mode():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x00\x90" + b"\x00" * 20
    record = {"id": "j1", "prompt": "a street", "seed": 1, "steps": 4, "mode": "img2img", "strength": 0.4}
    image, = jobs.images_from_job(record, [png], source="RENDER")
    assert (image.properties["source"], image.properties["strength"], image.properties["mode"]) == ("RENDER", 0.4, "img2img")
    plain, = jobs.images_from_job({"id": "j2", "prompt": "a fox", "seed": 1}, [png])
    assert (plain.properties["source"], plain.properties["strength"], plain.properties["mode"]) == ("PROMPT", 1.0, "text")
