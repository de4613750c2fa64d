"""voicebrush daemon: speech in, image out, served to the Krita and Blender plugins."""

import os

# onnxruntime (faster-whisper's Silero VAD) writes a device id and telemetry events to
# ~/.cache/Microsoft/DeveloperTools/.onnxruntime unless this is set before it is
# imported; disable_telemetry_events() and ORT_TELEMETRY_DISABLED do not stop it. Set
# here, so the daemon, the CLI and the bench (all of which import this package before
# any model library) stay offline and leave nothing outside the data dir.
os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
