"""The `voicebrush` command: one module per subcommand, shared handling below them.

- `serve`, `generate`, `transcribe`, `dictate`, `storyboard`, `history`, `models`, `bench`: one module
  each, with `add_parser(commands)` and `run(args) -> exit code`. A new command is a new
  module listed in COMMANDS.
- `arguments`: the option groups several commands share, and Settings from them.
- `connect`: the daemon a client command talks to, or one run in this process.
- `console`: what the user sees (quiet libraries, progress, error lines).
- `microphone`: recording, and a clear word when there is no microphone.

Commands import only the modules below them, never this one or each other; nothing
else in the daemon imports the CLI.
"""

from __future__ import annotations

import argparse
import sys

from .. import __version__
from . import bench, dictate, generate, history, models, serve, storyboard, transcribe
from .arguments import settings_from_args
from .console import quiet_libraries

__all__ = ["main", "build_parser", "settings_from_args"]

COMMANDS = (serve, generate, transcribe, dictate, storyboard, history, models, bench)

EPILOG = """\
examples:
  voicebrush serve                          # Stable Diffusion 2 (768) + Whisper small.en
  voicebrush serve --preset tiny            # offline stand-in models, for trying things out
  VOICEBRUSH_TOKEN=S voicebrush serve --host 0.0.0.0  # remote use: a token is required off loopback
  voicebrush generate "a misty harbour at dawn, wide shot" -o harbour.png
                                            # "wide shot": 16:9; "without people": negative prompt
  voicebrush transcribe memo.m4a
  voicebrush dictate -o sketch.png          # speak, press Enter, get a picture
  voicebrush dictate --file take.wav -o sketch.png
  voicebrush storyboard script.txt -o board.pdf  # one panel per shot, on A4 pages
  voicebrush history                        # the latest jobs; `history prune --keep-days 30`
  voicebrush models                         # what is downloaded, and how to get the rest

generate, transcribe, dictate, storyboard and history talk to the daemon at --server or
$VOICEBRUSH_SERVER, which must answer. With neither, they use the daemon at
http://127.0.0.1:7860, or run the command in this process when none answers there.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicebrush",
        description="Speak a picture: a local daemon that turns speech into Stable Diffusion images for Krita and Blender.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicebrush {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet_libraries(verbose=getattr(args, "log_level", "info") == "debug")
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("voicebrush: interrupted", file=sys.stderr)
        return 130
