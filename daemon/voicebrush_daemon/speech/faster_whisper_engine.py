"""Speech to text with faster-whisper (CTranslate2): the default engine.

int8 on CPU (the fastest CPU setting at Whisper's accuracy), float16 on CUDA.

Whisper was trained on 30 s windows and encodes one for every prompt, so a 4 s
dictation pays for 30 s of encoder work: on a CPU, most of its transcription time.
This engine encodes a 10 s window instead when the speech fits in it with a second
to spare, as nearly every dictated prompt does (`encoder_window_frames`); longer
speech gets Whisper's own 30 s window. Windows cut close to the speech make tiny.en
repeat itself ("Front Right Front Right ..."), and so did a 21 s window on a 20 s
take. A decode in the 10 s window that still loops, is cut off at a token cap, or
is unsure of its words, is decoded again with the full window. So guarded, it
matched the full window's accuracy on 120 takes with no loop left, in half the time
on short prompts, on this CPU's numeric path and on another one forced
(docs/benchmarks.md, "The encoder window", "Speech on other CPUs").
"""

from __future__ import annotations

import gc
import re
import threading
from pathlib import Path

import numpy as np
from faster_whisper import WhisperModel
from faster_whisper.tokenizer import Tokenizer

from .base import SAMPLE_RATE, Segment, TranscribeOptions, Transcript
from .voice_activity import kept_segments, speech_request

BEAM_SIZE = 5

# Whisper's log-mel frames: one per 10 ms; the encoder's window is 3000 of them.
FRAMES_PER_SECOND = 100
FULL_WINDOW_FRAMES = 30 * FRAMES_PER_SECOND
SHORT_WINDOW_FRAMES = 10 * FRAMES_PER_SECOND
# Silence the model sees after the last word, at least: it marks where speech ends.
WINDOW_MARGIN_FRAMES = 1 * FRAMES_PER_SECOND
# Whisper's own hallucination signal (transcribe.py's compression_ratio_threshold).
MAX_COMPRESSION_RATIO = 2.4
# A short-window decode less sure of its tokens than this (the mean of its segments'
# average log-probability) is decoded again in the full window. The words the short
# window got wrong where the full one did not came with -0.9 to -1.2 on an Intel-like
# numeric path: at -0.9, a sixth of the sweep's takes were redone, and the short
# window went from 8 words worse than the full one to 2 there, at no cost in words on
# this CPU's own path. Whisper's own threshold (-1.0, for its temperature fallback)
# caught too few.
UNSURE_LOGPROB = -0.9
# How long a short-window decode may run: a loop is cut off within a second or so
# on a CPU instead of running to Whisper's 448 tokens (4 s measured), then retried.
# faster-whisper hands max_new_tokens to CTranslate2's beam search, which stopped at
# half of it (100 -> 50 tokens, CTranslate2 4.8.5): this is about 10 tokens a second
# of speech, twice fast speech. Whether a decode was cut off is read from how it ends
# (`cut_off`), not from this number.
TOKENS_PER_SECOND = 20
EXTRA_TOKENS = 40
# With the longest initial prompt faster-whisper keeps (223 tokens, plus the start
# sequence), more would pass Whisper's 448-token limit, which faster-whisper refuses.
MAX_NEW_TOKENS = 200


def token_cap(speech_samples: int) -> int:
    return min(MAX_NEW_TOKENS, EXTRA_TOKENS + -(-speech_samples * TOKENS_PER_SECOND // SAMPLE_RATE))


def encoder_window_frames(speech_samples: int) -> int | None:
    """How many frames to encode for this much speech, or None for the full 30 s window."""
    speech_frames = -(-speech_samples // (SAMPLE_RATE // FRAMES_PER_SECOND))
    return SHORT_WINDOW_FRAMES if speech_frames + WINDOW_MARGIN_FRAMES <= SHORT_WINDOW_FRAMES else None


def repeats_itself(text: str, times: int = 3) -> bool:
    """True when one to four words come `times` times in a row: a decoding loop, or a stutter."""
    words = re.findall(r"\w+", text.lower())
    for n in range(1, 5):
        for start in range(len(words) - n * times + 1):
            phrase = words[start : start + n]
            if all(words[start + k * n : start + (k + 1) * n] == phrase for k in range(1, times)):
                return True
    return False


def cut_off(segments, timestamp_begin: int) -> bool:
    """Whether a decode stopped before its end: Whisper closes every segment it finishes
    with a timestamp token, so one that ends on a word ran into the token cap."""
    return not segments or not segments[-1].tokens or segments[-1].tokens[-1] < timestamp_begin


def unsure(segments) -> bool:
    """Whether a decode's tokens were, on average, less likely than UNSURE_LOGPROB."""
    return bool(segments) and sum(s.avg_logprob for s in segments) / len(segments) < UNSURE_LOGPROB


def loops(segments) -> bool:
    """Whether faster-whisper's segments look like a decoding loop: text that compresses
    too well (Whisper's own test, for long loops) or a short phrase repeated."""
    return any(s.compression_ratio > MAX_COMPRESSION_RATIO or repeats_itself(s.text) for s in segments)


class _WindowedWhisperModel(WhisperModel):
    """faster-whisper's model, encoding only the first `window.frames` frames of each window.

    faster-whisper pads every window to 3000 frames just before `encode`; this cuts
    the padding off again. The window is per thread, set by the caller per transcription.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.window = threading.local()

    def encode(self, features: np.ndarray):
        frames = getattr(self.window, "frames", None)
        if frames is not None:
            features = features[..., :frames]
        return super().encode(features)


class FasterWhisperTranscriber:
    engine = "faster-whisper"

    def __init__(self, model_dir: str | Path, *, model_id: str, device: str = "cpu", cpu_threads: int = 0, full_window: bool = False) -> None:
        """Load a CTranslate2 Whisper model from a local folder.

        `device` is "cpu" or "cuda"; finding and downloading the folder is load_transcriber's job.
        `full_window` encodes Whisper's 30 s window for every prompt, as faster-whisper does.
        """
        self.model_id = model_id
        self.device = device
        self.full_window = full_window
        self.full_window_retries = 0  # transcriptions decoded again with the full window
        self.compute_type = "float16" if device == "cuda" else "int8"
        self._model = _WindowedWhisperModel(
            str(model_dir),
            device=device,
            compute_type=self.compute_type,
            cpu_threads=cpu_threads,
            local_files_only=True,
        )
        # The first timestamp token: every finished segment ends on one (see cut_off).
        self._timestamp_begin = Tokenizer(self._model.hf_tokenizer, self._model.model.is_multilingual, task="transcribe", language="en").timestamp_begin

    @property
    def english_only(self) -> bool:
        return not self._model.model.is_multilingual

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions = TranscribeOptions()) -> Transcript:
        request = speech_request(samples, options, english_only=self.english_only)
        if request.stretches is None:
            return request.transcript()
        raw, detected = self.decode_speech(request.stretches.samples, request.language, request.temperature, options.prompt)
        segments = kept_segments(
            [Segment(start=s.start, end=s.end, text=s.text, no_speech_prob=s.no_speech_prob, avg_logprob=s.avg_logprob) for s in raw],
            request.stretches,
        )
        return request.transcript(segments, detected)

    def decode_speech(self, speech: np.ndarray, language, temperature, prompt):
        """(faster-whisper's segments, the language) for speech the VAD kept: in the short
        window when it fits, again in the full one when that decode loops, runs long or is unsure."""
        window = None if self.full_window else encoder_window_frames(len(speech))
        if window is not None:
            cap = token_cap(len(speech))
            raw, detected = self._decode(speech, window, language, temperature, prompt, max_new_tokens=cap)
            if not loops(raw) and not cut_off(raw, self._timestamp_begin) and not unsure(raw):
                return raw, detected
            self.full_window_retries += 1
        return self._decode(speech, None, language, temperature, prompt)

    def _decode(self, speech: np.ndarray, window: int | None, language, temperature, prompt, *, max_new_tokens: int | None = None):
        """(faster-whisper's segments, the language) for the speech, encoding `window` frames."""
        self._model.window.frames = window
        try:
            raw_segments, info = self._model.transcribe(
                speech,
                language=language,
                task="transcribe",
                beam_size=BEAM_SIZE,
                temperature=list(temperature),
                initial_prompt=prompt or None,
                # A dictated prompt is short; conditioning on earlier text only lets one
                # hallucination breed the next.
                condition_on_previous_text=False,
                vad_filter=False,  # voice_activity.find_speech already did it, identically for both engines
                max_new_tokens=max_new_tokens,
            )
            return list(raw_segments), info.language  # a generator: decoding happens here
        finally:
            self._model.window.frames = None

    def close(self) -> None:
        model, self._model = getattr(self, "_model", None), None
        del model
        gc.collect()
