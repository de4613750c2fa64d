"""One daemon per data dir: two would each mark the other's running jobs interrupted.

The lock is an advisory `flock` on `<data dir>/daemon.lock`, so it ends with the
process however it ends (kill -9 included); the file holds the owner's pid for the
message. `voicebrush history` takes the same lock when it works on a data dir itself.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

LOCK_NAME = "daemon.lock"


class DataDirInUse(RuntimeError):
    """Another process holds the data dir. The message names it and what to do."""


@contextlib.contextmanager
def hold_data_dir(data_dir: Path):
    path = Path(data_dir) / LOCK_NAME
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(path, "a+")
    except OSError as exc:
        # An unwritable data dir does not stop the daemon (the store reports it on
        # health); it only goes without the guard.
        log.warning("cannot lock the data dir %s: %s", data_dir, exc.strerror or exc)
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            raise DataDirInUse(
                f"another voicebrush process (pid {owner}) is using the data dir {data_dir}; "
                "stop it, or give this one its own --data-dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
