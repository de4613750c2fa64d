"""What the active camera sees, as the pictures a generation starts from: its depth and its render.

Both are taken on the main thread (bpy is not thread-safe) before the request goes to
the daemon, at the generation size, from the scene's active camera.

Depth is measured by casting rays into one BVH tree of the evaluated depsgraph's
triangles: it sees modifiers and instances as the camera does, looks through what the
render hides, needs no render engine and no GPU, and touches no scene setting.
Measured in the bpy module against Cycles' Z pass (compositor File Output to EXR): the
same planar depths to 5e-6 m (median), 0.07 s for 256x144 rays (0.24 s with 400 objects;
Scene.ray_cast, which visits every object per ray, took 4.7 s there), against 0.12 s for
a 1-sample Cycles render whose setup grows with the scene's materials and textures
(Workbench: 0.35 s; EEVEE cannot compile its shaders headless in reasonable time here: 161 s).
"""

import os
import tempfile

import bpy
import numpy as np
from mathutils import Vector
from mathutils.bvhtree import BVHTree

from . import depthmap

# Object types whose surfaces a render draws and that convert to a mesh.
GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "FONT", "META"}

RENDER_ENGINES = (
    ("AUTO", "Automatic", "The scene's own engine; in background mode Workbench instead of EEVEE, which needs "
     "a GPU (without one a headless EEVEE render took minutes here)"),
    ("SCENE", "Scene's Engine", "Render with the scene's own render engine and settings"),
    ("WORKBENCH", "Workbench", "A fast Workbench render (solid shading), whatever the scene's engine"),
)


class CaptureError(Exception):
    """The camera's view could not be captured; str() says what to do."""


def active_camera(context):
    camera = context.scene.camera
    return camera if camera is not None and camera.type == "CAMERA" else None


def render_aspect(scene):
    """Width over height of the rendered frame, pixel aspect included."""
    render = scene.render
    return (render.resolution_x * render.pixel_aspect_x) / float(render.resolution_y * render.pixel_aspect_y)


# -- depth ----------------------------------------------------------------------


def camera_depths(context, columns, rows):
    """Planar depths (rows, columns), row 0 at the top, seen from the active camera; inf where
    nothing is hit within the camera's clipping range."""
    scene = context.scene
    camera = active_camera(context)
    if camera is None:
        raise CaptureError("Depth from the camera needs an active camera.")
    if camera.data.type == "PANO":
        raise CaptureError("Depth from the camera needs a perspective or orthographic camera, not a panoramic one.")
    depsgraph = context.evaluated_depsgraph_get()
    evaluated = camera.evaluated_get(depsgraph)
    data = evaluated.data
    orthographic = data.type == "ORTHO"
    frame = [tuple(corner) for corner in data.view_frame(scene=scene)]
    origins, directions = depthmap.camera_rays(frame, columns, rows, orthographic)

    # Camera space to world: the camera's rotation and position (its scale does not change what it sees).
    location, rotation, _ = evaluated.matrix_world.decompose()
    rotation = np.array(rotation.to_matrix(), dtype=np.float64)
    position = np.array(location, dtype=np.float64)
    # Renders clip on planes along the view axis: a ray runs from the near plane to the far one.
    along_axis = -directions[..., 2]
    start = data.clip_start / along_axis
    length = (data.clip_end - data.clip_start) / along_axis
    world_origins = (origins + directions * start[..., None]) @ rotation.T + position
    world_directions = directions @ rotation.T
    forward = rotation @ np.array((0.0, 0.0, -1.0))
    camera_plane = float(np.dot(forward, position))
    forward = Vector(forward.tolist())

    tree = _scene_tree(scene, depsgraph)
    depths = np.full(rows * columns, np.inf)
    if tree is None:
        return depths.reshape(rows, columns)
    ray_cast = tree.ray_cast
    rays = zip(world_origins.reshape(-1, 3).tolist(), world_directions.reshape(-1, 3).tolist(), length.reshape(-1).tolist())
    for index, (origin, direction, limit) in enumerate(rays):
        point = ray_cast(origin, direction, limit)[0]
        if point is not None:
            depths[index] = point.dot(forward) - camera_plane
    return depths.reshape(rows, columns)


def depth_picture(context, width, height):
    """The depth input: PNG bytes at width x height, white near, black far and background."""
    columns, rows = depthmap.sample_grid(width, height)
    return depthmap.depth_png(camera_depths(context, columns, rows), width, height)


def _scene_tree(scene, depsgraph):
    """One BVH tree of every triangle the render would draw, in world space, or None if there are none.

    Built from the evaluated depsgraph's object instances, so modifiers, geometry-node and
    collection instances are there as the camera sees them. One tree: Scene.ray_cast looks
    at every object for every ray, which measured 4.7 s for 256x144 rays in a scene of 400 cubes.
    """
    hidden = _hidden_in_render(scene)
    chunks, triangles, offset = [], [], 0
    for instance in depsgraph.object_instances:
        obj = instance.object
        if obj.type not in GEOMETRY_TYPES or _original_name(obj) in hidden:
            continue
        if instance.is_instance and instance.parent is not None and _original_name(instance.parent) in hidden:
            continue
        matrix = np.array(instance.matrix_world, dtype=np.float64)
        mesh = obj.data if obj.type == "MESH" else obj.to_mesh()
        try:
            if mesh is None or not len(mesh.loop_triangles):
                continue
            points = np.empty(len(mesh.vertices) * 3, dtype=np.float64)
            mesh.vertices.foreach_get("co", points)
            corners = np.empty(len(mesh.loop_triangles) * 3, dtype=np.int64)
            mesh.loop_triangles.foreach_get("vertices", corners)
        finally:
            if obj.type != "MESH":
                obj.to_mesh_clear()
        points = points.reshape(-1, 3) @ matrix[:3, :3].T + matrix[:3, 3]
        chunks.append(points)
        triangles.append(corners.reshape(-1, 3) + offset)
        offset += len(points)
    if not chunks:
        return None
    return BVHTree.FromPolygons(np.concatenate(chunks).tolist(), np.concatenate(triangles).tolist(),
                                all_triangles=True)


def _original_name(obj):
    return getattr(obj, "original", obj).name


def _hidden_in_render(scene):
    """Names of the objects the viewport depsgraph holds but the render leaves out."""
    hidden = set()
    for obj in scene.objects:
        collections = obj.users_collection
        if obj.hide_render or (collections and all(collection.hide_render for collection in collections)):
            hidden.add(obj.name)
    return hidden


# -- render ---------------------------------------------------------------------


def render_picture(context, width, height, engine="AUTO"):
    """The active camera's render as PNG bytes (RGB) at width x height.

    The scene's render settings are changed for the render only and restored after,
    whatever happens: size, engine, the output format, and the sequencer (whose
    strips would otherwise render instead of the scene).
    """
    scene = context.scene
    if active_camera(context) is None:
        raise CaptureError("Starting from the render needs an active camera.")
    render = scene.render
    settings = render.image_settings
    saved = _save(render, ("resolution_x", "resolution_y", "resolution_percentage", "pixel_aspect_x",
                           "pixel_aspect_y", "use_border", "use_sequencer", "engine"))
    saved_format = _save(settings, ("media_type", "file_format", "color_mode", "color_depth", "compression"))
    had_result = "Render Result" in bpy.data.images
    handle, path = tempfile.mkstemp(prefix="voicebrush-render-", suffix=".png")
    os.close(handle)
    try:
        # Square pixels at the frame's own aspect: the camera frames exactly what it frames now.
        render.resolution_x, render.resolution_y, render.resolution_percentage = width, height, 100
        render.pixel_aspect_x = render.pixel_aspect_y = 1.0
        render.use_border = False
        render.use_sequencer = False
        if engine_for(render.engine, engine, bpy.app.background) == "BLENDER_WORKBENCH":
            render.engine = "BLENDER_WORKBENCH"
        settings.media_type = "IMAGE"
        settings.file_format = "PNG"
        settings.color_mode = "RGB"
        settings.color_depth = "8"
        settings.compression = 15
        try:
            bpy.ops.render.render()
        except RuntimeError as exc:
            raise CaptureError("The render failed: %s" % str(exc).replace("Error: ", "", 1).strip())
        result = bpy.data.images.get("Render Result")
        if result is None:
            raise CaptureError("The render produced no picture.")
        result.save_render(path, scene=scene)
        with open(path, "rb") as stream:
            png = stream.read()
        if not png.startswith(b"\x89PNG"):
            raise CaptureError("The render could not be saved as PNG.")
        return png
    finally:
        _restore(settings, saved_format)
        _restore(render, saved)
        if not had_result and "Render Result" in bpy.data.images:
            bpy.data.images.remove(bpy.data.images["Render Result"])  # the artist never rendered: leave none
        try:
            os.remove(path)
        except OSError:
            pass


def engine_for(scene_engine, choice, background):
    """The render engine a Render source uses: `choice` is AUTO, SCENE or WORKBENCH.

    AUTO keeps the scene's engine, except EEVEE in background mode: it renders on the GPU,
    and headless without one (the bpy module here, on Mesa's software OpenGL) a 128x72 EEVEE
    render took 119 s, then 71 s; Workbench took 0.06 s."""
    if choice == "WORKBENCH" or (choice == "AUTO" and background and scene_engine.startswith("BLENDER_EEVEE")):
        return "BLENDER_WORKBENCH"
    return scene_engine


def _save(struct, names):
    return [(name, getattr(struct, name)) for name in names]


def _restore(struct, saved):
    for name, value in saved:
        try:
            setattr(struct, name, value)
        except (TypeError, AttributeError, ValueError):
            pass  # e.g. a format the media type just reset: the rest must still come back
