"""A storyboard's jobs from the docker or the scripting API, followed panel by panel.

Runs on a worker thread (no Qt, no Krita). It reports, through `on_event(name, data)`:
- "board": the board record, once the daemon has split the script (make the page then);
- "panel": a PanelPicture, each time a shot's picture is ready (fill that panel in);
- "shot_failed": {"index", "error"} for a shot that failed or was cancelled;
- "progress": a shot's progress event (data["index"] is the shot).
The page is usable while the rest are still coming.
"""

from .client import VoicebrushError

# What voicebrush.storyboard(**options) passes on to the daemon.
BOARD_OPTIONS = ("style", "negative_prompt", "size", "steps", "seed", "seed_mode", "guidance_scale", "scheduler",
                 "language")


class PanelPicture(object):
    """A shot's finished picture: PNG bytes, and what drew it."""

    def __init__(self, index, png, seed=None, job=None, text=None):
        self.index = index
        self.png = png
        self.seed = seed
        self.job = job
        self.text = text  # the shot's (new) text, for a redo that changed it

    def __repr__(self):
        return "PanelPicture(index=%r, seed=%r, job=%r)" % (self.index, self.seed, self.job)


def board_options(options):
    unknown = set(options) - set(BOARD_OPTIONS)
    if unknown:
        raise TypeError("unknown storyboard option(s): %s" % ", ".join(sorted(unknown)))
    return dict((key, value) for key, value in options.items() if value is not None and value != "")


def run_board(client, script=None, audio=None, audio_filename="script.wav", on_event=None, cancelled=None,
              **options):
    """Create the board and follow it to its end; returns the final board record."""
    emit = on_event or (lambda name, data: None)
    if audio is None and not (script or "").strip():
        raise VoicebrushError("Type, paste or dictate a script first: one shot per line, or \"shot one, ... next "
                              "shot, ...\".", code="no_shots")
    board = client.create_storyboard(script=script if audio is None else None, audio=audio,
                                     audio_filename=audio_filename, **board_options(options))
    emit("board", board)
    seeds = dict((shot["index"], shot.get("seed")) for shot in board.get("shots", []))

    def seen(name, data):
        index = data.get("index") if isinstance(data, dict) else None
        if index is None:
            return
        if name == "done":
            urls = data.get("images") or []
            if urls:
                emit("panel", PanelPicture(index, client.fetch(urls[0]), data.get("seed", seeds.get(index)),
                                           data.get("id")))
            else:
                emit("shot_failed", {"index": index, "error": {"message": "finished without a picture"}})
        elif name in ("failed", "cancelled"):
            emit("shot_failed", {"index": index, "error": data.get("error") or {"message": name}})
        elif name == "progress":
            emit("progress", data)

    return client.follow_storyboard(board["id"], on_event=seen, cancelled=cancelled)


def redo_shot(client, board_id, index, text=None, seed=None, on_event=None, cancelled=None):
    """Draw shot `index` again (optionally with a new text or seed); returns its PanelPicture."""
    board = client.redo_shot(board_id, index, text=text, seed=seed)
    shot = next((s for s in board.get("shots", []) if s.get("index") == index), None)
    if shot is None or not shot.get("job"):
        raise VoicebrushError("The daemon did not start a new picture for shot %d." % index, code="bad_response")
    result = client.follow_job(shot["job"], on_event=on_event, cancelled=cancelled)
    if not result.images:
        raise VoicebrushError("The daemon finished shot %d without a picture." % index, code="bad_response")
    return PanelPicture(index, result.images[0], result.seed, shot["job"], shot.get("text"))
