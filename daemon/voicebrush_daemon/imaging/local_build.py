"""Folders the daemon builds itself into the data dir (the tiny stand-in model, SD 2.x's
config files): built once, atomically, and rebuilt when their recipe changes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

MARKER = "voicebrush-build.json"


def ensure_built(models_dir: Path, name: str, version: int, write: Callable[[Path], None]) -> Path:
    """Return models_dir/name, calling write(folder) first if it is missing or outdated.

    Written in a temporary sibling folder and renamed into place, so a crash never
    leaves a half-written folder that would later load.
    """
    models_dir = Path(models_dir)
    target = models_dir / name
    if is_built(target, version):
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=models_dir))
    try:
        write(build_dir)
        (build_dir / MARKER).write_text(json.dumps({"version": version}))
        if target.exists():
            # Outdated build: move it aside first so the rename below is atomic.
            stale = Path(tempfile.mkdtemp(prefix=f".{name}-stale-", dir=models_dir))
            os.replace(target, stale / name)
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(build_dir, target)
        except OSError:
            # Another process finished the same build first; theirs is as good as ours.
            if not is_built(target, version):
                raise
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    return target


def is_built(path: Path, version: int) -> bool:
    try:
        marker = json.loads((Path(path) / MARKER).read_text())
    except (OSError, ValueError):
        return False
    return marker.get("version") == version and (Path(path) / "model_index.json").is_file()
