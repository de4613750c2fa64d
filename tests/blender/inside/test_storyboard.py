"""Storyboards in Blender: shot cameras with their pictures, markers bound to them, and an animatic."""

import os

import numpy as np
import pytest

from conftest import ADDON, SPEECH, datablock_names, daemon_client, drive, png_pixels

SHOTS = ("a lighthouse on a cliff at dusk", "the keeper climbing the stairs", "a ship in the storm")
SCRIPT = "\n".join(SHOTS)
FAST = dict(steps=2, size="128x72")


def storyboard(bpy, *args, **options):
    for key, value in FAST.items():
        options.setdefault(key, value)
    return bpy.ops.voicebrush.storyboard(*args, **options)


def strips_of(scene, kind):
    return sorted((strip for strip in scene.sequence_editor.strips_all if strip.type == kind),
                  key=lambda strip: strip.frame_final_start)


def strip_path(bpy, strip):
    return os.path.join(bpy.path.abspath(strip.directory), strip.elements[0].filename)


def rendered_frame(bpy, scene, frame, tmp_path):
    """The sequencer's output at `frame`, as Blender renders the animatic (at a tenth of 1920x1080).

    The Standard view transform shows the pictures' own colours (AgX, the default, tone-maps them)."""
    scene.frame_set(frame)
    scene.render.resolution_percentage = 10
    scene.view_settings.view_transform = "Standard"
    bpy.ops.render.render()
    path = str(tmp_path / ("frame-%d.png" % frame))
    bpy.data.images["Render Result"].save_render(path, scene=scene)
    with open(path, "rb") as handle:
        return png_pixels(bpy, handle.read(), tmp_path)[2]


def test_a_three_shot_board_gives_cameras_markers_and_an_animatic(scene, bpy, addon, tmp_path):
    source = scene.scene.camera
    assert storyboard(bpy, script=SCRIPT, style="ink sketch", seed=21, seed_mode="SEQUENCE") == {"FINISHED"}
    cameras = [bpy.data.objects["Shot %d" % index] for index in (1, 2, 3)]
    board_id = cameras[0]["voicebrush_storyboard"]
    images = []
    for index, (camera, text) in enumerate(zip(cameras, SHOTS), start=1):
        assert camera.type == "CAMERA" and camera.data is not source.data
        assert camera.matrix_world == source.matrix_world and camera.data.lens == source.data.lens, "a copy"
        assert camera.data.show_background_images
        backgrounds = list(camera.data.background_images)
        assert len(backgrounds) == 1
        image = backgrounds[0].image
        assert image.packed_file is not None and tuple(image.size) == (128, 72)
        assert image.name.startswith("Shot %d " % index)
        assert image["storyboard"] == board_id and image["shot"] == index and image["caption"] == text
        assert "ink sketch" in image["prompt"]  # the style on every shot
        assert camera["voicebrush_shot"] == index and camera["voicebrush_caption"] == text
        images.append(image)

    markers = sorted(scene.scene.timeline_markers, key=lambda marker: marker.frame)
    assert [marker.frame for marker in markers] == [1, 49, 97]
    assert [marker.camera for marker in markers] == cameras
    pictures, captions = strips_of(scene.scene, "IMAGE"), strips_of(scene.scene, "TEXT")
    assert [strip.frame_final_start for strip in pictures] == [1, 49, 97]
    assert [strip.frame_final_start for strip in captions] == [1, 49, 97]
    assert all(strip.frame_final_duration == 48 for strip in pictures + captions)
    assert [strip.text for strip in captions] == list(SHOTS)
    for strip, image in zip(pictures, images):
        with open(strip_path(bpy, strip), "rb") as handle:
            assert handle.read() == bytes(image.packed_file.data), "the strip shows the shot's picture"
    assert scene.scene.frame_end == 144

    # Scrubbing switches shots; the sequencer renders the animatic.
    scene.scene.frame_set(60)
    assert scene.scene.camera == cameras[1]
    frame = rendered_frame(bpy, scene.scene, 60, tmp_path)
    assert frame.shape[:2] == (108, 192)
    _, _, second = png_pixels(bpy, bytes(images[1].packed_file.data), tmp_path)
    _, _, first = png_pixels(bpy, bytes(images[0].packed_file.data), tmp_path)
    # Above the caption, the frame is shot 2's picture scaled to fit (every 1.5th pixel).
    rows, columns = (np.arange(0, 48) * 72 // 108), (np.arange(192) * 128 // 192)
    shown = frame[:48, :, :3]
    assert abs(shown - second[rows][:, columns, :3]).mean() < 0.06
    assert abs(shown - first[rows][:, columns, :3]).mean() > abs(shown - second[rows][:, columns, :3]).mean() + 0.03

    # Saved and reopened elsewhere (the strip files gone): still packed, the animatic still plays.
    path = str(tmp_path / "board.blend")
    bpy.ops.wm.save_as_mainfile(filepath=path)
    for strip in pictures:
        os.remove(strip_path(bpy, strip))
    bpy.ops.wm.read_homefile(use_factory_startup=True)
    bpy.ops.wm.open_mainfile(filepath=path)
    reopened = bpy.context.scene
    for index in (1, 2, 3):
        image = bpy.data.objects["Shot %d" % index].data.background_images[0].image
        assert image.packed_file is not None and len(image.pixels) == 128 * 72 * 4
    for strip in strips_of(reopened, "IMAGE"):
        assert os.path.isfile(strip_path(bpy, strip)), "written again from the packed picture"
    assert [marker.camera.name for marker in sorted(reopened.timeline_markers, key=lambda m: m.frame)] == \
        ["Shot 1", "Shot 2", "Shot 3"]


def test_redo_one_shot(scene, bpy, addon):
    assert storyboard(bpy, script=SCRIPT, seed=5) == {"FINISHED"}
    before = {index: bytes(bpy.data.objects["Shot %d" % index].data.background_images[0].image.packed_file.data)
              for index in (1, 2, 3)}
    board_id = bpy.data.objects["Shot 2"]["voicebrush_storyboard"]
    old_job = daemon_client(addon).get_storyboard(board_id)["shots"][1]["job"]

    assert bpy.ops.voicebrush.redo_shot(camera="Shot 2", text="a ship in a calm sea") == {"FINISHED"}
    camera = bpy.data.objects["Shot 2"]
    backgrounds = list(camera.data.background_images)
    assert len(backgrounds) == 1
    image = backgrounds[0].image
    assert image.name.startswith("Shot 2 A ship in a calm sea") and image.packed_file is not None
    assert image["caption"] == "a ship in a calm sea" and image["job"] != old_job
    assert camera["voicebrush_caption"] == "a ship in a calm sea"
    pictures, captions = strips_of(scene.scene, "IMAGE"), strips_of(scene.scene, "TEXT")
    assert [strip.text for strip in captions] == [SHOTS[0], "a ship in a calm sea", SHOTS[2]]
    with open(strip_path(bpy, pictures[1]), "rb") as handle:
        assert handle.read() == bytes(image.packed_file.data)
    for index in (1, 3):  # only that shot changes
        other = bpy.data.objects["Shot %d" % index].data.background_images[0].image
        assert bytes(other.packed_file.data) == before[index]
    board = daemon_client(addon).get_storyboard(board_id)
    assert board["shots"][1]["job"] == image["job"] and old_job in board["shots"][1]["history"]


def test_storyboard_in_the_ui_without_a_camera(scene, bpy, addon, ui_mode):
    bpy.data.objects.remove(bpy.data.objects["Camera"])
    assert storyboard(bpy, "INVOKE_DEFAULT", script="shot one, a red fox. next shot, a snowy forest",
                      frames_per_shot=24) == {"RUNNING_MODAL"}
    job, operator = addon.progress.running()[0]
    assert "Shot 1" not in bpy.data.objects, "nothing is made before the board is drawn"
    assert drive(operator, bpy.context) == {"FINISHED"}
    cameras = [bpy.data.objects["Shot %d" % index] for index in (1, 2)]
    assert all(camera.type == "CAMERA" and len(camera.data.background_images) == 1 for camera in cameras)
    assert [marker.frame for marker in sorted(scene.scene.timeline_markers, key=lambda m: m.frame)] == [1, 25]
    assert job.status_line() == "Storyboard: 2 of 2 shots drawn"


def test_storyboard_errors_leave_nothing(scene, bpy):
    import socket

    before = datablock_names(bpy)
    with pytest.raises(RuntimeError, match="The script has no shot to draw"):
        storyboard(bpy, script="   ")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = "http://127.0.0.1:%d" % probe.getsockname()[1]
    with pytest.raises(RuntimeError, match="Cannot reach the voicebrush daemon"):
        storyboard(bpy, script=SCRIPT, server=dead)
    assert datablock_names(bpy) == before
    assert len(scene.scene.timeline_markers) == 0
    assert scene.scene.sequence_editor is None or len(scene.scene.sequence_editor.strips_all) == 0
    with pytest.raises(RuntimeError, match="Select a storyboard shot's camera"):
        bpy.ops.voicebrush.redo_shot()


def test_a_dictated_script(scene, bpy):
    take = os.path.join(os.path.dirname(SPEECH), "storyboard.wav")  # "Shot one, ... Next shot, ... Cut to, ..."
    assert storyboard(bpy, audio_path=take) == {"FINISHED"}
    cameras = [obj for obj in bpy.data.objects if obj.get("voicebrush_shot")]
    assert len(cameras) >= 2, "split at the spoken shot markers"
    assert all(len(camera.data.background_images) == 1 for camera in cameras)
    assert len(strips_of(scene.scene, "TEXT")) == len(cameras)


def test_recording_a_script_through_the_microphone(scene, bpy, addon):
    """The panel's record button for the storyboard, in background mode: record, then the board."""
    prefs = bpy.context.preferences.addons[ADDON].preferences
    prefs.input_device = "filemic"  # plays a one-sentence prompt: a one-shot board
    settings = scene.scene.voicebrush
    settings.steps, settings.frames_per_shot, settings.size_mode, settings.long_side = 2, 12, "CAMERA", 128
    assert bpy.ops.voicebrush.record(target="STORYBOARD", seconds=5.5) == {"FINISHED"}
    camera = bpy.data.objects["Shot 1"]
    assert len(camera.data.background_images) == 1
    assert tuple(camera.data.background_images[0].image.size) == (128, 72)
    assert [marker.frame for marker in scene.scene.timeline_markers] == [1]
    assert scene.scene.frame_end == 12
