"""OpenAI's Realtime transcription WebSocket on the real app (aiohttp's own client, in-process),
and the official `openai` SDK's realtime client, unchanged, against a real `voicebrush serve`.

Transcripts are compared with the one-shot transcription of the same samples, never with words.
"""

from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest

from streaming_support import chunks, clip_pcm, paced, silence, wav
from voicebrush_testing import wait_ready

# Runs twice: models in process, and as the studio cluster's front door.
pytestmark = pytest.mark.both_backends

COMPLETED = "conversation.item.input_audio_transcription.completed"
DELTA = "conversation.item.input_audio_transcription.delta"
MANUAL = {"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None}}}}


async def one_shot(client, pcm: bytes, rate: int) -> str:
    form = aiohttp.FormData()
    form.add_field("file", wav(pcm, rate), filename="take.wav", content_type="audio/wav")
    response = await client.post("/v1/audio/transcriptions", data=form)
    assert response.status == 200
    return (await response.json())["text"]


def append(pcm: bytes) -> dict:
    return {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}


async def events_until(ws, kind: str, seen: list, count: int = 1, timeout: float = 120) -> list:
    """Server events into `seen` until `count` of `kind` have come."""

    async def collect():
        while sum(1 for e in seen if e["type"] == kind) < count:
            message = await ws.receive()
            assert message.type == aiohttp.WSMsgType.TEXT, message
            seen.append(json.loads(message.data))

    await asyncio.wait_for(collect(), timeout)
    return seen


async def test_a_committed_item_is_transcribed_exactly_as_one_shot_with_stable_deltas_while_speaking(client):
    pcm = clip_pcm("demo_prompt.wav", 24_000) + silence(0.5, 24_000)
    async with client.ws_connect("/v1/realtime?intent=transcription") as ws:
        seen = await events_until(ws, "session.created", [])
        assert seen[0]["session"]["type"] == "transcription"
        assert seen[0]["session"]["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
        await ws.send_json(MANUAL)
        await events_until(ws, "session.updated", seen)
        assert seen[-1]["session"]["audio"]["input"]["turn_detection"] is None
        async for piece in paced(chunks(pcm, 24_000), 24_000):  # a microphone's pace
            await ws.send_json(append(piece))
        await ws.send_json({"type": "input_audio_buffer.commit", "event_id": "c1"})
        await events_until(ws, COMPLETED, seen)
    kinds = [e["type"] for e in seen]
    committed = seen[kinds.index("input_audio_buffer.committed")]
    completed = seen[kinds.index(COMPLETED)]
    assert committed["previous_item_id"] is None and completed["item_id"] == committed["item_id"]
    assert completed["transcript"] == await one_shot(client, pcm, 24_000)
    assert completed["usage"]["type"] == "duration" and completed["usage"]["seconds"] > 4
    deltas = [e["delta"] for e in seen if e["type"] == DELTA]
    streamed = "".join(deltas)
    # Deltas are append-only stable words: when the final starts with them, the last delta completes it.
    assert streamed == completed["transcript"] or not completed["transcript"].startswith(streamed)
    assert all(e["item_id"] == committed["item_id"] for e in seen if e["type"] == DELTA)


async def test_server_vad_finds_each_turn_commits_it_and_transcribes_it(client):
    turns = [silence(0.6, 24_000) + clip_pcm(name, 24_000) + silence(1.5, 24_000) for name in ("fox.mp3", "castle.ogg")]
    seen: list = []
    async with client.ws_connect("/v1/realtime?intent=transcription") as ws:
        await events_until(ws, "session.created", seen)
        # server_vad is on by default, as in OpenAI's API. One append per turn, so each
        # item is exactly that append's audio.
        for index, turn in enumerate(turns, 1):
            await ws.send_json(append(turn))
            await events_until(ws, "input_audio_buffer.committed", seen, count=index)
        await events_until(ws, COMPLETED, seen, count=2)
    by_kind = lambda kind: [e for e in seen if e["type"] == kind]  # noqa: E731
    started, stopped = by_kind("input_audio_buffer.speech_started"), by_kind("input_audio_buffer.speech_stopped")
    committed, completed = by_kind("input_audio_buffer.committed"), by_kind(COMPLETED)
    assert len(started) == len(stopped) == len(committed) == 2
    for start, stop, commit in zip(started, stopped, committed):
        assert start["item_id"] == stop["item_id"] == commit["item_id"]
        assert start["audio_start_ms"] < stop["audio_end_ms"]
    assert committed[1]["previous_item_id"] == committed[0]["item_id"]
    assert started[1]["audio_start_ms"] > stopped[0]["audio_end_ms"]
    # Session times: the second turn starts after the whole first append.
    assert started[1]["audio_start_ms"] >= 1000 * len(turns[0]) / 2 / 24_000 - 1
    transcripts = {e["item_id"]: e["transcript"] for e in completed}
    for commit, turn in zip(committed, turns):
        assert transcripts[commit["item_id"]] == await one_shot(client, turn, 24_000)


async def test_silence_starts_no_turn(client):
    seen: list = []
    async with client.ws_connect("/v1/realtime?intent=transcription") as ws:
        await events_until(ws, "session.created", seen)
        await ws.send_json(append(silence(2.0, 24_000, noise=0.002)))
        await ws.send_json({"type": "input_audio_buffer.commit"})
        await events_until(ws, COMPLETED, seen)
    kinds = [e["type"] for e in seen]
    assert "input_audio_buffer.speech_started" not in kinds and DELTA not in kinds
    assert seen[-1]["transcript"] == ""


async def test_clear_and_the_errors_keep_the_session_open(client):
    seen: list = []
    async with client.ws_connect("/v1/realtime?intent=transcription") as ws:
        await events_until(ws, "session.created", seen)
        for bad in (
            "not json",
            json.dumps([1, 2]),
            json.dumps({"type": "response.create", "event_id": "e-unknown"}),
            json.dumps({"type": "input_audio_buffer.append", "audio": "%%%"}),
            json.dumps({"type": "session.update", "session": {"type": "realtime"}}),
            json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}}),
            json.dumps({"type": "session.update", "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 96000}}}}}),
            json.dumps({"type": "session.update", "session": {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 2}}}}}),
        ):
            await ws.send_str(bad)
        await ws.send_bytes(b"\0\0")
        await events_until(ws, "error", seen, count=9)
        errors = [e["error"] for e in seen if e["type"] == "error"]
        assert [e["code"] for e in errors] == [
            "invalid_json", "invalid_event", "unknown_event", "invalid_value", "unsupported_session_type",
            "unsupported_audio_format", "invalid_value", "invalid_value", "invalid_event",
        ]
        assert errors[2]["event_id"] == "e-unknown"
        assert errors[6]["param"] == "session.audio.input.format.rate"
        assert errors[7]["param"] == "session.audio.input.turn_detection.threshold"
        assert all(set(e) == {"type", "code", "message", "param", "event_id"} and e["message"] for e in errors)

        await ws.send_json(MANUAL)
        await ws.send_json(append(clip_pcm("fox.mp3", 24_000)[:48_000]))
        await ws.send_json({"type": "input_audio_buffer.clear"})
        await events_until(ws, "input_audio_buffer.cleared", seen)
        await ws.send_json({"type": "input_audio_buffer.commit"})
        await events_until(ws, "error", seen, count=10)
        assert seen[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
        # Still serving: a take after all that is transcribed.
        pcm = clip_pcm("fox.mp3", 24_000)
        await ws.send_json(append(pcm))
        await ws.send_json({"type": "input_audio_buffer.commit"})
        await events_until(ws, COMPLETED, seen)
        assert seen[-1]["transcript"] == await one_shot(client, pcm, 24_000)


async def test_the_older_transcription_session_update_and_another_rate(client):
    seen: list = []
    pcm = clip_pcm("castle.ogg", 16_000)
    async with client.ws_connect("/v1/realtime?intent=transcription") as ws:
        await events_until(ws, "session.created", seen)
        await ws.send_json(
            {"type": "transcription_session.update", "session": {"input_audio_format": "pcm16", "input_audio_transcription": {"model": "whisper-1", "language": "en"}, "turn_detection": None}}
        )
        await events_until(ws, "transcription_session.updated", seen)
        beta = seen[-1]["session"]
        assert beta["input_audio_format"] == "pcm16" and beta["turn_detection"] is None
        assert beta["input_audio_transcription"] == {"model": "whisper-1", "language": "en", "prompt": None}
        await ws.send_json({"type": "session.update", "session": {"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}})
        await events_until(ws, "session.updated", seen)
        assert seen[-1]["session"]["audio"]["input"]["format"]["rate"] == 16000
        for piece in chunks(pcm):
            await ws.send_json(append(piece))
        await ws.send_json({"type": "input_audio_buffer.commit"})
        await events_until(ws, COMPLETED, seen)
    assert seen[-1]["transcript"] == await one_shot(client, pcm, 16_000)


@pytest.fixture
async def guarded(make_app, aiohttp_client):
    """The app with a token, a 1 s audio timeout and one take at a time."""
    app = make_app(token="rt-token", audio_timeout_s=1.0, max_listening=1)
    test_client = await aiohttp_client(app)
    await wait_ready(test_client)
    return test_client


async def test_token_origin_and_the_take_bound_apply_to_the_websocket(guarded):
    client = guarded
    auth = {"Authorization": "Bearer rt-token"}
    for headers, status in (({}, 401), ({"Authorization": "Bearer wrong"}, 401), ({**auth, "Origin": "https://evil.example"}, 403)):
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await client.ws_connect("/v1/realtime?intent=transcription", headers=headers)
        assert refused.value.status == status
    async with client.ws_connect("/v1/realtime?intent=transcription", headers={**auth, "Origin": "http://localhost:3000"}) as ws:
        assert (await ws.receive_json())["type"] == "session.created"
        with pytest.raises(aiohttp.WSServerHandshakeError) as full:
            await client.ws_connect("/v1/realtime?intent=transcription", headers=auth)
        assert full.value.status == 429
        # No audio for the timeout: the pending audio is dropped, and the session says so.
        await ws.send_json(append(silence(0.5, 24_000)))
        seen = await events_until(ws, "error", [], timeout=30)
        assert seen[-1]["error"]["code"] == "audio_timeout"
    response = await client.post("/v1/jobs", json={"stream_audio": True}, headers=auth)
    assert response.status == 202  # the session's slot is free again
    await client.delete(f"/v1/jobs/{(await response.json())['id']}", headers=auth)


async def test_plain_requests_to_the_websocket_route_get_the_error_shape(client):
    response = await client.get("/v1/realtime")
    assert response.status == 426 and response.headers["Upgrade"] == "websocket"
    body = await response.json()
    assert body["error"]["code"] == "upgrade_required"
    response = await client.get("/v1/realtime?intent=conversation")
    assert response.status == 400 and (await response.json())["error"]["param"] == "intent"


# ---- the official SDK, unchanged ----------------------------------------------------------------

TOKEN = "realtime-sdk-token-0123456789"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    from voicebrush_testing import launch_daemon

    daemon = launch_daemon(tmp_path_factory.mktemp("realtime-sdk") / "data", token=TOKEN)
    yield daemon
    daemon.stop()


def sdk_one_shot(sdk, pcm: bytes, rate: int) -> str:
    import io

    audio = io.BytesIO(wav(pcm, rate))
    audio.name = "take.wav"
    return sdk.audio.transcriptions.create(model="whisper-1", file=audio).text


def test_the_openai_sdk_realtime_client_gets_completed_with_the_one_shot_text(daemon):
    import openai

    sdk = openai.OpenAI(base_url=daemon.url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)
    pcm = clip_pcm("alley.flac", 24_000)
    with sdk.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        first = connection.recv()
        assert first.type == "session.created"
        connection.session.update(session={"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None}}})
        for piece in chunks(pcm, 24_000, seconds=0.5):
            connection.input_audio_buffer.append(audio=base64.b64encode(piece).decode())
        connection.input_audio_buffer.commit()
        kinds = []
        for event in connection:
            kinds.append(event.type)
            if event.type == COMPLETED:
                completed = event
                break
            assert event.type != "error", event
    assert "session.updated" in kinds and "input_audio_buffer.committed" in kinds
    assert completed.transcript == sdk_one_shot(sdk, pcm, 24_000)


def test_the_openai_sdk_with_server_vad_gets_each_turn(daemon):
    import openai

    sdk = openai.OpenAI(base_url=daemon.url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)
    turn = silence(0.5, 24_000) + clip_pcm("demo_prompt.wav", 24_000) + silence(1.5, 24_000)
    with sdk.realtime.connect(extra_query={"intent": "transcription"}) as connection:
        connection.input_audio_buffer.append(audio=base64.b64encode(turn).decode())
        kinds = []
        for event in connection:
            kinds.append(event.type)
            if event.type == COMPLETED:
                completed = event
                break
            assert event.type != "error", event
    assert kinds.index("input_audio_buffer.speech_started") < kinds.index("input_audio_buffer.speech_stopped") < kinds.index("input_audio_buffer.committed")
    assert completed.transcript == sdk_one_shot(sdk, turn, 24_000)


def test_the_openai_sdk_streams_a_transcription(daemon):
    import io

    import openai

    sdk = openai.OpenAI(base_url=daemon.url + "/v1", api_key=TOKEN, max_retries=0, timeout=120)
    pcm = clip_pcm("castle.ogg")
    audio = io.BytesIO(wav(pcm, 16_000))
    audio.name = "take.wav"
    events = list(sdk.audio.transcriptions.create(model="whisper-1", file=audio, stream=True))
    assert [e.type for e in events][-1] == "transcript.text.done"
    assert all(e.type == "transcript.text.delta" for e in events[:-1])
    assert "".join(e.delta for e in events[:-1]) == events[-1].text == sdk_one_shot(sdk, pcm, 16_000)
