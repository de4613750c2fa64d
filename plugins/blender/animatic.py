"""A finished storyboard in the scene: a camera per shot, markers that switch to them, and an animatic.

For each shot: a camera `Shot N` (a copy of the active camera, or a new one) with
the shot's packed picture as its background, a timeline marker at the shot's first
frame bound to that camera (scrubbing switches shots), and in the scene's sequencer
an image strip with a text strip holding the caption (playing or rendering the
sequencer gives the animatic).

The sequencer reads image strips from files and cannot use packed images, so each
strip's file is written from the packed picture into a cache folder, and written
again when a saved file is opened where it is missing (`restore_strip_files`): the
.blend stays the one thing to keep.
"""

import hashlib
import math
import os
import tempfile

import bpy
from bpy.app.handlers import persistent
from mathutils import Euler

from . import placement

# Custom properties that tie cameras and strips to their board and shot.
BOARD_KEY = "voicebrush_storyboard"
SHOT_KEY = "voicebrush_shot"
CAPTION_KEY = "voicebrush_caption"
STRIP_IMAGE_KEY = "voicebrush_image"
STRIP_KIND_KEY = "voicebrush_strip"

# A new shot camera when the scene has none: Blender's Front view, back from the origin.
DEFAULT_CAMERA_LOCATION = (0.0, -10.0, 1.5)
DEFAULT_CAMERA_ROTATION = Euler((math.pi / 2.0, 0.0, 0.0))

# The caption's text height, as a fraction of the frame's height.
CAPTION_HEIGHT = 0.045


def strip_folder():
    return os.path.join(tempfile.gettempdir(), "voicebrush-animatic")


def strip_file(image):
    """The file an image strip reads: the packed picture's bytes, named by their hash."""
    data = bytes(image.packed_file.data)
    folder = strip_folder()
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, hashlib.sha1(data).hexdigest()[:20] + ".png")
    if not os.path.isfile(path):
        partial = path + ".part"
        with open(partial, "wb") as handle:
            handle.write(data)
        os.replace(partial, path)
    return path


def build(context, board_id, shots, frames_per_shot):
    """The storyboard's cameras, markers and strips; returns the shot cameras in shot order.

    `shots` are boards.ShotPicture; one without a picture still gets its camera, marker and
    caption, so it can be redone from the panel.
    """
    scene = context.scene
    source = scene.camera if scene.camera is not None and scene.camera.type == "CAMERA" else None
    collection = bpy.data.collections.new("Storyboard")
    collection[BOARD_KEY] = board_id
    scene.collection.children.link(collection)
    editor = scene.sequence_editor or scene.sequence_editor_create()
    picture_channel = 1 + max([strip.channel for strip in editor.strips_all] or [0])
    start = scene.frame_start

    cameras = []
    for number, shot in enumerate(shots):
        frame = start + number * frames_per_shot
        camera = _shot_camera(source, "Shot %d" % shot.index, collection)
        camera[BOARD_KEY], camera[SHOT_KEY], camera[CAPTION_KEY] = board_id, shot.index, shot.text
        marker = scene.timeline_markers.new(camera.name, frame=frame)
        marker.camera = camera
        if shot.picture is not None:
            _show_picture(context, camera, shot, editor, picture_channel, frame, frames_per_shot)
        caption = editor.strips.new_effect("Caption %d" % shot.index, "TEXT", picture_channel + 1, frame,
                                           length=frames_per_shot)
        _style_caption(caption, shot.text, scene)
        _tag(caption, board_id, shot.index, "caption")
        cameras.append(camera)

    scene.frame_end = start + len(shots) * frames_per_shot - 1  # playing the timeline plays the animatic
    scene[BOARD_KEY] = board_id  # the board the panel shows
    if cameras:
        scene.camera = cameras[0]
    return cameras


def replace_shot(context, camera, shot):
    """A redrawn shot: its camera's background, its image strip and, if the words changed, its caption."""
    scene = context.scene
    board_id = camera[BOARD_KEY]
    editor = scene.sequence_editor or scene.sequence_editor_create()
    pictures = _strips(scene, board_id, shot.index, "picture")
    captions = _strips(scene, board_id, shot.index, "caption")
    image = placement.add_image(shot.picture)
    camera.data.background_images.clear()
    placement.show_behind(camera, image)
    if pictures:
        strip = pictures[0]
        path = strip_file(image)
        strip.directory = os.path.dirname(path) + os.sep
        strip.elements[0].filename = os.path.basename(path)
        strip.name = image.name
        strip[STRIP_IMAGE_KEY] = image.name
    else:
        marker = next((marker for marker in scene.timeline_markers if marker.camera == camera), None)
        frame = marker.frame if marker is not None else scene.frame_current
        length = captions[0].frame_final_duration if captions else 48
        channel = captions[0].channel - 1 if captions else 1 + max([s.channel for s in editor.strips_all] or [0])
        _add_picture_strip(editor, image, board_id, shot.index, channel, frame, length)
    if shot.text and shot.text != camera.get(CAPTION_KEY):
        camera[CAPTION_KEY] = shot.text
        for caption in captions:
            caption.text = shot.text
    return image


def shot_cameras(scene, board_id=None):
    """[(shot index, camera)] of a storyboard's cameras in the scene (the latest board's by default)."""
    board_id = board_id or scene.get(BOARD_KEY)
    found = [(obj[SHOT_KEY], obj) for obj in scene.objects
             if obj.type == "CAMERA" and board_id and obj.get(BOARD_KEY) == board_id and obj.get(SHOT_KEY)]
    return sorted(found, key=lambda item: item[0])


@persistent
def restore_strip_files(_file_path=None):
    """On opening a file: write any animatic strip file that is missing from its packed picture."""
    for scene in bpy.data.scenes:
        editor = scene.sequence_editor
        if editor is None:
            continue
        for strip in editor.strips_all:
            name = strip.get(STRIP_IMAGE_KEY)
            if not name or strip.type != "IMAGE":
                continue
            image = bpy.data.images.get(name)
            if image is None or image.packed_file is None:
                continue
            path = os.path.join(bpy.path.abspath(strip.directory), strip.elements[0].filename)
            if not os.path.isfile(path):
                path = strip_file(image)
                strip.directory = os.path.dirname(path) + os.sep
                strip.elements[0].filename = os.path.basename(path)


def register():
    if restore_strip_files not in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.append(restore_strip_files)


def unregister():
    if restore_strip_files in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(restore_strip_files)


# -- pieces -----------------------------------------------------------------------


def _shot_camera(source, name, collection):
    if source is not None:
        camera = source.copy()
        camera.data = source.data.copy()
        camera.data.background_images.clear()
        for key in (BOARD_KEY, SHOT_KEY, CAPTION_KEY):
            if key in camera:
                del camera[key]
    else:
        camera = bpy.data.objects.new(name, bpy.data.cameras.new(name))
        camera.location = DEFAULT_CAMERA_LOCATION
        camera.rotation_euler = DEFAULT_CAMERA_ROTATION
    camera.name = camera.data.name = name
    collection.objects.link(camera)
    return camera


def _show_picture(context, camera, shot, editor, channel, frame, length):
    image = placement.add_image(shot.picture)
    placement.show_behind(camera, image)
    _add_picture_strip(editor, image, camera[BOARD_KEY], shot.index, channel, frame, length)
    return image


def _add_picture_strip(editor, image, board_id, index, channel, frame, length):
    strip = editor.strips.new_image(image.name, strip_file(image), channel, frame, fit_method="FIT")
    strip.frame_final_duration = length
    strip[STRIP_IMAGE_KEY] = image.name
    _tag(strip, board_id, index, "picture")
    return strip


def _style_caption(strip, text, scene):
    strip.text = text
    strip.font_size = max(12.0, scene.render.resolution_y * CAPTION_HEIGHT)
    strip.location = (0.5, 0.04)
    strip.anchor_x, strip.anchor_y = "CENTER", "BOTTOM"
    strip.alignment_x = "CENTER"
    strip.wrap_width = 0.9
    strip.use_box = True
    strip.box_color = (0.0, 0.0, 0.0, 0.6)
    strip.color = (1.0, 1.0, 1.0, 1.0)


def _tag(strip, board_id, index, kind):
    strip[BOARD_KEY], strip[SHOT_KEY], strip[STRIP_KIND_KEY] = board_id, index, kind


def _strips(scene, board_id, index, kind):
    editor = scene.sequence_editor
    if editor is None:
        return []
    return [strip for strip in editor.strips_all
            if strip.get(BOARD_KEY) == board_id and strip.get(SHOT_KEY) == index and strip.get(STRIP_KIND_KEY) == kind]
