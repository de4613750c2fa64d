"""The shared plugin client against a real tiny daemon (in process, and as the studio cluster's
front door: the plugins notice nothing), and its pure helpers."""

import io
import socket
import struct
import sys
import threading
import time
import wave
from pathlib import Path

import pytest

from voicebrush_testing import ROOT, free_port, parse_python

sys.path.insert(0, str(ROOT / "plugins" / "shared"))

import voicebrush_client as vc  # noqa: E402

SPEECH = ROOT / "tests" / "fixtures" / "speech"


# -- against the daemon ----------------------------------------------------------


def test_health_reports_ready_models(plugin_daemon):
    health = vc.Client(plugin_daemon.url).health()
    assert health["status"] == "ok"
    assert health["models"]["native_size"] == "256x256"


def test_run_job_follows_events_and_fetches_pngs(plugin_daemon):
    events = []
    result = vc.Client(plugin_daemon.url).run_job(
        "a red fox in the snow", on_event=lambda name, data: events.append((name, data)),
        steps=4, size=(128, 64), seed=11, n=2, negative_prompt="blurry")
    names = [name for name, _ in events]
    assert names[-1] == "done" and names.count("progress") >= 4
    assert [data["step"] for name, data in events if name == "progress"][-1] == 4
    assert result.seed == 11 and result.prompt == "a red fox in the snow"
    assert result.job["negative_prompt"] == "blurry"
    assert [vc.png_size(png) for png in result.images] == [(128, 64), (128, 64)]


def test_dictation_job_from_audio_reports_the_transcript(plugin_daemon):
    events = []
    result = vc.Client(plugin_daemon.url).run_job(
        audio=(SPEECH / "fox_44k_stereo.wav").read_bytes(), audio_filename="fox.wav",
        on_event=lambda name, data: events.append(name), steps=4, size="64x64")
    # "a red fox in the snow"; "fox" alone is CPU-fragile ("a red box"): test_speech_heard_elsewhere.py
    assert sum(word in result.transcript.lower() for word in ("red", "fox", "snow")) >= 2, result.transcript
    assert "transcript" in events
    assert len(result.images) == 1


def test_transcribe(plugin_daemon):
    text = vc.Client(plugin_daemon.url).transcribe((SPEECH / "demo_prompt.wav").read_bytes())
    assert "misty" in text.lower() or "harbo" in text.lower()


def test_no_speech_is_a_readable_error(plugin_daemon):
    with pytest.raises(vc.VoicebrushError) as raised:
        vc.Client(plugin_daemon.url).run_job(audio=Path("/usr/share/sounds/alsa/Noise.wav").read_bytes(), steps=4)
    assert raised.value.code == "no_speech"
    assert "No speech was heard" in str(raised.value)


def test_cancel_while_running(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    seen_progress = threading.Event()
    started = time.monotonic()
    with pytest.raises(vc.VoicebrushError) as raised:
        client.run_job("slow", steps=300, size="256x256", cancelled=seen_progress.is_set,
                       on_event=lambda name, data: name == "progress" and seen_progress.set())
    assert raised.value.code == "cancelled"
    assert time.monotonic() - started < 20
    assert client.list_jobs(limit=1)[0]["status"] == "cancelled"


def test_polling_fallback_when_events_are_not_offered(plugin_daemon, monkeypatch):
    client = vc.Client(plugin_daemon.url)

    def no_stream(*args, **kwargs):
        raise vc.VoicebrushError("no stream here", code="http_404", status=404)
        yield  # a generator, as the real one

    monkeypatch.setattr(client, "_stream_events", no_stream)
    events = []
    result = client.run_job("polled", steps=4, size="64x64", poll_interval=0.05,
                            on_event=lambda name, data: events.append(name))
    assert len(result.images) == 1 and result.job["status"] == "done"


def _png(image):
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_jobs_that_start_from_pictures(plugin_daemon):
    """What the Krita and Blender plugins send: the canvas (img2img), the canvas and a
    selection (inpaint), the scene's depth; PNG bytes in, the record naming each input."""
    import numpy as np
    from PIL import Image

    client = vc.Client(plugin_daemon.url)
    rng = np.random.default_rng(4)
    canvas = Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), "RGB")
    result = client.run_job("a forest at dusk", image=_png(canvas), strength=0.5, steps=2, size=(64, 64), seed=3)
    assert (result.job["mode"], result.job["strength"], list(result.job["inputs"])) == ("img2img", 0.5, ["image"])
    kept = Image.open(io.BytesIO(client.fetch(result.job["inputs"]["image"])))
    assert np.array_equal(np.asarray(kept.convert("RGB")), np.asarray(canvas))  # the history keeps what was sent
    assert [vc.png_size(png) for png in result.images] == [(64, 64)]

    selection = Image.new("L", (64, 64), 0)
    selection.paste(255, (0, 0, 32, 64))
    result = client.run_job("a door", image=_png(canvas), mask=_png(selection), steps=2, size="64x64", seed=3)
    assert result.job["mode"] == "inpaint" and sorted(result.job["inputs"]) == ["image", "mask"]
    drawn = np.asarray(Image.open(io.BytesIO(result.images[0])).convert("RGB"))
    from voicebrush_daemon.imaging.inputs import feathered

    untouched = np.asarray(feathered(selection, 4)) == 0  # beyond the seam (mask_blur 4)
    assert untouched[:, 48:].all()
    assert np.array_equal(drawn[untouched], np.asarray(canvas)[untouched])

    depth = Image.linear_gradient("L").resize((96, 64))
    result = client.run_job("a canyon", depth=_png(depth), steps=2)
    assert result.job["mode"] == "depth" and result.job["size"] == "312x208"

    result = client.run_job(audio=(SPEECH / "fox.mp3").read_bytes(), audio_filename="fox.mp3", image=_png(canvas), steps=2, size="64x64")
    assert result.job["mode"] == "img2img" and result.transcript  # spoken over the canvas

    with pytest.raises(vc.VoicebrushError) as raised:
        client.submit_job("a fox", image=b"not a png")
    assert (raised.value.status, raised.value.code, raised.value.param) == (400, "invalid_image", "image")
    with pytest.raises(vc.VoicebrushError) as raised:
        client.submit_job("a fox", mask=_png(selection))
    assert (raised.value.code, raised.value.param) == ("invalid_value", "mask")
    with pytest.raises(TypeError):
        client.submit_job("a fox", image="canvas.png")  # bytes, not a path
    with pytest.raises(TypeError):
        client.generate("a fox", strength=0.5)  # text to image only


# -- storyboards against the daemon -------------------------------------------------

BOARD = {"size": "64x64", "steps": 2}


def test_run_storyboard_follows_every_shot_and_fetches_the_sheets(plugin_daemon):
    import pypdf

    client = vc.Client(plugin_daemon.url)
    events = []
    board = client.run_storyboard(
        "Shot one, a lighthouse at dusk. Next shot, the keeper without people. Cut to a ship in the storm.",
        style="ink wash", on_event=lambda name, data: events.append((name, data)), **BOARD)
    assert board["status"] == "done" and [shot["index"] for shot in board["shots"]] == [1, 2, 3]
    assert [shot["text"] for shot in board["shots"]] == ["a lighthouse at dusk", "the keeper without people", "a ship in the storm"]
    assert board["shots"][1]["prompt"] == "the keeper, ink wash" and board["shots"][1]["negative_prompt"] == "people"
    assert events[-1][0] == "done" and events[-1][1]["id"] == board["id"]
    for shot in board["shots"]:
        mine = [name for name, data in events[:-1] if data["index"] == shot["index"]]
        assert "progress" in mine and mine[-1] == "done"
        assert vc.png_size(client.fetch(shot["image"])) == (64, 64)
    assert vc.png_size(client.fetch_sheet(board["id"], "png"))[0] >= 900
    pdf = pypdf.PdfReader(io.BytesIO(client.fetch_sheet(board["id"], "pdf")))
    assert len(pdf.pages) == 1
    assert client.list_storyboards(limit=1)[0]["id"] == board["id"]


def test_create_get_events_and_sequence_seeds(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    board = client.create_storyboard(shots=["a door", "a hall"], seed=40, seed_mode="sequence", size=(64, 64), steps=1)
    assert [shot["seed"] for shot in board["shots"]] == [40, 41] and board["status"] == "running"
    events = list(client.storyboard_events(board["id"]))  # ends by itself after the board's done
    assert events[-1][0] == "done" and "index" not in events[-1][1]
    assert {data["index"] for name, data in events if name == "done" and "index" in data} == {1, 2}
    again = client.get_storyboard(board["id"])
    assert again["status"] == "done" and all(shot["image"] for shot in again["shots"])
    assert client.get_job(again["shots"][0]["job"])["storyboard"] == board["id"]


def test_a_dictated_script_from_a_wav(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    board = client.run_storyboard(audio=(SPEECH / "storyboard.wav").read_bytes(), audio_filename="take.wav", language="en", **BOARD)
    assert "lighthouse" in board["transcript"].lower()
    assert len(board["shots"]) == 3 and board["status"] == "done"


def test_redo_a_shot_and_follow_its_job(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    board = client.run_storyboard(shots=["a cat", "a dog"], seed=3, **BOARD)
    old = board["shots"][0]["job"]
    redone = client.redo_shot(board["id"], 1, text="a lynx")
    shot = redone["shots"][0]
    assert shot["job"] != old and shot["history"] == [old] and shot["text"] == "a lynx" and shot["seed"] == 3
    result = client.follow_job(shot["job"])
    assert result.prompt == "a lynx" and vc.png_size(result.images[0]) == (64, 64)
    assert client.get_storyboard(board["id"])["shots"][0]["image"] == result.job["images"][0]
    with pytest.raises(vc.VoicebrushError) as raised:
        client.redo_shot(board["id"], 3)
    assert raised.value.status == 404 and raised.value.code == "shot_not_found"


def test_cancel_a_board_from_the_caller(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    first_done = threading.Event()

    def on_event(name, data):
        if name == "done" and data.get("index") == 1:
            first_done.set()

    board = client.run_storyboard(shots=["a cat", "a dog", "a bird", "a fish"], size="64x64", steps=60,
                                  on_event=on_event, cancelled=first_done.is_set)
    assert board["status"] == "cancelled"
    assert board["shots"][0]["status"] == "done" and board["shots"][-1]["status"] == "cancelled"


def test_follow_storyboard_polls_when_the_stream_breaks(plugin_daemon, monkeypatch):
    client = vc.Client(plugin_daemon.url)

    def no_stream(*args, **kwargs):
        raise vc.VoicebrushError("no stream here", code="http_404", status=404)
        yield  # a generator, as the real one

    monkeypatch.setattr(client, "_stream", no_stream)
    board = client.create_storyboard(shots=["a cat", "a dog"], **BOARD)
    events = []
    final = client.follow_storyboard(board["id"], on_event=lambda name, data: events.append((name, data)), poll_interval=0.05)
    assert final["status"] == "done"
    assert sorted(data["index"] for name, data in events if name == "done" and "index" in data) == [1, 2]
    assert events[-1][0] == "done" and "index" not in events[-1][1]


def test_storyboard_errors_read_as_sentences(plugin_daemon):
    client = vc.Client(plugin_daemon.url)
    with pytest.raises(vc.VoicebrushError) as raised:
        client.create_storyboard(script="\n".join("a panel %d" % i for i in range(65)), **BOARD)
    assert raised.value.code == "too_many_shots" and "at most 64 shots" in str(raised.value)
    with pytest.raises(vc.VoicebrushError) as raised:
        client.create_storyboard(script="shot one. next shot.", **BOARD)
    assert raised.value.code == "no_shots" and "no shot to draw" in str(raised.value)
    with pytest.raises(vc.VoicebrushError):
        client.create_storyboard(script="   ")
    with pytest.raises(TypeError):
        client.create_storyboard(script="a cat", stepz=3)
    with pytest.raises(ValueError):
        client.fetch_sheet("0" * 32, "jpeg")


def test_wrong_token_is_a_401_sentence(start_daemon):
    # Auth is checked before anything else, so the models need not be loaded.
    daemon = start_daemon(token="right-token", wait_healthy=False)
    assert vc.Client(daemon.url).health()["status"] in ("ok", "loading")  # health needs no token
    for token in ("wrong", ""):
        with pytest.raises(vc.VoicebrushError) as raised:
            vc.Client(daemon.url, token=token).submit_job("a cat")
        assert raised.value.status == 401 and raised.value.code == "invalid_token"
        assert "refused the token" in str(raised.value)


@pytest.mark.parametrize("server", ["not a url", "localhost:99999", "http://box:abc", "ftp://box", "http://", "http://box\t:7860"])
def test_a_server_that_is_no_address_is_a_bad_url_sentence(server):
    """What an artist may type in the server field: a VoicebrushError the plugins report, never
    a ValueError or http.client's InvalidURL from deep inside a request."""
    with pytest.raises(vc.VoicebrushError) as caught:
        vc.Client(server)
    assert caught.value.code == "bad_url" and "http://127.0.0.1:7860" in str(caught.value)


@pytest.mark.parametrize("server, where", [
    ("localhost:7860", ("http", "localhost", 7860, "")),
    ("https://box.example/voicebrush/", ("https", "box.example", 443, "/voicebrush")),
    ("  http://[::1]:8000  ", ("http", "::1", 8000, "")),
])
def test_a_server_address_is_read_as_typed(server, where):
    client = vc.Client(server)
    assert (client._scheme, client._host, client._port, client._prefix) == where


def test_dead_port_is_unreachable_within_seconds():
    url = "http://127.0.0.1:%d" % free_port()
    started = time.monotonic()
    with pytest.raises(vc.VoicebrushError) as raised:
        vc.Client(url).run_job("anything")
    assert time.monotonic() - started < 3
    assert raised.value.code == "unreachable" and raised.value.status is None
    assert url in str(raised.value) and "Is it running?" in str(raised.value)


def test_silent_server_times_out_instead_of_hanging():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        started = time.monotonic()
        with pytest.raises(vc.VoicebrushError) as raised:
            vc.Client("http://127.0.0.1:%d" % listener.getsockname()[1], timeout=1.0).health()
        assert raised.value.code == "timeout"
        assert time.monotonic() - started < 3
    finally:
        listener.close()


# -- pure helpers ------------------------------------------------------------------


def test_encode_wav_round_trips():
    pcm = struct.pack("<4h", 0, 1000, -1000, 32767)
    with wave.open(io.BytesIO(vc.encode_wav(pcm)), "rb") as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (16000, 1, 2)
        assert wav.readframes(4) == pcm


def test_png_size_and_level():
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + struct.pack(">II", 300, 200) + b"\x08\x06\x00\x00\x00"
    assert vc.png_size(png) == (300, 200)
    with pytest.raises(ValueError):
        vc.png_size(b"GIF89a" + b"\0" * 30)
    assert vc.pcm_level(b"") == 0.0
    assert vc.pcm_level(struct.pack("<2h", 0, -32767)) == 1.0


@pytest.mark.parametrize("target, max_side, expected", [
    ((256, 256), 256, (256, 256)),
    ((200, 100), 256, (256, 128)),
    ((300, 200), 768, (768, 512)),
    ((1920, 1080), 768, (768, 432)),
    ((100, 10000), 512, (64, 512)),  # never below 64
    ((33, 33), 4096, (2048, 2048)),  # never above 2048
])
def test_fit_generation_size(target, max_side, expected):
    width, height = vc.fit_generation_size(target[0], target[1], max_side=max_side)
    assert (width, height) == expected
    assert width % 8 == 0 and height % 8 == 0


def test_sse_parser_handles_comments_multiline_and_crlf():
    lines = [b": keep-alive\n", b"event: progress\r\n", b'data: {"step": 1,\n', b'data: "steps": 4}\n', b"\n",
             b"data: plain\n", b"\n"]
    assert list(vc.parse_sse(lines)) == [("progress", {"step": 1, "steps": 4}), ("message", "plain")]


def test_picture_jobs_go_as_multipart_parts(monkeypatch):
    sent = {}

    def call(method, path, body=None, content_type=None, **kwargs):
        sent.update(path=path, body=body, content_type=content_type)
        return 202, [], b'{"id": "x", "status": "queued"}'

    client = vc.Client()
    monkeypatch.setattr(client, "_call", call)
    client.submit_job("a cat", image=b"\x89PNG image", depth=b"\x89PNG depth", strength=0.6)
    assert sent["path"] == "/v1/jobs" and sent["content_type"].startswith("multipart/form-data; boundary=")
    assert b'name="image"; filename="image.png"\r\nContent-Type: image/png\r\n\r\n\x89PNG image\r\n' in sent["body"]
    assert b'name="depth"; filename="depth.png"' in sent["body"] and b'name="mask"' not in sent["body"]
    assert b'name="strength"\r\n\r\n0.6\r\n' in sent["body"]
    client.submit_job("a cat")
    assert sent["content_type"] == "application/json"  # no picture: JSON as before
    with pytest.raises(vc.VoicebrushError):
        client.submit_job(image=b"\x89PNG image")  # a picture alone says nothing to draw


def test_multipart_body_is_well_formed():
    body, content_type = vc.encode_multipart({"prompt": "a cat", "steps": 4, "seed": None},
                                             {"file": ("x.wav", b"RIFF....", "audio/wav")})
    boundary = content_type.split("boundary=")[1]
    assert body.startswith(b"--" + boundary.encode()) and body.endswith(b"--" + boundary.encode() + b"--\r\n")
    assert b'name="prompt"\r\n\r\na cat\r\n' in body and b'name="seed"' not in body
    assert b'filename="x.wav"\r\nContent-Type: audio/wav\r\n\r\nRIFF....\r\n' in body


def test_unknown_option_is_a_type_error():
    with pytest.raises(TypeError):
        vc.Client().submit_job("a cat", stepz=4)


def test_errors_read_as_sentences():
    assert str(vc.VoicebrushError("CUDA out of memory", code="out_of_memory")).startswith("The daemon ran out of memory")
    assert "could not be read as audio" in str(vc.VoicebrushError("bad", code="invalid_audio", status=400))
    assert str(vc.VoicebrushError("Something odd", code="weird")) == "Something odd."


def test_client_is_python37_syntax():
    source = (ROOT / "plugins" / "shared" / "voicebrush_client.py").read_text()
    parse_python(source, feature_version=(3, 7))
