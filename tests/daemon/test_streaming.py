"""Streamed dictation on the real app with the real tiny engines: POST /v1/jobs {"stream_audio": true},
then the take's raw PCM, chunked, as it is recorded, while the job's events show partial words.

No assertion rests on timing or on which words tiny.en hears: the final transcript is compared
with the one-shot transcript of the very same samples, and partials with each other.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from streaming_support import chunks, clip_pcm, paced, pcm_type, read_sse, silence, wav
from voicebrush_testing import wait_job, wait_ready

from voicebrush_daemon.server.state import JOBS

# Runs twice: models in process, and as the studio cluster's front door.
pytestmark = pytest.mark.both_backends

FAST_JOB = {"stream_audio": True, "steps": 2, "size": "64x64", "seed": 5}


async def one_shot(client, pcm: bytes, rate: int = 16_000) -> str:
    from aiohttp import FormData

    form = FormData()
    form.add_field("file", wav(pcm, rate), filename="take.wav", content_type="audio/wav")
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 200, await response.text()
    return (await response.json())["text"]


async def open_take(client, **fields) -> str:
    response = await client.post("/v1/jobs", json={**FAST_JOB, **fields})
    body = await response.json()
    assert response.status == 202, body
    assert body["status"] == "listening"
    return body["id"]


async def paced_until_partial(pcm: bytes, events: list, marks: dict, limit_s: float = 60.0):
    """The clip at real-time pace, then the silence a live microphone keeps giving until
    a partial has arrived (at most limit_s): the take ends only after that, so whether
    partials arrive while speaking does not hang on this machine's speed."""
    async for piece in paced(chunks(pcm)):
        yield piece
    pause = silence(0.1)
    started = time.monotonic()
    while not any(name == "partial" for name, _ in events) and time.monotonic() - started < limit_s:
        await asyncio.sleep(0.1)
        marks["tail"] = marks.get("tail", b"") + pause
        yield pause
    marks["body_end"] = time.monotonic()


async def test_partials_arrive_while_speaking_stable_only_grows_and_final_equals_one_shot(client):
    job_id = await open_take(client)
    events, stamps, marks = [], [], {}
    stream = await client.get(f"/v1/jobs/{job_id}/events")
    reader = asyncio.ensure_future(read_sse(stream, events, stamps))
    pcm = clip_pcm("demo_prompt.wav")
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced_until_partial(pcm, events, marks), headers=pcm_type())
    answer = await response.json()
    assert response.status == 200, answer
    await asyncio.wait_for(reader, 120)

    names = [name for name, _ in events]
    partials = [data for name, data in events if name == "partial"]
    assert partials, names
    # Shown while the take was still being recorded: before the end of its body.
    assert stamps[names.index("partial")] < marks["body_end"]
    # Stable text only grows, and every partial's words start with its stable part.
    for before, after in zip(partials, partials[1:]):
        assert after["stable"].startswith(before["stable"]), (before, after)
        assert after["audio_s"] >= before["audio_s"]
    assert all(p["text"].startswith(p["stable"]) for p in partials)
    # Then the ordinary events, in order: transcript, progress, done.
    assert names[names.index("partial") :].count("transcript") == 1
    assert names.index("transcript") > max(i for i, n in enumerate(names) if n == "partial")
    assert names[-1] == "done", events[-1]

    # The final is the one-shot transcript of the very same samples.
    sent = pcm + marks.get("tail", b"")
    assert answer["text"] == await one_shot(client, sent)
    assert answer["id"] == job_id and answer["duration"] == pytest.approx(len(sent) / 2 / 16_000, abs=0.01)
    job = await wait_job(client, job_id)
    assert job["status"] == "done" and job["transcript"] == answer["text"] and len(job["images"]) == 1
    assert job["timings"]["partials"] >= 1 and "final_transcribe_s" in job["timings"]


@pytest.mark.parametrize("rate", [48_000, 24_000, 8_000])
async def test_final_equals_one_shot_at_other_rates_however_chunked(client, rate):
    pcm = clip_pcm("fox_44k_stereo.wav", rate)
    job_id = await open_take(client, language="en")
    # Odd-sized chunks: samples split across chunks are put back together.
    pieces = [pcm[i : i + 3001] for i in range(0, len(pcm), 3001)]
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(pieces, rate, realtime=False), headers=pcm_type(rate))
    answer = await response.json()
    assert response.status == 200, answer
    assert answer["text"] == await one_shot(client, pcm, rate)
    assert (await wait_job(client, job_id))["transcript"] == answer["text"]


async def test_audio_pcm_without_parameters_is_16_khz(client):
    pcm = clip_pcm("castle.ogg")
    job_id = await open_take(client)
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(chunks(pcm), realtime=False), headers={"Content-Type": "audio/pcm"})
    assert response.status == 200
    assert (await response.json())["text"] == await one_shot(client, pcm)


async def test_silence_gives_no_partials_and_ends_no_speech(client):
    job_id = await open_take(client)
    events = []
    reader = asyncio.ensure_future(read_sse(await client.get(f"/v1/jobs/{job_id}/events"), events))
    quiet = silence(1.5) + silence(1.5, noise=0.002)  # digital silence, then a quiet room
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(chunks(quiet)), headers=pcm_type())
    assert response.status == 200
    assert (await response.json())["text"] == ""
    await asyncio.wait_for(reader, 60)
    assert [name for name, _ in events] == ["transcript", "failed"]
    job = await wait_job(client, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "no_speech" and not job["images"]


async def test_a_typed_prompt_overrides_the_streamed_transcript(client):
    job_id = await open_take(client, prompt="a lighthouse")
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(chunks(clip_pcm("fox.mp3")), realtime=False), headers=pcm_type())
    assert response.status == 200
    job = await wait_job(client, job_id)
    assert job["status"] == "done" and job["prompt"] == "a lighthouse" and job["transcript"] == (await response.json())["text"]


async def test_a_streamed_take_over_a_picture_refines_it(client):
    # Dictation works in every mode: a refine spoken over the canvas, the canvas sent first.
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (20, 120, 200)).save(buffer, format="PNG")
    canvas = base64.b64encode(buffer.getvalue()).decode()
    job_id = await open_take(client, image=canvas, strength=0.5)
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(chunks(clip_pcm("fox.mp3")), realtime=False), headers=pcm_type())
    assert response.status == 200
    job = await wait_job(client, job_id)
    assert job["status"] == "done", job
    assert job["mode"] == "img2img" and job["strength"] == 0.5 and set(job["inputs"]) == {"image"}
    from urllib.parse import urlsplit

    stored = await (await client.get(urlsplit(job["inputs"]["image"]).path)).read()
    assert Image.open(io.BytesIO(stored)).convert("RGB").getpixel((10, 10)) == (20, 120, 200)


# ---- limits and faults -------------------------------------------------------------------------


def assert_error(body: dict, code: str, param=None) -> None:
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "code", "param"}, body
    assert body["error"]["code"] == code, body
    if param is not None:
        assert body["error"]["param"] == param, body


async def test_more_than_120_s_is_413_after_the_body_is_read(client):
    job_id = await open_take(client)
    marks = {}
    body = silence(121) + clip_pcm()  # the limit is on audio, speech or not
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(chunks(body, seconds=2), realtime=False, marks=marks), headers=pcm_type())
    assert response.status == 413
    assert_error(await response.json(), "payload_too_large")
    assert "body_end" in marks  # the whole body was sent, then the answer read
    job = await wait_job(client, job_id)
    assert job["status"] == "failed" and job["error"]["code"] == "payload_too_large"
    assert not client.server.app[_listening()].busy


def _listening():
    from voicebrush_daemon.server.routes_stream import LISTENING

    return LISTENING


@pytest.fixture
async def quick_client(make_app, aiohttp_client):
    """The app with a 1 s audio timeout and room for two takes."""
    app = make_app(audio_timeout_s=1.0, max_listening=2)
    test_client = await aiohttp_client(app)
    await wait_ready(test_client)
    return test_client


async def test_no_audio_for_the_timeout_fails_audio_timeout(quick_client):
    client = quick_client
    never_sent = await open_take(client)
    job = await wait_job(client, never_sent, timeout=30)
    assert job["status"] == "failed" and job["error"]["code"] == "audio_timeout"

    stalled = await open_take(client)

    async def stalls():
        yield clip_pcm()[:16_000]
        await asyncio.sleep(30)
        yield b""

    response = await client.post(f"/v1/jobs/{stalled}/audio", data=stalls(), headers=pcm_type())
    assert response.status == 408
    assert_error(await response.json(), "audio_timeout")
    assert (await wait_job(client, stalled))["error"]["code"] == "audio_timeout"
    assert client.server.app[_listening()].busy == 0


async def test_listening_jobs_are_bounded(quick_client):
    client = quick_client
    first, second = await open_take(client), await open_take(client)
    response = await client.post("/v1/jobs", json=FAST_JOB)
    assert response.status == 429 and response.headers["Retry-After"]
    assert_error(await response.json(), "too_many_takes")
    assert (await (await client.delete(f"/v1/jobs/{first}")).json())["status"] == "cancelled"
    third = await open_take(client)
    for job_id in (second, third):
        await client.delete(f"/v1/jobs/{job_id}")


@pytest.mark.parametrize("cancel_handlers", [False, True], ids=["plain", "handler-cancellation"])
async def test_a_client_that_leaves_mid_take_cancels_the_job_and_frees_its_samples(make_app, aiohttp_client, cancel_handlers):
    client = await aiohttp_client(make_app(), server_kwargs={"handler_cancellation": cancel_handlers})
    await wait_ready(client)
    job_id = await open_take(client)
    listening = client.server.app[_listening()]
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        f"POST /v1/jobs/{job_id}/audio HTTP/1.1\r\nHost: 127.0.0.1:{client.server.port}\r\nContent-Type: audio/L16;rate=16000\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
    )
    pcm = clip_pcm()
    for piece in chunks(pcm[: 2 * 16_000 * 2]):
        writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
        await writer.drain()
    deadline = time.monotonic() + 30
    take = listening._takes[job_id]
    while (take.live is None or len(take.live.audio) < 16_000) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    audio = listening._takes[job_id].live.audio
    assert len(audio) >= 16_000
    writer.close()  # the artist's machine went away mid-sentence
    job = await wait_job(client, job_id, timeout=30)
    assert job["status"] == "cancelled"
    assert listening.busy == 0 and len(audio) == 0 and audio.newest()[0].size == 0


async def test_cancel_while_listening(client):
    job_id = await open_take(client)
    marks = {}

    async def slow_then_more():
        async for piece in paced(chunks(clip_pcm())):
            yield piece
            if "cancelled" not in marks:
                marks["cancelled"] = True
                response = await client.delete(f"/v1/jobs/{job_id}")
                assert (await response.json())["status"] == "cancelled"

    response = await client.post(f"/v1/jobs/{job_id}/audio", data=slow_then_more(), headers=pcm_type())
    assert response.status == 409
    assert_error(await response.json(), "cancelled")
    assert (await wait_job(client, job_id))["status"] == "cancelled"


async def test_cancel_during_the_final_decode_draws_nothing(client, monkeypatch):
    # The artist lets go, then cancels while the words are still being decoded: the job
    # ends cancelled there, and its picture never starts once the words are in.
    from voicebrush_daemon.jobs.live_transcription import LiveTranscription

    decoding, release = asyncio.Event(), asyncio.Event()
    original = LiveTranscription.finish

    async def held(self):
        decoding.set()
        await release.wait()
        return await original(self)

    monkeypatch.setattr(LiveTranscription, "finish", held)
    job_id = await open_take(client)
    sending = asyncio.ensure_future(client.post(f"/v1/jobs/{job_id}/audio", data=clip_pcm(), headers=pcm_type()))
    await asyncio.wait_for(decoding.wait(), 60)
    cancelled = await (await client.delete(f"/v1/jobs/{job_id}")).json()
    release.set()
    response = await sending
    assert response.status == 409, await response.text()
    assert_error(await response.json(), "cancelled")
    assert cancelled["status"] == "cancelled"
    job = await wait_job(client, job_id)
    assert job["status"] == "cancelled" and not job["images"], job
    assert client.server.app[JOBS].waiting == 0


@pytest.mark.parametrize(
    "content_type,status,code,param",
    [
        ("audio/wav", 415, "unsupported_media_type", None),
        ("application/octet-stream", 415, "unsupported_media_type", None),
        ("audio/L16;rate=7999", 400, "invalid_value", "rate"),
        ("audio/L16;rate=96000", 400, "invalid_value", "rate"),
        ("audio/L16;rate=fast", 400, "invalid_value", "rate"),
        ("audio/pcm;rate=16000;channels=2", 400, "invalid_value", "channels"),
    ],
)
async def test_wrong_content_types_and_rates_are_clear_4xx(client, content_type, status, code, param):
    job_id = await open_take(client)
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=clip_pcm()[:32_000], headers={"Content-Type": content_type})
    assert response.status == status
    assert_error(await response.json(), code, param)
    # Refused before listening: the job still waits for its audio.
    good = await client.post(f"/v1/jobs/{job_id}/audio", data=clip_pcm(), headers=pcm_type())
    assert good.status == 200


async def test_an_odd_byte_count_is_400_invalid_audio(client):
    job_id = await open_take(client)
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced(chunks(clip_pcm() + b"\x01"), realtime=False), headers=pcm_type())
    assert response.status == 400
    assert_error(await response.json(), "invalid_audio")
    assert (await wait_job(client, job_id))["error"]["code"] == "invalid_audio"


async def test_an_empty_take_is_400_invalid_audio(client):
    job_id = await open_take(client)
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=b"", headers=pcm_type())
    assert response.status == 400
    assert_error(await response.json(), "invalid_audio")


async def test_audio_only_for_a_listening_job(client):
    response = await client.post("/v1/jobs/" + "0" * 32 + "/audio", data=b"\0\0", headers=pcm_type())
    assert response.status == 404
    assert_error(await response.json(), "job_not_found")
    typed = await (await client.post("/v1/jobs", json={"prompt": "a fox", "steps": 1, "size": "64x64"})).json()
    response = await client.post(f"/v1/jobs/{typed['id']}/audio", data=b"\0\0", headers=pcm_type())
    assert response.status == 409
    assert_error(await response.json(), "not_listening")

    job_id = await open_take(client)

    async def forever():
        for piece in chunks(clip_pcm()):
            yield piece
            await asyncio.sleep(0.05)

    first = asyncio.ensure_future(client.post(f"/v1/jobs/{job_id}/audio", data=forever(), headers=pcm_type()))
    await asyncio.sleep(0.5)
    second = await client.post(f"/v1/jobs/{job_id}/audio", data=b"\0\0", headers=pcm_type())
    assert second.status == 409
    assert (await first).status == 200


async def test_a_streaming_job_needs_no_prompt_but_a_plain_one_does(client):
    response = await client.post("/v1/jobs", json={"steps": 1})
    assert response.status == 400
    assert_error(await response.json(), "missing_field", "prompt")
    response = await client.post("/v1/jobs", json={"stream_audio": "yes"})
    assert response.status == 400
    assert_error(await response.json(), "invalid_value", "stream_audio")
    job_id = await open_take(client)
    assert (await (await client.get(f"/v1/jobs/{job_id}")).json())["status"] == "listening"
    await client.delete(f"/v1/jobs/{job_id}")


# ---- OpenAI's streamed transcription -------------------------------------------------------------


async def test_transcription_stream_true_sends_deltas_then_done(client):
    from aiohttp import FormData

    audio = wav(clip_pcm("castle.ogg"))
    form = FormData()
    form.add_field("file", audio, filename="take.wav", content_type="audio/wav")
    form.add_field("stream", "true")
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    events = []
    await read_sse(response, events)
    kinds = [name for name, _ in events]
    assert kinds[-1] == "transcript.text.done" and set(kinds[:-1]) <= {"transcript.text.delta"}
    done = events[-1][1]
    assert done["type"] == "transcript.text.done"
    assert "".join(data["delta"] for name, data in events[:-1]) == done["text"]
    assert done["text"] == await one_shot(client, clip_pcm("castle.ogg"))

    form = FormData()
    form.add_field("file", audio, filename="take.wav", content_type="audio/wav")
    form.add_field("stream", "true")
    form.add_field("response_format", "srt")
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 400
    assert_error(await response.json(), "invalid_value", "stream")


async def test_a_take_for_its_words_only_is_not_refused_by_a_full_queue(make_app, aiohttp_client):
    """transcribe_only (the plugins' transcript-only takes): the words, and a record and
    events as a drawing take's, but no picture, and no wait in the queue. So a full queue
    (429 for anything that draws) does not cost the artist the words."""
    client = await aiohttp_client(make_app(queue_size=1))
    await wait_ready(client)
    busy = []
    for index in range(10):  # until it refuses: the workers (or replicas) busy, the queue full
        response = await client.post("/v1/jobs", json={"prompt": f"busy {index}", "steps": 500, "size": "256x256"})
        if response.status == 429:
            break
        busy.append((await response.json())["id"])
        await asyncio.sleep(0.5)  # taken by a worker slot before the next is sent
    else:
        raise AssertionError("the queue never filled")
    try:
        words_only = await open_take(client, transcribe_only=True)
        events: list = []
        reader = asyncio.ensure_future(read_sse(await client.get(f"/v1/jobs/{words_only}/events"), events))
        response = await client.post(f"/v1/jobs/{words_only}/audio", data=clip_pcm(), headers=pcm_type())
        heard = await response.json()
        assert response.status == 200 and heard["text"].strip(), heard
        await asyncio.wait_for(reader, 60)
        record = await (await client.get(f"/v1/jobs/{words_only}")).json()
        assert record["status"] == "done" and record["images"] == [] and record["error"] is None, record
        assert record["transcript"] == heard["text"].strip() and record["prompt"]
        names = [name for name, _ in events]
        assert "transcript" in names and names[-1] == "done" and "progress" not in names, names
        assert dict(events)["transcript"]["transcript"] == record["transcript"]
        # A take that would draw is refused at its end, as any picture is: its record keeps the words.
        drawing = await open_take(client)
        refused = await client.post(f"/v1/jobs/{drawing}/audio", data=clip_pcm(), headers=pcm_type())
        assert refused.status == 429 and (await refused.json())["error"]["code"] == "queue_full"
        kept = await (await client.get(f"/v1/jobs/{drawing}")).json()
        assert kept["status"] == "failed" and kept["error"]["code"] == "queue_full" and kept["transcript"] == record["transcript"], kept
    finally:
        for job_id in busy:
            await client.delete(f"/v1/jobs/{job_id}")
    # The same samples, one-shot, once the queue has room: the same words.
    assert heard["text"] == await one_shot(client, clip_pcm())


async def test_transcribe_only_is_for_a_streamed_take(client):
    response = await client.post("/v1/jobs", json={"prompt": "a fox", "transcribe_only": True})
    body = await response.json()
    assert response.status == 400 and body["error"]["param"] == "transcribe_only", body


async def test_partials_and_the_final_do_not_wait_for_a_running_generation(client, app_backend):
    """The speech lane runs beside the model worker: while a long generation holds the
    worker, a streamed take still shows partials and gets its final transcript, and the
    generation keeps making progress meanwhile."""
    long_job = await (await client.post("/v1/jobs", json={"prompt": "a slow picture", "steps": 500, "size": "256x256"})).json()
    generation_events: list = []
    generation_reader = asyncio.ensure_future(read_sse(await client.get(f"/v1/jobs/{long_job['id']}/events"), generation_events))
    deadline = time.monotonic() + 60
    while not any(name == "progress" for name, _ in generation_events) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert generation_events, "the generation did not start"

    job_id = await open_take(client)
    events, marks = [], {}
    reader = asyncio.ensure_future(read_sse(await client.get(f"/v1/jobs/{job_id}/events"), events))
    steps_before = sum(1 for name, _ in generation_events if name == "progress")
    response = await client.post(f"/v1/jobs/{job_id}/audio", data=paced_until_partial(clip_pcm(), events, marks), headers=pcm_type())
    answer = await response.json()
    assert response.status == 200, answer
    generation = await (await client.get(f"/v1/jobs/{long_job['id']}")).json()
    assert generation["status"] == "generating"  # still holding the worker: nothing waited for it
    assert any(name == "partial" for name, _ in events)
    assert sum(1 for name, _ in generation_events if name == "progress") > steps_before  # and it went on
    # In process the streamed job waits its turn to generate, and cancelling the long one lets
    # it run; the cluster's second replica takes it at once.
    if app_backend == "in-process":
        assert (await (await client.get(f"/v1/jobs/{job_id}")).json())["status"] == "queued"
    await client.delete(f"/v1/jobs/{long_job['id']}")
    await asyncio.wait_for(generation_reader, 60)
    assert (await wait_job(client, job_id))["status"] == "done"
    await asyncio.wait_for(reader, 60)
    # (The one-shot route queues on the worker, so it is asked only now.)
    assert answer["text"] == await one_shot(client, clip_pcm() + marks.get("tail", b""))
