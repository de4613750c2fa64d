"""The Project placement: a picture projected from the active camera onto mesh objects.

Blender's own UV Project modifier does the projection (the camera as projector, at
the render's aspect) into a UV map of its own, so the objects' UV maps stay as they
were; a material reads the packed picture through that UV map. The material goes
into a new slot and the faces are assigned to it: the existing slots and their
materials are kept, so reassigning the faces brings the old look back.
"""

import bpy

from . import materials

MODIFIER_NAME = "Voicebrush Projection"
UV_PREFIX = "Voicebrush "
# Blender's limit on a mesh's UV maps.
MAX_UV_MAPS = 8
# CustomData layer names hold 67 bytes.
MAX_UV_NAME_BYTES = 63

NO_MESH_MESSAGE = "Project needs selected mesh objects: select the objects to project the picture onto."
NO_CAMERA_MESSAGE = "Project needs an active camera to project from."


class ProjectionError(Exception):
    """The picture cannot be projected; str() says what to do."""


def targets(context):
    """The selected mesh objects, by name (taken when the operator starts)."""
    return [obj.name for obj in context.selected_objects if obj.type == "MESH"]


def check_possible(camera, object_names):
    """Raise ProjectionError before any generation when the projection cannot work."""
    _objects_and_meshes(camera, object_names)


def _objects_and_meshes(camera, object_names):
    objects = [bpy.data.objects.get(name) for name in object_names]
    objects = [obj for obj in objects if obj is not None and obj.type == "MESH"]
    if camera is None:
        raise ProjectionError(NO_CAMERA_MESSAGE)
    if not objects:
        raise ProjectionError(NO_MESH_MESSAGE)
    meshes = []
    for obj in objects:
        if obj.data not in meshes:
            meshes.append(obj.data)
    for mesh in meshes:
        if len(mesh.uv_layers) >= MAX_UV_MAPS:
            raise ProjectionError("%s already has %d UV maps, the most Blender allows: remove one to project onto it."
                                  % (mesh.name, MAX_UV_MAPS))
    return objects, meshes


def uv_name_for(image_name):
    name = UV_PREFIX + image_name
    return name.encode("utf-8")[:MAX_UV_NAME_BYTES].decode("utf-8", "ignore")


def project(context, image, camera, object_names):
    """Project `image` from `camera` onto the named mesh objects; returns (the objects, the material).

    Everything is checked before anything is made, so a failure leaves the scene as it was.
    """
    objects, meshes = _objects_and_meshes(camera, object_names)
    uv_name = uv_name_for(image.name)

    scene = context.scene
    aspect_x = scene.render.resolution_x * scene.render.pixel_aspect_x
    aspect_y = scene.render.resolution_y * scene.render.pixel_aspect_y

    # A name no mesh uses yet, so the material's UV Map node reads this projection on every mesh.
    uv_name = _unused_uv_name(uv_name, meshes)
    material = materials.picture_material(image, uv_name)
    for mesh in meshes:
        # The modifier writes into this layer; do_init=False: nothing to copy from the active one.
        mesh.uv_layers.new(name=uv_name, do_init=False)
        mesh.materials.append(material)
        slot = len(mesh.materials) - 1
        mesh.polygons.foreach_set("material_index", [slot] * len(mesh.polygons))
        mesh.update()
    for obj in objects:
        modifier = obj.modifiers.new(MODIFIER_NAME, "UV_PROJECT")
        modifier.uv_layer = uv_name
        modifier.projector_count = 1
        modifier.projectors[0].object = camera
        # The modifier frames a camera projector as the camera does (sensor fit and shift
        # included) given the render's aspect.
        modifier.aspect_x, modifier.aspect_y = aspect_x, aspect_y
        if obj.material_slots and obj.material_slots[-1].link == "OBJECT":
            obj.material_slots[-1].material = material
    return objects, material


def _unused_uv_name(name, meshes):
    taken = {layer.name for mesh in meshes for layer in mesh.uv_layers}
    candidate, number = name, 1
    while candidate in taken:
        suffix = ".%03d" % number
        candidate = name.encode("utf-8")[:MAX_UV_NAME_BYTES - len(suffix)].decode("utf-8", "ignore") + suffix
        number += 1
    return candidate
