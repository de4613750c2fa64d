"""Sizes: how big a plane must be to fill a camera's view, and what size to ask the model for.

Plain arithmetic on numbers Blender gives (a camera's view frame), so it is
testable without Blender.
"""

from .voicebrush_client import fit_generation_size

# A plane placed without a camera gets this longest side, in scene units.
PLANE_SIZE_WITHOUT_CAMERA = 2.0


def aspect(width, height):
    """Width over height of an image, 1.0 for an empty one."""
    return float(width) / float(height) if width > 0 and height > 0 else 1.0


def fit_inside(frame_width, frame_height, image_aspect):
    """The largest (width, height) of `image_aspect` that fits in the frame (the whole picture stays visible)."""
    if frame_width <= 0 or frame_height <= 0:
        raise ValueError("frame must have a positive size")
    if image_aspect >= frame_width / frame_height:
        return frame_width, frame_width / image_aspect
    return frame_height * image_aspect, frame_height


def frame_size_at_distance(view_frame, distance, orthographic=False):
    """(width, height) of a camera's view at `distance` in front of it.

    `view_frame` is Camera.view_frame(): four corners in camera space. A perspective
    frame lies at depth -z and widens linearly with distance; an orthographic one
    has the same size at every distance.
    """
    xs = [corner[0] for corner in view_frame]
    ys = [corner[1] for corner in view_frame]
    width, height = max(xs) - min(xs), max(ys) - min(ys)
    if orthographic:
        return width, height
    depth = abs(view_frame[0][2])
    if depth <= 0:
        raise ValueError("camera view frame has no depth")
    scale = float(distance) / depth
    return width * scale, height * scale


def plane_size_without_camera(image_aspect, longest_side=PLANE_SIZE_WITHOUT_CAMERA):
    """(width, height) of a free-standing plane."""
    if image_aspect >= 1.0:
        return longest_side, longest_side / image_aspect
    return longest_side * image_aspect, longest_side


def render_aspect(resolution_x, resolution_y, pixel_aspect_x=1.0, pixel_aspect_y=1.0):
    """The aspect of the rendered frame, pixel aspect included."""
    return aspect(resolution_x * pixel_aspect_x, resolution_y * pixel_aspect_y)


def generation_size_for_camera(frame_aspect, longest_side):
    """"WxH" to generate at the camera's aspect, the longer side `longest_side` pixels (multiples of 8)."""
    if frame_aspect >= 1.0:
        width, height = fit_generation_size(1000.0 * frame_aspect, 1000.0, max_side=longest_side)
    else:
        width, height = fit_generation_size(1000.0, 1000.0 / frame_aspect, max_side=longest_side)
    return "%dx%d" % (width, height)


def size_at_native_area(frame_aspect, native_width, native_height):
    """"WxH" at `frame_aspect` with about the model's native pixel count, multiples of 8 from
    64 to 2048: the size the daemon itself picks for an input of that aspect."""
    area = float(native_width) * float(native_height)
    width = (area * frame_aspect) ** 0.5
    height = width / frame_aspect

    def snap(side):
        return int(min(2048, max(64, round(side / 8.0) * 8)))

    return "%dx%d" % (snap(width), snap(height))
