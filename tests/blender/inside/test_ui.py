"""The UI path: invoke starts a worker thread, modal applies its results on timer events.

Timers never fire and no event arrives in the bpy module, so these checks send
the modal operators stand-in events, as Blender's event loop would.
"""

import os
import time

import pytest

from conftest import ADDON, PROMPT, USER_RESOURCES, daemon_client, drive, event


def running_operator(addon):
    entries = addon.progress.running()
    assert len(entries) == 1
    return entries[0]


def test_generate_runs_in_the_background_and_places_on_the_main_thread(scene, bpy, addon, ui_mode):
    assert "UNDO" in addon.operators.VOICEBRUSH_OT_generate.bl_options  # the undo step for the modal run
    started = time.monotonic()
    result = bpy.ops.voicebrush.generate("INVOKE_DEFAULT", prompt=PROMPT, placement="PLANE", steps=6,
                                         size="256x144", seed=3)
    assert result == {"RUNNING_MODAL"}
    assert time.monotonic() - started < 1.0, "invoke must return at once"
    job, operator = running_operator(addon)
    assert bpy.context.active_object.name == "Cube", "nothing may be placed before the job ends"

    # Other events go on to the rest of Blender while the job runs.
    assert operator.modal(scene, event("MOUSEMOVE")) == {"PASS_THROUGH"}
    lines, fractions = [], []

    def watch(result):
        lines.append(job.status_line())
        fractions.append(job.fraction)

    assert drive(operator, scene, on_tick=watch) == {"FINISHED"}
    placed_after = time.monotonic() - started
    print("generate-to-placed (UI path, 256x144, 6 steps): %.2f s" % placed_after)

    assert any(line.startswith("Generating step") for line in lines), lines
    assert max(fractions) == pytest.approx(1.0)
    preview = addon.panel.latest_preview()
    assert preview is not None and tuple(preview.image_size) != (0, 0), "the daemon's preview reaches the panel"
    plane = bpy.context.active_object
    assert plane.type == "MESH" and plane.name.startswith("A ruined temple")
    assert plane["seed"] == 3 and plane["steps"] == 6
    assert addon.progress.running() == []
    assert addon.progress.current_job().stage == "done"


def test_escape_cancels_the_job_on_the_daemon(scene, bpy, addon, ui_mode):
    images = len(bpy.data.images)
    assert bpy.ops.voicebrush.generate("INVOKE_DEFAULT", prompt=PROMPT, steps=300, size="256x256") == {"RUNNING_MODAL"}
    job, operator = running_operator(addon)
    deadline = time.monotonic() + 30
    while job.step < 1 and time.monotonic() < deadline:  # let it start denoising
        operator.modal(scene, event("TIMER"))
        time.sleep(0.05)
    assert job.step >= 1
    assert operator.modal(scene, event("ESC", "PRESS")) == {"RUNNING_MODAL"}
    cancelled_at = time.monotonic()
    assert drive(operator, scene, timeout=30) == {"CANCELLED"}
    assert time.monotonic() - cancelled_at < 10
    assert job.stage == "cancelled" and job.step < 300
    assert len(bpy.data.images) == images


def test_cancel_button_stops_a_running_generation(scene, bpy, addon, ui_mode):
    assert not bpy.ops.voicebrush.cancel.poll()
    assert bpy.ops.voicebrush.generate("INVOKE_DEFAULT", prompt=PROMPT, steps=300) == {"RUNNING_MODAL"}
    job, operator = running_operator(addon)
    assert bpy.ops.voicebrush.cancel() == {"FINISHED"}
    assert drive(operator, scene, timeout=30) == {"CANCELLED"}
    assert job.stage == "cancelled"


def test_panel_settings_become_operator_options(scene, bpy, addon):
    """The sidebar tab's settings as the Generate button passes them (the module cannot draw panels)."""
    panel_class = addon.panel.VIEW3D_PT_voicebrush
    assert panel_class.bl_category == "Voicebrush" and panel_class.bl_space_type == "VIEW_3D"
    settings = scene.scene.voicebrush
    settings.size_mode = "CAMERA"
    settings.long_side = 256
    options = addon.panel.generation_options(scene)
    assert options["size"] == "256x144"  # the factory camera renders 16:9


# -- recording through the ALSA virtual microphone, with the bundled sounddevice --------


@pytest.fixture
def microphone(scene, addon):
    """`filemic` (HOME/.asoundrc) plays the spoken prompt as if it were said into a microphone."""
    prefs = bpy_prefs(scene)
    prefs.input_device = "filemic"
    prefs.max_recording_seconds = 6.0  # the clip is 5.2 s; the file device then gives silence
    yield prefs
    # A check that failed mid-take left the recorder open: PortAudio's thread would go on
    # calling into it and take the whole Blender process down with the other checks' reports.
    try:
        operator = addon.progress.recording.operator
        recorder, take = getattr(operator, "_recorder", None), getattr(operator, "_take", None)
    except ReferenceError:  # the operator's Blender side is gone, and its recorder with it
        recorder = take = None
    if recorder is not None:
        recorder.stop()
    if take is not None:
        take.cancel()
    addon.progress.recording.__init__()


def wait_for_the_whole_clip(operator):
    """The file device delivers far faster than real time: the 6 s cap fills within moments.

    No TIMER is sent meanwhile, so the stop comes from the key release or the second click."""
    deadline = time.monotonic() + 20
    while not operator._recorder.full and time.monotonic() < deadline:
        time.sleep(0.02)
    assert operator._recorder.full and operator._recorder.seconds == pytest.approx(6.0, abs=0.01)


def bpy_prefs(context):
    return context.preferences.addons[ADDON].preferences


def test_sounddevice_is_the_bundled_wheel(addon):
    import sounddevice

    assert sounddevice.__file__.startswith(os.path.join(USER_RESOURCES, "extensions")), sounddevice.__file__
    import _cffi_backend

    assert _cffi_backend.__file__.startswith(os.path.join(USER_RESOURCES, "extensions"))


def test_push_to_talk_fills_the_transcript(scene, bpy, addon, ui_mode, microphone):
    """Words only: the take streams while it is held (live words), and the daemon's job for it
    ends done with the transcript and no picture."""
    settings = scene.scene.voicebrush
    settings.generate_after_recording = False
    assert bpy.ops.voicebrush.record("INVOKE_DEFAULT", mode="PUSH_TO_TALK") == {"RUNNING_MODAL"}
    operator = addon.progress.recording.operator
    assert addon.progress.recording.active
    take = operator._take
    assert take is not None and take.streaming, "the words-only take goes up as it is recorded"
    key = operator._key
    assert operator.modal(scene, event(key, "PRESS")) == {"RUNNING_MODAL"}  # key repeat while held
    wait_for_the_whole_clip(operator)
    deadline = time.monotonic() + 60
    while not take.partial[0] and time.monotonic() < deadline:  # the daemon decodes as the audio comes
        time.sleep(0.05)
    assert take.partial[0].strip(), "a partial transcript while the key is still held"
    # Releasing the key ends the recording; the take's end is awaited in a worker thread.
    assert operator.modal(scene, event(key, "RELEASE")) == {"RUNNING_MODAL"}
    assert addon.progress.recording.transcribing
    assert drive(operator, scene) == {"FINISHED"}
    heard = settings.transcript.lower()
    assert sum(word in heard for word in ("misty", "harbo", "dawn", "wide", "shot")) >= 2, heard
    assert not addon.progress.recording.active
    record = daemon_client(addon).get_job(take.job_id)
    assert record["status"] == "done" and record["images"] == [], record
    assert record["transcript"].strip() == settings.transcript


def test_words_only_without_streaming_use_the_transcription_route(scene, bpy, addon, ui_mode, microphone, monkeypatch):
    """A daemon without streaming: the take is kept here, and its words come from the
    transcription route, as before; no job is queued to be cancelled."""
    client_class = addon.voicebrush_client.Client
    real_call = client_class._call
    posted_jobs = []

    def older_daemon(self, method, path, body=None, *args, **kwargs):
        if method == "POST" and path == "/v1/jobs":
            posted_jobs.append(body)
            if body and b'"stream_audio"' in body:
                raise addon.voicebrush_client.VoicebrushError("prompt is required", code="invalid_value", status=400,
                                                              param="prompt")
        return real_call(self, method, path, body, *args, **kwargs)

    monkeypatch.setattr(client_class, "_call", older_daemon)
    settings = scene.scene.voicebrush
    settings.generate_after_recording = False
    settings.transcript = ""
    assert bpy.ops.voicebrush.record("INVOKE_DEFAULT", mode="TOGGLE") == {"RUNNING_MODAL"}
    operator = addon.progress.recording.operator
    take = operator._take
    assert take is not None and not take.streaming
    wait_for_the_whole_clip(operator)
    assert bpy.ops.voicebrush.record("INVOKE_DEFAULT", mode="TOGGLE") == {"FINISHED"}
    assert drive(operator, scene) == {"FINISHED"}
    heard = settings.transcript.lower()
    assert sum(word in heard for word in ("misty", "harbo", "dawn", "wide", "shot")) >= 2, heard
    assert len(posted_jobs) == 1, "only the refused streaming job was posted"
    assert take.job_id is None


def test_toggle_recording_streams_then_generates(scene, bpy, addon, ui_mode, microphone, monkeypatch):
    """The take streams while it is recorded: live words in the panel, partials before the transcript."""
    settings = scene.scene.voicebrush
    settings.generate_after_recording = True
    settings.placement, settings.source = "CAMERA_BACKGROUND", "DEPTH"  # the depth rides along with the take
    settings.steps, settings.size_mode, settings.long_side = 2, "CAMERA", 128
    assert bpy.ops.voicebrush.record("INVOKE_DEFAULT", mode="TOGGLE") == {"RUNNING_MODAL"}
    recorder = addon.progress.recording.operator
    take = recorder._take
    assert take is not None and take.streaming, "the daemon streams: the take goes up as it is recorded"
    wait_for_the_whole_clip(recorder)
    deadline = time.monotonic() + 60
    while not take.partial[0] and time.monotonic() < deadline:  # the daemon decodes as the audio comes
        time.sleep(0.05)
    assert take.partial[0].strip(), "a partial transcript while still recording"
    # The panel shows the words live: what it draws on the redraw of the next timer event.
    drawn_live = []
    real_redraw = addon.panel.redraw
    monkeypatch.setattr(addon.panel, "redraw", lambda context: (
        drawn_live.extend(draw_panel(bpy, addon, context)) if addon.progress.recording.active else None,
        real_redraw(context)))
    # The clip filled the recording: the next timer event ends it, as the second click would.
    assert drive(recorder, scene) == {"FINISHED"}
    settled, tail = addon.progress.live_words(*take.partial)
    assert ("label", settled or tail) in drawn_live, drawn_live
    job, generator = running_operator(addon)
    assert job.request.dictation and not job.request.audio_path
    assert drive(generator, scene) == {"FINISHED"}
    assert "partial" in job.events_seen and "transcript" in job.events_seen
    assert job.events_seen.index("partial") < job.events_seen.index("transcript") < job.events_seen.index("done")
    image = scene.scene.camera.data.background_images[0].image
    assert image.packed_file is not None and tuple(image.size) == (128, 72) and image["transcript"].strip()
    assert (image["source"], image["mode"]) == ("DEPTH", "depth")
    assert settings.transcript == image["prompt"], "what was heard shows in the panel, ready to edit"
    record = daemon_client(addon).get_job(image["job"])
    assert record["status"] == "done" and record["mode"] == "depth" and "depth" in record["inputs"]


def test_without_streaming_the_whole_take_is_uploaded(scene, bpy, addon, ui_mode, microphone, monkeypatch):
    """A daemon that has no streaming answers a stream_audio job as it answers any job without a
    prompt (400 on `prompt`); the client then keeps the take and uploads it whole at the end."""
    client_class = addon.voicebrush_client.Client
    real_call = client_class._call

    def older_daemon(self, method, path, body=None, *args, **kwargs):
        if method == "POST" and path == "/v1/jobs" and body and b'"stream_audio"' in body:
            raise addon.voicebrush_client.VoicebrushError("prompt is required", code="invalid_value", status=400,
                                                          param="prompt")
        return real_call(self, method, path, body, *args, **kwargs)

    monkeypatch.setattr(client_class, "_call", older_daemon)
    settings = scene.scene.voicebrush
    settings.generate_after_recording, settings.placement, settings.steps = True, "REFERENCE", 2
    settings.source, settings.render_engine, settings.strength = "RENDER", "WORKBENCH", 0.6
    assert bpy.ops.voicebrush.record("INVOKE_DEFAULT", mode="TOGGLE") == {"RUNNING_MODAL"}
    recorder = addon.progress.recording.operator
    assert recorder._take is not None and not recorder._take.streaming
    wait_for_the_whole_clip(recorder)
    assert bpy.ops.voicebrush.record("INVOKE_DEFAULT", mode="TOGGLE") == {"FINISHED"}
    assert drive(recorder, scene) == {"FINISHED"}
    job, generator = running_operator(addon)
    assert drive(generator, scene) == {"FINISHED"}
    assert "partial" not in job.events_seen
    image = bpy.context.active_object.data
    assert image.packed_file is not None and image["transcript"].strip()
    record = daemon_client(addon).get_job(image["job"])
    assert record["mode"] == "img2img" and record["strength"] == pytest.approx(0.6), "the render went up with the take"


def test_recording_from_a_missing_microphone_says_so(scene, bpy, addon, ui_mode):
    bpy_prefs(scene).input_device = "no such microphone"
    with pytest.raises(RuntimeError, match="Cannot record from the microphone 'no such microphone'"):
        bpy.ops.voicebrush.record("INVOKE_DEFAULT")
    assert not addon.progress.recording.active


# -- the sidebar panel, drawn into a stand-in layout (the bpy module has no window to draw in) --


class StandInLayout(object):
    """Records what a panel draws; every property and operator option must exist for real."""

    def __init__(self, bpy, drawn):
        self._bpy, self.drawn = bpy, drawn

    def __getattr__(self, name):  # use_property_split, scale_y, enabled...: plain settable fields
        if name.startswith("_"):
            raise AttributeError(name)
        return self._child

    def _child(self, *args, **kwargs):
        return StandInLayout(self._bpy, self.drawn)

    def prop(self, data, name, **kwargs):
        assert name in data.bl_rna.properties, "no property %r on %s" % (name, data)
        self.drawn.append(("prop", name))

    def operator(self, idname, **kwargs):
        category, name = idname.split(".")
        properties = getattr(getattr(self._bpy.ops, category), name).get_rna_type().properties
        self.drawn.append(("operator", idname))
        return StandInOperator(idname, properties, self.drawn)

    def label(self, text="", **kwargs):
        self.drawn.append(("label", text))


class StandInOperator(object):
    def __init__(self, idname, properties, drawn):
        object.__setattr__(self, "_where", (idname, properties, drawn))

    def __setattr__(self, name, value):
        idname, properties, drawn = self._where
        assert name in properties, "%s has no property %r" % (idname, name)
        drawn.append(("set", idname, name, value))


class StandInPanel(object):
    """The panel's own methods, on a stand-in layout."""

    def __init__(self, panel_class, layout):
        self._class, self.layout = panel_class, layout

    def __getattr__(self, name):
        return getattr(self._class, name).__get__(self)


def draw_panel(bpy, addon, context):
    drawn = []
    StandInPanel(addon.panel.VIEW3D_PT_voicebrush, StandInLayout(bpy, drawn)).draw(context)
    return drawn


def test_panel_draws_sources_and_the_storyboard_box(scene, bpy, addon):
    settings = scene.scene.voicebrush
    settings.source, settings.placement = "RENDER", "PROJECT"
    settings.storyboard_script = "shot one, a fox. next shot, a hare"
    drawn = draw_panel(bpy, addon, scene)
    assert ("prop", "source") in drawn and ("prop", "strength") in drawn and ("prop", "render_engine") in drawn
    assert ("set", "voicebrush.generate", "source", "RENDER") in drawn
    assert ("set", "voicebrush.generate", "placement", "PROJECT") in drawn
    assert ("set", "voicebrush.storyboard", "script", "shot one, a fox. next shot, a hare") in drawn
    assert ("set", "voicebrush.record", "target", "STORYBOARD") in drawn
    assert not any(item[0] == "operator" and item[1] == "voicebrush.redo_shot" for item in drawn)

    text = bpy.data.texts.new("Script")
    text.write("a lighthouse\na ship")
    settings.storyboard_text = text
    assert ("set", "voicebrush.storyboard", "script", "a lighthouse\na ship") in draw_panel(bpy, addon, scene)


def test_panel_lists_the_shots_with_a_redo_each(scene, bpy, addon):
    assert bpy.ops.voicebrush.storyboard(script="a lighthouse\na ship", steps=2, size="64x64") == {"FINISHED"}
    scene.scene.voicebrush.redo_text = "a ship at sea"
    drawn = draw_panel(bpy, addon, scene)
    assert ("label", "1: a lighthouse") in drawn and ("label", "2: a ship") in drawn
    assert ("set", "voicebrush.redo_shot", "camera", "Shot 2") in drawn
    assert ("set", "voicebrush.redo_shot", "text", "a ship at sea") in drawn
