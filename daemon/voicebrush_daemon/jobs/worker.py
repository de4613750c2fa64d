"""The worker threads that run the jobs, and the bounded fair queue in front of them.

diffusers pipelines are not thread-safe (scheduler state), and a GPU runs one job
well at a time, so in process there is one worker thread and every model call happens
on it. A cluster backend (backend.py, cluster/) runs as many generations at once as it
has slots, one worker thread each, all taking from the same fair queue in its order.
The aiohttp side only enqueues and listens: progress comes back as events through
loop.call_soon_threadsafe, never by blocking the loop.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import gc
import io
import logging
import queue
import statistics
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .. import spoken
from ..budget import WorkBudget, budget_for, check_work
from ..errors import ApiError, EngineOutOfMemory, GenerationCancelled
from ..imaging.base import GenerationRequest
from ..imaging.inputs import INPAINT, TEXT, PictureInputs, fit_inputs, png_bytes, size_for_input
from ..models import ModelUnavailable
from ..options import GenerationOptions
from ..pngmeta import encode_png
from ..speech.base import TranscribeOptions, Transcript
from .backend import Backend, Cancel, Engines, InProcessBackend, JobFailed  # noqa: F401 (Engines: imported from here)
from .events import EventHub
from .model import CANCELLED, DICTATION, DONE, FAILED, GENERATING, TERMINAL, TRANSCRIBING, Job, error_body
from .scheduling import FairQueue
from .store import JobStore, StorageError

log = logging.getLogger(__name__)

PREVIEW_SIDE = 128  # previews are thumbnails: cheap to encode, cheap to send


@dataclass
class _JobWork:
    job: Job
    options: GenerationOptions
    samples: np.ndarray | None = None  # decoded speech for a dictation job
    language: str | None = None
    pictures: PictureInputs | None = None  # what it starts from (imaging.inputs), if anything
    heard: Transcript | None = None  # a streamed take, already transcribed as it was spoken
    cancel: Cancel = field(default_factory=Cancel)
    enqueued: float = field(default_factory=time.perf_counter)
    lane: str | None = None  # a storyboard's id: its shots take turns with other requests as one


@dataclass
class _TranscriptionWork:
    samples: np.ndarray
    options: TranscribeOptions
    future: concurrent.futures.Future
    enqueued: float = field(default_factory=time.perf_counter)


_STOP = object()


def take_heard(job: Job, heard: Transcript, options: GenerationOptions, publish: Callable[[str, str, dict], None]) -> spoken.SpokenPrompt:
    """What was heard, into the job: its transcript, and the prompt and negative prompt read
    from it (a typed prompt overrides the speech; typed and spoken negatives add up); then
    the `transcript` event. The worker and a listening job's words-only take both end here."""
    job.transcript = heard.text.strip()
    said = spoken.interpret(job.transcript)
    job.prompt = options.prompt or said.prompt
    job.negative_prompt = ", ".join(p for p in (options.negative_prompt, said.negative_prompt) if p)
    publish(job.id, "transcript", {"id": job.id, "transcript": job.transcript, "prompt": job.prompt, "negative_prompt": job.negative_prompt})
    return said

class JobQueue:
    def __init__(
        self,
        store: JobStore,
        hub: EventHub,
        load_engines: Callable[[], Engines],
        *,
        max_waiting: int = 16,
        preview_every: int = 2,
        work_budget: tuple[int, int] | None = None,
        backend: Backend | None = None,
    ) -> None:
        self.store = store
        # In process (load_engines) unless a cluster backend is given.
        self.backend: Backend = backend if backend is not None else InProcessBackend(load_engines)
        self._work_budget = work_budget  # None: the loaded device's own (budget.py)
        self.hub = hub
        # Round robin over requests, a storyboard being one (see scheduling.py).
        self._queue = FairQueue(maxsize=max_waiting)
        self._preview_every = max(1, preview_every)
        self._active: dict[str, _JobWork] = {}  # queued or running, by job id
        self._running: dict[str, None] = {}  # job ids the worker threads are on, in start order
        self._durations: list[float] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._close_deadline: float | None = None
        self._abandon_lock = threading.Lock()
        self._abandoned = False
        self.engines: Engines | None = None
        self.state = "loading"  # loading -> ready | error
        self.load_error: BaseException | None = None
        self.ready = threading.Event()  # set once loading ended, well or not
        # PNG bytes for the synchronous route, so it need not read them back from disk.
        # Touched only on the event loop: a route registers a job in _png_waiters before
        # submitting it, and the worker hands PNGs over only for registered jobs, so a
        # route that left (client gone) never leaves a result behind in memory.
        self.fresh_pngs: dict[str, list[bytes]] = {}
        self._png_waiters: set[str] = set()
        # Held around every call into the speech engine: live takes are transcribed on a
        # thread of their own (jobs/live_transcription.py), and openai-whisper's decoder
        # is not safe to run twice at once (its KV cache hangs on the shared model).
        # A cluster's speech replicas serialise themselves, and give a lock that is none.
        self.speech_lock = self.backend.speech_lock

    # ---- lifecycle -------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        for index in range(max(1, self.backend.slots)):
            name = "voicebrush-worker" if index == 0 else f"voicebrush-worker-{index + 1}"
            thread = threading.Thread(target=self._run, args=(index,), name=name, daemon=True)
            self._threads.append(thread)
            thread.start()

    def close(self, timeout: float = 10.0) -> bool:
        """Stop taking work, cancel what waits and what runs, and join the thread.

        Cancel is seen between denoising steps. When one step (or a model load)
        outlasts `timeout`, the running job and the waiting ones are recorded here as
        cut off by the shutdown, and False says the thread is still inside that call:
        the process should leave without it (server/shutdown.py). A second call waits
        only for what is left of the first one's timeout."""
        if self._close_deadline is None:
            self._closing = True
            self._close_deadline = time.monotonic() + timeout
            for work in list(self._active.values()):
                work.cancel.set()
            try:
                self._queue.put_nowait(_STOP)
            except queue.Full:
                pass  # the cancel flags drain it quickly; the thread checks _closing
        for thread in self._threads:
            thread.join(max(0.0, self._close_deadline - time.monotonic()))
        if not any(thread.is_alive() for thread in self._threads):
            self._close_backend()
            return True
        self._abandon_running()
        return False

    def _close_backend(self) -> None:
        try:
            self.backend.close()
        except Exception:  # closing must not turn a clean stop into a traceback
            log.warning("closing the backend failed", exc_info=True)

    @property
    def stuck(self) -> bool:
        """Closed, but a worker is still inside an engine call that outlasted close()."""
        return self._close_deadline is not None and any(thread.is_alive() for thread in self._threads)

    def _abandon_running(self) -> None:
        with self._abandon_lock:
            if self._abandoned:
                return
            self._abandoned = True
        for job_id in list(self._running):
            work = self._active.get(job_id)
            if work is not None and work.job.status not in TERMINAL:
                log.warning("job %s is inside a step that outlasted the shutdown; recorded as cut off by it", work.job.id)
                self._finish(work.job, CANCELLED, error_body("The daemon shut down while this job ran.", "shutdown"))
        self._cancel_waiting()

    # ---- what the routes call (on the event loop) ------------------------------

    def _require_ready(self) -> Engines:
        if self._closing:
            raise ApiError(503, "The daemon is shutting down.", "shutting_down")
        if self.state == "loading":
            raise ApiError(503, "Models are still loading; try again in a few seconds.", "loading", headers={"Retry-After": "5"})
        if self.state == "error" or self.engines is None:
            raise ApiError(503, f"The model failed to load: {self.load_error}", "model_unavailable")
        return self.engines

    def _put(self, item: Any) -> None:
        try:
            if item is None:
                raise queue.Full
            self._queue.put_nowait(item)
        except queue.Full:
            raise ApiError(
                429,
                f"The queue is full ({self._queue.maxsize} waiting); try again shortly.",
                "queue_full",
                headers={"Retry-After": str(self.retry_after())},
            ) from None

    def retry_after(self) -> int:
        per_job = statistics.median(self._durations[-20:]) if self._durations else 5.0
        return max(1, min(600, round(per_job * max(1, self.waiting) / max(1, self.backend.slots))))

    @property
    def budget(self) -> WorkBudget | None:
        """What one job may ask of the loaded device; None until the models have loaded."""
        if self.engines is None:
            return None
        return budget_for(self.engines.image.device, self._work_budget)

    def submit_job(
        self,
        job: Job,
        options: GenerationOptions,
        samples: np.ndarray | None = None,
        language: str | None = None,
        pictures: PictureInputs | None = None,
        lane: str | None = None,
        heard: Transcript | None = None,
    ) -> Job:
        """Queue a job; returns a copy of its record as accepted (the worker changes the live one).

        `pictures` (imaging.inputs.picture_inputs / openai_edit_inputs) set the job's mode
        and strength; a mode whose weights are missing is a 400 `model_unavailable` here.
        Jobs given the same `lane` wait as one request (a storyboard's shots). Inputs not
        stored yet (see `submit`) are stored when the job starts.
        `heard`: the transcript of a streamed take, so the worker goes straight to generating."""
        work = _JobWork(job, options, samples, language, pictures, heard, lane=lane)
        engines = self._check_accepts(work)
        job.model = engines.image.model_id
        job.mode = pictures.mode if pictures is not None else TEXT
        job.strength = pictures.resolved_strength if pictures is not None else None
        accepted = Job.from_dict(job.to_dict())
        # Persisted before it can run, so a crash from here on leaves a record behind.
        try:
            self.store.add(job)
        except StorageError as exc:
            log.error("%s", exc)  # the job still runs; health reports the disk problem
        self._active[job.id] = work
        self._put(work)
        return accepted

    async def submit(
        self,
        job: Job,
        options: GenerationOptions,
        samples: np.ndarray | None = None,
        language: str | None = None,
        pictures: PictureInputs | None = None,
        lane: str | None = None,
    ) -> Job:
        """submit_job for the routes: the pictures a job starts from are stored first (off
        the event loop), so its record names its inputs from the 202 on. A job that would
        be refused (too much work, a mode without weights, a full queue) writes nothing."""
        if pictures is not None:
            self._check_accepts(_JobWork(job, options, samples, language, pictures, lane=lane))
            loop = asyncio.get_running_loop()
            try:
                job.inputs = await loop.run_in_executor(None, self._keep_inputs, job, pictures)
            except StorageError as exc:
                self.store.remove_inputs(job.id)
                raise ApiError(507, f"Could not keep the input pictures: {exc}", "storage_error", type="server_error") from None
        try:
            return self.submit_job(job, options, samples, language, pictures, lane)
        except BaseException:
            if job.inputs:  # refused after all: the queue filled while the inputs were written
                self.store.remove_inputs(job.id)
                job.inputs = {}
            raise

    def check_work_and_mode(self, options: GenerationOptions, pictures: PictureInputs | None) -> Engines:
        """The engines, or 400: more work than the device's budget (too_large), or the
        mode's weights missing (model_unavailable)."""
        engines = self._require_ready()
        # Every generating route comes through here: a job cancel could not stop for
        # minutes is refused before it is queued. Without a size (a spoken aspect, a
        # picture's own) the job is drawn at about the native area.
        width, height = options.size or engines.image.native_size
        check_work(self.budget, width, height, options.n, options.steps)
        if pictures is not None:
            try:
                engines.image.require_mode(pictures.mode)
            except ModelUnavailable as exc:
                raise ApiError(400, str(exc), "model_unavailable", param=pictures.mode) from None
        return engines

    def _check_accepts(self, work: _JobWork) -> Engines:
        """The engines, or the ApiError that submit_job would answer: not ready, more work
        than the device's budget (400 too_large), the mode's weights missing (400
        model_unavailable), the queue full (429)."""
        engines = self.check_work_and_mode(work.options, work.pictures)
        if self._queue.refuses(work):  # only the event loop submits, so checking first is not racy
            self._put(None)  # raises the 429
        return engines

    def transcribe(self, samples: np.ndarray, options: TranscribeOptions) -> "asyncio.Future[Transcript]":
        self._require_ready()
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._put(_TranscriptionWork(samples, options, future))
        return asyncio.wrap_future(future)

    def want_pngs(self, job_id: str) -> None:
        """On the loop: keep this job's PNGs in fresh_pngs when it is done."""
        self._png_waiters.add(job_id)

    def take_pngs(self, job_id: str) -> list[bytes] | None:
        """On the loop: the job's PNGs (once), and stop waiting for them."""
        self._png_waiters.discard(job_id)
        return self.fresh_pngs.pop(job_id, None)

    def _keep_pngs(self, job_id: str, pngs: list[bytes]) -> None:
        if job_id in self._png_waiters:
            self.fresh_pngs[job_id] = pngs

    def cancel(self, job_id: str) -> bool:
        """Ask a queued or running job to stop. False if it already ended."""
        work = self._active.get(job_id)
        if work is None:
            return False
        work.cancel.set()
        return True

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def running_job(self) -> Job | None:
        """The job a worker is on now (its live record; the longest running), or None."""
        for job_id in list(self._running):
            work = self._active.get(job_id)
            if work is not None:
                return work.job
        return None

    # ---- the worker thread -----------------------------------------------------

    def _publish(self, job_id: str, event: str, data: dict[str, Any]) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.hub.publish, job_id, event, data)

    def _run(self, slot: int = 0) -> None:
        """A worker thread: the first loads the engines; each then takes work in the fair
        queue's order until the queue closes."""
        if slot == 0:
            self._load()
        else:
            self.ready.wait()
        if self.state != "ready":
            return
        while True:
            item = self._next_item(slot)
            if item is _STOP:
                break
            if isinstance(item, _TranscriptionWork):
                self._transcribe(item)
            elif isinstance(item, _JobWork):
                self._running[item.job.id] = None
                started = time.perf_counter()
                try:
                    self._run_job(item)
                finally:
                    self._running.pop(item.job.id, None)
                    self._active.pop(item.job.id, None)
                    self._durations.append(time.perf_counter() - started)
                    del self._durations[:-50]
            if self._closing:
                break
        self._cancel_waiting()

    def _load(self) -> None:
        try:
            self.engines = self.backend.load()
            self.state = "ready"
        except BaseException as exc:  # reported by health and 503s, never a dead thread silently
            self.load_error = exc
            self.state = "error"
            if not isinstance(exc, ModelUnavailable):
                log.exception("model loading failed")
        finally:
            self.ready.set()

    def _next_item(self, slot: int) -> Any:
        if len(self._threads) <= 1:
            return self._queue.get()  # close() puts _STOP for the one thread
        # Several threads share the one _STOP: each looks at _closing between waits.
        while not self._closing:
            if not self.backend.admits(slot):  # e.g. fewer replicas running than threads
                time.sleep(0.2)
                continue
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if item is _STOP:
                return _STOP
            return item
        return _STOP

    def _cancel_waiting(self) -> None:
        """Anything still queued at shutdown ends cancelled, not stuck "queued". Run by
        the worker as it stops, or by close() when the worker is stuck in a step."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _JobWork):
                self._finish(item.job, CANCELLED, error_body("The daemon shut down before this job ran.", "shutdown"))
                self._active.pop(item.job.id, None)
            elif isinstance(item, _TranscriptionWork) and item.future.set_running_or_notify_cancel():
                item.future.set_exception(ApiError(503, "The daemon is shutting down.", "shutting_down"))

    def _transcribe(self, item: _TranscriptionWork) -> None:
        if not item.future.set_running_or_notify_cancel():
            return  # the client went away while it waited
        try:
            with self.speech_lock:
                transcript = self.engines.speech.transcribe(item.samples, item.options)
        except ApiError as exc:  # the engine's own verdict on the input (e.g. unknown language)
            item.future.set_exception(ApiError(exc.status, exc.message, exc.code, param=exc.param))
            return
        except JobFailed as exc:  # failed where it ran (a speech replica)
            item.future.set_exception(ApiError(500, exc.error["message"], exc.error["code"], type="server_error"))
            return
        except Exception as exc:
            error = self._engine_failure("transcription", exc)
            del exc
            self._release_memory()
            status = 503 if error["code"] == "out_of_memory" else 500
            item.future.set_exception(ApiError(status, error["message"], error["code"], type="server_error"))
            return
        item.future.set_result(transcript)

    # ---- engine faults ---------------------------------------------------------

    @staticmethod
    def _engine_failure(what: str, exc: BaseException) -> dict:
        """The job error for an exception an engine raised. The traceback is logged as
        text, so no log record keeps the failed call's frames (and their tensors) alive."""
        if is_out_of_memory(exc):
            log.error("%s ran out of memory: %s", what, str(exc))  # str: a kept log record must not hold the traceback
            return error_body(
                "The device ran out of memory; try a smaller size, fewer images, or start the daemon with --low-vram.",
                "out_of_memory",
            )
        log.error("%s failed:\n%s", what, "".join(traceback.format_exception(exc)).rstrip())
        return error_body(f"The model failed: {type(exc).__name__}: {str(exc)[:200]}", "engine_error")

    def _release_memory(self) -> None:
        """After a failure: drop what the failed call left behind and hand cached device
        memory back, so the next job starts from a clean slate."""
        gc.collect()
        release = getattr(self.engines.image, "release_memory", None) if self.engines else None
        try:
            if release is not None:
                release()
            torch = sys.modules.get("torch")
            if torch is not None and torch.cuda.is_available():
                torch.cuda.empty_cache()
        except Exception:  # freeing memory must not turn one failure into two
            log.debug("releasing memory failed", exc_info=True)

    def _save(self, job: Job) -> None:
        try:
            self.store.save(job)
        except StorageError as exc:
            log.error("%s", exc)

    def _finish(self, job: Job, status: str, error: dict | None = None) -> None:
        # Off the running count before the record reads finished: whoever sees the end (a
        # client polling, health) must not still count the job as running.
        self._running.pop(job.id, None)
        job.status = status
        job.error = error
        job.finished = time.time()
        self._save(job)
        self._publish(job.id, status, job.to_dict())

    def _run_job(self, work: _JobWork) -> None:
        job, options, engines = work.job, work.options, self.engines
        job.timings["queued_s"] = round(time.perf_counter() - work.enqueued, 4)
        if work.cancel.is_set():
            self._finish(job, CANCELLED)
            return
        try:
            prompt, negative, size = options.prompt, options.negative_prompt, options.size
            pictures = work.pictures
            if pictures is not None:
                if not job.inputs:  # submitted without `submit`, which stores them first
                    job.inputs = self._keep_inputs(job, pictures)
                    self._save(job)
                if size is None:  # the canvas's shape wins over a spoken aspect
                    size = size_for_input(pictures.frame, engines.image.native_size)
            if work.samples is not None or work.heard is not None:
                heard = work.heard
                if heard is None:
                    job.status = TRANSCRIBING
                    self._save(job)
                    started = time.perf_counter()
                    with self.speech_lock:
                        heard = engines.speech.transcribe(work.samples, TranscribeOptions(language=work.language))
                    job.timings["transcribe_s"] = round(time.perf_counter() - started, 4)
                said = take_heard(job, heard, options, self._publish)
                prompt, negative = job.prompt, job.negative_prompt
                if size is None and said.aspect is not None:
                    size = spoken.size_for_aspect(said.aspect, engines.image.native_size)
                if not prompt:
                    message = "No speech was heard in the recording." if not job.transcript else f"Heard {job.transcript!r}, but nothing to draw."
                    self._finish(job, FAILED, error_body(message, "no_speech"))
                    return
                if work.cancel.is_set():
                    self._finish(job, CANCELLED)
                    return
            elif job.kind == DICTATION and prompt and job.storyboard is None:
                # Typed for our own route: the same controls as speech (spoken.py), so
                # typing and saying "..., wide shot, without people" draw the same picture.
                # Not for a storyboard's shot: the board already read each shot's controls
                # (and keeps its format words, since the board's frame is fixed).
                said = spoken.read_controls(prompt)
                prompt = said.prompt or prompt
                negative = ", ".join(p for p in (negative, said.negative_prompt) if p)
                if size is None and said.aspect is not None:
                    size = spoken.size_for_aspect(said.aspect, engines.image.native_size)
                job.prompt, job.negative_prompt = prompt, negative
            width, height = size or engines.image.native_size
            job.size = f"{width}x{height}"
            job.status = GENERATING
            self._save(job)
            fitted = fit_inputs(pictures, (width, height)) if pictures is not None else PictureInputs()
            request = GenerationRequest(
                prompt=prompt,
                negative_prompt=negative,
                width=width,
                height=height,
                n=job.n,
                steps=job.steps,
                seed=job.seed,
                guidance_scale=job.guidance_scale,
                scheduler=job.scheduler or engines.image.default_scheduler,
                mode=job.mode,
                strength=job.strength or 1.0,
                image=fitted.image,
                mask=fitted.mask,
                depth=fitted.depth,
                mask_blur=fitted.mask_blur,
            )
            job.scheduler = request.scheduler
            started = time.perf_counter()
            previews = self._preview_every if job.kind == DICTATION else 0  # as _step_callback asks
            images = self.backend.generate(request, self._step_callback(work), work.cancel, self._on_start(job, started), previews)
            job.timings["generate_s"] = round(time.perf_counter() - started, 4)
            started = time.perf_counter()
            pngs, names = [], []
            for index, image in enumerate(images):
                png = encode_png(image, self._image_metadata(job, request, index))
                names.append(self.store.save_image(job.id, index, png))
                pngs.append(png)
            job.timings["save_s"] = round(time.perf_counter() - started, 4)
            job.images = names
            if job.kind != DICTATION and self._loop is not None and not self._loop.is_closed():
                # Before _finish publishes the terminal event, so the route finds them.
                self._loop.call_soon_threadsafe(self._keep_pngs, job.id, pngs)
            self._finish(job, DONE)
            return
        except GenerationCancelled:
            if self._closing:
                self._finish(job, CANCELLED, error_body("The daemon shut down while this job ran.", "shutdown"))
            else:
                self._finish(job, CANCELLED)
            return
        except StorageError as exc:
            self._finish(job, FAILED, error_body(f"Could not save the result: {exc}", "storage_error"))
            return
        except JobFailed as exc:  # failed where it ran (a replica), with its own error
            self._finish(job, FAILED, exc.error)
            return
        except ModelUnavailable as exc:  # a mode's weights went missing or would not load
            self._finish(job, FAILED, error_body(str(exc), "model_unavailable"))
            return
        except ApiError as exc:  # an engine's verdict on the input, e.g. an unknown language
            self._finish(job, FAILED, error_body(exc.message, exc.code))
            return
        except Exception as exc:  # one broken job must not take the worker down
            error = self._engine_failure(f"job {job.id}", exc)
            del exc  # the traceback holds the failed call's frames
        # Outside the except block, so no traceback keeps the failed call's memory.
        self._release_memory()
        self._finish(job, FAILED, error)

    def _keep_inputs(self, job: Job, pictures: PictureInputs) -> dict[str, str]:
        """Store each given picture as PNG next to the job's images; {role: name}."""
        started = time.perf_counter()
        names = {role: self.store.save_input(job.id, role, png_bytes(picture)) for role, picture in pictures.given().items()}
        job.timings["inputs_s"] = round(time.perf_counter() - started, 4)
        return names

    def _on_start(self, job: Job, dispatched: float):
        def on_start(worker: str, attempt: int) -> None:
            job.worker, job.attempts, job.step = worker, attempt, 0
            if attempt == 1 and worker != "local":  # waited for a free replica
                job.timings["dispatch_s"] = round(time.perf_counter() - dispatched, 4)
            self._save(job)

        return on_start

    def _step_callback(self, work: _JobWork):
        job = work.job

        def on_step(step: int, steps: int, make_preview) -> bool:
            job.step, job.progress_steps = step, steps
            data: dict[str, Any] = {"id": job.id, "step": step, "steps": steps}
            # A synchronous generation's caller only sees the final answer: no previews
            # for it (on CUDA each one forces a device sync).
            if job.kind == DICTATION and step % self._preview_every == 0 and step < steps:
                try:
                    data["preview"] = _jpeg_base64(make_preview())
                except Exception:  # a preview is a nicety; never fail a job over it
                    log.debug("preview failed", exc_info=True)
            self._publish(job.id, "progress", data)
            return work.cancel.is_set()

        return on_step

    @staticmethod
    def _image_metadata(job: Job, request: GenerationRequest, index: int) -> dict[str, Any]:
        meta = {
            "prompt": request.prompt,
            "negative_prompt": request.negative_prompt,
            "seed": request.seed + index,
            "steps": request.steps,
            "width": request.width,
            "height": request.height,
            "scheduler": request.scheduler,
            "guidance_scale": request.guidance_scale,
            "model": job.model,
            "transcript": job.transcript,
            "job_id": job.id,
            "mode": request.mode,
        }
        # AUTOMATIC1111 writes these only where they apply.
        if request.mode != TEXT:
            meta["strength"] = request.strength
        if request.mode == INPAINT:
            meta["mask_blur"] = request.mask_blur
        return meta


def _jpeg_base64(image) -> str:
    image = image.convert("RGB")
    image.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA/MPS/CPU out-of-memory, however the engine or torch spelled it."""
    if isinstance(exc, (EngineOutOfMemory, MemoryError)):
        return True
    if type(exc).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError, without importing torch
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def is_terminal(status: str) -> bool:
    return status in TERMINAL
