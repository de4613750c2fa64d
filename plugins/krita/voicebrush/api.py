"""The scripting API: blocking calls for Krita's Scripter and batch scripts.

    import voicebrush
    layer = voicebrush.generate_layer("a lighthouse at dusk", steps=20, seed=7)
    layer = voicebrush.generate_layer("make this a rainy neon alley", strength=0.6)   # refine the canvas
    layer = voicebrush.generate_layer("stormy clouds at sunset", fill=True)           # repaint the selection

Both calls block until the layer is in the document, return the new node, and
raise voicebrush.VoicebrushError with a readable message on failure (a daemon that
is not running fails within seconds).
"""

import os

from . import generation, krita_glue
from . import board_jobs
from .client import Client, VoicebrushError
from .options import GenerationRequest, native_side_from_health
from .qt_compat import QT6, QtCore
from .tasks import BackgroundTask
from .spoken import spoken_refine

DEFAULT_SERVER = "http://127.0.0.1:7860"


def generate_layer(prompt, server=None, token=None, negative_prompt="", seed=None, steps=0, document=None,
                   variants=1, use_selection=True, timeout=10.0, on_event=None, strength=1.0, fill=False):
    """Generate `prompt` into a new layer above the active one (a group for several variants).

    `strength` below 1 refines the visible canvas (within the selection's bounds, padded for
    context, when there is a selection); `fill=True` repaints inside the selection, and the
    layer is transparent outside it.
    """
    if not (prompt or "").strip():
        raise VoicebrushError("Give a prompt to paint.", code="empty_prompt")
    request = GenerationRequest(prompt, negative_prompt=negative_prompt, steps=steps, seed=_seed(seed),
                                variants=variants, strength=strength, fill=fill)
    return _run(request, None, None, server, token, document, use_selection, timeout, on_event)


def dictate_layer(audio_path, server=None, token=None, negative_prompt="", seed=None, steps=0, document=None,
                  variants=1, use_selection=True, timeout=10.0, on_event=None, prompt=None, strength=1.0, fill=False):
    """Transcribe a recording (wav, flac, ogg, mp3, webm, m4a) and generate what it says into a new layer.

    A `prompt` given too replaces the transcript (the recording is still transcribed).
    `strength` and `fill` as for generate_layer; a spoken "from my sketch" refines.
    """
    audio = _read_audio(audio_path)
    request = GenerationRequest(prompt or "", negative_prompt=negative_prompt, steps=steps, seed=_seed(seed),
                                variants=variants, strength=strength, fill=fill)
    return _run(request, audio, os.path.basename(audio_path), server, token, document, use_selection, timeout,
                on_event)


def _seed(seed):
    return None if seed is None or int(seed) < 0 else int(seed)


def _run(request, audio, audio_filename, server, token, document, use_selection, timeout, on_event):
    client = _client(server, token, timeout)
    # Before anything is sent: no image, another colour model, fill without a selection.
    krita_glue.check_target(document, use_selection=use_selection, strength=request.strength, fill=request.fill)
    health = client.health()
    if health.get("status") != "ok":
        raise VoicebrushError("The daemon is still loading its models; try again in a moment.", code="loading")
    side = native_side_from_health(health)
    target = krita_glue.capture_target(document, use_selection=use_selection, strength=request.strength,
                                       fill=request.fill, native_side=side,
                                       spare_refine=audio is not None or spoken_refine(request.prompt)[1])
    outcome = _on_worker(lambda emit: generation.run(client, request, target.capture, native_side=side, audio=audio,
                                                     audio_filename=audio_filename or "speech.wav", on_event=emit),
                         on_event)
    return krita_glue.insert_outcome(target, outcome)


def storyboard(script=None, audio_path=None, columns=3, server=None, token=None, timeout=10.0, on_event=None,
               window=None, **options):
    """A new document laid out as a storyboard page for `script` (or the script dictated in
    `audio_path`): one layer group "Shot N: text" a panel, in a grid of `columns`, each with
    its picture and an editable caption. Panels fill in as their shots finish; returns the
    document when every shot has ended (a failed shot leaves its panel empty, and is told
    to `on_event("shot_failed", ...)`). `options`: style, negative_prompt, size, steps,
    seed, seed_mode ("same" or "sequence"), guidance_scale, scheduler, language."""
    board_jobs.board_options(options)  # a wrong option fails before anything is sent
    if (script is None) == (audio_path is None):
        raise VoicebrushError("Give a script or a recording of one (audio_path), not both.", code="no_shots")
    audio = _read_audio(audio_path) if audio_path is not None else None
    client = _client(server, token, timeout)
    app_window = window or krita_glue.active_window()
    made = {}

    def on_ui(name, data):
        if name == "board":
            made["doc"] = krita_glue.create_storyboard_page(data, columns, client.server, app_window)
        elif name == "panel":
            made.setdefault("panels", []).append(krita_glue.put_panel(made["doc"], data))
        if on_event is not None:
            on_event(name, data)

    _on_worker(lambda emit: board_jobs.run_board(
        client, script=script, audio=audio, audio_filename=os.path.basename(audio_path or "script.wav"),
        on_event=emit, **options), on_ui)
    return made["doc"]


def redo_shot(index=None, text=None, seed=None, document=None, server=None, token=None, timeout=10.0,
              on_event=None):
    """Draw one panel of a storyboard page again: shot `index` (default: the shot whose group
    is selected), optionally with a new `text` or `seed`. Only that group changes: the new
    picture goes on top, the earlier one stays in the group, hidden. Returns the new layer."""
    doc = document or krita_glue.active_document()
    board = krita_glue.storyboard_of(doc)
    if board is None:
        raise VoicebrushError("Open a storyboard page made by voicebrush first.", code="not_a_storyboard")
    index = index or krita_glue.selected_shot(doc)
    if index is None:
        raise VoicebrushError("Select a shot's group (\u201cShot N: ...\u201d) in the Layers docker first.",
                              code="no_shot")
    client = _client(server or board.get("server") or None, token, timeout)
    picture = _on_worker(lambda emit: board_jobs.redo_shot(client, board["board"], int(index), text=text,
                                                                 seed=seed, on_event=emit), on_event)
    return krita_glue.put_panel(doc, picture)


def _client(server, token, timeout):
    return Client(server or krita_glue.read_setting("server", DEFAULT_SERVER),
                  krita_glue.read_setting("token", "") if token is None else token, timeout=timeout)


def _read_audio(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except OSError as exc:
        raise VoicebrushError("Cannot read the recording %s: %s" % (path, exc.strerror), code="invalid_audio")


def _on_worker(work, on_ui=None):
    """Run work(emit) on a thread while Krita's event loop runs here; each emit(name, data)
    is handed to on_ui on this (the UI) thread as it comes. Returns work's result or raises its error.

    A nested event loop that sleeps until the worker has news, rather than polling: Krita
    keeps drawing its canvas meanwhile, and the daemon keeps the CPU."""
    outcome = {}
    loop = QtCore.QEventLoop()
    task = BackgroundTask(lambda on_event, cancelled: work(on_event))
    if on_ui is not None:
        task.job_event.connect(on_ui)
    task.succeeded.connect(lambda result: (outcome.update(result=result), loop.quit()))
    task.failed.connect(lambda error: (outcome.update(error=error), loop.quit()))
    task.start()
    loop.exec() if QT6 else loop.exec_()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
