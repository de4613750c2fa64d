"""The depth picture the daemon's depth mode wants, from depths measured in the scene.

No bpy here: camera rays, normalisation, resizing and PNG encoding are plain
numpy (Blender ships it), so they are tested without Blender.

The convention (the contract's `depth` input): white is near, black is far, and
the empty background counts as far. Values are inverse depth (disparity)
stretched so the nearest surface is 1 and the background 0: that is what the
depth estimator SD2-depth was trained on gives (MiDaS: relative inverse depth,
min-max normalised per picture), so a scene's map looks like what the model knows.
"""

import struct
import zlib

import numpy as np

# Depth is measured on a grid at most this long on its longer side, then resized to the
# generation size: SD2-depth's UNet sees the map at 1/8 of the picture (96x54 for 768x432),
# so 512 samples across is still 5x finer than what reaches the model, and it bounds the
# ray casts (0.7 s at 512x288 on two loaded cores).
MAX_SAMPLES = 512

# Depths that differ by less than this fraction are one flat surface: stretching float noise
# in the hit points to full contrast would draw relief that is not there.
FLAT = 1e-3


def sample_grid(width, height, max_samples=MAX_SAMPLES):
    """(columns, rows) of the grid to measure for a picture of width x height."""
    if width <= 0 or height <= 0:
        raise ValueError("the picture must have a size")
    scale = min(1.0, float(max_samples) / max(width, height))
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def camera_rays(view_frame, columns, rows, orthographic=False):
    """Ray origins and directions, in camera space, through the centres of a grid over the frame.

    `view_frame` is Camera.view_frame(): the corners top right, bottom right, bottom left,
    top left, in camera space (the camera looks down -Z). Row 0 is the top of the picture.
    Returns (origins, directions), each (rows, columns, 3). Perspective rays start at the
    camera and are unit length; orthographic ones start on the frame's plane moved back
    to the camera (z = 0) and all point down -Z.
    """
    top_right, bottom_right, bottom_left, top_left = (np.asarray(corner, dtype=np.float64) for corner in view_frame)
    u = (np.arange(columns) + 0.5) / columns  # left to right
    v = (np.arange(rows) + 0.5) / rows  # top to bottom
    top = top_left[None, :] + (top_right - top_left)[None, :] * u[:, None]
    bottom = bottom_left[None, :] + (bottom_right - bottom_left)[None, :] * u[:, None]
    points = top[None, :, :] + (bottom - top)[None, :, :] * v[:, None, None]
    if orthographic:
        origins = points.copy()
        origins[..., 2] = 0.0
        directions = np.zeros_like(points)
        directions[..., 2] = -1.0
        return origins, directions
    origins = np.zeros_like(points)
    directions = points / np.linalg.norm(points, axis=-1, keepdims=True)
    return origins, directions


def normalise(depths):
    """8-bit grey (rows, columns) from planar depths: nearest surface 255, background 0.

    `depths` holds distances along the camera's view axis; inf or NaN (or anything not
    above 0) where a ray hit nothing. Surfaces get their disparity (1 / depth) stretched
    between the background (disparity 0) and the nearest surface; without any background
    in view, between the farthest and the nearest surface, as the estimator's min-max would.
    """
    depths = np.asarray(depths, dtype=np.float64)
    hit = np.isfinite(depths) & (depths > 0)
    grey = np.zeros(depths.shape, dtype=np.float64)
    if not hit.any():
        return grey.astype(np.uint8)
    disparity = np.zeros(depths.shape, dtype=np.float64)
    disparity[hit] = 1.0 / depths[hit]
    nearest = disparity[hit].max()
    floor = 0.0 if not hit.all() else disparity[hit].min()
    if nearest - floor <= nearest * FLAT:  # one flat surface filling the view
        grey[hit] = 1.0
    else:
        grey[hit] = (disparity[hit] - floor) / (nearest - floor)
    return np.clip(np.round(grey * 255.0), 0, 255).astype(np.uint8)


def resize(grey, width, height):
    """A (rows, columns) uint8 picture resized to (height, width) by bilinear interpolation,
    sample centres aligned (as image resizers do)."""
    grey = np.asarray(grey)
    rows, columns = grey.shape
    if (columns, rows) == (width, height):
        return grey.copy()

    def axis(source, target):
        position = np.clip((np.arange(target) + 0.5) * source / float(target) - 0.5, 0, source - 1)
        low = np.floor(position).astype(int)
        high = np.minimum(low + 1, source - 1)
        return low, high, position - low

    y0, y1, fy = axis(rows, height)
    x0, x1, fx = axis(columns, width)
    values = grey.astype(np.float64)
    top = values[y0][:, x0] * (1 - fx) + values[y0][:, x1] * fx
    bottom = values[y1][:, x0] * (1 - fx) + values[y1][:, x1] * fx
    out = top * (1 - fy)[:, None] + bottom * fy[:, None]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def encode_png(grey):
    """PNG bytes (8-bit greyscale) of a (rows, columns) uint8 array, row 0 at the top."""
    grey = np.ascontiguousarray(np.asarray(grey, dtype=np.uint8))
    rows, columns = grey.shape
    # Filter type 0 (none) before each row.
    raw = np.zeros((rows, columns + 1), dtype=np.uint8)
    raw[:, 1:] = grey

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", columns, rows, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw.tobytes(), 6))
            + chunk(b"IEND", b""))


def depth_png(depths, width, height):
    """The daemon's depth input: measured planar depths -> normalised grey PNG at width x height."""
    return encode_png(resize(normalise(depths), width, height))
