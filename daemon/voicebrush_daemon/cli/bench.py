"""`voicebrush bench`: the command line of the benchmark (the measuring is in ..bench)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import add_model_options, settings_from_args

NAME = "bench"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME,
        help="measure overhead, speech speed and end-to-end latency",
        description="Benchmark the daemon against direct model calls, measured side by side in one run. "
        "Its jobs go to a throwaway history, not the data dir's.",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the figures as JSON here")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per measurement (default 5)")
    add_model_options(parser, default_preset="tiny")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..bench import run_bench

    return run_bench(settings_from_args(args), rounds=args.rounds, json_path=args.json)
