"""The `voicebrush` command: serve, generate, transcribe, dictate, models, bench."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from . import __version__
from .settings import Settings, default_data_dir, read_token_file

DEFAULT_SERVER = os.environ.get("VOICEBRUSH_SERVER", "http://127.0.0.1:7860")

EPILOG = """\
examples:
  voicebrush serve                          # Stable Diffusion 2 (768) + Whisper small.en
  voicebrush serve --preset tiny            # offline stand-in models, for trying things out
  VOICEBRUSH_TOKEN=S voicebrush serve --host 0.0.0.0  # remote use: a token is required off loopback
  voicebrush generate "a misty harbour at dawn, wide shot" -o harbour.png
  voicebrush transcribe memo.m4a
  voicebrush dictate -o sketch.png          # speak, press Enter, get a picture
  voicebrush models                         # what is downloaded, and how to get the rest
  voicebrush storyboard script.txt -o board.pdf  # one panel per shot, on A4 pages
"""


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--preset", default="sd2", help="image model: sd2 (768x768, default), sd2-base (512x512), tiny (offline stand-in), or a path to a diffusers folder or .safetensors file")
    parser.add_argument("--model-config", type=Path, default=None, metavar="FOLDER", help="with a single .safetensors checkpoint that is not plain SD 2.x (768-v) or SD 1.x: a diffusers model folder whose configs describe it (e.g. SD 2 base's, which predicts epsilon)")
    parser.add_argument("--asr-engine", default="faster-whisper", choices=["faster-whisper", "openai-whisper"], help="speech recogniser (default: faster-whisper)")
    parser.add_argument("--asr-model", default=None, metavar="NAME_OR_PATH", help="Whisper model name (tiny.en, small.en, ...) or local path; default: the preset's")
    parser.add_argument("--asr-full-window", action="store_true", help="faster-whisper: encode the whole 30 s window for every prompt (slower; by default a short prompt is encoded in a 10 s window)")
    parser.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu", "mps"], help="where the models run (default: the best available)")
    parser.add_argument("--data-dir", type=Path, default=None, help=f"history, images and built models (default: {default_data_dir()})")
    parser.add_argument("--low-vram", action="store_true", help="for 4-6 GB cards: CPU offload, attention slicing, VAE tiling (slower)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the UNet on CUDA (slow first start, faster steps)")


def _add_client_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--server", default=None, help=f"daemon URL (default: {DEFAULT_SERVER}; when none answers there, one is started in this process)")
    parser.add_argument("--token", default=os.environ.get("VOICEBRUSH_TOKEN", ""), help="the daemon's token (default: $VOICEBRUSH_TOKEN, which, unlike --token, stays out of `ps`)")


def _add_generation_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", type=Path, required=True, help="PNG file to write (several images: NAME-1.png, NAME-2.png, ...)")
    parser.add_argument("--negative-prompt", default="", help="what the picture should not have")
    parser.add_argument("--size", default=None, metavar="WxH", help="e.g. 768x512 (multiples of 8); default: the model's native size")
    parser.add_argument("--n", type=int, default=1, help="how many images (1-8)")
    parser.add_argument("--steps", type=int, default=0, help="denoising steps (default 25)")
    parser.add_argument("--seed", type=int, default=-1, help="seed for a repeatable picture (default: random)")
    parser.add_argument("--guidance-scale", type=float, default=None, help="how closely to follow the prompt (default 7.5)")
    parser.add_argument("--scheduler", default=None, help="dpmpp_2m (default), ddim, euler, ...")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebrush",
        description="Speak a picture: a local daemon that turns speech into Stable Diffusion images for Krita and Blender.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicebrush {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    serve = commands.add_parser("serve", help="run the daemon the plugins talk to", description="Run the daemon: loads the models once and serves the Krita and Blender plugins and OpenAI-compatible clients over HTTP.")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only; anything else needs --token)")
    serve.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    serve.add_argument("--token", default=os.environ.get("VOICEBRUSH_TOKEN") or None, help="require 'Authorization: Bearer TOKEN' on every route but /v1/health (default: $VOICEBRUSH_TOKEN). Every local user can read a --token in `ps`: prefer VOICEBRUSH_TOKEN or --token-file")
    serve.add_argument("--token-file", type=Path, default=None, metavar="FILE", help="read the token from the first line of FILE (keeps it out of the process list)")
    serve.add_argument("--public-url", default=None, metavar="URL", help="the address clients use when it is not --host:--port (a proxy, a tunnel, a DNS name on a daemon without a token): image URLs are built from it and its host is accepted")
    serve.add_argument("--queue-size", type=int, default=16, help="jobs that may wait; beyond, clients get 429 (default 16)")
    serve.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN", help="a web origin (scheme://host:port) allowed to call the API, with CORS; repeatable")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    _add_model_options(serve)

    generate = commands.add_parser("generate", help="text to a PNG", description="Generate a picture from a typed prompt and write it as PNG (the prompt and settings ride along in the PNG's text chunks).")
    generate.add_argument("prompt", help="what to draw, in quotes")
    _add_generation_options(generate)
    _add_client_options(generate)
    _add_model_options(generate)

    transcribe = commands.add_parser("transcribe", help="speech to text", description="Print what is said in an audio file (wav, flac, ogg, mp3, webm, m4a).")
    transcribe.add_argument("audio", type=Path, help="the audio file")
    transcribe.add_argument("--language", default=None, help="e.g. en (default: detect)")
    transcribe.add_argument("--format", default="text", choices=["text", "json", "verbose_json", "srt", "vtt"], help="output format (default: text)")
    _add_client_options(transcribe)
    _add_model_options(transcribe)

    dictate = commands.add_parser("dictate", help="speak into the microphone, get a PNG", description="Record from the microphone until you press Enter (or for --seconds), then turn what you said into a picture.")
    dictate.add_argument("--seconds", type=float, default=None, help="record this long instead of waiting for Enter")
    dictate.add_argument("--input-device", default=None, help="microphone name or number (see `python -m sounddevice`)")
    dictate.add_argument("--keep-audio", type=Path, default=None, help="also save the recording as WAV here")
    _add_generation_options(dictate)
    _add_client_options(dictate)
    _add_model_options(dictate)

    models = commands.add_parser("models", help="what is downloaded and what is missing", description="List the models each preset needs, whether they are in the local cache, and the command that fetches the missing ones.")
    models.add_argument("--fetch", metavar="PRESET_OR_MODEL", default=None, help="download a preset's image model (sd2, sd2-base) or a Whisper model (e.g. small.en), with a progress bar")
    _add_model_options(models)

    bench = commands.add_parser("bench", help="measure overhead, speech speed and end-to-end latency", description="Benchmark the daemon against direct model calls, measured side by side in one run.")
    bench.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    bench.add_argument("--rounds", type=int, default=5, help="interleaved rounds per measurement (default 5)")
    _add_model_options(bench)
    bench.set_defaults(preset="tiny")
    from . import storyboard_command  # the whole command is in that module

    storyboard_command.add_parser(commands)
    return parser


def settings_from_args(args: argparse.Namespace, **overrides) -> Settings:
    values = dict(
        preset=args.preset,
        model_config=args.model_config.expanduser().resolve() if args.model_config else None,
        asr_engine=args.asr_engine,
        asr_model=args.asr_model,
        asr_full_window=args.asr_full_window,
        device=args.device,
        low_vram=args.low_vram,
        compile=args.compile,
        data_dir=(args.data_dir or default_data_dir()).expanduser().resolve(),
    )
    values.update(overrides)
    return Settings(**values)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command in ("generate", "transcribe", "dictate"):
            from . import cli_client

            return getattr(cli_client, args.command)(args)
        if args.command == "models":
            from .cli_models import models

            return models(args)
        if args.command == "bench":
            from .bench import bench

            return bench(args)
        if args.command == "storyboard":
            from .storyboard_command import run

            return run(args)
    except KeyboardInterrupt:
        print("voicebrush: interrupted", file=sys.stderr)
        return 130
    return 2


# ---- serve -----------------------------------------------------------------------


def serve(args: argparse.Namespace) -> int:
    try:
        token = read_token_file(args.token_file) if args.token_file else args.token
    except ValueError as exc:
        print(f"voicebrush: {exc}", file=sys.stderr)
        return 2
    settings = settings_from_args(
        args,
        host=args.host,
        port=args.port,
        token=token or None,
        public_url=args.public_url,
        queue_size=max(1, args.queue_size),
        allowed_origins=tuple(args.allow_origin),
    )
    if not settings.is_loopback and not settings.token:
        print(f"voicebrush: refusing to listen on {settings.host} without a token; pass --token or set VOICEBRUSH_TOKEN (loopback needs none).", file=sys.stderr)
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The access log records paths and statuses; aiohttp never logs headers, so the token stays out.
    return asyncio.run(run_server(settings))


async def run_server(settings: Settings, started: threading.Event | None = None, bound: list | None = None, stop: asyncio.Event | None = None) -> int:
    from aiohttp import web

    from .models import ModelUnavailable
    from .server.access_log import PathOnlyAccessLogger
    from .server.app import create_app
    from .server.runner import DaemonRunner
    from .server.shutdown import leave_if_worker_stuck
    from .server.state import JOBS

    app = create_app(settings)
    runner = DaemonRunner(app, handler_cancellation=True, shutdown_timeout=5.0, access_log_class=PathOnlyAccessLogger)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(f"voicebrush: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    port = site._server.sockets[0].getsockname()[1]  # the real one when --port 0
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"voicebrush listening on http://{host}:{port}", flush=True)
    if bound is not None:
        bound.append(port)
    if started is not None:
        started.set()

    loop = asyncio.get_running_loop()
    stop = stop or asyncio.Event()
    if threading.current_thread() is threading.main_thread():
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
    queue = app[JOBS]
    loaded = loop.run_in_executor(None, queue.ready.wait)
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({loaded, stopping}, return_when=asyncio.FIRST_COMPLETED)
    rc = 0
    if queue.state == "error" and isinstance(queue.load_error, ModelUnavailable):
        print(f"voicebrush: {queue.load_error}", file=sys.stderr, flush=True)
        rc = 2
    else:
        if queue.state == "ready":
            logging.getLogger("voicebrush").info("models ready on %s", queue.engines.image.device)
        await stopping
    stopping.cancel()
    # Graceful: the worker goes first so terminal events end the open event streams,
    # then the server closes.
    await loop.run_in_executor(None, queue.close)
    # Graceful: the running job is cancelled (within one step), queued ones are
    # marked, event streams end, and the data dir is left consistent.
    await runner.cleanup()
    leave_if_worker_stuck(queue, rc)  # a step that outlasted the shutdown: exit without it
    return rc
