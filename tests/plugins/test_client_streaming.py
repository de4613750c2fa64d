"""The shared plugin client's streamed dictation against the real tiny daemon.

A recorder thread pushes a spoken clip at real-time pace, as Krita's QAudioSource or
Blender's sounddevice callback would; the client uploads it chunked with http.client
and reads partials from the job's events. Transcripts are compared with the daemon's
one-shot transcription of the same samples, never with words.
"""

import sys
import threading
import time

import numpy as np
import pytest

from voicebrush_testing import ROOT

sys.path.insert(0, str(ROOT / "plugins" / "shared"))

import voicebrush_client as vc  # noqa: E402

SPEECH = ROOT / "tests" / "fixtures" / "speech"
FAST = {"steps": 2, "size": "64x64", "seed": 3}


def clip_pcm(name, rate=16000):
    """A shipped clip as 16-bit mono PCM at `rate`, through the daemon's own decoder."""
    import av

    sys.path.insert(0, str(ROOT / "daemon"))
    from voicebrush_daemon.audio import decode_audio

    samples = decode_audio((SPEECH / name).read_bytes())
    pcm = (np.clip(samples, -1, 1) * 32767).astype("<i2")
    if rate == 16000:
        return pcm.tobytes()
    resampler = av.AudioResampler(format="s16", layout="mono", rate=rate)
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate, frame.pts = 16000, 0
    out = [f.to_ndarray().reshape(-1) for f in list(resampler.resample(frame)) + list(resampler.resample(None))]
    return np.concatenate(out).astype("<i2").tobytes()


def record(dictation, pcm, rate=16000, chunk_s=0.1, realtime=True, until=None, limit_s=60.0):
    """What a recording thread does: push each buffer as it fills. With `until`, the
    microphone keeps giving silence after the clip until until() is true (at most limit_s),
    so the test does not hang on this machine's speed. Returns all that was pushed."""
    size = int(rate * chunk_s) * 2
    pushed = bytearray()
    started = time.monotonic()
    for offset in range(0, len(pcm), size):
        piece = pcm[offset:offset + size]
        if realtime:
            delay = started + offset / 2 / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        dictation.push(piece)
        pushed += piece
    tail_started = time.monotonic()
    while until is not None and not until() and time.monotonic() - tail_started < limit_s:
        time.sleep(chunk_s)
        quiet = b"\0\0" * int(rate * chunk_s)
        dictation.push(quiet)
        pushed += quiet
    return bytes(pushed)


def one_shot(client, pcm, rate=16000):
    return client.transcribe(vc.encode_wav(pcm, rate), filename="take.wav")


def test_a_recorded_take_streams_shows_partials_and_ends_in_the_one_shot_transcript(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    partials = []
    dictation = client.start_dictation(on_partial=lambda text, stable: partials.append((text, stable)), **FAST)
    assert dictation.streaming and dictation.job_id
    box = {}
    recorder = threading.Thread(target=lambda: box.update(sent=record(dictation, clip_pcm("demo_prompt.wav"), until=lambda: partials)))
    recorder.start()
    recorder.join(120)
    seen_while_recording = list(partials)
    transcript = dictation.finish()
    events = []
    result = dictation.wait(on_event=lambda name, data: events.append(name))

    assert seen_while_recording, "no partial arrived while the take was recorded"
    assert dictation.partial == partials[-1]
    for (_, before), (text, after) in zip(partials, partials[1:]):
        assert after.startswith(before) and text.startswith(after)
    assert transcript == one_shot(client, box["sent"])
    assert result.transcript == transcript and len(result.images) == 1
    assert vc.png_size(result.images[0]) == (64, 64)
    names = [name for name in events if name != "progress"]
    assert names[0] == "partial" and names[-2:] == ["transcript", "done"]


@pytest.mark.parametrize("rate", [48000, 22050])
def test_dictate_sends_an_iterable_of_chunks_at_the_recorders_rate(plugin_daemon, rate):
    client = vc.Client(plugin_daemon.url)
    pcm = clip_pcm("fox_44k_stereo.wav", rate)
    chunks = (pcm[i:i + 4097] for i in range(0, len(pcm), 4097))  # odd sizes: samples split across chunks
    result = client.dictate(chunks, rate=rate, language="en", **FAST)
    assert result.transcript == one_shot(client, pcm, rate)
    assert result.job["status"] == "done"


def test_cancel_mid_take_cancels_the_job(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    dictation = client.start_dictation(**FAST)
    dictation.push(clip_pcm("castle.ogg")[:32000])
    dictation.cancel()
    with pytest.raises(vc.VoicebrushError) as caught:
        dictation.finish()
    assert caught.value.code == "cancelled"
    assert client.get_job(dictation.job_id)["status"] == "cancelled"


def test_a_take_without_speech_is_the_no_speech_sentence(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    dictation = client.start_dictation(**FAST)
    record(dictation, b"\0\0" * 16000, realtime=False)
    assert dictation.finish() == ""
    with pytest.raises(vc.VoicebrushError) as caught:
        dictation.wait()
    assert caught.value.code == "no_speech" and "No speech was heard" in str(caught.value)


# -- a daemon from before streaming --------------------------------------------


class OlderDaemonStandIn(object):
    """Stand-in for a daemon released before streamed dictation: forwards every request
    to the real tiny daemon, except that JSON jobs are answered as that daemon's request
    model did (stream_audio ignored as an unknown field, so a prompt is required)."""

    def __init__(self, target):
        import http.server
        import json
        import urllib.request

        target = target.rstrip("/")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _forward(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if self.command == "POST" and self.path == "/v1/jobs" and self.headers.get("Content-Type", "").startswith("application/json"):
                    fields = json.loads(body)
                    fields.pop("stream_audio", None)
                    fields.pop("language", None)
                    if not fields.get("prompt"):
                        answer = json.dumps({"error": {"message": "'prompt' is required.", "type": "invalid_request_error", "code": "missing_field", "param": "prompt"}}).encode()
                        self.send_response(400)
                        self.send_header("Content-Type", "application/json")
                        self.send_header("Content-Length", str(len(answer)))
                        self.end_headers()
                        self.wfile.write(answer)
                        return
                    body = json.dumps(fields).encode()
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length", "connection")}
                request = urllib.request.Request(target + self.path, data=body, method=self.command, headers=headers)
                try:
                    upstream = urllib.request.urlopen(request, timeout=120)
                except urllib.error.HTTPError as exc:
                    upstream = exc
                self.send_response(upstream.status)
                for key, value in upstream.headers.items():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Connection", "close")
                self.end_headers()
                while True:  # line by line, so an event stream flows through as it comes
                    line = upstream.readline()
                    if not line:
                        break
                    self.wfile.write(line)
                    self.wfile.flush()
                self.close_connection = True

            do_GET = do_POST = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture
def older_daemon(plugin_daemon):
    stand_in = OlderDaemonStandIn(plugin_daemon.url)
    yield stand_in
    stand_in.close()


@pytest.mark.parametrize("typed_prompt", [None, "a lighthouse"])
def test_without_streaming_the_take_is_uploaded_whole_at_finish(older_daemon, plugin_daemon, typed_prompt):
    client = vc.Client(older_daemon.url)
    before = {job["id"] for job in vc.Client(plugin_daemon.url).list_jobs(limit=200)}
    dictation = client.start_dictation(prompt=typed_prompt, **FAST)
    assert not dictation.streaming and dictation.job_id is None
    pcm = clip_pcm("fox.mp3")
    record(dictation, pcm, realtime=False)
    transcript = dictation.finish()
    result = dictation.wait()
    assert transcript == one_shot(vc.Client(plugin_daemon.url), pcm)
    assert result.transcript == transcript and len(result.images) == 1
    assert result.prompt == (typed_prompt or result.prompt)
    # The typed-prompt job the older daemon started for the streaming request was cancelled.
    new_jobs = [job for job in vc.Client(plugin_daemon.url).list_jobs(limit=200) if job["id"] not in before]
    assert sorted(job["status"] for job in new_jobs) == (["cancelled", "done"] if typed_prompt else ["done"])
