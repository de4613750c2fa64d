"""One generation from the docker or the scripting API: the job it takes and where its result goes.

It runs on a worker thread, so there is no Qt and no Krita here: krita_glue captured
the canvas (a CanvasCapture) on the UI thread when the generation started, and puts
the Outcome into the document when it is back there. Where the result goes was fixed
at that moment, so an artist who keeps painting meanwhile loses nothing.
"""

from . import canvas
from .client import VoicebrushError
from .options import generation_size, native_side_from_health
from .spoken import spoken_refine


class CanvasCapture(object):
    """The canvas as it was when a generation started: plain data.

    `text_rect`: where a new picture goes (the selection's bounds, else the canvas).
    `region`: where a refine or fill reads and puts its result (padded selection bounds,
    else the canvas); `image_png` its visible pixels (scaled down to the generation size
    when larger); `mask_png` the selection's coverage over it (white = repaint), for a fill.
    """

    def __init__(self, text_rect, region=None, image_png=None, mask_png=None, has_selection=False):
        self.text_rect = text_rect
        self.region = region
        self.image_png = image_png
        self.mask_png = mask_png
        self.has_selection = has_selection


class Outcome(object):
    """A finished generation: the daemon's JobResult, the mode and strength that ran, where it goes."""

    def __init__(self, result, mode, strength, rect, prompt):
        self.result = result
        self.mode = mode
        self.strength = strength
        self.rect = rect
        self.prompt = prompt

    @property
    def seed(self):
        return self.result.seed

    def label(self):
        """What made it, for the status line: "seed 7", "refine 50%, seed 7"."""
        seed = "seed %s" % self.seed
        return seed if self.mode == canvas.TEXT else "%s, %s" % (canvas.mode_label(self.mode, self.strength), seed)


def run(client, request, capture, native_side=None, audio=None, audio_filename="speech.wav", on_event=None,
        cancelled=None, take=None):
    """Run `request` (options.GenerationRequest) against the captured canvas; returns an Outcome.

    The prompt is typed (request.prompt), or spoken: `audio` (a whole recording), or
    `take` (a live_take.LiveTake streamed while it is recorded; this waits for the artist
    to let go, and generation starts then, with no upload).

    A typed "from my sketch" (or "keep the layout", ...) turns a new picture into a refine;
    a spoken one does too: the dictated job is stopped when its transcript says so (before
    its first step, or within one) and the refine is sent with what was heard.
    """
    emit = on_event or (lambda name, data: None)
    user_cancelled = cancelled or (lambda: False)
    side = native_side or native_side_from_health(client.health())
    mode = canvas.canvas_mode(request.strength, request.fill)
    strength = request.strength
    prompt = request.prompt
    can_refine = capture.image_png is not None
    if mode == canvas.FILL and capture.mask_png is None:
        raise VoicebrushError(canvas.need_selection_message(), code="no_selection")
    cleaned, said = spoken_refine(prompt)
    if said and (can_refine or mode != canvas.TEXT):
        if not cleaned:
            raise VoicebrushError("Say or type what to paint, besides \u201cfrom my sketch\u201d.", code="empty_prompt")
        prompt = cleaned  # the words are a control, not something to draw
        if mode == canvas.TEXT:
            mode, strength = canvas.REFINE, canvas.SPOKEN_REFINE_STRENGTH
    spoken = audio is not None or take is not None
    if mode != canvas.TEXT or not spoken or prompt or not can_refine:
        return _job(client, request, capture, side, mode, strength, prompt, audio, audio_filename, emit, user_cancelled,
                    take=take)

    # A dictated new picture: listen for a spoken "from my sketch" in its transcript.
    heard = {}

    def watch(name, data):
        if name == "transcript" and isinstance(data, dict):
            cleaned, said = spoken_refine(data.get("prompt") or data.get("transcript") or "")
            if said and cleaned:
                heard.update(prompt=cleaned, negative_prompt=data.get("negative_prompt") or "")
        if not (heard and name == "cancelled"):  # the stopped first job's end is no news to the caller
            emit(name, data)

    try:
        outcome = _job(client, request, capture, side, mode, strength, prompt, audio, audio_filename, watch,
                       lambda: user_cancelled() or bool(heard), take=take)
    except VoicebrushError as exc:
        if not heard or exc.code != "cancelled" or user_cancelled():
            raise
        outcome = None
    if not heard:
        return outcome
    # (A first job that ended before the cancel reached it is dropped: the artist asked for a refine.)
    return _job(client, request, capture, side, canvas.REFINE, canvas.SPOKEN_REFINE_STRENGTH, heard["prompt"], None,
                audio_filename, emit, user_cancelled, negative_prompt=heard["negative_prompt"])


def _job(client, request, capture, side, mode, strength, prompt, audio, audio_filename, emit, user_cancelled,
         negative_prompt=None, take=None):
    rect = capture.text_rect if mode == canvas.TEXT else capture.region
    options = request.job_options(generation_size(rect, side), strength=None if mode == canvas.TEXT else strength)
    if negative_prompt is not None:
        options["negative_prompt"] = negative_prompt
    pictures = {}
    if mode != canvas.TEXT:
        pictures["image"] = capture.image_png
        if mode == canvas.FILL:
            pictures["mask"] = capture.mask_png
    if take is not None:
        dictation = take.start(client, prompt=prompt or None, **dict(options, **pictures))
        try:
            take.wait_for_release(user_cancelled)
            dictation.finish()
        except BaseException:
            dictation.cancel()
            raise
        # Partial words went to the take's listener as they came; the rest of the job's events follow here.
        result = dictation.wait(on_event=lambda name, data: name != "partial" and emit(name, data),
                                cancelled=user_cancelled)
    else:
        result = client.run_job(prompt=prompt or None, audio=audio, audio_filename=audio_filename, on_event=emit,
                                cancelled=user_cancelled, **dict(options, **pictures))
    return Outcome(result, mode, strength, rect, result.prompt or prompt)
