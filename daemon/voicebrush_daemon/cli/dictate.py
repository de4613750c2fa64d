"""`voicebrush dictate -o FILE.png`: speech (the microphone, or a recorded take) to a picture."""

from __future__ import annotations

import argparse
from pathlib import Path

from voicebrush_client import encode_wav

from .arguments import add_client_options, add_generation_options, add_model_options
from .console import CommandFailed, error_line
from .microphone import RATE, NoMicrophone, record
from .pictures import draw

NAME = "dictate"


def add_parser(commands) -> None:
    parser = commands.add_parser(
        NAME,
        help="speak into the microphone (or give a recording), get a PNG",
        description="Record from the microphone until you press Enter (or for --seconds), or take a recording "
        "with --file, then turn what was said into a picture.",
    )
    parser.add_argument("--file", type=Path, default=None, metavar="AUDIO", help="a recorded take (wav, flac, ogg, mp3, webm, m4a) instead of the microphone")
    parser.add_argument("--seconds", type=float, default=None, help="record this long instead of waiting for Enter")
    parser.add_argument("--input-device", default=None, metavar="NAME_OR_NUMBER", help="the microphone (default: the system's; `voicebrush dictate` lists them when it finds none)")
    parser.add_argument("--keep-audio", type=Path, default=None, help="also save the recording as WAV here")
    add_generation_options(parser)
    add_client_options(parser)
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        audio, filename = take(args)
        return draw(args, prompt=None, audio=audio, audio_filename=filename)
    except NoMicrophone as exc:
        error_line(str(exc))
        return 1
    except CommandFailed as exc:
        error_line(str(exc))
        return exc.exit_code


def take(args: argparse.Namespace) -> tuple[bytes, str]:
    if args.file is not None:
        try:
            return args.file.read_bytes(), args.file.name
        except OSError as exc:
            raise CommandFailed(f"cannot read {args.file}: {exc.strerror}") from None
    pcm = record(args.seconds, args.input_device)
    if not pcm:
        raise CommandFailed("nothing was recorded.")
    wav = encode_wav(pcm, RATE, 1)
    if args.keep_audio:
        args.keep_audio.write_bytes(wav)
    return wav, "speech.wav"
