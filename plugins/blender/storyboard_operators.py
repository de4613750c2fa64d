"""Operators: voicebrush.storyboard (a script becomes shot cameras and an animatic) and
voicebrush.redo_shot (one shot drawn again).

As voicebrush.generate: in the UI the daemon is followed from a worker thread and the
scene is changed on the main thread when it is done; in background mode execute()
blocks until the storyboard is in the scene.
"""

import dataclasses

import bpy
from bpy.props import EnumProperty, IntProperty, StringProperty
from bpy.types import Operator

from . import animatic, boards, framing, jobs, operators, panel, placement, preferences, progress, scene_capture, status


class _FollowsADaemonJob(operators.FollowsAJobModally):
    """The shared run: block in execute(); in invoke(), a worker thread followed on timer events."""

    def execute(self, context):
        try:
            job = self._job_for(context)
        except operators.REQUEST_ERRORS as exc:
            return operators.report_failure(self, exc)
        progress.started(job)
        try:
            job.run()
        finally:
            progress.ended(job)
        return self._finish(context, job)

    def invoke(self, context, event):
        if operators.runs_to_completion():
            return self.execute(context)
        try:
            job = self._job_for(context)
        except operators.REQUEST_ERRORS as exc:
            return operators.report_failure(self, exc)
        return self._follow(context, job)

    def _show_progress(self, context):
        operators.set_status_bar(context, "Voicebrush: %s  (Esc to cancel)" % self._job.status_line())
        panel.redraw(context)

    def _finish(self, context, job):
        if job.error is not None:
            return operators.report_failure(self, job.error)
        try:
            return self._apply(context, job)
        except placement.PlacementError as exc:
            return operators.report_failure(self, exc)


class VOICEBRUSH_OT_storyboard(_FollowsADaemonJob, Operator):
    """Draw a storyboard from a script: a camera per shot with its picture, markers, and an animatic in the sequencer"""

    bl_idname = "voicebrush.storyboard"
    bl_label = "Make Storyboard"
    bl_options = {"REGISTER", "UNDO"}

    script: StringProperty(name="Script", description="One shot per line, or split at \"shot two\", \"next shot\", "
                           "\"cut to\"", default="", options={"SKIP_SAVE"})
    audio_path: StringProperty(name="Recording", description="A dictated script", default="", subtype="FILE_PATH",
                               options={"SKIP_SAVE"})
    frames_per_shot: IntProperty(name="Frames per Shot", default=48, min=1, max=100000, options={"SKIP_SAVE"})
    style: StringProperty(name="Style", description="Added to every shot's prompt: one look for the board",
                          default="", options={"SKIP_SAVE"})
    negative_prompt: StringProperty(name="Negative Prompt", default="", options={"SKIP_SAVE"})
    size: StringProperty(name="Size", description="WxH of every panel; empty for the render's aspect at the "
                         "model's native size", default="", options={"SKIP_SAVE"})
    steps: IntProperty(name="Steps", default=0, min=0, max=500, options={"SKIP_SAVE"})
    seed: IntProperty(name="Seed", description="-1 for a random seed", default=-1, min=-1, options={"SKIP_SAVE"})
    seed_mode: EnumProperty(name="Seeds", items=boards.SEED_MODES, default="SAME", options={"SKIP_SAVE"})
    server: StringProperty(name="Server", default="", options={"SKIP_SAVE"})
    token: StringProperty(name="Token", default="", subtype="PASSWORD", options={"SKIP_SAVE", "HIDDEN"})

    def _job_for(self, context):
        prefs = preferences.preferences(context)
        server, token = self.server.strip() or prefs.server, self.token.strip() or prefs.token
        request = boards.StoryboardRequest(
            script=self.script, audio_path=bpy.path.abspath(self.audio_path) if self.audio_path else "",
            style=self.style, negative_prompt=self.negative_prompt, size=self.size.strip(), steps=self.steps,
            seed=self.seed, seed_mode=self.seed_mode, server=server, token=token)
        request.check()
        if not request.size:  # the panels at the camera's aspect
            size = framing.size_at_native_area(scene_capture.render_aspect(context.scene),
                                               *jobs.native_size(server, token))
            request = dataclasses.replace(request, size=size)
        return boards.StoryboardJob(request)

    def _apply(self, context, job):
        cameras = animatic.build(context, job.board_id, job.shots, self.frames_per_shot)
        status.remember(True, "Connected to %s" % job.request.server)
        failed = [shot for shot in job.shots if shot.picture is None]
        if failed:
            self.report({"WARNING"}, "Voicebrush: %d shots drawn; not drawn: %s (redo them from the panel)" % (
                len(cameras) - len(failed), "; ".join("shot %d (%s)" % (shot.index, shot.error) for shot in failed)))
        else:
            self.report({"INFO"}, "Voicebrush: storyboard of %d shots, frames %d to %d" % (
                len(cameras), context.scene.frame_start, context.scene.frame_end))
        return {"FINISHED"}


class VOICEBRUSH_OT_redo_shot(_FollowsADaemonJob, Operator):
    """Draw this storyboard shot again (with new words, if given)"""

    bl_idname = "voicebrush.redo_shot"
    bl_label = "Redo Shot"
    bl_options = {"REGISTER", "UNDO"}

    camera: StringProperty(name="Shot Camera", description="The shot's camera; empty for the active object or "
                           "the scene's camera", default="", options={"SKIP_SAVE"})
    text: StringProperty(name="New Words", description="What the shot shows now; empty to keep its words",
                         default="", options={"SKIP_SAVE"})
    seed: IntProperty(name="Seed", description="-1: a new seed (new words keep the shot's)", default=-1, min=-1,
                      options={"SKIP_SAVE"})
    server: StringProperty(name="Server", default="", options={"SKIP_SAVE"})
    token: StringProperty(name="Token", default="", subtype="PASSWORD", options={"SKIP_SAVE", "HIDDEN"})

    def _job_for(self, context):
        camera = self._shot_camera(context)
        prefs = preferences.preferences(context)
        self._camera_name = camera.name
        return boards.RedoShotJob(self.server.strip() or prefs.server, self.token.strip() or prefs.token,
                                  camera[animatic.BOARD_KEY], camera[animatic.SHOT_KEY],
                                  text=self.text.strip() or None, seed=self.seed if self.seed >= 0 else None)

    def _shot_camera(self, context):
        candidates = [bpy.data.objects.get(self.camera)] if self.camera else [context.active_object, context.scene.camera]
        for camera in candidates:
            if camera is not None and camera.get(animatic.BOARD_KEY) and camera.get(animatic.SHOT_KEY):
                return camera
        if self.camera:
            raise placement.PlacementError("%r is not a storyboard shot camera." % self.camera)
        raise placement.PlacementError("Select a storyboard shot's camera (or name it) to redo the shot.")

    def _apply(self, context, job):
        camera = bpy.data.objects.get(self._camera_name)
        if camera is None:
            raise placement.PlacementError("The shot's camera %r was deleted meanwhile." % self._camera_name)
        image = animatic.replace_shot(context, camera, job.shot)
        self.report({"INFO"}, "Voicebrush: %s redrawn as %r" % (camera.name, image.name))
        return {"FINISHED"}


CLASSES = (VOICEBRUSH_OT_storyboard, VOICEBRUSH_OT_redo_shot)
