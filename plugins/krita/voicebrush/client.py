"""The shared voicebrush client, wherever this copy of the plugin finds it.

`plugins/krita/package.py` puts `voicebrush_client.py` inside the package; a
source checkout (the tests, a developer's symlinked install) reads it from
`plugins/shared/` instead.
"""

import os
import sys

try:
    from .voicebrush_client import *  # noqa: F401,F403
    from .voicebrush_client import Client, JobResult, VoicebrushError, encode_wav, fit_generation_size, png_size, pcm_level
except ImportError:
    _shared = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "shared")
    if _shared not in sys.path:
        sys.path.insert(0, _shared)
    from voicebrush_client import *  # noqa: F401,F403
    from voicebrush_client import Client, JobResult, VoicebrushError, encode_wav, fit_generation_size, png_size, pcm_level

__all__ = ["Client", "JobResult", "VoicebrushError", "encode_wav", "fit_generation_size", "png_size", "pcm_level"]
