"""Transcribing a take while it is recorded: partial decodes as it grows, one final at the end.

Where the decoding runs. The model worker (worker.py) runs one job at a time, and a
generation holds it for seconds (a GPU) to minutes (this CPU). Partials queued there
would wait for the whole generation and arrive after the artist has finished
speaking; slicing them in between denoising steps would tie their latency to the
step time. So live takes are decoded on a thread of their own, the speech lane,
beside the worker: a generation keeps running while the artist speaks the next
prompt. On a GPU the Whisper decode (small next to a UNet step) interleaves its
kernels with the generation's, which slows that generation a little instead of
pausing it; on a CPU the two share the cores, which `voicebrush bench` measures
(`generation_slowdown_with_partials`). Every engine call, here and in the worker,
holds the queue's speech lock, since openai-whisper cannot decode twice at once.

The lane runs finals before partials, and each take has at most one partial
decode in flight, which reads the take's newest samples when it starts (never a
backlog of old snapshots). The final is the engine's ordinary `transcribe` of the
whole take with the one-shot options, so it is exactly what
`POST /v1/audio/transcriptions` gives for the same samples.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import logging
import queue
import statistics
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import ApiError
from ..live_audio import LiveAudio
from ..speech.base import SAMPLE_RATE, Transcriber, TranscribeOptions, Transcript
from ..speech.streaming import Cadence, Partial, StableText

log = logging.getLogger(__name__)

FINAL, PARTIAL = 0, 1  # lane priorities: a take that ended goes before ones still growing
_STOP = (-1, 0, None)


class SpeechLane:
    """The one thread that decodes live takes, in priority order."""

    def __init__(self, speech_lock: threading.Lock, transcriber: Callable[[], Transcriber]) -> None:
        self._lock = speech_lock
        self._transcriber = transcriber
        self._queue: queue.PriorityQueue = queue.PriorityQueue()
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._closed = False

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="voicebrush-speech-lane", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 10.0) -> None:
        self._closed = True
        self._queue.put(_STOP)
        if self._thread is not None:
            self._thread.join(timeout)

    async def run(self, priority: int, work: Callable[[Transcriber], Any]) -> Any:
        """work(transcriber) on the lane, holding the speech lock; its result here.

        Cancelling the caller drops work that has not started yet."""
        if self._closed:
            raise ApiError(503, "The daemon is shutting down.", "shutting_down")
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((priority, next(self._order), (future, work)))
        return await asyncio.wrap_future(future)

    def _run(self) -> None:
        while True:
            _, _, item = self._queue.get()
            if item is None:
                break
            future, work = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                with self._lock:
                    result = work(self._transcriber())
            except BaseException as exc:  # handed to the caller, never a dead lane
                future.set_exception(exc)
            else:
                future.set_result(result)
        while True:  # what waits at shutdown is refused, not left hanging
            try:
                _, _, item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and item[0].set_running_or_notify_cancel():
                item[0].set_exception(ApiError(503, "The daemon is shutting down.", "shutting_down"))


@dataclass
class PartialStats:
    """How the partials of one take went: for job timings and `voicebrush bench`."""

    started: list[float] = field(default_factory=list)  # when each decode started (monotonic)
    decode_s: list[float] = field(default_factory=list)
    lag_s: list[float] = field(default_factory=list)  # newest sample's arrival to the partial's result
    shown: int = 0  # partials with words (the others heard no speech)

    def summary(self) -> dict[str, float]:
        intervals = [b - a for a, b in zip(self.started, self.started[1:])]
        out: dict[str, float] = {"partials": float(self.shown), "partial_decodes": float(len(self.decode_s))}
        if self.decode_s:
            out["partial_decode_s"] = round(sum(self.decode_s), 4)
        if intervals:
            out["partial_interval_s"] = round(statistics.median(intervals), 4)
        if self.lag_s:
            out["partial_lag_s"] = round(statistics.median(self.lag_s), 4)
        return out


@dataclass(frozen=True)
class _Decoded:
    transcript: Transcript
    samples: int  # how many samples it heard
    arrived: float  # when the newest of them arrived
    started: float
    decode_s: float


class LiveTranscription:
    """One take: feed it audio with `heard()`, get partials through `on_partial`, then `finish()`.

    on_partial(Partial, seconds_heard) is called on the event loop, only for partials
    with words: audio without speech (Silero VAD, inside the engine) shows nothing.
    """

    def __init__(
        self,
        lane: SpeechLane,
        audio: LiveAudio,
        options: TranscribeOptions,
        on_partial: Callable[[Partial, float], None],
        cadence: Cadence = Cadence(),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lane = lane
        self.audio = audio
        self.options = options
        self.on_partial = on_partial
        self.cadence = cadence
        self.clock = clock
        self.stable = StableText()
        self.stats = PartialStats()
        self.last: Partial | None = None
        self._new_audio = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._decoded_samples = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._partials())

    def heard(self) -> None:
        """New samples were appended to the audio."""
        self._new_audio.set()

    async def finish(self) -> Transcript:
        """Stop the partials and decode the whole take once, with the one-shot options.

        Raises InvalidAudio for a take with no samples or half a sample at the end."""
        self._stop_partials()
        samples = self.audio.finish()
        options = self.options
        return await self.lane.run(FINAL, lambda engine: engine.transcribe(samples, options))

    def cancel(self) -> None:
        """Stop the partials and drop the samples (a decode already running finishes unseen)."""
        self._stop_partials()
        self.audio.release()

    def _stop_partials(self) -> None:
        # A cancelled task raises at its next await, so no partial is shown after this.
        task, self._task = self._task, None
        if task is not None:
            task.cancel()

    async def _partials(self) -> None:
        next_start = self.clock() + self.cadence.min_interval_s
        while True:
            await self._new_audio.wait()
            delay = next_start - self.clock()
            if delay > 0:
                await asyncio.sleep(delay)
            self._new_audio.clear()
            try:
                decoded = await self.lane.run(PARTIAL, self._decode_newest)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failing partial is not the take's failure; the final decides
                log.debug("partial decode failed: %s", exc)
                next_start = self.clock() + self.cadence.min_interval_s
                continue
            if decoded is None:
                continue
            next_start = self.cadence.next_start(decoded.started, decoded.decode_s)
            self.stats.started.append(decoded.started)
            self.stats.decode_s.append(decoded.decode_s)
            text = decoded.transcript.text.strip()
            if not text:
                continue
            partial = self.stable.update(text)
            self.stats.shown += 1
            self.stats.lag_s.append(self.clock() - decoded.arrived)
            self.last = partial
            self.on_partial(partial, decoded.samples / SAMPLE_RATE)

    def _decode_newest(self, engine: Transcriber) -> _Decoded | None:
        """On the lane: decode the samples there are now (None when nothing is new)."""
        samples, arrived = self.audio.newest()
        if samples.size == 0 or samples.size == self._decoded_samples or self.audio.finished:
            return None
        self._decoded_samples = samples.size
        started = self.clock()
        transcript = engine.transcribe(np.asarray(samples), self.options)
        return _Decoded(transcript, samples.size, arrived, started, self.clock() - started)
