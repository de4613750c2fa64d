"""`voicebrush models`: what each preset needs, what is on disk, how to get the rest."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from .cli import settings_from_args
from .models import MODE_MODELS, PRESETS, ModelUnavailable


def models(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    from .imaging import describe_image_models, fetch_image_model
    from .speech import describe_asr_models, download_asr_model

    if args.fetch:
        try:
            if args.fetch in PRESETS or args.fetch in MODE_MODELS:
                source = fetch_image_model(args.fetch)
                print(f"{args.fetch}: {source.model_id} is ready")
            else:
                path = download_asr_model(replace(settings, asr_model=args.fetch))
                print(f"{args.fetch} ({settings.asr_engine}): ready at {path}")
        except ModelUnavailable as exc:
            print(f"voicebrush: {exc}", file=sys.stderr)
            return 1
        return 0

    print("Image models (--preset):")
    missing = 0
    for row in describe_image_models(settings):
        mark = "*" if row.get("active") else " "
        print(f" {mark} {row['name']:<10} {row['model']:<44} {row['status']}")
        if row["status"] == "missing":
            missing += 1
            print(f"      fetch: {row['fetch']}")
        elif row.get("detail"):
            print(f"      {row['detail']}")
    print("Speech models (--asr-engine, --asr-model):")
    for row in describe_asr_models(settings):
        mark = "*" if row.get("selected") else " "
        print(f" {mark} {row['name']:<10} {row['engine']:<15} {row['status']}")
        if row["status"] == "missing" and row.get("fetch"):
            missing += 1
            print(f"      fetch: {row['fetch']}")
    print("(* = what `voicebrush serve` with these options would load)")
    return 0
