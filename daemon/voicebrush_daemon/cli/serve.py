"""`voicebrush serve`: the daemon the plugins talk to."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
from pathlib import Path

from ..settings import read_token_file
from .arguments import TOKEN_ENV, add_model_options, settings_from_args
from .connect import with_preset_hint
from .console import error_line

NAME = "serve"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME,
        help="run the daemon the plugins talk to",
        description="Run the daemon: loads the models once and serves the Krita and Blender plugins and "
        "OpenAI-compatible clients over HTTP. Prints 'voicebrush listening on URL' once the models are "
        "loaded; Ctrl+C or SIGTERM stops it (the running job is cancelled, the history kept).",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: loopback only; anything else needs --token)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860; 0 picks a free one)")
    parser.add_argument("--token", default=os.environ.get(TOKEN_ENV) or None, help=f"require 'Authorization: Bearer TOKEN' on every route but /v1/health (default: ${TOKEN_ENV}). Every local user can read a --token in `ps`: prefer ${TOKEN_ENV} or --token-file")
    parser.add_argument("--token-file", type=Path, default=None, metavar="FILE", help="read the token from the first line of FILE (keeps it out of the process list)")
    parser.add_argument("--public-url", default=None, metavar="URL", help="the address clients use when it is not --host:--port (a proxy, a tunnel, a DNS name on a daemon without a token): image URLs are built from it and its host is accepted")
    parser.add_argument("--queue-size", type=int, default=16, help="jobs that may wait; beyond, clients get 429 (default 16)")
    parser.add_argument("--allow-origin", action="append", default=[], metavar="ORIGIN", help="a web origin (scheme://host:port) allowed to call the API, with CORS; repeatable")
    parser.add_argument("--keep-days", type=_non_negative(float), default=None, metavar="DAYS", help="history retention: delete finished jobs (records and images) older than this, at start and once a day (default: keep everything)")
    parser.add_argument("--max-jobs", type=_non_negative(int), default=None, metavar="N", help="history retention: keep at most the N newest finished jobs (default: no limit)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"], help="what the daemon logs on stderr (default info; debug also shows the libraries' warnings)")
    add_model_options(parser)
    parser.set_defaults(run=run)


def _non_negative(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a {'whole ' if kind is int else ''}number: {text!r}") from None
        if not value >= 0:
            raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
        return value

    return parse


def run(args: argparse.Namespace) -> int:
    try:
        token = read_token_file(args.token_file) if args.token_file else args.token
    except ValueError as exc:
        error_line(str(exc))
        return 2
    settings = settings_from_args(
        args,
        host=args.host,
        port=args.port,
        token=token or None,
        public_url=args.public_url,
        queue_size=max(1, args.queue_size),
        allowed_origins=tuple(args.allow_origin),
        keep_days=args.keep_days,
        max_jobs=args.max_jobs,
    )
    if not settings.is_loopback and not settings.token:
        error_line(f"refusing to listen on {settings.host} without a token; set {TOKEN_ENV} or pass --token-file (loopback needs none).")
        return 2
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    from ..server.runner import StartupError, run_server

    def announce(daemon) -> None:
        print(f"voicebrush listening on {daemon.url}", flush=True)

    try:
        asyncio.run(run_server(settings, on_ready=announce))
    except StartupError as exc:
        error_line(with_preset_hint(str(exc), exc.__cause__, settings))
        return exc.exit_code
    return 0
