"""Operators: voicebrush.generate (also the scripting API), record, cancel, test connection.

In the UI, network and recording run in worker threads and a modal operator
applies their results on the main thread at each timer event. In background
mode (bpy.app.background) no event ever arrives, so execute() runs to completion.
"""

import dataclasses
import os
import tempfile
import time

import bpy
from bpy.props import EnumProperty, FloatProperty, IntProperty, StringProperty
from bpy.types import Operator

from . import framing, jobs, panel, placement, preferences, progress, projection, scene_capture, status
from .capture import MicrophoneError, Recorder, record, wav_seconds
from .voicebrush_client import Client, VoicebrushError

TIMER_INTERVAL_S = 0.1

# Recordings shorter than this are a slipped finger, not a prompt.
SHORTEST_RECORDING_S = 0.3

# What can stop a request before anything is sent: each says what to do.
REQUEST_ERRORS = (VoicebrushError, placement.PlacementError, scene_capture.CaptureError)

# Codes that say something about the connection rather than about one job.
CONNECTION_CODES = ("unreachable", "timeout", "invalid_token", "bad_response", "bad_url")

_last_result = jobs.LastResult()


def runs_to_completion():
    """True where no event or timer would ever reach a modal operator (background mode)."""
    return bpy.app.background


def set_status_bar(context, text):
    workspace = getattr(context, "workspace", None)
    if workspace is not None:
        workspace.status_text_set(text)


def report_failure(operator, error):
    """Report an error as the operator's (a cancel as a warning) and end it cancelled."""
    code = getattr(error, "code", None)
    if code in CONNECTION_CODES:
        status.remember(False, str(error))
    operator.report({"WARNING"} if code == "cancelled" else {"ERROR"}, str(error))
    return {"CANCELLED"}


def camera_pictures(context, source, size, server, token, render_engine="AUTO"):
    """(size, {"depth" or "image": PNG}) of what the active camera sees for `source`, at the
    generation size: `size`, or the render's aspect at the daemon's native pixel count."""
    if source == "PROMPT":
        return size, {}
    if scene_capture.active_camera(context) is None:
        what = "Depth from the camera" if source == "DEPTH" else "Starting from the render"
        raise scene_capture.CaptureError(what + " needs an active camera: add a camera, or make one "
                                         "the scene's camera (Scene properties > Camera).")
    if not size:
        size = framing.size_at_native_area(scene_capture.render_aspect(context.scene), *jobs.native_size(server, token))
    try:
        width, height = (int(side) for side in size.lower().split("x"))
    except ValueError:
        raise VoicebrushError("Size must be WxH in pixels, such as 768x432, not %r." % size, code="invalid_value")
    if source == "DEPTH":
        return size, {"depth": scene_capture.depth_picture(context, width, height)}
    return size, {"image": scene_capture.render_picture(context, width, height, render_engine)}


class FollowsAJobModally(object):
    """In the UI a job runs in a worker thread and the operator follows it on timer events.

    Esc asks the job to cancel, each tick shows its progress, and once it has ended the
    operator's `_finish(context, job)` changes the scene on the main thread: bpy is not
    safe to touch from the worker.
    """

    def _follow(self, context, job):
        self._job = job.start()
        progress.started(job, self)
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        window_manager.modal_handler_add(self)
        self._show_progress(context)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS" and not job.finished:
            job.cancel()
            self._show_progress(context)
            return {"RUNNING_MODAL"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        self._show_progress(context)
        if not job.finished:
            return {"PASS_THROUGH"}
        context.window_manager.event_timer_remove(self._timer)
        set_status_bar(context, None)
        progress.ended(job)
        panel.redraw(context)
        return self._finish(context, job)


class VOICEBRUSH_OT_generate(FollowsAJobModally, Operator):
    """Generate a picture from a prompt or a recording and put it in the scene"""

    bl_idname = "voicebrush.generate"
    bl_label = "Generate Picture"
    bl_options = {"REGISTER", "UNDO"}

    # SKIP_SAVE everywhere: a script's call never inherits the previous call's values.
    prompt: StringProperty(name="Prompt", description="What to draw; with a recording, replaces what was heard",
                           default="", options={"SKIP_SAVE"})
    audio_path: StringProperty(name="Recording", description="A spoken prompt (wav, flac, ogg, mp3, webm, m4a)",
                               default="", subtype="FILE_PATH", options={"SKIP_SAVE"})
    placement: EnumProperty(name="Placement", items=placement.PLACEMENTS, default="REFERENCE", options={"SKIP_SAVE"})
    server: StringProperty(name="Server", description="Daemon URL; empty for the add-on preferences'",
                           default="", options={"SKIP_SAVE"})
    token: StringProperty(name="Token", description="Daemon token; empty for the add-on preferences'",
                          default="", subtype="PASSWORD", options={"SKIP_SAVE", "HIDDEN"})
    seed: IntProperty(name="Seed", description="-1 picks a random seed (and shows it here)",
                      default=-1, min=-1, options={"SKIP_SAVE"})
    steps: IntProperty(name="Steps", description="Denoising steps; 0 for the daemon's default",
                       default=0, min=0, max=500, options={"SKIP_SAVE"})
    negative_prompt: StringProperty(name="Negative Prompt", default="", options={"SKIP_SAVE"})
    size: StringProperty(name="Size", description="WxH in pixels, multiples of 8; empty for the model's default",
                         default="", options={"SKIP_SAVE"})
    plane_distance: FloatProperty(name="Plane Distance", description="How far in front of the camera a plane stands",
                                  default=10.0, min=0.01, unit="LENGTH", options={"SKIP_SAVE"})
    source: EnumProperty(name="Source", items=jobs.SOURCES, default="PROMPT", options={"SKIP_SAVE"})
    strength: FloatProperty(name="Strength", description="Render source: how much of the render may change (0 to 1)",
                            default=jobs.DEFAULT_STRENGTH, min=0.01, max=1.0, subtype="FACTOR", options={"SKIP_SAVE"})
    render_engine: EnumProperty(name="Render With", items=scene_capture.RENDER_ENGINES, default="AUTO",
                                options={"SKIP_SAVE"})
    dictation: StringProperty(name="Streamed Take", description="A take streamed while it was recorded (the "
                              "record operator's)", default="", options={"SKIP_SAVE", "HIDDEN"})

    # -- background mode and scripts: blocks until the picture is in -------

    def execute(self, context):
        try:
            request = self._request(context)
        except REQUEST_ERRORS as exc:
            return self._fail(exc)
        images = _last_result.recall(request)  # a redo with another placement: no new generation
        if images is None:
            job = jobs.GenerationJob(request)
            progress.started(job)
            try:
                job.run()
            finally:
                progress.ended(job)
            if job.error is not None:
                return self._fail(job.error)
            images = job.images
            _last_result.remember(request, images)
        return self._place(context, images, placement.view_of(context))

    # -- the UI: a worker thread, and a modal operator on a timer ---------

    def invoke(self, context, event):
        if runs_to_completion():
            return self.execute(context)
        try:
            request = self._request(context)
        except REQUEST_ERRORS as exc:
            return self._fail(exc)
        self._view = placement.view_of(context)
        self._transcript_shown = False
        panel.clear_preview()
        return self._follow(context, jobs.GenerationJob(request))

    def _show_progress(self, context):
        job = self._job
        if job.preview_serial:
            panel.show_preview(job.preview, job.preview_serial)
        if (self.audio_path or self.dictation) and job.transcript is not None and not self._transcript_shown:
            # What was heard, in the panel's prompt field, ready to edit and generate again.
            panel.settings_of(context).transcript = job.prompt or job.transcript
            self._transcript_shown = True
        set_status_bar(context, "Voicebrush: %s  (Esc to cancel)" % job.status_line())
        panel.redraw(context)

    def _finish(self, context, job):
        if job.error is not None:
            return self._fail(job.error)
        _last_result.remember(job.request, job.images)
        return self._place(context, job.images, self._view)

    # -- shared ---------------------------------------------------------------

    def _request(self, context):
        try:
            return self._build_request(context)
        except REQUEST_ERRORS:
            if self.dictation:
                jobs.drop_dictation(self.dictation)  # the daemon must not wait for a take nobody follows
            raise

    def _build_request(self, context):
        prefs = preferences.preferences(context)
        # A random seed is picked here and written back, so the Adjust Last Operation panel
        # shows it and a redo with another placement reuses the same picture.
        self.seed = jobs.pick_seed(self.seed)
        request = jobs.GenerationRequest(
            prompt=self.prompt.strip(),
            audio_path=bpy.path.abspath(self.audio_path) if self.audio_path else "",
            negative_prompt=self.negative_prompt.strip(),
            seed=self.seed,
            steps=self.steps,
            size=self.size.strip(),
            server=self.server.strip() or prefs.server,
            token=self.token.strip() or prefs.token,
            source=self.source,
            strength=self.strength,
            dictation=self.dictation,
        )
        request.check()
        # The objects to project onto are the ones selected now, not when the picture arrives.
        self._targets = projection.targets(context) if self.placement == "PROJECT" else []
        placement.check_possible(context, self.placement, self._targets)  # before the daemon works for nothing
        if request.source != "PROMPT" and not request.dictation:
            request = self._with_camera_pictures(context, request)
        return request

    def _with_camera_pictures(self, context, request):
        size, pictures = camera_pictures(context, request.source, request.size, request.server, request.token,
                                         self.render_engine)
        return dataclasses.replace(request, size=size, **pictures)

    def _place(self, context, images, view):
        names = []
        image = None
        try:
            for generated in images:
                image = placement.add_image(generated)
                placement.place(context, self.placement, image, generated.properties, view=view,
                                plane_distance=self.plane_distance, targets=getattr(self, "_targets", ()))
                names.append(image.name)
                image = None
        except placement.PlacementError as exc:
            placement.remove_image(image)
            return self._fail(exc)
        status.remember(True, "Connected to %s" % (self.server or preferences.preferences(context).server))
        self.report({"INFO"}, "Voicebrush: placed %s" % ", ".join(repr(name) for name in names))
        return {"FINISHED"}

    def _fail(self, error):
        return report_failure(self, error)


class VOICEBRUSH_OT_record(Operator):
    """Record a spoken prompt: click to start and again to stop, or hold Ctrl Alt V while speaking"""

    bl_idname = "voicebrush.record"
    bl_label = "Record Prompt"
    bl_options = {"REGISTER"}

    mode: EnumProperty(
        name="Mode",
        items=(
            ("TOGGLE", "Toggle", "Start recording; run again to stop"),
            ("PUSH_TO_TALK", "Push to Talk", "Record while the key that started it is held"),
        ),
        default="TOGGLE",
        options={"SKIP_SAVE"},
    )
    seconds: FloatProperty(name="Seconds", description="Scripts and background mode: how long to record",
                           default=5.0, min=0.5, max=600.0, options={"SKIP_SAVE"})
    target: EnumProperty(
        name="For",
        items=(
            ("PROMPT", "Prompt", "A spoken prompt for a picture"),
            ("STORYBOARD", "Storyboard", "A dictated storyboard script (\"shot one, ...; next shot, ...\")"),
        ),
        default="PROMPT",
        options={"SKIP_SAVE"},
    )

    def execute(self, context):
        prefs = preferences.preferences(context)
        self._take = None
        try:
            wav = record(self.seconds, prefs.input_device or None,
                         on_started=lambda recorder: self._start_streaming(context, recorder))
        except MicrophoneError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        except REQUEST_ERRORS as exc:
            return report_failure(self, exc)
        return self._use_recording(context, wav, blocking=True)

    def invoke(self, context, event):
        state = progress.recording
        if state.active:
            state.stop_requested = True  # the second click of the toggle
            return {"FINISHED"}
        if runs_to_completion():
            return self.execute(context)
        prefs = preferences.preferences(context)
        try:
            self._recorder = Recorder(prefs.input_device or None, prefs.max_recording_seconds).start()
        except MicrophoneError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        try:
            self._start_streaming(context, self._recorder)
        except REQUEST_ERRORS as exc:
            self._recorder.stop()
            return report_failure(self, exc)
        self._key = event.type if self.mode == "PUSH_TO_TALK" else None
        self._transcription = None
        state.__init__()
        state.active = True
        state.operator = self
        window_manager = context.window_manager
        self._timer = window_manager.event_timer_add(TIMER_INTERVAL_S, window=context.window)
        window_manager.modal_handler_add(self)
        set_status_bar(context, "Voicebrush: recording... %s" % (
            "release the key to stop" if self._key else "click Stop to end, Esc to discard"))
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        state = progress.recording
        if self._transcription is not None:
            if event.type != "TIMER" or not self._transcription.finished:
                return {"PASS_THROUGH"}
            self._end_modal(context)
            return self._show_transcript(context, self._transcription)

        if event.type == "ESC" and event.value == "PRESS":
            self._recorder.stop()
            if self._take is not None:
                self._take.cancel()
            self._end_modal(context)
            self.report({"INFO"}, "Voicebrush: recording discarded")
            return {"CANCELLED"}
        stop = False
        if self._key is not None and event.type == self._key:
            if event.value != "RELEASE":
                return {"RUNNING_MODAL"}  # key repeat while held
            stop = True
        elif event.type == "TIMER":
            state.seconds = self._recorder.seconds
            state.level = self._recorder.level
            if self._take is not None:
                state.partial = self._take.partial  # the words so far, streamed: (text, stable)
            panel.redraw(context)
            stop = state.stop_requested or self._recorder.full
        if not stop:
            return {"PASS_THROUGH"}

        wav = self._recorder.stop()
        state.active = False
        result = self._use_recording(context, wav, blocking=False)
        if result == {"RUNNING_MODAL"}:
            state.transcribing = True
            panel.redraw(context)
        else:
            self._end_modal(context)
        return result

    def _start_streaming(self, context, recorder):
        """Stream a spoken prompt while it is recorded: the daemon hears it as it is spoken (the
        panel shows the words live). When the picture follows the recording, it draws the moment
        the take ends; otherwise the take is for its words only and draws nothing.

        The pictures a source needs are taken now, and the seed picked, as Generate would.
        A daemon without streaming gets the whole take at the end (the client's fallback)."""
        self._take = None
        if self.target != "PROMPT":
            return
        prefs = preferences.preferences(context)
        client = Client(prefs.server or None, prefs.token, timeout=jobs.NETWORK_TIMEOUT_S)
        if not panel.settings_of(context).generate_after_recording:
            take = client.start_dictation(rate=recorder.sample_rate, transcribe_only=True)
            recorder.listen(take.push)
            self._take = take
            return
        options = panel.generation_options(context)
        options["seed"] = jobs.pick_seed(options["seed"])
        targets = projection.targets(context) if options["placement"] == "PROJECT" else []
        placement.check_possible(context, options["placement"], targets)
        size, pictures = camera_pictures(context, options["source"], options["size"], prefs.server, prefs.token,
                                         options["render_engine"])
        request = jobs.GenerationRequest(negative_prompt=options["negative_prompt"].strip(), seed=options["seed"],
                                         steps=options["steps"], size=size, source=options["source"],
                                         strength=options["strength"])
        take = client.start_dictation(rate=recorder.sample_rate, **dict(request.options(), **pictures))
        recorder.listen(take.push)
        self._take, self._take_options = take, dict(options, size=size)

    def _use_recording(self, context, wav, blocking):
        take, self._take = getattr(self, "_take", None), None
        if wav_seconds(wav) < SHORTEST_RECORDING_S:
            if take is not None:
                take.cancel()
            self.report({"WARNING"}, "Voicebrush: the recording was too short; hold the key while you speak.")
            return {"CANCELLED"}
        settings = panel.settings_of(context)
        prefs = preferences.preferences(context)
        if self.target == "STORYBOARD":
            return self._storyboard(context, save_recording(wav), blocking)
        if settings.generate_after_recording:
            if take is not None:  # streamed: the daemon has heard it all but the end
                spoken = dict(self._take_options, dictation=jobs.keep_dictation(take))
            else:
                spoken = dict(panel.generation_options(context), audio_path=save_recording(wav))
            try:
                result = bpy.ops.voicebrush.generate("EXEC_DEFAULT" if blocking else "INVOKE_DEFAULT",
                                                     prompt="", **spoken)
            except RuntimeError as exc:  # background mode turns the reported error into this
                if take is not None:
                    jobs.drop_dictation(spoken["dictation"])
                self.report({"ERROR"}, str(exc).replace("Error: ", "", 1).strip())
                return {"CANCELLED"}
            return {"FINISHED"} if result & {"FINISHED", "RUNNING_MODAL"} else {"CANCELLED"}
        # A bad server URL, as any failure, comes back as the transcription's error.
        transcription = jobs.Transcription(wav, prefs.server, prefs.token, dictation=take)
        if blocking:
            return self._show_transcript(context, transcription.run())
        self._transcription = transcription.start()
        return {"RUNNING_MODAL"}

    def _storyboard(self, context, path, blocking):
        try:
            result = bpy.ops.voicebrush.storyboard("EXEC_DEFAULT" if blocking else "INVOKE_DEFAULT",
                                                   audio_path=path, **panel.storyboard_options(context))
        except RuntimeError as exc:  # background mode turns the reported error into this
            self.report({"ERROR"}, str(exc).replace("Error: ", "", 1).strip())
            return {"CANCELLED"}
        return {"FINISHED"} if result & {"FINISHED", "RUNNING_MODAL"} else {"CANCELLED"}

    def _show_transcript(self, context, transcription):
        progress.recording.transcribing = False
        if transcription.error is not None:
            self.report({"ERROR"}, str(transcription.error))
            return {"CANCELLED"}
        panel.settings_of(context).transcript = transcription.text
        panel.redraw(context)
        self.report({"INFO"}, "Voicebrush heard: %s" % transcription.text)
        return {"FINISHED"}

    def _end_modal(self, context):
        context.window_manager.event_timer_remove(self._timer)
        set_status_bar(context, None)
        progress.recording.__init__()
        panel.redraw(context)


def save_recording(wav):
    """Keep a recording as a file, so the generate operator (and its redo) can send it."""
    folder = os.path.join(tempfile.gettempdir(), "voicebrush-recordings")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "recording-%s-%d.wav" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid()))
    with open(path, "wb") as handle:
        handle.write(wav)
    return path


class VOICEBRUSH_OT_cancel(Operator):
    """Stop the running generation"""

    bl_idname = "voicebrush.cancel"
    bl_label = "Cancel Generation"

    @classmethod
    def poll(cls, context):
        return bool(progress.running()) or progress.recording.active

    def execute(self, context):
        if progress.recording.active:
            progress.recording.stop_requested = True
        progress.cancel_all()
        return {"FINISHED"}


class VOICEBRUSH_OT_test_connection(Operator):
    """Ask the daemon whether it is up, its models loaded and the token accepted"""

    bl_idname = "voicebrush.test_connection"
    bl_label = "Test Connection"

    server: StringProperty(name="Server", default="", options={"SKIP_SAVE", "HIDDEN"})
    token: StringProperty(name="Token", default="", subtype="PASSWORD", options={"SKIP_SAVE", "HIDDEN"})

    def execute(self, context):
        prefs = preferences.preferences(context)
        result = status.check(self.server or prefs.server, self.token or prefs.token)
        panel.redraw(context)
        if not result.ok:
            self.report({"ERROR"}, result.line)
            return {"CANCELLED"}
        self.report({"INFO"}, result.line)
        return {"FINISHED"}


CLASSES = (VOICEBRUSH_OT_generate, VOICEBRUSH_OT_record, VOICEBRUSH_OT_cancel, VOICEBRUSH_OT_test_connection)

_keymap_items = []


def register_keymap():
    """Ctrl Alt V in the 3D viewport: push to talk."""
    keyconfig = bpy.context.window_manager.keyconfigs.addon
    if keyconfig is None:  # background mode has no key configurations
        return
    keymap = keyconfig.keymaps.new(name="3D View", space_type="VIEW_3D")
    item = keymap.keymap_items.new(VOICEBRUSH_OT_record.bl_idname, "V", "PRESS", ctrl=True, alt=True)
    item.properties.mode = "PUSH_TO_TALK"
    _keymap_items.append((keymap, item))


def unregister_keymap():
    for keymap, item in _keymap_items:
        keymap.keymap_items.remove(item)
    _keymap_items.clear()
