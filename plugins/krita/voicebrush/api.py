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
from .client import Client, VoicebrushError
from .options import GenerationRequest, native_side_from_health
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
    try:
        with open(audio_path, "rb") as handle:
            audio = handle.read()
    except OSError as exc:
        raise VoicebrushError("Cannot read the recording %s: %s" % (audio_path, exc.strerror), code="invalid_audio")
    request = GenerationRequest(prompt or "", negative_prompt=negative_prompt, steps=steps, seed=_seed(seed),
                                variants=variants, strength=strength, fill=fill)
    return _run(request, audio, os.path.basename(audio_path), server, token, document, use_selection, timeout,
                on_event)


def _seed(seed):
    return None if seed is None or int(seed) < 0 else int(seed)


def _run(request, audio, audio_filename, server, token, document, use_selection, timeout, on_event):
    client = Client(server or krita_glue.read_setting("server", DEFAULT_SERVER),
                    krita_glue.read_setting("token", "") if token is None else token, timeout=timeout)
    # Before anything is sent: no image, another colour model, fill without a selection.
    krita_glue.check_target(document, use_selection=use_selection, strength=request.strength, fill=request.fill)
    health = client.health()
    if health.get("status") != "ok":
        raise VoicebrushError("The daemon is still loading its models; try again in a moment.", code="loading")
    side = native_side_from_health(health)
    target = krita_glue.capture_target(document, use_selection=use_selection, strength=request.strength,
                                       fill=request.fill, native_side=side,
                                       spare_refine=audio is not None or spoken_refine(request.prompt)[1])
    outcome = generation.run(client, request, target.capture, native_side=side, audio=audio,
                             audio_filename=audio_filename or "speech.wav", on_event=on_event)
    return krita_glue.insert_outcome(target, outcome)
