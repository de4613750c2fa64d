"""OpenAI's transcription response formats."""

from __future__ import annotations

import pytest

from voicebrush_daemon.errors import ApiError
from voicebrush_daemon.speech.base import Segment, Transcript
from voicebrush_daemon.speech.formats import RESPONSE_FORMATS, render, to_srt, to_verbose_json, to_vtt

TWO = Transcript(
    text="A misty harbour at dawn. Wide shot.",
    language="en",
    duration=3725.5,
    segments=(
        Segment(0.0, 2.5, "A misty harbour at dawn.", no_speech_prob=0.01, avg_logprob=-0.2),
        Segment(3723.04, 3725.5, "Wide shot.", no_speech_prob=0.02, avg_logprob=-0.3),
    ),
)
SILENT = Transcript(text="", language="en", duration=2.0)


def test_json_is_just_the_text():
    assert render(TWO, "json") == ({"text": TWO.text}, "application/json")
    assert render(TWO, None)[0] == {"text": TWO.text}  # json is the default
    assert render(SILENT)[0] == {"text": ""}


def test_text_is_the_text_and_a_newline():
    assert render(TWO, "text") == (TWO.text + "\n", "text/plain; charset=utf-8")


def test_verbose_json_has_openai_fields():
    body = to_verbose_json(TWO)
    assert body["task"] == "transcribe" and body["language"] == "english"
    assert body["duration"] == 3725.5 and body["text"] == TWO.text
    first, second = body["segments"]
    assert set(first) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob", "compression_ratio", "no_speech_prob",
    }  # fmt: skip
    assert (first["id"], first["start"], first["end"], first["no_speech_prob"]) == (0, 0.0, 2.5, 0.01)
    assert (second["id"], second["start"], second["text"]) == (1, 3723.04, "Wide shot.")
    assert first["compression_ratio"] > 0
    assert to_verbose_json(SILENT)["segments"] == []


def test_srt():
    assert to_srt(TWO) == (
        "1\n00:00:00,000 --> 00:00:02,500\nA misty harbour at dawn.\n"
        "\n"
        "2\n01:02:03,040 --> 01:02:05,500\nWide shot.\n"
    )
    assert to_srt(SILENT) == ""


def test_vtt():
    assert to_vtt(TWO) == (
        "WEBVTT\n\n"
        "00:00:00.000 --> 00:00:02.500\nA misty harbour at dawn.\n"
        "\n"
        "01:02:03.040 --> 01:02:05.500\nWide shot.\n"
    )
    assert render(SILENT, "vtt")[0] == "WEBVTT\n\n"


def test_cue_text_cannot_break_the_cue():
    odd = Transcript("a --> b", "en", 1.0, (Segment(0.0, 1.0, "a -->\n\nb"),))
    assert to_vtt(odd).splitlines()[3] == "a -> b"
    assert to_srt(odd).splitlines()[2] == "a -> b"


@pytest.mark.parametrize("fmt", ["xml", "", " JSON "])
def test_format_names(fmt):
    if fmt.strip().lower() in RESPONSE_FORMATS or not fmt:
        assert render(TWO, fmt)
    else:
        with pytest.raises(ApiError) as info:
            render(TWO, fmt)
        assert info.value.status == 400 and info.value.param == "response_format"
