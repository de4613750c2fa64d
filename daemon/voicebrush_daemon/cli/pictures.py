"""One job through the daemon, its PNGs written: what `generate` and `dictate` share."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicebrush_client import VoicebrushError

from .arguments import generation_options
from .connect import daemon_for
from .console import CommandFailed, describe_client_error, progress_printer, say


def draw(args: argparse.Namespace, *, prompt: str | None, audio: bytes | None, audio_filename: str = "speech.wav") -> int:
    """Run a typed prompt or speech through the daemon and write its PNGs; one line per file
    with that image's own seed. Raises CommandFailed."""
    try:
        with daemon_for(args, speech=audio is not None) as client:
            result = client.run_job(prompt=prompt, audio=audio, audio_filename=audio_filename, on_event=progress_printer(), **generation_options(args))
    except VoicebrushError as exc:
        raise CommandFailed(describe_client_error(exc)) from None
    job = result.job
    if audio is None and (job.get("prompt") != prompt or job.get("negative_prompt") != (args.negative_prompt or "")):
        # The typed prompt's controls were read: say what was drawn.
        say(f"prompt: {job.get('prompt')!r}" + (f"  (without: {job['negative_prompt']!r})" if job.get("negative_prompt") else ""))
    for index, path in enumerate(write_images(args.output, result.images)):
        print(f"wrote {path}  (seed {job['seed'] + index}, {job.get('size')})")
    return 0


def write_images(output: Path, images: list[bytes]) -> list[Path]:
    paths = [output] if len(images) == 1 else [output.with_name(f"{output.stem}-{i + 1}{output.suffix or '.png'}") for i in range(len(images))]
    for path, png in zip(paths, images):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    return paths
