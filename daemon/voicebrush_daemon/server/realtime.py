"""OpenAI's Realtime API, transcription sessions: `GET /v1/realtime?intent=transcription`.

A translation, like every dialect here: the session's audio goes into the same live
takes as a streamed dictation job (jobs/live_transcription.py), decoded on the same
speech lane, and each committed item's transcript is the engine's ordinary one-shot
transcription of its samples.

Client events: `session.update` (GA shape: session.audio.input.{format, transcription,
turn_detection}) and the older `transcription_session.update` (input_audio_format,
input_audio_transcription, turn_detection), `input_audio_buffer.append` (base64 PCM16,
24 kHz unless the session names another rate), `.commit`, `.clear`.
Server events: `session.created` / `session.updated` (`transcription_session.updated`
for the older update), `input_audio_buffer.speech_started` / `.speech_stopped` (with
`server_vad` turn detection, on by default as in OpenAI's API; a stop commits the
item), `input_audio_buffer.committed`, `.cleared`,
`conversation.item.input_audio_transcription.delta` (stable words only, so the deltas
are append-only: they may come while the item is still being spoken) and
`.completed` (the whole transcript, authoritative), `.failed`, and `error` (the
session stays open).

Token and Origin rules are those of every route (the access middleware runs on the
upgrade request), which matters here: browsers open cross-origin WebSockets freely.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import time
import uuid
from dataclasses import dataclass, field, replace
from typing import Any

from aiohttp import WSMsgType, web

from ..errors import ApiError, InvalidAudio
from ..jobs.live_transcription import LiveTranscription, SpeechLane
from ..live_audio import MAX_RATE, MIN_RATE, AudioTooLong, LiveAudio
from ..speech.base import SAMPLE_RATE, TranscribeOptions
from ..speech.streaming import Partial, appended, completion_delta
from ..speech.turns import SpeechProbabilities, TurnDetector, TurnSettings
from .endpoint import endpoint
from .routes_stream import LISTENING
from .state import JOBS, SETTINGS

log = logging.getLogger(__name__)

routes = web.RouteTableDef()

DEFAULT_RATE = 24_000  # the Realtime API's pcm16
# OpenAI takes up to 15 MiB of audio in one append; base64 makes that 20 MiB of text.
MAX_MESSAGE_BYTES = 21 * 1024 * 1024
HEARTBEAT_S = 20.0


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


class ClientEventError(Exception):
    """A client event the session cannot take: sent back as an `error` event."""

    def __init__(self, message: str, code: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message, self.code, self.param = message, code, param


# ---- the session's settings --------------------------------------------------------


@dataclass(frozen=True)
class SessionConfig:
    rate: int = DEFAULT_RATE
    model: str | None = None  # accepted and echoed; the loaded model answers
    language: str | None = None
    prompt: str | None = None
    turns: TurnSettings | None = field(default_factory=TurnSettings)  # None: commit by hand

    def options(self) -> TranscribeOptions:
        return TranscribeOptions(language=self.language, prompt=self.prompt)


def _obj(value: Any, param: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ClientEventError(f"'{param}' must be an object.", "invalid_value", param)
    return value


def _text(value: Any, param: str, limit: int) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ClientEventError(f"'{param}' must be a string of at most {limit} characters.", "invalid_value", param)
    return value


def _number(value: Any, param: str, low: float, high: float, default: float, integer: bool = False) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high or (integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        raise ClientEventError(f"'{param}' must be {kind} from {low:g} to {high:g}.", "invalid_value", param)
    return int(value) if integer else float(value)


def _turns(value: Any, param: str, current: TurnSettings | None) -> TurnSettings | None:
    if value is None:
        return None  # null turns detection off: the client commits
    spec = _obj(value, param)
    kind = spec.get("type", "server_vad")
    if kind not in ("server_vad", "semantic_vad"):
        raise ClientEventError(f"'{param}.type' must be server_vad (or null to commit by hand).", "invalid_value", f"{param}.type")
    base = current or TurnSettings()
    # semantic_vad needs a language model to judge the end of a sentence; its silence
    # rule is the closest thing we have, so it is taken as server_vad.
    return replace(
        base,
        threshold=_number(spec.get("threshold"), f"{param}.threshold", 0.0, 1.0, base.threshold),
        prefix_padding_ms=_number(spec.get("prefix_padding_ms"), f"{param}.prefix_padding_ms", 0, 10_000, base.prefix_padding_ms, integer=True),
        silence_duration_ms=_number(spec.get("silence_duration_ms"), f"{param}.silence_duration_ms", 0, 10_000, base.silence_duration_ms, integer=True),
    )


def _transcription(config: SessionConfig, value: Any, param: str) -> SessionConfig:
    if value is None:
        return config
    spec = _obj(value, param)
    return replace(
        config,
        model=_text(spec.get("model"), f"{param}.model", 200) if "model" in spec else config.model,
        language=_text(spec.get("language"), f"{param}.language", 8) if "language" in spec else config.language,
        prompt=_text(spec.get("prompt"), f"{param}.prompt", 4000) if "prompt" in spec else config.prompt,
    )


def updated_config(config: SessionConfig, session: Any) -> SessionConfig:
    """The session's settings after a `session.update` or `transcription_session.update`.

    Both shapes are read from either event: GA (session.audio.input.*) and the older
    flat one (input_audio_format, input_audio_transcription, turn_detection)."""
    session = _obj(session, "session")
    kind = session.get("type")
    if kind not in (None, "transcription"):
        raise ClientEventError("This daemon serves transcription sessions only (session.type 'transcription').", "unsupported_session_type", "session.type")
    audio_in = _obj(_obj(session.get("audio"), "session.audio").get("input"), "session.audio.input")
    if "format" in audio_in:
        fmt = _obj(audio_in["format"], "session.audio.input.format")
        if fmt.get("type", "audio/pcm") != "audio/pcm":
            raise ClientEventError("Only audio/pcm (16-bit little-endian mono) is taken.", "unsupported_audio_format", "session.audio.input.format.type")
        config = replace(config, rate=_number(fmt.get("rate"), "session.audio.input.format.rate", MIN_RATE, MAX_RATE, DEFAULT_RATE, integer=True))
    if "input_audio_format" in session:
        if session["input_audio_format"] not in ("pcm16", None):
            raise ClientEventError("Only pcm16 is taken (16-bit little-endian mono, 24 kHz).", "unsupported_audio_format", "session.input_audio_format")
        config = replace(config, rate=DEFAULT_RATE)
    config = _transcription(config, audio_in.get("transcription"), "session.audio.input.transcription")
    config = _transcription(config, session.get("input_audio_transcription"), "session.input_audio_transcription")
    if "turn_detection" in audio_in:
        config = replace(config, turns=_turns(audio_in["turn_detection"], "session.audio.input.turn_detection", config.turns))
    if "turn_detection" in session:
        config = replace(config, turns=_turns(session["turn_detection"], "session.turn_detection", config.turns))
    return config


def _turn_view(turns: TurnSettings | None) -> dict | None:
    if turns is None:
        return None
    return {"type": "server_vad", "threshold": turns.threshold, "prefix_padding_ms": turns.prefix_padding_ms, "silence_duration_ms": turns.silence_duration_ms}


def session_view(session_id: str, config: SessionConfig, model_id: str) -> dict:
    """The session as the GA API shows it (session.created, session.updated)."""
    return {
        "type": "transcription",
        "object": "realtime.transcription_session",
        "id": session_id,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": config.rate},
                "transcription": {"model": config.model or model_id, "language": config.language, "prompt": config.prompt},
                "turn_detection": _turn_view(config.turns),
                "noise_reduction": None,
            }
        },
        "include": None,
    }


def beta_session_view(session_id: str, config: SessionConfig, model_id: str) -> dict:
    """The session as the older transcription_session.* events show it."""
    return {
        "id": session_id,
        "object": "realtime.transcription_session",
        "modalities": ["text"],
        "input_audio_format": "pcm16",
        "input_audio_transcription": {"model": config.model or model_id, "language": config.language, "prompt": config.prompt},
        "turn_detection": _turn_view(config.turns),
        "input_audio_noise_reduction": None,
    }


# ---- one input item: the audio between two commits -------------------------------


@dataclass
class _Item:
    id: str
    audio: LiveAudio
    live: LiveTranscription
    starts_ms: int  # where in the session's audio it begins
    vad: SpeechProbabilities | None = None
    turns: TurnDetector | None = None
    scored: int = 0  # samples the VAD has seen
    sent: str = ""  # the deltas sent so far, joined
    last_audio: float = field(default_factory=time.monotonic)


class TranscriptionSession:
    """One WebSocket: its settings, its pending item, and the items being finished."""

    def __init__(self, ws: web.WebSocketResponse, lane: SpeechLane, model_id: str, *, max_seconds: float, audio_timeout_s: float) -> None:
        self.ws, self.lane, self.model_id = ws, lane, model_id
        self.max_seconds, self.audio_timeout_s = max_seconds, audio_timeout_s
        self.id = _id("sess")
        self.config = SessionConfig()
        self.item: _Item | None = None
        self.previous_item_id: str | None = None
        self.session_ms = 0.0  # audio received in this session, for the VAD events' times
        self._outbox: asyncio.Queue = asyncio.Queue()
        self._finishing: set[asyncio.Task] = set()

    # ---- the connection --------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.get_running_loop().create_task(self._write())
        try:
            self.send("session.created", session=session_view(self.id, self.config, self.model_id))
            while not self.ws.closed:
                try:
                    message = await self.ws.receive(timeout=self._receive_timeout())
                except asyncio.TimeoutError:
                    self._give_up_item()
                    continue
                if message.type == WSMsgType.TEXT:
                    await self._handle_text(message.data)
                elif message.type == WSMsgType.BINARY:
                    self.error("Send client events as JSON text messages.", "invalid_event")
                else:  # close, closing, closed, error: the client is gone or going
                    break
        finally:
            if self.item is not None:
                self.item.live.cancel()  # its samples go at once
                self.item = None
            for task in list(self._finishing):
                task.cancel()
            self._outbox.put_nowait(None)
            try:
                await asyncio.wait_for(writer, 5)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                writer.cancel()

    def _receive_timeout(self) -> float | None:
        if self.item is None:
            return None  # nothing pending; the heartbeat notices a dead peer
        return max(0.0, self.item.last_audio + self.audio_timeout_s - time.monotonic())

    def _give_up_item(self) -> None:
        item, self.item = self.item, None
        if item is not None:
            item.live.cancel()
            self.error(f"No audio arrived for {self.audio_timeout_s:g} s; the uncommitted audio was dropped.", "audio_timeout")

    async def _write(self) -> None:
        while True:
            event = await self._outbox.get()
            if event is None:
                return
            try:
                await self.ws.send_str(json.dumps(event, separators=(",", ":")))
            except (ConnectionError, RuntimeError):
                return  # the peer went away; run() notices

    def send(self, kind: str, **fields: Any) -> None:
        self._outbox.put_nowait({"type": kind, "event_id": _id("event"), **fields})

    def error(self, message: str, code: str, param: str | None = None, client_event: str | None = None, kind: str = "invalid_request_error") -> None:
        self.send("error", error={"type": kind, "code": code, "message": message, "param": param, "event_id": client_event})

    # ---- client events -----------------------------------------------------------

    async def _handle_text(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            self.error("The message is not valid JSON.", "invalid_json")
            return
        if not isinstance(event, dict):
            self.error("A client event is a JSON object with a 'type'.", "invalid_event")
            return
        client_event = event.get("event_id") if isinstance(event.get("event_id"), str) else None
        kind = event.get("type")
        try:
            if kind in ("session.update", "transcription_session.update"):
                self.config = updated_config(self.config, event.get("session"))
                if kind == "session.update":
                    self.send("session.updated", session=session_view(self.id, self.config, self.model_id))
                else:
                    self.send("transcription_session.updated", session=beta_session_view(self.id, self.config, self.model_id))
            elif kind == "input_audio_buffer.append":
                await self._append(event.get("audio"))
            elif kind == "input_audio_buffer.commit":
                self._commit()
            elif kind == "input_audio_buffer.clear":
                if self.item is not None:
                    self.item.live.cancel()
                    self.item = None
                self.send("input_audio_buffer.cleared")
            else:
                raise ClientEventError(f"Unknown or unsupported client event type {str(kind)[:80]!r}.", "unknown_event", "type")
        except ClientEventError as exc:
            self.error(exc.message, exc.code, exc.param, client_event)
        except Exception:  # a bug of ours must not end the session, nor leak a traceback
            log.exception("realtime event %r failed", str(kind)[:80])
            self.error("The daemon failed on this event; its log has the details.", "internal_error", None, client_event, kind="server_error")

    def _new_item(self) -> _Item:
        audio = LiveAudio(self.config.rate, self.max_seconds)
        item_id = _id("item")
        holder: dict[str, _Item] = {}

        def show(partial: Partial, seconds: float) -> None:
            item = holder["item"]
            delta = appended(item.sent, partial.stable)
            if delta:
                item.sent = partial.stable
                self.send("conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0, delta=delta)

        live = LiveTranscription(self.lane, audio, self.config.options(), show)
        item = _Item(item_id, audio, live, starts_ms=int(self.session_ms))
        if self.config.turns is not None:
            item.vad, item.turns = SpeechProbabilities(), TurnDetector(self.config.turns)
        holder["item"] = item
        live.start()
        return item

    async def _append(self, audio_b64: Any) -> None:
        if not isinstance(audio_b64, str):
            raise ClientEventError("'audio' must be base64-encoded PCM16.", "invalid_value", "audio")
        try:
            pcm = base64.b64decode(audio_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ClientEventError("'audio' is not valid base64.", "invalid_value", "audio") from None
        if not pcm:
            return
        item = self.item or self._new_item()
        self.item = item
        try:
            added = item.audio.append(pcm)
        except AudioTooLong:
            item.live.cancel()
            self.item = None
            raise ClientEventError(
                f"The input audio buffer holds at most {self.max_seconds:g} s; it was cleared.", "input_audio_buffer_too_large", "audio"
            ) from None
        item.last_audio = time.monotonic()
        self.session_ms += 1000.0 * len(pcm) / 2 / self.config.rate
        if added:
            item.live.heard()
        if item.turns is not None and added:
            await self._detect_turns(item)

    async def _detect_turns(self, item: _Item) -> None:
        samples, _ = item.audio.newest()
        fresh = samples[item.scored :]
        item.scored = samples.size
        # Silero is cheap (about 6 ms per second of audio) but a large append should
        # not hold up the loop: it runs in the default executor.
        scores = await asyncio.get_running_loop().run_in_executor(None, item.vad.push, fresh)
        if self.item is not item:
            return  # cleared or committed meanwhile
        for turn in item.turns.push(scores):
            if turn.kind == "speech_started":
                self.send("input_audio_buffer.speech_started", audio_start_ms=item.starts_ms + turn.ms, item_id=item.id)
            else:
                self.send("input_audio_buffer.speech_stopped", audio_end_ms=item.starts_ms + turn.ms, item_id=item.id)
                self._commit()
                return

    def _commit(self) -> None:
        item, self.item = self.item, None
        if item is None or len(item.audio) == 0:
            if item is not None:
                item.live.cancel()
            raise ClientEventError("The input audio buffer is empty: append audio before committing.", "input_audio_buffer_commit_empty")
        self.send("input_audio_buffer.committed", item_id=item.id, previous_item_id=self.previous_item_id)
        self.previous_item_id = item.id
        task = asyncio.get_running_loop().create_task(self._complete(item))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _complete(self, item: _Item) -> None:
        """The item's final transcript (the one-shot decode of its samples), then the events."""
        try:
            transcript = await item.live.finish()
        except asyncio.CancelledError:
            item.live.cancel()
            raise
        except (InvalidAudio, ApiError, Exception) as exc:
            item.live.cancel()
            code = exc.code if isinstance(exc, ApiError) else ("invalid_audio" if isinstance(exc, InvalidAudio) else "engine_error")
            if not isinstance(exc, (ApiError, InvalidAudio)):
                log.exception("transcribing realtime item %s failed", item.id)
            message = exc.message if isinstance(exc, ApiError) else str(exc)
            self.send(
                "conversation.item.input_audio_transcription.failed",
                item_id=item.id,
                content_index=0,
                error={"type": "transcription_error", "code": code, "message": message[:300], "param": None},
            )
            return
        seconds = len(item.audio) / SAMPLE_RATE
        item.live.cancel()  # its samples are not needed any more
        rest = completion_delta(item.sent, transcript.text)
        if rest:
            self.send("conversation.item.input_audio_transcription.delta", item_id=item.id, content_index=0, delta=rest)
        self.send(
            "conversation.item.input_audio_transcription.completed",
            item_id=item.id,
            content_index=0,
            transcript=transcript.text,
            usage={"type": "duration", "seconds": round(seconds, 3)},
        )


# ---- the route -------------------------------------------------------------------


@routes.get("/v1/realtime")
@endpoint(
    "OpenAI Realtime API transcription session (WebSocket upgrade; intent=transcription)",
    description="Client events: session.update, transcription_session.update, input_audio_buffer.append / commit / clear. "
    "Server events: session.created, session.updated, input_audio_buffer.speech_started / speech_stopped (server_vad), "
    "committed, cleared, conversation.item.input_audio_transcription.delta / completed / failed, error.",
    responses={101: ("Switching to the WebSocket protocol", None)},
    errors=(400, 426, 429, 503),
)
async def realtime_session(request: web.Request) -> web.StreamResponse:
    intent = request.query.get("intent")
    if intent not in (None, "transcription"):
        raise ApiError(400, "This daemon serves transcription sessions only: connect with ?intent=transcription.", "unsupported_intent", param="intent")
    ws = web.WebSocketResponse(max_msg_size=MAX_MESSAGE_BYTES, heartbeat=HEARTBEAT_S)
    if not ws.can_prepare(request).ok:
        raise ApiError(426, "This route speaks WebSocket: connect with a WebSocket client (Upgrade: websocket).", "upgrade_required", headers={"Upgrade": "websocket"})
    engines = request.app[JOBS]._require_ready()
    listening, settings = request.app[LISTENING], request.app[SETTINGS]
    with listening.session_slot():  # 429 before the upgrade when all slots are taken
        await ws.prepare(request)
        session = TranscriptionSession(
            ws, listening.lane, engines.speech.model_id, max_seconds=settings.max_take_seconds, audio_timeout_s=settings.audio_timeout_s
        )
        await session.run()
    return ws
