"""faster-whisper's shorter encoder window, on the real tiny.en weights.

A prompt of up to 9 s of speech is encoded in a 10 s window instead of Whisper's
30 s one (the speed-up is measured by `voicebrush bench`, never here); a transcript
that loops is decoded again with the full window; `--asr-full-window` turns it off.
"""

from __future__ import annotations

import numpy as np
import pytest
from faster_whisper import WhisperModel

from conftest_speech import CLIPS, HUMAN, clip_samples, faster_whisper_tiny, full_window_tiny, speech_data_dir, transcript_of, word_errors

from voicebrush_daemon import cli
from voicebrush_daemon.speech import faster_whisper_engine as engine_module
from voicebrush_daemon.speech.faster_whisper_engine import encoder_window_frames, repeats_itself

__all__ = ["faster_whisper_tiny", "full_window_tiny", "speech_data_dir"]  # fixtures


@pytest.fixture
def encoded_frames(monkeypatch):
    """The number of frames each encoder call received, in order."""
    frames: list[int] = []
    original = WhisperModel.encode

    def recording(self, features):
        frames.append(features.shape[-1])
        return original(self, features)

    monkeypatch.setattr(WhisperModel, "encode", recording)
    return frames


def test_up_to_nine_seconds_of_speech_get_the_ten_second_window():
    assert encoder_window_frames(0) == 1000
    assert encoder_window_frames(3 * 16_000) == 1000
    assert encoder_window_frames(9 * 16_000) == 1000  # a second of margin after the speech
    assert encoder_window_frames(9 * 16_000 + 1) is None  # longer speech: Whisper's own 30 s window
    assert encoder_window_frames(20 * 16_000) is None
    assert encoder_window_frames(60 * 16_000) is None


def test_loops_and_stutters_are_recognised():
    assert repeats_itself("Rear. Left. Rear. Left. Rear. Left.")
    assert repeats_itself("Front, left, left, left")
    assert repeats_itself("mountains mountains mountains mountains")
    assert not repeats_itself("A misty harbor at dawn, wide shot, wide shot.")
    assert not repeats_itself("a red fox in the snow")
    assert not repeats_itself("")


def test_a_short_prompt_is_encoded_in_the_shorter_window(faster_whisper_tiny, encoded_frames):
    text = faster_whisper_tiny.transcribe(clip_samples("fox.mp3")).text
    assert encoded_frames == [1000]
    assert "fox" in text.lower()


def test_long_speech_is_encoded_in_whispers_own_window(faster_whisper_tiny, encoded_frames):
    gap = np.zeros(16_000 // 2, np.float32)  # shorter than the VAD's minimum silence: one stretch
    samples = np.concatenate([clip_samples("castle.ogg"), gap, clip_samples("demo_prompt.wav")])
    text = faster_whisper_tiny.transcribe(samples).text.lower()
    assert encoded_frames == [3000]
    assert "castle" in text and "harbor" in text


def test_the_full_window_can_be_chosen_and_is_no_more_accurate(faster_whisper_tiny, full_window_tiny, encoded_frames):
    # Which single word each window gets wrong changes with the CPU's rounding
    # (alley.flac: "Rely on that night" in 10 s and "Rainy on that light" in 30 s on
    # AVX-512; 7 errors against 6 on the four prompts with oneDNN on SSE4.1, 4
    # against 6 with MKL), so the windows are compared over every shipped clip, within
    # two words of 65. On the sweep's 120 takes, with the unsure-decode guard, the two
    # windows were within 0.2 points on both numeric paths measured (docs/benchmarks.md,
    # "Speech on other CPUs").
    errors = {"short": 0, "full": 0}
    for name, said in {**CLIPS, **HUMAN}.items():
        for window, transcriber in (("short", faster_whisper_tiny), ("full", full_window_tiny)):
            errors[window] += word_errors(said, transcript_of(transcriber, name).text)[0]
    assert errors["short"] <= errors["full"] + 2, errors
    for transcriber in (faster_whisper_tiny, full_window_tiny):
        transcriber.transcribe(clip_samples("fox.mp3"))
    assert set(encoded_frames) == {1000, 3000}
    assert full_window_tiny.full_window and not faster_whisper_tiny.full_window


def test_a_transcript_that_loops_is_decoded_again_with_the_full_window(faster_whisper_tiny, full_window_tiny, encoded_frames, monkeypatch):
    # A window exactly as long as the speech, where tiny.en loops ("Front, left, left,
    # front, left, left, ...").
    def speech_only(samples: int) -> int:
        frames = -(-samples // 160)
        return frames + frames % 2

    monkeypatch.setattr(engine_module, "encoder_window_frames", speech_only)
    samples = clip_samples("Front_Left.wav")
    retries = faster_whisper_tiny.full_window_retries
    result = faster_whisper_tiny.transcribe(samples)
    assert faster_whisper_tiny.full_window_retries == retries + 1
    assert encoded_frames[0] < 300 and encoded_frames[-1] == 3000
    assert result.text == full_window_tiny.transcribe(samples).text
    assert not repeats_itself(result.text)


def test_cli_flag_reaches_the_settings(tmp_path):
    args = cli.build_parser().parse_args(["serve", "--asr-full-window", "--data-dir", str(tmp_path)])
    assert cli.settings_from_args(args).asr_full_window is True
    args = cli.build_parser().parse_args(["serve", "--data-dir", str(tmp_path)])
    assert cli.settings_from_args(args).asr_full_window is False


def test_a_short_window_decode_is_capped_and_one_cut_off_is_redone(faster_whisper_tiny, full_window_tiny, monkeypatch):
    # A cap far below what the prompt needs: the short-window decode stops on a word
    # instead of a closing timestamp (a loop is cut off the same way), so the full
    # window decodes it again, without a cap.
    decodes: list[tuple[int | None, int | None, int]] = []
    original = type(faster_whisper_tiny)._decode

    def recording(self, speech, window, *args, max_new_tokens=None):
        raw, language = original(self, speech, window, *args, max_new_tokens=max_new_tokens)
        decodes.append((window, max_new_tokens, sum(len(s.tokens) for s in raw)))
        return raw, language

    monkeypatch.setattr(type(faster_whisper_tiny), "_decode", recording)
    monkeypatch.setattr(engine_module, "token_cap", lambda samples: 8)
    samples = clip_samples("castle.ogg")
    retries = faster_whisper_tiny.full_window_retries
    result = faster_whisper_tiny.transcribe(samples)
    assert [d[:2] for d in decodes] == [(1000, 8), (None, None)]
    assert decodes[0][2] < decodes[1][2]  # the capped decode stopped early
    assert faster_whisper_tiny.full_window_retries == retries + 1
    monkeypatch.undo()
    assert result.text == full_window_tiny.transcribe(samples).text
    assert "painting" in result.text.lower()


def test_the_token_cap_leaves_room_for_fast_speech_and_a_long_prompt():
    assert engine_module.token_cap(0) == 40
    assert engine_module.token_cap(5 * 16_000) == 140  # about 70 generated: 14 a second
    # Whisper's 448 tokens hold faster-whisper's longest kept prompt (223 + the start
    # sequence) and the largest cap.
    assert engine_module.token_cap(9 * 16_000) == 200 and 1 + 223 + 3 + 200 <= 448


def test_a_short_window_decode_unsure_of_its_words_is_redone(faster_whisper_tiny, full_window_tiny, encoded_frames, monkeypatch):
    # Any real decode is less sure than log-probability 0: with the bar there, the short
    # window's words are always checked against the full window's, and those are kept.
    samples = clip_samples("castle.ogg")
    retries = faster_whisper_tiny.full_window_retries
    monkeypatch.setattr(engine_module, "UNSURE_LOGPROB", 0.0)
    result = faster_whisper_tiny.transcribe(samples)
    assert encoded_frames == [1000, 3000]
    assert faster_whisper_tiny.full_window_retries == retries + 1
    assert result.text == full_window_tiny.transcribe(samples).text
    # No bar at all: one decode in the short window.
    encoded_frames.clear()
    monkeypatch.setattr(engine_module, "UNSURE_LOGPROB", float("-inf"))
    faster_whisper_tiny.transcribe(samples)
    assert encoded_frames == [1000]


def test_unsure_is_the_mean_confidence_of_the_segments():
    class Seg:
        def __init__(self, avg_logprob):
            self.avg_logprob = avg_logprob

    assert not engine_module.unsure([])
    assert not engine_module.unsure([Seg(-0.3), Seg(-1.2)])  # -0.75 on average
    assert engine_module.unsure([Seg(-0.95)])
    assert engine_module.unsure([Seg(-0.7), Seg(-1.2)])
