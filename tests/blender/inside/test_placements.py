"""The three placements, by script in background mode: the contract's scripting API."""

import math
import os
import time

import pytest

from conftest import PROMPT, SPEECH, window_override

NAME = "A ruined temple in a jungle clearing overcast"
FAST = dict(steps=2)


def generate(bpy, **options):
    options.setdefault("prompt", PROMPT)
    for key, value in FAST.items():
        options.setdefault(key, value)
    return bpy.ops.voicebrush.generate(**options)


def assert_metadata(datablock, seed, steps):
    assert datablock["prompt"] == PROMPT
    assert datablock["negative_prompt"] == "blurry"
    assert datablock["seed"] == seed
    assert datablock["steps"] == steps
    assert datablock["model"] == "tiny-sd2"
    assert datablock["transcript"] == ""  # typed, not spoken


def assert_packed_png(image, size):
    assert image.packed_file is not None and image.packed_file.size > 100
    assert image.packed_file.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert tuple(image.size) == size
    assert image.filepath_raw.startswith("//"), "no temporary path may stick to the image"


def quaternions_close(a, b, tolerance=1e-4):
    return abs(abs(a.dot(b)) - 1.0) < tolerance


def test_reference_faces_the_active_camera(scene, bpy):
    scene.scene.cursor.location = (1.0, 2.0, 3.0)
    assert generate(bpy, placement="REFERENCE", seed=1234, negative_prompt="blurry") == {"FINISHED"}
    empty = scene.active_object
    assert empty.type == "EMPTY" and empty.empty_display_type == "IMAGE"
    assert empty.name == NAME and empty.data.name == NAME
    assert_packed_png(empty.data, (256, 256))
    assert_metadata(empty, 1234, 2)
    assert_metadata(empty.data, 1234, 2)
    assert quaternions_close(empty.matrix_world.to_quaternion(), scene.scene.camera.matrix_world.to_quaternion())
    assert tuple(empty.matrix_world.translation) == pytest.approx((1.0, 2.0, 3.0))
    assert empty.select_get() and scene.view_layer.objects.active == empty


def test_reference_without_camera_faces_the_front_view(scene, bpy):
    from mathutils import Euler

    bpy.data.objects.remove(bpy.data.objects["Camera"])
    assert scene.scene.camera is None
    assert generate(bpy, placement="REFERENCE", prompt="a red fox") == {"FINISHED"}
    empty = scene.active_object
    assert empty.name == "A red fox"
    front = Euler((math.pi / 2, 0.0, 0.0)).to_quaternion()
    assert quaternions_close(empty.matrix_world.to_quaternion(), front)


def test_plane_has_the_image_aspect_and_fills_the_camera_view(scene, bpy):
    from mathutils import Vector

    camera = scene.scene.camera
    assert generate(bpy, placement="PLANE", size="256x144", seed=7, negative_prompt="blurry",
                    plane_distance=6.0) == {"FINISHED"}
    plane = scene.active_object
    assert plane.type == "MESH" and plane.name == NAME
    width, height, depth = plane.dimensions
    assert width / height == pytest.approx(256 / 144, rel=1e-3)
    assert depth == pytest.approx(0.0)
    # The factory camera renders 1920x1080 (16:9, as the image): the plane fills its view exactly.
    frame = [camera.matrix_world @ (corner * (6.0 / abs(corner.z)))
             for corner in camera.data.view_frame(scene=scene.scene)]
    corners = sorted((plane.matrix_world @ Vector(vertex.co) for vertex in plane.data.vertices), key=tuple)
    for corner in corners:
        assert min((corner - other).length for other in frame) < 1e-3
    # It faces the camera, 6 m in front of it.
    to_plane = plane.matrix_world.translation - camera.matrix_world.translation
    assert to_plane.length == pytest.approx(6.0, rel=1e-4)
    normal = plane.matrix_world.to_quaternion() @ Vector((0, 0, 1))
    assert normal.dot(-to_plane.normalized()) == pytest.approx(1.0, abs=1e-4)

    material = plane.active_material
    textures = [node for node in material.node_tree.nodes if node.type == "TEX_IMAGE"]
    assert len(textures) == 1
    image = textures[0].image
    assert image.name == NAME and material.name == NAME
    assert_packed_png(image, (256, 144))
    assert_metadata(image, 7, 2)
    assert_metadata(plane, 7, 2)
    assert len(plane.data.uv_layers) == 1


def test_camera_background(scene, bpy):
    camera = scene.scene.camera
    assert generate(bpy, placement="CAMERA_BACKGROUND", size="256x144", seed=99, negative_prompt="blurry") == {"FINISHED"}
    assert camera.data.show_background_images
    backgrounds = list(camera.data.background_images)
    assert len(backgrounds) == 1
    image = backgrounds[0].image
    assert image.name == NAME
    assert_packed_png(image, (256, 144))
    assert_metadata(image, 99, 2)


def test_camera_background_without_camera_fails_before_generating(scene, bpy):
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    images_before = len(bpy.data.images)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="needs an active camera"):
        generate(bpy, placement="CAMERA_BACKGROUND")
    assert time.monotonic() - started < 1.0, "it must not wait for a generation"
    assert len(bpy.data.images) == images_before


def test_dictation_from_audio_path(scene, bpy):
    assert os.path.isfile(SPEECH)
    assert generate(bpy, prompt="", audio_path=SPEECH, placement="REFERENCE") == {"FINISHED"}
    image = scene.active_object.data
    heard = image["transcript"].lower()
    # "a misty harbour at dawn, wide shot" through Whisper tiny.en: compare words, not strings.
    assert sum(word in heard for word in ("misty", "harbo", "dawn", "wide", "shot")) >= 2, heard
    assert image["prompt"]
    assert image.name.lower().startswith(image["prompt"].split()[0].lower())


def test_daemon_down_fails_within_seconds(scene, bpy):
    import socket

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    images_before = len(bpy.data.images)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="Cannot reach the voicebrush daemon"):
        generate(bpy, server="http://127.0.0.1:%d" % port)
    assert time.monotonic() - started < 5.0
    assert len(bpy.data.images) == images_before


def test_generate_without_prompt_or_audio_is_refused(scene, bpy):
    with pytest.raises(RuntimeError, match="Type or say a prompt first"):
        bpy.ops.voicebrush.generate(prompt="  ")


def test_saved_file_keeps_the_packed_image(scene, bpy, tmp_path):
    assert generate(bpy, placement="PLANE", size="128x64", seed=5, negative_prompt="blurry") == {"FINISHED"}
    path = str(tmp_path / "scene.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    assert NAME not in bpy.data.images
    bpy.ops.wm.open_mainfile(filepath=path)
    image = bpy.data.images[NAME]
    assert_packed_png(image, (128, 64))
    assert len(image.pixels) == 128 * 64 * 4
    assert_metadata(image, 5, 2)
    plane = bpy.data.objects[NAME]
    assert plane.active_material.node_tree.nodes["Image Texture"].image == image


@pytest.mark.parametrize("placement", ["REFERENCE", "PLANE", "CAMERA_BACKGROUND"])
def test_undo_removes_the_placement(scene, bpy, placement):
    with window_override(bpy):
        bpy.ops.ed.undo_push(message="before voicebrush")  # background mode starts without an undo stack
    objects = set(bpy.data.objects.keys())
    images = set(bpy.data.images.keys())
    # EXEC_DEFAULT, True: record an undo step for this call as a click in the UI does (scripts don't).
    result = bpy.ops.voicebrush.generate("EXEC_DEFAULT", True, prompt=PROMPT, placement=placement, size="64x64", steps=2)
    assert result == {"FINISHED"}
    assert set(bpy.data.images.keys()) - images == {NAME}
    with window_override(bpy):
        assert bpy.ops.ed.undo() == {"FINISHED"}
    assert set(bpy.data.objects.keys()) == objects
    assert set(bpy.data.images.keys()) == images
    assert len(bpy.data.objects["Camera"].data.background_images) == 0
    with window_override(bpy):
        assert bpy.ops.ed.redo() == {"FINISHED"}
    assert NAME in bpy.data.images


def test_redo_with_another_placement_reuses_the_picture(scene, bpy, addon, monkeypatch):
    assert generate(bpy, placement="REFERENCE", seed=11, size="64x64") == {"FINISHED"}
    first = bytes(bpy.data.images[NAME].packed_file.data)
    monkeypatch.setattr(addon.jobs.GenerationJob, "run", lambda job: pytest.fail("generated again"))
    assert generate(bpy, placement="PLANE", seed=11, size="64x64") == {"FINISHED"}
    assert bytes(bpy.data.images[NAME + ".001"].packed_file.data) == first


def test_test_connection(scene, bpy, addon):
    assert bpy.ops.voicebrush.test_connection() == {"FINISHED"}
    assert addon.status.daemon.ok and "tiny-sd2" in addon.status.daemon.line
    with pytest.raises(RuntimeError, match="Cannot reach"):
        bpy.ops.voicebrush.test_connection(server="http://127.0.0.1:9")
    assert not addon.status.daemon.ok
