"""Where the job queue's generations run: in this process (the default), or on a cluster.

The queue (worker.py) owns everything around a generation: the fair order, prompts from
speech, the record, the PNGs and the history. A backend only runs the engine call:

    images = backend.generate(request, on_step, cancel, on_start)

- `on_step(step, steps, make_preview) -> stop?` is the engine's own step hook
  (imaging/base.py), called as steps run, wherever they run;
- `cancel` is the job's cancel flag: a backend that cannot see the hook's answer at
  once (a remote one) also listens on it (`Cancel.when_set`);
- `on_start(worker, attempt)` is called when a worker takes the job: "local" and 1
  here; a cluster names the replica, and calls it again for a second attempt.

`InProcessBackend` is what the daemon always did: the engines live in this process and
one job runs at a time (slots = 1). The Ray backend (cluster/) is imported only when
`serve --ray` asks for it.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass
from typing import Any, Callable, ContextManager, Protocol

from PIL import Image

from ..imaging.base import GenerationRequest, ImageGenerator, StepCallback
from ..speech.base import Transcriber

LOCAL_WORKER = "local"


@dataclass
class Engines:
    image: ImageGenerator
    speech: Transcriber


class Cancel(threading.Event):
    """A job's cancel flag that can also call back when it is set (from any thread)."""

    def __init__(self) -> None:
        super().__init__()
        self._callbacks: list[Callable[[], None]] = []
        self._callbacks_lock = threading.Lock()

    def set(self) -> None:
        with self._callbacks_lock:
            first = not self.is_set()
            super().set()
            callbacks, self._callbacks = self._callbacks, []
        if first:
            for callback in callbacks:
                callback()

    def when_set(self, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` once when the flag is set (at once if it is). Returns a
        function that forgets it."""
        with self._callbacks_lock:
            if not self.is_set():
                self._callbacks.append(callback)
                return lambda: self._forget(callback)
        callback()
        return lambda: None

    def _forget(self, callback: Callable[[], None]) -> None:
        with self._callbacks_lock:
            if callback in self._callbacks:
                self._callbacks.remove(callback)


OnStart = Callable[[str, int], None]  # (worker, attempt)


class JobFailed(Exception):
    """A generation that failed where it ran, with the job error (jobs.model.error_body) to record."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


class Backend(Protocol):
    slots: int  # generations it runs at once: the worker threads the queue starts
    speech_lock: ContextManager  # held around every speech engine call (see worker.py)

    def load(self) -> Engines:
        """Blocking: ready the engines; returns what the front door describes and checks
        requests with (model ids, native size, schedulers, modes; speech transcribes)."""
        ...

    def generate(self, request: GenerationRequest, on_step: StepCallback, cancel: Cancel, on_start: OnStart, preview_every: int = 0) -> list[Image.Image]:
        """Run one generation. Raises errors.GenerationCancelled, EngineOutOfMemory,
        models.ModelUnavailable, JobFailed, or what the engine raised. `preview_every`:
        the steps the hook will ask a preview for (0: none), for a backend that must make
        them where the engine runs."""
        ...

    def admits(self, slot: int) -> bool:
        """Whether worker thread `slot` (0, 1, ...) may start a job now."""
        ...

    def describe(self) -> dict[str, Any] | None:
        """Health's `cluster` section (replicas, GPUs, where each deployment runs); None
        in process."""
        ...

    def close(self) -> None: ...


class InProcessBackend:
    """The engines in this process, one job at a time: the daemon as it always was."""

    slots = 1

    def __init__(self, load_engines: Callable[[], Engines]) -> None:
        self._load_engines = load_engines
        self._engines: Engines | None = None
        # openai-whisper's decoder is not safe to run twice at once (worker.py).
        self.speech_lock: ContextManager = threading.Lock()

    def load(self) -> Engines:
        self._engines = self._load_engines()
        return self._engines

    def generate(self, request: GenerationRequest, on_step: StepCallback, cancel: Cancel, on_start: OnStart, preview_every: int = 0) -> list[Image.Image]:
        on_start(LOCAL_WORKER, 1)
        return self._engines.image.generate(request, on_step)

    def admits(self, slot: int) -> bool:
        return True

    def describe(self) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        pass


def no_lock() -> ContextManager:
    """A speech lock for backends whose speech engines serialise themselves."""
    return contextlib.nullcontext()
