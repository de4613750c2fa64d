"""Jobs and images on disk, written so a crash never leaves a half file behind.

Layout under the data dir: jobs/<id>.json and images/<id>-<i>.png. Every write goes
to a temporary file in the same folder, is flushed to disk, then renamed over the
target (atomic on POSIX), so readers see the old file or the new one, never a part.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
import threading
import time
from pathlib import Path

from .model import ACTIVE, FAILED, Job, error_body

log = logging.getLogger(__name__)

IMAGE_NAME = re.compile(r"^[0-9a-f]{32}-[0-9]{1,2}$")
TEMP_PREFIX = ".partial-"


class StorageError(OSError):
    """The data dir is full, gone or read-only. Carries a sentence for the operator."""


def write_atomically(path: Path, data: bytes) -> None:
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        try:
            os.unlink(temp)
        except OSError:
            pass
        raise


class JobStore:
    """Owns the data dir. Thread-safe: the worker writes while the server reads."""

    def __init__(self, data_dir: Path) -> None:
        self.jobs_dir = data_dir / "jobs"
        self.images_dir = data_dir / "images"
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.last_error: str | None = None

    def open(self) -> list[Job]:
        """Load history. Jobs that were running when the daemon died come back failed
        ('interrupted'), and partial files from a crash are removed. Returns those jobs."""
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.images_dir.mkdir(parents=True, exist_ok=True)
        for folder in (self.jobs_dir, self.images_dir):
            for partial in folder.glob(TEMP_PREFIX + "*"):
                partial.unlink(missing_ok=True)
        interrupted = []
        for path in self.jobs_dir.glob("*.json"):
            try:
                job = Job.from_dict(json.loads(path.read_bytes()))
            except (OSError, ValueError, TypeError) as exc:
                log.warning("skipping unreadable job file %s: %s", path.name, exc)
                continue
            if job.status in ACTIVE:
                job.status = FAILED
                job.finished = job.finished or time.time()
                job.error = error_body("The daemon stopped while this job was running.", "interrupted")
                interrupted.append(job)
            self._jobs[job.id] = job
        for job in interrupted:
            self.save(job)
        return interrupted

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
        self.save(job)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def recent(self, limit: int) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
        return jobs[:limit]

    def save(self, job: Job) -> None:
        """Persist a job's record. A failing disk is remembered (health reports it) and
        raised as StorageError; the in-memory record stays current either way."""
        data = json.dumps(job.to_dict(), separators=(",", ":")).encode()
        try:
            write_atomically(self.jobs_dir / f"{job.id}.json", data)
            self.last_error = None
        except OSError as exc:
            self.last_error = f"cannot write to the data dir {self.jobs_dir.parent}: {exc.strerror or exc}"
            raise StorageError(self.last_error) from exc

    def save_image(self, job_id: str, index: int, png: bytes) -> str:
        name = f"{job_id}-{index}"
        try:
            write_atomically(self.images_dir / f"{name}.png", png)
            self.last_error = None
        except OSError as exc:
            self.last_error = f"cannot write to the data dir {self.images_dir.parent}: {exc.strerror or exc}"
            raise StorageError(self.last_error) from exc
        return name

    def image_path(self, name: str) -> Path | None:
        """The file for an image name, or None. Names are checked against the one shape
        the daemon makes, so no request can reach outside the images folder."""
        if not IMAGE_NAME.match(name):
            return None
        path = self.images_dir / f"{name}.png"
        return path if path.is_file() else None
