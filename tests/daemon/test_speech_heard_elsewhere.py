"""What tests outside the speech tests rely on hearing, checked on the transcriber itself.

The API, CLI, SDK, plugin, Krita and Blender tests send the shipped clips through a
daemon and assert a few words of the transcript. Here each of those assertions is
made on the same engine in both encoder windows, in-process, so that
test_speech_numerics.py can rerun them under other CPUs' numerics without starting a
daemon, Krita or Blender. A new transcript assertion elsewhere belongs in this table.
"""

from __future__ import annotations

import numpy as np
import pytest

from conftest_speech import clip_samples, faster_whisper_tiny, full_window_tiny, speech_data_dir, transcript_of

from voicebrush_daemon import spoken
from voicebrush_daemon.storyboards.script import shots_of
from voicebrush_daemon.speech.base import TranscribeOptions

__all__ = ["faster_whisper_tiny", "full_window_tiny", "speech_data_dir"]  # fixtures

HARBOUR = ("misty", "harbo", "dawn", "wide", "shot")
FOX = ("red", "fox", "snow")

# (clip, options, words of which at least `at_least` must be in the lowercased text, where)
RELIED_ON = [
    ("demo_prompt.wav", None, ("harbo",), 1, "test_api.py::test_transcription_formats, test_bench.py (e2e), test_openai_sdk.py"),
    ("demo_prompt.wav", None, ("misty", "harbo"), 1, "plugins/test_client.py::test_transcribe"),
    ("demo_prompt.wav", "prompt=a harbour", ("harbo",), 1, "reliability/test_faults.py (speech model failure)"),
    # The Krita and Blender microphones deliver the clip, then silence.
    ("demo_prompt.wav+silence", None, ("misty", "harbo"), 1, "krita/inside/check_voicebrush.py (virtual microphone)"),
    ("demo_prompt.wav+silence", None, HARBOUR, 2, "blender/inside/test_ui.py, test_placements.py"),
    ("fox.mp3", None, ("fox",), 1, "test_cli.py::test_transcribe_prints_what_was_said, test_openai_sdk.py"),
    ("castle.ogg", "language=en", ("castle",), 1, "test_openai_sdk.py::test_transcription_in_each_response_format"),
    # "fox" alone is not enough: "A red box in the snow" in CTranslate2's generic kernels.
    ("fox_44k_stereo.wav", None, FOX, 2, "plugins/test_client.py, test_krita_pyqt6.py, krita/inside/check_voicebrush.py"),
]


def samples_of(clip: str) -> np.ndarray:
    if clip.endswith("+silence"):
        return np.concatenate([clip_samples(clip.removesuffix("+silence")), np.zeros(16_000, np.float32)])
    return clip_samples(clip)


def options_of(spec: str | None) -> TranscribeOptions:
    if spec is None:
        return TranscribeOptions()
    key, value = spec.split("=", 1)
    return TranscribeOptions(**{key: value})


@pytest.fixture(params=["10 s window", "--asr-full-window"])
def daemon_transcriber(request):
    """The daemon's default engine, in each encoder window."""
    return request.getfixturevalue("faster_whisper_tiny" if request.param == "10 s window" else "full_window_tiny")


def test_what_other_tests_assert_is_heard(daemon_transcriber):
    texts: dict[tuple[str, str | None], str] = {}
    failures = []
    for clip, spec, wanted, at_least, where in RELIED_ON:
        if (clip, spec) not in texts:
            plain = spec is None and not clip.endswith("+silence")  # as test_speech_engines.py heard it
            heard_as = transcript_of(daemon_transcriber, clip) if plain else daemon_transcriber.transcribe(samples_of(clip), options_of(spec))
            texts[clip, spec] = heard_as.text
        heard = texts[clip, spec].lower()
        if sum(word in heard for word in wanted) < at_least:
            failures.append(f"{where}: {clip} heard as {texts[clip, spec]!r}, wanted {at_least} of {wanted}")
    assert not failures, "\n".join(failures)


def test_the_spoken_control_in_the_alley_clip_is_heard(daemon_transcriber):
    # test_api.py::test_dictation_job_uses_the_transcript_and_spoken_controls
    transcript = transcript_of(daemon_transcriber, "alley.flac").text.strip()
    said = spoken.interpret(transcript)
    heard, control, rest = transcript.lower().partition("without")
    assert control and "people" in rest, transcript
    assert said.prompt and said.prompt.lower() in heard, (transcript, said)
    assert "people" in said.negative_prompt.lower() and "without" not in said.prompt.lower()


def test_the_dictated_storyboard_is_heard_as_its_three_shots(daemon_transcriber):
    # plugins/test_client.py::test_a_dictated_script_from_a_wav, krita/inside/check_storyboard.py
    # (three shots, "lighthouse" in the first) and blender/inside/test_storyboard.py (two or more):
    # "Shot one, a lighthouse on a cliff at dusk, wide shot. Next shot, ... Cut to, ..."
    transcript = daemon_transcriber.transcribe(clip_samples("storyboard.wav"), TranscribeOptions(language="en")).text
    shots = shots_of(transcript)
    assert len(shots) == 3 and "lighthouse" in shots[0].lower(), (transcript, shots)
