"""generate, transcribe and dictate: the CLI as a client of the daemon.

They talk HTTP through the same stdlib client the plugins ship. When no daemon
answers and --server was not given, one is started inside this process, so a
newcomer's first `voicebrush generate` just works (slower: it loads the models).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import threading
import time
from pathlib import Path

from voicebrush_client import Client, VoicebrushError, encode_multipart, encode_wav

from .cli import DEFAULT_SERVER, run_server, settings_from_args


@contextlib.contextmanager
def connect(args: argparse.Namespace):
    """A Client for a running daemon, or for one started here for the duration."""
    server = args.server or DEFAULT_SERVER
    client = Client(server, token=args.token, timeout=30.0)
    try:
        health = client.health()
    except VoicebrushError as exc:
        if args.server or exc.code != "unreachable":
            raise
    else:
        if health.get("status") != "ok":
            raise VoicebrushError(f"The daemon at {server} is not ready: {health.get('status')}.", "loading")
        yield client
        return
    print(f"voicebrush: no daemon at {server}; starting one in this process (--preset {args.preset})...", file=sys.stderr)
    with local_daemon(settings_from_args(args, port=0)) as url:
        yield Client(url, timeout=30.0)


@contextlib.contextmanager
def local_daemon(settings):
    started, bound, outcome = threading.Event(), [], {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        outcome["rc"] = loop.run_until_complete(run_server(settings, started=started, bound=bound, stop=stop))

    thread = threading.Thread(target=run, name="voicebrush-local-daemon", daemon=True)
    thread.start()
    while not started.is_set() and thread.is_alive():
        started.wait(0.1)
    if not bound:
        raise VoicebrushError("Could not start a daemon in this process.", "unreachable")
    url = f"http://127.0.0.1:{bound[0]}"
    client = Client(url, timeout=5.0)
    try:
        while True:  # until the models are loaded (or failed to)
            if not thread.is_alive():
                raise SystemExit(outcome.get("rc", 1))
            health = client.health()
            if health.get("status") == "ok":
                break
            if health.get("status") == "error":
                raise VoicebrushError(health["error"]["message"], health["error"]["code"])
            time.sleep(0.2)
        yield url
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)


def _progress_printer():
    """Prints a progress bar for a job's events (tqdm, on stderr)."""
    from tqdm import tqdm

    state = {"bar": None}

    def on_event(event: str, data: dict) -> None:
        if event == "transcript":
            print(f"heard: {data.get('transcript', '')!r}", file=sys.stderr)
            print(f"prompt: {data.get('prompt', '')!r}" + (f"  (without: {data['negative_prompt']!r})" if data.get("negative_prompt") else ""), file=sys.stderr)
        elif event == "progress":
            if state["bar"] is None:
                state["bar"] = tqdm(total=data.get("steps", 0), desc="generating", unit="step", file=sys.stderr, leave=False)
            bar = state["bar"]
            bar.update(max(0, data.get("step", 0) - bar.n))
        elif state["bar"] is not None:
            state["bar"].close()

    return on_event


def _options(args: argparse.Namespace) -> dict:
    options = {"negative_prompt": args.negative_prompt, "n": args.n, "steps": args.steps, "seed": args.seed}
    if args.size:
        options["size"] = args.size
    if args.guidance_scale is not None:
        options["guidance_scale"] = args.guidance_scale
    if args.scheduler:
        options["scheduler"] = args.scheduler
    return options


def _write_images(output: Path, images: list[bytes]) -> list[Path]:
    paths = [output] if len(images) == 1 else [output.with_name(f"{output.stem}-{i + 1}{output.suffix or '.png'}") for i in range(len(images))]
    for path, png in zip(paths, images):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png)
    return paths


def _run(args: argparse.Namespace, prompt: str | None, audio: bytes | None) -> int:
    with connect(args) as client:
        result = client.run_job(prompt=prompt, audio=audio, on_event=_progress_printer(), **_options(args))
    for path in _write_images(args.output, result.images):
        print(f"wrote {path}  (seed {result.job.get('seed')}, {result.job.get('size')})")
    return 0


def _fail(exc: VoicebrushError) -> int:
    print(f"voicebrush: {exc}", file=sys.stderr)
    return 1


def generate(args: argparse.Namespace) -> int:
    try:
        return _run(args, args.prompt, None)
    except VoicebrushError as exc:
        return _fail(exc)


def transcribe(args: argparse.Namespace) -> int:
    try:
        audio = args.audio.read_bytes()
    except OSError as exc:
        print(f"voicebrush: cannot read {args.audio}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        with connect(args) as client:
            if args.format == "text":
                print(client.transcribe(audio, filename=args.audio.name, language=args.language))
            else:
                print(_transcribe_formatted(client, audio, args))
    except VoicebrushError as exc:
        return _fail(exc)
    return 0


def _transcribe_formatted(client: Client, audio: bytes, args: argparse.Namespace) -> str:
    fields = {"model": "whisper-1", "response_format": args.format}
    if args.language:
        fields["language"] = args.language
    body, content_type = encode_multipart(fields, {"file": (args.audio.name, audio, "application/octet-stream")})
    _, _, data = client._call("POST", "/v1/audio/transcriptions", body=body, content_type=content_type)
    text = data.decode("utf-8")
    return json.dumps(json.loads(text), indent=2) if args.format.endswith("json") else text


def record(seconds: float | None, device: str | None) -> bytes:
    """16 kHz mono s16le from the microphone: for `seconds`, or until Enter."""
    import numpy as np
    import sounddevice

    rate = 16_000
    device_arg = int(device) if device and device.isdigit() else device
    if seconds is not None:
        samples = sounddevice.rec(int(seconds * rate), samplerate=rate, channels=1, dtype="int16", device=device_arg)
        sounddevice.wait()
        return samples.tobytes()
    chunks: list[np.ndarray] = []
    with sounddevice.InputStream(samplerate=rate, channels=1, dtype="int16", device=device_arg, callback=lambda data, *_: chunks.append(data.copy())):
        input("recording... press Enter to stop ")
    return b"".join(c.tobytes() for c in chunks)


def dictate(args: argparse.Namespace) -> int:
    try:
        pcm = record(args.seconds, args.input_device)
    except Exception as exc:  # PortAudio errors come in many types; all mean "no microphone"
        print(f"voicebrush: cannot record from the microphone: {exc}", file=sys.stderr)
        return 1
    if not pcm:
        print("voicebrush: nothing was recorded.", file=sys.stderr)
        return 1
    wav = encode_wav(pcm, 16_000, 1)
    if args.keep_audio:
        args.keep_audio.write_bytes(wav)
    try:
        return _run(args, None, wav)
    except VoicebrushError as exc:
        return _fail(exc)
