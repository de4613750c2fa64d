"""The response formats of OpenAI's /v1/audio/transcriptions, over a Transcript.

    body, content_type = render(transcript, "srt")

`json` and `verbose_json` give a dict to serialise; `text`, `srt` and `vtt` a string.
"""

from __future__ import annotations

import zlib

from ..errors import ApiError
from .base import Segment, Transcript

RESPONSE_FORMATS = ("json", "text", "srt", "verbose_json", "vtt")

_CONTENT_TYPES = {
    "json": "application/json",
    "verbose_json": "application/json",
    # OpenAI answers text, srt and vtt as plain text; clients rely on that.
    "text": "text/plain; charset=utf-8",
    "srt": "text/plain; charset=utf-8",
    "vtt": "text/plain; charset=utf-8",
}


def render(transcript: Transcript, response_format: str | None = "json") -> tuple[dict | str, str]:
    """The response body and its Content-Type; ApiError 400 for an unknown format."""
    fmt = (response_format or "json").strip().lower()
    if fmt not in RESPONSE_FORMATS:
        raise ApiError(
            400,
            f"response_format must be one of {', '.join(RESPONSE_FORMATS)}",
            "invalid_response_format",
            param="response_format",
        )
    renderers = {"json": to_json, "text": to_text, "srt": to_srt, "verbose_json": to_verbose_json, "vtt": to_vtt}
    return renderers[fmt](transcript), _CONTENT_TYPES[fmt]


def to_json(transcript: Transcript) -> dict:
    return {"text": transcript.text}


def to_text(transcript: Transcript) -> str:
    return transcript.text + "\n"


def to_verbose_json(transcript: Transcript) -> dict:
    return {
        "task": "transcribe",
        "language": language_name(transcript.language),
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [_segment_json(i, s) for i, s in enumerate(transcript.segments)],
    }


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{_cue_text(s.text)}\n"
        for i, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    cues = [f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{_cue_text(s.text)}\n" for s in transcript.segments]
    return "WEBVTT\n\n" + "\n".join(cues)


def language_name(code: str) -> str:
    """OpenAI reports the language by name ("english"), Whisper works with codes ("en")."""
    from whisper.tokenizer import LANGUAGES

    return LANGUAGES.get(code, code)


def _segment_json(index: int, segment: Segment) -> dict:
    # The fields of OpenAI's TranscriptionSegment. Token ids and the decoding
    # temperature are not kept by the engines; the compression ratio is Whisper's
    # own measure (text bytes over zlib-compressed bytes).
    return {
        "id": index,
        "seek": int(round(segment.start * 100)),
        "start": round(segment.start, 3),
        "end": round(segment.end, 3),
        "text": segment.text,
        "tokens": [],
        "temperature": 0.0,
        "avg_logprob": round(segment.avg_logprob, 6),
        "compression_ratio": round(_compression_ratio(segment.text), 6),
        "no_speech_prob": round(segment.no_speech_prob, 6),
    }


def _compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def _timestamp(seconds: float, decimal_marker: str) -> str:
    millis = max(0, int(round(seconds * 1000)))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{decimal_marker}{millis:03d}"


def _cue_text(text: str) -> str:
    # A blank line ends a cue in both formats, and "-->" inside a cue breaks VTT parsers.
    return " ".join(text.split()).replace("-->", "->")
