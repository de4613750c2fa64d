"""The Krita plugin's streamed takes without Krita: LiveTake and generation.run against a real tiny daemon.

The recorder's side is played by a thread pushing a shipped clip at real-time pace, as
QtMultimedia delivers it; Krita's own recording through the virtual microphone is in
tests/krita/inside/check_streaming.py.
"""

import io
import json
import sys
import threading
import time
import urllib.request
import wave
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "plugins" / "krita"))

from voicebrush import canvas, generation, spoken  # noqa: E402
from voicebrush.client import Client, Dictation, VoicebrushError, encode_wav  # noqa: E402
from voicebrush.live_take import LiveTake  # noqa: E402
from voicebrush.options import GenerationRequest, Rect  # noqa: E402

SPEECH = ROOT / "tests" / "fixtures" / "speech"
CHUNK = 3200  # 0.1 s of 16 kHz mono s16


def clip_pcm(name="demo_prompt.wav"):
    with wave.open(str(SPEECH / name), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        return wav.readframes(wav.getnframes())


def play(take, pcm, pace=1.0, then_silence_s=0.5, until=None, sent=None):
    """Push pcm into the take at real-time pace (as a microphone would), then let go.

    With `until`, a microphone's silence goes on until until() holds (at most 60 s more),
    so a test waits for an event (a partial) however slowly a loaded machine decodes,
    instead of for a time. `sent` (a bytearray) gets every byte pushed."""
    data = pcm + b"\0" * int(32000 * then_silence_s)
    pieces = [data[start:start + CHUNK] for start in range(0, len(data), CHUNK)]
    more_silence = 600
    while pieces or (until is not None and not until() and more_silence > 0):
        if pieces:
            piece = pieces.pop(0)
        else:
            piece, more_silence = b"\0" * CHUNK, more_silence - 1
        take.push(piece)
        if sent is not None:
            sent.extend(piece)
        time.sleep(0.1 * pace)
    take.release()


def events_of(server, job_id):
    """The job's whole event stream, as the daemon replays it to a late subscriber."""
    request = urllib.request.Request(server + "/v1/jobs/%s/events" % job_id, headers={"Accept": "text/event-stream"})
    names = []
    with urllib.request.urlopen(request, timeout=60) as response:
        for raw in response:
            line = raw.decode().strip()
            if line.startswith("event:"):
                names.append(line.split(":", 1)[1].strip())
                if names[-1] in ("done", "failed", "cancelled"):
                    break
    return names


def png(width, height, colour=(20, 20, 20)):
    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, "PNG")
    return out.getvalue()


def test_a_live_take_streams_and_ends_with_the_one_shot_transcript(tiny_daemon):
    client = Client(tiny_daemon.url)
    pcm = clip_pcm()
    take = LiveTake()
    partials = []
    take.listener = lambda name, data: partials.append((name, dict(data)))
    take.push(pcm[:CHUNK * 5])  # recorded before the daemon's job exists: kept, sent first
    sent = bytearray(pcm[:CHUNK * 5])
    player = threading.Thread(target=play, args=(take, pcm[CHUNK * 5:]),
                              kwargs={"until": lambda: partials, "sent": sent})
    player.start()
    text = take.transcript(client)
    player.join()
    assert take.streaming
    assert text == client.transcribe(encode_wav(bytes(sent)))  # the one-shot words of the same samples
    assert partials and all(name == "partial" for name, _ in partials)
    stable = [data["stable"] for _, data in partials]
    assert all(later.startswith(earlier) for earlier, later in zip(stable, stable[1:]))  # the settled part only grows
    job = json.load(urllib.request.urlopen(tiny_daemon.url + "/v1/jobs/" + take.dictation.job_id, timeout=10))
    # A take for its words only (transcribe_only) ends done and draws nothing.
    assert job["status"] == "done" and not job["images"] and job["transcript"] == text.strip(), job


def test_a_streamed_fill_starts_on_release_and_keeps_its_pictures(tiny_daemon):
    client = Client(tiny_daemon.url)
    take = LiveTake()
    partials = []
    take.listener = lambda name, data: partials.append(name)
    threading.Thread(target=play, args=(take, clip_pcm()), kwargs={"until": lambda: partials}, daemon=True).start()
    capture = generation.CanvasCapture(Rect(16, 16, 96, 64), region=Rect(0, 0, 128, 96), image_png=png(128, 96),
                                       mask_png=png(128, 96, (255, 255, 255)), has_selection=True)
    outcome = generation.run(client, GenerationRequest("", steps=2, fill=True), capture, take=take)
    assert outcome.mode == canvas.FILL and outcome.rect == Rect(0, 0, 128, 96) and len(outcome.result.images) == 1
    job = outcome.result.job
    assert job["mode"] == "inpaint" and set(job["inputs"]) == {"image", "mask"} and job["transcript"]
    names = events_of(tiny_daemon.url, job["id"])
    assert "partial" in names and names.index("partial") < names.index("transcript") < names.index("done")


def test_cancel_while_recording_stops_the_listening_job(tiny_daemon):
    client = Client(tiny_daemon.url)
    take = LiveTake()
    take.push(clip_pcm()[:CHUNK * 10])
    cancel = threading.Event()
    threading.Timer(0.5, cancel.set).start()
    with pytest.raises(VoicebrushError) as raised:
        generation.run(client, GenerationRequest("", steps=2), generation.CanvasCapture(Rect(0, 0, 64, 64)), take=take,
                       cancelled=cancel.is_set)
    assert raised.value.code == "cancelled"
    job = json.load(urllib.request.urlopen(tiny_daemon.url + "/v1/jobs/" + take.dictation.job_id, timeout=10))
    assert job["status"] in ("cancelled", "failed") and not job["images"]


def test_without_streaming_the_whole_take_goes_up_with_its_pictures(tiny_daemon):
    """The fallback for a daemon without streaming (a Dictation with no listening job), pictures included."""
    client = Client(tiny_daemon.url)
    dictation = Dictation(client, 16000, None, {"steps": 2, "strength": 0.5},
                          pictures={"image": png(96, 64)})
    dictation.push(clip_pcm())
    assert not dictation.streaming
    assert dictation.finish()
    result = dictation.wait()
    assert result.job["mode"] == "img2img" and result.job["strength"] == 0.5 and set(result.job["inputs"]) == {"image"}


KEEP_THE_LAYOUT = ROOT / "tests" / "krita" / "fixtures" / "keep_the_layout.wav"


@pytest.mark.parametrize("how", ["uploaded", "streamed"])
def test_a_spoken_keep_the_layout_refines_the_canvas(tiny_daemon, how):
    """What to expect is read from the daemon's own one-shot transcript of the clip (tiny.en's
    words vary across CPUs); on the CPUs tried it hears "keep the layout"."""
    client = Client(tiny_daemon.url)
    wav = KEEP_THE_LAYOUT.read_bytes()
    heard = client.transcribe(wav)
    refine = spoken.spoken_refine(heard)[1]
    capture = generation.CanvasCapture(Rect(0, 0, 96, 64), region=Rect(0, 0, 96, 64), image_png=png(96, 64))
    request = GenerationRequest("", steps=2)
    if how == "uploaded":
        outcome = generation.run(client, request, capture, audio=wav)
    else:
        take = LiveTake()
        with wave.open(io.BytesIO(wav)) as clip:
            pcm = clip.readframes(clip.getnframes())
        threading.Thread(target=play, args=(take, pcm, 0.25), daemon=True).start()
        outcome = generation.run(client, request, capture, take=take)
    job = outcome.result.job
    if refine:
        assert (outcome.mode, job["mode"], job["strength"]) == ("img2img", "img2img", canvas.SPOKEN_REFINE_STRENGTH)
        assert set(job["inputs"]) == {"image"} and "layout" not in job["prompt"].lower()
        assert job["prompt"] == spoken.spoken_refine(job["prompt"])[0]
    else:
        assert outcome.mode == job["mode"] == "text"
    assert outcome.rect == Rect(0, 0, 96, 64)
