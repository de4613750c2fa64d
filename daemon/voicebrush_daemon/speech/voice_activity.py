"""What both engines share so that silence and noise give "" the same way.

Whisper, fed audio without speech, tends to invent text ("Thank you.", "you").
Two defences, applied identically by every engine:
1. Silero VAD (the ONNX model that faster-whisper ships) finds the stretches that
   hold speech; with none, the engine is not run at all. Only those stretches are
   transcribed, and segment times are mapped back to the original audio.
2. Whisper's own no-speech rule on each segment: a segment the model itself thinks
   is probably not speech, and is unsure of the words in, is dropped.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import ApiError
from .base import SAMPLE_RATE, Segment, TranscribeOptions, Transcript

# Silero's default threshold; speech under a quarter second (a click, a cough) is not
# a prompt. Silences shorter than a second stay inside one stretch so phrases are
# not cut apart; the padding keeps word onsets and endings Silero clips.
VAD_THRESHOLD = 0.5
MIN_SPEECH_MS = 250
MIN_SILENCE_MS = 1000
SPEECH_PAD_MS = 400

# Whisper's defaults (transcribe.py) for skipping a window as silence.
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
# Beyond this the model is nearly sure there was no speech, whatever its confidence
# in the words it produced.
CERTAIN_NO_SPEECH = 0.9


@dataclass(frozen=True)
class SpeechStretches:
    """The parts of the audio that hold speech, joined, with the map back."""

    samples: np.ndarray  # the speech stretches, concatenated
    chunks: tuple[tuple[int, int], ...]  # (start, end) sample indices in the original

    def original_time(self, seconds: float, *, is_end: bool = False) -> float:
        """A time in `samples` as a time in the original audio."""
        position = int(round(seconds * SAMPLE_RATE))
        consumed = 0
        for index, (start, end) in enumerate(self.chunks):
            length = end - start
            last = index == len(self.chunks) - 1
            # An end time exactly at a boundary belongs to the stretch it ends.
            if position < consumed + length or (is_end and position == consumed + length) or last:
                return round((start + min(max(position - consumed, 0), length)) / SAMPLE_RATE, 3)
            consumed += length
        return 0.0


def checked_samples(samples: np.ndarray) -> np.ndarray:
    """Samples as the engines need them: a 1-D float32 array (audio.decode_audio's output)."""
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim != 1:
        raise ValueError(f"expected mono samples (1-D), got shape {samples.shape}")
    return samples


def find_speech(samples: np.ndarray) -> SpeechStretches | None:
    """The speech in `samples` (16 kHz mono float32), or None when there is none."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    if samples.size == 0 or not np.any(samples):
        return None  # digital silence: nothing for the VAD to look at
    options = VadOptions(
        threshold=VAD_THRESHOLD,
        min_speech_duration_ms=MIN_SPEECH_MS,
        min_silence_duration_ms=MIN_SILENCE_MS,
        speech_pad_ms=SPEECH_PAD_MS,
    )
    stamps = get_speech_timestamps(samples, options, sampling_rate=SAMPLE_RATE)
    chunks = tuple((int(s["start"]), int(s["end"])) for s in stamps if s["end"] > s["start"])
    if not chunks:
        return None
    joined = np.concatenate([samples[start:end] for start, end in chunks]).astype(np.float32, copy=False)
    return SpeechStretches(samples=joined, chunks=chunks)


def is_speech_segment(text: str, no_speech_prob: float, avg_logprob: float) -> bool:
    if not re.search(r"\w", text):
        return False  # only punctuation or blanks
    if no_speech_prob > CERTAIN_NO_SPEECH:
        return False
    return not (no_speech_prob > NO_SPEECH_THRESHOLD and avg_logprob < LOGPROB_THRESHOLD)


def kept_segments(raw: list[Segment], stretches: SpeechStretches) -> tuple[Segment, ...]:
    """Segments with the no-speech ones dropped and times mapped to the original audio."""
    kept = []
    for segment in raw:
        text = " ".join(segment.text.split())
        if not is_speech_segment(text, segment.no_speech_prob, segment.avg_logprob):
            continue
        kept.append(
            Segment(
                start=stretches.original_time(segment.start),
                end=stretches.original_time(segment.end, is_end=True),
                text=text,
                no_speech_prob=float(segment.no_speech_prob),
                avg_logprob=float(segment.avg_logprob),
            )
        )
    return tuple(kept)


def joined_text(segments: tuple[Segment, ...]) -> str:
    return " ".join(segment.text for segment in segments).strip()


def checked_language(language: str | None, *, english_only: bool) -> str | None:
    """An ISO-639-1 code Whisper knows (names like "English" accepted), or None to detect.

    Raises ApiError 400 `invalid_language` otherwise, which the HTTP edge renders.
    """
    if language is None or not language.strip():
        return "en" if english_only else None
    from whisper.tokenizer import LANGUAGES, TO_LANGUAGE_CODE

    key = language.strip().lower()
    code = key if key in LANGUAGES else TO_LANGUAGE_CODE.get(key)
    if code is None:
        raise ApiError(400, f"unknown language {language!r}: use an ISO-639-1 code such as 'en'", "invalid_language", param="language")
    if english_only and code != "en":
        raise ApiError(
            400,
            f"the loaded speech model is English-only and cannot transcribe {LANGUAGES[code]}",
            "unsupported_language",
            param="language",
        )
    return code


def temperatures(temperature: float) -> tuple[float, ...]:
    """OpenAI's `temperature`: 0 (the default) decodes deterministically; above, it samples."""
    if not np.isfinite(temperature) or temperature < 0 or temperature > 1:
        raise ApiError(400, "temperature must be a number from 0 to 1", "invalid_temperature", param="temperature")
    return (float(temperature),)


@dataclass(frozen=True)
class SpeechRequest:
    """A transcription checked the same way for every engine, with the speech found in it."""

    language: str | None  # None: the engine detects it
    temperature: tuple[float, ...]
    duration: float  # seconds of the audio given
    stretches: SpeechStretches | None  # None: no speech, so the engine is not run

    def transcript(self, segments: tuple[Segment, ...] = (), detected: str | None = None) -> Transcript:
        """What was heard: the kept segments joined, in the language the engine detected."""
        return Transcript(text=joined_text(segments), language=detected or self.language or "en", duration=self.duration, segments=tuple(segments))


def speech_request(samples: np.ndarray, options: TranscribeOptions, *, english_only: bool) -> SpeechRequest:
    """Options and samples checked (a 400 ApiError if not), and the speech in the samples."""
    language = checked_language(options.language, english_only=english_only)
    temperature = temperatures(options.temperature)
    samples = checked_samples(samples)
    return SpeechRequest(language, temperature, len(samples) / SAMPLE_RATE, find_speech(samples))
