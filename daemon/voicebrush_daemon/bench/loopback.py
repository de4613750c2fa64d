"""The daemon the benchmark talks to: the real app on a free loopback port, served
from a thread of this process with the caller's engines, so the HTTP path and the
direct calls run the very same model objects."""

from __future__ import annotations

from ..jobs.worker import Engines
from ..server.runner import InProcessDaemon
from ..server.state import STORE
from ..settings import Settings


class LoopbackDaemon(InProcessDaemon):
    def __init__(self, settings: Settings, engines: Engines) -> None:
        super().__init__(settings, load_engines=lambda: engines, ready_timeout=120.0)

    def job_timings(self, job_id: str) -> dict[str, float]:
        """The worker's own timings of a job (queued, transcribe, generate, save)."""
        job = self.app[STORE].get(job_id)
        return dict(job.timings) if job is not None else {}
