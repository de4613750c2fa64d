"""The scripting API: blocking calls for Krita's Scripter and batch scripts.

    import voicebrush
    layer = voicebrush.generate_layer("a lighthouse at dusk", steps=20, seed=7)

Both calls block until the layer is in the document, return the new node, and
raise voicebrush.VoicebrushError with a readable message on failure (a daemon that
is not running fails within seconds).
"""

import os

from . import krita_glue
from .client import Client, VoicebrushError
from .options import GenerationRequest, generation_size, native_side_from_health

DEFAULT_SERVER = "http://127.0.0.1:7860"


def generate_layer(prompt, server=None, token=None, negative_prompt="", seed=None, steps=0, document=None,
                   variants=1, use_selection=True, timeout=10.0, on_event=None):
    """Generate `prompt` into a new layer above the active one (a group for several variants)."""
    if not (prompt or "").strip():
        raise VoicebrushError("Give a prompt to paint.", code="empty_prompt")
    request = GenerationRequest(prompt, negative_prompt=negative_prompt, steps=steps,
                                seed=None if seed is None or int(seed) < 0 else seed, variants=variants)
    return _run(request, None, None, server, token, document, use_selection, timeout, on_event)


def dictate_layer(audio_path, server=None, token=None, negative_prompt="", seed=None, steps=0, document=None,
                  variants=1, use_selection=True, timeout=10.0, on_event=None, prompt=None):
    """Transcribe a recording (wav, flac, ogg, mp3, webm, m4a) and generate what it says into a new layer.

    A `prompt` given too replaces the transcript (the recording is still transcribed).
    """
    try:
        with open(audio_path, "rb") as handle:
            audio = handle.read()
    except OSError as exc:
        raise VoicebrushError("Cannot read the recording %s: %s" % (audio_path, exc.strerror), code="invalid_audio")
    request = GenerationRequest(prompt or "", negative_prompt=negative_prompt, steps=steps,
                                seed=None if seed is None or int(seed) < 0 else seed, variants=variants)
    return _run(request, audio, os.path.basename(audio_path), server, token, document, use_selection, timeout,
                on_event)


def _run(request, audio, audio_filename, server, token, document, use_selection, timeout, on_event):
    client = Client(server or krita_glue.read_setting("server", DEFAULT_SERVER),
                    krita_glue.read_setting("token", "") if token is None else token, timeout=timeout)
    target = krita_glue.capture_target(document, use_selection=use_selection)
    krita_glue.check_color_model(target.document)  # before spending a generation on it
    health = client.health()
    if health.get("status") != "ok":
        raise VoicebrushError("The daemon is still loading its models; try again in a moment.", code="loading")
    size = generation_size(target.rect, native_side_from_health(health))
    options = request.job_options(size)
    result = client.run_job(prompt=request.prompt or None, audio=audio, audio_filename=audio_filename or "speech.wav",
                            on_event=on_event, **options)
    return krita_glue.insert_images(target, result.images, result.prompt or request.prompt, result.seed)
