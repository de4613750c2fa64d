"""The sidebar tab "Voicebrush" in the 3D viewport, and the scene settings it edits."""

import os
import tempfile

import bpy
from bpy.props import BoolProperty, EnumProperty, FloatProperty, IntProperty, PointerProperty, StringProperty
from bpy.types import Panel, PropertyGroup

from . import animatic, boards, framing, jobs, placement, preferences, progress, scene_capture


class VoicebrushSettings(PropertyGroup):
    """Per scene, so they are saved with the .blend."""

    transcript: StringProperty(
        name="Prompt",
        description="What was heard, or what to draw: edit it, then Generate",
        default="",
    )
    placement: EnumProperty(name="Placement", items=placement.PLACEMENTS, default="REFERENCE")
    source: EnumProperty(name="Source", items=jobs.SOURCES, default="PROMPT",
                         description="What the picture starts from besides the words")
    strength: FloatProperty(name="Strength", description="How much of the render may change (0 to 1)",
                            default=jobs.DEFAULT_STRENGTH, min=0.01, max=1.0, subtype="FACTOR")
    render_engine: EnumProperty(name="Render With", items=scene_capture.RENDER_ENGINES, default="AUTO")
    negative_prompt: StringProperty(name="Negative Prompt", description="What the picture should not show", default="")
    steps: IntProperty(name="Steps", description="Denoising steps; 0 for the daemon's default", default=0, min=0, max=500)
    seed: IntProperty(name="Seed", description="-1 for a new random seed each time", default=-1, min=-1)
    size_mode: EnumProperty(
        name="Size",
        items=(
            ("MODEL", "Model Default", "The model's native square size"),
            ("CAMERA", "Camera Aspect", "The render's aspect, the longer side as set below"),
        ),
        default="MODEL",
    )
    long_side: IntProperty(name="Longer Side", description="Pixels along the longer side of the picture",
                           default=768, min=64, max=2048, step=8, subtype="PIXEL")
    plane_distance: FloatProperty(name="Distance", description="How far in front of the camera the plane stands",
                                  default=10.0, min=0.01, unit="LENGTH")
    storyboard_script: StringProperty(
        name="Script",
        description="The storyboard's shots: \"shot one, ...; next shot, ...; cut to, ...\" "
                    "(or pick a text from the Text Editor below, one shot per line)",
        default="",
    )
    storyboard_text: PointerProperty(name="Script Text", type=bpy.types.Text,
                                     description="A text from the Text Editor holding the script, one shot per line")
    style: StringProperty(name="Style", description="Added to every shot's prompt: one look for the board", default="")
    frames_per_shot: IntProperty(name="Frames per Shot", default=48, min=1, max=100000)
    seed_mode: EnumProperty(name="Seeds", items=boards.SEED_MODES, default="SAME")
    redo_text: StringProperty(name="New Words", description="Redo: what the shot shows now; empty to keep its words",
                              default="")
    generate_after_recording: BoolProperty(
        name="Generate When I Stop",
        description="Generate as soon as the recording ends; off: only fill in the prompt for editing",
        default=True,
    )


def draw_live_words(layout, text, stable):
    """The words heard so far while recording: the settled part as usual, the changing tail greyed."""
    settled, tail = progress.live_words(text, stable)
    if not settled and not tail:
        return
    box = layout.box()
    if settled:
        box.label(text=settled, icon="OUTLINER_OB_SPEAKER")
    if tail:
        row = box.row()
        row.active = False  # greyed: these words may still change
        row.label(text=tail, icon="BLANK1" if settled else "OUTLINER_OB_SPEAKER")


def settings_of(context):
    return context.scene.voicebrush


def generation_options(context):
    """Operator properties for voicebrush.generate from the panel's settings."""
    settings = settings_of(context)
    options = {
        "placement": settings.placement,
        "negative_prompt": settings.negative_prompt,
        "steps": settings.steps,
        "seed": settings.seed,
        "plane_distance": settings.plane_distance,
        "size": "",
        "source": settings.source,
        "strength": settings.strength,
        "render_engine": settings.render_engine,
    }
    if settings.size_mode == "CAMERA":
        render = context.scene.render
        frame_aspect = framing.render_aspect(render.resolution_x, render.resolution_y,
                                             render.pixel_aspect_x, render.pixel_aspect_y)
        options["size"] = framing.generation_size_for_camera(frame_aspect, settings.long_side)
    return options


def storyboard_script(context):
    """The script the panel's Make Storyboard sends: the picked text, else the one-line field."""
    settings = settings_of(context)
    if settings.storyboard_text is not None and settings.storyboard_text.as_string().strip():
        return settings.storyboard_text.as_string()
    return settings.storyboard_script


def storyboard_options(context):
    """Operator properties for voicebrush.storyboard from the panel's settings (the script aside)."""
    settings = settings_of(context)
    options = {
        "style": settings.style,
        "frames_per_shot": settings.frames_per_shot,
        "seed_mode": settings.seed_mode,
        "negative_prompt": settings.negative_prompt,
        "steps": settings.steps,
        "seed": settings.seed,
        "size": generation_options(context)["size"],
    }
    return options


class VIEW3D_PT_voicebrush(Panel):
    bl_label = "Voicebrush"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Voicebrush"

    def draw(self, context):
        layout = self.layout
        settings = settings_of(context)
        recording = progress.recording

        column = layout.column(align=True)
        row = column.row(align=True)
        row.scale_y = 1.5
        if recording.active:
            row.operator("voicebrush.record", text="Stop  %.1f s" % recording.seconds, icon="SNAP_FACE",
                         depress=True).mode = "TOGGLE"
            column.progress(factor=recording.level, text="Level")
            draw_live_words(column, *recording.partial)
        elif recording.transcribing:
            row.label(text="Transcribing...", icon="SORTTIME")
        else:
            row.operator("voicebrush.record", text="Record", icon="REC").mode = "TOGGLE"
        column.prop(settings, "generate_after_recording")
        column.label(text="Hold Ctrl Alt V in the viewport to talk", icon="INFO")

        layout.prop(settings, "transcript", text="")

        column = layout.column()
        column.prop(settings, "source", text="From")
        if settings.source == "RENDER":
            column.prop(settings, "strength", slider=True)
            column.prop(settings, "render_engine", text="")
        column.prop(settings, "placement", text="")
        if settings.placement == "PLANE":
            column.prop(settings, "plane_distance")
        needs_camera = settings.placement != "REFERENCE" or settings.source != "PROMPT"
        if needs_camera and context.scene.camera is None:
            column.label(text="The scene has no active camera", icon="ERROR")
        if settings.placement == "PROJECT" and not any(obj.type == "MESH" for obj in context.selected_objects):
            column.label(text="Select the mesh objects to project onto", icon="ERROR")

        box = layout.box()
        box.use_property_split = True
        box.prop(settings, "negative_prompt", text="Negative")
        box.prop(settings, "steps")
        box.prop(settings, "seed")
        box.prop(settings, "size_mode")
        if settings.size_mode == "CAMERA":
            box.prop(settings, "long_side")

        job = progress.current_job()
        running = job is not None and not job.finished
        row = layout.row(align=True)
        row.scale_y = 1.5
        row.enabled = not running
        generate = row.operator("voicebrush.generate", text="Generate", icon="IMAGE_DATA")
        generate.prompt = settings.transcript
        for key, value in generation_options(context).items():
            setattr(generate, key, value)

        if job is not None:
            self.draw_job(layout, job, running)

        self.draw_storyboard(context, layout.box(), settings, running)

        row = layout.row()
        preferences.draw_connection(row)
        row.operator("voicebrush.test_connection", text="", icon="FILE_REFRESH")

    def draw_storyboard(self, context, box, settings, running):
        box.label(text="Storyboard", icon="SEQUENCE")
        box.prop(settings, "storyboard_script", text="")
        box.prop(settings, "storyboard_text", text="Text")
        column = box.column(align=True)
        column.prop(settings, "style")
        row = column.row(align=True)
        row.prop(settings, "frames_per_shot", text="Frames")
        row.prop(settings, "seed_mode", text="")
        row = box.row(align=True)
        row.enabled = not running
        make = row.operator("voicebrush.storyboard", text="Make Storyboard", icon="SEQUENCE")
        make.script = storyboard_script(context)
        for key, value in storyboard_options(context).items():
            setattr(make, key, value)
        row.operator("voicebrush.record", text="", icon="REC").target = "STORYBOARD"
        shots = animatic.shot_cameras(context.scene)
        if shots:
            box.prop(settings, "redo_text")
            column = box.column(align=True)
            for index, camera in shots:
                row = column.row(align=True)
                row.label(text="%d: %s" % (index, camera.get(animatic.CAPTION_KEY, "")), icon="CAMERA_DATA")
                redo = row.operator("voicebrush.redo_shot", text="", icon="FILE_REFRESH")
                redo.camera = camera.name
                redo.text = settings.redo_text

    def draw_job(self, layout, job, running):
        box = layout.box()
        if running:
            row = box.row(align=True)
            row.progress(factor=job.fraction, text=job.status_line())
            row.operator("voicebrush.cancel", text="", icon="CANCEL")
        else:
            box.label(text=job.status_line(), icon="CHECKMARK" if job.stage == "done" else "ERROR")
        icon_id = preview_icon_id()
        if icon_id:
            box.template_icon(icon_value=icon_id, scale=8.0)


# The daemon's latest preview, shown in the panel: a preview collection, not an image
# datablock, so progress never lands in the .blend or in the undo history.
_previews = None
_preview_icon = 0
_preview_serial = 0


def show_preview(jpeg, serial):
    """Show a preview JPEG (from a progress event) in the panel; `serial` orders them."""
    global _preview_icon, _preview_serial
    if _previews is None or not jpeg or serial == _preview_serial:
        return _preview_icon
    folder = os.path.join(tempfile.gettempdir(), "voicebrush-previews")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "preview-%d-%d.jpg" % (os.getpid(), serial % 2))
    with open(path, "wb") as handle:
        handle.write(jpeg)
    # Previews are cached by name: a new name per update makes Blender read the file again.
    name = "preview-%d" % serial
    _previews.clear()
    _preview_icon = _previews.load(name, path, "IMAGE").icon_id
    _preview_serial = serial
    return _preview_icon


def latest_preview():
    """The ImagePreview shown now, or None."""
    if _previews is None or not _preview_serial:
        return None
    return _previews.get("preview-%d" % _preview_serial)


def preview_icon_id():
    return _preview_icon


def clear_preview():
    global _preview_icon, _preview_serial
    if _previews is not None:
        _previews.clear()
    _preview_icon = _preview_serial = 0


def redraw(context):
    """Redraw the sidebars that show the panel (progress changes outside any event)."""
    screen = getattr(context, "screen", None)
    if screen is None:
        return
    for area in screen.areas:
        if area.type == "VIEW_3D":
            for region in area.regions:
                if region.type == "UI":
                    region.tag_redraw()


CLASSES = (VoicebrushSettings, VIEW3D_PT_voicebrush)


def register():
    global _previews
    import bpy.utils.previews

    bpy.types.Scene.voicebrush = PointerProperty(type=VoicebrushSettings)
    _previews = bpy.utils.previews.new()


def unregister():
    global _previews
    import bpy.utils.previews

    clear_preview()
    if _previews is not None:
        bpy.utils.previews.remove(_previews)
        _previews = None
    del bpy.types.Scene.voicebrush
