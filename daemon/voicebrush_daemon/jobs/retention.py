"""How long the history keeps finished jobs: by age, by count, or both.

    deleted = prune(store, Retention(keep_days=30, max_jobs=5000))

A queued or running job is never deleted, and does not count against max_jobs.
The daemon applies its policy (serve --keep-days / --max-jobs) when it starts and
once a day; `voicebrush history prune` applies one on demand.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from .model import ACTIVE, Job
from .store import JobStore

DAY_S = 24 * 3600


@dataclass(frozen=True)
class Retention:
    keep_days: float | None = None  # finished jobs created longer ago are deleted
    max_jobs: int | None = None  # beyond this many finished jobs, the oldest are deleted

    @property
    def active(self) -> bool:
        return self.keep_days is not None or self.max_jobs is not None

    def describe(self) -> str:
        parts = []
        if self.keep_days is not None:
            parts.append(f"jobs from the last {self.keep_days:g} days")
        if self.max_jobs is not None:
            parts.append(f"at most {self.max_jobs} jobs")
        return "keeping " + " and ".join(parts) if parts else "keeping every job"


def expired(jobs: list[Job], retention: Retention, now: float) -> list[Job]:
    """The finished jobs the policy deletes, oldest first."""
    finished = sorted((job for job in jobs if job.status not in ACTIVE), key=lambda job: job.created, reverse=True)
    doomed: dict[str, Job] = {}
    if retention.max_jobs is not None:
        for job in finished[max(0, retention.max_jobs):]:
            doomed[job.id] = job
    if retention.keep_days is not None:
        cutoff = now - retention.keep_days * DAY_S
        for job in finished:
            if job.created < cutoff:
                doomed[job.id] = job
    return sorted(doomed.values(), key=lambda job: job.created)


def prune(store: JobStore, retention: Retention, *, now: float | None = None, dry_run: bool = False) -> list[Job]:
    """Delete what the policy says (nothing when dry_run); return the jobs it meant."""
    if not retention.active:
        return []
    doomed = expired(store.recent(len(store)), retention, time.time() if now is None else now)
    if dry_run:
        return doomed
    deleted = [job for job in doomed if store.delete(job.id)]
    store.sweep_orphans()
    return deleted
