"""Render docs/blender-placements.png: the three placements in one scene, headless, with Workbench.

    python tests/blender/render_placements.py --server http://127.0.0.1:7860 [--zip dist/voicebrush-blender.zip]

Installs the extension zip into a temporary BLENDER_USER_RESOURCES, generates
three pictures through bpy.ops.voicebrush.generate (one per placement), then
renders the scene from an overview camera. Image empties and camera background
images are drawn only in the viewport, never by a render engine, so the picture
shows them through stand-ins: a textured quad where the reference empty is, and
the background image inside the drawn frustum of the shot camera.
"""

import argparse
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--zip", default=os.path.join(ROOT, "dist", "voicebrush-blender.zip"))
    parser.add_argument("--output", default=os.path.join(ROOT, "docs", "blender-placements.png"))
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args(argv)

    os.environ["BLENDER_USER_RESOURCES"] = tempfile.mkdtemp(prefix="voicebrush-render-")  # before bpy loads
    import bpy

    bpy.ops.extensions.package_install_files(filepath=args.zip, repo="user_default", enable_on_install=True)
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    bpy.context.preferences.addons["bl_ext.user_default.voicebrush"].preferences.server = args.server
    scene = bpy.context.scene
    shot = scene.camera

    timings = {}
    for placement, prompt, options in (
        ("PLANE", "a ruined temple in a jungle clearing, overcast", dict(size="256x144", plane_distance=16.0)),
        ("REFERENCE", "a red fox in the snow", dict(size="256x256")),
        ("CAMERA_BACKGROUND", "a misty harbour at dawn, wide shot", dict(size="256x144")),
    ):
        if placement == "REFERENCE":
            scene.cursor.location = (-11.0, -4.0, 2.5)
        started = time.monotonic()
        assert bpy.ops.voicebrush.generate(prompt=prompt, placement=placement, steps=args.steps, seed=7,
                                           **options) == {"FINISHED"}
        timings[placement] = time.monotonic() - started
    print("generate-to-placed: " + ", ".join("%s %.2f s" % item for item in timings.items()))

    add_stand_ins(bpy, scene, shot)
    overview = add_overview_camera(bpy, scene)
    label(bpy, scene, overview, "Plane", (-3.0, 3.0, 3.4))
    label(bpy, scene, overview, "Reference", (-11.0, -4.0, 5.9))
    label(bpy, scene, overview, "Camera background", (6.5, -6.0, 6.6))

    scene.camera = overview
    scene.render.engine = "BLENDER_WORKBENCH"
    scene.display.shading.light = "FLAT"
    scene.display.shading.color_type = "TEXTURE"
    scene.display.shading.show_object_outline = True
    scene.render.resolution_x, scene.render.resolution_y = 1280, 720
    scene.render.film_transparent = False
    scene.world.color = (0.05, 0.05, 0.06)
    scene.render.filepath = args.output
    scene.render.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    print(args.output)
    return 0


def textured_quad(bpy, name, image, width, height, matrix):
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-width / 2, -height / 2, 0), (width / 2, -height / 2, 0), (width / 2, height / 2, 0),
                      (-width / 2, height / 2, 0)], [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new()
    for loop, co in zip(uv.data, ((0, 0), (1, 0), (1, 1), (0, 1))):
        loop.uv = co
    material = bpy.data.materials.new(name)
    if material.node_tree is None:
        material.use_nodes = True
    texture = material.node_tree.nodes.new("ShaderNodeTexImage")
    texture.image = image
    material.node_tree.nodes.active = texture
    mesh.materials.append(material)
    quad = bpy.data.objects.new(name, mesh)
    quad.matrix_world = matrix
    bpy.context.scene.collection.objects.link(quad)
    return quad


def add_stand_ins(bpy, scene, shot):
    from mathutils import Matrix, Vector

    for obj in list(scene.objects):
        if obj.type == "EMPTY" and obj.empty_display_type == "IMAGE":
            width, height = obj.data.size
            side = obj.empty_display_size
            scale = side / max(width, height)
            textured_quad(bpy, "reference stand-in", obj.data, width * scale, height * scale, obj.matrix_world)

    # The shot camera as a wire frustum, its background image at the frustum's far end.
    depth = 5.0
    frame = [Vector(corner) * (depth / abs(corner.z)) for corner in shot.data.view_frame(scene=scene)]
    mesh = bpy.data.meshes.new("shot camera frustum")
    mesh.from_pydata([Vector((0, 0, 0))] + frame, [(0, 1), (0, 2), (0, 3), (0, 4), (1, 2), (2, 3), (3, 4), (4, 1)], [])
    frustum = bpy.data.objects.new("shot camera frustum", mesh)
    frustum.matrix_world = shot.matrix_world
    scene.collection.objects.link(frustum)
    wire = frustum.modifiers.new("wire", "SKIN")
    for vertex in mesh.skin_vertices[""].data:
        vertex.radius = (0.04, 0.04)
    background = shot.data.background_images[0].image
    width = max(c.x for c in frame) - min(c.x for c in frame)
    height = max(c.y for c in frame) - min(c.y for c in frame)
    textured_quad(bpy, "camera background stand-in", background, width, height,
                  shot.matrix_world @ Matrix.Translation((0, 0, -depth)))


def add_overview_camera(bpy, scene):
    from mathutils import Vector

    data = bpy.data.cameras.new("overview")
    data.lens = 38
    camera = bpy.data.objects.new("overview", data)
    camera.location = (-1.0, -34.0, 14.0)
    target = Vector((-2.0, -0.5, 0.8))
    camera.rotation_euler = (target - camera.location).to_track_quat("-Z", "Y").to_euler()
    scene.collection.objects.link(camera)
    return camera


def label(bpy, scene, camera, text, location):
    curve = bpy.data.curves.new(text, "FONT")
    curve.body = text
    curve.size = 1.1
    curve.align_x = "CENTER"
    obj = bpy.data.objects.new(text, curve)
    obj.location = location
    obj.rotation_euler = camera.rotation_euler
    scene.collection.objects.link(obj)
    return obj


if __name__ == "__main__":
    sys.exit(main())
