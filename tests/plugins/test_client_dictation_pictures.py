"""Streamed dictation over a picture: the shared client sends image/depth with the take.

The Blender add-on streams a take with its camera's depth (source DEPTH) or render
(source RENDER); a daemon without streaming gets them with the whole take instead.
"""

import sys
import wave

import pytest

from voicebrush_testing import ROOT

sys.path.insert(0, str(ROOT / "plugins" / "shared"))

import voicebrush_client as vc  # noqa: E402

SPEECH = ROOT / "tests" / "fixtures" / "speech" / "demo_prompt.wav"
FAST = {"steps": 2, "size": "64x64", "seed": 3}


def grey_png(width=64, height=64):
    import io

    from PIL import Image

    picture = Image.new("L", (width, height), 0)
    picture.paste(255, (0, 0, width // 2, height))  # near on the left
    buffer = io.BytesIO()
    picture.save(buffer, "PNG")
    return buffer.getvalue()


def speech_pcm():
    with wave.open(str(SPEECH)) as clip:
        return clip.getframerate(), clip.readframes(clip.getnframes())


def test_a_streamed_take_carries_its_depth(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    rate, pcm = speech_pcm()
    dictation = client.start_dictation(rate=rate, depth=grey_png(), **FAST)
    assert dictation.streaming
    for start in range(0, len(pcm), 6400):
        dictation.push(pcm[start:start + 6400])
    assert dictation.finish().strip()
    result = dictation.wait()
    assert result.job["mode"] == "depth" and set(result.job["inputs"]) == {"depth"}
    assert result.images and result.images[0][:8] == b"\x89PNG\r\n\x1a\n"


def test_without_streaming_the_pictures_go_with_the_whole_take(plugin_daemon, monkeypatch):
    real_call = vc.Client._call

    def older_daemon(self, method, path, body=None, *args, **kwargs):
        if method == "POST" and path == "/v1/jobs" and body and b'"stream_audio"' in body:
            raise vc.VoicebrushError("prompt is required", code="invalid_value", status=400, param="prompt")
        return real_call(self, method, path, body, *args, **kwargs)

    monkeypatch.setattr(vc.Client, "_call", older_daemon)
    client = vc.Client(plugin_daemon.url)
    rate, pcm = speech_pcm()
    dictation = client.start_dictation(rate=rate, image=grey_png(), strength=0.5, **FAST)
    assert not dictation.streaming
    dictation.push(pcm)
    dictation.finish()
    result = dictation.wait()
    assert result.job["mode"] == "img2img" and result.job["strength"] == pytest.approx(0.5)
    assert set(result.job["inputs"]) == {"image"}


def test_a_picture_must_be_png_bytes(plugin_daemon):
    with pytest.raises(TypeError, match="depth must be PNG bytes"):
        vc.Client(plugin_daemon.url).start_dictation(depth="not bytes")
