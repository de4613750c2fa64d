"""The no-speech gate both engines share (Silero VAD plus Whisper's no-speech rule)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest_speech import clip_samples, non_speech

from voicebrush_daemon.errors import ApiError
from voicebrush_daemon.speech.voice_activity import (
    SpeechStretches,
    checked_language,
    checked_samples,
    find_speech,
    is_speech_segment,
)


@pytest.mark.parametrize("kind", sorted(non_speech()))
def test_vad_finds_no_speech_in_noise_tones_and_silence(kind):
    assert find_speech(non_speech()[kind]) is None


@pytest.mark.parametrize("name", ["demo_prompt.wav", "castle.ogg", "Front_Center.wav", "Side_Right.wav"])
def test_vad_finds_speech_in_speech(name):
    samples = clip_samples(name)
    stretches = find_speech(samples)
    assert stretches is not None
    assert stretches.samples.size >= 0.6 * samples.size  # nearly all of a prompt is speech


def test_vad_drops_the_silence_between_phrases():
    speech = clip_samples("fox.mp3")
    samples = np.concatenate([np.zeros(32_000, np.float32), speech, np.zeros(64_000, np.float32), speech])
    stretches = find_speech(samples)
    assert len(stretches.chunks) == 2
    assert stretches.samples.size < samples.size - 64_000
    assert 1.3 < stretches.chunks[0][0] / 16_000 < 2.0


def test_times_map_back_to_the_original_audio():
    stretches = SpeechStretches(samples=np.zeros(32_000, np.float32), chunks=((16_000, 32_000), (64_000, 80_000)))
    assert stretches.original_time(0.0) == 1.0
    assert stretches.original_time(0.5) == 1.5
    assert stretches.original_time(1.0, is_end=True) == 2.0  # the end of the first stretch
    assert stretches.original_time(1.0) == 4.0  # the start of the second
    assert stretches.original_time(1.5) == 4.5
    assert stretches.original_time(9.0, is_end=True) == 5.0  # Whisper may overshoot the audio


@pytest.mark.parametrize(
    "text, no_speech_prob, avg_logprob, kept",
    [
        ("a red fox in the snow", 0.2, -0.7, True),
        ("a red fox in the snow", 0.7, -0.5, True),  # unsure it is speech, sure of the words
        ("Thank you.", 0.7, -1.3, False),  # Whisper's own skip rule
        ("I'm going to take a look", 0.95, -0.29, False),  # what white noise gives without the gate
        (" . .", 0.1, -0.4, False),
        ("", 0.0, 0.0, False),
    ],
)
def test_no_speech_rule(text, no_speech_prob, avg_logprob, kept):
    assert is_speech_segment(text, no_speech_prob, avg_logprob) is kept


def test_languages():
    assert checked_language(None, english_only=True) == "en"
    assert checked_language(None, english_only=False) is None  # detect
    assert checked_language(" English ", english_only=True) == "en"
    assert checked_language("FR", english_only=False) == "fr"
    with pytest.raises(ApiError, match="unknown language"):
        checked_language("zz", english_only=False)


def test_samples_must_be_mono():
    assert checked_samples([0, 1]).dtype == np.float32
    with pytest.raises(ValueError, match="mono"):
        checked_samples(np.zeros((100, 2)))
