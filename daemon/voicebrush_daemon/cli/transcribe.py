"""`voicebrush transcribe AUDIO`: what is said in a recording.

With no daemon to ask, only the speech model is loaded, here: transcription keeps
no history, so this is exactly what the daemon's route would answer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from voicebrush_client import Client, VoicebrushError, encode_multipart

from .arguments import DEFAULT_SERVER, add_client_options, add_model_options, settings_from_args
from .connect import find_daemon, with_preset_hint
from .console import CommandFailed, describe_client_error, error_line, say

NAME = "transcribe"
FORMATS = ["text", "json", "verbose_json", "srt", "vtt"]


def add_parser(commands) -> None:
    parser = commands.add_parser(NAME, help="speech to text", description="Print what is said in an audio file (wav, flac, ogg, mp3, webm, m4a).")
    parser.add_argument("audio", type=Path, help="the audio file")
    parser.add_argument("--language", default=None, help="e.g. en (default: detect)")
    parser.add_argument("--format", default="text", choices=FORMATS, help="output format (default: text)")
    add_client_options(parser, in_process="only the speech model is loaded, in this process")
    add_model_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        audio, filename = args.audio.read_bytes(), args.audio.name
    except OSError as exc:
        error_line(f"cannot read {args.audio}: {exc.strerror}")
        return 1
    try:
        client = find_daemon(args)
        if client is not None:
            print(through_daemon(client, audio, filename, args))
        else:
            print(in_this_process(audio, args))
    except CommandFailed as exc:
        error_line(str(exc))
        return exc.exit_code
    except VoicebrushError as exc:
        error_line(describe_client_error(exc))
        return 1
    return 0


def through_daemon(client: Client, audio: bytes, filename: str, args: argparse.Namespace) -> str:
    fields = {"model": "whisper-1", "response_format": "json" if args.format == "text" else args.format}
    if args.language:
        fields["language"] = args.language
    body, content_type = encode_multipart(fields, {"file": (filename, audio, "application/octet-stream")})
    _, _, data = client._call("POST", "/v1/audio/transcriptions", body=body, content_type=content_type)
    text = data.decode("utf-8")
    if args.format == "text":
        return json.loads(text).get("text", "")
    return json.dumps(json.loads(text), indent=2) if args.format.endswith("json") else text.rstrip("\n")


def in_this_process(audio: bytes, args: argparse.Namespace) -> str:
    from ..audio import decode_audio
    from ..errors import ApiError, InvalidAudio
    from ..models import ModelUnavailable
    from ..server.runner import StartupError, check_device
    from ..speech import asr_model_name, formats, load_transcriber
    from ..speech.base import TranscribeOptions

    settings = settings_from_args(args)
    where = "" if args.in_process else f"no daemon at {DEFAULT_SERVER}; "
    say(f"voicebrush: {where}transcribing in this process (Whisper {asr_model_name(settings)}, {settings.asr_engine}) ...")
    try:
        samples = decode_audio(audio)
    except InvalidAudio as exc:
        raise CommandFailed(str(exc)) from None
    try:
        check_device(settings.device)
    except StartupError as exc:
        raise CommandFailed(str(exc), exc.exit_code) from None
    try:
        transcriber = load_transcriber(settings)
    except ModelUnavailable as exc:
        raise CommandFailed(with_preset_hint(str(exc), exc, settings), exit_code=2) from None
    try:
        transcript = transcriber.transcribe(samples, TranscribeOptions(language=(args.language or "").lower() or None))
    except ApiError as exc:  # the engine's verdict on the input, e.g. an unknown language
        raise CommandFailed(exc.message) from None
    finally:
        transcriber.close()
    if args.format == "text":
        return transcript.text
    body, _ = formats.render(transcript, args.format)
    if isinstance(body, dict):
        return json.dumps({**body, "model": transcriber.model_id}, indent=2)
    return body.rstrip("\n")
