"""Where a generated picture goes in the scene: the only module that builds datablocks.

Each function makes its changes through bpy.data, so the operator that calls it
records them in one undo step.
"""

import math

import bpy
from mathutils import Euler, Matrix, Quaternion, Vector

from . import framing, materials, projection

PLACEMENTS = (
    ("REFERENCE", "Reference", "An image empty facing the view", "IMAGE_REFERENCE", 0),
    ("PLANE", "Plane", "An image-textured plane filling the active camera's view", "MESH_PLANE", 1),
    ("CAMERA_BACKGROUND", "Camera Background", "A background image on the active camera", "VIEW_CAMERA", 2),
    ("PROJECT", "Project", "Projected from the active camera onto the selected mesh objects (UV Project modifier)",
     "MOD_UVPROJECT", 3),
)

# Blender's Front view (numpad 1): an upright picture facing -Y. What "the view" is in
# background mode when the scene has no camera.
DEFAULT_VIEW_ROTATION = Euler((math.pi / 2.0, 0.0, 0.0)).to_quaternion()

# Blender's own size for a new reference image empty.
REFERENCE_SIZE = 5.0

NO_CAMERA_MESSAGE = ("A camera background needs an active camera: add a camera, "
                     "or make one the scene's camera (Scene properties > Camera).")


class PlacementError(Exception):
    """The picture cannot go where the artist asked; str() says what to do."""


def check_possible(context, placement, targets=()):
    """Raise PlacementError before any generation when the placement cannot work.
    `targets`: the names of the objects PROJECT projects onto."""
    if placement == "CAMERA_BACKGROUND" and _scene_camera(context) is None:
        raise PlacementError(NO_CAMERA_MESSAGE)
    if placement == "PROJECT":
        try:
            projection.check_possible(_scene_camera(context), targets)
        except projection.ProjectionError as exc:
            raise PlacementError(str(exc))


def view_of(context):
    """(rotation, location) of the 3D view the operator was started from, or None outside one.

    Taken at invoke time: by the time a generation ends, the context may be another area.
    """
    space = getattr(context, "space_data", None)
    region_3d = getattr(space, "region_3d", None) if space is not None and space.type == "VIEW_3D" else None
    if region_3d is None:
        return None
    return region_3d.view_rotation.copy(), context.scene.cursor.location.copy()


def add_image(generated):
    """A packed image datablock from a GeneratedImage, named from its prompt, with its custom properties."""
    image = bpy.data.images.new(generated.name, generated.width, generated.height, alpha=True)
    image.pack(data=generated.png, data_len=len(generated.png))
    image.source = "FILE"
    # Where "Unpack" would write it: beside the .blend, never a temporary path.
    image.filepath_raw = "//voicebrush/%s.png" % _file_safe(image.name)
    image.file_format = "PNG"
    _set_properties(image, generated.properties)
    return image


def place(context, placement, image, properties, view=None, plane_distance=10.0, targets=()):
    """Put `image` in the scene as `placement`; returns the object that now shows it
    (for PROJECT, the first of the `targets` it is projected onto)."""
    if placement == "REFERENCE":
        return add_reference(context, image, properties, view)
    if placement == "PLANE":
        return add_plane(context, image, properties, plane_distance, view)
    if placement == "CAMERA_BACKGROUND":
        return add_camera_background(context, image)
    if placement == "PROJECT":
        try:
            objects, material = projection.project(context, image, _scene_camera(context), targets)
        except projection.ProjectionError as exc:
            raise PlacementError(str(exc))
        _set_properties(material, properties)
        return objects[0]
    raise PlacementError("Unknown placement %r." % placement)


def add_reference(context, image, properties, view=None):
    """An image empty at the 3D cursor facing the view; without a view, facing the active camera
    (or Blender's Front view when there is none)."""
    rotation, location = _facing(context, view)
    empty = bpy.data.objects.new(image.name, None)
    empty.empty_display_type = "IMAGE"
    empty.empty_display_size = REFERENCE_SIZE
    empty.empty_image_offset = (-0.5, -0.5)
    empty.data = image
    empty.use_empty_image_alpha = False
    empty.matrix_world = Matrix.LocRotScale(location, rotation, None)
    _set_properties(empty, properties)
    _link_and_select(context, empty)
    return empty


def add_plane(context, image, properties, distance=10.0, view=None):
    """A plane with the image's aspect. With an active camera: `distance` in front of it,
    as large as fits its view. Without: at the 3D cursor facing the view."""
    image_aspect = framing.aspect(*image.size)
    camera = _scene_camera(context)
    if camera is not None:
        frame = [tuple(corner) for corner in camera.data.view_frame(scene=context.scene)]
        orthographic = camera.data.type == "ORTHO"
        frame_width, frame_height = framing.frame_size_at_distance(frame, distance, orthographic)
        width, height = framing.fit_inside(frame_width, frame_height, image_aspect)
        # The frame's centre moves with the camera's lens shift.
        scale = 1.0 if orthographic else distance / abs(frame[0][2])
        centre = Vector((sum(c[0] for c in frame) / 4.0 * scale, sum(c[1] for c in frame) / 4.0 * scale, -distance))
        location, rotation, _ = camera.matrix_world.decompose()
        matrix = Matrix.LocRotScale(location + rotation @ centre, rotation, None)
    else:
        rotation, location = _facing(context, view)
        width, height = framing.plane_size_without_camera(image_aspect)
        matrix = Matrix.LocRotScale(location, rotation, None)

    mesh = bpy.data.meshes.new(image.name)
    half_w, half_h = width / 2.0, height / 2.0
    mesh.from_pydata([(-half_w, -half_h, 0.0), (half_w, -half_h, 0.0), (half_w, half_h, 0.0), (-half_w, half_h, 0.0)],
                     [], [(0, 1, 2, 3)])
    uv_layer = mesh.uv_layers.new(name="UVMap")
    for loop, uv in zip(uv_layer.data, ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))):
        loop.uv = uv
    mesh.materials.append(materials.picture_material(image))
    mesh.update()

    plane = bpy.data.objects.new(image.name, mesh)
    plane.matrix_world = matrix
    _set_properties(plane, properties)
    _link_and_select(context, plane)
    return plane


def add_camera_background(context, image):
    """A background image on the active camera, shown in camera view; returns the camera."""
    camera = _scene_camera(context)
    if camera is None:
        raise PlacementError(NO_CAMERA_MESSAGE)
    show_behind(camera, image)
    return camera


def show_behind(camera, image):
    """`image` as a background of `camera`, fitted to its frame and seen in camera view."""
    camera.data.show_background_images = True
    background = camera.data.background_images.new()
    background.source = "IMAGE"
    background.image = image
    background.alpha = 1.0
    background.display_depth = "BACK"
    background.frame_method = "FIT"


def _facing(context, view):
    """(rotation, location): the view's, else the active camera's rotation at the 3D cursor."""
    if view is not None:
        return Quaternion(view[0]), Vector(view[1])
    location = context.scene.cursor.location.copy()
    camera = _scene_camera(context)
    if camera is not None:
        return camera.matrix_world.to_quaternion(), location
    return DEFAULT_VIEW_ROTATION.copy(), location


def _scene_camera(context):
    camera = context.scene.camera
    return camera if camera is not None and camera.type == "CAMERA" else None


def _link_and_select(context, obj):
    collection = getattr(context, "collection", None) or context.scene.collection
    collection.objects.link(obj)
    view_layer = context.view_layer
    for other in view_layer.objects.selected:
        other.select_set(False)
    obj.select_set(True)
    view_layer.objects.active = obj


def remove_image(image):
    """Take back an image whose placement failed: nothing half-made stays in the file."""
    if image is not None and image.name in bpy.data.images:
        bpy.data.images.remove(image)


def _set_properties(datablock, properties):
    for key, value in properties.items():
        datablock[key] = value


def _file_safe(name):
    return "".join(ch if ch.isalnum() or ch in "-_ " else "_" for ch in name).strip() or "image"
