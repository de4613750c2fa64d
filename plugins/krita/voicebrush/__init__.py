"""voicebrush for Krita: speak a picture into a new layer.

Inside Krita this registers the Voicebrush docker and the `voicebrush_dictate`
action, and offers a blocking scripting API:

    import voicebrush
    voicebrush.generate_layer("rainy neon alley, low angle", negative_prompt="people")
    voicebrush.dictate_layer("/path/to/prompt.wav")
    voicebrush.generate_layer("stormy clouds at sunset", fill=True)   # repaint the selection
    page = voicebrush.storyboard("1. a lighthouse at dusk\n2. the keeper on the stairs", columns=2)
"""

from .client import VoicebrushError

__all__ = ["VoicebrushError", "generate_layer", "dictate_layer", "storyboard", "redo_shot"]

try:
    from krita import Krita  # noqa: F401  (only present inside Krita)
except ImportError:
    Krita = None

if Krita is not None:
    from . import krita_glue
    from .api import dictate_layer, generate_layer, redo_shot, storyboard

    krita_glue.register()
else:
    def generate_layer(prompt, **options):
        raise VoicebrushError("voicebrush.generate_layer runs inside Krita.", code="no_krita")

    def dictate_layer(audio_path, **options):
        raise VoicebrushError("voicebrush.dictate_layer runs inside Krita.", code="no_krita")

    def storyboard(script=None, audio_path=None, columns=3, **options):
        raise VoicebrushError("voicebrush.storyboard runs inside Krita.", code="no_krita")

    def redo_shot(index=None, **options):
        raise VoicebrushError("voicebrush.redo_shot runs inside Krita.", code="no_krita")
