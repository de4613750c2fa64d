"""Jobs and images on disk, written so a crash never leaves a half file behind.

Layout under the data dir: jobs/<id>.json, images/<id>-<i>.png, and the pictures a job
started from as images/<id>-image.png, <id>-mask.png, <id>-depth.png. Every write goes
to a temporary file in the same folder, is flushed to disk, then renamed over the
target (atomic on POSIX), so readers see the old file or the new one, never a part.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import tempfile
import threading
import time
from pathlib import Path

from .model import ACTIVE, FAILED, TERMINAL, Job, error_body

log = logging.getLogger(__name__)

IMAGE_NAME = re.compile(r"^[0-9a-f]{32}-[0-9]{1,2}$")
INPUT_ROLES = ("image", "mask", "depth")
INPUT_NAME = re.compile(r"^([0-9a-f]{32})-(image|mask|depth)$")
JOB_ID = re.compile(r"^[0-9a-f]{32}$")
JOB_FILE_PREFIX = re.compile(r"^([0-9a-f]{32})-")  # every file of a job in images/ starts with its id
TEMP_PREFIX = ".partial-"


class StorageError(OSError):
    """The data dir is full, gone or read-only. Carries a sentence for the operator."""


def write_atomically(path: Path, data: bytes, durable: bool = True) -> None:
    """Temp file then rename. `durable` also waits for the disk (fsync): needed for
    results, not for intermediate states that a restart marks failed anyway."""
    fd, temp = tempfile.mkstemp(prefix=TEMP_PREFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            if durable:
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
        # One entry per folder that failed its last write, so a good write to jobs/
        # does not hide a broken images/ (and the reverse).
        self._errors: dict[str, str] = {}

    @property
    def last_error(self) -> str | None:
        """The disk problem health reports, or None while every folder takes writes."""
        return "; ".join(self._errors.values()) or None

    def _failed(self, folder: Path, exc: OSError) -> StorageError:
        message = f"cannot write to {folder}: {exc.strerror or exc}"
        self._errors[folder.name] = message
        return StorageError(message)

    def open(self) -> list[Job]:
        """Load history. Jobs that were running when the daemon died come back failed
        ('interrupted'), and partial files from a crash are removed. Returns those jobs.

        A data dir that cannot be written does not stop the daemon: the problem is
        reported by health and by each job that needs the disk, and the rest serves."""
        for folder in (self.jobs_dir, self.images_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
                for partial in folder.glob(TEMP_PREFIX + "*"):
                    partial.unlink(missing_ok=True)
            except OSError as exc:
                log.error("%s", self._failed(folder, exc))
        interrupted = []
        for path in self.jobs_dir.glob("*.json") if self.jobs_dir.is_dir() else ():
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
            # Images a cut-off job wrote before the crash belong to no finished record.
            for orphan in self.images_dir.glob(f"{job.id}-*.png") if self.images_dir.is_dir() else ():
                if IMAGE_NAME.fullmatch(orphan.stem):
                    orphan.unlink(missing_ok=True)
            try:
                self.save(job)
            except StorageError as exc:
                log.error("%s", exc)
        self._remove_orphan_inputs()
        return interrupted

    def _remove_orphan_inputs(self) -> None:
        """Inputs no record names: written by a job that was cut off before its record
        said so, or left by a record that is gone. (Partial files went with TEMP_PREFIX.)"""
        try:
            for path in self.images_dir.glob("*-*.png") if self.images_dir.is_dir() else ():
                match = INPUT_NAME.fullmatch(path.stem)
                if match is None:
                    continue
                job = self._jobs.get(match.group(1))
                if job is None or job.inputs.get(match.group(2)) != path.stem:
                    path.unlink(missing_ok=True)
        except OSError as exc:
            log.error("could not clean up inputs in %s: %s", self.images_dir, exc)

    def add(self, job: Job) -> None:
        with self._lock:
            self._jobs[job.id] = job
        self.save(job)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)

    def recent(self, limit: int) -> list[Job]:
        with self._lock:
            jobs = sorted(self._jobs.values(), key=lambda j: j.created, reverse=True)
        return jobs[:limit]

    def save(self, job: Job) -> None:
        """Persist a job's record. A failing disk is remembered (health reports it) and
        raised as StorageError; the in-memory record stays current either way."""
        data = json.dumps(job.to_dict(), separators=(",", ":")).encode()
        # fsync only the final record: an fsync costs up to ~20 ms on a busy disk, and
        # a non-final record is rewritten as failed/interrupted after a crash anyway.
        self._write(self.jobs_dir, f"{job.id}.json", data, durable=job.status in TERMINAL)

    def save_image(self, job_id: str, index: int, png: bytes) -> str:
        name = f"{job_id}-{index}"
        self._write(self.images_dir, f"{name}.png", png)
        return name

    def save_input(self, job_id: str, role: str, png: bytes) -> str:
        """Keep a picture job_id started from ("image", "mask" or "depth") as PNG bytes,
        durably, next to its images. Returns the name, made here from the job id and the
        role, never from anything a request sent."""
        if role not in INPUT_ROLES or not JOB_ID.fullmatch(job_id):
            raise ValueError(f"not an input the store keeps: {job_id!r} {role!r}")
        name = f"{job_id}-{role}"
        self._write(self.images_dir, f"{name}.png", png)
        return name

    def remove_inputs(self, job_id: str) -> None:
        """Delete the inputs kept for a job that was refused after they were written."""
        if not JOB_ID.fullmatch(job_id):
            return
        for role in INPUT_ROLES:
            try:
                (self.images_dir / f"{job_id}-{role}.png").unlink(missing_ok=True)
            except OSError as exc:  # left for the next start's clean-up (no record names it)
                log.warning("could not remove an input of refused job %s: %s", job_id, exc)

    def _write(self, folder: Path, filename: str, data: bytes, durable: bool = True) -> None:
        try:
            # mkdir each time: a folder removed (or replaced) while we run comes back
            # as soon as the disk allows, without a restart.
            folder.mkdir(parents=True, exist_ok=True)
            write_atomically(folder / filename, data, durable)
        except OSError as exc:
            raise self._failed(folder, exc) from exc
        self._errors.pop(folder.name, None)

    def delete(self, job_id: str) -> bool:
        """Forget a finished job: its record, then every file of it in the images folder
        (results, and inputs stored beside them). A crash in between leaves files that
        belong to no record, which the next sweep_orphans removes. A queued or running
        job is never deleted. Returns whether it was."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.status in ACTIVE:
                return False
            del self._jobs[job_id]
        try:
            (self.jobs_dir / f"{job_id}.json").unlink(missing_ok=True)
            for path in self._files_of(job_id):
                path.unlink(missing_ok=True)
        except OSError as exc:
            raise self._failed(self.jobs_dir, exc) from exc
        return True

    def sweep_orphans(self) -> int:
        """Remove image files whose job has no record (left by a crash mid-delete)."""
        with self._lock:
            known = set(self._jobs)
        removed = 0
        for path in self.images_dir.glob("*") if self.images_dir.is_dir() else ():
            owner = JOB_FILE_PREFIX.match(path.name)
            if owner and owner.group(1) not in known:
                path.unlink(missing_ok=True)
                removed += 1
        return removed

    def _files_of(self, job_id: str):
        return self.images_dir.glob(f"{job_id}-*") if self.images_dir.is_dir() else ()

    def image_path(self, name: str) -> Path | None:
        """The file for an image name (or an input's name: inputs are served like
        images), or None. Names are checked against the shapes the daemon makes, so no
        request can reach outside the images folder."""
        if not IMAGE_NAME.fullmatch(name):
            return self.input_path(name)
        return self._existing(self.images_dir / f"{name}.png")

    def input_path(self, name: str) -> Path | None:
        """The file for an input name (save_input's), or None."""
        if not INPUT_NAME.fullmatch(name):
            return None
        return self._existing(self.images_dir / f"{name}.png")

    @staticmethod
    def _existing(path: Path) -> Path | None:
        try:
            # lstat: a symlink planted in the folder is not followed out of it.
            return path if stat.S_ISREG(os.lstat(path).st_mode) else None
        except OSError:
            return None
