"""A storyboard followed from script to pictures, and a shot redrawn: the flows the animatic uses.

No bpy here. Both are jobs.BackgroundJob: `run()` blocks (background mode and
scripts) and `start()` runs it in a worker thread while the main thread polls.
A board is the daemon's: it splits the script into shots and draws each as an
ordinary job; this side only follows it and fetches the pictures.
"""

import os
from dataclasses import dataclass
from typing import Optional

from .jobs import BackgroundJob, GeneratedImage, images_from_job, read_audio
from .naming import name_from_prompt
from .voicebrush_client import VoicebrushError

SEED_MODES = (
    ("SAME", "Same Seed", "Every shot uses the same seed: one look across the board"),
    ("SEQUENCE", "Seed per Shot", "Shot i uses the seed plus i: more variety between shots"),
)

# Datablock names hold 63 bytes; "Shot 64 " leaves this much for the shot's words.
SHOT_NAME_BYTES = 48


def shot_name(index, text):
    """"Shot 2 The keeper climbing the stairs": the shot's number, then its first words."""
    words = name_from_prompt(text, max_bytes=SHOT_NAME_BYTES)
    return "Shot %d %s" % (index, words) if text.strip() else "Shot %d" % index


@dataclass(frozen=True)
class StoryboardRequest:
    """A script (typed: one shot per line or split at "shot two", "cut to"...) or a dictated one."""

    script: str = ""
    audio_path: str = ""
    style: str = ""
    negative_prompt: str = ""
    size: str = ""
    steps: int = 0
    seed: int = -1
    seed_mode: str = "SAME"
    server: str = ""
    token: str = ""

    def check(self):
        if not self.script.strip() and not self.audio_path:
            raise VoicebrushError("Type, paste or dictate a script first.", code="no_shots")
        if self.audio_path and not os.path.isfile(self.audio_path):
            raise VoicebrushError("The recording %s does not exist." % self.audio_path, code="missing_audio")

    def options(self):
        """Keyword options for Client.create_storyboard: only what differs from the daemon's defaults."""
        options = {"seed_mode": self.seed_mode.lower()}
        for key in ("style", "negative_prompt", "size"):
            if getattr(self, key).strip():
                options[key] = getattr(self, key).strip()
        if self.steps > 0:
            options["steps"] = self.steps
        if self.seed >= 0:
            options["seed"] = self.seed
        return options


@dataclass
class ShotPicture:
    """One shot of a finished board: its caption, and its picture unless it failed."""

    index: int
    text: str
    picture: Optional[GeneratedImage] = None
    error: str = ""


def shot_picture(client, board_id, shot, job_result=None):
    """ShotPicture for a shot of a board record, fetching its picture and job record."""
    index, text = int(shot.get("index") or 0), shot.get("text") or ""
    if job_result is None:
        if shot.get("status") != "done" or not shot.get("image"):
            error = shot.get("error") or {}
            message = error.get("message") if isinstance(error, dict) else None
            return ShotPicture(index, text, None, message or "shot %s" % (shot.get("status") or "not drawn"))
        record, pngs = client.get_job(shot["job"]), [client.fetch(shot["image"])]
    else:
        record, pngs = job_result.job, job_result.images[:1]
    if not pngs:
        return ShotPicture(index, text, None, "the daemon finished without a picture")
    picture = images_from_job(record, pngs)[0]
    picture.name = shot_name(index, text)
    picture.properties.update(storyboard=board_id, shot=index, caption=text)
    return ShotPicture(index, text, picture)


class StoryboardJob(BackgroundJob):
    """A board created on the daemon and followed until every shot has ended."""

    THREAD_NAME = "voicebrush-storyboard"

    def __init__(self, request, client=None):
        super(StoryboardJob, self).__init__(client)
        self.request = request
        self.board_id = None
        self.board = None
        self.total = 0
        self.ended = 0
        self.steps = {}  # shot index -> (step, steps)
        self.shots = []  # ShotPicture, in shot order, once finished

    @property
    def fraction(self):
        if not self.total:
            return 0.0
        partial = sum(step / float(steps) for step, steps in self.steps.values() if steps)
        return min(1.0, max(self.ended, partial) / float(self.total))

    def status_line(self):
        if self.stage == "done":
            drawn = sum(1 for shot in self.shots if shot.picture is not None)
            return "Storyboard: %d of %d shots drawn" % (drawn, len(self.shots))
        if self.stage in ("failed", "cancelled"):
            return str(self.error)
        if self.cancel_requested:
            return "Cancelling the storyboard..."
        if not self.total:
            return "Transcribing the script..." if self.request.audio_path else "Sending the script..."
        return "Storyboard: %d of %d shots drawn" % (self.ended, self.total)

    def _run(self):
        request = self.request
        request.check()
        client = self.connect(request.server, request.token)
        if request.audio_path:
            board = client.create_storyboard(audio=read_audio(request.audio_path),
                                             audio_filename=os.path.basename(request.audio_path),
                                             **request.options())
        else:
            board = client.create_storyboard(script=request.script, **request.options())
        self.board_id, self.total = board["id"], len(board.get("shots") or [])
        self.stage = "drawing"
        final = client.follow_storyboard(self.board_id, on_event=self._on_event, cancelled=self._cancel_requested.is_set)
        if self.cancel_requested or final.get("status") == "cancelled":
            raise VoicebrushError("cancelled", code="cancelled", server=client.server)
        shots = [shot_picture(client, self.board_id, shot) for shot in final.get("shots") or []]
        if not any(shot.picture is not None for shot in shots):
            reasons = sorted({shot.error for shot in shots if shot.error})
            raise VoicebrushError("No shot could be drawn: %s" % ("; ".join(reasons) or "no shots"), code="job_failed")
        self.board, self.shots = final, shots

    def _on_event(self, name, data):
        if not isinstance(data, dict) or "index" not in data:
            return
        index = data.get("index")
        if name == "progress":
            steps = dict(self.steps)
            steps[index] = (int(data.get("step") or 0), int(data.get("steps") or 0))
            self.steps = steps
        elif name in ("done", "failed", "cancelled"):
            self.ended += 1


class RedoShotJob(BackgroundJob):
    """One shot of a board drawn again as a new job (optionally with new words or a seed)."""

    THREAD_NAME = "voicebrush-redo-shot"

    def __init__(self, server, token, board_id, index, text=None, seed=None, client=None):
        super(RedoShotJob, self).__init__(client)
        self._server, self._token = server, token
        self.board_id, self.index = board_id, int(index)
        self.text, self.seed = text, seed
        self.step = self.steps = 0
        self.shot = None  # ShotPicture once done

    @property
    def fraction(self):
        return self.step / float(self.steps) if self.steps else 0.0

    def status_line(self):
        if self.stage == "done":
            return "Shot %d redrawn" % self.index
        if self.stage in ("failed", "cancelled"):
            return str(self.error)
        if self.steps:
            return "Redrawing shot %d: step %d of %d" % (self.index, self.step, self.steps)
        return "Redrawing shot %d..." % self.index

    def _run(self):
        client = self.connect(self._server, self._token)
        board = client.redo_shot(self.board_id, self.index, text=self.text, seed=self.seed)
        shot = next((shot for shot in board.get("shots") or [] if shot.get("index") == self.index), None)
        if shot is None or not shot.get("job"):
            raise VoicebrushError("The board has no shot %d." % self.index, code="not_found")
        result = client.follow_job(shot["job"], on_event=self._on_event, cancelled=self._cancel_requested.is_set)
        picture = shot_picture(client, self.board_id, shot, job_result=result)
        if picture.picture is None:
            raise VoicebrushError("Shot %d: %s" % (self.index, picture.error), code="no_image")
        self.shot = picture

    def _on_event(self, name, data):
        if name == "progress" and isinstance(data, dict):
            self.step, self.steps = int(data.get("step") or 0), int(data.get("steps") or 0)
