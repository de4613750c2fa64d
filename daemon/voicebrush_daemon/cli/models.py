"""`voicebrush models`: what each preset needs, what is on disk, how to get the rest."""

from __future__ import annotations

import argparse
from dataclasses import replace

from .arguments import add_model_options, settings_from_args
from .console import error_line

NAME = "models"


def add_parser(commands) -> None:
    parser = commands.add_parser(NAME, help="what is downloaded and what is missing", description="List the models each preset needs, whether they are in the local cache, and the command that fetches the missing ones.")
    parser.add_argument("--fetch", metavar="PRESET_OR_MODEL", default=None, help="download a preset's image model (sd2, sd2-base) or a Whisper model (e.g. small.en), with a progress bar")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..imaging import describe_image_models, fetch_image_model
    from ..models import MODE_MODELS, PRESETS, ModelUnavailable
    from ..speech import describe_asr_models, download_asr_model

    settings = settings_from_args(args)
    if args.fetch:
        try:
            if args.fetch in PRESETS or args.fetch in MODE_MODELS:
                source = fetch_image_model(args.fetch)
                print(f"{args.fetch}: {source.model_id} is ready")
            else:
                path = download_asr_model(replace(settings, asr_model=args.fetch))
                print(f"{args.fetch} ({settings.asr_engine}): ready at {path}")
        except ModelUnavailable as exc:
            error_line(str(exc))
            return 1
        return 0

    print("Image models (--preset):")
    for row in describe_image_models(settings):
        mark = "*" if row.get("active") else " "
        print(f" {mark} {row['name']:<10} {row['model']:<44} {row['status']}")
        if row["status"] == "missing":
            print(f"      fetch: {row['fetch']}")
        elif row.get("detail"):
            print(f"      {row['detail']}")
    print("Speech models (--asr-engine, --asr-model):")
    for row in describe_asr_models(settings):
        mark = "*" if row.get("selected") else " "
        print(f" {mark} {row['name']:<10} {row['engine']:<15} {row['status']}")
        if row["status"] == "missing" and row.get("fetch"):
            print(f"      fetch: {row['fetch']}")
    print("(* = what `voicebrush serve` with these options would load)")
    return 0
