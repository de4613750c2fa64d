"""The material every placement shows a picture with.

Shadeless (emission), so the picture looks as generated whatever the scene's lighting,
and with the texture node active, which is what Workbench's Texture colour and the
Solid view show.
"""

import bpy


def picture_material(image, uv_name=None):
    """A new material showing `image`. With `uv_name` it reads that UV map and clips the
    texture outside it (a projection: nothing repeats beyond the camera's frame);
    otherwise the mesh's own UVs (a plane)."""
    material = bpy.data.materials.new(image.name)
    if material.node_tree is None:  # Blender 4.x: a new material has no nodes yet
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    texture.image = image
    texture.location = (-400, 0)
    if uv_name is not None:
        uv_map = nodes.new("ShaderNodeUVMap")
        uv_map.uv_map = uv_name
        uv_map.location = (-650, 0)
        texture.extension = "CLIP"
        links.new(uv_map.outputs["UV"], texture.inputs["Vector"])
    emission = nodes.new("ShaderNodeEmission")
    emission.location = (-100, 0)
    output = nodes.new("ShaderNodeOutputMaterial")
    output.location = (150, 0)
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    nodes.active = texture
    return material
