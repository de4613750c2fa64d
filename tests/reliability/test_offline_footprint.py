"""Fully offline means nothing written outside the data dir, and no device id left on
the artist's machine. onnxruntime (Silero VAD, inside faster-whisper) wrote
~/.cache/Microsoft/DeveloperTools/.onnxruntime/{deviceid,onnxruntime.db}, telemetry
events with a device id, the interpreter path and OS details, on every run.
"""

from __future__ import annotations

import subprocess

from reliability_support import SPEECH
from voicebrush_testing import ROOT, daemon_command, daemon_env

# Anything that would move a library's files out of HOME, so HOME sees them all.
RELOCATING = ("ORT_DISABLE_TELEMETRY", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "HF_HOME", "HF_HUB_CACHE", "TORCH_HOME", "MPLCONFIGDIR")


def test_a_transcription_writes_only_to_the_data_dir_and_the_temp_folder(tmp_path):
    home, temp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    temp.mkdir()
    env = daemon_env(HOME=str(home), TMPDIR=str(temp), HF_HUB_OFFLINE="1")
    for name in RELOCATING + ("VOICEBRUSH_SERVER",):
        env.pop(name, None)  # ORT_DISABLE_TELEMETRY too: the daemon must set it itself
    # A dictation run in this process: the whole daemon (both models, the VAD) with its
    # default data dir under this HOME, from the recorded take to the PNG.
    output = temp / "fox.png"
    result = subprocess.run(
        daemon_command("dictate", "--file", str(SPEECH / "fox_44k_stereo.wav"), "-o", str(output), "--in-process",
                       "--preset", "tiny", "--device", "cpu", "--size", "64x64", "--steps", "1"),
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert output.is_file(), result.stderr[-3000:]  # it did transcribe and draw (the words are not the point)
    data_dir = home / ".local" / "share" / "voicebrush"
    assert (data_dir / "models").is_dir()  # the data dir is where the models were built
    elsewhere = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file() and data_dir not in p.parents)
    assert elsewhere == [], elsewhere
