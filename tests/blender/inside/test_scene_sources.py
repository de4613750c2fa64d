"""The scene shapes the picture: depth from the camera, the render as img2img, projection onto meshes."""

import math
import socket
import time

import pytest

from conftest import SPEECH, daemon_client, datablock_names, drive, png_pixels, window_override

STREET = "a rainy cyberpunk street at night"
STREET_NAME = "A rainy cyberpunk street at night"
FAST = dict(steps=2)


def generate(bpy, *args, **options):
    options.setdefault("prompt", STREET)
    for key, value in FAST.items():
        options.setdefault(key, value)
    return bpy.ops.voicebrush.generate(*args, **options)


def blocked_out(bpy):
    """The camera looking down +Y; a cube left of centre near it, a wide plane far behind."""
    scene = bpy.context.scene
    camera = scene.camera
    camera.location = (0.0, -10.0, 1.0)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    cube = bpy.data.objects["Cube"]
    cube.location = (-1.2, -5.0, 1.0)
    cube.scale = (0.5, 0.5, 0.5)
    mesh = bpy.data.meshes.new("Far Wall")
    mesh.from_pydata([(-40, 0, -20), (40, 0, -20), (40, 0, 30), (-40, 0, 30)], [], [(0, 1, 2, 3)])
    wall = bpy.data.objects.new("Far Wall", mesh)
    wall.location = (0.0, 30.0, 0.0)
    scene.collection.objects.link(wall)
    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    bpy.context.view_layer.update()
    return camera, cube, wall


def screen_rectangle(scene, camera, obj):
    """(left, bottom, right, top) of the object's bounding box seen from the camera (0-1, y up)."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    points = [world_to_camera_view(scene, camera, obj.matrix_world @ Vector(corner)) for corner in obj.bound_box]
    return min(p.x for p in points), min(p.y for p in points), max(p.x for p in points), max(p.y for p in points)


def region_mean(pixels, rectangle, inset=0.2):
    """Mean red value inside a view rectangle (y up), shrunk by `inset` of its size on each side."""
    height, width = pixels.shape[:2]
    left, bottom, right, top = rectangle
    dx, dy = (right - left) * inset, (top - bottom) * inset
    columns = slice(int((left + dx) * width), max(int((left + dx) * width) + 1, int((right - dx) * width)))
    rows = slice(int((1 - top + dy) * height), max(int((1 - top + dy) * height) + 1, int((1 - bottom - dy) * height)))
    return float(pixels[rows, columns, 0].mean())


def stored_input(addon, image, role):
    client = daemon_client(addon)
    record = client.get_job(image["job"])
    return record, client.fetch(record["inputs"][role])


def background_image(camera):
    backgrounds = list(camera.data.background_images)
    assert len(backgrounds) == 1
    return backgrounds[0].image


def assert_scene_properties(datablock, source, mode, strength):
    assert datablock["source"] == source
    assert datablock["mode"] == mode
    assert datablock["strength"] == pytest.approx(strength)
    assert datablock["prompt"] and datablock["job"]


# -- depth -------------------------------------------------------------------------


def test_depth_from_the_camera_lays_out_the_picture(scene, bpy, addon, tmp_path):
    camera, cube, wall = blocked_out(bpy)
    assert generate(bpy, source="DEPTH", placement="CAMERA_BACKGROUND", size="256x144", seed=4) == {"FINISHED"}
    image = background_image(camera)
    assert image.name == STREET_NAME and image.packed_file is not None
    assert tuple(image.size) == (256, 144)
    assert_scene_properties(image, "DEPTH", "depth", 1.0)

    record, depth = stored_input(addon, image, "depth")
    assert record["mode"] == "depth" and "image" not in record["inputs"]
    width, height, pixels = png_pixels(bpy, depth, tmp_path)
    assert (width, height) == (256, 144), "sent at the generation size, the render's aspect"
    cube_rect = screen_rectangle(scene.scene, camera, cube)
    assert cube_rect[2] < 0.5, "the cube is left of centre"
    far_rect = (0.65, 0.3, 0.95, 0.7)  # only the wall is seen there
    near, far = region_mean(pixels, cube_rect), region_mean(pixels, far_rect)
    assert near > 0.9 and far < 0.3 and near - far > 0.5, (near, far)


def test_depth_sees_modifiers_and_instances(scene, bpy, addon, tmp_path):
    """What the camera really sees: an Array modifier's copy and a collection instance count."""
    from bpy_extras.object_utils import world_to_camera_view

    camera, cube, wall = blocked_out(bpy)
    array = cube.modifiers.new("Array", "ARRAY")
    array.count = 2
    array.relative_offset_displace = (2.4, 0.0, 0.0)  # a copy as far right of centre as the cube is left
    props = bpy.data.collections.new("Props")  # not in the scene: seen only through the instance
    props.objects.link(bpy.data.objects.new("Prop", cube.data))
    instance = bpy.data.objects.new("Prop Instance", None)
    instance.instance_type = "COLLECTION"
    instance.instance_collection = props
    instance.location = (0.0, -6.0, 0.6)  # low in the middle of the view
    instance.scale = (0.4, 0.4, 0.4)
    scene.scene.collection.objects.link(instance)
    bpy.context.view_layer.update()

    _, _, pixels = png_pixels(bpy, addon.scene_capture.depth_picture(bpy.context, 256, 144), tmp_path)
    evaluated = cube.evaluated_get(bpy.context.evaluated_depsgraph_get())
    right = max(world_to_camera_view(scene.scene, camera, evaluated.matrix_world @ vertex.co).x
                for vertex in evaluated.data.vertices)
    assert right > 0.6, "the copy is right of centre"
    assert region_mean(pixels, (right - 0.05, 0.45, right - 0.02, 0.55), inset=0) > 0.5, "the Array copy is in the depth"
    centre = world_to_camera_view(scene.scene, camera, instance.matrix_world.translation)
    assert region_mean(pixels, (centre.x - 0.01, centre.y - 0.01, centre.x + 0.01, centre.y + 0.01), inset=0) > 0.5, \
        "the collection instance is in the depth"


def test_depth_skips_what_the_render_hides(scene, bpy, addon, tmp_path):
    camera, cube, wall = blocked_out(bpy)
    cube.hide_render = True
    _, _, pixels = png_pixels(bpy, addon.scene_capture.depth_picture(bpy.context, 128, 72), tmp_path)
    # Only the wall is left, filling the view: one flat surface, all of it the nearest.
    assert region_mean(pixels, screen_rectangle(scene.scene, camera, cube)) == pytest.approx(1.0)
    assert pixels[..., 0].min() == pytest.approx(1.0)


def test_dictation_with_the_depth_source(scene, bpy, addon):
    camera, cube, wall = blocked_out(bpy)
    assert generate(bpy, prompt="", audio_path=SPEECH, source="DEPTH", placement="CAMERA_BACKGROUND",
                    size="128x72") == {"FINISHED"}
    image = background_image(camera)
    assert image["transcript"].strip() and image["prompt"].strip()
    assert_scene_properties(image, "DEPTH", "depth", 1.0)


# -- render ------------------------------------------------------------------------


def test_render_source_is_img2img_with_the_strength(scene, bpy, addon, tmp_path):
    blocked_out(bpy)
    render = scene.scene.render
    before = (render.resolution_x, render.resolution_y, render.resolution_percentage, render.engine,
              render.image_settings.file_format, render.image_settings.color_mode, render.use_sequencer)
    images_before = set(bpy.data.images.keys())
    assert render.engine.startswith("BLENDER_EEVEE")
    # No size: the daemon's native area (256x256 for the tiny preset) at the render's 16:9. No
    # engine: AUTO, which in background mode renders an EEVEE scene with Workbench.
    assert generate(bpy, source="RENDER", strength=0.4, placement="REFERENCE") == {"FINISHED"}
    image = scene.active_object.data
    assert_scene_properties(image, "RENDER", "img2img", 0.4)
    record, picture = stored_input(addon, image, "image")
    assert record["mode"] == "img2img" and record["strength"] == pytest.approx(0.4)
    width, height, pixels = png_pixels(bpy, picture, tmp_path)
    assert (width, height) == (344, 192) and tuple(image.size) == (344, 192)
    assert abs(width / height - 1920 / 1080) < 0.02, "the render's aspect"
    assert pixels[..., :3].std() > 0.01, "a real render, not a blank"
    after = (render.resolution_x, render.resolution_y, render.resolution_percentage, render.engine,
             render.image_settings.file_format, render.image_settings.color_mode, render.use_sequencer)
    assert after == before, "the scene's render settings come back"
    assert set(bpy.data.images.keys()) == images_before | {image.name}, "only the picture is new"


def test_the_automatic_engine_spares_eevee_only_in_background_mode(addon):
    engine_for = addon.scene_capture.engine_for
    assert engine_for("BLENDER_EEVEE", "AUTO", background=True) == "BLENDER_WORKBENCH"
    assert engine_for("BLENDER_EEVEE", "AUTO", background=False) == "BLENDER_EEVEE"
    assert engine_for("CYCLES", "AUTO", background=True) == "CYCLES"
    assert engine_for("CYCLES", "SCENE", background=True) == "CYCLES"
    assert engine_for("BLENDER_EEVEE", "SCENE", background=True) == "BLENDER_EEVEE"
    assert engine_for("CYCLES", "WORKBENCH", background=False) == "BLENDER_WORKBENCH"


# -- project -----------------------------------------------------------------------


def projected_uv_error(scene, camera, obj, uv_name):
    """Largest distance between a vertex's projected UV and where the camera sees it (0-1)."""
    from bpy_extras.object_utils import world_to_camera_view

    depsgraph = scene.evaluated_depsgraph_get()
    evaluated = obj.evaluated_get(depsgraph)
    mesh = evaluated.data
    layer = mesh.uv_layers[uv_name]
    worst = 0.0
    for loop in mesh.loops:
        seen = world_to_camera_view(scene.scene, camera, evaluated.matrix_world @ mesh.vertices[loop.vertex_index].co)
        uv = layer.data[loop.index].uv
        worst = max(worst, abs(uv[0] - seen.x), abs(uv[1] - seen.y))
    return worst


def projection_of(cube):
    modifiers = [modifier for modifier in cube.modifiers if modifier.type == "UV_PROJECT"]
    assert len(modifiers) == 1
    modifier = modifiers[0]
    material = cube.material_slots[-1].material
    nodes = material.node_tree.nodes
    textures = [node for node in nodes if node.type == "TEX_IMAGE"]
    uv_maps = [node for node in nodes if node.type == "UVMAP"]
    assert len(textures) == 1 and len(uv_maps) == 1
    assert textures[0].inputs["Vector"].links[0].from_node == uv_maps[0]
    assert uv_maps[0].uv_map == modifier.uv_layer
    return modifier, material, textures[0].image


def test_project_onto_the_selected_cube(scene, bpy, addon, tmp_path):
    camera, cube, wall = blocked_out(bpy)
    original = cube.active_material
    original_name = original.name  # undo replaces every datablock: keep names, not references
    original_uvs = [tuple(loop.uv) for loop in cube.data.uv_layers["UVMap"].data]
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == cube)
    with window_override(bpy):
        bpy.ops.ed.undo_push(message="before voicebrush")
    before = datablock_names(bpy)

    result = generate(bpy, "EXEC_DEFAULT", True, source="DEPTH", placement="PROJECT", size="256x144", seed=8)
    assert result == {"FINISHED"}
    modifier, material, image = projection_of(cube)
    assert modifier.projector_count == 1 and modifier.projectors[0].object == camera
    assert modifier.aspect_x / modifier.aspect_y == pytest.approx(1920 / 1080)
    assert image.name == STREET_NAME and image.packed_file is not None and tuple(image.size) == (256, 144)
    assert_scene_properties(image, "DEPTH", "depth", 1.0)
    assert_scene_properties(material, "DEPTH", "depth", 1.0)
    # Kept: the original material in its slot, the original UV map untouched.
    assert [slot.material for slot in cube.material_slots] == [original, material]
    assert all(polygon.material_index == 1 for polygon in cube.data.polygons)
    assert [tuple(loop.uv) for loop in cube.data.uv_layers["UVMap"].data] == original_uvs
    assert not wall.modifiers and wall.active_material is None, "only the selected object"
    # Seen through the camera, the texture lines up with the geometry.
    assert projected_uv_error(bpy.context, camera, cube, modifier.uv_layer) < 1e-4

    with window_override(bpy):
        assert bpy.ops.ed.undo() == {"FINISHED"}
    cube = bpy.data.objects["Cube"]
    assert datablock_names(bpy) == before, "one undo step takes it all back"
    assert not cube.modifiers and [slot.material.name for slot in cube.material_slots] == [original_name]
    assert all(polygon.material_index == 0 for polygon in cube.data.polygons)
    assert list(cube.data.uv_layers.keys()) == ["UVMap"]
    assert cube.active_material.node_tree.nodes.get("Principled BSDF") is not None, "the original material intact"

    with window_override(bpy):
        assert bpy.ops.ed.redo() == {"FINISHED"}
    path = str(tmp_path / "projected.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=path)
    cube, camera = bpy.data.objects["Cube"], bpy.data.objects["Camera"]
    modifier, material, image = projection_of(cube)
    assert modifier.projectors[0].object == camera
    assert image.packed_file is not None and image.packed_file.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(image.pixels) == 256 * 144 * 4
    assert projected_uv_error(bpy.context, camera, cube, modifier.uv_layer) < 1e-4


def test_project_in_the_ui_uses_the_selection_it_started_with(scene, bpy, addon, ui_mode):
    camera, cube, wall = blocked_out(bpy)
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj == cube)
    assert generate(bpy, "INVOKE_DEFAULT", source="RENDER", strength=0.5, render_engine="WORKBENCH",
                    placement="PROJECT", size="128x72") == {"RUNNING_MODAL"}
    job, operator = addon.progress.running()[0]
    assert job.request.image[:8] == b"\x89PNG\r\n\x1a\n", "the render was taken when it started"
    assert not cube.modifiers, "nothing placed before the picture arrives"
    cube.select_set(False)
    wall.select_set(True)  # the artist goes on working meanwhile
    assert drive(operator, bpy.context) == {"FINISHED"}
    modifier, material, image = projection_of(cube)
    assert_scene_properties(image, "RENDER", "img2img", 0.5)
    assert not wall.modifiers


# -- errors ------------------------------------------------------------------------


def dead_server():
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        return "http://127.0.0.1:%d" % probe.getsockname()[1]


@pytest.mark.parametrize("source", ["DEPTH", "RENDER"])
def test_no_camera_is_a_clear_report(scene, bpy, source):
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    before = datablock_names(bpy)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="needs an active camera"):
        generate(bpy, source=source, placement="REFERENCE")
    assert time.monotonic() - started < 2.0, "it must not wait for a generation"
    assert datablock_names(bpy) == before


def test_project_without_a_camera_or_a_selected_mesh_is_a_clear_report(scene, bpy):
    for obj in bpy.context.view_layer.objects:
        obj.select_set(obj.type != "MESH")  # the camera and the light only
    before = datablock_names(bpy)
    with pytest.raises(RuntimeError, match="Project needs selected mesh objects"):
        generate(bpy, placement="PROJECT")
    bpy.data.objects["Cube"].select_set(True)
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    before = datablock_names(bpy)
    with pytest.raises(RuntimeError, match="Project needs an active camera"):
        generate(bpy, placement="PROJECT")
    assert datablock_names(bpy) == before


@pytest.mark.parametrize("size", ["", "128x72"])
def test_daemon_down_leaves_nothing_half_made(scene, bpy, size):
    """Without a size the daemon is asked first; with one, the camera is captured, then the daemon fails."""
    camera, cube, wall = blocked_out(bpy)
    cube.select_set(True)
    render = scene.scene.render
    settings_before = (render.resolution_x, render.resolution_y, render.engine, render.image_settings.color_mode)
    before = datablock_names(bpy)
    with pytest.raises(RuntimeError, match="Cannot reach the voicebrush daemon"):
        generate(bpy, source="RENDER", render_engine="WORKBENCH", placement="PROJECT", size=size,
                 server=dead_server())
    assert datablock_names(bpy) == before
    assert not cube.modifiers and len(cube.material_slots) == 1
    assert (render.resolution_x, render.resolution_y, render.engine, render.image_settings.color_mode) == settings_before
