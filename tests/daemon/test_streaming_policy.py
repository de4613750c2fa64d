"""The pure parts of live transcription: stable words, cadence, turns, and the live audio buffer."""

from __future__ import annotations


import numpy as np
import pytest

from streaming_support import clip_pcm, silence, wav
from voicebrush_daemon.errors import InvalidAudio
from voicebrush_daemon.live_audio import AudioTooLong, LiveAudio
from voicebrush_daemon.speech.streaming import Cadence, StableText, appended, completion_delta
from voicebrush_daemon.speech.turns import SpeechProbabilities, TurnDetector, TurnSettings

# ---- LocalAgreement ------------------------------------------------------------


def run(hypotheses):
    policy = StableText()
    return [policy.update(h) for h in hypotheses]


def test_a_word_is_stable_once_two_consecutive_partials_agree_on_it():
    shown = run(["a misty", "a misty harbour", "a misty harbour at", "a misty harbour at dawn, wide shot."])
    assert [p.stable for p in shown] == ["", "a misty", "a misty harbour", "a misty harbour at"]
    assert shown[-1].text == "a misty harbour at dawn, wide shot."


def test_agreement_ignores_case_and_punctuation_and_keeps_the_newer_spelling():
    shown = run(["A misty harbor.", "a misty harbor, at dawn"])
    assert shown[-1].stable == "a misty harbor,"


def test_stable_text_never_shrinks_nor_changes_when_partials_change_their_mind():
    shown = run(["a red fox", "a red fox in", "a bread box in the snow", "a bread box in the snow"])
    stables = [p.stable for p in shown]
    assert stables == ["", "a red fox", "a red fox", "a red fox"]
    assert all(p.text.startswith(p.stable) for p in shown)
    # Agreement past the stable words needs the stable words first: no duplicate words.
    shown = run(["a misty", "a misty harbour", "the very misty harbour at dawn", "the very misty harbour at dawn"])
    assert shown[-1].stable == "a misty"


@pytest.mark.parametrize(
    "hypotheses",
    [
        ["one", "one two", "", "one two three", "uno dos", "one two three four", "one two three four"],
        ["x y z", "x y", "x", "x y z w", "x y z w v"],
    ],
)
def test_stable_only_grows_as_a_string(hypotheses):
    previous = ""
    for partial in run([h for h in hypotheses if h]):
        assert partial.stable.startswith(previous)
        previous = partial.stable


def test_deltas_add_up_to_the_stable_text_then_the_final():
    assert appended("", "a misty") == "a misty"
    assert appended("a misty", "a misty harbour") == " harbour"
    assert completion_delta("a misty harbour", "a misty harbour at dawn.") == " at dawn."
    assert completion_delta("a misty harbor", "a misty harbour at dawn.") == ""  # the final changed a sent word
    assert completion_delta("", "a fox") == "a fox"


# ---- cadence -----------------------------------------------------------------


def test_cadence_is_never_faster_than_half_a_second_and_slows_with_slow_decodes():
    cadence = Cadence()
    assert cadence.next_start(10.0, 0.05) == pytest.approx(10.5)
    assert cadence.next_start(10.0, 0.4) == pytest.approx(10.8)  # busy at most half the time
    assert cadence.next_start(10.0, 3.0) == pytest.approx(16.0)


# ---- turns (server VAD) ---------------------------------------------------------


def test_turns_start_after_sustained_speech_and_stop_after_the_silence_duration():
    detector = TurnDetector(TurnSettings(threshold=0.5, prefix_padding_ms=64, silence_duration_ms=320, min_speech_ms=96))
    probabilities = [0.1] * 10 + [0.9] * 2 + [0.1] + [0.9] * 20 + [0.4] * 5 + [0.8] * 3 + [0.1] * 12
    events = detector.push(probabilities[:20]) + detector.push(probabilities[20:])
    # A 2-window blip is not speech; the start counts from the first window of the lasting run,
    # less the padding; 0.4 is within Silero's hysteresis (not silence); 10 windows of silence stop it.
    assert [(e.kind, e.ms) for e in events] == [("speech_started", 13 * 32 - 64), ("speech_stopped", (41 + 10) * 32)]
    assert not detector.speaking
    assert detector.push([0.1] * 50) == []


def test_speech_probabilities_as_samples_arrive_equal_the_whole_stream_at_once():
    from faster_whisper.vad import get_vad_model

    from voicebrush_daemon.audio import decode_audio

    samples = decode_audio(wav(silence(1.0) + clip_pcm() + silence(1.0)))
    usable = len(samples) // 512 * 512
    whole = get_vad_model()(samples[:usable])
    live = SpeechProbabilities()
    pieces = [live.push(samples[i : min(i + 777, usable)]) for i in range(0, usable, 777)]
    np.testing.assert_array_equal(np.concatenate(pieces), whole)
    events = TurnDetector().push(np.concatenate(pieces))
    assert [e.kind for e in events] == ["speech_started", "speech_stopped"]


# ---- the live audio buffer ------------------------------------------------------


def test_live_audio_is_exactly_the_decoded_wav_of_the_same_pcm_however_chunked():
    from voicebrush_daemon.audio import decode_audio

    for rate in (16_000, 44_100, 22_050):
        pcm = clip_pcm("alley.flac", rate)
        expected = decode_audio(wav(pcm, rate))
        for size in (1, 3001, 64_000):
            audio = LiveAudio(rate, max_seconds=120)
            for i in range(0, len(pcm), size):
                audio.append(pcm[i : i + size])
            np.testing.assert_array_equal(audio.finish(), expected)


def test_live_audio_limits_and_faults():
    audio = LiveAudio(16_000, max_seconds=1.0)
    audio.append(silence(0.9))
    with pytest.raises(AudioTooLong):
        audio.append(silence(0.2))
    odd = LiveAudio(16_000, max_seconds=5)
    odd.append(b"\0\0\0")
    with pytest.raises(InvalidAudio, match="half a sample"):
        odd.finish()
    with pytest.raises(InvalidAudio, match="no samples"):
        LiveAudio(16_000, max_seconds=5).finish()
    with pytest.raises(ValueError):
        LiveAudio(96_000, max_seconds=5)
    freed = LiveAudio(16_000, max_seconds=5)
    freed.append(silence(1.0))
    view, _ = freed.newest()
    freed.release()
    assert len(freed) == 0 and freed.newest()[0].size == 0
    assert view.size == 16_000  # a reader that held a view keeps what it saw
