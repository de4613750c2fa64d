"""Storyboards on disk, beside the jobs: storyboards/<id>.json under the data dir.

Written like the job records (jobs/store.py): a temporary file, flushed to disk, renamed
over the target, so a crash leaves the old record or the new one, never a part. A board
changes only when it is made and when a shot is redone; its status comes from its jobs.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from pathlib import Path

from ..jobs.store import TEMP_PREFIX, StorageError, write_atomically
from .model import Storyboard

log = logging.getLogger(__name__)

BOARD_ID = re.compile(r"^[0-9a-f]{32}$")


class BoardStore:
    """Thread-safe like JobStore, though only the event loop uses it today."""

    def __init__(self, data_dir: Path) -> None:
        self.folder = data_dir / "storyboards"
        self._boards: dict[str, Storyboard] = {}
        self._lock = threading.Lock()

    def open(self) -> None:
        """Load the history; partial files from a crash are removed, unreadable ones skipped."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for partial in self.folder.glob(TEMP_PREFIX + "*"):
                partial.unlink(missing_ok=True)
        except OSError as exc:
            log.error("cannot use %s: %s", self.folder, exc.strerror or exc)
            return
        for path in self.folder.glob("*.json"):
            try:
                board = Storyboard.from_dict(json.loads(path.read_bytes()))
            except (OSError, ValueError, TypeError, KeyError) as exc:
                log.warning("skipping unreadable storyboard file %s: %s", path.name, exc)
                continue
            if BOARD_ID.fullmatch(board.id):
                self._boards[board.id] = board

    def save(self, board: Storyboard) -> None:
        """Keep the board (in memory at once) and write it; a failing disk raises StorageError."""
        with self._lock:
            self._boards[board.id] = board
        data = json.dumps(board.to_dict(), separators=(",", ":")).encode()
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            write_atomically(self.folder / f"{board.id}.json", data)
        except OSError as exc:
            raise StorageError(f"cannot write to {self.folder}: {exc.strerror or exc}") from exc

    def get(self, board_id: str) -> Storyboard | None:
        with self._lock:
            return self._boards.get(board_id)

    def recent(self, limit: int) -> list[Storyboard]:
        with self._lock:
            boards = sorted(self._boards.values(), key=lambda b: b.created, reverse=True)
        return boards[:limit]
