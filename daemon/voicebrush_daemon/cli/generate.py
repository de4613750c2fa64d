"""`voicebrush generate PROMPT -o FILE.png`: a typed prompt to a picture."""

from __future__ import annotations

import argparse

from .arguments import add_client_options, add_generation_options, add_model_options
from .console import CommandFailed, error_line
from .pictures import draw

NAME = "generate"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME,
        help="text to a PNG",
        description="Generate a picture from a typed prompt and write it as PNG (the prompt and settings ride "
        "along in the PNG's text chunks). The prompt is read as speech is: 'without X' / 'no X' go to the "
        "negative prompt, and 'wide shot' (16:9), 'landscape' (3:2), 'portrait' (2:3) or 'square' set the "
        "aspect when --size is not given.",
        epilog='example: voicebrush generate "a misty harbour at dawn, wide shot, without boats" -o harbour.png',
    )
    parser.add_argument("prompt", help="what to draw, in quotes")
    add_generation_options(parser)
    add_client_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return draw(args, prompt=args.prompt, audio=None)
    except CommandFailed as exc:
        error_line(str(exc))
        return exc.exit_code
