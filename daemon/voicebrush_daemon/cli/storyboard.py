"""`voicebrush storyboard SCRIPT.txt -o board.pdf` (or --audio TAKE.wav): a script to a sheet.

A client of the daemon like generate: the board is made by POST /v1/storyboards, each
finished shot is reported as it lands, and the contact sheet (PNG or PDF, by the output's
suffix) is written at the end, with whatever panels were drawn. Exit 0 when every shot
was drawn, 1 otherwise (the sheet is still written, showing which are missing).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import add_client_options, add_model_options
from .connect import daemon_for
from .console import CommandFailed, error_line, say

NAME = "storyboard"

MAX_SCRIPT_BYTES = 1024 * 1024  # the daemon takes far less; a bigger file is surely no script

DESCRIPTION = """\
Turn a script into a storyboard: one shot per line (or split at "shot two", "panel 3:",
"next shot", "cut to", "then"), every shot drawn in the same style and frame format, and
the contact sheet written as PNG or PDF (A4 landscape pages)."""

EXAMPLES = """\
examples:
  voicebrush storyboard script.txt -o board.pdf
  voicebrush storyboard --audio take.wav -o board.png --style "ink wash, muted colours"
  voicebrush storyboard script.txt -o board.pdf --size 768x432 --seed 7 --seed-mode sequence
"""


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME,
        help="a script (text or spoken) to a sheet of panels",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("script", type=Path, nargs="?", default=None, help="the script, a UTF-8 text file (or use --audio)")
    parser.add_argument("--audio", type=Path, default=None, metavar="TAKE", help="a dictated script instead: wav, flac, ogg, mp3, webm or m4a")
    parser.add_argument("-o", "--output", type=Path, required=True, help="the sheet to write: .png (one page) or .pdf (A4 landscape pages)")
    parser.add_argument("--style", default="", help="added to every shot's prompt, e.g. \"ink wash, muted colours\"")
    parser.add_argument("--negative-prompt", default="", help="what no shot should have")
    parser.add_argument("--size", default=None, metavar="WxH", help="every panel's frame (multiples of 8); default 16:9 at the model's native size")
    parser.add_argument("--steps", type=int, default=0, help="denoising steps per shot (default 25)")
    parser.add_argument("--seed", type=int, default=-1, help="the board's seed (default: random)")
    parser.add_argument("--seed-mode", default="same", choices=["same", "sequence"], help="same: one seed for all shots (default); sequence: shot i uses seed + i - 1")
    parser.add_argument("--language", default=None, help="with --audio: the language spoken, e.g. en (default: detect)")
    add_client_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def _read_script(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SCRIPT_BYTES + 1)
    except OSError as exc:
        raise SystemExit(_say(f"cannot read {path}: {exc.strerror or exc}"))
    if len(data) > MAX_SCRIPT_BYTES:
        raise SystemExit(_say(f"{path} is larger than 1 MB; a script is one shot per line, at most 64 shots."))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SystemExit(_say(f"{path} is not a UTF-8 text file; give the script as text, or a recording with --audio."))


def _say(message: str) -> int:
    error_line(message)
    return 1


def run(args: argparse.Namespace) -> int:
    from voicebrush_client import VoicebrushError

    kind = args.output.suffix.lower().lstrip(".")
    if kind not in ("png", "pdf"):
        return _say(f"-o must end in .png or .pdf, got {args.output.name!r}.")
    if (args.script is None) == (args.audio is None):
        return _say("give a script file, or a recording with --audio (one of them).")
    source: dict = {}
    if args.audio is not None:
        try:
            source = {"audio": args.audio.read_bytes(), "audio_filename": args.audio.name}
        except OSError as exc:
            return _say(f"cannot read {args.audio}: {exc.strerror or exc}")
    else:
        source = {"script": _read_script(args.script)}
    options = {"style": args.style, "negative_prompt": args.negative_prompt, "size": args.size, "steps": args.steps or None,
               "seed": args.seed, "seed_mode": args.seed_mode, "language": args.language if args.audio else None}
    try:
        with daemon_for(args, speech=args.audio is not None) as client:
            board = client.create_storyboard(**source, **options)
            if board.get("transcript"):
                say(f"heard: {board['transcript']!r}")
            count = len(board["shots"])
            say(f"storyboard {board['id']}: {count} shots at {board['size']}")
            for shot in board["shots"]:
                say(f"  {shot['index']:>2}. {shot['text']}")

            def report(name: str, data: dict) -> None:
                if name in ("done", "failed", "cancelled") and "index" in data:
                    say(f"shot {data['index']}/{count} {name}")

            final = client.follow_storyboard(board["id"], on_event=report)
            sheet = client.fetch_sheet(board["id"], kind)
    except CommandFailed as exc:
        error_line(str(exc))
        return exc.exit_code
    except VoicebrushError as exc:
        return _say(str(exc))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_bytes(sheet)
    drawn = sum(1 for shot in final["shots"] if shot.get("status") == "done")
    print(f"wrote {args.output}  ({drawn} of {count} panels, storyboard {final['status']})")
    return 0 if final["status"] == "done" else 1
