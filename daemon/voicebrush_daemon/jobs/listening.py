"""Streamed dictation jobs while their audio arrives, up to the moment they are queued.

    POST /v1/jobs {"stream_audio": true}  -> open():    the job, status "listening"
    POST /v1/jobs/{id}/audio (chunked)    -> receive(): partial events as it grows;
                                              at the end of the body, the final transcript,
                                              and the job goes to the worker to generate
                                              (or, transcribe_only, ends done with its words).

Limits: at most `max_listening` takes at once (Realtime sessions count too), at most
`max_take_seconds` of audio (413, the rest of the body read first), and a take with
no audio for `audio_timeout_s` fails `audio_timeout`. A client that leaves mid-take
cancels the job, and its samples are dropped at once.

Runs on the event loop; the decoding happens on the speech lane (live_transcription.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable

from ..errors import ApiError, InvalidAudio
from ..imaging.inputs import PictureInputs
from ..live_audio import AudioTooLong, LiveAudio
from ..options import GenerationOptions
from ..speech.base import TranscribeOptions, Transcript
from ..speech.streaming import Partial
from .events import EventHub
from .live_transcription import LiveTranscription, SpeechLane
from .model import CANCELLED, DONE, FAILED, LISTENING, QUEUED, TERMINAL, Job, error_body
from .store import JobStore, StorageError
from .worker import JobQueue, take_heard

log = logging.getLogger(__name__)

# Reading what a client still sends after its take was refused: bounded in time by the
# audio timeout and in size by this (far more than 120 s of 48 kHz audio).
DRAIN_BYTES = 64 * 1024 * 1024

ReadChunk = Callable[[], Awaitable[bytes]]  # the next piece of the body; b"" at its end


@dataclass(frozen=True)
class TakeLimits:
    max_listening: int = 4
    max_take_seconds: float = 120.0
    audio_timeout_s: float = 30.0


class _Stopped(Exception):
    """The take was cancelled (DELETE, shutdown) while its audio was arriving."""


class _ClientGone(Exception):
    """The connection broke before the end of the body."""


@dataclass
class _Take:
    job: Job
    options: GenerationOptions
    language: str | None
    pictures: PictureInputs | None  # what it starts from (a refine or fill by voice), if anything
    stopped: asyncio.Future  # resolves to the cancelling error body (or None) when cancelled
    transcribe_only: bool = False  # for its words only: it ends with them and draws nothing
    watchdog: asyncio.TimerHandle | None = None
    live: LiveTranscription | None = None
    opened: float = field(default_factory=time.perf_counter)


class Listening:
    def __init__(self, queue: JobQueue, hub: EventHub, store: JobStore, limits: TakeLimits = TakeLimits()) -> None:
        self.queue, self.hub, self.store, self.limits = queue, hub, store, limits
        self.lane = SpeechLane(queue.speech_lock, lambda: queue.engines.speech)
        self._takes: dict[str, _Take] = {}
        self._sessions = 0  # Realtime WebSocket sessions (server/realtime.py) holding a slot
        self._closing = False

    # ---- lifecycle ----------------------------------------------------------------

    def start(self) -> None:
        self.lane.start()

    async def close(self) -> None:
        self._closing = True
        for job_id in list(self._takes):
            self.cancel(job_id, error_body("The daemon shut down while this take was recorded.", "shutdown"))
        await asyncio.get_running_loop().run_in_executor(None, self.lane.close)

    # ---- slots --------------------------------------------------------------------

    @property
    def busy(self) -> int:
        return len(self._takes) + self._sessions

    def _require_slot(self) -> None:
        if self._closing:
            raise ApiError(503, "The daemon is shutting down.", "shutting_down")
        if self.busy >= self.limits.max_listening:
            raise ApiError(
                429,
                f"{self.limits.max_listening} takes are already being recorded; try again when one ends.",
                "too_many_takes",
                headers={"Retry-After": "5"},
            )

    @contextlib.contextmanager
    def session_slot(self):
        """A Realtime session's hold on one of the slots, for as long as it is open."""
        self._require_slot()
        self._sessions += 1
        try:
            yield
        finally:
            self._sessions -= 1

    # ---- a listening job ----------------------------------------------------------

    def open(self, job: Job, options: GenerationOptions, language: str | None = None, pictures: PictureInputs | None = None,
             transcribe_only: bool = False) -> Job:
        """Start listening for a job's audio; returns a copy of the record as accepted.
        What would refuse the job once it is heard (too much work, a mode's missing
        weights) refuses it now, before the artist speaks."""
        engines = self.queue._require_ready()
        if not transcribe_only:
            self.queue.check_work_and_mode(options, pictures)
        self._require_slot()
        job.status = LISTENING
        job.model = engines.image.model_id
        try:
            self.store.add(job)
        except StorageError as exc:
            log.error("%s", exc)  # the take still runs; health reports the disk problem
        loop = asyncio.get_running_loop()
        take = _Take(job, options, language, pictures, stopped=loop.create_future(), transcribe_only=transcribe_only)
        take.watchdog = loop.call_later(self.limits.audio_timeout_s, self._expire, job.id)
        self._takes[job.id] = take
        return Job.from_dict(job.to_dict())

    def is_listening(self, job_id: str) -> bool:
        return job_id in self._takes

    def cancel(self, job_id: str, error: dict | None = None) -> bool:
        """Cancel a listening job. False when it is not listening (any more)."""
        take = self._takes.get(job_id)
        if take is None:
            return False
        if take.live is None:  # no audio arriving: it ends here
            self._takes.pop(job_id, None)
            self._end(take, CANCELLED, error)
        elif not take.stopped.done():  # receive() ends it, then answers its client
            take.stopped.set_result(error)
        return True

    def _expire(self, job_id: str) -> None:
        take = self._takes.get(job_id)
        if take is not None and take.live is None:
            self._takes.pop(job_id, None)
            self._end(take, FAILED, error_body(self._timeout_message(), "audio_timeout"))

    def _timeout_message(self) -> str:
        return f"No audio arrived for {self.limits.audio_timeout_s:g} s; the take was given up."

    async def receive(self, job_id: str, rate: int, read: ReadChunk) -> Transcript:
        """Take a listening job's audio from `read` until the end of the body; return the
        final transcript once the job is queued to generate. Raises ApiError otherwise."""
        take = self._takes.get(job_id)
        if take is None or take.live is not None:
            await self.drain(read)
            raise ApiError(409, "This job is not waiting for audio (it has it, or has ended).", "not_listening", param="id")
        if take.watchdog is not None:
            take.watchdog.cancel()
        job = take.job
        audio = LiveAudio(rate, self.limits.max_take_seconds)

        def show(partial: Partial, seconds: float) -> None:
            self.hub.publish(job.id, "partial", {"id": job.id, "text": partial.text, "stable": partial.stable, "audio_s": round(seconds, 3)})

        live = LiveTranscription(self.lane, audio, TranscribeOptions(language=take.language), show)
        take.live = live
        live.start()
        try:
            transcript = await self._listen(take, audio, read)
            self._takes.pop(job_id, None)
            job.timings.update(live.stats.summary())
            if take.transcribe_only:
                self._heard_only(take, transcript)
                return transcript
            job.status = QUEUED
            job.transcript = transcript.text.strip()  # kept in the record if the queue refuses it
            self.queue.submit_job(job, take.options, pictures=take.pictures, heard=transcript)
            return transcript
        except asyncio.CancelledError:
            self._abandon(take, CANCELLED, None)
            raise
        except ApiError as exc:
            self._abandon(take, FAILED, error_body(exc.message, exc.code))
            raise
        finally:
            live.cancel()
            self._takes.pop(job_id, None)

    async def _listen(self, take: _Take, audio: LiveAudio, read: ReadChunk) -> Transcript:
        """The audio until the end of the body, then the final decode; errors as ApiError."""
        live = take.live
        first_byte = None
        try:
            while True:
                chunk = await self._next_chunk(take, read)
                if not chunk:
                    break
                first_byte = first_byte or time.perf_counter()
                if audio.append(chunk):
                    live.heard()
            ended = time.perf_counter()
            transcript = await self._final_decode(take, live)
            take.job.timings["listen_s"] = round(ended - (first_byte or ended), 4)
            take.job.timings["final_transcribe_s"] = round(time.perf_counter() - ended, 4)
            return transcript
        except AudioTooLong:
            self._abandon(take, FAILED, error_body(f"More than {self.limits.max_take_seconds:g} s of audio; the take was refused.", "payload_too_large"))
            await self.drain(read)
            raise ApiError(413, f"A take may hold at most {self.limits.max_take_seconds:g} s of audio.", "payload_too_large") from None
        except InvalidAudio as exc:
            raise ApiError(400, str(exc)[:1].upper() + str(exc)[1:] + ".", "invalid_audio") from None
        except asyncio.TimeoutError:
            raise ApiError(408, self._timeout_message(), "audio_timeout") from None
        except _Stopped:
            error = take.stopped.result()
            self._abandon(take, CANCELLED, error)
            await self.drain(read)
            if error and error.get("code") == "shutdown":
                raise ApiError(503, "The daemon is shutting down.", "shutting_down") from None
            raise ApiError(409, "The job was cancelled while its audio arrived.", "cancelled", param="id") from None
        except _ClientGone:
            self._abandon(take, CANCELLED, None)
            raise ApiError(400, "The connection broke before the end of the audio.", "client_gone") from None
        except ApiError:
            raise  # the engine's verdict on the input (e.g. a language it lacks), or shutting down
        except Exception as exc:  # one broken decode must not leave the job listening forever
            log.exception("the final decode of job %s failed", take.job.id)
            raise ApiError(500, f"The speech model failed: {type(exc).__name__}: {str(exc)[:200]}", "engine_error", type="server_error") from None

    async def _final_decode(self, take: _Take, live: LiveTranscription) -> Transcript:
        """The whole take's decode, unless the job is cancelled meanwhile: a cancel that
        arrives after the release must not let the picture start once the words are in
        (the decode cannot be interrupted; it finishes unseen)."""
        decoding = asyncio.ensure_future(live.finish())
        try:
            await asyncio.wait({decoding, take.stopped}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            decoding.cancel()
            raise
        if take.stopped.done():
            decoding.add_done_callback(lambda done: done.cancelled() or done.exception())  # seen: no "never retrieved" warning
            raise _Stopped()
        return decoding.result()

    async def _next_chunk(self, take: _Take, read: ReadChunk) -> bytes:
        reading = asyncio.ensure_future(read())
        try:
            done, _ = await asyncio.wait({reading, take.stopped}, timeout=self.limits.audio_timeout_s, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            reading.cancel()
            raise
        if take.stopped.done():
            reading.cancel()
            raise _Stopped()
        if not done:
            reading.cancel()
            raise asyncio.TimeoutError()
        try:
            return reading.result()
        except asyncio.CancelledError:
            raise
        except Exception:  # aiohttp's payload and connection errors: the client went away
            raise _ClientGone() from None

    async def drain(self, read: ReadChunk) -> None:
        """Read what the client still sends, so it gets to see our answer."""
        drained = 0
        try:
            while drained < DRAIN_BYTES:
                chunk = await asyncio.wait_for(read(), self.limits.audio_timeout_s)
                if not chunk:
                    return
                drained += len(chunk)
        except asyncio.CancelledError:
            raise
        except Exception:
            return  # gone or silent: nothing more to wait for

    # ---- ending ------------------------------------------------------------------

    def _heard_only(self, take: _Take, transcript: Transcript) -> None:
        """A take for its words: the record and events say what was heard, as a generating
        job's would (transcript, prompt, negative prompt), and it ends done with no image."""
        take_heard(take.job, transcript, take.options, self.hub.publish)
        self._end(take, DONE, None)

    def _abandon(self, take: _Take, status: str, error: dict | None) -> None:
        """End a take that will not be queued: stop its partials, free its samples, record why."""
        if take.live is not None:
            take.live.cancel()
        self._takes.pop(take.job.id, None)
        if take.job.status not in TERMINAL:
            self._end(take, status, error)

    def _end(self, take: _Take, status: str, error: dict | None) -> None:
        job = take.job
        if take.watchdog is not None:
            take.watchdog.cancel()
        job.status, job.error, job.finished = status, error, time.time()
        try:
            self.store.save(job)
        except StorageError as exc:
            log.error("%s", exc)
        self.hub.publish(job.id, status, job.to_dict())
