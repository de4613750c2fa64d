"""The spoken clips shipped with the repository, and the words said in them."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
CLIPS_DIR = ROOT / "tests" / "fixtures" / "speech"
DICTATION_CLIP = "demo_prompt.wav"  # what `make demo` says: 5.2 s of speech


def clip_texts(readme: Path = CLIPS_DIR / "README.md") -> dict[str, str]:
    """{file name: spoken words} from the clips' README table ("same" repeats the row above)."""
    texts: dict[str, str] = {}
    previous = None
    try:
        lines = readme.read_text(encoding="utf-8").splitlines()
    except OSError:
        return texts
    for line in lines:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2 or not re.fullmatch(r"`[^`]+\.\w+`", cells[0]):
            continue
        words = cells[-1]
        if words == "same" and previous is not None:
            words = previous
        texts[cells[0].strip("`")] = words
        previous = words
    return texts


def speech_clips(max_clips: int | None = None) -> list[tuple[str, str | None]]:
    """One clip per distinct utterance, (file name, known words): the other shipped files
    are the same recordings re-encoded, which would only repeat the measurement."""
    texts = clip_texts()
    chosen: list[tuple[str, str | None]] = []
    seen: set[str] = set()
    for name, words in texts.items():
        if words not in seen and (CLIPS_DIR / name).is_file():
            seen.add(words)
            chosen.append((name, words))
    if not chosen:  # no README: every audio file, without known words
        chosen = [(p.name, None) for p in sorted(CLIPS_DIR.iterdir()) if p.suffix in {".wav", ".flac", ".ogg", ".mp3", ".webm", ".m4a"}]
    if not chosen:
        raise FileNotFoundError(f"no spoken clips in {CLIPS_DIR}; the benchmark runs from a clone of the repository")
    if max_clips is not None:
        chosen = sorted(chosen, key=lambda clip: (CLIPS_DIR / clip[0]).stat().st_size)[:max_clips]
    return chosen


def read_clip(name: str) -> bytes:
    path = CLIPS_DIR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing; the benchmark runs from a clone of the repository")
    return path.read_bytes()
